// SPDX-License-Identifier: GPL-2.0

//! The `/dev/rslab` ioctl ABI, version 1.
//!
//! This one file is compiled into both the module and the user-space tool
//! (`tools/rslabctl`), so the two cannot disagree; it uses nothing but
//! `core`. `include/uapi/rslab.h` is the same ABI for C callers, and
//! `Documentation/rslab-abi.rst` describes every command.
//!
//! Every argument struct is `#[repr(C)]`, built only from `u32`, `u64` and
//! byte arrays, with each field naturally aligned and no padding (checked
//! at compile time by [`abi_struct!`]), so 32-bit callers see the same
//! layout and the structs can be copied to and from user space whole. Every
//! struct but [`Info`] starts with `version`, which must be
//! [`ABI_VERSION`], and `flags`, whose unknown bits must be zero.

/// The ABI version this file describes.
pub const ABI_VERSION: u32 = 1;

/// The ioctl type byte (unassigned in `ioctl-number.rst`).
pub const IOC_MAGIC: u32 = 0xB9;

/// The size of a name field, terminating NUL included.
pub const NAME_LEN: usize = 32;

/// The most handles one bulk call takes.
pub const BULK_MAX: u32 = 1024;

/// The largest object, pool element or kmalloc size the device serves.
pub const MAX_OBJECT_SIZE: u32 = 1 << 20;

/// The largest page order of a pages-backed pool (`MAX_OBJECT_SIZE` bytes).
pub const MAX_POOL_ORDER: u32 = 8;

/// The largest `min_nr` of a pool (a reserve array of 512 KiB).
pub const MAX_POOL_MIN_NR: u32 = 1 << 16;

/// The handle that stands for rslab's kmalloc in [`ObjAlloc::source`].
pub const KMALLOC: u64 = 0;

/// [`ObjAlloc::flags`]: fail with `ENOMEM` rather than sleep (`GFP_NOWAIT`).
pub const ALLOC_NOWAIT: u32 = 1 << 0;

/// [`CacheCreate::flags`]: align objects to a cache line (`SLAB_HWCACHE_ALIGN`).
pub const CACHE_HWCACHE_ALIGN: u32 = 1 << 0;
/// [`CacheCreate::flags`]: poison free objects (`SLAB_POISON`).
pub const CACHE_POISON: u32 = 1 << 1;
/// [`CacheCreate::flags`]: red zones after objects (`SLAB_RED_ZONE`).
pub const CACHE_RED_ZONE: u32 = 1 << 2;
/// [`CacheCreate::flags`]: check every free (`SLAB_CONSISTENCY_CHECKS`).
pub const CACHE_CONSISTENCY_CHECKS: u32 = 1 << 3;
/// Every valid [`CacheCreate::flags`] bit.
pub const CACHE_FLAGS: u32 =
    CACHE_HWCACHE_ALIGN | CACHE_POISON | CACHE_RED_ZONE | CACHE_CONSISTENCY_CHECKS;

/// [`PoolCreate::backend`]: objects of a cache created on the same file.
pub const BACKEND_CACHE: u32 = 0;
/// [`PoolCreate::backend`]: `size`-byte allocations of rslab's kmalloc.
pub const BACKEND_KMALLOC: u32 = 1;
/// [`PoolCreate::backend`]: `2^order` contiguous pages.
pub const BACKEND_PAGES: u32 = 2;

/// The number of event counters in [`CacheInfo::events`].
pub const NR_EVENTS: usize = 11;

/// The event counters' names, in [`CacheInfo::events`] order (SLUB's
/// `SLUB_STATS` sysfs names where SLUB has one).
pub const EVENT_NAMES: [&str; NR_EVENTS] = [
    "alloc_fastpath",
    "alloc_slowpath",
    "free_fastpath",
    "free_slowpath",
    "alloc_slab",
    "free_slab",
    "sheaf_refill",
    "sheaf_flush",
    "node_mismatch",
    "alloc_failed",
    "order_fallback",
];

/// Defines an ABI struct and proves at compile time that it has no padding
/// (its size is the sum of its fields') and is a multiple of 8 bytes (so
/// 32-bit and 64-bit callers agree).
macro_rules! abi_struct {
    ($(#[$meta:meta])* pub struct $name:ident {
        $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)*
    }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        const _: () = {
            let fields = 0 $(+ core::mem::size_of::<$ty>())*;
            assert!(core::mem::size_of::<$name>() == fields);
            assert!(core::mem::size_of::<$name>() % 8 == 0);
        };
    };
}

abi_struct! {
    /// `RSLAB_IOC_INFO`: the ABI version and the limits in force.
    pub struct Info {
        /// [`ABI_VERSION`].
        pub version: u32,
        /// The number of kmalloc size classes.
        pub kmalloc_classes: u32,
        /// The most handles one open file may hold.
        pub max_objects: u64,
        /// The most bytes one open file may hold.
        pub max_bytes: u64,
        /// The most bytes all open files together may hold.
        pub max_total_bytes: u64,
        /// [`MAX_OBJECT_SIZE`].
        pub max_object_size: u64,
    }
}

abi_struct! {
    /// A command on one handle: `RSLAB_IOC_CACHE_DESTROY`, `RSLAB_IOC_FREE`,
    /// `RSLAB_IOC_POOL_DESTROY`, `RSLAB_IOC_SHRINK`.
    pub struct HandleArg {
        /// [`ABI_VERSION`].
        pub version: u32,
        /// Must be 0.
        pub flags: u32,
        /// The handle.
        pub id: u64,
    }
}

abi_struct! {
    /// `RSLAB_IOC_CACHE_CREATE`: creates a cache owned by the file.
    pub struct CacheCreate {
        /// [`ABI_VERSION`].
        pub version: u32,
        /// `CACHE_*` flags.
        pub flags: u32,
        /// The object size, 1 to [`MAX_OBJECT_SIZE`].
        pub size: u32,
        /// The alignment: 0 (the default, 8) or a power of two up to a page.
        pub align: u32,
        /// The name: `[A-Za-z0-9_.-]`, 1 to 31 bytes, NUL-terminated.
        pub name: [u8; NAME_LEN],
        /// Out: the cache's handle.
        pub id: u64,
    }
}

abi_struct! {
    /// `RSLAB_IOC_ALLOC`: allocates one zeroed object.
    pub struct ObjAlloc {
        /// [`ABI_VERSION`].
        pub version: u32,
        /// [`ALLOC_NOWAIT`] or 0.
        pub flags: u32,
        /// A cache or pool handle, or [`KMALLOC`].
        pub source: u64,
        /// For [`KMALLOC`], the size (1 to [`MAX_OBJECT_SIZE`]); else 0.
        pub size: u32,
        /// Must be 0.
        pub reserved: u32,
        /// Out: the object's handle.
        pub id: u64,
    }
}

abi_struct! {
    /// `RSLAB_IOC_WRITE` and `RSLAB_IOC_READ`: copies `len` bytes between
    /// user memory at `buf` and an object at `offset`.
    pub struct ObjIo {
        /// [`ABI_VERSION`].
        pub version: u32,
        /// Must be 0.
        pub flags: u32,
        /// The object's handle.
        pub id: u64,
        /// Where in the object; `offset + len` must not pass its end.
        pub offset: u32,
        /// How many bytes.
        pub len: u32,
        /// The user buffer's address.
        pub buf: u64,
    }
}

abi_struct! {
    /// `RSLAB_IOC_BULK_ALLOC` and `RSLAB_IOC_BULK_FREE`: `count` objects of
    /// one cache at once, their handles in the user array at `ids`.
    pub struct Bulk {
        /// [`ABI_VERSION`].
        pub version: u32,
        /// Must be 0.
        pub flags: u32,
        /// The cache's handle.
        pub cache: u64,
        /// How many, 1 to [`BULK_MAX`].
        pub count: u32,
        /// Must be 0.
        pub reserved: u32,
        /// The address of a `u64[count]` of handles (out for alloc, in for free).
        pub ids: u64,
    }
}

abi_struct! {
    /// `RSLAB_IOC_POOL_CREATE`: creates a pool owned by the file.
    pub struct PoolCreate {
        /// [`ABI_VERSION`].
        pub version: u32,
        /// Must be 0.
        pub flags: u32,
        /// `BACKEND_*`.
        pub backend: u32,
        /// Elements kept in reserve.
        pub min_nr: u32,
        /// For [`BACKEND_CACHE`], the cache's handle; else 0.
        pub cache: u64,
        /// For [`BACKEND_KMALLOC`], the size; else 0.
        pub size: u32,
        /// For [`BACKEND_PAGES`], the order (up to [`MAX_POOL_ORDER`]); else 0.
        pub order: u32,
        /// The name, as for [`CacheCreate::name`].
        pub name: [u8; NAME_LEN],
        /// Out: the pool's handle.
        pub id: u64,
    }
}

abi_struct! {
    /// `RSLAB_IOC_POOL_RESIZE`: changes a pool's `min_nr`.
    pub struct PoolResize {
        /// [`ABI_VERSION`].
        pub version: u32,
        /// Must be 0.
        pub flags: u32,
        /// The pool's handle.
        pub id: u64,
        /// The new reserve size.
        pub min_nr: u32,
        /// Must be 0.
        pub reserved: u32,
    }
}

abi_struct! {
    /// `RSLAB_IOC_CACHE_INFO`: a snapshot of one cache.
    pub struct CacheInfo {
        /// [`ABI_VERSION`].
        pub version: u32,
        /// Must be 0.
        pub flags: u32,
        /// The cache's handle.
        pub id: u64,
        /// Out: the object size asked for.
        pub object_size: u32,
        /// Out: the stride between objects.
        pub size: u32,
        /// Out: the object alignment.
        pub align: u32,
        /// Out: the preferred slab order.
        pub order: u32,
        /// Out: objects per slab at that order.
        pub objs_per_slab: u32,
        /// Out: the `CACHE_*` flags in effect.
        pub cache_flags: u32,
        /// Out: objects handed out (those cached per CPU count as free).
        pub active_objs: u64,
        /// Out: objects in all slabs.
        pub num_objs: u64,
        /// Out: slabs with an object allocated.
        pub active_slabs: u64,
        /// Out: all slabs.
        pub num_slabs: u64,
        /// Out: pages held by the slabs.
        pub pages: u64,
        /// Out: event counters, named by [`EVENT_NAMES`].
        pub events: [u64; NR_EVENTS],
    }
}

abi_struct! {
    /// `RSLAB_IOC_POOL_INFO`: a snapshot of one pool.
    pub struct PoolInfo {
        /// [`ABI_VERSION`].
        pub version: u32,
        /// Must be 0.
        pub flags: u32,
        /// The pool's handle.
        pub id: u64,
        /// Out: `BACKEND_*`.
        pub backend: u32,
        /// Out: the element size in bytes.
        pub element_size: u32,
        /// Out: elements kept in reserve.
        pub min_nr: u64,
        /// Out: elements in reserve now.
        pub curr_nr: u64,
        /// Out: elements handed out and not freed.
        pub outstanding: u64,
        /// Out: allocations the backend served.
        pub alloc_backend: u64,
        /// Out: allocations the reserve served.
        pub alloc_reserve: u64,
        /// Out: allocations that slept for a free.
        pub waits: u64,
        /// Out: allocations that failed.
        pub failures: u64,
        /// Out: frees kept in the reserve.
        pub free_reserve: u64,
        /// Out: frees returned to the backend.
        pub free_backend: u64,
    }
}

const DIR_WRITE: u32 = 1;
const DIR_READ: u32 = 2;

/// `_IOC(dir, IOC_MAGIC, nr, size)` with the generic (x86, arm64, riscv)
/// encoding; the module checks every command against the kernel's own
/// `_IOR`/`_IOW`/`_IOWR` (`device.rs`).
const fn ioc<T>(dir: u32, nr: u32) -> u32 {
    (dir << 30) | ((core::mem::size_of::<T>() as u32) << 16) | (IOC_MAGIC << 8) | nr
}

/// Returns the ABI version and limits.
pub const IOC_INFO: u32 = ioc::<Info>(DIR_READ, 0);
/// Creates a cache.
pub const IOC_CACHE_CREATE: u32 = ioc::<CacheCreate>(DIR_READ | DIR_WRITE, 1);
/// Destroys a cache with no objects or pools left.
pub const IOC_CACHE_DESTROY: u32 = ioc::<HandleArg>(DIR_WRITE, 2);
/// Allocates an object from a cache, a pool or kmalloc.
pub const IOC_ALLOC: u32 = ioc::<ObjAlloc>(DIR_READ | DIR_WRITE, 3);
/// Frees an object.
pub const IOC_FREE: u32 = ioc::<HandleArg>(DIR_WRITE, 4);
/// Writes bytes into an object.
pub const IOC_WRITE: u32 = ioc::<ObjIo>(DIR_WRITE, 5);
/// Reads bytes from an object.
pub const IOC_READ: u32 = ioc::<ObjIo>(DIR_WRITE, 6);
/// Allocates objects of a cache in bulk.
pub const IOC_BULK_ALLOC: u32 = ioc::<Bulk>(DIR_WRITE, 7);
/// Frees objects of a cache in bulk.
pub const IOC_BULK_FREE: u32 = ioc::<Bulk>(DIR_WRITE, 8);
/// Creates a pool.
pub const IOC_POOL_CREATE: u32 = ioc::<PoolCreate>(DIR_READ | DIR_WRITE, 9);
/// Changes a pool's reserve.
pub const IOC_POOL_RESIZE: u32 = ioc::<PoolResize>(DIR_WRITE, 10);
/// Destroys a pool with no elements out.
pub const IOC_POOL_DESTROY: u32 = ioc::<HandleArg>(DIR_WRITE, 11);
/// Shrinks a cache; returns the number of slabs freed.
pub const IOC_SHRINK: u32 = ioc::<HandleArg>(DIR_WRITE, 12);
/// A snapshot of a cache.
pub const IOC_CACHE_INFO: u32 = ioc::<CacheInfo>(DIR_READ | DIR_WRITE, 13);
/// A snapshot of a pool.
pub const IOC_POOL_INFO: u32 = ioc::<PoolInfo>(DIR_READ | DIR_WRITE, 14);

/// Every command, with its name as the C header spells it, indexed by its
/// number (`_IOC_NR`).
pub const COMMANDS: [(&str, u32); 15] = [
    ("RSLAB_IOC_INFO", IOC_INFO),
    ("RSLAB_IOC_CACHE_CREATE", IOC_CACHE_CREATE),
    ("RSLAB_IOC_CACHE_DESTROY", IOC_CACHE_DESTROY),
    ("RSLAB_IOC_ALLOC", IOC_ALLOC),
    ("RSLAB_IOC_FREE", IOC_FREE),
    ("RSLAB_IOC_WRITE", IOC_WRITE),
    ("RSLAB_IOC_READ", IOC_READ),
    ("RSLAB_IOC_BULK_ALLOC", IOC_BULK_ALLOC),
    ("RSLAB_IOC_BULK_FREE", IOC_BULK_FREE),
    ("RSLAB_IOC_POOL_CREATE", IOC_POOL_CREATE),
    ("RSLAB_IOC_POOL_RESIZE", IOC_POOL_RESIZE),
    ("RSLAB_IOC_POOL_DESTROY", IOC_POOL_DESTROY),
    ("RSLAB_IOC_SHRINK", IOC_SHRINK),
    ("RSLAB_IOC_CACHE_INFO", IOC_CACHE_INFO),
    ("RSLAB_IOC_POOL_INFO", IOC_POOL_INFO),
];

const _: () = {
    let mut nr = 0;
    while nr < COMMANDS.len() {
        assert!(COMMANDS[nr].1 & 0xff == nr as u32);
        nr += 1;
    }
};
