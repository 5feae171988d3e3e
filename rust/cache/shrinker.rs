// SPDX-License-Identifier: GPL-2.0

//! Memory pressure: a cache gives back its empty slabs and parked objects
//! when the kernel's reclaim asks.
//!
//! Between two `shrink`s a cache keeps memory that holds no live object:
//! up to `min_partial` empty slabs per node, and the objects parked in each
//! node's depot (which keep their slabs' pages). Each cache registers a
//! shrinker, so that reclaim (kswapd, direct reclaim, `drop_caches`) takes
//! them back when memory runs short, without anyone writing `shrink`.
//!
//! The sheaves are left alone, as SLUB leaves its per-CPU sheaves: reaching
//! another CPU's sheaf means running on that CPU, which reclaim must not
//! wait for, and a sheaf is bounded (see `Cache`'s capacity).
//!
//! The 7.3 kernel crate has no shrinker abstraction, so this uses the C API
//! (`shrinker_alloc()`, `shrinker_register()`, `shrinker_free()`) through
//! `kernel::bindings`.

use crate::cache::Cache;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering::Relaxed};
use kernel::bindings;
use kernel::ffi::c_ulong;
use kernel::prelude::*;

/// A cache's shrinker: a field of the cache, registered once the cache has
/// its final address ([`Shrinker::register`]), unregistered before it goes
/// ([`Shrinker::unregister`], also on drop).
///
/// # Invariants
///
/// `raw` is null, or a registered shrinker whose `private_data` is the
/// address of the [`Cache`] this is a field of.
pub(crate) struct Shrinker {
    raw: AtomicPtr<bindings::shrinker>,
}

impl Shrinker {
    /// Not registered yet.
    pub(crate) fn new() -> Self {
        Self {
            raw: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Registers a shrinker named `rslab-<name>` for `cache`.
    ///
    /// Errors: `ENOMEM`.
    ///
    /// # Safety
    ///
    /// `self` must be the `shrinker` field of `cache`, which must never move,
    /// and [`Shrinker::unregister`] must run before `cache` is freed or used
    /// mutably.
    pub(crate) unsafe fn register(&self, name: &CStr, cache: &Cache) -> Result {
        // SAFETY: A valid format with one string argument, a valid C string.
        let raw =
            unsafe { bindings::shrinker_alloc(0, c"rslab-%s".as_char_ptr(), name.as_char_ptr()) };
        if raw.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `raw` is a new, unregistered shrinker: ours to set up.
        unsafe {
            (*raw).count_objects = Some(count);
            (*raw).scan_objects = Some(scan);
            (*raw).private_data = ptr::from_ref(cache).cast_mut().cast();
            bindings::shrinker_register(raw);
        }
        // INVARIANT: Registered above, for the cache this is a field of.
        self.raw.store(raw, Relaxed);
        Ok(())
    }

    /// Unregisters the shrinker, waiting for a callback in progress; none
    /// runs after. May sleep.
    pub(crate) fn unregister(&self) {
        let raw = self.raw.swap(ptr::null_mut(), Relaxed);
        if !raw.is_null() {
            // SAFETY: By the type invariants, a registered shrinker, which
            // nobody else frees (it left `raw` above).
            unsafe { bindings::shrinker_free(raw) };
        }
    }
}

impl Drop for Shrinker {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// The cache of a shrinker callback.
///
/// # Safety
///
/// `s` must be a shrinker registered by [`Shrinker::register`], still
/// registered (a callback runs only while it is).
unsafe fn cache_of<'a>(s: *mut bindings::shrinker) -> &'a Cache {
    // SAFETY: By the type invariants of `Shrinker`, a live cache.
    unsafe { &*(*s).private_data.cast::<Cache>() }
}

/// How many objects reclaim would give back; `SHRINK_EMPTY` for none.
///
/// # Safety
///
/// Called by the shrinker core only.
unsafe extern "C" fn count(
    s: *mut bindings::shrinker,
    _sc: *mut bindings::shrink_control,
) -> c_ulong {
    // SAFETY: The shrinker core calls this only for a registered shrinker.
    match unsafe { cache_of(s) }.reclaimable() {
        0 => bindings::SHRINK_EMPTY as c_ulong,
        n => n,
    }
}

/// Gives back parked objects and empty slabs; how many objects' room was
/// freed.
///
/// # Safety
///
/// Called by the shrinker core only.
unsafe extern "C" fn scan(
    s: *mut bindings::shrinker,
    sc: *mut bindings::shrink_control,
) -> c_ulong {
    // SAFETY: The shrinker core passes its live control structure.
    let nr = unsafe { (*sc).nr_to_scan };
    // SAFETY: The shrinker core calls this only for a registered shrinker.
    unsafe { cache_of(s) }.reclaim(nr)
}
