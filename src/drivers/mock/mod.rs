//! The mock IOMMU behind `IOMMU_TEST_CMD`, matching upstream's selftest
//! driver as seen through the uAPI: mock devices (bound and attached like
//! real ones), mock domains (2 KiB pages, aperture `[16 MiB, 2 GiB)`),
//! in-kernel access objects with their fds, and the checks the selftests
//! use. Devices are simulated inside the module.

pub mod nested;
pub mod pagetable;

use crate::device_bind::{self, Device, DeviceCaps, Group};
use crate::errno::{
    Result, EBADE, EBADFD, EINVAL, EIO, ENOENT, ENOMEM, EOPNOTSUPP, EOVERFLOW, EPERM,
};
use crate::ioas::{get_ioas, iopt::prot, iopt::ResvOwner};
use crate::object::{Holder, ObjKind, Object, Payload};
use crate::platform::{
    access_file_get, user_page_info, Arc, CtxCell, NewAccessFile, PVec, VecExt, PAGE_SIZE,
};
use crate::uapi::*;
use crate::ucmd::{Cx, Ictx, Ucmd};

/// Largest access pin/rw request (upstream keeps kvzalloc below its WARN).
const ACCESS_MAX: u64 = 16 * 1024 * 1024;

/// A selftest mock device object (`IOMMUFD_OBJ_SELFTEST`): destroying it
/// detaches, unbinds and removes the device.
pub struct SelftestDevice {
    /// The bound device (the mock driver's reference on it).
    dev: CtxCell<Option<Holder>>,
}

/// A pinned range of an access.
struct AccessItem {
    iova: u64,
    length: u64,
    id: u32,
}

struct AccessState {
    /// The IOAS the access is attached to.
    ioas: Option<Holder>,
    items: PVec<AccessItem>,
    next_id: u32,
}

/// An access object (`IOMMUFD_OBJ_ACCESS`) of the selftest driver.
pub struct StAccessObj {
    needs_pin: bool,
    cookie: u64,
    st: CtxCell<AccessState>,
}

/// What an access fd carries: the context (kept alive) and the access.
pub struct StAccessFile {
    ictx: Arc<Ictx>,
    obj: Arc<Object>,
    /// The driver's reference: userspace cannot destroy the access.
    driver: CtxCell<Option<Holder>>,
}

/// `IOMMU_TEST_CMD`.
pub(crate) fn test_cmd(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: IommuTestCmd = ucmd.read()?;
    match cmd.op {
        IOMMU_TEST_OP_ADD_RESERVED => {
            let p: TestAddReserved = cmd.payload();
            if p.length == 0 {
                return Err(EINVAL);
            }
            let last = p.start.checked_add(p.length - 1).ok_or(EOVERFLOW)?;
            let r = get_ioas(cx, cmd.id)?;
            let ioas = crate::payload!(r.object(), Ioas).ok_or(ENOENT)?;
            let res = ioas.iopt(cx.held)?.reserve(p.start, last, ResvOwner::Test);
            res
        }
        IOMMU_TEST_OP_MOCK_DOMAIN | IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS => {
            mock_domain(cx, ucmd, &mut cmd)
        }
        IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE => {
            let mut p: TestMockDomainReplace = cmd.payload();
            let s = cx.ictx.objects().get(cmd.id, Some(ObjKind::Selftest))?;
            let dev_obj = selftest_dev(cx, s.object())?;
            let dev = crate::payload!(dev_obj, Device).ok_or(EINVAL)?;
            p.pt_id = device_bind::replace(cx, dev, device_bind::NO_PASID, p.pt_id)?;
            cmd.set_payload(&p);
            ucmd.respond(&cmd)
        }
        IOMMU_TEST_OP_MD_CHECK_MAP => check_map(cx, cmd.id, cmd.payload()),
        IOMMU_TEST_OP_MD_CHECK_REFS => check_refs(cmd.payload()),
        IOMMU_TEST_OP_CREATE_ACCESS => create_access(cx, ucmd, &mut cmd),
        IOMMU_TEST_OP_ACCESS_PAGES => access_pages(cx, ucmd, &mut cmd),
        IOMMU_TEST_OP_ACCESS_RW => access_rw(cx, ucmd, &cmd),
        IOMMU_TEST_OP_DESTROY_ACCESS_PAGES => {
            let p: TestDestroyAccessPages = cmd.payload();
            let f = access_file(cmd.id)?;
            if drop_item(cx, &f.obj, |it| it.id == p.access_pages_id)? {
                Ok(())
            } else {
                Err(ENOENT)
            }
        }
        IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT => {
            let p: TestMemoryLimit = cmd.payload();
            // Batches are sized by what is being pinned here, so the limit
            // is only validated as upstream does.
            if p.limit < 12 {
                return Err(EINVAL);
            }
            Ok(())
        }
        IOMMU_TEST_OP_ACCESS_REPLACE_IOAS => {
            let p: TestAccessReplaceIoas = cmd.payload();
            let f = access_file(cmd.id)?;
            access_replace_ioas(cx, &f.obj, p.ioas_id)
        }
        IOMMU_TEST_OP_DEV_CHECK_CACHE => {
            let p: TestCheckDevCache = cmd.payload();
            let r = cx.ictx.objects().get(cmd.id, Some(ObjKind::Device))?;
            let dev = crate::payload!(r.object(), Device).ok_or(ENOENT)?;
            let cache = dev.mock_cache.get(cx.held)?;
            match cache.get(p.id as usize) {
                Some(&c) if c == p.cache => Ok(()),
                _ => Err(EINVAL),
            }
        }
        IOMMU_TEST_OP_DIRTY => nested::test_dirty(cx, ucmd, &mut cmd),
        IOMMU_TEST_OP_MD_CHECK_IOTLB => nested::test_check_iotlb(cx, &cmd),
        IOMMU_TEST_OP_TRIGGER_IOPF => nested::test_trigger_iopf(cx, &cmd),
        IOMMU_TEST_OP_TRIGGER_VEVENT => nested::test_trigger_vevent(cx, &cmd),
        IOMMU_TEST_OP_PASID_ATTACH
        | IOMMU_TEST_OP_PASID_REPLACE
        | IOMMU_TEST_OP_PASID_DETACH
        | IOMMU_TEST_OP_PASID_CHECK_HWPT => nested::test_pasid(cx, ucmd, &mut cmd),
        IOMMU_TEST_OP_DMABUF_GET => {
            let p: TestDmabufGet = cmd.payload();
            // Unlike upstream's selftest (which returns 0), the new fd is
            // the ioctl's result, as the selftests expect.
            let fd = crate::platform::dmabuf_create(p.length as usize, p.open_flags)?;
            ucmd.set_retval(fd as isize);
            Ok(())
        }
        IOMMU_TEST_OP_DMABUF_REVOKE => {
            let p: TestDmabufRevoke = cmd.payload();
            let id = crate::platform::dmabuf_revoke(p.dmabuf_fd, p.revoked != 0)?;
            if p.revoked != 0 {
                for obj in cx.ictx.objects().collect(Some(ObjKind::Ioas))?.iter() {
                    if let Some(ioas) = crate::payload!(obj, Ioas) {
                        ioas.iopt(cx.held)?.revoke_dmabuf(cx.held, id)?;
                    }
                }
            }
            Ok(())
        }
        _ => Err(EOPNOTSUPP),
    }
}

/// The mock IOMMU's `hw_info`: `IOMMU_HW_INFO_TYPE_SELFTEST` data for the
/// default or the selftest type, `EOPNOTSUPP` for any other.
pub fn hw_info(ty: u32) -> Result<(u32, IommuTestHwInfo)> {
    if ty != IOMMU_HW_INFO_TYPE_DEFAULT && ty != IOMMU_HW_INFO_TYPE_SELFTEST {
        return Err(EOPNOTSUPP);
    }
    Ok((
        IOMMU_HW_INFO_TYPE_SELFTEST,
        IommuTestHwInfo {
            flags: 0,
            test_reg: IOMMU_HW_INFO_SELFTEST_REGVAL,
        },
    ))
}

/// The device object of a selftest object.
pub(super) fn selftest_dev(cx: &Cx<'_>, s: &Arc<Object>) -> Result<Arc<Object>> {
    let st = crate::payload!(s, Selftest).ok_or(EINVAL)?;
    let dev = st.dev.get(cx.held)?;
    Ok(dev.as_ref().ok_or(ENOENT)?.object().clone())
}

/// `MOCK_DOMAIN(_FLAGS)`: creates a mock device, binds it and attaches it
/// to `cmd.id` (an IOAS or a HWPT).
fn mock_domain(cx: &Cx<'_>, ucmd: &Ucmd<'_>, cmd: &mut IommuTestCmd) -> Result {
    let mut out: TestMockDomainFlags = cmd.payload();
    let flags = if cmd.op == IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS {
        out.dev_flags
    } else {
        0
    };
    let objects = cx.ictx.objects();
    let sobj = objects.reserve(Payload::Selftest(SelftestDevice {
        dev: CtxCell::new(None),
    }))?;
    if flags & !(MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_PASID) != 0 {
        return Err(EINVAL);
    }
    let caps = DeviceCaps {
        dirty: flags & MOCK_FLAGS_DEVICE_NO_DIRTY == 0,
        max_pasid_log2: if flags & MOCK_FLAGS_DEVICE_PASID != 0 {
            MOCK_PASID_WIDTH
        } else {
            0
        },
    };
    let group = Group::new()?;
    let dnew = objects.reserve_with(|id| Ok(Payload::Device(Device::new(id, caps, group))))?;
    let dev_obj = dnew.object().cloned().ok_or(EINVAL)?;
    let idev_id = dnew.id();
    // Bound devices are visible at once, as after iommufd_device_bind().
    dnew.publish();
    let s = sobj.object().cloned().ok_or(EINVAL)?;
    let st = crate::payload!(s, Selftest).ok_or(EINVAL)?;
    *st.dev.get(cx.held)? = Some(dev_obj.hold());
    let res = (|| {
        let dev = crate::payload!(dev_obj, Device).ok_or(EINVAL)?;
        let hwpt_id = device_bind::attach(cx, dev, device_bind::NO_PASID, cmd.id)?;
        out.out_stdev_id = sobj.id();
        out.out_hwpt_id = hwpt_id;
        out.out_idev_id = idev_id;
        if cmd.op == IOMMU_TEST_OP_MOCK_DOMAIN {
            cmd.set_payload(&TestMockDomain {
                out_stdev_id: out.out_stdev_id,
                out_hwpt_id: out.out_hwpt_id,
                out_idev_id: out.out_idev_id,
            });
        } else {
            cmd.set_payload(&out);
        }
        ucmd.respond(cmd)
    })();
    if let Err(e) = res {
        let _ = selftest_destroy(cx, &s);
        drop(sobj);
        return Err(e);
    }
    sobj.publish();
    Ok(())
}

/// Tears a selftest device down: detach, unbind, remove.
pub fn selftest_destroy(cx: &Cx<'_>, obj: &Arc<Object>) -> Result {
    let st = crate::payload!(obj, Selftest).ok_or(EINVAL)?;
    let Some(holder) = st.dev.get(cx.held)?.take() else {
        return Ok(());
    };
    let dev_obj = holder.object().clone();
    // The vDEVICE goes first (its tombstone is the one allocation here).
    crate::hw_pagetable::viommu::vdevice_force_destroy(cx, &dev_obj)?;
    if let Some(dev) = crate::payload!(dev_obj, Device) {
        device_bind::detach_all(cx, dev)?;
    }
    drop(holder);
    let removed = cx.ictx.objects().remove(dev_obj.id())?;
    crate::ucmd::destroy_object(cx, &removed);
    Ok(())
}

/// `MD_CHECK_MAP`: every mock page of `iova..+length` translates to the
/// page now mapped at `uptr`.
fn check_map(cx: &Cx<'_>, hwpt_id: u32, p: TestCheckMap) -> Result {
    let r = cx.ictx.objects().get(hwpt_id, Some(ObjKind::HwptPaging))?;
    let hwpt = crate::payload!(r.object(), HwptPaging).ok_or(ENOENT)?;
    let ps = hwpt.domain.min_page_size();
    if !p.iova.is_multiple_of(ps)
        || !p.length.is_multiple_of(ps)
        || !p.uptr.is_multiple_of(ps)
        || p.uptr.checked_add(p.length).is_none()
    {
        return Err(EINVAL);
    }
    let (mut iova, mut uptr, mut left) = (p.iova, p.uptr, p.length);
    while left != 0 {
        let (phys, _) = user_page_info(uptr)?;
        let io = hwpt.domain.iova_to_phys(cx.held, iova)?;
        if io != Some(phys + uptr % PAGE_SIZE) {
            return Err(EINVAL);
        }
        iova += ps;
        uptr += ps;
        left -= ps;
    }
    Ok(())
}

/// `MD_CHECK_REFS`: every (non-compound) page at `uptr` has `refs` pins.
fn check_refs(p: TestCheckRefs) -> Result {
    if !p.length.is_multiple_of(PAGE_SIZE)
        || !p.uptr.is_multiple_of(PAGE_SIZE)
        || p.uptr.checked_add(p.length).is_none()
    {
        return Err(EINVAL);
    }
    let (mut uptr, mut left) = (p.uptr, p.length);
    while left != 0 {
        let (_, pins) = user_page_info(uptr)?;
        if pins.is_some_and(|n| n != p.refs) {
            return Err(EIO);
        }
        uptr += PAGE_SIZE;
        left -= PAGE_SIZE;
    }
    Ok(())
}

fn access_of(obj: &Arc<Object>) -> Result<&StAccessObj> {
    crate::payload!(obj, Access).ok_or(EBADFD)
}

fn access_file(fd: u32) -> Result<Arc<StAccessFile>> {
    let fd = i32::try_from(fd).map_err(|_| EBADFD)?;
    access_file_get::<StAccessFile>(fd).ok_or(EBADFD)
}

/// `CREATE_ACCESS`: an access attached to IOAS `cmd.id`, owned by a new fd.
fn create_access(cx: &Cx<'_>, ucmd: &Ucmd<'_>, cmd: &mut IommuTestCmd) -> Result {
    let mut p: TestCreateAccess = cmd.payload();
    if p.flags & !MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES != 0 {
        return Err(EOPNOTSUPP);
    }
    let needs_pin = p.flags & MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES != 0;
    let new = cx.ictx.objects().reserve(Payload::Access(StAccessObj {
        needs_pin,
        cookie: crate::ioas::internal_access::access_cookie(),
        st: CtxCell::new(AccessState {
            ioas: None,
            items: PVec::new(),
            next_id: 0,
        }),
    }))?;
    let obj = new.object().cloned().ok_or(EINVAL)?;
    new.publish();
    let res = (|| {
        access_attach(cx, &obj, cmd.id)?;
        let owner = crate::platform::arc_new(StAccessFile {
            ictx: cx.arc.ok_or(EINVAL)?.clone(),
            obj: obj.clone(),
            driver: CtxCell::new(Some(obj.hold())),
        })?;
        let file = NewAccessFile::new(owner)?;
        p.out_access_fd = file.fd() as u32;
        cmd.set_payload(&p);
        ucmd.respond(cmd)?;
        Ok(file)
    })();
    match res {
        Ok(file) => {
            file.install();
            Ok(())
        }
        Err(e) => {
            if let Ok(o) = cx.ictx.objects().remove_exact(&obj) {
                crate::ucmd::destroy_object(cx, &o);
            }
            Err(e)
        }
    }
}

impl StAccessObj {
    /// The IOAS the access is attached to.
    fn ioas(&self, cx: &Cx<'_>) -> Result<Option<Arc<Object>>> {
        Ok(self
            .st
            .get(cx.held)?
            .ioas
            .as_ref()
            .map(|h| h.object().clone()))
    }
}

/// Registers access `obj` with IOAS `ioas_obj` (alignment, unmap
/// notifications); the caller records the attachment in the access.
fn join_ioas(cx: &Cx<'_>, acc: &StAccessObj, obj: &Arc<Object>, ioas_obj: &Arc<Object>) -> Result {
    let ioas = crate::payload!(ioas_obj, Ioas).ok_or(ENOENT)?;
    let align = if acc.needs_pin { PAGE_SIZE } else { 1 };
    ioas.iopt(cx.held)?.add_access(acc.cookie, align)?;
    if let Err(e) = ioas.add_access(cx.held, obj) {
        ioas.iopt(cx.held)?.remove_access(acc.cookie);
        return Err(e);
    }
    Ok(())
}

/// Attaches an access to IOAS `ioas_id`.
fn access_attach(cx: &Cx<'_>, obj: &Arc<Object>, ioas_id: u32) -> Result {
    let acc = access_of(obj)?;
    let r = get_ioas(cx, ioas_id)?;
    join_ioas(cx, acc, obj, r.object())?;
    acc.st.get(cx.held)?.ioas = Some(r.object().hold());
    Ok(())
}

/// Detaches an access from its IOAS, dropping every pin it holds.
fn access_detach(cx: &Cx<'_>, obj: &Arc<Object>) -> Result {
    let acc = access_of(obj)?;
    let Some(ioas_obj) = acc.ioas(cx)? else {
        return Ok(());
    };
    access_notify_unmap(cx, obj, 0, u64::MAX)?;
    if let Some(ioas) = crate::payload!(ioas_obj, Ioas) {
        ioas.remove_access(cx.held, obj)?;
        ioas.iopt(cx.held)?.remove_access(acc.cookie);
    }
    acc.st.get(cx.held)?.ioas = None;
    Ok(())
}

/// `ACCESS_REPLACE_IOAS`: joins the new IOAS before leaving the old one.
fn access_replace_ioas(cx: &Cx<'_>, obj: &Arc<Object>, ioas_id: u32) -> Result {
    let acc = access_of(obj)?;
    let Some(cur) = acc.ioas(cx)? else {
        return Err(ENOENT);
    };
    let r = get_ioas(cx, ioas_id)?;
    if Arc::ptr_eq(r.object(), &cur) {
        return Ok(());
    }
    join_ioas(cx, acc, obj, r.object())?;
    access_detach(cx, obj)?;
    acc.st.get(cx.held)?.ioas = Some(r.object().hold());
    Ok(())
}

/// Drops the first item of access `obj` that `pred` selects, unpinning its
/// range; false if none matches.
fn drop_item(cx: &Cx<'_>, obj: &Arc<Object>, pred: impl Fn(&AccessItem) -> bool) -> Result<bool> {
    let acc = access_of(obj)?;
    let mut st = acc.st.get(cx.held)?;
    let Some(i) = st.items.iter().position(pred) else {
        return Ok(false);
    };
    let item = st.items.remove_at(i).ok_or(ENOENT)?;
    drop(st);
    if let Some(ioas) = acc.ioas(cx)? {
        crate::ioas::unpin_pages(cx.held, &ioas, item.iova, item.length, false)?;
    }
    Ok(true)
}

/// The access's unmap callback: drops every item overlapping the range.
pub fn access_notify_unmap(cx: &Cx<'_>, obj: &Arc<Object>, iova: u64, length: u64) -> Result {
    let last = iova.saturating_add(length.saturating_sub(1));
    while drop_item(cx, obj, |it| {
        it.iova.saturating_add(it.length - 1) >= iova && it.iova <= last
    })? {}
    Ok(())
}

/// Tears an access down (its fd was closed).
pub fn access_destroy(cx: &Cx<'_>, obj: &Arc<Object>) -> Result {
    access_detach(cx, obj)
}

/// The access fd was released: the driver lets go and the access goes.
pub fn access_file_released(owner: Arc<StAccessFile>) {
    let held = owner.ictx.lock();
    let cx = Cx {
        ictx: &owner.ictx,
        arc: Some(&owner.ictx),
        held: &held,
    };
    if let Ok(mut d) = owner.driver.get(&held) {
        d.take();
    }
    if let Ok(o) = owner.ictx.objects().remove_exact(&owner.obj) {
        crate::ucmd::destroy_object(&cx, &o);
    }
}

/// `ACCESS_PAGES`: pins a range through the access and checks the pages
/// are the ones mapped at `uptr`.
fn access_pages(cx: &Cx<'_>, ucmd: &Ucmd<'_>, cmd: &mut IommuTestCmd) -> Result {
    let mut p: TestAccessPages = cmd.payload();
    if p.length > ACCESS_MAX {
        return Err(ENOMEM);
    }
    if p.flags & !(MOCK_FLAGS_ACCESS_WRITE | MOCK_FLAGS_ACCESS_SYZ) != 0 {
        return Err(EOPNOTSUPP);
    }
    let f = access_file(cmd.id)?;
    let acc = access_of(&f.obj)?;
    if !acc.needs_pin {
        return Err(EOPNOTSUPP);
    }
    let ioas = acc.ioas(cx)?.ok_or(ENOENT)?;
    let pages = crate::ioas::pin_pages(
        cx.held,
        &ioas,
        p.iova,
        p.length,
        p.flags & MOCK_FLAGS_ACCESS_WRITE != 0,
        false,
    )?;
    let res = (|| {
        if p.uptr != 0 {
            let mut u = p.uptr - (p.iova % PAGE_SIZE);
            for pg in pages.iter() {
                let (phys, _) = user_page_info(u)?;
                if phys != pg.phys() {
                    return Err(EBADE);
                }
                u += PAGE_SIZE;
            }
        }
        let mut st = acc.st.get(cx.held)?;
        let id = st.next_id;
        st.items.try_push(AccessItem {
            iova: p.iova,
            length: p.length,
            id,
        })?;
        st.next_id += 1;
        drop(st);
        p.out_access_pages_id = id;
        cmd.set_payload(&p);
        if let Err(e) = ucmd.respond(cmd) {
            let mut st = acc.st.get(cx.held)?;
            if let Some(i) = st.items.iter().position(|it| it.id == id) {
                st.items.remove_at(i);
            }
            return Err(e);
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = crate::ioas::unpin_pages(cx.held, &ioas, p.iova, p.length, false);
    }
    res
}

/// `ACCESS_RW`: byte-granular CPU access through the access.
fn access_rw(cx: &Cx<'_>, ucmd: &Ucmd<'_>, cmd: &IommuTestCmd) -> Result {
    let p: TestAccessRw = cmd.payload();
    if p.length > ACCESS_MAX {
        return Err(ENOMEM);
    }
    if p.flags & !(MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH | MOCK_FLAGS_ACCESS_SYZ) != 0 {
        return Err(EOPNOTSUPP);
    }
    let f = access_file(cmd.id)?;
    let acc = access_of(&f.obj)?;
    let write = p.flags & MOCK_ACCESS_RW_WRITE != 0;
    let mut buf: PVec<u8> = PVec::new();
    buf.try_resize(p.length as usize, 0)?;
    if write {
        ucmd.read_bytes(p.uptr, &mut buf)?;
    }
    if p.length == 0 {
        return Err(EINVAL);
    }
    let last = p.iova.checked_add(p.length - 1).ok_or(EOVERFLOW)?;
    let ioas_obj = acc.ioas(cx)?.ok_or(ENOENT)?;
    let ioas = crate::payload!(ioas_obj, Ioas).ok_or(ENOENT)?;
    let held = cx.held;
    let mut off = 0usize;
    ioas.iopt(held)?.for_each_contig(p.iova, last, |a, s, e| {
        let need = if write { prot::WRITE } else { prot::READ };
        if a.prot & need == 0 {
            return Err(EPERM);
        }
        let n = (e - s + 1) as usize;
        a.pages
            .rw(held, a.start_byte_of(s), &mut buf[off..off + n], write)?;
        off += n;
        Ok(())
    })?;
    if !write {
        ucmd.write_at(p.uptr, &buf)?;
    }
    Ok(())
}
