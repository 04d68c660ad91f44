//! Per-host distributed virtual routing across hosts, end to end: three real `dvrd` processes
//! (hosts A, B and C), each with its instances in network namespaces, a Linux bridge as the
//! underlay between their fabric ports, and a centralised SNAT node (a kernel namespace with a
//! Linux vxlan device). The topology is `dvr_harness::dvr` (also the demo's): router `tenant1` with
//! BLUE 10.0.1.0/24 and RED 10.0.2.0/24, router `tenant2` with the same subnets on other VNIs.
//!
//! Each test checks what docs/dvr-semantics.md promises, with the tools an operator would use:
//! ping, arping, tcpdump captures on the instances, the fabric and the SNAT node (taken apart
//! with the `router_core::wire` views), iperf3, plain TCP transfers compared by SHA-256, the
//! routers' counters through the control API, and their exit summaries.
//!
//! Run as root: `cargo test --release -p dvr-router --test e2e_dvr -- --test-threads=1`.

use std::net::Ipv4Addr;
use std::time::Duration;

use dvr_harness::checks::{
    assert_exits_clean, assert_gateway_replies, assert_icmp_from_gateway, assert_routed_echoes,
    assert_routed_round_trip, echoes, macs_and_ttl, wait_for_icmp, Echo, TTL_ROUTED,
};
use dvr_harness::dvr::{
    deltas, fabric_movement, host_index, port_stats, router_stats, walk_of, walks, Cloud, Crossing,
    InstanceDef, BLUE, BLUE2, BLUE2_A, BLUE_A, BLUE_C, FABRIC_INNER_MTU, FABRIC_MTU, FABRIC_PORT,
    HOSTS, HOST_A, HOST_B, HOST_C, INSTANCES, OUTSIDE, RED, RED2, RED2_B, RED_A, RED_B, SNAT_PORT,
    SNAT_UNDERLAY_IF, SNAT_VXLAN_IF, TENANT1, VXLAN_OVERHEAD,
};
use dvr_harness::dvrd::DvrdExit;
use dvr_harness::frames::{
    ethernet, ethernet_of, icmp_echo_request, ipv4, ipv4_of, vxlan_frame, Ipv4Fields, Mac,
    Tunnelled,
};
use dvr_harness::pcap::PcapRecord;
use dvr_harness::tools::{
    assert_tcp_copy_intact, cached_path_mtu, iperf3_client, iperf3_server, udp_datagram_without_df,
};
use dvr_harness::{scope, Capture, Netns, PingOpts, Scope};
use dvr_router::stats::Snapshot;
use router_core::wire::{ArpPacket, EtherType, Icmpv4Message, IpProtocol, Ipv4Packet, VXLAN_PORT};

/// How long a capture waits for a frame it expects.
const CAPTURE_WAIT: Duration = Duration::from_secs(5);
/// The lowest outer UDP source port (RFC 7348 section 5: 49152-65535 recommended).
const ENTROPY_PORT_MIN: u16 = 49152;
/// Sizes of the random files sent over plain TCP.
const TRANSFER_BYTES: u64 = 4 << 20;
const PMTU_TRANSFER_BYTES: u64 = 8 << 20;
/// Data bytes of the echo requests injected on the fabric: ping never sends this many by
/// default, so a capture tells them apart.
const INJECTED_DATA_LEN: usize = 99;

/// Pings that must all be answered: 200 ms apart, 3 s for the last reply.
fn pings(count: u32) -> PingOpts {
    PingOpts::count(count).timeout(Duration::from_secs(3))
}

/// Pings with `size` data bytes (to tell flows apart in captures).
fn pings_of_size(count: u32, size: usize) -> PingOpts {
    pings(count).size(size)
}

/// Pings expected to fail: short timeouts.
fn doomed_pings(count: u32, size: usize) -> PingOpts {
    PingOpts::count(count)
        .size(size)
        .timeout(Duration::from_secs(1))
}

/// The tunnelled frames whose inner frame is the echo `echo`.
fn tunnelled_echoes(t: &[Tunnelled], echo: Echo) -> Vec<Tunnelled> {
    t.iter()
        .filter(|t| echo.matches(&t.inner))
        .cloned()
        .collect()
}

/// The tunnelled frames that carry `echo`, checked as a dvrd encapsulates a packet it routed:
/// exactly `count`, each crossing the fabric as `crossing` says, from an outer UDP source port
/// in the entropy range, with DF set and a correct outer checksum, the inner packet routed
/// once with its checksum updated. Returns them for further checks.
fn assert_encapsulated(
    fabric: &[Tunnelled],
    echo: Echo,
    count: usize,
    crossing: Crossing,
    what: &str,
) -> Vec<Tunnelled> {
    let dump = Tunnelled::dump(fabric);
    let seen = tunnelled_echoes(fabric, echo);
    assert_eq!(seen.len(), count, "{what} on the fabric:\n{dump}");
    for t in &seen {
        assert_eq!(Crossing::of(t), Some(crossing), "{what}\n{dump}");
        assert_eq!(t.dst_port, VXLAN_PORT, "{what}: outer UDP port\n{dump}");
        assert!(
            t.src_port >= ENTROPY_PORT_MIN,
            "{what}: outer UDP source port {} is not in 49152-65535",
            t.src_port
        );
        assert!(t.outer_checksum_ok, "{what}: outer IPv4 checksum\n{dump}");
        assert!(t.dont_frag, "{what}: the outer packet must have DF set");
        let inner = ipv4_of(&t.inner).unwrap();
        assert_eq!(inner.ttl(), TTL_ROUTED, "{what}: routed once");
        assert!(inner.verify_checksum(), "{what}: inner checksum");
    }
    seen
}

/// IPv4 total length of a frame (0 when it is no IPv4 frame).
fn ip_len(frame: &[u8]) -> u16 {
    ipv4_of(frame).map_or(0, |ip| ip.total_len())
}

/// IPv4 total length of an echo with `data` bytes.
fn echo_len(data: usize) -> u16 {
    (20 + 8 + data) as u16
}

/// A one-line account of each host's routing and fabric counters, for failure messages.
fn walk(d: &[Snapshot]) -> String {
    HOSTS
        .iter()
        .zip(d)
        .map(|(h, s)| {
            let r = router_stats(s, TENANT1.name);
            let f = port_stats(s, FABRIC_PORT);
            format!(
                "  {}: routed here {} to peers {} from peers {}; fabric tx {} rx {}; drops {:?}\n",
                h.name,
                r.routed_local,
                r.routed_remote,
                r.delivered_from_fabric,
                f.tx_packets,
                f.rx_packets,
                s.drops.iter().filter(|(_, n)| **n > 0).collect::<Vec<_>>()
            )
        })
        .collect()
}

/// Router `tenant1`'s walk on each host in per-host counters (routed here, routed to peers,
/// delivered from peers), in [`HOSTS`] order.
fn assert_walks(d: &[Snapshot], want: [(u64, u64, u64); 3], why: &str) {
    assert_eq!(walks(d), want, "{why}\n{}", walk(d));
}

/// No host's fabric port sent or received anything in per-host counters.
fn assert_fabric_ports_silent(d: &[Snapshot]) {
    let moved = fabric_movement(d);
    assert!(
        moved.is_empty(),
        "fabric port counters moved: {}\n{}",
        moved.join(", "),
        walk(d)
    );
}

/// What five answered pings from one instance to another left behind: the ICMP captured at
/// the sender and at the receiver, what the fabric bridge saw (tcpdump filter
/// `fabric_filter`), and what each router counted meanwhile (in [`HOSTS`] order).
struct PingSeen {
    at_instances: (Vec<PcapRecord>, Vec<PcapRecord>),
    fabric: Vec<PcapRecord>,
    deltas: Vec<Snapshot>,
}

fn observe_ping(
    cloud: &Cloud,
    (from, to): (&InstanceDef, &InstanceDef),
    fabric_filter: &str,
) -> PingSeen {
    let (sender, receiver) = (cloud.instance(from), cloud.instance(to));
    let on_fabric = cloud.fabric().capture(fabric_filter);
    let at_receiver = receiver.capture("icmp");
    let at_sender = sender.capture("icmp");
    let before = cloud.stats();
    sender.ping(to.ip, &pings(5)).assert_all_answered();
    PingSeen {
        deltas: deltas(&before, &cloud.stats()),
        at_instances: (at_sender.stop(), at_receiver.stop()),
        fabric: on_fabric.stop(),
    }
}

/// The cloud, running, once two pings from BLUE-A to RED-B were answered: host A has resolved
/// host B's VTEP, so that nothing the test measures waits for it.
fn cloud_with_a_path_to_red_b(s: &Scope) -> Cloud {
    let cloud = Cloud::build(s);
    cloud
        .instance(&BLUE_A)
        .ping(RED_B.ip, &pings(2))
        .assert_all_answered();
    cloud
}

/// Stops every router; each must exit 0 with every packet buffer back in its pool.
fn stop_clean(cloud: &mut Cloud) -> Vec<DvrdExit> {
    let exits = cloud.stop();
    assert_exits_clean(&HOSTS, &exits);
    exits
}

#[test]
fn east_west_on_one_host_is_routed_there_and_never_touches_the_fabric() {
    let s = scope!();
    let mut cloud = Cloud::build(&s);
    let PingSeen {
        at_instances,
        fabric,
        deltas: d,
    } = observe_ping(&cloud, (&BLUE_A, &RED_A), "");

    assert_routed_round_trip(at_instances, &BLUE_A, &RED_A, 5);
    // Nothing crossed the underlay: no frame at all on the bridge, flat fabric counters.
    assert!(
        fabric.is_empty(),
        "frames crossed the fabric for traffic local to host A:\n{}{}",
        Capture::dump(&fabric),
        Tunnelled::dump(&Tunnelled::all_in(&fabric))
    );
    assert_fabric_ports_silent(&d);
    assert_walks(
        &d,
        [(10, 0, 0), (0, 0, 0), (0, 0, 0)],
        "host A routes the 5 requests and the 5 replies itself, B and C take no part",
    );
    stop_clean(&mut cloud);
}

#[test]
fn east_west_across_hosts_is_routed_at_the_source_and_bridged_at_the_destination() {
    let s = scope!();
    let mut cloud = Cloud::build(&s);
    let (fab_a, fab_b) = (
        cloud.fabric_port(&HOST_A).mac(),
        cloud.fabric_port(&HOST_B).mac(),
    );
    // The first request waits while host A resolves host B's VTEP (ARP on the fabric); it is
    // held, not lost.
    let PingSeen {
        at_instances,
        fabric,
        deltas: d,
    } = observe_ping(&cloud, (&BLUE_A, &RED_B), "udp port 4789");

    let fabric = Tunnelled::all_in(&fabric);
    let dump = Tunnelled::dump(&fabric);

    // BLUE-A -> RED-B: routed on host A, VXLAN on RED's VNI from VTEP A to VTEP B with host
    // A's DVR MAC as inner source. RED-B -> BLUE-A: routed on host B, VXLAN on BLUE's VNI
    // with host B's DVR MAC.
    let [requests, replies] = [
        (
            "requests",
            Echo::request(BLUE_A.ip, RED_B.ip),
            &HOST_A,
            &RED_B,
        ),
        (
            "replies",
            Echo::reply(RED_B.ip, BLUE_A.ip),
            &HOST_B,
            &BLUE_A,
        ),
    ]
    .map(|(what, echo, from, to)| {
        assert_encapsulated(&fabric, echo, 5, Crossing::routed(from, to), what)
    });
    // Between the hosts' fabric ports.
    for (t, macs) in requests
        .iter()
        .map(|t| (t, (fab_a, fab_b)))
        .chain(replies.iter().map(|t| (t, (fab_b, fab_a))))
    {
        assert_eq!(
            (t.outer_src_mac, t.outer_dst_mac),
            macs,
            "outer MACs\n{dump}"
        );
    }
    // One flow, one outer source port (the hash of the inner flow).
    assert!(
        requests.iter().all(|t| t.src_port == requests[0].src_port),
        "the outer source port changed within one flow\n{dump}"
    );
    // Delivered with the gateway MAC restored, not routed again.
    assert_routed_round_trip(at_instances, &BLUE_A, &RED_B, 5);
    // The routers' own account: host A routes the requests to host B and delivers the
    // replies, host B the other way round, host C has no part in it.
    let why = "the walk of a cross-host ping";
    assert_walks(&d, [(0, 5, 5), (0, 5, 5), (0, 0, 0)], why);
    stop_clean(&mut cloud);
}

#[test]
fn tcp_across_hosts_arrives_intact() {
    let s = scope!();
    let mut cloud = cloud_with_a_path_to_red_b(&s);
    let (blue_a, red_b) = (cloud.instance(&BLUE_A), cloud.instance(&RED_B));
    let server = iperf3_server(red_b.netns(), "iperf3");
    let report = iperf3_client(blue_a.netns(), RED_B.ip, &["-t", "3"]);
    drop(server);
    let received = report["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let sent = report["end"]["sum_sent"]["bytes"].as_u64().unwrap_or(0);
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    let retransmits = report["end"]["sum_sent"]["retransmits"]
        .as_u64()
        .unwrap_or(0);
    eprintln!(
        "[e2e] iperf3 BLUE-A -> RED-B (host A -> host B): {:.1} Mbit/s, {received} bytes, {retransmits} retransmits",
        bps / 1e6
    );
    // The sender counts what it wrote within the test's time; what was still in flight at the
    // end is not counted as received.
    assert!(
        received > 1_000_000 && received <= sent,
        "iperf3: {received} of {sent} bytes received"
    );

    // Plain TCP both ways, random bytes, compared by SHA-256.
    for (from, to, to_ip, port, name) in [
        (blue_a, red_b, RED_B.ip, 5001, "blue-to-red"),
        (red_b, blue_a, BLUE_A.ip, 5002, "red-to-blue"),
    ] {
        let to = (to.netns(), to_ip, port);
        let t = assert_tcp_copy_intact(from.netns(), to, name, TRANSFER_BYTES);
        eprintln!(
            "[e2e] TCP {name}: {} bytes in {:?} ({:.1} Mbit/s)",
            t.bytes,
            t.elapsed,
            t.mbit_per_s()
        );
    }
    let d = cloud.stats();
    for h in [&HOST_A, &HOST_B] {
        let (_, routed_remote, delivered_from_fabric) = walk_of(&d, h);
        assert!(
            routed_remote > 1000 && delivered_from_fabric > 1000,
            "{}: the transfers were not routed across hosts\n{}",
            h.name,
            walk(&d)
        );
    }
    stop_clean(&mut cloud);
}

#[test]
fn overlapping_tenants_never_leak_into_each_other() {
    let s = scope!();
    let mut cloud = Cloud::build(&s);
    let blue_a = cloud.instance(&BLUE_A);
    let blue2_a = cloud.instance(&BLUE2_A);
    // Tenant 1 pings with 101 data bytes, tenant 2 with 202: each capture tells them apart.
    let (t1_data, t2_data) = (101, 202);
    let at: Vec<(&InstanceDef, Capture)> = INSTANCES
        .iter()
        .map(|d| (*d, cloud.instance(d).capture("")))
        .collect();
    let on_fabric = cloud.fabric().capture("udp port 4789");
    let on_snat = Capture::start(&s, Some(cloud.snat_node()), SNAT_VXLAN_IF, "");

    // The same addresses in both tenants: each reaches its own.
    blue_a
        .ping(RED_B.ip, &pings_of_size(3, t1_data))
        .assert_all_answered();
    blue2_a
        .ping(RED2_B.ip, &pings_of_size(3, t2_data))
        .assert_all_answered();
    // Addresses that exist only in tenant 1 are unreachable from tenant 2: RED-A (routed:
    // tenant 2 has no such port), BLUE-C (bridged: tenant 2's BLUE2 has no such port), and
    // the outside (tenant 2 has no SNAT default route).
    for (dst, what) in [
        (RED_A.ip, "RED-A"),
        (BLUE_C.ip, "BLUE-C"),
        (OUTSIDE, "the outside"),
    ] {
        blue2_a
            .ping(dst, &doomed_pings(2, t2_data + 1))
            .assert_unanswered(&format!(
                "BLUE2-A (tenant 2) reached {what} ({dst}) of tenant 1"
            ));
    }

    let fabric = Tunnelled::all_in(&on_fabric.stop());
    let dump = Tunnelled::dump(&fabric);
    let t2_sizes = [echo_len(t2_data), echo_len(t2_data + 1)];
    let mut seen: Vec<(&InstanceDef, Vec<PcapRecord>)> = Vec::new();
    for (def, capture) in at {
        let frames = capture.stop();
        let foreign: Vec<u16> = match def.network.router.name {
            "tenant1" => t2_sizes.to_vec(),
            _ => vec![echo_len(t1_data)],
        };
        let leaked: Vec<&PcapRecord> = frames
            .iter()
            .filter(|r| foreign.contains(&ip_len(&r.data)))
            .collect();
        assert!(
            leaked.is_empty(),
            "{} ({}) saw the other tenant's packets:\n{}",
            def.name,
            def.network.router.name,
            Capture::dump(&frames)
        );
        seen.push((def, frames));
    }
    let frames_of = |def: &InstanceDef| -> &[PcapRecord] {
        &seen.iter().find(|(d, _)| d.tag == def.tag).unwrap().1
    };
    // The instances nobody pinged saw nothing at all.
    for def in [&RED_A, &BLUE_C] {
        assert!(
            frames_of(def).is_empty(),
            "{} saw frames meant for others:\n{}",
            def.name,
            Capture::dump(frames_of(def))
        );
    }
    // Each twin got its own tenant's three requests, and its three replies, from the gateway
    // MAC of its own network.
    for (def, echo, data) in [
        (&RED_B, Echo::request(BLUE_A.ip, RED_B.ip), t1_data),
        (&RED2_B, Echo::request(BLUE2_A.ip, RED2_B.ip), t2_data),
        (&BLUE_A, Echo::reply(RED_B.ip, BLUE_A.ip), t1_data),
        (&BLUE2_A, Echo::reply(RED2_B.ip, BLUE2_A.ip), t2_data),
    ] {
        let what = format!("{}: echoes {echo:?}", def.name);
        let macs = (def.network.gateway_mac(), def.mac());
        assert_routed_echoes(frames_of(def), echo, 3, macs, &what);
        for f in &echoes(frames_of(def), echo) {
            assert_eq!(ip_len(f), echo_len(data), "{what}: the other tenant's");
        }
    }
    // On the fabric each tenant's traffic has its own VNIs.
    for t in &fabric {
        let len = ip_len(&t.inner);
        if len == echo_len(t1_data) {
            assert!(
                t.vni == BLUE.vni || t.vni == RED.vni,
                "tenant 1 traffic on VNI {}\n{dump}",
                t.vni
            );
        } else if len == echo_len(t2_data) || len == echo_len(t2_data + 1) {
            assert!(
                t.vni == BLUE2.vni || t.vni == RED2.vni,
                "tenant 2 traffic on VNI {}\n{dump}",
                t.vni
            );
        }
    }
    let t2_requests = tunnelled_echoes(&fabric, Echo::request(BLUE2_A.ip, RED2_B.ip));
    let t2_on_red2: Vec<&Tunnelled> = t2_requests
        .iter()
        .filter(|t| ip_len(&t.inner) == echo_len(t2_data))
        .collect();
    assert_eq!(
        t2_on_red2.len(),
        3,
        "tenant 2's requests on the fabric:\n{dump}"
    );
    assert!(t2_on_red2
        .iter()
        .all(|t| t.vni == RED2.vni && t.inner_macs() == Some((HOST_A.dvr_mac(), RED2_B.mac()))));
    let snat = on_snat.stop();
    assert!(
        snat.is_empty(),
        "the SNAT node (tenant 1 only) saw traffic:\n{}",
        Capture::dump(&snat)
    );
    stop_clean(&mut cloud);
}

#[test]
fn traffic_to_the_outside_goes_to_the_snat_node_over_the_fabric() {
    let s = scope!();
    let mut cloud = Cloud::build(&s);
    let snat = cloud.snat_node();
    let on_underlay = Capture::start(&s, Some(snat), SNAT_UNDERLAY_IF, "udp port 4789");
    let on_port = Capture::start(&s, Some(snat), SNAT_VXLAN_IF, "icmp");
    let before = cloud.stats();

    // BLUE-A (host A) and BLUE-C (host C) each go straight to the SNAT node, which answers
    // for the outside address. RED-A's packets are routed onto BLUE toward it too (the SNAT
    // node has no way back to RED here: no reply is expected).
    cloud
        .instance(&BLUE_A)
        .ping(OUTSIDE, &pings(3))
        .assert_all_answered();
    cloud
        .instance(&BLUE_C)
        .ping(OUTSIDE, &pings(3))
        .assert_all_answered();
    cloud
        .instance(&RED_A)
        .ping(OUTSIDE, &doomed_pings(2, 56))
        .assert_unanswered("RED-A's pings to the outside have no way back");

    let d = deltas(&before, &cloud.stats());
    let underlay = Tunnelled::all_in(&on_underlay.stop());
    let dump = Tunnelled::dump(&underlay);
    // Each instance's requests go straight from its host to the SNAT node: to the SNAT port's
    // network (BLUE) from the host's DVR MAC to the SNAT port's MAC.
    for (def, host, count) in [
        (&BLUE_A, &HOST_A, 3),
        (&BLUE_C, &HOST_C, 3),
        (&RED_A, &HOST_A, 2),
    ] {
        let what = format!("{}'s requests to {OUTSIDE} at the SNAT node", def.name);
        let echo = Echo::request(def.ip, OUTSIDE);
        assert_encapsulated(
            &underlay,
            echo,
            count,
            Crossing::routed(host, &SNAT_PORT),
            &what,
        );
    }
    // The answers come back bridged on BLUE from the SNAT port straight to each instance's
    // host.
    for def in [&BLUE_A, &BLUE_C] {
        let replies = tunnelled_echoes(&underlay, Echo::reply(OUTSIDE, def.ip));
        assert_eq!(replies.len(), 3, "replies to {}:\n{dump}", def.name);
        for t in &replies {
            let crossing = Some(Crossing::bridged(&SNAT_PORT, def));
            assert_eq!(Crossing::of(t), crossing, "{dump}");
        }
    }
    assert_routed_echoes(
        &on_port.stop(),
        Echo::request(BLUE_A.ip, OUTSIDE),
        3,
        (HOST_A.dvr_mac(), SNAT_PORT.mac()),
        "requests at the SNAT port: from host A's DVR MAC, routed once",
    );
    // Host B has no part in it (it only hears the ARP broadcasts of the underlay).
    assert_eq!(
        (
            walk_of(&d, &HOST_B),
            d[host_index(&HOST_B)].bridged_from_fabric
        ),
        ((0, 0, 0), 0),
        "host B took part in the SNAT traffic\n{}",
        walk(&d)
    );
    assert!(
        !underlay.iter().any(|t| t.src_vtep == HOST_B.vtep),
        "host B sent to the SNAT node:\n{dump}"
    );
    stop_clean(&mut cloud);
}

#[test]
fn too_big_with_df_gets_frag_needed_and_path_mtu_discovery_makes_tcp_work() {
    let s = scope!();
    let mut cloud = cloud_with_a_path_to_red_b(&s);
    let (blue_a, red_b) = (cloud.instance(&BLUE_A), cloud.instance(&RED_B));
    let at_blue = blue_a.capture("icmp");

    // 1472 data bytes: a 1500-byte packet, 50 bytes more than fits in VXLAN on a 1500 fabric.
    let big = blue_a.ping(RED_B.ip, &doomed_pings(3, 1472).dont_fragment());
    big.assert_unanswered("too big for the fabric, DF set");
    assert!(
        big.output
            .stdout
            .contains(&format!("mtu = {FABRIC_INNER_MTU}")),
        "ping does not report the next-hop MTU:\n{}",
        big.output
    );
    let error = wait_for_icmp(&at_blue, Icmpv4Message::DstUnreachable, CAPTURE_WAIT);
    // From the BLUE gateway's IP and MAC.
    let gateway = (BLUE.gateway, BLUE.gateway_mac());
    let icmp = assert_icmp_from_gateway(&error.data, gateway, (BLUE_A.ip, BLUE_A.mac()));
    assert_eq!(
        (icmp.code(), icmp.next_hop_mtu()),
        (4, FABRIC_INNER_MTU),
        "fragmentation needed with the fabric MTU less VXLAN (RFC 1191)"
    );
    let quoted = Ipv4Packet::new_unchecked(&icmp.data()[..20]);
    assert_eq!(
        (quoted.src_addr(), quoted.dst_addr(), quoted.total_len()),
        (BLUE_A.ip, RED_B.ip, 1500),
        "the quote is the too-big datagram's header"
    );
    drop(at_blue);

    // The sender's kernel took note: the path MTU to RED-B is cached at 1450.
    let (mtu, route) = cached_path_mtu(blue_a.netns(), RED_B.ip);
    assert_eq!(
        mtu,
        Some(FABRIC_INNER_MTU),
        "ip route get {}: {route}",
        RED_B.ip
    );
    // The largest packet that fits goes through.
    let data_fits = usize::from(FABRIC_INNER_MTU) - 28;
    blue_a
        .ping(RED_B.ip, &pings_of_size(3, data_fits).dont_fragment())
        .assert_all_answered();

    // A large TCP transfer from BLUE-A: its segments fit the cached path MTU from the start.
    let to_red_b = (red_b.netns(), RED_B.ip, 5011);
    assert_tcp_copy_intact(
        blue_a.netns(),
        to_red_b,
        "blue-a-to-red-b",
        PMTU_TRANSFER_BYTES,
    );
    // A sender that knows nothing yet: RED-B to BLUE-C (host B to host C). BLUE-C offers a
    // 1460-byte MSS, RED-B's first full segments get fragmentation needed from host B, and
    // its kernel lowers the path MTU in the middle of the transfer.
    let blue_c = cloud.instance(&BLUE_C);
    assert_eq!(cached_path_mtu(red_b.netns(), BLUE_C.ip).0, None);
    let to_blue_c = (blue_c.netns(), BLUE_C.ip, 5012);
    assert_tcp_copy_intact(
        red_b.netns(),
        to_blue_c,
        "red-b-to-blue-c",
        PMTU_TRANSFER_BYTES,
    );
    let (mtu, route) = cached_path_mtu(red_b.netns(), BLUE_C.ip);
    assert_eq!(
        mtu,
        Some(FABRIC_INNER_MTU),
        "RED-B did not learn the path MTU: ip route get {}: {route}",
        BLUE_C.ip
    );
    let exits = stop_clean(&mut cloud);
    // Host A answered the pings and host B the transfer's first segments; no packet without
    // DF was too big (it would have been fragmented, or dropped as unsupported).
    for h in [&HOST_A, &HOST_B] {
        let summary = exits[host_index(h)].assert_clean();
        let r = router_stats(&summary.snapshot(), TENANT1.name);
        assert!(
            r.icmp_errors >= 1,
            "{}: no ICMP error sent\n{summary}",
            h.name
        );
        assert_eq!(
            summary.drop_count("fragmentation_unsupported"),
            0,
            "{}: a packet without DF was too big\n{summary}",
            h.name
        );
    }
}

/// Sends a 1500-byte UDP datagram with DF clear (1472 payload bytes, in a pattern that tells
/// a reassembly in the wrong order from the right one) from `from` to `to`, UDP port `port`,
/// and checks that the receiver got the payload whole. Returns what each router counted.
fn assert_full_size_datagram_arrives(
    cloud: &Cloud,
    (from, to): (&InstanceDef, &InstanceDef),
    port: u16,
) -> Vec<Snapshot> {
    let payload: Vec<u8> = (0..1472u32).map(|i| (i % 251) as u8).collect();
    let before = cloud.stats();
    let receiver = (cloud.instance(to).netns(), to.ip, port);
    let got = udp_datagram_without_df(cloud.instance(from).netns(), receiver, &payload);
    let d = deltas(&before, &cloud.stats());
    assert_eq!(
        got.as_deref(),
        Some(&payload[..]),
        "the datagram did not arrive whole at {}\n{}",
        to.name,
        walk(&d)
    );
    d
}

/// The IPv4 packets of `frames` (Ethernet frames) that are fragments of UDP datagrams from
/// `src` to `dst`, checked as a router sends what it fragmented: each at most `mtu` bytes,
/// routed once, with a right checksum and DF clear; in offset order, covering the datagram
/// without gaps, only the last without more-fragments. Returns their total lengths.
fn assert_fragments(frames: &[Vec<u8>], (src, dst): (Ipv4Addr, Ipv4Addr), mtu: u16) -> Vec<u16> {
    let mut fragments: Vec<Ipv4Packet<&[u8]>> = frames
        .iter()
        .filter_map(|f| ipv4_of(f))
        .filter(|ip| {
            ip.protocol() == IpProtocol::Udp && (ip.src_addr(), ip.dst_addr()) == (src, dst)
        })
        .collect();
    fragments.sort_by_key(|ip| ip.frag_offset());
    assert!(
        fragments.len() >= 2,
        "{} UDP packets, not fragments",
        fragments.len()
    );
    let mut next = 0;
    for (k, ip) in fragments.iter().enumerate() {
        let what = format!(
            "fragment {k} (offset {}, {} bytes)",
            ip.frag_offset(),
            ip.total_len()
        );
        assert!(ip.total_len() <= mtu, "{what}: larger than the MTU {mtu}");
        assert_eq!(ip.frag_offset(), next, "{what}: a gap or an overlap");
        assert_eq!(
            ip.more_frags(),
            k + 1 < fragments.len(),
            "{what}: more-fragments"
        );
        assert_eq!(ip.ttl(), TTL_ROUTED, "{what}: routed once");
        assert!(ip.verify_checksum(), "{what}: header checksum");
        assert!(!ip.dont_frag(), "{what}: DF");
        next += ip.payload().len() as u16;
    }
    assert_eq!(next, 1480, "the fragments carry the whole datagram");
    fragments.iter().map(|ip| ip.total_len()).collect()
}

#[test]
fn too_big_without_df_is_fragmented_before_vxlan_and_arrives_whole() {
    let s = scope!();
    let mut cloud = cloud_with_a_path_to_red_b(&s);
    let on_fabric = cloud.fabric().capture("udp port 4789");
    let at_red_b = cloud.instance(&RED_B).capture("udp");
    // 1500 bytes, DF clear: 50 bytes more than VXLAN leaves room for on a 1500 fabric.
    let d = assert_full_size_datagram_arrives(&cloud, (&BLUE_A, &RED_B), 5031);

    // On the fabric: each fragment in a VXLAN packet of its own that fits the fabric MTU,
    // never an outer fragment.
    let fabric = Tunnelled::all_in(&on_fabric.stop());
    let dump = Tunnelled::dump(&fabric);
    let inner: Vec<Vec<u8>> = fabric.iter().map(|t| t.inner.clone()).collect();
    let sizes = assert_fragments(&inner, (BLUE_A.ip, RED_B.ip), FABRIC_INNER_MTU);
    assert_eq!(
        sizes.len(),
        2,
        "1480 data bytes in 1450-byte packets\n{dump}"
    );
    let carrying: Vec<&Tunnelled> = fabric
        .iter()
        .filter(|t| ipv4_of(&t.inner).is_some_and(|ip| ip.is_fragment()))
        .collect();
    for t in &carrying {
        assert_eq!(
            Crossing::of(t),
            Some(Crossing::routed(&HOST_A, &RED_B)),
            "{dump}"
        );
        assert!(t.dont_frag && t.outer_checksum_ok, "outer header\n{dump}");
        assert!(
            t.inner.len() + usize::from(VXLAN_OVERHEAD) <= usize::from(FABRIC_MTU) + 14,
            "a VXLAN packet larger than the fabric MTU\n{dump}"
        );
    }
    // At RED-B: the same fragments, delivered from the RED gateway, reassembled by its kernel.
    let frames: Vec<Vec<u8>> = at_red_b.stop().into_iter().map(|r| r.data).collect();
    assert_eq!(
        assert_fragments(&frames, (BLUE_A.ip, RED_B.ip), FABRIC_INNER_MTU),
        sizes
    );

    let a = &d[host_index(&HOST_A)];
    assert_eq!(
        (a.fragmented_packets, a.fragments_created),
        (1, 2),
        "host A's fragmentation counters\n{}",
        walk(&d)
    );
    assert_eq!(a.punts.get("fragment"), Some(&1));
    let exits = stop_clean(&mut cloud);
    let summary = exits[host_index(&HOST_A)].assert_clean();
    assert_eq!(
        summary.drop_count("fragmentation_unsupported"),
        0,
        "{summary}"
    );
}

#[test]
fn too_big_without_df_for_a_local_port_of_smaller_mtu_is_fragmented_there() {
    const RED_PORT_MTU: u16 = 1280;
    let s = scope!();
    // Host A's RED port carries at most 1280 bytes (the instance's link does more).
    let mut cloud = Cloud::build_with(&s, |host, mut cfg| {
        if host.name == HOST_A.name {
            for p in cfg.ports.iter_mut().filter(|p| p.name == RED.name) {
                p.mtu = Some(RED_PORT_MTU);
            }
        }
        cfg
    });
    cloud
        .instance(&BLUE_A)
        .ping(RED_A.ip, &pings(2))
        .assert_all_answered();
    let at_red_a = cloud.instance(&RED_A).capture("udp");
    let d = assert_full_size_datagram_arrives(&cloud, (&BLUE_A, &RED_A), 5032);
    let frames: Vec<Vec<u8>> = at_red_a.stop().into_iter().map(|r| r.data).collect();
    for f in &frames {
        let eth = ethernet_of(f).unwrap();
        assert_eq!(
            (eth.src_addr(), eth.dst_addr()),
            (RED.gateway_mac(), RED_A.mac()),
            "routed like any frame"
        );
    }
    let sizes = assert_fragments(&frames, (BLUE_A.ip, RED_A.ip), RED_PORT_MTU);
    // (1280 - 20) & !7 = 1256 data bytes, then the other 224.
    assert_eq!(sizes, [1276, 244]);
    let a = &d[host_index(&HOST_A)];
    assert_eq!(
        (a.fragmented_packets, a.fragments_created),
        (1, 2),
        "{}",
        walk(&d)
    );
    assert_fabric_ports_silent(&d);
    stop_clean(&mut cloud);
}

#[test]
fn gateway_arp_and_ping_are_answered_on_every_host_and_never_cross_the_fabric() {
    let s = scope!();
    let mut cloud = Cloud::build(&s);
    let on_fabric = cloud.fabric().capture("");
    let before = cloud.stats();

    for def in INSTANCES {
        let inst = cloud.instance(def);
        let gw = def.network.gateway;
        let arp = inst.arping(gw, 2, Duration::from_secs(5));
        assert!(
            arp.replies.len() >= 2,
            "{}: arping {gw} got {} replies\n{}",
            def.name,
            arp.replies.len(),
            arp.output
        );
        assert_eq!(
            arp.mac(),
            def.network.gateway_mac(),
            "{} ({} on {}): the gateway MAC of its own network",
            def.name,
            def.network.label,
            def.host.name
        );
        let at_inst = inst.capture("icmp");
        inst.ping(gw, &pings(3)).assert_all_answered();
        assert_gateway_replies(
            &at_inst.stop(),
            (gw, def.network.gateway_mac()),
            (def.ip, def.mac()),
            3,
            &format!("{}: replies from {gw}", def.name),
        );
    }

    let d = deltas(&before, &cloud.stats());
    let frames = on_fabric.stop();
    let gateways: Vec<Ipv4Addr> = [BLUE.gateway, RED.gateway].to_vec();
    for r in &frames {
        let eth = ethernet_of(&r.data);
        let arp_target = eth
            .as_ref()
            .filter(|e| e.ethertype() == EtherType::ARP)
            .and_then(|_| ArpPacket::new_checked(&r.data[14..]).ok())
            .map(|a| a.target_ip());
        assert!(
            !arp_target.is_some_and(|t| gateways.contains(&t)),
            "ARP for a gateway on the fabric:\n{}",
            Capture::dump(&frames)
        );
    }
    let tunnels = Tunnelled::all_in(&frames);
    assert!(
        tunnels.is_empty(),
        "gateway traffic crossed the fabric:\n{}",
        Tunnelled::dump(&tunnels)
    );
    assert!(
        frames.is_empty(),
        "frames on the fabric:\n{}",
        Capture::dump(&frames)
    );
    assert_fabric_ports_silent(&d);
    stop_clean(&mut cloud);
}

#[test]
fn every_address_of_the_router_answers_ping_from_each_of_its_networks_on_every_host() {
    let s = scope!();
    let mut cloud = Cloud::build(&s);
    let on_fabric = cloud.fabric().capture("");
    let before = cloud.stats();

    // The other network's gateway, from an instance on host A (which has instances on both
    // networks), on host B (no BLUE instance there) and on host C (no RED instance there).
    for (def, other) in [
        (&BLUE_A, &RED),
        (&RED_A, &BLUE),
        (&RED_B, &BLUE),
        (&BLUE_C, &RED),
    ] {
        let inst = cloud.instance(def);
        let at_inst = inst.capture("icmp");
        inst.ping(other.gateway, &pings(3)).assert_all_answered();
        assert_gateway_replies(
            &at_inst.stop(),
            (other.gateway, def.network.gateway_mac()),
            (def.ip, def.mac()),
            3,
            &format!(
                "{} on {}: replies from {} ({}'s gateway) by {}'s gateway MAC",
                def.name, def.host.name, other.gateway, other.label, def.network.label
            ),
        );
    }

    let d = deltas(&before, &cloud.stats());
    let frames = on_fabric.stop();
    assert!(
        frames.is_empty(),
        "pings to the router's own addresses crossed the fabric:\n{}",
        Capture::dump(&frames)
    );
    assert_fabric_ports_silent(&d);
    for (h, snapshot) in HOSTS.iter().zip(&d) {
        assert_eq!(
            snapshot.drops.get("not_for_router").copied(),
            Some(0),
            "{}: a request for a router address was dropped",
            h.name
        );
    }
    stop_clean(&mut cloud);
}

#[test]
fn the_arp_reply_that_resolves_a_peer_vtep_is_learned_not_dropped() {
    let s = scope!();
    let mut cloud = Cloud::build(&s);
    // Host A resolves host B's VTEP by ARP on the fabric; host B learns host A's from the
    // request it answers.
    cloud
        .instance(&BLUE_A)
        .ping(RED_B.ip, &pings(3))
        .assert_all_answered();
    let stats = cloud.stats();
    for host in [&HOST_A, &HOST_B] {
        let s = &stats[host_index(host)];
        assert_eq!(
            s.drops.get("not_for_router").copied(),
            Some(0),
            "{}: an ARP that did its job was counted as a drop: {:?}",
            host.name,
            s.drops.iter().filter(|(_, n)| **n > 0).collect::<Vec<_>>()
        );
    }
    let a = &stats[host_index(&HOST_A)];
    assert!(
        a.arp_learned >= 1,
        "host A: host B's ARP reply not counted as learned ({})",
        a.arp_learned
    );
    let text = dvr_harness::Dvrctl::of(cloud.router(&HOST_A)).ok("stats");
    assert!(
        text.contains("arp replies learned:"),
        "dvrctl stats shows it:\n{text}"
    );
    stop_clean(&mut cloud);
}

/// An echo request from BLUE-A to RED-B as host A would have routed it: host A's DVR MAC (or
/// `src_mac`) to RED-B's MAC, TTL 63, ICMP ident `ident`, [`INJECTED_DATA_LEN`] data bytes.
fn routed_request(src_mac: Mac, ident: u16) -> Vec<u8> {
    let icmp = icmp_echo_request(ident, 1, INJECTED_DATA_LEN);
    let ip = ipv4(
        Ipv4Fields {
            ttl: TTL_ROUTED,
            ident,
            ..Ipv4Fields::new(BLUE_A.ip, RED_B.ip, IpProtocol::Icmp)
        },
        &icmp,
    );
    ethernet(RED_B.mac(), src_mac, EtherType::IPV4, &ip)
}

/// A frame injected on the fabric and the drop reason host B must count it under (`None`: it
/// must be delivered).
struct Forged {
    what: &'static str,
    reason: Option<&'static str>,
    frame: Vec<u8>,
}

#[test]
fn fabric_frames_that_cannot_be_trusted_are_dropped_by_reason_and_traffic_keeps_flowing() {
    let s = scope!();
    let mut cloud = cloud_with_a_path_to_red_b(&s);
    // A kernel node on the underlay that sends raw frames, from an address no host knows.
    let probe = Netns::new(&s, "probe");
    let unknown_vtep = Ipv4Addr::new(192, 0, 2, 99);
    cloud
        .fabric_mut()
        .attach_node(&probe, "probe", "fab0", &format!("{unknown_vtep}/24"), 1500);
    let probe_mac = probe.link_mac("fab0");
    let host_b_mac = cloud.fabric_port(&HOST_B).mac();
    let at_red_b = cloud.instance(&RED_B).capture("icmp");

    let to_b = |src_vtep: Ipv4Addr, vni: u32, inner: &[u8]| {
        vxlan_frame(
            host_b_mac,
            probe_mac,
            src_vtep,
            HOST_B.vtep,
            50000,
            vni,
            inner,
        )
    };
    let dvr_a = HOST_A.dvr_mac();
    let mut forged = vec![Forged {
        what: "a well-formed routed frame from host A's VTEP (the control)",
        reason: None,
        frame: to_b(HOST_A.vtep, RED.vni, &routed_request(dvr_a, 0x6100)),
    }];
    for copy in 0..3u16 {
        let base = 0x6200 + copy * 16;
        forged.extend([
            Forged {
                what: "unknown VNI",
                reason: Some("unknown_vni"),
                frame: to_b(HOST_A.vtep, 4242, &routed_request(dvr_a, base)),
            },
            Forged {
                what: "from a VTEP that is no peer's",
                reason: Some("unknown_vtep"),
                frame: to_b(unknown_vtep, RED.vni, &routed_request(dvr_a, base + 1)),
            },
            Forged {
                what: "inner source in the DVR MAC range, no peer's DVR MAC",
                reason: Some("unknown_dvr_mac"),
                frame: to_b(
                    HOST_A.vtep,
                    RED.vni,
                    &routed_request("fa:16:3f:00:00:99".parse().unwrap(), base + 2),
                ),
            },
            Forged {
                what: "inner frame shorter than an Ethernet header",
                reason: Some("frame_truncated"),
                frame: to_b(HOST_A.vtep, RED.vni, &routed_request(dvr_a, base + 3)[..10]),
            },
        ]);
    }
    let frames: Vec<Vec<u8>> = forged.iter().map(|f| f.frame.clone()).collect();
    for (i, r) in dvr_harness::inject_frames(&probe, "fab0", &frames)
        .into_iter()
        .enumerate()
    {
        if let Err(e) = r {
            panic!("{} was not sent: {e}", forged[i].what);
        }
    }

    // The control frame is delivered; nothing else is.
    let control = at_red_b.wait_for(CAPTURE_WAIT, |f| {
        ip_len(f) == echo_len(INJECTED_DATA_LEN)
            && ipv4_of(f).is_some_and(|ip| ip.ident() == 0x6100)
    });
    let control = control.unwrap_or_else(|| {
        panic!(
            "the well-formed injected frame did not reach RED-B (the injector is broken):\n{}",
            Capture::dump(&at_red_b.frames())
        )
    });
    assert_eq!(
        macs_and_ttl(&control.data),
        (RED.gateway_mac(), RED_B.mac(), TTL_ROUTED)
    );
    // Still routing, both ways.
    cloud.assert_running();
    cloud
        .instance(&BLUE_A)
        .ping(RED_B.ip, &pings(3))
        .assert_all_answered();
    let injected: Vec<PcapRecord> = at_red_b
        .stop()
        .into_iter()
        .filter(|r| {
            Echo::request(BLUE_A.ip, RED_B.ip).matches(&r.data)
                && ip_len(&r.data) == echo_len(INJECTED_DATA_LEN)
        })
        .collect();
    assert_eq!(
        injected.len(),
        1,
        "only the control frame may reach RED-B:\n{}",
        Capture::dump(&injected)
    );

    let exits = stop_clean(&mut cloud);
    let summary = exits[host_index(&HOST_B)].assert_clean();
    for reason in [
        "unknown_vni",
        "unknown_vtep",
        "unknown_dvr_mac",
        "frame_truncated",
    ] {
        let what: Vec<&str> = forged
            .iter()
            .filter(|f| f.reason == Some(reason))
            .map(|f| f.what)
            .collect();
        assert_eq!(
            summary.drop_count(reason),
            what.len() as u64,
            "host B drops `{reason}` (for: {what:?})\ndrops: {:?}",
            summary.drops()
        );
    }
}
