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

test_no_reports() {
	[ -n "${RSLAB_SUITE_MARK:-}" ] || { echo "RSLAB_SUITE_MARK is not set"; return 1; }
	local log
	log=$(kmsg_since "$RSLAB_SUITE_MARK") || return 1
	grep -qE "$RSLAB_REPORT_RE" <<< "$log" || return 0
	# Each report with the 40 lines after it (its stack), at most 400.
	grep -E -A40 "$RSLAB_REPORT_RE" <<< "$log" | head -n 400
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

test_kmemleak() { kmemleak_scan; }

ktap_header
ktap_plan 3
ktap_test "kmemleak finds no leak since the suite started" test_kmemleak
ktap_test "no BUG/WARNING/Oops/sanitizer report in the kernel log" test_no_reports
ktap_test "the suite added no taint but out-of-tree (O) and KUnit test (N)" test_taint
ktap_finished
