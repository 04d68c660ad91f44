//! `Icmpv4Packet`: every getter after `new_checked`, the setters, the echo reply built in
//! place, the error header, and parse -> emit.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[macro_use]
mod common;
use router_core::wire::icmpv4::{emit_error, HEADER_LEN};
use router_core::wire::{Icmpv4Message, Icmpv4Packet, Icmpv4Repr};

fuzz_target!(|data: &[u8]| {
    let Some(packet) = common::checked(data, Icmpv4Packet::new_checked) else {
        return;
    };
    read_all!(packet => msg_type, code, is_error, checksum, rest_of_header, echo_ident);
    read_all!(packet => echo_seq_no, next_hop_mtu);
    let valid = packet.verify_checksum();
    assert_eq!(packet.data().len() + HEADER_LEN, data.len());

    if let Ok(repr) = Icmpv4Repr::parse(&packet) {
        assert!(valid);
        assert_eq!(repr.buffer_len(), data.len());
        let mut out = data.to_vec();
        out[..HEADER_LEN].fill(0);
        let mut emitted = Icmpv4Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut emitted);
        let emitted = Icmpv4Packet::new_checked(&out[..]).expect("an emitted message checks");
        assert!(emitted.verify_checksum());
        assert_eq!(Icmpv4Repr::parse(&emitted), Ok(repr));
        assert_eq!(emitted.data(), packet.data());
        assert_eq!(out[..2], data[..2]);
    }

    let mut copy = Vec::new();
    let mut packet = common::checked_copy(&mut copy, data, Icmpv4Packet::new_checked);
    packet.reply_in_place();
    assert_eq!(packet.msg_type(), Icmpv4Message::EchoReply);
    // The incremental update keeps a right checksum right (it may mend a zero one).
    if valid {
        assert!(packet.verify_checksum());
    }
    write_all!(packet =>
        set_msg_type(Icmpv4Message::EchoRequest),
        set_code(0),
        set_echo_ident(1),
        set_echo_seq_no(2),
        set_next_hop_mtu(1450),
        set_rest_of_header(3),
    );
    let _ = packet.data_mut();
    packet.fill_checksum();
    assert!(packet.verify_checksum());

    emit_error(&mut copy, Icmpv4Message::DstUnreachable, 4, 1450).expect("long enough");
    let packet = Icmpv4Packet::new_checked(&copy[..]).expect("long enough");
    assert!(packet.verify_checksum() && packet.is_error());
    assert_eq!(packet.next_hop_mtu(), 1450);
});
