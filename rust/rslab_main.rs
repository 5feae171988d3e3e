// SPDX-License-Identifier: GPL-2.0

//! rslab: an alternate slab allocator as a loadable Rust-for-Linux module.
//!
//! Object caches ([`cache::Cache`]) carved from pages of the kernel's page
//! allocator, with per-CPU sheaves in front of per-node slab lists, SLUB's
//! debug features, and kmalloc-style size classes. See
//! `Documentation/rslab.rst` for the design.

use core::ptr::NonNull;
use flags::CacheFlags;
use kernel::debugfs::File;
use kernel::prelude::*;
use kernel::sync::Arc;
use kmalloc::Kmalloc;
use registry::Registry;

pub mod cache;
mod debug;
pub mod fault;
pub mod flags;
pub mod kmalloc;
pub mod layout;
pub mod mempool;
mod node;
mod percpu;
pub mod registry;
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
    params: {
        warm: usize {
            default: 0,
            description: "Objects to allocate from each kmalloc class at load and hold until unload (for demos)",
        },
    },
}

/// The module state.
///
/// Fields drop in order: the `slabinfo` file first, then the held objects,
/// the size classes, and last the registry (destroying every cache).
struct Rslab {
    _slabinfo: Pin<KBox<File<Arc<Registry>>>>,
    warm: KVec<NonNull<u8>>,
    kmalloc: Pin<KBox<Kmalloc>>,
    _registry: Arc<Registry>,
}

// SAFETY: The held pointers are objects of `kmalloc`, owned by the module
// state and only freed in its `drop`.
unsafe impl Send for Rslab {}
// SAFETY: `&Rslab` gives no access to the held objects.
unsafe impl Sync for Rslab {}

impl kernel::Module for Rslab {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let registry = Arc::pin_init(Registry::new(), GFP_KERNEL)?;
        let kmalloc = KBox::pin_init(
            Kmalloc::new(|name, size| registry.create(name, size, 8, CacheFlags::NONE, None)),
            GFP_KERNEL,
        )?;
        let slabinfo = KBox::pin_init(
            registry.root().read_callback_file(
                c"slabinfo",
                registry.clone(),
                &|r: &Arc<Registry>, f| r.write_slabinfo(f),
            ),
            GFP_KERNEL,
        )?;
        let mut state = Rslab {
            _slabinfo: slabinfo,
            warm: KVec::new(),
            kmalloc,
            _registry: registry,
        };
        state.warm_up(module_parameters::warm.value())?;
        pr_info!(
            "loaded: {} kmalloc classes, {} objects held\n",
            kmalloc::SIZE_CLASSES.len(),
            state.warm.len()
        );
        Ok(state)
    }
}

impl Rslab {
    /// Allocates `n` objects of each size class and holds them.
    fn warm_up(&mut self, n: usize) -> Result {
        for size in kmalloc::SIZE_CLASSES {
            for _ in 0..n {
                let obj = self.kmalloc.alloc(size, GFP_KERNEL)?;
                self.warm.push(obj, GFP_KERNEL).inspect_err(|_| {
                    // SAFETY: Just allocated, not stored anywhere.
                    unsafe { self.kmalloc.free(obj) };
                })?;
            }
        }
        Ok(())
    }
}

impl Drop for Rslab {
    fn drop(&mut self) {
        for obj in self.warm.drain_all() {
            // SAFETY: Held objects of `kmalloc`, each freed once.
            unsafe { self.kmalloc.free(obj) };
        }
        pr_info!("unloaded\n");
    }
}
