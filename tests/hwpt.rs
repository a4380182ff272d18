//! Host tests of the HWPT issue: nested HWPTs and their invalidation
//! arrays, dirty tracking down to the user bitmap, the vIOMMU family
//! (vDEVICE tombstones, vEVENT queues), PASID attach rules, FAULT fds, and
//! property tests of the event-queue logic and the mock page table's dirty
//! bits.

mod ioas_common;

use ioas_common::*;
use iommufd_rs::drivers::mock::pagetable::MockPageTable;
use iommufd_rs::errno::*;
use iommufd_rs::hw_pagetable::eventq::{EventFile, FaultGroup, FaultQueue, VeventQueue};
use iommufd_uapi::*;
use proptest::prelude::*;
use zerocopy::{FromBytes, IntoBytes};

/// Scratch user memory for driver data, arrays and bitmaps.
const DATA: u64 = 0x20_000;
const DATA_LEN: usize = 0x4000;

fn fd() -> Fd {
    let f = Fd::new();
    f.mem.map(DATA, DATA_LEN);
    f
}

fn hwpt_alloc(f: &Fd, dev: u32, pt: u32, flags: u32, data: Option<(u32, &[u8])>) -> Result<u32> {
    let (data_type, data_len, data_uptr) = match data {
        Some((t, d)) => {
            f.mem.poke(DATA, d);
            (t, d.len() as u32, DATA)
        }
        None => (0, 0, 0),
    };
    let mut c = with_size(IommuHwptAlloc {
        flags,
        dev_id: dev,
        pt_id: pt,
        data_type,
        data_len,
        data_uptr,
        ..Default::default()
    });
    f.call(IOMMU_HWPT_ALLOC, &mut c)?;
    Ok(c.out_hwpt_id)
}

fn selftest_data(iotlb: u32, pt: u32) -> IommuHwptSelftest {
    IommuHwptSelftest {
        iotlb,
        pagetable_type: pt,
    }
}

fn invalidate(
    f: &Fd,
    id: u32,
    ty: u32,
    entry_len: u32,
    entries: &[u8],
    num: u32,
) -> (Result<isize>, u32) {
    f.mem.poke(DATA, entries);
    let mut c = with_size(IommuHwptInvalidate {
        hwpt_id: id,
        data_uptr: DATA,
        data_type: ty,
        entry_len,
        entry_num: num,
        ..Default::default()
    });
    let r = f.call(IOMMU_HWPT_INVALIDATE, &mut c);
    (r, c.entry_num)
}

fn check_iotlb(f: &Fd, hwpt: u32, id: u32, v: u32) -> Result {
    let p = TestCheckIotlb { id, iotlb: v };
    f.test_cmd(IOMMU_TEST_OP_MD_CHECK_IOTLB, hwpt, &p)
        .0
        .map(drop)
}

fn mock_domain_flags(f: &Fd, pt: u32, flags: u32) -> Result<(u32, u32, u32)> {
    let p = TestMockDomainFlags {
        dev_flags: flags,
        ..Default::default()
    };
    let (r, c) = f.test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, pt, &p);
    r?;
    let o: TestMockDomainFlags = c.payload();
    Ok((o.out_stdev_id, o.out_hwpt_id, o.out_idev_id))
}

#[test]
fn nested_hwpt_alloc_and_invalidate_array() {
    let f = fd();
    let ioas = f.ioas();
    let (stdev, _, dev) = f.mock_domain(ioas).unwrap();
    let data = selftest_data(IOMMU_TEST_IOTLB_DEFAULT, 0);
    let d = data.as_bytes();
    let parent = hwpt_alloc(&f, dev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, None).unwrap();
    let plain = hwpt_alloc(&f, dev, ioas, 0, None).unwrap();
    // The ABI's argument rules, in upstream's order.
    assert_eq!(hwpt_alloc(&f, dev, parent, 0, Some((0, d))), Err(EINVAL));
    assert_eq!(
        hwpt_alloc(&f, dev, parent, 0, Some((IOMMU_HWPT_DATA_SELFTEST + 1, d))),
        Err(EOPNOTSUPP)
    );
    assert_eq!(
        hwpt_alloc(
            &f,
            dev,
            parent,
            0,
            Some((IOMMU_HWPT_DATA_SELFTEST, &d[..3]))
        ),
        Err(EINVAL)
    );
    assert_eq!(
        hwpt_alloc(&f, dev, plain, 0, Some((IOMMU_HWPT_DATA_SELFTEST, d))),
        Err(EINVAL)
    );
    assert_eq!(
        hwpt_alloc(
            &f,
            dev,
            parent,
            IOMMU_HWPT_ALLOC_NEST_PARENT,
            Some((IOMMU_HWPT_DATA_SELFTEST, d))
        ),
        Err(EOPNOTSUPP)
    );
    assert_eq!(
        hwpt_alloc(
            &f,
            dev,
            ioas,
            IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_FAULT_ID_VALID,
            None
        ),
        Err(EOPNOTSUPP)
    );
    let nested = hwpt_alloc(&f, dev, parent, 0, Some((IOMMU_HWPT_DATA_SELFTEST, d))).unwrap();
    assert_eq!(
        hwpt_alloc(&f, dev, nested, 0, Some((IOMMU_HWPT_DATA_SELFTEST, d))),
        Err(EINVAL)
    );
    assert_eq!(f.destroy(parent), Err(EBUSY));
    for i in 0..4 {
        check_iotlb(&f, nested, i, IOMMU_TEST_IOTLB_DEFAULT).unwrap();
    }
    // Partial progress is reported: the second entry has unknown flags.
    let reqs = [
        IommuHwptInvalidateSelftest {
            flags: 0,
            iotlb_id: 0,
        },
        IommuHwptInvalidateSelftest {
            flags: 0xffff_ffff,
            iotlb_id: 1,
        },
    ];
    let ty = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST;
    assert_eq!(
        invalidate(&f, nested, ty, 8, reqs.as_bytes(), 2),
        (Err(EOPNOTSUPP), 1)
    );
    check_iotlb(&f, nested, 0, 0).unwrap();
    check_iotlb(&f, nested, 1, IOMMU_TEST_IOTLB_DEFAULT).unwrap();
    assert_eq!(check_iotlb(&f, nested, 1, 0), Err(EINVAL));
    // Bounds, sizes and types.
    assert_eq!(
        invalidate(&f, nested, ty, 9, reqs.as_bytes(), 1),
        (Err(EINVAL), 0)
    );
    assert_eq!(
        invalidate(&f, nested, ty, 8, reqs.as_bytes(), (1 << 19) + 1),
        (Err(EINVAL), 0)
    );
    assert_eq!(
        invalidate(&f, nested, ty + 1, 8, reqs.as_bytes(), 1),
        (Err(EINVAL), 0)
    );
    assert_eq!(
        invalidate(&f, parent, ty, 8, reqs.as_bytes(), 1),
        (Err(EINVAL), 0)
    );
    assert_eq!(invalidate(&f, nested, ty, 8, &[], 0), (Ok(0), 0));
    let all = [IommuHwptInvalidateSelftest {
        flags: IOMMU_TEST_INVALIDATE_FLAG_ALL,
        iotlb_id: 0,
    }];
    assert_eq!(invalidate(&f, nested, ty, 8, all.as_bytes(), 1), (Ok(0), 1));
    for i in 0..4 {
        check_iotlb(&f, nested, i, 0).unwrap();
    }
    // Attached HWPTs are busy; the parent goes once the nested one did.
    let mut r = TestMockDomainReplace { pt_id: nested };
    f.test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, &r)
        .0
        .unwrap();
    assert_eq!(f.destroy(nested), Err(EBUSY));
    r.pt_id = ioas;
    f.test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, &r)
        .0
        .unwrap();
    f.destroy(nested).unwrap();
    f.destroy(parent).unwrap();
    f.destroy(plain).unwrap();
}

fn set_tracking(f: &Fd, hwpt: u32, on: bool) -> Result {
    let mut c = with_size(IommuHwptSetDirtyTracking {
        flags: if on {
            IOMMU_HWPT_DIRTY_TRACKING_ENABLE
        } else {
            0
        },
        hwpt_id: hwpt,
        ..Default::default()
    });
    f.call(IOMMU_HWPT_SET_DIRTY_TRACKING, &mut c).map(drop)
}

fn mark_dirty(f: &Fd, hwpt: u32, iova: u64, len: u64, bits: &[u8]) -> Result<u64> {
    f.mem.poke(DATA, bits);
    let p = TestDirty {
        iova,
        length: len,
        page_size: MPS,
        uptr: DATA,
        ..Default::default()
    };
    let (r, c) = f.test_cmd(IOMMU_TEST_OP_DIRTY, hwpt, &p);
    r?;
    Ok(c.payload::<TestDirty>().out_nr_dirty)
}

fn read_bitmap(f: &Fd, hwpt: u32, iova: u64, len: u64, at: u64, flags: u32) -> Result<Vec<u8>> {
    let nbytes = (len / MPS).div_ceil(8) as usize;
    f.mem.poke(at, &vec![0u8; nbytes]);
    let mut c = with_size(IommuHwptGetDirtyBitmap {
        hwpt_id: hwpt,
        flags,
        iova,
        length: len,
        page_size: MPS,
        data: at,
        ..Default::default()
    });
    f.call(IOMMU_HWPT_GET_DIRTY_BITMAP, &mut c)?;
    Ok(f.mem.peek(at, nbytes))
}

/// Bits `0..n` of a bitmap as a vector of booleans.
fn bits(b: &[u8], n: usize) -> Vec<bool> {
    (0..n).map(|i| b[i / 8] & (1 << (i % 8)) != 0).collect()
}

#[test]
fn dirty_bitmap_reports_whole_leaves() {
    for huge in [true, false] {
        let f = fd();
        let ioas = f.ioas();
        if !huge {
            f.set_huge_pages(ioas, 0).unwrap();
        }
        let (_, _, dev) = f.mock_domain(ioas).unwrap();
        let len = 64 * 1024;
        // Fake frames are contiguous (frame = 1 + page index): from
        // BUF - PS they are 64 KiB aligned, so huge pages give one leaf.
        f.map_fixed(ioas, BUF - PS, len, A0).unwrap();
        let hwpt = hwpt_alloc(&f, dev, ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, None).unwrap();
        assert_eq!(
            mark_dirty(&f, hwpt, A0, len, &[1]),
            Err(EINVAL),
            "tracking is off"
        );
        set_tracking(&f, hwpt, true).unwrap();
        // Dirty the 2 KiB page 4 (inside the second 4 KiB page).
        assert_eq!(mark_dirty(&f, hwpt, A0, len, &[0x10]), Ok(1));
        let n = (len / MPS) as usize;
        let want: Vec<bool> = (0..n).map(|i| huge || i / 2 == 2).collect();
        // An unaligned bitmap, with NO_CLEAR first.
        let at = DATA + 0x1001;
        let flags = IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR;
        assert_eq!(
            bits(&read_bitmap(&f, hwpt, A0, len, at, flags).unwrap(), n),
            want
        );
        assert_eq!(
            bits(&read_bitmap(&f, hwpt, A0, len, at, 0).unwrap(), n),
            want
        );
        assert_eq!(
            bits(&read_bitmap(&f, hwpt, A0, len, at, 0).unwrap(), n),
            vec![false; n]
        );
        // A hole in the mappings, misaligned ranges and a HWPT without
        // dirty support are refused.
        assert_eq!(read_bitmap(&f, hwpt, A0, 2 * len, at, 0), Err(EINVAL));
        assert_eq!(read_bitmap(&f, hwpt, A0 + 1024, len, at, 0), Err(EINVAL));
        let plain = hwpt_alloc(&f, dev, ioas, 0, None).unwrap();
        assert_eq!(set_tracking(&f, plain, true), Err(EOPNOTSUPP));
        assert_eq!(read_bitmap(&f, plain, A0, len, at, 0), Err(EOPNOTSUPP));
        // Enabling again starts from a clean snapshot.
        mark_dirty(&f, hwpt, A0, len, &[0xff]).unwrap();
        set_tracking(&f, hwpt, true).unwrap();
        assert_eq!(
            bits(&read_bitmap(&f, hwpt, A0, len, at, 0).unwrap(), n),
            vec![false; n]
        );
    }
}

#[test]
fn dirty_needs_capable_devices() {
    let f = fd();
    let ioas = f.ioas();
    let (_, _, dev) = mock_domain_flags(&f, ioas, MOCK_FLAGS_DEVICE_NO_DIRTY).unwrap();
    assert_eq!(
        hwpt_alloc(&f, dev, ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, None),
        Err(EOPNOTSUPP)
    );
    let (_, _, dev2) = f.mock_domain(ioas).unwrap();
    let hwpt = hwpt_alloc(&f, dev2, ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, None).unwrap();
    assert_eq!(
        mock_domain_flags(&f, hwpt, MOCK_FLAGS_DEVICE_NO_DIRTY).map(drop),
        Err(EINVAL)
    );
    f.mock_domain(hwpt).unwrap();
}

fn viommu_alloc(f: &Fd, dev: u32, hwpt: u32) -> Result<u32> {
    let mut c = with_size(IommuViommuAlloc {
        r#type: IOMMU_VIOMMU_TYPE_SELFTEST,
        dev_id: dev,
        hwpt_id: hwpt,
        ..Default::default()
    });
    f.call(IOMMU_VIOMMU_ALLOC, &mut c)?;
    Ok(c.out_viommu_id)
}

fn vdevice_alloc(f: &Fd, viommu: u32, dev: u32, virt_id: u64) -> Result<u32> {
    let mut c = with_size(IommuVdeviceAlloc {
        viommu_id: viommu,
        dev_id: dev,
        virt_id,
        ..Default::default()
    });
    f.call(IOMMU_VDEVICE_ALLOC, &mut c)?;
    Ok(c.out_vdevice_id)
}

#[test]
fn vdevice_rules_and_tombstone() {
    let f = fd();
    let ioas = f.ioas();
    let (stdev, _, dev) = f.mock_domain(ioas).unwrap();
    let plain = hwpt_alloc(&f, dev, ioas, 0, None).unwrap();
    assert_eq!(
        viommu_alloc(&f, dev, plain),
        Err(EINVAL),
        "not a nesting parent"
    );
    let parent = hwpt_alloc(&f, dev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, None).unwrap();
    let viommu = viommu_alloc(&f, dev, parent).unwrap();
    assert_eq!(f.destroy(parent), Err(EBUSY));
    let data = selftest_data(IOMMU_TEST_IOTLB_DEFAULT, 0);
    let nested = hwpt_alloc(
        &f,
        dev,
        viommu,
        0,
        Some((IOMMU_HWPT_DATA_SELFTEST, data.as_bytes())),
    )
    .unwrap();
    // A vIOMMU's nested HWPT needs the device's vDEVICE first.
    let r = TestMockDomainReplace { pt_id: nested };
    assert_eq!(
        f.test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, &r).0,
        Err(ENOENT)
    );
    let vdev = vdevice_alloc(&f, viommu, dev, 0x99).unwrap();
    assert_eq!(
        vdevice_alloc(&f, viommu, dev, 0x98),
        Err(EEXIST),
        "one per device"
    );
    f.test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, &r)
        .0
        .unwrap();
    // Unbinding the device takes the vDEVICE down; its ID stays dead.
    f.destroy(stdev).unwrap();
    assert_eq!(f.destroy(vdev), Err(ENOENT));
    for _ in 0..4 {
        assert_ne!(
            f.ioas_alloc().unwrap(),
            vdev,
            "a tombstoned ID is not reused"
        );
    }
    f.destroy(nested).unwrap();
    f.destroy(viommu).unwrap();
    f.destroy(parent).unwrap();
}

#[test]
fn pasid_attach_rules() {
    let f = fd();
    let ioas = f.ioas();
    let (stdev, _, dev) = mock_domain_flags(&f, ioas, MOCK_FLAGS_DEVICE_PASID).unwrap();
    let s2 = hwpt_alloc(&f, dev, ioas, IOMMU_HWPT_ALLOC_PASID, None).unwrap();
    let parent = hwpt_alloc(&f, dev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, None).unwrap();
    let attach = |op: u32, pasid: u32, pt: u32| {
        let p = TestPasidAttach { pasid, pt_id: pt };
        f.test_cmd(op, stdev, &p).0.map(drop)
    };
    let check = |pasid: u32, hwpt: u32| {
        let p = TestPasidCheck {
            pasid,
            hwpt_id: hwpt,
        };
        f.test_cmd(IOMMU_TEST_OP_PASID_CHECK_HWPT, stdev, &p)
            .0
            .map(drop)
    };
    // The RID is on a non-PASID-compatible (automatic) domain.
    assert_eq!(attach(IOMMU_TEST_OP_PASID_ATTACH, 100, s2), Err(EINVAL));
    let r = TestMockDomainReplace { pt_id: s2 };
    f.test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, &r)
        .0
        .unwrap();
    assert_eq!(attach(IOMMU_TEST_OP_PASID_ATTACH, 100, parent), Err(EINVAL));
    assert_eq!(attach(IOMMU_TEST_OP_PASID_ATTACH, 100, ioas), Err(EINVAL));
    attach(IOMMU_TEST_OP_PASID_ATTACH, 100, s2).unwrap();
    check(100, s2).unwrap();
    assert_eq!(attach(IOMMU_TEST_OP_PASID_ATTACH, 100, s2), Err(EBUSY));
    assert_eq!(
        attach(IOMMU_TEST_OP_PASID_ATTACH, 1 << 20, s2),
        Err(EINVAL),
        "past max_pasid_log2"
    );
    // With a PASID attached, the RID needs PASID-compatible domains.
    let r2 = TestMockDomainReplace { pt_id: parent };
    assert_eq!(
        f.test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, &r2).0,
        Err(EINVAL)
    );
    attach(IOMMU_TEST_OP_PASID_DETACH, 100, 0).unwrap();
    check(100, 0).unwrap();
    assert_eq!(
        attach(IOMMU_TEST_OP_PASID_REPLACE, 200, s2),
        Err(EINVAL),
        "not attached"
    );
    // The mock fails the second attach of PASID 1024: replace rolls back.
    let s2b = hwpt_alloc(&f, dev, ioas, IOMMU_HWPT_ALLOC_PASID, None).unwrap();
    attach(IOMMU_TEST_OP_PASID_ATTACH, 1024, s2).unwrap();
    assert_eq!(attach(IOMMU_TEST_OP_PASID_REPLACE, 1024, s2b), Err(ENOMEM));
    check(1024, s2).unwrap();
    attach(IOMMU_TEST_OP_PASID_REPLACE, 1024, s2b).unwrap();
    check(1024, s2b).unwrap();
    assert_eq!(f.destroy(s2b), Err(EBUSY));
    // Unbinding detaches every PASID.
    f.destroy(stdev).unwrap();
    f.destroy(s2b).unwrap();
    f.destroy(s2).unwrap();
}

#[test]
fn fault_fd_delivers_and_takes_responses() {
    let f = fd();
    let ioas = f.ioas();
    let (stdev, _, dev) = f.mock_domain(ioas).unwrap();
    let mut fa = with_size(IommuFaultAlloc::default());
    f.call(IOMMU_FAULT_QUEUE_ALLOC, &mut fa).unwrap();
    let parent = hwpt_alloc(&f, dev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, None).unwrap();
    let data = selftest_data(IOMMU_TEST_IOTLB_DEFAULT, 0);
    let mut c = with_size(IommuHwptAlloc {
        flags: IOMMU_HWPT_FAULT_ID_VALID,
        dev_id: dev,
        pt_id: parent,
        data_type: IOMMU_HWPT_DATA_SELFTEST,
        data_len: 8,
        data_uptr: DATA,
        fault_id: fa.out_fault_id,
        ..Default::default()
    });
    f.mem.poke(DATA, data.as_bytes());
    f.call(IOMMU_HWPT_ALLOC, &mut c).unwrap();
    let iopf = c.out_hwpt_id;
    // The fd holds the FAULT object.
    assert_eq!(f.destroy(fa.out_fault_id), Err(EBUSY));
    let r = TestMockDomainReplace { pt_id: iopf };
    f.test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, &r)
        .0
        .unwrap();
    let trig = TestTriggerIopf {
        dev_id: dev,
        pasid: 1,
        grpid: 2,
        perm: IOMMU_PGFAULT_PERM_READ,
        addr: 0xdead_b000,
    };
    f.test_cmd(IOMMU_TEST_OP_TRIGGER_IOPF, 0, &trig).0.unwrap();
    let ef = iommufd_rs::platform::event_file_get::<EventFile>(fa.out_fault_fd as i32).unwrap();
    use iommufd_rs::hw_pagetable::eventq::{file_read, file_write};
    assert_eq!(file_read(&ef, &f.mem, DATA, 39), Err(ESPIPE));
    assert_eq!(file_read(&ef, &f.mem, DATA, 40), Ok(40));
    let rec = IommuHwptPgfault::read_from_bytes(&f.mem.peek(DATA, 40)).unwrap();
    assert_eq!(
        (rec.dev_id, rec.pasid, rec.grpid, rec.addr),
        (dev, 1, 2, 0xdead_b000)
    );
    assert_eq!(
        rec.flags,
        IOMMU_PGFAULT_FLAGS_LAST_PAGE | IOMMU_PGFAULT_FLAGS_PASID_VALID
    );
    assert_eq!(file_read(&ef, &f.mem, DATA, 40), Ok(0), "nothing more");
    let bad = IommuHwptPageResponse {
        cookie: rec.cookie + 1,
        code: 0,
    };
    f.mem.poke(DATA, bad.as_bytes());
    assert_eq!(file_write(&ef, &f.mem, DATA, 8), Err(EINVAL));
    let good = IommuHwptPageResponse {
        cookie: rec.cookie,
        code: IOMMUFD_PAGE_RESP_SUCCESS,
    };
    f.mem.poke(DATA, good.as_bytes());
    assert_eq!(file_write(&ef, &f.mem, DATA, 8), Ok(8));
    assert_eq!(
        file_write(&ef, &f.mem, DATA, 8),
        Err(EINVAL),
        "answered once"
    );
    // A failed replace keeps the device (and its pending requests) where
    // they were: a vIOMMU's nested HWPT needs a vDEVICE first.
    f.test_cmd(IOMMU_TEST_OP_TRIGGER_IOPF, 0, &trig).0.unwrap();
    let viommu = viommu_alloc(&f, dev, parent).unwrap();
    let vnested = hwpt_alloc(
        &f,
        dev,
        viommu,
        0,
        Some((IOMMU_HWPT_DATA_SELFTEST, data.as_bytes())),
    )
    .unwrap();
    let r = TestMockDomainReplace { pt_id: vnested };
    assert_eq!(
        f.test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, &r).0,
        Err(ENOENT)
    );
    assert_eq!(
        file_read(&ef, &f.mem, DATA, 40),
        Ok(40),
        "still pending after a failed replace"
    );
    // A pending request is answered for us when the device moves away.
    f.test_cmd(IOMMU_TEST_OP_TRIGGER_IOPF, 0, &trig).0.unwrap();
    let r = TestMockDomainReplace { pt_id: ioas };
    f.test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, &r)
        .0
        .unwrap();
    assert_eq!(file_read(&ef, &f.mem, DATA, 40), Ok(0));
}

fn group(dev_id: u32, pasid: u32) -> FaultGroup {
    FaultGroup {
        rec: IommuHwptPgfault {
            dev_id,
            pasid,
            ..Default::default()
        },
        dev_id,
        pasid,
    }
}

#[test]
fn fault_queue_read_write_protocol() {
    let mut q = FaultQueue::default();
    let mut out = Vec::new();
    let mut put = |off: usize, b: &[u8]| {
        out.resize(out.len().max(off + b.len()), 0);
        out[off..off + b.len()].copy_from_slice(b);
        Ok(())
    };
    assert_eq!(q.read(0, &mut put), Ok(0));
    q.push(group(1, 0)).unwrap();
    q.push(group(2, 7)).unwrap();
    q.push(group(1, 0)).unwrap();
    assert_eq!(q.read(80, &mut put), Ok(80), "whole records only");
    assert_eq!(q.pending_responses(), 2);
    let cookies: Vec<u32> = out
        .chunks(40)
        .map(|c| IommuHwptPgfault::read_from_bytes(c).unwrap().cookie)
        .collect();
    assert_ne!(cookies[0], cookies[1]);
    q.auto_respond(1, 0);
    assert_eq!(q.pending_responses(), 1, "device 1's read group answered");
    assert!(!q.readable(), "and its unread one dropped");
    let resp = |c: u32, code: u32| IommuHwptPageResponse { cookie: c, code };
    let r = resp(cookies[1], 7);
    assert_eq!(
        q.write(8, |_, b| {
            b.copy_from_slice(r.as_bytes());
            Ok(())
        }),
        Err(EINVAL),
        "bad code"
    );
    let r = resp(cookies[1], IOMMUFD_PAGE_RESP_INVALID);
    assert_eq!(
        q.write(8, |_, b| {
            b.copy_from_slice(r.as_bytes());
            Ok(())
        }),
        Ok(8)
    );
    assert_eq!(q.pending_responses(), 0);
    assert_eq!(q.write(12, |_, _| Ok(())), Err(ESPIPE));
}

/// What a reader saw: (flags, sequence, payload).
type Seen = (u32, u32, Vec<u8>);

fn drain(q: &mut VeventQueue, chunk: usize, seen: &mut Vec<Seen>) {
    loop {
        let mut buf = vec![0u8; chunk];
        let n = q
            .read(chunk, |off, b| {
                buf[off..off + b.len()].copy_from_slice(b);
                Ok(())
            })
            .unwrap_or(0);
        if n == 0 {
            return;
        }
        let mut at = 0;
        while at < n {
            let hdr = IommufdVeventHeader::read_from_bytes(&buf[at..at + 8]).unwrap();
            at += 8;
            let data = if hdr.flags & IOMMU_VEVENTQ_FLAG_LOST_EVENTS != 0 {
                Vec::new()
            } else {
                let d = buf[at..at + 4].to_vec();
                at += 4;
                d
            };
            seen.push((hdr.flags, hdr.sequence, data));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever interleaving of reports and reads: delivered events carry
    /// the payload reported with their sequence number, in order; never
    /// more than `depth` events wait; and every lost event is visible to
    /// the reader as a sequence gap or a LOST_EVENTS header.
    #[test]
    fn vevent_queue_loses_nothing_silently(
        depth in 1u32..5,
        ops in proptest::collection::vec(prop_oneof![3 => Just(None), 1 => (12usize..40).prop_map(Some)], 1..60),
    ) {
        let mut q = VeventQueue::new(depth);
        let mut seen = Vec::new();
        let mut reported = 0u32;
        let mut waiting = 0u32;
        for op in &ops {
            match op {
                None => {
                    q.report(&reported.to_ne_bytes());
                    reported += 1;
                    waiting = (waiting + 1).min(depth);
                }
                Some(chunk) => {
                    drain(&mut q, *chunk, &mut seen);
                    waiting = 0;
                }
            }
            prop_assert!(waiting <= depth);
        }
        drain(&mut q, 64, &mut seen);
        let mut expect = 0u32;
        let mut delivered = std::collections::BTreeSet::new();
        let mut detected = std::collections::BTreeSet::new();
        for (flags, seq, data) in &seen {
            prop_assert!(*seq >= expect, "sequences go forward");
            if flags & IOMMU_VEVENTQ_FLAG_LOST_EVENTS != 0 {
                detected.extend(expect..=*seq);
            } else {
                detected.extend(expect..*seq);
                prop_assert_eq!(data.as_slice(), &seq.to_ne_bytes()[..], "payload of its report");
                delivered.insert(*seq);
            }
            expect = seq + 1;
        }
        for s in 0..reported {
            prop_assert!(delivered.contains(&s) || detected.contains(&s), "event {} lost silently", s);
        }
        // Events that fit were not dropped: a reader keeping up loses none.
        if depth as usize >= ops.len() {
            prop_assert_eq!(delivered.len() as u32, reported);
        }
    }

    /// Dirty bits are per leaf: marking any byte of a leaf reports the
    /// whole leaf once, and clearing forgets it; unmapping the first page
    /// of a leaf removes the whole leaf (upstream's rule) and nothing else.
    #[test]
    fn mock_dirty_bits_follow_leaves(
        chunks in proptest::collection::vec((0u64..4, 1u64..6), 1..8),
        marks in proptest::collection::vec(0u64..(1 << 22), 1..10),
        huge in any::<bool>(),
    ) {
        let pgsize = if huge { MOCK_HUGE_PAGE_SIZE | PS } else { !(MPS - 1) };
        let min = 1u64 << pgsize.trailing_zeros();
        let mut pt = MockPageTable::with_pgsize(pgsize).unwrap();
        // Back-to-back mappings of random sizes (in min pages), each with
        // its own physical base; leaves never cross a map call.
        let mut iova = 1u64 << 24;
        let mut calls = Vec::new();
        for (align, n) in chunks {
            let len = (n * min) << align;
            let phys = (iova ^ (1 << 40)) + (align << 30);
            pt.map(iova, phys, len, 3).unwrap();
            calls.push((iova, len));
            iova += len;
        }
        let end = iova;
        let base = 1u64 << 24;
        let mut leaves = Vec::new();
        pt.read_and_clear_dirty(base, end - base, true, |i, l| { leaves.push((i, l)); Ok(()) }).unwrap();
        prop_assert!(leaves.is_empty(), "clean after map");
        let mut want = std::collections::BTreeSet::new();
        for m in &marks {
            let at = base + m % (end - base);
            prop_assert!(pt.set_dirty(at));
            want.insert(at);
        }
        let mut got = Vec::new();
        pt.read_and_clear_dirty(base, end - base, false, |i, l| { got.push((i, l)); Ok(()) }).unwrap();
        // Every mark is in exactly one reported leaf; every leaf has a mark;
        // leaves are aligned powers of two inside one map call.
        for at in &want {
            prop_assert_eq!(got.iter().filter(|(i, l)| i <= at && *at < i + l).count(), 1);
        }
        for (i, l) in &got {
            prop_assert!(l.is_power_of_two() && i % l == 0 && pgsize & l != 0);
            prop_assert!(want.iter().any(|a| i <= a && *a < i + l));
            prop_assert!(calls.iter().any(|(ci, cl)| ci <= i && i + l <= ci + cl));
        }
        let mut again = 0;
        pt.read_and_clear_dirty(base, end - base, false, |_, _| { again += 1; Ok(()) }).unwrap();
        prop_assert_eq!(again, 0, "cleared");
        // Unmapping the first min page of the first leaf removes that whole
        // leaf and reports its size; the rest of the call still translates.
        let (i0, l0) = (base, calls[0].1);
        let before = pt.iova_to_phys(i0 + l0 - 1);
        let gone = pt.unmap(i0, min).unwrap();
        prop_assert!(gone >= min && gone.is_power_of_two() && gone <= l0);
        prop_assert_eq!(pt.iova_to_phys(i0), None);
        prop_assert_eq!(pt.iova_to_phys(i0 + gone - 1), None);
        if l0 > gone {
            prop_assert_eq!(pt.iova_to_phys(i0 + l0 - 1), before);
            prop_assert!(pt.iova_to_phys(i0 + gone).is_some());
        }
        prop_assert_eq!(pt.mapped_bytes(), end - base - gone);
    }
}

/// `TRIGGER_IOPF` reports to the IOMMU core and returns 0 whatever became
/// of the fault; only the device lookup can fail.
#[test]
fn trigger_iopf_is_zero_without_a_taker() {
    let f = fd();
    let ioas = f.ioas();
    let (_, _, dev) = mock_domain_flags(&f, ioas, MOCK_FLAGS_DEVICE_PASID).unwrap();
    let trig = |dev_id: u32, pasid: u32| {
        let t = TestTriggerIopf {
            dev_id,
            pasid,
            grpid: 1,
            perm: IOMMU_PGFAULT_PERM_READ,
            addr: 0x1000,
        };
        f.test_cmd(IOMMU_TEST_OP_TRIGGER_IOPF, 0, &t).0
    };
    // The RID's paging HWPT has no fault queue; PASID 7 has no HWPT.
    assert_eq!(trig(dev, IOMMU_NO_PASID), Ok(0));
    assert_eq!(trig(dev, 7), Ok(0));
    assert_eq!(trig(999, 0), Err(ENOENT));
    assert_eq!(trig(ioas, 0), Err(ENOENT));
}

/// Fault cookies come from an `XA_FLAGS_ALLOC1` xarray: from 1, the lowest
/// free one first.
#[test]
fn fault_cookies_start_at_one_and_reuse_the_lowest_free() {
    let mut q = FaultQueue::default();
    let mut out = Vec::new();
    let mut read = |q: &mut FaultQueue, n: usize| {
        out.clear();
        let got = q
            .read(40 * n, |off, b| {
                out.resize(out.len().max(off + b.len()), 0);
                out[off..off + b.len()].copy_from_slice(b);
                Ok(())
            })
            .unwrap();
        assert_eq!(got, 40 * n);
        out.chunks(40)
            .map(|c| IommuHwptPgfault::read_from_bytes(c).unwrap().cookie)
            .collect::<Vec<u32>>()
    };
    for _ in 0..3 {
        q.push(group(1, 0)).unwrap();
    }
    assert_eq!(read(&mut q, 3), vec![1, 2, 3]);
    let r = IommuHwptPageResponse {
        cookie: 2,
        code: IOMMUFD_PAGE_RESP_SUCCESS,
    };
    assert_eq!(
        q.write(8, |_, b| {
            b.copy_from_slice(r.as_bytes());
            Ok(())
        }),
        Ok(8)
    );
    q.push(group(1, 0)).unwrap();
    q.push(group(1, 0)).unwrap();
    assert_eq!(read(&mut q, 2), vec![2, 4]);
}

/// A PASID attach to an IOAS makes an automatic domain and attaches to it
/// before the domain mirrors the IOAS: the PASID check (automatic domains
/// are not PASID-capable) fails first, even where the aperture would not
/// fit the IOAS.
#[test]
fn pasid_attach_to_an_ioas_fails_compat_before_the_aperture() {
    let f = fd();
    let ioas = f.ioas();
    let (stdev, _, _) = mock_domain_flags(&f, ioas, MOCK_FLAGS_DEVICE_PASID).unwrap();
    let outside = f.ioas();
    f.map_fixed(outside, BUF, PS, 0x10000).unwrap();
    let p = TestPasidAttach {
        pasid: 100,
        pt_id: outside,
    };
    assert_eq!(
        f.test_cmd(IOMMU_TEST_OP_PASID_ATTACH, stdev, &p).0,
        Err(EINVAL)
    );
    assert!(f.hwpts_of(outside).is_empty());
    // The RID's replace makes the domain first: EADDRINUSE, as upstream.
    let r = TestMockDomainReplace { pt_id: outside };
    assert_eq!(
        f.test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, &r).0,
        Err(EADDRINUSE)
    );
}

/// The PASID test ops look the HWPT up before anything else: an unknown ID
/// is ENOENT, another kind of object EINVAL.
#[test]
fn pasid_ops_look_up_the_id_first() {
    let f = fd();
    let ioas = f.ioas();
    let (stdev, _, _) = mock_domain_flags(&f, ioas, MOCK_FLAGS_DEVICE_PASID).unwrap();
    let replace = TestPasidAttach {
        pasid: 200,
        pt_id: 999,
    };
    assert_eq!(
        f.test_cmd(IOMMU_TEST_OP_PASID_REPLACE, stdev, &replace).0,
        Err(ENOENT)
    );
    let check = |hwpt_id: u32| {
        let p = TestPasidCheck {
            pasid: 200,
            hwpt_id,
        };
        f.test_cmd(IOMMU_TEST_OP_PASID_CHECK_HWPT, stdev, &p).0
    };
    assert_eq!(check(999), Err(ENOENT));
    assert_eq!(check(ioas), Err(EINVAL));
    assert_eq!(check(0), Ok(0));
}

/// The mock driver keeps the device's virtual ID with 0 meaning "none":
/// a vDEVICE of virtual ID 0 gets no vEVENTs (ENOENT).
#[test]
fn trigger_vevent_treats_virtual_id_zero_as_none() {
    use iommufd_rs::hw_pagetable::eventq::file_read;
    let f = fd();
    let ioas = f.ioas();
    let (stdev, _, dev) = f.mock_domain(ioas).unwrap();
    let parent = hwpt_alloc(&f, dev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, None).unwrap();
    let viommu = viommu_alloc(&f, dev, parent).unwrap();
    let data = selftest_data(IOMMU_TEST_IOTLB_DEFAULT, 0);
    let nested = hwpt_alloc(
        &f,
        dev,
        viommu,
        0,
        Some((IOMMU_HWPT_DATA_SELFTEST, data.as_bytes())),
    )
    .unwrap();
    vdevice_alloc(&f, viommu, dev, 0).unwrap();
    let r = TestMockDomainReplace { pt_id: nested };
    f.test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, &r)
        .0
        .unwrap();
    let mut q = with_size(IommuVeventqAlloc {
        viommu_id: viommu,
        r#type: IOMMU_VEVENTQ_TYPE_SELFTEST,
        veventq_depth: 4,
        ..Default::default()
    });
    f.call(IOMMU_VEVENTQ_ALLOC, &mut q).unwrap();
    let t = TestTriggerVevent { dev_id: dev };
    assert_eq!(
        f.test_cmd(IOMMU_TEST_OP_TRIGGER_VEVENT, 0, &t).0,
        Err(ENOENT)
    );
    let ef = iommufd_rs::platform::event_file_get::<EventFile>(q.out_veventq_fd as i32).unwrap();
    assert_eq!(file_read(&ef, &f.mem, DATA, 64), Ok(0), "no event");
}

/// vIOMMU `mmap` offsets are allocated like upstream's `mtree_alloc_range`
/// from `PAGE_SIZE`: the lowest free range fits, and a destroyed vIOMMU's
/// range is reused.
#[test]
fn viommu_mmap_offsets_are_lowest_free_and_reused() {
    let f = fd();
    let ioas = f.ioas();
    let (_, _, dev) = f.mock_domain(ioas).unwrap();
    let parent = hwpt_alloc(&f, dev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, None).unwrap();
    let alloc = || {
        let d = IommuViommuSelftest {
            in_data: 7,
            ..Default::default()
        };
        f.mem.poke(DATA, d.as_bytes());
        let mut c = with_size(IommuViommuAlloc {
            r#type: IOMMU_VIOMMU_TYPE_SELFTEST,
            dev_id: dev,
            hwpt_id: parent,
            data_len: core::mem::size_of::<IommuViommuSelftest>() as u32,
            data_uptr: DATA,
            ..Default::default()
        });
        f.call(IOMMU_VIOMMU_ALLOC, &mut c).unwrap();
        let out = IommuViommuSelftest::read_from_bytes(&f.mem.peek(DATA, 24)).unwrap();
        assert_eq!(out.out_mmap_length, 2 * PS);
        (c.out_viommu_id, out.out_mmap_offset)
    };
    let (a, off_a) = alloc();
    let (b, off_b) = alloc();
    assert_eq!((off_a, off_b), (PS, 3 * PS));
    f.destroy(a).unwrap();
    let (_, off_c) = alloc();
    assert_eq!(off_c, PS, "the first range again");
    let (_, off_d) = alloc();
    assert_eq!(off_d, 5 * PS);
    f.destroy(b).unwrap();
    assert_eq!(alloc().1, 3 * PS);
}

/// `IOMMU_HWPT_ALLOC` makes the domain and has the IOAS mirror into it
/// before it looks up `fault_id`: a domain that cannot take the IOAS fails
/// first (EADDRINUSE), an unknown fault only then (ENOENT).
#[test]
fn hwpt_alloc_looks_up_the_fault_after_the_domain() {
    let f = fd();
    let ioas = f.ioas();
    let (_, _, dev) = f.mock_domain(ioas).unwrap();
    let outside = f.ioas();
    f.map_fixed(outside, BUF, PS, 0x10000).unwrap();
    let flags = IOMMU_HWPT_FAULT_ID_VALID;
    let alloc = |pt: u32, fault_id: u32| {
        let mut c = with_size(IommuHwptAlloc {
            flags,
            dev_id: dev,
            pt_id: pt,
            fault_id,
            ..Default::default()
        });
        f.call(IOMMU_HWPT_ALLOC, &mut c).map(|_| c.out_hwpt_id)
    };
    assert_eq!(alloc(outside, 999), Err(EADDRINUSE));
    assert_eq!(alloc(ioas, 999), Err(ENOENT));
    assert_eq!(alloc(ioas, outside), Err(ENOENT), "not a FAULT");
    assert_eq!(f.hwpts_of(ioas).len(), 1, "only the automatic one");
    let mut fa = with_size(IommuFaultAlloc::default());
    f.call(IOMMU_FAULT_QUEUE_ALLOC, &mut fa).unwrap();
    assert_eq!(alloc(outside, fa.out_fault_id), Err(EADDRINUSE));
    let h = alloc(ioas, fa.out_fault_id).unwrap();
    assert_eq!(f.destroy(fa.out_fault_id), Err(EBUSY));
    f.destroy(h).unwrap();
}

fn hw_queue_alloc(f: &Fd, viommu: u32, index: u32, iova: u64, length: u64) -> Result<u32> {
    let mut c = with_size(IommuHwQueueAlloc {
        viommu_id: viommu,
        r#type: IOMMU_HW_QUEUE_TYPE_SELFTEST,
        index,
        nesting_parent_iova: iova,
        length,
        ..Default::default()
    });
    f.call(IOMMU_HW_QUEUE_ALLOC, &mut c)?;
    Ok(c.out_hw_queue_id)
}

/// A HW queue pins through an internal access object, as upstream's
/// `iommufd_access_create_internal`: it takes the ID after the queue's
/// (IOMMU_DESTROY of it is EBUSY), raises the IOAS alignment to PAGE_SIZE
/// while it exists, and cannot join an IOAS holding a 2 KiB-aligned area
/// (EADDRINUSE). Destroying the queue releases both IDs.
#[test]
fn hw_queue_pins_through_an_internal_access() {
    let f = fd();
    let ioas = f.ioas();
    let (_, _, dev) = f.mock_domain(ioas).unwrap();
    let parent = hwpt_alloc(&f, dev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, None).unwrap();
    let viommu = viommu_alloc(&f, dev, parent).unwrap();
    f.map_fixed(ioas, BUF, 2 * PS, A0).unwrap();
    assert_eq!(f.ranges(ioas).1, MPS);
    let q = hw_queue_alloc(&f, viommu, 0, A0, PS).unwrap();
    let access = q + 1;
    assert_eq!(f.destroy(access), Err(EBUSY), "the queue holds its access");
    let next = f.ioas();
    assert_eq!(next, q + 2, "the access took an ID");
    f.destroy(next).unwrap();
    assert_eq!(f.ranges(ioas).1, PS);
    assert_eq!(
        f.map_fixed(ioas, BUF + 0x800, 0x800, A0 + 0x10000),
        Err(EINVAL)
    );
    assert_eq!(f.unmap(ioas, A0, 2 * PS), Err(EBUSY));
    f.destroy(q).unwrap();
    assert_eq!(f.ranges(ioas).1, MPS);
    assert_eq!(f.ioas(), q, "both IDs are free again");
    assert_eq!(f.ioas(), access);
    // An area only 2 KiB-aligned keeps the access out.
    f.map_fixed(ioas, BUF + 0x800, 0x800, A0 + 0x10000).unwrap();
    assert_eq!(hw_queue_alloc(&f, viommu, 0, A0, PS), Err(EADDRINUSE));
    let next = f.ioas();
    assert_eq!(next, access + 1, "no ID left behind");
    assert_eq!(f.ranges(ioas).1, MPS);
    f.unmap(ioas, A0 + 0x10000, 0x800).unwrap();
    hw_queue_alloc(&f, viommu, 0, A0, PS).unwrap();
}
