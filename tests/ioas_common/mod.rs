//! Shared helpers of `tests/ioas_model.rs` and `tests/ioas_ioctls.rs`: a
//! `/dev/iommu` file driven through `iommufd_rs::ucmd::ioctl` with fake user
//! memory, plus a few views of the internal state for checks.
#![allow(dead_code)]

use iommufd_rs::errno::*;
use iommufd_rs::object::ObjKind;
use iommufd_rs::platform::FakeUserMem;
use iommufd_rs::ucmd::{ioctl, Ictx};
use iommufd_uapi::*;
use std::sync::Arc;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Where command structs are placed in fake user memory.
pub const ARG: u64 = 0x10_000;
/// Where arrays (IOVA ranges) are placed.
pub const ARR: u64 = 0x11_000;
/// Bytes mapped at `ARG` (covers `ARR` too).
pub const ARG_LEN: usize = 0x2000;
/// A user buffer address for maps (never accessed through `FakeUserMem`:
/// pinning only computes fake frame numbers from it).
pub const BUF: u64 = 0x4000_0000;
/// First IOVA of the mock domain's aperture.
pub const A0: u64 = MOCK_APERTURE_START;
/// `PAGE_SIZE`.
pub const PS: u64 = 4096;
/// The mock domain's page size.
pub const MPS: u64 = MOCK_PAGE_SIZE;
/// `IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE`.
pub const RW: u32 = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;

/// One open `/dev/iommu` and the fake memory of its process.
pub struct Fd {
    pub ictx: Arc<Ictx>,
    pub mem: FakeUserMem,
}

/// Sets `size` (the first `u32` of every iommufd struct) to the struct size.
pub fn with_size<T: IntoBytes + FromBytes>(mut v: T) -> T {
    let n = core::mem::size_of::<T>() as u32;
    v.as_mut_bytes()[..4].copy_from_slice(&n.to_ne_bytes());
    v
}

impl Fd {
    /// A fresh file; also resets this thread's fake pin state.
    pub fn new() -> Self {
        iommufd_rs::platform::fake::reset();
        let mem = FakeUserMem::default();
        mem.map(ARG, ARG_LEN);
        Fd {
            ictx: Arc::new(Ictx::new().unwrap()),
            mem,
        }
    }

    /// Issues `cmd` with `v` at `ARG` and reads `v` back (also on error).
    pub fn call<T: IntoBytes + FromBytes + Immutable + KnownLayout>(
        &self,
        cmd: u32,
        v: &mut T,
    ) -> Result<isize> {
        self.mem.poke(ARG, v.as_bytes());
        let r = ioctl(&self.ictx, &self.mem, cmd, ARG);
        let out = self.mem.peek(ARG, core::mem::size_of::<T>());
        *v = T::read_from_bytes(&out).unwrap();
        r
    }

    pub fn ioas_alloc(&self) -> Result<u32> {
        let mut c = with_size(IommuIoasAlloc::default());
        self.call(IOMMU_IOAS_ALLOC, &mut c)?;
        Ok(c.out_ioas_id)
    }

    pub fn ioas(&self) -> u32 {
        self.ioas_alloc().unwrap()
    }

    pub fn map(&self, ioas: u32, flags: u32, uva: u64, len: u64, iova: u64) -> Result<u64> {
        let mut c = with_size(IommuIoasMap {
            flags,
            ioas_id: ioas,
            user_va: uva,
            length: len,
            iova,
            ..Default::default()
        });
        self.call(IOMMU_IOAS_MAP, &mut c)?;
        Ok(c.iova)
    }

    pub fn map_fixed(&self, ioas: u32, uva: u64, len: u64, iova: u64) -> Result<u64> {
        self.map(ioas, RW | IOMMU_IOAS_MAP_FIXED_IOVA, uva, len, iova)
    }

    pub fn map_auto(&self, ioas: u32, uva: u64, len: u64) -> Result<u64> {
        self.map(ioas, RW, uva, len, 0)
    }

    /// `IOMMU_IOAS_UNMAP`; the bytes unmapped.
    pub fn unmap(&self, ioas: u32, iova: u64, len: u64) -> Result<u64> {
        let mut c = with_size(IommuIoasUnmap {
            ioas_id: ioas,
            iova,
            length: len,
            ..Default::default()
        });
        self.call(IOMMU_IOAS_UNMAP, &mut c)?;
        Ok(c.length)
    }

    pub fn unmap_all(&self, ioas: u32) -> Result<u64> {
        self.unmap(ioas, 0, u64::MAX)
    }

    /// `IOMMU_IOAS_COPY`; the destination IOVA.
    pub fn copy(
        &self,
        flags: u32,
        dst: u32,
        src: u32,
        src_iova: u64,
        len: u64,
        dst_iova: u64,
    ) -> Result<u64> {
        let mut c = with_size(IommuIoasCopy {
            flags,
            dst_ioas_id: dst,
            src_ioas_id: src,
            length: len,
            dst_iova,
            src_iova,
            ..Default::default()
        });
        self.call(IOMMU_IOAS_COPY, &mut c)?;
        Ok(c.dst_iova)
    }

    /// `IOMMU_IOAS_IOVA_RANGES` with room for `room` entries: the result,
    /// the count and alignment written back, and the entries written.
    pub fn iova_ranges(&self, ioas: u32, room: u32) -> (Result<isize>, u32, u64, Vec<(u64, u64)>) {
        let elem = core::mem::size_of::<IommuIovaRange>();
        self.mem.poke(ARR, &vec![0xa5; room as usize * elem]);
        let mut c = with_size(IommuIoasIovaRanges {
            ioas_id: ioas,
            num_iovas: room,
            allowed_iovas: ARR,
            ..Default::default()
        });
        let r = self.call(IOMMU_IOAS_IOVA_RANGES, &mut c);
        let n = c.num_iovas.min(room) as usize;
        let bytes = self.mem.peek(ARR, n * elem);
        let ranges = bytes
            .chunks(elem)
            .map(|b| {
                let r = IommuIovaRange::read_from_bytes(b).unwrap();
                (r.start, r.last)
            })
            .collect();
        (r, c.num_iovas, c.out_iova_alignment, ranges)
    }

    /// The usable ranges (room for 64) and the alignment.
    pub fn ranges(&self, ioas: u32) -> (Vec<(u64, u64)>, u64) {
        let (r, n, align, v) = self.iova_ranges(ioas, 64);
        assert_eq!(r, Ok(0));
        assert_eq!(n as usize, v.len());
        (v, align)
    }

    pub fn allow(&self, ioas: u32, ranges: &[(u64, u64)]) -> Result {
        let arr: Vec<u8> = ranges
            .iter()
            .flat_map(|&(start, last)| IommuIovaRange { start, last }.as_bytes().to_vec())
            .collect();
        self.mem.poke(ARR, &arr);
        let mut c = with_size(IommuIoasAllowIovas {
            ioas_id: ioas,
            num_iovas: ranges.len() as u32,
            allowed_iovas: ARR,
            ..Default::default()
        });
        self.call(IOMMU_IOAS_ALLOW_IOVAS, &mut c).map(drop)
    }

    /// `IOMMU_OPTION`; `val64` as written back.
    pub fn option(&self, option_id: u32, op: u16, object_id: u32, val64: u64) -> Result<u64> {
        let mut c = with_size(IommuOption {
            option_id,
            op,
            object_id,
            val64,
            ..Default::default()
        });
        self.call(IOMMU_OPTION, &mut c)?;
        Ok(c.val64)
    }

    pub fn huge_pages(&self, ioas: u32) -> Result<u64> {
        self.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, ioas, 0)
    }

    pub fn set_huge_pages(&self, ioas: u32, v: u64) -> Result {
        self.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas, v)
            .map(drop)
    }

    /// `IOMMU_TEST_CMD` with `payload`; the result and the command read back.
    pub fn test_cmd<P: IntoBytes + Immutable>(
        &self,
        op: u32,
        id: u32,
        payload: &P,
    ) -> (Result<isize>, IommuTestCmd) {
        let mut c = with_size(IommuTestCmd {
            op,
            id,
            ..Default::default()
        });
        c.set_payload(payload);
        let r = self.call(IOMMU_TEST_CMD, &mut c);
        (r, c)
    }

    /// `MOCK_DOMAIN` on `pt`: (stdev, hwpt, idev).
    pub fn mock_domain(&self, pt: u32) -> Result<(u32, u32, u32)> {
        let (r, c) = self.test_cmd(IOMMU_TEST_OP_MOCK_DOMAIN, pt, &TestMockDomain::default());
        r?;
        let p: TestMockDomain = c.payload();
        Ok((p.out_stdev_id, p.out_hwpt_id, p.out_idev_id))
    }

    pub fn check_map(&self, hwpt: u32, iova: u64, length: u64, uptr: u64) -> Result {
        let p = TestCheckMap { iova, length, uptr };
        self.test_cmd(IOMMU_TEST_OP_MD_CHECK_MAP, hwpt, &p)
            .0
            .map(drop)
    }

    pub fn check_refs(&self, uptr: u64, length: u64, refs: u32) -> Result {
        let p = TestCheckRefs {
            length,
            uptr,
            refs,
            __pad: 0,
        };
        self.test_cmd(IOMMU_TEST_OP_MD_CHECK_REFS, 0, &p)
            .0
            .map(drop)
    }

    pub fn add_reserved(&self, ioas: u32, start: u64, length: u64) -> Result {
        let p = TestAddReserved { start, length };
        self.test_cmd(IOMMU_TEST_OP_ADD_RESERVED, ioas, &p)
            .0
            .map(drop)
    }

    /// `IOMMU_HWPT_ALLOC` of a paging HWPT for `dev` over `pt`.
    pub fn hwpt_alloc(&self, dev: u32, pt: u32) -> Result<u32> {
        let mut c = with_size(IommuHwptAlloc {
            dev_id: dev,
            pt_id: pt,
            ..Default::default()
        });
        self.call(IOMMU_HWPT_ALLOC, &mut c)?;
        Ok(c.out_hwpt_id)
    }

    pub fn destroy(&self, id: u32) -> Result {
        let mut c = IommuDestroy { size: 8, id };
        self.call(IOMMU_DESTROY, &mut c).map(drop)
    }

    /// `IOMMU_VFIO_IOAS`; the ID written back.
    pub fn vfio_ioas(&self, op: u16, id: u32) -> Result<u32> {
        let mut c = with_size(IommuVfioIoas {
            ioas_id: id,
            op,
            ..Default::default()
        });
        self.call(IOMMU_VFIO_IOAS, &mut c)?;
        Ok(c.ioas_id)
    }

    /// A VFIO container ioctl with a plain integer argument.
    pub fn vfio(&self, cmd: u32, arg: u64) -> Result<isize> {
        ioctl(&self.ictx, &self.mem, cmd, arg)
    }

    pub fn vfio_map(&self, flags: u32, vaddr: u64, iova: u64, size: u64) -> Result {
        let mut c = VfioIommuType1DmaMap {
            argsz: core::mem::size_of::<VfioIommuType1DmaMap>() as u32,
            flags,
            vaddr,
            iova,
            size,
        };
        self.call(VFIO_IOMMU_MAP_DMA, &mut c).map(drop)
    }

    /// `VFIO_IOMMU_UNMAP_DMA`: the result and the `size` written back.
    pub fn vfio_unmap(&self, flags: u32, iova: u64, size: u64) -> (Result<isize>, u64) {
        let mut c = VfioIommuType1DmaUnmap {
            argsz: core::mem::size_of::<VfioIommuType1DmaUnmap>() as u32,
            flags,
            iova,
            size,
        };
        let r = self.call(VFIO_IOMMU_UNMAP_DMA, &mut c);
        (r, c.size)
    }

    /// The areas of IOAS `ioas` as `(iova, last)`, read under the lock.
    pub fn areas(&self, ioas: u32) -> Vec<(u64, u64)> {
        let r = self.ictx.objects().get(ioas, Some(ObjKind::Ioas)).unwrap();
        let held = self.ictx.lock();
        let ioas = iommufd_rs::payload!(r.object(), Ioas).unwrap();
        let iopt = ioas.iopt(&held).unwrap();
        iopt.areas().iter().map(|a| (a.iova, a.last)).collect()
    }

    /// Number of domains attached to IOAS `ioas`.
    pub fn ndomains(&self, ioas: u32) -> usize {
        let r = self.ictx.objects().get(ioas, Some(ObjKind::Ioas)).unwrap();
        let held = self.ictx.lock();
        let ioas = iommufd_rs::payload!(r.object(), Ioas).unwrap();
        let n = ioas.iopt(&held).unwrap().domains().len();
        n
    }

    /// What the domain of HWPT `hwpt` translates each of `iovas` to.
    pub fn translate(&self, hwpt: u32, iovas: impl Iterator<Item = u64>) -> Vec<Option<u64>> {
        let r = self
            .ictx
            .objects()
            .get(hwpt, Some(ObjKind::HwptPaging))
            .unwrap();
        let held = self.ictx.lock();
        let h = iommufd_rs::payload!(r.object(), HwptPaging).unwrap();
        iovas
            .map(|iova| h.domain.iova_to_phys(&held, iova).unwrap())
            .collect()
    }

    /// The HWPT_PAGING objects over IOAS `ioas`, by ID.
    pub fn hwpts_of(&self, ioas: u32) -> Vec<u32> {
        let all = self
            .ictx
            .objects()
            .collect(Some(ObjKind::HwptPaging))
            .unwrap();
        all.iter()
            .filter(|o| {
                iommufd_rs::payload!(o, HwptPaging)
                    .unwrap()
                    .ioas
                    .object()
                    .id()
                    == ioas
            })
            .map(|o| o.id())
            .collect()
    }

    /// Number of published objects.
    pub fn nobjects(&self) -> usize {
        self.ictx.objects().collect(None).unwrap().len()
    }
}
