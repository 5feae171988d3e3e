// SPDX-License-Identifier: GPL-2.0

//! The benchmark's memory rows: what a fresh cache holds with a number of
//! live objects, by each allocator's own counters.
//!
//! rslab's come from [`Cache::stats`]. SLUB's per-cache counters have no
//! exported in-kernel accessor; SLUB publishes them in
//! `/sys/kernel/slab/<cache>/` (`slabs`, `order`, `objs_per_slab`; the
//! kernel caches are `SLAB_NO_MERGE`, so the directory is the cache's own).
//! The kernel side's cache is therefore [`Held`] with its live objects
//! after the run, and user space reads those files (see
//! `tools/testing/selftests/rslab/bench_table.sh`), then writes `release`.

use crate::bench::loops::Side;
use crate::bench::sides::{KernelCache, RslabCache};
use crate::cache::slab::Slab;
use crate::cache::Cache;
use crate::sys;
use core::ptr::NonNull;
use kernel::prelude::*;

/// What a cache holds.
#[derive(Clone, Copy)]
pub(crate) struct Footprint {
    /// Pages held by the cache's slabs.
    pub(crate) pages: usize,
    /// Those pages plus the slabs' metadata, in pages: rslab keeps a
    /// `Slab` per slab in a kmalloc object, where SLUB uses the slab's own
    /// `struct page`, which every page has anyway.
    pub(crate) pages_with_meta: usize,
    /// Objects per slab of the cache's order.
    pub(crate) objs_per_slab: usize,
    /// Bytes of such a slab that hold no object.
    pub(crate) loss_bytes: usize,
}

/// A side's cache with live objects, all freed when it drops.
pub(crate) struct Held<A: Side> {
    side: A,
    live: VVec<NonNull<u8>>,
}

impl<A: Side> Held<A> {
    /// Allocates `n` objects from `side`; `ENOMEM`, having freed any, if
    /// it cannot.
    pub(crate) fn new(side: A, n: usize) -> Result<Self> {
        let mut held = Self {
            side,
            live: VVec::with_capacity(n, GFP_KERNEL)?,
        };
        for _ in 0..n {
            let obj = held.side.alloc().ok_or(ENOMEM)?;
            // Cannot fail: the capacity is `n`.
            drop(held.live.push_within_capacity(obj));
        }
        Ok(held)
    }
}

// SAFETY: The live objects are owned by this value alone, as the side's
// allocations are by any owner (`Side` is `Sync`; its objects are not tied
// to a thread).
unsafe impl<A: Side + Send> Send for Held<A> {}
// SAFETY: `&Held` gives no access to the objects.
unsafe impl<A: Side> Sync for Held<A> {}

impl<A: Side> Drop for Held<A> {
    fn drop(&mut self) {
        for &obj in self.live.iter() {
            // SAFETY: Allocated by `new` from this side, freed once.
            unsafe { self.side.free(obj) };
        }
    }
}

fn loss(order: usize, objs: usize, size: usize) -> usize {
    (sys::PAGE_SIZE << order).saturating_sub(objs * size)
}

/// rslab: a fresh cache of `size`-byte objects with `n` live objects.
pub(crate) fn rslab(name: &CStr, size: usize, n: usize) -> Result<Footprint> {
    let held = Held::new(RslabCache::new(name, size)?, n)?;
    Ok(footprint_of(&held.side.0, size))
}

fn footprint_of(cache: &Cache, size: usize) -> Footprint {
    let st = cache.stats();
    // SAFETY: A pure computation on the size (no object is touched).
    let meta = unsafe { kernel::bindings::kmalloc_size_roundup(size_of::<Slab>()) };
    Footprint {
        pages: st.pages,
        pages_with_meta: st.pages + (st.num_slabs * meta).div_ceil(sys::PAGE_SIZE),
        objs_per_slab: st.objperslab,
        loss_bytes: loss(cache.layout().order as usize, st.objperslab, size),
    }
}

/// SLUB: a fresh `SLAB_NO_MERGE` cache named `name` with `n` live objects,
/// held until dropped, for user space to read its counters.
pub(crate) fn kernel(name: &CStr, size: usize, n: usize) -> Result<Held<KernelCache>> {
    Held::new(KernelCache::new(name, size)?, n)
}
