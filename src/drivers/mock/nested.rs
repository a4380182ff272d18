//! The mock IOMMU's driver side of HWPTs, nesting and the vIOMMU family:
//! its user-data formats (`IOMMU_HWPT_DATA_SELFTEST`, the selftest vIOMMU
//! and invalidation types), its caches, HW queue rules, the PASID fault
//! hook, and the selftest ops that poke at them (dirty bits, IOTLB checks,
//! IOPF and vEVENT injection, PASID attach).

use crate::device_bind::{self, Device, NO_PASID};
use crate::errno::{Result, EEXIST, EINVAL, EIO, ENOENT, ENOMEM, EOPNOTSUPP, EOVERFLOW};
use crate::hw_pagetable::eventq::{report_fault, report_vevent, FaultGroup};
use crate::hw_pagetable::viommu::{attached_vdev_id, Viommu};
use crate::hw_pagetable::{copy_user_array, copy_user_data, DomainRef, Hwpt, HwptNested, MockPt};
use crate::object::{ObjKind, Object};
use crate::platform::{Arc, Held, MmapPages, PVec, VecExt, PAGE_SIZE};
use crate::uapi::*;
use crate::ucmd::{Cx, Ucmd};
use zerocopy::IntoBytes;

/// `offsetofend(struct iommu_hwpt_selftest, iotlb)`.
const HWPT_SELFTEST_MIN: usize = 4;
/// `offsetofend(struct iommu_viommu_selftest, out_data)`.
const VIOMMU_SELFTEST_MIN: usize = 8;

/// `domain_alloc_paging_flags` user data: none, or the selftest type with
/// a page-table variant.
pub fn paging_user_cfg(ucmd: &Ucmd<'_>, cmd: &IommuHwptAlloc) -> Result<MockPt> {
    if cmd.data_type == IOMMU_HWPT_DATA_NONE {
        return Ok(MockPt::Default);
    }
    if cmd.data_type != IOMMU_HWPT_DATA_SELFTEST {
        return Err(EOPNOTSUPP);
    }
    let cfg: IommuHwptSelftest =
        copy_user_data(ucmd, cmd.data_uptr, cmd.data_len, HWPT_SELFTEST_MIN)?;
    match cfg.pagetable_type {
        MOCK_IOMMUPT_DEFAULT => Ok(MockPt::Default),
        MOCK_IOMMUPT_HUGE => Ok(MockPt::Huge),
        _ => Err(EOPNOTSUPP),
    }
}

/// `domain_alloc_nested` user data: the IOTLB tag to start with.
pub fn nested_user_cfg(ucmd: &Ucmd<'_>, cmd: &IommuHwptAlloc) -> Result<u32> {
    if cmd.data_type != IOMMU_HWPT_DATA_SELFTEST {
        return Err(EOPNOTSUPP);
    }
    let cfg: IommuHwptSelftest =
        copy_user_data(ucmd, cmd.data_uptr, cmd.data_len, HWPT_SELFTEST_MIN)?;
    Ok(cfg.iotlb)
}

/// The mock's invalidation entries (IOTLB and device cache alike): only
/// `FLAG_ALL` is known (`EOPNOTSUPP`), and `id` indexes the four tags.
fn check_tag_request(flags: u32, id: u32) -> Result {
    if flags & !IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
        return Err(EOPNOTSUPP);
    }
    if id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX || id > MOCK_DEV_CACHE_ID_MAX {
        return Err(EINVAL);
    }
    Ok(())
}

/// Zeroes tag `id`, or every tag with `FLAG_ALL` (checked request).
fn clear_tags(tags: &mut [u32; 4], flags: u32, id: u32) {
    if flags & IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
        tags.fill(0);
    } else if let Some(t) = tags.get_mut(id as usize) {
        *t = 0;
    }
}

/// `cache_invalidate_user` of a mock nested domain: entries zero one or
/// all IOTLB tags; `done` counts the entries handled.
pub fn nested_invalidate(
    cx: &Cx<'_>,
    ucmd: &Ucmd<'_>,
    cmd: &IommuHwptInvalidate,
    n: &HwptNested,
    done: &mut u32,
) -> Result {
    if cmd.data_type != IOMMU_HWPT_INVALIDATE_DATA_SELFTEST {
        return Err(EINVAL);
    }
    for i in 0..cmd.entry_num {
        let at = cmd.data_uptr + u64::from(i) * u64::from(cmd.entry_len);
        // `iommu_copy_struct_from_user_array()`: each entry between the
        // first version and the current size.
        let inv: IommuHwptInvalidateSelftest = copy_user_data(
            ucmd,
            at,
            cmd.entry_len,
            size_of::<IommuHwptInvalidateSelftest>(),
        )?;
        check_tag_request(inv.flags, inv.iotlb_id)?;
        clear_tags(&mut *n.iotlb.get(cx.held)?, inv.flags, inv.iotlb_id);
        *done += 1;
    }
    Ok(())
}

/// `cache_invalidate` of the mock vIOMMU: entries zero cache tags of the
/// device behind a virtual ID; `done` counts the entries handled.
pub fn viommu_invalidate(
    cx: &Cx<'_>,
    ucmd: &Ucmd<'_>,
    cmd: &IommuHwptInvalidate,
    v: &Viommu,
    done: &mut u32,
) -> Result {
    if cmd.entry_num == 0 && cmd.data_type == IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST {
        return Ok(());
    }
    if cmd.data_type != IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST || cmd.entry_num == 0 {
        return Err(EINVAL);
    }
    let reqs: PVec<IommuViommuInvalidateSelftest> =
        copy_user_array(ucmd, cmd.data_uptr, cmd.entry_len, cmd.entry_num)?;
    for inv in reqs.iter() {
        check_tag_request(inv.flags, inv.cache_id)?;
        let vd = v
            .find_vdev(cx.held, u64::from(inv.vdev_id))?
            .ok_or(EINVAL)?;
        let vdev = crate::payload!(vd, Vdevice).ok_or(EINVAL)?;
        let dev = crate::payload!(vdev.dev.object(), Device).ok_or(EINVAL)?;
        clear_tags(&mut *dev.mock_cache.get(cx.held)?, inv.flags, inv.cache_id);
        *done += 1;
    }
    Ok(())
}

/// `viommu_init` with data: the loopback reply and two zeroed pages for
/// `mmap`, the first holding `in_data`, at a new offset.
pub fn viommu_init(
    cx: &Cx<'_>,
    ucmd: &Ucmd<'_>,
    cmd: &IommuViommuAlloc,
) -> Result<Option<(IommuViommuSelftest, (MmapPages, u64))>> {
    if cmd.data_len == 0 {
        return Ok(None);
    }
    let mut data: IommuViommuSelftest =
        copy_user_data(ucmd, cmd.data_uptr, cmd.data_len, VIOMMU_SELFTEST_MIN)?;
    let pages = MmapPages::new(2)?;
    pages.write_u32(0, data.in_data);
    let off = cx.ictx.mmaps().alloc_offset(2 * PAGE_SIZE)?;
    data.out_data = data.in_data;
    data.out_mmap_length = 2 * PAGE_SIZE;
    data.out_mmap_offset = off;
    Ok(Some((data, (pages, off))))
}

/// Copies the vIOMMU data back (`iommu_copy_struct_to_user()`: no more
/// than userspace gave).
pub fn viommu_reply(ucmd: &Ucmd<'_>, cmd: &IommuViommuAlloc, data: &IommuViommuSelftest) -> Result {
    let n = (cmd.data_len as usize).min(size_of::<IommuViommuSelftest>());
    ucmd.write_at(cmd.data_uptr, &data.as_bytes()[..n])
}

/// `hw_queue_init_phys` of the mock vIOMMU: at most two queues, index 1
/// after index 0, and the base must be what the parent maps. Returns the
/// queue this one depends on.
pub fn hw_queue_init(
    cx: &Cx<'_>,
    v: &Viommu,
    parent: &DomainRef,
    cmd: &IommuHwQueueAlloc,
    base_pa: u64,
) -> Result<Option<Arc<Object>>> {
    let q = v.hw_queues.get(cx.held)?;
    let idx = cmd.index as usize;
    if idx >= q.len() {
        return Err(EINVAL);
    }
    if q[idx].is_some() {
        return Err(EEXIST);
    }
    let prev = if idx > 0 {
        Some(q[idx - 1].clone().ok_or(EIO)?)
    } else {
        None
    };
    drop(q);
    // The parent mirrors the IOAS the queue's pages were pinned from.
    if parent.iova_to_phys(cx.held, cmd.nesting_parent_iova)? != Some(base_pa) {
        return Err(EINVAL);
    }
    Ok(prev)
}

/// `set_dev_pasid` of the mock: the second attach of PASID 1024 in a row
/// fails (`ENOMEM`), so tests can check the core's rollback; attaching the
/// blocking domain (`blocked`) resets it.
pub fn set_dev_pasid(held: &Held<'_>, dev: &Device, pasid: u32, attach: bool) -> Result {
    if pasid != 1024 {
        return Ok(());
    }
    let mut f = dev.mock_pasid_1024_fail.get(held)?;
    if !attach {
        *f = false;
        return Ok(());
    }
    if *f {
        *f = false;
        return Err(ENOMEM);
    }
    *f = true;
    Ok(())
}

/// `IOMMU_TEST_OP_DIRTY`: marks dirty the leaves under each set bit of
/// the user bitmap (tracking must be on).
pub fn test_dirty(cx: &Cx<'_>, ucmd: &Ucmd<'_>, cmd: &mut IommuTestCmd) -> Result {
    let mut p: TestDirty = cmd.payload();
    if p.page_size == 0
        || p.length == 0
        || !p.iova.is_multiple_of(p.page_size)
        || !p.length.is_multiple_of(p.page_size)
        || p.uptr == 0
    {
        return Err(EINVAL);
    }
    let max = p.length / p.page_size;
    if max > 16 * 1024 * 1024 * 8 {
        return Err(EOVERFLOW);
    }
    let r = cx.ictx.objects().get(cmd.id, Some(ObjKind::HwptPaging))?;
    let hwpt = crate::payload!(r.object(), HwptPaging).ok_or(EINVAL)?;
    if !hwpt.domain.has_dirty_ops() || !hwpt.domain.tracking(cx.held)? {
        return Err(EINVAL);
    }
    let mut buf: PVec<u8> = PVec::new();
    buf.try_resize(4096, 0)?;
    let nbytes = max.div_ceil(8);
    let mut count = 0u64;
    let mut off = 0u64;
    while off < nbytes {
        let n = (nbytes - off).min(buf.len() as u64) as usize;
        ucmd.read_bytes(p.uptr + off, &mut buf[..n])?;
        for (j, &b) in buf[..n].iter().enumerate() {
            for k in 0..8u64 {
                let bit = (off + j as u64) * 8 + k;
                if bit >= max || b & (1 << k) == 0 {
                    continue;
                }
                hwpt.domain.set_dirty(cx.held, p.iova + bit * p.page_size)?;
                count += 1;
            }
        }
        off += n as u64;
    }
    p.out_nr_dirty = count;
    cmd.set_payload(&p);
    ucmd.respond(cmd)
}

/// `IOMMU_TEST_OP_MD_CHECK_IOTLB`: a nested HWPT's IOTLB tag.
pub fn test_check_iotlb(cx: &Cx<'_>, cmd: &IommuTestCmd) -> Result {
    let p: TestCheckIotlb = cmd.payload();
    let r = cx.ictx.objects().get(cmd.id, Some(ObjKind::HwptNested))?;
    let n = crate::payload!(r.object(), HwptNested).ok_or(EINVAL)?;
    let t = n.iotlb.get(cx.held)?;
    match t.get(p.id as usize) {
        Some(&v) if v == p.iotlb => Ok(()),
        _ => Err(EINVAL),
    }
}

/// `IOMMU_TEST_OP_TRIGGER_IOPF`: a page request from the device. It goes
/// to the HWPT of its PASID, or (the mock keeps PASID tables in the guest)
/// to a nested HWPT on its RID.
pub fn test_trigger_iopf(cx: &Cx<'_>, cmd: &IommuTestCmd) -> Result {
    let p: TestTriggerIopf = cmd.payload();
    let r = cx.ictx.objects().get(p.dev_id, Some(ObjKind::Device))?;
    let dev = crate::payload!(r.object(), Device).ok_or(EINVAL)?;
    let mut hwpt = dev.hwpt_of(cx.held, p.pasid)?;
    if hwpt.is_none() && p.pasid != NO_PASID {
        hwpt = dev
            .hwpt_of(cx.held, NO_PASID)?
            .filter(|h| matches!(Hwpt::of(h), Some(Hwpt::Nested(_))));
    }
    // Upstream reports the fault to the IOMMU core and returns 0 whatever
    // became of it: no HWPT or no fault queue drops it silently.
    let Some(hwpt) = hwpt else {
        return Ok(());
    };
    let Some(fault) = Hwpt::of(&hwpt).and_then(|h| h.fault()) else {
        return Ok(());
    };
    let mut flags = IOMMU_PGFAULT_FLAGS_LAST_PAGE;
    if p.pasid != NO_PASID {
        flags |= IOMMU_PGFAULT_FLAGS_PASID_VALID;
    }
    let rec = IommuHwptPgfault {
        flags,
        dev_id: p.dev_id,
        pasid: p.pasid,
        grpid: p.grpid,
        perm: p.perm,
        addr: p.addr,
        ..Default::default()
    };
    let pasid = if dev.hwpt_of(cx.held, p.pasid)?.is_some() {
        p.pasid
    } else {
        NO_PASID
    };
    let g = FaultGroup {
        rec,
        dev_id: dev.id(),
        pasid,
    };
    // A failed delivery (no memory) is dropped too.
    let _ = report_fault(cx.held, fault, g);
    Ok(())
}

/// `IOMMU_TEST_OP_TRIGGER_VEVENT`: a vEVENT naming the device's virtual
/// ID on the vIOMMU it is attached through (`ENOENT` if none).
pub fn test_trigger_vevent(cx: &Cx<'_>, cmd: &IommuTestCmd) -> Result {
    let p: TestTriggerVevent = cmd.payload();
    let r = cx.ictx.objects().get(p.dev_id, Some(ObjKind::Device))?;
    let (vobj, virt_id) = attached_vdev_id(cx, r.object())?;
    // The mock driver keeps the virtual ID with 0 meaning "no vDEVICE".
    if virt_id == 0 {
        return Err(ENOENT);
    }
    let v = crate::payload!(vobj, Viommu).ok_or(ENOENT)?;
    let ev = IommuViommuEventSelftest {
        virt_id: virt_id as u32,
    };
    report_vevent(cx.held, v, IOMMU_VEVENTQ_TYPE_SELFTEST, ev.as_bytes())
}

/// The device of selftest object `id`.
fn stdev(cx: &Cx<'_>, id: u32) -> Result<Arc<Object>> {
    let s = cx.ictx.objects().get(id, Some(ObjKind::Selftest))?;
    super::selftest_dev(cx, s.object())
}

/// `IOMMU_TEST_OP_PASID_{ATTACH,REPLACE,DETACH,CHECK_HWPT}`.
pub fn test_pasid(cx: &Cx<'_>, ucmd: &Ucmd<'_>, cmd: &mut IommuTestCmd) -> Result {
    let dev_obj = stdev(cx, cmd.id)?;
    let dev = crate::payload!(dev_obj, Device).ok_or(EINVAL)?;
    match cmd.op {
        IOMMU_TEST_OP_PASID_ATTACH => {
            let mut p: TestPasidAttach = cmd.payload();
            p.pt_id = device_bind::attach(cx, dev, p.pasid, p.pt_id)?;
            cmd.set_payload(&p);
            if let Err(e) = ucmd.respond(cmd) {
                let _ = device_bind::detach(cx, dev, p.pasid);
                return Err(e);
            }
            Ok(())
        }
        IOMMU_TEST_OP_PASID_REPLACE => {
            let mut p: TestPasidReplace = cmd.payload();
            p.pt_id = device_bind::replace(cx, dev, p.pasid, p.pt_id)?;
            cmd.set_payload(&p);
            ucmd.respond(cmd)
        }
        IOMMU_TEST_OP_PASID_DETACH => {
            let p: TestPasidDetach = cmd.payload();
            device_bind::detach(cx, dev, p.pasid)
        }
        _ => {
            let p: TestPasidCheck = cmd.payload();
            let cur = dev.hwpt_of(cx.held, p.pasid)?;
            // 0 asks "detached?"; any other ID must name a HWPT (`ENOENT`
            // if unknown, `EINVAL` for another kind), as upstream.
            let ok = if p.hwpt_id == 0 {
                cur.is_none()
            } else {
                let r = cx.ictx.objects().get(p.hwpt_id, None)?;
                Hwpt::of(r.object()).ok_or(EINVAL)?;
                cur.is_some_and(|h| Arc::ptr_eq(&h, r.object()))
            };
            if ok {
                Ok(())
            } else {
                Err(EINVAL)
            }
        }
    }
}
