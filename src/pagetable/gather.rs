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

/// Detached tables held inline; a full gather syncs early rather than
/// allocate (an unmap must not fail for lack of memory). Small, because a
/// gather lives on the stack of every map and unmap.
const MAX_FREED: usize = 16;

/// Pending invalidation and table frees; see the module documentation.
#[must_use = "page-table changes reach the IOMMU only when the gather is synced"]
pub struct Gather<'a, M: TableMem> {
    mem: &'a M,
    flush: &'a dyn IotlbFlush,
    /// First and last IOVA to invalidate; `first > last` when empty.
    first: u64,
    last: u64,
    /// Physical address of each detached table with its log2 size in the
    /// low bits (tables are at least 64-byte aligned).
    freed: [u64; MAX_FREED],
    nfreed: usize,
    /// Invalidations issued so far (early syncs included), for tests and
    /// statistics.
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
            freed: [0; MAX_FREED],
            nfreed: 0,
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
    /// after the invalidation.
    pub fn free_table(&mut self, phys: u64, size_lg2: u32) {
        if self.nfreed == MAX_FREED {
            self.sync_now();
        }
        if let Some(slot) = self.freed.get_mut(self.nfreed) {
            *slot = phys | u64::from(size_lg2);
            self.nfreed += 1;
        }
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.first > self.last && self.nfreed == 0
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
            self.flush.flush(self.first, self.last, self.nfreed == 0);
            self.flushes += 1;
        }
        for &slot in self.freed.iter().take(self.nfreed) {
            if let Some(page) = TablePage::of(self.mem, slot & !63, (slot & 63) as u32) {
                // SAFETY: the page was detached from the tree before it was
                // queued and the invalidation above has completed, so
                // neither the CPU nor the IOMMU can reach it.
                unsafe { self.mem.free(page) };
            }
        }
        self.nfreed = 0;
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
