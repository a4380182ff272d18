//! Intel VT-d and its first- and second-stage page-table formats.

pub mod pagetable;
