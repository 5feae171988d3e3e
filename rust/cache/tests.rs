// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of [`Cache`](crate::cache::Cache), built only into
//! rslab_kunit.ko (see `Kbuild`) and run when that module loads (before its
//! init).
//!
//! Each test makes its own caches, so they do not depend on the module's
//! state; deliberate misuse (writes after free, double frees) is confined to
//! debug caches, which detect it, and is counted through
//! [`crate::cache::debug::REPORTS`].

use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering::Relaxed};
use kernel::prelude::*;

/// The object whose free the race test puts in [`race_window`].
static RACING: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

/// Called by a checked free between finding the object's slab and taking
/// the node lock: if `obj` is the object the race test set, frees it there
/// first, so the outer free is a double free racing the last free, in the
/// one window where it could follow a slab freed under it.
pub(crate) fn race_window(cache: &crate::cache::Cache, obj: NonNull<u8>) {
    let racing = RACING.compare_exchange(obj.as_ptr(), core::ptr::null_mut(), Relaxed, Relaxed);
    if racing.is_ok() {
        // SAFETY: The test allocated `obj` from `cache` and frees it here
        // once; the outer free is the deliberate second one.
        unsafe { cache.free(obj) };
    }
}

#[kunit_tests(rslab_cache)]
pub(crate) mod cache_tests {
    use crate::cache::debug::REPORTS;
    use crate::cache::flags::{CacheFlag, CacheFlags};
    use crate::cache::quarantine::Quarantine;
    use crate::cache::stats::Stat;
    use crate::cache::Cache;
    use crate::sys;
    use core::ptr::NonNull;
    use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use kernel::prelude::*;
    use kernel::sync::Arc;

    fn reports() -> u64 {
        REPORTS.load(Relaxed)
    }

    fn cache(name: &CStr, size: usize, flags: impl Into<CacheFlags>) -> Result<Arc<Cache>> {
        Cache::new(name, size, 8, flags, None)
    }

    fn alloc_n(cache: &Cache, n: usize) -> Result<KVec<NonNull<u8>>> {
        let mut objs = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            objs.push(cache.alloc(GFP_KERNEL)?, GFP_KERNEL)?;
        }
        Ok(objs)
    }

    /// On a KASAN kernel, frees just enough other objects of `cache` (a
    /// cache with sheaves) that the object freed last leaves the quarantine
    /// for the sheaf, so that the next allocation gets it back, as it does
    /// at once elsewhere.
    fn let_out_of_quarantine(cache: &Cache) -> Result {
        for _ in 0..Quarantine::capacity(1, cache.layout().size) {
            let obj = cache.alloc(GFP_KERNEL)?;
            // SAFETY: From `cache`, freed once.
            unsafe { cache.free(obj) };
        }
        Ok(())
    }

    fn free_all(cache: &Cache, objs: &mut KVec<NonNull<u8>>) {
        for obj in objs.drain_all() {
            // SAFETY: Every object came from `cache` and is freed once.
            unsafe { cache.free(obj) };
        }
    }

    /// Every size from 1 to 256 bytes and a sample up to 8 KiB, under every
    /// set of flags: objects filled to their last byte, freed and reused,
    /// with not one report (a free pointer overlapping a red zone, say).
    #[test]
    fn every_size_and_flag_set_is_clean() -> Result {
        let before = reports();
        let sample = [264, 500, 1000, 1024, 2000, 3000, 4096, 6000, 8192];
        for size in Iterator::chain(1..=256, sample) {
            for bits in 0..16 {
                let cache = cache(c"rslab_test_sizes", size, CacheFlags::from_abi(bits))?;
                let mut objs = alloc_n(&cache, 3)?;
                for obj in objs.iter() {
                    // SAFETY: A live object of `size` bytes, only ours.
                    unsafe { obj.as_ptr().write_bytes(0x5a, size) };
                }
                free_all(&cache, &mut objs);
                let mut reused = alloc_n(&cache, 3)?;
                free_all(&cache, &mut reused);
                assert_eq!(Cache::destroy(cache), Some(0));
            }
        }
        assert_eq!(reports(), before);
        Ok(())
    }

    /// The quota model (`rslab-abi.rst`): a cache's objects and caching
    /// layers never hold more pages than `n` objects' footprints and the
    /// cache's fixed footprint, at the peak and after every object is
    /// freed (every other one first, so the parked ones come from many
    /// slabs), for small, page-sized and odd objects.
    #[test]
    fn footprints_bound_the_pages_held() -> Result {
        const N: usize = 2000;
        for (size, align) in [(8, 8), (1, 4096), (700, 8), (3000, 8)] {
            let cache = Cache::new(c"rslab_test_fp", size, align, CacheFlags::NONE, None)?;
            let mut objs = alloc_n(&cache, N)?;
            let held = || cache.stats().pages * kernel::page::PAGE_SIZE;
            let peak = held();
            assert!(peak > 0);
            assert!(peak <= N * cache.object_footprint() + cache.fixed_footprint());
            let mut odd = KVec::with_capacity(N / 2, GFP_KERNEL)?;
            let mut i = 0;
            objs.retain(|o| {
                i += 1;
                i % 2 == 0 || odd.push_within_capacity(*o).is_err()
            });
            free_all(&cache, &mut odd);
            free_all(&cache, &mut objs);
            assert!(held() <= cache.fixed_footprint());
            assert_eq!(Cache::destroy(cache), Some(0));
        }
        Ok(())
    }

    /// The sheaf is a stack: the object just freed comes back first, for
    /// its cache-hot memory. Not on a KASAN kernel, whose quarantine keeps
    /// a freed object out of use for a while (`crate::cache::quarantine`).
    #[test]
    fn reuse_after_free() -> Result {
        let cache = cache(c"rslab_test_reuse", 64, CacheFlags::NONE)?;
        let a = cache.alloc(GFP_KERNEL)?;
        // SAFETY: `a` came from `cache` and is not used again.
        unsafe { cache.free(a) };
        let b = cache.alloc(GFP_KERNEL)?;
        assert_eq!((a == b), !cfg!(CONFIG_KASAN_GENERIC));
        // SAFETY: As above.
        unsafe { cache.free(b) };
        assert_eq!(Cache::destroy(cache), Some(0));
        Ok(())
    }

    #[test]
    fn filling_and_freeing_keeps_min_partial_then_shrink_frees_all() -> Result {
        // A debug cache has no sheaves: every free reaches its slab at once.
        let cache = cache(c"rslab_test_fill", 256, CacheFlag::ConsistencyChecks)?;
        let l = *cache.layout();
        let per_slab = l.objects(l.order) as usize;
        let mut objs = alloc_n(&cache, per_slab * 12)?;
        let st = cache.stats();
        assert_eq!(st.active_objs, per_slab * 12);
        assert_eq!(st.num_slabs, 12);
        assert_eq!(st.pages, 12 << l.order);
        free_all(&cache, &mut objs);
        let st = cache.stats();
        assert_eq!(st.active_objs, 0);
        assert_eq!(st.num_slabs, cache.min_partial());
        assert_eq!(st.empty_slabs, cache.min_partial());
        assert_eq!(cache.shrink(), cache.min_partial());
        assert_eq!(cache.stats().pages, 0);
        Ok(())
    }

    #[test]
    fn shrink_flushes_sheaves_and_frees_every_slab() -> Result {
        let cache = cache(c"rslab_test_shrink", 128, CacheFlags::NONE)?;
        let mut objs = alloc_n(&cache, 1000)?;
        free_all(&cache, &mut objs);
        assert!(cache.stats().cached_objs > 0);
        cache.shrink();
        let st = cache.stats();
        assert_eq!(
            (st.pages, st.num_slabs, st.cached_objs, st.active_objs),
            (0, 0, 0, 0)
        );
        assert!(st.event(Stat::AllocFast) > 0 && st.event(Stat::FreeFast) > 0);
        Ok(())
    }

    /// A cache made with a sheaf capacity keeps it: a small one flushes
    /// many times as often as the default (a full sheaf flushes whole),
    /// a debug cache still has none, and 0 or more than `SHEAF_MAX` is
    /// refused.
    #[test]
    fn with_sheaf_capacity_sizes_the_sheaf() -> Result {
        use crate::cache::SHEAF_MAX;
        let make =
            |name, flags, capacity| Cache::with_sheaf_capacity(name, 64, 8, flags, None, capacity);
        for bad in [0, SHEAF_MAX + 1] {
            assert_eq!(
                make(c"rslab_test_cap_bad", CacheFlags::NONE, bad).err(),
                Some(EINVAL)
            );
        }
        let debug = make(
            c"rslab_test_cap_debug",
            CacheFlag::ConsistencyChecks.into(),
            6,
        )?;
        assert_eq!(debug.sheaf_capacity(), 0);
        let small = make(c"rslab_test_cap_small", CacheFlags::NONE, 6)?;
        let default = cache(c"rslab_test_cap_default", 64, CacheFlags::NONE)?;
        assert_eq!(
            (small.sheaf_capacity(), default.sheaf_capacity()),
            (6, SHEAF_MAX)
        );
        let mut flushes = [0; 2];
        for (cache, n) in [&small, &default].into_iter().zip(&mut flushes) {
            let mut objs = alloc_n(cache, 200)?;
            let before = cache.stats().event(Stat::Flush);
            free_all(cache, &mut objs);
            *n = cache.stats().event(Stat::Flush) - before;
        }
        // 200 frees, less what KASAN's quarantine keeps (as many in both):
        // a flush every 6 against every 64.
        let reach = 200 - crate::cache::quarantine::Quarantine::capacity(6, 64) as u64;
        assert!(flushes[0] >= reach / 6 - 1 && flushes[1] <= reach / 64 + 1);
        Ok(())
    }

    /// Memory that is not an rslab object: a SLUB (kmalloc) object, a
    /// vmalloc address, a stack address and a page from the page allocator.
    /// Each is freed below, deliberately; returns them and the page.
    pub(crate) fn foreign_pointers(
        slub: &[u8; 64],
        vmalloc: &[u8; 64],
        stack: &[u8; 64],
    ) -> Result<([NonNull<u8>; 4], NonNull<u8>)> {
        // SAFETY: Any node and order are accepted; failure gives NULL.
        let page = unsafe { crate::sys::rslab_pages_alloc(0, kernel::bindings::GFP_KERNEL, 0) };
        let page = NonNull::new(page.cast::<u8>()).ok_or(ENOMEM)?;
        let ptrs = [
            NonNull::from(slub).cast(),
            NonNull::from(vmalloc).cast(),
            NonNull::from(stack).cast(),
            page,
        ];
        Ok((ptrs, page))
    }

    pub(crate) fn free_page(page: NonNull<u8>) {
        // SAFETY: The order-0 page `foreign_pointers` allocated, freed once.
        unsafe { crate::sys::rslab_pages_free(page.as_ptr().cast(), 0) };
    }

    /// A pointer outside the cache's slabs is reported and ignored:
    /// another cache's object and every kind of [`foreign_pointers`]. None
    /// comes back from an allocation, and the cache's counts do not move.
    /// Where every free is checked (hardened and debug kernels) the cache is
    /// a plain one, so the sheaf's fast path is what is tested; elsewhere
    /// one with consistency checks.
    #[test]
    fn every_kind_of_foreign_free_is_reported_and_ignored() -> Result {
        let flags = if crate::sys::CHECK_FREES {
            CacheFlags::NONE
        } else {
            CacheFlag::ConsistencyChecks.into()
        };
        let a = cache(c"rslab_test_foreign_a", 64, flags)?;
        let b = cache(c"rslab_test_foreign_b", 64, flags)?;
        let mut kept = alloc_n(&a, 10)?;
        let of_b = b.alloc(GFP_KERNEL)?;
        let (slub, vmalloc, stack) = (
            KBox::new([0u8; 64], GFP_KERNEL)?,
            VBox::new([0u8; 64], GFP_KERNEL)?,
            [0u8; 64],
        );
        let (ptrs, page) = foreign_pointers(&slub, &vmalloc, &stack)?;
        let (reports_before, st) = (reports(), a.stats());
        for &p in Iterator::chain(ptrs.iter(), [&of_b]) {
            // SAFETY: Not an object of `a`: what the check catches.
            unsafe { a.free(p) };
        }
        assert_eq!(reports(), reports_before + 5);
        let after = a.stats();
        assert_eq!(
            (after.active_objs, after.cached_objs),
            (st.active_objs, st.cached_objs)
        );
        let mut again = alloc_n(&a, 200)?;
        assert!(again.iter().all(|o| !ptrs.contains(o) && *o != of_b));
        free_all(&a, &mut again);
        free_all(&a, &mut kept);
        // SAFETY: From `b`, freed once.
        unsafe { b.free(of_b) };
        free_page(page);
        Ok(())
    }

    /// The stats count objects in use without walking the slabs: the
    /// counters must equal a walk after allocs, frees, bad frees, a debug
    /// cache, a shrink and a reclaim.
    #[test]
    fn in_use_counters_equal_a_walk_of_the_slabs() -> Result {
        for flags in [
            CacheFlags::NONE,
            CacheFlag::Poison | CacheFlag::RedZone | CacheFlag::ConsistencyChecks,
        ] {
            let cache = cache(c"rslab_test_inuse", 64, flags)?;
            let mut kept = alloc_n(&cache, 700)?;
            let mut freed = alloc_n(&cache, 300)?;
            free_all(&cache, &mut freed);
            assert!(cache.inuse_counters_match());
            if flags.contains(CacheFlag::ConsistencyChecks) {
                let obj = cache.alloc(GFP_KERNEL)?;
                let before = reports();
                // SAFETY: Freed once, then (deliberately, with checks that
                // catch it) a second time: reported and ignored.
                unsafe {
                    cache.free(obj);
                    cache.free(obj);
                }
                assert_eq!(reports(), before + 1);
            }
            assert!(cache.inuse_counters_match());
            free_all(&cache, &mut kept);
            cache.reclaim(1);
            cache.shrink();
            assert!(cache.inuse_counters_match());
        }
        Ok(())
    }

    /// A double free racing the last free of its slab, with consistency
    /// checks: the first free empties the slab and frees it (beyond
    /// `min_partial` empty ones) after the second has found the slab but
    /// before it takes the node lock. The second must not follow the freed
    /// slab (KASAN sees it if it does): it is reported as a double free.
    #[test]
    fn a_double_free_racing_the_slabs_free_is_reported() -> Result {
        let cache = cache(c"rslab_test_race", 64, CacheFlag::ConsistencyChecks)?;
        let per_slab = cache.layout().objects(cache.layout().order) as usize;
        let mut objs = alloc_n(&cache, (cache.min_partial() + 1) * per_slab)?;
        let last = objs.pop().ok_or(EINVAL)?;
        free_all(&cache, &mut objs);
        assert_eq!(cache.stats().empty_slabs, cache.min_partial());
        let before = reports();
        super::RACING.store(last.as_ptr(), Relaxed);
        // SAFETY: `last` is from `cache`; `race_window` frees it first, so
        // this free is the deliberate double free, which checks catch.
        unsafe { cache.free(last) };
        assert!(super::RACING.load(Relaxed).is_null());
        assert_eq!(reports(), before + 1);
        let st = cache.stats();
        assert_eq!((st.active_objs, st.num_slabs), (0, cache.min_partial()));
        assert!(cache.inuse_counters_match());
        assert_eq!(Cache::destroy(cache), Some(0));
        Ok(())
    }

    /// The node `obj` lives on.
    fn nid_of(obj: NonNull<u8>) -> i32 {
        // SAFETY: An object: in the direct map.
        unsafe { sys::rslab_addr_nid(obj.as_ptr().cast()) }
    }

    /// Node-directed allocations (`alloc_node`, `__GFP_THISNODE`) give
    /// objects of their node, on every node with memory, across slabs; a
    /// node id that names none is `EINVAL`.
    #[test]
    fn node_directed_allocations_stay_on_their_node() -> Result {
        let cache = cache(c"rslab_test_node", 64, CacheFlags::NONE)?;
        let per_slab = cache.layout().objects(cache.layout().order) as usize;
        let thisnode = sys::gfp_bits(GFP_KERNEL) | sys::GFP_THISNODE;
        for nid in (0..sys::nr_node_ids() as i32).filter(|&n| sys::node_has_memory(n)) {
            let mut objs = KVec::with_capacity(per_slab + 1, GFP_KERNEL)?;
            for i in 0..=per_slab {
                let obj = if i % 2 == 0 {
                    cache.alloc_node_raw(thisnode, nid)?
                } else {
                    cache.alloc_node(GFP_KERNEL, nid)?
                };
                objs.push(obj, GFP_KERNEL)?;
                assert_eq!(nid_of(obj), nid);
            }
            free_all(&cache, &mut objs);
        }
        // `__GFP_THISNODE` with no node: the local node (read on both sides
        // of the call; a task that moved between nodes tries again).
        let mut checked = 0;
        for _ in 0..8 {
            let local = sys::numa_mem_id();
            let obj = cache.alloc_raw(thisnode)?;
            if sys::numa_mem_id() == local {
                assert_eq!(nid_of(obj), local);
                checked += 1;
            }
            // SAFETY: From `cache`, freed once.
            unsafe { cache.free(obj) };
        }
        assert!(checked > 0);
        for bad in [sys::nr_node_ids() as i32, -2, i32::MAX] {
            assert_eq!(cache.alloc_node(GFP_KERNEL, bad).err(), Some(EINVAL));
        }
        assert_eq!(cache.stats().active_objs, 0);
        Ok(())
    }

    /// Allocates `n` objects of `cache` with `alloc`, fills each with 0xa5
    /// and frees them all; then allocates `n` again (the same slots, from
    /// the sheaf, depot and slab freelists, free pointers included) and
    /// counts those with a byte that is not 0. Frees them.
    fn reused_with_old_bytes(
        cache: &Cache,
        n: usize,
        alloc: impl Fn() -> Result<NonNull<u8>>,
    ) -> Result<usize> {
        let size = cache.layout().object_size;
        let mut objs = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            let obj = alloc()?;
            // SAFETY: A live object of `size` bytes, ours alone.
            unsafe { obj.as_ptr().write_bytes(0xa5, size) };
            objs.push(obj, GFP_KERNEL)?;
        }
        free_all(cache, &mut objs);
        for _ in 0..n {
            objs.push(alloc()?, GFP_KERNEL)?;
        }
        let dirty = objs
            .iter()
            .filter(|obj| {
                // SAFETY: Live objects of `size` bytes, ours alone.
                let bytes = unsafe { core::slice::from_raw_parts(obj.as_ptr(), size) };
                bytes.iter().any(|&b| b != 0)
            })
            .count();
        free_all(cache, &mut objs);
        Ok(dirty)
    }

    /// With `init_on_alloc=1` (the default kernel's VM in `make check`):
    /// every allocation path hands out zeroed objects, old bytes or not.
    #[test]
    fn init_on_alloc_zeroes_every_allocation() -> Result {
        if !sys::init_on_alloc() {
            sys::kunit_skip(c"init_on_alloc is off (boot with init_on_alloc=1)");
            return Ok(());
        }
        for flags in [CacheFlags::NONE, CacheFlag::RedZone.into()] {
            let cache = cache(c"rslab_test_init_alloc", 96, flags)?;
            let n = 200;
            assert_eq!(
                reused_with_old_bytes(&cache, n, || cache.alloc(GFP_KERNEL))?,
                0
            );
            let nid = sys::numa_mem_id();
            let node = || cache.alloc_node(GFP_KERNEL, nid);
            assert_eq!(reused_with_old_bytes(&cache, n, node)?, 0);
            let bulk = || {
                let mut one = [core::ptr::null_mut()];
                cache.alloc_bulk(GFP_KERNEL, &mut one)?;
                NonNull::new(one[0]).ok_or(ENOMEM)
            };
            assert_eq!(reused_with_old_bytes(&cache, n, bulk)?, 0);
        }
        Ok(())
    }

    /// With `init_on_free=1` and not `init_on_alloc` (a debug kernel's VM
    /// in `make check`): freed objects keep no old byte, free pointers of
    /// slab freelists included, so reused ones come back all zero.
    #[test]
    fn init_on_free_leaves_no_old_bytes() -> Result {
        if !sys::init_on_free() || sys::init_on_alloc() {
            sys::kunit_skip(c"needs init_on_free=1 without init_on_alloc");
            return Ok(());
        }
        for flags in [
            CacheFlags::NONE,
            CacheFlag::RedZone | CacheFlag::ConsistencyChecks,
        ] {
            let cache = cache(c"rslab_test_init_free", 96, flags)?;
            // Enough to overflow the sheaf, the depot and several slabs.
            assert_eq!(
                reused_with_old_bytes(&cache, 1000, || cache.alloc(GFP_KERNEL))?,
                0
            );
        }
        Ok(())
    }

    /// A refill from another node leaves remote objects in the sheaf; a
    /// flush must return them to their slabs, never park them in the local
    /// depot, where the next refill would take them as local.
    #[test]
    fn remote_objects_never_park_in_the_local_depot() -> Result {
        let local = sys::numa_mem_id();
        let Some(remote) =
            (0..sys::nr_node_ids() as i32).find(|&n| n != local && sys::node_has_memory(n))
        else {
            sys::kunit_skip(c"one node with memory: no remote objects");
            return Ok(());
        };
        let cache = cache(c"rslab_test_depot_node", 64, CacheFlags::NONE)?;
        let per_slab = cache.layout().objects(cache.layout().order) as usize;
        for _ in 0..4 {
            cache.shrink();
            // Free objects on the remote node only...
            let mut far = KVec::with_capacity(2 * per_slab, GFP_KERNEL)?;
            for _ in 0..2 * per_slab {
                far.push(cache.alloc_node(GFP_KERNEL, remote)?, GFP_KERNEL)?;
            }
            free_all(&cache, &mut far);
            // ...none on the local node, whose objects are all held...
            let mut near = KVec::with_capacity(2 * per_slab, GFP_KERNEL)?;
            for _ in 0..2 * per_slab {
                near.push(cache.alloc_node(GFP_KERNEL, local)?, GFP_KERNEL)?;
            }
            // ...so this refills the sheaf with remote objects...
            let one = cache.alloc(GFP_KERNEL)?;
            // ...and these local frees overflow it: a flush with the remote
            // ones at its bottom.
            free_all(&cache, &mut near);
            assert!(cache.depots_hold_local_objects());
            // SAFETY: From `cache`, freed once.
            unsafe { cache.free(one) };
        }
        assert!(cache.stats().event(Stat::NodeMismatch) > 0);
        assert!(cache.depots_hold_local_objects());
        Ok(())
    }

    /// What the shrinker gives back: every parked object and every empty
    /// slab, `min_partial` ones included; the sheaves stay.
    #[test]
    fn reclaim_gives_back_parked_objects_and_empty_slabs() -> Result {
        let cache = cache(c"rslab_test_reclaim", 128, CacheFlags::NONE)?;
        let mut objs = alloc_n(&cache, 2000)?;
        free_all(&cache, &mut objs);
        let st = cache.stats();
        assert!(st.depot_objs > 0 && st.empty_slabs > 0);
        let reclaimable = cache.reclaimable();
        assert!(reclaimable >= st.depot_objs);
        assert!(cache.reclaim(1) >= st.depot_objs);
        let st = cache.stats();
        assert_eq!(
            (st.depot_objs, st.empty_slabs, cache.reclaimable()),
            (0, 0, 0)
        );
        // What is left holds the sheaves' objects only.
        assert_eq!(st.active_objs, 0);
        assert!(st.num_slabs <= st.cached_objs);
        Ok(())
    }

    /// Objects of a page or more: a CPU keeps 4 (SLUB's sheaf capacity) and
    /// a node parks 32, so what a cache holds freely is bounded in bytes,
    /// not only in objects.
    #[test]
    fn large_objects_are_kept_a_few_at_a_time() -> Result {
        let cache = cache(c"rslab_test_big", 8192, CacheFlags::NONE)?;
        let mut objs = alloc_n(&cache, 100)?;
        free_all(&cache, &mut objs);
        let st = cache.stats();
        let cpus = crate::sys::num_present_cpus() as usize;
        assert!(st.depot_objs <= 32);
        // (The KASAN quarantine, bounded in bytes too, is not a sheaf.)
        assert!(st.cached_objs - st.quarantined_objs <= st.depot_objs + 4 * cpus);
        Ok(())
    }

    /// `__GFP_HIGHMEM` (in `GFP_SLAB_BUG_MASK`) is reported once per new
    /// slab and dropped: the object is still a direct-map one.
    #[test]
    fn slab_bug_gfp_bits_are_reported_and_dropped() -> Result {
        let cache = cache(c"rslab_test_gfp_bug", 64, CacheFlags::NONE)?;
        let before = reports();
        let obj = cache.alloc(GFP_KERNEL | __GFP_HIGHMEM)?;
        assert_eq!(reports(), before + 1);
        // SAFETY: A live 64-byte object of ours.
        unsafe { obj.as_ptr().write_bytes(0x11, 64) };
        // SAFETY: Allocated above, freed once.
        unsafe { cache.free(obj) };
        Ok(())
    }

    static CTOR_CALLS: AtomicUsize = AtomicUsize::new(0);

    fn ctor(obj: &mut [u8]) {
        CTOR_CALLS.fetch_add(1, Relaxed);
        obj.fill(0x5a);
    }

    #[test]
    fn constructor_runs_once_per_slot() -> Result {
        CTOR_CALLS.store(0, Relaxed);
        let cache = Cache::new(c"rslab_test_ctor", 48, 8, CacheFlags::NONE, Some(ctor))?;
        for _ in 0..3 {
            let mut objs = alloc_n(&cache, 300)?;
            for obj in objs.iter() {
                // SAFETY: A live 48-byte object of ours.
                let bytes = unsafe { core::slice::from_raw_parts(obj.as_ptr(), 48) };
                assert!(bytes.iter().all(|&b| b == 0x5a));
            }
            free_all(&cache, &mut objs);
        }
        let l = *cache.layout();
        let slabs = cache.stats().event(Stat::NewSlab) as usize;
        assert_eq!(
            CTOR_CALLS.load(Relaxed),
            slabs * l.objects(l.order) as usize
        );
        Ok(())
    }

    #[test]
    fn poison_detects_a_write_after_free() -> Result {
        let cache = cache(c"rslab_test_poison", 64, CacheFlag::Poison)?;
        let obj = cache.alloc(GFP_KERNEL)?;
        // SAFETY: From `cache`, freed once.
        unsafe { cache.free(obj) };
        let before = reports();
        // This test is about rslab's poison check, not KASAN's.
        let quiet = crate::cache::kasan::Quiet::new();
        // SAFETY: Deliberate use after free, to test its detection: the slot
        // belongs to a live slab of `cache`, so the write hits mapped memory
        // that only the cache's freelist logic reads.
        unsafe { obj.as_ptr().add(10).write(0) };
        drop(quiet);
        let again = cache.alloc(GFP_KERNEL)?;
        assert_eq!(again, obj);
        assert_eq!(reports(), before + 1);
        // SAFETY: From `cache`, freed once.
        unsafe { cache.free(again) };
        let clean = cache.alloc(GFP_KERNEL)?;
        // SAFETY: As above.
        unsafe { cache.free(clean) };
        assert_eq!(reports(), before + 1);
        Ok(())
    }

    #[test]
    fn red_zone_detects_a_write_past_the_object() -> Result {
        let cache = cache(c"rslab_test_redzone", 60, CacheFlag::RedZone)?;
        let obj = cache.alloc(GFP_KERNEL)?;
        let before = reports();
        // This test is about rslab's red zone check, not KASAN's.
        let quiet = crate::cache::kasan::Quiet::new();
        // SAFETY: Deliberate overflow by one byte, into the red zone that
        // the layout reserves right after the 60-byte object.
        unsafe { obj.as_ptr().add(60).write(0) };
        drop(quiet);
        // SAFETY: From `cache`, freed once.
        unsafe { cache.free(obj) };
        assert_eq!(reports(), before + 1);
        // The corrupted object is kept out of the freelist: still counted.
        assert_eq!(cache.stats().active_objs, 1);
        assert_eq!(Cache::destroy(cache), Some(1));
        Ok(())
    }

    #[test]
    fn bad_frees_are_reported_and_ignored() -> Result {
        let checks = CacheFlag::ConsistencyChecks;
        let a = cache(c"rslab_test_bad_a", 64, checks)?;
        let b = cache(c"rslab_test_bad_b", 64, checks)?;
        let obj = a.alloc(GFP_KERNEL)?;
        let other = a.alloc(GFP_KERNEL)?;
        let boxed = KBox::new([0u8; 64], GFP_KERNEL)?;
        let before = reports();
        // SAFETY: `b` has consistency checks, so it validates this pointer
        // (another cache's object) before using it: what this test checks.
        unsafe { b.free(obj) };
        // SAFETY: As above, a misaligned pointer into one of `a`'s objects;
        // the sum stays inside that object.
        unsafe { a.free(NonNull::new_unchecked(obj.as_ptr().add(8))) };
        // SAFETY: As above, kmalloc memory, which `a` never owned.
        unsafe { a.free(NonNull::from(&*boxed).cast()) };
        assert_eq!(reports(), before + 3);
        // SAFETY: From `a`, freed once...
        unsafe { a.free(obj) };
        // SAFETY: ...and then a second time, deliberately: a double free.
        unsafe { a.free(obj) };
        assert_eq!(reports(), before + 4);
        assert_eq!(a.stats().active_objs, 1);
        // SAFETY: From `a`, freed once.
        unsafe { a.free(other) };
        assert_eq!(Cache::destroy(a), Some(0));
        assert_eq!(Cache::destroy(b), Some(0));
        Ok(())
    }

    #[test]
    fn corrupted_freelist_is_reported_not_followed() -> Result {
        let cache = cache(c"rslab_test_freelist", 64, CacheFlag::ConsistencyChecks)?;
        let l = *cache.layout();
        let (a, b) = (cache.alloc(GFP_KERNEL)?, cache.alloc(GFP_KERNEL)?);
        // SAFETY: From `cache`, each freed once; the freelist is now a, b, ...
        unsafe {
            cache.free(b);
            cache.free(a);
        }
        let before = reports();
        // This test is about rslab's freelist check, not KASAN's.
        let quiet = crate::cache::kasan::Quiet::new();
        // SAFETY: Deliberate corruption of `a`'s stored next pointer, to test
        // its detection: `a` is a free slot of a live slab of `cache`.
        unsafe { a.as_ptr().add(l.free_offset).cast::<usize>().write(0x1234) };
        drop(quiet);
        assert_eq!(cache.alloc(GFP_KERNEL)?, a);
        assert_eq!(reports(), before + 1);
        // The rest of that freelist was abandoned, never followed: the slab
        // counts as full, and the next object comes from a new slab.
        let c = cache.alloc(GFP_KERNEL)?;
        assert_ne!(c, b);
        assert_eq!(cache.stats().num_slabs, 2);
        // SAFETY: From `cache`, each freed once.
        unsafe {
            cache.free(a);
            cache.free(c);
        }
        // The abandoned objects stay accounted for, as leaks.
        assert_eq!(Cache::destroy(cache), Some(l.objects(l.order) as usize - 1));
        Ok(())
    }

    #[test]
    fn gfp_zero_zeroes_a_reused_object() -> Result {
        let cache = cache(c"rslab_test_zero", 128, CacheFlags::NONE)?;
        let obj = cache.alloc(GFP_KERNEL)?;
        // SAFETY: A live 128-byte object of ours.
        unsafe { obj.as_ptr().write_bytes(0xff, 128) };
        // SAFETY: From `cache`, freed once.
        unsafe { cache.free(obj) };
        let_out_of_quarantine(&cache)?;
        let zeroed = cache.alloc(GFP_KERNEL | __GFP_ZERO)?;
        assert_eq!(zeroed, obj);
        // SAFETY: A live 128-byte object of ours.
        let bytes = unsafe { core::slice::from_raw_parts(zeroed.as_ptr(), 128) };
        assert!(bytes.iter().all(|&b| b == 0));
        // SAFETY: From `cache`, freed once.
        unsafe { cache.free(zeroed) };
        Ok(())
    }

    #[test]
    fn bulk_alloc_and_free() -> Result {
        let cache = cache(c"rslab_test_bulk", 32, CacheFlags::NONE)?;
        let mut objs = [core::ptr::null_mut(); 100];
        cache.alloc_bulk(GFP_KERNEL, &mut objs)?;
        assert!(objs.iter().all(|o| !o.is_null()));
        let distinct = objs
            .iter()
            .enumerate()
            .all(|(i, a)| objs[i + 1..].iter().all(|b| a != b));
        assert!(distinct);
        assert_eq!(cache.stats().active_objs, 100);
        // SAFETY: All from `cache`, each freed once.
        unsafe { cache.free_bulk(&objs) };
        assert_eq!(cache.stats().active_objs, 0);
        Ok(())
    }

    /// Bulk calls past a small sheaf go to the node lists a batch per node
    /// lock, not half a sheaf at a time (which took about 30 locks for 100
    /// objects each way here), and count every object once.
    #[test]
    fn bulk_calls_take_a_node_lock_per_batch() -> Result {
        let name = c"rslab_test_bulk_batches";
        let cache = Cache::with_sheaf_capacity(name, 32, 8, CacheFlags::NONE, None, 6)?;
        let mut objs = [core::ptr::null_mut(); 100];
        let before = cache.stats().node_locks;
        cache.alloc_bulk(GFP_KERNEL, &mut objs)?;
        let st = cache.stats();
        // An empty take, the new slab's add, then one take for the rest
        // (a slab holds 128): a few more if the thread moved meanwhile.
        assert!(st.node_locks - before <= 6);
        assert_eq!(st.active_objs, 100);
        assert_eq!(st.event(Stat::AllocFast) + st.event(Stat::AllocSlow), 100);
        let before = st.node_locks;
        // SAFETY: All from `cache`, each freed once.
        unsafe { cache.free_bulk(&objs) };
        let st = cache.stats();
        // Four batches of at most 32: each fills the sheaf or spills to
        // the depot (one lock) and the slabs (one more).
        assert!(st.node_locks - before <= 8);
        assert_eq!(st.active_objs, 0);
        // (KASAN's quarantine counts an object once it lets it go.)
        let counted = st.event(Stat::FreeFast) + st.event(Stat::FreeSlow);
        assert_eq!(counted + st.quarantined_objs as u64, 100);
        assert_eq!(Cache::destroy(cache), Some(0));
        Ok(())
    }

    /// A bulk allocation that gets a slab's worth of objects and then
    /// fails on the second slab gives every object back.
    #[test]
    fn failed_bulk_alloc_keeps_nothing() -> Result {
        let cache = cache(c"rslab_test_bulk_fail", 32, CacheFlags::NONE)?;
        let per_slab = cache.layout().objects(cache.layout().order) as usize;
        // One slab, all but one of its objects free.
        let first = cache.alloc(GFP_KERNEL)?;
        cache.fault().fail_next(1);
        let mut objs = [core::ptr::null_mut(); 200];
        assert!(objs.len() > per_slab);
        assert_eq!(cache.alloc_bulk(GFP_KERNEL, &mut objs), Err(ENOMEM));
        let st = cache.stats();
        assert_eq!((st.active_objs, st.num_slabs), (1, 1));
        assert_eq!(st.event(Stat::AllocFailed), 1);
        // SAFETY: From `cache`, freed once.
        unsafe { cache.free(first) };
        assert_eq!(cache.stats().active_objs, 0);
        Ok(())
    }

    #[test]
    fn destroy_reports_the_exact_leak_count_and_keeps_their_memory() -> Result {
        let cache = cache(c"rslab_test_leak", 64, CacheFlags::NONE)?;
        let before = reports();
        let leaked = alloc_n(&cache, 3)?;
        for obj in leaked.iter() {
            // A deliberate leak: kmemleak is not to report it.
            // SAFETY: Any pointer is accepted.
            unsafe { crate::sys::rslab_kmemleak_not_leak(obj.as_ptr().cast()) };
        }
        assert_eq!(Cache::destroy(cache), Some(3));
        assert_eq!(reports(), before + 1);
        // The objects may still be in use, so their slab was leaked, not
        // freed (under KASAN a write to freed pages is a report).
        for obj in leaked.iter() {
            // SAFETY: The objects' slab stays allocated for good, and only
            // this test knows the objects.
            unsafe { obj.as_ptr().write_bytes(0x5a, 64) };
        }
        Ok(())
    }

    #[test]
    fn injected_page_failures_give_enomem_and_leak_nothing() -> Result {
        let cache = cache(c"rslab_test_fault", 64, CacheFlags::NONE)?;
        cache.fault().fail_next(1);
        assert_eq!(cache.alloc(GFP_KERNEL), Err(ENOMEM));
        let st = cache.stats();
        assert_eq!(
            (st.num_slabs, st.pages, st.event(Stat::AllocFailed)),
            (0, 0, 1)
        );
        let obj = cache.alloc(GFP_KERNEL)?;
        // SAFETY: From `cache`, freed once.
        unsafe { cache.free(obj) };
        cache.shrink();
        cache.fault().fail_percent(100);
        assert_eq!(cache.alloc(GFP_NOWAIT), Err(ENOMEM));
        cache.fault().fail_percent(0);
        assert_eq!(cache.stats().pages, 0);
        assert_eq!(Cache::destroy(cache), Some(0));
        Ok(())
    }

    /// `GFP_ATOMIC` with a spinlock held, through every path: sheaf
    /// refills, new slabs, flushes to the depot and the slabs, and `ENOMEM`
    /// under total failure, all without sleeping (the debug kernel's sleep
    /// checker and lockdep would report it).
    #[test]
    fn atomic_allocation_under_a_spinlock() -> Result {
        let cache = cache(c"rslab_test_atomic", 64, CacheFlags::NONE)?;
        let per_slab = cache.layout().objects(cache.layout().order) as usize;
        let n = 3 * per_slab;
        // Room for what is left in the sheaf and slabs after `n`, too.
        let mut objs = KVec::with_capacity(2 * n, GFP_KERNEL)?;
        let lock = KBox::pin_init(kernel::new_spinlock!(()), GFP_KERNEL)?;
        let guard = lock.lock();
        for _ in 0..n {
            let Ok(obj) = cache.alloc(GFP_ATOMIC) else {
                break;
            };
            // Cannot fail: the capacity is `2 * n`.
            let _ = objs.push_within_capacity(obj);
        }
        let got = objs.len();
        cache.fault().fail_percent(100);
        let refused = loop {
            match cache.alloc(GFP_ATOMIC) {
                // Drain what is left without a new slab.
                Ok(obj) if objs.push_within_capacity(obj).is_ok() => continue,
                Ok(obj) => {
                    // SAFETY: From `cache`, freed once.
                    unsafe { cache.free(obj) };
                    break false;
                }
                Err(e) => break e == ENOMEM,
            }
        };
        cache.fault().fail_percent(0);
        free_all(&cache, &mut objs);
        drop(guard);
        assert_eq!(got, n);
        assert!(refused);
        let st = cache.stats();
        assert!(st.event(Stat::NewSlab) >= 3 && st.event(Stat::Flush) > 0);
        assert_eq!(st.active_objs, 0);
        Ok(())
    }

    /// State shared by the stress workers.
    struct Stress {
        cache: Arc<Cache>,
        done: AtomicUsize,
        mismatches: AtomicUsize,
        failures: AtomicUsize,
    }

    /// One worker: rounds of allocating a batch, stamping each object with
    /// a pattern of its own, checking every pattern, and freeing.
    fn stress_worker(st: &Stress, id: usize) {
        const BATCH: usize = 48;
        let mut objs = [core::ptr::null_mut::<u8>(); BATCH];
        for round in 0..300 {
            let stamp = (id * 1000 + round) as u64;
            for (i, slot) in objs.iter_mut().enumerate() {
                match st.cache.alloc(GFP_KERNEL) {
                    Ok(obj) => {
                        // SAFETY: A live 64-byte object, owned by this worker.
                        unsafe { obj.as_ptr().cast::<[u64; 8]>().write([stamp ^ i as u64; 8]) };
                        *slot = obj.as_ptr();
                    }
                    Err(_) => {
                        st.failures.fetch_add(1, Relaxed);
                    }
                }
            }
            for (i, obj) in objs.iter_mut().enumerate() {
                let Some(p) = NonNull::new(core::mem::replace(obj, core::ptr::null_mut())) else {
                    continue;
                };
                // SAFETY: Still live and owned by this worker.
                if unsafe { p.as_ptr().cast::<[u64; 8]>().read() } != [stamp ^ i as u64; 8] {
                    st.mismatches.fetch_add(1, Relaxed);
                }
                // SAFETY: From `st.cache`, freed once.
                unsafe { st.cache.free(p) };
            }
        }
        st.done.fetch_add(1, Relaxed);
    }

    /// Workers that grow an empty cache at once: each that finds no free
    /// object allocates a slab and takes a sheaf's batch of it, so the free
    /// objects left in slabs when all are done are fewer than one slab per
    /// worker and one more. (SLUB also lets each CPU in its slow path
    /// allocate a slab; an unbounded over-allocation fails this.)
    #[test]
    fn concurrent_growth_allocates_at_most_a_slab_per_grower() -> Result {
        const EACH: usize = 200;
        let workers = 2 * sys::num_present_cpus() as usize;
        let cache = cache(c"rslab_test_growth", 64, CacheFlags::NONE)?;
        let per_slab = cache.layout().objects(cache.layout().order) as usize;
        let st = Arc::new(
            (cache, AtomicUsize::new(0), AtomicUsize::new(0)),
            GFP_KERNEL,
        )?;
        for _ in 0..workers {
            let st = st.clone();
            kernel::workqueue::system_unbound().try_spawn(GFP_KERNEL, move || {
                let (cache, allocated, release) = &*st;
                let mut objs = [core::ptr::null_mut(); EACH];
                let got = cache.alloc_bulk(GFP_KERNEL, &mut objs).is_ok();
                allocated.fetch_add(1, Relaxed);
                // Hold them until the test has looked.
                while release.load(Relaxed) == 0 {
                    kernel::time::delay::fsleep(kernel::time::Delta::from_millis(1));
                }
                if got {
                    // SAFETY: Allocated from `cache` above, freed once.
                    unsafe { cache.free_bulk(&objs) };
                }
                allocated.fetch_sub(1, Relaxed);
            })?;
        }
        let (cache, allocated, release) = &*st;
        let mut waited = 0;
        while allocated.load(Relaxed) < workers && waited < 30_000 {
            kernel::time::delay::fsleep(kernel::time::Delta::from_millis(10));
            waited += 10;
        }
        let all = allocated.load(Relaxed) == workers;
        let s = cache.stats();
        release.store(1, Relaxed);
        while allocated.load(Relaxed) > 0 {
            kernel::time::delay::fsleep(kernel::time::Delta::from_millis(10));
        }
        assert!(all);
        assert_eq!(s.active_objs, workers * EACH);
        let free_in_slabs = s.num_objs - s.active_objs - s.cached_objs;
        assert!(free_in_slabs < (workers + 1) * per_slab);
        assert_eq!(cache.stats().active_objs, 0);
        Ok(())
    }

    #[test]
    fn concurrent_alloc_free_keeps_every_pattern() -> Result {
        let workers = 2 * crate::sys::num_present_cpus() as usize;
        let st = Arc::new(
            Stress {
                cache: cache(c"rslab_test_stress", 64, CacheFlags::NONE)?,
                done: AtomicUsize::new(0),
                mismatches: AtomicUsize::new(0),
                failures: AtomicUsize::new(0),
            },
            GFP_KERNEL,
        )?;
        for id in 0..workers {
            let st = st.clone();
            kernel::workqueue::system_unbound()
                .try_spawn(GFP_KERNEL, move || stress_worker(&st, id))?;
        }
        // Bounded wait: a hung worker fails the test instead of the suite.
        for _ in 0..3000 {
            if st.done.load(Relaxed) == workers {
                break;
            }
            kernel::time::delay::fsleep(kernel::time::Delta::from_millis(10));
        }
        assert_eq!(st.done.load(Relaxed), workers);
        assert_eq!(st.mismatches.load(Relaxed), 0);
        assert_eq!(st.failures.load(Relaxed), 0);
        assert_eq!(st.cache.stats().active_objs, 0);
        Ok(())
    }
}
