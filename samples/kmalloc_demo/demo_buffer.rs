// SPDX-License-Identifier: GPL-2.0

//! One named, kmalloc-backed buffer of the kmalloc_demo sample.
//!
//! This is the safe-Rust mirror of the C module's `struct demo_buffer` and its
//! `init`/`write`/`free` helpers. Ownership replaces the C code's manual
//! bookkeeping: the allocation lives in a [`KVec`], so "allocated" is
//! `Some(vec)`, the size is the vector's length, and freeing is dropping it.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use kernel::prelude::*;
use kernel::str::BStr;

/// Buffers allocated and not yet freed, in this module: what a test reads
/// to see that re-initialising or dropping a buffer frees the old memory.
pub(crate) static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The longest name the C module can store (`char name[32]` with its NUL).
pub(crate) const NAME_MAX: usize = 31;

/// A named buffer that is either allocated (and zeroed on allocation) or empty.
///
/// Invariant: when `data` is `Some`, it holds at least one byte, so there is
/// always room for the NUL terminator that [`DemoBuffer::write`] appends.
pub(crate) struct DemoBuffer {
    name: &'static [u8],
    data: Option<KVec<u8>>,
}

impl DemoBuffer {
    /// Creates an empty buffer called `name`, cut to [`NAME_MAX`] bytes as the
    /// C module's fixed-size name field would cut it.
    pub(crate) fn new(name: &'static str) -> Self {
        let name = name.as_bytes();
        Self {
            name: &name[..name.len().min(NAME_MAX)],
            data: None,
        }
    }

    /// The buffer's name.
    pub(crate) fn name(&self) -> &BStr {
        BStr::from_bytes(self.name)
    }

    /// The allocated size in bytes; 0 when the buffer is not allocated.
    #[allow(dead_code, reason = "only the KUnit tests inspect a buffer")]
    pub(crate) fn size(&self) -> usize {
        self.data.as_ref().map_or(0, |data| data.len())
    }

    /// The buffer's bytes, if it is allocated.
    #[allow(dead_code, reason = "only the KUnit tests inspect a buffer")]
    pub(crate) fn contents(&self) -> Option<&[u8]> {
        self.data.as_deref()
    }

    /// Allocates `size` zeroed bytes with `GFP_KERNEL`.
    ///
    /// Returns `EINVAL` for an empty name or a zero size and `ENOMEM` when
    /// kmalloc refuses; the attempt carries `__GFP_NOWARN`, so a refusal
    /// logs this sample's error line and no allocator warning. A buffer that
    /// is already allocated is freed first, so nothing can leak.
    pub(crate) fn init(&mut self, size: usize) -> Result {
        if self.name.is_empty() || size == 0 {
            pr_err!("[kmalloc-demo] Invalid buffer init parameters\n");
            return Err(EINVAL);
        }
        self.free();
        let Ok(data) = KVec::from_elem(0u8, size, GFP_KERNEL | __GFP_NOWARN) else {
            pr_err!(
                "[kmalloc-demo] {} allocation failed ({} bytes)\n",
                self.name(),
                size
            );
            return Err(ENOMEM);
        };
        // `{:p}` goes through printk's `%p`: the address is hashed, which is
        // what the C module's `%pK` prints under the default kptr_restrict=0.
        pr_info!(
            "[kmalloc-demo] {} init success: addr={:p}, size={}\n",
            self.name(),
            data.as_ptr(),
            size
        );
        self.data = Some(data);
        LIVE.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Copies up to `data_len` bytes of `data` into the buffer and NUL-terminates it.
    ///
    /// The copy is clamped to `size - 1` (room for the NUL) and, unlike the C
    /// module, also to `data.len()`, so it never reads past the source. Returns
    /// the number of bytes written; writing to an unallocated buffer logs an
    /// error and writes nothing.
    pub(crate) fn write(&mut self, data: &[u8], data_len: usize) -> usize {
        let name = BStr::from_bytes(self.name);
        let Some(buf) = self.data.as_mut() else {
            pr_err!("[kmalloc-demo] Write failed: invalid parameters\n");
            return 0;
        };
        let len = data_len.min(buf.len() - 1).min(data.len());
        buf[..len].copy_from_slice(&data[..len]);
        buf[len] = 0;
        // Like the C `%s`, the log shows the contents up to the first NUL.
        let shown = buf[..len].split(|&byte| byte == 0).next().unwrap_or(&[]);
        pr_info!(
            "[kmalloc-demo] Written to {}: {} (actual {} bytes)\n",
            name,
            BStr::from_bytes(shown),
            len
        );
        len
    }

    /// Frees the buffer and logs it; does nothing if it is not allocated.
    pub(crate) fn free(&mut self) {
        if let Some(data) = self.data.take() {
            let addr = data.as_ptr();
            drop(data);
            LIVE.fetch_sub(1, Relaxed);
            pr_info!(
                "[kmalloc-demo] {} memory freed: original addr={:p}\n",
                self.name(),
                addr
            );
        }
    }
}

impl Drop for DemoBuffer {
    /// Dropping a buffer frees it with its log line, so no path can leak one
    /// or skip the "memory freed" line.
    fn drop(&mut self) {
        self.free();
    }
}
