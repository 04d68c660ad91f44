//! VXLAN encapsulation toward a peer host (RFC 7348).

use super::{PacketBuf, ETH_LEN, ORIGINATED_TTL};
use crate::wire;

/// The outer headers of a frame sent to a peer host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FabricHeader {
    /// The underlay next hop toward the peer's VTEP.
    pub dst_mac: [u8; 6],
    /// The fabric port's MAC.
    pub src_mac: [u8; 6],
    pub src_vtep: u32,
    pub dst_vtep: u32,
    pub vni: u32,
    /// Outer UDP source port: a hash of the inner flow, for ECMP and RSS entropy.
    pub src_port: u16,
    pub ident: u16,
}

const IP_LEN: usize = wire::ipv4::HEADER_LEN;
const UDP_LEN: usize = wire::udp::HEADER_LEN;
const VXLAN_LEN: usize = wire::vxlan::VXLAN_HEADER_LEN;
const OVERHEAD: usize = ETH_LEN + IP_LEN + UDP_LEN + VXLAN_LEN;
const _: () = assert!(OVERHEAD == wire::vxlan::VXLAN_ENCAP_OVERHEAD);

/// Prepends outer Ethernet, IPv4 (DF set: outer packets are never fragmented), UDP (checksum
/// zero, as RFC 7348 section 5 allows over IPv4) and VXLAN headers to the frame. False, with the
/// frame unchanged, when the buffer lacks headroom.
#[inline]
pub fn encapsulate(pkt: &mut PacketBuf<'_>, h: &FabricHeader) -> bool {
    let inner_len = pkt.len();
    if inner_len + OVERHEAD - ETH_LEN > usize::from(u16::MAX) || !pkt.prepend(OVERHEAD) {
        return false;
    }
    let Some(o) = pkt.frame_mut().first_chunk_mut::<OVERHEAD>() else {
        return false;
    };
    let ip_len = (IP_LEN + UDP_LEN + VXLAN_LEN + inner_len) as u16;
    let udp_len = (UDP_LEN + VXLAN_LEN + inner_len) as u16;
    // The IPv4 header checksum (RFC 1071) over the 16-bit words written below.
    let sum = 0x4500
        + u32::from(ip_len)
        + u32::from(h.ident)
        + 0x4000
        + u32::from(u16::from_be_bytes([ORIGINATED_TTL, 17]))
        + (h.src_vtep >> 16)
        + (h.src_vtep & 0xffff)
        + (h.dst_vtep >> 16)
        + (h.dst_vtep & 0xffff);
    let sum = (sum & 0xffff) + (sum >> 16);
    let checksum = !((sum & 0xffff) + (sum >> 16)) as u16;
    // A few word stores at fixed offsets rather than fifty byte stores.
    o[0..6].copy_from_slice(&h.dst_mac);
    o[6..12].copy_from_slice(&h.src_mac);
    o[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_word0 =
        (0x4500u64 << 48) | (u64::from(ip_len) << 32) | (u64::from(h.ident) << 16) | 0x4000;
    o[14..22].copy_from_slice(&ip_word0.to_be_bytes());
    let ip_word1 = (u32::from(ORIGINATED_TTL) << 24) | (17 << 16) | u32::from(checksum);
    o[22..26].copy_from_slice(&ip_word1.to_be_bytes());
    o[26..30].copy_from_slice(&h.src_vtep.to_be_bytes());
    o[30..34].copy_from_slice(&h.dst_vtep.to_be_bytes());
    let udp = (u64::from(h.src_port) << 48)
        | (u64::from(wire::vxlan::VXLAN_PORT) << 32)
        | (u64::from(udp_len) << 16);
    o[34..42].copy_from_slice(&udp.to_be_bytes());
    let vxlan = (u64::from(wire::vxlan::FLAG_VNI) << 56) | (u64::from(h.vni & 0x00ff_ffff) << 8);
    o[42..50].copy_from_slice(&vxlan.to_be_bytes());
    true
}

/// A hash of the inner flow of an Ethernet frame: addresses, protocol and, for TCP and UDP
/// first fragments, ports; the MACs for anything that is not IPv4. The same flow always hashes
/// the same, so its packets take one path and stay in order.
#[inline]
pub fn flow_hash(frame: &[u8]) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mix = |h: u64, v: u64| (h ^ v).wrapping_mul(K).rotate_left(29);
    if frame.len() >= ETH_LEN + IP_LEN && frame[12..14] == [0x08, 0x00] {
        let ip = &frame[ETH_LEN..];
        let addrs = u64::from_be_bytes([
            ip[12], ip[13], ip[14], ip[15], ip[16], ip[17], ip[18], ip[19],
        ]);
        let proto = ip[9];
        let mut h = mix(u64::from(proto), addrs);
        let ihl = usize::from(ip[0] & 0xf) * 4;
        let first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
        if (proto == 6 || proto == 17) && first_fragment && ip.len() >= ihl + 4 {
            let ports = u32::from_be_bytes([ip[ihl], ip[ihl + 1], ip[ihl + 2], ip[ihl + 3]]);
            h = mix(h, u64::from(ports));
        }
        (h >> 32) as u32
    } else if frame.len() >= 12 {
        let m = &frame[..12];
        let a = u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]);
        let b = u64::from_be_bytes([0, 0, m[6], m[7], m[8], m[9], m[10], m[11]]);
        (mix(a, b) >> 32) as u32
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ipv4Packet, UdpPacket, VxlanPacket};

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

    #[test]
    fn flow_hash_depends_on_the_flow_only() {
        let mut a = [0u8; 64];
        a[12] = 0x08;
        a[14] = 0x45;
        a[23] = 6;
        a[26..30].copy_from_slice(&[10, 0, 1, 5]);
        a[30..34].copy_from_slice(&[10, 0, 2, 7]);
        a[34..38].copy_from_slice(&[0x30, 0x39, 0x00, 0x50]);
        let mut b = a;
        b[0] = 0xff; // MACs and TTL do not matter
        b[22] = 3;
        assert_eq!(flow_hash(&a), flow_hash(&b));
        b[35] = 0x3a; // another source port
        assert_ne!(flow_hash(&a), flow_hash(&b));
        assert_eq!(flow_hash(&[0u8; 4]), 0);
    }
}
