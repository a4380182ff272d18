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
