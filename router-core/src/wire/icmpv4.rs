//! ICMP for IPv4 (RFC 792), with the next-hop MTU of RFC 1191 and the rules of RFC 1812
//! section 4.3 for the errors a router sends.

use core::fmt;

use std::net::Ipv4Addr;

use super::ethernet::{self, EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use super::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};
use super::{check_holds, read_u16, write_u16, write_u32, Error, Result};
use super::{checksum, PacketBuf};

/// The ICMP message type (RFC 792; IANA ICMP parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Icmpv4Message {
    /// Echo Reply: 0.
    EchoReply,
    /// Destination Unreachable: 3.
    DstUnreachable,
    /// Source Quench (deprecated by RFC 6633, still an error message): 4.
    SourceQuench,
    /// Redirect: 5.
    Redirect,
    /// Echo Request: 8.
    EchoRequest,
    /// Time Exceeded: 11.
    TimeExceeded,
    /// Parameter Problem: 12.
    ParamProblem,
    /// Timestamp: 13.
    Timestamp,
    /// Timestamp Reply: 14.
    TimestampReply,
    /// Any other type.
    Unknown(u8),
}

impl Icmpv4Message {
    /// Whether this is an error message (Destination Unreachable, Source Quench, Redirect,
    /// Time Exceeded, Parameter Problem): no ICMP error may be sent in reply to one (RFC 1812
    /// section 4.3.2.7, RFC 1122 section 3.2.2).
    #[inline]
    pub const fn is_error(self) -> bool {
        matches!(
            self,
            Self::DstUnreachable
                | Self::SourceQuench
                | Self::Redirect
                | Self::TimeExceeded
                | Self::ParamProblem
        )
    }
}

impl From<u8> for Icmpv4Message {
    #[inline]
    fn from(value: u8) -> Self {
        match value {
            0 => Self::EchoReply,
            3 => Self::DstUnreachable,
            4 => Self::SourceQuench,
            5 => Self::Redirect,
            8 => Self::EchoRequest,
            11 => Self::TimeExceeded,
            12 => Self::ParamProblem,
            13 => Self::Timestamp,
            14 => Self::TimestampReply,
            other => Self::Unknown(other),
        }
    }
}

impl From<Icmpv4Message> for u8 {
    #[inline]
    fn from(value: Icmpv4Message) -> Self {
        match value {
            Icmpv4Message::EchoReply => 0,
            Icmpv4Message::DstUnreachable => 3,
            Icmpv4Message::SourceQuench => 4,
            Icmpv4Message::Redirect => 5,
            Icmpv4Message::EchoRequest => 8,
            Icmpv4Message::TimeExceeded => 11,
            Icmpv4Message::ParamProblem => 12,
            Icmpv4Message::Timestamp => 13,
            Icmpv4Message::TimestampReply => 14,
            Icmpv4Message::Unknown(other) => other,
        }
    }
}

impl fmt::Display for Icmpv4Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EchoReply => f.write_str("echo reply"),
            Self::DstUnreachable => f.write_str("destination unreachable"),
            Self::SourceQuench => f.write_str("source quench"),
            Self::Redirect => f.write_str("redirect"),
            Self::EchoRequest => f.write_str("echo request"),
            Self::TimeExceeded => f.write_str("time exceeded"),
            Self::ParamProblem => f.write_str("parameter problem"),
            Self::Timestamp => f.write_str("timestamp"),
            Self::TimestampReply => f.write_str("timestamp reply"),
            Self::Unknown(other) => write!(f, "type {other}"),
        }
    }
}

/// The codes of Destination Unreachable (RFC 792, RFC 1191, RFC 1812 section 5.2.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Icmpv4DstUnreachable {
    /// Net unreachable: 0 (no route).
    NetUnreachable,
    /// Host unreachable: 1 (no answer to ARP).
    HostUnreachable,
    /// Protocol unreachable: 2.
    ProtoUnreachable,
    /// Port unreachable: 3.
    PortUnreachable,
    /// Fragmentation needed and DF set: 4; carries the next-hop MTU (RFC 1191 section 4).
    FragNeeded,
    /// Communication administratively prohibited: 13 (RFC 1812 section 5.2.7.1).
    AdminProhibited,
    /// Any other code.
    Unknown(u8),
}

impl From<u8> for Icmpv4DstUnreachable {
    #[inline]
    fn from(value: u8) -> Self {
        match value {
            0 => Self::NetUnreachable,
            1 => Self::HostUnreachable,
            2 => Self::ProtoUnreachable,
            3 => Self::PortUnreachable,
            4 => Self::FragNeeded,
            13 => Self::AdminProhibited,
            other => Self::Unknown(other),
        }
    }
}

impl From<Icmpv4DstUnreachable> for u8 {
    #[inline]
    fn from(value: Icmpv4DstUnreachable) -> Self {
        match value {
            Icmpv4DstUnreachable::NetUnreachable => 0,
            Icmpv4DstUnreachable::HostUnreachable => 1,
            Icmpv4DstUnreachable::ProtoUnreachable => 2,
            Icmpv4DstUnreachable::PortUnreachable => 3,
            Icmpv4DstUnreachable::FragNeeded => 4,
            Icmpv4DstUnreachable::AdminProhibited => 13,
            Icmpv4DstUnreachable::Unknown(other) => other,
        }
    }
}

/// The codes of Time Exceeded (RFC 792).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Icmpv4TimeExceeded {
    /// Time to live exceeded in transit: 0.
    TtlExceeded,
    /// Fragment reassembly time exceeded: 1.
    FragReassembly,
    /// Any other code.
    Unknown(u8),
}

impl From<u8> for Icmpv4TimeExceeded {
    #[inline]
    fn from(value: u8) -> Self {
        match value {
            0 => Self::TtlExceeded,
            1 => Self::FragReassembly,
            other => Self::Unknown(other),
        }
    }
}

impl From<Icmpv4TimeExceeded> for u8 {
    #[inline]
    fn from(value: Icmpv4TimeExceeded) -> Self {
        match value {
            Icmpv4TimeExceeded::TtlExceeded => 0,
            Icmpv4TimeExceeded::FragReassembly => 1,
            Icmpv4TimeExceeded::Unknown(other) => other,
        }
    }
}

/// Byte offsets of the fields (RFC 792); each constant is the offset of the field's first
/// byte.
pub mod field {
    /// Type, 1 byte.
    pub const TYPE: usize = 0;
    /// Code, 1 byte.
    pub const CODE: usize = 1;
    /// Checksum over the whole ICMP message, 2 bytes.
    pub const CHECKSUM: usize = 2;
    /// The second word of the header, whose meaning depends on the type, 4 bytes.
    pub const REST_OF_HEADER: usize = 4;
    /// Echo identifier, 2 bytes.
    pub const ECHO_IDENT: usize = 4;
    /// Echo sequence number, 2 bytes.
    pub const ECHO_SEQ_NO: usize = 6;
    /// Next-hop MTU of Destination Unreachable code 4 (RFC 1191 section 4), 2 bytes; the two
    /// bytes before it are unused (zero).
    pub const NEXT_HOP_MTU: usize = 6;
    /// Data: the echo data, or the quoted datagram of an error.
    pub const DATA: usize = 8;
}

/// The length of the ICMP header (type, code, checksum and the second word).
pub const HEADER_LEN: usize = 8;
/// How many payload bytes of the offending datagram an error quotes after its IP header
/// (RFC 792: "the internet header plus the first 64 bits of the original datagram's data").
pub const ERROR_QUOTED_PAYLOAD_LEN: usize = 8;

/// The length of the ICMP error message (header and quote) for an offending datagram whose
/// IP header is `original_ip_header_len` bytes long: 8 + header + 8 (RFC 792). RFC 1812
/// section 4.3.2.3 allows quoting more; this router quotes the minimum.
#[inline]
pub const fn icmp_error_len(original_ip_header_len: usize) -> usize {
    HEADER_LEN + original_ip_header_len + ERROR_QUOTED_PAYLOAD_LEN
}

/// How many bytes of the offending datagram an error quotes: its IP header and 8 bytes of
/// payload, or the whole datagram when it is shorter than that.
#[inline]
pub const fn icmp_error_quoted_len(
    original_ip_header_len: usize,
    original_total_len: usize,
) -> usize {
    let wanted = original_ip_header_len + ERROR_QUOTED_PAYLOAD_LEN;
    if original_total_len < wanted {
        original_total_len
    } else {
        wanted
    }
}

/// Whether RFC 1812 section 4.3.2.7 allows an ICMP error in reply to `original`, as far as its
/// IP header and first bytes tell. It does not if the datagram
///
/// - is an ICMP error message itself, or an ICMP message too short to tell;
/// - is a fragment other than the first (non-zero fragment offset);
/// - is addressed to the limited broadcast or a multicast address;
/// - has a source that does not define a single host: 0.0.0.0, loopback (127/8), multicast
///   (224/4) or class E (240/4, limited broadcast included).
///
/// The remaining conditions need context the header lacks and are the caller's: the datagram
/// failed the checks of RFC 1812 section 5.2.2, arrived as a link-layer broadcast or
/// multicast, or was addressed to a subnet-directed broadcast.
#[inline]
pub fn icmp_error_allowed<T: AsRef<[u8]>>(original: &Ipv4Packet<T>) -> bool {
    if !original.is_first_fragment() {
        return false;
    }
    let dst = original.dst_addr();
    if dst.is_broadcast() || dst.is_multicast() {
        return false;
    }
    let src = original.src_addr_u32();
    if src == 0 || src >> 24 == 127 || src >> 28 >= 0xe {
        return false;
    }
    if original.protocol() == IpProtocol::Icmp {
        return match original.payload().first() {
            Some(&msg_type) => !Icmpv4Message::from(msg_type).is_error(),
            None => false,
        };
    }
    true
}

/// Writes the header of an ICMP error at the start of `message`, whose bytes after the first 8
/// already hold the quoted datagram, and fills the checksum over the whole of `message`.
///
/// `message` must be exactly the ICMP message (header and quote), as placed where the new
/// ICMP header goes inside the packet being turned into the error. `next_hop_mtu` is written
/// for Destination Unreachable code 4 (RFC 1191 section 4) and should be zero otherwise; the
/// unused bytes are zeroed (RFC 792).
///
/// Returns [`Error::Truncated`] if `message` is shorter than the header, and
/// [`Error::Unsupported`] if `msg_type` is not an error message.
#[inline]
pub fn emit_error(
    message: &mut [u8],
    msg_type: Icmpv4Message,
    code: u8,
    next_hop_mtu: u16,
) -> Result<()> {
    if !msg_type.is_error() {
        return Err(Error::Unsupported);
    }
    if message.len() < HEADER_LEN {
        return Err(Error::Truncated);
    }
    message[field::TYPE] = msg_type.into();
    message[field::CODE] = code;
    write_u16(message, field::CHECKSUM, 0);
    write_u32(message, field::REST_OF_HEADER, u32::from(next_hop_mtu));
    let sum = checksum::compute(message);
    write_u16(message, field::CHECKSUM, sum);
    Ok(())
}

/// An ICMP error the router sends back to the sender of a datagram (RFC 792, RFC 1812 section
/// 4.3.2), from one of its own interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4ErrorRepr {
    /// The MAC of the interface the error leaves by.
    pub src_mac: EthernetAddress,
    /// The address of that interface (RFC 1812 section 4.3.2.4).
    pub src_ip: Ipv4Addr,
    /// An error type ([`Icmpv4Message::is_error`]).
    pub msg_type: Icmpv4Message,
    /// The code, whose meaning depends on the type.
    pub code: u8,
    /// The next-hop MTU of fragmentation needed (RFC 1191 section 4); zero otherwise.
    pub next_hop_mtu: u16,
    /// The identification of the error's IPv4 header.
    pub ident: u16,
}

/// Bytes an ICMP error adds in front of the datagram it quotes: its IPv4 and ICMP headers.
pub const ERROR_PREPEND_LEN: usize = ipv4::HEADER_LEN + HEADER_LEN;

impl Icmpv4ErrorRepr {
    /// Turns the Ethernet frame in `pkt`, which holds a checked IPv4 datagram, into this error
    /// back to the datagram's sender, in place: the datagram's header and first 8 bytes of
    /// payload stay where they are and become the quote (RFC 792); the new Ethernet, IPv4 and
    /// ICMP headers go in front of them. False when the buffer lacks headroom.
    pub fn emit_in_place(&self, pkt: &mut PacketBuf<'_>) -> bool {
        let frame = EthernetFrame::new_unchecked(pkt.frame());
        let sender_mac = frame.src_addr();
        let original = Ipv4Packet::new_unchecked(&pkt.frame()[ethernet::HEADER_LEN..]);
        let sender_ip = original.src_addr();
        let quoted =
            icmp_error_quoted_len(original.header_len(), usize::from(original.total_len()));
        if !pkt.prepend(ERROR_PREPEND_LEN) {
            return false;
        }
        let ip = Ipv4Repr {
            src: self.src_ip,
            dst: sender_ip,
            protocol: IpProtocol::Icmp,
            payload_len: HEADER_LEN + quoted,
            ttl: ipv4::ORIGINATED_TTL,
            dscp: 0,
            ecn: 0,
            ident: self.ident,
            dont_frag: false,
        };
        pkt.truncate(ethernet::HEADER_LEN + ip.buffer_len());
        let f = pkt.frame_mut();
        let eth = EthernetRepr {
            src: self.src_mac,
            dst: sender_mac,
            ethertype: EtherType::IPV4,
            vlan: None,
        };
        eth.emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
        let (_, datagram) = f.split_at_mut(ethernet::HEADER_LEN);
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut datagram[..]));
        let message = &mut datagram[ipv4::HEADER_LEN..];
        emit_error(message, self.msg_type, self.code, self.next_hop_mtu).is_ok()
    }
}

view! {
    /// A view of an ICMP message. The buffer must be the message exactly (the IPv4 payload, up
    /// to the total length): the checksum covers all of it.
    ///
    /// After [`check_len`](Self::check_len) has succeeded no method panics.
    pub struct Icmpv4Packet;
}

fields! {
    Icmpv4Packet {
        /// The message type.
        msg_type / set_msg_type: Icmpv4Message = field::TYPE;
        /// The code, whose meaning depends on the type.
        code / set_code: u8 = field::CODE;
        /// The checksum field.
        checksum / set_checksum: u16 = field::CHECKSUM;
        /// The second word of the header, whatever the type.
        rest_of_header / set_rest_of_header: u32 = field::REST_OF_HEADER;
        /// The identifier of an echo request or reply.
        echo_ident / set_echo_ident: u16 = field::ECHO_IDENT;
        /// The sequence number of an echo request or reply.
        echo_seq_no / set_echo_seq_no: u16 = field::ECHO_SEQ_NO;
        /// The next-hop MTU of a Destination Unreachable, code 4 (RFC 1191 section 4).
        next_hop_mtu / set_next_hop_mtu: u16 = field::NEXT_HOP_MTU;
    }
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Checks that the buffer holds the 8-byte header (every message type this router reads
    /// has one, RFC 792). Returns [`Error::Truncated`] otherwise.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        check_holds(self.buffer.as_ref(), HEADER_LEN)
    }

    /// Whether this is an error message (see [`Icmpv4Message::is_error`]).
    #[inline]
    pub fn is_error(&self) -> bool {
        self.msg_type().is_error()
    }

    /// The data after the header: the echo data, or the quoted datagram of an error.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// Whether the checksum over the whole message verifies (RFC 792).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// The data, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Computes the checksum over the whole message and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::compute(self.buffer.as_ref());
        self.set_checksum(sum);
    }

    /// Turns an echo request into its reply in place (RFC 792: "the type code changed to 0"),
    /// keeping identifier, sequence number and data, and updating the checksum incrementally
    /// (RFC 1624 eqn. 3) instead of summing the data again. The IP header is the caller's.
    ///
    /// A result of `0x0000` is stored as `0xffff`, the other one's complement zero. Eqn. 3
    /// cannot tell whether the rest of the message is all zero (a request with identifier 0,
    /// sequence number 0 and no data becomes exactly that), which needs `0xffff`; `0xffff`
    /// verifies in the other case too, where `0x0000` would be rejected by the receiver.
    #[inline]
    pub fn reply_in_place(&mut self) {
        let b = self.buffer.as_mut();
        let old = read_u16(b, field::TYPE);
        let new = old & 0x00ff; // type 0, code kept (0 in a valid request)
        let sum = match checksum::update_u16(read_u16(b, field::CHECKSUM), old, new) {
            0 => 0xffff,
            sum => sum,
        };
        write_u16(b, field::TYPE, new);
        write_u16(b, field::CHECKSUM, sum);
    }
}

/// An ICMP message the router answers or originates, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Repr {
    /// Echo Request (type 8, code 0).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Length of the echo data.
        data_len: usize,
    },
    /// Echo Reply (type 0, code 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Length of the echo data.
        data_len: usize,
    },
    /// Destination Unreachable (type 3).
    DstUnreachable {
        /// The code.
        reason: Icmpv4DstUnreachable,
        /// The next-hop MTU for [`Icmpv4DstUnreachable::FragNeeded`] (RFC 1191), else 0.
        next_hop_mtu: u16,
        /// Length of the quoted datagram (see [`icmp_error_quoted_len`]).
        quoted_len: usize,
    },
    /// Time Exceeded (type 11).
    TimeExceeded {
        /// The code.
        reason: Icmpv4TimeExceeded,
        /// Length of the quoted datagram.
        quoted_len: usize,
    },
}

impl Icmpv4Repr {
    /// Parses a message: checks it, verifies the checksum ([`Error::BadChecksum`]), rejects
    /// echo messages with a non-zero code ([`Error::Malformed`], RFC 792) and types other than
    /// the four above ([`Error::Unsupported`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &Icmpv4Packet<T>) -> Result<Self> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let data_len = packet.data().len();
        match packet.msg_type() {
            Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply if packet.code() != 0 => {
                Err(Error::Malformed)
            }
            Icmpv4Message::EchoRequest => Ok(Self::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data_len,
            }),
            Icmpv4Message::EchoReply => Ok(Self::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data_len,
            }),
            Icmpv4Message::DstUnreachable => Ok(Self::DstUnreachable {
                reason: Icmpv4DstUnreachable::from(packet.code()),
                next_hop_mtu: packet.next_hop_mtu(),
                quoted_len: data_len,
            }),
            Icmpv4Message::TimeExceeded => Ok(Self::TimeExceeded {
                reason: Icmpv4TimeExceeded::from(packet.code()),
                quoted_len: data_len,
            }),
            _ => Err(Error::Unsupported),
        }
    }

    /// The message type.
    #[inline]
    pub const fn msg_type(&self) -> Icmpv4Message {
        match self {
            Self::EchoRequest { .. } => Icmpv4Message::EchoRequest,
            Self::EchoReply { .. } => Icmpv4Message::EchoReply,
            Self::DstUnreachable { .. } => Icmpv4Message::DstUnreachable,
            Self::TimeExceeded { .. } => Icmpv4Message::TimeExceeded,
        }
    }

    /// The length of the message: the 8-byte header and the data or quote.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match *self {
                Self::EchoRequest { data_len, .. } | Self::EchoReply { data_len, .. } => data_len,
                Self::DstUnreachable { quoted_len, .. } | Self::TimeExceeded { quoted_len, .. } => {
                    quoted_len
                }
            }
    }

    /// Writes the header at the start of `packet` and fills the checksum over the first
    /// [`buffer_len`](Self::buffer_len) bytes, whose data (echo data or quote) must already be
    /// in place after the header.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv4Packet<T>) {
        let b = &mut packet.buffer.as_mut()[..self.buffer_len()];
        let (code, rest) = match *self {
            Self::EchoRequest { ident, seq_no, .. } | Self::EchoReply { ident, seq_no, .. } => {
                (0, (u32::from(ident) << 16) | u32::from(seq_no))
            }
            Self::DstUnreachable {
                reason,
                next_hop_mtu,
                ..
            } => (reason.into(), u32::from(next_hop_mtu)),
            Self::TimeExceeded { reason, .. } => (reason.into(), 0),
        };
        b[field::TYPE] = self.msg_type().into();
        b[field::CODE] = code;
        write_u16(b, field::CHECKSUM, 0);
        write_u32(b, field::REST_OF_HEADER, rest);
        let sum = checksum::compute(b);
        write_u16(b, field::CHECKSUM, sum);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ICMP_ECHO_FRAME, TIME_EXCEEDED_FRAME, VXLAN_FRAME};
    use super::super::ipv4::{self, Ipv4Repr};
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// The echo request of the fixture: after Ethernet (14) and IPv4 (20) headers.
    const ECHO: core::ops::RangeFrom<usize> = 34..;

    /// Calls every getter; used to show that none panics after a successful check.
    fn read_everything<T: AsRef<[u8]>>(p: &Icmpv4Packet<T>) -> usize {
        let _ = (
            p.msg_type(),
            p.code(),
            p.is_error(),
            p.checksum(),
            p.rest_of_header(),
        );
        let _ = (
            p.echo_ident(),
            p.echo_seq_no(),
            p.next_hop_mtu(),
            p.verify_checksum(),
        );
        p.data().len()
    }

    #[test]
    fn parses_a_ping() {
        let p = Icmpv4Packet::new_checked(&ICMP_ECHO_FRAME[ECHO]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Message::EchoRequest);
        assert_eq!(p.code(), 0);
        assert!(!p.is_error());
        assert_eq!(p.checksum(), 0x7249);
        assert_eq!(p.echo_ident(), 0x1c46);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.rest_of_header(), 0x1c46_0001);
        assert_eq!(p.data().len(), 56);
        assert_eq!(p.data()[16..], (0x10..0x38).collect::<Vec<u8>>()[..]);
        assert!(p.verify_checksum());
        assert_eq!(read_everything(&p), 56);

        let inner = Icmpv4Packet::new_checked(&VXLAN_FRAME[84..]).unwrap();
        assert_eq!(
            (inner.msg_type(), inner.echo_seq_no()),
            (Icmpv4Message::EchoRequest, 2)
        );
        assert!(inner.verify_checksum());
    }

    #[test]
    fn echo_repr_round_trips_byte_exact() {
        let p = Icmpv4Packet::new_checked(&ICMP_ECHO_FRAME[ECHO]).unwrap();
        let repr = Icmpv4Repr::parse(&p).unwrap();
        assert_eq!(
            repr,
            Icmpv4Repr::EchoRequest {
                ident: 0x1c46,
                seq_no: 1,
                data_len: 56
            }
        );
        let mut out = vec![0u8; repr.buffer_len()];
        out[HEADER_LEN..].copy_from_slice(p.data());
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out[..], ICMP_ECHO_FRAME[ECHO]);
    }

    #[test]
    fn reply_in_place_keeps_the_checksum_right() {
        let mut bytes = ICMP_ECHO_FRAME;
        let mut p = Icmpv4Packet::new_checked(&mut bytes[ECHO]).unwrap();
        p.reply_in_place();
        assert_eq!(p.msg_type(), Icmpv4Message::EchoReply);
        assert!(p.verify_checksum());
        let incremental = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), incremental);
        assert_eq!(
            Icmpv4Repr::parse(&p),
            Ok(Icmpv4Repr::EchoReply {
                ident: 0x1c46,
                seq_no: 1,
                data_len: 56
            })
        );
    }

    #[test]
    fn reply_in_place_to_an_all_zero_request() {
        // Identifier 0, sequence number 0, no data: the reply is all zero but its checksum.
        let mut message = [8u8, 0, 0, 0, 0, 0, 0, 0];
        let mut p = Icmpv4Packet::new_checked(&mut message[..]).unwrap();
        p.fill_checksum();
        assert_eq!(p.checksum(), 0xf7ff);
        p.reply_in_place();
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum());
        p.fill_checksum();
        assert_eq!(p.checksum(), 0xffff);
    }

    #[test]
    fn parses_a_time_exceeded() {
        let ip = ipv4::Ipv4Packet::new_checked(&TIME_EXCEEDED_FRAME[14..]).unwrap();
        assert_eq!(ip.dscp(), 48);
        let p = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Message::TimeExceeded);
        assert!(p.is_error());
        assert_eq!(p.code(), 0);
        assert_eq!(p.rest_of_header(), 0);
        assert_eq!(p.data().len(), 28);
        assert_eq!(
            Icmpv4Repr::parse(&p),
            Ok(Icmpv4Repr::TimeExceeded {
                reason: Icmpv4TimeExceeded::TtlExceeded,
                quoted_len: 28
            })
        );
        // The quote is the offending header (TTL 1) and the first 8 bytes of the echo request.
        let quoted = ipv4::Ipv4Packet::new_unchecked(p.data());
        assert_eq!((quoted.ttl(), quoted.total_len()), (1, 84));
        assert_eq!(p.data()[20..], ICMP_ECHO_FRAME[34..42]);
        assert!(!icmp_error_allowed(&ip));
    }

    /// Builds the Time Exceeded fixture the way the router will: the offending packet's header
    /// and 8 bytes stay in place, and the new IP and ICMP headers go in front of them.
    #[test]
    fn builds_the_time_exceeded_byte_exact() {
        let mut offending = ICMP_ECHO_FRAME;
        let mut ip = ipv4::Ipv4Packet::new_checked(&mut offending[14..]).unwrap();
        ip.set_ttl(1);
        ip.fill_checksum();
        assert!(icmp_error_allowed(&ip));
        let quoted_len = icmp_error_quoted_len(ip.header_len(), usize::from(ip.total_len()));
        assert_eq!(quoted_len, 28);
        assert_eq!(icmp_error_len(ip.header_len()), HEADER_LEN + quoted_len);

        // [Ethernet 14][new IPv4 20][ICMP 8][quote 28]: the quote starts 28 bytes later than
        // the offending IPv4 header did.
        let mut frame = [0u8; 70];
        frame[..14].copy_from_slice(&TIME_EXCEEDED_FRAME[..14]);
        frame[42..70].copy_from_slice(&offending[14..42]);
        emit_error(&mut frame[34..70], Icmpv4Message::TimeExceeded, 0, 0).unwrap();
        let repr = Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 1, 1),
            dst: Ipv4Addr::new(10, 0, 1, 5),
            protocol: IpProtocol::Icmp,
            payload_len: icmp_error_len(20),
            ttl: 64,
            dscp: 48,
            ecn: 0,
            ident: 0,
            dont_frag: false,
        };
        repr.emit(&mut ipv4::Ipv4Packet::new_unchecked(&mut frame[14..]));
        assert_eq!(frame, TIME_EXCEEDED_FRAME);

        // The repr builds the same ICMP message.
        let mut message = [0u8; 36];
        message[8..].copy_from_slice(&offending[14..42]);
        let repr = Icmpv4Repr::TimeExceeded {
            reason: Icmpv4TimeExceeded::TtlExceeded,
            quoted_len,
        };
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut message[..]));
        assert_eq!(message[..], TIME_EXCEEDED_FRAME[34..]);
    }

    #[test]
    fn frag_needed_carries_the_next_hop_mtu() {
        let mut message = [0u8; 36];
        message[8..].copy_from_slice(&ICMP_ECHO_FRAME[14..42]);
        let code = Icmpv4DstUnreachable::FragNeeded.into();
        emit_error(&mut message, Icmpv4Message::DstUnreachable, code, 1450).unwrap();
        let p = Icmpv4Packet::new_checked(&message[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.next_hop_mtu(), 1450);
        assert_eq!(p.rest_of_header(), 1450);
        assert_eq!(
            Icmpv4Repr::parse(&p),
            Ok(Icmpv4Repr::DstUnreachable {
                reason: Icmpv4DstUnreachable::FragNeeded,
                next_hop_mtu: 1450,
                quoted_len: 28,
            })
        );
    }

    #[test]
    fn emit_error_refuses_non_errors_and_short_buffers() {
        let mut message = [0u8; 36];
        assert_eq!(
            emit_error(&mut message, Icmpv4Message::EchoReply, 0, 0),
            Err(Error::Unsupported)
        );
        assert_eq!(
            emit_error(&mut message[..7], Icmpv4Message::TimeExceeded, 0, 0),
            Err(Error::Truncated)
        );
        assert_eq!(message, [0u8; 36]);
    }

    #[test]
    fn error_rules_of_rfc1812() {
        let packet = |edit: &dyn Fn(&mut ipv4::Ipv4Packet<&mut [u8]>)| {
            let mut bytes = ICMP_ECHO_FRAME;
            let mut ip = ipv4::Ipv4Packet::new_checked(&mut bytes[14..]).unwrap();
            edit(&mut ip);
            icmp_error_allowed(&ip)
        };
        assert!(packet(&|_| {}));
        assert!(packet(&|ip| ip.set_more_frags(true))); // first fragment
        assert!(!packet(&|ip| ip.set_frag_offset(1480)));
        assert!(!packet(&|ip| ip.set_dst_addr(Ipv4Addr::BROADCAST)));
        assert!(!packet(&|ip| ip.set_dst_addr(Ipv4Addr::new(224, 0, 0, 5))));
        assert!(!packet(&|ip| ip.set_src_addr(Ipv4Addr::UNSPECIFIED)));
        assert!(!packet(&|ip| ip.set_src_addr(Ipv4Addr::new(127, 0, 0, 1))));
        assert!(!packet(&|ip| ip.set_src_addr(Ipv4Addr::new(239, 1, 1, 1))));
        assert!(!packet(&|ip| ip.set_src_addr(Ipv4Addr::new(240, 0, 0, 1))));
        assert!(!packet(&|ip| ip.set_src_addr(Ipv4Addr::BROADCAST)));
        assert!(packet(&|ip| ip.payload_mut()[0] = 0)); // echo reply
        assert!(!packet(&|ip| ip.payload_mut()[0] = 3));
        assert!(!packet(&|ip| ip.payload_mut()[0] = 11));
        assert!(!packet(&|ip| ip.payload_mut()[0] = 12));
        assert!(packet(&|ip| {
            ip.payload_mut()[0] = 3;
            ip.set_protocol(IpProtocol::Udp);
        }));
        assert!(!packet(&|ip| ip.set_total_len(20))); // ICMP without a type
    }

    #[test]
    fn message_type_and_codes() {
        for n in 0..=255u8 {
            assert_eq!(u8::from(Icmpv4Message::from(n)), n);
            assert_eq!(u8::from(Icmpv4DstUnreachable::from(n)), n);
            assert_eq!(u8::from(Icmpv4TimeExceeded::from(n)), n);
            assert_eq!(
                Icmpv4Message::from(n).is_error(),
                matches!(n, 3 | 4 | 5 | 11 | 12)
            );
        }
        assert_eq!(u8::from(Icmpv4DstUnreachable::AdminProhibited), 13);
        assert_eq!(Icmpv4Message::TimeExceeded.to_string(), "time exceeded");
    }

    #[test]
    fn parse_names_every_failure() {
        assert_eq!(
            Icmpv4Packet::new_checked(&ICMP_ECHO_FRAME[34..41]).err(),
            Some(Error::Truncated)
        );
        let mut bytes = ICMP_ECHO_FRAME;
        bytes[40] ^= 0xff;
        let p = Icmpv4Packet::new_checked(&bytes[ECHO]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p), Err(Error::BadChecksum));

        let mut bytes = ICMP_ECHO_FRAME;
        let mut p = Icmpv4Packet::new_checked(&mut bytes[ECHO]).unwrap();
        p.set_code(1);
        p.fill_checksum();
        assert_eq!(Icmpv4Repr::parse(&p), Err(Error::Malformed));
        p.set_code(0);
        p.set_msg_type(Icmpv4Message::Timestamp);
        p.fill_checksum();
        assert_eq!(Icmpv4Repr::parse(&p), Err(Error::Unsupported));
    }

    fn arb_repr() -> impl Strategy<Value = Icmpv4Repr> {
        prop_oneof![
            (any::<u16>(), any::<u16>(), 0usize..100).prop_map(|(ident, seq_no, data_len)| {
                Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data_len,
                }
            }),
            (any::<u16>(), any::<u16>(), 0usize..100).prop_map(|(ident, seq_no, data_len)| {
                Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data_len,
                }
            }),
            (any::<u8>(), any::<u16>(), 0usize..100).prop_map(
                |(code, next_hop_mtu, quoted_len)| {
                    Icmpv4Repr::DstUnreachable {
                        reason: code.into(),
                        next_hop_mtu,
                        quoted_len,
                    }
                }
            ),
            (any::<u8>(), 0usize..100).prop_map(|(code, quoted_len)| {
                Icmpv4Repr::TimeExceeded {
                    reason: code.into(),
                    quoted_len,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut bytes = bytes;
            if let Ok(p) = Icmpv4Packet::new_checked(&bytes[..]) {
                prop_assert_eq!(read_everything(&p) + HEADER_LEN, bytes.len());
                let _ = Icmpv4Repr::parse(&p);
            }
            if let Ok(mut p) = Icmpv4Packet::new_checked(&mut bytes[..]) {
                p.set_msg_type(Icmpv4Message::EchoRequest);
                p.set_code(0);
                p.set_echo_ident(1);
                p.set_echo_seq_no(2);
                p.set_next_hop_mtu(3);
                p.set_rest_of_header(4);
                let _ = p.data_mut();
                p.fill_checksum();
                p.reply_in_place();
                prop_assert!(p.verify_checksum());
            }
            let _ = emit_error(&mut bytes, Icmpv4Message::TimeExceeded, 0, 0);
        }

        #[test]
        fn error_rules_never_panic(bytes in proptest::collection::vec(any::<u8>(), 20..40)) {
            let mut bytes = bytes;
            let mut ip = ipv4::Ipv4Packet::new_unchecked(&mut bytes[..]);
            ip.set_version(4);
            ip.set_header_len(20);
            if let Ok(ip) = ipv4::Ipv4Packet::new_checked(&bytes[..]) {
                let _ = icmp_error_allowed(&ip);
            }
        }

        #[test]
        fn repr_emit_parse_round_trips(repr in arb_repr(), fill in any::<u8>()) {
            let mut out = vec![fill; repr.buffer_len()];
            repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
            let p = Icmpv4Packet::new_checked(&out[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Icmpv4Repr::parse(&p), Ok(repr));
        }

        #[test]
        fn emit_error_matches_the_repr(code in any::<u8>(), mtu in any::<u16>(), quote in proptest::collection::vec(any::<u8>(), 0..68)) {
            let mut a = vec![0u8; HEADER_LEN];
            a.extend_from_slice(&quote);
            let mut b = a.clone();
            emit_error(&mut a, Icmpv4Message::DstUnreachable, code, mtu).unwrap();
            let repr = Icmpv4Repr::DstUnreachable { reason: code.into(), next_hop_mtu: mtu, quoted_len: quote.len() };
            repr.emit(&mut Icmpv4Packet::new_unchecked(&mut b[..]));
            prop_assert_eq!(a, b);
        }
    }
}
