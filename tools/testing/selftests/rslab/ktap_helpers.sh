# SPDX-License-Identifier: GPL-2.0
#
# KTAP output and kernel-log helpers for the rslab selftests, in the style of
# tools/testing/selftests/kselftest/ktap_helpers.sh. Sourced, never run.
#
# Kernel-log helpers never clear the log: a test writes a named marker into
# it with kmsg_mark and later reads only what came after with kmsg_since, so
# the whole log stays available for the final "no reports" check.

KTAP_TESTNO=1
KTAP_CNT_PASS=0
KTAP_CNT_FAIL=0
KTAP_CNT_SKIP=0
KTAP_PLAN=0

# Lines of the kernel log that mean something went wrong in the kernel,
# rslab's own reports ("BUG <cache>: <what>", as SLUB's) included.
# (kmemleak's own notes, such as "Cannot allocate a scan area" when fault
# injection hits it, are not reports; its leak report is.)
RSLAB_REPORT_RE='BUG:|BUG [^ ]+( \([^)]*\))?: |WARNING:|KASAN:|UBSAN:|Oops|general protection fault|Call Trace:|possible circular locking|possible recursive locking|sleeping function called from invalid context|Invalid wait context|kmemleak: .*suspected memory leak|Kernel panic|INFO: task .* blocked for more than|rcu: INFO:|detected stalls? on CPU|soft lockup|hard LOCKUP|list_(add|del) corruption|refcount_t: |kernel BUG at'

# The directory of the repository, as the guest sees it (read-only).
# The scripts are in tools/testing/selftests/rslab, or where make selftests
# installed them, build/kselftest/rslab.
if [ -z "${RSLAB_TREE:-}" ]; then
	for RSLAB_TREE in "$(dirname "${BASH_SOURCE[0]}")"/{../../../..,../../..}; do
		[ -e "$RSLAB_TREE/rust/Kbuild" ] && break
	done
	RSLAB_TREE=$(cd "$RSLAB_TREE" && pwd)
fi
# The kernel flavour the VM booted (scripts/vm-run exports it) and where the
# modules built for it are (the Makefile's MO=build/<flavour>).
RSLAB_FLAVOUR=${RSLAB_FLAVOUR:-default}
RSLAB_MODDIR=${RSLAB_MODDIR:-$RSLAB_TREE/build/$RSLAB_FLAVOUR}
# This suite's own files (the C helpers, rslab_dfs, the fuzz corpus): beside
# the scripts, in the tree or where kselftest installed them.
RSLAB_SELFTESTS=${RSLAB_SELFTESTS:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
# The tool the scripts drive, as `make tools` builds it.
RSLABCTL=${RSLABCTL:-$RSLAB_TREE/tools/target/release/rslabctl}

ktap_header() { echo "TAP version 13"; }
ktap_plan() { KTAP_PLAN=$1; echo "1..$1"; }
ktap_msg() { echo "# $*"; }

ktap_pass() {
	echo "ok $KTAP_TESTNO $1"
	KTAP_TESTNO=$((KTAP_TESTNO + 1)) KTAP_CNT_PASS=$((KTAP_CNT_PASS + 1))
}

ktap_fail() {
	echo "not ok $KTAP_TESTNO $1"
	KTAP_TESTNO=$((KTAP_TESTNO + 1)) KTAP_CNT_FAIL=$((KTAP_CNT_FAIL + 1))
}

ktap_skip() {
	echo "ok $KTAP_TESTNO $1 # SKIP $2"
	KTAP_TESTNO=$((KTAP_TESTNO + 1)) KTAP_CNT_SKIP=$((KTAP_CNT_SKIP + 1))
}

# The exit status of a test that could not run here (kselftest's ksft_skip).
KSFT_SKIP=4

# ksft_require: every script's first step. One that cannot run here at all
# is skipped, kselftest style: not root, no debugfs, or no rslab.ko built
# for this kernel flavour.
ksft_require() {
	local why=
	if [ "$(id -u)" -ne 0 ]; then
		why="not root"
	elif ! grep -q ' /sys/kernel/debug debugfs ' /proc/mounts; then
		why="no debugfs at /sys/kernel/debug"
	elif [ ! -e "$RSLAB_MODDIR/rust/rslab.ko" ]; then
		why="no $RSLAB_MODDIR/rust/rslab.ko: make modules (FLAVOUR=$RSLAB_FLAVOUR), or set RSLAB_MODDIR"
	fi
	[ -z "$why" ] && return 0
	echo "TAP version 13"
	echo "1..0 # SKIP $why"
	exit $KSFT_SKIP
}

# ktap_test DESCRIPTION COMMAND...: one test case, passing if COMMAND does,
# skipped if it returns KSFT_SKIP (its last line of output says why).
# COMMAND explains a failure on stdout; those lines become KTAP diagnostics.
ktap_test() {
	local desc=$1 out rc why start=$SECONDS
	shift
	# Not in a subshell: a test may set variables for the ones after it.
	out=$(mktemp)
	"$@" > "$out" 2>&1
	rc=$?
	sed 's/^/# /' "$out"
	why=$(tail -n 1 "$out")
	# What each case costs, for keeping the suite inside its time budget.
	echo "# ($((SECONDS - start)) s)"
	rm -f "$out"
	case $rc in
	0) ktap_pass "$desc" ;;
	"$KSFT_SKIP") ktap_skip "$desc" "${why:-not supported here}" ;;
	*) ktap_fail "$desc" ;;
	esac
}

# ktap_finished: totals, then exit 0 only if every planned test ran and passed.
ktap_finished() {
	echo "# Totals: pass:$KTAP_CNT_PASS fail:$KTAP_CNT_FAIL xfail:0 xpass:0 skip:$KTAP_CNT_SKIP error:0"
	[ $KTAP_CNT_FAIL -eq 0 ] && [ $((KTAP_TESTNO - 1)) -eq "$KTAP_PLAN" ]
	exit $?
}

# kmsg_mark: write a unique marker line into the kernel log and remember it
# in KMSG_MARK.
KMSG_SEQ=0
kmsg_mark() {
	KMSG_SEQ=$((KMSG_SEQ + 1))
	KMSG_MARK="$$.$KMSG_SEQ.$RANDOM"
	echo "rslab-selftest: mark $KMSG_MARK" > /dev/kmsg
}

# kmsg_since [MARK]: the kernel log after MARK (default: the last kmsg_mark),
# one record a line as "<level>text": the level without the facility, no
# timestamp, leading blanks kept. Fails, saying why on stderr, if the log
# cannot be read or has no such mark, so that an empty answer is never
# mistaken for a clean log.
kmsg_since() {
	local mark="rslab-selftest: mark ${1:-$KMSG_MARK}" log
	log=$(dmesg -r) || { echo "kmsg_since: dmesg failed" >&2; return 1; }
	grep -qE "\] $mark\$" <<< "$log" || { echo "kmsg_since: no '$mark' in the log" >&2; return 1; }
	sed -n "/\] $mark\$/,\$p" <<< "$log" | tail -n +2 |
		sed -E 's/^<([0-9]+)>\[ *[0-9]+\.[0-9]+\] /\1 /' |
		awk '{ n = index($0, " "); print "<" substr($0, 1, n - 1) % 8 ">" substr($0, n + 1) }'
}

# load_errno MODULE.ko [PARAM=VALUE]...: load a module with finit_module(2)
# and print the outcome as an errno name ("OK" on success), so tests can
# check the exact error code rather than insmod's wording of it.
load_errno() { "$RSLAB_SELFTESTS/rslab_sys" load "$@"; }

# write_errno FILE TEXT: write TEXT to FILE; print the errno name or "OK".
write_errno() { "$RSLAB_SELFTESTS/rslab_sys" write "$@"; }

# module_loaded NAME: is module NAME in the kernel now?
module_loaded() { [ -e "/sys/module/$1" ]; }

# expect_lines EXPECTED ACTUAL: compare two line lists, each line of EXPECTED
# being an extended regex for the whole line at the same position.
expect_lines() {
	local expected=$1 actual=$2 i=0 e a
	local -a ex ac
	mapfile -t ex <<< "$expected"
	mapfile -t ac <<< "$actual"
	for e in "${ex[@]}"; do
		a=${ac[$i]-<missing>}
		if ! [[ $a =~ ^$e$ ]]; then
			echo "line $((i + 1)): expected /$e/"
			echo "line $((i + 1)):      got '$a'"
			return 1
		fi
		i=$((i + 1))
	done
	if [ ${#ac[@]} -gt $i ]; then
		echo "unexpected extra line $((i + 1)): '${ac[$i]}'"
		return 1
	fi
}

# --- the debug kernel's detectors --------------------------------------------

KMEMLEAK=/sys/kernel/debug/kmemleak

# have_kmemleak: does this kernel (the debug flavour) run kmemleak?
have_kmemleak() { [ -w "$KMEMLEAK" ]; }

# kmemleak_scan: scan for leaks and print any suspects; fails if there are
# any. kmemleak never reports an object younger than 5 s, and reports one
# only once its contents stayed the same across two scans, hence the wait
# and the second scan. Without kmemleak (the default kernel) it says so and
# returns KSFT_SKIP: the debug run is the one that judges leaks.
kmemleak_scan() {
	have_kmemleak || { echo "no kmemleak in this kernel"; return $KSFT_SKIP; }
	sleep 6
	echo scan > "$KMEMLEAK" && echo scan > "$KMEMLEAK" || { echo "kmemleak: scan failed"; return 1; }
	local found
	found=$(cat "$KMEMLEAK")
	[ -z "$found" ] && return 0
	echo "kmemleak: $(grep -c '^unreferenced object' <<< "$found") suspects:"
	head -n 60 <<< "$found"
	return 1
}

# debug_locks: lockdep's debug_locks (1 while it still checks), or nothing
# on a kernel without lockdep.
debug_locks() { awk '$1 == "debug_locks:" { print $2 }' /proc/lockdep_stats 2>/dev/null; }

# kmemleak_forget: mark every current suspect as seen (kmemleak's "clear"),
# so that a later kmemleak_scan reports only what leaked after this point.
kmemleak_forget() { ! have_kmemleak || echo clear > "$KMEMLEAK"; }

# module_text MODULE: "START END" of MODULE's code, from /proc/kallsyms: the
# lowest and highest code symbol, plus a page for the last function's body.
module_text() {
	awk -v m="[$1]" '$4 == m && ($2 == "t" || $2 == "T") { print $1 }' /proc/kallsyms |
		sort | sed -n '1p;$p' | { read -r lo && read -r hi &&
		printf '0x%s 0x%x\n' "$lo" $((0x$hi + 4096)); }
}

# fail_arm TYPE PERCENT MODULE: make the kernel's fault injection TYPE
# (fail_page_alloc or failslab) fail PERCENT% of the calls made by tasks
# with /proc/PID/make-it-fail set (see as_failing_task) and with MODULE's
# code on their stack, sleeping allocations included, silently (the test
# counts the failures itself). With FAIL_INTERVAL=N, only every Nth such
# call is a candidate (so at 100%, exactly every Nth fails). The same stack
# filter decides which calls /proc/PID/fail-nth counts.
fail_arm() {
	local d=/sys/kernel/debug/$1 range
	[ -d "$d" ] || { echo "no $d in this kernel"; return 1; }
	range=$(module_text "$3") || { echo "no code of module $3 in /proc/kallsyms"; return 1; }
	echo "$1: $2% for make-it-fail tasks with $3 ($range) on the stack"
	echo 0 > "$d/probability"
	echo Y > "$d/task-filter"
	echo N > "$d/ignore-gfp-wait"
	echo 0 > "$d/verbose"
	echo "${FAIL_INTERVAL:-1}" > "$d/interval"
	echo -1 > "$d/times"
	echo 0 > "$d/space"
	echo 32 > "$d/stacktrace-depth"
	# fail_page_alloc leaves order-0 pages alone by default.
	[ ! -e "$d/min-order" ] || echo 0 > "$d/min-order"
	echo "${range% *}" > "$d/require-start"
	echo "${range#* }" > "$d/require-end"
	echo "$2" > "$d/probability"
}

# fail_disarm TYPE...: no more injected failures of these types.
fail_disarm() {
	local t
	for t; do [ ! -d "/sys/kernel/debug/$t" ] || echo 0 > "/sys/kernel/debug/$t/probability"; done
}

# as_failing_task COMMAND...: run COMMAND as a task that fault injection
# with task-filter applies to.
as_failing_task() { sh -c 'echo 1 > /proc/self/make-it-fail && exec "$@"' sh "$@"; }
