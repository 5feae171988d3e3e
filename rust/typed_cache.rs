// SPDX-License-Identifier: GPL-2.0

//! A typed cache: [`TypedCache<T>`] holds `T`s, sized and aligned for `T`,
//! and builds each one in place with a pin-initialiser, giving a
//! [`CacheBox<T>`] that drops its `T` and frees the object when it goes.
//!
//! `kmem_cache_create()` and a cast are how C drivers keep their objects in
//! a cache; here the type does it: no size or alignment to get wrong, no
//! uninitialised object to touch, no free to forget. A `T` that must not
//! move (it holds a lock, or is on an intrusive list) is built where it
//! will live, through [`TypedCache::pin_init`], as `KBox::pin_init` does,
//! and handed out as `Pin<CacheBox<T>>`.
//!
//! ```ignore
//! #[pin_data]
//! struct Request {
//!     #[pin]
//!     state: SpinLock<u32>,
//!     id: u64,
//! }
//!
//! let requests = TypedCache::<Request>::new(c"requests", CacheFlags::NONE)?;
//! let r = requests.pin_init(
//!     pin_init!(Request { state <- new_spinlock!(0), id: 7 }),
//!     GFP_KERNEL,
//! )?;
//! *r.state.lock() += 1;
//! // Dropping `r` drops the request and frees its object.
//! ```

use crate::cache::flags::CacheFlags;
use crate::cache::Cache;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use kernel::alloc::{AllocError, Flags};
use kernel::prelude::*;
use kernel::sync::Arc;

/// A cache of `T`s.
///
/// # Invariants
///
/// `cache`'s objects are at least `size_of::<T>()` bytes and aligned to
/// `align_of::<T>()`.
pub struct TypedCache<T> {
    cache: Arc<Cache>,
    _type: PhantomData<fn() -> T>,
}

impl<T> TypedCache<T> {
    /// Creates a cache named `name` for `T`s (a zero-sized `T` takes one
    /// byte), with `flags` (poisoning, red zones and checks work as on any
    /// cache). Errors as [`Cache::new`].
    pub fn new(name: &CStr, flags: impl Into<CacheFlags>) -> Result<Self> {
        let size = size_of::<T>().max(1);
        let cache = Cache::new(name, size, align_of::<T>(), flags, None)?;
        // INVARIANT: Created for `T`'s size and alignment.
        Ok(Self {
            cache,
            _type: PhantomData,
        })
    }

    /// The untyped cache underneath (its stats, fault injection, shrink).
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// A new object, for `init` to fill where it will stay; on error (the
    /// initialiser's, or `ENOMEM` when the cache has no object) nothing is
    /// left allocated. As `KBox::pin_init`.
    pub fn pin_init<E>(&self, init: impl PinInit<T, E>, gfp: Flags) -> Result<Pin<CacheBox<T>>>
    where
        Error: From<E>,
    {
        // SAFETY: Delegates to `init`, only changing its error type.
        let init = unsafe {
            pin_init::pin_init_from_closure(|slot| {
                pin_init::raw_try_init(slot, init).map_err(Error::from)
            })
        };
        self.try_pin_init(init, gfp)
    }

    /// [`TypedCache::pin_init`] keeping the initialiser's error type, which
    /// must say what `AllocError` is. As `KBox::try_pin_init`.
    pub fn try_pin_init<E>(
        &self,
        init: impl PinInit<T, E>,
        gfp: Flags,
    ) -> Result<Pin<CacheBox<T>>, E>
    where
        E: From<AllocError>,
    {
        let slot = self.slot(gfp)?;
        // SAFETY: `slot` is a fresh object of this cache, big and aligned
        // enough for `T` (type invariant), that nothing else references; on
        // error it is only freed, and it never moves: the box is pinned.
        match unsafe { pin_init::raw_try_init(slot.as_ptr(), init) } {
            // SAFETY: Initialised above; a `CacheBox` never moves its `T`,
            // and `Pin` lets it out only where `T: Unpin`.
            Ok(()) => Ok(unsafe { Pin::new_unchecked(self.boxed(slot)) }),
            Err(e) => {
                // SAFETY: From this cache, freed once; the failed initialiser
                // left nothing to drop.
                unsafe { self.cache.free(slot.cast()) };
                Err(e)
            }
        }
    }

    /// A new object holding `value`.
    pub fn new_box(&self, value: T, gfp: Flags) -> Result<CacheBox<T>, AllocError> {
        let slot = self.slot(gfp)?;
        // SAFETY: A fresh object of this cache, sized and aligned for `T`
        // (type invariant), that nothing else references.
        unsafe { slot.as_ptr().write(value) };
        Ok(self.boxed(slot))
    }

    /// An uninitialised object for a `T`.
    fn slot(&self, gfp: Flags) -> Result<NonNull<T>, AllocError> {
        let obj = self.cache.alloc(gfp).map_err(|_| AllocError)?;
        Ok(obj.cast())
    }

    /// Owns the initialised `T` at `obj`.
    fn boxed(&self, obj: NonNull<T>) -> CacheBox<T> {
        // INVARIANT: The caller initialised `obj`, an object of this cache.
        CacheBox {
            obj,
            cache: self.cache.clone(),
        }
    }
}

/// A `T` in an object of a [`TypedCache<T>`]: dropping it drops the `T`
/// and frees the object. It keeps the cache alive.
///
/// # Invariants
///
/// `obj` is an object of `cache`, allocated, holding an initialised `T`
/// that only this box owns.
pub struct CacheBox<T> {
    obj: NonNull<T>,
    cache: Arc<Cache>,
}

// SAFETY: The box owns its `T` as a `KBox` does; the cache is `Sync`.
unsafe impl<T: Send> Send for CacheBox<T> {}
// SAFETY: Shared access reaches only `&T`.
unsafe impl<T: Sync> Sync for CacheBox<T> {}

impl<T> Deref for CacheBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: An initialised `T` that this box owns (type invariant).
        unsafe { self.obj.as_ref() }
    }
}

impl<T> DerefMut for CacheBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: As for `deref`, and `&mut self` is the only access.
        unsafe { self.obj.as_mut() }
    }
}

impl<T> Drop for CacheBox<T> {
    fn drop(&mut self) {
        // SAFETY: The box owns the initialised `T` and its object (type
        // invariant); both go here, once, and nothing uses them after.
        unsafe {
            core::ptr::drop_in_place(self.obj.as_ptr());
            self.cache.free(self.obj.cast());
        }
    }
}

#[cfg(rslab_kunit)]
#[kunit_tests(rslab_typed_cache)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use kernel::sync::SpinLock;

    /// Drops of [`Pinned`], across the suite's cases.
    static DROPS: AtomicUsize = AtomicUsize::new(0);

    /// A value that must stay where it was built: it holds a lock.
    #[pin_data(PinnedDrop)]
    struct Pinned {
        #[pin]
        state: SpinLock<u64>,
        id: u64,
    }

    #[pinned_drop]
    impl PinnedDrop for Pinned {
        fn drop(self: Pin<&mut Self>) {
            DROPS.fetch_add(1, Relaxed);
        }
    }

    /// Built in place in an object of the cache, usable through the box,
    /// dropped and freed with it.
    #[test]
    fn a_pinned_value_is_built_in_place_and_dropped_with_its_box() -> Result {
        let cache = TypedCache::<Pinned>::new(c"rslab_test_typed", CacheFlags::NONE)?;
        assert!(cache.cache().layout().object_size >= size_of::<Pinned>());
        let drops = DROPS.load(Relaxed);
        let init = pin_init!(Pinned { state <- kernel::new_spinlock!(5), id: 7 });
        let p = cache.pin_init(init, GFP_KERNEL)?;
        *p.state.lock() += 1;
        assert_eq!((*p.state.lock(), p.id), (6, 7));
        assert_eq!(cache.cache().stats().active_objs, 1);
        drop(p);
        assert_eq!(DROPS.load(Relaxed), drops + 1);
        assert_eq!(cache.cache().stats().active_objs, 0);
        Ok(())
    }

    /// An initialiser that fails leaves no object allocated and drops
    /// nothing; neither does a cache that cannot grow (`ENOMEM`).
    #[test]
    fn a_failed_initialiser_or_allocation_leaves_nothing() -> Result {
        let cache = TypedCache::<Pinned>::new(c"rslab_test_typed_fail", CacheFlags::NONE)?;
        let drops = DROPS.load(Relaxed);
        // SAFETY: Touches nothing and fails: the slot is left uninitialised.
        let fails = unsafe { pin_init::pin_init_from_closure(|_: *mut Pinned| Err(EINVAL)) };
        assert_eq!(cache.pin_init(fails, GFP_KERNEL).err(), Some(EINVAL));
        assert_eq!(cache.cache().stats().active_objs, 0);
        // No free object left anywhere: the next one needs a new slab.
        cache.cache().shrink();
        cache.cache().fault().fail_percent(100);
        let init = pin_init!(Pinned { state <- kernel::new_spinlock!(0), id: 1 });
        assert_eq!(cache.pin_init(init, GFP_KERNEL).err(), Some(ENOMEM));
        cache.cache().fault().fail_percent(0);
        assert_eq!(DROPS.load(Relaxed), drops);
        Ok(())
    }

    /// Every online CPU at once (bound work items) builds boxes, then each
    /// CPU drops the boxes another CPU built: the values are intact, each is
    /// dropped once, and the cache ends with nothing allocated.
    #[test]
    fn boxes_are_used_and_freed_on_every_cpu_at_once() -> Result {
        use crate::cache::percpu::on_each_cpu;
        use kernel::cpu::CpuId;
        const PER_CPU: u64 = 256;
        let cache = TypedCache::<Pinned>::new(c"rslab_test_typed_smp", CacheFlags::NONE)?;
        let made = KBox::pin_init(
            kernel::new_mutex!(KVec::<(u32, Pin<CacheBox<Pinned>>)>::new()),
            GFP_KERNEL,
        )?;
        let failures = AtomicUsize::new(0);
        let drops = DROPS.load(Relaxed);
        // A bound work item stays on its CPU, so the id is stable.
        let cpu = || CpuId::current().as_u32();
        on_each_cpu(&|| {
            let me = cpu();
            for i in 0..PER_CPU {
                let id = u64::from(me) << 32 | i;
                let init = pin_init!(Pinned { state <- kernel::new_spinlock!(id), id });
                match cache.pin_init(init, GFP_KERNEL) {
                    Ok(b) if *b.state.lock() == b.id => {
                        if made.lock().push((me, b), GFP_KERNEL).is_err() {
                            failures.fetch_add(1, Relaxed);
                        }
                    }
                    _ => drop(failures.fetch_add(1, Relaxed)),
                }
            }
        })?;
        let total = made.lock().len();
        let cpus = made
            .lock()
            .iter()
            .map(|(c, _)| *c)
            .max()
            .map_or(1, |m| m + 1);
        on_each_cpu(&|| {
            let me = cpu();
            // The boxes of the CPU before this one (its own if it is alone),
            // dropped outside the lock, so the frees run on every CPU at once.
            let mut mine = KVec::new();
            let mut keep = KVec::new();
            let mut all = made.lock();
            for (c, b) in all.drain_all() {
                if b.id >> 32 != u64::from(c) {
                    failures.fetch_add(1, Relaxed);
                }
                let ok = if (c + 1) % cpus == me % cpus {
                    mine.push(b, GFP_KERNEL)
                } else {
                    keep.push((c, b), GFP_KERNEL)
                };
                if ok.is_err() {
                    failures.fetch_add(1, Relaxed);
                }
            }
            *all = keep;
            drop(all);
            drop(mine);
        })?;
        // What no CPU took (CPUs that made nothing, or went offline).
        let rest = core::mem::take(&mut *made.lock());
        drop(rest);
        assert_eq!(failures.load(Relaxed), 0);
        assert_eq!(DROPS.load(Relaxed) - drops, total);
        assert_eq!(cache.cache().stats().active_objs, 0);
        Ok(())
    }

    /// The type's alignment is the cache's, and a zero-sized type works.
    #[test]
    fn alignment_and_zero_sized_types_come_from_the_type() -> Result {
        #[repr(align(256))]
        struct Aligned([u8; 40]);
        let aligned = TypedCache::<Aligned>::new(c"rslab_test_typed_align", CacheFlags::NONE)?;
        let boxes = [
            aligned.new_box(Aligned([1; 40]), GFP_KERNEL)?,
            aligned.new_box(Aligned([2; 40]), GFP_KERNEL)?,
        ];
        for (i, b) in boxes.iter().enumerate() {
            assert_eq!(core::ptr::from_ref::<Aligned>(b).addr() % 256, 0);
            assert!(b.0.iter().all(|&x| x == i as u8 + 1));
        }
        let unit = TypedCache::<()>::new(c"rslab_test_typed_zst", CacheFlags::NONE)?;
        let u = unit.new_box((), GFP_KERNEL)?;
        assert_eq!(unit.cache().stats().active_objs, 1);
        drop(u);
        assert_eq!(unit.cache().stats().active_objs, 0);
        Ok(())
    }
}
