//! Floating IPs on the two-host topology: ARP on the external network, DNAT in, SNAT out, the
//! hairpin between floating IPs, ICMP errors through the translation, the instance moving
//! between hosts, and what the model refuses.

mod common;

use common::*;
use router_core::control::{ApplyError, PuntAction};
use router_core::engine::Verdict;
use router_core::model::{Change, ExternalSpec, FloatingIpSpec, InstancePortSpec, ModelError};
use router_core::reason::{DropReason, PuntReason};
use router_core::wire::{self, Ipv4Packet};

const UPSTREAM: &str = "02:00:00:00:aa:01";
const FIP: &str = "203.0.113.10";
const FIP_RED: &str = "203.0.113.11";
const OUTSIDE: &str = "198.51.100.7";

fn external(me: &str) -> Change {
    let address = if me == "host-a" {
        "203.0.113.21/24"
    } else {
        "203.0.113.22/24"
    };
    Change::SetExternal(ExternalSpec {
        address: address.parse().unwrap(),
        gateway: ip("203.0.113.1"),
    })
}

fn fip(address: &str, port: &str) -> Change {
    Change::AddFloatingIp {
        spec: FloatingIpSpec {
            ip: ip(address),
            router: "r1".into(),
            port: ip(port),
        },
        replace: false,
    }
}

/// A host on the external network with the floating IP of 10.0.1.5 (an instance on host-a).
fn host(name: &'static str) -> Host {
    let mut h = Host::new(name);
    h.cp.apply_batch(&[external(name), fip(FIP, "10.0.1.5")])
        .unwrap();
    h
}

fn ext_mac(h: &Host) -> &'static str {
    if h.name == "host-a" {
        EXT_A
    } else {
        EXT_B
    }
}

/// A UDP frame with a real UDP header and checksum.
fn udp(src_mac: &str, dst_mac: &str, src: &str, dst: &str) -> Vec<u8> {
    let mut f = Datagram::udp(src_mac, dst_mac, src, dst).frame();
    let len = (f.len() - 34) as u16;
    f[38..40].copy_from_slice(&len.to_be_bytes());
    f[40..42].copy_from_slice(&[0, 0]);
    wire::UdpPacket::new_unchecked(&mut f[34..]).fill_checksum(ip(src), ip(dst));
    f
}

fn ip_of(frame: &[u8]) -> Ipv4Packet<&[u8]> {
    Ipv4Packet::new_unchecked(&frame[14..])
}

/// The UDP checksum of a frame verifies.
fn udp_ok(frame: &[u8]) -> bool {
    let p = ip_of(frame);
    wire::UdpPacket::new_unchecked(p.payload()).verify_checksum(p.src_addr(), p.dst_addr())
}

/// Resolves the external gateway the way a real exchange does: the first packet out waits for
/// ARP, which the gateway answers.
fn resolve_gateway(h: &mut Host) {
    let out = Datagram::udp(VM_BLUE_A, GW_BLUE, "10.0.1.5", OUTSIDE).frame();
    let (v, _) = h.process(BLUE, &out);
    assert_eq!(v, Verdict::Punt(PuntReason::ExternalMiss));
    let (action, _, solicits) = h.punt(BLUE, PuntReason::ExternalMiss, &out, 1);
    assert!(matches!(action, PuntAction::Hold(_)), "{action:?}");
    assert_eq!(solicits.len(), 1);
    let request = &solicits[0];
    assert_eq!(request.port, EXT);
    let arp = wire::ArpPacket::new_checked(&request.frame[14..]).unwrap();
    assert_eq!(
        arp.sender_ip(),
        ip(if h.name == "host-a" {
            "203.0.113.21"
        } else {
            "203.0.113.22"
        })
    );
    assert_eq!(arp.target_ip(), ip("203.0.113.1"));
    let me = mac(ext_mac(h));
    let reply = arp_frame(2, mac(UPSTREAM), ip("203.0.113.1"), me, arp.sender_ip(), me);
    h.punt(EXT, PuntReason::Arp, &reply, 2);
}

#[test]
fn only_the_instances_host_answers_arp_and_announces_the_floating_ip() {
    for (name, answers) in [("host-a", true), ("host-b", false)] {
        let mut h = host(name);
        let tick = h.cp.tick(1);
        let garps: Vec<_> = tick.solicits.iter().filter(|s| s.port == EXT).collect();
        assert_eq!(garps.len(), usize::from(answers), "{name}");
        if answers {
            let g = wire::ArpPacket::new_checked(&garps[0].frame[14..]).unwrap();
            assert_eq!((g.sender_ip(), g.target_ip()), (ip(FIP), ip(FIP)));
            assert_eq!(g.sender_hw(), mac(EXT_A));
            assert!(h.cp.tick(2).solicits.is_empty(), "announced once");
        }
        let bcast = wire::EthernetAddress::BROADCAST;
        let who_has = arp_frame(
            1,
            mac(UPSTREAM),
            ip("203.0.113.1"),
            wire::EthernetAddress::ZERO,
            ip(FIP),
            bcast,
        );
        assert_eq!(h.process(EXT, &who_has).0, Verdict::Punt(PuntReason::Arp));
        let (action, reply, _) = h.punt(EXT, PuntReason::Arp, &who_has, 3);
        if answers {
            assert_eq!(action, PuntAction::Reply(EXT));
            let r = wire::ArpPacket::new_checked(&reply[14..]).unwrap();
            assert_eq!((r.sender_ip(), r.sender_hw()), (ip(FIP), mac(EXT_A)));
        } else {
            assert_eq!(action, PuntAction::Drop(DropReason::NotForRouter));
        }
        // Its own external address is answered on every host.
        let own = if name == "host-a" {
            "203.0.113.21"
        } else {
            "203.0.113.22"
        };
        let who_has = arp_frame(
            1,
            mac(UPSTREAM),
            ip("203.0.113.1"),
            wire::EthernetAddress::ZERO,
            ip(own),
            bcast,
        );
        assert_eq!(
            h.punt(EXT, PuntReason::Arp, &who_has, 3).0,
            PuntAction::Reply(EXT)
        );
    }
}

#[test]
fn inbound_to_the_floating_ip_is_translated_and_routed_to_the_instance() {
    let mut a = host("host-a");
    let inbound = udp(UPSTREAM, EXT_A, OUTSIDE, FIP);
    let (v, out) = a.process(EXT, &inbound);
    assert_eq!(v, Verdict::Forward(BLUE));
    let p = ip_of(&out);
    assert_eq!((p.src_addr(), p.dst_addr()), (ip(OUTSIDE), ip("10.0.1.5")));
    assert_eq!(ttl(&out), 63);
    assert!(ipv4_ok(&out) && udp_ok(&out));
    assert_eq!(&out[0..6], &mac(VM_BLUE_A).0);
    assert_eq!(&out[6..12], &mac(GW_BLUE).0);
    // Host-b has the floating IP but not the instance: nothing to translate there.
    let mut b = host("host-b");
    let inbound = Datagram::udp(UPSTREAM, EXT_B, OUTSIDE, FIP).frame();
    assert_eq!(
        b.process(EXT, &inbound).0,
        Verdict::Drop(DropReason::NoFloatingIp)
    );
}

#[test]
fn outbound_from_the_instance_leaves_by_its_floating_ip() {
    let mut a = host("host-a");
    resolve_gateway(&mut a);
    let out = udp(VM_BLUE_A, GW_BLUE, "10.0.1.5", OUTSIDE);
    let (v, sent) = a.process(BLUE, &out);
    assert_eq!(v, Verdict::Forward(EXT));
    let p = ip_of(&sent);
    assert_eq!((p.src_addr(), p.dst_addr()), (ip(FIP), ip(OUTSIDE)));
    assert_eq!(ttl(&sent), 63);
    assert!(ipv4_ok(&sent) && udp_ok(&sent));
    assert_eq!(
        (&sent[0..6], &sent[6..12]),
        (&mac(UPSTREAM).0[..], &mac(EXT_A).0[..])
    );
    // East-west from the same instance is never translated.
    let east_west = Datagram::udp(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.7").frame();
    let (v, sent) = a.process(BLUE, &east_west);
    assert_eq!(v, Verdict::Forward(RED));
    assert_eq!(ip_of(&sent).src_addr(), ip("10.0.1.5"));
    // An instance without a floating IP still goes to the SNAT node over the fabric.
    a.resolve_underlay();
    let other = Datagram::udp(VM_RED_A, GW_RED, "10.0.2.7", OUTSIDE).frame();
    let (v, sent) = a.process(RED, &other);
    assert_eq!(v, Verdict::Forward(FABRIC));
    assert_eq!(ip_of(&sent[50..]).src_addr(), ip("10.0.2.7"));
}

#[test]
fn instances_reach_each_other_by_floating_ips_on_one_host() {
    let mut a = host("host-a");
    a.cp.apply(&fip(FIP_RED, "10.0.2.7")).unwrap();
    let ping = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", FIP_RED, 64);
    let (v, out) = a.process(BLUE, &ping);
    assert_eq!(v, Verdict::Forward(RED));
    let p = ip_of(&out);
    assert_eq!((p.src_addr(), p.dst_addr()), (ip(FIP), ip("10.0.2.7")));
    assert_eq!(ttl(&out), 63);
    assert!(ipv4_ok(&out));
    assert!(wire::checksum::verify(p.payload()), "ICMP checksum");
}

#[test]
fn icmp_errors_cross_the_translation_with_their_quote() {
    let mut a = host("host-a");
    // The upstream's time exceeded about a datagram the instance sent by its floating IP.
    let sent = Datagram::udp(EXT_A, UPSTREAM, FIP, OUTSIDE).frame();
    let mut error = Datagram {
        proto: 1,
        payload_len: 8 + 28,
        ..Datagram::udp(UPSTREAM, EXT_A, "203.0.113.1", FIP)
    }
    .frame();
    error[34] = 11;
    error[34 + 8..].copy_from_slice(&sent[14..14 + 28]);
    error[36..38].copy_from_slice(&[0, 0]);
    let sum = wire::checksum::compute(&error[34..]);
    error[36..38].copy_from_slice(&sum.to_be_bytes());
    let (v, out) = a.process(EXT, &error);
    assert_eq!(v, Verdict::Forward(BLUE));
    assert_eq!(ip_of(&out).dst_addr(), ip("10.0.1.5"));
    assert!(wire::checksum::verify(&out[34..]), "ICMP checksum");
    let quote = Ipv4Packet::new_unchecked(&out[42..]);
    assert_eq!(
        (quote.src_addr(), quote.dst_addr()),
        (ip("10.0.1.5"), ip(OUTSIDE))
    );
    assert!(quote.verify_checksum());
    // TTL 1 toward the floating IP: time exceeded from this host's external address,
    // quoting the datagram as it arrived.
    let expiring = Datagram {
        ttl: 1,
        ..Datagram::udp(UPSTREAM, EXT_A, OUTSIDE, FIP)
    }
    .frame();
    let (v, out) = a.process(EXT, &expiring);
    assert_eq!(v, Verdict::Forward(EXT));
    assert_eq!(ip_of(&out).src_addr(), ip("203.0.113.21"));
    assert_eq!(Ipv4Packet::new_unchecked(&out[42..]).dst_addr(), ip(FIP));
}

#[test]
fn other_frames_on_the_external_port_are_counted_drops() {
    let mut a = host("host-a");
    let cases = [
        (
            Datagram::udp(UPSTREAM, "02:00:00:00:99:99", OUTSIDE, FIP).frame(),
            DropReason::ExternalNotForUs,
        ),
        (
            Datagram::udp(UPSTREAM, EXT_A, OUTSIDE, "203.0.113.99").frame(),
            DropReason::NoFloatingIp,
        ),
        (
            Datagram::udp(UPSTREAM, EXT_A, OUTSIDE, "10.0.1.5").frame(),
            DropReason::NoFloatingIp,
        ),
        (
            Datagram::udp(UPSTREAM, EXT_A, "127.0.0.1", FIP).frame(),
            DropReason::MartianSource,
        ),
        (
            Datagram::udp(UPSTREAM, "ff:ff:ff:ff:ff:ff", OUTSIDE, "203.0.113.255").frame(),
            DropReason::Broadcast,
        ),
    ];
    for (frame, reason) in cases {
        assert_eq!(a.process(EXT, &frame).0, Verdict::Drop(reason));
    }
    let mut bad = Datagram::udp(UPSTREAM, EXT_A, OUTSIDE, FIP).frame();
    bad[24] ^= 0xff;
    assert_eq!(
        a.process(EXT, &bad).0,
        Verdict::Drop(DropReason::Ipv4BadChecksum)
    );
    assert_eq!(
        a.process(EXT, &bad[..20]).0,
        Verdict::Drop(DropReason::Ipv4Truncated)
    );
}

#[test]
fn the_floating_ip_follows_its_instance_to_another_host() {
    let mut a = host("host-a");
    let mut b = host("host-b");
    a.cp.tick(1);
    b.cp.tick(1);
    let moved = Change::AddPort {
        spec: InstancePortSpec {
            network: "blue".into(),
            ip: ip("10.0.1.5"),
            mac: mac(VM_BLUE_A).into(),
            host: "host-b".into(),
            port: None,
        },
        replace: true,
    };
    a.cp.apply(&moved).unwrap();
    b.cp.apply(&moved).unwrap();
    // The old host stops at once; the new one announces it.
    let inbound = Datagram::udp(UPSTREAM, EXT_A, OUTSIDE, FIP).frame();
    assert_eq!(
        a.process(EXT, &inbound).0,
        Verdict::Drop(DropReason::NoFloatingIp)
    );
    assert!(a.cp.tick(2).solicits.iter().all(|s| s.port != EXT));
    let garps = b.cp.tick(2).solicits;
    assert_eq!(garps.iter().filter(|s| s.port == EXT).count(), 1);
    let inbound = Datagram::udp(UPSTREAM, EXT_B, OUTSIDE, FIP).frame();
    assert_eq!(b.process(EXT, &inbound).0, Verdict::Forward(BLUE));
}

#[test]
fn the_model_refuses_bad_floating_ips_and_changes_nothing() {
    let mut a = host("host-a");
    let before = a.cp.model().clone();
    let invalid = |c: Change, a: &mut Host| match a.cp.apply(&c) {
        Err(ApplyError::Model(e)) => e,
        other => panic!("{c:?}: {other:?}"),
    };
    for (address, port) in [
        ("198.51.100.10", "10.0.1.5"),
        ("203.0.113.21", "10.0.1.5"),
        ("203.0.113.1", "10.0.1.5"),
    ] {
        assert!(
            matches!(
                invalid(fip(address, port), &mut a),
                ModelError::Invalid { .. }
            ),
            "{address}"
        );
    }
    assert!(matches!(
        invalid(fip(FIP, "10.0.2.7"), &mut a),
        ModelError::Conflict { .. }
    ));
    assert!(matches!(
        invalid(fip("203.0.113.12", "10.0.1.5"), &mut a),
        ModelError::Conflict { .. }
    ));
    assert!(matches!(
        invalid(fip("203.0.113.12", "10.0.1.77"), &mut a),
        ModelError::NotFound { .. }
    ));
    let unknown_router = Change::AddFloatingIp {
        spec: FloatingIpSpec {
            ip: ip("203.0.113.12"),
            router: "nope".into(),
            port: ip("10.0.1.5"),
        },
        replace: false,
    };
    assert!(matches!(
        invalid(unknown_router, &mut a),
        ModelError::NotFound { .. }
    ));
    let del_port = Change::DelPort {
        network: "blue".into(),
        ip: ip("10.0.1.5"),
    };
    assert!(matches!(
        invalid(del_port, &mut a),
        ModelError::InUse { .. }
    ));
    assert!(matches!(
        invalid(Change::DelExternal, &mut a),
        ModelError::InUse { .. }
    ));
    let narrower = Change::SetExternal(ExternalSpec {
        address: "203.0.113.21/28".parse().unwrap(),
        gateway: ip("203.0.113.17"),
    });
    assert!(matches!(
        invalid(narrower, &mut a),
        ModelError::InUse { .. }
    ));
    assert_eq!(a.cp.model(), &before);
    // Deleting the floating IP first lets the port go.
    a.cp.apply(&Change::DelFloatingIp { ip: ip(FIP) }).unwrap();
    a.cp.apply(&Change::DelPort {
        network: "blue".into(),
        ip: ip("10.0.1.5"),
    })
    .unwrap();
}
