//! Walker model of the ARM VMSAv8-64 translation tables, as an SMMUv3 walks
//! them for stage 1 (context descriptor `TTB0`) and stage 2 (STE `S2TTB`).
//!
//! This is the test oracle for the VMSAv8-64 encoders, so it is written from
//! the architecture (Arm ARM DDI0487, "The AArch64 Virtual Memory System
//! Architecture": descriptor formats, lookup levels, access permissions,
//! hardware management of the Access flag and dirty state, the Contiguous
//! bit; SMMUv3 IHI0070 for `CD.HA`/`CD.HD` and stage-2 `S2HA`/`S2HD`) and
//! shares no code or constants with the encoders. It reads tables only
//! through [`PhysMem`], exactly as the SMMU's table walker would, and makes
//! its Access flag and dirty-state updates with atomic compare-exchange, as
//! the hardware does.
//!
//! Levels are ARM levels: 0 is the top of a 4-level 4 KiB walk, 3 is the
//! page level. A [`Fault`] names the level of the descriptor that caused it;
//! faults found before any descriptor is read (configuration, input address
//! out of range, `TTB` out of range) name the configured start level.
//!
//! # What is modelled
//!
//! VMSAv8-64 without `FEAT_LPA2` (`DS=0`), `FEAT_TTST`, `FEAT_HAFT`,
//! `FEAT_BBM`, `FEAT_HPDS` (`CD.HAD` is 0: hierarchical controls apply),
//! `WXN`/`UWXN`, PAN, PBHA or permission indirection. The 52-bit output
//! address of `FEAT_LPA` *is* modelled for the 64 KiB granule: descriptor
//! bits 15:12 hold OA[51:48] (for both table and leaf descriptors).
//!
//! # Modelling decisions (stricter than the hardware where it is harmless)
//!
//! - Configuration: `ias` must be 25..=48 (52 with the 64 KiB granule, as
//!   `T0SZ` 12..=39 without `FEAT_TTST`); `oas` must be one of the `IPS`/`PS`
//!   sizes; `oas == 52` with a 4 or 16 KiB granule means 48 bits (the Arm ARM
//!   rule for `DS=0`). Stage 1 must start at the level `ias` implies (no
//!   concatenation). Stage 2 may start at levels 0..=2 (4 KiB) or 1..=3
//!   (16/64 KiB), i.e. the `SL0` encodings without `FEAT_TTST`/`FEAT_LPA2`,
//!   with 1..=16 concatenated start tables (none at level 0). The start
//!   table (all concatenated tables) must be aligned to its size, at least
//!   64 bytes. Anything else is [`FaultKind::Config`].
//! - Input bits at or above `ias` must be zero (no TBI): a Translation fault
//!   at the start level. A `TTB` at or above 2^`oas` is an Address size
//!   fault at the start level (the Arm ARM reports it with the level-0
//!   fault status code; we name the start level).
//! - Descriptor bits 1:0: `x0` is invalid; `01` is a block only at level 1
//!   or 2 (4 KiB granule) or level 2 (16/64 KiB granules), reserved (a
//!   Translation fault) elsewhere, including level 3; `11` is a table above
//!   level 3 and a page at level 3.
//! - RES0 bits checked (a violation is a Translation fault, where the
//!   hardware's behaviour would be UNPREDICTABLE or the bits ignored), in
//!   every table, block and page descriptor:
//!   * bits 49:48 (OA[49:48] only with `FEAT_LPA2`);
//!   * 16 KiB granule: bits 13:12 (below the 16 KiB address field);
//!   * block descriptors: the output-address bits below the block size
//!     (bits `block_shift-1 : granule_shift`, which also covers `nT`, bit 16,
//!     of `FEAT_BBM`);
//!   * stage 2 block and page descriptors: bit 11 (there is no nG at
//!     stage 2).
//!
//!   Not checked: bit 50 (GP at stage 1, RES0 at stage 2), bit 5 (NS),
//!   software bits 58:55, PBHA 62:59, bit 63, and the IGNORED fields of
//!   table descriptors (11:2, 58:51; at stage 2 also 63:59).
//! - A table address or leaf output address at or above 2^`oas` is an
//!   Address size fault at that descriptor's level.
//! - Order of checks at a leaf: Translation (type, RES0), Address size,
//!   Contiguous (our check), Access flag, Permission. Access flag has
//!   priority over Permission, as in the Arm ARM.
//! - Hardware updates: `hd` has effect only with `ha` (the Arm ARM and SMMUv3
//!   enable dirty-state management "only if HA is also 1"). The model makes
//!   one atomic update of the leaf, setting AF and/or the dirty state, and
//!   only for an access that succeeds; a faulting access leaves memory
//!   untouched (hardware is allowed, not required, to set AF for an access
//!   that then takes a Permission fault). If the compare-exchange fails the
//!   walk restarts from the top; after [`MAX_UPDATE_RETRIES`] failures it
//!   gives up with [`FaultKind::ExternalAbort`] at the leaf level.
//! - Stage-1 permissions (EL1&0 regime, the SMMU's `StreamWorld` NS-EL1):
//!   AP[1] (bit 6) grants EL0 access, AP[2] (bit 7) makes it read-only; a
//!   write to AP[2]=1 with DBM (bit 51) and `hd` is allowed and clears AP[2].
//!   APTable bit 61 removes EL0 access below, bit 62 removes write access
//!   below (DBM cannot override it); PXNTable (59) and UXNTable (60) make
//!   everything below privileged/unprivileged execute-never. NSTable (63)
//!   is ignored.
//! - Execute permission (stage 1): an instruction fetch (`exec`, not
//!   `write`) is checked against execute-never only, not against read
//!   permission, as on the PE (execute-only memory exists). Privileged
//!   fetches are also refused from memory writable at EL0 (effective AP[2:1]
//!   = 01 after APTable), the implicit-PXN rule of the EL1&0 regime;
//!   writable-clean DBM memory (AP[2]=1) does not count as writable for
//!   this rule until it is dirty.
//! - Stage-2 permissions: S2AP bit 6 = read, bit 7 = write; a write to
//!   S2AP[1]=0 with DBM and `hd` is allowed and sets it. XN is bits 54:53;
//!   any bit set forbids every instruction fetch (a simplification of
//!   `FEAT_XNX`'s per-EL encoding). Stage-2 table descriptors carry no
//!   hierarchical attributes.
//! - Contiguous hint (bit 52) on a leaf: the aligned group is 16 entries at
//!   levels 1, 2 and 3 with the 4 KiB granule (64 KiB, 32 MiB, 16 GiB), 128
//!   at level 3 and 32 at level 2 with 16 KiB (2 MiB, 1 GiB), 32 at levels 3
//!   and 2 with 64 KiB (2 MiB, 16 GiB). Every entry of the group must be a
//!   valid leaf of the same type with the hint, the group's output address
//!   must be aligned to the group size and entry *i* must map entry 0's
//!   output address + *i* × the leaf size, and all entries must have the same
//!   bits 54:0 apart from the output address, AF (bit 10; hardware sets it
//!   per entry) and, when DBM is set, the dirty-state bit 7 (AP[2] or
//!   S2AP[1]; hardware clears/sets it per entry). Bits 63:55 (software use,
//!   PBHA) are not compared. A group that does not fit in the start table
//!   is also refused. Any violation is [`FaultKind::Contiguous`], where the
//!   hardware would report a TLB conflict or behave CONSTRAINED
//!   UNPREDICTABLE. The hint on a table descriptor is ignored.

use crate::pagetable::PhysMem;

/// Translation granule (`TG0`/`S2TG`): decides the page size, the index
/// width per level and where blocks are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granule {
    /// 4 KiB pages, 9 index bits per level.
    G4K,
    /// 16 KiB pages, 11 index bits per level.
    G16K,
    /// 64 KiB pages, 13 index bits per level.
    G64K,
}

impl Granule {
    /// log2 of the page size: the lowest input bit a table index uses.
    pub const fn page_shift(self) -> u32 {
        match self {
            Granule::G4K => 12,
            Granule::G16K => 14,
            Granule::G64K => 16,
        }
    }

    /// Index bits resolved by one full table (a table is one page of 8-byte
    /// descriptors).
    pub const fn bits_per_level(self) -> u32 {
        self.page_shift() - 3
    }

    /// The lowest input-address bit indexed at `level`, i.e. log2 of the
    /// size a leaf at that level maps. `level` is clamped to 0..=3.
    pub const fn level_shift(self, level: u32) -> u32 {
        let l = if level > 3 { 3 } else { level };
        self.page_shift() + (3 - l) * self.bits_per_level()
    }

    /// The first (topmost) ARM level this granule has: 64 KiB tables have
    /// no level 0 without `FEAT_LPA2`-style 52-bit inputs, which we do not
    /// model.
    pub const fn min_level(self) -> u32 {
        match self {
            Granule::G64K => 1,
            _ => 0,
        }
    }

    /// Whether a block descriptor (`01`) is allowed at `level` (`DS=0`).
    pub const fn block_allowed(self, level: u32) -> bool {
        match self {
            Granule::G4K => level == 1 || level == 2,
            Granule::G16K | Granule::G64K => level == 2,
        }
    }

    /// Number of entries in a contiguous group of leaves at `level`, 0 if
    /// the level has no leaves.
    pub const fn contiguous_entries(self, level: u32) -> u64 {
        match (self, level) {
            (Granule::G4K, 1..=3) => 16,
            (Granule::G16K, 3) => 128,
            (Granule::G16K, 2) => 32,
            (Granule::G64K, 2..=3) => 32,
            _ => 0,
        }
    }
}

/// Translation stage: stage 1 (VA to IPA/PA, AP/PXN/UXN permissions) or
/// stage 2 (IPA to PA, S2AP/XN permissions, concatenated start tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Stage 1 (context descriptor).
    S1,
    /// Stage 2 (stream table entry).
    S2,
}

/// What the SMMU configuration structures tell the walker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkConfig {
    /// Which stage's descriptor format and permission model to apply.
    pub stage: Stage,
    /// Translation granule (`TG0` / `S2TG`).
    pub granule: Granule,
    /// Input address bits: 64 - `T0SZ` (stage 1) or 64 - `S2T0SZ`.
    pub ias: u32,
    /// Output address size in bits (`IPS` / `S2PS`): 32, 36, 40, 42, 44, 48
    /// or 52.
    pub oas: u32,
    /// Physical address of the start table (`TTB0` / `S2TTB`); for stage 2
    /// with concatenation, of the first of the concatenated tables.
    pub ttb: u64,
    /// ARM level (0..=3) the walk starts at. At stage 2 this is the level
    /// `SL0` selects; the start table then has 2^(`ias` - bits resolved
    /// below it) entries, up to 16 tables' worth.
    pub start_level: u32,
    /// Hardware Access flag update (`CD.HA` / `STE.S2HA`).
    pub ha: bool,
    /// Hardware dirty-state update through DBM (`CD.HD` / `STE.S2HD`);
    /// effective only together with `ha`.
    pub hd: bool,
}

/// The access being translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// A write (otherwise a read).
    pub write: bool,
    /// An instruction fetch (checked against execute-never, not against
    /// read permission).
    pub exec: bool,
    /// Stage 1: a privileged (EL1) access; false means unprivileged (EL0).
    /// Ignored at stage 2.
    pub privileged: bool,
}

impl Access {
    /// A data read.
    pub const fn read(privileged: bool) -> Self {
        Access {
            write: false,
            exec: false,
            privileged,
        }
    }

    /// A data write.
    pub const fn write(privileged: bool) -> Self {
        Access {
            write: true,
            exec: false,
            privileged,
        }
    }

    /// An instruction fetch.
    pub const fn exec(privileged: bool) -> Self {
        Access {
            write: false,
            exec: true,
            privileged,
        }
    }
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// Output address of the access.
    pub pa: u64,
    /// ARM level of the leaf descriptor.
    pub level: u32,
    /// Size mapped by the leaf (page or block), not by its contiguous
    /// group.
    pub block_size: u64,
    /// The leaf had the Contiguous hint and its group passed the checks.
    pub contiguous: bool,
    /// The leaf descriptor as read, before any hardware update.
    pub desc: u64,
}

/// Why a translation failed, in the Arm ARM's fault classes plus our own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Invalid or reserved descriptor, RES0 bit set, or input address out
    /// of range.
    Translation,
    /// A table or output address (or `TTB`) at or above 2^`oas`.
    AddressSize,
    /// AF is 0 and hardware Access flag update is off.
    AccessFlag,
    /// The access is not permitted.
    Permission,
    /// A broken contiguous group (stricter than hardware, which would
    /// report a TLB conflict or behave unpredictably).
    Contiguous,
    /// Table memory missing (`read_u64` returned `None`), or a hardware
    /// update kept failing.
    ExternalAbort,
    /// The [`WalkConfig`] is not one the hardware accepts.
    Config,
}

/// A translation fault and the level it is reported at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The fault class.
    pub kind: FaultKind,
    /// ARM level of the descriptor that caused it (the start level for
    /// faults found before the first descriptor is read).
    pub level: u32,
}

/// A descriptor classified on its own, without walking or permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Descriptor {
    /// Invalid, reserved encoding, or a checked RES0 bit set: the walker
    /// takes a Translation fault on it.
    Invalid,
    /// A table descriptor pointing at the next-level table.
    Table {
        /// Physical address of the next-level table.
        next_table: u64,
    },
    /// A block or page descriptor.
    Leaf {
        /// Output address of the block or page.
        oa: u64,
        /// Size it maps.
        size: u64,
    },
}

/// How many times a walk restarts after a failed hardware update before
/// giving up; bounded so that the model always terminates.
pub const MAX_UPDATE_RETRIES: u32 = 8;

// Descriptor bits (Arm ARM, VMSAv8-64 descriptor formats).
const VALID: u64 = 1 << 0;
const TYPE_TABLE_OR_PAGE: u64 = 1 << 1;
/// Stage 1 AP[1] / stage 2 S2AP[0]: EL0 access / read allowed.
const AP1_OR_S2AP_R: u64 = 1 << 6;
/// Stage 1 AP[2] / stage 2 S2AP[1]: read-only / write allowed.
const AP2_OR_S2AP_W: u64 = 1 << 7;
const AF: u64 = 1 << 10;
/// nG at stage 1; RES0 at stage 2.
const BIT11: u64 = 1 << 11;
/// 16 KiB granule: below the address field, RES0.
const G16K_LOW_RES0: u64 = 0b11 << 12;
/// 64 KiB granule: OA[51:48].
const G64K_OA_HI: u64 = 0xf << 12;
/// OA[49:48] only with `FEAT_LPA2`: RES0 here.
const RES0_49_48: u64 = 0b11 << 48;
const DBM: u64 = 1 << 51;
const CONTIGUOUS: u64 = 1 << 52;
/// Stage 1 PXN / stage 2 XN[0].
const PXN_OR_XN0: u64 = 1 << 53;
/// Stage 1 UXN / stage 2 XN[1].
const UXN_OR_XN1: u64 = 1 << 54;
const PXN_TABLE: u64 = 1 << 59;
const UXN_TABLE: u64 = 1 << 60;
const AP_TABLE_NO_EL0: u64 = 1 << 61;
const AP_TABLE_NO_WRITE: u64 = 1 << 62;
/// Bits compared across a contiguous group (the rest are software/PBHA).
const CONTIG_COMPARED: u64 = (1 << 55) - 1;

/// All ones below bit `bits` (all ones for 64 or more).
const fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// The address field of a table, block or page descriptor: bits
/// 47:granule plus, for 64 KiB, OA[51:48] from bits 15:12.
const fn address_field(desc: u64, granule: Granule) -> u64 {
    let mut a = desc & low_mask(48) & !low_mask(granule.page_shift());
    if let Granule::G64K = granule {
        a |= ((desc & G64K_OA_HI) >> 12) << 48;
    }
    a
}

/// The descriptor bits that hold the address field, for comparisons that
/// must ignore it.
const fn address_bits(granule: Granule) -> u64 {
    let mut m = low_mask(48) & !low_mask(granule.page_shift());
    if let Granule::G64K = granule {
        m |= G64K_OA_HI;
    }
    m
}

/// Classifies `desc` found at `level`: the type encoding, the block rules
/// of the granule, and the RES0 checks listed in the module docs. Useful on
/// its own to inspect tables without walking them.
pub fn describe(desc: u64, stage: Stage, granule: Granule, level: u32) -> Descriptor {
    if level > 3 || level < granule.min_level() || desc & VALID == 0 {
        return Descriptor::Invalid;
    }
    if desc & RES0_49_48 != 0 {
        return Descriptor::Invalid;
    }
    if granule == Granule::G16K && desc & G16K_LOW_RES0 != 0 {
        return Descriptor::Invalid;
    }
    let addr = address_field(desc, granule);
    let type_bit = desc & TYPE_TABLE_OR_PAGE != 0;
    if level < 3 && type_bit {
        return Descriptor::Table { next_table: addr };
    }
    // A leaf from here on: a page (11 at level 3) or a block (01 above).
    if level == 3 && !type_bit {
        return Descriptor::Invalid;
    }
    if level < 3 && !granule.block_allowed(level) {
        return Descriptor::Invalid;
    }
    let shift = granule.level_shift(level);
    if addr & low_mask(shift) != 0 {
        return Descriptor::Invalid;
    }
    if stage == Stage::S2 && desc & BIT11 != 0 {
        return Descriptor::Invalid;
    }
    Descriptor::Leaf {
        oa: addr,
        size: 1u64 << shift,
    }
}

/// The start level an SMMU driver would program for `ias` input bits:
/// the level whose index covers the top bits with one table (stage 1, or
/// stage 2 without `concat`), or at stage 2 with `concat` the deepest
/// allowed level reachable with at most 16 concatenated tables (what KVM
/// chooses: fewer levels). `None` if no valid configuration exists.
pub fn start_level_for(granule: Granule, ias: u32, stage: Stage, concat: bool) -> Option<u32> {
    let bpl = granule.bits_per_level();
    if !ias_ok(granule, ias) {
        return None;
    }
    let mut level = 3u32;
    loop {
        if let Some(w) = ias.checked_sub(granule.level_shift(level)) {
            let extra = if stage == Stage::S2 && concat && level > 0 {
                4
            } else {
                0
            };
            if w >= 1 && w <= bpl + extra && level_ok(granule, stage, level) {
                return Some(level);
            }
        }
        if level <= granule.min_level() {
            return None;
        }
        level -= 1;
    }
}

/// `ias` within the `T0SZ` range (12..=39, or 16..=39 without 52-bit VAs).
const fn ias_ok(granule: Granule, ias: u32) -> bool {
    let max = match granule {
        Granule::G64K => 52,
        _ => 48,
    };
    ias >= 25 && ias <= max
}

/// Whether a walk of `stage` may start at `level` (the `SL0` encodings at
/// stage 2; stage 1 is checked through the index width).
const fn level_ok(granule: Granule, stage: Stage, level: u32) -> bool {
    if level > 3 || level < granule.min_level() {
        return false;
    }
    match (stage, granule) {
        (Stage::S1, _) => true,
        (Stage::S2, Granule::G4K) => level <= 2,
        (Stage::S2, _) => level >= 1,
    }
}

/// The validated shape of a walk.
struct Geometry {
    /// Effective output address size.
    oas: u32,
    /// Index bits of the start table (including concatenation).
    start_bits: u32,
}

fn fault(kind: FaultKind, level: u32) -> Fault {
    Fault { kind, level }
}

fn validate(cfg: &WalkConfig) -> Result<Geometry, Fault> {
    let cfg_err = fault(FaultKind::Config, cfg.start_level);
    let g = cfg.granule;
    if !ias_ok(g, cfg.ias) || !level_ok(g, cfg.stage, cfg.start_level) {
        return Err(cfg_err);
    }
    let oas = match cfg.oas {
        32 | 36 | 40 | 42 | 44 | 48 => cfg.oas,
        52 if g == Granule::G64K => 52,
        52 => 48,
        _ => return Err(cfg_err),
    };
    let bpl = g.bits_per_level();
    let w = match cfg.ias.checked_sub(g.level_shift(cfg.start_level)) {
        Some(w) if w >= 1 => w,
        _ => return Err(cfg_err),
    };
    let max_w = match cfg.stage {
        Stage::S2 if cfg.start_level > 0 => bpl + 4,
        _ => bpl,
    };
    if w > max_w {
        return Err(cfg_err);
    }
    let align = low_mask(w + 3).max(63);
    if cfg.ttb & align != 0 {
        return Err(cfg_err);
    }
    Ok(Geometry { oas, start_bits: w })
}

/// Restrictions collected from stage-1 table descriptors on the way down.
#[derive(Default, Clone, Copy)]
struct Hier {
    no_el0: bool,
    no_write: bool,
    pxn: bool,
    uxn: bool,
}

/// Outcome of one pass down the tables.
enum Pass {
    Done(Result<Translation, Fault>),
    /// A hardware update lost a race; the level of the leaf.
    Retry(u32),
}

/// Walks the tables for `iova` and checks `access` the way the SMMU's
/// table walker would (see the module docs for the exact rules and where
/// the model is stricter). With `ha`/`hd` it updates the leaf in `mem`.
pub fn walk(
    mem: &impl PhysMem,
    cfg: &WalkConfig,
    iova: u64,
    access: Access,
) -> Result<Translation, Fault> {
    let geo = validate(cfg)?;
    let start = cfg.start_level;
    if iova & !low_mask(cfg.ias) != 0 {
        return Err(fault(FaultKind::Translation, start));
    }
    if cfg.ttb & !low_mask(geo.oas) != 0 {
        return Err(fault(FaultKind::AddressSize, start));
    }
    let mut last = start;
    for _ in 0..MAX_UPDATE_RETRIES {
        match walk_once(mem, cfg, &geo, iova, access) {
            Pass::Done(r) => return r,
            Pass::Retry(level) => last = level,
        }
    }
    Err(fault(FaultKind::ExternalAbort, last))
}

fn read(mem: &impl PhysMem, pa: u64, level: u32) -> Result<u64, Fault> {
    mem.read_u64(pa)
        .ok_or(fault(FaultKind::ExternalAbort, level))
}

fn walk_once(
    mem: &impl PhysMem,
    cfg: &WalkConfig,
    geo: &Geometry,
    iova: u64,
    access: Access,
) -> Pass {
    let g = cfg.granule;
    let mut table = cfg.ttb;
    let mut level = cfg.start_level;
    let mut bits = geo.start_bits;
    let mut hier = Hier::default();
    while level <= 3 {
        let index = (iova >> g.level_shift(level)) & low_mask(bits);
        let desc = match read(mem, table.wrapping_add(index.wrapping_mul(8)), level) {
            Ok(d) => d,
            Err(f) => return Pass::Done(Err(f)),
        };
        match describe(desc, cfg.stage, g, level) {
            Descriptor::Invalid => {
                return Pass::Done(Err(fault(FaultKind::Translation, level)));
            }
            Descriptor::Table { next_table } => {
                if next_table & !low_mask(geo.oas) != 0 {
                    return Pass::Done(Err(fault(FaultKind::AddressSize, level)));
                }
                if cfg.stage == Stage::S1 {
                    hier.no_el0 |= desc & AP_TABLE_NO_EL0 != 0;
                    hier.no_write |= desc & AP_TABLE_NO_WRITE != 0;
                    hier.pxn |= desc & PXN_TABLE != 0;
                    hier.uxn |= desc & UXN_TABLE != 0;
                }
                table = next_table;
                level += 1;
                bits = g.bits_per_level();
            }
            Descriptor::Leaf { oa, size } => {
                let leaf = Leaf {
                    table,
                    index,
                    bits,
                    level,
                    desc,
                    oa,
                    size,
                };
                return finish_leaf(mem, cfg, geo, &leaf, hier, iova, access);
            }
        }
    }
    // Unreachable: `describe` returns no table at level 3.
    Pass::Done(Err(fault(FaultKind::Translation, 3)))
}

/// A leaf descriptor and where it was found.
struct Leaf {
    /// Physical address of the table holding it.
    table: u64,
    /// Its index in that table.
    index: u64,
    /// Index bits of that table.
    bits: u32,
    level: u32,
    desc: u64,
    oa: u64,
    size: u64,
}

fn finish_leaf(
    mem: &impl PhysMem,
    cfg: &WalkConfig,
    geo: &Geometry,
    leaf: &Leaf,
    hier: Hier,
    iova: u64,
    access: Access,
) -> Pass {
    let level = leaf.level;
    let desc = leaf.desc;
    let err = |kind| Pass::Done(Err(fault(kind, level)));
    if leaf.oa & !low_mask(geo.oas) != 0 {
        return err(FaultKind::AddressSize);
    }
    let contiguous = desc & CONTIGUOUS != 0;
    if contiguous {
        if let Err(f) = check_contiguous(mem, cfg, leaf) {
            return Pass::Done(Err(f));
        }
    }
    let ha = cfg.ha;
    let hd = cfg.hd && cfg.ha;
    if desc & AF == 0 && !ha {
        return err(FaultKind::AccessFlag);
    }
    let dbm = desc & DBM != 0;
    let r_bit = desc & AP1_OR_S2AP_R != 0;
    let w_bit = desc & AP2_OR_S2AP_W != 0;
    // `dirty`: the write needs the hardware dirty-state update.
    let mut dirty = false;
    match cfg.stage {
        Stage::S1 => {
            let el0 = r_bit && !hier.no_el0;
            let read_only = w_bit || hier.no_write;
            // Data accesses need AP permission; a fetch needs only !XN.
            let data = access.write || !access.exec;
            if data && !access.privileged && !el0 {
                return err(FaultKind::Permission);
            }
            if access.write {
                if hier.no_write {
                    return err(FaultKind::Permission);
                }
                if w_bit {
                    if hd && dbm {
                        dirty = true;
                    } else {
                        return err(FaultKind::Permission);
                    }
                }
            }
            if access.exec {
                let xn = if access.privileged {
                    // Implicit PXN: writable at EL0 means never privileged-executable.
                    desc & PXN_OR_XN0 != 0 || hier.pxn || (el0 && !read_only)
                } else {
                    desc & UXN_OR_XN1 != 0 || hier.uxn
                };
                if xn {
                    return err(FaultKind::Permission);
                }
            }
        }
        Stage::S2 => {
            if access.write {
                if !w_bit {
                    if hd && dbm {
                        dirty = true;
                    } else {
                        return err(FaultKind::Permission);
                    }
                }
            } else if !access.exec && !r_bit {
                return err(FaultKind::Permission);
            }
            if access.exec && desc & (PXN_OR_XN0 | UXN_OR_XN1) != 0 {
                return err(FaultKind::Permission);
            }
        }
    }
    let mut new = desc | AF;
    if dirty {
        new = match cfg.stage {
            Stage::S1 => new & !AP2_OR_S2AP_W,
            Stage::S2 => new | AP2_OR_S2AP_W,
        };
    }
    if new != desc {
        let pa = leaf.table.wrapping_add(leaf.index.wrapping_mul(8));
        if !mem.cmpxchg_u64(pa, desc, new) {
            return Pass::Retry(level);
        }
    }
    Pass::Done(Ok(Translation {
        pa: leaf.oa | (iova & (leaf.size - 1)),
        level,
        block_size: leaf.size,
        contiguous,
        desc,
    }))
}

/// Checks the aligned contiguous group around `leaf` (rules in the module
/// docs).
fn check_contiguous(mem: &impl PhysMem, cfg: &WalkConfig, leaf: &Leaf) -> Result<(), Fault> {
    let level = leaf.level;
    let bad = fault(FaultKind::Contiguous, level);
    let g = cfg.granule;
    let n = g.contiguous_entries(level);
    if n == 0 || n > low_mask(leaf.bits).wrapping_add(1) {
        return Err(bad);
    }
    let group_bytes = n.checked_mul(leaf.size).ok_or(bad)?;
    let first = leaf.index & !(n - 1);
    let mut ignore = address_bits(g) | AF;
    if leaf.desc & DBM != 0 {
        ignore |= AP2_OR_S2AP_W;
    }
    let want = leaf.desc & CONTIG_COMPARED & !ignore;
    let mut base = 0u64;
    for i in 0..n {
        let pa = leaf
            .table
            .wrapping_add(first.wrapping_add(i).wrapping_mul(8));
        let d = read(mem, pa, level)?;
        let oa = match describe(d, cfg.stage, g, level) {
            Descriptor::Leaf { oa, .. } => oa,
            _ => return Err(bad),
        };
        if d & CONTIG_COMPARED & !ignore != want {
            return Err(bad);
        }
        if i == 0 {
            if oa & (group_bytes - 1) != 0 {
                return Err(bad);
            }
            base = oa;
        } else if Some(oa) != i.checked_mul(leaf.size).and_then(|o| base.checked_add(o)) {
            return Err(bad);
        }
    }
    Ok(())
}
