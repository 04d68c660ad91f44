//! 1:1 address translation of an IPv4 datagram in place (floating IPs): one address of the
//! header rewritten with every checksum that covers it, RFC 1624 incremental updates
//! throughout, so the cost does not depend on the packet's length.
//!
//! - The IPv4 header checksum.
//! - TCP and UDP: the pseudo-header covers the addresses, so their checksum changes too; a UDP
//!   checksum of 0 (none, RFC 768) stays 0. Only the first fragment carries the transport
//!   header; later fragments change in the IPv4 header only.
//! - ICMP echo: its checksum covers no address, nothing more to do.
//! - ICMP errors quote the datagram they are about, as its sender sent it (RFC 792). An error
//!   crossing the translation is about a datagram that crossed it the other way, so the quote is
//!   translated on the other side: an error to a floating IP (destination translated) quotes a
//!   datagram *from* the floating IP (source translated back), and the other way round. The
//!   quoted header's checksum and the quoted transport checksum, when the quote holds it, are
//!   updated, and the ICMP checksum, which covers the quote, with them.

use std::net::Ipv4Addr;

use super::checksum;
use super::ipv4::{self, IpProtocol, Ipv4Packet};

/// The address a translation rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

impl Side {
    fn offset(self) -> usize {
        match self {
            Side::Source => ipv4::field::SRC_ADDR,
            Side::Destination => ipv4::field::DST_ADDR,
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Source => Side::Destination,
            Side::Destination => Side::Source,
        }
    }
}

/// Offsets of the checksum in the TCP and UDP headers.
const TCP_CHECKSUM: usize = 16;
const UDP_CHECKSUM: usize = 6;
/// ICMP error types that quote a datagram (RFC 792): unreachable, source quench, redirect,
/// time exceeded, parameter problem.
const ICMP_ERRORS: [u8; 5] = [3, 4, 5, 11, 12];
/// The ICMP header before the quote.
const ICMP_HEADER: usize = 8;

/// Rewrites the `side` address of the datagram `ip` (a checked IPv4 header followed by its
/// payload, up to its total length) to `to`, with every checksum that covers it.
pub fn translate(ip: &mut [u8], side: Side, to: Ipv4Addr) {
    let Some(old) = rewrite_header(ip, side, to) else {
        return;
    };
    let packet = Ipv4Packet::new_unchecked(&*ip);
    if packet.frag_offset() != 0 {
        return;
    }
    let protocol = packet.protocol();
    let header_len = packet.header_len();
    let end = usize::from(packet.total_len()).min(ip.len());
    let Some(payload) = ip.get_mut(header_len..end) else {
        return;
    };
    match protocol {
        IpProtocol::Tcp => update_at(payload, TCP_CHECKSUM, old, to, false),
        IpProtocol::Udp => update_at(payload, UDP_CHECKSUM, old, to, true),
        IpProtocol::Icmp => translate_icmp_error(payload, side.other(), old, to),
        _ => {}
    }
}

/// Rewrites the `side` address of the datagram quoted by the ICMP error `ip` to `to`, leaving
/// the error's own header as it is: for an error built about a datagram after it was
/// translated, so that it quotes the datagram as its sender sent it.
pub fn translate_quote(ip: &mut [u8], side: Side, to: Ipv4Addr) {
    if ip.len() < ipv4::HEADER_LEN {
        return;
    }
    let packet = Ipv4Packet::new_unchecked(&*ip);
    if packet.protocol() != IpProtocol::Icmp || packet.frag_offset() != 0 {
        return;
    }
    let header_len = packet.header_len();
    let end = usize::from(packet.total_len()).min(ip.len());
    let Some(icmp) = ip.get_mut(header_len..end) else {
        return;
    };
    let Some(old) = icmp
        .get(ICMP_HEADER..)
        .filter(|q| q.len() >= ipv4::HEADER_LEN)
    else {
        return;
    };
    let old = Ipv4Addr::from(read_u32(old, side.offset()));
    translate_icmp_error(icmp, side, old, to);
}

/// Rewrites the address of a header, returning the old one; `None` when `ip` is too short.
fn rewrite_header(ip: &mut [u8], side: Side, to: Ipv4Addr) -> Option<Ipv4Addr> {
    if ip.len() < ipv4::HEADER_LEN {
        return None;
    }
    let at = side.offset();
    let old = Ipv4Addr::from(read_u32(ip, at));
    let mut p = Ipv4Packet::new_unchecked(&mut *ip);
    match side {
        Side::Source => p.rewrite_src_addr(to),
        Side::Destination => p.rewrite_dst_addr(to),
    }
    Some(old)
}

/// Updates the checksum at `at` of a transport header for an address in its pseudo-header
/// going from `old` to `new`, if the bytes hold it. `zero_is_none`: UDP, where 0 means no
/// checksum and a computed 0 is sent as 0xffff.
fn update_at(l4: &mut [u8], at: usize, old: Ipv4Addr, new: Ipv4Addr, zero_is_none: bool) {
    let Some(field) = l4.get_mut(at..at + 2) else {
        return;
    };
    let sum = u16::from_be_bytes([field[0], field[1]]);
    if zero_is_none && sum == 0 {
        return;
    }
    let mut updated = checksum::update_u32(sum, old.to_bits(), new.to_bits());
    if zero_is_none && updated == 0 {
        updated = 0xffff;
    }
    field.copy_from_slice(&updated.to_be_bytes());
}

/// An ICMP error's quote: the address `old` becomes `new` on `side` of the quoted datagram,
/// and the ICMP checksum follows every word that changed.
fn translate_icmp_error(icmp: &mut [u8], side: Side, old: Ipv4Addr, new: Ipv4Addr) {
    if icmp.len() < ICMP_HEADER + ipv4::HEADER_LEN || !ICMP_ERRORS.contains(&icmp[0]) {
        return;
    }
    let (header, quote) = icmp.split_at_mut(ICMP_HEADER);
    let at = side.offset();
    if read_u32(quote, at) != old.to_bits() {
        return;
    }
    let before = checksum::data(quote);
    translate_quoted_datagram(quote, side, new);
    let after = checksum::data(quote);
    let sum = u16::from_be_bytes([header[2], header[3]]);
    // The quote changed from summing `before` to summing `after` (RFC 1624 eqn. 3 over it).
    let updated = !checksum::fold(u64::from(!sum) + u64::from(!before) + u64::from(after));
    header[2..4].copy_from_slice(&updated.to_be_bytes());
}

/// A quoted datagram (possibly cut short after its transport header's first bytes).
fn translate_quoted_datagram(quote: &mut [u8], side: Side, to: Ipv4Addr) {
    let Some(old) = rewrite_header(quote, side, to) else {
        return;
    };
    let p = Ipv4Packet::new_unchecked(&*quote);
    let header_len = p.header_len();
    if p.frag_offset() != 0 || header_len < ipv4::HEADER_LEN {
        return;
    }
    let protocol = p.protocol();
    let Some(l4) = quote.get_mut(header_len..) else {
        return;
    };
    match protocol {
        IpProtocol::Tcp => update_at(l4, TCP_CHECKSUM, old, to, false),
        IpProtocol::Udp => update_at(l4, UDP_CHECKSUM, old, to, true),
        _ => {}
    }
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Icmpv4ErrorRepr, Icmpv4Message, Ipv4Repr, PacketBuf, UdpPacket};

    const FIXED: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);
    const FIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    /// An IPv4 datagram with `payload`, its transport checksum filled by `fill`.
    fn datagram(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
        let repr = Ipv4Repr {
            src,
            dst,
            protocol,
            payload_len: payload.len(),
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 7,
            dont_frag: true,
        };
        let mut b = vec![0u8; 20 + payload.len()];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]));
        b[20..].copy_from_slice(payload);
        b
    }

    fn l4_sum(b: &[u8], protocol: IpProtocol) -> u16 {
        let p = Ipv4Packet::new_unchecked(b);
        let l4 = &b[20..];
        let pseudo =
            checksum::pseudo_header_v4(p.src_addr(), p.dst_addr(), protocol, l4.len() as u16);
        checksum::combine(&[pseudo, checksum::data(l4)])
    }

    fn udp(src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
        let mut l4 = vec![0u8; 8 + data.len()];
        l4[0..2].copy_from_slice(&5000u16.to_be_bytes());
        l4[2..4].copy_from_slice(&53u16.to_be_bytes());
        let len = l4.len() as u16;
        l4[4..6].copy_from_slice(&len.to_be_bytes());
        l4[8..].copy_from_slice(data);
        let mut b = datagram(src, dst, IpProtocol::Udp, &l4);
        UdpPacket::new_unchecked(&mut b[20..]).fill_checksum(src, dst);
        b
    }

    fn tcp(src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
        let mut l4 = vec![0u8; 20 + data.len()];
        l4[12] = 5 << 4;
        l4[20..].copy_from_slice(data);
        let mut b = datagram(src, dst, IpProtocol::Tcp, &l4);
        let sum = !l4_sum(&b, IpProtocol::Tcp);
        b[20 + 16..20 + 18].copy_from_slice(&sum.to_be_bytes());
        b
    }

    #[test]
    fn tcp_and_udp_checksums_stay_valid() {
        for side in [Side::Source, Side::Destination] {
            for mut b in [udp(FIXED, OUTSIDE, b"hello"), tcp(FIXED, OUTSIDE, b"abc")] {
                let protocol = Ipv4Packet::new_unchecked(&b[..]).protocol();
                translate(&mut b, side, FIP);
                let p = Ipv4Packet::new_unchecked(&b[..]);
                assert!(p.verify_checksum());
                assert_eq!(l4_sum(&b, protocol), 0xffff, "{protocol} {side:?}");
                let moved = if side == Side::Source {
                    p.src_addr()
                } else {
                    p.dst_addr()
                };
                assert_eq!(moved, FIP);
            }
        }
    }

    #[test]
    fn udp_without_checksum_keeps_none() {
        let mut b = udp(FIXED, OUTSIDE, b"x");
        b[26..28].copy_from_slice(&[0, 0]);
        translate(&mut b, Side::Source, FIP);
        assert_eq!(&b[26..28], &[0, 0]);
        assert!(Ipv4Packet::new_unchecked(&b[..]).verify_checksum());
    }

    #[test]
    fn later_fragments_change_in_the_header_only() {
        let mut b = udp(FIXED, OUTSIDE, b"payload!");
        Ipv4Packet::new_unchecked(&mut b[..]).set_frag_offset(8);
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        let l4 = b[20..].to_vec();
        translate(&mut b, Side::Source, FIP);
        assert_eq!(&b[20..], &l4[..]);
        assert!(Ipv4Packet::new_unchecked(&b[..]).verify_checksum());
    }

    /// An ICMP error from `from` about `original`, as the engine builds it.
    fn icmp_error_about(original: &[u8], from: Ipv4Addr) -> Vec<u8> {
        let mut buf = vec![0u8; 256 + original.len()];
        let head = 128;
        buf[head..head + 14].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0]);
        buf[head + 14..head + 14 + original.len()].copy_from_slice(original);
        let mut pkt = PacketBuf::new(&mut buf, head, 14 + original.len()).unwrap();
        let repr = Icmpv4ErrorRepr {
            src_mac: crate::wire::EthernetAddress([2, 0, 0, 0, 0, 3]),
            src_ip: from,
            msg_type: Icmpv4Message::TimeExceeded,
            code: 0,
            next_hop_mtu: 0,
            ident: 1,
        };
        assert!(repr.emit_in_place(&mut pkt));
        pkt.frame()[14..].to_vec()
    }

    fn icmp_verifies(b: &[u8]) -> bool {
        let p = Ipv4Packet::new_unchecked(b);
        checksum::verify(&b[p.header_len()..usize::from(p.total_len())])
    }

    #[test]
    fn icmp_errors_have_their_quote_translated_the_other_way() {
        let hop = Ipv4Addr::new(203, 0, 113, 1);
        for original in [udp(FIP, OUTSIDE, b"probe"), tcp(FIP, OUTSIDE, b"syn")] {
            // The instance's datagram left with the floating IP as its source; the error
            // coming back to the floating IP reaches the instance quoting its fixed IP.
            let mut e = icmp_error_about(&original, hop);
            translate(&mut e, Side::Destination, FIXED);
            let p = Ipv4Packet::new_unchecked(&e[..]);
            assert!(p.verify_checksum());
            assert_eq!(p.dst_addr(), FIXED);
            assert!(icmp_verifies(&e));
            let quote = &e[28..];
            let q = Ipv4Packet::new_unchecked(quote);
            assert_eq!(q.src_addr(), FIXED);
            assert_eq!(q.dst_addr(), OUTSIDE);
            assert!(q.verify_checksum());
        }
        // An error the instance sends about a datagram it received on its floating IP.
        let original = udp(OUTSIDE, FIXED, b"trace");
        let mut e = icmp_error_about(&original, FIXED);
        translate(&mut e, Side::Source, FIP);
        assert!(icmp_verifies(&e));
        let q = Ipv4Packet::new_unchecked(&e[28..]);
        assert_eq!(q.dst_addr(), FIP);
        assert!(q.verify_checksum());
    }

    #[test]
    fn echo_keeps_its_checksum() {
        let mut icmp = vec![8u8, 0, 0, 0, 0, 1, 0, 1, b'p', b'i'];
        let sum = checksum::compute(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut b = datagram(FIXED, OUTSIDE, IpProtocol::Icmp, &icmp);
        translate(&mut b, Side::Source, FIP);
        assert_eq!(&b[20..], &icmp[..]);
        assert!(Ipv4Packet::new_unchecked(&b[..]).verify_checksum());
    }

    #[test]
    fn short_input_never_panics() {
        for len in 0..40 {
            let mut b = udp(FIXED, OUTSIDE, b"0123456789abcdef");
            b.truncate(len);
            translate(&mut b, Side::Destination, FIP);
        }
    }
}
