// SPDX-License-Identifier: GPL-2.0

//! debugfs files that pin rslab while they are open.
//!
//! Linux 7.3's kernel crate makes debugfs files whose `file_operations`
//! name no owner, so an open file pins nothing: `rmmod` succeeds, and the
//! file's release later runs in freed module text (an oops). rslab's files
//! use the `file_operations` of `rslab_helpers.c` instead, whose `.owner`
//! is this module: debugfs takes a module reference for as long as a file
//! is open (`rmmod` says "in use"), and an open that races an unload gets
//! `ENXIO`. The API mirrors the kernel crate's callback files.
//!
//! A [`File`] is removed before its data goes (debugfs waits for calls in
//! progress), and every file or directory keeps its parent directory, so a
//! directory is removed only after everything in it. debugfs failures are
//! not errors, as everywhere in the kernel: a missing file shows nothing.

use crate::sys::{self, DfsOps};
use core::ffi::c_void;
use kernel::bindings;
use kernel::fmt;
use kernel::prelude::*;
use kernel::seq_file::{seq_print, SeqFile};
use kernel::sync::Arc;
use kernel::uaccess::{UserPtr, UserSlice, UserSliceReader};

/// What one debugfs entry (file or directory) costs, at most: its inode
/// and dentry, and its [`File`] or [`Dir`]. An estimate for quotas, high
/// on x86-64 (a debugfs inode is about 700 bytes, a dentry 192).
const ENTRY_BYTES: usize = 1024;

/// What a cache's or pool's debugfs directory with its files costs, at
/// most (a directory and up to five files).
pub(crate) const DIR_BYTES: usize = 6 * ENTRY_BYTES;

/// What a file shows when read.
pub(crate) type Show<T> = dyn Fn(&T, &mut fmt::Formatter<'_>) -> fmt::Result + Send + Sync;
/// What a file does with what is written to it.
pub(crate) type Store<T> = dyn Fn(&T, &mut UserSliceReader) -> Result + Send + Sync;

/// What was written to a file, as text in `buf`: `EINVAL` if it is longer
/// than `buf` or not UTF-8.
pub(crate) fn read_text<'a>(reader: &mut UserSliceReader, buf: &'a mut [u8]) -> Result<&'a str> {
    let len = reader.len();
    let buf = buf.get_mut(..len).ok_or(EINVAL)?;
    reader.read_slice(buf)?;
    core::str::from_utf8(buf).map_err(|_| EINVAL)
}

/// The C side's callbacks (`struct rslab_dfs_ops`).
type ShowFn = unsafe extern "C" fn(*mut bindings::seq_file, *const DfsOps) -> i32;
type StoreFn = unsafe extern "C" fn(*const DfsOps, *const c_void, usize) -> isize;

/// A debugfs entry, removed (with anything left in it) when dropped.
///
/// # Invariants
///
/// `dentry` is what `debugfs_create_*` returned (possibly an error pointer,
/// which debugfs accepts everywhere), removed only by this value's drop,
/// after every entry that holds this one as its parent.
struct Entry {
    dentry: *mut c_void,
    _parent: Option<Arc<Entry>>,
}

// SAFETY: The dentry pointer is only passed to debugfs, which may be called
// from any thread.
unsafe impl Send for Entry {}
// SAFETY: As above; `&Entry` only reads the pointer.
unsafe impl Sync for Entry {}

impl Drop for Entry {
    fn drop(&mut self) {
        // SAFETY: By the type invariants, ours to remove, once.
        unsafe { sys::rslab_dfs_remove(self.dentry) };
    }
}

/// A debugfs directory.
pub struct Dir(Arc<Entry>);

impl Dir {
    /// Creates the directory `name` at the debugfs root.
    pub fn new(name: &CStr) -> Result<Self> {
        Self::make(name, None)
    }

    /// Creates the directory `name` in this one.
    pub fn subdir(&self, name: &CStr) -> Result<Self> {
        Self::make(name, Some(self.0.clone()))
    }

    fn make(name: &CStr, parent: Option<Arc<Entry>>) -> Result<Self> {
        let at = parent.as_ref().map_or(core::ptr::null_mut(), |p| p.dentry);
        // SAFETY: `name` is a C string; `at` is null (the root) or a live
        // directory, kept by `parent`.
        let dentry = unsafe { sys::rslab_dfs_dir(name.as_char_ptr(), at) };
        // INVARIANT: Just created; its parent is kept in the entry.
        Ok(Self(Arc::new(
            Entry {
                dentry,
                _parent: parent,
            },
            GFP_KERNEL,
        )?))
    }

    /// A file that shows `show(&data)` when read.
    pub fn read_callback_file<T: Send + Sync + 'static>(
        &self,
        name: &CStr,
        data: T,
        show: &'static Show<T>,
    ) -> Result<File<T>> {
        self.file(name, 0o400, data, Some(show), None)
    }

    /// A file that calls `store(&data, what was written)` when written.
    pub fn write_callback_file<T: Send + Sync + 'static>(
        &self,
        name: &CStr,
        data: T,
        store: &'static Store<T>,
    ) -> Result<File<T>> {
        self.file(name, 0o200, data, None, Some(store))
    }

    /// A file that does both.
    pub fn read_write_callback_file<T: Send + Sync + 'static>(
        &self,
        name: &CStr,
        data: T,
        show: &'static Show<T>,
        store: &'static Store<T>,
    ) -> Result<File<T>> {
        self.file(name, 0o600, data, Some(show), Some(store))
    }

    fn file<T: Send + Sync + 'static>(
        &self,
        name: &CStr,
        mode: u16,
        data: T,
        show: Option<&'static Show<T>>,
        store: Option<&'static Store<T>>,
    ) -> Result<File<T>> {
        let node = KBox::new(
            Node {
                ops: DfsOps {
                    show: show.map(|_| show_trampoline::<T> as ShowFn),
                    store: store.map(|_| store_trampoline::<T> as StoreFn),
                },
                data,
                show,
                store,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `name` is a C string; the parent is a live directory, kept
        // by the entry; `node` starts with its `DfsOps` and outlives the
        // file (see `File`).
        let dentry =
            unsafe { sys::rslab_dfs_file(name.as_char_ptr(), mode, self.0.dentry, &node.ops) };
        Ok(File {
            // INVARIANT: Just created; its parent is kept in the entry.
            _entry: Entry {
                dentry,
                _parent: Some(self.0.clone()),
            },
            _node: node,
        })
    }
}

/// A file's callbacks and data; what the C side's `file` pointer points to.
#[repr(C)]
struct Node<T: 'static> {
    /// First, so that a pointer to it is a pointer to the node.
    ops: DfsOps,
    data: T,
    show: Option<&'static Show<T>>,
    store: Option<&'static Store<T>>,
}

/// A debugfs file and its data. The file is removed, waiting for calls in
/// progress, before the data is dropped (fields drop in order).
pub struct File<T: 'static> {
    _entry: Entry,
    _node: KBox<Node<T>>,
}

/// Shows the node's data through its `show` callback.
struct Shown<'a, T: 'static>(&'a Node<T>);

impl<T: 'static> fmt::Display for Shown<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.show {
            Some(show) => show(&self.0.data, f),
            None => Ok(()),
        }
    }
}

/// # Safety
///
/// `m` is a live `seq_file` being shown, and `ops` the `ops` of a live
/// `Node<T>` (debugfs calls it only between the file's creation and the end
/// of its removal, and the node outlives both).
unsafe extern "C" fn show_trampoline<T: 'static>(
    m: *mut bindings::seq_file,
    ops: *const DfsOps,
) -> i32 {
    // SAFETY: The caller's promise; `ops` is the node's first field.
    let node = unsafe { &*ops.cast::<Node<T>>() };
    // SAFETY: The caller's promise; only this thread uses `m` now.
    let seq = unsafe { SeqFile::from_raw(m) };
    seq_print!(seq, "{}", Shown(node));
    0
}

/// # Safety
///
/// `ops` is the `ops` of a live `Node<T>` (as for [`show_trampoline`]), and
/// `buf` a user pointer of `len` bytes.
unsafe extern "C" fn store_trampoline<T: 'static>(
    ops: *const DfsOps,
    buf: *const c_void,
    len: usize,
) -> isize {
    // SAFETY: The caller's promise; `ops` is the node's first field.
    let node = unsafe { &*ops.cast::<Node<T>>() };
    let Some(store) = node.store else {
        return EPERM.to_errno() as isize;
    };
    let mut reader = UserSlice::new(UserPtr::from_addr(buf as usize), len).reader();
    match store(&node.data, &mut reader) {
        Ok(()) => len as isize,
        Err(e) => e.to_errno() as isize,
    }
}
