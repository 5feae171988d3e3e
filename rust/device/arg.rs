// SPDX-License-Identifier: GPL-2.0

//! One ioctl's argument struct: copied in whole from user space, its ABI
//! version checked, and written back on reply. The `FromBytes`/`AsBytes`
//! of the ABI structs, and the check that every command number is the
//! kernel's own `_IOR`/`_IOW`/`_IOWR` encoding.

use crate::device::uapi::{self, Bulk, CacheCreate, CacheInfo, HandleArg, Info, ObjAlloc, ObjIo};
use crate::device::uapi::{PoolCreate, PoolInfo, PoolResize};
use kernel::prelude::*;
use kernel::transmute::{AsBytes, FromBytes};
use kernel::uaccess::{UserPtr, UserSlice, UserSliceWriter};

/// An ioctl argument struct other than [`Info`]: it starts with `version`
/// and `flags`.
pub trait Request: FromBytes + AsBytes {
    /// The ABI version the caller speaks.
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
    pub fn output(user: UserPtr) -> Self
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

/// Reads a request and checks its ABI version (`EINVAL` for another).
pub fn request<T: Request>(user: UserPtr) -> Result<Arg<T>> {
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
