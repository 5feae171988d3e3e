// SPDX-License-Identifier: GPL-2.0

//! One open `/dev/rslab` file: what it owns, and what each command does.
//!
//! Everything a file makes (caches, pools, objects) is in its handle
//! [`Table`] and is released when the file closes. Commands validate all of
//! their input before they change anything, charge the file's quota before
//! they allocate, and report a new handle to user space before they commit
//! it, so a failed command leaves nothing behind.
//!
//! The table's mutex is held only to look up, reserve, insert or remove
//! entries: never while an allocation may wait for a pool (a free on
//! another thread of the same file must be able to wake it), while a pool
//! fills its reserve, or while anything is copied from or to user memory
//! (a user page may fault and wait, on userfaultfd for as long as user
//! space likes, and the file's other threads must not wait with it).

use crate::cache::flags::CacheFlags;
use crate::cache::Cache;
use crate::debugfs::Registry;
use crate::device::arg::Arg;
use crate::device::handles::{release, Kind, Table};
use crate::device::object::{Object, Source};
use crate::device::quota::{Account, Charge, Global};
use crate::device::uapi::{
    self, Bulk, CacheCreate, CacheInfo, HandleArg, ObjAlloc, ObjIo, PoolCreate,
};
use crate::device::uapi::{Info, PoolInfo, PoolResize};
use crate::kmalloc::Kmalloc;
use crate::mempool::{Backend, Mempool};
use crate::sys;
use core::ops::Range;
use kernel::alloc::KVVec;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::transmute::{AsBytes, FromBytes};
use kernel::uaccess::{UserPtr, UserSlice};

/// What every session shares: the module's allocators and the quotas.
pub struct Shared {
    /// The registry that user-made caches and pools join.
    pub registry: Arc<Registry>,
    /// The kmalloc behind handle 0.
    pub kmalloc: Arc<Kmalloc>,
    /// The device-wide usage and limits.
    pub quota: Arc<Global>,
}

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
            GFP_KERNEL_ACCOUNT,
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

    /// Reports a new handle to user space, then commits it: reserves its
    /// slot, writes the reply (with the id `set_id` puts in it) without the
    /// table's lock, and inserts `kind` with its charge. On failure, `kind`
    /// is released and nothing stays behind.
    fn publish<T: FromBytes + AsBytes>(
        &self,
        mut arg: Arg<T>,
        set_id: impl FnOnce(&mut T, u64),
        kind: Kind,
        charge: Charge,
    ) -> Result {
        let reported = self.table.lock().reserve().and_then(|slot| {
            set_id(&mut arg.req, slot.id());
            arg.reply().map(|()| slot)
        });
        match reported {
            Ok(slot) => {
                self.table.lock().insert(slot, kind, charge);
                Ok(())
            }
            Err(e) => {
                self.discard(kind);
                Err(e)
            }
        }
    }

    /// Releases what a failed command made, and ends its use of its source.
    fn discard(&self, kind: Kind) {
        let source = match &kind {
            Kind::Object(_, s) | Kind::Pool(_, Some(s)) => Some(*s),
            _ => None,
        };
        // The object or pool goes before its source may be destroyed.
        release(kind, &self.shared.registry);
        if let Some(source) = source {
            self.table.lock().unuse(source, 1);
        }
    }

    /// `RSLAB_IOC_CACHE_CREATE`.
    pub fn cache_create(&self, arg: Arg<CacheCreate>) -> Result {
        let req = arg.req;
        check_flags(req.flags, uapi::CACHE_FLAGS)?;
        let size = object_size(req.size)?;
        let align = match req.align {
            0 => 8,
            a => a as usize,
        };
        ensure(align.is_power_of_two() && align <= kernel::page::PAGE_SIZE)?;
        let name = name(&req.name)?;
        let flags = CacheFlags::from_abi(req.flags);
        let charge = self
            .account
            .charge(Cache::fixed_footprint_of(size, align, flags)?)?;
        let cache = self
            .shared
            .registry
            .create(name, size, align, flags, None)?;
        self.publish(arg, |r, id| r.id = id, Kind::Cache(cache), charge)
    }

    /// `RSLAB_IOC_CACHE_DESTROY` (`pool` false) and `RSLAB_IOC_POOL_DESTROY`.
    pub fn destroy(&self, arg: Arg<HandleArg>, pool: bool) -> Result {
        check_flags(arg.req.flags, 0)?;
        let registry = &self.shared.registry;
        self.table.lock().destroy(arg.req.id, pool, registry)
    }

    /// `RSLAB_IOC_ALLOC`.
    pub fn alloc(&self, arg: Arg<ObjAlloc>) -> Result {
        let req = arg.req;
        check_flags(req.flags, uapi::ALLOC_NOWAIT)?;
        ensure(req.reserved == 0)?;
        let gfp = sys::gfp_user(req.flags & uapi::ALLOC_NOWAIT != 0);
        let source = if req.source == uapi::KMALLOC {
            Source::Kmalloc(self.shared.kmalloc.clone(), object_size(req.size)?)
        } else {
            ensure(req.size == 0)?;
            self.table.lock().use_source(req.source, 1)?
        };
        // A pool allocation may wait for a free: not under the lock.
        let made = self
            .account
            .charge(source.footprint())
            .and_then(|charge| Ok((Object::new(source, gfp)?, charge)));
        match made {
            Ok((object, charge)) => self.publish(
                arg,
                |r, id| r.id = id,
                Kind::Object(object, req.source),
                charge,
            ),
            Err(e) => {
                self.table.lock().unuse(req.source, 1);
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
        user_buf(req.buf, range.len())?.read_all(&mut data, GFP_KERNEL_ACCOUNT)?;
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
            data.extend_from_slice(&object.bytes()[range], GFP_KERNEL_ACCOUNT)?;
        }
        user_buf(req.buf, data.len())?.writer().write_slice(&data)
    }

    /// `RSLAB_IOC_BULK_ALLOC`: the ids are written out before any handle
    /// is committed.
    pub fn bulk_alloc(&self, arg: Arg<Bulk>) -> Result {
        let req = arg.req;
        let n = self.bulk_count(&req)?;
        let mut out = user_buf(req.ids, n * size_of::<u64>())?.writer();
        let cache = {
            let mut table = self.table.lock();
            match table.use_source(req.cache, n)? {
                Source::Cache(cache) => cache,
                _ => {
                    table.unuse(req.cache, n);
                    return Err(ENOENT);
                }
            }
        };
        let mut prepared = || -> Result<_> {
            let mut charges = KVec::with_capacity(n, GFP_KERNEL)?;
            for _ in 0..n {
                charges.push(self.account.charge(cache.object_footprint())?, GFP_KERNEL)?;
            }
            let objects = Object::new_bulk(&cache, n, sys::gfp_user(false))?;
            let mut slots = KVec::with_capacity(n, GFP_KERNEL)?;
            {
                let mut table = self.table.lock();
                for _ in 0..n {
                    slots.push(table.reserve()?, GFP_KERNEL)?;
                }
            }
            for slot in slots.iter() {
                out.write(&slot.id())?;
            }
            Ok((charges, slots, objects))
        };
        match prepared() {
            Ok((charges, slots, objects)) => {
                let mut table = self.table.lock();
                for ((charge, slot), object) in charges.into_iter().zip(slots).zip(objects) {
                    table.insert(slot, Kind::Object(object, req.cache), charge);
                }
                Ok(())
            }
            Err(e) => {
                // Every object made is freed by now, with `prepared`'s locals.
                self.table.lock().unuse(req.cache, n);
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

    /// `RSLAB_IOC_POOL_CREATE`: the reserve is filled without the table's
    /// lock held.
    pub fn pool_create(&self, arg: Arg<PoolCreate>) -> Result {
        let req = arg.req;
        check_flags(req.flags, 0)?;
        let min_nr = pool_min_nr(req.min_nr)?;
        let name = name(&req.name)?;
        let backend = self.backend(&mut self.table.lock(), &req)?;
        let cache = (req.backend == uapi::BACKEND_CACHE).then_some(req.cache);
        let made = self
            .account
            .charge(Mempool::footprint_for(&backend, min_nr))
            .and_then(|charge| {
                let registry = &self.shared.registry;
                let pool = registry.create_pool(name, min_nr, backend, sys::gfp_user(false))?;
                Ok((pool, charge))
            });
        match made {
            Ok((pool, charge)) => {
                self.publish(arg, |r, id| r.id = id, Kind::Pool(pool, cache), charge)
            }
            Err(e) => {
                if let Some(cache) = cache {
                    self.table.lock().unuse(cache, 1);
                }
                Err(e)
            }
        }
    }

    /// `RSLAB_IOC_POOL_RESIZE`: the quota is charged for the larger of the
    /// old and the new reserve first; the resize runs without the table's
    /// lock; then the charge is set to what the pool really holds.
    pub fn pool_resize(&self, arg: Arg<PoolResize>) -> Result {
        let req = arg.req;
        check_flags(req.flags, 0)?;
        ensure(req.reserved == 0)?;
        let min_nr = pool_min_nr(req.min_nr)?;
        let pool = {
            let mut table = self.table.lock();
            let (pool, charge) = table.pool_mut(req.id)?;
            let bytes = Mempool::footprint_for(pool.backend(), min_nr);
            charge.resize(bytes.max(charge.bytes()))?;
            pool.clone()
        };
        let resized = pool.resize_gfp(min_nr, sys::gfp_user(false));
        // The pool may have been destroyed meanwhile, and its charge with it.
        if let Ok((pool, charge)) = self.table.lock().pool_mut(req.id) {
            // At most what was charged above, unless a racing resize grew
            // the pool again; a refusal then keeps the charge that resize
            // took, which covers it.
            let _ = charge.resize(pool.footprint());
        }
        resized
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
