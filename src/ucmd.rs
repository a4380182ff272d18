//! The ioctl dispatcher, with upstream's ABI discipline:
//!
//! * ioctl numbers are `_IO(';', nr)`: no size or direction bits. A number we
//!   do not serve is `ENOTTY`.
//! * Every struct starts with `__u32 size`. A size below the command's
//!   minimum (the end of its last original field) is `EINVAL`.
//! * The struct is read like `copy_struct_from_user()`: a shorter user struct
//!   is zero-extended, a longer one must have only zero bytes past the end of
//!   ours, else `E2BIG`.
//! * The reply is written back truncated to the user's size.
//! * Bad user pointers are `EFAULT`.

use crate::errno::{Result, E2BIG, EFAULT, EINVAL, ENOTTY, EOPNOTSUPP};
use crate::object::ObjectTable;
use crate::platform::UserMem;
use crate::uapi::{cmd, iommufd_io, IommuDestroy, IommuIoasAlloc, IommuRsInfo};
use core::mem::size_of;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The state behind one open `/dev/iommu` file.
pub struct Ictx {
    objects: ObjectTable,
}

impl Ictx {
    /// State for a newly opened file.
    pub fn new() -> Result<Self> {
        Ok(Self {
            objects: ObjectTable::new()?,
        })
    }

    /// The file's objects.
    pub fn objects(&self) -> &ObjectTable {
        &self.objects
    }
}

/// One ioctl call: where its struct is and how large userspace says it is.
pub struct Ucmd<'a> {
    mem: &'a dyn UserMem,
    arg: u64,
    user_size: u32,
}

impl Ucmd<'_> {
    /// The size userspace declared.
    pub fn user_size(&self) -> u32 {
        self.user_size
    }

    /// Reads the command struct with `copy_struct_from_user()` rules.
    pub fn read<T: FromBytes + IntoBytes + KnownLayout + Immutable>(&self) -> Result<T> {
        let ksize = size_of::<T>();
        let usize_ = self.user_size as usize;
        if usize_ > ksize {
            let tail = self.arg.checked_add(ksize as u64).ok_or(EFAULT)?;
            check_zeroed(self.mem, tail, usize_ - ksize)?;
        }
        let mut v = T::new_zeroed();
        let n = usize_.min(ksize);
        self.mem.read(self.arg, &mut v.as_mut_bytes()[..n])?;
        Ok(v)
    }

    /// Writes the reply, truncated to the user's size.
    pub fn respond<T: IntoBytes + Immutable>(&self, v: &T) -> Result {
        let n = (self.user_size as usize).min(size_of::<T>());
        self.mem.write(self.arg, &v.as_bytes()[..n])
    }
}

/// `check_zeroed_user()`: `E2BIG` if any byte of the range is non-zero.
fn check_zeroed(mem: &dyn UserMem, mut addr: u64, mut len: usize) -> Result {
    let mut buf = [0u8; 64];
    while len > 0 {
        let n = len.min(buf.len());
        mem.read(addr, &mut buf[..n])?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(E2BIG);
        }
        addr = addr.checked_add(n as u64).ok_or(EFAULT)?;
        len -= n;
    }
    Ok(())
}

type Handler = fn(&Ictx, &Ucmd<'_>) -> Result;

struct Op {
    nr: u32,
    min_size: u32,
    handler: Handler,
}

/// `offsetofend(T, field)` as the `u32` a size field compares with.
macro_rules! min_size {
    ($t:ty, $field:ident) => {{
        let end = core::mem::offset_of!($t, $field) + size_of::<u32>();
        // Every min-size field is a u32 and no struct is near 4 GiB.
        end as u32
    }};
}

/// The command table. `IOMMU_RS_INFO` derives its bitmaps from it.
const OPS: &[Op] = &[
    Op {
        nr: cmd::DESTROY,
        min_size: min_size!(IommuDestroy, id),
        handler: destroy,
    },
    Op {
        nr: cmd::IOAS_ALLOC,
        min_size: min_size!(IommuIoasAlloc, out_ioas_id),
        handler: crate::ioas::ioas_alloc,
    },
    // Extensions have no history yet: their minimum is the whole struct.
    Op {
        nr: cmd::RS_INFO,
        min_size: size_of::<IommuRsInfo>() as u32,
        handler: rs_info,
    },
];

/// Handles one ioctl on a `/dev/iommu` file.
pub fn ioctl(ictx: &Ictx, mem: &dyn UserMem, ioctl_cmd: u32, arg: u64) -> Result<isize> {
    // An exact match of the whole number, as upstream: `_IOWR(';', 0x81, x)`
    // is not IOMMU_IOAS_ALLOC.
    let op = OPS
        .iter()
        .find(|op| iommufd_io(op.nr) == ioctl_cmd)
        .ok_or(ENOTTY)?;
    let mut size = [0u8; 4];
    mem.read(arg, &mut size)?;
    let user_size = u32::from_ne_bytes(size);
    if user_size < op.min_size {
        return Err(EINVAL);
    }
    (op.handler)(
        ictx,
        &Ucmd {
            mem,
            arg,
            user_size,
        },
    )?;
    Ok(0)
}

/// `IOMMU_DESTROY`.
fn destroy(ictx: &Ictx, ucmd: &Ucmd<'_>) -> Result {
    let cmd: IommuDestroy = ucmd.read()?;
    ictx.objects().destroy(cmd.id)
}

/// Bit `nr - base` for every served command in `base..base + 64`.
fn served_bitmap(base: u32) -> u64 {
    OPS.iter()
        .filter(|op| op.nr >= base && op.nr - base < 64)
        .fold(0, |acc, op| acc | 1u64 << (op.nr - base))
}

/// `IOMMU_RS_INFO` (extension): who serves `/dev/iommu` and what it serves.
fn rs_info(_ictx: &Ictx, ucmd: &Ucmd<'_>) -> Result {
    let mut info: IommuRsInfo = ucmd.read()?;
    if info.flags != 0 || info.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    info.out_abi_version = crate::uapi::IOMMU_RS_INFO_ABI_VERSION;
    info.out_upstream_cmds = served_bitmap(cmd::BASE);
    info.out_rs_cmds = served_bitmap(cmd::RS_BASE);
    ucmd.respond(&info)
}
