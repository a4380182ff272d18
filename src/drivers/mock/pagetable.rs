//! The mock domain's page table: what upstream's selftest domain exposes
//! (2 KiB granule, power-of-two leaves, dirty bits that the selftest sets and
//! `read_and_clear_dirty` reports per whole leaf), kept as a sorted list of
//! leaves.
//!
//! Each map step takes the largest page size the domain allows that fits
//! the alignment of both addresses and the remaining length, as a radix
//! table would, so leaf sizes (and with them dirty granularity) match what
//! the selftests expect. The generic page-table code of the page-table issue
//! replaces this list behind the same interface.

use crate::errno::{Result, EADDRINUSE, EINVAL};
use crate::platform::{PVec, VecExt};

/// The mock IOMMU's smallest page (`MOCK_PAGE_SIZE`).
pub const MOCK_PAGE_SIZE: u64 = 2048;

/// One leaf: `1 << order` bytes at `iova` translating to `phys`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Leaf {
    iova: u64,
    phys: u64,
    prot: u32,
    order: u8,
    dirty: bool,
}

impl Leaf {
    fn size(&self) -> u64 {
        1 << self.order
    }

    fn end(&self) -> u64 {
        self.iova + self.size()
    }
}

/// Sorted, non-overlapping leaves.
pub struct MockPageTable {
    pgsize_bitmap: u64,
    leaves: PVec<Leaf>,
}

impl Default for MockPageTable {
    fn default() -> Self {
        Self::new()
    }
}

/// The largest size in `bitmap` that is at most `len` and to which both
/// `iova` and `phys` are aligned (0 if none).
fn best_order(bitmap: u64, iova: u64, phys: u64, len: u64) -> Option<u8> {
    let mut m = bitmap;
    // Sizes up to the highest power of two in `len`.
    let top = 63 - len.leading_zeros();
    if top < 63 {
        m &= (2u64 << top) - 1;
    }
    let addr = iova | phys;
    if addr != 0 {
        // Sizes up to the lowest set bit of either address.
        let low = addr.trailing_zeros();
        if low < 63 {
            m &= (2u64 << low) - 1;
        }
    }
    (m != 0).then(|| (63 - m.leading_zeros()) as u8)
}

/// Calls `f` with the leaves (iova, phys, order) that cover `len` bytes.
fn split(
    bitmap: u64,
    mut iova: u64,
    mut phys: u64,
    mut len: u64,
    mut f: impl FnMut(u64, u64, u8) -> Result,
) -> Result {
    while len != 0 {
        let order = best_order(bitmap, iova, phys, len).ok_or(EINVAL)?;
        f(iova, phys, order)?;
        let sz = 1u64 << order;
        iova += sz;
        phys += sz;
        len -= sz;
    }
    Ok(())
}

impl MockPageTable {
    /// An empty table with every power-of-two size from 2 KiB up.
    pub fn new() -> Self {
        Self::with_pgsize(!(MOCK_PAGE_SIZE - 1))
    }

    /// An empty table with the page sizes of `pgsize_bitmap`.
    pub fn with_pgsize(pgsize_bitmap: u64) -> Self {
        Self {
            pgsize_bitmap,
            leaves: PVec::new(),
        }
    }

    /// Index of the first leaf ending after `iova`.
    fn first_after(&self, iova: u64) -> usize {
        self.leaves.partition_point(|l| l.end() <= iova)
    }

    /// Maps `len` bytes at `iova` to `phys` with the best page size per
    /// step. Overmapping is `EADDRINUSE`; nothing changes on failure.
    pub fn map(&mut self, iova: u64, phys: u64, len: u64, prot: u32) -> Result {
        let g = (1u64 << self.pgsize_bitmap.trailing_zeros()) - 1;
        if len == 0 || (iova | phys | len) & g != 0 || iova.checked_add(len).is_none() {
            return Err(EINVAL);
        }
        let i = self.first_after(iova);
        if self.leaves.get(i).is_some_and(|l| l.iova < iova + len) {
            return Err(EADDRINUSE);
        }
        let mut n = 0usize;
        split(self.pgsize_bitmap, iova, phys, len, |_, _, _| {
            n += 1;
            Ok(())
        })?;
        self.leaves.try_reserve_for(n)?;
        let old = self.leaves.len();
        split(self.pgsize_bitmap, iova, phys, len, |iova, phys, order| {
            self.leaves.try_push(Leaf {
                iova,
                phys,
                prot,
                order,
                dirty: false,
            })
        })?;
        // Appending in order is the common case; otherwise move the new
        // leaves into place.
        if i < old {
            self.leaves[i..].rotate_right(n);
        }
        Ok(())
    }

    /// Unmaps everything in `iova..iova + len`; returns the bytes that were
    /// mapped there. A leaf straddling an edge keeps its outside part
    /// (re-split into leaves, dirty bit kept); nothing changes on failure.
    pub fn unmap(&mut self, iova: u64, len: u64) -> Result<u64> {
        let end = iova.checked_add(len).ok_or(EINVAL)?;
        let i = self.first_after(iova);
        let j = self.leaves.partition_point(|l| l.iova < end);
        if i >= j {
            return Ok(0);
        }
        // The parts of the edge leaves that stay.
        let (first, last) = (self.leaves[i], self.leaves[j - 1]);
        let head = (first.iova < iova).then(|| (first, first.iova, iova - first.iova));
        let tail = (last.end() > end).then(|| (last, end, last.end() - end));
        let mut keep = 0usize;
        for (l, at, n) in head.iter().chain(tail.iter()) {
            split(
                self.pgsize_bitmap,
                *at,
                l.phys + (at - l.iova),
                *n,
                |_, _, _| {
                    keep += 1;
                    Ok(())
                },
            )?;
        }
        self.leaves.try_reserve_for(keep)?;
        let unmapped = self.leaves[i..j]
            .iter()
            .map(|l| l.end().min(end) - l.iova.max(iova))
            .sum();
        self.leaves.remove_range(i, j);
        let old = self.leaves.len();
        for (l, at, n) in head.iter().chain(tail.iter()) {
            let (prot, dirty) = (l.prot, l.dirty);
            split(
                self.pgsize_bitmap,
                *at,
                l.phys + (at - l.iova),
                *n,
                |iova, phys, order| {
                    self.leaves.try_push(Leaf {
                        iova,
                        phys,
                        prot,
                        order,
                        dirty,
                    })
                },
            )?;
        }
        if i < old {
            self.leaves[i..].rotate_right(keep);
        }
        Ok(unmapped)
    }

    /// The physical address `iova` translates to.
    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        let l = self.leaves.get(self.first_after(iova))?;
        (l.iova <= iova).then(|| l.phys + (iova - l.iova))
    }

    /// Marks the leaf holding `iova` dirty, as a device write would; false
    /// if nothing is mapped there.
    pub fn set_dirty(&mut self, iova: u64) -> bool {
        let i = self.first_after(iova);
        match self.leaves.get_mut(i) {
            Some(l) if l.iova <= iova => {
                l.dirty = true;
                true
            }
            _ => false,
        }
    }

    /// Reports every dirty leaf overlapping `iova..iova + len` as a whole
    /// (`f(leaf_iova, leaf_len)`), clearing the bits unless `no_clear`.
    pub fn read_and_clear_dirty(
        &mut self,
        iova: u64,
        len: u64,
        no_clear: bool,
        mut f: impl FnMut(u64, u64) -> Result,
    ) -> Result {
        let end = iova.saturating_add(len);
        let mut i = self.first_after(iova);
        while let Some(l) = self.leaves.get_mut(i) {
            if l.iova >= end {
                break;
            }
            if l.dirty {
                f(l.iova, l.size())?;
                if !no_clear {
                    l.dirty = false;
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// Bytes mapped in total.
    pub fn mapped_bytes(&self) -> u64 {
        self.leaves.iter().map(|l| l.size()).sum()
    }
}
