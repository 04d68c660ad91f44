//! `ArpPacket`: every getter after `new_checked`, the setters, parse -> emit, and the reply
//! built in place.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;

#[macro_use]
mod common;
use router_core::wire::arp::PACKET_LEN;
use router_core::wire::{ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress};

const ROUTER: EthernetAddress = EthernetAddress::new(0xfa, 0x16, 0x3e, 0xaa, 0x00, 0x01);

fuzz_target!(|data: &[u8]| {
    let Some(packet) = common::checked(data, ArpPacket::new_checked) else {
        return;
    };
    read_all!(packet => hardware_type, protocol_type, hw_len, proto_len, operation, sender_hw);
    read_all!(packet => sender_ip, sender_ip_u32, target_hw, target_ip, target_ip_u32);
    read_all!(packet => is_gratuitous);
    assert_eq!(packet.protocol_type(), EtherType::IPV4);

    let parsed = ArpRepr::parse(&packet);
    if let Ok(repr) = parsed {
        let mut out = [0u8; PACKET_LEN];
        repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out[..], data[..PACKET_LEN]);
        assert_eq!(repr.is_gratuitous(), packet.is_gratuitous());
    }

    let mut copy = Vec::new();
    let mut packet = common::checked_copy(&mut copy, data, ArpPacket::new_checked);
    packet.reply_in_place(ROUTER);
    if let Ok(request) = parsed {
        assert_eq!(ArpRepr::parse(&packet), Ok(request.reply(ROUTER)));
    }
    write_all!(packet =>
        set_operation(ArpOperation::Request),
        set_sender_hw(ROUTER),
        set_target_hw(EthernetAddress::ZERO),
        set_sender_ip(Ipv4Addr::LOCALHOST),
        set_target_ip(Ipv4Addr::LOCALHOST),
    );
    assert!(packet.is_gratuitous());
});
