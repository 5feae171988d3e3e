#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Smoke test of make bench's harness (Documentation/rslab-bench.rst): the
# in-kernel benchmark of rslab_bench.ko (rslab built with the benchmark;
# rslab.ko has none) behind /sys/kernel/debug/rslab/bench runs every case
# with a few thousand operations and writes a valid table: every case,
# size and side present once, every time positive and finite, the memory
# rows present (the kernel's read from /sys/kernel/slab of the caches the
# module holds for them, bench_table.sh, which "release" frees); bad
# commands are refused with EINVAL. The numbers are not judged. Runs inside
# the VM as root; prints KTAP.

source "$(dirname "$0")/ktap_helpers.sh"
source "$(dirname "$0")/bench_table.sh"
ksft_require

PRODUCT=$RSLAB_MODDIR/rust/rslab.ko
KO=$RSLAB_MODDIR/rust/rslab_bench.ko
F=/sys/kernel/debug/rslab/bench
# The run's whole table (bench_table), kept for the tests that read it.
TABLE=$(mktemp /tmp/rslab-bench.XXXXXX)
trap 'rm -f "$TABLE"' EXIT
HEADER=case,pattern,size,side,ops,min,median,max,unit
SIZES="64 256 1024"
CACHE="pair out256 out10000 bulk16 bulk128 concurrent remote"
KMALLOC="pair out256 out10000 concurrent remote"
MEMPOOL="backend reserve"
MEMORY="pages_held pages_with_meta objs_per_slab loss_bytes"
# The run: "smoke" (2000 ops, 2 reps, 5000 objects). Under the debug
# kernel's sanitizers that took 160 s of the suite under TCG; there the same
# code runs with fewer operations (out10000 still makes 10000 a round).
if have_kmemleak; then
	OPS=500 REPS=1 OBJECTS=500
	RUN="ops=$OPS reps=$REPS objects=$OBJECTS"
else
	OPS=2000 REPS=2 OBJECTS=5000
	RUN=smoke
fi

# The product module carries no benchmark: no bench file, no bench code.
test_product_has_none() {
	local got rc=0
	got=$(load_errno "$PRODUCT")
	[ "$got" = OK ] || { echo "insmod rslab.ko: $got"; return 1; }
	[ -d /sys/kernel/debug/rslab ] || { echo "rslab.ko made no debugfs/rslab"; rc=1; }
	[ ! -e $F ] || { echo "rslab.ko has $F"; rc=1; }
	rmmod rslab || return 1
	return $rc
}

test_load() {
	local got
	got=$(load_errno "$KO")
	[ "$got" = OK ] || { echo "insmod rslab_bench.ko: $got"; return 1; }
}

test_no_run_yet() {
	expect_lines "# rslab-bench v2: no run yet
$HEADER" "$(cat $F)"
}

test_bad_input() {
	local cmd got rc=0
	for cmd in bogus ops=0 ops=x reps=0 reps=26 objects=0 case=nope "ops=1000 speed=9" run=1; do
		got=$(write_errno $F "$cmd")
		[ "$got" = EINVAL ] || { echo "'$cmd': $got, not EINVAL"; rc=1; }
	done
	return $rc
}

test_smoke_run() {
	local got
	got=$(write_errno $F "$RUN")
	[ "$got" = OK ] || { echo "'$RUN': $got"; dmesg | tail -n 20; return 1; }
	bench_table $F > "$TABLE"
}

# expected_rows: every "case,pattern,size,side" the table must hold.
expected_rows() {
	local case patterns p size side
	for case in cache kmalloc mempool memory; do
		case $case in
		cache) patterns=$CACHE ;;
		kmalloc) patterns=$KMALLOC ;;
		mempool) patterns=$MEMPOOL ;;
		memory) patterns=$MEMORY ;;
		esac
		for p in $patterns; do
			# A remote free needs two online CPUs.
			[ "$p" = remote ] && [ "$(nproc)" -lt 2 ] && continue
			for size in $SIZES; do
				for side in rslab kernel; do
					echo "$case,$p,$size,$side"
				done
				# rslab with its default sheaf capacity too.
				case $case in cache | kmalloc) echo "$case,$p,$size,rslab_default" ;; esac
			done
		done
	done
}

# rows FILE: the table's data rows (no comment lines, no column header).
rows() { grep -v '^#' "$1" | tail -n +2; }

# The settings, each size's sheaf capacities (rslab's side equal to SLUB's,
# which bench_table checked against /sys/kernel/slab, its default apart),
# then the column header.
test_header() {
	local size want="# rslab-bench v2 ops=$OPS reps=$REPS objects=$OBJECTS cpus=[0-9]+"
	for size in $SIZES; do
		want+=$'\n'"# sheaf_capacity,$size,rslab=[0-9]+,kernel=[0-9]+,rslab_default=[0-9]+"
	done
	expect_lines "$want
$HEADER" "$(head -n 5 "$TABLE")" || return 1
	grep '^# sheaf_capacity,' "$TABLE" | tr =, '  ' |
		awk '$5 != $7 { print "rslab is not at SLUB capacity: " $0; bad = 1 } END { exit bad }'
}

# ... and a "# node_locks,<case>,<pattern>,<size>,<side>,<per op>" line
# for each rslab side of the cache and kmalloc groups, a decimal with four
# places.
test_every_row_once() {
	local want got
	want=$(expected_rows | sort)
	got=$(rows "$TABLE" | cut -d, -f1-4 | sort)
	[ "$want" = "$got" ] || { diff <(echo "$want") <(echo "$got") | head -n 20; return 1; }
	want=$(expected_rows | grep -E '^(cache|kmalloc),.*,rslab(_default)?$' | sort)
	got=$(grep '^# node_locks,' "$TABLE" | cut -d, -f2-5 | sort)
	[ "$want" = "$got" ] || { echo "node_locks lines:"; diff <(echo "$want") <(echo "$got") | head -n 20; return 1; }
	! grep '^# node_locks,' "$TABLE" | grep -vE ',[0-9]+\.[0-9]{4}$' || { echo "bad node_locks value"; return 1; }
}

# Times: positive decimals in ns/op, min <= median <= max, with ops at
# least half of $OPS (a whole number of rounds may be a little less, never
# below one round); memory rows: whole numbers, the same three times, pages
# and objects positive, with ops the live objects.
test_numbers_valid() {
	rows "$TABLE" | awk -F, -v ops=$OPS -v objects=$OBJECTS '
	function bad(why) { print "bad row (" why "): " $0; fails++ }
	NF != 9 { bad("fields"); next }
	$9 == "ns/op" {
		if ($6 !~ /^[0-9]+\.[0-9][0-9][0-9]$/ || $7 !~ /^[0-9]+\.[0-9][0-9][0-9]$/ ||
			$8 !~ /^[0-9]+\.[0-9][0-9][0-9]$/) bad("format")
		else if ($6 + 0 <= 0 || $7 + 0 < $6 + 0 || $8 + 0 < $7 + 0) bad("min/median/max")
		if ($5 < ops / 2) bad("ops")
		next
	}
	$1 == "memory" {
		if ($2 == "pages_held" || $2 == "pages_with_meta") pages[$2, $3, $4] = $6
		if ($6 !~ /^[0-9]+$/ || $6 != $7 || $6 != $8) bad("value")
		if ($5 != objects) bad("objects")
		if ($9 == "pages" && $6 <= 0) bad("pages")
		if ($9 == "objects" && $6 <= 0) bad("objects per slab")
		if ($9 != "pages" && $9 != "objects" && $9 != "bytes") bad("unit")
		next
	}
	{ bad("unit") }
	END {
		# The slab metadata adds pages for rslab, none for SLUB (struct page).
		split("64 256 1024", sizes, " ")
		for (i in sizes) {
			s = sizes[i]
			if (pages["pages_with_meta", s, "rslab"] <= pages["pages_held", s, "rslab"]) {
				print "rslab " s " B: pages_with_meta not above pages_held"; fails++
			}
			if (pages["pages_with_meta", s, "kernel"] != pages["pages_held", s, "kernel"]) {
				print "kernel " s " B: pages_with_meta differs from pages_held"; fails++
			}
		}
		exit fails > 0
	}'
}

# The latency group: for each size a "# latency_cost" line per side (no
# cache's histograms on, another's on, its own on), decimals with min <=
# median <= max; and the "# latency_hist" lines of the "on" runs count
# every one of their operations: an alloc and a free per pair, the warm-up
# run included. What timing costs is make bench's to say: on plain TCG,
# with make check's three VMs at once, a smoke run's "on" once read below
# its "off" (773 against 906 ns at 1024 B).
test_latency_group() {
	awk -F, -v sizes="$SIZES" -v reps=$REPS '
	function bad(why) { print "bad (" why "): " $0; fails++ }
	$1 == "# latency_cost" {
		if (NF != 7) { bad("fields"); next }
		if ($3 != "off" && $3 != "key_on" && $3 != "on") bad("side")
		if ($5 + 0 <= 0 || $6 + 0 < $5 + 0 || $7 + 0 < $6 + 0) bad("min/median/max")
		min[$2, $3] = $5; ops[$2, $3] = $4; seen[$2, $3]++
	}
	$1 == "# latency_hist" {
		if (NF != 5 || $4 !~ /^[0-9]+$/ || $5 !~ /^[1-9][0-9]*$/) { bad("hist"); next }
		if ($3 !~ /^(alloc|free)_(fast|slow)$/) bad("column")
		count[$2] += $5
	}
	END {
		n = split(sizes, s, " ")
		for (i = 1; i <= n; i++) {
			z = s[i]
			if (seen[z, "off"] != 1 || seen[z, "key_on"] != 1 || seen[z, "on"] != 1) {
				print z " B: not one cost line per side"; fails++
			}
			want = 2 * ops[z, "on"] * (reps + 1)
			if (count[z] != want) { print z " B: histograms count " count[z] ", want " want; fails++ }
		}
		exit fails > 0
	}' "$TABLE"
}

# The memory rows' SLUB caches stay, with their objects, until "release"
# (or the next run), which frees them: their sysfs directories go.
test_release() {
	local size d rc=0
	for size in $SIZES; do
		d=/sys/kernel/slab/rslab-bench-memory-held-$size
		[ -d $d ] || { echo "no $d after the run"; rc=1; }
	done
	[ "$(write_errno $F release)" = OK ] || { echo "release refused"; return 1; }
	for size in $SIZES; do
		d=/sys/kernel/slab/rslab-bench-memory-held-$size
		[ ! -e $d ] || { echo "$d still there after release"; rc=1; }
	done
	[ "$(write_errno $F release)" = OK ] || { echo "a second release refused"; rc=1; }
	return $rc
}

test_case_filter() {
	local got
	got=$(write_errno $F "ops=1000 reps=1 case=mempool")
	[ "$got" = OK ] || { echo "case=mempool: $got"; return 1; }
	[ "$(rows $F | cut -d, -f1 | sort -u)" = mempool ] || { cat $F; return 1; }
}

# A whole benchmark can take hours (up to 10^7 operations a run), all in
# one write(): kill -9 must end it at the next run (a few seconds), not at
# the end, and the file must work again after. Fewer operations under the
# debug kernel's sanitizers, whose runs are slower.
test_killable() {
	local ops=10000000 pid start got cmd
	have_kmemleak && ops=1000000
	sh -c "echo 'ops=$ops reps=20 case=cache' > $F" &
	pid=$!
	sleep 2
	kill -0 $pid 2> /dev/null || { echo "the writer was not running after 2 s"; return 1; }
	# A second writer, a run or a release, is refused while it runs.
	for cmd in release smoke; do
		got=$(write_errno $F $cmd)
		[ "$got" = EBUSY ] || { echo "'$cmd' during a run: $got, not EBUSY"; kill -9 $pid; return 1; }
	done
	start=$SECONDS
	kill -9 $pid
	wait $pid 2> /dev/null
	echo "the writer of ops=$ops ended $((SECONDS - start)) s after kill -9"
	[ $((SECONDS - start)) -le 60 ] || return 1
	got=$(write_errno $F "ops=1000 reps=1 case=mempool")
	[ "$got" = OK ] || { echo "a run after the kill: $got"; return 1; }
}

# rmmod with the memory rows' SLUB caches still held (no "release"): the
# module frees their objects, then destroys them, with nothing reported
# (SLUB warns of a cache destroyed with objects left) and nothing left.
test_unload() {
	local size got log rc=0
	got=$(write_errno $F "ops=100 reps=1 objects=100 case=memory")
	[ "$got" = OK ] || { echo "case=memory: $got"; return 1; }
	[ -d /sys/kernel/slab/rslab-bench-memory-held-64 ] || { echo "no held cache before rmmod"; return 1; }
	kmsg_mark
	rmmod rslab_bench || return 1
	module_loaded rslab_bench && { echo "still loaded"; return 1; }
	for size in $SIZES; do
		[ ! -e /sys/kernel/slab/rslab-bench-memory-held-$size ] ||
			{ echo "rslab-bench-memory-held-$size left after rmmod"; rc=1; }
	done
	log=$(kmsg_since) || return 1
	if grep -E 'BUG|WARNING|objects remaining|rslab-bench' <<< "$log"; then
		echo "rmmod reported the above"
		rc=1
	fi
	return $rc
}

ktap_header
ktap_plan 13
ktap_test "rslab.ko has no bench file" test_product_has_none
ktap_test "load rslab_bench.ko" test_load
ktap_test "bench reads as an empty table before a run" test_no_run_yet
ktap_test "bad commands are refused with EINVAL" test_bad_input
ktap_test "the run '$RUN' succeeds" test_smoke_run
ktap_test "the settings line and column header" test_header
ktap_test "every case, size and side appears exactly once" test_every_row_once
ktap_test "every number is valid" test_numbers_valid
ktap_test "the latency group: each side's cost, every timed operation counted" test_latency_group
ktap_test "release frees the memory rows' kernel caches" test_release
ktap_test "case= runs one group only" test_case_filter
ktap_test "kill -9 ends a long benchmark at its next run; the file works again" test_killable
ktap_test "unload with the memory rows' caches still held frees them, reporting nothing" test_unload
ktap_finished
