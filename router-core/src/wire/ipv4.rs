//! IPv4 headers (RFC 791), validated as a router must (RFC 1812 section 5.2.2).

use core::fmt;
use std::net::Ipv4Addr;

use super::{
    check_claimed, check_holds, checksum, read_u16, read_u32, write_u16, write_u32, Error, Result,
};

/// The protocol number of an IPv4 payload (RFC 791 section 3.1, "Protocol"; IANA registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpProtocol {
    /// Internet Control Message Protocol (RFC 792): 1.
    Icmp,
    /// Transmission Control Protocol (RFC 793): 6.
    Tcp,
    /// User Datagram Protocol (RFC 768): 17.
    Udp,
    /// Any other protocol number.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    #[inline]
    fn from(value: u8) -> Self {
        match value {
            1 => Self::Icmp,
            6 => Self::Tcp,
            17 => Self::Udp,
            other => Self::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    #[inline]
    fn from(value: IpProtocol) -> Self {
        match value {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(other) => other,
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Icmp => f.write_str("ICMP"),
            Self::Tcp => f.write_str("TCP"),
            Self::Udp => f.write_str("UDP"),
            Self::Unknown(other) => write!(f, "protocol {other}"),
        }
    }
}

/// Byte offsets of the fields (RFC 791 section 3.1); each constant is the offset of the
/// field's first byte.
pub mod field {
    /// Version (high 4 bits) and IHL, the header length in 32-bit words (low 4 bits), 1 byte.
    pub const VER_IHL: usize = 0;
    /// DSCP (high 6 bits, RFC 2474) and ECN (low 2 bits, RFC 3168), 1 byte.
    pub const DSCP_ECN: usize = 1;
    /// Total length of the datagram in bytes, header included, 2 bytes.
    pub const TOTAL_LEN: usize = 2;
    /// Identification, 2 bytes.
    pub const IDENT: usize = 4;
    /// Flags (reserved, DF, MF: high 3 bits) and fragment offset in 8-byte units (13 bits),
    /// 2 bytes.
    pub const FLAGS_FRAG_OFFSET: usize = 6;
    /// Time to live, 1 byte.
    pub const TTL: usize = 8;
    /// Protocol, 1 byte.
    pub const PROTOCOL: usize = 9;
    /// Header checksum, 2 bytes.
    pub const CHECKSUM: usize = 10;
    /// Source address, 4 bytes.
    pub const SRC_ADDR: usize = 12;
    /// Destination address, 4 bytes.
    pub const DST_ADDR: usize = 16;
    /// Options, from here to the header length.
    pub const OPTIONS: usize = 20;
}

/// The length of a header without options; the smallest legal header.
pub const HEADER_LEN: usize = 20;
/// The length of a header with the most options (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;
/// The largest payload behind a header without options (total length is 16 bits).
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize - HEADER_LEN;

/// The don't-fragment flag in the flags and fragment offset word.
pub const FLAG_DONT_FRAG: u16 = 0x4000;
/// The more-fragments flag in the flags and fragment offset word.
pub const FLAG_MORE_FRAGS: u16 = 0x2000;
/// The fragment offset (in 8-byte units) in the flags and fragment offset word.
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// The TTL of the packets the router originates (ICMP errors and replies, VXLAN outer
/// headers): the default RFC 1700 recommends.
pub const ORIGINATED_TTL: u8 = 64;

view! {
    /// A view of an IPv4 packet.
    ///
    /// After [`check_len`](Self::check_len) has succeeded no method panics (setters of the
    /// header length and total length excepted: they void the check).
    pub struct Ipv4Packet;
}

fields! {
    Ipv4Packet {
        /// The total length of the datagram in bytes, header included.
        total_len / set_total_len: u16 = field::TOTAL_LEN;
        /// The identification field.
        ident / set_ident: u16 = field::IDENT;
        /// The time to live.
        ttl / set_ttl: u8 = field::TTL;
        /// The protocol of the payload.
        protocol / set_protocol: IpProtocol = field::PROTOCOL;
        /// The header checksum field.
        checksum / set_checksum: u16 = field::CHECKSUM;
        /// The source address.
        src_addr / set_src_addr: Ipv4Addr = field::SRC_ADDR;
        /// The destination address.
        dst_addr / set_dst_addr: Ipv4Addr = field::DST_ADDR;
        /// The source address as a host-order `u32` (10.0.0.1 is `0x0a00_0001`).
        src_addr_u32 / set_src_addr_u32: u32 = field::SRC_ADDR;
        /// The destination address as a host-order `u32`, the LPM key.
        dst_addr_u32 / set_dst_addr_u32: u32 = field::DST_ADDR;
    }
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks the header against the buffer, in the order of RFC 1812 section 5.2.2:
    ///
    /// - the buffer holds the minimum header of 20 bytes, else [`Error::Truncated`];
    /// - the version is 4, else [`Error::BadVersion`];
    /// - the IHL is at least 5 (20 bytes), else [`Error::BadHeaderLength`];
    /// - the buffer holds the whole header, options included, else [`Error::Truncated`];
    /// - the total length is at least the header length, else [`Error::BadTotalLength`];
    /// - the buffer (the length the link layer reports) holds the total length, else
    ///   [`Error::Truncated`]. A longer buffer is fine: Ethernet pads short frames, and the
    ///   payload is bounded by the total length.
    ///
    /// The checksum, the last check of RFC 1812 section 5.2.2, is left to
    /// [`verify_checksum`](Self::verify_checksum) since NICs often verify it in hardware.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        check_holds(b, HEADER_LEN)?;
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = self.header_len();
        check_claimed(b, header_len, HEADER_LEN, Error::BadHeaderLength)?;
        let total_len = usize::from(self.total_len());
        check_claimed(b, total_len, header_len, Error::BadTotalLength)
    }

    /// The version field (4 after a successful check).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Whether the version is 4 and the header has no options (IHL 5): the common case, told
    /// by one byte compare.
    #[inline]
    pub fn is_plain_header(&self) -> bool {
        self.buffer.as_ref()[field::VER_IHL] == 0x45
    }

    /// The header length in bytes (IHL * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The differentiated services code point (RFC 2474), 6 bits.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// The explicit congestion notification bits (RFC 3168), 2 bits.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The flags and fragment offset word.
    #[inline]
    fn flags_frag_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAG_OFFSET)
    }

    /// The don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_frag_offset() & FLAG_DONT_FRAG != 0
    }

    /// The more-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_frag_offset() & FLAG_MORE_FRAGS != 0
    }

    /// The fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_frag_offset() & FRAG_OFFSET_MASK) << 3
    }

    /// Whether this is a whole datagram or its first fragment (offset zero): the only kind
    /// that carries the transport header, and the only kind an ICMP error may be sent for
    /// (RFC 1812 section 4.3.2.7).
    #[inline]
    pub fn is_first_fragment(&self) -> bool {
        self.flags_frag_offset() & FRAG_OFFSET_MASK == 0
    }

    /// Whether this is a fragment of a larger datagram: more fragments follow, or the offset
    /// is not zero.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag_offset() & (FLAG_MORE_FRAGS | FRAG_OFFSET_MASK) != 0
    }

    /// The options: the header bytes after the first 20 (empty without options).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    /// The header, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The payload, from the end of the header to the total length: bytes of the buffer past
    /// the total length (Ethernet padding) are not part of it.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    /// Whether the header checksum verifies (RFC 1812 section 5.2.2, RFC 1071).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.header())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version field.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes (a multiple of 4, from 20 to 60). Voids the check.
    #[inline]
    pub fn set_header_len(&mut self, value: usize) {
        debug_assert!(value % 4 == 0 && (HEADER_LEN..=MAX_HEADER_LEN).contains(&value));
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP (6 bits).
    #[inline]
    pub fn set_dscp(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (value << 2);
    }

    /// Sets the ECN bits (2 bits).
    #[inline]
    pub fn set_ecn(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & !0x03) | (value & 0x03);
    }

    #[inline]
    fn set_flags_frag_offset(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::FLAGS_FRAG_OFFSET, value);
    }

    /// Clears the flags (reserved, DF, MF) and keeps the fragment offset.
    #[inline]
    pub fn clear_flags(&mut self) {
        let word = self.flags_frag_offset() & FRAG_OFFSET_MASK;
        self.set_flags_frag_offset(word);
    }

    /// Sets the don't-fragment flag.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        let word = self.flags_frag_offset() & !FLAG_DONT_FRAG;
        self.set_flags_frag_offset(word | if value { FLAG_DONT_FRAG } else { 0 });
    }

    /// Sets the more-fragments flag.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let word = self.flags_frag_offset() & !FLAG_MORE_FRAGS;
        self.set_flags_frag_offset(word | if value { FLAG_MORE_FRAGS } else { 0 });
    }

    /// Sets the fragment offset in bytes (a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, value: u16) {
        let word = self.flags_frag_offset() & !FRAG_OFFSET_MASK;
        self.set_flags_frag_offset(word | (value >> 3));
    }

    /// Sets the source address and updates the header checksum incrementally (RFC 1624
    /// eqn. 3), as 1:1 NAT does. Transport checksums that cover the address through the
    /// pseudo-header are the caller's.
    #[inline]
    pub fn rewrite_src_addr(&mut self, value: Ipv4Addr) {
        self.rewrite_addr(field::SRC_ADDR, value);
    }

    /// Sets the destination address and updates the header checksum incrementally (RFC 1624
    /// eqn. 3), as 1:1 NAT does. Transport checksums are the caller's.
    #[inline]
    pub fn rewrite_dst_addr(&mut self, value: Ipv4Addr) {
        self.rewrite_addr(field::DST_ADDR, value);
    }

    /// Sets the address at offset `at` and updates the header checksum incrementally.
    #[inline]
    fn rewrite_addr(&mut self, at: usize, value: Ipv4Addr) {
        let b = self.buffer.as_mut();
        let old = read_u32(b, at);
        write_u32(b, at, value.to_bits());
        let sum = checksum::update_u32(self.checksum(), old, value.to_bits());
        self.set_checksum(sum);
    }

    /// Computes the header checksum (RFC 791 section 3.1, RFC 1071) and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::compute(self.header());
        self.set_checksum(sum);
    }

    /// Decrements the TTL by one and updates the checksum incrementally by RFC 1624 eqn. 3
    /// (`HC' = ~(~HC + ~m + m')`, with `m` the 16-bit word holding TTL and protocol), as a
    /// router does for every forwarded packet (RFC 1812 section 5.3.1). Returns the new TTL.
    ///
    /// The caller decides first whether the packet may be forwarded at all (a TTL of 1 or less
    /// earns a Time Exceeded, RFC 1812 section 5.3.1); a TTL of 0 is left as it is and 0 is
    /// returned. An incorrect checksum stays incorrect (by the same amount), never becomes
    /// correct.
    #[inline]
    pub fn decrement_ttl(&mut self) -> u8 {
        let b = self.buffer.as_mut();
        let ttl = b[field::TTL];
        if ttl == 0 {
            return 0;
        }
        let sum = checksum::ttl_decremented(read_u16(b, field::CHECKSUM));
        b[field::TTL] = ttl - 1;
        write_u16(b, field::CHECKSUM, sum);
        ttl - 1
    }

    /// The options, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }

    /// The payload (up to the total length), mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let end = usize::from(self.total_len());
        &mut self.buffer.as_mut()[start..end]
    }
}

/// An IPv4 header without options, owned: what the router emits for the packets it originates
/// (ICMP errors and replies, VXLAN outer headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Length of the payload in bytes (at most [`MAX_PAYLOAD_LEN`]).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP, 6 bits (RFC 2474).
    pub dscp: u8,
    /// ECN, 2 bits (RFC 3168).
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// The don't-fragment flag.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Parses a packet addressed to the router: checks it, verifies the checksum
    /// ([`Error::BadChecksum`], RFC 1812 section 5.2.2) and refuses fragments
    /// ([`Error::Unsupported`]: the router does not reassemble). Options are skipped.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Self> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        if packet.is_fragment() {
            return Err(Error::Unsupported);
        }
        Ok(Self {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// The length of the emitted header: 20 (no options).
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The length of the whole datagram: header and payload.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header at the start of `packet` and fills its checksum; the payload is the
    /// caller's.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than 20 bytes or `payload_len` exceeds [`MAX_PAYLOAD_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        let total_len = u16::try_from(self.buffer_len()).expect("IPv4 payload_len too large");
        debug_assert!(self.dscp < 64 && self.ecn < 4, "DSCP or ECN out of range");
        let b = &mut packet.buffer.as_mut()[..HEADER_LEN];
        b[field::VER_IHL] = 0x45;
        b[field::DSCP_ECN] = (self.dscp << 2) | (self.ecn & 0x03);
        write_u16(b, field::TOTAL_LEN, total_len);
        write_u16(b, field::IDENT, self.ident);
        let flags = if self.dont_frag { FLAG_DONT_FRAG } else { 0 };
        write_u16(b, field::FLAGS_FRAG_OFFSET, flags);
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol.into();
        write_u16(b, field::CHECKSUM, 0);
        write_u32(b, field::SRC_ADDR, self.src.to_bits());
        write_u32(b, field::DST_ADDR, self.dst.to_bits());
        let sum = checksum::compute(b);
        write_u16(b, field::CHECKSUM, sum);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ICMP_ECHO_FRAME, UDP_DNS_FRAME, VLAN_UDP_FRAME, VXLAN_FRAME};
    use super::*;
    use proptest::prelude::*;

    /// The IPv4 packet of the echo request fixture (after the 14-byte Ethernet header).
    fn echo() -> [u8; 84] {
        let mut p = [0u8; 84];
        p.copy_from_slice(&ICMP_ECHO_FRAME[14..]);
        p
    }

    /// Calls every getter; used to show that none panics after a successful check.
    fn read_everything<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> usize {
        let _ = (
            p.version(),
            p.dscp(),
            p.ecn(),
            p.ident(),
            p.dont_frag(),
            p.more_frags(),
        );
        let _ = (
            p.frag_offset(),
            p.is_first_fragment(),
            p.is_fragment(),
            p.ttl(),
            p.protocol(),
        );
        let _ = (
            p.checksum(),
            p.src_addr(),
            p.dst_addr(),
            p.src_addr_u32(),
            p.dst_addr_u32(),
        );
        let _ = p.verify_checksum();
        p.options().len() + p.header().len() + p.payload().len() + usize::from(p.total_len())
    }

    #[test]
    fn parses_an_echo_request() {
        let bytes = echo();
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!((p.dscp(), p.ecn()), (0, 0));
        assert_eq!(p.total_len(), 84);
        assert_eq!(p.ident(), 0x8f3a);
        assert!(p.dont_frag() && !p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(p.is_first_fragment() && !p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::Icmp);
        assert_eq!(p.checksum(), 0x9463);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 1, 5));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 2, 7));
        assert_eq!(p.src_addr_u32(), 0x0a00_0105);
        assert_eq!(p.dst_addr_u32(), 0x0a00_0207);
        assert!(p.options().is_empty());
        assert_eq!(p.header(), &bytes[..20]);
        assert_eq!(p.payload(), &bytes[20..]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn payload_stops_at_total_len_not_at_the_padding() {
        let p = Ipv4Packet::new_checked(&VLAN_UDP_FRAME[18..]).unwrap();
        assert_eq!(p.total_len(), 34);
        assert_eq!(VLAN_UDP_FRAME[18..].len(), 42);
        assert_eq!(p.protocol(), IpProtocol::Udp);
        assert_eq!(p.payload(), &VLAN_UDP_FRAME[38..52]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn parses_outer_and_inner_headers_of_a_vxlan_frame() {
        let outer = Ipv4Packet::new_checked(&VXLAN_FRAME[14..]).unwrap();
        assert_eq!(outer.src_addr(), Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(outer.dst_addr(), Ipv4Addr::new(192, 0, 2, 20));
        assert_eq!(
            (outer.protocol(), outer.ttl(), outer.ident()),
            (IpProtocol::Udp, 64, 0)
        );
        assert!(outer.verify_checksum() && outer.dont_frag());
        let inner = Ipv4Packet::new_checked(&VXLAN_FRAME[64..]).unwrap();
        assert_eq!(
            (inner.protocol(), inner.ttl(), inner.total_len()),
            (IpProtocol::Icmp, 63, 36)
        );
        assert!(inner.verify_checksum());
    }

    #[test]
    fn repr_round_trips_byte_exact() {
        let packets = [
            &ICMP_ECHO_FRAME[14..],
            &UDP_DNS_FRAME[14..],
            &VLAN_UDP_FRAME[18..],
            &VXLAN_FRAME[14..],
            &VXLAN_FRAME[64..],
        ];
        for packet in packets {
            let p = Ipv4Packet::new_checked(packet).unwrap();
            let repr = Ipv4Repr::parse(&p).unwrap();
            assert_eq!(repr.buffer_len(), usize::from(p.total_len()));
            let mut out = vec![0u8; repr.buffer_len()];
            let mut q = Ipv4Packet::new_unchecked(&mut out[..]);
            repr.emit(&mut q);
            q.payload_mut().copy_from_slice(p.payload());
            assert_eq!(&out[..], &packet[..repr.buffer_len()]);
        }
        let repr = Ipv4Repr::parse(&Ipv4Packet::new_checked(&echo()[..]).unwrap()).unwrap();
        assert_eq!(
            repr,
            Ipv4Repr {
                src: Ipv4Addr::new(10, 0, 1, 5),
                dst: Ipv4Addr::new(10, 0, 2, 7),
                protocol: IpProtocol::Icmp,
                payload_len: 64,
                ttl: 64,
                dscp: 0,
                ecn: 0,
                ident: 0x8f3a,
                dont_frag: true,
            }
        );
    }

    #[test]
    fn decrement_ttl_updates_the_checksum() {
        let mut bytes = echo();
        let mut p = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(p.decrement_ttl(), 63);
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        let incremental = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), incremental);
        // 0x9463 + 0x0100, as RFC 1141 would also have it.
        assert_eq!(incremental, 0x9563);

        p.set_ttl(1);
        p.fill_checksum();
        assert_eq!(p.decrement_ttl(), 0);
        assert!(p.verify_checksum());
        assert_eq!(p.decrement_ttl(), 0);
        assert_eq!(p.ttl(), 0);
        assert!(p.verify_checksum());
    }

    #[test]
    fn rewrite_addr_updates_the_checksum() {
        let mut bytes = echo();
        let mut p = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        p.rewrite_src_addr(Ipv4Addr::new(203, 0, 113, 9));
        p.rewrite_dst_addr(Ipv4Addr::new(198, 51, 100, 200));
        assert_eq!(p.src_addr(), Ipv4Addr::new(203, 0, 113, 9));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 51, 100, 200));
        assert!(p.verify_checksum());
    }

    #[test]
    fn setters_write_the_fields() {
        let mut bytes = echo();
        let mut p = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_dscp(46);
        p.set_ecn(3);
        p.set_ident(0xbeef);
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        p.set_protocol(IpProtocol::Unknown(99));
        p.set_src_addr(Ipv4Addr::new(1, 2, 3, 4));
        p.set_dst_addr(Ipv4Addr::new(5, 6, 7, 8));
        p.fill_checksum();
        assert_eq!((p.dscp(), p.ecn(), p.ident()), (46, 3, 0xbeef));
        assert!(!p.dont_frag() && p.more_frags() && p.is_fragment() && !p.is_first_fragment());
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!(p.protocol(), IpProtocol::Unknown(99));
        assert_eq!(p.src_addr_u32(), 0x0102_0304);
        assert_eq!(p.dst_addr(), Ipv4Addr::new(5, 6, 7, 8));
        assert!(p.verify_checksum());
        p.clear_flags();
        assert!(!p.more_frags() && !p.dont_frag() && p.frag_offset() == 1480);
        p.set_version(4);
        p.set_header_len(20);
        p.set_total_len(84);
        p.payload_mut()[0] = 0;
        assert_eq!(p.check_len(), Ok(()));
    }

    #[test]
    fn options_sit_between_header_and_payload() {
        // The echo request with a Router Alert option (RFC 2113): IHL 6.
        let original = echo();
        let mut bytes = [0u8; 88];
        bytes[..20].copy_from_slice(&original[..20]);
        bytes[20..24].copy_from_slice(&[0x94, 0x04, 0x00, 0x00]);
        bytes[24..].copy_from_slice(&original[20..]);
        let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
        p.set_header_len(24);
        p.set_total_len(88);
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload(), &original[20..]);
        assert!(p.verify_checksum());
        let repr = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(repr.payload_len, 64);
    }

    #[test]
    fn check_len_names_every_failure() {
        let good = echo();
        assert_eq!(
            Ipv4Packet::new_checked(&good[..19]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Ipv4Packet::new_checked(&[][..]).err(),
            Some(Error::Truncated)
        );

        let mut v6 = good;
        v6[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&v6[..]).err(),
            Some(Error::BadVersion)
        );

        let mut ihl4 = good;
        ihl4[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&ihl4[..]).err(),
            Some(Error::BadHeaderLength)
        );

        let mut ihl15 = good;
        ihl15[0] = 0x4f; // 60-byte header in a 40-byte buffer
        assert_eq!(
            Ipv4Packet::new_checked(&ihl15[..40]).err(),
            Some(Error::Truncated)
        );

        let mut short_total = good;
        short_total[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&short_total[..]).err(),
            Some(Error::BadTotalLength)
        );

        let mut long_total = good;
        long_total[2..4].copy_from_slice(&85u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&long_total[..]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Ipv4Packet::new_checked(&good[..83]).err(),
            Some(Error::Truncated)
        );

        let mut bad_sum = good;
        bad_sum[11] ^= 0x01;
        let p = Ipv4Packet::new_checked(&bad_sum[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p), Err(Error::BadChecksum));

        let mut fragment = good;
        let mut p = Ipv4Packet::new_checked(&mut fragment[..]).unwrap();
        p.set_more_frags(true);
        p.fill_checksum();
        assert_eq!(Ipv4Repr::parse(&p), Err(Error::Unsupported));
    }

    #[test]
    fn protocol_numbers() {
        for n in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(n)), n);
        }
        assert_eq!(IpProtocol::from(17), IpProtocol::Udp);
        assert_eq!(IpProtocol::Unknown(89).to_string(), "protocol 89");
    }

    /// A valid header of 20 to 60 bytes with arbitrary field values and a correct checksum,
    /// followed by its payload.
    fn arb_valid_packet() -> impl Strategy<Value = Vec<u8>> {
        (
            0usize..=10,
            proptest::collection::vec(any::<u8>(), 60 + 64),
            0usize..64,
        )
            .prop_map(|(option_words, random, payload_len)| {
                let header_len = HEADER_LEN + 4 * option_words;
                let mut bytes = random[..header_len + payload_len].to_vec();
                let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
                p.set_version(4);
                p.set_header_len(header_len);
                p.set_total_len((header_len + payload_len) as u16);
                p.fill_checksum();
                bytes
            })
    }

    fn arb_repr() -> impl Strategy<Value = Ipv4Repr> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            0usize..=MAX_PAYLOAD_LEN,
            any::<u8>(),
            (0u8..64, 0u8..4, any::<u16>(), any::<bool>()),
        )
            .prop_map(
                |(src, dst, protocol, payload_len, ttl, (dscp, ecn, ident, dont_frag))| Ipv4Repr {
                    src: Ipv4Addr::from(src),
                    dst: Ipv4Addr::from(dst),
                    protocol: IpProtocol::from(protocol),
                    payload_len,
                    ttl,
                    dscp,
                    ecn,
                    ident,
                    dont_frag,
                },
            )
    }

    proptest! {
        #[test]
        fn incremental_ttl_decrement_equals_a_full_recompute(bytes in arb_valid_packet()) {
            let mut bytes = bytes;
            let mut p = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
            prop_assert!(p.verify_checksum());
            let ttl = p.ttl();
            prop_assert_eq!(p.decrement_ttl(), ttl.saturating_sub(1));
            let incremental = p.checksum();
            p.fill_checksum();
            prop_assert_eq!(incremental, p.checksum());
        }

        #[test]
        fn incremental_addr_rewrite_equals_a_full_recompute(
            bytes in arb_valid_packet(),
            src in any::<u32>(),
            dst in any::<u32>(),
        ) {
            let mut bytes = bytes;
            let mut p = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
            p.rewrite_src_addr(Ipv4Addr::from_bits(src));
            p.rewrite_dst_addr(Ipv4Addr::from_bits(dst));
            let incremental = p.checksum();
            p.fill_checksum();
            prop_assert_eq!(incremental, p.checksum());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut bytes = bytes;
            if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
                prop_assert!(read_everything(&p) <= 4 * bytes.len());
                let _ = Ipv4Repr::parse(&p);
            }
            if let Ok(mut p) = Ipv4Packet::new_checked(&mut bytes[..]) {
                p.set_dscp(1);
                p.set_ecn(1);
                p.set_ident(1);
                p.set_dont_frag(true);
                p.set_more_frags(true);
                p.set_frag_offset(8);
                p.clear_flags();
                p.set_ttl(9);
                p.set_protocol(IpProtocol::Tcp);
                p.set_src_addr(Ipv4Addr::LOCALHOST);
                p.set_dst_addr(Ipv4Addr::BROADCAST);
                p.rewrite_src_addr(Ipv4Addr::UNSPECIFIED);
                p.rewrite_dst_addr(Ipv4Addr::LOCALHOST);
                p.decrement_ttl();
                p.fill_checksum();
                let _ = p.options_mut();
                let _ = p.payload_mut();
                prop_assert!(p.verify_checksum());
            }
        }

        #[test]
        fn valid_packets_are_accepted(bytes in arb_valid_packet()) {
            let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
            prop_assert!(read_everything(&p) > 0);
        }

        #[test]
        fn repr_emit_parse_round_trips(repr in arb_repr()) {
            let mut buffer = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buffer[..]));
            let p = Ipv4Packet::new_checked(&buffer[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Ipv4Repr::parse(&p), Ok(repr));
        }
    }
}
