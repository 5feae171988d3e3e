// SPDX-License-Identifier: GPL-2.0

//! The `/dev/rslab` ioctl ABI for user space: the structs, command numbers
//! and flag bits of the rslab kernel module; and the buckets of its debugfs
//! latency histograms.
//!
//! The source is the module's own `rust/device/uapi.rs`, compiled here as a
//! `no_std` crate, so the module and its tools cannot disagree: there is no
//! second copy to keep in step. `make abi-check` compares what this crate
//! says (through `rslabctl abi`) with what a C compiler makes of
//! `include/uapi/rslab.h`.

#![no_std]

#[path = "../../../rust/device/uapi.rs"]
mod uapi;

pub use uapi::*;

/// The latency histograms' buckets and percentiles, as the module counts
/// them (its `rust/cache/latency/buckets.rs`), for the tools that read
/// `rslab/<cache>/latency`.
#[path = "../../../rust/cache/latency/buckets.rs"]
pub mod latency_buckets;
