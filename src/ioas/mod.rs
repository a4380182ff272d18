//! IO address spaces: format-agnostic IOVA -> user memory maps that are copied
//! into every attached domain and in-kernel access.
//!
//! This is the object `IOMMU_IOAS_ALLOC` creates. Areas, pinned pages, the
//! IOVA allocator and reserved ranges arrive with the IOAS core (issue 3) and
//! live in this directory.

use crate::errno::{Result, EOPNOTSUPP};
use crate::object::Payload;
use crate::uapi::IommuIoasAlloc;
use crate::ucmd::{Ictx, Ucmd};

/// An IO address space. It holds no mappings yet.
pub struct Ioas {}

/// `IOMMU_IOAS_ALLOC`.
pub(crate) fn ioas_alloc(ictx: &Ictx, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: IommuIoasAlloc = ucmd.read()?;
    if cmd.flags != 0 {
        return Err(EOPNOTSUPP);
    }
    let new = ictx.objects().reserve(Payload::Ioas(Ioas {}))?;
    cmd.out_ioas_id = new.id();
    // As upstream: the ID reaches userspace before the object is visible; if
    // the copy fails the object is aborted and userspace never saw it.
    ucmd.respond(&cmd)?;
    new.publish();
    Ok(())
}
