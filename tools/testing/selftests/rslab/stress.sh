#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Stress: `rslabctl stress` on every vCPU (one thread and one open file
# each), allocating, writing, verifying and freeing across caches, pools
# and kmalloc. It must end with no pattern mismatch and no error, and once
# every file is closed and the kmalloc classes are shrunk, rslab must hold
# no page at all, CPU 1 having gone offline and back twice meanwhile (a
# dead CPU's sheaves must go back to the slabs, as SLUB's slub_cpu_dead()
# does). RSLAB_STRESS_SECONDS sets the length (default 10; `make stress`
# runs 60 on the debug kernel). First, memory pressure must take back what
# the caches keep for reuse (their shrinker). Runs inside the VM as root;
# prints KTAP.

source "$(dirname "$0")/ktap_helpers.sh"
ksft_require

KO=$RSLAB_MODDIR/rust/rslab.ko
D=/sys/kernel/debug/rslab
T=$RSLABCTL
DFS=$RSLAB_SELFTESTS/rslab_dfs
SECONDS_=${RSLAB_STRESS_SECONDS:-10}

# pages_held: pages in all of rslab's slabs (slabinfo: num_slabs times
# pagesperslab).
pages_held() { awk 'NR > 2 { p += $15 * $6 } END { print p + 0 }' "$D/slabinfo"; }

test_load() {
	local got
	got=$(load_errno "$KO")
	[ "$got" = OK ] || { echo "insmod rslab.ko: $got"; return 1; }
	echo "pages held at load: $(pages_held)"
}

CPU1=/sys/devices/system/cpu/cpu1/online

# cpu1 0|1: take CPU 1 offline or bring it back.
cpu1() { echo "$1" > $CPU1; }

# While the stress runs, CPU 1 goes offline and comes back twice: a dead
# CPU's sheaves must go back to the slabs (checked after the stress, when
# every page must be given back).
test_stress() {
	local out toggles=0
	[ -w $CPU1 ] || { echo "no CPU 1 to take offline"; return 1; }
	"$T" stress --seconds "$SECONDS_" --seed "${RSLAB_STRESS_SEED:-3}" --json > /tmp/stress.out &
	local pid=$! i
	for i in 1 2; do
		sleep 1
		cpu1 0 && sleep 1 && cpu1 1 && toggles=$((toggles + 1))
	done
	wait $pid
	local rc=$?
	out=$(cat /tmp/stress.out)
	rm -f /tmp/stress.out
	echo "$out"
	echo "CPU 1 went offline and back $toggles times during the stress"
	[ $toggles -eq 2 ] || return 1
	[ $rc -eq 0 ] || return 1
	grep -q '"failed_threads":0' <<< "$out" && grep -q '"mismatches":0' <<< "$out" &&
		grep -q '"errors":0' <<< "$out" && ! grep -q '"ops":0[,}]' <<< "$out"
}

test_pages_return() {
	"$DFS" device files 0 && "$DFS" device objects 0 && "$DFS" device bytes 0 || return 1
	grep -q '^stress-' "$D/slabinfo" && { echo "stress caches are still registered"; return 1; }
	local c
	for c in "$D"/kmalloc-*/shrink; do echo 1 > "$c"; done
	local held
	held=$(pages_held)
	echo "pages held after close and shrink: $held"
	[ "$held" -eq 0 ] || { awk 'NR > 2 && $15 > 0' "$D/slabinfo"; return 1; }
}

# Objects freed on CPU 1 wait in its sheaf; once CPU 1 is dead they must be
# back in their slabs, so that a shrink frees every page.
test_cpu_offline() {
	local held
	taskset -c 1 "$T" batch > /dev/null < <(
		for i in $(seq 16); do echo "alloc kmalloc --size 2048"; done
		for i in $(seq 16); do echo "free $i"; done
	) || return 1
	held=$(awk '$1 == "kmalloc-2048" { print $15 * $6 }' "$D/slabinfo")
	echo "pages of kmalloc-2048 after the objects went back to CPU 1's sheaf: $held"
	[ "$held" -gt 0 ] || { echo "expected CPU 1's sheaf to hold the slabs"; return 1; }
	cpu1 0 || return 1
	echo 1 > "$D/kmalloc-2048/shrink"
	held=$(awk '$1 == "kmalloc-2048" { print $15 * $6 }' "$D/slabinfo")
	cpu1 1 || return 1
	echo "after CPU 1 went offline and a shrink: $held"
	[ "$held" -eq 0 ]
}

# stat_of CACHE FIELD: a number of CACHE's stats file.
stat_of() { awk -v k="$2" '$1 == k { print $2 }' "$D/$1/stats"; }

# Memory pressure, with no shrink written: reclaim runs every registered
# shrinker (drop_caches 2 runs them as kswapd and direct reclaim do, at
# full force), and rslab's must give back kmalloc-256's parked objects and
# empty slabs, min_partial ones included.
test_memory_pressure() {
	local depot empty
	taskset -c 0 "$T" batch > /dev/null < <(
		for i in $(seq 600); do echo "alloc kmalloc --size 256"; done
		for i in $(seq 600); do echo "free $i"; done
	) || return 1
	depot=$(stat_of kmalloc-256 depot_objs) empty=$(stat_of kmalloc-256 empty_slabs)
	echo "kmalloc-256 after 600 frees: $depot parked objects, $empty empty slabs"
	[ "$depot" -gt 0 ] && [ "$empty" -gt 0 ] || { echo "expected both to hold memory"; return 1; }
	echo 2 > /proc/sys/vm/drop_caches || return 1
	depot=$(stat_of kmalloc-256 depot_objs) empty=$(stat_of kmalloc-256 empty_slabs)
	echo "after reclaim: $depot parked objects, $empty empty slabs"
	[ "$depot" -eq 0 ] && [ "$empty" -eq 0 ]
}

test_unload() { rmmod rslab; }

ktap_header
ktap_plan 6
ktap_test "insmod rslab.ko" test_load
ktap_test "memory pressure (every shrinker run) gives back parked objects and empty slabs, no shrink" test_memory_pressure
ktap_test "a dead CPU's sheaves go back to the slabs: shrink frees every page" test_cpu_offline
ktap_test "stress: ${SECONDS_} s on all $(nproc) CPUs, CPU 1 offline and back twice, no mismatch, error or failed thread" test_stress
ktap_test "every file closed and kmalloc shrunk: 0 pages held" test_pages_return
ktap_test "rmmod rslab" test_unload
ktap_finished
