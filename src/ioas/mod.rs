//! IO address spaces: format-agnostic IOVA -> user memory maps that are copied
//! into every attached domain and in-kernel access, and their ioctls.

pub mod internal_access;
pub mod iopt;
pub mod pages;
pub mod vfio_compat;

use crate::errno::{
    Result, EBUSY, EDEADLK, EFAULT, EINVAL, EMSGSIZE, ENOENT, EOPNOTSUPP, EOVERFLOW, EPERM,
};
use crate::object::{ObjKind, ObjRef, Object, Payload};
use crate::platform::{Arc, CtxCell, Held, PVec, PinSource, VecExt, PAGE_SIZE};
use crate::uapi::{
    IommuIoasAlloc, IommuIoasAllowIovas, IommuIoasChangeProcess, IommuIoasCopy,
    IommuIoasIovaRanges, IommuIoasMap, IommuIoasMapFile, IommuIoasUnmap, IommuIovaRange,
    IommuOption, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE,
};
use crate::ucmd::{Cx, Ucmd};
use core::cell::RefMut;
use iopt::{prot, Iopt, PagesSlice};
use pages::{Pages, PagesKind};
use zerocopy::IntoBytes;

/// Times an unmap asks accesses to let go of a range before giving up.
const MAX_UNMAP_TRIES: u32 = 100;

/// An IO address space.
pub struct Ioas {
    iopt: CtxCell<Iopt>,
    /// Every HWPT_PAGING over this IOAS (automatic ones are reused).
    hwpts: CtxCell<PVec<Arc<Object>>>,
    /// Attached accesses, told about unmaps of ranges they pinned.
    accesses: CtxCell<PVec<Arc<Object>>>,
}

impl Ioas {
    /// An empty IOAS.
    pub fn new() -> Self {
        Self {
            iopt: CtxCell::new(Iopt::new()),
            hwpts: CtxCell::new(PVec::new()),
            accesses: CtxCell::new(PVec::new()),
        }
    }

    /// The IO page table.
    pub fn iopt<'a>(&'a self, held: &'a Held<'_>) -> Result<RefMut<'a, Iopt>> {
        self.iopt.get(held)
    }

    /// Records a HWPT over this IOAS.
    pub fn remember_hwpt(&self, held: &Held<'_>, obj: &Arc<Object>) -> Result {
        self.hwpts.get(held)?.try_push(obj.clone())
    }

    /// Forgets a HWPT (destroyed).
    pub fn forget_hwpt(&self, held: &Held<'_>, obj: &Arc<Object>) -> Result {
        forget(&mut *self.hwpts.get(held)?, obj);
        Ok(())
    }

    /// True unless some HWPT over this IOAS lets devices bypass cache
    /// coherency (`VFIO_DMA_CC_IOMMU`; true without HWPTs, as upstream).
    pub fn all_hwpts_coherent(&self, held: &Held<'_>) -> Result<bool> {
        Ok(self.hwpts.get(held)?.iter().all(|h| {
            crate::payload!(h, HwptPaging).is_some_and(|p| p.domain.enforces_cache_coherency())
        }))
    }

    /// The automatic HWPTs, in creation order.
    pub fn auto_hwpts(&self, held: &Held<'_>) -> Result<PVec<Arc<Object>>> {
        snapshot(&self.hwpts.get(held)?, |h| {
            crate::payload!(h, HwptPaging).is_some_and(|p| p.auto)
        })
    }

    /// Records an attached access.
    pub fn add_access(&self, held: &Held<'_>, obj: &Arc<Object>) -> Result {
        self.accesses.get(held)?.try_push(obj.clone())
    }

    /// Forgets an access.
    pub fn remove_access(&self, held: &Held<'_>, obj: &Arc<Object>) -> Result {
        forget(&mut *self.accesses.get(held)?, obj);
        Ok(())
    }

    /// Unmaps every area inside `start..=last` (an area sticking out is
    /// `ENOENT`). Accesses pinning an area are asked to let go first.
    /// Returns the bytes unmapped.
    pub fn unmap(&self, cx: &Cx<'_>, start: u64, last: u64) -> Result<u64> {
        let mut unmapped = 0;
        self.unmap_counted(cx, start, last, &mut unmapped)?;
        Ok(unmapped)
    }

    /// [`Self::unmap`], reporting the bytes unmapped before an error too.
    pub fn unmap_counted(
        &self,
        cx: &Cx<'_>,
        mut start: u64,
        last: u64,
        unmapped: &mut u64,
    ) -> Result {
        let mut tries = 0u32;
        loop {
            let mut iopt = self.iopt(cx.held)?;
            let Some(i) = iopt.first_area(start, last) else {
                break;
            };
            let a = &iopt.areas()[i];
            if a.num_locks != 0 {
                return Err(EBUSY);
            }
            if a.iova < start || a.last > last {
                return Err(ENOENT);
            }
            if a.iova != start {
                tries = 0;
            }
            if a.num_accesses != 0 {
                let (first, len) = (a.iova, a.length());
                start = first;
                drop(iopt);
                // A copy: the callbacks unpin through this IOAS.
                let accesses = snapshot(&self.accesses.get(cx.held)?, |_| true)?;
                for acc in accesses.iter() {
                    crate::drivers::mock::access_notify_unmap(cx, acc, first, len)?;
                }
                tries += 1;
                if tries > MAX_UNMAP_TRIES {
                    crate::warn_once!("iommufd_rs: an access does not release unmapped IOVA");
                    return Err(EDEADLK);
                }
                continue;
            }
            let area_last = a.last;
            *unmapped += iopt.remove_area(cx.held, i)?;
            if area_last >= last {
                break;
            }
            start = area_last + 1;
        }
        Ok(())
    }
}

/// Removes `obj` from an object list.
fn forget(list: &mut PVec<Arc<Object>>, obj: &Arc<Object>) {
    if let Some(i) = list.iter().position(|x| Arc::ptr_eq(x, obj)) {
        list.remove_at(i);
    }
}

/// A copy of the objects of `list` that `keep` selects.
fn snapshot(
    list: &[Arc<Object>],
    keep: impl Fn(&Arc<Object>) -> bool,
) -> Result<PVec<Arc<Object>>> {
    let mut out = PVec::new();
    for o in list.iter().filter(|o| keep(o)) {
        out.try_push(o.clone())?;
    }
    Ok(out)
}

impl Default for Ioas {
    fn default() -> Self {
        Self::new()
    }
}

/// Tears an IOAS down (no HWPT or access holds it any more).
pub fn ioas_destroy(cx: &Cx<'_>, obj: &Arc<Object>) -> Result {
    let ioas = crate::payload!(obj, Ioas).ok_or(EINVAL)?;
    ioas.unmap(cx, 0, u64::MAX)?;
    ioas.hwpts.get(cx.held)?.clear();
    ioas.accesses.get(cx.held)?.clear();
    vfio_compat::forget_ioas(cx, obj.id())
}

/// Looks up an IOAS by ID (`ENOENT`, also for other kinds).
pub fn get_ioas(cx: &Cx<'_>, id: u32) -> Result<ObjRef> {
    cx.ictx.objects().get(id, Some(ObjKind::Ioas))
}

fn ioas_of(r: &ObjRef) -> Result<&Ioas> {
    crate::payload!(r.object(), Ioas).ok_or(ENOENT)
}

/// `IOMMU_IOAS_ALLOC`.
pub(crate) fn ioas_alloc(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: IommuIoasAlloc = ucmd.read()?;
    if cmd.flags != 0 {
        return Err(EOPNOTSUPP);
    }
    let new = cx.ictx.objects().reserve(Payload::Ioas(Ioas::new()))?;
    cmd.out_ioas_id = new.id();
    // As upstream: the ID reaches userspace before the object is visible; if
    // the copy fails the object is aborted and userspace never saw it.
    ucmd.respond(&cmd)?;
    new.publish();
    Ok(())
}

/// `IOMMU_IOAS_MAP*` flags to `prot::*` (always cache coherent).
fn conv_prot(flags: u32) -> u32 {
    let mut p = prot::CACHE;
    if flags & IOMMU_IOAS_MAP_WRITEABLE != 0 {
        p |= prot::WRITE;
    }
    if flags & IOMMU_IOAS_MAP_READABLE != 0 {
        p |= prot::READ;
    }
    p
}

const MAP_FLAGS: u32 =
    IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;

/// Common checks of MAP, MAP_FILE and COPY flags.
fn check_map_flags(flags: u32) -> Result {
    if flags & !MAP_FLAGS != 0 {
        return Err(EOPNOTSUPP);
    }
    Ok(())
}

fn want_rw(flags: u32) -> Result {
    if flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE) == 0 {
        return Err(EINVAL);
    }
    Ok(())
}

/// Maps user memory (`uptr`) into `ioas`; shared by `IOAS_MAP` and the VFIO
/// compat `MAP_DMA`. Returns the IOVA.
pub fn map_user(
    cx: &Cx<'_>,
    ioas: &Ioas,
    uptr: u64,
    length: u64,
    iova: Option<u64>,
    prot: u32,
) -> Result<u64> {
    uptr.checked_add(length).ok_or(EOVERFLOW)?;
    let base = uptr & !(PAGE_SIZE - 1);
    let src = PinSource::user(base, prot & prot::WRITE != 0)?;
    if cx.ictx.account_mm(cx.held)? {
        src.set_mm_mode();
    }
    let pages = Pages::new(src, base, uptr - base, length, prot & prot::WRITE != 0)?;
    let slice = PagesSlice {
        pages,
        start_byte: uptr - base,
        length,
    };
    ioas.iopt(cx.held)?
        .map_pages(cx.held, core::slice::from_ref(&slice), iova, prot)
}

/// `IOMMU_IOAS_MAP`.
pub(crate) fn ioas_map(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: IommuIoasMap = ucmd.read()?;
    if cmd.flags & !MAP_FLAGS != 0 || cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    if cmd.iova == u64::MAX || cmd.length == u64::MAX {
        return Err(EOVERFLOW);
    }
    want_rw(cmd.flags)?;
    let r = get_ioas(cx, cmd.ioas_id)?;
    let fixed = (cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA != 0).then_some(cmd.iova);
    cmd.iova = map_user(
        cx,
        ioas_of(&r)?,
        cmd.user_va,
        cmd.length,
        fixed,
        conv_prot(cmd.flags),
    )?;
    ucmd.respond(&cmd)
}

/// `IOMMU_IOAS_MAP_FILE` (memfd).
pub(crate) fn ioas_map_file(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: IommuIoasMapFile = ucmd.read()?;
    check_map_flags(cmd.flags)?;
    if cmd.iova == u64::MAX || cmd.length == u64::MAX {
        return Err(EOVERFLOW);
    }
    want_rw(cmd.flags)?;
    let r = get_ioas(cx, cmd.ioas_id)?;
    if cmd.length == 0 {
        return Err(EINVAL);
    }
    cmd.start.checked_add(cmd.length - 1).ok_or(EOVERFLOW)?;
    let base = cmd.start & !(PAGE_SIZE - 1);
    let start_byte = cmd.start - base;
    let prot = conv_prot(cmd.flags);
    let writable = prot & prot::WRITE != 0;
    let src = PinSource::file(cmd.fd, cmd.start, cmd.length, writable)?;
    if cx.ictx.account_mm(cx.held)? {
        src.set_mm_mode();
    }
    let pages = Pages::new(src, base, start_byte, cmd.length, writable)?;
    let slice = PagesSlice {
        pages,
        start_byte,
        length: cmd.length,
    };
    let fixed = (cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA != 0).then_some(cmd.iova);
    cmd.iova = ioas_of(&r)?.iopt(cx.held)?.map_pages(
        cx.held,
        core::slice::from_ref(&slice),
        fixed,
        prot,
    )?;
    ucmd.respond(&cmd)
}

/// `IOMMU_IOAS_COPY`: maps the pages behind a source range again, sharing
/// their pins.
pub(crate) fn ioas_copy(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: IommuIoasCopy = ucmd.read()?;
    check_map_flags(cmd.flags)?;
    if cmd.length == u64::MAX || cmd.src_iova == u64::MAX || cmd.dst_iova == u64::MAX {
        return Err(EOVERFLOW);
    }
    want_rw(cmd.flags)?;
    let src = get_ioas(cx, cmd.src_ioas_id)?;
    let slices = ioas_of(&src)?
        .iopt(cx.held)?
        .get_pages(cmd.src_iova, cmd.length)?;
    drop(src);
    let dst = get_ioas(cx, cmd.dst_ioas_id)?;
    let fixed = (cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA != 0).then_some(cmd.dst_iova);
    cmd.dst_iova =
        ioas_of(&dst)?
            .iopt(cx.held)?
            .map_pages(cx.held, &slices, fixed, conv_prot(cmd.flags))?;
    ucmd.respond(&cmd)
}

/// `IOMMU_IOAS_UNMAP`: whole areas only; `iova` 0 with `length` `U64_MAX`
/// unmaps everything.
pub(crate) fn ioas_unmap(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: IommuIoasUnmap = ucmd.read()?;
    let r = get_ioas(cx, cmd.ioas_id)?;
    let ioas = ioas_of(&r)?;
    let unmapped = if cmd.iova == 0 && cmd.length == u64::MAX {
        ioas.unmap(cx, 0, u64::MAX)?
    } else {
        if cmd.iova == u64::MAX || cmd.length == u64::MAX {
            return Err(EOVERFLOW);
        }
        if cmd.length == 0 {
            return Err(EINVAL);
        }
        let last = cmd.iova.checked_add(cmd.length - 1).ok_or(EOVERFLOW)?;
        let n = ioas.unmap(cx, cmd.iova, last)?;
        if n == 0 {
            return Err(ENOENT);
        }
        n
    };
    cmd.length = unmapped;
    ucmd.respond(&cmd)
}

/// `IOMMU_IOAS_IOVA_RANGES`: the usable IOVA ranges and the alignment;
/// `EMSGSIZE` (with the count) if the user array is too small.
pub(crate) fn ioas_iova_ranges(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: IommuIoasIovaRanges = ucmd.read()?;
    if cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    let r = get_ioas(cx, cmd.ioas_id)?;
    let iopt = ioas_of(&r)?.iopt(cx.held)?;
    let max = cmd.num_iovas;
    let mut n = 0u32;
    let elem = core::mem::size_of::<IommuIovaRange>() as u64;
    iopt.iova_ranges(|start, last| {
        if n < max {
            let uaddr = cmd
                .allowed_iovas
                .checked_add(u64::from(n) * elem)
                .ok_or(EFAULT)?;
            ucmd.write_at(uaddr, IommuIovaRange { start, last }.as_bytes())?;
        }
        n += 1;
        Ok(())
    })?;
    cmd.num_iovas = n;
    cmd.out_iova_alignment = iopt.iova_alignment();
    drop(iopt);
    ucmd.respond(&cmd)?;
    if n > max {
        return Err(EMSGSIZE);
    }
    Ok(())
}

/// `IOMMU_IOAS_ALLOW_IOVAS`: replaces the ranges the allocator may use;
/// reserved ranges may not be allowed (`EADDRINUSE`).
pub(crate) fn ioas_allow_iovas(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let cmd: IommuIoasAllowIovas = ucmd.read()?;
    if cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    let r = get_ioas(cx, cmd.ioas_id)?;
    let mut list: PVec<(u64, u64)> = PVec::new();
    let elem = core::mem::size_of::<IommuIovaRange>() as u64;
    for i in 0..u64::from(cmd.num_iovas) {
        let uaddr = cmd.allowed_iovas.checked_add(i * elem).ok_or(EFAULT)?;
        let range: IommuIovaRange = ucmd.read_at(uaddr)?;
        if range.start >= range.last {
            return Err(EINVAL);
        }
        if list
            .iter()
            .any(|&(s, l)| s <= range.last && l >= range.start)
        {
            return Err(EINVAL);
        }
        let pos = list.partition_point(|&(s, _)| s < range.start);
        list.try_insert(pos, (range.start, range.last))?;
    }
    let res = ioas_of(&r)?.iopt(cx.held)?.set_allowed(list);
    res
}

/// `IOMMU_OPTION`: `RLIMIT_MODE` (global) and `HUGE_PAGES` (per IOAS).
pub(crate) fn option(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    use crate::uapi::{
        IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET, IOMMU_OPTION_RLIMIT_MODE,
    };
    let mut cmd: IommuOption = ucmd.read()?;
    if cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    match cmd.option_id {
        IOMMU_OPTION_RLIMIT_MODE => {
            if cmd.object_id != 0 {
                return Err(EOPNOTSUPP);
            }
            match cmd.op {
                IOMMU_OPTION_OP_GET => {
                    cmd.val64 = u64::from(cx.ictx.account_mm(cx.held)?);
                }
                IOMMU_OPTION_OP_SET => {
                    if !crate::platform::capable(crate::platform::CAP_SYS_RESOURCE) {
                        return Err(EPERM);
                    }
                    cx.ictx.set_account_mm(cx.held, cmd.val64)?;
                }
                _ => return Err(EOPNOTSUPP),
            }
        }
        IOMMU_OPTION_HUGE_PAGES => {
            let r = get_ioas(cx, cmd.object_id)?;
            let mut iopt = ioas_of(&r)?.iopt(cx.held)?;
            match cmd.op {
                IOMMU_OPTION_OP_GET => cmd.val64 = u64::from(!iopt.large_pages_disabled()),
                IOMMU_OPTION_OP_SET => match cmd.val64 {
                    0 => iopt.disable_large_pages()?,
                    1 => iopt.enable_large_pages(),
                    _ => return Err(EINVAL),
                },
                _ => return Err(EOPNOTSUPP),
            }
        }
        _ => return Err(EOPNOTSUPP),
    }
    ucmd.respond(&cmd)
}

/// `IOMMU_IOAS_CHANGE_PROCESS`: charges every (memfd) mapping of every IOAS
/// to the calling process instead of its old owner. All or nothing; user-VA
/// mappings cannot move (`EINVAL`).
pub(crate) fn ioas_change_process(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let cmd: IommuIoasChangeProcess = ucmd.read()?;
    if cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    // Every distinct Pages of every IOAS.
    let mut all: PVec<Arc<Pages>> = PVec::new();
    let ioases = cx.ictx.objects().collect(Some(ObjKind::Ioas))?;
    for obj in ioases.iter() {
        let Some(ioas) = crate::payload!(obj, Ioas) else {
            continue;
        };
        let iopt = ioas.iopt(cx.held)?;
        for a in iopt.areas() {
            if a.pages.kind() != PagesKind::File {
                return Err(EINVAL);
            }
            if !all.iter().any(|p| Arc::ptr_eq(p, &a.pages)) {
                all.try_push(a.pages.clone())?;
            }
        }
    }
    // Charge the caller for everything first, then commit: all or nothing.
    let mut owners = PVec::new();
    owners.try_reserve_for(all.len())?;
    for p in all.iter() {
        let n = p.npinned(cx.held)?;
        let owner = p.source(cx.held)?.new_owner(n)?;
        owners.try_push(owner)?;
    }
    while let Some(owner) = owners.pop() {
        owner.commit(&*all[owners.len()].source(cx.held)?);
    }
    Ok(())
}

/// True if `cur` starts a page of the area, and (unless it is the last
/// piece) the piece ends at a page end: in-kernel pins are whole pages.
fn contig_aligned(a: &iopt::Area, cur: u64, end: u64, last: u64) -> bool {
    if !a.start_byte_of(cur).is_multiple_of(PAGE_SIZE) {
        return false;
    }
    end == last || a.start_byte_of(a.last) % PAGE_SIZE == PAGE_SIZE - 1
}

/// Pins `iova..iova + length` of IOAS `ioas_obj` (whole pages) for an
/// in-kernel user and returns the pages in order. An access (`lock` false)
/// is asked to let go when the range is unmapped; a lock (HW queues, which
/// cannot let go) makes unmap `EBUSY` instead. All or nothing.
pub fn pin_pages(
    held: &Held<'_>,
    ioas_obj: &Arc<Object>,
    iova: u64,
    length: u64,
    write: bool,
    lock: bool,
) -> Result<PVec<crate::platform::PageRef>> {
    if length == 0 {
        return Err(EINVAL);
    }
    let last = iova.checked_add(length - 1).ok_or(EOVERFLOW)?;
    let ioas = crate::payload!(ioas_obj, Ioas).ok_or(ENOENT)?;
    let mut out = PVec::new();
    let mut done: u64 = iova;
    let res = ioas.iopt(held)?.for_each_contig(iova, last, |a, s, e| {
        if !contig_aligned(a, s, e, last) {
            return Err(EINVAL);
        }
        let need = if write { prot::WRITE } else { prot::READ };
        if a.prot & need == 0 {
            return Err(EPERM);
        }
        a.pages
            .pin_access(held, a.index_of(s), a.index_of(e), &mut out)?;
        if lock {
            a.num_locks += 1;
        } else {
            a.num_accesses += 1;
        }
        done = e.wrapping_add(1);
        Ok(())
    });
    if let Err(e) = res {
        if done > iova {
            let _ = unpin_pages(held, ioas_obj, iova, done - iova, lock);
        }
        return Err(e);
    }
    Ok(out)
}

/// Undoes [`pin_pages`].
pub fn unpin_pages(
    held: &Held<'_>,
    ioas_obj: &Arc<Object>,
    iova: u64,
    length: u64,
    lock: bool,
) -> Result {
    let last = iova.checked_add(length - 1).ok_or(EOVERFLOW)?;
    let ioas = crate::payload!(ioas_obj, Ioas).ok_or(ENOENT)?;
    ioas.iopt(held)?.for_each_contig(iova, last, |a, s, e| {
        a.pages.unpin_access(held, a.index_of(s), a.index_of(e))?;
        if lock {
            a.num_locks = a.num_locks.saturating_sub(1);
        } else {
            a.num_accesses = a.num_accesses.saturating_sub(1);
        }
        Ok(())
    })
}

/// The whole pages under `iova..iova + length`.
fn page_span(iova: u64, length: u64) -> Result<(u64, u64)> {
    let start = iova & !(PAGE_SIZE - 1);
    let end = iova
        .checked_add(length)
        .and_then(|e| e.checked_next_multiple_of(PAGE_SIZE))
        .ok_or(EOVERFLOW)?;
    Ok((start, end - start))
}

/// Pins and locks the pages under `iova..iova + length`, which must be
/// physically contiguous (`EFAULT`); returns the physical address of
/// `iova`. The HW queue path: the hardware only reads the queue, so as
/// upstream the area needs read permission (a write-only area is `EPERM`).
pub fn lock_contiguous(
    held: &Held<'_>,
    ioas_obj: &Arc<Object>,
    iova: u64,
    length: u64,
) -> Result<u64> {
    let (start, len) = page_span(iova, length)?;
    let pages = pin_pages(held, ioas_obj, start, len, false, true)?;
    let first = pages.first().map(|p| p.phys()).ok_or(EFAULT)?;
    let contiguous = pages
        .iter()
        .enumerate()
        .all(|(i, p)| p.phys() == first + i as u64 * PAGE_SIZE);
    if !contiguous {
        let _ = unpin_pages(held, ioas_obj, start, len, true);
        return Err(EFAULT);
    }
    Ok(first + (iova - start))
}

/// Undoes [`lock_contiguous`].
pub fn unlock_range(held: &Held<'_>, ioas_obj: &Arc<Object>, iova: u64, length: u64) -> Result {
    let (start, len) = page_span(iova, length)?;
    unpin_pages(held, ioas_obj, start, len, true)
}
