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
