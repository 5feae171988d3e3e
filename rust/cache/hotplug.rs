// SPDX-License-Identifier: GPL-2.0

//! CPU hotplug: the sheaf of a CPU that goes offline goes back to the slabs.
//!
//! Objects freed on a CPU stay in its sheaf until that CPU allocates them
//! or flushes; a CPU that goes offline would keep them (and their slabs'
//! pages) until it comes back, and no `shrink` could reach them, since
//! shrinking runs on the online CPUs. As SLUB's `slub_cpu_dead()`, a CPU
//! hotplug state's teardown flushes every cache's sheaf of the dead CPU.
//!
//! The 7.3 kernel crate has no CPU hotplug abstraction, so this uses a
//! dynamic multi-instance state through `rslab_helpers.c`: the module
//! registers the state ([`Hotplug`]) before it makes any cache, and each
//! cache adds itself as an instance for its lifetime. A cache made while no
//! state is registered (a KUnit test, which runs before the module's init)
//! is not added, and works as before.

use crate::cache::Cache;
use crate::sys;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicI32, Ordering::Relaxed};
use kernel::bindings;
use kernel::prelude::*;

/// The registered state, or 0.
static STATE: AtomicI32 = AtomicI32::new(0);

/// The module's registration of the hotplug state; removed on drop, which
/// must come after every cache is gone.
pub(crate) struct Hotplug(());

impl Hotplug {
    /// Registers the state.
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: `cpu_dead` has the signature the state's teardown needs.
        let state = unsafe { sys::rslab_cpuhp_setup(cpu_dead) };
        kernel::error::to_result(state)?;
        STATE.store(state, Relaxed);
        Ok(Self(()))
    }
}

impl Drop for Hotplug {
    fn drop(&mut self) {
        // SAFETY: The state registered in `register`; every instance (cache)
        // is gone.
        unsafe { sys::rslab_cpuhp_remove(STATE.swap(0, Relaxed)) };
    }
}

/// A cache's membership of the state; `repr(C)` with the node first, so
/// that a node pointer is an instance pointer. (Not `Opaque`, which would
/// make `Cache` `!Unpin`: the cache's `Arc` keeps it in place, and
/// [`Instance::add`] requires as much.)
///
/// # Invariants
///
/// `state` is 0, or the state `node` was added to (and not yet removed
/// from), while `node` stays at its address.
#[repr(C)]
pub(crate) struct Instance {
    node: UnsafeCell<MaybeUninit<bindings::hlist_node>>,
    state: AtomicI32,
}

// SAFETY: The node is only touched by the CPU hotplug core, under its own
// locks, between `add` and `remove`; `state` is atomic.
unsafe impl Send for Instance {}
// SAFETY: As above: `&Instance` gives no unsynchronised access.
unsafe impl Sync for Instance {}

impl Instance {
    /// Not a member yet.
    pub(crate) fn new() -> Self {
        Self {
            node: UnsafeCell::new(MaybeUninit::uninit()),
            state: AtomicI32::new(0),
        }
    }

    /// Adds this instance, if a state is registered. Without memory it
    /// stays out: its cache then keeps a dead CPU's objects until the CPU
    /// comes back, as before.
    ///
    /// # Safety
    ///
    /// `self` must be the `cpuhp` field of a [`Cache`] that never moves,
    /// and [`Instance::remove`] must run before the cache is freed.
    pub(crate) unsafe fn add(&self) {
        let state = STATE.load(Relaxed);
        // SAFETY: `node` is ours and stays put (the caller's promise).
        if state > 0 && unsafe { sys::rslab_cpuhp_add(state, self.node.get().cast()) } == 0 {
            // INVARIANT: Added just above.
            self.state.store(state, Relaxed);
        }
    }

    /// Removes this instance; waits for a teardown in progress. May sleep.
    pub(crate) fn remove(&self) {
        let state = self.state.swap(0, Relaxed);
        if state > 0 {
            // SAFETY: By the type invariants, `node` is in `state`.
            unsafe { sys::rslab_cpuhp_del(state, self.node.get().cast()) };
        }
    }
}

/// The state's teardown: `cpu` is dead; flush its sheaf of `node`'s cache.
///
/// # Safety
///
/// Called by the CPU hotplug core only, for an added instance.
unsafe extern "C" fn cpu_dead(cpu: u32, node: *mut bindings::hlist_node) -> i32 {
    // SAFETY: An added instance is the `cpuhp` field of a live cache (it is
    // removed, waiting for this call, before the cache goes), and `cpu` is
    // dead: this is the state's teardown.
    unsafe { Cache::from_cpuhp_node(node).flush_dead_cpu(cpu) };
    0
}
