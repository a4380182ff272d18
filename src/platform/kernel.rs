//! Kernel backend of the platform layer. The only portable-facing file that
//! touches `kernel::` and raw bindings; everything `unsafe` about the object
//! table lives here.

use crate::errno::{from_kernel, Result, EBUSY, EFAULT, ENOMEM};
use core::{marker::PhantomData, ptr};
use kernel::{
    alloc::flags::GFP_KERNEL_ACCOUNT,
    bindings,
    prelude::*,
    types::{ForeignOwnable, Opaque},
    uaccess::{UserPtr, UserSlice},
};

/// Reference-counted pointer with fallible allocation.
pub type Arc<T> = kernel::sync::Arc<T>;

/// Allocates an [`Arc`], `ENOMEM` on failure.
pub fn arc_new<T>(value: T) -> Result<Arc<T>> {
    Arc::new(value, GFP_KERNEL_ACCOUNT).map_err(|_| ENOMEM)
}

/// Prints a warning to the kernel log.
pub fn log_warn(args: core::fmt::Arguments<'_>) {
    pr_warn!("{}\n", args);
}

/// The user memory of the current task.
pub struct UserSpace;

fn uptr(uaddr: u64) -> Result<UserPtr> {
    Ok(UserPtr::from_addr(
        usize::try_from(uaddr).map_err(|_| EFAULT)?,
    ))
}

impl super::UserMem for UserSpace {
    fn read(&self, uaddr: u64, out: &mut [u8]) -> Result {
        UserSlice::new(uptr(uaddr)?, out.len())
            .reader()
            .read_slice(out)
            .map_err(|_| EFAULT)
    }

    fn write(&self, uaddr: u64, data: &[u8]) -> Result {
        UserSlice::new(uptr(uaddr)?, data.len())
            .writer()
            .write_slice(data)
            .map_err(|_| EFAULT)
    }
}

/// The file's context lock (see [`super::CtxCell`]).
pub struct CtxLock {
    m: Pin<KBox<kernel::sync::Mutex<()>>>,
}

/// Proof that the context lock is held, for as long as it lives.
pub struct Held<'a> {
    _g: kernel::sync::MutexGuard<'a, ()>,
}

impl CtxLock {
    /// A new, unlocked context lock (`ENOMEM`).
    pub fn new() -> Result<Self> {
        Ok(Self {
            m: KBox::pin_init(kernel::new_mutex!((), "iommufd_rs_ctx"), GFP_KERNEL_ACCOUNT)
                .map_err(|_| ENOMEM)?,
        })
    }

    /// Takes the lock (sleeps).
    pub fn lock(&self) -> Held<'_> {
        Held { _g: self.m.lock() }
    }
}

/// The platform vector: kvmalloc-backed, fallible.
pub type PVec<T> = KVVec<T>;

impl<T> super::VecExt<T> for KVVec<T> {
    fn try_push(&mut self, v: T) -> Result {
        self.push(v, GFP_KERNEL_ACCOUNT).map_err(|_| ENOMEM)
    }

    fn try_reserve_for(&mut self, n: usize) -> Result {
        self.reserve(n, GFP_KERNEL_ACCOUNT).map_err(|_| ENOMEM)
    }

    fn try_insert(&mut self, i: usize, v: T) -> Result {
        self.reserve(1, GFP_KERNEL_ACCOUNT).map_err(|_| ENOMEM)?;
        self.insert_within_capacity(i, v).map_err(|_| ENOMEM)
    }

    fn try_resize(&mut self, n: usize, v: T) -> Result
    where
        T: Clone,
    {
        self.resize(n, v, GFP_KERNEL_ACCOUNT).map_err(|_| ENOMEM)
    }

    fn remove_range(&mut self, start: usize, end: usize) {
        let len = self.len();
        if start >= end || end > len {
            return;
        }
        self.as_mut_slice()[start..].rotate_left(end - start);
        self.truncate(len - (end - start));
    }

    fn remove_at(&mut self, i: usize) -> Option<T> {
        self.remove(i).ok()
    }
}

/// `struct page`, only ever handled by pointer.
#[repr(C)]
pub struct RawPage {
    _opaque: [u8; 0],
}

/// `struct file`, only ever handled by pointer.
#[repr(C)]
pub struct RawFile {
    _opaque: [u8; 0],
}

/// The opaque pinning source of the C shim.
#[repr(C)]
struct RawSource {
    _opaque: [u8; 0],
}

extern "C" {
    fn iommufd_rs_source_user(base: usize, writable: bool) -> *mut RawSource;
    fn iommufd_rs_source_file(
        fd: i32,
        start: u64,
        length: u64,
        writable: bool,
        out: *mut *mut RawSource,
    ) -> i32;
    fn iommufd_rs_source_dmabuf(src: *const RawSource) -> *mut core::ffi::c_void;
    fn iommufd_rs_source_revoked(src: *const RawSource) -> bool;
    fn iommufd_rs_dmabuf_create(len: usize, open_flags: u32) -> i32;
    fn iommufd_rs_dmabuf_revoke(fd: i32, revoked: bool, id: *mut *mut core::ffi::c_void) -> i32;
    fn iommufd_rs_source_free(src: *mut RawSource);
    fn iommufd_rs_source_set_mm_mode(src: *mut RawSource);
    fn iommufd_rs_source_is_file(src: *const RawSource) -> bool;
    fn iommufd_rs_source_pin(
        src: *mut RawSource,
        index: usize,
        npages: usize,
        pages: *mut *mut RawPage,
        write: bool,
    ) -> isize;
    fn iommufd_rs_unpin_range(src: *const RawSource, pfn: u64, npages: usize);
    fn iommufd_rs_pfn_to_page(pfn: u64) -> *mut RawPage;
    fn iommufd_rs_source_account(src: *mut RawSource, npages: usize, inc: bool) -> i32;
    fn iommufd_rs_owner_new(src: *const RawSource, npages: usize, out: *mut *mut RawSource) -> i32;
    fn iommufd_rs_owner_commit(src: *mut RawSource, owner: *mut RawSource, npages: usize);
    fn iommufd_rs_owner_abort(owner: *mut RawSource, npages: usize);
    fn iommufd_rs_page_pfn(page: *mut RawPage) -> usize;
    fn iommufd_rs_user_page_info(uaddr: usize, pfn: *mut u64, pins: *mut i32) -> i32;
    fn iommufd_rs_page_copy(
        page: *mut RawPage,
        offset: u32,
        buf: *mut core::ffi::c_void,
        len: u32,
        to_page: bool,
    );
    fn iommufd_rs_capable(cap: i32) -> bool;
    fn iommufd_rs_access_file(priv_: *mut core::ffi::c_void, filep: *mut *mut RawFile) -> i32;
    fn iommufd_rs_fd_install(fd: i32, file: *mut RawFile);
    fn iommufd_rs_fd_abort(fd: i32, file: *mut RawFile);
    fn iommufd_rs_access_get(fd: i32, filep: *mut *mut RawFile) -> *mut core::ffi::c_void;
    fn iommufd_rs_file_put(file: *mut RawFile);
}

fn check(rc: i32) -> Result {
    if rc < 0 {
        Err(from_kernel(rc))
    } else {
        Ok(())
    }
}

/// A pinned page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub struct PageRef(*mut RawPage);

// SAFETY: a pinned page may be used and released from any thread.
unsafe impl Send for PageRef {}
// SAFETY: `PageRef` is an address; it gives no access by itself.
unsafe impl Sync for PageRef {}

impl Default for PageRef {
    /// No page (a null pointer).
    #[allow(clippy::derivable_impls)] // `*mut T` has no derivable Default.
    fn default() -> Self {
        Self(ptr::null_mut())
    }
}

impl PageRef {
    /// The page at physical address `phys`, which must be a page a pin is
    /// held on (its `struct page` exists and stays).
    pub fn from_phys(phys: u64) -> Self {
        // SAFETY: `pfn_to_page` is arithmetic on the vmemmap for a valid
        // pfn; the caller's pin keeps the page.
        Self(unsafe { iommufd_rs_pfn_to_page(phys / super::PAGE_SIZE) })
    }

    /// The physical address of the page.
    pub fn phys(self) -> u64 {
        // SAFETY: `self` is a page pinned by `PinSource::pin`.
        (unsafe { iommufd_rs_page_pfn(self.0) } as u64) * super::PAGE_SIZE
    }

    /// Copies between `buf` and the page at `offset` (`to_page` = write).
    pub fn copy(self, offset: usize, buf: &mut [u8], to_page: bool) {
        let len = buf
            .len()
            .min(super::PAGE_SIZE as usize - offset.min(super::PAGE_SIZE as usize));
        // SAFETY: the page is pinned, `offset + len <= PAGE_SIZE` and `buf`
        // is valid for `len` bytes.
        unsafe {
            iommufd_rs_page_copy(
                self.0,
                offset as u32,
                buf.as_mut_ptr().cast(),
                len as u32,
                to_page,
            )
        }
    }
}

/// `IOMMU_TEST_OP_DMABUF_GET`: exports a mock dma-buf of `len` bytes;
/// returns its fd.
pub fn dmabuf_create(len: usize, open_flags: u32) -> Result<i32> {
    // SAFETY: plain call.
    let fd = unsafe { iommufd_rs_dmabuf_create(len, open_flags) };
    check(fd)?;
    Ok(fd)
}

/// `IOMMU_TEST_OP_DMABUF_REVOKE`: sets a mock dma-buf's revoked state;
/// returns its identity (compare with [`PinSource::dmabuf_id`]).
pub fn dmabuf_revoke(fd: i32, revoked: bool) -> Result<usize> {
    let mut id = ptr::null_mut();
    // SAFETY: `id` is a valid out pointer.
    check(unsafe { iommufd_rs_dmabuf_revoke(fd, revoked, &mut id) })?;
    Ok(id as usize)
}

/// Where pinned pages come from and who is charged for them: user memory of
/// the process that mapped it, or a memfd.
pub struct PinSource {
    raw: ptr::NonNull<RawSource>,
}

// SAFETY: the shim's source holds counted references (mm, task, user, file)
// that may be used and dropped from any thread; mutation happens only under
// the context lock.
unsafe impl Send for PinSource {}
// SAFETY: as above.
unsafe impl Sync for PinSource {}

/// A new owner for a source (`IOMMU_IOAS_CHANGE_PROCESS`), already charged.
/// Dropping it without [`NewOwner::commit`] refunds the charge.
pub struct NewOwner {
    raw: ptr::NonNull<RawSource>,
    npages: usize,
}

impl NewOwner {
    /// Makes it the owner of `src`; the old owner is uncharged.
    pub fn commit(self, src: &PinSource) {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: both are owned, valid sources; the shim frees `raw`.
        unsafe { iommufd_rs_owner_commit(src.raw.as_ptr(), this.raw.as_ptr(), this.npages) }
    }
}

impl Drop for NewOwner {
    fn drop(&mut self) {
        // SAFETY: `raw` is owned and not committed.
        unsafe { iommufd_rs_owner_abort(self.raw.as_ptr(), self.npages) }
    }
}

impl PinSource {
    /// User memory of the current process from page-aligned `base`.
    pub fn user(base: u64, writable: bool) -> Result<Self> {
        let base = usize::try_from(base).map_err(|_| EFAULT)?;
        // SAFETY: plain call; returns an owned source or NULL.
        let raw = unsafe { iommufd_rs_source_user(base, writable) };
        Ok(Self {
            raw: ptr::NonNull::new(raw).ok_or(ENOMEM)?,
        })
    }

    /// The file behind `fd` (a memfd or a mock dma-buf), for bytes
    /// `start..start + length`; page 0 is `start` rounded down.
    pub fn file(fd: i32, start: u64, length: u64, writable: bool) -> Result<Self> {
        let mut raw = ptr::null_mut();
        // SAFETY: `raw` is a valid out pointer.
        check(unsafe { iommufd_rs_source_file(fd, start, length, writable, &mut raw) })?;
        Ok(Self {
            raw: ptr::NonNull::new(raw).ok_or(ENOMEM)?,
        })
    }

    /// Switches user-mode accounting to mm mode (VFIO style).
    pub fn set_mm_mode(&self) {
        // SAFETY: `raw` is owned and valid; callers hold the context lock.
        unsafe { iommufd_rs_source_set_mm_mode(self.raw.as_ptr()) }
    }

    /// True for memfd sources.
    pub fn is_file(&self) -> bool {
        // SAFETY: `raw` is owned and valid.
        unsafe { iommufd_rs_source_is_file(self.raw.as_ptr()) }
    }

    /// The dma-buf identity of a dma-buf source.
    pub fn dmabuf_id(&self) -> Option<usize> {
        // SAFETY: `raw` is owned and valid.
        let p = unsafe { iommufd_rs_source_dmabuf(self.raw.as_ptr()) };
        (!p.is_null()).then_some(p as usize)
    }

    /// True while a dma-buf source is revoked.
    pub fn revoked(&self) -> bool {
        // SAFETY: `raw` is owned and valid.
        unsafe { iommufd_rs_source_revoked(self.raw.as_ptr()) }
    }

    /// Releases one pin on each of `npages` physically contiguous pages
    /// from `phys`, taken by [`Self::pin`] (marked dirty if the source is
    /// writable: a device may have written them).
    pub fn unpin_run(&self, phys: u64, npages: usize) {
        if npages == 0 {
            return;
        }
        // SAFETY: the caller holds a pin from `pin` on every page of the run
        // and gives it up; the shim only releases pins (none for dma-bufs).
        unsafe { iommufd_rs_unpin_range(self.raw.as_ptr(), phys / super::PAGE_SIZE, npages) }
    }

    /// Pins pages from page `index` into `out` (`FOLL_WRITE` if `write`);
    /// returns how many (> 0).
    pub fn pin(&self, index: u64, out: &mut [PageRef], write: bool) -> Result<usize> {
        let index = usize::try_from(index).map_err(|_| EFAULT)?;
        // SAFETY: `out` has room for `out.len()` page pointers.
        let rc = unsafe {
            iommufd_rs_source_pin(
                self.raw.as_ptr(),
                index,
                out.len(),
                out.as_mut_ptr().cast(),
                write,
            )
        };
        if rc < 0 {
            return Err(from_kernel(rc as i32));
        }
        Ok(rc as usize)
    }

    /// Charges (`inc`) or uncharges `npages` pinned pages.
    pub fn account(&self, npages: usize, inc: bool) -> Result {
        // SAFETY: `raw` is owned and valid.
        check(unsafe { iommufd_rs_source_account(self.raw.as_ptr(), npages, inc) })
    }

    /// A new owner (the current process) charged for `npages`.
    pub fn new_owner(&self, npages: usize) -> Result<NewOwner> {
        let mut raw = ptr::null_mut();
        // SAFETY: `raw` (ours) is valid, `raw` (out) a valid out pointer.
        check(unsafe { iommufd_rs_owner_new(self.raw.as_ptr(), npages, &mut raw) })?;
        Ok(NewOwner {
            raw: ptr::NonNull::new(raw).ok_or(ENOMEM)?,
            npages,
        })
    }
}

impl Drop for PinSource {
    fn drop(&mut self) {
        // SAFETY: `raw` is owned and freed exactly once.
        unsafe { iommufd_rs_source_free(self.raw.as_ptr()) }
    }
}

/// The page mapped at user address `uaddr` now: its physical address and
/// its FOLL_PIN count (`None` for compound pages).
pub fn user_page_info(uaddr: u64) -> Result<(u64, Option<u32>)> {
    let uaddr = usize::try_from(uaddr).map_err(|_| EFAULT)?;
    let (mut pfn, mut pins) = (0u64, 0i32);
    // SAFETY: the out pointers are valid.
    check(unsafe { iommufd_rs_user_page_info(uaddr, &mut pfn, &mut pins) })?;
    Ok((pfn * super::PAGE_SIZE, u32::try_from(pins).ok()))
}

/// `capable(cap)` for the current task.
pub fn capable(cap: i32) -> bool {
    // SAFETY: plain call.
    unsafe { iommufd_rs_capable(cap) }
}

/// A file under construction: an fd reserved, the file created with a
/// leaked `Arc` of its owner as private data. Dropping it (failure)
/// releases the fd and the file, whose release hook gets the `Arc` back.
struct ReservedFile {
    fd: i32,
    file: *mut RawFile,
}

impl ReservedFile {
    /// Creates a file for `owner` with `create`, a shim constructor that
    /// takes the private pointer and an out pointer for the file and
    /// returns the fd or `-errno`.
    fn new<T: Send + Sync + 'static>(
        owner: Arc<T>,
        create: impl FnOnce(*mut core::ffi::c_void, &mut *mut RawFile) -> i32,
    ) -> Result<Self> {
        let raw = owner.into_foreign();
        let mut file = ptr::null_mut();
        let fd = create(raw.cast(), &mut file);
        if fd < 0 {
            // SAFETY: the file was not created, so we still own `raw`.
            drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(raw) });
            return Err(from_kernel(fd));
        }
        Ok(Self { fd, file })
    }

    /// Makes the fd visible to userspace.
    fn install(self) {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: fd and file come from a shim constructor (`new`).
        unsafe { iommufd_rs_fd_install(this.fd, this.file) }
    }
}

impl Drop for ReservedFile {
    fn drop(&mut self) {
        // SAFETY: fd and file come from a shim constructor and were not
        // installed; the release hook runs later and takes the owner back.
        unsafe { iommufd_rs_fd_abort(self.fd, self.file) }
    }
}

/// An access file under construction (see [`ReservedFile`]).
pub struct NewAccessFile(ReservedFile);

impl NewAccessFile {
    /// Creates the file for `owner`.
    pub fn new<T: Send + Sync + 'static>(owner: Arc<T>) -> Result<Self> {
        ReservedFile::new(owner, |raw, file| {
            // SAFETY: `raw` is a valid private pointer for the file's
            // lifetime; `file` is a valid out pointer.
            unsafe { iommufd_rs_access_file(raw, file) }
        })
        .map(Self)
    }

    /// The reserved fd number.
    pub fn fd(&self) -> i32 {
        self.0.fd
    }

    /// Makes the fd visible to userspace.
    pub fn install(self) {
        self.0.install()
    }
}

/// Looks up the access file behind `fd`: the owner it was created with.
pub fn access_file_get<T: Send + Sync + 'static>(fd: i32) -> Option<Arc<T>> {
    let mut file = ptr::null_mut();
    // SAFETY: `file` is a valid out pointer.
    let raw = unsafe { iommufd_rs_access_get(fd, &mut file) };
    if raw.is_null() {
        return None;
    }
    // SAFETY: access files carry an `Arc<T>` from `NewAccessFile::new` (this
    // module creates no other kind), alive while we hold the file reference.
    let owner: Arc<T> = unsafe { <Arc<T> as ForeignOwnable>::borrow(raw.cast()) }.into();
    // SAFETY: the reference was taken by `iommufd_rs_access_get`.
    unsafe { iommufd_rs_file_put(file) };
    Some(owner)
}

/// Borrows the owner `Arc` of an access or event file from its private
/// data.
///
/// # Safety
///
/// `raw` must be the private data of a file created by [`NewAccessFile`] or
/// [`NewEventFile`] with the same `T`, still open.
pub unsafe fn file_owner_borrow<T: Send + Sync + 'static>(raw: *mut core::ffi::c_void) -> Arc<T> {
    // SAFETY: by the function's contract the `Arc` is alive.
    unsafe { <Arc<T> as ForeignOwnable>::borrow(raw.cast()) }.into()
}

/// Takes back the owner `Arc` of an access or event file on release.
///
/// # Safety
///
/// As [`file_owner_borrow`], and this is the file's release.
pub unsafe fn file_owner_release<T: Send + Sync + 'static>(raw: *mut core::ffi::c_void) -> Arc<T> {
    // SAFETY: by the function's contract.
    unsafe { <Arc<T> as ForeignOwnable>::from_foreign(raw.cast()) }
}

/// `XA_PRESENT`: the xa_find() filter matching every present entry.
const XA_PRESENT: bindings::xa_mark_t = 8;

/// An ID table on an `XA_FLAGS_ALLOC1` xarray, like upstream's object table:
/// `__xa_alloc` reserves a `XA_ZERO_ENTRY` (invisible to loads), publishing
/// stores the `Arc`, lookups and removals run under `xa_lock`.
///
/// # Invariants
///
/// `xa` is initialised, and every non-zero entry in it came from
/// `Arc::<U>::into_foreign` and is owned by the table.
pub struct IdTable<U: Send + Sync + 'static> {
    xa: Pin<KBox<Opaque<bindings::xarray>>>,
    _owns: PhantomData<Arc<U>>,
}

// SAFETY: the xarray serialises access with its own lock and the entries are
// `Arc<U>` with `U: Send + Sync`, which may be shared and sent across threads.
unsafe impl<U: Send + Sync> Send for IdTable<U> {}
// SAFETY: as above; every method takes `xa_lock` before touching entries.
unsafe impl<U: Send + Sync> Sync for IdTable<U> {}

/// Holds `xa_lock` of an [`IdTable`] until dropped.
struct XaGuard(*mut bindings::xarray);

impl Drop for XaGuard {
    fn drop(&mut self) {
        // SAFETY: the guard was created by `IdTable::lock`, which took the lock.
        unsafe { bindings::xa_unlock(self.0) };
    }
}

impl<U: Send + Sync + 'static> IdTable<U> {
    /// Creates an empty table.
    pub fn new() -> Result<Self> {
        let xa = KBox::pin_init(
            Opaque::ffi_init(|slot: *mut bindings::xarray| {
                // SAFETY: `slot` is valid, pinned storage for an xarray.
                unsafe { bindings::xa_init_flags(slot, bindings::XA_FLAGS_ALLOC1) }
            }),
            GFP_KERNEL_ACCOUNT,
        )
        .map_err(|_| ENOMEM)?;
        // INVARIANT: initialised above and empty.
        Ok(Self {
            xa,
            _owns: PhantomData,
        })
    }

    fn raw(&self) -> *mut bindings::xarray {
        self.xa.get()
    }

    fn lock(&self) -> XaGuard {
        // SAFETY: `raw()` is an initialised xarray (type invariant).
        unsafe { bindings::xa_lock(self.raw()) };
        XaGuard(self.raw())
    }

    /// Reserves the lowest free ID in `1..=i32::MAX` (`EBUSY` when full).
    pub fn reserve(&self) -> Result<u32> {
        let limit = bindings::xa_limit {
            max: i32::MAX as u32,
            min: 1,
        };
        let mut id = 0u32;
        let _g = self.lock();
        // SAFETY: the xarray is initialised and locked; a NULL entry makes
        // __xa_alloc store XA_ZERO_ENTRY, which loads see as empty. It may drop
        // and retake the lock to allocate, as GFP_KERNEL_ACCOUNT allows.
        let rc = unsafe {
            bindings::__xa_alloc(
                self.raw(),
                &mut id,
                ptr::null_mut(),
                limit,
                bindings::GFP_KERNEL_ACCOUNT,
            )
        };
        match rc {
            0 => Ok(id),
            rc if rc == -(bindings::ENOMEM as i32) => Err(ENOMEM),
            _ => Err(EBUSY),
        }
    }

    /// Makes `value` visible under the reserved `id`.
    pub fn publish(&self, id: u32, value: Arc<U>) {
        let entry = value.into_foreign();
        let _g = self.lock();
        // SAFETY: the xarray is locked; the slot exists (reserved), so the
        // store needs no allocation and cannot fail.
        let old = unsafe {
            bindings::__xa_store(self.raw(), id as usize, entry, bindings::GFP_KERNEL_ACCOUNT)
        };
        if !old.is_null() {
            crate::warn_once!("iommufd_rs: publish of object {} replaced an entry", id);
        }
    }

    /// Releases a reserved, never published `id`.
    pub fn unreserve(&self, id: u32) {
        let _g = self.lock();
        // SAFETY: the xarray is locked. Only a zero entry is erased: a load
        // returns NULL for it, anything else is someone's published object.
        unsafe {
            if bindings::xa_load(self.raw(), id as usize).is_null() {
                bindings::__xa_erase(self.raw(), id as usize);
            }
        }
    }

    /// Returns the published value under `id` if `accept` (run under the
    /// table lock, so it must not sleep) agrees.
    pub fn get_if(&self, id: u32, accept: impl FnOnce(&U) -> bool) -> Option<Arc<U>> {
        let _g = self.lock();
        // SAFETY: the xarray is locked and initialised.
        let entry = unsafe { bindings::xa_load(self.raw(), id as usize) };
        if entry.is_null() {
            return None;
        }
        // SAFETY: non-NULL entries came from `Arc::into_foreign` (invariant)
        // and stay in the table while we hold its lock.
        let borrowed = unsafe { <Arc<U> as ForeignOwnable>::borrow(entry) };
        if accept(&borrowed) {
            Some(borrowed.into())
        } else {
            None
        }
    }

    /// Removes the published value under `id` if `check` (run under the table
    /// lock) succeeds; `None` if there is none.
    pub fn remove_if(&self, id: u32, check: impl FnOnce(&U) -> Result) -> Option<Result<Arc<U>>> {
        let _g = self.lock();
        // SAFETY: the xarray is locked and initialised.
        let entry = unsafe { bindings::xa_load(self.raw(), id as usize) };
        if entry.is_null() {
            return None;
        }
        // SAFETY: as in `get_if`.
        let borrowed = unsafe { <Arc<U> as ForeignOwnable>::borrow(entry) };
        if let Err(e) = check(&borrowed) {
            return Some(Err(e));
        }
        // SAFETY: the xarray is locked; erasing hands the entry's ownership
        // back to us, and it came from `Arc::into_foreign`.
        Some(Ok(unsafe {
            bindings::__xa_erase(self.raw(), id as usize);
            <Arc<U> as ForeignOwnable>::from_foreign(entry)
        }))
    }

    /// Replaces the published entry `id` by `new` if `check` accepts the
    /// old one, which is returned; `None` if there is no entry.
    pub fn replace_if(
        &self,
        id: u32,
        check: impl FnOnce(&U) -> Result,
        new: Arc<U>,
    ) -> Option<Result<Arc<U>>> {
        let _g = self.lock();
        // SAFETY: the xarray is locked and initialised.
        let entry = unsafe { bindings::xa_load(self.raw(), id as usize) };
        if entry.is_null() {
            return None;
        }
        // SAFETY: as in `get_if`.
        let borrowed = unsafe { <Arc<U> as ForeignOwnable>::borrow(entry) };
        if let Err(e) = check(&borrowed) {
            return Some(Err(e));
        }
        let raw = new.into_foreign();
        // SAFETY: the xarray is locked; storing over a present entry needs
        // no allocation, so GFP_ATOMIC cannot fail for lack of memory.
        let old = unsafe {
            bindings::__xa_store(self.raw(), id as usize, raw.cast(), bindings::GFP_ATOMIC)
        };
        if old != entry {
            // SAFETY: the store failed (an error entry came back), so `raw`
            // was not consumed and the old entry is still in place.
            drop(unsafe { <Arc<U> as ForeignOwnable>::from_foreign(raw) });
            return Some(Err(ENOMEM));
        }
        // SAFETY: the old entry left the xarray; it came from `into_foreign`.
        Some(Ok(unsafe {
            <Arc<U> as ForeignOwnable>::from_foreign(entry)
        }))
    }

    /// The published entry with the lowest ID `>= from`.
    pub fn next_from(&self, from: u32) -> Option<(u32, Arc<U>)> {
        let mut index = from as usize;
        let _g = self.lock();
        // SAFETY: the xarray is locked; xa_find skips reserved entries.
        let entry = unsafe { bindings::xa_find(self.raw(), &mut index, usize::MAX, XA_PRESENT) };
        if entry.is_null() {
            return None;
        }
        // SAFETY: as in `get_if`.
        let borrowed = unsafe { <Arc<U> as ForeignOwnable>::borrow(entry) };
        Some((index as u32, borrowed.into()))
    }

    /// Removes and returns the published value with the lowest ID for which
    /// `pred` (run under the table lock) holds.
    pub fn remove_first_if(&self, mut pred: impl FnMut(&U) -> bool) -> Option<Arc<U>> {
        let mut index: usize = 0;
        let _g = self.lock();
        loop {
            // SAFETY: the xarray is locked; xa_find skips reserved entries.
            let entry =
                unsafe { bindings::xa_find(self.raw(), &mut index, usize::MAX, XA_PRESENT) };
            if entry.is_null() {
                return None;
            }
            // SAFETY: as in `get_if`.
            let borrowed = unsafe { <Arc<U> as ForeignOwnable>::borrow(entry) };
            if pred(&borrowed) {
                // SAFETY: as in `pop_first`.
                return Some(unsafe {
                    bindings::__xa_erase(self.raw(), index);
                    <Arc<U> as ForeignOwnable>::from_foreign(entry)
                });
            }
            index = index.checked_add(1)?;
        }
    }

    /// Removes and returns the published value with the lowest ID.
    pub fn pop_first(&self) -> Option<Arc<U>> {
        let mut index: usize = 0;
        let _g = self.lock();
        // SAFETY: the xarray is locked; xa_find skips reserved (zero) entries.
        let entry = unsafe { bindings::xa_find(self.raw(), &mut index, usize::MAX, XA_PRESENT) };
        if entry.is_null() {
            return None;
        }
        // SAFETY: the xarray is locked; the entry at `index` is ours and came
        // from `Arc::into_foreign`.
        Some(unsafe {
            bindings::__xa_erase(self.raw(), index);
            <Arc<U> as ForeignOwnable>::from_foreign(entry)
        })
    }
}

impl<U: Send + Sync + 'static> Drop for IdTable<U> {
    fn drop(&mut self) {
        while self.pop_first().is_some() {}
        // SAFETY: initialised; no entries are left, reservations included
        // (xa_destroy frees the internal nodes).
        unsafe { bindings::xa_destroy(self.raw()) };
    }
}

/// The kernel backend's own invariants, run by KUnit when the module loads
/// (the host build tests the portable logic on its own backend instead).
#[kernel::prelude::kunit_tests(iommufd_rs_platform)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};

    static DROPS: AtomicUsize = AtomicUsize::new(0);

    struct Counted(u32);

    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counted(v: u32) -> Arc<Counted> {
        arc_new(Counted(v)).expect("allocation in a KUnit test")
    }

    #[test]
    fn ids_are_lowest_free_from_one() {
        let t = IdTable::<Counted>::new().expect("table");
        assert_eq!(t.reserve(), Ok(1));
        assert_eq!(t.reserve(), Ok(2));
        assert_eq!(t.reserve(), Ok(3));
        t.unreserve(2);
        assert_eq!(t.reserve(), Ok(2));
    }

    #[test]
    fn reserved_ids_are_invisible_until_published() {
        let t = IdTable::<Counted>::new().expect("table");
        let id = t.reserve().expect("reserve");
        assert!(t.get_if(id, |_| true).is_none());
        assert!(t.remove_if(id, |_| Ok(())).is_none());
        assert!(t.pop_first().is_none());
        t.publish(id, counted(7));
        assert_eq!(t.get_if(id, |_| true).map(|o| o.0), Some(7));
        assert!(t.get_if(id, |o| o.0 == 8).is_none());
        // unreserve must not remove a published entry.
        t.unreserve(id);
        assert!(t.get_if(id, |_| true).is_some());
    }

    #[test]
    fn remove_respects_the_check_and_returns_ownership() {
        let t = IdTable::<Counted>::new().expect("table");
        let id = t.reserve().expect("reserve");
        t.publish(id, counted(1));
        let busy = t.remove_if(id, |_| Err(EBUSY));
        assert!(matches!(busy, Some(Err(e)) if e == EBUSY));
        assert!(t.get_if(id, |_| true).is_some());
        let before = DROPS.load(Ordering::Relaxed);
        let removed = t.remove_if(id, |_| Ok(()));
        assert!(matches!(removed, Some(Ok(_))));
        drop(removed);
        assert_eq!(DROPS.load(Ordering::Relaxed), before + 1);
        assert!(t.get_if(id, |_| true).is_none());
        assert_eq!(t.reserve(), Ok(id));
    }

    #[test]
    fn teardown_frees_every_entry() {
        let before = DROPS.load(Ordering::Relaxed);
        {
            let t = IdTable::<Counted>::new().expect("table");
            for v in 0..100 {
                let id = t.reserve().expect("reserve");
                t.publish(id, counted(v));
            }
            // A reservation left behind must not leak either.
            let _ = t.reserve().expect("reserve");
            let first = t.pop_first().expect("an entry");
            assert_eq!(first.0, 0);
        }
        assert_eq!(DROPS.load(Ordering::Relaxed), before + 100);
    }
}

extern "C" {
    fn iommufd_rs_event_file(
        kind: u32,
        priv_: *mut core::ffi::c_void,
        filep: *mut *mut RawFile,
        wakerp: *mut *mut core::ffi::c_void,
    ) -> i32;
    fn iommufd_rs_event_wake(waker: *mut core::ffi::c_void);
    fn iommufd_rs_pages_alloc(order: u32) -> *mut core::ffi::c_void;
    fn iommufd_rs_pages_free(va: *mut core::ffi::c_void, order: u32);
    fn iommufd_rs_virt_to_pfn(va: *mut core::ffi::c_void) -> u64;
    fn iommufd_rs_direct_map_base() -> u64;
}

/// Wakes the readers of an event fd.
///
/// # Invariants
///
/// The pointer is the wait queue of an event file that is still open: the
/// object owning the waker forgets it, under the context lock, in the
/// file's release hook before the queue is freed; wakers are used only
/// under that lock.
#[derive(Clone, Copy)]
pub struct Waker(*mut core::ffi::c_void);

// SAFETY: the wait queue is a kernel object usable from any thread; the
// type invariant bounds its lifetime.
unsafe impl Send for Waker {}
// SAFETY: as above; waking is thread-safe.
unsafe impl Sync for Waker {}

impl Waker {
    /// Wakes pollers and blocked readers.
    pub fn wake(&self) {
        // SAFETY: the queue is alive (type invariant).
        unsafe { iommufd_rs_event_wake(self.0) }
    }
}

/// An event file under construction: a FAULT or vEVENTQ fd (see
/// [`ReservedFile`]) and the waker of its wait queue.
pub struct NewEventFile {
    file: ReservedFile,
    waker: Waker,
}

impl NewEventFile {
    /// Creates the file of `kind` (see the shim) for `owner`.
    pub fn new<T: Send + Sync + 'static>(kind: u32, owner: Arc<T>) -> Result<Self> {
        let mut waker = ptr::null_mut();
        let file = ReservedFile::new(owner, |raw, file| {
            // SAFETY: `raw` stays valid until the release hook takes it
            // back; the out pointers are valid.
            unsafe { iommufd_rs_event_file(kind, raw, file, &mut waker) }
        })?;
        Ok(Self {
            file,
            waker: Waker(waker),
        })
    }

    /// The reserved fd number.
    pub fn fd(&self) -> i32 {
        self.file.fd
    }

    /// The waker of the file's wait queue.
    pub fn waker(&self) -> Waker {
        self.waker
    }

    /// Makes the fd visible to userspace.
    pub fn install(self) {
        self.file.install()
    }
}

/// Physically contiguous, zeroed kernel pages that userspace may `mmap`.
///
/// # Invariants
///
/// `va` is an allocation of order `order` from `iommufd_rs_pages_alloc`.
pub struct MmapPages {
    va: *mut core::ffi::c_void,
    order: u32,
}

// SAFETY: plain kernel memory, owned by this value.
unsafe impl Send for MmapPages {}
// SAFETY: the only accessors are `&self` methods writing through the
// pointer at creation time (before sharing) and reading addresses.
unsafe impl Sync for MmapPages {}

impl MmapPages {
    /// `n` (a power of two) zeroed pages.
    pub fn new(n: usize) -> Result<Self> {
        let order = n.next_power_of_two().trailing_zeros();
        // SAFETY: plain allocation.
        let va = unsafe { iommufd_rs_pages_alloc(order) };
        if va.is_null() {
            return Err(ENOMEM);
        }
        Ok(Self { va, order })
    }

    /// Stores `v` at byte `off`.
    pub fn write_u32(&self, off: usize, v: u32) {
        if off + 4 > self.len() as usize {
            return;
        }
        // SAFETY: in bounds of the allocation (checked above); u32 writes
        // at any offset use an unaligned store.
        unsafe {
            self.va
                .cast::<u8>()
                .add(off)
                .cast::<u32>()
                .write_unaligned(v)
        }
    }

    /// The first page frame.
    pub fn pfn(&self) -> u64 {
        // SAFETY: `va` is a live direct-map address (type invariant).
        unsafe { iommufd_rs_virt_to_pfn(self.va) }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        super::PAGE_SIZE << self.order
    }

    /// True for zero pages (never).
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for MmapPages {
    fn drop(&mut self) {
        // SAFETY: allocated with this order (type invariant); no mapping
        // remains (the owner cannot be destroyed while mapped).
        unsafe { iommufd_rs_pages_free(self.va, self.order) }
    }
}

/// A mutex under which nothing else is locked or faulted in (it nests
/// inside both the context lock and `mmap_lock`).
pub struct LeafMutex<T> {
    m: Pin<KBox<kernel::sync::Mutex<T>>>,
}

impl<T: Unpin> LeafMutex<T> {
    /// A new mutex around `v` (`ENOMEM`).
    pub fn new(v: T) -> Result<Self> {
        Ok(Self {
            m: KBox::pin_init(kernel::new_mutex!(v, "iommufd_rs_leaf"), GFP_KERNEL_ACCOUNT)
                .map_err(|_| ENOMEM)?,
        })
    }

    /// Takes the lock (sleeps).
    pub fn lock(&self) -> impl core::ops::DerefMut<Target = T> + '_ {
        self.m.lock()
    }
}

/// Page-table memory: zeroed pages from the page allocator (charged to
/// the caller's memcg, as upstream's `iommu_alloc_pages`), addressed
/// through the direct map.
///
/// x86-64 only for now: the direct map is `virt = __va(0) + phys` there
/// (arm64 needs `PAGE_OFFSET - PHYS_OFFSET` and a `dma_wmb()` before a
/// table is published, which come with the SMMUv3 driver on arm64), and
/// table orders assume 4 KiB pages.
pub struct PtMem {
    base: u64,
}

#[cfg(not(CONFIG_X86_64))]
compile_error!("platform::PtMem assumes the x86-64 direct map (see its documentation)");
const _: () = assert!(kernel::page::PAGE_SHIFT == 12, "PtMem assumes 4 KiB pages");

impl PtMem {
    /// An allocator over the direct map.
    pub fn new() -> Self {
        // SAFETY: no preconditions; returns a constant.
        let base = unsafe { iommufd_rs_direct_map_base() };
        Self { base }
    }
}

impl Default for PtMem {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `iommufd_rs_pages_alloc` returns zeroed, naturally aligned
// direct-map pages (tables smaller than a page get a whole page), valid
// until freed; the direct map is `virt = base + phys` for all of them.
unsafe impl crate::pagetable::TableMem for PtMem {
    fn alloc(&self, size_lg2: u32) -> Option<crate::pagetable::TablePage> {
        let order = size_lg2.saturating_sub(12);
        // SAFETY: no preconditions; NULL on failure.
        let va = unsafe { iommufd_rs_pages_alloc(order) };
        let virt = core::ptr::NonNull::new(va.cast::<core::sync::atomic::AtomicU64>())?;
        // SAFETY: `va` is a live direct-map allocation.
        let pfn = unsafe { iommufd_rs_virt_to_pfn(va) };
        Some(crate::pagetable::TablePage {
            virt,
            phys: pfn << 12,
            size_lg2: size_lg2.max(12),
        })
    }

    unsafe fn free(&self, page: crate::pagetable::TablePage) {
        // SAFETY: the caller guarantees `page` came from `alloc` (whose
        // order is size_lg2 - 12) and is unreferenced.
        unsafe {
            iommufd_rs_pages_free(page.virt.as_ptr().cast(), page.size_lg2.saturating_sub(12))
        }
    }

    fn phys_to_virt(&self, pa: u64) -> *const core::sync::atomic::AtomicU64 {
        (self.base.wrapping_add(pa)) as usize as *const core::sync::atomic::AtomicU64
    }
}

/// Physical memory as a walker model reads it in the kernel (KUnit): a
/// view of the direct map.
pub struct KernelPhys {
    base: u64,
}

impl KernelPhys {
    /// A view for walker models.
    ///
    /// # Safety
    ///
    /// Every physical address read or updated through the view must lie in
    /// a live page-table page (tables the caller built and keeps alive, or
    /// io-pgtable's) for as long as the view is used.
    pub unsafe fn new() -> Self {
        // SAFETY: no preconditions; returns a constant.
        let base = unsafe { iommufd_rs_direct_map_base() };
        Self { base }
    }

    fn word(&self, pa: u64) -> &core::sync::atomic::AtomicU64 {
        let p = self.base.wrapping_add(pa) as usize as *const core::sync::atomic::AtomicU64;
        // SAFETY: `new`'s caller guarantees `pa` is in a live table page,
        // which the direct map maps at `base + pa`.
        unsafe { &*p }
    }
}

impl crate::pagetable::PhysMem for KernelPhys {
    fn read_u64(&self, pa: u64) -> Option<u64> {
        Some(self.word(pa).load(core::sync::atomic::Ordering::Relaxed))
    }

    fn cmpxchg_u64(&self, pa: u64, old: u64, new: u64) -> bool {
        use core::sync::atomic::Ordering::Relaxed;
        self.word(pa)
            .compare_exchange(old, new, Relaxed, Relaxed)
            .is_ok()
    }
}
