//! The fabric: VXLAN (RFC 7348) between the hosts of the distributed router.
//!
//! Inbound, a frame from the fabric port has its outer Ethernet, IPv4, UDP and VXLAN headers
//! checked (for this host's MAC and VTEP, from a known peer, with a known VNI), then is
//! decapsulated. A frame a peer routed already (its inner source is the peer's DVR MAC) gets
//! the gateway MAC back as source and goes to the local instance; a bridged one goes by its
//! destination MAC. Nothing from the fabric is routed again, learnt, or sent back to it.
//!
//! Outbound, a routed or bridged frame for an instance on a peer host is encapsulated toward
//! the peer's VTEP, by the underlay next hop the control thread resolved.

use super::trace::{TraceEvent, Tracer};
use super::{check_ipv4, local, Burst, DropReason, PacketBuf, PuntReason, Verdict, ETH_LEN};
use crate::dataplane::{l2_key, L2Location, NetworkInfo};
use crate::ids::{NetworkId, PeerId};
use crate::table::NextHopKind;
use crate::wire::vxlan::{self, entropy_src_port, VXLAN_ENCAP_OVERHEAD};
use crate::wire::{self, udp, EtherType, EthernetFrame, FabricHeader, IpProtocol, Ipv4Packet};

/// What the outer headers of a frame from the fabric said.
struct Decap<'a> {
    network: NetworkId,
    net: &'a NetworkInfo,
    /// The outer headers' length: where the inner frame starts.
    outer_len: usize,
    /// The inner frame's length, by the UDP length.
    inner_len: usize,
    /// The inner destination MAC, as a word.
    inner_dst: u64,
}

impl<'a, T: Tracer> Burst<'a, T> {
    /// A frame from the fabric: check, decapsulate, deliver.
    pub(super) fn ingress_fabric(&mut self, pkt: &mut PacketBuf<'_>, i: usize) -> Verdict {
        let outer_ip_len = match self.check_outer_ip(pkt.frame(), i) {
            Ok(len) => len,
            Err(v) => return v,
        };
        let (decap, routed) = match self.check_vxlan(pkt.frame(), outer_ip_len, i) {
            Ok(d) => d,
            Err(v) => return v,
        };
        if routed {
            return self.deliver_routed(pkt, &decap, i);
        }
        // Bridged over the VNI: deliver by destination MAC, never back to the fabric.
        let out = if local::is_multicast_mac(decap.inner_dst) {
            match decap.net.local_ports.as_slice() {
                [] => return Verdict::Drop(DropReason::NoLocalPort),
                [only] => *only,
                _ => return Verdict::Punt(PuntReason::Flood),
            }
        } else {
            let key = l2_key(decap.network, decap.inner_dst);
            match self.dp.l2.get(key).and_then(L2Location::decode) {
                Some(L2Location::Local(p)) => p,
                _ => return Verdict::Drop(DropReason::UnknownL2Destination),
            }
        };
        pkt.strip(decap.outer_len);
        pkt.truncate(decap.inner_len);
        self.counters.bridged_from_fabric.inc();
        Verdict::Forward(out)
    }

    /// The outer Ethernet and IPv4 headers: for this host's fabric MAC and VTEP, not a
    /// fragment, UDP. Returns the outer datagram's total length, or the verdict on a frame that
    /// is not VXLAN for this host (ARP and ICMP to the VTEP are punted).
    #[inline]
    fn check_outer_ip(&mut self, f: &[u8], i: usize) -> Result<usize, Verdict> {
        let topo = self.topo;
        let (Some(host), Some(port)) = (topo.host, topo.port(self.input)) else {
            return Err(Verdict::Drop(DropReason::NoFabric));
        };
        let Some(h) = f.first_chunk::<ETH_LEN>() else {
            return Err(Verdict::Drop(DropReason::FrameTruncated));
        };
        self.trace(i, || TraceEvent::ethernet(f));
        let eth = EthernetFrame::new_unchecked(h);
        let (dst, _) = eth.addrs_u64();
        let ethertype = eth.outer_ethertype();
        let for_us = dst == port.mac.to_u64();
        if ethertype == EtherType::ARP && (for_us || local::is_multicast_mac(dst)) {
            return Err(Verdict::Punt(PuntReason::Arp));
        }
        if !for_us {
            return Err(Verdict::Drop(DropReason::FabricNotForUs));
        }
        match ethertype {
            EtherType::IPV4 => {}
            EtherType::VLAN => return Err(Verdict::Drop(DropReason::VlanTagged)),
            _ => return Err(Verdict::Drop(DropReason::UnsupportedEthertype)),
        }
        // The plain header first; anything else goes to the check that names what is wrong.
        let total_len = match local::check_ipv4_fast(f) {
            Some(len) => len,
            None => check_ipv4(&f[ETH_LEN..]).map_err(Verdict::Drop)?,
        };
        let outer = Ipv4Packet::new_unchecked(&f[ETH_LEN..ETH_LEN + total_len]);
        self.trace(i, || TraceEvent::ipv4(outer.into_inner()));
        if outer.dst_addr_u32() != host.vtep {
            return Err(Verdict::Drop(DropReason::FabricNotForUs));
        }
        if outer.is_fragment() {
            return Err(Verdict::Drop(DropReason::FabricFragment));
        }
        match outer.protocol() {
            IpProtocol::Udp => Ok(total_len),
            IpProtocol::Icmp => Err(Verdict::Punt(PuntReason::LocalDelivery)),
            _ => Err(Verdict::Drop(DropReason::FabricNotVxlan)),
        }
    }

    /// The outer UDP and VXLAN headers and the inner Ethernet header of a frame whose outer
    /// IPv4 datagram is `total_len` bytes: from a known peer, with a known VNI. True beside the
    /// decapsulation when the peer routed the frame (its inner source is the peer's DVR MAC).
    #[inline]
    fn check_vxlan(
        &mut self,
        f: &[u8],
        total_len: usize,
        i: usize,
    ) -> Result<(Decap<'a>, bool), Verdict> {
        let topo = self.topo;
        let outer = Ipv4Packet::new_unchecked(&f[ETH_LEN..ETH_LEN + total_len]);
        let Ok(udp) = wire::UdpPacket::new_checked(outer.payload()) else {
            return Err(Verdict::Drop(DropReason::FabricNotVxlan));
        };
        if udp.dst_port() != vxlan::VXLAN_PORT {
            return Err(Verdict::Drop(DropReason::FabricNotVxlan));
        }
        let Some(peer) = topo.vtep_to_peer.get(u64::from(outer.src_addr_u32())) else {
            return Err(Verdict::Drop(DropReason::UnknownVtep));
        };
        let vni = match wire::VxlanPacket::new_checked(udp.payload()) {
            Ok(v) if v.has_vni() => v.vni(),
            _ => return Err(Verdict::Drop(DropReason::VxlanBadHeader)),
        };
        let Some(network) = topo.vni_to_network.get(u64::from(vni)) else {
            return Err(Verdict::Drop(DropReason::UnknownVni));
        };
        let outer_len = ETH_LEN + outer.header_len() + udp::HEADER_LEN + vxlan::VXLAN_HEADER_LEN;
        // The UDP length bounds the VXLAN payload (checked against the outer total length).
        let inner_len =
            usize::from(udp.len()).saturating_sub(udp::HEADER_LEN + vxlan::VXLAN_HEADER_LEN);
        if inner_len < ETH_LEN {
            return Err(Verdict::Drop(DropReason::FrameTruncated));
        }
        let Some(net) = topo.network(network) else {
            return Err(Verdict::Drop(DropReason::UnknownVni));
        };
        let inner = &f[outer_len..outer_len + inner_len];
        let (inner_dst, inner_src) = EthernetFrame::new_unchecked(inner).addrs_u64();
        let routed_by = topo.dvr_mac_to_peer.get(inner_src);
        self.trace(i, || TraceEvent::Decap {
            peer,
            vni,
            network,
            routed: routed_by.is_some(),
        });
        self.trace(i, || TraceEvent::ethernet(inner));
        let routed = match routed_by {
            Some(p) if p != peer => return Err(Verdict::Drop(DropReason::DvrMacMismatch)),
            Some(_) => true,
            None if topo.is_dvr_mac(inner_src) => {
                return Err(Verdict::Drop(DropReason::UnknownDvrMac))
            }
            None => false,
        };
        let decap = Decap {
            network,
            net,
            outer_len,
            inner_len,
            inner_dst,
        };
        Ok((decap, routed))
    }

    /// A frame a peer host routed already: restore the gateway MAC as its source and deliver it
    /// to the local instance. It is not routed again and nothing is learned from it.
    fn deliver_routed(&mut self, pkt: &mut PacketBuf<'_>, decap: &Decap<'_>, i: usize) -> Verdict {
        let Some(gw) = decap.net.iface.and_then(|g| self.topo.iface(g)) else {
            return Verdict::Drop(DropReason::NoInterface);
        };
        let Some(L2Location::Local(port)) = self.l2_lookup(decap.network, decap.inner_dst, i)
        else {
            return Verdict::Drop(DropReason::UnknownL2Destination);
        };
        pkt.strip(decap.outer_len);
        pkt.truncate(decap.inner_len);
        EthernetFrame::new_unchecked(pkt.frame_mut()).set_src_addr(gw.mac);
        self.trace(i, || TraceEvent::rewrite(pkt.frame()));
        self.counters.router(gw.router).delivered_from_fabric.inc();
        Verdict::Forward(port)
    }

    /// Encapsulates a frame (routed or bridged) for `peer` and sends it to the fabric.
    #[inline]
    pub(super) fn send_to_peer(
        &mut self,
        pkt: &mut PacketBuf<'_>,
        peer: PeerId,
        vni: u32,
        i: usize,
    ) -> Verdict {
        let topo = self.topo;
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
        let src_port = entropy_src_port(vxlan::flow_hash(pkt.frame()));
        let header = FabricHeader {
            dst_mac: underlay.state.mac_bytes(),
            src_mac: fabric.mac.0,
            src_vtep: host.vtep,
            dst_vtep: p.vtep,
            vni,
            src_port,
            ident: self.next_ident(),
        };
        if !encapsulate(pkt, &header) {
            return Verdict::Drop(DropReason::NoHeadroom);
        }
        self.trace(i, || TraceEvent::Encap {
            peer,
            vni,
            src_port,
        });
        Verdict::Forward(fabric_port)
    }
}

/// Prepends outer Ethernet, IPv4, UDP and VXLAN headers ([`FabricHeader::emit`]) to the frame.
/// False, with the frame unchanged, when the buffer lacks headroom.
#[inline]
pub fn encapsulate(pkt: &mut PacketBuf<'_>, h: &FabricHeader) -> bool {
    let inner_len = pkt.len();
    let ip_len = inner_len + VXLAN_ENCAP_OVERHEAD - ETH_LEN;
    if ip_len > usize::from(u16::MAX) || !pkt.prepend(VXLAN_ENCAP_OVERHEAD) {
        return false;
    }
    let Some(outer) = pkt.frame_mut().first_chunk_mut::<VXLAN_ENCAP_OVERHEAD>() else {
        return false;
    };
    h.emit(outer, inner_len);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{UdpPacket, VxlanPacket};

    #[test]
    fn encapsulation_builds_valid_outer_headers() {
        let mut buf = [0u8; 256];
        let inner: Vec<u8> = (0..60u8).collect();
        buf[128..188].copy_from_slice(&inner);
        let mut pkt = PacketBuf::new(&mut buf, 128, 60).unwrap();
        let h = FabricHeader {
            dst_mac: [2, 0, 0, 0, 0, 0x20],
            src_mac: [2, 0, 0, 0, 0, 0x10],
            src_vtep: u32::from_be_bytes([192, 0, 2, 10]),
            dst_vtep: u32::from_be_bytes([192, 0, 2, 20]),
            vni: 0x00ab_cdef,
            src_port: 50000,
            ident: 7,
        };
        assert!(encapsulate(&mut pkt, &h));
        assert_eq!(pkt.len(), 110);
        let f = pkt.frame();
        assert_eq!(&f[0..6], &h.dst_mac);
        assert_eq!(&f[6..12], &h.src_mac);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert!(ip.dont_frag());
        assert_eq!(ip.total_len(), 96);
        assert_eq!(ip.src_addr_u32(), h.src_vtep);
        assert_eq!(ip.dst_addr_u32(), h.dst_vtep);
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(
            (udp.src_port(), udp.dst_port(), udp.len(), udp.checksum()),
            (50000, 4789, 76, 0)
        );
        let vx = VxlanPacket::new_checked(udp.payload()).unwrap();
        assert!(vx.has_vni());
        assert_eq!(vx.vni(), 0x00ab_cdef);
        assert_eq!(&udp.payload()[8..], &inner[..]);
    }

    #[test]
    fn encapsulation_needs_headroom() {
        let mut buf = [0u8; 128];
        let mut pkt = PacketBuf::new(&mut buf, 49, 60).unwrap();
        let h = FabricHeader {
            dst_mac: [0; 6],
            src_mac: [0; 6],
            src_vtep: 0,
            dst_vtep: 0,
            vni: 1,
            src_port: 0,
            ident: 0,
        };
        assert!(!encapsulate(&mut pkt, &h));
        assert_eq!((pkt.head(), pkt.len()), (49, 60));
    }
}
