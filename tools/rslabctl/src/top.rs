// SPDX-License-Identifier: GPL-2.0

//! `rslabctl top`: rslab's caches and pools as slabtop shows SLUB's.
//!
//! A sample reads debugfs: `slabinfo` (the `/proc/slabinfo` 2.1 format),
//! each cache's `stats` (for its pages and event counters) and `latency`
//! (its histograms' percentiles, where they are on), and `poolinfo`.
//! Two samples give rates. The table is built here as plain strings, so
//! `--once` prints exactly what the live view (`crate::tui`) draws.

use crate::latency::Latency;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `rslabctl top` options.
#[derive(Args, Debug, Clone)]
pub struct TopArgs {
    /// Print one table (after two samples --delay apart, for the rates) and exit.
    #[arg(short, long)]
    pub once: bool,
    /// The column to sort caches by (largest first; names A to Z); slabtop's
    /// letters work too (n o a u s l c).
    #[arg(short, long, value_enum, default_value_t = SortKey::Objs)]
    pub sort: SortKey,
    /// Seconds between refreshes.
    #[arg(short, long, default_value_t = 2.0)]
    pub delay: f64,
    /// rslab's debugfs directory.
    #[arg(long, default_value = "/sys/kernel/debug/rslab")]
    pub root: PathBuf,
}

/// A cache column to sort by.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// The name.
    #[value(alias = "n")]
    Name,
    /// Objects in slabs.
    #[value(alias = "o")]
    Objs,
    /// Objects allocated.
    #[value(alias = "a")]
    Active,
    /// Allocated share of the objects.
    #[value(alias = "u")]
    Use,
    /// The object size.
    #[value(alias = "s")]
    Size,
    /// Slabs.
    #[value(alias = "l")]
    Slabs,
    /// Memory held.
    #[value(alias = "c")]
    Memory,
    /// Allocations per second.
    Allocs,
    /// Frees per second.
    Frees,
}

impl SortKey {
    /// The next key, for the live view's sort key cycling.
    pub fn next(self) -> Self {
        let all = Self::value_variants();
        let i = all.iter().position(|k| *k == self).unwrap_or(0);
        all[(i + 1) % all.len()]
    }
}

/// One cache, from one sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CacheRow {
    /// Its name.
    pub name: String,
    /// Objects allocated.
    pub active_objs: u64,
    /// Objects in slabs.
    pub num_objs: u64,
    /// The object size.
    pub objsize: u64,
    /// Objects per slab.
    pub objperslab: u64,
    /// Slabs with an object allocated.
    pub active_slabs: u64,
    /// All slabs.
    pub num_slabs: u64,
    /// Pages held.
    pub pages: u64,
    /// Allocations so far (fast and slow path).
    pub allocs: u64,
    /// Frees so far.
    pub frees: u64,
    /// Its latency histograms, if its debugfs file could be read.
    pub latency: Option<Latency>,
}

/// One pool, from one sample: `poolinfo`'s columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolRow {
    /// Its name.
    pub name: String,
    /// The numbers, in `poolinfo` order (min_nr to free_backend).
    pub numbers: Vec<u64>,
    /// The backend.
    pub backend: String,
}

/// One reading of debugfs.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// The caches.
    pub caches: Vec<CacheRow>,
    /// The pools.
    pub pools: Vec<PoolRow>,
}

/// The rows of a debugfs table: after the `header` line, every line but
/// `#` comments, split into exactly `fields` fields.
fn table_rows<'a>(text: &'a str, header: &str, fields: usize) -> Result<Vec<Vec<&'a str>>> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    anyhow::ensure!(first == header, "expected {header:?}, got {first:?}");
    lines
        .filter(|l| !l.starts_with('#'))
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            anyhow::ensure!(f.len() == fields, "bad line: {line:?}");
            Ok(f)
        })
        .collect()
}

/// A number field of a table row.
fn number(f: &[&str], i: usize) -> Result<u64> {
    f[i].parse()
        .with_context(|| format!("bad number {:?} in {f:?}", f[i]))
}

/// Parses `slabinfo` (version 2.1) into rows, without the stats-file
/// numbers.
pub fn parse_slabinfo(text: &str) -> Result<Vec<CacheRow>> {
    table_rows(text, "slabinfo - version: 2.1", 16)?
        .into_iter()
        .map(|f| {
            Ok(CacheRow {
                name: f[0].to_string(),
                active_objs: number(&f, 1)?,
                num_objs: number(&f, 2)?,
                objsize: number(&f, 3)?,
                objperslab: number(&f, 4)?,
                active_slabs: number(&f, 13)?,
                num_slabs: number(&f, 14)?,
                ..CacheRow::default()
            })
        })
        .collect()
}

/// Parses a `name value` stats file.
pub fn parse_stats(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// Parses `poolinfo` (version 1).
pub fn parse_poolinfo(text: &str) -> Result<Vec<PoolRow>> {
    table_rows(text, "poolinfo - version: 1", 12)?
        .into_iter()
        .map(|f| {
            Ok(PoolRow {
                name: f[0].to_string(),
                numbers: (1..11).map(|i| number(&f, i)).collect::<Result<_>>()?,
                backend: f[11].to_string(),
            })
        })
        .collect()
}

/// Reads one sample from the debugfs directory `root`.
pub fn sample(root: &Path) -> Result<Sample> {
    let read = |p: PathBuf| fs::read_to_string(&p).with_context(|| format!("reading {p:?}"));
    let mut caches = parse_slabinfo(&read(root.join("slabinfo"))?)?;
    for c in caches.iter_mut() {
        // A cache destroyed since slabinfo was read keeps zero counters.
        let Ok(text) = fs::read_to_string(root.join(&c.name).join("stats")) else {
            continue;
        };
        let s = parse_stats(&text);
        let get = |k: &str| s.get(k).copied().unwrap_or(0);
        c.pages = get("pages");
        c.allocs = get("alloc_fastpath") + get("alloc_slowpath");
        c.frees = get("free_fastpath") + get("free_slowpath");
        c.latency = fs::read_to_string(root.join(&c.name).join("latency"))
            .ok()
            .and_then(|t| Latency::parse(&t).ok());
    }
    let pools = parse_poolinfo(&read(root.join("poolinfo"))?)?;
    Ok(Sample {
        at: Instant::now(),
        caches,
        pools,
    })
}

/// A cache row with its rates, ready to sort and show.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheView {
    /// The sample's row.
    pub row: CacheRow,
    /// Allocations per second since the previous sample.
    pub alloc_rate: f64,
    /// Frees per second since the previous sample.
    pub free_rate: f64,
}

impl CacheView {
    fn use_pct(&self) -> f64 {
        percent(self.row.active_objs, self.row.num_objs)
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// The caches of `cur` with their rates against `prev` (0 without one, or
/// for a cache that is new), sorted by `key`.
pub fn views(prev: Option<&Sample>, cur: &Sample, key: SortKey) -> Vec<CacheView> {
    let secs = prev.map_or(0.0, |p| cur.at.duration_since(p.at).as_secs_f64());
    let old: HashMap<&str, &CacheRow> = prev
        .map(|p| p.caches.iter().map(|c| (c.name.as_str(), c)).collect())
        .unwrap_or_default();
    let rate = |now: u64, then: Option<u64>| match then {
        Some(then) if secs > 0.0 => now.saturating_sub(then) as f64 / secs,
        _ => 0.0,
    };
    let mut views: Vec<CacheView> = cur
        .caches
        .iter()
        .map(|c| {
            let before = old.get(c.name.as_str());
            CacheView {
                alloc_rate: rate(c.allocs, before.map(|b| b.allocs)),
                free_rate: rate(c.frees, before.map(|b| b.frees)),
                row: c.clone(),
            }
        })
        .collect();
    sort(&mut views, key);
    views
}

/// Sorts largest first by `key` (by name, A to Z), ties by name.
pub fn sort(views: &mut [CacheView], key: SortKey) {
    let metric = |v: &CacheView| -> f64 {
        match key {
            SortKey::Name => 0.0,
            SortKey::Objs => v.row.num_objs as f64,
            SortKey::Active => v.row.active_objs as f64,
            SortKey::Use => v.use_pct(),
            SortKey::Size => v.row.objsize as f64,
            SortKey::Slabs => v.row.num_slabs as f64,
            SortKey::Memory => v.row.pages as f64,
            SortKey::Allocs => v.alloc_rate,
            SortKey::Frees => v.free_rate,
        }
    };
    views.sort_by(|a, b| {
        metric(b)
            .total_cmp(&metric(a))
            .then_with(|| a.row.name.cmp(&b.row.name))
    });
}

/// The caches table's header.
/// `ALLOC_NS` and `FREE_NS` are the p50/p99 of the cache's latency
/// histograms, since they were turned on or reset (`-` while off).
pub const CACHE_HEADER: [&str; 12] = [
    "NAME", "OBJS", "ACTIVE", "USE", "OBJ_SIZE", "SLABS", "OBJ/SLAB", "MEMORY", "ALLOC/s",
    "FREE/s", "ALLOC_NS", "FREE_NS",
];

/// The pools table's header.
pub const POOL_HEADER: [&str; 9] = [
    "POOL",
    "MIN_NR",
    "CURR_NR",
    "OUT",
    "ALLOC_BACKEND",
    "ALLOC_RESERVE",
    "WAITS",
    "FAILURES",
    "BACKEND",
];

/// The caches table's cells.
pub fn cache_cells(views: &[CacheView]) -> Vec<Vec<String>> {
    views
        .iter()
        .map(|v| {
            let r = &v.row;
            vec![
                r.name.clone(),
                r.num_objs.to_string(),
                r.active_objs.to_string(),
                format!("{:.0}%", v.use_pct()),
                r.objsize.to_string(),
                r.num_slabs.to_string(),
                r.objperslab.to_string(),
                format!("{}K", r.pages * 4),
                format!("{:.0}", v.alloc_rate),
                format!("{:.0}", v.free_rate),
                latency_cell(r, "alloc"),
                latency_cell(r, "free"),
            ]
        })
        .collect()
}

/// A cache's `p50/p99` of the latency columns starting with `prefix`.
fn latency_cell(r: &CacheRow, prefix: &str) -> String {
    r.latency.as_ref().map_or("-".into(), |l| l.cell(prefix))
}

/// The pools table's cells.
pub fn pool_cells(pools: &[PoolRow]) -> Vec<Vec<String>> {
    pools
        .iter()
        .map(|p| {
            // poolinfo: min_nr curr_nr outstanding alloc_backend alloc_reserve
            // waits wakeups failures free_reserve free_backend
            let n = |i: usize| p.numbers.get(i).map_or("?".into(), u64::to_string);
            vec![
                p.name.clone(),
                n(0),
                n(1),
                n(2),
                n(3),
                n(4),
                n(5),
                n(7),
                p.backend.clone(),
            ]
        })
        .collect()
}

/// The summary lines above the tables, as slabtop prints them.
pub fn summary(views: &[CacheView], pools: &[PoolRow]) -> Vec<String> {
    let sum = |f: fn(&CacheRow) -> u64| views.iter().map(|v| f(&v.row)).sum::<u64>();
    let (active, total) = (sum(|r| r.active_objs), sum(|r| r.num_objs));
    let (aslabs, slabs) = (sum(|r| r.active_slabs), sum(|r| r.num_slabs));
    let used = views.iter().filter(|v| v.row.active_objs > 0).count() as u64;
    vec![
        format!(
            " Active / Total Objects (% used)    : {active} / {total} ({:.1}%)",
            percent(active, total)
        ),
        format!(
            " Active / Total Slabs (% used)      : {aslabs} / {slabs} ({:.1}%)",
            percent(aslabs, slabs)
        ),
        format!(
            " Active / Total Caches (% used)     : {used} / {} ({:.1}%)",
            views.len(),
            percent(used, views.len() as u64)
        ),
        format!(
            " Memory held / Pools                : {}K / {}",
            sum(|r| r.pages) * 4,
            pools.len()
        ),
    ]
}

/// Lays out a table as text: columns as wide as their widest cell, the
/// first left-aligned, the rest right-aligned.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        parts.join(" ").trim_end().to_string()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n") + "\n"
}

/// The whole `--once` output.
pub fn render_once(prev: Option<&Sample>, cur: &Sample, key: SortKey) -> String {
    let v = views(prev, cur, key);
    let mut out = summary(&v, &cur.pools).join("\n") + "\n\n";
    out += &render_table(&CACHE_HEADER, &cache_cells(&v));
    out += "\n";
    out += &render_table(&POOL_HEADER, &pool_cells(&cur.pools));
    out
}

/// `rslabctl top`.
pub fn run(args: &TopArgs) -> Result<()> {
    let delay = Duration::try_from_secs_f64(args.delay).context("bad --delay")?;
    if args.once {
        let first = sample(&args.root)?;
        std::thread::sleep(delay);
        let second = sample(&args.root)?;
        print!("{}", render_once(Some(&first), &second, args.sort));
        return Ok(());
    }
    crate::tui::run(&args.root, args.sort, delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLABINFO: &str = "slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
kmalloc-8            100    512      8  512    1 : tunables    0    0    0 : slabdata      1      1      0
big                    3      8   4096    8    8 : tunables    0    0    0 : slabdata      1      1      0
";

    const POOLINFO: &str = "poolinfo - version: 1
# name              min_nr curr_nr outstanding alloc_backend alloc_reserve waits wakeups failures free_reserve free_backend backend
pool-cache-256         16      16           0             0             0     0       0        0            0            0 cache:kmalloc-256
";

    fn sample_at(at: Instant, allocs: u64) -> Sample {
        let mut caches = parse_slabinfo(SLABINFO).unwrap();
        caches[0].allocs = allocs;
        caches[0].pages = 1;
        caches[1].pages = 8;
        Sample {
            at,
            caches,
            pools: parse_poolinfo(POOLINFO).unwrap(),
        }
    }

    #[test]
    fn parses_slabinfo() {
        let rows = parse_slabinfo(SLABINFO).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].name, "big");
        assert_eq!((rows[1].active_objs, rows[1].num_objs), (3, 8));
        assert_eq!((rows[1].objsize, rows[1].objperslab), (4096, 8));
        assert_eq!((rows[1].active_slabs, rows[1].num_slabs), (1, 1));
        assert!(parse_slabinfo("slabinfo - version: 2.0\n").is_err());
        assert!(parse_slabinfo("slabinfo - version: 2.1\nshort line\n").is_err());
    }

    #[test]
    fn parses_poolinfo_and_stats() {
        let pools = parse_poolinfo(POOLINFO).unwrap();
        assert_eq!(pools[0].numbers, vec![16, 16, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(pools[0].backend, "cache:kmalloc-256");
        let stats = parse_stats("name x\npages 4\nalloc_fastpath 10\n");
        assert_eq!(stats.get("pages"), Some(&4));
        assert_eq!(stats.get("name"), None);
    }

    #[test]
    fn rates_and_sorting() {
        let t0 = Instant::now();
        let a = sample_at(t0, 100);
        let b = sample_at(t0 + Duration::from_secs(2), 300);
        let v = views(Some(&a), &b, SortKey::Allocs);
        assert_eq!(v[0].row.name, "kmalloc-8");
        assert_eq!(v[0].alloc_rate, 100.0);
        assert_eq!(views(None, &b, SortKey::Allocs)[0].alloc_rate, 0.0);
        let by_size = views(Some(&a), &b, SortKey::Size);
        assert_eq!(by_size[0].row.name, "big");
        let by_objs = views(Some(&a), &b, SortKey::Objs);
        assert_eq!(by_objs[0].row.name, "kmalloc-8");
        let by_name = views(Some(&a), &b, SortKey::Name);
        assert_eq!(by_name[0].row.name, "big");
        assert_eq!(SortKey::Frees.next(), SortKey::Name);
    }

    #[test]
    fn renders_aligned_tables() {
        let rows = vec![
            vec!["a".to_string(), "1".to_string()],
            vec!["long".to_string(), "100".to_string()],
        ];
        assert_eq!(
            render_table(&["NAME", "N"], &rows),
            "NAME   N\na      1\nlong 100\n"
        );
    }

    #[test]
    fn renders_the_once_view() {
        let t0 = Instant::now();
        let out = render_once(
            Some(&sample_at(t0, 0)),
            &sample_at(t0 + Duration::from_secs(1), 50),
            SortKey::Objs,
        );
        assert!(out.contains("Active / Total Objects (% used)    : 103 / 520 (19.8%)"));
        let line = out.lines().find(|l| l.starts_with("kmalloc-8")).unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "kmalloc-8",
                "512",
                "100",
                "20%",
                "8",
                "1",
                "512",
                "4K",
                "50",
                "0",
                "-",
                "-"
            ]
        );
        assert!(out.contains("pool-cache-256"));
        assert!(out
            .lines()
            .any(|l| l.starts_with("POOL") && l.ends_with("BACKEND")));
    }
}
