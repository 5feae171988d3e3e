# SPDX-License-Identifier: GPL-2.0
#
# Sourced by bench.sh and scripts/bench (in the guest).
#
# bench_table FILE: the table of rslab_bench.ko's FILE (debugfs/rslab/bench)
# with the kernel side's memory rows added. SLUB's per-cache counters have
# no in-kernel accessor, so the module keeps each SLUB cache of those rows
# with its live objects after the run and names it in a line
# "# held,<cache>,<size>,<objects>"; its rows (pages_held and
# pages_with_meta, the same for SLUB, whose slab metadata is the slab's own
# struct page; objs_per_slab; loss_bytes) are made here from
# /sys/kernel/slab/<cache>/ (slabs, order, objs_per_slab: the caches are
# SLAB_NO_MERGE, so the directory is the cache's own). Fails, saying why,
# if a held cache has no counters, or if its sheaf_capacity is not the one
# the module's "# sheaf_capacity,<size>,...,kernel=N,..." line says it gave
# its rslab side (it mirrors SLUB's private calculate_sheaf_capacity()).
#
# bench_release FILE: frees those caches (the next run does too).

# slab_counter CACHE ATTR: the leading number of /sys/kernel/slab/CACHE/ATTR.
slab_counter() {
	local v
	read -r v < "/sys/kernel/slab/$1/$2" || return 1
	v=${v%% *}
	[[ $v =~ ^[0-9]+$ ]] || return 1
	echo "$v"
}

bench_table() {
	local table held tag cache size n slabs order objs pages loss page want got
	table=$(cat "$1") || return 1
	page=$(getconf PAGESIZE)
	grep -v '^# held,' <<< "$table"
	held=$(grep '^# held,' <<< "$table")
	[ -n "$held" ] || return 0
	while IFS=, read -r tag cache size n; do
		slabs=$(slab_counter "$cache" slabs) && order=$(slab_counter "$cache" order) &&
			objs=$(slab_counter "$cache" objs_per_slab) ||
			{ echo "bench_table: no SLUB counters in /sys/kernel/slab/$cache" >&2; return 1; }
		want=$(sed -n "s/^# sheaf_capacity,$size,.*kernel=\([0-9]*\).*/\1/p" <<< "$table")
		got=$(slab_counter "$cache" sheaf_capacity) || got=none
		[ -n "$want" ] && [ "$got" = "$want" ] ||
			{ echo "bench_table: SLUB's $cache ($size B) has sheaf_capacity $got; the bench gave rslab ${want:-nothing}" >&2; return 1; }
		pages=$((slabs << order))
		loss=$(((page << order) - objs * size))
		[ $loss -ge 0 ] || loss=0
		echo "memory,pages_held,$size,kernel,$n,$pages,$pages,$pages,pages"
		# SLUB keeps a slab's metadata in its struct page: no more pages.
		echo "memory,pages_with_meta,$size,kernel,$n,$pages,$pages,$pages,pages"
		echo "memory,objs_per_slab,$size,kernel,$n,$objs,$objs,$objs,objects"
		echo "memory,loss_bytes,$size,kernel,$n,$loss,$loss,$loss,bytes"
	done <<< "$held"
}

bench_release() { echo release > "$1"; }
