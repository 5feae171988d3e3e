#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Selftest for /dev/rslab and rslabctl: every operation through the tool,
# checked against debugfs while the file is open; every bad input with its
# exact errno and nothing changed; quotas; everything released on close;
# the top view. (Fuzz, stress and unload safety have scripts of their own.)
# Runs inside the VM as root; prints KTAP.

source "$(dirname "$0")/ktap_helpers.sh"
ksft_require

KO=$RSLAB_MODDIR/rust/rslab.ko
D=/sys/kernel/debug/rslab
T=$RSLABCTL
SYS=$RSLAB_SELFTESTS/rslab_sys
export DFS=$RSLAB_SELFTESTS/rslab_dfs SYS T

# batch: run the rslabctl batch script on stdin, keeping its output in OUT.
batch() {
	OUT=$("$T" batch 2>&1)
	local rc=$?
	echo "$OUT"
	return $rc
}

# has LINE: OUT has exactly this line.
has() { grep -qxF -- "$1" <<< "$OUT" || { echo "missing line: $1"; return 1; }; }

nothing_owned() {
	"$DFS" device files 0 && "$DFS" device objects 0 && "$DFS" device bytes 0
}

test_load() {
	local got
	got=$(load_errno "$KO" "$@")
	[ "$got" = OK ] || { echo "insmod rslab.ko $*: $got"; return 1; }
}

test_node() {
	local got
	got=$(stat -c '%F %a %U:%G' /dev/rslab)
	[ "$got" = "character special file 600 root:root" ] || { echo "/dev/rslab: $got"; return 1; }
}

test_info() {
	OUT=$("$T" info) || return 1
	expect_lines 'info: version 1
kmalloc_classes 13
max_objects 65536
max_bytes 67108864
max_total_bytes 268435456
max_object_size 1048576' "$OUT"
}

test_cache_ops() {
	batch <<'EOF' || return 1
cache-create dev-c1 100 --flags poison,red-zone
sh $DFS slab dev-c1 4 120
sh $DFS stat dev-c1 flags 6
alloc 1
write 2 hello --offset 3
read 2 10
read 2 2 --offset 98
sh $DFS stat dev-c1 active_objs 1
cache-info 1
bulk-alloc 1 5
sh $DFS stat dev-c1 active_objs 6
bulk-free 1 3 4 5 6 7
free 2
sh $DFS stat dev-c1 active_objs 0
shrink 1
sh $DFS stat dev-c1 num_slabs 0
cache-destroy 1
sh $DFS absent dev-c1
sh $DFS device objects 0
EOF
	has "cache-create: id 1" && has "alloc: id 2" && has "read: 00000068656c6c6f0000" &&
		has "read: 0000" && has "bulk-alloc: ids 3 4 5 6 7" && has "bulk-free: ok" && has "active_objs 1" &&
		has "cache-info: object_size 100" && has "shrink: freed 1" && has "cache-destroy: ok"
}

test_kmalloc_ops() {
	batch <<'EOF'
alloc kmalloc --size 300
sh $DFS charged obj:kmalloc-512 handle
write 1 ff00ff --hex --offset 297
read 1 3 --offset 297
alloc kmalloc --size 100000
sh $DFS charged obj:kmalloc-512 pages:5 2*handle
write 2 end --offset 99997
read 2 3 --offset 99997 --text
free 1
free 2
sh $DFS device bytes 0
EOF
	[ $? -eq 0 ] && has "read: ff00ff" && has "read: end"
}

test_pool_ops() {
	batch <<'EOF' || return 1
cache-create dev-pc 200
pool-create dev-p1 cache:1 --min-nr 4
pool-create dev-p2 kmalloc:1000 --min-nr 3
pool-create dev-p3 pages:2 --min-nr 2
sh $DFS pool dev-p1 curr_nr 4
sh $DFS pool dev-p2 backend kmalloc:1000
sh $DFS pool dev-p3 backend pages:2
sh $DFS stat dev-pc active_objs 4
alloc 2
sh $DFS pool dev-p1 outstanding 1
pool-info 2
write 5 pool --offset 196
read 5 4 --offset 196 --text
alloc 4
write 6 page --offset 16380
read 6 4 --offset 16380 --text
pool-resize 3 6
sh $DFS pool dev-p2 min_nr 6
sh $DFS pool dev-p2 curr_nr 6
pool-resize 3 1
sh $DFS pool dev-p2 curr_nr 1
cache-destroy 1 --expect EBUSY
pool-destroy 2 --expect EBUSY
free 5
pool-destroy 2
sh $DFS absent dev-p1
cache-destroy 1
free 6
pool-destroy 3
pool-destroy 4
sh $DFS absent dev-p3
EOF
	has "read: pool" && has "read: page" && has "outstanding 1" && has "element_size 200"
}

test_bad_input() {
	batch <<'EOF'
free 99 --expect ENOENT
alloc kmalloc --expect EINVAL
alloc kmalloc --size 1048577 --expect EINVAL
alloc 1 --expect ENOENT
cache-create bad/name 64 --expect EINVAL
cache-create '' 64 --expect EINVAL
cache-create 'with space' 64 --expect EINVAL
cache-create 0123456789012345678901234567890123 64 --expect EINVAL
cache-create kmalloc-64 64 --expect EEXIST
cache-create slabinfo 64 --expect EEXIST
cache-create dev-c2 0 --expect EINVAL
cache-create dev-c2 1048577 --expect EINVAL
cache-create dev-c2 64 --align 3 --expect EINVAL
cache-create dev-c2 64 --align 8192 --expect EINVAL
cache-create dev-c2 64
cache-create dev-c2 64 --expect EEXIST
alloc 1 --size 8 --expect EINVAL
alloc 1
read 2 65 --expect EINVAL
read 2 1 --offset 64 --expect EINVAL
write 2 ab --offset 4294967295 --expect EINVAL
write 2 abc --offset 62 --expect EINVAL
read 2 2
cache-info 2 --expect ENOENT
pool-info 1 --expect ENOENT
shrink 2 --expect ENOENT
cache-destroy 2 --expect ENOENT
bulk-alloc 1 0 --expect EINVAL
bulk-alloc 1 1025 --expect EINVAL
bulk-alloc 2 1 --expect ENOENT
bulk-alloc 1 3
bulk-free 1 3 4 99 --expect ENOENT
bulk-free 1 3 3 --expect ENOENT
bulk-free 1 3 1 --expect ENOENT
sh $DFS stat dev-c2 active_objs 4
bulk-free 1 3 4 5
free 2
free 2 --expect ENOENT
read 2 1 --expect ENOENT
pool-create dev-bp kmalloc:0 --min-nr 1 --expect EINVAL
pool-create dev-bp pages:9 --min-nr 1 --expect EINVAL
pool-create dev-bp pages:0 --min-nr 0 --expect EINVAL
pool-create dev-bp cache:999 --min-nr 1 --expect ENOENT
pool-create dev-bp cache:0 --min-nr 1 --expect ENOENT
pool-create 'bad name' pages:0 --min-nr 1 --expect EINVAL
pool-resize 1 4 --expect ENOENT
pool-destroy 1 --expect ENOENT
sh $DFS stat dev-c2 active_objs 0
sh $DFS device objects 1
EOF
	[ $? -eq 0 ] && has "read: 0000" && nothing_owned
}

test_malformed_ioctls() {
	local c want got bad=0
	for c in unknown-type:ENOTTY unknown-nr:ENOTTY wrong-size:EINVAL wrong-dir:EINVAL \
		wrong-version:EINVAL unknown-flags:EINVAL bad-arg:EFAULT kernel-arg:EFAULT \
		bad-write-buf:EFAULT bad-read-buf:EFAULT bad-bulk-ids:EFAULT overflow:EINVAL \
		ro-cache-create:EFAULT ro-alloc:EFAULT ro-pool-create:EFAULT; do
		want=${c#*:}
		got=$("$SYS" ioctl "${c%%:*}" | tr '\n' ' ')
		[ "$got" = "$want " ] || { echo "${c%%:*}: got '$got', expected $want"; bad=1; }
	done
	[ $bad -eq 0 ] && nothing_owned
}

test_alloc_failures() {
	batch <<'EOF'
cache-create dev-f 64
sh echo 1 > /sys/kernel/debug/rslab/dev-f/fail_next
alloc 1 --expect ENOMEM
sh $DFS device objects 1
sh echo 1 > /sys/kernel/debug/rslab/dev-f/fail_next
bulk-alloc 1 4 --expect ENOMEM
sh echo 100 > /sys/kernel/debug/rslab/dev-f/fail_percent
pool-create dev-fp cache:1 --min-nr 2 --expect ENOMEM
sh $DFS absent dev-fp
sh echo 0 > /sys/kernel/debug/rslab/dev-f/fail_percent
sh $DFS device objects 1
sh $DFS charged cache:dev-f handle
sh $DFS stat dev-f active_objs 0
cache-destroy 1
EOF
}

test_close_releases() {
	local before
	before=$(awk '$1 == "kmalloc-512" { print $2 }' $D/slabinfo)
	batch <<'EOF' || return 1
cache-create dev-c3 64
bulk-alloc 1 10
pool-create dev-p4 cache:1 --min-nr 2
pool-create dev-p5 pages:1 --min-nr 2
alloc 12
alloc 13
alloc kmalloc --size 500
sh $DFS device files 1
sh $DFS device objects 16
sh $DFS stat dev-c3 active_objs 13
EOF
	"$DFS" absent dev-c3 && "$DFS" absent dev-p4 && "$DFS" absent dev-p5 && nothing_owned &&
		"$DFS" slab kmalloc-512 2 "$before"
}


# Every handle is charged what it pins (see rslab-abi.rst): a cache its
# fixed footprint, an object its share of its slab, a pool its reserve,
# each its table entry; rslab/device "bytes" is their sum at every step.
# Per-file limits first (the fourth object, a 128 KiB object, a pool or
# a resize past 128 KiB); then, reloaded with small global caps, a second
# file's object past max_total_bytes or max_total_objects, and a third
# open file past max_files (ENFILE). A refusal changes nothing.
test_quotas() {
	rmmod rslab || return 1
	test_load max_objects=4 max_bytes=131072 || return 1
	batch <<'EOF'
cache-create dev-q 64 --flags red-zone
alloc 1
alloc 1
alloc 1
alloc 1 --expect EDQUOT
sh $DFS device objects 4
sh $DFS charged cache:dev-q 3*obj:dev-q 4*handle
free 4
alloc kmalloc --size 131072 --expect EDQUOT
pool-create dev-qp pages:5 --min-nr 1 --expect EDQUOT
sh $DFS charged cache:dev-q 2*obj:dev-q 3*handle
pool-create dev-qp pages:2 --min-nr 2
sh $DFS charged cache:dev-q 2*obj:dev-q pool:dev-qp 4*handle
pool-resize 5 8 --expect EDQUOT
sh $DFS pool dev-qp min_nr 2
sh $DFS charged cache:dev-q 2*obj:dev-q pool:dev-qp 4*handle
pool-resize 5 1
sh $DFS charged cache:dev-q 2*obj:dev-q pool:dev-qp 4*handle
EOF
	local rc=$?
	nothing_owned && rmmod rslab || return 1
	test_load max_total_objects=3 max_total_bytes=98304 max_files=2 || return 1
	batch <<'EOF'
alloc kmalloc --size 32768
sh printf 'alloc kmalloc --size 32768\nalloc kmalloc --size 32768 --expect EDQUOT\nalloc kmalloc --size 64\nalloc kmalloc --size 64 --expect EDQUOT\n' | $T batch
sh printf 'sh $T info 2>&1 | grep -q "Too many open files in system"\n' | $T batch
sh $DFS charged pages:3 handle
EOF
	[ $? -eq 0 ] && [ $rc -eq 0 ] || rc=1
	nothing_owned && rmmod rslab && test_load && [ $rc -eq 0 ]
}

# pinned NAME: the batch script on stdin pins memory; while its file is
# still open, the free memory it took (measured from the script's start,
# with rslabctl already running) must be at most what rslab/device says
# the file is charged, plus PIN_SLACK kB (the guest's own churn).
PIN_SLACK=2048
pinned() {
	local name=$1
	sync
	{
		echo "sh $DFS free-kb > /tmp/rslab-pin-before"
		cat
		echo "sh echo \$(( \$(cat /tmp/rslab-pin-before) - \$($DFS free-kb) )) \$($DFS device-kb bytes) > /tmp/rslab-pinned"
	} | "$T" batch > /dev/null || { echo "$name: the batch failed"; return 1; }
	local took charged
	read -r took charged < /tmp/rslab-pinned
	rm -f /tmp/rslab-pinned /tmp/rslab-pin-before
	echo "$name: took $took kB, charged $charged kB"
	[ "$took" -le $((charged + PIN_SLACK)) ] || { echo "$name: took more than charged + $PIN_SLACK kB"; return 1; }
}

# Each way a file can pin memory, at a size that dwarfs the slack: page
# objects, a pool reserve, tens of thousands of tiny handles (each of
# which costs more in its table entry than in its object), objects
# parked in sheaves and depots after their free, and many caches. On the
# debug kernel (kmemleak and KASAN) a quarter of each: still 6 MiB and
# more over the slack, at a quarter of the cost.
test_charges_bound_memory() {
	local i ids n=1024 scale=1
	! have_kmemleak || scale=4
	n=$((n / scale))
	{
		echo "cache-create pin-o 1 --align 4096"
		for ((i = 0; i < 6; i++)); do echo "bulk-alloc 1 $n"; done
	} | pinned "$((6 * n)) page objects" || return 1
	echo "pool-create pin-p pages:0 --min-nr $((6000 / scale))" |
		pinned "a pool of $((6000 / scale)) pages" || return 1
	# kmalloc objects: no cache's fixed charge to hide the handles' own.
	for ((i = 0; i < 40 * n; i++)); do echo "alloc kmalloc --size 8"; done |
		pinned "$((40 * n)) 8-byte kmalloc objects" || return 1
	{
		echo "cache-create pin-k 256"
		for ((i = 0; i < 8; i++)); do echo "bulk-alloc 1 $n"; done
		for ((i = 0; i < 8; i++)); do
			ids=$(seq $((2 + i * n)) $((1 + (i + 1) * n)) | tr '\n' ' ')
			echo "bulk-free 1 $ids"
		done
	} | pinned "$((8 * n)) objects allocated and freed" || return 1
	for ((i = 0; i < 20 / scale; i++)); do echo "cache-create pin-c$i 64"; done |
		pinned "$((20 / scale)) caches" || return 1
	nothing_owned
}

# What a file makes is charged to its memory cgroup (GFP_KERNEL_ACCOUNT):
# in a group with memory.max of 16 MiB, a 32 MiB pool (within rslab's own
# quota) is refused with ENOMEM, and no OOM kill; 4 MiB of objects raise
# memory.current by at least that much; closing the file uncharges them.
MEMCG=/sys/fs/cgroup
test_memcg() {
	if [ ! -e $MEMCG/cgroup.controllers ]; then
		mount -t cgroup2 none $MEMCG || return 1
	fi
	grep -qw memory $MEMCG/cgroup.controllers || { echo "no memory controller"; return 1; }
	echo +memory > $MEMCG/cgroup.subtree_control || return 1
	local g=$MEMCG/rslab-test
	mkdir $g && echo 16M > $g/memory.max || return 1
	OUT=$(sh -c "echo \$\$ > $g/cgroup.procs && exec $T batch" 2>&1 <<EOF
pool-create cg-p pages:0 --min-nr 8192 --expect ENOMEM
sh cat $g/memory.current > /tmp/rslab-memcg
cache-create cg-c 4096
bulk-alloc 1 1024
sh test \$(cat $g/memory.current) -ge \$(( \$(cat /tmp/rslab-memcg) + 4194304 ))
EOF
	)
	local rc=$?
	echo "$OUT" | grep -v '^bulk-alloc: ids'
	local after oom
	after=$(cat $g/memory.current)
	oom=$(awk '$1 == "oom_kill" { print $2 }' $g/memory.events)
	echo "memory.current after close: $after; oom_kill $oom"
	rm -f /tmp/rslab-memcg
	rmdir $g
	[ $rc -eq 0 ] && [ "$oom" = 0 ] && [ "$after" -lt 4194304 ] && nothing_owned
}

test_top() {
	batch <<'EOF'
cache-create dev-top 77
bulk-alloc 1 3
sh $T top --once --delay 0.2 --sort name > /tmp/rslab-top.out
sh grep -Eq '^dev-top +[0-9]+ +3 ' /tmp/rslab-top.out
sh grep -q 'Active / Total Objects' /tmp/rslab-top.out
sh grep -Eq '^POOL +MIN_NR' /tmp/rslab-top.out
sh rm /tmp/rslab-top.out
EOF
}


# A cache's latency histograms: off at first; on, they count each path;
# off again, they count nothing more; reset empties them; bad input is
# EINVAL; top shows their percentiles; two writers switching them at once
# (the static key counts the caches that have them on: a count below zero
# would be a WARN, which dmesg_clean.sh fails); the cache goes with them
# on.
test_latency() {
	local f=$D/dev-lat/latency
	# The count row: alloc_fast alloc_slow free_fast free_slow. A new
	# cache's first allocation refills its sheaf (slow), the second is fast.
	# On one CPU: a task that moved would find another CPU's sheaf empty.
	OUT=$(taskset -c 0 "$T" batch 2>&1 <<EOF
cache-create dev-lat 64
sh test "\$(head -n 1 $f)" = "enabled 0"
sh test "\$(\$SYS write $f 1)" = OK
sh test "\$(head -n 1 $f)" = "enabled 1"
alloc 1
alloc 1
free 2
free 3
sh grep -Eqx ' +count +1 +1 +2 +0' $f
sh \$T top --once --delay 0.1 --sort name | grep -Eq '^dev-lat .* [0-9]+/[0-9]+ +[0-9]+/[0-9]+\$'
sh test "\$(\$SYS write $f 0)" = OK
alloc 1
free 4
sh grep -Eqx ' +count +1 +1 +2 +0' $f
sh \$T top --once --delay 0.1 --sort name | grep -Eq '^dev-lat .* - +-\$'
sh test "\$(\$SYS write $f reset)" = OK
sh grep -Eqx ' +count +0 +0 +0 +0' $f
sh test "\$(\$SYS write $f 2)" = EINVAL
sh test "\$(\$SYS write $f on)" = EINVAL
sh test "\$(\$SYS write $f 1)" = OK
sh test "\$(\$SYS write $f 1)" = OK
sh for w in 1 2; do (for i in \$(seq 40); do echo 1 > $f; echo 0 > $f; done) & done; wait
alloc 1
free 5
sh echo 1 > $f; test "\$(head -n 1 $f)" = "enabled 1"
cache-destroy 1
sh \$DFS absent dev-lat
EOF
	)
	local rc=$?
	echo "$OUT"
	return $rc
}

test_unload() {
	kmsg_mark
	rmmod rslab || return 1
	local log
	log=$(kmsg_since) || return 1
	! grep -E 'still allocated|outstanding|leak' <<< "$log"
}

ktap_header
ktap_plan 16
ktap_test "insmod rslab.ko" test_load
ktap_test "/dev/rslab is a 0600 root:root character device" test_node
ktap_test "info reports ABI version 1 and the default limits" test_info
ktap_test "cache create/alloc/write/read/bulk/shrink/destroy agree with debugfs" test_cache_ops
ktap_test "kmalloc objects, small and large, are charged their footprint" test_kmalloc_ops
ktap_test "pools of each backend: alloc, read/write, resize, busy destroy" test_pool_ops
ktap_test "bad handles, sizes, names and ranges get their errno and change nothing" test_bad_input
ktap_test "malformed ioctls and unwritable results (C header): exact errno, nothing changed" test_malformed_ioctls
ktap_test "allocation failures are ENOMEM and leave nothing charged or made" test_alloc_failures
ktap_test "closing the file releases its objects, pools and caches" test_close_releases
ktap_test "per-file and global object and byte quotas give EDQUOT, the file cap ENFILE" test_quotas
ktap_test "each way of pinning memory takes no more than it is charged" test_charges_bound_memory
ktap_test "a file's memory is charged to its memory cgroup: memory.max refuses, no OOM kill" test_memcg
ktap_test "top --once shows caches, their numbers and the pools table" test_top
ktap_test "latency histograms: on, off, reset, bad input, top's p50/p99, two writers at once, destroyed while on" test_latency
ktap_test "rmmod reports no leak" test_unload
ktap_finished
