// SPDX-License-Identifier: GPL-2.0

//! Cache creation flags, named after SLUB's `SLAB_*` flags, made with the
//! kernel crate's `impl_flags!`; each flag's bit is the ABI's.

use crate::device::uapi;
use kernel::impl_flags;

impl_flags!(
    /// Flags that change how a cache lays out and checks its objects.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct CacheFlags(u32);

    /// One cache creation flag.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum CacheFlag {
        /// Align objects to a cache line (`SLAB_HWCACHE_ALIGN`).
        HwcacheAlign = uapi::CACHE_HWCACHE_ALIGN,
        /// Fill free objects with a pattern and check it on reuse (`SLAB_POISON`).
        Poison = uapi::CACHE_POISON,
        /// Guard bytes after each object, checked on free (`SLAB_RED_ZONE`).
        RedZone = uapi::CACHE_RED_ZONE,
        /// Validate every freed pointer and the freelists
        /// (`SLAB_CONSISTENCY_CHECKS`).
        ConsistencyChecks = uapi::CACHE_CONSISTENCY_CHECKS,
    }
);

impl CacheFlags {
    /// No flags.
    pub const NONE: Self = Self::empty();

    /// Whether any flag that makes a cache a debug cache is set (poison,
    /// red zone, consistency checks), as SLUB's `SLAB_DEBUG_FLAGS`.
    pub fn is_debug(self) -> bool {
        self.contains_any(CacheFlag::Poison | CacheFlag::RedZone | CacheFlag::ConsistencyChecks)
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
