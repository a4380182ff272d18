//! Intel VT-d and its first- and second-stage page-table formats.

pub mod walker;

pub mod pagetable;
