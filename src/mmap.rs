//! `mmap` regions of a `/dev/iommu` file: pages an object (a vIOMMU) lets
//! userspace map at an offset it was given.
//!
//! `mmap` runs under the process's `mmap_lock`, while ioctls hold the
//! context lock and may fault user pages in (taking `mmap_lock`), so the
//! table has a lock of its own that nests inside both and under which
//! nothing else is taken. A mapping holds a `users` reference on the
//! owner (`IOMMU_DESTROY` is `EBUSY` while mapped); taking it fails once a
//! destroy has claimed the object.

use crate::errno::{Result, EINVAL, ENOSPC, ENXIO};
use crate::object::Object;
use crate::platform::{Arc, LeafMutex, MmapPages, PVec, VecExt, PAGE_SIZE};

/// One registered region.
struct Region {
    offset: u64,
    length: u64,
    pfn: u64,
    owner: Arc<Object>,
}

struct Inner {
    regions: PVec<Region>,
}

/// The regions of one file.
pub struct MmapTable {
    inner: LeafMutex<Inner>,
}

/// What a successful lookup maps: `length` bytes from page frame `pfn`,
/// with a `users` reference taken on `owner` for the VMA.
pub struct MmapTarget {
    /// First page frame.
    pub pfn: u64,
    /// The owner (its counter is handed to the VMA).
    pub owner: Arc<Object>,
}

impl MmapTable {
    /// An empty table.
    pub fn new() -> Result<Self> {
        Ok(Self {
            inner: LeafMutex::new(Inner {
                regions: PVec::new(),
            })?,
        })
    }

    /// The lowest page-aligned offset from `PAGE_SIZE` (0 is never handed
    /// out) where `length` bytes fit between the registered regions, as
    /// upstream's `mtree_alloc_range`; a withdrawn region's range is free
    /// again. The caller registers the region under the same context lock
    /// before anyone else can allocate.
    pub fn alloc_offset(&self, length: u64) -> Result<u64> {
        let length = length.checked_next_multiple_of(PAGE_SIZE).ok_or(EINVAL)?;
        let g = self.inner.lock();
        let mut off = PAGE_SIZE;
        loop {
            let end = off.checked_add(length).ok_or(ENOSPC)?;
            // Skip past the furthest region overlapping the candidate.
            let clash = g
                .regions
                .iter()
                .filter(|r| r.offset < end && off < r.offset.saturating_add(r.length))
                .map(|r| r.offset.saturating_add(r.length))
                .max();
            match clash {
                None => return Ok(off),
                Some(e) => off = e.checked_next_multiple_of(PAGE_SIZE).ok_or(ENOSPC)?,
            }
        }
    }

    /// Makes room for one more region, so that [`Self::register`] cannot
    /// fail once the owner is complete (it must be the last step before
    /// publishing: a region can be mapped as soon as it is registered).
    pub fn reserve(&self) -> Result {
        self.inner.lock().regions.try_reserve_for(1)
    }

    /// Makes `pages` mappable at `offset` on behalf of `owner` (after
    /// [`Self::reserve`], without allocating).
    pub fn register(&self, offset: u64, pages: &MmapPages, owner: &Arc<Object>) -> Result {
        let mut g = self.inner.lock();
        g.regions.try_push(Region {
            offset,
            length: pages.len(),
            pfn: pages.pfn(),
            owner: owner.clone(),
        })
    }

    /// Withdraws the region at `offset` (existing mappings stay valid
    /// until unmapped: their owner cannot be destroyed before).
    pub fn unregister(&self, offset: u64) {
        let mut g = self.inner.lock();
        g.regions.retain(|r| r.offset != offset);
    }

    /// The region mapped by an `mmap` of `length` bytes at byte `offset`:
    /// only a whole region at its exact offset (`ENXIO` otherwise). Takes
    /// a `users` reference on the owner for the new VMA.
    pub fn lookup(&self, offset: u64, length: u64) -> Result<MmapTarget> {
        let g = self.inner.lock();
        let r = g
            .regions
            .iter()
            .find(|r| r.offset == offset && r.length == length)
            .ok_or(ENXIO)?;
        if !r.owner.try_hold_raw() {
            return Err(ENXIO);
        }
        Ok(MmapTarget {
            pfn: r.pfn,
            owner: r.owner.clone(),
        })
    }
}
