// SPDX-License-Identifier: GPL-2.0

//! Object debugging: poison, red zones, and the one report path.
//!
//! The byte values are SLUB's (include/linux/poison.h), so a hex dump reads
//! the same: free objects are filled with `POISON_FREE` and end with
//! `POISON_END`; the red zone after an object holds `RED_ACTIVE` while the
//! object is allocated and `RED_INACTIVE` while it is free. Everything here
//! works on the byte slice of one slot and is safe code.

use crate::cache::flags::{CacheFlag, CacheFlags};
use crate::cache::layout::Layout;
use crate::sys;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;

const POISON_FREE: u8 = 0x6b;
const POISON_END: u8 = 0xa5;
const RED_INACTIVE: u8 = 0xbb;
const RED_ACTIVE: u8 = 0xcc;

/// Reports since the module loaded (debugfs `rslab/reports`); what a test
/// that provokes reports on purpose counts.
pub(crate) static REPORTS: AtomicU64 = AtomicU64::new(0);

/// Reports a bug rslab found in cache (or pool) `name`: corruption, a bad
/// or double free, a leak at destroy or unload. Every rslab report goes
/// through here.
///
/// As SLUB's `slab_bug()`: a `BUG <name> (<taint>): <what>` banner, the
/// object and a stack dump (rate-limited, so that a corruption hit on every
/// call cannot flood the log), and `TAINT_BAD_PAGE`, so that no test run
/// can pass over it. A report made by a KUnit test is one it provoked: it
/// is only counted, as SLUB's KUnit errors are. The pointer is printed
/// hashed (`%p`), never raw.
pub(crate) fn report(name: &CStr, what: fmt::Arguments<'_>, obj: *const u8) {
    REPORTS.fetch_add(1, Ordering::Relaxed);
    #[cfg(rslab_kunit)]
    if sys::report_in_kunit() {
        return;
    }
    if sys::report_ratelimit() {
        pr_err!("=============================================================================\n");
        pr_err!("BUG {}: {}\n", name, what);
        pr_err!("-----------------------------------------------------------------------------\n");
        pr_err!("rslab: object {:p} of {}\n", obj, name);
        sys::report_stack();
    }
    sys::report_taint();
}

/// The poisoned bytes of a slot: the object, minus the free pointer if it
/// lives inside (it never does in a poisoned cache, see [`Layout::new`]).
fn poison_range(layout: &Layout) -> core::ops::Range<usize> {
    0..layout.object_size
}

/// Prepares a slot that becomes free: poison it and mark its red zone.
pub(crate) fn prepare_free(layout: &Layout, flags: CacheFlags, slot: &mut [u8]) {
    if flags.contains(CacheFlag::Poison) {
        let range = poison_range(layout);
        let last = range.end - 1;
        slot[range].fill(POISON_FREE);
        slot[last] = POISON_END;
    }
    if flags.contains(CacheFlag::RedZone) {
        slot[layout.object_size..layout.red_zone_end].fill(RED_INACTIVE);
    }
}

/// Prepares a slot that is handed out: check its poison (a write after
/// free) and its inactive red zone, then arm the red zone.
pub(crate) fn prepare_alloc(layout: &Layout, flags: CacheFlags, name: &CStr, slot: &mut [u8]) {
    if flags.contains(CacheFlag::Poison) {
        let range = poison_range(layout);
        let last = range.end - 1;
        let bad = slot[range.clone()]
            .iter()
            .enumerate()
            .any(|(i, &b)| b != if i == last { POISON_END } else { POISON_FREE });
        if bad {
            report(
                name,
                fmt!("poison overwritten (write after free)"),
                slot.as_ptr(),
            );
        }
    }
    if flags.contains(CacheFlag::RedZone) {
        let zone = &mut slot[layout.object_size..layout.red_zone_end];
        if zone.iter().any(|&b| b != RED_INACTIVE) {
            report(
                name,
                fmt!("red zone of a free object overwritten"),
                zone.as_ptr(),
            );
        }
        zone.fill(RED_ACTIVE);
    }
}

/// Checks the red zone of an allocated slot about to be freed; `false`
/// (after a report) if something wrote past the end of the object.
pub(crate) fn check_red_zone(layout: &Layout, flags: CacheFlags, name: &CStr, slot: &[u8]) -> bool {
    if !flags.contains(CacheFlag::RedZone) {
        return true;
    }
    let zone = &slot[layout.object_size..layout.red_zone_end];
    if zone.iter().all(|&b| b == RED_ACTIVE) {
        return true;
    }
    report(
        name,
        fmt!("red zone overwritten (write past the object)"),
        slot.as_ptr(),
    );
    false
}
