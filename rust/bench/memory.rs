// SPDX-License-Identifier: GPL-2.0

//! The benchmark's memory rows: what a fresh cache holds with a number of
//! live objects, by each allocator's own counters.
//!
//! rslab's come from [`Cache::stats`]. SLUB's per-cache counters have no
//! exported in-kernel accessor, so they are read where SLUB publishes them,
//! `/sys/kernel/slab/<cache>/` (`slabs`, `order`, `objs_per_slab`; the
//! kernel caches are `SLAB_NO_MERGE`, so the directory is the cache's own).

use crate::bench::helpers;
use crate::bench::loops::Side;
use crate::bench::sides::{KernelCache, RslabCache};
use crate::cache::Cache;
use crate::sys;
use kernel::prelude::*;
use kernel::str::CString;

/// What a cache holds.
#[derive(Clone, Copy)]
pub(crate) struct Footprint {
    /// Pages held by the cache's slabs.
    pub(crate) pages: usize,
    /// Objects per slab of the cache's order.
    pub(crate) objs_per_slab: usize,
    /// Bytes of such a slab that hold no object.
    pub(crate) loss_bytes: usize,
}

/// Allocates `n` objects from `a`, runs `f`, frees them.
fn with_live<A: Side, R>(a: &A, n: usize, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let mut live = VVec::with_capacity(n, GFP_KERNEL)?;
    let mut result = Ok(());
    for _ in 0..n {
        match a.alloc() {
            // Cannot fail: the capacity is `n`.
            Some(obj) => drop(live.push_within_capacity(obj)),
            None => {
                result = Err(ENOMEM);
                break;
            }
        }
    }
    let r = result.and_then(|()| f());
    for &obj in live.iter() {
        // SAFETY: Allocated above from `a`, freed once.
        unsafe { a.free(obj) };
    }
    r
}

fn loss(order: usize, objs: usize, size: usize) -> usize {
    (sys::PAGE_SIZE << order).saturating_sub(objs * size)
}

/// rslab: a fresh cache of `size`-byte objects with `n` live objects.
pub(crate) fn rslab(name: &CStr, size: usize, n: usize) -> Result<Footprint> {
    let cache = RslabCache::new(name, size)?;
    with_live(&cache, n, || Ok(footprint_of(&cache.0, size)))
}

fn footprint_of(cache: &Cache, size: usize) -> Footprint {
    let st = cache.stats();
    Footprint {
        pages: st.pages,
        objs_per_slab: st.objperslab,
        loss_bytes: loss(cache.layout().order as usize, st.objperslab, size),
    }
}

/// SLUB: a fresh `SLAB_NO_MERGE` cache with `n` live objects.
pub(crate) fn kernel(name: &CStr, size: usize, n: usize) -> Result<Footprint> {
    let cache = KernelCache::new(name, size)?;
    with_live(&cache, n, || {
        let slabs = slub_counter(name, "slabs")?;
        let order = slub_counter(name, "order")?;
        let objs = slub_counter(name, "objs_per_slab")?;
        Ok(Footprint {
            pages: slabs << order,
            objs_per_slab: objs,
            loss_bytes: loss(order, objs, size),
        })
    })
}

/// The leading number of `/sys/kernel/slab/<cache>/<attr>`.
fn slub_counter(cache: &CStr, attr: &str) -> Result<usize> {
    let path = CString::try_from_fmt(fmt!("/sys/kernel/slab/{cache}/{attr}"))?;
    let mut buf = [0u8; 64];
    // SAFETY: `path` is NUL-terminated; `buf` has room for `buf.len()` bytes.
    let len =
        unsafe { helpers::rslab_bench_read_file(path.as_char_ptr(), buf.as_mut_ptr(), buf.len()) };
    let len = usize::try_from(len).map_err(|_| Error::from_errno(len as i32))?;
    let text = core::str::from_utf8(&buf[..len]).map_err(|_| EIO)?;
    let digits = text
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or("");
    digits.parse().map_err(|_| EIO)
}
