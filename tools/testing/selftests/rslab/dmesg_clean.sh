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
		alloc && !/^<[0-7]>(CPU: |Hardware name: |Call Trace:|Workqueue: | )/ { alloc = 0 }
		alloc { if (/<\/TASK>/) alloc = 0; next }
		$0 ~ re { print NR ": " $0 }'
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
ktap_plan 4
ktap_test "kmemleak finds no leak since the suite started" test_kmemleak
ktap_test "lockdep is still on (debug_locks as at the start)" test_debug_locks
ktap_test "no BUG/WARNING/Oops/sanitizer report in the kernel log" test_no_reports
ktap_test "the suite added no taint but out-of-tree (O) and KUnit test (N)" test_taint
ktap_finished
