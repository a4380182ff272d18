//! Tests of the VMSAv8-64 walker model (`drivers::smmuv3::walker`).
//!
//! Every table here is built by hand from the descriptor bit positions of
//! the Arm ARM (DDI0487, VMSAv8-64 descriptor formats), not with any
//! encoder, so these tests check the model against the architecture.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use iommufd_rs::drivers::smmuv3::walker::*;
use iommufd_rs::pagetable::PhysMem;
use proptest::prelude::*;

// ---- Descriptor bits, from the Arm ARM ----------------------------------

/// bits[1:0] = 11: table (levels 0..2) or page (level 3).
const TABLE: u64 = 0b11;
const PAGE: u64 = 0b11;
/// bits[1:0] = 01: block.
const BLOCK: u64 = 0b01;
/// Stage-1 AttrIndx = 1 (bits 4:2).
const ATTR1: u64 = 1 << 2;
/// AP[1]: EL0 access.
const AP_EL0: u64 = 1 << 6;
/// AP[2]: read-only.
const AP_RO: u64 = 1 << 7;
/// SH = Inner Shareable (bits 9:8).
const SH_IS: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const NG: u64 = 1 << 11;
const DBM: u64 = 1 << 51;
const CONT: u64 = 1 << 52;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
/// A software-use bit (58:55).
const SW55: u64 = 1 << 55;
const PXN_TABLE: u64 = 1 << 59;
const UXN_TABLE: u64 = 1 << 60;
const AP_TABLE_NO_EL0: u64 = 1 << 61;
const AP_TABLE_RO: u64 = 1 << 62;
/// Stage-2 S2AP[0] (read) and S2AP[1] (write).
const S2AP_R: u64 = 1 << 6;
const S2AP_W: u64 = 1 << 7;
/// Stage-2 MemAttr = 0xF (Normal WB), bits 5:2.
const S2_WB: u64 = 0xf << 2;
const S2_XN0: u64 = 1 << 53;
const S2_XN1: u64 = 1 << 54;

/// A typical stage-1 RW page/block attribute set (no type bits).
const S1_RW: u64 = NG | AF | SH_IS | AP_EL0 | ATTR1;
/// A typical stage-2 RW attribute set.
const S2_RW: u64 = AF | SH_IS | S2AP_R | S2AP_W | S2_WB;

// ---- Simulated physical memory -----------------------------------------

/// Physical memory: words in a map, present only inside allocated regions.
#[derive(Default)]
struct Mem {
    words: RefCell<BTreeMap<u64, u64>>,
    regions: RefCell<Vec<(u64, u64)>>,
    /// Number of upcoming `cmpxchg_u64` calls that fail as if raced.
    fail_cmpxchg: Cell<u32>,
    cmpxchg_calls: Cell<u32>,
}

impl Mem {
    fn new() -> Self {
        Self::default()
    }

    /// Makes `[pa, pa + len)` exist (zeroed).
    fn alloc(&self, pa: u64, len: u64) -> u64 {
        self.regions.borrow_mut().push((pa, len));
        pa
    }

    fn present(&self, pa: u64) -> bool {
        self.regions
            .borrow()
            .iter()
            .any(|&(s, l)| pa >= s && pa < s + l)
    }

    fn get(&self, pa: u64) -> u64 {
        assert!(self.present(pa), "read outside memory at {pa:#x}");
        self.words.borrow().get(&pa).copied().unwrap_or(0)
    }

    fn set(&self, pa: u64, v: u64) {
        assert!(self.present(pa), "write outside memory at {pa:#x}");
        self.words.borrow_mut().insert(pa, v);
    }

    /// Writes entry `index` of the table at `table`.
    fn put(&self, table: u64, index: u64, desc: u64) {
        self.set(table + index * 8, desc);
    }

    fn entry(&self, table: u64, index: u64) -> u64 {
        self.get(table + index * 8)
    }
}

impl PhysMem for Mem {
    fn read_u64(&self, pa: u64) -> Option<u64> {
        if !pa.is_multiple_of(8) || !self.present(pa) {
            return None;
        }
        Some(self.words.borrow().get(&pa).copied().unwrap_or(0))
    }

    fn cmpxchg_u64(&self, pa: u64, old: u64, new: u64) -> bool {
        self.cmpxchg_calls.set(self.cmpxchg_calls.get() + 1);
        if self.fail_cmpxchg.get() > 0 {
            self.fail_cmpxchg.set(self.fail_cmpxchg.get() - 1);
            return false;
        }
        if self.read_u64(pa) != Some(old) {
            return false;
        }
        self.words.borrow_mut().insert(pa, new);
        true
    }
}

// ---- Helpers -------------------------------------------------------------

/// Index of `iova` at the level whose lowest bit is `shift`, `bits` wide.
fn idx(iova: u64, shift: u32, bits: u32) -> u64 {
    (iova >> shift) & ((1 << bits) - 1)
}

fn cfg(stage: Stage, granule: Granule, ias: u32, oas: u32, ttb: u64, start: u32) -> WalkConfig {
    WalkConfig {
        stage,
        granule,
        ias,
        oas,
        ttb,
        start_level: start,
        ha: false,
        hd: false,
    }
}

fn err(kind: FaultKind, level: u32) -> Result<Translation, Fault> {
    Err(Fault { kind, level })
}

const EL0_R: Access = Access {
    write: false,
    exec: false,
    privileged: false,
};
const EL0_W: Access = Access {
    write: true,
    exec: false,
    privileged: false,
};
const EL0_X: Access = Access {
    write: false,
    exec: true,
    privileged: false,
};
const EL1_R: Access = Access {
    write: false,
    exec: false,
    privileged: true,
};
const EL1_W: Access = Access {
    write: true,
    exec: false,
    privileged: true,
};
const EL1_X: Access = Access {
    write: false,
    exec: true,
    privileged: true,
};

/// A 4 KiB-granule stage-1 walk with 48-bit input (levels 0..3): returns
/// the memory, the config and the level-3 table address, with the level-0..2
/// tables linked for `iova`.
const L0: u64 = 0x1000_0000;
const L1: u64 = 0x1000_1000;
const L2: u64 = 0x1000_2000;
const L3: u64 = 0x1000_3000;

fn s1_4k_4level(iova: u64) -> (Mem, WalkConfig) {
    let m = Mem::new();
    for t in [L0, L1, L2, L3] {
        m.alloc(t, 0x1000);
    }
    m.put(L0, idx(iova, 39, 9), L1 | TABLE);
    m.put(L1, idx(iova, 30, 9), L2 | TABLE);
    m.put(L2, idx(iova, 21, 9), L3 | TABLE);
    (m, cfg(Stage::S1, Granule::G4K, 48, 48, L0, 0))
}

/// A 4 KiB-granule stage-1 walk with 39-bit input (levels 1..3).
fn s1_4k_3level(iova: u64) -> (Mem, WalkConfig) {
    let m = Mem::new();
    for t in [L1, L2, L3] {
        m.alloc(t, 0x1000);
    }
    m.put(L1, idx(iova, 30, 9), L2 | TABLE);
    m.put(L2, idx(iova, 21, 9), L3 | TABLE);
    (m, cfg(Stage::S1, Granule::G4K, 39, 40, L1, 1))
}

// ---- Golden --------------------------------------------------------------

#[test]
fn golden_s1_4k_page() {
    let page = 0x0000_0000_8000_3F47u64;
    // nG | AF | SH=IS | AP[1] | AttrIndx=1 | page, OA 0x8000_3000.
    assert_eq!(page, 0x8000_3000 | NG | AF | SH_IS | AP_EL0 | ATTR1 | PAGE);
    let iova = 0x0000_7f12_3456_7123u64;
    let (m, c) = s1_4k_4level(iova);
    m.put(L3, idx(iova, 12, 9), page);
    let t = walk(&m, &c, iova, EL0_R).expect("EL0 read");
    assert_eq!(
        t,
        Translation {
            pa: 0x8000_3123,
            level: 3,
            block_size: 0x1000,
            contiguous: false,
            desc: page,
        }
    );
    // RW at EL0 and EL1.
    assert_eq!(walk(&m, &c, iova, EL0_W).map(|t| t.pa), Ok(0x8000_3123));
    assert_eq!(walk(&m, &c, iova, EL1_W).map(|t| t.pa), Ok(0x8000_3123));
    // EL0 may execute (UXN=0); EL1 may not: the page is writable at EL0
    // (implicit PXN).
    assert!(walk(&m, &c, iova, EL0_X).is_ok());
    assert_eq!(walk(&m, &c, iova, EL1_X), err(FaultKind::Permission, 3));
    // With PXN|UXN (0x0060_0000_0000_0000) no fetch is allowed; data is.
    m.put(L3, idx(iova, 12, 9), page | 0x0060_0000_0000_0000);
    assert_eq!(walk(&m, &c, iova, EL0_X), err(FaultKind::Permission, 3));
    assert_eq!(walk(&m, &c, iova, EL1_X), err(FaultKind::Permission, 3));
    assert_eq!(walk(&m, &c, iova, EL0_R).map(|t| t.pa), Ok(0x8000_3123));
}

// ---- Successful walks ----------------------------------------------------

#[test]
fn s1_4k_three_level_page_and_blocks() {
    let iova = 0x0000_0045_6789_a5a5u64;
    let (m, c) = s1_4k_3level(iova);
    m.put(L3, idx(iova, 12, 9), 0x1_2345_6000 | S1_RW | PAGE);
    let t = walk(&m, &c, iova, EL0_R).unwrap();
    assert_eq!((t.pa, t.level, t.block_size), (0x1_2345_65a5, 3, 0x1000));

    // 2 MiB block at level 2.
    m.put(L2, idx(iova, 21, 9), 0x4060_0000 | S1_RW | BLOCK);
    let t = walk(&m, &c, iova, EL0_R).unwrap();
    assert_eq!(
        (t.pa, t.level, t.block_size),
        (0x4060_0000 | (iova & 0x1f_ffff), 2, 0x20_0000)
    );

    // 1 GiB block at level 1.
    m.put(L1, idx(iova, 30, 9), 0xbf_c000_0000 | S1_RW | BLOCK);
    let t = walk(&m, &c, iova, EL1_R).unwrap();
    assert_eq!(
        (t.pa, t.level, t.block_size),
        (0xbf_c000_0000 | (iova & 0x3fff_ffff), 1, 0x4000_0000)
    );
}

#[test]
fn s1_4k_four_level_blocks() {
    let iova = 0x0000_8123_4567_89abu64;
    let (m, c) = s1_4k_4level(iova);
    m.put(L1, idx(iova, 30, 9), 0x8000_0000 | S1_RW | BLOCK);
    let t = walk(&m, &c, iova, EL0_R).unwrap();
    assert_eq!(t.pa, 0x8000_0000 | (iova & 0x3fff_ffff));
    assert_eq!(t.level, 1);
}

#[test]
fn s1_16k_page_and_block() {
    // 16 KiB: 11 bits/level, IAS 47 starts at level 1 (bits 46:36).
    let iova = 0x0000_5a5a_1234_5678u64 & ((1 << 47) - 1);
    assert_eq!(
        start_level_for(Granule::G16K, 47, Stage::S1, false),
        Some(1)
    );
    let m = Mem::new();
    let (t1, t2, t3) = (0x2000_0000, 0x2000_4000, 0x2000_8000);
    for t in [t1, t2, t3] {
        m.alloc(t, 0x4000);
    }
    m.put(t1, idx(iova, 36, 11), t2 | TABLE);
    m.put(t2, idx(iova, 25, 11), t3 | TABLE);
    m.put(t3, idx(iova, 14, 11), 0x3_0000_c000 | S1_RW | PAGE);
    let c = cfg(Stage::S1, Granule::G16K, 47, 48, t1, 1);
    let t = walk(&m, &c, iova, EL0_R).unwrap();
    assert_eq!(
        (t.pa, t.level, t.block_size),
        (0x3_0000_c000 | (iova & 0x3fff), 3, 0x4000)
    );

    // 32 MiB block at level 2.
    m.put(t2, idx(iova, 25, 11), 0x3_0200_0000 | S1_RW | BLOCK);
    let t = walk(&m, &c, iova, EL0_R).unwrap();
    assert_eq!(
        (t.pa, t.level, t.block_size),
        (0x3_0200_0000 | (iova & 0x1ff_ffff), 2, 1 << 25)
    );

    // No blocks at level 1 with 16 KiB (DS=0).
    m.put(t1, idx(iova, 36, 11), 0x10_0000_0000 | S1_RW | BLOCK);
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::Translation, 1));
}

#[test]
fn s1_64k_page_and_block() {
    // 64 KiB: 13 bits/level, IAS 48 starts at level 1 with 6 bits (47:42).
    assert_eq!(
        start_level_for(Granule::G64K, 48, Stage::S1, false),
        Some(1)
    );
    assert_eq!(
        start_level_for(Granule::G64K, 42, Stage::S1, false),
        Some(2)
    );
    let iova = 0x0000_9876_5432_1abcu64;
    let m = Mem::new();
    let (t1, t2, t3) = (0x4000_0000, 0x4001_0000, 0x4002_0000);
    m.alloc(t1, 64 * 8);
    m.alloc(t2, 0x1_0000);
    m.alloc(t3, 0x1_0000);
    m.put(t1, idx(iova, 42, 6), t2 | TABLE);
    m.put(t2, idx(iova, 29, 13), t3 | TABLE);
    m.put(t3, idx(iova, 16, 13), 0x55_0001_0000 | S1_RW | PAGE);
    let mut c = cfg(Stage::S1, Granule::G64K, 48, 48, t1, 1);
    let t = walk(&m, &c, iova, EL0_R).unwrap();
    assert_eq!(
        (t.pa, t.level, t.block_size),
        (0x55_0001_0000 | (iova & 0xffff), 3, 0x1_0000)
    );

    // 52-bit output: bits 15:12 are OA[51:48].
    m.put(
        t3,
        idx(iova, 16, 13),
        0x55_0001_0000 | (0x9 << 12) | S1_RW | PAGE,
    );
    c.oas = 52;
    let t = walk(&m, &c, iova, EL0_R).unwrap();
    assert_eq!(t.pa, (0x9 << 48) | 0x55_0001_0000 | (iova & 0xffff));
    c.oas = 48;
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::AddressSize, 3));

    // 512 MiB block at level 2.
    m.put(t2, idx(iova, 29, 13), 0x60_2000_0000 | S1_RW | BLOCK);
    let t = walk(&m, &c, iova, EL0_R).unwrap();
    assert_eq!(
        (t.pa, t.level, t.block_size),
        (0x60_2000_0000 | (iova & 0x1fff_ffff), 2, 1 << 29)
    );

    // No level-1 (4 TiB) block without LPA2 rules.
    m.put(t1, idx(iova, 42, 6), S1_RW | BLOCK);
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::Translation, 1));
}

#[test]
fn s1_64k_table_address_high_bits() {
    // A level-2 table above 2^48, reached through bits 15:12 of the table
    // descriptor, only with a 52-bit OAS.
    let iova = 0x1234_5678u64;
    let m = Mem::new();
    let t2 = 0x4000_0000;
    let t3 = (0x3 << 48) | 0x1_0000;
    m.alloc(t2, 0x1_0000);
    m.alloc(t3, 0x1_0000);
    m.put(t2, idx(iova, 29, 13), 0x1_0000 | (0x3 << 12) | TABLE);
    m.put(t3, idx(iova, 16, 13), 0x7_0000 | S1_RW | PAGE);
    let mut c = cfg(Stage::S1, Granule::G64K, 42, 52, t2, 2);
    assert_eq!(
        walk(&m, &c, iova, EL0_R).map(|t| t.pa),
        Ok(0x7_0000 | 0x5678)
    );
    c.oas = 48;
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::AddressSize, 2));
}

// ---- Stage 2 -------------------------------------------------------------

#[test]
fn s2_4k_concatenated_start_tables() {
    // IAS 40 starting at level 1: 10 index bits there = 2 concatenated
    // 4 KiB tables (8 KiB, 8 KiB aligned).
    assert_eq!(start_level_for(Granule::G4K, 40, Stage::S2, true), Some(1));
    assert_eq!(start_level_for(Granule::G4K, 40, Stage::S2, false), Some(0));
    assert_eq!(start_level_for(Granule::G4K, 34, Stage::S2, true), Some(2));
    assert_eq!(start_level_for(Granule::G4K, 48, Stage::S2, true), Some(0));
    assert_eq!(start_level_for(Granule::G16K, 48, Stage::S2, false), None);
    assert_eq!(start_level_for(Granule::G16K, 48, Stage::S2, true), Some(1));
    assert_eq!(start_level_for(Granule::G4K, 24, Stage::S1, false), None);

    let m = Mem::new();
    let s2ttb = 0x8000_0000u64;
    m.alloc(s2ttb, 0x2000);
    let (l2a, l2b, l3a, l3b) = (0x8001_0000, 0x8001_1000, 0x8001_2000, 0x8001_3000);
    for t in [l2a, l2b, l3a, l3b] {
        m.alloc(t, 0x1000);
    }
    let lo = 0x00_1234_5678u64; // bit 39 clear: first table
    let hi = 0xc3_8765_4321u64; // bit 39 set: second table
    assert!(idx(lo, 30, 10) < 512 && idx(hi, 30, 10) >= 512);
    m.put(s2ttb, idx(lo, 30, 10), l2a | TABLE);
    m.put(s2ttb, idx(hi, 30, 10), l2b | TABLE);
    m.put(l2a, idx(lo, 21, 9), l3a | TABLE);
    m.put(l2b, idx(hi, 21, 9), l3b | TABLE);
    m.put(l3a, idx(lo, 12, 9), 0x1000_0000 | S2_RW | PAGE);
    m.put(
        l3b,
        idx(hi, 12, 9),
        0x2000_0000 | AF | S2AP_R | S2_WB | PAGE,
    );
    // The second table really is the second 4 KiB page of the start table.
    assert_eq!(m.entry(s2ttb + 0x1000, idx(hi, 30, 9)), l2b | TABLE);

    let c = cfg(Stage::S2, Granule::G4K, 40, 40, s2ttb, 1);
    assert_eq!(walk(&m, &c, lo, EL0_W).map(|t| t.pa), Ok(0x1000_0678));
    assert_eq!(walk(&m, &c, hi, EL0_R).map(|t| t.pa), Ok(0x2000_0321));
    assert_eq!(walk(&m, &c, hi, EL0_W), err(FaultKind::Permission, 3));
    // Privilege does not matter at stage 2.
    assert_eq!(walk(&m, &c, hi, EL1_R).map(|t| t.pa), Ok(0x2000_0321));
    // Beyond the IAS.
    assert_eq!(walk(&m, &c, 1 << 40, EL0_R), err(FaultKind::Translation, 1));
}

#[test]
fn s2_config_errors() {
    let m = Mem::new();
    m.alloc(0x8000_0000, 0x2_0000);
    let ok = cfg(Stage::S2, Granule::G4K, 40, 40, 0x8000_0000, 1);
    // IAS 44 at level 1 needs 32 tables.
    let c = WalkConfig { ias: 44, ..ok };
    assert_eq!(walk(&m, &c, 0, EL0_R), err(FaultKind::Config, 1));
    // 16 tables is the maximum.
    let c = WalkConfig { ias: 43, ..ok };
    assert_eq!(walk(&m, &c, 0, EL0_R), err(FaultKind::Translation, 1));
    // Start table not aligned to its 8 KiB size.
    let c = WalkConfig {
        ttb: 0x8000_1000,
        ..ok
    };
    assert_eq!(walk(&m, &c, 0, EL0_R), err(FaultKind::Config, 1));
    // 4 KiB stage 2 cannot start at level 3 (no FEAT_TTST).
    let c = WalkConfig {
        ias: 25,
        start_level: 3,
        ..ok
    };
    assert_eq!(walk(&m, &c, 0, EL0_R), err(FaultKind::Config, 3));
    // Start level that resolves no input bit.
    let c = WalkConfig {
        ias: 39,
        start_level: 0,
        ..ok
    };
    assert_eq!(walk(&m, &c, 0, EL0_R), err(FaultKind::Config, 0));
    // Stage 1 never concatenates.
    let c = WalkConfig {
        stage: Stage::S1,
        ..ok
    };
    assert_eq!(walk(&m, &c, 0, EL0_R), err(FaultKind::Config, 1));
    // Unknown output size.
    let c = WalkConfig { oas: 39, ..ok };
    assert_eq!(walk(&m, &c, 0, EL0_R), err(FaultKind::Config, 1));
    // 64 KiB has no level 0.
    let c = cfg(Stage::S1, Granule::G64K, 48, 48, 0x8000_0000, 0);
    assert_eq!(walk(&m, &c, 0, EL0_R), err(FaultKind::Config, 0));
}

#[test]
fn s2_permissions() {
    let iova = 0x3_4567_8abcu64;
    let m = Mem::new();
    let (t1, t2, t3) = (0x1_0000, 0x2_0000, 0x3_0000);
    for t in [t1, t2, t3] {
        m.alloc(t, 0x1000);
    }
    // NSTable/APTable/XNTable bits mean nothing at stage 2.
    let ignored = PXN_TABLE | UXN_TABLE | AP_TABLE_NO_EL0 | AP_TABLE_RO;
    m.put(t1, idx(iova, 30, 9), t2 | TABLE | ignored);
    m.put(t2, idx(iova, 21, 9), t3 | TABLE | ignored);
    let c = cfg(Stage::S2, Granule::G4K, 39, 40, t1, 1);
    let set = |leaf: u64| m.put(t3, idx(iova, 12, 9), 0xab_c000_0000 | leaf | PAGE);

    set(S2_RW);
    for a in [EL0_R, EL0_W, EL0_X, EL1_R, EL1_W] {
        assert_eq!(walk(&m, &c, iova, a).map(|t| t.pa), Ok(0xab_c000_0abc));
    }
    set(S2_RW & !S2AP_R);
    assert_eq!(walk(&m, &c, iova, EL1_R), err(FaultKind::Permission, 3));
    assert!(walk(&m, &c, iova, EL1_W).is_ok(), "write-only is legal");
    assert!(walk(&m, &c, iova, EL0_X).is_ok(), "fetch checks XN only");
    set(S2_RW & !S2AP_W);
    assert_eq!(walk(&m, &c, iova, EL1_W), err(FaultKind::Permission, 3));
    for xn in [S2_XN0, S2_XN1, S2_XN0 | S2_XN1] {
        set(S2_RW | xn);
        assert_eq!(walk(&m, &c, iova, EL0_X), err(FaultKind::Permission, 3));
        assert_eq!(walk(&m, &c, iova, EL1_X), err(FaultKind::Permission, 3));
        assert!(walk(&m, &c, iova, EL1_R).is_ok());
    }
    // Bit 11 (nG at stage 1) is RES0 at stage 2.
    set(S2_RW | NG);
    assert_eq!(walk(&m, &c, iova, EL1_R), err(FaultKind::Translation, 3));
}

#[test]
fn s2_dbm_dirty_transition() {
    let iova = 0x1234_5000u64;
    let m = Mem::new();
    let (t2, t3) = (0x10_0000, 0x10_1000);
    m.alloc(t2, 0x1000);
    m.alloc(t3, 0x1000);
    m.put(t2, idx(iova, 21, 9), t3 | TABLE);
    let clean = 0x7777_7000 | AF | S2AP_R | S2_WB | DBM | PAGE;
    m.put(t3, idx(iova, 12, 9), clean);
    let mut c = cfg(Stage::S2, Granule::G4K, 30, 40, t2, 2);
    // Without HD: writable-clean is read-only.
    c.ha = true;
    assert_eq!(walk(&m, &c, iova, EL1_W), err(FaultKind::Permission, 3));
    assert_eq!(m.entry(t3, idx(iova, 12, 9)), clean);
    c.hd = true;
    // A read does not dirty.
    assert!(walk(&m, &c, iova, EL1_R).is_ok());
    assert_eq!(m.entry(t3, idx(iova, 12, 9)), clean);
    let t = walk(&m, &c, iova, EL1_W).unwrap();
    assert_eq!(t.desc, clean);
    assert_eq!(t.pa, 0x7777_7000);
    assert_eq!(m.entry(t3, idx(iova, 12, 9)), clean | S2AP_W);
}

// ---- Faults --------------------------------------------------------------

#[test]
fn translation_faults_per_level() {
    let iova = 0x0000_7f12_3456_7123u64;
    let (m, c) = s1_4k_4level(iova);
    let leaf = 0x8000_3000 | S1_RW | PAGE;
    m.put(L3, idx(iova, 12, 9), leaf);
    assert!(walk(&m, &c, iova, EL0_R).is_ok());

    // Invalid (bit 0 clear) at each level, with other bits set.
    for (level, table, shift, desc) in [
        (0, L0, 39, L1 | TABLE),
        (1, L1, 30, L2 | TABLE),
        (2, L2, 21, L3 | TABLE),
        (3, L3, 12, leaf),
    ] {
        m.put(table, idx(iova, shift, 9), desc & !1);
        assert_eq!(
            walk(&m, &c, iova, EL0_R),
            err(FaultKind::Translation, level)
        );
        m.put(table, idx(iova, shift, 9), desc);
    }
    // Level 3 with type 01 is reserved.
    m.put(L3, idx(iova, 12, 9), (leaf & !0b11) | BLOCK);
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::Translation, 3));
    m.put(L3, idx(iova, 12, 9), leaf);
    // No 512 GiB block at level 0 with 4 KiB (no LPA2).
    m.put(L0, idx(iova, 39, 9), S1_RW | BLOCK);
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::Translation, 0));
    m.put(L0, idx(iova, 39, 9), L1 | TABLE);
    assert!(walk(&m, &c, iova, EL0_R).is_ok());
}

#[test]
fn res0_bits() {
    let iova = 0x0000_7f12_3456_7123u64;
    let (m, c) = s1_4k_4level(iova);
    let leaf = 0x8000_3000 | S1_RW | PAGE;
    m.put(L3, idx(iova, 12, 9), leaf);
    for bit in [48, 49] {
        m.put(L3, idx(iova, 12, 9), leaf | 1 << bit);
        assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::Translation, 3));
        m.put(L3, idx(iova, 12, 9), leaf);
        m.put(L1, idx(iova, 30, 9), L2 | TABLE | 1 << bit);
        assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::Translation, 1));
        m.put(L1, idx(iova, 30, 9), L2 | TABLE);
    }
    // Ignored bits are ignored: software bits on the leaf, 11:2 and the
    // contiguous bit on a table.
    m.put(L3, idx(iova, 12, 9), leaf | SW55 | 1 << 58);
    assert!(walk(&m, &c, iova, EL0_R).is_ok());
    m.put(L2, idx(iova, 21, 9), L3 | TABLE | 0xffc | CONT);
    let t = walk(&m, &c, iova, EL0_R).unwrap();
    assert!(!t.contiguous);

    // 16 KiB: bits 13:12 are below the address field.
    let m = Mem::new();
    let t3 = 0x10_0000;
    m.alloc(t3, 0x4000);
    let c = cfg(Stage::S1, Granule::G16K, 25, 48, t3, 3);
    m.put(t3, idx(0x1_8000, 14, 11), 0x4000_4000 | S1_RW | PAGE);
    assert_eq!(walk(&m, &c, 0x1_8123, EL0_R).map(|t| t.pa), Ok(0x4000_4123));
    m.put(
        t3,
        idx(0x1_8000, 14, 11),
        0x4000_4000 | 1 << 12 | S1_RW | PAGE,
    );
    assert_eq!(
        walk(&m, &c, 0x1_8123, EL0_R),
        err(FaultKind::Translation, 3)
    );
}

#[test]
fn block_with_low_output_bits() {
    let iova = 0x12_3456_789au64;
    let (m, c) = s1_4k_3level(iova);
    m.put(L2, idx(iova, 21, 9), 0x4060_0000 | S1_RW | BLOCK);
    assert!(walk(&m, &c, iova, EL0_R).is_ok());
    m.put(L2, idx(iova, 21, 9), 0x4060_1000 | S1_RW | BLOCK);
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::Translation, 2));
    m.put(L1, idx(iova, 30, 9), 0x4020_0000 | S1_RW | BLOCK);
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::Translation, 1));
}

#[test]
fn iova_above_ias() {
    let iova = 0x12_3456_7000u64;
    let (m, c) = s1_4k_3level(iova);
    m.put(L3, idx(iova, 12, 9), 0x5000 | S1_RW | PAGE);
    assert!(walk(&m, &c, iova, EL0_R).is_ok());
    for bad in [iova | 1 << 39, iova | 1 << 63, iova | 1 << 55] {
        assert_eq!(walk(&m, &c, bad, EL0_R), err(FaultKind::Translation, 1));
    }
}

#[test]
fn address_size_faults() {
    let iova = 0x12_3456_7000u64;
    let (m, mut c) = s1_4k_3level(iova);
    c.oas = 40;
    m.put(L3, idx(iova, 12, 9), 0xff_ffff_f000 | S1_RW | PAGE);
    assert!(walk(&m, &c, iova, EL0_R).is_ok());
    // Leaf output address above the OAS.
    m.put(L3, idx(iova, 12, 9), 0x100_0000_0000 | S1_RW | PAGE);
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::AddressSize, 3));
    // Block output address above the OAS.
    m.put(L2, idx(iova, 21, 9), 0x800_0000_0000 | S1_RW | BLOCK);
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::AddressSize, 2));
    // Next-level table above the OAS (no memory there: checked first).
    m.put(L1, idx(iova, 30, 9), 0x100_0000_0000 | TABLE);
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::AddressSize, 1));
    // TTB above the OAS.
    let c2 = WalkConfig {
        ttb: 0x100_0000_0000,
        ..c
    };
    assert_eq!(walk(&m, &c2, iova, EL0_R), err(FaultKind::AddressSize, 1));
    // IPS 52 with 4 KiB means 48 bits.
    let c3 = cfg(Stage::S1, Granule::G4K, 48, 52, 1 << 48, 0);
    assert_eq!(walk(&m, &c3, 0, EL0_R), err(FaultKind::AddressSize, 0));
}

#[test]
fn external_abort_on_missing_table_memory() {
    let iova = 0x12_3456_7000u64;
    let (m, c) = s1_4k_3level(iova);
    m.put(L2, idx(iova, 21, 9), 0x7000_0000 | TABLE);
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::ExternalAbort, 3));
    let c2 = WalkConfig {
        ttb: 0x7000_0000,
        ..c
    };
    assert_eq!(walk(&m, &c2, iova, EL0_R), err(FaultKind::ExternalAbort, 1));
}

#[test]
fn config_faults_s1() {
    let m = Mem::new();
    m.alloc(0x1000, 0x1000);
    let ok = cfg(Stage::S1, Granule::G4K, 39, 48, 0x1000, 1);
    assert_eq!(walk(&m, &ok, 0, EL0_R), err(FaultKind::Translation, 1));
    // Wrong start level for the IAS.
    for start in [0, 2, 3, 4] {
        let c = WalkConfig {
            start_level: start,
            ..ok
        };
        assert_eq!(walk(&m, &c, 0, EL0_R), err(FaultKind::Config, start));
    }
    // IAS out of the T0SZ range.
    for ias in [0, 24, 49, 64] {
        let c = WalkConfig { ias, ..ok };
        assert_eq!(
            walk(&m, &c, 0, EL0_R).map_err(|f| f.kind),
            Err(FaultKind::Config)
        );
    }
    // Misaligned TTB (a full 4 KiB start table must be 4 KiB aligned).
    let c = WalkConfig { ttb: 0x1008, ..ok };
    assert_eq!(walk(&m, &c, 0, EL0_R), err(FaultKind::Config, 1));
    // A small start table needs only 64-byte alignment.
    let c = WalkConfig {
        ias: 32,
        ttb: 0x1040,
        ..ok
    };
    assert_eq!(walk(&m, &c, 0, EL0_R), err(FaultKind::Translation, 1));
    let c = WalkConfig {
        ias: 32,
        ttb: 0x1020,
        ..ok
    };
    assert_eq!(walk(&m, &c, 0, EL0_R), err(FaultKind::Config, 1));
}

#[test]
fn access_flag_fault_and_hardware_update() {
    let iova = 0x12_3456_7abcu64;
    let (m, mut c) = s1_4k_3level(iova);
    let young = 0x9000_0000 | (S1_RW & !AF) | PAGE;
    let slot = L3 + idx(iova, 12, 9) * 8;
    m.set(slot, young);
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::AccessFlag, 3));
    // Access flag has priority over permission.
    assert_eq!(walk(&m, &c, iova, EL1_X), err(FaultKind::AccessFlag, 3));
    m.set(slot, young | AP_RO);
    assert_eq!(walk(&m, &c, iova, EL0_W), err(FaultKind::AccessFlag, 3));
    assert_eq!(m.get(slot), young | AP_RO, "no update without HA");

    c.ha = true;
    // With HA, a faulting access leaves memory alone (model choice).
    assert_eq!(walk(&m, &c, iova, EL0_W), err(FaultKind::Permission, 3));
    assert_eq!(m.get(slot), young | AP_RO);
    // A permitted access sets AF and reports the descriptor as read.
    let t = walk(&m, &c, iova, EL0_R).unwrap();
    assert_eq!(t.desc, young | AP_RO);
    assert_eq!(t.pa, 0x9000_0abc);
    assert_eq!(m.get(slot), young | AP_RO | AF);
    // Nothing to update any more.
    let calls = m.cmpxchg_calls.get();
    assert!(walk(&m, &c, iova, EL0_R).is_ok());
    assert_eq!(m.cmpxchg_calls.get(), calls);

    // AF on a block.
    let (m, mut c) = s1_4k_3level(iova);
    c.ha = true;
    let slot = L2 + idx(iova, 21, 9) * 8;
    m.set(slot, 0x4000_0000 | (S1_RW & !AF) | BLOCK);
    assert_eq!(walk(&m, &c, iova, EL1_W).map(|t| t.level), Ok(2));
    assert_eq!(m.get(slot), 0x4000_0000 | S1_RW | BLOCK);
}

#[test]
fn access_flag_priority_over_permission() {
    let iova = 0x12_3456_7abcu64;
    let (m, c) = s1_4k_3level(iova);
    // Everything wrong: AF=0, EL1-only, read-only, XN.
    m.put(
        L3,
        idx(iova, 12, 9),
        0x9000_0000 | NG | AP_RO | PXN | UXN | PAGE,
    );
    for a in [EL0_R, EL0_W, EL0_X, EL1_W, EL1_X] {
        assert_eq!(walk(&m, &c, iova, a), err(FaultKind::AccessFlag, 3));
    }
    m.put(
        L3,
        idx(iova, 12, 9),
        0x9000_0000 | NG | AF | AP_RO | PXN | UXN | PAGE,
    );
    for a in [EL0_R, EL0_W, EL0_X, EL1_W, EL1_X] {
        assert_eq!(walk(&m, &c, iova, a), err(FaultKind::Permission, 3));
    }
    assert!(walk(&m, &c, iova, EL1_R).is_ok());
}

#[test]
fn s1_permissions() {
    let iova = 0x12_3456_7abcu64;
    let (m, c) = s1_4k_3level(iova);
    let set = |bits: u64| m.put(L3, idx(iova, 12, 9), 0x9000_0000 | NG | AF | bits | PAGE);
    let ok = |a| walk(&m, &c, iova, a).is_ok();
    // AP[2:1] = 00: EL1 RW only.
    set(0);
    assert!(!ok(EL0_R) && !ok(EL0_W) && ok(EL1_R) && ok(EL1_W));
    // EL0 may still fetch (execute-only) and EL1 too.
    assert!(ok(EL0_X) && ok(EL1_X));
    // 01: RW at both; EL1 cannot fetch (implicit PXN).
    set(AP_EL0);
    assert!(ok(EL0_R) && ok(EL0_W) && ok(EL1_R) && ok(EL1_W) && ok(EL0_X) && !ok(EL1_X));
    // 10: EL1 RO.
    set(AP_RO);
    assert!(!ok(EL0_R) && !ok(EL0_W) && ok(EL1_R) && !ok(EL1_W) && ok(EL1_X));
    // 11: RO at both.
    set(AP_RO | AP_EL0);
    assert!(ok(EL0_R) && !ok(EL0_W) && ok(EL1_R) && !ok(EL1_W) && ok(EL0_X) && ok(EL1_X));
    set(AP_RO | AP_EL0 | PXN);
    assert!(ok(EL0_X) && !ok(EL1_X) && ok(EL1_R));
    set(AP_RO | AP_EL0 | UXN);
    assert!(!ok(EL0_X) && ok(EL1_X) && ok(EL0_R));
}

#[test]
fn s1_hierarchical_table_attributes() {
    let iova = 0x12_3456_7abcu64;
    let (m, c) = s1_4k_3level(iova);
    // A page everyone could read, write and (at EL0) execute.
    m.put(L3, idx(iova, 12, 9), 0x9000_0000 | S1_RW | PAGE);
    let ok = |a| walk(&m, &c, iova, a).is_ok();
    let l1 = |bits: u64| m.put(L1, idx(iova, 30, 9), L2 | TABLE | bits);
    let l2 = |bits: u64| m.put(L2, idx(iova, 21, 9), L3 | TABLE | bits);
    l1(0);
    l2(0);
    assert!(ok(EL0_R) && ok(EL0_W) && ok(EL1_W) && ok(EL0_X));

    // APTable[1]: no write below, at any level of privilege.
    l1(AP_TABLE_RO);
    assert!(ok(EL0_R) && ok(EL1_R) && !ok(EL0_W) && !ok(EL1_W));
    assert_eq!(walk(&m, &c, iova, EL1_W), err(FaultKind::Permission, 3));
    // No longer writable at EL0, so EL1 may fetch.
    assert!(ok(EL1_X));
    l1(0);
    // APTable[0]: no EL0 access below.
    l2(AP_TABLE_NO_EL0);
    assert!(!ok(EL0_R) && !ok(EL0_W) && ok(EL1_R) && ok(EL1_W));
    assert!(ok(EL1_X), "not EL0-writable any more");
    l2(0);
    // UXNTable / PXNTable.
    l1(UXN_TABLE);
    assert!(!ok(EL0_X) && ok(EL0_R));
    l1(0);
    m.put(L3, idx(iova, 12, 9), 0x9000_0000 | S1_RW | AP_RO | PAGE);
    assert!(ok(EL1_X));
    l2(PXN_TABLE);
    assert!(!ok(EL1_X) && ok(EL0_X) && ok(EL1_R));
    // NSTable is ignored.
    l2(1 << 63);
    assert!(ok(EL1_X));
    // APTable[1] cannot be overridden by DBM.
    let c2 = WalkConfig {
        ha: true,
        hd: true,
        ..c
    };
    m.put(
        L3,
        idx(iova, 12, 9),
        0x9000_0000 | S1_RW | AP_RO | DBM | PAGE,
    );
    assert!(walk(&m, &c2, iova, EL1_W).is_ok());
    m.put(
        L3,
        idx(iova, 12, 9),
        0x9000_0000 | S1_RW | AP_RO | DBM | PAGE,
    );
    l1(AP_TABLE_RO);
    assert_eq!(walk(&m, &c2, iova, EL1_W), err(FaultKind::Permission, 3));
    assert_eq!(
        m.entry(L3, idx(iova, 12, 9)),
        0x9000_0000 | S1_RW | AP_RO | DBM | PAGE
    );
}

#[test]
fn s1_dbm_dirty_transition() {
    let iova = 0x12_3456_7abcu64;
    let (m, mut c) = s1_4k_3level(iova);
    let slot = L3 + idx(iova, 12, 9) * 8;
    let clean = 0x9000_0000 | S1_RW | AP_RO | DBM | PAGE;
    m.set(slot, clean);
    // Without HD the page is read-only.
    assert_eq!(walk(&m, &c, iova, EL0_W), err(FaultKind::Permission, 3));
    // HD has no effect without HA.
    c.hd = true;
    assert_eq!(walk(&m, &c, iova, EL0_W), err(FaultKind::Permission, 3));
    assert_eq!(m.get(slot), clean);
    c.ha = true;
    assert!(walk(&m, &c, iova, EL0_R).is_ok());
    assert_eq!(m.get(slot), clean, "a read does not dirty");
    let t = walk(&m, &c, iova, EL0_W).unwrap();
    assert_eq!((t.pa, t.desc), (0x9000_0abc, clean));
    assert_eq!(m.get(slot), clean & !AP_RO);
    // Dirty: further writes need no update.
    assert_eq!(
        walk(&m, &c, iova, EL0_W).map(|t| t.desc),
        Ok(clean & !AP_RO)
    );

    // AF and dirty state set in one update.
    m.set(slot, clean & !AF);
    let calls = m.cmpxchg_calls.get();
    assert!(walk(&m, &c, iova, EL0_W).is_ok());
    assert_eq!(m.get(slot), (clean | AF) & !AP_RO);
    assert_eq!(m.cmpxchg_calls.get(), calls + 1);

    // Read-only without DBM stays read-only.
    m.set(slot, clean & !DBM);
    assert_eq!(walk(&m, &c, iova, EL0_W), err(FaultKind::Permission, 3));
    // DBM does not grant EL0 access.
    m.set(slot, clean & !AP_EL0);
    assert_eq!(walk(&m, &c, iova, EL0_W), err(FaultKind::Permission, 3));
    assert_eq!(m.get(slot), clean & !AP_EL0);
}

#[test]
fn hardware_update_races_retry_then_give_up() {
    let iova = 0x12_3456_7abcu64;
    let (m, mut c) = s1_4k_3level(iova);
    c.ha = true;
    let slot = L3 + idx(iova, 12, 9) * 8;
    m.set(slot, 0x9000_0000 | (S1_RW & !AF) | PAGE);
    m.fail_cmpxchg.set(2);
    assert!(walk(&m, &c, iova, EL0_R).is_ok());
    assert_eq!(m.get(slot) & AF, AF);
    m.set(slot, 0x9000_0000 | (S1_RW & !AF) | PAGE);
    m.fail_cmpxchg.set(u32::MAX);
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::ExternalAbort, 3));
    assert_eq!(m.get(slot) & AF, 0);
}

// ---- Contiguous hint -----------------------------------------------------

/// A 4 KiB stage-1 level-3 group of 16 pages at `iova_base` (64 KiB
/// aligned) mapping `oa_base`.
fn contig_4k_group(iova_base: u64, oa_base: u64) -> (Mem, WalkConfig, u64) {
    let (m, c) = s1_4k_3level(iova_base);
    let first = idx(iova_base, 12, 9);
    for i in 0..16 {
        m.put(L3, first + i, (oa_base + i * 0x1000) | S1_RW | CONT | PAGE);
    }
    (m, c, first)
}

#[test]
fn contiguous_group_good() {
    let base = 0x12_3450_0000u64;
    let (m, mut c, first) = contig_4k_group(base, 0x8_8000_0000);
    for i in 0..16 {
        let t = walk(&m, &c, base + i * 0x1000 + 0x18, EL0_R).unwrap();
        assert!(t.contiguous);
        assert_eq!(
            (t.pa, t.level, t.block_size),
            (0x8_8000_0018 + i * 0x1000, 3, 0x1000)
        );
    }
    // Per-entry state hardware may change is not compared: AF (with HA),
    // the DBM dirty bit, software bits.
    c.ha = true;
    c.hd = true;
    for i in 0..16 {
        let d = (0x8_8000_0000 + i * 0x1000) | S1_RW | CONT | DBM | PAGE;
        m.put(L3, first + i, if i % 2 == 0 { d | AP_RO } else { d });
    }
    m.put(L3, first + 3, m.entry(L3, first + 3) & !AF);
    m.put(L3, first + 5, m.entry(L3, first + 5) | SW55);
    for i in 0..16 {
        assert!(walk(&m, &c, base + i * 0x1000, EL0_W).unwrap().contiguous);
    }
    // The neighbouring group (entry 16..) is not checked.
    m.put(L3, first + 16, 0);
    assert!(walk(&m, &c, base + 0xf000, EL0_R).is_ok());
}

#[test]
fn contiguous_group_corruptions() {
    let base = 0x12_3450_0000u64;
    let oa = 0x8_8000_0000u64;
    let good = |i: u64| (oa + i * 0x1000) | S1_RW | CONT | PAGE;
    let probe = |m: &Mem, c: &WalkConfig| {
        // Every valid member of the broken group refuses.
        for i in [0u64, 9, 15] {
            assert_eq!(
                walk(m, c, base + i * 0x1000, EL0_R),
                err(FaultKind::Contiguous, 3),
                "entry {i}"
            );
        }
    };
    // One entry missing.
    let (m, c, first) = contig_4k_group(base, oa);
    m.put(L3, first + 7, 0);
    probe(&m, &c);
    assert_eq!(
        walk(&m, &c, base + 0x7000, EL0_R),
        err(FaultKind::Translation, 3)
    );
    // One entry without the hint.
    let (m, c, first) = contig_4k_group(base, oa);
    m.put(L3, first + 7, good(7) & !CONT);
    probe(&m, &c);
    // One entry with different attributes (read-only, XN, AttrIndx, no
    // DBM, AP[2] differing without DBM).
    for diff in [AP_RO, UXN, 1 << 3, SH_IS ^ (0b10 << 8), NG] {
        let (m, c, first) = contig_4k_group(base, oa);
        m.put(L3, first + 7, good(7) ^ diff);
        probe(&m, &c);
    }
    // Output addresses not contiguous (two entries swapped, or a hole).
    let (m, c, first) = contig_4k_group(base, oa);
    m.put(L3, first + 7, good(8));
    m.put(L3, first + 8, good(7));
    probe(&m, &c);
    let (m, c, first) = contig_4k_group(base, oa);
    m.put(L3, first + 15, good(16));
    probe(&m, &c);
    // Group output address not aligned to 64 KiB.
    let (m, c, _) = contig_4k_group(base, oa + 0x1000);
    probe(&m, &c);
}

#[test]
fn contiguous_blocks_and_other_granules() {
    // 4 KiB level 2: 16 x 2 MiB.
    let iova = 0x12_0000_0000u64 | 0x0320_0000;
    let (m, c) = s1_4k_3level(iova);
    let first = idx(iova, 21, 9) & !15;
    for i in 0..16 {
        m.put(
            L2,
            first + i,
            (0x40_0000_0000 + (i << 21)) | S1_RW | CONT | BLOCK,
        );
    }
    let t = walk(&m, &c, iova + 0x1234, EL0_R).unwrap();
    assert!(t.contiguous);
    assert_eq!(t.level, 2);
    assert_eq!(
        t.pa,
        0x40_0000_0000 + ((idx(iova, 21, 9) - first) << 21) + 0x1234
    );
    m.put(
        L2,
        first + 2,
        (0x40_0000_0000 + (2 << 21)) | S1_RW | CONT | BLOCK | AP_RO,
    );
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::Contiguous, 2));

    // 4 KiB level 1: 16 x 1 GiB, but an IAS-32 start table has only 4
    // entries, so the group cannot exist.
    let m = Mem::new();
    m.alloc(0x1000, 0x1000);
    let c = cfg(Stage::S1, Granule::G4K, 32, 48, 0x1000, 1);
    for i in 0..4 {
        m.put(
            0x1000,
            i,
            (0x10_0000_0000 + (i << 30)) | S1_RW | CONT | BLOCK,
        );
    }
    assert_eq!(
        walk(&m, &c, 0x4000_0000, EL0_R),
        err(FaultKind::Contiguous, 1)
    );
    for i in 0..4 {
        m.put(0x1000, i, (0x10_0000_0000 + (i << 30)) | S1_RW | BLOCK);
    }
    assert!(walk(&m, &c, 0x4000_0000, EL0_R).is_ok());

    // 16 KiB level 3: 128 x 16 KiB.
    let m = Mem::new();
    let t3 = 0x10_0000;
    m.alloc(t3, 0x4000);
    let c = cfg(Stage::S1, Granule::G16K, 25, 48, t3, 3);
    for i in 0..128 {
        m.put(t3, 128 + i, (0x20_0000 + (i << 14)) | S1_RW | CONT | PAGE);
    }
    let iova = (128 + 77) << 14;
    assert!(walk(&m, &c, iova, EL0_R).unwrap().contiguous);
    m.put(t3, 128 + 127, 0);
    assert_eq!(walk(&m, &c, iova, EL0_R), err(FaultKind::Contiguous, 3));
    // 32 entries are not enough at 16 KiB level 3.
    let m = Mem::new();
    m.alloc(t3, 0x4000);
    for i in 0..32 {
        m.put(t3, i, (0x20_0000 + (i << 14)) | S1_RW | CONT | PAGE);
    }
    assert_eq!(walk(&m, &c, 5 << 14, EL0_R), err(FaultKind::Contiguous, 3));

    // 64 KiB level 3 at stage 2: 32 x 64 KiB.
    let m = Mem::new();
    let t3 = 0x100_0000;
    m.alloc(t3, 0x1_0000);
    let c = cfg(Stage::S2, Granule::G64K, 29, 40, t3, 3);
    for i in 0..32 {
        m.put(t3, 32 + i, (0x200_0000 + (i << 16)) | S2_RW | CONT | PAGE);
    }
    let t = walk(&m, &c, (40 << 16) | 0x42, EL0_W).unwrap();
    assert_eq!((t.pa, t.contiguous), (0x200_0000 + (8 << 16) + 0x42, true));
    m.put(
        t3,
        32 + 31,
        (0x200_0000 + (31 << 16)) | (S2_RW & !S2AP_W) | CONT | PAGE,
    );
    assert_eq!(walk(&m, &c, 40 << 16, EL0_R), err(FaultKind::Contiguous, 3));
}

// ---- describe ------------------------------------------------------------

#[test]
fn describe_classifies() {
    use Descriptor::*;
    let (s1, g4) = (Stage::S1, Granule::G4K);
    assert_eq!(describe(0, s1, g4, 1), Invalid);
    assert_eq!(
        describe(0x5000 | TABLE, s1, g4, 0),
        Table { next_table: 0x5000 }
    );
    assert_eq!(
        describe(0x5000 | PAGE, s1, g4, 3),
        Leaf {
            oa: 0x5000,
            size: 0x1000
        }
    );
    assert_eq!(
        describe(0x4000_0000 | BLOCK, s1, g4, 1),
        Leaf {
            oa: 0x4000_0000,
            size: 1 << 30
        }
    );
    assert_eq!(describe(0x4000_0000 | BLOCK, s1, g4, 0), Invalid);
    assert_eq!(describe(0x5000 | BLOCK, s1, g4, 3), Invalid);
    assert_eq!(
        describe(0x4000_0000 | BLOCK, s1, Granule::G64K, 2),
        Leaf {
            oa: 0x4000_0000,
            size: 1 << 29
        }
    );
    assert_eq!(describe(0x5000 | PAGE, s1, Granule::G64K, 0), Invalid);
    assert_eq!(describe(0x5000 | PAGE, s1, g4, 4), Invalid);
}

// ---- Robustness ----------------------------------------------------------

/// Memory where every aligned word below 1 MiB holds a value derived from
/// `seed`, so arbitrary descriptors are walked; `mask` keeps table pointers
/// inside that memory and drops bits 50:48 (mostly RES0) often enough.
struct Noise {
    seed: u64,
    mask: u64,
}

impl PhysMem for Noise {
    fn read_u64(&self, pa: u64) -> Option<u64> {
        if pa >= 1 << 20 {
            return None;
        }
        let mut x = pa ^ self.seed;
        x = (x ^ (x >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 32;
        // Mostly valid descriptors, so that walks go deep.
        let valid = u64::from(x & (3 << 61) != 0);
        Some((x & self.mask) | (valid & self.mask))
    }

    fn cmpxchg_u64(&self, _pa: u64, _old: u64, _new: u64) -> bool {
        true
    }
}

proptest! {
    #[test]
    fn never_panics_and_results_are_consistent(
        seed in any::<u64>(),
        narrow in any::<bool>(),
        g in 0u32..3,
        s2 in any::<bool>(),
        ias in 0u32..66,
        oas in prop::sample::select(vec![0u32, 32, 36, 40, 42, 44, 48, 52, 64]),
        ttb in prop_oneof![0u64..(1 << 20), any::<u64>()],
        start in 0u32..5,
        ha in any::<bool>(),
        hd in any::<bool>(),
        iova in any::<u64>(),
        write in any::<bool>(),
        exec in any::<bool>(),
        privileged in any::<bool>(),
    ) {
        let granule = [Granule::G4K, Granule::G16K, Granule::G64K][g as usize];
        let stage = if s2 { Stage::S2 } else { Stage::S1 };
        let mask = if narrow { 0xff18_0000_000f_ffff } else { u64::MAX };
        let mem = Noise { seed, mask };
        let c = WalkConfig { stage, granule, ias, oas, ttb, start_level: start, ha, hd };
        let iova = if narrow { iova & ((1 << 20) - 1) } else { iova };
        let r = walk(&mem, &c, iova, Access { write, exec, privileged });
        if let Ok(t) = r {
            prop_assert!(t.block_size.is_power_of_two());
            prop_assert_eq!(t.pa & (t.block_size - 1), iova & (t.block_size - 1));
            prop_assert!(t.pa < 1 << oas.min(52));
            prop_assert!(t.level <= 3);
            prop_assert!(iova < 1 << ias);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Valid configurations over noisy memory: deep walks over arbitrary
    /// descriptors never panic and successful results are self-consistent.
    #[test]
    fn valid_configs_over_noise(
        seed in any::<u64>(),
        g in 0u32..3,
        s2 in any::<bool>(),
        concat in any::<bool>(),
        ias in 25u32..53,
        oas in prop::sample::select(vec![32u32, 36, 40, 42, 44, 48, 52]),
        ha in any::<bool>(),
        hd in any::<bool>(),
        iova in 0u64..(1 << 20),
        write in any::<bool>(),
        exec in any::<bool>(),
        privileged in any::<bool>(),
    ) {
        let granule = [Granule::G4K, Granule::G16K, Granule::G64K][g as usize];
        let stage = if s2 { Stage::S2 } else { Stage::S1 };
        let Some(start) = start_level_for(granule, ias, stage, concat) else {
            return Ok(());
        };
        let mem = Noise { seed, mask: 0xff18_0000_000f_ffff };
        let c = WalkConfig { stage, granule, ias, oas, ttb: 0, start_level: start, ha, hd };
        let r = walk(&mem, &c, iova, Access { write, exec, privileged });
        prop_assert_ne!(r.map_err(|f| f.kind), Err(FaultKind::Config));
        if let Ok(t) = r {
            prop_assert_eq!(t.pa & (t.block_size - 1), iova & (t.block_size - 1));
            prop_assert!(t.pa < 1 << oas);
            prop_assert!(t.level >= start && t.level <= 3);
        }
    }
}
