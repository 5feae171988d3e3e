// SPDX-License-Identifier: GPL-2.0

//! kmalloc-style generic allocation: size classes over rslab caches, and
//! larger sizes straight from the page allocator (like `kmalloc_large`).
//!
//! Large allocations are compound pages whose head page's `private` field
//! holds their mark, [`large_mark`]: an odd number (a slab's metadata
//! pointer, the other thing `private` holds, is aligned), with the order
//! above its low bit. [`Kmalloc::free`] and [`Kmalloc::ksize`] read it from
//! the page, as SLUB reads the folio: no lookup structure and no lock, so
//! they work in any context, hard interrupts included. Tearing the
//! allocator down with large allocations live reports them and leaves their
//! pages allocated: memory still in use is never given back.

mod tag_index;

use crate::cache::debug;
use crate::cache::fault::FaultInject;
use crate::cache::flags::CacheFlags;
use crate::cache::kasan;
use crate::cache::layout::{get_order, slab_bytes};
use crate::cache::Cache;
use crate::page::Pages;
use crate::sys;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use kernel::alloc::Flags;
use kernel::prelude::*;
use kernel::sync::Arc;
use tag_index::TagIndex;

/// The kmalloc size classes, as SLUB's `kmalloc-<size>` caches.
pub const SIZE_CLASSES: [usize; 13] = [
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];

/// The largest size served from a cache.
pub const MAX_CACHE_SIZE: usize = 8192;

/// The class of each size 1..=192 in steps of 8, indexed by `(size - 1) / 8`
/// (SLUB's `kmalloc_size_index`): the classes below 256 are not all powers
/// of two (96, 192).
const SMALL_CLASS: [u8; 24] = [
    0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6,
];

/// The smallest class that holds `size` bytes (`size` 0 is class 0).
///
/// A table up to 192 bytes, then the power of two: 256 is class 7 and each
/// doubling the next. Constant time, as `kmalloc_index()`, not a search.
pub fn size_class(size: usize) -> Option<usize> {
    match size {
        0..=192 => Some(SMALL_CLASS[size.saturating_sub(1) / 8] as usize),
        193..=MAX_CACHE_SIZE => Some((usize::BITS - (size - 1).leading_zeros()) as usize - 1),
        _ => None,
    }
}

/// The generic allocator.
#[pin_data(PinnedDrop)]
pub struct Kmalloc {
    caches: KVec<Arc<Cache>>,
    large_pages: AtomicUsize,
    large_fault: FaultInject,
    /// The tag of each class cache's pages, in class order.
    tags: [usize; SIZE_CLASSES.len()],
    /// The class of each tag in one probe (`None`: search `tags`).
    index: Option<TagIndex>,
    /// The tag of large allocations' pages (random, odd: never 0).
    large_tag: usize,
}

/// The `private` of a large allocation's head page: odd, unlike a slab's
/// metadata pointer, with the order above the low bit.
pub(crate) const fn large_mark(order: u32) -> usize {
    (order as usize) << 1 | 1
}

/// The order of the large allocation whose head page has `private`, if
/// that is a large allocation's mark.
pub(crate) const fn large_order(private: usize) -> Option<u32> {
    if private & 1 == 1 {
        Some((private >> 1) as u32)
    } else {
        None
    }
}

/// KASAN: a class object usable for exactly the `size` bytes asked for,
/// the rest of the class a red zone. Nothing at all without KASAN.
#[inline(always)]
fn exact(obj: NonNull<u8>, size: usize, class: usize) {
    if cfg!(CONFIG_KASAN_GENERIC) {
        if let Some(&class_size) = SIZE_CLASSES.get(class) {
            kasan::poison_red_zone(obj.as_ptr(), class_size);
            kasan::unpoison(obj.as_ptr(), size);
        }
    }
}

impl Kmalloc {
    /// Creates the size-class caches with `make`, which may register them.
    pub fn new(
        mut make: impl FnMut(&CStr, usize) -> Result<Arc<Cache>>,
    ) -> impl PinInit<Self, Error> {
        let built = (|| {
            let mut caches = KVec::with_capacity(SIZE_CLASSES.len(), GFP_KERNEL)?;
            let mut tags = [0; SIZE_CLASSES.len()];
            for (tag, size) in tags.iter_mut().zip(SIZE_CLASSES) {
                let name = kernel::str::CString::try_from_fmt(fmt!("kmalloc-{size}"))?;
                let cache = make(&name, size)?;
                *tag = cache.tag();
                caches.push(cache, GFP_KERNEL)?;
            }
            Ok::<_, Error>((caches, tags))
        })();
        let (caches, tags) = match built {
            Ok((caches, tags)) => (Ok(caches), tags),
            Err(e) => (Err(e), [0; SIZE_CLASSES.len()]),
        };
        try_pin_init!(Self {
            index: TagIndex::new(&tags),
            tags,
            caches: caches?,
            large_pages: AtomicUsize::new(0),
            large_fault: FaultInject::default(),
            large_tag: sys::random_u64() as usize | 1,
        }? Error)
    }

    /// Creates one size-class cache, as `kmalloc_caches[]` are created.
    pub fn class_cache(name: &CStr, size: usize) -> Result<Arc<Cache>> {
        Cache::new(name, size, 8, CacheFlags::NONE, None)
    }

    /// The size-class caches, smallest first.
    pub fn caches(&self) -> &[Arc<Cache>] {
        &self.caches
    }

    /// The most bytes a `size`-byte allocation pins: an object of its class
    /// cache (see [`Cache::object_footprint`]), or its whole pages above
    /// the classes.
    pub fn footprint(&self, size: usize) -> usize {
        match size_class(size) {
            Some(class) => self.caches[class].object_footprint(),
            None => slab_bytes(get_order(size)),
        }
    }

    /// Pages held by large allocations.
    pub fn large_pages(&self) -> usize {
        self.large_pages.load(Relaxed)
    }

    /// Allocates `size` bytes: from the smallest class that fits, or as
    /// whole pages above [`MAX_CACHE_SIZE`]. `EINVAL` for 0 bytes.
    pub fn alloc(&self, size: usize, gfp: Flags) -> Result<NonNull<u8>> {
        match size_class(size) {
            _ if size == 0 => Err(EINVAL),
            Some(class) => self.caches[class]
                .alloc(gfp)
                .inspect(|&obj| exact(obj, size, class)),
            None => self.alloc_large(size, sys::gfp_bits(gfp)),
        }
    }

    /// [`Kmalloc::alloc`] with raw `gfp_t` flags (for the mempool).
    pub(crate) fn alloc_raw(
        &self,
        size: usize,
        gfp: kernel::bindings::gfp_t,
    ) -> Result<NonNull<u8>> {
        match size_class(size) {
            _ if size == 0 => Err(EINVAL),
            Some(class) => self.caches[class]
                .alloc_raw(gfp)
                .inspect(|&obj| exact(obj, size, class)),
            None => self.alloc_large(size, gfp),
        }
    }

    /// The fault-injection knobs behind `size`-byte allocations: its class
    /// cache's, or the large allocations' for sizes above the classes.
    pub fn fault_for(&self, size: usize) -> &FaultInject {
        match size_class(size) {
            Some(class) => self.caches[class].fault(),
            None => &self.large_fault,
        }
    }

    fn alloc_large(&self, size: usize, gfp: kernel::bindings::gfp_t) -> Result<NonNull<u8>> {
        sys::might_alloc(|| gfp);
        let order = get_order(size);
        if order > crate::cache::layout::MAX_ORDER || self.large_fault.should_fail() {
            return Err(ENOMEM);
        }
        // As the kernel's `__kmalloc_large_node()`: bits no slab may be asked
        // for are reported and dropped.
        let bug = sys::gfp_slab_bug(gfp);
        if bug != 0 {
            let what = fmt!("unexpected gfp bits {bug:#x} (GFP_SLAB_BUG_MASK), dropped");
            debug::report(c"kmalloc", what, core::ptr::null());
        }
        let gfp = gfp & !bug;
        let pages = Pages::alloc(sys::numa_mem_id(), gfp, order).ok_or(ENOMEM)?;
        pages.set_marks(large_mark(order), self.large_tag);
        pages.account_slab(1);
        // Owned by the caller's allocation from here on: `free` takes the
        // pages back.
        let addr = pages.into_raw();
        self.large_pages.fetch_add(1 << order, Relaxed);
        // The pages' tail past the size asked for is out of bounds.
        let used = size.next_multiple_of(8);
        kasan::poison_red_zone(addr.as_ptr().wrapping_add(used), slab_bytes(order) - used);
        kasan::unpoison(addr.as_ptr(), size);
        sys::kmemleak_alloc(addr.as_ptr(), size, || gfp);
        Ok(addr)
    }

    /// How many times the class caches took a node's lock, together
    /// ([`crate::cache::stats::CacheStats::node_locks`]), for the bench.
    #[cfg(rslab_bench)]
    pub(crate) fn node_locks(&self) -> u64 {
        self.caches.iter().map(|c| c.stats().node_locks).sum()
    }

    /// The class cache whose pages carry `tag` (see [`sys::page_tag`]);
    /// `None` for anything else. One probe of the index and one compare.
    #[inline(always)]
    fn cache_of(&self, tag: usize) -> Option<&Arc<Cache>> {
        let class = match &self.index {
            Some(index) => index.class(tag)?,
            None => self.tags.iter().position(|&t| t == tag)?,
        };
        self.caches.get(class)
    }

    /// The order of the large allocation at `ptr`, whose pages carry `tag`,
    /// read from its head page without a lock; `None` if `ptr` is not the
    /// start of one. The tag is checked first, so another page's `private`
    /// is never taken for a mark.
    fn large_at(&self, ptr: *const u8, tag: usize) -> Option<u32> {
        if tag != self.large_tag {
            return None;
        }
        // SAFETY: Any address is accepted; one outside the direct map gives
        // NULL.
        let head = unsafe { sys::rslab_head_address(ptr.cast()) };
        // SAFETY: `ptr`'s page carries the large tag, so it is in the
        // direct map.
        let private = unsafe { sys::rslab_page_private(ptr.cast()) };
        large_order(private as usize).filter(|_| head.cast_const() == ptr.cast())
    }

    /// The usable size of the allocation at `ptr` (`ksize()`): its class
    /// size, or its pages' size.
    ///
    /// # Safety
    ///
    /// `ptr` must be a live allocation from this allocator.
    pub unsafe fn ksize(&self, ptr: NonNull<u8>) -> usize {
        let tag = sys::page_tag(ptr.as_ptr());
        let size = match self.cache_of(tag) {
            Some(cache) => cache.layout().object_size,
            None => self.large_at(ptr.as_ptr(), tag).map_or(0, slab_bytes),
        };
        // As SLUB's `ksize()`: all of it may be used from now on.
        kasan::unpoison(ptr.as_ptr(), size);
        size
    }

    /// Frees the allocation at `ptr`. Takes no lock of its own for a large
    /// allocation, so it works in any context. A pointer that is no
    /// allocation of this allocator's (its page carries none of its tags,
    /// or it is not the start of a large allocation) is reported and
    /// ignored: any pointer outside the linear map (vmalloc, stack, module
    /// or kernel-image memory), any into memory with a `struct page`, and,
    /// where frees are checked ([`sys::CHECK_FREES`]), any at all.
    ///
    /// # Safety
    ///
    /// A pointer into this allocator's memory must be a live allocation,
    /// not used again; without [`sys::CHECK_FREES`], one into the linear
    /// map must not point into a hole of it (see [`sys::kmalloc_page_tag`]).
    pub unsafe fn free(&self, ptr: NonNull<u8>) {
        // One read of the page's tag tells a class object, a large
        // allocation and a foreign pointer apart.
        // SAFETY: The caller's promise.
        let tag = unsafe { sys::kmalloc_page_tag(ptr.as_ptr()) };
        if let Some(cache) = self.cache_of(tag) {
            // SAFETY: The caller's promise; the object is in a slab of
            // `cache`, whose tag its page carries.
            return unsafe { cache.free_owned(ptr) };
        }
        match self.large_at(ptr.as_ptr(), tag) {
            Some(order) => {
                self.large_pages.fetch_sub(1 << order, Relaxed);
                sys::kmemleak_free(ptr.as_ptr());
                // SAFETY: The start of a live large allocation (the caller's
                // promise, and its mark), whose pages `alloc_large` gave up
                // with this order; taken back once.
                let pages = unsafe { Pages::from_raw(ptr, order) };
                pages.account_slab(-1);
            }
            None => debug::report(
                c"kmalloc",
                fmt!("kfree of an unknown pointer"),
                ptr.as_ptr(),
            ),
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Kmalloc {
    /// Reports large allocations still live at teardown, and leaves their
    /// pages allocated: they may still be in use.
    fn drop(self: Pin<&mut Self>) {
        let pages = self.large_pages.load(Relaxed);
        if pages > 0 {
            let what = fmt!("{pages} pages of large allocations still live at unload");
            debug::report(c"kmalloc", what, core::ptr::null());
        }
    }
}

#[cfg(rslab_kunit)]
#[kunit_tests(rslab_kmalloc)]
mod tests {
    use crate::cache::debug::REPORTS;
    use crate::kmalloc::{size_class, Kmalloc, SIZE_CLASSES};
    use core::sync::atomic::Ordering::Relaxed;
    use kernel::prelude::*;

    #[test]
    fn sizes_map_to_the_smallest_fitting_class() {
        assert_eq!(size_class(1), Some(0));
        assert_eq!(size_class(8), Some(0));
        assert_eq!(size_class(9), Some(1));
        assert_eq!(size_class(97), Some(5));
        assert_eq!(size_class(8192), Some(SIZE_CLASSES.len() - 1));
        assert_eq!(size_class(8193), None);
        // The table and the powers of two agree with the class list for
        // every size: the smallest class that holds it.
        for size in 1..=8193 {
            let want = SIZE_CLASSES.iter().position(|&class| class >= size);
            assert_eq!(size_class(size), want);
        }
    }

    /// `kfree()` of what is not a kmalloc allocation of this allocator is
    /// reported and ignored: a SLUB object, a vmalloc, a stack address, a
    /// page of the page allocator, another cache's object, a pointer into
    /// (not at the start of) a large allocation, and a static of this
    /// module (module memory, outside the linear map).
    #[test]
    fn foreign_kfrees_are_reported_and_ignored() -> Result {
        let km = KBox::pin_init(Kmalloc::new(Kmalloc::class_cache), GFP_KERNEL)?;
        let other = Kmalloc::class_cache(c"rslab_test_kfree_other", 64)?;
        let of_other = other.alloc(GFP_KERNEL)?;
        let large = km.alloc(100_000, GFP_KERNEL)?;
        // SAFETY: Inside the large allocation, one page in.
        let inside = unsafe { large.add(4096) };
        let (slub, vmalloc, stack) = (
            KBox::new([0u8; 64], GFP_KERNEL)?,
            VBox::new([0u8; 64], GFP_KERNEL)?,
            [0u8; 64],
        );
        let (ptrs, page) =
            crate::cache::tests::cache_tests::foreign_pointers(&slub, &vmalloc, &stack)?;
        static NOT_HEAP: [u8; 64] = [0; 64];
        let not_heap = core::ptr::NonNull::from(&NOT_HEAP).cast::<u8>();
        let (before, pages) = (REPORTS.load(Relaxed), km.large_pages());
        for &p in Iterator::chain(ptrs.iter(), [&of_other, &inside, &not_heap]) {
            // SAFETY: Not an allocation of `km`, and none in a hole of the
            // linear map: what the check catches.
            unsafe { km.free(p) };
        }
        assert_eq!(REPORTS.load(Relaxed), before + 7);
        assert_eq!(km.large_pages(), pages);
        // SAFETY: Live, freed once each.
        unsafe {
            km.free(large);
            other.free(of_other);
        }
        crate::cache::tests::cache_tests::free_page(page);
        Ok(())
    }

    /// The tag index finds each class of random tags by its tag, and no
    /// class for the other values of a window; colliding tags get none.
    #[test]
    fn the_tag_index_finds_every_class_in_one_probe() {
        use crate::kmalloc::tag_index::TagIndex;
        let mut tags = [0usize; SIZE_CLASSES.len()];
        for t in tags.iter_mut() {
            *t = crate::sys::random_u64() as usize | 1;
        }
        let index = TagIndex::new(&tags).unwrap();
        for (class, &tag) in tags.iter().enumerate() {
            assert_eq!(index.class(tag), Some(class));
            // Another value of the same window, and 0 (no tag), are none.
            assert_eq!(index.class(tag ^ 1 << 63), None);
        }
        assert_eq!(index.class(0), None);
        assert!(TagIndex::new(&[5, 5]).is_none());
    }

    #[test]
    fn alloc_ksize_free_across_classes_and_large() -> Result {
        let km = KBox::pin_init(Kmalloc::new(Kmalloc::class_cache), GFP_KERNEL)?;
        assert_eq!(km.alloc(0, GFP_KERNEL), Err(EINVAL));
        // (size, ksize): the class, or the pages of a large allocation.
        let sizes = [
            (1, 8),
            (8, 8),
            (9, 16),
            (100, 128),
            (4096, 4096),
            (8192, 8192),
            (8193, 16384),
            (100_000, 131_072),
        ];
        for (size, want) in sizes {
            let p = km.alloc(size, GFP_KERNEL | __GFP_ZERO)?;
            // SAFETY: `p` is a live allocation of `km`.
            let usable = unsafe { km.ksize(p) };
            assert_eq!(usable, want);
            // SAFETY: `usable` bytes are ours, zeroed by __GFP_ZERO.
            let bytes = unsafe { core::slice::from_raw_parts_mut(p.as_ptr(), usable) };
            assert!(bytes[..size].iter().all(|&b| b == 0));
            bytes.fill(0xa5);
            let large = size > 8192;
            let has_large_pages = km.large_pages() > 0;
            assert_eq!(has_large_pages, large);
            // SAFETY: Live, freed once.
            unsafe { km.free(p) };
        }
        assert_eq!(km.large_pages(), 0);
        Ok(())
    }
}
