//! Lock-free IPv4 longest-prefix match.
//!
//! A DIR-24-8 table: a root table indexed by the top bits of the destination and groups of 256
//! entries (tbl8 groups) for the prefixes longer than the root covers. Two layouts, chosen at
//! construction ([`LpmConfig`]):
//!
//! - **24-bit root** (`root_bits: 24`): 2^24 root entries (64 MiB), one tbl8 level. A lookup is one
//!   load, or two for a destination under a prefix longer than /24. The layout of a big table.
//! - **16-bit root** (`root_bits: 16`): 2^16 root entries (256 KiB) and up to two tbl8 levels
//!   (16-8-8). For the many small tenant routers of a DVR host, where a default route in a 24-bit
//!   root would write all 16M entries.
//!
//! Every entry is one `AtomicU32`:
//!
//! ```text
//!  31      30     29..24   23..0
//! valid  extended  depth   next hop (route entry) or tbl8 group index (extended entry)
//! ```
//!
//! `depth` is the length of the route that wrote a route entry; the updates use it to know which
//! entries a route owns (an insert writes only entries whose depth is at most its length, a removal
//! rewrites only entries of its length).
//!
//! # Concurrency
//!
//! [`Lpm`] is the read side, shared through an `Arc` by the workers: lookups are wait-free (plain
//! loads, no retry, no lock). [`LpmWriter`] is the single write side, owned by the control thread.
//! Every update is a sequence of single-entry atomic stores, each of which leaves every address
//! with a next hop it had before the update or will have after it. A new tbl8 group is filled
//! completely before the entry pointing to it is published (Release store, Acquire load); a
//! group that becomes uniform is folded back into its parent entry and reused only after every
//! worker has passed a quiescent point ([`crate::qsbr`]), so a worker that followed the old pointer
//! still reads the values the group held.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::ids::NextHopId;
use crate::qsbr::{Qsbr, Retired};

mod prefix;
mod rib;
pub mod testgen;

#[cfg(test)]
mod tests;

pub use prefix::{Prefix, PrefixError, PREFIX_LEN_MAX};
pub use rib::{AddrHasher, Rib};

/// What [`Lpm::lookup_burst`] writes for a destination with no route.
pub const NO_ROUTE: u32 = u32::MAX;

/// Root size of the fast layout: indexed by the top 24 bits.
pub const ROOT_BITS_24: u32 = 24;

/// Root size of the small layout: indexed by the top 16 bits, with two tbl8 levels below.
pub const ROOT_BITS_16: u32 = 16;

/// Entries in one tbl8 group: one per value of the next 8 address bits.
pub const TBL8_GROUP_ENTRIES: usize = 1 << TBL8_BITS;

/// Largest number of tbl8 groups: an extended entry holds the group index in 24 bits.
pub const TBL8_GROUPS_MAX: u32 = 1 << 24;

/// Address bits one tbl8 level consumes.
const TBL8_BITS: u32 = 8;

const ROOT24_ENTRIES: usize = 1 << ROOT_BITS_24;
const ROOT16_ENTRIES: usize = 1 << ROOT_BITS_16;

/// Entry bits: next hop or group index.
const VALUE_MASK: u32 = 0x00FF_FFFF;
/// Entry bits: depth (the length of the route that wrote the entry), 6 bits for 0..=32.
const DEPTH_SHIFT: u32 = 24;
const DEPTH_MASK: u32 = 0x3F;
/// Entry bit: the value is a tbl8 group index.
const EXTENDED: u32 = 1 << 30;
/// Entry bit: the value is a next hop.
const VALID: u32 = 1 << 31;
/// The entry of an address with no route (zeroed memory is an empty table).
const INVALID: u32 = 0;

const _: () = assert!(VALUE_MASK as usize + 1 == TBL8_GROUPS_MAX as usize);
const _: () = assert!((DEPTH_MASK << DEPTH_SHIFT) & (VALUE_MASK | EXTENDED | VALID) == 0);
const _: () = assert!(PREFIX_LEN_MAX as u32 <= DEPTH_MASK);
const _: () = assert!(ROOT_BITS_24 + TBL8_BITS == 32 && ROOT_BITS_16 + 2 * TBL8_BITS == 32);
const _: () = assert!(NO_ROUTE > VALUE_MASK);
const _: () = assert!(NextHopId::MAX == VALUE_MASK);

/// Table geometry, fixed at construction; all memory is allocated then.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct LpmConfig {
    /// [`ROOT_BITS_24`] (fastest, 64 MiB root) or [`ROOT_BITS_16`] (256 KiB root, 16-8-8).
    pub root_bits: u32,
    /// tbl8 groups (1 KiB each) for prefixes longer than the root covers: at most one per
    /// /24 (24-bit root) holding longer routes; in the 16-bit layout also one per /16 holding
    /// routes longer than /16.
    pub tbl8_groups: u32,
}

impl LpmConfig {
    /// The 24-bit layout with `tbl8_groups` groups.
    pub const fn root24(tbl8_groups: u32) -> Self {
        Self {
            root_bits: ROOT_BITS_24,
            tbl8_groups,
        }
    }

    /// The 16-bit (16-8-8) layout with `tbl8_groups` groups.
    pub const fn root16(tbl8_groups: u32) -> Self {
        Self {
            root_bits: ROOT_BITS_16,
            tbl8_groups,
        }
    }

    /// Checks the geometry.
    ///
    /// # Errors
    ///
    /// [`LpmError::InvalidRootBits`], [`LpmError::Tbl8GroupsOutOfRange`].
    pub fn validate(&self) -> Result<(), LpmError> {
        if self.root_bits != ROOT_BITS_24 && self.root_bits != ROOT_BITS_16 {
            return Err(LpmError::InvalidRootBits {
                root_bits: self.root_bits,
            });
        }
        if self.tbl8_groups > TBL8_GROUPS_MAX {
            return Err(LpmError::Tbl8GroupsOutOfRange {
                tbl8_groups: self.tbl8_groups,
                max: TBL8_GROUPS_MAX,
            });
        }
        Ok(())
    }

    /// The bytes the tables take.
    pub fn memory_bytes(&self) -> usize {
        let entries = (1usize << self.root_bits) + self.tbl8_groups as usize * TBL8_GROUP_ENTRIES;
        entries * std::mem::size_of::<AtomicU32>()
    }
}

/// Errors of the LPM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LpmError {
    /// The root size is not one of the two layouts.
    #[error("root_bits must be {ROOT_BITS_24} or {ROOT_BITS_16}, got {root_bits}")]
    InvalidRootBits {
        /// The rejected value.
        root_bits: u32,
    },
    /// Too many tbl8 groups for the 24-bit group index.
    #[error("tbl8_groups must be at most {max}, got {tbl8_groups}")]
    Tbl8GroupsOutOfRange {
        /// The rejected value.
        tbl8_groups: u32,
        /// [`TBL8_GROUPS_MAX`].
        max: u32,
    },
    /// No free tbl8 group for a prefix longer than the root covers; the table is unchanged.
    #[error("no free tbl8 group for {prefix}: all {capacity} are in use or waiting for readers")]
    Tbl8Exhausted {
        /// The prefix that was not inserted.
        prefix: Prefix,
        /// The configured number of groups.
        capacity: u32,
    },
    /// The prefix is not in the table.
    #[error("no route for {prefix}")]
    NotFound {
        /// The prefix asked for.
        prefix: Prefix,
    },
}

/// The root table, typed by its size so that indexing by the top address bits needs no bounds
/// check.
enum Root {
    Bits24(Box<[AtomicU32; ROOT24_ENTRIES]>),
    Bits16(Box<[AtomicU32; ROOT16_ENTRIES]>),
}

/// The read side: lookups, wait-free, from any number of threads. Built by [`LpmWriter::new`].
pub struct Lpm {
    root: Root,
    /// `tbl8_groups * 256` entries; group `g` is `tbl8[g * 256..(g + 1) * 256]`.
    tbl8: Box<[AtomicU32]>,
    config: LpmConfig,
}

impl fmt::Debug for Lpm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lpm")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A zeroed table of `N` entries. `alloc_zeroed` hands out fresh zero pages from the kernel for
/// large sizes: construction takes microseconds and the pages are not touched (so they can still
/// be advised onto huge pages before the first route is written). Building the slice element by
/// element would write every entry, 64 MiB for the 24-bit root, unless the optimiser happens to
/// turn the loop back into a zeroed allocation.
fn zeroed_entries(len: usize) -> Box<[AtomicU32]> {
    bytemuck::zeroed_slice_box(len)
}

fn zeroed_root<const N: usize>() -> Box<[AtomicU32; N]> {
    match zeroed_entries(N).try_into() {
        Ok(root) => root,
        Err(_) => unreachable!("a slice of N entries converts to [_; N]"),
    }
}

/// Whether `entry` points to a tbl8 group.
#[inline(always)]
fn is_extended(entry: u32) -> bool {
    entry & EXTENDED != 0
}

#[inline(always)]
fn depth_of(entry: u32) -> u32 {
    (entry >> DEPTH_SHIFT) & DEPTH_MASK
}

#[inline(always)]
fn route_entry(next_hop: NextHopId, len: u8) -> u32 {
    VALID | (u32::from(len) << DEPTH_SHIFT) | next_hop.get()
}

#[inline(always)]
fn group_entry(group: u32) -> u32 {
    EXTENDED | group
}

/// The lookup result of a route entry: the next hop, or [`NO_ROUTE`].
#[inline(always)]
fn decode(entry: u32) -> u32 {
    if entry & VALID != 0 {
        entry & VALUE_MASK
    } else {
        NO_ROUTE
    }
}

/// Loads entry `byte` of the group an extended entry points to.
#[inline(always)]
fn load_tbl8(tbl8: &[AtomicU32], extended: u32, byte: u32) -> u32 {
    let index = (((extended & VALUE_MASK) as usize) << TBL8_BITS) | (byte & 0xFF) as usize;
    // Acquire, as for every entry: pairs with the Release store that published the entry (and,
    // for a route entry, with whatever the control thread wrote before installing that route,
    // such as the next hop's state).
    tbl8[index].load(Ordering::Acquire)
}

/// The route entry for `addr` in the 24-bit layout.
#[inline(always)]
fn entry24(root: &[AtomicU32; ROOT24_ENTRIES], tbl8: &[AtomicU32], addr: u32) -> u32 {
    // Acquire: pairs with the Release store that published this entry; if it points to a group,
    // the group's contents written before the publication are visible to the load below.
    let entry = root[(addr >> 8) as usize].load(Ordering::Acquire);
    if is_extended(entry) {
        load_tbl8(tbl8, entry, addr)
    } else {
        entry
    }
}

/// The route entry for `addr` in the 16-bit layout (16-8-8).
#[inline(always)]
fn entry16(root: &[AtomicU32; ROOT16_ENTRIES], tbl8: &[AtomicU32], addr: u32) -> u32 {
    let entry = root[(addr >> 16) as usize].load(Ordering::Acquire);
    if !is_extended(entry) {
        return entry;
    }
    let entry = load_tbl8(tbl8, entry, addr >> 8);
    if !is_extended(entry) {
        return entry;
    }
    load_tbl8(tbl8, entry, addr)
}

/// Lookups per group in [`Lpm::lookup_burst`]: the root loads of a group are issued before its
/// tbl8 loads (see `burst24` for the measurements that chose 4).
const LOOKUP_GROUP: usize = 4;

impl Lpm {
    fn new(config: LpmConfig) -> Result<Self, LpmError> {
        config.validate()?;
        let root = if config.root_bits == ROOT_BITS_24 {
            Root::Bits24(zeroed_root())
        } else {
            Root::Bits16(zeroed_root())
        };
        Ok(Self {
            root,
            tbl8: zeroed_entries(config.tbl8_groups as usize * TBL8_GROUP_ENTRIES),
            config,
        })
    }

    /// The next hop of the longest prefix containing `addr` (host order).
    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<NextHopId> {
        let entry = match &self.root {
            Root::Bits24(root) => entry24(root, &self.tbl8, addr),
            Root::Bits16(root) => entry16(root, &self.tbl8, addr),
        };
        (entry & VALID != 0).then_some(NextHopId::from_low_bits(entry))
    }

    /// Looks `addr` up and returns the next hop with the length of the route that matched
    /// (0 for a default route).
    pub fn lookup_with_len(&self, addr: u32) -> Option<(NextHopId, u8)> {
        let entry = match &self.root {
            Root::Bits24(root) => entry24(root, &self.tbl8, addr),
            Root::Bits16(root) => entry16(root, &self.tbl8, addr),
        };
        (entry & VALID != 0).then(|| {
            let len = (entry >> DEPTH_SHIFT) & DEPTH_MASK;
            (NextHopId::from_low_bits(entry), len as u8)
        })
    }

    /// Looks up every address of `addrs` (host order) and writes the next hop index, or
    /// [`NO_ROUTE`], to the same position of `out`.
    ///
    /// # Panics
    ///
    /// If `out` is shorter than `addrs`.
    pub fn lookup_burst(&self, addrs: &[u32], out: &mut [u32]) {
        let out = &mut out[..addrs.len()];
        match &self.root {
            Root::Bits24(root) => burst24(root, &self.tbl8, addrs, out),
            Root::Bits16(root) => burst16(root, &self.tbl8, addrs, out),
        }
    }

    /// The geometry the table was built with.
    pub fn config(&self) -> LpmConfig {
        self.config
    }

    /// The memory of the tables as `(address, length in bytes)`: the daemon advises them onto
    /// transparent huge pages before the first route is written (this crate cannot: no unsafe).
    pub fn memory_regions(&self) -> impl Iterator<Item = (usize, usize)> {
        let root = match &self.root {
            Root::Bits24(root) => (root.as_ptr() as usize, std::mem::size_of_val(&**root)),
            Root::Bits16(root) => (root.as_ptr() as usize, std::mem::size_of_val(&**root)),
        };
        let tbl8 = (
            self.tbl8.as_ptr() as usize,
            std::mem::size_of_val(&*self.tbl8),
        );
        [root, tbl8].into_iter().filter(|&(_, len)| len > 0)
    }

    fn root_slice(&self) -> &[AtomicU32] {
        match &self.root {
            Root::Bits24(root) => &root[..],
            Root::Bits16(root) => &root[..],
        }
    }

    fn group(&self, group: u32) -> &[AtomicU32] {
        let first = group as usize * TBL8_GROUP_ENTRIES;
        &self.tbl8[first..first + TBL8_GROUP_ENTRIES]
    }
}

/// Burst lookup, 24-bit layout. Without unsafe there is no prefetch instruction; the overlap of
/// cache and TLB misses comes from independent loads instead. Per group of [`LOOKUP_GROUP`]
/// addresses, every root load is issued before any tbl8 load. Measured on a 1M-route table with
/// random destinations (4 KiB pages), cycles per lookup: groups of 4: 20.6, of 8: 20.8, a plain
/// loop of single lookups: 21.1, groups of 16: 23.6, and all root loads of a 32-address pass
/// stored to `out` first, then the tbl8 loads: 30.3. The core already overlaps the misses of
/// consecutive lookups as long as the rarely taken tbl8 branch predicts well; wider passes only
/// add work (and a branchless tbl8 load, 22.5, costs more than the branch it saves).
fn burst24(root: &[AtomicU32; ROOT24_ENTRIES], tbl8: &[AtomicU32], addrs: &[u32], out: &mut [u32]) {
    let mut addr_groups = addrs.chunks_exact(LOOKUP_GROUP);
    let mut out_groups = out.chunks_exact_mut(LOOKUP_GROUP);
    for (addrs, out) in (&mut addr_groups).zip(&mut out_groups) {
        let mut entries = [0u32; LOOKUP_GROUP];
        for (entry, &addr) in entries.iter_mut().zip(addrs) {
            *entry = root[(addr >> 8) as usize].load(Ordering::Acquire);
        }
        for ((out, &entry), &addr) in out.iter_mut().zip(&entries).zip(addrs) {
            let entry = if is_extended(entry) {
                load_tbl8(tbl8, entry, addr)
            } else {
                entry
            };
            *out = decode(entry);
        }
    }
    for (out, &addr) in out_groups
        .into_remainder()
        .iter_mut()
        .zip(addr_groups.remainder())
    {
        *out = decode(entry24(root, tbl8, addr));
    }
}

/// Burst lookup, 16-bit layout: as [`burst24`], with up to two tbl8 levels.
fn burst16(root: &[AtomicU32; ROOT16_ENTRIES], tbl8: &[AtomicU32], addrs: &[u32], out: &mut [u32]) {
    let mut addr_groups = addrs.chunks_exact(LOOKUP_GROUP);
    let mut out_groups = out.chunks_exact_mut(LOOKUP_GROUP);
    for (addrs, out) in (&mut addr_groups).zip(&mut out_groups) {
        let mut entries = [0u32; LOOKUP_GROUP];
        for (entry, &addr) in entries.iter_mut().zip(addrs) {
            *entry = root[(addr >> 16) as usize].load(Ordering::Acquire);
        }
        for ((out, &entry), &addr) in out.iter_mut().zip(&entries).zip(addrs) {
            let mut entry = entry;
            if is_extended(entry) {
                entry = load_tbl8(tbl8, entry, addr >> 8);
                if is_extended(entry) {
                    entry = load_tbl8(tbl8, entry, addr);
                }
            }
            *out = decode(entry);
        }
    }
    for (out, &addr) in out_groups
        .into_remainder()
        .iter_mut()
        .zip(addr_groups.remainder())
    {
        *out = decode(entry16(root, tbl8, addr));
    }
}

/// The index of `bits` in a table that consumes address bits `start..end` (counted from the top).
#[inline]
fn slot_index(bits: u32, start: u32, end: u32) -> usize {
    ((bits << start) >> (32 - (end - start))) as usize
}

/// Groups that one removal can fold back: one per tbl8 level.
#[derive(Default)]
struct Collapsed {
    groups: [u32; 2],
    len: usize,
}

impl Collapsed {
    fn push(&mut self, group: u32) {
        self.groups[self.len] = group;
        self.len += 1;
    }

    fn as_slice(&self) -> &[u32] {
        &self.groups[..self.len]
    }
}

/// The write side: the only writer of one [`Lpm`], owned by the control thread. Holds every route
/// (the [`Rib`]), the free tbl8 groups and the groups waiting for a grace period.
pub struct LpmWriter {
    lpm: Arc<Lpm>,
    rib: Rib,
    /// Free group indexes, used last-in first-out (a recently freed group is likelier cached).
    free: Vec<u32>,
    /// Groups unpublished, waiting for every reader to pass a quiescent point.
    retired: Retired<u32>,
    qsbr: Arc<Qsbr>,
}

impl fmt::Debug for LpmWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LpmWriter")
            .field("config", &self.lpm.config)
            .field("routes", &self.rib.len())
            .field("tbl8_free", &self.free.len())
            .field("tbl8_retired", &self.retired.len())
            .finish_non_exhaustive()
    }
}

impl LpmWriter {
    /// An empty table with the geometry of `config`, all memory allocated (zeroed, untouched).
    /// Groups it frees are reused after a grace period of `qsbr`, the domain of the workers that
    /// read the table.
    ///
    /// # Errors
    ///
    /// As [`LpmConfig::validate`].
    pub fn new(config: LpmConfig, qsbr: Arc<Qsbr>) -> Result<Self, LpmError> {
        let lpm = Arc::new(Lpm::new(config)?);
        // Reversed so that group 0 is used first.
        let free: Vec<u32> = (0..config.tbl8_groups).rev().collect();
        Ok(Self {
            lpm,
            rib: Rib::new(),
            free,
            retired: Retired::with_capacity(config.tbl8_groups as usize),
            qsbr,
        })
    }

    /// The read side, to clone into the workers.
    pub fn lpm(&self) -> &Arc<Lpm> {
        &self.lpm
    }

    /// The QSBR domain the table's readers report to.
    pub fn qsbr(&self) -> &Arc<Qsbr> {
        &self.qsbr
    }

    /// Adds a route, or changes the next hop of an existing one. Returns the replaced next hop.
    ///
    /// Writes only the entries the route owns: those whose current route is not more specific.
    ///
    /// # Errors
    ///
    /// [`LpmError::Tbl8Exhausted`] when the prefix needs a tbl8 group and none is free; the table
    /// is then unchanged.
    pub fn insert(
        &mut self,
        prefix: Prefix,
        next_hop: NextHopId,
    ) -> Result<Option<NextHopId>, LpmError> {
        self.reclaim();
        let old = self.rib.get(prefix);
        if old == Some(next_hop) {
            return Ok(old);
        }
        // A route already present has its groups; a new one may need up to one per tbl8 level.
        if old.is_none() && self.groups_needed(prefix) > self.free.len() {
            return Err(LpmError::Tbl8Exhausted {
                prefix,
                capacity: self.lpm.config.tbl8_groups,
            });
        }
        self.rib.insert(prefix, next_hop);
        let entry = route_entry(next_hop, prefix.len());
        let lpm = &*self.lpm;
        install(
            lpm,
            &mut self.free,
            lpm.root_slice(),
            0,
            lpm.config.root_bits,
            prefix,
            entry,
        );
        Ok(old)
    }

    /// Removes a route; its addresses fall back to the longest remaining route that covers it.
    /// Returns its next hop.
    ///
    /// # Errors
    ///
    /// [`LpmError::NotFound`] when the prefix is not in the table.
    pub fn remove(&mut self, prefix: Prefix) -> Result<NextHopId, LpmError> {
        let next_hop = self
            .rib
            .remove(prefix)
            .ok_or(LpmError::NotFound { prefix })?;
        let replacement = self
            .rib
            .covering(prefix)
            .map_or(INVALID, |(covering, hop)| route_entry(hop, covering.len()));
        let mut collapsed = Collapsed::default();
        let lpm = &*self.lpm;
        uninstall(
            lpm,
            lpm.root_slice(),
            0,
            lpm.config.root_bits,
            prefix,
            replacement,
            &mut collapsed,
        );
        if collapsed.len > 0 {
            // After the stores that unpublished the groups: readers that report this token or a
            // later one can no longer reach them.
            let token = self.qsbr.retire_token();
            for &group in collapsed.as_slice() {
                self.retired.push(token, group);
            }
        }
        Ok(next_hop)
    }

    /// The next hop of exactly `prefix`, if it is in the table.
    pub fn get(&self, prefix: Prefix) -> Option<NextHopId> {
        self.rib.get(prefix)
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.rib.len()
    }

    /// Whether the table holds no route.
    pub fn is_empty(&self) -> bool {
        self.rib.is_empty()
    }

    /// Every route, shortest prefixes first.
    pub fn iter(&self) -> impl Iterator<Item = (Prefix, NextHopId)> + '_ {
        self.rib.iter()
    }

    /// The routes, for covering and longest-match queries on the control side.
    pub fn rib(&self) -> &Rib {
        &self.rib
    }

    /// Returns to the free list the groups whose grace period is over; called by
    /// [`LpmWriter::insert`] too. Returns how many came back. Never waits.
    pub fn reclaim(&mut self) -> usize {
        if self.retired.is_empty() {
            return 0;
        }
        let before = self.free.len();
        // No allocation: `free` was built with room for every group.
        self.free.extend(self.retired.drain_safe(&self.qsbr));
        self.free.len() - before
    }

    /// tbl8 groups not free: holding routes or waiting for a grace period.
    pub fn tbl8_in_use(&self) -> u32 {
        self.lpm.config.tbl8_groups - self.free.len() as u32
    }

    /// tbl8 groups unpublished and waiting for the readers (part of [`LpmWriter::tbl8_in_use`]).
    pub fn tbl8_retired(&self) -> u32 {
        self.retired.len() as u32
    }

    /// The configured number of tbl8 groups.
    pub fn tbl8_capacity(&self) -> u32 {
        self.lpm.config.tbl8_groups
    }

    /// How many free groups inserting `prefix` would take.
    fn groups_needed(&self, prefix: Prefix) -> usize {
        let len = u32::from(prefix.len());
        let mut table = self.lpm.root_slice();
        let (mut start, mut end) = (0, self.lpm.config.root_bits);
        while len > end {
            let entry = table[slot_index(prefix.bits(), start, end)].load(Ordering::Relaxed);
            if !is_extended(entry) {
                // One new group for each level from here down to the prefix's.
                return (len - end).div_ceil(TBL8_BITS) as usize;
            }
            table = self.lpm.group(entry & VALUE_MASK);
            (start, end) = (end, end + TBL8_BITS);
        }
        0
    }
}

// The update functions below run on the writer only. Its own earlier stores are the latest values
// of every entry, so it reads entries with Relaxed loads; every store a reader may see is Release
// (pairing with the readers' Acquire loads), and stores into a group not yet published are
// Relaxed (the Release store that publishes the group orders them).

/// Installs a route of `prefix` with route entry `entry` into `table`, which consumes address bits
/// `start..end`, allocating groups (counted beforehand) where the prefix is longer than `end`.
fn install(
    lpm: &Lpm,
    free: &mut Vec<u32>,
    table: &[AtomicU32],
    start: u32,
    end: u32,
    prefix: Prefix,
    entry: u32,
) {
    let len = u32::from(prefix.len());
    // Every entry of the prefix's run whose route is not more specific gets the new route.
    let below = slot_below(lpm, table, (start, end), prefix, |slot, current| {
        if depth_of(current) <= len && current != entry {
            slot.store(entry, Ordering::Release);
        }
    });
    let Some(slot) = below else {
        return;
    };
    let current = slot.load(Ordering::Relaxed);
    if is_extended(current) {
        let group = lpm.group(current & VALUE_MASK);
        install(lpm, free, group, end, end + TBL8_BITS, prefix, entry);
        return;
    }
    let index = free
        .pop()
        .expect("tbl8 groups are counted before an insert");
    let group = lpm.group(index);
    // The group takes over the slot: every entry starts as the slot's route (or no route), with
    // that route's depth, then the new route goes in, all before any reader can see the group.
    for member in group {
        member.store(current, Ordering::Relaxed);
    }
    install(lpm, free, group, end, end + TBL8_BITS, prefix, entry);
    // Release: the group's contents, written above, are visible to every reader that loads this
    // entry (Acquire) and follows it. A reader never sees a partly filled group.
    slot.store(group_entry(index), Ordering::Release);
}

/// Where `prefix` lands in `table`, which consumes bits `start..end`. When the prefix ends at
/// this level, `visit` gets every route entry of the run of slots it covers (descending into
/// the groups they point to), with its value, and the result is `None`; when it is longer, the
/// result is the one slot whose group holds it.
fn slot_below<'t>(
    lpm: &Lpm,
    table: &'t [AtomicU32],
    (start, end): (u32, u32),
    prefix: Prefix,
    mut visit: impl FnMut(&AtomicU32, u32),
) -> Option<&'t AtomicU32> {
    let len = u32::from(prefix.len());
    let first = slot_index(prefix.bits(), start, end);
    if len > end {
        return Some(&table[first]);
    }
    for slot in &table[first..first + (1usize << (end - len))] {
        for_each_route_entry(lpm, slot, &mut visit);
    }
    None
}

/// Calls `visit` with every route entry `slot` stands for, and its value: the slot itself, or
/// the entries of the groups it points to.
fn for_each_route_entry(lpm: &Lpm, slot: &AtomicU32, visit: &mut impl FnMut(&AtomicU32, u32)) {
    let current = slot.load(Ordering::Relaxed);
    if is_extended(current) {
        for member in lpm.group(current & VALUE_MASK) {
            for_each_route_entry(lpm, member, visit);
        }
    } else {
        visit(slot, current);
    }
}

/// Removes the route of `prefix` from `table` (consuming bits `start..end`): its entries get
/// `replacement` (the covering route's entry, or no route), and groups left uniform are folded
/// back into their parent entry and recorded in `collapsed`.
fn uninstall(
    lpm: &Lpm,
    table: &[AtomicU32],
    start: u32,
    end: u32,
    prefix: Prefix,
    replacement: u32,
    collapsed: &mut Collapsed,
) {
    let len = u32::from(prefix.len());
    // Every entry of the prefix's run that holds this route gets the replacement.
    let below = slot_below(lpm, table, (start, end), prefix, |slot, current| {
        if current & VALID != 0 && depth_of(current) == len {
            slot.store(replacement, Ordering::Release);
        }
    });
    let Some(slot) = below else {
        return;
    };
    let current = slot.load(Ordering::Relaxed);
    // A route longer than `end` was installed below this slot, so the slot points to a group.
    debug_assert!(is_extended(current), "{prefix} has no group");
    if !is_extended(current) {
        return;
    }
    let index = current & VALUE_MASK;
    let group = lpm.group(index);
    uninstall(
        lpm,
        group,
        end,
        end + TBL8_BITS,
        prefix,
        replacement,
        collapsed,
    );
    if let Some(uniform) = uniform_entry(group, end) {
        // Release, as every store of a route entry. Readers that still hold the group's index
        // read the same values from it until the grace period ends.
        slot.store(uniform, Ordering::Release);
        collapsed.push(index);
    }
}

/// The entry that can replace `group` in its parent slot (which covers a /`parent_len`): `Some`
/// when all 256 entries are the same route no longer than the parent's, or all no route.
fn uniform_entry(group: &[AtomicU32], parent_len: u32) -> Option<u32> {
    let first = group[0].load(Ordering::Relaxed);
    if is_extended(first) || depth_of(first) > parent_len {
        return None;
    }
    group
        .iter()
        .all(|member| member.load(Ordering::Relaxed) == first)
        .then_some(first)
}
