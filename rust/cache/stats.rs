// SPDX-License-Identifier: GPL-2.0

//! Per-cache event counters, modelled on SLUB_STATS, and the slabinfo numbers.
//!
//! Fast-path events are counted per CPU, by the CPU itself under its local
//! lock: a plain load and store, no atomic read-modify-write and no shared
//! cache line. Rarer events go to per-cache atomics. A snapshot sums both;
//! it is not a consistent cut, as with SLUB's own counters.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A counted event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Stat {
    /// An allocation served from the CPU's sheaf.
    AllocFast,
    /// An allocation that had to go to the node lists (or a new slab).
    AllocSlow,
    /// A free that went into the CPU's sheaf.
    FreeFast,
    /// A free that went straight to its slab (remote node, debug cache).
    FreeSlow,
    /// A slab was allocated from the page allocator.
    NewSlab,
    /// A slab was returned to the page allocator.
    SlabFreed,
    /// A sheaf was refilled from the node lists.
    Refill,
    /// A sheaf was (partly) flushed back to the slabs.
    Flush,
    /// Objects came from, or went to, another node than the CPU's.
    NodeMismatch,
    /// An allocation failed.
    AllocFailed,
    /// The preferred slab order failed and a smaller one was used.
    OrderFallback,
}

/// The number of [`Stat`]s.
pub const NR_STATS: usize = Stat::OrderFallback as usize + 1;

// The ABI's event array holds exactly these counters.
const _: () = assert!(NR_STATS == crate::device::uapi::NR_EVENTS);

/// The counters' names, as debugfs and the ABI show them.
pub const STAT_NAMES: [&str; NR_STATS] = crate::device::uapi::EVENT_NAMES;

/// A set of counters.
#[derive(Default)]
pub(crate) struct Counters([AtomicU64; NR_STATS]);

// SAFETY: All-zero atomics are valid zero counters.
unsafe impl pin_init::Zeroable for Counters {}

impl Counters {
    /// Counts `n` events from the one context that owns these counters
    /// (a CPU under its local lock): no atomic read-modify-write needed.
    /// Wrapping, as the kernel's event counters do (and as `fetch_add`
    /// does): a fast path's count needs no overflow branch.
    #[inline(always)]
    pub(crate) fn add_local(&self, stat: Stat, n: u64) {
        let c = &self.0[stat as usize];
        c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Counts `n` events from any context.
    pub(crate) fn add(&self, stat: Stat, n: u64) {
        self.0[stat as usize].fetch_add(n, Relaxed);
    }

    /// Adds these counts to `out`.
    pub(crate) fn add_to(&self, out: &mut [u64; NR_STATS]) {
        for (o, c) in out.iter_mut().zip(self.0.iter()) {
            *o += c.load(Relaxed);
        }
    }
}

/// A snapshot of one cache, in `/proc/slabinfo` terms plus the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Objects handed out (those cached in per-CPU sheaves count as free).
    pub active_objs: usize,
    /// Objects in all slabs.
    pub num_objs: usize,
    /// The object size asked for.
    pub objsize: usize,
    /// Objects per slab at the preferred order.
    pub objperslab: usize,
    /// Pages per slab at the preferred order.
    pub pagesperslab: usize,
    /// Slabs with at least one allocated object.
    pub active_slabs: usize,
    /// All slabs.
    pub num_slabs: usize,
    /// Partial slabs.
    pub partial_slabs: usize,
    /// Empty slabs retained for reuse.
    pub empty_slabs: usize,
    /// Pages held by all slabs.
    pub pages: usize,
    /// Free objects held in per-CPU sheaves, node depots and the KASAN
    /// quarantine (not in a slab's freelist).
    pub cached_objs: usize,
    /// Of those, the objects parked in node depots (which memory pressure
    /// gives back).
    pub depot_objs: usize,
    /// Of those, the objects waiting in the KASAN quarantine (always 0
    /// without generic KASAN).
    pub quarantined_objs: usize,
    /// The event counters, indexed by [`Stat`].
    pub events: [u64; NR_STATS],
    /// How many times the allocator took a node's lock (all nodes): the
    /// cost of going past the per-CPU sheaves.
    pub node_locks: u64,
}

impl CacheStats {
    /// The count of one event.
    pub fn event(&self, stat: Stat) -> u64 {
        self.events[stat as usize]
    }
}
