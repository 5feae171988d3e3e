// SPDX-License-Identifier: GPL-2.0

//! The bench's latency group: what rslab's latency histograms cost (the
//! `# latency_cost,<size>,<side>,<ops>,<min>,<median>,<max>` lines, ns per
//! alloc+free pair, with `off`, `key_on` and `on` sides) and what the `on`
//! runs counted (`# latency_hist,<size>,<column>,<ns>,<count>`: one line
//! per non-empty log2 bucket, headed by its least duration).

use crate::results::Numbers;
use anyhow::{bail, Result};
use rslab_uapi::latency_buckets;
use serde::Serialize;
use std::fmt::Write;

/// One `# latency_cost` line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cost {
    /// The object size in bytes.
    pub size: u32,
    /// `off` (no cache's histograms on), `key_on` (another cache's on) or
    /// `on` (this cache's on).
    pub side: String,
    /// ns per pair.
    pub numbers: Numbers,
}

/// One `# latency_hist` line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bucket {
    /// The object size in bytes.
    pub size: u32,
    /// `alloc_fast`, `alloc_slow`, `free_fast` or `free_slow`.
    pub column: String,
    /// The bucket's least duration in ns (it holds up to twice that).
    pub ns: u64,
    /// Operations counted in it.
    pub count: u64,
}

/// The sides of a cost line, in order.
pub const SIDES: [&str; 3] = ["off", "key_on", "on"];

/// Parses what follows `# latency_cost,`.
pub fn parse_cost(rest: &str) -> Result<Cost> {
    let f: Vec<&str> = rest.split(',').collect();
    let [size, side, ops, min, median, max] = f[..] else {
        bail!("expected 6 fields after '# latency_cost,', got {}", f.len());
    };
    if !SIDES.contains(&side) {
        bail!("unknown latency side '{side}'");
    }
    let numbers = Numbers {
        ops: ops.parse()?,
        min: min.parse()?,
        median: median.parse()?,
        max: max.parse()?,
    };
    if !(numbers.min <= numbers.median && numbers.median <= numbers.max) {
        bail!("min {min}, median {median}, max {max} are out of order");
    }
    Ok(Cost {
        size: size.parse()?,
        side: side.to_string(),
        numbers,
    })
}

/// Parses what follows `# latency_hist,`.
pub fn parse_bucket(rest: &str) -> Result<Bucket> {
    let f: Vec<&str> = rest.split(',').collect();
    let [size, column, ns, count] = f[..] else {
        bail!("expected 4 fields after '# latency_hist,', got {}", f.len());
    };
    Ok(Bucket {
        size: size.parse()?,
        column: column.to_string(),
        ns: ns.parse()?,
        count: count.parse()?,
    })
}

/// `side`'s minimum over `off`'s at `size`.
pub fn cost_ratio(costs: &[Cost], size: u32, side: &str) -> Option<f64> {
    let min = |s: &str| {
        costs
            .iter()
            .find(|c| c.size == size && c.side == s)
            .map(|c| c.numbers.min)
    };
    let off = min("off").filter(|&off| off > 0.0)?;
    Some(min(side)? / off)
}

/// The table's latency section: each size's cost per pair on each side,
/// and the percentiles of what the `on` runs counted.
pub fn table(costs: &[Cost], buckets: &[Bucket], out: &mut String) {
    let mut sizes: Vec<u32> = costs.iter().map(|c| c.size).collect();
    sizes.dedup();
    if sizes.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "latency histograms, cost per pair (min, ns):\n{:>5} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "size", "off", "key_on", "on", "key/off", "on/off"
    );
    for size in sizes {
        let min = |side| {
            costs
                .iter()
                .find(|c| c.size == size && c.side == side)
                .map_or("-".to_string(), |c| c.numbers.min.to_string())
        };
        let ratio = |side| cost_ratio(costs, size, side).map_or("-".into(), |r| format!("{r:.3}"));
        let _ = writeln!(
            out,
            "{size:>5} {:>10} {:>10} {:>10} {:>8} {:>8}",
            min("off"),
            min("key_on"),
            min("on"),
            ratio("key_on"),
            ratio("on")
        );
        for column in ["alloc_fast", "alloc_slow", "free_fast", "free_slow"] {
            let of: Vec<&Bucket> = buckets
                .iter()
                .filter(|b| b.size == size && b.column == column)
                .collect();
            let bound = |pct| {
                percentile(&of, pct).map(|b| b.map_or("inf".into(), |ns: u64| ns.to_string()))
            };
            if let (Some(p50), Some(p99)) = (bound(50), bound(99)) {
                let n: u64 = of.iter().map(|b| b.count).sum();
                let _ = writeln!(
                    out,
                    "      {column:<10} {n:>10} ops, p50 < {p50} ns, p99 < {p99} ns"
                );
            }
        }
    }
}

/// The bound in ns below which the operations of the bucket that holds the
/// `pct`th percentile of `buckets` (one column) took, by the module's own
/// rule (`rslab_uapi::latency_buckets`): `Some(None)` for the last bucket,
/// which has no bound; `None` if `buckets` count nothing.
pub fn percentile(buckets: &[&Bucket], pct: u64) -> Option<Option<u64>> {
    let mut counts = [0u64; latency_buckets::BUCKETS];
    for b in buckets {
        counts[latency_buckets::bucket(b.ns)] += b.count;
    }
    latency_buckets::percentile_bucket(&counts, pct).map(latency_buckets::bucket_ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_costs_and_buckets() {
        let c = parse_cost("64,key_on,2000,40.500,41.000,43.000").unwrap();
        assert_eq!(
            (c.size, c.side.as_str(), c.numbers.min),
            (64, "key_on", 40.5)
        );
        assert!(parse_cost("64,sideways,2000,1,1,1").is_err());
        assert!(parse_cost("64,on,2000,2,1,1").is_err());
        assert!(parse_cost("64,on,2000,1,1").is_err());
        let b = parse_bucket("256,free_fast,64,1999").unwrap();
        assert_eq!(
            (b.size, b.column.as_str(), b.ns, b.count),
            (256, "free_fast", 64, 1999)
        );
        assert!(parse_bucket("256,free_fast,64").is_err());
    }

    #[test]
    fn ratios_and_percentiles() {
        let costs: Vec<Cost> = [
            "64,off,2000,40,40,41",
            "64,key_on,2000,41,41,42",
            "64,on,2000,80,80,90",
        ]
        .iter()
        .map(|l| parse_cost(l).unwrap())
        .collect();
        assert_eq!(cost_ratio(&costs, 64, "on"), Some(2.0));
        assert_eq!(cost_ratio(&costs, 64, "key_on"), Some(1.025));
        assert_eq!(cost_ratio(&costs, 256, "on"), None);
        let buckets: Vec<Bucket> = [
            "64,alloc_fast,32,98",
            "64,alloc_fast,64,1",
            "64,alloc_fast,1024,1",
        ]
        .iter()
        .map(|l| parse_bucket(l).unwrap())
        .collect();
        let refs: Vec<&Bucket> = buckets.iter().collect();
        assert_eq!(percentile(&refs, 50), Some(Some(64)));
        assert_eq!(percentile(&refs, 99), Some(Some(128)));
        assert_eq!(percentile(&refs, 100), Some(Some(2048)));
        assert_eq!(percentile(&[], 50), None);
        let mut out = String::new();
        table(&costs, &buckets, &mut out);
        assert!(
            out.contains("   64         40         41         80    1.025    2.000"),
            "{out}"
        );
        assert!(
            out.contains("alloc_fast        100 ops, p50 < 64 ns, p99 < 128 ns"),
            "{out}"
        );
    }
}
