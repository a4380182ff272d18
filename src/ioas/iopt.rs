//! The IO page table of an IOAS (upstream's `io_pagetable`): areas, the
//! reserved and allowed IOVA ranges, the IOVA allocator and alignment, and
//! the copy of every area into every attached domain.
//!
//! Portable and lock-free: the IOAS keeps it in a [`crate::platform::CtxCell`]
//! and every operation runs under the file's context lock.

use super::pages::{DomainView, FillId, Pages, PhysRun};
use crate::errno::{Result, EADDRINUSE, EBUSY, EEXIST, EINVAL, ENOENT, ENOSPC, EOVERFLOW, EPERM};
use crate::hw_pagetable::DomainRef;
use crate::platform::{Arc, Held, PVec, VecExt, PAGE_SIZE};

/// `IOMMU_READ` / `IOMMU_WRITE` / `IOMMU_CACHE` as upstream's iommu_map().
pub mod prot {
    /// Device reads allowed.
    pub const READ: u32 = 1;
    /// Device writes allowed.
    pub const WRITE: u32 = 2;
    /// Cache coherent (always set: iommufd offers no cache maintenance).
    pub const CACHE: u32 = 4;
}

/// The largest alignment the allocator looks for (a PMD: the huge page a
/// THP-backed buffer may use).
const MAX_ALLOC_ALIGN: u64 = 2 << 20;

/// Who reserved an IOVA range: removed together when the owner goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResvOwner {
    /// `IOMMU_TEST_OP_ADD_RESERVED` (never removed).
    Test,
    /// A domain's aperture (cookie of the domain).
    Domain(u64),
    /// A device's reserved regions (device object ID).
    Device(u32),
}

#[derive(Clone, Copy, Debug)]
struct Reserved {
    start: u64,
    last: u64,
    owner: ResvOwner,
}

/// A mapping: IOVA `iova..=last` shows bytes `start_byte..` of `pages`.
pub struct Area {
    /// First IOVA.
    pub iova: u64,
    /// Last IOVA (inclusive).
    pub last: u64,
    /// The pages shown.
    pub pages: Arc<Pages>,
    /// Offset of `iova` in the pages' byte space (page 0 starts at 0).
    pub start_byte: u64,
    /// `prot::*` bits.
    pub prot: u32,
    /// The area's fill (its pages pinned and mapped into the domains).
    fill: Option<FillId>,
    /// Access pins taken through this area.
    pub num_accesses: u32,
    /// Objects that keep the area from being unmapped (`EBUSY`).
    pub num_locks: u32,
}

impl Area {
    /// Length in bytes.
    pub fn length(&self) -> u64 {
        self.last - self.iova + 1
    }

    /// The byte in the pages that `iova` (inside the area) shows.
    pub fn start_byte_of(&self, iova: u64) -> u64 {
        self.start_byte + (iova - self.iova)
    }

    /// The page index `iova` (inside the area) falls in.
    pub fn index_of(&self, iova: u64) -> u64 {
        self.start_byte_of(iova) / PAGE_SIZE
    }

    fn page_range(&self) -> (u64, u64) {
        (self.index_of(self.iova), self.index_of(self.last))
    }
}

/// A slice of pages to map: what `IOAS_MAP` creates and `IOAS_COPY` takes
/// from its source.
pub struct PagesSlice {
    /// The pages.
    pub pages: Arc<Pages>,
    /// First byte in the pages' byte space.
    pub start_byte: u64,
    /// Bytes.
    pub length: u64,
}

/// An IOAS's page table.
pub struct Iopt {
    areas: PVec<Area>,
    reserved: PVec<Reserved>,
    allowed: PVec<(u64, u64)>,
    domains: PVec<DomainRef>,
    /// (access cookie, alignment) of every attached access.
    accesses: PVec<(u64, u64)>,
    iova_alignment: u64,
    disable_large_pages: bool,
}

impl Default for Iopt {
    fn default() -> Self {
        Self::new()
    }
}

fn roundup_pow_of_two(v: u64) -> u64 {
    v.checked_next_power_of_two().unwrap_or(1 << 63)
}

/// `ALIGN_UP(start, align) | page_offset` fits `length` bytes before `last`.
fn fit(start: u64, last: u64, length: u64, align: u64, page_offset: u64) -> Option<u64> {
    let aligned = (start.checked_add(align - 1)? & !(align - 1)) | page_offset;
    if aligned >= last || last - aligned < length - 1 {
        return None;
    }
    Some(aligned)
}

impl Iopt {
    /// An empty page table.
    pub fn new() -> Self {
        Self {
            areas: PVec::new(),
            reserved: PVec::new(),
            allowed: PVec::new(),
            domains: PVec::new(),
            accesses: PVec::new(),
            iova_alignment: 1,
            disable_large_pages: false,
        }
    }

    /// The alignment every area's IOVA, length and page offset must have.
    pub fn iova_alignment(&self) -> u64 {
        self.iova_alignment
    }

    /// True when huge IOPTEs are disabled (`IOMMU_OPTION_HUGE_PAGES` = 0).
    pub fn large_pages_disabled(&self) -> bool {
        self.disable_large_pages
    }

    /// The areas, sorted by IOVA.
    pub fn areas(&self) -> &[Area] {
        &self.areas
    }

    /// Mutable areas (for lock counts).
    pub fn areas_mut(&mut self) -> &mut [Area] {
        &mut self.areas
    }

    /// The attached domains.
    pub fn domains(&self) -> &[DomainRef] {
        &self.domains
    }

    /// Index of the first area ending at or after `iova`.
    fn area_index(&self, iova: u64) -> usize {
        self.areas.partition_point(|a| a.last < iova)
    }

    /// The first area intersecting `start..=last`.
    pub fn first_area(&self, start: u64, last: u64) -> Option<usize> {
        let i = self.area_index(start);
        self.areas.get(i).filter(|a| a.iova <= last).map(|_| i)
    }

    fn reserved_hits(&self, start: u64, last: u64) -> bool {
        self.reserved
            .iter()
            .any(|r| r.start <= last && r.last >= start)
    }

    fn allowed_hits(&self, start: u64, last: u64) -> bool {
        self.allowed.iter().any(|&(s, l)| s <= last && l >= start)
    }

    /// Recomputes the IOVA alignment from the domains, accesses and the
    /// huge-page option.
    fn calc_alignment(&self) -> u64 {
        let mut a = if self.disable_large_pages {
            PAGE_SIZE
        } else {
            1
        };
        for d in self.domains.iter() {
            a = a.max(d.min_page_size());
        }
        for &(_, al) in self.accesses.iter() {
            a = a.max(al);
        }
        a
    }

    /// `EADDRINUSE` unless every area conforms to `align`.
    fn check_alignment(&self, align: u64) -> Result {
        let m = align - 1;
        let bad = self
            .areas
            .iter()
            .any(|a| a.iova & m != 0 || a.length() & m != 0 || (a.start_byte % PAGE_SIZE) & m != 0);
        if bad {
            Err(EADDRINUSE)
        } else {
            Ok(())
        }
    }

    /// Checks a fixed IOVA: aligned (`EINVAL`), no overflow, not reserved
    /// (`EINVAL`), not mapped (`EEXIST`).
    pub fn check_iova(&self, iova: u64, length: u64) -> Result {
        if iova & (self.iova_alignment - 1) != 0 {
            return Err(EINVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(EOVERFLOW)?;
        if self.reserved_hits(iova, last) {
            return Err(EINVAL);
        }
        if self.first_area(iova, last).is_some() {
            return Err(EEXIST);
        }
        Ok(())
    }

    /// Used (reserved or mapped) intervals intersecting `start..=last`, in
    /// order of start, calling `f(hole_start, hole_last)` for each hole
    /// until it returns `Some`.
    fn for_each_hole<R>(
        &self,
        start: u64,
        last: u64,
        mut f: impl FnMut(u64, u64) -> Option<R>,
    ) -> Option<R> {
        let mut used: PVec<(u64, u64)> = PVec::new();
        for r in self.reserved.iter() {
            if r.start <= last && r.last >= start {
                used.try_push((r.start, r.last)).ok()?;
            }
        }
        let mut i = self.area_index(start);
        while let Some(a) = self.areas.get(i) {
            if a.iova > last {
                break;
            }
            used.try_push((a.iova, a.last)).ok()?;
            i += 1;
        }
        used.sort_unstable();
        let mut pos = start;
        for &(s, l) in used.iter() {
            if s > pos {
                if let Some(r) = f(pos, s - 1) {
                    return Some(r);
                }
            }
            if l >= last {
                return None;
            }
            pos = pos.max(l + 1);
        }
        if pos <= last {
            return f(pos, last);
        }
        None
    }

    /// Picks a free IOVA for `length` bytes that will show user address (or
    /// file offset) `addr`: aligned like `addr` up to the length's power of
    /// two (at most a PMD), keeping `addr`'s offset in its page, inside the
    /// allowed ranges, never 0. `ENOSPC` if there is no hole.
    pub fn alloc_iova(&self, addr: u64, length: u64) -> Result<u64> {
        if length == 0 || length >= u64::MAX / 2 {
            return Err(EOVERFLOW);
        }
        let page_offset = addr % PAGE_SIZE;
        let mut align = if addr == 0 {
            roundup_pow_of_two(length)
        } else {
            roundup_pow_of_two(length).min(1 << addr.trailing_zeros())
        };
        align = align.min(MAX_ALLOC_ALIGN);
        if align < self.iova_alignment {
            return Err(EINVAL);
        }
        let (lo, hi) = (PAGE_SIZE, u64::MAX - PAGE_SIZE);
        // As upstream's span walk: the start is aligned first, then the holes
        // between reserved ranges and areas are searched from there.
        let try_span = |s: u64, l: u64| -> Option<u64> {
            let start = fit(s, l, length, align, page_offset)?;
            self.for_each_hole(start, l, |hs, hl| fit(hs, hl, length, align, page_offset))
        };
        if self.allowed.is_empty() {
            return try_span(lo, hi).ok_or(ENOSPC);
        }
        // Adjacent allowed ranges form one span.
        let mut i = 0;
        while i < self.allowed.len() {
            let (s, mut l) = self.allowed[i];
            while i + 1 < self.allowed.len() && l.checked_add(1) == Some(self.allowed[i + 1].0) {
                i += 1;
                l = self.allowed[i].1;
            }
            i += 1;
            if l < lo || s > hi {
                continue;
            }
            if let Some(iova) = try_span(s.max(lo), l.min(hi)) {
                return Ok(iova);
            }
        }
        Err(ENOSPC)
    }

    /// Reserves `start..=last` for `owner`; `EADDRINUSE` if mapped or allowed.
    pub fn reserve(&mut self, start: u64, last: u64, owner: ResvOwner) -> Result {
        if self.first_area(start, last).is_some() || self.allowed_hits(start, last) {
            return Err(EADDRINUSE);
        }
        let i = self.reserved.partition_point(|r| r.start < start);
        self.reserved.try_insert(i, Reserved { start, last, owner })
    }

    /// Drops every reservation of `owner`.
    pub fn unreserve(&mut self, owner: ResvOwner) {
        let mut i = 0;
        while i < self.reserved.len() {
            if self.reserved[i].owner == owner {
                self.reserved.remove_at(i);
            } else {
                i += 1;
            }
        }
    }

    /// Replaces the allowed ranges (sorted, non-overlapping, validated by
    /// the caller); `EADDRINUSE` with nothing changed if one is reserved.
    pub fn set_allowed(&mut self, allowed: PVec<(u64, u64)>) -> Result {
        if allowed.iter().any(|&(s, l)| self.reserved_hits(s, l)) {
            return Err(EADDRINUSE);
        }
        self.allowed = allowed;
        Ok(())
    }

    /// The holes between reserved ranges over the whole IOVA space
    /// (`IOMMU_IOAS_IOVA_RANGES`), in order.
    pub fn iova_ranges(&self, mut f: impl FnMut(u64, u64) -> Result) -> Result {
        let mut used: PVec<(u64, u64)> = PVec::new();
        for r in self.reserved.iter() {
            used.try_push((r.start, r.last))?;
        }
        used.sort_unstable();
        let mut pos = 0u64;
        for &(s, l) in used.iter() {
            if s > pos {
                f(pos, s - 1)?;
            }
            if l == u64::MAX {
                return Ok(());
            }
            pos = pos.max(l + 1);
        }
        f(pos, u64::MAX)
    }

    /// Maps `slices` back to back at a fixed `iova` or (`None`) an allocated
    /// one, into every domain; returns the IOVA.
    pub fn map_pages(
        &mut self,
        held: &Held<'_>,
        slices: &[PagesSlice],
        iova: Option<u64>,
        prot: u32,
    ) -> Result<u64> {
        let mut length = 0u64;
        for s in slices {
            length = length.checked_add(s.length).ok_or(EOVERFLOW)?;
        }
        if length == 0 || length & (self.iova_alignment - 1) != 0 {
            return Err(EINVAL);
        }
        let first = slices.first().ok_or(EINVAL)?;
        let iova = match iova {
            Some(iova) => {
                self.check_iova(iova, length)?;
                iova
            }
            None => self.alloc_iova(first.pages.base() + first.start_byte, length)?,
        };
        // Build and check every area before touching any domain.
        let mut new: PVec<Area> = PVec::new();
        let mut at = iova;
        for s in slices {
            if prot & prot::WRITE != 0 && !s.pages.writable() {
                return Err(EPERM);
            }
            if (s.start_byte % PAGE_SIZE) & (self.iova_alignment - 1) != 0 {
                return Err(EINVAL);
            }
            let last = at.checked_add(s.length - 1).ok_or(EOVERFLOW)?;
            let end_byte = s.start_byte.checked_add(s.length - 1).ok_or(EOVERFLOW)?;
            if end_byte / PAGE_SIZE >= s.pages.npages() {
                return Err(EOVERFLOW);
            }
            new.try_push(Area {
                iova: at,
                last,
                pages: s.pages.clone(),
                start_byte: s.start_byte,
                prot,
                fill: None,
                num_accesses: 0,
                num_locks: 0,
            })?;
            at = last.wrapping_add(1);
        }
        self.areas.try_reserve_for(new.len())?;
        for i in 0..new.len() {
            if let Err(e) = fill(held, &self.domains, &mut new[i], !self.disable_large_pages) {
                for a in new[..i].iter_mut() {
                    unfill(held, &self.domains, a);
                }
                return Err(e);
            }
        }
        let pos = self.area_index(iova);
        // Capacity was reserved, so these inserts cannot fail.
        while let Some(a) = new.pop() {
            self.areas.try_insert(pos, a)?;
        }
        Ok(iova)
    }

    /// Removes area `i` (no accesses, no locks): unmapped from the domains,
    /// unpinned; returns its length.
    pub fn remove_area(&mut self, held: &Held<'_>, i: usize) -> Result<u64> {
        let a = self.areas.get(i).ok_or(ENOENT)?;
        if a.num_locks != 0 || a.num_accesses != 0 {
            return Err(EBUSY);
        }
        let mut a = self.areas.remove_at(i).ok_or(ENOENT)?;
        unfill(held, &self.domains, &mut a);
        Ok(a.length())
    }

    /// Attaches a domain: the alignment may grow (`EADDRINUSE` if an area
    /// does not conform, `EINVAL` past `PAGE_SIZE`), its aperture is
    /// reserved, and every area is mapped into it.
    pub fn add_domain(&mut self, held: &Held<'_>, d: &DomainRef) -> Result {
        let align = self.iova_alignment.max(d.min_page_size());
        if align > PAGE_SIZE {
            return Err(EINVAL);
        }
        if align != self.iova_alignment {
            self.check_alignment(align)?;
        }
        let owner = ResvOwner::Domain(d.cookie());
        let (start, last) = d.aperture();
        let res = (|| {
            if start != 0 {
                self.reserve(0, start - 1, owner)?;
            }
            if last != u64::MAX {
                self.reserve(last + 1, u64::MAX, owner)?;
            }
            self.domains.try_reserve_for(1)
        })();
        if let Err(e) = res {
            self.unreserve(owner);
            return Err(e);
        }
        // The first domain pins the areas (pinning is lazy); later ones map
        // what is pinned already.
        let first_domain = self.domains.is_empty();
        let large = !self.disable_large_pages;
        let one = core::slice::from_ref(d);
        let mut res = Ok(());
        let mut done = 0;
        for area in self.areas.iter_mut() {
            res = if first_domain {
                fill(held, one, area, large)
            } else if area.fill.is_some() {
                map_area(held, area, d, large)
            } else {
                Ok(())
            };
            if res.is_err() {
                break;
            }
            done += 1;
        }
        if let Err(e) = res {
            for area in self.areas[..done].iter_mut() {
                if first_domain {
                    unfill(held, one, area);
                } else if area.fill.is_some() {
                    let _ = d.unmap(held, area.iova, area.length());
                }
            }
            self.unreserve(owner);
            return Err(e);
        }
        self.domains.try_push(d.clone())?;
        self.iova_alignment = align;
        Ok(())
    }

    /// Detaches a domain: its mappings and aperture reservations go; the
    /// last domain's departure unpins every area.
    pub fn remove_domain(&mut self, held: &Held<'_>, d: &DomainRef) {
        let Some(pos) = self.domains.iter().position(|x| Arc::ptr_eq(x, d)) else {
            return;
        };
        if self.domains.len() == 1 {
            // The last domain: the fills end (their pages are read back from
            // it), then it is emptied.
            for area in self.areas.iter_mut() {
                unfill(held, core::slice::from_ref(d), area);
            }
        } else {
            // Fills read their pages from the first domain: move them to
            // the next one before this one is emptied.
            if pos == 0 {
                let next = &self.domains[1];
                for area in self.areas.iter() {
                    if let Some(id) = area.fill {
                        let _ = area.pages.set_fill_domain(held, id, next);
                    }
                }
            }
            for area in self.areas.iter() {
                if area.fill.is_some() {
                    let _ = d.unmap(held, area.iova, area.length());
                }
            }
        }
        self.domains.remove_at(pos);
        self.unreserve(ResvOwner::Domain(d.cookie()));
        self.iova_alignment = self.calc_alignment();
    }

    /// The exporter revoked dma-buf `id`: its areas leave every domain.
    pub fn revoke_dmabuf(&mut self, held: &Held<'_>, id: usize) -> Result {
        for i in 0..self.areas.len() {
            if self.areas[i].pages.dmabuf_id(held)? == Some(id) {
                unfill(held, &self.domains, &mut self.areas[i]);
            }
        }
        Ok(())
    }

    /// Registers an access with its alignment (`EADDRINUSE` if areas do not
    /// conform).
    pub fn add_access(&mut self, cookie: u64, align: u64) -> Result {
        let new = self.iova_alignment.max(align);
        if new != self.iova_alignment {
            self.check_alignment(new)?;
        }
        self.accesses.try_push((cookie, align))?;
        self.iova_alignment = new;
        Ok(())
    }

    /// Unregisters an access.
    pub fn remove_access(&mut self, cookie: u64) {
        if let Some(i) = self.accesses.iter().position(|&(c, _)| c == cookie) {
            self.accesses.remove_at(i);
        }
        self.iova_alignment = self.calc_alignment();
    }

    /// `IOMMU_OPTION_HUGE_PAGES` = 0: forces `PAGE_SIZE` alignment;
    /// `EINVAL` while a domain holds areas (its IOPTEs may be huge),
    /// `EADDRINUSE` if an area is misaligned.
    pub fn disable_large_pages(&mut self) -> Result {
        if self.disable_large_pages {
            return Ok(());
        }
        if !self.domains.is_empty() && !self.areas.is_empty() {
            return Err(EINVAL);
        }
        let new = self.iova_alignment.max(PAGE_SIZE);
        if new != self.iova_alignment {
            self.check_alignment(new)?;
        }
        self.disable_large_pages = true;
        self.iova_alignment = new;
        Ok(())
    }

    /// `IOMMU_OPTION_HUGE_PAGES` = 1.
    pub fn enable_large_pages(&mut self) {
        self.disable_large_pages = false;
        self.iova_alignment = self.calc_alignment();
    }

    /// Walks the areas covering `iova..=last` contiguously, calling `f` with
    /// each area index and the covered sub-range; `ENOENT` at a gap.
    pub fn for_each_contig(
        &mut self,
        iova: u64,
        last: u64,
        mut f: impl FnMut(&mut Area, u64, u64) -> Result,
    ) -> Result {
        let mut cur = iova;
        let mut i = self.area_index(iova);
        loop {
            let Some(a) = self.areas.get_mut(i) else {
                return Err(ENOENT);
            };
            if a.iova > cur {
                return Err(ENOENT);
            }
            let end = a.last.min(last);
            f(a, cur, end)?;
            if end == last {
                return Ok(());
            }
            cur = end + 1;
            i += 1;
        }
    }

    /// Slices of pages backing `iova..iova + length` contiguously
    /// (`IOAS_COPY`); `ENOENT` at a gap.
    pub fn get_pages(&mut self, iova: u64, length: u64) -> Result<PVec<PagesSlice>> {
        if length == 0 {
            return Err(EINVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(EOVERFLOW)?;
        let mut out = PVec::new();
        self.for_each_contig(iova, last, |a, s, l| {
            out.try_push(PagesSlice {
                pages: a.pages.clone(),
                start_byte: a.start_byte_of(s),
                length: l - s + 1,
            })
        })?;
        Ok(out)
    }

    /// VFIO type1 (v1) compatibility: splits areas so that `iova` becomes
    /// the last byte of one. `EINVAL` when the split is impossible
    /// (accesses, possible huge IOPTEs, misalignment).
    pub fn cut(&mut self, held: &Held<'_>, iova: u64) -> Result {
        let Some(i) = self.first_area(iova, iova) else {
            return Ok(());
        };
        let a = &self.areas[i];
        if iova == a.iova || iova == a.last {
            return Ok(());
        }
        let new_start = iova + 1;
        let align = self.iova_alignment;
        if new_start & (align - 1) != 0 || (a.start_byte_of(new_start)) & (align - 1) != 0 {
            return Err(EINVAL);
        }
        if a.num_locks != 0 {
            // A HW queue's lock covers the area as a whole.
            return Err(EBUSY);
        }
        if a.num_accesses != 0 || (a.fill.is_some() && !self.disable_large_pages) {
            return Err(EINVAL);
        }
        self.areas.try_reserve_for(1)?;
        let a = &mut self.areas[i];
        // Both halves keep their pages in the same domains; a page that
        // straddles the cut is covered by both fills.
        let fill = match a.fill {
            Some(id) => Some(a.pages.split_fill(
                held,
                id,
                a.start_byte_of(iova),
                a.start_byte_of(new_start),
            )?),
            None => None,
        };
        let rhs = Area {
            iova: new_start,
            last: a.last,
            pages: a.pages.clone(),
            start_byte: a.start_byte_of(new_start),
            prot: a.prot,
            fill,
            num_accesses: 0,
            num_locks: a.num_locks,
        };
        a.last = iova;
        // Capacity was reserved, so this cannot fail.
        self.areas.try_insert(i + 1, rhs)
    }
}

/// Pins an area's pages and maps it into `domains` (nothing without
/// domains: pinning is lazy; nothing for a revoked dma-buf, which is mapped
/// nowhere until it is mapped again). All or nothing.
fn fill(held: &Held<'_>, domains: &[DomainRef], area: &mut Area, large: bool) -> Result {
    let Some(first_domain) = domains.first() else {
        return Ok(());
    };
    if area.fill.is_some() || area.pages.revoked(held)? {
        return Ok(());
    }
    let (first, last) = area.page_range();
    let view = DomainView {
        domain: first_domain.clone(),
        iova0: area.iova.wrapping_sub(area.start_byte),
        first_byte: area.start_byte,
        last_byte: area.start_byte + (area.length() - 1),
    };
    let mut mapped = 0u64;
    let mut map = |r: &PhysRun| -> Result {
        let (iova, phys, len) = area_piece(area, r);
        for (i, d) in domains.iter().enumerate() {
            if let Err(e) = map_piece(held, d, iova, phys, len, area.prot, large) {
                for d in &domains[..i] {
                    let _ = d.unmap(held, iova, len);
                }
                return Err(e);
            }
        }
        mapped += len;
        Ok(())
    };
    match area.pages.fill(held, first, last, view, &mut map) {
        Ok(id) => {
            area.fill = Some(id);
            Ok(())
        }
        Err(e) => {
            // The pages already let go of the prefix that was mapped.
            if mapped != 0 {
                for d in domains {
                    let _ = d.unmap(held, area.iova, mapped);
                }
            }
            Err(e)
        }
    }
}

/// Undoes [`fill`]: drops the fill's pins (reading the pages back from the
/// domain first), then unmaps the area from `domains`.
fn unfill(held: &Held<'_>, domains: &[DomainRef], area: &mut Area) {
    let Some(id) = area.fill.take() else {
        return;
    };
    let _ = area.pages.release_fill(held, id);
    for d in domains {
        let _ = d.unmap(held, area.iova, area.length());
    }
}

/// The IOVA, physical address and length the pages of `r` show in `area`
/// (the first and last page may be shown in part).
fn area_piece(area: &Area, r: &PhysRun) -> (u64, u64, u64) {
    let end_byte = area.start_byte + area.length();
    let from = area.start_byte.max(r.index * PAGE_SIZE);
    let to = end_byte.min((r.index + r.count) * PAGE_SIZE);
    let iova = area.iova + (from - area.start_byte);
    let phys = r.phys + (from - r.index * PAGE_SIZE);
    (iova, phys, to - from)
}

/// Maps one physically contiguous piece into `d`: at once, or page by page
/// when huge IOPTEs are disabled (`!large`). All or nothing.
fn map_piece(
    held: &Held<'_>,
    d: &DomainRef,
    iova: u64,
    phys: u64,
    len: u64,
    prot: u32,
    large: bool,
) -> Result {
    if large {
        return d.map(held, iova, phys, len, prot);
    }
    let mut done = 0u64;
    while done < len {
        let n = (PAGE_SIZE - (iova + done) % PAGE_SIZE).min(len - done);
        if let Err(e) = d.map(held, iova + done, phys + done, n, prot) {
            if done != 0 {
                let _ = d.unmap(held, iova, done);
            }
            return Err(e);
        }
        done += n;
    }
    Ok(())
}

/// Maps a filled `area` into one more domain `d`, reading its pages from
/// the domain that holds them. All or nothing.
fn map_area(held: &Held<'_>, area: &Area, d: &DomainRef, large: bool) -> Result {
    let Some(id) = area.fill else {
        return Ok(());
    };
    let mut mapped = 0u64;
    let res = area.pages.read_fill(held, id, &mut |r| {
        let (iova, phys, len) = area_piece(area, r);
        map_piece(held, d, iova, phys, len, area.prot, large)?;
        mapped += len;
        Ok(())
    });
    if res.is_err() && mapped != 0 {
        let _ = d.unmap(held, area.iova, mapped);
    }
    res
}
