//! The platform layer: the only place that knows whether the code runs in
//! the kernel or in a host test. Portable modules use what this module
//! exports and never name `kernel::` or `std::` facilities directly.
//!
//! | facility            | kernel (`--cfg MODULE`)          | host (`cargo test`)        |
//! |---------------------|----------------------------------|----------------------------|
//! | [`Arc`]             | `kernel::sync::Arc` (fallible)   | `std::sync::Arc`           |
//! | [`IdTable`]         | an `XA_FLAGS_ALLOC1` xarray      | a `BTreeMap` under a mutex |
//! | [`UserMem`] backend | `kernel::uaccess::UserSlice`     | [`user::FakeUserMem`]      |
//! | [`log_warn`]        | `pr_warn!`                       | recorded for tests         |

use crate::errno::Result;

#[cfg(MODULE)]
#[path = "kernel.rs"]
mod imp;

#[cfg(not(MODULE))]
#[path = "user.rs"]
mod imp;

pub use imp::*;

/// Access to the memory of the process that issued an ioctl.
///
/// Addresses are plain numbers because they come from userspace; every
/// failure (unmapped, kernel address, overflow) is `EFAULT`.
pub trait UserMem {
    /// Copies `out.len()` bytes from user address `uaddr`.
    fn read(&self, uaddr: u64, out: &mut [u8]) -> Result;
    /// Copies `data` to user address `uaddr`.
    fn write(&self, uaddr: u64, data: &[u8]) -> Result;
}

/// Logs a warning at most once per call site, as a kernel log line in the
/// module and into the test log on the host.
#[macro_export]
macro_rules! warn_once {
    ($($arg:tt)*) => {{
        static ONCE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
        if !ONCE.swap(true, core::sync::atomic::Ordering::Relaxed) {
            $crate::platform::log_warn(format_args!($($arg)*));
        }
    }};
}

/// The CPU page size; pinning and accounting work in these units.
pub const PAGE_SIZE: u64 = 4096;

/// `CAP_IPC_LOCK`: pinned memory of such a task is not accounted.
pub const CAP_IPC_LOCK: i32 = 14;
/// `CAP_SYS_RESOURCE`: needed to change the accounting mode.
pub const CAP_SYS_RESOURCE: i32 = 24;

/// State that is only touched while the file's context lock is held.
///
/// Every ioctl of one `/dev/iommu` file runs under that file's
/// [`CtxLock`]; objects keep their mutable state in `CtxCell`s and reach it
/// with the [`Held`] proof of the lock. Borrowing is checked at run time, so
/// a logic error that borrows one cell twice is an error (`EDEADLK`), never
/// aliasing.
pub struct CtxCell<T>(core::cell::RefCell<T>);

// SAFETY: the inner `RefCell` is only reached through `get`, which needs a
// `Held` of the one context lock, so no two threads touch it at once.
unsafe impl<T: Send> Sync for CtxCell<T> {}

impl<T> CtxCell<T> {
    /// Wraps `v`.
    pub const fn new(v: T) -> Self {
        Self(core::cell::RefCell::new(v))
    }

    /// Borrows the state; `EDEADLK` (a bug, logged once) if it is already
    /// borrowed.
    pub fn get<'a>(&'a self, _held: &'a Held<'_>) -> Result<core::cell::RefMut<'a, T>> {
        self.0.try_borrow_mut().map_err(|_| {
            crate::warn_once!("iommufd_rs: object state borrowed twice");
            crate::errno::EDEADLK
        })
    }

    /// Exclusive access through a unique reference (no lock needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }

    /// Consumes the cell.
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

/// Fallible growth for the platform vector ([`PVec`]): `Vec` on the host,
/// `KVVec` (kvmalloc-backed) in the kernel.
pub trait VecExt<T> {
    /// Appends `v` (`ENOMEM`).
    fn try_push(&mut self, v: T) -> Result;
    /// Makes room for `n` more elements (`ENOMEM`).
    fn try_reserve_for(&mut self, n: usize) -> Result;
    /// Inserts `v` at `i <= len` (`ENOMEM`).
    fn try_insert(&mut self, i: usize, v: T) -> Result;
    /// Makes the vector `n` long, filling with `v` (`ENOMEM`).
    fn try_resize(&mut self, n: usize, v: T) -> Result
    where
        T: Clone;
    /// Removes the elements in `start..end`, keeping order.
    fn remove_range(&mut self, start: usize, end: usize);
    /// Removes element `i`, keeping order.
    fn remove_at(&mut self, i: usize) -> Option<T>;
}
