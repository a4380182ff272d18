//! The gather: IOTLB invalidations and freed table pages of one operation.
//!
//! Changing a live page table is only half the job: the IOMMU may still
//! hold the old translations (IOTLB) and the old table pointers (walk
//! caches), so a table page taken out of the tree must not be reused until
//! an invalidation covering it has completed. The engine records every
//! changed IOVA range and every detached table here; [`Gather::sync`]
//! issues one invalidation for the merged range and only then frees the
//! pages. The type is `#[must_use]`: forgetting the sync is a compile-time
//! warning, and dropping an unsynced gather still syncs, so a table is
//! never freed early nor leaked.
//!
//! Detached tables are chained through their own first item (upstream
//! uses `struct page`'s list head, which Rust cannot reach without a
//! shim). That is safe while a stale walk may still read them: a table is
//! only detached once every entry in it is cleared (or, when a leaf
//! replaces an empty subtree, holds only pointers to other detached
//! tables), and the link word keeps bits 1:0 clear, which is a
//! not-present entry in every format (ARM V, VT-d R/W, x86 P, AMD PR). So
//! the gather needs no memory, never fails, never flushes early, and is a
//! few words on the stack of every map and unmap.

use super::{TableMem, TablePage};

/// How the driver invalidates its IOTLB and walk caches.
pub trait IotlbFlush {
    /// Invalidates translations of `iova..=last`. `leaf_only` is true when
    /// no table page was detached, so walk caches need not be touched (the
    /// VT-d IH hint, the SMMUv3 leaf TLBI).
    fn flush(&self, iova: u64, last: u64, leaf_only: bool);
}

/// A driver without IOTLB (the mock), or a table that no IOMMU uses yet.
pub struct NoFlush;

impl IotlbFlush for NoFlush {
    fn flush(&self, _iova: u64, _last: u64, _leaf_only: bool) {}
}

/// End of the chain of detached tables: an address no table has, with
/// bits 11:0 clear (a not-present entry).
const END: u64 = !0xfff;

/// Pending invalidation and table frees; see the module documentation.
#[must_use = "page-table changes reach the IOMMU only when the gather is synced"]
pub struct Gather<'a, M: TableMem> {
    mem: &'a M,
    flush: &'a dyn IotlbFlush,
    /// First and last IOVA to invalidate; `first > last` when empty.
    first: u64,
    last: u64,
    /// The last detached table: its physical address with its log2 size
    /// in bits 7:2 (tables are 4 KiB aligned at least); each table's item
    /// 0 links to the previous one the same way; [`END`] ends the chain.
    freed: u64,
    /// Invalidations issued so far, for tests and statistics.
    flushes: u32,
}

impl<'a, M: TableMem> Gather<'a, M> {
    /// An empty gather that invalidates through `flush` and frees into
    /// `mem`.
    pub fn new(mem: &'a M, flush: &'a dyn IotlbFlush) -> Self {
        Self {
            mem,
            flush,
            first: u64::MAX,
            last: 0,
            freed: END,
            flushes: 0,
        }
    }

    /// Records that the translations of `iova..iova + len` changed.
    #[inline]
    pub fn add_range(&mut self, iova: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.first = self.first.min(iova);
        self.last = self.last.max(iova.saturating_add(len - 1));
    }

    /// Queues the detached table at `phys` of `2^size_lg2` bytes (whose VA
    /// span the caller has added with [`Self::add_range`]) to be freed
    /// after the invalidation. Every entry of the table must be
    /// not-present or point at another detached table.
    pub fn free_table(&mut self, phys: u64, size_lg2: u32) {
        let link = self.mem.phys_to_virt(phys);
        // SAFETY: `phys` is a live table of `mem` that the caller detached,
        // so only this gather writes it; the link is a not-present entry
        // for any walker still holding a stale pointer (module docs).
        unsafe { &*link }.store(self.freed, core::sync::atomic::Ordering::Relaxed);
        self.freed = phys | u64::from(size_lg2) << 2;
    }

    /// True if this gather frees into `mem` (a table only accepts its own
    /// gathers: the links go into its tables).
    pub fn belongs_to(&self, mem: &M) -> bool {
        core::ptr::eq(self.mem, mem)
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.first > self.last && self.freed == END
    }

    /// The pending range as `(first, last)`, if any.
    pub fn range(&self) -> Option<(u64, u64)> {
        (self.first <= self.last).then_some((self.first, self.last))
    }

    /// Invalidations issued by this gather so far.
    pub fn flushes(&self) -> u32 {
        self.flushes
    }

    fn sync_now(&mut self) {
        if self.is_empty() {
            return;
        }
        if self.first <= self.last {
            self.flush.flush(self.first, self.last, self.freed == END);
            self.flushes += 1;
        }
        while self.freed != END {
            let (phys, size_lg2) = (self.freed & !0xfff, ((self.freed >> 2) & 63) as u32);
            let Some(page) = TablePage::of(self.mem, phys, size_lg2) else {
                break;
            };
            // SAFETY: item 0 of a queued table holds the link (see
            // `free_table`); the table is still live.
            self.freed = unsafe { page.virt.as_ref() }.load(core::sync::atomic::Ordering::Relaxed);
            // SAFETY: the page was detached from the tree before it was
            // queued and the invalidation above has completed, so neither
            // the CPU nor the IOMMU can reach it.
            unsafe { self.mem.free(page) };
        }
        self.first = u64::MAX;
        self.last = 0;
    }

    /// Invalidates the gathered range, then frees the detached tables.
    /// Returns how many invalidations were issued in total.
    pub fn sync(mut self) -> u32 {
        self.sync_now();
        self.flushes
    }
}

impl<M: TableMem> Drop for Gather<'_, M> {
    fn drop(&mut self) {
        self.sync_now();
    }
}
