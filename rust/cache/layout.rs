// SPDX-License-Identifier: GPL-2.0

//! Object layout and slab order: where each object's bytes, red zone and free
//! pointer live, and how many pages a slab takes.
//!
//! This is SLUB's `calculate_alignment()`, `calculate_sizes()` and
//! `calculate_order()` (mm/slub.c), as pure functions, so that KUnit can
//! check them against a table and the selftests against the running SLUB.
//! rslab keeps its per-slab metadata off the slab (see [`crate::cache::slab`]), so
//! a slab holds exactly as many objects as SLUB's slab of the same order.

use crate::cache::flags::{CacheFlag, CacheFlags};
use crate::sys::PAGE_SIZE;
use core::num::NonZeroUsize;
use kernel::prelude::*;

const WORD: usize = core::mem::size_of::<usize>();
/// The largest order SLUB prefers (`PAGE_ALLOC_COSTLY_ORDER`).
pub(crate) const MAX_PREFERRED_ORDER: u32 = 3;
/// The largest order the page allocator serves (`MAX_PAGE_ORDER`).
pub(crate) const MAX_ORDER: u32 = kernel::bindings::MAX_PAGE_ORDER;
/// SLUB's limit on objects per slab (`MAX_OBJS_PER_PAGE`).
const MAX_OBJS_PER_SLAB: usize = 32767;
/// The cache line size rslab aligns `HWCACHE_ALIGN` objects to.
const CACHE_LINE: usize = kernel::bindings::L1_CACHE_BYTES as usize;

/// Where everything lives in one object slot, and the slab geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The size the cache's user asked for.
    pub object_size: usize,
    /// The slot size: the stride between objects in a slab.
    pub size: usize,
    /// The alignment of every object.
    pub align: usize,
    /// The offset of the free pointer in a free slot.
    pub free_offset: usize,
    /// The red zone, `[object_size, red_zone_end)`; empty without `RED_ZONE`.
    pub red_zone_end: usize,
    /// The preferred slab order.
    pub order: u32,
    /// The fallback order when the preferred one cannot be had.
    pub min_order: u32,
}

/// `fls()`: the position of the highest set bit, 1-based; 0 for 0.
fn fls(x: u32) -> u32 {
    u32::BITS - x.leading_zeros()
}

/// `get_order()`: the smallest order whose slab holds `size` bytes.
pub(crate) fn get_order(size: usize) -> u32 {
    let pages = size.div_ceil(PAGE_SIZE).max(1);
    pages.next_power_of_two().trailing_zeros()
}

/// The bytes in a slab of `order`.
pub(crate) const fn slab_bytes(order: u32) -> usize {
    PAGE_SIZE << order
}

/// SLUB's `calc_slab_order()`: the smallest order in `[min, max]` that wastes
/// at most `1/fraction` of the slab; `max + 1` if none does.
fn calc_slab_order(size: NonZeroUsize, min: u32, max: u32, fraction: NonZeroUsize) -> u32 {
    (min..=max)
        .find(|&order| slab_bytes(order) % size <= slab_bytes(order) / fraction)
        .unwrap_or(max + 1)
}

/// SLUB's `calculate_order()` for a slot `size`, given the present CPUs.
pub(crate) fn calculate_order(size: NonZeroUsize, nr_cpus: u32) -> Result<u32> {
    let min_objects = (4 * (fls(nr_cpus) + 1)) as usize;
    let max_objects = (slab_bytes(MAX_PREFERRED_ORDER) / size).max(1);
    let min_objects = min_objects.min(max_objects);
    let min_order = get_order(min_objects * size.get());
    if slab_bytes(min_order) / size > MAX_OBJS_PER_SLAB {
        return Ok(get_order(size.get() * MAX_OBJS_PER_SLAB) - 1);
    }
    for fraction in [16, 8, 4, 2].into_iter().filter_map(NonZeroUsize::new) {
        let order = calc_slab_order(size, min_order, MAX_PREFERRED_ORDER, fraction);
        if order <= MAX_PREFERRED_ORDER {
            return Ok(order);
        }
    }
    let order = get_order(size.get());
    if order <= MAX_ORDER {
        Ok(order)
    } else {
        Err(EINVAL)
    }
}

/// SLUB's `calculate_alignment()`.
fn calculate_alignment(flags: CacheFlags, align: usize, size: usize) -> usize {
    let mut align = align.max(WORD);
    if flags.contains(CacheFlag::HwcacheAlign) {
        let mut line = CACHE_LINE;
        while size <= line / 2 {
            line /= 2;
        }
        align = align.max(line);
    }
    align.next_multiple_of(WORD)
}

impl Layout {
    /// Lays out a cache of `object_size`-byte objects aligned to `align`.
    ///
    /// As in SLUB, the free pointer sits in the middle of a free object,
    /// unless the object's free contents matter (a constructor's state or a
    /// poison pattern) or the object is smaller than the pointer and has a
    /// red zone, which the pointer would overlap; then it goes after the
    /// object (and its red zone). A red zone takes the padding after the
    /// object plus one word. On a generic-KASAN kernel every object without
    /// a red zone gets a word of padding for KASAN's (see `crate::cache::kasan`).
    ///
    /// Returns `EINVAL` for a zero size, an alignment that is not a power of
    /// two, or an object too large for the biggest slab.
    pub fn new(
        object_size: usize,
        align: usize,
        flags: impl Into<CacheFlags>,
        has_ctor: bool,
        nr_cpus: u32,
    ) -> Result<Self> {
        let flags = flags.into();
        if object_size == 0 || !align.is_power_of_two() || object_size > slab_bytes(MAX_ORDER) {
            return Err(EINVAL);
        }
        let align = calculate_alignment(flags, align, object_size);
        let mut inuse = object_size.next_multiple_of(WORD);
        let red_zone_end = if flags.contains(CacheFlag::RedZone) {
            inuse += WORD;
            inuse
        } else {
            object_size
        };
        if cfg!(CONFIG_KASAN_GENERIC) && !flags.contains(CacheFlag::RedZone) {
            // KASAN: a granule (a word) of poisoned shadow after every
            // object, so that a read past one is reported, not taken for an
            // access to its neighbour (SLUB's KASAN adds red zones too).
            inuse += WORD;
        }
        let tiny_red_zone = flags.contains(CacheFlag::RedZone) && object_size < WORD;
        let free_offset = if has_ctor || flags.contains(CacheFlag::Poison) || tiny_red_zone {
            inuse += WORD;
            inuse - WORD
        } else {
            (object_size / 2) / WORD * WORD
        };
        let size = inuse.next_multiple_of(align);
        let order = calculate_order(NonZeroUsize::new(size).ok_or(EINVAL)?, nr_cpus)?;
        let min_order = get_order(size);
        Ok(Self {
            object_size,
            size,
            align,
            free_offset,
            red_zone_end,
            order,
            min_order: min_order.min(order),
        })
    }

    /// Objects in a slab of `order`.
    pub fn objects(&self, order: u32) -> u32 {
        (slab_bytes(order) / self.stride()) as u32
    }

    /// The slot size as a divisor. (Dividing by a plain `usize` would bring
    /// in a division-by-zero panic path, which this kernel's objtool does
    /// not know as `noreturn`.)
    pub(crate) fn stride(&self) -> NonZeroUsize {
        NonZeroUsize::new(self.size).unwrap_or(NonZeroUsize::MIN)
    }
}

#[cfg(rslab_kunit)]
#[kunit_tests(rslab_layout)]
mod tests {
    use crate::cache::flags::{CacheFlag, CacheFlags};
    use crate::cache::layout::Layout;
    use kernel::prelude::*;

    /// `(size, order, objects per slab)` that SLUB's `calculate_order()`
    /// gives each kmalloc class with 2 present CPUs (min_objects = 12); see
    /// `Documentation/rslab.rst`.
    const KMALLOC_2CPUS: [(usize, u32, u32); 13] = [
        (8, 0, 512),
        (16, 0, 256),
        (32, 0, 128),
        (64, 0, 64),
        (96, 0, 42),
        (128, 0, 32),
        (192, 0, 21),
        (256, 0, 16),
        (512, 1, 16),
        (1024, 2, 16),
        (2048, 3, 16),
        (4096, 3, 8),
        (8192, 3, 4),
    ];

    /// Whether objects carry KASAN's padding, which changes SLUB's
    /// geometry as KASAN changes SLUB's own (then the case is skipped).
    fn kasan_padded() -> bool {
        if cfg!(CONFIG_KASAN_GENERIC) {
            crate::sys::kunit_skip(c"KASAN pads every object: not SLUB's plain geometry");
        }
        cfg!(CONFIG_KASAN_GENERIC)
    }

    #[test]
    fn kmalloc_classes_match_the_table() -> Result {
        if kasan_padded() {
            return Ok(());
        }
        for (size, order, objects) in KMALLOC_2CPUS {
            let l = Layout::new(size, 8, CacheFlags::NONE, false, 2)?;
            assert_eq!(l.size, size);
            assert_eq!(l.order, order);
            assert_eq!(l.objects(l.order), objects);
        }
        Ok(())
    }

    #[test]
    fn more_cpus_give_bigger_slabs() -> Result {
        if kasan_padded() {
            return Ok(());
        }
        // 64 CPUs: min_objects = 4 * (7 + 1) = 32, so 256-byte objects need
        // two pages, as on a large machine's kmalloc-256.
        assert_eq!(Layout::new(256, 8, CacheFlags::NONE, false, 64)?.order, 1);
        Ok(())
    }

    #[test]
    fn bad_parameters_are_rejected() {
        let none = CacheFlags::NONE;
        assert_eq!(Layout::new(0, 8, none, false, 2), Err(EINVAL));
        assert_eq!(Layout::new(64, 3, none, false, 2), Err(EINVAL));
        assert_eq!(Layout::new(usize::MAX / 2, 8, none, false, 2), Err(EINVAL));
    }

    #[test]
    fn debug_layout_keeps_the_free_pointer_outside() -> Result {
        let l = Layout::new(60, 8, CacheFlag::Poison | CacheFlag::RedZone, false, 2)?;
        // Object 60, red zone to 72 (padding plus a word), free pointer at 72.
        assert_eq!(l.red_zone_end, 72);
        assert_eq!(l.free_offset, 72);
        assert_eq!(l.size, 80);
        // Without debug flags the free pointer sits mid-object, as in SLUB.
        assert_eq!(
            Layout::new(64, 8, CacheFlags::NONE, false, 2)?.free_offset,
            32
        );
        Ok(())
    }

    #[test]
    fn the_free_pointer_never_overlaps_a_red_zone() -> Result {
        // A 4-byte object: red zone [4, 16), free pointer after it, at 16.
        let l = Layout::new(4, 8, CacheFlag::RedZone, false, 2)?;
        assert_eq!((l.red_zone_end, l.free_offset, l.size), (16, 16, 24));
        for size in 1..=256 {
            let l = Layout::new(size, 8, CacheFlag::RedZone, false, 2)?;
            let pointer = l.free_offset..l.free_offset + 8;
            assert!(pointer.end <= size || pointer.start >= l.red_zone_end);
            assert!(pointer.end <= l.size);
        }
        Ok(())
    }

    #[test]
    fn hwcache_align_rounds_to_a_fitting_line_fraction() -> Result {
        let hw = CacheFlag::HwcacheAlign;
        assert_eq!(Layout::new(20, 8, hw, false, 2)?.align, 32);
        assert_eq!(Layout::new(100, 8, hw, false, 2)?.size, 128);
        Ok(())
    }
}
