// SPDX-License-Identifier: GPL-2.0

//! `/dev/rslab`: the misc device, and the decoding of its ioctls.
//!
//! Each open file is a [`Session`]. An ioctl is decoded here: a command
//! number of another type, or an unknown number, is `ENOTTY`; a known
//! number with the wrong size or direction is `EINVAL`, as is a struct of
//! another ABI version. The struct is then copied in whole and handed to
//! the session.
//!
//! The kernel crate's miscdevice sets `fops.owner` to this module, so the
//! VFS holds a module reference for every open file: the module cannot be
//! unloaded under one (`delete_module` fails with `EWOULDBLOCK`, which
//! `rmmod` reports as "in use").

pub mod handles;
pub mod object;
pub mod quota;
pub mod session;
pub mod uapi;

use crate::debugfs::file;
use crate::debugfs::Registry;
use crate::device::quota::Global;
use crate::device::session::Session;
use crate::device::uapi::{Bulk, CacheCreate, CacheInfo, HandleArg, Info, ObjAlloc, ObjIo};
use crate::device::uapi::{PoolCreate, PoolInfo, PoolResize};
use crate::kmalloc::Kmalloc;
use kernel::fs::File;
use kernel::ioctl::{_IOC_NR, _IOC_TYPE};
use kernel::miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::transmute::{AsBytes, FromBytes};
use kernel::uaccess::{UserPtr, UserSlice, UserSliceWriter};

/// What every session shares: the module's allocators and the quotas.
pub struct Shared {
    /// The registry that user-made caches and pools join.
    pub registry: Arc<Registry>,
    /// The kmalloc behind handle 0.
    pub kmalloc: Arc<Kmalloc>,
    /// The device-wide usage and limits.
    pub quota: Arc<Global>,
}

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

/// An ioctl argument struct other than [`Info`]: it starts with `version`
/// and `flags`.
trait Request: FromBytes + AsBytes {
    fn version(&self) -> u32;
}

macro_rules! requests {
    ($($t:ty),*) => {$(
        // SAFETY: A `uapi` struct: `repr(C)`, only integers and byte arrays,
        // no padding (checked at compile time in `uapi`), so every bit
        // pattern is valid.
        unsafe impl FromBytes for $t {}
        // SAFETY: As above: no padding, so every byte is initialised, and no
        // interior mutability.
        unsafe impl AsBytes for $t {}
        impl Request for $t {
            fn version(&self) -> u32 {
                self.version
            }
        }
    )*};
}

requests!(
    HandleArg,
    CacheCreate,
    ObjAlloc,
    ObjIo,
    Bulk,
    PoolCreate,
    PoolResize,
    CacheInfo,
    PoolInfo
);

// SAFETY: As for the requests: `repr(C)` integers, no padding.
unsafe impl AsBytes for Info {}
// SAFETY: As above: every bit pattern is valid.
unsafe impl FromBytes for Info {}

/// The argument struct of one ioctl, and where to write it back.
pub struct Arg<T> {
    /// The struct as user space passed it.
    pub req: T,
    out: UserSliceWriter,
}

impl<T: FromBytes + AsBytes> Arg<T> {
    /// Copies the argument struct in (`EFAULT` if it cannot be read).
    fn read(user: UserPtr) -> Result<Self> {
        let (mut reader, out) = UserSlice::new(user, size_of::<T>()).reader_writer();
        Ok(Self {
            req: reader.read()?,
            out,
        })
    }

    /// An output-only argument (an `_IOR` command): nothing is read.
    fn output(user: UserPtr) -> Self
    where
        T: Default,
    {
        Self {
            req: T::default(),
            out: UserSlice::new(user, size_of::<T>()).writer(),
        }
    }

    /// Copies `req` back to user space (`EFAULT` if it cannot be written).
    pub fn reply(mut self) -> Result {
        self.out.write(&self.req)
    }
}

/// Reads a request and checks its ABI version.
fn request<T: Request>(user: UserPtr) -> Result<Arg<T>> {
    let arg = Arg::<T>::read(user)?;
    if arg.req.version() != uapi::ABI_VERSION {
        return Err(EINVAL);
    }
    Ok(arg)
}

// The ABI file's encoding of every command is the kernel's own.
const _: () = {
    use kernel::ioctl::{_IOR, _IOW, _IOWR};
    const M: u32 = uapi::IOC_MAGIC;
    let kernel = [
        _IOR::<Info>(M, 0),
        _IOWR::<CacheCreate>(M, 1),
        _IOW::<HandleArg>(M, 2),
        _IOWR::<ObjAlloc>(M, 3),
        _IOW::<HandleArg>(M, 4),
        _IOW::<ObjIo>(M, 5),
        _IOW::<ObjIo>(M, 6),
        _IOW::<Bulk>(M, 7),
        _IOW::<Bulk>(M, 8),
        _IOWR::<PoolCreate>(M, 9),
        _IOW::<PoolResize>(M, 10),
        _IOW::<HandleArg>(M, 11),
        _IOW::<HandleArg>(M, 12),
        _IOWR::<CacheInfo>(M, 13),
        _IOWR::<PoolInfo>(M, 14),
    ];
    let mut nr = 0;
    while nr < uapi::COMMANDS.len() {
        assert!(uapi::COMMANDS[nr].1 == kernel[nr]);
        nr += 1;
    }
};

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
