//! ARM SMMUv3 and its VMSAv8-64 stage-1/stage-2 page-table formats.

pub mod pagetable;

pub mod walker;
