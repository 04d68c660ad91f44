//! Lock-free tables read by the workers and written by the control thread.
//!
//! - [`NextHops`]: what an LPM result points at. A next hop is a neighbour of a router (an
//!   instance port, a gateway of an extra route, a dynamically resolved address) or a special
//!   action (deliver to the router itself, resolve the destination, blackhole). Its mutable part
//!   is one `AtomicU64` ([`NextHopState`]), so a worker reads it in one load and never sees a
//!   torn entry.
//! - [`AtomicMap`]: a fixed-capacity open-addressing hash map from a non-zero `u64` key to a
//!   `u64` value, with one writer and wait-free readers; used for the L2 tables
//!   ((network, MAC) to location).
//!
//! Both have one writer at a time (the control thread); `&mut self` on the writer side of
//! [`AtomicMap`] and the `NextHopAllocator` enforce it. Freed slots are reused only after every
//! worker passed a quiescent point ([`crate::qsbr`]).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::ids::{IfaceId, NextHopId, PeerId, PortId};
use crate::qsbr::{Qsbr, Retired};
use crate::reason::DropReason;
use crate::wire::EthernetAddress;

/// An interface id that names no interface (next hops of the fabric's underlay).
pub const IFACE_NONE: IfaceId = IfaceId::new(u16::MAX);

/// What a worker does with a packet whose route resolved to this next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHopKind {
    /// An empty slot: never published in a table; reading it means a race with a delete.
    Empty,
    /// A neighbour behind local port `target`, at `mac`.
    Local,
    /// A neighbour on the peer host `target`, at `mac`, reached over the fabric.
    Remote,
    /// A connected subnet: the destination itself is the neighbour and has no entry yet; punt it
    /// to the control thread, which resolves it.
    Resolve,
    /// A neighbour being resolved: punt (the control thread holds the packet).
    Pending,
    /// A neighbour that did not answer: ICMP host unreachable.
    Failed,
    /// One of the router's own addresses: punt for local delivery.
    LocalDelivery,
    /// Drop, with the reason whose counter index is `target`.
    Blackhole,
}

impl NextHopKind {
    const ALL: [NextHopKind; 8] = [
        NextHopKind::Empty,
        NextHopKind::Local,
        NextHopKind::Remote,
        NextHopKind::Resolve,
        NextHopKind::Pending,
        NextHopKind::Failed,
        NextHopKind::LocalDelivery,
        NextHopKind::Blackhole,
    ];

    fn code(self) -> u64 {
        self as u64
    }

    fn from_code(code: u64) -> NextHopKind {
        Self::ALL
            .get(code as usize)
            .copied()
            .unwrap_or(NextHopKind::Empty)
    }

    /// A short lower-case name for operators.
    pub fn name(self) -> &'static str {
        match self {
            NextHopKind::Empty => "empty",
            NextHopKind::Local => "local",
            NextHopKind::Remote => "remote",
            NextHopKind::Resolve => "resolve",
            NextHopKind::Pending => "pending",
            NextHopKind::Failed => "failed",
            NextHopKind::LocalDelivery => "local-delivery",
            NextHopKind::Blackhole => "blackhole",
        }
    }
}

/// The mutable part of a next hop, packed into one word:
/// bits 0..48 the neighbour MAC, 48..52 the kind, 52..64 the target (a port or a peer index,
/// or a drop reason for a blackhole).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NextHopState(u64);

const MAC_BITS: u32 = 48;
const KIND_SHIFT: u32 = 48;
const KIND_MASK: u64 = 0xf;
const TARGET_SHIFT: u32 = 52;
/// Largest target (port, peer or drop reason index) a next hop can name.
pub const NEXT_HOP_TARGET_MAX: u16 = (1 << (64 - TARGET_SHIFT)) - 1;

const _: () = assert!(NextHopKind::Blackhole as u64 <= KIND_MASK);
const _: () = assert!(crate::model::MAX_PEERS <= NEXT_HOP_TARGET_MAX as usize);

impl NextHopState {
    pub const EMPTY: NextHopState = NextHopState(0);

    /// Packs a state. `target` must be at most [`NEXT_HOP_TARGET_MAX`].
    fn pack(kind: NextHopKind, target: u16, mac: EthernetAddress) -> Self {
        debug_assert!(target <= NEXT_HOP_TARGET_MAX);
        let mac = mac.to_u64() & ((1 << MAC_BITS) - 1);
        NextHopState(mac | (kind.code() << KIND_SHIFT) | (u64::from(target) << TARGET_SHIFT))
    }

    /// A neighbour at `mac` behind local port `port`.
    pub fn local(port: PortId, mac: EthernetAddress) -> Self {
        Self::pack(NextHopKind::Local, port.get(), mac)
    }

    /// A neighbour at `mac` on the peer host `peer`.
    pub fn remote(peer: PeerId, mac: EthernetAddress) -> Self {
        Self::pack(NextHopKind::Remote, peer.get(), mac)
    }

    /// A state with no neighbour address and no target: any kind but `Local`, `Remote` and
    /// `Blackhole`, which have their own constructors.
    pub fn action(kind: NextHopKind) -> Self {
        debug_assert!(!matches!(
            kind,
            NextHopKind::Local | NextHopKind::Remote | NextHopKind::Blackhole
        ));
        Self::pack(kind, 0, EthernetAddress([0; 6]))
    }

    /// A blackhole that counts `reason`.
    pub fn blackhole(reason: DropReason) -> Self {
        Self::pack(
            NextHopKind::Blackhole,
            reason as u16,
            EthernetAddress([0; 6]),
        )
    }

    #[inline]
    pub fn kind(self) -> NextHopKind {
        NextHopKind::from_code((self.0 >> KIND_SHIFT) & KIND_MASK)
    }

    /// The target field as stored: what it names depends on the kind.
    #[inline]
    fn target(self) -> u16 {
        (self.0 >> TARGET_SHIFT) as u16
    }

    /// The port of a `Local` neighbour.
    #[inline]
    pub fn port(self) -> PortId {
        debug_assert_eq!(self.kind(), NextHopKind::Local);
        PortId::new(self.target())
    }

    /// The peer host of a `Remote` neighbour.
    #[inline]
    pub fn peer(self) -> PeerId {
        debug_assert_eq!(self.kind(), NextHopKind::Remote);
        PeerId::new(self.target())
    }

    /// The reason a `Blackhole` counts, or `None` for an index no reason has.
    #[inline]
    pub fn drop_reason(self) -> Option<DropReason> {
        debug_assert_eq!(self.kind(), NextHopKind::Blackhole);
        DropReason::from_index(usize::from(self.target()))
    }

    /// The neighbour MAC as six octets.
    #[inline]
    pub fn mac_bytes(self) -> [u8; 6] {
        let b = self.0.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }

    #[inline]
    pub fn mac(self) -> EthernetAddress {
        EthernetAddress(self.mac_bytes())
    }

    pub fn raw(self) -> u64 {
        self.0
    }
}

impl std::fmt::Debug for NextHopState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}(target {}, {})",
            self.kind().name(),
            self.target(),
            self.mac()
        )
    }
}

/// One next hop: its state and the router interface it belongs to. The interface never changes
/// while the slot is in use, so it is read with a relaxed load.
#[derive(Debug)]
struct NextHopSlot {
    state: AtomicU64,
    iface: AtomicU32,
    /// Set by workers the first time a dynamic neighbour is used after the control thread
    /// cleared it; tells the ageing whether the entry is still in use.
    used: AtomicBool,
}

/// The next-hop table: fixed capacity, allocated at startup.
#[derive(Debug)]
pub struct NextHops {
    slots: Box<[NextHopSlot]>,
}

/// A next hop as a worker sees it.
#[derive(Clone, Copy, Debug)]
pub struct NextHop {
    pub state: NextHopState,
    pub iface: IfaceId,
}

impl NextHops {
    /// A table of `capacity` next hops (all empty). Slot 0 is reserved as the empty next hop.
    pub fn new(capacity: usize) -> Self {
        assert!(
            (2..=1 << 24).contains(&capacity),
            "next-hop capacity must be 2..=2^24"
        );
        let slots = (0..capacity)
            .map(|_| NextHopSlot {
                state: AtomicU64::new(0),
                iface: AtomicU32::new(u32::from(IFACE_NONE)),
                used: AtomicBool::new(false),
            })
            .collect();
        NextHops { slots }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Reads a next hop. An id out of range reads as empty (never panics).
    #[inline]
    pub fn get(&self, id: NextHopId) -> NextHop {
        match self.slots.get(id.index()) {
            // Acquire pairs with the Release store in `set_state`: a worker that sees a state
            // also sees the interface written before it was first published.
            Some(slot) => NextHop {
                state: NextHopState(slot.state.load(Ordering::Acquire)),
                iface: IfaceId::new(slot.iface.load(Ordering::Relaxed) as u16),
            },
            None => NextHop {
                state: NextHopState::EMPTY,
                iface: IFACE_NONE,
            },
        }
    }

    /// Marks a next hop as used (workers, for dynamic neighbours). Writes only when the flag is
    /// clear, so a busy entry costs one shared read per packet, not a write.
    #[inline]
    pub fn touch(&self, id: NextHopId) {
        if let Some(slot) = self.slots.get(id.index()) {
            if !slot.used.load(Ordering::Relaxed) {
                slot.used.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Reads and clears the used flag (control thread, ageing).
    pub fn take_used(&self, id: NextHopId) -> bool {
        self.slots
            .get(id.index())
            .is_some_and(|s| s.used.swap(false, Ordering::Relaxed))
    }

    fn set_state(&self, id: NextHopId, state: NextHopState) {
        self.slots[id.index()]
            .state
            .store(state.0, Ordering::Release);
    }

    fn init(&self, id: NextHopId, iface: IfaceId, state: NextHopState) {
        let slot = &self.slots[id.index()];
        slot.iface.store(u32::from(iface), Ordering::Relaxed);
        slot.used.store(false, Ordering::Relaxed);
        slot.state.store(state.0, Ordering::Release);
    }
}

/// The writer side of [`NextHops`]: allocates and frees slots (reused only after a grace
/// period) and updates states. One per process, owned by the control thread.
#[derive(Debug)]
pub struct NextHopAllocator {
    table: Arc<NextHops>,
    qsbr: Arc<Qsbr>,
    free: Vec<NextHopId>,
    retired: Retired<NextHopId>,
}

/// The next-hop table is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("next-hop table full ({capacity} entries)")]
pub struct NextHopsFull {
    pub capacity: usize,
}

impl NextHopAllocator {
    pub fn new(table: Arc<NextHops>, qsbr: Arc<Qsbr>) -> Self {
        // Slot 0 stays empty forever: an LPM value of 0 is never a live next hop.
        let free = (1..table.capacity() as u32)
            .rev()
            .filter_map(NextHopId::new)
            .collect();
        NextHopAllocator {
            table,
            qsbr,
            free,
            retired: Retired::new(),
        }
    }

    pub fn table(&self) -> &Arc<NextHops> {
        &self.table
    }

    /// Takes a free slot, initialised with `iface` and `state` before anyone can see its id.
    pub fn alloc(
        &mut self,
        iface: IfaceId,
        state: NextHopState,
    ) -> Result<NextHopId, NextHopsFull> {
        if self.free.is_empty() {
            self.reclaim();
        }
        if self.free.is_empty() && !self.retired.is_empty() {
            wait_for_grace(|| {
                self.reclaim();
                !self.free.is_empty()
            });
        }
        let id = self.free.pop().ok_or(NextHopsFull {
            capacity: self.table.capacity(),
        })?;
        self.table.init(id, iface, state);
        Ok(id)
    }

    /// Changes the state of a live next hop; workers see the old or the new state, never a mix.
    pub fn set(&mut self, id: NextHopId, state: NextHopState) {
        self.table.set_state(id, state);
    }

    /// Releases a next hop that no table entry references any more. Its slot is reused only
    /// after every worker passed a quiescent point, so a worker that read the id just before the
    /// LPM entry changed still finds the old state.
    pub fn free(&mut self, id: NextHopId) {
        debug_assert!(id != NextHopId::EMPTY);
        let token = self.qsbr.retire_token();
        self.retired.push(token, id);
    }

    /// Moves slots whose grace period is over back to the free list.
    pub fn reclaim(&mut self) {
        let table = &self.table;
        for id in self.retired.drain_safe(&self.qsbr) {
            table.set_state(id, NextHopState::EMPTY);
            self.free.push(id);
        }
    }

    /// Slots a writer can take: free ones, and those waiting for a grace period ([`alloc`]
    /// waits for the workers when it needs one of them).
    ///
    /// [`alloc`]: NextHopAllocator::alloc
    pub fn available(&self) -> usize {
        self.free.len() + self.retired.len()
    }

    /// Slots in use (live or waiting for their grace period).
    pub fn in_use(&self) -> usize {
        self.table.capacity() - 1 - self.free.len()
    }
}

/// How many times a writer that ran out of free slots yields to the workers, waiting for a grace
/// period to end, before it reports the table full. Workers pass a quiescent point every poll
/// loop (microseconds) or are offline, so this bound is only reached when a worker is stuck.
const GRACE_WAIT_YIELDS_MAX: u32 = 1_000_000;

/// Yields until `reclaim` frees something or the bound is reached; true if something was freed.
fn wait_for_grace(mut reclaim: impl FnMut() -> bool) -> bool {
    for _ in 0..GRACE_WAIT_YIELDS_MAX {
        if reclaim() {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

/// Key value that marks an empty [`AtomicMap`] slot.
const KEY_EMPTY: u64 = 0;
/// Key value that marks a deleted [`AtomicMap`] slot (probing continues past it).
const KEY_TOMBSTONE: u64 = u64::MAX;

#[derive(Debug)]
struct MapSlot {
    key: AtomicU64,
    value: AtomicU64,
}

/// Shared read side of a single-writer lock-free hash map from `u64` keys (neither 0 nor
/// `u64::MAX`) to `u64` values. Linear probing over a power-of-two table; lookups are wait-free.
#[derive(Debug)]
pub struct AtomicMap {
    slots: Box<[MapSlot]>,
    mask: usize,
}

impl AtomicMap {
    /// A map with room for `capacity` keys (the table is sized at twice that, rounded up to a
    /// power of two, so probes stay short).
    pub fn new(capacity: usize) -> Self {
        let size = (capacity.max(8) * 2).next_power_of_two();
        let slots = (0..size)
            .map(|_| MapSlot {
                key: AtomicU64::new(KEY_EMPTY),
                value: AtomicU64::new(0),
            })
            .collect();
        AtomicMap {
            slots,
            mask: size - 1,
        }
    }

    /// The most keys the writer will insert (half the slots).
    pub fn capacity(&self) -> usize {
        self.slots.len() / 2
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        // Fibonacci hashing: the top bits of key * 2^64/phi spread sequential keys well.
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask
    }

    /// Looks a key up. Wait-free: at most one pass over the table.
    #[inline]
    pub fn get(&self, key: u64) -> Option<u64> {
        debug_assert!(key != KEY_EMPTY && key != KEY_TOMBSTONE);
        let mut i = self.home(key);
        for _ in 0..self.slots.len() {
            let slot = &self.slots[i];
            // Acquire pairs with the writer's Release store of the key, which follows the store
            // of the value: whoever sees the key sees its value.
            let k = slot.key.load(Ordering::Acquire);
            if k == key {
                return Some(slot.value.load(Ordering::Acquire));
            }
            if k == KEY_EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
        None
    }
}

/// Why an [`AtomicMapWriter`] refused an insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AtomicMapError {
    #[error("table full ({capacity} entries)")]
    Full { capacity: usize },
    #[error("key {0:#x} is reserved")]
    ReservedKey(u64),
}

/// The result of probing for a key.
enum Probe {
    Found(usize),
    Free(usize),
    Full,
}

/// The writer of an [`AtomicMap`]. A deleted slot becomes a tombstone, and a tombstone is reused
/// only after a grace period: a reader that matched the old key may still be about to read the
/// old value, which must stay the old key's.
#[derive(Debug)]
pub struct AtomicMapWriter {
    map: Arc<AtomicMap>,
    qsbr: Arc<Qsbr>,
    len: usize,
    tombstones: usize,
    retired: Retired<usize>,
    /// Tombstones whose grace period is over: free for a new key.
    reusable: Vec<bool>,
}

impl AtomicMapWriter {
    pub fn new(map: Arc<AtomicMap>, qsbr: Arc<Qsbr>) -> Self {
        let reusable = vec![false; map.slots.len()];
        AtomicMapWriter {
            map,
            qsbr,
            len: 0,
            tombstones: 0,
            retired: Retired::new(),
            reusable,
        }
    }

    pub fn map(&self) -> &Arc<AtomicMap> {
        &self.map
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts or replaces; returns the old value. A replace is one atomic store, so readers
    /// see the old or the new value.
    pub fn insert(&mut self, key: u64, value: u64) -> Result<Option<u64>, AtomicMapError> {
        if key == KEY_EMPTY || key == KEY_TOMBSTONE {
            return Err(AtomicMapError::ReservedKey(key));
        }
        self.reclaim();
        let mut probe = self.probe(key);
        if let Probe::Full = probe {
            // Every free slot is a tombstone still in its grace period: wait for the workers.
            if self.tombstones > 0 {
                wait_for_grace(|| {
                    self.reclaim();
                    !matches!(self.probe(key), Probe::Full)
                });
            }
            probe = self.probe(key);
        }
        let free_slot = match probe {
            Probe::Found(i) => {
                let old = self.map.slots[i].value.swap(value, Ordering::Release);
                return Ok(Some(old));
            }
            Probe::Free(i) => Some(i),
            Probe::Full => None,
        };
        if self.len >= self.map.capacity() {
            return Err(AtomicMapError::Full {
                capacity: self.map.capacity(),
            });
        }
        let i = free_slot.ok_or(AtomicMapError::Full {
            capacity: self.map.capacity(),
        })?;
        let slot = &self.map.slots[i];
        if slot.key.load(Ordering::Relaxed) == KEY_TOMBSTONE {
            self.tombstones -= 1;
            self.reusable[i] = false;
        }
        slot.value.store(value, Ordering::Relaxed);
        // Release: the value is visible before the key that makes it reachable.
        slot.key.store(key, Ordering::Release);
        self.len += 1;
        Ok(None)
    }

    /// Where `key` is, or the first slot it could go to.
    fn probe(&self, key: u64) -> Probe {
        let mut i = self.map.home(key);
        let mut free_slot = None;
        for _ in 0..self.map.slots.len() {
            let k = self.map.slots[i].key.load(Ordering::Relaxed);
            if k == key {
                return Probe::Found(i);
            }
            if k == KEY_TOMBSTONE && free_slot.is_none() && self.reusable[i] {
                free_slot = Some(i);
            }
            if k == KEY_EMPTY {
                return Probe::Free(free_slot.unwrap_or(i));
            }
            i = (i + 1) & self.map.mask;
        }
        free_slot.map_or(Probe::Full, Probe::Free)
    }

    /// Removes a key; returns its value.
    pub fn remove(&mut self, key: u64) -> Option<u64> {
        if key == KEY_EMPTY || key == KEY_TOMBSTONE {
            return None;
        }
        let mut i = self.map.home(key);
        for _ in 0..self.map.slots.len() {
            let slot = &self.map.slots[i];
            let k = slot.key.load(Ordering::Relaxed);
            if k == key {
                let value = slot.value.load(Ordering::Relaxed);
                slot.key.store(KEY_TOMBSTONE, Ordering::Release);
                self.len -= 1;
                self.tombstones += 1;
                let token = self.qsbr.retire_token();
                self.retired.push(token, i);
                return Some(value);
            }
            if k == KEY_EMPTY {
                return None;
            }
            i = (i + 1) & self.map.mask;
        }
        None
    }

    pub fn get(&self, key: u64) -> Option<u64> {
        self.map.get(key)
    }

    /// Marks tombstones whose grace period is over as reusable.
    pub fn reclaim(&mut self) {
        for i in self.retired.drain_safe(&self.qsbr) {
            self.reusable[i] = true;
        }
    }

    /// Deleted slots not yet reused.
    pub fn tombstones(&self) -> usize {
        self.tombstones
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::nh;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn qsbr() -> Arc<Qsbr> {
        Arc::new(Qsbr::new(4))
    }

    #[test]
    fn next_hop_state_packs_and_unpacks() {
        let mac = EthernetAddress([0xfa, 0x16, 0x3e, 0x01, 0x02, 0x03]);
        let s = NextHopState::remote(PeerId::new(1023), mac);
        assert_eq!(s.kind(), NextHopKind::Remote);
        assert_eq!(s.peer(), PeerId::new(1023));
        assert_eq!(s.mac(), mac);
        let b = NextHopState::blackhole(DropReason::NoRoute);
        assert_eq!(b.kind(), NextHopKind::Blackhole);
        assert_eq!(b.drop_reason(), Some(DropReason::NoRoute));
        assert_eq!(NextHopState::EMPTY.kind(), NextHopKind::Empty);
    }

    #[test]
    fn next_hops_alloc_set_free_reuse_after_grace() {
        let q = qsbr();
        let reader = q.register().unwrap();
        let table = Arc::new(NextHops::new(3));
        let mut alloc = NextHopAllocator::new(table.clone(), q.clone());
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let a = alloc
            .alloc(IfaceId::new(7), NextHopState::local(PortId::new(1), mac))
            .unwrap();
        let b = alloc
            .alloc(IfaceId::new(8), NextHopState::action(NextHopKind::Resolve))
            .unwrap();
        assert_ne!(a, NextHopId::EMPTY);
        assert_ne!(b, NextHopId::EMPTY);
        assert_eq!(
            alloc.alloc(IfaceId::new(0), NextHopState::EMPTY),
            Err(NextHopsFull { capacity: 3 })
        );
        assert_eq!(table.get(a).iface, IfaceId::new(7));
        assert_eq!(table.get(a).state.mac(), mac);
        alloc.set(b, NextHopState::remote(PeerId::new(2), mac));
        assert_eq!(table.get(b).state.kind(), NextHopKind::Remote);

        alloc.free(a);
        // The reader has not passed a quiescent point: the slot keeps its state.
        assert!(alloc.alloc(IfaceId::new(0), NextHopState::EMPTY).is_err());
        assert_eq!(table.get(a).state.kind(), NextHopKind::Local);
        reader.quiescent();
        let c = alloc
            .alloc(IfaceId::new(9), NextHopState::action(NextHopKind::Pending))
            .unwrap();
        assert_eq!(c, a);
        assert_eq!(table.get(c).iface, IfaceId::new(9));
        assert_eq!(table.get(nh(12345)).state, NextHopState::EMPTY);
    }

    #[test]
    fn map_insert_replace_remove() {
        let q = qsbr();
        let mut w = AtomicMapWriter::new(Arc::new(AtomicMap::new(16)), q);
        assert_eq!(w.insert(5, 50), Ok(None));
        assert_eq!(w.insert(5, 51), Ok(Some(50)));
        assert_eq!(w.get(5), Some(51));
        assert_eq!(w.remove(5), Some(51));
        assert_eq!(w.get(5), None);
        assert_eq!(w.remove(5), None);
        assert_eq!(w.insert(0, 1), Err(AtomicMapError::ReservedKey(0)));
        assert_eq!(
            w.insert(u64::MAX, 1),
            Err(AtomicMapError::ReservedKey(u64::MAX))
        );
    }

    #[test]
    fn map_refuses_beyond_capacity_and_reuses_tombstones_after_grace() {
        let q = qsbr();
        let reader = q.register().unwrap();
        let map = Arc::new(AtomicMap::new(8));
        let cap = map.capacity();
        let mut w = AtomicMapWriter::new(map, q);
        for k in 1..=cap as u64 {
            w.insert(k, k).unwrap();
        }
        assert!(matches!(
            w.insert(1000, 1),
            Err(AtomicMapError::Full { .. })
        ));
        // Churn far more keys than there are slots: tombstones come back after each grace period.
        for round in 0..100u64 {
            let k = 1 + round % cap as u64;
            assert_eq!(
                w.remove(k),
                Some(k + if round < cap as u64 { 0 } else { 1000 })
            );
            reader.quiescent();
            w.insert(k, k + 1000).unwrap();
        }
        assert_eq!(w.len(), cap);
    }

    proptest! {
        #[test]
        fn map_matches_a_hashmap(ops in proptest::collection::vec((1u64..64, any::<bool>(), any::<u64>()), 1..400)) {
            let q = qsbr();
            let reader = q.register().unwrap();
            let mut w = AtomicMapWriter::new(Arc::new(AtomicMap::new(64)), q);
            let mut model = HashMap::new();
            for (key, insert, value) in ops {
                if insert {
                    prop_assert_eq!(w.insert(key, value).unwrap(), model.insert(key, value));
                } else {
                    prop_assert_eq!(w.remove(key), model.remove(&key));
                }
                reader.quiescent();
                for k in 1..64 {
                    prop_assert_eq!(w.get(k), model.get(&k).copied());
                }
            }
        }
    }

    #[test]
    fn concurrent_readers_see_old_or_new_value() {
        use std::sync::atomic::AtomicBool;
        let q = qsbr();
        let map = Arc::new(AtomicMap::new(1024));
        let mut w = AtomicMapWriter::new(map.clone(), q.clone());
        // Stable keys never change; churned keys carry values that encode their key.
        for k in 1..=100u64 {
            w.insert(k, k << 32).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let map = map.clone();
                let stop = stop.clone();
                let reader = q.register().unwrap();
                std::thread::spawn(move || {
                    let mut loops = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for k in 1..=100u64 {
                            assert_eq!(map.get(k), Some(k << 32), "stable key {k} lost");
                        }
                        for k in 1000..1200u64 {
                            if let Some(v) = map.get(k) {
                                assert_eq!(v >> 32, k, "key {k} read another key's value");
                            }
                        }
                        reader.quiescent();
                        loops += 1;
                    }
                    loops
                })
            })
            .collect();
        for round in 0..20_000u64 {
            let k = 1000 + round % 200;
            if round % 3 == 0 {
                w.remove(k);
            } else {
                w.insert(k, (k << 32) | round).unwrap();
            }
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
    }
}
