//! Dirty tracking: `IOMMU_HWPT_SET_DIRTY_TRACKING` and
//! `IOMMU_HWPT_GET_DIRTY_BITMAP`.
//!
//! The user bitmap is filled window by window (a bounded kernel buffer per
//! window, ORed into user memory, so unaligned bitmaps work byte-wise). A
//! dirty leaf is reported whole; the part of it past the current window is
//! carried into the next ones, because reading cleared its bit already.

use crate::errno::{Result, EINVAL, EOPNOTSUPP, EOVERFLOW};
use crate::object::ObjKind;
use crate::platform::{PVec, VecExt};
use crate::uapi::{
    IommuHwptGetDirtyBitmap, IommuHwptSetDirtyTracking, IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
    IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
};
use crate::ucmd::{Cx, Ucmd};

/// Bits per window: one 4 KiB kernel buffer.
const WINDOW_BITS: u64 = 8 * 4096;

/// `IOMMU_HWPT_SET_DIRTY_TRACKING`. Enabling first clears every dirty bit
/// so that the first read is a clean snapshot.
pub(crate) fn set_dirty_tracking(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let cmd: IommuHwptSetDirtyTracking = ucmd.read()?;
    if cmd.flags & !IOMMU_HWPT_DIRTY_TRACKING_ENABLE != 0 || cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    let r = cx
        .ictx
        .objects()
        .get(cmd.hwpt_id, Some(ObjKind::HwptPaging))?;
    let hwpt = crate::payload!(r.object(), HwptPaging).ok_or(EINVAL)?;
    let domain = &hwpt.domain;
    if !domain.has_dirty_ops() {
        return Err(EOPNOTSUPP);
    }
    let enable = cmd.flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE != 0;
    if enable {
        let ioas = crate::payload!(hwpt.ioas.object(), Ioas).ok_or(EINVAL)?;
        let iopt = ioas.iopt(cx.held)?;
        for a in iopt.areas() {
            domain.read_and_clear_dirty(cx.held, a.iova, a.length(), false, |_, _| Ok(()))?;
        }
    }
    domain.set_tracking(cx.held, enable)
}

/// `iommufd_check_iova_range()`: the range must be non-empty and aligned to
/// both the IOAS alignment and the bitmap's page size.
pub fn check_iova_range(iova: u64, length: u64, page_size: u64, align: u64) -> Result<u64> {
    if length == 0 {
        return Err(EINVAL);
    }
    let last = iova.checked_add(length - 1).ok_or(EOVERFLOW)?;
    let end = last.checked_add(1).ok_or(EOVERFLOW)?;
    if iova & (align - 1) != 0 || end & (align - 1) != 0 {
        return Err(EINVAL);
    }
    if page_size == 0 || !page_size.is_power_of_two() {
        return Err(EINVAL);
    }
    if iova & (page_size - 1) != 0 || end & (page_size - 1) != 0 {
        return Err(EINVAL);
    }
    Ok(last)
}

/// One window of the bitmap: the bits of IOVAs `start..end`.
struct Window<'b> {
    shift: u32,
    start: u64,
    end: u64,
    bits: &'b mut [u8],
    any: bool,
}

impl Window<'_> {
    /// Sets the bits of every page overlapping `from..to` inside the window.
    fn set(&mut self, from: u64, to: u64) {
        let (from, to) = (from.max(self.start), to.min(self.end));
        if from >= to {
            return;
        }
        let first = (from - self.start) >> self.shift;
        let last = (to - 1 - self.start) >> self.shift;
        for b in first..=last {
            if let Some(byte) = self.bits.get_mut((b / 8) as usize) {
                *byte |= 1 << (b % 8);
            }
        }
        self.any = true;
    }
}

/// `IOMMU_HWPT_GET_DIRTY_BITMAP`: bit `i` of the user bitmap is page
/// `iova / page_size + i`; bits are only ever set. A hole in the mappings
/// is `EINVAL`.
pub(crate) fn get_dirty_bitmap(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let cmd: IommuHwptGetDirtyBitmap = ucmd.read()?;
    if cmd.flags & !IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR != 0 || cmd.__reserved != 0 {
        return Err(EOPNOTSUPP);
    }
    let no_clear = cmd.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR != 0;
    let r = cx
        .ictx
        .objects()
        .get(cmd.hwpt_id, Some(ObjKind::HwptPaging))?;
    let hwpt = crate::payload!(r.object(), HwptPaging).ok_or(EINVAL)?;
    let ioas = crate::payload!(hwpt.ioas.object(), Ioas).ok_or(EINVAL)?;
    let domain = &hwpt.domain;
    let mut iopt = ioas.iopt(cx.held)?;
    check_iova_range(cmd.iova, cmd.length, cmd.page_size, iopt.iova_alignment())?;
    if !domain.has_dirty_ops() {
        return Err(EOPNOTSUPP);
    }
    // A power of two (checked above): shifts, not divisions.
    let shift = cmd.page_size.trailing_zeros();
    let npages = cmd.length >> shift;
    let mut buf: PVec<u8> = PVec::new();
    buf.try_resize(WINDOW_BITS.min(npages).div_ceil(8) as usize, 0)?;
    // Dirty bytes past the current window, from leaves already cleared.
    let mut ahead = 0u64;
    let mut bit = 0u64;
    while bit < npages {
        let nbits = WINDOW_BITS.min(npages - bit);
        let nbytes = nbits.div_ceil(8) as usize;
        let start = cmd.iova + (bit << shift);
        let end = start + (nbits << shift);
        let bits = buf.get_mut(..nbytes).ok_or(EINVAL)?;
        bits.fill(0);
        let mut w = Window {
            shift,
            start,
            end,
            bits,
            any: false,
        };
        if ahead > start {
            w.set(start, ahead);
        }
        iopt.for_each_contig(start, end - 1, |_, s, l| {
            domain.read_and_clear_dirty(cx.held, s, l - s + 1, no_clear, |li, ll| {
                let le = li.saturating_add(ll);
                w.set(li, le);
                if le > end {
                    ahead = ahead.max(le);
                }
                Ok(())
            })
        })
        .map_err(|e| if e == crate::errno::ENOENT { EINVAL } else { e })?;
        if w.any {
            // Bits only ever get set: merge with what userspace has.
            let uaddr = cmd.data + bit / 8;
            let mut cur: PVec<u8> = PVec::new();
            cur.try_resize(nbytes, 0)?;
            ucmd.read_bytes(uaddr, &mut cur)?;
            for (c, b) in cur.iter_mut().zip(buf.iter()) {
                *c |= *b;
            }
            ucmd.write_at(uaddr, &cur)?;
        }
        bit += nbits;
    }
    Ok(())
}
