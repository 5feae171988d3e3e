// SPDX-License-Identifier: GPL-2.0

//! A memory pool with mm/mempool.c's forward-progress guarantee.
//!
//! A pool keeps `min_nr` elements in reserve. [`Mempool::alloc`] first tries
//! the backend cheaply (no direct reclaim, no I/O, no emergency reserves, no
//! retries, no warning); if that fails it takes a reserved element; if the
//! reserve is empty it retries the backend with the caller's own flags; and
//! if that fails too, a caller that may sleep waits for an element to be
//! freed, retrying every 5 seconds as `mempool_alloc()` does, while one that
//! may not fails at once. [`Mempool::free`] refills the reserve before
//! anything goes back to the backend, and wakes the waiters
//! (they all retry, as in mempool.c).
//!
//! Differences from mm/mempool.c: `__GFP_ZERO` is refused with `EINVAL`
//! (mempool.c only warns; a reserved element is never zeroed); the pool
//! counts outstanding elements, so destroying it reports any not returned;
//! and every step is counted (see [`PoolStats`]).

#[cfg(rslab_kunit)]
mod tests;

use crate::cache::fault::FaultInject;
use crate::cache::Cache;
use crate::kmalloc::Kmalloc;
use crate::page::Pages;
use crate::sys;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use kernel::alloc::{Flags, KVVec};
use kernel::bindings;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::lock::spinlock::SpinLockIrqGuard;
use kernel::sync::{Arc, SpinLockIrq};
use kernel::types::Opaque;

/// How long a waiting allocation sleeps before it retries the backend.
const RETRY_MS: u32 = 5000;

/// Where a pool's elements come from.
pub enum Backend {
    /// Objects of an rslab cache.
    Cache(Arc<Cache>),
    /// `size`-byte allocations of an rslab kmalloc.
    Kmalloc(Arc<Kmalloc>, usize),
    /// 2^order contiguous pages, with fault injection of their own.
    Pages(u32, FaultInject),
}

impl Backend {
    /// A pages backend of `order`.
    pub fn pages(order: u32) -> Self {
        Backend::Pages(order, FaultInject::default())
    }

    /// The backend's name, as the `pools` table shows it.
    fn describe(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        match self {
            Backend::Cache(c) => write!(f, "cache:{}", c.name().to_str().unwrap_or("?")),
            Backend::Kmalloc(_, size) => write!(f, "kmalloc:{size}"),
            Backend::Pages(order, _) => write!(f, "pages:{order}"),
        }
    }

    /// The size of one element.
    pub fn element_size(&self) -> usize {
        match self {
            Backend::Cache(c) => c.layout().object_size,
            Backend::Kmalloc(_, size) => *size,
            Backend::Pages(order, _) => crate::cache::layout::slab_bytes(*order),
        }
    }

    /// The most memory one element pins: its object in the backend, all
    /// overheads counted (see [`Cache::object_footprint`]), or its pages.
    pub fn footprint(&self) -> usize {
        match self {
            Backend::Cache(c) => c.object_footprint(),
            Backend::Kmalloc(km, size) => km.footprint(*size),
            Backend::Pages(order, _) => crate::cache::layout::slab_bytes(*order),
        }
    }

    /// The fault-injection knobs that make this backend fail.
    pub fn fault(&self) -> &FaultInject {
        match self {
            Backend::Cache(c) => c.fault(),
            Backend::Kmalloc(km, size) => km.fault_for(*size),
            Backend::Pages(_, fault) => fault,
        }
    }

    fn alloc(&self, gfp: bindings::gfp_t) -> Result<NonNull<u8>> {
        match self {
            Backend::Cache(c) => c.alloc_raw(gfp),
            Backend::Kmalloc(km, size) => km.alloc_raw(*size, gfp),
            Backend::Pages(order, fault) => {
                if fault.should_fail() {
                    return Err(ENOMEM);
                }
                let pages = Pages::alloc(sys::numa_mem_id(), gfp, *order).ok_or(ENOMEM)?;
                // The element owns them: `free` takes them back.
                Ok(pages.into_raw())
            }
        }
    }

    /// # Safety
    ///
    /// `element` must have come from [`Backend::alloc`] on this backend and
    /// not be used again.
    unsafe fn free(&self, element: NonNull<u8>) {
        // A reserve element is poisoned while it waits (see `Reserve`).
        if cfg!(CONFIG_KASAN_GENERIC) {
            crate::cache::kasan::unpoison(element.as_ptr(), self.element_size());
        }
        match self {
            // SAFETY: The caller's promise.
            Backend::Cache(c) => unsafe { c.free(element) },
            // SAFETY: The caller's promise.
            Backend::Kmalloc(km, _) => unsafe { km.free(element) },
            // SAFETY: The caller's promise: pages of this order that
            // `alloc` gave up; taken back once.
            Backend::Pages(order, _) => drop(unsafe { Pages::from_raw(element, *order) }),
        }
    }
}

/// The reserve: up to `min_nr` elements, in a vector that never grows while
/// the lock is held (its capacity is at least [`capacity`]`(min_nr)`).
struct Reserve {
    elements: KVVec<NonNull<u8>>,
    min_nr: usize,
}

/// Elements wait in the reserve poisoned as freed, so that KASAN reports
/// a use of one (as SLUB's `kasan_mempool_poison_object()`); they are
/// unpoisoned as they leave it, to a caller or to the backend.
impl Reserve {
    /// Adds an element of `size()` bytes; `false` (the element not taken)
    /// if the reserve is full. (`size` is only worked out with KASAN.)
    fn push(&mut self, element: NonNull<u8>, size: impl FnOnce() -> usize) -> bool {
        let pushed = self.elements.push_within_capacity(element).is_ok();
        if cfg!(CONFIG_KASAN_GENERIC) && pushed {
            crate::cache::kasan::poison_free(element.as_ptr(), size());
        }
        pushed
    }

    /// Takes the last element, of `size()` bytes. On a kmemleak kernel its
    /// slot is cleared: kmemleak scans the array, and a stale pointer would
    /// hide a leak of the element once it is handed out.
    fn pop(&mut self, size: impl FnOnce() -> usize) -> Option<NonNull<u8>> {
        let element = self.elements.pop()?;
        if cfg!(CONFIG_DEBUG_KMEMLEAK) {
            if let Some(slot) = self.elements.spare_capacity_mut().first_mut() {
                *slot = core::mem::MaybeUninit::zeroed();
            }
        }
        if cfg!(CONFIG_KASAN_GENERIC) {
            crate::cache::kasan::unpoison(element.as_ptr(), size());
        }
        Some(element)
    }
}

/// The reserve array's size for `min_nr`: one slot even for a pool of 0,
/// which parks a freed element there to wake its waiters (as
/// `mm/mempool.c` handles `min_nr == 0`).
fn capacity(min_nr: usize) -> usize {
    min_nr.max(1)
}

impl Reserve {
    /// Whether a freed element goes into the reserve: it holds fewer than
    /// `min_nr`, or it is an empty reserve of 0 (whose waiters, if any,
    /// only a free can wake).
    fn short(&self) -> bool {
        self.elements.len() < capacity(self.min_nr)
    }
}

// SAFETY: The elements are plain memory owned by the pool.
unsafe impl Send for Reserve {}

/// A snapshot of a pool's numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Elements the pool keeps in reserve.
    pub min_nr: usize,
    /// Elements in reserve now.
    pub curr_nr: usize,
    /// Allocations the backend served.
    pub alloc_backend: u64,
    /// Allocations the reserve served.
    pub alloc_reserve: u64,
    /// Times an allocation slept waiting for a free.
    pub waits: u64,
    /// Sleeps ended by a free (rather than by the retry timeout).
    pub wakeups: u64,
    /// Allocations that failed (only ever non-sleeping ones).
    pub failures: u64,
    /// Frees kept in the reserve.
    pub free_reserve: u64,
    /// Frees returned to the backend.
    pub free_backend: u64,
    /// Elements handed out and not yet freed.
    pub outstanding: usize,
}

#[derive(Default)]
struct Counters {
    alloc_backend: AtomicU64,
    alloc_reserve: AtomicU64,
    waits: AtomicU64,
    wakeups: AtomicU64,
    failures: AtomicU64,
    free_reserve: AtomicU64,
    free_backend: AtomicU64,
    outstanding: AtomicUsize,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// A memory pool.
#[pin_data(PinnedDrop)]
pub struct Mempool {
    name: CString,
    backend: Backend,
    #[pin]
    reserve: SpinLockIrq<Reserve>,
    /// Whether the reserve held `min_nr` elements when its lock was last
    /// released: what `free` reads without the lock, as `mm/mempool.c`
    /// reads `curr_nr`.
    full: AtomicBool,
    #[pin]
    wait: Opaque<bindings::wait_queue_head>,
    counters: Counters,
}

/// The reserve's lock guard. Before unlocking it publishes whether the
/// reserve is full, so that every change to the reserve is seen by
/// [`Mempool::free`]'s lockless check.
struct ReserveGuard<'a> {
    full: &'a AtomicBool,
    guard: SpinLockIrqGuard<'a, Reserve>,
}

impl Deref for ReserveGuard<'_> {
    type Target = Reserve;

    fn deref(&self) -> &Reserve {
        &self.guard
    }
}

impl DerefMut for ReserveGuard<'_> {
    fn deref_mut(&mut self) -> &mut Reserve {
        &mut self.guard
    }
}

impl Drop for ReserveGuard<'_> {
    fn drop(&mut self) {
        // Under the lock, so stores are in the order of the changes.
        self.full.store(!self.guard.short(), Relaxed);
    }
}

// SAFETY: The wait queue head is designed for concurrent use; everything
// else is `Sync` or behind the lock.
unsafe impl Sync for Mempool {}
// SAFETY: As above; nothing is tied to a thread.
unsafe impl Send for Mempool {}

/// The largest `min_nr` of a pool: bounds the reserve array (and the time
/// spent filling it) whatever a caller asks for.
pub const MAX_MIN_NR: usize = crate::device::uapi::MAX_POOL_MIN_NR as usize;

impl Mempool {
    /// Creates a pool of `min_nr` elements from `backend`, all allocated
    /// now with `GFP_KERNEL`. Fails with `ENOMEM`, having freed what it got,
    /// if the backend cannot supply them, and with `EINVAL` for a `min_nr`
    /// above [`MAX_MIN_NR`].
    pub fn new(name: &CStr, min_nr: usize, backend: Backend) -> Result<Arc<Self>> {
        Self::new_gfp(name, min_nr, backend, bindings::GFP_KERNEL)
    }

    /// [`Mempool::new`], the reserve (and its array) allocated with `gfp`,
    /// which must allow sleeping.
    pub fn new_gfp(
        name: &CStr,
        min_nr: usize,
        backend: Backend,
        gfp: bindings::gfp_t,
    ) -> Result<Arc<Self>> {
        if min_nr > MAX_MIN_NR {
            return Err(EINVAL);
        }
        let pool = Arc::pin_init(
            try_pin_init!(Self {
                name: CString::try_from_fmt(fmt!("{name}"))?,
                backend,
                reserve <- kernel::new_spinlock_irq!(
                    Reserve { elements: KVVec::with_capacity(capacity(min_nr), sys::metadata_flags(gfp))?, min_nr },
                    "rslab_mempool"
                ),
                full: AtomicBool::new(false),
                // SAFETY: `init_waitqueue_head` initialises the head in place.
                wait <- Opaque::ffi_init(|wq| unsafe { sys::rslab_waitq_init(wq) }),
                counters: Counters::default(),
            }? Error),
            GFP_KERNEL,
        )?;
        pool.fill(gfp)?;
        Ok(pool)
    }

    fn lock_reserve(&self) -> ReserveGuard<'_> {
        ReserveGuard {
            full: &self.full,
            guard: self.reserve.lock(),
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &CStr {
        &self.name
    }

    /// The most memory a pool of `min_nr` elements of `backend` pins: the
    /// pool, its debugfs entries, its reserve array and every element.
    /// What a quota charges a pool. Saturates rather than wrap (a 32-bit
    /// `usize` cannot hold 2^16 elements of 2^20 bytes), and a saturated
    /// charge passes every limit.
    pub fn footprint_for(backend: &Backend, min_nr: usize) -> usize {
        let array = capacity(min_nr) * size_of::<NonNull<u8>>();
        let elements = min_nr.saturating_mul(backend.footprint());
        (size_of::<Self>() + crate::debugfs::file::DIR_BYTES + array).saturating_add(elements)
    }

    /// What this pool pins now, as [`Mempool::footprint_for`] counts it:
    /// a shrink that could not get a smaller array keeps the larger one.
    pub fn footprint(&self) -> usize {
        let reserve = self.lock_reserve();
        let extra = reserve
            .elements
            .capacity()
            .saturating_sub(capacity(reserve.min_nr));
        Self::footprint_for(&self.backend, reserve.min_nr) + extra * size_of::<NonNull<u8>>()
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Allocates the reserve up to `min_nr`. On failure the reserve keeps
    /// what it got (the pool's drop frees it).
    fn fill(&self, gfp: bindings::gfp_t) -> Result {
        loop {
            let reserve = self.lock_reserve();
            if reserve.elements.len() >= reserve.min_nr {
                return Ok(());
            }
            drop(reserve);
            let element = self.backend.alloc(gfp)?;
            let mut reserve = self.lock_reserve();
            if reserve.elements.len() < reserve.min_nr {
                // Cannot fail: the capacity is at least `min_nr`.
                let _ = reserve.push(element, || self.backend.element_size());
            } else {
                drop(reserve);
                // SAFETY: Just allocated from the backend, unused.
                unsafe { self.backend.free(element) };
            }
        }
    }

    /// Allocates an element, as `mempool_alloc()` does (see the module
    /// documentation). Only an allocation that may not sleep can fail
    /// (`ENOMEM`); `__GFP_ZERO` is `EINVAL`. A wait for a free cannot be
    /// interrupted, as in `mempool_alloc()`.
    pub fn alloc(&self, gfp: Flags) -> Result<NonNull<u8>> {
        self.alloc_waiting(sys::gfp_bits(gfp), false)
    }

    /// As [`Mempool::alloc`], but a wait for a free ends with `EINTR` when
    /// the task gets a fatal signal (`TASK_KILLABLE`): for allocations made
    /// on behalf of user space, which must never leave a task that
    /// `kill -9` cannot end. Raw flags: user space's are accounted.
    pub fn alloc_killable(&self, gfp: bindings::gfp_t) -> Result<NonNull<u8>> {
        self.alloc_waiting(gfp, true)
    }

    fn alloc_waiting(&self, gfp: bindings::gfp_t, killable: bool) -> Result<NonNull<u8>> {
        if gfp & bindings::__GFP_ZERO != 0 {
            return Err(EINVAL);
        }
        // As `mempool_alloc()`: judged even when the reserve serves it.
        sys::might_alloc(|| gfp);
        // Every attempt is `mempool_adjust_gfp()`'s: the reserve is the
        // fallback, so the backend never dips into emergency reserves,
        // retries or warns.
        let full = sys::gfp_mempool_adjust(gfp);
        let mut attempt = sys::gfp_mempool_first(full);
        loop {
            if let Ok(element) = self.backend.alloc(attempt) {
                bump(&self.counters.alloc_backend);
                return Ok(self.hand_out(element));
            }
            let mut reserve = self.lock_reserve();
            if let Some(element) = reserve.pop(|| self.backend.element_size()) {
                drop(reserve);
                // Paired with the fence in `free`: whoever frees this
                // element sees the reserve as it is after this allocation
                // (`mm/mempool.c`'s smp_wmb()).
                fence(core::sync::atomic::Ordering::Release);
                bump(&self.counters.alloc_reserve);
                return Ok(self.hand_out(element));
            }
            if attempt != full {
                // The reserve is empty: try the backend the caller's way.
                attempt = full;
                continue;
            }
            if !sys::gfp_allows_blocking(full) {
                drop(reserve);
                bump(&self.counters.failures);
                return Err(ENOMEM);
            }
            if killable && sys::fatal_signal_pending() {
                drop(reserve);
                bump(&self.counters.failures);
                return Err(EINTR);
            }
            let entry = Opaque::<bindings::wait_queue_entry>::uninit();
            // SAFETY: `wait` is initialised; `entry` lives on this stack
            // frame, unmoved, until `rslab_waitq_sleep` has finished with it.
            // Preparing under the pool lock means a free that comes after the
            // unlock wakes us.
            unsafe { sys::rslab_waitq_prepare(self.wait.get(), entry.get(), killable) };
            drop(reserve);
            bump(&self.counters.waits);
            // SAFETY: As above; the entry was prepared on this queue.
            if unsafe { sys::rslab_waitq_sleep(self.wait.get(), entry.get(), RETRY_MS) } {
                bump(&self.counters.wakeups);
            }
        }
    }

    fn hand_out(&self, element: NonNull<u8>) -> NonNull<u8> {
        self.counters.outstanding.fetch_add(1, Relaxed);
        element
    }

    /// Frees an element: into the reserve if it is short (waking the
    /// waiters), else to the backend.
    ///
    /// # Safety
    ///
    /// `element` must have come from [`Mempool::alloc`] on this pool and not
    /// be used again.
    pub unsafe fn free(&self, element: NonNull<u8>) {
        self.counters.outstanding.fetch_sub(1, Relaxed);
        // As `mm/mempool.c`: a reserve seen full without the lock sends the
        // element straight to the backend. The fence pairs with the one in
        // `alloc`, so an element taken from the reserve is never freed
        // against a "full" older than its own allocation; a stale "full"
        // otherwise only delays a refill to the next free.
        fence(core::sync::atomic::Ordering::Acquire);
        if !self.full.load(Relaxed) {
            let mut reserve = self.lock_reserve();
            if reserve.short() {
                // Cannot fail: a short reserve has room.
                let _ = reserve.push(element, || self.backend.element_size());
                drop(reserve);
                bump(&self.counters.free_reserve);
                // SAFETY: `wait` is initialised.
                unsafe { sys::rslab_waitq_wake(self.wait.get()) };
                return;
            }
        }
        bump(&self.counters.free_backend);
        // SAFETY: Every element of this pool comes from its backend.
        unsafe { self.backend.free(element) };
    }

    /// Changes `min_nr`: shrinking frees the surplus reserve to the backend;
    /// growing allocates up to the new size with `GFP_KERNEL`. As with
    /// `mempool_resize()`, a backend failure while growing leaves the
    /// reserve short (frees refill it) and is not an error; only a failure
    /// to grow the reserve's own array is (`ENOMEM`, nothing changed), or a
    /// `min_nr` above [`MAX_MIN_NR`] (`EINVAL`).
    pub fn resize(&self, min_nr: usize) -> Result {
        self.resize_gfp(min_nr, bindings::GFP_KERNEL)
    }

    /// [`Mempool::resize`], growing with `gfp`, which must allow sleeping.
    pub fn resize_gfp(&self, min_nr: usize, gfp: bindings::gfp_t) -> Result {
        if min_nr > MAX_MIN_NR {
            return Err(EINVAL);
        }
        let growing = min_nr > self.lock_reserve().min_nr;
        // The array for the new size, made first: growing fails here with
        // nothing changed. A shrink that cannot get a smaller one keeps the
        // old, larger one.
        let array = match KVVec::with_capacity(capacity(min_nr), sys::metadata_flags(gfp)) {
            Ok(array) => Some(array),
            Err(_) if !growing => None,
            Err(e) => return Err(e.into()),
        };
        let mut reserve = self.lock_reserve();
        // Everything is decided again under the lock: a resize racing this
        // one may have changed the reserve since.
        reserve.min_nr = min_nr;
        let keep = reserve.elements.len().min(min_nr);
        let surplus = match array {
            Some(mut array) if keep <= array.capacity() => {
                for &element in &reserve.elements[..keep] {
                    // Cannot fail: `keep` fits, checked above.
                    let _ = array.push_within_capacity(element);
                }
                // The old array still holds every element; those from
                // `keep` on go back to the backend below.
                core::mem::replace(&mut reserve.elements, array)
            }
            _ => KVVec::new(),
        };
        drop(reserve);
        for &element in surplus.get(keep..).unwrap_or(&[]) {
            bump(&self.counters.free_backend);
            // SAFETY: A reserve element, from the backend, now unused: the
            // new array does not hold it.
            unsafe { self.backend.free(element) };
        }
        // Without a new array, the surplus leaves one element at a time.
        while let Some(element) = self.take_surplus() {
            bump(&self.counters.free_backend);
            // SAFETY: As above.
            unsafe { self.backend.free(element) };
        }
        if growing {
            // A backend failure leaves the reserve short, as in
            // `mempool_resize()`; frees refill it.
            let _ = self.fill(gfp);
        }
        Ok(())
    }

    /// Takes an element from a reserve that holds more than `min_nr`.
    fn take_surplus(&self) -> Option<NonNull<u8>> {
        let mut reserve = self.lock_reserve();
        if reserve.elements.len() > reserve.min_nr {
            reserve.pop(|| self.backend.element_size())
        } else {
            None
        }
    }

    /// A snapshot of the pool's numbers.
    pub fn stats(&self) -> PoolStats {
        let (min_nr, curr_nr) = {
            let r = self.lock_reserve();
            (r.min_nr, r.elements.len())
        };
        let c = &self.counters;
        PoolStats {
            min_nr,
            curr_nr,
            alloc_backend: c.alloc_backend.load(Relaxed),
            alloc_reserve: c.alloc_reserve.load(Relaxed),
            waits: c.waits.load(Relaxed),
            wakeups: c.wakeups.load(Relaxed),
            failures: c.failures.load(Relaxed),
            free_reserve: c.free_reserve.load(Relaxed),
            free_backend: c.free_backend.load(Relaxed),
            outstanding: c.outstanding.load(Relaxed),
        }
    }

    /// Writes the backend's description.
    pub fn describe_backend(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        self.backend.describe(f)
    }

    /// Destroys the pool if `this` is its last reference: reports elements
    /// not returned, frees the reserve, and gives the outstanding count.
    /// `None` if others still hold the pool.
    pub fn destroy(this: Arc<Self>) -> Option<usize> {
        let outstanding = this.counters.outstanding.load(Relaxed);
        Arc::into_unique_or_drop(this).map(|_| outstanding)
    }
}

#[pinned_drop]
impl PinnedDrop for Mempool {
    fn drop(self: Pin<&mut Self>) {
        let outstanding = self.counters.outstanding.load(Relaxed);
        if outstanding > 0 {
            let what = fmt!("{outstanding} elements still outstanding at destroy");
            crate::cache::debug::report(&self.name, what, core::ptr::null());
        }
        let elements = core::mem::replace(&mut self.lock_reserve().elements, KVVec::new());
        for element in elements {
            // SAFETY: Reserve elements come from the backend and are unused.
            unsafe { self.backend.free(element) };
        }
    }
}
