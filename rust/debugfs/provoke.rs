// SPDX-License-Identifier: GPL-2.0

//! rslab_kunit.ko only: `/sys/kernel/debug/rslab/provoke`, which makes one
//! deliberate bug in rslab objects per write, for `debug_tools.sh` to check
//! that the kernel's debugging tools see it (not in rslab.ko):
//!
//! * `chain`: objects A and B of a cache, B's address kept only in A, A's
//!   in this file's data; kmemleak must report neither.
//! * `leak`: object C, its address kept only in a form that is no pointer;
//!   kmemleak must report it, once. `release` frees A, B and C.
//! * `kasan-read-past`: a 1-byte read just past a 24-byte object; KASAN
//!   must report it.
//! * `kasan-use-after-free`: a 24-byte object freed, another allocated from
//!   the same cache (the quarantine keeps the first one's slot out of use),
//!   then a 1-byte read of the first; KASAN must report it.
//! * `sleep-in-atomic`: a `GFP_KERNEL` allocation with a spinlock held,
//!   served from the sheaf; the sleep checker must report it (through
//!   `might_alloc()`), though no page allocation happens.
//!
//! Each prints the addresses involved, raw (`{:p}` would hash them), as
//! kmemleak and KASAN print them: this is a test module.

use crate::cache::flags::CacheFlags;
use crate::cache::Cache;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::uaccess::UserSliceReader;

extern "C" {
    fn rslab_kunit_read_byte(p: *const core::ffi::c_void) -> u8;
}

/// What hides C's address from kmemleak: stored XORed with this.
const HIDE: usize = !0;

/// The file's data.
pub(crate) struct Provoke {
    cache: Arc<Cache>,
    /// Object A of the chain (0: none). This struct is kmalloc memory, so
    /// kmemleak scans it and finds A.
    chain: AtomicUsize,
    /// Object C, XORed with [`HIDE`] (0: none).
    hidden: AtomicUsize,
}

impl Provoke {
    /// The file, in rslab's debugfs directory.
    pub(crate) fn file(
        root: &crate::debugfs::file::Dir,
    ) -> Result<crate::debugfs::file::File<Arc<Self>>> {
        let provoke = Arc::new(
            Self {
                cache: Cache::new(c"rslab_provoke", 64, 8, CacheFlags::NONE, None)?,
                chain: AtomicUsize::new(0),
                hidden: AtomicUsize::new(0),
            },
            GFP_KERNEL,
        )?;
        let store = &|p: &Arc<Self>, r: &mut UserSliceReader| p.store(r);
        root.write_callback_file(c"provoke", provoke, store)
    }

    fn store(&self, reader: &mut UserSliceReader) -> Result {
        let mut buf = [0u8; 32];
        match crate::debugfs::file::read_text(reader, &mut buf)?.trim() {
            "chain" => self.chain(),
            "leak" => self.leak(),
            "release" => {
                self.release();
                Ok(())
            }
            "kasan-read-past" => self.read_past(),
            "kasan-use-after-free" => self.use_after_free(),
            "sleep-in-atomic" => self.sleep_in_atomic(),
            _ => Err(EINVAL),
        }
    }

    fn chain(&self) -> Result {
        let (a, b) = (self.cache.alloc(GFP_KERNEL)?, self.cache.alloc(GFP_KERNEL)?);
        // SAFETY: `a` is a live 64-byte object, ours alone.
        unsafe { a.as_ptr().cast::<usize>().write(b.as_ptr() as usize) };
        self.chain.store(a.as_ptr() as usize, Relaxed);
        pr_info!(
            "provoke: chain {:#x} -> {:#x}\n",
            a.as_ptr() as usize,
            b.as_ptr() as usize
        );
        Ok(())
    }

    fn leak(&self) -> Result {
        let c = self.cache.alloc(GFP_KERNEL)?;
        self.hidden.store(c.as_ptr() as usize ^ HIDE, Relaxed);
        pr_info!("provoke: leak {:#x}\n", c.as_ptr() as usize);
        Ok(())
    }

    fn release(&self) {
        if let Some(a) = NonNull::new(self.chain.swap(0, Relaxed) as *mut u8) {
            // SAFETY: `a` is object A, live, holding B's address.
            let b = unsafe { a.as_ptr().cast::<usize>().read() } as *mut u8;
            for obj in [Some(a), NonNull::new(b)].into_iter().flatten() {
                // SAFETY: Objects of `cache`, each freed once.
                unsafe { self.cache.free(obj) };
            }
        }
        let hidden = self.hidden.swap(0, Relaxed);
        if let Some(c) = NonNull::new((hidden ^ HIDE) as *mut u8).filter(|_| hidden != 0) {
            // SAFETY: Object C of `cache`, freed once.
            unsafe { self.cache.free(c) };
        }
    }

    fn read_past(&self) -> Result {
        let cache = Cache::new(c"rslab_provoke_24", 24, 8, CacheFlags::NONE, None)?;
        let obj = cache.alloc(GFP_KERNEL)?;
        let past = obj.as_ptr().wrapping_add(24);
        pr_info!(
            "provoke: reading 1 byte at {:#x}, just past a 24-byte object\n",
            past as usize
        );
        // SAFETY: Deliberately out of bounds, to be reported; the byte is
        // the KASAN padding of the same slot, mapped memory.
        unsafe { rslab_kunit_read_byte(past.cast()) };
        // SAFETY: From `cache`, freed once.
        unsafe { cache.free(obj) };
        Ok(())
    }

    fn use_after_free(&self) -> Result {
        let cache = Cache::new(c"rslab_provoke_uaf", 24, 8, CacheFlags::NONE, None)?;
        let gone = cache.alloc(GFP_KERNEL)?;
        // SAFETY: From `cache`, freed once (and then read, deliberately).
        unsafe { cache.free(gone) };
        let next = cache.alloc(GFP_KERNEL)?;
        pr_info!(
            "provoke: reading 1 byte at {:#x}, freed; {:#x} allocated since\n",
            gone.as_ptr() as usize,
            next.as_ptr() as usize
        );
        // SAFETY: Deliberately after free, to be reported; the slot is
        // rslab's, mapped memory.
        unsafe { rslab_kunit_read_byte(gone.as_ptr().cast()) };
        // SAFETY: From `cache`, freed once.
        unsafe { cache.free(next) };
        Ok(())
    }

    fn sleep_in_atomic(&self) -> Result {
        // An object in the sheaf first, so that the allocation below never
        // reaches the page allocator (which would report it anyway).
        let warm = self.cache.alloc(GFP_KERNEL)?;
        // SAFETY: From `cache`, freed once.
        unsafe { self.cache.free(warm) };
        let lock = KBox::pin_init(kernel::new_spinlock!(()), GFP_KERNEL)?;
        let guard = lock.lock();
        pr_info!("provoke: GFP_KERNEL with a spinlock held\n");
        let obj = self.cache.alloc(GFP_KERNEL);
        drop(guard);
        // SAFETY: From `cache`, freed once.
        unsafe { self.cache.free(obj?) };
        Ok(())
    }
}

impl Drop for Provoke {
    fn drop(&mut self) {
        self.release();
    }
}
