//! Host backend of the platform layer, for `cargo test` and benchmarks.

use crate::errno::{Result, EBUSY, EFAULT};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Reference-counted pointer; allocation failure aborts on the host.
pub type Arc<T> = std::sync::Arc<T>;

/// Allocates an [`Arc`] (the kernel version can fail with `ENOMEM`).
pub fn arc_new<T>(value: T) -> Result<Arc<T>> {
    Ok(std::sync::Arc::new(value))
}

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records a warning; tests read it back with [`take_log`].
pub fn log_warn(args: core::fmt::Arguments<'_>) {
    LOG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(args.to_string());
}

/// Returns and clears the warnings logged so far.
pub fn take_log() -> Vec<String> {
    std::mem::take(&mut *LOG.lock().unwrap_or_else(|e| e.into_inner()))
}

const ID_MAX: u32 = i32::MAX as u32;

/// ID table with the semantics of an `XA_FLAGS_ALLOC1` xarray: IDs are the
/// lowest free number in `1..=i32::MAX`, reserved IDs are invisible until
/// published.
pub struct IdTable<U> {
    slots: Mutex<BTreeMap<u32, Option<Arc<U>>>>,
}

impl<U> IdTable<U> {
    /// Creates an empty table.
    pub fn new() -> Result<Self> {
        Ok(Self {
            slots: Mutex::new(BTreeMap::new()),
        })
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Option<Arc<U>>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves the lowest free ID (`EBUSY` when all are taken, as xa_alloc).
    pub fn reserve(&self) -> Result<u32> {
        let mut slots = self.slots();
        let mut want = 1u32;
        for &id in slots.keys() {
            if id != want {
                break;
            }
            want = want.checked_add(1).ok_or(EBUSY)?;
        }
        if want > ID_MAX {
            return Err(EBUSY);
        }
        slots.insert(want, None);
        Ok(want)
    }

    /// Makes `value` visible under the reserved `id`.
    pub fn publish(&self, id: u32, value: Arc<U>) {
        let old = self.slots().insert(id, Some(value));
        debug_assert!(matches!(old, Some(None)), "publish of an unreserved ID");
    }

    /// Releases a reserved, never published `id`.
    pub fn unreserve(&self, id: u32) {
        let mut slots = self.slots();
        if let Some(None) = slots.get(&id) {
            slots.remove(&id);
        }
    }

    /// Returns the published value under `id` if `accept` (run under the
    /// table lock) agrees.
    pub fn get_if(&self, id: u32, accept: impl FnOnce(&U) -> bool) -> Option<Arc<U>> {
        let slots = self.slots();
        let v = slots.get(&id)?.as_ref()?;
        accept(v).then(|| v.clone())
    }

    /// Removes the published value under `id` if `check` (run under the table
    /// lock) succeeds; `None` if there is none.
    pub fn remove_if(&self, id: u32, check: impl FnOnce(&U) -> Result) -> Option<Result<Arc<U>>> {
        let mut slots = self.slots();
        let v = slots.get(&id)?.as_ref()?;
        if let Err(e) = check(v) {
            return Some(Err(e));
        }
        slots.remove(&id).flatten().map(Ok)
    }

    /// Replaces the published entry `id` by `new` if `check` accepts the
    /// old one, which is returned; `None` if there is no entry.
    pub fn replace_if(
        &self,
        id: u32,
        check: impl FnOnce(&U) -> Result,
        new: Arc<U>,
    ) -> Option<Result<Arc<U>>> {
        let mut slots = self.slots();
        let v = slots.get(&id)?.as_ref()?;
        if let Err(e) = check(v) {
            return Some(Err(e));
        }
        slots.insert(id, Some(new)).flatten().map(Ok)
    }

    /// The published entry with the lowest ID `>= from`.
    pub fn next_from(&self, from: u32) -> Option<(u32, Arc<U>)> {
        self.slots()
            .range(from..)
            .find_map(|(id, v)| v.as_ref().map(|v| (*id, v.clone())))
    }

    /// Removes and returns the published value with the lowest ID for which
    /// `pred` holds.
    pub fn remove_first_if(&self, mut pred: impl FnMut(&U) -> bool) -> Option<Arc<U>> {
        let mut slots = self.slots();
        let id = slots
            .iter()
            .find(|(_, v)| v.as_ref().is_some_and(|v| pred(v)))
            .map(|(id, _)| *id)?;
        slots.remove(&id).flatten()
    }

    /// Removes and returns the published value with the lowest ID.
    pub fn pop_first(&self) -> Option<Arc<U>> {
        let mut slots = self.slots();
        let id = slots.iter().find(|(_, v)| v.is_some()).map(|(id, _)| *id)?;
        slots.remove(&id).flatten()
    }
}

/// User memory for host tests: a set of mapped regions; anything else faults.
#[derive(Default)]
pub struct FakeUserMem {
    regions: Mutex<Vec<Region>>,
}

struct Region {
    base: u64,
    bytes: Vec<u8>,
    writable: bool,
}

impl FakeUserMem {
    /// Maps `len` zero bytes at `base`, readable and writable.
    pub fn map(&self, base: u64, len: usize) {
        self.map_with(base, len, true);
    }

    /// Maps `len` zero bytes at `base`; writes fault unless `writable`.
    pub fn map_with(&self, base: u64, len: usize, writable: bool) {
        let r = Region {
            base,
            bytes: vec![0; len],
            writable,
        };
        self.regions.lock().unwrap().push(r);
    }

    /// Copies `data` to `uaddr` even in a read-only region (test setup).
    pub fn poke(&self, uaddr: u64, data: &[u8]) {
        self.with_range(uaddr, data.len(), false, |dst| dst.copy_from_slice(data))
            .expect("poke outside mapped test memory");
    }

    /// Reads `len` bytes at `uaddr` (test inspection).
    pub fn peek(&self, uaddr: u64, len: usize) -> Vec<u8> {
        self.with_range(uaddr, len, false, |src| src.to_vec())
            .expect("peek outside mapped test memory")
    }

    fn with_range<R>(
        &self,
        uaddr: u64,
        len: usize,
        write: bool,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R> {
        let mut regions = self.regions.lock().unwrap();
        let end = uaddr.checked_add(len as u64).ok_or(EFAULT)?;
        for Region {
            base,
            bytes,
            writable,
        } in regions.iter_mut()
        {
            let rend = *base + bytes.len() as u64;
            if uaddr >= *base && end <= rend {
                if write && !*writable {
                    return Err(EFAULT);
                }
                let off = (uaddr - *base) as usize;
                return Ok(f(&mut bytes[off..off + len]));
            }
        }
        Err(EFAULT)
    }
}

impl super::UserMem for FakeUserMem {
    fn read(&self, uaddr: u64, out: &mut [u8]) -> Result {
        self.with_range(uaddr, out.len(), false, |src| out.copy_from_slice(src))
    }

    fn write(&self, uaddr: u64, data: &[u8]) -> Result {
        self.with_range(uaddr, data.len(), true, |dst| dst.copy_from_slice(data))
    }
}

/// The file's context lock (see [`super::CtxCell`]).
pub struct CtxLock {
    m: Mutex<()>,
}

/// Proof that the context lock is held, for as long as it lives.
pub struct Held<'a> {
    _g: std::sync::MutexGuard<'a, ()>,
}

impl CtxLock {
    /// A new, unlocked context lock.
    pub fn new() -> Result<Self> {
        Ok(Self { m: Mutex::new(()) })
    }

    /// Takes the lock.
    pub fn lock(&self) -> Held<'_> {
        Held {
            _g: self.m.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// The platform vector.
pub type PVec<T> = Vec<T>;

impl<T> super::VecExt<T> for Vec<T> {
    fn try_push(&mut self, v: T) -> Result {
        self.try_reserve(1).map_err(|_| crate::errno::ENOMEM)?;
        self.push(v);
        Ok(())
    }

    fn try_reserve_for(&mut self, n: usize) -> Result {
        self.try_reserve(n).map_err(|_| crate::errno::ENOMEM)
    }

    fn try_insert(&mut self, i: usize, v: T) -> Result {
        self.try_reserve(1).map_err(|_| crate::errno::ENOMEM)?;
        self.insert(i, v);
        Ok(())
    }

    fn try_resize(&mut self, n: usize, v: T) -> Result
    where
        T: Clone,
    {
        self.try_reserve(n.saturating_sub(self.len()))
            .map_err(|_| crate::errno::ENOMEM)?;
        self.resize(n, v);
        Ok(())
    }

    fn remove_range(&mut self, start: usize, end: usize) {
        if start < end && end <= self.len() {
            self.drain(start..end);
        }
    }

    fn remove_at(&mut self, i: usize) -> Option<T> {
        (i < self.len()).then(|| self.remove(i))
    }
}

/// A pinned fake page: its frame number.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PageRef(u64);

/// Host pin bookkeeping: pins per fake frame, and fake frame contents.
#[derive(Default)]
struct FakeMm {
    pins: BTreeMap<u64, u32>,
    data: BTreeMap<u64, Vec<u8>>,
    accounted: i64,
    limit: Option<i64>,
    fail_pin_after: Option<u64>,
    /// Frames between consecutive pages (0 or 1: contiguous); 2 makes
    /// every page its own physical run.
    stride: u64,
}

thread_local! {
    // Per test thread, so tests running in parallel do not see each
    // other's pins.
    static FAKE_MM: std::cell::RefCell<FakeMm> = std::cell::RefCell::new(FakeMm::default());
}

fn fake_mm<R>(f: impl FnOnce(&mut FakeMm) -> R) -> R {
    FAKE_MM.with(|m| f(&mut m.borrow_mut()))
}

/// Host test hooks for the fake memory manager.
pub mod fake {
    use super::fake_mm;

    /// Number of pins currently held on fake frames, summed.
    pub fn total_pins() -> u64 {
        fake_mm(|m| m.pins.values().map(|&v| u64::from(v)).sum())
    }

    /// Pages currently charged.
    pub fn accounted() -> i64 {
        fake_mm(|m| m.accounted)
    }

    /// Limits the pages that may be charged (`None`: unlimited).
    pub fn set_limit(limit: Option<i64>) {
        fake_mm(|m| m.limit = limit);
    }

    /// Makes pinning fail (`EFAULT`) once this many more pages were pinned.
    pub fn fail_pin_after(n: Option<u64>) {
        fake_mm(|m| m.fail_pin_after = n);
    }

    /// Places consecutive pages `stride` frames apart (1: contiguous).
    pub fn set_frame_stride(stride: u64) {
        fake_mm(|m| m.stride = stride);
    }

    /// Resets this thread's fake state.
    pub fn reset() {
        fake_mm(|m| *m = Default::default());
    }
}

impl PageRef {
    /// The physical address of the page.
    pub fn phys(self) -> u64 {
        self.0 * super::PAGE_SIZE
    }

    /// The page at physical address `phys` (a page a pin is held on).
    pub fn from_phys(phys: u64) -> Self {
        Self(phys / super::PAGE_SIZE)
    }

    /// Copies between `buf` and the page at `offset` (`to_page` = write).
    pub fn copy(self, offset: usize, buf: &mut [u8], to_page: bool) {
        let ps = super::PAGE_SIZE as usize;
        let len = buf.len().min(ps - offset.min(ps));
        fake_mm(|m| {
            let page = m.data.entry(self.0).or_insert_with(|| vec![0; ps]);
            if to_page {
                page[offset..offset + len].copy_from_slice(&buf[..len]);
            } else {
                buf[..len].copy_from_slice(&page[offset..offset + len]);
            }
        })
    }
}

/// Mock dma-bufs do not exist on the host.
pub fn dmabuf_create(_len: usize, _open_flags: u32) -> Result<i32> {
    Err(crate::errno::EOPNOTSUPP)
}

/// Mock dma-bufs do not exist on the host.
pub fn dmabuf_revoke(_fd: i32, _revoked: bool) -> Result<usize> {
    Err(crate::errno::EOPNOTSUPP)
}

/// Releases fake pins.
fn fake_unpin(pages: &mut [PageRef]) {
    fake_mm(|m| {
        for p in pages.iter() {
            match m.pins.get_mut(&p.0) {
                Some(n) if *n > 1 => *n -= 1,
                Some(_) => {
                    m.pins.remove(&p.0);
                }
                None => panic!("unpin of an unpinned fake page {:#x}", p.0),
            }
        }
    })
}

/// A fake pinning source: frame = (base + index * PAGE_SIZE) / PAGE_SIZE,
/// offset by a per-file constant for memfds.
pub struct PinSource {
    base: u64,
    file: Option<i32>,
    mm_mode: std::sync::atomic::AtomicBool,
}

/// A new owner for a source, already charged; dropping it refunds.
pub struct NewOwner {
    npages: usize,
}

impl NewOwner {
    /// Makes it the owner; the old owner is uncharged.
    pub fn commit(self, _src: &PinSource) {
        let this = std::mem::ManuallyDrop::new(self);
        fake_mm(|m| m.accounted -= this.npages as i64);
    }
}

impl Drop for NewOwner {
    fn drop(&mut self) {
        fake_mm(|m| m.accounted -= self.npages as i64);
    }
}

impl PinSource {
    /// User memory from page-aligned `base`.
    pub fn user(base: u64, _writable: bool) -> Result<Self> {
        Ok(Self {
            base,
            file: None,
            mm_mode: Default::default(),
        })
    }

    /// A fake memfd: negative fds are `EBADF`.
    pub fn file(fd: i32, start: u64, _length: u64, _writable: bool) -> Result<Self> {
        if fd < 0 {
            return Err(crate::errno::EBADF);
        }
        Ok(Self {
            base: start & !(super::PAGE_SIZE - 1),
            file: Some(fd),
            mm_mode: Default::default(),
        })
    }

    /// Switches to mm-mode accounting.
    pub fn set_mm_mode(&self) {
        self.mm_mode
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// True for memfd sources.
    pub fn is_file(&self) -> bool {
        self.file.is_some()
    }

    /// No dma-bufs on the host.
    pub fn dmabuf_id(&self) -> Option<usize> {
        None
    }

    /// No dma-bufs on the host.
    pub fn revoked(&self) -> bool {
        false
    }

    /// Releases pins taken by [`Self::pin`].
    pub fn unpin(&self, pages: &mut [PageRef]) {
        fake_unpin(pages)
    }

    /// Releases `npages` pins of physically contiguous pages from `phys`.
    pub fn unpin_run(&self, phys: u64, npages: usize) {
        let first = phys / super::PAGE_SIZE;
        let mut pages: Vec<PageRef> = (0..npages as u64).map(|i| PageRef(first + i)).collect();
        fake_unpin(&mut pages)
    }

    /// Pins pages from `index` into `out` (for write if `write`; fake
    /// memory is always writable).
    pub fn pin(&self, index: u64, out: &mut [PageRef], _write: bool) -> Result<usize> {
        let ps = super::PAGE_SIZE;
        let salt = self.file.map_or(0, |fd| (1u64 << 40) + ((fd as u64) << 28));
        fake_mm(|m| {
            let mut n = out.len();
            if let Some(left) = m.fail_pin_after {
                if left == 0 {
                    return Err(EFAULT);
                }
                n = n.min(left as usize);
                m.fail_pin_after = Some(left - n as u64);
            }
            for (i, slot) in out.iter_mut().take(n).enumerate() {
                let k = (self.base / ps) + index + i as u64;
                let pfn = FAKE_PFN_BASE + salt + k * m.stride.max(1);
                *slot = PageRef(pfn);
                *m.pins.entry(pfn).or_default() += 1;
            }
            Ok(n)
        })
    }

    /// Charges or uncharges `npages`.
    pub fn account(&self, npages: usize, inc: bool) -> Result {
        fake_mm(|m| {
            let n = npages as i64;
            if inc {
                if m.limit.is_some_and(|l| m.accounted + n > l) {
                    return Err(crate::errno::ENOMEM);
                }
                m.accounted += n;
            } else {
                m.accounted -= n;
            }
            Ok(())
        })
    }

    /// A new owner charged for `npages`.
    pub fn new_owner(&self, npages: usize) -> Result<NewOwner> {
        self.account(npages, true)?;
        Ok(NewOwner { npages })
    }
}

/// Fake frames start here, so that no page is frame 0 (`PageRef::default`).
const FAKE_PFN_BASE: u64 = 1;

/// The fake page at `uaddr`: its physical address and pin count.
pub fn user_page_info(uaddr: u64) -> Result<(u64, Option<u32>)> {
    let pfn = FAKE_PFN_BASE + uaddr / super::PAGE_SIZE * fake_mm(|m| m.stride.max(1));
    Ok((
        pfn * super::PAGE_SIZE,
        Some(fake_mm(|m| m.pins.get(&pfn).copied().unwrap_or(0))),
    ))
}

static CAPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// `capable(cap)`: every capability unless a test dropped it.
pub fn capable(cap: i32) -> bool {
    CAPS.load(std::sync::atomic::Ordering::Relaxed) & (1 << cap) != 0
}

/// Host test hook: sets the capability mask [`capable`] reports.
pub fn set_caps(mask: u64) {
    CAPS.store(mask, std::sync::atomic::Ordering::Relaxed);
}

type AnyArc = Arc<dyn std::any::Any + Send + Sync>;

static FILES: Mutex<BTreeMap<i32, (bool, AnyArc)>> = Mutex::new(BTreeMap::new());

/// An access file under construction (a fake fd table on the host).
pub struct NewAccessFile {
    fd: i32,
}

impl NewAccessFile {
    /// Creates the file for `owner`.
    pub fn new<T: Send + Sync + 'static>(owner: Arc<T>) -> Result<Self> {
        let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
        let fd = (1000..).find(|fd| !files.contains_key(fd)).unwrap_or(0);
        files.insert(fd, (false, owner));
        Ok(Self { fd })
    }

    /// The reserved fd number.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Makes the fd visible.
    pub fn install(self) {
        let this = std::mem::ManuallyDrop::new(self);
        if let Some(f) = FILES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&this.fd)
        {
            f.0 = true;
        }
    }
}

impl Drop for NewAccessFile {
    fn drop(&mut self) {
        FILES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.fd);
    }
}

/// Looks up the access file behind `fd`.
pub fn access_file_get<T: Send + Sync + 'static>(fd: i32) -> Option<Arc<T>> {
    let files = FILES.lock().unwrap_or_else(|e| e.into_inner());
    let (installed, owner) = files.get(&fd)?;
    if !installed {
        return None;
    }
    owner.clone().downcast::<T>().ok()
}

/// Host test hook: closes a fake access fd, returning its owner for the
/// release path.
pub fn close_access_file<T: Send + Sync + 'static>(fd: i32) -> Option<Arc<T>> {
    let (_, owner) = FILES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&fd)?;
    owner.downcast::<T>().ok()
}

/// Wakes the readers of an event fd (nothing to wake on the host).
#[derive(Clone, Copy, Debug)]
pub struct Waker(());

impl Waker {
    /// Wakes pollers.
    pub fn wake(&self) {}
}

/// An event file under construction (shares the fake fd table).
pub struct NewEventFile {
    inner: NewAccessFile,
}

impl NewEventFile {
    /// Creates the file of `kind` for `owner`.
    pub fn new<T: Send + Sync + 'static>(_kind: u32, owner: Arc<T>) -> Result<Self> {
        Ok(Self {
            inner: NewAccessFile::new(owner)?,
        })
    }

    /// The reserved fd number.
    pub fn fd(&self) -> i32 {
        self.inner.fd()
    }

    /// The waker of the file's wait queue.
    pub fn waker(&self) -> Waker {
        Waker(())
    }

    /// Makes the fd visible.
    pub fn install(self) {
        self.inner.install()
    }
}

/// Host test hook: the owner of an installed fake event fd.
pub fn event_file_get<T: Send + Sync + 'static>(fd: i32) -> Option<Arc<T>> {
    access_file_get::<T>(fd)
}

/// Pages userspace can `mmap` (plain memory on the host).
pub struct MmapPages {
    mem: Mutex<Vec<u8>>,
}

impl MmapPages {
    /// `n` zeroed pages.
    pub fn new(n: usize) -> Result<Self> {
        Ok(Self {
            mem: Mutex::new(vec![0; n * super::PAGE_SIZE as usize]),
        })
    }

    /// Stores `v` at byte `off`.
    pub fn write_u32(&self, off: usize, v: u32) {
        let mut m = self.mem.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = m.get_mut(off..off + 4) {
            d.copy_from_slice(&v.to_ne_bytes());
        }
    }

    /// The first page frame (a fake one on the host).
    pub fn pfn(&self) -> u64 {
        0
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.mem.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    /// True for zero pages.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A mutex under which nothing else is locked or faulted in (it nests
/// inside both the context lock and `mmap_lock`).
pub struct LeafMutex<T> {
    m: Mutex<T>,
}

impl<T> LeafMutex<T> {
    /// A new mutex around `v`.
    pub fn new(v: T) -> Result<Self> {
        Ok(Self { m: Mutex::new(v) })
    }

    /// Takes the lock.
    pub fn lock(&self) -> impl core::ops::DerefMut<Target = T> + '_ {
        self.m.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Simulated physical memory for page tables on the host.
///
/// Tables live in one arena whose "physical" addresses start at
/// [`PtMem::PHYS_BASE`] (or another base), unrelated to their host addresses, so code that
/// confuses the two fails; walker models read through [`PhysMem`], which
/// only answers for live tables, so a walk into a freed table is caught.
/// Counters expose leaks, and allocation failures can be injected.
///
/// [`PhysMem`]: crate::pagetable::PhysMem
pub struct PtMem {
    base: std::ptr::NonNull<u8>,
    phys_base: u64,
    cap: usize,
    arena: Mutex<PtArena>,
    live: std::sync::atomic::AtomicUsize,
    /// Allocations left before injected failures start (`usize::MAX`: never).
    fail_after: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct PtArena {
    bump: usize,
    free: BTreeMap<u32, Vec<usize>>,
    /// Offset -> log2 size of every live table.
    live: BTreeMap<usize, u32>,
    double_frees: usize,
}

// SAFETY: the arena is only reached through atomics (table items) and the
// mutex (bookkeeping).
unsafe impl Send for PtMem {}
// SAFETY: as above.
unsafe impl Sync for PtMem {}

impl PtMem {
    /// First simulated physical address (1 GiB, so 32-bit output address
    /// spaces can hold small arenas).
    pub const PHYS_BASE: u64 = 0x4000_0000;
    const ALIGN: usize = 1 << 20;

    /// An arena of 64 MiB.
    pub fn new() -> Self {
        Self::with_capacity(64 << 20)
    }

    /// An arena of `cap` bytes (reserved lazily by the host allocator).
    pub fn with_capacity(cap: usize) -> Self {
        Self::at(Self::PHYS_BASE, cap)
    }

    /// An arena of `cap` bytes at simulated physical address `phys_base`
    /// (4 KiB aligned), to place tables where a format cannot reach them.
    pub fn at(phys_base: u64, cap: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(cap, Self::ALIGN)
            .unwrap_or_else(|_| std::process::abort());
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let base =
            std::ptr::NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Self {
            base,
            phys_base,
            cap,
            arena: Mutex::new(PtArena::default()),
            live: std::sync::atomic::AtomicUsize::new(0),
            fail_after: std::sync::atomic::AtomicUsize::new(usize::MAX),
        }
    }

    fn arena(&self) -> std::sync::MutexGuard<'_, PtArena> {
        self.arena.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tables allocated and not freed.
    pub fn live(&self) -> usize {
        self.live.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Frees of tables that were not live (must stay 0).
    pub fn double_frees(&self) -> usize {
        self.arena().double_frees
    }

    /// Lets `n` more allocations succeed, then fails every one.
    pub fn fail_after(&self, n: usize) {
        self.fail_after
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// True if `pa..pa + 8` lies in a live table.
    fn is_live(&self, pa: u64) -> Option<usize> {
        let off = usize::try_from(pa.checked_sub(self.phys_base)?).ok()?;
        let a = self.arena();
        let (&start, &lg2) = a.live.range(..=off).next_back()?;
        (off + 8 <= start + (1usize << lg2) && pa.is_multiple_of(8)).then_some(off)
    }

    fn word(&self, off: usize) -> &std::sync::atomic::AtomicU64 {
        // SAFETY: `off` is 8-byte aligned and inside the arena, which lives
        // as long as `self`.
        unsafe {
            &*self
                .base
                .as_ptr()
                .add(off)
                .cast::<std::sync::atomic::AtomicU64>()
        }
    }
}

impl Default for PtMem {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PtMem {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.cap, Self::ALIGN)
            .unwrap_or_else(|_| std::process::abort());
        // SAFETY: allocated in `with_capacity` with this layout.
        unsafe { std::alloc::dealloc(self.base.as_ptr(), layout) };
    }
}

// SAFETY: tables are zeroed, aligned to their size inside the
// 1 MiB-aligned arena, valid until freed, and `phys_to_virt` inverts the
// fixed offset.
unsafe impl crate::pagetable::TableMem for PtMem {
    fn alloc(&self, size_lg2: u32) -> Option<crate::pagetable::TablePage> {
        use std::sync::atomic::Ordering::Relaxed;
        if self
            .fail_after
            .fetch_update(Relaxed, Relaxed, |n| match n {
                usize::MAX => Some(n),
                0 => None,
                n => Some(n - 1),
            })
            .is_err()
        {
            return None;
        }
        let size = 1usize << size_lg2;
        let mut a = self.arena();
        let off = match a.free.get_mut(&size_lg2).and_then(Vec::pop) {
            Some(off) => off,
            None => {
                let off = a.bump.next_multiple_of(size);
                if off + size > self.cap {
                    return None;
                }
                a.bump = off + size;
                off
            }
        };
        a.live.insert(off, size_lg2);
        drop(a);
        // SAFETY: the range is inside the arena and owned by nobody else.
        unsafe { std::ptr::write_bytes(self.base.as_ptr().add(off), 0, size) };
        self.live.fetch_add(1, Relaxed);
        Some(crate::pagetable::TablePage {
            virt: self.word(off).into(),
            phys: self.phys_base + off as u64,
            size_lg2,
        })
    }

    unsafe fn free(&self, page: crate::pagetable::TablePage) {
        let off = (page.phys - self.phys_base) as usize;
        let mut a = self.arena();
        if a.live.remove(&off) != Some(page.size_lg2) {
            a.double_frees += 1;
            return;
        }
        // Poison the freed table so a stale reader sees garbage.
        for i in (0..1usize << page.size_lg2).step_by(8) {
            self.word(off + i)
                .store(0xdead_beef_dead_beef, std::sync::atomic::Ordering::Relaxed);
        }
        a.free.entry(page.size_lg2).or_default().push(off);
        self.live.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn phys_to_virt(&self, pa: u64) -> *const std::sync::atomic::AtomicU64 {
        let off = pa.wrapping_sub(self.phys_base) as usize;
        self.base.as_ptr().wrapping_add(off).cast()
    }
}

impl crate::pagetable::PhysMem for PtMem {
    fn read_u64(&self, pa: u64) -> Option<u64> {
        let off = self.is_live(pa)?;
        Some(self.word(off).load(std::sync::atomic::Ordering::Relaxed))
    }

    fn cmpxchg_u64(&self, pa: u64, old: u64, new: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.is_live(pa).is_some_and(|off| {
            self.word(off)
                .compare_exchange(old, new, Relaxed, Relaxed)
                .is_ok()
        })
    }
}
