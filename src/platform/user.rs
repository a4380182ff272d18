//! Host backend of the platform layer, for `cargo test` and benchmarks.

use crate::errno::{Result, EBUSY, EFAULT};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Reference-counted pointer; allocation failure aborts on the host.
pub type Arc<T> = std::sync::Arc<T>;

/// Allocates an [`Arc`] (the kernel version can fail with `ENOMEM`).
pub fn arc_new<T>(value: T) -> Result<Arc<T>> {
    Ok(std::sync::Arc::new(value))
}

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records a warning; tests read it back with [`take_log`].
pub fn log_warn(args: core::fmt::Arguments<'_>) {
    LOG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(args.to_string());
}

/// Returns and clears the warnings logged so far.
pub fn take_log() -> Vec<String> {
    std::mem::take(&mut *LOG.lock().unwrap_or_else(|e| e.into_inner()))
}

const ID_MAX: u32 = i32::MAX as u32;

/// ID table with the semantics of an `XA_FLAGS_ALLOC1` xarray: IDs are the
/// lowest free number in `1..=i32::MAX`, reserved IDs are invisible until
/// published.
pub struct IdTable<U> {
    slots: Mutex<BTreeMap<u32, Option<Arc<U>>>>,
}

impl<U> IdTable<U> {
    /// Creates an empty table.
    pub fn new() -> Result<Self> {
        Ok(Self {
            slots: Mutex::new(BTreeMap::new()),
        })
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Option<Arc<U>>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves the lowest free ID (`EBUSY` when all are taken, as xa_alloc).
    pub fn reserve(&self) -> Result<u32> {
        let mut slots = self.slots();
        let mut want = 1u32;
        for &id in slots.keys() {
            if id != want {
                break;
            }
            want = want.checked_add(1).ok_or(EBUSY)?;
        }
        if want > ID_MAX {
            return Err(EBUSY);
        }
        slots.insert(want, None);
        Ok(want)
    }

    /// Makes `value` visible under the reserved `id`.
    pub fn publish(&self, id: u32, value: Arc<U>) {
        let old = self.slots().insert(id, Some(value));
        debug_assert!(matches!(old, Some(None)), "publish of an unreserved ID");
    }

    /// Releases a reserved, never published `id`.
    pub fn unreserve(&self, id: u32) {
        let mut slots = self.slots();
        if let Some(None) = slots.get(&id) {
            slots.remove(&id);
        }
    }

    /// Returns the published value under `id` if `accept` (run under the
    /// table lock) agrees.
    pub fn get_if(&self, id: u32, accept: impl FnOnce(&U) -> bool) -> Option<Arc<U>> {
        let slots = self.slots();
        let v = slots.get(&id)?.as_ref()?;
        accept(v).then(|| v.clone())
    }

    /// Removes the published value under `id` if `check` (run under the table
    /// lock) succeeds; `None` if there is none.
    pub fn remove_if(&self, id: u32, check: impl FnOnce(&U) -> Result) -> Option<Result<Arc<U>>> {
        let mut slots = self.slots();
        let v = slots.get(&id)?.as_ref()?;
        if let Err(e) = check(v) {
            return Some(Err(e));
        }
        slots.remove(&id).flatten().map(Ok)
    }

    /// Removes and returns the published value with the lowest ID.
    pub fn pop_first(&self) -> Option<Arc<U>> {
        let mut slots = self.slots();
        let id = slots.iter().find(|(_, v)| v.is_some()).map(|(id, _)| *id)?;
        slots.remove(&id).flatten()
    }
}

/// User memory for host tests: a set of mapped regions; anything else faults.
#[derive(Default)]
pub struct FakeUserMem {
    regions: Mutex<Vec<Region>>,
}

struct Region {
    base: u64,
    bytes: Vec<u8>,
    writable: bool,
}

impl FakeUserMem {
    /// Maps `len` zero bytes at `base`, readable and writable.
    pub fn map(&self, base: u64, len: usize) {
        self.map_with(base, len, true);
    }

    /// Maps `len` zero bytes at `base`; writes fault unless `writable`.
    pub fn map_with(&self, base: u64, len: usize, writable: bool) {
        let r = Region {
            base,
            bytes: vec![0; len],
            writable,
        };
        self.regions.lock().unwrap().push(r);
    }

    /// Copies `data` to `uaddr` even in a read-only region (test setup).
    pub fn poke(&self, uaddr: u64, data: &[u8]) {
        self.with_range(uaddr, data.len(), false, |dst| dst.copy_from_slice(data))
            .expect("poke outside mapped test memory");
    }

    /// Reads `len` bytes at `uaddr` (test inspection).
    pub fn peek(&self, uaddr: u64, len: usize) -> Vec<u8> {
        self.with_range(uaddr, len, false, |src| src.to_vec())
            .expect("peek outside mapped test memory")
    }

    fn with_range<R>(
        &self,
        uaddr: u64,
        len: usize,
        write: bool,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R> {
        let mut regions = self.regions.lock().unwrap();
        let end = uaddr.checked_add(len as u64).ok_or(EFAULT)?;
        for Region {
            base,
            bytes,
            writable,
        } in regions.iter_mut()
        {
            let rend = *base + bytes.len() as u64;
            if uaddr >= *base && end <= rend {
                if write && !*writable {
                    return Err(EFAULT);
                }
                let off = (uaddr - *base) as usize;
                return Ok(f(&mut bytes[off..off + len]));
            }
        }
        Err(EFAULT)
    }
}

impl super::UserMem for FakeUserMem {
    fn read(&self, uaddr: u64, out: &mut [u8]) -> Result {
        self.with_range(uaddr, out.len(), false, |src| out.copy_from_slice(src))
    }

    fn write(&self, uaddr: u64, data: &[u8]) -> Result {
        self.with_range(uaddr, data.len(), true, |dst| dst.copy_from_slice(data))
    }
}
