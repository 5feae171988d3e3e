// SPDX-License-Identifier: GPL-2.0

//! Per-cache fault injection for slab page allocations.
//!
//! Two knobs, both in debugfs: fail the next N slab allocations, or fail
//! each one with probability P%. The first has priority. They only affect
//! the allocation of new slabs from the page allocator, exactly where a
//! real memory shortage would hit.

use crate::sys;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// The fault-injection state of one cache.
#[derive(Default)]
pub struct FaultInject {
    next: AtomicU32,
    percent: AtomicU32,
}

impl FaultInject {
    /// Makes the next `n` slab allocations fail.
    pub fn fail_next(&self, n: u32) {
        self.next.store(n, Relaxed);
    }

    /// Makes each slab allocation fail with probability `percent`% (0..=100).
    pub fn fail_percent(&self, percent: u32) {
        self.percent.store(percent.min(100), Relaxed);
    }

    /// The remaining forced failures and the failure percentage.
    pub fn settings(&self) -> (u32, u32) {
        (self.next.load(Relaxed), self.percent.load(Relaxed))
    }

    /// Whether this slab allocation should fail.
    pub(crate) fn should_fail(&self) -> bool {
        let forced = self
            .next
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok();
        forced || {
            let p = self.percent.load(Relaxed);
            p > 0 && sys::random_u32() % 100 < p
        }
    }
}
