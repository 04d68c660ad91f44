//! `Fragmenter`: two bytes of MTU (big-endian), then an IPv4 packet. Whatever the packet, the
//! plan never panics, and every fragment it emits checks, fits the MTU, has a right checksum
//! and an offset in 8-byte units, and the fragments put back together are the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use router_core::wire::{Fragmenter, Ipv4Packet};

fuzz_target!(|data: &[u8]| {
    let Some((mtu, packet)) = data.split_first_chunk::<2>() else {
        return;
    };
    let mtu = usize::from(u16::from_be_bytes(*mtu));
    let Ok(ip) = Ipv4Packet::new_checked(packet) else {
        return;
    };
    let Ok(plan) = Fragmenter::new(ip, mtu) else {
        return;
    };
    let mut payload = Vec::new();
    let mut out = vec![0u8; 1 << 16];
    for k in 0..plan.count() {
        let len = plan.emit(k, &mut out);
        assert!(len <= mtu, "fragment {k}: {len} bytes for an MTU of {mtu}");
        let f = Ipv4Packet::new_checked(&out[..len]).expect("a fragment checks");
        assert!(f.verify_checksum());
        assert_eq!(f.frag_offset() % 8, 0);
        assert_eq!(
            usize::from(f.frag_offset()),
            usize::from(ip.frag_offset()) + payload.len()
        );
        let last = k + 1 == plan.count();
        assert_eq!(f.more_frags(), !last || ip.more_frags());
        payload.extend_from_slice(f.payload());
    }
    assert_eq!(payload, ip.payload());
});
