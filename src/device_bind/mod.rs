//! Device binding: devices joining an iommufd context, their isolation
//! groups, and attach/replace/detach of a device to a page table.
//!
//! [`check_compat`] is the one place that decides whether a device may use a
//! HWPT; the seeds' negotiation/freeze step will extend it rather than add
//! checks elsewhere. Groups are objects of their own ([`Group`]): every
//! device belongs to one, attach is per group (all devices of a group must
//! use the same HWPT), and later work exposes them to userspace.

use crate::errno::{Result, EBUSY, EINVAL, ENOENT};
use crate::hw_pagetable::{hwpt_abort, hwpt_auto_create, hwpt_auto_reserve, hwpt_paging_add, Hwpt};
use crate::object::{Holder, Object};
use crate::platform::{arc_new, Arc, CtxCell, Held, PVec, VecExt};
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
    id: u32,
    caps: DeviceCaps,
    group: Arc<Group>,
    /// The mock device's cache tags (`IOMMU_TEST_OP_DEV_CHECK_CACHE`).
    pub mock_cache: CtxCell<[u32; 4]>,
    /// The HWPT the device's RID is attached to (a `users` reference).
    attached: CtxCell<Option<Holder>>,
    /// The HWPTs its PASIDs are attached to.
    pasids: CtxCell<PVec<(u32, Holder)>>,
    /// Its vDEVICE (one per device).
    vdev: CtxCell<Option<Arc<Object>>>,
    /// Mock driver state: the next attach of PASID 1024 fails (upstream's
    /// selftest hook for the core's rollback).
    pub mock_pasid_1024_fail: CtxCell<bool>,
}

impl Device {
    /// Device object `id` with `caps` in `group`.
    pub fn new(id: u32, caps: DeviceCaps, group: Arc<Group>) -> Self {
        Self {
            id,
            caps,
            group,
            mock_cache: CtxCell::new([crate::uapi::IOMMU_TEST_DEV_CACHE_DEFAULT; 4]),
            attached: CtxCell::new(None),
            pasids: CtxCell::new(PVec::new()),
            vdev: CtxCell::new(None),
            mock_pasid_1024_fail: CtxCell::new(false),
        }
    }

    /// The device object's ID.
    pub fn id(&self) -> u32 {
        self.id
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

    /// The HWPT the device's RID is attached to.
    pub fn attached_hwpt(&self, cx: &Cx<'_>) -> Result<Option<Arc<Object>>> {
        self.hwpt_of(cx.held, NO_PASID)
    }

    /// The HWPT `pasid` (or the RID for `IOMMU_NO_PASID`) is attached to.
    pub fn hwpt_of(&self, held: &Held<'_>, pasid: u32) -> Result<Option<Arc<Object>>> {
        if pasid == NO_PASID {
            return Ok(self
                .attached
                .get(held)?
                .as_ref()
                .map(|h| h.object().clone()));
        }
        Ok(self
            .pasids
            .get(held)?
            .iter()
            .find(|(p, _)| *p == pasid)
            .map(|(_, h)| h.object().clone()))
    }

    /// The device's vDEVICE.
    pub fn vdev(&self, held: &Held<'_>) -> Result<Option<Arc<Object>>> {
        Ok(self.vdev.get(held)?.clone())
    }

    /// Records (or forgets) the device's vDEVICE.
    pub fn set_vdev(&self, held: &Held<'_>, v: Option<Arc<Object>>) -> Result {
        *self.vdev.get(held)? = v;
        Ok(())
    }
}

/// `IOMMU_NO_PASID`: the RID (requests without a PASID).
pub const NO_PASID: u32 = crate::uapi::IOMMU_NO_PASID;

/// Whether `dev` (its RID, or `pasid`) may use `hwpt_obj`. `EINVAL` means
/// "try another" to the automatic domain search, as upstream.
pub fn check_compat(held: &Held<'_>, dev: &Device, hwpt_obj: &Object, pasid: u32) -> Result {
    let h = Hwpt::of(hwpt_obj).ok_or(EINVAL)?;
    if pasid == NO_PASID {
        if !h.pasid_compat() && !dev.pasids.get(held)?.is_empty() {
            return Err(EINVAL);
        }
    } else {
        if !h.pasid_compat() {
            return Err(EINVAL);
        }
        let rid = dev.attached.get(held)?;
        if let Some(r) = rid.as_ref() {
            if Hwpt::of(r.object()).is_some_and(|rh| !rh.pasid_compat()) {
                return Err(EINVAL);
            }
        }
        let width = dev.caps.max_pasid_log2;
        if width == 0 || (width < 32 && pasid >= 1u32 << width) {
            return Err(EINVAL);
        }
    }
    if h.enforces_dirty() && !dev.caps.dirty {
        return Err(EINVAL);
    }
    // A nested HWPT of a vIOMMU translates the guest's view of the device:
    // the RID needs a vDEVICE on that vIOMMU first.
    if let (Some(v), NO_PASID) = (h.viommu(), pasid) {
        let vd = dev.vdev.get(held)?;
        let ok = vd.as_ref().is_some_and(|o| {
            crate::payload!(o, Vdevice).is_some_and(|x| Arc::ptr_eq(x.viommu.object(), v))
        });
        if !ok {
            return Err(ENOENT);
        }
    }
    Ok(())
}

/// Joins `dev` (its group for the RID) to `hwpt_obj` for `pasid`.
fn join(cx: &Cx<'_>, dev: &Device, hwpt_obj: &Arc<Object>, pasid: u32) -> Result {
    check_compat(cx.held, dev, hwpt_obj, pasid)?;
    if pasid == NO_PASID {
        let mut g = dev.group.st.get(cx.held)?;
        if let Some(cur) = &g.0 {
            if !Arc::ptr_eq(cur, hwpt_obj) {
                return Err(EINVAL);
            }
        }
        g.0 = Some(hwpt_obj.clone());
        g.1 += 1;
        *dev.attached.get(cx.held)? = Some(hwpt_obj.hold());
        return Ok(());
    }
    let mut l = dev.pasids.get(cx.held)?;
    l.try_reserve_for(1)?;
    crate::drivers::mock::nested::set_dev_pasid(cx.held, dev, pasid, true)?;
    l.try_push((pasid, hwpt_obj.hold()))
}

/// Takes `dev` (or its `pasid`) out of its HWPT; the returned reference
/// keeps the HWPT alive until the caller lets go. `blocked`: a detach (the driver
/// sees the blocking domain) rather than the first half of a replace.
fn unjoin(cx: &Cx<'_>, dev: &Device, pasid: u32, blocked: bool) -> Result<Option<Holder>> {
    let holder = if pasid == NO_PASID {
        let holder = dev.attached.get(cx.held)?.take();
        if holder.is_some() {
            let mut g = dev.group.st.get(cx.held)?;
            g.1 = g.1.saturating_sub(1);
            if g.1 == 0 {
                g.0 = None;
            }
        }
        holder
    } else {
        let mut l = dev.pasids.get(cx.held)?;
        let h = l
            .iter()
            .position(|(p, _)| *p == pasid)
            .and_then(|i| l.remove_at(i))
            .map(|(_, h)| h);
        drop(l);
        if h.is_some() && blocked {
            let _ = crate::drivers::mock::nested::set_dev_pasid(cx.held, dev, pasid, false);
        }
        h
    };
    Ok(holder)
}

/// Answers (INVALID) the page requests still pending through the
/// attachment of `dev`/`pasid` to the HWPT of `holder`, once that
/// attachment is really gone (after a detach or a successful replace).
fn auto_respond(cx: &Cx<'_>, dev: &Device, pasid: u32, holder: &Holder) -> Result {
    if let Some(f) = Hwpt::of(holder.object()).and_then(|h| h.fault()) {
        if let Some(fault) = crate::payload!(f, Fault) {
            fault.q.get(cx.held)?.auto_respond(dev.id, pasid);
        }
    }
    Ok(())
}

/// Puts `holder` back as the HWPT of `dev` (RID or `pasid`) after a failed
/// replace, without asking the driver again.
fn restore(cx: &Cx<'_>, dev: &Device, pasid: u32, holder: Option<Holder>) -> Result {
    let Some(h) = holder else {
        return Ok(());
    };
    if pasid == NO_PASID {
        let mut g = dev.group.st.get(cx.held)?;
        g.0 = Some(h.object().clone());
        g.1 += 1;
        *dev.attached.get(cx.held)? = Some(h);
        return Ok(());
    }
    dev.pasids.get(cx.held)?.try_push((pasid, h))
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
/// new one, its unpublished handle. With `immediate` (an attach) a new
/// HWPT's domain does not mirror the IOAS yet: upstream attaches the device
/// to a new automatic domain before `iopt_table_add_domain`, so a device
/// that cannot use it fails (`EINVAL`) before the aperture is reserved.
fn resolve<'t>(
    cx: &'t Cx<'_>,
    dev: &Device,
    pt_id: u32,
    pasid: u32,
    immediate: bool,
) -> Result<(Arc<Object>, Option<crate::object::NewObject<'t>>)> {
    let pt = cx.ictx.objects().get(pt_id, None)?;
    let obj = pt.object().clone();
    if Hwpt::of(&obj).is_some() {
        return Ok((obj, None));
    }
    let Some(ioas) = crate::payload!(obj, Ioas) else {
        return Err(EINVAL);
    };
    for h in ioas.auto_hwpts(cx.held)?.iter() {
        if check_compat(cx.held, dev, h, pasid).is_ok() {
            return Ok((h.clone(), None));
        }
    }
    let new = if immediate {
        hwpt_auto_reserve(cx, &obj)?
    } else {
        hwpt_auto_create(cx, &obj)?
    };
    let hobj = new.object().cloned().ok_or(EINVAL)?;
    Ok((hobj, Some(new)))
}

/// Attaches `dev` (its RID, or `pasid`) to `pt_id` (an IOAS or a HWPT);
/// returns the HWPT's ID. Already attached is `EBUSY`.
pub fn attach(cx: &Cx<'_>, dev: &Device, pasid: u32, pt_id: u32) -> Result<u32> {
    if dev.hwpt_of(cx.held, pasid)?.is_some() {
        return Err(EBUSY);
    }
    let (hwpt, new) = resolve(cx, dev, pt_id, pasid, true)?;
    if let Err(e) = join(cx, dev, &hwpt, pasid) {
        if let Some(n) = new {
            hwpt_abort(cx, n);
        }
        return Err(e);
    }
    if let Some(n) = new {
        if let Err(e) = hwpt_paging_add(cx, &hwpt) {
            // Nothing can have used the attachment yet: no faults to
            // answer.
            let _ = unjoin(cx, dev, pasid, true);
            hwpt_abort(cx, n);
            return Err(e);
        }
        n.publish();
    }
    Ok(hwpt.id())
}

/// Replaces the HWPT of an attached `dev` (RID or `pasid`) with `pt_id`;
/// on failure the old one stays. Returns the new HWPT's ID.
pub fn replace(cx: &Cx<'_>, dev: &Device, pasid: u32, pt_id: u32) -> Result<u32> {
    // Upstream looks `pt_id` up (and makes a new automatic domain) before
    // it finds that nothing is attached.
    let (hwpt, new) = resolve(cx, dev, pt_id, pasid, false)?;
    let Some(old) = dev.hwpt_of(cx.held, pasid)? else {
        if let Some(n) = new {
            hwpt_abort(cx, n);
        }
        return Err(EINVAL);
    };
    if Arc::ptr_eq(&hwpt, &old) {
        return Ok(hwpt.id());
    }
    // The old HWPT stays alive through `old_holder` until the new attach
    // succeeded; on failure the device goes back to it.
    let old_holder = unjoin(cx, dev, pasid, false)?;
    if let Err(e) = join(cx, dev, &hwpt, pasid) {
        // The driver keeps the old translation when a replace fails, so
        // only our bookkeeping goes back.
        let back = restore(cx, dev, pasid, old_holder);
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
        auto_respond(cx, dev, pasid, &h)?;
        put_hwpt(cx, h);
    }
    Ok(hwpt.id())
}

/// Detaches `dev` (RID or `pasid`) from its HWPT; nothing attached is fine.
pub fn detach(cx: &Cx<'_>, dev: &Device, pasid: u32) -> Result {
    if let Some(h) = unjoin(cx, dev, pasid, true)? {
        let res = auto_respond(cx, dev, pasid, &h);
        put_hwpt(cx, h);
        res?;
    }
    Ok(())
}

/// Unbinds `dev`: every PASID and the RID are detached.
pub fn detach_all(cx: &Cx<'_>, dev: &Device) -> Result {
    loop {
        let next = dev.pasids.get(cx.held)?.first().map(|(p, _)| *p);
        match next {
            Some(p) => detach(cx, dev, p)?,
            None => break,
        }
    }
    detach(cx, dev, NO_PASID)
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
