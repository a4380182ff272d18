//! Event queues with their own file descriptors: FAULT objects (I/O page
//! faults of HWPTs, answered through the fd) and vEVENTQs (a vIOMMU's
//! events for the guest).
//!
//! The queue logic ([`FaultQueue`], [`VeventQueue`]) is portable and tested
//! on the host; the fds (`[iommufd-pgfault]`, `[iommufd-viommu-event]`)
//! reach it through [`file_read`], [`file_write`] and [`file_poll`], which
//! run under the context lock like every ioctl. Producers wake readers
//! through the file's [`Waker`] while the file is open.

use crate::errno::{Result, EEXIST, EFAULT, EINVAL, EOPNOTSUPP, ESPIPE};
use crate::object::{Holder, ObjKind, Object, Payload};
use crate::platform::{arc_new, Arc, CtxCell, Held, NewEventFile, PVec, UserMem, VecExt, Waker};
use crate::uapi::{
    IommuHwptPageResponse, IommuHwptPgfault, IommufdVeventHeader, IOMMUFD_PAGE_RESP_INVALID,
    IOMMUFD_PAGE_RESP_SUCCESS, IOMMU_VEVENTQ_FLAG_LOST_EVENTS,
};
use crate::ucmd::{Cx, Ictx, Ucmd};
use zerocopy::{FromZeros, IntoBytes};

/// Poll bits (`EPOLLIN | EPOLLRDNORM`, `EPOLLOUT`).
pub const POLL_IN: u32 = 0x001 | 0x040;
/// Writable.
pub const POLL_OUT: u32 = 0x004;

/// One page request group (the mock raises single-fault groups).
#[derive(Clone, Copy, Debug)]
pub struct FaultGroup {
    /// The record as read from the fd, without its cookie.
    pub rec: IommuHwptPgfault,
    /// The attachment it came through (device object ID, PASID), for the
    /// automatic INVALID response when that attachment goes away.
    pub dev_id: u32,
    /// See `dev_id`.
    pub pasid: u32,
}

/// A FAULT object's queue: groups waiting to be read, then waiting for
/// their response (by cookie).
#[derive(Default)]
pub struct FaultQueue {
    deliver: PVec<FaultGroup>,
    response: PVec<(u32, FaultGroup)>,
}

impl FaultQueue {
    /// Queues a group for reading.
    pub fn push(&mut self, g: FaultGroup) -> Result {
        self.deliver.try_push(g)
    }

    /// True if a group waits to be read.
    pub fn readable(&self) -> bool {
        !self.deliver.is_empty()
    }

    /// Groups read but not answered.
    pub fn pending_responses(&self) -> usize {
        self.response.len()
    }

    /// `read()`: whole groups of 40-byte records; `count` must be a multiple
    /// of the record size (`ESPIPE`), and a first group that does not fit is
    /// `EINVAL`. Returns the bytes written.
    pub fn read(
        &mut self,
        count: usize,
        mut put: impl FnMut(usize, &[u8]) -> Result,
    ) -> Result<usize> {
        let rsz = size_of::<IommuHwptPgfault>();
        if !count.is_multiple_of(rsz) {
            return Err(ESPIPE);
        }
        let mut done = 0usize;
        while let Some(g) = self.deliver.first().copied() {
            if count - done < rsz {
                if done == 0 {
                    return Err(EINVAL);
                }
                break;
            }
            self.response.try_reserve_for(1)?;
            let cookie = self.free_cookie()?;
            let mut rec = g.rec;
            rec.cookie = cookie;
            if let Err(e) = put(done, rec.as_bytes()) {
                return if done == 0 { Err(e) } else { Ok(done) };
            }
            self.deliver.remove_at(0);
            self.response.try_push((cookie, g))?;
            done += rsz;
        }
        Ok(done)
    }

    /// The lowest cookie from 1 not awaiting a response, as upstream's
    /// `xa_alloc()` on an `XA_FLAGS_ALLOC1` xarray (`EBUSY` when none is
    /// left). Pending responses are few, so a scan per candidate is fine.
    fn free_cookie(&self) -> Result<u32> {
        let mut c = 1u32;
        while self.response.iter().any(|(k, _)| *k == c) {
            c = c.checked_add(1).ok_or(crate::errno::EBUSY)?;
        }
        Ok(c)
    }

    /// `write()`: 8-byte responses; an unknown cookie or code is `EINVAL`.
    /// Returns the bytes consumed.
    pub fn write(
        &mut self,
        count: usize,
        mut get: impl FnMut(usize, &mut [u8]) -> Result,
    ) -> Result<usize> {
        let rsz = size_of::<IommuHwptPageResponse>();
        if !count.is_multiple_of(rsz) {
            return Err(ESPIPE);
        }
        let mut done = 0usize;
        let res = (|| {
            while done < count {
                let mut r = IommuHwptPageResponse::new_zeroed();
                get(done, r.as_mut_bytes())?;
                if r.code != IOMMUFD_PAGE_RESP_SUCCESS && r.code != IOMMUFD_PAGE_RESP_INVALID {
                    return Err(EINVAL);
                }
                let i = self
                    .response
                    .iter()
                    .position(|(k, _)| *k == r.cookie)
                    .ok_or(EINVAL)?;
                // The mock IOMMU's page_response does nothing with the code.
                self.response.remove_at(i);
                done += rsz;
            }
            Ok(())
        })();
        match res {
            Err(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }

    /// Answers (drops) every group of attachment (`dev_id`, `pasid`), read
    /// or not: the automatic INVALID response on detach or replace.
    pub fn auto_respond(&mut self, dev_id: u32, pasid: u32) {
        self.deliver
            .retain(|g| !(g.dev_id == dev_id && g.pasid == pasid));
        self.response
            .retain(|(_, g)| !(g.dev_id == dev_id && g.pasid == pasid));
    }
}

/// One queued vEVENT, or the lost-events marker.
enum Vevent {
    /// An event with its payload.
    Event { seq: u32, data: PVec<u8> },
    /// Events were dropped (queue full); carries the last sequence used.
    Lost { seq: u32 },
}

/// A vEVENTQ's ring: at most `depth` events; on overflow a single
/// lost-events header sits at the tail with the newest sequence number.
pub struct VeventQueue {
    depth: u32,
    num_events: u32,
    seq: u32,
    deliver: PVec<Vevent>,
}

impl VeventQueue {
    /// An empty queue of `depth` events.
    pub fn new(depth: u32) -> Self {
        Self {
            depth,
            num_events: 0,
            seq: 0,
            deliver: PVec::new(),
        }
    }

    /// True if anything waits to be read.
    pub fn readable(&self) -> bool {
        !self.deliver.is_empty()
    }

    /// Queues an event. A full queue (or no memory for it) records a loss
    /// instead; every report consumes a sequence number, wrapping at
    /// `INT_MAX`.
    pub fn report(&mut self, payload: &[u8]) {
        let seq = self.seq;
        self.seq = (self.seq + 1) & i32::MAX as u32;
        let mut node = Vevent::Lost { seq };
        if self.num_events < self.depth {
            let mut data = PVec::new();
            if data.try_reserve_for(payload.len()).is_ok()
                && self.deliver.try_reserve_for(1).is_ok()
            {
                for &b in payload {
                    let _ = data.try_push(b);
                }
                node = Vevent::Event { seq, data };
            }
        }
        // The marker only ever sits last: a newer node replaces it (its
        // sequence gap still tells the reader about the loss).
        if matches!(self.deliver.last(), Some(Vevent::Lost { .. })) {
            self.deliver.pop();
        }
        if matches!(node, Vevent::Event { .. }) {
            self.num_events += 1;
        }
        // Cannot fail for an event (reserved above); the marker replaced
        // an entry or fits the capacity a pop left, else it is dropped.
        let _ = self.deliver.try_push(node);
    }

    /// `read()`: a header per entry plus its payload; fewer than 8 bytes or
    /// a first event that does not fit is `EINVAL`. Returns bytes written.
    pub fn read(
        &mut self,
        count: usize,
        mut put: impl FnMut(usize, &[u8]) -> Result,
    ) -> Result<usize> {
        let hsz = size_of::<IommufdVeventHeader>();
        if count < hsz {
            return Err(EINVAL);
        }
        let mut done = 0usize;
        let res = (|| {
            while let Some(v) = self.deliver.first() {
                if count - done < hsz {
                    break;
                }
                let (hdr, data): (IommufdVeventHeader, &[u8]) = match v {
                    Vevent::Event { seq, data } => (
                        IommufdVeventHeader {
                            flags: 0,
                            sequence: *seq,
                        },
                        data,
                    ),
                    Vevent::Lost { seq } => (
                        IommufdVeventHeader {
                            flags: IOMMU_VEVENTQ_FLAG_LOST_EVENTS,
                            sequence: *seq,
                        },
                        &[],
                    ),
                };
                if hsz + data.len() > count - done {
                    return if done == 0 { Err(EINVAL) } else { Ok(()) };
                }
                put(done, hdr.as_bytes())?;
                if !data.is_empty() {
                    put(done + hsz, data)?;
                }
                done += hsz + data.len();
                if let Some(Vevent::Event { .. }) = self.deliver.remove_at(0) {
                    self.num_events -= 1;
                }
            }
            Ok(())
        })();
        match res {
            Err(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }
}

/// A FAULT object.
pub struct Fault {
    /// Its queue.
    pub q: CtxCell<FaultQueue>,
    /// Wakes pollers of the fd while it is open.
    pub waker: CtxCell<Option<Waker>>,
}

/// A vEVENTQ object.
pub struct Veventq {
    /// The vIOMMU it belongs to.
    pub viommu: Holder,
    /// `IOMMU_VEVENTQ_TYPE_*`.
    pub ty: u32,
    /// Its ring.
    pub q: CtxCell<VeventQueue>,
    /// Wakes pollers of the fd while it is open.
    pub waker: CtxCell<Option<Waker>>,
}

/// What an event fd owns: a `users` reference on its object and the
/// context (the object must not be destroyed while the fd is open).
pub struct EventFile {
    obj: CtxCell<Option<Holder>>,
    target: Arc<Object>,
    ictx: Arc<Ictx>,
}

/// Creates the fd of `obj` (reserved, installed by the caller once the
/// ioctl cannot fail) and remembers its waker.
fn event_file(
    cx: &Cx<'_>,
    obj: &Arc<Object>,
    waker: &CtxCell<Option<Waker>>,
    kind: EventKind,
) -> Result<NewEventFile> {
    let ef = arc_new(EventFile {
        obj: CtxCell::new(Some(obj.hold())),
        target: obj.clone(),
        ictx: cx.arc.ok_or(EINVAL)?.clone(),
    })?;
    let f = NewEventFile::new(kind as u32, ef)?;
    *waker.get(cx.held)? = Some(f.waker());
    Ok(f)
}

/// The two kinds of event file (the C shim picks names and operations).
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum EventKind {
    /// `[iommufd-pgfault]`: read, write, poll.
    Fault = 0,
    /// `[iommufd-viommu-event]`: read, poll.
    Veventq = 1,
}

/// `IOMMU_FAULT_QUEUE_ALLOC`: a FAULT object and its fd.
pub(crate) fn fault_alloc(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: crate::uapi::IommuFaultAlloc = ucmd.read()?;
    if cmd.flags != 0 {
        return Err(EOPNOTSUPP);
    }
    let new = cx.ictx.objects().reserve(Payload::Fault(Fault {
        q: CtxCell::new(FaultQueue::default()),
        waker: CtxCell::new(None),
    }))?;
    let obj = new.object().cloned().ok_or(EINVAL)?;
    let f = crate::payload!(obj, Fault).ok_or(EINVAL)?;
    let file = event_file(cx, &obj, &f.waker, EventKind::Fault)?;
    cmd.out_fault_id = new.id();
    cmd.out_fault_fd = file.fd() as u32;
    ucmd.respond(&cmd)?;
    new.publish();
    file.install();
    Ok(())
}

/// `IOMMU_VEVENTQ_ALLOC`: one queue per (vIOMMU, type), with its fd.
pub(crate) fn veventq_alloc(cx: &Cx<'_>, ucmd: &Ucmd<'_>) -> Result {
    let mut cmd: crate::uapi::IommuVeventqAlloc = ucmd.read()?;
    if cmd.flags != 0
        || cmd.__reserved != 0
        || cmd.r#type == crate::uapi::IOMMU_VEVENTQ_TYPE_DEFAULT
    {
        return Err(EOPNOTSUPP);
    }
    if cmd.veventq_depth == 0 || cmd.veventq_depth > VEVENTQ_MAX_DEPTH {
        return Err(EINVAL);
    }
    let r = cx
        .ictx
        .objects()
        .get(cmd.viommu_id, Some(ObjKind::Viommu))?;
    let v = crate::payload!(r.object(), Viommu).ok_or(EINVAL)?;
    if v.find_veventq(cx.held, cmd.r#type)?.is_some() {
        return Err(EEXIST);
    }
    let new = cx.ictx.objects().reserve(Payload::Veventq(Veventq {
        viommu: r.object().hold(),
        ty: cmd.r#type,
        q: CtxCell::new(VeventQueue::new(cmd.veventq_depth)),
        waker: CtxCell::new(None),
    }))?;
    let obj = new.object().cloned().ok_or(EINVAL)?;
    let vq = crate::payload!(obj, Veventq).ok_or(EINVAL)?;
    let file = event_file(cx, &obj, &vq.waker, EventKind::Veventq)?;
    v.veventqs.get(cx.held)?.try_push(obj.clone())?;
    cmd.out_veventq_id = new.id();
    cmd.out_veventq_fd = file.fd() as u32;
    if let Err(e) = ucmd.respond(&cmd) {
        veventq_destroy(cx, &obj);
        return Err(e);
    }
    new.publish();
    file.install();
    Ok(())
}

/// Upper bound of `veventq_depth`, as upstream.
pub const VEVENTQ_MAX_DEPTH: u32 = 1 << 19;

/// Tears a vEVENTQ down: the vIOMMU forgets it.
pub fn veventq_destroy(cx: &Cx<'_>, obj: &Arc<Object>) {
    if let Some(vq) = crate::payload!(obj, Veventq) {
        if let Some(v) = crate::payload!(vq.viommu.object(), Viommu) {
            if let Ok(mut l) = v.veventqs.get(cx.held) {
                l.retain(|o| !Arc::ptr_eq(o, obj));
            }
        }
    }
}

/// Queues page-request group `g` on FAULT object `fault_obj` and wakes its
/// readers (`EOPNOTSUPP` if it is not one).
pub fn report_fault(held: &Held<'_>, fault_obj: &Object, g: FaultGroup) -> Result {
    let f = crate::payload!(fault_obj, Fault).ok_or(EOPNOTSUPP)?;
    f.q.get(held)?.push(g)?;
    if let Some(w) = &*f.waker.get(held)? {
        w.wake();
    }
    Ok(())
}

/// Reports a vEVENT of `ty` to the vIOMMU's queue (`EOPNOTSUPP` if none).
pub fn report_vevent(
    held: &Held<'_>,
    viommu: &crate::hw_pagetable::viommu::Viommu,
    ty: u32,
    data: &[u8],
) -> Result {
    let obj = viommu.find_veventq(held, ty)?.ok_or(EOPNOTSUPP)?;
    let vq = crate::payload!(obj, Veventq).ok_or(EOPNOTSUPP)?;
    vq.q.get(held)?.report(data);
    if let Some(w) = &*vq.waker.get(held)? {
        w.wake();
    }
    Ok(())
}

/// `read()` on an event fd.
pub fn file_read(ef: &EventFile, mem: &dyn UserMem, buf: u64, count: usize) -> Result<usize> {
    let held = ef.ictx.lock();
    let put = |off: usize, b: &[u8]| mem.write(buf.checked_add(off as u64).ok_or(EFAULT)?, b);
    match ef.target.payload() {
        Payload::Fault(f) => f.q.get(&held)?.read(count, put),
        Payload::Veventq(v) => v.q.get(&held)?.read(count, put),
        _ => Err(EINVAL),
    }
}

/// `write()` on an event fd (FAULT only: page responses).
pub fn file_write(ef: &EventFile, mem: &dyn UserMem, buf: u64, count: usize) -> Result<usize> {
    let held = ef.ictx.lock();
    match ef.target.payload() {
        Payload::Fault(f) => f.q.get(&held)?.write(count, |off, out| {
            mem.read(buf.checked_add(off as u64).ok_or(EFAULT)?, out)
        }),
        _ => Err(EINVAL),
    }
}

/// `poll()` readiness of an event fd.
pub fn file_poll(ef: &EventFile) -> u32 {
    let held = ef.ictx.lock();
    match ef.target.payload() {
        Payload::Fault(f) => {
            POLL_OUT
                | f.q
                    .get(&held)
                    .map_or(0, |q| if q.readable() { POLL_IN } else { 0 })
        }
        Payload::Veventq(v) => {
            v.q.get(&held)
                .map_or(0, |q| if q.readable() { POLL_IN } else { 0 })
        }
        _ => 0,
    }
}

/// The fd was closed: forget its waker, let go of the object.
pub fn file_released(ef: Arc<EventFile>) {
    {
        let held = ef.ictx.lock();
        let waker = match ef.target.payload() {
            Payload::Fault(f) => Some(&f.waker),
            Payload::Veventq(v) => Some(&v.waker),
            _ => None,
        };
        if let Some(w) = waker {
            if let Ok(mut w) = w.get(&held) {
                *w = None;
            }
        }
        let holder = ef.obj.get(&held).ok().and_then(|mut o| o.take());
        drop(holder);
    }
    drop(ef);
}
