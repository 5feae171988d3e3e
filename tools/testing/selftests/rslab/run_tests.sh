#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs the rslab selftests inside the VM, kselftest style: one KTAP document
# whose test cases are the test scripts, each script's own KTAP nested below
# it, and a last line "N passed, N failed, N skipped" that counts the
# individual test cases of all scripts. Exits non-zero if any case failed.
#
# Usage: run_tests.sh [SCRIPT]...   (default: all; dmesg_clean.sh, then
#                                    debug_tools.sh, whose reports taint, last)
#        run_tests.sh --list         (the scripts of a full run, one a line)
#
# Reports the kernel logged before the suite started (for example during
# boot) are printed as diagnostics, "# pre-existing: ...", and do not fail the
# suite; everything logged after the suite's start mark is judged by
# dmesg_clean.sh.

cd "$(dirname "$0")" || exit 1

TESTS=(kmalloc_demo.sh kunit.sh slabinfo.sh mempool.sh device.sh stress.sh fuzz.sh fault.sh
	unload.sh bench.sh dmesg_clean.sh debug_tools.sh)
if [ "$1" = --list ]; then
	printf '%s\n' "${TESTS[@]}"
	exit 0
fi
[ $# -eq 0 ] || TESTS=("$@")

source ./ktap_helpers.sh

passed=0 failed=0 skipped=0

ktap_header
ktap_plan ${#TESTS[@]}
nodes=$(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)
ktap_msg "kernel $(uname -r), $(nproc) CPUs, $nodes NUMA nodes, taint $(cat /proc/sys/kernel/tainted) at start"
# A run that asked for NUMA nodes (scripts/vm-run --numa) must have them:
# otherwise the remote-node paths it is for go untested, silently.
numa_failed=0
if [ -n "${RSLAB_NUMA_NODES:-}" ] && [ "$nodes" -ne "$RSLAB_NUMA_NODES" ]; then
	ktap_msg "FAIL: the run asked for $RSLAB_NUMA_NODES NUMA nodes, the kernel has $nodes"
	numa_failed=1
fi
# kmemleak's suspects from before the suite are reported here and then
# forgotten, so that the final scan judges only what the suite did. Its
# automatic scans are stopped: the suite's own scans are the ones judged,
# at points where they mean something.
if have_kmemleak; then
	echo scan=off > "$KMEMLEAK"
	echo scan > "$KMEMLEAK"
	grep '^unreferenced object' "$KMEMLEAK" | sed 's/^/pre-existing kmemleak: /' |
		while IFS= read -r l; do ktap_msg "$l"; done
	kmemleak_forget
fi
dmesg | grep -E "$RSLAB_REPORT_RE" | sed 's/^/pre-existing: /' | while IFS= read -r l; do ktap_msg "$l"; done
[ "$(debug_locks)" != 0 ] ||
	ktap_msg "pre-existing: lockdep was turned off before the suite (debug_locks 0, see the reports above): this run cannot judge locking"
kmsg_mark
export RSLAB_SUITE_MARK=$KMSG_MARK RSLAB_SUITE_TAINT=$(cat /proc/sys/kernel/tainted)
export RSLAB_SUITE_DEBUG_LOCKS=$(debug_locks)

for t in "${TESTS[@]}"; do
	ktap_msg "selftests: rslab: $t"
	out=$(mktemp)
	start=$SECONDS
	./"$t" > "$out" 2>&1
	rc=$?
	sed 's/^/    /' "$out"
	p=$(grep -cE '^ok [0-9]+ ' "$out")
	s=$(grep -cE '^ok [0-9]+ .*# SKIP' "$out")
	f=$(grep -cE '^not ok [0-9]+ ' "$out")
	rm -f "$out"
	passed=$((passed + p - s)) skipped=$((skipped + s)) failed=$((failed + f))
	# A script that crashed or bailed out fails even without a "not ok".
	if [ $rc -eq 0 ] && [ "$f" -eq 0 ]; then
		ktap_pass "selftests: rslab: $t ($((SECONDS - start)) s)"
	else
		[ "$f" -gt 0 ] || failed=$((failed + 1))
		ktap_fail "selftests: rslab: $t (exit $rc)"
	fi
done

failed=$((failed + numa_failed))
echo "# Totals: pass:$KTAP_CNT_PASS fail:$KTAP_CNT_FAIL xfail:0 xpass:0 skip:0 error:0"
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
