// SPDX-License-Identifier: GPL-2.0

//! Owned allocations: an object of a cache, of kmalloc or of a pool that
//! frees itself when dropped and gives safe access to its bytes.
//!
//! The allocators hand out raw pointers (their free functions are `unsafe`:
//! only the caller knows a pointer is theirs and unused). [`Object`] is the
//! one place that turns such a pointer into an owned value, so that the
//! device code above it needs no `unsafe` at all.

use crate::cache::Cache;
use crate::kmalloc::Kmalloc;
use crate::mempool::Mempool;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Where an object comes from.
#[derive(Clone)]
pub enum Source {
    /// A cache.
    Cache(Arc<Cache>),
    /// kmalloc, with the size asked for.
    Kmalloc(Arc<Kmalloc>, usize),
    /// A pool.
    Pool(Arc<Mempool>),
}

impl Source {
    /// The usable size of one object.
    pub fn object_size(&self) -> usize {
        match self {
            Source::Cache(c) => c.layout().object_size,
            Source::Kmalloc(_, size) => *size,
            Source::Pool(p) => p.backend().element_size(),
        }
    }

    /// The most memory one object pins, all overheads counted (see
    /// [`Cache::object_footprint`]): what a quota charges it.
    pub fn footprint(&self) -> usize {
        match self {
            Source::Cache(c) => c.object_footprint(),
            Source::Kmalloc(km, size) => km.footprint(*size),
            Source::Pool(p) => p.backend().footprint(),
        }
    }

    fn alloc(&self, gfp: bindings::gfp_t) -> Result<NonNull<u8>> {
        match self {
            Source::Cache(c) => c.alloc_raw(gfp),
            Source::Kmalloc(km, size) => km.alloc_raw(*size, gfp),
            // On behalf of user space: a wait must end on `kill -9`.
            Source::Pool(p) => p.alloc_killable(gfp),
        }
    }
}

/// One live allocation, zeroed when made, freed on drop.
///
/// # Invariants
///
/// `ptr` is a live allocation of `source`, valid for reads and writes of
/// `source.object_size()` bytes, initialised, and owned by this value alone.
pub struct Object {
    ptr: NonNull<u8>,
    source: Source,
}

// SAFETY: The object is plain memory owned by this value; its allocator can
// free it from any thread.
unsafe impl Send for Object {}
// SAFETY: `&Object` only reads the memory.
unsafe impl Sync for Object {}

impl Object {
    /// Allocates one object from `source` with `gfp`, and zeroes it so
    /// that no stale contents can be read back.
    pub fn new(source: Source, gfp: bindings::gfp_t) -> Result<Self> {
        let ptr = source.alloc(gfp)?;
        // SAFETY: `ptr` is a fresh allocation of `object_size()` bytes,
        // owned by nobody else.
        unsafe { ptr.as_ptr().write_bytes(0, source.object_size()) };
        // INVARIANT: As above; now initialised.
        Ok(Self { ptr, source })
    }

    /// Allocates `n` zeroed objects of `cache` in one bulk call (all or
    /// nothing).
    pub fn new_bulk(cache: &Arc<Cache>, n: usize, gfp: bindings::gfp_t) -> Result<KVec<Self>> {
        let mut raw = KVec::from_elem(core::ptr::null_mut(), n, GFP_KERNEL)?;
        let mut objects = KVec::with_capacity(n, GFP_KERNEL)?;
        cache.alloc_bulk_raw(gfp | bindings::__GFP_ZERO, &mut raw)?;
        for ptr in raw {
            // `alloc_bulk` succeeded, so every pointer is a live object.
            let Some(ptr) = NonNull::new(ptr) else {
                continue;
            };
            // INVARIANT: A fresh, zeroed object of `cache`, owned here.
            // Cannot fail: the capacity is `n`.
            let _ = objects.push_within_capacity(Self {
                ptr,
                source: Source::Cache(cache.clone()),
            });
        }
        Ok(objects)
    }

    /// Frees `objects` in one bulk call to `cache`. Objects of another
    /// source are freed one by one.
    pub fn free_bulk(cache: &Arc<Cache>, objects: KVec<Self>) {
        let mut raw = KVec::with_capacity(objects.len(), GFP_KERNEL).unwrap_or_default();
        for object in objects {
            let ours = matches!(&object.source, Source::Cache(c) if Arc::ptr_eq(c, cache));
            if ours && raw.len() < raw.capacity() {
                // Its memory is freed below; its reference to the cache
                // goes now (`cache` keeps the cache alive).
                let (ptr, _source) = object.into_raw();
                // Cannot fail: there is room, checked above.
                let _ = raw.push_within_capacity(ptr.as_ptr());
            }
        }
        // SAFETY: Each pointer was a live object of `cache` owned by an
        // `Object` that gave it up with `into_raw`, so it is freed once.
        unsafe { cache.free_bulk(&raw) };
    }

    /// Gives up ownership without freeing: the object's pointer, which the
    /// caller must free, and its source (whose references are dropped
    /// normally, unlike with `mem::forget`, which would leak them).
    fn into_raw(self) -> (NonNull<u8>, Source) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so `source` is
        // moved out of it exactly once.
        let source = unsafe { core::ptr::read(&this.source) };
        (this.ptr, source)
    }

    /// Where the object comes from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The object's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: By the type invariants, valid and initialised for this
        // many bytes, and not written while `&self` is held.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.source.object_size()) }
    }

    /// The object's bytes, to write.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: As in `bytes`, and `&mut self` makes the access unique.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.source.object_size()) }
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        let ptr = self.ptr;
        match &self.source {
            // SAFETY: By the type invariants, a live object of this source,
            // freed once (the value is going away).
            Source::Cache(c) => unsafe { c.free(ptr) },
            // SAFETY: As above.
            Source::Kmalloc(km, _) => unsafe { km.free(ptr) },
            // SAFETY: As above.
            Source::Pool(p) => unsafe { p.free(ptr) },
        }
    }
}
