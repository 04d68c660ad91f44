//! The forwarding engine and the control plane together, through the public API: the DVR
//! packet walk between two hosts, RFC 1812 checks and ICMP errors, ARP, tenant isolation and
//! neighbour resolution.

mod common;

use common::*;
use router_core::control::{HoldEvent, PuntAction};
use router_core::engine::Verdict;
use router_core::ids::PortId;
use router_core::model::Change;
use router_core::reason::{DropReason, PuntReason};
use router_core::wire::{
    self, EthernetAddress, Fragmenter, Icmpv4Packet, Ipv4Packet, UdpPacket, VxlanPacket,
};

#[test]
fn east_west_on_one_host_is_routed_locally() {
    let mut a = Host::new("host-a");
    let frame = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.7", 64);
    let (v, out) = a.process(BLUE, &frame);
    assert_eq!(v, Verdict::Forward(RED));
    assert_eq!(&out[0..6], &mac(VM_RED_A).0, "destination is the instance");
    assert_eq!(&out[6..12], &mac(GW_RED).0, "source is RED's gateway MAC");
    assert_eq!(ttl(&out), 63);
    assert!(ipv4_ok(&out), "incremental checksum is right");
    assert_eq!(out[14..].len(), frame[14..].len());
    assert_eq!(&out[34..], &frame[34..], "payload untouched");
}

/// The packet walk of docs/dvr-semantics.md: routed at the source host, bridged at the
/// destination, DVR MAC on the fabric, gateway MAC restored.
#[test]
fn east_west_across_hosts_follows_the_dvr_walk() {
    let mut a = Host::new("host-a");
    let mut b = Host::new("host-b");
    let frame = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.8", 64);

    // The underlay toward host-b is unknown at first: the frame is punted, unmodified.
    let (v, out) = a.process(BLUE, &frame);
    assert_eq!(v, Verdict::Punt(PuntReason::UnderlayMiss));
    assert_eq!(out, frame);
    let (action, _, solicits) = a.punt(BLUE, PuntReason::UnderlayMiss, &frame, 0);
    assert!(matches!(action, PuntAction::Hold(_)));
    assert_eq!(solicits.len(), 1, "ARP for host-b's VTEP on the fabric");
    assert_eq!(solicits[0].port, FABRIC);
    let arp = wire::ArpPacket::new_checked(&solicits[0].frame[14..]).unwrap();
    assert_eq!(arp.target_ip(), ip(VTEP_B));
    assert_eq!(arp.sender_ip(), ip(VTEP_A));

    a.resolve_underlay();
    let (v, out) = a.process(BLUE, &frame);
    assert_eq!(v, Verdict::Forward(FABRIC));
    // Outer headers: underlay next hop, VTEPs, UDP 4789 with an entropy source port, RED's VNI.
    assert_eq!(&out[0..6], &mac(FABRIC_B).0);
    assert_eq!(&out[6..12], &mac(FABRIC_A).0);
    let outer = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert!(outer.verify_checksum());
    assert!(outer.dont_frag(), "outer packets are never fragmented");
    assert_eq!(outer.src_addr(), ip(VTEP_A));
    assert_eq!(outer.dst_addr(), ip(VTEP_B));
    let udp = UdpPacket::new_checked(outer.payload()).unwrap();
    assert_eq!(udp.dst_port(), 4789);
    assert!(udp.src_port() >= 49152);
    let vx = VxlanPacket::new_checked(udp.payload()).unwrap();
    assert_eq!(vx.vni(), VNI_RED);
    let inner = &udp.payload()[8..];
    assert_eq!(
        &inner[6..12],
        &mac(DVR_A).0,
        "inner source is host-a's DVR MAC"
    );
    assert_eq!(&inner[0..6], &mac(VM_RED_B).0);
    assert_eq!(ttl(inner), 63);
    assert!(ipv4_ok(inner));

    // Host B: decapsulate, recognise host-a's DVR MAC, restore RED's gateway MAC, deliver.
    let (v, delivered) = b.process(FABRIC, &out);
    assert_eq!(v, Verdict::Forward(RED));
    assert_eq!(&delivered[6..12], &mac(GW_RED).0);
    assert_eq!(&delivered[0..6], &mac(VM_RED_B).0);
    assert_eq!(ttl(&delivered), 63, "not routed again");
    assert_eq!(&delivered[14..], &inner[14..]);

    // The reply is routed on host B and carries host B's DVR MAC.
    b.resolve_underlay();
    let reply = ping_frame(VM_RED_B, GW_RED, "10.0.2.8", "10.0.1.5", 64);
    let (v, out) = b.process(RED, &reply);
    assert_eq!(v, Verdict::Forward(FABRIC));
    let outer = Ipv4Packet::new_checked(&out[14..]).unwrap();
    let udp = UdpPacket::new_checked(outer.payload()).unwrap();
    assert_eq!(
        VxlanPacket::new_checked(udp.payload()).unwrap().vni(),
        VNI_BLUE
    );
    assert_eq!(&udp.payload()[8 + 6..8 + 12], &mac(DVR_B).0);
    let (v, delivered) = a.process(FABRIC, &out);
    assert_eq!(v, Verdict::Forward(BLUE));
    assert_eq!(&delivered[6..12], &mac(GW_BLUE).0);
}

#[test]
fn fabric_ingress_drops_what_it_cannot_trust() {
    let mut a = Host::new("host-a");
    let mut b = Host::new("host-b");
    a.resolve_underlay();
    let frame = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.8", 64);
    let (_, good) = a.process(BLUE, &frame);

    let cases = [
        (
            patched(&good, 14 + 20 + 8 + 4, &[0, 0x99, 0x99]),
            DropReason::UnknownVni,
        ),
        (
            patched_ip(&good, 14 + 12, &[192, 0, 2, 99]),
            DropReason::UnknownVtep,
        ),
        (
            patched_ip(&good, 14 + 16, &[192, 0, 2, 30]),
            DropReason::FabricNotForUs,
        ),
        // An inner source MAC in the DVR range that is no peer's.
        (
            patched(&good, 50 + 6, &mac("fa:16:3f:00:00:99").0),
            DropReason::UnknownDvrMac,
        ),
        (
            patched(&good, 14 + 20 + 8, &[0]),
            DropReason::VxlanBadHeader,
        ),
    ];
    for (frame, reason) in cases {
        assert_eq!(
            b.process(FABRIC, &frame).0,
            Verdict::Drop(reason),
            "{reason}"
        );
    }

    // Host A does not accept its own DVR MAC back from "host-b"'s VTEP as host-b's.
    let mut wrong_peer = good.clone();
    wrong_peer[14 + 12..14 + 16].copy_from_slice(&ip(VTEP_B).octets());
    wrong_peer[14 + 16..14 + 20].copy_from_slice(&ip(VTEP_A).octets());
    wrong_peer[0..6].copy_from_slice(&mac(FABRIC_A).0);
    refill_ip_checksum(&mut wrong_peer);
    assert_eq!(
        a.process(FABRIC, &wrong_peer).0,
        Verdict::Drop(DropReason::UnknownDvrMac)
    );

    assert_eq!(b.process(FABRIC, &good).0, Verdict::Forward(RED));
}

fn refill_ip_checksum(f: &mut [u8]) {
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
}

/// A copy of `frame` with `bytes` written at offset `at`.
fn patched(frame: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[at..at + bytes.len()].copy_from_slice(bytes);
    f
}

/// [`patched`], with the IPv4 header checksum of the (outer) datagram made right again.
fn patched_ip(frame: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut f = patched(frame, at, bytes);
    refill_ip_checksum(&mut f);
    f
}

#[test]
fn rfc1812_header_checks_drop_with_named_reasons() {
    let mut a = Host::new("host-a");
    let good = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.7", 64);
    let mut cases: Vec<(Vec<u8>, DropReason)> = Vec::new();
    cases.push((good[..10].to_vec(), DropReason::FrameTruncated));
    cases.push((good[..14 + 12].to_vec(), DropReason::Ipv4Truncated));
    let checksum_byte = good[14 + 10] ^ 0xff;
    cases.push((
        patched(&good, 14 + 10, &[checksum_byte]),
        DropReason::Ipv4BadChecksum,
    ));
    cases.push((patched(&good, 14, &[0x65]), DropReason::Ipv4BadVersion));
    cases.push((patched(&good, 14, &[0x44]), DropReason::Ipv4BadHeaderLength));
    for total_len in [1000u16, 12] {
        cases.push((
            patched_ip(&good, 14 + 2, &total_len.to_be_bytes()),
            DropReason::Ipv4BadTotalLength,
        ));
    }
    let addressed = [
        ("127.0.0.1", "10.0.2.7", DropReason::MartianSource),
        ("10.0.1.5", "224.0.0.5", DropReason::Multicast),
        ("10.0.1.5", "10.0.2.255", DropReason::Broadcast),
        ("10.0.1.5", "0.1.2.3", DropReason::MartianDestination),
    ];
    for (src, dst, reason) in addressed {
        cases.push((ping_frame(VM_BLUE_A, GW_BLUE, src, dst, 64), reason));
    }
    cases.push((patched(&good, 12, &[0x81, 0x00]), DropReason::VlanTagged));
    cases.push((patched(&good, 6, &mac(DVR_B).0), DropReason::SpoofedDvrMac));
    for (frame, reason) in cases {
        assert_eq!(a.process(BLUE, &frame).0, Verdict::Drop(reason), "{reason}");
    }
    assert_eq!(
        a.process(BLUE, &good).0,
        Verdict::Forward(RED),
        "traffic keeps flowing"
    );
    // A port attached to nothing drops everything.
    assert_eq!(
        a.process(router_core::ids::PortId::new(7), &good).0,
        Verdict::Drop(DropReason::PortNotAttached)
    );
}

#[test]
fn ttl_expiry_gets_time_exceeded_from_the_input_gateway() {
    let mut a = Host::new("host-a");
    let frame = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.7", 1);
    let (v, out) = a.process(BLUE, &frame);
    assert_eq!(v, Verdict::Forward(BLUE));
    assert_eq!(&out[0..6], &mac(VM_BLUE_A).0);
    assert_eq!(&out[6..12], &mac(GW_BLUE).0);
    let ipp = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert!(ipp.verify_checksum());
    assert_eq!(ipp.src_addr(), ip("10.0.1.1"));
    assert_eq!(ipp.dst_addr(), ip("10.0.1.5"));
    let icmp = Icmpv4Packet::new_checked(ipp.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!((u8::from(icmp.msg_type()), icmp.code()), (11, 0));
    // The quote is the original header and 8 bytes of its payload.
    assert_eq!(icmp.data(), &frame[14..14 + 28]);

    // A packet for the router itself with TTL 1 is delivered, not expired.
    let to_gw = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.1.1", 1);
    assert_eq!(
        a.process(BLUE, &to_gw).0,
        Verdict::Punt(PuntReason::LocalDelivery)
    );
    // No ICMP error about an ICMP error (RFC 1812 section 4.3.2.7).
    let mut err = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.7", 1);
    err[34] = 3;
    assert_eq!(
        a.process(BLUE, &err).0,
        Verdict::Drop(DropReason::TtlExceeded)
    );
}

/// One sender of many TTL-1 packets gets the per-source burst of time exceeded messages and
/// no more; another sender behind the same router still gets its error, and the suppressed
/// ones are counted apart from the router-wide limit. Fragmentation needed is exempt.
#[test]
fn a_noisy_source_gets_its_burst_of_errors_and_others_still_get_theirs() {
    let mut a = Host::new("host-a");
    let noisy = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.7", 1);
    let answered = (0..50)
        .filter(|_| a.process(BLUE, &noisy).0 == Verdict::Forward(BLUE))
        .count();
    assert_eq!(
        answered,
        router_core::icmp_limit::SOURCE_BURST_DEFAULT as usize
    );
    assert_eq!(
        a.process(BLUE, &noisy).0,
        Verdict::Drop(DropReason::TtlExceeded)
    );
    let other = ping_frame(VM_RED_A, GW_RED, "10.0.2.7", "10.0.1.5", 1);
    let (v, out) = a.process(RED, &other);
    assert_eq!(v, Verdict::Forward(RED), "another source is not starved");
    assert_eq!(out[34], 11, "time exceeded");
    let counters = a.worker.counters();
    assert_eq!(counters.icmp_rate_limited_source.get(), 45);
    assert_eq!(counters.icmp_rate_limited.get(), 0);

    // Path MTU discovery is never held back by the per-source limit.
    a.resolve_underlay();
    let too_big = Datagram {
        payload_len: 1451 - 20,
        dont_frag: true,
        ..Datagram::udp(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.8")
    }
    .frame();
    let (v, out) = a.process(BLUE, &too_big);
    assert_eq!(v, Verdict::Forward(BLUE));
    assert_eq!((out[34], out[35]), (3, 4), "fragmentation needed");

    // With the limit off (rate 0), every error goes out, up to the router-wide burst.
    let mut b = Host::tuned("host-a", |cfg| cfg.icmp_per_source_rate_per_s = 0);
    let answered = (0..50)
        .filter(|_| b.process(BLUE, &noisy).0 == Verdict::Forward(BLUE))
        .count();
    assert_eq!(answered, 50);
}

#[test]
fn no_route_gets_net_unreachable_and_df_gets_frag_needed() {
    let mut a = Host::new("host-a");
    // Tenant 2 has no default route.
    let frame = ping_frame(VM_T2_A, GW_BLUE2, "10.0.1.5", "8.8.8.8", 64);
    let (v, out) = a.process(BLUE2, &frame);
    assert_eq!(v, Verdict::Forward(BLUE2));
    let icmp_bytes = &out[34..];
    assert_eq!((icmp_bytes[0], icmp_bytes[1]), (3, 0));

    // Across the fabric the inner packet may be 1500 - 50 bytes.
    a.resolve_underlay();
    let to_b = |payload_len, dont_frag| Datagram {
        payload_len,
        dont_frag,
        ..Datagram::udp(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.8")
    };
    let fits = to_b(1450 - 20, true).frame();
    assert_eq!(a.process(BLUE, &fits).0, Verdict::Forward(FABRIC));
    let big = to_b(1451 - 20, true).frame();
    let (v, out) = a.process(BLUE, &big);
    assert_eq!(v, Verdict::Forward(BLUE));
    let icmp = Icmpv4Packet::new_checked(&out[34..]).unwrap();
    assert_eq!(
        (u8::from(icmp.msg_type()), icmp.code(), icmp.next_hop_mtu()),
        (3, 4, 1450)
    );
    // Without DF it goes to the control thread, to be fragmented there.
    let big_no_df = to_b(1451 - 20, false).frame();
    assert_eq!(
        a.process(BLUE, &big_no_df).0,
        Verdict::Punt(PuntReason::Fragment)
    );
    // Locally the port MTU (1500) applies.
    let local = Datagram {
        payload_len: 1480,
        dont_frag: true,
        ..Datagram::udp(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.7")
    }
    .frame();
    assert_eq!(a.process(BLUE, &local).0, Verdict::Forward(RED));
}

/// What the control thread does with a datagram punted as `fragment`: asks the control plane
/// for the MTU, splits the datagram and runs each fragment through the engine from the port
/// it came in on. Returns each fragment's verdict and frame as it left.
fn fragment_and_reinject(h: &mut Host, input: PortId, frame: &[u8]) -> Vec<(Verdict, Vec<u8>)> {
    let (action, after, _) = h.punt(input, PuntReason::Fragment, frame, 1);
    assert_eq!(
        after, frame,
        "the control plane leaves the datagram as it is"
    );
    let PuntAction::Fragment { mtu } = action else {
        panic!("not fragmented: {action:?}");
    };
    let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
    let plan = Fragmenter::new(ip, usize::from(mtu)).unwrap();
    (0..plan.count())
        .map(|k| {
            let mut f = frame[..14].to_vec();
            f.resize(14 + plan.fragment(k).total_len(), 0);
            plan.emit(k, &mut f[14..]);
            h.process(input, &f)
        })
        .collect()
}

/// The payload of an IPv4 datagram put back together from the fragments at `at` bytes into
/// `frames`, checking each: routed once, checksum right, in order, only the last without
/// more-fragments, at most `mtu` bytes.
fn reassembled(frames: &[Vec<u8>], at: usize, mtu: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    for (k, f) in frames.iter().enumerate() {
        let ip = Ipv4Packet::new_checked(&f[at..]).unwrap();
        assert!(usize::from(ip.total_len()) <= mtu, "fragment {k}");
        assert!(ip.verify_checksum() && ip.ttl() == 63, "fragment {k}");
        assert_eq!(usize::from(ip.frag_offset()), payload.len(), "fragment {k}");
        assert_eq!(ip.more_frags(), k + 1 < frames.len(), "fragment {k}");
        payload.extend_from_slice(ip.payload());
    }
    payload
}

#[test]
fn too_big_without_df_is_fragmented_then_each_fragment_routed_and_encapsulated() {
    let mut a = Host::new("host-a");
    a.resolve_underlay();
    let big = Datagram {
        payload_len: 1480,
        ..Datagram::udp(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.8")
    }
    .frame();
    assert_eq!(a.process(BLUE, &big).0, Verdict::Punt(PuntReason::Fragment));
    let sent = fragment_and_reinject(&mut a, BLUE, &big);
    assert_eq!(sent.len(), 2);
    let mut inner = Vec::new();
    for (v, out) in sent {
        assert_eq!(v, Verdict::Forward(FABRIC));
        let outer = Ipv4Packet::new_checked(&out[14..]).unwrap();
        assert!(
            outer.dont_frag() && !outer.is_fragment(),
            "the outer packet is whole"
        );
        assert!(usize::from(outer.total_len()) <= 1500);
        assert_eq!(&out[50 + 6..50 + 12], &mac(DVR_A).0, "the DVR rewrite");
        inner.push(out[50..].to_vec());
    }
    assert_eq!(reassembled(&inner, 14, 1450), big[34..]);

    // Toward a local port the fragments are routed frames like any other.
    let jumbo = Datagram {
        payload_len: 1980,
        ..Datagram::udp(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.7")
    }
    .frame();
    assert_eq!(
        a.process(BLUE, &jumbo).0,
        Verdict::Punt(PuntReason::Fragment)
    );
    let sent = fragment_and_reinject(&mut a, BLUE, &jumbo);
    assert!(sent.iter().all(|(v, f)| *v == Verdict::Forward(RED)
        && f[0..6] == mac(VM_RED_A).0
        && f[6..12] == mac(GW_RED).0));
    let frames: Vec<Vec<u8>> = sent.into_iter().map(|(_, f)| f).collect();
    assert_eq!(reassembled(&frames, 14, 1500), jumbo[34..]);

    // A datagram that fits by now, or has DF, goes through the engine again; one from the
    // fabric is no router's to fragment.
    let fits = Datagram {
        payload_len: 1000,
        ..Datagram::udp(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.8")
    }
    .frame();
    assert_eq!(
        a.punt(BLUE, PuntReason::Fragment, &fits, 1).0,
        PuntAction::Reinject
    );
    let with_df = Datagram {
        payload_len: 1480,
        dont_frag: true,
        ..Datagram::udp(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.8")
    }
    .frame();
    assert_eq!(
        a.punt(BLUE, PuntReason::Fragment, &with_df, 1).0,
        PuntAction::Reinject
    );
    assert_eq!(
        a.punt(FABRIC, PuntReason::Fragment, &big, 1).0,
        PuntAction::Drop(DropReason::NotForRouter)
    );
}

#[test]
fn default_route_goes_to_the_snat_node_over_the_fabric() {
    let mut a = Host::new("host-a");
    a.resolve_underlay();
    let frame = ping_frame(VM_RED_A, GW_RED, "10.0.2.7", "198.51.100.1", 64);
    let (v, out) = a.process(RED, &frame);
    assert_eq!(v, Verdict::Forward(FABRIC));
    let inner = &out[50..];
    assert_eq!(&inner[0..6], &mac(VM_SNAT).0, "to the SNAT port's MAC");
    assert_eq!(&inner[6..12], &mac(DVR_A).0);
    let vni = u32::from_be_bytes([0, out[46], out[47], out[48]]);
    assert_eq!(vni, VNI_BLUE, "on the SNAT port's network");
}

#[test]
fn overlapping_tenants_stay_isolated() {
    let mut a = Host::new("host-a");
    // Tenant 2's 10.0.1.5 asks for 10.0.2.7: tenant 2 has no such subnet and no default route.
    let frame = ping_frame(VM_T2_A, GW_BLUE2, "10.0.1.5", "10.0.2.7", 64);
    let (v, out) = a.process(BLUE2, &frame);
    assert_eq!(
        v,
        Verdict::Forward(BLUE2),
        "an ICMP error back, never into tenant 1"
    );
    assert_eq!(out[34], 3);
    // Frames for tenant 1's gateway MAC on tenant 2's port are bridged lookups in tenant 2's
    // network, where that MAC is unknown.
    let cross = ping_frame(VM_T2_A, GW_BLUE, "10.0.1.5", "10.0.2.7", 64);
    assert_eq!(a.process(BLUE2, &cross).0, Verdict::Punt(PuntReason::Flood));
}

#[test]
fn gateway_arp_and_ping_are_answered_locally() {
    let mut a = Host::new("host-a");
    let req = arp_frame(
        1,
        mac(VM_BLUE_A),
        ip("10.0.1.5"),
        EthernetAddress::ZERO,
        ip("10.0.1.1"),
        EthernetAddress::BROADCAST,
    );
    assert_eq!(a.process(BLUE, &req).0, Verdict::Punt(PuntReason::Arp));
    let (action, out, _) = a.punt(BLUE, PuntReason::Arp, &req, 0);
    assert_eq!(action, PuntAction::Reply(BLUE));
    assert_eq!(&out[0..6], &mac(VM_BLUE_A).0);
    let arp = wire::ArpPacket::new_checked(&out[14..]).unwrap();
    assert_eq!(arp.operation(), wire::ArpOperation::Reply);
    assert_eq!(arp.sender_hw(), mac(GW_BLUE));
    assert_eq!(arp.sender_ip(), ip("10.0.1.1"));
    assert_eq!(arp.target_ip(), ip("10.0.1.5"));

    // ARP suppression: host-b's RED instance is answered for by host A.
    let req = arp_frame(
        1,
        mac(VM_RED_A),
        ip("10.0.2.7"),
        EthernetAddress::ZERO,
        ip("10.0.2.8"),
        EthernetAddress::BROADCAST,
    );
    let (action, out, _) = a.punt(RED, PuntReason::Arp, &req, 0);
    assert_eq!(action, PuntAction::Reply(RED));
    assert_eq!(
        wire::ArpPacket::new_checked(&out[14..])
            .unwrap()
            .sender_hw(),
        mac(VM_RED_B)
    );

    let ping = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.1.1", 64);
    assert_eq!(
        a.process(BLUE, &ping).0,
        Verdict::Punt(PuntReason::LocalDelivery)
    );
    let (action, out, _) = a.punt(BLUE, PuntReason::LocalDelivery, &ping, 0);
    assert_eq!(action, PuntAction::Reply(BLUE));
    let ipp = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert!(ipp.verify_checksum());
    assert_eq!(
        (ipp.src_addr(), ipp.dst_addr()),
        (ip("10.0.1.1"), ip("10.0.1.5"))
    );
    let icmp = Icmpv4Packet::new_checked(ipp.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(u8::from(icmp.msg_type()), 0);
}

/// Every address of the router answers, whichever interface the request came in by (as Linux
/// does): BLUE's instance pings RED's gateway and the reply comes back on BLUE, from 10.0.2.1
/// and BLUE's gateway MAC, on host A (a RED instance here) and on host B alike.
#[test]
fn every_interface_address_of_the_router_answers_ping_from_any_of_its_networks() {
    for name in ["host-a", "host-b"] {
        let mut h = Host::new(name);
        let ping = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.1", 64);
        assert_eq!(
            h.process(BLUE, &ping).0,
            Verdict::Punt(PuntReason::LocalDelivery),
            "{name}: delivered locally, never routed toward RED or the fabric"
        );
        let (action, out, solicits) = h.punt(BLUE, PuntReason::LocalDelivery, &ping, 0);
        assert_eq!(action, PuntAction::Reply(BLUE), "{name}");
        assert!(solicits.is_empty());
        assert_eq!(&out[0..6], &mac(VM_BLUE_A).0, "{name}: back to the sender");
        assert_eq!(
            &out[6..12],
            &mac(GW_BLUE).0,
            "{name}: from its own gateway MAC"
        );
        let ipp = Ipv4Packet::new_checked(&out[14..]).unwrap();
        assert!(ipp.verify_checksum());
        assert_eq!(
            (ipp.src_addr(), ipp.dst_addr()),
            (ip("10.0.2.1"), ip("10.0.1.5")),
            "{name}: from the address pinged"
        );
        let icmp = Icmpv4Packet::new_checked(ipp.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(u8::from(icmp.msg_type()), 0, "{name}: echo reply");

        // UDP to that address gets port unreachable from it, as for the input gateway.
        let udp = Datagram::udp(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.1").frame();
        assert_eq!(
            h.process(BLUE, &udp).0,
            Verdict::Punt(PuntReason::LocalDelivery)
        );
        let (action, out, _) = h.punt(BLUE, PuntReason::LocalDelivery, &udp, 0);
        assert_eq!(action, PuntAction::Reply(BLUE), "{name}");
        let ipp = Ipv4Packet::new_checked(&out[14..]).unwrap();
        assert_eq!(ipp.src_addr(), ip("10.0.2.1"));
        assert_eq!((out[34], out[35]), (3, 3), "{name}: port unreachable");
    }
    // Another tenant's port never reaches router r1's addresses, even with the same numbers:
    // r2 has no 10.0.2.1, so the punt path refuses it even if handed one.
    let mut a = Host::new("host-a");
    let foreign = ping_frame(VM_T2_A, GW_BLUE2, "10.0.1.5", "10.0.2.1", 64);
    assert_eq!(
        a.punt(BLUE2, PuntReason::LocalDelivery, &foreign, 0).0,
        PuntAction::Drop(DropReason::NotForRouter)
    );
}

#[test]
fn unknown_neighbour_is_resolved_by_arp_and_static_entries_resist_poisoning() {
    let mut a = Host::new("host-a");
    // 10.0.2.50 is on RED but is no instance port: resolve it.
    let frame = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.50", 64);
    assert_eq!(
        a.process(BLUE, &frame).0,
        Verdict::Punt(PuntReason::NeighborMiss)
    );
    let (action, _, solicits) = a.punt(BLUE, PuntReason::NeighborMiss, &frame, 0);
    let PuntAction::Hold(nh) = action else {
        panic!("{action:?}")
    };
    assert_eq!(solicits.len(), 1);
    assert_eq!(solicits[0].port, RED);
    let arp = wire::ArpPacket::new_checked(&solicits[0].frame[14..]).unwrap();
    assert_eq!(
        (arp.sender_ip(), arp.target_ip()),
        (ip("10.0.2.1"), ip("10.0.2.50"))
    );
    assert!(a.cp.hold_events().is_empty(), "not resolved yet");
    // Still unresolved: the next packet is punted too, and held for the same next hop.
    assert_eq!(
        a.process(BLUE, &frame).0,
        Verdict::Punt(PuntReason::NeighborMiss)
    );
    let (action, _, solicits) = a.punt(BLUE, PuntReason::NeighborMiss, &frame, 1);
    assert_eq!(action, PuntAction::Hold(nh));
    assert!(solicits.is_empty(), "one resolution at a time");

    let who = mac("52:54:00:00:02:32");
    let reply = arp_frame(
        2,
        who,
        ip("10.0.2.50"),
        mac(GW_RED),
        ip("10.0.2.1"),
        mac(GW_RED),
    );
    let (action, _, _) = a.punt(RED, PuntReason::Arp, &reply, 2);
    assert_eq!(
        action,
        PuntAction::Learned,
        "the reply did its job: no drop"
    );
    assert_eq!(a.cp.hold_events(), vec![HoldEvent::Resolved(nh)]);
    let (v, out) = a.process(BLUE, &frame);
    assert_eq!(v, Verdict::Forward(RED));
    assert_eq!(&out[0..6], &who.0);

    // An ARP reply claiming an instance port's address changes nothing.
    let poison = arp_frame(
        2,
        who,
        ip("10.0.2.7"),
        mac(GW_RED),
        ip("10.0.2.1"),
        mac(GW_RED),
    );
    let (action, _, _) = a.punt(RED, PuntReason::Arp, &poison, 3);
    assert_eq!(action, PuntAction::Drop(DropReason::NotForRouter));
    let (v, out) = a.process(
        BLUE,
        &ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.7", 64),
    );
    assert_eq!(v, Verdict::Forward(RED));
    assert_eq!(&out[0..6], &mac(VM_RED_A).0);

    // Nobody answers for 10.0.2.51: after the probes, ICMP host unreachable.
    let lost = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.51", 64);
    let (action, _, _) = a.punt(BLUE, PuntReason::NeighborMiss, &lost, 0);
    let PuntAction::Hold(nh) = action else {
        panic!()
    };
    let s = 1_000_000_000;
    let mut events = Vec::new();
    for t in 1..=4 {
        a.cp.tick(t * s);
        events.extend(a.cp.hold_events());
    }
    assert_eq!(events, vec![HoldEvent::Failed(nh)]);
    let (v, out) = a.process(BLUE, &lost);
    assert_eq!(v, Verdict::Forward(BLUE));
    assert_eq!((out[34], out[35]), (3, 1), "host unreachable");
}

/// The ARP reply from a peer's VTEP resolves the underlay and releases the held packet: it
/// is counted as learned, not as a drop. A reply nobody asked for stays a drop.
#[test]
fn an_arp_reply_that_resolves_the_underlay_is_learned_not_dropped() {
    let mut a = Host::new("host-a");
    let frame = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.8", 64);
    let (action, _, _) = a.punt(BLUE, PuntReason::UnderlayMiss, &frame, 0);
    let PuntAction::Hold(nh) = action else {
        panic!("{action:?}")
    };
    let reply = arp_frame(
        2,
        mac(FABRIC_B),
        ip(VTEP_B),
        a.fabric_mac,
        ip(VTEP_A),
        a.fabric_mac,
    );
    assert_eq!(a.process(FABRIC, &reply).0, Verdict::Punt(PuntReason::Arp));
    let (action, _, _) = a.punt(FABRIC, PuntReason::Arp, &reply, 1);
    assert_eq!(action, PuntAction::Learned);
    assert_eq!(a.cp.hold_events(), vec![HoldEvent::Resolved(nh)]);
    assert_eq!(a.process(BLUE, &frame).0, Verdict::Forward(FABRIC));

    // From an address that is no peer's VTEP: nothing learned, not for the router.
    let stranger = arp_frame(
        2,
        mac("02:00:00:00:f0:99"),
        ip("192.0.2.99"),
        a.fabric_mac,
        ip(VTEP_A),
        a.fabric_mac,
    );
    assert_eq!(
        a.punt(FABRIC, PuntReason::Arp, &stranger, 2).0,
        PuntAction::Drop(DropReason::NotForRouter)
    );
}

#[test]
fn bridged_traffic_crosses_hosts_without_rewrite() {
    let mut a = Host::new("host-a");
    let mut b = Host::new("host-b");
    a.resolve_underlay();
    // BLUE-A to the SNAT port on BLUE (same subnet, on host-b): plain L2 over the VNI.
    let frame = ping_frame(VM_BLUE_A, VM_SNAT, "10.0.1.5", "10.0.1.254", 64);
    let (v, out) = a.process(BLUE, &frame);
    assert_eq!(v, Verdict::Forward(FABRIC));
    assert_eq!(&out[50..], &frame[..], "inner frame untouched");
    // Host B has the SNAT port as a remote (host-b is "host-b": it is local there). Add a
    // local BLUE port on host-b to receive it.
    b.cp.apply(&add_port("blue", "10.0.1.6", "fa:16:3e:bb:01:06", "host-b"))
        .unwrap();
    let to_b = ping_frame(VM_BLUE_A, "fa:16:3e:bb:01:06", "10.0.1.5", "10.0.1.6", 64);
    let (v, out) = a.process(BLUE, &to_b);
    assert_eq!(
        v,
        Verdict::Punt(PuntReason::Flood),
        "host A does not know 10.0.1.6 yet"
    );
    a.cp.apply(&add_port("blue", "10.0.1.6", "fa:16:3e:bb:01:06", "host-b"))
        .unwrap();
    let (v, out2) = a.process(BLUE, &to_b);
    assert_eq!(v, Verdict::Forward(FABRIC));
    let (v, delivered) = b.process(FABRIC, &out2);
    assert_eq!(v, Verdict::Forward(BLUE));
    assert_eq!(delivered, to_b);
    let _ = out;
}

#[test]
fn deleting_a_port_stops_traffic_and_re_adding_restores_it() {
    let mut a = Host::new("host-a");
    let frame = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.7", 64);
    assert_eq!(a.process(BLUE, &frame).0, Verdict::Forward(RED));
    a.cp.apply(&Change::DelPort {
        network: "red".into(),
        ip: ip("10.0.2.7"),
    })
    .unwrap();
    assert_eq!(
        a.process(BLUE, &frame).0,
        Verdict::Punt(PuntReason::NeighborMiss)
    );
    a.cp.apply(&add_port("red", "10.0.2.7", VM_RED_A, "host-a"))
        .unwrap();
    assert_eq!(a.process(BLUE, &frame).0, Verdict::Forward(RED));
}

#[test]
fn a_refused_batch_changes_nothing() {
    let mut a = Host::new("host-a");
    let before = a.cp.model().clone();
    let usage = a.cp.table_usage();
    let batch = vec![
        add_port("red", "10.0.2.9", "fa:16:3e:00:00:09", "host-a"),
        // Outside RED's subnet: refused.
        add_port("red", "10.0.3.9", "fa:16:3e:00:00:0a", "host-a"),
    ];
    let err = a.cp.apply_batch(&batch).unwrap_err();
    assert_eq!(err.0, 1);
    assert!(
        err.1.to_string().contains("outside 10.0.2.0/24"),
        "{}",
        err.1
    );
    assert_eq!(a.cp.model(), &before);
    assert_eq!(a.cp.table_usage(), usage);
    let frame = ping_frame(VM_BLUE_A, GW_BLUE, "10.0.1.5", "10.0.2.9", 64);
    assert_eq!(
        a.process(BLUE, &frame).0,
        Verdict::Punt(PuntReason::NeighborMiss)
    );
}
