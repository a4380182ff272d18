//! The `/dev/iommu` uAPI as Rust types: the structs of upstream's
//! `include/uapi/linux/iommufd.h` this project serves, the VFIO type1
//! container structs of `include/uapi/linux/vfio.h` that iommufd's VFIO
//! compatibility serves, the selftest structs of upstream's
//! `drivers/iommu/iommufd/iommufd_test.h`, and the iommufd-rs extensions
//! declared in `uapi/include/linux/iommufd_rs.h`.
//!
//! Every struct is `#[repr(C)]` and free of padding, so it can be copied to
//! and from user memory as bytes (zerocopy). Where the C struct has implicit
//! padding, the Rust struct spells it out as a field named `__pad` (which
//! none of these C structs has), which the layout test checks against the
//! gap in the C struct. Each struct also records the C name and the offset of every
//! field so that a test can compare the layout with the C headers
//! (`uapi/tests/layout.rs`).
//!
//! The file is the root of the `iommufd-uapi` crate in the host build and a
//! plain module (`crate::uapi`) of the kernel module, which gets `zerocopy`
//! from the kernel's vendored copy.

#![cfg_attr(not(MODULE), no_std)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// One field of a uAPI struct: C name, byte offset, byte size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLayout {
    /// The field's name in the C header.
    pub name: &'static str,
    /// `offsetof(struct, field)`.
    pub offset: usize,
    /// `sizeof(field)`.
    pub size: usize,
}

/// Layout facts of a uAPI struct, for the cross-check against the C headers.
pub trait UapiLayout {
    /// The struct's C tag (`struct <C_NAME>`), or `tag.member` for the type of
    /// `member`, an unnamed struct inside `struct tag`.
    const C_NAME: &'static str;
    /// Every field, in declaration order.
    const FIELDS: &'static [FieldLayout];
}

/// The C name of a field: its Rust name without `r#` (`r#type` is `type`).
const fn c_field_name(name: &'static str) -> &'static str {
    match name.as_bytes() {
        [b'r', b'#', rest @ ..] => match core::str::from_utf8(rest) {
            Ok(c_name) => c_name,
            Err(_) => name,
        },
        _ => name,
    }
}

/// Defines a uAPI struct and its [`UapiLayout`]: `c_tag => RustName { .. }`
/// for `struct c_tag`, `c_tag.member => RustName { .. }` for the unnamed
/// struct type of `member` in `struct c_tag`.
macro_rules! uapi_struct {
    ($(#[$meta:meta])* $c_name:ident => $name:ident $body:tt) => {
        uapi_struct!(@def stringify!($c_name), $(#[$meta])* $name $body);
    };
    ($(#[$meta:meta])* $c_name:ident . $member:ident => $name:ident $body:tt) => {
        uapi_struct!(
            @def concat!(stringify!($c_name), ".", stringify!($member)),
            $(#[$meta])* $name $body
        );
    };
    (@def $c_str:expr, $(#[$meta:meta])* $name:ident {
        $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)?
    }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(
            Debug, Default, Clone, Copy, PartialEq, Eq,
            zerocopy_derive::FromBytes, zerocopy_derive::IntoBytes,
            zerocopy_derive::Immutable, zerocopy_derive::KnownLayout,
        )]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty),*
        }

        impl UapiLayout for $name {
            const C_NAME: &'static str = $c_str;
            const FIELDS: &'static [FieldLayout] = &[
                $(FieldLayout {
                    name: c_field_name(stringify!($field)),
                    offset: core::mem::offset_of!($name, $field),
                    size: core::mem::size_of::<$ty>(),
                }),*
            ];
        }
    };
}

/// `IOMMUFD_TYPE`, the ioctl type byte of every `/dev/iommu` command.
pub const IOMMUFD_TYPE: u32 = b';' as u32;

/// `_IO(IOMMUFD_TYPE, nr)`: iommufd ioctls carry no size or direction bits.
pub const fn iommufd_io(nr: u32) -> u32 {
    (IOMMUFD_TYPE << 8) | nr
}

/// Upstream command numbers (`enum` in `iommufd.h`).
pub mod cmd {
    /// First upstream iommufd command number.
    pub const BASE: u32 = 0x80;
    /// `IOMMUFD_CMD_DESTROY`.
    pub const DESTROY: u32 = 0x80;
    /// `IOMMUFD_CMD_IOAS_ALLOC`.
    pub const IOAS_ALLOC: u32 = 0x81;
    /// `IOMMUFD_CMD_IOAS_ALLOW_IOVAS`.
    pub const IOAS_ALLOW_IOVAS: u32 = 0x82;
    /// `IOMMUFD_CMD_IOAS_COPY`.
    pub const IOAS_COPY: u32 = 0x83;
    /// `IOMMUFD_CMD_IOAS_IOVA_RANGES`.
    pub const IOAS_IOVA_RANGES: u32 = 0x84;
    /// `IOMMUFD_CMD_IOAS_MAP`.
    pub const IOAS_MAP: u32 = 0x85;
    /// `IOMMUFD_CMD_IOAS_UNMAP`.
    pub const IOAS_UNMAP: u32 = 0x86;
    /// `IOMMUFD_CMD_OPTION`.
    pub const OPTION: u32 = 0x87;
    /// `IOMMUFD_CMD_VFIO_IOAS`.
    pub const VFIO_IOAS: u32 = 0x88;
    /// `IOMMUFD_CMD_HWPT_ALLOC`.
    pub const HWPT_ALLOC: u32 = 0x89;
    /// `IOMMUFD_CMD_GET_HW_INFO`.
    pub const GET_HW_INFO: u32 = 0x8a;
    /// `IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING`.
    pub const HWPT_SET_DIRTY_TRACKING: u32 = 0x8b;
    /// `IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP`.
    pub const HWPT_GET_DIRTY_BITMAP: u32 = 0x8c;
    /// `IOMMUFD_CMD_HWPT_INVALIDATE`.
    pub const HWPT_INVALIDATE: u32 = 0x8d;
    /// `IOMMUFD_CMD_FAULT_QUEUE_ALLOC`.
    pub const FAULT_QUEUE_ALLOC: u32 = 0x8e;
    /// `IOMMUFD_CMD_IOAS_MAP_FILE`.
    pub const IOAS_MAP_FILE: u32 = 0x8f;
    /// `IOMMUFD_CMD_VIOMMU_ALLOC`.
    pub const VIOMMU_ALLOC: u32 = 0x90;
    /// `IOMMUFD_CMD_VDEVICE_ALLOC`.
    pub const VDEVICE_ALLOC: u32 = 0x91;
    /// `IOMMUFD_CMD_IOAS_CHANGE_PROCESS`.
    pub const IOAS_CHANGE_PROCESS: u32 = 0x92;
    /// `IOMMUFD_CMD_VEVENTQ_ALLOC`.
    pub const VEVENTQ_ALLOC: u32 = 0x93;
    /// `IOMMUFD_CMD_HW_QUEUE_ALLOC`.
    pub const HW_QUEUE_ALLOC: u32 = 0x94;
    /// `IOMMUFD_CMD_IOAS_NOIOMMU_GET_PA`.
    pub const IOAS_NOIOMMU_GET_PA: u32 = 0x95;
    /// `IOMMUFD_CMD_IOAS_NOIOMMU_GET_PA`, the last upstream command in 7.3.
    pub const LAST_UPSTREAM: u32 = 0x95;
    /// `IOMMUFD_CMD_TEST` (selftest-only, `CONFIG_IOMMUFD_TEST`).
    pub const TEST: u32 = 0xa0;
    /// First iommufd-rs extension command; upstream grows up from 0x80.
    pub const RS_BASE: u32 = 0xc0;
    /// `IOMMUFD_RS_CMD_INFO`.
    pub const RS_INFO: u32 = 0xc0;
}

/// `IOMMU_DESTROY`.
pub const IOMMU_DESTROY: u32 = iommufd_io(cmd::DESTROY);
/// `IOMMU_IOAS_ALLOC`.
pub const IOMMU_IOAS_ALLOC: u32 = iommufd_io(cmd::IOAS_ALLOC);
/// `IOMMU_IOAS_ALLOW_IOVAS`.
pub const IOMMU_IOAS_ALLOW_IOVAS: u32 = iommufd_io(cmd::IOAS_ALLOW_IOVAS);
/// `IOMMU_IOAS_COPY`.
pub const IOMMU_IOAS_COPY: u32 = iommufd_io(cmd::IOAS_COPY);
/// `IOMMU_IOAS_IOVA_RANGES`.
pub const IOMMU_IOAS_IOVA_RANGES: u32 = iommufd_io(cmd::IOAS_IOVA_RANGES);
/// `IOMMU_IOAS_MAP`.
pub const IOMMU_IOAS_MAP: u32 = iommufd_io(cmd::IOAS_MAP);
/// `IOMMU_IOAS_UNMAP`.
pub const IOMMU_IOAS_UNMAP: u32 = iommufd_io(cmd::IOAS_UNMAP);
/// `IOMMU_OPTION`.
pub const IOMMU_OPTION: u32 = iommufd_io(cmd::OPTION);
/// `IOMMU_VFIO_IOAS`.
pub const IOMMU_VFIO_IOAS: u32 = iommufd_io(cmd::VFIO_IOAS);
/// `IOMMU_HWPT_ALLOC`.
pub const IOMMU_HWPT_ALLOC: u32 = iommufd_io(cmd::HWPT_ALLOC);
/// `IOMMU_GET_HW_INFO`.
pub const IOMMU_GET_HW_INFO: u32 = iommufd_io(cmd::GET_HW_INFO);
/// `IOMMU_HWPT_SET_DIRTY_TRACKING`.
pub const IOMMU_HWPT_SET_DIRTY_TRACKING: u32 = iommufd_io(cmd::HWPT_SET_DIRTY_TRACKING);
/// `IOMMU_HWPT_GET_DIRTY_BITMAP`.
pub const IOMMU_HWPT_GET_DIRTY_BITMAP: u32 = iommufd_io(cmd::HWPT_GET_DIRTY_BITMAP);
/// `IOMMU_HWPT_INVALIDATE`.
pub const IOMMU_HWPT_INVALIDATE: u32 = iommufd_io(cmd::HWPT_INVALIDATE);
/// `IOMMU_FAULT_QUEUE_ALLOC`.
pub const IOMMU_FAULT_QUEUE_ALLOC: u32 = iommufd_io(cmd::FAULT_QUEUE_ALLOC);
/// `IOMMU_IOAS_MAP_FILE`.
pub const IOMMU_IOAS_MAP_FILE: u32 = iommufd_io(cmd::IOAS_MAP_FILE);
/// `IOMMU_VIOMMU_ALLOC`.
pub const IOMMU_VIOMMU_ALLOC: u32 = iommufd_io(cmd::VIOMMU_ALLOC);
/// `IOMMU_VDEVICE_ALLOC`.
pub const IOMMU_VDEVICE_ALLOC: u32 = iommufd_io(cmd::VDEVICE_ALLOC);
/// `IOMMU_IOAS_CHANGE_PROCESS`.
pub const IOMMU_IOAS_CHANGE_PROCESS: u32 = iommufd_io(cmd::IOAS_CHANGE_PROCESS);
/// `IOMMU_VEVENTQ_ALLOC`.
pub const IOMMU_VEVENTQ_ALLOC: u32 = iommufd_io(cmd::VEVENTQ_ALLOC);
/// `IOMMU_HW_QUEUE_ALLOC`.
pub const IOMMU_HW_QUEUE_ALLOC: u32 = iommufd_io(cmd::HW_QUEUE_ALLOC);
/// `IOMMU_IOAS_NOIOMMU_GET_PA`.
pub const IOMMU_IOAS_NOIOMMU_GET_PA: u32 = iommufd_io(cmd::IOAS_NOIOMMU_GET_PA);
/// `IOMMU_TEST_CMD` (selftest-only, from `iommufd_test.h`).
pub const IOMMU_TEST_CMD: u32 = iommufd_io(cmd::TEST);
/// `IOMMU_RS_INFO` (iommufd-rs extension).
pub const IOMMU_RS_INFO: u32 = iommufd_io(cmd::RS_INFO);

uapi_struct! {
    /// `struct iommu_destroy`: destroy any object by ID.
    iommu_destroy => IommuDestroy {
        /// `sizeof(struct iommu_destroy)`.
        size: u32,
        /// Object ID to destroy.
        id: u32,
    }
}

uapi_struct! {
    /// `struct iommu_ioas_alloc`: allocate an IO address space.
    iommu_ioas_alloc => IommuIoasAlloc {
        /// `sizeof(struct iommu_ioas_alloc)`.
        size: u32,
        /// Must be 0.
        flags: u32,
        /// Output: the new IOAS ID.
        out_ioas_id: u32,
    }
}

uapi_struct! {
    /// `struct iommu_iova_range`: one IOVA range, an element of the arrays of
    /// `IOMMU_IOAS_IOVA_RANGES` and `IOMMU_IOAS_ALLOW_IOVAS`.
    iommu_iova_range => IommuIovaRange {
        /// First IOVA.
        start: u64,
        /// Inclusive last IOVA.
        last: u64,
    }
}

uapi_struct! {
    /// `struct iommu_ioas_iova_ranges`: query the IOVA ranges an IOAS can map.
    iommu_ioas_iova_ranges => IommuIoasIovaRanges {
        /// `sizeof(struct iommu_ioas_iova_ranges)`.
        size: u32,
        /// IOAS ID to read ranges from.
        ioas_id: u32,
        /// Input: entries in `allowed_iovas`; output: total number of ranges.
        num_iovas: u32,
        /// Must be 0.
        __reserved: u32,
        /// User pointer to the output array of `struct iommu_iova_range`.
        allowed_iovas: u64,
        /// Output: minimum alignment required for mapping IOVA.
        out_iova_alignment: u64,
    }
}

uapi_struct! {
    /// `struct iommu_ioas_allow_iovas`: restrict the IOVA ranges of an IOAS.
    iommu_ioas_allow_iovas => IommuIoasAllowIovas {
        /// `sizeof(struct iommu_ioas_allow_iovas)`.
        size: u32,
        /// IOAS ID to allow IOVAs from.
        ioas_id: u32,
        /// Number of entries in `allowed_iovas`.
        num_iovas: u32,
        /// Must be 0.
        __reserved: u32,
        /// User pointer to an array of `struct iommu_iova_range`.
        allowed_iovas: u64,
    }
}

/// `IOMMU_IOAS_MAP_FIXED_IOVA`: map at the given IOVA instead of choosing one.
pub const IOMMU_IOAS_MAP_FIXED_IOVA: u32 = 1 << 0;
/// `IOMMU_IOAS_MAP_WRITEABLE`: DMA may write to the mapping.
pub const IOMMU_IOAS_MAP_WRITEABLE: u32 = 1 << 1;
/// `IOMMU_IOAS_MAP_READABLE`: DMA may read from the mapping.
pub const IOMMU_IOAS_MAP_READABLE: u32 = 1 << 2;

uapi_struct! {
    /// `struct iommu_ioas_map`: map user memory into an IOAS.
    iommu_ioas_map => IommuIoasMap {
        /// `sizeof(struct iommu_ioas_map)`.
        size: u32,
        /// `IOMMU_IOAS_MAP_*` flags.
        flags: u32,
        /// IOAS ID to change the mapping of.
        ioas_id: u32,
        /// Must be 0.
        __reserved: u32,
        /// User pointer to start mapping from.
        user_va: u64,
        /// Number of bytes to map.
        length: u64,
        /// IOVA the mapping was placed at; input if
        /// `IOMMU_IOAS_MAP_FIXED_IOVA` is set.
        iova: u64,
    }
}

uapi_struct! {
    /// `struct iommu_ioas_map_file`: map a memfd or dma-buf into an IOAS.
    iommu_ioas_map_file => IommuIoasMapFile {
        /// `sizeof(struct iommu_ioas_map_file)`.
        size: u32,
        /// `IOMMU_IOAS_MAP_*` flags.
        flags: u32,
        /// IOAS ID to change the mapping of.
        ioas_id: u32,
        /// The memfd or dma-buf file descriptor to map.
        fd: i32,
        /// Byte offset into the file to map from.
        start: u64,
        /// Number of bytes to map.
        length: u64,
        /// IOVA the mapping was placed at; input if
        /// `IOMMU_IOAS_MAP_FIXED_IOVA` is set.
        iova: u64,
    }
}

uapi_struct! {
    /// `struct iommu_ioas_noiommu_get_pa`: translate an IOVA of a no-IOMMU
    /// IOAS to a physical address.
    iommu_ioas_noiommu_get_pa => IommuIoasNoiommuGetPa {
        /// `sizeof(struct iommu_ioas_noiommu_get_pa)`.
        size: u32,
        /// Must be 0.
        flags: u32,
        /// IOAS ID to query.
        ioas_id: u32,
        /// Must be 0.
        __reserved: u32,
        /// IOVA to query.
        iova: u64,
        /// Input: maximum bytes to query; output: physically contiguous bytes.
        length: u64,
        /// Output: the physical address `iova` maps to.
        out_phys: u64,
    }
}

uapi_struct! {
    /// `struct iommu_ioas_copy`: copy a mapping from one IOAS to another.
    iommu_ioas_copy => IommuIoasCopy {
        /// `sizeof(struct iommu_ioas_copy)`.
        size: u32,
        /// `IOMMU_IOAS_MAP_*` flags.
        flags: u32,
        /// IOAS ID to change the mapping of.
        dst_ioas_id: u32,
        /// IOAS ID to copy from.
        src_ioas_id: u32,
        /// Number of bytes to copy and map.
        length: u64,
        /// IOVA the mapping was placed at; input if
        /// `IOMMU_IOAS_MAP_FIXED_IOVA` is set.
        dst_iova: u64,
        /// IOVA to start the copy at.
        src_iova: u64,
    }
}

uapi_struct! {
    /// `struct iommu_ioas_unmap`: unmap a range of an IOAS.
    iommu_ioas_unmap => IommuIoasUnmap {
        /// `sizeof(struct iommu_ioas_unmap)`.
        size: u32,
        /// IOAS ID to change the mapping of.
        ioas_id: u32,
        /// IOVA to start the unmapping at.
        iova: u64,
        /// Input: bytes to unmap (0 with `iova` 0: all); output: bytes unmapped.
        length: u64,
    }
}

/// `IOMMU_OPTION_RLIMIT_MODE`: per-process (0) or per-user (1) pinned-page
/// accounting; global option, `object_id` must be 0.
pub const IOMMU_OPTION_RLIMIT_MODE: u32 = 0;
/// `IOMMU_OPTION_HUGE_PAGES`: whether an IOAS may use huge pages (default 1).
pub const IOMMU_OPTION_HUGE_PAGES: u32 = 1;
/// `IOMMU_OPTION_OP_SET`: set the option's value.
pub const IOMMU_OPTION_OP_SET: u16 = 0;
/// `IOMMU_OPTION_OP_GET`: get the option's value.
pub const IOMMU_OPTION_OP_GET: u16 = 1;

uapi_struct! {
    /// `struct iommu_option`: the option multiplexer.
    iommu_option => IommuOption {
        /// `sizeof(struct iommu_option)`.
        size: u32,
        /// One of `IOMMU_OPTION_RLIMIT_MODE`, `IOMMU_OPTION_HUGE_PAGES`.
        option_id: u32,
        /// `IOMMU_OPTION_OP_SET` or `IOMMU_OPTION_OP_GET`.
        op: u16,
        /// Must be 0.
        __reserved: u16,
        /// ID of the object the option applies to, if any.
        object_id: u32,
        /// Value to set, or the value returned by a get.
        val64: u64,
    }
}

/// `IOMMU_VFIO_IOAS_GET`: get the current VFIO compatibility IOAS.
pub const IOMMU_VFIO_IOAS_GET: u16 = 0;
/// `IOMMU_VFIO_IOAS_SET`: change the current VFIO compatibility IOAS.
pub const IOMMU_VFIO_IOAS_SET: u16 = 1;
/// `IOMMU_VFIO_IOAS_CLEAR`: disable VFIO compatibility.
pub const IOMMU_VFIO_IOAS_CLEAR: u16 = 2;

uapi_struct! {
    /// `struct iommu_vfio_ioas`: get or set the IOAS of the VFIO container
    /// compatibility layer.
    iommu_vfio_ioas => IommuVfioIoas {
        /// `sizeof(struct iommu_vfio_ioas)`.
        size: u32,
        /// Input for `IOMMU_VFIO_IOAS_SET`, output for `IOMMU_VFIO_IOAS_GET`.
        ioas_id: u32,
        /// One of `IOMMU_VFIO_IOAS_*`.
        op: u16,
        /// Must be 0.
        __reserved: u16,
    }
}

uapi_struct! {
    /// `struct iommu_ioas_change_process`: move the pinned-page accounting of
    /// every file mapping to the calling process.
    iommu_ioas_change_process => IommuIoasChangeProcess {
        /// `sizeof(struct iommu_ioas_change_process)`.
        size: u32,
        /// Must be 0.
        __reserved: u32,
    }
}

/// `IOMMU_HWPT_ALLOC_NEST_PARENT`: the HWPT can be a nesting parent.
pub const IOMMU_HWPT_ALLOC_NEST_PARENT: u32 = 1 << 0;
/// `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`: enforce dirty tracking support.
pub const IOMMU_HWPT_ALLOC_DIRTY_TRACKING: u32 = 1 << 1;
/// `IOMMU_HWPT_FAULT_ID_VALID`: `fault_id` is valid.
pub const IOMMU_HWPT_FAULT_ID_VALID: u32 = 1 << 2;
/// `IOMMU_HWPT_ALLOC_PASID`: the HWPT can be attached to PASIDs.
pub const IOMMU_HWPT_ALLOC_PASID: u32 = 1 << 3;

/// `IOMMU_HWPT_DATA_NONE`: no driver-specific data.
pub const IOMMU_HWPT_DATA_NONE: u32 = 0;
/// `IOMMU_HWPT_DATA_VTD_S1`: Intel VT-d stage-1 page table.
pub const IOMMU_HWPT_DATA_VTD_S1: u32 = 1;
/// `IOMMU_HWPT_DATA_ARM_SMMUV3`: ARM SMMUv3 nested STE.
pub const IOMMU_HWPT_DATA_ARM_SMMUV3: u32 = 2;
/// `IOMMU_HWPT_DATA_AMD_GUEST`: AMD IOMMU guest page table.
pub const IOMMU_HWPT_DATA_AMD_GUEST: u32 = 3;

uapi_struct! {
    /// `struct iommu_hwpt_alloc`: allocate a hardware page table.
    iommu_hwpt_alloc => IommuHwptAlloc {
        /// `sizeof(struct iommu_hwpt_alloc)`.
        size: u32,
        /// `IOMMU_HWPT_ALLOC_*` flags and `IOMMU_HWPT_FAULT_ID_VALID`.
        flags: u32,
        /// The device to allocate the HWPT for.
        dev_id: u32,
        /// The IOAS, HWPT or vIOMMU to connect the HWPT to.
        pt_id: u32,
        /// Output: the new HWPT ID.
        out_hwpt_id: u32,
        /// Must be 0.
        __reserved: u32,
        /// One of `IOMMU_HWPT_DATA_*`.
        data_type: u32,
        /// Length of the driver-specific data.
        data_len: u32,
        /// User pointer to the driver-specific data.
        data_uptr: u64,
        /// FAULT object ID, if `IOMMU_HWPT_FAULT_ID_VALID` is set.
        fault_id: u32,
        /// Must be 0.
        __reserved2: u32,
    }
}

/// `IOMMU_HW_INFO_TYPE_NONE`: the driver reports no hardware info.
pub const IOMMU_HW_INFO_TYPE_NONE: u32 = 0;
/// `IOMMU_HW_INFO_TYPE_DEFAULT`: input, request the default type.
pub const IOMMU_HW_INFO_TYPE_DEFAULT: u32 = 0;
/// `IOMMU_HW_INFO_TYPE_INTEL_VTD`: Intel VT-d.
pub const IOMMU_HW_INFO_TYPE_INTEL_VTD: u32 = 1;
/// `IOMMU_HW_INFO_TYPE_ARM_SMMUV3`: ARM SMMUv3.
pub const IOMMU_HW_INFO_TYPE_ARM_SMMUV3: u32 = 2;
/// `IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV`: NVIDIA Tegra241 CMDQV.
pub const IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV: u32 = 3;
/// `IOMMU_HW_INFO_TYPE_AMD`: AMD IOMMU.
pub const IOMMU_HW_INFO_TYPE_AMD: u32 = 4;

/// `IOMMU_HW_CAP_DIRTY_TRACKING`: the IOMMU supports dirty tracking.
pub const IOMMU_HW_CAP_DIRTY_TRACKING: u64 = 1 << 0;
/// `IOMMU_HW_CAP_PCI_PASID_EXEC`: PASID execute permission is supported.
pub const IOMMU_HW_CAP_PCI_PASID_EXEC: u64 = 1 << 1;
/// `IOMMU_HW_CAP_PCI_PASID_PRIV`: PASID privileged mode is supported.
pub const IOMMU_HW_CAP_PCI_PASID_PRIV: u64 = 1 << 2;
/// `IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED`: ATS is unsupported or unusable.
pub const IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED: u64 = 1 << 3;

/// `IOMMU_HW_INFO_FLAG_INPUT_TYPE`: `in_data_type` carries an input type.
pub const IOMMU_HW_INFO_FLAG_INPUT_TYPE: u32 = 1 << 0;

uapi_struct! {
    /// `struct iommu_hw_info`: query the IOMMU behind a device.
    ///
    /// The C struct has `union { in_data_type; out_data_type; }` (both
    /// `__u32`); Rust has the one field `out_data_type` plus the accessors
    /// [`Self::in_data_type`] and [`Self::set_in_data_type`].
    iommu_hw_info => IommuHwInfo {
        /// `sizeof(struct iommu_hw_info)`.
        size: u32,
        /// `IOMMU_HW_INFO_FLAG_*`.
        flags: u32,
        /// The device bound to the iommufd.
        dev_id: u32,
        /// Input: length of the user buffer; output: length filled.
        data_len: u32,
        /// User pointer to the buffer for the driver-specific info.
        data_uptr: u64,
        /// Output: `IOMMU_HW_INFO_TYPE_*` of the data; also `in_data_type`,
        /// the requested type if `IOMMU_HW_INFO_FLAG_INPUT_TYPE` is set.
        out_data_type: u32,
        /// Output: log2 of the PASID width, 0 if no PASID support.
        out_max_pasid_log2: u8,
        /// Must be 0.
        __reserved: [u8; 3],
        /// Output: `IOMMU_HW_CAP_*`.
        out_capabilities: u64,
    }
}

impl IommuHwInfo {
    /// `in_data_type`, which shares its storage with `out_data_type`.
    pub const fn in_data_type(&self) -> u32 {
        self.out_data_type
    }

    /// Sets `in_data_type`, which shares its storage with `out_data_type`.
    pub fn set_in_data_type(&mut self, data_type: u32) {
        self.out_data_type = data_type;
    }
}

/// `IOMMU_HWPT_DIRTY_TRACKING_ENABLE`: enable dirty tracking.
pub const IOMMU_HWPT_DIRTY_TRACKING_ENABLE: u32 = 1;

uapi_struct! {
    /// `struct iommu_hwpt_set_dirty_tracking`: start or stop dirty tracking.
    iommu_hwpt_set_dirty_tracking => IommuHwptSetDirtyTracking {
        /// `sizeof(struct iommu_hwpt_set_dirty_tracking)`.
        size: u32,
        /// `IOMMU_HWPT_DIRTY_TRACKING_ENABLE` or 0.
        flags: u32,
        /// HWPT ID of the IOMMU domain.
        hwpt_id: u32,
        /// Must be 0.
        __reserved: u32,
    }
}

/// `IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR`: read dirty bits without clearing.
pub const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR: u32 = 1;

uapi_struct! {
    /// `struct iommu_hwpt_get_dirty_bitmap`: read (and clear) dirty bits.
    iommu_hwpt_get_dirty_bitmap => IommuHwptGetDirtyBitmap {
        /// `sizeof(struct iommu_hwpt_get_dirty_bitmap)`.
        size: u32,
        /// HWPT ID of the IOMMU domain.
        hwpt_id: u32,
        /// `IOMMU_HWPT_GET_DIRTY_BITMAP_*` flags.
        flags: u32,
        /// Must be 0.
        __reserved: u32,
        /// IOVA of the bitmap's first bit.
        iova: u64,
        /// IOVA range size.
        length: u64,
        /// Bytes of IOVA each bit stands for.
        page_size: u64,
        /// User pointer to the bitmap.
        data: u64,
    }
}

/// `IOMMU_HWPT_INVALIDATE_DATA_VTD_S1`: Intel VT-d stage-1 invalidation.
pub const IOMMU_HWPT_INVALIDATE_DATA_VTD_S1: u32 = 0;
/// `IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3`: ARM SMMUv3 invalidation.
pub const IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3: u32 = 1;

uapi_struct! {
    /// `struct iommu_hwpt_invalidate`: invalidate caches of a nested HWPT or
    /// a vIOMMU.
    iommu_hwpt_invalidate => IommuHwptInvalidate {
        /// `sizeof(struct iommu_hwpt_invalidate)`.
        size: u32,
        /// ID of a nested HWPT or a vIOMMU.
        hwpt_id: u32,
        /// User pointer to the array of driver-specific requests.
        data_uptr: u64,
        /// Type of the requests (`IOMMU_HWPT_INVALIDATE_DATA_*` etc.).
        data_type: u32,
        /// Length in bytes of one request.
        entry_len: u32,
        /// Input: number of requests; output: number handled.
        entry_num: u32,
        /// Must be 0.
        __reserved: u32,
    }
}

/// `IOMMU_NO_PASID`: the PASID of DMA without a PASID. Kernel-internal
/// (`include/linux/iommu.h`), not in a uAPI header, so the layout test does
/// not check it.
pub const IOMMU_NO_PASID: u32 = 0;

/// `IOMMU_PGFAULT_FLAGS_PASID_VALID`: the `pasid` of the fault is valid.
pub const IOMMU_PGFAULT_FLAGS_PASID_VALID: u32 = 1 << 0;
/// `IOMMU_PGFAULT_FLAGS_LAST_PAGE`: the last fault of a fault group.
pub const IOMMU_PGFAULT_FLAGS_LAST_PAGE: u32 = 1 << 1;

/// `IOMMU_PGFAULT_PERM_READ`: request for read permission.
pub const IOMMU_PGFAULT_PERM_READ: u32 = 1 << 0;
/// `IOMMU_PGFAULT_PERM_WRITE`: request for write permission.
pub const IOMMU_PGFAULT_PERM_WRITE: u32 = 1 << 1;
/// `IOMMU_PGFAULT_PERM_EXEC`: request with the PASID Execute Requested bit.
pub const IOMMU_PGFAULT_PERM_EXEC: u32 = 1 << 2;
/// `IOMMU_PGFAULT_PERM_PRIV`: request with the PASID Privileged Mode
/// Requested bit.
pub const IOMMU_PGFAULT_PERM_PRIV: u32 = 1 << 3;

uapi_struct! {
    /// `struct iommu_hwpt_pgfault`: one page fault message, read from the
    /// fd of a FAULT object.
    iommu_hwpt_pgfault => IommuHwptPgfault {
        /// `IOMMU_PGFAULT_FLAGS_*`.
        flags: u32,
        /// The device the fault originated from.
        dev_id: u32,
        /// PASID of the fault, if `IOMMU_PGFAULT_FLAGS_PASID_VALID` is set.
        pasid: u32,
        /// Page Request Group Index.
        grpid: u32,
        /// `IOMMU_PGFAULT_PERM_*`.
        perm: u32,
        /// Must be 0.
        __reserved: u32,
        /// Fault address.
        addr: u64,
        /// Hint of how many bytes the requestor will access, 0 for none.
        length: u32,
        /// Kernel cookie of the fault group, echoed back in the response to
        /// the group's last fault.
        cookie: u32,
    }
}

/// `IOMMUFD_PAGE_RESP_SUCCESS`: the fault was handled, retry the access.
pub const IOMMUFD_PAGE_RESP_SUCCESS: u32 = 0;
/// `IOMMUFD_PAGE_RESP_INVALID`: the fault could not be handled, do not retry.
pub const IOMMUFD_PAGE_RESP_INVALID: u32 = 1;

uapi_struct! {
    /// `struct iommu_hwpt_page_response`: a page fault response, written to
    /// the fd of a FAULT object.
    iommu_hwpt_page_response => IommuHwptPageResponse {
        /// The `cookie` of the fault message answered.
        cookie: u32,
        /// One of `IOMMUFD_PAGE_RESP_*`.
        code: u32,
    }
}

uapi_struct! {
    /// `struct iommu_fault_alloc`: allocate a FAULT queue object.
    iommu_fault_alloc => IommuFaultAlloc {
        /// `sizeof(struct iommu_fault_alloc)`.
        size: u32,
        /// Must be 0.
        flags: u32,
        /// Output: the new FAULT ID.
        out_fault_id: u32,
        /// Output: the fd of the new FAULT.
        out_fault_fd: u32,
    }
}

/// `IOMMU_VIOMMU_TYPE_DEFAULT`: reserved.
pub const IOMMU_VIOMMU_TYPE_DEFAULT: u32 = 0;
/// `IOMMU_VIOMMU_TYPE_ARM_SMMUV3`: ARM SMMUv3.
pub const IOMMU_VIOMMU_TYPE_ARM_SMMUV3: u32 = 1;
/// `IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV`: NVIDIA Tegra241 CMDQV.
pub const IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV: u32 = 2;

uapi_struct! {
    /// `struct iommu_viommu_alloc`: allocate a virtual IOMMU.
    iommu_viommu_alloc => IommuViommuAlloc {
        /// `sizeof(struct iommu_viommu_alloc)`.
        size: u32,
        /// Must be 0.
        flags: u32,
        /// One of `IOMMU_VIOMMU_TYPE_*`.
        r#type: u32,
        /// The device whose physical IOMMU backs the vIOMMU.
        dev_id: u32,
        /// ID of a nesting parent HWPT.
        hwpt_id: u32,
        /// Output: the new vIOMMU ID.
        out_viommu_id: u32,
        /// Length of the driver-specific data.
        data_len: u32,
        /// Must be 0.
        __reserved: u32,
        /// User pointer to the driver-specific data.
        data_uptr: u64,
    }
}

uapi_struct! {
    /// `struct iommu_vdevice_alloc`: allocate a virtual device of a vIOMMU.
    iommu_vdevice_alloc => IommuVdeviceAlloc {
        /// `sizeof(struct iommu_vdevice_alloc)`.
        size: u32,
        /// vIOMMU ID to associate the vDevice with.
        viommu_id: u32,
        /// The physical device.
        dev_id: u32,
        /// Output: the new vDevice ID.
        out_vdevice_id: u32,
        /// Virtual device ID per vIOMMU (e.g. the vSID of ARM SMMUv3).
        virt_id: u64,
    }
}

/// `IOMMU_VEVENTQ_FLAG_LOST_EVENTS`: the vEVENTQ has lost vEVENTs.
pub const IOMMU_VEVENTQ_FLAG_LOST_EVENTS: u32 = 1 << 0;
uapi_struct! {
    /// `struct iommufd_vevent_header`: header of each vEVENT read from the
    /// fd of a vEVENTQ.
    iommufd_vevent_header => IommufdVeventHeader {
        /// `IOMMU_VEVENTQ_FLAG_*`.
        flags: u32,
        /// Sequence index of the following vEVENT, in `[0, INT_MAX]`.
        sequence: u32,
    }
}

/// `IOMMU_VEVENTQ_TYPE_DEFAULT`: reserved.
pub const IOMMU_VEVENTQ_TYPE_DEFAULT: u32 = 0;
/// `IOMMU_VEVENTQ_TYPE_ARM_SMMUV3`: ARM SMMUv3 virtual event queue.
pub const IOMMU_VEVENTQ_TYPE_ARM_SMMUV3: u32 = 1;
/// `IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV`: NVIDIA Tegra241 CMDQV extension IRQ.
pub const IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV: u32 = 2;

uapi_struct! {
    /// `struct iommu_veventq_alloc`: allocate a virtual event queue.
    iommu_veventq_alloc => IommuVeventqAlloc {
        /// `sizeof(struct iommu_veventq_alloc)`.
        size: u32,
        /// Must be 0.
        flags: u32,
        /// vIOMMU ID to associate the vEVENTQ with.
        viommu_id: u32,
        /// One of `IOMMU_VEVENTQ_TYPE_*`.
        r#type: u32,
        /// Maximum number of events in the queue.
        veventq_depth: u32,
        /// Output: the new vEVENTQ ID.
        out_veventq_id: u32,
        /// Output: the fd of the new vEVENTQ.
        out_veventq_fd: u32,
        /// Must be 0.
        __reserved: u32,
    }
}

/// `IOMMU_HW_QUEUE_TYPE_DEFAULT`: reserved.
pub const IOMMU_HW_QUEUE_TYPE_DEFAULT: u32 = 0;
/// `IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV`: NVIDIA Tegra241 CMDQV.
pub const IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV: u32 = 1;

uapi_struct! {
    /// `struct iommu_hw_queue_alloc`: allocate a hardware queue of a vIOMMU.
    iommu_hw_queue_alloc => IommuHwQueueAlloc {
        /// `sizeof(struct iommu_hw_queue_alloc)`.
        size: u32,
        /// Must be 0.
        flags: u32,
        /// vIOMMU ID to associate the queue with.
        viommu_id: u32,
        /// One of `IOMMU_HW_QUEUE_TYPE_*`.
        r#type: u32,
        /// Logical index of the queue within the vIOMMU.
        index: u32,
        /// Output: the new HW queue ID.
        out_hw_queue_id: u32,
        /// Guest physical base address of the queue memory.
        nesting_parent_iova: u64,
        /// Length of the queue memory.
        length: u64,
    }
}

/// `IOMMU_RS_INFO_ABI_VERSION`: bumped on any incompatible extension change.
pub const IOMMU_RS_INFO_ABI_VERSION: u32 = 1;

uapi_struct! {
    /// `struct iommu_rs_info` (iommufd-rs extension): identifies the server
    /// of `/dev/iommu` and what it implements. Upstream answers ENOTTY.
    iommu_rs_info => IommuRsInfo {
        /// `sizeof(struct iommu_rs_info)`.
        size: u32,
        /// Must be 0.
        flags: u32,
        /// Output: `IOMMU_RS_INFO_ABI_VERSION`.
        out_abi_version: u32,
        /// Must be 0.
        __reserved: u32,
        /// Output: bit `n` set if upstream command `0x80 + n` is implemented.
        out_upstream_cmds: u64,
        /// Output: bit `n` set if extension command `0xc0 + n` is implemented.
        out_rs_cmds: u64,
    }
}

// VFIO type1 container compatibility (`include/uapi/linux/vfio.h`).

/// `VFIO_TYPE`, the ioctl type byte of VFIO (the same as `IOMMUFD_TYPE`).
pub const VFIO_TYPE: u32 = b';' as u32;
/// `VFIO_BASE`, the first VFIO ioctl number.
pub const VFIO_BASE: u32 = 100;

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`.
const fn vfio_io(n: u32) -> u32 {
    (VFIO_TYPE << 8) | (VFIO_BASE + n)
}

/// `VFIO_GET_API_VERSION`: returns `VFIO_API_VERSION`.
pub const VFIO_GET_API_VERSION: u32 = vfio_io(0);
/// `VFIO_CHECK_EXTENSION`: whether an extension (IOMMU type) is supported.
pub const VFIO_CHECK_EXTENSION: u32 = vfio_io(1);
/// `VFIO_SET_IOMMU`: select the container's IOMMU type.
pub const VFIO_SET_IOMMU: u32 = vfio_io(2);
/// `VFIO_IOMMU_GET_INFO`: `struct vfio_iommu_type1_info` and capabilities.
pub const VFIO_IOMMU_GET_INFO: u32 = vfio_io(12);
/// `VFIO_IOMMU_MAP_DMA`: `struct vfio_iommu_type1_dma_map`.
pub const VFIO_IOMMU_MAP_DMA: u32 = vfio_io(13);
/// `VFIO_IOMMU_UNMAP_DMA`: `struct vfio_iommu_type1_dma_unmap`.
pub const VFIO_IOMMU_UNMAP_DMA: u32 = vfio_io(14);
/// `VFIO_IOMMU_DIRTY_PAGES`: dirty page logging of the container.
pub const VFIO_IOMMU_DIRTY_PAGES: u32 = vfio_io(17);

/// `VFIO_API_VERSION`.
pub const VFIO_API_VERSION: u32 = 0;
/// `VFIO_TYPE1_IOMMU` extension.
pub const VFIO_TYPE1_IOMMU: u32 = 1;
/// `VFIO_SPAPR_TCE_IOMMU` extension.
pub const VFIO_SPAPR_TCE_IOMMU: u32 = 2;
/// `VFIO_TYPE1v2_IOMMU` extension.
pub const VFIO_TYPE1V2_IOMMU: u32 = 3;
/// `VFIO_DMA_CC_IOMMU` extension: the IOMMU enforces DMA cache coherence.
pub const VFIO_DMA_CC_IOMMU: u32 = 4;
/// `VFIO_TYPE1_NESTING_IOMMU` extension, now
/// `__VFIO_RESERVED_TYPE1_NESTING_IOMMU` in the header.
pub const VFIO_TYPE1_NESTING_IOMMU: u32 = 6;
/// `VFIO_NOIOMMU_IOMMU` extension.
pub const VFIO_NOIOMMU_IOMMU: u32 = 8;
/// `VFIO_UNMAP_ALL` extension: `VFIO_DMA_UNMAP_FLAG_ALL` is supported.
pub const VFIO_UNMAP_ALL: u32 = 9;
/// `VFIO_UPDATE_VADDR` extension: the `VADDR` map/unmap flags are supported.
pub const VFIO_UPDATE_VADDR: u32 = 10;

/// `VFIO_IOMMU_INFO_PGSIZES`: `iova_pgsizes` is valid.
pub const VFIO_IOMMU_INFO_PGSIZES: u32 = 1 << 0;
/// `VFIO_IOMMU_INFO_CAPS`: `cap_offset` is valid.
pub const VFIO_IOMMU_INFO_CAPS: u32 = 1 << 1;

/// `VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE`: the IOVA range capability.
pub const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: u16 = 1;
/// `VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION`: the migration capability.
pub const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: u16 = 2;
/// `VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL`: the DMA-mappings-available capability.
pub const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: u16 = 3;

/// `VFIO_DMA_MAP_FLAG_READ`: readable from the device.
pub const VFIO_DMA_MAP_FLAG_READ: u32 = 1 << 0;
/// `VFIO_DMA_MAP_FLAG_WRITE`: writable from the device.
pub const VFIO_DMA_MAP_FLAG_WRITE: u32 = 1 << 1;
/// `VFIO_DMA_MAP_FLAG_VADDR`: update the vaddr of an existing mapping.
pub const VFIO_DMA_MAP_FLAG_VADDR: u32 = 1 << 2;

/// `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`: return the dirty bitmap first.
pub const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: u32 = 1 << 0;
/// `VFIO_DMA_UNMAP_FLAG_ALL`: unmap everything (`iova`, `size` must be 0).
pub const VFIO_DMA_UNMAP_FLAG_ALL: u32 = 1 << 1;
/// `VFIO_DMA_UNMAP_FLAG_VADDR`: invalidate the vaddr instead of unmapping.
pub const VFIO_DMA_UNMAP_FLAG_VADDR: u32 = 1 << 2;

uapi_struct! {
    /// `struct vfio_info_cap_header`: header of each capability in the chain
    /// after an INFO struct.
    vfio_info_cap_header => VfioInfoCapHeader {
        /// Capability ID.
        id: u16,
        /// Version of the capability.
        version: u16,
        /// Offset of the next capability from the start of the INFO buffer.
        next: u32,
    }
}

uapi_struct! {
    /// `struct vfio_iommu_type1_info`: `VFIO_IOMMU_GET_INFO`.
    vfio_iommu_type1_info => VfioIommuType1Info {
        /// Input: buffer size; output: size needed for all capabilities.
        argsz: u32,
        /// Output: `VFIO_IOMMU_INFO_*`.
        flags: u32,
        /// Bitmap of supported page sizes.
        iova_pgsizes: u64,
        /// Offset of the first capability within the buffer.
        cap_offset: u32,
        /// Padding named in the C header.
        pad: u32,
    }
}

uapi_struct! {
    /// `struct vfio_iova_range`: one valid IOVA range (inclusive `end`).
    vfio_iova_range => VfioIovaRange {
        /// First IOVA.
        start: u64,
        /// Inclusive last IOVA.
        end: u64,
    }
}

uapi_struct! {
    /// `struct vfio_iommu_type1_info_cap_iova_range` without its flexible
    /// array `iova_ranges[]` of `struct vfio_iova_range`, which follows it.
    vfio_iommu_type1_info_cap_iova_range => VfioIommuType1InfoCapIovaRange {
        /// `VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE`, version 1.
        header: VfioInfoCapHeader,
        /// Number of ranges in `iova_ranges[]`.
        nr_iovas: u32,
        /// Reserved.
        reserved: u32,
    }
}

uapi_struct! {
    /// `struct vfio_iommu_type1_info_dma_avail`: the DMA-mappings-available
    /// capability.
    vfio_iommu_type1_info_dma_avail => VfioIommuType1InfoDmaAvail {
        /// `VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL`, version 1.
        header: VfioInfoCapHeader,
        /// Number of DMA mappings that may still be created.
        avail: u32,
    }
}

uapi_struct! {
    /// `struct vfio_iommu_type1_dma_map`: `VFIO_IOMMU_MAP_DMA`.
    vfio_iommu_type1_dma_map => VfioIommuType1DmaMap {
        /// `sizeof(struct vfio_iommu_type1_dma_map)`.
        argsz: u32,
        /// `VFIO_DMA_MAP_FLAG_*`.
        flags: u32,
        /// Process virtual address.
        vaddr: u64,
        /// IO virtual address.
        iova: u64,
        /// Size of the mapping in bytes.
        size: u64,
    }
}

uapi_struct! {
    /// `struct vfio_iommu_type1_dma_unmap`: `VFIO_IOMMU_UNMAP_DMA`, without
    /// its flexible array `data[]` (a `struct vfio_bitmap` with
    /// `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`).
    vfio_iommu_type1_dma_unmap => VfioIommuType1DmaUnmap {
        /// Size of the struct plus `data[]`.
        argsz: u32,
        /// `VFIO_DMA_UNMAP_FLAG_*`.
        flags: u32,
        /// IO virtual address.
        iova: u64,
        /// Input: bytes to unmap; output: bytes unmapped.
        size: u64,
    }
}

// The selftest interface (`drivers/iommu/iommufd/iommufd_test.h`), served
// only with `CONFIG_IOMMUFD_TEST`.

/// `IOMMU_TEST_OP_ADD_RESERVED`: payload [`TestAddReserved`].
pub const IOMMU_TEST_OP_ADD_RESERVED: u32 = 1;
/// `IOMMU_TEST_OP_MOCK_DOMAIN`: payload [`TestMockDomain`].
pub const IOMMU_TEST_OP_MOCK_DOMAIN: u32 = 2;
/// `IOMMU_TEST_OP_MD_CHECK_MAP`: payload [`TestCheckMap`].
pub const IOMMU_TEST_OP_MD_CHECK_MAP: u32 = 3;
/// `IOMMU_TEST_OP_MD_CHECK_REFS`: payload [`TestCheckRefs`].
pub const IOMMU_TEST_OP_MD_CHECK_REFS: u32 = 4;
/// `IOMMU_TEST_OP_CREATE_ACCESS`: payload [`TestCreateAccess`].
pub const IOMMU_TEST_OP_CREATE_ACCESS: u32 = 5;
/// `IOMMU_TEST_OP_DESTROY_ACCESS_PAGES`: payload [`TestDestroyAccessPages`].
pub const IOMMU_TEST_OP_DESTROY_ACCESS_PAGES: u32 = 6;
/// `IOMMU_TEST_OP_ACCESS_PAGES`: payload [`TestAccessPages`].
pub const IOMMU_TEST_OP_ACCESS_PAGES: u32 = 7;
/// `IOMMU_TEST_OP_ACCESS_RW`: payload [`TestAccessRw`].
pub const IOMMU_TEST_OP_ACCESS_RW: u32 = 8;
/// `IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT`: payload [`TestMemoryLimit`].
pub const IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: u32 = 9;
/// `IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE`: payload [`TestMockDomainReplace`].
pub const IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE: u32 = 10;
/// `IOMMU_TEST_OP_ACCESS_REPLACE_IOAS`: payload [`TestAccessReplaceIoas`].
pub const IOMMU_TEST_OP_ACCESS_REPLACE_IOAS: u32 = 11;
/// `IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS`: payload [`TestMockDomainFlags`].
pub const IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS: u32 = 12;
/// `IOMMU_TEST_OP_DIRTY`: payload [`TestDirty`].
pub const IOMMU_TEST_OP_DIRTY: u32 = 13;
/// `IOMMU_TEST_OP_MD_CHECK_IOTLB`: payload [`TestCheckIotlb`].
pub const IOMMU_TEST_OP_MD_CHECK_IOTLB: u32 = 14;
/// `IOMMU_TEST_OP_TRIGGER_IOPF`: payload [`TestTriggerIopf`].
pub const IOMMU_TEST_OP_TRIGGER_IOPF: u32 = 15;
/// `IOMMU_TEST_OP_DEV_CHECK_CACHE`: payload [`TestCheckDevCache`].
pub const IOMMU_TEST_OP_DEV_CHECK_CACHE: u32 = 16;
/// `IOMMU_TEST_OP_TRIGGER_VEVENT`: payload [`TestTriggerVevent`].
pub const IOMMU_TEST_OP_TRIGGER_VEVENT: u32 = 17;
/// `IOMMU_TEST_OP_PASID_ATTACH`: payload [`TestPasidAttach`].
pub const IOMMU_TEST_OP_PASID_ATTACH: u32 = 18;
/// `IOMMU_TEST_OP_PASID_REPLACE`: payload [`TestPasidReplace`].
pub const IOMMU_TEST_OP_PASID_REPLACE: u32 = 19;
/// `IOMMU_TEST_OP_PASID_DETACH`: payload [`TestPasidDetach`].
pub const IOMMU_TEST_OP_PASID_DETACH: u32 = 20;
/// `IOMMU_TEST_OP_PASID_CHECK_HWPT`: payload [`TestPasidCheck`].
pub const IOMMU_TEST_OP_PASID_CHECK_HWPT: u32 = 21;
/// `IOMMU_TEST_OP_DMABUF_GET`: payload [`TestDmabufGet`].
pub const IOMMU_TEST_OP_DMABUF_GET: u32 = 22;
/// `IOMMU_TEST_OP_DMABUF_REVOKE`: payload [`TestDmabufRevoke`].
pub const IOMMU_TEST_OP_DMABUF_REVOKE: u32 = 23;

/// `MOCK_IOMMUPT_DEFAULT`: the mock domain's default page table format.
pub const MOCK_IOMMUPT_DEFAULT: u32 = 0;
/// `MOCK_IOMMUPT_HUGE`: the mock domain's huge-page page table format.
pub const MOCK_IOMMUPT_HUGE: u32 = 1;

/// `MOCK_APERTURE_START`: first IOVA of a default mock domain.
pub const MOCK_APERTURE_START: u64 = 1 << 24;
/// `MOCK_APERTURE_LAST`: last IOVA of a default mock domain.
pub const MOCK_APERTURE_LAST: u64 = (1 << 31) - 1;
/// `MOCK_PAGE_SIZE`: page size of a default mock domain.
pub const MOCK_PAGE_SIZE: u64 = 2048;
/// `MOCK_HUGE_PAGE_SIZE`: huge page size of a default mock domain.
pub const MOCK_HUGE_PAGE_SIZE: u64 = 512 * MOCK_PAGE_SIZE;

/// `MOCK_FLAGS_ACCESS_WRITE`: `access_pages` pins for writing.
pub const MOCK_FLAGS_ACCESS_WRITE: u32 = 1 << 0;
/// `MOCK_FLAGS_ACCESS_SYZ`: `access_pages` from syzkaller (IOVA, not uptr).
pub const MOCK_FLAGS_ACCESS_SYZ: u32 = 1 << 16;

/// `MOCK_ACCESS_RW_WRITE`: `access_rw` writes.
pub const MOCK_ACCESS_RW_WRITE: u32 = 1 << 0;
/// `MOCK_ACCESS_RW_SLOW_PATH`: `access_rw` takes the slow path.
pub const MOCK_ACCESS_RW_SLOW_PATH: u32 = 1 << 2;

/// `MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES`: the access pins pages.
pub const MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES: u32 = 1 << 0;

/// `MOCK_FLAGS_DEVICE_NO_DIRTY`: the mock device has no dirty tracking.
pub const MOCK_FLAGS_DEVICE_NO_DIRTY: u32 = 1 << 0;
/// `MOCK_FLAGS_DEVICE_PASID`: the mock device supports PASID.
pub const MOCK_FLAGS_DEVICE_PASID: u32 = 1 << 2;

/// `MOCK_NESTED_DOMAIN_IOTLB_ID_MAX`: highest IOTLB index of a nested domain.
pub const MOCK_NESTED_DOMAIN_IOTLB_ID_MAX: u32 = 3;
/// `MOCK_NESTED_DOMAIN_IOTLB_NUM`: IOTLB entries of a nested mock domain.
pub const MOCK_NESTED_DOMAIN_IOTLB_NUM: u32 = 4;
/// `MOCK_DEV_CACHE_ID_MAX`: highest cache index of a mock device.
pub const MOCK_DEV_CACHE_ID_MAX: u32 = 3;
/// `MOCK_DEV_CACHE_NUM`: cache entries of a mock device.
pub const MOCK_DEV_CACHE_NUM: u32 = 4;

/// `IOMMU_TEST_PASID_RESERVED`: PASID reserved for the PASID replace test.
pub const IOMMU_TEST_PASID_RESERVED: u32 = 1024;
/// `MOCK_PASID_WIDTH`: PASID width of the mock device and IOMMU.
pub const MOCK_PASID_WIDTH: u8 = 20;

/// `IOMMU_HW_INFO_TYPE_SELFTEST`: `IOMMU_GET_HW_INFO` type of the mock
/// IOMMU, data [`IommuTestHwInfo`].
pub const IOMMU_HW_INFO_TYPE_SELFTEST: u32 = 0xfeedbeef;
/// `IOMMU_HW_INFO_SELFTEST_REGVAL`: `test_reg` of [`IommuTestHwInfo`].
pub const IOMMU_HW_INFO_SELFTEST_REGVAL: u32 = 0xdeadbeef;
/// `IOMMU_HWPT_DATA_SELFTEST`: `IOMMU_HWPT_ALLOC` data type of the mock
/// driver, data [`IommuHwptSelftest`].
pub const IOMMU_HWPT_DATA_SELFTEST: u32 = 0xdead;
/// `IOMMU_TEST_IOTLB_DEFAULT`: initial IOTLB value of a nested mock domain.
pub const IOMMU_TEST_IOTLB_DEFAULT: u32 = 0xbadbeef;
/// `IOMMU_TEST_DEV_CACHE_DEFAULT`: initial cache value of a mock device.
pub const IOMMU_TEST_DEV_CACHE_DEFAULT: u32 = 0xbaddad;
/// `IOMMU_HWPT_INVALIDATE_DATA_SELFTEST`: `IOMMU_HWPT_INVALIDATE` data type
/// of a nested mock domain, data [`IommuHwptInvalidateSelftest`].
pub const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST: u32 = 0xdeadbeef;
/// `IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID`: a rejected data type.
pub const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID: u32 = 0xdadbeef;
/// `IOMMU_TEST_INVALIDATE_FLAG_ALL`: invalidate every entry.
pub const IOMMU_TEST_INVALIDATE_FLAG_ALL: u32 = 1 << 0;
/// `IOMMU_VIOMMU_TYPE_SELFTEST`: vIOMMU type of the mock driver, data
/// [`IommuViommuSelftest`].
pub const IOMMU_VIOMMU_TYPE_SELFTEST: u32 = 0xdeadbeef;
/// `IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST`: `IOMMU_HWPT_INVALIDATE` data
/// type of a mock vIOMMU, data [`IommuViommuInvalidateSelftest`].
pub const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST: u32 = 0xdeadbeef;
/// `IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID`: a rejected data type.
pub const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID: u32 = 0xdadbeef;
/// `IOMMU_VEVENTQ_TYPE_SELFTEST`: vEVENTQ type of the mock driver, events
/// [`IommuViommuEventSelftest`].
pub const IOMMU_VEVENTQ_TYPE_SELFTEST: u32 = 0xbeefbeef;
/// `IOMMU_HW_QUEUE_TYPE_SELFTEST`: HW queue type of the mock driver.
pub const IOMMU_HW_QUEUE_TYPE_SELFTEST: u32 = 0xdeadbeef;
/// `IOMMU_TEST_HW_QUEUE_MAX`: HW queues per mock vIOMMU.
pub const IOMMU_TEST_HW_QUEUE_MAX: u32 = 2;

uapi_struct! {
    /// `struct iommu_test_cmd`: `IOMMU_TEST_CMD`, one selftest operation.
    ///
    /// The C struct has an unnamed union after `__reserved`; here it is the
    /// opaque `payload`, read and written as one of the `Test*` structs with
    /// [`Self::payload()`] and [`Self::set_payload()`].
    iommu_test_cmd => IommuTestCmd {
        /// `sizeof(struct iommu_test_cmd)`.
        size: u32,
        /// One of `IOMMU_TEST_OP_*`.
        op: u32,
        /// Object ID the operation applies to.
        id: u32,
        /// Must be 0.
        __reserved: u32,
        /// The op-specific union.
        payload: [u64; 6],
        /// Unused; `offsetofend(struct iommu_test_cmd, last)` is the minimum
        /// `size` the kernel accepts.
        last: u32,
        /// Tail padding to the struct's 8-byte alignment (unnamed in C).
        __pad: u32,
    }
}

/// Compile-time proof that `T` fits in the payload of [`IommuTestCmd`].
struct FitsTestPayload<T>(core::marker::PhantomData<T>);

impl<T> FitsTestPayload<T> {
    const OK: () = assert!(
        core::mem::size_of::<T>() <= IommuTestCmd::PAYLOAD_SIZE,
        "type is larger than the payload of struct iommu_test_cmd"
    );
}

impl IommuTestCmd {
    /// Size in bytes of the union in `struct iommu_test_cmd`.
    pub const PAYLOAD_SIZE: usize = core::mem::size_of::<[u64; 6]>();

    /// Reads `T` from the start of the payload. `T` must not be larger than
    /// [`Self::PAYLOAD_SIZE`] (checked at compile time).
    pub fn payload<T: FromBytes + KnownLayout + Immutable>(&self) -> T {
        let () = FitsTestPayload::<T>::OK;
        match T::read_from_prefix(self.payload.as_bytes()) {
            Ok((v, _)) => v,
            // Unreachable: `T` fits, as proved above.
            Err(_) => T::new_zeroed(),
        }
    }

    /// Sets the payload to `v` followed by zeroes. `T` must not be larger
    /// than [`Self::PAYLOAD_SIZE`] (checked at compile time).
    pub fn set_payload<T: IntoBytes + Immutable>(&mut self, v: &T) {
        let () = FitsTestPayload::<T>::OK;
        self.payload = [0; 6];
        // Cannot fail: `T` fits, as proved above.
        let _ = v.write_to_prefix(self.payload.as_mut_bytes());
    }
}

uapi_struct! {
    /// `add_reserved` of `struct iommu_test_cmd`: reserve an IOVA range.
    iommu_test_cmd.add_reserved => TestAddReserved {
        /// First IOVA.
        start: u64,
        /// Length in bytes.
        length: u64,
    }
}

uapi_struct! {
    /// `mock_domain` of `struct iommu_test_cmd`: create a mock device and
    /// attach it to the IOAS `id`.
    iommu_test_cmd.mock_domain => TestMockDomain {
        /// Output: the selftest device object.
        out_stdev_id: u32,
        /// Output: the attached HWPT.
        out_hwpt_id: u32,
        /// Output: the standard iommufd device (bind) object.
        out_idev_id: u32,
    }
}

uapi_struct! {
    /// `mock_domain_flags` of `struct iommu_test_cmd`: `mock_domain` with
    /// device flags.
    iommu_test_cmd.mock_domain_flags => TestMockDomainFlags {
        /// Output: the selftest device object.
        out_stdev_id: u32,
        /// Output: the attached HWPT.
        out_hwpt_id: u32,
        /// Output: the standard iommufd device (bind) object.
        out_idev_id: u32,
        /// `MOCK_FLAGS_DEVICE_*`.
        dev_flags: u32,
    }
}

uapi_struct! {
    /// `mock_domain_replace` of `struct iommu_test_cmd`: replace the page
    /// table of the selftest device `id`.
    iommu_test_cmd.mock_domain_replace => TestMockDomainReplace {
        /// Input: IOAS or HWPT to attach; output: the attached HWPT.
        pt_id: u32,
    }
}

uapi_struct! {
    /// `check_map` of `struct iommu_test_cmd`: check that an IOVA range maps
    /// the given user memory.
    iommu_test_cmd.check_map => TestCheckMap {
        /// First IOVA.
        iova: u64,
        /// Length in bytes.
        length: u64,
        /// User pointer the range must map.
        uptr: u64,
    }
}

uapi_struct! {
    /// `check_refs` of `struct iommu_test_cmd`: check page reference counts.
    iommu_test_cmd.check_refs => TestCheckRefs {
        /// Length in bytes.
        length: u64,
        /// User pointer to the pages.
        uptr: u64,
        /// Expected extra references of each page.
        refs: u32,
        /// Tail padding (unnamed in C).
        __pad: u32,
    }
}

uapi_struct! {
    /// `create_access` of `struct iommu_test_cmd`: create an in-kernel
    /// access to the IOAS `id`.
    iommu_test_cmd.create_access => TestCreateAccess {
        /// Output: the fd of the access.
        out_access_fd: u32,
        /// `MOCK_FLAGS_ACCESS_CREATE_*`.
        flags: u32,
    }
}

uapi_struct! {
    /// `destroy_access_pages` of `struct iommu_test_cmd`: unpin pages pinned
    /// through the access `id`.
    iommu_test_cmd.destroy_access_pages => TestDestroyAccessPages {
        /// The pinned pages to release.
        access_pages_id: u32,
    }
}

uapi_struct! {
    /// `access_pages` of `struct iommu_test_cmd`: pin pages through the
    /// access `id`.
    iommu_test_cmd.access_pages => TestAccessPages {
        /// `MOCK_FLAGS_ACCESS_*`.
        flags: u32,
        /// Output: ID of the pinned pages.
        out_access_pages_id: u32,
        /// First IOVA.
        iova: u64,
        /// Length in bytes.
        length: u64,
        /// User pointer the pages must match.
        uptr: u64,
    }
}

uapi_struct! {
    /// `access_rw` of `struct iommu_test_cmd`: read or write IOVA through
    /// the access `id`.
    iommu_test_cmd.access_rw => TestAccessRw {
        /// First IOVA.
        iova: u64,
        /// Length in bytes.
        length: u64,
        /// User buffer to copy from or to.
        uptr: u64,
        /// `MOCK_ACCESS_RW_*`.
        flags: u32,
        /// Tail padding (unnamed in C).
        __pad: u32,
    }
}

uapi_struct! {
    /// `memory_limit` of `struct iommu_test_cmd`: set the temporary memory
    /// limit for page batches.
    iommu_test_cmd.memory_limit => TestMemoryLimit {
        /// Limit in bytes.
        limit: u32,
    }
}

uapi_struct! {
    /// `access_replace_ioas` of `struct iommu_test_cmd`: move the access `id`
    /// to another IOAS.
    iommu_test_cmd.access_replace_ioas => TestAccessReplaceIoas {
        /// The new IOAS.
        ioas_id: u32,
    }
}

uapi_struct! {
    /// `dirty` of `struct iommu_test_cmd`: mark IOVA dirty in the mock domain
    /// `id` from a bitmap.
    iommu_test_cmd.dirty => TestDirty {
        /// Must be 0.
        flags: u32,
        /// Padding before `iova` (unnamed in C).
        __pad: u32,
        /// First IOVA.
        iova: u64,
        /// Length in bytes.
        length: u64,
        /// Bytes of IOVA each bit stands for.
        page_size: u64,
        /// User pointer to the bitmap.
        uptr: u64,
        /// Output: number of pages marked dirty.
        out_nr_dirty: u64,
    }
}

uapi_struct! {
    /// `check_iotlb` of `struct iommu_test_cmd`: check an IOTLB entry of the
    /// nested mock domain `id`.
    iommu_test_cmd.check_iotlb => TestCheckIotlb {
        /// IOTLB entry index.
        id: u32,
        /// Expected value.
        iotlb: u32,
    }
}

uapi_struct! {
    /// `trigger_iopf` of `struct iommu_test_cmd`: inject an I/O page fault.
    iommu_test_cmd.trigger_iopf => TestTriggerIopf {
        /// The faulting device.
        dev_id: u32,
        /// PASID of the fault.
        pasid: u32,
        /// Page request group index.
        grpid: u32,
        /// `IOMMU_PGFAULT_PERM_*`.
        perm: u32,
        /// Fault address.
        addr: u64,
    }
}

uapi_struct! {
    /// `check_dev_cache` of `struct iommu_test_cmd`: check a cache entry of
    /// the mock device `id`.
    iommu_test_cmd.check_dev_cache => TestCheckDevCache {
        /// Cache entry index.
        id: u32,
        /// Expected value.
        cache: u32,
    }
}

uapi_struct! {
    /// `trigger_vevent` of `struct iommu_test_cmd`: inject a vEVENT.
    iommu_test_cmd.trigger_vevent => TestTriggerVevent {
        /// The device the event is for.
        dev_id: u32,
    }
}

uapi_struct! {
    /// `pasid_attach` of `struct iommu_test_cmd`: attach a PASID of the
    /// selftest device `id`.
    iommu_test_cmd.pasid_attach => TestPasidAttach {
        /// The PASID.
        pasid: u32,
        /// IOAS or HWPT to attach.
        pt_id: u32,
    }
}

uapi_struct! {
    /// `pasid_replace` of `struct iommu_test_cmd`: replace the page table of
    /// a PASID of the selftest device `id`.
    iommu_test_cmd.pasid_replace => TestPasidReplace {
        /// The PASID.
        pasid: u32,
        /// IOAS or HWPT to attach.
        pt_id: u32,
    }
}

uapi_struct! {
    /// `pasid_detach` of `struct iommu_test_cmd`: detach a PASID of the
    /// selftest device `id`.
    iommu_test_cmd.pasid_detach => TestPasidDetach {
        /// The PASID.
        pasid: u32,
    }
}

uapi_struct! {
    /// `pasid_check` of `struct iommu_test_cmd`: check which HWPT a PASID of
    /// the selftest device `id` is attached to.
    iommu_test_cmd.pasid_check => TestPasidCheck {
        /// The PASID.
        pasid: u32,
        /// Expected HWPT, 0 for none.
        hwpt_id: u32,
    }
}

uapi_struct! {
    /// `dmabuf_get` of `struct iommu_test_cmd`: create a test dma-buf.
    iommu_test_cmd.dmabuf_get => TestDmabufGet {
        /// Length in bytes.
        length: u32,
        /// Flags for the new file (`O_CLOEXEC` etc.).
        open_flags: u32,
    }
}

uapi_struct! {
    /// `dmabuf_revoke` of `struct iommu_test_cmd`: revoke or restore a test
    /// dma-buf.
    iommu_test_cmd.dmabuf_revoke => TestDmabufRevoke {
        /// The dma-buf fd.
        dmabuf_fd: i32,
        /// Non-zero to revoke, 0 to restore.
        revoked: u32,
    }
}

uapi_struct! {
    /// `struct iommu_test_hw_info`: `IOMMU_GET_HW_INFO` data of the mock
    /// IOMMU (`IOMMU_HW_INFO_TYPE_SELFTEST`).
    iommu_test_hw_info => IommuTestHwInfo {
        /// Flags.
        flags: u32,
        /// `IOMMU_HW_INFO_SELFTEST_REGVAL`.
        test_reg: u32,
    }
}

uapi_struct! {
    /// `struct iommu_hwpt_selftest`: `IOMMU_HWPT_ALLOC` data of a nested mock
    /// domain (`IOMMU_HWPT_DATA_SELFTEST`).
    iommu_hwpt_selftest => IommuHwptSelftest {
        /// Initial IOTLB value, `IOMMU_TEST_IOTLB_DEFAULT`.
        iotlb: u32,
        /// `MOCK_IOMMUPT_*`.
        pagetable_type: u32,
    }
}

uapi_struct! {
    /// `struct iommu_hwpt_invalidate_selftest`: invalidation request for a
    /// nested mock domain (`IOMMU_HWPT_INVALIDATE_DATA_SELFTEST`).
    iommu_hwpt_invalidate_selftest => IommuHwptInvalidateSelftest {
        /// `IOMMU_TEST_INVALIDATE_FLAG_*`.
        flags: u32,
        /// IOTLB entry index, ignored with `IOMMU_TEST_INVALIDATE_FLAG_ALL`.
        iotlb_id: u32,
    }
}

uapi_struct! {
    /// `struct iommu_viommu_selftest`: `IOMMU_VIOMMU_ALLOC` data of a mock
    /// vIOMMU (`IOMMU_VIOMMU_TYPE_SELFTEST`).
    iommu_viommu_selftest => IommuViommuSelftest {
        /// Input: random data.
        in_data: u32,
        /// Output: `in_data` echoed back.
        out_data: u32,
        /// Output: `mmap` offset of the vIOMMU's page.
        out_mmap_offset: u64,
        /// Output: `mmap` length of the vIOMMU's page.
        out_mmap_length: u64,
    }
}

uapi_struct! {
    /// `struct iommu_viommu_invalidate_selftest`: invalidation request for a
    /// mock vIOMMU (`IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST`).
    iommu_viommu_invalidate_selftest => IommuViommuInvalidateSelftest {
        /// `IOMMU_TEST_INVALIDATE_FLAG_*`.
        flags: u32,
        /// Virtual device ID.
        vdev_id: u32,
        /// Cache entry index, ignored with `IOMMU_TEST_INVALIDATE_FLAG_ALL`.
        cache_id: u32,
    }
}

uapi_struct! {
    /// `struct iommu_viommu_event_selftest`: vEVENT of a mock vIOMMU
    /// (`IOMMU_VEVENTQ_TYPE_SELFTEST`).
    iommu_viommu_event_selftest => IommuViommuEventSelftest {
        /// Virtual device ID of the event.
        virt_id: u32,
    }
}

/// Every struct this crate shares with the C headers, for the layout test:
/// `(C name, size, fields, header)` where header is the C header that
/// defines it: `"iommufd.h"`, `"vfio.h"`, `"iommufd_test.h"` (upstream) or
/// `"iommufd_rs.h"` (extensions).
pub const ALL_LAYOUTS: &[(&str, usize, &[FieldLayout], &str)] = &[
    layout_entry::<IommuDestroy>("iommufd.h"),
    layout_entry::<IommuIoasAlloc>("iommufd.h"),
    layout_entry::<IommuIovaRange>("iommufd.h"),
    layout_entry::<IommuIoasIovaRanges>("iommufd.h"),
    layout_entry::<IommuIoasAllowIovas>("iommufd.h"),
    layout_entry::<IommuIoasMap>("iommufd.h"),
    layout_entry::<IommuIoasMapFile>("iommufd.h"),
    layout_entry::<IommuIoasNoiommuGetPa>("iommufd.h"),
    layout_entry::<IommuIoasCopy>("iommufd.h"),
    layout_entry::<IommuIoasUnmap>("iommufd.h"),
    layout_entry::<IommuOption>("iommufd.h"),
    layout_entry::<IommuVfioIoas>("iommufd.h"),
    layout_entry::<IommuIoasChangeProcess>("iommufd.h"),
    layout_entry::<IommuHwptAlloc>("iommufd.h"),
    layout_entry::<IommuHwInfo>("iommufd.h"),
    layout_entry::<IommuHwptSetDirtyTracking>("iommufd.h"),
    layout_entry::<IommuHwptGetDirtyBitmap>("iommufd.h"),
    layout_entry::<IommuHwptInvalidate>("iommufd.h"),
    layout_entry::<IommuHwptPgfault>("iommufd.h"),
    layout_entry::<IommuHwptPageResponse>("iommufd.h"),
    layout_entry::<IommuFaultAlloc>("iommufd.h"),
    layout_entry::<IommuViommuAlloc>("iommufd.h"),
    layout_entry::<IommuVdeviceAlloc>("iommufd.h"),
    layout_entry::<IommufdVeventHeader>("iommufd.h"),
    layout_entry::<IommuVeventqAlloc>("iommufd.h"),
    layout_entry::<IommuHwQueueAlloc>("iommufd.h"),
    layout_entry::<IommuRsInfo>("iommufd_rs.h"),
    layout_entry::<VfioInfoCapHeader>("vfio.h"),
    layout_entry::<VfioIommuType1Info>("vfio.h"),
    layout_entry::<VfioIovaRange>("vfio.h"),
    layout_entry::<VfioIommuType1InfoCapIovaRange>("vfio.h"),
    layout_entry::<VfioIommuType1InfoDmaAvail>("vfio.h"),
    layout_entry::<VfioIommuType1DmaMap>("vfio.h"),
    layout_entry::<VfioIommuType1DmaUnmap>("vfio.h"),
    layout_entry::<IommuTestCmd>("iommufd_test.h"),
    layout_entry::<TestAddReserved>("iommufd_test.h"),
    layout_entry::<TestMockDomain>("iommufd_test.h"),
    layout_entry::<TestMockDomainFlags>("iommufd_test.h"),
    layout_entry::<TestMockDomainReplace>("iommufd_test.h"),
    layout_entry::<TestCheckMap>("iommufd_test.h"),
    layout_entry::<TestCheckRefs>("iommufd_test.h"),
    layout_entry::<TestCreateAccess>("iommufd_test.h"),
    layout_entry::<TestDestroyAccessPages>("iommufd_test.h"),
    layout_entry::<TestAccessPages>("iommufd_test.h"),
    layout_entry::<TestAccessRw>("iommufd_test.h"),
    layout_entry::<TestMemoryLimit>("iommufd_test.h"),
    layout_entry::<TestAccessReplaceIoas>("iommufd_test.h"),
    layout_entry::<TestDirty>("iommufd_test.h"),
    layout_entry::<TestCheckIotlb>("iommufd_test.h"),
    layout_entry::<TestTriggerIopf>("iommufd_test.h"),
    layout_entry::<TestCheckDevCache>("iommufd_test.h"),
    layout_entry::<TestTriggerVevent>("iommufd_test.h"),
    layout_entry::<TestPasidAttach>("iommufd_test.h"),
    layout_entry::<TestPasidReplace>("iommufd_test.h"),
    layout_entry::<TestPasidDetach>("iommufd_test.h"),
    layout_entry::<TestPasidCheck>("iommufd_test.h"),
    layout_entry::<TestDmabufGet>("iommufd_test.h"),
    layout_entry::<TestDmabufRevoke>("iommufd_test.h"),
    layout_entry::<IommuTestHwInfo>("iommufd_test.h"),
    layout_entry::<IommuHwptSelftest>("iommufd_test.h"),
    layout_entry::<IommuHwptInvalidateSelftest>("iommufd_test.h"),
    layout_entry::<IommuViommuSelftest>("iommufd_test.h"),
    layout_entry::<IommuViommuInvalidateSelftest>("iommufd_test.h"),
    layout_entry::<IommuViommuEventSelftest>("iommufd_test.h"),
];

const fn layout_entry<T: UapiLayout>(
    header: &'static str,
) -> (&'static str, usize, &'static [FieldLayout], &'static str) {
    (T::C_NAME, core::mem::size_of::<T>(), T::FIELDS, header)
}
