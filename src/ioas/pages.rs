//! Pinned pages behind IOAS areas, shared by every area, domain, copy and
//! access that uses them (upstream's `iopt_pages`).
//!
//! A [`Pages`] covers a page-aligned run of user memory (or of a memfd).
//! Nothing is pinned when it is created: consumers (a domain fill of an
//! area, an access pin) take per-page pin references with
//! [`Pages::pin_range`], and a page is pinned from the source on its first
//! reference and unpinned on its last, so it is pinned exactly once however
//! many domains, copies and accesses use it. Accounting (RLIMIT_MEMLOCK,
//! VmPin) follows the pins, charged after pinning and undone on failure.

use crate::errno::{Result, EINVAL, EOVERFLOW};
use crate::platform::{arc_new, Arc, CtxCell, Held, PVec, PageRef, PinSource, VecExt, PAGE_SIZE};

/// Pages pinned per call into the source: bounds the time spent in one GUP
/// call without making batches pointlessly small.
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

struct PinState {
    /// Pinned page per index; meaningful where `refs` is non-zero.
    pages: PVec<PageRef>,
    /// Pin references per page index.
    refs: PVec<u32>,
    /// Pages currently pinned (and charged).
    npinned: usize,
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
                pages: PVec::new(),
                refs: PVec::new(),
                npinned: 0,
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

    /// The pinned page at `index`, if a reference is held on it.
    pub fn page(&self, held: &Held<'_>, index: u64) -> Result<Option<PageRef>> {
        let st = self.st.get(held)?;
        let i = index as usize;
        Ok(match st.refs.get(i) {
            Some(&r) if r > 0 => Some(st.pages[i]),
            _ => None,
        })
    }

    /// Takes a pin reference on every page in `first..=last`, pinning and
    /// charging the pages that had none. All or nothing.
    pub fn pin_range(&self, held: &Held<'_>, first: u64, last: u64) -> Result {
        if first > last || last >= self.npages {
            return Err(EINVAL);
        }
        let src = self.src.get(held)?;
        let mut st = self.st.get(held)?;
        if st.refs.is_empty() {
            let n = self.npages as usize;
            st.refs.try_resize(n, 0)?;
            st.pages.try_resize(n, PageRef::default())?;
        }
        let (first, last) = (first as usize, last as usize);
        // Pass 1: pin every page without a reference (refs stay 0).
        let mut newly = 0usize;
        let mut i = first;
        let mut failed = None;
        while i <= last {
            if st.refs[i] != 0 {
                i += 1;
                continue;
            }
            let mut end = i;
            while end < last && end - i + 1 < PIN_BATCH && st.refs[end + 1] == 0 {
                end += 1;
            }
            match src.pin(i as u64, &mut st.pages[i..=end]) {
                Ok(n) => {
                    newly += n;
                    i += n;
                }
                Err(e) => {
                    failed = Some((e, i));
                    break;
                }
            }
        }
        let err = failed.or_else(|| src.account(newly, true).err().map(|e| (e, last + 1)));
        if let Some((e, upto)) = err {
            // Undo pass 1: unpin what this call pinned below `upto`.
            unpin_runs(&src, &mut st, first, upto, |r| r == 0);
            return Err(e);
        }
        for r in &mut st.refs[first..=last] {
            *r += 1;
        }
        st.npinned += newly;
        Ok(())
    }

    /// Drops a pin reference on every page in `first..=last`; pages left
    /// without one are unpinned and uncharged.
    pub fn unpin_range(&self, held: &Held<'_>, first: u64, last: u64) -> Result {
        let src = self.src.get(held)?;
        let mut st = self.st.get(held)?;
        let (first, last) = (first as usize, last as usize);
        if first > last || last >= st.refs.len() || st.refs[first..=last].contains(&0) {
            crate::warn_once!("iommufd_rs: unbalanced unpin of pages {first}..={last}");
            return Err(EINVAL);
        }
        for r in &mut st.refs[first..=last] {
            *r -= 1;
        }
        let freed = unpin_runs(&src, &mut st, first, last + 1, |r| r == 0);
        st.npinned -= freed;
        // Uncharging cannot fail.
        let _ = src.account(freed, false);
        if st.npinned == 0 {
            st.refs = PVec::new();
            st.pages = PVec::new();
        }
        Ok(())
    }

    /// Copies between `buf` and the bytes at `offset` of these pages:
    /// through the pinned pages where held, else pinning each page for the
    /// duration of the copy.
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
                    src.pin(index, &mut tmp)?;
                    tmp[0].copy(in_page, chunk, write);
                    src.unpin(&mut tmp);
                }
            }
            done += n;
            offset += n as u64;
        }
        Ok(())
    }
}

/// Unpins the pages in `from..to` whose reference count satisfies `free`,
/// in contiguous runs; returns how many.
fn unpin_runs(
    src: &PinSource,
    st: &mut PinState,
    from: usize,
    to: usize,
    free: impl Fn(u32) -> bool,
) -> usize {
    let mut count = 0;
    let mut i = from;
    while i < to {
        if !free(st.refs[i]) || st.pages[i] == PageRef::default() {
            i += 1;
            continue;
        }
        let mut end = i + 1;
        while end < to && free(st.refs[end]) && st.pages[end] != PageRef::default() {
            end += 1;
        }
        src.unpin(&mut st.pages[i..end]);
        for p in &mut st.pages[i..end] {
            *p = PageRef::default();
        }
        count += end - i;
        i = end;
    }
    count
}

impl Drop for Pages {
    fn drop(&mut self) {
        // Every consumer unpins before dropping its reference; anything left
        // is a bug, but the pins are still released rather than leaked.
        let st = self.st.get_mut();
        if st.npinned != 0 {
            crate::warn_once!("iommufd_rs: {} pages still pinned at free", st.npinned);
            let to = st.refs.len();
            let src = self.src.get_mut();
            let freed = unpin_runs(src, st, 0, to, |r| r != 0);
            let _ = src.account(freed, false);
        }
    }
}
