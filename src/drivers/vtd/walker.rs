//! Walker models of the VT-d second-stage and first-stage page tables.
//!
//! These are the test oracle for the VT-d page-table encoders, so they are
//! written from the architecture documents (Intel VT-d specification,
//! "Second-Stage Translation" / "First-Stage Translation" and the paging
//! entry formats in "Translation Structure Formats"; Intel SDM Vol. 3A,
//! "4-Level and 5-Level Paging") and share no code or constants with the
//! encoders. They read tables only through [`PhysMem`], exactly as the
//! IOMMU's page walker would, and update access/dirty flags with atomic
//! compare-exchange, as the hardware does.
//!
//! Levels are numbered from the leaf up: 0 = PTE (4 KiB), 1 = PDE (2 MiB),
//! 2 = PDPE (1 GiB), 3 = PML4E, 4 = PML5E. A [`Fault`] names the level of
//! the entry that caused it; faults found before any entry is read
//! (address width, canonical form, privilege) name the top level, and
//! configuration faults name level 0.
//!
//! # Modelling decisions
//!
//! The models check *more* than the hardware where the hardware would
//! silently ignore something Linux never programs; such a bit is reported
//! as [`FaultKind::Reserved`], because in an encoder it is a bug (typically
//! an `IOMMU_*` protection flag leaking into the entry).
//!
//! Second stage (`SSEE`/`SLEE`, `EMTE`, Device-TLB and execute-request
//! support are not modelled, i.e. all off):
//! - An entry is present iff R (bit 0) or W (bit 1) is set; an entry with
//!   neither is not present whatever its other bits hold.
//! - Bits 6:2 (X, and EMT/IPAT in leaves, "ignored" in tables) must be zero.
//!   The hardware ignores them with `SSEE=0`/`EMTE=0`; Linux never sets them.
//! - Bit 62 (TM in the legacy format, reserved in scalable mode and without
//!   Device-TLB support) is reserved.
//! - Bit 11 is reserved in every non-leaf entry; in a leaf it is SNP, and
//!   reserved unless [`SsConfig::snoop_allowed`].
//! - PS (bit 7): reserved in PML5E/PML4E; in a PDPE (PDE) it selects a
//!   1 GiB (2 MiB) leaf and is reserved unless `large_pages` bit 1 (bit 0)
//!   is set; ignored in a PTE.
//! - Bits 51:HAW of the address are reserved; so are the address bits below
//!   the page size of a large leaf.
//! - Bits 10, 61:52 and 63 (and 9 in tables) are ignored (software bits).
//! - A (bit 8) and D (bit 9, leaf only) are ignored unless `ssade`; with
//!   `ssade` the walker sets A in every entry it used and D in the leaf for a
//!   write.
//! - Permissions are the AND of R and W over every entry walked; a read
//!   needs R, a write needs W (write-only mappings are legal). An execute
//!   request is checked as a read (our reading of the `SLEE=0` rule:
//!   instruction fetch is allowed from any readable translation).
//!
//! First stage (x86-64 paging as VT-d uses it; `NXE`, `SMPE`, `EAFE` off):
//! - Present iff P (bit 0).
//! - XD (bit 63) is reserved (as with `IA32_EFER.NXE=0`); Linux never sets
//!   it for IOMMU mappings. An execute request is checked as a read.
//! - PS (bit 7) is reserved in PML5E/PML4E, and in a PDPE unless
//!   `gb_pages`; in a PTE it is the PAT bit. Large leaves keep PAT in bit 12
//!   and reserve the other address bits below the page size.
//! - Bits 51:HAW are reserved. Bits 8 (G, or ignored), 9, 10 (EA, off), 11
//!   and 62:52 are ignored; so is bit 6 in non-leaf entries.
//! - A user request needs U/S=1 in every entry; a write needs R/W=1 in every
//!   entry for user requests, and for supervisor requests only if `wpe`.
//!   A supervisor request when `sre` is clear is a permission fault.
//! - The walker always sets A in every entry used and D in the leaf for a
//!   write.
//!
//! Both: present and reserved bits are checked for every entry down to the
//! leaf before any permission is checked (as x86 and EPT walks do); a
//! permission fault names the topmost entry that denies the access. A/D
//! flags are written only for an access that succeeds, so a faulting access
//! leaves memory untouched. If an entry changes (other than in A/D) between
//! the walk and its A/D update, the walk restarts; after repeated changes
//! the model gives up with [`FaultKind::ExternalAbort`].

use crate::pagetable::PhysMem;

/// Second-stage table configuration: what the PASID/context entry and the
/// capability registers tell the walker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsConfig {
    /// Paging levels, 3, 4 or 5 (input address width 39, 48 or 57 bits).
    pub levels: u32,
    /// SSPTPTR: physical address of the top-level table (4 KiB aligned).
    pub root: u64,
    /// Host address width (13..=52): output address bits at and above it
    /// are reserved.
    pub haw: u32,
    /// CAP.SLLPS: bit 0 = 2 MiB leaves supported, bit 1 = 1 GiB.
    pub large_pages: u32,
    /// PASID-entry SSADE: the hardware sets accessed/dirty flags.
    pub ssade: bool,
    /// Whether SNP (bit 11 of a leaf) may be set (ECAP.SC or scalable mode).
    pub snoop_allowed: bool,
}

/// First-stage table configuration: what the PASID entry and the
/// capability registers tell the walker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsConfig {
    /// Paging levels, 4 or 5 (48- or 57-bit canonical input addresses).
    pub levels: u32,
    /// FSPTPTR: physical address of the top-level table (4 KiB aligned).
    pub root: u64,
    /// Host address width (13..=52): output address bits at and above it
    /// are reserved.
    pub haw: u32,
    /// CAP.FS1GP: 1 GiB leaves supported.
    pub gb_pages: bool,
    /// PASID-entry WPE: supervisor writes honour R/W.
    pub wpe: bool,
    /// PASID-entry SRE: supervisor requests are allowed at all.
    pub sre: bool,
}

/// The request being translated, as the device issued it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// Write (otherwise read) request.
    pub write: bool,
    /// Execute request (checked as a read; see the module notes).
    pub exec: bool,
    /// Supervisor-privilege request (first stage only; ignored for SS).
    pub supervisor: bool,
}

/// A successful translation: where the access goes and what the walk
/// allowed, so tests can compare it with what was mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// Output (physical) address of the accessed byte.
    pub pa: u64,
    /// Level of the leaf: 0 = 4 KiB, 1 = 2 MiB, 2 = 1 GiB.
    pub level: u32,
    /// Size of the page the leaf maps.
    pub page_size: u64,
    /// Reads are allowed (for this request's privilege).
    pub read: bool,
    /// Writes are allowed (for this request's privilege).
    pub write: bool,
    /// SS: the leaf's SNP bit. FS entries carry no snoop control (that is
    /// the PASID entry's PGSNP), so always false there.
    pub snoop: bool,
    /// The leaf entry as read, before any A/D update.
    pub desc: u64,
}

/// Why a translation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// An entry is not present (SS: neither R nor W; FS: P clear).
    NotPresent,
    /// A present entry has a reserved bit set.
    Reserved,
    /// The walk succeeded but the entries do not allow the access.
    Permission,
    /// FS: the input address is not canonical.
    NonCanonical,
    /// SS: the input address has bits set at or above the address width.
    AddressWidth,
    /// Reading or updating an entry hit no memory, or an entry kept
    /// changing under the walker.
    ExternalAbort,
    /// The configuration itself is invalid (levels, HAW, root).
    Config,
}

/// A translation fault and the level of the entry that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// What went wrong.
    pub kind: FaultKind,
    /// Level of the offending entry (0 = PTE .. 4 = PML5E).
    pub level: u32,
}

const fn fault(kind: FaultKind, level: u32) -> Fault {
    Fault { kind, level }
}

/// Deepest supported walk (5-level paging).
const MAX_LEVELS: usize = 5;
/// Bits 51:12 of every entry: the next table or the page frame.
const ADDR_51_12: u64 = 0x000f_ffff_ffff_f000;
/// Bits 8:0 of the input address index a 512-entry table.
const INDEX_MASK: u64 = 0x1ff;
/// How often a walk restarts because entries changed under an A/D update.
const MAX_RESTARTS: u32 = 8;

/// Second-stage entry bits (VT-d "Second-Stage Paging Entries").
mod ss {
    pub(super) const R: u64 = 1 << 0;
    pub(super) const W: u64 = 1 << 1;
    /// X (2), EMT (5:3) and IPAT (6) in leaves; X and ignored bits in tables.
    pub(super) const BITS_6_2: u64 = 0x7c;
    pub(super) const PS: u64 = 1 << 7;
    pub(super) const A: u64 = 1 << 8;
    pub(super) const D: u64 = 1 << 9;
    pub(super) const SNP: u64 = 1 << 11;
    pub(super) const BIT62: u64 = 1 << 62;
}

/// First-stage entry bits (x86-64 paging).
mod fs {
    pub(super) const P: u64 = 1 << 0;
    pub(super) const RW: u64 = 1 << 1;
    pub(super) const US: u64 = 1 << 2;
    pub(super) const A: u64 = 1 << 5;
    pub(super) const D: u64 = 1 << 6;
    pub(super) const PS: u64 = 1 << 7;
    /// PAT of a large leaf; part of the address field otherwise.
    pub(super) const PAT_LARGE: u64 = 1 << 12;
    pub(super) const XD: u64 = 1 << 63;
}

/// One entry used by a walk: where it is, what was read, which level.
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    pa: u64,
    desc: u64,
    level: u32,
}

/// The entries of one walk, top first.
#[derive(Debug, Clone, Copy, Default)]
struct Path {
    steps: [Step; MAX_LEVELS],
    len: usize,
}

impl Path {
    fn push(&mut self, step: Step) -> bool {
        match self.steps.get_mut(self.len) {
            Some(slot) => {
                *slot = step;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().take(self.len)
    }
}

/// A completed walk before permission checks and A/D updates.
struct Walk {
    path: Path,
    leaf: Step,
    page_size: u64,
    /// Output address of the page (leaf address, low bits cleared).
    base: u64,
}

/// Bytes mapped by one entry at `level`.
const fn level_size(level: u32) -> u64 {
    1u64 << (12 + 9 * level)
}

/// Address of the entry for `iova` at `level` in the table at `table`.
const fn entry_pa(table: u64, iova: u64, level: u32) -> u64 {
    table | (((iova >> (12 + 9 * level)) & INDEX_MASK) << 3)
}

/// Bits 51:haw, the part of the address field above the host address width.
const fn above_haw(haw: u32) -> u64 {
    ADDR_51_12 & !((1u64 << haw) - 1)
}

/// Common configuration check: a 4 KiB-aligned root below HAW, 12 < HAW <= 52.
fn check_root(root: u64, haw: u32) -> Result<(), Fault> {
    if !(13..=52).contains(&haw) || root & 0xfff != 0 || root >> haw != 0 {
        return Err(fault(FaultKind::Config, 0));
    }
    Ok(())
}

/// Why an A/D update did not complete.
enum AdError {
    /// No memory at the entry: external abort at this level.
    Abort(u32),
    /// The entry changed under the walker: restart (last level seen).
    Changed(u32),
}

/// Sets `a` in every entry of `path` and `d` too in the leaf when `write`,
/// with compare-exchange as the hardware's locked update.
fn set_ad(mem: &impl PhysMem, walk: &Walk, a: u64, d: u64, write: bool) -> Result<(), AdError> {
    let ad = a | d;
    for (i, step) in walk.path.iter().enumerate() {
        let is_leaf = i + 1 == walk.path.len;
        let bits = if is_leaf && write { a | d } else { a };
        let mut cur = step.desc;
        let mut done = false;
        for _ in 0..4 {
            if cur & bits == bits || mem.cmpxchg_u64(step.pa, cur, cur | bits) {
                done = true;
                break;
            }
            cur = mem.read_u64(step.pa).ok_or(AdError::Abort(step.level))?;
            if cur & !ad != step.desc & !ad {
                return Err(AdError::Changed(step.level));
            }
        }
        if !done {
            return Err(AdError::Changed(step.level));
        }
    }
    Ok(())
}

/// Walks the second-stage table at `cfg.root` for `iova` as the VT-d
/// remapping hardware would, checking presence, reserved bits and
/// permissions and (with `ssade`) setting A/D flags; the oracle against
/// which the SS encoder is tested.
pub fn walk_ss(
    mem: &impl PhysMem,
    cfg: &SsConfig,
    iova: u64,
    access: Access,
) -> Result<Translation, Fault> {
    if !(3..=5).contains(&cfg.levels) {
        return Err(fault(FaultKind::Config, 0));
    }
    check_root(cfg.root, cfg.haw)?;
    let top = cfg.levels - 1;
    if iova >> (12 + 9 * cfg.levels) != 0 {
        return Err(fault(FaultKind::AddressWidth, top));
    }
    let need_r = !access.write || access.exec;
    let need_w = access.write;

    let mut restarts = 0;
    loop {
        let walk = ss_walk_once(mem, cfg, top, iova)?;

        let mut read = true;
        let mut write = true;
        for step in walk.path.iter() {
            let r = step.desc & ss::R != 0;
            let w = step.desc & ss::W != 0;
            if (need_r && !r) || (need_w && !w) {
                return Err(fault(FaultKind::Permission, step.level));
            }
            read &= r;
            write &= w;
        }

        if cfg.ssade {
            match set_ad(mem, &walk, ss::A, ss::D, access.write) {
                Ok(()) => {}
                Err(AdError::Abort(level)) => return Err(fault(FaultKind::ExternalAbort, level)),
                Err(AdError::Changed(level)) => {
                    restarts += 1;
                    if restarts > MAX_RESTARTS {
                        return Err(fault(FaultKind::ExternalAbort, level));
                    }
                    continue;
                }
            }
        }

        return Ok(Translation {
            pa: walk.base | (iova & (walk.page_size - 1)),
            level: walk.leaf.level,
            page_size: walk.page_size,
            read,
            write,
            snoop: walk.leaf.desc & ss::SNP != 0,
            desc: walk.leaf.desc,
        });
    }
}

/// One second-stage walk: presence and reserved bits, no side effects.
fn ss_walk_once(mem: &impl PhysMem, cfg: &SsConfig, top: u32, iova: u64) -> Result<Walk, Fault> {
    let haw_rsvd = above_haw(cfg.haw);
    let mut path = Path::default();
    let mut table = cfg.root;
    let mut level = top;
    loop {
        let pa = entry_pa(table, iova, level);
        let desc = mem
            .read_u64(pa)
            .ok_or(fault(FaultKind::ExternalAbort, level))?;
        if desc & (ss::R | ss::W) == 0 {
            return Err(fault(FaultKind::NotPresent, level));
        }

        let ps = desc & ss::PS != 0;
        let leaf = match level {
            0 => true,
            1 | 2 => ps,
            _ => false,
        };
        let mut rsvd = haw_rsvd | ss::BIT62 | ss::BITS_6_2;
        match level {
            0 => {}
            1 if cfg.large_pages & 1 == 0 => rsvd |= ss::PS,
            2 if cfg.large_pages & 2 == 0 => rsvd |= ss::PS,
            1 | 2 => {}
            _ => rsvd |= ss::PS,
        }
        let size = level_size(level);
        if leaf {
            if !cfg.snoop_allowed {
                rsvd |= ss::SNP;
            }
            // Address bits below a large page's size.
            rsvd |= (size - 1) & ADDR_51_12;
        } else {
            rsvd |= ss::SNP;
        }
        if desc & rsvd != 0 {
            return Err(fault(FaultKind::Reserved, level));
        }

        let step = Step { pa, desc, level };
        if !path.push(step) {
            return Err(fault(FaultKind::Config, 0));
        }
        if leaf {
            return Ok(Walk {
                path,
                leaf: step,
                page_size: size,
                base: desc & ADDR_51_12,
            });
        }
        table = desc & ADDR_51_12;
        level = match level.checked_sub(1) {
            Some(next) => next,
            None => return Err(fault(FaultKind::Config, 0)),
        };
    }
}

/// Walks the first-stage (x86-64 4/5-level) table at `cfg.root` for `iova`
/// as the VT-d remapping hardware would, checking canonical form, presence,
/// reserved bits and privilege/permissions and setting A/D flags; the
/// oracle against which the FS encoder is tested.
pub fn walk_fs(
    mem: &impl PhysMem,
    cfg: &FsConfig,
    iova: u64,
    access: Access,
) -> Result<Translation, Fault> {
    if !(4..=5).contains(&cfg.levels) {
        return Err(fault(FaultKind::Config, 0));
    }
    check_root(cfg.root, cfg.haw)?;
    let top = cfg.levels - 1;
    if access.supervisor && !cfg.sre {
        return Err(fault(FaultKind::Permission, top));
    }
    // Bits 63:VA-1 must all equal bit VA-1 (VA = 48 or 57).
    let va_bits = 12 + 9 * cfg.levels;
    let upper = iova >> (va_bits - 1);
    if upper != 0 && upper != u64::MAX >> (va_bits - 1) {
        return Err(fault(FaultKind::NonCanonical, top));
    }
    let user = !access.supervisor;
    let rw_checked = user || cfg.wpe;

    let mut restarts = 0;
    loop {
        let walk = fs_walk_once(mem, cfg, top, iova)?;

        let mut rw_all = true;
        for step in walk.path.iter() {
            let us = step.desc & fs::US != 0;
            let rw = step.desc & fs::RW != 0;
            if (user && !us) || (access.write && rw_checked && !rw) {
                return Err(fault(FaultKind::Permission, step.level));
            }
            rw_all &= rw;
        }

        match set_ad(mem, &walk, fs::A, fs::D, access.write) {
            Ok(()) => {}
            Err(AdError::Abort(level)) => return Err(fault(FaultKind::ExternalAbort, level)),
            Err(AdError::Changed(level)) => {
                restarts += 1;
                if restarts > MAX_RESTARTS {
                    return Err(fault(FaultKind::ExternalAbort, level));
                }
                continue;
            }
        }

        return Ok(Translation {
            pa: walk.base | (iova & (walk.page_size - 1)),
            level: walk.leaf.level,
            page_size: walk.page_size,
            read: true,
            write: rw_all || !rw_checked,
            snoop: false,
            desc: walk.leaf.desc,
        });
    }
}

/// One first-stage walk: presence and reserved bits, no side effects.
fn fs_walk_once(mem: &impl PhysMem, cfg: &FsConfig, top: u32, iova: u64) -> Result<Walk, Fault> {
    let haw_rsvd = above_haw(cfg.haw);
    let mut path = Path::default();
    let mut table = cfg.root;
    let mut level = top;
    loop {
        let pa = entry_pa(table, iova, level);
        let desc = mem
            .read_u64(pa)
            .ok_or(fault(FaultKind::ExternalAbort, level))?;
        if desc & fs::P == 0 {
            return Err(fault(FaultKind::NotPresent, level));
        }

        // Bit 7 is PAT in a PTE, PS elsewhere.
        let ps = level > 0 && desc & fs::PS != 0;
        let leaf = match level {
            0 => true,
            1 | 2 => ps,
            _ => false,
        };
        let mut rsvd = haw_rsvd | fs::XD;
        match level {
            0 | 1 => {}
            2 if cfg.gb_pages => {}
            _ => rsvd |= fs::PS,
        }
        let size = level_size(level);
        if leaf && level > 0 {
            rsvd |= (size - 1) & ADDR_51_12 & !fs::PAT_LARGE;
        }
        if desc & rsvd != 0 {
            return Err(fault(FaultKind::Reserved, level));
        }

        let step = Step { pa, desc, level };
        if !path.push(step) {
            return Err(fault(FaultKind::Config, 0));
        }
        if leaf {
            return Ok(Walk {
                path,
                leaf: step,
                page_size: size,
                base: desc & ADDR_51_12 & !(size - 1),
            });
        }
        table = desc & ADDR_51_12;
        level = match level.checked_sub(1) {
            Some(next) => next,
            None => return Err(fault(FaultKind::Config, 0)),
        };
    }
}
