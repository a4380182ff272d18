//! The mock domain's page table: the AMD IOMMU v1 format with a 2 KiB
//! granule, as upstream's selftest uses it (`generic_pt` `amdv1` built
//! with `AMDV1_IOMMUFD_SELFTEST`), on the generic engine.
//!
//! Entries: PR (bit 0), D (bit 6), NextLevel (bits 11:9; 0 = leaf of one
//! item, 7 = "size" leaf whose size is encoded as trailing ones in the
//! address field, replicated over every item it covers), the address
//! field (bits 51:12, in units of the 2 KiB granule), IR/IW (bits 61/62).
//! Every power-of-two size from 2 KiB up is a leaf, so leaf sizes and with
//! them dirty granularity match the selftests' expectations.

use crate::errno::Result;
use crate::pagetable::engine::{Entry, Format, PageTable};
use crate::pagetable::gather::NoFlush;
use crate::pagetable::{PROT_READ, PROT_WRITE};
use crate::platform::PtMem;

/// The mock IOMMU's smallest page (`MOCK_PAGE_SIZE`).
pub const MOCK_PAGE_SIZE: u64 = 2048;

/// AMDv1 entry bits.
pub mod bits {
    /// Present.
    pub const PR: u64 = 1 << 0;
    /// Dirty.
    pub const D: u64 = 1 << 6;
    /// NextLevel field shift (bits 11:9).
    pub const NL_SHIFT: u32 = 9;
    /// NextLevel field mask.
    pub const NL_MASK: u64 = 7 << NL_SHIFT;
    /// NextLevel code of a size-encoded (contiguous) leaf.
    pub const NL_SIZE: u64 = 7;
    /// Address field (bits 51:12).
    pub const OA_FIELD: u64 = ((1u64 << 52) - 1) & !0xfff;
    /// Force coherent.
    pub const FC: u64 = 1 << 60;
    /// Read permission.
    pub const IR: u64 = 1 << 61;
    /// Write permission.
    pub const IW: u64 = 1 << 62;
}

use bits::*;

const GRANULE_LG2: u32 = 11;
/// The mock's input and output widths.
const VASZ: u32 = 56;
const OASZ: u32 = 51;
/// Top level of a table covering 56 bits (leaves never live there).
const TOP_LEVEL: u32 = 4;

/// AMDv1 with the selftest's 2 KiB granule.
pub struct AmdV1Mock;

#[inline(always)]
const fn item_lg2(level: u32) -> u32 {
    GRANULE_LG2 + 9 * level
}

impl Format for AmdV1Mock {
    const GRANULE_LG2: u32 = GRANULE_LG2;
    const ITEMS_LG2: u32 = 9;
    type Attrs = u64;

    fn top_level(&self) -> u32 {
        TOP_LEVEL
    }

    fn top_items_lg2(&self) -> u32 {
        VASZ - item_lg2(TOP_LEVEL)
    }

    fn vasz_lg2(&self) -> u32 {
        VASZ
    }

    fn oasz_lg2(&self) -> u32 {
        OASZ
    }

    #[inline(always)]
    fn leaf_sizes(&self, level: u32) -> u64 {
        if level >= TOP_LEVEL {
            return 0;
        }
        // Every power of two from one item up to half a table; 512G is
        // excluded as on real AMD hardware (an erratum).
        let lo = item_lg2(level);
        let hi = (lo + 8).min(51);
        (((1u64 << (hi + 1)) - 1) & !((1u64 << lo) - 1)) & !(1u64 << 39)
    }

    #[inline(always)]
    fn load(&self, level: u32, _index: usize, pte: u64) -> Entry {
        if pte & PR == 0 {
            return Entry::Empty;
        }
        let nl = (pte & NL_MASK) >> NL_SHIFT;
        let field = (pte & OA_FIELD) >> 12;
        if level > 0 && nl != 0 && nl != NL_SIZE {
            return Entry::Table(field << GRANULE_LG2);
        }
        if nl == NL_SIZE {
            let ones = field.trailing_ones();
            Entry::Leaf {
                oa: (field & !((1u64 << ones) - 1)) << GRANULE_LG2,
                size_lg2: GRANULE_LG2 + 1 + ones,
            }
        } else {
            Entry::Leaf {
                oa: field << GRANULE_LG2,
                size_lg2: item_lg2(level),
            }
        }
    }

    #[inline(always)]
    fn leaf_item(&self, level: u32, oa: u64, size_lg2: u32, _item: u64, attrs: &u64) -> u64 {
        let field = oa >> GRANULE_LG2;
        if size_lg2 == item_lg2(level) {
            PR | field << 12 | attrs
        } else {
            let ones = (1u64 << (size_lg2 - GRANULE_LG2 - 1)) - 1;
            PR | (field | ones) << 12 | NL_SIZE << NL_SHIFT | attrs
        }
    }

    #[inline(always)]
    fn table_entry(&self, level: u32, pa: u64) -> u64 {
        // NextLevel names the level of the table pointed at, plus one.
        PR | u64::from(level) << NL_SHIFT | (pa >> GRANULE_LG2) << 12 | IR | IW
    }

    fn attrs(&self, prot: u32) -> Result<u64> {
        let mut a = 0;
        if prot & PROT_READ != 0 {
            a |= IR;
        }
        if prot & PROT_WRITE != 0 {
            a |= IW;
        }
        Ok(a)
    }

    fn attrs_of(&self, _level: u32, pte: u64) -> u64 {
        pte & (FC | IR | IW)
    }

    #[inline(always)]
    fn is_dirty(&self, pte: u64) -> bool {
        pte & D != 0
    }

    #[inline(always)]
    fn make_clean(&self, pte: u64) -> u64 {
        pte & !D
    }

    #[inline(always)]
    fn make_dirty(&self, pte: u64) -> u64 {
        pte | D
    }
}

/// The leaf sizes of upstream's selftest domain. Its AMDv1 table starts at
/// level 2 without a growing top, so it spans `item_lg2(3)` = 38 bits, and
/// `generic_pt` offers the leaf sizes of levels 0..=2 below half of that
/// span (a leaf as large as the whole table is not allowed): 2 KiB..64 GiB.
/// Our table keeps the full 56-bit geometry (the huge variant's aperture
/// needs it); this mask makes the default domain map, and report, exactly
/// upstream's sizes.
pub fn selftest_pgsize_bitmap() -> u64 {
    const START_LEVEL: u32 = 2;
    let sizes = (0..=START_LEVEL).fold(0, |b, l| b | AmdV1Mock.leaf_sizes(l));
    sizes & ((1u64 << (item_lg2(START_LEVEL + 1) - 1)) - 1)
}

/// The mock domain's table, with the interface the domain code uses.
pub struct MockPageTable {
    pt: PageTable<AmdV1Mock, PtMem>,
}

impl MockPageTable {
    /// An empty table with the page sizes of `pgsize_bitmap`.
    pub fn with_pgsize(pgsize_bitmap: u64) -> Result<Self> {
        let mut pt = PageTable::new(AmdV1Mock, PtMem::new())?;
        pt.set_pgsize_mask(pgsize_bitmap);
        Ok(Self { pt })
    }

    /// Maps `len` bytes at `iova` to `phys` with the best page size per
    /// step. Overmapping is `EADDRINUSE`; nothing changes on failure.
    pub fn map(&mut self, iova: u64, phys: u64, len: u64, prot: u32) -> Result {
        let mut g = self.pt.gather(&NoFlush);
        let r = self.pt.map(iova, phys, len, prot, &mut g);
        g.sync();
        r
    }

    /// Unmaps `iova..iova + len` with the engine's rules; returns the
    /// bytes unmapped.
    pub fn unmap(&mut self, iova: u64, len: u64) -> Result<u64> {
        let mut g = self.pt.gather(&NoFlush);
        let n = self.pt.unmap(iova, len, &mut g);
        g.sync();
        Ok(n)
    }

    /// The physical address `iova` translates to.
    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.pt.iova_to_phys(iova)
    }

    /// The physical address of `iova` and the bytes its leaf maps from it.
    pub fn translate(&self, iova: u64) -> Option<(u64, u64)> {
        self.pt.translate(iova)
    }

    /// Marks the leaf holding `iova` dirty, as a device write would; false
    /// if nothing is mapped there.
    pub fn set_dirty(&mut self, iova: u64) -> bool {
        self.pt.set_dirty(iova)
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
        let mut r = Ok(());
        let mut g = self.pt.gather(&NoFlush);
        self.pt
            .read_and_clear_dirty(iova, len, no_clear, &mut g, |iova, len| {
                if r.is_ok() {
                    r = f(iova, len);
                }
            });
        g.sync();
        r
    }

    /// Bytes mapped in total.
    pub fn mapped_bytes(&self) -> u64 {
        let mut n = 0;
        self.pt.for_each_leaf(|l| n += 1u64 << l.size_lg2);
        n
    }

    /// Every page size the table maps.
    pub fn pgsize_bitmap(&self) -> u64 {
        self.pt.pgsize_bitmap()
    }

    /// The generic table underneath (tests, walkers).
    pub fn table(&self) -> &PageTable<AmdV1Mock, PtMem> {
        &self.pt
    }
}
