//! `ArpPacket`: every getter after `new_checked`, the setters, parse -> emit, and the reply
//! built in place.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use router_core::wire::arp::PACKET_LEN;
use router_core::wire::{ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress};

const ROUTER: EthernetAddress = EthernetAddress::new(0xfa, 0x16, 0x3e, 0xaa, 0x00, 0x01);

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = ArpPacket::new_checked(data) else {
        return;
    };
    let _ = (
        packet.hardware_type(),
        packet.protocol_type(),
        packet.hw_len(),
        packet.proto_len(),
    );
    let _ = (
        packet.operation(),
        packet.sender_hw(),
        packet.sender_ip(),
        packet.sender_ip_u32(),
    );
    let _ = (
        packet.target_hw(),
        packet.target_ip(),
        packet.target_ip_u32(),
    );
    let _ = packet.is_gratuitous();
    assert_eq!(packet.protocol_type(), EtherType::IPV4);

    let parsed = ArpRepr::parse(&packet);
    if let Ok(repr) = parsed {
        let mut out = [0u8; PACKET_LEN];
        repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out[..], data[..PACKET_LEN]);
        assert_eq!(repr.is_gratuitous(), packet.is_gratuitous());
    }

    let mut copy = data.to_vec();
    let mut packet = ArpPacket::new_checked(&mut copy[..]).expect("checked above");
    packet.reply_in_place(ROUTER);
    if let Ok(request) = parsed {
        assert_eq!(ArpRepr::parse(&packet), Ok(request.reply(ROUTER)));
    }
    packet.set_operation(ArpOperation::Request);
    packet.set_sender_hw(ROUTER);
    packet.set_target_hw(EthernetAddress::ZERO);
    packet.set_sender_ip(Ipv4Addr::LOCALHOST);
    packet.set_target_ip(Ipv4Addr::LOCALHOST);
    assert!(packet.is_gratuitous());
});
