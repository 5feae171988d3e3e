// SPDX-License-Identifier: GPL-2.0

//! A one-probe map from a class cache's page tag to its kmalloc class: how
//! a free finds its class in O(1), where SLUB reads `slab->slab_cache`.
//!
//! The tags are random (a cache's address mixed with its random key), so
//! some six-bit window of them tells the classes apart: [`TagIndex::new`]
//! takes the lowest such window, and a lookup is a shift, a mask and one
//! compare with the tag in that slot. Thirteen
//! random tags land in 64 slots without a collision about one time in
//! four, so one of the 57 windows does all but always; if none does, the
//! caller searches the tags instead.

/// Slots of an index: a power of two.
const SLOTS: usize = 64;

/// The index of one allocator's class tags.
///
/// # Invariants
///
/// `tags[i]` is the one tag whose window (`tag >> shift`, modulo
/// [`SLOTS`]) is `i`, and `classes[i]` its class; a slot no tag maps to
/// holds a value whose window is another slot's, so no tag equals it.
pub(crate) struct TagIndex {
    shift: u32,
    tags: [usize; SLOTS],
    classes: [u8; SLOTS],
}

impl TagIndex {
    /// Indexes `tags` (class `i` has `tags[i]`), or `None` if no window of
    /// them is free of collisions, or there are more than 256 classes.
    pub(crate) fn new(tags: &[usize]) -> Option<Self> {
        (1..usize::BITS - SLOTS.ilog2()).find_map(|shift| Self::at(tags, shift))
    }

    /// The index of `tags` by the window at `shift`, if it tells them apart.
    fn at(tags: &[usize], shift: u32) -> Option<Self> {
        let mut taken = [false; SLOTS];
        let mut index = Self {
            shift,
            // Slot `i` holds a value of slot `i + 1`'s window.
            tags: core::array::from_fn(|i| ((i + 1) % SLOTS) << shift),
            classes: [0; SLOTS],
        };
        for (class, &tag) in tags.iter().enumerate() {
            let slot = Self::slot(tag, shift);
            if core::mem::replace(&mut taken[slot], true) {
                return None;
            }
            index.tags[slot] = tag;
            index.classes[slot] = u8::try_from(class).ok()?;
        }
        Some(index)
    }

    #[inline(always)]
    fn slot(tag: usize, shift: u32) -> usize {
        (tag >> shift) % SLOTS
    }

    /// The class whose tag is `tag`, if any: a shift, a mask, one compare.
    #[inline(always)]
    pub(crate) fn class(&self, tag: usize) -> Option<usize> {
        let slot = Self::slot(tag, self.shift);
        (self.tags[slot] == tag).then(|| usize::from(self.classes[slot]))
    }
}
