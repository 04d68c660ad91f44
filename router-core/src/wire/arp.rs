//! ARP packets (RFC 826) for IPv4 over Ethernet, the only kind this router resolves.

use std::net::Ipv4Addr;

use super::ethernet::{EtherType, EthernetAddress};
use super::{check_holds, read_u16, write_u16, write_u32, Error, Result};

/// The ARP opcode (RFC 826 "ar$op"; IANA ARP parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArpOperation {
    /// `ares_op$REQUEST`: 1.
    Request,
    /// `ares_op$REPLY`: 2.
    Reply,
    /// Any other opcode (RARP, InARP, ...).
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    #[inline]
    fn from(value: u16) -> Self {
        match value {
            1 => Self::Request,
            2 => Self::Reply,
            other => Self::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    #[inline]
    fn from(value: ArpOperation) -> Self {
        match value {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

/// Byte offsets of the fields for Ethernet/IPv4 (RFC 826 "packet format"); each constant is
/// the offset of the field's first byte.
pub mod field {
    /// Hardware address space (`ar$hrd`), 2 bytes: 1 for Ethernet.
    pub const HTYPE: usize = 0;
    /// Protocol address space (`ar$pro`), 2 bytes: an EtherType, 0x0800 for IPv4.
    pub const PTYPE: usize = 2;
    /// Hardware address length (`ar$hln`), 1 byte: 6.
    pub const HLEN: usize = 4;
    /// Protocol address length (`ar$pln`), 1 byte: 4.
    pub const PLEN: usize = 5;
    /// Opcode (`ar$op`), 2 bytes.
    pub const OPER: usize = 6;
    /// Sender hardware address (`ar$sha`), 6 bytes.
    pub const SHA: usize = 8;
    /// Sender protocol address (`ar$spa`), 4 bytes.
    pub const SPA: usize = 14;
    /// Target hardware address (`ar$tha`), 6 bytes.
    pub const THA: usize = 18;
    /// Target protocol address (`ar$tpa`), 4 bytes.
    pub const TPA: usize = 24;
}

/// The length of the fixed part (hardware type to opcode), which says how long the rest is.
pub const FIXED_LEN: usize = 8;
/// The length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// The hardware type of Ethernet (RFC 826, "ares_hrd$Ethernet").
pub const HARDWARE_ETHERNET: u16 = 1;

view! {
    /// A view of an ARP packet for IPv4 over Ethernet.
    ///
    /// After [`check_len`](Self::check_len) has succeeded no method panics.
    pub struct ArpPacket;
}

fields! {
    ArpPacket {
        /// The hardware address space (1 for Ethernet after a successful check).
        hardware_type / set_hardware_type: u16 = field::HTYPE;
        /// The protocol address space (IPv4 after a successful check).
        protocol_type / set_protocol_type: EtherType = field::PTYPE;
        /// The hardware address length (6 after a successful check).
        hw_len / set_hw_len: u8 = field::HLEN;
        /// The protocol address length (4 after a successful check).
        proto_len / set_proto_len: u8 = field::PLEN;
        /// The opcode.
        operation / set_operation: ArpOperation = field::OPER;
        /// The sender hardware address.
        sender_hw / set_sender_hw: EthernetAddress = field::SHA;
        /// The sender protocol address.
        sender_ip / set_sender_ip: Ipv4Addr = field::SPA;
        /// The sender protocol address as a host-order `u32`.
        sender_ip_u32 / set_sender_ip_u32: u32 = field::SPA;
        /// The target hardware address (zero, or ignored, in a request).
        target_hw / set_target_hw: EthernetAddress = field::THA;
        /// The target protocol address.
        target_ip / set_target_ip: Ipv4Addr = field::TPA;
        /// The target protocol address as a host-order `u32`.
        target_ip_u32 / set_target_ip_u32: u32 = field::TPA;
    }
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Checks that the buffer holds the fixed part ([`Error::Truncated`]), that the packet
    /// maps IPv4 onto Ethernet addresses (hardware type 1, protocol 0x0800, lengths 6 and 4;
    /// any other pair of address spaces is [`Error::Unsupported`], RFC 826 "packet
    /// reception"), and that the buffer holds the four addresses ([`Error::Truncated`]).
    /// Bytes after the 28 of the packet (Ethernet padding) are ignored.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        check_holds(b, FIXED_LEN)?;
        if read_u16(b, field::HTYPE) != HARDWARE_ETHERNET
            || read_u16(b, field::PTYPE) != EtherType::IPV4.0
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(Error::Unsupported);
        }
        check_holds(b, PACKET_LEN)
    }

    /// Whether this is a gratuitous ARP (an announcement, RFC 5227 section 3, or an update
    /// reply): the sender and target protocol addresses are the same.
    #[inline]
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip_u32() == self.target_ip_u32()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Turns a request into its reply in place, as RFC 826 "packet reception" says: the
    /// sender becomes the target, `hw` and the requested address become the sender, and the
    /// opcode becomes Reply. The caller has checked that the request asks for an address this
    /// router answers for; the Ethernet header is the caller's too.
    #[inline]
    pub fn reply_in_place(&mut self, hw: EthernetAddress) {
        let requester_hw = self.sender_hw();
        let requester_ip = self.sender_ip_u32();
        let requested_ip = self.target_ip_u32();
        let b = self.buffer.as_mut();
        write_u16(b, field::OPER, ArpOperation::Reply.into());
        b[field::THA..field::THA + 6].copy_from_slice(&requester_hw.0);
        write_u32(b, field::TPA, requester_ip);
        b[field::SHA..field::SHA + 6].copy_from_slice(&hw.0);
        write_u32(b, field::SPA, requested_ip);
    }
}

/// An Ethernet/IPv4 ARP packet, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Request or Reply.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub source_hw: EthernetAddress,
    /// Sender protocol address.
    pub source_ip: Ipv4Addr,
    /// Target hardware address (zero in a request).
    pub target_hw: EthernetAddress,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Parses a packet. Opcodes other than Request and Reply are [`Error::Unsupported`].
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<Self> {
        packet.check_len()?;
        let operation = packet.operation();
        if let ArpOperation::Unknown(_) = operation {
            return Err(Error::Unsupported);
        }
        Ok(Self {
            operation,
            source_hw: packet.sender_hw(),
            source_ip: packet.sender_ip(),
            target_hw: packet.target_hw(),
            target_ip: packet.target_ip(),
        })
    }

    /// A request for `target_ip` from `source_hw`/`source_ip`.
    #[inline]
    pub const fn request(
        source_hw: EthernetAddress,
        source_ip: Ipv4Addr,
        target_ip: Ipv4Addr,
    ) -> Self {
        Self {
            operation: ArpOperation::Request,
            source_hw,
            source_ip,
            target_hw: EthernetAddress::ZERO,
            target_ip,
        }
    }

    /// A gratuitous announcement that `ip` is at `hw` (RFC 5227 section 3: a request whose
    /// sender and target protocol addresses are both `ip`), as sent for a new floating IP.
    #[inline]
    pub const fn announcement(hw: EthernetAddress, ip: Ipv4Addr) -> Self {
        Self::request(hw, ip, ip)
    }

    /// The reply to this request, sent by `hw` which owns the requested address (RFC 826
    /// "packet reception").
    #[inline]
    pub const fn reply(&self, hw: EthernetAddress) -> Self {
        Self {
            operation: ArpOperation::Reply,
            source_hw: hw,
            source_ip: self.target_ip,
            target_hw: self.source_hw,
            target_ip: self.source_ip,
        }
    }

    /// Whether this is a gratuitous ARP: sender and target protocol addresses are the same.
    #[inline]
    pub fn is_gratuitous(&self) -> bool {
        self.source_ip == self.target_ip
    }

    /// The length of the emitted packet: 28.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet at the start of `packet`.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than 28 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        let b = &mut packet.buffer.as_mut()[..PACKET_LEN];
        write_u16(b, field::HTYPE, HARDWARE_ETHERNET);
        write_u16(b, field::PTYPE, EtherType::IPV4.0);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        write_u16(b, field::OPER, self.operation.into());
        b[field::SHA..field::SHA + 6].copy_from_slice(&self.source_hw.0);
        write_u32(b, field::SPA, self.source_ip.to_bits());
        b[field::THA..field::THA + 6].copy_from_slice(&self.target_hw.0);
        write_u32(b, field::TPA, self.target_ip.to_bits());
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::ARP_REQUEST_FRAME;
    use super::*;
    use proptest::prelude::*;

    const HOST: EthernetAddress = EthernetAddress::new(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
    const GW1: EthernetAddress = EthernetAddress::new(0xfa, 0x16, 0x3e, 0xaa, 0x00, 0x01);

    /// Calls every getter; used to show that none panics after a successful check.
    fn read_everything<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> u32 {
        let _ = (
            p.hardware_type(),
            p.protocol_type(),
            p.hw_len(),
            p.proto_len(),
            p.operation(),
        );
        let _ = (
            p.sender_hw(),
            p.sender_ip(),
            p.target_hw(),
            p.target_ip(),
            p.is_gratuitous(),
        );
        p.sender_ip_u32() ^ p.target_ip_u32()
    }

    #[test]
    fn parses_a_linux_request() {
        let p = ArpPacket::new_checked(&ARP_REQUEST_FRAME[14..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::IPV4);
        assert_eq!((p.hw_len(), p.proto_len()), (6, 4));
        assert_eq!(p.operation(), ArpOperation::Request);
        assert_eq!(p.sender_hw(), HOST);
        assert_eq!(p.sender_ip(), Ipv4Addr::new(10, 0, 1, 5));
        assert_eq!(p.sender_ip_u32(), 0x0a00_0105);
        assert_eq!(p.target_hw(), EthernetAddress::ZERO);
        assert_eq!(p.target_ip(), Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(p.target_ip_u32(), 0x0a00_0101);
        assert!(!p.is_gratuitous());
        read_everything(&p);
    }

    #[test]
    fn repr_round_trips_byte_exact() {
        let p = ArpPacket::new_checked(&ARP_REQUEST_FRAME[14..]).unwrap();
        let repr = ArpRepr::parse(&p).unwrap();
        assert_eq!(
            repr,
            ArpRepr::request(HOST, Ipv4Addr::new(10, 0, 1, 5), Ipv4Addr::new(10, 0, 1, 1))
        );
        let mut out = [0u8; PACKET_LEN];
        repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out[..], ARP_REQUEST_FRAME[14..14 + PACKET_LEN]);
    }

    #[test]
    fn reply_in_place_matches_the_repr_reply() {
        let mut bytes = ARP_REQUEST_FRAME;
        let request = ArpRepr::parse(&ArpPacket::new_checked(&bytes[14..]).unwrap()).unwrap();
        let mut p = ArpPacket::new_checked(&mut bytes[14..]).unwrap();
        p.reply_in_place(GW1);
        let reply = ArpRepr::parse(&p).unwrap();
        assert_eq!(reply, request.reply(GW1));
        assert_eq!(reply.operation, ArpOperation::Reply);
        assert_eq!(
            (reply.source_hw, reply.source_ip),
            (GW1, Ipv4Addr::new(10, 0, 1, 1))
        );
        assert_eq!(
            (reply.target_hw, reply.target_ip),
            (HOST, Ipv4Addr::new(10, 0, 1, 5))
        );
        // The padding after the packet is untouched.
        assert_eq!(bytes[14 + PACKET_LEN..], [0u8; 18]);
    }

    #[test]
    fn gratuitous_announcement() {
        let ip = Ipv4Addr::new(203, 0, 113, 10);
        let repr = ArpRepr::announcement(GW1, ip);
        assert!(repr.is_gratuitous());
        let mut out = [0u8; PACKET_LEN];
        repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        let p = ArpPacket::new_checked(&out[..]).unwrap();
        assert!(p.is_gratuitous());
        assert_eq!(
            (p.operation(), p.sender_ip(), p.target_ip()),
            (ArpOperation::Request, ip, ip)
        );
    }

    #[test]
    fn setters_write_the_fields() {
        let mut out = [0u8; PACKET_LEN];
        let mut p = ArpPacket::new_unchecked(&mut out[..]);
        p.set_hardware_type(1);
        p.set_protocol_type(EtherType::IPV4);
        p.set_hw_len(6);
        p.set_proto_len(4);
        p.set_operation(ArpOperation::Unknown(9));
        p.set_sender_hw(GW1);
        p.set_sender_ip(Ipv4Addr::new(1, 2, 3, 4));
        p.set_target_hw(HOST);
        p.set_target_ip(Ipv4Addr::new(5, 6, 7, 8));
        assert_eq!(p.check_len(), Ok(()));
        assert_eq!(p.operation(), ArpOperation::Unknown(9));
        assert_eq!((p.sender_hw(), p.target_hw()), (GW1, HOST));
        assert_eq!(
            (p.sender_ip_u32(), p.target_ip_u32()),
            (0x0102_0304, 0x0506_0708)
        );
        assert_eq!(ArpRepr::parse(&p), Err(Error::Unsupported));
    }

    #[test]
    fn check_len_names_every_failure() {
        let arp = &ARP_REQUEST_FRAME[14..];
        assert_eq!(
            ArpPacket::new_checked(&arp[..7]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            ArpPacket::new_checked(&arp[..27]).err(),
            Some(Error::Truncated)
        );
        assert!(ArpPacket::new_checked(&arp[..28]).is_ok());
        let unsupported = |at: usize, value: u8| {
            let mut bytes = ARP_REQUEST_FRAME;
            bytes[14 + at] = value;
            ArpPacket::new_checked(&bytes[14..]).err()
        };
        assert_eq!(unsupported(1, 6), Some(Error::Unsupported)); // IEEE 802 hardware
        assert_eq!(unsupported(2, 0x86), Some(Error::Unsupported)); // protocol 0x86dd
        assert_eq!(unsupported(field::HLEN, 8), Some(Error::Unsupported));
        assert_eq!(unsupported(field::PLEN, 16), Some(Error::Unsupported));
        // A wrong pair of address spaces is unsupported even when short.
        let mut bytes = ARP_REQUEST_FRAME;
        bytes[14 + field::PLEN] = 16;
        assert_eq!(
            ArpPacket::new_checked(&bytes[14..22]).err(),
            Some(Error::Unsupported)
        );
    }

    #[test]
    fn operation_codes() {
        for n in 0..=600u16 {
            assert_eq!(u16::from(ArpOperation::from(n)), n);
        }
        assert_eq!(ArpOperation::from(2), ArpOperation::Reply);
    }

    fn arb_repr() -> impl Strategy<Value = ArpRepr> {
        (
            any::<bool>(),
            any::<[u8; 6]>(),
            any::<u32>(),
            any::<[u8; 6]>(),
            any::<u32>(),
        )
            .prop_map(|(reply, sha, spa, tha, tpa)| ArpRepr {
                operation: if reply {
                    ArpOperation::Reply
                } else {
                    ArpOperation::Request
                },
                source_hw: EthernetAddress(sha),
                source_ip: Ipv4Addr::from_bits(spa),
                target_hw: EthernetAddress(tha),
                target_ip: Ipv4Addr::from_bits(tpa),
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut bytes = bytes;
            if let Ok(p) = ArpPacket::new_checked(&bytes[..]) {
                read_everything(&p);
                let _ = ArpRepr::parse(&p);
            }
            if let Ok(mut p) = ArpPacket::new_checked(&mut bytes[..]) {
                p.reply_in_place(GW1);
                p.set_operation(ArpOperation::Request);
                p.set_sender_hw(HOST);
                p.set_target_hw(GW1);
                p.set_sender_ip(Ipv4Addr::LOCALHOST);
                p.set_target_ip(Ipv4Addr::LOCALHOST);
                prop_assert!(p.is_gratuitous());
            }
        }

        #[test]
        fn valid_headers_with_arbitrary_addresses_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..30),
        ) {
            let mut bytes = ARP_REQUEST_FRAME[14..22].to_vec();
            bytes.extend_from_slice(&tail);
            match ArpPacket::new_checked(&bytes[..]) {
                Ok(p) => {
                    read_everything(&p);
                }
                Err(e) => prop_assert_eq!(e, Error::Truncated),
            }
        }

        #[test]
        fn repr_emit_parse_round_trips(repr in arb_repr()) {
            let mut out = [0u8; PACKET_LEN];
            repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
            let p = ArpPacket::new_checked(&out[..]).unwrap();
            prop_assert_eq!(ArpRepr::parse(&p), Ok(repr));
            prop_assert_eq!(repr.reply(GW1).reply(HOST).target_ip, repr.target_ip);
        }
    }
}
