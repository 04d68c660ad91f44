//! The DPDK data path, end to end: the real `dvrd` binary routes between two instance
//! namespaces (BLUE 10.0.1.5/24 and RED 10.0.2.7/24, one tenant router, no fabric) attached to
//! it through `net_af_packet` on veths, checked with ping, arping, tcpdump and raw frames.
//!
//! Run as root: `cargo test --release --test e2e_datapath -- --test-threads=1`.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use router_core::wire::{Icmpv4Message, IpProtocol, Ipv4Packet};
use support::config::{HostCfg, InstancePortCfg, NetworkCfg, RouterCfg};
use support::dvrd::run_to_exit;
use support::frames::{
    echo_request_frame, ethernet_of, icmp_of, ipv4_of, is_echo, mac, Ipv4Fields,
};
use support::test_scope::DPDK_RUN_DIR;
use support::{scope, Capture, Dvrd, DvrdConfig, Instance, InstanceSpec, PingOpts, Scope};

const HOST: &str = "host-a";
const BLUE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);
const BLUE_GW: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
const RED_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 7);
const RED_GW: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 1);
const BLUE_MAC: &str = "fa:16:3e:aa:01:05";
const RED_MAC: &str = "fa:16:3e:aa:02:07";
const BLUE_GW_MAC: &str = "fa:16:3e:00:01:01";
const RED_GW_MAC: &str = "fa:16:3e:00:02:01";
/// Linux's default TTL, and what is left after one router.
const TTL_SENT: u8 = 64;
const TTL_ROUTED: u8 = TTL_SENT - 1;
/// A bad config must be refused within this time.
const FAIL_FAST: Duration = Duration::from_secs(2);
const CAPTURE_WAIT: Duration = Duration::from_secs(5);

fn instances(s: &Scope) -> (Instance, Instance) {
    let blue = Instance::new(
        s,
        "blue",
        InstanceSpec::new("10.0.1.5/24", BLUE_MAC, "10.0.1.1"),
    );
    let red = Instance::new(
        s,
        "red",
        InstanceSpec::new("10.0.2.7/24", RED_MAC, "10.0.2.1"),
    );
    (blue, red)
}

/// Host A with ports `blue` and `red` on the instances' host ends, networks BLUE and RED, the
/// router `tenant1` with a gateway on each, and both instances as local instance ports.
fn config(blue: &Instance, red: &Instance) -> DvrdConfig {
    DvrdConfig::new(HostCfg::new(HOST, "fa:16:3f:00:00:0a", "192.0.2.10"))
        .port(blue.port("blue"))
        .port(red.port("red"))
        .network(NetworkCfg::new("blue", 1001, &["blue"]))
        .network(NetworkCfg::new("red", 1002, &["red"]))
        .router(
            RouterCfg::new("tenant1")
                .interface("blue", "10.0.1.1/24", BLUE_GW_MAC)
                .interface("red", "10.0.2.1/24", RED_GW_MAC),
        )
        .instance_port(InstancePortCfg::new("blue", BLUE_IP, blue.mac(), HOST))
        .instance_port(InstancePortCfg::new("red", RED_IP, red.mac(), HOST))
}

/// BLUE, RED, and dvrd routing between them (ready). Dropped in reverse: dvrd first.
fn start(s: &Scope) -> (Instance, Instance, Dvrd) {
    let (blue, red) = instances(s);
    let dvrd = Dvrd::start(s, "dvrd", &config(&blue, &red));
    (blue, red, dvrd)
}

/// Ethernet source, destination and the IPv4 TTL of a frame.
fn macs_and_ttl(frame: &[u8]) -> (String, String, u8) {
    let eth = ethernet_of(frame).expect("an Ethernet frame");
    let ip = ipv4_of(frame).expect("an IPv4 frame");
    (
        eth.src_addr().to_string(),
        eth.dst_addr().to_string(),
        ip.ttl(),
    )
}

#[test]
fn routed_ping_leaves_with_the_gateway_mac_and_one_ttl_less() {
    let s = scope!();
    let (blue, red, dvrd) = start(&s);
    let at_red = red.capture("icmp");
    let at_blue = blue.capture("icmp");

    let ping = blue.ping(RED_IP, &PingOpts::count(5));
    ping.assert_all_answered();

    // BLUE -> RED: what RED receives was rewritten by the router.
    let frames = at_red.stop();
    let requests: Vec<_> = frames
        .iter()
        .filter(|r| is_echo(&r.data, false, BLUE_IP, RED_IP))
        .collect();
    assert_eq!(
        requests.len(),
        5,
        "echo requests seen at RED:\n{}",
        Capture::dump(&frames)
    );
    for r in &requests {
        assert_eq!(
            macs_and_ttl(&r.data),
            (RED_GW_MAC.into(), RED_MAC.into(), TTL_ROUTED),
            "request at RED"
        );
        assert!(
            ipv4_of(&r.data).unwrap().verify_checksum(),
            "IPv4 checksum not updated after the TTL decrement"
        );
    }
    // RED -> BLUE: the replies were routed the same way.
    let frames = at_blue.stop();
    let replies: Vec<_> = frames
        .iter()
        .filter(|r| is_echo(&r.data, true, RED_IP, BLUE_IP))
        .collect();
    assert_eq!(
        replies.len(),
        5,
        "echo replies seen at BLUE:\n{}",
        Capture::dump(&frames)
    );
    for r in &replies {
        assert_eq!(
            macs_and_ttl(&r.data),
            (BLUE_GW_MAC.into(), BLUE_MAC.into(), TTL_ROUTED),
            "reply at BLUE"
        );
        assert!(ipv4_of(&r.data).unwrap().verify_checksum());
    }

    let exit = dvrd.stop();
    let summary = exit.assert_clean();
    for (port, dir) in [
        ("blue", "rx_packets"),
        ("red", "tx_packets"),
        ("red", "rx_packets"),
        ("blue", "tx_packets"),
    ] {
        let n = summary.port_counter(port, dir);
        assert!(
            n >= 5,
            "port {port} {dir} = {n}, expected at least the 5 routed packets\n{summary}"
        );
    }
    assert_eq!(summary.mempool_in_use(), Some(0), "{summary}");
}

#[test]
fn gateway_answers_arp_and_ping() {
    let s = scope!();
    let (blue, red, dvrd) = start(&s);
    let at_blue = blue.capture("icmp or arp");

    let arp = blue.arping(BLUE_GW, 3, Duration::from_secs(5));
    assert!(
        arp.replies.len() >= 2,
        "arping got {} replies\n{}",
        arp.replies.len(),
        arp.output
    );
    assert_eq!(arp.mac(), mac(BLUE_GW_MAC), "{}", arp.output);
    assert!(
        arp.replies.iter().all(|(ip, _)| *ip == BLUE_GW),
        "{:?}",
        arp.replies
    );

    // Each network has its own gateway MAC.
    let arp = red.arping(RED_GW, 1, Duration::from_secs(5));
    assert_eq!(arp.mac(), mac(RED_GW_MAC), "{}", arp.output);

    blue.ping(BLUE_GW, &PingOpts::count(5))
        .assert_all_answered();
    assert_eq!(
        blue.neighbor(BLUE_GW),
        Some(mac(BLUE_GW_MAC)),
        "BLUE's neighbour entry for its gateway"
    );

    let frames = at_blue.stop();
    let replies: Vec<_> = frames
        .iter()
        .filter(|r| is_echo(&r.data, true, BLUE_GW, BLUE_IP))
        .collect();
    assert_eq!(
        replies.len(),
        5,
        "echo replies from the gateway:\n{}",
        Capture::dump(&frames)
    );
    for r in &replies {
        let eth = ethernet_of(&r.data).unwrap();
        assert_eq!(
            (eth.src_addr(), eth.dst_addr()),
            (mac(BLUE_GW_MAC), mac(BLUE_MAC))
        );
        assert!(ipv4_of(&r.data).unwrap().verify_checksum());
        assert!(icmp_of(&r.data).unwrap().verify_checksum());
    }
    dvrd.stop().assert_clean();
}

/// A malformed frame toward the BLUE gateway and the drop reason dvrd must count it under.
struct Garbage {
    what: &'static str,
    reason: &'static str,
    frame: Vec<u8>,
}

/// An echo request from BLUE to RED through the gateway, IPv4 ident `ident`.
fn blue_to_red(ident: u16, ttl: u8) -> Vec<u8> {
    let ip = Ipv4Fields {
        ttl,
        ident,
        ..Ipv4Fields::new(BLUE_IP, RED_IP, IpProtocol::Icmp)
    };
    echo_request_frame(mac(BLUE_GW_MAC), mac(BLUE_MAC), ip, 1)
}

/// Recomputes the IPv4 header checksum of a frame (20-byte header at offset 14).
fn fix_checksum(frame: &mut [u8]) {
    Ipv4Packet::new_unchecked(&mut frame[14..34]).fill_checksum();
}

/// Each kind three times, with distinct IPv4 idents (0x6000 + n) so that none can be mistaken
/// for ping's traffic.
fn garbage() -> Vec<Garbage> {
    let mut out = Vec::new();
    for copy in 0..3u16 {
        let base = 0x6000 + copy * 16;
        let eth_only = blue_to_red(base, TTL_SENT)[..14].to_vec();
        let ip_cut = blue_to_red(base + 1, TTL_SENT)[..14 + 12].to_vec();
        let mut bad_sum = blue_to_red(base + 2, TTL_SENT);
        bad_sum[14 + 10] ^= 0x5a;
        let mut bad_ihl = blue_to_red(base + 3, TTL_SENT);
        bad_ihl[14] = 0x44; // IHL 4: 16 bytes, below the minimum of 20
        fix_checksum(&mut bad_ihl);
        let mut long = blue_to_red(base + 4, TTL_SENT);
        let beyond = (long.len() - 14 + 100) as u16; // total length past the end of the frame
        long[16..18].copy_from_slice(&beyond.to_be_bytes());
        fix_checksum(&mut long);
        let mut short = blue_to_red(base + 5, TTL_SENT);
        short[16..18].copy_from_slice(&12u16.to_be_bytes()); // below the header length
        fix_checksum(&mut short);
        let mut version = blue_to_red(base + 6, TTL_SENT);
        version[14] = 0x65;
        fix_checksum(&mut version);
        out.extend([
            Garbage {
                what: "Ethernet header only",
                reason: "ipv4_truncated",
                frame: eth_only,
            },
            Garbage {
                what: "IPv4 header cut at 12 bytes",
                reason: "ipv4_truncated",
                frame: ip_cut,
            },
            Garbage {
                what: "bad header checksum",
                reason: "ipv4_bad_checksum",
                frame: bad_sum,
            },
            Garbage {
                what: "IHL 4",
                reason: "ipv4_bad_header_length",
                frame: bad_ihl,
            },
            Garbage {
                what: "total length past the frame",
                reason: "ipv4_bad_total_length",
                frame: long,
            },
            Garbage {
                what: "total length below the header",
                reason: "ipv4_bad_total_length",
                frame: short,
            },
            Garbage {
                what: "version 6 in an IPv4 frame",
                reason: "ipv4_bad_version",
                frame: version,
            },
        ]);
    }
    out
}

#[test]
fn garbage_frames_are_dropped_by_reason_and_traffic_keeps_flowing() {
    let s = scope!();
    let (blue, red, mut dvrd) = start(&s);
    blue.ping(RED_IP, &PingOpts::count(2)).assert_all_answered();
    let at_blue = blue.capture("icmp");
    let at_red = red.capture("icmp");

    let garbage = garbage();
    let frames: Vec<Vec<u8>> = garbage.iter().map(|g| g.frame.clone()).collect();
    blue.inject(&frames);
    // A frame shorter than an Ethernet header (frame_truncated) cannot cross a veth: the
    // kernel refuses to send it. Should a kernel ever send it, dvrd must count it.
    let runt_sent = blue.try_inject(&[blue_to_red(0x6fff, TTL_SENT)[..10].to_vec()])[0].is_ok();

    // TTL 1: not forwarded, answered with ICMP time exceeded (RFC 1812 section 5.3.1) from the
    // gateway, quoting the datagram.
    blue.inject(&[blue_to_red(0x7711, 1)]);
    let exceeded = at_blue.wait_for(CAPTURE_WAIT, |f| {
        icmp_of(f).is_some_and(|i| i.msg_type() == Icmpv4Message::TimeExceeded)
    });
    let exceeded = exceeded.unwrap_or_else(|| {
        panic!(
            "no ICMP time exceeded in BLUE:\n{}",
            Capture::dump(&at_blue.frames())
        )
    });
    let (eth, ip, icmp) = (
        ethernet_of(&exceeded.data).unwrap(),
        ipv4_of(&exceeded.data).unwrap(),
        icmp_of(&exceeded.data).unwrap(),
    );
    assert_eq!(
        (eth.src_addr(), eth.dst_addr()),
        (mac(BLUE_GW_MAC), mac(BLUE_MAC))
    );
    assert_eq!((ip.src_addr(), ip.dst_addr()), (BLUE_GW, BLUE_IP));
    assert!(
        ip.verify_checksum() && icmp.verify_checksum(),
        "bad checksum in the time exceeded"
    );
    assert_eq!(
        icmp.code(),
        0,
        "time exceeded code: 0 is TTL exceeded in transit"
    );
    // The quote is the header and 8 bytes: shorter than the total length it carries, so it
    // is read without the length check.
    assert!(
        icmp.data().len() >= 20,
        "quote of {} bytes",
        icmp.data().len()
    );
    let quoted = Ipv4Packet::new_unchecked(&icmp.data()[..20]);
    assert_eq!(
        (quoted.src_addr(), quoted.dst_addr(), quoted.ident()),
        (BLUE_IP, RED_IP, 0x7711)
    );
    assert_eq!(
        icmp.data().len(),
        20 + 8,
        "quote: the IPv4 header and 8 bytes of data (RFC 792)"
    );

    // Still routing.
    dvrd.assert_running();
    blue.ping(RED_IP, &PingOpts::count(3)).assert_all_answered();
    let mut at_red = at_red.stop();
    // The injected frames carry the same number as IPv4 ident and ICMP echo ident; ping's own
    // packets have random IPv4 idents, which may fall in the range too.
    at_red.retain(|r| {
        ipv4_of(&r.data).is_some_and(|ip| (0x6000..0x8000).contains(&ip.ident()))
            && icmp_of(&r.data)
                .is_some_and(|i| Some(i.echo_ident()) == ipv4_of(&r.data).map(|ip| ip.ident()))
    });
    assert!(
        at_red.is_empty(),
        "garbage or TTL-1 frames reached RED:\n{}",
        Capture::dump(&at_red)
    );
    drop(at_blue);

    let exit = dvrd.stop();
    let summary = exit.assert_clean();
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for g in &garbage {
        *expected.entry(g.reason).or_default() += 1;
    }
    if runt_sent {
        *expected.entry("frame_truncated").or_default() += 1;
    }
    for (reason, want) in &expected {
        let what: Vec<&str> = garbage
            .iter()
            .filter(|g| g.reason == *reason)
            .map(|g| g.what)
            .collect();
        assert_eq!(
            summary.drop_count(reason),
            *want,
            "drops `{reason}` (for: {what:?})\ndrops: {:?}",
            summary.drops()
        );
    }
    assert_eq!(summary.mempool_in_use(), Some(0));
}

/// One invalid configuration: how it is made from a valid one, and what stderr must name.
struct BadConfig {
    what: &'static str,
    toml: String,
    must_name: Vec<&'static str>,
}

fn bad_configs(
    blue: &Instance,
    red: &Instance,
    file_prefix: &str,
    socket: &Path,
) -> (String, Vec<BadConfig>) {
    let good_cfg = config(blue, red);
    let good = good_cfg.to_toml(file_prefix, socket);
    let mut unknown_port = good_cfg.clone();
    unknown_port.networks[1].ports = vec!["grene".into()];
    let mut overlap = good_cfg.clone();
    overlap.routers[0].interfaces[1].address = "10.0.1.129/25".into();
    assert!(
        good.contains("[dataplane]\n") && good.contains(BLUE_GW_MAC),
        "the config writer changed:\n{good}"
    );
    let bad = vec![
        BadConfig {
            what: "unknown top-level key",
            toml: format!("bogus_key = 1\n{good}"),
            must_name: vec!["bogus_key"],
        },
        BadConfig {
            what: "unknown key in [dataplane]",
            toml: good.replace("[dataplane]\n", "[dataplane]\nburst_size = 32\n"),
            must_name: vec!["burst_size"],
        },
        BadConfig {
            what: "bad gateway MAC",
            toml: good.replace(BLUE_GW_MAC, "fa:16:3e:zz:01:01"),
            must_name: vec!["mac", "fa:16:3e:zz:01:01"],
        },
        BadConfig {
            what: "network on an unknown port",
            toml: unknown_port.to_toml(file_prefix, socket),
            must_name: vec!["networks[1]", "grene"],
        },
        BadConfig {
            what: "overlapping router subnets",
            toml: overlap.to_toml(file_prefix, socket),
            must_name: vec!["routers[0].interfaces[1]", "overlap"],
        },
    ];
    (good, bad)
}

#[test]
fn invalid_config_fails_fast_naming_the_key_before_any_port_is_touched() {
    let s = scope!();
    // Real interfaces behind the ports, so that only the config itself is wrong.
    let (blue, red) = instances(&s);
    let file_prefix = s.dpdk_prefix("bad");
    let eal_dir = Path::new(DPDK_RUN_DIR).join(&file_prefix);
    let (good, bad) = bad_configs(&blue, &red, &file_prefix, &s.socket_path("bad"));

    let good_path = s.file("good.toml");
    std::fs::write(&good_path, &good).unwrap();
    let check = run_to_exit(
        &s,
        "check-good",
        &[
            OsStr::new("--check"),
            OsStr::new("--config"),
            good_path.as_os_str(),
        ],
        FAIL_FAST,
    );
    assert_eq!(
        check.code,
        Some(0),
        "the valid base config is refused: {}\n{good}",
        check.stderr
    );

    for (i, b) in bad.iter().enumerate() {
        let path = s.file(&format!("bad-{i}.toml"));
        let ready = s.file(&format!("bad-{i}.ready"));
        let summary = s.file(&format!("bad-{i}.summary.json"));
        std::fs::write(&path, &b.toml).unwrap();
        let args = [
            OsStr::new("--config"),
            path.as_os_str(),
            OsStr::new("--ready-file"),
            ready.as_os_str(),
            OsStr::new("--summary-json"),
            summary.as_os_str(),
        ];
        let run = run_to_exit(&s, &format!("bad-{i}"), &args, FAIL_FAST);
        let context = format!(
            "{} ({}): exit {:?} after {:?}\n--- stderr\n{}",
            b.what,
            path.display(),
            run.code,
            run.elapsed,
            run.stderr
        );
        assert!(
            !run.timed_out,
            "still running after {FAIL_FAST:?}: {context}"
        );
        assert_eq!(
            run.code,
            Some(2),
            "exit code of an invalid config: {context}"
        );
        for needle in &b.must_name {
            assert!(
                run.stderr.contains(needle),
                "stderr does not name `{needle}`: {context}"
            );
        }
        assert!(!ready.exists(), "ready file created: {context}");
        assert!(!summary.exists(), "summary written: {context}");
        assert!(
            !eal_dir.exists(),
            "EAL was initialised ({} exists): {context}",
            eal_dir.display()
        );
        assert!(!run.stderr.contains("EAL:"), "EAL ran: {context}");

        let check = run_to_exit(
            &s,
            &format!("check-{i}"),
            &[
                OsStr::new("--check"),
                OsStr::new("--config"),
                path.as_os_str(),
            ],
            FAIL_FAST,
        );
        assert_eq!(
            check.code,
            Some(2),
            "--check of {}: {}",
            b.what,
            check.stderr
        );
        for needle in &b.must_name {
            assert!(
                check.stderr.contains(needle),
                "--check of {}: stderr does not name `{needle}`: {}",
                b.what,
                check.stderr
            );
        }
    }
    // Nothing of the instances' plumbing was disturbed: they still have their addresses.
    assert!(blue
        .run("ip", &["-o", "addr", "show", "dev", "eth0"])
        .stdout
        .contains("10.0.1.5/24"));
}
