//! `EthernetFrame`: every getter after `new_checked`, the setters, and parse -> emit.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[macro_use]
mod common;
use router_core::wire::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};

fuzz_target!(|data: &[u8]| {
    let Some(frame) = common::checked(data, EthernetFrame::new_checked) else {
        return;
    };
    read_all!(frame => dst_addr, src_addr, addrs_u64, outer_ethertype, ethertype, is_tagged);
    read_all!(frame => vlan_tci, vlan_id, pcp);
    assert_eq!(frame.header_len() + frame.payload().len(), data.len());

    if let Ok(repr) = EthernetRepr::parse(&frame) {
        assert_eq!(repr.header_len(), frame.header_len());
        let mut out = vec![0u8; repr.header_len()];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        let emitted = EthernetFrame::new_checked(&out[..]).expect("an emitted header checks");
        assert_eq!(EthernetRepr::parse(&emitted), Ok(repr));
        // The repr drops PCP and DEI: the bytes match when they are zero.
        if frame.vlan_tci().is_none_or(|tci| tci & 0xf000 == 0) {
            assert_eq!(out[..], data[..repr.header_len()]);
        }
    }

    let mut copy = Vec::new();
    let mut frame = common::checked_copy(&mut copy, data, EthernetFrame::new_checked);
    write_all!(frame =>
        set_dst_addr(EthernetAddress::BROADCAST),
        set_src_addr(EthernetAddress::ZERO),
        set_ethertype(EtherType::IPV4),
    );
    let _ = frame.payload_mut();
    assert_eq!(frame.ethertype(), EtherType::IPV4);
});
