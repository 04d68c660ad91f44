//! Floating IPs end to end: north-south traffic NATed on the compute host, as Neutron's DVR
//! does it. Two real `dvrd` processes (hosts A and B) with an external port each on a Linux
//! bridge (the provider network 203.0.113.0/24), an upstream router (a kernel namespace) and an
//! internet machine behind it, the fabric and the SNAT node of the DVR cloud. The topology is
//! `dvr_harness::external`: BLUE-A 10.0.1.5 has floating IP 203.0.113.10 and RED-A 10.0.2.7
//! has 203.0.113.11 (host A), RED-B 10.0.2.8 has 203.0.113.12 and BLUE-B 10.0.1.9 has none
//! (host B).
//!
//! Each test checks what docs/dvr-semantics.md ("North-south") promises with what a user
//! would use: ping, traceroute, arping and plain TCP from the internet machine, the upstream
//! and the instances, tcpdump captures on the external network, the fabric and the instances,
//! and `dvrctl stats --json`.
//!
//! Run as root: `cargo test --release -p dvr-router --test e2e_fip -- --test-threads=1`.

use std::net::Ipv4Addr;
use std::time::Duration;

use dvr_harness::checks::{assert_echoes, assert_exits_clean, echoes, wait_for_icmp, Echo};
use dvr_harness::dvr::{
    host_index, Crossing, HostDef, InstanceDef, BLUE, BLUE_A, HOST_A, HOST_B, OUTSIDE, RED, RED_A,
    RED_B, SNAT_PORT, TENANT1,
};
use dvr_harness::dvrd::DvrdExit;
use dvr_harness::external::{
    external_ip, FipCloud, FloatingIpDef, BLUE_B, EXTERNAL_PORT, FIP_BLUE_A, FIP_HOSTS, FIP_RED_A,
    FIP_RED_B, INTERNET, INTERNET_IF, MIG_B, UPSTREAM, UPSTREAM_EXTERNAL_IF, UPSTREAM_INTERNET_IF,
    UPSTREAM_TO_INTERNET,
};
use dvr_harness::frames::{
    echo_request_frame, ethernet_of, icmp_of, ipv4_of, mac, Ipv4Fields, Mac, Tunnelled,
};
use dvr_harness::pcap::PcapRecord;
use dvr_harness::tools::{
    assert_tcp_copy_intact, cached_path_mtu, unix_now, BackgroundPing, TimedPing,
};
use dvr_harness::{arping, ping, scope, Capture, DvrdConfig, Netns, PingOpts};
use router_core::wire::{ArpPacket, EtherType, Icmpv4Message, IpProtocol, Ipv4Packet, UdpPacket};

/// How long a capture waits for a frame it expects.
const CAPTURE_WAIT: Duration = Duration::from_secs(5);
/// What a packet from the internet has left of Linux's TTL 64 at an instance: the upstream
/// and the instance's host each route it once.
const TTL_FROM_INTERNET: u8 = 62;
/// Sizes of the random files sent over plain TCP.
const TRANSFER_BYTES: u64 = 4 << 20;
const PMTU_TRANSFER_BYTES: u64 = 2 << 20;
/// The promise of a floating IP that moves with its port: traffic resumes within a second.
const MOVE_LIMIT_S: f64 = 1.0;
/// The link between the upstream and the internet machine.
const INTERNET_NET: &str = "198.51.100.0/24";

/// Pings that must all be answered: 200 ms apart, 3 s for the last reply.
fn pings(count: u32) -> PingOpts {
    PingOpts::count(count).timeout(Duration::from_secs(3))
}

/// Pings expected to get errors, not replies: short timeouts.
fn doomed_pings(count: u32, size: usize) -> PingOpts {
    PingOpts::count(count)
        .size(size)
        .timeout(Duration::from_secs(1))
}

/// Stops both routers; each must exit 0 with every packet buffer back in its pool.
fn stop_clean(cloud: &mut FipCloud) -> Vec<DvrdExit> {
    let exits = cloud.stop();
    assert_exits_clean(&FIP_HOSTS, &exits);
    exits
}

/// The cloud, running, once the internet has pinged every floating IP and each host's
/// address twice: the upstream and the hosts have resolved each other, so that nothing a
/// test measures waits for ARP.
fn warm_cloud(s: &dvr_harness::Scope) -> FipCloud {
    warm(FipCloud::build(s))
}

fn warm(cloud: FipCloud) -> FipCloud {
    for ip in [FIP_BLUE_A.ip, FIP_RED_A.ip, FIP_RED_B.ip] {
        ping(cloud.internet(), ip, &pings(2)).assert_all_answered();
    }
    cloud
}

/// The ICMP message of `frame` with its quote, checked: IPv4 and ICMP checksums right, from
/// `src` to `dst`, of type `message`, quoting a datagram from `quoted.0` to `quoted.1` whose
/// header checksum is right, and whose UDP checksum is too when the whole datagram is quoted.
/// Returns the ICMP code and the next-hop MTU field.
fn assert_icmp_error(
    frame: &[u8],
    message: Icmpv4Message,
    (src, dst): (Ipv4Addr, Ipv4Addr),
    quoted: (Ipv4Addr, Ipv4Addr),
    what: &str,
) -> (u8, u16) {
    let ip = ipv4_of(frame).unwrap_or_else(|| panic!("{what}: no IPv4 packet"));
    let icmp = icmp_of(frame).unwrap_or_else(|| panic!("{what}: no ICMP message"));
    assert_eq!(icmp.msg_type(), message, "{what}");
    assert_eq!(
        (ip.src_addr(), ip.dst_addr()),
        (src, dst),
        "{what}: addresses"
    );
    assert!(ip.verify_checksum(), "{what}: IPv4 checksum");
    assert!(icmp.verify_checksum(), "{what}: ICMP checksum");
    // The quote holds the header and at least 8 bytes of the datagram, seldom all of it.
    assert!(icmp.data().len() >= 28, "{what}: the quote is too short");
    let q = Ipv4Packet::new_unchecked(icmp.data());
    assert_eq!(
        (q.src_addr(), q.dst_addr()),
        quoted,
        "{what}: the quoted datagram's addresses"
    );
    assert!(q.verify_checksum(), "{what}: the quoted header's checksum");
    let whole = icmp.data().len() >= usize::from(q.total_len());
    if whole && q.protocol() == IpProtocol::Udp {
        let datagram = &icmp.data()[q.header_len()..usize::from(q.total_len())];
        let udp = UdpPacket::new_checked(datagram).expect("a quoted UDP datagram");
        assert!(
            udp.verify_checksum(q.src_addr(), q.dst_addr()),
            "{what}: the quoted UDP checksum"
        );
    }
    (icmp.code(), icmp.next_hop_mtu())
}

/// The captured ICMP errors of type `message`.
fn icmp_errors(frames: &[PcapRecord], message: Icmpv4Message) -> Vec<&PcapRecord> {
    frames
        .iter()
        .filter(|r| icmp_of(&r.data).is_some_and(|i| i.msg_type() == message))
        .collect()
}

/// The hops `traceroute -n` printed (one address per hop line, `*` lines skipped).
fn traceroute_hops(output: &str) -> Vec<Ipv4Addr> {
    output
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.next()?.parse::<u32>().ok()?;
            words.next()?.parse().ok()
        })
        .collect()
}

/// Runs `traceroute -n ARGS TARGET` in `netns` (one probe per hop, 2 s each, 6 hops at most)
/// and returns the hops and the output.
fn traceroute(netns: &Netns, args: &[&str], target: Ipv4Addr) -> (Vec<Ipv4Addr>, String) {
    let target = target.to_string();
    let mut full = vec!["-n", "-q", "1", "-w", "2", "-m", "6"];
    full.extend_from_slice(args);
    full.push(&target);
    let out = netns.run("traceroute", &full);
    assert!(out.success(), "traceroute failed: {out}");
    (traceroute_hops(&out.stdout), out.stdout)
}

/// The ARP frames of a capture, with the Ethernet source: (source MAC, ARP packet bytes).
fn arp_frames(frames: &[PcapRecord]) -> Vec<(Mac, Vec<u8>)> {
    frames
        .iter()
        .filter_map(|r| {
            let eth = ethernet_of(&r.data)?;
            (eth.ethertype() == EtherType::ARP).then(|| (eth.src_addr(), r.data[14..].to_vec()))
        })
        .collect()
}

/// What arping from the upstream for `ip` got: `count` requests, every reply.
fn arping_from_upstream(cloud: &FipCloud, ip: Ipv4Addr, count: u32) -> Vec<(Ipv4Addr, Mac)> {
    let timeout = Duration::from_secs(u64::from(count) + 1);
    arping(cloud.upstream(), UPSTREAM_EXTERNAL_IF, ip, count, timeout).replies
}

/// One reply per request, each from `ip` with the external port MAC of `host`.
fn assert_only_host_answers(cloud: &FipCloud, ip: Ipv4Addr, host: &HostDef) {
    let replies = arping_from_upstream(cloud, ip, 2);
    let want = (ip, cloud.external_mac(host));
    assert_eq!(
        replies,
        vec![want, want],
        "ARP for {ip}: one reply per request, from {}'s external port {}",
        host.name,
        want.1
    );
}

/// The entry of floating IP `fip` in `dvrctl fip list --json` on `host`.
fn fip_entry(cloud: &FipCloud, host: &HostDef, fip: &FloatingIpDef) -> serde_json::Value {
    let list = cloud.dvrctl(host).json("fip list");
    let ip = fip.ip.to_string();
    list["floating_ips"]
        .as_array()
        .and_then(|all| all.iter().find(|f| f["ip"] == ip.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("{}: no {ip} in fip list: {list}", host.name))
}

#[test]
fn the_internet_reaches_an_instance_by_its_floating_ip() {
    let s = scope!();
    let mut cloud = FipCloud::build(&s);
    let blue_a = cloud.instance(&BLUE_A);
    let at_blue_a = blue_a.capture("icmp");
    let on_external = cloud.external().capture("icmp");

    ping(cloud.internet(), FIP_BLUE_A.ip, &pings(5)).assert_all_answered();

    // BLUE-A gets the requests for its fixed IP, from the BLUE gateway, routed once by the
    // upstream and once by host A; it answers its fixed IP.
    let frames = at_blue_a.stop();
    let requests = Echo::request(INTERNET, BLUE_A.ip);
    let macs = (BLUE.gateway_mac(), BLUE_A.mac());
    let what = "requests at BLUE-A: translated to its fixed IP, from the BLUE gateway";
    for f in assert_echoes(&frames, requests, 5, macs, what) {
        assert_eq!(ipv4_of(&f).unwrap().ttl(), TTL_FROM_INTERNET, "{what}");
        assert!(
            icmp_of(&f).unwrap().verify_checksum(),
            "{what}: ICMP checksum"
        );
    }
    // On the external network the instance is its floating IP: requests to host A's MAC,
    // replies from it and from the floating IP, translated with correct checksums, never a
    // frame from host B.
    let ext = on_external.stop();
    let upstream_mac = cloud.upstream().link_mac(UPSTREAM_EXTERNAL_IF);
    let host_a = cloud.external_mac(&HOST_A);
    let what = "requests to the floating IP on the external network";
    assert_echoes(
        &ext,
        Echo::request(INTERNET, FIP_BLUE_A.ip),
        5,
        (upstream_mac, host_a),
        what,
    );
    let what = "replies from the floating IP on the external network";
    let replies = Echo::reply(FIP_BLUE_A.ip, INTERNET);
    for f in assert_echoes(&ext, replies, 5, (host_a, upstream_mac), what) {
        assert!(
            icmp_of(&f).unwrap().verify_checksum(),
            "{what}: ICMP checksum"
        );
    }
    assert!(
        echoes(&ext, Echo::reply(BLUE_A.ip, INTERNET)).is_empty(),
        "the fixed IP leaked onto the external network:\n{}",
        Capture::dump(&ext)
    );

    // Each host lists the floating IP; host A runs the instance and counted what it
    // translated, host B holds it inactive.
    for (h, active, packets) in [(&HOST_A, true, 5), (&HOST_B, false, 0)] {
        let fip = fip_entry(&cloud, h, &FIP_BLUE_A);
        let what = format!("{}: fip list --json: {fip}", h.name);
        assert_eq!(fip["host"], HOST_A.name, "{what}");
        assert_eq!(fip["active"], active, "{what}");
        assert_eq!(fip["dnat_packets"], packets, "{what}");
        assert_eq!(fip["snat_packets"], packets, "{what}");
    }

    // A TCP transfer from the internet to the floating IP arrives intact.
    let to_blue_a = (blue_a.netns(), FIP_BLUE_A.ip, 5021);
    assert_tcp_copy_intact(
        cloud.internet(),
        to_blue_a,
        "internet-to-fip",
        TRANSFER_BYTES,
    );
    stop_clean(&mut cloud);
}

#[test]
fn an_instance_with_a_floating_ip_leaves_from_it_and_one_without_goes_to_the_snat_node() {
    let s = scope!();
    let mut cloud = warm_cloud(&s);
    let (blue_a, blue_b) = (cloud.instance(&BLUE_A), cloud.instance(&BLUE_B));
    let at_internet = Capture::start(&s, Some(cloud.internet()), INTERNET_IF, "icmp or tcp");
    let on_fabric = cloud.fabric().capture("udp port 4789");
    let on_external = cloud.external().capture("icmp");

    // BLUE-A's own traffic to the internet: ping and a TCP transfer.
    blue_a.ping(INTERNET, &pings(5)).assert_all_answered();
    let internet = (cloud.internet(), INTERNET, 5022);
    assert_tcp_copy_intact(blue_a.netns(), internet, "fip-to-internet", 1 << 20);
    // BLUE-B has no floating IP: the router's default route takes it to the SNAT node, which
    // answers for the outside address.
    blue_b.ping(OUTSIDE, &pings(3)).assert_all_answered();

    let seen = at_internet.stop();
    let dump = Capture::dump(&seen);
    assert_eq!(
        echoes(&seen, Echo::request(FIP_BLUE_A.ip, INTERNET)).len(),
        5,
        "BLUE-A's requests at the internet, from its floating IP:\n{dump}"
    );
    let from_fixed = seen
        .iter()
        .filter_map(|r| ipv4_of(&r.data))
        .filter(|ip| ip.src_addr() == BLUE_A.ip || ip.dst_addr() == BLUE_A.ip)
        .count();
    assert_eq!(from_fixed, 0, "BLUE-A's fixed IP at the internet:\n{dump}");
    let tcp_from_fip = seen
        .iter()
        .filter_map(|r| ipv4_of(&r.data))
        .filter(|ip| ip.protocol() == IpProtocol::Tcp && ip.src_addr() == FIP_BLUE_A.ip)
        .count();
    assert!(
        tcp_from_fip > 100,
        "BLUE-A's TCP segments from its floating IP: {tcp_from_fip}"
    );

    let fabric = Tunnelled::all_in(&on_fabric.stop());
    let fabric_dump = Tunnelled::dump(&fabric);
    let to_internet = fabric
        .iter()
        .filter_map(|t| ipv4_of(&t.inner))
        .filter(|ip| ip.src_addr() == INTERNET || ip.dst_addr() == INTERNET)
        .count();
    assert_eq!(
        to_internet, 0,
        "BLUE-A's internet traffic crossed the fabric:\n{fabric_dump}"
    );
    // BLUE-B's requests go from host B to the SNAT port over the fabric, as without floating
    // IPs, and never onto the external network.
    let to_snat: Vec<&Tunnelled> = fabric
        .iter()
        .filter(|t| Echo::request(BLUE_B.ip, OUTSIDE).matches(&t.inner))
        .collect();
    assert_eq!(
        to_snat.len(),
        3,
        "BLUE-B's requests on the fabric:\n{fabric_dump}"
    );
    for t in to_snat {
        assert_eq!(
            Crossing::of(t),
            Some(Crossing::routed(&HOST_B, &SNAT_PORT)),
            "{fabric_dump}"
        );
    }
    let ext = on_external.stop();
    let leaked = ext
        .iter()
        .filter_map(|r| ipv4_of(&r.data))
        .filter(|ip| ip.src_addr() == BLUE_B.ip || ip.dst_addr() == OUTSIDE)
        .count();
    assert_eq!(
        leaked,
        0,
        "BLUE-B on the external network:\n{}",
        Capture::dump(&ext)
    );
    stop_clean(&mut cloud);
}

/// When each reply of a background ping came, relative to `since` (Unix time): the first one
/// after it.
fn first_reply_after(ping: &TimedPing, since: f64) -> Option<f64> {
    ping.replies
        .iter()
        .map(|r| r.1)
        .find(|t| *t > since)
        .map(|t| t - since)
}

/// Moves BLUE-A's instance port (and with it its floating IP) to host B, where MIG-B is its
/// twin, on both hosts, the new host first; returns when both writes returned (Unix time).
fn move_blue_a_to_host_b(cloud: &FipCloud) -> f64 {
    let common = format!(
        "port add {} network {} mac {} host {}",
        BLUE_A.ip, BLUE.name, BLUE_A.mac, HOST_B.name
    );
    for host in [&HOST_B, &HOST_A] {
        cloud.dvrctl(host).ok(&format!("{common} replace"));
    }
    unix_now()
}

#[test]
fn only_the_instances_host_answers_arp_for_its_floating_ip_and_it_moves_with_the_port() {
    let s = scope!();
    let mut cloud = warm_cloud(&s);
    // Each host answers for its own address and the floating IPs of its instances; no host
    // answers for an address that is nobody's.
    assert_only_host_answers(&cloud, FIP_BLUE_A.ip, &HOST_A);
    assert_only_host_answers(&cloud, FIP_RED_B.ip, &HOST_B);
    for h in FIP_HOSTS {
        assert_only_host_answers(&cloud, external_ip(h), h);
    }
    let nobody = Ipv4Addr::new(203, 0, 113, 50);
    let replies = arping_from_upstream(&cloud, nobody, 2);
    assert!(replies.is_empty(), "ARP replies for {nobody}: {replies:?}");

    let on_external = cloud.external().capture("arp");
    let at_twin = cloud.instance(&MIG_B).capture("icmp");
    let opts = PingOpts::count(60)
        .interval(Duration::from_millis(50))
        .timeout(Duration::from_secs(1));
    let background = BackgroundPing::start(cloud.internet(), "ping-fip", FIP_BLUE_A.ip, &opts);
    std::thread::sleep(Duration::from_millis(800));
    let moved_at = move_blue_a_to_host_b(&cloud);

    // Host B announces the floating IP from its external port.
    let host_b = cloud.external_mac(&HOST_B);
    let garp = on_external.wait_for(CAPTURE_WAIT, |f| {
        let Some(eth) = ethernet_of(f).filter(|e| e.ethertype() == EtherType::ARP) else {
            return false;
        };
        ArpPacket::new_checked(&f[14..]).is_ok_and(|a| {
            a.is_gratuitous()
                && a.sender_ip() == FIP_BLUE_A.ip
                && a.sender_hw() == host_b
                && eth.src_addr() == host_b
        })
    });
    let arp = on_external.stop();
    assert!(
        garp.is_some(),
        "no gratuitous ARP for {} from host B's {host_b}:\n{}",
        FIP_BLUE_A.ip,
        Capture::dump(&arp)
    );
    let garp_after = garp.map_or(0.0, |g| g.time_ns as f64 / 1e9 - moved_at);
    assert!(
        garp_after < 0.5,
        "the gratuitous ARP came {garp_after:.3} s after the move"
    );
    // Host A never says it has the floating IP after the move.
    let host_a = cloud.external_mac(&HOST_A);
    for (src, bytes) in arp_frames(&arp) {
        let a = ArpPacket::new_checked(&bytes[..]).expect("an ARP packet");
        if src == host_a && a.sender_ip() == FIP_BLUE_A.ip {
            panic!(
                "host A still announces {}:\n{}",
                FIP_BLUE_A.ip,
                Capture::dump(&arp)
            );
        }
    }

    // The internet's ping resumes within a second, now answered by the twin on host B.
    let seen = background.finish();
    let resumed = first_reply_after(&seen, moved_at);
    assert!(
        resumed.is_some_and(|r| r < MOVE_LIMIT_S),
        "replies resumed {resumed:?} s after the move (limit {MOVE_LIMIT_S} s)\n{}",
        seen.result.output
    );
    let twin = at_twin.stop();
    assert!(
        !echoes(&twin, Echo::request(INTERNET, BLUE_A.ip)).is_empty(),
        "no request reached BLUE-A's twin on host B:\n{}",
        Capture::dump(&twin)
    );
    // Both hosts list it on host B, active there only.
    for (h, active) in [(&HOST_A, false), (&HOST_B, true)] {
        let fip = fip_entry(&cloud, h, &FIP_BLUE_A);
        let what = format!("{}: fip list --json after the move: {fip}", h.name);
        assert_eq!(
            (&fip["host"], &fip["active"]),
            (&HOST_B.name.into(), &active.into()),
            "{what}"
        );
    }
    // And only host B answers ARP for it now.
    assert_only_host_answers(&cloud, FIP_BLUE_A.ip, &HOST_B);
    ping(cloud.internet(), FIP_BLUE_A.ip, &pings(3)).assert_all_answered();
    stop_clean(&mut cloud);
}

#[test]
fn traceroute_through_a_floating_ip_gets_translated_errors_both_ways() {
    let s = scope!();
    let mut cloud = warm_cloud(&s);
    let blue_a = cloud.instance(&BLUE_A);
    let at_internet = Capture::start(&s, Some(cloud.internet()), INTERNET_IF, "icmp");

    // From the internet: the upstream, host A (its external address: the router that
    // translates), then the floating IP itself, whether the probes are ICMP or UDP.
    let want = vec![UPSTREAM_TO_INTERNET, external_ip(&HOST_A), FIP_BLUE_A.ip];
    for proto in ["-I", "-U"] {
        let (hops, out) = traceroute(cloud.internet(), &[proto], FIP_BLUE_A.ip);
        assert_eq!(hops, want, "traceroute {proto} to the floating IP:\n{out}");
    }
    let seen = at_internet.stop();
    let exceeded = icmp_errors(&seen, Icmpv4Message::TimeExceeded);
    let from_host = exceeded
        .iter()
        .filter(|r| ipv4_of(&r.data).is_some_and(|ip| ip.src_addr() == external_ip(&HOST_A)))
        .collect::<Vec<_>>();
    assert!(
        !from_host.is_empty(),
        "no time exceeded from host A:\n{}",
        Capture::dump(&seen)
    );
    for r in from_host {
        let what = "time exceeded from host A, quoting the datagram as it arrived";
        let addrs = (external_ip(&HOST_A), INTERNET);
        let message = Icmpv4Message::TimeExceeded;
        assert_icmp_error(&r.data, message, addrs, (INTERNET, FIP_BLUE_A.ip), what);
    }
    // BLUE-A's port unreachable for the UDP probes, its quote translated back to the floating
    // IP (addresses and the quoted UDP checksum).
    let unreachable = icmp_errors(&seen, Icmpv4Message::DstUnreachable);
    assert!(
        !unreachable.is_empty(),
        "no port unreachable:\n{}",
        Capture::dump(&seen)
    );
    for r in unreachable {
        let what = "port unreachable from BLUE-A, through the NAT";
        let addrs = (FIP_BLUE_A.ip, INTERNET);
        let message = Icmpv4Message::DstUnreachable;
        let (code, _) = assert_icmp_error(&r.data, message, addrs, (INTERNET, FIP_BLUE_A.ip), what);
        assert_eq!(code, 3, "{what}: port unreachable");
    }

    // From BLUE-A outward: its gateway, the upstream (its error translated back to BLUE-A's
    // fixed IP), the internet machine.
    let at_blue_a = blue_a.capture("icmp");
    let want = vec![BLUE.gateway, UPSTREAM, INTERNET];
    for proto in ["-I", "-U"] {
        let (hops, out) = traceroute(blue_a.netns(), &[proto], INTERNET);
        assert_eq!(hops, want, "traceroute {proto} from BLUE-A:\n{out}");
    }
    let seen = at_blue_a.stop();
    let from_upstream: Vec<&PcapRecord> = icmp_errors(&seen, Icmpv4Message::TimeExceeded)
        .into_iter()
        .filter(|r| ipv4_of(&r.data).is_some_and(|ip| ip.src_addr() == UPSTREAM))
        .collect();
    assert!(
        !from_upstream.is_empty(),
        "no time exceeded from the upstream at BLUE-A"
    );
    for r in from_upstream {
        let what = "the upstream's time exceeded at BLUE-A";
        let message = Icmpv4Message::TimeExceeded;
        let addrs = (UPSTREAM, BLUE_A.ip);
        assert_icmp_error(&r.data, message, addrs, (BLUE_A.ip, INTERNET), what);
    }
    for r in icmp_errors(&seen, Icmpv4Message::DstUnreachable) {
        let what = "the internet's port unreachable at BLUE-A";
        let message = Icmpv4Message::DstUnreachable;
        let addrs = (INTERNET, BLUE_A.ip);
        assert_icmp_error(&r.data, message, addrs, (BLUE_A.ip, INTERNET), what);
    }
    stop_clean(&mut cloud);
}

/// Host A's BLUE port: `mtu` bytes (its switch and BLUE-A keep 1500).
fn blue_port_mtu(host: &HostDef, mut cfg: DvrdConfig, mtu: u16) -> DvrdConfig {
    if host.name == HOST_A.name {
        for p in cfg.ports.iter_mut().filter(|p| p.name == BLUE.name) {
            p.mtu = Some(mtu);
        }
    }
    cfg
}

#[test]
fn path_mtu_discovery_works_through_a_floating_ip() {
    const BLUE_PORT_MTU: u16 = 1400;
    const INTERNET_MTU: u16 = 1300;
    let s = scope!();
    let cloud = FipCloud::build_with(&s, |h, cfg| blue_port_mtu(h, cfg, BLUE_PORT_MTU));
    let mut cloud = warm(cloud);
    let blue_a = cloud.instance(&BLUE_A);
    let internet = cloud.internet();

    // In: the internet sends full-size TCP segments to the floating IP (BLUE-A offers a
    // 1460-byte MSS), host A cannot deliver them on BLUE, and its fragmentation needed must
    // reach the sender quoting the floating IP, or the transfer stalls.
    assert_eq!(cached_path_mtu(internet, FIP_BLUE_A.ip).0, None);
    let to_blue_a = (blue_a.netns(), FIP_BLUE_A.ip, 5023);
    assert_tcp_copy_intact(internet, to_blue_a, "pmtu-in", PMTU_TRANSFER_BYTES);
    let (mtu, route) = cached_path_mtu(internet, FIP_BLUE_A.ip);
    assert_eq!(
        mtu,
        Some(BLUE_PORT_MTU),
        "the internet did not learn the path MTU: {route}"
    );
    // What ping reports, the cache flushed first.
    internet.ip(&["route", "flush", "cache"]);
    let at_internet = Capture::start(&s, Some(internet), INTERNET_IF, "icmp");
    let big = ping(
        internet,
        FIP_BLUE_A.ip,
        &doomed_pings(2, 1450).dont_fragment(),
    );
    big.assert_unanswered("too big for BLUE at host A, DF set");
    assert!(
        big.output
            .stdout
            .contains(&format!("mtu = {BLUE_PORT_MTU}")),
        "ping does not report the next-hop MTU:\n{}",
        big.output
    );
    let error = wait_for_icmp(&at_internet, Icmpv4Message::DstUnreachable, CAPTURE_WAIT);
    // From host A's external address: the router that could not deliver it.
    let src = external_ip(&HOST_A);
    let what = "fragmentation needed at the internet";
    let message = Icmpv4Message::DstUnreachable;
    let quoted = (INTERNET, FIP_BLUE_A.ip);
    let (code, mtu) = assert_icmp_error(&error.data, message, (src, INTERNET), quoted, what);
    assert_eq!((code, mtu), (4, BLUE_PORT_MTU), "{what}");
    drop(at_internet);

    // Out: the upstream's link to the internet takes 1300 bytes (a route MTU, locked), its
    // fragmentation needed goes to the floating IP and must reach BLUE-A quoting its fixed IP.
    let mtu_text = INTERNET_MTU.to_string();
    let upstream = cloud.upstream();
    let lock = [
        "route",
        "replace",
        INTERNET_NET,
        "dev",
        UPSTREAM_INTERNET_IF,
        "mtu",
        "lock",
        &mtu_text,
    ];
    upstream.ip(&lock);
    let at_blue_a = blue_a.capture("icmp");
    let big = blue_a.ping(INTERNET, &doomed_pings(2, 1350).dont_fragment());
    big.assert_unanswered("too big for the upstream's internet link, DF set");
    assert!(
        big.output.stdout.contains(&format!("mtu = {INTERNET_MTU}")),
        "ping does not report the upstream's MTU:\n{}",
        big.output
    );
    let error = wait_for_icmp(&at_blue_a, Icmpv4Message::DstUnreachable, CAPTURE_WAIT);
    let what = "the upstream's fragmentation needed at BLUE-A";
    let quoted = (BLUE_A.ip, INTERNET);
    let (code, mtu) = assert_icmp_error(&error.data, message, (UPSTREAM, BLUE_A.ip), quoted, what);
    assert_eq!((code, mtu), (4, INTERNET_MTU), "{what}");
    drop(at_blue_a);
    let (mtu, route) = cached_path_mtu(blue_a.netns(), INTERNET);
    assert_eq!(
        mtu,
        Some(INTERNET_MTU),
        "BLUE-A did not learn the path MTU: {route}"
    );
    let to_internet = (internet, INTERNET, 5024);
    assert_tcp_copy_intact(blue_a.netns(), to_internet, "pmtu-out", PMTU_TRANSFER_BYTES);
    stop_clean(&mut cloud);
}

/// Pings from `from` to floating IP `to` are answered, and the receiver sees them from
/// `from`'s floating IP `from_fip`; the replies reach `from` from `to`'s floating IP.
fn assert_hairpin(
    cloud: &FipCloud,
    (from, from_fip): (&InstanceDef, &FloatingIpDef),
    to: &FloatingIpDef,
) {
    let (sender, receiver) = (cloud.instance(from), cloud.instance(to.instance));
    let at_receiver = receiver.capture("icmp");
    let at_sender = sender.capture("icmp");
    sender.ping(to.ip, &pings(3)).assert_all_answered();
    let (at_sender, at_receiver) = (at_sender.stop(), at_receiver.stop());
    let requests = echoes(&at_receiver, Echo::request(from_fip.ip, to.instance.ip));
    assert_eq!(
        requests.len(),
        3,
        "{} -> {}: requests at {} from {}'s floating IP:\n{}",
        from.name,
        to.ip,
        to.instance.name,
        from.name,
        Capture::dump(&at_receiver)
    );
    let replies = echoes(&at_sender, Echo::reply(to.ip, from.ip));
    assert_eq!(
        replies.len(),
        3,
        "{} -> {}: replies from the floating IP:\n{}",
        from.name,
        to.ip,
        Capture::dump(&at_sender)
    );
    for f in requests.iter().chain(&replies) {
        assert!(
            ipv4_of(f).unwrap().verify_checksum(),
            "hairpin: IPv4 checksum"
        );
        assert!(
            icmp_of(f).unwrap().verify_checksum(),
            "hairpin: ICMP checksum"
        );
    }
}

#[test]
fn instances_reach_each_other_by_their_floating_ips() {
    let s = scope!();
    let mut cloud = warm_cloud(&s);
    // On one host (A: BLUE-A to RED-A), and across hosts (A to B: BLUE-A to RED-B; B to A:
    // RED-B to RED-A).
    assert_hairpin(&cloud, (&BLUE_A, &FIP_BLUE_A), &FIP_RED_A);
    assert_hairpin(&cloud, (&BLUE_A, &FIP_BLUE_A), &FIP_RED_B);
    assert_hairpin(&cloud, (&RED_B, &FIP_RED_B), &FIP_RED_A);
    stop_clean(&mut cloud);
}

/// The drop counters `reasons` of each host's `dvrctl stats --json`, in [`FIP_HOSTS`] order.
fn drops(cloud: &FipCloud, reasons: &[&str]) -> Vec<Vec<u64>> {
    FIP_HOSTS
        .iter()
        .map(|h| {
            let stats = cloud.dvrctl(h).json("stats");
            reasons
                .iter()
                .map(|r| {
                    stats["snapshot"]["drops"][r]
                        .as_u64()
                        .unwrap_or_else(|| panic!("no drop reason `{r}` in {stats}"))
                })
                .collect()
        })
        .collect()
}

#[test]
fn frames_on_the_external_port_for_others_are_counted_drops_and_traffic_flows() {
    let s = scope!();
    let mut cloud = warm_cloud(&s);
    let upstream = cloud.upstream();
    let upstream_mac = upstream.link_mac(UPSTREAM_EXTERNAL_IF);
    let host_a = cloud.external_mac(&HOST_A);
    let at_instances: Vec<Capture> = [&BLUE_A, &RED_A, &RED_B]
        .iter()
        .map(|d| cloud.instance(d).capture("icmp"))
        .collect();
    let reasons = ["external_not_for_us", "no_floating_ip"];
    let before = drops(&cloud, &reasons);

    // Echo requests from the upstream: 3 to a MAC that is no host's (the bridge floods them
    // to both), 2 to host A for RED-B's floating IP (host B's), 2 to host A for an address
    // that is nobody's.
    let request = |dst_mac: Mac, dst: Ipv4Addr, seq| {
        let ip = Ipv4Fields::new(UPSTREAM, dst, IpProtocol::Icmp);
        echo_request_frame(dst_mac, upstream_mac, ip, seq)
    };
    let stranger = mac("02:00:00:00:00:99");
    let nobody = Ipv4Addr::new(203, 0, 113, 50);
    let mut frames: Vec<Vec<u8>> = (0..3)
        .map(|i| request(stranger, FIP_BLUE_A.ip, i))
        .collect();
    frames.extend((3..5).map(|i| request(host_a, FIP_RED_B.ip, i)));
    frames.extend((5..7).map(|i| request(host_a, nobody, i)));
    dvr_harness::inject_frames(upstream, UPSTREAM_EXTERNAL_IF, &frames);
    std::thread::sleep(Duration::from_millis(300));

    let after = drops(&cloud, &reasons);
    let counted: Vec<Vec<u64>> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.iter().zip(b).map(|(a, b)| a - b).collect())
        .collect();
    assert_eq!(
        counted[host_index(&HOST_A)],
        vec![3, 4],
        "host A's drops ({reasons:?})"
    );
    assert_eq!(
        counted[host_index(&HOST_B)],
        vec![3, 0],
        "host B's drops ({reasons:?}): only the frames to the stranger's MAC reach it"
    );
    for (c, d) in at_instances.into_iter().zip([&BLUE_A, &RED_A, &RED_B]) {
        let seen = c.stop();
        assert!(
            echoes(&seen, Echo::request(UPSTREAM, d.ip)).is_empty(),
            "an injected frame reached {}:\n{}",
            d.name,
            Capture::dump(&seen)
        );
    }
    // Traffic keeps flowing.
    cloud.assert_running();
    ping(cloud.internet(), FIP_BLUE_A.ip, &pings(3)).assert_all_answered();
    ping(cloud.internet(), FIP_RED_B.ip, &pings(3)).assert_all_answered();
    let exits = stop_clean(&mut cloud);
    let summary = exits[host_index(&HOST_A)].assert_clean();
    assert!(
        summary.port_counter(EXTERNAL_PORT, "rx_packets") > 0,
        "host A's external port received nothing\n{summary}"
    );
}

#[test]
fn a_floating_ip_is_associated_and_released_at_run_time_with_dvrctl() {
    let s = scope!();
    let mut cloud = warm_cloud(&s);
    let fip = FIP_RED_B.ip;
    let port = FIP_RED_B.instance;
    // The instance's port cannot go while the floating IP names it: refused, nothing changed.
    let (code, err) = cloud
        .dvrctl(&HOST_B)
        .fails(&format!("port del {} network {}", port.ip, RED.name));
    assert!(code == 1 && err.contains("in_use"), "exit {code}: {err}");
    ping(cloud.internet(), fip, &pings(2)).assert_all_answered();

    // Released on every host: nobody answers for it any more.
    for h in FIP_HOSTS {
        cloud.dvrctl(h).ok(&format!("fip del {fip}"));
    }
    let replies = arping_from_upstream(&cloud, fip, 2);
    assert!(
        replies.is_empty(),
        "ARP replies for released {fip}: {replies:?}"
    );
    ping(cloud.internet(), fip, &doomed_pings(2, 56)).assert_unanswered("a released floating IP");

    // Associated again: the instance's host announces it at once and answers for it.
    let on_external = cloud.external().capture("arp");
    for h in FIP_HOSTS {
        cloud.dvrctl(h).ok(&format!(
            "fip add {fip} port {} router {}",
            port.ip, TENANT1.name
        ));
    }
    let host_b = cloud.external_mac(&HOST_B);
    let garp = on_external.wait_for(CAPTURE_WAIT, |f| {
        ArpPacket::new_checked(f.get(14..).unwrap_or_default())
            .is_ok_and(|a| a.is_gratuitous() && a.sender_ip() == fip && a.sender_hw() == host_b)
    });
    let arp = on_external.stop();
    assert!(
        garp.is_some(),
        "no gratuitous ARP for {fip} from host B:\n{}",
        Capture::dump(&arp)
    );
    assert_only_host_answers(&cloud, fip, &HOST_B);
    ping(cloud.internet(), fip, &pings(3)).assert_all_answered();
    // A floating IP outside the external subnet is refused with its reason.
    let (code, err) = cloud.dvrctl(&HOST_B).fails(&format!(
        "fip add 198.51.100.99 port {} router {}",
        BLUE_B.ip, TENANT1.name
    ));
    assert!(code == 1 && err.contains("outside"), "exit {code}: {err}");
    stop_clean(&mut cloud);
}
