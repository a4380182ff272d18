//! Host benchmark of the page-table engine: map and unmap cost per format
//! in simulated table memory, as ns per operation and ns per PTE. Not a
//! test: it only measures, and writes `build/bench-pt-host.json` (or the
//! path in `IOMMUFD_RS_BENCH_OUT`).
//!
//! Run with `cargo bench --bench pt_host` (`make bench` does).

use iommufd_rs::drivers::mock::pagetable::AmdV1Mock;
use iommufd_rs::drivers::smmuv3::pagetable::{Gran16K, Gran4K, Gran64K, Stage, Vmsa, VmsaConfig};
use iommufd_rs::drivers::vtd::pagetable::{FsConfig, SsConfig, VtdFs, VtdSs};
use iommufd_rs::pagetable::engine::{Format, PageTable};
use iommufd_rs::pagetable::gather::NoFlush;
use iommufd_rs::pagetable::{PROT_CACHE, PROT_READ, PROT_WRITE};
use iommufd_rs::platform::PtMem;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

const PROT: u32 = PROT_READ | PROT_WRITE | PROT_CACHE;

struct Case {
    name: String,
    ptes: u64,
    map_ns: f64,
    unmap_ns: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median over 200 rounds of the mean map and unmap time of `len` bytes,
/// `iters` times at consecutive strides from `iova`: tables already exist
/// (as in a long-lived domain) and stay cache-warm, so this is the CPU
/// cost of the page-table code, as upstream's iommupt figures are.
fn measure<F: Format>(pt: &PageTable<F, &PtMem>, iova: u64, len: u64, iters: u32) -> (f64, f64) {
    let oa = 0x40_0000_0000u64;
    let stride = len;
    let at = |i: u32| iova + u64::from(i) * stride;
    let (mut maps, mut unmaps) = (Vec::new(), Vec::new());
    for round in 0..201 {
        let mut g = pt.gather(&NoFlush);
        let t0 = Instant::now();
        for i in 0..iters {
            pt.map(black_box(at(i)), oa, len, PROT, &mut g)
                .expect("map");
        }
        let t1 = Instant::now();
        for i in 0..iters {
            black_box(pt.unmap(black_box(at(i)), len, &mut g));
        }
        let t2 = Instant::now();
        g.sync();
        // The first round allocates the tables; it is not measured.
        if round > 0 {
            maps.push((t1 - t0).as_nanos() as f64 / f64::from(iters));
            unmaps.push((t2 - t1).as_nanos() as f64 / f64::from(iters));
        }
    }
    (median(&mut maps), median(&mut unmaps))
}

fn bench_format<F: Format>(out: &mut Vec<Case>, name: &str, make: impl Fn() -> F, big: &[u64]) {
    if std::env::var("IOMMUFD_RS_BENCH_FILTER").is_ok_and(|f| !name.contains(&f)) {
        return;
    }
    let mem = PtMem::with_capacity(256 << 20);
    let pt = PageTable::new(make(), &mem).expect("table");
    let g = 1u64 << F::GRANULE_LG2;
    let base = 1u64 << (pt.format().vasz_lg2() - 4);
    let mut cases = vec![(format!("1x{}", size_name(g)), g, 1u64, 64u32)];
    cases.push((format!("256x{}", size_name(g)), 256 * g, 256, 32));
    for &b in big {
        if pt.pgsize_bitmap() & b != 0 {
            cases.push((size_name(b), b, 1, 64));
        }
    }
    for (case, len, ptes, iters) in cases {
        let (map_ns, unmap_ns) = measure(&pt, base, len, iters);
        out.push(Case {
            name: format!("{name}/{case}"),
            ptes,
            map_ns,
            unmap_ns,
        });
    }
}

fn size_name(s: u64) -> String {
    match s.trailing_zeros() {
        b @ 30.. => format!("{}G", 1u64 << (b - 30)),
        b @ 20.. => format!("{}M", 1u64 << (b - 20)),
        b => format!("{}K", 1u64 << (b - 10)),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test` of benches
    // passes nothing and should not spend time here.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let arm = |stage, contiguous| {
        let mut c = match stage {
            Stage::S1 => VmsaConfig::s1(48, 48),
            Stage::S2 => VmsaConfig::s2(48, 48),
        };
        c.contiguous = contiguous;
        c
    };
    let mut out = Vec::new();
    let big = [1 << 21, 1 << 25, 1 << 29, 1 << 30];
    bench_format(
        &mut out,
        "arm-s1-4k",
        || Vmsa::<Gran4K>::new(arm(Stage::S1, true)).expect("cfg"),
        &big,
    );
    bench_format(
        &mut out,
        "arm-s1-4k-nocont",
        || Vmsa::<Gran4K>::new(arm(Stage::S1, false)).expect("cfg"),
        &big,
    );
    bench_format(
        &mut out,
        "arm-s2-4k",
        || Vmsa::<Gran4K>::new(arm(Stage::S2, true)).expect("cfg"),
        &big,
    );
    bench_format(
        &mut out,
        "arm-s1-16k",
        || Vmsa::<Gran16K>::new(arm(Stage::S1, true)).expect("cfg"),
        &big,
    );
    bench_format(
        &mut out,
        "arm-s1-64k",
        || Vmsa::<Gran64K>::new(arm(Stage::S1, true)).expect("cfg"),
        &big,
    );
    let ss = SsConfig {
        addr_width: 48,
        oas: 48,
        sllps: 3,
        force_coherence: false,
        force_writeable: false,
    };
    bench_format(&mut out, "vtd-ss-48", || VtdSs::new(ss).expect("cfg"), &big);
    let fs = FsConfig {
        levels: 4,
        oas: 48,
        gb_pages: true,
    };
    bench_format(&mut out, "vtd-fs-4l", || VtdFs::new(fs).expect("cfg"), &big);
    bench_format(&mut out, "mock-amdv1", || AmdV1Mock, &big);

    let mut json = String::from(
        "{\n  \"unit\": \"ns, median over 200 rounds of the mean per call, tables cache-warm\",\n  \"cases\": {\n",
    );
    for (i, c) in out.iter().enumerate() {
        let _ = writeln!(
            json,
            "    \"{}\": {{\"ptes\": {}, \"map_ns\": {:.1}, \"unmap_ns\": {:.1}, \"map_ns_per_pte\": {:.2}, \"unmap_ns_per_pte\": {:.2}}}{}",
            c.name,
            c.ptes,
            c.map_ns,
            c.unmap_ns,
            c.map_ns / c.ptes as f64,
            c.unmap_ns / c.ptes as f64,
            if i + 1 == out.len() { "" } else { "," }
        );
        println!(
            "{:<28} map {:>9.1} ns ({:>6.2}/PTE)  unmap {:>9.1} ns ({:>6.2}/PTE)",
            c.name,
            c.map_ns,
            c.map_ns / c.ptes as f64,
            c.unmap_ns,
            c.unmap_ns / c.ptes as f64
        );
    }
    json.push_str("  }\n}\n");
    let path =
        std::env::var("IOMMUFD_RS_BENCH_OUT").unwrap_or_else(|_| "build/bench-pt-host.json".into());
    if let Some(dir) = std::path::Path::new(&path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&path, json).expect("write the result file");
    println!("wrote {path}");
}
