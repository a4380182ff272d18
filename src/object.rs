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

use crate::errno::{Result, EBUSY, ENOENT};
use crate::ioas::Ioas;
use crate::platform::{arc_new, Arc, IdTable};
use core::sync::atomic::{AtomicU32, Ordering};

/// The kinds of object userspace can name by ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjKind {
    /// An IO address space (`IOMMU_IOAS_ALLOC`).
    Ioas,
}

/// What an object is; the kind is derived from it.
pub enum Payload {
    /// An IO address space.
    Ioas(Ioas),
}

impl Payload {
    /// The kind userspace-visible lookups match against.
    pub fn kind(&self) -> ObjKind {
        match self {
            Payload::Ioas(_) => ObjKind::Ioas,
        }
    }
}

/// An object in the table.
pub struct Object {
    users: AtomicU32,
    inflight: AtomicU32,
    payload: Payload,
}

impl Object {
    /// The object's payload.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The number of structural users, the table's own reference included.
    pub fn users(&self) -> u32 {
        self.users.load(Ordering::Acquire)
    }

    /// The number of live ioctl-scoped lookups.
    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Acquire)
    }
}

/// An ioctl-scoped reference to a published object. While it lives the
/// object cannot be destroyed by `IOMMU_DESTROY` (`EBUSY`).
pub struct ObjRef {
    obj: Arc<Object>,
}

impl ObjRef {
    /// The referenced object.
    pub fn object(&self) -> &Object {
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

    /// Allocates an object and reserves its ID (`ENOMEM`, `EBUSY`).
    pub fn reserve(&self, payload: Payload) -> Result<NewObject<'_>> {
        let obj = arc_new(Object {
            users: AtomicU32::new(1),
            inflight: AtomicU32::new(0),
            payload,
        })?;
        let id = self.ids.reserve()?;
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
                if kind.is_some_and(|k| k != o.payload.kind()) {
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

    /// `IOMMU_DESTROY`: removes the object if the table holds its only
    /// reference (`EBUSY` otherwise, `ENOENT` if there is no such object).
    pub fn destroy(&self, id: u32) -> Result {
        let removed = self.ids.remove_if(id, |o| {
            o.users
                .compare_exchange(1, 0, Ordering::AcqRel, Ordering::Acquire)
                .map(|_| ())
                .map_err(|_| EBUSY)
        });
        // The object is dropped here, outside the table lock.
        removed.ok_or(ENOENT)?.map(drop)
    }

    /// Drops every object (file release). References between objects are
    /// `Arc`s, so each object is freed once its last user has gone.
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
