// SPDX-License-Identifier: GPL-2.0

//! Pages from the page allocator: [`Pages`], an owned block of 2^order
//! contiguous pages (a compound page), the memory every slab, every large
//! kmalloc allocation and every element of a pages-backed pool is made of.
//!
//! The kernel crate's `page::Page` is one order-0 page; rslab needs higher
//! orders on a chosen node, and the page's `private` word and folio index
//! for its own marks, so the block is made by `rslab_helpers.c`
//! (`alloc_pages_node(__GFP_COMP)`) and freed by it (which clears both
//! marks first).

use crate::sys;
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::bindings;

/// An owned block of `2^order` contiguous pages, freed on drop.
///
/// # Invariants
///
/// `addr` is the address of the head page of a compound page of `order`
/// that `rslab_pages_alloc` made and nothing else frees.
pub(crate) struct Pages {
    addr: NonNull<u8>,
    order: u32,
}

// SAFETY: The pages are owned, not tied to a thread.
unsafe impl Send for Pages {}

impl Pages {
    /// Allocates `2^order` pages on node `nid` (or [`sys::NUMA_NO_NODE`])
    /// with `gfp`; `None` on failure.
    pub(crate) fn alloc(nid: i32, gfp: bindings::gfp_t, order: u32) -> Option<Self> {
        // SAFETY: Any node id, flags and order are accepted; failure gives
        // NULL.
        let ptr = unsafe { sys::rslab_pages_alloc(nid, gfp, order) };
        // INVARIANT: Just allocated with this order.
        NonNull::new(ptr.cast()).map(|addr| Self { addr, order })
    }

    /// Takes back the ownership that [`Pages::into_raw`] gave up.
    ///
    /// # Safety
    ///
    /// `addr` and `order` must be those of a block that `into_raw` returned
    /// and that has not been taken back since.
    pub(crate) unsafe fn from_raw(addr: NonNull<u8>, order: u32) -> Self {
        // INVARIANT: The caller's promise.
        Self { addr, order }
    }

    /// Gives up ownership: the pages stay allocated until
    /// [`Pages::from_raw`] takes them back (or for good).
    pub(crate) fn into_raw(self) -> NonNull<u8> {
        core::mem::ManuallyDrop::new(self).addr
    }

    /// The address of the first byte.
    pub(crate) fn addr(&self) -> NonNull<u8> {
        self.addr
    }

    /// The NUMA node the pages are on.
    pub(crate) fn nid(&self) -> i32 {
        // SAFETY: `addr` is a live page address (the invariant).
        unsafe { sys::rslab_addr_nid(self.addr.as_ptr().cast()) }
    }

    /// Counts the block in its node's `NR_SLAB_UNRECLAIMABLE_B` (`sign` 1)
    /// or stops counting it (`sign` -1), as SLUB's `account_slab()` does,
    /// so that `/proc/meminfo`'s `Slab:` includes rslab's memory. The caller
    /// pairs them.
    pub(crate) fn account_slab(&self, sign: i32) {
        // SAFETY: `addr` is the head of a live block of `order` (the
        // invariant).
        unsafe { sys::rslab_account_slab(self.addr.as_ptr().cast(), self.order, sign) };
    }

    /// Sets the head page's `private` word and folio index: the marks by
    /// which a free finds what the pages are. [`Drop`] clears both.
    pub(crate) fn set_marks(&self, private: usize, tag: usize) {
        let head = self.addr.as_ptr().cast::<c_void>();
        // SAFETY: The head page of a live block that this value owns; the
        // page allocator does not use either word of an allocated page.
        unsafe {
            sys::rslab_set_page_private(head, private as *mut c_void);
            sys::rslab_set_page_tag(head, tag);
        }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: Owned pages of this order (the invariant), freed once; the
        // helper clears the marks first.
        unsafe { sys::rslab_pages_free(self.addr.as_ptr().cast(), self.order) };
    }
}
