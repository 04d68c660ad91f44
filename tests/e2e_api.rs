//! The control API end to end: a running `dvrd` driven through `dvrctl` only. The BLUE/RED
//! topology is built at run time from a config that holds only the host, the ports and the
//! networks; traffic goes through it; a port is deleted and re-added; the metrics endpoint is
//! scraped and parsed; a trace shows the router's decisions; malformed and hostile requests
//! are refused with the right error and change nothing.
//!
//! Run as root: `cargo test --release --test e2e_api -- --test-threads=1`.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::config::{HostCfg, NetworkCfg};
use support::{scope, CmdOutput, Dvrd, DvrdConfig, Instance, InstanceSpec, PingOpts, Scope};

const HOST: &str = "host-a";
const BLUE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);
const RED_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 7);
const BLUE_MAC: &str = "fa:16:3e:aa:01:05";
const RED_MAC: &str = "fa:16:3e:aa:02:07";
const BLUE_GW_MAC: &str = "fa:16:3e:00:01:01";
const RED_GW_MAC: &str = "fa:16:3e:00:02:01";
/// dvrctl's exit codes.
const EXIT_REFUSED: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_UNREACHABLE: i32 = 3;
const EXIT_NOT_FOUND: i32 = 4;

/// Neighbour timers short enough that a failed resolution shows within a second or two.
const FAST_NEIGHBOURS: &str = "[neighbor]\nretrans_ms = 200\nprobes_max = 3\nfailed_ms = 3000\n";

/// `dvrctl` on one daemon's socket.
struct Ctl {
    socket: PathBuf,
}

impl Ctl {
    fn of(s: &Scope, dvrd: &Dvrd) -> Ctl {
        Ctl {
            socket: s.socket_path(dvrd.label()),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dvrctl"));
        cmd.arg("--socket").arg(&self.socket);
        cmd
    }

    /// Runs `dvrctl ARGS` and returns its output, whatever the exit code.
    fn run(&self, args: &str) -> CmdOutput {
        support::cmd::output_of(self.command().args(args.split_whitespace()))
    }

    /// Runs `dvrctl ARGS`, panics unless it exits with 0, returns stdout.
    fn ok(&self, args: &str) -> String {
        self.run(args).ok().stdout
    }

    /// Runs `dvrctl --json ARGS` and parses its output.
    fn json(&self, args: &str) -> Value {
        let out = self.ok(&format!("--json {args}"));
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("dvrctl --json {args}: not JSON ({e}):\n{out}"))
    }

    /// Runs `dvrctl ARGS` and returns the exit code and stderr.
    fn fails(&self, args: &str) -> (i32, String) {
        let out = self.run(args);
        assert!(!out.success(), "`dvrctl {args}` should have failed:\n{out}");
        (out.code.unwrap_or(-1), out.stderr)
    }
}

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

/// Host, ports and networks only: no router, no interface, no instance port.
fn empty_config(blue: &Instance, red: &Instance) -> DvrdConfig {
    let mut cfg = DvrdConfig::new(HostCfg::new(HOST, "fa:16:3f:00:00:0a", "192.0.2.10"))
        .port(blue.port("blue"))
        .port(red.port("red"))
        .network(NetworkCfg::new("blue", 1001, &["blue"]))
        .network(NetworkCfg::new("red", 1002, &["red"]));
    cfg.extra_toml = FAST_NEIGHBOURS.to_string();
    cfg
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
fn state(ctl: &Ctl) -> Value {
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
fn neighbour(ctl: &Ctl, ip: Ipv4Addr) -> Option<Value> {
    let all = ctl.json("neigh");
    all["neighbors"]
        .as_array()?
        .iter()
        .find(|n| n["ip"] == json!(ip.to_string()))
        .cloned()
}

#[test]
fn topology_built_at_run_time_with_dvrctl_and_a_deleted_port() {
    let s = scope!();
    let (blue, red) = instances(&s);
    let dvrd = Dvrd::start(&s, "dvrd", &empty_config(&blue, &red));
    let ctl = Ctl::of(&s, &dvrd);

    // The socket is private to the daemon's user.
    let meta = std::fs::metadata(&ctl.socket).expect("control socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "socket mode");

    // Nothing routes yet.
    assert_eq!(ctl.json("router list"), json!({ "routers": [] }));
    let before = blue.ping(
        RED_IP,
        &PingOpts {
            count: 2,
            timeout: Duration::from_millis(500),
            ..PingOpts::default()
        },
    );
    assert_eq!(
        before.received, 0,
        "no router yet, yet RED answered: {before}"
    );

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
    let n = neighbour(&ctl, RED_IP).expect("RED's neighbour entry");
    assert_eq!(
        (n["state"].as_str(), n["mac"].as_str()),
        (Some("permanent"), Some(RED_MAC)),
        "{n}"
    );
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
        &PingOpts {
            count: 8,
            interval: Duration::from_millis(300),
            ..PingOpts::default()
        },
    );
    assert_eq!(
        gone.received, 0,
        "RED's port is deleted, yet it answered: {gone}"
    );
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
    let n = neighbour(&ctl, RED_IP).expect("the learned entry");
    assert_eq!(
        (n["state"].as_str(), n["mac"].as_str()),
        (Some("reachable"), Some(RED_MAC)),
        "{n}"
    );
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
    dvrd.wait_ready(support::dvrd::READY_TIMEOUT);
    dvrd
}

/// Builds the topology with one `dvrctl apply` (one atomic batch).
fn apply_topology(s: &Scope, ctl: &Ctl) {
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
    let (blue, red) = instances(&s);
    let port = free_port();
    let dvrd = start_with_metrics(&s, &empty_config(&blue, &red), port);
    let ctl = Ctl::of(&s, &dvrd);
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
            format!("> {BLUE_GW_MAC} type 0x0800 (ipv4)"),
            "input network blue, router tenant1".to_string(),
            "ipv4 10.0.1.5 > 10.0.2.7 icmp ttl 64".to_string(),
            "route lookup in tenant1 for 10.0.2.7: next hop".to_string(),
            format!(
                "neighbour 10.0.2.7 at {RED_MAC} behind local port red via interface tenant1/red"
            ),
            format!("rewrite ethernet {RED_GW_MAC} > {RED_MAC}, ttl 63"),
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
    let ping = blue.ping(Ipv4Addr::new(10, 77, 0, 1), &PingOpts::count(1));
    assert_eq!(ping.received, 0);
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
