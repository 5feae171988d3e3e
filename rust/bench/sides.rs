// SPDX-License-Identifier: GPL-2.0

//! The two sides of every benchmark case, behind one [`Side`] trait: rslab
//! (a fresh [`Cache`], the module's [`Kmalloc`], a fresh [`Mempool`]) and
//! the kernel (a fresh SLUB `kmem_cache`, `kmalloc()`, a `mempool_t` over a
//! fresh slab cache), each calling its allocator's real entry points.
//!
//! Fairness: the kernel caches get `SLAB_NO_MERGE` so that each case has a
//! cache of its own, as every rslab cache is; both use the same size and an
//! 8-byte alignment, without debug flags, and the rslab caches (and the
//! bench's own rslab kmalloc) SLUB's sheaf capacity for the size
//! ([`slub_sheaf_capacity`]). rslab's default capacity is measured as a
//! side of its own.

use crate::bench::loops::Side;
use crate::cache::flags::CacheFlags;
use crate::cache::Cache;
use crate::kmalloc::Kmalloc;
use crate::mempool::{Backend, Mempool};
use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::Arc;

/// The alignment of every benchmark cache, as rslab's kmalloc classes use.
pub(crate) const ALIGN: usize = 8;

/// The reserve of every benchmark pool.
pub(crate) const POOL_MIN_NR: usize = 16;

/// The size of SLUB's `struct slab_sheaf` without its `objects[]`: a
/// 16-byte union, the cache pointer, `size` and `node`.
const SLUB_SHEAF_HEADER: usize = 32;

/// The sheaf capacity SLUB gives a plain (no debug flags, no constructor)
/// cache of `size`-byte objects aligned to [`ALIGN`]: mm/slub.c's
/// `calculate_sheaf_capacity()`, which is private, so mirrored here. Its
/// base capacity by object size is rounded up so that a sheaf fills its
/// kmalloc bucket: 60, 28 and 12 objects for 64, 256 and 1024 bytes.
/// (`bench_table.sh` checks each held memory-row cache's
/// `/sys/kernel/slab/<cache>/sheaf_capacity` against it.)
pub(crate) fn slub_sheaf_capacity(size: usize) -> usize {
    let size = size.next_multiple_of(ALIGN);
    let base = match size {
        s if s >= kernel::page::PAGE_SIZE => 4,
        s if s >= 1024 => 12,
        s if s >= 256 => 26,
        _ => 60,
    };
    let bytes = SLUB_SHEAF_HEADER + base * size_of::<*mut c_void>();
    // SAFETY: A pure computation over the kmalloc size classes.
    let bucket = unsafe { bindings::kmalloc_size_roundup(bytes) };
    (bucket - SLUB_SHEAF_HEADER) / size_of::<*mut c_void>()
}

/// A fresh rslab cache.
pub(crate) struct RslabCache(pub(crate) Arc<Cache>);

impl RslabCache {
    /// Creates an unregistered cache of `size`-byte objects with SLUB's
    /// sheaf capacity for the size.
    pub(crate) fn new(name: &CStr, size: usize) -> Result<Self> {
        let capacity = slub_sheaf_capacity(size).min(crate::cache::SHEAF_MAX);
        Ok(Self(Cache::with_sheaf_capacity(
            name,
            size,
            ALIGN,
            CacheFlags::NONE,
            None,
            capacity,
        )?))
    }

    /// Creates an unregistered cache of `size`-byte objects with rslab's
    /// default sheaf capacity for the size.
    pub(crate) fn with_default_capacity(name: &CStr, size: usize) -> Result<Self> {
        Ok(Self(Cache::new(name, size, ALIGN, CacheFlags::NONE, None)?))
    }
}

/// A fresh rslab kmalloc whose size-class caches have SLUB's sheaf
/// capacity for their sizes, as the kernel's kmalloc caches do.
pub(crate) fn rslab_kmalloc() -> Result<Arc<Kmalloc>> {
    Arc::pin_init(
        Kmalloc::new(|name, size| Ok(RslabCache::new(name, size)?.0)),
        GFP_KERNEL,
    )
}

impl Side for RslabCache {
    #[inline]
    fn alloc(&self) -> Option<NonNull<u8>> {
        self.0.alloc(GFP_KERNEL).ok()
    }

    #[inline]
    unsafe fn free(&self, obj: NonNull<u8>) {
        // SAFETY: The caller's promise: an object of this cache.
        unsafe { self.0.free(obj) }
    }

    #[inline]
    fn alloc_bulk(&self, out: &mut [*mut u8]) -> bool {
        self.0.alloc_bulk(GFP_KERNEL, out).is_ok()
    }

    #[inline]
    unsafe fn free_bulk(&self, objs: &[*mut u8]) {
        // SAFETY: The caller's promise: objects of this cache.
        unsafe { self.0.free_bulk(objs) }
    }
}

/// rslab's kmalloc at one size.
pub(crate) struct RslabKmalloc(pub(crate) Arc<Kmalloc>, pub(crate) usize);

impl Side for RslabKmalloc {
    #[inline]
    fn alloc(&self) -> Option<NonNull<u8>> {
        self.0.alloc(self.1, GFP_KERNEL).ok()
    }

    #[inline]
    unsafe fn free(&self, obj: NonNull<u8>) {
        // SAFETY: The caller's promise: an allocation of this allocator.
        unsafe { self.0.free(obj) }
    }
}

/// A fresh rslab pool.
pub(crate) struct RslabPool(Arc<Mempool>);

impl RslabPool {
    /// A pool of [`POOL_MIN_NR`] over a fresh cache of `size`-byte objects:
    /// allocations come from the cache, frees go back to it (the reserve is
    /// full).
    pub(crate) fn backend(name: &CStr, size: usize) -> Result<Self> {
        let cache = RslabCache::new(name, size)?.0;
        Ok(Self(Mempool::new(
            name,
            POOL_MIN_NR,
            Backend::Cache(cache),
        )?))
    }

    /// A pool of [`POOL_MIN_NR`] whose backend refuses every allocation
    /// once the reserve is filled, so every allocation takes a reserved
    /// element and every free puts it back. (A pages backend: rslab's
    /// cache backend has no knob that fails every allocation, and the
    /// reserve path never reaches the backend's memory.)
    pub(crate) fn reserve(name: &CStr) -> Result<Self> {
        let pool = Mempool::new(name, POOL_MIN_NR, Backend::pages(0))?;
        pool.backend().fault().fail_next(u32::MAX);
        Ok(Self(pool))
    }
}

impl Side for RslabPool {
    #[inline]
    fn alloc(&self) -> Option<NonNull<u8>> {
        self.0.alloc(GFP_KERNEL).ok()
    }

    #[inline]
    unsafe fn free(&self, obj: NonNull<u8>) {
        // SAFETY: The caller's promise: an element of this pool.
        unsafe { self.0.free(obj) }
    }
}

/// A fresh SLUB cache.
///
/// # Invariants
///
/// `0` is a cache from `__kmem_cache_create_args`, destroyed on drop.
pub(crate) struct KernelCache(NonNull<bindings::kmem_cache>);

// SAFETY: A `kmem_cache` may be used from any thread.
unsafe impl Send for KernelCache {}
// SAFETY: As above: SLUB's entry points synchronise internally.
unsafe impl Sync for KernelCache {}

impl KernelCache {
    /// Creates a cache of `size`-byte objects, aligned as rslab's, that
    /// SLUB will not merge with another (`SLAB_NO_MERGE`).
    pub(crate) fn new(name: &CStr, size: usize) -> Result<Self> {
        let mut args = bindings::kmem_cache_args {
            align: ALIGN as u32,
            ..Default::default()
        };
        let flags = 1 << bindings::_slab_flag_bits__SLAB_NO_MERGE;
        let size = u32::try_from(size).map_err(|_| EINVAL)?;
        // SAFETY: `name` is a NUL-terminated string (SLUB copies it) and
        // `args` a valid, initialised argument block for the call.
        let s = unsafe {
            bindings::__kmem_cache_create_args(name.as_char_ptr(), size, &mut args, flags)
        };
        Ok(Self(NonNull::new(s).ok_or(ENOMEM)?))
    }

    /// The raw cache.
    pub(crate) fn as_ptr(&self) -> *mut bindings::kmem_cache {
        self.0.as_ptr()
    }
}

impl Drop for KernelCache {
    fn drop(&mut self) {
        // SAFETY: By the type invariant; every object has been freed.
        unsafe { bindings::kmem_cache_destroy(self.0.as_ptr()) };
    }
}

impl Side for KernelCache {
    fn alloc(&self) -> Option<NonNull<u8>> {
        // SAFETY: A live cache; `GFP_KERNEL` in process context.
        NonNull::new(
            unsafe { bindings::kmem_cache_alloc_noprof(self.as_ptr(), bindings::GFP_KERNEL) }
                .cast(),
        )
    }

    unsafe fn free(&self, obj: NonNull<u8>) {
        // SAFETY: The caller's promise: an object of this cache.
        unsafe { bindings::kmem_cache_free(self.as_ptr(), obj.as_ptr().cast()) };
    }

    fn alloc_bulk(&self, out: &mut [*mut u8]) -> bool {
        // SAFETY: `out` has room for `out.len()` pointers; all or nothing.
        unsafe {
            bindings::kmem_cache_alloc_bulk_noprof(
                self.as_ptr(),
                bindings::GFP_KERNEL,
                out.len(),
                out.as_mut_ptr().cast(),
            )
        }
    }

    unsafe fn free_bulk(&self, objs: &[*mut u8]) {
        // SAFETY: The caller's promise: objects of this cache. SLUB only
        // reads the array (its pointer type is not const).
        unsafe {
            bindings::kmem_cache_free_bulk(
                self.as_ptr(),
                objs.len(),
                objs.as_ptr().cast_mut().cast(),
            )
        };
    }
}

/// The kernel's `kmalloc()` at one size.
pub(crate) struct KernelKmalloc(pub(crate) usize);

impl Side for KernelKmalloc {
    fn alloc(&self) -> Option<NonNull<u8>> {
        // SAFETY: Any size and `GFP_KERNEL` in process context.
        NonNull::new(unsafe { bindings::__kmalloc_noprof(self.0, bindings::GFP_KERNEL) }.cast())
    }

    unsafe fn free(&self, obj: NonNull<u8>) {
        // SAFETY: The caller's promise: a live `kmalloc()` allocation.
        unsafe { bindings::kfree(obj.as_ptr().cast()) };
    }
}

/// What a refusing kernel pool's backend functions see.
struct PoolData {
    cache: KernelCache,
    refuse: AtomicBool,
}

/// A kernel `mempool_t` over a fresh SLUB cache.
///
/// # Invariants
///
/// `pool` is a live pool from `mempool_create_node_noprof` whose pool data
/// is `data` (or `data.cache` for a slab pool), destroyed on drop before
/// them.
pub(crate) struct KernelPool {
    pool: NonNull<bindings::mempool_t>,
    data: KBox<PoolData>,
}

// SAFETY: A `mempool_t` may be used from any thread.
unsafe impl Send for KernelPool {}
// SAFETY: As above: the pool locks internally; `data` is only read.
unsafe impl Sync for KernelPool {}

/// The refusing pool's allocation function: the slab cache until told to
/// refuse.
///
/// # Safety
///
/// `data` must be the pool's live [`PoolData`].
unsafe extern "C" fn refusing_alloc(gfp: bindings::gfp_t, data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the pool's `PoolData`, alive while the pool is.
    let data = unsafe { &*data.cast::<PoolData>() };
    if data.refuse.load(Relaxed) {
        return core::ptr::null_mut();
    }
    // SAFETY: A live cache.
    unsafe { bindings::kmem_cache_alloc_noprof(data.cache.as_ptr(), gfp) }
}

/// The refusing pool's free function.
///
/// # Safety
///
/// `data` must be the pool's live [`PoolData`], and `element` an object of
/// its cache that is not used again.
unsafe extern "C" fn refusing_free(element: *mut c_void, data: *mut c_void) {
    // SAFETY: `data` is the pool's `PoolData`; `element` one of its cache's
    // objects, as the pool only holds those.
    unsafe { bindings::kmem_cache_free((*data.cast::<PoolData>()).cache.as_ptr(), element) };
}

impl KernelPool {
    /// `mempool_create_slab_pool()`: [`POOL_MIN_NR`] over a fresh cache,
    /// with the kernel's `mempool_alloc_slab`/`mempool_free_slab`.
    pub(crate) fn backend(name: &CStr, size: usize) -> Result<Self> {
        let data = KBox::new(
            PoolData {
                cache: KernelCache::new(name, size)?,
                refuse: AtomicBool::new(false),
            },
            GFP_KERNEL,
        )?;
        let cache = data.cache.as_ptr().cast();
        Self::create(
            data,
            cache,
            bindings::mempool_alloc_slab,
            bindings::mempool_free_slab,
        )
    }

    /// A pool of [`POOL_MIN_NR`] over a fresh cache whose allocation
    /// function refuses once the reserve is filled, as [`RslabPool::reserve`].
    pub(crate) fn reserve(name: &CStr, size: usize) -> Result<Self> {
        let data = KBox::new(
            PoolData {
                cache: KernelCache::new(name, size)?,
                refuse: AtomicBool::new(false),
            },
            GFP_KERNEL,
        )?;
        let arg = core::ptr::from_ref(&*data).cast_mut().cast();
        let pool = Self::create(data, arg, refusing_alloc, refusing_free)?;
        pool.data.refuse.store(true, Relaxed);
        Ok(pool)
    }

    fn create(
        data: KBox<PoolData>,
        arg: *mut c_void,
        alloc: unsafe extern "C" fn(bindings::gfp_t, *mut c_void) -> *mut c_void,
        free: unsafe extern "C" fn(*mut c_void, *mut c_void),
    ) -> Result<Self> {
        // SAFETY: `arg` is the cache in `data`, or `data` itself, which
        // `Self` keeps (boxed, so unmoved) until its `Drop` has destroyed
        // the pool; `alloc` and `free` expect exactly that `arg`.
        let pool = unsafe {
            bindings::mempool_create_node_noprof(
                POOL_MIN_NR as i32,
                Some(alloc),
                Some(free),
                arg,
                bindings::GFP_KERNEL,
                bindings::NUMA_NO_NODE,
            )
        };
        Ok(Self {
            pool: NonNull::new(pool).ok_or(ENOMEM)?,
            data,
        })
    }
}

impl Drop for KernelPool {
    fn drop(&mut self) {
        // SAFETY: By the type invariant; every element has been freed.
        unsafe { bindings::mempool_destroy(self.pool.as_ptr()) };
    }
}

impl Side for KernelPool {
    fn alloc(&self) -> Option<NonNull<u8>> {
        // SAFETY: A live pool; `GFP_KERNEL` in process context.
        NonNull::new(
            unsafe { bindings::mempool_alloc_noprof(self.pool.as_ptr(), bindings::GFP_KERNEL) }
                .cast(),
        )
    }

    unsafe fn free(&self, obj: NonNull<u8>) {
        // SAFETY: The caller's promise: an element of this pool.
        unsafe { bindings::mempool_free(obj.as_ptr().cast(), self.pool.as_ptr()) };
    }
}
