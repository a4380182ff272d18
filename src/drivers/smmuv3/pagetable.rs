//! ARM VMSAv8-64 translation tables (SMMUv3 stage 1 and stage 2) as a
//! [`Format`] of the generic engine.
//!
//! Granules are types ([`Gran4K`], [`Gran16K`], [`Gran64K`]) so every
//! shift is a constant in the engine's loops. Leaf attributes follow
//! Linux's `arm_lpae_prot_to_pte()` bit for bit, so a table built here and
//! one built by `io-pgtable-arm` hold the same descriptors for the same
//! mappings, except that we also use the **contiguous hint** (bit 52):
//! an aligned run of 16 (4K granule) / 128 or 32 (16K) / 32 (64K) entries
//! with consecutive output addresses and identical attributes is written
//! as one TLB-friendly group. Upstream's io-pgtable never sets it.
//!
//! Dirty tracking uses DBM (bit 51): a writable leaf is built
//! writable-*dirty* (DBM set, write permission granted), cleaning removes
//! write permission (stage 1: sets AP[2]; stage 2: clears S2AP[1]) and
//! the SMMU with HTTU grants it back on the first write. Linux only does
//! this for stage 1; stage 2 follows the same architecture rule.

use crate::errno::{Result, EINVAL};
use crate::pagetable::engine::{Entry, Format};
use crate::pagetable::{PROT_CACHE, PROT_MMIO, PROT_NOEXEC, PROT_PRIV, PROT_READ, PROT_WRITE};
use core::marker::PhantomData;

/// Descriptor bits shared by both stages.
pub mod bits {
    /// Valid.
    pub const VALID: u64 = 1 << 0;
    /// Table (levels 0-2) or page (level 3) when set with `VALID`.
    pub const TYPE_TABLE: u64 = 1 << 1;
    /// Stage-1 lower attributes: AttrIndx (MAIR index).
    pub const ATTRINDX_SHIFT: u32 = 2;
    /// Stage-2 MemAttr\[3:0\].
    pub const MEMATTR_SHIFT: u32 = 2;
    /// Stage 1: AP\[1\], accessible at EL0 (unprivileged).
    pub const AP_UNPRIV: u64 = 1 << 6;
    /// Stage 1: AP\[2\], read-only.
    pub const AP_RDONLY: u64 = 1 << 7;
    /// Stage 2: S2AP\[0\], read allowed.
    pub const S2AP_READ: u64 = 1 << 6;
    /// Stage 2: S2AP\[1\], write allowed.
    pub const S2AP_WRITE: u64 = 1 << 7;
    /// Shareability: outer.
    pub const SH_OS: u64 = 2 << 8;
    /// Shareability: inner.
    pub const SH_IS: u64 = 3 << 8;
    /// Access flag.
    pub const AF: u64 = 1 << 10;
    /// Not global (stage 1, ASID-tagged).
    pub const NG: u64 = 1 << 11;
    /// Dirty bit modifier.
    pub const DBM: u64 = 1 << 51;
    /// Contiguous hint.
    pub const CONT: u64 = 1 << 52;
    /// PXN + UXN (stage 1) / XN\[1:0\] (stage 2), as Linux sets both.
    pub const XN: u64 = 3 << 53;
    /// MAIR index of Normal non-cacheable.
    pub const IDX_NC: u64 = 0;
    /// MAIR index of Normal write-back read/write-allocate.
    pub const IDX_CACHE: u64 = 1;
    /// MAIR index of Device-nGnRE.
    pub const IDX_DEV: u64 = 2;
    /// Stage-2 MemAttr: Normal outer/inner write-back.
    pub const MEMATTR_OIWB: u64 = 0xf;
    /// Stage-2 MemAttr: Normal non-cacheable.
    pub const MEMATTR_NC: u64 = 0x5;
    /// Stage-2 MemAttr: Device-nGnRE.
    pub const MEMATTR_DEV: u64 = 0x1;
    /// Stage-2 MemAttr with S2FWB: force write-back.
    pub const MEMATTR_FWB_WB: u64 = 0x6;
    /// The MAIR value that goes with the indices above (CD word 3).
    pub const MAIR: u64 = 0x44 | (0xff << 8) | (0x04 << 16) | (0xf4 << 24);
}

use bits::*;

/// A translation granule: table size and the sizes it allows.
pub trait Granule {
    /// log2 of the granule (4 KiB: 12).
    const LG2: u32;
    /// log2 of the entries in a contiguous group at ARM level 3.
    const CONT_L3_LG2: u32;
    /// log2 of the entries in a contiguous group at ARM level 2.
    const CONT_L2_LG2: u32;
    /// TCR.TG0 encoding.
    const TG0: u64;
    /// The name, for logs and benchmarks.
    const NAME: &'static str;
}

/// 4 KiB granule: 4K pages, 2M and 1G blocks, 64K and 32M contiguous.
pub enum Gran4K {}
/// 16 KiB granule: 16K pages, 32M blocks, 2M and 1G contiguous.
pub enum Gran16K {}
/// 64 KiB granule: 64K pages, 512M blocks, 2M and 16G contiguous.
pub enum Gran64K {}

impl Granule for Gran4K {
    const LG2: u32 = 12;
    const CONT_L3_LG2: u32 = 4;
    const CONT_L2_LG2: u32 = 4;
    const TG0: u64 = 0;
    const NAME: &'static str = "4K";
}

impl Granule for Gran16K {
    const LG2: u32 = 14;
    const CONT_L3_LG2: u32 = 7;
    const CONT_L2_LG2: u32 = 5;
    const TG0: u64 = 2;
    const NAME: &'static str = "16K";
}

impl Granule for Gran64K {
    const LG2: u32 = 16;
    const CONT_L3_LG2: u32 = 5;
    const CONT_L2_LG2: u32 = 5;
    const TG0: u64 = 1;
    const NAME: &'static str = "64K";
}

/// Translation stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Stage 1 (CD, ASID-tagged, AP permissions, MAIR attributes).
    S1,
    /// Stage 2 (STE, VMID-tagged, S2AP permissions, MemAttr).
    S2,
}

/// What a table is configured for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmsaConfig {
    /// Stage.
    pub stage: Stage,
    /// Input address bits (`64 - T0SZ`), 25..=48 (52 with 64K).
    pub ias: u32,
    /// Output address bits: one of 32, 36, 40, 42, 44, 48 (52 with 64K).
    pub oas: u32,
    /// Use the contiguous hint for aligned runs.
    pub contiguous: bool,
    /// Build writable leaves with DBM (HTTU dirty tracking).
    pub dbm: bool,
    /// Stage 2: the STE sets S2FWB (cacheable maps force write-back).
    pub s2fwb: bool,
    /// Stage 2: concatenate start tables whenever that saves a level
    /// (as KVM does), not only where the architecture requires it.
    pub prefer_concat: bool,
}

impl VmsaConfig {
    /// Linux's SMMUv3 stage-1 setup for a 48-bit space.
    pub const fn s1(ias: u32, oas: u32) -> Self {
        Self {
            stage: Stage::S1,
            ias,
            oas,
            contiguous: true,
            dbm: false,
            s2fwb: false,
            prefer_concat: false,
        }
    }

    /// A stage-2 table.
    pub const fn s2(ias: u32, oas: u32) -> Self {
        Self {
            stage: Stage::S2,
            ias,
            oas,
            contiguous: true,
            dbm: false,
            s2fwb: false,
            prefer_concat: true,
        }
    }
}

/// ARM VMSAv8-64 format with granule `G`.
pub struct Vmsa<G: Granule> {
    cfg: VmsaConfig,
    /// Generic level of the start table.
    top_level: u32,
    top_items_lg2: u32,
    oa_mask: u64,
    _g: PhantomData<G>,
}

const fn bits_per_level<G: Granule>() -> u32 {
    G::LG2 - 3
}

/// Number of ARM levels for `ias` bits and the start table's index bits.
const fn geometry<G: Granule>(ias: u32) -> (u32, u32) {
    let bpl = bits_per_level::<G>();
    let va_bits = ias - G::LG2;
    let levels = va_bits.div_ceil(bpl);
    (levels, va_bits - bpl * (levels - 1))
}

impl<G: Granule> Vmsa<G> {
    /// A format for `cfg`; `EINVAL` for sizes the architecture does not
    /// allow.
    pub fn new(cfg: VmsaConfig) -> Result<Self> {
        let max = if G::LG2 == 16 { 52 } else { 48 };
        if !(25..=max).contains(&cfg.ias) || ![32, 36, 40, 42, 44, 48, 52].contains(&cfg.oas) {
            return Err(EINVAL);
        }
        if cfg.oas > max {
            return Err(EINVAL);
        }
        let (levels, mut top_bits) = geometry::<G>(cfg.ias);
        let mut top_level = levels - 1;
        if cfg.stage == Stage::S2 && top_level > 0 {
            let start = 3 - top_level;
            let mandatory = match G::LG2 {
                14 if start == 0 => cfg.oas == 48 || cfg.ias == 48,
                14 => start == 1 && cfg.oas == 40,
                12 if start == 0 => cfg.oas == 40 || cfg.oas == 42,
                _ => false,
            };
            // At most 16 concatenated tables; a 4K-granule stage 2 cannot
            // start at level 3 (SL0 has no encoding for it without TTST).
            let to_l3_4k = G::LG2 == 12 && top_level == 1;
            if top_bits <= 4 && (mandatory || cfg.prefer_concat) && !to_l3_4k {
                top_level -= 1;
                top_bits += bits_per_level::<G>();
            }
        }
        let hi = if cfg.oas == 52 { 48 } else { cfg.oas };
        Ok(Self {
            cfg,
            top_level,
            top_items_lg2: top_bits,
            oa_mask: ((1u64 << hi) - 1) & !((1u64 << G::LG2) - 1),
            _g: PhantomData,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VmsaConfig {
        &self.cfg
    }

    /// ARM level (0..=3) of the start table.
    pub fn start_level(&self) -> u32 {
        3 - self.top_level
    }

    /// Start-table entries beyond one table's worth, as a count of
    /// concatenated tables (1 without concatenation).
    pub fn concat_tables(&self) -> u32 {
        1 << self.top_items_lg2.saturating_sub(bits_per_level::<G>())
    }

    /// `TCR.IPS` / `VTCR.PS` encoding of the output size.
    pub fn ps(&self) -> u64 {
        match self.cfg.oas {
            32 => 0,
            36 => 1,
            40 => 2,
            42 => 3,
            44 => 4,
            48 => 5,
            _ => 6,
        }
    }

    /// The stage-2 `VTCR` fields the STE carries (T0SZ, SL0, TG, PS; the
    /// cacheability fields for a coherent walk).
    pub fn vtcr(&self) -> u64 {
        let mut sl = u64::from(self.start_level());
        if G::LG2 == 12 {
            sl += 1;
        }
        let sl0 = !sl & 3;
        (64 - u64::from(self.cfg.ias))
            | sl0 << 6
            | 1 << 8
            | 1 << 10
            | 3 << 12
            | G::TG0 << 14
            | self.ps() << 16
    }

    fn oa_bits(&self, oa: u64) -> u64 {
        let mut v = oa & self.oa_mask;
        if self.cfg.oas == 52 {
            v |= ((oa >> 48) & 0xf) << 12;
        }
        v
    }

    fn pte_oa(&self, pte: u64) -> u64 {
        let mut oa = pte & self.oa_mask;
        if self.cfg.oas == 52 {
            oa |= ((pte >> 12) & 0xf) << 48;
        }
        oa
    }

    /// log2 of the bytes one item at generic `level` maps.
    #[inline(always)]
    fn item_lg2(level: u32) -> u32 {
        G::LG2 + (G::LG2 - 3) * level
    }

    /// log2 of the entries in a contiguous group at generic `level`.
    #[inline(always)]
    fn cont_lg2(level: u32) -> u32 {
        match level {
            0 => G::CONT_L3_LG2,
            1 => G::CONT_L2_LG2,
            _ => 0,
        }
    }

    /// Attribute bits (everything but OA, type, contiguity and the
    /// dirty state).
    const ATTR_MASK: u64 = !(VALID | TYPE_TABLE | CONT) & !(((1u64 << 48) - 1) & !0xfff);
}

impl<G: Granule> Format for Vmsa<G> {
    const GRANULE_LG2: u32 = G::LG2;
    const ITEMS_LG2: u32 = G::LG2 - 3;
    type Attrs = u64;

    #[inline(always)]
    fn top_level(&self) -> u32 {
        self.top_level
    }

    #[inline(always)]
    fn top_items_lg2(&self) -> u32 {
        self.top_items_lg2
    }

    #[inline(always)]
    fn vasz_lg2(&self) -> u32 {
        self.cfg.ias
    }

    #[inline(always)]
    fn oasz_lg2(&self) -> u32 {
        self.cfg.oas
    }

    #[inline(always)]
    fn leaf_sizes(&self, level: u32) -> u64 {
        let item = Self::item_lg2(level);
        // Blocks: level 1 and 2 with 4K, level 2 only with 16K/64K (no
        // LPA2, no 52-bit blocks).
        let leaf = match level {
            0 => true,
            1 => true,
            2 => G::LG2 == 12,
            _ => false,
        };
        if !leaf {
            return 0;
        }
        let cont = if self.cfg.contiguous {
            Self::cont_lg2(level)
        } else {
            0
        };
        let mut s = 1u64 << item;
        if cont != 0 {
            s |= 1u64 << (item + cont);
        }
        s
    }

    #[inline(always)]
    fn load(&self, level: u32, index: usize, pte: u64) -> Entry {
        if pte & VALID == 0 {
            return Entry::Empty;
        }
        let table_or_page = pte & TYPE_TABLE != 0;
        if level > 0 && table_or_page {
            return Entry::Table(self.pte_oa(pte));
        }
        if level == 0 && !table_or_page {
            // Reserved encoding: treat as nothing we wrote.
            return Entry::Empty;
        }
        let item = Self::item_lg2(level);
        let mut oa = self.pte_oa(pte);
        let mut size_lg2 = item;
        if pte & CONT != 0 {
            let c = Self::cont_lg2(level);
            // Wrapping: a corrupt group member must not panic the kernel.
            oa = oa.wrapping_sub(((index as u64) & ((1u64 << c) - 1)) << item);
            size_lg2 += c;
        }
        Entry::Leaf { oa, size_lg2 }
    }

    #[inline(always)]
    fn leaf_item(&self, level: u32, oa: u64, size_lg2: u32, item: u64, attrs: &u64) -> u64 {
        let ilg2 = Self::item_lg2(level);
        let ty = if level == 0 {
            VALID | TYPE_TABLE
        } else {
            VALID
        };
        let cont = if size_lg2 > ilg2 { CONT } else { 0 };
        self.oa_bits(oa + (item << ilg2)) | ty | cont | attrs
    }

    #[inline(always)]
    fn table_entry(&self, _level: u32, pa: u64) -> u64 {
        self.oa_bits(pa) | VALID | TYPE_TABLE
    }

    fn attrs(&self, prot: u32) -> Result<u64> {
        if prot & (PROT_READ | PROT_WRITE) == 0 {
            // No access cannot be expressed as a valid descriptor.
            return Err(EINVAL);
        }
        let mut a = match self.cfg.stage {
            Stage::S1 => {
                let mut a = NG;
                if prot & PROT_WRITE == 0 {
                    a |= AP_RDONLY;
                } else if self.cfg.dbm {
                    a |= DBM;
                }
                if prot & PROT_PRIV == 0 {
                    a |= AP_UNPRIV;
                }
                let idx = if prot & PROT_MMIO != 0 {
                    IDX_DEV
                } else if prot & PROT_CACHE != 0 {
                    IDX_CACHE
                } else {
                    IDX_NC
                };
                a | idx << ATTRINDX_SHIFT
            }
            Stage::S2 => {
                let mut a = 0;
                if prot & PROT_READ != 0 {
                    a |= S2AP_READ;
                }
                if prot & PROT_WRITE != 0 {
                    a |= S2AP_WRITE;
                    if self.cfg.dbm {
                        a |= DBM;
                    }
                }
                let memattr = if prot & PROT_MMIO != 0 {
                    MEMATTR_DEV
                } else if prot & PROT_CACHE == 0 {
                    MEMATTR_NC
                } else if self.cfg.s2fwb {
                    MEMATTR_FWB_WB
                } else {
                    MEMATTR_OIWB
                };
                a | memattr << MEMATTR_SHIFT
            }
        };
        a |= if prot & PROT_CACHE != 0 { SH_IS } else { SH_OS };
        if prot & PROT_NOEXEC != 0 {
            a |= XN;
        }
        Ok(a | AF)
    }

    fn attrs_of(&self, _level: u32, pte: u64) -> u64 {
        let a = pte & Self::ATTR_MASK & !((0xf << 12) * u64::from(self.cfg.oas == 52));
        // Undo the dirty state: leaves are built writable-dirty.
        match self.cfg.stage {
            Stage::S1 if a & DBM != 0 => a & !AP_RDONLY,
            Stage::S2 if a & DBM != 0 => a | S2AP_WRITE,
            _ => a,
        }
    }

    #[inline(always)]
    fn is_dirty(&self, pte: u64) -> bool {
        match self.cfg.stage {
            Stage::S1 => pte & (AP_RDONLY | DBM) == DBM,
            Stage::S2 => pte & (S2AP_WRITE | DBM) == (S2AP_WRITE | DBM),
        }
    }

    #[inline(always)]
    fn make_clean(&self, pte: u64) -> u64 {
        if pte & DBM == 0 {
            return pte;
        }
        match self.cfg.stage {
            Stage::S1 => pte | AP_RDONLY,
            Stage::S2 => pte & !S2AP_WRITE,
        }
    }

    #[inline(always)]
    fn make_dirty(&self, pte: u64) -> u64 {
        if pte & DBM == 0 {
            return pte;
        }
        match self.cfg.stage {
            Stage::S1 => pte & !AP_RDONLY,
            Stage::S2 => pte | S2AP_WRITE,
        }
    }
}
