// SPDX-License-Identifier: GPL-2.0

//! The latency histograms' buckets: log2 of nanoseconds.
//!
//! Plain `core` code, compiled into the module and, as source, into the
//! user-space tools (`tools/rslab-uapi`), which read the histograms back
//! from debugfs: one definition of a bucket and of a percentile for both.

/// Buckets per histogram: bucket `i > 0` counts operations of
/// `[2^i, 2^(i+1))` ns, bucket 0 those under 2 ns, and the last one
/// everything from `2^(BUCKETS-1)` ns (about 2 s) up.
pub const BUCKETS: usize = 32;

/// The bucket of an operation that took `ns` nanoseconds.
pub fn bucket(ns: u64) -> usize {
    (ns.checked_ilog2().unwrap_or(0) as usize).min(BUCKETS - 1)
}

/// The least duration bucket `i` counts, in ns (what the debugfs file heads
/// its row with).
pub fn bucket_floor(i: usize) -> u64 {
    if i == 0 {
        0
    } else {
        1 << i
    }
}

/// The duration bucket `i`'s operations all took less than, in ns; `None`
/// for the last bucket, which has no bound.
pub fn bucket_ceiling(i: usize) -> Option<u64> {
    (i < BUCKETS - 1).then(|| bucket_floor(i + 1).max(2))
}

/// The bucket that holds the `pct`th percentile of `counts` (one count per
/// bucket, in order): the first at which `pct`% of the operations are
/// counted; `None` if there are none.
pub fn percentile_bucket(counts: &[u64], pct: u64) -> Option<usize> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = total.saturating_mul(pct).div_ceil(100).max(1);
    let mut seen = 0u64;
    counts.iter().position(|&n| {
        seen += n;
        seen >= rank
    })
}
