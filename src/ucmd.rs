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

    /// Sets the accounting mode from `IOMMU_OPTION`'s value (0 user, 1 mm);
    /// `EBUSY` once any object exists, checked before the value, as
    /// upstream.
    pub fn set_account_mm(&self, held: &Held<'_>, val: u64) -> Result {
        if self.objects.next_any().is_some() {
            return Err(crate::errno::EBUSY);
        }
        self.st.get(held)?.account_mm = match val {
            0 => false,
            1 => true,
            _ => return Err(EINVAL),
        };
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
        Payload::InternalAccess(_) => crate::ioas::internal_access::detach(cx, obj),
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
///
/// Upstream reads the aligned words covering the range in order and stops
/// at the first non-zero one (`E2BIG`) or the first fault (`EFAULT`), so
/// which error wins depends on which comes first. Reads here go by aligned
/// 64-byte chunks (never straddling a page); a chunk that faults is read
/// again word by word to find out which came first.
fn check_zeroed(mem: &dyn UserMem, addr: u64, len: usize) -> Result {
    const W: u64 = size_of::<u64>() as u64;
    const CHUNK: u64 = 64;
    if len == 0 {
        return Ok(());
    }
    let end = addr.checked_add(len as u64).ok_or(EFAULT)?;
    let end_words = end.checked_next_multiple_of(W).ok_or(EFAULT)?;
    // Words wholly below `addr` or at/after `end` are never read; the bytes
    // of a covering word outside the range are masked off.
    let nonzero = |at: u64, bytes: &[u8]| {
        bytes
            .iter()
            .enumerate()
            .any(|(i, &b)| b != 0 && (addr..end).contains(&(at + i as u64)))
    };
    let mut at = addr & !(W - 1);
    let mut buf = [0u8; CHUNK as usize];
    while at < end {
        let chunk_end = (at | (CHUNK - 1))
            .checked_add(1)
            .map_or(end_words, |c| c.min(end_words));
        let n = (chunk_end - at) as usize;
        if mem.read(at, &mut buf[..n]).is_ok() {
            if nonzero(at, &buf[..n]) {
                return Err(E2BIG);
            }
        } else {
            for w in (at..chunk_end).step_by(W as usize) {
                let mut word = [0u8; W as usize];
                mem.read(w, &mut word)?;
                if nonzero(w, &word) {
                    return Err(E2BIG);
                }
            }
        }
        at = chunk_end;
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
        out_veventq_fd,
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
    // Upstream indexes its table by `_IOC_NR` alone and reads `size` before
    // it compares the whole number, so any number whose low byte falls in
    // the table (0x80..=0xa0, the selftest command is the last entry) faults
    // on a bad pointer first. Only an exact match is served:
    // `_IOWR(';', 0x81, x)` is not IOMMU_IOAS_ALLOC.
    let nr = ioctl_cmd & 0xff;
    let in_table = (cmd::BASE..=cmd::TEST).contains(&nr);
    let mut size = [0u8; 4];
    if in_table {
        mem.read(arg, &mut size)?;
    }
    let Some(op) = OPS.iter().find(|op| iommufd_io(op.nr) == ioctl_cmd) else {
        // Outside the table, the VFIO type1 container ioctls are served on
        // the same fd.
        if !in_table && crate::ioas::vfio_compat::is_vfio_cmd(ioctl_cmd) {
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
    if !in_table {
        // Extensions, outside upstream's table.
        mem.read(arg, &mut size)?;
    }
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
