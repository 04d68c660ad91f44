//! Routing, the third pass over a burst from a local port: the next hop the LPM lookup found,
//! the checks that depend on it (TTL, MTU; a datagram too big without DF is punted to be
//! fragmented), and the rewrite. A neighbour behind a local port
//! gets the egress interface's MAC as source; a neighbour on a peer host gets this host's DVR
//! MAC and goes to the fabric in VXLAN.

use super::icmp_error::IcmpError;
use super::trace::{TraceEvent, Tracer};
use super::{ipv4_header, Burst, DropReason, PacketBuf, PuntReason, Verdict};
use super::{ETH_LEN, MIN_IPV4_FRAME};
use crate::dataplane::{IfaceInfo, RouterInfo};
use crate::ids::{NextHopId, PeerId};
use crate::table::{NextHop, NextHopKind};
use crate::wire::{self, EthernetAddress, EthernetFrame, Ipv4Packet};

/// The interface a routed frame came in by, and its router.
#[derive(Clone, Copy)]
pub(super) struct Gateway<'a> {
    pub(super) iface: &'a IfaceInfo,
    pub(super) router: &'a RouterInfo,
}

/// A frame being routed: the gateway it came in by, its next hop and the next hop's index in
/// the table, and the frame's place in the burst (for traces).
#[derive(Clone, Copy)]
pub(super) struct Routed<'a> {
    pub(super) gw: Gateway<'a>,
    pub(super) index: NextHopId,
    pub(super) next_hop: NextHop,
    pub(super) i: usize,
}

impl<T: Tracer> Burst<'_, T> {
    /// Third pass: a frame whose destination was looked up; `hop` is what the lookup found.
    /// Inlined into the burst loop, its one hot caller; the floating-IP paths call it through
    /// [`route_out_of_line`](Self::route_out_of_line).
    #[inline(always)]
    pub(super) fn route(
        &mut self,
        gw: Gateway<'_>,
        pkt: &mut PacketBuf<'_>,
        hop: Option<NextHopId>,
        i: usize,
    ) -> Verdict {
        let Some(hop) = hop else {
            return self.icmp_error(gw, pkt, IcmpError::NET_UNREACHABLE, i);
        };
        let nh = self.dp.next_hops.get(hop);
        self.trace(i, || TraceEvent::NextHop {
            id: hop,
            state: nh.state,
            iface: nh.iface,
        });
        let kind = nh.state.kind();
        match kind {
            NextHopKind::LocalDelivery => return Verdict::Punt(PuntReason::LocalDelivery),
            NextHopKind::Blackhole => {
                let reason = nh.state.drop_reason().unwrap_or(DropReason::Blackhole);
                return Verdict::Drop(reason);
            }
            NextHopKind::Empty => return Verdict::Drop(DropReason::NoNextHop),
            _ => {}
        }
        // RFC 1812 section 5.3.1: a packet that would leave with TTL 0 is discarded with a
        // time exceeded message.
        if ipv4_header(pkt.frame()).map_or(0, |ip| ip.ttl()) <= 1 {
            return self.icmp_error(gw, pkt, IcmpError::TTL_EXCEEDED, i);
        }
        let routed = Routed {
            gw,
            index: hop,
            next_hop: nh,
            i,
        };
        match kind {
            NextHopKind::Resolve | NextHopKind::Pending => Verdict::Punt(PuntReason::NeighborMiss),
            NextHopKind::Failed => self.icmp_error(gw, pkt, IcmpError::HOST_UNREACHABLE, i),
            NextHopKind::Local => self.route_local(routed, pkt),
            NextHopKind::Remote => self.route_remote(routed, pkt),
            NextHopKind::LocalDelivery | NextHopKind::Blackhole | NextHopKind::Empty => {
                unreachable!("handled above")
            }
        }
    }

    /// [`route`](Self::route) for the floating-IP paths, kept out of the burst loop.
    #[inline(never)]
    pub(super) fn route_out_of_line(
        &mut self,
        gw: Gateway<'_>,
        pkt: &mut PacketBuf<'_>,
        hop: Option<NextHopId>,
        i: usize,
    ) -> Verdict {
        self.route(gw, pkt, hop, i)
    }

    /// Routes to an instance behind a local port.
    #[inline(always)]
    fn route_local(&mut self, r: Routed<'_>, pkt: &mut PacketBuf<'_>) -> Verdict {
        let nh = r.next_hop;
        let port = nh.state.port();
        let (Some(out), Some(egress)) = (self.topo.port(port), self.topo.iface(nh.iface)) else {
            return Verdict::Drop(DropReason::NoNextHop);
        };
        if let Some(v) = self.check_mtu(r, pkt, out.mtu) {
            return v;
        }
        self.rewrite(r, pkt, egress.mac);
        self.counters.router(r.gw.iface.router).routed_local.inc();
        Verdict::Forward(port)
    }

    /// Routes to an instance on a peer host: DVR source MAC, then VXLAN to the peer's VTEP.
    #[inline(always)]
    fn route_remote(&mut self, r: Routed<'_>, pkt: &mut PacketBuf<'_>) -> Verdict {
        let topo = self.topo;
        let nh = r.next_hop;
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
        if let Some(v) = self.check_mtu(r, pkt, mtu) {
            return v;
        }
        // Check the underlay before touching the frame: a punted frame must be unmodified.
        let peer = nh.state.peer();
        if !self.underlay_resolved(peer) {
            return Verdict::Punt(PuntReason::UnderlayMiss);
        }
        self.rewrite(r, pkt, host.dvr_mac);
        let v = self.send_to_peer(pkt, peer, vni, r.i);
        if matches!(v, Verdict::Forward(_)) {
            self.counters.router(r.gw.iface.router).routed_remote.inc();
        }
        v
    }

    /// The rewrite of a routed frame toward its next hop, from `src`: the next hop's MAC as
    /// destination, the TTL decremented. The next hop is marked used: the control thread ages
    /// out the dynamic neighbours that no packet went to.
    #[inline(always)]
    pub(super) fn rewrite(&mut self, r: Routed<'_>, pkt: &mut PacketBuf<'_>, src: EthernetAddress) {
        self.dp.next_hops.touch(r.index);
        let dst = EthernetAddress(r.next_hop.state.mac_bytes());
        rewrite_headers(pkt.frame_mut(), src, dst);
        self.trace(r.i, || TraceEvent::rewrite(pkt.frame()));
    }

    fn underlay_resolved(&self, peer: PeerId) -> bool {
        self.topo
            .peer(peer)
            .is_some_and(|p| self.dp.next_hops.get(p.underlay).state.kind() == NextHopKind::Local)
    }

    /// RFC 1812 section 5.2.6 / RFC 1191: a datagram larger than the next-hop MTU with DF set
    /// gets fragmentation needed with that MTU; without DF it goes to the control thread,
    /// unmodified, to be fragmented there (off the common path: see `control/fragment.rs`).
    /// `None` when it fits.
    #[inline(always)]
    pub(super) fn check_mtu(
        &mut self,
        r: Routed<'_>,
        pkt: &mut PacketBuf<'_>,
        mtu: u16,
    ) -> Option<Verdict> {
        let total_len = pkt.len() - ETH_LEN;
        if total_len <= usize::from(mtu) {
            return None;
        }
        let dont_frag = ipv4_header(pkt.frame()).is_some_and(|ip| ip.dont_frag());
        Some(if dont_frag {
            self.icmp_error(r.gw, pkt, IcmpError::frag_needed(mtu), r.i)
        } else {
            Verdict::Punt(PuntReason::Fragment)
        })
    }
}

/// The rewrite of a routed frame: new source and destination MACs, TTL decremented with the
/// RFC 1624 incremental checksum update. The frame holds a checked IPv4 header.
#[inline(always)]
fn rewrite_headers(f: &mut [u8], src: EthernetAddress, dst: EthernetAddress) {
    let Some(h) = f.first_chunk_mut::<MIN_IPV4_FRAME>() else {
        return;
    };
    let (eth, ip) = h.split_at_mut(ETH_LEN);
    let mut eth = EthernetFrame::new_unchecked(eth);
    eth.set_dst_addr(dst);
    eth.set_src_addr(src);
    Ipv4Packet::new_unchecked(ip).decrement_ttl();
}
