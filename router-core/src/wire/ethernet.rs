//! Ethernet II frames (IEEE 802.3) with at most one IEEE 802.1Q VLAN tag.
//!
//! The frame starts at the destination address; the preamble and the FCS are not part of the
//! buffer (the NIC strips them).

use core::fmt;
use core::str::FromStr;

use super::{read_u16, write_u16, Error, Result};

/// A 48-bit Ethernet (MAC) address, in network (transmission) order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Self = Self([0xff; 6]);

    /// The all-zero address, as an ARP request carries for the unknown target.
    pub const ZERO: Self = Self([0; 6]);

    /// An address from its six octets, first octet first.
    #[inline]
    pub const fn new(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8) -> Self {
        Self([a, b, c, d, e, f])
    }

    /// The six octets.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Whether this is ff:ff:ff:ff:ff:ff.
    #[inline]
    pub const fn is_broadcast(&self) -> bool {
        let a = self.0;
        a[0] & a[1] & a[2] & a[3] & a[4] & a[5] == 0xff
    }

    /// Whether the group bit (the least significant bit of the first octet, IEEE 802 section
    /// 8.2) is set: multicast, broadcast included.
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this is an individual (unicast) address: the group bit is clear.
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Whether the locally administered bit (the second least significant bit of the first
    /// octet) is set, as for the `fa:16:3e` and `fa:16:3f` prefixes of cloud ports.
    #[inline]
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// The address packed into the low 48 bits of a `u64`, first octet most significant
    /// (network order), so that it fits in one atomic word. The high 16 bits are zero.
    #[inline]
    pub const fn to_u64(self) -> u64 {
        let [a, b, c, d, e, f] = self.0;
        u64::from_be_bytes([0, 0, a, b, c, d, e, f])
    }

    /// The inverse of [`to_u64`](Self::to_u64): the low 48 bits of `value`; the high 16 bits are
    /// ignored.
    #[inline]
    pub const fn from_u64(value: u64) -> Self {
        let [_, _, a, b, c, d, e, f] = value.to_be_bytes();
        Self([a, b, c, d, e, f])
    }
}

impl From<[u8; 6]> for EthernetAddress {
    #[inline]
    fn from(octets: [u8; 6]) -> Self {
        Self(octets)
    }
}

impl From<EthernetAddress> for [u8; 6] {
    #[inline]
    fn from(address: EthernetAddress) -> Self {
        address.0
    }
}

impl fmt::Display for EthernetAddress {
    /// `aa:bb:cc:dd:ee:ff`, lower case.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EthernetAddress({self})")
    }
}

/// Why a string is not an Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseEthernetAddressError {
    /// Not six octets separated by `:`.
    #[error("invalid MAC address: expected six hexadecimal octets separated by ':' (like aa:bb:cc:dd:ee:ff), found {found} field(s)")]
    WrongOctetCount {
        /// How many `:`-separated fields the string has.
        found: usize,
    },
    /// One field is not a one- or two-digit hexadecimal number.
    #[error("invalid MAC address: octet {position} is not one or two hexadecimal digits (like aa:bb:cc:dd:ee:ff)")]
    BadOctet {
        /// The position of the octet, 1 to 6.
        position: usize,
    },
}

impl FromStr for EthernetAddress {
    type Err = ParseEthernetAddressError;

    /// Parses `aa:bb:cc:dd:ee:ff` (either case; one-digit octets accepted).
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let found = s.split(':').count();
        if found != 6 {
            return Err(ParseEthernetAddressError::WrongOctetCount { found });
        }
        let mut octets = [0u8; 6];
        for (i, (octet, text)) in octets.iter_mut().zip(s.split(':')).enumerate() {
            let bad = ParseEthernetAddressError::BadOctet { position: i + 1 };
            // Checked by hand: `from_str_radix` would also accept a leading '+'.
            if !(1..=2).contains(&text.len()) || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad);
            }
            *octet = u8::from_str_radix(text, 16).map_err(|_| bad)?;
        }
        Ok(Self(octets))
    }
}

/// An EtherType (IEEE 802.3 Length/Type field, values from the IEEE registry). A newtype over
/// the wire value: match against the associated constants; any other value is unknown to this
/// router.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// Internet Protocol version 4 (RFC 894).
    pub const IPV4: Self = Self(0x0800);
    /// Address Resolution Protocol (RFC 826).
    pub const ARP: Self = Self(0x0806);
    /// An IEEE 802.1Q VLAN tag follows.
    pub const VLAN: Self = Self(0x8100);
    /// Internet Protocol version 6 (RFC 2464); recognised only to be counted and dropped.
    pub const IPV6: Self = Self(0x86dd);

    /// Whether this is one of the named constants.
    #[inline]
    pub const fn is_known(self) -> bool {
        matches!(self.0, 0x0800 | 0x0806 | 0x8100 | 0x86dd)
    }
}

impl From<u16> for EtherType {
    #[inline]
    fn from(value: u16) -> Self {
        Self(value)
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(value: EtherType) -> Self {
        value.0
    }
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4 => f.write_str("Ipv4"),
            Self::ARP => f.write_str("Arp"),
            Self::VLAN => f.write_str("Vlan"),
            Self::IPV6 => f.write_str("Ipv6"),
            Self(other) => write!(f, "Unknown({other:#06x})"),
        }
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4 => f.write_str("IPv4"),
            Self::ARP => f.write_str("ARP"),
            Self::VLAN => f.write_str("802.1Q"),
            Self::IPV6 => f.write_str("IPv6"),
            Self(other) => write!(f, "{other:#06x}"),
        }
    }
}

/// Byte offsets of the fields; each constant is the offset of the field's first byte.
pub mod field {
    /// Destination address, 6 bytes.
    pub const DESTINATION: usize = 0;
    /// Source address, 6 bytes.
    pub const SOURCE: usize = 6;
    /// EtherType, 2 bytes: `0x8100` when a VLAN tag follows.
    pub const ETHERTYPE: usize = 12;
    /// 802.1Q tag control information (PCP 3 bits, DEI 1 bit, VLAN id 12 bits), 2 bytes.
    pub const VLAN_TCI: usize = 14;
    /// The EtherType after the VLAN tag, 2 bytes.
    pub const VLAN_ETHERTYPE: usize = 16;
}

/// The length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// The length of an 802.1Q tag (TPID and TCI).
pub const VLAN_TAG_LEN: usize = 4;
/// The length of an Ethernet II header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = HEADER_LEN + VLAN_TAG_LEN;
/// The largest VLAN id; 4095 is reserved (IEEE 802.1Q table 9-2).
pub const VLAN_ID_MAX: u16 = 4094;
/// The mask of the VLAN id in the tag control information.
const VLAN_ID_MASK: u16 = 0x0fff;

view! {
    /// A view of an Ethernet II frame with at most one 802.1Q tag.
    ///
    /// After [`check_len`](Self::check_len) has succeeded no method panics.
    pub struct EthernetFrame;
}

fields! {
    EthernetFrame {
        /// The destination address.
        dst_addr / set_dst_addr: EthernetAddress = field::DESTINATION;
        /// The source address.
        src_addr / set_src_addr: EthernetAddress = field::SOURCE;
    }
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Checks that the buffer holds the whole header, the VLAN tag included when the
    /// EtherType says one is there. Returns [`Error::Truncated`] otherwise.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        // Written as the same `header_len()` that the getters use, so that the compiler sees
        // their bounds checks are already done.
        if len < HEADER_LEN || len < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The destination and source addresses, each as the low 48 bits of a word
    /// ([`EthernetAddress::to_u64`]): two 8-byte loads instead of twelve byte loads, for the
    /// per-packet path.
    #[inline]
    pub fn addrs_u64(&self) -> (u64, u64) {
        let b = &self.buffer.as_ref()[..field::ETHERTYPE];
        let first = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let second = u64::from_be_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]);
        (first >> 16, second & 0xffff_ffff_ffff)
    }

    /// The EtherType at offset 12: [`EtherType::VLAN`] for a tagged frame.
    #[inline]
    pub fn outer_ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Whether the frame carries an 802.1Q tag.
    #[inline]
    pub fn is_tagged(&self) -> bool {
        self.outer_ethertype() == EtherType::VLAN
    }

    /// The EtherType of the payload: the one after the VLAN tag when the frame is tagged.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        // The last two bytes of the header: offset 12, or 16 (`field::VLAN_ETHERTYPE`) after a
        // tag. Slicing the header the way `check_len` bounds it lets the compiler drop the
        // bounds check; the header is never shorter than 14 bytes.
        match &self.buffer.as_ref()[..self.header_len()] {
            [.., hi, lo] => EtherType(u16::from_be_bytes([*hi, *lo])),
            [] | [_] => unreachable!("an Ethernet header is at least 14 bytes"),
        }
    }

    /// The 802.1Q tag control information (PCP, DEI, VLAN id), if the frame is tagged.
    #[inline]
    pub fn vlan_tci(&self) -> Option<u16> {
        if self.is_tagged() {
            Some(read_u16(self.buffer.as_ref(), field::VLAN_TCI))
        } else {
            None
        }
    }

    /// The VLAN id (12 bits), if the frame is tagged. 0 means a priority-only tag.
    #[inline]
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci().map(|tci| tci & VLAN_ID_MASK)
    }

    /// The priority code point (3 bits, IEEE 802.1Q section 6.9.3), if the frame is tagged.
    #[inline]
    pub fn pcp(&self) -> Option<u8> {
        self.vlan_tci().map(|tci| (tci >> 13) as u8)
    }

    /// The length of the header: 14, or 18 with a VLAN tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The payload: everything after the header (any trailing padding included; the
    /// network-layer view bounds it by its own length field).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the EtherType of the payload: the one after the tag when the frame is tagged.
    /// Setting [`EtherType::VLAN`] on an untagged frame adds a tag to the header: call
    /// `check_len` again before any other method.
    #[inline]
    pub fn set_ethertype(&mut self, value: EtherType) {
        let at = if self.is_tagged() {
            field::VLAN_ETHERTYPE
        } else {
            field::ETHERTYPE
        };
        write_u16(self.buffer.as_mut(), at, value.0);
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

/// An Ethernet II header with at most one 802.1Q tag, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source address.
    pub src: EthernetAddress,
    /// Destination address.
    pub dst: EthernetAddress,
    /// The EtherType of the payload (after the tag, if any).
    pub ethertype: EtherType,
    /// The VLAN id of the 802.1Q tag, if any (0 to 4095; PCP and DEI are emitted as zero).
    pub vlan: Option<u16>,
}

impl EthernetRepr {
    /// Parses a frame. A frame with a second 802.1Q tag after the first is
    /// [`Error::Unsupported`]: this router handles one tag at most.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<Self> {
        frame.check_len()?;
        let ethertype = frame.ethertype();
        if ethertype == EtherType::VLAN {
            return Err(Error::Unsupported);
        }
        Ok(Self {
            src: frame.src_addr(),
            dst: frame.dst_addr(),
            ethertype,
            vlan: frame.vlan_id(),
        })
    }

    /// The length of the header this repr emits: 14, or 18 with a VLAN tag.
    #[inline]
    pub const fn header_len(&self) -> usize {
        match self.vlan {
            Some(_) => VLAN_HEADER_LEN,
            None => HEADER_LEN,
        }
    }

    /// Writes the header at the start of `frame`.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than [`header_len`](Self::header_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        let b = &mut frame.buffer.as_mut()[..self.header_len()];
        b[field::DESTINATION..field::DESTINATION + 6].copy_from_slice(&self.dst.0);
        b[field::SOURCE..field::SOURCE + 6].copy_from_slice(&self.src.0);
        match self.vlan {
            Some(id) => {
                debug_assert!(id <= VLAN_ID_MASK, "VLAN id {id} does not fit 12 bits");
                write_u16(b, field::ETHERTYPE, EtherType::VLAN.0);
                write_u16(b, field::VLAN_TCI, id & VLAN_ID_MASK);
                write_u16(b, field::VLAN_ETHERTYPE, self.ethertype.0);
            }
            None => write_u16(b, field::ETHERTYPE, self.ethertype.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ARP_REQUEST_FRAME, ICMP_ECHO_FRAME, VLAN_UDP_FRAME};
    use super::*;
    use proptest::prelude::*;

    const M1: EthernetAddress = EthernetAddress::new(0xfa, 0x16, 0x3e, 0x11, 0x22, 0x33);
    const GW1: EthernetAddress = EthernetAddress::new(0xfa, 0x16, 0x3e, 0xaa, 0x00, 0x01);

    /// Calls every getter; used to show that none panics after a successful check.
    fn read_everything<T: AsRef<[u8]>>(f: &EthernetFrame<T>) -> usize {
        let _ = (
            f.dst_addr(),
            f.src_addr(),
            f.outer_ethertype(),
            f.ethertype(),
        );
        let _ = (f.is_tagged(), f.vlan_tci(), f.vlan_id(), f.pcp());
        f.header_len() + f.payload().len()
    }

    #[test]
    fn parses_an_untagged_frame() {
        let f = EthernetFrame::new_checked(&ICMP_ECHO_FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), GW1);
        assert_eq!(f.src_addr(), M1);
        assert_eq!(f.outer_ethertype(), EtherType::IPV4);
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert!(!f.is_tagged());
        assert_eq!((f.vlan_tci(), f.vlan_id(), f.pcp()), (None, None, None));
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &ICMP_ECHO_FRAME[14..]);
        assert_eq!(read_everything(&f), ICMP_ECHO_FRAME.len());
    }

    #[test]
    fn parses_an_arp_broadcast() {
        let f = EthernetFrame::new_checked(&ARP_REQUEST_FRAME[..]).unwrap();
        assert!(f.dst_addr().is_broadcast());
        assert_eq!(
            f.src_addr(),
            EthernetAddress::new(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)
        );
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert_eq!(f.payload().len(), 46);
    }

    #[test]
    fn parses_a_tagged_frame() {
        let f = EthernetFrame::new_checked(&VLAN_UDP_FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), GW1);
        assert_eq!(f.src_addr(), M1);
        assert_eq!(f.outer_ethertype(), EtherType::VLAN);
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert!(f.is_tagged());
        assert_eq!(f.vlan_tci(), Some(100));
        assert_eq!(f.vlan_id(), Some(100));
        assert_eq!(f.pcp(), Some(0));
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload(), &VLAN_UDP_FRAME[18..]);

        let mut with_priority = VLAN_UDP_FRAME;
        with_priority[14] = 0xb0; // PCP 5, DEI 1, VLAN id 100.
        let f = EthernetFrame::new_checked(&with_priority[..]).unwrap();
        assert_eq!((f.pcp(), f.vlan_id()), (Some(5), Some(100)));
    }

    #[test]
    fn repr_round_trips_byte_exact() {
        for frame in [
            &ICMP_ECHO_FRAME[..],
            &ARP_REQUEST_FRAME[..],
            &VLAN_UDP_FRAME[..],
        ] {
            let repr = EthernetRepr::parse(&EthernetFrame::new_checked(frame).unwrap()).unwrap();
            let mut out = vec![0u8; repr.header_len()];
            repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
            assert_eq!(out, &frame[..repr.header_len()]);
        }
        let repr = EthernetRepr::parse(&EthernetFrame::new_checked(&VLAN_UDP_FRAME[..]).unwrap());
        assert_eq!(
            repr,
            Ok(EthernetRepr {
                src: M1,
                dst: GW1,
                ethertype: EtherType::IPV4,
                vlan: Some(100)
            })
        );
    }

    #[test]
    fn setters_write_the_fields() {
        let mut frame = VLAN_UDP_FRAME;
        let mut f = EthernetFrame::new_checked(&mut frame[..]).unwrap();
        f.set_dst_addr(M1);
        f.set_src_addr(GW1);
        f.set_ethertype(EtherType::ARP);
        f.payload_mut()[0] = 0xee;
        assert_eq!(
            (f.dst_addr(), f.src_addr(), f.ethertype()),
            (M1, GW1, EtherType::ARP)
        );
        assert_eq!(f.vlan_id(), Some(100));
        assert_eq!(frame[16..19], [0x08, 0x06, 0xee]);
    }

    #[test]
    fn short_buffers_are_truncated() {
        assert_eq!(
            EthernetFrame::new_checked(&ICMP_ECHO_FRAME[..13]).err(),
            Some(Error::Truncated)
        );
        assert!(EthernetFrame::new_checked(&ICMP_ECHO_FRAME[..14]).is_ok());
        assert_eq!(
            EthernetFrame::new_checked(&VLAN_UDP_FRAME[..17]).err(),
            Some(Error::Truncated)
        );
        assert!(EthernetFrame::new_checked(&VLAN_UDP_FRAME[..18]).is_ok());
        assert_eq!(
            EthernetFrame::new_checked(&[][..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn stacked_tags_are_unsupported() {
        let mut frame = VLAN_UDP_FRAME;
        frame[16..18].copy_from_slice(&[0x81, 0x00]);
        let f = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(f.ethertype(), EtherType::VLAN);
        assert_eq!(EthernetRepr::parse(&f), Err(Error::Unsupported));
    }

    #[test]
    fn address_predicates() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(!EthernetAddress::BROADCAST.is_unicast());
        let mcast = EthernetAddress::new(0x01, 0x00, 0x5e, 0x00, 0x00, 0x01);
        assert!(mcast.is_multicast() && !mcast.is_broadcast() && !mcast.is_local());
        assert!(M1.is_unicast() && M1.is_local() && !M1.is_broadcast());
        let global = EthernetAddress::new(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
        assert!(global.is_local());
        assert!(!EthernetAddress::new(0x00, 0x1b, 0x21, 1, 2, 3).is_local());
        assert_eq!(M1.as_bytes(), &[0xfa, 0x16, 0x3e, 0x11, 0x22, 0x33]);
    }

    #[test]
    fn address_packs_into_48_bits() {
        assert_eq!(M1.to_u64(), 0x0000_fa16_3e11_2233);
        assert_eq!(EthernetAddress::from_u64(0xffff_fa16_3e11_2233), M1);
        assert_eq!(EthernetAddress::BROADCAST.to_u64(), 0xffff_ffff_ffff);
    }

    #[test]
    fn address_text_form() {
        assert_eq!(M1.to_string(), "fa:16:3e:11:22:33");
        assert_eq!(format!("{M1:?}"), "EthernetAddress(fa:16:3e:11:22:33)");
        assert_eq!("FA:16:3e:11:22:33".parse(), Ok(M1));
        assert_eq!(
            "1:2:3:4:5:6".parse(),
            Ok(EthernetAddress::new(1, 2, 3, 4, 5, 6))
        );
        use ParseEthernetAddressError::*;
        assert_eq!(
            "fa:16:3e:11:22".parse::<EthernetAddress>(),
            Err(WrongOctetCount { found: 5 })
        );
        assert_eq!(
            "".parse::<EthernetAddress>(),
            Err(WrongOctetCount { found: 1 })
        );
        assert_eq!(
            "fa:16:3e:11:22:333".parse::<EthernetAddress>(),
            Err(BadOctet { position: 6 })
        );
        assert_eq!(
            "fa:16::11:22:33".parse::<EthernetAddress>(),
            Err(BadOctet { position: 3 })
        );
        assert_eq!(
            "fa:+1:3e:11:22:33".parse::<EthernetAddress>(),
            Err(BadOctet { position: 2 })
        );
        assert_eq!(
            "fa-16-3e-11-22-33".parse::<EthernetAddress>(),
            Err(WrongOctetCount { found: 1 })
        );
        let message = "xx:16:3e:11:22:33"
            .parse::<EthernetAddress>()
            .unwrap_err()
            .to_string();
        assert!(message.contains("octet 1"), "{message}");
    }

    #[test]
    fn ethertype_names() {
        assert_eq!(format!("{:?}", EtherType::IPV4), "Ipv4");
        assert_eq!(format!("{:?}", EtherType(0x88cc)), "Unknown(0x88cc)");
        assert_eq!(EtherType::VLAN.to_string(), "802.1Q");
        assert!(EtherType::ARP.is_known() && !EtherType(0x88cc).is_known());
        assert_eq!(u16::from(EtherType::from(0x0806)), 0x0806);
    }

    fn arb_address() -> impl Strategy<Value = EthernetAddress> {
        any::<[u8; 6]>().prop_map(EthernetAddress)
    }

    fn arb_repr() -> impl Strategy<Value = EthernetRepr> {
        let ethertype = any::<u16>()
            .prop_filter("one tag at most", |&t| t != 0x8100)
            .prop_map(EtherType);
        (
            arb_address(),
            arb_address(),
            ethertype,
            proptest::option::of(0u16..=4095),
        )
            .prop_map(|(src, dst, ethertype, vlan)| EthernetRepr {
                src,
                dst,
                ethertype,
                vlan,
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = bytes;
            if let Ok(f) = EthernetFrame::new_checked(&bytes[..]) {
                prop_assert_eq!(read_everything(&f), bytes.len());
                let _ = EthernetRepr::parse(&f);
            }
            if let Ok(mut f) = EthernetFrame::new_checked(&mut bytes[..]) {
                f.set_dst_addr(M1);
                f.set_src_addr(GW1);
                f.set_ethertype(EtherType::IPV4);
                let _ = f.payload_mut();
            }
        }

        #[test]
        fn tagged_prefixes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut bytes = VLAN_UDP_FRAME[..14].to_vec();
            bytes.extend_from_slice(&tail);
            if let Ok(f) = EthernetFrame::new_checked(&bytes[..]) {
                prop_assert_eq!(read_everything(&f), bytes.len());
            }
        }

        #[test]
        fn repr_emit_parse_round_trips(repr in arb_repr(), payload_len in 0usize..8) {
            let mut buffer = vec![0u8; repr.header_len() + payload_len];
            repr.emit(&mut EthernetFrame::new_unchecked(&mut buffer[..]));
            let frame = EthernetFrame::new_checked(&buffer[..]).unwrap();
            prop_assert_eq!(frame.header_len(), repr.header_len());
            prop_assert_eq!(frame.payload().len(), payload_len);
            prop_assert_eq!(EthernetRepr::parse(&frame), Ok(repr));
        }

        #[test]
        fn address_u64_and_text_round_trip(address in arb_address()) {
            prop_assert_eq!(EthernetAddress::from_u64(address.to_u64()), address);
            prop_assert!(address.to_u64() >> 48 == 0);
            prop_assert_eq!(address.to_string().parse(), Ok(address));
        }
    }
}
