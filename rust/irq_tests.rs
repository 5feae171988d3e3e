// SPDX-License-Identifier: GPL-2.0

//! KUnit: rslab from interrupt context, while process context hammers the
//! same caches.
//!
//! A timer fires [`FIRES`] times, in hard interrupt context (an hrtimer in
//! `HRTIMER_MODE_REL`) or in a softirq (`HRTIMER_MODE_REL_SOFT`). Each
//! time it allocates with `GFP_ATOMIC` from a kmalloc class and as a large
//! (page) allocation, fills, checks and frees them, and frees an object that
//! process context handed over. Meanwhile the test thread allocates, fills,
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

use crate::kmalloc::Kmalloc;
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

/// The shared state: the allocator, the timer and what each side saw.
#[pin_data]
struct Hammer<M: HrTimerMode<Expires = Delta> + 'static> {
    #[pin]
    timer: HrTimer<Self>,
    #[pin]
    km: Kmalloc,
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
        // SAFETY: `size` bytes just allocated, ours alone.
        unsafe { p.as_ptr().write_bytes(byte, size) };
        Some(p)
    }

    /// Checks that `p`'s `size` bytes are all `byte`, then frees it.
    fn check_and_free(&self, p: NonNull<u8>, size: usize, byte: u8) {
        // SAFETY: A live allocation of `size` bytes, ours alone.
        let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), size) };
        if bytes.iter().any(|&b| b != byte) {
            self.error();
        }
        // SAFETY: Allocated by `self.km`, freed once, here.
        unsafe { self.km.free(p) };
    }

    /// One round of either side.
    fn round(&self, gfp: kernel::alloc::Flags, byte: u8) {
        let objs = SIZES.map(|size| self.alloc_filled(size, gfp, byte));
        for (p, size) in objs.into_iter().zip(SIZES) {
            if let Some(p) = p {
                self.check_and_free(p, size, byte);
            }
        }
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
    Ok(())
}

#[kunit_tests(rslab_irq)]
mod tests {
    use super::*;

    /// `GFP_ATOMIC` allocations and frees in hard interrupt context,
    /// kmalloc classes and large, against process context on the same.
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
