//! iommufd-rs: the `/dev/iommu` unified IOMMU uAPI as a Rust-for-Linux module.
//!
//! One crate, two builds. Kbuild compiles this file as the root of the module
//! `iommufd_rs.ko` (with `--cfg MODULE`); cargo compiles it as the host
//! library `iommufd_rs` for tests and benchmarks. Everything except
//! [`platform`]'s kernel backend and the `kmod` glue is portable and is the
//! same code in both builds.

#![cfg_attr(MODULE, allow(unreachable_pub))]

pub mod errno;
pub mod platform;

#[cfg(MODULE)]
#[path = "../uapi/src/lib.rs"]
pub mod uapi;
#[cfg(not(MODULE))]
pub use iommufd_uapi as uapi;

pub mod device_bind;
pub mod drivers;
pub mod hw_pagetable;
pub mod ioas;
pub mod mmap;
pub mod object;
pub mod pagetable;
pub mod pasid;
pub mod ucmd;

#[cfg(MODULE)]
mod kmod;

#[cfg(MODULE)]
kernel::prelude::module! {
    type: kmod::IommufdRs,
    name: "iommufd_rs",
    authors: ["The iommufd-rs developers"],
    description: "iommufd-compatible /dev/iommu in Rust",
    license: "GPL",
    params: {
        pt_bench: bool {
            default: false,
            description: "Benchmark the page-table engine against io-pgtable-arm at load (kernel log)",
        },
    },
}
