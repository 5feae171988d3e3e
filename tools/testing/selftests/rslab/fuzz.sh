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

KO=$RSLAB_MODDIR/rust/rslab.ko
T=$RSLAB_TREE/tools/rslabctl/target/release/rslabctl
DFS=$RSLAB_TREE/tools/testing/selftests/rslab/rslab_dfs
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

mapfile -t seeds < <(grep -Ev '^[[:space:]]*(#|$)' "$CORPUS" | awk '{ print $1, $2 }')

ktap_header
ktap_plan $(( ${#seeds[@]} + 3 ))
ktap_test "insmod rslab.ko" test_load
for s in "${seeds[@]}"; do
	ktap_test "corpus seed ${s% *}: ${s#* } calls, no violation, nothing left" fuzz $s
done
ktap_test "seed $SEED: $ITERATIONS calls, no violation, nothing left" fuzz "$SEED" "$ITERATIONS"
ktap_test "rmmod rslab" test_unload
ktap_finished
