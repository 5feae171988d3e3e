// SPDX-License-Identifier: GPL-2.0

//! `/sys/kernel/debug/rslab/bench`: rslab against SLUB, `kmalloc()` and the
//! kernel mempool, case by case, in the running kernel.
//!
//! Writing a command runs every case synchronously and keeps the results;
//! reading gives them as CSV. A command is `run` (the full measurement),
//! `smoke` (a quick one), and/or `key=value` settings: `ops` (operations
//! per measurement), `reps` (timed repetitions), `objects` (live objects
//! for the memory rows) and `case` (only one group: `cache`, `kmalloc`,
//! `mempool`, `memory` or `latency`). `release` frees the kernel caches
//! that the last run's memory rows hold for user space (a run does too).
//! Anything else is `EINVAL`; a second writer while one runs gets `EBUSY`.
//! See `Documentation/rslab-bench.rst`.

mod helpers;
mod loops;
mod memory;
mod sides;

use crate::bench::loops::{Run, Sample, Side, SideRun, BATCH};
use crate::bench::memory::Held;
use crate::bench::sides::{
    KernelCache, KernelKmalloc, KernelPool, RslabCache, RslabKmalloc, RslabPool,
};
use crate::cache::latency::{bucket_floor, COLUMN_NAMES};
use crate::cache::Cache;
use crate::debugfs::file::{Dir, File};
use crate::kmalloc::Kmalloc;
use core::fmt::Write;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::{Arc, Mutex};
use kernel::uaccess::UserSliceReader;

/// The object sizes of every case.
pub(crate) const SIZES: [usize; 3] = [64, 256, 1024];

/// The larger outstanding count.
const OUT_MAX: usize = 10_000;

/// The CSV column header.
pub(crate) const HEADER: &str = "case,pattern,size,side,ops,min,median,max,unit";

/// The settings of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    /// Operations (objects allocated and freed) per measurement.
    pub(crate) ops: u64,
    /// Timed repetitions of each measurement.
    pub(crate) reps: usize,
    /// Live objects for the memory rows.
    pub(crate) objects: usize,
    /// Only this group of cases, if set.
    pub(crate) only: Option<Group>,
}

impl Params {
    const FULL: Self = Self {
        ops: 100_000,
        reps: 5,
        objects: 100_000,
        only: None,
    };
    const SMOKE: Self = Self {
        ops: 2_000,
        reps: 2,
        objects: 5_000,
        only: None,
    };

    /// Parses a command (see the module documentation).
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let mut p = Self::FULL;
        let mut any = false;
        for word in text.split_whitespace() {
            any = true;
            match word.split_once('=') {
                None if word == "run" => {}
                None if word == "smoke" => {
                    p = Self {
                        only: p.only,
                        ..Self::SMOKE
                    }
                }
                Some(("ops", v)) => p.ops = number(v, 1, 10_000_000)?,
                Some(("reps", v)) => p.reps = number(v, 1, loops::MAX_REPS as u64)? as usize,
                Some(("objects", v)) => p.objects = number(v, 1, 1_000_000)? as usize,
                Some(("case", v)) => p.only = Some(Group::parse(v).ok_or(EINVAL)?),
                _ => return Err(EINVAL),
            }
        }
        if any {
            Ok(p)
        } else {
            Err(EINVAL)
        }
    }
}

/// A decimal number within `min..=max`.
fn number(text: &str, min: u64, max: u64) -> Result<u64> {
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(EINVAL),
    }
}

/// A group of cases: which pair of allocators it compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    /// An rslab cache against a SLUB cache.
    Cache,
    /// rslab's kmalloc against the kernel's.
    Kmalloc,
    /// rslab's mempool against the kernel's.
    Mempool,
    /// Pages held, objects per slab and loss.
    Memory,
    /// What rslab's latency histograms cost, off and on, and what they
    /// show.
    Latency,
}

impl Group {
    const ALL: [Self; 5] = [
        Self::Cache,
        Self::Kmalloc,
        Self::Mempool,
        Self::Memory,
        Self::Latency,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Cache => "cache",
            Self::Kmalloc => "kmalloc",
            Self::Mempool => "mempool",
            Self::Memory => "memory",
            Self::Latency => "latency",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == text)
    }
}

/// A timed pattern.
#[derive(Clone, Copy)]
enum Pattern {
    Pair,
    Out256,
    Out10000,
    Bulk16,
    Bulk128,
    Concurrent,
    Remote,
    /// A mempool's alloc+free pair served by its backend.
    PoolBackend,
    /// A mempool's alloc+free pair served by its reserve.
    PoolReserve,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Self::Pair => "pair",
            Self::Out256 => "out256",
            Self::Out10000 => "out10000",
            Self::Bulk16 => "bulk16",
            Self::Bulk128 => "bulk128",
            Self::Concurrent => "concurrent",
            Self::Remote => "remote",
            Self::PoolBackend => "backend",
            Self::PoolReserve => "reserve",
        }
    }
}

const CACHE_PATTERNS: [Pattern; 7] = [
    Pattern::Pair,
    Pattern::Out256,
    Pattern::Out10000,
    Pattern::Bulk16,
    Pattern::Bulk128,
    Pattern::Concurrent,
    Pattern::Remote,
];
const KMALLOC_PATTERNS: [Pattern; 5] = [
    Pattern::Pair,
    Pattern::Out256,
    Pattern::Out10000,
    Pattern::Concurrent,
    Pattern::Remote,
];

/// `pattern` of `ops` operations on `a`, as a side of a measurement; its
/// buffer holds [`OUT_MAX`] pointers.
fn runs<A: Side>(
    a: &A,
    pattern: Pattern,
    ops: u64,
) -> impl FnMut(&mut [*mut u8]) -> Result<Run> + '_ {
    move |buf| run_pattern(a, pattern, ops, buf)
}

/// Runs `pattern` once on `a`; `buf` holds [`OUT_MAX`] pointers.
fn run_pattern<A: Side>(a: &A, pattern: Pattern, ops: u64, buf: &mut [*mut u8]) -> Result<Run> {
    match pattern {
        Pattern::Pair | Pattern::PoolBackend | Pattern::PoolReserve => loops::pair(a, ops),
        Pattern::Out256 => loops::outstanding::<A, BATCH>(a, ops, buf),
        Pattern::Out10000 => loops::outstanding::<A, OUT_MAX>(a, ops, buf),
        Pattern::Bulk16 => loops::bulk::<A, 16>(a, ops),
        Pattern::Bulk128 => loops::bulk::<A, 128>(a, ops),
        Pattern::Concurrent => loops::concurrent(a, ops),
        Pattern::Remote => loops::remote(a, ops),
    }
}

/// The CSV text under construction.
struct Csv(KVec<u8>);

impl Write for Csv {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| core::fmt::Error)
    }
}

/// Writes picoseconds as nanoseconds with three decimals.
struct Ns(u64);

impl core::fmt::Display for Ns {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// One run of the benchmark, writing rows as it goes.
struct Runner<'a> {
    p: Params,
    /// rslab's kmalloc with SLUB's sheaf capacities (see [`sides`]).
    kmalloc: Arc<Kmalloc>,
    /// The module's own kmalloc, with rslab's default capacities.
    kmalloc_default: &'a Arc<Kmalloc>,
    csv: Csv,
    buf: VVec<*mut u8>,
    /// The memory rows' kernel caches, with their live objects.
    held: KVec<Held<KernelCache>>,
}

impl Runner<'_> {
    fn row(&mut self, case: &str, pattern: &str, size: usize, side: &str) -> Result {
        write!(self.csv, "{case},{pattern},{size},{side},").map_err(|_| ENOMEM)
    }

    fn time_row(
        &mut self,
        case: &str,
        pattern: Pattern,
        size: usize,
        side: &str,
        s: Sample,
    ) -> Result {
        self.row(case, pattern.name(), size, side)?;
        writeln!(
            self.csv,
            "{},{},{},{},ns/op",
            s.ops,
            Ns(s.min_ps),
            Ns(s.median_ps),
            Ns(s.max_ps)
        )
        .map_err(|_| ENOMEM)
    }

    fn value_row(
        &mut self,
        what: &str,
        size: usize,
        side: &str,
        value: usize,
        unit: &str,
    ) -> Result {
        self.row("memory", what, size, side)?;
        let n = self.p.objects;
        writeln!(self.csv, "{n},{value},{value},{value},{unit}").map_err(|_| ENOMEM)
    }

    /// Measures `pattern` on each of `sides` (named), interleaved (see
    /// [`loops::measure`]), and writes a row for each. Returns the
    /// operations measured per side, warm-up included (0 if none: one
    /// online CPU and a remote pattern).
    fn compare<const N: usize>(
        &mut self,
        g: Group,
        pattern: Pattern,
        size: usize,
        sides: [(&str, SideRun<'_>); N],
    ) -> Result<u64> {
        let names = sides.each_ref().map(|(name, _)| *name);
        let runs = sides.map(|(_, run)| run);
        match loops::measure(self.p.reps, &mut self.buf[..], runs) {
            Ok(samples) => {
                let ops = samples[0].ops * (self.p.reps.clamp(1, loops::MAX_REPS) as u64 + 1);
                for (name, s) in names.into_iter().zip(samples) {
                    self.time_row(g.name(), pattern, size, name, s)?;
                }
                Ok(ops)
            }
            // One online CPU: no remote free to measure.
            Err(e) if e == ENODEV => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn name(g: Group, pattern: &str, size: usize) -> Result<CString> {
        CString::try_from_fmt(fmt!("rslab-bench-{}-{}-{}", g.name(), pattern, size))
    }

    /// The cache group: an rslab cache with SLUB's sheaf capacity, a SLUB
    /// cache, and an rslab cache with its own default capacity.
    fn cache_cases(&mut self) -> Result {
        let (g, ops) = (Group::Cache, self.p.ops);
        for pattern in CACHE_PATTERNS {
            for size in SIZES {
                let name = Self::name(g, pattern.name(), size)?;
                let rslab = RslabCache::new(&name, size)?;
                let kernel = KernelCache::new(&name, size)?;
                let default = RslabCache::with_default_capacity(&name, size)?;
                let locks = |c: &RslabCache| c.0.stats().node_locks;
                let before = [locks(&rslab), locks(&default)];
                let measured = self.compare(
                    g,
                    pattern,
                    size,
                    [
                        ("rslab", &mut runs(&rslab, pattern, ops)),
                        ("kernel", &mut runs(&kernel, pattern, ops)),
                        ("rslab_default", &mut runs(&default, pattern, ops)),
                    ],
                )?;
                let after = [locks(&rslab), locks(&default)];
                self.node_locks(g, pattern, size, before, after, measured)?;
            }
        }
        Ok(())
    }

    /// A `# node_locks,<case>,<pattern>,<size>,<side>,<per op>` line for
    /// each rslab side: how often it took a node's lock per operation,
    /// from `before` and `after` a measurement of `ops` operations a side.
    fn node_locks(
        &mut self,
        g: Group,
        pattern: Pattern,
        size: usize,
        before: [u64; 2],
        after: [u64; 2],
        ops: u64,
    ) -> Result {
        if ops == 0 {
            return Ok(());
        }
        for (side, (b, a)) in ["rslab", "rslab_default"]
            .into_iter()
            .zip(before.into_iter().zip(after))
        {
            // Per operation, with four decimals.
            let per_op = a.wrapping_sub(b).saturating_mul(10_000) / ops;
            writeln!(
                self.csv,
                "# node_locks,{},{},{size},{side},{}.{:04}",
                g.name(),
                pattern.name(),
                per_op / 10_000,
                per_op % 10_000
            )
            .map_err(|_| ENOMEM)?;
        }
        Ok(())
    }

    /// The kmalloc group: rslab's kmalloc with SLUB's sheaf capacities,
    /// the kernel's, and the module's own (rslab's defaults).
    fn kmalloc_cases(&mut self) -> Result {
        let (g, ops) = (Group::Kmalloc, self.p.ops);
        for pattern in KMALLOC_PATTERNS {
            for size in SIZES {
                let rslab = RslabKmalloc(self.kmalloc.clone(), size);
                let default = RslabKmalloc(self.kmalloc_default.clone(), size);
                let locks = |k: &RslabKmalloc| k.0.node_locks();
                let before = [locks(&rslab), locks(&default)];
                let measured = self.compare(
                    g,
                    pattern,
                    size,
                    [
                        ("rslab", &mut runs(&rslab, pattern, ops)),
                        ("kernel", &mut runs(&KernelKmalloc(size), pattern, ops)),
                        ("rslab_default", &mut runs(&default, pattern, ops)),
                    ],
                )?;
                let after = [locks(&rslab), locks(&default)];
                self.node_locks(g, pattern, size, before, after, measured)?;
            }
        }
        Ok(())
    }

    /// The mempool group: each pool's backend path, then its reserve path.
    fn mempool_cases(&mut self) -> Result {
        let (g, ops) = (Group::Mempool, self.p.ops);
        for size in SIZES {
            for p in [Pattern::PoolBackend, Pattern::PoolReserve] {
                let name = Self::name(g, p.name(), size)?;
                let (rslab, kernel) = match p {
                    Pattern::PoolReserve => (
                        RslabPool::reserve(&name)?,
                        KernelPool::reserve(&name, size)?,
                    ),
                    _ => (
                        RslabPool::backend(&name, size)?,
                        KernelPool::backend(&name, size)?,
                    ),
                };
                self.compare(
                    g,
                    p,
                    size,
                    [
                        ("rslab", &mut runs(&rslab, p, ops)),
                        ("kernel", &mut runs(&kernel, p, ops)),
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// The latency group: the pair on one rslab cache (SLUB's capacity)
    /// with no cache's histograms on (`off`), with another cache's on
    /// (`key_on`: the static key patched, so this cache's flag is tested),
    /// and with its own on (`on`). Each is a
    /// `# latency_cost,<size>,<side>,<ops>,<min>,<median>,<max>` line (ns
    /// per pair); then `# latency_hist,<size>,<column>,<ns>,<count>` lines
    /// give every non-empty bucket that the `on` runs filled. (`off` is
    /// what it says only while no other cache has its histograms on.)
    fn latency_cases(&mut self) -> Result {
        let ops = self.p.ops;
        for size in SIZES {
            let cache = RslabCache::new(&Self::name(Group::Latency, "pair", size)?, size)?;
            let other = RslabCache::new(&Self::name(Group::Latency, "other", size)?, size)?;
            // Each switch patches the kernel text: outside the timed loop.
            let with_on = |on: &RslabCache, buf: &mut [*mut u8]| {
                on.0.latency().set(true);
                let run = run_pattern(&cache, Pattern::Pair, ops, buf);
                on.0.latency().set(false);
                run
            };
            let samples = loops::measure(
                self.p.reps,
                &mut self.buf[..],
                [
                    &mut runs(&cache, Pattern::Pair, ops),
                    &mut |buf| with_on(&other, buf),
                    &mut |buf| with_on(&cache, buf),
                ],
            )?;
            for (side, s) in ["off", "key_on", "on"].into_iter().zip(samples) {
                writeln!(
                    self.csv,
                    "# latency_cost,{size},{side},{},{},{},{}",
                    s.ops,
                    Ns(s.min_ps),
                    Ns(s.median_ps),
                    Ns(s.max_ps)
                )
                .map_err(|_| ENOMEM)?;
            }
            let h = cache.0.latency().snapshot();
            for (name, column) in COLUMN_NAMES.iter().zip(&h.0) {
                for (i, n) in column.iter().enumerate().filter(|(_, n)| **n != 0) {
                    let ns = bucket_floor(i);
                    writeln!(self.csv, "# latency_hist,{size},{name},{ns},{n}")
                        .map_err(|_| ENOMEM)?;
                }
            }
        }
        Ok(())
    }

    fn run(&mut self) -> Result {
        let cpus = helpers::online_cpus();
        let p = self.p;
        writeln!(
            self.csv,
            "# rslab-bench v2 ops={} reps={} objects={} cpus={cpus}",
            p.ops, p.reps, p.objects
        )
        .map_err(|_| ENOMEM)?;
        for size in SIZES {
            let rslab_default = Cache::sheaf_capacity_for(size);
            let slub = sides::slub_sheaf_capacity(size);
            writeln!(
                self.csv,
                "# sheaf_capacity,{size},rslab={slub},kernel={slub},rslab_default={rslab_default}"
            )
            .map_err(|_| ENOMEM)?;
        }
        writeln!(self.csv, "{HEADER}").map_err(|_| ENOMEM)?;
        let wants = |g: Group| p.only.is_none_or(|only| only == g);
        if wants(Group::Cache) {
            self.cache_cases()?;
        }
        if wants(Group::Kmalloc) {
            self.kmalloc_cases()?;
        }
        if wants(Group::Mempool) {
            self.mempool_cases()?;
        }
        if wants(Group::Memory) {
            for size in SIZES {
                self.memory_rows(size)?;
            }
        }
        if wants(Group::Latency) {
            self.latency_cases()?;
        }
        Ok(())
    }
}

/// The debugfs file's state: the allocator to measure and the last results.
#[pin_data]
pub(crate) struct Bench {
    kmalloc: Arc<Kmalloc>,
    #[pin]
    results: Mutex<KVec<u8>>,
    /// The last run's kernel caches for the memory rows, until `release`.
    #[pin]
    held: Mutex<KVec<Held<KernelCache>>>,
    #[pin]
    running: Mutex<()>,
}

impl Bench {
    /// Creates `bench` in `root`, measuring the module's `kmalloc`.
    pub(crate) fn file(root: &Dir, kmalloc: Arc<Kmalloc>) -> Result<File<Arc<Bench>>> {
        let bench = Arc::pin_init(
            pin_init!(Self {
                kmalloc,
                results <- kernel::new_mutex!(KVec::new()),
                held <- kernel::new_mutex!(KVec::new()),
                running <- kernel::new_mutex!(()),
            }),
            GFP_KERNEL,
        )?;
        let show = &|b: &Arc<Bench>, f: &mut kernel::fmt::Formatter<'_>| b.show(f);
        let store = &|b: &Arc<Bench>, r: &mut UserSliceReader| b.store(r);
        root.read_write_callback_file(c"bench", bench, show, store)
    }

    fn show(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        let results = self.results.lock();
        match core::str::from_utf8(&results) {
            Ok(text) if !text.is_empty() => f.write_str(text),
            _ => writeln!(f, "# rslab-bench v2: no run yet\n{HEADER}"),
        }
    }

    fn store(&self, reader: &mut UserSliceReader) -> Result {
        let mut buf = [0u8; 128];
        let text = crate::debugfs::file::read_text(reader, &mut buf)?;
        let _only_one = self.running.try_lock().ok_or(EBUSY)?;
        // The last run's kernel caches go first: before a run, so they
        // take no memory from it.
        drop(core::mem::take(&mut *self.held.lock()));
        if text.trim() == "release" {
            return Ok(());
        }
        let p = Params::parse(text)?;
        let mut out = None;
        loops::run_bound(|| {
            let mut runner = Runner {
                p,
                kmalloc: sides::rslab_kmalloc()?,
                kmalloc_default: &self.kmalloc,
                csv: Csv(KVec::new()),
                buf: VVec::from_elem(core::ptr::null_mut(), OUT_MAX, GFP_KERNEL)?,
                held: KVec::new(),
            };
            runner.run()?;
            out = Some((runner.csv.0, runner.held));
            Ok(())
        })?;
        let (csv, held) = out.ok_or(EINVAL)?;
        *self.results.lock() = csv;
        *self.held.lock() = held;
        Ok(())
    }
}

impl Runner<'_> {
    /// rslab's memory rows of one size: pages held with `objects` live
    /// objects, objects per slab, and the bytes each slab loses. The
    /// kernel's cache is held with as many live objects, and named in a
    /// `# held,<cache>,<size>,<objects>` line, for user space to read
    /// SLUB's counters and add the kernel's rows.
    fn memory_rows(&mut self, size: usize) -> Result {
        let name = Self::name(Group::Memory, "held", size)?;
        let n = self.p.objects;
        let rslab = crate::bench::memory::rslab(&name, size, n)?;
        self.value_row("pages_held", size, "rslab", rslab.pages, "pages")?;
        let with_meta = rslab.pages_with_meta;
        self.value_row("pages_with_meta", size, "rslab", with_meta, "pages")?;
        self.value_row(
            "objs_per_slab",
            size,
            "rslab",
            rslab.objs_per_slab,
            "objects",
        )?;
        self.value_row("loss_bytes", size, "rslab", rslab.loss_bytes, "bytes")?;
        self.held
            .push(crate::bench::memory::kernel(&name, size, n)?, GFP_KERNEL)?;
        let name = name.to_str().map_err(|_| EINVAL)?;
        writeln!(self.csv, "# held,{name},{size},{n}").map_err(|_| ENOMEM)
    }
}
