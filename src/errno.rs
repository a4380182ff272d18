//! Error numbers returned to userspace.
//!
//! Portable code returns `Result<T, Errno>`; the kernel glue turns an `Errno`
//! into `kernel::error::Error`, the host build compares them in tests. The
//! values are Linux's (asm-generic/errno-base.h, errno.h).

/// A positive Linux errno value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(i32);

impl Errno {
    /// The errno as the positive number userspace sees in `errno`.
    pub const fn as_positive(self) -> i32 {
        self.0
    }
}

/// The result type of every portable operation.
pub type Result<T = ()> = core::result::Result<T, Errno>;

macro_rules! errnos {
    ($($name:ident = $val:expr, $doc:literal;)*) => {
        $(#[doc = $doc] pub const $name: Errno = Errno($val);)*

        impl Errno {
            /// The symbolic name, for log lines and test messages.
            pub const fn name(self) -> &'static str {
                match self.0 {
                    $($val => stringify!($name),)*
                    _ => "E?",
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted.";
    ENOENT = 2, "No such object or IOVA.";
    EIO = 5, "I/O error.";
    ENOMEM = 12, "Out of memory.";
    EFAULT = 14, "Bad user address.";
    EBUSY = 16, "Object still in use.";
    EEXIST = 17, "Already exists.";
    ENODEV = 19, "No such device.";
    EINVAL = 22, "Invalid argument.";
    ENOSPC = 28, "No space (no free ID or IOVA).";
    ENOTTY = 25, "Unknown ioctl.";
    E2BIG = 7, "Non-zero bytes past the struct the kernel knows.";
    EOVERFLOW = 75, "Value too large.";
    EMSGSIZE = 90, "Output buffer too small.";
    EOPNOTSUPP = 95, "Flag or reserved field not supported.";
    EADDRINUSE = 98, "Address range in use or reserved.";
    ENXIO = 6, "No such offset.";
    EBADF = 9, "Bad file descriptor.";
    EDEADLK = 35, "An access does not respond to unmap requests.";
    EBADE = 52, "Pinned pages differ from the user's.";
    EBADFD = 77, "Not the expected kind of file.";
    ERANGE = 34, "Result out of range.";
    ESPIPE = 29, "Read or write size not a multiple of the record size.";
}

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Maps a negative kernel error code to an [`Errno`].
pub const fn from_kernel(neg: i32) -> Errno {
    Errno(-neg)
}
