//! Accesses the core makes for itself (upstream's internal accesses, used
//! by HW queues): an `IOMMUFD_OBJ_ACCESS` object with an ID like any other
//! but no fd and no driver ops, attached to one IOAS. While attached it
//! holds the IOAS and raises its IOVA alignment to `PAGE_SIZE`, as every
//! access that pins pages does. Unmaps never notify it: what it pins is
//! locked, so unmapping that range is `EBUSY` instead.

use crate::errno::{Result, EINVAL};
use crate::object::{Holder, Object, Payload};
use crate::platform::{Arc, CtxCell, PAGE_SIZE};
use crate::ucmd::Cx;
use core::sync::atomic::{AtomicU64, Ordering};

/// Unique access tags, the key of an access in its IOAS's alignment list
/// (shared by every kind of access).
static NEXT_ACCESS: AtomicU64 = AtomicU64::new(1);

/// A fresh access tag.
pub(crate) fn access_cookie() -> u64 {
    NEXT_ACCESS.fetch_add(1, Ordering::Relaxed)
}

/// An internal access.
pub struct InternalAccess {
    cookie: u64,
    /// The IOAS it is attached to.
    ioas: CtxCell<Option<Holder>>,
}

/// Creates an internal access and attaches it to `ioas_obj`
/// (`iommufd_access_create_internal` + `iommufd_access_attach_internal`).
/// The object is published at once, as upstream; the returned reference
/// is the creator's (`IOMMU_DESTROY` of the access is `EBUSY` while it
/// lives), to be given back through [`destroy`]. On failure nothing is
/// left, the ID included.
pub(crate) fn create(cx: &Cx<'_>, ioas_obj: &Arc<Object>) -> Result<Holder> {
    let new = cx
        .ictx
        .objects()
        .reserve(Payload::InternalAccess(InternalAccess {
            cookie: access_cookie(),
            ioas: CtxCell::new(None),
        }))?;
    let obj = new.object().cloned().ok_or(EINVAL)?;
    let owner = obj.hold();
    new.publish();
    if let Err(e) = attach(cx, &obj, ioas_obj) {
        destroy(cx, owner);
        return Err(e);
    }
    Ok(owner)
}

/// Joins the IOAS: its alignment becomes at least `PAGE_SIZE`
/// (`EADDRINUSE` if an area does not conform).
fn attach(cx: &Cx<'_>, obj: &Arc<Object>, ioas_obj: &Arc<Object>) -> Result {
    let acc = crate::payload!(obj, InternalAccess).ok_or(EINVAL)?;
    let ioas = crate::payload!(ioas_obj, Ioas).ok_or(EINVAL)?;
    ioas.iopt(cx.held)?.add_access(acc.cookie, PAGE_SIZE)?;
    *acc.ioas.get(cx.held)? = Some(ioas_obj.hold());
    Ok(())
}

/// Leaves the IOAS, whose alignment is recomputed (nothing if not
/// attached).
pub(crate) fn detach(cx: &Cx<'_>, obj: &Arc<Object>) -> Result {
    let acc = crate::payload!(obj, InternalAccess).ok_or(EINVAL)?;
    let Some(h) = acc.ioas.get(cx.held)?.take() else {
        return Ok(());
    };
    if let Some(ioas) = crate::payload!(h.object(), Ioas) {
        ioas.iopt(cx.held)?.remove_access(acc.cookie);
    }
    Ok(())
}

/// Gives back the creator's reference and removes the access from the
/// table (`iommufd_access_destroy_internal`); its ID is free again.
pub(crate) fn destroy(cx: &Cx<'_>, owner: Holder) {
    let obj = owner.object().clone();
    drop(owner);
    match cx.ictx.objects().remove_exact(&obj) {
        Ok(o) => crate::ucmd::destroy_object(cx, &o),
        Err(_) => crate::warn_once!("iommufd_rs: internal access {} still in use", obj.id()),
    }
}
