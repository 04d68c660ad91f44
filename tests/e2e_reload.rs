//! Configuration reload end to end: dvrd started from a file routes BLUE to RED while BLUE
//! pings RED without pause; the file is rewritten (a peer, a network with its interface, an
//! instance port and a route added; a network and a route removed) and dvrd gets SIGHUP, as
//! `systemctl reload` sends it. The new state shows in `dvrctl`, a route added through the API
//! that the file does not have is gone, and not one echo of the running ping is lost. An
//! invalid file is refused with the message dvrd gives at start, changes nothing, and dvrd goes
//! on forwarding; a changed EAL setting is named as needing a restart while the rest applies.
//!
//! Run as root: `cargo test --release --test e2e_reload -- --test-threads=1`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dvr_harness::dvr::{RED_A, TENANT1};
use dvr_harness::one_host::{instances, routed_config};
use dvr_harness::tools::parse_ping_summary;
use dvr_harness::{
    run_ok, scope, Dvrctl, Dvrd, DvrdConfig, NetworkCfg, PeerCfg, PingOpts, Process, RouteCfg,
};
use serde_json::{json, Value};

const RED_IP: Ipv4Addr = RED_A.ip;
/// How long to wait for dvrd to log what a reload did.
const LOG_WAIT: Duration = Duration::from_secs(10);
/// The continuous ping: one echo every 10 ms for 6 s.
const PING_COUNT: &str = "600";

/// The file dvrd starts from: BLUE and RED routed by tenant1, a spare network `gray` and a
/// route of tenant1 via RED's subnet, both of which the reload removes.
fn first_file(cfg: DvrdConfig) -> DvrdConfig {
    let mut cfg = cfg.network(NetworkCfg::new("gray", 500, &[]));
    let router = cfg.routers.iter_mut().find(|r| r.name == TENANT1.name);
    router.unwrap().routes.push(RouteCfg {
        prefix: "10.8.0.0/16".into(),
        via: "10.0.2.254".parse().unwrap(),
    });
    cfg
}

/// The file after the edit: `gray` and the route via RED gone; peer host-b, network green
/// with an interface of tenant1, an instance of green on host-b and a route via it added.
fn second_file(cfg: &DvrdConfig) -> DvrdConfig {
    let mut cfg = cfg.clone();
    cfg.networks.retain(|n| n.name != "gray");
    cfg = cfg
        .peer(PeerCfg::new("host-b", "fa:16:3f:00:00:0b", "192.0.2.20"))
        .network(NetworkCfg::new("green", 300, &[]))
        .instance_port(dvr_harness::InstancePortCfg::new(
            "green",
            "10.0.3.9".parse().unwrap(),
            dvr_harness::frames::mac("fa:16:3e:aa:03:09"),
            "host-b",
        ));
    let router = cfg.routers.iter_mut().find(|r| r.name == TENANT1.name);
    let router = router.unwrap();
    router.routes.clear();
    *router = router
        .clone()
        .interface("green", "10.0.3.1/24", "fa:16:3e:00:03:01")
        .route("10.9.0.0/16", "10.0.3.9");
    cfg
}

/// Writes `cfg` over the file `dvrd` was started with.
fn rewrite(dvrd: &Dvrd, cfg: &DvrdConfig) {
    let text = cfg.to_toml(dvrd.file_prefix(), dvrd.control_socket());
    std::fs::write(dvrd.config_path(), text).unwrap();
}

fn sighup(dvrd: &Dvrd) {
    run_ok("kill", &["-HUP", &dvrd.pid().to_string()]);
}

/// Waits until dvrd's log holds `needle` `count` times (a reload logs one line each time).
fn wait_for_log(dvrd: &Dvrd, needle: &str, count: usize) -> String {
    let start = Instant::now();
    loop {
        let log = dvrd.stderr();
        if log.matches(needle).count() >= count {
            let line = log.lines().rfind(|l| l.contains(needle)).unwrap();
            return line.to_string();
        }
        assert!(
            start.elapsed() < LOG_WAIT,
            "dvrd did not log `{needle}` ({count} times) within {LOG_WAIT:?}\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The routing state as `dvrctl --json` lists it.
fn state(ctl: &Dvrctl) -> Value {
    json!({
        "peers": ctl.json("peer list"),
        "networks": ctl.json("network list"),
        "interfaces": ctl.json("interface list"),
        "routes": ctl.json("route list"),
        "ports": ctl.json("port list"),
    })
}

fn names(v: &Value, list: &str, field: &str) -> Vec<String> {
    let items = v[list].as_array().unwrap();
    let mut out: Vec<String> = items
        .iter()
        .map(|i| i[field].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// BLUE pinging RED every 10 ms until [`PING_COUNT`] echoes went out.
fn continuous_ping(blue: &dvr_harness::Instance) -> Process {
    let red = RED_IP.to_string();
    let args = ["-n", "-i", "0.01", "-c", PING_COUNT, "-W", "1", &red];
    blue.spawn("ping", "ping", &args)
}

/// Echoes sent and answered by a finished ping.
fn ping_result(mut ping: Process) -> (u32, u32) {
    let status = ping.wait_timeout(Duration::from_secs(30));
    assert!(status.is_some(), "the ping did not finish");
    let (sent, received, _) = parse_ping_summary(&ping.stdout())
        .unwrap_or_else(|| panic!("no ping summary:\n{}", ping.stdout()));
    (sent, received)
}

#[test]
fn sighup_applies_the_edited_file_without_losing_a_packet() {
    let s = scope!();
    let (blue, red) = instances(&s, None);
    let first = first_file(routed_config(&blue, &red));
    let dvrd = Dvrd::start(&s, "dvrd", &first);
    let ctl = Dvrctl::of(&dvrd);
    blue.ping(RED_IP, &PingOpts::count(2)).assert_all_answered();
    // A route added at run time, which the file does not have.
    ctl.ok("route add 10.7.0.0/16 via 10.0.1.254 router tenant1");

    let ping = continuous_ping(&blue);
    std::thread::sleep(Duration::from_secs(1));
    rewrite(&dvrd, &second_file(&first));
    sighup(&dvrd);
    // Peer, network, interface, instance port and route added; gray, the file's route and
    // the API's route removed.
    let line = wait_for_log(&dvrd, "reload: applied", 1);
    assert!(
        line.ends_with("reload: applied 8 changes (+5 -3 ~0)"),
        "{line}"
    );
    let (sent, received) = ping_result(ping);
    assert_eq!(
        (sent, received),
        (PING_COUNT.parse().unwrap(), sent),
        "echoes lost during the reload"
    );

    let now = state(&ctl);
    assert_eq!(names(&now["peers"], "peers", "name"), ["host-b"]);
    assert_eq!(
        names(&now["networks"], "networks", "name"),
        ["blue", "green", "red"]
    );
    assert_eq!(names(&now["routes"], "routes", "prefix"), ["10.9.0.0/16"]);
    let ports = names(&now["ports"], "ports", "ip");
    assert_eq!(ports, ["10.0.1.5", "10.0.2.7", "10.0.3.9"]);
    let lookup = ctl.json("route get 10.9.1.1 router tenant1");
    assert!(lookup["next_hop"].is_number(), "{lookup}");
    let stats = ctl.json("stats");
    assert_eq!(stats["config_reloads"], json!({"applied": 1, "refused": 0}));
    dvrd.stop().assert_clean();
}

#[test]
fn an_invalid_file_is_refused_and_changes_nothing() {
    let s = scope!();
    let (blue, red) = instances(&s, None);
    let good = routed_config(&blue, &red);
    let dvrd = Dvrd::start(&s, "dvrd", &good);
    let ctl = Dvrctl::of(&dvrd);
    let before = state(&ctl);

    // A semantic error, by SIGHUP: the route's next hop is on no subnet of the router.
    let mut bad = second_file(&good);
    bad.routers[0].routes[0].via = "192.0.2.99".parse().unwrap();
    rewrite(&dvrd, &bad);
    let ping = continuous_ping(&blue);
    sighup(&dvrd);
    let line = wait_for_log(&dvrd, "reload refused", 1);
    assert!(
        line.contains("nothing changed: invalid configuration: routers[0].routes[0]: ")
            && line.contains("192.0.2.99 is not on a subnet of router tenant1"),
        "{line}"
    );
    // A syntax error, through the API: the same refusal, as a structured error.
    std::fs::write(dvrd.config_path(), "[eal\nmemory_mb = 256\n").unwrap();
    let out = ctl.run("--json reload");
    assert_eq!(out.code, Some(1), "{out}");
    let error: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(error["error"]["code"], "invalid_config", "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("invalid configuration: ") && message.contains(".toml"),
        "{message}"
    );
    wait_for_log(&dvrd, "reload refused", 2);

    assert_eq!(state(&ctl), before, "a refused reload changed the state");
    let (sent, received) = ping_result(ping);
    assert_eq!(received, sent, "echoes lost while reloads were refused");
    let stats = ctl.json("stats");
    assert_eq!(stats["config_reloads"], json!({"applied": 0, "refused": 2}));
    dvrd.stop().assert_clean();
}

#[test]
fn settings_only_a_restart_applies_are_named_and_the_rest_applies() {
    let s = scope!();
    let (blue, red) = instances(&s, None);
    let first = routed_config(&blue, &red);
    let dvrd = Dvrd::start(&s, "dvrd", &first);
    let ctl = Dvrctl::of(&dvrd);

    let mut next = second_file(&first);
    next.memory_mb += 64;
    next.ports[1].mtu = Some(1400);
    next.extra_toml = "[icmp]\nrate_per_s = 50\nburst = 5\n".into();
    rewrite(&dvrd, &next);
    let reply = ctl.json("reload");
    assert_eq!(
        reply["needs_restart"],
        json!(["eal.memory_mb", "ports"]),
        "{reply}"
    );
    assert_eq!(reply["settings"], json!(["icmp.rate_per_s", "icmp.burst"]));
    assert_eq!(
        (reply["added"].as_u64(), reply["fleet"].as_bool()),
        (Some(5), Some(false))
    );
    let line = wait_for_log(&dvrd, "reload: applied", 1);
    assert!(
        line.ends_with(
            "reload: applied 5 changes (+5 -0 ~0); settings: icmp.rate_per_s, icmp.burst; \
             needs restart: eal.memory_mb, ports"
        ),
        "{line}"
    );
    assert_eq!(
        names(&ctl.json("network list"), "networks", "name"),
        ["blue", "green", "red"]
    );
    // Nothing else changed: the same file again applies nothing, and still names what waits
    // for a restart.
    let again = ctl.ok("reload");
    assert_eq!(
        again.trim(),
        "reload: applied 0 changes (+0 -0 ~0); needs restart: eal.memory_mb, ports"
    );
    blue.ping(RED_IP, &PingOpts::count(3)).assert_all_answered();
    dvrd.stop().assert_clean();
}
