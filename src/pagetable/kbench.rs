//! Benchmark of the page-table engine in the kernel: map + unmap of our
//! ARM stage-1 4K format (contiguous hint on and off) against the
//! kernel's `io-pgtable-arm`, same cases and no-op flushes on both sides.
//! The module runs it at load with `pt_bench=1` and logs one
//! `iommufd_rs_ptbench: {json}` line per case; `make bench` collects them
//! into `build/vm/bench-pt.json`. Not a test: nothing is judged.

#[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
use super::iopgtable::IoPgtable;
#[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
use super::{PROT_CACHE, PROT_READ, PROT_WRITE};

#[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
use kernel::prelude::GFP_KERNEL;

/// One benchmark case: map + unmap of `count` pages of `pgsize` (one call
/// each on both sides).
#[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
struct BenchCase {
    name: &'static str,
    pgsize: u64,
    count: u64,
    iters: u32,
}

#[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
const BENCH_CASES: [BenchCase; 4] = [
    BenchCase {
        name: "1x4K",
        pgsize: 1 << 12,
        count: 1,
        iters: 2000,
    },
    BenchCase {
        name: "256x4K",
        pgsize: 1 << 12,
        count: 256,
        iters: 2000,
    },
    BenchCase {
        name: "2M",
        pgsize: 1 << 21,
        count: 1,
        iters: 2000,
    },
    BenchCase {
        name: "1G",
        pgsize: 1 << 30,
        count: 1,
        iters: 500,
    },
];

/// Timed rounds per side and case; the median is reported.
#[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
const BENCH_ROUNDS: usize = 7;
/// Where the benchmark maps (1G-aligned, inside 48 bits).
#[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
const BENCH_IOVA: u64 = 1 << 32;
#[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
const BENCH_PA: u64 = 1 << 38;

/// The median of `rounds` (total ns of `iters` operations each), in
/// tenths of a nanosecond per operation.
#[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
fn median_dns(mut rounds: [i64; BENCH_ROUNDS], iters: u32) -> i64 {
    rounds.sort_unstable();
    rounds[BENCH_ROUNDS / 2] * 10 / i64::from(iters.max(1))
}

/// Runs `op` `iters` times per round for [`BENCH_ROUNDS`] rounds after one
/// warm-up round; the median in tenths of ns per call.
#[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
fn time_rounds(
    iters: u32,
    mut op: impl FnMut() -> Result<(), &'static str>,
) -> Result<i64, &'static str> {
    use kernel::time::{Instant, Monotonic};
    for _ in 0..iters.min(100) {
        op()?;
    }
    let mut rounds = [0i64; BENCH_ROUNDS];
    for r in rounds.iter_mut() {
        let t = Instant::<Monotonic>::now();
        for _ in 0..iters {
            op()?;
        }
        *r = t.elapsed().as_nanos();
    }
    Ok(median_dns(rounds, iters))
}

/// Our ARM stage-1 4K format, contiguous hint on or off.
#[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
fn bench_ours(case: &BenchCase, contiguous: bool) -> Result<i64, &'static str> {
    use crate::drivers::smmuv3::pagetable::{Gran4K, Vmsa, VmsaConfig};
    use crate::pagetable::engine::PageTable;
    use crate::pagetable::gather::NoFlush;
    use crate::platform::PtMem;

    let fmt = Vmsa::<Gran4K>::new(VmsaConfig {
        contiguous,
        ..VmsaConfig::s1(48, 48)
    })
    .map_err(|_| "format")?;
    let pt = PageTable::new(fmt, PtMem::new()).map_err(|_| "table allocation")?;
    let len = case.pgsize * case.count;
    let prot = PROT_READ | PROT_WRITE | PROT_CACHE;
    let op = || {
        let mut g = pt.gather(&NoFlush);
        let r = pt.map(BENCH_IOVA, BENCH_PA, len, prot, &mut g);
        g.sync();
        r.map_err(|_| "map")?;
        let mut g = pt.gather(&NoFlush);
        let n = pt.unmap(BENCH_IOVA, len, &mut g);
        g.sync();
        if n != len {
            return Err("unmap length");
        }
        Ok(())
    };
    // One checked round trip before timing.
    {
        let mut g = pt.gather(&NoFlush);
        let r = pt.map(BENCH_IOVA, BENCH_PA, len, prot, &mut g);
        g.sync();
        r.map_err(|_| "map")?;
        if pt.iova_to_phys(BENCH_IOVA + len - 1) != Some(BENCH_PA + len - 1) {
            return Err("ours translates wrongly");
        }
        let mut g = pt.gather(&NoFlush);
        let n = pt.unmap(BENCH_IOVA, len, &mut g);
        g.sync();
        if n != len {
            return Err("unmap length");
        }
    }
    time_rounds(case.iters, op)
}

/// io-pgtable-arm: one `map_pages(pgsize, count)` and one
/// `unmap_pages(pgsize, count)` per operation.
#[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
fn bench_iop(
    dev: &kernel::device::Device<kernel::device::Bound>,
    case: &BenchCase,
) -> Result<i64, &'static str> {
    let iop = IoPgtable::new(dev).map_err(|_| "io-pgtable allocation")?;
    let len = case.pgsize * case.count;
    let prot = PROT_READ | PROT_WRITE | PROT_CACHE;
    let op = || {
        // SAFETY: the range is unmapped before every map and mapped by
        // exactly this call before the unmap; the table is used by this
        // thread only and is not live.
        let (mapped, r) = unsafe {
            iop.0.map_pages(
                BENCH_IOVA as usize,
                BENCH_PA,
                case.pgsize as usize,
                case.count as usize,
                prot,
                GFP_KERNEL,
            )
        };
        if r.is_err() || mapped as u64 != len {
            return Err("io-pgtable map");
        }
        // SAFETY: as above; the range holds exactly the pages just mapped.
        let n = unsafe {
            iop.0.unmap_pages(
                BENCH_IOVA as usize,
                case.pgsize as usize,
                case.count as usize,
            )
        };
        if n as u64 != len {
            return Err("io-pgtable unmap length");
        }
        Ok(())
    };
    // One checked round trip before timing.
    {
        // SAFETY: the fresh table maps nothing; used by this thread only.
        unsafe { iop.map(BENCH_IOVA, BENCH_PA, len, prot) }.map_err(|_| "io-pgtable map")?;
        if iop.iova_to_phys(BENCH_IOVA + len - 1) != BENCH_PA + len - 1 {
            return Err("io-pgtable translates wrongly");
        }
        // SAFETY: mapped just above with the same arguments.
        if unsafe { iop.unmap(BENCH_IOVA, BENCH_PA, len) } != len {
            return Err("io-pgtable unmap length");
        }
    }
    time_rounds(case.iters, op)
}

/// Times map + unmap of our ARM stage-1 4K format (contiguous hint on and
/// off) against io-pgtable-arm, both with no-op flushes, and logs one line
/// per case: `iommufd_rs_ptbench: {"case":..,"ours_ns":..,..}` (medians of
/// [`BENCH_ROUNDS`] rounds, ns per map + unmap pair). Not a test: nothing
/// is judged.
pub(crate) fn run_bench() {
    #[cfg(CONFIG_IOMMU_IO_PGTABLE_LPAE)]
    {
        let reg = match kernel::faux::Registration::new(c"iommufd_rs_ptbench", None) {
            Ok(r) => r,
            Err(e) => {
                kernel::pr_err!("iommufd_rs_ptbench: no faux device: {:?}\n", e);
                return;
            }
        };
        let faux: &kernel::faux::Device<kernel::device::Bound> = reg.as_ref();
        let dev: &kernel::device::Device<kernel::device::Bound> = faux.as_ref();
        for case in &BENCH_CASES {
            let r = bench_ours(case, true).and_then(|ours| {
                let nocont = bench_ours(case, false)?;
                let iop = bench_iop(dev, case)?;
                Ok((ours, nocont, iop))
            });
            match r {
                Ok((ours, nocont, iop)) => kernel::pr_info!(
                    "iommufd_rs_ptbench: {{\"case\":\"{}\",\"pgsize\":{},\"count\":{},\"iters\":{},\"rounds\":{},\"ours_ns\":{}.{},\"ours_nocont_ns\":{}.{},\"iopgtable_ns\":{}.{}}}\n",
                    case.name,
                    case.pgsize,
                    case.count,
                    case.iters,
                    BENCH_ROUNDS,
                    ours / 10,
                    ours % 10,
                    nocont / 10,
                    nocont % 10,
                    iop / 10,
                    iop % 10
                ),
                Err(e) => kernel::pr_err!(
                    "iommufd_rs_ptbench: {{\"case\":\"{}\",\"error\":\"{}\"}}\n",
                    case.name,
                    e
                ),
            }
        }
    }
    #[cfg(not(CONFIG_IOMMU_IO_PGTABLE_LPAE))]
    kernel::pr_err!("iommufd_rs_ptbench: {{\"error\":\"CONFIG_IOMMU_IO_PGTABLE_LPAE is off\"}}\n");
}
