// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of [`Mempool`](crate::mempool::Mempool) over every backend,
//! built only into rslab_kunit.ko (see `Kbuild`).

use kernel::prelude::*;

#[kunit_tests(rslab_mempool)]
mod suite {
    use crate::cache::flags::{CacheFlag, CacheFlags};
    use crate::cache::Cache;
    use crate::kmalloc::Kmalloc;
    use crate::mempool::{Backend, Mempool};
    use core::ptr::NonNull;
    use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use kernel::prelude::*;
    use kernel::sync::Arc;
    use kernel::time::{delay::fsleep, Delta};

    /// Allocates with `alloc` until it fails, so a backend whose fault
    /// injection is at 100% has nothing left to give; returns what it got.
    fn drain(mut alloc: impl FnMut() -> Result<NonNull<u8>>) -> Result<KVec<NonNull<u8>>> {
        let mut got = KVec::new();
        while let Ok(p) = alloc() {
            got.push(p, GFP_KERNEL)?;
        }
        Ok(got)
    }

    /// With the backend failing every time, exactly `min_nr` allocations
    /// succeed (from the reserve) and the next non-sleeping one fails.
    fn reserve_is_exact(pool: &Mempool, min_nr: usize) -> Result {
        let mut got = KVec::new();
        for _ in 0..min_nr {
            got.push(pool.alloc(GFP_NOWAIT)?, GFP_KERNEL)?;
        }
        assert_eq!(pool.alloc(GFP_NOWAIT), Err(ENOMEM));
        let st = pool.stats();
        assert_eq!(
            (st.alloc_reserve, st.alloc_backend, st.curr_nr),
            (min_nr as u64, 0, 0)
        );
        assert_eq!((st.failures, st.outstanding), (1, min_nr));
        pool.backend().fault().fail_percent(0);
        for p in got.drain_all() {
            // SAFETY: From `pool`, freed once.
            unsafe { pool.free(p) };
        }
        assert_eq!(pool.stats().curr_nr, min_nr);
        Ok(())
    }

    #[test]
    fn cache_backend_reserve_under_total_failure() -> Result {
        let cache = Cache::new(c"rslab_test_pool_c", 128, 8, CacheFlags::NONE, None)?;
        let pool = Mempool::new(c"rslab_test_pool_c", 5, Backend::Cache(cache.clone()))?;
        pool.backend().fault().fail_percent(100);
        let mut drained = drain(|| cache.alloc(GFP_NOWAIT))?;
        reserve_is_exact(&pool, 5)?;
        for p in drained.drain_all() {
            // SAFETY: From `cache`, freed once.
            unsafe { cache.free(p) };
        }
        assert_eq!(Mempool::destroy(pool), Some(0));
        Ok(())
    }

    #[test]
    fn kmalloc_backend_reserve_under_total_failure() -> Result {
        let km = Arc::pin_init(Kmalloc::new(Kmalloc::class_cache), GFP_KERNEL)?;
        let pool = Mempool::new(c"rslab_test_pool_k", 3, Backend::Kmalloc(km.clone(), 1000))?;
        km.fault_for(1000).fail_percent(100);
        let mut drained = drain(|| km.alloc(1000, GFP_NOWAIT))?;
        reserve_is_exact(&pool, 3)?;
        for p in drained.drain_all() {
            // SAFETY: From `km`, freed once.
            unsafe { km.free(p) };
        }
        assert_eq!(Mempool::destroy(pool), Some(0));
        Ok(())
    }

    #[test]
    fn pages_backend_reserve_under_total_failure() -> Result {
        let pool = Mempool::new(c"rslab_test_pool_p", 4, Backend::pages(1))?;
        pool.backend().fault().fail_percent(100);
        reserve_is_exact(&pool, 4)?;
        Ok(())
    }

    /// Creation fails when the backend refuses an element, giving back
    /// the ones it got: at once, and after two elements succeeded.
    #[test]
    fn creation_fails_cleanly_when_the_backend_fails() -> Result {
        let backend = Backend::pages(0);
        backend.fault().fail_next(3);
        assert!(Mempool::new(c"rslab_test_pool_fail", 2, backend).is_err());
        // A cache with exactly two free objects, and no new slab to give.
        // A debug cache has no sheaves, so its free objects are all in its
        // slabs, where an allocation on any CPU finds them. (With sheaves,
        // what this thread left in the sheaf of a CPU it migrated from is
        // free but out of its reach, and would grow a slab instead.)
        let cache = Cache::new(
            c"rslab_test_pool_fail2",
            64,
            8,
            CacheFlag::ConsistencyChecks,
            None,
        )?;
        let per_slab = cache.layout().objects(cache.layout().order) as usize;
        let mut held = KVec::with_capacity(per_slab, GFP_KERNEL)?;
        while held.len() < per_slab - 2 {
            held.push(cache.alloc(GFP_KERNEL)?, GFP_KERNEL)?;
        }
        assert_eq!((free_objects(&cache), cache.stats().num_slabs), (2, 1));
        cache.fault().fail_next(1);
        let pool = Mempool::new(c"rslab_test_pool_fail2", 4, Backend::Cache(cache.clone()));
        assert!(pool.is_err());
        assert_eq!(cache.stats().active_objs, held.len());
        for obj in held.drain_all() {
            // SAFETY: From `cache`, freed once.
            unsafe { cache.free(obj) };
        }
        Ok(())
    }

    /// Objects of `cache` that are free: in its slabs, sheaves or depots.
    fn free_objects(cache: &Cache) -> usize {
        let st = cache.stats();
        st.num_objs - st.active_objs
    }

    #[test]
    fn frees_refill_the_reserve_before_the_backend() -> Result {
        let pool = Mempool::new(c"rslab_test_pool_refill", 4, Backend::pages(0))?;
        pool.backend().fault().fail_percent(100);
        let mut got = KVec::new();
        for _ in 0..3 {
            got.push(pool.alloc(GFP_NOWAIT)?, GFP_KERNEL)?;
        }
        pool.backend().fault().fail_percent(0);
        for _ in 0..2 {
            got.push(pool.alloc(GFP_KERNEL)?, GFP_KERNEL)?;
        }
        let st = pool.stats();
        assert_eq!((st.alloc_reserve, st.alloc_backend, st.curr_nr), (3, 2, 1));
        for p in got.drain_all() {
            // SAFETY: From `pool`, freed once.
            unsafe { pool.free(p) };
        }
        let st = pool.stats();
        assert_eq!((st.free_reserve, st.free_backend, st.curr_nr), (3, 2, 4));
        Ok(())
    }

    #[test]
    fn resize_grows_and_shrinks_the_reserve() -> Result {
        let pool = Mempool::new(c"rslab_test_pool_resize", 2, Backend::pages(0))?;
        pool.resize(5)?;
        let st = pool.stats();
        assert_eq!((st.min_nr, st.curr_nr), (5, 5));
        pool.resize(1)?;
        let st = pool.stats();
        assert_eq!((st.min_nr, st.curr_nr, st.free_backend), (1, 1, 4));
        pool.resize(0)?;
        assert_eq!(pool.stats().curr_nr, 0);
        Ok(())
    }

    #[test]
    fn destroy_reports_outstanding_elements() -> Result {
        let cache = Cache::new(c"rslab_test_pool_leak", 64, 8, CacheFlags::NONE, None)?;
        let pool = Mempool::new(c"rslab_test_pool_leak", 2, Backend::Cache(cache.clone()))?;
        let (a, b) = (pool.alloc(GFP_KERNEL)?, pool.alloc(GFP_KERNEL)?);
        assert_eq!(Mempool::destroy(pool), Some(2));
        // The pool is gone; its elements are the cache's objects.
        // SAFETY: Both came from `cache` (through the pool), freed once.
        unsafe {
            cache.free(a);
            cache.free(b);
        }
        assert_eq!(Cache::destroy(cache), Some(0));
        Ok(())
    }

    /// Waits up to `ms` milliseconds for `done` to reach `n`.
    fn wait_for(done: &AtomicUsize, n: usize, ms: usize) -> bool {
        for _ in 0..ms / 10 {
            if done.load(Relaxed) >= n {
                return true;
            }
            fsleep(Delta::from_millis(10));
        }
        done.load(Relaxed) >= n
    }

    struct Waiter {
        pool: Arc<Mempool>,
        got: AtomicUsize,
        done: AtomicUsize,
    }

    #[test]
    fn a_sleeping_allocation_wakes_when_an_element_is_freed() -> Result {
        let pool = Mempool::new(c"rslab_test_pool_wait", 1, Backend::pages(0))?;
        pool.backend().fault().fail_percent(100);
        let held = pool.alloc(GFP_NOWAIT)?;
        let w = Arc::new(
            Waiter {
                pool: pool.clone(),
                got: AtomicUsize::new(0),
                done: AtomicUsize::new(0),
            },
            GFP_KERNEL,
        )?;
        let worker = w.clone();
        kernel::workqueue::system_unbound().try_spawn(GFP_KERNEL, move || {
            if let Ok(p) = worker.pool.alloc(GFP_KERNEL) {
                worker.got.store(p.as_ptr() as usize, Relaxed);
            }
            worker.done.store(1, Relaxed);
        })?;
        // The worker is blocked: the reserve is empty, the backend fails.
        fsleep(Delta::from_millis(100));
        assert_eq!(w.done.load(Relaxed), 0);
        // SAFETY: From `pool`, freed once.
        unsafe { pool.free(held) };
        let woke = wait_for(&w.done, 1, 2000);
        // Whatever happened, let a stuck worker finish (its 5 s retry then
        // succeeds) before the test ends.
        pool.backend().fault().fail_percent(0);
        assert!(wait_for(&w.done, 1, 15000));
        assert!(woke);
        let st = pool.stats();
        assert!(st.waits >= 1 && st.wakeups >= 1);
        let p = NonNull::new(w.got.load(Relaxed) as *mut u8);
        assert!(p.is_some());
        if let Some(p) = p {
            assert_eq!(p.as_ptr(), held.as_ptr());
            // SAFETY: The worker's element, from `pool`, freed once.
            unsafe { pool.free(p) };
        }
        Ok(())
    }

    struct PoolStress {
        pool: Arc<Mempool>,
        done: AtomicUsize,
        mismatches: AtomicUsize,
    }

    fn pool_worker(st: &PoolStress, id: usize) {
        let mut held = [core::ptr::null_mut::<u8>(); 8];
        for round in 0..400 {
            let stamp = (id << 32 | round) as u64;
            for (i, slot) in held.iter_mut().enumerate() {
                // Non-sleeping: with the backend failing 30%, some fail.
                if let Ok(p) = st.pool.alloc(GFP_NOWAIT) {
                    // SAFETY: A live element (a page), owned by this worker.
                    unsafe { p.as_ptr().cast::<u64>().write(stamp ^ i as u64) };
                    *slot = p.as_ptr();
                }
            }
            for (i, slot) in held.iter_mut().enumerate() {
                if let Some(p) = NonNull::new(core::mem::replace(slot, core::ptr::null_mut())) {
                    // SAFETY: Still live and owned by this worker.
                    if unsafe { p.as_ptr().cast::<u64>().read() } != stamp ^ i as u64 {
                        st.mismatches.fetch_add(1, Relaxed);
                    }
                    // SAFETY: From `st.pool`, freed once.
                    unsafe { st.pool.free(p) };
                }
            }
        }
        st.done.fetch_add(1, Relaxed);
    }

    #[test]
    fn concurrent_pool_stress_keeps_patterns_and_reserve() -> Result {
        // A pages backend: its fault injection fails 30% of the elements
        // themselves (a cache's fails only its new slabs, too rarely to
        // reach the reserve), so the reserve serves some allocations.
        let pool = Mempool::new(c"rslab_test_pool_stress", 8, Backend::pages(0))?;
        pool.backend().fault().fail_percent(30);
        let workers = 2 * crate::sys::num_present_cpus() as usize;
        let st = Arc::new(
            PoolStress {
                pool,
                done: AtomicUsize::new(0),
                mismatches: AtomicUsize::new(0),
            },
            GFP_KERNEL,
        )?;
        for id in 0..workers {
            let st = st.clone();
            kernel::workqueue::system_unbound()
                .try_spawn(GFP_KERNEL, move || pool_worker(&st, id))?;
        }
        assert!(wait_for(&st.done, workers, 30000));
        st.pool.backend().fault().fail_percent(0);
        assert_eq!(st.mismatches.load(Relaxed), 0);
        let s = st.pool.stats();
        assert_eq!((s.outstanding, s.curr_nr), (0, 8));
        assert!(s.alloc_backend > 0 && s.alloc_reserve > 0);
        Ok(())
    }
}
