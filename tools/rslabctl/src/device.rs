// SPDX-License-Identifier: GPL-2.0

//! `/dev/rslab`: one open file and a typed call per command.
//!
//! The structs and command numbers are the module's own (`rust/device/uapi.rs`,
//! compiled into this tool too). The one `unsafe` block of the tool is the
//! `ioctl(2)` call itself.

use crate::uapi::{self, Bulk, CacheCreate, CacheInfo, HandleArg, Info, ObjAlloc, ObjIo};
use crate::uapi::{PoolCreate, PoolInfo, PoolResize};
use nix::errno::Errno;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

/// The default device node.
pub const DEFAULT_PATH: &str = "/dev/rslab";

/// The result of one command: the errno on failure.
pub type Res<T> = Result<T, Errno>;

/// An open `/dev/rslab`; everything made through it is released when it
/// is dropped (closed).
pub struct Device {
    file: File,
}

/// Copies `name` into a NUL-padded name field (truncated to fit, so the
/// kernel sees a terminated string; an over-long name is its to refuse).
pub fn name_field(name: &str) -> [u8; uapi::NAME_LEN] {
    let mut field = [0u8; uapi::NAME_LEN];
    let n = name.len().min(uapi::NAME_LEN);
    field[..n].copy_from_slice(&name.as_bytes()[..n]);
    field
}

/// A handle argument.
fn handle(id: u64) -> HandleArg {
    HandleArg {
        version: uapi::ABI_VERSION,
        flags: 0,
        id,
    }
}

/// The largest argument size an ioctl number can encode (`_IOC_SIZEMASK`).
pub const MAX_IOC_SIZE: usize = 0x3fff;

impl Device {
    /// Opens the device node at `path`.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Self { file })
    }

    /// Another descriptor of the same open file (`dup`): the same handles,
    /// and the file is released when the last of them is dropped.
    pub fn try_clone(&self) -> std::io::Result<Self> {
        Ok(Self {
            file: self.file.try_clone()?,
        })
    }

    /// Issues `cmd` with `arg` as its argument, whatever they are: the
    /// fuzzer's entry point. Returns the ioctl's non-negative result.
    ///
    /// # Safety
    ///
    /// The kernel may read and write the user memory at `arg`, up to the
    /// size `cmd` encodes (`_IOC_SIZE`: at most [`MAX_IOC_SIZE`] bytes),
    /// behind Rust's back. So `arg` must be either memory the caller owns,
    /// that large and free to be overwritten, or an address that holds no
    /// memory of this process (null, below `mmap_min_addr`, a kernel or a
    /// non-canonical address), which the kernel refuses with `EFAULT`.
    pub unsafe fn raw(&self, cmd: u32, arg: usize) -> Res<i32> {
        let fd = self.file.as_raw_fd();
        // SAFETY: `ioctl(2)` on our own file descriptor; what it does to
        // `arg` is the caller's contract above.
        Errno::result(unsafe { nix::libc::ioctl(fd, cmd as nix::libc::c_ulong, arg) })
    }

    /// Issues `cmd` with `arg` (a `uapi` struct of the command's size).
    fn call<T>(&self, cmd: u32, arg: &mut T) -> Res<i32> {
        assert_eq!(
            (cmd >> 16) as usize & MAX_IOC_SIZE,
            std::mem::size_of::<T>()
        );
        // SAFETY: `arg` is ours, writable, and exactly the size `cmd`
        // encodes (asserted above).
        unsafe { self.raw(cmd, std::ptr::from_mut(arg) as usize) }
    }

    /// `RSLAB_IOC_INFO`.
    pub fn info(&self) -> Res<Info> {
        let mut arg = Info::default();
        self.call(uapi::IOC_INFO, &mut arg)?;
        Ok(arg)
    }

    /// `RSLAB_IOC_CACHE_CREATE`: the new cache's handle.
    pub fn cache_create(&self, name: &str, size: u32, align: u32, flags: u32) -> Res<u64> {
        let mut arg = CacheCreate {
            version: uapi::ABI_VERSION,
            flags,
            size,
            align,
            name: name_field(name),
            id: 0,
        };
        self.call(uapi::IOC_CACHE_CREATE, &mut arg)?;
        Ok(arg.id)
    }

    /// `RSLAB_IOC_CACHE_DESTROY`.
    pub fn cache_destroy(&self, id: u64) -> Res<()> {
        self.call(uapi::IOC_CACHE_DESTROY, &mut handle(id))
            .map(drop)
    }

    /// `RSLAB_IOC_ALLOC`: from a cache or pool (`size` 0), or kmalloc
    /// (`source` [`uapi::KMALLOC`]); the new object's handle.
    pub fn alloc(&self, source: u64, size: u32, flags: u32) -> Res<u64> {
        let mut arg = ObjAlloc {
            version: uapi::ABI_VERSION,
            flags,
            source,
            size,
            reserved: 0,
            id: 0,
        };
        self.call(uapi::IOC_ALLOC, &mut arg)?;
        Ok(arg.id)
    }

    /// `RSLAB_IOC_FREE`.
    pub fn free(&self, id: u64) -> Res<()> {
        self.call(uapi::IOC_FREE, &mut handle(id)).map(drop)
    }

    fn io(&self, cmd: u32, id: u64, offset: u32, buf: *const u8, len: usize) -> Res<()> {
        let mut arg = ObjIo {
            version: uapi::ABI_VERSION,
            flags: 0,
            id,
            offset,
            len: u32::try_from(len).map_err(|_| Errno::EINVAL)?,
            buf: buf as u64,
        };
        self.call(cmd, &mut arg).map(drop)
    }

    /// `RSLAB_IOC_WRITE`: `data` into object `id` at `offset`.
    pub fn write(&self, id: u64, offset: u32, data: &[u8]) -> Res<()> {
        self.io(uapi::IOC_WRITE, id, offset, data.as_ptr(), data.len())
    }

    /// `RSLAB_IOC_READ`: `len` bytes of object `id` at `offset`.
    pub fn read(&self, id: u64, offset: u32, len: usize) -> Res<Vec<u8>> {
        let mut data = vec![0u8; len];
        self.io(uapi::IOC_READ, id, offset, data.as_mut_ptr(), len)?;
        Ok(data)
    }

    /// `RSLAB_IOC_BULK_ALLOC`: `count` objects of `cache`.
    pub fn bulk_alloc(&self, cache: u64, count: u32) -> Res<Vec<u64>> {
        let mut ids = vec![0u64; count as usize];
        let mut arg = Bulk {
            version: uapi::ABI_VERSION,
            flags: 0,
            cache,
            count,
            reserved: 0,
            ids: ids.as_mut_ptr() as u64,
        };
        self.call(uapi::IOC_BULK_ALLOC, &mut arg)?;
        Ok(ids)
    }

    /// `RSLAB_IOC_BULK_FREE`: the objects `ids` of `cache`.
    pub fn bulk_free(&self, cache: u64, ids: &[u64]) -> Res<()> {
        let mut arg = Bulk {
            version: uapi::ABI_VERSION,
            flags: 0,
            cache,
            count: u32::try_from(ids.len()).map_err(|_| Errno::EINVAL)?,
            reserved: 0,
            ids: ids.as_ptr() as u64,
        };
        self.call(uapi::IOC_BULK_FREE, &mut arg).map(drop)
    }

    /// `RSLAB_IOC_POOL_CREATE`: the new pool's handle.
    pub fn pool_create(&self, name: &str, backend: Backend, min_nr: u32) -> Res<u64> {
        let mut arg = PoolCreate {
            version: uapi::ABI_VERSION,
            name: name_field(name),
            min_nr,
            ..PoolCreate::default()
        };
        match backend {
            Backend::Cache(id) => (arg.backend, arg.cache) = (uapi::BACKEND_CACHE, id),
            Backend::Kmalloc(size) => (arg.backend, arg.size) = (uapi::BACKEND_KMALLOC, size),
            Backend::Pages(order) => (arg.backend, arg.order) = (uapi::BACKEND_PAGES, order),
        }
        self.call(uapi::IOC_POOL_CREATE, &mut arg)?;
        Ok(arg.id)
    }

    /// `RSLAB_IOC_POOL_RESIZE`.
    pub fn pool_resize(&self, id: u64, min_nr: u32) -> Res<()> {
        let mut arg = PoolResize {
            version: uapi::ABI_VERSION,
            flags: 0,
            id,
            min_nr,
            reserved: 0,
        };
        self.call(uapi::IOC_POOL_RESIZE, &mut arg).map(drop)
    }

    /// `RSLAB_IOC_POOL_DESTROY`.
    pub fn pool_destroy(&self, id: u64) -> Res<()> {
        self.call(uapi::IOC_POOL_DESTROY, &mut handle(id)).map(drop)
    }

    /// `RSLAB_IOC_SHRINK`: the number of slabs freed.
    pub fn shrink(&self, id: u64) -> Res<i32> {
        self.call(uapi::IOC_SHRINK, &mut handle(id))
    }

    /// `RSLAB_IOC_CACHE_INFO`.
    pub fn cache_info(&self, id: u64) -> Res<CacheInfo> {
        let mut arg = CacheInfo {
            version: uapi::ABI_VERSION,
            id,
            ..CacheInfo::default()
        };
        self.call(uapi::IOC_CACHE_INFO, &mut arg)?;
        Ok(arg)
    }

    /// `RSLAB_IOC_POOL_INFO`.
    pub fn pool_info(&self, id: u64) -> Res<PoolInfo> {
        let mut arg = PoolInfo {
            version: uapi::ABI_VERSION,
            id,
            ..PoolInfo::default()
        };
        self.call(uapi::IOC_POOL_INFO, &mut arg)?;
        Ok(arg)
    }
}

/// A pool backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Objects of the cache with this handle.
    Cache(u64),
    /// kmalloc allocations of this size.
    Kmalloc(u32),
    /// Pages of this order.
    Pages(u32),
}
