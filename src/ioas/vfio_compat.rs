//! VFIO type1 / type1v2 container ioctls on the `/dev/iommu` fd, acting on
//! the file's compatibility IOAS (`IOMMU_VFIO_IOAS`), as upstream's
//! `vfio_compat.c`.

use super::iopt::prot;
use super::{get_ioas, Ioas};
use crate::errno::{Result, EFAULT, EINVAL, ENODEV, ENOTTY, EOPNOTSUPP};
use crate::object::ObjRef;
use crate::platform::{UserMem, PAGE_SIZE};
use crate::uapi::{
    IommuVfioIoas, VfioInfoCapHeader, VfioIommuType1DmaMap, VfioIommuType1DmaUnmap,
    VfioIommuType1Info, VfioIommuType1InfoCapIovaRange, VfioIommuType1InfoDmaAvail, VfioIovaRange,
    IOMMU_VFIO_IOAS_CLEAR, IOMMU_VFIO_IOAS_GET, IOMMU_VFIO_IOAS_SET, VFIO_API_VERSION,
    VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE,
    VFIO_DMA_UNMAP_FLAG_ALL, VFIO_GET_API_VERSION, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_INFO_CAPS,
    VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
    VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU, VFIO_TYPE1V2_IOMMU,
    VFIO_TYPE1_IOMMU, VFIO_UNMAP_ALL,
};
use crate::ucmd::{Cx, Ucmd};
use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, IntoBytes};

/// True for the VFIO container ioctls this file may serve.
pub fn is_vfio_cmd(c: u32) -> bool {
    [
        VFIO_GET_API_VERSION,
        VFIO_CHECK_EXTENSION,
        VFIO_SET_IOMMU,
        VFIO_IOMMU_GET_INFO,
        VFIO_IOMMU_MAP_DMA,
        VFIO_IOMMU_UNMAP_DMA,
    ]
    .contains(&c)
}

/// The compatibility IOAS (`ENODEV` if none).
fn compat_ioas(cx: &Cx<'_>) -> Result<ObjRef> {
    let id = cx.ictx.vfio_ioas(cx.held)?.ok_or(ENODEV)?;
    get_ioas(cx, id).map_err(|_| ENODEV)
}

fn ioas_of(r: &ObjRef) -> Result<&Ioas> {
    crate::payload!(r.object(), Ioas).ok_or(ENODEV)
}

/// Forgets the compatibility IOAS when it is destroyed.
pub fn forget_ioas(cx: &Cx<'_>, id: u32) -> Result {
    if cx.ictx.vfio_ioas(cx.held)? == Some(id) {
        cx.ictx.set_vfio_ioas(cx.held, None)?;
    }
    Ok(())
}

/// `IOMMU_VFIO_IOAS`: get, set or clear the compatibility IOAS.
pub(crate) fn vfio_ioas(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: IommuVfioIoas = ucmd.read()?;
    if cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    match cmd.op {
        IOMMU_VFIO_IOAS_GET => {
            let r = compat_ioas(cx)?;
            cmd.ioas_id = r.object().id();
            ucmd.respond(&cmd)
        }
        IOMMU_VFIO_IOAS_SET => {
            let r = get_ioas(cx, cmd.ioas_id)?;
            cx.ictx.set_vfio_ioas(cx.held, Some(r.object().id()))
        }
        IOMMU_VFIO_IOAS_CLEAR => cx.ictx.set_vfio_ioas(cx.held, None),
        _ => Err(EOPNOTSUPP),
    }
}

fn read_struct<T: FromBytes + IntoBytes + zerocopy::KnownLayout + zerocopy::Immutable>(
    mem: &dyn UserMem,
    arg: u64,
    len: usize,
) -> Result<T> {
    let mut v = T::new_zeroed();
    mem.read(arg, &mut v.as_mut_bytes()[..len])?;
    Ok(v)
}

/// Serves one VFIO container ioctl.
pub fn ioctl(cx: &Cx<'_>, mem: &dyn UserMem, c: u32, arg: u64) -> Result<isize> {
    match c {
        VFIO_GET_API_VERSION => Ok(VFIO_API_VERSION as isize),
        VFIO_CHECK_EXTENSION => check_extension(cx, arg),
        VFIO_SET_IOMMU => set_iommu(cx, arg).map(|()| 0),
        VFIO_IOMMU_GET_INFO => get_info(cx, mem, arg).map(|()| 0),
        VFIO_IOMMU_MAP_DMA => map_dma(cx, mem, arg).map(|()| 0),
        VFIO_IOMMU_UNMAP_DMA => unmap_dma(cx, mem, arg).map(|()| 0),
        _ => Err(ENOTTY),
    }
}

fn check_extension(cx: &Cx<'_>, ext: u64) -> Result<isize> {
    let Ok(ext) = u32::try_from(ext) else {
        return Ok(0);
    };
    Ok(match ext {
        VFIO_TYPE1_IOMMU | VFIO_TYPE1V2_IOMMU | VFIO_UNMAP_ALL => 1,
        VFIO_DMA_CC_IOMMU => {
            let r = compat_ioas(cx)?;
            isize::from(ioas_of(&r)?.all_hwpts_coherent(cx.held)?)
        }
        _ => 0,
    })
}

fn set_iommu(cx: &Cx<'_>, t: u64) -> Result {
    let t = u32::try_from(t).map_err(|_| EINVAL)?;
    if t != VFIO_TYPE1_IOMMU && t != VFIO_TYPE1V2_IOMMU {
        return Err(EINVAL);
    }
    let r = compat_ioas(cx)?;
    if t == VFIO_TYPE1_IOMMU {
        ioas_of(&r)?.iopt(cx.held)?.disable_large_pages()?;
    }
    cx.ictx.set_vfio_type(cx.held, t)
}

fn map_dma(cx: &Cx<'_>, mem: &dyn UserMem, arg: u64) -> Result {
    let minsz = offset_of!(VfioIommuType1DmaMap, size) + size_of::<u64>();
    let map: VfioIommuType1DmaMap = read_struct(mem, arg, minsz)?;
    if (map.argsz as usize) < minsz
        || map.flags & !(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) != 0
    {
        return Err(EINVAL);
    }
    let mut p = prot::CACHE;
    if map.flags & VFIO_DMA_MAP_FLAG_READ != 0 {
        p |= prot::READ;
    }
    if map.flags & VFIO_DMA_MAP_FLAG_WRITE != 0 {
        p |= prot::WRITE;
    }
    let r = compat_ioas(cx)?;
    super::map_user(cx, ioas_of(&r)?, map.vaddr, map.size, Some(map.iova), p).map(|_| ())
}

fn unmap_dma(cx: &Cx<'_>, mem: &dyn UserMem, arg: u64) -> Result {
    let minsz = offset_of!(VfioIommuType1DmaUnmap, size) + size_of::<u64>();
    let mut unmap: VfioIommuType1DmaUnmap = read_struct(mem, arg, minsz)?;
    if (unmap.argsz as usize) < minsz || unmap.flags & !VFIO_DMA_UNMAP_FLAG_ALL != 0 {
        return Err(EINVAL);
    }
    let r = compat_ioas(cx)?;
    let ioas = ioas_of(&r)?;
    let mut unmapped = 0u64;
    let rc = if unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL != 0 {
        if unmap.iova != 0 || unmap.size != 0 {
            return Err(EINVAL);
        }
        ioas.unmap_counted(cx, 0, u64::MAX, &mut unmapped)
    } else {
        if ioas.iopt(cx.held)?.large_pages_disabled() {
            // Type1 (v1) may unmap part of a mapping: cut areas first. A
            // failed cut reports nothing back, as upstream.
            let end = unmap.iova.wrapping_add(unmap.size).wrapping_sub(1);
            let mut iopt = ioas.iopt(cx.held)?;
            iopt.cut(cx.held, end)?;
            if unmap.iova != 0 {
                iopt.cut(cx.held, unmap.iova - 1)?;
            }
        }
        if unmap.size == 0 {
            Err(EINVAL)
        } else {
            match unmap.iova.checked_add(unmap.size - 1) {
                Some(last) => ioas.unmap_counted(cx, unmap.iova, last, &mut unmapped),
                None => Err(crate::errno::EOVERFLOW),
            }
        }
    };
    // Like upstream, the bytes unmapped are reported even on failure.
    unmap.size = unmapped;
    mem.write(arg, &unmap.as_bytes()[..minsz])
        .map_err(|_| EFAULT)?;
    rc
}

/// The page sizes the compatibility IOAS offers: what every domain can map,
/// at least `PAGE_SIZE` and the IOAS alignment.
fn pagesizes(cx: &Cx<'_>, ioas: &Ioas) -> Result<u64> {
    let iopt = ioas.iopt(cx.held)?;
    let mut bm = u64::MAX;
    for d in iopt.domains() {
        bm &= d.pgsize_bitmap();
    }
    if bm & (PAGE_SIZE - 1) != 0 {
        bm &= !(PAGE_SIZE - 1);
        bm |= PAGE_SIZE;
    }
    Ok(bm.max(iopt.iova_alignment()))
}

fn get_info(cx: &Cx<'_>, mem: &dyn UserMem, arg: u64) -> Result {
    let minsz = offset_of!(VfioIommuType1Info, iova_pgsizes) + size_of::<u64>();
    let mut info: VfioIommuType1Info = read_struct(mem, arg, minsz)?;
    if (info.argsz as usize) < minsz {
        return Err(EINVAL);
    }
    let argsz = u64::from(info.argsz);
    let outsz = (info.argsz as usize).min(size_of::<VfioIommuType1Info>());
    let r = compat_ioas(cx)?;
    let ioas = ioas_of(&r)?;
    info.flags = VFIO_IOMMU_INFO_PGSIZES;
    info.iova_pgsizes = pagesizes(cx, ioas)?;
    info.cap_offset = 0;

    let mut total = size_of::<VfioIommuType1Info>() as u64;
    let mut last_cap: Option<u64> = None;
    for which in 0..2 {
        let avail = argsz.saturating_sub(total);
        let at = arg.checked_add(total).ok_or(EFAULT)?;
        let size = if which == 0 {
            fill_dma_avail(mem, at, avail)?
        } else {
            fill_iova(cx, ioas, mem, at, avail)?
        };
        let size = size.next_multiple_of(8);
        if let Some(prev) = last_cap {
            if argsz >= total {
                let next = u32::try_from(total).map_err(|_| EINVAL)?;
                mem.write(
                    arg + prev + offset_of!(VfioInfoCapHeader, next) as u64,
                    next.as_bytes(),
                )?;
            }
        }
        last_cap = Some(total);
        total += size;
    }
    if argsz >= total {
        info.cap_offset = size_of::<VfioIommuType1Info>() as u32;
    }
    info.argsz = u32::try_from(total).map_err(|_| EINVAL)?;
    info.flags |= VFIO_IOMMU_INFO_CAPS;
    mem.write(arg, &info.as_bytes()[..outsz])
}

fn fill_dma_avail(mem: &dyn UserMem, at: u64, avail: u64) -> Result<u64> {
    let cap = VfioIommuType1InfoDmaAvail {
        header: VfioInfoCapHeader {
            id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
            version: 1,
            next: 0,
        },
        avail: u32::MAX,
    };
    let size = size_of::<VfioIommuType1InfoDmaAvail>() as u64;
    if avail >= size {
        mem.write(at, cap.as_bytes())?;
    }
    Ok(size)
}

fn fill_iova(cx: &Cx<'_>, ioas: &Ioas, mem: &dyn UserMem, at: u64, avail: u64) -> Result<u64> {
    let head = size_of::<VfioIommuType1InfoCapIovaRange>() as u64;
    let elem = size_of::<VfioIovaRange>() as u64;
    let mut n = 0u64;
    ioas.iopt(cx.held)?.iova_ranges(|start, last| {
        if avail >= head + (n + 1) * elem {
            let range = VfioIovaRange { start, end: last };
            mem.write(at + head + n * elem, range.as_bytes())?;
        }
        n += 1;
        Ok(())
    })?;
    let cap = VfioIommuType1InfoCapIovaRange {
        header: VfioInfoCapHeader {
            id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
            version: 1,
            next: 0,
        },
        nr_iovas: u32::try_from(n).map_err(|_| EINVAL)?,
        reserved: 0,
    };
    if avail >= head + n * elem {
        mem.write(at, cap.as_bytes())?;
    }
    Ok(head + n * elem)
}
