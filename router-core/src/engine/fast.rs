//! The common case of a burst from a local port, in fewer instructions: frames to the gateway
//! MAC holding a plain IPv4 header that passes every check, routed to a resolved neighbour.
//!
//! The first pass tries [`classify_plain`](Burst::classify_plain) before the general
//! classification: it reads the Ethernet and IPv4 headers once, as one fixed-size array
//! (one bounds check), and accepts a frame only when every RFC 1812 check passes (version,
//! header length, total length, header checksum, source and destination address classes).
//! Anything else, or anything it is unsure of, goes to the general path, which names the
//! reason; so no check is skipped, and the drop reasons stay the general path's.
//!
//! The third pass resolves each next hop once per burst into a [`HopPlan`]: where its frames
//! go, the MACs the rewrite writes, the MTU, and for a neighbour on a peer host the outer
//! headers as a [`FabricTemplate`]. Frames of a burst mostly share their next hop, so the
//! table reads, the port and interface look-ups, the underlay check and the outer header's
//! constant part are paid once per burst instead of once per frame. Per frame remain the TTL
//! and MTU checks, the rewrite (RFC 1624 incremental checksum) and the encapsulation's
//! variable fields. The routed counter and the next hop's used mark are written once per plan.
//! A frame the plan cannot take (TTL expiring, too big, no headroom) takes the general path,
//! untouched.
//!
//! A traced burst never takes these paths: its events come from the general path alone.

use super::local::{is_unicast_host, Lan};
use super::route::Gateway;
use super::trace::Tracer;
use super::{Burst, PacketBuf, Verdict, ETH_LEN, MIN_IPV4_FRAME};
use crate::ids::{NextHopId, PortId};
use crate::table::NextHopKind;
use crate::wire::vxlan::{entropy_src_port, flow_hash};
use crate::wire::{checksum, ipv4, EtherType, FabricHeader, FabricTemplate, VXLAN_ENCAP_OVERHEAD};

/// The frames of a burst routed to one next hop: how to send them, and how many were sent.
pub(super) struct HopPlan {
    /// The next hop as the LPM returned it (a miss included).
    hop: u32,
    id: Option<NextHopId>,
    /// `None` when the general path must route these frames.
    route: Option<Planned>,
    /// Frames sent by the plan.
    forwarded: u64,
}

/// What every frame to one resolved next hop gets.
struct Planned {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    /// The largest datagram (Ethernet payload) that leaves without fragmentation.
    mtu: u16,
    out: PortId,
    /// The outer headers, for a neighbour on a peer host.
    fabric: Option<FabricTemplate>,
}

/// A big-endian 32-bit word of `h` at `at`: with `at` constant, no bounds check is left.
#[inline(always)]
fn be32<const N: usize>(h: &[u8; N], at: usize) -> u32 {
    u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]])
}

/// The Ethernet type and IPv4 version/IHL byte of a frame with a plain IPv4 header, as the
/// three bytes from offset 12 read.
const IPV4_PLAIN: u32 = ((EtherType::IPV4.0 as u32) << 8) | 0x45;

impl<T: Tracer> Burst<'_, T> {
    /// The first pass for the common case: `Some(destination)` for a frame to the gateway MAC
    /// with a plain IPv4 header that passes every RFC 1812 check and is not for the gateway
    /// itself, with the frame cut to the datagram's total length. `None`, with the frame
    /// untouched, sends it to the general classification.
    #[inline(always)]
    pub(super) fn classify_plain(&self, lan: &Lan<'_>, pkt: &mut PacketBuf<'_>) -> Option<u32> {
        if T::ENABLED {
            return None;
        }
        let gw = lan.gateway?;
        let frame_len = pkt.len();
        let h = pkt.head_chunk::<MIN_IPV4_FRAME>()?;
        let dst_mac = (u64::from(be32(h, 0)) << 16) | u64::from(be32(h, 4) >> 16);
        let src_mac = (u64::from(be32(h, 4) & 0xffff) << 32) | u64::from(be32(h, 8));
        if dst_mac != lan.gw_mac || be32(h, 12) >> 8 != IPV4_PLAIN || self.topo.is_dvr_mac(src_mac)
        {
            return None;
        }
        let total_len = (be32(h, ETH_LEN) & 0xffff) as usize;
        if total_len < ipv4::HEADER_LEN || ETH_LEN + total_len > frame_len {
            return None;
        }
        let header = h.last_chunk::<{ ipv4::HEADER_LEN }>()?;
        if !checksum::verify_plain_ipv4_header(header) {
            return None;
        }
        let src = be32(h, ETH_LEN + ipv4::field::SRC_ADDR);
        let dst = be32(h, ETH_LEN + ipv4::field::DST_ADDR);
        // A unicast host address is none of multicast, broadcast or martian (RFC 1812
        // section 5.3.7): the general path tells which when it is one.
        if !is_unicast_host(src) || !is_unicast_host(dst) || dst == gw.iface.ip {
            return None;
        }
        pkt.truncate(ETH_LEN + total_len);
        Some(dst)
    }

    /// The third pass for the common case: routes `pkt`, whose destination the LPM looked up
    /// as `hop`, by the plan of that next hop (made when the hop differs from the previous
    /// frame's). `None`, with the frame untouched, sends it to the general path.
    #[inline(always)]
    pub(super) fn route_planned(
        &mut self,
        memo: &mut Option<HopPlan>,
        gw: Gateway<'_>,
        hop: u32,
        pkt: &mut PacketBuf<'_>,
    ) -> Option<Verdict> {
        if T::ENABLED {
            return None;
        }
        if memo.as_ref().is_none_or(|p| p.hop != hop) {
            if let Some(done) = memo.take() {
                self.settle(gw, &done);
            }
            *memo = Some(self.plan(hop));
        }
        let plan = memo.as_mut()?;
        let v = self.forward_planned(plan.route.as_ref()?, pkt)?;
        plan.forwarded += 1;
        Some(v)
    }

    /// Writes what a plan's frames counted: the router's routed counter, and the next hop's
    /// used mark (the control thread ages out dynamic neighbours no packet went to).
    pub(super) fn settle(&mut self, gw: Gateway<'_>, plan: &HopPlan) {
        let (Some(id), Some(route)) = (plan.id, &plan.route) else {
            return;
        };
        if plan.forwarded == 0 {
            return;
        }
        self.dp.next_hops.touch(id);
        let counters = self.counters.router(gw.iface.router);
        if route.fabric.is_some() {
            counters.routed_remote.add(plan.forwarded);
        } else {
            counters.routed_local.add(plan.forwarded);
        }
    }

    /// The plan of next hop `hop`.
    fn plan(&self, hop: u32) -> HopPlan {
        let id = NextHopId::new(hop);
        HopPlan {
            hop,
            id,
            route: id.and_then(|id| self.planned(id)),
            forwarded: 0,
        }
    }

    /// How frames to next hop `id` are sent, when it is a resolved neighbour on this host or
    /// on a peer host whose underlay is resolved; `None` for everything else.
    fn planned(&self, id: NextHopId) -> Option<Planned> {
        let topo = self.topo;
        let nh = self.dp.next_hops.get(id);
        let egress = topo.iface(nh.iface)?;
        match nh.state.kind() {
            NextHopKind::Local => {
                let port = nh.state.port();
                Some(Planned {
                    dst_mac: nh.state.mac_bytes(),
                    src_mac: egress.mac.0,
                    mtu: topo.port(port)?.mtu,
                    out: port,
                    fabric: None,
                })
            }
            NextHopKind::Remote => {
                let (host, fabric_port) = (topo.host?, topo.fabric?);
                let fabric = topo.port(fabric_port)?;
                let vni = topo.network(egress.network)?.vni;
                let peer = topo.peer(nh.state.peer())?;
                let underlay = self.dp.next_hops.get(peer.underlay).state;
                if underlay.kind() != NextHopKind::Local {
                    return None;
                }
                let outer = FabricHeader {
                    dst_mac: underlay.mac_bytes(),
                    src_mac: fabric.mac.0,
                    src_vtep: host.vtep,
                    dst_vtep: peer.vtep,
                    vni,
                    src_port: 0,
                    ident: 0,
                };
                Some(Planned {
                    dst_mac: nh.state.mac_bytes(),
                    src_mac: host.dvr_mac.0,
                    // Outer packets are never fragmented: the inner one must leave room.
                    mtu: fabric.mtu.saturating_sub(VXLAN_ENCAP_OVERHEAD as u16),
                    out: fabric_port,
                    fabric: Some(FabricTemplate::new(&outer)),
                })
            }
            _ => None,
        }
    }

    /// Rewrites and, toward a peer host, encapsulates one frame by plan `p`. `None`, with the
    /// frame untouched, when the general path must decide (TTL expiring, too big for the
    /// MTU, no headroom for the outer headers).
    #[inline(always)]
    fn forward_planned(&mut self, p: &Planned, pkt: &mut PacketBuf<'_>) -> Option<Verdict> {
        let inner_len = pkt.len();
        if inner_len > ETH_LEN + usize::from(p.mtu)
            || (p.fabric.is_some() && pkt.headroom() < VXLAN_ENCAP_OVERHEAD)
        {
            return None;
        }
        let h = pkt.head_chunk_mut::<MIN_IPV4_FRAME>()?;
        // RFC 1812 section 5.3.1: TTL 1 or less earns a time exceeded (the general path).
        let ttl = h[ETH_LEN + ipv4::field::TTL];
        if ttl <= 1 {
            return None;
        }
        h[..6].copy_from_slice(&p.dst_mac);
        h[6..12].copy_from_slice(&p.src_mac);
        h[ETH_LEN + ipv4::field::TTL] = ttl - 1;
        let at = ETH_LEN + ipv4::field::CHECKSUM;
        let sum = checksum::ttl_decremented(u16::from_be_bytes([h[at], h[at + 1]]));
        h[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        let Some(template) = &p.fabric else {
            return Some(Verdict::Forward(p.out));
        };
        let src_port = entropy_src_port(flow_hash(pkt.frame()));
        let ident = self.next_ident();
        // The headroom was checked above.
        if !pkt.prepend(VXLAN_ENCAP_OVERHEAD) {
            return None;
        }
        let outer = pkt.head_chunk_mut::<VXLAN_ENCAP_OVERHEAD>()?;
        template.emit(outer, inner_len, ident, src_port);
        Some(Verdict::Forward(p.out))
    }
}
