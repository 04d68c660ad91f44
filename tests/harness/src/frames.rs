//! Building frames to inject and taking captured frames apart, with the `router_core::wire`
//! views and reprs (the same code the router uses; the tests check values, not the views).

use std::net::Ipv4Addr;

use router_core::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv4Message, Icmpv4Packet,
    Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr, VxlanPacket, VxlanRepr,
};

use crate::pcap::PcapRecord;

/// An Ethernet address (`fa:16:3e:00:01:01`).
pub type Mac = EthernetAddress;

/// Parses `aa:bb:cc:dd:ee:ff`; panics on a typo in the test.
pub fn mac(text: &str) -> Mac {
    text.parse().unwrap_or_else(|e| panic!("`{text}`: {e}"))
}

/// An Ethernet frame: header and `payload` (no padding, no FCS).
pub fn ethernet(dst: Mac, src: Mac, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let repr = EthernetRepr {
        src,
        dst,
        ethertype,
        vlan: None,
    };
    let mut buf = vec![0u8; repr.header_len() + payload.len()];
    repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    buf[repr.header_len()..].copy_from_slice(payload);
    buf
}

/// The fields of an IPv4 header the tests vary; the rest is fixed (no options, DSCP 0).
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Fields {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: IpProtocol,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Ipv4Fields {
    /// TTL 64, ident 0x4242, DF clear.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol) -> Self {
        Ipv4Fields {
            src,
            dst,
            protocol,
            ttl: 64,
            ident: 0x4242,
            dont_frag: false,
        }
    }
}

/// An IPv4 datagram: a 20-byte header with a correct checksum, and `payload`.
pub fn ipv4(f: Ipv4Fields, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr {
        src: f.src,
        dst: f.dst,
        protocol: f.protocol,
        payload_len: payload.len(),
        ttl: f.ttl,
        dscp: 0,
        ecn: 0,
        ident: f.ident,
        dont_frag: f.dont_frag,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
    buf[repr.header_len()..].copy_from_slice(payload);
    buf
}

/// An ICMP echo request with `data_len` bytes of data (0, 1, 2... mod 256) and a correct
/// checksum.
pub fn icmp_echo_request(ident: u16, seq_no: u16, data_len: usize) -> Vec<u8> {
    let repr = Icmpv4Repr::EchoRequest {
        ident,
        seq_no,
        data_len,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    for (i, b) in buf[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
    buf
}

/// A UDP datagram with a correct checksum over the pseudo-header of `src`/`dst`.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let repr = UdpRepr {
        src_port,
        dst_port,
        payload_len: payload.len(),
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    buf[repr.header_len()..].copy_from_slice(payload);
    let mut packet = UdpPacket::new_unchecked(&mut buf[..]);
    repr.emit(&mut packet);
    packet.fill_checksum(src, dst);
    buf
}

/// A whole echo request frame: Ethernet, IPv4 (fields `ip`), ICMP echo (ident = `ip.ident`,
/// sequence `seq_no`, 56 bytes of data like ping's default).
pub fn echo_request_frame(dst: Mac, src: Mac, ip: Ipv4Fields, seq_no: u16) -> Vec<u8> {
    let icmp = icmp_echo_request(ip.ident, seq_no, 56);
    let ip = ipv4(
        Ipv4Fields {
            protocol: IpProtocol::Icmp,
            ..ip
        },
        &icmp,
    );
    ethernet(dst, src, EtherType::IPV4, &ip)
}

/// The Ethernet view of a captured frame.
pub fn ethernet_of(frame: &[u8]) -> Option<EthernetFrame<&[u8]>> {
    EthernetFrame::new_checked(frame).ok()
}

/// The IPv4 packet of an untagged IPv4 frame.
pub fn ipv4_of(frame: &[u8]) -> Option<Ipv4Packet<&[u8]>> {
    let eth = ethernet_of(frame)?;
    if eth.ethertype() != EtherType::IPV4 || eth.is_tagged() {
        return None;
    }
    let header_len = eth.header_len();
    Ipv4Packet::new_checked(&frame[header_len..]).ok()
}

/// The protocol and the byte range of the IPv4 payload of a frame (up to the total length:
/// Ethernet padding excluded).
fn ip_payload(frame: &[u8]) -> Option<(IpProtocol, bool, std::ops::Range<usize>)> {
    let eth_len = ethernet_of(frame)?.header_len();
    let ip = ipv4_of(frame)?;
    let range = eth_len + ip.header_len()..eth_len + usize::from(ip.total_len());
    Some((ip.protocol(), ip.is_fragment(), range))
}

/// The ICMP message of an IPv4 frame.
pub fn icmp_of(frame: &[u8]) -> Option<Icmpv4Packet<&[u8]>> {
    match ip_payload(frame)? {
        (IpProtocol::Icmp, false, range) => Icmpv4Packet::new_checked(&frame[range]).ok(),
        _ => None,
    }
}

/// The UDP datagram of an IPv4 frame (not a fragment).
pub fn udp_of(frame: &[u8]) -> Option<UdpPacket<&[u8]>> {
    match ip_payload(frame)? {
        (IpProtocol::Udp, false, range) => UdpPacket::new_checked(&frame[range]).ok(),
        _ => None,
    }
}

/// The VXLAN packet (header and inner frame) of a frame to UDP port 4789.
pub fn vxlan_of(frame: &[u8]) -> Option<VxlanPacket<&[u8]>> {
    let (IpProtocol::Udp, false, range) = ip_payload(frame)? else {
        return None;
    };
    let udp = UdpPacket::new_checked(&frame[range.clone()]).ok()?;
    if udp.dst_port() != router_core::wire::VXLAN_PORT {
        return None;
    }
    let start = range.start + router_core::wire::udp::HEADER_LEN;
    VxlanPacket::new_checked(&frame[start..range.start + usize::from(udp.len())]).ok()
}

/// Is `frame` an ICMP echo request (`reply` false) or reply (`reply` true) from `src` to
/// `dst`?
pub fn is_echo(frame: &[u8], reply: bool, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
    let want = if reply {
        Icmpv4Message::EchoReply
    } else {
        Icmpv4Message::EchoRequest
    };
    match (ipv4_of(frame), icmp_of(frame)) {
        (Some(ip), Some(icmp)) => {
            ip.src_addr() == src && ip.dst_addr() == dst && icmp.msg_type() == want
        }
        _ => false,
    }
}

/// A VXLAN frame as it crosses the fabric, taken apart: outer Ethernet, IPv4 and UDP, the
/// VNI, and the inner frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnelled {
    pub outer_src_mac: Mac,
    pub outer_dst_mac: Mac,
    pub src_vtep: Ipv4Addr,
    pub dst_vtep: Ipv4Addr,
    pub outer_ttl: u8,
    pub dont_frag: bool,
    /// The outer IPv4 header checksum is right.
    pub outer_checksum_ok: bool,
    pub src_port: u16,
    pub dst_port: u16,
    pub vni: u32,
    /// The inner Ethernet frame.
    pub inner: Vec<u8>,
}

impl Tunnelled {
    /// Takes apart a frame to UDP port 4789; `None` for anything else.
    pub fn parse(frame: &[u8]) -> Option<Tunnelled> {
        let eth = ethernet_of(frame)?;
        let ip = ipv4_of(frame)?;
        let udp = udp_of(frame)?;
        let vxlan = vxlan_of(frame)?;
        Some(Tunnelled {
            outer_src_mac: eth.src_addr(),
            outer_dst_mac: eth.dst_addr(),
            src_vtep: ip.src_addr(),
            dst_vtep: ip.dst_addr(),
            outer_ttl: ip.ttl(),
            dont_frag: ip.dont_frag(),
            outer_checksum_ok: ip.verify_checksum(),
            src_port: udp.src_port(),
            dst_port: udp.dst_port(),
            vni: vxlan.vni(),
            inner: vxlan.payload().to_vec(),
        })
    }

    /// The inner frame's source and destination MACs.
    pub fn inner_macs(&self) -> Option<(Mac, Mac)> {
        let eth = ethernet_of(&self.inner)?;
        Some((eth.src_addr(), eth.dst_addr()))
    }

    /// The VXLAN frames among captured frames, taken apart.
    pub fn all_in(frames: &[PcapRecord]) -> Vec<Tunnelled> {
        frames
            .iter()
            .filter_map(|r| Tunnelled::parse(&r.data))
            .collect()
    }

    /// One line per tunnelled frame (outer addresses, VNI, the inner frame's addresses), for
    /// failure messages.
    pub fn dump(tunnelled: &[Tunnelled]) -> String {
        tunnelled
            .iter()
            .map(|t| {
                format!(
                    "  {}:{} -> {}:{} vni {} | {}\n",
                    t.src_vtep,
                    t.src_port,
                    t.dst_vtep,
                    t.dst_port,
                    t.vni,
                    t.describe_inner()
                )
            })
            .collect()
    }

    fn describe_inner(&self) -> String {
        match (ethernet_of(&self.inner), ipv4_of(&self.inner)) {
            (Some(e), Some(ip)) => format!(
                "{} -> {} {} -> {} ttl {} len {}",
                e.src_addr(),
                e.dst_addr(),
                ip.src_addr(),
                ip.dst_addr(),
                ip.ttl(),
                ip.total_len()
            ),
            (Some(e), None) => format!("{} -> {} {}", e.src_addr(), e.dst_addr(), e.ethertype()),
            _ => format!("{} bytes", self.inner.len()),
        }
    }
}

/// A VXLAN frame from `src_vtep` to `dst_vtep` (UDP source port `src_port`, destination 4789,
/// outer DF set, TTL 64), carrying `inner` on `vni`, with outer MACs `src` -> `dst`.
pub fn vxlan_frame(
    dst: Mac,
    src: Mac,
    src_vtep: Ipv4Addr,
    dst_vtep: Ipv4Addr,
    src_port: u16,
    vni: u32,
    inner: &[u8],
) -> Vec<u8> {
    let repr = VxlanRepr { vni };
    let mut vxlan = vec![0u8; repr.header_len() + inner.len()];
    repr.emit(&mut VxlanPacket::new_unchecked(&mut vxlan[..]));
    vxlan[repr.header_len()..].copy_from_slice(inner);
    let udp = udp(
        src_vtep,
        dst_vtep,
        src_port,
        router_core::wire::VXLAN_PORT,
        &vxlan,
    );
    let ip = ipv4(
        Ipv4Fields {
            dont_frag: true,
            ..Ipv4Fields::new(src_vtep, dst_vtep, IpProtocol::Udp)
        },
        &udp,
    );
    ethernet(dst, src, EtherType::IPV4, &ip)
}

/// Hex, for failure messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
