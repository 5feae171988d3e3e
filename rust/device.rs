// SPDX-License-Identifier: GPL-2.0

//! `/dev/rslab`: the misc device, and the decoding of its ioctls.
//!
//! Each open file is a [`Session`]. An ioctl lands here and is decoded: a
//! command number of another type, or an unknown number, is `ENOTTY`; a
//! known number with the wrong size or direction is `EINVAL`, as is a
//! struct of another ABI version (`arg.rs`). The struct is then copied in
//! whole and handed to the session (`session.rs`), which does the command.
//! The modules depend one way: `device` on `session`, `session` on `arg`,
//! `handles`, `object` and `quota`.
//!
//! The kernel crate's miscdevice sets `fops.owner` to this module, so the
//! VFS holds a module reference for every open file: the module cannot be
//! unloaded under one (`delete_module` fails with `EWOULDBLOCK`, which
//! `rmmod` reports as "in use").

pub mod arg;
pub mod handles;
pub mod object;
pub mod quota;
pub mod session;
pub mod uapi;

use crate::debugfs::file;
use crate::device::arg::{request, Arg};
use crate::device::quota::Global;
use crate::device::session::Session;
use kernel::fs::File;
use kernel::ioctl::{_IOC_NR, _IOC_TYPE};
use kernel::miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::uaccess::UserPtr;

pub use session::Shared;

/// The registered device.
///
/// # Invariants
///
/// `misc` is the only registration of [`Session`]s anywhere: every one a
/// session's `open` sees is the `misc` field of a live [`Device`].
#[pin_data]
pub struct Device {
    shared: Arc<Shared>,
    _usage: file::File<Arc<Global>>,
    #[pin]
    misc: MiscDeviceRegistration<Session>,
}

impl Device {
    /// Registers `/dev/rslab` (mode 0600, the misc default) and the debugfs
    /// `device` file with its usage. The shared state is in place before
    /// the device appears.
    pub fn new(shared: Arc<Shared>) -> Result<Pin<KBox<Self>>> {
        let show = &|g: &Arc<Global>, f: &mut kernel::fmt::Formatter<'_>| g.write(f);
        let usage =
            shared
                .registry
                .root()
                .read_callback_file(c"device", shared.quota.clone(), show)?;
        KBox::try_pin_init(
            try_pin_init!(Self {
                _usage: usage,
                shared,
                misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"rslab" }),
            }? Error),
            GFP_KERNEL,
        )
    }
}

/// Checks `cmd` against the command table: `ENOTTY` if it is not one of
/// ours, `EINVAL` if its number is ours but its size or direction is not.
fn decode(cmd: u32) -> Result<u32> {
    if _IOC_TYPE(cmd) != uapi::IOC_MAGIC {
        return Err(ENOTTY);
    }
    let (_, known) = uapi::COMMANDS.get(_IOC_NR(cmd) as usize).ok_or(ENOTTY)?;
    if cmd != *known {
        return Err(EINVAL);
    }
    Ok(cmd)
}

#[vtable]
impl MiscDevice for Session {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Self::Ptr> {
        // SAFETY: By the invariants of `Device`, `misc` is the `misc` field
        // of a live `Device`, which outlives every open file (it is dropped
        // at module exit, and an open file holds a module reference).
        let device = unsafe { &*kernel::container_of!(core::ptr::from_ref(misc), Device, misc) };
        Session::new(&device.shared)
    }

    fn ioctl(session: Pin<&Self>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let user = UserPtr::from_addr(arg);
        match decode(cmd)? {
            uapi::IOC_INFO => session.info(Arg::output(user))?,
            uapi::IOC_CACHE_CREATE => session.cache_create(request(user)?)?,
            uapi::IOC_CACHE_DESTROY => session.destroy(request(user)?, false)?,
            uapi::IOC_ALLOC => session.alloc(request(user)?)?,
            uapi::IOC_FREE => session.free(request(user)?)?,
            uapi::IOC_WRITE => session.write(request(user)?)?,
            uapi::IOC_READ => session.read(request(user)?)?,
            uapi::IOC_BULK_ALLOC => session.bulk_alloc(request(user)?)?,
            uapi::IOC_BULK_FREE => session.bulk_free(request(user)?)?,
            uapi::IOC_POOL_CREATE => session.pool_create(request(user)?)?,
            uapi::IOC_POOL_RESIZE => session.pool_resize(request(user)?)?,
            uapi::IOC_POOL_DESTROY => session.destroy(request(user)?, true)?,
            uapi::IOC_SHRINK => return Ok(session.shrink(request(user)?)? as isize),
            uapi::IOC_CACHE_INFO => session.cache_info(request(user)?)?,
            uapi::IOC_POOL_INFO => session.pool_info(request(user)?)?,
            _ => return Err(ENOTTY),
        }
        Ok(0)
    }
}
