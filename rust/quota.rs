// SPDX-License-Identifier: GPL-2.0

//! Quotas on what user space may hold through `/dev/rslab`.
//!
//! Every handle an open file holds (cache, pool or object) is one object of
//! its quota and is charged the bytes it pins: an object its footprint, a
//! pool its reserve. Each open file has an object and a byte limit, and all
//! files together a byte limit. A [`Charge`] is taken before the memory is
//! allocated and refunded when it is dropped, so no path can forget to
//! give it back.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use kernel::fmt;
use kernel::prelude::*;
use kernel::sync::Arc;

/// The limits in force (module parameters, read at load).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Handles per open file.
    pub objects: usize,
    /// Bytes per open file.
    pub bytes: usize,
    /// Bytes of all open files together.
    pub total_bytes: usize,
}

/// The device-wide usage.
pub struct Global {
    limits: Limits,
    files: AtomicUsize,
    objects: AtomicUsize,
    bytes: AtomicUsize,
}

/// One open file's usage.
pub struct Account {
    global: Arc<Global>,
    objects: AtomicUsize,
    bytes: AtomicUsize,
}

/// One handle's share of its file's (and the device's) usage; refunded on
/// drop.
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

    /// Opens an account for a new file.
    pub fn open(self: &Arc<Self>) -> Result<Arc<Account>> {
        let account = Arc::new(
            Account {
                global: self.clone(),
                objects: AtomicUsize::new(0),
                bytes: AtomicUsize::new(0),
            },
            GFP_KERNEL,
        )?;
        self.files.fetch_add(1, Relaxed);
        Ok(account)
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
        ];
        for (name, value) in lines {
            writeln!(f, "{name} {value}")?;
        }
        Ok(())
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.global.files.fetch_sub(1, Relaxed);
    }
}

impl Account {
    /// Charges one object of `bytes`; `EDQUOT`, with nothing charged, if
    /// that would pass a limit.
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Result<Charge> {
        let limits = self.global.limits;
        try_add(&self.objects, 1, limits.objects)?;
        // From here on, dropping `charge` refunds what was added.
        let mut charge = Charge {
            account: self.clone(),
            bytes: 0,
        };
        self.global.objects.fetch_add(1, Relaxed);
        charge.resize(bytes)?;
        Ok(charge)
    }
}

impl Charge {
    /// The bytes charged.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Changes the bytes charged to `bytes`; `EDQUOT`, with nothing
    /// changed, if that would pass a limit.
    pub fn resize(&mut self, bytes: usize) -> Result {
        let account = &self.account;
        let global = &account.global;
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
        let _ = self.resize(0);
        self.account.objects.fetch_sub(1, Relaxed);
        self.account.global.objects.fetch_sub(1, Relaxed);
    }
}
