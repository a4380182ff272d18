//! The page-table engine inside the kernel: KUnit tests.
//!
//! The host tests (`tests/`) run the engine over a simulated physical
//! address space; here the same formats run on real kernel pages
//! ([`PtMem`]) and are checked three ways:
//!
//! * **round trips** for every format: map a mix of page sizes, compare
//!   `iova_to_phys` and the driver's *walker model* (reading the tables
//!   through a [`KernelPhys`] view, as the IOMMU would) with what was
//!   mapped, unmap, and check that nothing translates any more;
//! * **no leaks**: every table the engine allocates is freed again, also
//!   when an allocation fails half-way;
//! * **differential**, against the kernel's own `io-pgtable-arm`
//!   (`ARM_64_LPAE_S1`) through `kernel::iommu::pgtable`: the same
//!   mappings in both give the same translations and bit-identical leaf
//!   descriptors, and our walker model accepts io-pgtable's tables too.
//!

#[kernel::prelude::kunit_tests(iommufd_rs_pagetable)]
mod tests {
    use crate::drivers::mock::pagetable::AmdV1Mock;
    use crate::drivers::smmuv3::pagetable::{Gran4K, Stage as VmsaStage, Vmsa, VmsaConfig};
    use crate::drivers::smmuv3::walker as arm;
    use crate::drivers::vtd::pagetable::{FsConfig, SsConfig, VtdFs, VtdSs};
    use crate::drivers::vtd::walker as vtd;
    use crate::errno::{EADDRINUSE, ENOMEM};
    use crate::pagetable::engine::{Format, PageTable};
    use crate::pagetable::gather::NoFlush;
    use crate::pagetable::{PhysMem, TableMem, TablePage};
    use crate::pagetable::{PROT_CACHE, PROT_READ, PROT_WRITE};
    use crate::platform::PtMem;
    use core::sync::atomic::{AtomicI64, Ordering};

    /// The walkers' view of physical memory.
    fn phys() -> crate::platform::KernelPhys {
        // SAFETY: these tests walk only tables they built and keep alive
        // for the walk (ours, and io-pgtable's in the differential test).
        unsafe { crate::platform::KernelPhys::new() }
    }

    const K4: u64 = 1 << 12;
    const M2: u64 = 1 << 21;
    const G1: u64 = 1 << 30;

    /// A failed check (already logged with its values).
    #[derive(Debug)]
    struct Failed;

    type TResult<T = ()> = core::result::Result<T, Failed>;

    /// Fails the case, logging where and why.
    macro_rules! fail {
        ($($arg:tt)+) => {{
            kernel::pr_err!(
                "pagetable KUnit check failed (line {}): {}\n",
                line!(),
                format_args!($($arg)+)
            );
            return Err(Failed);
        }};
    }

    /// Fails the case, logging where and why, unless `cond` holds.
    macro_rules! ensure {
        ($cond:expr, $($arg:tt)+) => {
            if !$cond {
                fail!($($arg)+);
            }
        };
    }

    /// Setup that must succeed (allocation of tables and devices).
    fn setup<T, E: core::fmt::Debug>(r: Result<T, E>, what: &str) -> TResult<T> {
        r.map_err(|e| {
            kernel::pr_err!("pagetable KUnit setup failed: {}: {:?}\n", what, e);
            Failed
        })
    }

    /// One mapping of a round trip.
    #[derive(Clone, Copy)]
    struct Case {
        iova: u64,
        oa: u64,
        len: u64,
        prot: u32,
    }

    const fn case(iova: u64, oa: u64, len: u64, prot: u32) -> Case {
        Case {
            iova,
            oa,
            len,
            prot,
        }
    }

    /// An oracle: where an access (`write` or read) to `iova` goes, `None`
    /// if the hardware would fault.
    type Oracle<'a> = &'a dyn Fn(u64, bool) -> Option<u64>;

    /// Offsets of `len` bytes to check: every granule (first and last
    /// byte) of small ranges, 33 evenly spread points and the last byte of
    /// large ones.
    fn for_each_sample(len: u64, granule: u64, mut f: impl FnMut(u64) -> TResult) -> TResult {
        if len / granule <= 512 {
            let mut off = 0;
            while off < len {
                f(off)?;
                f(off + granule - 1)?;
                off += granule;
            }
            return Ok(());
        }
        for k in 0..32 {
            f(len / 32 * k)?;
        }
        f(len - 1)
    }

    /// Maps `cases` (disjoint), checks every sample against
    /// `iova_to_phys` and `oracle` (reads always allowed, writes iff the
    /// prot has `PROT_WRITE`), the holes around them, the leaf list, then
    /// unmaps them and checks that nothing translates any more.
    fn round_trip<F: Format, M: TableMem>(
        name: &str,
        pt: &PageTable<F, M>,
        cases: &[Case],
        oracle: Oracle<'_>,
    ) -> TResult {
        let granule = 1u64 << F::GRANULE_LG2;
        for c in cases {
            let mut g = pt.gather(&NoFlush);
            let r = pt.map(c.iova, c.oa, c.len, c.prot, &mut g);
            g.sync();
            ensure!(
                r.is_ok(),
                "{}: map {:#x}+{:#x}: {:?}",
                name,
                c.iova,
                c.len,
                r
            );
        }
        // Overmapping is refused and changes nothing.
        if let Some(c) = cases.first() {
            let mut g = pt.gather(&NoFlush);
            let r = pt.map(c.iova, c.oa, granule, c.prot, &mut g);
            g.sync();
            ensure!(r == Err(EADDRINUSE), "{}: overmap gave {:?}", name, r);
        }
        let covered = |iova: u64| {
            cases
                .iter()
                .any(|c| iova >= c.iova && iova - c.iova < c.len)
        };
        for c in cases {
            for_each_sample(c.len, granule, |off| {
                let (iova, want) = (c.iova + off, c.oa + off);
                let got = pt.iova_to_phys(iova);
                ensure!(
                    got == Some(want),
                    "{}: iova_to_phys({:#x}) = {:x?}, want {:#x}",
                    name,
                    iova,
                    got,
                    want
                );
                let rd = oracle(iova, false);
                ensure!(
                    rd == Some(want),
                    "{}: walker read {:#x} = {:x?}, want {:#x}",
                    name,
                    iova,
                    rd,
                    want
                );
                let wr = oracle(iova, true);
                let want_wr = (c.prot & PROT_WRITE != 0).then_some(want);
                ensure!(
                    wr == want_wr,
                    "{}: walker write {:#x} = {:x?}, want {:x?}",
                    name,
                    iova,
                    wr,
                    want_wr
                );
                Ok(())
            })?;
            for hole in [c.iova.checked_sub(granule), Some(c.iova + c.len)]
                .into_iter()
                .flatten()
            {
                if covered(hole) {
                    continue;
                }
                let got = pt.iova_to_phys(hole);
                ensure!(
                    got.is_none(),
                    "{}: hole {:#x} translates to {:x?}",
                    name,
                    hole,
                    got
                );
                let rd = oracle(hole, false);
                ensure!(
                    rd.is_none(),
                    "{}: walker reads hole {:#x} at {:x?}",
                    name,
                    hole,
                    rd
                );
            }
        }
        // Every leaf lies in one mapping, at the right output address, and
        // together they cover exactly what was mapped.
        let (mut bytes, mut stray) = (0u64, 0u32);
        pt.for_each_leaf(|l| {
            let size = 1u64 << l.size_lg2;
            bytes += size;
            let ok = cases.iter().any(|c| {
                l.iova >= c.iova
                    && l.iova + size <= c.iova + c.len
                    && l.oa == c.oa + (l.iova - c.iova)
            });
            if !ok {
                stray += 1;
            }
        });
        let total: u64 = cases.iter().map(|c| c.len).sum();
        ensure!(
            stray == 0 && bytes == total,
            "{}: {} stray leaves, {:#x} bytes of leaves, want {:#x}",
            name,
            stray,
            bytes,
            total
        );
        for c in cases {
            let mut g = pt.gather(&NoFlush);
            let n = pt.unmap(c.iova, c.len, &mut g);
            g.sync();
            ensure!(
                n == c.len,
                "{}: unmap {:#x}+{:#x} = {:#x}",
                name,
                c.iova,
                c.len,
                n
            );
            for_each_sample(c.len, granule, |off| {
                let iova = c.iova + off;
                let got = pt.iova_to_phys(iova);
                ensure!(
                    got.is_none(),
                    "{}: {:#x} still translates to {:x?}",
                    name,
                    iova,
                    got
                );
                let rd = oracle(iova, false);
                ensure!(
                    rd.is_none(),
                    "{}: walker still reads {:#x} at {:x?}",
                    name,
                    iova,
                    rd
                );
                Ok(())
            })?;
        }
        let mut left = 0u32;
        pt.for_each_leaf(|_| left += 1);
        ensure!(left == 0, "{}: {} leaves left after unmap", name, left);
        Ok(())
    }

    /// The mix every 4K-granule format maps: a single page, 256 pages in
    /// one table, a 2M and a 1G leaf, and an unaligned range that needs
    /// 4K, 2M and 4K leaves again (`base` is 1G-aligned; output addresses
    /// are `iova + delta`).
    fn mix_4k(base: u64, delta: u64, rw: u32, ro: u32) -> [Case; 6] {
        [
            case(base + K4, base + K4 + delta, K4, rw),
            case(base + M2, base + M2 + delta, 256 * K4, ro),
            case(base + 2 * M2, base + 2 * M2 + delta, M2, rw),
            case(base + G1, base + G1 + delta, G1, rw),
            case(
                base + 2 * G1 + M2 - 3 * K4,
                base + 2 * G1 + M2 - 3 * K4 + delta,
                3 * K4 + 2 * M2 + 5 * K4,
                rw,
            ),
            // Output addresses not aligned like the IOVAs: 4K leaves only.
            case(base + 3 * G1, base + 3 * G1 + delta + 5 * K4, 2 * M2, ro),
        ]
    }

    /// The walker configuration an SMMU would get for `pt`.
    fn arm_cfg<M: TableMem>(pt: &PageTable<Vmsa<Gran4K>, M>) -> arm::WalkConfig {
        let f = pt.format();
        arm::WalkConfig {
            stage: match f.config().stage {
                VmsaStage::S1 => arm::Stage::S1,
                VmsaStage::S2 => arm::Stage::S2,
            },
            granule: arm::Granule::G4K,
            ias: f.config().ias,
            oas: f.config().oas,
            ttb: pt.top_phys(),
            start_level: f.start_level(),
            ha: false,
            hd: false,
        }
    }

    /// The ARM walker model as an oracle (privileged data accesses).
    fn arm_oracle(cfg: arm::WalkConfig) -> impl Fn(u64, bool) -> Option<u64> {
        move |iova, write| {
            let access = if write {
                arm::Access::write(true)
            } else {
                arm::Access::read(true)
            };
            arm::walk(&phys(), &cfg, iova, access).ok().map(|t| t.pa)
        }
    }

    #[test]
    fn arm_s1_4k_round_trip_with_contiguous_hint() -> TResult {
        let fmt = setup(Vmsa::<Gran4K>::new(VmsaConfig::s1(48, 48)), "format")?;
        let pt = setup(PageTable::new(fmt, PtMem::new()), "table")?;
        let cfg = arm_cfg(&pt);
        ensure!(
            cfg.start_level == 0,
            "48-bit S1 starts at level {}",
            cfg.start_level
        );
        let rw = PROT_READ | PROT_WRITE | PROT_CACHE;
        let [m0, m1, m2, m3, m4, m5] = mix_4k(1 << 40, 1 << 36, rw, PROT_READ);
        let cases = [
            m0,
            m1,
            m2,
            m3,
            m4,
            m5,
            // Contiguous groups: 16 x 4K (64K) and 16 x 2M (32M), and a
            // range whose middle is one.
            case(0x10_0001_0000, 0x2_0001_0000, 16 * K4, rw),
            case(0x10_0200_0000, 0x2_0200_0000, 16 * M2, rw),
            case(
                0x20_0000_e000,
                0x3_0000_e000,
                2 * K4 + 16 * K4 + K4,
                PROT_READ,
            ),
        ];
        let oracle = arm_oracle(cfg);
        // Check the hint before the round trip unmaps everything.
        for c in [cases[6], cases[7]] {
            let mut g = pt.gather(&NoFlush);
            let r = pt.map(c.iova, c.oa, c.len, c.prot, &mut g);
            g.sync();
            ensure!(r.is_ok(), "map {:#x}: {:?}", c.iova, r);
        }
        let mut leaves = 0u32;
        let mut bad = 0u32;
        pt.for_each_leaf(|l| {
            leaves += 1;
            if (1u64 << l.size_lg2) != 16 * K4 && (1u64 << l.size_lg2) != 16 * M2 {
                bad += 1;
            }
            if l.pte & crate::drivers::smmuv3::pagetable::bits::CONT == 0 {
                bad += 1;
            }
        });
        ensure!(
            leaves == 2 && bad == 0,
            "contiguous leaves: {} leaves, {} not 64K/32M with the hint",
            leaves,
            bad
        );
        for iova in [cases[6].iova + 5 * K4, cases[7].iova + 7 * M2 + 3] {
            let t = arm::walk(&phys(), &cfg, iova, arm::Access::read(true));
            ensure!(
                matches!(t, Ok(t) if t.contiguous),
                "walker does not see a contiguous group at {:#x}: {:?}",
                iova,
                t
            );
        }
        for c in [cases[6], cases[7]] {
            let mut g = pt.gather(&NoFlush);
            let n = pt.unmap(c.iova, c.len, &mut g);
            g.sync();
            ensure!(n == c.len, "unmap {:#x} = {:#x}", c.iova, n);
        }
        round_trip("arm-s1-4k", &pt, &cases, &oracle)
    }

    #[test]
    fn arm_s2_4k_round_trip() -> TResult {
        // 40 input bits: two concatenated start tables at level 1.
        let fmt = setup(Vmsa::<Gran4K>::new(VmsaConfig::s2(40, 48)), "format")?;
        let pt = setup(PageTable::new(fmt, PtMem::new()), "table")?;
        let cfg = arm_cfg(&pt);
        ensure!(
            cfg.start_level == 1 && pt.format().concat_tables() == 2,
            "S2 40-bit: start level {}, {} tables",
            cfg.start_level,
            pt.format().concat_tables()
        );
        let cases = mix_4k(1 << 39, 1 << 40, PROT_READ | PROT_WRITE, PROT_READ);
        round_trip("arm-s2-4k", &pt, &cases, &arm_oracle(cfg))
    }

    #[test]
    fn vtd_ss_48bit_round_trip() -> TResult {
        let fmt = setup(
            VtdSs::new(SsConfig {
                addr_width: 48,
                oas: 48,
                sllps: 3,
                force_coherence: false,
                force_writeable: false,
            }),
            "format",
        )?;
        let pt = setup(PageTable::new(fmt, PtMem::new()), "table")?;
        let cfg = vtd::SsConfig {
            levels: 4,
            root: pt.top_phys(),
            haw: 48,
            large_pages: 3,
            ssade: false,
            snoop_allowed: true,
        };
        let oracle = move |iova, write| {
            let access = vtd::Access {
                write,
                exec: false,
                supervisor: false,
            };
            vtd::walk_ss(&phys(), &cfg, iova, access).ok().map(|t| t.pa)
        };
        let cases = mix_4k(1 << 46, 1 << 40, PROT_READ | PROT_WRITE, PROT_READ);
        round_trip("vtd-ss-48", &pt, &cases, &oracle)
    }

    #[test]
    fn vtd_fs_4level_round_trip() -> TResult {
        let fmt = setup(
            VtdFs::new(FsConfig {
                levels: 4,
                oas: 48,
                gb_pages: true,
            }),
            "format",
        )?;
        let pt = setup(PageTable::new(fmt, PtMem::new()), "table")?;
        let cfg = vtd::FsConfig {
            levels: 4,
            root: pt.top_phys(),
            haw: 48,
            gb_pages: true,
            wpe: true,
            sre: false,
        };
        let oracle = move |iova, write| {
            let access = vtd::Access {
                write,
                exec: false,
                supervisor: false,
            };
            vtd::walk_fs(&phys(), &cfg, iova, access).ok().map(|t| t.pa)
        };
        // The lower canonical half only: below 2^47.
        let cases = mix_4k(1 << 45, 1 << 40, PROT_READ | PROT_WRITE, PROT_READ);
        round_trip("vtd-fs-4", &pt, &cases, &oracle)
    }

    /// A reading of the mock's AMDv1 table (2 KiB granule) written from
    /// the format's description, independent of the encoder: PR (bit 0),
    /// NextLevel (11:9; 0 = leaf of one item, 7 = leaf whose size is the
    /// trailing ones of the address field, else the level of the table
    /// below plus one), address field 51:12 in 2 KiB units, IR/IW (61/62).
    fn amdv1_walk(mem: &impl PhysMem, top: u64, iova: u64, write: bool) -> Option<u64> {
        let mut table = top;
        let mut level = 4u32;
        loop {
            let shift = 11 + 9 * level;
            let pte = mem.read_u64(table + ((iova >> shift) & 511) * 8)?;
            if pte & 1 == 0 {
                return None;
            }
            let next = (pte >> 9) & 7;
            let field = (pte >> 12) & ((1u64 << 40) - 1);
            let (oa, size_lg2) = match next {
                0 => (field << 11, shift),
                7 => {
                    let ones = field.trailing_ones();
                    ((field & !((1u64 << ones) - 1)) << 11, 12 + ones)
                }
                n if level > 0 && n == u64::from(level) => {
                    table = field << 11;
                    level -= 1;
                    continue;
                }
                _ => return None,
            };
            let (ir, iw) = ((pte >> 61) & 1 != 0, (pte >> 62) & 1 != 0);
            if !ir || (write && !iw) {
                return None;
            }
            return Some(oa + (iova & ((1u64 << size_lg2) - 1)));
        }
    }

    #[test]
    fn mock_amdv1_round_trip() -> TResult {
        let pt = setup(PageTable::new(AmdV1Mock, PtMem::new()), "table")?;
        let top = pt.top_phys();
        let oracle = move |iova, write| amdv1_walk(&phys(), top, iova, write);
        const K2: u64 = 1 << 11;
        let (rw, ro) = (PROT_READ | PROT_WRITE, PROT_READ);
        let d = 1u64 << 40;
        let cases = [
            // One 2K page, 256 of them, power-of-two sizes, 1G, and an
            // unaligned run mixing 2K..1M leaves.
            case(0x800, 0x800 + d, K2, rw),
            case(0x10_0000, 0x10_0000 + d, 256 * K2, ro),
            case(0x20_0000, 0x20_0000 + d, M2, rw),
            case(G1, G1 + d, G1, rw),
            case(
                2 * G1 + 0x1800,
                2 * G1 + 0x1800 + d,
                0x10_0000 - 0x1800 + 3 * 0x10_0000 + 0x2800,
                rw,
            ),
            case(3 * G1, 3 * G1 + d + K2, 64 * K2, ro),
        ];
        round_trip("mock-amdv1", &pt, &cases, &oracle)
    }

    /// [`PtMem`] counting live tables, optionally failing allocations
    /// once a budget is spent.
    struct Counting {
        mem: PtMem,
        live: AtomicI64,
        allocs: AtomicI64,
        /// Allocations still allowed; negative: unlimited.
        budget: AtomicI64,
    }

    impl Counting {
        fn new() -> Self {
            Self {
                mem: PtMem::new(),
                live: AtomicI64::new(0),
                allocs: AtomicI64::new(0),
                budget: AtomicI64::new(-1),
            }
        }

        fn live(&self) -> i64 {
            self.live.load(Ordering::Relaxed)
        }
    }

    // SAFETY: every call is forwarded to `PtMem`, which upholds the
    // contract; the counters do not affect the memory handed out.
    unsafe impl TableMem for Counting {
        fn alloc(&self, size_lg2: u32) -> Option<TablePage> {
            if self.budget.load(Ordering::Relaxed) == 0 {
                return None;
            }
            let page = self.mem.alloc(size_lg2)?;
            let _ = self
                .budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    (b > 0).then(|| b - 1)
                });
            self.live.fetch_add(1, Ordering::Relaxed);
            self.allocs.fetch_add(1, Ordering::Relaxed);
            Some(page)
        }

        unsafe fn free(&self, page: TablePage) {
            self.live.fetch_sub(1, Ordering::Relaxed);
            // SAFETY: the caller's promise, passed on.
            unsafe { self.mem.free(page) }
        }

        fn phys_to_virt(&self, pa: u64) -> *const core::sync::atomic::AtomicU64 {
            self.mem.phys_to_virt(pa)
        }
    }

    /// Maps and unmaps a churn of sizes in a table of `fmt` over a
    /// counting allocator: an empty table under a new block is freed at
    /// once, an allocation failure half-way leaves nothing mapped, and
    /// after the drop no table is live.
    fn churn<F: Format>(name: &str, fmt: F, pgsizes: u64) -> TResult {
        let mem = Counting::new();
        {
            let mut pt = setup(PageTable::new(fmt, &mem), "table")?;
            pt.set_pgsize_mask(pgsizes);
            let g0 = 1u64 << F::GRANULE_LG2;
            let big = 1u64 << (F::GRANULE_LG2 + F::ITEMS_LG2);
            let rw = PROT_READ | PROT_WRITE;
            let base = 1u64 << 36;
            // Pages in one table, then unmapped: the table stays, empty.
            let mut g = pt.gather(&NoFlush);
            let r = pt.map(base, base, 3 * g0, rw, &mut g);
            g.sync();
            ensure!(r.is_ok(), "{}: map pages: {:?}", name, r);
            let mut g = pt.gather(&NoFlush);
            let n = pt.unmap(base, 3 * g0, &mut g);
            g.sync();
            ensure!(n == 3 * g0, "{}: unmap pages = {:#x}", name, n);
            let before = mem.live();
            // A block over the empty table frees it.
            let mut g = pt.gather(&NoFlush);
            let r = pt.map(base, base, big, rw, &mut g);
            g.sync();
            ensure!(r.is_ok(), "{}: map block: {:?}", name, r);
            ensure!(
                mem.live() == before - 1,
                "{}: {} live tables after the block, want {}",
                name,
                mem.live(),
                before - 1
            );
            // A large unaligned map with the allocator failing half-way:
            // ENOMEM and nothing of it mapped.
            mem.budget.store(3, Ordering::Relaxed);
            let (iova, len) = (base + (1u64 << 33) - 5 * g0, 40 * big + 9 * g0);
            let mut g = pt.gather(&NoFlush);
            let r = pt.map(iova, iova, len, rw, &mut g);
            g.sync();
            mem.budget.store(-1, Ordering::Relaxed);
            ensure!(
                r == Err(ENOMEM),
                "{}: map with 3 tables left = {:?}",
                name,
                r
            );
            let mut stray = 0u32;
            pt.for_each_leaf(|l| {
                if l.iova != base {
                    stray += 1;
                }
            });
            ensure!(
                stray == 0,
                "{}: {} leaves left by the failed map",
                name,
                stray
            );
            // The same map with memory succeeds, and unmaps whole.
            let mut g = pt.gather(&NoFlush);
            let r = pt.map(iova, iova, len, rw, &mut g);
            g.sync();
            ensure!(r.is_ok(), "{}: map {:#x}: {:?}", name, len, r);
            let mut g = pt.gather(&NoFlush);
            let n = pt.unmap(iova, len, &mut g);
            g.sync();
            ensure!(n == len, "{}: unmap = {:#x}, want {:#x}", name, n, len);
            // Leave mappings behind for the teardown.
            let mut g = pt.gather(&NoFlush);
            let r = pt.map(iova + g0, iova + g0, len - g0, rw, &mut g);
            g.sync();
            ensure!(r.is_ok(), "{}: final map: {:?}", name, r);
            ensure!(mem.live() > 1, "{}: only {} live tables", name, mem.live());
        }
        let allocs = mem.allocs.load(Ordering::Relaxed);
        ensure!(
            mem.live() == 0,
            "{}: {} of {} tables leaked",
            name,
            mem.live(),
            allocs
        );
        Ok(())
    }

    #[test]
    fn tables_do_not_leak() -> TResult {
        let s1 = setup(Vmsa::<Gran4K>::new(VmsaConfig::s1(48, 48)), "format")?;
        churn("arm-s1-4k", s1, u64::MAX)?;
        let s2 = setup(Vmsa::<Gran4K>::new(VmsaConfig::s2(40, 48)), "format")?;
        churn("arm-s2-4k", s2, u64::MAX)?;
        let ss = setup(
            VtdSs::new(SsConfig {
                addr_width: 48,
                oas: 48,
                sllps: 3,
                force_coherence: false,
                force_writeable: false,
            }),
            "format",
        )?;
        churn("vtd-ss-48", ss, u64::MAX)?;
        let fs = setup(
            VtdFs::new(FsConfig {
                levels: 4,
                oas: 48,
                gb_pages: true,
            }),
            "format",
        )?;
        churn("vtd-fs-4", fs, u64::MAX)?;
        // The mock with only its granule and 1M leaves, so that the churn
        // needs tables.
        churn("mock-amdv1", AmdV1Mock, (1 << 11) | (1 << 20))
    }

    /// The differential test's address layout for one prot: `B + ...`
    /// (`B` 16G-aligned), output addresses `iova + 64G`.
    #[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
    fn diff_mappings(base: u64) -> [(u64, u64); 6] {
        [
            // A single 4K page.
            (base + K4, K4),
            // 256 x 4K in one table (one map_pages call).
            (base + M2, 256 * K4),
            // A 2M block.
            (base + 2 * M2, M2),
            // A 1G block.
            (base + G1, G1),
            // Unaligned: 3 x 4K, 2 x 2M, 5 x 4K.
            (base + 2 * G1 + M2 - 3 * K4, 3 * K4 + 2 * M2 + 5 * K4),
            // Across a 1G boundary: 2 x 4K, 2M, 1G, 2M, 4K.
            (base + 4 * G1 - M2 - 2 * K4, 2 * K4 + M2 + G1 + M2 + K4),
        ]
    }

    #[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
    #[test]
    fn differential_vs_io_pgtable_arm() -> TResult {
        use crate::drivers::smmuv3::pagetable::bits::CONT;
        use crate::pagetable::iopgtable::{pgsize_split, IoPgtable, IOP_PGSIZES};
        use crate::pagetable::{PROT_MMIO, PROT_NOEXEC, PROT_PRIV};

        const DELTA: u64 = 64 * G1;
        let reg = setup(
            kernel::faux::Registration::new(c"iommufd_rs_kunit", None),
            "faux device",
        )?;
        let faux: &kernel::faux::Device<kernel::device::Bound> = reg.as_ref();
        let iop = setup(IoPgtable::new(faux.as_ref()), "io-pgtable")?;
        let plain = setup(
            Vmsa::<Gran4K>::new(VmsaConfig {
                contiguous: false,
                ..VmsaConfig::s1(48, 48)
            }),
            "format",
        )?;
        let mut ours = setup(PageTable::new(plain, PtMem::new()), "table")?;
        ours.set_pgsize_mask(IOP_PGSIZES);
        ensure!(
            ours.pgsize_bitmap() == IOP_PGSIZES,
            "our page sizes {:#x}",
            ours.pgsize_bitmap()
        );
        let hinted = setup(Vmsa::<Gran4K>::new(VmsaConfig::s1(48, 48)), "format")?;
        let cont = setup(PageTable::new(hinted, PtMem::new()), "table")?;

        let ours_cfg = arm_cfg(&ours);
        let cont_cfg = arm_cfg(&cont);
        let iop_start = arm::start_level_for(arm::Granule::G4K, 48, arm::Stage::S1, false);
        ensure!(
            iop_start == Some(ours_cfg.start_level),
            "start levels {:?} vs {}",
            iop_start,
            ours_cfg.start_level
        );
        let iop_cfg = arm::WalkConfig {
            ttb: iop.ttbr(),
            ..ours_cfg
        };
        let mem = phys();
        let walk = |cfg: &arm::WalkConfig, iova, access| arm::walk(&mem, cfg, iova, access);

        let prots = [
            PROT_READ | PROT_WRITE | PROT_CACHE,
            PROT_READ,
            PROT_READ | PROT_WRITE | PROT_NOEXEC,
            PROT_READ | PROT_WRITE | PROT_MMIO,
            PROT_READ | PROT_WRITE | PROT_PRIV,
        ];
        let (mut samples, mut hinted_groups) = (0u32, 0u32);
        for (k, &prot) in prots.iter().enumerate() {
            let base = (k as u64 + 1) * 16 * G1;
            for (iova, len) in diff_mappings(base) {
                let oa = iova + DELTA;
                for pt in [&ours, &cont] {
                    let mut g = pt.gather(&NoFlush);
                    let r = pt.map(iova, oa, len, prot, &mut g);
                    g.sync();
                    ensure!(
                        r.is_ok(),
                        "ours: map {:#x}+{:#x} prot {:#x}: {:?}",
                        iova,
                        len,
                        prot,
                        r
                    );
                }
                // SAFETY: the layout is disjoint and nothing else uses
                // this table.
                let r = unsafe { iop.map(iova, oa, len, prot) };
                ensure!(
                    r.is_ok(),
                    "io-pgtable: map {:#x}+{:#x} prot {:#x}: {:?}",
                    iova,
                    len,
                    prot,
                    r
                );
            }
            for (iova, len) in diff_mappings(base) {
                // Walk the pages as the core split them for io-pgtable.
                let (mut va, mut left) = (iova, len);
                while left > 0 {
                    let Some((pgsize, count)) = pgsize_split(IOP_PGSIZES, va, va + DELTA, left)
                    else {
                        fail!("no page size for {:#x}+{:#x}", va, left);
                    };
                    for i in 0..count {
                        let page = va + i * pgsize;
                        let offs: &[u64] = if pgsize == K4 {
                            &[0, K4 - 1]
                        } else {
                            &[0, pgsize / 2 + 0x18, pgsize - 1]
                        };
                        for &off in offs {
                            let s = page + off;
                            let want = s + DELTA;
                            samples += 1;
                            let (a, b, c) = (
                                ours.iova_to_phys(s),
                                iop.iova_to_phys(s),
                                cont.iova_to_phys(s),
                            );
                            ensure!(
                                a == Some(want) && b == want && c == Some(want),
                                "iova_to_phys({:#x}): ours {:x?}, io-pgtable {:#x}, ours+hint {:x?}, want {:#x}",
                                s,
                                a,
                                b,
                                c,
                                want
                            );
                            let wo = walk(&ours_cfg, s, arm::Access::read(true));
                            let wi = walk(&iop_cfg, s, arm::Access::read(true));
                            let wc = walk(&cont_cfg, s, arm::Access::read(true));
                            let (Ok(wo), Ok(wi), Ok(wc)) = (wo, wi, wc) else {
                                fail!("walker at {:#x} prot {:#x}: ours {:?}, io-pgtable {:?}, hinted {:?}", s, prot, wo, wi, wc);
                            };
                            ensure!(
                                wo.pa == want && wi.pa == want && wc.pa == want,
                                "walker pa at {:#x}: {:#x} {:#x} {:#x}, want {:#x}",
                                s,
                                wo.pa,
                                wi.pa,
                                wc.pa,
                                want
                            );
                            ensure!(
                                wo.desc == wi.desc && wo.level == wi.level && wi.block_size == pgsize,
                                "leaf at {:#x} prot {:#x}: ours {:#x} (level {}), io-pgtable {:#x} (level {}, {:#x} bytes, split {:#x})",
                                s,
                                prot,
                                wo.desc,
                                wo.level,
                                wi.desc,
                                wi.level,
                                wi.block_size,
                                pgsize
                            );
                            if wc.contiguous {
                                hinted_groups += 1;
                            }
                            ensure!(
                                wc.desc & !CONT == wi.desc,
                                "hinted leaf at {:#x}: {:#x} vs io-pgtable {:#x}",
                                s,
                                wc.desc,
                                wi.desc
                            );
                            // Permissions: the same answer from both
                            // tables, and the one the prot asks for.
                            for (access, allowed) in [
                                (arm::Access::write(true), prot & PROT_WRITE != 0),
                                (arm::Access::read(false), prot & PROT_PRIV == 0),
                            ] {
                                let (o, i) = (
                                    walk(&ours_cfg, s, access).is_ok(),
                                    walk(&iop_cfg, s, access).is_ok(),
                                );
                                ensure!(
                                    o == allowed && i == allowed,
                                    "{:?} at {:#x} prot {:#x}: ours {}, io-pgtable {}, want {}",
                                    access,
                                    s,
                                    prot,
                                    o,
                                    i,
                                    allowed
                                );
                            }
                        }
                    }
                    va += pgsize * count;
                    left -= pgsize * count;
                }
                // Just past the end nothing translates (the layout leaves
                // a hole after every mapping).
                let past = iova + len;
                ensure!(
                    ours.iova_to_phys(past).is_none() && iop.iova_to_phys(past) == 0,
                    "{:#x} past a mapping translates",
                    past
                );
                ensure!(
                    walk(&ours_cfg, past, arm::Access::read(true)).is_err()
                        && walk(&iop_cfg, past, arm::Access::read(true)).is_err(),
                    "the walker translates {:#x} past a mapping",
                    past
                );
            }
        }
        // The hinted table did use contiguous groups (the 256 x 4K and the
        // 4K runs), so comparing it without the hint was not vacuous.
        ensure!(
            samples > 1000 && hinted_groups >= 5 * 2 * 256,
            "only {} samples, {} in contiguous groups",
            samples,
            hinted_groups
        );
        // Unmap everything on both sides: same sizes, nothing left.
        for k in 0..prots.len() {
            let base = (k as u64 + 1) * 16 * G1;
            for (iova, len) in diff_mappings(base) {
                let (a, c) = {
                    let mut g = ours.gather(&NoFlush);
                    let a = ours.unmap(iova, len, &mut g);
                    g.sync();
                    let mut g = cont.gather(&NoFlush);
                    let c = cont.unmap(iova, len, &mut g);
                    g.sync();
                    (a, c)
                };
                // SAFETY: mapped above with the same arguments; nothing
                // else uses this table.
                let b = unsafe { iop.unmap(iova, iova + DELTA, len) };
                ensure!(
                    a == len && b == len && c == len,
                    "unmap {:#x}+{:#x}: ours {:#x}, io-pgtable {:#x}, hinted {:#x}",
                    iova,
                    len,
                    a,
                    b,
                    c
                );
                for s in [iova, iova + len / 2, iova + len - 1] {
                    ensure!(
                        ours.iova_to_phys(s).is_none()
                            && iop.iova_to_phys(s) == 0
                            && cont.iova_to_phys(s).is_none(),
                        "{:#x} translates after unmap",
                        s
                    );
                }
            }
        }
        let mut left = 0u32;
        ours.for_each_leaf(|_| left += 1);
        cont.for_each_leaf(|_| left += 1);
        ensure!(left == 0, "{} leaves left", left);
        Ok(())
    }
}
