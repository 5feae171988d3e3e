// SPDX-License-Identifier: GPL-2.0

//! The benchmark's C primitives (`rslab_bench_helpers.c`, in
//! rslab_bench.ko only): kthreads started together, CPU affinity,
//! `cond_resched()`. The kernel crate has no kthread or affinity
//! abstraction.

use core::ffi::c_void;

extern "C" {
    fn rslab_bench_cond_resched();
    pub(crate) fn rslab_bench_threads(
        f: unsafe extern "C" fn(*mut c_void, u32),
        arg: *mut c_void,
        n: u32,
        bind: bool,
        stop: *const bool,
    ) -> i32;
    fn rslab_bench_nth_online_cpu(n: u32) -> i32;
    fn rslab_bench_online_cpus() -> u32;
    fn rslab_bench_move_to(cpu: u32) -> i32;
}

/// `cond_resched()`: gives up the CPU if another task needs it (on
/// kernels without full preemption). May sleep.
pub(crate) fn cond_resched() {
    // SAFETY: Called from process context (the bench's write).
    unsafe { rslab_bench_cond_resched() }
}

/// The monotonic clock in nanoseconds (`ktime_get()`), the benchmark's
/// timestamps on both sides.
pub(crate) fn now_ns() -> u64 {
    // SAFETY: No preconditions; callable from any context after boot.
    unsafe { kernel::bindings::ktime_get() as u64 }
}

/// The `n`-th online CPU, counting from 0.
pub(crate) fn nth_online_cpu(n: u32) -> Option<u32> {
    // SAFETY: Reads the online mask; valid for any `n`.
    u32::try_from(unsafe { rslab_bench_nth_online_cpu(n) }).ok()
}

/// The number of online CPUs.
pub(crate) fn online_cpus() -> u32 {
    // SAFETY: Reads a cpumask weight; no preconditions.
    unsafe { rslab_bench_online_cpus() }
}

/// Moves the calling task to `cpu` (it runs there on success).
pub(crate) fn move_to_cpu(cpu: u32) -> kernel::error::Result {
    // SAFETY: Any `cpu` is checked by the helper; the caller may sleep, as
    // every benchmark loop runs in process context.
    kernel::error::to_result(unsafe { rslab_bench_move_to(cpu) })
}
