#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The kernel's debugging tools see deliberate bugs in rslab objects, made
# through rslab_kunit.ko's debugfs file "provoke" (rust/debugfs/provoke.rs):
# kmemleak reports a leaked object exactly once, and not an object
# referenced only from another rslab object; the sleep checker reports a
# GFP_KERNEL allocation with a spinlock held on its first call, though the
# sheaf serves it; KASAN reports a 1-byte read just past a 24-byte object
# or, with RSLAB_KASAN_CASE=use-after-free, a 1-byte read of a freed one
# after another object was allocated from its cache (the quarantine keeps
# the freed slot out of use). KASAN reports once a boot (no
# kasan_multi_shot, see scripts/vm-run), so each of make check's debug VMs
# spends its one report on a different case.
# Each case judges its own part of the kernel log: its expected report, and
# no other. Runs after dmesg_clean.sh, last: the reports it provokes taint
# the kernel, and KASAN's turns lockdep off. A case the kernel lacks the
# tool for is skipped, saying which. Runs inside the VM as root; prints KTAP.

source "$(dirname "$0")/ktap_helpers.sh"
ksft_require

KO=$RSLAB_MODDIR/rust/rslab_kunit.ko
P=/sys/kernel/debug/rslab/provoke
GLOB=/sys/module/kunit/parameters/filter_glob
KASAN_CASE=${RSLAB_KASAN_CASE:-read-past}
# What each KASAN case does, and the report it must give.
declare -A KASAN_WHAT=([read-past]="a 1-byte read just past a 24-byte rslab object"
	[use-after-free]="a 1-byte read of a freed 24-byte rslab object, another allocated since")
declare -A KASAN_BUG=([read-past]=slab-out-of-bounds [use-after-free]=slab-use-after-free)

# provoke WHAT: one deliberate bug, after a fresh log mark.
provoke() { kmsg_mark && echo "$1" > "$P"; }
# addr LOG TEXT: the address that follows TEXT in LOG (as KASAN prints it,
# without 0x).
addr() { sed -n "s/.*$2 0x\([0-9a-f]*\).*/\1/p" <<< "$1" | head -n 1; }
# others LOG RE: the report lines of LOG that are not RE.
others() { grep -E "$RSLAB_REPORT_RE" <<< "$1" | grep -vE "$2|Call Trace:"; }

# The test module, without running its KUnit suites (kunit.sh does that):
# KUnit runs only the suites that match its filter_glob.
test_load() {
	local old got
	module_loaded rslab && { rmmod rslab || return 1; }
	old=$(cat "$GLOB")
	echo rslab_provoke_only > "$GLOB" || return 1
	got=$(load_errno "$KO")
	[ "$old" != "(null)" ] || old='*.*'
	echo "$old" > "$GLOB"
	[ "$got" = OK ] || { echo "insmod rslab_kunit.ko: $got"; return 1; }
	[ -w "$P" ] || { echo "no $P"; return 1; }
}

test_kmemleak() {
	have_kmemleak || { echo "no kmemleak in this kernel"; return $KSFT_SKIP; }
	local log a b c found
	provoke chain && echo leak > "$P" || return 1
	log=$(kmsg_since) || return 1
	a=$(addr "$log" "provoke: chain") b=$(addr "$log" "->") c=$(addr "$log" "provoke: leak")
	echo "chain: A 0x$a -> B 0x$b; leaked: C 0x$c"
	[ -n "$a" ] && [ -n "$b" ] && [ -n "$c" ] || { echo "no addresses in the log"; return 1; }
	# kmemleak reports an object at least 5 s old, unchanged across two scans.
	sleep 6
	echo scan > "$KMEMLEAK" && echo scan > "$KMEMLEAK" || return 1
	found=$(cat "$KMEMLEAK")
	echo release > "$P" || return 1
	grep "^unreferenced object 0x" <<< "$found" | sed 's/^/suspect: /'
	[ "$(grep -c "^unreferenced object 0x$c " <<< "$found")" -eq 1 ] ||
		{ echo "C was not reported exactly once"; return 1; }
	! grep -qE "^unreferenced object 0x($a|$b) " <<< "$found" ||
		{ echo "A or B was reported, though referenced"; return 1; }
	# Nothing but the scans' own line, "N new suspected memory leaks".
	log=$(kmsg_since) || return 1
	! others "$log" 'kmemleak: [0-9]+ new suspected memory leaks'
}

test_sleep_in_atomic() {
	[ "$RSLAB_FLAVOUR" = debug ] ||
		{ echo "no sleep checker (CONFIG_DEBUG_ATOMIC_SLEEP) in the $RSLAB_FLAVOUR kernel"; return $KSFT_SKIP; }
	local log n
	provoke sleep-in-atomic || return 1
	log=$(kmsg_since) || return 1
	n=$(grep -c 'BUG: sleeping function called from invalid context' <<< "$log")
	echo "$n sleep-in-atomic reports"
	[ "$n" -eq 1 ] || { echo "$log"; return 1; }
	grep -qE 'rslab_might_alloc|Cache5alloc' <<< "$log" ||
		{ echo "the report does not come through rslab's might_alloc():"; echo "$log"; return 1; }
	! others "$log" 'BUG: sleeping function called from invalid context' ||
		{ echo "other reports:"; echo "$log"; return 1; }
}

test_kasan() {
	grep -q 'KernelAddressSanitizer initialized' <(dmesg) || { echo "no KASAN in this kernel"; return $KSFT_SKIP; }
	# KASAN reports once a boot (no kasan_multi_shot, see scripts/vm-run).
	if grep -q 'BUG: KASAN' <(dmesg); then
		echo "KASAN reported already in this boot (pre-existing, above) and reports once a boot"
		return $KSFT_SKIP
	fi
	local log past n
	local bug=${KASAN_BUG[$KASAN_CASE]}
	[ -n "$bug" ] || { echo "no KASAN case '$KASAN_CASE'"; return 1; }
	provoke "kasan-$KASAN_CASE" || return 1
	log=$(kmsg_since) || return 1
	past=$(addr "$log" "reading 1 byte at")
	n=$(grep -c "BUG: KASAN: $bug in rslab_kunit_read_byte" <<< "$log")
	echo "read at $past: $n KASAN reports"
	[ "$n" -eq 1 ] && grep -q "Read of size 1 at addr $past " <<< "$log" || { echo "$log"; return 1; }
	! others "$log" "BUG: KASAN: $bug" || { echo "other reports:"; echo "$log"; return 1; }
}

test_unload() {
	kmsg_mark
	rmmod rslab_kunit || return 1
	! kmsg_since | grep -E 'still allocated|still live'
}

ktap_header
ktap_plan 5
ktap_test "rslab_kunit.ko loads without running its suites, with its provoke file" test_load
ktap_test "kmemleak: a leaked rslab object reported once, one referenced from another rslab object not" test_kmemleak
ktap_test "the sleep checker: GFP_KERNEL with a spinlock held is reported on the first call, from the sheaf" test_sleep_in_atomic
ktap_test "KASAN: ${KASAN_WHAT[$KASAN_CASE]:-$KASAN_CASE} is reported as ${KASAN_BUG[$KASAN_CASE]:-?}" test_kasan
ktap_test "rmmod rslab_kunit" test_unload
ktap_finished
