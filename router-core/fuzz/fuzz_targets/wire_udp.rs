//! `UdpPacket`: every getter after `new_checked`, the setters, checksums, and parse -> emit.
//! The first 8 bytes of the input are the IPv4 source and destination of the pseudo-header.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;

#[macro_use]
mod common;
use router_core::wire::{UdpPacket, UdpRepr};

fuzz_target!(|data: &[u8]| {
    let Some((addresses, data)) = data.split_first_chunk::<8>() else {
        return;
    };
    let src = Ipv4Addr::new(addresses[0], addresses[1], addresses[2], addresses[3]);
    let dst = Ipv4Addr::new(addresses[4], addresses[5], addresses[6], addresses[7]);
    let Some(packet) = common::checked(data, UdpPacket::new_checked) else {
        return;
    };
    read_all!(packet => src_port, dst_port, len, checksum);
    let _ = (
        packet.verify_checksum(src, dst),
        packet.compute_checksum(src, dst),
    );
    assert_eq!(packet.payload().len() + 8, usize::from(packet.len()));

    if let Ok(repr) = UdpRepr::parse(&packet, src, dst) {
        let mut out = vec![0u8; repr.buffer_len()];
        let mut emitted = UdpPacket::new_unchecked(&mut out[..]);
        repr.emit(&mut emitted);
        emitted.payload_mut().copy_from_slice(packet.payload());
        if packet.checksum() != 0 {
            emitted.fill_checksum(src, dst);
        }
        assert_eq!(out[..], data[..usize::from(packet.len())]);
        let emitted = UdpPacket::new_checked(&out[..]).expect("an emitted datagram checks");
        assert_eq!(UdpRepr::parse(&emitted, src, dst), Ok(repr));
    }

    let mut copy = Vec::new();
    let mut packet = common::checked_copy(&mut copy, data, UdpPacket::new_checked);
    write_all!(packet => set_src_port(49152), set_dst_port(4789));
    let _ = packet.payload_mut();
    packet.fill_checksum(src, dst);
    assert!(packet.verify_checksum(src, dst));
    assert_ne!(packet.checksum(), 0);
});
