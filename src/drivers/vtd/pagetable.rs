//! Intel VT-d page tables as [`Format`]s of the generic engine: the
//! second stage (VT-d spec §9.8, Linux `generic_pt/fmt/vtdss.h`) and the
//! first stage, which is x86-64 4- or 5-level paging (§9.7,
//! `generic_pt/fmt/x86_64.h`). Encodings match Linux's so the tables are
//! interchangeable with the C driver's.

use crate::errno::{Result, EINVAL};
use crate::pagetable::engine::{Entry, Format};
use crate::pagetable::{PROT_READ, PROT_WRITE};

/// Address bits 51:12 of every VT-d entry.
const OA_MASK: u64 = ((1u64 << 52) - 1) & !0xfff;

/// Page size bit (7) of both stages: a 2M/1G leaf above level 0.
const PS: u64 = 1 << 7;

/// Both stages' decoding once presence is known: a table pointer above
/// level 0 unless PS, else a leaf of one item.
#[inline(always)]
fn decode(level: u32, present: bool, pte: u64) -> Entry {
    if !present {
        Entry::Empty
    } else if level > 0 && pte & PS == 0 {
        Entry::Table(pte & OA_MASK)
    } else {
        Entry::Leaf {
            oa: pte & OA_MASK,
            size_lg2: 12 + 9 * level,
        }
    }
}

/// Both stages' leaf: address, attributes, PS above level 0.
#[inline(always)]
fn leaf(level: u32, oa: u64, attrs: u64) -> u64 {
    (oa & OA_MASK) | attrs | if level > 0 { PS } else { 0 }
}

/// Second-stage entry bits.
pub mod ss {
    /// Read.
    pub const R: u64 = 1 << 0;
    /// Write.
    pub const W: u64 = 1 << 1;
    /// Page size: a 2M/1G leaf above level 0.
    pub const PS: u64 = super::PS;
    /// Accessed (with SSADE).
    pub const A: u64 = 1 << 8;
    /// Dirty (with SSADE).
    pub const D: u64 = 1 << 9;
    /// Snoop: force coherent DMA.
    pub const SNP: u64 = 1 << 11;
}

/// Second-stage table configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SsConfig {
    /// Input address bits: 39, 48 or 57 (3, 4 or 5 levels).
    pub addr_width: u32,
    /// Host address width (output bits), at most 52.
    pub oas: u32,
    /// `CAP.SLLPS`: bit 0 = 2M leaves, bit 1 = 1G leaves.
    pub sllps: u32,
    /// Set SNP on every leaf (`PT_FEAT_VTDSS_FORCE_COHERENCE`).
    pub force_coherence: bool,
    /// Refuse read-only leaves (nest parents, erratum 772415).
    pub force_writeable: bool,
}

/// VT-d second-stage format.
pub struct VtdSs {
    cfg: SsConfig,
}

impl VtdSs {
    /// A format for `cfg` (`EINVAL` for an unsupported width).
    pub fn new(cfg: SsConfig) -> Result<Self> {
        if ![39, 48, 57].contains(&cfg.addr_width) || !(32..=52).contains(&cfg.oas) {
            return Err(EINVAL);
        }
        Ok(Self { cfg })
    }

    /// The context / PASID-entry `AW` field (1, 2, 3 for 39/48/57 bits).
    pub fn aw(&self) -> u32 {
        (self.cfg.addr_width - 30) / 9
    }

    /// The configuration.
    pub fn config(&self) -> &SsConfig {
        &self.cfg
    }
}

impl Format for VtdSs {
    const GRANULE_LG2: u32 = 12;
    const ITEMS_LG2: u32 = 9;
    type Attrs = u64;

    #[inline(always)]
    fn top_level(&self) -> u32 {
        (self.cfg.addr_width - 12) / 9 - 1
    }

    #[inline(always)]
    fn top_items_lg2(&self) -> u32 {
        9
    }

    #[inline(always)]
    fn vasz_lg2(&self) -> u32 {
        self.cfg.addr_width
    }

    #[inline(always)]
    fn oasz_lg2(&self) -> u32 {
        self.cfg.oas
    }

    #[inline(always)]
    fn leaf_sizes(&self, level: u32) -> u64 {
        match level {
            0 => 1 << 12,
            1 if self.cfg.sllps & 1 != 0 => 1 << 21,
            2 if self.cfg.sllps & 2 != 0 => 1 << 30,
            _ => 0,
        }
    }

    #[inline(always)]
    fn load(&self, level: u32, _index: usize, pte: u64) -> Entry {
        // No present bit: an entry is present iff it grants R or W.
        decode(level, pte & (ss::R | ss::W) != 0, pte)
    }

    #[inline(always)]
    fn leaf_item(&self, level: u32, oa: u64, _size_lg2: u32, _item: u64, attrs: &u64) -> u64 {
        leaf(level, oa, *attrs)
    }

    #[inline(always)]
    fn table_entry(&self, _level: u32, pa: u64) -> u64 {
        // Hardware ANDs permissions down the walk; tables grant both.
        (pa & OA_MASK) | ss::R | ss::W
    }

    fn attrs(&self, prot: u32) -> Result<u64> {
        if prot & (PROT_READ | PROT_WRITE) == 0 {
            return Err(EINVAL);
        }
        if self.cfg.force_writeable && prot & PROT_WRITE == 0 {
            crate::warn_once!(
                "iommufd_rs: read-only mapping refused on a nest parent (VT-d erratum 772415)"
            );
            return Err(EINVAL);
        }
        let mut a = 0;
        if prot & PROT_READ != 0 {
            a |= ss::R;
        }
        if prot & PROT_WRITE != 0 {
            a |= ss::W;
        }
        if self.cfg.force_coherence {
            a |= ss::SNP;
        }
        Ok(a)
    }

    fn attrs_of(&self, _level: u32, pte: u64) -> u64 {
        pte & (ss::R | ss::W | ss::SNP)
    }

    #[inline(always)]
    fn is_dirty(&self, pte: u64) -> bool {
        pte & ss::D != 0
    }

    #[inline(always)]
    fn make_clean(&self, pte: u64) -> u64 {
        pte & !ss::D
    }

    #[inline(always)]
    fn make_dirty(&self, pte: u64) -> u64 {
        pte | ss::D
    }
}

/// First-stage (x86-64 paging) entry bits.
pub mod fs {
    /// Present.
    pub const P: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// User accessible.
    pub const U: u64 = 1 << 2;
    /// Accessed.
    pub const A: u64 = 1 << 5;
    /// Dirty.
    pub const D: u64 = 1 << 6;
    /// Page size: a 2M/1G leaf above level 0.
    pub const PS: u64 = super::PS;
    /// Execute disable.
    pub const XD: u64 = 1 << 63;
}

/// First-stage table configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsConfig {
    /// 4 or 5 levels (48- or 57-bit canonical lower half).
    pub levels: u32,
    /// Output bits, at most 52.
    pub oas: u32,
    /// `CAP.FS1GP`: 1G leaves.
    pub gb_pages: bool,
}

/// VT-d first-stage format.
pub struct VtdFs {
    cfg: FsConfig,
}

impl VtdFs {
    /// A format for `cfg` (`EINVAL` unless 4 or 5 levels).
    pub fn new(cfg: FsConfig) -> Result<Self> {
        if !(4..=5).contains(&cfg.levels) || !(32..=52).contains(&cfg.oas) {
            return Err(EINVAL);
        }
        Ok(Self { cfg })
    }
}

impl Format for VtdFs {
    const GRANULE_LG2: u32 = 12;
    const ITEMS_LG2: u32 = 9;
    type Attrs = u64;

    #[inline(always)]
    fn top_level(&self) -> u32 {
        self.cfg.levels - 1
    }

    #[inline(always)]
    fn top_items_lg2(&self) -> u32 {
        // A full (4 KiB, 4 KiB-aligned) table, of which only the lower
        // canonical half maps IOVAs (`vasz_lg2`).
        9
    }

    #[inline(always)]
    fn vasz_lg2(&self) -> u32 {
        12 + 9 * self.cfg.levels - 1
    }

    #[inline(always)]
    fn oasz_lg2(&self) -> u32 {
        self.cfg.oas
    }

    #[inline(always)]
    fn leaf_sizes(&self, level: u32) -> u64 {
        match level {
            0 => 1 << 12,
            1 => 1 << 21,
            2 if self.cfg.gb_pages => 1 << 30,
            _ => 0,
        }
    }

    #[inline(always)]
    fn load(&self, level: u32, _index: usize, pte: u64) -> Entry {
        decode(level, pte & fs::P != 0, pte)
    }

    #[inline(always)]
    fn leaf_item(&self, level: u32, oa: u64, _size_lg2: u32, _item: u64, attrs: &u64) -> u64 {
        leaf(level, oa, fs::P | attrs)
    }

    #[inline(always)]
    fn table_entry(&self, _level: u32, pa: u64) -> u64 {
        (pa & OA_MASK) | fs::P | fs::RW | fs::U | fs::A
    }

    fn attrs(&self, prot: u32) -> Result<u64> {
        // A and D are preset so the IOMMU never writes the table.
        let mut a = fs::U | fs::A;
        if prot & PROT_WRITE != 0 {
            a |= fs::RW | fs::D;
        }
        Ok(a)
    }

    fn attrs_of(&self, _level: u32, pte: u64) -> u64 {
        pte & (fs::RW | fs::U | fs::A | fs::D | fs::XD)
    }
}
