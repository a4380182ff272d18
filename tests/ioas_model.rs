//! Property tests of the IOAS core against small reference models:
//!
//! * `iopt_matches_model`: an `Iopt` (through an `Ioas`, no domains) under
//!   random maps (fixed and allocated IOVA), unmaps, reserved and allowed
//!   ranges and the huge-page switch, against a list of areas and an
//!   emulation of upstream's `iopt_alloc_iova()`.
//! * `pins_follow_areas_with_domains`: random map / copy / unmap / domain
//!   attach and detach through the ioctl layer; the fake pins and the
//!   accounting always equal the distinct pages that areas of IOASes with a
//!   domain reference, every domain translates exactly the areas, and
//!   closing the file releases everything.
//! * `mock_page_table_matches_model`: `MockPageTable` against a map of
//!   2 KiB granules.
//! * `failed_pinning_leaves_no_trace`: pin failures and RLIMIT failures
//!   (`fake::fail_pin_after`, `fake::set_limit`) during a map, a copy or a
//!   domain attach leave no pins, no accounting and no state change.

mod ioas_common;

use ioas_common::*;
use iommufd_rs::drivers::mock::pagetable::MockPageTable;
use iommufd_rs::errno::*;
use iommufd_rs::ioas::iopt::{prot, PagesSlice, ResvOwner};
use iommufd_rs::ioas::pages::Pages;
use iommufd_rs::ioas::Ioas;
use iommufd_rs::platform::{fake, PinSource};
use iommufd_rs::ucmd::{Cx, Ictx};
use iommufd_uapi::{IOMMU_IOAS_MAP_FIXED_IOVA, MOCK_APERTURE_LAST};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const MAX: u64 = u64::MAX;
const PMD: u64 = 2 << 20;

/// `cases` cases, and no regression files written into the source tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// a. Iopt against a model of areas, reserved and allowed ranges.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum AOp {
    MapFixed {
        iova: u64,
        len: u64,
        addr: u64,
        ro_pages: bool,
    },
    MapAuto {
        addr: u64,
        len: u64,
    },
    Unmap {
        start: u64,
        last: u64,
    },
    UnmapArea {
        pick: usize,
        trim: u64,
    },
    Reserve {
        start: u64,
        last: u64,
        owner: u32,
    },
    Unreserve {
        owner: u32,
    },
    Allow(Vec<(u64, u64)>),
    HugePages(bool),
}

fn iova_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => (0u64..160).prop_map(|u| u * 0x800),
        2 => 0u64..0x50000,
        1 => (1u64..4).prop_map(|k| MAX - k * 0x1000 + 1),
    ]
}

fn len_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => (1u64..12).prop_map(|u| u * 0x800),
        2 => 1u64..0x6000,
        1 => Just(0u64),
    ]
}

fn addr_strategy() -> impl Strategy<Value = u64> {
    (
        0u64..64,
        prop_oneof![3 => Just(0u64), 2 => Just(0x800u64), 1 => 0u64..0x1000],
    )
        .prop_map(|(k, off)| 0x7000_0000 + k * 0x1000 + off)
}

/// Sorted, non-overlapping, non-adjacent ranges (what ALLOW_IOVAS validates
/// plus a gap: adjacent ranges are a known divergence, see ioas_ioctls.rs).
fn allowed_strategy() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((0u64..200, 1u64..40), 0..4).prop_map(|v| {
        let mut v: Vec<(u64, u64)> = v
            .into_iter()
            .map(|(s, n)| (s * 0x800, (s + n) * 0x800 - 1))
            .collect();
        v.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (s, l) in v {
            if out.last().is_none_or(|&(_, pl)| s > pl + 1) {
                out.push((s, l));
            }
        }
        out
    })
}

fn reserve_strategy() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        6 => (0u64..160, 1u64..16).prop_map(|(s, n)| (s * 0x800, (s + n) * 0x800 - 1)),
        // Shifted by a byte or two: one-byte holes and overlaps.
        2 => (0u64..160, 1u64..16, 0u64..3)
            .prop_map(|(s, n, d)| (s * 0x800 + d, (s + n) * 0x800 - 1 + d)),
        1 => (1u64..0x8000).prop_map(|l| (0, l)),
        1 => (1u64..4).prop_map(|k| (MAX - k * 0x1000 + 1, MAX)),
    ]
}

fn aop_strategy() -> impl Strategy<Value = AOp> {
    prop_oneof![
        6 => (iova_strategy(), len_strategy(), addr_strategy(), prop::bool::weighted(0.1))
            .prop_map(|(iova, len, addr, ro_pages)| AOp::MapFixed { iova, len, addr, ro_pages }),
        5 => (addr_strategy(), len_strategy()).prop_map(|(addr, len)| AOp::MapAuto { addr, len }),
        2 => (iova_strategy(), 1u64..0x20000)
            .prop_map(|(start, n)| AOp::Unmap { start, last: start.saturating_add(n - 1) }),
        3 => (any::<usize>(), prop_oneof![3 => Just(0u64), 1 => 1u64..0x3000])
            .prop_map(|(pick, trim)| AOp::UnmapArea { pick, trim }),
        2 => (reserve_strategy(), 0u32..3)
            .prop_map(|((start, last), owner)| AOp::Reserve { start, last, owner }),
        1 => (0u32..3).prop_map(|owner| AOp::Unreserve { owner }),
        2 => allowed_strategy().prop_map(AOp::Allow),
        1 => any::<bool>().prop_map(AOp::HugePages),
    ]
}

#[derive(Clone, Debug, PartialEq)]
struct MArea {
    last: u64,
    page_off: u64,
}

#[derive(Default)]
struct IoptModel {
    areas: BTreeMap<u64, MArea>,
    reserved: Vec<(u64, u64, u32)>,
    allowed: Vec<(u64, u64)>,
    huge_disabled: bool,
}

fn hits(ranges: impl IntoIterator<Item = (u64, u64)>, start: u64, last: u64) -> bool {
    ranges.into_iter().any(|(s, l)| s <= last && l >= start)
}

/// Sorts and merges overlapping or adjacent ranges (what upstream's
/// interval tree span iterators see as one used span).
fn merge(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, l) in v {
        match out.last_mut() {
            Some(p) if p.1 == MAX || s <= p.1 + 1 => p.1 = p.1.max(l),
            _ => out.push((s, l)),
        }
    }
    out
}

/// The holes of merged `used` within `start..=last`.
fn holes(used: &[(u64, u64)], start: u64, last: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut pos = start;
    for &(s, l) in used {
        if l < pos || s > last {
            continue;
        }
        if s > pos {
            out.push((pos, s - 1));
        }
        if l >= last {
            return out;
        }
        pos = pos.max(l + 1);
    }
    if pos <= last {
        out.push((pos, last));
    }
    out
}

/// Upstream's `__alloc_iova_check_range()`.
fn check_range(start: u64, last: u64, len: u64, align: u64, page_offset: u64) -> Option<u64> {
    let aligned = (start.checked_add(align - 1)? & !(align - 1)) | page_offset;
    if aligned >= last || last - aligned < len - 1 {
        return None;
    }
    Some(aligned)
}

/// The allocator's alignment for `addr` and `len` (upstream's rule).
fn alloc_align(addr: u64, len: u64) -> u64 {
    let r = len.next_power_of_two();
    let a = if addr == 0 {
        r
    } else {
        r.min(1 << addr.trailing_zeros())
    };
    a.min(PMD)
}

impl IoptModel {
    fn align(&self) -> u64 {
        if self.huge_disabled {
            PS
        } else {
            1
        }
    }

    fn area_ranges(&self) -> Vec<(u64, u64)> {
        self.areas.iter().map(|(&i, a)| (i, a.last)).collect()
    }

    fn reserved_hits(&self, start: u64, last: u64) -> bool {
        hits(self.reserved.iter().map(|&(s, l, _)| (s, l)), start, last)
    }

    fn area_hits(&self, start: u64, last: u64) -> bool {
        hits(self.area_ranges(), start, last)
    }

    /// Emulates upstream's `iopt_alloc_iova()`.
    fn alloc(&self, addr: u64, len: u64) -> Result<u64> {
        if len == 0 || len >= MAX / 2 {
            return Err(EOVERFLOW);
        }
        let po = addr % PS;
        let align = alloc_align(addr, len);
        if align < self.align() {
            return Err(EINVAL);
        }
        let (lo, hi) = (PS, MAX - PS);
        let spans: Vec<(u64, u64)> = if self.allowed.is_empty() {
            vec![(lo, hi)]
        } else {
            merge(self.allowed.clone())
                .into_iter()
                .filter(|&(s, l)| l >= lo && s <= hi)
                .map(|(s, l)| (s.max(lo), l.min(hi)))
                .collect()
        };
        let mut used: Vec<(u64, u64)> = self.reserved.iter().map(|&(s, l, _)| (s, l)).collect();
        used.extend(self.area_ranges());
        let used = merge(used);
        for (s, l) in spans {
            let Some(a) = check_range(s, l, len, align, po) else {
                continue;
            };
            for (hs, hl) in holes(&used, a, l) {
                if let Some(iova) = check_range(hs, hl, len, align, po) {
                    return Ok(iova);
                }
            }
        }
        Err(ENOSPC)
    }

    /// What a map of `len` bytes of `addr` at `iova` (None: allocated)
    /// returns, in upstream's check order.
    fn map(&self, iova: Option<u64>, len: u64, addr: u64, ro_pages: bool) -> Result<u64> {
        let a = self.align();
        if len == 0 || len & (a - 1) != 0 {
            return Err(EINVAL);
        }
        let iova = match iova {
            Some(iova) => {
                if iova & (a - 1) != 0 {
                    return Err(EINVAL);
                }
                let last = iova.checked_add(len - 1).ok_or(EOVERFLOW)?;
                if self.reserved_hits(iova, last) {
                    return Err(EINVAL);
                }
                if self.area_hits(iova, last) {
                    return Err(EEXIST);
                }
                iova
            }
            None => self.alloc(addr, len)?,
        };
        if ro_pages {
            return Err(EPERM);
        }
        if (addr % PS) & (a - 1) != 0 {
            return Err(EINVAL);
        }
        Ok(iova)
    }

    /// `Ioas::unmap`: whole areas inside `start..=last`, in order, until
    /// one sticks out (ENOENT, the earlier ones stay unmapped).
    fn unmap(&mut self, start: u64, last: u64) -> Result<u64> {
        let mut n = 0;
        let hit: Vec<(u64, u64)> = self
            .area_ranges()
            .into_iter()
            .filter(|&(s, l)| s <= last && l >= start)
            .collect();
        for (s, l) in hit {
            if s < start || l > last {
                return Err(ENOENT);
            }
            self.areas.remove(&s);
            n += l - s + 1;
        }
        Ok(n)
    }

    /// `IOAS_IOVA_RANGES`: the complement of the reserved ranges.
    fn iova_ranges(&self) -> Vec<(u64, u64)> {
        let used = merge(self.reserved.iter().map(|&(s, l, _)| (s, l)).collect());
        holes(&used, 0, MAX)
    }
}

/// Runs one op on the real Iopt (through an Ioas) and the model, checking
/// that both agree.
fn run_aop(
    cx: &Cx<'_>,
    ioas: &Ioas,
    m: &mut IoptModel,
    op: &AOp,
) -> std::result::Result<(), TestCaseError> {
    let rwc = prot::READ | prot::WRITE | prot::CACHE;
    match *op {
        AOp::MapFixed {
            iova,
            len,
            addr,
            ro_pages,
        } => {
            let got = map_slice(cx, ioas, addr, len, Some(iova), !ro_pages, rwc);
            let want = m.map(Some(iova), len, addr, ro_pages);
            prop_assert_eq!(got, want, "map fixed {:#x}+{:#x} of {:#x}", iova, len, addr);
            if let Ok(iova) = got {
                m.areas.insert(
                    iova,
                    MArea {
                        last: iova + (len - 1),
                        page_off: addr % PS,
                    },
                );
            }
        }
        AOp::MapAuto { addr, len } => {
            let got = map_slice(cx, ioas, addr, len, None, true, rwc);
            let want = m.map(None, len, addr, false);
            match (got, want) {
                // With a sub-page `addr`, upstream's `ALIGN_UP(start) |
                // page_offset` depends on where the hole search starts,
                // which upstream pre-aligns and iommufd-rs does not: both
                // pick a valid IOVA, not always the same one (checked
                // below). Success and failure must still agree.
                (Ok(_), Ok(_)) if addr % PS != 0 => {}
                (got, want) => {
                    prop_assert_eq!(got, want, "map auto {:#x} of {:#x}", len, addr)
                }
            }
            if let Ok(iova) = got {
                // The documented guarantees, independently of the model.
                let last = iova + len - 1;
                prop_assert!(iova != 0);
                prop_assert!(iova >= PS && last <= MAX - PS);
                prop_assert_eq!(iova % alloc_align(addr, len), 0, "alignment of {:#x}", iova);
                prop_assert!(!m.reserved_hits(iova, last), "reserved {:#x}", iova);
                prop_assert!(!m.area_hits(iova, last), "overlap {:#x}", iova);
                if !m.allowed.is_empty() {
                    prop_assert!(
                        m.allowed.iter().any(|&(s, l)| s <= iova && last <= l),
                        "{:#x}..={:#x} outside {:x?}",
                        iova,
                        last,
                        m.allowed
                    );
                }
                m.areas.insert(
                    iova,
                    MArea {
                        last,
                        page_off: addr % PS,
                    },
                );
            }
        }
        AOp::Unmap { start, last } => {
            let got = ioas.unmap(cx, start, last);
            prop_assert_eq!(
                got,
                m.unmap(start, last),
                "unmap {:#x}..={:#x}",
                start,
                last
            );
        }
        AOp::UnmapArea { pick, trim } => {
            if m.areas.is_empty() {
                return Ok(());
            }
            let (s, l) = m.area_ranges()[pick % m.areas.len()];
            let last = if trim == 0 || l - s < trim {
                l
            } else {
                l - trim
            };
            let got = ioas.unmap(cx, s, last);
            let want = if last == l {
                Ok(l - s + 1)
            } else {
                Err(ENOENT)
            };
            prop_assert_eq!(got, want, "unmap area {:#x}..={:#x} to {:#x}", s, l, last);
            prop_assert_eq!(m.unmap(s, last), want);
        }
        AOp::Reserve { start, last, owner } => {
            let got = ioas
                .iopt(cx.held)
                .unwrap()
                .reserve(start, last, ResvOwner::Device(owner));
            let want = if m.area_hits(start, last) || hits(m.allowed.clone(), start, last) {
                Err(EADDRINUSE)
            } else {
                m.reserved.push((start, last, owner));
                Ok(())
            };
            prop_assert_eq!(got, want, "reserve {:#x}..={:#x}", start, last);
        }
        AOp::Unreserve { owner } => {
            ioas.iopt(cx.held)
                .unwrap()
                .unreserve(ResvOwner::Device(owner));
            m.reserved.retain(|r| r.2 != owner);
        }
        AOp::Allow(ref list) => {
            let got = ioas.iopt(cx.held).unwrap().set_allowed(list.clone());
            let want = if list.iter().any(|&(s, l)| m.reserved_hits(s, l)) {
                Err(EADDRINUSE)
            } else {
                m.allowed = list.clone();
                Ok(())
            };
            prop_assert_eq!(got, want, "allow {:x?}", list);
        }
        AOp::HugePages(enable) => {
            let mut iopt = ioas.iopt(cx.held).unwrap();
            if enable {
                iopt.enable_large_pages();
                m.huge_disabled = false;
            } else {
                let got = iopt.disable_large_pages();
                let bad = m.areas.iter().any(|(&i, a)| {
                    i % PS != 0 || (a.last - i + 1) % PS != 0 || a.page_off % PS != 0
                });
                let want = if !m.huge_disabled && bad {
                    Err(EADDRINUSE)
                } else {
                    m.huge_disabled = true;
                    Ok(())
                };
                prop_assert_eq!(got, want, "disable huge pages");
            }
        }
    }
    Ok(())
}

/// Maps `len` bytes of user address `addr` into `ioas` as `map_user` does,
/// but with pages that may be read-only.
fn map_slice(
    cx: &Cx<'_>,
    ioas: &Ioas,
    addr: u64,
    len: u64,
    iova: Option<u64>,
    writable: bool,
    prot: u32,
) -> Result<u64> {
    let base = addr & !(PS - 1);
    let src = PinSource::user(base, writable)?;
    let pages = Pages::new(src, base, addr - base, len, writable)?;
    let slice = PagesSlice {
        pages,
        start_byte: addr - base,
        length: len,
    };
    ioas.iopt(cx.held)?
        .map_pages(cx.held, core::slice::from_ref(&slice), iova, prot)
}

/// The real Iopt's observable state equals the model's.
fn check_iopt(cx: &Cx<'_>, ioas: &Ioas, m: &IoptModel) -> std::result::Result<(), TestCaseError> {
    let iopt = ioas.iopt(cx.held).unwrap();
    let areas: Vec<(u64, u64)> = iopt.areas().iter().map(|a| (a.iova, a.last)).collect();
    prop_assert_eq!(&areas, &m.area_ranges());
    for a in iopt.areas() {
        prop_assert_eq!(a.start_byte % PS, m.areas[&a.iova].page_off);
    }
    prop_assert_eq!(iopt.iova_alignment(), m.align());
    prop_assert_eq!(iopt.large_pages_disabled(), m.huge_disabled);
    let mut ranges = Vec::new();
    iopt.iova_ranges(|s, l| {
        ranges.push((s, l));
        Ok(())
    })
    .unwrap();
    prop_assert_eq!(&ranges, &m.iova_ranges());
    // Nothing pinned without domains.
    prop_assert_eq!(fake::total_pins(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn iopt_matches_model(ops in prop::collection::vec(aop_strategy(), 1..60)) {
        fake::reset();
        let ictx = Ictx::new().unwrap();
        let ioas = Ioas::new();
        let held = ictx.lock();
        let cx = Cx { ictx: &ictx, arc: None, held: &held };
        let mut m = IoptModel::default();
        for op in &ops {
            run_aop(&cx, &ioas, &mut m, op)?;
            check_iopt(&cx, &ioas, &m)?;
        }
        // Unmap everything: the model and the real thing end empty.
        let total: u64 = m.areas.iter().map(|(&i, a)| a.last - i + 1).sum();
        prop_assert_eq!(ioas.unmap(&cx, 0, MAX), Ok(total));
        prop_assert!(ioas.iopt(&held).unwrap().areas().is_empty());
    }
}

/// Directed cases of the allocator that random sequences rarely hit.
#[test]
fn alloc_iova_edges() {
    let ictx = Ictx::new().unwrap();
    let ioas = Ioas::new();
    let held = ictx.lock();
    let iopt = || ioas.iopt(&held).unwrap();
    // Never 0, never the first page.
    assert_eq!(iopt().alloc_iova(0, 1), Ok(PS));
    assert_eq!(iopt().alloc_iova(0x1000_0000, 0x1000), Ok(PS));
    // The alignment is capped at a PMD.
    assert_eq!(iopt().alloc_iova(0x4000_0000, 0x4000_0000), Ok(PMD));
    // Zero and absurd lengths.
    assert_eq!(iopt().alloc_iova(0, 0), Err(EOVERFLOW));
    assert_eq!(iopt().alloc_iova(0, MAX / 2), Err(EOVERFLOW));
    // An allowed range at the very top is clipped below ULONG_MAX - PAGE_SIZE.
    iopt().set_allowed(vec![(MAX - 0x3fff, MAX)]).unwrap();
    assert_eq!(iopt().alloc_iova(0x1000_0000, 0x2000), Ok(MAX - 0x3fff));
    assert_eq!(iopt().alloc_iova(0x1000_0000, 0x4000), Err(ENOSPC));
    // An allowed range below PAGE_SIZE is never used.
    iopt().set_allowed(vec![(0, 0xfff)]).unwrap();
    assert_eq!(iopt().alloc_iova(0, 1), Err(ENOSPC));
    iopt().set_allowed(vec![(0, 0x1fff)]).unwrap();
    assert_eq!(iopt().alloc_iova(0, 1), Ok(PS));
    // Alignment smaller than the IOAS's: EINVAL.
    iopt().set_allowed(Vec::new()).unwrap();
    iopt().disable_large_pages().unwrap();
    assert_eq!(iopt().alloc_iova(0x1000_0800, 0x800), Err(EINVAL));
    assert_eq!(iopt().alloc_iova(0x1000_1000, 0x1000), Ok(PS));
}

// ---------------------------------------------------------------------------
// b. Pins follow the areas of IOASes that have a domain.
// ---------------------------------------------------------------------------

const NIOAS: usize = 2;
/// User buffers; the second overlaps the first so distinct Pages share
/// fake frames.
const BASES: [u64; 3] = [0x5000_0000, 0x5000_4000, 0x5100_0000];
/// The allowed (auto-allocation) window of each IOAS.
const WINDOW: u64 = 4 << 20;
/// Fixed IOVAs outside the aperture start here.
const OUTSIDE: u64 = 0x10_0000;

#[derive(Debug, Clone)]
enum BOp {
    Map {
        ioas: usize,
        base: usize,
        sub_page: bool,
        len_g: u64,
        fixed: Option<(bool, u64)>,
    },
    Copy {
        src: usize,
        pick: usize,
        off_g: u64,
        len_g: u64,
        dst: usize,
        fixed: Option<u64>,
    },
    Unmap {
        ioas: usize,
        pick: usize,
        mode: u8,
    },
    AddDomain {
        ioas: usize,
    },
    RemoveDomain {
        ioas: usize,
        pick: usize,
    },
}

fn bop_strategy() -> impl Strategy<Value = BOp> {
    let ioas = 0..NIOAS;
    prop_oneof![
        6 => (
            ioas.clone(),
            0..BASES.len(),
            any::<bool>(),
            1u64..9,
            prop::option::weighted(
                0.6,
                (prop::bool::weighted(0.9), 0u64..96),
            ),
        )
            .prop_map(|(ioas, base, sub_page, len_g, fixed)| BOp::Map {
                ioas,
                base,
                sub_page,
                len_g,
                fixed,
            }),
        4 => (
            ioas.clone(),
            any::<usize>(),
            0u64..8,
            1u64..8,
            ioas.clone(),
            prop::option::weighted(0.5, 0u64..96),
        )
            .prop_map(|(src, pick, off_g, len_g, dst, fixed)| BOp::Copy {
                src,
                pick,
                off_g,
                len_g,
                dst,
                fixed,
            }),
        4 => (ioas.clone(), any::<usize>(), 0u8..5)
            .prop_map(|(ioas, pick, mode)| BOp::Unmap { ioas, pick, mode }),
        2 => ioas.clone().prop_map(|ioas| BOp::AddDomain { ioas }),
        2 => (ioas, any::<usize>()).prop_map(|(ioas, pick)| BOp::RemoveDomain { ioas, pick }),
    ]
}

/// An area of the pin model: IOVA range and the slice of a Pages it shows.
#[derive(Clone, Copy, Debug)]
struct PArea {
    last: u64,
    pages: usize,
    start_byte: u64,
}

#[derive(Default, Clone)]
struct PIoas {
    areas: BTreeMap<u64, PArea>,
    hwpts: Vec<u32>,
    /// Every IOVA granule ever mapped here (probed for stale translations).
    seen: BTreeSet<u64>,
}

struct PinModel {
    /// The page-aligned user base of every Pages created.
    pages: Vec<u64>,
    ioas: Vec<PIoas>,
}

impl PinModel {
    fn in_aperture(iova: u64, last: u64) -> bool {
        iova >= A0 && last <= MOCK_APERTURE_LAST
    }

    fn overlaps(&self, i: usize, iova: u64, last: u64) -> bool {
        self.ioas[i]
            .areas
            .iter()
            .any(|(&s, a)| s <= last && a.last >= iova)
    }

    /// Distinct pages per Pages referenced by areas of IOASes with a domain.
    fn expected_pins(&self) -> u64 {
        let mut per: BTreeMap<usize, BTreeSet<u64>> = BTreeMap::new();
        for io in &self.ioas {
            if io.hwpts.is_empty() {
                continue;
            }
            for (&iova, a) in &io.areas {
                let first = a.start_byte / PS;
                let last = (a.start_byte + (a.last - iova)) / PS;
                per.entry(a.pages).or_default().extend(first..=last);
            }
        }
        per.values().map(|s| s.len() as u64).sum()
    }

    fn add_area(&mut self, i: usize, iova: u64, len: u64, pages: usize, start_byte: u64) {
        self.ioas[i].areas.insert(
            iova,
            PArea {
                last: iova + len - 1,
                pages,
                start_byte,
            },
        );
        self.ioas[i]
            .seen
            .extend((iova..iova + len).step_by(MPS as usize));
    }
}

fn run_bop(
    fd: &Fd,
    ids: &[u32],
    idev: u32,
    m: &mut PinModel,
    op: &BOp,
) -> std::result::Result<(), TestCaseError> {
    match *op {
        BOp::Map {
            ioas,
            base,
            sub_page,
            len_g,
            fixed,
        } => {
            let uva = BASES[base] + if sub_page { MPS } else { 0 };
            let len = len_g * MPS;
            let domains = !m.ioas[ioas].hwpts.is_empty();
            let got = match fixed {
                Some((inside, slot)) => {
                    let iova = if inside { A0 } else { OUTSIDE } + slot * MPS;
                    let last = iova + len - 1;
                    let want = if domains && !PinModel::in_aperture(iova, last) {
                        Err(EINVAL)
                    } else if m.overlaps(ioas, iova, last) {
                        Err(EEXIST)
                    } else {
                        Ok(iova)
                    };
                    let got = fd.map_fixed(ids[ioas], uva, len, iova);
                    prop_assert_eq!(got, want, "map fixed {:#x}+{:#x}", iova, len);
                    got
                }
                None => {
                    let got = fd.map_auto(ids[ioas], uva, len);
                    let iova = got.map_err(|e| TestCaseError::fail(format!("auto map: {e:?}")))?;
                    prop_assert!((A0..A0 + WINDOW).contains(&iova), "{:#x}", iova);
                    prop_assert!(!m.overlaps(ioas, iova, iova + len - 1));
                    prop_assert_eq!(iova % MPS, 0);
                    got
                }
            };
            if let Ok(iova) = got {
                m.pages.push(uva & !(PS - 1));
                let p = m.pages.len() - 1;
                m.add_area(ioas, iova, len, p, uva % PS);
            }
        }
        BOp::Copy {
            src,
            pick,
            off_g,
            len_g,
            dst,
            fixed,
        } => {
            let flags = RW
                | if fixed.is_some() {
                    IOMMU_IOAS_MAP_FIXED_IOVA
                } else {
                    0
                };
            let dst_iova = fixed.map_or(0, |slot| A0 + slot * MPS);
            if m.ioas[src].areas.is_empty() {
                let got = fd.copy(flags, ids[dst], ids[src], A0 + (7 << 20), MPS, dst_iova);
                prop_assert_eq!(got, Err(ENOENT));
                return Ok(());
            }
            let n = m.ioas[src].areas.len();
            let (&siova, &a) = m.ioas[src].areas.iter().nth(pick % n).unwrap();
            let area_g = (a.last - siova + 1) / MPS;
            let off_g = off_g % area_g;
            let len_g = len_g.min(area_g - off_g);
            let (src_iova, len) = (siova + off_g * MPS, len_g * MPS);
            let dst_domains = !m.ioas[dst].hwpts.is_empty();
            let want = match fixed {
                Some(_) => {
                    let last = dst_iova + len - 1;
                    if dst_domains && !PinModel::in_aperture(dst_iova, last) {
                        Err(EINVAL)
                    } else if m.overlaps(dst, dst_iova, last) {
                        Err(EEXIST)
                    } else {
                        Ok(dst_iova)
                    }
                }
                None => Ok(0),
            };
            let got = fd.copy(flags, ids[dst], ids[src], src_iova, len, dst_iova);
            match (got, want) {
                (Ok(iova), Ok(_)) if fixed.is_none() => {
                    prop_assert!((A0..A0 + WINDOW).contains(&iova), "{:#x}", iova);
                    prop_assert!(!m.overlaps(dst, iova, iova + len - 1));
                }
                (got, want) => prop_assert_eq!(got, want, "copy to {:#x}", dst_iova),
            }
            if let Ok(iova) = got {
                let sb = a.start_byte + off_g * MPS;
                m.add_area(dst, iova, len, a.pages, sb);
            }
        }
        BOp::Unmap { ioas, pick, mode } => {
            let id = ids[ioas];
            let io = &mut m.ioas[ioas];
            let ranges: Vec<(u64, u64)> = io.areas.iter().map(|(&s, a)| (s, a.last)).collect();
            if mode == 2 {
                let total = ranges.iter().map(|&(s, l)| l - s + 1).sum();
                prop_assert_eq!(fd.unmap_all(id), Ok(total));
                io.areas.clear();
                return Ok(());
            }
            if ranges.is_empty() || mode == 4 {
                prop_assert_eq!(fd.unmap(id, A0 + (7 << 20), PS), Err(ENOENT));
                return Ok(());
            }
            let k = pick % ranges.len();
            let (s, l) = ranges[k];
            match mode {
                0 => {
                    prop_assert_eq!(fd.unmap(id, s, l - s + 1), Ok(l - s + 1));
                    io.areas.remove(&s);
                }
                1 if l - s + 1 > MPS => {
                    prop_assert_eq!(fd.unmap(id, s, l - s + 1 - MPS), Err(ENOENT));
                }
                _ => {
                    // From this area to the next one (holes included).
                    let (_, l2) = ranges[(k + 1).min(ranges.len() - 1)];
                    let sum = ranges[k..=(k + 1).min(ranges.len() - 1)]
                        .iter()
                        .map(|&(a, b)| b - a + 1)
                        .sum();
                    prop_assert_eq!(fd.unmap(id, s, l2 - s + 1), Ok(sum));
                    io.areas.retain(|&a, _| a < s || a > l2);
                }
            }
        }
        BOp::AddDomain { ioas } => {
            let outside = m.ioas[ioas]
                .areas
                .iter()
                .any(|(&s, a)| !PinModel::in_aperture(s, a.last));
            let got = fd.hwpt_alloc(idev, ids[ioas]);
            if outside {
                prop_assert_eq!(got, Err(EADDRINUSE));
            } else {
                let h = got.map_err(|e| TestCaseError::fail(format!("hwpt alloc: {e:?}")))?;
                m.ioas[ioas].hwpts.push(h);
            }
        }
        BOp::RemoveDomain { ioas, pick } => {
            let hw = &mut m.ioas[ioas].hwpts;
            if hw.is_empty() {
                return Ok(());
            }
            let h = hw.remove(pick % hw.len());
            prop_assert_eq!(fd.destroy(h), Ok(()));
        }
    }
    Ok(())
}

/// Pins, accounting, areas and every domain's translations match the model.
fn check_pins(fd: &Fd, ids: &[u32], m: &PinModel) -> std::result::Result<(), TestCaseError> {
    let want = m.expected_pins();
    prop_assert_eq!(fake::total_pins(), want, "pins");
    prop_assert_eq!(fake::accounted(), want as i64, "accounting");
    for (i, io) in m.ioas.iter().enumerate() {
        let areas: Vec<(u64, u64)> = io.areas.iter().map(|(&s, a)| (s, a.last)).collect();
        prop_assert_eq!(fd.areas(ids[i]), areas);
        prop_assert_eq!(fd.ndomains(ids[i]), io.hwpts.len());
        // Every granule ever mapped, and the neighbours of the current
        // areas, translate exactly as the areas say.
        let mut probe: BTreeSet<u64> = io.seen.clone();
        for (&s, a) in &io.areas {
            probe.insert(s.wrapping_sub(MPS));
            probe.insert(a.last + 1);
        }
        let probe: Vec<u64> = probe.into_iter().collect();
        let expect: Vec<Option<u64>> = probe
            .iter()
            .map(|&iova| {
                let (&s, a) = io.areas.range(..=iova).next_back()?;
                // Fake frames are the user page frame plus one (no frame 0).
                (iova <= a.last).then(|| PS + m.pages[a.pages] + a.start_byte + (iova - s))
            })
            .collect();
        for &h in &io.hwpts {
            prop_assert_eq!(
                &fd.translate(h, probe.iter().copied()),
                &expect,
                "hwpt {}",
                h
            );
            for (&s, a) in &io.areas {
                let uva = m.pages[a.pages] + a.start_byte;
                prop_assert_eq!(fd.check_map(h, s, a.last - s + 1, uva), Ok(()));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn pins_follow_areas_with_domains(ops in prop::collection::vec(bop_strategy(), 1..40)) {
        let fd = Fd::new();
        // A device to allocate HWPTs with, on an IOAS of its own.
        let helper = fd.ioas();
        let (_, _, idev) = fd.mock_domain(helper).unwrap();
        let ids: Vec<u32> = (0..NIOAS).map(|_| fd.ioas()).collect();
        for &id in &ids {
            fd.allow(id, &[(A0, A0 + WINDOW - 1)]).unwrap();
        }
        let mut m = PinModel { pages: Vec::new(), ioas: vec![PIoas::default(); NIOAS] };
        for op in &ops {
            run_bop(&fd, &ids, idev, &mut m, op)?;
            check_pins(&fd, &ids, &m)?;
        }
        drop(fd);
        prop_assert_eq!(fake::total_pins(), 0);
        prop_assert_eq!(fake::accounted(), 0);
    }
}

// ---------------------------------------------------------------------------
// c. MockPageTable against a granule map.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum POp {
    Map {
        g: u64,
        n: u64,
        phys_g: u64,
        skew: u8,
    },
    Unmap {
        g: u64,
        n: u64,
    },
    MapTop,
}

fn pop_strategy() -> impl Strategy<Value = POp> {
    prop_oneof![
        6 => (0u64..64, 0u64..8, 0u64..64, prop_oneof![6 => Just(0u8), 1 => 1u8..4])
            .prop_map(|(g, n, phys_g, skew)| POp::Map { g, n, phys_g, skew }),
        4 => (0u64..70, 1u64..16).prop_map(|(g, n)| POp::Unmap { g, n }),
        1 => Just(POp::MapTop),
    ]
}

/// The leaves a radix table with every power-of-two size from 2 KiB must
/// produce for one map call: the largest aligned size that fits, per step.
fn model_leaves(mut iova: u64, mut phys: u64, mut len: u64) -> Vec<(u64, u64, u64)> {
    let mut v = Vec::new();
    while len != 0 {
        let mut s = 1u64 << (63 - len.leading_zeros());
        while !(iova | phys).is_multiple_of(s) {
            s >>= 1;
        }
        v.push((iova, phys, s));
        iova += s;
        phys += s;
        len -= s;
    }
    v
}

proptest! {
    #![proptest_config(config(256))]

    /// The mock table against a model of its leaves (start -> (phys,
    /// size)) with upstream's unmap rules: a range starting inside a leaf
    /// unmaps nothing; leaves starting inside the range go whole; a hole
    /// ends the unmap.
    #[test]
    fn mock_page_table_matches_model(ops in prop::collection::vec(pop_strategy(), 1..80)) {
        let base = 1u64 << 24;
        let mut pt = MockPageTable::with_pgsize(!(MPS - 1)).unwrap();
        let mut model: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        let containing = |m: &BTreeMap<u64, (u64, u64)>, at: u64| {
            m.range(..=at).next_back().filter(|(&s, &(_, l))| at < s + l).map(|(&s, &v)| (s, v))
        };
        for op in &ops {
            match *op {
                POp::Map { g, n, phys_g, skew } => {
                    let mut iova = base + g * MPS;
                    let mut phys = 0x8000_0000 + phys_g * MPS;
                    let mut len = n * MPS;
                    match skew {
                        1 => iova += 0x400,
                        2 => phys += 0x200,
                        3 => len += 1,
                        _ => {}
                    }
                    let want = if len == 0 || skew != 0 {
                        Err(EINVAL)
                    } else if containing(&model, iova).is_some()
                        || model.range(iova..iova + len).next().is_some()
                    {
                        Err(EADDRINUSE)
                    } else {
                        for (i, p, s) in model_leaves(iova, phys, len) {
                            model.insert(i, (p, s));
                        }
                        Ok(())
                    };
                    prop_assert_eq!(pt.map(iova, phys, len, 3), want, "map {:?}", op);
                }
                POp::Unmap { g, n } => {
                    let (a, len) = (base + g * MPS, n * MPS);
                    // Leaves from `a` on go whole until the range ends or
                    // a hole stops the unmap (upstream's rules).
                    let want = match containing(&model, a) {
                        Some((s, _)) if s != a => 0,
                        _ => {
                            let (mut at, mut gone) = (a, 0);
                            while at < a + len {
                                let Some((_, l)) = model.remove(&at) else { break };
                                gone += l;
                                at += l;
                            }
                            gone
                        }
                    };
                    prop_assert_eq!(pt.unmap(a, len), Ok(want), "unmap {:?}", op);
                }
                POp::MapTop => {
                    prop_assert_eq!(pt.map(MAX - MPS + 1, 0, MPS, 3), Err(ERANGE));
                    prop_assert_eq!(pt.map(0, 0, 0, 3), Err(EINVAL));
                }
            }
            // Exactly the model's leaves, in order.
            let mut leaves = Vec::new();
            pt.table().for_each_leaf(|l| leaves.push((l.iova, (l.oa, 1u64 << l.size_lg2))));
            let want: Vec<(u64, (u64, u64))> = model.iter().map(|(&k, &v)| (k, v)).collect();
            prop_assert_eq!(&leaves, &want);
            for g in 0..72u64 {
                let at = base + g * MPS;
                let want = containing(&model, at).map(|(s, (p, _))| p + (at - s));
                prop_assert_eq!(pt.iova_to_phys(at), want, "granule {}", g);
                prop_assert_eq!(pt.iova_to_phys(at + 0x7ff), want.map(|p| p + 0x7ff));
            }
        }
        // Unmapping leaf by leaf returns exactly what is mapped.
        for (&i, &(_, l)) in &model {
            prop_assert_eq!(pt.unmap(i, l), Ok(l));
        }
        prop_assert_eq!(pt.mapped_bytes(), 0);
    }
}

// ---------------------------------------------------------------------------
// d. Failure injection: a failed pin or charge leaves no trace.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Victim {
    /// HWPT_ALLOC on the IOAS without a domain (pins all its areas).
    Attach,
    /// MOCK_DOMAIN on the IOAS without a domain.
    MockDomain,
    /// MAP into the IOAS with a domain.
    Map,
    /// COPY from the IOAS without a domain into the one with.
    Copy,
    /// COPY of two adjacent areas (two Pages) in one go.
    CopyTwo,
}

#[derive(Debug, Clone, Copy)]
enum Inject {
    PinAfter(u64),
    Limit(u64),
}

fn victim_strategy() -> impl Strategy<Value = Victim> {
    prop_oneof![
        Just(Victim::Attach),
        Just(Victim::MockDomain),
        Just(Victim::Map),
        Just(Victim::Copy),
        Just(Victim::CopyTwo),
    ]
}

fn inject_strategy() -> impl Strategy<Value = Inject> {
    prop_oneof![
        (0u64..32).prop_map(Inject::PinAfter),
        (0u64..32).prop_map(Inject::Limit),
    ]
}

/// Everything a failed operation must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    pins: u64,
    accounted: i64,
    areas: Vec<Vec<(u64, u64)>>,
    ranges: Vec<(Vec<(u64, u64)>, u64)>,
    domains: Vec<usize>,
    objects: usize,
}

fn snapshot(fd: &Fd, ids: &[u32]) -> Snapshot {
    Snapshot {
        pins: fake::total_pins(),
        accounted: fake::accounted(),
        areas: ids.iter().map(|&i| fd.areas(i)).collect(),
        ranges: ids.iter().map(|&i| fd.ranges(i)).collect(),
        domains: ids.iter().map(|&i| fd.ndomains(i)).collect(),
        objects: fd.nobjects(),
    }
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn failed_pinning_leaves_no_trace(
        // (slot, length in 2 KiB granules, sub-page start) of the areas of
        // the IOAS without a domain; overlapping ones are skipped.
        bare in prop::collection::vec((0u64..64, 1u64..10, any::<bool>()), 0..6),
        // Pages already pinned in the IOAS with a domain.
        pinned in 0u64..4,
        victim in victim_strategy(),
        inject in inject_strategy(),
        new_len_g in 1u64..10,
        pick in any::<usize>(),
    ) {
        let fd = Fd::new();
        let helper = fd.ioas();
        let (_, _, idev) = fd.mock_domain(helper).unwrap();
        let (x, y) = (fd.ioas(), fd.ioas());
        let ids = [x, y];
        // X: areas, no domain. Each map is its own Pages over its own
        // buffer, so the pages needed are per area.
        let mut x_areas: Vec<(u64, u64, u64)> = Vec::new(); // (iova, len, uva)
        let mut need_attach = 0u64;
        for (k, &(slot, len_g, sub)) in bare.iter().enumerate() {
            let iova = A0 + slot * 4 * MPS;
            let len = len_g * MPS;
            if x_areas.iter().any(|&(s, l, _)| s < iova + len && iova < s + l) {
                continue;
            }
            let uva = 0x6000_0000 + k as u64 * 0x10_0000 + if sub { MPS } else { 0 };
            fd.map_fixed(x, uva, len, iova).unwrap();
            x_areas.push((iova, len, uva));
            need_attach += (uva + len - 1) / PS - uva / PS + 1;
        }
        // Two adjacent areas over different Pages: 2 + 3 pages.
        let two = A0 + 0x60_0000;
        let (uva1, uva2) = (0x6a00_0000 + MPS, 0x6b00_0000);
        fd.map_fixed(x, uva1, 3 * MPS, two).unwrap();
        fd.map_fixed(x, uva2, 5 * MPS, two + 3 * MPS).unwrap();
        need_attach += 5;
        // Y: a domain and some pinned pages.
        let hwpt_y = fd.hwpt_alloc(idev, y).unwrap();
        if pinned > 0 {
            fd.map_fixed(y, 0x6800_0000, pinned * PS, A0 + 0x40_0000).unwrap();
        }
        let before = snapshot(&fd, &ids);
        prop_assert_eq!(before.pins, pinned);

        let fdr = &fd;
        let new_uva = 0x6900_0000 + MPS;
        let new_iova = A0 + 0x80_0000;
        let (needed, op): (u64, Box<dyn Fn() -> Result<()> + '_>) = match victim {
            Victim::Attach => (need_attach, Box::new(|| fd.hwpt_alloc(idev, x).map(drop))),
            Victim::MockDomain => (need_attach, Box::new(|| fd.mock_domain(x).map(drop))),
            Victim::Map => {
                let len = new_len_g * MPS;
                let n = (new_uva + len - 1) / PS - new_uva / PS + 1;
                (n, Box::new(move || fdr.map_fixed(y, new_uva, len, new_iova).map(drop)))
            }
            Victim::Copy => {
                if x_areas.is_empty() {
                    return Ok(());
                }
                let (iova, len, uva) = x_areas[pick % x_areas.len()];
                let n = (uva + len - 1) / PS - uva / PS + 1;
                let flags = RW | IOMMU_IOAS_MAP_FIXED_IOVA;
                (n, Box::new(move || fdr.copy(flags, y, x, iova, len, new_iova).map(drop)))
            }
            Victim::CopyTwo => {
                let flags = RW | IOMMU_IOAS_MAP_FIXED_IOVA;
                (5, Box::new(move || fdr.copy(flags, y, x, two, 8 * MPS, new_iova).map(drop)))
            }
        };
        let (budget, errno) = match inject {
            Inject::PinAfter(n) => {
                fake::fail_pin_after(Some(n));
                (n, EFAULT)
            }
            Inject::Limit(n) => {
                fake::set_limit(Some(before.accounted + n as i64));
                (n, ENOMEM)
            }
        };
        let r = op();
        fake::fail_pin_after(None);
        fake::set_limit(None);
        let what = format!("{victim:?} with {inject:?}, {needed} pages needed");
        if budget >= needed {
            prop_assert_eq!(r, Ok(()), "{}", what);
        } else {
            prop_assert_eq!(r, Err(errno), "{}", what);
            prop_assert_eq!(&snapshot(&fd, &ids), &before);
            // Without the injection the same operation succeeds.
            prop_assert_eq!(op(), Ok(()));
        }
        prop_assert_eq!(fake::total_pins(), pinned + needed);
        prop_assert_eq!(fake::accounted(), (pinned + needed) as i64);
        match victim {
            Victim::Map => fd.check_map(hwpt_y, new_iova, new_len_g * MPS, new_uva).unwrap(),
            Victim::Copy => {
                let (_, len, uva) = x_areas[pick % x_areas.len()];
                fd.check_map(hwpt_y, new_iova, len, uva).unwrap();
            }
            Victim::CopyTwo => {
                fd.check_map(hwpt_y, new_iova, 3 * MPS, uva1).unwrap();
                fd.check_map(hwpt_y, new_iova + 3 * MPS, 5 * MPS, uva2).unwrap();
                prop_assert_eq!(fd.areas(y).len() as u64, 2 + u64::from(pinned > 0));
            }
            Victim::Attach | Victim::MockDomain => {
                prop_assert_eq!(fd.ndomains(x), 1);
                let hwpts = fd.hwpts_of(x);
                prop_assert_eq!(hwpts.len(), 1);
                let hwpt = hwpts[0];
                fd.check_map(hwpt, two, 3 * MPS, uva1).unwrap();
                for &(iova, len, uva) in &x_areas {
                    fd.check_map(hwpt, iova, len, uva).unwrap();
                }
            }
        }
        drop(op);
        drop(fd);
        prop_assert_eq!(fake::total_pins(), 0);
        prop_assert_eq!(fake::accounted(), 0);
    }
}
