//! `VxlanPacket`: every getter after `new_checked`, the setters, and parse -> emit.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[macro_use]
mod common;
use router_core::wire::vxlan::{FLAG_VNI, VNI_MAX};
use router_core::wire::{VxlanPacket, VxlanRepr, VXLAN_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Some(packet) = common::checked(data, VxlanPacket::new_checked) else {
        return;
    };
    read_all!(packet => flags, reserved0, reserved1);
    assert!(packet.has_vni());
    assert!(packet.vni() <= VNI_MAX);
    assert_eq!(packet.payload().len() + VXLAN_HEADER_LEN, data.len());

    let repr = VxlanRepr::parse(&packet).expect("a checked header parses");
    let mut out = [0u8; VXLAN_HEADER_LEN];
    repr.emit(&mut VxlanPacket::new_unchecked(&mut out[..]));
    let emitted = VxlanPacket::new_checked(&out[..]).expect("an emitted header checks");
    assert_eq!(VxlanRepr::parse(&emitted), Ok(repr));
    // Reserved bits are zeroed on emission: the bytes match when they were zero.
    if packet.flags() == FLAG_VNI && packet.reserved0() == 0 && packet.reserved1() == 0 {
        assert_eq!(out[..], data[..VXLAN_HEADER_LEN]);
    }

    let mut copy = Vec::new();
    let mut packet = common::checked_copy(&mut copy, data, VxlanPacket::new_checked);
    write_all!(packet => set_vni(VNI_MAX), set_reserved0(0), set_reserved1(0), set_flags(FLAG_VNI));
    let _ = packet.payload_mut();
    assert_eq!(packet.vni(), VNI_MAX);
});
