// SPDX-License-Identifier: GPL-2.0

//! Generic KASAN's view of rslab's objects.
//!
//! The page allocator hands rslab whole unpoisoned slabs, so without this
//! KASAN would see no bound and no free inside them. As SLUB does, rslab
//! poisons a new slab as a red zone, unpoisons an object for exactly its
//! usable size when it hands it out (kmalloc: the size asked for; the last
//! 8-byte granule's shadow holds how many of its bytes are usable, so a
//! 13-byte object has 3 poisoned bytes after it), and poisons it again as
//! freed when it comes back. A free of an object already poisoned as freed
//! is a double free. rslab's own reads and writes of free objects
//! (freelist pointers, poison and red zone checks) happen inside a
//! [`Quiet`] window, as SLUB's `metadata_access_enable()`.
//!
//! Everything here compiles to nothing without `CONFIG_KASAN_GENERIC`.
//! Objects are always 8-byte aligned (the free pointer is a word), as
//! KASAN's granule needs.

#[cfg(CONFIG_KASAN_GENERIC)]
mod shadow {
    use core::ffi::c_void;

    extern "C" {
        pub(super) fn rslab_kasan_poison(addr: *const c_void, size: usize, free: bool);
        pub(super) fn rslab_kasan_unpoison(addr: *const c_void, size: usize);
        pub(super) fn rslab_kasan_is_free(addr: *const c_void) -> bool;
        pub(super) fn rslab_kasan_quiet();
        pub(super) fn rslab_kasan_loud();
    }
}

/// Marks `size` bytes at `addr` as a red zone (a new slab, a kmalloc
/// object's tail beyond the size asked for).
#[inline(always)]
pub(crate) fn poison_red_zone(addr: *const u8, size: usize) {
    #[cfg(CONFIG_KASAN_GENERIC)]
    // SAFETY: `addr` is rslab memory (a slab or an object), 8-byte aligned;
    // only its shadow is written.
    unsafe {
        shadow::rslab_kasan_poison(addr.cast(), size, false)
    };
    let _ = (addr, size);
}

/// Marks the `size`-byte object at `addr` as freed.
#[inline(always)]
pub(crate) fn poison_free(addr: *const u8, size: usize) {
    #[cfg(CONFIG_KASAN_GENERIC)]
    // SAFETY: As for `poison_red_zone`.
    unsafe {
        shadow::rslab_kasan_poison(addr.cast(), size, true)
    };
    let _ = (addr, size);
}

/// Makes exactly `size` bytes at `addr` usable.
#[inline(always)]
pub(crate) fn unpoison(addr: *const u8, size: usize) {
    #[cfg(CONFIG_KASAN_GENERIC)]
    // SAFETY: As for `poison_red_zone`.
    unsafe {
        shadow::rslab_kasan_unpoison(addr.cast(), size)
    };
    let _ = (addr, size);
}

/// Whether the object at `addr` is poisoned as freed (so a free of it is a
/// second one). Always `false` without KASAN.
#[inline(always)]
pub(crate) fn is_free(addr: *const u8) -> bool {
    #[cfg(CONFIG_KASAN_GENERIC)]
    // SAFETY: `addr` is in the direct map (a checked object of a slab);
    // only its shadow byte is read.
    return unsafe { shadow::rslab_kasan_is_free(addr.cast()) };
    #[cfg(not(CONFIG_KASAN_GENERIC))]
    {
        let _ = addr;
        false
    }
}

/// A window in which KASAN does not report this task's accesses: rslab's
/// own accesses to free objects and red zones. Ends when dropped.
pub(crate) struct Quiet(());

impl Quiet {
    /// Opens the window.
    #[inline(always)]
    pub(crate) fn new() -> Self {
        #[cfg(CONFIG_KASAN_GENERIC)]
        // SAFETY: Counts up `current->kasan_depth`; `drop` counts it down.
        unsafe {
            shadow::rslab_kasan_quiet()
        };
        Self(())
    }
}

impl Drop for Quiet {
    #[inline(always)]
    fn drop(&mut self) {
        #[cfg(CONFIG_KASAN_GENERIC)]
        // SAFETY: Pairs with `new`.
        unsafe {
            shadow::rslab_kasan_loud()
        };
    }
}
