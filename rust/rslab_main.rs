// SPDX-License-Identifier: GPL-2.0

//! rslab: an alternate slab allocator as a loadable Rust-for-Linux module.
//!
//! Object caches ([`cache::Cache`]) carved from pages of the kernel's page
//! allocator, with per-CPU sheaves in front of per-node slab lists, SLUB's
//! debug features, and kmalloc-style size classes. See
//! `Documentation/rslab.rst` for the design.

use kernel::prelude::*;

pub mod cache;
mod debug;
pub mod fault;
pub mod flags;
pub mod kmalloc;
pub mod layout;
mod node;
mod percpu;
mod slab;
pub mod stats;
mod sys;
#[cfg(CONFIG_KUNIT)]
mod tests;

module! {
    type: Rslab,
    name: "rslab",
    authors: ["rslab developers"],
    description: "rslab: an alternate slab allocator in Rust",
    license: "GPL",
}

/// The module state.
struct Rslab;

impl kernel::Module for Rslab {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("rslab: loaded\n");
        Ok(Rslab)
    }
}
