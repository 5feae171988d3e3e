// SPDX-License-Identifier: GPL-2.0

//! The C primitives of `rslab_helpers.c`, and the kernel globals rslab reads.
//!
//! Linux 7.3's kernel crate has no per-CPU, local-lock or higher-order page
//! abstraction, so rslab links a tiny C object that wraps each primitive in a
//! function (see the comments there). This file declares them and wraps the
//! ones that are safe to call with any argument in safe functions; the rest
//! stay `unsafe`, for the layers that own what they touch (see "Where the
//! unsafe code is" in `Documentation/rslab.rst`).

use core::ffi::c_void;
use kernel::alloc::Flags;
use kernel::bindings;

/// The start of an rslab debugfs file: its callbacks, which the C side
/// calls with the file (see `crate::debugfs::file`).
#[repr(C)]
pub(crate) struct DfsOps {
    pub(crate) show: Option<unsafe extern "C" fn(*mut bindings::seq_file, *const DfsOps) -> i32>,
    pub(crate) store: Option<unsafe extern "C" fn(*const DfsOps, *const c_void, usize) -> isize>,
}

/// What `rslab_pcpu_lock()` returns (`struct rslab_pcpu_locked`): this
/// CPU's data and the interrupt flags its unlock restores.
#[repr(C)]
pub(crate) struct PcpuLocked {
    pub(crate) data: *mut c_void,
    pub(crate) flags: usize,
}

// A `struct dentry` is opaque here (`*mut c_void`): rslab never looks inside.
extern "C" {
    pub(crate) fn rslab_dfs_file(
        name: *const kernel::ffi::c_char,
        mode: u16,
        parent: *mut c_void,
        file: *const DfsOps,
    ) -> *mut c_void;
    pub(crate) fn rslab_dfs_dir(
        name: *const kernel::ffi::c_char,
        parent: *mut c_void,
    ) -> *mut c_void;
    pub(crate) fn rslab_dfs_remove(dentry: *mut c_void);
    pub(crate) fn rslab_cpuhp_setup(
        dead: unsafe extern "C" fn(cpu: u32, node: *mut bindings::hlist_node) -> i32,
    ) -> i32;
    pub(crate) fn rslab_cpuhp_remove(state: i32);
    pub(crate) fn rslab_cpuhp_add(state: i32, node: *mut bindings::hlist_node) -> i32;
    pub(crate) fn rslab_cpuhp_del(state: i32, node: *mut bindings::hlist_node);
    fn rslab_report_ratelimit() -> bool;
    fn rslab_report_stack();
    fn rslab_report_taint();
    pub(crate) fn rslab_pcpu_alloc(size: usize) -> *mut c_void;
    pub(crate) fn rslab_pcpu_free(p: *mut c_void);
    pub(crate) fn rslab_pcpu_lock(p: *mut c_void) -> PcpuLocked;
    pub(crate) fn rslab_pcpu_unlock(p: *mut c_void, flags: usize);
    pub(crate) fn rslab_pcpu_ptr(p: *mut c_void, cpu: u32) -> *mut c_void;
    fn rslab_cpu_possible(cpu: u32) -> bool;
    fn rslab_num_present_cpus() -> u32;
    fn rslab_numa_mem_id() -> i32;
    pub(crate) fn rslab_pages_alloc(nid: i32, gfp: bindings::gfp_t, order: u32) -> *mut c_void;
    pub(crate) fn rslab_pages_free(addr: *mut c_void, order: u32);
    pub(crate) fn rslab_kmemleak_not_leak(ptr: *const c_void);
    fn rslab_kmemleak_alloc(ptr: *const c_void, size: usize, gfp: bindings::gfp_t);
    fn rslab_kmemleak_free(ptr: *const c_void);
    fn rslab_kmemleak_ignore(ptr: *const c_void);
    fn rslab_gfp_opportunistic(gfp: bindings::gfp_t) -> bindings::gfp_t;
    fn rslab_gfp_try_node(gfp: bindings::gfp_t) -> bindings::gfp_t;
    fn rslab_gfp_user(nowait: bool) -> bindings::gfp_t;
    fn rslab_node_has_memory(nid: i32) -> bool;
    pub(crate) fn rslab_account_slab(addr: *mut c_void, order: u32, sign: i32);
    fn rslab_might_alloc(gfp: bindings::gfp_t);
    fn rslab_init_on_alloc() -> bool;
    fn rslab_init_on_free() -> bool;
    #[cfg(rslab_kunit)]
    fn rslab_kunit_skip(why: *const kernel::ffi::c_char);
    fn rslab_gfp_high(gfp: bindings::gfp_t) -> bool;
    fn rslab_gfp_slab_bug(gfp: bindings::gfp_t) -> bindings::gfp_t;
    fn rslab_gfp_scope_enter(gfp: bindings::gfp_t) -> u32;
    fn rslab_gfp_scope_exit(cookie: u32);
    fn rslab_gfp_allows_blocking(gfp: bindings::gfp_t) -> bool;
    pub(crate) fn rslab_page_private(obj: *const c_void) -> *mut c_void;
    pub(crate) fn rslab_set_page_private(addr: *mut c_void, meta: *mut c_void);
    pub(crate) fn rslab_set_page_tag(addr: *mut c_void, tag: usize);
    fn rslab_page_tag(obj: *const c_void) -> usize;
    fn rslab_linear_page_tag(obj: *const c_void) -> usize;
    pub(crate) fn rslab_addr_nid(obj: *const c_void) -> i32;
    pub(crate) fn rslab_head_address(obj: *const c_void) -> *mut c_void;
    pub(crate) fn rslab_on_each_cpu(f: extern "C" fn(*mut c_void), info: *mut c_void) -> i32;
    pub(crate) fn rslab_waitq_init(wq: *mut bindings::wait_queue_head);
    pub(crate) fn rslab_waitq_prepare(
        wq: *mut bindings::wait_queue_head,
        entry: *mut bindings::wait_queue_entry,
        killable: bool,
    );
    fn rslab_fatal_signal_pending() -> bool;
    pub(crate) fn rslab_waitq_sleep(
        wq: *mut bindings::wait_queue_head,
        entry: *mut bindings::wait_queue_entry,
        ms: u32,
    ) -> bool;
    pub(crate) fn rslab_waitq_wake(wq: *mut bindings::wait_queue_head);
}

/// Whether the caller is a KUnit test (whose reports are counted, not
/// printed): rslab_kunit.ko's tests provoke reports on purpose.
#[cfg(rslab_kunit)]
pub(crate) fn report_in_kunit() -> bool {
    extern "C" {
        fn rslab_report_in_kunit() -> bool;
    }
    // SAFETY: Reads `current`; callable in any context.
    unsafe { rslab_report_in_kunit() }
}

/// Whether a report may be printed now (the rate limit of all reports).
pub(crate) fn report_ratelimit() -> bool {
    // SAFETY: `__ratelimit` on the helper's own state; any context.
    unsafe { rslab_report_ratelimit() }
}

/// Dumps the caller's stack into the kernel log.
pub(crate) fn report_stack() {
    // SAFETY: `dump_stack` may be called in any context.
    unsafe { rslab_report_stack() }
}

/// Taints the kernel `TAINT_BAD_PAGE`, as SLUB does after a report.
pub(crate) fn report_taint() {
    // SAFETY: `add_taint` may be called in any context.
    unsafe { rslab_report_taint() }
}

/// The size of a page.
pub(crate) const PAGE_SIZE: usize = bindings::PAGE_SIZE;

/// Whether `cpu` is a possible CPU.
pub(crate) fn cpu_possible(cpu: u32) -> bool {
    // SAFETY: Reads the possible-CPU mask; valid for any `cpu`.
    unsafe { rslab_cpu_possible(cpu) }
}

/// The number of present CPUs, which SLUB's order calculation uses.
pub(crate) fn num_present_cpus() -> u32 {
    // SAFETY: Reads a cpumask weight; no preconditions.
    unsafe { rslab_num_present_cpus() }
}

/// The number of possible NUMA node ids (`nr_node_ids`).
pub(crate) fn nr_node_ids() -> u32 {
    // SAFETY: `nr_node_ids` is set during boot and never written again.
    unsafe { bindings::nr_node_ids }
}

/// The node whose memory the current CPU should use.
pub(crate) fn numa_mem_id() -> i32 {
    // SAFETY: Reads a per-CPU variable; a stale answer after migration is
    // only a missed locality hint.
    unsafe { rslab_numa_mem_id() }
}

/// The raw `gfp_t` of `flags`.
///
/// The kernel crate keeps `Flags`' bits private, but every `Flags` value is a
/// union of its public constants, so the bits are recovered from those.
pub(crate) fn gfp_bits(flags: Flags) -> bindings::gfp_t {
    use kernel::alloc::flags::*;
    [
        (GFP_KERNEL_ACCOUNT, bindings::GFP_KERNEL_ACCOUNT),
        (GFP_KERNEL, bindings::GFP_KERNEL),
        (GFP_ATOMIC, bindings::GFP_ATOMIC),
        (GFP_NOWAIT, bindings::GFP_NOWAIT),
        (__GFP_ZERO, bindings::__GFP_ZERO),
        (__GFP_HIGHMEM, bindings::__GFP_HIGHMEM),
        (__GFP_NOWARN, bindings::__GFP_NOWARN),
    ]
    .iter()
    .filter(|(f, _)| flags.contains(*f))
    .fold(0, |bits, (_, b)| bits | b)
}

/// `gfp` made cheap to refuse, for an attempt at a higher order than needed.
pub(crate) fn gfp_opportunistic(gfp: bindings::gfp_t) -> bindings::gfp_t {
    // SAFETY: Pure computation on the flags.
    unsafe { rslab_gfp_opportunistic(gfp) }
}

/// The flags for what user space makes: charged to its memory cgroup, and
/// `ENOMEM` rather than the OOM killer or a warning; `nowait`: no sleep.
pub(crate) fn gfp_user(nowait: bool) -> bindings::gfp_t {
    // SAFETY: Pure computation on constants.
    unsafe { rslab_gfp_user(nowait) }
}

/// `gfp` for a first, cheap try at a new slab on a preferred node only.
pub(crate) fn gfp_try_node(gfp: bindings::gfp_t) -> bindings::gfp_t {
    // SAFETY: Pure computation on the flags.
    unsafe { rslab_gfp_try_node(gfp) }
}

/// `__GFP_THISNODE`, a macro bindgen cannot see: `BIT(___GFP_THISNODE_BIT)`.
pub(crate) const GFP_THISNODE: bindings::gfp_t = gfp_bit(bindings::___GFP_THISNODE_BIT);

/// Whether `gfp` holds `__GFP_THISNODE`: the node's memory or nothing.
pub(crate) fn gfp_thisnode(gfp: bindings::gfp_t) -> bool {
    gfp & GFP_THISNODE != 0
}

/// `might_alloc(gfp)`: on kernels with lockdep or the sleep checker, an
/// allocation that may reclaim or sleep is judged on every call, not only
/// when it reaches the page allocator (a `GFP_KERNEL` call in atomic
/// context is reported the first time). Nothing on other kernels.
#[inline(always)]
pub(crate) fn might_alloc(gfp: impl FnOnce() -> bindings::gfp_t) {
    if cfg!(any(CONFIG_LOCKDEP, CONFIG_DEBUG_ATOMIC_SLEEP)) {
        // SAFETY: Checks `current`'s context against the flags.
        unsafe { rslab_might_alloc(gfp()) }
    }
}

/// What the kernel's debugging tools add to each object rslab or the
/// kernel allocates, at most, for quotas: kmemleak's record of it (a
/// `kmemleak_object`, about 300 bytes with lockdep, in a KASAN-padded
/// slot) and KASAN's red zone and metadata around a kmalloc object. 0 on
/// a kernel without either.
pub(crate) const TRACKING_BYTES: usize = if cfg!(CONFIG_DEBUG_KMEMLEAK) { 512 } else { 0 }
    + if cfg!(CONFIG_KASAN_GENERIC) { 128 } else { 0 };

/// kmemleak: the `size`-byte object at `obj` is handed out (`gfp` for
/// kmemleak's own record); it is scanned, and reported if it leaks.
/// Nothing without `CONFIG_DEBUG_KMEMLEAK`.
#[inline(always)]
pub(crate) fn kmemleak_alloc(obj: *const u8, size: usize, gfp: impl FnOnce() -> bindings::gfp_t) {
    if cfg!(CONFIG_DEBUG_KMEMLEAK) {
        // SAFETY: Records the range; kmemleak reads it only while it is
        // registered, and rslab unregisters it before the slot is reused.
        unsafe { rslab_kmemleak_alloc(obj.cast(), size, gfp()) }
    }
}

/// kmemleak: the object at `obj`, registered by [`kmemleak_alloc`], is
/// freed. Nothing without `CONFIG_DEBUG_KMEMLEAK`.
#[inline(always)]
pub(crate) fn kmemleak_free(obj: *const u8) {
    if cfg!(CONFIG_DEBUG_KMEMLEAK) {
        // SAFETY: `obj` was registered when it was handed out.
        unsafe { rslab_kmemleak_free(obj.cast()) }
    }
}

/// kmemleak: the kmalloc memory at `ptr` is neither scanned nor reported.
pub(crate) fn kmemleak_ignore(ptr: *const u8) {
    if cfg!(CONFIG_DEBUG_KMEMLEAK) {
        // SAFETY: Any pointer is accepted; an unknown one is ignored.
        unsafe { rslab_kmemleak_ignore(ptr.cast()) }
    }
}

/// Whether the `init_on_alloc` boot parameter is on: allocations zeroed.
pub(crate) fn init_on_alloc() -> bool {
    // SAFETY: Reads a static key.
    unsafe { rslab_init_on_alloc() }
}

/// Whether the `init_on_free` boot parameter is on: frees zeroed.
pub(crate) fn init_on_free() -> bool {
    // SAFETY: Reads a static key.
    unsafe { rslab_init_on_free() }
}

/// `struct rslab_static_keys`: the module's static keys (defined in C,
/// as the kernel crate's `static_branch_unlikely!` requires).
#[repr(C)]
pub(crate) struct StaticKeys {
    latency: bindings::static_key_false,
}

extern "C" {
    static rslab_keys: StaticKeys;
    fn rslab_latency_switch(on: *mut bool, want: bool) -> bool;
    fn rslab_local_clock() -> u64;
}

/// Whether any cache has its latency histograms on. A static key: while
/// none has, a no-op that is patched into a jump when one turns them on.
#[inline(always)]
pub(crate) fn latency_key() -> bool {
    // SAFETY: `rslab_keys` is a real static key, defined by C
    // (`rslab_helpers.c`).
    unsafe { kernel::jump_label::static_branch_unlikely!(rslab_keys, StaticKeys, latency) }
}

/// Turns the latency histograms of the cache whose flag is `on` on or off
/// (to `want`), counting it in [`latency_key`]; whether that changed the
/// flag. Serialised, so that the key's count stays that of the caches
/// whose flag is set. May sleep.
pub(crate) fn latency_switch(on: &core::sync::atomic::AtomicBool, want: bool) -> bool {
    // SAFETY: `on` is a valid `bool`; the C side reads and writes it with
    // `READ_ONCE`/`WRITE_ONCE`, atomic like the `AtomicBool`'s accesses.
    unsafe { rslab_latency_switch(on.as_ptr(), want) }
}

/// The CPU's clock in nanoseconds (`local_clock()`): cheap, and monotonic
/// on one CPU, for the short intervals of the latency histograms.
pub(crate) fn local_clock() -> u64 {
    // SAFETY: Reads the clock; no argument.
    unsafe { rslab_local_clock() }
}

/// The kernel's "no node in particular".
pub(crate) const NUMA_NO_NODE: i32 = bindings::NUMA_NO_NODE;

/// Whether `nid` is a node with memory (any other value is not).
pub(crate) fn node_has_memory(nid: i32) -> bool {
    // SAFETY: Any value is accepted and range-checked.
    unsafe { rslab_node_has_memory(nid) }
}

/// Marks the running KUnit case skipped, with `why`.
#[cfg(rslab_kunit)]
pub(crate) fn kunit_skip(why: &kernel::str::CStr) {
    // SAFETY: `why` is a NUL-terminated string that outlives the call.
    unsafe { rslab_kunit_skip(kernel::str::CStrExt::as_char_ptr(why)) }
}

/// Whether the current task has a fatal signal pending.
pub(crate) fn fatal_signal_pending() -> bool {
    // SAFETY: Reads `current`'s pending signals.
    unsafe { rslab_fatal_signal_pending() }
}

/// `mempool_alloc()`'s flags for every backend attempt
/// (`mempool_adjust_gfp()`).
pub(crate) fn gfp_mempool_adjust(gfp: bindings::gfp_t) -> bindings::gfp_t {
    // In Rust (bits from their `___GFP_*_BIT` numbers, as the C macros
    // define them): a call into C on every pool allocation cost the mempool
    // rows of `make bench` 2%.
    gfp | gfp_bit(bindings::___GFP_NOMEMALLOC_BIT)
        | gfp_bit(bindings::___GFP_NORETRY_BIT)
        | gfp_bit(bindings::___GFP_NOWARN_BIT)
}

/// `BIT(n)` for a `___GFP_*_BIT` number.
const fn gfp_bit(n: u32) -> bindings::gfp_t {
    1 << n
}

/// `mempool_alloc()`'s flags for its first, cheap backend attempt.
pub(crate) fn gfp_mempool_first(gfp: bindings::gfp_t) -> bindings::gfp_t {
    gfp_mempool_adjust(gfp)
        & !(gfp_bit(bindings::___GFP_DIRECT_RECLAIM_BIT) | gfp_bit(bindings::___GFP_IO_BIT))
}

/// Whether an allocation with raw flags `gfp` may sleep.
pub(crate) fn gfp_allows_blocking(gfp: bindings::gfp_t) -> bool {
    // SAFETY: Pure computation on the flags.
    unsafe { rslab_gfp_allows_blocking(gfp) }
}

/// The flags for rslab's own metadata, allocated on behalf of a caller
/// whose raw flags are `gfp`: blocking only if the caller may block, and
/// charged to the memory cgroup if the caller's memory is.
pub(crate) fn metadata_flags(gfp: bindings::gfp_t) -> Flags {
    use kernel::alloc::flags::*;
    if gfp_allows_blocking(gfp) {
        // A NOIO or NOFS caller's restriction comes from its `GfpScope`.
        if gfp & gfp_bit(bindings::___GFP_ACCOUNT_BIT) != 0 {
            GFP_KERNEL_ACCOUNT | __GFP_NOWARN
        } else {
            GFP_KERNEL | __GFP_NOWARN
        }
    // SAFETY: Pure computation on the flags.
    } else if unsafe { rslab_gfp_high(gfp) } {
        GFP_ATOMIC | __GFP_NOWARN
    } else {
        GFP_NOWAIT | __GFP_NOWARN
    }
}

/// Whether every free checks that its pointer is in one of the cache's
/// slabs, the sheaf's fast path included: on kernels built for it
/// (`CONFIG_SLAB_FREELIST_HARDENED`, where SLUB checks as much) and on
/// sanitizer kernels (`CONFIG_KASAN`, the debug flavour). Elsewhere debug
/// caches (poison, red zone or consistency checks) still check every free,
/// as SLUB's debug caches do, and kmalloc always reads the page's tag (it
/// finds the class by it; see [`kmalloc_page_tag`]).
pub(crate) const CHECK_FREES: bool = cfg!(any(CONFIG_SLAB_FREELIST_HARDENED, CONFIG_KASAN));

/// The tag of the pages holding `obj` (see `rslab_set_page_tag()`): a
/// cache's or large kmalloc's tag for rslab's own pages, anything else for
/// other memory in the direct map, 0 outside it.
pub(crate) fn page_tag(obj: *const u8) -> usize {
    // SAFETY: Any address is accepted; `virt_addr_valid()` is checked
    // before its `struct page` is read.
    unsafe { rslab_page_tag(obj.cast()) }
}

/// [`page_tag`] for a kmalloc free: where frees are checked
/// ([`CHECK_FREES`]) the same; elsewhere the pointer is only bounded to
/// the linear map, as the cache's fast path checks nothing there (SLUB's
/// `kfree()` reads the page of any pointer).
///
/// # Safety
///
/// Without [`CHECK_FREES`], `obj` must not point into a hole of the linear
/// map (memory with no `struct page`); any address outside the linear map
/// is accepted.
pub(crate) unsafe fn kmalloc_page_tag(obj: *const u8) -> usize {
    if CHECK_FREES {
        return page_tag(obj);
    }
    // SAFETY: Outside the linear map the helper reads nothing; inside it,
    // the caller's promise: `obj` has a `struct page`.
    unsafe { rslab_linear_page_tag(obj.cast()) }
}

/// The bits of `gfp` a slab allocation must never be asked for
/// (`GFP_SLAB_BUG_MASK`: highmem, DMA32, unknown bits); 0 if none.
pub(crate) fn gfp_slab_bug(gfp: bindings::gfp_t) -> bindings::gfp_t {
    // SAFETY: Pure computation on the flags.
    unsafe { rslab_gfp_slab_bug(gfp) }
}

/// An allocation scope with `gfp`'s I/O and filesystem restrictions
/// (`memalloc_noio_save()`/`memalloc_nofs_save()`), so that what rslab
/// allocates with the kernel crate's `GFP_KERNEL` for a `GFP_NOIO` or
/// `GFP_NOFS` caller keeps them; ends on drop.
pub(crate) struct GfpScope(u32, core::marker::PhantomData<*mut ()>);

impl GfpScope {
    /// Enters the scope `gfp` asks for (none if it allows both).
    pub(crate) fn enter(gfp: bindings::gfp_t) -> Self {
        // SAFETY: Sets flags of `current`; the drop below ends the scope on
        // the same task.
        Self(
            unsafe { rslab_gfp_scope_enter(gfp) },
            core::marker::PhantomData,
        )
    }
}

impl Drop for GfpScope {
    fn drop(&mut self) {
        // SAFETY: The cookie of the `enter` that made this value, on the
        // task that made it (the raw-pointer marker keeps it from being
        // `Send`).
        unsafe { rslab_gfp_scope_exit(self.0) };
    }
}

/// A random 64-bit value, for the free-pointer key.
pub(crate) fn random_u64() -> u64 {
    // SAFETY: No preconditions; the RNG is usable once modules load.
    unsafe { bindings::get_random_u64() }
}

/// A random 32-bit value, for percentage fault injection.
pub(crate) fn random_u32() -> u32 {
    // SAFETY: No preconditions.
    unsafe { bindings::get_random_u32() }
}
