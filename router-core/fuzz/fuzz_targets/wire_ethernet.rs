//! `EthernetFrame`: every getter after `new_checked`, the setters, and parse -> emit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use router_core::wire::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    let _ = (
        frame.dst_addr(),
        frame.src_addr(),
        frame.outer_ethertype(),
        frame.ethertype(),
    );
    let _ = (
        frame.is_tagged(),
        frame.vlan_tci(),
        frame.vlan_id(),
        frame.pcp(),
    );
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

    let mut copy = data.to_vec();
    let mut frame = EthernetFrame::new_checked(&mut copy[..]).expect("checked above");
    frame.set_dst_addr(EthernetAddress::BROADCAST);
    frame.set_src_addr(EthernetAddress::ZERO);
    frame.set_ethertype(EtherType::IPV4);
    let _ = frame.payload_mut();
    assert_eq!(frame.ethertype(), EtherType::IPV4);
});
