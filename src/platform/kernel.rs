//! Kernel backend of the platform layer. The only portable-facing file that
//! touches `kernel::` and raw bindings; everything `unsafe` about the object
//! table lives here.

use crate::errno::{Errno, Result, EBUSY, EFAULT, ENOMEM};
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

/// Converts a kernel error into the errno portable code reports.
pub fn errno_of(e: Error) -> Errno {
    crate::errno::from_kernel(e.to_errno())
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
