//! The `/dev/iommu` uAPI as Rust types: the structs of upstream's
//! `include/uapi/linux/iommufd.h` this project serves, and the iommufd-rs
//! extensions declared in `uapi/include/linux/iommufd_rs.h`.
//!
//! Every struct is `#[repr(C)]`, size-first and free of padding, so it can be
//! copied to and from user memory as bytes (zerocopy). Each struct also
//! records the C name and the offset of every field so that a test can compare
//! the layout with the C headers (`uapi/tests/layout.rs`).
//!
//! The file is the root of the `iommufd-uapi` crate in the host build and a
//! plain module (`crate::uapi`) of the kernel module, which gets `zerocopy`
//! from the kernel's vendored copy.

#![cfg_attr(not(MODULE), no_std)]

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
    /// The struct's C tag (`struct <C_NAME>`).
    const C_NAME: &'static str;
    /// Every field, in declaration order.
    const FIELDS: &'static [FieldLayout];
}

macro_rules! uapi_struct {
    ($(#[$meta:meta])* $c_name:ident => $name:ident {
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
            const C_NAME: &'static str = stringify!($c_name);
            const FIELDS: &'static [FieldLayout] = &[
                $(FieldLayout {
                    name: stringify!($field),
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

/// Every struct this crate shares with the C headers, for the layout test:
/// `(C name, size, fields, header)` where header is `"iommufd.h"` for
/// upstream structs and `"iommufd_rs.h"` for extensions.
pub const ALL_LAYOUTS: &[(&str, usize, &[FieldLayout], &str)] = &[
    layout_entry::<IommuDestroy>("iommufd.h"),
    layout_entry::<IommuIoasAlloc>("iommufd.h"),
    layout_entry::<IommuRsInfo>("iommufd_rs.h"),
];

const fn layout_entry<T: UapiLayout>(
    header: &'static str,
) -> (&'static str, usize, &'static [FieldLayout], &'static str) {
    (T::C_NAME, core::mem::size_of::<T>(), T::FIELDS, header)
}
