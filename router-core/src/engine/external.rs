//! Floating IPs on the data path: frames from the external port, and the instances' own
//! traffic to the outside.
//!
//! **From the external port.** A frame must be addressed to the external port's MAC (ARP,
//! broadcast or not, goes to the control thread, which answers only for this host's external
//! address and its instances' floating IPs). Its IPv4 header gets the RFC 1812 checks; a
//! datagram to this host's external address is delivered locally; one to a floating IP of an
//! instance on this host is translated to the instance's fixed IP (DNAT) and routed in the
//! instance's router like any routed packet, TTL decremented once. Anything else is a counted
//! drop: another host answers for its own floating IPs.
//!
//! **To the outside.** A packet routed in a router from an instance that has a floating IP
//! here, to a destination the router has no route for but its default route (the way to the
//! centralised SNAT node), leaves through the external port instead, its source translated to
//! the floating IP (SNAT), toward the external gateway or, on the external subnet, the
//! destination itself. Traffic between the router's own subnets and along its other routes is
//! never translated. A destination that is another floating IP on this host is translated twice
//! and routed back in (hairpin), so instances reach each other by their floating IPs with the
//! addresses an outside client would see.
//!
//! The translation is stateless, 1:1: no connection table, nothing to age, and every packet is
//! translated the same way whatever came before it (`wire::nat`).

use std::net::Ipv4Addr;

use super::icmp_error::IcmpError;
use super::local::is_multicast_mac;
use super::route::{Gateway, Routed};
use super::trace::{TraceEvent, Tracer};
use super::ETH_LEN;
use super::{check_ipv4, ipv4_header, Burst, DropReason, PacketBuf, PuntReason, Verdict};
use crate::dataplane::{ExternalInfo, FipInfo};
use crate::ids::NextHopId;
use crate::table::NextHopKind;
use crate::wire::nat::{self, Side};
use crate::wire::{EtherType, EthernetFrame};

impl<T: Tracer> Burst<'_, T> {
    /// A burst from the external port.
    pub(super) fn ingress_external(
        &mut self,
        pkts: &mut [PacketBuf<'_>],
        verdicts: &mut [Verdict],
    ) {
        let Some(ext) = self.topo.external.filter(|e| e.port == self.input) else {
            verdicts[..pkts.len()].fill(Verdict::Drop(DropReason::PortNotAttached));
            return;
        };
        for (i, pkt) in pkts.iter_mut().enumerate() {
            verdicts[i] = self.frame_from_outside(&ext, pkt, i);
        }
    }

    /// One frame from the external network.
    fn frame_from_outside(
        &mut self,
        ext: &ExternalInfo,
        pkt: &mut PacketBuf<'_>,
        i: usize,
    ) -> Verdict {
        let f = pkt.frame();
        let Some(h) = f.first_chunk::<ETH_LEN>() else {
            return Verdict::Drop(DropReason::FrameTruncated);
        };
        let eth = EthernetFrame::new_unchecked(h);
        let (dst_mac, _) = eth.addrs_u64();
        let ethertype = eth.outer_ethertype();
        self.trace(i, || TraceEvent::ethernet(f));
        if ethertype == EtherType::ARP {
            return Verdict::Punt(PuntReason::Arp);
        }
        if dst_mac != ext.mac.to_u64() {
            return Verdict::Drop(if is_multicast_mac(dst_mac) {
                DropReason::Broadcast
            } else {
                DropReason::ExternalNotForUs
            });
        }
        match ethertype {
            EtherType::IPV4 => {}
            EtherType::VLAN => return Verdict::Drop(DropReason::VlanTagged),
            _ => return Verdict::Drop(DropReason::UnsupportedEthertype),
        }
        let total_len = match super::local::check_ipv4_fast(pkt.frame()) {
            Some(len) => len,
            None => match check_ipv4(&pkt.frame()[ETH_LEN..]) {
                Ok(len) => len,
                Err(reason) => return Verdict::Drop(reason),
            },
        };
        pkt.truncate(ETH_LEN + total_len);
        let Some(ip) = ipv4_header(pkt.frame()) else {
            return Verdict::Drop(DropReason::Ipv4Truncated);
        };
        let (src, dst, ttl) = (ip.src_addr_u32(), ip.dst_addr_u32(), ip.ttl());
        self.trace(i, || TraceEvent::ipv4(&pkt.frame()[ETH_LEN..]));
        if !super::local::is_unicast_host(src) {
            return Verdict::Drop(DropReason::MartianSource);
        }
        if dst == ext.ip {
            return Verdict::Punt(PuntReason::LocalDelivery);
        }
        let Some(fip) = self.topo.fip_by_ip(dst) else {
            return Verdict::Drop(DropReason::NoFloatingIp);
        };
        let Some(router) = self.topo.router(fip.router) else {
            return Verdict::Drop(DropReason::NoNextHop);
        };
        let gw = Gateway {
            iface: &fip.outside,
            router,
        };
        // Errors about the datagram as it arrived come from this host's external address and
        // quote it untranslated.
        if ttl <= 1 {
            return self.icmp_error(gw, pkt, IcmpError::TTL_EXCEEDED, i);
        }
        self.translate(pkt, Side::Destination, fip.fixed, i);
        let hop = router.lpm.lookup(fip.fixed);
        let v = self.route_out_of_line(gw, pkt, hop, i);
        match v {
            // An error about the translated datagram (too big for the instance's network, say)
            // goes back outside quoting it as it arrived.
            Verdict::Forward(port) if port == self.input => {
                self.untranslate_quote(pkt, Side::Destination, fip.fip)
            }
            Verdict::Forward(_) => self.counters.fip(fip.id).dnat.inc(),
            // A punted frame is the one that arrived: whoever runs it through the engine
            // again translates it again.
            Verdict::Punt(_) => nat::translate(
                &mut pkt.frame_mut()[ETH_LEN..],
                Side::Destination,
                Ipv4Addr::from(fip.fip),
            ),
            Verdict::Drop(_) => {}
        }
        v
    }

    /// Rewrites one address of the routed datagram in `pkt`, with its checksums.
    #[inline]
    fn translate(&mut self, pkt: &mut PacketBuf<'_>, side: Side, to: u32, i: usize) {
        let ip = &mut pkt.frame_mut()[ETH_LEN..];
        let at = if side == Side::Source { 12 } else { 16 };
        let from = Ipv4Addr::from(u32::from_be_bytes([
            ip[at],
            ip[at + 1],
            ip[at + 2],
            ip[at + 3],
        ]));
        nat::translate(ip, side, Ipv4Addr::from(to));
        self.trace(i, || TraceEvent::Nat {
            source: side == Side::Source,
            from,
            to: Ipv4Addr::from(to),
        });
    }

    /// Puts `side` of the datagram quoted by the ICMP error in `pkt` back to `to`.
    fn untranslate_quote(&mut self, pkt: &mut PacketBuf<'_>, side: Side, to: u32) {
        nat::translate_quote(&mut pkt.frame_mut()[ETH_LEN..], side, Ipv4Addr::from(to));
    }

    /// A routed packet from an instance that has a floating IP here: `Some` when it goes to the
    /// outside (or back in by another floating IP), `None` when it stays inside the router.
    /// Out of line: the common path (no floating IP on the host) only tests for an empty list.
    #[inline(never)]
    pub(super) fn route_floating(
        &mut self,
        gw: Gateway<'_>,
        pkt: &mut PacketBuf<'_>,
        i: usize,
    ) -> Option<Verdict> {
        let ip = ipv4_header(pkt.frame())?;
        let (src, dst) = (ip.src_addr_u32(), ip.dst_addr_u32());
        let fip = *self.topo.fip_by_fixed(gw.iface.router, src)?;
        // Only what the router would send to the SNAT node: no route, or the default route.
        if gw
            .router
            .lpm
            .lookup_with_len(dst)
            .is_some_and(|(_, len)| len > 0)
        {
            return None;
        }
        if let Some(target) = self.topo.fip_by_ip(dst).copied() {
            return Some(self.hairpin(&fip, &target, pkt, i));
        }
        Some(self.leave_by_fip(gw, &fip, pkt, i))
    }

    /// An instance's packet to the outside, from its floating IP.
    fn leave_by_fip(
        &mut self,
        gw: Gateway<'_>,
        fip: &FipInfo,
        pkt: &mut PacketBuf<'_>,
        i: usize,
    ) -> Verdict {
        let topo = self.topo;
        let (Some(ext), Some(out)) = (topo.external, topo.external.and_then(|e| topo.port(e.port)))
        else {
            return Verdict::Drop(DropReason::NoNextHop);
        };
        let dst = ipv4_header(pkt.frame()).map_or(0, |ip| ip.dst_addr_u32());
        let index = if ext.subnet.contains(dst) {
            match topo
                .external_hosts
                .get(u64::from(dst))
                .and_then(NextHopId::new)
            {
                Some(nh) => nh,
                None => return Verdict::Punt(PuntReason::ExternalMiss),
            }
        } else {
            ext.gateway
        };
        let next_hop = self.dp.next_hops.get(index);
        self.trace(i, || TraceEvent::NextHop {
            id: index,
            state: next_hop.state,
            iface: next_hop.iface,
        });
        match next_hop.state.kind() {
            NextHopKind::Local => {}
            NextHopKind::Resolve | NextHopKind::Pending => {
                return Verdict::Punt(PuntReason::ExternalMiss)
            }
            NextHopKind::Failed => return self.icmp_error(gw, pkt, IcmpError::HOST_UNREACHABLE, i),
            _ => return Verdict::Drop(DropReason::NoNextHop),
        }
        if ipv4_header(pkt.frame()).map_or(0, |ip| ip.ttl()) <= 1 {
            return self.icmp_error(gw, pkt, IcmpError::TTL_EXCEEDED, i);
        }
        let r = Routed {
            gw,
            index,
            next_hop,
            i,
        };
        if let Some(v) = self.check_mtu(r, pkt, out.mtu) {
            return v;
        }
        self.translate(pkt, Side::Source, fip.fip, i);
        self.rewrite(r, pkt, ext.mac);
        self.counters.fip(fip.id).snat.inc();
        Verdict::Forward(ext.port)
    }

    /// From one floating IP on this host to another: both translations, then routed in the
    /// target's router as if it had come from outside.
    fn hairpin(
        &mut self,
        from: &FipInfo,
        target: &FipInfo,
        pkt: &mut PacketBuf<'_>,
        i: usize,
    ) -> Verdict {
        let Some(router) = self.topo.router(target.router) else {
            return Verdict::Drop(DropReason::NoNextHop);
        };
        self.translate(pkt, Side::Source, from.fip, i);
        self.translate(pkt, Side::Destination, target.fixed, i);
        self.counters.fip(from.id).snat.inc();
        self.counters.fip(target.id).dnat.inc();
        let gw = Gateway {
            iface: &target.outside,
            router,
        };
        let hop = router.lpm.lookup(target.fixed);
        self.route_out_of_line(gw, pkt, hop, i)
    }
}
