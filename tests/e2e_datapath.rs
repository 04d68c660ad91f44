//! The DPDK data path, end to end: the real `dvrd` binary routes between two instance
//! namespaces (BLUE 10.0.1.5/24 and RED 10.0.2.7/24, one tenant router, no fabric) attached to
//! it through `net_af_packet` on veths, checked with ping, arping, tcpdump and raw frames.
//!
//! Run as root: `cargo test --release --test e2e_datapath -- --test-threads=1`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use dvr_harness::checks::{
    assert_gateway_replies, assert_icmp_from_gateway, assert_routed_round_trip, wait_for_icmp,
    TTL_SENT,
};
use dvr_harness::dvr::{BLUE, BLUE_A, RED, RED_A};
use dvr_harness::dvrd::{run_to_exit, DvrdRun};
use dvr_harness::frames::{echo_request_frame, icmp_of, ipv4_of, Ipv4Fields};
use dvr_harness::one_host::{instances, routed_config};
use dvr_harness::test_scope::DPDK_RUN_DIR;
use dvr_harness::{scope, Capture, Dvrd, Instance, PingOpts, Scope};
use router_core::wire::{Icmpv4Message, IpProtocol, Ipv4Packet};

/// A bad config must be refused within this time.
const FAIL_FAST: Duration = Duration::from_secs(2);
const CAPTURE_WAIT: Duration = Duration::from_secs(5);

/// BLUE, RED, and dvrd routing between them (ready). Dropped in reverse: dvrd first.
fn start(s: &Scope) -> (Instance, Instance, Dvrd) {
    let (blue, red) = instances(s, None);
    let dvrd = Dvrd::start(s, "dvrd", &routed_config(&blue, &red));
    (blue, red, dvrd)
}

#[test]
fn routed_ping_leaves_with_the_gateway_mac_and_one_ttl_less() {
    let s = scope!();
    let (blue, red, dvrd) = start(&s);
    let at_red = red.capture("icmp");
    let at_blue = blue.capture("icmp");

    let ping = blue.ping(RED_A.ip, &PingOpts::count(5));
    ping.assert_all_answered();

    // BLUE -> RED: what RED receives was rewritten by the router (new MACs, one TTL less,
    // the checksum updated); the replies were routed the same way.
    assert_routed_round_trip((at_blue.stop(), at_red.stop()), &BLUE_A, &RED_A, 5);

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

    blue.arping(BLUE.gateway, 3, Duration::from_secs(5))
        .assert_answered(2, BLUE.gateway, BLUE.gateway_mac());
    // Each network has its own gateway MAC.
    red.arping(RED.gateway, 1, Duration::from_secs(5))
        .assert_answered(1, RED.gateway, RED.gateway_mac());

    blue.ping(BLUE.gateway, &PingOpts::count(5))
        .assert_all_answered();
    assert_eq!(
        blue.neighbor(BLUE.gateway),
        Some(BLUE.gateway_mac()),
        "BLUE's neighbour entry for its gateway"
    );
    assert_gateway_replies(
        &at_blue.stop(),
        (BLUE.gateway, BLUE.gateway_mac()),
        (BLUE_A.ip, BLUE_A.mac()),
        5,
        "echo replies from the gateway",
    );
    dvrd.stop().assert_clean();
}

/// The router-wide ICMP error limit of the rate-limit test: low enough that one sender of
/// 1,000 TTL-1 packets a second would take all of it without a per-source limit.
const ROUTER_ICMP_LIMIT: &str = "[icmp]\nrate_per_s = 100\nburst = 20\n";
/// The per-source burst of ICMP errors (the default): what a flood gets at once.
const SOURCE_BURST: u32 = 6;

#[test]
fn a_noisy_sender_gets_its_burst_of_errors_and_never_starves_another() {
    let s = scope!();
    let (blue, red) = instances(&s, None);
    let mut cfg = routed_config(&blue, &red);
    cfg.extra_toml = ROUTER_ICMP_LIMIT.into();
    let dvrd = Dvrd::start(&s, "dvrd", &cfg);

    // BLUE sends 500 TTL-1 echo requests as fast as ping does (asked for one a millisecond,
    // ping sends about one every 10 ms); meanwhile RED probes with TTL 1 (a traceroute's first
    // hop) three times.
    let flood = PingOpts {
        ttl: Some(1),
        ..PingOpts::count(500)
            .interval(Duration::from_millis(1))
            .timeout(Duration::from_secs(1))
    };
    let probe = PingOpts {
        ttl: Some(1),
        ..PingOpts::count(3)
            .interval(Duration::from_millis(100))
            .timeout(Duration::from_secs(2))
    };
    let ((noisy, flood_s), quiet) = std::thread::scope(|t| {
        let noisy = t.spawn(|| {
            let started = Instant::now();
            let result = blue.ping(RED_A.ip, &flood);
            (result, started.elapsed().as_secs_f64())
        });
        std::thread::sleep(Duration::from_millis(150));
        let quiet = red.ping(BLUE_A.ip, &probe);
        (noisy.join().unwrap(), quiet)
    });
    // The burst, then one a second while the flood lasts (and one for the second it started).
    let most = SOURCE_BURST + flood_s.ceil() as u32 + 1;
    assert!(
        (SOURCE_BURST..=most).contains(&noisy.errors),
        "BLUE got {} time exceeded for {} TTL-1 packets in {flood_s:.1} s: expected the \
         per-source burst ({SOURCE_BURST}) and one a second, at most {most}\n{}",
        noisy.errors,
        noisy.transmitted,
        noisy.output
    );
    assert_eq!(
        quiet.errors, 3,
        "RED's TTL-1 probes each get time exceeded while BLUE floods: {quiet}\n{}",
        quiet.output
    );
    let stats = dvrd.stats();
    assert_eq!(
        stats.icmp_rate_limited_source + u64::from(noisy.errors),
        u64::from(noisy.transmitted),
        "every TTL-1 packet of BLUE's got its error or is counted as held back per source"
    );
    assert_eq!(
        stats.icmp_rate_limited, 0,
        "the router's budget was never spent"
    );
    let summary = dvrd.stop();
    summary.assert_clean();
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
        ..Ipv4Fields::new(BLUE_A.ip, RED_A.ip, IpProtocol::Icmp)
    };
    echo_request_frame(BLUE.gateway_mac(), BLUE_A.mac(), ip, 1)
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
        out.extend(
            [
                ("Ethernet header only", "ipv4_truncated", eth_only),
                ("IPv4 header cut at 12 bytes", "ipv4_truncated", ip_cut),
                ("bad header checksum", "ipv4_bad_checksum", bad_sum),
                ("IHL 4", "ipv4_bad_header_length", bad_ihl),
                ("total length past the frame", "ipv4_bad_total_length", long),
                (
                    "total length below the header",
                    "ipv4_bad_total_length",
                    short,
                ),
                ("version 6 in an IPv4 frame", "ipv4_bad_version", version),
            ]
            .map(|(what, reason, frame)| Garbage {
                what,
                reason,
                frame,
            }),
        );
    }
    out
}

#[test]
fn garbage_frames_are_dropped_by_reason_and_traffic_keeps_flowing() {
    let s = scope!();
    let (blue, red, mut dvrd) = start(&s);
    blue.ping(RED_A.ip, &PingOpts::count(2))
        .assert_all_answered();
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
    let exceeded = wait_for_icmp(&at_blue, Icmpv4Message::TimeExceeded, CAPTURE_WAIT);
    let gateway = (BLUE.gateway, BLUE.gateway_mac());
    let icmp = assert_icmp_from_gateway(&exceeded.data, gateway, (BLUE_A.ip, BLUE_A.mac()));
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
        (BLUE_A.ip, RED_A.ip, 0x7711)
    );
    assert_eq!(
        icmp.data().len(),
        20 + 8,
        "quote: the IPv4 header and 8 bytes of data (RFC 792)"
    );

    // Still routing.
    dvrd.assert_running();
    blue.ping(RED_A.ip, &PingOpts::count(3))
        .assert_all_answered();
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

/// `dvrd --check --config PATH`: it must end by itself within [`FAIL_FAST`].
fn check_config(s: &Scope, label: &str, path: &Path) -> DvrdRun {
    let args = [
        OsStr::new("--check"),
        OsStr::new("--config"),
        path.as_os_str(),
    ];
    run_to_exit(s, label, &args, FAIL_FAST)
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
    let good_cfg = routed_config(blue, red);
    let good = good_cfg.to_toml(file_prefix, socket);
    let mut unknown_port = good_cfg.clone();
    unknown_port.networks[1].ports = vec!["grene".into()];
    let mut overlap = good_cfg.clone();
    overlap.routers[0].interfaces[1].address = "10.0.1.129/25".into();
    assert!(
        good.contains("[dataplane]\n") && good.contains(BLUE.gateway_mac),
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
            toml: good.replace(BLUE.gateway_mac, "fa:16:3e:zz:01:01"),
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
    let (blue, red) = instances(&s, None);
    let file_prefix = s.dpdk_prefix("bad");
    let eal_dir = Path::new(DPDK_RUN_DIR).join(&file_prefix);
    let (good, bad) = bad_configs(&blue, &red, &file_prefix, &s.socket_path("bad"));

    let good_path = s.file("good.toml");
    std::fs::write(&good_path, &good).unwrap();
    let check = check_config(&s, "check-good", &good_path);
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

        let check = check_config(&s, &format!("check-{i}"), &path);
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
