#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Selftest for rslab's debugfs statistics: the slabinfo file's format, its
# agreement with SLUB's own /proc/slabinfo for every kmalloc class, its
# consistency with each cache's stats file and with the objects the module
# holds (warm=N), the fault-injection and shrink knobs, and a clean unload.
# Runs inside the VM as root; prints KTAP.

source "$(dirname "$0")/ktap_helpers.sh"
ksft_require

KO=$RSLAB_MODDIR/rust/rslab.ko
D=/sys/kernel/debug/rslab
WARM=100
CLASSES=(8 16 32 64 96 128 192 256 512 1024 2048 4096 8192)

# slab_line NAME [FILE]: the slabinfo line of cache NAME, fields split by blanks.
slab_line() { awk -v n="$1" '$1 == n' "${2:-$D/slabinfo}"; }
# stat NAME KEY: one value of a cache's stats file.
stat() { awk -v k="$2" '$1 == k { print $2 }' "$D/$1/stats"; }
test_load() {
	kmsg_mark
	local got
	got=$(load_errno "$KO" warm=$WARM)
	[ "$got" = OK ] || { echo "insmod rslab.ko warm=$WARM: $got"; return 1; }
	kmsg_since | grep -q "rslab: loaded: 13 kmalloc classes, $((13 * WARM)) objects held"
}

test_header() {
	expect_lines 'slabinfo - version: 2\.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>' \
		"$(head -n 2 $D/slabinfo)"
}

test_lines_well_formed() {
	local size re='^kmalloc-[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ : tunables +0 +0 +0 : slabdata +[0-9]+ +[0-9]+ +0$'
	for size in "${CLASSES[@]}"; do
		local line
		line=$(slab_line "kmalloc-$size")
		[[ $line =~ $re ]] || { echo "kmalloc-$size: '$line'"; return 1; }
		# The name column is padded to 17 characters, as in /proc/slabinfo.
		[ "${line:17:1}" = " " ] || { echo "name column not 17 wide: '$line'"; return 1; }
	done
}

# SLUB names its classes kmalloc-8 ... kmalloc-512, then kmalloc-1k ... 8k.
slub_name() { if [ "$1" -ge 1024 ]; then echo "kmalloc-$(($1 / 1024))k"; else echo "kmalloc-$1"; fi; }

test_geometry_matches_slub() {
	local size ours theirs
	for size in "${CLASSES[@]}"; do
		ours=$(slab_line "kmalloc-$size" | awk '{ print $4, $5, $6 }')
		theirs=$(slab_line "$(slub_name "$size")" /proc/slabinfo | awk '{ print $4, $5, $6 }')
		[ -n "$theirs" ] || { echo "SLUB has no $(slub_name "$size")"; return 1; }
		echo "kmalloc-$size: rslab objsize/objperslab/pagesperslab '$ours', SLUB '$theirs'"
		[ "$ours" = "$theirs" ] || return 1
	done
}

test_counts_consistent() {
	local size f
	for size in "${CLASSES[@]}"; do
		# active num objsize perslab pages : tunables l b s : slabdata active num avail
		read -r -a f <<< "$(slab_line "kmalloc-$size")"
		local active=${f[1]} num=${f[2]} perslab=${f[4]} slabs=${f[14]}
		[ "$active" -ge $WARM ] && [ "$active" -le "$num" ] &&
			[ "$num" -eq $((slabs * perslab)) ] &&
			[ "$active" -eq "$(stat "kmalloc-$size" active_objs)" ] &&
			[ "$num" -eq "$(stat "kmalloc-$size" num_objs)" ] &&
			[ "$(stat "kmalloc-$size" pages)" -eq $((slabs * f[5])) ] ||
			{ echo "kmalloc-$size inconsistent: '${f[*]}'"; cat "$D/kmalloc-$size/stats"; return 1; }
	done
}

test_fault_knobs() {
	local f=$D/kmalloc-64
	[ "$(write_errno $f/fail_next 3)" = OK ] && [ "$(cat $f/fail_next)" = 3 ] &&
		[ "$(write_errno $f/fail_next 0)" = OK ] && [ "$(cat $f/fail_next)" = 0 ] &&
		[ "$(write_errno $f/fail_percent 10)" = OK ] && [ "$(cat $f/fail_percent)" = 10 ] &&
		[ "$(write_errno $f/fail_percent 0)" = OK ] || { echo "knob round trip failed"; return 1; }
	local bad
	for bad in "$f/fail_next abc" "$f/fail_next -1" "$f/fail_percent 101" "$f/fail_next 12345678901234567890"; do
		# shellcheck disable=SC2086
		[ "$(write_errno $bad)" = EINVAL ] || { echo "'$bad' was not EINVAL"; return 1; }
	done
	[ "$(cat $f/fail_next) $(cat $f/fail_percent)" = "0 0" ]
}

test_shrink() {
	local size
	for size in "${CLASSES[@]}"; do
		echo 1 > "$D/kmalloc-$size/shrink" || return 1
		[ "$(stat "kmalloc-$size" cached_objs)" -eq 0 ] && [ "$(stat "kmalloc-$size" empty_slabs)" -eq 0 ] &&
			[ "$(stat "kmalloc-$size" active_objs)" -eq $WARM ] ||
			{ echo "kmalloc-$size after shrink:"; cat "$D/kmalloc-$size/stats"; return 1; }
	done
}

# sunreclaim_kb: /proc/meminfo's SUnreclaim in KiB, the per-CPU vmstat
# deltas folded in first (they can hold hundreds of KiB).
sunreclaim_kb() {
	echo 1 > /proc/sys/vm/stat_refresh
	awk '$1 == "SUnreclaim:" { print $2 }' /proc/meminfo
}
# What other kernel activity may move SUnreclaim by while rmmod runs.
SLACK_KB=128
# slab_kb: the KiB in every rslab slab, from slabinfo (num_slabs x
# pagesperslab pages).
slab_kb() {
	awk -v pk=$(($(getconf PAGESIZE) / 1024)) \
		'$1 ~ /^kmalloc-/ { kb += $15 * $6 * pk } END { print kb + 0 }' "$D/slabinfo"
}

# rslab's slabs count in NR_SLAB_UNRECLAIMABLE_B, as SLUB's do: unloading
# takes their size out of SUnreclaim (it also frees SLUB memory of its own,
# so the drop may be larger; other kernel activity may move it by a little
# either way: SLACK_KB). Without the accounting the drop is only the SLUB
# memory, far less than the slabs.
test_unload() {
	local held before after
	held=$(slab_kb) before=$(sunreclaim_kb)
	kmsg_mark
	rmmod rslab || return 1
	after=$(sunreclaim_kb)
	echo "rslab's slabs: $held KiB; SUnreclaim: $before -> $after KiB"
	[ "$held" -gt 1000 ] || { echo "expected the held objects' slabs to be over 1000 KiB"; return 1; }
	[ $((before - after + SLACK_KB)) -ge "$held" ] ||
		{ echo "SUnreclaim fell by $((before - after)) KiB, less than rslab's $held (slack $SLACK_KB)"; return 1; }
	[ ! -e "$D" ] || { echo "$D still exists"; return 1; }
	local log
	log=$(kmsg_since) || return 1
	# Every held object was freed before the caches went: no leak lines.
	! grep -E 'still allocated|still live' <<< "$log" && grep -q 'rslab: unloaded' <<< "$log"
}

ktap_header
ktap_plan 8
ktap_test "insmod rslab.ko warm=$WARM holds $WARM objects per class" test_load
ktap_test "slabinfo starts with the version 2.1 header" test_header
ktap_test "every kmalloc class has a well-formed slabinfo line" test_lines_well_formed
# Under KASAN (the debug kernel) SLUB's objects carry KASAN's metadata and
# redzones, so its geometry is no longer the plain one rslab reproduces.
if grep -q 'KernelAddressSanitizer initialized' <(dmesg); then
	ktap_skip "objsize, objperslab and pagesperslab equal SLUB's" "SLUB's objects carry KASAN metadata here"
else
	ktap_test "objsize, objperslab and pagesperslab equal SLUB's" test_geometry_matches_slub
fi
ktap_test "slabinfo agrees with itself and each cache's stats file" test_counts_consistent
ktap_test "fault knobs round-trip and reject bad input with EINVAL" test_fault_knobs
ktap_test "shrink empties sheaves and frees empty slabs" test_shrink
ktap_test "rmmod frees everything without leak reports, and its slabs leave SUnreclaim" test_unload
ktap_finished
