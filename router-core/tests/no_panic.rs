//! The engine and the punt handler never panic, whatever the bytes.

mod common;

use common::*;
use proptest::prelude::*;
use router_core::engine::Verdict;
use router_core::ids::PortId;
use router_core::reason::PuntReason;

fn mutated(base: &[u8], edits: &[(usize, u8)], len: usize) -> Vec<u8> {
    let mut f = base.to_vec();
    for &(i, b) in edits {
        if !f.is_empty() {
            let n = f.len();
            f[i % n] = b;
        }
    }
    f.truncate(len);
    f
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_on_any_port(bytes in proptest::collection::vec(any::<u8>(), 0..200), port in 0u16..5) {
        let mut a = Host::new("host-a");
        let (v, out) = a.process(PortId::new(port), &bytes);
        if let Verdict::Forward(_) = v {
            prop_assert!(out.len() >= 14);
        }
        for reason in PuntReason::ALL {
            let _ = a.punt(PortId::new(port), *reason, &bytes, 0);
        }
    }

    /// Mutations of valid frames reach deeper than random bytes.
    #[test]
    fn mutated_valid_frames(edits in proptest::collection::vec((0usize..200, any::<u8>()), 1..6), len in 0usize..200, which in 0usize..3) {
        let mut a = Host::new("host-a");
        let mut b = Host::new("host-b");
        a.resolve_underlay();
        let base = match which {
            0 => ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.7", 64),
            1 => arp_frame(1, mac(VM_BLUE_A), ip("10.0.1.5"), router_core::wire::EthernetAddress::ZERO, ip("10.0.1.1"), router_core::wire::EthernetAddress::BROADCAST),
            _ => a.process(BLUE, &ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.8", 64)).1,
        };
        let f = mutated(&base, &edits, len);
        let _ = a.process(BLUE, &f);
        let _ = b.process(FABRIC, &f);
        for reason in PuntReason::ALL {
            let _ = a.punt(BLUE, *reason, &f, 0);
            let _ = b.punt(FABRIC, *reason, &f, 0);
        }
    }
}
