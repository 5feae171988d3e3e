// SPDX-License-Identifier: GPL-2.0

//! A name-keyed table whose entries are made outside its lock.
//!
//! The registry's caches and pools are looked up by name in O(log N) (a
//! red-black tree keyed by the name's bytes), and a new entry is built
//! without the table's mutex held: a pool fills its reserve (up to
//! [`crate::device::uapi::MAX_POOL_MIN_NR`] elements) and every entry makes debugfs
//! files, and neither may stall every other create, destroy or `slabinfo`
//! read. A [`Claim`] holds the name meanwhile, so two creators of one name
//! cannot both get it; dropping an unfilled claim frees the name again.

use kernel::prelude::*;
use kernel::rbtree::RBTree;
use kernel::sync::Mutex;

/// The longest name, in bytes (the `/dev/rslab` ABI's names are shorter).
pub(crate) const NAME_MAX: usize = 31;

/// A name as a tree key: its bytes, NUL-padded, so that keys order as the
/// names do byte by byte.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key([u8; NAME_MAX + 1]);

impl Key {
    /// `ENAMETOOLONG` for a name longer than [`NAME_MAX`].
    fn new(name: &CStr) -> Result<Self> {
        let bytes = name.to_bytes();
        if bytes.len() > NAME_MAX {
            return Err(ENAMETOOLONG);
        }
        let mut key = [0; NAME_MAX + 1];
        key[..bytes.len()].copy_from_slice(bytes);
        Ok(Self(key))
    }
}

/// The table: each name is claimed (`None`) or holds its entry. (`Unpin`:
/// the tree's nodes move their entries in and out.)
#[pin_data]
pub(crate) struct Names<E: Unpin> {
    #[pin]
    tree: Mutex<RBTree<Key, Option<E>>>,
}

/// A name held for an entry being built; [`Claim::fill`] commits the entry.
/// Dropped unfilled, it frees the name.
pub(crate) struct Claim<'a, E: Unpin> {
    names: &'a Names<E>,
    key: Key,
    filled: bool,
}

impl<E: Unpin> Names<E> {
    /// An empty table.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            tree <- kernel::new_mutex!(RBTree::new(), "rslab_names"),
        })
    }

    /// Claims `name`: `EEXIST` if it is claimed or taken, `ENAMETOOLONG`
    /// if it is too long, `ENOMEM` if the tree node cannot be allocated.
    pub(crate) fn claim(&self, name: &CStr) -> Result<Claim<'_, E>> {
        let key = Key::new(name)?;
        let mut tree = self.tree.lock();
        if tree.get(&key).is_some() {
            return Err(EEXIST);
        }
        tree.try_create_and_insert(key, None, GFP_KERNEL)?;
        Ok(Claim {
            names: self,
            key,
            filled: false,
        })
    }

    /// Removes the entry named `name`, if `is` accepts it, and returns it;
    /// it is dropped by the caller, without the lock.
    pub(crate) fn remove(&self, name: &CStr, is: impl Fn(&E) -> bool) -> Option<E> {
        let key = Key::new(name).ok()?;
        let mut tree = self.tree.lock();
        match tree.get(&key) {
            Some(Some(e)) if is(e) => tree.remove(&key).flatten(),
            _ => None,
        }
    }

    /// Calls `f` on every entry, in name order, under the lock (so `f`
    /// must not sleep for long: it formats a line of a debugfs file).
    pub(crate) fn for_each<R>(&self, mut f: impl FnMut(&E) -> Result<(), R>) -> Result<(), R> {
        self.tree.lock().values().flatten().try_for_each(&mut f)
    }

    /// How many entries there are (claims not counted).
    pub(crate) fn count(&self) -> usize {
        self.tree.lock().values().flatten().count()
    }
}

impl<E: Unpin> Claim<'_, E> {
    /// Commits `entry` under the claimed name.
    pub(crate) fn fill(mut self, entry: E) {
        let mut tree = self.names.tree.lock();
        if let Some(slot) = tree.get_mut(&self.key) {
            *slot = Some(entry);
            self.filled = true;
        }
    }
}

impl<E: Unpin> Drop for Claim<'_, E> {
    fn drop(&mut self) {
        if !self.filled {
            self.names.tree.lock().remove(&self.key);
        }
    }
}

#[cfg(rslab_kunit)]
#[kunit_tests(rslab_names)]
mod tests {
    use crate::debugfs::names::Names;
    use kernel::prelude::*;

    fn names() -> Result<Pin<KBox<Names<u32>>>> {
        KBox::pin_init(Names::new(), GFP_KERNEL)
    }

    fn all(names: &Names<u32>) -> Result<KVec<u32>> {
        let mut out = KVec::new();
        names.for_each(|&v| out.push(v, GFP_KERNEL))?;
        Ok(out)
    }

    /// A claimed name is taken until its claim is dropped unfilled, or for
    /// good once filled; entries come out in name order; a claim is no
    /// entry; too long a name is `ENAMETOOLONG`.
    #[test]
    fn a_name_is_claimed_filled_or_given_back() -> Result {
        let names = names()?;
        let b = names.claim(c"b")?;
        assert_eq!(names.claim(c"b").err(), Some(EEXIST));
        assert_eq!(names.count(), 0);
        drop(b);
        names.claim(c"b")?.fill(2);
        assert_eq!(names.claim(c"b").err(), Some(EEXIST));
        names.claim(c"ab")?.fill(1);
        names.claim(c"b-")?.fill(3);
        let pending = names.claim(c"c")?;
        assert_eq!(&all(&names)?[..], &[1, 2, 3]);
        assert_eq!(names.count(), 3);
        drop(pending);
        let long = c"a-name-of-thirty-two-bytes-long!";
        assert_eq!(names.claim(long).err(), Some(ENAMETOOLONG));
        names.claim(c"a-name-of-thirty-one-bytes-long")?.fill(4);
        Ok(())
    }

    /// `remove` takes only the entry its predicate accepts, never a claim.
    #[test]
    fn remove_takes_only_the_entry_it_is_given() -> Result {
        let names = names()?;
        names.claim(c"x")?.fill(7);
        assert_eq!(names.remove(c"x", |&v| v == 8), None);
        assert_eq!(names.remove(c"x", |&v| v == 7), Some(7));
        assert_eq!(names.remove(c"x", |_| true), None);
        let claim = names.claim(c"y")?;
        assert_eq!(names.remove(c"y", |_| true), None);
        assert_eq!(names.claim(c"y").err(), Some(EEXIST));
        drop(claim);
        assert_eq!(names.count(), 0);
        names.claim(c"y")?.fill(1);
        Ok(())
    }
}
