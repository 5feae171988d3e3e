#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Fault injection: allocation failures, from rslab's own knobs and from the
# kernel's fail_page_alloc and failslab (limited to the test's task and to
# calls with rslab.ko on the stack), at 10% and 100%. Every failure must
# reach user space as a clean ENOMEM, rslab's counters must agree with what
# the tool saw, every pool must still serve exactly min_nr elements when
# nothing else can be allocated, and nothing may leak. The kernel's fault
# injection exists only in the debug flavour; on the default kernel those
# cases are skipped. Runs inside the VM as root; prints KTAP.
#
# Reproducible: the fail-nth sweep and the every-Nth-call stress are
# deterministic. The random campaign prints its seed; RSLAB_FAULT_SEED=S
# replays its workload (the kernel's own coin, at 10%, takes no seed: the
# every-Nth-call case is its deterministic twin).

source "$(dirname "$0")/ktap_helpers.sh"
ksft_require

KO=$RSLAB_MODDIR/rust/rslab.ko
D=/sys/kernel/debug/rslab
T=$RSLABCTL
DFS=$RSLAB_SELFTESTS/rslab_dfs
FAILNTH=$RSLAB_SELFTESTS/rslab_failnth
export DFS D
N=4000
MIN_NR=4
SEED=${RSLAB_FAULT_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}

# repeat N LINE: LINE, N times.
repeat() { local i; for ((i = 0; i < $1; i++)); do echo "$2"; done; }

# run_batch [WRAPPER...]: the batch script on stdin, on CPU 0 (so that no
# other CPU's per-CPU cache holds objects the test cannot see), with JSON
# results in OUT.
run_batch() {
	OUT=$("$@" taskset -c 0 "$T" --json batch)
	local rc=$?
	[ $rc -eq 0 ] || { echo "$OUT" | grep -v '"ok":true' | tail -n 5; echo "batch failed ($rc)"; }
	return $rc
}

# count PATTERN: how many result lines of OUT have every word of PATTERN.
count() {
	local l=$OUT w
	for w in $1; do l=$(grep -F -- "$w" <<< "$l"); done
	[ -z "$l" ] && echo 0 || wc -l <<< "$l"
}

# key FILE KEY: the value of KEY in a "key value" file.
key() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

# alloc_run CACHE_SETUP EXACT [WRAPPER...]: create cache fi-c (256-byte
# objects: one order-0 page a slab, so every slab is one page allocation),
# run CACHE_SETUP (a batch line), allocate N objects allowing ENOMEM, and
# snapshot the cache's stats and the device's numbers while the file is
# open. Then: only success or ENOMEM; active_objs and the device's object
# count equal the successes; alloc_failed equals the failures (EXACT=1,
# when only the slab path can fail) or is between 1 and them.
alloc_run() {
	local setup=$1 exact=$2
	shift 2
	# Not a pipeline: run_batch must set OUT in this shell.
	run_batch "$@" < <(
		echo "cache-create fi-c 256"
		echo "$setup"
		repeat $N "alloc 1 --allow ENOMEM"
		echo "sh cat $D/fi-c/stats > /tmp/fi.stats"
		echo "sh cat $D/device > /tmp/fi.device"
	) || return 1
	local ok fail failed active objects
	ok=$(count '"op":"alloc" "ok":true')
	fail=$(count '"op":"alloc" "errno":"ENOMEM"')
	failed=$(key /tmp/fi.stats alloc_failed)
	active=$(key /tmp/fi.stats active_objs)
	objects=$(key /tmp/fi.device objects)
	rm -f /tmp/fi.stats /tmp/fi.device
	echo "$N allocations: $ok ok, $fail ENOMEM; alloc_failed $failed, active_objs $active, device objects $objects"
	[ $((ok + fail)) -eq $N ] || { echo "some allocation failed with another errno"; return 1; }
	[ "$ok" -gt 0 ] && [ "$fail" -gt 0 ] || { echo "expected both successes and failures"; return 1; }
	[ "$active" -eq "$ok" ] && [ "$objects" -eq $((ok + 1)) ] || { echo "counters disagree with the tool"; return 1; }
	if [ "$exact" -eq 1 ]; then
		[ "$failed" -eq "$fail" ] || { echo "alloc_failed != ENOMEM count"; return 1; }
	else
		[ "$failed" -ge 1 ] && [ "$failed" -le "$fail" ] || { echo "alloc_failed out of [1, $fail]"; return 1; }
	fi
	nothing_left
}

# nothing_left: the file's caches, pools and objects are all gone.
nothing_left() {
	"$DFS" absent fi-c && "$DFS" device files 0 && "$DFS" device objects 0 && "$DFS" device bytes 0
}

# pools_run ARM [WRAPPER...]: three pools of MIN_NR (cache, kmalloc and page
# backends) made while nothing fails; then ARM (batch lines) makes every
# allocation fail; the backends' free objects are used up; then each pool
# must serve exactly MIN_NR elements (GFP_NOWAIT) and refuse the next with
# ENOMEM, from its reserve.
pools_run() {
	local arm=$1 p
	shift
	run_batch "$@" < <(
		echo "cache-create fi-c 256"
		echo "pool-create fi-p1 cache:1 --min-nr $MIN_NR"
		echo "pool-create fi-p2 kmalloc:1000 --min-nr $MIN_NR"
		echo "pool-create fi-p3 pages:0 --min-nr $MIN_NR"
		echo "$arm"
		repeat 64 "alloc 1 --nowait --allow ENOMEM"
		repeat 64 "alloc kmalloc --size 1000 --nowait --allow ENOMEM"
		echo "alloc 1 --nowait --expect ENOMEM"
		echo "alloc kmalloc --size 1000 --nowait --expect ENOMEM"
		for p in 2 3 4; do
			repeat $MIN_NR "alloc $p --nowait"
			echo "alloc $p --nowait --expect ENOMEM"
		done
		for p in 1 2 3; do
			echo "sh \$DFS pool fi-p$p curr_nr 0"
			echo "sh \$DFS pool fi-p$p alloc_reserve $MIN_NR"
		done
	)
	local rc=$?
	# The cache and pool go with the file; the shared kmalloc class stays.
	echo 0 > "$D/kmalloc-1024/fail_percent"
	[ $rc -eq 0 ] || return 1
	echo "each pool served $MIN_NR elements from its reserve, then ENOMEM"
	"$DFS" absent fi-p1 && "$DFS" absent fi-p2 && "$DFS" absent fi-p3 && nothing_left
}

KNOBS_100="sh echo 100 > \$D/fi-c/fail_percent; echo 100 > \$D/kmalloc-1024/fail_percent; echo 100 > \$D/pools/fi-p3/fail_percent"

test_load() {
	local got
	got=$(load_errno "$KO")
	[ "$got" = OK ] || { echo "insmod rslab.ko: $got"; return 1; }
	kmemleak_forget
}

test_knob_10() { alloc_run "sh echo 10 > \$D/fi-c/fail_percent" 1; }
test_knob_100() { pools_run "$KNOBS_100"; }

# kernel_fail TYPES PERCENT COMMAND...: the kernel's fault injection TYPES
# failing PERCENT% of rslab's calls, armed only around COMMAND.
kernel_fail() {
	local types=$1 percent=$2 t
	shift 2
	for t in $types; do fail_arm "$t" "$percent" rslab || { fail_disarm $types; return 1; }; done
	"$@"
	local rc=$?
	fail_disarm $types
	return $rc
}

# kernel_fail_every N TYPES COMMAND...: as kernel_fail, failing every Nth
# call instead of at random.
kernel_fail_every() {
	local n=$1
	shift
	FAIL_INTERVAL=$n kernel_fail "$1" 100 "${@:2}"
}

test_page_alloc_10() { kernel_fail fail_page_alloc 10 alloc_run "" 0 as_failing_task; }
# Armed at 0% so that the pools are made while nothing fails; the batch
# turns it up to 100% after that.
test_page_alloc_100() {
	kernel_fail fail_page_alloc 0 pools_run "sh echo 100 > /sys/kernel/debug/fail_page_alloc/probability" as_failing_task
}

# stress_refused [WRAPPER...] -- STRESS_ARGS...: rslabctl stress, which
# must see refusals (ENOMEM) and nothing else go wrong, and leave nothing.
stress_refused() {
	local out rc
	out=$("$@" --json)
	rc=$?
	echo "$out"
	[ $rc -eq 0 ] || return 1
	grep -q '"mismatches":0' <<< "$out" && grep -q '"errors":0' <<< "$out" &&
		! grep -q '"refused":0[,}]' <<< "$out" || { echo "expected refusals and nothing else"; return 1; }
	nothing_left
}

# Random: the kernel's 10% coin, with a seeded workload on every CPU.
test_failslab_stress() {
	echo "seed $SEED (replay the workload: RSLAB_FAULT_SEED=$SEED)"
	kernel_fail "fail_page_alloc failslab" 10 \
		stress_refused as_failing_task "$T" stress --seconds 5 --seed "$SEED"
}

# Deterministic: every 101st allocation with rslab on the stack fails, for
# one thread on CPU 0 that makes a fixed sequence of calls. (Rarer than
# the set-up of a pool's 8 elements, which is retried until it succeeds.)
test_failslab_every_nth() {
	kernel_fail_every 101 "fail_page_alloc failslab" \
		stress_refused as_failing_task taskset -c 0 "$T" stress --threads 1 --ops 3000 --seed 11
}

# Deterministic: each allocation site of each device call fails once, in
# turn (the kernel's fail-nth); only ENOMEM, nothing changed, nothing left.
test_fail_nth() { kernel_fail "fail_page_alloc failslab" 0 "$FAILNTH"; }

test_no_leak() {
	rmmod rslab || return 1
	kmemleak_scan
}

# kernel_case DESCRIPTION FUNCTION: a case that needs the kernel's fault
# injection, skipped where the kernel has none.
kernel_case() {
	if [ -d /sys/kernel/debug/fail_page_alloc ] && [ -d /sys/kernel/debug/failslab ]; then
		ktap_test "$@"
	else
		ktap_skip "$1" "no fail_page_alloc/failslab in this kernel (debug flavour only)"
	fi
}

ktap_header
ktap_plan 9
ktap_test "insmod rslab.ko" test_load
ktap_test "rslab knob 10%: only ENOMEM, counters match the tool exactly" test_knob_10
ktap_test "rslab knobs 100%: each pool serves exactly min_nr, then ENOMEM" test_knob_100
kernel_case "fail_page_alloc 10% (this task, rslab on the stack): only ENOMEM, counters match" test_page_alloc_10
kernel_case "fail_page_alloc 100%: each pool serves exactly min_nr, then ENOMEM" test_page_alloc_100
kernel_case "fail-nth: every allocation site of every device call fails once: ENOMEM, nothing changed or left" test_fail_nth
kernel_case "fail_page_alloc+failslab every 101st call: 3000-op stress, only ENOMEM refusals, no mismatch" test_failslab_every_nth
kernel_case "fail_page_alloc+failslab 10%: 5 s stress (seed $SEED), only ENOMEM refusals, no mismatch" test_failslab_stress
ktap_test "rmmod; kmemleak finds nothing" test_no_leak
ktap_finished
