// SPDX-License-Identifier: GPL-2.0

//! Per-NUMA-node slab lists: partial, full and empty slabs, under one
//! interrupt-safe spinlock per node (SLUB's `kmem_cache_node.list_lock`).
//!
//! A slab moves between lists only here, when its allocated count crosses
//! 0 or its capacity. Empty slabs are kept up to the cache's `min_partial`
//! and the rest handed back to the caller, which returns their pages to the
//! page allocator after dropping the lock.
//!
//! # Invariants
//!
//! Every slab on a list of a [`NodeLists`] is live, belongs to this node and
//! cache, has `state` equal to the list it is on, and is reached only with
//! the node's lock held.

use crate::cache::slab::{Slab, SlabState};
use core::ptr::{self, NonNull};
use kernel::prelude::*;
use kernel::sync::{SpinLockIrq, SpinLockIrqGuard};

/// An intrusive doubly linked list of slabs, threaded through [`Slab`].
///
/// Not `kernel::list::List`: its items are `ListArc`s, but a slab's
/// metadata is owned through the raw pointer in its head page's `private`
/// (a free finds it there, lock-free), which an `Arc` cannot be rebuilt from.
pub(crate) struct SlabList {
    head: *mut Slab,
    len: usize,
}

impl SlabList {
    const fn new() -> Self {
        Self {
            head: ptr::null_mut(),
            len: 0,
        }
    }

    /// The number of slabs on the list.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first slab, if any.
    pub(crate) fn first(&self) -> Option<NonNull<Slab>> {
        NonNull::new(self.head)
    }

    /// # Safety
    ///
    /// `slab` must be live and on no list.
    unsafe fn push(&mut self, mut slab: NonNull<Slab>) {
        // SAFETY: By the caller's promise the slab is live and unlinked; the
        // old head is live by the type invariant.
        unsafe {
            let s = slab.as_mut();
            s.prev = ptr::null_mut();
            s.next = self.head;
            if let Some(mut head) = NonNull::new(self.head) {
                head.as_mut().prev = slab.as_ptr();
            }
        }
        self.head = slab.as_ptr();
        self.len += 1;
    }

    /// # Safety
    ///
    /// `slab` must be on this list.
    unsafe fn remove(&mut self, mut slab: NonNull<Slab>) {
        // SAFETY: The slab and its neighbours are live list members.
        unsafe {
            let s = slab.as_mut();
            match NonNull::new(s.prev) {
                Some(mut prev) => prev.as_mut().next = s.next,
                None => self.head = s.next,
            }
            if let Some(mut next) = NonNull::new(s.next) {
                next.as_mut().prev = s.prev;
            }
            s.prev = ptr::null_mut();
            s.next = ptr::null_mut();
        }
        self.len -= 1;
    }
}

/// The lists of one node, and what they hold.
pub(crate) struct NodeLists {
    partial: SlabList,
    full: SlabList,
    empty: SlabList,
    /// Objects in all slabs of this node.
    pub(crate) total_objects: usize,
    /// Pages in all slabs of this node.
    pub(crate) pages: usize,
    /// Objects allocated in the slabs of this node (handed out, in a sheaf
    /// or parked), kept as objects move so that the stats walk no slab.
    inuse: usize,
    /// Free objects that sheaf flushes parked here for the next refill, so
    /// that objects freed on one CPU and allocated again (on any CPU) skip
    /// their slabs: SLUB's barn, by the object rather than by the sheaf. In
    /// their slabs they count as allocated, as sheaf objects do.
    depot: [*mut u8; DEPOT_MAX],
    depot_len: usize,
    /// How many times the lock was taken by [`Node::lock`] (every path but
    /// the stats' reads): what the node's lock costs the allocator, for
    /// `make bench`'s per-operation count. Counted under the lock, so no
    /// atomic; wrapping, as event counts do.
    pub(crate) locked: u64,
}

/// The most objects a node's depot can park (a cache may set fewer: see
/// `Cache`): four of the largest sheaves.
pub(crate) const DEPOT_MAX: usize = 256;

// SAFETY: The raw slab pointers are only followed under the node lock.
unsafe impl Send for NodeLists {}

impl NodeLists {
    /// Parks as many of `objs` as the depot has room for, holding at most
    /// `max` (at most [`DEPOT_MAX`]), from the front; returns how many.
    pub(crate) fn depot_put(&mut self, objs: &[*mut u8], max: usize) -> usize {
        let max = max.min(DEPOT_MAX);
        let n = objs.len().min(max.saturating_sub(self.depot_len));
        self.depot[self.depot_len..self.depot_len + n].copy_from_slice(&objs[..n]);
        self.depot_len += n;
        n
    }

    /// Moves up to `out.len()` parked objects into `out`; returns how many.
    pub(crate) fn depot_take(&mut self, out: &mut [*mut u8]) -> usize {
        let n = out.len().min(self.depot_len);
        self.depot_len -= n;
        out[..n].copy_from_slice(&self.depot[self.depot_len..self.depot_len + n]);
        crate::cache::forget(&mut self.depot[self.depot_len..self.depot_len + n]);
        n
    }

    /// How many objects are parked.
    pub(crate) fn depot_len(&self) -> usize {
        self.depot_len
    }

    fn list(&mut self, state: SlabState) -> &mut SlabList {
        match state {
            SlabState::Empty => &mut self.empty,
            SlabState::Partial => &mut self.partial,
            SlabState::Full => &mut self.full,
        }
    }

    /// Partial, full and empty slab counts.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (self.partial.len(), self.full.len(), self.empty.len())
    }

    /// Allocated objects in all slabs of the node.
    pub(crate) fn inuse(&self) -> usize {
        self.inuse
    }

    /// Counts `n` objects taken from this node's slabs.
    pub(crate) fn count_allocated(&mut self, n: usize) {
        self.inuse += n;
    }

    /// Counts one object returned to its slab on this node.
    pub(crate) fn count_freed(&mut self) {
        self.inuse -= 1;
    }

    /// [`NodeLists::inuse`] by a walk of every slab, for the KUnit test
    /// that checks the counter.
    #[cfg(rslab_kunit)]
    pub(crate) fn inuse_walked(&self) -> usize {
        let mut n = 0;
        for list in [&self.partial, &self.full] {
            let mut cur = list.head;
            while let Some(slab) = NonNull::new(cur) {
                // SAFETY: A list member, under the lock (we hold `&self`,
                // which only the lock guard hands out).
                let s = unsafe { slab.as_ref() };
                n += s.inuse() as usize;
                cur = s.next;
            }
        }
        n
    }

    /// The parked objects, for the KUnit test that checks they are all of
    /// this node.
    #[cfg(rslab_kunit)]
    pub(crate) fn depot(&self) -> &[*mut u8] {
        &self.depot[..self.depot_len]
    }

    /// Adds a new slab (every object free).
    ///
    /// # Safety
    ///
    /// `slab` must be live, on no list, and of this node and cache.
    pub(crate) unsafe fn add(&mut self, slab: NonNull<Slab>) {
        // SAFETY: The caller's promise; only this lock holder sees the slab.
        let s = unsafe { &mut *slab.as_ptr() };
        s.state = s.wanted_state();
        self.total_objects += s.objects() as usize;
        self.pages += 1 << s.order();
        // SAFETY: The caller's promise.
        unsafe { self.list(s.state).push(slab) };
    }

    /// A slab to allocate from: a partial one, else an empty one.
    pub(crate) fn alloc_candidate(&self) -> Option<NonNull<Slab>> {
        self.partial.first().or_else(|| self.empty.first())
    }

    /// Moves `slab` to the list its counts call for, after objects were
    /// taken from or returned to it.
    ///
    /// # Safety
    ///
    /// `slab` must be on one of these lists.
    pub(crate) unsafe fn update(&mut self, slab: NonNull<Slab>) {
        // SAFETY: A list member, under the lock.
        let s = unsafe { &mut *slab.as_ptr() };
        let want = s.wanted_state();
        if want != s.state {
            let from = s.state;
            s.state = want;
            // SAFETY: The slab is on the `from` list, and after removal on none.
            unsafe {
                self.list(from).remove(slab);
                self.list(want).push(slab);
            }
        }
    }

    /// Takes empty slabs off beyond `keep`, for the caller to free.
    pub(crate) fn take_empty(&mut self, keep: usize, out: &mut SlabList) {
        while self.empty.len() > keep {
            let Some(slab) = self.empty.first() else {
                break;
            };
            // SAFETY: `slab` is on the empty list; after removal it is on
            // none, and it is unpublished under the lock, to be freed.
            unsafe {
                self.detach(slab, SlabState::Empty);
                slab.as_ref().unpublish();
                out.push(slab);
            }
        }
    }

    /// Takes every slab off: an empty one onto `out`, for the caller to
    /// free; one with objects still allocated is leaked ([`Slab::leak`]),
    /// since they may still be in use. Returns how many objects were still
    /// allocated.
    pub(crate) fn take_all(&mut self, out: &mut SlabList) -> usize {
        let mut inuse = 0;
        for state in [SlabState::Empty, SlabState::Partial, SlabState::Full] {
            while let Some(slab) = self.list(state).first() {
                // SAFETY: A list member, under the lock.
                let live = unsafe { slab.as_ref() }.inuse() as usize;
                // SAFETY: On the `state` list; after removal on none.
                unsafe { self.detach(slab, state) };
                if live == 0 {
                    // SAFETY: Detached above, unpublished under the lock, to
                    // be freed.
                    unsafe {
                        slab.as_ref().unpublish();
                        out.push(slab);
                    }
                } else {
                    inuse += live;
                    // SAFETY: Detached above.
                    unsafe { Slab::leak(slab) };
                }
            }
        }
        inuse
    }

    /// # Safety
    ///
    /// `slab` must be on the `state` list.
    unsafe fn detach(&mut self, slab: NonNull<Slab>, state: SlabState) {
        // SAFETY: The caller's promise.
        unsafe { self.list(state).remove(slab) };
        // SAFETY: Still live; only this lock holder sees it.
        let s = unsafe { slab.as_ref() };
        self.total_objects -= s.objects() as usize;
        self.pages -= 1 << s.order();
        // Only a slab leaked at destroy leaves with objects allocated.
        self.inuse -= s.inuse() as usize;
    }
}

/// A node's lists, locked for a batch of frees to its slabs
/// ([`Cache::return_batch`](crate::cache::Cache)), and the slab of the
/// batch's current run of frees, whose list is settled once for the run
/// rather than once an object: a flush's objects were mostly allocated
/// together, from one slab. Until [`FreeRun::settle`], that one slab may
/// be on a list that its count no longer calls for, under the lock held.
pub(crate) struct FreeRun<'a> {
    /// The node whose lock is held.
    pub(crate) nid: i32,
    /// Its lists.
    pub(crate) lists: SpinLockIrqGuard<'a, NodeLists>,
    run: Option<NonNull<Slab>>,
}

impl<'a> FreeRun<'a> {
    /// Node `nid`'s lists, locked, with no run yet.
    pub(crate) fn new(nid: i32, lists: SpinLockIrqGuard<'a, NodeLists>) -> Self {
        Self {
            nid,
            lists,
            run: None,
        }
    }

    /// Starts or goes on with a run of frees to `slab`, settling the
    /// previous run's slab first if it was another.
    ///
    /// # Safety
    ///
    /// `slab` must be on these lists, with an object allocated that is
    /// about to be freed (so not on the empty list, which the previous
    /// run's settling may shorten).
    pub(crate) unsafe fn freeing_to(
        &mut self,
        slab: NonNull<Slab>,
        keep: usize,
        out: &mut SlabList,
    ) {
        if self.run != Some(slab) {
            self.settle(keep, out);
            self.run = Some(slab);
        }
    }

    /// Files the run's slab on the list its count calls for, then takes
    /// empty slabs off beyond `keep` onto `out` ([`NodeLists::take_empty`]).
    /// Must come before the lock goes.
    pub(crate) fn settle(&mut self, keep: usize, out: &mut SlabList) {
        if let Some(slab) = self.run.take() {
            // SAFETY: `freeing_to` made `slab` the run while it was on these
            // lists, and only `take_empty`, called next, takes slabs off.
            unsafe { self.lists.update(slab) };
            self.lists.take_empty(keep, out);
        }
    }
}

/// A list of slabs taken off every node list, to be freed without a lock.
pub(crate) struct Detached(SlabList);

impl Detached {
    /// An empty batch.
    pub(crate) const fn new() -> Self {
        Self(SlabList::new())
    }

    /// The list to hand to [`NodeLists::take_empty`] or [`NodeLists::take_all`].
    pub(crate) fn list(&mut self) -> &mut SlabList {
        &mut self.0
    }

    /// Frees every slab of the batch; returns how many there were.
    pub(crate) fn free(self) -> usize {
        self.0.len()
        // Dropping `self` frees them.
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        while let Some(slab) = self.0.first() {
            // SAFETY: Detached slabs are live, on this list only, and
            // unreachable from anywhere else: nobody uses them again.
            unsafe {
                self.0.remove(slab);
                Slab::free_pages(slab);
            }
        }
    }
}

/// One node's lists under their lock.
#[pin_data]
pub(crate) struct Node {
    #[pin]
    pub(crate) lists: SpinLockIrq<NodeLists>,
}

impl Node {
    /// Empty lists for one node.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            lists <- kernel::new_spinlock_irq!(
                NodeLists {
                    partial: SlabList::new(),
                    full: SlabList::new(),
                    empty: SlabList::new(),
                    total_objects: 0,
                    pages: 0,
                    inuse: 0,
                    depot: [core::ptr::null_mut(); DEPOT_MAX],
                    depot_len: 0,
                    locked: 0,
                },
                "rslab_node_lists"
            ),
        })
    }

    /// Takes the node's lock, counting it ([`NodeLists::locked`]).
    #[inline(always)]
    pub(crate) fn lock(&self) -> SpinLockIrqGuard<'_, NodeLists> {
        let mut lists = self.lists.lock();
        lists.locked = lists.locked.wrapping_add(1);
        lists
    }
}
