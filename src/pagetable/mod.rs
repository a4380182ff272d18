//! IOMMU page tables: one generic engine, many formats.
//!
//! The layout follows the kernel's `generic_pt`: a *format* says how one
//! entry is encoded at one level ([`Format`]); the *engine* ([`engine`])
//! holds every algorithm (map with the best page size per step, unmap with
//! upstream's rules, `iova_to_phys`, dirty read-and-clear, teardown) once,
//! monomorphised per format and per level; a [`Gather`](gather::Gather)
//! collects IOTLB invalidations and the table pages to free after them.
//!
//! Formats live with their drivers: ARM VMSAv8-64 in `drivers::smmuv3`,
//! VT-d second and first stage in `drivers::vtd`, the selftest mock (AMDv1
//! with a 2 KiB granule) in `drivers::mock`. Each driver also has a
//! *walker model* written from the architecture specification, separately
//! from the encoder, that reads tables through [`PhysMem`] the way the
//! hardware would; the tests use it as the oracle.
//!
//! Table memory comes from the platform layer ([`TableMem`]): kernel pages
//! in the module, a simulated physical address space on the host.

pub mod engine;
pub mod gather;
#[cfg(all(MODULE, CONFIG_IOMMU_IO_PGTABLE_LPAE))]
mod iopgtable;
#[cfg(MODULE)]
pub(crate) mod kbench;
#[cfg(MODULE)]
mod kunit;

use core::sync::atomic::AtomicU64;

/// `IOMMU_READ`: the device may read.
pub const PROT_READ: u32 = 1 << 0;
/// `IOMMU_WRITE`: the device may write.
pub const PROT_WRITE: u32 = 1 << 1;
/// `IOMMU_CACHE`: DMA is cache coherent.
pub const PROT_CACHE: u32 = 1 << 2;
/// `IOMMU_NOEXEC`: no instruction fetch.
pub const PROT_NOEXEC: u32 = 1 << 3;
/// `IOMMU_MMIO`: device memory.
pub const PROT_MMIO: u32 = 1 << 4;
/// `IOMMU_PRIV`: privileged accesses only.
pub const PROT_PRIV: u32 = 1 << 5;

/// Physical memory as a hardware table walker sees it.
///
/// Walker models read tables only through this trait, so they never depend
/// on how the engine or the platform lay memory out.
pub trait PhysMem {
    /// The little-endian 64-bit word at physical address `pa` (8-byte
    /// aligned); `None` if no memory is there.
    fn read_u64(&self, pa: u64) -> Option<u64>;
    /// Atomically replaces `old` by `new` at `pa`, as hardware updates
    /// access/dirty bits; false if the word was not `old` or there is no
    /// memory at `pa`.
    fn cmpxchg_u64(&self, pa: u64, old: u64, new: u64) -> bool;
}

/// One table page (or group of pages) handed out by a [`TableMem`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TablePage {
    /// Where the CPU reads and writes the items.
    pub virt: core::ptr::NonNull<AtomicU64>,
    /// What the hardware (and a parent entry) points at.
    pub phys: u64,
    /// log2 of the size in bytes.
    pub size_lg2: u32,
}

impl TablePage {
    /// The handle of the live table of `mem` at `phys`, of `2^size_lg2`
    /// bytes (`None` only if `mem` maps it nowhere).
    pub fn of<M: TableMem>(mem: &M, phys: u64, size_lg2: u32) -> Option<Self> {
        let virt = core::ptr::NonNull::new(mem.phys_to_virt(phys).cast_mut())?;
        Some(Self {
            virt,
            phys,
            size_lg2,
        })
    }
}

// SAFETY: a `TablePage` is a handle to memory that is only accessed through
// atomics; the engine's range-exclusivity contract decides who writes.
unsafe impl Send for TablePage {}
// SAFETY: as above.
unsafe impl Sync for TablePage {}

/// Allocator of page-table memory.
///
/// # Safety
///
/// Implementations must return zeroed memory of at least `1 << size_lg2`
/// bytes, aligned to its size, that stays valid until freed, and
/// `phys_to_virt` must invert the `phys` of every live page for every
/// address inside it.
pub unsafe trait TableMem: Sync {
    /// A zeroed table of `1 << size_lg2` bytes; `None` if out of memory.
    fn alloc(&self, size_lg2: u32) -> Option<TablePage>;
    /// Frees a table.
    ///
    /// # Safety
    ///
    /// `page` came from `alloc` of this allocator and nothing (CPU or
    /// hardware walker, after the IOTLB flush) references it any more.
    unsafe fn free(&self, page: TablePage);
    /// The CPU address of the item at physical address `pa`, which lies in
    /// a live table of this allocator.
    fn phys_to_virt(&self, pa: u64) -> *const AtomicU64;
}

// SAFETY: forwards to `T`, which upholds the contract.
unsafe impl<T: TableMem> TableMem for &T {
    fn alloc(&self, size_lg2: u32) -> Option<TablePage> {
        (**self).alloc(size_lg2)
    }

    unsafe fn free(&self, page: TablePage) {
        // SAFETY: the caller's promise is passed on unchanged.
        unsafe { (**self).free(page) }
    }

    fn phys_to_virt(&self, pa: u64) -> *const AtomicU64 {
        (**self).phys_to_virt(pa)
    }
}
