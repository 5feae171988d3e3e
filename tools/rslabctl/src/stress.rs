// SPDX-License-Identifier: GPL-2.0

//! `rslabctl stress`: threads that allocate, write, verify and free at
//! random across caches, pools and kmalloc, for a while, each on its own
//! open file.
//!
//! Every object is filled with a pattern derived from its handle and a
//! generation number, and checked before every rewrite and free and at
//! random; any difference is a mismatch. `ENOMEM` and `EDQUOT` are
//! refusals the allocator may give; any other error is a failure.

use crate::device::{Backend, Device, Res};
use crate::uapi;
use anyhow::{Context, Result};
use clap::Args;
use nix::errno::Errno;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// `rslabctl stress` options.
#[derive(Args, Debug, Clone)]
pub struct StressArgs {
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Stop each thread after this many operations, if that comes before
    /// `--seconds`: with one thread and a seed, the same calls every run.
    #[arg(long)]
    pub ops: Option<u64>,
    /// The random seed (thread `t` uses `seed + t`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The most objects a thread keeps live.
    #[arg(long, default_value_t = 256)]
    pub max_live: usize,
}

/// What the threads did, summed.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Tally {
    /// Operations issued.
    pub ops: u64,
    /// Objects allocated (single and bulk).
    pub allocs: u64,
    /// Objects freed.
    pub frees: u64,
    /// Bytes read back and compared.
    pub verified_bytes: u64,
    /// Objects whose bytes were not what was written.
    pub mismatches: u64,
    /// ENOMEM and EDQUOT refusals.
    pub refused: u64,
    /// Any other failure.
    pub errors: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.ops += o.ops;
        self.allocs += o.allocs;
        self.frees += o.frees;
        self.verified_bytes += o.verified_bytes;
        self.mismatches += o.mismatches;
        self.refused += o.refused;
        self.errors += o.errors;
    }

    /// Counts a failed operation.
    fn failed(&mut self, what: &str, e: Errno) {
        if matches!(e, Errno::ENOMEM | Errno::EDQUOT) {
            self.refused += 1;
        } else {
            if self.errors < 5 {
                eprintln!("stress: {what}: {e:?} ({})", e.desc());
            }
            self.errors += 1;
        }
    }
}

/// The pattern of an object: every byte depends on the handle, the
/// generation and the offset.
pub fn pattern(id: u64, generation: u32, len: usize) -> Vec<u8> {
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(generation) << 32 | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A live object: its handle, where it came from, its size and generation.
struct Live {
    id: u64,
    source: u64,
    size: usize,
    generation: u32,
}

/// Something to allocate from, and its object size.
struct Source {
    id: u64,
    size: usize,
    is_cache: bool,
}

/// One worker's state.
struct Worker {
    dev: Device,
    rng: ChaCha8Rng,
    sources: Vec<Source>,
    live: Vec<Live>,
    tally: Tally,
    max_live: usize,
}

/// Retries `make` while it is refused with `ENOMEM`, as it may be any
/// number of times under fault injection, up to a bound.
fn retry<T>(mut make: impl FnMut() -> Res<T>) -> Res<T> {
    for _ in 0..SETUP_TRIES {
        match make() {
            Err(Errno::ENOMEM) => continue,
            made => return made,
        }
    }
    Err(Errno::ENOMEM)
}

/// How often a setup step is retried after `ENOMEM`.
const SETUP_TRIES: usize = 1000;

impl Worker {
    /// Opens the device and makes this worker's caches and pools, retrying
    /// each step that is refused with `ENOMEM`.
    fn new(path: &Path, seed: u64, max_live: usize) -> Result<Self> {
        let dev = retry(|| {
            Device::open(path).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
        })
        .with_context(|| format!("opening {path:?}"))?;
        let tag = format!("stress-{}-{seed}", std::process::id());
        let mut sources = Vec::new();
        let debug = uapi::CACHE_POISON | uapi::CACHE_RED_ZONE | uapi::CACHE_CONSISTENCY_CHECKS;
        for (size, flags) in [
            (24, 0),
            (192, uapi::CACHE_HWCACHE_ALIGN),
            (1000, debug),
            (4096, 0),
        ] {
            let id = retry(|| dev.cache_create(&format!("{tag}-{size}"), size, 0, flags))?;
            sources.push(Source {
                id,
                size: size as usize,
                is_cache: true,
            });
        }
        let pools = [
            Backend::Cache(sources[1].id),
            Backend::Kmalloc(512),
            Backend::Pages(1),
        ];
        for (i, backend) in pools.into_iter().enumerate() {
            let id = retry(|| dev.pool_create(&format!("{tag}-p{i}"), backend, 8))?;
            let size = retry(|| dev.pool_info(id))?.element_size as usize;
            sources.push(Source {
                id,
                size,
                is_cache: false,
            });
        }
        Ok(Self {
            dev,
            rng: ChaCha8Rng::seed_from_u64(seed),
            sources,
            live: Vec::new(),
            tally: Tally::default(),
            max_live,
        })
    }

    /// Writes a new generation of the pattern into live object `i`.
    /// A refused write (`ENOMEM` for the kernel's bounce buffer) leaves the
    /// object as it was, so the generation only moves on success.
    fn fill(&mut self, i: usize) {
        let l = &mut self.live[i];
        let data = pattern(l.id, l.generation + 1, l.size);
        self.tally.ops += 1;
        match self.dev.write(l.id, 0, &data) {
            Ok(()) => l.generation += 1,
            Err(e) => self.tally.failed("write", e),
        }
    }

    /// Reads live object `i` back and compares it with its pattern.
    fn verify(&mut self, i: usize) {
        let l = &self.live[i];
        self.tally.ops += 1;
        match self.dev.read(l.id, 0, l.size) {
            Ok(data) => {
                self.tally.verified_bytes += data.len() as u64;
                if data != expected(l) {
                    eprintln!(
                        "stress: object {} ({} bytes) does not hold its pattern",
                        l.id, l.size
                    );
                    self.tally.mismatches += 1;
                }
            }
            Err(e) => self.tally.failed("read", e),
        }
    }

    /// Starts tracking a new object; generation 0 (zeroes) until its first
    /// write succeeds.
    fn track(&mut self, id: u64, source: u64, size: usize) {
        self.tally.allocs += 1;
        self.live.push(Live {
            id,
            source,
            size,
            generation: 0,
        });
        self.fill(self.live.len() - 1);
    }

    fn alloc(&mut self) {
        let pick = self.rng.random_range(0..=self.sources.len());
        let (source, size, req) = match self.sources.get(pick) {
            Some(s) => (s.id, s.size, 0),
            None => {
                let size = self.rng.random_range(1..=9000);
                (uapi::KMALLOC, size as usize, size)
            }
        };
        let flags = if self.rng.random_bool(0.2) {
            uapi::ALLOC_NOWAIT
        } else {
            0
        };
        self.tally.ops += 1;
        match self.dev.alloc(source, req, flags) {
            Ok(id) => self.track(id, source, size),
            Err(e) => self.tally.failed("alloc", e),
        }
    }

    fn bulk_alloc(&mut self) {
        let caches: Vec<(u64, usize)> = self
            .sources
            .iter()
            .filter(|s| s.is_cache)
            .map(|s| (s.id, s.size))
            .collect();
        let (cache, size) = caches[self.rng.random_range(0..caches.len())];
        let n = self.rng.random_range(1..=32);
        self.tally.ops += 1;
        match self.dev.bulk_alloc(cache, n) {
            Ok(ids) => ids.into_iter().for_each(|id| self.track(id, cache, size)),
            Err(e) => self.tally.failed("bulk-alloc", e),
        }
    }

    /// Verifies and frees live object `i`.
    fn free(&mut self, i: usize) {
        self.verify(i);
        let l = self.live.swap_remove(i);
        self.tally.ops += 1;
        match self.dev.free(l.id) {
            Ok(()) => self.tally.frees += 1,
            Err(e) => self.tally.failed("free", e),
        }
    }

    /// Verifies and bulk-frees the live objects of the source of object `i`.
    fn bulk_free(&mut self, i: usize) {
        let source = self.live[i].source;
        if !self.sources.iter().any(|s| s.id == source && s.is_cache) {
            return self.free(i);
        }
        let picked: Vec<usize> = (0..self.live.len())
            .filter(|&j| self.live[j].source == source)
            .collect();
        picked.iter().for_each(|&j| self.verify(j));
        let ids: Vec<u64> = picked.iter().map(|&j| self.live[j].id).collect();
        self.tally.ops += 1;
        match self.dev.bulk_free(source, &ids) {
            Ok(()) => {
                self.tally.frees += ids.len() as u64;
                self.live.retain(|l| l.source != source);
            }
            Err(e) => self.tally.failed("bulk-free", e),
        }
    }

    fn step(&mut self) {
        let full = self.live.len() >= self.max_live;
        let roll = self.rng.random_range(0..100);
        if self.live.is_empty() || (roll < 40 && !full) {
            return if roll % 5 == 0 {
                self.bulk_alloc()
            } else {
                self.alloc()
            };
        }
        let i = self.rng.random_range(0..self.live.len());
        match roll {
            0..70 => self.free(i),
            70..85 => self.verify(i),
            85..97 => {
                self.verify(i);
                self.fill(i);
            }
            _ => self.bulk_free(i),
        }
    }

    /// Runs until `deadline` or for `ops` operations, whichever comes
    /// first, then verifies and frees everything.
    fn run(mut self, deadline: Instant, ops: u64) -> Tally {
        while Instant::now() < deadline && self.tally.ops < ops {
            self.step();
        }
        while !self.live.is_empty() {
            self.free(self.live.len() - 1);
        }
        self.tally
    }
}

/// What a live object must hold: zeroes as made (generation 0, before any
/// write succeeded), else the pattern of its last written generation.
fn expected(l: &Live) -> Vec<u8> {
    if l.generation == 0 {
        vec![0; l.size]
    } else {
        pattern(l.id, l.generation, l.size)
    }
}

fn worker(path: &Path, seed: u64, args: &StressArgs, deadline: Instant) -> Res<Tally> {
    match Worker::new(path, seed, args.max_live) {
        Ok(w) => Ok(w.run(deadline, args.ops.unwrap_or(u64::MAX))),
        Err(e) => {
            eprintln!("stress: setup: {e:#}");
            Err(Errno::EIO)
        }
    }
}

/// `rslabctl stress`: returns whether it was clean.
pub fn run(path: &Path, args: &StressArgs, json: bool) -> Result<bool> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let deadline = Instant::now() + Duration::try_from_secs_f64(args.seconds)?;
    let start = Instant::now();
    let results: Vec<Res<Tally>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| s.spawn(move || worker(path, args.seed + t, args, deadline)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(Errno::EIO)))
            .collect()
    });
    let mut total = Tally::default();
    let mut failed_threads = 0;
    for r in &results {
        match r {
            Ok(t) => total.add(t),
            Err(_) => failed_threads += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if json {
        let v = serde_json::json!({"seed": args.seed, "threads": threads, "seconds": secs, "failed_threads": failed_threads, "tally": total});
        println!("{v}");
    } else {
        println!(
            "stress: seed {}, {threads} threads, {secs:.1} s: {} ops ({:.0}/s), {} allocs, {} frees, \
             {} bytes verified, {} mismatches, {} refused, {} errors, {failed_threads} failed threads",
            args.seed,
            total.ops,
            total.ops as f64 / secs,
            total.allocs,
            total.frees,
            total.verified_bytes,
            total.mismatches,
            total.refused,
            total.errors
        );
    }
    Ok(total.mismatches == 0
        && total.errors == 0
        && failed_threads == 0
        && total.allocs == total.frees)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_differ_by_handle_generation_and_offset() {
        let a = pattern(1, 1, 64);
        assert_eq!(a, pattern(1, 1, 64));
        assert_ne!(a, pattern(2, 1, 64));
        assert_ne!(a, pattern(1, 2, 64));
        assert_eq!(&pattern(1, 1, 128)[..64], &a[..]);
        // Not constant, so a shifted or truncated copy shows.
        assert!(a.windows(2).any(|w| w[0] != w[1]));
        assert!(!a.iter().all(|&b| b == 0));
    }

    #[test]
    fn unwritten_objects_must_hold_zeroes() {
        let mut l = Live {
            id: 5,
            source: 1,
            size: 16,
            generation: 0,
        };
        assert_eq!(expected(&l), vec![0; 16]);
        l.generation = 1;
        assert_eq!(expected(&l), pattern(5, 1, 16));
    }

    #[test]
    fn setup_retries_only_enomem() {
        let mut calls = 0;
        let r = retry(|| {
            calls += 1;
            if calls < 3 {
                Err(Errno::ENOMEM)
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r, Ok(3));
        let mut calls = 0;
        let r: Res<()> = retry(|| {
            calls += 1;
            Err(Errno::EINVAL)
        });
        assert_eq!((r, calls), (Err(Errno::EINVAL), 1));
        assert_eq!(
            retry(|| -> Res<()> { Err(Errno::ENOMEM) }),
            Err(Errno::ENOMEM)
        );
    }

    #[test]
    fn refusals_are_not_errors() {
        let mut t = Tally::default();
        t.failed("alloc", Errno::ENOMEM);
        t.failed("alloc", Errno::EDQUOT);
        assert_eq!((t.refused, t.errors), (2, 0));
        t.failed("free", Errno::ENOENT);
        assert_eq!(t.errors, 1);
    }
}
