//! Device binding: devices joining an iommufd context, their isolation
//! groups, and attach/replace/detach of a device to a page table.
//!
//! [`check_compat`] is the one place that decides whether a device may use a
//! HWPT; the seeds' negotiation/freeze step will extend it rather than add
//! checks elsewhere. Groups are objects of their own ([`Group`]): every
//! device belongs to one, attach is per group (all devices of a group must
//! use the same HWPT), and later work exposes them to userspace.

use crate::errno::{Result, EINVAL};
use crate::hw_pagetable::{hwpt_abort, hwpt_paging_create, HwptPaging};
use crate::object::{Holder, Object};
use crate::platform::{arc_new, Arc, CtxCell};
use crate::ucmd::Cx;
use core::sync::atomic::{AtomicU32, Ordering};

/// Group IDs (per module; mock devices each get a group of their own, as
/// `generic_device_group` gives them upstream).
static NEXT_GROUP: AtomicU32 = AtomicU32::new(1);

/// Device capabilities an attach may depend on.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceCaps {
    /// The IOMMU can track dirty pages for this device.
    pub dirty: bool,
    /// PASID width (0: no PASID support).
    pub max_pasid_log2: u8,
}

/// An isolation group: devices the IOMMU cannot isolate from each other.
pub struct Group {
    id: u32,
    /// The HWPT the group is attached to and how many of its devices use it.
    st: CtxCell<(Option<Arc<Object>>, u32)>,
}

impl Group {
    /// A new, empty group.
    pub fn new() -> Result<Arc<Self>> {
        arc_new(Self {
            id: NEXT_GROUP.fetch_add(1, Ordering::Relaxed),
            st: CtxCell::new((None, 0)),
        })
    }

    /// The group's ID.
    pub fn id(&self) -> u32 {
        self.id
    }
}

/// A bound device.
pub struct Device {
    caps: DeviceCaps,
    group: Arc<Group>,
    /// The mock device's cache tags (`IOMMU_TEST_OP_DEV_CHECK_CACHE`).
    pub mock_cache: CtxCell<[u32; 4]>,
    /// The HWPT the device is attached to (a `users` reference on it).
    attached: CtxCell<Option<Holder>>,
}

impl Device {
    /// A device with `caps` in `group`.
    pub fn new(caps: DeviceCaps, group: Arc<Group>) -> Self {
        Self {
            caps,
            group,
            mock_cache: CtxCell::new([crate::uapi::IOMMU_TEST_DEV_CACHE_DEFAULT; 4]),
            attached: CtxCell::new(None),
        }
    }

    /// The device's capabilities.
    pub fn caps(&self) -> DeviceCaps {
        self.caps
    }

    /// True if dirty tracking is possible for this device.
    pub fn dirty_capable(&self) -> bool {
        self.caps.dirty
    }

    /// The device's isolation group.
    pub fn group(&self) -> &Arc<Group> {
        &self.group
    }

    /// The HWPT the device is attached to.
    pub fn attached_hwpt(&self, cx: &Cx<'_>) -> Result<Option<Arc<Object>>> {
        Ok(self
            .attached
            .get(cx.held)?
            .as_ref()
            .map(|h| h.object().clone()))
    }
}

/// Whether `dev` may use `hwpt` (`EINVAL`: try another, as upstream's
/// auto-domain search does).
pub fn check_compat(dev: &Device, hwpt: &HwptPaging) -> Result {
    if hwpt.dirty_tracking && !dev.caps.dirty {
        return Err(EINVAL);
    }
    Ok(())
}

/// Joins `dev` (and its group) to `hwpt_obj`.
fn join(cx: &Cx<'_>, dev: &Device, hwpt_obj: &Arc<Object>) -> Result {
    let hwpt = crate::payload!(hwpt_obj, HwptPaging).ok_or(EINVAL)?;
    check_compat(dev, hwpt)?;
    let mut g = dev.group.st.get(cx.held)?;
    if let Some(cur) = &g.0 {
        if !Arc::ptr_eq(cur, hwpt_obj) {
            return Err(EINVAL);
        }
    }
    g.0 = Some(hwpt_obj.clone());
    g.1 += 1;
    *dev.attached.get(cx.held)? = Some(hwpt_obj.hold());
    Ok(())
}

/// Takes `dev` out of its HWPT: the group's count drops; the returned
/// reference keeps the HWPT alive until the caller lets go.
fn unjoin(cx: &Cx<'_>, dev: &Device) -> Result<Option<Holder>> {
    let holder = dev.attached.get(cx.held)?.take();
    if holder.is_some() {
        let mut g = dev.group.st.get(cx.held)?;
        g.1 = g.1.saturating_sub(1);
        if g.1 == 0 {
            g.0 = None;
        }
    }
    Ok(holder)
}

/// Lets go of a HWPT a device used; an automatic one nobody uses any more
/// is destroyed (`EBUSY` from the table means it is still in use).
fn put_hwpt(cx: &Cx<'_>, holder: Holder) {
    let obj = holder.object().clone();
    drop(holder);
    if crate::payload!(obj, HwptPaging).is_some_and(|h| h.auto) {
        if let Ok(removed) = cx.ictx.objects().remove(obj.id()) {
            crate::ucmd::destroy_object(cx, &removed);
        }
    }
}

/// Resolves `pt_id` for `dev`: a HWPT as is, or for an IOAS a compatible
/// automatic HWPT, created if none fits. Returns the HWPT object and, for a
/// new one, its unpublished handle.
fn resolve<'t>(
    cx: &'t Cx<'_>,
    dev: &Device,
    pt_id: u32,
) -> Result<(Arc<Object>, Option<crate::object::NewObject<'t>>)> {
    let pt = cx.ictx.objects().get(pt_id, None)?;
    let obj = pt.object().clone();
    if let Some(hwpt) = crate::payload!(obj, HwptPaging) {
        check_compat(dev, hwpt)?;
        return Ok((obj, None));
    }
    let Some(ioas) = crate::payload!(obj, Ioas) else {
        return Err(EINVAL);
    };
    for h in ioas.auto_hwpts(cx.held)?.iter() {
        if crate::payload!(h, HwptPaging).is_some_and(|hp| check_compat(dev, hp).is_ok()) {
            return Ok((h.clone(), None));
        }
    }
    let new = hwpt_paging_create(cx, &obj, true, 0)?;
    let hobj = new.object().cloned().ok_or(EINVAL)?;
    Ok((hobj, Some(new)))
}

/// Attaches `dev` to `pt_id` (an IOAS or a HWPT); returns the HWPT's ID.
pub fn attach(cx: &Cx<'_>, dev: &Device, pt_id: u32) -> Result<u32> {
    if dev.attached.get(cx.held)?.is_some() {
        return Err(EINVAL);
    }
    let (hwpt, new) = resolve(cx, dev, pt_id)?;
    if let Err(e) = join(cx, dev, &hwpt) {
        if let Some(n) = new {
            hwpt_abort(cx, n);
        }
        return Err(e);
    }
    if let Some(n) = new {
        n.publish();
    }
    Ok(hwpt.id())
}

/// Replaces the HWPT of an attached `dev` with `pt_id`; on failure the old
/// one stays. Returns the new HWPT's ID.
pub fn replace(cx: &Cx<'_>, dev: &Device, pt_id: u32) -> Result<u32> {
    let Some(old) = dev.attached_hwpt(cx)? else {
        return Err(EINVAL);
    };
    let (hwpt, new) = resolve(cx, dev, pt_id)?;
    if Arc::ptr_eq(&hwpt, &old) {
        return Ok(hwpt.id());
    }
    // The old HWPT stays alive through `old_holder` until the new attach
    // succeeded; on failure the device goes back to it.
    let old_holder = unjoin(cx, dev)?;
    if let Err(e) = join(cx, dev, &hwpt) {
        let back = join(cx, dev, &old);
        drop(old_holder);
        if let Some(n) = new {
            hwpt_abort(cx, n);
        }
        back?;
        return Err(e);
    }
    if let Some(n) = new {
        n.publish();
    }
    if let Some(h) = old_holder {
        put_hwpt(cx, h);
    }
    Ok(hwpt.id())
}

/// Detaches `dev` from its HWPT.
pub fn detach(cx: &Cx<'_>, dev: &Device) -> Result {
    if let Some(h) = unjoin(cx, dev)? {
        put_hwpt(cx, h);
    }
    Ok(())
}

/// `IOMMU_GET_HW_INFO`: the IOMMU behind a device, its capabilities and
/// driver data (zero-filled past what the driver provides).
pub(crate) fn get_hw_info(cx: &Cx<'_>, ucmd: &crate::ucmd::Ucmd<'_>) -> Result {
    use crate::uapi::{
        IommuHwInfo, IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED,
        IOMMU_HW_INFO_FLAG_INPUT_TYPE, IOMMU_HW_INFO_TYPE_DEFAULT,
    };
    use zerocopy::IntoBytes;
    let mut cmd: IommuHwInfo = ucmd.read()?;
    if cmd.flags & !IOMMU_HW_INFO_FLAG_INPUT_TYPE != 0 || cmd.__reserved != [0; 3] {
        return Err(crate::errno::EOPNOTSUPP);
    }
    if cmd.flags & IOMMU_HW_INFO_FLAG_INPUT_TYPE == 0 {
        cmd.set_in_data_type(IOMMU_HW_INFO_TYPE_DEFAULT);
    }
    let r = cx
        .ictx
        .objects()
        .get(cmd.dev_id, Some(crate::object::ObjKind::Device))?;
    let dev = crate::payload!(r.object(), Device).ok_or(EINVAL)?;
    let (ty, info) = crate::drivers::mock::hw_info(cmd.in_data_type())?;
    let data = info.as_bytes();
    let ulen = cmd.data_len as usize;
    let copy = ulen.min(data.len());
    ucmd.write_at(cmd.data_uptr, &data[..copy])?;
    if copy < ulen {
        let zeros = [0u8; 64];
        let mut at = copy;
        while at < ulen {
            let n = (ulen - at).min(zeros.len());
            ucmd.write_at(cmd.data_uptr + at as u64, &zeros[..n])?;
            at += n;
        }
    }
    cmd.data_len = data.len() as u32;
    cmd.out_data_type = ty;
    cmd.out_capabilities = IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED;
    if dev.caps.dirty {
        cmd.out_capabilities |= IOMMU_HW_CAP_DIRTY_TRACKING;
    }
    cmd.out_max_pasid_log2 = dev.caps.max_pasid_log2;
    ucmd.respond(&cmd)
}
