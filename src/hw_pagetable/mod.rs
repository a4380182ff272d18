//! Hardware page tables: IOMMU domains and the HWPT_PAGING objects that
//! bind one to an IOAS (nested HWPTs, dirty tracking and invalidation come
//! with the HWPT issue).
//!
//! A [`Domain`] is what a driver allocates: a page table of some format with
//! its page sizes and aperture. A [`HwptPaging`] object makes the IOAS copy
//! its mappings into the domain; devices attach to HWPTs.

use crate::drivers::mock::pagetable::{MockPageTable, MOCK_PAGE_SIZE};
use crate::errno::{Result, EINVAL, EOPNOTSUPP};
use crate::object::{Holder, NewObject, Object, Payload};
use crate::platform::{arc_new, Arc, CtxCell, Held};
use crate::uapi::IommuHwptAlloc;
use crate::ucmd::{Cx, Ucmd};
use core::sync::atomic::{AtomicU64, Ordering};

/// Unique domain cookies, the owner tag of aperture reservations.
static NEXT_COOKIE: AtomicU64 = AtomicU64::new(1);

/// The page-table formats a domain can use.
pub enum PageTable {
    /// The selftest mock format.
    Mock(MockPageTable),
}

/// An IOMMU domain: a page table, its page sizes and aperture.
pub struct Domain {
    cookie: u64,
    pgsize_bitmap: u64,
    aperture: (u64, u64),
    pt: CtxCell<PageTable>,
}

/// Shared reference to a domain (held by its HWPT and the IOAS it mirrors).
pub type DomainRef = Arc<Domain>;

impl Domain {
    /// A mock domain with upstream's selftest constants.
    pub fn new_mock() -> Result<DomainRef> {
        arc_new(Self {
            cookie: NEXT_COOKIE.fetch_add(1, Ordering::Relaxed),
            pgsize_bitmap: !(MOCK_PAGE_SIZE - 1),
            aperture: (
                crate::uapi::MOCK_APERTURE_START,
                crate::uapi::MOCK_APERTURE_LAST,
            ),
            pt: CtxCell::new(PageTable::Mock(MockPageTable::new())),
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
    /// `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`.
    pub dirty_tracking: bool,
}

/// Creates an unpublished HWPT_PAGING over `ioas_obj`: a new domain that
/// mirrors the IOAS, remembered by it. On error nothing is left behind; an
/// unpublished result must be undone with [`hwpt_abort`].
pub fn hwpt_paging_create<'t>(
    cx: &'t Cx<'_>,
    ioas_obj: &Arc<Object>,
    auto: bool,
    flags: u32,
) -> Result<NewObject<'t>> {
    let ioas = crate::payload!(ioas_obj, Ioas).ok_or(EINVAL)?;
    let domain = Domain::new_mock()?;
    let new = cx.ictx.objects().reserve(Payload::HwptPaging(HwptPaging {
        domain: domain.clone(),
        ioas: ioas_obj.hold(),
        auto,
        nest_parent: flags & crate::uapi::IOMMU_HWPT_ALLOC_NEST_PARENT != 0,
        dirty_tracking: flags & crate::uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING != 0,
    }))?;
    let obj = new.object().cloned().ok_or(EINVAL)?;
    ioas.iopt(cx.held)?.add_domain(cx.held, &domain)?;
    if let Err(e) = ioas.remember_hwpt(cx.held, &obj) {
        ioas.iopt(cx.held)?.remove_domain(cx.held, &domain);
        return Err(e);
    }
    Ok(new)
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

/// `IOMMU_HWPT_ALLOC` (paging HWPTs over an IOAS for now).
pub(crate) fn hwpt_alloc(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    use crate::uapi::{
        IOMMU_HWPT_ALLOC_DIRTY_TRACKING as DIRTY, IOMMU_HWPT_ALLOC_NEST_PARENT as NEST,
        IOMMU_HWPT_ALLOC_PASID as PASID,
    };
    let mut cmd: IommuHwptAlloc = ucmd.read()?;
    if cmd.flags & !(NEST | DIRTY | PASID) != 0 || cmd.__reserved != 0 || cmd.__reserved2 != 0 {
        return Err(EOPNOTSUPP);
    }
    if cmd.data_type != 0 || cmd.data_len != 0 {
        return Err(EOPNOTSUPP);
    }
    let dev = cx
        .ictx
        .objects()
        .get(cmd.dev_id, Some(crate::object::ObjKind::Device))?;
    let device = crate::payload!(dev.object(), Device).ok_or(EINVAL)?;
    if cmd.flags & DIRTY != 0 && !device.dirty_capable() {
        return Err(EOPNOTSUPP);
    }
    let pt = cx.ictx.objects().get(cmd.pt_id, None)?;
    if crate::payload!(pt.object(), Ioas).is_none() {
        // Nested HWPTs come with the HWPT issue.
        return Err(EINVAL);
    }
    let new = hwpt_paging_create(cx, pt.object(), false, cmd.flags)?;
    cmd.out_hwpt_id = new.id();
    if let Err(e) = ucmd.respond(&cmd) {
        hwpt_abort(cx, new);
        return Err(e);
    }
    new.publish();
    Ok(())
}

/// `IOMMU_HWPT_INVALIDATE`. Only nested HWPTs and vIOMMUs take
/// invalidations and neither exists yet (HWPT issue), so a valid request
/// names no such object.
pub(crate) fn hwpt_invalidate(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let cmd: crate::uapi::IommuHwptInvalidate = ucmd.read()?;
    if cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    if cmd.entry_num != 0 && (cmd.data_uptr == 0 || cmd.entry_len == 0) {
        return Err(EINVAL);
    }
    cx.ictx.objects().get(cmd.hwpt_id, None)?;
    Err(EOPNOTSUPP)
}

/// `IOMMU_VIOMMU_ALLOC`: the argument checks; no IOMMU offers a vIOMMU yet
/// (HWPT issue).
pub(crate) fn viommu_alloc(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let cmd: crate::uapi::IommuViommuAlloc = ucmd.read()?;
    if cmd.flags != 0 || cmd.r#type == crate::uapi::IOMMU_VIOMMU_TYPE_DEFAULT {
        return Err(EOPNOTSUPP);
    }
    cx.ictx
        .objects()
        .get(cmd.dev_id, Some(crate::object::ObjKind::Device))?;
    Err(EOPNOTSUPP)
}

/// `IOMMU_VDEVICE_ALLOC`: there are no vIOMMUs yet, so the ID is unknown.
pub(crate) fn vdevice_alloc(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let cmd: crate::uapi::IommuVdeviceAlloc = ucmd.read()?;
    cx.ictx.objects().get(cmd.viommu_id, None)?;
    Err(crate::errno::ENOENT)
}
