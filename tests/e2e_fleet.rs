//! The fleet on etcd, end to end: a real single-member etcd, three real `dvrd` processes whose
//! files hold only local settings and `[fleet]`, and the DVR objects written once with
//! `dvrctl --etcd`. The topology is `dvr_harness::fleet` (the DVR cloud's hosts, BLUE and RED
//! of router `tenant1`, the SNAT node, a management network to etcd apart from the fabric).
//!
//! Each test checks what an operator would: pings answered (or refused with the right ICMP
//! error) between instances, `dvrctl --etcd fleet status`, each host's own `dvrctl stats`
//! (its `fleet` object), captures on the instances, and a clean exit of every dvrd.
//!
//! Timing: a change must reach the data path within [`PROPAGATION_MAX`] (one second) of the
//! write returning; the tests allow [`MEASURE_SLACK`] on top for what the measurement itself
//! costs on a loaded two-core machine (see there).
//!
//! Run as root: `cargo test --release -p dvr-router --test e2e_fleet -- --test-threads=1`.

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::time::Duration;

use dvr_harness::checks::Echo;
use dvr_harness::dvr::{
    router_stats, HostDef, InstanceDef, BLUE_A, BLUE_C, HOSTS, HOST_A, HOST_B, HOST_C, OUTSIDE,
    RED, RED_A, RED_B, TENANT1,
};
use dvr_harness::dvrctl::Dvrctl;
use dvr_harness::dvrd::DvrdExit;
use dvr_harness::fleet::{
    default_route_key, has_applied, host_status, key, poll, port_add, port_key, record_names,
    status_key, FleetCloud, CONVERGE_TIMEOUT, LEARN_A, MIG_B, MIG_C, NEW_B, NEW_C, PREFIX,
};
use dvr_harness::tools::{unix_now, BackgroundPing, TimedPing};
use dvr_harness::{scope, DvrdConfig, HostCfg, Instance, PingOpts, PortCfg, TxnOp};
use serde_json::Value;

/// How long after the write returns a change must work in the data path.
const PROPAGATION_MAX: Duration = Duration::from_secs(1);
/// What measuring adds to [`PROPAGATION_MAX`]: the ping starts through `ip netns exec` after
/// the write returns (tens of ms), sends every [`FAST_PING`], and shares two cores with three
/// routers, etcd and the capture tools.
const MEASURE_SLACK: Duration = Duration::from_millis(500);
/// The interval of the pings that time a change.
const FAST_PING: Duration = Duration::from_millis(50);
/// How long a host gets to notice that etcd went away or came back, and to catch up. A host
/// cut from etcd notices a restarted etcd when it next sends on its old connection (a lease
/// keep-alive), so this is more than a keep-alive period.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Neighbour timers that fail an unanswered resolution within a second (3 probes 200 ms
/// apart) and retry it 3 s later: the host-unreachable test does not wait for the defaults.
const FAST_NEIGHBOURS: &str = "[neighbor]\nretrans_ms = 200\nprobes_max = 3\nfailed_ms = 3000\n";

/// Pings that must all be answered: 200 ms apart, 3 s for the last reply.
fn pings(count: u32) -> PingOpts {
    PingOpts::count(count).timeout(Duration::from_secs(3))
}

/// A ping every [`FAST_PING`] for `span`.
fn fast_pings(span: Duration) -> PingOpts {
    let count = (span.as_millis() / FAST_PING.as_millis()).max(1) as u32;
    PingOpts::count(count)
        .interval(FAST_PING)
        .timeout(Duration::from_secs(1))
}

/// The longest a change may take, as measured here.
fn propagation_limit() -> Duration {
    PROPAGATION_MAX + MEASURE_SLACK
}

/// Pings `to` from `from` every [`FAST_PING`] from now on, for twice the propagation limit,
/// and returns how long after `written` (Unix time) the first reply came. Panics, with ping's
/// output, when none came.
fn time_to_first_reply(
    cloud: &FleetCloud,
    from: &InstanceDef,
    to: &InstanceDef,
    written: f64,
) -> Duration {
    let label = format!("ping-{}", to.tag);
    let ping = BackgroundPing::start(
        cloud.instance(from).netns(),
        &label,
        to.ip,
        &fast_pings(propagation_limit() * 2),
    );
    let seen = ping.finish();
    let first = seen.first_reply().unwrap_or_else(|| {
        panic!(
            "{} never answered {} after the write:\n{}",
            to.name, from.name, seen.result.output
        )
    });
    Duration::from_secs_f64((first - written).max(0.0))
}

/// Asserts that `what` worked within the propagation limit.
fn assert_in_time(took: Duration, what: &str) {
    eprintln!("[e2e] {what}: {took:?} after the write");
    assert!(
        took < propagation_limit(),
        "{what} took {took:?}, more than {PROPAGATION_MAX:?} (+ {MEASURE_SLACK:?} for measuring)"
    );
}

/// Asserts a continuous ping lost nothing.
fn assert_no_loss(seen: &TimedPing, what: &str) {
    assert!(
        seen.result.transmitted > 0 && seen.lost() == 0 && seen.errors.is_empty(),
        "{what}: {} of {} echo requests lost, errors {:?}\n{}",
        seen.lost(),
        seen.result.transmitted,
        seen.errors,
        seen.result.output
    );
}

/// Runs `dvrctl --etcd ... port add` for `def` on `host` and returns when it came back (Unix
/// time): the moment a change is timed from.
fn write_port(cloud: &FleetCloud, def: &InstanceDef, host: &HostDef, replace: bool) -> f64 {
    let mut line = port_add(def, host);
    if replace {
        line.push_str(" replace");
    }
    cloud.dvrctl_ok(&line);
    unix_now()
}

/// The revision of [`FleetCloud::program`]'s transaction (its default route's key).
fn program_revision(cloud: &FleetCloud) -> i64 {
    cloud
        .etcd()
        .mod_revision(&default_route_key())
        .expect("the fleet is programmed")
}

/// The revision of the last write to `def`'s port.
fn port_revision(cloud: &FleetCloud, def: &InstanceDef) -> i64 {
    cloud
        .etcd()
        .mod_revision(&port_key(def))
        .unwrap_or_else(|| panic!("no {} in etcd", port_key(def)))
}

/// Makes an instance answer ARP (or not: a VM that is gone answers nothing).
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
    ctl.json("neigh")["neighbors"]
        .as_array()?
        .iter()
        .find(|n| n["ip"] == ip.to_string())
        .cloned()
}

/// The keys a host reports as rejected, from a list of `{"key", "error"}`.
fn keys_of(errors: &Value) -> Vec<String> {
    errors
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|x| x["key"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// True when `keys` holds the record at `wanted` (a full key), however the host names it
/// ([`record_names`]).
fn reports(keys: &[String], wanted: &str) -> bool {
    let names = record_names(wanted);
    keys.iter().any(|k| names.contains(k))
}

/// True when the host's own `fleet` object says connected, at revision `rev` or later.
fn connected_at(fleet: &Value, rev: i64) -> bool {
    fleet["state"] == "connected" && fleet["applied_revision"].as_i64().is_some_and(|a| a >= rev)
}

/// Stops every router; each must exit 0 with every packet buffer back in its pool.
fn stop_clean(cloud: &mut FleetCloud) -> Vec<DvrdExit> {
    let exits = cloud.stop();
    for e in &exits {
        let summary = e.assert_clean();
        assert_eq!(
            summary.mempool_in_use(),
            Some(0),
            "packet buffers leaked\n{summary}"
        );
    }
    exits
}

#[test]
fn fleet_programs_every_host_and_east_west_works() {
    let s = scope!();
    let mut cloud = FleetCloud::build(&s);
    let rev = cloud.program();
    cloud.wait_converged(rev, CONVERGE_TIMEOUT);

    for (from, to, why) in [
        (&BLUE_A, &RED_A, "routed on host A"),
        (&BLUE_A, &RED_B, "routed on host A, to host B"),
        (&BLUE_C, &RED_A, "routed on host C, to host A"),
        (&RED_B, &BLUE_A, "routed on host B, to host A"),
    ] {
        let p = cloud.instance(from).ping(to.ip, &pings(5));
        assert!(
            p.received == p.transmitted && p.transmitted > 0,
            "{} -> {} ({why}): {p}\n{}",
            from.name,
            to.name,
            p.output
        );
    }
    // The default route of `tenant1` reaches the SNAT node and the world behind it.
    cloud
        .instance(&BLUE_A)
        .ping(OUTSIDE, &pings(3))
        .assert_all_answered();

    // The operator's view: every host up, at the revision of the write or later (each host's
    // own status write comes after it), nothing rejected.
    let status = cloud.fleet_status();
    let current = status["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no revision in fleet status: {status:#}"));
    for h in HOSTS {
        let hs = host_status(&status, h).unwrap_or_else(|| panic!("{} not in {status:#}", h.name));
        assert_eq!(hs["state"], "up", "{}: {hs:#}", h.name);
        let applied = hs["applied_revision"].as_i64().unwrap_or(-1);
        assert!(
            (rev..=current).contains(&applied),
            "{}: applied revision {applied}, the fleet was written at {rev}, etcd is at {current}",
            h.name
        );
        assert_eq!(
            keys_of(&hs["errors"]),
            Vec::<String>::new(),
            "{}: {hs:#}",
            h.name
        );
    }
    // Each host publishes its status under a lease: it goes when the host does.
    for h in HOSTS {
        let lease = cloud.etcd().lease(&status_key(h));
        assert!(
            lease.is_some_and(|l| l != 0),
            "{}: {} has no lease ({lease:?})",
            h.name,
            status_key(h)
        );
    }
    // Each host's own view says the same.
    for h in HOSTS {
        let fleet = cloud.local_fleet(h);
        assert!(connected_at(&fleet, rev), "{}: {fleet:#}", h.name);
        assert_eq!(
            keys_of(&fleet["rejected"]),
            Vec::<String>::new(),
            "{}: {fleet:#}",
            h.name
        );
        let human = cloud.host_ctl(h).ok("stats");
        assert!(
            human.contains("fleet: connected at revision"),
            "{}: no fleet line in `dvrctl stats`:\n{human}",
            h.name
        );
    }
    // What dvrctl reads back from etcd is what was written.
    let ports = cloud.dvrctl_ok("port list");
    for def in [&BLUE_A, &RED_A, &RED_B, &BLUE_C, &MIG_B] {
        assert!(
            ports.contains(&def.ip.to_string()),
            "no {} in `port list`:\n{ports}",
            def.name
        );
    }
    // A fleet host's local API is read-only for DVR objects.
    let (code, err) = cloud.host_ctl(&HOST_A).fails(&port_add(&NEW_B, &HOST_B));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("fleet_managed"), "{err}");

    stop_clean(&mut cloud);
}

#[test]
fn a_new_port_is_reachable_within_a_second() {
    let s = scope!();
    let mut cloud = FleetCloud::programmed(&s);
    // NEW-B boots on host B's BLUE switch; its port is written after.
    let written = write_port(&cloud, &NEW_B, &HOST_B, false);
    let from_a = time_to_first_reply(&cloud, &RED_A, &NEW_B, written);
    assert_in_time(
        from_a,
        "NEW-B answering RED-A (routed on host A, to host B)",
    );
    // Host B routes to it locally; every host has applied it.
    cloud
        .instance(&RED_B)
        .ping(NEW_B.ip, &pings(3))
        .assert_all_answered();
    cloud.wait_converged(port_revision(&cloud, &NEW_B), CONVERGE_TIMEOUT);
    stop_clean(&mut cloud);
}

#[test]
fn port_deleted_gets_host_unreachable() {
    let s = scope!();
    let mut cloud = FleetCloud::programmed_with(&s, |_, cfg| DvrdConfig {
        extra_toml: FAST_NEIGHBOURS.into(),
        ..cfg
    });
    write_port(&cloud, &NEW_B, &HOST_B, false);
    cloud.wait_converged(port_revision(&cloud, &NEW_B), CONVERGE_TIMEOUT);
    let (red_a, new_b) = (cloud.instance(&RED_A), cloud.instance(&NEW_B));
    red_a.ping(NEW_B.ip, &pings(3)).assert_all_answered();

    // The VM goes, then its port: nothing answers for its address any more.
    set_arp_answers(new_b, false);
    cloud.del_port(&NEW_B);
    assert!(cloud.etcd().get(&port_key(&NEW_B)).is_none());
    // Host A forgets the permanent entry within the propagation limit.
    let ctl_a = cloud.host_ctl(&HOST_A);
    let forgotten = poll(propagation_limit(), || {
        let n = neighbour(&ctl_a, NEW_B.ip);
        (n.as_ref().map(|n| n["state"].clone()) != Some(Value::from("permanent"))).then_some(())
    });
    assert!(
        forgotten.is_some(),
        "host A still holds NEW-B's port {propagation_limit:?} after the delete: {:?}",
        neighbour(&ctl_a, NEW_B.ip),
        propagation_limit = propagation_limit()
    );
    let gone = red_a.ping(
        NEW_B.ip,
        &PingOpts::count(8).interval(Duration::from_millis(300)),
    );
    gone.assert_unanswered("NEW-B's port is deleted, yet it answered");
    assert!(gone.errors > 0, "no ICMP error came back: {gone}");
    let from_gateway = format!("From {} icmp_seq=", RED.gateway);
    assert!(
        gone.output.stdout.contains(&from_gateway)
            && gone.output.stdout.contains("Destination Host Unreachable"),
        "expected ICMP host unreachable from the RED gateway:\n{}",
        gone.output
    );
    // The rest of the fleet is untouched.
    cloud
        .instance(&BLUE_A)
        .ping(RED_B.ip, &pings(3))
        .assert_all_answered();
    stop_clean(&mut cloud);
}

#[test]
fn port_moved_to_another_host() {
    let s = scope!();
    let mut cloud = FleetCloud::programmed(&s);
    let request = Echo::request(BLUE_A.ip, MIG_B.ip);
    let (at_b, at_c) = (
        cloud.instance(&MIG_B).capture("icmp"),
        cloud.instance(&MIG_C).capture("icmp"),
    );
    cloud
        .instance(&BLUE_A)
        .ping(MIG_B.ip, &pings(3))
        .assert_all_answered();
    let to_b = at_b.wait_for_count(3, Duration::from_secs(2), |f| request.matches(f));
    assert_eq!(
        to_b.len(),
        3,
        "the requests go to MIG on host B before the move"
    );

    // A ping every 50 ms through the move: before it MIG-B answers, after it MIG-C.
    let span = Duration::from_secs(1) + propagation_limit() * 2;
    let ping = BackgroundPing::start(
        cloud.instance(&BLUE_A).netns(),
        "ping-mig",
        MIG_B.ip,
        &fast_pings(span),
    );
    std::thread::sleep(Duration::from_secs(1));
    let moved = write_port(&cloud, &MIG_B, &HOST_C, true);
    let seen = ping.finish();
    let (at_b, at_c) = (at_b.stop(), at_c.stop());
    let times = |frames: &[dvr_harness::PcapRecord]| -> Vec<f64> {
        frames
            .iter()
            .filter(|r| request.matches(&r.data))
            .map(|r| r.time_ns as f64 / 1e9)
            .collect()
    };
    let (b_times, c_times) = (times(&at_b), times(&at_c));
    let first_at_c = c_times.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        first_at_c.is_finite(),
        "no echo request reached MIG on host C after the move\n{}",
        seen.result.output
    );
    assert!(
        first_at_c >= moved - 0.05,
        "MIG-C got requests before the move"
    );
    assert_in_time(
        Duration::from_secs_f64((first_at_c - moved).max(0.0)),
        "the first echo request at host C's MIG",
    );
    // No request reaches host B once host C gets them (a request in flight at the switch may
    // land a few milliseconds later).
    let late: Vec<f64> = b_times
        .iter()
        .copied()
        .filter(|t| *t > first_at_c + 0.1)
        .collect();
    assert!(
        late.is_empty(),
        "{} echo requests reached MIG on host B after host C got its first: {late:?}",
        late.len()
    );
    let answered_after = seen.replies.iter().filter(|r| r.1 > first_at_c).count();
    assert!(
        answered_after > 0,
        "MIG-C never answered:\n{}",
        seen.result.output
    );
    eprintln!(
        "[e2e] move: {} of {} requests lost around the move",
        seen.lost(),
        seen.result.transmitted
    );
    // etcd holds the port on host C.
    let record = cloud.etcd().get_json(&port_key(&MIG_B)).unwrap();
    assert_eq!(record["host"], HOST_C.name, "{record}");
    cloud.wait_converged(port_revision(&cloud, &MIG_B), CONVERGE_TIMEOUT);
    stop_clean(&mut cloud);
}

#[test]
fn etcd_down_traffic_flows_and_hosts_catch_up() {
    let s = scope!();
    let mut cloud = FleetCloud::programmed(&s);
    let ping = BackgroundPing::start(
        cloud.instance(&BLUE_A).netns(),
        "ping-through",
        RED_B.ip,
        &fast_pings(Duration::from_secs(5)),
    );
    cloud.etcd_mut().kill();
    for h in HOSTS {
        cloud.wait_local_fleet(h, "disconnected", RECONNECT_TIMEOUT, |f| {
            f["state"] == "disconnected"
        });
    }
    let human = cloud.host_ctl(&HOST_A).ok("stats");
    assert!(
        human.contains("fleet: disconnected since"),
        "no fleet line in `dvrctl stats`:\n{human}"
    );
    // Forwarding does not need etcd: nothing lost across hosts, local routing answered.
    cloud
        .instance(&BLUE_C)
        .ping(RED_A.ip, &pings(3))
        .assert_all_answered();
    cloud
        .instance(&BLUE_A)
        .ping(RED_A.ip, &pings(3))
        .assert_all_answered();
    assert_no_loss(&ping.finish(), "BLUE-A -> RED-B while etcd is down");
    // The operator's tool says the store is unreachable (exit code 3).
    let out = cloud.dvrctl(&["--timeout", "3", "port", "list"]);
    assert_eq!(out.code, Some(3), "{out}");

    cloud.etcd_mut().restart();
    // The revision of the fleet's last write (program()): each host's own status writes come
    // after it, and a host need not count those as applied.
    let rev = program_revision(&cloud);
    for h in HOSTS {
        cloud.wait_local_fleet(h, "connected", RECONNECT_TIMEOUT, |f| connected_at(f, rev));
    }
    // A write after the restart reaches the data path in time.
    let written = write_port(&cloud, &NEW_B, &HOST_B, false);
    let took = time_to_first_reply(&cloud, &RED_A, &NEW_B, written);
    assert_in_time(took, "NEW-B answering RED-A after etcd came back");
    let rev = port_revision(&cloud, &NEW_B);
    cloud.wait_converged(rev, CONVERGE_TIMEOUT);
    for h in HOSTS {
        let fleet = cloud.local_fleet(h);
        assert!(connected_at(&fleet, rev), "{}: {fleet:#}", h.name);
    }
    stop_clean(&mut cloud);
}

#[test]
fn dvrd_restarted_while_etcd_is_down_forwards_from_its_snapshot() {
    let s = scope!();
    let mut cloud = FleetCloud::programmed(&s);
    let rev = program_revision(&cloud);
    let snapshot = cloud
        .config(&HOST_B)
        .fleet
        .as_ref()
        .unwrap()
        .snapshot
        .clone();
    assert!(
        poll(CONVERGE_TIMEOUT, || snapshot.exists().then_some(())).is_some(),
        "host B wrote no snapshot at {}",
        snapshot.display()
    );

    cloud.etcd_mut().kill();
    cloud.wait_local_fleet(&HOST_B, "disconnected", RECONNECT_TIMEOUT, |f| {
        f["state"] == "disconnected"
    });
    cloud.restart_host(&HOST_B).assert_clean();
    // The new process has never reached etcd: what it forwards with is its snapshot.
    let fleet = cloud.local_fleet(&HOST_B);
    assert!(
        fleet["state"] == "disconnected" || fleet["state"] == "connecting",
        "host B without etcd: {fleet:#}"
    );
    assert!(
        fleet["applied_revision"].as_i64().is_some_and(|a| a >= rev),
        "host B did not start from its snapshot (revision {rev} or later): {fleet:#}"
    );
    for (from, to) in [(&BLUE_A, &RED_B), (&RED_B, &BLUE_A), (&RED_B, &BLUE_C)] {
        let p = cloud.instance(from).ping(to.ip, &pings(5));
        assert!(
            p.transmitted > 0 && p.received == p.transmitted,
            "{} -> {} with host B on its snapshot: {p}\n{}",
            from.name,
            to.name,
            p.output
        );
    }

    cloud.etcd_mut().restart();
    cloud.wait_local_fleet(&HOST_B, "connected", RECONNECT_TIMEOUT, |f| {
        connected_at(f, rev)
    });
    cloud.wait_converged(rev, CONVERGE_TIMEOUT);
    cloud
        .instance(&BLUE_A)
        .ping(RED_B.ip, &pings(3))
        .assert_all_answered();
    stop_clean(&mut cloud);
}

#[test]
fn compaction_past_a_hosts_revision_relists_without_loss() {
    let s = scope!();
    let mut cloud = FleetCloud::programmed(&s);
    // State that must survive a relist: a neighbour host A learned by ARP (LEARN-A has no
    // port), and the counters.
    cloud
        .instance(&BLUE_A)
        .ping(LEARN_A.ip, &pings(2))
        .assert_all_answered();
    let ctl_a = cloud.host_ctl(&HOST_A);
    let learned = neighbour(&ctl_a, LEARN_A.ip).expect("host A learned LEARN-A");
    assert_eq!(learned["mac"], LEARN_A.mac, "{learned}");
    let counted = router_stats(&cloud.router(&HOST_A).stats(), TENANT1.name);

    let ping = BackgroundPing::start(
        cloud.instance(&BLUE_A).netns(),
        "ping-through",
        RED_B.ip,
        &fast_pings(Duration::from_secs(15)),
    );
    // Every host loses etcd (its management link), etcd restarts (the hosts' connections are
    // gone with the old process), and the history the hosts would resume from is written
    // over and compacted away before they are back.
    for h in HOSTS {
        cloud.cut_from_etcd(h);
    }
    cloud.etcd_mut().restart();
    write_port(&cloud, &NEW_B, &HOST_B, false);
    // 50 revisions of a network that comes and goes; the last write is its delete.
    let churn = key("networks/churn");
    let mut last = 0;
    for _ in 0..25 {
        cloud.etcd().put(&churn, r#"{"vni": 3999}"#);
        last = cloud.etcd().del(&churn).1;
    }
    cloud.etcd().compact(cloud.etcd().revision());
    for h in HOSTS {
        cloud.reconnect_to_etcd(h);
    }
    for h in HOSTS {
        cloud.wait_local_fleet(
            h,
            "connected at the compacted revision",
            RECONNECT_TIMEOUT,
            |f| connected_at(f, last),
        );
    }
    let status = cloud.wait_converged(last, CONVERGE_TIMEOUT);
    for h in HOSTS {
        let hs = host_status(&status, h).unwrap();
        assert_eq!(
            keys_of(&hs["errors"]),
            Vec::<String>::new(),
            "{}: {hs:#}",
            h.name
        );
    }
    // What was written while they were away applies: the new port answers.
    cloud
        .instance(&RED_A)
        .ping(NEW_B.ip, &pings(3))
        .assert_all_answered();

    // Nothing lost on the data path meanwhile.
    let seen = ping.finish();
    assert_no_loss(&seen, "BLUE-A -> RED-B through the relist");
    // Unchanged objects kept their state: the learned entry is the same one (its age went
    // on), the counters went on from where they were.
    let after = neighbour(&ctl_a, LEARN_A.ip).expect("host A forgot LEARN-A in the relist");
    assert_eq!(after["mac"], LEARN_A.mac, "{after}");
    assert!(
        ["reachable", "stale", "probe"].contains(&after["state"].as_str().unwrap_or("")),
        "LEARN-A after the relist: {after}"
    );
    let (age_before, age_after) = (learned["age_ms"].as_u64(), after["age_ms"].as_u64());
    assert!(
        after["state"] != learned["state"] || age_after >= age_before,
        "LEARN-A's entry was made again in the relist: before {learned}, after {after}"
    );
    let now = router_stats(&cloud.router(&HOST_A).stats(), TENANT1.name);
    assert!(
        now.routed_remote >= counted.routed_remote + u64::from(seen.result.received),
        "host A's counters were reset: routed to peers {} before, {} after {} more requests",
        counted.routed_remote,
        now.routed_remote,
        seen.result.received
    );
    stop_clean(&mut cloud);
}

#[test]
fn invalid_records_are_reported_by_key_and_the_rest_applies() {
    let s = scope!();
    let mut cloud = FleetCloud::programmed(&s);
    let bad_mac = key("ports/blue/10.0.1.61");
    let unknown_network = key("ports/green/10.0.3.5");
    let good = port_key(&NEW_B);
    let rev = cloud.etcd().txn(&[
        TxnOp::put(
            &bad_mac,
            r#"{"mac": "fa:16:3e:zz:01:3d", "host": "host-b"}"#,
        ),
        TxnOp::put(
            &unknown_network,
            r#"{"mac": "fa:16:3e:00:03:05", "host": "host-a"}"#,
        ),
        TxnOp::put(
            &good,
            &format!(r#"{{"mac": "{}", "host": "{}"}}"#, NEW_B.mac, HOST_B.name),
        ),
    ]);
    let written = unix_now();
    let took = time_to_first_reply(&cloud, &RED_A, &NEW_B, written);
    assert_in_time(took, "the good port of a transaction with two bad ones");

    // A record that does not parse is reported by every host (each reads every record); one
    // the model refuses is reported by the hosts that need it (the port on the unknown
    // network is on host A: only A would program it) and by the store's own check in
    // `fleet status`.
    let expect_rejected = |cloud: &FleetCloud, bad: &[&str], rev: i64| {
        let status = cloud.wait_converged(rev, CONVERGE_TIMEOUT);
        for h in HOSTS {
            let hs = host_status(&status, h).unwrap();
            let keys = keys_of(&hs["errors"]);
            let local = keys_of(&cloud.local_fleet(h)["rejected"]);
            let wanted = bad
                .iter()
                .copied()
                .chain((h.name == HOST_A.name).then_some(unknown_network.as_str()));
            for k in wanted {
                assert!(
                    reports(&keys, k),
                    "{}: {k} not among the errors: {hs:#}",
                    h.name
                );
                assert!(
                    reports(&local, k),
                    "{}: {k} not in its own `rejected`: {local:?}",
                    h.name
                );
            }
            assert!(
                !reports(&keys, &good),
                "{}: the good port rejected: {hs:#}",
                h.name
            );
        }
        let store = keys_of(&status["invalid"]);
        assert!(
            reports(&store, &unknown_network),
            "fleet status does not list {unknown_network}: {status:#}"
        );
    };
    expect_rejected(&cloud, &[&bad_mac], rev);

    // Garbage: keys outside the schema (outside the config folder, which no host reads, and
    // inside it), not JSON, 1 MiB. Nobody falls over; every record in the config folder that
    // is not one is reported.
    let unknown_kind = key("bogus/x");
    let malformed = key("ports/blue/10.0.1.62");
    let huge = key("ports/blue/10.0.1.63");
    cloud.etcd().put(&format!("{PREFIX}bogus/x"), "{}");
    cloud.etcd().put(&unknown_kind, "{}");
    cloud
        .etcd()
        .put(&malformed, r#"{"mac": "fa:16:3e:00:01:3e", "host": "#);
    let rev = cloud.etcd().put(&huge, &"x".repeat(1 << 20));
    cloud.assert_running();
    expect_rejected(&cloud, &[&bad_mac, &unknown_kind, &malformed, &huge], rev);
    cloud.assert_running();
    cloud
        .instance(&BLUE_A)
        .ping(RED_B.ip, &pings(3))
        .assert_all_answered();

    // A good change after all that still applies in time.
    let written = write_port(&cloud, &NEW_C, &HOST_C, false);
    let took = time_to_first_reply(&cloud, &BLUE_A, &NEW_C, written);
    assert_in_time(took, "a good port after the garbage");

    // Deleting a bad record clears its error.
    let (_, rev) = cloud.etcd().del(&bad_mac);
    let status = cloud.wait_converged(rev, CONVERGE_TIMEOUT);
    let cleared = poll(CONVERGE_TIMEOUT, || {
        let status = cloud.fleet_status();
        HOSTS
            .iter()
            .all(|h| {
                host_status(&status, h)
                    .is_some_and(|hs| !reports(&keys_of(&hs["errors"]), &bad_mac))
            })
            .then_some(())
    });
    assert!(
        cleared.is_some(),
        "{bad_mac} is still reported after its delete: {status:#}"
    );
    assert!(HOSTS.iter().all(|h| has_applied(&status, h, rev)));
    cloud.assert_running();
    stop_clean(&mut cloud);
}

/// A floating IP in a fleet whose hosts have no external network: every host of its router
/// holds it but the one its instance runs on, which refuses it by key (that host would have
/// to act on it). Its port cannot be deleted before it; deleting it clears the error.
#[test]
fn a_floating_ip_is_refused_by_key_where_its_instance_has_no_external_network() {
    let s = scope!();
    let mut cloud = FleetCloud::programmed(&s);
    let fip = key("floating_ips/203.0.113.10");
    let value = format!(
        r#"{{"router": "{}", "port": "{}"}}"#,
        TENANT1.name, BLUE_A.ip
    );
    let rev = cloud.etcd().put(&fip, &value);
    let status = cloud.wait_converged(rev, CONVERGE_TIMEOUT);
    for h in HOSTS {
        let hs = host_status(&status, h).unwrap();
        let refused = reports(&keys_of(&hs["errors"]), &fip);
        assert_eq!(refused, h.name == HOST_A.name, "{}: {hs:#}", h.name);
    }
    let errors = host_status(&status, &HOST_A).unwrap()["errors"].clone();
    let error = errors
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| record_names(&fip).iter().any(|n| e["key"] == n.as_str()))
        .map(|e| e["error"].as_str().unwrap_or("").to_string())
        .unwrap();
    assert!(error.contains("no external network"), "{error}");
    assert!(reports(
        &keys_of(&cloud.local_fleet(&HOST_A)["rejected"]),
        &fip
    ));
    // The fleet's own model accepts it: the store lists no error for it.
    assert!(!reports(&keys_of(&status["invalid"]), &fip), "{status:#}");

    // The fleet refuses to delete its port first.
    let del_port = format!(
        "--json port del {} network {}",
        BLUE_A.ip, BLUE_A.network.name
    );
    let out = cloud.dvrctl(&del_port.split_whitespace().collect::<Vec<_>>());
    assert_eq!(out.code, Some(1), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "in_use", "{v}");
    cloud
        .instance(&BLUE_A)
        .ping(RED_B.ip, &pings(3))
        .assert_all_answered();

    let (_, rev) = cloud.etcd().del(&fip);
    cloud.wait_converged(rev, CONVERGE_TIMEOUT);
    let cleared = poll(CONVERGE_TIMEOUT, || {
        let status = cloud.fleet_status();
        let hs = host_status(&status, &HOST_A)?;
        (!reports(&keys_of(&hs["errors"]), &fip)).then_some(())
    });
    assert!(
        cleared.is_some(),
        "{fip} is still reported after its delete"
    );
    cloud.assert_running();
    stop_clean(&mut cloud);
}

#[test]
fn a_fleet_hosts_file_is_accepted_and_objects_next_to_fleet_are_refused() {
    let s = scope!();
    let fleet = DvrdConfig::local()
        .port(PortCfg::local("blue", "blue"))
        .port(PortCfg::local("red", "red"))
        .port(PortCfg::fabric("fabric", "fab").mtu(1500))
        .fleet(
            &["http://198.18.0.1:20000".to_string()],
            HOST_A.name,
            &s.file("fleet-host-a.json"),
        )
        .attach("blue", &["blue"]);
    let text = fleet.to_toml("dvt0000a", &s.file("a.sock"));
    dvr_router::config::Config::from_toml(&text)
        .unwrap_or_else(|e| panic!("a fleet host's file is refused: {e}\n{text}"));

    // The same file with a [host] table: dvrd refuses it, naming the table, at once.
    let with_host = DvrdConfig {
        host: Some(HostCfg::new(HOST_A.name, HOST_A.dvr_mac, "192.0.2.10")),
        fleet: None,
        ..fleet.clone()
    }
    .to_toml("dvt0000b", &s.file("b.sock"));
    let both = format!("{with_host}\n{}", fleet_table_of(&text));
    let path = s.file("fleet-and-host.toml");
    std::fs::write(&path, &both).unwrap();
    let run = dvr_harness::dvrd::run_to_exit(
        &s,
        "check-fleet-and-host",
        &[
            OsStr::new("--check"),
            OsStr::new("--config"),
            path.as_os_str(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(
        run.code,
        Some(2),
        "dvrd --check accepted [host] next to [fleet]:\n{both}\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("host"),
        "the error does not name `host`:\n{}",
        run.stderr
    );
}

/// The `[fleet]` and `[fleet.attach]` tables of a written file (they come last).
fn fleet_table_of(text: &str) -> &str {
    let at = text.find("[fleet]").expect("a [fleet] table");
    &text[at..]
}

/// `dvrctl --etcd` as an operator uses it, against a real etcd and no host: what would make
/// the fleet inconsistent is refused with the API's structured errors and writes nothing; an
/// `apply` file is one transaction, all or nothing.
#[test]
fn dvrctl_refuses_what_would_make_the_fleet_inconsistent() {
    use dvr_harness::cmd::output_of;
    use dvr_harness::etcd::Etcd;
    let s = scope!();
    let etcd = Etcd::start(&s);
    let run = |line: &str| {
        let mut cmd = std::process::Command::new(s.dvrctl_binary());
        cmd.env_remove("DVRCTL_ETCD").env_remove("DVRCTL_SOCKET");
        cmd.args(["--etcd", &etcd.endpoint(), "--json"]);
        cmd.args(line.split_whitespace());
        output_of(&mut cmd)
    };
    let ok = |line: &str| {
        let out = run(line);
        assert!(out.success(), "{line}: {out:?}");
    };
    ok("host set host-a mac fa:16:3f:00:00:0a vtep 192.0.2.10");
    ok("peer add host-b mac fa:16:3f:00:00:0b vtep 192.0.2.20");
    ok("network add blue vni 1001");
    ok("router add tenant1");
    ok("interface add router tenant1 network blue address 10.0.1.1/24 mac fa:16:3e:00:01:01");
    ok("port add 10.0.1.5 network blue mac fa:16:3e:aa:01:05 host host-a");
    let before = etcd.get_prefix(PREFIX);

    // (command, exit code, error code): each refused, nothing written.
    let refused = [
        (
            "port add 10.0.1.6 network green mac fa:16:3e:aa:01:06 host host-a",
            4,
            "not_found",
        ),
        (
            "port add 10.0.1.6 network blue mac fa:16:3e:aa:01:06 host host-z",
            4,
            "not_found",
        ),
        (
            "port add 10.0.1.5 network blue mac fa:16:3e:aa:01:07 host host-b",
            1,
            "conflict",
        ),
        (
            "port add 10.0.1.7 network blue mac fa:16:3e:aa:01:05 host host-b",
            1,
            "conflict",
        ),
        (
            "port add 10.0.2.7 network blue mac fa:16:3e:aa:01:08 host host-b",
            1,
            "invalid_argument",
        ),
        ("network add red vni 1001", 1, "conflict"),
        (
            "peer add host-c mac fa:16:3f:00:00:0b vtep 192.0.2.30",
            1,
            "conflict",
        ),
        (
            "peer add host-c mac fa:16:3f:00:00:0c vtep 192.0.2.20",
            1,
            "conflict",
        ),
        ("peer del host-a", 1, "in_use"),
        ("network del blue", 1, "in_use"),
        ("network add red vni 1002 port red", 1, "invalid_argument"),
        (
            "peer add .fleet mac fa:16:3f:00:00:0d vtep 192.0.2.40",
            1,
            "invalid_argument",
        ),
    ];
    for (line, exit, code) in refused {
        let out = run(line);
        assert_eq!(out.code, Some(exit), "{line}: {out:?}");
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{line}: not JSON ({e}): {out:?}"));
        assert_eq!(v["error"]["code"], code, "{line}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap_or("").is_empty());
    }
    assert_eq!(etcd.get_prefix(PREFIX), before, "a refused command wrote");

    // A file with a bad line in the middle: refused at that change, nothing written.
    let file = s.file("bad.dvrctl");
    std::fs::write(
        &file,
        "network add red vni 1002\n\
         interface add router tenant1 network red address 10.0.2.1/24 mac fa:16:3e:00:02:01\n\
         port add 10.0.2.8 network red mac fa:16:3e:bb:02:08 host host-nowhere\n",
    )
    .unwrap();
    let out = run(&format!("apply {}", file.display()));
    assert_eq!(out.code, Some(4), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["error"]["index"], 2, "{v}");
    assert_eq!(etcd.get_prefix(PREFIX), before, "a refused apply wrote");

    // The same file, fixed: one transaction, so its three records share one revision.
    std::fs::write(
        &file,
        "network add red vni 1002\n\
         interface add router tenant1 network red address 10.0.2.1/24 mac fa:16:3e:00:02:01\n\
         port add 10.0.2.8 network red mac fa:16:3e:bb:02:08 host host-b\n",
    )
    .unwrap();
    ok(&format!("apply {}", file.display()));
    let revs: Vec<Option<i64>> = [
        "networks/red",
        "interfaces/tenant1/red",
        "ports/red/10.0.2.8",
    ]
    .iter()
    .map(|k| etcd.mod_revision(&key(k)))
    .collect();
    assert!(
        revs[0].is_some() && revs.iter().all(|r| *r == revs[0]),
        "{revs:?}"
    );

    // A move is a replace, and the listing reads the store.
    ok("port add 10.0.2.8 network red mac fa:16:3e:bb:02:08 host host-a replace");
    let out = run("port list network red");
    assert!(out.success(), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["ports"][0]["host"], "host-a", "{v}");
    // Requests about one host's data path are sent to that host, not to the store.
    let out = run("stats");
    assert_eq!(out.code, Some(1), "{out:?}");
}

/// etcd serving TLS only, with client certificates required: `dvrctl --etcd https://...`
/// with the CA and a client certificate writes; without the certificate, or without the CA,
/// it cannot connect (exit 3); a dvrd with `[fleet.tls]` follows the store and programs what
/// was written.
#[test]
fn the_fleet_over_tls_with_client_certificates() {
    use dvr_harness::cmd::output_of;
    use dvr_harness::dvrd::Dvrd;
    use dvr_harness::etcd::Etcd;
    use dvr_harness::topo::InstanceSpec;
    let s = scope!();
    let etcd = Etcd::start_tls(&s);
    let tls = etcd.tls().expect("TLS etcd").clone();
    assert!(etcd.endpoint().starts_with("https://"));
    let run = |certs: &[&std::path::Path], line: &str| {
        let mut cmd = std::process::Command::new(s.dvrctl_binary());
        for v in [
            "DVRCTL_ETCD",
            "DVRCTL_ETCD_CA",
            "DVRCTL_ETCD_CERT",
            "DVRCTL_ETCD_KEY",
        ] {
            cmd.env_remove(v);
        }
        cmd.args(["--etcd", &etcd.endpoint()]);
        for (flag, path) in ["--etcd-ca", "--etcd-cert", "--etcd-key"].iter().zip(certs) {
            cmd.arg(flag).arg(path);
        }
        cmd.args(line.split_whitespace());
        output_of(&mut cmd)
    };
    let all = [
        tls.ca.as_path(),
        tls.client_cert.as_path(),
        tls.client_key.as_path(),
    ];
    for line in [
        "host set host-a mac fa:16:3f:00:00:0a vtep 192.0.2.10",
        "network add blue vni 1001",
        "router add tenant1",
        "interface add router tenant1 network blue address 10.0.1.1/24 mac fa:16:3e:00:01:01",
        "port add 10.0.1.5 network blue mac fa:16:3e:aa:01:05 host host-a",
    ] {
        let out = run(&all, line);
        assert!(out.success(), "{line}: {out:?}");
    }
    let no_client_cert = run(&all[..1], "port list");
    assert_eq!(no_client_cert.code, Some(3), "{no_client_cert:?}");
    let no_ca = run(&[], "port list");
    assert_eq!(no_ca.code, Some(3), "{no_ca:?}");

    // A host over TLS: one instance on blue, a fabric port on a second link.
    let inst = Instance::new(
        &s,
        "tlsa",
        InstanceSpec::new("10.0.1.5/24", "fa:16:3e:aa:01:05", "10.0.1.1"),
    );
    let fab = Instance::new(
        &s,
        "tlsf",
        InstanceSpec::new("192.0.2.99/24", "02:00:00:00:00:99", "192.0.2.1"),
    );
    let mut fabric = fab.port("fabric");
    fabric.fabric = true;
    let cfg = DvrdConfig::local()
        .port(inst.port("blue"))
        .port(fabric)
        .fleet(&[etcd.endpoint()], HOST_A.name, &s.file("fleet-tls.json"))
        .fleet_tls(&tls.ca, &tls.client_cert, &tls.client_key);
    let mut dvrd = Dvrd::start(&s, "tls-host", &cfg);
    let ctl = Dvrctl::of(&dvrd);
    let connected = poll(CONVERGE_TIMEOUT, || {
        let f = ctl.json("stats")["fleet"].clone();
        (f["state"] == "connected" && ctl.json("port list")["ports"].as_array()?.len() == 1)
            .then_some(f)
    });
    assert!(
        connected.is_some(),
        "the TLS host did not connect and program: {}",
        ctl.json("stats")["fleet"]
    );
    inst.ping(Ipv4Addr::new(10, 0, 1, 1), &pings(3))
        .assert_all_answered();
    dvrd.assert_running();
    dvrd.stop().assert_clean();
}
