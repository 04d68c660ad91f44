//! What the workers read: the topology snapshot and the lock-free tables.
//!
//! Small objects that change rarely (ports, networks, router interfaces, peer hosts) live in an
//! immutable [`Topology`] that the control thread rebuilds and publishes as a whole; workers
//! load it once per burst. Large tables that change often (routes, next hops, L2 entries) are
//! updated in place, lock-free: the LPM of each router, [`NextHops`] and the L2 [`AtomicMap`].

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::icmp_limit::{GcraRate, SourceLimiter};
use crate::ids::NextHopId;
use crate::ids::{FipId, IfaceId, NetworkId, PeerId, PortId, RouterId};
use crate::lpm::{Lpm, Prefix};
use crate::table::{AtomicMap, NextHops};
use crate::wire::EthernetAddress;

/// Nanoseconds on the data path's clock (TSC based), passed in by the caller.
pub type Nanos = u64;

/// Most DPDK ports one process drives.
pub const MAX_PORTS: usize = 64;

/// An immutable map from integer keys to small ids, for lookups on the data path: open
/// addressing over a power-of-two table at most half full, Fibonacci hashing, linear probing.
/// A lookup is a multiply, a shift and usually one compare. Built when a topology is published.
#[derive(Clone, Debug)]
pub struct FlatMap<V> {
    keys: Box<[u64]>,
    values: Box<[V]>,
    mask: usize,
}

/// The key that marks an empty slot (no VNI, VTEP or MAC is this large).
const FLAT_EMPTY: u64 = u64::MAX;

impl<V: Copy + Default> FlatMap<V> {
    /// A map of `entries`; a later entry with the same key replaces an earlier one.
    pub fn new(entries: impl IntoIterator<Item = (u64, V)>) -> Self {
        let entries: Vec<_> = entries.into_iter().collect();
        let size = (entries.len() * 2).next_power_of_two().max(8);
        let mut m = FlatMap {
            keys: vec![FLAT_EMPTY; size].into(),
            values: vec![V::default(); size].into(),
            mask: size - 1,
        };
        for (key, value) in entries {
            assert!(key != FLAT_EMPTY, "reserved key");
            let mut i = m.home(key);
            while m.keys[i] != FLAT_EMPTY && m.keys[i] != key {
                i = (i + 1) & m.mask;
            }
            m.keys[i] = key;
            m.values[i] = value;
        }
        m
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask
    }

    /// The id of `key`.
    #[inline]
    pub fn get(&self, key: u64) -> Option<V> {
        let mut i = self.home(key);
        // At most half the slots are used: an empty one ends every probe sequence.
        loop {
            let k = *self.keys.get(i)?;
            if k == key {
                return self.values.get(i).copied();
            }
            if k == FLAT_EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, V)> + '_ {
        self.keys
            .iter()
            .zip(self.values.iter())
            .filter(|(k, _)| **k != FLAT_EMPTY)
            .map(|(k, v)| (*k, *v))
    }
}

impl<V: Copy + Default> Default for FlatMap<V> {
    fn default() -> Self {
        FlatMap::new([])
    }
}

/// What a port is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRole {
    /// Configured but carries nothing: every frame is dropped (`port_not_attached`).
    Unused,
    /// Instances of one tenant network attach here.
    Local { network: NetworkId },
    /// The underlay between hosts (VXLAN).
    Fabric,
    /// The external (provider) network: floating IPs of this host's instances.
    External,
}

/// A port as the data path sees it.
#[derive(Clone, Copy, Debug)]
pub struct PortInfo {
    pub role: PortRole,
    /// The port's own MAC (source of frames it sends that are not routed by a gateway).
    pub mac: EthernetAddress,
    /// Largest IPv4 packet (Ethernet payload) the port carries.
    pub mtu: u16,
}

/// This host's identity on the fabric.
#[derive(Clone, Copy, Debug)]
pub struct HostInfo {
    pub dvr_mac: EthernetAddress,
    pub vtep: u32,
}

/// A router interface: the anycast gateway of one network.
#[derive(Clone, Copy, Debug)]
pub struct IfaceInfo {
    pub router: RouterId,
    pub network: NetworkId,
    pub ip: u32,
    pub mac: EthernetAddress,
    pub subnet: Prefix,
}

/// A tenant network on this host.
#[derive(Clone, Debug)]
pub struct NetworkInfo {
    pub vni: u32,
    /// Its router interface, if a router is attached.
    pub iface: Option<IfaceId>,
    /// The local ports its instances attach to.
    pub local_ports: Vec<PortId>,
    /// Peer hosts that have instances on it (head-end replication targets).
    pub flood_peers: Vec<PeerId>,
}

/// A distributed router.
#[derive(Clone, Debug)]
pub struct RouterInfo {
    pub lpm: Arc<Lpm>,
    pub icmp: Arc<IcmpLimiter>,
}

/// A peer host.
#[derive(Clone, Copy, Debug)]
pub struct PeerInfo {
    pub vtep: u32,
    pub dvr_mac: EthernetAddress,
    /// The underlay next hop toward its VTEP (a neighbour on the fabric port).
    pub underlay: NextHopId,
}

/// This host on the external network.
#[derive(Clone, Copy, Debug)]
pub struct ExternalInfo {
    pub port: PortId,
    /// This host's own address there.
    pub ip: u32,
    /// The external port's MAC: the source of every frame sent there, and what ARP answers
    /// for the floating IPs.
    pub mac: EthernetAddress,
    pub subnet: Prefix,
    /// The external gateway: the next hop of every destination outside the subnet.
    pub gateway: NextHopId,
}

/// A floating IP whose instance runs on this host.
#[derive(Clone, Copy, Debug)]
pub struct FipInfo {
    pub id: FipId,
    pub fip: u32,
    pub fixed: u32,
    pub router: RouterId,
    /// The router as the external network sees it (this host's external address and MAC):
    /// where the ICMP errors it sends toward the outside come from.
    pub outside: IfaceInfo,
}

/// Key of [`Topology::fip_by_fixed`]: an instance's fixed IP in its router.
#[inline]
pub fn fip_fixed_key(router: RouterId, fixed: u32) -> u64 {
    (u64::from(router) << 32) | u64::from(fixed)
}

/// The small, rarely changing part of the data-plane state. Immutable once published.
#[derive(Clone, Debug, Default)]
pub struct Topology {
    /// Bumped on every publication.
    pub generation: u64,
    pub host: Option<HostInfo>,
    pub ports: Vec<PortInfo>,
    pub fabric: Option<PortId>,
    pub ifaces: Vec<Option<IfaceInfo>>,
    pub networks: Vec<Option<NetworkInfo>>,
    pub routers: Vec<Option<RouterInfo>>,
    pub peers: Vec<Option<PeerInfo>>,
    /// VNI to network.
    pub vni_to_network: FlatMap<NetworkId>,
    /// VTEP address to peer.
    pub vtep_to_peer: FlatMap<PeerId>,
    /// DVR MAC (48 bits) to peer.
    pub dvr_mac_to_peer: FlatMap<PeerId>,
    /// The DVR MAC range, as a mask and the value a MAC has under it (see [`DvrMacRange`]).
    pub dvr_macs: DvrMacRange,
    /// This host on the external network, when it has one.
    pub external: Option<ExternalInfo>,
    /// The floating IPs of the instances on this host, found by the two maps below.
    pub fips: Vec<FipInfo>,
    /// Floating address to its index in `fips`.
    pub fip_by_ip: FlatMap<u16>,
    /// [`fip_fixed_key`] (router and fixed IP) to its index in `fips`.
    pub fip_by_fixed: FlatMap<u16>,
    /// Addresses on the external subnet this host sends to directly (other hosts' floating
    /// IPs, say), each with its next hop (the raw [`NextHopId`]).
    pub external_hosts: FlatMap<u32>,
}

impl Topology {
    #[inline]
    pub fn port(&self, port: PortId) -> Option<&PortInfo> {
        self.ports.get(usize::from(port))
    }

    #[inline]
    pub fn iface(&self, iface: IfaceId) -> Option<&IfaceInfo> {
        self.ifaces.get(usize::from(iface)).and_then(Option::as_ref)
    }

    #[inline]
    pub fn network(&self, network: NetworkId) -> Option<&NetworkInfo> {
        self.networks
            .get(usize::from(network))
            .and_then(Option::as_ref)
    }

    #[inline]
    pub fn router(&self, router: RouterId) -> Option<&RouterInfo> {
        self.routers
            .get(usize::from(router))
            .and_then(Option::as_ref)
    }

    #[inline]
    pub fn peer(&self, peer: PeerId) -> Option<&PeerInfo> {
        self.peers.get(usize::from(peer)).and_then(Option::as_ref)
    }

    /// The floating IP with address `fip`, if its instance runs here.
    #[inline]
    pub fn fip_by_ip(&self, fip: u32) -> Option<&FipInfo> {
        self.fip_by_ip
            .get(u64::from(fip))
            .and_then(|i| self.fips.get(usize::from(i)))
    }

    /// The floating IP of the instance with fixed IP `fixed` in `router`, if it runs here.
    #[inline]
    pub fn fip_by_fixed(&self, router: RouterId, fixed: u32) -> Option<&FipInfo> {
        self.fip_by_fixed
            .get(fip_fixed_key(router, fixed))
            .and_then(|i| self.fips.get(usize::from(i)))
    }

    /// True if `mac` (48 bits in a word) lies in the DVR MAC range.
    #[inline]
    pub fn is_dvr_mac(&self, mac: u64) -> bool {
        mac & self.dvr_macs.mask == self.dvr_macs.value
    }
}

/// A range of MAC addresses sharing a prefix, as a mask over the 48-bit value and the value
/// under it. The empty range never matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DvrMacRange {
    pub mask: u64,
    pub value: u64,
}

impl DvrMacRange {
    /// The MACs whose first `len` bits are those of `base` (`len` 1..=48); `len` 0 is empty.
    pub fn new(base: u64, len: u8) -> Self {
        if len == 0 {
            return DvrMacRange::default();
        }
        let mask = (0xffff_ffff_ffffu64 << (48 - u32::from(len.min(48)))) & 0xffff_ffff_ffff;
        DvrMacRange {
            mask,
            value: base & mask,
        }
    }
}

impl Default for DvrMacRange {
    /// Matches nothing: no 48-bit MAC has bit 63 set.
    fn default() -> Self {
        DvrMacRange {
            mask: 0,
            value: 1 << 63,
        }
    }
}

/// Where an L2 entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L2Location {
    /// Behind a local port.
    Local(PortId),
    /// On a peer host, over the fabric.
    Remote(PeerId),
}

impl L2Location {
    /// The value stored in the L2 map.
    pub fn encode(self) -> u64 {
        match self {
            L2Location::Local(p) => (1 << 16) | u64::from(p),
            L2Location::Remote(h) => (2 << 16) | u64::from(h),
        }
    }

    #[inline]
    pub fn decode(value: u64) -> Option<Self> {
        let id = value as u16;
        match value >> 16 {
            1 => Some(L2Location::Local(PortId::new(id))),
            2 => Some(L2Location::Remote(PeerId::new(id))),
            _ => None,
        }
    }
}

/// Key of an L2 entry: the network and the MAC (never 0 and never `u64::MAX`).
#[inline]
pub fn l2_key(network: NetworkId, mac: u64) -> u64 {
    debug_assert!(usize::from(network) < crate::model::MAX_NETWORKS);
    ((u64::from(network) + 1) << 48) | (mac & 0xffff_ffff_ffff)
}

/// Everything the workers read, shared with the control thread.
#[derive(Debug)]
pub struct Dataplane {
    pub topology: Arc<ArcSwap<Topology>>,
    pub next_hops: Arc<NextHops>,
    pub l2: Arc<AtomicMap>,
    /// The per-source ICMP error budgets of every router, under each router's own limit.
    pub icmp_sources: SourceLimiter,
}

impl Dataplane {
    /// The per-source ICMP limit starts at its defaults; the control plane sets its own.
    pub fn new(topology: Topology, next_hops: Arc<NextHops>, l2: Arc<AtomicMap>) -> Self {
        Dataplane {
            topology: Arc::new(ArcSwap::from_pointee(topology)),
            next_hops,
            l2,
            icmp_sources: SourceLimiter::default(),
        }
    }

    /// Publishes a new topology; workers pick it up at their next burst.
    pub fn publish(&self, mut topology: Topology) {
        topology.generation = self.topology.load().generation + 1;
        self.topology.store(Arc::new(topology));
    }
}

/// A lock-free rate limiter for ICMP errors (RFC 1812 section 4.3.2.8), one per router, shared
/// by all workers: the generic cell rate algorithm on one atomic word (the theoretical arrival
/// time). Time is passed in. Each source also has a budget of its own
/// ([`SourceLimiter`], checked first).
#[derive(Debug)]
pub struct IcmpLimiter {
    tat: AtomicU64,
    rate: GcraRate,
}

impl IcmpLimiter {
    /// Allows `rate_per_s` messages per second on average and bursts of `burst`. A rate of 0
    /// disables the limit.
    pub fn new(rate_per_s: u32, burst: u32) -> Self {
        IcmpLimiter {
            tat: AtomicU64::new(0),
            rate: GcraRate::new(rate_per_s, burst),
        }
    }

    /// Changes the rate (control thread).
    pub fn set(&self, rate_per_s: u32, burst: u32) {
        self.rate.set(rate_per_s, burst);
    }

    /// Takes one token at `now`; false when the rate is exceeded. Never waits: a lost race with
    /// another worker counts as exceeded.
    #[inline]
    pub fn allow(&self, now: Nanos) -> bool {
        self.rate.take(&self.tat, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_burst_then_rate() {
        let l = IcmpLimiter::new(10, 5); // one per 100 ms, bursts of 5
        let t0 = 1_000_000_000;
        let allowed = (0..20).filter(|_| l.allow(t0)).count();
        assert_eq!(allowed, 5);
        assert!(!l.allow(t0 + 50_000_000));
        assert!(l.allow(t0 + 100_000_000));
        // After a long pause the burst is available again.
        let t1 = t0 + 10_000_000_000;
        assert_eq!((0..20).filter(|_| l.allow(t1)).count(), 5);
        let unlimited = IcmpLimiter::new(0, 0);
        assert!((0..1000).all(|_| unlimited.allow(0)));
    }

    #[test]
    fn l2_keys_and_locations() {
        assert_ne!(l2_key(NetworkId::new(0), 0), 0);
        let last = NetworkId::new((crate::model::MAX_NETWORKS - 1) as u16);
        assert_ne!(l2_key(last, 0xffff_ffff_ffff), u64::MAX);
        for loc in [
            L2Location::Local(PortId::new(3)),
            L2Location::Remote(PeerId::new(1023)),
        ] {
            assert_eq!(L2Location::decode(loc.encode()), Some(loc));
        }
        assert_eq!(L2Location::decode(0), None);
    }

    #[test]
    fn flat_map_finds_every_key_and_nothing_else() {
        let m = FlatMap::new((0..1000u64).map(|k| (k * 7919, k as u16)));
        for k in 0..1000u64 {
            assert_eq!(m.get(k * 7919), Some(k as u16));
            assert_eq!(m.get(k * 7919 + 1), None);
        }
        assert_eq!(FlatMap::<u16>::default().get(5), None);
        assert_eq!(m.iter().count(), 1000);
    }

    #[test]
    fn dvr_mac_range() {
        let t = Topology {
            dvr_macs: DvrMacRange::new(0xfa163f000000, 24),
            ..Topology::default()
        };
        assert!(t.is_dvr_mac(0xfa163f0000aa));
        assert!(!t.is_dvr_mac(0xfa163e0000aa));
        let none = Topology::default();
        assert!(!none.is_dvr_mac(0xfa163f0000aa));
    }
}
