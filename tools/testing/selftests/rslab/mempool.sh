#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Selftest for rslab's mempool statistics: the demo pools (one per backend
# kind) appear in the poolinfo table and under pools/<name>/ with their full
# reserve, the two agree, the backend fault knobs round-trip, a waiting
# allocation ends on kill -9, and unloading reports no outstanding element. (The pool's behaviour itself is covered by
# the rslab_mempool KUnit suite.) Runs inside the VM as root; prints KTAP.

source "$(dirname "$0")/ktap_helpers.sh"
ksft_require

KO=$RSLAB_MODDIR/rust/rslab.ko
D=/sys/kernel/debug/rslab
T=$RSLABCTL
DFS=$RSLAB_SELFTESTS/rslab_dfs
MIN_NR=16
POOLS=("pool-cache-256 cache:kmalloc-256" "pool-kmalloc-1000 kmalloc:1000" "pool-pages-1 pages:1")

pool_line() { awk -v n="$1" '$1 == n' $D/poolinfo; }
pool_stat() { awk -v k="$2" '$1 == k { print $2 }' "$D/pools/$1/stats"; }

test_load() {
	local got
	got=$(load_errno "$KO" demo_pools=$MIN_NR)
	[ "$got" = OK ] || { echo "insmod rslab.ko demo_pools=$MIN_NR: $got"; return 1; }
}

test_header() {
	expect_lines 'poolinfo - version: 1
# name +min_nr curr_nr outstanding alloc_backend alloc_reserve waits wakeups failures free_reserve free_backend backend' \
		"$(head -n 2 $D/poolinfo)"
}

test_full_reserves() {
	local p name backend
	for p in "${POOLS[@]}"; do
		read -r name backend <<< "$p"
		local want="^$name +$MIN_NR +$MIN_NR +0 +0 +0 +0 +0 +0 +0 +0 $backend\$"
		[[ $(pool_line "$name") =~ $want ]] || { echo "'$(pool_line "$name")' !~ /$want/"; return 1; }
	done
}

test_stats_agree() {
	local p name backend
	for p in "${POOLS[@]}"; do
		read -r name backend <<< "$p"
		[ "$(pool_stat "$name" name)" = "$name" ] && [ "$(pool_stat "$name" backend)" = "$backend" ] &&
			[ "$(pool_stat "$name" min_nr)" = $MIN_NR ] && [ "$(pool_stat "$name" curr_nr)" = $MIN_NR ] &&
			[ "$(pool_stat "$name" outstanding)" = 0 ] ||
			{ cat "$D/pools/$name/stats"; return 1; }
	done
}

test_fault_knobs() {
	local f=$D/pools/pool-pages-1
	[ "$(write_errno $f/fail_percent 100)" = OK ] && [ "$(cat $f/fail_percent)" = 100 ] &&
		[ "$(write_errno $f/fail_percent 0)" = OK ] && [ "$(write_errno $f/fail_next 2)" = OK ] &&
		[ "$(cat $f/fail_next)" = 2 ] && [ "$(write_errno $f/fail_next 0)" = OK ] &&
		[ "$(write_errno $f/fail_percent 200)" = EINVAL ] && [ "$(write_errno $f/fail_next x)" = EINVAL ]
}

# A pool allocation that waits for a free (its reserve empty, its backend
# failing) waits killably: kill -9 ends the task within a second or two, and
# its file, with the pool and the element it held, is released.
test_kill_waiter() {
	local pid state i
	"$T" batch > /dev/null 2>&1 <<'EOF2' &
pool-create mp-kill pages:0 --min-nr 1
sh echo 100 > /sys/kernel/debug/rslab/pools/mp-kill/fail_percent
alloc 1
alloc 1
EOF2
	pid=$!
	# At least one wait: a wait ends every 5 s to retry the backend (as
	# mempool_alloc()'s io_schedule_timeout()), so on a slow guest the
	# count may be past 1 by the time it is read (seen once: waits 2).
	for i in $(seq 50); do
		state=$(awk '$1 == "State:" { print $2 }' /proc/$pid/status 2>/dev/null)
		[ "$(pool_stat mp-kill waits 2>/dev/null)" -ge 1 ] 2>/dev/null && break
		sleep 0.2
	done
	echo "the second allocation waits (task state $state, waits $(pool_stat mp-kill waits))"
	[ "$(pool_stat mp-kill waits)" -ge 1 ] || { echo "it never waited"; kill -9 $pid; return 1; }
	kill -9 $pid
	for i in $(seq 10); do
		[ -e /proc/$pid ] || break
		sleep 0.2
	done
	if [ -e /proc/$pid ]; then
		echo "kill -9 did not end it within 2 s (state $(awk '$1 == "State:" { print $2 }' /proc/$pid/status))"
		echo 0 > $D/pools/mp-kill/fail_percent
		wait $pid
		return 1
	fi
	wait $pid
	"$DFS" absent mp-kill && "$DFS" device files 0 && "$DFS" device objects 0
}

test_unload() {
	kmsg_mark
	rmmod rslab || return 1
	local log
	log=$(kmsg_since) || return 1
	! grep -E 'outstanding|still allocated|still live' <<< "$log" && [ ! -e $D ]
}

ktap_header
ktap_plan 7
ktap_test "insmod rslab.ko demo_pools=$MIN_NR" test_load
ktap_test "poolinfo starts with its header" test_header
ktap_test "each demo pool is listed with a full reserve and its backend" test_full_reserves
ktap_test "each pool's stats file agrees" test_stats_agree
ktap_test "backend fault knobs round-trip and reject bad input with EINVAL" test_fault_knobs
ktap_test "a pool allocation waiting for a free ends on kill -9, its file released" test_kill_waiter
ktap_test "rmmod reports no outstanding element" test_unload
ktap_finished
