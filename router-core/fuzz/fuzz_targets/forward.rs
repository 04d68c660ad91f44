//! The whole forwarding function and the control thread's punt handler on arbitrary frames,
//! from every port of a two-host DVR topology (local ports and the fabric). Neither may panic,
//! and a frame the engine forwards must still be a whole Ethernet frame inside its buffer.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use router_core::engine::Verdict;
use router_core::ids::PortId;
use router_core::reason::PuntReason;

#[path = "../../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
use common::*;

thread_local! {
    // Building the hosts costs more than a run: build them once.
    static HOSTS: RefCell<Option<(Host, Host)>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    HOSTS.with(|h| {
        let mut h = h.borrow_mut();
        let (a, b) = h.get_or_insert_with(|| {
            let mut a = Host::new("host-a");
            a.resolve_underlay();
            (a, Host::new("host-b"))
        });
        let host = if selector & 0x80 == 0 { a } else { b };
        let port = PortId::new(u16::from(selector & 0x7) % 5);
        let (verdict, out) = host.process(port, frame);
        if let Verdict::Forward(_) = verdict {
            assert!(
                out.len() >= 14,
                "forwarded a frame shorter than an Ethernet header"
            );
            assert!(
                out.len() <= frame.len() + 50,
                "grew by more than an encapsulation"
            );
        }
        let reason = PuntReason::ALL[usize::from(selector >> 3) % PuntReason::COUNT];
        let _ = host.punt(port, reason, frame, u64::from(selector) * 1_000_000);
    });
});
