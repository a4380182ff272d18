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
use crate::object::{Object, ObjectTable, Payload};
use crate::platform::{Arc, CtxCell, CtxLock, Held, UserMem};
use crate::uapi::{cmd, iommufd_io, IommuDestroy, IommuRsInfo};
use core::mem::size_of;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Per-file settings.
struct CtxState {
    /// `IOMMU_OPTION_RLIMIT_MODE`: charge pins to the mm (VFIO style)
    /// instead of the user.
    account_mm: bool,
    /// The IOAS the VFIO compatibility ioctls use.
    vfio_ioas: Option<u32>,
    /// The VFIO IOMMU type set by `VFIO_SET_IOMMU` (0: none yet).
    vfio_type: u32,
}

/// The state behind one open `/dev/iommu`.
pub struct Ictx {
    objects: ObjectTable,
    mmaps: crate::mmap::MmapTable,
    lock: CtxLock,
    st: CtxCell<CtxState>,
}

/// What every handler works with: the file and the proof that its lock is
/// held.
pub struct Cx<'a> {
    /// The file's state.
    pub ictx: &'a Ictx,
    /// The file's state as a shared reference, for objects that keep the
    /// context alive (access fds); `None` during release.
    pub arc: Option<&'a Arc<Ictx>>,
    /// The context lock.
    pub held: &'a Held<'a>,
}

impl Ictx {
    /// State for a newly opened file.
    pub fn new() -> Result<Self> {
        Ok(Self {
            objects: ObjectTable::new()?,
            mmaps: crate::mmap::MmapTable::new()?,
            lock: CtxLock::new()?,
            st: CtxCell::new(CtxState {
                account_mm: false,
                vfio_ioas: None,
                vfio_type: 0,
            }),
        })
    }

    /// The file's objects.
    pub fn objects(&self) -> &ObjectTable {
        &self.objects
    }

    /// The file's `mmap` regions.
    pub fn mmaps(&self) -> &crate::mmap::MmapTable {
        &self.mmaps
    }

    /// Takes the context lock.
    pub fn lock(&self) -> Held<'_> {
        self.lock.lock()
    }

    /// True in mm accounting mode.
    pub fn account_mm(&self, held: &Held<'_>) -> Result<bool> {
        Ok(self.st.get(held)?.account_mm)
    }

    /// Sets the accounting mode; `EBUSY` once any object exists.
    pub fn set_account_mm(&self, held: &Held<'_>, mm: bool) -> Result {
        if self.objects.next_any().is_some() {
            return Err(crate::errno::EBUSY);
        }
        self.st.get(held)?.account_mm = mm;
        Ok(())
    }

    /// The VFIO compatibility IOAS.
    pub fn vfio_ioas(&self, held: &Held<'_>) -> Result<Option<u32>> {
        Ok(self.st.get(held)?.vfio_ioas)
    }

    /// Sets or clears the VFIO compatibility IOAS.
    pub fn set_vfio_ioas(&self, held: &Held<'_>, id: Option<u32>) -> Result {
        self.st.get(held)?.vfio_ioas = id;
        Ok(())
    }

    /// The VFIO IOMMU type.
    pub fn vfio_type(&self, held: &Held<'_>) -> Result<u32> {
        Ok(self.st.get(held)?.vfio_type)
    }

    /// Sets the VFIO IOMMU type.
    pub fn set_vfio_type(&self, held: &Held<'_>, t: u32) -> Result {
        self.st.get(held)?.vfio_type = t;
        Ok(())
    }

    /// Tears every object down, leaf first.
    fn teardown(&self) {
        let held = self.lock();
        let cx = Cx {
            ictx: self,
            arc: None,
            held: &held,
        };
        while let Some(obj) = self.objects.remove_unused() {
            destroy_object(&cx, &obj);
        }
        if self.objects.next_any().is_some() {
            crate::warn_once!("iommufd_rs: objects left with users at release");
        }
        self.objects.clear();
    }
}

impl Drop for Ictx {
    /// The last reference (the `/dev/iommu` file or an access fd) is gone.
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Runs the teardown of a removed object.
pub fn destroy_object(cx: &Cx<'_>, obj: &Arc<Object>) {
    let r = match obj.payload() {
        Payload::Ioas(_) => crate::ioas::ioas_destroy(cx, obj),
        Payload::HwptPaging(_) => crate::hw_pagetable::hwpt_paging_destroy(cx, obj),
        Payload::Device(_) => Ok(()),
        Payload::Access(_) => crate::drivers::mock::access_destroy(cx, obj),
        Payload::Selftest(_) => crate::drivers::mock::selftest_destroy(cx, obj),
        Payload::HwptNested(_) | Payload::Fault(_) | Payload::Tombstone => Ok(()),
        Payload::Viommu(_) => {
            crate::hw_pagetable::viommu::viommu_destroy(cx, obj);
            Ok(())
        }
        Payload::Vdevice(_) => {
            crate::hw_pagetable::viommu::vdevice_destroy(cx, obj);
            Ok(())
        }
        Payload::Veventq(_) => {
            crate::hw_pagetable::eventq::veventq_destroy(cx, obj);
            Ok(())
        }
        Payload::HwQueue(_) => {
            crate::hw_pagetable::viommu::hw_queue_destroy(cx, obj);
            Ok(())
        }
    };
    if let Err(e) = r {
        crate::warn_once!("iommufd_rs: teardown of object {} failed: {}", obj.id(), e);
    }
}

/// One ioctl call: where its struct is and how large userspace says it is.
pub struct Ucmd<'a> {
    mem: &'a dyn UserMem,
    arg: u64,
    user_size: u32,
    retval: core::cell::Cell<isize>,
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

    /// Reads a `T` at another user address (arrays the command points to).
    pub fn read_at<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &self,
        uaddr: u64,
    ) -> Result<T> {
        let mut v = T::new_zeroed();
        self.mem.read(uaddr, v.as_mut_bytes())?;
        Ok(v)
    }

    /// Reads bytes at a user address.
    pub fn read_bytes(&self, uaddr: u64, out: &mut [u8]) -> Result {
        self.mem.read(uaddr, out)
    }

    /// `check_zeroed_user()` on `len` bytes at a user address (`E2BIG` if
    /// any is non-zero): the tail rule of `copy_struct_from_user()`.
    pub fn check_zeroed(&self, uaddr: u64, len: usize) -> Result {
        check_zeroed(self.mem, uaddr, len)
    }

    /// Writes bytes at a user address.
    pub fn write_at(&self, uaddr: u64, data: &[u8]) -> Result {
        self.mem.write(uaddr, data)
    }

    /// Sets the ioctl's non-negative return value (a new fd), 0 by default.
    pub fn set_retval(&self, v: isize) {
        self.retval.set(v);
    }

    /// The raw argument (the struct's user address).
    pub fn arg(&self) -> u64 {
        self.arg
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

type Handler = fn(&Cx<'_>, &Ucmd<'_>) -> Result;

struct Op {
    nr: u32,
    min_size: u32,
    handler: Handler,
}

/// `offsetofend(T, field)` for a field of any size.
macro_rules! min_size {
    ($t:ty, $field:ident) => {{
        const fn size_of_field<F>(_: *const F) -> usize {
            size_of::<F>()
        }
        let u = core::mem::MaybeUninit::<$t>::uninit();
        // SAFETY: only the field's address is taken, nothing is read.
        let f = unsafe { core::ptr::addr_of!((*u.as_ptr()).$field) };
        (core::mem::offset_of!($t, $field) + size_of_field(f)) as u32
    }};
}

/// A table entry: command, struct and last original field, handler.
macro_rules! op {
    ($nr:ident, $t:ident, $last:ident, $h:path) => {
        Op {
            nr: cmd::$nr,
            min_size: min_size!(crate::uapi::$t, $last),
            handler: $h,
        }
    };
}

/// The command table. `IOMMU_RS_INFO` derives its bitmaps from it.
const OPS: &[Op] = &[
    op!(DESTROY, IommuDestroy, id, destroy),
    op!(
        IOAS_ALLOC,
        IommuIoasAlloc,
        out_ioas_id,
        crate::ioas::ioas_alloc
    ),
    op!(
        IOAS_ALLOW_IOVAS,
        IommuIoasAllowIovas,
        allowed_iovas,
        crate::ioas::ioas_allow_iovas
    ),
    op!(IOAS_COPY, IommuIoasCopy, src_iova, crate::ioas::ioas_copy),
    op!(
        IOAS_IOVA_RANGES,
        IommuIoasIovaRanges,
        out_iova_alignment,
        crate::ioas::ioas_iova_ranges
    ),
    op!(IOAS_MAP, IommuIoasMap, iova, crate::ioas::ioas_map),
    op!(IOAS_UNMAP, IommuIoasUnmap, length, crate::ioas::ioas_unmap),
    op!(OPTION, IommuOption, val64, crate::ioas::option),
    op!(
        VFIO_IOAS,
        IommuVfioIoas,
        __reserved,
        crate::ioas::vfio_compat::vfio_ioas
    ),
    op!(
        HWPT_ALLOC,
        IommuHwptAlloc,
        __reserved,
        crate::hw_pagetable::hwpt_alloc
    ),
    op!(
        GET_HW_INFO,
        IommuHwInfo,
        __reserved,
        crate::device_bind::get_hw_info
    ),
    op!(
        HWPT_SET_DIRTY_TRACKING,
        IommuHwptSetDirtyTracking,
        __reserved,
        crate::hw_pagetable::dirty::set_dirty_tracking
    ),
    op!(
        HWPT_GET_DIRTY_BITMAP,
        IommuHwptGetDirtyBitmap,
        data,
        crate::hw_pagetable::dirty::get_dirty_bitmap
    ),
    op!(
        FAULT_QUEUE_ALLOC,
        IommuFaultAlloc,
        out_fault_fd,
        crate::hw_pagetable::eventq::fault_alloc
    ),
    op!(
        HWPT_INVALIDATE,
        IommuHwptInvalidate,
        __reserved,
        crate::hw_pagetable::hwpt_invalidate
    ),
    op!(
        IOAS_MAP_FILE,
        IommuIoasMapFile,
        iova,
        crate::ioas::ioas_map_file
    ),
    op!(
        VIOMMU_ALLOC,
        IommuViommuAlloc,
        out_viommu_id,
        crate::hw_pagetable::viommu::viommu_alloc
    ),
    op!(
        VDEVICE_ALLOC,
        IommuVdeviceAlloc,
        virt_id,
        crate::hw_pagetable::viommu::vdevice_alloc
    ),
    op!(
        IOAS_CHANGE_PROCESS,
        IommuIoasChangeProcess,
        __reserved,
        crate::ioas::ioas_change_process
    ),
    op!(
        VEVENTQ_ALLOC,
        IommuVeventqAlloc,
        __reserved,
        crate::hw_pagetable::eventq::veventq_alloc
    ),
    op!(
        HW_QUEUE_ALLOC,
        IommuHwQueueAlloc,
        length,
        crate::hw_pagetable::viommu::hw_queue_alloc
    ),
    op!(TEST, IommuTestCmd, last, crate::drivers::mock::test_cmd),
    // Extensions have no history yet: their minimum is the whole struct.
    Op {
        nr: cmd::RS_INFO,
        min_size: size_of::<IommuRsInfo>() as u32,
        handler: rs_info,
    },
];

/// Handles one ioctl on a `/dev/iommu` file.
pub fn ioctl(ictx: &Arc<Ictx>, mem: &dyn UserMem, ioctl_cmd: u32, arg: u64) -> Result<isize> {
    // An exact match of the whole number, as upstream: `_IOWR(';', 0x81, x)`
    // is not IOMMU_IOAS_ALLOC.
    let Some(op) = OPS.iter().find(|op| iommufd_io(op.nr) == ioctl_cmd) else {
        // Numbers below the iommufd range are the VFIO type1 container
        // ioctls, served on the same fd.
        if crate::ioas::vfio_compat::is_vfio_cmd(ioctl_cmd) {
            let held = ictx.lock();
            let cx = Cx {
                ictx,
                arc: Some(ictx),
                held: &held,
            };
            return crate::ioas::vfio_compat::ioctl(&cx, mem, ioctl_cmd, arg);
        }
        return Err(ENOTTY);
    };
    let mut size = [0u8; 4];
    mem.read(arg, &mut size)?;
    let user_size = u32::from_ne_bytes(size);
    if user_size < op.min_size {
        return Err(EINVAL);
    }
    let held = ictx.lock();
    let cx = Cx {
        ictx,
        arc: Some(ictx),
        held: &held,
    };
    let ucmd = Ucmd {
        mem,
        arg,
        user_size,
        retval: core::cell::Cell::new(0),
    };
    (op.handler)(&cx, &ucmd)?;
    Ok(ucmd.retval.get())
}

/// `IOMMU_DESTROY`.
fn destroy(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let cmd: IommuDestroy = ucmd.read()?;
    // Devices and accesses belong to their drivers: the driver's reference
    // makes them EBUSY here.
    let obj = cx.ictx.objects().remove(cmd.id)?;
    destroy_object(cx, &obj);
    Ok(())
}

/// Bit `nr - base` for every served command in `base..base + 64`.
fn served_bitmap(base: u32) -> u64 {
    OPS.iter()
        .filter(|op| op.nr >= base && op.nr - base < 64)
        .fold(0, |acc, op| acc | 1u64 << (op.nr - base))
}

/// `IOMMU_RS_INFO` (extension): who serves `/dev/iommu` and what it serves.
fn rs_info(_cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut info: IommuRsInfo = ucmd.read()?;
    if info.flags != 0 || info.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    info.out_abi_version = crate::uapi::IOMMU_RS_INFO_ABI_VERSION;
    info.out_upstream_cmds = served_bitmap(cmd::BASE);
    info.out_rs_cmds = served_bitmap(cmd::RS_BASE);
    ucmd.respond(&info)
}
