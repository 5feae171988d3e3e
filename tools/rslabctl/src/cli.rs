// SPDX-License-Identifier: GPL-2.0

//! The command line: clap definitions, and the parsing of the argument
//! kinds clap does not know (sources, backends, cache flags, errno names).

use crate::device::{Backend, DEFAULT_PATH};
use crate::uapi;
use clap::{Parser, Subcommand, ValueEnum};
use nix::errno::Errno;
use std::path::PathBuf;

/// Drive and watch the rslab kernel module.
///
/// Everything made through `/dev/rslab` belongs to the open file and is
/// released when it closes, so each command below runs on a fresh open of
/// the device; `batch` runs many commands on one.
#[derive(Parser, Debug)]
#[command(name = "rslabctl", version)]
pub struct Cli {
    /// The device node.
    #[arg(long, global = true, default_value = DEFAULT_PATH)]
    pub device: PathBuf,
    /// Print one JSON object per result instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Succeed only if the operation fails with this errno (e.g. ENOENT).
    #[arg(long, global = true, value_parser = parse_errno)]
    pub expect: Option<Errno>,
    /// Also succeed if the operation fails with this errno (e.g. ENOMEM,
    /// under fault injection).
    #[arg(long, global = true, value_parser = parse_errno, conflicts_with = "expect")]
    pub allow: Option<Errno>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A top-level command.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// One device operation.
    #[command(flatten)]
    Op(Op),
    /// Run device operations, one per line (`rslabctl` syntax without the
    /// program name; `#` starts a comment), on one open file.
    Batch {
        /// The script; standard input if absent.
        file: Option<PathBuf>,
    },
    /// A slabtop-like live view of rslab's caches and pools.
    Top(crate::top::TopArgs),
    /// Random alloc/free/write/verify from many threads.
    Stress(crate::stress::StressArgs),
    /// Seeded random ioctls with hostile arguments, then a health check.
    Fuzz(crate::fuzz::FuzzArgs),
    /// Print the ABI (sizes, offsets, command numbers) as the tool sees it
    /// (for make abi-check; hidden from --help).
    #[command(hide = true)]
    Abi,
}

/// One device operation and the errno it is expected to fail with, from
/// the command line or a batch line.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    /// The errno expected, if a failure is.
    pub expect: Option<Errno>,
    /// An errno accepted as well as success, if `expect` is `None`.
    pub allow: Option<Errno>,
    /// The operation.
    pub op: Op,
}

/// A batch line.
#[derive(Parser, Debug)]
#[command(name = "batch-line", no_binary_name = true)]
struct BatchLine {
    /// Succeed only if the operation fails with this errno.
    #[arg(long, global = true, value_parser = parse_errno)]
    expect: Option<Errno>,
    /// Also succeed if the operation fails with this errno.
    #[arg(long, global = true, value_parser = parse_errno, conflicts_with = "expect")]
    allow: Option<Errno>,
    /// The operation.
    #[command(subcommand)]
    op: Op,
}

/// A device operation.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The ABI version and the limits in force.
    Info,
    /// Create a cache; prints its handle.
    CacheCreate {
        /// Its name: [A-Za-z0-9_.-], up to 31 bytes.
        name: String,
        /// The object size in bytes.
        size: u32,
        /// The alignment (0: the default).
        #[arg(long, default_value_t = 0)]
        align: u32,
        /// Debug and layout flags.
        #[arg(long, value_delimiter = ',')]
        flags: Vec<CacheFlag>,
    },
    /// Destroy a cache that has no objects or pools left.
    CacheDestroy {
        /// The cache's handle.
        id: u64,
    },
    /// Allocate a zeroed object from a cache, a pool, or kmalloc.
    Alloc {
        /// A cache or pool handle, or `kmalloc`.
        #[arg(value_parser = parse_source)]
        source: u64,
        /// The size, for kmalloc.
        #[arg(long, default_value_t = 0)]
        size: u32,
        /// Fail rather than sleep (GFP_NOWAIT).
        #[arg(long)]
        nowait: bool,
    },
    /// Free an object (of a cache, a pool or kmalloc).
    Free {
        /// The object's handle.
        id: u64,
    },
    /// Write bytes into an object.
    Write {
        /// The object's handle.
        id: u64,
        /// The bytes: text, or hex digits with --hex.
        data: String,
        /// Where in the object.
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// DATA is hex.
        #[arg(long)]
        hex: bool,
    },
    /// Read bytes of an object (printed as hex, or text with --text).
    Read {
        /// The object's handle.
        id: u64,
        /// How many bytes.
        len: u32,
        /// Where in the object.
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// Print the bytes as text.
        #[arg(long)]
        text: bool,
    },
    /// Allocate objects of a cache in one call; prints their handles.
    BulkAlloc {
        /// The cache's handle.
        cache: u64,
        /// How many.
        count: u32,
    },
    /// Free objects of a cache in one call.
    BulkFree {
        /// The cache's handle.
        cache: u64,
        /// The objects' handles.
        #[arg(required = true)]
        ids: Vec<u64>,
    },
    /// Create a pool; prints its handle.
    PoolCreate {
        /// Its name.
        name: String,
        /// `cache:HANDLE`, `kmalloc:SIZE` or `pages:ORDER`.
        #[arg(value_parser = parse_backend)]
        backend: Backend,
        /// Elements kept in reserve.
        #[arg(long)]
        min_nr: u32,
    },
    /// Change a pool's reserve.
    PoolResize {
        /// The pool's handle.
        id: u64,
        /// The new reserve size.
        min_nr: u32,
    },
    /// Destroy a pool that has no elements out.
    PoolDestroy {
        /// The pool's handle.
        id: u64,
    },
    /// Shrink a cache; prints the slabs freed.
    Shrink {
        /// The cache's handle.
        id: u64,
    },
    /// A cache's numbers.
    CacheInfo {
        /// The cache's handle.
        id: u64,
    },
    /// A pool's numbers.
    PoolInfo {
        /// The pool's handle.
        id: u64,
    },
    /// Run a shell command while the device stays open (for scripts that
    /// look at debugfs between operations). In a batch, the rest of the
    /// line goes to `sh -c` as written. A test aid, hidden from --help.
    #[command(hide = true)]
    Sh {
        /// The command line, passed to `sh -c`.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

impl Op {
    /// The operation's subcommand name, as clap spells it (checked by the
    /// test `names_are_clap_names`).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Info => "info",
            Op::CacheCreate { .. } => "cache-create",
            Op::CacheDestroy { .. } => "cache-destroy",
            Op::Alloc { .. } => "alloc",
            Op::Free { .. } => "free",
            Op::Write { .. } => "write",
            Op::Read { .. } => "read",
            Op::BulkAlloc { .. } => "bulk-alloc",
            Op::BulkFree { .. } => "bulk-free",
            Op::PoolCreate { .. } => "pool-create",
            Op::PoolResize { .. } => "pool-resize",
            Op::PoolDestroy { .. } => "pool-destroy",
            Op::Shrink { .. } => "shrink",
            Op::CacheInfo { .. } => "cache-info",
            Op::PoolInfo { .. } => "pool-info",
            Op::Sh { .. } => "sh",
        }
    }
}

/// A cache flag.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheFlag {
    /// `SLAB_HWCACHE_ALIGN`.
    HwcacheAlign,
    /// `SLAB_POISON`.
    Poison,
    /// `SLAB_RED_ZONE`.
    RedZone,
    /// `SLAB_CONSISTENCY_CHECKS`.
    ConsistencyChecks,
}

impl CacheFlag {
    /// The ABI bit.
    pub fn bit(self) -> u32 {
        match self {
            CacheFlag::HwcacheAlign => uapi::CACHE_HWCACHE_ALIGN,
            CacheFlag::Poison => uapi::CACHE_POISON,
            CacheFlag::RedZone => uapi::CACHE_RED_ZONE,
            CacheFlag::ConsistencyChecks => uapi::CACHE_CONSISTENCY_CHECKS,
        }
    }
}

/// An errno by name (`ENOENT`), as `Errno`'s `Debug` spells it.
pub fn parse_errno(name: &str) -> Result<Errno, String> {
    (1..256)
        .map(Errno::from_raw)
        .find(|e| format!("{e:?}") == name)
        .ok_or_else(|| format!("unknown errno name {name:?}"))
}

/// A handle, or `kmalloc` (handle 0).
pub fn parse_source(s: &str) -> Result<u64, String> {
    match s {
        "kmalloc" => Ok(uapi::KMALLOC),
        _ => s
            .parse()
            .map_err(|_| format!("not a handle or `kmalloc`: {s:?}")),
    }
}

/// `cache:HANDLE`, `kmalloc:SIZE` or `pages:ORDER`.
pub fn parse_backend(s: &str) -> Result<Backend, String> {
    let bad = || format!("expected cache:HANDLE, kmalloc:SIZE or pages:ORDER, not {s:?}");
    let (kind, n) = s.split_once(':').ok_or_else(bad)?;
    match kind {
        "cache" => n.parse().map(Backend::Cache).map_err(|_| bad()),
        "kmalloc" => n.parse().map(Backend::Kmalloc).map_err(|_| bad()),
        "pages" => n.parse().map(Backend::Pages).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Parses one batch line; `None` for a blank or comment line.
pub fn parse_batch_line(text: &str) -> Option<Result<Line, String>> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    // A shell command is passed on as written, quotes and `$` included.
    if let Some(command) = text.strip_prefix("sh ") {
        return Some(Ok(Line {
            expect: None,
            allow: None,
            op: Op::Sh {
                command: vec![command.trim().to_string()],
            },
        }));
    }
    let Some(words) = shlex::split(text) else {
        return Some(Err(format!("unbalanced quotes in {text:?}")));
    };
    Some(
        BatchLine::try_parse_from(words)
            .map(|b| Line {
                expect: b.expect,
                allow: b.allow,
                op: b.op,
            })
            .map_err(|e| e.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("rslabctl").chain(args.iter().copied()))
    }

    #[test]
    fn definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_an_operation_with_options() {
        let c = cli(&[
            "--json",
            "cache-create",
            "foo",
            "128",
            "--flags",
            "poison,red-zone",
        ])
        .unwrap();
        assert!(c.json);
        let Command::Op(op) = c.command else {
            panic!("not an operation");
        };
        assert_eq!(
            op,
            Op::CacheCreate {
                name: "foo".into(),
                size: 128,
                align: 0,
                flags: vec![CacheFlag::Poison, CacheFlag::RedZone],
            }
        );
    }

    #[test]
    fn parses_expect_and_sources() {
        let c = cli(&["alloc", "kmalloc", "--size", "100", "--expect", "EDQUOT"]).unwrap();
        assert_eq!(c.expect, Some(Errno::EDQUOT));
        let allowing = cli(&["alloc", "1", "--allow", "ENOMEM"]).unwrap();
        assert_eq!(
            (allowing.expect, allowing.allow),
            (None, Some(Errno::ENOMEM))
        );
        assert!(cli(&["alloc", "1", "--allow", "ENOMEM", "--expect", "ENOMEM"]).is_err());
        let Command::Op(op) = c.command else {
            panic!("not an operation");
        };
        assert_eq!(
            op,
            Op::Alloc {
                source: 0,
                size: 100,
                nowait: false
            }
        );
        assert!(cli(&["alloc", "kmallok"]).is_err());
        assert!(cli(&["free", "1", "--expect", "ENOTANERRNO"]).is_err());
    }

    #[test]
    fn parses_backends() {
        assert_eq!(parse_backend("cache:3"), Ok(Backend::Cache(3)));
        assert_eq!(parse_backend("kmalloc:1000"), Ok(Backend::Kmalloc(1000)));
        assert_eq!(parse_backend("pages:2"), Ok(Backend::Pages(2)));
        assert!(parse_backend("pages").is_err());
        assert!(parse_backend("slab:1").is_err());
        assert!(parse_backend("cache:x").is_err());
    }

    #[test]
    fn parses_batch_lines() {
        assert!(parse_batch_line("   ").is_none());
        assert!(parse_batch_line("# a comment").is_none());
        let line = parse_batch_line("write 2 'hello world' --offset 3")
            .unwrap()
            .unwrap();
        assert_eq!(
            line.op,
            Op::Write {
                id: 2,
                data: "hello world".into(),
                offset: 3,
                hex: false
            }
        );
        let sh = parse_batch_line("sh grep -q 'in use' \"$F\" | wc -l").unwrap();
        let want = vec!["grep -q 'in use' \"$F\" | wc -l".to_string()];
        assert_eq!(sh.unwrap().op, Op::Sh { command: want });
        assert!(parse_batch_line("frobnicate 1").unwrap().is_err());
        assert!(parse_batch_line("write 1 'unbalanced").unwrap().is_err());
    }

    /// Every subcommand clap knows, parsed with a made-up value for each
    /// required argument, names itself by `Op::name`.
    #[test]
    fn names_are_clap_names() {
        use clap::CommandFactory;
        let cmd = BatchLine::command();
        let mut seen = 0;
        for sub in cmd.get_subcommands() {
            let mut words = vec![sub.get_name().to_string()];
            for arg in sub.get_arguments().filter(|a| a.is_required_set()) {
                let value = if arg.get_id() == "backend" {
                    "cache:1"
                } else {
                    "1"
                };
                if let Some(long) = arg.get_long() {
                    words.push(format!("--{long}"));
                }
                words.push(value.into());
            }
            let line =
                BatchLine::try_parse_from(&words).unwrap_or_else(|e| panic!("{words:?}: {e}"));
            assert_eq!(line.op.name(), sub.get_name());
            seen += 1;
        }
        assert_eq!(seen, 16);
    }

    /// `top` takes slabtop's short options and sort letters.
    #[test]
    fn top_takes_slabtops_flags() {
        use crate::top::SortKey;
        let c = cli(&["top", "-o", "-d", "0.5", "-s", "l"]).unwrap();
        let Command::Top(args) = c.command else {
            panic!("not top");
        };
        assert!(args.once);
        assert_eq!(args.delay, 0.5);
        assert_eq!(args.sort, SortKey::Slabs);
        for (letter, key) in [
            ("n", SortKey::Name),
            ("a", SortKey::Active),
            ("c", SortKey::Memory),
        ] {
            let Command::Top(args) = cli(&["top", "-s", letter]).unwrap().command else {
                panic!("not top");
            };
            assert_eq!(args.sort, key);
        }
        assert!(cli(&["top", "-s", "z"]).is_err());
    }

    #[test]
    fn errno_names_round_trip() {
        for e in [
            Errno::ENOENT,
            Errno::EINVAL,
            Errno::EDQUOT,
            Errno::ENOTTY,
            Errno::EFAULT,
        ] {
            assert_eq!(parse_errno(&format!("{e:?}")), Ok(e));
        }
    }
}
