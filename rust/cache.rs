// SPDX-License-Identifier: GPL-2.0

//! An object cache: rslab's `kmem_cache`.
//!
//! Allocation and free go through the CPU's *sheaf*, a small per-CPU stack of
//! free objects (SLUB's sheaves, Linux 7.x). On the common path they take no
//! shared lock: only the CPU's local lock. An empty sheaf is refilled whole,
//! from the node's depot and partial slabs; a full one is flushed whole, to
//! the depot and the slabs, as SLUB moves whole sheaves to and from its
//! barn. Only when no node has a free object is a new slab taken
//! from the page allocator, outside every lock, so a `GFP_KERNEL` caller may
//! sleep there while `GFP_ATOMIC`/`GFP_NOWAIT` callers never do.
//!
//! Debug caches (poison, red zone or consistency checks) have no sheaf: every
//! object goes to and from its slab under the node lock, where it is checked,
//! as SLUB does for its debug caches.
//!
//! Lock order, outermost first:
//!
//! 1. the CPU's local lock (`PerCpu::with`, around the sheaf);
//! 2. one node's list lock (`Node::lists`, interrupt-safe), never two.
//!
//! The KASAN quarantine's lock (`crate::cache::quarantine`) is taken with neither
//! held and nothing taken under it. The page allocator is called with
//! neither held, or (freeing only) with either.

pub(crate) mod debug;
pub mod fault;
pub mod flags;
pub(crate) mod hotplug;
#[cfg(rslab_kunit)]
mod irq_tests;
pub(crate) mod kasan;
#[cfg(rslab_kunit)]
mod kasan_tests;
pub mod latency;
pub mod layout;
pub(crate) mod node;
pub(crate) mod percpu;
pub(crate) mod quarantine;
pub(crate) mod shrinker;
pub(crate) mod slab;
pub mod stats;
#[cfg(rslab_kunit)]
pub(crate) mod tests;

use crate::cache::fault::FaultInject;
use crate::cache::flags::{CacheFlag, CacheFlags};
use crate::cache::hotplug::Instance;
use crate::cache::latency::{Latency, Op, Path};
use crate::cache::layout::Layout;
use crate::cache::node::{Detached, FreeRun, Node};
use crate::cache::percpu::PerCpu;
use crate::cache::quarantine::Quarantine;
use crate::cache::shrinker::Shrinker;
use crate::cache::slab::{BadFree, Slab, SlabParams};
use crate::cache::stats::{CacheStats, Counters, Stat};
use crate::sys;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use kernel::alloc::Flags;
use kernel::bindings;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;

/// What other CPUs may read of a CPU's state.
#[derive(Default)]
struct CpuShared {
    counters: Counters,
    /// A copy of the sheaf's count, for the stats.
    cached: AtomicUsize,
}

// SAFETY: All-zero atomics are zero counters and an empty sheaf's count.
unsafe impl pin_init::Zeroable for CpuShared {}

/// The most objects a sheaf can hold.
pub const SHEAF_MAX: usize = 64;

/// How many objects [`Cache::free_bulk`] puts on a sheaf under one local
/// lock.
const FREE_BATCH: usize = 32;

/// A CPU's stack of free objects.
///
/// Only local-node objects are freed onto a sheaf, but a refill from
/// another node (the local one had none) puts remote objects at its bottom:
/// `objs[..remote]` may hold some, so a flush returns those to their slabs
/// and never parks them in the local depot.
#[repr(C)]
struct Sheaf {
    count: usize,
    remote: usize,
    objs: [*mut u8; SHEAF_MAX],
}

// SAFETY: The pointers are free objects of the owning cache, not tied to a
// thread.
unsafe impl Send for Sheaf {}
// SAFETY: An all-zero sheaf is empty (count 0, null pointers).
unsafe impl pin_init::Zeroable for Sheaf {}

const _: () = assert!(SHEAF_MAX.is_power_of_two());

impl Sheaf {
    /// The slot of index `i`, which is below [`SHEAF_MAX`] (a sheaf never
    /// holds more): masked rather than bounds-checked, so that the fast
    /// paths carry no check-and-panic branch (4 instructions a pair).
    #[inline(always)]
    fn slot(i: usize) -> usize {
        debug_assert!(i < SHEAF_MAX);
        i % SHEAF_MAX
    }
}

/// Clears sheaf or depot slots whose pointers were just taken, on a
/// kmemleak kernel: kmemleak scans per-CPU and node memory, and a stale
/// pointer there would hide the leak of an object handed out since.
/// Nothing on other kernels.
#[inline(always)]
pub(crate) fn forget(slots: &mut [*mut u8]) {
    if cfg!(CONFIG_DEBUG_KMEMLEAK) {
        slots.fill(core::ptr::null_mut());
    }
}

/// The constructor type: initialises one object's bytes, once per slot.
pub type Ctor = fn(&mut [u8]);

/// How many objects a sheaf holds for objects of `size` bytes: fewer as
/// they grow, so that what a CPU keeps is bounded in bytes (as SLUB's
/// `calculate_sheaf_capacity()`, which gives objects of a page or more 4).
fn sheaf_capacity(size: usize) -> usize {
    match size {
        0..=256 => SHEAF_MAX,
        257..=1024 => SHEAF_MAX / 2,
        _ if size < kernel::page::PAGE_SIZE => SHEAF_MAX / 4,
        _ => SHEAF_MAX / 16,
    }
}

/// How many objects a node's depot parks: eight sheaves' worth, at most
/// [`crate::cache::node::DEPOT_MAX`], so bounded in bytes like the sheaves (SLUB's
/// barn keeps up to ten full sheaves).
fn depot_capacity(sheaf_capacity: usize) -> usize {
    (8 * sheaf_capacity).min(crate::cache::node::DEPOT_MAX)
}

/// SLUB's `set_min_partial()`: empty slabs a node keeps for reuse.
fn min_partial(size: usize) -> usize {
    (size.checked_ilog2().unwrap_or(0) as usize / 2).clamp(5, 10)
}

/// The sheaf capacity of a cache of `layout` with `flags`: `asked` if
/// given, else [`sheaf_capacity`]'s; none for a debug cache, whose every
/// object is checked at its slab.
fn capacity(layout: &Layout, flags: CacheFlags, asked: Option<usize>) -> usize {
    if flags.is_debug() {
        0
    } else {
        asked.unwrap_or_else(|| sheaf_capacity(layout.size))
    }
}

/// See [`Cache::fixed_footprint`].
fn fixed_footprint(layout: &Layout, capacity: usize, min_partial: usize) -> usize {
    let (cpus, nodes) = (
        kernel::cpu::nr_cpu_ids() as usize,
        sys::nr_node_ids() as usize,
    );
    let objects = layout.objects(layout.order) as usize;
    let slab = crate::cache::layout::slab_bytes(layout.order) + Slab::metadata_bytes(objects);
    // Objects parked in sheaves and depots, or held in the KASAN quarantine.
    let parked = cpus * capacity
        + nodes * depot_capacity(capacity)
        + Quarantine::capacity(capacity, layout.size);
    let metadata = size_of::<Cache>()
        + cpus * (size_of::<Sheaf>() + size_of::<CpuShared>())
        + nodes * size_of::<Node>()
        + crate::debugfs::file::DIR_BYTES;
    metadata + (parked + nodes * min_partial) * slab
}

/// KUnit: every live cache, so that unloading the test module can retire
/// the caches of a test whose assertion failed. KUnit ends such a test's
/// thread without running its destructors, so its caches stay alive with
/// their shrinker and hotplug callbacks pointing into the module; after
/// the unload, the next reclaim would call freed code.
#[cfg(rslab_kunit)]
mod live {
    use super::Cache;
    use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    /// The addresses of live caches; 0 is a free slot. (Best effort: with
    /// more live at once, the rest are not tracked.)
    static LIVE: [AtomicUsize; 64] = [const { AtomicUsize::new(0) }; 64];

    pub(super) fn add(cache: &Cache) {
        let addr = cache.owner_id();
        let _ = LIVE
            .iter()
            .find(|slot| slot.compare_exchange(0, addr, Relaxed, Relaxed).is_ok());
    }

    pub(super) fn remove(cache: &Cache) {
        let addr = cache.owner_id();
        let _ = LIVE
            .iter()
            .find(|slot| slot.compare_exchange(addr, 0, Relaxed, Relaxed).is_ok());
    }

    /// Unregisters the callbacks of every cache still alive: those of
    /// failed tests, which stay allocated (nobody frees them), so their
    /// addresses stay valid.
    pub(crate) fn retire_leaked() {
        for slot in LIVE.iter() {
            let addr = slot.swap(0, Relaxed);
            if addr != 0 {
                // SAFETY: A cache registered by `Cache::new` and not yet torn
                // down: alive, since only its teardown frees it.
                let cache = unsafe { &*(addr as *const Cache) };
                cache.shrinker.unregister();
                cache.cpuhp.remove();
            }
        }
    }
}

#[cfg(rslab_kunit)]
pub(crate) use live::retire_leaked;

/// An object cache.
///
/// # Invariants
///
/// * `nodes[n]` holds the slabs of node `n`, for every possible node id.
/// * An object pointer in a sheaf is a free object of this cache whose slab
///   counts it as allocated.
pub struct Cache {
    name: CString,
    layout: Layout,
    flags: CacheFlags,
    ctor: Option<Ctor>,
    key: usize,
    min_partial: usize,
    capacity: usize,
    depot_capacity: usize,
    /// `init_on_alloc` / `init_on_free` as they apply to this cache: as in
    /// SLUB, not for a cache with a constructor or poisoning, whose free
    /// objects' bytes are their state.
    init_alloc: bool,
    init_free: bool,
    /// `capacity == 0 || init_free`: whether a free needs more than the
    /// sheaf, so that the common free tests one flag.
    free_special: bool,
    nodes: KVec<Pin<KBox<Node>>>,
    cpus: PerCpu<Sheaf, CpuShared>,
    /// KASAN: freed objects wait here before their slots are reused.
    quarantine: Pin<KBox<Quarantine>>,
    events: Counters,
    fault: FaultInject,
    latency: Latency,
    cpuhp: Instance,
    shrinker: Shrinker,
}

impl Cache {
    /// Creates a cache of `size`-byte objects aligned to `align`.
    ///
    /// `ctor`, if given, runs once on every object slot when its slab is
    /// made, so objects come out in the constructed state and must be freed
    /// in it (as with `kmem_cache_create`'s ctor). A cache with a constructor
    /// ignores `POISON`, as SLUB does.
    ///
    /// The cache lives in an [`Arc`] because its slabs identify it by
    /// address: it must never move.
    ///
    /// The cache registers a shrinker (named `rslab-<name>`): under memory
    /// pressure it gives back its empty slabs and parked objects.
    ///
    /// Errors: `EINVAL` for an empty name, a zero or too large size, or an
    /// alignment that is not a power of two; `ENOMEM` if memory runs out.
    pub fn new(
        name: &CStr,
        size: usize,
        align: usize,
        flags: impl Into<CacheFlags>,
        ctor: Option<Ctor>,
    ) -> Result<Arc<Self>> {
        Self::build(name, size, align, flags.into(), ctor, None)
    }

    /// [`Cache::new`], with sheaves of `capacity` objects instead of the
    /// default for the size (as `kmem_cache_args.sheaf_capacity` asks of
    /// SLUB): fewer keep less memory parked per CPU, more take the node
    /// lock less often. A debug cache still has none.
    ///
    /// Errors: those of [`Cache::new`], and `EINVAL` for a `capacity` of 0
    /// or above [`SHEAF_MAX`].
    pub fn with_sheaf_capacity(
        name: &CStr,
        size: usize,
        align: usize,
        flags: impl Into<CacheFlags>,
        ctor: Option<Ctor>,
        capacity: usize,
    ) -> Result<Arc<Self>> {
        if !(1..=SHEAF_MAX).contains(&capacity) {
            return Err(EINVAL);
        }
        Self::build(name, size, align, flags.into(), ctor, Some(capacity))
    }

    fn build(
        name: &CStr,
        size: usize,
        align: usize,
        flags: CacheFlags,
        ctor: Option<Ctor>,
        capacity: Option<usize>,
    ) -> Result<Arc<Self>> {
        if name.is_empty() {
            return Err(EINVAL);
        }
        // As in SLUB, a constructed object's free contents are its state:
        // they cannot be poisoned.
        let flags = if ctor.is_some() {
            flags & !CacheFlags::from(CacheFlag::Poison)
        } else {
            flags
        };
        let layout = Layout::new(size, align, flags, ctor.is_some(), sys::num_present_cpus())?;
        let mut nodes = KVec::with_capacity(sys::nr_node_ids() as usize, GFP_KERNEL)?;
        for _ in 0..sys::nr_node_ids() {
            nodes.push(KBox::pin_init(Node::new(), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        let capacity = self::capacity(&layout, flags, capacity);
        let plain = ctor.is_none() && !flags.contains(CacheFlag::Poison);
        let init_free = plain && sys::init_on_free();
        let quarantine = Quarantine::new(capacity, layout.size, layout.free_offset);
        let quarantine = KBox::pin_init(quarantine, GFP_KERNEL)?;
        let cache = Self {
            name: CString::try_from_fmt(fmt!("{name}"))?,
            capacity,
            depot_capacity: depot_capacity(capacity),
            min_partial: min_partial(layout.size),
            init_alloc: plain && sys::init_on_alloc(),
            init_free,
            free_special: capacity == 0 || init_free,
            layout,
            flags,
            ctor,
            key: sys::random_u64() as usize,
            quarantine,
            nodes,
            cpus: PerCpu::new()?,
            events: Counters::default(),
            fault: FaultInject::default(),
            latency: Latency::default(),
            cpuhp: Instance::new(),
            shrinker: Shrinker::new(),
        };
        let cache = Arc::new(cache, GFP_KERNEL)?;
        // SAFETY: The cache is in its `Arc` and never moves; its teardown
        // removes the instance and unregisters the shrinker first thing.
        unsafe {
            cache.cpuhp.add();
            cache.shrinker.register(&cache.name, &cache)?;
        }
        #[cfg(rslab_kunit)]
        live::add(&cache);
        Ok(cache)
    }

    /// The cache whose hotplug instance has `node`.
    ///
    /// # Safety
    ///
    /// `node` must be the node of a live cache's `cpuhp` instance.
    pub(crate) unsafe fn from_cpuhp_node<'a>(node: *mut bindings::hlist_node) -> &'a Self {
        // The node is the instance's first field (`repr(C)`).
        let instance = node.cast::<Instance>().cast_const();
        // SAFETY: The caller's promise: `instance` is a live cache's field.
        unsafe { &*kernel::container_of!(instance, Cache, cpuhp) }
    }

    /// Flushes dead CPU `cpu`'s sheaf to the slabs, as SLUB's
    /// `slub_cpu_dead()`, so that a `shrink` can free its slabs.
    ///
    /// # Safety
    ///
    /// `cpu` must be dead (a CPU hotplug teardown).
    pub(crate) unsafe fn flush_dead_cpu(&self, cpu: u32) {
        // SAFETY: The caller's promise; a dead CPU is a possible one, and
        // nothing runs on it.
        unsafe {
            self.cpus.with_unused(cpu, |sheaf, shared| {
                self.flush(sheaf, shared, usize::MAX, false)
            })
        };
    }

    /// Destroys the cache if `this` is its last reference: flushes every
    /// sheaf, reports objects still allocated (name and count, in the kernel
    /// log), returns the pages of every empty slab, leaks the slabs still in
    /// use (their objects may be), and gives the number of leaked objects.
    /// `None` if others still hold the cache (it is destroyed with the last).
    pub fn destroy(this: Arc<Self>) -> Option<usize> {
        let mut unique = Arc::into_unique_or_drop(this)?;
        Some(unique.teardown())
    }

    /// The cache's name.
    pub fn name(&self) -> &CStr {
        &self.name
    }

    /// The object layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The flags in effect.
    pub fn flags(&self) -> CacheFlags {
        self.flags
    }

    /// How many empty slabs each node keeps for reuse.
    pub fn min_partial(&self) -> usize {
        self.min_partial
    }

    /// The most bytes one allocated object pins: its slot, and its share of
    /// its slab's unused tail and of the slab's metadata, at whichever of
    /// the cache's two slab orders is worse, and what the debugging tools
    /// add to it ([`sys::TRACKING_BYTES`]). What a quota charges an object:
    /// at the peak of a run of allocations, its slabs are full.
    pub fn object_footprint(&self) -> usize {
        let l = &self.layout;
        let per_object = |order| {
            let objects = (l.objects(order) as usize).max(1);
            (crate::cache::layout::slab_bytes(order) + Slab::metadata_bytes(objects))
                .div_ceil(objects)
        };
        per_object(l.order).max(per_object(l.min_order)) + sys::TRACKING_BYTES
    }

    /// How many objects each CPU's sheaf holds (0: none, a debug cache).
    pub fn sheaf_capacity(&self) -> usize {
        self.capacity
    }

    /// The sheaf capacity [`Cache::new`] gives a plain cache of
    /// `size`-byte objects.
    pub fn sheaf_capacity_for(size: usize) -> usize {
        sheaf_capacity(size)
    }

    /// The most bytes the cache pins with no object allocated: its
    /// metadata and debugfs entries; a whole slab for every object its
    /// sheaves, depots and KASAN quarantine can hold (parked objects of
    /// different slabs each keep theirs alive); and the empty slabs each
    /// node keeps. What a quota charges a cache.
    pub fn fixed_footprint(&self) -> usize {
        fixed_footprint(&self.layout, self.capacity, self.min_partial)
    }

    /// [`Cache::fixed_footprint`] of the cache [`Cache::new`] would make
    /// with these arguments (and no constructor), known before it is made;
    /// its errors.
    pub fn fixed_footprint_of(size: usize, align: usize, flags: CacheFlags) -> Result<usize> {
        let layout = Layout::new(size, align, flags, false, sys::num_present_cpus())?;
        Ok(fixed_footprint(
            &layout,
            capacity(&layout, flags, None),
            min_partial(layout.size),
        ))
    }

    /// The fault-injection knobs for this cache's slab allocations.
    pub fn fault(&self) -> &FaultInject {
        &self.fault
    }

    /// The latency histograms of this cache's allocations and frees.
    pub fn latency(&self) -> &Latency {
        &self.latency
    }

    /// The identity of this cache that its slabs carry.
    pub(crate) fn owner_id(&self) -> usize {
        core::ptr::from_ref(self) as usize
    }

    /// The tag this cache's pages carry: its identity mixed with its random
    /// key, odd so that it is never 0 (no tag). A free checks it first, so
    /// a pointer into other memory is never taken for one of its objects.
    pub(crate) fn tag(&self) -> usize {
        (self.owner_id() ^ self.key) | 1
    }

    fn params(&self) -> SlabParams<'_> {
        SlabParams {
            layout: &self.layout,
            flags: self.flags,
            key: self.key,
            ctor: self.ctor,
            owner: self.owner_id(),
            tag: self.tag(),
            name: &self.name,
            init_free: self.init_free,
            zero_on_free: self.init_free && self.capacity == 0,
        }
    }

    fn node(&self, nid: i32) -> &Node {
        &self.nodes[nid as usize]
    }

    /// Allocates an object.
    ///
    /// Never sleeps unless `gfp` allows it, and then only to get a new slab.
    /// `__GFP_ZERO` zeroes the object; `__GFP_NOWARN` silences the page
    /// allocator. A refusal is `ENOMEM`.
    pub fn alloc(&self, gfp: Flags) -> Result<NonNull<u8>> {
        sys::might_alloc(|| sys::gfp_bits(gfp));
        // The raw flags are only worked out on the slow path.
        // (Worked out after the sheaf, from `gfp`, which is kept anyway:
        // one register less across the local lock.)
        let zero = move || gfp.contains(__GFP_ZERO) | self.init_alloc;
        self.alloc_inner(zero, move || sys::gfp_bits(gfp))
    }

    /// [`Cache::alloc`] with raw `gfp_t` flags, for callers (the mempool)
    /// that need flags the kernel crate's `Flags` cannot express.
    /// `__GFP_THISNODE` asks for a local-node object or none.
    pub(crate) fn alloc_raw(&self, gfp: bindings::gfp_t) -> Result<NonNull<u8>> {
        if sys::gfp_thisnode(gfp) {
            return self.alloc_node_raw(gfp, sys::NUMA_NO_NODE);
        }
        sys::might_alloc(|| gfp);
        let zero = move || (gfp & bindings::__GFP_ZERO != 0) | self.init_alloc;
        self.alloc_inner(zero, move || gfp)
    }

    /// Allocates an object of node `nid`, as `kmem_cache_alloc_node()`.
    ///
    /// `NUMA_NO_NODE` (-1) is any node: [`Cache::alloc`]. Otherwise the
    /// object comes from node `nid`'s slabs or a new slab there; only when
    /// that node has neither a free object nor a page to spare at once does
    /// it come from another node, as SLUB falls back. `EINVAL` if `nid` is
    /// not a node with memory; otherwise as [`Cache::alloc`].
    pub fn alloc_node(&self, gfp: Flags, nid: i32) -> Result<NonNull<u8>> {
        self.alloc_node_raw(sys::gfp_bits(gfp), nid)
    }

    /// [`Cache::alloc_node`] with raw flags, where `__GFP_THISNODE` makes
    /// the node (the local one for `NUMA_NO_NODE`) a requirement: an object
    /// of that node, or `ENOMEM`.
    pub(crate) fn alloc_node_raw(&self, gfp: bindings::gfp_t, nid: i32) -> Result<NonNull<u8>> {
        let strict = sys::gfp_thisnode(gfp);
        if nid == sys::NUMA_NO_NODE && !strict {
            return self.alloc_raw(gfp);
        }
        // Never from the sheaf: the slow path.
        if latency::armed() && self.latency.is_on() {
            let alloc = || (self.alloc_node_inner(gfp, nid, strict), Path::Slow);
            return self.latency.time(Op::Alloc, alloc);
        }
        self.alloc_node_inner(gfp, nid, strict)
    }

    /// [`Cache::alloc_node_raw`] for a node (`NUMA_NO_NODE` with `strict`:
    /// the local one).
    fn alloc_node_inner(
        &self,
        gfp: bindings::gfp_t,
        nid: i32,
        strict: bool,
    ) -> Result<NonNull<u8>> {
        let nid = if nid == sys::NUMA_NO_NODE {
            sys::numa_mem_id()
        } else {
            nid
        };
        if !sys::node_has_memory(nid) {
            return Err(EINVAL);
        }
        sys::might_alloc(|| gfp);
        self.events.add(Stat::AllocSlow, 1);
        let obj = if strict {
            self.alloc_on(nid, gfp)
                .inspect_err(|_| self.events.add(Stat::AllocFailed, 1))?
        } else {
            match self.alloc_on(nid, sys::gfp_try_node(gfp)) {
                Ok(obj) => obj,
                Err(_) => self.grow_and_refill(gfp)?,
            }
        };
        self.hand_out(obj, || gfp);
        if gfp & bindings::__GFP_ZERO != 0 || self.init_alloc {
            self.zero(obj);
        }
        Ok(obj)
    }

    /// An object of node `nid`: from its depot or slabs, else from a new
    /// slab there, allocated with `gfp`, which holds `__GFP_THISNODE`.
    fn alloc_on(&self, nid: i32, gfp: bindings::gfp_t) -> Result<NonNull<u8>> {
        loop {
            let mut one = [core::ptr::null_mut()];
            if self.take_from_node(nid, &mut one) == 1 {
                return NonNull::new(one[0]).ok_or(ENOMEM);
            }
            self.grow(gfp, nid)?;
        }
    }

    /// Allocates a new slab with `gfp`, preferably on node `nid`, outside
    /// every lock, and puts it on the lists of the node it is on.
    fn grow(&self, gfp: bindings::gfp_t, nid: i32) -> Result {
        let slab = self.new_slab(gfp, nid)?;
        // SAFETY: A new slab is live, on no list, and ours; it goes on the
        // lists of the node its pages are on (`__GFP_THISNODE` or not, its
        // own word is what counts).
        unsafe {
            let nid = slab.as_ref().node();
            self.node(nid).lock().add(slab);
        }
        Ok(())
    }

    /// Every node id, `first` first, then the others in order: the order in
    /// which refills look for objects.
    fn nodes_from(&self, first: i32) -> impl Iterator<Item = i32> {
        let others = (0..self.nodes.len() as i32).filter(move |&n| n != first);
        Iterator::chain(core::iter::once(first), others)
    }

    /// What the kernel's debugging tools are told of an object handed out:
    /// KASAN lets its bytes be used, kmemleak tracks it.
    #[inline(always)]
    fn hand_out(&self, obj: NonNull<u8>, gfp: impl FnOnce() -> bindings::gfp_t) {
        kasan::unpoison(obj.as_ptr(), self.layout.object_size);
        sys::kmemleak_alloc(obj.as_ptr(), self.layout.object_size, gfp);
    }

    /// Zeroes an object for `__GFP_ZERO`.
    fn zero(&self, obj: NonNull<u8>) {
        // SAFETY: `obj` is a freshly allocated object of
        // `layout.object_size` bytes that nobody else references yet.
        unsafe { obj.as_ptr().write_bytes(0, self.layout.object_size) };
    }

    #[inline(always)]
    fn alloc_inner(
        &self,
        zero: impl FnOnce() -> bool,
        gfp: impl Fn() -> bindings::gfp_t,
    ) -> Result<NonNull<u8>> {
        if latency::armed() && self.latency.is_on() {
            core::hint::cold_path();
            return self.alloc_timed(zero, gfp);
        }
        self.alloc_path(zero, gfp).map(|(obj, _)| obj)
    }

    /// [`Cache::alloc_inner`] once some cache's latency histograms are on.
    /// Out of line, with its arguments by value, so that the fast path
    /// keeps only the static key's no-op: a closure built there for the
    /// timed branch made it spill its arguments to the stack first.
    #[inline(never)]
    fn alloc_timed(
        &self,
        zero: impl FnOnce() -> bool,
        gfp: impl Fn() -> bindings::gfp_t,
    ) -> Result<NonNull<u8>> {
        self.latency.time(Op::Alloc, || {
            let r = self.alloc_path(zero, gfp);
            // A failure went past the sheaf: the slow path.
            let path = r.as_ref().map_or(Path::Slow, |&(_, path)| path);
            (r.map(|(obj, _)| obj), path)
        })
    }

    /// An allocation, and the path it took. (A `Result` of both rather
    /// than a pair: with the `?` below, the untimed path compiles as it
    /// did before there was a path to report; a pair cost it 2
    /// instructions.)
    #[inline(always)]
    fn alloc_path(
        &self,
        zero: impl FnOnce() -> bool,
        gfp: impl Fn() -> bindings::gfp_t,
    ) -> Result<(NonNull<u8>, Path)> {
        // SAFETY: The closure touches only the sheaf, the counters and the
        // object's bytes; it does not enter `cpus` again.
        let fast = unsafe {
            self.cpus.with(|sheaf, shared| {
                let n = sheaf.count.checked_sub(1)?;
                sheaf.count = n;
                shared.cached.store(n, Relaxed);
                shared.counters.add_local(Stat::AllocFast, 1);
                let slot = &mut sheaf.objs[Sheaf::slot(n)];
                let obj = *slot;
                forget(core::slice::from_mut(slot));
                NonNull::new(obj)
            })
        };
        let (obj, path) = match fast {
            Some(obj) => (obj, Path::Fast),
            None => (self.alloc_slow(gfp())?, Path::Slow),
        };
        self.hand_out(obj, gfp);
        if zero() {
            self.zero(obj);
        }
        Ok((obj, path))
    }

    fn alloc_slow(&self, gfp: bindings::gfp_t) -> Result<NonNull<u8>> {
        self.events.add(Stat::AllocSlow, 1);
        self.grow_and_refill(gfp)
    }

    /// Refills the sheaf from any node, local first, growing the local node
    /// by a slab while none has a free object; one object for the caller.
    fn grow_and_refill(&self, gfp: bindings::gfp_t) -> Result<NonNull<u8>> {
        loop {
            // SAFETY: `refill` takes node locks only, never `cpus`.
            if let Some(obj) = unsafe { self.cpus.with(|sheaf, shared| self.refill(sheaf, shared)) }
            {
                return Ok(obj);
            }
            // No node has a free object: grow, outside every lock.
            self.grow(gfp, sys::numa_mem_id())
                .inspect_err(|_| self.events.add(Stat::AllocFailed, 1))?;
        }
    }

    /// Fills the empty sheaf from the node lists, local node first, as far
    /// as one node has objects (SLUB's refill of a whole sheaf: half a
    /// sheaf took twice the node locks, and cost `make bench`'s out10000
    /// 1% to 5% more); keeps all but one and returns that one. (If the task
    /// moved to a CPU whose sheaf has objects, it just takes one of those.)
    fn refill(&self, sheaf: &mut Sheaf, shared: &CpuShared) -> Option<NonNull<u8>> {
        if sheaf.count == 0 {
            let want = self.capacity.max(1);
            let local = sys::numa_mem_id();
            let (nid, taken) = self
                .nodes_from(local)
                .map(|nid| (nid, self.take_from_node(nid, &mut sheaf.objs[..want])))
                .find(|&(_, taken)| taken > 0)?;
            sheaf.count = taken;
            self.events.add(Stat::Refill, 1);
            sheaf.remote = if nid != local {
                self.events.add(Stat::NodeMismatch, taken as u64);
                taken
            } else {
                0
            };
        }
        sheaf.count -= 1;
        shared.cached.store(sheaf.count, Relaxed);
        let obj = sheaf.objs[sheaf.count];
        forget(&mut sheaf.objs[sheaf.count..=sheaf.count]);
        NonNull::new(obj)
    }

    /// Fills `out` with objects of node `nid` as far as it has them;
    /// returns how many. (A debug cache, with sheaves of capacity 0, still
    /// gets its one object this way.)
    fn take_from_node(&self, nid: i32, out: &mut [*mut u8]) -> usize {
        let p = self.params();
        let want = out.len();
        let mut lists = self.node(nid).lock();
        // Parked objects first: no slab to touch.
        let mut taken = lists.depot_take(out);
        while taken < want {
            let Some(slab) = lists.alloc_candidate() else {
                break;
            };
            // SAFETY: A member of this node's lists, under its lock.
            let s = unsafe { &mut *slab.as_ptr() };
            let before = taken;
            // From the slab's own count: a corrupted freelist makes it full.
            let was = s.inuse();
            while taken < want {
                let Some(obj) = s.pop(&p) else { break };
                out[taken] = obj.as_ptr();
                taken += 1;
            }
            lists.count_allocated((s.inuse() - was) as usize);
            // SAFETY: `slab` is on these lists.
            unsafe { lists.update(slab) };
            // A candidate's counts promise a free object; never spin on one
            // that yields none.
            if taken == before {
                break;
            }
        }
        taken
    }

    /// Allocates a new slab: the preferred order cheaply first, then the
    /// smallest order that fits one object, as SLUB's `allocate_slab()`.
    /// Bits a slab must never be asked for (`GFP_SLAB_BUG_MASK`) are
    /// reported and dropped, as SLUB's `kmalloc_fix_flags()`; the metadata
    /// is allocated within the caller's NOIO/NOFS restrictions.
    fn new_slab(&self, gfp: bindings::gfp_t, nid: i32) -> Result<NonNull<Slab>> {
        if self.fault.should_fail() {
            return Err(ENOMEM);
        }
        let bug = sys::gfp_slab_bug(gfp);
        if bug != 0 {
            let what = fmt!("unexpected gfp bits {bug:#x} (GFP_SLAB_BUG_MASK), dropped");
            debug::report(&self.name, what, core::ptr::null());
        }
        let p = self.params();
        // The object, not the page, is what `__GFP_ZERO` asks to zero.
        let raw = gfp & !(bindings::__GFP_ZERO | bug);
        let _scope = sys::GfpScope::enter(raw);
        let l = &self.layout;
        let meta = sys::metadata_flags(raw);
        let first = if l.order > l.min_order {
            Slab::new(&p, nid, l.order, sys::gfp_opportunistic(raw), meta)
        } else {
            Slab::new(&p, nid, l.order, raw, meta)
        };
        let slab = match first {
            Some(slab) => slab,
            None if l.order > l.min_order => {
                self.events.add(Stat::OrderFallback, 1);
                Slab::new(&p, nid, l.min_order, raw, meta).ok_or(ENOMEM)?
            }
            None => return Err(ENOMEM),
        };
        self.events.add(Stat::NewSlab, 1);
        // SAFETY: Just created and unpublished.
        if unsafe { slab.as_ref() }.node() != nid {
            self.events.add(Stat::NodeMismatch, 1);
        }
        Ok(slab)
    }

    /// Frees an object.
    ///
    /// With [`sys::CHECK_FREES`] (hardened and debug kernels), and in every
    /// debug cache (poison, red zone or consistency checks: no sheaves), a
    /// pointer outside this cache's
    /// slabs (another cache's object, a SLUB object, a page from the page
    /// allocator, a vmalloc or stack address) is reported and ignored, on
    /// every path: its page does not carry this cache's tag. It is leaked,
    /// never put on a sheaf or a freelist.
    ///
    /// # Safety
    ///
    /// `obj` must be an object that came from [`Cache::alloc`] (or
    /// [`Cache::alloc_bulk`]) on this cache and was not freed since, and
    /// nobody may use it again; where frees are checked (see above), any
    /// pointer that is not in this cache's slabs is fine too. In a cache
    /// with `CONSISTENCY_CHECKS`, a misaligned pointer or a double free is
    /// also detected, reported and ignored.
    pub unsafe fn free(&self, obj: NonNull<u8>) {
        // SAFETY: The caller's promise, passed on; the tag is checked.
        unsafe { self.free_inner(obj, true) }
    }

    /// [`Cache::free`] of a pointer whose page is known to carry this
    /// cache's tag (kmalloc found the cache by it): not checked again.
    ///
    /// # Safety
    ///
    /// As for [`Cache::free`], and `obj` is in one of this cache's slabs.
    pub(crate) unsafe fn free_owned(&self, obj: NonNull<u8>) {
        // SAFETY: The caller's promise, passed on.
        unsafe { self.free_inner(obj, false) }
    }

    /// Whether KASAN's shadow says `obj` is free already (then reported): a
    /// double free, caught in every cache on a KASAN kernel. Reads only the
    /// shadow, so a pointer that is no free object costs nothing.
    fn kasan_double_free(&self, obj: NonNull<u8>) -> bool {
        let free = kasan::is_free(obj.as_ptr());
        if free {
            self.report_bad_free(BadFree::DoubleFree, obj);
        }
        free
    }

    /// Whether `obj` is foreign to this cache (then reported): its page does
    /// not carry the cache's tag.
    fn foreign(&self, obj: NonNull<u8>) -> bool {
        let foreign = sys::page_tag(obj.as_ptr()) != self.tag();
        if foreign {
            self.report_bad_free(BadFree::ForeignPointer, obj);
        }
        foreign
    }

    /// A free; with `check`, of a pointer whose tag is checked where frees
    /// are (see [`Cache::free`]). Inlined into both callers, so that `check`
    /// is a constant and the default flavour's fast path is unchanged.
    ///
    /// # Safety
    ///
    /// As for [`Cache::free`]; without `check`, as for [`Cache::free_owned`].
    #[inline(always)]
    unsafe fn free_inner(&self, obj: NonNull<u8>, check: bool) {
        if latency::armed() && self.latency.is_on() {
            core::hint::cold_path();
            // SAFETY: The caller's promise, passed on.
            return unsafe { self.free_timed(obj, check) };
        }
        // SAFETY: The caller's promise, passed on.
        unsafe { self.free_path(obj, check) };
    }

    /// [`Cache::free_inner`] once some cache's latency histograms are on
    /// (out of line: see [`Cache::alloc_timed`]).
    ///
    /// # Safety
    ///
    /// As for [`Cache::free_inner`].
    #[inline(never)]
    unsafe fn free_timed(&self, obj: NonNull<u8>, check: bool) {
        let free = || {
            // SAFETY: The caller's promise, passed on.
            ((), unsafe { self.free_path(obj, check) })
        };
        self.latency.time(Op::Free, free)
    }

    /// [`Cache::free_inner`], and the path it took: fast if the object
    /// went onto the sheaf with no flush.
    ///
    /// # Safety
    ///
    /// As for [`Cache::free_inner`].
    #[inline(always)]
    unsafe fn free_path(&self, obj: NonNull<u8>, check: bool) -> Path {
        if self.free_special && self.capacity == 0 {
            if !(check && self.foreign(obj) || self.kasan_double_free(obj)) {
                // SAFETY: The caller's promise, passed on.
                unsafe { self.free_to_slab(obj) };
            }
            return Path::Slow;
        }
        // SAFETY: The caller's promise, passed on.
        let obj = match unsafe { self.free_prepare(obj, check) } {
            Ok(obj) => obj,
            Err(path) => return path,
        };
        let nid = self.sheaf_node(obj);
        // SAFETY: The closure pushes onto the sheaf or flushes it
        // (`flush` takes node locks only), never entering `cpus` again.
        let cached = unsafe {
            self.cpus.with(|sheaf, shared| {
                if nid.is_some_and(|nid| nid != sys::numa_mem_id()) {
                    return None;
                }
                let path = if sheaf.count == self.capacity {
                    // Whole, as SLUB's full sheaf goes to its barn: half a
                    // sheaf flushed twice as often and moved the rest down
                    // (out10000 +5% to +9%).
                    self.flush(sheaf, shared, self.capacity, true);
                    Path::Slow
                } else {
                    Path::Fast
                };
                let slot = Sheaf::slot(sheaf.count);
                sheaf.objs[slot] = obj.as_ptr();
                sheaf.count = slot + 1;
                shared.cached.store(sheaf.count, Relaxed);
                shared.counters.add_local(Stat::FreeFast, 1);
                Some(path)
            })
        };
        cached.unwrap_or_else(|| {
            self.events.add(Stat::NodeMismatch, 1);
            // SAFETY: The caller's promise, passed on.
            unsafe { self.free_to_slab(obj) };
            Path::Slow
        })
    }

    /// What a free of a cache with sheaves does before the sheaf: checks
    /// (see [`Cache::free`]), kmemleak, `init_on_free`, KASAN's poison and
    /// quarantine. The object to put on a sheaf (the quarantine may give
    /// back an older one); or the path taken, if none is left to put: a bad
    /// free was reported (slow), or the quarantine kept it (fast).
    ///
    /// # Safety
    ///
    /// As for [`Cache::free_inner`], in a cache with sheaves.
    #[inline(always)]
    unsafe fn free_prepare(&self, obj: NonNull<u8>, check: bool) -> Result<NonNull<u8>, Path> {
        if check && sys::CHECK_FREES && self.foreign(obj) {
            return Err(Path::Slow);
        }
        if self.kasan_double_free(obj) {
            return Err(Path::Slow);
        }
        sys::kmemleak_free(obj.as_ptr());
        if self.free_special {
            // `init_on_free`: no old byte stays in a free object. (A debug
            // cache zeroes under the node lock, once the free is checked.)
            // All of it, past what KASAN lets the caller use (a kmalloc
            // object's size asked for): rslab's own access.
            let _quiet = kasan::Quiet::new();
            self.zero(obj);
        }
        kasan::poison_free(obj.as_ptr(), self.layout.object_size);
        // KASAN: the object waits in the quarantine, and the oldest one there
        // (once it is full) is freed instead. Held there, it took no node
        // lock: the fast path.
        // SAFETY: The caller's promise: the object is this cache's, freed,
        // and (poisoned above) still allocated in its slab.
        unsafe { self.quarantine.hold(obj) }.ok_or(Path::Fast)
    }

    /// The node of `obj`, an object, where that can differ from the CPU's
    /// (more than one node); `None` with one node, where every object is
    /// local and the page lookup is skipped.
    #[inline(always)]
    fn sheaf_node(&self, obj: NonNull<u8>) -> Option<i32> {
        (sys::nr_node_ids() > 1).then(|| {
            // SAFETY: `obj` is an object, so in the direct map.
            unsafe { sys::rslab_addr_nid(obj.as_ptr().cast()) }
        })
    }

    /// Moves the `n` oldest objects of `sheaf` out: into the local node's
    /// depot as far as it has room if `park`, the rest (and any that may be
    /// remote) to their slabs.
    fn flush(&self, sheaf: &mut Sheaf, shared: &CpuShared, n: usize, park: bool) {
        let n = n.min(sheaf.count);
        if n == 0 {
            return;
        }
        let remote = sheaf.remote.min(n);
        let parked = if park {
            let nid = sys::numa_mem_id();
            let depot = &mut self.node(nid).lock();
            depot.depot_put(&sheaf.objs[remote..n], self.depot_capacity)
        } else {
            0
        };
        let mut freed = Detached::new();
        // SAFETY: Sheaf objects are this cache's allocated-in-slab objects
        // (type invariant), and they leave the sheaf below.
        unsafe {
            self.return_batch(&sheaf.objs[..remote], &mut freed);
            self.return_batch(&sheaf.objs[remote + parked..n], &mut freed);
        }
        sheaf.objs.copy_within(n..sheaf.count, 0);
        forget(&mut sheaf.objs[sheaf.count - n..sheaf.count]);
        sheaf.count -= n;
        sheaf.remote = (sheaf.remote - remote).min(sheaf.count);
        shared.cached.store(sheaf.count, Relaxed);
        self.events.add(Stat::Flush, 1);
        self.events.add(Stat::SlabFreed, freed.free() as u64);
    }

    /// Frees `objs`, objects of node `nid` that a full sheaf has no room
    /// for: into that node's depot as far as it has room, the rest to
    /// their slabs. Counted as a flush, and as frees past the sheaf.
    ///
    /// # Safety
    ///
    /// As for [`Cache::free`], for each object, all of node `nid`.
    unsafe fn spill(&self, nid: i32, objs: &[*mut u8]) {
        if objs.is_empty() {
            return;
        }
        let parked = self.node(nid).lock().depot_put(objs, self.depot_capacity);
        let mut freed = Detached::new();
        // SAFETY: The caller's promise.
        unsafe { self.return_batch(&objs[parked..], &mut freed) };
        self.events.add(Stat::Flush, 1);
        self.events.add(Stat::FreeSlow, objs.len() as u64);
        self.events.add(Stat::SlabFreed, freed.free() as u64);
    }

    /// # Safety
    ///
    /// As for [`Cache::free`].
    unsafe fn free_to_slab(&self, obj: NonNull<u8>) {
        self.events.add(Stat::FreeSlow, 1);
        let mut freed = Detached::new();
        // SAFETY: The caller's promise.
        unsafe { self.return_batch(&[obj.as_ptr()], &mut freed) };
        self.events.add(Stat::SlabFreed, freed.free() as u64);
    }

    /// Puts objects back into their slabs' freelists, taking each node lock
    /// once for a run of objects of that node rather than once per object
    /// (a sheaf's objects are almost always all of one node), and moves
    /// surplus empty slabs to `freed`. With `CONSISTENCY_CHECKS` each free
    /// is checked first; a bad one is reported (outside the lock) and
    /// skipped.
    ///
    /// # Safety
    ///
    /// As for [`Cache::free`], for each pointer (not null).
    unsafe fn return_batch(&self, objs: &[*mut u8], freed: &mut Detached) {
        let p = self.params();
        let checks = self.flags.contains(CacheFlag::ConsistencyChecks);
        let mut held: Option<FreeRun<'_>> = None;
        for &obj in objs {
            // SAFETY: The caller's promise: not null.
            let obj = unsafe { NonNull::new_unchecked(obj) };
            // SAFETY: Pages rslab owns carry a `Slab` pointer; for others the
            // caller vouches, or (with checks) `of` reads them safely.
            let slab = match unsafe { Slab::of(obj.as_ptr(), p.owner, checks) } {
                Ok(slab) => slab,
                Err(bad) => {
                    self.report_bad_free(bad, obj);
                    continue;
                }
            };
            let nid = if checks {
                // A checked free may race the free of the slab itself (a
                // double free racing the last free): take the node from the
                // page, and follow the slab only once it is confirmed under
                // the lock below.
                // SAFETY: `of` found `obj` in the direct map.
                unsafe { sys::rslab_addr_nid(obj.as_ptr().cast()) }
            } else {
                // SAFETY: `of` found the caller's live slab; its node is fixed.
                unsafe { slab.as_ref() }.node()
            };
            #[cfg(rslab_kunit)]
            crate::cache::tests::race_window(self, obj);
            let run = match &mut held {
                Some(run) if run.nid == nid => run,
                _ => {
                    // The previous node's lock goes before the next is taken.
                    if let Some(mut done) = held.take() {
                        done.settle(self.min_partial, freed.list());
                    }
                    held.insert(FreeRun::new(nid, self.node(nid).lock()))
                }
            };
            if checks {
                // SAFETY: `of` found `obj` in the direct map.
                let confirmed = if unsafe { Slab::holds(slab, obj.as_ptr()) } {
                    // SAFETY: Still published, so live and on this node's
                    // lists, whose lock we hold.
                    unsafe { slab.as_ref() }.check_free(&p, obj.as_ptr())
                } else {
                    // Freed since `of` found it: so was this object.
                    Err(BadFree::DoubleFree)
                };
                if let Err(bad) = confirmed {
                    run.settle(self.min_partial, freed.list());
                    held = None;
                    self.report_bad_free(bad, obj);
                    continue;
                }
            }
            if self.capacity == 0 {
                // A debug cache's free comes straight from its caller, and
                // is known good only now (a sheaf's object was let go of
                // when it was freed to the sheaf).
                sys::kmemleak_free(obj.as_ptr());
            }
            // SAFETY: The slab is on this node's lists, whose lock we hold,
            // and `obj` is allocated in it: the caller's promise, or
            // confirmed above.
            unsafe { run.freeing_to(slab, self.min_partial, freed.list()) };
            // SAFETY: As above; no other reference to the slab is live.
            let s = unsafe { &mut *slab.as_ptr() };
            // SAFETY: `obj` is an allocated object of `s`: the caller's
            // promise, or established by `check_free`.
            if unsafe { s.free(&p, obj) } {
                run.lists.count_freed();
            }
        }
        if let Some(mut done) = held {
            done.settle(self.min_partial, freed.list());
        }
    }

    fn report_bad_free(&self, bad: BadFree, obj: NonNull<u8>) {
        let what = match bad {
            BadFree::ForeignPointer => "free of a pointer not from this cache",
            BadFree::Misaligned => "free of a misaligned pointer",
            BadFree::DoubleFree => "double free",
        };
        debug::report(&self.name, fmt!("{what}"), obj.as_ptr());
    }

    /// Fills `out` with new objects; all or nothing.
    ///
    /// Takes the local lock once for what the sheaf can give. On failure,
    /// frees what it got and returns the error.
    pub fn alloc_bulk(&self, gfp: Flags, out: &mut [*mut u8]) -> Result {
        self.alloc_bulk_raw(sys::gfp_bits(gfp), out)
    }

    /// [`Cache::alloc_bulk`] with raw flags.
    ///
    /// Takes what the sheaf has under one local lock, then the rest from
    /// the node lists (local node first) a batch per node lock, growing the
    /// local node by a slab while no node has a free object, as SLUB's bulk
    /// allocation goes to its slabs once the sheaf is empty. (A
    /// `__GFP_THISNODE` or debug cache's bulk allocation takes one object
    /// at a time, as [`Cache::alloc_raw`].)
    pub(crate) fn alloc_bulk_raw(&self, gfp: bindings::gfp_t, out: &mut [*mut u8]) -> Result {
        sys::might_alloc(|| gfp);
        let mut got = self.take_from_sheaf(out, gfp);
        while got < out.len() {
            // Zeroed below, with the rest.
            let taken = if sys::gfp_thisnode(gfp) || self.capacity == 0 {
                self.alloc_raw(gfp & !bindings::__GFP_ZERO).map(|obj| {
                    out[got] = obj.as_ptr();
                    1
                })
            } else {
                self.take_from_nodes(&mut out[got..], gfp)
            };
            match taken {
                Ok(n) => got += n,
                Err(e) => {
                    // SAFETY: `out[..got]` were just allocated here.
                    unsafe { self.free_bulk(&out[..got]) };
                    return Err(e);
                }
            }
        }
        if gfp & bindings::__GFP_ZERO != 0 || self.init_alloc {
            for &obj in out.iter() {
                // SAFETY: Freshly allocated objects, unshared.
                unsafe { obj.write_bytes(0, self.layout.object_size) };
            }
        }
        Ok(())
    }

    /// Fills `out` as far as the node lists have objects, local node first,
    /// a node lock per node, and hands them out; if no node has one, grows
    /// the local node by a slab (outside every lock) and takes from it.
    /// How many (at least one), or `ENOMEM`.
    fn take_from_nodes(&self, out: &mut [*mut u8], gfp: bindings::gfp_t) -> Result<usize> {
        let local = sys::numa_mem_id();
        loop {
            let mut n = 0;
            for nid in self.nodes_from(local) {
                let taken = self.take_from_node(nid, &mut out[n..]);
                if nid != local {
                    self.events.add(Stat::NodeMismatch, taken as u64);
                }
                n += taken;
                if n == out.len() {
                    break;
                }
            }
            if n > 0 {
                self.events.add(Stat::AllocSlow, n as u64);
                for obj in out[..n].iter().filter_map(|&obj| NonNull::new(obj)) {
                    self.hand_out(obj, || gfp);
                }
                return Ok(n);
            }
            self.grow(gfp, local)
                .inspect_err(|_| self.events.add(Stat::AllocFailed, 1))?;
        }
    }

    /// Fills `out` from this CPU's sheaf, as far as it has objects, under
    /// one local lock, and hands them out; how many.
    fn take_from_sheaf(&self, out: &mut [*mut u8], gfp: bindings::gfp_t) -> usize {
        // SAFETY: The closure copies from the sheaf; it does not enter
        // `cpus` again.
        let n = unsafe {
            self.cpus.with(|sheaf, shared| {
                let n = sheaf.count.min(out.len());
                let taken = sheaf.count - n..sheaf.count;
                out[..n].copy_from_slice(&sheaf.objs[taken.clone()]);
                forget(&mut sheaf.objs[taken]);
                sheaf.count -= n;
                shared.cached.store(sheaf.count, Relaxed);
                shared.counters.add_local(Stat::AllocFast, n as u64);
                n
            })
        };
        for obj in out[..n].iter().filter_map(|&obj| NonNull::new(obj)) {
            self.hand_out(obj, || gfp);
        }
        n
    }

    /// Frees every object of `objs` (null pointers are skipped). Each is
    /// checked and prepared as [`Cache::free`] does, then put on the sheaf
    /// in batches, each under one local lock, the sheaf flushed as it fills
    /// (SLUB's `free_to_pcs_bulk()`); objects of another node go to their
    /// slabs. A debug cache frees each one to its slab.
    ///
    /// # Safety
    ///
    /// As for [`Cache::free`], for each object.
    pub unsafe fn free_bulk(&self, objs: &[*mut u8]) {
        let objs = objs.iter().filter_map(|&obj| NonNull::new(obj));
        if self.capacity == 0 {
            // SAFETY: The caller's promise, for each.
            objs.for_each(|obj| unsafe { self.free(obj) });
            return;
        }
        let mut batch = [(core::ptr::null_mut(), None); FREE_BATCH];
        let mut n = 0;
        for obj in objs {
            // SAFETY: The caller's promise, passed on.
            let Ok(obj) = (unsafe { self.free_prepare(obj, true) }) else {
                continue;
            };
            batch[n] = (obj.as_ptr(), self.sheaf_node(obj));
            n += 1;
            if n == FREE_BATCH {
                // SAFETY: Prepared objects of this cache, freed once.
                unsafe { self.free_batch(&batch[..n]) };
                n = 0;
            }
        }
        // SAFETY: As above.
        unsafe { self.free_batch(&batch[..n]) };
    }

    /// Puts `objs`, prepared frees with their nodes (see
    /// [`Cache::sheaf_node`]), on this CPU's sheaf under one local lock;
    /// what does not fit goes, in one go, to the local node's depot and
    /// the rest to its slabs ([`Cache::spill`]), as SLUB puts a full sheaf
    /// in its barn, rather than flushing half a sheaf at a time. Those of
    /// another node than the CPU's go to their slabs after.
    ///
    /// # Safety
    ///
    /// Each object is one of this cache's, freed and prepared
    /// ([`Cache::free_prepare`]), not used again.
    unsafe fn free_batch(&self, objs: &[(*mut u8, Option<i32>)]) {
        if objs.is_empty() {
            return;
        }
        let mut remote = [core::ptr::null_mut(); FREE_BATCH];
        let mut overflow = [core::ptr::null_mut(); FREE_BATCH];
        // SAFETY: The closure pushes onto the sheaf, never entering `cpus`
        // again.
        let (local, n_remote, n_overflow) = unsafe {
            self.cpus.with(|sheaf, shared| {
                let local = sys::numa_mem_id();
                let (mut n_remote, mut n_overflow, mut pushed) = (0, 0, 0);
                for &(obj, nid) in objs {
                    if nid.is_some_and(|nid| nid != local) {
                        remote[n_remote] = obj;
                        n_remote += 1;
                    } else if sheaf.count < self.capacity {
                        sheaf.objs[Sheaf::slot(sheaf.count)] = obj;
                        sheaf.count += 1;
                        pushed += 1;
                    } else {
                        overflow[n_overflow] = obj;
                        n_overflow += 1;
                    }
                }
                shared.cached.store(sheaf.count, Relaxed);
                shared.counters.add_local(Stat::FreeFast, pushed);
                (local, n_remote, n_overflow)
            })
        };
        // SAFETY: Prepared objects of node `local` (the CPU's then), on no
        // sheaf: the caller's promise.
        unsafe { self.spill(local, &overflow[..n_overflow]) };
        for &obj in &remote[..n_remote] {
            self.events.add(Stat::NodeMismatch, 1);
            // SAFETY: The caller's promise; not null (prepared objects).
            unsafe { self.free_to_slab(NonNull::new_unchecked(obj)) };
        }
    }

    /// Returns this CPU's sheaf and every empty slab to the page allocator;
    /// returns the number of slabs freed.
    ///
    /// Other CPUs' sheaves are flushed too, by running on each CPU.
    pub fn shrink(&self) -> usize {
        let flush = || {
            // SAFETY: `flush` takes node locks only, never `cpus`.
            unsafe {
                self.cpus
                    .with(|sheaf, shared| self.flush(sheaf, shared, usize::MAX, false))
            }
        };
        // Shrinking is advisory, as `kmem_cache_shrink()`: without memory
        // for the per-CPU work, flush only this CPU's sheaf.
        if crate::cache::percpu::on_each_cpu(&flush).is_err() {
            flush();
        }
        let mut freed = Detached::new();
        self.drain_quarantine(&mut freed);
        self.drain_depots(&mut freed);
        for node in self.nodes.iter() {
            node.lock().take_empty(0, freed.list());
        }
        let n = freed.free();
        self.events.add(Stat::SlabFreed, n as u64);
        n
    }

    /// What the shrinker may give back: parked objects and the objects of
    /// empty slabs. A lockless estimate is not kept: this takes each node
    /// lock briefly, as reclaim calls it rarely.
    pub(crate) fn reclaimable(&self) -> usize {
        let per_slab = self.layout.objects(self.layout.order) as usize;
        self.nodes
            .iter()
            .map(|node| {
                let lists = node.lists.lock();
                lists.depot_len() + lists.counts().2 * per_slab
            })
            .sum::<usize>()
            + self.quarantine.len()
    }

    /// Memory pressure: returns every parked (and quarantined) object to its
    /// slab and frees every empty slab, the `min_partial` ones included
    /// (reclaim wants the pages now). Sheaves are left as they are (see
    /// `crate::cache::shrinker`). Returns the objects' worth of memory freed: the
    /// parked objects and the objects of the slabs freed. `_nr`, reclaim's
    /// batch, is not needed: the work is bounded by what the cache holds,
    /// not by it.
    pub(crate) fn reclaim(&self, _nr: usize) -> usize {
        let per_slab = self.layout.objects(self.layout.order) as usize;
        let mut freed = Detached::new();
        let parked = self.drain_quarantine(&mut freed) + self.drain_depots(&mut freed);
        for node in self.nodes.iter() {
            node.lock().take_empty(0, freed.list());
        }
        let slabs = freed.free();
        self.events.add(Stat::SlabFreed, slabs as u64);
        parked + slabs * per_slab
    }

    /// Frees every quarantined object for real, straight to its slab, a
    /// bounded batch at a time (no allocation, so it cannot fail); returns
    /// how many. Nothing without KASAN.
    fn drain_quarantine(&self, freed: &mut Detached) -> usize {
        let mut batch = [core::ptr::null_mut(); 64];
        let mut drained = 0;
        loop {
            let n = self.quarantine.take(&mut batch);
            if n == 0 {
                return drained;
            }
            drained += n;
            // SAFETY: Quarantined objects are freed objects of this cache,
            // still allocated in their slabs, that only the quarantine held.
            unsafe { self.return_batch(&batch[..n], freed) };
        }
    }

    /// Returns every parked object to its slab, a bounded batch at a time
    /// (no allocation, so it cannot fail), moving surplus empty slabs to
    /// `freed`; returns how many objects it returned.
    fn drain_depots(&self, freed: &mut Detached) -> usize {
        let mut batch = [core::ptr::null_mut(); 64];
        let mut drained = 0;
        for node in self.nodes.iter() {
            loop {
                let n = node.lock().depot_take(&mut batch);
                if n == 0 {
                    break;
                }
                drained += n;
                // SAFETY: Parked objects are allocated-in-slab objects of
                // this cache that only the depot held, and it let them go.
                unsafe { self.return_batch(&batch[..n], freed) };
            }
        }
        drained
    }

    /// Whether every node's in-use counter equals a walk of its slabs.
    #[cfg(rslab_kunit)]
    pub(crate) fn inuse_counters_match(&self) -> bool {
        self.nodes.iter().all(|node| {
            let lists = node.lists.lock();
            lists.inuse() == lists.inuse_walked()
        })
    }

    /// Whether every object parked in a node's depot is of that node.
    #[cfg(rslab_kunit)]
    pub(crate) fn depots_hold_local_objects(&self) -> bool {
        self.nodes.iter().enumerate().all(|(nid, node)| {
            node.lists.lock().depot().iter().all(|&obj| {
                // SAFETY: A parked object: in the direct map.
                let on = unsafe { sys::rslab_addr_nid(obj.cast()) };
                on == nid as i32
            })
        })
    }

    /// A snapshot of the cache's numbers, from counters: each node lock is
    /// held for a few loads, never for a walk of the slabs (interrupts are
    /// off under it).
    pub fn stats(&self) -> CacheStats {
        let mut st = CacheStats {
            objsize: self.layout.object_size,
            objperslab: self.layout.objects(self.layout.order) as usize,
            pagesperslab: 1 << self.layout.order,
            ..CacheStats::default()
        };
        let mut inuse = 0;
        for node in self.nodes.iter() {
            let lists = node.lists.lock();
            let (partial, full, empty) = lists.counts();
            st.partial_slabs += partial;
            st.empty_slabs += empty;
            st.active_slabs += partial + full;
            st.num_slabs += partial + full + empty;
            st.num_objs += lists.total_objects;
            st.pages += lists.pages;
            st.node_locks += lists.locked;
            st.cached_objs += lists.depot_len();
            st.depot_objs += lists.depot_len();
            inuse += lists.inuse();
        }
        st.quarantined_objs = self.quarantine.len();
        st.cached_objs += st.quarantined_objs;
        self.events.add_to(&mut st.events);
        for cpu in 0..kernel::cpu::nr_cpu_ids() {
            if let Some(shared) = self.cpus.shared(cpu) {
                shared.counters.add_to(&mut st.events);
                st.cached_objs += shared.cached.load(Relaxed);
            }
        }
        // Sheaf and depot objects count as allocated in their slabs but are
        // free.
        st.active_objs = inuse.saturating_sub(st.cached_objs);
        st
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.teardown();
    }
}

impl Cache {
    /// Flushes every sheaf, reports objects still allocated, returns every
    /// empty slab's pages and leaks the slabs still in use; the number of
    /// leaked objects. A second call finds nothing.
    fn teardown(&mut self) -> usize {
        #[cfg(rslab_kunit)]
        live::remove(self);
        // First, so that no dead CPU's flush and no reclaim runs during the
        // rest.
        self.shrinker.unregister();
        self.cpuhp.remove();
        // The static key counts this cache while its histograms are on.
        self.latency.set(false);
        // Every sheaf straight back to its slabs: nothing is allocated here,
        // so nothing can fail and count a free object as leaked.
        for cpu in (0..kernel::cpu::nr_cpu_ids()).filter(|&cpu| sys::cpu_possible(cpu)) {
            // SAFETY: `&mut self`: no CPU can be using the cache any more.
            unsafe {
                self.cpus.with_unused(cpu, |sheaf, shared| {
                    self.flush(sheaf, shared, usize::MAX, false)
                })
            };
        }
        let mut freed = Detached::new();
        // The quarantine's and the depots' objects are free too.
        self.drain_quarantine(&mut freed);
        self.drain_depots(&mut freed);
        let mut all = Detached::new();
        let mut leaked = 0;
        for node in self.nodes.iter() {
            leaked += node.lock().take_all(all.list());
        }
        if leaked > 0 {
            let what = fmt!("{leaked} objects still allocated at destroy");
            debug::report(&self.name, what, core::ptr::null());
        }
        all.free();
        leaked
    }
}
