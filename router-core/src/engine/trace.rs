//! Packet trace: every decision the engine takes about a packet, for operators asking "why did
//! this packet go there".
//!
//! The engine is generic over a [`Tracer`]. The fast path uses [`NoTrace`], whose `ENABLED` is
//! false, so every `if T::ENABLED { ... }` compiles away; a worker that is asked to trace runs
//! the same code with a recording tracer for the bursts it captures.

use std::fmt;
use std::net::Ipv4Addr;

use crate::dataplane::L2Location;
use crate::ids::NextHopId;
use crate::ids::{IfaceId, NetworkId, PeerId, RouterId};
use crate::table::NextHopState;
use crate::wire::{ethernet, ipv4, EthernetAddress, EthernetFrame, Ipv4Packet};

/// One decision about one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// An Ethernet header as parsed (outer or inner).
    Ethernet {
        src: EthernetAddress,
        dst: EthernetAddress,
        ethertype: u16,
    },
    /// An IPv4 header as parsed.
    Ipv4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        ttl: u8,
        total_len: u16,
    },
    /// The network of the input port and the router attached to it.
    Network {
        network: NetworkId,
        router: Option<RouterId>,
    },
    /// The LPM lookup in a router's table.
    Lookup {
        router: RouterId,
        dst: Ipv4Addr,
        next_hop: Option<NextHopId>,
    },
    /// The next hop the lookup pointed at.
    NextHop {
        id: NextHopId,
        state: NextHopState,
        iface: IfaceId,
    },
    /// An L2 table lookup.
    L2 {
        network: NetworkId,
        mac: EthernetAddress,
        location: Option<L2Location>,
    },
    /// A frame from the fabric, decapsulated; `routed` when its source is a peer's DVR MAC.
    Decap {
        peer: PeerId,
        vni: u32,
        network: NetworkId,
        routed: bool,
    },
    /// VXLAN encapsulation toward a peer.
    Encap {
        peer: PeerId,
        vni: u32,
        src_port: u16,
    },
    /// The headers after a rewrite.
    Rewrite {
        src: EthernetAddress,
        dst: EthernetAddress,
        ttl: u8,
    },
    /// The packet was turned into an ICMP error.
    IcmpError { msg_type: u8, code: u8, mtu: u16 },
    /// A floating IP translated the packet: its source (SNAT) or destination (DNAT) address
    /// went from `from` to `to`.
    Nat {
        source: bool,
        from: Ipv4Addr,
        to: Ipv4Addr,
    },
}

impl TraceEvent {
    /// The Ethernet header at the start of `frame` (at least 14 bytes).
    pub(crate) fn ethernet(frame: &[u8]) -> Self {
        let f = EthernetFrame::new_unchecked(frame);
        TraceEvent::Ethernet {
            dst: f.dst_addr(),
            src: f.src_addr(),
            ethertype: f.outer_ethertype().into(),
        }
    }

    /// The IPv4 header at the start of `ip` (checked already).
    pub(crate) fn ipv4(ip: &[u8]) -> Self {
        let p = Ipv4Packet::new_unchecked(ip);
        TraceEvent::Ipv4 {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol().into(),
            ttl: p.ttl(),
            total_len: p.total_len(),
        }
    }

    /// Source, destination and TTL of a rewritten IPv4 frame.
    pub(crate) fn rewrite(frame: &[u8]) -> Self {
        let f = EthernetFrame::new_unchecked(frame);
        let ttl = frame
            .get(ethernet::HEADER_LEN..)
            .filter(|ip| ip.len() > ipv4::field::TTL)
            .map_or(0, |ip| Ipv4Packet::new_unchecked(ip).ttl());
        TraceEvent::Rewrite {
            src: f.src_addr(),
            dst: f.dst_addr(),
            ttl,
        }
    }

    /// The lookups (network, LPM, next hop, L2), in words.
    fn fmt_lookup(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TraceEvent::Network {
                network,
                router: Some(r),
            } => write!(f, "network {network}, router {r}"),
            TraceEvent::Network {
                network,
                router: None,
            } => write!(f, "network {network}, no router"),
            TraceEvent::Lookup {
                router,
                dst,
                next_hop: Some(nh),
            } => write!(f, "lpm router {router} {dst} -> next hop {nh}"),
            TraceEvent::Lookup {
                router,
                dst,
                next_hop: None,
            } => write!(f, "lpm router {router} {dst} -> no route"),
            TraceEvent::NextHop { id, state, iface } => {
                write!(f, "next hop {id}: {state:?} via interface {iface}")
            }
            TraceEvent::L2 {
                network,
                mac,
                location,
            } => match location {
                Some(L2Location::Local(p)) => {
                    write!(f, "l2 network {network} {mac} -> local port {p}")
                }
                Some(L2Location::Remote(h)) => write!(f, "l2 network {network} {mac} -> peer {h}"),
                None => write!(f, "l2 network {network} {mac} -> unknown"),
            },
            _ => unreachable!("not a lookup: {self:?}"),
        }
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TraceEvent::Ethernet {
                src,
                dst,
                ethertype,
            } => write!(f, "ethernet {src} > {dst} type {ethertype:#06x}"),
            TraceEvent::Ipv4 {
                src,
                dst,
                protocol,
                ttl,
                total_len,
            } => {
                write!(
                    f,
                    "ipv4 {src} > {dst} proto {protocol} ttl {ttl} len {total_len}"
                )
            }
            TraceEvent::Network { .. }
            | TraceEvent::Lookup { .. }
            | TraceEvent::NextHop { .. }
            | TraceEvent::L2 { .. } => self.fmt_lookup(f),
            TraceEvent::Decap {
                peer,
                vni,
                network,
                routed,
            } => write!(
                f,
                "vxlan decap from peer {peer} vni {vni} network {network}: {}",
                if routed {
                    "routed by the peer (DVR MAC), deliver"
                } else {
                    "bridged"
                }
            ),
            TraceEvent::Encap {
                peer,
                vni,
                src_port,
            } => write!(
                f,
                "vxlan encap to peer {peer} vni {vni} udp sport {src_port}"
            ),
            TraceEvent::Rewrite { src, dst, ttl } => write!(f, "rewrite {src} > {dst} ttl {ttl}"),
            TraceEvent::IcmpError {
                msg_type,
                code,
                mtu,
            } => write!(f, "icmp error type {msg_type} code {code} mtu {mtu}"),
            TraceEvent::Nat { source, from, to } => write!(
                f,
                "floating ip: {} {from} -> {to}",
                if source { "snat" } else { "dnat" }
            ),
        }
    }
}

/// Receives the engine's decisions. `packet` is the index of the packet in its burst.
pub trait Tracer {
    /// False for the fast path: the engine then builds no events at all.
    const ENABLED: bool;

    fn record(&mut self, packet: usize, event: TraceEvent);
}

/// The fast path's tracer: records nothing, costs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTrace;

impl Tracer for NoTrace {
    const ENABLED: bool = false;

    #[inline(always)]
    fn record(&mut self, _packet: usize, _event: TraceEvent) {}
}

/// Most events kept per packet.
pub const EVENTS_PER_PACKET_MAX: usize = 16;

/// Records the events of every packet of one burst. Memory is reserved up front: events beyond
/// [`EVENTS_PER_PACKET_MAX`] per packet are counted as lost, never allocated.
#[derive(Clone, Debug)]
pub struct BurstRecorder {
    events: Vec<Vec<TraceEvent>>,
    lost: Vec<usize>,
}

impl BurstRecorder {
    /// A recorder for bursts of up to `burst` packets.
    pub fn new(burst: usize) -> Self {
        BurstRecorder {
            events: (0..burst)
                .map(|_| Vec::with_capacity(EVENTS_PER_PACKET_MAX))
                .collect(),
            lost: vec![0; burst],
        }
    }

    /// Forgets everything recorded.
    pub fn clear(&mut self) {
        self.events.iter_mut().for_each(Vec::clear);
        self.lost.fill(0);
    }

    /// The events of packet `i`, and how many did not fit.
    pub fn events(&self, i: usize) -> (&[TraceEvent], usize) {
        match (self.events.get(i), self.lost.get(i)) {
            (Some(e), Some(&lost)) => (e, lost),
            _ => (&[], 0),
        }
    }
}

impl Tracer for BurstRecorder {
    const ENABLED: bool = true;

    fn record(&mut self, packet: usize, event: TraceEvent) {
        match self.events.get_mut(packet) {
            Some(e) if e.len() < EVENTS_PER_PACKET_MAX => e.push(event),
            Some(_) => self.lost[packet] += 1,
            None => {}
        }
    }
}
