// SPDX-License-Identifier: GPL-2.0

//! Per-CPU data under a local lock, on top of the C helpers.
//!
//! [`PerCpu::with`] runs a closure on this CPU's data with the local lock
//! held (on !PREEMPT_RT: interrupts off, so no other code on this CPU, IRQs
//! included, can reach the same data). Other CPUs only ever see the shared
//! part, through [`PerCpu::shared`]. The lock is not recursive, so `with` is
//! an `unsafe fn`: its closure must not enter the same `PerCpu` again.

use crate::sys;
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::prelude::*;

/// The per-CPU storage: the shared part first, then the local part.
#[repr(C)]
struct Slot<L, S> {
    shared: S,
    local: UnsafeCell<L>,
}

/// One `L` (local: used only by its CPU, under the local lock) and one `S`
/// (shared: readable from any CPU, so it holds atomics) per possible CPU.
///
/// # Invariants
///
/// `ptr` is a per-CPU allocation from `rslab_pcpu_alloc` with room for a
/// zeroed `Slot<L, S>` on every possible CPU, freed only on drop. A CPU's `L`
/// is only referenced inside [`PerCpu::with`] on that CPU, or inside
/// [`PerCpu::with_unused`] when that CPU cannot be using it.
pub(crate) struct PerCpu<L, S> {
    ptr: NonNull<c_void>,
    _t: PhantomData<Slot<L, S>>,
}

// SAFETY: Each `L` is only used by its own CPU under its local lock (and `L:
// Send` lets it be created and dropped elsewhere); `S` is shared, so `Sync`.
unsafe impl<L: Send, S: Send + Sync> Send for PerCpu<L, S> {}
// SAFETY: As above: `&PerCpu` only hands out `&S` across CPUs.
unsafe impl<L: Send, S: Send + Sync> Sync for PerCpu<L, S> {}

impl<L: pin_init::Zeroable, S: pin_init::Zeroable> PerCpu<L, S> {
    /// Allocates a zeroed `L` and `S` for every possible CPU.
    pub(crate) fn new() -> Result<Self> {
        // The helper aligns the data to a pointer; the slot may not need more.
        const { assert!(core::mem::align_of::<Slot<L, S>>() <= core::mem::align_of::<usize>()) };
        // SAFETY: Any size is accepted; the memory comes back zeroed.
        let ptr = unsafe { sys::rslab_pcpu_alloc(core::mem::size_of::<Slot<L, S>>()) };
        Ok(Self {
            ptr: NonNull::new(ptr).ok_or(ENOMEM)?,
            _t: PhantomData,
        })
    }
}

impl<L, S> PerCpu<L, S> {
    /// Runs `f` on this CPU's `L` and `S` with the local lock held.
    ///
    /// `f` must not sleep; it may take spinlocks. Always inlined: it is
    /// the allocator's fast path (an out-of-line copy cost `make bench`
    /// about 30 instructions per free).
    ///
    /// # Safety
    ///
    /// `f` must not call [`PerCpu::with`] or [`PerCpu::with_unused`] on
    /// this `PerCpu`. The local lock is not recursive: a nested call would
    /// make a second `&mut L` on !PREEMPT_RT (lockdep reports it as
    /// recursive locking) and deadlock on PREEMPT_RT.
    #[inline(always)]
    pub(crate) unsafe fn with<R>(&self, f: impl FnOnce(&mut L, &S) -> R) -> R {
        // SAFETY: `ptr` is valid by the type invariant; `flags` is the saved
        // interrupt state, for the matching unlock below.
        let sys::PcpuLocked { data, flags } = unsafe { sys::rslab_pcpu_lock(self.ptr.as_ptr()) };
        // SAFETY: This CPU's slot is valid and was zero-initialised (valid,
        // as both parts are `Zeroable`).
        let slot = unsafe { &*data.cast::<Slot<L, S>>() };
        // SAFETY: The local lock keeps every other user of this CPU's `L`
        // (tasks and interrupts on this CPU; nobody else touches it) out
        // until the unlock, and `f` makes no nested call (the caller's
        // promise), so this is the only reference.
        let r = f(unsafe { &mut *slot.local.get() }, &slot.shared);
        // SAFETY: Pairs with the lock above, on the same CPU (the local lock
        // keeps us from migrating).
        unsafe { sys::rslab_pcpu_unlock(self.ptr.as_ptr(), flags) };
        r
    }

    /// CPU `cpu`'s shared part, if `cpu` is possible.
    pub(crate) fn shared(&self, cpu: u32) -> Option<&S> {
        if !sys::cpu_possible(cpu) {
            return None;
        }
        // SAFETY: `cpu` is possible, so its slot exists for our lifetime;
        // only the shared part is referenced.
        Some(unsafe { &(*sys::rslab_pcpu_ptr(self.ptr.as_ptr(), cpu).cast::<Slot<L, S>>()).shared })
    }

    /// Runs `f` on CPU `cpu`'s `L` and `S` without its local lock, where
    /// nothing else can be using them.
    ///
    /// # Safety
    ///
    /// `cpu` must be possible, and nothing else may reference its `L`
    /// meanwhile: the CPU is dead (a CPU hotplug teardown callback, which
    /// runs once the CPU has stopped, so no task or interrupt runs there),
    /// or the owner is tearing the `PerCpu` down and no CPU can reach it.
    pub(crate) unsafe fn with_unused<R>(&self, cpu: u32, f: impl FnOnce(&mut L, &S) -> R) -> R {
        // SAFETY: `cpu` is possible (the caller's promise), so its slot
        // exists for our lifetime.
        let slot = unsafe { &*sys::rslab_pcpu_ptr(self.ptr.as_ptr(), cpu).cast::<Slot<L, S>>() };
        // SAFETY: Nothing else references this `L` (the caller's promise):
        // this is the only reference.
        f(unsafe { &mut *slot.local.get() }, &slot.shared)
    }
}

impl<L, S> Drop for PerCpu<L, S> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant; no reference to the data outlives
        // `self`.
        unsafe { sys::rslab_pcpu_free(self.ptr.as_ptr()) };
    }
}

extern "C" fn on_each_cpu_trampoline<F: Fn() + Sync>(info: *mut c_void) {
    // SAFETY: `info` is the `&F` that `on_each_cpu` passed, which outlives
    // the call because `rslab_on_each_cpu` waits for every CPU.
    let f = unsafe { &*info.cast::<F>() };
    f();
}

/// Runs `f` on every online CPU, in process context bound to that CPU (not
/// in an IPI: `f` may take the per-CPU local lock), and waits until all have
/// run it. Must be called from a context that may sleep. `ENOMEM`, having
/// run nothing, if the work items cannot be allocated.
pub(crate) fn on_each_cpu<F: Fn() + Sync>(f: &F) -> Result {
    // SAFETY: The trampoline matches `F`, and `f` outlives the call.
    let ret = unsafe {
        sys::rslab_on_each_cpu(
            on_each_cpu_trampoline::<F>,
            core::ptr::from_ref(f).cast_mut().cast(),
        )
    };
    kernel::error::to_result(ret)
}
