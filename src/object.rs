//! The per-fd object table, with upstream's lifetime rules.
//!
//! * IDs come from 1 and share one namespace for every kind of object.
//! * An object is created in two steps: [`ObjectTable::reserve`] takes an ID
//!   that nobody can look up yet, [`NewObject::publish`] makes it visible once
//!   nothing can fail any more (after the reply reached userspace). Dropping an
//!   unpublished [`NewObject`] aborts: the ID is freed, the object dropped.
//! * Two counters per object: `users` counts structural references (the table
//!   holds one; a HWPT using an IOAS will hold another) and `inflight` counts
//!   ioctl-scoped lookups ([`ObjRef`]), which also hold a `users` reference
//!   while they last. `IOMMU_DESTROY` succeeds only when the table holds the
//!   sole reference, else `EBUSY`; it never waits. `inflight` lets
//!   kernel-initiated removals (device unbind) wait for lookups to drain.
//! * Memory lifetime is the platform [`Arc`]: a removed object is freed when
//!   its last `Arc` goes, which may be after the table dropped it.

use crate::device_bind::Device;
use crate::drivers::mock::{SelftestDevice, StAccessObj};
use crate::errno::{Result, EBUSY, ENOENT};
use crate::hw_pagetable::eventq::{Fault, Veventq};
use crate::hw_pagetable::viommu::{HwQueue, Vdevice, Viommu};
use crate::hw_pagetable::{HwptNested, HwptPaging};
use crate::ioas::Ioas;
use crate::platform::{arc_new, Arc, IdTable, PVec, VecExt};
use core::sync::atomic::{AtomicU32, Ordering};

/// The kinds of object userspace can name by ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjKind {
    /// An IO address space (`IOMMU_IOAS_ALLOC`).
    Ioas,
    /// A bound device (created by its driver; here the mock driver).
    Device,
    /// A paging hardware page table (an IOMMU domain over an IOAS).
    HwptPaging,
    /// An in-kernel access to an IOAS (emulated devices, the selftest).
    Access,
    /// A selftest object (mock device wrapper, `IOMMUFD_OBJ_SELFTEST`).
    Selftest,
    /// A nested HWPT (stage 1 over a nesting parent).
    HwptNested,
    /// A virtual IOMMU.
    Viommu,
    /// A virtual device of a vIOMMU.
    Vdevice,
    /// A vIOMMU's event queue.
    Veventq,
    /// A vIOMMU's hardware queue.
    HwQueue,
    /// An I/O page fault queue.
    Fault,
    /// The ID of a vDEVICE that went away with its device: nothing can be
    /// looked up or destroyed under it, and the ID is not reused.
    Tombstone,
}

/// What an object is; the kind is derived from it.
pub enum Payload {
    /// An IO address space.
    Ioas(Ioas),
    /// A bound device.
    Device(Device),
    /// A paging HWPT.
    HwptPaging(HwptPaging),
    /// An access.
    Access(StAccessObj),
    /// An access the core made for itself (a HW queue's).
    InternalAccess(crate::ioas::internal_access::InternalAccess),
    /// A selftest mock device.
    Selftest(SelftestDevice),
    /// A nested HWPT.
    HwptNested(HwptNested),
    /// A vIOMMU.
    Viommu(Viommu),
    /// A vDEVICE.
    Vdevice(Vdevice),
    /// A vEVENTQ.
    Veventq(Veventq),
    /// A HW queue.
    HwQueue(HwQueue),
    /// A FAULT queue.
    Fault(Fault),
    /// A tombstoned ID.
    Tombstone,
}

impl Payload {
    /// The kind userspace-visible lookups match against.
    pub fn kind(&self) -> ObjKind {
        match self {
            Payload::Ioas(_) => ObjKind::Ioas,
            Payload::Device(_) => ObjKind::Device,
            Payload::HwptPaging(_) => ObjKind::HwptPaging,
            Payload::Access(_) | Payload::InternalAccess(_) => ObjKind::Access,
            Payload::Selftest(_) => ObjKind::Selftest,
            Payload::HwptNested(_) => ObjKind::HwptNested,
            Payload::Viommu(_) => ObjKind::Viommu,
            Payload::Vdevice(_) => ObjKind::Vdevice,
            Payload::Veventq(_) => ObjKind::Veventq,
            Payload::HwQueue(_) => ObjKind::HwQueue,
            Payload::Fault(_) => ObjKind::Fault,
            Payload::Tombstone => ObjKind::Tombstone,
        }
    }
}

/// An object in the table.
pub struct Object {
    id: u32,
    users: AtomicU32,
    inflight: AtomicU32,
    payload: Payload,
}

/// Returns the payload of `$obj` if it is a `Payload::$variant`.
#[macro_export]
macro_rules! payload {
    ($obj:expr, $variant:ident) => {
        match $obj.payload() {
            $crate::object::Payload::$variant(p) => Some(p),
            _ => None,
        }
    };
}

impl Object {
    /// The object's payload.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The object's ID.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Drops the table's reference if it is the only one (for removal).
    fn take_last_user(&self) -> bool {
        self.users
            .compare_exchange(1, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Takes a structural reference (`users`), e.g. a HWPT on its IOAS.
    pub fn hold(self: &Arc<Self>) -> Holder {
        self.users.fetch_add(1, Ordering::AcqRel);
        Holder { obj: self.clone() }
    }

    /// The number of structural users, the table's own reference included.
    pub fn users(&self) -> u32 {
        self.users.load(Ordering::Acquire)
    }

    /// Takes a structural reference unless the object is being destroyed
    /// (`users` already 0); for `mmap`, which runs outside the context lock.
    pub fn try_hold_raw(&self) -> bool {
        let mut cur = self.users.load(Ordering::Acquire);
        while cur != 0 {
            match self
                .users
                .compare_exchange(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(v) => cur = v,
            }
        }
        false
    }

    /// The `users` counter itself, for references held by C code (VMAs of
    /// `mmap` regions: `open` increments it, `close` decrements it).
    pub fn users_counter(&self) -> &AtomicU32 {
        &self.users
    }

    /// The number of live ioctl-scoped lookups.
    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Acquire)
    }
}

/// A structural reference on an object: while it lives, `IOMMU_DESTROY` of
/// the object is `EBUSY`.
pub struct Holder {
    obj: Arc<Object>,
}

impl Holder {
    /// The held object.
    pub fn object(&self) -> &Arc<Object> {
        &self.obj
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.obj.users.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An ioctl-scoped reference to a published object. While it lives the
/// object cannot be destroyed by `IOMMU_DESTROY` (`EBUSY`).
pub struct ObjRef {
    obj: Arc<Object>,
}

impl ObjRef {
    /// The referenced object.
    pub fn object(&self) -> &Arc<Object> {
        &self.obj
    }
}

impl Drop for ObjRef {
    fn drop(&mut self) {
        self.obj.inflight.fetch_sub(1, Ordering::AcqRel);
        self.obj.users.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An object whose ID is reserved but not yet visible.
#[must_use = "an unpublished object is aborted when dropped"]
pub struct NewObject<'t> {
    table: &'t ObjectTable,
    id: u32,
    obj: Option<Arc<Object>>,
}

impl NewObject<'_> {
    /// The reserved ID, to report to userspace before publishing.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The object being built.
    pub fn object(&self) -> Option<&Arc<Object>> {
        self.obj.as_ref()
    }

    /// Makes the object visible. Call only when nothing can fail any more.
    pub fn publish(mut self) {
        if let Some(obj) = self.obj.take() {
            self.table.ids.publish(self.id, obj);
        }
    }
}

impl Drop for NewObject<'_> {
    fn drop(&mut self) {
        if self.obj.take().is_some() {
            self.table.ids.unreserve(self.id);
        }
    }
}

/// All objects of one `/dev/iommu` file descriptor.
pub struct ObjectTable {
    ids: IdTable<Object>,
}

impl ObjectTable {
    /// Creates an empty table.
    pub fn new() -> Result<Self> {
        Ok(Self {
            ids: IdTable::new()?,
        })
    }

    /// Reserves an ID and allocates the object `make` builds for it
    /// (`ENOMEM`, `EBUSY`, or `make`'s error, with the ID released).
    pub fn reserve_with(&self, make: impl FnOnce(u32) -> Result<Payload>) -> Result<NewObject<'_>> {
        let id = self.ids.reserve()?;
        let obj = make(id).and_then(|payload| {
            arc_new(Object {
                id,
                users: AtomicU32::new(1),
                inflight: AtomicU32::new(0),
                payload,
            })
        });
        let obj = match obj {
            Ok(o) => o,
            Err(e) => {
                self.ids.unreserve(id);
                return Err(e);
            }
        };
        Ok(NewObject {
            table: self,
            id,
            obj: Some(obj),
        })
    }

    /// Looks up a published object of `kind` (any kind if `None`). A missing
    /// ID and a wrong kind are both `ENOENT`, as upstream.
    pub fn get(&self, id: u32, kind: Option<ObjKind>) -> Result<ObjRef> {
        let obj = self
            .ids
            .get_if(id, |o| {
                if matches!(o.payload, Payload::Tombstone)
                    || kind.is_some_and(|k| k != o.payload.kind())
                {
                    return false;
                }
                // Under the table lock, so a concurrent destroy either sees
                // these references or has already removed the object.
                o.users.fetch_add(1, Ordering::AcqRel);
                o.inflight.fetch_add(1, Ordering::AcqRel);
                true
            })
            .ok_or(ENOENT)?;
        Ok(ObjRef { obj })
    }

    /// Allocates an object and reserves its ID (`ENOMEM`, `EBUSY`).
    pub fn reserve(&self, payload: Payload) -> Result<NewObject<'_>> {
        self.reserve_with(|_| Ok(payload))
    }

    /// `IOMMU_DESTROY`: removes the object if the table holds its only
    /// reference (`EBUSY` otherwise, `ENOENT` if there is no such object).
    /// The caller tears the returned object down.
    pub fn remove(&self, id: u32) -> Result<Arc<Object>> {
        self.ids
            .remove_if(id, |o| {
                if matches!(o.payload, Payload::Tombstone) {
                    return Err(ENOENT);
                }
                if o.take_last_user() {
                    Ok(())
                } else {
                    Err(EBUSY)
                }
            })
            .ok_or(ENOENT)?
    }

    /// Like [`Self::remove`], but only if `obj` is still the object under its
    /// ID (`ENOENT` otherwise).
    pub fn remove_exact(&self, obj: &Arc<Object>) -> Result<Arc<Object>> {
        self.ids
            .remove_if(obj.id, |o| {
                if !core::ptr::eq(o, &**obj) {
                    return Err(ENOENT);
                }
                if o.take_last_user() {
                    Ok(())
                } else {
                    Err(EBUSY)
                }
            })
            .ok_or(ENOENT)?
    }

    /// Takes `obj` out of the table whatever references it has, leaving a
    /// tombstone under its ID (kernel-initiated removal: a vDEVICE whose
    /// device is unbound). The caller tears the returned object down.
    pub fn tombstone(&self, obj: &Arc<Object>) -> Result<Arc<Object>> {
        let stone = arc_new(Object {
            id: obj.id,
            users: AtomicU32::new(1),
            inflight: AtomicU32::new(0),
            payload: Payload::Tombstone,
        })?;
        let old = self
            .ids
            .replace_if(
                obj.id,
                |o| {
                    if core::ptr::eq(o, &**obj) {
                        Ok(())
                    } else {
                        Err(ENOENT)
                    }
                },
                stone,
            )
            .ok_or(ENOENT)??;
        old.users.fetch_sub(1, Ordering::AcqRel);
        Ok(old)
    }

    /// Removes the lowest-ID object nothing else references (file release
    /// tears objects down leaf first this way).
    pub fn remove_unused(&self) -> Option<Arc<Object>> {
        self.ids.remove_first_if(Object::take_last_user)
    }

    /// Any published object (to test for emptiness).
    pub fn next_any(&self) -> Option<Arc<Object>> {
        self.ids.next_from(1).map(|(_, o)| o)
    }

    /// Every published object of `kind` (any if `None`), by ID.
    pub fn collect(&self, kind: Option<ObjKind>) -> Result<PVec<Arc<Object>>> {
        let mut out = PVec::new();
        let mut from = 1u32;
        while let Some((id, o)) = self.ids.next_from(from) {
            if !matches!(o.payload, Payload::Tombstone)
                && kind.is_none_or(|k| k == o.payload.kind())
            {
                out.try_push(o)?;
            }
            let Some(next) = id.checked_add(1) else {
                break;
            };
            from = next;
        }
        Ok(out)
    }

    /// Drops every object left. Only for objects that were torn down
    /// already or never had dependents.
    pub fn clear(&self) {
        while let Some(obj) = self.ids.pop_first() {
            obj.users.fetch_sub(1, Ordering::AcqRel);
            drop(obj);
        }
    }
}

impl Drop for ObjectTable {
    fn drop(&mut self) {
        self.clear();
    }
}
