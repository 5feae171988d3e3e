#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Unload safety: rmmod with live caches, pools and objects (module-held
# objects and demo pools from module parameters, and caches, pools and
# objects that device files made before they were closed) frees everything
# and says what it tore down, with no leak report and nothing for kmemleak;
# rmmod with an open /dev/rslab file or debugfs file is refused (EBUSY
# from rmmod, EAGAIN from delete_module(2)); and insmod/rmmod cycles, each
# using the device, do not grow the kernel's slab or page usage (50
# cycles; 4 on the debug kernel, where kmemleak also judges what they
# leave). Runs inside the VM as root; prints KTAP.

source "$(dirname "$0")/ktap_helpers.sh"
ksft_require

KO=$RSLAB_MODDIR/rust/rslab.ko
D=/sys/kernel/debug/rslab
T=$RSLABCTL
export SYS=$RSLAB_SELFTESTS/rslab_sys
# On the debug kernel kmemleak judges leaks object by object, so fewer
# (slow, KASAN-checked) cycles do; the counts below then only need to catch
# what kmemleak cannot see, such as pages.
# There MemFree also swings on its own, by more than a page a cycle: over
# the 4 cycles of two runs of the same code it fell by 164 to 760 kB in one
# (eleven reads) and rose by 1396 kB in the other, with Slab falling too
# (KASAN's quarantine and its lazily freed vmalloc shadow). So the debug
# kernel's check of free memory allows FREE_SLACK_KB more, and catches
# page leaks of 512 kB a cycle or more; the default kernel's 50 cycles
# catch one page a cycle.
if have_kmemleak; then
	CYCLES=${RSLAB_UNLOAD_CYCLES:-4}
	FREE_SLACK_KB=2048
else
	CYCLES=${RSLAB_UNLOAD_CYCLES:-50}
	FREE_SLACK_KB=0
fi
# The kernel caches rslab's own memory comes from: kmalloc (its metadata,
# KBox, KVec, Arc), and what its debugfs files and misc device make. Others
# (eventpoll, filp, ...) move with the rest of the guest: 116 ep_head
# objects in 20 cycles once, 60 filp in 10. Not vmap_area: the module
# loader's vmalloc areas are freed lazily, and purged (their vmap_area
# objects then kept in per-node pools) in batches, so that cache grows by
# about 4 objects a cycle whatever module cycles (209 -> 415 in 50, seen
# once); a vmalloc allocation rslab leaked would stay in VmallocUsed, which
# vfree() lowers at once, and that is checked instead.
RSLAB_CACHES_RE='^(kmalloc-.*|dentry|inode_cache|kernfs_node_cache)$'
# None of those may grow by this many objects over the cycles: one a
# cycle, but never fewer than 100 (kmalloc-64 was seen to move by 56 in 10).
GROWTH=$((CYCLES > 100 ? CYCLES : 100))
WARM=64

load() {
	local got
	got=$(load_errno "$KO" "$@")
	[ "$got" = OK ] || { echo "insmod rslab.ko $*: $got"; return 1; }
}

# A file that makes a cache, objects and pools of every backend, and
# writes, then closes (releasing them).
use_device() {
	"$T" batch > /dev/null <<'EOF2'
cache-create unload-c 128
bulk-alloc 1 40
alloc kmalloc --size 700
pool-create unload-p1 cache:1 --min-nr 4
pool-create unload-p2 kmalloc:3000 --min-nr 2
pool-create unload-p3 pages:1 --min-nr 2
alloc 43
write 46 c0ffee
alloc 45
EOF2
}

test_live_state() {
	load warm=$WARM demo_pools=8 && use_device || return 1
	kmemleak_forget
	kmsg_mark
	rmmod rslab || return 1
	local log want
	log=$(kmsg_since) || return 1
	echo "$log" | grep 'rslab:'
	want="freeing $((WARM * 13)) held objects, destroying 3 pools and 13 caches"
	grep -qF "unloading: $want" <<< "$log" || { echo "no 'unloading: $want'"; return 1; }
	! grep -E 'still allocated|outstanding|leak' <<< "$log" || return 1
	[ ! -e "$D" ] || { echo "$D is still there"; return 1; }
	# Without kmemleak, the checks above are this case's verdict.
	! have_kmemleak || kmemleak_scan
}

test_rmmod_busy() {
	load || return 1
	"$T" batch <<'EOF2'
info
sh test "$($SYS unload rslab)" = EAGAIN
sh rmmod rslab 2>&1 | grep -q 'in use'
sh test -e /sys/module/rslab
EOF2
	local rc=$?
	rmmod rslab && [ $rc -eq 0 ]
}

# usage FILE: free what the kernel caches only for speed, then print "free
# Slab Vmalloc" in kB (free: MemFree plus the per-CPU page lists; Vmalloc:
# VmallocUsed) and write each /proc/slabinfo cache's active objects to FILE.
#
# The order matters. drop_caches evicts dentries and inodes (the module's
# sysfs and debugfs ones among them), but frees the inodes through call_rcu:
# after the grace period they land in SLUB's per-CPU sheaves and its
# per-node barn, which /proc/slabinfo counts as active. So the caches are
# shrunk (sheaves and barn flushed, which also empties KASAN's quarantine of
# their objects) only after a pause for those frees, and twice: the first
# pass creates the inodes and dentries of the sysfs files it writes, the
# second flushes what that took, and allocates nothing. (Shrinking first and
# dropping after, as this did once, read inode_cache anywhere from 239 to
# 366 objects on an idle guest, and once 111 before the cycles and 388
# after: a false leak. This order read 355 every time.)
usage() {
	local f pass
	sync
	echo 3 > /proc/sys/vm/drop_caches
	sleep 1
	for pass in 1 2; do
		for f in /sys/kernel/slab/*/shrink; do echo 1 > "$f"; done 2>/dev/null
	done
	# Free pages include those parked on the per-CPU page lists
	# (/proc/zoneinfo "count:"), which MemFree leaves out and which swing
	# by hundreds of pages on their own.
	local pcp
	pcp=$(awk '$1 == "count:" { n += $2 } END { print n * 4 }' /proc/zoneinfo)
	awk -v pcp="$pcp" '/^MemFree:/ { f = $2 } /^Slab:/ { s = $2 } /^VmallocUsed:/ { v = $2 }
		END { print f + pcp, s, v }' /proc/meminfo
	awk -v re="$RSLAB_CACHES_RE" 'NR > 2 && $1 ~ re { print $1, $2 }' /proc/slabinfo | sort > "$1"
}

# growth BEFORE: measure now (usage) and print what grew past the limits
# since BEFORE's "free Slab Vmalloc" (and /tmp/unload.before): nothing if
# the cycles left less than one object of any one cache, and less than one
# page of each.
growth() {
	local f0 s0 v0 f1 s1 v1 df ds dv grown
	read -r f0 s0 v0 <<< "$1"
	read -r f1 s1 v1 <<< "$(usage /tmp/unload.after)"
	df=$((f0 - f1)) ds=$((s1 - s0)) dv=$((v1 - v0))
	echo "$CYCLES cycles: free $f0 -> $f1 kB ($df kB less), Slab $s0 -> $s1 kB ($ds kB more), VmallocUsed $v0 -> $v1 kB ($dv kB more)" >&2
	grown=$(join /tmp/unload.before /tmp/unload.after |
		awk -v n="$GROWTH" '$3 - $2 >= n { print $1, $2 " -> " $3 }')
	[ -z "$grown" ] || { echo "caches that grew by >= $GROWTH objects:"; echo "$grown"; }
	[ $((ds * 1024)) -lt $((CYCLES * 4096)) ] || echo "Slab grew by a page a cycle or more"
	[ $((dv * 1024)) -lt $((CYCLES * 4096)) ] || echo "VmallocUsed grew by a page a cycle or more"
	[ $((df * 1024)) -lt $((CYCLES * 4096 + FREE_SLACK_KB * 1024)) ] ||
		echo "free memory fell by a page a cycle or more (+$FREE_SLACK_KB kB of slack)"
}

# The most a cycle may leave behind, on average, for the run to pass: less
# than one object of any one cache, and less than one page. A grace period
# can outlast usage()'s pause (seconds under TCG), so what grew is measured
# again, for up to SETTLE seconds, until it is back within the limits. A
# real leak never gets there.
SETTLE=30
test_cycles() {
	local i
	for i in 1 2 3; do load && use_device && rmmod rslab || return 1; done
	local before
	before=$(usage /tmp/unload.before)
	for ((i = 0; i < CYCLES; i++)); do
		load warm=4 demo_pools=2 && use_device && rmmod rslab ||
			{ echo "cycle $i failed"; return 1; }
	done
	local bad waited=0
	while bad=$(growth "$before") && [ -n "$bad" ] && [ $waited -lt $SETTLE ]; do
		echo "$bad" | sed 's/^/  not yet: /' >&2
		sleep 3
		waited=$((waited + 3))
	done
	rm -f /tmp/unload.before /tmp/unload.after
	[ $waited -eq 0 ] || echo "measured again for $waited s (RCU-deferred frees)"
	[ -z "$bad" ] || { echo "$bad"; return 1; }
	# Where kmemleak runs, it judges every object the cycles left behind.
	! have_kmemleak || kmemleak_scan
}

# A debugfs file held open pins the module: its release must never run in
# freed module text. Every kind of file (the root's, a cache's, a pool's, a
# write-only one) is held open in turn across an attempted unload, read and
# closed; then the unload succeeds and nothing was reported.
test_rmmod_debugfs_open() {
	load demo_pools=1 || return 1
	local f got
	for f in slabinfo poolinfo device reports kmalloc-64/stats kmalloc-64/shrink \
		pools/pool-pages-1/fail_percent; do
		exec 3< "$D/$f" || { echo "cannot open $f"; return 1; }
		got=$("$SYS" unload rslab)
		cat <&3 > /dev/null
		exec 3<&-
		[ "$got" = EAGAIN ] || { echo "delete_module with $f open: $got, expected EAGAIN"; return 1; }
		module_loaded rslab || { echo "rslab went away with $f open"; return 1; }
	done
	rmmod rslab
}

ktap_header
ktap_plan 4
ktap_test "rmmod with held objects, demo pools and closed files frees all, names it, leaks nothing" test_live_state
ktap_test "rmmod with /dev/rslab open is refused (EBUSY/EAGAIN), the module stays" test_rmmod_busy
ktap_test "rmmod with any debugfs file open is refused (EAGAIN); closing it after is safe" test_rmmod_debugfs_open
ktap_test "$CYCLES insmod/use/rmmod cycles grow no slab cache, Slab or MemFree" test_cycles
ktap_finished
