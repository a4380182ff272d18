//! Pinned pages behind IOAS areas, shared by every area, domain, copy and
//! access that uses them (upstream's `iopt_pages`).
//!
//! A [`Pages`] covers a page-aligned run of user memory (or of a memfd).
//! Nothing is pinned when it is created. Consumers register as *users* of a
//! page range: an area filled into its IOAS's domains ([`Pages::fill`]) or
//! an in-kernel access ([`Pages::pin_access`]). A page is pinned from the
//! source (and charged) while at least one user covers it, so it is pinned
//! exactly once however many domains, copies and accesses use it.
//!
//! The memory cost follows what is pinned, not what is mapped: as upstream,
//! the page addresses of a filled area live only in the domain it was mapped
//! into (read back through the domain when they are needed again); an
//! access keeps its own pages as physically contiguous runs (one entry per
//! huge folio). The per-`Pages` state is the user list, a few words per
//! user.

use crate::errno::{Errno as Error, Result, EFAULT, EINVAL, EOVERFLOW};
use crate::hw_pagetable::DomainRef;
use crate::platform::{arc_new, Arc, CtxCell, Held, PVec, PageRef, PinSource, VecExt, PAGE_SIZE};

/// Pages pinned per call into the source: bounds the time spent in one GUP
/// call and the size of the batch buffer.
const PIN_BATCH: usize = 512;

/// What was mapped: user memory, or a memfd (the only kind that can move to
/// another process with `IOMMU_IOAS_CHANGE_PROCESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagesKind {
    /// A user VA range.
    User,
    /// A memfd range.
    File,
}

/// Pages `index..index + count`, physically contiguous from `phys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysRun {
    /// First page index.
    pub index: u64,
    /// Physical address of that page.
    pub phys: u64,
    /// Number of pages.
    pub count: u64,
}

impl PhysRun {
    fn last(&self) -> u64 {
        self.index + self.count - 1
    }

    /// The part of the run inside `first..=last`, if any.
    fn clip(&self, first: u64, last: u64) -> Option<PhysRun> {
        let s = self.index.max(first);
        let e = self.last().min(last);
        (s <= e).then(|| PhysRun {
            index: s,
            phys: self.phys + (s - self.index) * PAGE_SIZE,
            count: e - s + 1,
        })
    }

    /// Extends the run by `other` if it continues it in index and address.
    fn absorb(&mut self, other: &PhysRun) -> bool {
        if self.index + self.count == other.index
            && self.phys + self.count * PAGE_SIZE == other.phys
        {
            self.count += other.count;
            true
        } else {
            false
        }
    }
}

/// Where a filled area's pages are mapped: byte `b` of the pages (for `b`
/// in `first_byte..=last_byte`) is at IOVA `iova0 + b` of `domain`.
pub struct DomainView {
    /// The domain holding the page addresses.
    pub domain: DomainRef,
    /// The IOVA of byte 0 of the pages (wrapping: the area may start past it).
    pub iova0: u64,
    /// First byte of the pages the area shows.
    pub first_byte: u64,
    /// Last byte of the pages the area shows.
    pub last_byte: u64,
}

/// Identifies a fill user (held by its area).
pub type FillId = u64;

enum Holder {
    /// An area filled into domains; the addresses are in the view's domain.
    Fill { id: FillId, view: DomainView },
    /// An in-kernel access; its pages, sorted by index.
    Access { runs: PVec<PhysRun> },
}

struct PinUser {
    first: u64,
    last: u64,
    holder: Holder,
}

struct PinState {
    users: PVec<PinUser>,
    /// Pages covered by at least one user (pinned and charged).
    npinned: usize,
    next_id: FillId,
}

/// A shared, lazily pinned page run.
pub struct Pages {
    src: CtxCell<PinSource>,
    npages: u64,
    writable: bool,
    kind: PagesKind,
    /// The user address (or file offset) of page 0, for IOVA alignment.
    base: u64,
    st: CtxCell<PinState>,
}

impl Pages {
    /// Pages for `length` bytes starting `start_byte` into page 0 of `src`.
    pub fn new(
        src: PinSource,
        base: u64,
        start_byte: u64,
        length: u64,
        writable: bool,
    ) -> Result<Arc<Self>> {
        if length == 0 || length > u64::MAX - 2 * PAGE_SIZE {
            return Err(EINVAL);
        }
        let end = start_byte.checked_add(length).ok_or(EOVERFLOW)?;
        let kind = if src.is_file() {
            PagesKind::File
        } else {
            PagesKind::User
        };
        arc_new(Self {
            src: CtxCell::new(src),
            npages: end.div_ceil(PAGE_SIZE),
            writable,
            kind,
            base,
            st: CtxCell::new(PinState {
                users: PVec::new(),
                npinned: 0,
                next_id: 1,
            }),
        })
    }

    /// Number of pages covered.
    pub fn npages(&self) -> u64 {
        self.npages
    }

    /// True if the pages were mapped writable (and are pinned for write).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// User memory or memfd.
    pub fn kind(&self) -> PagesKind {
        self.kind
    }

    /// The user address (or file offset) of page 0.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The pinning source (for accounting-mode and owner changes).
    pub fn source<'a>(&'a self, held: &'a Held<'_>) -> Result<core::cell::RefMut<'a, PinSource>> {
        self.src.get(held)
    }

    /// True while the pages are a revoked dma-buf (not mapped anywhere).
    pub fn revoked(&self, held: &Held<'_>) -> Result<bool> {
        Ok(self.src.get(held)?.revoked())
    }

    /// The dma-buf identity, for dma-buf pages.
    pub fn dmabuf_id(&self, held: &Held<'_>) -> Result<Option<usize>> {
        Ok(self.src.get(held)?.dmabuf_id())
    }

    /// Pages currently pinned.
    pub fn npinned(&self, held: &Held<'_>) -> Result<usize> {
        Ok(self.st.get(held)?.npinned)
    }

    /// Bytes of kernel memory the pin state takes (the benchmark's memory
    /// figure and the tests' proof that it follows pins, not mappings).
    pub fn state_bytes(&self, held: &Held<'_>) -> Result<usize> {
        let st = self.st.get(held)?;
        let mut n = st.users.capacity() * core::mem::size_of::<PinUser>();
        for u in st.users.iter() {
            if let Holder::Access { runs } = &u.holder {
                n += runs.capacity() * core::mem::size_of::<PhysRun>();
            }
        }
        Ok(n)
    }

    fn check_range(&self, first: u64, last: u64) -> Result {
        if first > last || last >= self.npages {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Registers an area filled into domains over pages `first..=last`:
    /// pins what no other user holds and hands every page, in physically
    /// contiguous runs, to `map`, which must have mapped the run into the
    /// view's domain (and any others) when it returns `Ok`. On failure
    /// nothing stays pinned for this call, and `map` runs that succeeded
    /// must be unmapped by the caller (a prefix of the area).
    pub fn fill(
        &self,
        held: &Held<'_>,
        first: u64,
        last: u64,
        view: DomainView,
        map: &mut dyn FnMut(&PhysRun) -> Result,
    ) -> Result<FillId> {
        self.check_range(first, last)?;
        let mut st = self.st.get(held)?;
        st.users.try_reserve_for(1)?;
        let id = st.next_id;
        st.next_id += 1;
        let mut user = PinUser {
            first,
            last,
            holder: Holder::Fill { id, view },
        };
        let src = self.src.get(held)?;
        match self.add_pages(held, &src, &mut st, &mut user, map) {
            Ok(()) => {
                st.users.try_push(user)?;
                Ok(id)
            }
            Err((e, done)) => {
                self.drop_partial(held, &src, &mut st, user, done);
                Err(e)
            }
        }
    }

    /// Pins pages `first..=last` for an in-kernel access and appends them
    /// to `out` in order. All or nothing. Undone by
    /// [`Self::unpin_access`] with the same range.
    pub fn pin_access(
        &self,
        held: &Held<'_>,
        first: u64,
        last: u64,
        out: &mut PVec<PageRef>,
    ) -> Result {
        self.check_range(first, last)?;
        let mut st = self.st.get(held)?;
        st.users.try_reserve_for(1)?;
        let mut user = PinUser {
            first,
            last,
            holder: Holder::Access { runs: PVec::new() },
        };
        let src = self.src.get(held)?;
        let start = out.len();
        let mut push = |r: &PhysRun| -> Result {
            out.try_reserve_for(r.count as usize)?;
            for i in 0..r.count {
                out.try_push(PageRef::from_phys(r.phys + i * PAGE_SIZE))?;
            }
            Ok(())
        };
        match self.add_pages(held, &src, &mut st, &mut user, &mut push) {
            Ok(()) => {
                st.users.try_push(user)?;
                Ok(())
            }
            Err((e, done)) => {
                self.drop_partial(held, &src, &mut st, user, done);
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Drops an access pin of exactly `first..=last`; pages no other user
    /// holds are unpinned and uncharged.
    pub fn unpin_access(&self, held: &Held<'_>, first: u64, last: u64) -> Result {
        let mut st = self.st.get(held)?;
        let pos = st.users.iter().position(|u| {
            u.first == first && u.last == last && matches!(u.holder, Holder::Access { .. })
        });
        let Some(pos) = pos else {
            crate::warn_once!("iommufd_rs: unbalanced unpin of pages {first}..={last}");
            return Err(EINVAL);
        };
        self.remove_user(held, &mut st, pos)
    }

    /// Ends a fill: pages no other user holds are unpinned, their addresses
    /// read back from the fill's domain. Must run before the caller unmaps
    /// the area from that domain.
    pub fn release_fill(&self, held: &Held<'_>, id: FillId) -> Result {
        let mut st = self.st.get(held)?;
        let pos = st.users.iter().position(|u| u.fill_id() == Some(id));
        let Some(pos) = pos else {
            crate::warn_once!("iommufd_rs: release of an unknown fill {id}");
            return Err(EINVAL);
        };
        self.remove_user(held, &mut st, pos)
    }

    /// Takes user `pos` off the list and releases what only it held.
    fn remove_user(&self, held: &Held<'_>, st: &mut PinState, pos: usize) -> Result {
        let user = st.users.remove_at(pos).ok_or(EINVAL)?;
        let src = self.src.get(held)?;
        release(held, &src, st, &user);
        Ok(())
    }

    /// The fill now reads its addresses from `domain` (which maps the area
    /// too): its old domain is about to be detached.
    pub fn set_fill_domain(&self, held: &Held<'_>, id: FillId, domain: &DomainRef) -> Result {
        let mut st = self.st.get(held)?;
        for u in st.users.iter_mut() {
            if let Holder::Fill { id: uid, view } = &mut u.holder {
                if *uid == id {
                    view.domain = domain.clone();
                    return Ok(());
                }
            }
        }
        Err(EINVAL)
    }

    /// Splits fill `id` for a VFIO cut: it keeps `..=lhs_last_byte`, a new
    /// fill (returned) takes `rhs_first_byte..`. A page holding both bytes
    /// is covered by both halves, as it is mapped by both areas.
    pub fn split_fill(
        &self,
        held: &Held<'_>,
        id: FillId,
        lhs_last_byte: u64,
        rhs_first_byte: u64,
    ) -> Result<FillId> {
        let mut st = self.st.get(held)?;
        st.users.try_reserve_for(1)?;
        let new_id = st.next_id;
        let pos = st
            .users
            .iter()
            .position(|u| u.fill_id() == Some(id))
            .ok_or(EINVAL)?;
        let u = &mut st.users[pos];
        let Holder::Fill { view, .. } = &mut u.holder else {
            return Err(EINVAL);
        };
        if lhs_last_byte < view.first_byte || rhs_first_byte > view.last_byte {
            return Err(EINVAL);
        }
        let rhs = PinUser {
            first: rhs_first_byte / PAGE_SIZE,
            last: u.last,
            holder: Holder::Fill {
                id: new_id,
                view: DomainView {
                    domain: view.domain.clone(),
                    iova0: view.iova0,
                    first_byte: rhs_first_byte,
                    last_byte: view.last_byte,
                },
            },
        };
        view.last_byte = lhs_last_byte;
        u.last = lhs_last_byte / PAGE_SIZE;
        st.next_id += 1;
        st.users.try_push(rhs)?;
        Ok(new_id)
    }

    /// Hands the pages of fill `id` to `map` in physically contiguous runs
    /// (mapping an area into one more domain).
    pub fn read_fill(
        &self,
        held: &Held<'_>,
        id: FillId,
        map: &mut dyn FnMut(&PhysRun) -> Result,
    ) -> Result {
        let st = self.st.get(held)?;
        let u = st
            .users
            .iter()
            .find(|u| u.fill_id() == Some(id))
            .ok_or(EINVAL)?;
        u.read(held, u.first, u.last, map)
    }

    /// The pinned page at `index`, if a user holds it.
    pub fn page(&self, held: &Held<'_>, index: u64) -> Result<Option<PageRef>> {
        let st = self.st.get(held)?;
        let Some(u) = provider(&st.users, index, index) else {
            return Ok(None);
        };
        let mut found = None;
        u.read(held, index, index, &mut |r| {
            found = Some(PageRef::from_phys(r.phys));
            Ok(())
        })?;
        Ok(found)
    }

    /// Copies between `buf` and the bytes at `offset` of these pages:
    /// through the pinned pages where held, else pinning each page for the
    /// duration of the copy (for write only when writing, as upstream's
    /// slow path: reading a read-only VMA behind a writable area works).
    pub fn rw(&self, held: &Held<'_>, mut offset: u64, buf: &mut [u8], write: bool) -> Result {
        let mut done = 0usize;
        while done < buf.len() {
            let index = offset / PAGE_SIZE;
            let in_page = (offset % PAGE_SIZE) as usize;
            let n = (buf.len() - done).min(PAGE_SIZE as usize - in_page);
            let chunk = &mut buf[done..done + n];
            match self.page(held, index)? {
                Some(page) => page.copy(in_page, chunk, write),
                None => {
                    let src = self.src.get(held)?;
                    let mut tmp = [PageRef::default()];
                    src.pin(index, &mut tmp, write)?;
                    tmp[0].copy(in_page, chunk, write);
                    src.unpin_run(tmp[0].phys(), 1);
                }
            }
            done += n;
            offset += n as u64;
        }
        Ok(())
    }

    /// Hands every page of `user`'s range to `sink`, pinning (and
    /// charging) those no registered user holds; access users also record
    /// the runs. On failure returns the error and the first page index not
    /// handed over: pages before it are held as if `user` covered them up
    /// to there, pages from it on are not pinned for this call.
    fn add_pages(
        &self,
        held: &Held<'_>,
        src: &PinSource,
        st: &mut PinState,
        user: &mut PinUser,
        sink: &mut dyn FnMut(&PhysRun) -> Result,
    ) -> core::result::Result<(), (Error, u64)> {
        let last = user.last;
        let mut cur = user.first;
        loop {
            let (seg_last, prov) = segment(&st.users, cur, last);
            match prov {
                Some(p) => {
                    let mut next = cur;
                    let mut rec = |r: &PhysRun| -> Result {
                        sink(r)?;
                        user.record(r)?;
                        next = r.index + r.count;
                        Ok(())
                    };
                    st.users[p]
                        .read(held, cur, seg_last, &mut rec)
                        .map_err(|e| (e, next))?;
                }
                None => self.pin_fresh(src, st, user, cur, seg_last, sink)?,
            }
            if seg_last >= last {
                return Ok(());
            }
            cur = seg_last + 1;
        }
    }

    /// Pins `first..=last` (held by nobody) from the source in batches,
    /// charges it and hands it on in physically contiguous runs. The run
    /// at a batch's end is held back until the next batch shows whether it
    /// continues, so huge folios reach the domains whole. On failure what
    /// this call pinned and did not hand over is unpinned again, and the
    /// error comes with the first index not handed over.
    fn pin_fresh(
        &self,
        src: &PinSource,
        st: &mut PinState,
        user: &mut PinUser,
        first: u64,
        last: u64,
        sink: &mut dyn FnMut(&PhysRun) -> Result,
    ) -> core::result::Result<(), (Error, u64)> {
        let mut buf: PVec<PageRef> = PVec::new();
        let cap = ((last - first + 1) as usize).min(PIN_BATCH);
        buf.try_resize(cap, PageRef::default())
            .map_err(|e| (e, first))?;
        let mut pending: Option<PhysRun> = None;
        let mut hand = |st: &mut PinState, user: &mut PinUser, r: PhysRun| -> Result {
            if let Err(e) = sink(&r).and_then(|()| user.record(&r)) {
                release_run(src, st, &r);
                return Err(e);
            }
            Ok(())
        };
        let mut idx = first;
        while idx <= last {
            let n = ((last - idx + 1) as usize).min(PIN_BATCH);
            let pinned = src.pin(idx, &mut buf[..n], self.writable).and_then(|got| {
                let got = got.min(n);
                if let Err(e) = src.account(got, true) {
                    unpin_pages(src, &buf[..got]);
                    return Err(e);
                }
                Ok(got)
            });
            let got = match pinned {
                Ok(got) => got,
                Err(e) => {
                    let at = pending.map_or(idx, |r| r.index);
                    if let Some(r) = pending {
                        release_run(src, st, &r);
                    }
                    return Err((e, at));
                }
            };
            st.npinned += got;
            for (i, p) in buf[..got].iter().enumerate() {
                let page = PhysRun {
                    index: idx + i as u64,
                    phys: p.phys(),
                    count: 1,
                };
                if pending.as_mut().is_some_and(|r| r.absorb(&page)) {
                    continue;
                }
                if let Some(r) = pending.replace(page) {
                    if let Err(e) = hand(st, user, r) {
                        // Neither `r` nor the rest of this batch went on.
                        let rest = &buf[i..got];
                        unpin_pages(src, rest);
                        let _ = src.account(rest.len(), false);
                        st.npinned -= rest.len();
                        return Err((e, r.index));
                    }
                }
            }
            idx += got as u64;
        }
        if let Some(r) = pending {
            hand(st, user, r).map_err(|e| (e, r.index))?;
        }
        Ok(())
    }

    /// Undoes a failed [`Self::add_pages`]: the part before `done` is
    /// released as a registered user's would be.
    fn drop_partial(
        &self,
        held: &Held<'_>,
        src: &PinSource,
        st: &mut PinState,
        mut user: PinUser,
        done: u64,
    ) {
        if done <= user.first {
            return;
        }
        user.last = done - 1;
        if let Holder::Fill { view, .. } = &mut user.holder {
            view.last_byte = view.last_byte.min(done * PAGE_SIZE - 1);
        }
        release(held, src, st, &user);
    }
}

impl PinUser {
    fn fill_id(&self) -> Option<FillId> {
        match &self.holder {
            Holder::Fill { id, .. } => Some(*id),
            Holder::Access { .. } => None,
        }
    }

    /// Reads this user's pages `first..=last` (inside its range) as runs.
    fn read(
        &self,
        held: &Held<'_>,
        first: u64,
        last: u64,
        f: &mut dyn FnMut(&PhysRun) -> Result,
    ) -> Result {
        match &self.holder {
            Holder::Access { runs } => {
                let i = runs.partition_point(|r| r.last() < first);
                for r in runs[i..].iter() {
                    if r.index > last {
                        break;
                    }
                    if let Some(c) = r.clip(first, last) {
                        f(&c)?;
                    }
                }
                Ok(())
            }
            Holder::Fill { view, .. } => view.read(held, first, last, f),
        }
    }

    /// An access user keeps what it was handed.
    fn record(&mut self, r: &PhysRun) -> Result {
        if let Holder::Access { runs } = &mut self.holder {
            if runs.last_mut().is_some_and(|l| l.absorb(r)) {
                return Ok(());
            }
            runs.try_push(*r)?;
        }
        Ok(())
    }
}

/// Unpins and uncharges the pages of `user` (already off the list) that no
/// other user covers.
fn release(held: &Held<'_>, src: &PinSource, st: &mut PinState, user: &PinUser) {
    let mut cur = user.first;
    loop {
        let (seg_last, prov) = segment(&st.users, cur, user.last);
        if prov.is_none() {
            let mut freed = 0u64;
            let r = user.read(held, cur, seg_last, &mut |r| {
                src.unpin_run(r.phys, r.count as usize);
                freed += r.count;
                Ok(())
            });
            if r.is_err() || freed != seg_last - cur + 1 {
                // The domain lost a mapping it should hold: a bug; the pins
                // it hid stay (a leak, never a use-after-free).
                crate::warn_once!(
                    "iommufd_rs: pages {cur}..={seg_last} not found at unpin ({freed} found)"
                );
            }
            let _ = src.account(freed as usize, false);
            st.npinned = st.npinned.saturating_sub(freed as usize);
        }
        if seg_last >= user.last {
            return;
        }
        cur = seg_last + 1;
    }
}

/// Unpins and uncharges a run this call pinned and did not hand over.
fn release_run(src: &PinSource, st: &mut PinState, r: &PhysRun) {
    src.unpin_run(r.phys, r.count as usize);
    let _ = src.account(r.count as usize, false);
    st.npinned -= r.count as usize;
}

/// Unpins pages in physically contiguous runs.
fn unpin_pages(src: &PinSource, pages: &[PageRef]) {
    let mut i = 0;
    while i < pages.len() {
        let start = pages[i].phys();
        let mut n = 1;
        while i + n < pages.len() && pages[i + n].phys() == start + n as u64 * PAGE_SIZE {
            n += 1;
        }
        src.unpin_run(start, n);
        i += n;
    }
}

impl DomainView {
    /// Reads pages `first..=last` back from the domain, in runs.
    fn read(
        &self,
        held: &Held<'_>,
        first: u64,
        last: u64,
        f: &mut dyn FnMut(&PhysRun) -> Result,
    ) -> Result {
        let mut b = (first * PAGE_SIZE).max(self.first_byte);
        let end = last
            .saturating_mul(PAGE_SIZE)
            .saturating_add(PAGE_SIZE - 1)
            .min(self.last_byte);
        let mut pending: Option<PhysRun> = None;
        while b <= end {
            let Some((phys, left)) = self.domain.translate(held, self.iova0.wrapping_add(b))?
            else {
                return Err(EFAULT);
            };
            // The bytes of this leaf that are ours, and the pages they touch.
            let upto = b.saturating_add(left.max(1) - 1).min(end);
            let mut run = PhysRun {
                index: b / PAGE_SIZE,
                phys: phys - b % PAGE_SIZE,
                count: upto / PAGE_SIZE - b / PAGE_SIZE + 1,
            };
            if let Some(p) = pending.as_mut() {
                // A leaf that ended inside a page: the next one starts in
                // the same page, which was already reported.
                if p.last() >= run.index {
                    let skip = p.last() - run.index + 1;
                    if skip >= run.count {
                        b = upto.saturating_add(1);
                        if upto == u64::MAX {
                            break;
                        }
                        continue;
                    }
                    run = PhysRun {
                        index: run.index + skip,
                        phys: run.phys + skip * PAGE_SIZE,
                        count: run.count - skip,
                    };
                }
                if !p.absorb(&run) {
                    f(p)?;
                    *p = run;
                }
            } else {
                pending = Some(run);
            }
            if upto == u64::MAX {
                break;
            }
            b = upto + 1;
        }
        if let Some(p) = pending {
            f(&p)?;
        }
        Ok(())
    }
}

/// The coverage of `cur..=last` by registered users: the last page of the
/// first stretch from `cur` on where the set of covering users is the
/// same, and one user holding that stretch (`None`: nobody does).
fn segment(users: &[PinUser], cur: u64, last: u64) -> (u64, Option<usize>) {
    let mut end = last;
    let mut prov = None;
    for (i, u) in users.iter().enumerate() {
        if u.first <= cur && u.last >= cur {
            end = end.min(u.last);
            // Prefer an access's own runs to a domain walk.
            if prov.is_none() || matches!(u.holder, Holder::Access { .. }) {
                prov = Some(i);
            }
        } else if u.first > cur {
            end = end.min(u.first - 1);
        }
    }
    (end, prov)
}

/// Any user holding all of `first..=last`.
fn provider(users: &[PinUser], first: u64, last: u64) -> Option<&PinUser> {
    users.iter().find(|u| u.first <= first && u.last >= last)
}

impl Drop for Pages {
    fn drop(&mut self) {
        // Every user releases before dropping its reference; anything left
        // is a bug. Access pins are released from their own runs; a fill's
        // pages can only be read back under the context lock, so those stay
        // pinned (a leak, never a use-after-free).
        let src = self.src.get_mut();
        let st = self.st.get_mut();
        if st.users.is_empty() {
            return;
        }
        crate::warn_once!("iommufd_rs: {} pages still pinned at free", st.npinned);
        while let Some(u) = st.users.pop() {
            let Holder::Access { runs } = &u.holder else {
                continue;
            };
            for r in runs.iter() {
                let mut cur = r.index;
                // Only pages no remaining user covers.
                while cur <= r.last() {
                    let (seg_last, prov) = segment(&st.users, cur, r.last());
                    if prov.is_none() {
                        let n = seg_last - cur + 1;
                        src.unpin_run(r.phys + (cur - r.index) * PAGE_SIZE, n as usize);
                        let _ = src.account(n as usize, false);
                    }
                    cur = seg_last + 1;
                }
            }
        }
    }
}
