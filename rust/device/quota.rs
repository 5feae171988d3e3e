// SPDX-License-Identifier: GPL-2.0

//! Quotas on what user space may hold through `/dev/rslab`.
//!
//! Every handle an open file holds (cache, pool or object) is one object of
//! its quota and is charged the bytes it pins, all overheads counted: an
//! object its share of its slab (`Cache::object_footprint`), a cache what
//! its sheaves, depots and metadata can hold with no object allocated
//! (`Cache::fixed_footprint`), a pool its reserve (`Mempool::footprint`),
//! and each handle its table entry ([`HANDLE_BYTES`]). Each open file has
//! an object and a byte limit; all files together have an object and a
//! byte limit, and a limit on how many are open. A [`Charge`] is taken
//! before the memory is allocated and refunded when it is dropped, so no
//! path can forget to give it back.
//!
//! Each counted thing is a value whose `Drop` gives back exactly what its
//! constructor took, and the value exists only once the count is taken: a
//! value built and dropped on a failed allocation (`Arc::new` drops its
//! argument when it cannot allocate) must not give back what it never took.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use kernel::fmt;
use kernel::prelude::*;
use kernel::sync::Arc;

/// What a handle's own entry in its file's table costs: a red-black tree
/// node (its links, key and entry, as `kernel::rbtree` lays it out),
/// rounded up to its kmalloc class, and what the debugging tools add to it.
pub const HANDLE_BYTES: usize = (size_of::<kernel::bindings::rb_node>()
    + size_of::<u64>()
    + size_of::<crate::device::handles::Entry>())
.next_power_of_two()
    + crate::sys::TRACKING_BYTES;

/// The limits in force (module parameters, read at load).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Handles per open file.
    pub objects: usize,
    /// Bytes per open file.
    pub bytes: usize,
    /// Bytes of all open files together.
    pub total_bytes: usize,
    /// Handles of all open files together.
    pub total_objects: usize,
    /// Open files.
    pub files: usize,
}

/// The device-wide usage.
pub struct Global {
    limits: Limits,
    files: AtomicUsize,
    objects: AtomicUsize,
    bytes: AtomicUsize,
}

/// One open file, counted in [`Global`]'s `files`.
///
/// # Invariants
///
/// It was counted when the value was made and is uncounted when it is
/// dropped, once.
struct FileCount(Arc<Global>);

impl FileCount {
    /// `ENFILE` if as many files as the limit are open.
    fn new(global: &Arc<Global>) -> Result<Self> {
        try_add(&global.files, 1, global.limits.files).map_err(|_| ENFILE)?;
        // INVARIANT: Counted just above.
        Ok(Self(global.clone()))
    }
}

impl Drop for FileCount {
    fn drop(&mut self) {
        self.0.files.fetch_sub(1, Relaxed);
    }
}

/// One open file's usage.
pub struct Account {
    file: FileCount,
    objects: AtomicUsize,
    bytes: AtomicUsize,
}

/// One handle's share of its file's (and the device's) usage; refunded on
/// drop.
///
/// # Invariants
///
/// The handle is counted in its account's and the device's `objects`, and
/// `bytes` in their `bytes`.
pub struct Charge {
    account: Arc<Account>,
    bytes: usize,
}

/// Adds `n` to `counter` if the sum stays within `limit`.
fn try_add(counter: &AtomicUsize, n: usize, limit: usize) -> Result {
    counter
        .fetch_update(Relaxed, Relaxed, |v| {
            v.checked_add(n).filter(|&t| t <= limit)
        })
        .map(|_| ())
        .map_err(|_| EDQUOT)
}

impl Global {
    /// No usage yet, under `limits`.
    pub fn new(limits: Limits) -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                limits,
                files: AtomicUsize::new(0),
                objects: AtomicUsize::new(0),
                bytes: AtomicUsize::new(0),
            },
            GFP_KERNEL,
        )?)
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Opens an account for a new file; `ENFILE` if as many files as the
    /// limit are open.
    pub fn open(self: &Arc<Self>) -> Result<Arc<Account>> {
        // If `Arc::new` fails, it drops the account, and with it the count.
        Ok(Arc::new(
            Account {
                file: FileCount::new(self)?,
                objects: AtomicUsize::new(0),
                bytes: AtomicUsize::new(0),
            },
            GFP_KERNEL_ACCOUNT,
        )?)
    }

    /// Writes the usage and limits as `name value` lines (debugfs `device`).
    pub fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = [
            ("files", self.files.load(Relaxed)),
            ("objects", self.objects.load(Relaxed)),
            ("bytes", self.bytes.load(Relaxed)),
            ("max_objects", self.limits.objects),
            ("max_bytes", self.limits.bytes),
            ("max_total_bytes", self.limits.total_bytes),
            ("max_total_objects", self.limits.total_objects),
            ("max_files", self.limits.files),
            ("handle_bytes", HANDLE_BYTES),
        ];
        for (name, value) in lines {
            writeln!(f, "{name} {value}")?;
        }
        Ok(())
    }
}

impl Account {
    fn global(&self) -> &Global {
        &self.file.0
    }

    /// Charges one handle pinning `bytes` (plus [`HANDLE_BYTES`] for its
    /// entry); `EDQUOT`, with nothing charged, if that would pass a limit.
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Result<Charge> {
        let global = self.global();
        try_add(&self.objects, 1, global.limits.objects)?;
        if let Err(e) = try_add(&global.objects, 1, global.limits.total_objects) {
            self.objects.fetch_sub(1, Relaxed);
            return Err(e);
        }
        // INVARIANT: Both counts taken, no bytes yet; from here on, dropping
        // `charge` refunds what was added.
        let mut charge = Charge {
            account: self.clone(),
            bytes: 0,
        };
        charge.resize(bytes)?;
        Ok(charge)
    }
}

impl Charge {
    /// The bytes charged (what the handle pins, without its entry).
    pub fn bytes(&self) -> usize {
        self.bytes.saturating_sub(HANDLE_BYTES)
    }

    /// Changes the bytes charged to `bytes` (plus the entry's); `EDQUOT`,
    /// with nothing changed, if that would pass a limit.
    pub fn resize(&mut self, bytes: usize) -> Result {
        self.set(bytes.saturating_add(HANDLE_BYTES))
    }

    /// Changes the bytes charged, entry included, to `bytes`.
    fn set(&mut self, bytes: usize) -> Result {
        let account = &self.account;
        let global = account.global();
        if bytes > self.bytes {
            let more = bytes - self.bytes;
            try_add(&account.bytes, more, global.limits.bytes)?;
            if let Err(e) = try_add(&global.bytes, more, global.limits.total_bytes) {
                account.bytes.fetch_sub(more, Relaxed);
                return Err(e);
            }
        } else {
            let less = self.bytes - bytes;
            account.bytes.fetch_sub(less, Relaxed);
            global.bytes.fetch_sub(less, Relaxed);
        }
        self.bytes = bytes;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        // Cannot fail: shrinking to 0.
        let _ = self.set(0);
        self.account.objects.fetch_sub(1, Relaxed);
        self.account.global().objects.fetch_sub(1, Relaxed);
    }
}
