#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Selftest for rslab's mempool statistics: the demo pools (one per backend
# kind) appear in the poolinfo table and under pools/<name>/ with their full
# reserve, the two agree, the backend fault knobs round-trip, and unloading
# reports no outstanding element. (The pool's behaviour itself is covered by
# the rslab_mempool KUnit suite.) Runs inside the VM as root; prints KTAP.

source "$(dirname "$0")/ktap_helpers.sh"

KO=$RSLAB_MODDIR/rust/rslab.ko
D=/sys/kernel/debug/rslab
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

test_unload() {
	kmsg_mark
	rmmod rslab || return 1
	local log
	log=$(kmsg_since) || return 1
	! grep -E 'outstanding|still allocated|still live' <<< "$log" && [ ! -e $D ]
}

ktap_header
ktap_plan 6
ktap_test "insmod rslab.ko demo_pools=$MIN_NR" test_load
ktap_test "poolinfo starts with its header" test_header
ktap_test "each demo pool is listed with a full reserve and its backend" test_full_reserves
ktap_test "each pool's stats file agrees" test_stats_agree
ktap_test "backend fault knobs round-trip and reject bad input with EINVAL" test_fault_knobs
ktap_test "rmmod reports no outstanding element" test_unload
ktap_finished
