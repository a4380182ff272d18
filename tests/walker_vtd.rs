//! Host tests of the VT-d walker models (`drivers::vtd::walker`), the
//! oracle for the VT-d page-table encoders. Every table here is written by
//! hand from the bit positions in the VT-d specification (second-stage
//! entries) and the SDM (x86-64 paging, used as VT-d first stage), never
//! through an encoder.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use iommufd_rs::drivers::vtd::walker::*;
use iommufd_rs::pagetable::PhysMem;

// Second-stage entry bits (VT-d "Second-Stage Paging Entries").
const SS_R: u64 = 1 << 0;
const SS_W: u64 = 1 << 1;
const SS_X: u64 = 1 << 2;
const SS_EMT0: u64 = 1 << 3;
const SS_IPAT: u64 = 1 << 6;
const SS_PS: u64 = 1 << 7;
const SS_A: u64 = 1 << 8;
const SS_D: u64 = 1 << 9;
const SS_IGN10: u64 = 1 << 10;
const SS_SNP: u64 = 1 << 11;
const SS_TM: u64 = 1 << 62;
const SS_IGN63: u64 = 1 << 63;
const SS_RW: u64 = SS_R | SS_W;

// First-stage entry bits (SDM "4-Level Paging and 5-Level Paging").
const FS_P: u64 = 1 << 0;
const FS_RW: u64 = 1 << 1;
const FS_US: u64 = 1 << 2;
const FS_PCD: u64 = 1 << 4;
const FS_A: u64 = 1 << 5;
const FS_D: u64 = 1 << 6;
const FS_PS: u64 = 1 << 7;
const FS_PAT_4K: u64 = 1 << 7;
const FS_G: u64 = 1 << 8;
const FS_IGN9: u64 = 1 << 9;
const FS_IGN11: u64 = 1 << 11;
const FS_PAT_LARGE: u64 = 1 << 12;
const FS_XD: u64 = 1 << 63;
/// What Linux writes into first-stage table entries: P|RW|U|A.
const FS_TABLE: u64 = FS_P | FS_RW | FS_US | FS_A;

const K4: u64 = 1 << 12;
const M2: u64 = 1 << 21;
const G1: u64 = 1 << 30;

/// Table pages are handed out from here, one 4 KiB page per level.
const ROOT: u64 = 0x10_0000;

/// Simulated physical memory: only words that were added exist.
#[derive(Default)]
struct Mem {
    words: RefCell<BTreeMap<u64, u64>>,
    /// Number of upcoming compare-exchanges to fail regardless of value.
    fail_cas: Cell<u32>,
    /// Successful compare-exchanges so far.
    cas_done: Cell<u32>,
}

impl PhysMem for Mem {
    fn read_u64(&self, pa: u64) -> Option<u64> {
        assert_eq!(pa % 8, 0, "unaligned read at {pa:#x}");
        self.words.borrow().get(&pa).copied()
    }

    fn cmpxchg_u64(&self, pa: u64, old: u64, new: u64) -> bool {
        if self.fail_cas.get() > 0 {
            self.fail_cas.set(self.fail_cas.get() - 1);
            return false;
        }
        let mut words = self.words.borrow_mut();
        match words.get_mut(&pa) {
            Some(w) if *w == old => {
                *w = new;
                self.cas_done.set(self.cas_done.get() + 1);
                true
            }
            _ => false,
        }
    }
}

impl Mem {
    /// Adds a zeroed (all not-present) 4 KiB table page at `pa`.
    fn add_table(&self, pa: u64) {
        let mut words = self.words.borrow_mut();
        for i in 0..512 {
            words.insert(pa + i * 8, 0);
        }
    }

    fn set(&self, pa: u64, v: u64) {
        assert!(self.words.borrow().contains_key(&pa), "no table at {pa:#x}");
        self.words.borrow_mut().insert(pa, v);
    }

    fn get(&self, pa: u64) -> u64 {
        self.words.borrow()[&pa]
    }

    fn snapshot(&self) -> BTreeMap<u64, u64> {
        self.words.borrow().clone()
    }
}

/// Index of `iova` in a table at `level` (0 = PTE): 9 bits from 12 + 9*level.
fn idx(iova: u64, level: u32) -> u64 {
    (iova >> (12 + 9 * level)) & 0x1ff
}

/// Address of the table page used for `level` in a `levels`-deep walk.
fn table_at(levels: u32, level: u32) -> u64 {
    ROOT + u64::from(levels - 1 - level) * K4
}

/// Builds the walk for `iova`: one table per level from `levels - 1` down
/// to `leaf_level`, each table entry `table_bits | next table`, then `leaf`
/// in the `leaf_level` table. Returns the address of the entry used at each
/// level (indexed by level; unused levels 0).
fn build(
    mem: &Mem,
    levels: u32,
    iova: u64,
    leaf_level: u32,
    table_bits: u64,
    leaf: u64,
) -> [u64; 5] {
    let mut entries = [0u64; 5];
    for level in (leaf_level..levels).rev() {
        let table = table_at(levels, level);
        mem.add_table(table);
        let pa = table + idx(iova, level) * 8;
        entries[level as usize] = pa;
        if level == leaf_level {
            mem.set(pa, leaf);
        } else {
            mem.set(pa, table_at(levels, level - 1) | table_bits);
        }
    }
    entries
}

fn ss_cfg(levels: u32) -> SsConfig {
    SsConfig {
        levels,
        root: ROOT,
        haw: 48,
        large_pages: 0b11,
        ssade: false,
        snoop_allowed: false,
    }
}

fn fs_cfg(levels: u32) -> FsConfig {
    FsConfig {
        levels,
        root: ROOT,
        haw: 48,
        gb_pages: true,
        wpe: false,
        sre: true,
    }
}

const READ: Access = Access {
    write: false,
    exec: false,
    supervisor: false,
};
const WRITE: Access = Access {
    write: true,
    exec: false,
    supervisor: false,
};
const SUP_READ: Access = Access {
    write: false,
    exec: false,
    supervisor: true,
};
const SUP_WRITE: Access = Access {
    write: true,
    exec: false,
    supervisor: true,
};

fn err(kind: FaultKind, level: u32) -> Result<Translation, Fault> {
    Err(Fault { kind, level })
}

// ---------------------------------------------------------------------------
// Second stage
// ---------------------------------------------------------------------------

#[test]
fn ss_golden_4k_read_write() {
    let mem = Mem::default();
    let iova = 0x0000_1234_5678_9000;
    // 4-level walk written entry by entry: PML4E -> PDPE -> PDE -> PTE.
    for t in [0x10_0000, 0x10_1000, 0x10_2000, 0x10_3000] {
        mem.add_table(t);
    }
    mem.set(0x10_0000 + idx(iova, 3) * 8, 0x10_1003);
    mem.set(0x10_1000 + idx(iova, 2) * 8, 0x10_2003);
    mem.set(0x10_2000 + idx(iova, 1) * 8, 0x10_3003);
    mem.set(0x10_3000 + idx(iova, 0) * 8, 0x8000_3003);

    let t = walk_ss(&mem, &ss_cfg(4), iova + 0x10, READ).unwrap();
    assert_eq!(
        t,
        Translation {
            pa: 0x8000_3010,
            level: 0,
            page_size: K4,
            read: true,
            write: true,
            snoop: false,
            desc: 0x8000_3003,
        }
    );
    let t = walk_ss(&mem, &ss_cfg(4), iova + 0x10, WRITE).unwrap();
    assert_eq!(t.pa, 0x8000_3010);
    // The next page is not mapped.
    assert_eq!(
        walk_ss(&mem, &ss_cfg(4), iova + K4, READ),
        err(FaultKind::NotPresent, 0)
    );
}

#[test]
fn ss_three_four_five_levels() {
    for (levels, iova) in [
        (3u32, 0x0000_0040_8060_1000u64),
        (4, 0x0000_8040_8060_1000),
        (5, 0x0100_8040_8060_1000),
    ] {
        let mem = Mem::default();
        build(&mem, levels, iova, 0, SS_RW, 0x1_2345_6000 | SS_RW);
        let t = walk_ss(&mem, &ss_cfg(levels), iova | 0xabc, WRITE)
            .unwrap_or_else(|f| panic!("{levels} levels: {f:?}"));
        assert_eq!(t.pa, 0x1_2345_6abc, "{levels} levels");
        assert_eq!((t.level, t.page_size), (0, K4));
        // The top-level index matters: a neighbouring top entry is empty.
        let other = iova ^ (1 << (12 + 9 * (levels - 1)));
        assert_eq!(
            walk_ss(&mem, &ss_cfg(levels), other, READ),
            err(FaultKind::NotPresent, levels - 1)
        );
    }
}

#[test]
fn ss_address_width() {
    let mem = Mem::default();
    for levels in 3..=5u32 {
        let aw = 12 + 9 * levels;
        build(&mem, levels, 0, 0, SS_RW, 0x5000 | SS_RW);
        assert!(walk_ss(&mem, &ss_cfg(levels), (1 << aw) - 1 - 0xfff, READ)
            .is_err_and(|f| f.kind == FaultKind::NotPresent));
        assert_eq!(
            walk_ss(&mem, &ss_cfg(levels), 1 << aw, READ),
            err(FaultKind::AddressWidth, levels - 1)
        );
        assert_eq!(
            walk_ss(&mem, &ss_cfg(levels), u64::MAX, READ),
            err(FaultKind::AddressWidth, levels - 1)
        );
    }
}

#[test]
fn ss_2m_and_1g_leaves() {
    let mem = Mem::default();
    let iova = 0x0000_0080_4000_0000 | 0x1234_5678;
    build(&mem, 4, iova, 1, SS_RW, 0x4_0000_0000 | SS_PS | SS_R);
    let t = walk_ss(&mem, &ss_cfg(4), iova, READ).unwrap();
    assert_eq!(t.pa, 0x4_0000_0000 | (iova & (M2 - 1)));
    assert_eq!(
        (t.level, t.page_size, t.read, t.write),
        (1, M2, true, false)
    );

    let mem = Mem::default();
    build(&mem, 4, iova, 2, SS_RW, 0x4_0000_0000 | SS_PS | SS_RW);
    let t = walk_ss(&mem, &ss_cfg(4), iova, WRITE).unwrap();
    assert_eq!(t.pa, 0x4_0000_0000 | (iova & (G1 - 1)));
    assert_eq!((t.level, t.page_size), (2, G1));

    // A 3-level table whose top-level (PDPE) entry is a 1 GiB leaf.
    let mem = Mem::default();
    let iova = 0x0000_0040_0000_0000 | 0x3fff_fff8;
    build(&mem, 3, iova, 2, SS_RW, 0xc000_0000 | SS_PS | SS_RW);
    let t = walk_ss(&mem, &ss_cfg(3), iova, READ).unwrap();
    assert_eq!((t.pa, t.level), (0xffff_fff8, 2));
}

#[test]
fn ss_large_pages_need_sllps() {
    let iova = 0x0000_0080_4000_0000;
    let m2 = Mem::default();
    build(&m2, 4, iova, 1, SS_RW, 0x4_0000_0000 | SS_PS | SS_RW);
    let g1 = Mem::default();
    build(&g1, 4, iova, 2, SS_RW, 0x4_0000_0000 | SS_PS | SS_RW);

    let with = |large_pages| SsConfig {
        large_pages,
        ..ss_cfg(4)
    };
    assert_eq!(
        walk_ss(&m2, &with(0), iova, READ),
        err(FaultKind::Reserved, 1)
    );
    assert_eq!(
        walk_ss(&g1, &with(0), iova, READ),
        err(FaultKind::Reserved, 2)
    );
    // 2M only.
    assert!(walk_ss(&m2, &with(0b01), iova, READ).is_ok());
    assert_eq!(
        walk_ss(&g1, &with(0b01), iova, READ),
        err(FaultKind::Reserved, 2)
    );
    // 1G only.
    assert_eq!(
        walk_ss(&m2, &with(0b10), iova, READ),
        err(FaultKind::Reserved, 1)
    );
    assert!(walk_ss(&g1, &with(0b10), iova, READ).is_ok());
}

#[test]
fn ss_permissions_are_anded() {
    let iova = 0x0000_0000_4020_3000;
    // Every table entry lacks W; the leaf is R|W.
    let mem = Mem::default();
    build(&mem, 4, iova, 0, SS_R, 0x7000 | SS_RW);
    let t = walk_ss(&mem, &ss_cfg(4), iova, READ).unwrap();
    assert!(t.read && !t.write, "{t:?}");
    assert_eq!(
        walk_ss(&mem, &ss_cfg(4), iova, WRITE),
        err(FaultKind::Permission, 3)
    );

    // Only the PDE lacks W.
    let mem = Mem::default();
    let e = build(&mem, 4, iova, 0, SS_RW, 0x7000 | SS_RW);
    mem.set(e[1], table_at(4, 0) | SS_R);
    assert_eq!(
        walk_ss(&mem, &ss_cfg(4), iova, WRITE),
        err(FaultKind::Permission, 1)
    );
    // Write-only PDPE: reads fault there, writes pass.
    mem.set(e[1], table_at(4, 0) | SS_RW);
    mem.set(e[2], table_at(4, 1) | SS_W);
    assert_eq!(
        walk_ss(&mem, &ss_cfg(4), iova, READ),
        err(FaultKind::Permission, 2)
    );
    let t = walk_ss(&mem, &ss_cfg(4), iova, WRITE).unwrap();
    assert!(!t.read && t.write);
    // Execute is checked as a read.
    let exec = Access { exec: true, ..READ };
    assert_eq!(
        walk_ss(&mem, &ss_cfg(4), iova, exec),
        err(FaultKind::Permission, 2)
    );

    // Read-only leaf.
    let mem = Mem::default();
    build(&mem, 4, iova, 0, SS_RW, 0x7000 | SS_R);
    assert!(walk_ss(&mem, &ss_cfg(4), iova, READ).is_ok());
    assert!(walk_ss(&mem, &ss_cfg(4), iova, exec).is_ok());
    assert_eq!(
        walk_ss(&mem, &ss_cfg(4), iova, WRITE),
        err(FaultKind::Permission, 0)
    );
}

#[test]
fn ss_present_means_r_or_w() {
    let iova = 0x0000_0000_4020_3000;
    let mem = Mem::default();
    let e = build(&mem, 4, iova, 0, SS_RW, 0x7000 | SS_RW);
    // Non-zero but neither R nor W: not present, at any level, whatever
    // else (even reserved bits) is set.
    for bits in [SS_A | SS_D, SS_SNP, SS_X, SS_PS | SS_TM, 0x7000] {
        mem.set(e[0], 0x7000 | bits);
        assert_eq!(
            walk_ss(&mem, &ss_cfg(4), iova, READ),
            err(FaultKind::NotPresent, 0)
        );
    }
    mem.set(e[0], 0x7000 | SS_RW);
    mem.set(e[2], table_at(4, 1) | SS_A);
    assert_eq!(
        walk_ss(&mem, &ss_cfg(4), iova, READ),
        err(FaultKind::NotPresent, 2)
    );
}

#[test]
fn ss_reserved_bits() {
    let iova = 0x0000_0000_4020_3000;
    let check = |level: u32, bits: u64, cfg: SsConfig| {
        let mem = Mem::default();
        let e = build(&mem, 4, iova, 0, SS_RW, 0x7000 | SS_RW);
        mem.set(e[level as usize], mem.get(e[level as usize]) | bits);
        walk_ss(&mem, &cfg, iova, READ)
    };
    let cfg = ss_cfg(4);

    // Output address above HAW (48): bit 48 reserved, bit 47 fine.
    assert_eq!(check(0, 1 << 48, cfg), err(FaultKind::Reserved, 0));
    assert_eq!(check(0, 1 << 47, cfg).unwrap().pa, (1 << 47) | 0x7000);
    assert_eq!(check(3, 1 << 51, cfg), err(FaultKind::Reserved, 3));
    let haw46 = SsConfig { haw: 46, ..cfg };
    assert_eq!(check(0, 1 << 46, haw46), err(FaultKind::Reserved, 0));
    assert_eq!(check(2, 1 << 47, haw46), err(FaultKind::Reserved, 2));
    let haw52 = SsConfig { haw: 52, ..cfg };
    assert_eq!(check(0, 1 << 51, haw52).unwrap().pa, (1 << 51) | 0x7000);

    // SNP: reserved in a leaf unless allowed; reserved in tables always.
    assert_eq!(check(0, SS_SNP, cfg), err(FaultKind::Reserved, 0));
    let snoop = SsConfig {
        snoop_allowed: true,
        ..cfg
    };
    let t = check(0, SS_SNP, snoop).unwrap();
    assert!(t.snoop);
    assert_eq!(t.desc, 0x7000 | SS_RW | SS_SNP);
    assert_eq!(check(1, SS_SNP, snoop), err(FaultKind::Reserved, 1));
    assert_eq!(check(3, SS_SNP, snoop), err(FaultKind::Reserved, 3));

    // PS in a PML4E (or PML5E) is reserved; in a PTE it is ignored.
    assert_eq!(check(3, SS_PS, cfg), err(FaultKind::Reserved, 3));
    assert!(check(0, SS_PS, cfg).is_ok());
    let mem = Mem::default();
    let e = build(&mem, 5, iova, 0, SS_RW, 0x7000 | SS_RW);
    mem.set(e[4], mem.get(e[4]) | SS_PS);
    assert_eq!(
        walk_ss(&mem, &ss_cfg(5), iova, READ),
        err(FaultKind::Reserved, 4)
    );

    // Bit 62 (TM) and the model's strict bits 6:2 (X, EMT, IPAT).
    for level in [0, 2] {
        for bits in [SS_TM, SS_X, SS_EMT0, SS_IPAT] {
            assert_eq!(
                check(level, bits, cfg),
                err(FaultKind::Reserved, level),
                "{bits:#x}"
            );
        }
    }

    // Ignored bits: 10, 61:52, 63 everywhere; A/D without SSADE.
    for level in [0, 1, 3] {
        for bits in [SS_IGN10, 0x3ff << 52, SS_IGN63, SS_A] {
            assert!(check(level, bits, cfg).is_ok(), "level {level} {bits:#x}");
        }
    }
    assert!(check(0, SS_D, cfg).is_ok());
}

#[test]
fn ss_large_leaf_low_address_bits_reserved() {
    let iova = 0x0000_0080_4000_0000;
    let cfg = ss_cfg(4);
    for bit in 12..21 {
        let mem = Mem::default();
        build(
            &mem,
            4,
            iova,
            1,
            SS_RW,
            0x4_0000_0000 | (1 << bit) | SS_PS | SS_RW,
        );
        assert_eq!(
            walk_ss(&mem, &cfg, iova, READ),
            err(FaultKind::Reserved, 1),
            "bit {bit}"
        );
    }
    let mem = Mem::default();
    build(&mem, 4, iova, 1, SS_RW, 0x4_0020_0000 | SS_PS | SS_RW);
    assert_eq!(walk_ss(&mem, &cfg, iova, READ).unwrap().pa, 0x4_0020_0000);

    for bit in [12, 21, 29] {
        let mem = Mem::default();
        build(
            &mem,
            4,
            iova,
            2,
            SS_RW,
            0x4_0000_0000 | (1 << bit) | SS_PS | SS_RW,
        );
        assert_eq!(
            walk_ss(&mem, &cfg, iova, READ),
            err(FaultKind::Reserved, 2),
            "bit {bit}"
        );
    }
}

#[test]
fn ss_accessed_dirty_with_ssade() {
    let iova = 0x0000_0000_4020_3000;
    let cfg = SsConfig {
        ssade: true,
        ..ss_cfg(4)
    };
    let mem = Mem::default();
    let e = build(&mem, 4, iova, 0, SS_RW, 0x7000 | SS_RW);

    // A read sets A everywhere, D nowhere.
    let t = walk_ss(&mem, &cfg, iova, READ).unwrap();
    assert_eq!(t.desc, 0x7000 | SS_RW);
    for (level, &pa) in e.iter().enumerate().take(4) {
        assert_eq!(mem.get(pa) & (SS_A | SS_D), SS_A, "level {level}");
    }
    assert_eq!(mem.get(e[0]), 0x7000 | SS_RW | SS_A);

    // A write sets D in the leaf only; desc is the entry before the update.
    let t = walk_ss(&mem, &cfg, iova, WRITE).unwrap();
    assert_eq!(t.desc, 0x7000 | SS_RW | SS_A);
    assert_eq!(mem.get(e[0]), 0x7000 | SS_RW | SS_A | SS_D);
    for (level, &pa) in e.iter().enumerate().take(4).skip(1) {
        assert_eq!(mem.get(pa) & SS_D, 0, "level {level}");
    }

    // Nothing left to set: no further writes.
    let before = mem.cas_done.get();
    walk_ss(&mem, &cfg, iova, WRITE).unwrap();
    assert_eq!(mem.cas_done.get(), before);

    // Dirty cleared by software is set again by the next write.
    mem.set(e[0], 0x7000 | SS_RW | SS_A);
    walk_ss(&mem, &cfg, iova, READ).unwrap();
    assert_eq!(mem.get(e[0]) & SS_D, 0);
    walk_ss(&mem, &cfg, iova, WRITE).unwrap();
    assert_eq!(mem.get(e[0]) & SS_D, SS_D);

    // 2M leaf: D lands in the PDE.
    let mem = Mem::default();
    let e = build(&mem, 4, iova, 1, SS_RW, 0x20_0000 | SS_PS | SS_RW);
    walk_ss(&mem, &cfg, iova, WRITE).unwrap();
    assert_eq!(mem.get(e[1]), 0x20_0000 | SS_PS | SS_RW | SS_A | SS_D);
    assert_eq!(mem.get(e[2]) & (SS_A | SS_D), SS_A);
}

#[test]
fn ss_no_accessed_dirty_without_ssade_or_on_fault() {
    let iova = 0x0000_0000_4020_3000;
    let mem = Mem::default();
    build(&mem, 4, iova, 0, SS_RW, 0x7000 | SS_R);
    let before = mem.snapshot();
    walk_ss(&mem, &ss_cfg(4), iova, READ).unwrap();
    assert!(walk_ss(&mem, &ss_cfg(4), iova, WRITE).is_err());
    assert_eq!(mem.snapshot(), before);
    assert_eq!(mem.cas_done.get(), 0);

    // With SSADE, a faulting write changes nothing either.
    let cfg = SsConfig {
        ssade: true,
        ..ss_cfg(4)
    };
    assert_eq!(
        walk_ss(&mem, &cfg, iova, WRITE),
        err(FaultKind::Permission, 0)
    );
    assert_eq!(mem.snapshot(), before);
}

#[test]
fn ss_external_abort_and_config() {
    let iova = 0x0000_0000_4020_3000;
    // No memory at the root.
    let mem = Mem::default();
    assert_eq!(
        walk_ss(&mem, &ss_cfg(4), iova, READ),
        err(FaultKind::ExternalAbort, 3)
    );
    // A PDE pointing at nothing.
    let e = build(&mem, 4, iova, 0, SS_RW, 0x7000 | SS_RW);
    mem.set(e[1], 0x9_0000_0000 | SS_RW);
    assert_eq!(
        walk_ss(&mem, &ss_cfg(4), iova, READ),
        err(FaultKind::ExternalAbort, 0)
    );

    for cfg in [
        ss_cfg(2),
        ss_cfg(6),
        SsConfig {
            root: ROOT | 0x8,
            ..ss_cfg(4)
        },
        SsConfig {
            root: 1 << 48,
            ..ss_cfg(4)
        },
        SsConfig {
            haw: 53,
            ..ss_cfg(4)
        },
    ] {
        assert_eq!(
            walk_ss(&mem, &cfg, iova, READ),
            err(FaultKind::Config, 0),
            "{cfg:?}"
        );
    }
}

#[test]
fn ss_accessed_update_retries_and_gives_up() {
    let iova = 0x0000_0000_4020_3000;
    let cfg = SsConfig {
        ssade: true,
        ..ss_cfg(4)
    };
    let mem = Mem::default();
    let e = build(&mem, 4, iova, 0, SS_RW, 0x7000 | SS_RW);
    // A couple of lost compare-exchanges are retried.
    mem.fail_cas.set(2);
    walk_ss(&mem, &cfg, iova, WRITE).unwrap();
    assert_eq!(mem.get(e[0]), 0x7000 | SS_RW | SS_A | SS_D);
    // A word that never accepts the update ends in an abort, not a hang.
    let mem = Mem::default();
    build(&mem, 4, iova, 0, SS_RW, 0x7000 | SS_RW);
    mem.fail_cas.set(u32::MAX);
    assert!(walk_ss(&mem, &cfg, iova, READ).is_err_and(|f| f.kind == FaultKind::ExternalAbort));
}

// ---------------------------------------------------------------------------
// First stage
// ---------------------------------------------------------------------------

#[test]
fn fs_golden_user_write() {
    let mem = Mem::default();
    let iova = 0x0000_1234_5678_9000;
    for t in [0x10_0000, 0x10_1000, 0x10_2000, 0x10_3000] {
        mem.add_table(t);
    }
    mem.set(0x10_0000 + idx(iova, 3) * 8, 0x10_1027);
    mem.set(0x10_1000 + idx(iova, 2) * 8, 0x10_2027);
    mem.set(0x10_2000 + idx(iova, 1) * 8, 0x10_3027);
    mem.set(0x10_3000 + idx(iova, 0) * 8, 0x8000_3067);
    let before = mem.snapshot();

    let t = walk_fs(&mem, &fs_cfg(4), iova + 0x10, WRITE).unwrap();
    assert_eq!(
        t,
        Translation {
            pa: 0x8000_3010,
            level: 0,
            page_size: K4,
            read: true,
            write: true,
            snoop: false,
            desc: 0x8000_3067,
        }
    );
    // Everything already had A (and the leaf D): nothing written.
    assert_eq!(mem.snapshot(), before);
}

#[test]
fn fs_golden_read_only_faults_write() {
    let iova = 0x0000_1234_5678_9000;
    let mem = Mem::default();
    let e = build(&mem, 4, iova, 0, FS_TABLE, 0x8000_3025);
    let before = mem.snapshot();
    assert_eq!(
        walk_fs(&mem, &fs_cfg(4), iova, WRITE),
        err(FaultKind::Permission, 0)
    );
    assert_eq!(mem.snapshot(), before);
    let t = walk_fs(&mem, &fs_cfg(4), iova | 0x10, READ).unwrap();
    assert_eq!((t.pa, t.read, t.write), (0x8000_3010, true, false));
    assert_eq!(mem.get(e[0]), 0x8000_3025);
}

#[test]
fn fs_four_and_five_levels() {
    for (levels, iova) in [
        (4u32, 0x0000_7f80_4020_1000u64),
        (4, 0xffff_8000_4020_1000),
        (5, 0x00ff_7f80_4020_1000),
        (5, 0xff00_0000_4020_1000),
    ] {
        let mem = Mem::default();
        build(&mem, levels, iova, 0, FS_TABLE, 0x3_0000_0000 | 0x67);
        let t = walk_fs(&mem, &fs_cfg(levels), iova | 0x5a8, WRITE)
            .unwrap_or_else(|f| panic!("{levels} levels {iova:#x}: {f:?}"));
        assert_eq!(t.pa, 0x3_0000_05a8);
        let other = iova ^ (1 << (12 + 9 * (levels - 1)));
        assert_eq!(
            walk_fs(&mem, &fs_cfg(levels), other, READ),
            err(FaultKind::NotPresent, levels - 1)
        );
    }
}

#[test]
fn fs_canonical_check() {
    let mem = Mem::default();
    build(&mem, 4, 0, 0, FS_TABLE, 0x5000 | 0x67);
    let noncanon4 = [
        0x0000_8000_0000_0000u64,
        0xffff_7fff_ffff_f000,
        0x0001_0000_0000_0000,
        0x8000_0000_0000_0000,
    ];
    for iova in noncanon4 {
        assert_eq!(
            walk_fs(&mem, &fs_cfg(4), iova, READ),
            err(FaultKind::NonCanonical, 3),
            "{iova:#x}"
        );
    }
    assert!(walk_fs(&mem, &fs_cfg(4), 0, READ).is_ok());

    let mem = Mem::default();
    build(&mem, 5, 0, 0, FS_TABLE, 0x5000 | 0x67);
    for iova in [
        0x0100_0000_0000_0000u64,
        0xfeff_ffff_ffff_f000,
        0x8000_0000_0000_0000,
    ] {
        assert_eq!(
            walk_fs(&mem, &fs_cfg(5), iova, READ),
            err(FaultKind::NonCanonical, 4),
            "{iova:#x}"
        );
    }
    // 48-bit non-canonical addresses are canonical with 5 levels (and unmapped here).
    assert_eq!(
        walk_fs(&mem, &fs_cfg(5), 0x0000_8000_0000_0000, READ),
        err(FaultKind::NotPresent, 3)
    );
}

#[test]
fn fs_user_supervisor() {
    let iova = 0x0000_0000_4020_3000;
    // The PDPE is supervisor-only.
    let mem = Mem::default();
    let e = build(&mem, 4, iova, 0, FS_TABLE, 0x7000 | 0x67);
    mem.set(e[2], table_at(4, 1) | FS_P | FS_RW | FS_A);
    assert_eq!(
        walk_fs(&mem, &fs_cfg(4), iova, READ),
        err(FaultKind::Permission, 2)
    );
    assert_eq!(
        walk_fs(&mem, &fs_cfg(4), iova, WRITE),
        err(FaultKind::Permission, 2)
    );
    let t = walk_fs(&mem, &fs_cfg(4), iova, SUP_READ).unwrap();
    assert_eq!(t.pa, 0x7000);
    // Supervisor requests need SRE.
    let no_sre = FsConfig {
        sre: false,
        ..fs_cfg(4)
    };
    assert_eq!(
        walk_fs(&mem, &no_sre, iova, SUP_READ),
        err(FaultKind::Permission, 3)
    );
    // Supervisor leaf.
    mem.set(e[2], table_at(4, 1) | FS_TABLE);
    mem.set(e[0], 0x7000 | FS_P | FS_RW | FS_A | FS_D);
    assert_eq!(
        walk_fs(&mem, &fs_cfg(4), iova, READ),
        err(FaultKind::Permission, 0)
    );
    assert!(walk_fs(&mem, &fs_cfg(4), iova, SUP_WRITE).is_ok());
    // User execute needs U/S like a read.
    let exec = Access { exec: true, ..READ };
    assert_eq!(
        walk_fs(&mem, &fs_cfg(4), iova, exec),
        err(FaultKind::Permission, 0)
    );
}

#[test]
fn fs_read_write_and_wpe() {
    let iova = 0x0000_0000_4020_3000;
    let mem = Mem::default();
    let e = build(&mem, 4, iova, 0, FS_TABLE, 0x7000 | 0x67);
    // The PML4E is read-only.
    mem.set(e[3], table_at(4, 2) | FS_P | FS_US | FS_A);
    let t = walk_fs(&mem, &fs_cfg(4), iova, READ).unwrap();
    assert!(t.read && !t.write);
    assert_eq!(
        walk_fs(&mem, &fs_cfg(4), iova, WRITE),
        err(FaultKind::Permission, 3)
    );
    // Supervisor writes ignore R/W without WPE...
    let t = walk_fs(&mem, &fs_cfg(4), iova, SUP_WRITE).unwrap();
    assert!(t.write);
    // ...and honour it with WPE.
    let wpe = FsConfig {
        wpe: true,
        ..fs_cfg(4)
    };
    assert_eq!(
        walk_fs(&mem, &wpe, iova, SUP_WRITE),
        err(FaultKind::Permission, 3)
    );
    let t = walk_fs(&mem, &wpe, iova, SUP_READ).unwrap();
    assert!(t.read && !t.write);
}

#[test]
fn fs_large_pages() {
    let iova = 0x0000_0080_4000_0000 | 0x1234_5678;
    // 2M leaf, PAT (bit 12) allowed and not part of the address.
    let mem = Mem::default();
    build(
        &mem,
        4,
        iova,
        1,
        FS_TABLE,
        0x4_0000_0000 | FS_PAT_LARGE | FS_PS | 0x67,
    );
    let t = walk_fs(&mem, &fs_cfg(4), iova, WRITE).unwrap();
    assert_eq!(
        (t.pa, t.level, t.page_size),
        (0x4_0000_0000 | (iova & (M2 - 1)), 1, M2)
    );
    let t = walk_fs(&mem, &fs_cfg(4), iova & !(M2 - 1), READ).unwrap();
    assert_eq!(t.pa, 0x4_0000_0000, "PAT is not an address bit");
    // 2M leaf with a reserved low address bit.
    for bit in 13..21 {
        let mem = Mem::default();
        build(
            &mem,
            4,
            iova,
            1,
            FS_TABLE,
            0x4_0000_0000 | (1 << bit) | FS_PS | 0x67,
        );
        assert_eq!(
            walk_fs(&mem, &fs_cfg(4), iova, READ),
            err(FaultKind::Reserved, 1),
            "bit {bit}"
        );
    }

    // 1G leaf: needs gb_pages.
    let mem = Mem::default();
    build(
        &mem,
        4,
        iova,
        2,
        FS_TABLE,
        0x4_0000_0000 | FS_PAT_LARGE | FS_PS | 0x67,
    );
    let t = walk_fs(&mem, &fs_cfg(4), iova, READ).unwrap();
    assert_eq!(
        (t.pa, t.level, t.page_size),
        (0x4_0000_0000 | (iova & (G1 - 1)), 2, G1)
    );
    let t = walk_fs(&mem, &fs_cfg(4), iova & !(G1 - 1), READ).unwrap();
    assert_eq!(t.pa, 0x4_0000_0000, "PAT is not an address bit");
    let no_1g = FsConfig {
        gb_pages: false,
        ..fs_cfg(4)
    };
    assert_eq!(
        walk_fs(&mem, &no_1g, iova, READ),
        err(FaultKind::Reserved, 2)
    );
    for bit in [13, 20, 29] {
        let mem = Mem::default();
        build(
            &mem,
            4,
            iova,
            2,
            FS_TABLE,
            0x4_0000_0000 | (1 << bit) | FS_PS | 0x67,
        );
        assert_eq!(
            walk_fs(&mem, &fs_cfg(4), iova, READ),
            err(FaultKind::Reserved, 2),
            "bit {bit}"
        );
    }

    // PS in a PML4E / PML5E is reserved.
    let mem = Mem::default();
    let e = build(&mem, 5, iova, 0, FS_TABLE, 0x7000 | 0x67);
    mem.set(e[3], mem.get(e[3]) | FS_PS);
    assert_eq!(
        walk_fs(&mem, &fs_cfg(5), iova, READ),
        err(FaultKind::Reserved, 3)
    );
    mem.set(e[3], mem.get(e[3]) & !FS_PS);
    mem.set(e[4], mem.get(e[4]) | FS_PS);
    assert_eq!(
        walk_fs(&mem, &fs_cfg(5), iova, READ),
        err(FaultKind::Reserved, 4)
    );
    mem.set(e[4], mem.get(e[4]) & !FS_PS);
    assert!(walk_fs(&mem, &fs_cfg(5), iova, READ).is_ok());
}

#[test]
fn fs_reserved_and_ignored_bits() {
    let iova = 0x0000_0000_4020_3000;
    let check = |level: usize, bits: u64| {
        let mem = Mem::default();
        let e = build(&mem, 4, iova, 0, FS_TABLE, 0x7000 | 0x67);
        mem.set(e[level], mem.get(e[level]) | bits);
        walk_fs(&mem, &fs_cfg(4), iova, READ)
    };
    for level in 0..4 {
        let l = level as u32;
        assert_eq!(check(level, 1 << 48), err(FaultKind::Reserved, l));
        assert_eq!(check(level, 1 << 51), err(FaultKind::Reserved, l));
        assert_eq!(check(level, FS_XD), err(FaultKind::Reserved, l));
        for bits in [FS_IGN9, 1 << 10, FS_IGN11, 0x7ff << 52] {
            assert!(check(level, bits).is_ok(), "level {level} {bits:#x}");
        }
    }
    // PTE bit 7 is PAT; G, PCD are attributes.
    let t = check(0, FS_PAT_4K | FS_G | FS_PCD).unwrap();
    assert_eq!((t.pa, t.level), (0x7000, 0));
    // Not present: P clear, whatever else is set.
    let mem = Mem::default();
    let e = build(&mem, 4, iova, 0, FS_TABLE, 0x7000 | 0x66);
    assert_eq!(
        walk_fs(&mem, &fs_cfg(4), iova, READ),
        err(FaultKind::NotPresent, 0)
    );
    mem.set(e[1], (mem.get(e[1]) & !FS_P) | FS_XD);
    assert_eq!(
        walk_fs(&mem, &fs_cfg(4), iova, READ),
        err(FaultKind::NotPresent, 1)
    );
    // HAW 46: bit 46 reserved.
    let mem = Mem::default();
    build(&mem, 4, iova, 0, FS_TABLE, (1 << 46) | 0x67);
    let haw46 = FsConfig {
        haw: 46,
        ..fs_cfg(4)
    };
    assert_eq!(
        walk_fs(&mem, &haw46, iova, READ),
        err(FaultKind::Reserved, 0)
    );
    assert_eq!(walk_fs(&mem, &fs_cfg(4), iova, READ).unwrap().pa, 1 << 46);
}

#[test]
fn fs_accessed_dirty() {
    let iova = 0x0000_0000_4020_3000;
    let mem = Mem::default();
    // Tables P|RW|U (no A), leaf P|RW|U (no A/D).
    let e = build(
        &mem,
        4,
        iova,
        0,
        FS_P | FS_RW | FS_US,
        0x7000 | FS_P | FS_RW | FS_US,
    );

    let t = walk_fs(&mem, &fs_cfg(4), iova, READ).unwrap();
    assert_eq!(t.desc, 0x7000 | 0x7);
    for (level, &pa) in e.iter().enumerate().take(4) {
        assert_eq!(mem.get(pa) & (FS_A | FS_D), FS_A, "level {level}");
    }
    let t = walk_fs(&mem, &fs_cfg(4), iova, WRITE).unwrap();
    assert_eq!(t.desc, 0x7000 | 0x27);
    assert_eq!(mem.get(e[0]), 0x7000 | 0x67);
    for (level, &pa) in e.iter().enumerate().take(4).skip(1) {
        assert_eq!(mem.get(pa) & FS_D, 0, "level {level}: D only in the leaf");
    }

    // 1G leaf gets D; a faulting write sets nothing.
    let mem = Mem::default();
    let e = build(
        &mem,
        4,
        iova,
        2,
        FS_P | FS_US,
        0x4000_0000 | FS_PS | FS_P | FS_RW | FS_US,
    );
    let before = mem.snapshot();
    assert_eq!(
        walk_fs(&mem, &fs_cfg(4), iova, WRITE),
        err(FaultKind::Permission, 3)
    );
    assert_eq!(mem.snapshot(), before);
    walk_fs(&mem, &fs_cfg(4), iova, SUP_WRITE).unwrap();
    assert_eq!(mem.get(e[2]), 0x4000_0000 | FS_PS | 0x67);
    assert_eq!(mem.get(e[3]), table_at(4, 2) | FS_P | FS_US | FS_A);
}

#[test]
fn fs_config() {
    let mem = Mem::default();
    build(&mem, 4, 0, 0, FS_TABLE, 0x5000 | 0x67);
    for cfg in [
        fs_cfg(3),
        fs_cfg(6),
        FsConfig {
            root: ROOT | 0x800,
            ..fs_cfg(4)
        },
        FsConfig {
            haw: 0,
            ..fs_cfg(4)
        },
    ] {
        assert_eq!(
            walk_fs(&mem, &cfg, 0, READ),
            err(FaultKind::Config, 0),
            "{cfg:?}"
        );
    }
}
