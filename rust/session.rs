// SPDX-License-Identifier: GPL-2.0

//! One open `/dev/rslab` file: what it owns, and what each command does.
//!
//! Everything a file makes (caches, pools, objects) is in its handle
//! [`Table`] and is released when the file closes. Commands validate all of
//! their input before they change anything, charge the file's quota before
//! they allocate, and report a new handle to user space before they commit
//! it, so a failed command leaves nothing behind.
//!
//! The table's mutex is never held while an allocation may wait for a pool
//! (a free on another thread of the same file must be able to wake it) or
//! while object bytes are copied from or to user memory.

use crate::device::{Arg, Shared};
use crate::flags::CacheFlags;
use crate::handles::{release, Kind, Table};
use crate::mempool::Backend;
use crate::object::{Object, Source};
use crate::quota::Account;
use crate::uapi::{self, Bulk, CacheCreate, CacheInfo, HandleArg, ObjAlloc, ObjIo, PoolCreate};
use crate::uapi::{Info, PoolInfo, PoolResize};
use core::ops::Range;
use kernel::alloc::KVVec;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::uaccess::{UserPtr, UserSlice};

/// The state of one open file.
#[pin_data(PinnedDrop)]
pub struct Session {
    shared: Arc<Shared>,
    account: Arc<Account>,
    #[pin]
    table: Mutex<Table>,
}

/// `EINVAL` unless `flags` has only bits of `allowed`.
fn check_flags(flags: u32, allowed: u32) -> Result {
    if flags & !allowed != 0 {
        return Err(EINVAL);
    }
    Ok(())
}

/// `EINVAL` unless `cond`.
fn ensure(cond: bool) -> Result {
    if cond {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

/// A size user space asked for, if it is 1 to [`uapi::MAX_OBJECT_SIZE`].
fn object_size(size: u32) -> Result<usize> {
    ensure((1..=uapi::MAX_OBJECT_SIZE).contains(&size))?;
    Ok(size as usize)
}

/// The name in a name field: `[A-Za-z0-9_.-]`, 1 to 31 bytes, then NUL,
/// and not `.` or `..` (it names a debugfs directory).
fn name(field: &[u8; uapi::NAME_LEN]) -> Result<&CStr> {
    let len = field.iter().position(|&b| b == 0).ok_or(EINVAL)?;
    let ok = |b: &u8| b.is_ascii_alphanumeric() || b"_.-".contains(b);
    let dots = matches!(&field[..len], b"." | b"..");
    ensure(len > 0 && !dots && field[..len].iter().all(ok))?;
    CStr::from_bytes_with_nul(&field[..=len]).map_err(|_| EINVAL)
}

/// A pool's `min_nr` if it is 1 to [`uapi::MAX_POOL_MIN_NR`].
fn pool_min_nr(min_nr: u32) -> Result<usize> {
    ensure((1..=uapi::MAX_POOL_MIN_NR).contains(&min_nr))?;
    Ok(min_nr as usize)
}

/// What a reserve of `min_nr` elements of `backend` is charged: every
/// element's real footprint. Cannot overflow: both factors are bounded
/// (at most 2^20 + 8 bytes times 2^16).
fn reserve_bytes(backend: &Backend, min_nr: usize) -> usize {
    backend.footprint().saturating_mul(min_nr)
}

/// `offset..offset + len` if it lies within `size` bytes.
fn range(offset: u32, len: u32, size: usize) -> Result<Range<usize>> {
    let (start, len) = (offset as usize, len as usize);
    let end = start.checked_add(len).ok_or(EINVAL)?;
    ensure(end <= size)?;
    Ok(start..end)
}

/// The user buffer of `len` bytes at `addr`.
fn user_buf(addr: u64, len: usize) -> Result<UserSlice> {
    let addr = usize::try_from(addr).map_err(|_| EFAULT)?;
    Ok(UserSlice::new(UserPtr::from_addr(addr), len))
}

impl Session {
    /// A new, empty session.
    pub fn new(shared: &Arc<Shared>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(Self {
                account: shared.quota.open()?,
                shared: shared.clone(),
                table <- kernel::new_mutex!(Table::default(), "rslab_session"),
            }? Error),
            GFP_KERNEL,
        )
    }

    /// `RSLAB_IOC_INFO`.
    pub fn info(&self, mut arg: Arg<Info>) -> Result {
        let limits = self.shared.quota.limits();
        arg.req = Info {
            version: uapi::ABI_VERSION,
            kmalloc_classes: crate::kmalloc::SIZE_CLASSES.len() as u32,
            max_objects: limits.objects as u64,
            max_bytes: limits.bytes as u64,
            max_total_bytes: limits.total_bytes as u64,
            max_object_size: uapi::MAX_OBJECT_SIZE.into(),
        };
        arg.reply()
    }

    /// `RSLAB_IOC_CACHE_CREATE`.
    pub fn cache_create(&self, mut arg: Arg<CacheCreate>) -> Result {
        let req = arg.req;
        check_flags(req.flags, uapi::CACHE_FLAGS)?;
        let size = object_size(req.size)?;
        let align = match req.align {
            0 => 8,
            a => a as usize,
        };
        ensure(align.is_power_of_two() && align <= kernel::page::PAGE_SIZE)?;
        let name = name(&req.name)?;
        let charge = self.account.charge(0)?;
        let registry = &self.shared.registry;
        let cache = registry.create(name, size, align, CacheFlags::from_abi(req.flags), None)?;
        // Reserved only now, so that a refused name does not use a handle.
        let mut table = self.table.lock();
        let reported = table.reserve().and_then(|slot| {
            arg.req.id = slot.id();
            arg.reply().map(|()| slot)
        });
        match reported {
            Ok(slot) => {
                table.insert(slot, Kind::Cache(cache), charge);
                Ok(())
            }
            Err(e) => {
                registry.destroy(cache);
                Err(e)
            }
        }
    }

    /// `RSLAB_IOC_CACHE_DESTROY` (`pool` false) and `RSLAB_IOC_POOL_DESTROY`.
    pub fn destroy(&self, arg: Arg<HandleArg>, pool: bool) -> Result {
        check_flags(arg.req.flags, 0)?;
        let registry = &self.shared.registry;
        self.table.lock().destroy(arg.req.id, pool, registry)
    }

    /// `RSLAB_IOC_ALLOC`.
    pub fn alloc(&self, mut arg: Arg<ObjAlloc>) -> Result {
        let req = arg.req;
        check_flags(req.flags, uapi::ALLOC_NOWAIT)?;
        ensure(req.reserved == 0)?;
        let gfp = if req.flags & uapi::ALLOC_NOWAIT != 0 {
            GFP_NOWAIT | __GFP_NOWARN
        } else {
            GFP_KERNEL
        };
        let mut table = self.table.lock();
        let source = if req.source == uapi::KMALLOC {
            Source::Kmalloc(self.shared.kmalloc.clone(), object_size(req.size)?)
        } else {
            ensure(req.size == 0)?;
            table.use_source(req.source, 1)?
        };
        let prepared = self
            .account
            .charge(source.footprint())
            .and_then(|charge| Ok((charge, table.reserve()?)));
        let (charge, slot) = match prepared {
            Ok(p) => p,
            Err(e) => {
                table.unuse(req.source, 1);
                return Err(e);
            }
        };
        // A pool allocation may wait for a free: not under the lock.
        drop(table);
        let made = Object::new(source, gfp);
        let mut table = self.table.lock();
        arg.req.id = slot.id();
        match made.and_then(|object| arg.reply().map(|()| object)) {
            Ok(object) => {
                table.insert(slot, Kind::Object(object, req.source), charge);
                Ok(())
            }
            Err(e) => {
                table.unuse(req.source, 1);
                Err(e)
            }
        }
    }

    /// `RSLAB_IOC_FREE`.
    pub fn free(&self, arg: Arg<HandleArg>) -> Result {
        check_flags(arg.req.flags, 0)?;
        self.table.lock().free_object(arg.req.id)
    }

    /// `RSLAB_IOC_WRITE`: the handle and range are checked, then the bytes
    /// copied in, and only then is the object touched, so a bad buffer
    /// changes nothing. (A handle is never reused, so the object found the
    /// second time is the one checked, or gone.)
    pub fn write(&self, arg: Arg<ObjIo>) -> Result {
        let req = arg.req;
        check_flags(req.flags, 0)?;
        let size = self.table.lock().object_mut(req.id)?.bytes().len();
        let range = range(req.offset, req.len, size)?;
        let mut data = KVVec::new();
        user_buf(req.buf, range.len())?.read_all(&mut data, GFP_KERNEL)?;
        let mut table = self.table.lock();
        table.object_mut(req.id)?.bytes_mut()[range].copy_from_slice(&data);
        Ok(())
    }

    /// `RSLAB_IOC_READ`: only bytes user space wrote, or zeroes, since
    /// every object is zeroed when made.
    pub fn read(&self, arg: Arg<ObjIo>) -> Result {
        let req = arg.req;
        check_flags(req.flags, 0)?;
        let mut data = KVVec::new();
        {
            let mut table = self.table.lock();
            let object = table.object_mut(req.id)?;
            let range = range(req.offset, req.len, object.bytes().len())?;
            data.extend_from_slice(&object.bytes()[range], GFP_KERNEL)?;
        }
        user_buf(req.buf, data.len())?.writer().write_slice(&data)
    }

    /// `RSLAB_IOC_BULK_ALLOC`.
    pub fn bulk_alloc(&self, arg: Arg<Bulk>) -> Result {
        let req = arg.req;
        let n = self.bulk_count(&req)?;
        let mut out = user_buf(req.ids, n * size_of::<u64>())?.writer();
        let mut table = self.table.lock();
        let Source::Cache(cache) = table.use_source(req.cache, n)? else {
            table.unuse(req.cache, n);
            return Err(ENOENT);
        };
        let mut prepared = || -> Result<_> {
            let mut charges = KVec::with_capacity(n, GFP_KERNEL)?;
            let mut slots = KVec::with_capacity(n, GFP_KERNEL)?;
            for _ in 0..n {
                charges.push(self.account.charge(cache.layout().size)?, GFP_KERNEL)?;
                slots.push(table.reserve()?, GFP_KERNEL)?;
            }
            let objects = Object::new_bulk(&cache, n, GFP_KERNEL)?;
            for slot in slots.iter() {
                out.write(&slot.id())?;
            }
            Ok((charges, slots, objects))
        };
        match prepared() {
            Ok((charges, slots, objects)) => {
                for ((charge, slot), object) in charges.into_iter().zip(slots).zip(objects) {
                    table.insert(slot, Kind::Object(object, req.cache), charge);
                }
                Ok(())
            }
            Err(e) => {
                table.unuse(req.cache, n);
                Err(e)
            }
        }
    }

    /// `RSLAB_IOC_BULK_FREE`: all the handles are checked before any is
    /// freed.
    pub fn bulk_free(&self, arg: Arg<Bulk>) -> Result {
        let req = arg.req;
        let n = self.bulk_count(&req)?;
        let mut reader = user_buf(req.ids, n * size_of::<u64>())?.reader();
        let mut ids = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            ids.push(reader.read::<u64>()?, GFP_KERNEL)?;
        }
        let mut table = self.table.lock();
        let cache = table.cache(req.cache)?.clone();
        let objects = table.take_objects(req.cache, &ids)?;
        drop(table);
        Object::free_bulk(&cache, objects);
        Ok(())
    }

    /// Checks a bulk request's fields and gives its count.
    fn bulk_count(&self, req: &Bulk) -> Result<usize> {
        check_flags(req.flags, 0)?;
        ensure(req.reserved == 0 && (1..=uapi::BULK_MAX).contains(&req.count))?;
        Ok(req.count as usize)
    }

    /// The backend a pool request names; a cache backend counts as a user
    /// of its cache.
    fn backend(&self, table: &mut Table, req: &PoolCreate) -> Result<Backend> {
        match req.backend {
            uapi::BACKEND_CACHE if req.size == 0 && req.order == 0 => {
                match table.use_source(req.cache, 1)? {
                    Source::Cache(cache) => Ok(Backend::Cache(cache)),
                    _ => {
                        table.unuse(req.cache, 1);
                        Err(ENOENT)
                    }
                }
            }
            uapi::BACKEND_KMALLOC if req.cache == 0 && req.order == 0 => Ok(Backend::Kmalloc(
                self.shared.kmalloc.clone(),
                object_size(req.size)?,
            )),
            uapi::BACKEND_PAGES
                if req.cache == 0 && req.size == 0 && req.order <= uapi::MAX_POOL_ORDER =>
            {
                Ok(Backend::pages(req.order))
            }
            _ => Err(EINVAL),
        }
    }

    /// `RSLAB_IOC_POOL_CREATE`.
    pub fn pool_create(&self, mut arg: Arg<PoolCreate>) -> Result {
        let req = arg.req;
        check_flags(req.flags, 0)?;
        let min_nr = pool_min_nr(req.min_nr)?;
        let name = name(&req.name)?;
        let mut table = self.table.lock();
        let backend = self.backend(&mut table, &req)?;
        let cache = (req.backend == uapi::BACKEND_CACHE).then_some(req.cache);
        let bytes = reserve_bytes(&backend, min_nr);
        let registry = &self.shared.registry;
        let made = self.account.charge(bytes).and_then(|charge| {
            let pool = registry.create_pool(name, min_nr, backend)?;
            // Reserved only now, so that a refused name does not use a handle.
            let reported = table.reserve().and_then(|slot| {
                arg.req.id = slot.id();
                arg.reply().map(|()| slot)
            });
            match reported {
                Ok(slot) => Ok((charge, slot, pool)),
                Err(e) => {
                    release(Kind::Pool(pool, None), registry);
                    Err(e)
                }
            }
        });
        match made {
            Ok((charge, slot, pool)) => {
                table.insert(slot, Kind::Pool(pool, cache), charge);
                Ok(())
            }
            Err(e) => {
                if let Some(cache) = cache {
                    table.unuse(cache, 1);
                }
                Err(e)
            }
        }
    }

    /// `RSLAB_IOC_POOL_RESIZE`: the quota is charged for the new reserve
    /// first, and refunded if the resize fails.
    pub fn pool_resize(&self, arg: Arg<PoolResize>) -> Result {
        let req = arg.req;
        check_flags(req.flags, 0)?;
        ensure(req.reserved == 0)?;
        let min_nr = pool_min_nr(req.min_nr)?;
        let mut table = self.table.lock();
        let (pool, charge) = table.pool_mut(req.id)?;
        let bytes = reserve_bytes(pool.backend(), min_nr);
        let old = charge.bytes();
        charge.resize(bytes)?;
        pool.resize(min_nr).inspect_err(|_| {
            // Cannot fail: back to what was charged before.
            let _ = charge.resize(old);
        })
    }

    /// `RSLAB_IOC_SHRINK`: returns the number of slabs freed.
    pub fn shrink(&self, arg: Arg<HandleArg>) -> Result<usize> {
        check_flags(arg.req.flags, 0)?;
        let cache = self.table.lock().cache(arg.req.id)?.clone();
        Ok(cache.shrink())
    }

    /// `RSLAB_IOC_CACHE_INFO`.
    pub fn cache_info(&self, mut arg: Arg<CacheInfo>) -> Result {
        check_flags(arg.req.flags, 0)?;
        let cache = self.table.lock().cache(arg.req.id)?.clone();
        let (l, s) = (cache.layout(), cache.stats());
        let r = &mut arg.req;
        (r.object_size, r.size, r.align) = (l.object_size as u32, l.size as u32, l.align as u32);
        (r.order, r.objs_per_slab) = (l.order, s.objperslab as u32);
        r.cache_flags = cache.flags().bits();
        (r.active_objs, r.num_objs) = (s.active_objs as u64, s.num_objs as u64);
        (r.active_slabs, r.num_slabs) = (s.active_slabs as u64, s.num_slabs as u64);
        r.pages = s.pages as u64;
        r.events = s.events;
        arg.reply()
    }

    /// `RSLAB_IOC_POOL_INFO`.
    pub fn pool_info(&self, mut arg: Arg<PoolInfo>) -> Result {
        check_flags(arg.req.flags, 0)?;
        let pool = self.table.lock().pool(arg.req.id)?.clone();
        let s = pool.stats();
        let r = &mut arg.req;
        r.backend = match pool.backend() {
            Backend::Cache(_) => uapi::BACKEND_CACHE,
            Backend::Kmalloc(..) => uapi::BACKEND_KMALLOC,
            Backend::Pages(..) => uapi::BACKEND_PAGES,
        };
        r.element_size = pool.backend().element_size() as u32;
        (r.min_nr, r.curr_nr, r.outstanding) =
            (s.min_nr as u64, s.curr_nr as u64, s.outstanding as u64);
        (r.alloc_backend, r.alloc_reserve) = (s.alloc_backend, s.alloc_reserve);
        (r.waits, r.failures) = (s.waits, s.failures);
        (r.free_reserve, r.free_backend) = (s.free_reserve, s.free_backend);
        arg.reply()
    }
}

#[pinned_drop]
impl PinnedDrop for Session {
    /// The file is closing: release everything it made.
    fn drop(self: Pin<&mut Self>) {
        self.table.lock().release(&self.shared.registry);
    }
}
