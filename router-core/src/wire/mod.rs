//! Zero-copy packet views and owned representations of the headers the router handles.
//!
//! Every protocol has two layers, in the style of the smoltcp stack:
//!
//! - a **view** (`EthernetFrame<T>`, `ArpPacket<T>`, `Ipv4Packet<T>`, `Icmpv4Packet<T>`,
//!   `UdpPacket<T>`, `VxlanPacket<T>`) over any `T: AsRef<[u8]>`, reading fields at named byte
//!   offsets (`field::TTL`, ...), with setters when `T: AsMut<[u8]>`. Views never copy and never
//!   allocate: they are what the per-packet path uses.
//! - a **repr** (`EthernetRepr`, `ArpRepr`, `Ipv4Repr`, `Icmpv4Repr`, `UdpRepr`, `VxlanRepr`), a
//!   small owned value with `parse` (from a view, validating the semantics) and `emit` (into a
//!   view), used to build the packets the router originates.
//!
//! # The no-panic contract
//!
//! `new_unchecked` wraps a buffer without looking at it; a getter or setter on a buffer that is
//! too short panics. `check_len` validates the buffer against the header (lengths, and the few
//! fields that decide where other fields are, such as the IPv4 header length), and
//! `new_checked` is `new_unchecked` followed by `check_len`. **After `check_len` has succeeded,
//! no getter, setter, `payload()` or `payload_mut()` of the view panics**, whatever the bytes
//! are. Setters that change a length field (`set_header_len`, `set_total_len`, ...) void that
//! guarantee until `check_len` is called again. Untrusted input must always go through
//! `new_checked`.
//!
//! [`PacketBuf`] is a frame inside a larger buffer, with room in front: what the data path hands
//! around, and what the builders that grow a frame at its front (an encapsulation, an ICMP
//! error around the datagram it quotes) write into.
//!
//! `emit` functions of the reprs write into a buffer supplied by the caller and panic when it is
//! shorter than the repr's `buffer_len()` (or `header_len()`); callers size buffers from those.
//!
//! Multi-byte fields are big-endian (network order) on the wire; getters return host-order
//! values.

#[macro_use]
mod view;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod fragment;
pub mod icmpv4;
pub mod ipv4;
pub mod nat;
mod packet;
pub mod udp;
pub mod vxlan;

#[cfg(test)]
mod fixtures;

pub use self::arp::{ArpOperation, ArpPacket, ArpRepr};
pub use self::ethernet::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, ParseEthernetAddressError,
};
pub use self::fragment::{Fragment, FragmentError, Fragmenter};
pub use self::icmpv4::{
    Icmpv4DstUnreachable, Icmpv4ErrorRepr, Icmpv4Message, Icmpv4Packet, Icmpv4Repr,
    Icmpv4TimeExceeded,
};
pub use self::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use self::packet::{BadWindow, PacketBuf};
pub use self::udp::{UdpPacket, UdpRepr};
pub use self::vxlan::{
    FabricHeader, FabricTemplate, VxlanPacket, VxlanRepr, VXLAN_ENCAP_OVERHEAD, VXLAN_HEADER_LEN,
    VXLAN_PORT,
};

pub(crate) use self::view::FieldValue;

/// Why a buffer is not a valid packet of the expected kind.
///
/// One variant per failure, so that the data path can count each one under its own name. Each
/// variant displays a one-line message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header, or than a length that a header field claims.
    #[error("truncated: the buffer is shorter than the header or than the length it claims")]
    Truncated,
    /// The IP version field is not 4 (RFC 1812 section 5.2.2).
    #[error("bad IP version: not 4")]
    BadVersion,
    /// The IPv4 header length (IHL) is below 5 words (RFC 1812 section 5.2.2).
    #[error("bad header length: IHL below 5")]
    BadHeaderLength,
    /// A total-length field (IPv4 total length, UDP length) is smaller than its own header
    /// (RFC 1812 section 5.2.2, RFC 768).
    #[error("bad total length: smaller than the header")]
    BadTotalLength,
    /// A checksum does not verify (RFC 1071).
    #[error("bad checksum")]
    BadChecksum,
    /// A field holds a value the protocol forbids (for example a VXLAN header without the I flag,
    /// RFC 7348 section 5).
    #[error("malformed: a field holds a value the protocol forbids")]
    Malformed,
    /// A valid packet of a kind this router does not handle (for example ARP for a hardware type
    /// other than Ethernet, or an IPv4 fragment where a whole datagram is needed).
    #[error("unsupported: valid, but of a kind this router does not handle")]
    Unsupported,
}

/// The result of parsing or checking a packet.
pub type Result<T> = core::result::Result<T, Error>;

field_value_via!(
    std::net::Ipv4Addr => u32,
    EthernetAddress => [u8; 6],
    EtherType => u16,
    IpProtocol => u8,
    ArpOperation => u16,
    Icmpv4Message => u8,
);

/// The buffer holds at least `len` bytes, else [`Error::Truncated`].
#[inline(always)]
pub(crate) fn check_holds(b: &[u8], len: usize) -> Result<()> {
    if b.len() < len {
        return Err(Error::Truncated);
    }
    Ok(())
}

/// A length that a header field claims (`claimed` bytes) covers at least `min` bytes, else
/// `too_short`, and the buffer holds it, else [`Error::Truncated`]. A longer buffer is fine:
/// Ethernet pads short frames, and what follows is bounded by the claimed length.
#[inline(always)]
pub(crate) fn check_claimed(b: &[u8], claimed: usize, min: usize, too_short: Error) -> Result<()> {
    if claimed < min {
        return Err(too_short);
    }
    check_holds(b, claimed)
}

/// Reads a big-endian `u16` at `at`: one bounds check for both bytes.
#[inline(always)]
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    let w = &b[at..at + 2];
    u16::from_be_bytes([w[0], w[1]])
}

/// Reads a big-endian `u32` at `at`: one bounds check for the four bytes.
#[inline(always)]
pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    let w = &b[at..at + 4];
    u32::from_be_bytes([w[0], w[1], w[2], w[3]])
}

/// Writes `value` big-endian at `at`.
#[inline(always)]
pub(crate) fn write_u16(b: &mut [u8], at: usize, value: u16) {
    b[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Writes `value` big-endian at `at`.
#[inline(always)]
pub(crate) fn write_u32(b: &mut [u8], at: usize, value: u32) {
    b[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_distinct_messages() {
        let all = [
            Error::Truncated,
            Error::BadVersion,
            Error::BadHeaderLength,
            Error::BadTotalLength,
            Error::BadChecksum,
            Error::Malformed,
            Error::Unsupported,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(!a.to_string().is_empty());
            for b in &all[i + 1..] {
                assert_ne!(a.to_string(), b.to_string());
            }
        }
        assert_eq!(Error::BadChecksum.to_string(), "bad checksum");
    }

    #[test]
    fn byte_helpers_are_big_endian() {
        let mut b = [0u8; 8];
        write_u16(&mut b, 1, 0x1234);
        write_u32(&mut b, 3, 0xdead_beef);
        assert_eq!(b, [0, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0]);
        assert_eq!(read_u16(&b, 1), 0x1234);
        assert_eq!(read_u32(&b, 3), 0xdead_beef);
    }
}
