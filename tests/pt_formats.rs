//! The page-table engine and every format against independent oracles.
//!
//! * Property tests per format: random map/unmap sequences against a model
//!   of the leaves a radix table must hold (brute-force best page size),
//!   every leaf translated by the engine *and* by the format's walker model
//!   (written from the architecture spec, separately from the encoder),
//!   holes fault in both, and teardown frees every table.
//! * Upstream's kunit invariants ported: best page size vs brute force,
//!   entry round trips at every level and size, attribute round trips,
//!   dirty on contiguous entries, exact leaf counts of `test_mixed`, the
//!   `pgsize_boundary` regression, table-to-leaf, unmap split.
//! * Golden encodings (the values Linux's encoders produce), corrupted
//!   tables rejected by the walkers, the gather's flush-before-free order,
//!   allocation-failure rollback and concurrent maps of disjoint ranges.

use iommufd_rs::drivers::mock::pagetable::AmdV1Mock;
use iommufd_rs::drivers::smmuv3::pagetable::{self as arm, Gran16K, Gran4K, Gran64K, Vmsa};
use iommufd_rs::drivers::smmuv3::walker as aw;
use iommufd_rs::drivers::vtd::pagetable::{self as vtd, VtdFs, VtdSs};
use iommufd_rs::drivers::vtd::walker as vw;
use iommufd_rs::errno::{EADDRINUSE, EINVAL, ENOMEM, ERANGE};
use iommufd_rs::pagetable::engine::{best_lg2, Entry, Format, PageTable};
use iommufd_rs::pagetable::gather::{IotlbFlush, NoFlush};
use iommufd_rs::pagetable::*;
use iommufd_rs::platform::PtMem;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Mutex;

const RW: u32 = PROT_READ | PROT_WRITE;

/// Translates `iova` as the hardware would: `Ok(pa)` or a fault.
type Oracle<'a> = &'a dyn Fn(&PtMem, u64, u64, bool) -> Result<u64, String>;

fn no_oracle(_: &PtMem, _: u64, _: u64, _: bool) -> Result<u64, String> {
    Err("no walker".into())
}

fn arm_oracle<G: arm::Granule>(
    f: &Vmsa<G>,
    hd: bool,
) -> impl Fn(&PtMem, u64, u64, bool) -> Result<u64, String> {
    let cfg = *f.config();
    let start = f.start_level();
    move |mem, top, iova, write| {
        let wc = aw::WalkConfig {
            stage: match cfg.stage {
                arm::Stage::S1 => aw::Stage::S1,
                arm::Stage::S2 => aw::Stage::S2,
            },
            granule: match G::LG2 {
                12 => aw::Granule::G4K,
                14 => aw::Granule::G16K,
                _ => aw::Granule::G64K,
            },
            ias: cfg.ias,
            oas: cfg.oas,
            ttb: top,
            start_level: start,
            // HTTU dirty updates need the access-flag update too.
            ha: hd,
            hd,
        };
        let acc = aw::Access {
            write,
            exec: false,
            privileged: false,
        };
        aw::walk(mem, &wc, iova, acc)
            .map(|t| t.pa)
            .map_err(|e| format!("{e:?}"))
    }
}

fn ss_oracle(f: &VtdSs, ssade: bool) -> impl Fn(&PtMem, u64, u64, bool) -> Result<u64, String> {
    let c = *f.config();
    move |mem, top, iova, write| {
        let wc = vw::SsConfig {
            levels: (c.addr_width - 12) / 9,
            root: top,
            haw: c.oas,
            large_pages: c.sllps,
            ssade,
            snoop_allowed: true,
        };
        let acc = vw::Access {
            write,
            exec: false,
            supervisor: false,
        };
        vw::walk_ss(mem, &wc, iova, acc)
            .map(|t| t.pa)
            .map_err(|e| format!("{e:?}"))
    }
}

fn fs_oracle(levels: u32, gb: bool) -> impl Fn(&PtMem, u64, u64, bool) -> Result<u64, String> {
    move |mem, top, iova, write| {
        let wc = vw::FsConfig {
            levels,
            root: top,
            haw: 48,
            gb_pages: gb,
            wpe: false,
            sre: false,
        };
        let acc = vw::Access {
            write,
            exec: false,
            supervisor: false,
        };
        vw::walk_fs(mem, &wc, iova, acc)
            .map(|t| t.pa)
            .map_err(|e| format!("{e:?}"))
    }
}

/// The leaves of one map call, by brute force: the largest size of
/// `bitmap` that fits the remaining length and both alignments.
fn model_leaves(bitmap: u64, mut iova: u64, mut oa: u64, mut len: u64) -> Vec<(u64, u64, u64)> {
    let mut v = Vec::new();
    while len != 0 {
        let s = (0..64)
            .rev()
            .map(|b| 1u64 << b)
            .find(|&s| {
                bitmap & s != 0 && s <= len && iova.is_multiple_of(s) && oa.is_multiple_of(s)
            })
            .expect("granule always fits");
        v.push((iova, oa, s));
        iova += s;
        oa += s;
        len -= s;
    }
    v
}

fn leaves<F: Format>(pt: &PageTable<F, &PtMem>) -> Vec<(u64, u64, u64)> {
    let mut v = Vec::new();
    pt.for_each_leaf(|l| v.push((l.iova, l.oa, 1u64 << l.size_lg2)));
    v
}

fn map<F: Format>(
    pt: &PageTable<F, &PtMem>,
    iova: u64,
    oa: u64,
    len: u64,
    prot: u32,
) -> iommufd_rs::errno::Result {
    let mut g = pt.gather(&NoFlush);
    let r = pt.map(iova, oa, len, prot, &mut g);
    g.sync();
    r
}

fn unmap<F: Format>(pt: &PageTable<F, &PtMem>, iova: u64, len: u64) -> u64 {
    let mut g = pt.gather(&NoFlush);
    let n = pt.unmap(iova, len, &mut g);
    g.sync();
    n
}

#[derive(Debug, Clone)]
enum Op {
    Map {
        size: u8,
        n: u8,
        k: u8,
        oa: u16,
        skew: bool,
    },
    Unmap {
        size: u8,
        n: u8,
        k: u8,
    },
    UnmapInside {
        pick: u8,
    },
    /// A device write somewhere in a leaf.
    Write {
        pick: u8,
        off: u16,
    },
    /// Read (and clear unless `no_clear`) the dirty leaves.
    ReadDirty {
        no_clear: bool,
    },
}

/// How leaves get dirty in the model test.
enum Dirty<'a> {
    /// The format (or this configuration) tracks nothing.
    Off,
    /// A device write through the walker model with hardware A/D updates
    /// (ARM HTTU, VT-d SSADE); `built_dirty` when writable leaves start
    /// dirty (ARM DBM).
    Hw {
        write: Oracle<'a>,
        built_dirty: bool,
    },
    /// The engine's `set_dirty` (the mock selftest's `DIRTY` op).
    Engine,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (any::<u8>(), 1u8..40, 0u8..24, any::<u16>(), prop::bool::weighted(0.2))
            .prop_map(|(size, n, k, oa, skew)| Op::Map { size, n, k, oa, skew }),
        3 => (any::<u8>(), 1u8..8, 0u8..24).prop_map(|(size, n, k)| Op::Unmap { size, n, k }),
        1 => any::<u8>().prop_map(|pick| Op::UnmapInside { pick }),
        2 => (any::<u8>(), any::<u16>()).prop_map(|(pick, off)| Op::Write { pick, off }),
        1 => any::<bool>().prop_map(|no_clear| Op::ReadDirty { no_clear }),
    ]
}

/// Runs `ops` on a fresh table of `fmt` against the leaf model, checking
/// every leaf with the engine and the oracle after each step, and the
/// dirty leaves against the model's whenever they are read.
fn run_model<F: Format>(
    fmt: F,
    oracle: Oracle<'_>,
    dirty: Dirty<'_>,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let mem = PtMem::with_capacity(256 << 20);
    // Checks write only where a write cannot change the dirty state.
    let check_write = matches!(dirty, Dirty::Off);
    let mut dirty_set = std::collections::BTreeSet::new();
    let has_oracle = oracle(&mem, 0, 0, false) != Err("no walker".into());
    let vas = fmt.vasz_lg2();
    let oas = fmt.oasz_lg2();
    let pt = PageTable::new(fmt, &mem).unwrap();
    let bitmap = pt.pgsize_bitmap();
    let sizes: Vec<u64> = (0..64)
        .map(|b| 1u64 << b)
        .filter(|s| bitmap & s != 0)
        .collect();
    let g = 1u64 << F::GRANULE_LG2;
    // IOVAs start at the top of the space less the window so the top
    // table's last entries are exercised too.
    let window = sizes[sizes.len() - 1] * 32;
    let base = if vas >= 64 {
        0
    } else {
        (1u64 << vas).saturating_sub(window) & !(window - 1)
    };
    let mut model: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let containing = |m: &BTreeMap<u64, (u64, u64)>, at: u64| {
        m.range(..=at)
            .next_back()
            .filter(|(&s, &(_, l))| at < s + l)
            .map(|(&s, &v)| (s, v))
    };
    for op in ops {
        match *op {
            Op::Map {
                size,
                n,
                k,
                oa,
                skew,
            } => {
                // Small sizes more often, counts that reach contiguous runs.
                // The granule half of the time, any size otherwise.
                let s = if size & 1 == 0 {
                    g
                } else {
                    sizes[(size as usize >> 1) % sizes.len()]
                };
                let len = s * u64::from(n);
                let iova = base + u64::from(k) * s;
                // A granule-aligned OA splits the range into granule
                // leaves: only for small sizes.
                let oa_unit = if skew && s <= 64 * g { g } else { s };
                let oa = (u64::from(oa) * oa_unit) & ((1u64 << oas.min(40)) - 1) & !(oa_unit - 1);
                let end_ok = iova
                    .checked_add(len)
                    .is_some_and(|e| vas >= 64 || e <= 1u64 << vas);
                let want = if !end_ok {
                    Err(ERANGE)
                } else if containing(&model, iova).is_some()
                    || model.range(iova..iova + len).next().is_some()
                {
                    Err(EADDRINUSE)
                } else {
                    Ok(())
                };
                let before = leaves(&pt);
                let got = map(&pt, iova, oa, len, RW);
                prop_assert_eq!(got, want, "map {:?} iova {:#x} len {:#x}", op, iova, len);
                if got.is_ok() {
                    for (i, o, s) in model_leaves(bitmap, iova, oa, len) {
                        model.insert(i, (o, s));
                        if matches!(
                            dirty,
                            Dirty::Hw {
                                built_dirty: true,
                                ..
                            }
                        ) {
                            dirty_set.insert(i);
                        }
                    }
                } else {
                    prop_assert_eq!(leaves(&pt), before, "failed map changed the table");
                }
            }
            Op::Unmap { size, n, k } => {
                let s = sizes[size as usize % sizes.len()];
                let (a, len) = (base + u64::from(k) * s, s * u64::from(n));
                let in_range = vas >= 64 || a + len <= 1u64 << vas;
                // Upstream's rules: nothing when out of range or starting
                // inside a leaf; otherwise leaves from `a` on, each whole,
                // until the range ends or a hole stops the unmap.
                let want = match containing(&model, a) {
                    _ if !in_range => 0,
                    Some((st, _)) if st != a => 0,
                    _ => {
                        let mut at = a;
                        let mut gone = 0;
                        while at < a + len {
                            let Some((_, l)) = model.remove(&at) else {
                                break;
                            };
                            dirty_set.remove(&at);
                            gone += l;
                            at += l;
                        }
                        gone
                    }
                };
                prop_assert_eq!(unmap(&pt, a, len), want, "unmap {:?}", op);
            }
            Op::Write { pick, off } => {
                let Some((&i, &(o, l))) = model.iter().nth(pick as usize % model.len().max(1))
                else {
                    continue;
                };
                let at = i + (u64::from(off) * g) % l;
                match &dirty {
                    Dirty::Off => continue,
                    Dirty::Hw { write, .. } => {
                        prop_assert_eq!(write(&mem, pt.top_phys(), at, true), Ok(o + (at - i)));
                    }
                    Dirty::Engine => prop_assert!(pt.set_dirty(at)),
                }
                dirty_set.insert(i);
            }
            Op::ReadDirty { no_clear } => {
                let mut got = Vec::new();
                let mut gth = pt.gather(&NoFlush);
                let span = (1u64 << vas.min(63)) - base;
                pt.read_and_clear_dirty(base, span, no_clear, &mut gth, |i, l| got.push((i, l)));
                gth.sync();
                let want: Vec<(u64, u64)> = dirty_set.iter().map(|i| (*i, model[i].1)).collect();
                prop_assert_eq!(got, want, "dirty leaves");
                if !no_clear {
                    dirty_set.clear();
                }
            }
            Op::UnmapInside { pick } => {
                // A range starting inside a leaf unmaps nothing.
                if let Some((&st, &(_, l))) = model.iter().nth(pick as usize % model.len().max(1)) {
                    if l > g {
                        prop_assert_eq!(unmap(&pt, st + g, g), 0);
                    }
                }
            }
        }
        let want: Vec<(u64, u64, u64)> = model.iter().map(|(&i, &(o, s))| (i, o, s)).collect();
        prop_assert_eq!(leaves(&pt), want);
        let mut last_end = base;
        for (&i, &(o, s)) in &model {
            for at in [i, i + s / 2 + 8, i + s - 8] {
                let want = o + (at - i);
                prop_assert_eq!(pt.iova_to_phys(at), Some(want));
                if has_oracle {
                    prop_assert_eq!(
                        oracle(&mem, pt.top_phys(), at, check_write),
                        Ok(want),
                        "walker at {:#x}",
                        at
                    );
                }
            }
            if i > last_end {
                // A hole before this leaf.
                prop_assert_eq!(pt.iova_to_phys(last_end), None);
                if has_oracle {
                    prop_assert!(oracle(&mem, pt.top_phys(), last_end, false).is_err());
                }
            }
            last_end = i + s;
        }
    }
    // A range over holes stops at the first one; leaf by leaf empties it.
    if let Some((&first, _)) = model.iter().next() {
        let all = (1u64 << vas.min(63)) - first;
        let mut at = first;
        let mut run = 0;
        for (&i, &(_, l)) in &model {
            if i != at {
                break;
            }
            run += l;
            at += l;
        }
        prop_assert_eq!(unmap(&pt, first, all), run);
    }
    for (i, _, l) in leaves(&pt) {
        prop_assert_eq!(unmap(&pt, i, l), l);
    }
    prop_assert!(leaves(&pt).is_empty());
    drop(pt);
    prop_assert_eq!(mem.live(), 0, "tables leaked");
    prop_assert_eq!(mem.double_frees(), 0);
    Ok(())
}

fn arm_cfg(stage: arm::Stage, ias: u32, contiguous: bool) -> arm::VmsaConfig {
    let mut c = match stage {
        arm::Stage::S1 => arm::VmsaConfig::s1(ias, 48),
        arm::Stage::S2 => arm::VmsaConfig::s2(ias, 48),
    };
    c.contiguous = contiguous;
    c
}

/// One ARM configuration against the model, walked by the ARM walker.
fn arm_model<G: arm::Granule>(
    s2: bool,
    ias: u32,
    contig: bool,
    dbm: bool,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let stage = if s2 { arm::Stage::S2 } else { arm::Stage::S1 };
    let mut c = arm_cfg(stage, ias, contig);
    c.dbm = dbm;
    let f = Vmsa::<G>::new(c).unwrap();
    let o = arm_oracle(&f, false);
    let hw = arm_oracle(&f, true);
    let dirty = if dbm {
        Dirty::Hw {
            write: &hw,
            built_dirty: true,
        }
    } else {
        Dirty::Off
    };
    run_model(f, &o, dirty, ops)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arm_4k_matches_model(s2 in any::<bool>(), ias in prop_oneof![Just(32u32), Just(39), Just(40), Just(48)],
                            contig in any::<bool>(), dbm in any::<bool>(), ops in prop::collection::vec(op_strategy(), 1..40)) {
        arm_model::<Gran4K>(s2, ias, contig, dbm, &ops)?;
    }

    #[test]
    fn arm_16k_matches_model(s2 in any::<bool>(), ias in prop_oneof![Just(36u32), Just(47), Just(48)],
                             contig in any::<bool>(), dbm in any::<bool>(), ops in prop::collection::vec(op_strategy(), 1..30)) {
        arm_model::<Gran16K>(s2, ias, contig, dbm, &ops)?;
    }

    #[test]
    fn arm_64k_matches_model(s2 in any::<bool>(), ias in prop_oneof![Just(32u32), Just(42), Just(48)],
                             contig in any::<bool>(), dbm in any::<bool>(), ops in prop::collection::vec(op_strategy(), 1..30)) {
        arm_model::<Gran64K>(s2, ias, contig, dbm, &ops)?;
    }

    #[test]
    fn vtd_ss_matches_model(aw in prop_oneof![Just(39u32), Just(48), Just(57)], sllps in 0u32..4,
                            ssade in any::<bool>(), ops in prop::collection::vec(op_strategy(), 1..40)) {
        let f = VtdSs::new(vtd::SsConfig { addr_width: aw, oas: 48, sllps, force_coherence: false, force_writeable: false }).unwrap();
        let o = ss_oracle(&f, false);
        let hw = ss_oracle(&f, true);
        let dirty = if ssade { Dirty::Hw { write: &hw, built_dirty: false } } else { Dirty::Off };
        run_model(f, &o, dirty, &ops)?;
    }

    #[test]
    fn vtd_fs_matches_model(levels in 4u32..=5, gb in any::<bool>(), ops in prop::collection::vec(op_strategy(), 1..40)) {
        let f = VtdFs::new(vtd::FsConfig { levels, oas: 48, gb_pages: gb }).unwrap();
        let o = fs_oracle(levels, gb);
        // The first stage presets A/D: no dirty tracking.
        run_model(f, &o, Dirty::Off, &ops)?;
    }

    #[test]
    fn mock_matches_model(ops in prop::collection::vec(op_strategy(), 1..40)) {
        run_model(AmdV1Mock, &no_oracle, Dirty::Engine, &ops)?;
    }

    /// `best_lg2`'s bit tricks against brute force (upstream's
    /// `test_best_pgsize`).
    #[test]
    fn best_pgsize_matches_brute_force(bitmap in any::<u64>(), va in any::<u64>(), oa in any::<u64>(),
                                       len in any::<u64>(), shift in 0u32..48) {
        let (va, oa) = (va << shift, oa << shift);
        let brute = (0..64u32).rev().find(|&b| {
            let s = 1u64 << b;
            bitmap & s != 0 && s <= len && va % s == 0 && oa % s == 0
        });
        prop_assert_eq!(best_lg2(bitmap, va, oa, len), brute);
    }
}

/// Every level and leaf size of a format: build the leaf at an OA, every
/// item decodes to the entry's OA and size, attributes round-trip.
fn entry_round_trips<F: Format>(f: &F, top_ok: bool) {
    let prots = (0u32..64)
        .filter(|p| f.attrs(*p).is_ok())
        .collect::<Vec<_>>();
    assert!(prots.contains(&RW), "RW must be supported");
    for level in 0..=f.top_level() {
        let ilg2 = F::GRANULE_LG2 + F::ITEMS_LG2 * level;
        let sizes = f.leaf_sizes(level);
        if level == f.top_level() && !top_ok {
            assert_eq!(sizes, 0);
        }
        for lg2 in (0..64).filter(|b| sizes & (1u64 << b) != 0) {
            assert!(lg2 >= ilg2, "size below the item size");
            assert!(
                lg2 < ilg2 + F::ITEMS_LG2,
                "a contiguous entry never spans a whole table"
            );
            let max_oa = (1u64 << f.oasz_lg2()) - (1u64 << lg2);
            for oa in [0, 1u64 << lg2, max_oa] {
                for &p in &prots {
                    let a = f.attrs(p).unwrap();
                    let n = 1u64 << (lg2 - ilg2);
                    for i in 0..n {
                        let pte = f.leaf_item(level, oa, lg2, i, &a);
                        let idx = (5 * n + i) as usize; // a group not at index 0
                        assert_eq!(
                            f.load(level, idx, pte),
                            Entry::Leaf { oa, size_lg2: lg2 },
                            "level {level} size 2^{lg2} item {i} pte {pte:#x}"
                        );
                        assert_eq!(f.attrs_of(level, pte), a, "attrs of prot {p:#x}");
                        assert_eq!(f.leaf_item(level, oa, lg2, i, &f.attrs_of(level, pte)), pte);
                        assert!(!f.is_dirty(f.make_clean(pte)));
                    }
                }
            }
        }
        if level > 0 {
            let pa = 0x1234_5000u64 & !((1u64 << F::GRANULE_LG2) - 1);
            assert_eq!(f.load(level, 3, f.table_entry(level, pa)), Entry::Table(pa));
        }
        assert_eq!(f.load(level, 0, 0), Entry::Empty);
    }
}

#[test]
fn entry_and_attribute_round_trips() {
    for s in [arm::Stage::S1, arm::Stage::S2] {
        for dbm in [false, true] {
            let mut c = arm_cfg(s, 48, true);
            c.dbm = dbm;
            entry_round_trips(&Vmsa::<Gran4K>::new(c).unwrap(), true);
            entry_round_trips(&Vmsa::<Gran16K>::new(c).unwrap(), true);
            entry_round_trips(&Vmsa::<Gran64K>::new(c).unwrap(), true);
            let mut c52 = c;
            c52.oas = 52;
            c52.ias = 52;
            entry_round_trips(&Vmsa::<Gran64K>::new(c52).unwrap(), true);
        }
    }
    for fc in [false, true] {
        let c = vtd::SsConfig {
            addr_width: 57,
            oas: 52,
            sllps: 3,
            force_coherence: fc,
            force_writeable: false,
        };
        entry_round_trips(&VtdSs::new(c).unwrap(), true);
    }
    entry_round_trips(
        &VtdFs::new(vtd::FsConfig {
            levels: 5,
            oas: 52,
            gb_pages: true,
        })
        .unwrap(),
        true,
    );
    entry_round_trips(&AmdV1Mock, false);
}

/// A golden leaf: 4 KiB at IOVA 0x1000 -> 0x8000_3000 (or `len` at
/// `iova`), read back as stored.
fn golden<F: Format>(f: F, iova: u64, oa: u64, len: u64, prot: u32) -> u64 {
    let mem = PtMem::new();
    let pt = PageTable::new(f, &mem).unwrap();
    map(&pt, iova, oa, len, prot).unwrap();
    let mut v = Vec::new();
    pt.for_each_leaf(|l| v.push(l.pte));
    assert_eq!(v.len(), 1);
    v[0]
}

#[test]
fn golden_encodings_match_linux() {
    let s1 = || Vmsa::<Gran4K>::new(arm_cfg(arm::Stage::S1, 48, true)).unwrap();
    let s2 = || Vmsa::<Gran4K>::new(arm_cfg(arm::Stage::S2, 48, true)).unwrap();
    let page = |f| golden(f, 0x1000, 0x8000_3000, 0x1000, RW | PROT_CACHE);
    assert_eq!(page(s1()), 0x0000_0000_8000_3F47);
    assert_eq!(
        golden(
            s1(),
            0x1000,
            0x8000_3000,
            0x1000,
            RW | PROT_CACHE | PROT_NOEXEC
        ),
        0x0060_0000_8000_3F47
    );
    assert_eq!(
        golden(s1(), 0x1000, 0x8000_3000, 0x1000, PROT_READ | PROT_CACHE),
        0x8000_3FC7
    );
    let mut hd = arm_cfg(arm::Stage::S1, 48, true);
    hd.dbm = true;
    assert_eq!(
        page(Vmsa::<Gran4K>::new(hd).unwrap()),
        0x8000_3F47 | 1 << 51
    );
    assert_eq!(page(s2()), 0x8000_37FF);
    // A 2 MiB block at level 2 is type 0b01.
    assert_eq!(
        golden(s1(), 0x20_0000, 0x8020_0000, 0x20_0000, RW | PROT_CACHE),
        0x8020_0F45
    );
    // 64 KiB aligned 64 KiB: a contiguous group of 16 pages, first item.
    assert_eq!(
        golden(s1(), 0x1_0000, 0x8001_0000, 0x1_0000, RW | PROT_CACHE),
        0x0010_0000_8001_0F47
    );
    let ss = |fc| {
        VtdSs::new(vtd::SsConfig {
            addr_width: 48,
            oas: 48,
            sllps: 3,
            force_coherence: fc,
            force_writeable: false,
        })
        .unwrap()
    };
    assert_eq!(
        golden(ss(false), 0x1000, 0x8000_3000, 0x1000, RW),
        0x8000_3003
    );
    assert_eq!(
        golden(ss(true), 0x1000, 0x8000_3000, 0x1000, RW),
        0x8000_3803
    );
    assert_eq!(
        golden(ss(false), 0x20_0000, 0x8020_0000, 0x20_0000, RW),
        0x8020_0083
    );
    let fs = || {
        VtdFs::new(vtd::FsConfig {
            levels: 4,
            oas: 48,
            gb_pages: true,
        })
        .unwrap()
    };
    assert_eq!(golden(fs(), 0x1000, 0x8000_3000, 0x1000, RW), 0x8000_3067);
    assert_eq!(
        golden(fs(), 0x1000, 0x8000_3000, 0x1000, PROT_READ),
        0x8000_3025
    );
    // AMDv1 mock: OA in 2 KiB units at bit 12, IR|IW; 4 KiB = a size leaf.
    assert_eq!(
        golden(AmdV1Mock, 0x800, 0x8000_3800, 0x800, RW),
        0x6000_0001_0000_7001
    );
    assert_eq!(
        golden(AmdV1Mock, 0x1000, 0x8000_3000, 0x1000, RW),
        0x6000_0001_0000_6e01
    );
    // Errata: read-only is refused on a forced-writeable nest parent.
    let mut c = vtd::SsConfig {
        addr_width: 48,
        oas: 48,
        sllps: 3,
        force_coherence: false,
        force_writeable: true,
    };
    let mem = PtMem::new();
    let pt = PageTable::new(VtdSs::new(c).unwrap(), &mem).unwrap();
    assert_eq!(map(&pt, 0, 0, 0x1000, PROT_READ), Err(EINVAL));
    c.force_writeable = false;
    let _ = c;
}

/// `test_mixed`: [0x3fe400000, 0x4c0600000) identity-mapped gives exactly
/// 14x2M, 3x1G, 3x2M; with ARM contiguous hints the 2M runs become 32M
/// groups where aligned.
#[test]
fn mixed_sizes_give_exact_leaf_counts() {
    let (s, e) = (0x3_fe40_0000u64, 0x4_c060_0000u64);
    let count = |v: &[(u64, u64, u64)]| {
        let mut m = BTreeMap::new();
        for &(_, _, s) in v {
            *m.entry(s).or_insert(0) += 1;
        }
        m
    };
    let mem = PtMem::new();
    let ss = PageTable::new(
        VtdSs::new(vtd::SsConfig {
            addr_width: 48,
            oas: 48,
            sllps: 3,
            force_coherence: false,
            force_writeable: false,
        })
        .unwrap(),
        &mem,
    )
    .unwrap();
    map(&ss, s, s, e - s, RW).unwrap();
    let l = leaves(&ss);
    assert_eq!(l.len(), 20);
    assert_eq!(count(&l), BTreeMap::from([(1 << 21, 17), (1 << 30, 3)]));
    assert_eq!(
        l.iter().map(|x| x.2).collect::<Vec<_>>()[..15],
        [vec![1 << 21; 14], vec![1 << 30]].concat()[..]
    );
    let arm_nc = PageTable::new(
        Vmsa::<Gran4K>::new(arm_cfg(arm::Stage::S1, 48, false)).unwrap(),
        &mem,
    )
    .unwrap();
    map(&arm_nc, s, s, e - s, RW).unwrap();
    assert_eq!(leaves(&arm_nc), l);
    let arm_c = PageTable::new(
        Vmsa::<Gran4K>::new(arm_cfg(arm::Stage::S1, 48, true)).unwrap(),
        &mem,
    )
    .unwrap();
    map(&arm_c, s, s, e - s, RW).unwrap();
    let lc = leaves(&arm_c);
    assert_eq!(lc, model_leaves(arm_c.pgsize_bitmap(), s, s, e - s));
    // 0x3fe400000..0x400000000 is 14 x 2M, no 32M-aligned run of 16; the
    // tail 0x4c0000000..0x4c0600000 is 3 x 2M.
    assert_eq!(count(&lc), BTreeMap::from([(1 << 21, 17), (1 << 30, 3)]));
}

fn ss48() -> VtdSs {
    VtdSs::new(vtd::SsConfig {
        addr_width: 48,
        oas: 48,
        sllps: 3,
        force_coherence: false,
        force_writeable: false,
    })
    .unwrap()
}

/// A map the page-size mask cannot express fails before any table is
/// installed; a gather of another table is refused; a hole ends an unmap.
#[test]
fn misaligned_maps_foreign_gathers_and_holes() {
    let mem = PtMem::new();
    let mut pt = PageTable::new(ss48(), &mem).unwrap();
    pt.set_pgsize_mask(1 << 21 | 1 << 30);
    assert_eq!(map(&pt, 0x1000, 0, 0x20_0000, RW), Err(EINVAL));
    assert_eq!(map(&pt, 0x20_0000, 0x1000, 0x20_0000, RW), Err(EINVAL));
    assert_eq!(mem.live(), 1, "no table installed");
    map(&pt, 0x20_0000, 0, 0x20_0000, RW).unwrap();
    map(&pt, 0x60_0000, 0, 0x20_0000, RW).unwrap();
    let mem2 = PtMem::new();
    let other = PageTable::new(ss48(), &mem2).unwrap();
    let mut g = other.gather(&NoFlush);
    assert_eq!(pt.unmap(0x20_0000, 0x20_0000, &mut g), 0);
    assert_eq!(pt.map(0x40_0000, 0, 0x20_0000, RW, &mut g), Err(EINVAL));
    assert!(g.is_empty());
    g.sync();
    // [2M, 8M) holds 2M, a hole, 2M: the unmap stops at the hole.
    assert_eq!(unmap(&pt, 0x20_0000, 0x60_0000), 0x20_0000);
    assert_eq!(unmap(&pt, 0x40_0000, 0x40_0000), 0, "starts in a hole");
    assert_eq!(unmap(&pt, 0x60_0000, 0x20_0000), 0x20_0000);
}

/// Table pages the hardware could not address (above the output size)
/// are refused: `ENOMEM`, nothing left behind.
#[test]
fn tables_above_the_output_size_are_refused() {
    let arm32 = || Vmsa::<Gran4K>::new(arm::VmsaConfig::s1(32, 32)).unwrap();
    let high = PtMem::at(1 << 32, 1 << 20);
    assert_eq!(PageTable::new(arm32(), &high).err(), Some(ENOMEM));
    assert_eq!(high.live(), 0);
    // The top table fits just below 4 GiB, every lower table would not.
    let edge = PtMem::at((1 << 32) - 0x1000, 1 << 20);
    let pt = PageTable::new(arm32(), &edge).unwrap();
    assert_eq!(map(&pt, 0, 0, 0x1000, RW), Err(ENOMEM));
    assert_eq!(edge.live(), 1);
    assert!(leaves(&pt).is_empty());
    drop(pt);
    assert_eq!(edge.live(), 0);
}

/// `test_pgsize_boundary`: a regression in upstream's size choice.
#[test]
fn pgsize_boundary() {
    let mem = PtMem::new();
    let pt = PageTable::new(
        Vmsa::<Gran4K>::new(arm_cfg(arm::Stage::S1, 48, true)).unwrap(),
        &mem,
    )
    .unwrap();
    map(
        &pt,
        0xfef8_0000,
        0x20_8b95_d000,
        0xfefa_0000 - 0xfef8_0000,
        RW,
    )
    .unwrap();
    for at in (0xfef8_0000u64..0xfefa_0000).step_by(0x1000) {
        assert_eq!(pt.iova_to_phys(at), Some(0x20_8b95_d000 + at - 0xfef8_0000));
    }
    assert!(
        leaves(&pt).iter().all(|l| l.2 == 0x1000),
        "OA alignment allows only 4K"
    );
}

/// A large leaf replaces empty tables (freed through the gather); a range
/// starting at a leaf but ending inside it removes the whole leaf.
#[test]
fn table_to_leaf_and_unmap_split() {
    let mem = PtMem::new();
    let f = VtdSs::new(vtd::SsConfig {
        addr_width: 48,
        oas: 48,
        sllps: 3,
        force_coherence: false,
        force_writeable: false,
    })
    .unwrap();
    let pt = PageTable::new(f, &mem).unwrap();
    let base = 0x4000_0000u64;
    for i in 0..8 {
        map(&pt, base + i * 0x20_0000 + 0x1000, 0x1000, 0x1000, RW).unwrap();
    }
    let with_tables = mem.live();
    // Unmapping the pages only leaves the (now empty) tables in place.
    for i in 0..8 {
        assert_eq!(unmap(&pt, base + i * 0x20_0000 + 0x1000, 0x1000), 0x1000);
    }
    assert_eq!(mem.live(), with_tables);
    // A 1 GiB leaf over the empty subtree frees all of it.
    map(&pt, base, 0x8000_0000, 1 << 30, RW).unwrap();
    assert_eq!(leaves(&pt), vec![(base, 0x8000_0000, 1 << 30)]);
    assert_eq!(mem.live(), with_tables - 9);
    // Unmap of the first 4K of the 1G leaf removes it whole.
    assert_eq!(unmap(&pt, base, 0x1000), 1 << 30);
    assert!(leaves(&pt).is_empty());
    // Overmapping a non-empty subtree fails and changes nothing.
    map(&pt, base + 0x1000, 0x1000, 0x1000, RW).unwrap();
    assert_eq!(map(&pt, base, 0x8000_0000, 1 << 30, RW), Err(EADDRINUSE));
    assert_eq!(leaves(&pt), vec![(base + 0x1000, 0x1000, 0x1000)]);
    // Fill 2M with 4K pages, unmap them all (the table goes), map 2M.
    let b2 = base + (4 << 21);
    map(&pt, b2, 0x10_0000_0000, 1 << 21, RW).unwrap_or(());
    assert_eq!(leaves(&pt).len(), 2);
    assert_eq!(unmap(&pt, b2, 1 << 21), 1 << 21);
    for i in 0..512u64 {
        map(
            &pt,
            b2 + i * 0x1000,
            0x10_0000_1000 + i * 0x1000,
            0x1000,
            RW,
        )
        .unwrap();
    }
    let before = mem.live();
    assert_eq!(unmap(&pt, b2, 1 << 21), 1 << 21);
    assert_eq!(mem.live(), before - 1, "the fully covered table is freed");
    map(&pt, b2, 0x20_0000_0000, 1 << 21, RW).unwrap();
    assert_eq!(pt.iova_to_phys(b2 + 0x1234), Some(0x20_0000_1234));
}

/// Records every flush with the number of live tables at that moment.
struct Recorder<'a> {
    mem: &'a PtMem,
    flushes: Mutex<Vec<(u64, u64, bool, usize)>>,
}

impl IotlbFlush for Recorder<'_> {
    fn flush(&self, first: u64, last: u64, leaf_only: bool) {
        self.flushes
            .lock()
            .unwrap()
            .push((first, last, leaf_only, self.mem.live()));
    }
}

#[test]
fn gather_frees_tables_only_after_the_flush() {
    let mem = PtMem::new();
    let f = Vmsa::<Gran4K>::new(arm_cfg(arm::Stage::S1, 48, false)).unwrap();
    let pt = PageTable::new(f, &mem).unwrap();
    let base = 0x80_0000_0000u64;
    // 40 full level-3 tables (4K pages: the OA is only 4K-aligned),
    // chained through the gather without memory.
    map(&pt, base, 0x4000_1000, 40 * 0x20_0000, RW).unwrap();
    let live = mem.live();
    let rec = Recorder {
        mem: &mem,
        flushes: Mutex::new(Vec::new()),
    };
    let mut g = pt.gather(&rec);
    assert_eq!(pt.unmap(base, 40 * 0x20_0000, &mut g), 40 * 0x20_0000);
    // Nothing is flushed or freed before the sync.
    assert!(rec.flushes.lock().unwrap().is_empty());
    assert_eq!(mem.live(), live, "no table is freed before the flush");
    assert_eq!(g.sync(), 1);
    let fl = rec.flushes.lock().unwrap().clone();
    // One flush, issued while every detached table was still allocated.
    assert_eq!(fl.len(), 1);
    assert_eq!(fl[0].3, live);
    assert!(fl.iter().all(|f| !f.2), "tables were freed: not leaf-only");
    // It covers every unmapped byte.
    assert_eq!((fl[0].0, fl[0].1), (base, base + 40 * 0x20_0000 - 1));
    // The 40 leaf tables are gone; top, L1 and L2 stay.
    assert_eq!(mem.live(), live - 40);
    assert_eq!(live, 43);
}

#[test]
fn allocation_failure_rolls_back() {
    // A map needing 7 new tables (just below and above the 512G line),
    // failed at every allocation in turn on a fresh table: nothing is
    // left mapped and, once the table is dropped, nothing leaks.
    let mem = PtMem::new();
    let mut first_ok = None;
    for n in 0..10 {
        let f = Vmsa::<Gran4K>::new(arm_cfg(arm::Stage::S2, 48, true)).unwrap();
        let pt = PageTable::new(f, &mem).unwrap();
        map(&pt, 0x40_0000_0000, 0x1000_0000, 0x1000, RW).unwrap();
        let before = leaves(&pt);
        mem.fail_after(n);
        let r = map(
            &pt,
            0x80_0000_0000 - 0x1000,
            0x0200_0000_1000,
            0x40_3000,
            RW,
        );
        mem.fail_after(usize::MAX);
        if r.is_ok() {
            first_ok = Some(n);
            assert_eq!(unmap(&pt, 0x40_0000_0000, 0x1000), 0x1000);
            assert_eq!(unmap(&pt, 0x80_0000_0000 - 0x1000, 0x40_3000), 0x40_3000);
            drop(pt);
            assert_eq!(mem.live(), 0);
            break;
        }
        assert_eq!(r, Err(ENOMEM), "n = {n}");
        assert_eq!(leaves(&pt), before, "n = {n}");
        drop(pt);
        assert_eq!(mem.live(), 0, "n = {n}");
    }
    assert_eq!(first_ok, Some(7));
}

#[test]
fn dirty_tracking_with_the_walkers() {
    // ARM stage 1 and 2 with DBM: leaves start writable-dirty; clean them,
    // write through the walker (HTTU), read the whole contiguous entry back.
    for stage in [arm::Stage::S1, arm::Stage::S2] {
        let mem = PtMem::new();
        let mut c = arm_cfg(stage, 48, true);
        c.dbm = true;
        let f = Vmsa::<Gran4K>::new(c).unwrap();
        let walk = arm_oracle(&f, true);
        let pt = PageTable::new(f, &mem).unwrap();
        map(&pt, 0x10_0000, 0x4010_0000, 0x1_0000 + 0x1000, RW).unwrap();
        let rd = |no_clear| {
            let mut v = Vec::new();
            let mut g = pt.gather(&NoFlush);
            pt.read_and_clear_dirty(0, 1 << 30, no_clear, &mut g, |i, l| v.push((i, l)));
            g.sync();
            v
        };
        assert_eq!(
            rd(false),
            vec![(0x10_0000, 0x1_0000), (0x11_0000, 0x1000)],
            "{stage:?} built dirty"
        );
        assert!(rd(false).is_empty());
        // A read does not dirty; the walker refuses nothing.
        assert_eq!(walk(&mem, pt.top_phys(), 0x10_5000, false), Ok(0x4010_5000));
        assert!(rd(false).is_empty());
        assert_eq!(walk(&mem, pt.top_phys(), 0x10_5000, true), Ok(0x4010_5000));
        assert_eq!(
            rd(true),
            vec![(0x10_0000, 0x1_0000)],
            "one item dirties the whole group"
        );
        assert_eq!(rd(false), vec![(0x10_0000, 0x1_0000)]);
        assert!(rd(false).is_empty());
        // Without DBM a clean read-only leaf refuses writes in the walker.
        let f2 = Vmsa::<Gran4K>::new(arm_cfg(stage, 48, true)).unwrap();
        let walk2 = arm_oracle(&f2, false);
        let pt2 = PageTable::new(f2, &mem).unwrap();
        map(&pt2, 0, 0x4000_0000, 0x1000, PROT_READ).unwrap();
        assert!(walk2(&mem, pt2.top_phys(), 0x10, true).is_err());
        assert_eq!(walk2(&mem, pt2.top_phys(), 0x10, false), Ok(0x4000_0010));
    }
    // VT-d second stage with SSADE: the walker sets D, the engine reads it.
    let mem = PtMem::new();
    let f = VtdSs::new(vtd::SsConfig {
        addr_width: 48,
        oas: 48,
        sllps: 3,
        force_coherence: false,
        force_writeable: false,
    })
    .unwrap();
    let walk = ss_oracle(&f, true);
    let pt = PageTable::new(f, &mem).unwrap();
    map(&pt, 0x20_0000, 0x4020_0000, 0x20_0000 + 0x2000, RW).unwrap();
    let rd = |no_clear| {
        let mut v = Vec::new();
        let mut g = pt.gather(&NoFlush);
        pt.read_and_clear_dirty(0, 1 << 30, no_clear, &mut g, |i, l| v.push((i, l)));
        g.sync();
        v
    };
    assert!(rd(false).is_empty());
    assert_eq!(walk(&mem, pt.top_phys(), 0x21_0000, true), Ok(0x4021_0000));
    assert_eq!(walk(&mem, pt.top_phys(), 0x40_1000, true), Ok(0x4040_1000));
    assert_eq!(rd(false), vec![(0x20_0000, 0x20_0000), (0x40_1000, 0x1000)]);
    assert!(rd(false).is_empty());
}

#[test]
fn walkers_reject_corrupted_tables() {
    let mem = PtMem::new();
    let mut c = arm::VmsaConfig::s1(48, 40);
    c.contiguous = true;
    let f = Vmsa::<Gran4K>::new(c).unwrap();
    let walk = arm_oracle(&f, false);
    let pt = PageTable::new(f, &mem).unwrap();
    map(&pt, 0x1_0000, 0x2_0000, 0x1_0000, RW).unwrap();
    let top = pt.top_phys();
    assert_eq!(walk(&mem, top, 0x1_3000, false), Ok(0x2_3000));
    // Find the leaf table's physical address through the walker's view.
    let l = leaves(&pt);
    assert_eq!(l, vec![(0x1_0000, 0x2_0000, 0x1_0000)]);
    let leaf_pa = |iova: u64| {
        let mut pa = top;
        for lvl in 0..3 {
            let idx = (iova >> (39 - 9 * lvl)) & 511;
            pa = mem.read_u64(pa + idx * 8).unwrap() & 0xff_ffff_f000;
        }
        pa + ((iova >> 12) & 511) * 8
    };
    let corrupt = |iova: u64, f: &dyn Fn(u64) -> u64| {
        let at = leaf_pa(iova);
        let v = mem.read_u64(at).unwrap();
        assert!(mem.cmpxchg_u64(at, v, f(v)));
        v
    };
    let restore = |iova: u64, v: u64| {
        let at = leaf_pa(iova);
        let cur = mem.read_u64(at).unwrap();
        assert!(mem.cmpxchg_u64(at, cur, v));
    };
    let kind = |iova| walk(&mem, top, iova, false).unwrap_err();
    // One item of the contiguous group loses the hint.
    let v = corrupt(0x1_5000, &|v| v & !arm::bits::CONT);
    assert!(kind(0x1_0000).contains("Contiguous"));
    restore(0x1_5000, v);
    // One item's output address is off by a page.
    let v = corrupt(0x1_7000, &|v| v + 0x1000);
    assert!(kind(0x1_2000).contains("Contiguous"));
    restore(0x1_7000, v);
    // An attribute differs inside the group.
    let v = corrupt(0x1_9000, &|v| v | arm::bits::AP_RDONLY | arm::bits::DBM);
    assert!(kind(0x1_9000).contains("Contiguous"));
    restore(0x1_9000, v);
    // Output address above the 40-bit OAS.
    let v = corrupt(0x1_0000, &|v| v & !arm::bits::CONT | 1 << 45);
    assert!(kind(0x1_0000).contains("AddressSize"));
    restore(0x1_0000, v);
    // Access flag clear without hardware update.
    let v = corrupt(0x1_1000, &|v| v & !arm::bits::AF);
    assert!(kind(0x1_1000).contains("AccessFlag") || kind(0x1_1000).contains("Contiguous"));
    restore(0x1_1000, v);
    assert_eq!(walk(&mem, top, 0x1_f000, true), Ok(0x2_f000));
    // VT-d: a reserved bit and SNP where snoop is not allowed.
    let mem = PtMem::new();
    let f = VtdSs::new(vtd::SsConfig {
        addr_width: 39,
        oas: 46,
        sllps: 3,
        force_coherence: false,
        force_writeable: false,
    })
    .unwrap();
    let pt = PageTable::new(f, &mem).unwrap();
    map(&pt, 0x1000, 0x5000, 0x1000, RW).unwrap();
    let mut pa = pt.top_phys();
    for lvl in 0..2 {
        pa = mem
            .read_u64(pa + ((0x1000u64 >> (30 - 9 * lvl)) & 511) * 8)
            .unwrap()
            & 0xf_ffff_ffff_f000;
    }
    let at = pa + 8;
    let v = mem.read_u64(at).unwrap();
    let cfg = |snoop| vw::SsConfig {
        levels: 3,
        root: pt.top_phys(),
        haw: 46,
        large_pages: 3,
        ssade: false,
        snoop_allowed: snoop,
    };
    let acc = vw::Access {
        write: true,
        exec: false,
        supervisor: false,
    };
    assert_eq!(
        vw::walk_ss(&mem, &cfg(false), 0x1008, acc).map(|t| t.pa),
        Ok(0x5008)
    );
    for bad in [1u64 << 62, 1 << 47, vtd::ss::SNP] {
        assert!(mem.cmpxchg_u64(at, v, v | bad));
        let e = vw::walk_ss(&mem, &cfg(false), 0x1008, acc).unwrap_err();
        assert_eq!(e.kind, vw::FaultKind::Reserved, "bit {bad:#x}");
        assert!(mem.cmpxchg_u64(at, v | bad, v));
    }
}

#[test]
fn concurrent_maps_of_disjoint_ranges() {
    let mem = PtMem::with_capacity(256 << 20);
    let f = Vmsa::<Gran4K>::new(arm_cfg(arm::Stage::S1, 48, true)).unwrap();
    let pt = PageTable::new(f, &mem).unwrap();
    let walk = arm_oracle(pt.format(), false);
    let base = 0x7f_c000_0000u64;
    // Four threads interleave 4K pages in every 2M region: they race to
    // install the same level-1/2 tables and share every level-3 table.
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let pt = &pt;
            s.spawn(move || {
                for r in 0..16u64 {
                    for i in (t..512).step_by(4) {
                        let iova = base + r * 0x20_0000 + i * 0x1000;
                        let mut g = pt.gather(&NoFlush);
                        pt.map(iova, iova ^ 0x1_0000_0000, 0x1000, RW, &mut g)
                            .unwrap();
                        g.sync();
                    }
                }
            });
        }
    });
    for r in 0..16u64 {
        for i in 0..512u64 {
            let iova = base + r * 0x20_0000 + i * 0x1000;
            assert_eq!(
                walk(&mem, pt.top_phys(), iova + 4, true),
                Ok((iova ^ 0x1_0000_0000) + 4)
            );
        }
    }
    // Top + L1 + L2 + 16 L3 tables: no duplicates from lost races leaked.
    assert_eq!(mem.live(), 3 + 16);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let pt = &pt;
            s.spawn(move || {
                for r in (t..16).step_by(4) {
                    let mut g = pt.gather(&NoFlush);
                    assert_eq!(pt.unmap(base + r * 0x20_0000, 0x20_0000, &mut g), 0x20_0000);
                    g.sync();
                }
            });
        }
    });
    assert_eq!(mem.live(), 3);
    drop(pt);
    assert_eq!(mem.live(), 0);
}

#[test]
fn geometry_and_registers() {
    // Stage-2 concatenation: 4K granule, 40-bit IPA starts at level 1
    // with two tables; 16K/48-bit at level 1 with two; 64K/42 at level 2.
    let s2 = |ias, oas| {
        let mut c = arm::VmsaConfig::s2(ias, oas);
        c.prefer_concat = false;
        c
    };
    let f = Vmsa::<Gran4K>::new(s2(40, 40)).unwrap();
    assert_eq!((f.start_level(), f.concat_tables()), (1, 2));
    assert_eq!(f.vtcr() & 0xff, 24 | 1 << 6);
    let f = Vmsa::<Gran4K>::new(s2(48, 48)).unwrap();
    assert_eq!((f.start_level(), f.concat_tables()), (0, 1));
    let f = Vmsa::<Gran16K>::new(s2(48, 48)).unwrap();
    assert_eq!((f.start_level(), f.concat_tables()), (1, 2));
    let f = Vmsa::<Gran4K>::new(arm::VmsaConfig::s2(36, 48)).unwrap();
    assert_eq!((f.start_level(), f.concat_tables()), (1, 1));
    // 4K never starts a stage 2 at level 3, even where that saves a level.
    let f = Vmsa::<Gran4K>::new(arm::VmsaConfig::s2(25, 48)).unwrap();
    assert_eq!((f.start_level(), f.concat_tables()), (2, 1));
    let f = Vmsa::<Gran4K>::new(arm::VmsaConfig::s1(32, 48)).unwrap();
    assert_eq!((f.start_level(), f.top_items_lg2()), (1, 2));
    assert!(Vmsa::<Gran4K>::new(arm::VmsaConfig::s1(52, 52)).is_err());
    assert_eq!(
        VtdSs::new(vtd::SsConfig {
            addr_width: 57,
            oas: 52,
            sllps: 3,
            force_coherence: false,
            force_writeable: false
        })
        .unwrap()
        .aw(),
        3
    );
    assert!(VtdSs::new(vtd::SsConfig {
        addr_width: 40,
        oas: 52,
        sllps: 3,
        force_coherence: false,
        force_writeable: false
    })
    .is_err());
}
