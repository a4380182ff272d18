//! The kernel's own ARM page-table code, `io-pgtable-arm`
//! (`ARM_64_LPAE_S1`, 4K granule), through `kernel::iommu::pgtable`: the
//! reference our ARM stage-1 format is compared with by KUnit
//! (`kunit.rs`) and timed against by the benchmark (`kbench.rs`). Only
//! built when the kernel has `CONFIG_IOMMU_IO_PGTABLE_LPAE` (on x86 that
//! needs `COMPILE_TEST`, see `config/kernel.fragment`).

use crate::pagetable::{PROT_CACHE, PROT_MMIO, PROT_NOEXEC, PROT_PRIV, PROT_READ, PROT_WRITE};
use kernel::prelude::{EINVAL, GFP_KERNEL};

/// The page sizes io-pgtable-arm is configured with (4K granule).
pub(crate) const IOP_PGSIZES: u64 =
    (kernel::sizes::SZ_4K | kernel::sizes::SZ_2M | kernel::sizes::SZ_1G) as u64;

// Our prot flags are passed to io-pgtable unchanged.
const _: () = {
    use kernel::iommu::pgtable::prot;
    assert!(PROT_READ == prot::READ && PROT_WRITE == prot::WRITE && PROT_CACHE == prot::CACHE);
    assert!(
        PROT_NOEXEC == prot::NOEXEC && PROT_MMIO == prot::MMIO && PROT_PRIV == prot::PRIVILEGED
    );
};

/// The page size and page count of the next `map_pages`/`unmap_pages`
/// call for `len` bytes at `iova` → `pa`, as the IOMMU core splits a range
/// for io-pgtable: the largest size of `sizes` that both addresses are
/// aligned to and that fits, repeated up to the point where the next
/// larger size becomes usable (or to the end). `None` if no size fits.
pub(crate) fn pgsize_split(sizes: u64, iova: u64, pa: u64, len: u64) -> Option<(u64, u64)> {
    if len == 0 {
        return None;
    }
    // Sizes up to the highest bit of `len`, then up to the alignment.
    let mut fit = sizes & (u64::MAX >> len.leading_zeros());
    let align = iova | pa;
    if align != 0 {
        fit &= u64::MAX >> (63 - align.trailing_zeros());
    }
    if fit == 0 {
        return None;
    }
    let lg2 = 63 - fit.leading_zeros();
    let mut span = len;
    let larger = sizes & !(u64::MAX >> (63 - lg2));
    if larger != 0 {
        let next = 1u64 << larger.trailing_zeros();
        // The larger size is reachable only if both addresses reach its
        // alignment at the same point.
        if (iova ^ pa) & (next - 1) == 0 {
            let to_boundary = next - (align & (next - 1));
            if to_boundary.checked_add(next).is_some_and(|e| e <= len) {
                span = to_boundary;
            }
        }
    }
    Some((1u64 << lg2, span >> lg2))
}

/// The kernel's io-pgtable-arm: `ARM_64_LPAE_S1`, 4K granule, 48-bit input
/// and output, coherent walk, no-op TLB maintenance (the binding's). The
/// table is never programmed into an IOMMU.
pub(crate) struct IoPgtable<'a>(
    pub(crate) kernel::iommu::pgtable::IoPageTable<'a, kernel::iommu::pgtable::ARM64LPAES1>,
);

impl<'a> IoPgtable<'a> {
    pub(crate) fn new(
        dev: &'a kernel::device::Device<kernel::device::Bound>,
    ) -> kernel::error::Result<Self> {
        let cfg = kernel::iommu::pgtable::Config {
            quirks: 0,
            pgsize_bitmap: IOP_PGSIZES as usize,
            ias: 48,
            oas: 48,
            coherent_walk: true,
        };
        kernel::iommu::pgtable::IoPageTable::new(dev, cfg).map(Self)
    }

    /// Physical address of the top table.
    pub(crate) fn ttbr(&self) -> u64 {
        // SAFETY: this only reads the configuration. No device ever walks
        // this table, so it may be dropped whenever its owner likes.
        unsafe { self.0.ttbr() }
    }

    /// Maps `len` bytes at `iova` to `pa` in the pieces [`pgsize_split`]
    /// chooses, calling `map_pages` again after a partial map.
    ///
    /// # Safety
    ///
    /// Nothing in `iova..iova + len` is mapped, and no other operation on
    /// this table runs concurrently.
    pub(crate) unsafe fn map(
        &self,
        iova: u64,
        pa: u64,
        len: u64,
        prot: u32,
    ) -> kernel::error::Result {
        let (mut iova, mut pa, mut left) = (iova, pa, len);
        while left > 0 {
            let (pgsize, count) = pgsize_split(IOP_PGSIZES, iova, pa, left).ok_or(EINVAL)?;
            // SAFETY: the range is unmapped and ours alone (the caller's
            // promise); the table is not live, so mapping any address is
            // harmless.
            let (mapped, r) = unsafe {
                self.0.map_pages(
                    iova as usize,
                    pa,
                    pgsize as usize,
                    count as usize,
                    prot,
                    GFP_KERNEL,
                )
            };
            r?;
            if mapped == 0 {
                return Err(EINVAL);
            }
            iova += mapped as u64;
            pa += mapped as u64;
            left = left.saturating_sub(mapped as u64);
        }
        Ok(())
    }

    /// Unmaps what [`Self::map`] mapped with the same arguments; returns
    /// the bytes unmapped.
    ///
    /// # Safety
    ///
    /// `iova..iova + len` was mapped by `map(iova, pa, len, _)`, and no
    /// other operation on this table runs concurrently.
    pub(crate) unsafe fn unmap(&self, iova: u64, pa: u64, len: u64) -> u64 {
        let (mut iova, mut pa, mut left, mut done) = (iova, pa, len, 0);
        while left > 0 {
            let Some((pgsize, count)) = pgsize_split(IOP_PGSIZES, iova, pa, left) else {
                break;
            };
            // SAFETY: the same split as the map produced, so the range
            // holds consecutive mappings of exactly these pages (the
            // caller's promise); nothing runs concurrently.
            let n = unsafe {
                self.0
                    .unmap_pages(iova as usize, pgsize as usize, count as usize)
            };
            if n == 0 {
                break;
            }
            iova += n as u64;
            pa += n as u64;
            done += n as u64;
            left = left.saturating_sub(n as u64);
        }
        done
    }

    /// io-pgtable's own lookup (0 if unmapped). The Rust binding has no
    /// wrapper for it, so it goes through the raw ops.
    pub(crate) fn iova_to_phys(&self, iova: u64) -> u64 {
        let ops = self.0.raw_ops();
        // SAFETY: `ops` is the live `io_pgtable_ops` of this table (the
        // binding's invariant); `iova_to_phys` only reads the tables, and
        // every operation on this table runs on the calling thread.
        unsafe {
            match (*ops).iova_to_phys {
                Some(f) => f(ops, iova as usize),
                None => 0,
            }
        }
    }
}
