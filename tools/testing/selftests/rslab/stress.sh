#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Stress: `rslabctl stress` on every vCPU (one thread and one open file
# each), allocating, writing, verifying and freeing across caches, pools
# and kmalloc. It must end with no pattern mismatch and no error, and once
# every file is closed and the kmalloc classes are shrunk, rslab must hold
# no page at all. RSLAB_STRESS_SECONDS sets the length (default 10; `make
# stress` runs 60 on the debug kernel). Runs inside the VM as root; prints
# KTAP.

source "$(dirname "$0")/ktap_helpers.sh"

KO=$RSLAB_MODDIR/rust/rslab.ko
D=/sys/kernel/debug/rslab
T=$RSLAB_TREE/tools/rslabctl/target/release/rslabctl
DFS=$RSLAB_TREE/tools/testing/selftests/rslab/rslab_dfs
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

test_stress() {
	local out
	out=$("$T" stress --seconds "$SECONDS_" --seed "${RSLAB_STRESS_SEED:-3}" --json)
	local rc=$?
	echo "$out"
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

test_unload() { rmmod rslab; }

ktap_header
ktap_plan 4
ktap_test "insmod rslab.ko" test_load
ktap_test "stress: ${SECONDS_} s on all $(nproc) CPUs, no mismatch, error or failed thread" test_stress
ktap_test "every file closed and kmalloc shrunk: 0 pages held" test_pages_return
ktap_test "rmmod rslab" test_unload
ktap_finished
