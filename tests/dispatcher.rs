//! The ioctl dispatcher and object table driven in-process, exactly as the
//! module drives them, through fake user memory.

use iommufd_rs::errno::*;
use iommufd_rs::object::ObjKind;
use iommufd_rs::platform::FakeUserMem;
use iommufd_rs::ucmd::{ioctl, Ictx};
use iommufd_uapi::*;
use zerocopy::IntoBytes;

const ARG: u64 = 0x10_000;

struct Fd {
    ictx: std::sync::Arc<Ictx>,
    mem: FakeUserMem,
}

impl Fd {
    fn new() -> Self {
        let mem = FakeUserMem::default();
        mem.map(ARG, 4096);
        Fd {
            ictx: std::sync::Arc::new(Ictx::new().unwrap()),
            mem,
        }
    }

    /// Issues `cmd` with `bytes` placed at ARG; returns the result and the
    /// bytes at ARG afterwards.
    fn raw(&self, cmd: u32, bytes: &[u8]) -> (Result<isize>, Vec<u8>) {
        self.mem.poke(ARG, &vec![0; 4096]);
        self.mem.poke(ARG, bytes);
        let r = ioctl(&self.ictx, &self.mem, cmd, ARG);
        (r, self.mem.peek(ARG, bytes.len()))
    }

    fn ioas_alloc(&self) -> Result<u32> {
        let cmd = IommuIoasAlloc {
            size: 12,
            ..Default::default()
        };
        let (r, out) = self.raw(IOMMU_IOAS_ALLOC, cmd.as_bytes());
        r.map(|_| u32::from_ne_bytes(out[8..12].try_into().unwrap()))
    }

    fn destroy(&self, id: u32) -> Result {
        let cmd = IommuDestroy { size: 8, id };
        self.raw(IOMMU_DESTROY, cmd.as_bytes()).0.map(drop)
    }
}

#[test]
fn ids_start_at_one_and_reuse_the_lowest_free() {
    let fd = Fd::new();
    assert_eq!(fd.ioas_alloc(), Ok(1));
    assert_eq!(fd.ioas_alloc(), Ok(2));
    assert_eq!(fd.ioas_alloc(), Ok(3));
    assert_eq!(fd.destroy(2), Ok(()));
    assert_eq!(fd.ioas_alloc(), Ok(2));
    assert_eq!(fd.ioas_alloc(), Ok(4));
}

#[test]
fn destroy_errors() {
    let fd = Fd::new();
    assert_eq!(fd.destroy(0), Err(ENOENT));
    assert_eq!(fd.destroy(1), Err(ENOENT));
    let id = fd.ioas_alloc().unwrap();
    assert_eq!(fd.destroy(id), Ok(()));
    assert_eq!(fd.destroy(id), Err(ENOENT));
}

#[test]
fn destroy_of_a_referenced_object_is_ebusy() {
    let fd = Fd::new();
    let id = fd.ioas_alloc().unwrap();
    let r = fd.ictx.objects().get(id, Some(ObjKind::Ioas)).unwrap();
    assert_eq!(r.object().users(), 2);
    assert_eq!(r.object().inflight(), 1);
    assert_eq!(fd.destroy(id), Err(EBUSY));
    drop(r);
    assert_eq!(fd.destroy(id), Ok(()));
}

#[test]
fn lookups_by_kind() {
    let fd = Fd::new();
    let id = fd.ioas_alloc().unwrap();
    assert!(fd.ictx.objects().get(id, None).is_ok());
    assert!(fd.ictx.objects().get(id, Some(ObjKind::Ioas)).is_ok());
    assert_eq!(fd.ictx.objects().get(id + 1, None).err(), Some(ENOENT));
    assert_eq!(fd.ictx.objects().get(0, None).err(), Some(ENOENT));
}

#[test]
fn size_below_minimum_is_einval() {
    let fd = Fd::new();
    for size in [0u32, 4, 8, 11] {
        let cmd = IommuIoasAlloc {
            size,
            ..Default::default()
        };
        assert_eq!(
            fd.raw(IOMMU_IOAS_ALLOC, cmd.as_bytes()).0,
            Err(EINVAL),
            "size {size}"
        );
    }
    let cmd = IommuDestroy { size: 7, id: 1 };
    assert_eq!(fd.raw(IOMMU_DESTROY, cmd.as_bytes()).0, Err(EINVAL));
}

#[test]
fn longer_struct_needs_a_zero_tail() {
    let fd = Fd::new();
    let mut bytes = IommuIoasAlloc {
        size: 64,
        ..Default::default()
    }
    .as_bytes()
    .to_vec();
    bytes.resize(64, 0);
    let (r, out) = fd.raw(IOMMU_IOAS_ALLOC, &bytes);
    assert_eq!(r, Ok(0));
    assert_eq!(u32::from_ne_bytes(out[8..12].try_into().unwrap()), 1);
    // The reply is cut at the kernel's struct size: the tail is untouched.
    assert!(out[12..].iter().all(|&b| b == 0));
    for at in [12usize, 40, 63] {
        let mut b = bytes.clone();
        b[at] = 1;
        assert_eq!(
            fd.raw(IOMMU_IOAS_ALLOC, &b).0,
            Err(E2BIG),
            "non-zero byte at {at}"
        );
    }
}

#[test]
fn reply_is_truncated_to_the_user_size() {
    let fd = Fd::new();
    // IOMMU_RS_INFO's minimum is its whole struct, so use IOAS_ALLOC: a user
    // struct of exactly 12 bytes gets exactly 12 bytes back.
    let mut bytes = IommuIoasAlloc {
        size: 12,
        ..Default::default()
    }
    .as_bytes()
    .to_vec();
    bytes.extend_from_slice(&[0xaa; 4]);
    let (r, out) = fd.raw(IOMMU_IOAS_ALLOC, &bytes);
    assert_eq!(r, Ok(0));
    assert_eq!(&out[12..], &[0xaa; 4]);
}

#[test]
fn unknown_flags_are_eopnotsupp() {
    let fd = Fd::new();
    for flags in [1u32, 0x8000_0000] {
        let cmd = IommuIoasAlloc {
            size: 12,
            flags,
            ..Default::default()
        };
        assert_eq!(fd.raw(IOMMU_IOAS_ALLOC, cmd.as_bytes()).0, Err(EOPNOTSUPP));
    }
    let info = IommuRsInfo {
        size: 32,
        __reserved: 1,
        ..Default::default()
    };
    assert_eq!(fd.raw(IOMMU_RS_INFO, info.as_bytes()).0, Err(EOPNOTSUPP));
    // Nothing was created by the failed calls.
    assert_eq!(fd.ioas_alloc(), Ok(1));
}

#[test]
fn unknown_ioctls_are_enotty() {
    let fd = Fd::new();
    let zeros = [0u8; 64];
    let iowr = (3 << 30) | (12 << 16) | IOMMU_IOAS_ALLOC; // _IOWR(';', 0x81, 12 bytes)
    for cmd in [
        iommufd_io(0x7f),
        iommufd_io(0xbf),
        iommufd_io(0xff),
        iowr,
        0x1234,
    ] {
        assert_eq!(fd.raw(cmd, &zeros).0, Err(ENOTTY), "cmd {cmd:#x}");
    }
}

/// Upstream reads `size` before it compares the whole number for every
/// `nr` of its table (0x80..=0xa0 with the selftest command), whatever the
/// type and size bits; other numbers go to the VFIO compatibility switch,
/// which matches whole numbers and reads nothing for the ones it lacks.
#[test]
fn malformed_numbers_in_the_command_range_read_size_first() {
    let fd = Fd::new();
    let iowr = |nr: u32| (3 << 30) | (12 << 16) | iommufd_io(nr);
    for cmd in [
        iowr(0x81),
        iowr(0x80),
        iowr(0xa0),
        iommufd_io(0x96),
        iommufd_io(0x9f),
        (u32::from(b'x') << 8) | 0x85,
    ] {
        for arg in [0, 1, u64::MAX - 1] {
            assert_eq!(ioctl(&fd.ictx, &fd.mem, cmd, arg), Err(EFAULT), "{cmd:#x}");
        }
        assert_eq!(ioctl(&fd.ictx, &fd.mem, cmd, ARG), Err(ENOTTY), "{cmd:#x}");
    }
    // Outside the table: ENOTTY without a read.
    let vfio_iowr = (3 << 30) | (16 << 16) | VFIO_IOMMU_MAP_DMA;
    for cmd in [
        iommufd_io(0x7f),
        iommufd_io(0xa1),
        iommufd_io(0xbf),
        iommufd_io(0xc1),
        vfio_iowr,
        0x1234,
    ] {
        assert_eq!(ioctl(&fd.ictx, &fd.mem, cmd, 0), Err(ENOTTY), "{cmd:#x}");
    }
}

#[test]
fn veventq_alloc_minimum_is_the_end_of_out_veventq_fd() {
    let fd = Fd::new();
    let cmd = IommuVeventqAlloc {
        size: 28,
        viommu_id: 99,
        r#type: 0xbeef,
        veventq_depth: 1,
        ..Default::default()
    };
    // Past the size check: the vIOMMU lookup fails.
    assert_eq!(
        fd.raw(IOMMU_VEVENTQ_ALLOC, &cmd.as_bytes()[..28]).0,
        Err(ENOENT)
    );
    let cmd = IommuVeventqAlloc { size: 27, ..cmd };
    assert_eq!(
        fd.raw(IOMMU_VEVENTQ_ALLOC, &cmd.as_bytes()[..28]).0,
        Err(EINVAL)
    );
}

/// `check_zeroed_user()` reads aligned words in order: a non-zero word
/// before an unmapped page is `E2BIG`, the page before any non-zero byte is
/// `EFAULT`, and the bytes of the first word below the tail do not count.
#[test]
fn zero_tail_is_checked_word_by_word() {
    let fd = Fd::new();
    let head = IommuIoasAlloc {
        size: 8192,
        ..Default::default()
    };
    let mut bytes = vec![0u8; 4096];
    bytes[..12].copy_from_slice(head.as_bytes());
    for at in [4095usize, 4088, 4033, 12] {
        let mut b = bytes.clone();
        b[at] = 1;
        assert_eq!(fd.raw(IOMMU_IOAS_ALLOC, &b).0, Err(E2BIG), "byte {at}");
    }
    assert_eq!(fd.raw(IOMMU_IOAS_ALLOC, &bytes).0, Err(EFAULT));
    // out_ioas_id shares the tail's first word: not checked.
    let mut b = bytes.clone();
    b[..4].copy_from_slice(&64u32.to_ne_bytes());
    b[8..12].copy_from_slice(&[0xff; 4]);
    assert_eq!(fd.raw(IOMMU_IOAS_ALLOC, &b[..64]).0, Ok(0));
}

#[test]
fn bad_pointers_are_efault() {
    let fd = Fd::new();
    assert_eq!(ioctl(&fd.ictx, &fd.mem, IOMMU_IOAS_ALLOC, 0x1), Err(EFAULT));
    assert_eq!(
        ioctl(&fd.ictx, &fd.mem, IOMMU_IOAS_ALLOC, u64::MAX - 1),
        Err(EFAULT)
    );
    // A size that runs past the mapping: the tail check faults.
    let cmd = IommuIoasAlloc {
        size: 8192,
        ..Default::default()
    };
    assert_eq!(fd.raw(IOMMU_IOAS_ALLOC, cmd.as_bytes()).0, Err(EFAULT));
}

#[test]
fn failed_reply_aborts_the_new_object() {
    let fd = Fd::new();
    let ro = 0x20_000;
    fd.mem.map_with(ro, 64, false);
    fd.mem.poke(
        ro,
        IommuIoasAlloc {
            size: 12,
            ..Default::default()
        }
        .as_bytes(),
    );
    assert_eq!(ioctl(&fd.ictx, &fd.mem, IOMMU_IOAS_ALLOC, ro), Err(EFAULT));
    // The reserved ID was released and no object is visible under it.
    assert_eq!(fd.ictx.objects().get(1, None).err(), Some(ENOENT));
    assert_eq!(fd.ioas_alloc(), Ok(1));
}

#[test]
fn rs_info_reports_the_served_commands() {
    let fd = Fd::new();
    let info = IommuRsInfo {
        size: 32,
        ..Default::default()
    };
    let (r, out) = fd.raw(IOMMU_RS_INFO, info.as_bytes());
    assert_eq!(r, Ok(0));
    let words: Vec<u64> = out[16..32]
        .chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        u32::from_ne_bytes(out[8..12].try_into().unwrap()),
        IOMMU_RS_INFO_ABI_VERSION
    );
    let served = [
        0x80u32, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d,
        0x8e, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0xa0,
    ];
    let expect = served.iter().fold(0u64, |a, nr| a | 1 << (nr - 0x80));
    assert_eq!(words[0], expect, "the upstream commands of the table");
    assert_eq!(words[1], 0b1, "RS_INFO");
    let short = IommuRsInfo {
        size: 24,
        ..Default::default()
    };
    assert_eq!(fd.raw(IOMMU_RS_INFO, short.as_bytes()).0, Err(EINVAL));
}

#[test]
fn objects_are_per_file() {
    let a = Fd::new();
    let b = Fd::new();
    assert_eq!(a.ioas_alloc(), Ok(1));
    assert_eq!(b.destroy(1), Err(ENOENT));
    assert_eq!(b.ioas_alloc(), Ok(1));
}

#[test]
fn concurrent_alloc_and_destroy_hand_out_unique_ids() {
    let fd = std::sync::Arc::new(Ictx::new().unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let fd = fd.clone();
            std::thread::spawn(move || {
                let mem = FakeUserMem::default();
                mem.map(ARG, 64);
                let mut mine = Vec::new();
                for i in 0..500 {
                    mem.poke(
                        ARG,
                        IommuIoasAlloc {
                            size: 12,
                            ..Default::default()
                        }
                        .as_bytes(),
                    );
                    ioctl(&fd, &mem, IOMMU_IOAS_ALLOC, ARG).unwrap();
                    let id = u32::from_ne_bytes(mem.peek(ARG + 8, 4).try_into().unwrap());
                    mine.push(id);
                    if (i + t) % 3 == 0 {
                        let id = mine.swap_remove(0);
                        fd.objects().remove(id).map(drop).unwrap();
                    }
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<u32> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "an ID was handed out twice");
    for id in all {
        assert_eq!(fd.objects().remove(id).map(drop), Ok(()));
    }
}
