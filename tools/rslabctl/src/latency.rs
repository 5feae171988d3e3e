// SPDX-License-Identifier: GPL-2.0

//! A cache's latency histograms, as its debugfs `latency` file shows them:
//! `enabled 0|1`, a header naming the columns, one row per log2 bucket
//! headed by its least duration in ns, then `count`, `p50` and `p99`
//! (see `Documentation/rslab.rst`). `rslabctl top` shows the allocation
//! and free percentiles, fast and slow paths together.

use anyhow::{ensure, Context, Result};
use rslab_uapi::latency_buckets;

/// One cache's histograms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latency {
    /// Whether they are on.
    pub enabled: bool,
    /// Column names, in file order (`alloc_fast` ...).
    pub columns: Vec<String>,
    /// Each bucket's least duration in ns and its count per column.
    pub buckets: Vec<(u64, Vec<u64>)>,
}

impl Latency {
    /// Parses the file.
    pub fn parse(text: &str) -> Result<Self> {
        let mut lines = text.lines();
        let enabled = match lines.next().unwrap_or_default() {
            "enabled 1" => true,
            "enabled 0" => false,
            other => anyhow::bail!("expected \"enabled 0|1\", got {other:?}"),
        };
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        ensure!(header.first() == Some(&"ns"), "bad header {header:?}");
        let columns: Vec<String> = header[1..].iter().map(|s| s.to_string()).collect();
        let mut buckets = Vec::new();
        for line in lines {
            let f: Vec<&str> = line.split_whitespace().collect();
            // The summary rows (count, p50, p99) follow the buckets.
            let Some(Ok(floor)) = f.first().map(|s| s.parse::<u64>()) else {
                break;
            };
            ensure!(f.len() == columns.len() + 1, "bad row {line:?}");
            let counts = f[1..]
                .iter()
                .map(|n| n.parse().with_context(|| format!("bad count in {line:?}")))
                .collect::<Result<_>>()?;
            buckets.push((floor, counts));
        }
        Ok(Self {
            enabled,
            columns,
            buckets,
        })
    }

    /// The bucket that holds the `pct`th percentile of the columns whose
    /// names start with `prefix`, added together (`None` if they counted
    /// nothing), by the module's own rule ([`latency_buckets`]).
    pub fn percentile(&self, prefix: &str, pct: u64) -> Option<usize> {
        let cols: Vec<usize> = (0..self.columns.len())
            .filter(|&i| self.columns[i].starts_with(prefix))
            .collect();
        let mut counts = [0u64; latency_buckets::BUCKETS];
        for (floor, row) in &self.buckets {
            counts[latency_buckets::bucket(*floor)] += cols.iter().map(|&i| row[i]).sum::<u64>();
        }
        latency_buckets::percentile_bucket(&counts, pct)
    }

    /// `p50/p99` of the columns starting with `prefix`, each the bound in
    /// ns below which its bucket's operations took (`inf` for the last
    /// bucket), for a table cell; `-` when off or empty.
    pub fn cell(&self, prefix: &str) -> String {
        let bound = |pct| {
            let ceiling = latency_buckets::bucket_ceiling(self.percentile(prefix, pct)?);
            Some(ceiling.map_or("inf".to_string(), |ns| ns.to_string()))
        };
        match (self.enabled, bound(50), bound(99)) {
            (true, Some(p50), Some(p99)) => format!("{p50}/{p99}"),
            _ => "-".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "enabled 1
        ns   alloc_fast   alloc_slow    free_fast    free_slow
        64           97            0           99            0
       128            1            0            1            0
       256            0            0            0            0
       512            0            2            0            0
     count           98            2          100            0
       p50          128         1024          128            -
       p99          256         1024          128            -
";

    #[test]
    fn parses_the_file() {
        let l = Latency::parse(FILE).unwrap();
        assert!(l.enabled);
        assert_eq!(
            l.columns,
            ["alloc_fast", "alloc_slow", "free_fast", "free_slow"]
        );
        assert_eq!(l.buckets.len(), 4);
        assert_eq!(l.buckets[3], (512, vec![0, 2, 0, 0]));
        assert!(Latency::parse("enabled 2\n").is_err());
        assert!(Latency::parse("enabled 1\nns a\n64 1 2\n").is_err());
        assert_eq!(Latency::parse("enabled 0\nns a\n\n").unwrap().buckets, []);
    }

    #[test]
    fn percentiles_join_fast_and_slow() {
        let l = Latency::parse(FILE).unwrap();
        // alloc: 97 + 1 + 2 = 100 operations; the 98th is in [128, 256).
        assert_eq!(l.percentile("alloc", 50), Some(6));
        assert_eq!(l.percentile("alloc", 98), Some(7));
        assert_eq!(l.percentile("alloc", 99), Some(9));
        assert_eq!(l.percentile("free_slow", 50), None);
        assert_eq!(l.cell("alloc"), "128/1024");
        assert_eq!(l.cell("free"), "128/128");
        let slow = Latency::parse("enabled 1\nns a_x\n2147483648 1\n").unwrap();
        assert_eq!(slow.cell("a"), "inf/inf");
        let off = Latency {
            enabled: false,
            ..l
        };
        assert_eq!(off.cell("alloc"), "-");
    }
}
