// SPDX-License-Identifier: GPL-2.0

//! KASAN's quarantine for one cache: freed objects wait here, poisoned,
//! before their slot can be handed out again.
//!
//! Without it a sheaf is a stack, so the next allocation gets back the
//! object just freed, KASAN's shadow says "usable" again, and a use after
//! free through the old pointer goes unreported. Generic KASAN keeps SLUB's
//! freed objects in a global quarantine (`mm/kasan/quarantine.c`) for the
//! same reason; that one is not exported to modules, so rslab keeps its own:
//! a small FIFO per cache, bounded by [`QUARANTINE_BYTES`] of objects and
//! at most [`QUARANTINE_MAX`] objects. A free puts its object in and takes
//! the oldest out, to be freed for real, once the FIFO is full.
//!
//! The FIFO is threaded through the objects' free pointer words (a
//! quarantined object is free, so the word is rslab's), written and read
//! inside a [`kasan::Quiet`] window; the word is cleared when the object
//! leaves, so `init_on_free` still finds no old byte in it. Shrinking,
//! reclaim and destroying the cache empty it.
//!
//! Debug caches (no sheaves) have none: every free of theirs is checked at
//! its slab at once, as SLUB's debug caches do, and their `POISON` catches
//! a write after free at the slot's next allocation.
//!
//! Everything here compiles to nothing without `CONFIG_KASAN_GENERIC`:
//! [`Quarantine::hold`] gives the object straight back and holds nothing.

#[cfg(CONFIG_KASAN_GENERIC)]
use crate::cache::kasan;
use core::ptr::NonNull;
use kernel::prelude::*;

/// The most bytes of objects a cache's quarantine holds.
pub(crate) const QUARANTINE_BYTES: usize = 64 * 1024;

/// The most objects a cache's quarantine holds, whatever their size: each
/// may keep a slab from being freed (see [`Quarantine::capacity`]).
pub(crate) const QUARANTINE_MAX: usize = 64;

/// A cache's quarantine (see the module doc).
#[cfg(CONFIG_KASAN_GENERIC)]
#[pin_data]
pub(crate) struct Quarantine {
    #[pin]
    fifo: kernel::sync::SpinLockIrq<Fifo>,
}

/// The quarantined objects, oldest first, linked through the word at
/// `link` bytes into each.
///
/// # Invariants
///
/// `len` objects are linked from `head` to `tail` (both null when `len` is
/// 0); each is an object of the owning cache, freed by its user, poisoned,
/// and still counted as allocated in its slab.
#[cfg(CONFIG_KASAN_GENERIC)]
struct Fifo {
    head: *mut u8,
    tail: *mut u8,
    len: usize,
    capacity: usize,
    link: usize,
}

// SAFETY: The pointers are free objects of the owning cache, not tied to a
// thread; they are only followed under the lock.
#[cfg(CONFIG_KASAN_GENERIC)]
unsafe impl Send for Fifo {}

#[cfg(CONFIG_KASAN_GENERIC)]
impl Fifo {
    /// The word of `obj` that holds the next object's address.
    fn link_of(&self, obj: *mut u8) -> *mut *mut u8 {
        obj.wrapping_add(self.link).cast()
    }

    /// # Safety
    ///
    /// `obj` must be an object as the type invariant says, on no list.
    unsafe fn push(&mut self, obj: *mut u8) {
        let _quiet = kasan::Quiet::new();
        // SAFETY: `link` is the free pointer word, inside the object's
        // slot and word-aligned; the object is free and ours.
        unsafe { self.link_of(obj).write(core::ptr::null_mut()) };
        match NonNull::new(self.tail) {
            // SAFETY: The tail is a quarantined object (type invariant).
            Some(tail) => unsafe { self.link_of(tail.as_ptr()).write(obj) },
            None => self.head = obj,
        }
        self.tail = obj;
        self.len += 1;
    }

    /// The oldest object, its link cleared.
    fn pop(&mut self) -> Option<NonNull<u8>> {
        let obj = NonNull::new(self.head)?;
        let _quiet = kasan::Quiet::new();
        let link = self.link_of(obj.as_ptr());
        // SAFETY: The head is a quarantined object (type invariant); its
        // link word is ours until it leaves, which it does here.
        unsafe {
            self.head = link.read();
            link.write(core::ptr::null_mut());
        }
        if self.head.is_null() {
            self.tail = core::ptr::null_mut();
        }
        self.len -= 1;
        Some(obj)
    }
}

#[cfg(CONFIG_KASAN_GENERIC)]
impl Quarantine {
    /// An empty quarantine for a cache with sheaves of `sheaf_capacity`
    /// objects of `size`-byte slots whose free pointer word is `link` bytes
    /// in.
    pub(crate) fn new(sheaf_capacity: usize, size: usize, link: usize) -> impl PinInit<Self> {
        pin_init!(Self {
            fifo <- kernel::new_spinlock_irq!(
                Fifo {
                    head: core::ptr::null_mut(),
                    tail: core::ptr::null_mut(),
                    len: 0,
                    capacity: Self::capacity(sheaf_capacity, size),
                    link,
                },
                "rslab_quarantine"
            ),
        })
    }

    /// Puts the freed (and poisoned) `obj` in; returns the object to free
    /// for real now: the oldest one once the quarantine is full, else none
    /// (`obj` itself in a quarantine of capacity 0).
    ///
    /// # Safety
    ///
    /// `obj` must be an object of the owning cache that its user freed,
    /// poisoned, counted as allocated in its slab, and held nowhere else.
    #[inline(always)]
    pub(crate) unsafe fn hold(&self, obj: NonNull<u8>) -> Option<NonNull<u8>> {
        let mut fifo = self.fifo.lock();
        // SAFETY: The caller's promise.
        unsafe { fifo.push(obj.as_ptr()) };
        if fifo.len > fifo.capacity {
            fifo.pop()
        } else {
            None
        }
    }

    /// Takes out up to `out.len()` objects, oldest first, into `out`;
    /// returns how many. Each is then the caller's to free for real.
    pub(crate) fn take(&self, out: &mut [*mut u8]) -> usize {
        let mut fifo = self.fifo.lock();
        let mut n = 0;
        while n < out.len() {
            let Some(obj) = fifo.pop() else { break };
            out[n] = obj.as_ptr();
            n += 1;
        }
        n
    }

    /// How many objects wait in the quarantine.
    pub(crate) fn len(&self) -> usize {
        self.fifo.lock().len
    }
}

/// Without generic KASAN: holds nothing, costs nothing.
#[cfg(not(CONFIG_KASAN_GENERIC))]
pub(crate) struct Quarantine;

#[cfg(not(CONFIG_KASAN_GENERIC))]
impl Quarantine {
    /// Nothing to set up.
    pub(crate) fn new(sheaf_capacity: usize, size: usize, link: usize) -> impl PinInit<Self> {
        let _ = (sheaf_capacity, size, link);
        // A value is its own initialiser.
        Self
    }

    /// Gives `obj` straight back: it is freed for real at once.
    ///
    /// # Safety
    ///
    /// None needed here; the signature matches the KASAN one.
    #[inline(always)]
    pub(crate) unsafe fn hold(&self, obj: NonNull<u8>) -> Option<NonNull<u8>> {
        Some(obj)
    }

    /// Nothing is held.
    #[inline(always)]
    pub(crate) fn take(&self, _out: &mut [*mut u8]) -> usize {
        0
    }

    /// Nothing is held.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        0
    }
}

impl Quarantine {
    /// The most objects of `size`-byte slots the quarantine of a cache with
    /// sheaves of `sheaf_capacity` objects holds: 0 for a debug cache (no
    /// sheaves) and without generic KASAN.
    pub(crate) fn capacity(sheaf_capacity: usize, size: usize) -> usize {
        if cfg!(CONFIG_KASAN_GENERIC) && sheaf_capacity > 0 {
            (QUARANTINE_BYTES / size.max(1)).clamp(1, QUARANTINE_MAX)
        } else {
            0
        }
    }
}
