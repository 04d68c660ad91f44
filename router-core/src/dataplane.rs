//! What the workers read: the topology snapshot and the lock-free tables.
//!
//! Small objects that change rarely (ports, networks, router interfaces, peer hosts) live in an
//! immutable [`Topology`] that the control thread rebuilds and publishes as a whole; workers
//! load it once per burst. Large tables that change often (routes, next hops, L2 entries) are
//! updated in place, lock-free: the LPM of each router, [`NextHops`] and the L2 [`AtomicMap`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::lpm::{Lpm, Prefix};
use crate::table::{AtomicMap, IfaceId, NextHopIndex, NextHops};
use crate::wire::EthernetAddress;

/// A DPDK port, by its index in the daemon's port table.
pub type PortId = u16;
/// A distributed router (VRF).
pub type RouterId = u16;
/// A tenant network.
pub type NetworkId = u16;
/// A peer host.
pub type PeerId = u16;
/// Nanoseconds on the data path's clock (TSC based), passed in by the caller.
pub type Nanos = u64;

/// Most DPDK ports one process drives.
pub const MAX_PORTS: usize = 64;

/// A hasher for small integer keys on the data path (multiply-rotate; not DoS resistant, but
/// the keys come from the control plane, not from packets an attacker chooses freely: a miss
/// costs one probe sequence in a table the control plane sized).
#[derive(Default, Clone, Copy, Debug)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A hash map for small integer keys on the data path.
pub type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// What a port is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRole {
    /// Configured but carries nothing: every frame is dropped (`port_not_attached`).
    Unused,
    /// Instances of one tenant network attach here.
    Local { network: NetworkId },
    /// The underlay between hosts (VXLAN).
    Fabric,
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
    pub underlay: NextHopIndex,
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
    pub vni_to_network: IntMap<u32, NetworkId>,
    pub vtep_to_peer: IntMap<u32, PeerId>,
    pub dvr_mac_to_peer: IntMap<u64, PeerId>,
    /// The DVR MAC range (value, prefix length in bits).
    pub dvr_mac_base: (u64, u8),
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

    /// True if `mac` lies in the DVR MAC range.
    #[inline]
    pub fn is_dvr_mac(&self, mac: u64) -> bool {
        let (base, len) = self.dvr_mac_base;
        let shift = 48 - u32::from(len.min(48));
        len != 0 && (mac >> shift) == (base >> shift)
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
            1 => Some(L2Location::Local(id)),
            2 => Some(L2Location::Remote(id)),
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
}

impl Dataplane {
    pub fn new(topology: Topology, next_hops: Arc<NextHops>, l2: Arc<AtomicMap>) -> Self {
        Dataplane {
            topology: Arc::new(ArcSwap::from_pointee(topology)),
            next_hops,
            l2,
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
/// time). Time is passed in.
#[derive(Debug)]
pub struct IcmpLimiter {
    tat: AtomicU64,
    interval_ns: AtomicU64,
    burst_ns: AtomicU64,
}

impl IcmpLimiter {
    /// Allows `rate_per_s` messages per second on average and bursts of `burst`. A rate of 0
    /// disables the limit.
    pub fn new(rate_per_s: u32, burst: u32) -> Self {
        let l = IcmpLimiter {
            tat: AtomicU64::new(0),
            interval_ns: AtomicU64::new(0),
            burst_ns: AtomicU64::new(0),
        };
        l.set(rate_per_s, burst);
        l
    }

    /// Changes the rate (control thread).
    pub fn set(&self, rate_per_s: u32, burst: u32) {
        let interval = if rate_per_s == 0 {
            0
        } else {
            1_000_000_000 / u64::from(rate_per_s)
        };
        self.interval_ns.store(interval, Ordering::Relaxed);
        self.burst_ns.store(
            interval.saturating_mul(u64::from(burst.max(1) - 1)),
            Ordering::Relaxed,
        );
    }

    /// Takes one token at `now`; false when the rate is exceeded. Never waits: a lost race with
    /// another worker counts as exceeded.
    #[inline]
    pub fn allow(&self, now: Nanos) -> bool {
        let interval = self.interval_ns.load(Ordering::Relaxed);
        if interval == 0 {
            return true;
        }
        let tolerance = self.burst_ns.load(Ordering::Relaxed);
        let tat = self.tat.load(Ordering::Relaxed);
        if tat > now.saturating_add(tolerance) {
            return false;
        }
        let next = tat.max(now) + interval;
        self.tat
            .compare_exchange(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
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
        assert_ne!(l2_key(0, 0), 0);
        let last = (crate::model::MAX_NETWORKS - 1) as NetworkId;
        assert_ne!(l2_key(last, 0xffff_ffff_ffff), u64::MAX);
        for loc in [L2Location::Local(3), L2Location::Remote(1023)] {
            assert_eq!(L2Location::decode(loc.encode()), Some(loc));
        }
        assert_eq!(L2Location::decode(0), None);
    }

    #[test]
    fn dvr_mac_range() {
        let t = Topology {
            dvr_mac_base: (0xfa163f000000, 24),
            ..Topology::default()
        };
        assert!(t.is_dvr_mac(0xfa163f0000aa));
        assert!(!t.is_dvr_mac(0xfa163e0000aa));
        let none = Topology::default();
        assert!(!none.is_dvr_mac(0xfa163f0000aa));
    }
}
