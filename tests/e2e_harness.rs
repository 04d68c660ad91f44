//! Checks of the end-to-end harness itself, on kernel plumbing only (no dvrd): a Linux
//! namespace stands in for the router, so that a failure here is the harness's, not the
//! router's. Run as root: `cargo test --test e2e_harness -- --test-threads=1`.

use std::net::Ipv4Addr;
use std::time::Duration;

use dvr_harness::checks::{assert_routed_echoes, wait_for_icmp, Echo};
use dvr_harness::config::{HostCfg, InstancePortCfg, NetworkCfg, PortCfg, RouterCfg};
use dvr_harness::dvr::{BLUE, BLUE_A, RED, RED_A};
use dvr_harness::frames::{echo_request_frame, ethernet, hex, icmp_of, mac, Ipv4Fields};
use dvr_harness::net::Vxlan;
use dvr_harness::one_host::instances;
use dvr_harness::test_scope::{prefix_of, root_links};
use dvr_harness::tools::{iperf3_client, iperf3_server, parse_arping_replies, parse_ping_summary};
use dvr_harness::{
    build_paths, pcap, run, run_ok, scope, Capture, DvrdConfig, Etcd, Fabric, Instance, Netns,
    PingOpts, Process, Scope, TxnOp,
};
use router_core::wire::{EtherType, Icmpv4Message, IpProtocol, Ipv4Packet};
use serde_json::json;

/// BLUE and RED instances whose host ends are in a namespace that routes like a router would:
/// the gateway IPs and MACs on the host ends, IPv4 forwarding on.
struct KernelRouter {
    red: Instance,
    blue: Instance,
    router: Netns,
}

fn kernel_router(s: &Scope) -> KernelRouter {
    let router = Netns::new(s, "krtr");
    router.sysctl("net.ipv4.ip_forward", "1");
    let (blue, red) = instances(s, Some(&router));
    for (i, net) in [(&blue, &BLUE), (&red, &RED)] {
        let host_if = i.host_if();
        router.ip(&["link", "set", "dev", host_if, "address", net.gateway_mac]);
        router.ip(&["addr", "add", &net.interface_address(), "dev", host_if]);
        router.sysctl(&format!("net.ipv4.conf.{host_if}.arp_ignore"), "0");
    }
    KernelRouter { red, blue, router }
}

#[test]
fn names_are_short_unique_and_stable() {
    let a = prefix_of("e2e_datapath::routed_ping");
    assert_eq!(a, prefix_of("e2e_datapath::routed_ping"));
    assert_ne!(a, prefix_of("e2e_datapath::routed_ping2"));
    assert_eq!(a.len(), 7);
    assert!(
        a.starts_with("dvt"),
        "{a}: scripts/netns-cleanup.sh removes names starting with dvt"
    );
    let s = scope!();
    assert_eq!(
        s.prefix(),
        prefix_of("e2e_harness::names_are_short_unique_and_stable")
    );
    assert!(s.ifname("abcdefgh").len() <= 15);
    assert!(
        std::panic::catch_unwind(|| s.ifname("abcdefghi")).is_err(),
        "a 16-character interface name was accepted"
    );
    assert_eq!(s.unique_label("x"), "x");
    assert_eq!(s.unique_label("x"), "x-2");
}

#[test]
fn parsers_read_tool_output_and_pcap_files() {
    let ping =
        "PING 10.0.2.7 (10.0.2.7) 56(84) bytes of data.\n\n--- 10.0.2.7 ping statistics ---\n\
                5 packets transmitted, 3 received, +2 errors, 40% packet loss, time 804ms\n";
    assert_eq!(parse_ping_summary(ping), Some((5, 3, 2)));
    assert_eq!(
        parse_ping_summary("2 packets transmitted, 2 received, 0% packet loss, time 1001ms"),
        Some((2, 2, 0))
    );
    assert_eq!(
        parse_ping_summary("ping: connect: Network is unreachable"),
        None
    );
    let arping = "ARPING 10.0.1.1 from 10.0.1.5 eth0\nUnicast reply from 10.0.1.1 [FA:16:3E:00:01:01]  0.632ms\n\
                  Sent 1 probes (1 broadcast(s))\nReceived 1 response(s)\n";
    assert_eq!(
        parse_arping_replies(arping),
        vec![(BLUE.gateway, BLUE.gateway_mac())]
    );

    // A pcap file in either byte order; a partial last record is ignored.
    for little in [true, false] {
        let w = |v: u32| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let mut b = Vec::new();
        b.extend(w(0xa1b2_c3d4));
        b.extend(if little {
            [2u8, 0, 4, 0]
        } else {
            [0u8, 2, 0, 4]
        });
        b.extend([0u8; 8]);
        b.extend(w(262_144));
        b.extend(w(1));
        for (i, r) in [&[1u8, 2, 3][..], &[4u8; 60][..]].iter().enumerate() {
            b.extend(w(1_700_000_000 + i as u32));
            b.extend(w(250));
            b.extend(w(r.len() as u32));
            b.extend(w(r.len() as u32 + 4));
            b.extend(*r);
        }
        let p = pcap::parse(&b).unwrap();
        assert_eq!((p.linktype, p.snaplen, p.records.len()), (1, 262_144, 2));
        assert_eq!(p.records[0].data, vec![1, 2, 3]);
        assert_eq!(p.records[0].orig_len, 7);
        assert_eq!(p.records[1].time_ns, 1_700_000_001_000_250_000);
        b.truncate(b.len() - 10);
        assert_eq!(pcap::parse(&b).unwrap().records.len(), 1);
    }
    assert!(pcap::parse(&[0u8; 10]).is_err());
}

#[test]
fn config_writer_output_is_accepted_by_the_dvrd_parser() {
    let cfg = DvrdConfig::new(HostCfg::new("host-a", "fa:16:3f:00:00:0a", "192.0.2.10"))
        .port(PortCfg::local("blue", "dvt0000blue").mtu(1500))
        .port(PortCfg::local("red", "dvt0000red"))
        .port(PortCfg::fabric("fabric", "dvt0000fab").mtu(1600))
        .peer(HostCfg::new("host-b", "fa:16:3f:00:00:0b", "192.0.2.20"))
        .network(NetworkCfg::new("blue", 1001, &["blue"]))
        .network(NetworkCfg::new("red", 1002, &["red"]))
        .router(
            RouterCfg::new("tenant1")
                .interface("blue", "10.0.1.1/24", BLUE.gateway_mac)
                .interface("red", "10.0.2.1/24", RED.gateway_mac)
                .route("0.0.0.0/0", "10.0.1.254"),
        )
        .instance_port(InstancePortCfg::new(
            "blue",
            BLUE_A.ip,
            BLUE_A.mac(),
            "host-a",
        ))
        .instance_port(InstancePortCfg::new("red", RED_A.ip, RED_A.mac(), "host-a"))
        .instance_port(InstancePortCfg::new(
            "blue",
            Ipv4Addr::new(10, 0, 1, 254),
            mac("fa:16:3e:cc:01:fe"),
            "host-b",
        ));
    let text = cfg.to_toml("dvt0000a", std::path::Path::new("/tmp/dvt0000a.sock"));
    let parsed =
        dvr_router::config::Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(!parsed.eal.hugepages);
    assert_eq!(parsed.eal.memory_mb, 256);
    assert_eq!(parsed.eal.file_prefix, "dvt0000a");
    assert_eq!(
        parsed.eal.vdevs,
        vec![
            "net_af_packet0,iface=dvt0000blue",
            "net_af_packet1,iface=dvt0000red",
            "net_af_packet2,iface=dvt0000fab"
        ]
    );
    assert_eq!(parsed.workers.len(), 1);
    assert_eq!(parsed.workers[0].rx, vec!["blue", "red", "fabric"]);
    assert!(parsed.ports[2].fabric);
    assert_eq!(parsed.ports[2].mtu, 1600);
    assert_eq!(parsed.instance_ports.len(), 3);
    assert_eq!(parsed.routers[0].interfaces.len(), 2);
    assert_eq!(
        parsed.dataplane.idle,
        dvr_router::config::IdleSetting::Adaptive
    );
}

#[test]
fn guards_clean_up_after_a_panicking_test_and_sweep_leftovers() {
    const PROBE: &str = "e2e_harness::cleanup_probe";
    let prefix = prefix_of(PROBE);
    // A leftover of a "crashed run": a namespace and a link with the probe's prefix.
    let ns = format!("{prefix}-old");
    let link = format!("{prefix}old");
    let _ = run("ip", &["netns", "del", &ns]); // from an earlier failure of this test
    let _ = run("ip", &["link", "del", &link]);
    run_ok("ip", &["netns", "add", &ns]);
    run_ok(
        "ip",
        &[
            "link",
            "add",
            &link,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{link}p"),
        ],
    );

    let pid = std::sync::Mutex::new(0u32);
    let result = std::panic::catch_unwind(|| {
        let s = Scope::new(PROBE, build_paths!());
        assert!(!netns_exists(&ns), "the leftover namespace was not swept");
        assert!(
            !root_links().contains(&link),
            "the leftover link was not swept"
        );
        let _i = Instance::new(&s, "blue", BLUE_A.spec());
        let mut sleeper = std::process::Command::new("sleep");
        sleeper.arg("600");
        let p = Process::spawn(&s, "sleeper", sleeper);
        *pid.lock().unwrap() = p.pid();
        panic!("deliberate failure");
    });
    assert!(result.is_err());
    let pid = *pid.lock().unwrap();
    assert!(pid != 0);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} survived the failed test"
    );
    let netns = run_ok("ip", &["netns", "list"]);
    assert!(!netns.contains(&prefix), "namespaces left behind:\n{netns}");
    let left: Vec<String> = root_links()
        .into_iter()
        .filter(|l| l.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "links left behind: {left:?}");
}

fn netns_exists(name: &str) -> bool {
    run_ok("ip", &["netns", "list"])
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

#[test]
fn kernel_router_ping_arping_capture_and_time_exceeded() {
    let s = scope!();
    let k = kernel_router(&s);
    let capture_red = k.red.capture("icmp");
    let capture_blue = k.blue.capture("icmp");

    k.blue
        .ping(RED_A.ip, &PingOpts::count(3))
        .assert_all_answered();
    let arp = k.blue.arping(BLUE.gateway, 2, Duration::from_secs(3));
    assert_eq!(arp.mac(), BLUE.gateway_mac(), "{}", arp.output);
    assert_eq!(k.blue.neighbor(BLUE.gateway), Some(BLUE.gateway_mac()));

    // TTL 1 toward RED: the router answers with ICMP time exceeded.
    let ip = Ipv4Fields {
        ttl: 1,
        ident: 0x7711,
        ..Ipv4Fields::new(BLUE_A.ip, RED_A.ip, IpProtocol::Icmp)
    };
    k.blue
        .inject(&[echo_request_frame(BLUE.gateway_mac(), BLUE_A.mac(), ip, 1)]);
    let exceeded = wait_for_icmp(
        &capture_blue,
        Icmpv4Message::TimeExceeded,
        Duration::from_secs(5),
    );
    let icmp = icmp_of(&exceeded.data).unwrap();
    let quoted = Ipv4Packet::new_unchecked(icmp.data());
    assert_eq!((quoted.dst_addr(), quoted.ident()), (RED_A.ip, 0x7711));

    // A TCP transfer across the router.
    let server = iperf3_server(k.red.netns(), "iperf3");
    let report = iperf3_client(k.blue.netns(), RED_A.ip, &["-t", "1"]);
    let received = report["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    assert!(received > 100_000, "iperf3 moved {received} bytes");
    drop(server);

    assert_routed_echoes(
        &capture_red.stop(),
        Echo::request(BLUE_A.ip, RED_A.ip),
        3,
        (RED.gateway_mac(), RED_A.mac()),
        "requests at RED, routed by the kernel",
    );
    drop(capture_blue);
}

#[test]
fn injector_sends_exact_bytes_and_the_kernel_refuses_runts() {
    let s = scope!();
    let k = kernel_router(&s);
    let capture = Capture::start(&s, Some(&k.router), k.blue.host_if(), "");
    let mut odd = ethernet(
        BLUE.gateway_mac(),
        BLUE_A.mac(),
        EtherType::IPV4,
        &[0x45, 0, 0, 99],
    );
    odd.extend([0xde, 0xad]);
    let frames = vec![odd.clone(), odd[..14].to_vec(), odd[..10].to_vec()];
    let results = k.blue.try_inject(&frames);
    assert_eq!(results[0], Ok(odd.len()));
    assert_eq!(results[1], Ok(14));
    assert!(
        results[2].is_err(),
        "the kernel sent a 10-byte frame: {:?}",
        results[2]
    );
    let got = capture.wait_for_count(2, Duration::from_secs(5), |f| {
        f[6..12] == BLUE_A.mac().0[..] && f[12..14] == [8, 0]
    });
    let got: Vec<String> = got.iter().map(|r| hex(&r.data)).collect();
    assert_eq!(got, vec![hex(&odd), hex(&odd[..14])]);
}

#[test]
fn fabric_bridges_hosts_and_kernel_vxlan_nodes() {
    let s = scope!();
    let mut fabric = Fabric::new(&s, "fab");
    let port = fabric.attach_host("hosta", 1600);
    // Two kernel nodes on the fabric, each with a vxlan device toward the other on VNI 1001.
    let (vtep1, vtep2) = (Ipv4Addr::new(192, 0, 2, 31), Ipv4Addr::new(192, 0, 2, 32));
    let [n1, _n2] = [
        ("node1", vtep1, vtep2, "10.9.0.1/24"),
        ("node2", vtep2, vtep1, "10.9.0.2/24"),
    ]
    .map(|(tag, local, remote, inner)| {
        let node = Netns::new(&s, tag);
        fabric.attach_node(&node, tag, "fab0", &format!("{local}/24"), 1600);
        let vxlan = Vxlan {
            vni: 1001,
            local,
            dev: "fab0",
            remotes: &[remote],
            mac: None,
        };
        node.add_vxlan("vx0", &vxlan);
        node.ip(&["addr", "add", inner, "dev", "vx0"]);
        node
    });

    let on_host_port = Capture::start(&s, None, port.host_if(), "arp");
    let on_bridge = fabric.capture("udp port 4789");
    let p = dvr_harness::ping(&n1, Ipv4Addr::new(10, 9, 0, 2), &PingOpts::count(3));
    p.assert_all_answered();
    let bridged = on_bridge.stop();
    let vni: Vec<u32> = bridged
        .iter()
        .filter_map(|r| dvr_harness::frames::vxlan_of(&r.data).map(|v| v.vni()))
        .collect();
    assert!(
        vni.len() >= 6 && vni.iter().all(|v| *v == 1001),
        "VNIs on the bridge: {vni:?}"
    );
    // The host's port is a bridge port: broadcasts (the nodes' ARP requests) reach it.
    let flooded = on_host_port.stop();
    let arp_requests = flooded
        .iter()
        .filter(|r| r.data[..6] == [0xff; 6] && r.data[12..14] == [8, 6])
        .count();
    assert!(
        arp_requests >= 1,
        "the host's fabric port saw no underlay broadcast:\n{}",
        Capture::dump(&flooded)
    );
    assert_eq!(port.port("fabric").iface, port.host_if());
}

#[test]
fn etcd_keeps_its_data_across_a_kill_and_compacts_its_history() {
    let s = scope!();
    // The first port pair is taken: etcd moves on to the next.
    let (taken, _) = dvr_harness::etcd::port_pair(&s, 0);
    let squatter = std::net::TcpListener::bind(("127.0.0.1", taken)).ok();
    let mut etcd = Etcd::start(&s);
    if squatter.is_some() {
        assert_ne!(etcd.client_port(), taken);
    }
    drop(squatter);
    let blue = "/dvr/v1/config/networks/blue";
    let r1 = etcd.put(blue, r#"{"vni": 1001}"#);
    assert_eq!(etcd.get_json(blue), Some(json!({"vni": 1001})));
    assert_eq!(etcd.revision(), r1);
    assert_eq!(etcd.mod_revision(blue), Some(r1));
    assert_eq!(etcd.get("/dvr/v1/config/networks/none"), None);

    // One transaction, values with quotes and spaces: one revision for both keys.
    let port = r#"{"mac": "fa:16:3e:aa:01:05", "host": "host-a"}"#;
    let r2 = etcd.txn(&[
        TxnOp::put("/dvr/v1/config/ports/blue/10.0.1.5", port),
        TxnOp::put("/dvr/v1/config/routers/tenant1", "{}"),
    ]);
    assert_eq!(r2, r1 + 1);
    assert_eq!(
        etcd.get("/dvr/v1/config/ports/blue/10.0.1.5").as_deref(),
        Some(port)
    );
    assert_eq!(
        etcd.mod_revision("/dvr/v1/config/routers/tenant1"),
        Some(r2)
    );
    assert_eq!(etcd.lease("/dvr/v1/config/routers/tenant1"), Some(0));
    assert_eq!(etcd.lease("/dvr/v1/config/routers/none"), None);
    // A value larger than a command-line argument may be goes through stdin.
    let big = "x".repeat(1 << 20);
    etcd.put("/dvr/v1/bogus/big", &big);
    assert_eq!(
        etcd.get("/dvr/v1/bogus/big").map(|v| v.len()),
        Some(1 << 20)
    );
    let (deleted, r3) = etcd.del("/dvr/v1/bogus/big");
    assert_eq!((deleted, r3), (1, r2 + 2));
    let keys: Vec<String> = etcd
        .get_prefix("/dvr/v1/")
        .into_iter()
        .map(|kv| kv.0)
        .collect();
    assert_eq!(
        keys,
        [
            blue,
            "/dvr/v1/config/ports/blue/10.0.1.5",
            "/dvr/v1/config/routers/tenant1"
        ]
    );

    // SIGKILL: nobody answers; a restart on the same folder and ports has every write.
    etcd.kill();
    assert!(!etcd.is_running());
    assert!(
        !etcd.ctl(&["get", blue]).success(),
        "a killed etcd answered"
    );
    assert!(
        etcd.data_dir().exists(),
        "the data folder went with the process"
    );
    etcd.restart();
    assert_eq!(etcd.get_json(blue), Some(json!({"vni": 1001})));
    assert_eq!(etcd.revision(), r3);

    // Compacted: the history before r3 is gone, the current values stay.
    etcd.compact(r3);
    let old = etcd.ctl(&["get", blue, "--rev", &r1.to_string()]);
    assert!(
        !old.success() && old.stderr.contains("compacted"),
        "a read below the compacted revision: {old}"
    );
    assert_eq!(etcd.get_json(blue), Some(json!({"vni": 1001})));

    // Served on another namespace's address: what a host reaches over a management network.
    let etcd_ns = Netns::new(&s, "etcd");
    let client = Netns::new(&s, "client");
    etcd_ns.ip(&[
        "link",
        "add",
        "e0",
        "type",
        "veth",
        "peer",
        "name",
        "c0",
        "netns",
        client.name(),
    ]);
    let server_addr = Ipv4Addr::new(198, 18, 0, 1);
    etcd_ns.ip(&["addr", "add", "198.18.0.1/24", "dev", "e0"]);
    etcd_ns.ip(&["link", "set", "dev", "e0", "up"]);
    client.ip(&["addr", "add", "198.18.0.2/24", "dev", "c0"]);
    client.ip(&["link", "set", "dev", "c0", "up"]);
    let mut remote = Etcd::start_in(&s, Some(&etcd_ns), &[server_addr]);
    remote.put("/k", "v");
    // Killed and restarted in its namespace (through `ip netns exec`): the same ports again.
    remote.restart();
    let mut get = client.command("etcdctl");
    get.env("ETCDCTL_API", "3").args([
        "--endpoints",
        &remote.endpoint_on(server_addr),
        "get",
        "/k",
        "--print-value-only",
    ]);
    let got = dvr_harness::cmd::output_of(&mut get).ok();
    assert_eq!(got.stdout.trim(), "v");

    let dirs = [
        etcd.data_dir().to_path_buf(),
        remote.data_dir().to_path_buf(),
    ];
    drop(etcd);
    drop(remote);
    for d in dirs {
        assert!(!d.exists(), "{} is still there", d.display());
    }
}
