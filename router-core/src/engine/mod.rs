//! The forwarding engine: one burst of frames from one port in, one [`Verdict`] per frame out.
//!
//! A frame from a **local port** (where instances of one tenant network attach) is
//! - routed, when it is addressed to the network's gateway MAC: RFC 1812 checks, LPM lookup in
//!   the router's table, next hop, TTL decrement and MAC rewrite, and, for a neighbour on a peer
//!   host, the DVR rewrite (source MAC = this host's DVR MAC) and VXLAN encapsulation;
//! - bridged otherwise, by destination MAC: to another local port, to a peer host over VXLAN, or
//!   punted for flooding when it is a broadcast or unknown;
//! - punted when it is ARP, for the router itself, or to an unresolved neighbour.
//!
//! A frame from the **fabric port** is decapsulated after checking the outer headers, the VTEP
//! and the VNI. If its inner source MAC is a peer's DVR MAC it was routed on that host already:
//! its source MAC is restored to the gateway MAC and it is delivered to the local instance,
//! without routing it again and without learning. Otherwise it is bridged to the local instance.
//!
//! The burst is processed in three passes so that memory latency overlaps: classify every
//! frame, look all destinations up in the LPM together, then finish each routed frame.

mod packet;
pub mod trace;
mod vxlan;

use std::net::Ipv4Addr;
use std::sync::Arc;

use arc_swap::cache::Cache;
use arc_swap::ArcSwap;

pub use self::packet::{BadWindow, PacketBuf};
pub use crate::reason::{DropReason, PuntReason};
use self::trace::{NoTrace, TraceEvent, Tracer};
pub use self::vxlan::{encapsulate, flow_hash, FabricHeader};

use crate::dataplane::{
    l2_key, Dataplane, IfaceInfo, L2Location, Nanos, NetworkId, NetworkInfo, PortId, PortRole,
    RouterInfo, Topology,
};
use crate::lpm::NO_ROUTE;
use crate::stats::EngineCounters;
use crate::table::{NextHop, NextHopKind};
use crate::wire::{self, checksum, icmpv4, EtherType, Icmpv4Message};

/// Most frames in one burst.
pub const MAX_BURST: usize = 64;

/// Byte offsets inside a frame (untagged Ethernet).
const ETH_DST: usize = 0;
const ETH_SRC: usize = 6;
const ETH_TYPE: usize = 12;
const ETH_LEN: usize = wire::ethernet::HEADER_LEN;
const IP_TTL: usize = ETH_LEN + wire::ipv4::field::TTL;
const IP_CHECKSUM: usize = ETH_LEN + wire::ipv4::field::CHECKSUM;
/// An untagged Ethernet header and an IPv4 header without options.
const MIN_IPV4_FRAME: usize = ETH_LEN + wire::ipv4::HEADER_LEN;
const IP_SRC: usize = ETH_LEN + wire::ipv4::field::SRC_ADDR;
const IP_DST: usize = ETH_LEN + wire::ipv4::field::DST_ADDR;

/// Bytes an ICMP error adds in front of the quoted datagram: its IPv4 and ICMP headers.
const ICMP_ERROR_PREPEND: usize = wire::ipv4::HEADER_LEN + icmpv4::HEADER_LEN;
/// TTL of packets the router originates.
pub const ORIGINATED_TTL: u8 = 64;

/// What happens to one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (rewritten) frame on this port.
    Forward(PortId),
    /// Hand the frame to the control thread.
    Punt(PuntReason),
    /// Free the frame and count the reason.
    Drop(DropReason),
}

/// The read side of the data plane: cheap to clone, one per worker.
#[derive(Clone, Debug)]
pub struct Engine {
    dp: Arc<Dataplane>,
}

/// State a worker keeps between bursts: its view of the topology and its counters.
pub struct WorkerState {
    topology: Cache<Arc<ArcSwap<Topology>>, Arc<Topology>>,
    counters: Arc<EngineCounters>,
    ip_ident: u16,
}

impl std::fmt::Debug for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerState")
            .field("ip_ident", &self.ip_ident)
            .finish_non_exhaustive()
    }
}

impl WorkerState {
    /// The worker's counters (shared with the control thread, which reads them).
    pub fn counters(&self) -> &Arc<EngineCounters> {
        &self.counters
    }

    /// The topology as of the last burst.
    pub fn topology(&mut self) -> &Arc<Topology> {
        self.topology.load()
    }
}

/// The per-burst context the passes share.
struct Ctx<'a> {
    topo: &'a Topology,
    counters: &'a EngineCounters,
    ident: &'a mut u16,
    input: PortId,
    now: Nanos,
}

impl Ctx<'_> {
    fn next_ident(&mut self) -> u16 {
        *self.ident = self.ident.wrapping_add(1);
        *self.ident
    }
}

/// How the first pass left a frame.
enum Classified {
    Done(Verdict),
    /// Route to this destination address.
    Route(u32),
}

impl Engine {
    pub fn new(dp: Arc<Dataplane>) -> Self {
        Engine { dp }
    }

    pub fn dataplane(&self) -> &Arc<Dataplane> {
        &self.dp
    }

    /// A worker's state, with fresh counters.
    pub fn worker_state(&self) -> WorkerState {
        self.worker_state_with(Arc::new(EngineCounters::default()))
    }

    /// A worker's state that counts into `counters`.
    pub fn worker_state_with(&self, counters: Arc<EngineCounters>) -> WorkerState {
        WorkerState {
            topology: Cache::new(Arc::clone(&self.dp.topology)),
            counters,
            ip_ident: 0,
        }
    }

    /// Processes a burst of frames received on `input`; `verdicts[i]` tells what to do with
    /// `pkts[i]`. Frames are rewritten in place.
    ///
    /// # Panics
    /// If `pkts` holds more than [`MAX_BURST`] frames or `verdicts` is shorter than `pkts`.
    pub fn process_burst(
        &self,
        w: &mut WorkerState,
        input: PortId,
        now: Nanos,
        pkts: &mut [PacketBuf<'_>],
        verdicts: &mut [Verdict],
    ) {
        self.process_burst_traced(w, input, now, pkts, verdicts, &mut NoTrace);
    }

    /// [`process_burst`](Self::process_burst), reporting every decision to `tracer`.
    pub fn process_burst_traced<T: Tracer>(
        &self,
        w: &mut WorkerState,
        input: PortId,
        now: Nanos,
        pkts: &mut [PacketBuf<'_>],
        verdicts: &mut [Verdict],
        tracer: &mut T,
    ) {
        assert!(pkts.len() <= MAX_BURST && verdicts.len() >= pkts.len());
        let topo = Arc::clone(w.topology.load());
        let mut cx = Ctx {
            topo: &topo,
            counters: &w.counters,
            ident: &mut w.ip_ident,
            input,
            now,
        };
        let role = topo.port(input).map_or(PortRole::Unused, |p| p.role);
        match role {
            PortRole::Local { network } => {
                self.ingress_local(&mut cx, network, pkts, verdicts, tracer)
            }
            PortRole::Fabric => {
                for (i, pkt) in pkts.iter_mut().enumerate() {
                    verdicts[i] = self.ingress_fabric(&mut cx, pkt, i, tracer);
                }
            }
            PortRole::Unused => {
                verdicts[..pkts.len()].fill(Verdict::Drop(DropReason::PortNotAttached))
            }
        }
    }

    fn ingress_local<T: Tracer>(
        &self,
        cx: &mut Ctx<'_>,
        network: NetworkId,
        pkts: &mut [PacketBuf<'_>],
        verdicts: &mut [Verdict],
        t: &mut T,
    ) {
        let topo = cx.topo;
        let Some(net) = topo.network(network) else {
            verdicts[..pkts.len()].fill(Verdict::Drop(DropReason::PortNotAttached));
            return;
        };
        let gw = net.iface.and_then(|i| topo.iface(i));
        let router = gw.and_then(|g| topo.router(g.router).map(|r| (g, r)));
        // No 48-bit MAC equals a value with bit 63 set: without a router nothing is routed.
        let gw_mac = router.map_or(1 << 63, |(g, _)| g.mac.to_u64());

        // Pass 1: classify; collect the destinations to route.
        let mut dsts = [0u32; MAX_BURST];
        let mut which = [0u8; MAX_BURST];
        let mut n = 0;
        for (i, pkt) in pkts.iter_mut().enumerate() {
            match self.classify_local(cx, network, net, router, gw_mac, pkt, i, t) {
                Classified::Done(v) => verdicts[i] = v,
                Classified::Route(dst) => {
                    dsts[n] = dst;
                    which[n] = i as u8;
                    n += 1;
                }
            }
        }
        let Some((gw, router)) = router else {
            debug_assert_eq!(n, 0);
            return;
        };

        // Pass 2: all lookups of the burst together.
        let mut hops = [NO_ROUTE; MAX_BURST];
        router.lpm.lookup_burst(&dsts[..n], &mut hops[..n]);

        // Pass 3: next hop, checks that depend on it, rewrite.
        for k in 0..n {
            let i = usize::from(which[k]);
            if T::ENABLED {
                let nh = (hops[k] != NO_ROUTE).then_some(hops[k]);
                t.record(
                    i,
                    TraceEvent::Lookup {
                        router: gw.router,
                        dst: Ipv4Addr::from(dsts[k]),
                        next_hop: nh,
                    },
                );
            }
            verdicts[i] = self.route(cx, gw, router, &mut pkts[i], hops[k], i, t);
        }
    }

    /// First pass over a frame from a local port.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn classify_local<T: Tracer>(
        &self,
        cx: &mut Ctx<'_>,
        network: NetworkId,
        net: &NetworkInfo,
        router: Option<(&IfaceInfo, &RouterInfo)>,
        gw_mac: u64,
        pkt: &mut PacketBuf<'_>,
        i: usize,
        t: &mut T,
    ) -> Classified {
        use Classified::Done;
        let f = pkt.frame();
        let Some(h) = f.first_chunk::<ETH_LEN>() else {
            return Done(Verdict::Drop(DropReason::FrameTruncated));
        };
        let (dst, src) = header_macs(h);
        let ethertype = EtherType(u16::from_be_bytes([h[ETH_TYPE], h[ETH_TYPE + 1]]));
        if T::ENABLED {
            t.record(i, TraceEvent::ethernet(f));
            t.record(
                i,
                TraceEvent::Network {
                    network,
                    router: router.map(|(g, _)| g.router),
                },
            );
        }
        if cx.topo.is_dvr_mac(src) {
            return Done(Verdict::Drop(DropReason::SpoofedDvrMac));
        }
        if ethertype == EtherType::VLAN {
            return Done(Verdict::Drop(DropReason::VlanTagged));
        }
        if let Some((gw, _)) = router.filter(|_| dst == gw_mac) {
            return match ethertype {
                EtherType::IPV4 => self.classify_ipv4(pkt, gw, i, t),
                EtherType::ARP => Done(Verdict::Punt(PuntReason::Arp)),
                _ => Done(Verdict::Drop(DropReason::UnsupportedEthertype)),
            };
        }
        if is_multicast_mac(dst) {
            // Gateway ARP is answered here and never leaves the host; other ARP is answered
            // from the known instance ports or flooded by the control thread.
            return Done(Verdict::Punt(if ethertype == EtherType::ARP {
                PuntReason::Arp
            } else {
                PuntReason::Flood
            }));
        }
        Done(self.bridge_local(cx, network, net, pkt, dst, i, t))
    }

    /// RFC 1812 section 5.2.2 checks and the address checks of section 5.3.7 on a frame to the
    /// gateway MAC.
    #[inline]
    fn classify_ipv4<T: Tracer>(
        &self,
        pkt: &mut PacketBuf<'_>,
        gw: &IfaceInfo,
        i: usize,
        t: &mut T,
    ) -> Classified {
        use Classified::Done;
        let total_len = match check_ipv4_fast(pkt.frame()) {
            Some(len) => len,
            None => match check_ipv4(&pkt.frame()[ETH_LEN..]) {
                Ok(len) => len,
                Err(reason) => return Done(Verdict::Drop(reason)),
            },
        };
        // Ethernet pads short frames: the datagram ends at its total length.
        pkt.truncate(ETH_LEN + total_len);
        let f = pkt.frame();
        let Some(h) = f.first_chunk::<MIN_IPV4_FRAME>() else {
            return Done(Verdict::Drop(DropReason::Ipv4Truncated));
        };
        let src = u32::from_be_bytes([h[IP_SRC], h[IP_SRC + 1], h[IP_SRC + 2], h[IP_SRC + 3]]);
        let dst = u32::from_be_bytes([h[IP_DST], h[IP_DST + 1], h[IP_DST + 2], h[IP_DST + 3]]);
        if T::ENABLED {
            t.record(i, TraceEvent::ipv4(&f[ETH_LEN..]));
        }
        if !is_unicast_host(src) {
            return Done(Verdict::Drop(DropReason::MartianSource));
        }
        if dst >> 28 == 0xe {
            return Done(Verdict::Drop(DropReason::Multicast));
        }
        if dst == u32::MAX {
            return Done(Verdict::Drop(DropReason::Broadcast));
        }
        if dst >> 24 == 0 || dst >> 24 == 127 || dst >> 28 == 0xf {
            return Done(Verdict::Drop(DropReason::MartianDestination));
        }
        if dst == gw.ip {
            return Done(Verdict::Punt(PuntReason::LocalDelivery));
        }
        Classified::Route(dst)
    }

    /// Bridges a unicast frame not addressed to the gateway, by its destination MAC.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn bridge_local<T: Tracer>(
        &self,
        cx: &mut Ctx<'_>,
        network: NetworkId,
        net: &NetworkInfo,
        pkt: &mut PacketBuf<'_>,
        dst: u64,
        i: usize,
        t: &mut T,
    ) -> Verdict {
        let location = self
            .dp
            .l2
            .get(l2_key(network, dst))
            .and_then(L2Location::decode);
        if T::ENABLED {
            t.record(
                i,
                TraceEvent::L2 {
                    network,
                    mac: wire::EthernetAddress::from_u64(dst),
                    location,
                },
            );
        }
        match location {
            Some(L2Location::Local(port)) if port == cx.input => {
                Verdict::Drop(DropReason::L2SamePort)
            }
            Some(L2Location::Local(port)) => {
                cx.counters.bridged_local.inc();
                Verdict::Forward(port)
            }
            Some(L2Location::Remote(peer)) => {
                let v = self.to_peer(cx, pkt, peer, net.vni, i, t);
                if matches!(v, Verdict::Forward(_)) {
                    cx.counters.bridged_remote.inc();
                }
                v
            }
            None => Verdict::Punt(PuntReason::Flood),
        }
    }

    /// Third pass: a frame whose destination was looked up.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn route<T: Tracer>(
        &self,
        cx: &mut Ctx<'_>,
        gw: &IfaceInfo,
        router: &RouterInfo,
        pkt: &mut PacketBuf<'_>,
        hop: u32,
        i: usize,
        t: &mut T,
    ) -> Verdict {
        if hop == NO_ROUTE {
            return self.icmp_error(
                cx,
                gw,
                router,
                pkt,
                IcmpError::NET_UNREACHABLE,
                DropReason::NoRoute,
                i,
                t,
            );
        }
        let nh = self.dp.next_hops.get(hop);
        if T::ENABLED {
            t.record(
                i,
                TraceEvent::NextHop {
                    id: hop,
                    state: nh.state,
                    iface: nh.iface,
                },
            );
        }
        let kind = nh.state.kind();
        match kind {
            NextHopKind::LocalDelivery => return Verdict::Punt(PuntReason::LocalDelivery),
            NextHopKind::Blackhole => {
                let reason = DropReason::from_index(usize::from(nh.state.target()))
                    .unwrap_or(DropReason::Blackhole);
                return Verdict::Drop(reason);
            }
            NextHopKind::Empty => return Verdict::Drop(DropReason::NoNextHop),
            _ => {}
        }
        // RFC 1812 section 5.3.1: a packet that would leave with TTL 0 is discarded with a
        // time exceeded message.
        if pkt.frame()[IP_TTL] <= 1 {
            return self.icmp_error(
                cx,
                gw,
                router,
                pkt,
                IcmpError::TTL_EXCEEDED,
                DropReason::TtlExceeded,
                i,
                t,
            );
        }
        match kind {
            NextHopKind::Resolve | NextHopKind::Pending => Verdict::Punt(PuntReason::NeighborMiss),
            NextHopKind::Failed => self.icmp_error(
                cx,
                gw,
                router,
                pkt,
                IcmpError::HOST_UNREACHABLE,
                DropReason::HostUnreachable,
                i,
                t,
            ),
            NextHopKind::Local => self.route_local(cx, gw, router, pkt, hop, nh, i, t),
            NextHopKind::Remote => self.route_remote(cx, gw, router, pkt, hop, nh, i, t),
            NextHopKind::LocalDelivery | NextHopKind::Blackhole | NextHopKind::Empty => {
                unreachable!("handled above")
            }
        }
    }

    /// Routes to an instance behind a local port.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn route_local<T: Tracer>(
        &self,
        cx: &mut Ctx<'_>,
        gw: &IfaceInfo,
        router: &RouterInfo,
        pkt: &mut PacketBuf<'_>,
        hop: u32,
        nh: NextHop,
        i: usize,
        t: &mut T,
    ) -> Verdict {
        let port = nh.state.target();
        let (Some(out), Some(egress)) = (cx.topo.port(port), cx.topo.iface(nh.iface)) else {
            return Verdict::Drop(DropReason::NoNextHop);
        };
        if let Some(v) = self.check_mtu(cx, gw, router, pkt, out.mtu, i, t) {
            return v;
        }
        self.dp.next_hops.touch(hop);
        rewrite(pkt.frame_mut(), egress.mac.0, nh.state.mac_bytes());
        if T::ENABLED {
            t.record(i, TraceEvent::rewrite(pkt.frame()));
        }
        cx.counters.router(gw.router).routed_local.inc();
        Verdict::Forward(port)
    }

    /// Routes to an instance on a peer host: DVR source MAC, then VXLAN to the peer's VTEP.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn route_remote<T: Tracer>(
        &self,
        cx: &mut Ctx<'_>,
        gw: &IfaceInfo,
        router: &RouterInfo,
        pkt: &mut PacketBuf<'_>,
        hop: u32,
        nh: NextHop,
        i: usize,
        t: &mut T,
    ) -> Verdict {
        let topo = cx.topo;
        let (Some(host), Some(fabric)) = (topo.host, topo.fabric.and_then(|p| topo.port(p))) else {
            return Verdict::Drop(DropReason::NoFabric);
        };
        let Some(egress) = topo.iface(nh.iface) else {
            return Verdict::Drop(DropReason::NoNextHop);
        };
        let Some(vni) = topo.network(egress.network).map(|n| n.vni) else {
            return Verdict::Drop(DropReason::NoNextHop);
        };
        // Outer packets are never fragmented: the inner packet must fit the fabric MTU less
        // the encapsulation.
        let mtu = fabric
            .mtu
            .saturating_sub(wire::vxlan::VXLAN_ENCAP_OVERHEAD as u16);
        if let Some(v) = self.check_mtu(cx, gw, router, pkt, mtu, i, t) {
            return v;
        }
        // Check the underlay before touching the frame: a punted frame must be unmodified.
        let peer = nh.state.target();
        if !self.underlay_resolved(topo, peer) {
            return Verdict::Punt(PuntReason::UnderlayMiss);
        }
        self.dp.next_hops.touch(hop);
        rewrite(pkt.frame_mut(), host.dvr_mac.0, nh.state.mac_bytes());
        if T::ENABLED {
            t.record(i, TraceEvent::rewrite(pkt.frame()));
        }
        let v = self.to_peer(cx, pkt, peer, vni, i, t);
        if matches!(v, Verdict::Forward(_)) {
            cx.counters.router(gw.router).routed_remote.inc();
        }
        v
    }

    fn underlay_resolved(&self, topo: &Topology, peer: u16) -> bool {
        topo.peer(peer)
            .is_some_and(|p| self.dp.next_hops.get(p.underlay).state.kind() == NextHopKind::Local)
    }

    /// Encapsulates a frame (routed or bridged) for `peer` and sends it to the fabric.
    #[inline]
    fn to_peer<T: Tracer>(
        &self,
        cx: &mut Ctx<'_>,
        pkt: &mut PacketBuf<'_>,
        peer: u16,
        vni: u32,
        i: usize,
        t: &mut T,
    ) -> Verdict {
        let topo = cx.topo;
        let (Some(host), Some(fabric_port)) = (topo.host, topo.fabric) else {
            return Verdict::Drop(DropReason::NoFabric);
        };
        let (Some(fabric), Some(p)) = (topo.port(fabric_port), topo.peer(peer)) else {
            return Verdict::Drop(DropReason::NoFabric);
        };
        let underlay = self.dp.next_hops.get(p.underlay);
        if underlay.state.kind() != NextHopKind::Local {
            return Verdict::Punt(PuntReason::UnderlayMiss);
        }
        let sport = wire::vxlan::entropy_src_port(flow_hash(pkt.frame()));
        let header = FabricHeader {
            dst_mac: underlay.state.mac_bytes(),
            src_mac: fabric.mac.0,
            src_vtep: host.vtep,
            dst_vtep: p.vtep,
            vni,
            src_port: sport,
            ident: cx.next_ident(),
        };
        if !encapsulate(pkt, &header) {
            return Verdict::Drop(DropReason::NoHeadroom);
        }
        if T::ENABLED {
            t.record(
                i,
                TraceEvent::Encap {
                    peer,
                    vni,
                    src_port: sport,
                },
            );
        }
        Verdict::Forward(fabric_port)
    }

    /// RFC 1812 section 5.2.6 / RFC 1191: a datagram larger than the next-hop MTU with DF set
    /// gets fragmentation needed with that MTU; without DF it is dropped (the router does not
    /// fragment). `None` when it fits.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn check_mtu<T: Tracer>(
        &self,
        cx: &mut Ctx<'_>,
        gw: &IfaceInfo,
        router: &RouterInfo,
        pkt: &mut PacketBuf<'_>,
        mtu: u16,
        i: usize,
        t: &mut T,
    ) -> Option<Verdict> {
        let total_len = pkt.len() - ETH_LEN;
        if total_len <= usize::from(mtu) {
            return None;
        }
        let dont_frag = pkt.frame()[ETH_LEN + 6] & 0x40 != 0;
        Some(if dont_frag {
            let error = IcmpError {
                mtu,
                ..IcmpError::FRAG_NEEDED
            };
            self.icmp_error(cx, gw, router, pkt, error, DropReason::PacketTooBig, i, t)
        } else {
            Verdict::Drop(DropReason::FragmentationUnsupported)
        })
    }

    /// Turns the datagram in `pkt` into an ICMP error back to its source, in place (RFC 792,
    /// RFC 1812 section 4.3.2), or drops it with `reason` when RFC 1812 section 4.3.2.7 forbids
    /// an error about it or the router's ICMP rate limit is exceeded.
    #[allow(clippy::too_many_arguments)]
    fn icmp_error<T: Tracer>(
        &self,
        cx: &mut Ctx<'_>,
        gw: &IfaceInfo,
        router: &RouterInfo,
        pkt: &mut PacketBuf<'_>,
        error: IcmpError,
        reason: DropReason,
        i: usize,
        t: &mut T,
    ) -> Verdict {
        let f = pkt.frame();
        let original = wire::Ipv4Packet::new_unchecked(&f[ETH_LEN..]);
        if !icmpv4::icmp_error_allowed(&original) {
            return Verdict::Drop(reason);
        }
        if !router.icmp.allow(cx.now) {
            cx.counters.icmp_rate_limited.inc();
            return Verdict::Drop(reason);
        }
        let ident = cx.next_ident();
        // RFC 1812 section 4.3.2.4: the source is the address of the interface the error leaves
        // by, which is the one the datagram came in on.
        if !build_icmp_error(
            pkt,
            gw.mac.0,
            gw.ip,
            error.msg_type,
            error.code,
            error.mtu,
            ident,
        ) {
            return Verdict::Drop(DropReason::NoHeadroom);
        }
        if T::ENABLED {
            t.record(
                i,
                TraceEvent::IcmpError {
                    msg_type: error.msg_type.into(),
                    code: error.code,
                    mtu: error.mtu,
                },
            );
        }
        cx.counters.router(gw.router).icmp_errors.inc();
        Verdict::Forward(cx.input)
    }

    /// A frame from the fabric: check, decapsulate, deliver.
    fn ingress_fabric<T: Tracer>(
        &self,
        cx: &mut Ctx<'_>,
        pkt: &mut PacketBuf<'_>,
        i: usize,
        t: &mut T,
    ) -> Verdict {
        let topo = cx.topo;
        let (Some(host), Some(port)) = (topo.host, topo.port(cx.input)) else {
            return Verdict::Drop(DropReason::NoFabric);
        };
        let f = pkt.frame();
        if f.len() < ETH_LEN {
            return Verdict::Drop(DropReason::FrameTruncated);
        }
        if T::ENABLED {
            t.record(i, TraceEvent::ethernet(f));
        }
        let dst = mac_u64(f, ETH_DST);
        let ethertype = EtherType(read_u16(f, ETH_TYPE));
        if ethertype == EtherType::ARP && (dst == port.mac.to_u64() || is_multicast_mac(dst)) {
            return Verdict::Punt(PuntReason::Arp);
        }
        if dst != port.mac.to_u64() {
            return Verdict::Drop(DropReason::FabricNotForUs);
        }
        match ethertype {
            EtherType::IPV4 => {}
            EtherType::VLAN => return Verdict::Drop(DropReason::VlanTagged),
            _ => return Verdict::Drop(DropReason::UnsupportedEthertype),
        }
        let total_len = match check_ipv4(&f[ETH_LEN..]) {
            Ok(len) => len,
            Err(reason) => return Verdict::Drop(reason),
        };
        let outer = wire::Ipv4Packet::new_unchecked(&f[ETH_LEN..ETH_LEN + total_len]);
        if T::ENABLED {
            t.record(i, TraceEvent::ipv4(outer.into_inner()));
        }
        if outer.dst_addr_u32() != host.vtep {
            return Verdict::Drop(DropReason::FabricNotForUs);
        }
        if outer.is_fragment() {
            return Verdict::Drop(DropReason::FabricFragment);
        }
        match outer.protocol() {
            wire::IpProtocol::Udp => {}
            wire::IpProtocol::Icmp => return Verdict::Punt(PuntReason::LocalDelivery),
            _ => return Verdict::Drop(DropReason::FabricNotVxlan),
        }
        let Ok(udp) = wire::UdpPacket::new_checked(outer.payload()) else {
            return Verdict::Drop(DropReason::FabricNotVxlan);
        };
        if udp.dst_port() != wire::vxlan::VXLAN_PORT {
            return Verdict::Drop(DropReason::FabricNotVxlan);
        }
        let Some(peer) = topo.vtep_to_peer.get(u64::from(outer.src_addr_u32())) else {
            return Verdict::Drop(DropReason::UnknownVtep);
        };
        let vxlan = match wire::VxlanPacket::new_checked(udp.payload()) {
            Ok(v) if v.has_vni() => v,
            _ => return Verdict::Drop(DropReason::VxlanBadHeader),
        };
        let vni = vxlan.vni();
        let Some(network) = topo.vni_to_network.get(u64::from(vni)) else {
            return Verdict::Drop(DropReason::UnknownVni);
        };
        let outer_len =
            ETH_LEN + outer.header_len() + wire::udp::HEADER_LEN + wire::vxlan::VXLAN_HEADER_LEN;
        // The UDP length bounds the VXLAN payload (checked against the outer total length).
        let inner_len = usize::from(udp.len())
            .saturating_sub(wire::udp::HEADER_LEN + wire::vxlan::VXLAN_HEADER_LEN);
        if inner_len < ETH_LEN {
            return Verdict::Drop(DropReason::FrameTruncated);
        }
        let Some(net) = topo.network(network) else {
            return Verdict::Drop(DropReason::UnknownVni);
        };
        let inner = &f[outer_len..outer_len + inner_len];
        let inner_dst = mac_u64(inner, ETH_DST);
        let inner_src = mac_u64(inner, ETH_SRC);
        let routed_by = topo.dvr_mac_to_peer.get(inner_src);
        if T::ENABLED {
            t.record(
                i,
                TraceEvent::Decap {
                    peer,
                    vni,
                    network,
                    routed: routed_by.is_some(),
                },
            );
            t.record(i, TraceEvent::ethernet(inner));
        }
        match routed_by {
            Some(p) if p != peer => return Verdict::Drop(DropReason::DvrMacMismatch),
            Some(_) => {
                return self
                    .deliver_routed(cx, pkt, network, net, outer_len, inner_len, inner_dst, i, t)
            }
            None if topo.is_dvr_mac(inner_src) => return Verdict::Drop(DropReason::UnknownDvrMac),
            None => {}
        }
        // Bridged over the VNI: deliver by destination MAC, never back to the fabric.
        let out = if is_multicast_mac(inner_dst) {
            match net.local_ports.as_slice() {
                [] => return Verdict::Drop(DropReason::NoLocalPort),
                [only] => *only,
                _ => return Verdict::Punt(PuntReason::Flood),
            }
        } else {
            match self
                .dp
                .l2
                .get(l2_key(network, inner_dst))
                .and_then(L2Location::decode)
            {
                Some(L2Location::Local(p)) => p,
                _ => return Verdict::Drop(DropReason::UnknownL2Destination),
            }
        };
        pkt.strip(outer_len);
        pkt.truncate(inner_len);
        cx.counters.bridged_from_fabric.inc();
        Verdict::Forward(out)
    }

    /// A frame a peer host routed already: restore the gateway MAC as its source and deliver it
    /// to the local instance. It is not routed again and nothing is learned from it.
    #[allow(clippy::too_many_arguments)]
    fn deliver_routed<T: Tracer>(
        &self,
        cx: &mut Ctx<'_>,
        pkt: &mut PacketBuf<'_>,
        network: NetworkId,
        net: &NetworkInfo,
        outer_len: usize,
        inner_len: usize,
        inner_dst: u64,
        i: usize,
        t: &mut T,
    ) -> Verdict {
        let Some(gw) = net.iface.and_then(|g| cx.topo.iface(g)) else {
            return Verdict::Drop(DropReason::NoInterface);
        };
        let location = self
            .dp
            .l2
            .get(l2_key(network, inner_dst))
            .and_then(L2Location::decode);
        if T::ENABLED {
            t.record(
                i,
                TraceEvent::L2 {
                    network,
                    mac: wire::EthernetAddress::from_u64(inner_dst),
                    location,
                },
            );
        }
        let Some(L2Location::Local(port)) = location else {
            return Verdict::Drop(DropReason::UnknownL2Destination);
        };
        pkt.strip(outer_len);
        pkt.truncate(inner_len);
        pkt.frame_mut()[ETH_SRC..ETH_SRC + 6].copy_from_slice(&gw.mac.0);
        if T::ENABLED {
            t.record(i, TraceEvent::rewrite(pkt.frame()));
        }
        cx.counters.router(gw.router).delivered_from_fabric.inc();
        Verdict::Forward(port)
    }
}

/// An ICMP error to originate.
#[derive(Clone, Copy, Debug)]
struct IcmpError {
    msg_type: Icmpv4Message,
    code: u8,
    mtu: u16,
}

impl IcmpError {
    const NET_UNREACHABLE: IcmpError = IcmpError {
        msg_type: Icmpv4Message::DstUnreachable,
        code: 0,
        mtu: 0,
    };
    const HOST_UNREACHABLE: IcmpError = IcmpError {
        msg_type: Icmpv4Message::DstUnreachable,
        code: 1,
        mtu: 0,
    };
    const FRAG_NEEDED: IcmpError = IcmpError {
        msg_type: Icmpv4Message::DstUnreachable,
        code: 4,
        mtu: 0,
    };
    const TTL_EXCEEDED: IcmpError = IcmpError {
        msg_type: Icmpv4Message::TimeExceeded,
        code: 0,
        mtu: 0,
    };
}

/// RFC 1812 section 5.2.2: checks an IPv4 header at the start of `ip` (the Ethernet payload)
/// and returns the datagram's total length.
#[inline]
pub fn check_ipv4(ip: &[u8]) -> Result<usize, DropReason> {
    let packet = match wire::Ipv4Packet::new_checked(ip) {
        Ok(p) => p,
        Err(wire::Error::BadVersion) => return Err(DropReason::Ipv4BadVersion),
        Err(wire::Error::BadHeaderLength) => return Err(DropReason::Ipv4BadHeaderLength),
        Err(wire::Error::BadTotalLength) => return Err(DropReason::Ipv4BadTotalLength),
        // The header fits but the total length runs past the frame.
        Err(_)
            if ip.len() >= wire::ipv4::HEADER_LEN && usize::from(ip[0] & 0xf) * 4 <= ip.len() =>
        {
            return Err(DropReason::Ipv4BadTotalLength)
        }
        Err(_) => return Err(DropReason::Ipv4Truncated),
    };
    if !packet.verify_checksum() {
        return Err(DropReason::Ipv4BadChecksum);
    }
    Ok(usize::from(packet.total_len()))
}

/// Turns the IPv4 datagram in `pkt`, from a sender on the link it came in on, into an ICMP
/// error from `src_mac`/`src_ip` back to that sender, in place: the datagram's header and first
/// 8 bytes of payload stay where they are and become the quote (RFC 792); the new Ethernet, IPv4
/// and ICMP headers go in front of them. False when the buffer lacks headroom.
pub(crate) fn build_icmp_error(
    pkt: &mut PacketBuf<'_>,
    src_mac: [u8; 6],
    src_ip: u32,
    msg_type: Icmpv4Message,
    code: u8,
    mtu: u16,
    ident: u16,
) -> bool {
    let f = pkt.frame();
    let original = wire::Ipv4Packet::new_unchecked(&f[ETH_LEN..]);
    let header_len = original.header_len();
    let quoted = header_len
        + (usize::from(original.total_len()) - header_len).min(icmpv4::ERROR_QUOTED_PAYLOAD_LEN);
    let sender_mac = mac_bytes(f, ETH_SRC);
    let sender_ip = read_u32(f, IP_SRC);
    if !pkt.prepend(ICMP_ERROR_PREPEND) {
        return false;
    }
    let ip_len = wire::ipv4::HEADER_LEN + icmpv4::HEADER_LEN + quoted;
    pkt.truncate(ETH_LEN + ip_len);
    let f = pkt.frame_mut();
    write_ethernet(f, sender_mac, src_mac, EtherType::IPV4);
    write_ipv4_header(
        &mut f[ETH_LEN..],
        ip_len as u16,
        ident,
        false,
        wire::IpProtocol::Icmp,
        src_ip,
        sender_ip,
    );
    icmpv4::emit_error(
        &mut f[ETH_LEN + wire::ipv4::HEADER_LEN..],
        msg_type,
        code,
        mtu,
    )
    .is_ok()
}

/// True for a source address that names one host (RFC 1812 section 5.3.7).
#[inline]
fn is_unicast_host(addr: u32) -> bool {
    let first = addr >> 24;
    first != 0 && first != 127 && addr >> 28 < 0xe
}

#[inline]
fn is_multicast_mac(mac: u64) -> bool {
    mac & (1 << 40) != 0
}

#[inline]
fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn mac_bytes(b: &[u8], at: usize) -> [u8; 6] {
    [b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5]]
}

#[inline]
fn mac_u64(b: &[u8], at: usize) -> u64 {
    let m = mac_bytes(b, at);
    u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
}

/// The destination and source MACs of an Ethernet header, each as the low 48 bits of a word:
/// two 8-byte loads instead of twelve byte loads.
#[inline]
fn header_macs(h: &[u8; ETH_LEN]) -> (u64, u64) {
    let first = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    let second = u64::from_be_bytes([h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]]);
    (first >> 16, second & 0xffff_ffff_ffff)
}

/// The rewrite of a routed frame: new source and destination MACs, TTL decremented with the
/// RFC 1624 incremental checksum update. The frame holds a checked IPv4 header.
#[inline]
fn rewrite(f: &mut [u8], src: [u8; 6], dst: [u8; 6]) {
    let Some(h) = f.first_chunk_mut::<MIN_IPV4_FRAME>() else {
        return;
    };
    h[ETH_DST..ETH_DST + 6].copy_from_slice(&dst);
    h[ETH_SRC..ETH_SRC + 6].copy_from_slice(&src);
    let ttl = h[IP_TTL];
    if ttl == 0 {
        return;
    }
    // The TTL shares a 16-bit word with the protocol: the word drops by 0x0100.
    let old = u16::from_be_bytes([ttl, h[IP_TTL + 1]]);
    let sum = u16::from_be_bytes([h[IP_CHECKSUM], h[IP_CHECKSUM + 1]]);
    let sum = checksum::update_u16(sum, old, old - 0x0100);
    h[IP_TTL] = ttl - 1;
    h[IP_CHECKSUM..IP_CHECKSUM + 2].copy_from_slice(&sum.to_be_bytes());
}

/// RFC 1812 section 5.2.2 checks for the common case, an IPv4 header without options: the
/// version and IHL byte is 0x45, the total length fits the frame and the header checksum
/// verifies. `None` sends the frame to [`check_ipv4`], which names what is wrong (or accepts
/// options).
#[inline]
fn check_ipv4_fast(f: &[u8]) -> Option<usize> {
    let h = f.first_chunk::<MIN_IPV4_FRAME>()?;
    if h[ETH_LEN] != 0x45 {
        return None;
    }
    let total_len = usize::from(u16::from_be_bytes([h[ETH_LEN + 2], h[ETH_LEN + 3]]));
    if total_len < wire::ipv4::HEADER_LEN || ETH_LEN + total_len > f.len() {
        return None;
    }
    // RFC 1071: the one's complement sum of the header, checksum included, is 0xffff. Summing
    // 32-bit little-endian words and folding gives the byte-swapped sum, which is 0xffff
    // exactly when the true sum is (RFC 1071 section 2(B): byte order independence).
    let mut sum = 0u64;
    for w in h[ETH_LEN..].chunks_exact(4) {
        sum += u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    }
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    (sum == 0xffff).then_some(total_len)
}

/// Writes an untagged Ethernet header.
pub(crate) fn write_ethernet(f: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: EtherType) {
    f[ETH_DST..ETH_DST + 6].copy_from_slice(&dst);
    f[ETH_SRC..ETH_SRC + 6].copy_from_slice(&src);
    f[ETH_TYPE..ETH_TYPE + 2].copy_from_slice(&ethertype.0.to_be_bytes());
}

/// Writes a 20-byte IPv4 header (no options) with TTL [`ORIGINATED_TTL`] and its checksum.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_ipv4_header(
    ip: &mut [u8],
    total_len: u16,
    ident: u16,
    dont_frag: bool,
    protocol: wire::IpProtocol,
    src: u32,
    dst: u32,
) {
    let h = &mut ip[..wire::ipv4::HEADER_LEN];
    h[0] = 0x45;
    h[1] = 0;
    h[2..4].copy_from_slice(&total_len.to_be_bytes());
    h[4..6].copy_from_slice(&ident.to_be_bytes());
    h[6..8].copy_from_slice(&(if dont_frag { 0x4000u16 } else { 0 }).to_be_bytes());
    h[8] = ORIGINATED_TTL;
    h[9] = protocol.into();
    h[10..12].copy_from_slice(&[0, 0]);
    h[12..16].copy_from_slice(&src.to_be_bytes());
    h[16..20].copy_from_slice(&dst.to_be_bytes());
    let sum = checksum::compute(h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_ipv4_names_each_rfc1812_failure() {
        let mut h = [0u8; 28];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&28u16.to_be_bytes());
        h[8] = 64;
        let sum = checksum::compute(&h[..20]);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(check_ipv4(&h), Ok(28));
        assert_eq!(check_ipv4(&h[..19]), Err(DropReason::Ipv4Truncated));
        assert_eq!(check_ipv4(&h[..27]), Err(DropReason::Ipv4BadTotalLength));
        let mut bad = h;
        bad[0] = 0x55;
        assert_eq!(check_ipv4(&bad), Err(DropReason::Ipv4BadVersion));
        bad[0] = 0x43;
        assert_eq!(check_ipv4(&bad), Err(DropReason::Ipv4BadHeaderLength));
        bad[0] = 0x4f;
        assert_eq!(check_ipv4(&bad), Err(DropReason::Ipv4Truncated));
        let mut bad = h;
        bad[11] ^= 1;
        assert_eq!(check_ipv4(&bad), Err(DropReason::Ipv4BadChecksum));
    }

    #[test]
    fn source_and_mac_classes() {
        assert!(is_unicast_host(0x0a00_0001));
        assert!(!is_unicast_host(0x7f00_0001));
        assert!(!is_unicast_host(0));
        assert!(!is_unicast_host(0xe000_0001));
        assert!(!is_unicast_host(0xffff_ffff));
        assert!(is_multicast_mac(0xffff_ffff_ffff));
        assert!(is_multicast_mac(0x0100_5e00_0001));
        assert!(!is_multicast_mac(0xfa16_3e00_0001));
    }
}
