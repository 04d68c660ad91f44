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

use router_core::wire::checksum;

/// Bytes of FCS counted in a frame size but absent from the mbuf.
pub const FCS_LEN: usize = 4;
/// Smallest frame size (RFC 2544, FCS included).
pub const FRAME_SIZE_MIN: u16 = 64;
/// Largest frame size for a 1500-byte MTU (FCS included).
pub const FRAME_SIZE_MAX: u16 = 1518;
/// RFC 2544 section 9.1 frame sizes.
pub const RFC2544_SIZES: [u16; 7] = [64, 128, 256, 512, 1024, 1280, 1518];

/// Byte offsets of the fields the generator writes or reads (untagged Ethernet, IPv4 without
/// options as sent; received frames are parsed with the IHL they carry).
pub mod field {
    /// Ethernet destination MAC.
    pub const ETH_DST: usize = 0;
    /// Ethernet source MAC.
    pub const ETH_SRC: usize = 6;
    /// EtherType.
    pub const ETH_TYPE: usize = 12;
    /// Start of the IPv4 header.
    pub const IP: usize = 14;
    /// IPv4 total length.
    pub const IP_TOTAL_LEN: usize = IP + 2;
    /// IPv4 protocol.
    pub const IP_PROTO: usize = IP + 9;
    /// IPv4 header checksum.
    pub const IP_CHECKSUM: usize = IP + 10;
    /// IPv4 source address.
    pub const IP_SRC: usize = IP + 12;
    /// IPv4 destination address.
    pub const IP_DST: usize = IP + 16;
    /// Start of the UDP header of a frame the generator built.
    pub const UDP: usize = IP + 20;
    /// UDP source port.
    pub const UDP_SRC: usize = UDP;
    /// UDP destination port.
    pub const UDP_DST: usize = UDP + 2;
    /// UDP length.
    pub const UDP_LEN: usize = UDP + 4;
    /// Start of the payload (the stamp) of a frame the generator built.
    pub const PAYLOAD: usize = UDP + 8;
}

/// Ethernet header length.
const ETH_LEN: usize = 14;
/// IPv4 header length without options.
const IPV4_LEN: usize = 20;
/// UDP header length.
const UDP_LEN: usize = 8;
/// VXLAN header length (RFC 7348).
const VXLAN_LEN: usize = 8;
/// The IANA port of VXLAN (RFC 7348 section 5).
pub const VXLAN_PORT: u16 = 4789;
/// EtherType IPv4.
const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType ARP.
const ETHERTYPE_ARP: u16 = 0x0806;
/// IP protocol UDP.
const PROTO_UDP: u8 = 17;
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
    match ethertype(frame) {
        Some(ETHERTYPE_IPV4) => match udp_payload(frame) {
            Some((VXLAN_PORT, payload)) => {
                let inner = payload.get(VXLAN_LEN..).unwrap_or_default();
                match (ethertype(inner), udp_payload(inner)) {
                    (Some(ETHERTYPE_IPV4), Some((_, inner_payload))) => {
                        Stamp::read(inner_payload).map_or(Received::Foreign, |stamp| {
                            Received::Test { stamp, vxlan: true }
                        })
                    }
                    _ => Received::Foreign,
                }
            }
            Some((_, payload)) => {
                Stamp::read(payload).map_or(Received::Foreign, |stamp| Received::Test {
                    stamp,
                    vxlan: false,
                })
            }
            None => Received::Foreign,
        },
        Some(ETHERTYPE_ARP) if is_arp_request(frame) => Received::ArpRequest,
        _ => Received::Foreign,
    }
}

#[inline(always)]
fn ethertype(frame: &[u8]) -> Option<u16> {
    let b = frame.get(field::ETH_TYPE..field::ETH_TYPE + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// The UDP destination port and payload of an Ethernet/IPv4/UDP frame (any IHL), or `None`.
#[inline(always)]
fn udp_payload(frame: &[u8]) -> Option<(u16, &[u8])> {
    let ip = frame.get(ETH_LEN..)?;
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if ihl < IPV4_LEN || *ip.get(9)? != PROTO_UDP {
        return None;
    }
    let udp = ip.get(ihl..)?;
    let port = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    Some((port, udp.get(UDP_LEN..)?))
}

/// ARP over Ethernet/IPv4 (RFC 826) offsets, from the start of the ARP packet.
mod arp {
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
    pub const LEN: usize = 28;
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
}

fn is_arp_request(frame: &[u8]) -> bool {
    let Some(a) = frame.get(ETH_LEN..ETH_LEN + arp::LEN) else {
        return false;
    };
    let fixed = [0x00, 0x01, 0x08, 0x00, 6, 4];
    a[..6] == fixed
        && u16::from_be_bytes([a[arp::OPER], a[arp::OPER + 1]]) == arp::REQUEST
        // A gratuitous ARP announces; it asks nobody.
        && a[arp::SPA..arp::SPA + 4] != a[arp::TPA..arp::TPA + 4]
}

/// Turns an ARP request in place into the reply of a host that owns every address, with
/// `mac`: the generator answers for whatever the device under test resolves (its underlay
/// next hop, dynamic neighbours). Returns false (frame untouched) if it is not a request.
pub fn arp_reply_in_place(frame: &mut [u8], mac: [u8; 6]) -> bool {
    if !is_arp_request(frame) {
        return false;
    }
    let (eth, rest) = frame.split_at_mut(ETH_LEN);
    let a = &mut rest[..arp::LEN];
    let mut requester_mac = [0u8; 6];
    requester_mac.copy_from_slice(&a[arp::SHA..arp::SHA + 6]);
    let mut requester_ip = [0u8; 4];
    requester_ip.copy_from_slice(&a[arp::SPA..arp::SPA + 4]);
    let mut asked_ip = [0u8; 4];
    asked_ip.copy_from_slice(&a[arp::TPA..arp::TPA + 4]);
    a[arp::OPER..arp::OPER + 2].copy_from_slice(&arp::REPLY.to_be_bytes());
    a[arp::SHA..arp::SHA + 6].copy_from_slice(&mac);
    a[arp::SPA..arp::SPA + 4].copy_from_slice(&asked_ip);
    a[arp::THA..arp::THA + 6].copy_from_slice(&requester_mac);
    a[arp::TPA..arp::TPA + 4].copy_from_slice(&requester_ip);
    eth[field::ETH_DST..field::ETH_DST + 6].copy_from_slice(&requester_mac);
    eth[field::ETH_SRC..field::ETH_SRC + 6].copy_from_slice(&mac);
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
        h[field::ETH_DST..field::ETH_DST + 6].copy_from_slice(&ends.dst_mac);
        h[field::ETH_SRC..field::ETH_SRC + 6].copy_from_slice(&ends.src_mac);
        h[field::ETH_TYPE..field::ETH_TYPE + 2].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip_len = u16::try_from(len - ETH_LEN).expect("frame sizes are at most 1518");
        h[field::IP] = 0x45;
        h[field::IP_TOTAL_LEN..field::IP_TOTAL_LEN + 2].copy_from_slice(&ip_len.to_be_bytes());
        // Don't Fragment: the encapsulated path must never fragment test traffic.
        h[field::IP + 6] = 0x40;
        h[field::IP + 8] = TTL;
        h[field::IP_PROTO] = PROTO_UDP;
        h[field::IP_SRC..field::IP_SRC + 4].copy_from_slice(&ends.src_ip.octets());
        let ip_checksum = checksum::compute(&h[field::IP..field::IP + IPV4_LEN]);
        h[field::IP_CHECKSUM..field::IP_CHECKSUM + 2].copy_from_slice(&ip_checksum.to_be_bytes());
        let udp_len = ip_len - IPV4_LEN as u16;
        h[field::UDP_DST..field::UDP_DST + 2].copy_from_slice(&ends.dst_port.to_be_bytes());
        h[field::UDP_LEN..field::UDP_LEN + 2].copy_from_slice(&udp_len.to_be_bytes());
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
        out[field::IP_DST..field::IP_DST + 4].copy_from_slice(&dst.to_be_bytes());
        let sum = checksum::update_u32(self.ip_checksum, 0, dst);
        out[field::IP_CHECKSUM..field::IP_CHECKSUM + 2].copy_from_slice(&sum.to_be_bytes());
        out[field::UDP_SRC..field::UDP_SRC + 2].copy_from_slice(&src_port.to_be_bytes());
        stamp.write(&mut out[field::PAYLOAD..]);
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use router_core::wire::{Ipv4Packet, UdpPacket};

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
        let inner = frame(64, 0x0a00_0208, &STAMP);
        let mut outer = vec![0u8; 50];
        outer[12..14].copy_from_slice(&[0x08, 0x00]);
        outer[14] = 0x45;
        outer[14 + 9] = 17;
        outer[34 + 2..34 + 4].copy_from_slice(&VXLAN_PORT.to_be_bytes());
        outer[42] = 0x08;
        outer.extend_from_slice(&inner);
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
