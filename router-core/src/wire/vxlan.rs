//! VXLAN headers (RFC 7348): the 8 bytes between the outer UDP header and the inner Ethernet
//! frame.

use super::{ethernet, ipv4, read_u32, udp, write_u32, Error, Result};

/// The IANA-assigned UDP destination port of VXLAN (RFC 7348 section 5).
pub const VXLAN_PORT: u16 = 4789;
/// The length of the VXLAN header.
pub const VXLAN_HEADER_LEN: usize = 8;
/// What encapsulation adds to an inner frame: outer Ethernet (14), IPv4 (20), UDP (8) and
/// VXLAN (8) headers. A tenant MTU must leave this much room under the fabric MTU.
pub const VXLAN_ENCAP_OVERHEAD: usize = 50;

const _: () = assert!(
    VXLAN_ENCAP_OVERHEAD
        == ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN + VXLAN_HEADER_LEN
);

/// The largest VNI (24 bits).
pub const VNI_MAX: u32 = 0x00ff_ffff;
/// The I flag: the VNI is valid (RFC 7348 section 5).
pub const FLAG_VNI: u8 = 0x08;
/// The lowest outer UDP source port used for flow entropy: the dynamic/private range
/// 49152-65535 that RFC 7348 section 5 recommends.
pub const SRC_PORT_MIN: u16 = 49152;

/// Byte offsets of the fields (RFC 7348 section 5); each constant is the offset of the
/// field's first byte.
pub mod field {
    /// Flags: `RRRRIRRR`, 1 byte.
    pub const FLAGS: usize = 0;
    /// Reserved, 3 bytes.
    pub const RESERVED0: usize = 1;
    /// VNI (24 bits, high 3 bytes) and a reserved byte: read as one 32-bit word.
    pub const VNI: usize = 4;
    /// Reserved, 1 byte.
    pub const RESERVED1: usize = 7;
    /// The inner Ethernet frame.
    pub const PAYLOAD: usize = 8;
}

/// The outer UDP source port for a flow whose inner headers hash to `hash`: spread over
/// 49152-65535 (RFC 7348 section 5), so that the fabric's ECMP and the receiver's RSS tell
/// the flows between two hosts apart.
#[inline]
pub const fn entropy_src_port(hash: u32) -> u16 {
    let folded = (hash ^ (hash >> 16)) as u16;
    SRC_PORT_MIN | (folded & !SRC_PORT_MIN)
}

/// A view of a VXLAN header and the inner frame after it.
///
/// After [`check_len`](Self::check_len) has succeeded no method panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    /// Wraps `buffer` without checking it.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` and checks it with [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the 8-byte header ([`Error::Truncated`]) and that the I
    /// flag is set ([`Error::Malformed`]: "the I flag MUST be set to 1 for a valid VXLAN
    /// Network ID", RFC 7348 section 5). The reserved bits are ignored on receipt, as that
    /// section says.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < VXLAN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::FLAGS] & FLAG_VNI == 0 {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// Returns the buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Whether the I flag (valid VNI) is set.
    #[inline]
    pub fn has_vni(&self) -> bool {
        self.flags() & FLAG_VNI != 0
    }

    /// The VXLAN network identifier, 24 bits.
    #[inline]
    pub fn vni(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VNI) >> 8
    }

    /// The 24 reserved bits after the flags.
    #[inline]
    pub fn reserved0(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::FLAGS) & VNI_MAX
    }

    /// The reserved byte after the VNI.
    #[inline]
    pub fn reserved1(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED1]
    }

    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    /// Sets the flags byte. Clearing the I flag voids the check.
    #[inline]
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets the VNI (the low 24 bits of `value`), keeping the reserved byte after it.
    #[inline]
    pub fn set_vni(&mut self, value: u32) {
        debug_assert!(value <= VNI_MAX, "VNI {value} does not fit 24 bits");
        let b = self.buffer.as_mut();
        let word = (value << 8) | u32::from(b[field::RESERVED1]);
        write_u32(b, field::VNI, word);
    }

    /// Sets the 24 reserved bits after the flags (the low 24 bits of `value`).
    #[inline]
    pub fn set_reserved0(&mut self, value: u32) {
        let b = self.buffer.as_mut();
        let word = (u32::from(b[field::FLAGS]) << 24) | (value & VNI_MAX);
        write_u32(b, field::FLAGS, word);
    }

    /// Sets the reserved byte after the VNI.
    #[inline]
    pub fn set_reserved1(&mut self, value: u8) {
        self.buffer.as_mut()[field::RESERVED1] = value;
    }

    /// The inner Ethernet frame, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// A VXLAN header, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VxlanRepr {
    /// The VXLAN network identifier, 24 bits.
    pub vni: u32,
}

impl VxlanRepr {
    /// Parses a header (checked as by [`VxlanPacket::check_len`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &VxlanPacket<T>) -> Result<Self> {
        packet.check_len()?;
        Ok(Self { vni: packet.vni() })
    }

    /// The length of the header: 8.
    #[inline]
    pub const fn header_len(&self) -> usize {
        VXLAN_HEADER_LEN
    }

    /// Writes the header at the start of `packet`: the I flag, the VNI, and zero in every
    /// reserved bit (RFC 7348 section 5).
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than 8 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut VxlanPacket<T>) {
        debug_assert!(self.vni <= VNI_MAX, "VNI {} does not fit 24 bits", self.vni);
        let b = &mut packet.buffer.as_mut()[..VXLAN_HEADER_LEN];
        write_u32(b, field::FLAGS, u32::from(FLAG_VNI) << 24);
        write_u32(b, field::VNI, (self.vni & VNI_MAX) << 8);
    }
}

#[cfg(test)]
mod tests {
    use super::super::ethernet::{EtherType, EthernetAddress, EthernetFrame};
    use super::super::fixtures::VXLAN_FRAME;
    use super::super::ipv4::Ipv4Packet;
    use super::super::udp::UdpPacket;
    use super::*;
    use proptest::prelude::*;

    /// Where the VXLAN header starts in the fixture: outer Ethernet, IPv4 and UDP headers.
    const AT: usize = 42;

    /// Calls every getter; used to show that none panics after a successful check.
    fn read_everything<T: AsRef<[u8]>>(p: &VxlanPacket<T>) -> usize {
        let _ = (
            p.flags(),
            p.has_vni(),
            p.vni(),
            p.reserved0(),
            p.reserved1(),
        );
        p.payload().len()
    }

    #[test]
    fn overhead_is_the_sum_of_the_outer_headers() {
        assert_eq!(VXLAN_ENCAP_OVERHEAD, 14 + 20 + 8 + 8);
        assert_eq!(
            VXLAN_ENCAP_OVERHEAD,
            ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN + VXLAN_HEADER_LEN
        );
        assert_eq!(VXLAN_FRAME.len() - VXLAN_ENCAP_OVERHEAD, 50); // the inner frame
    }

    #[test]
    fn walks_the_encapsulated_frame() {
        let outer = EthernetFrame::new_checked(&VXLAN_FRAME[..]).unwrap();
        let ip = Ipv4Packet::new_checked(outer.payload()).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.dst_port(), VXLAN_PORT);
        assert_eq!(udp.src_port(), 51361);
        let vxlan = VxlanPacket::new_checked(udp.payload()).unwrap();
        assert_eq!(vxlan.flags(), 0x08);
        assert!(vxlan.has_vni());
        assert_eq!(vxlan.vni(), 5001);
        assert_eq!((vxlan.reserved0(), vxlan.reserved1()), (0, 0));
        assert_eq!(vxlan.payload(), &VXLAN_FRAME[AT + 8..]);
        let inner = EthernetFrame::new_checked(vxlan.payload()).unwrap();
        assert_eq!(
            inner.src_addr(),
            EthernetAddress::new(0xfa, 0x16, 0x3f, 0, 0, 0x0a)
        );
        assert_eq!(
            inner.dst_addr(),
            EthernetAddress::new(0xfa, 0x16, 0x3e, 0x44, 0x55, 0x66)
        );
        assert_eq!(inner.ethertype(), EtherType::IPV4);
        assert_eq!(read_everything(&vxlan), 50);
    }

    #[test]
    fn repr_round_trips_byte_exact() {
        let p = VxlanPacket::new_checked(&VXLAN_FRAME[AT..]).unwrap();
        let repr = VxlanRepr::parse(&p).unwrap();
        assert_eq!(repr, VxlanRepr { vni: 5001 });
        let mut out = [0xffu8; VXLAN_HEADER_LEN];
        repr.emit(&mut VxlanPacket::new_unchecked(&mut out[..]));
        assert_eq!(out[..], VXLAN_FRAME[AT..AT + VXLAN_HEADER_LEN]);
    }

    #[test]
    fn check_len_names_every_failure() {
        assert_eq!(
            VxlanPacket::new_checked(&VXLAN_FRAME[AT..AT + 7]).err(),
            Some(Error::Truncated)
        );
        assert!(VxlanPacket::new_checked(&VXLAN_FRAME[AT..AT + 8]).is_ok());
        let mut bytes = VXLAN_FRAME;
        bytes[AT] = 0x00;
        assert_eq!(
            VxlanPacket::new_checked(&bytes[AT..]).err(),
            Some(Error::Malformed)
        );
        // Reserved bits are ignored on receipt.
        bytes[AT] = 0xff;
        bytes[AT + 7] = 0xff;
        let p = VxlanPacket::new_checked(&bytes[AT..]).unwrap();
        assert_eq!(VxlanRepr::parse(&p), Ok(VxlanRepr { vni: 5001 }));
    }

    #[test]
    fn setters_keep_the_neighbouring_fields() {
        let mut bytes = [0u8; 8];
        let mut p = VxlanPacket::new_unchecked(&mut bytes[..]);
        p.set_flags(FLAG_VNI);
        p.set_reserved1(0xaa);
        p.set_vni(VNI_MAX);
        p.set_reserved0(0x12_3456);
        assert_eq!(
            (p.flags(), p.vni(), p.reserved0(), p.reserved1()),
            (8, VNI_MAX, 0x12_3456, 0xaa)
        );
        assert_eq!(bytes, [0x08, 0x12, 0x34, 0x56, 0xff, 0xff, 0xff, 0xaa]);
    }

    #[test]
    fn entropy_ports_stay_in_the_dynamic_range() {
        assert_eq!(entropy_src_port(0), 49152);
        assert_eq!(entropy_src_port(u32::MAX), 49152);
        assert_eq!(entropy_src_port(0x3fff), 65535);
        assert_ne!(entropy_src_port(0x0001_0000), entropy_src_port(0x0002_0000));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            let mut bytes = bytes;
            if let Ok(p) = VxlanPacket::new_checked(&bytes[..]) {
                prop_assert_eq!(read_everything(&p) + 8, bytes.len());
                let _ = VxlanRepr::parse(&p);
            }
            if let Ok(mut p) = VxlanPacket::new_checked(&mut bytes[..]) {
                p.set_vni(1);
                p.set_reserved0(2);
                p.set_reserved1(3);
                p.set_flags(FLAG_VNI);
                let _ = p.payload_mut();
            }
        }

        #[test]
        fn repr_emit_parse_round_trips(vni in 0u32..=VNI_MAX, fill in any::<u8>()) {
            let mut out = [fill; 12];
            let repr = VxlanRepr { vni };
            repr.emit(&mut VxlanPacket::new_unchecked(&mut out[..]));
            let p = VxlanPacket::new_checked(&out[..]).unwrap();
            prop_assert_eq!(VxlanRepr::parse(&p), Ok(repr));
            prop_assert_eq!((p.reserved0(), p.reserved1()), (0, 0));
            prop_assert_eq!(p.payload(), &[fill; 4][..]);
        }

        #[test]
        fn entropy_port_is_always_dynamic(hash in any::<u32>()) {
            prop_assert!(entropy_src_port(hash) >= SRC_PORT_MIN);
        }
    }
}
