//! The generator's frames: sizes, header templates, the stamp every payload carries, and the
//! receive-side parser that finds the stamp again (also inside a VXLAN encapsulation).
//!
//! A test frame is Ethernet II + IPv4 (20-byte header, DF set) + UDP (checksum 0, allowed over
//! IPv4 by RFC 768) + an 18-byte [`Stamp`] + padding. Frame sizes follow RFC 2544: they count
//! the 4-byte FCS, which virtual devices do not carry, so a 64-byte frame is a 60-byte mbuf and
//! a 1518-byte frame is a 1514-byte mbuf (an IPv4 packet of 1500 bytes, the usual MTU).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use router_core::wire::{
    checksum, udp, ArpOperation, ArpPacket, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr, VXLAN_HEADER_LEN,
};

/// Bytes of FCS counted in a frame size but absent from the mbuf.
pub const FCS_LEN: usize = 4;
/// Smallest frame size (RFC 2544, FCS included).
pub const FRAME_SIZE_MIN: u16 = 64;
/// Largest frame size for a 1500-byte MTU (FCS included).
pub const FRAME_SIZE_MAX: u16 = 1518;
/// RFC 2544 section 9.1 frame sizes.
pub const RFC2544_SIZES: [u16; 7] = [64, 128, 256, 512, 1024, 1280, 1518];

/// Where the headers of a frame the generator built start (untagged Ethernet, IPv4 without
/// options); received frames are parsed with the views of [`router_core::wire`].
pub mod field {
    use router_core::wire::{ethernet, ipv4, udp};

    /// Start of the IPv4 header.
    pub const IP: usize = ethernet::HEADER_LEN;
    /// Start of the UDP header.
    pub const UDP: usize = IP + ipv4::HEADER_LEN;
    /// Start of the payload (the stamp).
    pub const PAYLOAD: usize = UDP + udp::HEADER_LEN;
}

pub use router_core::wire::VXLAN_PORT;
/// TTL of generated packets.
pub const TTL: u8 = 64;
/// Bytes the generator writes into every frame (headers and stamp); the rest of a larger frame
/// is whatever the buffer held (its content is never looked at).
pub const HEADER_LEN: usize = field::PAYLOAD + Stamp::LEN;

const _: () = assert!(HEADER_LEN + FCS_LEN <= FRAME_SIZE_MIN as usize);

/// The 18 bytes at the start of every payload: who sent it, when, and in which order.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 2 | magic `0xd7b5` (little-endian) |
/// | 2 | 2 | trial number |
/// | 4 | 2 | flow number |
/// | 6 | 4 | sequence number in the flow |
/// | 10 | 8 | TSC of the packet's scheduled send time |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Which trial sent it (frames of an earlier trial still in flight are told apart).
    pub trial: u16,
    /// The flow (index into the generator's flow table).
    pub flow: u16,
    /// Sequence number within the flow, from 0.
    pub seq: u32,
    /// The TSC at which the open-loop schedule meant to send it.
    pub tsc: u64,
}

impl Stamp {
    /// Bytes a stamp takes.
    pub const LEN: usize = 18;
    /// Marks a payload as the generator's.
    pub const MAGIC: u16 = 0xd7b5;

    /// Writes the stamp into `out` (at least [`Stamp::LEN`] bytes).
    #[inline(always)]
    pub fn write(&self, out: &mut [u8]) {
        let out = &mut out[..Self::LEN];
        out[0..2].copy_from_slice(&Self::MAGIC.to_le_bytes());
        out[2..4].copy_from_slice(&self.trial.to_le_bytes());
        out[4..6].copy_from_slice(&self.flow.to_le_bytes());
        out[6..10].copy_from_slice(&self.seq.to_le_bytes());
        out[10..18].copy_from_slice(&self.tsc.to_le_bytes());
    }

    /// Reads a stamp from the start of `bytes`; `None` without the magic or when too short.
    #[inline(always)]
    pub fn read(bytes: &[u8]) -> Option<Stamp> {
        let b: &[u8; Self::LEN] = bytes.get(..Self::LEN)?.try_into().ok()?;
        if u16::from_le_bytes([b[0], b[1]]) != Self::MAGIC {
            return None;
        }
        Some(Stamp {
            trial: u16::from_le_bytes([b[2], b[3]]),
            flow: u16::from_le_bytes([b[4], b[5]]),
            seq: u32::from_le_bytes([b[6], b[7], b[8], b[9]]),
            tsc: u64::from_le_bytes([b[10], b[11], b[12], b[13], b[14], b[15], b[16], b[17]]),
        })
    }
}

/// What a received frame is, to the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// One of the generator's test frames; `vxlan` when it came encapsulated.
    Test { stamp: Stamp, vxlan: bool },
    /// An ARP request (the device under test resolving a neighbour or its underlay).
    ArpRequest,
    /// Anything else.
    Foreign,
}

/// Classifies a received frame and finds the stamp of a test frame, looking through one
/// VXLAN encapsulation (outer Ethernet/IPv4/UDP 4789/VXLAN, then the inner frame).
#[inline]
pub fn classify(frame: &[u8]) -> Received {
    if let Some(ip) = ipv4_payload(frame) {
        return match udp_payload(ip) {
            Some((VXLAN_PORT, payload)) => {
                let inner = payload.get(VXLAN_HEADER_LEN..).unwrap_or_default();
                match ipv4_payload(inner).and_then(udp_payload) {
                    Some((_, inner_payload)) => test_frame(inner_payload, true),
                    None => Received::Foreign,
                }
            }
            Some((_, payload)) => test_frame(payload, false),
            None => Received::Foreign,
        };
    }
    match EthernetFrame::new_checked(frame) {
        Ok(eth) if eth.outer_ethertype() == EtherType::ARP && is_arp_request(eth.payload()) => {
            Received::ArpRequest
        }
        _ => Received::Foreign,
    }
}

/// A test frame if `payload` starts with a stamp.
#[inline(always)]
fn test_frame(payload: &[u8], vxlan: bool) -> Received {
    Stamp::read(payload).map_or(Received::Foreign, |stamp| Received::Test { stamp, vxlan })
}

/// The UDP destination port and payload of an IPv4/UDP datagram (any IHL), or `None`.
#[inline(always)]
fn udp_payload(ip: &[u8]) -> Option<(u16, &[u8])> {
    let packet = Ipv4Packet::new_checked(ip).ok()?;
    if packet.protocol() != IpProtocol::Udp {
        return None;
    }
    let datagram = &ip[packet.header_len()..usize::from(packet.total_len())];
    let udp = UdpPacket::new_checked(datagram).ok()?;
    Some((
        udp.dst_port(),
        &datagram[udp::HEADER_LEN..usize::from(udp.len())],
    ))
}

/// The payload of an Ethernet frame that carries IPv4.
#[inline(always)]
fn ipv4_payload(frame: &[u8]) -> Option<&[u8]> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    (eth.outer_ethertype() == EtherType::IPV4).then(|| &frame[eth.header_len()..])
}

/// An ARP request over Ethernet/IPv4 (RFC 826) that asks for an address: a gratuitous ARP
/// announces and asks nobody.
fn is_arp_request(arp: &[u8]) -> bool {
    ArpPacket::new_checked(arp)
        .is_ok_and(|a| a.operation() == ArpOperation::Request && !a.is_gratuitous())
}

/// Turns an ARP request in place into the reply of a host that owns every address, with
/// `mac`: the generator answers for whatever the device under test resolves (its underlay
/// next hop, dynamic neighbours). Returns false (frame untouched) if it is not a request.
pub fn arp_reply_in_place(frame: &mut [u8], mac: [u8; 6]) -> bool {
    let Ok(mut eth) = EthernetFrame::new_checked(&mut frame[..]) else {
        return false;
    };
    if eth.outer_ethertype() != EtherType::ARP || !is_arp_request(eth.payload()) {
        return false;
    }
    let mut arp = ArpPacket::new_unchecked(eth.payload_mut());
    let requester = arp.sender_hw();
    arp.reply_in_place(EthernetAddress(mac));
    eth.set_dst_addr(requester);
    eth.set_src_addr(EthernetAddress(mac));
    true
}

/// The frame sizes of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameSize {
    /// Every frame has this size (FCS included), 64 to 1518.
    Fixed(u16),
    /// The simple IMIX: 64, 570 and 1518 bytes in the proportions 7:4:1.
    Imix,
}

/// One IMIX cycle of 12 frames in a fixed interleaved order (7 x 64, 4 x 570, 1 x 1518), so
/// that every window of 12 consecutive frames has the exact mix.
pub const IMIX_CYCLE: [u16; 12] = [64, 570, 64, 64, 570, 64, 1518, 64, 570, 64, 64, 570];

impl FrameSize {
    /// The sizes the generator cycles through, in order.
    pub fn cycle(&self) -> Vec<u16> {
        match self {
            FrameSize::Fixed(size) => vec![*size],
            FrameSize::Imix => IMIX_CYCLE.to_vec(),
        }
    }

    /// Mean frame size in bytes (FCS included).
    pub fn mean_bytes(&self) -> f64 {
        let cycle = self.cycle();
        cycle.iter().map(|&s| f64::from(s)).sum::<f64>() / cycle.len() as f64
    }

    /// Bits on an Ethernet wire per frame on average: the frame plus 20 bytes of preamble,
    /// start delimiter and inter-frame gap.
    pub fn mean_wire_bits(&self) -> f64 {
        (self.mean_bytes() + 20.0) * 8.0
    }
}

impl fmt::Display for FrameSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameSize::Fixed(size) => write!(f, "{size}"),
            FrameSize::Imix => f.write_str("imix"),
        }
    }
}

/// A frame size that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frame size `{0}`: expected `imix` or a number of bytes from 64 to 1518 (FCS included)")]
pub struct BadFrameSize(String);

impl FromStr for FrameSize {
    type Err = BadFrameSize;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(FrameSize::Imix);
        }
        match s.parse::<u16>() {
            Ok(size) if (FRAME_SIZE_MIN..=FRAME_SIZE_MAX).contains(&size) => {
                Ok(FrameSize::Fixed(size))
            }
            _ => Err(BadFrameSize(s.to_owned())),
        }
    }
}

/// Addresses of the frames one TX port sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// Ethernet source (usually the port's own MAC).
    pub src_mac: [u8; 6],
    /// Ethernet destination (the device under test's MAC, or its gateway MAC).
    pub dst_mac: [u8; 6],
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// UDP destination port (the source port varies per flow).
    pub dst_port: u16,
}

/// The first [`field::PAYLOAD`] bytes of a frame of one size, with the destination address
/// zero: per packet only the destination, its checksum update, the source port and the stamp
/// are written.
#[derive(Debug, Clone)]
pub struct Template {
    /// The mbuf length (frame size minus FCS).
    pub len: usize,
    /// The header bytes.
    pub header: [u8; field::PAYLOAD],
    /// The IPv4 header checksum with destination 0.0.0.0.
    pub ip_checksum: u16,
}

impl Template {
    /// The template of a `size`-byte frame (FCS included) between `ends`.
    pub fn new(size: u16, ends: &Endpoints) -> Template {
        let len = usize::from(size) - FCS_LEN;
        let mut h = [0u8; field::PAYLOAD];
        let eth = EthernetRepr {
            src: EthernetAddress(ends.src_mac),
            dst: EthernetAddress(ends.dst_mac),
            ethertype: EtherType::IPV4,
            vlan: None,
        };
        eth.emit(&mut EthernetFrame::new_unchecked(&mut h[..]));
        let ip = Ipv4Repr {
            src: ends.src_ip,
            dst: Ipv4Addr::UNSPECIFIED,
            protocol: IpProtocol::Udp,
            payload_len: len - field::UDP,
            ttl: TTL,
            dscp: 0,
            ecn: 0,
            ident: 0,
            // Don't Fragment: the encapsulated path must never fragment test traffic.
            dont_frag: true,
        };
        let mut ip_header = Ipv4Packet::new_unchecked(&mut h[field::IP..]);
        ip.emit(&mut ip_header);
        let ip_checksum = ip_header.checksum();
        let udp = UdpRepr {
            src_port: 0,
            dst_port: ends.dst_port,
            payload_len: len - field::PAYLOAD,
        };
        udp.emit(&mut UdpPacket::new_unchecked(&mut h[field::UDP..]));
        Template {
            len,
            header: h,
            ip_checksum,
        }
    }

    /// Writes a complete test frame's headers and stamp into `out` (at least
    /// [`HEADER_LEN`] bytes): destination `dst`, UDP source port `src_port`.
    #[inline(always)]
    pub fn write(&self, out: &mut [u8], dst: u32, src_port: u16, stamp: &Stamp) {
        let out = &mut out[..HEADER_LEN];
        out[..field::PAYLOAD].copy_from_slice(&self.header);
        let (headers, payload) = out.split_at_mut(field::PAYLOAD);
        let (ip, udp) = headers[field::IP..].split_at_mut(field::UDP - field::IP);
        let mut ip = Ipv4Packet::new_unchecked(ip);
        ip.set_dst_addr_u32(dst);
        ip.set_checksum(checksum::update_u32(self.ip_checksum, 0, dst));
        UdpPacket::new_unchecked(udp).set_src_port(src_port);
        stamp.write(payload);
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    s.parse::<EthernetAddress>().ok().map(<[u8; 6]>::from)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    EthernetAddress(mac).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use router_core::engine::encapsulate;
    use router_core::wire::{FabricHeader, PacketBuf};

    fn ends() -> Endpoints {
        Endpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [0xfa, 0x16, 0x3e, 0, 1, 1],
            src_ip: Ipv4Addr::new(10, 0, 1, 5),
            dst_port: 5001,
        }
    }

    fn frame(size: u16, dst: u32, stamp: &Stamp) -> Vec<u8> {
        let t = Template::new(size, &ends());
        let mut f = vec![0u8; t.len];
        t.write(&mut f, dst, 1234, stamp);
        f
    }

    const STAMP: Stamp = Stamp {
        trial: 3,
        flow: 65535,
        seq: 0xdead_beef,
        tsc: 0x0123_4567_89ab_cdef,
    };

    #[test]
    fn frames_are_valid_ipv4_udp_with_the_stamp() {
        for size in RFC2544_SIZES.into_iter().chain([570]) {
            let dst = u32::from(Ipv4Addr::new(198, 18, 1, 77));
            let f = frame(size, dst, &STAMP);
            assert_eq!(f.len() + FCS_LEN, usize::from(size));
            let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
            assert!(ip.verify_checksum(), "size {size}");
            assert_eq!(ip.dst_addr(), Ipv4Addr::new(198, 18, 1, 77));
            assert_eq!(usize::from(ip.total_len()), f.len() - 14);
            assert!(ip.dont_frag());
            let udp = UdpPacket::new_checked(ip.payload()).unwrap();
            assert_eq!(udp.src_port(), 1234);
            assert_eq!(udp.dst_port(), 5001);
            assert_eq!(usize::from(udp.len()), f.len() - 34);
            assert_eq!(
                classify(&f),
                Received::Test {
                    stamp: STAMP,
                    vxlan: false
                }
            );
        }
    }

    #[test]
    fn stamp_is_found_inside_vxlan() {
        // Encapsulated as the router sends it to a peer host.
        let inner = frame(64, 0x0a00_0208, &STAMP);
        let mut buf = vec![0u8; 50 + inner.len()];
        buf[50..].copy_from_slice(&inner);
        let mut pkt = PacketBuf::new(&mut buf, 50, inner.len()).unwrap();
        let header = FabricHeader {
            dst_mac: [2, 0, 0, 0, 0, 0x20],
            src_mac: [2, 0, 0, 0, 0, 0x10],
            src_vtep: 0xc000_020a,
            dst_vtep: 0xc000_0214,
            vni: 1002,
            src_port: 50000,
            ident: 1,
        };
        assert!(encapsulate(&mut pkt, &header));
        let outer = pkt.frame().to_vec();
        assert_eq!(
            classify(&outer),
            Received::Test {
                stamp: STAMP,
                vxlan: true
            }
        );
    }

    #[test]
    fn other_frames_are_foreign_and_never_panic() {
        let good = frame(64, 1, &STAMP);
        for cut in 0..good.len() {
            let _ = classify(&good[..cut]);
        }
        assert_eq!(classify(&good[..good.len() - 1]), Received::Foreign);
        let mut wrong_magic = good.clone();
        wrong_magic[field::PAYLOAD] ^= 1;
        assert_eq!(classify(&wrong_magic), Received::Foreign);
        assert_eq!(classify(&[0u8; 60]), Received::Foreign);
    }

    #[test]
    fn arp_requests_are_answered_for_any_address() {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0xf0, 0x0a]);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f[22..28].copy_from_slice(&[2, 0, 0, 0, 0xf0, 0x0a]);
        f[28..32].copy_from_slice(&[192, 0, 2, 10]);
        f[38..42].copy_from_slice(&[192, 0, 2, 20]);
        assert_eq!(classify(&f), Received::ArpRequest);
        let me = [2, 0, 0, 0, 0xbb, 1];
        assert!(arp_reply_in_place(&mut f, me));
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0xf0, 0x0a]);
        assert_eq!(&f[6..12], &me);
        assert_eq!(&f[20..22], &[0, 2]);
        assert_eq!(&f[22..28], &me);
        assert_eq!(&f[28..32], &[192, 0, 2, 20]);
        assert_eq!(&f[32..38], &[2, 0, 0, 0, 0xf0, 0x0a]);
        assert_eq!(&f[38..42], &[192, 0, 2, 10]);
        assert!(!arp_reply_in_place(&mut f, me), "a reply is not answered");
    }

    #[test]
    fn sizes_parse_and_imix_has_the_7_4_1_mix() {
        assert_eq!("64".parse::<FrameSize>().unwrap(), FrameSize::Fixed(64));
        assert_eq!("IMIX".parse::<FrameSize>().unwrap(), FrameSize::Imix);
        assert!("63".parse::<FrameSize>().is_err());
        assert!("1519".parse::<FrameSize>().is_err());
        let count = |s| IMIX_CYCLE.iter().filter(|&&x| x == s).count();
        assert_eq!((count(64), count(570), count(1518)), (7, 4, 1));
        let mean = FrameSize::Imix.mean_bytes();
        assert!((mean - (7.0 * 64.0 + 4.0 * 570.0 + 1518.0) / 12.0).abs() < 1e-9);
    }

    #[test]
    fn macs_round_trip() {
        let mac = parse_mac("fa:16:3e:00:01:0a").unwrap();
        assert_eq!(format_mac(mac), "fa:16:3e:00:01:0a");
        assert!(parse_mac("fa:16:3e:00:01").is_none());
        assert!(parse_mac("fa:16:3e:00:01:0a:00").is_none());
    }
}
