// SPDX-License-Identifier: GPL-2.0

//! The lists of live caches and pools, and their debugfs files.
//!
//! Under `/sys/kernel/debug/rslab/`:
//!
//! * `slabinfo`: every registered cache in the exact `/proc/slabinfo`
//!   version 2.1 format;
//! * `<cache>/stats`: one `name value` line per number (layout, slabinfo
//!   numbers, event counters, fault settings);
//! * `<cache>/fail_next`, `<cache>/fail_percent`: fault injection (read the
//!   setting, write a number);
//! * `<cache>/shrink`: write anything to shrink the cache;
//! * `<cache>/latency`: the latency histograms (`crate::cache::latency`);
//!   write `1` or `0` to turn them on or off, `reset` to empty them;
//! * `poolinfo`: every registered pool, one line each;
//! * `pools/<pool>/stats`, `pools/<pool>/fail_next`,
//!   `pools/<pool>/fail_percent`: a pool's numbers, and its backend's fault
//!   injection.
//!
//! See `Documentation/rslab.rst` for the formats.

pub(crate) mod file;
pub(crate) mod names;
#[cfg(rslab_kunit)]
pub(crate) mod provoke;

use crate::cache::fault::FaultInject;
use crate::cache::flags::CacheFlags;
use crate::cache::stats::STAT_NAMES;
use crate::cache::{Cache, Ctor};
use crate::debugfs::file::{Dir, File};
use crate::debugfs::names::Names;
use crate::mempool::{Backend, Mempool};
use kernel::fmt;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::uaccess::UserSliceReader;

/// Names in the debugfs root that are not caches.
const RESERVED: [&CStr; 6] = [
    c"slabinfo",
    c"poolinfo",
    c"pools",
    c"device",
    c"reports",
    c"bench",
];

/// A registered cache, with its debugfs files.
struct Entry {
    // Files go before the directory, so they are removed first.
    _files: KVec<File<Arc<Cache>>>,
    _dir: Dir,
    cache: Arc<Cache>,
}

/// A registered pool, with its debugfs files.
struct PoolEntry {
    _files: KVec<File<Arc<Mempool>>>,
    _dir: Dir,
    pool: Arc<Mempool>,
}

/// The registry of caches and pools shown in debugfs.
#[pin_data]
pub struct Registry {
    // Fields drop in order: the entries (and their files) before the
    // directories that hold them.
    #[pin]
    pools: Names<PoolEntry>,
    #[pin]
    entries: Names<Entry>,
    pools_dir: Dir,
    root: Dir,
}

/// Keeps a new debugfs file in `files`.
pub(crate) fn push_file<T>(files: &mut KVec<File<T>>, file: Result<File<T>>) -> Result {
    files.push(file?, GFP_KERNEL)?;
    Ok(())
}

/// What has fault-injection knobs to show in debugfs.
trait HasFault {
    fn fault(&self) -> &FaultInject;
}

impl HasFault for Arc<Cache> {
    fn fault(&self) -> &FaultInject {
        Cache::fault(self)
    }
}

impl HasFault for Arc<Mempool> {
    fn fault(&self) -> &FaultInject {
        self.backend().fault()
    }
}

fn show_fail_next<T: HasFault>(t: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", t.fault().settings().0)
}

fn store_fail_next<T: HasFault>(t: &T, r: &mut UserSliceReader) -> Result {
    t.fault().fail_next(read_u32(r)?);
    Ok(())
}

fn show_fail_percent<T: HasFault>(t: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", t.fault().settings().1)
}

fn store_fail_percent<T: HasFault>(t: &T, r: &mut UserSliceReader) -> Result {
    match read_u32(r)? {
        p @ 0..=100 => {
            t.fault().fail_percent(p);
            Ok(())
        }
        _ => Err(EINVAL),
    }
}

/// Creates `fail_next` and `fail_percent` in `dir` for `data`'s knobs.
fn push_fault_files<T: HasFault + Clone + Send + Sync + 'static>(
    files: &mut KVec<File<T>>,
    dir: &Dir,
    data: &T,
) -> Result {
    let next = &show_fail_next::<T>;
    push_file(
        files,
        dir.read_write_callback_file(c"fail_next", data.clone(), next, &store_fail_next::<T>),
    )?;
    let percent = &show_fail_percent::<T>;
    push_file(
        files,
        dir.read_write_callback_file(
            c"fail_percent",
            data.clone(),
            percent,
            &store_fail_percent::<T>,
        ),
    )
}

fn show_latency(cache: &Arc<Cache>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let latency = cache.latency();
    latency.snapshot().write(latency.is_on(), f)
}

/// `1` turns a cache's latency histograms on, `0` off, `reset` empties
/// them; anything else is `EINVAL`.
fn store_latency(cache: &Arc<Cache>, r: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 16];
    match file::read_text(r, &mut buf)?.trim() {
        "1" => cache.latency().set(true),
        "0" => cache.latency().set(false),
        "reset" => {
            cache.latency().reset();
            true
        }
        _ => return Err(EINVAL),
    };
    Ok(())
}

/// Reads a decimal `u32` written to a debugfs file. (Not the kernel crate's
/// debugfs `Atomic<u32>` files: they set no `.owner`, see `debugfs/file.rs`.)
fn read_u32(reader: &mut UserSliceReader) -> Result<u32> {
    let mut buf = [0u8; 16];
    file::read_text(reader, &mut buf)?
        .trim()
        .parse()
        .map_err(|_| EINVAL)
}

impl Registry {
    /// An empty registry with its debugfs root, `rslab/`.
    pub fn new() -> Result<impl PinInit<Self, Error>> {
        let root = Dir::new(c"rslab")?;
        let pools_dir = root.subdir(c"pools")?;
        Ok(try_pin_init!(Self {
            pools_dir,
            root,
            entries <- Names::new(),
            pools <- Names::new(),
        }? Error))
    }

    /// The debugfs root directory.
    pub fn root(&self) -> &Dir {
        &self.root
    }

    /// How many caches and pools are registered.
    pub fn counts(&self) -> (usize, usize) {
        (self.entries.count(), self.pools.count())
    }

    /// Creates a cache (see [`Cache::new`]) and registers it, with its
    /// debugfs directory. `EEXIST` if a cache of that name is registered,
    /// or if the name is one of the root's own files; `ENAMETOOLONG` for a
    /// name of more than [`crate::debugfs::names::NAME_MAX`] bytes.
    pub fn create(
        &self,
        name: &CStr,
        size: usize,
        align: usize,
        flags: CacheFlags,
        ctor: Option<Ctor>,
    ) -> Result<Arc<Cache>> {
        if RESERVED.contains(&name) {
            return Err(EEXIST);
        }
        let claim = self.entries.claim(name)?;
        let cache = Cache::new(name, size, align, flags, ctor)?;
        let dir = self.root.subdir(name)?;
        let mut files = KVec::with_capacity(5, GFP_KERNEL)?;
        let c = || cache.clone();
        push_file(
            &mut files,
            dir.read_callback_file(c"stats", c(), &|c: &Arc<Cache>, f| write_stats(c, f)),
        )?;
        push_fault_files(&mut files, &dir, &cache)?;
        push_file(
            &mut files,
            dir.write_callback_file(c"shrink", c(), &|c: &Arc<Cache>, _r| {
                c.shrink();
                Ok(())
            }),
        )?;
        push_file(
            &mut files,
            dir.read_write_callback_file(c"latency", c(), &show_latency, &store_latency),
        )?;
        claim.fill(Entry {
            _files: files,
            _dir: dir,
            cache: cache.clone(),
        });
        Ok(cache)
    }

    /// Creates a pool (see [`Mempool::new`]) and registers it, with its
    /// debugfs directory `pools/<name>/`. `EEXIST` if the name is taken.
    /// The reserve is filled with `gfp` (see [`Mempool::new_gfp`]), without
    /// the registry's lock held.
    pub fn create_pool(
        &self,
        name: &CStr,
        min_nr: usize,
        backend: Backend,
        gfp: kernel::bindings::gfp_t,
    ) -> Result<Arc<Mempool>> {
        let claim = self.pools.claim(name)?;
        let pool = Mempool::new_gfp(name, min_nr, backend, gfp)?;
        let dir = self.pools_dir.subdir(name)?;
        let mut files = KVec::with_capacity(3, GFP_KERNEL)?;
        let p = || pool.clone();
        push_file(
            &mut files,
            dir.read_callback_file(c"stats", p(), &|p: &Arc<Mempool>, f| write_pool_stats(p, f)),
        )?;
        push_fault_files(&mut files, &dir, &pool)?;
        claim.fill(PoolEntry {
            _files: files,
            _dir: dir,
            pool: pool.clone(),
        });
        Ok(pool)
    }

    /// Unregisters `cache` (removing its debugfs directory, after the
    /// registry's lock is dropped) and destroys it (see [`Cache::destroy`];
    /// objects still allocated are reported).
    pub fn destroy(&self, cache: Arc<Cache>) {
        drop(
            self.entries
                .remove(cache.name(), |e| Arc::ptr_eq(&e.cache, &cache)),
        );
        Cache::destroy(cache);
    }

    /// Unregisters `pool` (removing `pools/<name>/`) and destroys it (see
    /// [`Mempool::destroy`]).
    pub fn destroy_pool(&self, pool: Arc<Mempool>) {
        drop(
            self.pools
                .remove(pool.name(), |e| Arc::ptr_eq(&e.pool, &pool)),
        );
        Mempool::destroy(pool);
    }

    /// Writes the pools summary table (`poolinfo`).
    pub fn write_poolinfo(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "poolinfo - version: 1")?;
        writeln!(
            f,
            "# name              min_nr curr_nr outstanding alloc_backend alloc_reserve \
             waits wakeups failures free_reserve free_backend backend"
        )?;
        self.pools.for_each(|e| {
            let s = e.pool.stats();
            write!(
                f,
                "{:<17} {:>7} {:>7} {:>11} {:>13} {:>13} {:>5} {:>7} {:>8} {:>12} {:>12} ",
                e.pool.name().to_str().unwrap_or("?"),
                s.min_nr,
                s.curr_nr,
                s.outstanding,
                s.alloc_backend,
                s.alloc_reserve,
                s.waits,
                s.wakeups,
                s.failures,
                s.free_reserve,
                s.free_backend
            )?;
            e.pool.describe_backend(f)?;
            writeln!(f)
        })
    }

    /// Writes every registered cache as `/proc/slabinfo` does.
    pub fn write_slabinfo(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "slabinfo - version: 2.1")?;
        writeln!(
            f,
            "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> \
             : tunables <limit> <batchcount> <sharedfactor> \
             : slabdata <active_slabs> <num_slabs> <sharedavail>"
        )?;
        self.entries.for_each(|e| {
            let s = e.cache.stats();
            writeln!(
                f,
                "{:<17} {:>6} {:>6} {:>6} {:>4} {:>4} : tunables {:>4} {:>4} {:>4} : slabdata {:>6} {:>6} {:>6}",
                e.cache.name().to_str().unwrap_or("?"),
                s.active_objs,
                s.num_objs,
                e.cache.layout().size,
                s.objperslab,
                s.pagesperslab,
                0,
                0,
                0,
                s.active_slabs,
                s.num_slabs,
                0
            )
        })
    }
}

/// Writes one cache's `stats` file: `name value` lines.
fn write_stats(cache: &Cache, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let l = cache.layout();
    let s = cache.stats();
    let (fail_next, fail_percent) = cache.fault().settings();
    let lines: [(&str, usize); 22] = [
        ("object_size", l.object_size),
        ("size", l.size),
        ("align", l.align),
        ("order", l.order as usize),
        ("min_order", l.min_order as usize),
        ("objects_per_slab", s.objperslab),
        ("flags", cache.flags().bits() as usize),
        ("min_partial", cache.min_partial()),
        ("active_objs", s.active_objs),
        ("num_objs", s.num_objs),
        ("active_slabs", s.active_slabs),
        ("num_slabs", s.num_slabs),
        ("partial_slabs", s.partial_slabs),
        ("empty_slabs", s.empty_slabs),
        ("pages", s.pages),
        ("cached_objs", s.cached_objs),
        ("depot_objs", s.depot_objs),
        ("quarantined_objs", s.quarantined_objs),
        ("fail_next", fail_next as usize),
        ("fail_percent", fail_percent as usize),
        ("object_footprint", cache.object_footprint()),
        ("fixed_footprint", cache.fixed_footprint()),
    ];
    writeln!(f, "name {}", cache.name().to_str().unwrap_or("?"))?;
    for (name, value) in lines {
        writeln!(f, "{name} {value}")?;
    }
    for (name, value) in STAT_NAMES.iter().zip(s.events.iter()) {
        writeln!(f, "{name} {value}")?;
    }
    Ok(())
}

/// Writes one pool's `stats` file: `name value` lines.
fn write_pool_stats(pool: &Mempool, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let s = pool.stats();
    writeln!(f, "name {}", pool.name().to_str().unwrap_or("?"))?;
    write!(f, "backend ")?;
    pool.describe_backend(f)?;
    writeln!(f)?;
    let lines: [(&str, u64); 11] = [
        ("min_nr", s.min_nr as u64),
        ("curr_nr", s.curr_nr as u64),
        ("outstanding", s.outstanding as u64),
        ("alloc_backend", s.alloc_backend),
        ("alloc_reserve", s.alloc_reserve),
        ("waits", s.waits),
        ("wakeups", s.wakeups),
        ("failures", s.failures),
        ("free_reserve", s.free_reserve),
        ("free_backend", s.free_backend),
        ("footprint", pool.footprint() as u64),
    ];
    for (name, value) in lines {
        writeln!(f, "{name} {value}")?;
    }
    Ok(())
}
