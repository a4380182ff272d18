//! The vIOMMU family: a vIOMMU over a nesting parent, virtual devices (the
//! guest's IDs of bound devices), hardware queues backed by guest memory.
//!
//! Object references follow upstream: a vIOMMU holds its parent HWPT; a
//! vDEVICE holds its vIOMMU and device; a HW queue holds its vIOMMU, the
//! queue it depends on, and a lock on the IOAS pages it uses (unmap is
//! `EBUSY` until it goes). A device unbound under a vDEVICE takes it down
//! and tombstones its ID.

use crate::errno::{Result, EEXIST, EINVAL, ENOENT, EOPNOTSUPP, EOVERFLOW};
use crate::object::{Holder, ObjKind, Object, Payload};
use crate::platform::{Arc, CtxCell, Held, MmapPages, PVec, VecExt};
use crate::ucmd::{Cx, Ucmd};

/// A vIOMMU.
pub struct Viommu {
    /// The nesting parent HWPT_PAGING.
    pub parent: Holder,
    /// Its vDEVICE objects.
    pub vdevs: CtxCell<PVec<Arc<Object>>>,
    /// Its vEVENTQ objects (one per type).
    pub veventqs: CtxCell<PVec<Arc<Object>>>,
    /// Its HW queues by index (the mock allows two).
    pub hw_queues: CtxCell<[Option<Arc<Object>>; crate::uapi::IOMMU_TEST_HW_QUEUE_MAX as usize]>,
    /// Pages userspace may `mmap` through `/dev/iommu`, and their offset.
    pub mmap: Option<(MmapPages, u64)>,
}

impl Viommu {
    /// The vEVENTQ of type `ty`.
    pub fn find_veventq(&self, held: &Held<'_>, ty: u32) -> Result<Option<Arc<Object>>> {
        Ok(self
            .veventqs
            .get(held)?
            .iter()
            .find(|o| crate::payload!(o, Veventq).is_some_and(|q| q.ty == ty))
            .cloned())
    }

    /// The vDEVICE with guest ID `virt_id`.
    pub fn find_vdev(&self, held: &Held<'_>, virt_id: u64) -> Result<Option<Arc<Object>>> {
        Ok(self
            .vdevs
            .get(held)?
            .iter()
            .find(|o| crate::payload!(o, Vdevice).is_some_and(|v| v.virt_id == virt_id))
            .cloned())
    }

    /// The vDEVICE of device object `dev`.
    pub fn vdev_of(&self, held: &Held<'_>, dev: &Arc<Object>) -> Result<Option<Arc<Object>>> {
        Ok(self
            .vdevs
            .get(held)?
            .iter()
            .find(|o| crate::payload!(o, Vdevice).is_some_and(|v| Arc::ptr_eq(v.dev.object(), dev)))
            .cloned())
    }
}

/// A virtual device: a device as the guest's vIOMMU names it.
pub struct Vdevice {
    /// Its vIOMMU.
    pub viommu: Holder,
    /// The bound device.
    pub dev: Holder,
    /// The guest's ID for it (e.g. a vSID / vRID).
    pub virt_id: u64,
}

/// A hardware queue in guest memory.
pub struct HwQueue {
    /// Its vIOMMU.
    pub viommu: Holder,
    /// Index among the vIOMMU's queues.
    pub index: u32,
    /// The IOAS and the range whose pages it keeps pinned and locked.
    pub ioas: Holder,
    /// See `ioas`.
    pub iova: u64,
    /// See `ioas`.
    pub length: u64,
    /// What is set up after the queue took its ID.
    st: CtxCell<HwQueueState>,
}

/// The parts of a HW queue made after its object, in upstream's order.
#[derive(Default)]
struct HwQueueState {
    /// The internal access its pages are pinned through (the next ID).
    access: Option<Holder>,
    /// The pages are pinned and locked.
    locked: bool,
    /// The queue it depends on (destroyed after this one).
    prev: Option<Holder>,
}

/// `IOMMU_VIOMMU_ALLOC`.
pub(crate) fn viommu_alloc(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: crate::uapi::IommuViommuAlloc = ucmd.read()?;
    if cmd.flags != 0 || cmd.r#type == crate::uapi::IOMMU_VIOMMU_TYPE_DEFAULT {
        return Err(EOPNOTSUPP);
    }
    cx.ictx.objects().get(cmd.dev_id, Some(ObjKind::Device))?;
    if cmd.r#type != crate::uapi::IOMMU_VIOMMU_TYPE_SELFTEST {
        return Err(EOPNOTSUPP);
    }
    let r = cx
        .ictx
        .objects()
        .get(cmd.hwpt_id, Some(ObjKind::HwptPaging))?;
    let parent = crate::payload!(r.object(), HwptPaging).ok_or(EINVAL)?;
    if !parent.nest_parent {
        return Err(EINVAL);
    }
    let (reply, mmap) = crate::drivers::mock::nested::viommu_init(cx, ucmd, &cmd)?.unzip();
    let mmap_off = mmap.as_ref().map(|(_, off)| *off);
    let new = cx.ictx.objects().reserve(Payload::Viommu(Viommu {
        parent: r.object().hold(),
        vdevs: CtxCell::new(PVec::new()),
        veventqs: CtxCell::new(PVec::new()),
        hw_queues: CtxCell::new([None, None]),
        mmap,
    }))?;
    let obj = new.object().cloned().ok_or(EINVAL)?;
    // The region is registered last: once registered it can be mapped
    // (outside the context lock), and a mapped vIOMMU must not be freed by
    // an error path.
    if mmap_off.is_some() {
        cx.ictx.mmaps().reserve()?;
    }
    if let Some(reply) = reply {
        crate::drivers::mock::nested::viommu_reply(ucmd, &cmd, &reply)?;
    }
    cmd.out_viommu_id = new.id();
    ucmd.respond(&cmd)?;
    if let Some(off) = mmap_off {
        let v = crate::payload!(obj, Viommu).ok_or(EINVAL)?;
        let (pages, _) = v.mmap.as_ref().ok_or(EINVAL)?;
        cx.ictx.mmaps().register(off, pages, &obj)?;
    }
    new.publish();
    Ok(())
}

/// Tears a vIOMMU down: its mmap region goes.
pub fn viommu_destroy(cx: &Cx<'_>, obj: &Arc<Object>) {
    if let Some(v) = crate::payload!(obj, Viommu) {
        if let Some((_, off)) = &v.mmap {
            cx.ictx.mmaps().unregister(*off);
        }
    }
}

/// `IOMMU_VDEVICE_ALLOC`.
pub(crate) fn vdevice_alloc(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: crate::uapi::IommuVdeviceAlloc = ucmd.read()?;
    if cmd.virt_id > usize::MAX as u64 {
        return Err(EINVAL);
    }
    let vr = cx
        .ictx
        .objects()
        .get(cmd.viommu_id, Some(ObjKind::Viommu))?;
    let v = crate::payload!(vr.object(), Viommu).ok_or(EINVAL)?;
    let dr = cx.ictx.objects().get(cmd.dev_id, Some(ObjKind::Device))?;
    let dev = crate::payload!(dr.object(), Device).ok_or(EINVAL)?;
    if dev.vdev(cx.held)?.is_some() || v.find_vdev(cx.held, cmd.virt_id)?.is_some() {
        return Err(EEXIST);
    }
    v.vdevs.get(cx.held)?.try_reserve_for(1)?;
    let new = cx.ictx.objects().reserve(Payload::Vdevice(Vdevice {
        viommu: vr.object().hold(),
        dev: dr.object().hold(),
        virt_id: cmd.virt_id,
    }))?;
    let obj = new.object().cloned().ok_or(EINVAL)?;
    cmd.out_vdevice_id = new.id();
    ucmd.respond(&cmd)?;
    v.vdevs.get(cx.held)?.try_push(obj.clone())?;
    dev.set_vdev(cx.held, Some(obj))?;
    new.publish();
    Ok(())
}

/// Tears a vDEVICE down: its vIOMMU and device forget it.
pub fn vdevice_destroy(cx: &Cx<'_>, obj: &Arc<Object>) {
    let Some(vd) = crate::payload!(obj, Vdevice) else {
        return;
    };
    if let Some(v) = crate::payload!(vd.viommu.object(), Viommu) {
        if let Ok(mut l) = v.vdevs.get(cx.held) {
            l.retain(|o| !Arc::ptr_eq(o, obj));
        }
    }
    if let Some(d) = crate::payload!(vd.dev.object(), Device) {
        let _ = d.set_vdev(cx.held, None);
    }
}

/// Unbinding device `dev_obj`: its vDEVICE is destroyed and its ID
/// tombstoned (`IOMMU_DESTROY` of it is `ENOENT`, the ID is not reused).
pub fn vdevice_force_destroy(cx: &Cx<'_>, dev_obj: &Arc<Object>) -> Result {
    let Some(dev) = crate::payload!(dev_obj, Device) else {
        return Ok(());
    };
    let Some(vobj) = dev.vdev(cx.held)? else {
        return Ok(());
    };
    let o = cx.ictx.objects().tombstone(&vobj)?;
    vdevice_destroy(cx, &o);
    Ok(())
}

/// `IOMMU_HW_QUEUE_ALLOC`: a queue in guest memory at
/// `nesting_parent_iova`, whose pages must be physically contiguous; they
/// stay pinned and the IOAS area locked while the queue lives.
pub(crate) fn hw_queue_alloc(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: crate::uapi::IommuHwQueueAlloc = ucmd.read()?;
    if cmd.flags != 0 || cmd.r#type == crate::uapi::IOMMU_HW_QUEUE_TYPE_DEFAULT {
        return Err(EOPNOTSUPP);
    }
    if cmd.length == 0 {
        return Err(EINVAL);
    }
    cmd.nesting_parent_iova
        .checked_add(cmd.length - 1)
        .ok_or(EOVERFLOW)?;
    let vr = cx
        .ictx
        .objects()
        .get(cmd.viommu_id, Some(ObjKind::Viommu))?;
    let v = crate::payload!(vr.object(), Viommu).ok_or(EINVAL)?;
    if cmd.r#type != crate::uapi::IOMMU_HW_QUEUE_TYPE_SELFTEST {
        return Err(EOPNOTSUPP);
    }
    let parent = crate::payload!(v.parent.object(), HwptPaging).ok_or(EINVAL)?;
    let ioas_obj = parent.ioas.object();
    // As upstream: the queue object first, then its internal access (the
    // next ID), which pins the pages; the driver's checks come last. Any
    // failure tears down what exists through the queue's destroy.
    let new = cx.ictx.objects().reserve(Payload::HwQueue(HwQueue {
        viommu: vr.object().hold(),
        index: cmd.index,
        ioas: ioas_obj.hold(),
        iova: cmd.nesting_parent_iova,
        length: cmd.length,
        st: CtxCell::new(HwQueueState::default()),
    }))?;
    let obj = new.object().cloned().ok_or(EINVAL)?;
    let q = crate::payload!(obj, HwQueue).ok_or(EINVAL)?;
    let res = (|| {
        let access = crate::ioas::internal_access::create(cx, ioas_obj)?;
        q.st.get(cx.held)?.access = Some(access);
        let base_pa =
            crate::ioas::lock_contiguous(cx.held, ioas_obj, cmd.nesting_parent_iova, cmd.length)?;
        q.st.get(cx.held)?.locked = true;
        let prev =
            crate::drivers::mock::nested::hw_queue_init(cx, v, &parent.domain, &cmd, base_pa)?;
        q.st.get(cx.held)?.prev = prev.map(|p| p.hold());
        cmd.out_hw_queue_id = new.id();
        ucmd.respond(&cmd)?;
        let mut slots = v.hw_queues.get(cx.held)?;
        let slot = slots.get_mut(cmd.index as usize).ok_or(EINVAL)?;
        *slot = Some(obj.clone());
        Ok(())
    })();
    if let Err(e) = res {
        hw_queue_destroy(cx, &obj);
        return Err(e);
    }
    new.publish();
    Ok(())
}

/// Tears a HW queue down in upstream's order: the driver frees its slot
/// and the queue it depended on, then the pages are unlocked and the
/// internal access leaves the IOAS and the table.
pub fn hw_queue_destroy(cx: &Cx<'_>, obj: &Arc<Object>) {
    let Some(q) = crate::payload!(obj, HwQueue) else {
        return;
    };
    if let Some(v) = crate::payload!(q.viommu.object(), Viommu) {
        if let Ok(mut s) = v.hw_queues.get(cx.held) {
            if let Some(slot) = s.get_mut(q.index as usize) {
                if slot.as_ref().is_some_and(|o| Arc::ptr_eq(o, obj)) {
                    *slot = None;
                }
            }
        }
    }
    let st = match q.st.get(cx.held) {
        Ok(mut s) => core::mem::take(&mut *s),
        Err(_) => {
            crate::warn_once!("iommufd_rs: HW queue {} state busy at destroy", obj.id());
            return;
        }
    };
    drop(st.prev);
    if st.locked {
        let _ = crate::ioas::unlock_range(cx.held, q.ioas.object(), q.iova, q.length);
    }
    if let Some(access) = st.access {
        let _ = crate::ioas::internal_access::detach(cx, access.object());
        crate::ioas::internal_access::destroy(cx, access);
    }
}

/// The virtual ID of device `dev_obj` on the vIOMMU of the nested HWPT it
/// is attached to (`ENOENT` if there is none).
pub fn attached_vdev_id(cx: &Cx<'_>, dev_obj: &Arc<Object>) -> Result<(Arc<Object>, u64)> {
    let dev = crate::payload!(dev_obj, Device).ok_or(ENOENT)?;
    let hwpt = dev.attached_hwpt(cx)?.ok_or(ENOENT)?;
    let h = crate::hw_pagetable::Hwpt::of(&hwpt).ok_or(ENOENT)?;
    let vobj = h.viommu().ok_or(ENOENT)?.clone();
    let v = crate::payload!(vobj, Viommu).ok_or(ENOENT)?;
    let vd = v.vdev_of(cx.held, dev_obj)?.ok_or(ENOENT)?;
    let id = crate::payload!(vd, Vdevice).ok_or(ENOENT)?.virt_id;
    Ok((vobj, id))
}
