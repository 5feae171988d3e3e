// SPDX-License-Identifier: GPL-2.0

//! `rslabctl fuzz`: seeded random ioctls with random, boundary and hostile
//! arguments, then a health check.
//!
//! Each iteration sends one of: a real command with a plausible struct
//! whose fields are drawn from live and stale handles, boundary numbers,
//! bad names and bad user pointers; a real command number with the wrong
//! size or direction; an unknown number of our type; or a command of
//! another type. The errno must be one the ABI allows for that kind of
//! call (anything else is a violation). The fuzzer keeps a model of what
//! the file owns, and at the end checks it against the module: every live
//! object readable, every freed one gone, each cache's `active_objs` equal
//! to its live objects; then, after the close, nothing owned by any file.
//!
//! With `--threads N`, N threads send calls on the one file at once (each
//! with its own seed, `seed + i`, and its own `--iterations`), so calls race
//! on its handle table: the errno of every call is still checked, and the
//! release after the close; the model check is not (each thread's model
//! misses what the others did to its handles).
//!
//! The kernel only ever writes through user pointers within the sizes it
//! checked (an object, a bulk array, a struct), so pointers into this
//! process always point into a buffer larger than any of those, and the
//! argument struct is always of the command's own type.

use crate::device::{Device, MAX_IOC_SIZE};
use crate::top::{parse_poolinfo, parse_slabinfo, parse_stats};
use crate::uapi::{self, Bulk, CacheCreate, HandleArg, ObjAlloc, ObjIo, PoolCreate, PoolResize};
use crate::uapi::{CacheInfo, Info, PoolInfo};
use anyhow::{Context, Result};
use clap::Args;
use nix::errno::Errno;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// `rslabctl fuzz` options.
#[derive(Args, Debug, Clone)]
pub struct FuzzArgs {
    /// How many ioctls.
    #[arg(long, default_value_t = 10_000)]
    pub iterations: u64,
    /// The random seed: the same seed sends the same calls.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Threads calling at once on the one file (see the module doc).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub threads: u64,
    /// rslab's debugfs directory, for the health check.
    #[arg(long, default_value = "/sys/kernel/debug/rslab")]
    pub root: PathBuf,
}

/// Where a user pointer points.
const BAD_POINTERS: [u64; 5] = [
    0,
    0x1000,                // below mmap_min_addr: never mapped
    0xffff_8880_0000_0000, // the kernel's direct map
    0x8000_0000_0000_0000, // non-canonical
    u64::MAX,
];

/// Ioctl types the VFS handles itself before the driver (`do_vfs_ioctl`:
/// FIOCLEX, FIFREEZE, FICLONE, FS_IOC_*, ...): never sent.
const VFS_TYPES: [u32; 6] = [0x00, 0x15, 0x54, 0x58, 0x66, 0x94];

/// The errnos the ABI allows a well-formed command to fail with.
const ALLOWED: [Errno; 7] = [
    Errno::ENOENT,
    Errno::EINVAL,
    Errno::EFAULT,
    Errno::EDQUOT,
    Errno::ENOMEM,
    Errno::EBUSY,
    Errno::EEXIST,
];

/// What the fuzzer believes the file owns.
#[derive(Default, Debug)]
struct Model {
    caches: BTreeSet<u64>,
    pools: BTreeMap<u64, Option<u64>>,
    objects: BTreeMap<u64, u64>,
    freed: BTreeSet<u64>,
    names: Vec<String>,
}

/// One call's kind, for the errno it may give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A real command.
    Command(usize),
    /// A real number with the wrong size or direction: EINVAL.
    Malformed,
    /// Unknown to the ABI: ENOTTY.
    Unknown,
}

/// The argument struct of a real command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arg {
    Info(Info),
    CacheCreate(CacheCreate),
    Handle(HandleArg),
    Alloc(ObjAlloc),
    Io(ObjIo),
    Bulk(Bulk),
    PoolCreate(PoolCreate),
    PoolResize(PoolResize),
    CacheInfo(CacheInfo),
    PoolInfo(PoolInfo),
}

impl Arg {
    /// The struct's address, for the ioctl.
    fn addr(&mut self) -> u64 {
        fn at<T>(v: &mut T) -> u64 {
            std::ptr::from_mut(v) as u64
        }
        match self {
            Arg::Info(v) => at(v),
            Arg::CacheCreate(v) => at(v),
            Arg::Handle(v) => at(v),
            Arg::Alloc(v) => at(v),
            Arg::Io(v) => at(v),
            Arg::Bulk(v) => at(v),
            Arg::PoolCreate(v) => at(v),
            Arg::PoolResize(v) => at(v),
            Arg::CacheInfo(v) => at(v),
            Arg::PoolInfo(v) => at(v),
        }
    }
}

struct Fuzzer {
    dev: Device,
    rng: ChaCha8Rng,
    model: Model,
    /// Larger than anything the kernel writes: user buffers point into it.
    buf: Vec<u8>,
    /// The argument of the last real command.
    arg: Arg,
    /// What malformed and unknown commands point at (the kernel refuses
    /// them before it reads anything).
    junk: Vec<u64>,
    calls: u64,
    violations: u64,
    errnos: BTreeMap<String, u64>,
}

impl Fuzzer {
    fn new(dev: Device, seed: u64) -> Self {
        Self {
            dev,
            rng: ChaCha8Rng::seed_from_u64(seed),
            model: Model::default(),
            buf: vec![0u8; 2 << 20],
            arg: Arg::Info(Info::default()),
            // Larger than any size a command number can encode, so that
            // even a command the kernel wrongly obeyed stays inside it.
            junk: vec![0u64; MAX_IOC_SIZE / 8 + 1],
            calls: 0,
            violations: 0,
            errnos: BTreeMap::new(),
        }
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.rng.random_range(0..from.len())]
    }

    /// A handle: live, stale, or nonsense.
    fn handle(&mut self) -> u64 {
        let live: Vec<u64> = self
            .model
            .caches
            .iter()
            .chain(self.model.pools.keys())
            .chain(self.model.objects.keys())
            .copied()
            .collect();
        match self.rng.random_range(0..10) {
            0..6 if !live.is_empty() => self.pick(&live),
            6 if !self.model.freed.is_empty() => {
                let freed: Vec<u64> = self.model.freed.iter().copied().collect();
                self.pick(&freed)
            }
            7 => 0,
            8 => u64::MAX,
            _ => self.rng.random_range(1..10_000),
        }
    }

    /// A size or count: boundary values, or small random ones.
    fn number(&mut self) -> u32 {
        let max = uapi::MAX_OBJECT_SIZE;
        match self.rng.random_range(0..14) {
            0 => 0,
            1 => 1,
            2 => 4096,
            3 => 8192,
            4 => 8193,
            5 => max,
            6 => max + 1,
            7 => u32::MAX,
            8 => uapi::BULK_MAX + 1,
            _ => self.rng.random_range(1..3000),
        }
    }

    /// A pool's `min_nr`: the range's edges and beyond (rarely: a pool of
    /// the largest size fills its whole reserve), or small random ones.
    fn min_nr(&mut self) -> u32 {
        let max = uapi::MAX_POOL_MIN_NR;
        match self.rng.random_range(0..40) {
            0 => 0,
            1 => max,
            2 => max + 1,
            3 => 1_000_000,
            4 => u32::MAX,
            _ => self.rng.random_range(1..128),
        }
    }

    /// A name: new, taken, reserved, or malformed.
    fn name(&mut self) -> [u8; uapi::NAME_LEN] {
        let name = match self.rng.random_range(0..10) {
            0 if !self.model.names.is_empty() => {
                let i = self.rng.random_range(0..self.model.names.len());
                self.model.names[i].clone()
            }
            1 => String::new(),
            2 => "fuzz/../slash".into(),
            3 => "has space".into(),
            4 => "slabinfo".into(),
            5 => "x".repeat(uapi::NAME_LEN),
            _ => format!(
                "fuzz-{}-{}",
                self.rng.random_range(0..1_000_000u32),
                self.calls
            ),
        };
        let mut field = [0u8; uapi::NAME_LEN];
        let n = name.len().min(uapi::NAME_LEN);
        field[..n].copy_from_slice(&name.as_bytes()[..n]);
        field
    }

    /// A user pointer: into `buf` (mostly), or a bad one.
    fn pointer(&mut self) -> u64 {
        if self.rng.random_bool(0.8) {
            let off = self.rng.random_range(0..4096);
            self.buf.as_ptr() as u64 + off
        } else {
            self.pick(&BAD_POINTERS)
        }
    }

    fn version(&mut self) -> u32 {
        if self.rng.random_bool(0.95) {
            uapi::ABI_VERSION
        } else {
            self.pick(&[0, 2, u32::MAX])
        }
    }

    fn flags(&mut self, valid: u32) -> u32 {
        match self.rng.random_range(0..10) {
            0 => self.rng.random(),
            1 => valid,
            _ => valid & self.rng.random::<u32>(),
        }
    }

    /// A plausible argument for command `nr`.
    fn build(&mut self, nr: usize) -> Arg {
        let version = self.version();
        match nr {
            0 => Arg::Info(Info::default()),
            1 => Arg::CacheCreate(CacheCreate {
                version,
                flags: self.flags(uapi::CACHE_FLAGS),
                size: self.number(),
                align: self.pick(&[0, 1, 3, 8, 64, 4096, 8192, u32::MAX]),
                name: self.name(),
                id: 0,
            }),
            2 | 4 | 11 | 12 => Arg::Handle(HandleArg {
                version,
                flags: self.flags(0),
                id: self.handle(),
            }),
            3 => {
                let kmalloc = self.rng.random_bool(0.3);
                Arg::Alloc(ObjAlloc {
                    version,
                    flags: self.flags(uapi::ALLOC_NOWAIT),
                    source: if kmalloc { 0 } else { self.handle() },
                    size: if kmalloc || self.rng.random_bool(0.1) {
                        self.number()
                    } else {
                        0
                    },
                    reserved: self.flags(0),
                    id: 0,
                })
            }
            5 | 6 => Arg::Io(ObjIo {
                version,
                flags: self.flags(0),
                id: self.handle(),
                offset: self.number(),
                len: self.number(),
                buf: self.pointer(),
            }),
            7 | 8 => Arg::Bulk(Bulk {
                version,
                flags: self.flags(0),
                cache: self.handle(),
                count: self.number() % (uapi::BULK_MAX + 2),
                reserved: self.flags(0),
                ids: self.pointer(),
            }),
            9 => Arg::PoolCreate(PoolCreate {
                version,
                flags: self.flags(0),
                backend: self.pick(&[0, 1, 2, 3]),
                min_nr: self.min_nr(),
                cache: self.handle(),
                size: self.number(),
                order: self.pick(&[
                    0,
                    1,
                    3,
                    uapi::MAX_POOL_ORDER,
                    uapi::MAX_POOL_ORDER + 1,
                    u32::MAX,
                ]),
                name: self.name(),
                id: 0,
            }),
            10 => Arg::PoolResize(PoolResize {
                version,
                flags: self.flags(0),
                id: self.handle(),
                min_nr: self.min_nr(),
                reserved: self.flags(0),
            }),
            13 => Arg::CacheInfo(CacheInfo {
                version,
                id: self.handle(),
                ..CacheInfo::default()
            }),
            _ => Arg::PoolInfo(PoolInfo {
                version,
                id: self.handle(),
                ..PoolInfo::default()
            }),
        }
    }

    /// One random call: its kind, command number and argument.
    fn choose(&mut self) -> (Kind, u32, u64) {
        let arg = self.junk.as_ptr() as u64;
        match self.rng.random_range(0..100) {
            0..85 => {
                let nr = self.rng.random_range(0..uapi::COMMANDS.len());
                self.arg = self.build(nr);
                let addr = if self.rng.random_bool(0.97) {
                    self.arg.addr()
                } else {
                    self.pick(&BAD_POINTERS)
                };
                (Kind::Command(nr), uapi::COMMANDS[nr].1, addr)
            }
            85..92 => {
                let nr = self.rng.random_range(0..uapi::COMMANDS.len());
                let good = uapi::COMMANDS[nr].1;
                let mut cmd = good ^ (1 << self.rng.random_range(16..32));
                if cmd == good {
                    cmd ^= 1 << 16;
                }
                (Kind::Malformed, cmd, arg)
            }
            92..96 => {
                let nr = self.rng.random_range(uapi::COMMANDS.len() as u32..256);
                (
                    Kind::Unknown,
                    (self.rng.random::<u32>() & 0xffff_0000) | uapi::IOC_MAGIC << 8 | nr,
                    arg,
                )
            }
            _ => {
                let ty = loop {
                    let ty = self.rng.random_range(0..256);
                    if ty != uapi::IOC_MAGIC && !VFS_TYPES.contains(&ty) {
                        break ty;
                    }
                };
                (
                    Kind::Unknown,
                    (self.rng.random::<u32>() & 0xffff_00ff) | ty << 8,
                    arg,
                )
            }
        }
    }

    /// The handles a bulk call's array holds.
    fn bulk_ids(&self, b: &Bulk) -> Vec<u64> {
        let start = (b.ids - self.buf.as_ptr() as u64) as usize;
        self.buf[start..start + b.count as usize * 8]
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
            .collect()
    }

    fn forget(&mut self, id: u64) {
        self.model.caches.remove(&id);
        self.model.pools.remove(&id);
        self.model.objects.remove(&id);
        self.model.freed.insert(id);
    }

    /// Updates the model after a successful real command.
    fn learn(&mut self, nr: usize) {
        match (nr, self.arg) {
            (1, Arg::CacheCreate(c)) => {
                self.model.caches.insert(c.id);
                self.model.names.push(name_str(&c.name));
            }
            (2 | 4 | 11, Arg::Handle(h)) => self.forget(h.id),
            (3, Arg::Alloc(o)) => {
                self.model.objects.insert(o.id, o.source);
            }
            (7, Arg::Bulk(b)) => {
                for id in self.bulk_ids(&b) {
                    self.model.objects.insert(id, b.cache);
                }
            }
            (8, Arg::Bulk(b)) => self.bulk_ids(&b).into_iter().for_each(|id| self.forget(id)),
            (9, Arg::PoolCreate(p)) => {
                let cache = (p.backend == uapi::BACKEND_CACHE).then_some(p.cache);
                self.model.pools.insert(p.id, cache);
                self.model.names.push(name_str(&p.name));
            }
            _ => {}
        }
    }

    /// One iteration.
    fn step(&mut self) {
        let (kind, cmd, arg) = self.choose();
        self.calls += 1;
        // SAFETY: `arg` is the struct `build` made for this command (of its
        // size), the junk buffer (larger than any size a command encodes),
        // or one of `BAD_POINTERS`, none of which is memory of this process.
        let result = unsafe { self.dev.raw(cmd, arg as usize) };
        let label = match result {
            Ok(_) => "OK".to_string(),
            Err(e) => format!("{e:?}"),
        };
        *self.errnos.entry(label).or_default() += 1;
        let fine = match (kind, result) {
            (Kind::Command(nr), Ok(_)) => {
                self.learn(nr);
                true
            }
            (Kind::Command(_), Err(e)) => ALLOWED.contains(&e),
            (Kind::Malformed, r) => r == Err(Errno::EINVAL),
            (Kind::Unknown, r) => r == Err(Errno::ENOTTY),
        };
        if !fine {
            self.violations += 1;
            eprintln!(
                "fuzz: call {}: {kind:?} cmd {cmd:#010x} arg {arg:#x}: {result:?}",
                self.calls
            );
        }
    }

    /// Checks the model against the module while the file is open.
    fn check_model(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for &id in self.model.objects.keys() {
            if let Err(e) = self.dev.read(id, 0, 0) {
                problems.push(format!("live object {id}: {e:?}"));
            }
        }
        for &id in &self.model.freed {
            if self.dev.read(id, 0, 0) != Err(Errno::ENOENT) {
                problems.push(format!("freed handle {id} is still an object"));
            }
        }
        for &cache in &self.model.caches {
            if self.model.pools.values().any(|c| *c == Some(cache)) {
                continue; // Pool reserves hold objects too.
            }
            let live = self.model.objects.values().filter(|&&s| s == cache).count() as u64;
            match self.dev.cache_info(cache) {
                Ok(info) if info.active_objs == live => {}
                Ok(info) => problems.push(format!(
                    "cache {cache}: active_objs {} but {live} live objects",
                    info.active_objs
                )),
                Err(e) => problems.push(format!("cache {cache}: {e:?}")),
            }
        }
        problems
    }
}

fn name_str(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The health check after the file is closed: no file owns anything, and
/// no cache or pool the fuzzer made is left.
fn check_released(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let usage = parse_stats(&fs::read_to_string(root.join("device")).context("reading device")?);
    for key in ["files", "objects", "bytes"] {
        if usage.get(key) != Some(&0) {
            problems.push(format!("after close: device {key} is {:?}", usage.get(key)));
        }
    }
    let slabinfo = parse_slabinfo(&fs::read_to_string(root.join("slabinfo"))?)?;
    let pools = parse_poolinfo(&fs::read_to_string(root.join("poolinfo"))?)?;
    let left = slabinfo
        .iter()
        .map(|c| &c.name)
        .chain(pools.iter().map(|p| &p.name));
    for name in left.filter(|n| n.starts_with("fuzz-")) {
        problems.push(format!("after close: {name} still registered"));
    }
    Ok(problems)
}

/// `rslabctl fuzz`: returns whether it was clean.
pub fn run(path: &Path, args: &FuzzArgs, json: bool) -> Result<bool> {
    let dev = Device::open(path).with_context(|| format!("opening {path:?}"))?;
    let mut fuzzers = Vec::new();
    for i in 0..args.threads {
        fuzzers.push(Fuzzer::new(dev.try_clone()?, args.seed.wrapping_add(i)));
    }
    drop(dev);
    let mut fuzzers = std::thread::scope(|s| {
        let running: Vec<_> = fuzzers
            .into_iter()
            .map(|mut f| {
                s.spawn(move || {
                    for _ in 0..args.iterations {
                        f.step();
                    }
                    f
                })
            })
            .collect();
        running
            .into_iter()
            .map(|t| t.join())
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(|_| anyhow::anyhow!("a fuzz thread panicked"))?;
    let mut problems = match &mut fuzzers[..] {
        [only] => only.check_model(),
        _ => Vec::new(),
    };
    let (mut calls, mut violations) = (0, 0);
    let mut errnos = BTreeMap::<String, u64>::new();
    for f in &fuzzers {
        calls += f.calls;
        violations += f.violations;
        for (k, v) in &f.errnos {
            *errnos.entry(k.clone()).or_default() += v;
        }
    }
    // The file closes with its last descriptor.
    drop(fuzzers);
    problems.extend(check_released(&args.root)?);
    for p in &problems {
        eprintln!("fuzz: {p}");
    }
    if json {
        let v = serde_json::json!({"seed": args.seed, "threads": args.threads, "calls": calls,
            "violations": violations, "problems": problems, "results": errnos});
        println!("{v}");
    } else {
        let results: Vec<String> = errnos.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "fuzz: seed {}, {} threads, {calls} calls, {violations} violations, {} health problems; \
             results: {}",
            args.seed,
            args.threads,
            problems.len(),
            results.join(", ")
        );
    }
    Ok(violations == 0 && problems.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_end_at_nul() {
        assert_eq!(name_str(b"abc\0def"), "abc");
        assert_eq!(name_str(b"abc"), "abc");
    }

    #[test]
    fn never_sends_vfs_ioctls() {
        let dev = Device::open(Path::new("/dev/null")).expect("/dev/null");
        let mut f = Fuzzer::new(dev, 7);
        let mut kinds = BTreeSet::new();
        for _ in 0..5000 {
            let (kind, cmd, _) = f.choose();
            let ty = (cmd >> 8) & 0xff;
            assert!(!VFS_TYPES.contains(&ty), "cmd {cmd:#x}");
            if let Kind::Command(nr) = kind {
                assert_eq!(cmd, uapi::COMMANDS[nr].1);
            }
            if kind == Kind::Malformed {
                assert_eq!(ty, uapi::IOC_MAGIC);
                assert!(!uapi::COMMANDS.iter().any(|(_, c)| *c == cmd));
            }
            kinds.insert(format!("{kind:?}").chars().take(3).collect::<String>());
        }
        assert_eq!(kinds.len(), 3, "all three kinds of call are made");
    }

    #[test]
    fn the_same_seed_makes_the_same_calls() {
        let make = || Fuzzer::new(Device::open(Path::new("/dev/null")).expect("/dev/null"), 42);
        // The user buffers' addresses differ; what is sent relative to them
        // must not.
        let relative = |f: &Fuzzer| {
            let base = f.buf.as_ptr() as u64;
            let end = base + f.buf.len() as u64;
            let rel = |p: u64| {
                if (base..end).contains(&p) {
                    p - base
                } else {
                    p
                }
            };
            match f.arg {
                Arg::Io(io) => Arg::Io(ObjIo {
                    buf: rel(io.buf),
                    ..io
                }),
                Arg::Bulk(b) => Arg::Bulk(Bulk {
                    ids: rel(b.ids),
                    ..b
                }),
                other => other,
            }
        };
        let (mut a, mut b) = (make(), make());
        for _ in 0..1000 {
            let (ka, ca, _) = a.choose();
            let (kb, cb, _) = b.choose();
            assert_eq!((ka, ca), (kb, cb));
            assert_eq!(relative(&a), relative(&b));
        }
    }
}
