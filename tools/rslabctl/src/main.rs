// SPDX-License-Identifier: GPL-2.0

//! rslabctl: drive and watch the rslab kernel module from user space.
//!
//! Every device operation is a subcommand (`rslabctl --help`); `batch`
//! runs many on one open file, since everything a file makes is released
//! when it closes. `top` is a live view of rslab's debugfs statistics,
//! `stress` and `fuzz` exercise the device. See `Documentation/rslab-abi.rst`.

mod cli;
mod device;
mod fuzz;
mod latency;
mod ops;
mod stress;
mod top;
mod tui;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{Cli, Command, Line};
use device::Device;
use std::io::{BufRead, BufReader};
use std::process::ExitCode;

/// The ABI, from the module's own source (see `rslab-uapi`).
use rslab_uapi as uapi;

/// Runs every line of a batch script on one open file; stops at the first
/// line that does not go as expected.
fn batch(dev: &Device, input: impl BufRead, json: bool) -> Result<bool> {
    for (n, text) in input.lines().enumerate() {
        let text = text?;
        let Some(line) = cli::parse_batch_line(&text) else {
            continue;
        };
        let line = line.map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
        if !ops::run_and_print(dev, &line, json) {
            eprintln!("rslabctl: batch stopped at line {}: {text}", n + 1);
            return Ok(false);
        }
    }
    Ok(true)
}

/// Prints the ABI as this tool compiled it: `make abi-check` compares it
/// with what a C compiler makes of `include/uapi/rslab.h`.
fn abi() {
    for (name, cmd) in uapi::COMMANDS {
        println!("{name} {cmd:#010x}");
    }
    let sizes = [
        ("rslab_info", size_of::<uapi::Info>()),
        ("rslab_handle", size_of::<uapi::HandleArg>()),
        ("rslab_cache_create", size_of::<uapi::CacheCreate>()),
        ("rslab_alloc", size_of::<uapi::ObjAlloc>()),
        ("rslab_io", size_of::<uapi::ObjIo>()),
        ("rslab_bulk", size_of::<uapi::Bulk>()),
        ("rslab_pool_create", size_of::<uapi::PoolCreate>()),
        ("rslab_pool_resize", size_of::<uapi::PoolResize>()),
        ("rslab_cache_info", size_of::<uapi::CacheInfo>()),
        ("rslab_pool_info", size_of::<uapi::PoolInfo>()),
    ];
    for (name, size) in sizes {
        println!("sizeof(struct {name}) {size}");
    }
}

fn open(cli: &Cli) -> Result<Device> {
    Device::open(&cli.device).with_context(|| format!("opening {:?}", cli.device))
}

fn run(cli: Cli) -> Result<bool> {
    match &cli.command {
        Command::Op(op) => {
            let line = Line {
                expect: cli.expect,
                allow: cli.allow,
                op: op.clone(),
            };
            Ok(ops::run_and_print(&open(&cli)?, &line, cli.json))
        }
        Command::Batch { file } => {
            let dev = open(&cli)?;
            match file {
                Some(path) => {
                    let f =
                        std::fs::File::open(path).with_context(|| format!("opening {path:?}"))?;
                    batch(&dev, BufReader::new(f), cli.json)
                }
                None => batch(&dev, std::io::stdin().lock(), cli.json),
            }
        }
        Command::Top(args) => top::run(args).map(|()| true),
        Command::Stress(args) => stress::run(&cli.device, args, cli.json),
        Command::Fuzz(args) => fuzz::run(&cli.device, args, cli.json),
        Command::Abi => {
            abi();
            Ok(true)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("rslabctl: {e:#}");
            ExitCode::from(2)
        }
    }
}
