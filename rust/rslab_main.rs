// SPDX-License-Identifier: GPL-2.0

//! rslab: an alternate slab allocator as a loadable Rust-for-Linux module.
//!
//! Object caches ([`cache::Cache`]) carved from pages of the kernel's page
//! allocator, with per-CPU sheaves in front of per-node slab lists, SLUB's
//! debug features, and kmalloc-style size classes. See
//! `Documentation/rslab.rst` for the design.
//!
//! The same crate root builds rslab.ko and, through links to this file,
//! its test (`--cfg rslab_kunit`), bench (`--cfg rslab_bench`) and sample
//! (`--cfg rslab_sample`) flavours; see `rust/Kbuild`.

use cache::flags::CacheFlags;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;
use debugfs::file::File;
use debugfs::Registry;
use device::{quota, Device, Shared};
use kernel::alloc::KVVec;
use kernel::prelude::*;
use kernel::sync::Arc;
use kmalloc::Kmalloc;
use mempool::Backend;

#[cfg(rslab_bench)]
mod bench;
pub mod cache;
pub mod debugfs;
pub mod device;
pub mod kmalloc;
pub mod mempool;
mod page;
mod sys;
pub mod typed_cache;

/// The typed-cache sample (`samples/typed_cache/`), built only into
/// rslab_sample.ko.
#[cfg(rslab_sample)]
#[path = "../samples/typed_cache/requests.rs"]
mod sample;

module! {
    type: Rslab,
    name: "rslab",
    authors: ["rslab developers"],
    description: "rslab: an alternate slab allocator in Rust",
    license: "GPL",
    params: {
        warm: usize {
            default: 0,
            description: "Objects to allocate from each kmalloc class at load and hold until unload (for demos; 0 to 1024)",
        },
        demo_pools: usize {
            default: 0,
            description: "If not 0, create three demo pools (cache, kmalloc and pages backends) of this min_nr (up to 65536)",
        },
        max_objects: usize {
            default: 65536,
            description: "/dev/rslab: the most handles (caches, pools, objects) one open file may hold",
        },
        max_bytes: usize {
            default: 64 << 20,
            description: "/dev/rslab: the most bytes one open file may hold",
        },
        max_total_bytes: usize {
            default: 256 << 20,
            description: "/dev/rslab: the most bytes all open files together may hold",
        },
        max_total_objects: usize {
            default: 1 << 18,
            description: "/dev/rslab: the most handles all open files together may hold",
        },
        max_files: usize {
            default: 1024,
            description: "/dev/rslab: the most files open at once (ENFILE beyond)",
        },
    },
}

/// The module state.
///
/// Fields drop in order: `/dev/rslab` first (no file can be open: each
/// holds a module reference), the root's debugfs files, then the held
/// objects, the size classes, the registry (destroying every pool, then
/// every cache), and last the CPU hotplug state, which no cache uses any
/// more.
pub struct Rslab {
    _device: Option<Pin<KBox<Device>>>,
    /// The sample module's requests (see `samples/typed_cache/`).
    #[cfg(rslab_sample)]
    _sample: sample::Requests,
    _files: KVec<File<Arc<Registry>>>,
    /// The bench module's benchmark (see `bench.rs`).
    #[cfg(rslab_bench)]
    _bench: File<Arc<bench::Bench>>,
    warm: KVVec<NonNull<u8>>,
    kmalloc: Arc<Kmalloc>,
    registry: Arc<Registry>,
    /// The test module's deliberate bugs (see `provoke.rs`).
    #[cfg(rslab_kunit)]
    _provoke: File<Arc<debugfs::provoke::Provoke>>,
    _hotplug: cache::hotplug::Hotplug,
}

// SAFETY: The held pointers are objects of `kmalloc`, owned by the module
// state and only freed in its `drop`.
unsafe impl Send for Rslab {}
// SAFETY: `&Rslab` gives no access to the held objects.
unsafe impl Sync for Rslab {}

impl kernel::Module for Rslab {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // Before any cache, so that every cache flushes a dead CPU's sheaf.
        let hotplug = cache::hotplug::Hotplug::register()?;
        let registry = Arc::pin_init(Registry::new()?, GFP_KERNEL)?;
        let kmalloc = Arc::pin_init(
            Kmalloc::new(|name, size| registry.create(name, size, 8, CacheFlags::NONE, None)),
            GFP_KERNEL,
        )?;
        let mut files = KVec::with_capacity(3, GFP_KERNEL)?;
        let root = registry.root();
        let slabinfo = &|r: &Arc<Registry>, f: &mut kernel::fmt::Formatter<'_>| r.write_slabinfo(f);
        let poolinfo = &|r: &Arc<Registry>, f: &mut kernel::fmt::Formatter<'_>| r.write_poolinfo(f);
        let slabinfo_file = root.read_callback_file(c"slabinfo", registry.clone(), slabinfo);
        debugfs::push_file(&mut files, slabinfo_file)?;
        let poolinfo_file = root.read_callback_file(c"poolinfo", registry.clone(), poolinfo);
        debugfs::push_file(&mut files, poolinfo_file)?;
        let reports = &|_: &Arc<Registry>, f: &mut kernel::fmt::Formatter<'_>| {
            writeln!(f, "{}", cache::debug::REPORTS.load(Relaxed))
        };
        let reports_file = root.read_callback_file(c"reports", registry.clone(), reports);
        debugfs::push_file(&mut files, reports_file)?;
        let limits = quota::Limits {
            objects: module_parameters::max_objects.value(),
            bytes: module_parameters::max_bytes.value(),
            total_bytes: module_parameters::max_total_bytes.value(),
            total_objects: module_parameters::max_total_objects.value(),
            files: module_parameters::max_files.value(),
        };
        let shared = Shared {
            registry: registry.clone(),
            kmalloc: kmalloc.clone(),
            quota: quota::Global::new(limits)?,
        };
        let shared = Arc::new(shared, GFP_KERNEL)?;
        #[cfg(rslab_kunit)]
        let provoke = debugfs::provoke::Provoke::file(root)?;
        let mut state = Rslab {
            _device: None,
            #[cfg(rslab_sample)]
            _sample: sample::Requests::start()?,
            _files: files,
            #[cfg(rslab_bench)]
            _bench: bench::Bench::file(root, kmalloc.clone())?,
            warm: KVVec::new(),
            kmalloc,
            registry,
            #[cfg(rslab_kunit)]
            _provoke: provoke,
            _hotplug: hotplug,
        };
        state.warm_up(module_parameters::warm.value())?;
        state.demo_pools(module_parameters::demo_pools.value())?;
        // Last, once nothing else can fail: from here on user space can open
        // the device, so a failed init never leaves a file behind.
        state._device = Some(Device::new(shared)?);
        pr_info!(
            "loaded: {} kmalloc classes, {} objects held\n",
            kmalloc::SIZE_CLASSES.len(),
            state.warm.len()
        );
        Ok(state)
    }
}

/// The most objects of each kmalloc class that `warm` may hold (8 MiB of
/// the largest class).
const MAX_WARM: usize = 1024;

impl Rslab {
    /// Creates the demo pools, one per backend kind, if `min_nr` is not 0.
    fn demo_pools(&self, min_nr: usize) -> Result {
        if min_nr == 0 {
            return Ok(());
        }
        if min_nr > mempool::MAX_MIN_NR {
            pr_err!("demo_pools={min_nr}: at most {}\n", mempool::MAX_MIN_NR);
            return Err(EINVAL);
        }
        let kmalloc_256 = self.kmalloc.caches()[kmalloc::size_class(256).ok_or(EINVAL)?].clone();
        let backends = [
            (c"pool-cache-256", Backend::Cache(kmalloc_256)),
            (
                c"pool-kmalloc-1000",
                Backend::Kmalloc(self.kmalloc.clone(), 1000),
            ),
            (c"pool-pages-1", Backend::pages(1)),
        ];
        for (name, backend) in backends {
            self.registry
                .create_pool(name, min_nr, backend, kernel::bindings::GFP_KERNEL)?;
        }
        Ok(())
    }

    /// Allocates `n` objects of each size class and holds them; `EINVAL`
    /// above [`MAX_WARM`].
    fn warm_up(&mut self, n: usize) -> Result {
        if n > MAX_WARM {
            pr_err!("warm={n}: at most {MAX_WARM} objects per class\n");
            return Err(EINVAL);
        }
        self.warm
            .reserve(n * kmalloc::SIZE_CLASSES.len(), GFP_KERNEL)?;
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
        // What unloading tears down, so that a test (or a reader of the
        // log) can tell it from a leak, which the caches and pools report
        // by name as they are destroyed.
        let (caches, pools) = self.registry.counts();
        pr_info!(
            "unloading: freeing {} held objects, destroying {} pools and {} caches\n",
            self.warm.len(),
            pools,
            caches
        );
        for obj in self.warm.drain_all() {
            // SAFETY: Held objects of `kmalloc`, each freed once.
            unsafe { self.kmalloc.free(obj) };
        }
        // Before the hotplug state goes (a field, dropped after this).
        #[cfg(rslab_kunit)]
        cache::retire_leaked();
        pr_info!("unloaded\n");
    }
}
