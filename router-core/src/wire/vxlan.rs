//! VXLAN headers (RFC 7348): the 8 bytes between the outer UDP header and the inner Ethernet
//! frame.

use super::ethernet::{self, EtherType, EthernetAddress};
use super::ipv4::{self, IpProtocol};
use super::{
    check_holds, read_u16, read_u32, udp, write_u16, write_u32, Error, FieldValue, Result,
};

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

/// Where each outer header starts in an encapsulated frame.
const OUTER_IP: usize = ethernet::HEADER_LEN;
const OUTER_UDP: usize = OUTER_IP + ipv4::HEADER_LEN;
const OUTER_VXLAN: usize = OUTER_UDP + udp::HEADER_LEN;
const _: () = assert!(OUTER_VXLAN + VXLAN_HEADER_LEN == VXLAN_ENCAP_OVERHEAD);
// `FabricHeader::emit` writes neighbouring fields with one wide store each: the IPv4 fields
// from version to flags, TTL to checksum, the UDP header, and the VXLAN header.
const _: () = assert!(
    ipv4::field::FLAGS_FRAG_OFFSET + 2 == ipv4::field::TTL
        && ipv4::field::CHECKSUM + 2 == ipv4::field::SRC_ADDR
        && udp::field::CHECKSUM + 2 == udp::HEADER_LEN
);

/// The outer headers of a frame sent to a peer host: what the engine and the control thread
/// prepend to an inner frame.
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

impl FabricHeader {
    /// Writes outer Ethernet, IPv4 (TTL [`ipv4::ORIGINATED_TTL`], DF set: outer packets are
    /// never fragmented), UDP (checksum zero, as RFC 7348 section 5 allows over IPv4) and VXLAN
    /// headers in front of an inner frame of `inner_len` bytes, which the caller has checked
    /// fits an IPv4 total length.
    #[inline]
    pub fn emit(&self, o: &mut [u8; VXLAN_ENCAP_OVERHEAD], inner_len: usize) {
        let ip_len = (VXLAN_ENCAP_OVERHEAD - OUTER_IP + inner_len) as u16;
        let udp_len = (VXLAN_ENCAP_OVERHEAD - OUTER_UDP + inner_len) as u16;
        let protocol = u8::from(IpProtocol::Udp);
        // The IPv4 header checksum (RFC 1071) over the 16-bit words written below.
        let sum = 0x4500
            + u32::from(ip_len)
            + u32::from(self.ident)
            + u32::from(ipv4::FLAG_DONT_FRAG)
            + u32::from(u16::from_be_bytes([ipv4::ORIGINATED_TTL, protocol]))
            + (self.src_vtep >> 16)
            + (self.src_vtep & 0xffff)
            + (self.dst_vtep >> 16)
            + (self.dst_vtep & 0xffff);
        let sum = (sum & 0xffff) + (sum >> 16);
        let checksum = !((sum & 0xffff) + (sum >> 16)) as u16;
        // A few word stores at fixed offsets rather than fifty byte stores.
        o[ethernet::field::DESTINATION..][..6].copy_from_slice(&self.dst_mac);
        o[ethernet::field::SOURCE..][..6].copy_from_slice(&self.src_mac);
        write_u16(o, ethernet::field::ETHERTYPE, EtherType::IPV4.0);
        let version_to_flags = (0x4500u64 << 48)
            | (u64::from(ip_len) << 32)
            | (u64::from(self.ident) << 16)
            | u64::from(ipv4::FLAG_DONT_FRAG);
        write_u64(o, OUTER_IP + ipv4::field::VER_IHL, version_to_flags);
        let ttl_to_checksum = (u32::from(ipv4::ORIGINATED_TTL) << 24)
            | (u32::from(protocol) << 16)
            | u32::from(checksum);
        write_u32(o, OUTER_IP + ipv4::field::TTL, ttl_to_checksum);
        write_u32(o, OUTER_IP + ipv4::field::SRC_ADDR, self.src_vtep);
        write_u32(o, OUTER_IP + ipv4::field::DST_ADDR, self.dst_vtep);
        let udp = (u64::from(self.src_port) << 48)
            | (u64::from(VXLAN_PORT) << 32)
            | (u64::from(udp_len) << 16);
        write_u64(o, OUTER_UDP + udp::field::SRC_PORT, udp);
        let vxlan = (u64::from(FLAG_VNI) << 56) | (u64::from(self.vni & VNI_MAX) << 8);
        write_u64(o, OUTER_VXLAN + field::FLAGS, vxlan);
    }
}

/// The outer headers toward one peer for one VNI, written once and copied in front of every
/// frame of a burst that goes there: only the lengths, the identification, the UDP source
/// port and the IPv4 checksum differ from frame to frame. The checksum is the template's
/// partial sum (RFC 1071 section 2(A), "commutative and associative") plus the two 16-bit
/// words that change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FabricTemplate {
    bytes: [u8; VXLAN_ENCAP_OVERHEAD],
    /// The sum of the IPv4 header's words that stay the same, not folded.
    partial_sum: u32,
}

impl FabricTemplate {
    /// The template of `h` (its `ident` and `src_port` are ignored: they are per frame).
    pub fn new(h: &FabricHeader) -> FabricTemplate {
        let mut bytes = [0u8; VXLAN_ENCAP_OVERHEAD];
        let constant = FabricHeader {
            ident: 0,
            src_port: 0,
            ..*h
        };
        constant.emit(&mut bytes, 0);
        let ip = &bytes[OUTER_IP..OUTER_UDP];
        let mut partial_sum = 0;
        for at in (0..ipv4::HEADER_LEN).step_by(2) {
            if at != ipv4::field::TOTAL_LEN
                && at != ipv4::field::IDENT
                && at != ipv4::field::CHECKSUM
            {
                partial_sum += u32::from(read_u16(ip, at));
            }
        }
        FabricTemplate { bytes, partial_sum }
    }

    /// What [`FabricHeader::emit`] writes for this template's header with `ident` and
    /// `src_port`, in front of an inner frame of `inner_len` bytes (which the caller has
    /// checked fits an IPv4 total length).
    #[inline(always)]
    pub fn emit(
        &self,
        o: &mut [u8; VXLAN_ENCAP_OVERHEAD],
        inner_len: usize,
        ident: u16,
        src_port: u16,
    ) {
        let ip_len = (VXLAN_ENCAP_OVERHEAD - OUTER_IP + inner_len) as u16;
        let udp_len = (VXLAN_ENCAP_OVERHEAD - OUTER_UDP + inner_len) as u16;
        let sum = self.partial_sum + u32::from(ip_len) + u32::from(ident);
        let sum = (sum & 0xffff) + (sum >> 16);
        let checksum = !((sum & 0xffff) + (sum >> 16)) as u16;
        *o = self.bytes;
        let ip = OUTER_IP + ipv4::field::TOTAL_LEN;
        o[ip..ip + 4]
            .copy_from_slice(&((u32::from(ip_len) << 16) | u32::from(ident)).to_be_bytes());
        let at = OUTER_IP + ipv4::field::CHECKSUM;
        o[at..at + 2].copy_from_slice(&checksum.to_be_bytes());
        let at = OUTER_UDP + udp::field::SRC_PORT;
        o[at..at + 2].copy_from_slice(&src_port.to_be_bytes());
        let at = OUTER_UDP + udp::field::LENGTH;
        o[at..at + 2].copy_from_slice(&udp_len.to_be_bytes());
    }
}

#[inline(always)]
fn write_u64(b: &mut [u8], at: usize, value: u64) {
    b[at..at + 8].copy_from_slice(&value.to_be_bytes());
}

/// A hash of the inner flow of an Ethernet frame: addresses, protocol and, for TCP and UDP
/// first fragments, ports; the MACs for anything that is not IPv4. The same flow always hashes
/// the same, so its packets take one path and stay in order.
#[inline]
pub fn flow_hash(frame: &[u8]) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    const ETH_LEN: usize = ethernet::HEADER_LEN;
    let mix = |h: u64, v: u64| (h ^ v).wrapping_mul(K).rotate_left(29);
    let is_ipv4 = frame.len() >= ETH_LEN + ipv4::HEADER_LEN
        && frame[ethernet::field::ETHERTYPE..ETH_LEN] == EtherType::IPV4.0.to_be_bytes();
    if is_ipv4 {
        let ip = &frame[ETH_LEN..];
        // The source and destination addresses are neighbours: one 8-byte load.
        let addrs = &ip[ipv4::field::SRC_ADDR..ipv4::field::DST_ADDR + 4];
        let addrs = u64::from_be_bytes([
            addrs[0], addrs[1], addrs[2], addrs[3], addrs[4], addrs[5], addrs[6], addrs[7],
        ]);
        let proto = ip[ipv4::field::PROTOCOL];
        let mut h = mix(u64::from(proto), addrs);
        let ihl = usize::from(ip[ipv4::field::VER_IHL] & 0xf) * 4;
        let flags = read_u16(ip, ipv4::field::FLAGS_FRAG_OFFSET);
        let first_fragment = flags & ipv4::FRAG_OFFSET_MASK == 0;
        let has_ports = proto == u8::from(IpProtocol::Tcp) || proto == u8::from(IpProtocol::Udp);
        if has_ports && first_fragment && ip.len() >= ihl + 4 {
            // Source and destination port, the first word of TCP and UDP alike.
            let ports = read_u32(ip, ihl);
            h = mix(h, u64::from(ports));
        }
        (h >> 32) as u32
    } else if frame.len() >= ethernet::field::ETHERTYPE {
        let dst = EthernetAddress::read(frame, ethernet::field::DESTINATION).to_u64();
        let src = EthernetAddress::read(frame, ethernet::field::SOURCE).to_u64();
        (mix(dst, src) >> 32) as u32
    } else {
        0
    }
}

/// The outer UDP source port for a flow whose inner headers hash to `hash`: spread over
/// 49152-65535 (RFC 7348 section 5), so that the fabric's ECMP and the receiver's RSS tell
/// the flows between two hosts apart.
#[inline]
pub const fn entropy_src_port(hash: u32) -> u16 {
    let folded = (hash ^ (hash >> 16)) as u16;
    SRC_PORT_MIN | (folded & !SRC_PORT_MIN)
}

view! {
    /// A view of a VXLAN header and the inner frame after it.
    ///
    /// After [`check_len`](Self::check_len) has succeeded no method panics.
    pub struct VxlanPacket;
}

fields! {
    VxlanPacket {
        /// The flags byte. Clearing the I flag with the setter voids the check.
        flags / set_flags: u8 = field::FLAGS;
        /// The reserved byte after the VNI.
        reserved1 / set_reserved1: u8 = field::RESERVED1;
    }
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    /// Checks that the buffer holds the 8-byte header ([`Error::Truncated`]) and that the I
    /// flag is set ([`Error::Malformed`]: "the I flag MUST be set to 1 for a valid VXLAN
    /// Network ID", RFC 7348 section 5). The reserved bits are ignored on receipt, as that
    /// section says.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        check_holds(b, VXLAN_HEADER_LEN)?;
        if b[field::FLAGS] & FLAG_VNI == 0 {
            return Err(Error::Malformed);
        }
        Ok(())
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

    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
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

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn template_emits_what_the_header_emits(
            dst_mac in any::<[u8; 6]>(),
            src_mac in any::<[u8; 6]>(),
            src_vtep in any::<u32>(),
            dst_vtep in any::<u32>(),
            vni in 0..=VNI_MAX,
            src_port in any::<u16>(),
            ident in any::<u16>(),
            inner_len in 0usize..=(usize::from(u16::MAX) - VXLAN_ENCAP_OVERHEAD + ethernet::HEADER_LEN),
        ) {
            let h = FabricHeader { dst_mac, src_mac, src_vtep, dst_vtep, vni, src_port, ident };
            let (mut by_header, mut by_template) = ([0u8; VXLAN_ENCAP_OVERHEAD], [0xa5; VXLAN_ENCAP_OVERHEAD]);
            h.emit(&mut by_header, inner_len);
            FabricTemplate::new(&h).emit(&mut by_template, inner_len, ident, src_port);
            prop_assert_eq!(by_header, by_template);
        }
    }

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
