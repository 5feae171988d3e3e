// SPDX-License-Identifier: GPL-2.0

//! Per-cache latency histograms: how long each allocation and free took,
//! in log2 buckets of nanoseconds, with the fast path (the CPU's sheaf
//! alone) and the slow path (node lists, a new slab, a flush, a debug
//! cache's checks) apart.
//!
//! They are off until turned on for a cache (debugfs
//! `rslab/<cache>/latency`, or [`Latency::set`]). While no cache has them
//! on, an operation pays one no-op: the static key of
//! [`crate::sys::latency_key`]. Turning one cache's on patches that no-op
//! into a jump, in every cache, to a test of the cache's own flag; a cache
//! whose histograms are off then pays that test (3 instructions an
//! operation). A timed operation, out of line, reads `local_clock()` twice
//! and adds to one atomic counter of the cache (shared by its CPUs: this is
//! a debugging tool, not a statistic kept always). `make bench` measures
//! both costs.
//!
//! Single-object operations are timed ([`crate::cache::Cache::alloc`],
//! `alloc_node`, `free`, and so kmalloc's); bulk ones are not.

pub mod buckets;

pub use self::buckets::{bucket, bucket_ceiling, bucket_floor, BUCKETS};
use crate::sys;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use kernel::fmt;
use kernel::prelude::*;

/// One histogram per operation and path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Column {
    /// Allocations served by the CPU's sheaf.
    AllocFast,
    /// Allocations that went further.
    AllocSlow,
    /// Frees that went onto the CPU's sheaf.
    FreeFast,
    /// Frees that went further.
    FreeSlow,
}

/// The number of [`Column`]s.
pub const COLUMNS: usize = Column::FreeSlow as usize + 1;

/// The columns' names, as the debugfs file and `rslabctl` show them.
pub const COLUMN_NAMES: [&str; COLUMNS] = ["alloc_fast", "alloc_slow", "free_fast", "free_slow"];

/// Which path an operation took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// The CPU's sheaf alone.
    Fast,
    /// Anything more.
    Slow,
}

/// A timed operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// An allocation.
    Alloc,
    /// A free.
    Free,
}

impl Column {
    /// The column of `op` by `path`.
    pub fn of(op: Op, path: Path) -> Self {
        match (op, path) {
            (Op::Alloc, Path::Fast) => Self::AllocFast,
            (Op::Alloc, Path::Slow) => Self::AllocSlow,
            (Op::Free, Path::Fast) => Self::FreeFast,
            (Op::Free, Path::Slow) => Self::FreeSlow,
        }
    }
}

/// A cache's histograms and whether they are on.
pub struct Latency {
    on: AtomicBool,
    counts: [[AtomicU64; BUCKETS]; COLUMNS],
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            on: AtomicBool::new(false),
            counts: [const { [const { AtomicU64::new(0) }; BUCKETS] }; COLUMNS],
        }
    }
}

impl Latency {
    /// Whether this cache's histograms are on.
    pub fn is_on(&self) -> bool {
        self.on.load(Relaxed)
    }

    /// Turns them on or off; whether that changed anything. What they
    /// counted stays (see [`Latency::reset`]). May sleep: the static key
    /// is patched.
    pub fn set(&self, on: bool) -> bool {
        sys::latency_switch(&self.on, on)
    }

    /// Empties every histogram.
    pub fn reset(&self) {
        self.counts
            .iter()
            .flatten()
            .for_each(|c| c.store(0, Relaxed));
    }

    /// A copy of the histograms (not a consistent cut while operations
    /// are timed).
    pub fn snapshot(&self) -> Histograms {
        Histograms(
            self.counts
                .each_ref()
                .map(|c| c.each_ref().map(|n| n.load(Relaxed))),
        )
    }

    /// Runs `f`, which does an `op` and says which path it took, and
    /// counts its duration. For callers that found [`armed`] and this
    /// cache's histograms on ([`Latency::is_on`]), from an out-of-line
    /// function of their own that takes the operation's arguments by value:
    /// a closure built on the fast path made it spill them, and one called
    /// on both sides of the flag's test was outlined, which cost every
    /// cache a call per operation while any had its histograms on. (The
    /// free could instead have tested the flag it tests for a debug cache
    /// or `init_on_free`, but an atomic flag's load is not folded into its
    /// compare: one instruction more, as the key's no-op.)
    #[inline(always)]
    pub(crate) fn time<R>(&self, op: Op, f: impl FnOnce() -> (R, Path)) -> R {
        let start = sys::local_clock();
        let (r, path) = f();
        // The task may have moved to a CPU whose clock is a little behind.
        let ns = sys::local_clock().saturating_sub(start);
        self.counts[Column::of(op, path) as usize][bucket(ns)].fetch_add(1, Relaxed);
        r
    }
}

/// Whether some cache has its histograms on: then an operation tests its
/// own cache's ([`Latency::is_on`]) and, if they are on, goes through
/// [`Latency::time`]. While none has, the static key's no-op.
#[inline(always)]
pub(crate) fn armed() -> bool {
    sys::latency_key()
}

/// A copy of a cache's histograms, indexed by [`Column`] and bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histograms(pub [[u64; BUCKETS]; COLUMNS]);

impl Histograms {
    /// How many operations column `c` counted.
    pub fn count(&self, c: Column) -> u64 {
        self.0[c as usize].iter().sum()
    }

    /// The bucket that holds the `pct`th percentile of column `c` (see
    /// [`buckets::percentile_bucket`]); `None` if it counted none.
    pub fn percentile_bucket(&self, c: Column, pct: u64) -> Option<usize> {
        buckets::percentile_bucket(&self.0[c as usize], pct)
    }

    /// Writes the debugfs file: `enabled 0|1`; a header; one row per bucket
    /// from the first to the last that counted anything, headed by its
    /// least duration in ns; then `count`, and `p50` and `p99` as the
    /// upper bound of the bucket that holds them (`-` for none, `inf` for
    /// the last bucket).
    pub fn write(&self, on: bool, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "enabled {}", u8::from(on))?;
        write!(f, "{:>10}", "ns")?;
        COLUMN_NAMES
            .iter()
            .try_for_each(|n| write!(f, " {n:>12}"))?;
        writeln!(f)?;
        let used = |i: &usize| self.0.iter().any(|col| col[*i] != 0);
        if let (Some(first), Some(last)) = ((0..BUCKETS).find(used), (0..BUCKETS).rfind(used)) {
            for i in first..=last {
                write!(f, "{:>10}", bucket_floor(i))?;
                self.0
                    .iter()
                    .try_for_each(|col| write!(f, " {:>12}", col[i]))?;
                writeln!(f)?;
            }
        }
        write!(f, "{:>10}", "count")?;
        self.0
            .iter()
            .try_for_each(|col| write!(f, " {:>12}", col.iter().sum::<u64>()))?;
        writeln!(f)?;
        for pct in [50, 99] {
            write!(f, "{:>10}", fmt!("p{pct}"))?;
            for c in ALL_COLUMNS {
                match self.percentile_bucket(c, pct).map(bucket_ceiling) {
                    None => write!(f, " {:>12}", "-")?,
                    Some(None) => write!(f, " {:>12}", "inf")?,
                    Some(Some(ns)) => write!(f, " {:>12}", ns)?,
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Every [`Column`], in order.
pub const ALL_COLUMNS: [Column; COLUMNS] = [
    Column::AllocFast,
    Column::AllocSlow,
    Column::FreeFast,
    Column::FreeSlow,
];

#[cfg(rslab_kunit)]
#[kernel::macros::kunit_tests(rslab_latency)]
mod tests {
    use super::*;
    use crate::cache::flags::{CacheFlag, CacheFlags};
    use crate::cache::Cache;

    /// The counts of a cache's four histograms.
    fn counts(cache: &Cache) -> [u64; COLUMNS] {
        let h = cache.latency().snapshot();
        ALL_COLUMNS.map(|c| h.count(c))
    }

    fn pair(cache: &Cache) -> Result {
        let obj = cache.alloc(GFP_KERNEL)?;
        // SAFETY: From `cache`, freed once.
        unsafe { cache.free(obj) };
        Ok(())
    }

    #[test]
    fn buckets_are_log2_of_nanoseconds() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(2), 1);
        assert_eq!(bucket(3), 1);
        assert_eq!(bucket(1024), 10);
        assert_eq!(bucket(2047), 10);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_floor(0), 0);
        assert_eq!(bucket_floor(10), 1024);
        assert_eq!(bucket_ceiling(0), Some(2));
        assert_eq!(bucket_ceiling(10), Some(2048));
        assert_eq!(bucket_ceiling(BUCKETS - 1), None);
    }

    #[test]
    fn percentiles_are_the_bucket_that_reaches_them() {
        let mut h = Histograms::default();
        assert_eq!(h.percentile_bucket(Column::AllocFast, 50), None);
        // 98 operations of [64, 128) ns, one of [1024, 2048), one of [2^20, 2^21).
        h.0[Column::AllocFast as usize][6] = 98;
        h.0[Column::AllocFast as usize][10] = 1;
        h.0[Column::AllocFast as usize][20] = 1;
        assert_eq!(h.count(Column::AllocFast), 100);
        assert_eq!(h.percentile_bucket(Column::AllocFast, 50), Some(6));
        assert_eq!(h.percentile_bucket(Column::AllocFast, 98), Some(6));
        assert_eq!(h.percentile_bucket(Column::AllocFast, 99), Some(10));
        assert_eq!(h.percentile_bucket(Column::AllocFast, 100), Some(20));
        assert_eq!(h.percentile_bucket(Column::FreeSlow, 99), None);
    }

    #[test]
    fn a_cache_times_each_path_while_on() -> Result {
        let cache = Cache::new(c"rslab-test-latency", 64, 8, CacheFlags::NONE, None)?;
        assert!(!cache.latency().is_on());
        assert!(cache.latency().set(true));
        assert!(!cache.latency().set(true));
        assert!(sys::latency_key());
        // A new cache's sheaves are empty: the first allocation refills
        // one (slow). The thread may move to another CPU between calls, so
        // the rest is bounded, not exact (device.sh pins its task and
        // checks exact counts).
        pair(&cache)?;
        let [af, asl, ff, fs] = counts(&cache);
        assert!(asl == 1 && af == 0 && ff + fs == 1);
        for _ in 0..64 {
            pair(&cache)?;
        }
        let [af, asl, ff, fs] = counts(&cache);
        assert!(af + asl == 65 && ff + fs == 65);
        // Most came from, and went to, a sheaf with objects and room.
        assert!(af >= 32 && ff >= 32);
        assert!(cache.latency().set(false));
        assert!(!sys::latency_key());
        let before = counts(&cache);
        pair(&cache)?;
        assert_eq!(counts(&cache), before);
        cache.latency().reset();
        assert_eq!(counts(&cache), [0; COLUMNS]);
        assert_eq!(Cache::destroy(cache), Some(0));
        Ok(())
    }

    #[test]
    fn a_debug_cache_takes_the_slow_paths() -> Result {
        let cache = Cache::new(
            c"rslab-test-latency-dbg",
            64,
            8,
            CacheFlag::ConsistencyChecks,
            None,
        )?;
        cache.latency().set(true);
        pair(&cache)?;
        pair(&cache)?;
        assert_eq!(counts(&cache), [0, 2, 0, 2]);
        cache.latency().set(false);
        assert_eq!(Cache::destroy(cache), Some(0));
        Ok(())
    }

    #[test]
    fn destroying_a_timed_cache_turns_the_key_off() -> Result {
        let cache = Cache::new(c"rslab-test-latency-key", 64, 8, CacheFlags::NONE, None)?;
        let other = Cache::new(c"rslab-test-latency-key2", 64, 8, CacheFlags::NONE, None)?;
        cache.latency().set(true);
        other.latency().set(true);
        assert_eq!(Cache::destroy(cache), Some(0));
        // The other one still has its histograms on.
        assert!(sys::latency_key());
        pair(&other)?;
        assert_eq!(counts(&other).iter().sum::<u64>(), 2);
        assert_eq!(Cache::destroy(other), Some(0));
        assert!(!sys::latency_key());
        Ok(())
    }
}
