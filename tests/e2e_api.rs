//! The control API end to end: a running `dvrd` driven through `dvrctl` only. The BLUE/RED
//! topology is built at run time from a config that holds only the host, the ports and the
//! networks; traffic goes through it; a port is deleted and re-added; the metrics endpoint is
//! scraped and parsed; a trace shows the router's decisions; malformed and hostile requests
//! are refused with the right error and change nothing.
//!
//! Run as root: `cargo test --release --test e2e_api -- --test-threads=1`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use dvr_harness::dvr::{BLUE, HOST_A, RED, RED_A};
use dvr_harness::one_host::{instances, ports_and_networks};
use dvr_harness::{scope, Dvrctl, Dvrd, DvrdConfig, Instance, PingOpts, Scope};
use serde_json::{json, Value};

/// What the dvrctl commands and the expected answers below spell out.
const HOST: &str = HOST_A.name;
const RED_IP: Ipv4Addr = RED_A.ip;
const RED_MAC: &str = RED_A.mac;
/// dvrctl's exit codes.
const EXIT_REFUSED: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_UNREACHABLE: i32 = 3;
const EXIT_NOT_FOUND: i32 = 4;

/// Neighbour timers short enough that a failed resolution shows within a second or two.
/// Resolution fails fast; a failed entry then stays long enough to be seen after the pings
/// that found it failed (the per-source ICMP limit answers only a burst of them at once, so
/// ping waits out its timeout for the last ones).
const FAST_NEIGHBOURS: &str = "[neighbor]\nretrans_ms = 200\nprobes_max = 3\nfailed_ms = 10000\n";

/// Host, ports and networks only: no router, no interface, no instance port.
fn empty_config(blue: &Instance, red: &Instance) -> DvrdConfig {
    let mut cfg = ports_and_networks(blue, red);
    cfg.extra_toml = FAST_NEIGHBOURS.to_string();
    cfg
}

/// BLUE and RED, a dvrd with [`empty_config`] (ready) and its client.
fn start(s: &Scope) -> (Instance, Instance, Dvrd, Dvrctl) {
    let (blue, red) = instances(s, None);
    let dvrd = Dvrd::start(s, "dvrd", &empty_config(&blue, &red));
    let ctl = Dvrctl::of(&dvrd);
    (blue, red, dvrd, ctl)
}

/// The router, its two interfaces and the two instance ports, as dvrctl commands.
const TOPOLOGY: &[&str] = &[
    "router add tenant1",
    "interface add router tenant1 network blue address 10.0.1.1/24 mac fa:16:3e:00:01:01",
    "interface add router tenant1 network red address 10.0.2.1/24 mac fa:16:3e:00:02:01",
    "port add 10.0.1.5 network blue mac fa:16:3e:aa:01:05 host host-a",
    "port add 10.0.2.7 network red mac fa:16:3e:aa:02:07 host host-a",
];

/// Everything the daemon holds, as `dvrctl --json` lists it.
fn state(ctl: &Dvrctl) -> Value {
    json!({
        "host": ctl.json("host show"),
        "peers": ctl.json("peer list"),
        "networks": ctl.json("network list"),
        "routers": ctl.json("router list"),
        "interfaces": ctl.json("interface list"),
        "routes": ctl.json("route list"),
        "ports": ctl.json("port list"),
    })
}

fn set_arp_answers(instance: &Instance, answer: bool) {
    let value = if answer { "0" } else { "8" };
    for dev in ["all", "eth0"] {
        instance
            .netns()
            .sysctl(&format!("net.ipv4.conf.{dev}.arp_ignore"), value);
    }
}

/// The neighbour entry of `ip` as `dvrctl --json neigh` shows it.
fn neighbour(ctl: &Dvrctl, ip: Ipv4Addr) -> Option<Value> {
    let all = ctl.json("neigh");
    all["neighbors"]
        .as_array()?
        .iter()
        .find(|n| n["ip"] == json!(ip.to_string()))
        .cloned()
}

/// Asserts the neighbour entry of `ip` is in `state` with `mac`; returns it.
fn assert_neighbour(ctl: &Dvrctl, ip: Ipv4Addr, state: &str, mac: &str) -> Value {
    let n = neighbour(ctl, ip).unwrap_or_else(|| panic!("no neighbour entry for {ip}"));
    assert_eq!(
        (n["state"].as_str(), n["mac"].as_str()),
        (Some(state), Some(mac)),
        "{n}"
    );
    n
}

#[test]
fn topology_built_at_run_time_with_dvrctl_and_a_deleted_port() {
    let s = scope!();
    let (blue, red, dvrd, ctl) = start(&s);

    // The socket is private to the daemon's user.
    let meta = std::fs::metadata(ctl.socket()).expect("control socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "socket mode");

    // Nothing routes yet.
    assert_eq!(ctl.json("router list"), json!({ "routers": [] }));
    blue.ping(
        RED_IP,
        &PingOpts::count(2).timeout(Duration::from_millis(500)),
    )
    .assert_unanswered("no router yet, yet RED answered");

    for command in TOPOLOGY {
        let out = ctl.ok(command);
        assert_eq!(out, "", "`dvrctl {command}` prints nothing on success");
    }
    // Again: idempotent, nothing changes.
    for command in TOPOLOGY {
        let out = ctl.json(command);
        assert_eq!(out, json!({ "changed": false }), "{command}");
    }
    blue.ping(RED_IP, &PingOpts::count(5)).assert_all_answered();

    let routers = ctl.json("router list");
    assert_eq!(routers["routers"][0]["name"], "tenant1");
    assert_eq!(routers["routers"][0]["interfaces"], 2);
    let ports = ctl.json("port list network red");
    assert_eq!(
        ports,
        json!({ "ports": [{ "network": "red", "ip": "10.0.2.7", "mac": RED_MAC, "host": HOST }] })
    );
    let networks = ctl.json("network list");
    assert_eq!(
        networks["networks"][1],
        json!({ "name": "red", "vni": 1002, "ports": ["red"], "router": "tenant1" })
    );
    let table = ctl.ok("interface list");
    assert!(
        table.contains("tenant1  red      10.0.2.1/24  fa:16:3e:00:02:01"),
        "{table}"
    );
    assert_neighbour(&ctl, RED_IP, "permanent", RED_MAC);
    let lookup = ctl.ok("route get 10.0.2.7 router tenant1");
    assert!(
        lookup.contains("neighbour 10.0.2.7 at fa:16:3e:aa:02:07 behind local port red"),
        "{lookup}"
    );

    // Delete RED's port while RED does not answer ARP: the router resolves the address as a
    // connected destination, ARP fails, and BLUE is told the host is unreachable.
    set_arp_answers(&red, false);
    assert_eq!(ctl.ok("port del 10.0.2.7 network red"), "");
    let (code, err) = ctl.fails("port del 10.0.2.7 network red");
    assert_eq!(code, EXIT_NOT_FOUND, "{err}");
    assert!(
        err.contains("not_found: port `10.0.2.7 on network red` does not exist"),
        "{err}"
    );
    let gone = blue.ping(
        RED_IP,
        &PingOpts::count(8).interval(Duration::from_millis(300)),
    );
    gone.assert_unanswered("RED's port is deleted, yet it answered");
    assert!(gone.errors > 0, "no ICMP error came back: {gone}");
    assert!(
        gone.output.stdout.contains("From 10.0.1.1 icmp_seq=")
            && gone.output.stdout.contains("Destination Host Unreachable"),
        "expected ICMP host unreachable from the BLUE gateway:\n{}",
        gone.output
    );
    let n = neighbour(&ctl, RED_IP).expect("the resolution of 10.0.2.7");
    assert_eq!(n["state"], "failed", "{n}");

    // Re-added: a permanent entry again, traffic flows at once.
    ctl.ok(TOPOLOGY[4]);
    blue.ping(RED_IP, &PingOpts::count(3)).assert_all_answered();
    assert_eq!(neighbour(&ctl, RED_IP).unwrap()["state"], "permanent");

    // Deleted while RED answers ARP: the router learns it like any neighbour on a connected
    // subnet, and traffic goes on through a dynamic entry.
    set_arp_answers(&red, true);
    ctl.ok("port del 10.0.2.7 network red");
    let learned = blue.ping(RED_IP, &PingOpts::count(5));
    assert!(
        learned.received >= 4,
        "after ARP the router should reach RED again: {learned}"
    );
    let n = assert_neighbour(&ctl, RED_IP, "reachable", RED_MAC);
    assert!(
        n["age_ms"].as_u64().is_some(),
        "a learned entry has an age: {n}"
    );

    dvrd.stop().assert_clean();
}

/// A free TCP port on loopback (bound and released; good enough for one test).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// dvrd with the metrics endpoint on `127.0.0.1:port`.
fn start_with_metrics(s: &Scope, cfg: &DvrdConfig, port: u16) -> Dvrd {
    let mut dvrd = Dvrd::spawn(s, "dvrd", |prefix, socket| {
        let toml = cfg.to_toml(prefix, socket);
        assert!(
            toml.contains("[control]\n"),
            "the harness writes a [control] table"
        );
        toml.replace(
            "[control]\n",
            &format!("[control]\nmetrics = \"127.0.0.1:{port}\"\n"),
        )
    });
    dvrd.wait_ready(dvr_harness::dvrd::READY_TIMEOUT);
    dvrd
}

/// Builds the topology with one `dvrctl apply` (one atomic batch).
fn apply_topology(s: &Scope, ctl: &Dvrctl) {
    let file = s.file("topology.txt");
    std::fs::write(
        &file,
        TOPOLOGY.join("\n")
            + "\n# and a route\nroute add 10.9.0.0/16 via 10.0.2.254 router tenant1\n",
    )
    .expect("write the topology file");
    let out = ctl.ok(&format!("apply {}", file.display()));
    assert_eq!(out, "6 changes applied (6 changed, 0 unchanged)\n");
}

/// `GET path` on the metrics endpoint: status line and body.
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// One sample of the text exposition format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses the text exposition format strictly: `# HELP`/`# TYPE` comments, then samples
/// `name{label="value",...} number`, every sample of a family declared by a `# TYPE` first.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut types: std::collections::BTreeMap<String, String> = Default::default();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, what) = (parts.next(), parts.next(), parts.next());
            match kind {
                Some("HELP") => assert!(what.is_some_and(|h| !h.is_empty()), "empty HELP: {line}"),
                Some("TYPE") => {
                    let what = what.unwrap_or_default();
                    assert!(["counter", "gauge", "summary"].contains(&what), "{line}");
                    assert!(
                        types
                            .insert(name.unwrap().to_string(), what.to_string())
                            .is_none(),
                        "family declared twice: {line}"
                    );
                }
                _ => panic!("unexpected comment: {line}"),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Vec::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let labels = body
                    .split("\",")
                    .map(|kv| {
                        let (k, v) = kv
                            .split_once("=\"")
                            .unwrap_or_else(|| panic!("bad label in {line}"));
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name: {line}"
        );
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| types.contains_key(*f))
            .unwrap_or(&name);
        assert!(
            types.contains_key(family),
            "sample before its # TYPE: {line}"
        );
        if types[family] == "counter" {
            assert!(
                name.ends_with("_total"),
                "a counter's name ends in _total: {line}"
            );
        }
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
}

#[test]
fn metrics_counters_histograms_trace_and_log_level() {
    let s = scope!();
    let (blue, red) = instances(&s, None);
    let port = free_port();
    let dvrd = start_with_metrics(&s, &empty_config(&blue, &red), port);
    let ctl = Dvrctl::of(&dvrd);
    apply_topology(&s, &ctl);
    blue.ping(RED_IP, &PingOpts::count(5)).assert_all_answered();

    // Prometheus: GET /metrics only, the text format, the counters of the traffic above.
    let (status, body) = http_get(port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let samples = parse_exposition(&body);
    let rx_blue =
        metric(&samples, "dvrd_port_rx_packets_total", &[("port", "blue")]).expect("rx of blue");
    assert!(rx_blue >= 5.0, "{rx_blue}");
    assert!(metric(&samples, "dvrd_port_tx_packets_total", &[("port", "red")]).unwrap() >= 5.0);
    assert_eq!(
        metric(
            &samples,
            "dvrd_drops_total",
            &[("reason", "ipv4_bad_checksum")]
        ),
        Some(0.0)
    );
    let routed = metric(
        &samples,
        "dvrd_router_routed_packets_total",
        &[("router", "tenant1"), ("destination", "local")],
    );
    assert!(routed.unwrap() >= 10.0, "{routed:?}");
    assert!(metric(&samples, "dvrd_worker_bursts_total", &[("worker", "0")]).unwrap() > 0.0);
    let p99 = metric(
        &samples,
        "dvrd_burst_processing_seconds",
        &[("quantile", "0.99")],
    )
    .expect("burst p99");
    assert!(p99 > 0.0 && p99 < 1.0, "{p99}");
    assert!(metric(&samples, "dvrd_packet_residence_seconds_count", &[]).unwrap() >= 10.0);
    assert_eq!(
        metric(&samples, "dvrd_port_link_up", &[("port", "red")]),
        Some(1.0)
    );
    assert_eq!(http_get(port, "/").0, "HTTP/1.1 404 Not Found");
    // The Grafana dashboard queries only what this running dvrd exports (the fleet's
    // families appear only on a host with [fleet]; the unit test checks those and the labels).
    let missing = dvr_harness::dashboard::missing(
        &dvr_harness::dashboard::shipped(),
        &body,
        |m| m.starts_with("dvrd_fleet_"),
        false,
    );
    assert!(missing.is_empty(), "{missing:#?}");
    let busy = metric(
        &samples,
        "dvrd_worker_busy_seconds_total",
        &[("worker", "0")],
    );
    assert!(busy.is_some_and(|b| b > 0.0 && b < 60.0), "{busy:?}");

    // Counters and histograms since a reset; the metrics endpoint never resets.
    let stats = ctl.json("stats");
    assert!(
        stats["snapshot"]["ports"][0]["rx_packets"]
            .as_u64()
            .unwrap()
            >= 5,
        "{stats}"
    );
    assert_eq!(ctl.ok("stats reset"), "reset: counters and histograms\n");
    let stats = ctl.json("stats");
    assert_eq!(stats["snapshot"]["ports"][0]["rx_packets"], 0, "{stats}");
    assert_eq!(ctl.json("hist")["merged"]["burst"]["count"], 0);
    blue.ping(RED_IP, &PingOpts::count(3)).assert_all_answered();
    let stats = ctl.json("stats");
    let rx = stats["snapshot"]["ports"][0]["rx_packets"]
        .as_u64()
        .unwrap();
    assert!(
        (3..10).contains(&rx),
        "3 pings since the reset, {rx} packets counted: {stats}"
    );
    let hist = ctl.json("hist");
    assert!(
        hist["merged"]["burst"]["count"].as_u64().unwrap() >= 3,
        "{hist}"
    );
    assert!(
        hist["merged"]["residence"]["p99_ns"].as_u64().unwrap() > 0,
        "{hist}"
    );
    assert_eq!(hist["workers"][0]["worker"], 0);
    let full = ctl.ok("hist --full");
    assert!(
        full.contains("percentile distribution, per burst") && full.contains("1/(1-percentile)"),
        "{full}"
    );
    let human = ctl.ok("stats");
    assert!(
        human.contains("ports:") && human.contains("tenant1"),
        "{human}"
    );
    let (_, body) = http_get(port, "/metrics");
    let rx_after = metric(
        &parse_exposition(&body),
        "dvrd_port_rx_packets_total",
        &[("port", "blue")],
    )
    .unwrap();
    assert!(
        rx_after >= rx_blue + 3.0,
        "the endpoint's counters are monotonic: {rx_after} after {rx_blue}"
    );

    // A trace of the next two ICMP packets to RED: every decision, with names.
    let mut trace = ctl.command();
    trace.args([
        "--json", "trace", "count", "2", "dst", "10.0.2.7", "proto", "icmp", "timeout", "10",
    ]);
    let tracer = trace
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    blue.ping(RED_IP, &PingOpts::count(3)).assert_all_answered();
    let out = tracer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (t["requested"].as_u64(), t["complete"].as_bool()),
        (Some(2), Some(true)),
        "{t}"
    );
    let packets = t["packets"].as_array().unwrap();
    assert_eq!(packets.len(), 2, "{t}");
    for p in packets {
        assert_eq!(p["port"], "blue", "{p}");
        assert_eq!(p["verdict"], "forward to port red", "{p}");
        let steps: Vec<&str> = p["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let want = [
            format!("> {} type 0x0800 (ipv4)", BLUE.gateway_mac),
            "input network blue, router tenant1".to_string(),
            "ipv4 10.0.1.5 > 10.0.2.7 icmp ttl 64".to_string(),
            "route lookup in tenant1 for 10.0.2.7: next hop".to_string(),
            format!(
                "neighbour 10.0.2.7 at {RED_MAC} behind local port red via interface tenant1/red"
            ),
            format!("rewrite ethernet {} > {RED_MAC}, ttl 63", RED.gateway_mac),
        ];
        for w in &want {
            assert!(
                steps.iter().any(|s| s.contains(w.as_str())),
                "no step with `{w}` in {steps:#?}"
            );
        }
    }

    // A packet with no route: the trace shows the lookup miss and the ICMP error.
    let mut trace = ctl.command();
    trace.args(["trace", "count", "1", "dst", "10.77.0.1", "timeout", "10"]);
    let tracer = trace.stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    blue.ping(Ipv4Addr::new(10, 77, 0, 1), &PingOpts::count(1))
        .assert_unanswered("no route to 10.77.0.1");
    let out = tracer.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("route lookup in tenant1 for 10.77.0.1: no route"),
        "{text}"
    );
    assert!(text.contains("=> "), "{text}");
    assert!(text.contains("1 of 1 packets captured"), "{text}");
    eprintln!("trace of an unroutable packet:\n{text}");

    // A trace that sees nothing ends at its timeout, incomplete.
    let t = ctl.json("trace count 1 port red src 10.99.99.99 timeout 0.3");
    assert_eq!(
        (
            t["complete"].as_bool(),
            t["packets"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0)),
        "{t}"
    );
    let (code, err) = ctl.fails("trace port nosuch timeout 1");
    assert_eq!(code, EXIT_NOT_FOUND, "{err}");

    // The log filter, at run time.
    assert_eq!(ctl.ok("log"), "log filter: info\n");
    ctl.ok("log set debug");
    assert_eq!(ctl.json("log show"), json!({ "level": "debug" }));
    ctl.ok("route add 10.10.0.0/16 via 10.0.2.254 router tenant1");
    ctl.ok("log set info");
    assert!(
        dvrd.stderr().contains("control API change"),
        "debug logs while the filter was debug"
    );
    ctl.ok("icmp set rate 50 burst 10");

    let version = ctl.ok("version");
    assert!(version.contains("API version 1"), "{version}");
    dvrd.stop().assert_clean();
}

/// One raw request line on a fresh connection, and the response line parsed. The daemon may
/// answer and close before it has read the request (a client too many is turned away at
/// once): the write then fails with a broken pipe, and the answer is still there to read.
fn raw(socket: &Path, line: &[u8]) -> Value {
    let mut conn = UnixStream::connect(socket).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = conn.write_all(&[line, b"\n"].concat());
    read_response(&mut conn)
}

fn read_response(conn: &mut UnixStream) -> Value {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while conn.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        buf.push(byte[0]);
    }
    serde_json::from_slice(&buf).unwrap_or_else(|e| {
        panic!(
            "response is not JSON ({e}): {}",
            String::from_utf8_lossy(&buf)
        )
    })
}

/// Asserts `response` is the error `code` (naming `field` when given, its message containing
/// `needle`).
fn assert_error(what: &str, response: &Value, code: &str, field: Option<&str>, needle: &str) {
    assert_eq!(response["ok"], false, "{what}: {response}");
    let e = &response["error"];
    assert_eq!(e["code"], code, "{what}: {response}");
    if let Some(f) = field {
        assert_eq!(e["field"], f, "{what}: {response}");
    }
    let message = e["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{what}: `{needle}` not in `{message}`"
    );
}

#[test]
fn malformed_and_hostile_requests_are_refused_and_change_nothing() {
    let s = scope!();
    let (blue, _red, dvrd, ctl) = start(&s);
    apply_topology(&s, &ctl);
    ctl.ok("network add green vni 1003");
    let before = state(&ctl);
    let sock = ctl.socket().to_path_buf();
    let req = |op: &str, args: Value| {
        serde_json::to_vec(&json!({ "v": 1, "id": 9, "op": op, "args": args })).unwrap()
    };

    // Each request is refused with a structured error naming what was wrong.
    // (what, request line, error code, field, part of the message)
    type Case<'a> = (&'a str, Vec<u8>, &'a str, Option<&'a str>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "not JSON",
            b"route add 10.9.0.0/16".to_vec(),
            "malformed",
            None,
            "not one JSON object",
        ),
        (
            "cut JSON",
            br#"{"v":1,"op":"router.add","args":{"name":"x""#.to_vec(),
            "malformed",
            None,
            "EOF",
        ),
        (
            "an array",
            b"[1,2,3]".to_vec(),
            "malformed",
            None,
            "JSON object",
        ),
        (
            "a key twice",
            br#"{"v":1,"op":"router.add","op":"router.del"}"#.to_vec(),
            "malformed",
            None,
            "given twice",
        ),
        (
            "no version",
            br#"{"op":"router.list"}"#.to_vec(),
            "unsupported_version",
            Some("v"),
            "missing field `v`",
        ),
        (
            "version 2",
            br#"{"v":2,"op":"router.list"}"#.to_vec(),
            "unsupported_version",
            Some("v"),
            "version 2",
        ),
        (
            "unknown op",
            req("router.rename", json!({})),
            "unknown_op",
            Some("op"),
            "router.rename",
        ),
        (
            "unknown field",
            req("router.add", json!({ "name": "x", "colour": "red" })),
            "invalid_argument",
            Some("colour"),
            "unknown field `colour`",
        ),
        (
            "missing field",
            req(
                "route.add",
                json!({ "router": "tenant1", "via": "10.0.2.254" }),
            ),
            "invalid_argument",
            Some("prefix"),
            "missing field `prefix`",
        ),
        (
            "wrong type",
            req("network.add", json!({ "name": "n", "vni": "ten" })),
            "invalid_argument",
            Some("vni"),
            "invalid `vni`",
        ),
        (
            "unknown router",
            req(
                "route.add",
                json!({ "router": "nosuch", "prefix": "10.20.0.0/16", "via": "10.0.2.254" }),
            ),
            "not_found",
            None,
            "router `nosuch` does not exist",
        ),
        (
            "overlapping subnets",
            req(
                "interface.add",
                json!({ "router": "tenant1", "network": "green", "address": "10.0.1.129/25", "mac": "fa:16:3e:00:03:01" }),
            ),
            "invalid_argument",
            Some("interface.address"),
            "overlaps 10.0.1.0/24",
        ),
        (
            "multicast MAC",
            req(
                "port.add",
                json!({ "network": "blue", "ip": "10.0.1.9", "mac": "01:00:5e:00:00:09", "host": HOST }),
            ),
            "invalid_argument",
            Some("mac"),
            "multicast",
        ),
        (
            "host bits set",
            req(
                "route.add",
                json!({ "router": "tenant1", "prefix": "10.20.0.1/16", "via": "10.0.2.254" }),
            ),
            "invalid_argument",
            Some("prefix"),
            "host bits set",
        ),
        (
            "duplicate route, other gateway",
            req(
                "route.add",
                json!({ "router": "tenant1", "prefix": "10.9.0.0/16", "via": "10.0.2.253" }),
            ),
            "conflict",
            None,
            "already exists with a different value",
        ),
        (
            "duplicate port, other MAC",
            req(
                "port.add",
                json!({ "network": "red", "ip": "10.0.2.7", "mac": "fa:16:3e:aa:02:99", "host": HOST }),
            ),
            "conflict",
            None,
            "10.0.2.7 on network red",
        ),
        (
            "MAC of another port",
            req(
                "port.add",
                json!({ "network": "red", "ip": "10.0.2.8", "mac": RED_MAC, "host": HOST }),
            ),
            "conflict",
            None,
            "port with this MAC",
        ),
        (
            "router in use",
            req("router.del", json!({ "name": "tenant1" })),
            "in_use",
            None,
            "in use",
        ),
        (
            "a batch refused whole",
            req(
                "batch",
                json!({ "changes": [
                    { "op": "router.add", "args": { "name": "tenant2" } },
                    { "op": "network.add", "args": { "name": "yellow", "vni": 1004 } },
                    { "op": "port.add", "args": { "network": "nosuch", "ip": "10.0.1.9", "mac": "fa:16:3e:aa:01:09", "host": HOST } },
                ] }),
            ),
            "not_found",
            None,
            "change 2: network `nosuch` does not exist",
        ),
        (
            "a query in a batch",
            req("batch", json!({ "changes": [{ "op": "router.list" }] })),
            "invalid_argument",
            Some("op"),
            "not a change",
        ),
    ];
    for (what, line, code, field, needle) in &cases {
        let response = raw(&sock, line);
        assert_error(what, &response, code, *field, needle);
        if *what == "a batch refused whole" {
            assert_eq!(response["error"]["index"], 2, "{response}");
        }
    }
    // Adding what exists with the same value is a no-op, not an error.
    let same = raw(
        &sock,
        &req(
            "route.add",
            json!({ "router": "tenant1", "prefix": "10.9.0.0/16", "via": "10.0.2.254" }),
        ),
    );
    assert_eq!(
        same,
        json!({ "v": 1, "id": 9, "ok": true, "result": { "changed": false } })
    );

    // Too large: answered, connection closed, the daemon unharmed.
    let mut huge = br#"{"v":1,"op":"router.add","args":{"name":""#.to_vec();
    huge.resize(dvr_router::api::REQUEST_BYTES_MAX + 1024, b'a');
    let mut conn = UnixStream::connect(&sock).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = conn.write_all(&huge);
    assert_error(
        "too large",
        &read_response(&mut conn),
        "too_large",
        None,
        "split a large batch",
    );

    // A client that goes away in the middle of a request: nothing is applied.
    let mut conn = UnixStream::connect(&sock).unwrap();
    conn.write_all(&req("router.add", json!({ "name": "half" })))
        .unwrap();
    drop(conn);

    // Pipelined requests on one connection are answered in order.
    let mut conn = UnixStream::connect(&sock).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut burst = Vec::new();
    for id in 0..500 {
        burst.extend_from_slice(
            format!("{{\"v\":1,\"id\":{id},\"op\":\"router.list\"}}\n").as_bytes(),
        );
    }
    conn.write_all(&burst).unwrap();
    for id in 0..500 {
        let r = read_response(&mut conn);
        assert_eq!(
            (r["id"].as_u64(), r["ok"].as_bool()),
            (Some(id), Some(true)),
            "{r}"
        );
    }

    // Clients that connect and say nothing, or stop half-way: up to the limit they each hold
    // a connection; one more is turned away; none of them stalls the daemon or the data path.
    let limit = dvr_router::api::CONNECTIONS_MAX;
    let mut idle: Vec<UnixStream> = (0..limit - 1)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    idle[0]
        .write_all(br#"{"v":1,"op":"router.add","args":{"na"#)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let busy = raw(&sock, &req("router.list", json!({})));
    assert_error(
        "one client too many",
        &busy,
        "busy",
        None,
        "too many clients",
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    blue.ping(RED_IP, &PingOpts::count(3)).assert_all_answered();
    drop(conn);
    idle.clear();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        raw(&sock, &req("version", json!({})))["ok"],
        true,
        "served again once the clients left"
    );

    // dvrctl's exit codes and its JSON errors.
    let (code, err) = ctl.fails("route add 10.20.0.1/16 via 10.0.2.254 router tenant1");
    assert_eq!(code, EXIT_REFUSED, "{err}");
    assert!(
        err.contains("invalid_argument") && err.contains("host bits"),
        "{err}"
    );
    let (code, err) = ctl.fails("route frobnicate");
    assert_eq!(code, EXIT_USAGE, "{err}");
    let (code, _) = ctl.fails("router del nosuch");
    assert_eq!(code, EXIT_NOT_FOUND);
    let out = ctl.run("--json router del nosuch");
    assert_eq!(out.code, Some(EXIT_NOT_FOUND));
    let e: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(e["error"]["code"], "not_found", "{e}");
    let unreachable = Dvrctl::at(&s, &s.file("no-such.sock"));
    let (code, err) = unreachable.fails("stats");
    assert_eq!(code, EXIT_UNREACHABLE, "{err}");

    // Nothing changed, and the router still routes.
    assert_eq!(state(&ctl), before, "a refused request changed the state");
    blue.ping(RED_IP, &PingOpts::count(3)).assert_all_answered();
    dvrd.stop().assert_clean();
}
