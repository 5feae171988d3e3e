// SPDX-License-Identifier: GPL-2.0

//! A driver-style use of rslab's typed cache: in-flight I/O requests kept in
//! a cache of their own, each built in place, pinned (it holds a lock), and
//! freed when dropped, in safe Rust only.
//!
//! Rust modules cannot share generic APIs across `.ko` files, so this
//! sample is built into a flavour of rslab itself, `rslab_sample.ko`
//! (`--cfg rslab_sample`, see `rust/Kbuild`): one source, the module's own
//! cache code. Loading it queues [`IN_FLIGHT`] requests, completes half of
//! them, and keeps the rest in flight until the module is unloaded, as a
//! driver keeps requests until its device goes away.

use crate::cache::flags::CacheFlag;
use crate::typed_cache::{CacheBox, TypedCache};
use kernel::prelude::*;
use kernel::sync::SpinLock;

/// How many requests the sample queues.
pub(crate) const IN_FLIGHT: u64 = 16;

/// Where a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Queued,
    Done { bytes: u32 },
}

/// One I/O request. It must not move once built: its lock may be held by
/// a completion path while the queue moves its handle around.
#[pin_data]
struct Request {
    #[pin]
    status: SpinLock<Status>,
    sector: u64,
    len: u32,
}

/// The sample's state: the requests' cache and the requests in flight.
pub(crate) struct Requests {
    cache: TypedCache<Request>,
    in_flight: KVec<Pin<CacheBox<Request>>>,
}

impl Requests {
    /// Queues [`IN_FLIGHT`] requests and completes every other one.
    pub(crate) fn start() -> Result<Self> {
        // Red-zoned, as a driver under development would have it.
        let cache = TypedCache::<Request>::new(c"rslab_sample_requests", CacheFlag::RedZone)?;
        let mut queue = KVec::with_capacity(IN_FLIGHT as usize, GFP_KERNEL)?;
        for i in 0..IN_FLIGHT {
            let request = cache.pin_init(
                pin_init!(Request {
                    status <- kernel::new_spinlock!(Status::Queued),
                    sector: i * 8,
                    len: 4096,
                }),
                GFP_KERNEL,
            )?;
            queue.push(request, GFP_KERNEL)?;
        }
        // The completion path: a done request is dropped, which frees it.
        let mut in_flight = KVec::with_capacity(queue.len(), GFP_KERNEL)?;
        for request in queue.drain_all() {
            if request.sector % 16 == 0 {
                let mut status = request.status.lock();
                *status = Status::Done { bytes: request.len };
                if let Status::Done { bytes } = *status {
                    pr_info!(
                        "typed_cache sample: request at sector {} done, {} bytes\n",
                        request.sector,
                        bytes
                    );
                }
            } else {
                in_flight.push(request, GFP_KERNEL)?;
            }
        }
        let this = Self { cache, in_flight };
        pr_info!(
            "typed_cache sample: {} requests queued, {} in flight, {} objects in {}\n",
            IN_FLIGHT,
            this.in_flight.len(),
            this.cache.cache().stats().active_objs,
            this.cache.cache().name(),
        );
        Ok(this)
    }
}

impl Drop for Requests {
    fn drop(&mut self) {
        // The device goes away: every request still in flight is dropped
        // (and freed) with the queue; the cache goes last.
        let n = self.in_flight.len();
        self.in_flight.clear();
        pr_info!(
            "typed_cache sample: {} requests cancelled, {} objects left\n",
            n,
            self.cache.cache().stats().active_objs
        );
    }
}
