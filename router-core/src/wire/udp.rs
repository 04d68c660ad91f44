//! UDP datagrams (RFC 768) over IPv4.

use std::net::Ipv4Addr;

use super::checksum;
use super::ipv4::IpProtocol;
use super::{check_claimed, check_holds, read_u16, write_u16, Error, Result};

/// Byte offsets of the fields (RFC 768 "Format"); each constant is the offset of the field's
/// first byte.
pub mod field {
    /// Source port, 2 bytes.
    pub const SRC_PORT: usize = 0;
    /// Destination port, 2 bytes.
    pub const DST_PORT: usize = 2;
    /// Length of header and data in bytes, 2 bytes.
    pub const LENGTH: usize = 4;
    /// Checksum over pseudo-header, header and data; zero means "none" over IPv4, 2 bytes.
    pub const CHECKSUM: usize = 6;
    /// Data.
    pub const PAYLOAD: usize = 8;
}

/// The length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// The largest payload the 16-bit length field can describe.
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize - HEADER_LEN;

view! {
    /// A view of a UDP datagram.
    ///
    /// After [`check_len`](Self::check_len) has succeeded no method panics (`set_len` excepted:
    /// it voids the check).
    pub struct UdpPacket;
}

fields! {
    UdpPacket {
        /// The source port.
        src_port / set_src_port: u16 = field::SRC_PORT;
        /// The destination port.
        dst_port / set_dst_port: u16 = field::DST_PORT;
        /// The checksum field (zero: none was computed).
        checksum / set_checksum: u16 = field::CHECKSUM;
    }
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Checks that the buffer holds the header ([`Error::Truncated`]), that the length field
    /// covers at least the header ([`Error::BadTotalLength`], RFC 768: "the minimum value of
    /// the length is eight"), and that the buffer holds the length ([`Error::Truncated`]). A
    /// longer buffer is fine: the payload is bounded by the length field.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        check_holds(b, HEADER_LEN)?;
        check_claimed(
            b,
            usize::from(self.len()),
            HEADER_LEN,
            Error::BadTotalLength,
        )
    }

    /// The length field: header and payload, in bytes.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a datagram is never empty: its header is there
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The payload, from the header to the length field's end.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..usize::from(self.len())]
    }

    /// The checksum this datagram should carry, computed over the IPv4 pseudo-header, header
    /// and payload with the checksum field taken as zero (RFC 768); a result of zero is
    /// returned as `0xffff`, since zero on the wire means "no checksum".
    #[inline]
    pub fn compute_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let len = self.len();
        let b = &self.buffer.as_ref()[..usize::from(len)];
        let sum = checksum::combine(&[
            checksum::pseudo_header_v4(src, dst, IpProtocol::Udp, len),
            checksum::data(&b[..field::CHECKSUM]),
            checksum::data(&b[field::PAYLOAD..]),
        ]);
        match !sum {
            0 => 0xffff,
            c => c,
        }
    }

    /// Whether the checksum verifies for the given IPv4 addresses; a zero checksum field
    /// (none transmitted, RFC 768) verifies.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let len = self.len();
        if self.checksum() == 0 {
            return true;
        }
        let sum = checksum::combine(&[
            checksum::pseudo_header_v4(src, dst, IpProtocol::Udp, len),
            checksum::data(&self.buffer.as_ref()[..usize::from(len)]),
        ]);
        sum == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the length field. Voids the check.
    #[inline]
    pub fn set_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Computes the checksum (RFC 768) and stores it.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let sum = self.compute_checksum(src, dst);
        self.set_checksum(sum);
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[field::PAYLOAD..end]
    }
}

/// A UDP header, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Length of the payload in bytes (at most [`MAX_PAYLOAD_LEN`]).
    pub payload_len: usize,
}

impl UdpRepr {
    /// Parses a datagram carried from `src` to `dst`: checks it and verifies a non-zero
    /// checksum ([`Error::BadChecksum`]).
    pub fn parse<T: AsRef<[u8]>>(
        packet: &UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<Self> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        Ok(Self {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// The length of the header: 8.
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The length of the datagram: header and payload.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header at the start of `packet` with a zero checksum ("none", as RFC 7348
    /// section 5 recommends for VXLAN). For a checksum, write the payload and then call
    /// [`UdpPacket::fill_checksum`].
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than 8 bytes or `payload_len` exceeds [`MAX_PAYLOAD_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut UdpPacket<T>) {
        let len = u16::try_from(self.buffer_len()).expect("UDP payload_len too large");
        let b = &mut packet.buffer.as_mut()[..HEADER_LEN];
        write_u16(b, field::SRC_PORT, self.src_port);
        write_u16(b, field::DST_PORT, self.dst_port);
        write_u16(b, field::LENGTH, len);
        write_u16(b, field::CHECKSUM, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{UDP_DNS_FRAME, VLAN_UDP_FRAME, VXLAN_FRAME};
    use super::super::ipv4::Ipv4Packet;
    use super::*;
    use proptest::prelude::*;

    const VM1: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);
    const RESOLVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);

    /// Calls every getter; used to show that none panics after a successful check.
    fn read_everything<T: AsRef<[u8]>>(p: &UdpPacket<T>) -> usize {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.checksum(),
            p.verify_checksum(VM1, RESOLVER),
        );
        let _ = p.compute_checksum(VM1, RESOLVER);
        p.payload().len() + usize::from(p.len())
    }

    #[test]
    fn parses_a_dns_query() {
        let p = UdpPacket::new_checked(&UDP_DNS_FRAME[34..]).unwrap();
        assert_eq!(p.src_port(), 53124);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 37);
        assert_eq!(p.checksum(), 0x5818);
        assert_eq!(&p.payload()[13..20], b"example");
        assert_eq!(p.payload().len(), 29);
        assert!(p.verify_checksum(VM1, RESOLVER));
        assert!(!p.verify_checksum(VM1, Ipv4Addr::new(192, 0, 2, 54)));
        assert_eq!(p.compute_checksum(VM1, RESOLVER), 0x5818);
        assert_eq!(read_everything(&p), 29 + 37);
    }

    #[test]
    fn payload_stops_at_the_length_field() {
        // The IPv4 payload of the tagged fixture already excludes the Ethernet padding; the
        // raw buffer after the UDP header does not.
        let p = UdpPacket::new_checked(&VLAN_UDP_FRAME[38..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (40000, 5001, 14));
        assert_eq!(p.payload(), b"hello\n");
        assert!(p.verify_checksum(VM1, Ipv4Addr::new(10, 0, 2, 7)));
    }

    #[test]
    fn repr_round_trips_byte_exact() {
        for frame in [&UDP_DNS_FRAME[..], &VXLAN_FRAME[..]] {
            let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
            let p = UdpPacket::new_checked(ip.payload()).unwrap();
            let repr = UdpRepr::parse(&p, ip.src_addr(), ip.dst_addr()).unwrap();
            let mut out = vec![0u8; repr.buffer_len()];
            let mut q = UdpPacket::new_unchecked(&mut out[..]);
            repr.emit(&mut q);
            q.payload_mut().copy_from_slice(p.payload());
            if p.checksum() != 0 {
                q.fill_checksum(ip.src_addr(), ip.dst_addr());
            }
            assert_eq!(out[..], ip.payload()[..]);
        }
    }

    #[test]
    fn zero_checksum_means_none() {
        let p = UdpPacket::new_checked(&VXLAN_FRAME[34..]).unwrap();
        assert_eq!(p.checksum(), 0);
        assert!(p.verify_checksum(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn a_zero_sum_is_sent_as_all_ones() {
        // Two payload bytes chosen to bring the sum to 0xffff, whose complement is zero:
        // RFC 768 sends a computed zero as 0xffff, since zero means "no checksum".
        let mut bytes = [0u8; 10];
        UdpRepr {
            src_port: 1,
            dst_port: 2,
            payload_len: 2,
        }
        .emit(&mut UdpPacket::new_unchecked(&mut bytes[..]));
        let sum_without_payload = checksum::combine(&[
            checksum::pseudo_header_v4(VM1, RESOLVER, IpProtocol::Udp, 10),
            checksum::data(&bytes),
        ]);
        bytes[8..].copy_from_slice(&(!sum_without_payload).to_be_bytes());
        let mut p = UdpPacket::new_checked(&mut bytes[..]).unwrap();
        p.fill_checksum(VM1, RESOLVER);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(VM1, RESOLVER));
    }

    #[test]
    fn check_len_names_every_failure() {
        let udp = &UDP_DNS_FRAME[34..];
        assert_eq!(
            UdpPacket::new_checked(&udp[..7]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            UdpPacket::new_checked(&udp[..36]).err(),
            Some(Error::Truncated)
        );
        assert!(UdpPacket::new_checked(udp).is_ok());
        let mut bytes = UDP_DNS_FRAME;
        bytes[34 + field::LENGTH..34 + field::LENGTH + 2].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&bytes[34..]).err(),
            Some(Error::BadTotalLength)
        );

        let mut bytes = UDP_DNS_FRAME;
        bytes[70] ^= 1;
        let p = UdpPacket::new_checked(&bytes[34..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, VM1, RESOLVER), Err(Error::BadChecksum));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut bytes = bytes;
            if let Ok(p) = UdpPacket::new_checked(&bytes[..]) {
                read_everything(&p);
                let _ = UdpRepr::parse(&p, VM1, RESOLVER);
            }
            if let Ok(mut p) = UdpPacket::new_checked(&mut bytes[..]) {
                p.set_src_port(1);
                p.set_dst_port(2);
                let _ = p.payload_mut();
                p.fill_checksum(VM1, RESOLVER);
                prop_assert!(p.verify_checksum(VM1, RESOLVER));
            }
        }

        #[test]
        fn repr_emit_parse_round_trips(
            src_port in any::<u16>(),
            dst_port in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            with_checksum in any::<bool>(),
        ) {
            let repr = UdpRepr { src_port, dst_port, payload_len: payload.len() };
            let mut out = vec![0u8; repr.buffer_len()];
            let mut p = UdpPacket::new_unchecked(&mut out[..]);
            repr.emit(&mut p);
            p.payload_mut().copy_from_slice(&payload);
            if with_checksum {
                p.fill_checksum(VM1, RESOLVER);
                prop_assert_ne!(p.checksum(), 0);
            }
            let p = UdpPacket::new_checked(&out[..]).unwrap();
            prop_assert_eq!(UdpRepr::parse(&p, VM1, RESOLVER), Ok(repr));
            prop_assert_eq!(p.payload(), &payload[..]);
        }
    }
}
