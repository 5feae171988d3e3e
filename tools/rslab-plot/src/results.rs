// SPDX-License-Identifier: GPL-2.0

//! The bench CSV: parsing, pairing each rslab row with its kernel row (and
//! its `rslab_default` row, where there is one), and the text table.

use crate::latency;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The column header the module writes.
pub const HEADER: &str = "case,pattern,size,side,ops,min,median,max,unit";

/// One side's numbers for one case and size.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Numbers {
    /// Operations per measurement (live objects for the memory rows).
    pub ops: u64,
    /// The best repetition (or the value, for the memory rows).
    pub min: f64,
    /// The median repetition (or the value, for the memory rows).
    pub median: f64,
    /// The worst repetition (or the value, for the memory rows).
    pub max: f64,
}

impl Numbers {
    /// How far the worst repetition is above the best, in percent.
    pub fn spread(&self) -> f64 {
        if self.min > 0.0 {
            100.0 * (self.max - self.min) / self.min
        } else {
            0.0
        }
    }
}

/// rslab next to the kernel for one case and size.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// `group/pattern`, e.g. `cache/pair`.
    pub case: String,
    /// The object size in bytes.
    pub size: u32,
    /// `ns/op` (per allocated-and-freed object), `pages`, `objects`, `bytes`.
    pub unit: String,
    /// rslab's numbers.
    pub rslab: Numbers,
    /// The kernel's numbers.
    pub kernel: Numbers,
    /// rslab ÷ kernel of the minimums; `None` where the kernel's is 0.
    pub ratio: Option<f64>,
    /// rslab with its own default sheaf capacity, where measured (the
    /// `rslab` side has SLUB's capacity).
    pub rslab_default: Option<Numbers>,
    /// `rslab_default` ÷ kernel of the minimums.
    pub default_ratio: Option<f64>,
}

/// The sides a row may have, in the order of `parse_row`'s index.
const SIDES: [&str; 3] = ["rslab", "kernel", "rslab_default"];

/// The comparisons of one run (one clock).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
    /// `icount`, `tcg` or `kvm`.
    pub clock: String,
    /// The run's settings line, as the module wrote it.
    pub settings: String,
    /// The sheaf capacity of each side, per size: the module's
    /// `# sheaf_capacity,<size>,rslab=N,kernel=N,rslab_default=N` lines.
    pub sheaf_capacity: Vec<String>,
    /// Every comparison, in the module's order.
    pub comparisons: Vec<Comparison>,
    /// How often each rslab side took a node's lock per operation: the
    /// module's `# node_locks,<case>,<pattern>,<size>,<side>,<per op>`
    /// lines, in its order.
    pub node_locks: Vec<NodeLocks>,
    /// The latency group's costs per pair (see [`latency`]).
    pub latency_cost: Vec<latency::Cost>,
    /// The latency group's histograms: every non-empty bucket.
    pub latency_hist: Vec<latency::Bucket>,
}

/// One `# node_locks` line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeLocks {
    /// `group/pattern`.
    pub case: String,
    /// The object size in bytes.
    pub size: u32,
    /// `rslab` or `rslab_default`.
    pub side: String,
    /// Node-lock acquisitions per operation.
    pub per_op: f64,
}

impl NodeLocks {
    fn parse(rest: &str) -> Result<Self> {
        let f: Vec<&str> = rest.split(',').collect();
        let [case, pattern, size, side, per_op] = f[..] else {
            bail!("expected 5 fields after '# node_locks,', got {}", f.len());
        };
        Ok(Self {
            case: format!("{case}/{pattern}"),
            size: size.parse()?,
            side: side.to_string(),
            per_op: per_op.parse()?,
        })
    }
}

type Key = (String, u32);

impl Run {
    /// Parses the module's CSV. Every row must have its other side.
    pub fn parse(clock: &str, text: &str) -> Result<Self> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let settings = lines.next().ok_or_else(|| anyhow!("empty results"))?;
        if !settings.starts_with("# rslab-bench v2 ") {
            bail!("not rslab bench results: '{settings}'");
        }
        let mut sheaf_capacity = Vec::new();
        let header = loop {
            match lines.next() {
                Some(l) if l.starts_with("# sheaf_capacity,") => {
                    sheaf_capacity.push(l.trim_start_matches("# sheaf_capacity,").to_string())
                }
                other => break other,
            }
        };
        if header != Some(HEADER) {
            bail!("missing the column header '{HEADER}'");
        }
        let mut order: Vec<Key> = Vec::new();
        let mut sides: BTreeMap<Key, (String, [Option<Numbers>; 3])> = BTreeMap::new();
        let mut node_locks = Vec::new();
        let (mut latency_cost, mut latency_hist) = (Vec::new(), Vec::new());
        for (n, line) in lines.enumerate() {
            let context = || format!("'{line}'");
            if let Some(rest) = line.strip_prefix("# node_locks,") {
                node_locks.push(NodeLocks::parse(rest).with_context(context)?);
                continue;
            }
            if let Some(rest) = line.strip_prefix("# latency_cost,") {
                latency_cost.push(latency::parse_cost(rest).with_context(context)?);
                continue;
            }
            if let Some(rest) = line.strip_prefix("# latency_hist,") {
                latency_hist.push(latency::parse_bucket(rest).with_context(context)?);
                continue;
            }
            let (key, unit, side, numbers) =
                parse_row(line).with_context(|| format!("row {}: '{line}'", n + 1))?;
            let entry = sides.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                (unit.to_string(), [None, None, None])
            });
            if entry.1[side].replace(numbers).is_some() {
                bail!(
                    "row {}: a second {} row for {} {}",
                    n + 1,
                    SIDES[side],
                    key.0,
                    key.1
                );
            }
        }
        let comparisons = order
            .into_iter()
            .map(|key| {
                let (unit, [r, k, d]) = sides.remove(&key).unwrap_or_default();
                let (Some(rslab), Some(kernel)) = (r, k) else {
                    bail!(
                        "{} {}: rslab and kernel rows must both be present",
                        key.0,
                        key.1
                    );
                };
                let over_kernel = |n: &Numbers| (kernel.min > 0.0).then(|| n.min / kernel.min);
                Ok(Comparison {
                    case: key.0,
                    size: key.1,
                    unit,
                    ratio: over_kernel(&rslab),
                    default_ratio: d.as_ref().and_then(over_kernel),
                    rslab,
                    kernel,
                    rslab_default: d,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if comparisons.is_empty() && latency_cost.is_empty() {
            bail!("no result rows");
        }
        Ok(Self {
            clock: clock.to_string(),
            settings: settings.trim_start_matches("# ").to_string(),
            sheaf_capacity,
            comparisons,
            node_locks,
            latency_cost,
            latency_hist,
        })
    }

    /// The distinct cases, in order.
    pub fn cases(&self) -> Vec<String> {
        let mut cases: Vec<String> = Vec::new();
        for c in &self.comparisons {
            if !cases.contains(&c.case) {
                cases.push(c.case.clone());
            }
        }
        cases
    }

    /// The comparison of `case` at `size`.
    pub fn find(&self, case: &str, size: u32) -> Option<&Comparison> {
        self.comparisons
            .iter()
            .find(|c| c.case == case && c.size == size)
    }

    /// The side-by-side table: case, size, rslab and kernel (minimums,
    /// each with its spread: how far the worst repetition is above the
    /// best), ratio (of the minimums), and rslab with its default sheaf
    /// capacity over the kernel ("-" where not measured).
    pub fn table(&self) -> String {
        let mut out = format!("== {} clock: {} ==\n", self.clock, self.settings);
        for c in &self.sheaf_capacity {
            let _ = writeln!(out, "sheaf capacity at {c}");
        }
        let _ = writeln!(
            out,
            "{:<22} {:>5} {:>12} {:>7} {:>12} {:>7} {:>7} {:>7}  unit",
            "case", "size", "rslab", "spread", "kernel", "spread", "ratio", "default"
        );
        let ratio = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{r:.2}"));
        for c in &self.comparisons {
            let spread = |n: &Numbers| format!("{:.1}%", n.spread());
            let default = match c.rslab_default {
                Some(_) => ratio(c.default_ratio),
                None => "-".to_string(),
            };
            let _ = writeln!(
                out,
                "{:<22} {:>5} {:>12} {:>7} {:>12} {:>7} {:>7} {:>7}  {}",
                c.case,
                c.size,
                c.rslab.min,
                spread(&c.rslab),
                c.kernel.min,
                spread(&c.kernel),
                ratio(c.ratio),
                default,
                c.unit
            );
        }
        if !self.node_locks.is_empty() {
            let _ = writeln!(
                out,
                "node-lock acquisitions per operation:\n{:<22} {:>5} {:>14} {:>14}",
                "case", "size", "rslab", "rslab_default"
            );
            for l in self.node_locks.iter().filter(|l| l.side == "rslab") {
                let default = self
                    .node_locks
                    .iter()
                    .find(|d| d.side == "rslab_default" && d.case == l.case && d.size == l.size)
                    .map_or("-".to_string(), |d| format!("{:.4}", d.per_op));
                let _ = writeln!(
                    out,
                    "{:<22} {:>5} {:>14.4} {:>14}",
                    l.case, l.size, l.per_op, default
                );
            }
        }
        latency::table(&self.latency_cost, &self.latency_hist, &mut out);
        out
    }
}

/// One CSV row: its key, unit, side (its index in [`SIDES`]) and numbers.
fn parse_row(line: &str) -> Result<(Key, &str, usize, Numbers)> {
    let f: Vec<&str> = line.split(',').collect();
    let [case, pattern, size, side, ops, min, median, max, unit] = f[..] else {
        bail!("expected 9 fields, got {}", f.len());
    };
    let Some(side) = SIDES.iter().position(|&s| s == side) else {
        bail!("unknown side '{side}'");
    };
    let number = |s: &str| -> Result<f64> {
        let v: f64 = s
            .parse()
            .with_context(|| format!("'{s}' is not a number"))?;
        if !v.is_finite() || v < 0.0 {
            bail!("'{s}' is not a finite, non-negative number");
        }
        Ok(v)
    };
    let numbers = Numbers {
        ops: ops.parse()?,
        min: number(min)?,
        median: number(median)?,
        max: number(max)?,
    };
    if !(numbers.min <= numbers.median && numbers.median <= numbers.max) {
        bail!("min {min}, median {median}, max {max} are out of order");
    }
    Ok((
        (format!("{case}/{pattern}"), size.parse()?),
        unit,
        side,
        numbers,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "# rslab-bench v2 ops=2000 reps=2 objects=5000 cpus=2
# sheaf_capacity,64,rslab=60,kernel=60,rslab_default=64
case,pattern,size,side,ops,min,median,max,unit
cache,pair,64,rslab,2000,100.500,101.000,110.550,ns/op
cache,pair,64,kernel,2000,201.000,202.000,204.000,ns/op
cache,pair,64,rslab_default,2000,402.000,402.000,402.000,ns/op
# node_locks,cache,pair,64,rslab,0.0125
# node_locks,cache,pair,64,rslab_default,0.0100
memory,loss_bytes,64,rslab,5000,0,0,0,bytes
memory,loss_bytes,64,kernel,5000,0,0,0,bytes
";

    #[test]
    fn pairs_rows_and_computes_ratios() {
        let run = Run::parse("icount", CSV).unwrap();
        assert_eq!(
            run.settings,
            "rslab-bench v2 ops=2000 reps=2 objects=5000 cpus=2"
        );
        assert_eq!(run.comparisons.len(), 2);
        let pair = run.find("cache/pair", 64).unwrap();
        assert_eq!(pair.ratio, Some(0.5));
        assert_eq!(pair.default_ratio, Some(2.0));
        assert_eq!(pair.rslab.median, 101.0);
        assert_eq!(
            run.sheaf_capacity,
            ["64,rslab=60,kernel=60,rslab_default=64"]
        );
        assert_eq!(run.node_locks.len(), 2);
        assert_eq!(
            (run.node_locks[0].case.as_str(), run.node_locks[0].per_op),
            ("cache/pair", 0.0125)
        );
        assert_eq!(run.find("memory/loss_bytes", 64).unwrap().ratio, None);
        assert_eq!(run.cases(), ["cache/pair", "memory/loss_bytes"]);
        let table = run.table();
        let line = table.lines().find(|l| l.starts_with("cache/pair")).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "cache/pair",
                "64",
                "100.5",
                "10.0%",
                "201",
                "1.5%",
                "0.50",
                "2.00",
                "ns/op"
            ]
        );
        let loss = table
            .lines()
            .find(|l| l.starts_with("memory/loss_bytes"))
            .unwrap();
        assert!(loss.contains(" n/a ") && loss.contains(" - "), "{loss}");
        let locks = table
            .lines()
            .skip_while(|l| !l.starts_with("node-lock"))
            .nth(2)
            .unwrap();
        let cols: Vec<&str> = locks.split_whitespace().collect();
        assert_eq!(cols, ["cache/pair", "64", "0.0125", "0.0100"]);
    }

    #[test]
    fn rejects_bad_input() {
        let missing_side = CSV.replace(
            "cache,pair,64,kernel,2000,201.000,202.000,204.000,ns/op\n",
            "",
        );
        assert!(Run::parse("x", &missing_side).is_err());
        let out_of_order = CSV.replace("101.000,110.550", "111.000,110.550");
        assert!(Run::parse("x", &out_of_order).is_err());
        let duplicate = CSV.replace("cache,pair,64,kernel", "cache,pair,64,rslab");
        assert!(Run::parse("x", &duplicate).is_err());
        let bad_locks = CSV.replace("pair,64,rslab,0.0125", "pair,64,rslab");
        assert!(Run::parse("x", &bad_locks).is_err());
        let unknown = CSV.replace("64,rslab_default,2000", "64,rslab_other,2000");
        assert!(Run::parse("x", &unknown).is_err());
        assert!(Run::parse("x", &CSV.replace("100.500", "nan")).is_err());
        assert!(Run::parse("x", &CSV.replace("100.500", "-1")).is_err());
        assert!(Run::parse("x", &CSV.replace(",ns/op", "")).is_err());
        assert!(Run::parse("x", "").is_err());
        assert!(Run::parse("x", "# rslab-bench v2 x\nwrong,header\n").is_err());
    }
}
