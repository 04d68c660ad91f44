//! DPDK's own tools on a running dvrd, on the one-host topology (BLUE-A and RED-A, router
//! `tenant1`, `net_af_packet` ports): the telemetry socket, asked as `dpdk-telemetry.py` asks
//! (and by `dpdk-telemetry.py` itself), agrees with `dvrctl stats`, and DPDK's `/ethdev/...`
//! commands answer for dvrd's ports; `dpdk-dumpcap`, a secondary process, captures a port
//! while dvrd forwards, without a packet lost; telemetry turned off leaves no socket.
//!
//! Run as root: `cargo test --release --test e2e_telemetry -- --test-threads=1`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dpdk_bindings::telemetry::{self, Client};
use dvr_harness::checks::TTL_ROUTED;
use dvr_harness::cmd::{output_of, CmdOutput};
use dvr_harness::dvr::{BLUE_A, RED, RED_A};
use dvr_harness::one_host::{instances, routed_config};
use dvr_harness::{scope, Dvrctl, Dvrd, PingOpts};
use dvr_router::stats::Snapshot;
use serde_json::Value;

/// Echo requests of the telemetry test.
const PINGS: u32 = 10;
/// Hugepages (2 MiB) the capture test reserves, if the machine has fewer: dvrd's 256 MiB and
/// dpdk-dumpcap's ring and pool.
const HUGEPAGES: u32 = 512;
/// Packets dpdk-dumpcap captures before it stops (requests and replies through the port).
const CAPTURED: u32 = 20;
/// How long dpdk-dumpcap may take: EAL init as a secondary process, the capture, the file.
const DUMPCAP_TIMEOUT: Duration = Duration::from_secs(30);

fn connect(dvrd: &Dvrd) -> Client {
    let path = telemetry::socket_path(dvrd.file_prefix());
    Client::connect(&path).unwrap_or_else(|e| {
        panic!(
            "telemetry socket {}: {e}\n--- dvrd stderr\n{}",
            path.display(),
            dvrd.stderr()
        )
    })
}

/// The answer to `command`, unwrapped from `{"<command name>": ...}`.
fn ask(client: &mut Client, command: &str) -> Value {
    let text = client.query(command).expect(command);
    let json: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{command}: {e}: {text}"));
    let name = command.split(',').next().unwrap();
    json.get(name)
        .cloned()
        .unwrap_or_else(|| panic!("{command}: answer without `{name}`: {text}"))
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not a count in {v}"))
}

/// Asserts `before <= now <= after` for a counter read between two `dvrctl stats`.
fn assert_between(what: &str, before: u64, now: u64, after: u64) {
    assert!(
        before <= now && now <= after,
        "{what}: telemetry says {now}, dvrctl stats said {before} before and {after} after"
    );
}

/// `dvrctl stats --json` as a snapshot.
fn dvrctl_stats(dvrctl: &Dvrctl) -> Snapshot {
    serde_json::from_value(dvrctl.json("stats")["snapshot"].clone()).expect("stats snapshot")
}

#[test]
fn telemetry_agrees_with_dvrctl_stats() {
    let s = scope!();
    let (blue, red) = instances(&s, None);
    let dvrd = Dvrd::start(&s, "dvrd", &routed_config(&blue, &red));
    let dvrctl = Dvrctl::of(&dvrd);
    blue.ping(
        RED_A.ip,
        &PingOpts::count(PINGS).interval(Duration::from_millis(50)),
    )
    .assert_all_answered();

    let mut client = connect(&dvrd);
    let greeting: Value = serde_json::from_str(client.greeting()).unwrap();
    assert_eq!(greeting["pid"], dvrd.pid(), "{greeting}");

    // The kernels of the instances may still send (ARP, IPv6): every figure lies between
    // what dvrctl says before and after.
    let before = dvrctl_stats(&dvrctl);
    let totals = ask(&mut client, "/dvrd/stats");
    // Each port as dvrd counts it, and as DPDK's ethdev library does.
    let (per_port, ethdev): (Vec<Value>, Vec<Value>) = before
        .ports
        .iter()
        .map(|p| {
            let dvrd = ask(&mut client, &format!("/dvrd/stats,{}", p.name));
            (
                dvrd,
                ask(&mut client, &format!("/ethdev/stats,{}", p.port_id)),
            )
        })
        .unzip();
    let drops = ask(&mut client, "/dvrd/drops");
    let workers = ask(&mut client, "/dvrd/workers");
    let routers = ask(&mut client, "/dvrd/routers");
    let after = dvrctl_stats(&dvrctl);

    let names: Vec<&str> = before.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(totals["ports"], serde_json::json!(names));
    for (i, (b, a)) in before.ports.iter().zip(&after.ports).enumerate() {
        let t = &per_port[i];
        assert_eq!(t["name"], b.name.as_str());
        assert_eq!(u64_of(t, "port_id"), u64::from(b.port_id));
        assert_eq!(u64_of(t, "link_up"), 1, "{t}");
        for (key, was, then) in [
            ("rx_packets", b.rx_packets, a.rx_packets),
            ("tx_packets", b.tx_packets, a.tx_packets),
            ("rx_bytes", b.rx_bytes, a.rx_bytes),
            (
                "device_rx_packets",
                b.device_rx_packets,
                a.device_rx_packets,
            ),
        ] {
            assert_between(&format!("{} {key}", b.name), was, u64_of(t, key), then);
        }
        // DPDK's own view of the same device.
        let e = &ethdev[i];
        assert_between(
            "ipackets",
            b.device_rx_packets,
            u64_of(e, "ipackets"),
            a.device_rx_packets,
        );
        assert_between(
            "opackets",
            b.device_tx_packets,
            u64_of(e, "opackets"),
            a.device_tx_packets,
        );
    }
    let sum = |s: &Snapshot| s.ports.iter().map(|p| p.rx_packets).sum::<u64>();
    assert_between(
        "rx_packets",
        sum(&before),
        u64_of(&totals, "rx_packets"),
        sum(&after),
    );
    let blue_rx = per_port[0]["rx_packets"].as_u64().unwrap();
    assert!(blue_rx >= u64::from(PINGS), "{per_port:?}");

    let reasons: Vec<&String> = before.drops.keys().collect();
    let told: Vec<&String> = drops.as_object().expect("drops by reason").keys().collect();
    assert_eq!(told, reasons);
    for (reason, n) in &before.drops {
        assert_between(reason, *n, u64_of(&drops, reason), after.drops[reason]);
    }
    assert_eq!(workers["index"], serde_json::json!([0]), "{workers}");
    assert_between(
        "worker rx_packets",
        before.workers[0].rx_packets,
        workers["rx_packets"][0].as_u64().unwrap(),
        after.workers[0].rx_packets,
    );
    assert_eq!(routers["name"], serde_json::json!(["tenant1"]), "{routers}");
    let routed = routers["routed_local"][0].as_u64().unwrap();
    assert!(routed >= 2 * u64::from(PINGS), "{routers}");

    let xstats = ask(&mut client, "/ethdev/xstats,0");
    assert!(xstats.get("rx_good_packets").is_some(), "{xstats}");
    drop(client);
    assert_dpdk_telemetry_py(&dvrd);
    dvrd.stop().assert_clean();
}

/// Debian's `dpdk-telemetry.py -f PREFIX`, commands on its standard input: one JSON answer a
/// line when stdin is not a terminal.
fn assert_dpdk_telemetry_py(dvrd: &Dvrd) {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "printf '/dvrd/routers\\n/ethdev/list\\n' | dpdk-telemetry.py -f \"$1\"",
        "sh",
        dvrd.file_prefix(),
    ]);
    let out = output_of(&mut cmd).ok();
    let answers: Vec<Value> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let routers = answers.iter().find_map(|a| a.get("/dvrd/routers"));
    assert_eq!(
        routers.map(|r| r["name"].clone()),
        Some(serde_json::json!(["tenant1"])),
        "{out}"
    );
    let ports = answers.iter().find_map(|a| a.get("/ethdev/list"));
    assert_eq!(ports, Some(&serde_json::json!([0, 1])), "{out}");
}

#[test]
fn telemetry_off_leaves_no_socket() {
    let s = scope!();
    let (blue, red) = instances(&s, None);
    let dvrd = Dvrd::start(&s, "dvrd", &routed_config(&blue, &red).telemetry(false));
    let socket = telemetry::socket_path(dvrd.file_prefix());
    assert!(!socket.exists(), "{} exists", socket.display());
    assert!(dvrd.stderr().contains("telemetry off"), "{}", dvrd.stderr());
    // Capture is off unless the file asks for it.
    assert!(
        dvrd.stderr().contains("packet capture off"),
        "{}",
        dvrd.stderr()
    );
    dvrd.stop().assert_clean();
}

/// Reserves hugepages as `scripts/hugepages.sh` does and panics, saying so, if the kernel
/// cannot give them: the capture test needs a shared configuration.
fn reserve_hugepages() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/hugepages.sh");
    let out = output_of(Command::new("bash").arg(&script).arg(HUGEPAGES.to_string()));
    let free: u32 = out
        .stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        free >= 192,
        "dpdk-dumpcap needs dvrd on hugepages: only {free} free after {}\n{out}",
        script.display()
    );
}

#[test]
fn dumpcap_captures_a_port_while_dvrd_forwards() {
    reserve_hugepages();
    let s = scope!();
    let (blue, red) = instances(&s, None);
    let mut dvrd = Dvrd::start(&s, "dvrd", &routed_config(&blue, &red).capture());
    assert!(
        dvrd.stderr().contains("packet capture on"),
        "{}",
        dvrd.stderr()
    );
    let pcap = s.file("red.pcapng");
    let red_port = dvrd
        .stats()
        .ports
        .iter()
        .find(|p| p.name == RED.name)
        .unwrap()
        .port_id;

    // Ping for longer than dumpcap takes to start and capture; forwarding must not pause.
    let pings = 120;
    let (ping, dumpcap) = std::thread::scope(|t| {
        let ping = t.spawn(|| {
            blue.ping(
                RED_A.ip,
                &PingOpts::count(pings).interval(Duration::from_millis(50)),
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        let dumpcap = run_dumpcap(dvrd.file_prefix(), red_port, &pcap);
        (ping.join().expect("ping thread"), dumpcap)
    });
    ping.assert_all_answered();
    assert!(dumpcap.success(), "{dumpcap}");

    let requests = routed_requests(&pcap);
    assert!(
        requests.len() >= (CAPTURED as usize) / 2 - 1,
        "{} routed echo requests in the capture\n{dumpcap}",
        requests.len()
    );
    dvrd.assert_running();
    blue.ping(RED_A.ip, &PingOpts::count(3))
        .assert_all_answered();
    let exit = dvrd.stop();
    let summary = exit.assert_clean();
    assert_eq!(summary.mempool_in_use(), Some(0), "{summary}");
}

/// `dpdk-dumpcap` on port `port` of the dvrd with `file_prefix`, [`CAPTURED`] packets into
/// `pcap`.
fn run_dumpcap(file_prefix: &str, port: u16, pcap: &Path) -> CmdOutput {
    let started = Instant::now();
    let mut cmd = Command::new("timeout");
    cmd.arg(DUMPCAP_TIMEOUT.as_secs().to_string())
        .arg("dpdk-dumpcap")
        .arg(format!("--file-prefix={file_prefix}"))
        .args(["-i", &port.to_string()])
        .args(["-c", &CAPTURED.to_string()])
        .arg("-w")
        .arg(pcap);
    let out = output_of(&mut cmd);
    eprintln!("dpdk-dumpcap took {:?}", started.elapsed());
    out
}

/// The echo requests from BLUE-A to RED-A in the capture, as `tcpdump -r` prints them, each
/// checked: the router's MAC as source, RED-A's as destination, one TTL less.
fn routed_requests(pcap: &Path) -> Vec<String> {
    let out = output_of(
        Command::new("tcpdump")
            .args(["-nn", "-e", "-v", "-r"])
            .arg(pcap)
            .arg("icmp"),
    )
    .ok();
    // With -v, a packet is two lines: link and IP header, then the ICMP line.
    let lines: Vec<&str> = out.stdout.lines().collect();
    let wanted = format!("{} > {}: ICMP echo request", BLUE_A.ip, RED_A.ip);
    let mut requests = Vec::new();
    for pair in lines.windows(2) {
        if !pair[1].contains(&wanted) {
            continue;
        }
        let head = pair[0];
        let macs = format!("{} > {}", RED.gateway_mac, RED_A.mac);
        assert!(head.contains(&macs), "not {macs}: {head}\n{out}");
        let ttl = format!("ttl {TTL_ROUTED},");
        assert!(head.contains(&ttl), "not {ttl}: {head}\n{out}");
        requests.push(head.to_string());
    }
    requests
}
