#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Fuzz: `rslabctl fuzz` sends seeded random ioctls (valid, malformed and
# foreign commands, hostile fields and pointers) on one file, checks its
# model of the file against the module (live objects readable, freed ones
# ENOENT, active_objs), and after close that nothing is owned. Runs every
# seed of the corpus (fuzz-corpus), then RSLAB_FUZZ_ITERATIONS (default
# 3000; `make fuzz` sends 100000) calls with seed RSLAB_FUZZ_SEED (default
# 3, so that `make check` is reproducible; `make fuzz` picks a new one each
# run and prints it, so that a failure can be replayed). The
# kernel log is judged by dmesg_clean.sh. Runs inside the VM as root;
# prints KTAP.

source "$(dirname "$0")/ktap_helpers.sh"
ksft_require

KO=$RSLAB_MODDIR/rust/rslab.ko
T=$RSLABCTL
DFS=$RSLAB_SELFTESTS/rslab_dfs
CORPUS=$(dirname "$0")/fuzz-corpus
ITERATIONS=${RSLAB_FUZZ_ITERATIONS:-3000}
SEED=${RSLAB_FUZZ_SEED:-3}

nothing_owned() {
	"$DFS" device files 0 && "$DFS" device objects 0 && "$DFS" device bytes 0
}

# fuzz SEED ITERATIONS: one fuzz run, then nothing may be left.
fuzz() {
	echo "rslabctl fuzz --seed $1 --iterations $2"
	"$T" fuzz --seed "$1" --iterations "$2" && nothing_owned
}

test_load() {
	local got
	got=$(load_errno "$KO")
	[ "$got" = OK ] || { echo "insmod rslab.ko: $got"; return 1; }
}

test_unload() { rmmod rslab; }

# shrink_all: every rslab cache gives back its parked objects and empty
# slabs, so that what the module holds is what it needs.
shrink_all() {
	local f
	for f in /sys/kernel/debug/rslab/*/shrink; do echo 1 > "$f"; done
}

# THREADS threads on one file at once (seeds SEED to SEED + THREADS - 1,
# the same calls as the single-threaded runs but racing on one handle
# table), while another task keeps trying to unload the module, which must
# refuse (files are open). Afterwards nothing is owned, and once the
# caches are shrunk the free memory is back within 4 MiB of its start.
THREADS=4
test_threads() {
	local before after rc stop=/tmp/rslab-fuzz-stop
	shrink_all
	before=$("$DFS" free-kb)
	# An open debugfs file pins the module from the start (an open device
	# file would too, but would count as a file the fuzzer did not close).
	exec 3< /sys/kernel/debug/rslab/device || return 1
	rm -f $stop
	(
		while [ ! -e $stop ]; do
			! rmmod rslab 2> /dev/null || { echo "rmmod succeeded with files open"; exit 1; }
			sleep 0.2
		done
	) &
	local unloader=$!
	echo "rslabctl fuzz --threads $THREADS --seed $SEED --iterations $((ITERATIONS / THREADS))"
	"$T" fuzz --threads $THREADS --seed "$SEED" --iterations $((ITERATIONS / THREADS))
	rc=$?
	touch $stop
	wait $unloader || rc=1
	rm -f $stop
	exec 3>&-
	module_loaded rslab && nothing_owned || return 1
	shrink_all
	after=$("$DFS" free-kb)
	echo "free memory: $before kB before, $after kB after"
	[ $rc -eq 0 ] && [ $((before - after)) -le 4096 ]
}

mapfile -t seeds < <(grep -Ev '^[[:space:]]*(#|$)' "$CORPUS" | awk '{ print $1, $2 }')

ktap_header
ktap_plan $(( ${#seeds[@]} + 4 ))
ktap_test "insmod rslab.ko" test_load
for s in "${seeds[@]}"; do
	ktap_test "corpus seed ${s% *}: ${s#* } calls, no violation, nothing left" fuzz $s
done
ktap_test "seed $SEED: $ITERATIONS calls, no violation, nothing left" fuzz "$SEED" "$ITERATIONS"
ktap_test "$THREADS threads on one file while rmmod is tried: no violation, nothing left, memory back" test_threads
ktap_test "rmmod rslab" test_unload
ktap_finished
