//! IOAS ioctls driven through `iommufd_rs::ucmd::ioctl` with fake user
//! memory, checked against upstream iommufd's semantics (`io/ioas.c`,
//! `io/io_pagetable.c`, `io/vfio_compat.c` of Linux 7.3): ALLOC, MAP, UNMAP,
//! COPY, IOVA_RANGES, ALLOW_IOVAS, OPTION(HUGE_PAGES), the mock domain and
//! its checks, the VFIO type1 compatibility ioctls and DESTROY of a busy
//! IOAS. Fake pins are per thread, so every test sees only its own.

mod ioas_common;

use ioas_common::*;
use iommufd_rs::errno::*;
use iommufd_rs::platform::fake;
use iommufd_uapi::*;

const MAX: u64 = u64::MAX;

fn pins() -> (u64, i64) {
    (fake::total_pins(), fake::accounted())
}

#[test]
fn ioas_alloc_ids_and_flags() {
    let fd = Fd::new();
    assert_eq!(fd.ioas_alloc(), Ok(1));
    assert_eq!(fd.ioas_alloc(), Ok(2));
    let mut c = IommuIoasAlloc {
        size: 12,
        flags: 1,
        out_ioas_id: 0,
    };
    assert_eq!(fd.call(IOMMU_IOAS_ALLOC, &mut c), Err(EOPNOTSUPP));
    // A fresh IOAS is empty and its whole IOVA space is usable.
    assert_eq!(fd.areas(1), vec![]);
    assert_eq!(fd.ranges(1), (vec![(0, MAX)], 1));
}

#[test]
fn map_fixed_iova_and_its_errors() {
    let fd = Fd::new();
    let ioas = fd.ioas();
    assert_eq!(fd.map_fixed(ioas, BUF, 0x4000, 0x10000), Ok(0x10000));
    assert_eq!(fd.areas(ioas), vec![(0x10000, 0x13fff)]);
    // Any overlap with an existing area is EEXIST.
    assert_eq!(fd.map_fixed(ioas, BUF, 0x4000, 0x12000), Err(EEXIST));
    assert_eq!(fd.map_fixed(ioas, BUF, 0x2000, 0xf000), Err(EEXIST));
    assert_eq!(fd.map_fixed(ioas, BUF, 0x1, 0x13fff), Err(EEXIST));
    // Neither READABLE nor WRITEABLE.
    assert_eq!(
        fd.map(ioas, IOMMU_IOAS_MAP_FIXED_IOVA, BUF, PS, 0x20000),
        Err(EINVAL)
    );
    // Unknown flags and a non-zero __reserved.
    assert_eq!(fd.map(ioas, RW | 1 << 3, BUF, PS, 0x20000), Err(EOPNOTSUPP));
    let mut c = IommuIoasMap {
        size: core::mem::size_of::<IommuIoasMap>() as u32,
        flags: RW,
        ioas_id: ioas,
        __reserved: 1,
        user_va: BUF,
        length: PS,
        iova: 0,
    };
    assert_eq!(fd.call(IOMMU_IOAS_MAP, &mut c), Err(EOPNOTSUPP));
    // Lengths and overflow.
    assert_eq!(fd.map_fixed(ioas, BUF, 0, 0x20000), Err(EINVAL));
    assert_eq!(fd.map_fixed(ioas, BUF, PS, MAX), Err(EOVERFLOW));
    assert_eq!(fd.map_fixed(ioas, BUF, MAX, 0x20000), Err(EOVERFLOW));
    assert_eq!(fd.map_fixed(ioas, BUF, 0x2000, MAX - 0xfff), Err(EOVERFLOW));
    // The last page of the IOVA space is mappable.
    assert_eq!(fd.map_fixed(ioas, BUF, PS, MAX - 0xfff), Ok(MAX - 0xfff));
    // Unknown IOAS.
    assert_eq!(fd.map_fixed(99, BUF, PS, 0x20000), Err(ENOENT));
    // Adjacent is fine.
    assert_eq!(fd.map_fixed(ioas, BUF, PS, 0x14000), Ok(0x14000));
    assert_eq!(
        fd.areas(ioas),
        vec![(0x10000, 0x13fff), (0x14000, 0x14fff), (MAX - 0xfff, MAX)]
    );
    // A reserved range is EINVAL for a fixed IOVA.
    fd.add_reserved(ioas, 0x30000, 0x1000).unwrap();
    assert_eq!(fd.map_fixed(ioas, BUF, 0x2000, 0x2f000), Err(EINVAL));
    // Without a domain nothing is pinned: pinning is lazy.
    assert_eq!(pins(), (0, 0));
}

#[test]
fn map_auto_iova_is_aligned_nonzero_and_free() {
    let fd = Fd::new();
    let ioas = fd.ioas();
    // align = min(roundup_pow_of_two(length), 1 << ffs(uva)): the first
    // 16 KiB-aligned IOVA at or above PAGE_SIZE.
    let a = fd.map_auto(ioas, BUF, 0x4000).unwrap();
    assert_eq!(a, 0x4000);
    // uva only 4 KiB aligned: 4 KiB alignment suffices.
    let b = fd.map_auto(ioas, BUF + PS, 0x3000).unwrap();
    assert_eq!(b % PS, 0);
    assert_eq!(b, 0x1000, "the hole below the first area fits");
    // A sub-page uva keeps its offset in the page.
    let c = fd.map_auto(ioas, BUF + 0x800, 0x800).unwrap();
    assert_eq!(c % PS, 0x800);
    let areas = fd.areas(ioas);
    assert_eq!(areas.len(), 3);
    for w in areas.windows(2) {
        assert!(w[0].1 < w[1].0, "overlap: {areas:x?}");
    }
    assert!(areas.iter().all(|&(s, _)| s != 0));
    // Reserved ranges are skipped.
    fd.unmap_all(ioas).unwrap();
    fd.add_reserved(ioas, 0, 0x20000).unwrap();
    assert_eq!(fd.map_auto(ioas, BUF, 0x4000), Ok(0x20000));
    // No hole left: ENOSPC.
    let full = fd.ioas();
    fd.add_reserved(full, 0, MAX).unwrap();
    assert_eq!(fd.map_auto(full, BUF, PS), Err(ENOSPC));
    assert_eq!(fd.ranges(full).0, vec![(MAX, MAX)]);
    assert_eq!(fd.areas(full), vec![]);
}

#[test]
fn unmap_takes_whole_areas_only() {
    let fd = Fd::new();
    let ioas = fd.ioas();
    fd.map_fixed(ioas, BUF, 0x4000, 0x10000).unwrap();
    fd.map_fixed(ioas, BUF, 0x2000, 0x20000).unwrap();
    fd.map_fixed(ioas, BUF, 0x1000, 0x30000).unwrap();
    let all = vec![(0x10000, 0x13fff), (0x20000, 0x21fff), (0x30000, 0x30fff)];
    // Partial unmaps of an area are ENOENT and change nothing.
    assert_eq!(fd.unmap(ioas, 0x10000, 0x2000), Err(ENOENT));
    assert_eq!(fd.unmap(ioas, 0x11000, 0x10000), Err(ENOENT));
    assert_eq!(fd.unmap(ioas, 0x21000, 0x1000), Err(ENOENT));
    // A range with no area is ENOENT.
    assert_eq!(fd.unmap(ioas, 0x50000, 0x1000), Err(ENOENT));
    assert_eq!(fd.areas(ioas), all);
    // Argument errors.
    assert_eq!(fd.unmap(ioas, 0x10000, 0), Err(EINVAL));
    assert_eq!(fd.unmap(ioas, MAX, 1), Err(EOVERFLOW));
    assert_eq!(fd.unmap(ioas, 0x10000, MAX), Err(EOVERFLOW));
    assert_eq!(fd.unmap(ioas, MAX - 10, 100), Err(EOVERFLOW));
    assert_eq!(fd.unmap(77, 0x10000, 0x4000), Err(ENOENT));
    // A range covering two areas and the holes around them.
    assert_eq!(fd.unmap(ioas, 0xf000, 0x13000), Ok(0x6000));
    assert_eq!(fd.areas(ioas), vec![(0x30000, 0x30fff)]);
    // Areas fully inside are unmapped before the one sticking out fails.
    fd.map_fixed(ioas, BUF, 0x1000, 0x40000).unwrap();
    fd.map_fixed(ioas, BUF, 0x2000, 0x41000).unwrap();
    assert_eq!(fd.unmap(ioas, 0x40000, 0x2000), Err(ENOENT));
    assert_eq!(fd.areas(ioas), vec![(0x30000, 0x30fff), (0x41000, 0x42fff)]);
    // Unmap-all returns the bytes; on an empty IOAS it succeeds with 0.
    assert_eq!(fd.unmap_all(ioas), Ok(0x3000));
    assert_eq!(fd.areas(ioas), vec![]);
    assert_eq!(fd.unmap_all(ioas), Ok(0));
}

#[test]
fn copy_shares_pins_between_ioases_and_domains() {
    let fd = Fd::new();
    let a = fd.ioas();
    let (_, hwpt_a, _) = fd.mock_domain(a).unwrap();
    let b = fd.ioas();
    let (_, hwpt_b, _) = fd.mock_domain(b).unwrap();
    fd.map_fixed(a, BUF, 4 * PS, A0).unwrap();
    assert_eq!(pins(), (4, 4));
    fd.check_refs(BUF, 4 * PS, 1).unwrap();
    fd.check_map(hwpt_a, A0, 4 * PS, BUF).unwrap();

    let dst = A0 + 0x10_0000;
    assert_eq!(
        fd.copy(RW | IOMMU_IOAS_MAP_FIXED_IOVA, b, a, A0, 4 * PS, dst),
        Ok(dst)
    );
    // Same pages, same pins, no double accounting.
    assert_eq!(pins(), (4, 4));
    fd.check_refs(BUF, 4 * PS, 1).unwrap();
    fd.check_map(hwpt_b, dst, 4 * PS, BUF).unwrap();

    // Any contiguous sub-range can be copied, at sub-page granularity.
    let d = fd.copy(RW, b, a, A0 + 0x800, 0x1000, 0).unwrap();
    assert_eq!(d % MPS, 0);
    fd.check_map(hwpt_b, d, 0x1000, BUF + 0x800).unwrap();
    assert_eq!(pins(), (4, 4));

    // Gaps and bad lengths.
    let fixed = RW | IOMMU_IOAS_MAP_FIXED_IOVA;
    assert_eq!(
        fd.copy(fixed, b, a, A0, 5 * PS, A0 + 0x20_0000),
        Err(ENOENT)
    );
    assert_eq!(
        fd.copy(fixed, b, a, A0 - PS, PS, A0 + 0x20_0000),
        Err(ENOENT)
    );
    assert_eq!(fd.copy(fixed, b, a, A0, 0, A0 + 0x20_0000), Err(EINVAL));
    assert_eq!(fd.copy(fixed, b, a, A0, PS, dst), Err(EEXIST));
    assert_eq!(fd.copy(0, b, a, A0, PS, 0), Err(EINVAL));
    assert_eq!(fd.copy(fixed, 99, a, A0, PS, A0), Err(ENOENT));

    // Unmapping the source leaves the copies (and their pins) alone.
    assert_eq!(fd.unmap_all(a), Ok(4 * PS));
    assert_eq!(pins(), (4, 4));
    fd.check_map(hwpt_b, dst, 4 * PS, BUF).unwrap();
    assert_eq!(fd.unmap(b, dst, 4 * PS), Ok(4 * PS));
    // The sub-range copy still holds its two pages.
    assert_eq!(pins(), (2, 2));
    fd.check_refs(BUF, 2 * PS, 1).unwrap();
    fd.check_refs(BUF + 2 * PS, 2 * PS, 0).unwrap();
    assert_eq!(fd.unmap_all(b), Ok(0x1000));
    assert_eq!(pins(), (0, 0));
}

#[test]
fn copy_into_an_ioas_with_a_domain_pins_once() {
    let fd = Fd::new();
    let a = fd.ioas();
    let b = fd.ioas();
    let (_, hwpt_b, _) = fd.mock_domain(b).unwrap();
    // The source has no domain: nothing pinned yet.
    fd.map_fixed(a, BUF, 4 * PS, A0).unwrap();
    assert_eq!(pins(), (0, 0));
    fd.copy(RW | IOMMU_IOAS_MAP_FIXED_IOVA, b, a, A0, 4 * PS, A0)
        .unwrap();
    assert_eq!(pins(), (4, 4));
    fd.check_map(hwpt_b, A0, 4 * PS, BUF).unwrap();
    // A domain on the source now shares the pins.
    let (stdev_a, hwpt_a, _) = fd.mock_domain(a).unwrap();
    assert_eq!(pins(), (4, 4));
    fd.check_refs(BUF, 4 * PS, 1).unwrap();
    fd.check_map(hwpt_a, A0, 4 * PS, BUF).unwrap();
    fd.destroy(stdev_a).unwrap();
    assert_eq!(pins(), (4, 4));
}

#[test]
fn copy_of_read_only_pages_for_write_is_eperm() {
    let fd = Fd::new();
    let a = fd.ioas();
    let b = fd.ioas();
    let fixed = IOMMU_IOAS_MAP_FIXED_IOVA;
    fd.map(a, IOMMU_IOAS_MAP_READABLE | fixed, BUF, PS, 0x10000)
        .unwrap();
    assert_eq!(fd.copy(RW | fixed, b, a, 0x10000, PS, 0x10000), Err(EPERM));
    assert_eq!(fd.areas(b), vec![]);
    assert_eq!(
        fd.copy(IOMMU_IOAS_MAP_READABLE | fixed, b, a, 0x10000, PS, 0x10000),
        Ok(0x10000)
    );
}

#[test]
fn iova_ranges_are_the_holes_of_the_reserved_ranges() {
    let fd = Fd::new();
    let ioas = fd.ioas();
    fd.add_reserved(ioas, 0x10000, 0x10000).unwrap();
    assert_eq!(fd.ranges(ioas), (vec![(0, 0xffff), (0x20000, MAX)], 1));
    // Too small an array: EMSGSIZE, the total count written back and the
    // entries that fit written, nothing past them.
    fd.mem.poke(ARR, &[0x5a; 64]);
    let (r, n, align, got) = fd.iova_ranges(ioas, 1);
    assert_eq!(r, Err(EMSGSIZE));
    assert_eq!(n, 2);
    assert_eq!(align, 1);
    assert_eq!(got, vec![(0, 0xffff)]);
    assert_eq!(fd.mem.peek(ARR + 16, 16), vec![0x5a; 16]);
    let (r, n, _, _) = fd.iova_ranges(ioas, 0);
    assert_eq!((r, n), (Err(EMSGSIZE), 2));
    // Exactly enough room.
    let (r, n, _, got) = fd.iova_ranges(ioas, 2);
    assert_eq!((r, n), (Ok(0), 2));
    assert_eq!(got, vec![(0, 0xffff), (0x20000, MAX)]);

    // A mock domain narrows the space to its aperture and sets the
    // alignment to its page size.
    let (stdev, _, _) = fd.mock_domain(ioas).unwrap();
    assert_eq!(fd.ranges(ioas), (vec![(A0, MOCK_APERTURE_LAST)], MPS));
    // Detaching widens it again.
    fd.destroy(stdev).unwrap();
    assert_eq!(fd.ranges(ioas), (vec![(0, 0xffff), (0x20000, MAX)], 1));

    // __reserved and unknown IDs.
    let mut c = IommuIoasIovaRanges {
        size: core::mem::size_of::<IommuIoasIovaRanges>() as u32,
        ioas_id: ioas,
        num_iovas: 0,
        __reserved: 1,
        allowed_iovas: ARR,
        out_iova_alignment: 0,
    };
    assert_eq!(fd.call(IOMMU_IOAS_IOVA_RANGES, &mut c), Err(EOPNOTSUPP));
    assert_eq!(fd.iova_ranges(1234, 4).0, Err(ENOENT));
    // Reserving at the very top and bottom leaves the middle.
    let top = fd.ioas();
    fd.add_reserved(top, 0, PS).unwrap();
    fd.add_reserved(top, MAX - 0xfff, 0x1000).unwrap();
    assert_eq!(fd.ranges(top).0, vec![(PS, MAX - 0x1000)]);
    // A one-byte hole is a range of its own.
    fd.add_reserved(top, 0x10000, 0x1000).unwrap();
    fd.add_reserved(top, 0x11001, 0x1000).unwrap();
    assert_eq!(
        fd.ranges(top).0,
        vec![(PS, 0xffff), (0x11000, 0x11000), (0x12001, MAX - 0x1000)]
    );
}

#[test]
fn allow_iovas_rules() {
    let fd = Fd::new();
    let ioas = fd.ioas();
    // start >= last and overlapping inputs are EINVAL.
    assert_eq!(fd.allow(ioas, &[(0x1000, 0x1000)]), Err(EINVAL));
    assert_eq!(fd.allow(ioas, &[(0x2000, 0x1000)]), Err(EINVAL));
    assert_eq!(
        fd.allow(ioas, &[(0x10000, 0x1ffff), (0x1f000, 0x2ffff)]),
        Err(EINVAL)
    );
    assert_eq!(
        fd.allow(ioas, &[(0x10000, 0x1ffff), (0x8000, 0x10000)]),
        Err(EINVAL)
    );
    // Adjacent ranges do not overlap.
    assert_eq!(
        fd.allow(ioas, &[(0x10000, 0x1ffff), (0x20000, 0x2ffff)]),
        Ok(())
    );
    // Allowing a reserved range is EADDRINUSE.
    fd.add_reserved(ioas, 0x50000, 0x1000).unwrap();
    assert_eq!(fd.allow(ioas, &[(0x40000, 0x50fff)]), Err(EADDRINUSE));
    assert_eq!(fd.allow(ioas, &[(0x50fff, 0x60000)]), Err(EADDRINUSE));
    // Automatic IOVAs come from the allowed ranges only.
    assert_eq!(fd.allow(ioas, &[(0x100000, 0x1fffff)]), Ok(()));
    let iova = fd.map_auto(ioas, BUF, 0x4000).unwrap();
    assert!((0x100000..=0x1fffff - 0x3fff).contains(&iova), "{iova:#x}");
    // A failed ALLOW_IOVAS keeps the old ranges.
    assert_eq!(fd.allow(ioas, &[(0x40000, 0x50fff)]), Err(EADDRINUSE));
    let iova = fd.map_auto(ioas, BUF, 0x4000).unwrap();
    assert!((0x100000..=0x1fffff - 0x3fff).contains(&iova), "{iova:#x}");
    // Reserving inside an allowed range is EADDRINUSE.
    assert_eq!(fd.add_reserved(ioas, 0x180000, 0x1000), Err(EADDRINUSE));
    // Fixed maps may go outside the allowed ranges.
    assert_eq!(fd.map_fixed(ioas, BUF, PS, 0x80000), Ok(0x80000));
    // When the allowed ranges do not fit the space left, ENOSPC.
    assert_eq!(fd.map_auto(ioas, BUF, 0x200000), Err(ENOSPC));

    // A domain whose aperture would reserve an allowed range cannot attach.
    let other = fd.ioas();
    fd.allow(other, &[(0x1000, 0xffff)]).unwrap();
    let before = fd.nobjects();
    assert_eq!(fd.mock_domain(other), Err(EADDRINUSE));
    assert_eq!(fd.nobjects(), before);
    assert_eq!(fd.ranges(other), (vec![(0, MAX)], 1));
    // An empty list clears the allowed ranges.
    assert_eq!(fd.allow(other, &[]), Ok(()));
    fd.mock_domain(other).unwrap();
    // With the domain attached, allowing outside the aperture is refused,
    // inside it is fine.
    assert_eq!(fd.allow(other, &[(0x1000, 0xffff)]), Err(EADDRINUSE));
    assert_eq!(fd.allow(other, &[(A0, A0 + 0xfffff)]), Ok(()));
    let iova = fd.map_auto(other, BUF, 0x4000).unwrap();
    assert!((A0..=A0 + 0xfffff).contains(&iova));
}

#[test]
fn huge_pages_option() {
    let fd = Fd::new();
    let ioas = fd.ioas();
    assert_eq!(fd.huge_pages(ioas), Ok(1));
    // A sub-page area blocks PAGE_SIZE alignment.
    fd.map_fixed(ioas, BUF, 0x800, 0x10000).unwrap();
    assert_eq!(fd.set_huge_pages(ioas, 0), Err(EADDRINUSE));
    assert_eq!(fd.huge_pages(ioas), Ok(1));
    assert_eq!(fd.ranges(ioas).1, 1);
    fd.unmap_all(ioas).unwrap();
    fd.map_fixed(ioas, BUF, 2 * PS, 0x10000).unwrap();
    assert_eq!(fd.set_huge_pages(ioas, 0), Ok(()));
    assert_eq!(fd.huge_pages(ioas), Ok(0));
    assert_eq!(fd.ranges(ioas).1, PS);
    assert_eq!(fd.set_huge_pages(ioas, 0), Ok(()));
    // Everything must now be PAGE_SIZE aligned.
    assert_eq!(fd.map_fixed(ioas, BUF, 0x800, 0x20000), Err(EINVAL));
    assert_eq!(fd.map_fixed(ioas, BUF, PS, 0x20800), Err(EINVAL));
    assert_eq!(fd.map_fixed(ioas, BUF + 0x800, PS, 0x20000), Err(EINVAL));
    assert_eq!(fd.map_auto(ioas, BUF + 0x800, PS), Err(EINVAL));
    assert_eq!(fd.map_fixed(ioas, BUF, PS, 0x20000), Ok(0x20000));
    assert_eq!(fd.set_huge_pages(ioas, 1), Ok(()));
    assert_eq!(fd.huge_pages(ioas), Ok(1));
    assert_eq!(fd.ranges(ioas).1, 1);
    // Bad values, ops, objects and options.
    assert_eq!(fd.set_huge_pages(ioas, 2), Err(EINVAL));
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, 7, ioas, 0),
        Err(EOPNOTSUPP)
    );
    assert_eq!(fd.huge_pages(999), Err(ENOENT));
    assert_eq!(fd.option(9, IOMMU_OPTION_OP_GET, ioas, 0), Err(EOPNOTSUPP));
    // A domain holding areas may have huge IOPTEs: EINVAL.
    let d = fd.ioas();
    fd.mock_domain(d).unwrap();
    fd.map_fixed(d, BUF, PS, A0).unwrap();
    assert_eq!(fd.set_huge_pages(d, 0), Err(EINVAL));
    fd.unmap_all(d).unwrap();
    // A domain without areas is fine; the alignment is the larger one.
    assert_eq!(fd.set_huge_pages(d, 0), Ok(()));
    assert_eq!(fd.ranges(d).1, PS);
    assert_eq!(fd.set_huge_pages(d, 1), Ok(()));
    assert_eq!(fd.ranges(d).1, MPS);
}

#[test]
fn mock_domain_maps_existing_and_new_areas() {
    let fd = Fd::new();
    let ioas = fd.ioas();
    fd.map_fixed(ioas, BUF, 4 * PS, A0).unwrap();
    assert_eq!(pins(), (0, 0));
    let (stdev, hwpt, idev) = fd.mock_domain(ioas).unwrap();
    // Attach pins and maps what was mapped before.
    assert_eq!(pins(), (4, 4));
    fd.check_refs(BUF, 4 * PS, 1).unwrap();
    fd.check_map(hwpt, A0, 4 * PS, BUF).unwrap();
    // A sub-page mapping: three mock pages over two CPU pages.
    let uva = BUF + 0x10_0000 + 0x800;
    let iova = A0 + 0x10_0000;
    assert_eq!(fd.map_fixed(ioas, uva, 3 * MPS, iova), Ok(iova));
    assert_eq!(pins(), (6, 6));
    fd.check_map(hwpt, iova, 3 * MPS, uva).unwrap();
    // CHECK_MAP fails for other memory, misalignment and unmapped IOVA.
    assert_eq!(fd.check_map(hwpt, A0, 4 * PS, BUF + PS), Err(EINVAL));
    assert_eq!(fd.check_map(hwpt, A0 + 0x400, MPS, BUF), Err(EINVAL));
    assert_eq!(
        fd.check_map(hwpt, A0 + 4 * PS, MPS, BUF + 4 * PS),
        Err(EINVAL)
    );
    assert_eq!(fd.check_map(stdev, A0, MPS, BUF), Err(ENOENT));
    // Outside the aperture, or misaligned for 2 KiB pages: EINVAL.
    assert_eq!(fd.map_fixed(ioas, BUF, PS, 0x10000), Err(EINVAL));
    assert_eq!(fd.map_fixed(ioas, BUF, 0x400, A0 + 0x20_0000), Err(EINVAL));
    assert_eq!(fd.map_fixed(ioas, BUF, MPS, A0 + 0x20_0400), Err(EINVAL));
    assert_eq!(pins(), (6, 6));
    // A second mock device reuses the automatic HWPT.
    let (stdev2, hwpt2, _) = fd.mock_domain(ioas).unwrap();
    assert_eq!(hwpt2, hwpt);
    // A second domain (HWPT_ALLOC) maps everything without new pins.
    let hwpt3 = fd.hwpt_alloc(idev, ioas).unwrap();
    assert_ne!(hwpt3, hwpt);
    assert_eq!(fd.ndomains(ioas), 2);
    fd.check_map(hwpt3, A0, 4 * PS, BUF).unwrap();
    fd.check_map(hwpt3, iova, 3 * MPS, uva).unwrap();
    assert_eq!(pins(), (6, 6));
    fd.check_refs(BUF, 4 * PS, 1).unwrap();
    // Unmap removes the translation from every domain.
    assert_eq!(fd.unmap(ioas, A0, 4 * PS), Ok(4 * PS));
    assert_eq!(fd.check_map(hwpt, A0, MPS, BUF), Err(EINVAL));
    assert_eq!(fd.check_map(hwpt3, A0, MPS, BUF), Err(EINVAL));
    assert_eq!(
        fd.translate(hwpt3, [A0, A0 + 4 * PS - 1].into_iter()),
        vec![None, None]
    );
    assert_eq!(pins(), (2, 2));
    // The last domain leaving unpins; the areas stay.
    fd.destroy(hwpt3).unwrap();
    assert_eq!(pins(), (2, 2));
    fd.destroy(stdev2).unwrap();
    fd.destroy(stdev).unwrap();
    assert_eq!(fd.ndomains(ioas), 0);
    assert_eq!(pins(), (0, 0));
    assert_eq!(fd.areas(ioas), vec![(iova, iova + 3 * MPS - 1)]);
    // The automatic HWPT went with its last device.
    assert_eq!(fd.destroy(hwpt), Err(ENOENT));
}

#[test]
fn attach_with_an_area_outside_the_aperture_fails_cleanly() {
    let fd = Fd::new();
    let ioas = fd.ioas();
    fd.map_fixed(ioas, BUF, PS, A0).unwrap();
    fd.map_fixed(ioas, BUF, PS, 0x10000).unwrap();
    let before = fd.nobjects();
    assert_eq!(fd.mock_domain(ioas), Err(EADDRINUSE));
    assert_eq!(fd.nobjects(), before);
    assert_eq!(pins(), (0, 0));
    assert_eq!(fd.ranges(ioas), (vec![(0, MAX)], 1));
    // A misaligned area (for 2 KiB pages) also blocks the attach.
    fd.unmap(ioas, 0x10000, PS).unwrap();
    fd.map_fixed(ioas, BUF, 0x400, A0 + 0x10000).unwrap();
    assert_eq!(fd.mock_domain(ioas), Err(EADDRINUSE));
    assert_eq!(fd.nobjects(), before);
    assert_eq!(pins(), (0, 0));
    fd.unmap(ioas, A0 + 0x10000, 0x400).unwrap();
    let (_, hwpt, _) = fd.mock_domain(ioas).unwrap();
    fd.check_map(hwpt, A0, PS, BUF).unwrap();
    assert_eq!(pins(), (1, 1));
}

#[test]
fn vfio_compat_ioctls() {
    let fd = Fd::new();
    assert_eq!(
        fd.vfio(VFIO_GET_API_VERSION, 0),
        Ok(VFIO_API_VERSION as isize)
    );
    for (ext, want) in [
        (VFIO_TYPE1_IOMMU, 1),
        (VFIO_TYPE1V2_IOMMU, 1),
        (VFIO_UNMAP_ALL, 1),
        (VFIO_UPDATE_VADDR, 0),
        (VFIO_TYPE1_NESTING_IOMMU, 0),
        (VFIO_SPAPR_TCE_IOMMU, 0),
    ] {
        assert_eq!(
            fd.vfio(VFIO_CHECK_EXTENSION, u64::from(ext)),
            Ok(want),
            "extension {ext}"
        );
    }
    // Without a compatibility IOAS.
    let cc = u64::from(VFIO_DMA_CC_IOMMU);
    assert_eq!(fd.vfio(VFIO_CHECK_EXTENSION, cc), Err(ENODEV));
    assert_eq!(fd.vfio_ioas(IOMMU_VFIO_IOAS_GET, 0), Err(ENODEV));
    assert_eq!(fd.vfio_map(3, BUF, A0, PS), Err(ENODEV));
    assert_eq!(
        fd.vfio(VFIO_SET_IOMMU, u64::from(VFIO_TYPE1V2_IOMMU)),
        Err(ENODEV)
    );
    assert_eq!(fd.vfio_ioas(IOMMU_VFIO_IOAS_SET, 42), Err(ENOENT));

    let ioas = fd.ioas();
    assert_eq!(fd.vfio_ioas(IOMMU_VFIO_IOAS_SET, ioas), Ok(ioas));
    assert_eq!(fd.vfio_ioas(IOMMU_VFIO_IOAS_GET, 0), Ok(ioas));
    assert_eq!(fd.vfio(VFIO_CHECK_EXTENSION, cc), Ok(1));
    assert_eq!(fd.vfio(VFIO_SET_IOMMU, 5), Err(EINVAL));
    assert_eq!(
        fd.vfio(VFIO_SET_IOMMU, u64::from(VFIO_TYPE1V2_IOMMU)),
        Ok(0)
    );
    let rw = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    assert_eq!(fd.vfio_map(rw, BUF, A0, 4 * PS), Ok(()));
    assert_eq!(fd.areas(ioas), vec![(A0, A0 + 4 * PS - 1)]);
    assert_eq!(fd.vfio_map(rw, BUF, A0 + PS, PS), Err(EEXIST));
    assert_eq!(
        fd.vfio_map(VFIO_DMA_MAP_FLAG_VADDR, BUF, A0, PS),
        Err(EINVAL)
    );
    // Type1v2: a partial unmap is ENOENT.
    let (r, size) = fd.vfio_unmap(0, A0, PS);
    assert_eq!((r, size), (Err(ENOENT), 0));
    // An empty range unmaps nothing successfully (VFIO semantics).
    assert_eq!(fd.vfio_unmap(0, A0 + 0x10_0000, PS), (Ok(0), 0));
    // FLAG_ALL needs iova = size = 0.
    assert_eq!(fd.vfio_unmap(VFIO_DMA_UNMAP_FLAG_ALL, PS, 0).0, Err(EINVAL));
    assert_eq!(fd.vfio_unmap(VFIO_DMA_UNMAP_FLAG_ALL, 0, PS).0, Err(EINVAL));
    assert_eq!(fd.vfio_unmap(1 << 3, A0, 4 * PS).0, Err(EINVAL));
    assert_eq!(fd.vfio_unmap(0, A0, 4 * PS), (Ok(0), 4 * PS));
    assert_eq!(fd.areas(ioas), vec![]);
    fd.vfio_map(rw, BUF, A0, 4 * PS).unwrap();
    fd.vfio_map(rw, BUF, A0 + 0x10_0000, PS).unwrap();
    assert_eq!(
        fd.vfio_unmap(VFIO_DMA_UNMAP_FLAG_ALL, 0, 0),
        (Ok(0), 5 * PS)
    );
    assert_eq!(fd.areas(ioas), vec![]);
    // CLEAR, and destroying the compatibility IOAS forgets it.
    assert_eq!(fd.vfio_ioas(IOMMU_VFIO_IOAS_CLEAR, 0), Ok(0));
    assert_eq!(fd.vfio_ioas(IOMMU_VFIO_IOAS_GET, 0), Err(ENODEV));
    fd.vfio_ioas(IOMMU_VFIO_IOAS_SET, ioas).unwrap();
    fd.destroy(ioas).unwrap();
    assert_eq!(fd.vfio_ioas(IOMMU_VFIO_IOAS_GET, 0), Err(ENODEV));
    assert_eq!(fd.vfio_map(rw, BUF, A0, PS), Err(ENODEV));
}

#[test]
fn vfio_type1_v1_unmaps_part_of_a_mapping() {
    let fd = Fd::new();
    let ioas = fd.ioas();
    fd.vfio_ioas(IOMMU_VFIO_IOAS_SET, ioas).unwrap();
    let (_, hwpt, _) = fd.mock_domain(ioas).unwrap();
    assert_eq!(fd.vfio(VFIO_SET_IOMMU, u64::from(VFIO_TYPE1_IOMMU)), Ok(0));
    // TYPE1 disables huge IOPTEs: PAGE_SIZE alignment.
    assert_eq!(fd.huge_pages(ioas), Ok(0));
    assert_eq!(fd.ranges(ioas).1, PS);
    let rw = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    fd.vfio_map(rw, BUF, A0, 4 * PS).unwrap();
    assert_eq!(pins(), (4, 4));
    // Unmap the middle two pages: the area is cut at both ends.
    assert_eq!(fd.vfio_unmap(0, A0 + PS, 2 * PS), (Ok(0), 2 * PS));
    assert_eq!(
        fd.areas(ioas),
        vec![(A0, A0 + PS - 1), (A0 + 3 * PS, A0 + 4 * PS - 1)]
    );
    assert_eq!(pins(), (2, 2));
    fd.check_map(hwpt, A0, PS, BUF).unwrap();
    fd.check_map(hwpt, A0 + 3 * PS, PS, BUF + 3 * PS).unwrap();
    assert_eq!(fd.check_map(hwpt, A0 + PS, PS, BUF + PS), Err(EINVAL));
    fd.check_refs(BUF, PS, 1).unwrap();
    fd.check_refs(BUF + PS, 2 * PS, 0).unwrap();
    fd.check_refs(BUF + 3 * PS, PS, 1).unwrap();
    // A cut that is not PAGE_SIZE aligned is EINVAL and changes nothing.
    assert_eq!(fd.vfio_unmap(0, A0 + 3 * PS + 0x800, 0x800).0, Err(EINVAL));
    assert_eq!(fd.areas(ioas).len(), 2);
    // Unmapping the tail of an area.
    fd.vfio_map(rw, BUF + 8 * PS, A0 + 8 * PS, 4 * PS).unwrap();
    assert_eq!(fd.vfio_unmap(0, A0 + 10 * PS, 2 * PS), (Ok(0), 2 * PS));
    assert_eq!(fd.areas(ioas)[2], (A0 + 8 * PS, A0 + 10 * PS - 1));
    fd.check_map(hwpt, A0 + 8 * PS, 2 * PS, BUF + 8 * PS)
        .unwrap();
    assert_eq!(pins(), (4, 4));
    // One range over the areas and the holes between them.
    assert_eq!(fd.vfio_unmap(0, A0, 16 * PS), (Ok(0), 4 * PS));
    assert_eq!(fd.areas(ioas), vec![]);
    assert_eq!(pins(), (0, 0));

    // TYPE1 cannot be set once a domain holds areas.
    let other = fd.ioas();
    fd.mock_domain(other).unwrap();
    fd.map_fixed(other, BUF, PS, A0).unwrap();
    fd.vfio_ioas(IOMMU_VFIO_IOAS_SET, other).unwrap();
    assert_eq!(
        fd.vfio(VFIO_SET_IOMMU, u64::from(VFIO_TYPE1_IOMMU)),
        Err(EINVAL)
    );
    assert_eq!(fd.huge_pages(other), Ok(1));
    // Without TYPE1 the same partial unmap is ENOENT.
    fd.map_fixed(other, BUF, 4 * PS, A0 + 4 * PS).unwrap();
    assert_eq!(fd.vfio_unmap(0, A0 + 5 * PS, PS).0, Err(ENOENT));
}

#[test]
fn destroy_of_an_ioas_in_use_is_ebusy() {
    let fd = Fd::new();
    let ioas = fd.ioas();
    let (stdev, hwpt, idev) = fd.mock_domain(ioas).unwrap();
    fd.map_fixed(ioas, BUF, 2 * PS, A0).unwrap();
    assert_eq!(fd.destroy(ioas), Err(EBUSY));
    // The HWPT is used by the device, the device by its driver.
    assert_eq!(fd.destroy(hwpt), Err(EBUSY));
    assert_eq!(fd.destroy(idev), Err(EBUSY));
    assert_eq!(pins(), (2, 2));
    fd.check_map(hwpt, A0, 2 * PS, BUF).unwrap();
    // A HWPT_ALLOC'd HWPT holds its IOAS too.
    let other = fd.ioas();
    let hwpt2 = fd.hwpt_alloc(idev, other).unwrap();
    assert_eq!(fd.destroy(other), Err(EBUSY));
    assert_eq!(fd.destroy(hwpt2), Ok(()));
    assert_eq!(fd.destroy(other), Ok(()));
    // Removing the device frees the automatic HWPT and the IOAS.
    assert_eq!(fd.destroy(stdev), Ok(()));
    assert_eq!(fd.destroy(hwpt), Err(ENOENT));
    assert_eq!(pins(), (0, 0));
    assert_eq!(fd.destroy(ioas), Ok(()));
    assert_eq!(fd.destroy(ioas), Err(ENOENT));
    assert_eq!(fd.nobjects(), 0);
    assert_eq!(pins(), (0, 0));
}

#[test]
fn closing_the_file_releases_every_pin() {
    let fd = Fd::new();
    let a = fd.ioas();
    let b = fd.ioas();
    let (_, _, idev) = fd.mock_domain(a).unwrap();
    fd.hwpt_alloc(idev, a).unwrap();
    fd.mock_domain(b).unwrap();
    fd.map_fixed(a, BUF, 8 * PS, A0).unwrap();
    fd.map_auto(a, BUF + 0x800, 5 * MPS).unwrap();
    fd.copy(RW, b, a, A0 + PS, 4 * PS, 0).unwrap();
    fd.vfio_ioas(IOMMU_VFIO_IOAS_SET, b).unwrap();
    fd.vfio_map(3, BUF + 0x100_0000, A0 + 0x40_0000, 3 * PS)
        .unwrap();
    assert!(fake::total_pins() > 0);
    assert_eq!(fake::total_pins() as i64, fake::accounted());
    drop(fd);
    assert_eq!(pins(), (0, 0));
}

/// Upstream iterates the allowed ranges as spans of the interval tree,
/// which merges adjacent ranges (`interval_tree_span_iter_next_gap()`), so
/// an automatic IOVA may straddle two adjacent allowed ranges.
#[test]
fn auto_iova_may_span_adjacent_allowed_ranges() {
    let fd = Fd::new();
    let ioas = fd.ioas();
    fd.allow(ioas, &[(0x10000, 0x1ffff), (0x20000, 0x2ffff)])
        .unwrap();
    // align = min(roundup(0x20000), 1 << ffs(uva)) = 0x10000.
    let uva = BUF + 0x10000;
    assert_eq!(fd.map_auto(ioas, uva, 0x20000), Ok(0x10000));
}

#[test]
fn copy_and_map_respect_the_destination_alignment() {
    let fd = Fd::new();
    let a = fd.ioas();
    let b = fd.ioas();
    let (_, hwpt_b, _) = fd.mock_domain(b).unwrap();
    // The source has no domain: 1-byte alignment, anything goes there.
    fd.map_fixed(a, BUF, 4 * PS, A0).unwrap();
    fd.map_fixed(a, BUF, 0x400, A0 + 0x10_0400).unwrap();
    let fixed = RW | IOMMU_IOAS_MAP_FIXED_IOVA;
    // 1 KiB pieces cannot go into 2 KiB mock pages.
    assert_eq!(fd.copy(fixed, b, a, A0, 0x400, A0), Err(EINVAL));
    assert_eq!(fd.copy(fixed, b, a, A0 + 0x400, MPS, A0), Err(EINVAL));
    assert_eq!(fd.copy(fixed, b, a, A0, MPS, A0 + 0x400), Err(EINVAL));
    assert_eq!(fd.copy(RW, b, a, A0 + 0x400, MPS, 0), Err(EINVAL));
    assert_eq!(fd.map_fixed(b, BUF + 0x400, MPS, A0), Err(EINVAL));
    assert_eq!(fd.map_auto(b, BUF + 0x400, MPS), Err(EINVAL));
    assert_eq!(fd.areas(b), vec![]);
    assert_eq!(pins(), (0, 0));
    assert_eq!(fd.copy(fixed, b, a, A0 + MPS, MPS, A0), Ok(A0));
    fd.check_map(hwpt_b, A0, MPS, BUF + MPS).unwrap();
    assert_eq!(pins(), (1, 1));
    // Reserving over an area is EADDRINUSE.
    assert_eq!(fd.add_reserved(a, A0 + PS, 1), Err(EADDRINUSE));
}

#[test]
fn wrong_object_kinds_and_bad_user_pointers() {
    let fd = Fd::new();
    let ioas = fd.ioas();
    let (stdev, hwpt, idev) = fd.mock_domain(ioas).unwrap();
    // IDs of other kinds are ENOENT for IOAS commands.
    for id in [stdev, hwpt, idev] {
        assert_eq!(fd.map_fixed(id, BUF, PS, A0), Err(ENOENT));
        assert_eq!(fd.unmap_all(id), Err(ENOENT));
        assert_eq!(fd.huge_pages(id), Err(ENOENT));
        assert_eq!(fd.iova_ranges(id, 4).0, Err(ENOENT));
        assert_eq!(fd.allow(id, &[]), Err(ENOENT));
        assert_eq!(fd.copy(RW, id, ioas, A0, PS, 0), Err(ENOENT));
        assert_eq!(fd.vfio_ioas(IOMMU_VFIO_IOAS_SET, id), Err(ENOENT));
    }
    // IOVA_RANGES writes through the array pointer only what fits.
    let bad = 0x9000_0000;
    let mut c = IommuIoasIovaRanges {
        size: core::mem::size_of::<IommuIoasIovaRanges>() as u32,
        ioas_id: ioas,
        num_iovas: 4,
        __reserved: 0,
        allowed_iovas: bad,
        out_iova_alignment: 0,
    };
    assert_eq!(fd.call(IOMMU_IOAS_IOVA_RANGES, &mut c), Err(EFAULT));
    c.num_iovas = 0;
    assert_eq!(fd.call(IOMMU_IOAS_IOVA_RANGES, &mut c), Err(EMSGSIZE));
    assert_eq!((c.num_iovas, c.out_iova_alignment), (1, MPS));
    // ALLOW_IOVAS with an unreadable array faults and changes nothing.
    let mut a = IommuIoasAllowIovas {
        size: core::mem::size_of::<IommuIoasAllowIovas>() as u32,
        ioas_id: ioas,
        num_iovas: 2,
        __reserved: 0,
        allowed_iovas: bad,
    };
    assert_eq!(fd.call(IOMMU_IOAS_ALLOW_IOVAS, &mut a), Err(EFAULT));
    a.__reserved = 1;
    assert_eq!(fd.call(IOMMU_IOAS_ALLOW_IOVAS, &mut a), Err(EOPNOTSUPP));
    // Still no allowed ranges: the allocator uses the whole aperture.
    assert_eq!(fd.map_auto(ioas, BUF, PS), Ok(A0));
}

#[test]
fn vfio_get_info_reports_page_sizes_and_capabilities() {
    use zerocopy::{FromBytes, IntoBytes};
    let fd = Fd::new();
    let info_size = core::mem::size_of::<VfioIommuType1Info>() as u32;
    let get_info = |argsz: u32| {
        let info = VfioIommuType1Info {
            argsz,
            ..Default::default()
        };
        let mut buf = vec![0u8; argsz.max(info_size) as usize];
        buf[..info_size as usize].copy_from_slice(info.as_bytes());
        fd.mem.poke(ARG, &buf);
        let r = fd.vfio(VFIO_IOMMU_GET_INFO, ARG);
        (r, fd.mem.peek(ARG, buf.len()))
    };
    assert_eq!(get_info(info_size).0, Err(ENODEV));
    let ioas = fd.ioas();
    fd.vfio_ioas(IOMMU_VFIO_IOAS_SET, ioas).unwrap();
    fd.mock_domain(ioas).unwrap();
    // Too small for the capabilities: the size needed comes back.
    let (r, out) = get_info(info_size);
    assert_eq!(r, Ok(0));
    let info = VfioIommuType1Info::read_from_bytes(&out[..info_size as usize]).unwrap();
    assert_eq!(info.flags, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
    // 2 KiB..64 GiB mock pages are reported as PAGE_SIZE..64 GiB.
    assert_eq!(info.iova_pgsizes, 0x1f_ffff_f000);
    assert_eq!(info.cap_offset, 0);
    // info (24) + DMA_AVAIL (12, padded to 16) + IOVA_RANGE (16 + 1 * 16).
    assert_eq!(info.argsz, 24 + 16 + 32);
    let (r, out) = get_info(info.argsz);
    assert_eq!(r, Ok(0));
    let info = VfioIommuType1Info::read_from_bytes(&out[..24]).unwrap();
    assert_eq!(info.cap_offset, 24);
    let avail = VfioIommuType1InfoDmaAvail::read_from_bytes(&out[24..36]).unwrap();
    assert_eq!(
        (avail.header.id, avail.header.version, avail.header.next),
        (VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, 40)
    );
    assert_eq!(avail.avail, u32::MAX);
    let cap = VfioIommuType1InfoCapIovaRange::read_from_bytes(&out[40..56]).unwrap();
    assert_eq!(
        (cap.header.id, cap.header.version, cap.header.next),
        (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, 0)
    );
    assert_eq!(cap.nr_iovas, 1);
    let range = VfioIovaRange::read_from_bytes(&out[56..72]).unwrap();
    assert_eq!((range.start, range.end), (A0, MOCK_APERTURE_LAST));
    // Below the minimum size: EINVAL.
    assert_eq!(get_info(8).0, Err(EINVAL));
}

/// Upstream checks for objects before it looks at the value
/// (`iommufd_option_rlimit_mode`).
#[test]
fn rlimit_mode_set_is_ebusy_with_objects_before_the_value_check() {
    let fd = Fd::new();
    let set = |v| fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, v);
    assert_eq!(set(2), Err(EINVAL));
    assert_eq!(set(1), Ok(1));
    let ioas = fd.ioas();
    assert_eq!(set(2), Err(EBUSY));
    assert_eq!(set(0), Err(EBUSY));
    fd.destroy(ioas).unwrap();
    assert_eq!(set(0), Ok(0));
}

/// `VFIO_DMA_CC_IOMMU` is 1 only while every paging HWPT of the
/// compatibility IOAS enforces cache coherency; the mock IOMMU does not
/// report `IOMMU_CAP_ENFORCE_CACHE_COHERENCY`, so any HWPT makes it 0.
#[test]
fn vfio_dma_cc_iommu_follows_the_hwpts_of_the_compat_ioas() {
    let fd = Fd::new();
    let cc = u64::from(VFIO_DMA_CC_IOMMU);
    let ioas = fd.ioas();
    let other = fd.ioas();
    fd.vfio_ioas(IOMMU_VFIO_IOAS_SET, ioas).unwrap();
    assert_eq!(fd.vfio(VFIO_CHECK_EXTENSION, cc), Ok(1));
    // A HWPT of another IOAS does not count.
    let (stdev, _, dev) = fd.mock_domain(other).unwrap();
    assert_eq!(fd.vfio(VFIO_CHECK_EXTENSION, cc), Ok(1));
    // A manual HWPT of the compat IOAS, attached or not, does.
    let hwpt = fd.hwpt_alloc(dev, ioas).unwrap();
    assert_eq!(fd.vfio(VFIO_CHECK_EXTENSION, cc), Ok(0));
    fd.destroy(hwpt).unwrap();
    assert_eq!(fd.vfio(VFIO_CHECK_EXTENSION, cc), Ok(1));
    fd.destroy(stdev).unwrap();
    let (stdev, _, _) = fd.mock_domain(ioas).unwrap();
    assert_eq!(fd.vfio(VFIO_CHECK_EXTENSION, cc), Ok(0));
    fd.destroy(stdev).unwrap();
    assert_eq!(fd.vfio(VFIO_CHECK_EXTENSION, cc), Ok(1));
}

/// The default mock table (AMDv1, 2 KiB granule) maps 2 KiB..64 GiB;
/// upstream folds that to PAGE_SIZE..64 GiB, and a huge-variant domain
/// (1 MiB and PAGE_SIZE leaves) narrows it further.
#[test]
fn vfio_iova_pgsizes_come_from_the_domain_tables() {
    use zerocopy::{FromBytes, IntoBytes};
    let fd = Fd::new();
    let pgsizes = || {
        let info = VfioIommuType1Info {
            argsz: 24,
            ..Default::default()
        };
        fd.mem.poke(ARG, info.as_bytes());
        fd.vfio(VFIO_IOMMU_GET_INFO, ARG).unwrap();
        VfioIommuType1Info::read_from_bytes(&fd.mem.peek(ARG, 24))
            .unwrap()
            .iova_pgsizes
    };
    let ioas = fd.ioas();
    fd.vfio_ioas(IOMMU_VFIO_IOAS_SET, ioas).unwrap();
    // No domain: every size from PAGE_SIZE.
    assert_eq!(pgsizes(), !(PS - 1));
    let (_, _, dev) = fd.mock_domain(ioas).unwrap();
    assert_eq!(pgsizes(), 0x1f_ffff_f000);
    let p = IommuHwptSelftest {
        iotlb: 0,
        pagetable_type: MOCK_IOMMUPT_HUGE,
    };
    fd.mem.map(0x30_000, 0x1000);
    fd.mem.poke(0x30_000, p.as_bytes());
    let mut c = with_size(IommuHwptAlloc {
        dev_id: dev,
        pt_id: ioas,
        data_type: IOMMU_HWPT_DATA_SELFTEST,
        data_len: core::mem::size_of::<IommuHwptSelftest>() as u32,
        data_uptr: 0x30_000,
        ..Default::default()
    });
    fd.call(IOMMU_HWPT_ALLOC, &mut c).unwrap();
    assert_eq!(pgsizes(), MOCK_HUGE_PAGE_SIZE | PS);
}
