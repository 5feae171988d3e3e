// SPDX-License-Identifier: GPL-2.0

//! KUnit: what generic KASAN's shadow says of rslab's objects (see
//! `crate::cache::kasan`), read byte by byte without an access KASAN would report:
//! every object is usable for exactly its size (kmalloc: the size asked
//! for), the bytes after it are not, a freed object is not, a mempool
//! element waiting in the reserve is not, a second free is caught by its
//! shadow, and a freed object stays poisoned while its quarantine holds it.
//! Skipped without generic KASAN.

use crate::cache::debug::REPORTS;
use crate::cache::flags::{CacheFlag, CacheFlags};
use crate::cache::quarantine::{Quarantine, QUARANTINE_MAX};
use crate::cache::Cache;
use crate::kmalloc::Kmalloc;
use crate::mempool::{Backend, Mempool};
use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;
use kernel::prelude::*;
use kernel::sync::Arc;

#[cfg(CONFIG_KASAN_GENERIC)]
extern "C" {
    fn rslab_kunit_kasan_accessible(addr: *const core::ffi::c_void) -> bool;
}

/// Whether KASAN lets the byte at `p` be accessed.
fn accessible(p: *const u8) -> bool {
    #[cfg(CONFIG_KASAN_GENERIC)]
    // SAFETY: Reads the shadow of a direct-map address of rslab memory.
    return unsafe { rslab_kunit_kasan_accessible(p.cast()) };
    #[cfg(not(CONFIG_KASAN_GENERIC))]
    {
        let _ = p;
        true
    }
}

/// Whether exactly the `size` bytes at `obj` are usable: each of them, and
/// not the byte after.
fn usable_for(obj: NonNull<u8>, size: usize) -> bool {
    let p = obj.as_ptr();
    (0..size).all(|i| accessible(p.wrapping_add(i))) && !accessible(p.wrapping_add(size))
}

/// Skips the case (with the reason) on a kernel without generic KASAN.
fn no_kasan() -> bool {
    if !cfg!(CONFIG_KASAN_GENERIC) {
        crate::sys::kunit_skip(c"no generic KASAN in this kernel");
    }
    !cfg!(CONFIG_KASAN_GENERIC)
}

#[kunit_tests(rslab_kasan)]
mod tests {
    use super::*;

    /// Every allocation path: usable for exactly the object size, in
    /// plain and debug caches; poisoned again once freed.
    #[test]
    fn objects_are_usable_for_exactly_their_size() -> Result {
        if no_kasan() {
            return Ok(());
        }
        for flags in [
            CacheFlags::NONE,
            CacheFlag::RedZone.into(),
            CacheFlag::Poison.into(),
        ] {
            for size in [1, 7, 8, 13, 24, 64, 100, 4000] {
                let cache = Cache::new(c"rslab_test_kasan", size, 8, flags, None)?;
                let one = cache.alloc(GFP_KERNEL)?;
                let node = cache.alloc_node(GFP_KERNEL, crate::sys::numa_mem_id())?;
                let mut bulk = [core::ptr::null_mut(); 3];
                cache.alloc_bulk(GFP_KERNEL, &mut bulk)?;
                let mut all = KVec::with_capacity(5, GFP_KERNEL)?;
                all.extend_from_slice(&[one, node], GFP_KERNEL)?;
                for p in bulk.iter().filter_map(|&p| NonNull::new(p)) {
                    all.push(p, GFP_KERNEL)?;
                }
                for &obj in all.iter() {
                    assert!(usable_for(obj, size));
                }
                for obj in all {
                    // SAFETY: From `cache`, freed once.
                    unsafe { cache.free(obj) };
                    assert!(!accessible(obj.as_ptr()));
                }
            }
        }
        Ok(())
    }

    /// kmalloc: usable for the size asked for, not the whole class, small
    /// and large; `ksize()` makes the rest usable, as SLUB's.
    #[test]
    fn kmalloc_objects_are_usable_for_the_size_asked_for() -> Result {
        if no_kasan() {
            return Ok(());
        }
        let km = KBox::pin_init(Kmalloc::new(Kmalloc::class_cache), GFP_KERNEL)?;
        for size in [1, 13, 24, 100, 1000, 5000, 20000] {
            let obj = km.alloc(size, GFP_KERNEL)?;
            assert!(usable_for(obj, size));
            // SAFETY: A live allocation of `km`.
            let all = unsafe { km.ksize(obj) };
            assert!(all >= size);
            // All of it; not the byte after, which for a large allocation
            // is the next page, whatever the page allocator made of it.
            assert!((0..all).all(|i| accessible(obj.as_ptr().wrapping_add(i))));
            // SAFETY: Allocated above, freed once.
            unsafe { km.free(obj) };
        }
        Ok(())
    }

    /// A second free of an object of a plain cache (no consistency checks)
    /// is caught by its shadow, reported and ignored.
    #[test]
    fn a_second_free_is_caught_by_the_shadow() -> Result {
        if no_kasan() {
            return Ok(());
        }
        let cache = Cache::new(c"rslab_test_kasan_df", 64, 8, CacheFlags::NONE, None)?;
        let obj = cache.alloc(GFP_KERNEL)?;
        // SAFETY: From `cache`, freed once.
        unsafe { cache.free(obj) };
        let before = REPORTS.load(Relaxed);
        // SAFETY: Deliberately a second time: the shadow says it is free.
        unsafe { cache.free(obj) };
        assert_eq!(REPORTS.load(Relaxed), before + 1);
        // Not on the sheaf twice: two allocations give two objects.
        let (a, b) = (cache.alloc(GFP_KERNEL)?, cache.alloc(GFP_KERNEL)?);
        assert_ne!(a, b);
        // SAFETY: From `cache`, each freed once.
        unsafe {
            cache.free(a);
            cache.free(b);
        }
        assert_eq!(cache.stats().active_objs, 0);
        Ok(())
    }

    /// A freed object stays poisoned, and its slot out of use, while the
    /// `capacity - 1` frees after it; a second free of it meanwhile is
    /// reported once and not queued; the next free lets it go. A shrink
    /// empties the quarantine, and the cache gives back every page. A
    /// debug cache, which checks every free at its slab at once, has none.
    #[test]
    fn the_quarantine_keeps_a_freed_object_poisoned() -> Result {
        if no_kasan() {
            return Ok(());
        }
        let checks = CacheFlag::ConsistencyChecks;
        let checked = Cache::new(c"rslab_test_kasan_qc", 24, 8, checks, None)?;
        let obj = checked.alloc(GFP_KERNEL)?;
        // SAFETY: From `checked`, freed once.
        unsafe { checked.free(obj) };
        assert_eq!(checked.stats().quarantined_objs, 0);
        let cache = Cache::new(c"rslab_test_kasan_q", 24, 8, CacheFlags::NONE, None)?;
        let cap = QUARANTINE_MAX;
        assert_eq!(Quarantine::capacity(1, cache.layout().size), cap);
        let victim = cache.alloc(GFP_KERNEL)?;
        // SAFETY: From `cache`, freed once.
        unsafe { cache.free(victim) };
        for _ in 1..cap {
            let obj = cache.alloc(GFP_KERNEL)?;
            assert_ne!(obj, victim);
            // SAFETY: From `cache`, freed once.
            unsafe { cache.free(obj) };
            assert!(!accessible(victim.as_ptr()));
        }
        assert_eq!(cache.stats().quarantined_objs, cap);
        let before = REPORTS.load(Relaxed);
        // SAFETY: Deliberately a second time: the shadow says it is free.
        unsafe { cache.free(victim) };
        assert_eq!(REPORTS.load(Relaxed), before + 1);
        assert_eq!(cache.stats().quarantined_objs, cap);
        let obj = cache.alloc(GFP_KERNEL)?;
        // SAFETY: From `cache`, freed once: the victim leaves.
        unsafe { cache.free(obj) };
        let st = cache.stats();
        assert_eq!((st.quarantined_objs, st.active_objs), (cap, 0));
        assert!(!accessible(victim.as_ptr()));
        cache.shrink();
        let st = cache.stats();
        assert_eq!((st.quarantined_objs, st.pages), (0, 0));
        assert_eq!(Cache::destroy(cache), Some(0));
        Ok(())
    }

    /// A mempool's elements, from the backend or the reserve: usable for
    /// the element size.
    #[test]
    fn mempool_elements_are_usable_for_their_size() -> Result {
        if no_kasan() {
            return Ok(());
        }
        let km = Arc::pin_init(Kmalloc::new(Kmalloc::class_cache), GFP_KERNEL)?;
        let pool = Mempool::new(c"rslab_test_kasan_pool", 2, Backend::Kmalloc(km, 40))?;
        let elements = [
            pool.alloc(GFP_KERNEL)?,
            pool.alloc(GFP_KERNEL)?,
            pool.alloc(GFP_KERNEL)?,
        ];
        for &e in &elements {
            assert!(usable_for(e, 40));
        }
        for e in elements {
            // SAFETY: From `pool`, freed once.
            unsafe { pool.free(e) };
        }
        Ok(())
    }

    /// An element waiting in the reserve is poisoned: usable once taken
    /// from it, poisoned again once freed back into it.
    #[test]
    fn reserve_elements_are_poisoned_while_they_wait() -> Result {
        if no_kasan() {
            return Ok(());
        }
        let page = kernel::page::PAGE_SIZE;
        let pool = Mempool::new(c"rslab_test_kasan_reserve", 2, Backend::pages(0))?;
        // Every backend attempt fails: allocations come from the reserve.
        pool.backend().fault().fail_percent(100);
        let e = pool.alloc(GFP_NOWAIT)?;
        assert_eq!(pool.stats().alloc_reserve, 1);
        // (Not the byte after: the next page is the page allocator's.)
        assert!((0..page).all(|i| accessible(e.as_ptr().wrapping_add(i))));
        // SAFETY: From `pool`, freed once: back into the short reserve.
        unsafe { pool.free(e) };
        assert_eq!(pool.stats().curr_nr, 2);
        assert!(!accessible(e.as_ptr()) && !accessible(e.as_ptr().wrapping_add(page - 1)));
        pool.backend().fault().fail_percent(0);
        Ok(())
    }
}
