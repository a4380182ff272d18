//! The mock domain's page table: what upstream's selftest domain exposes
//! (2 KiB granule, `iova_to_phys`), kept as sorted runs of IOVA-contiguous,
//! physically contiguous mappings.
//!
//! It is deliberately simple: the selftests only observe translations. It
//! is to be replaced by the generic page-table code of the page-table issue
//! (the AMDv1-style mock format) without changing its interface.

use crate::errno::{Result, EADDRINUSE, EINVAL};
use crate::platform::{PVec, VecExt};

/// The mock IOMMU's smallest page (`MOCK_PAGE_SIZE`).
pub const MOCK_PAGE_SIZE: u64 = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    iova: u64,
    len: u64,
    phys: u64,
    prot: u32,
}

impl Run {
    fn end(&self) -> u64 {
        self.iova + self.len
    }
}

/// Sorted, non-overlapping runs.
#[derive(Default)]
pub struct MockPageTable {
    runs: PVec<Run>,
}

impl MockPageTable {
    /// An empty table.
    pub fn new() -> Self {
        Self { runs: PVec::new() }
    }

    /// Index of the first run ending after `iova`.
    fn first_after(&self, iova: u64) -> usize {
        self.runs.partition_point(|r| r.end() <= iova)
    }

    /// Maps `len` bytes at `iova` to `phys` (granule aligned). Overmapping
    /// is `EADDRINUSE`.
    pub fn map(&mut self, iova: u64, phys: u64, len: u64, prot: u32) -> Result {
        let g = MOCK_PAGE_SIZE - 1;
        if len == 0 || (iova | phys | len) & g != 0 || iova.checked_add(len).is_none() {
            return Err(EINVAL);
        }
        let i = self.first_after(iova);
        if self.runs.get(i).is_some_and(|r| r.iova < iova + len) {
            return Err(EADDRINUSE);
        }
        // Extend the previous run when both address spaces continue it: the
        // common case of a physically contiguous (huge page) or sequential
        // fill.
        if i > 0 {
            let prev = &mut self.runs[i - 1];
            if prev.end() == iova && prev.phys + prev.len == phys && prev.prot == prot {
                prev.len += len;
                return Ok(());
            }
        }
        self.runs.try_insert(
            i,
            Run {
                iova,
                len,
                phys,
                prot,
            },
        )
    }

    /// Unmaps everything in `iova..iova + len`, splitting runs at the edges;
    /// returns the bytes that were mapped.
    pub fn unmap(&mut self, iova: u64, len: u64) -> Result<u64> {
        let end = iova.checked_add(len).ok_or(EINVAL)?;
        // Room for the two edge splits up front, so a failed allocation
        // cannot leave a run cut in half.
        self.runs.try_reserve_for(2)?;
        let mut i = self.first_after(iova);
        // Split a run straddling the start.
        if let Some(r) = self.runs.get(i).copied() {
            if r.iova < iova && r.end() > iova {
                let head = iova - r.iova;
                self.runs[i].len = head;
                self.runs.try_insert(
                    i + 1,
                    Run {
                        iova,
                        len: r.len - head,
                        phys: r.phys + head,
                        prot: r.prot,
                    },
                )?;
                i += 1;
            }
        }
        // Split a run straddling the end.
        let j = self.runs.partition_point(|r| r.iova < end);
        if j > 0 {
            let r = self.runs[j - 1];
            if r.end() > end && r.iova < end {
                let head = end - r.iova;
                self.runs[j - 1].len = head;
                self.runs.try_insert(
                    j,
                    Run {
                        iova: end,
                        len: r.len - head,
                        phys: r.phys + head,
                        prot: r.prot,
                    },
                )?;
            }
        }
        let j = self.runs.partition_point(|r| r.iova < end);
        let unmapped = self.runs[i..j].iter().map(|r| r.len).sum();
        self.runs.remove_range(i, j);
        Ok(unmapped)
    }

    /// The physical address `iova` translates to.
    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        let r = self.runs.get(self.first_after(iova))?;
        (r.iova <= iova).then(|| r.phys + (iova - r.iova))
    }

    /// Bytes mapped in total.
    pub fn mapped_bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.len).sum()
    }
}
