//! `Ipv4Packet`: every getter after `new_checked`, the setters, the incremental checksum
//! updates against a full recompute, the ICMP error rules, and parse -> emit.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;

#[macro_use]
mod common;
use router_core::wire::icmpv4::icmp_error_allowed;
use router_core::wire::ipv4::field;
use router_core::wire::{IpProtocol, Ipv4Packet, Ipv4Repr};

fuzz_target!(|data: &[u8]| {
    let Some(packet) = common::checked(data, Ipv4Packet::new_checked) else {
        return;
    };
    read_all!(packet => version, is_plain_header, dscp, ecn, ident, ttl, dont_frag, more_frags);
    read_all!(packet => frag_offset, is_first_fragment, is_fragment, protocol, checksum);
    read_all!(packet => src_addr, dst_addr, src_addr_u32, dst_addr_u32, options, header);
    let _ = icmp_error_allowed(&packet);
    let valid = packet.verify_checksum();
    assert_eq!(
        packet.header_len() + packet.payload().len(),
        usize::from(packet.total_len())
    );

    if let Ok(repr) = Ipv4Repr::parse(&packet) {
        assert!(valid);
        let mut out = vec![0u8; repr.buffer_len()];
        let mut emitted = Ipv4Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut emitted);
        emitted.payload_mut().copy_from_slice(packet.payload());
        let emitted = Ipv4Packet::new_checked(&out[..]).expect("an emitted packet checks");
        assert!(emitted.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&emitted), Ok(repr));
        assert_eq!(emitted.payload(), packet.payload());
        // Byte-exact without options and with the reserved flag clear, the checksum aside
        // (0x0000 and 0xffff both verify when the rest sums to zero).
        let reserved_flag = data[field::FLAGS_FRAG_OFFSET] & 0x80 != 0;
        if packet.header_len() == 20 && !reserved_flag {
            let total = usize::from(packet.total_len());
            assert_eq!(out[..field::CHECKSUM], data[..field::CHECKSUM]);
            assert_eq!(out[field::CHECKSUM + 2..], data[field::CHECKSUM + 2..total]);
        }
    }

    let mut copy = Vec::new();
    let mut packet = common::checked_copy(&mut copy, data, Ipv4Packet::new_checked);
    let ttl = packet.ttl();
    assert_eq!(packet.decrement_ttl(), ttl.saturating_sub(1));
    packet.rewrite_src_addr(Ipv4Addr::new(203, 0, 113, 1));
    packet.rewrite_dst_addr(Ipv4Addr::new(198, 51, 100, 2));
    if valid {
        // RFC 1624 eqn. 3 equals a full recompute on a header whose checksum was right.
        let incremental = packet.checksum();
        packet.fill_checksum();
        assert_eq!(incremental, packet.checksum());
    }
    write_all!(packet =>
        set_dscp(46),
        set_ecn(1),
        set_ident(7),
        set_dont_frag(true),
        set_more_frags(false),
        set_frag_offset(0),
    );
    packet.clear_flags();
    write_all!(packet =>
        set_ttl(64),
        set_protocol(IpProtocol::Udp),
        set_src_addr(Ipv4Addr::LOCALHOST),
        set_dst_addr(Ipv4Addr::BROADCAST),
    );
    packet.fill_checksum();
    let _ = packet.options_mut();
    let _ = packet.payload_mut();
    assert!(packet.verify_checksum());
});
