// SPDX-License-Identifier: GPL-2.0

//! The handle table of one open `/dev/rslab` file.
//!
//! A handle is an opaque `u64`: the file's count of handles made so far,
//! never reused, never 0 (0 names kmalloc). It stands for a cache, a pool
//! or an object; no address ever leaves the kernel. Each entry holds its
//! quota [`Charge`] and counts its users (objects made from a cache or
//! pool, pools backed by a cache), so a cache or pool in use cannot be
//! destroyed.
//!
//! Every user is made after what it uses, so its handle is larger:
//! releasing the entries from the largest handle down frees every object
//! before its pool or cache, and every pool before its cache.

use crate::cache::Cache;
use crate::debugfs::Registry;
use crate::device::object::{Object, Source};
use crate::device::quota::Charge;
use crate::mempool::Mempool;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNodeReservation};
use kernel::sync::Arc;

/// What a handle stands for.
pub enum Kind {
    /// A cache made by this file.
    Cache(Arc<Cache>),
    /// A pool made by this file, and the cache handle backing it, if any.
    Pool(Arc<Mempool>, Option<u64>),
    /// An object, and the handle it came from (0 for kmalloc).
    Object(Object, u64),
}

pub(crate) struct Entry {
    kind: Kind,
    users: usize,
    charge: Charge,
}

/// A reserved slot for a new handle: taking one may fail, filling it
/// cannot, so a result can be reported before it is committed.
pub struct Slot {
    id: u64,
    node: RBTreeNodeReservation<u64, Entry>,
}

impl Slot {
    /// The handle the slot will hold.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// The table.
#[derive(Default)]
pub struct Table {
    last: u64,
    entries: RBTree<u64, Entry>,
}

impl Table {
    /// Reserves the next handle.
    pub fn reserve(&mut self) -> Result<Slot> {
        let node = RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)?;
        self.last += 1;
        Ok(Slot {
            id: self.last,
            node,
        })
    }

    /// Commits `kind` to `slot`. An object counts as a user of its source.
    pub fn insert(&mut self, slot: Slot, kind: Kind, charge: Charge) {
        self.entries.insert(slot.node.into_node(
            slot.id,
            Entry {
                kind,
                users: 0,
                charge,
            },
        ));
    }

    /// Looks up the cache or pool `id` to make `n` objects (or a pool)
    /// from, and counts `n` users of it until each ends with
    /// [`Table::unuse`] (an object's removal, or a failed allocation).
    /// `ENOENT` if `id` is no cache or pool (0, kmalloc, has no entry).
    pub fn use_source(&mut self, id: u64, n: usize) -> Result<Source> {
        let entry = self.entries.get_mut(&id).ok_or(ENOENT)?;
        let source = match &entry.kind {
            Kind::Cache(c) => Source::Cache(c.clone()),
            Kind::Pool(p, _) => Source::Pool(p.clone()),
            Kind::Object(..) => return Err(ENOENT),
        };
        entry.users += n;
        Ok(source)
    }

    /// Ends `n` uses of `id` begun by [`Table::use_source`].
    pub fn unuse(&mut self, id: u64, n: usize) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.users -= n;
        }
    }

    /// The cache behind `id`; `ENOENT` if it is not one.
    pub fn cache(&self, id: u64) -> Result<&Arc<Cache>> {
        match self.entries.get(&id).map(|e| &e.kind) {
            Some(Kind::Cache(c)) => Ok(c),
            _ => Err(ENOENT),
        }
    }

    /// The pool behind `id`; `ENOENT` if it is not one.
    pub fn pool(&self, id: u64) -> Result<&Arc<Mempool>> {
        match self.entries.get(&id).map(|e| &e.kind) {
            Some(Kind::Pool(p, _)) => Ok(p),
            _ => Err(ENOENT),
        }
    }

    /// The pool behind `id` and its charge, to resize both.
    pub fn pool_mut(&mut self, id: u64) -> Result<(&Arc<Mempool>, &mut Charge)> {
        match self.entries.get_mut(&id) {
            Some(Entry {
                kind: Kind::Pool(p, _),
                charge,
                ..
            }) => Ok((p, charge)),
            _ => Err(ENOENT),
        }
    }

    /// The object behind `id`; `ENOENT` if it is not one.
    pub fn object_mut(&mut self, id: u64) -> Result<&mut Object> {
        match self.entries.get_mut(&id).map(|e| &mut e.kind) {
            Some(Kind::Object(o, _)) => Ok(o),
            _ => Err(ENOENT),
        }
    }

    /// Removes the entry `id` if `pick` accepts its kind, and returns it
    /// with the charge still held. `ENOENT` if there is no such entry (or
    /// `pick` refuses it), `EBUSY` if it has users.
    fn take(&mut self, id: u64, pick: impl Fn(&Kind) -> bool) -> Result<(Kind, Charge)> {
        let entry = self.entries.get(&id).ok_or(ENOENT)?;
        if !pick(&entry.kind) {
            return Err(ENOENT);
        }
        if entry.users > 0 {
            return Err(EBUSY);
        }
        let entry = self.entries.remove(&id).ok_or(ENOENT)?;
        match &entry.kind {
            Kind::Object(_, source) | Kind::Pool(_, Some(source)) => self.unuse(*source, 1),
            _ => {}
        }
        Ok((entry.kind, entry.charge))
    }

    /// Removes and frees the object `id`.
    pub fn free_object(&mut self, id: u64) -> Result {
        self.take(id, |k| matches!(k, Kind::Object(..))).map(drop)
    }

    /// Removes the objects `ids`, all made from `source`, and returns them.
    /// `ENOENT`, with nothing removed, if any is not (or is repeated).
    pub fn take_objects(&mut self, source: u64, ids: &[u64]) -> Result<KVec<Object>> {
        let mut taken = KVec::with_capacity(ids.len(), GFP_KERNEL)?;
        let mut objects = KVec::with_capacity(ids.len(), GFP_KERNEL)?;
        for &id in ids {
            let ours = matches!(
                self.entries.get(&id).map(|e| &e.kind),
                Some(Kind::Object(_, s)) if *s == source
            );
            match self.entries.remove_node(&id) {
                // Cannot fail: the capacity is `ids.len()`.
                Some(node) if ours => drop(taken.push_within_capacity(node)),
                rejected => {
                    // Put back what was taken; reinserting a node never allocates.
                    for node in Iterator::chain(rejected.into_iter(), taken) {
                        self.entries.insert(node);
                    }
                    return Err(ENOENT);
                }
            }
        }
        self.unuse(source, taken.len());
        for node in taken {
            if let (
                _,
                Entry {
                    kind: Kind::Object(object, _),
                    ..
                },
            ) = node.to_key_value()
            {
                // Cannot fail: the capacity is `ids.len()`.
                let _ = objects.push_within_capacity(object);
            }
        }
        Ok(objects)
    }

    /// Removes and destroys the cache or pool `id` (`want_pool` says
    /// which), with its debugfs entries.
    pub fn destroy(&mut self, id: u64, want_pool: bool, registry: &Registry) -> Result {
        let (kind, _charge) = self.take(id, |k| match k {
            Kind::Pool(..) => want_pool,
            Kind::Cache(_) => !want_pool,
            Kind::Object(..) => false,
        })?;
        release(kind, registry);
        Ok(())
    }

    /// Releases everything, as the file closes: objects, then pools, then
    /// caches (largest handle first).
    pub fn release(&mut self, registry: &Registry) {
        while let Some(cursor) = self.entries.cursor_back_mut() {
            let (_, node) = cursor.remove_current();
            let (_, entry) = node.to_key_value();
            release(entry.kind, registry);
        }
    }
}

/// Frees an object, or unregisters and destroys a pool or cache.
pub fn release(kind: Kind, registry: &Registry) {
    match kind {
        Kind::Object(object, _) => drop(object),
        Kind::Pool(pool, _) => registry.destroy_pool(pool),
        Kind::Cache(cache) => registry.destroy(cache),
    }
}
