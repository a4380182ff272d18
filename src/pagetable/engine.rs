//! The generic page-table algorithms, written once for every format.
//!
//! Levels are numbered as in `generic_pt`: level 0 holds the smallest
//! leaves (4 KiB for a 4K-granule format, ARM level 3), the top level is
//! the table the hardware is pointed at. The map and unmap walks are
//! generic over a [`Level`] type, so each level is a separate
//! monomorphised function with its shifts and masks as constants, and the
//! walk keeps its position in a table instead of re-walking from the top
//! for every entry (the reason `generic_pt` is 3-4x faster than
//! io-pgtable for multi-page operations).
//!
//! Concurrency contract (the kernel's): callers serialise operations on
//! overlapping IOVA ranges; operations on disjoint ranges may run at once.
//! Tables are installed by compare-exchange with release ordering, so two
//! mappers that need the same missing table agree on one, and a walker
//! that sees the pointer sees the zeroed table. A table is only freed when
//! the operation's range covers all of its IOVA span, which no concurrent
//! operation may touch.

use super::gather::{Gather, IotlbFlush};
use super::{TableMem, TablePage};
use crate::errno::{Result, EADDRINUSE, EINVAL, ENOMEM, ERANGE};
use core::sync::atomic::{fence, AtomicU64, Ordering};

/// What one item of a table holds, as the format decodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Nothing mapped.
    Empty,
    /// A pointer to the next-level table at this physical address.
    Table(u64),
    /// A leaf: the entry (a contiguous group of items, or one item) maps
    /// `1 << size_lg2` bytes starting at output address `oa`.
    Leaf {
        /// Output address of the start of the whole entry.
        oa: u64,
        /// log2 of the entry's size in bytes.
        size_lg2: u32,
    },
}

/// A page-table format: how entries are encoded at each level.
///
/// Implementations are small and `#[inline]`; the engine calls them with
/// constant levels in its hot loops.
pub trait Format {
    /// log2 of the bytes an item of level 0 maps.
    const GRANULE_LG2: u32;
    /// log2 of the items in a (non-top) table.
    const ITEMS_LG2: u32;
    /// Leaf attributes computed once per map call from `IOMMU_*` prot
    /// flags.
    type Attrs: Copy + PartialEq + core::fmt::Debug;

    /// The level of the top table.
    fn top_level(&self) -> u32;
    /// log2 of the items in the top table (ARM start tables may be
    /// smaller than a granule, or concatenated at stage 2).
    fn top_items_lg2(&self) -> u32;
    /// Input (IOVA) address bits.
    fn vasz_lg2(&self) -> u32;
    /// Output address bits.
    fn oasz_lg2(&self) -> u32;
    /// Leaf sizes possible at `level`: bit `n` set means a leaf of `2^n`
    /// bytes (one item, or a contiguous group of items).
    fn leaf_sizes(&self, level: u32) -> u64;
    /// Decodes item `index` holding `pte` at `level`.
    fn load(&self, level: u32, index: usize, pte: u64) -> Entry;
    /// Item number `item` of a leaf entry of `2^size_lg2` bytes at output
    /// address `oa`.
    fn leaf_item(&self, level: u32, oa: u64, size_lg2: u32, item: u64, attrs: &Self::Attrs) -> u64;
    /// An entry at `level` pointing at the table at `pa`.
    fn table_entry(&self, level: u32, pa: u64) -> u64;
    /// Attributes for `IOMMU_*` protection flags; `EINVAL` (or
    /// `EOPNOTSUPP`) for combinations the format cannot express.
    fn attrs(&self, prot: u32) -> Result<Self::Attrs>;
    /// The attributes a leaf item was built with (the inverse of
    /// [`Self::leaf_item`] for attribute bits; dirty state excluded).
    fn attrs_of(&self, level: u32, pte: u64) -> Self::Attrs;
    /// True if the hardware recorded a write through this leaf item.
    fn is_dirty(&self, _pte: u64) -> bool {
        false
    }
    /// The item with its dirty state cleared (write-clean).
    fn make_clean(&self, pte: u64) -> u64 {
        pte
    }
    /// The item as the hardware leaves it after a write (for tests and
    /// the selftest's `DIRTY` op).
    fn make_dirty(&self, pte: u64) -> u64 {
        pte
    }
}

/// A table level known at compile time.
pub trait Level {
    /// The level number (0 = smallest leaves).
    const N: u32;
    /// The level below (level 0 names itself; it has no tables below).
    type Lower: Level;
}

macro_rules! levels {
    ($($name:ident = $n:expr, $lower:ident;)*) => {$(
        #[doc = concat!("Table level ", stringify!($n), ".")]
        pub enum $name {}
        impl Level for $name {
            const N: u32 = $n;
            type Lower = $lower;
        }
    )*};
}

levels! {
    L0 = 0, L0;
    L1 = 1, L0;
    L2 = 2, L1;
    L3 = 3, L2;
    L4 = 4, L3;
}

/// The highest top level the engine instantiates.
pub const MAX_TOP_LEVEL: u32 = 4;

/// The largest size in the `sizes` bitmap that is at most `len` and to
/// which both `va` and `oa` are aligned (`generic_pt`'s
/// `pt_compute_best_pgsize`), as log2.
#[inline(always)]
pub fn best_lg2(sizes: u64, va: u64, oa: u64, len: u64) -> Option<u32> {
    let mut m = sizes;
    if len == 0 {
        return None;
    }
    let top = 63 - len.leading_zeros();
    if top < 63 {
        m &= (2u64 << top) - 1;
    }
    let align = (va | oa).trailing_zeros();
    if align < 63 {
        m &= (2u64 << align) - 1;
    }
    (m != 0).then(|| 63 - m.leading_zeros())
}

/// How many leaves of `2^lg2` bytes in a row a map can write from `va`
/// (output `oa`) before the best size may change: at most `room` (to the
/// table's end), up to `end`, and up to the next boundary where a larger
/// size of the same level (`sizes`) could start (`generic_pt`'s
/// `pt_pgsz_count`).
#[inline(always)]
fn run_len(sizes: u64, lg2: u32, va: u64, oa: u64, end: u64, room: usize) -> usize {
    let mut run = room.min(((end - va) >> lg2) as usize);
    let larger = if lg2 >= 63 {
        0
    } else {
        sizes & !((2u64 << lg2) - 1)
    };
    if larger != 0 {
        let m = (1u64 << larger.trailing_zeros()) - 1;
        if (va ^ oa) & m == 0 {
            run = run.min(((m + 1 - (va & m)) >> lg2) as usize);
        }
    }
    run
}

#[inline(always)]
const fn item_lg2<F: Format>(level: u32) -> u32 {
    F::GRANULE_LG2 + F::ITEMS_LG2 * level
}

/// True if the hardware can reach `page`: table pointers carry output
/// addresses, so a table above the output size would be truncated into
/// someone else's memory (io-pgtable-arm refuses such pages too).
fn reachable<F: Format>(fmt: &F, page: &TablePage) -> bool {
    let oas = fmt.oasz_lg2();
    oas >= 64 || page.phys.saturating_add(1u64 << page.size_lg2) <= 1u64 << oas
}

/// Item `idx` of the table at `table`.
///
/// # Safety
///
/// `table` points at a live table with more than `idx` items.
#[inline(always)]
unsafe fn item<'t>(table: *const AtomicU64, idx: usize) -> &'t AtomicU64 {
    // SAFETY: the caller guarantees `idx` is inside the live table.
    unsafe { &*table.add(idx) }
}

/// One leaf as [`PageTable::for_each_leaf`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafInfo {
    /// First IOVA of the entry.
    pub iova: u64,
    /// Output address of the entry.
    pub oa: u64,
    /// log2 of its size in bytes.
    pub size_lg2: u32,
    /// Its table level.
    pub level: u32,
    /// The first item as stored.
    pub pte: u64,
}

struct MapState<A> {
    va: u64,
    oa: u64,
    end: u64,
    attrs: A,
}

struct UnmapState {
    va: u64,
    end: u64,
    unmapped: u64,
    /// The range started inside a leaf: unmap nothing more.
    stop: bool,
}

/// A page table of format `F` whose tables come from `M`.
pub struct PageTable<F: Format, M: TableMem> {
    fmt: F,
    mem: M,
    top: TablePage,
    /// Leaf sizes the owner allows (a capability, a user option).
    pgsize_mask: u64,
    /// Alignment every map needs: the smallest size in use.
    min_mask: u64,
}

impl<F: Format, M: TableMem> PageTable<F, M> {
    /// An empty table (the top table is allocated now).
    pub fn new(fmt: F, mem: M) -> Result<Self> {
        if fmt.top_level() > MAX_TOP_LEVEL {
            return Err(EINVAL);
        }
        let top = mem.alloc((fmt.top_items_lg2() + 3).max(6)).ok_or(ENOMEM)?;
        if !reachable(&fmt, &top) {
            // SAFETY: never published.
            unsafe { mem.free(top) };
            return Err(ENOMEM);
        }
        let mut pt = Self {
            fmt,
            mem,
            top,
            pgsize_mask: u64::MAX,
            min_mask: 0,
        };
        pt.set_pgsize_mask(u64::MAX);
        Ok(pt)
    }

    /// Restricts the leaf sizes used from now on (page sizes a capability
    /// register or a user option leaves).
    pub fn set_pgsize_mask(&mut self, mask: u64) {
        self.pgsize_mask = mask;
        let b = self.pgsize_bitmap();
        self.min_mask = if b == 0 {
            u64::MAX
        } else {
            b & b.wrapping_neg()
        } - 1;
    }

    /// The format.
    pub fn format(&self) -> &F {
        &self.fmt
    }

    /// The table allocator.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Physical address of the top table (TTB, SSPTPTR, root pointer).
    pub fn top_phys(&self) -> u64 {
        self.top.phys
    }

    /// Every leaf size this table can map, as a bitmap of sizes.
    pub fn pgsize_bitmap(&self) -> u64 {
        let mut b = 0;
        for l in 0..=self.fmt.top_level() {
            b |= self.fmt.leaf_sizes(l);
        }
        let va = self.fmt.vasz_lg2();
        if va < 64 {
            b &= (1u64 << va) - 1;
        }
        b & self.pgsize_mask
    }

    /// A gather that invalidates through `flush` and frees into this
    /// table's allocator.
    pub fn gather<'a>(&'a self, flush: &'a dyn IotlbFlush) -> Gather<'a, M> {
        Gather::new(&self.mem, flush)
    }

    fn check_range(&self, iova: u64, len: u64) -> Result<u64> {
        let gmask = (1u64 << F::GRANULE_LG2) - 1;
        if len == 0 || (iova | len) & gmask != 0 {
            return Err(EINVAL);
        }
        let end = iova.checked_add(len).ok_or(ERANGE)?;
        let va = self.fmt.vasz_lg2();
        if va < 64 && end > 1u64 << va {
            return Err(ERANGE);
        }
        Ok(end)
    }

    /// Maps `len` bytes at `iova` to output address `oa`, choosing the
    /// largest leaf that fits at every step. Overlapping an existing
    /// mapping is `EADDRINUSE`; empty tables under a new leaf are freed
    /// through `g`. All or nothing: on failure what this call mapped is
    /// unmapped again.
    pub fn map(&self, iova: u64, oa: u64, len: u64, prot: u32, g: &mut Gather<'_, M>) -> Result {
        if !g.belongs_to(&self.mem) {
            crate::warn_once!("iommufd_rs: a page-table gather used with another table");
            return Err(EINVAL);
        }
        let end = self.check_range(iova, len)?;
        // Aligned to the smallest size in use, so no table is installed
        // for a map that cannot finish.
        if (iova | oa | len) & self.min_mask != 0 {
            return Err(EINVAL);
        }
        let oas = self.fmt.oasz_lg2();
        match oa.checked_add(len) {
            Some(e) if oas >= 64 || e <= 1u64 << oas => {}
            _ => return Err(ERANGE),
        }
        let attrs = self.fmt.attrs(prot)?;
        // One leaf of exactly one item into existing tables (a single
        // page, the DMA-API case, or one block): walked without the
        // general machinery (`generic_pt`'s single-page path).
        if let Some(level) = self.single_item_level(iova | oa, len) {
            if let Some((it, idx)) = self.item_at(iova, level) {
                let old = it.load(Ordering::Relaxed);
                match self.fmt.load(level, idx, old) {
                    Entry::Empty => {
                        let lg2 = len.trailing_zeros();
                        it.store(
                            self.fmt.leaf_item(level, oa, lg2, 0, &attrs),
                            Ordering::Relaxed,
                        );
                        fence(Ordering::Release);
                        return Ok(());
                    }
                    Entry::Leaf { .. } => return Err(EADDRINUSE),
                    // An (empty?) subtable: the general path decides.
                    Entry::Table(_) => {}
                }
            }
        }
        let mut st = MapState {
            va: iova,
            oa,
            end,
            attrs,
        };
        let top = self.top.virt.as_ptr().cast_const();
        let items = self.fmt.top_items_lg2();
        let r = match self.fmt.top_level() {
            0 => self.map_lvl::<L0>(top, items, &mut st, g),
            1 => self.map_lvl::<L1>(top, items, &mut st, g),
            2 => self.map_lvl::<L2>(top, items, &mut st, g),
            3 => self.map_lvl::<L3>(top, items, &mut st, g),
            _ => self.map_lvl::<L4>(top, items, &mut st, g),
        };
        // Leaves are plain stores; order them before whatever makes the
        // mapping visible to the device (the flush, the doorbell).
        fence(Ordering::Release);
        if let Err(e) = r {
            if st.va > iova {
                self.unmap(iova, st.va - iova, g);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Writes `run` leaves of `2^lg2` bytes from item `idx`. With `check`,
    /// each entry's items are first cleared of empty subtables
    /// (`EADDRINUSE` if one is not empty or a leaf is there); `st` is
    /// current before anything can fail, so a rollback unmaps exactly what
    /// was written. The position stays in registers otherwise.
    #[allow(clippy::too_many_arguments)]
    fn map_entries<L: Level>(
        &self,
        table: *const AtomicU64,
        idx: usize,
        run: usize,
        lg2: u32,
        st: &mut MapState<F::Attrs>,
        g: &mut Gather<'_, M>,
        check: bool,
    ) -> Result {
        let count = 1usize << (lg2 - item_lg2::<F>(L::N));
        let (mut va, mut oa, mut at) = (st.va, st.oa, idx);
        for _ in 0..run {
            if check {
                (st.va, st.oa) = (va, oa);
                self.clear_for_leaf::<L>(table, at, count, va, g)?;
            }
            for i in 0..count {
                let pte = self.fmt.leaf_item(L::N, oa, lg2, i as u64, &st.attrs);
                // SAFETY: the caller's run fits in the table.
                unsafe { item(table, at + i) }.store(pte, Ordering::Relaxed);
            }
            va += 1 << lg2;
            oa += 1 << lg2;
            at += count;
        }
        (st.va, st.oa) = (va, oa);
        Ok(())
    }

    /// The level at which `len` is exactly one item and a leaf size this
    /// table uses, if `addrs` (the addresses ORed) are aligned to it.
    #[inline]
    fn single_item_level(&self, addrs: u64, len: u64) -> Option<u32> {
        if !len.is_power_of_two() || addrs & (len - 1) != 0 || len & self.pgsize_mask == 0 {
            return None;
        }
        let lg2 = len.trailing_zeros();
        let level = lg2.checked_sub(F::GRANULE_LG2)? / F::ITEMS_LG2;
        (item_lg2::<F>(level) == lg2
            && level <= self.fmt.top_level()
            && self.fmt.leaf_sizes(level) & len != 0)
            .then_some(level)
    }

    /// The item for `iova` at `level` and its index, if every table above
    /// it exists (`None` when a level above is empty or holds a leaf).
    #[inline]
    fn item_at(&self, iova: u64, level: u32) -> Option<(&AtomicU64, usize)> {
        let mut cur = self.fmt.top_level();
        let mut table = self.top.virt.as_ptr().cast_const();
        let mut items = self.fmt.top_items_lg2();
        loop {
            let idx = (iova >> item_lg2::<F>(cur)) as usize & ((1usize << items) - 1);
            // SAFETY: idx is masked to the table's item count.
            let it = unsafe { item(table, idx) };
            if cur == level {
                return Some((it, idx));
            }
            match self.fmt.load(cur, idx, it.load(Ordering::Acquire)) {
                Entry::Table(pa) if cur > 0 => {
                    table = self.mem.phys_to_virt(pa);
                    items = F::ITEMS_LG2;
                    cur -= 1;
                }
                _ => return None,
            }
        }
    }

    /// Installs a new zeroed table in `it` (which held `old`) unless a
    /// concurrent mapper got there first; returns the table in place.
    fn install_table<L: Level>(&self, it: &AtomicU64, idx: usize, old: u64) -> Result<u64> {
        let page = self.mem.alloc(F::ITEMS_LG2 + 3).ok_or(ENOMEM)?;
        if !reachable(&self.fmt, &page) {
            // SAFETY: never published.
            unsafe { self.mem.free(page) };
            return Err(ENOMEM);
        }
        let pte = self.fmt.table_entry(L::N, page.phys);
        match it.compare_exchange(old, pte, Ordering::Release, Ordering::Acquire) {
            Ok(_) => Ok(page.phys),
            Err(cur) => {
                // SAFETY: the page was never published.
                unsafe { self.mem.free(page) };
                match self.fmt.load(L::N, idx, cur) {
                    Entry::Table(pa) => Ok(pa),
                    _ => Err(EADDRINUSE),
                }
            }
        }
    }

    fn map_lvl<L: Level>(
        &self,
        table: *const AtomicU64,
        items_lg2: u32,
        st: &mut MapState<F::Attrs>,
        g: &mut Gather<'_, M>,
    ) -> Result {
        let ilg2 = item_lg2::<F>(L::N);
        let sizes = self.fmt.leaf_sizes(L::N) & self.pgsize_mask;
        let n = 1usize << items_lg2;
        let mut idx = (st.va >> ilg2) as usize & (n - 1);
        while st.va < st.end && idx < n {
            match best_lg2(sizes, st.va, st.oa, st.end - st.va) {
                Some(lg2) if lg2 >= ilg2 => {
                    let shift = lg2 - ilg2;
                    let run = run_len(sizes, lg2, st.va, st.oa, st.end, (n - idx) >> shift);
                    if run == 0 {
                        return Err(EINVAL);
                    }
                    let items = run << shift;
                    let free = (idx..idx + items).all(|i| {
                        // SAFETY: run_len keeps idx + items <= n.
                        let it = unsafe { item(table, i) };
                        it.load(Ordering::Relaxed) == 0
                    });
                    // Nothing in the way (the common case): only stores.
                    self.map_entries::<L>(table, idx, run, lg2, st, g, !free)?;
                    idx += items;
                }
                _ => {
                    if L::N == 0 {
                        // No allowed size fits this alignment.
                        return Err(EINVAL);
                    }
                    // SAFETY: idx < n.
                    let it = unsafe { item(table, idx) };
                    let old = it.load(Ordering::Acquire);
                    let child = match self.fmt.load(L::N, idx, old) {
                        Entry::Empty => self.install_table::<L>(it, idx, old)?,
                        Entry::Table(pa) => pa,
                        Entry::Leaf { .. } => return Err(EADDRINUSE),
                    };
                    self.map_lvl::<L::Lower>(self.mem.phys_to_virt(child), F::ITEMS_LG2, st, g)?;
                    idx += 1;
                }
            }
        }
        Ok(())
    }

    /// Checks that `count` items from `idx` are empty or hold empty
    /// subtables, then detaches and frees those subtables; `EADDRINUSE`
    /// (and nothing changed) if any holds a mapping.
    fn clear_for_leaf<L: Level>(
        &self,
        table: *const AtomicU64,
        idx: usize,
        count: usize,
        va: u64,
        g: &mut Gather<'_, M>,
    ) -> Result {
        let mut tables = false;
        for i in 0..count {
            // SAFETY: the caller checked idx + count <= items.
            let pte = unsafe { item(table, idx + i) }.load(Ordering::Relaxed);
            match self.fmt.load(L::N, idx + i, pte) {
                Entry::Empty => {}
                Entry::Table(pa) if L::N > 0 && self.subtree_empty(L::N - 1, pa) => tables = true,
                _ => return Err(EADDRINUSE),
            }
        }
        if !tables {
            return Ok(());
        }
        let ilg2 = item_lg2::<F>(L::N);
        for i in 0..count {
            // SAFETY: as above.
            let it = unsafe { item(table, idx + i) };
            if let Entry::Table(pa) = self.fmt.load(L::N, idx + i, it.load(Ordering::Relaxed)) {
                it.store(0, Ordering::Relaxed);
                g.add_range(va + ((i as u64) << ilg2), 1 << ilg2);
                self.free_subtree(L::N - 1, pa, Some(g));
            }
        }
        Ok(())
    }

    /// True if the table at `pa` (of `level`) maps nothing.
    fn subtree_empty(&self, level: u32, pa: u64) -> bool {
        let t = self.mem.phys_to_virt(pa);
        (0..1usize << F::ITEMS_LG2).all(|i| {
            // SAFETY: a non-top table has 2^ITEMS_LG2 items.
            let pte = unsafe { item(t, i) }.load(Ordering::Relaxed);
            match self.fmt.load(level, i, pte) {
                Entry::Empty => true,
                Entry::Table(lower) => level > 0 && self.subtree_empty(level - 1, lower),
                Entry::Leaf { .. } => false,
            }
        })
    }

    /// Frees the table at `pa` (of `level`) and every table below it,
    /// through `g` when the tree was live, at once otherwise.
    fn free_subtree(&self, level: u32, pa: u64, mut g: Option<&mut Gather<'_, M>>) {
        if level > 0 {
            let t = self.mem.phys_to_virt(pa);
            for i in 0..1usize << F::ITEMS_LG2 {
                // SAFETY: a non-top table has 2^ITEMS_LG2 items.
                let pte = unsafe { item(t, i) }.load(Ordering::Relaxed);
                if let Entry::Table(lower) = self.fmt.load(level, i, pte) {
                    self.free_subtree(level - 1, lower, g.as_deref_mut());
                }
            }
        }
        match g {
            Some(g) => g.free_table(pa, F::ITEMS_LG2 + 3),
            None => {
                if let Some(page) = TablePage::of(&self.mem, pa, F::ITEMS_LG2 + 3) {
                    // SAFETY: only teardown passes no gather; nothing uses
                    // the tree any more.
                    unsafe { self.mem.free(page) }
                }
            }
        }
    }

    /// Unmaps `iova..iova + len` and returns the bytes unmapped, with
    /// upstream's rules: a range that starts inside a leaf unmaps nothing;
    /// a leaf that starts inside the range is removed whole (so the result
    /// can exceed `len`); tables the range covers entirely are freed
    /// through `g`; a hole ends the unmap (the bytes so far are returned),
    /// and so does a range outside the input space (nothing is unmapped).
    pub fn unmap(&self, iova: u64, len: u64, g: &mut Gather<'_, M>) -> u64 {
        if !g.belongs_to(&self.mem) {
            crate::warn_once!("iommufd_rs: a page-table gather used with another table");
            return 0;
        }
        let Ok(end) = self.check_range(iova, len) else {
            return 0;
        };
        if let Some(level) = self.single_item_level(iova, len) {
            if let Some((it, idx)) = self.item_at(iova, level) {
                match self.fmt.load(level, idx, it.load(Ordering::Relaxed)) {
                    Entry::Empty => return 0,
                    Entry::Leaf { size_lg2, .. } if size_lg2 == len.trailing_zeros() => {
                        it.store(0, Ordering::Relaxed);
                        g.add_range(iova, len);
                        return len;
                    }
                    // A contiguous entry or a subtable: the general rules.
                    _ => {}
                }
            }
        }
        let mut st = UnmapState {
            va: iova,
            end,
            unmapped: 0,
            stop: false,
        };
        let top = self.top.virt.as_ptr().cast_const();
        let items = self.fmt.top_items_lg2();
        match self.fmt.top_level() {
            0 => self.unmap_lvl::<L0>(top, items, &mut st, g),
            1 => self.unmap_lvl::<L1>(top, items, &mut st, g),
            2 => self.unmap_lvl::<L2>(top, items, &mut st, g),
            3 => self.unmap_lvl::<L3>(top, items, &mut st, g),
            _ => self.unmap_lvl::<L4>(top, items, &mut st, g),
        }
        st.unmapped
    }

    fn unmap_lvl<L: Level>(
        &self,
        table: *const AtomicU64,
        items_lg2: u32,
        st: &mut UnmapState,
        g: &mut Gather<'_, M>,
    ) {
        let ilg2 = item_lg2::<F>(L::N);
        let isz = 1u64 << ilg2;
        let n = 1usize << items_lg2;
        let mut idx = (st.va >> ilg2) as usize & (n - 1);
        // The position lives in registers; `st` is updated at the exits
        // and around the descent. Leaves cleared here are flushed as one
        // range (holes inside it cost nothing to invalidate).
        let mut va = st.va;
        let end = st.end;
        let mut unmapped = 0u64;
        let mut cleared: Option<(u64, u64)> = None;
        while va < end && idx < n {
            // SAFETY: idx < n.
            let it = unsafe { item(table, idx) };
            let item_va = va & !(isz - 1);
            match self.fmt.load(L::N, idx, it.load(Ordering::Relaxed)) {
                Entry::Empty => {
                    // A hole ends the unmap, as upstream (`-EINVAL` from
                    // `__unmap_range`, the bytes so far returned).
                    st.stop = true;
                    break;
                }
                Entry::Leaf { size_lg2, .. } => {
                    // Only the first step can land inside a leaf.
                    if size_lg2 == ilg2 {
                        // One item: a constant stride, so the next load
                        // need not wait for this entry's decode.
                        if va & (isz - 1) != 0 {
                            st.stop = true;
                            break;
                        }
                        it.store(0, Ordering::Relaxed);
                        cleared = Some((cleared.map_or(va, |c| c.0), va + isz));
                        unmapped += isz;
                        va += isz;
                        idx += 1;
                        continue;
                    }
                    // A leaf never decodes smaller than its item (a
                    // corrupt one is treated as one item).
                    let size_lg2 = size_lg2.max(ilg2);
                    let size = 1u64 << size_lg2;
                    if va & (size - 1) != 0 {
                        st.stop = true;
                        break;
                    }
                    let count = 1usize << (size_lg2 - ilg2);
                    for i in idx..(idx + count).min(n) {
                        // SAFETY: i < n.
                        unsafe { item(table, i) }.store(0, Ordering::Relaxed);
                    }
                    cleared = Some((cleared.map_or(va, |c| c.0), va + size));
                    unmapped += size;
                    va += size;
                    idx += count;
                }
                Entry::Table(pa) => {
                    let covered = va == item_va && end - item_va >= isz;
                    st.va = va;
                    st.unmapped += core::mem::take(&mut unmapped);
                    self.unmap_lvl::<L::Lower>(self.mem.phys_to_virt(pa), F::ITEMS_LG2, st, g);
                    va = st.va;
                    if st.stop {
                        break;
                    }
                    if covered && L::N > 0 {
                        it.store(0, Ordering::Relaxed);
                        g.add_range(item_va, isz);
                        g.free_table(pa, F::ITEMS_LG2 + 3);
                    }
                    // The child stopped at its own end or at the range's.
                    idx += 1;
                }
            }
        }
        st.va = va;
        st.unmapped += unmapped;
        if let Some((first, last_end)) = cleared {
            g.add_range(first, last_end - first);
        }
    }

    /// The output address `iova` translates to, if mapped.
    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.translate(iova).map(|(pa, _)| pa)
    }

    /// The output address `iova` translates to and how many bytes from
    /// `iova` on the same leaf maps contiguously (to its end).
    pub fn translate(&self, iova: u64) -> Option<(u64, u64)> {
        let va = self.fmt.vasz_lg2();
        if va < 64 && iova >> va != 0 {
            return None;
        }
        let mut level = self.fmt.top_level();
        let mut table = self.top.virt.as_ptr().cast_const();
        let mut items = self.fmt.top_items_lg2();
        loop {
            let ilg2 = item_lg2::<F>(level);
            let idx = (iova >> ilg2) as usize & ((1usize << items) - 1);
            // SAFETY: idx is masked to the table's item count.
            let pte = unsafe { item(table, idx) }.load(Ordering::Relaxed);
            match self.fmt.load(level, idx, pte) {
                Entry::Empty => return None,
                Entry::Leaf { oa, size_lg2 } => {
                    let off = iova & ((1u64 << size_lg2) - 1);
                    return Some((oa + off, (1u64 << size_lg2) - off));
                }
                Entry::Table(pa) if level > 0 => {
                    table = self.mem.phys_to_virt(pa);
                    items = F::ITEMS_LG2;
                    level -= 1;
                }
                Entry::Table(_) => return None,
            }
        }
    }

    /// Calls `f` for every leaf entry overlapping `iova..=last`, with the
    /// table and index of its first item.
    fn visit_leaves(
        &self,
        iova: u64,
        last: u64,
        f: &mut dyn FnMut(&LeafInfo, *const AtomicU64, usize, usize),
    ) {
        self.visit_lvl(
            self.fmt.top_level(),
            self.top.virt.as_ptr().cast_const(),
            self.fmt.top_items_lg2(),
            0,
            iova,
            last,
            f,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn visit_lvl(
        &self,
        level: u32,
        table: *const AtomicU64,
        items_lg2: u32,
        table_va: u64,
        first: u64,
        last: u64,
        f: &mut dyn FnMut(&LeafInfo, *const AtomicU64, usize, usize),
    ) {
        let ilg2 = item_lg2::<F>(level);
        let n = 1usize << items_lg2;
        let span_last = table_va
            .saturating_add((n as u64) << ilg2)
            .saturating_sub(1);
        let lo = if first > table_va {
            ((first - table_va) >> ilg2) as usize
        } else {
            0
        };
        let hi = if last < span_last {
            ((last - table_va) >> ilg2) as usize
        } else {
            n - 1
        };
        let mut idx = lo;
        while idx <= hi {
            // SAFETY: idx <= hi < n.
            let pte = unsafe { item(table, idx) }.load(Ordering::Relaxed);
            let va = table_va + ((idx as u64) << ilg2);
            match self.fmt.load(level, idx, pte) {
                Entry::Empty => idx += 1,
                Entry::Leaf { oa, size_lg2 } => {
                    let count = 1usize << (size_lg2.max(ilg2) - ilg2);
                    let start = idx & !(count - 1);
                    let info = LeafInfo {
                        iova: table_va + ((start as u64) << ilg2),
                        oa,
                        size_lg2,
                        level,
                        pte,
                    };
                    f(&info, table, start, count.min(n - start));
                    idx = start + count;
                }
                Entry::Table(pa) if level > 0 => {
                    self.visit_lvl(
                        level - 1,
                        self.mem.phys_to_virt(pa),
                        F::ITEMS_LG2,
                        va,
                        first,
                        last,
                        f,
                    );
                    idx += 1;
                }
                Entry::Table(_) => idx += 1,
            }
        }
    }

    /// Calls `f` for every leaf entry, in IOVA order.
    pub fn for_each_leaf(&self, mut f: impl FnMut(&LeafInfo)) {
        self.visit_leaves(0, u64::MAX, &mut |l, _, _, _| f(l));
    }

    /// Reports every dirty leaf overlapping `iova..iova + len` whole, as
    /// `f(leaf_iova, leaf_len)`, and makes it clean again (the cleared
    /// range is added to `g`, since the IOTLB caches dirty state) unless
    /// `no_clear`. A contiguous entry is dirty if any of its items is.
    pub fn read_and_clear_dirty(
        &self,
        iova: u64,
        len: u64,
        no_clear: bool,
        g: &mut Gather<'_, M>,
        mut f: impl FnMut(u64, u64),
    ) {
        if len == 0 || !g.belongs_to(&self.mem) {
            return;
        }
        let last = iova.saturating_add(len - 1);
        self.visit_leaves(iova, last, &mut |l, table, start, count| {
            let dirty = (start..start + count).any(|i| {
                // SAFETY: the visitor passes a live table and an in-bounds
                // group of items.
                let it = unsafe { item(table, i) };
                self.fmt.is_dirty(it.load(Ordering::Relaxed))
            });
            if !dirty {
                return;
            }
            f(l.iova, 1u64 << l.size_lg2);
            if no_clear {
                return;
            }
            for i in start..start + count {
                // SAFETY: as above.
                let it = unsafe { item(table, i) };
                // The hardware may set the bit again concurrently; retry
                // so that a new write is never lost.
                let mut cur = it.load(Ordering::Relaxed);
                while self.fmt.is_dirty(cur) {
                    match it.compare_exchange(
                        cur,
                        self.fmt.make_clean(cur),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break,
                        Err(now) => cur = now,
                    }
                }
            }
            g.add_range(l.iova, 1u64 << l.size_lg2);
        });
    }

    /// Marks the leaf item holding `iova` dirty as a device write would;
    /// false if `iova` is not mapped.
    pub fn set_dirty(&self, iova: u64) -> bool {
        let mut hit = false;
        self.visit_leaves(iova, iova, &mut |l, table, start, _| {
            let ilg2 = item_lg2::<F>(l.level);
            let i = start + ((iova - l.iova) >> ilg2) as usize;
            // SAFETY: the item holding `iova` lies in the visited group.
            let it = unsafe { item(table, i) };
            let _ = it.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(self.fmt.make_dirty(v))
            });
            hit = true;
        });
        hit
    }
}

impl<F: Format, M: TableMem> Drop for PageTable<F, M> {
    /// Frees every table. The owner has detached the table from every
    /// device and flushed the IOTLB before dropping it.
    fn drop(&mut self) {
        let level = self.fmt.top_level();
        if level > 0 {
            let t = self.top.virt.as_ptr().cast_const();
            for i in 0..1usize << self.fmt.top_items_lg2() {
                // SAFETY: i is below the top table's item count.
                let pte = unsafe { item(t, i) }.load(Ordering::Relaxed);
                if let Entry::Table(pa) = self.fmt.load(level, i, pte) {
                    self.free_subtree(level - 1, pa, None);
                }
            }
        }
        // SAFETY: nothing references the tree any more (see above).
        unsafe { self.mem.free(self.top) };
    }
}
