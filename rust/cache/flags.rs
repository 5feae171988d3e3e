// SPDX-License-Identifier: GPL-2.0

//! Cache creation flags, named after SLUB's `SLAB_*` flags.

use crate::device::uapi;
use core::ops::BitOr;

/// Flags that change how a cache lays out and checks its objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheFlags(u32);

impl CacheFlags {
    /// No flags.
    pub const NONE: Self = Self(0);
    /// Align objects to a cache line (`SLAB_HWCACHE_ALIGN`).
    pub const HWCACHE_ALIGN: Self = Self(1 << 0);
    /// Fill free objects with a pattern and check it on reuse (`SLAB_POISON`).
    pub const POISON: Self = Self(1 << 1);
    /// Guard bytes after each object, checked on free (`SLAB_RED_ZONE`).
    pub const RED_ZONE: Self = Self(1 << 2);
    /// Validate every freed pointer and the freelists (`SLAB_CONSISTENCY_CHECKS`).
    pub const CONSISTENCY_CHECKS: Self = Self(1 << 3);
    /// Every flag that makes a cache a debug cache.
    pub const DEBUG: Self = Self(Self::POISON.0 | Self::RED_ZONE.0 | Self::CONSISTENCY_CHECKS.0);

    /// Whether any flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// These flags without those of `other`.
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// The flags of the ABI's `CACHE_*` bits; unknown bits are dropped
    /// (the device refuses them first).
    pub const fn from_abi(bits: u32) -> Self {
        Self(bits & uapi::CACHE_FLAGS)
    }

    /// The raw bits, as the ABI carries them.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

impl BitOr for CacheFlags {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

// The ABI's bits are these flags' bits.
const _: () = {
    assert!(CacheFlags::HWCACHE_ALIGN.0 == uapi::CACHE_HWCACHE_ALIGN);
    assert!(CacheFlags::POISON.0 == uapi::CACHE_POISON);
    assert!(CacheFlags::RED_ZONE.0 == uapi::CACHE_RED_ZONE);
    assert!(CacheFlags::CONSISTENCY_CHECKS.0 == uapi::CACHE_CONSISTENCY_CHECKS);
};
