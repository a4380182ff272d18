//! IOMMU drivers: each implements the page-table formats and domain
//! operations of one kind of hardware.

pub mod mock;
pub mod smmuv3;
pub mod vtd;
