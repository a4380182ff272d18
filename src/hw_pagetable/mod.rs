//! Hardware page tables (HWPT_PAGING, HWPT_NESTED), dirty tracking and
//! invalidation, on top of the page-table formats in `drivers/`.
