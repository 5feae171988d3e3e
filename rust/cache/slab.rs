// SPDX-License-Identifier: GPL-2.0

//! One slab: 2^order pages from the page allocator, carved into object slots,
//! with a freelist threaded through the free slots that were used before.
//! The slots never handed out are taken in order, from `fresh` on (SLUB's
//! `alloc_from_new_slab()`), so a new slab threads no freelist.
//!
//! The metadata ([`Slab`]) lives off the slab, in kmalloc memory, so a slab
//! holds as many objects as SLUB's (which keeps it in `struct page`). The
//! head page's `private` field points to it: that is how a freed object
//! finds its slab with neither a lock nor a search ([`Slab::of`]).
//!
//! The freelist's next pointers are stored in the free objects, hardened as
//! with `CONFIG_SLAB_FREELIST_HARDENED`: `next ^ key ^ swab(&slot)`, so a
//! stray write or a leaked value does not give a usable pointer.
//!
//! This file and [`crate::cache::percpu`] hold rslab's raw-memory `unsafe` code.
//!
//! # Invariants
//!
//! * `base` is the address of 2^`order` pages that this slab owns; its head
//!   page's `private` points to this `Slab` until [`Slab::free_pages`].
//! * Every slot of the slab is either on `freelist`, at an index of `fresh`
//!   or above, or allocated; `inuse` counts the allocated ones. With
//!   consistency checks, `allocated` has one bit per slot, set exactly for
//!   the allocated ones.
//! * The mutable fields are only touched under the lock of the node list that
//!   holds the slab (see [`crate::cache::node`]).

use crate::cache::debug;
use crate::cache::flags::{CacheFlag, CacheFlags};
use crate::cache::kasan;
use crate::cache::layout::Layout;
use crate::page::Pages;
use crate::sys;
use core::ffi::c_void;
use core::num::NonZeroU32;
use core::ptr::{self, NonNull};
use kernel::bitmap::BitmapVec;
use kernel::prelude::*;

/// Which node list a slab is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlabState {
    /// No object allocated.
    Empty,
    /// Some objects allocated.
    Partial,
    /// Every object allocated.
    Full,
}

/// What a cache tells each of its slabs.
pub(crate) struct SlabParams<'a> {
    /// The object layout.
    pub(crate) layout: &'a Layout,
    /// The cache's flags.
    pub(crate) flags: CacheFlags,
    /// The free-pointer key.
    pub(crate) key: usize,
    /// The constructor, run once per slot when the slab is made.
    pub(crate) ctor: Option<fn(&mut [u8])>,
    /// The identity of the owning cache, to catch pointers from another one.
    pub(crate) owner: usize,
    /// The tag the cache's pages carry (see [`crate::sys::page_tag`]).
    pub(crate) tag: usize,
    /// The cache's name, for reports.
    pub(crate) name: &'a CStr,
    /// Whether the cache zeroes freed objects (`init_on_free`): a pop then
    /// wipes the free pointer it leaves in the object.
    pub(crate) init_free: bool,
    /// Whether [`Slab::free`] zeroes the object, after its checks: for a
    /// debug cache with `init_free` (other caches zero before the sheaf).
    pub(crate) zero_on_free: bool,
}

/// The metadata of one slab.
///
/// `base` and `owner` come first, in this order, for [`Slab::probe`].
#[repr(C)]
pub(crate) struct Slab {
    base: NonNull<u8>,
    owner: usize,
    pub(crate) prev: *mut Slab,
    pub(crate) next: *mut Slab,
    pub(crate) state: SlabState,
    order: u32,
    objects: u32,
    inuse: u32,
    node: i32,
    /// The first slot never handed out; the rest after it neither.
    fresh: u32,
    freelist: *mut u8,
    allocated: Option<BitmapVec>,
}

// SAFETY: A `Slab` is only reached under its node's lock (or by its creator
// before it is published), so moving it between threads is sound.
unsafe impl Send for Slab {}

/// Why a pointer handed to `free` cannot be one of this slab's objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BadFree {
    /// Not in any slab of this cache.
    ForeignPointer,
    /// Inside a slab of this cache, but not at the start of a slot.
    Misaligned,
    /// The slot is already free.
    DoubleFree,
}

impl Slab {
    /// The most kmalloc memory the metadata of a slab of `objects` objects
    /// takes: the [`Slab`] and, for a consistency-checked cache, its bitmap,
    /// each rounded up to a power of two (at least its kmalloc class).
    pub(crate) fn metadata_bytes(objects: usize) -> usize {
        let bitmap = objects.div_ceil(64) * size_of::<u64>();
        size_of::<Slab>().next_power_of_two() + bitmap.next_power_of_two()
    }

    /// Allocates the pages (with `gfp`) and the metadata (with `meta_gfp`,
    /// the caller's flags) of a new slab of `order` on node `nid`, with every
    /// slot free (and constructed, poisoned, red-zoned as the cache asks).
    pub(crate) fn new(
        p: &SlabParams<'_>,
        nid: i32,
        order: u32,
        gfp: kernel::bindings::gfp_t,
        meta_gfp: kernel::alloc::Flags,
    ) -> Option<NonNull<Slab>> {
        let objects = p.layout.objects(order);
        let allocated = if p.flags.contains(CacheFlag::ConsistencyChecks) {
            Some(BitmapVec::new(objects as usize, meta_gfp).ok()?)
        } else {
            None
        };
        // A constructor sees zeroed memory, never stale page contents.
        let gfp = if p.ctor.is_some() {
            gfp | kernel::bindings::__GFP_ZERO
        } else {
            gfp
        };
        let pages = Pages::alloc(nid, gfp, order)?;
        let base = pages.addr();
        let slab = Slab {
            prev: ptr::null_mut(),
            next: ptr::null_mut(),
            state: SlabState::Empty,
            base,
            order,
            objects,
            inuse: 0,
            node: pages.nid(),
            owner: p.owner,
            fresh: 0,
            freelist: ptr::null_mut(),
            allocated,
        };
        // On failure the pages go back as `pages` drops.
        let slab = KBox::new(slab, meta_gfp).ok()?;
        pages.account_slab(1);
        let mut slab = NonNull::from(KBox::leak(slab));
        // The metadata points into the slab (`base`, `freelist`): kmemleak
        // must not take that for a reference to an allocated object, nor
        // report the metadata (the node lists hold it) or its bitmap.
        sys::kmemleak_ignore(slab.as_ptr().cast());
        // SAFETY: Not yet published; only the bitmap's address is read.
        if let Some(bits) = unsafe { slab.as_ref() }.allocated.as_ref() {
            // (A bitmap of one word is inline, not allocated.)
            if bits.len() > BitmapVec::MAX_INLINE_LEN {
                sys::kmemleak_ignore(bits.as_ptr().cast());
            }
        }
        // SAFETY: The slab is not yet published, so this is the only reference.
        let s = unsafe { slab.as_mut() };
        // Every byte is rslab's until an object is handed out.
        kasan::poison_red_zone(base.as_ptr(), kernel::page::PAGE_SIZE << order);
        let _quiet = kasan::Quiet::new();
        // Every slot is fresh: it needs its bytes made only if there is a
        // constructor, poison or a red zone (the loop cost a plain cache 27
        // instructions an object when it threaded the freelist too).
        if p.ctor.is_some() || p.flags.is_debug() {
            for i in 0..objects as usize {
                let obj = s.slot(p.layout, i);
                let bytes = s.slot_bytes(p.layout, obj);
                if let Some(ctor) = p.ctor {
                    ctor(&mut bytes[..p.layout.object_size]);
                }
                debug::prepare_free(p.layout, p.flags, bytes);
            }
        }
        // The metadata stays valid until `free_pages`, which frees the
        // pages, clearing both marks first.
        pages.set_marks(slab.as_ptr() as usize, p.tag);
        // Owned by the slab from here on: `free_pages` takes them back.
        let _ = pages.into_raw();
        Some(slab)
    }

    /// The slab that holds `obj`, if `obj` is in a slab of cache `owner`.
    ///
    /// With `checked`, the metadata pointer found in the page is validated
    /// with a fault-tolerant read before it is trusted, so a pointer to any
    /// other kernel memory is reported instead of followed.
    ///
    /// # Safety
    ///
    /// `obj` must be in the direct map, and unless `checked`, its head page's
    /// `private` field must be 0 or a `Slab` pointer: true for every page
    /// rslab owns, and the caller's promise for any other page.
    pub(crate) unsafe fn of(
        obj: *const u8,
        owner: usize,
        checked: bool,
    ) -> Result<NonNull<Slab>, BadFree> {
        // SAFETY: The caller's promise: `obj` is in the direct map.
        let meta = unsafe { sys::rslab_page_private(obj.cast::<c_void>()) };
        let slab = NonNull::new(meta.cast::<Slab>()).ok_or(BadFree::ForeignPointer)?;
        let (base, slab_owner) = if checked {
            Self::probe(obj, slab).ok_or(BadFree::ForeignPointer)?
        } else {
            // SAFETY: By the caller's promise, a non-zero `private` is a live
            // `Slab`; `base` and `owner` are immutable, so need no lock.
            let s = unsafe { slab.as_ref() };
            (s.base.as_ptr(), s.owner)
        };
        if slab_owner != owner || base.is_null() {
            return Err(BadFree::ForeignPointer);
        }
        Ok(slab)
    }

    /// Reads `base` and `owner` of the would-be `Slab` at `slab` without
    /// trusting it, and checks that `base` is the slab page holding `obj`.
    fn probe(obj: *const u8, slab: NonNull<Slab>) -> Option<(*mut u8, usize)> {
        let mut head = [0usize; 2];
        // SAFETY: `copy_from_kernel_nofault` reads any kernel address and
        // fails cleanly instead of faulting; `head` has room for two words.
        let err = unsafe {
            kernel::bindings::copy_from_kernel_nofault(
                head.as_mut_ptr().cast(),
                slab.as_ptr().cast(),
                core::mem::size_of_val(&head),
            )
        };
        // SAFETY: Any address is accepted.
        let page = unsafe { sys::rslab_head_address(obj.cast()) };
        (err == 0 && head[0] == page as usize).then_some((head[0] as *mut u8, head[1]))
    }

    /// Unpublishes the slab as it leaves its node's lists to be freed: its
    /// head page's `private` no longer leads to it. Done under the node
    /// lock, so that a checked free, which finds the slab without the lock,
    /// can confirm under it ([`Slab::holds`]) that the slab was not taken
    /// away to be freed in between: a double free racing the last free.
    ///
    /// # Safety
    ///
    /// The caller holds the lock of the node list the slab was just taken
    /// off, and frees the slab next.
    pub(crate) unsafe fn unpublish(&self) {
        // SAFETY: `base` is this slab's head page (type invariant); the
        // slab is freed next, so nothing needs the pointer any more.
        unsafe { sys::rslab_set_page_private(self.base.as_ptr().cast(), ptr::null_mut()) };
    }

    /// Whether `obj`'s head page still leads to `slab`: with the node lock
    /// held, whether `slab` (found by [`Slab::of`] before the lock was
    /// taken) is still live and on the lists (see [`Slab::unpublish`]).
    ///
    /// # Safety
    ///
    /// `obj` must be in the direct map.
    pub(crate) unsafe fn holds(slab: NonNull<Slab>, obj: *const u8) -> bool {
        // SAFETY: The caller's promise.
        let meta = unsafe { sys::rslab_page_private(obj.cast::<c_void>()) };
        meta == slab.as_ptr().cast()
    }

    /// The node whose list holds this slab.
    pub(crate) fn node(&self) -> i32 {
        self.node
    }

    /// The slab's order.
    pub(crate) fn order(&self) -> u32 {
        self.order
    }

    /// Objects in the slab.
    pub(crate) fn objects(&self) -> u32 {
        self.objects
    }

    /// Allocated objects.
    pub(crate) fn inuse(&self) -> u32 {
        self.inuse
    }

    /// The state the slab's counts call for.
    pub(crate) fn wanted_state(&self) -> SlabState {
        match self.inuse {
            0 => SlabState::Empty,
            n if n == self.objects => SlabState::Full,
            _ => SlabState::Partial,
        }
    }

    fn slot(&self, layout: &Layout, index: usize) -> NonNull<u8> {
        // SAFETY: `index < objects`, so the slot lies inside the slab.
        unsafe { self.base.add(index * layout.size) }
    }

    fn index_of(&self, layout: &Layout, obj: *const u8) -> Option<usize> {
        let offset = (obj as usize).checked_sub(self.base.as_ptr() as usize)?;
        // In 32 bits (a slab is far below 4 GiB), so that quotient and
        // remainder are one division: a 64-bit one is compiled with a 32-bit
        // fast path, each of the two apart (12 of the 70 instructions that
        // a refill spent on each object it took).
        let offset = u32::try_from(offset).ok()?;
        let stride = NonZeroU32::try_from(layout.stride()).ok()?;
        let index = offset / stride;
        (offset % stride == 0 && index < self.objects).then_some(index as usize)
    }

    /// The bytes of the slot at `obj`.
    fn slot_bytes<'a>(&'a mut self, layout: &Layout, obj: NonNull<u8>) -> &'a mut [u8] {
        // SAFETY: `obj` is a slot of this slab (callers got it from `slot` or
        // validated it with `index_of`), the slab's pages are owned by it,
        // and the slot is free or being handed over, so no one else uses it.
        unsafe { core::slice::from_raw_parts_mut(obj.as_ptr(), layout.size) }
    }

    fn encode(p: &SlabParams<'_>, next: *mut u8, at: *mut u8) -> usize {
        next as usize ^ p.key ^ (at as usize).swap_bytes()
    }

    fn push(&mut self, p: &SlabParams<'_>, obj: NonNull<u8>) {
        let at = obj.as_ptr().wrapping_add(p.layout.free_offset);
        let value = Self::encode(p, self.freelist, at);
        // SAFETY: `at` is inside the free slot `obj` of this slab, and may be
        // unaligned only if the layout says so (it never does: word aligned).
        unsafe { at.cast::<usize>().write_unaligned(value) };
        self.freelist = obj.as_ptr();
    }

    /// Takes a free object: the freelist's first (the most recently
    /// freed), else the next fresh slot; `None` when the slab is full.
    ///
    /// Every next pointer is checked to lie on a slot of this slab (the
    /// hardened freelist makes a corrupted one point anywhere). A bad one is
    /// reported and the rest of the slab abandoned, freelist and fresh
    /// slots: those objects count as allocated from then on (leaked, and
    /// reported at destroy) rather than followed.
    pub(crate) fn pop(&mut self, p: &SlabParams<'_>) -> Option<NonNull<u8>> {
        // A free object: the caller unpoisons it when it hands it out.
        let _quiet = kasan::Quiet::new();
        let obj = match NonNull::new(self.freelist) {
            Some(obj) => self.pop_listed(p, obj),
            None if self.fresh < self.objects => {
                let obj = self.slot(p.layout, self.fresh as usize);
                self.fresh += 1;
                obj
            }
            None => return None,
        };
        self.inuse += 1;
        if p.flags.is_debug() {
            self.mark(p.layout, obj.as_ptr(), true);
            debug::prepare_alloc(p.layout, p.flags, p.name, self.slot_bytes(p.layout, obj));
        }
        Some(obj)
    }

    /// Unlinks `obj`, the freelist's head, and returns it.
    fn pop_listed(&mut self, p: &SlabParams<'_>, obj: NonNull<u8>) -> NonNull<u8> {
        // The head needs no check: `push` and the check of each next
        // pointer below put only slots of this slab there.
        let at = obj.as_ptr().wrapping_add(p.layout.free_offset);
        // SAFETY: `obj` is the head of this slab's freelist: a free slot.
        let next =
            unsafe { at.cast::<usize>().read_unaligned() } ^ p.key ^ (at as usize).swap_bytes();
        let next = next as *mut u8;
        if p.init_free {
            // `init_on_free`: the object leaves with no old byte, the free
            // pointer's included (SLUB's `maybe_wipe_obj_freeptr()`).
            // SAFETY: As the read above.
            unsafe { at.cast::<usize>().write_unaligned(0) };
        }
        self.freelist = if next.is_null() || self.index_of(p.layout, next).is_some() {
            next
        } else {
            debug::report(p.name, fmt!("freelist corrupted"), obj.as_ptr());
            // Counted with `obj` by the caller: every slot is allocated.
            self.inuse = self.objects - 1;
            self.fresh = self.objects;
            ptr::null_mut()
        };
        obj
    }

    /// Sets or clears `obj`'s bit in `allocated`: only with consistency
    /// checks, so that other caches never work out a slot index. Inlined
    /// down to the test, which every object's alloc and free pays (the
    /// out-of-line call cost `make bench`'s out10000 rows 10 instructions
    /// an operation).
    #[inline(always)]
    fn mark(&mut self, layout: &Layout, obj: *const u8, allocated: bool) {
        if self.allocated.is_some() {
            self.mark_checked(layout, obj, allocated);
        }
    }

    /// [`Slab::mark`] of a slab with an allocation bitmap.
    #[inline(never)]
    fn mark_checked(&mut self, layout: &Layout, obj: *const u8, allocated: bool) {
        let Some(index) = self.index_of(layout, obj) else {
            return;
        };
        let Some(bits) = self.allocated.as_mut() else {
            return;
        };
        if allocated {
            bits.set_bit(index);
        } else {
            bits.clear_bit(index);
        }
    }

    /// Checks a pointer about to be freed to this slab (consistency checks).
    pub(crate) fn check_free(&self, p: &SlabParams<'_>, obj: *mut u8) -> Result<(), BadFree> {
        let index = self.index_of(p.layout, obj).ok_or(BadFree::Misaligned)?;
        // (7.3's `Bitmap` has no `test_bit`: the next set bit from
        // `index` is `index` itself exactly when that bit is set.)
        if let Some(bits) = &self.allocated {
            if bits.next_bit(index) != Some(index) {
                return Err(BadFree::DoubleFree);
            }
        }
        Ok(())
    }

    /// Puts an allocated object back on the freelist.
    ///
    /// Returns `false`, having reported it and kept the object out of the
    /// freelist, if its red zone was overwritten.
    ///
    /// # Safety
    ///
    /// `obj` must be an allocated object of this slab (with consistency
    /// checks, [`Slab::check_free`] has established that).
    pub(crate) unsafe fn free(&mut self, p: &SlabParams<'_>, obj: NonNull<u8>) -> bool {
        // The object is freed now (a debug cache's free is checked first):
        // from here on only rslab may touch it.
        kasan::poison_free(obj.as_ptr(), p.layout.object_size);
        let _quiet = kasan::Quiet::new();
        // One test for a plain cache's objects, which need none of these
        // (`zero_on_free` is a debug cache's too).
        if p.flags.is_debug() {
            if !debug::check_red_zone(p.layout, p.flags, p.name, self.slot_bytes(p.layout, obj)) {
                return false;
            }
            self.mark(p.layout, obj.as_ptr(), false);
            if p.zero_on_free {
                self.slot_bytes(p.layout, obj)[..p.layout.object_size].fill(0);
            }
            debug::prepare_free(p.layout, p.flags, self.slot_bytes(p.layout, obj));
        }
        self.push(p, obj);
        self.inuse -= 1;
        true
    }

    /// Returns the pages to the page allocator and frees the metadata.
    ///
    /// # Safety
    ///
    /// `slab` must be on no list, and no one may use it or its objects again.
    pub(crate) unsafe fn free_pages(slab: NonNull<Slab>) {
        // SAFETY: By the caller's promise the slab is no longer shared; it
        // was leaked from a `KBox` in `new`.
        let slab = unsafe { KBox::from_raw(slab.as_ptr()) };
        // SAFETY: `new` gave up these pages (allocated and counted with
        // this order) to the slab, which alone takes them back, here.
        let pages = unsafe { Pages::from_raw(slab.base, slab.order) };
        pages.account_slab(-1);
    }

    /// Leaks a slab whose objects may still be in use: its pages and
    /// metadata stay allocated for good, as SLUB leaves the slabs of a
    /// cache destroyed with objects. kmemleak is told the metadata is not a
    /// leak (it was reported already; nothing points to it any more).
    ///
    /// # Safety
    ///
    /// `slab` must be on no list.
    pub(crate) unsafe fn leak(slab: NonNull<Slab>) {
        // SAFETY: Any pointer is accepted.
        unsafe { sys::rslab_kmemleak_not_leak(slab.as_ptr().cast()) };
    }
}
