#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs the rslab selftests inside the VM with the kernel's own kselftest
# runner: the suite as `make selftests` installed it (build/kselftest/, by
# the kernel's lib.mk), through the kernel's run_kselftest.sh. Its KTAP
# document has the scripts as test cases, each script's own KTAP nested
# below it ("# "-prefixed). Around that run this adds what judges the
# whole suite: the reports (and kmemleak suspects) from before it, shown as
# pre-existing; the log mark dmesg_clean.sh judges from; the NUMA check;
# and a last line "N passed, N failed, N skipped" that counts the
# individual test cases of all scripts (a script that failed without a
# failing case, by its exit status or a timeout, counts as one failure; one
# skipped as a whole, as one skip). Exits non-zero if any case failed.
#
# Usage: run_tests.sh [SCRIPT]...   (default: all, in kselftest-list.txt's
#                                    order: dmesg_clean.sh, then
#                                    debug_tools.sh, whose reports taint, last)
#        run_tests.sh --list         (the scripts of a full run, one a line)
#
# RSLAB_KSFT_DIR: where the installed suite is (default: build/kselftest in
# the tree). RSLAB_FAIL_FAST=1 stops at the first script that fails.
#
# Reports the kernel logged before the suite started (for example during
# boot) are printed as diagnostics, "# pre-existing: ...", and do not fail
# the suite; everything logged after the suite's start mark is judged by
# dmesg_clean.sh.

SELF=$(cd "$(dirname "$0")" && pwd)
source "$SELF/ktap_helpers.sh"
ksft_require
export RSLAB_TREE RSLAB_FLAVOUR RSLAB_MODDIR
KSFT=${RSLAB_KSFT_DIR:-$RSLAB_TREE/build/kselftest}
[ -x "$KSFT/run_kselftest.sh" ] && [ -r "$KSFT/kselftest-list.txt" ] || {
	echo "run_tests.sh: no installed suite in $KSFT: run make selftests" >&2
	exit 1
}
# The installed copies run; they find the rest of the tree through RSLAB_TREE.
export RSLAB_SELFTESTS=$KSFT/rslab

if [ "$1" = --list ]; then
	sed -n 's/^rslab://p' "$KSFT/kselftest-list.txt"
	exit 0
fi

nodes=$(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)
echo "# kernel $(uname -r), $(nproc) CPUs, $nodes NUMA nodes, taint $(cat /proc/sys/kernel/tainted) at start"
# A run that asked for NUMA nodes (scripts/vm-run --numa) must have them:
# otherwise the remote-node paths it is for go untested, silently.
numa_failed=0
if [ -n "${RSLAB_NUMA_NODES:-}" ] && [ "$nodes" -ne "$RSLAB_NUMA_NODES" ]; then
	echo "# FAIL: the run asked for $RSLAB_NUMA_NODES NUMA nodes, the kernel has $nodes"
	numa_failed=1
fi
# kmemleak's suspects from before the suite are reported here and then
# forgotten, so that the final scan judges only what the suite did. Its
# automatic scans are stopped: the suite's own scans are the ones judged,
# at points where they mean something.
if have_kmemleak; then
	echo scan=off > "$KMEMLEAK"
	echo scan > "$KMEMLEAK"
	grep '^unreferenced object' "$KMEMLEAK" | sed 's/^/# pre-existing kmemleak: /'
	kmemleak_forget
fi
dmesg | grep -E "$RSLAB_REPORT_RE" | sed 's/^/# pre-existing: /'
[ "$(debug_locks)" != 0 ] ||
	echo "# pre-existing: lockdep was turned off before the suite (debug_locks 0, see the reports above): this run cannot judge locking"
kmsg_mark
export RSLAB_SUITE_MARK=$KMSG_MARK RSLAB_SUITE_TAINT=$(cat /proc/sys/kernel/tainted)
export RSLAB_SUITE_DEBUG_LOCKS=$(debug_locks)

# virtme-ng links /dev/stdout to its console port rather than to
# /proc/self/fd/1, as udev does; kselftest's runner writes every script's
# output to /dev/stdout, which would then bypass the pipe below (and the
# verdict would count nothing). Put back the usual link.
[ "$(readlink /dev/stdout)" = /proc/self/fd/1 ] || ln -sfn /proc/self/fd/1 /dev/stdout
out=$(mktemp)
# The runner's exit status says whether a script failed; the verdict below
# counts from its output, which it also shows as it goes.
if [ -z "${RSLAB_FAIL_FAST:-}" ]; then
	picks=()
	for t in "$@"; do picks+=(-t "rslab:$t"); done
	"$KSFT/run_kselftest.sh" "${picks[@]}" | tee "$out"
	runner=${PIPESTATUS[0]}
else
	# Stop at the first failing script (scripts/mutants: a killed mutant
	# needs no more): one runner, and one KTAP document, per script.
	[ $# -gt 0 ] || set -- $("$0" --list)
	for t in "$@"; do
		"$KSFT/run_kselftest.sh" -t "rslab:$t" | tee -a "$out"
		runner=${PIPESTATUS[0]}
		[ "$runner" -eq 0 ] || break
	done
fi
# Each script's cases are the "# "-prefixed result lines before its own. A
# script the plan promised that never reported is a failure, as is a
# runner that failed with nothing failing in its output.
verdict=$(awk -v extra="$numa_failed" -v runner="$runner" '
	/^1\.\.[0-9]+$/ { plan += substr($0, 4); planned = 1 }
	/^# (not )?ok [0-9]+ / {
		n++
		if ($2 == "not") { f++; nf++ } else if (/ # SKIP/) s++; else p++
		next
	}
	/^(not )?ok [0-9]+ selftests: / {
		if ($1 == "not" && nf == 0) f++
		else if ($1 == "ok" && / # SKIP/ && n == 0) s++
		n = 0; nf = 0; r++
	}
	END {
		if (!planned || r != plan) f++
		if (runner != 0 && f == 0) f++
		printf "%d passed, %d failed, %d skipped\n", p, f + extra, s
	}' "$out")
rm -f "$out"
echo "$verdict"
[[ $verdict == *" 0 failed, "* ]]
