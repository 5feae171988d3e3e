#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The last test of a suite run: since the suite started (the mark that
# run_tests.sh put in the kernel log, RSLAB_SUITE_MARK), the kernel logged no
# BUG, WARNING, Oops or sanitizer report, and the kernel is tainted by nothing
# but out-of-tree modules (O) and KUnit having run (N). On a kernel with
# kmemleak (the debug flavour) it first has kmemleak scan, so that a leak
# anywhere in the suite is in the log (as "kmemleak: N new suspected memory
# leaks") and in the list this prints.

source "$(dirname "$0")/ktap_helpers.sh"
ksft_require

TAINT_OOT_MODULE=$((1 << 12))
TAINT_TEST=$((1 << 18))

# reports: the report lines of a kernel log on stdin (kmsg_since's format,
# one record a line), each as "N: line". The stack dump of an allocation-
# failure warning (warn_alloc(): "page allocation failure", "vmalloc
# error") is not a report: fault.sh makes allocations fail on purpose, and
# some paths may warn when they do. Only that dump is skipped: it ends at
# its "</TASK>", or at the first record that is not part of a dump, so a
# report that follows is judged whatever it is.
reports() {
	awk -v re="$RSLAB_REPORT_RE" '
		/page allocation failure|vmalloc error:|SLUB: Unable to allocate memory/ { alloc = 1; next }
		alloc && !/^<[0-7]>(CPU: |Tainted: |Hardware name: |Call Trace:|Workqueue: |Code: |R[A-Z0-9][A-Z0-9]: | )/ { alloc = 0 }
		alloc { if (/<\/TASK>/) alloc = 0; next }
		$0 ~ re { print NR ": " $0 }'
}

# The filter itself: each kind of report is caught, after an allocation-
# failure dump too, and the dump alone is not.
test_filter() {
	local dump report n
	dump=$'<4>rslabctl: vmalloc error: size 64, failed to allocate pages, mode:0xcc0(GFP_KERNEL)\n<4>CPU: 1 UID: 0 PID: 9 Comm: rslabctl\n<4>Tainted: [O]=OOT_MODULE\n<4>Hardware name: QEMU\n<4>Call Trace:\n<4> <TASK>\n<4> dump_stack_lvl+0x1/0x2\n<4>RIP: 0033:0x7f9556e00d6b\n<4>RSP: 002b:00007ffce3cb5570 EFLAGS: 00000246\n<4> </TASK>\n<4>Mem-Info:'
	n=$(reports <<< "$dump" | wc -l)
	[ "$n" -eq 0 ] || { echo "an allocation-failure dump was taken for a report"; reports <<< "$dump"; return 1; }
	while IFS= read -r report; do
		n=$(reports <<< "$dump"$'\n'"$report" | wc -l)
		[ "$n" -ge 1 ] || { echo "not caught after an allocation failure: $report"; return 1; }
	done <<'EOF2'
<3>BUG kmalloc-64: red zone overwritten (write past the object)
<3>BUG rslab_test_x (Tainted: G    B  O): double free
<3>BUG: KASAN: slab-out-of-bounds in rslab_main
<4>WARNING: CPU: 0 PID: 1 at mm/page_alloc.c:4700 __alloc_pages+0x1
<3>INFO: task rslabctl:123 blocked for more than 60 seconds.
<3>rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
<0>watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [rslabctl:1]
<3>list_add corruption. prev->next should be next (ffff), but was 0000.
<4>refcount_t: underflow; use-after-free.
<3>UBSAN: array-index-out-of-bounds in rust/rslab_helpers.c:10:2
<4>Call Trace:
EOF2
}

test_no_reports() {
	[ -n "${RSLAB_SUITE_MARK:-}" ] || { echo "RSLAB_SUITE_MARK is not set"; return 1; }
	local log first
	log=$(kmsg_since "$RSLAB_SUITE_MARK") || return 1
	first=$(reports <<< "$log" | head -n 1)
	[ -z "$first" ] && return 0
	reports <<< "$log" | head -n 20
	# The log from the first report on (its stack), at most 400 lines.
	echo "the log from line ${first%%:*}:"
	tail -n +"${first%%:*}" <<< "$log" | head -n 400
	return 1
}

# Judges the taint bits the suite added (RSLAB_SUITE_TAINT is the taint at
# its start; a report before it, such as one during boot, taints too, and is
# reported as pre-existing by run_tests.sh).
test_taint() {
	local taint start=${RSLAB_SUITE_TAINT:-0}
	taint=$(cat /proc/sys/kernel/tainted)
	echo "tainted=$taint at the end, $start at the start"
	[ $(((taint & ~start) & ~(TAINT_OOT_MODULE | TAINT_TEST))) -eq 0 ]
}

# Lockdep turns itself off for good after its first report, or when
# anything taints the kernel with LOCKDEP_NOW_UNRELIABLE (a KASAN report
# does): the suite must end with it as on as it started, or its silence
# means nothing. (RSLAB_SUITE_DEBUG_LOCKS is the value at the start.)
test_debug_locks() {
	local now start=${RSLAB_SUITE_DEBUG_LOCKS:-}
	now=$(debug_locks)
	[ -n "$now" ] || { echo "no lockdep in this kernel"; return $KSFT_SKIP; }
	echo "debug_locks=$now at the end, ${start:-?} at the start"
	[ "$now" = "$start" ]
}

test_kmemleak() { kmemleak_scan; }

ktap_header
ktap_plan 5
ktap_test "the report filter catches every kind of report, not an allocation-failure dump" test_filter
ktap_test "kmemleak finds no leak since the suite started" test_kmemleak
ktap_test "lockdep is still on (debug_locks as at the start)" test_debug_locks
ktap_test "no BUG/WARNING/Oops/sanitizer report in the kernel log" test_no_reports
ktap_test "the suite added no taint but out-of-tree (O) and KUnit test (N)" test_taint
ktap_finished
