//! Hardware page tables: IOMMU domains, the HWPT_PAGING objects that bind
//! one to an IOAS, nested HWPTs on top of a nesting parent (directly or
//! through a vIOMMU), dirty tracking and cache invalidation.
//!
//! A [`Domain`] is what a driver allocates: a page table of some format with
//! its page sizes and aperture. A [`HwptPaging`] object makes the IOAS copy
//! its mappings into the domain; a [`HwptNested`] is a stage-1 table the
//! guest owns, translated through its parent. Devices attach to either.
//! Vendor data (the selftest formats today) is parsed by the driver
//! (`drivers::mock`); everything else here is the core's.

pub mod dirty;
pub mod eventq;
pub mod viommu;

use crate::drivers::mock::pagetable::MockPageTable;
use crate::errno::{Result, EINVAL, EOPNOTSUPP};
use crate::object::{Holder, NewObject, ObjKind, Object, Payload};
use crate::platform::{arc_new, Arc, CtxCell, Held, PVec, VecExt, PAGE_SIZE};
use crate::uapi::{
    IommuHwptAlloc, IOMMU_HWPT_ALLOC_DIRTY_TRACKING as DIRTY, IOMMU_HWPT_ALLOC_NEST_PARENT as NEST,
    IOMMU_HWPT_ALLOC_PASID as PASID, IOMMU_HWPT_FAULT_ID_VALID as FAULT,
};
use crate::ucmd::{Cx, Ucmd};
use core::sync::atomic::{AtomicU64, Ordering};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Unique domain cookies, the owner tag of aperture reservations.
static NEXT_COOKIE: AtomicU64 = AtomicU64::new(1);

/// The page-table formats a domain can use.
pub enum PageTable {
    /// The selftest mock format.
    Mock(MockPageTable),
}

/// The mock page-table variants (`MOCK_IOMMUPT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MockPt {
    /// 2 KiB granule, every power-of-two size up to 64 GiB, the mock
    /// aperture.
    Default,
    /// 1 MiB and `PAGE_SIZE` leaves only, the whole 56-bit space.
    Huge,
}

/// An IOMMU domain: a page table, its page sizes and aperture.
pub struct Domain {
    cookie: u64,
    pgsize_bitmap: u64,
    aperture: (u64, u64),
    /// Allocated with `IOMMU_HWPT_ALLOC_DIRTY_TRACKING` (has dirty ops).
    dirty_ops: bool,
    pt: CtxCell<PageTable>,
    /// Dirty tracking is switched on (`IOMMU_HWPT_SET_DIRTY_TRACKING`).
    tracking: CtxCell<bool>,
}

/// Shared reference to a domain (held by its HWPT and the IOAS it mirrors).
pub type DomainRef = Arc<Domain>;

impl Domain {
    /// A mock domain with upstream's selftest constants.
    pub fn new_mock(kind: MockPt, dirty_ops: bool) -> Result<DomainRef> {
        let (sizes, aperture) = match kind {
            MockPt::Default => (
                crate::drivers::mock::pagetable::selftest_pgsize_bitmap(),
                (
                    crate::uapi::MOCK_APERTURE_START,
                    crate::uapi::MOCK_APERTURE_LAST,
                ),
            ),
            MockPt::Huge => (
                crate::uapi::MOCK_HUGE_PAGE_SIZE | PAGE_SIZE,
                (0, (1u64 << 56) - 1),
            ),
        };
        let pt = MockPageTable::with_pgsize(sizes)?;
        // What the table really maps, as upstream takes the domain's sizes
        // from its table.
        let pgsize_bitmap = pt.pgsize_bitmap();
        arc_new(Self {
            cookie: NEXT_COOKIE.fetch_add(1, Ordering::Relaxed),
            pgsize_bitmap,
            aperture,
            dirty_ops,
            pt: CtxCell::new(PageTable::Mock(pt)),
            tracking: CtxCell::new(false),
        })
    }

    /// Unique tag of this domain.
    pub fn cookie(&self) -> u64 {
        self.cookie
    }

    /// Every page size the domain can map.
    pub fn pgsize_bitmap(&self) -> u64 {
        self.pgsize_bitmap
    }

    /// The smallest page size the domain can map.
    pub fn min_page_size(&self) -> u64 {
        1 << self.pgsize_bitmap.trailing_zeros()
    }

    /// First and last IOVA the domain translates.
    pub fn aperture(&self) -> (u64, u64) {
        self.aperture
    }

    /// True if the domain blocks no-snoop DMA (upstream's
    /// `enforce_cache_coherency`). Upstream asks for it only for devices
    /// whose IOMMU reports `IOMMU_CAP_ENFORCE_CACHE_COHERENCY`; the mock
    /// IOMMU does not, so no mock domain enforces it.
    pub fn enforces_cache_coherency(&self) -> bool {
        false
    }

    /// True if the domain can track dirty pages.
    pub fn has_dirty_ops(&self) -> bool {
        self.dirty_ops
    }

    /// Maps `len` bytes at `iova` to `phys`.
    pub fn map(&self, held: &Held<'_>, iova: u64, phys: u64, len: u64, prot: u32) -> Result {
        match &mut *self.pt.get(held)? {
            PageTable::Mock(pt) => pt.map(iova, phys, len, prot),
        }
    }

    /// Unmaps `iova..iova + len`; returns the bytes that were mapped.
    pub fn unmap(&self, held: &Held<'_>, iova: u64, len: u64) -> Result<u64> {
        match &mut *self.pt.get(held)? {
            PageTable::Mock(pt) => pt.unmap(iova, len),
        }
    }

    /// Translates one IOVA.
    pub fn iova_to_phys(&self, held: &Held<'_>, iova: u64) -> Result<Option<u64>> {
        match &*self.pt.get(held)? {
            PageTable::Mock(pt) => Ok(pt.iova_to_phys(iova)),
        }
    }

    /// The physical address of `iova` and how many bytes from it map
    /// contiguously (the rest of its leaf).
    pub fn translate(&self, held: &Held<'_>, iova: u64) -> Result<Option<(u64, u64)>> {
        match &*self.pt.get(held)? {
            PageTable::Mock(pt) => Ok(pt.translate(iova)),
        }
    }

    /// True while dirty tracking is on.
    pub fn tracking(&self, held: &Held<'_>) -> Result<bool> {
        Ok(*self.tracking.get(held)?)
    }

    /// Switches dirty tracking (`EOPNOTSUPP` without dirty ops).
    pub fn set_tracking(&self, held: &Held<'_>, on: bool) -> Result {
        if !self.dirty_ops {
            return Err(EOPNOTSUPP);
        }
        *self.tracking.get(held)? = on;
        Ok(())
    }

    /// Marks the leaf at `iova` dirty (the mock device's write); false if
    /// nothing is mapped there.
    pub fn set_dirty(&self, held: &Held<'_>, iova: u64) -> Result<bool> {
        match &mut *self.pt.get(held)? {
            PageTable::Mock(pt) => Ok(pt.set_dirty(iova)),
        }
    }

    /// Reports the dirty leaves over `iova..iova + len` whole and clears
    /// them unless `no_clear`.
    pub fn read_and_clear_dirty(
        &self,
        held: &Held<'_>,
        iova: u64,
        len: u64,
        no_clear: bool,
        f: impl FnMut(u64, u64) -> Result,
    ) -> Result {
        if !self.dirty_ops {
            return Err(EOPNOTSUPP);
        }
        match &mut *self.pt.get(held)? {
            PageTable::Mock(pt) => pt.read_and_clear_dirty(iova, len, no_clear, f),
        }
    }
}

/// A paging HWPT: a domain mirroring an IOAS.
pub struct HwptPaging {
    /// The domain.
    pub domain: DomainRef,
    /// The IOAS (a structural reference: the IOAS cannot be destroyed).
    pub ioas: Holder,
    /// Created by attaching a device to the IOAS (destroyed with its last
    /// device, reused by compatible devices).
    pub auto: bool,
    /// `IOMMU_HWPT_ALLOC_NEST_PARENT`.
    pub nest_parent: bool,
    /// `IOMMU_HWPT_ALLOC_PASID`: PASIDs may attach.
    pub pasid_compat: bool,
    /// The FAULT object page requests go to.
    pub fault: Option<Holder>,
}

/// A nested HWPT: a guest-owned stage 1 over a nesting parent.
pub struct HwptNested {
    /// The nesting parent (HWPT_PAGING).
    pub parent: Holder,
    /// The vIOMMU it was allocated from, if any.
    pub viommu: Option<Holder>,
    /// `IOMMU_HWPT_ALLOC_PASID`.
    pub pasid_compat: bool,
    /// The FAULT object page requests go to.
    pub fault: Option<Holder>,
    /// The mock nested domain's IOTLB tags (`MD_CHECK_IOTLB`).
    pub iotlb: CtxCell<[u32; crate::uapi::MOCK_NESTED_DOMAIN_IOTLB_NUM as usize]>,
}

/// Either kind of HWPT, as device attach sees it.
#[derive(Clone, Copy)]
pub enum Hwpt<'a> {
    /// A paging HWPT.
    Paging(&'a HwptPaging),
    /// A nested HWPT.
    Nested(&'a HwptNested),
}

impl<'a> Hwpt<'a> {
    /// The HWPT behind `obj`, if it is one.
    pub fn of(obj: &'a Object) -> Option<Self> {
        match obj.payload() {
            Payload::HwptPaging(p) => Some(Hwpt::Paging(p)),
            Payload::HwptNested(n) => Some(Hwpt::Nested(n)),
            _ => None,
        }
    }

    /// PASIDs may attach.
    pub fn pasid_compat(&self) -> bool {
        match self {
            Hwpt::Paging(p) => p.pasid_compat,
            Hwpt::Nested(n) => n.pasid_compat,
        }
    }

    /// The FAULT object of the HWPT.
    pub fn fault(&self) -> Option<&'a Arc<Object>> {
        match self {
            Hwpt::Paging(p) => p.fault.as_ref().map(Holder::object),
            Hwpt::Nested(n) => n.fault.as_ref().map(Holder::object),
        }
    }

    /// The domain needs dirty-tracking-capable devices.
    pub fn enforces_dirty(&self) -> bool {
        matches!(self, Hwpt::Paging(p) if p.domain.has_dirty_ops())
    }

    /// The vIOMMU of a nested HWPT allocated from one.
    pub fn viommu(&self) -> Option<&'a Arc<Object>> {
        match self {
            Hwpt::Nested(n) => n.viommu.as_ref().map(Holder::object),
            Hwpt::Paging(_) => None,
        }
    }
}

/// Creates an unpublished HWPT_PAGING over `ioas_obj` with `domain`, which
/// then mirrors the IOAS. On error nothing is left behind; an unpublished
/// result must be undone with [`hwpt_abort`].
pub fn hwpt_paging_create<'t>(
    cx: &'t Cx<'_>,
    ioas_obj: &Arc<Object>,
    auto: bool,
    flags: u32,
    domain: DomainRef,
    fault: Option<Holder>,
) -> Result<NewObject<'t>> {
    let new = hwpt_paging_reserve(cx, ioas_obj, auto, flags, domain, fault)?;
    hwpt_paging_add(cx, new.object().ok_or(EINVAL)?)?;
    Ok(new)
}

/// The first half of [`hwpt_paging_create`]: the object (and its ID),
/// without touching the IOAS yet.
fn hwpt_paging_reserve<'t>(
    cx: &'t Cx<'_>,
    ioas_obj: &Arc<Object>,
    auto: bool,
    flags: u32,
    domain: DomainRef,
    fault: Option<Holder>,
) -> Result<NewObject<'t>> {
    crate::payload!(ioas_obj, Ioas).ok_or(EINVAL)?;
    cx.ictx.objects().reserve(Payload::HwptPaging(HwptPaging {
        domain,
        ioas: ioas_obj.hold(),
        auto,
        nest_parent: flags & NEST != 0,
        pasid_compat: flags & PASID != 0,
        fault,
    }))
}

/// The second half of [`hwpt_paging_create`]: the IOAS starts mirroring
/// into the HWPT's domain (upstream's `iopt_table_add_domain`).
pub fn hwpt_paging_add(cx: &Cx<'_>, obj: &Arc<Object>) -> Result {
    let hwpt = crate::payload!(obj, HwptPaging).ok_or(EINVAL)?;
    let ioas = crate::payload!(hwpt.ioas.object(), Ioas).ok_or(EINVAL)?;
    ioas.iopt(cx.held)?.add_domain(cx.held, &hwpt.domain)?;
    if let Err(e) = ioas.remember_hwpt(cx.held, obj) {
        ioas.iopt(cx.held)?.remove_domain(cx.held, &hwpt.domain);
        return Err(e);
    }
    Ok(())
}

/// An automatic HWPT for a device attaching to an IOAS.
pub fn hwpt_auto_create<'t>(cx: &'t Cx<'_>, ioas_obj: &Arc<Object>) -> Result<NewObject<'t>> {
    let new = hwpt_auto_reserve(cx, ioas_obj)?;
    hwpt_paging_add(cx, new.object().ok_or(EINVAL)?)?;
    Ok(new)
}

/// An automatic HWPT whose domain does not mirror the IOAS yet: an attach
/// joins the device first, then calls [`hwpt_paging_add`], as upstream's
/// immediate attach does.
pub fn hwpt_auto_reserve<'t>(cx: &'t Cx<'_>, ioas_obj: &Arc<Object>) -> Result<NewObject<'t>> {
    let domain = Domain::new_mock(MockPt::Default, false)?;
    hwpt_paging_reserve(cx, ioas_obj, true, 0, domain, None)
}

/// Undoes [`hwpt_paging_create`] for a HWPT that was never published.
pub fn hwpt_abort(cx: &Cx<'_>, new: NewObject<'_>) {
    if let Some(obj) = new.object() {
        let _ = hwpt_paging_destroy(cx, obj);
    }
    drop(new);
}

/// Tears a HWPT_PAGING down: its domain leaves the IOAS.
pub fn hwpt_paging_destroy(cx: &Cx<'_>, obj: &Arc<Object>) -> Result {
    let hwpt = crate::payload!(obj, HwptPaging).ok_or(EINVAL)?;
    let ioas_obj = hwpt.ioas.object();
    if let Some(ioas) = crate::payload!(ioas_obj, Ioas) {
        ioas.iopt(cx.held)?.remove_domain(cx.held, &hwpt.domain);
        ioas.forget_hwpt(cx.held, obj)?;
    }
    Ok(())
}

/// `iommu_copy_struct_from_user()` for driver data: `len` must lie between
/// the struct's first version (`min_len`) and its current size (`EINVAL`).
pub fn copy_user_data<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
    ucmd: &Ucmd<'_>,
    uptr: u64,
    len: u32,
    min_len: usize,
) -> Result<T> {
    let len = len as usize;
    if len < min_len || len > size_of::<T>() {
        return Err(EINVAL);
    }
    let mut v = T::new_zeroed();
    ucmd.read_bytes(uptr, &mut v.as_mut_bytes()[..len])?;
    Ok(v)
}

/// `iommu_copy_struct_from_full_user_array()`: every entry of a user array
/// of `num` entries `entry_len` bytes apart, each read with
/// `copy_struct_from_user()` rules (shorter: zero-filled; longer: the tail
/// must be zero, else `E2BIG`).
pub fn copy_user_array<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
    ucmd: &Ucmd<'_>,
    uptr: u64,
    entry_len: u32,
    num: u32,
) -> Result<PVec<T>> {
    let mut out = PVec::new();
    out.try_reserve_for(num as usize)?;
    let ksize = size_of::<T>();
    for i in 0..u64::from(num) {
        let at = uptr
            .checked_add(i * u64::from(entry_len))
            .ok_or(crate::errno::EFAULT)?;
        let n = (entry_len as usize).min(ksize);
        let mut v = T::new_zeroed();
        ucmd.read_bytes(at, &mut v.as_mut_bytes()[..n])?;
        if entry_len as usize > ksize {
            ucmd.check_zeroed(at + ksize as u64, entry_len as usize - ksize)?;
        }
        out.try_push(v)?;
    }
    Ok(out)
}

/// Looks up the FAULT object of `IOMMU_HWPT_FAULT_ID_VALID`.
fn fault_holder(cx: &Cx<'_>, cmd: &IommuHwptAlloc) -> Result<Option<Holder>> {
    if cmd.flags & FAULT == 0 {
        return Ok(None);
    }
    let r = cx.ictx.objects().get(cmd.fault_id, Some(ObjKind::Fault))?;
    Ok(Some(r.object().hold()))
}

/// `IOMMU_HWPT_ALLOC`: a paging HWPT over an IOAS, or a nested HWPT over a
/// nesting parent or a vIOMMU.
pub(crate) fn hwpt_alloc(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    use crate::uapi::IOMMU_HWPT_DATA_NONE;
    let mut cmd: IommuHwptAlloc = ucmd.read()?;
    if cmd.__reserved != 0 || cmd.__reserved2 != 0 {
        return Err(EOPNOTSUPP);
    }
    if (cmd.data_type == IOMMU_HWPT_DATA_NONE) != (cmd.data_len == 0) {
        return Err(EINVAL);
    }
    let dev = cx.ictx.objects().get(cmd.dev_id, Some(ObjKind::Device))?;
    let device = crate::payload!(dev.object(), Device).ok_or(EINVAL)?;
    let pt = cx.ictx.objects().get(cmd.pt_id, None).map_err(|_| EINVAL)?;
    let pt_obj = pt.object();
    // Upstream looks the FAULT object up only once the HWPT exists (a
    // paging one already mirroring the IOAS), so every error of the
    // creation comes first; the lookup has no side effects, so it is done
    // here and its error held back until then.
    let (fault, fault_err) = match fault_holder(cx, &cmd) {
        Ok(f) => (f, None),
        Err(e) => (None, Some(e)),
    };
    let new = match pt_obj.payload() {
        Payload::Ioas(_) => {
            if cmd.flags & !(NEST | DIRTY | FAULT | PASID) != 0 {
                return Err(EOPNOTSUPP);
            }
            if cmd.flags & DIRTY != 0 && !device.dirty_capable() {
                return Err(EOPNOTSUPP);
            }
            if cmd.flags & FAULT != 0 && cmd.flags & NEST != 0 {
                return Err(EOPNOTSUPP);
            }
            let kind = crate::drivers::mock::nested::paging_user_cfg(ucmd, &cmd)?;
            let domain = Domain::new_mock(kind, cmd.flags & DIRTY != 0)?;
            hwpt_paging_create(cx, pt_obj, false, cmd.flags, domain, fault)?
        }
        Payload::HwptPaging(parent) => {
            if cmd.flags & !(FAULT | PASID) != 0 || cmd.data_len == 0 {
                return Err(EOPNOTSUPP);
            }
            if parent.auto || !parent.nest_parent {
                return Err(EINVAL);
            }
            nested_create(cx, ucmd, &cmd, pt_obj.hold(), None, fault)?
        }
        Payload::Viommu(v) => {
            if cmd.flags & !(FAULT | PASID) != 0 || cmd.data_len == 0 {
                return Err(EOPNOTSUPP);
            }
            let parent = v.parent.object().hold();
            nested_create(cx, ucmd, &cmd, parent, Some(pt_obj.hold()), fault)?
        }
        _ => return Err(EINVAL),
    };
    cmd.out_hwpt_id = new.id();
    let res = match fault_err {
        Some(e) => Err(e),
        None => ucmd.respond(&cmd),
    };
    if let Err(e) = res {
        if crate::payload!(new.object().ok_or(EINVAL)?, HwptPaging).is_some() {
            hwpt_abort(cx, new);
        }
        return Err(e);
    }
    new.publish();
    Ok(())
}

/// A nested HWPT with the driver's data from `cmd`.
fn nested_create<'t>(
    cx: &'t Cx<'_>,
    ucmd: &Ucmd<'_>,
    cmd: &IommuHwptAlloc,
    parent: Holder,
    viommu: Option<Holder>,
    fault: Option<Holder>,
) -> Result<NewObject<'t>> {
    let iotlb = crate::drivers::mock::nested::nested_user_cfg(ucmd, cmd)?;
    cx.ictx.objects().reserve(Payload::HwptNested(HwptNested {
        parent,
        viommu,
        pasid_compat: cmd.flags & PASID != 0,
        fault,
        iotlb: CtxCell::new([iotlb; crate::uapi::MOCK_NESTED_DOMAIN_IOTLB_NUM as usize]),
    }))
}

/// `IOMMU_HWPT_INVALIDATE` entry bounds, as upstream.
const INVALIDATE_ENTRY_NUM_MAX: u32 = 1 << 19;

/// `IOMMU_HWPT_INVALIDATE`: a nested HWPT's or a vIOMMU's caches. The
/// number of entries handled is reported back even on failure.
pub(crate) fn hwpt_invalidate(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: crate::uapi::IommuHwptInvalidate = ucmd.read()?;
    let mut done = 0u32;
    let rc = (|| {
        if cmd.__reserved != 0 {
            return Err(EOPNOTSUPP);
        }
        if cmd.entry_num != 0
            && (cmd.data_uptr == 0
                || cmd.entry_len == 0
                || u64::from(cmd.entry_len) > PAGE_SIZE
                || cmd.entry_num > INVALIDATE_ENTRY_NUM_MAX)
        {
            return Err(EINVAL);
        }
        let pt = cx.ictx.objects().get(cmd.hwpt_id, None)?;
        match pt.object().payload() {
            Payload::HwptNested(n) => {
                crate::drivers::mock::nested::nested_invalidate(cx, ucmd, &cmd, n, &mut done)
            }
            Payload::Viommu(v) => {
                crate::drivers::mock::nested::viommu_invalidate(cx, ucmd, &cmd, v, &mut done)
            }
            _ => Err(EINVAL),
        }
    })();
    cmd.entry_num = done;
    ucmd.respond(&cmd).map_err(|_| crate::errno::EFAULT)?;
    rc
}
