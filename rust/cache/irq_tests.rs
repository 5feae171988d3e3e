// SPDX-License-Identifier: GPL-2.0

//! KUnit: rslab from interrupt context, while process context hammers the
//! same caches.
//!
//! A timer fires [`FIRES`] times, in hard interrupt context (an hrtimer in
//! `HRTIMER_MODE_REL`) or in a softirq (`HRTIMER_MODE_REL_SOFT`). Each
//! time it allocates with `GFP_ATOMIC` from a kmalloc class and as a large
//! (page) allocation, takes a bulk batch from the class cache and an element
//! from a mempool, fills, checks and frees them all, and frees an object
//! that process context handed over. Meanwhile the test thread allocates, fills,
//! checks and frees the same sizes with `GFP_KERNEL`, so that interrupts land
//! inside its critical sections. Every pattern must hold, every allocation
//! must succeed, nothing may stay allocated, and on the debug kernel lockdep
//! judges every lock taken in both contexts.
//!
//! Not `HRTIMER_MODE_REL_HARD`: its callbacks run in hard interrupt context
//! even on PREEMPT_RT, where no `spinlock_t` may be taken, so neither SLUB
//! nor rslab may allocate there (lockdep says "Invalid wait context", as a
//! first version of this test showed). A plain hrtimer's callback is hard
//! interrupt context on other kernels, as a device interrupt handler's is.

use crate::cache::flags::CacheFlags;
use crate::cache::Cache;
use crate::kmalloc::{size_class, Kmalloc};
use crate::mempool::{Backend, Mempool};
use core::ptr::NonNull;
use kernel::impl_has_hr_timer;
use kernel::prelude::*;
use kernel::sync::atomic::{ordering, Atomic};
use kernel::sync::{Arc, ArcBorrow};
use kernel::time::hrtimer::{
    HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerMode, HrTimerPointer, HrTimerRestart,
    RelativeMode, RelativeSoftMode,
};
use kernel::time::{Delta, Monotonic};

/// How many times the timer fires.
const FIRES: u64 = 100;
/// A kmalloc class size and a large (order-2) size.
const SIZES: [usize; 2] = [96, 16384];
/// The byte the interrupt side writes, and the process side's.
const IRQ_BYTE: u8 = 0xa5;
const TASK_BYTE: u8 = 0x3c;
/// Objects in a bulk batch.
const BULK: usize = 8;
/// The mempool's element size and reserve.
const POOL_SIZE: usize = 64;
const POOL_MIN: usize = 4;

/// The shared state: the allocator, the timer and what each side saw.
#[pin_data]
struct Hammer<M: HrTimerMode<Expires = Delta> + 'static> {
    #[pin]
    timer: HrTimer<Self>,
    #[pin]
    km: Kmalloc,
    /// A pool on a cache of its own.
    pool: Arc<Mempool>,
    fired: Atomic<u64>,
    errors: Atomic<u64>,
    /// An object of `SIZES[0]` bytes that process context allocated and
    /// filled, for the interrupt side to check and free; 0 when none.
    handoff: Atomic<usize>,
    _mode: core::marker::PhantomData<fn() -> M>,
}

impl<M: HrTimerMode<Expires = Delta> + 'static> Hammer<M> {
    fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            timer <- HrTimer::new(),
            km <- Kmalloc::new(Kmalloc::class_cache),
            pool: {
                let cache = Cache::new(c"rslab_irq_pool", POOL_SIZE, 8, CacheFlags::NONE, None)?;
                Mempool::new(c"rslab_irq_pool", POOL_MIN, Backend::Cache(cache))?
            },
            fired: Atomic::new(0),
            errors: Atomic::new(0),
            handoff: Atomic::new(0),
            _mode: core::marker::PhantomData,
        }? Error)
    }

    fn error(&self) {
        self.errors.fetch_add(1, ordering::Relaxed);
    }

    /// Allocates `size` bytes with `gfp` and fills them with `byte`.
    fn alloc_filled(
        &self,
        size: usize,
        gfp: kernel::alloc::Flags,
        byte: u8,
    ) -> Option<NonNull<u8>> {
        let Ok(p) = self.km.alloc(size, gfp) else {
            self.error();
            return None;
        };
        Self::fill(p.as_ptr(), size, byte);
        Some(p)
    }

    /// Fills `size` bytes at `p` with `byte`.
    fn fill(p: *mut u8, size: usize, byte: u8) {
        // SAFETY: Callers pass a live allocation of `size` bytes, theirs
        // alone.
        unsafe { p.write_bytes(byte, size) };
    }

    /// Counts an error unless the `size` bytes at `p` are all `byte`.
    fn check(&self, p: *const u8, size: usize, byte: u8) {
        // SAFETY: Callers pass a live allocation of `size` bytes, theirs
        // alone.
        let bytes = unsafe { core::slice::from_raw_parts(p, size) };
        if bytes.iter().any(|&b| b != byte) {
            self.error();
        }
    }

    /// Checks that `p`'s `size` bytes are all `byte`, then frees it.
    fn check_and_free(&self, p: NonNull<u8>, size: usize, byte: u8) {
        self.check(p.as_ptr(), size, byte);
        // SAFETY: Allocated by `self.km`, freed once, here.
        unsafe { self.km.free(p) };
    }

    /// A bulk batch from the first size's class cache: filled, checked and
    /// freed in bulk.
    fn bulk_round(&self, gfp: kernel::alloc::Flags, byte: u8) {
        let Some(class) = size_class(SIZES[0]) else {
            return self.error();
        };
        let cache = &self.km.caches()[class];
        let size = cache.layout().object_size;
        let mut objs = [core::ptr::null_mut(); BULK];
        if cache.alloc_bulk(gfp, &mut objs).is_err() {
            return self.error();
        }
        objs.iter().for_each(|&p| Self::fill(p, size, byte));
        objs.iter().for_each(|&p| self.check(p, size, byte));
        // SAFETY: Allocated from `cache` just above, freed once.
        unsafe { cache.free_bulk(&objs) };
    }

    /// An element of the pool: filled, checked and freed.
    fn pool_round(&self, gfp: kernel::alloc::Flags, byte: u8) {
        let Ok(p) = self.pool.alloc(gfp) else {
            return self.error();
        };
        Self::fill(p.as_ptr(), POOL_SIZE, byte);
        self.check(p.as_ptr(), POOL_SIZE, byte);
        // SAFETY: Allocated from the pool just above, freed once.
        unsafe { self.pool.free(p) };
    }

    /// One round of either side.
    fn round(&self, gfp: kernel::alloc::Flags, byte: u8) {
        let objs = SIZES.map(|size| self.alloc_filled(size, gfp, byte));
        for (p, size) in objs.into_iter().zip(SIZES) {
            if let Some(p) = p {
                self.check_and_free(p, size, byte);
            }
        }
        self.bulk_round(gfp, byte);
        self.pool_round(gfp, byte);
    }

    /// The interrupt side: a round, and the handed-over object.
    fn in_interrupt(&self) {
        self.round(GFP_ATOMIC, IRQ_BYTE);
        let p = self.handoff.xchg(0, ordering::Acquire) as *mut u8;
        if let Some(p) = NonNull::new(p) {
            self.check_and_free(p, SIZES[0], TASK_BYTE);
        }
    }

    /// The process side, until the timer is done: rounds, and an object
    /// handed over whenever the last one was taken.
    fn in_task(&self) {
        let mut rounds = 0u64;
        while self.fired.load(ordering::Relaxed) < FIRES && rounds < 50_000_000 {
            self.round(GFP_KERNEL, TASK_BYTE);
            if self.handoff.load(ordering::Relaxed) == 0 {
                if let Some(p) = self.alloc_filled(SIZES[0], GFP_KERNEL, TASK_BYTE) {
                    self.handoff.store(p.as_ptr() as usize, ordering::Release);
                }
            }
            rounds += 1;
        }
    }
}

impl<M: HrTimerMode<Expires = Delta> + 'static> HrTimerCallback for Hammer<M> {
    type Pointer<'a> = Arc<Self>;

    fn run(this: ArcBorrow<'_, Self>, mut ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        this.in_interrupt();
        if this.fired.fetch_add(1, ordering::Relaxed) + 1 >= FIRES {
            return HrTimerRestart::NoRestart;
        }
        ctx.forward_now(Delta::from_micros(500));
        HrTimerRestart::Restart
    }
}

impl_has_hr_timer! {
    impl{M: HrTimerMode<Expires = Delta> + 'static} HasHrTimer<Hammer<M>> for Hammer<M> {
        mode: M, field: self.timer
    }
}

/// Runs the hammer with a timer of mode `M`; every check must hold.
fn hammer<M: HrTimerMode<Expires = Delta> + 'static>() -> Result {
    let h = Arc::pin_init(Hammer::<M>::new(), GFP_KERNEL)?;
    let handle = h.clone().start(Delta::from_micros(500));
    h.in_task();
    // Dropping the handle cancels the timer and waits for a callback.
    drop(handle);
    let left = h.handoff.xchg(0, ordering::Relaxed) as *mut u8;
    if let Some(p) = NonNull::new(left) {
        h.check_and_free(p, SIZES[0], TASK_BYTE);
    }
    assert_eq!(h.fired.load(ordering::Relaxed), FIRES);
    assert_eq!(h.errors.load(ordering::Relaxed), 0);
    assert_eq!(h.km.large_pages(), 0);
    for cache in h.km.caches() {
        assert_eq!(cache.stats().active_objs, 0);
    }
    let pool = h.pool.stats();
    assert_eq!((pool.outstanding, pool.curr_nr), (0, POOL_MIN));
    Ok(())
}

#[kunit_tests(rslab_irq)]
mod tests {
    use super::*;

    /// `GFP_ATOMIC` allocations and frees in hard interrupt context,
    /// kmalloc classes and large, bulk and mempool, against process context
    /// on the same.
    #[test]
    fn hard_irq_alloc_and_free_against_process_context() -> Result {
        hammer::<RelativeMode<Monotonic>>()
    }

    /// The same from a softirq.
    #[test]
    fn softirq_alloc_and_free_against_process_context() -> Result {
        hammer::<RelativeSoftMode<Monotonic>>()
    }
}
