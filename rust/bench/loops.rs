// SPDX-License-Identifier: GPL-2.0

//! The benchmark's timed loops, written once for both sides.
//!
//! Every loop is generic over [`Side`], so rslab and the kernel allocator run
//! exactly the same Rust code between the same two `ktime_get()` timestamps;
//! only the calls behind the trait differ. Nothing disables preemption or
//! interrupts around a loop. A measurement compares sides: each runs once
//! to warm up, then `reps` rounds run each side once, timed, starting from
//! a different side each round; each side's runs are reported as the
//! minimum, the median and the maximum per operation. The whole benchmark
//! runs in a kthread bound to the first online CPU ([`run_bound`]).

use crate::bench::helpers;
use core::ffi::c_void;
use core::num::NonZeroU64;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use kernel::prelude::*;

/// The most repetitions of one measurement.
pub(crate) const MAX_REPS: usize = 25;

/// The objects each round of the concurrent and remote-free patterns holds.
pub(crate) const BATCH: usize = 256;

/// One allocator under test: an rslab one or its kernel counterpart.
///
/// Implementations are inlined into the loops and call the allocator's own
/// entry point, out of line: one call per operation on each side, as a
/// kernel caller makes (rslab: `Cache::alloc`/`free`, `Kmalloc::alloc`/
/// `free`, `Mempool::alloc`/`free`; the kernel: the exported SLUB, kmalloc
/// and mempool functions). `Documentation/rslab-bench.rst` says how to
/// check it in the disassembly.
pub(crate) trait Side: Sync {
    /// Allocates one object with `GFP_KERNEL`.
    fn alloc(&self) -> Option<NonNull<u8>>;

    /// Frees one object.
    ///
    /// # Safety
    ///
    /// `obj` came from [`Side::alloc`] or [`Side::alloc_bulk`] of this side
    /// and is not used again.
    unsafe fn free(&self, obj: NonNull<u8>);

    /// Fills `out` with objects, all or nothing; `false` on failure or if
    /// the allocator has no bulk interface (the default).
    fn alloc_bulk(&self, _out: &mut [*mut u8]) -> bool {
        false
    }

    /// Frees every object of `objs` (by default nothing: without
    /// [`Side::alloc_bulk`] there are none).
    ///
    /// # Safety
    ///
    /// As for [`Side::free`], for each object.
    unsafe fn free_bulk(&self, _objs: &[*mut u8]) {}
}

/// A timed run: nanoseconds elapsed and operations done.
#[derive(Clone, Copy)]
pub(crate) struct Run {
    pub(crate) ns: u64,
    pub(crate) ops: u64,
}

/// A measurement: picoseconds per operation, best, median and worst of
/// the reps.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) min_ps: u64,
    pub(crate) median_ps: u64,
    pub(crate) max_ps: u64,
    pub(crate) ops: u64,
}

/// Set when the task that started the benchmark is killed: the bound
/// kthread running it stops at its next run. (One benchmark runs at a
/// time: the bench file's `running` lock.)
static STOP: AtomicBool = AtomicBool::new(false);

/// Between two runs: a benchmark whose task was killed ends at the next
/// run (`EINTR`: [`run_bound`]'s caller sets [`STOP`]; the kthread itself
/// never has a signal), and the CPU is given up if need be. (A whole
/// benchmark is up to about 10^10 operations; one run at most `ops`, 10^7.)
fn between_runs() -> Result {
    if STOP.load(Relaxed) {
        return Err(EINTR);
    }
    helpers::cond_resched();
    Ok(())
}

/// One side of a measurement: a run of its pattern over a scratch buffer.
pub(crate) type SideRun<'a> = &'a mut dyn FnMut(&mut [*mut u8]) -> Result<Run>;

/// Measures `sides` against each other: each runs once to warm up, then
/// `reps` rounds run each once, timed; round `r` starts at side `r mod N`,
/// so that none always runs first or right after the same other side.
/// (The dynamic call is one per run; each loop inside is monomorphic.)
pub(crate) fn measure<const N: usize>(
    reps: usize,
    buf: &mut [*mut u8],
    sides: [SideRun<'_>; N],
) -> Result<[Sample; N]> {
    let reps = reps.clamp(1, MAX_REPS);
    let mut sides = sides;
    for run in sides.iter_mut() {
        between_runs()?;
        run(buf)?;
    }
    // Picoseconds per operation: `ps[rep][side]`.
    let mut ps = [[0u64; N]; MAX_REPS];
    let mut ops = [0u64; N];
    for (rep, row) in ps.iter_mut().enumerate().take(reps) {
        for k in 0..N {
            let side = (rep + k) % N;
            between_runs()?;
            let r = sides[side](buf)?;
            let per_op = NonZeroU64::new(r.ops).ok_or(EINVAL)?;
            row[side] = r.ns.saturating_mul(1000) / per_op;
            ops[side] = r.ops;
        }
    }
    Ok(core::array::from_fn(|side| {
        let mut column = [0u64; MAX_REPS];
        for (slot, row) in column.iter_mut().zip(&ps[..reps]) {
            *slot = row[side];
        }
        let column = &mut column[..reps];
        insertion_sort(column);
        Sample {
            min_ps: column[0],
            median_ps: column[reps / 2],
            max_ps: column[reps - 1],
            ops: ops[side],
        }
    }))
}

/// Sorts a few numbers. (core's sort trips objtool in this kernel.)
fn insertion_sort(v: &mut [u64]) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && v[j - 1] > v[j] {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// `ops` hot alloc+free pairs.
pub(crate) fn pair<A: Side>(a: &A, ops: u64) -> Result<Run> {
    let t0 = helpers::now_ns();
    for _ in 0..ops {
        let obj = a.alloc().ok_or(ENOMEM)?;
        // SAFETY: Just allocated; not used again.
        unsafe { a.free(obj) };
    }
    Ok(Run {
        ns: helpers::now_ns() - t0,
        ops,
    })
}

/// Rounds of `N` allocations, all outstanding, then their `N` frees, for
/// about `ops` objects (at least one round); `buf` holds at least `N`.
pub(crate) fn outstanding<A: Side, const N: usize>(
    a: &A,
    ops: u64,
    buf: &mut [*mut u8],
) -> Result<Run> {
    let buf = buf.get_mut(..N).ok_or(EINVAL)?;
    let rounds = (ops / N as u64).max(1);
    let mut ns = 0;
    for _ in 0..rounds {
        ns += timed_round(a, buf, |_| true)?;
    }
    Ok(Run {
        ns,
        ops: rounds * N as u64,
    })
}

/// One timed round: fills `buf` and frees it all. `between` runs untimed
/// after the allocations (it may move the task); `false` stops with `EIO`.
/// Returns the nanoseconds of the two timed halves.
fn timed_round<A: Side>(
    a: &A,
    buf: &mut [*mut u8],
    between: impl FnOnce(&mut [*mut u8]) -> bool,
) -> Result<u64> {
    let t0 = helpers::now_ns();
    for i in 0..buf.len() {
        match a.alloc() {
            Some(obj) => buf[i] = obj.as_ptr(),
            None => {
                // SAFETY: `buf[..i]` were just allocated here.
                unsafe { free_all(a, &buf[..i]) };
                return Err(ENOMEM);
            }
        }
    }
    let t1 = helpers::now_ns();
    let moved = between(buf);
    let t2 = helpers::now_ns();
    // SAFETY: Every slot was just allocated here.
    unsafe { free_all(a, buf) };
    let t3 = helpers::now_ns();
    if !moved {
        return Err(EIO);
    }
    Ok((t1 - t0) + (t3 - t2))
}

/// # Safety
///
/// As for [`Side::free`], for each object of `objs`.
unsafe fn free_all<A: Side>(a: &A, objs: &[*mut u8]) {
    for &obj in objs {
        // SAFETY: The caller's promise; allocated objects are never null.
        unsafe { a.free(NonNull::new_unchecked(obj)) };
    }
}

/// Rounds of one bulk allocation of `N` objects and one bulk free, for
/// about `ops` objects (at least one round).
pub(crate) fn bulk<A: Side, const N: usize>(a: &A, ops: u64) -> Result<Run> {
    let mut buf = [core::ptr::null_mut::<u8>(); N];
    let rounds = (ops / N as u64).max(1);
    let t0 = helpers::now_ns();
    for _ in 0..rounds {
        if !a.alloc_bulk(&mut buf) {
            return Err(ENOMEM);
        }
        // SAFETY: Just allocated in bulk; not used again.
        unsafe { a.free_bulk(&buf) };
    }
    Ok(Run {
        ns: helpers::now_ns() - t0,
        ops: rounds * N as u64,
    })
}

/// One kthread per online CPU, bound to it and released together, each
/// running [`BATCH`]-object rounds ([`outstanding`]) for about `ops`
/// objects. The time is the slowest thread's.
pub(crate) fn concurrent<A: Side>(a: &A, ops: u64) -> Result<Run> {
    let n = helpers::online_cpus();
    let mut ns = KVec::with_capacity(n as usize, GFP_KERNEL)?;
    for _ in 0..n {
        ns.push(AtomicU64::new(0), GFP_KERNEL)?;
    }
    let failed = AtomicBool::new(false);
    run_threads(n, true, &|idx: u32| {
        let mut buf = [core::ptr::null_mut::<u8>(); BATCH];
        match outstanding::<A, BATCH>(a, ops, &mut buf) {
            Ok(r) => {
                if let Some(slot) = ns.get(idx as usize) {
                    slot.store(r.ns, Relaxed);
                }
            }
            Err(_) => failed.store(true, Relaxed),
        }
    })?;
    if failed.load(Relaxed) {
        return Err(ENOMEM);
    }
    let slowest = ns.iter().map(|t| t.load(Relaxed)).max().unwrap_or(0);
    let rounds = (ops / BATCH as u64).max(1);
    Ok(Run {
        ns: slowest,
        ops: rounds * BATCH as u64,
    })
}

/// Remote free: one kthread allocates [`BATCH`] objects on the first
/// online CPU, moves to the second and frees them there, for about `ops`
/// objects. Only the allocations and the frees are timed, not the moves.
/// `ENODEV` with fewer than two online CPUs.
pub(crate) fn remote<A: Side>(a: &A, ops: u64) -> Result<Run> {
    let (Some(home), Some(away)) = (helpers::nth_online_cpu(0), helpers::nth_online_cpu(1)) else {
        return Err(ENODEV);
    };
    let rounds = (ops / BATCH as u64).max(1);
    let ns = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    run_threads(1, false, &|_| {
        let mut buf = [core::ptr::null_mut::<u8>(); BATCH];
        let mut total = 0;
        for _ in 0..rounds {
            if helpers::move_to_cpu(home).is_err() {
                failed.store(true, Relaxed);
                return;
            }
            match timed_round(a, &mut buf, |_| helpers::move_to_cpu(away).is_ok()) {
                Ok(t) => total += t,
                Err(_) => {
                    failed.store(true, Relaxed);
                    return;
                }
            }
        }
        ns.store(total, Relaxed);
    })?;
    if failed.load(Relaxed) {
        return Err(ENOMEM);
    }
    Ok(Run {
        ns: ns.load(Relaxed),
        ops: rounds * BATCH as u64,
    })
}

/// Calls the `F` at `arg` with the thread's index.
///
/// # Safety
///
/// `arg` must point to an `F` that outlives the call.
unsafe extern "C" fn thread_trampoline<F: Fn(u32) + Sync>(arg: *mut c_void, idx: u32) {
    // SAFETY: `arg` is the `&F` that `run_threads` passed; it outlives every
    // thread, as `rslab_bench_threads` returns only when all have finished.
    let f = unsafe { &*arg.cast::<F>() };
    f(idx);
}

/// Runs `f(i)` on `n` kthreads (`bind`: thread `i` on the `i`-th online
/// CPU) released together, and waits for all.
fn run_threads<F: Fn(u32) + Sync>(n: u32, bind: bool, f: &F) -> Result {
    // SAFETY: The trampoline matches `F`; `f` outlives the call, which
    // waits for every thread; `F: Sync` lets them share it.
    let rc = unsafe {
        helpers::rslab_bench_threads(
            thread_trampoline::<F>,
            core::ptr::from_ref(f).cast_mut().cast(),
            n,
            bind,
            core::ptr::null(),
        )
    };
    kernel::error::to_result(rc)
}

/// Runs `f` to its end in a kthread bound to the first online CPU, so that
/// a benchmark neither migrates nor depends on its caller's affinity, and
/// returns what `f` returned. The caller waits killably: killed, it makes
/// the kthread stop at its next run ([`between_runs`], `EINTR`), then
/// waits for that.
pub(crate) fn run_bound<F: FnMut() -> Result + Send>(f: F) -> Result {
    STOP.store(false, Relaxed);
    let mut state = (f, Err(EINTR));
    // SAFETY: The trampoline matches the state's type; the state outlives
    // the call, which returns only once the thread has finished; only that
    // thread touches it meanwhile (`F: Send`). `STOP` is static, and an
    // `AtomicBool` has `bool`'s layout.
    let rc = unsafe {
        helpers::rslab_bench_threads(
            bound_trampoline::<F>,
            core::ptr::from_mut(&mut state).cast(),
            1,
            true,
            STOP.as_ptr(),
        )
    };
    kernel::error::to_result(rc)?;
    state.1
}

/// Runs the `F` of the `(F, Result)` at `arg` and stores its result there.
///
/// # Safety
///
/// `arg` must point to an `(F, Result)` that nothing else uses meanwhile.
unsafe extern "C" fn bound_trampoline<F: FnMut() -> Result>(arg: *mut c_void, _idx: u32) {
    // SAFETY: The caller's promise.
    let (f, result) = unsafe { &mut *arg.cast::<(F, Result)>() };
    *result = f();
}
