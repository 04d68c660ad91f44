//! `dvr-demo`: per-host distributed virtual routing on a fleet programmed through etcd, live,
//! on this machine (`make demo`).
//!
//! It builds a small cloud out of network namespaces: three hosts, each running its own `dvrd`
//! with a switch (a Linux bridge) per network where its instances plug in, a Linux bridge as
//! the underlay between the hosts' fabric ports, a centralised SNAT node (a kernel namespace
//! with a Linux vxlan device), and etcd on a management network of its own (the operator's
//! `dvrctl --etcd` reaches it on loopback). The topology is the one the fleet's end-to-end
//! tests use (`dvr_harness::fleet`): each dvrd's file holds only its local settings and a
//! `[fleet]` table.
//!
//! Then it walks through what an operator and a distributed router do, checking each step:
//! every DVR object written once with `dvrctl --etcd ... apply` (one transaction, its store
//! revision) and `fleet status` showing every host at that revision; a ping to the gateway,
//! east-west on one host and across hosts (the VXLAN frames on the underlay), to the outside
//! through the SNAT node, the packet walk from the routers' own counters (read through their
//! control sockets, as `dvrctl stats` does); a live migration (the port of MIG moves from
//! host B to host C with one `dvrctl --etcd port add ... replace`: how long until it answers
//! at host C, and that host B's copy receives nothing more); a host cut from etcd that keeps
//! forwarding (`fleet: disconnected since`) and catches up once back; and each router's exit
//! summary. It removes everything it created: at the end, on a failure, and on Ctrl-C
//! (SIGINT) or SIGTERM.
//!
//! Exit status: 0 when every step behaved as expected, 1 when one did not (the step and the
//! reason are printed), 2 when the machine cannot run it (not root, a tool, etcd, `dvrd` or
//! `dvrctl` missing), 130 when interrupted.
#![forbid(unsafe_code)]

use std::any::Any;
use std::net::Ipv4Addr;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dvr_harness::checks::{Echo, TTL_ROUTED};
use dvr_harness::cmd::{environment_problems, which};
use dvr_harness::dvr::{
    deltas, fabric_movement, host_index, port_stats, walk_of, walks, Crossing, HostDef,
    InstanceDef, BLUE, BLUE_A, FABRIC_MTU, FABRIC_PORT, HOSTS, HOST_A, HOST_B, HOST_C, NETWORKS,
    OUTSIDE, RED_A, RED_B, SNAT_NODE, SNAT_PORT, SNAT_UNDERLAY_IF, TENANT1,
};
use dvr_harness::fleet::{
    default_route_key, fleet_commands, has_applied, host_status, mgmt_addr, poll, port_add,
    port_key, FleetCloud, CONVERGE_TIMEOUT, ETCD_MGMT_ADDR, FLEET_INSTANCES, FLEET_NETWORKS,
    MGMT_IF, MIG_B, MIG_C, NEW_B, PROGRAMMED_PORTS,
};
use dvr_harness::frames::{ethernet_of, ipv4_of, Tunnelled};
use dvr_harness::pcap::PcapRecord;
use dvr_harness::test_scope::sibling_binary;
use dvr_harness::tools::{unix_now, BackgroundPing};
use dvr_harness::{Capture, Mac, PingOpts, PingResult, Scope};
use dvr_router::stats::Snapshot;
use serde_json::Value;

/// The demo's name: its namespaces and links start with `dvd` and four hex digits of its hash.
const NAME: &str = "dvr-demo";
/// Echo requests per step.
const PINGS: u32 = 5;
/// How long a capture waits for a frame the step expects.
const CAPTURE_WAIT: Duration = Duration::from_secs(5);
/// The interval of the pings that watch a change (a move, a cut from etcd).
const FAST_PING: Duration = Duration::from_millis(50);
/// How long a moved port may take to answer at its new host, from the write returning: the
/// fleet's one second, and half a second for measuring on a loaded machine.
const MOVE_LIMIT: Duration = Duration::from_millis(1500);
/// How long a host gets to notice that etcd went away, and to be back once it returns.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// The etcd tools and their Debian packages.
const ETCD_TOOLS: [(&str, &str); 2] = [("etcd", "etcd-server"), ("etcdctl", "etcd-client")];
/// Exit codes.
const EXIT_FAILED: u8 = 1;
const EXIT_UNABLE: u8 = 2;
const EXIT_INTERRUPTED: u8 = 130;

/// Why the demo stops early.
enum Stop {
    /// A step did not behave as expected: the reason.
    Failed(String),
    /// SIGINT or SIGTERM.
    Interrupted,
}

type Step<T> = Result<T, Stop>;

/// Set by SIGINT and SIGTERM; checked between steps.
struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    fn install() -> Result<Interrupt, String> {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&flag))
                .map_err(|e| format!("cannot install the signal handler: {e}"))?;
        }
        Ok(Interrupt(flag))
    }

    fn raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Interrupted)` once a signal came.
    fn check(&self) -> Step<()> {
        if self.raised() {
            Err(Stop::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// Runs `f`, turning a panic of the harness (a command that failed, a router that exited) into
/// a failure, or into an interruption when a signal came meanwhile (Ctrl-C reaches the
/// children too, and their end makes the harness panic).
fn guarded<T>(interrupt: &Interrupt, f: impl FnOnce() -> Step<T>) -> Step<T> {
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    if interrupt.raised() {
        return Err(Stop::Interrupted);
    }
    match outcome {
        Ok(r) => r,
        Err(payload) => Err(Stop::Failed(panic_text(payload.as_ref()))),
    }
}

fn panic_text(payload: &dyn Any) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// `Err(Failed(why))` unless `ok`.
fn expect(ok: bool, why: impl FnOnce() -> String) -> Step<()> {
    if ok {
        Ok(())
    } else {
        Err(Stop::Failed(why()))
    }
}

/// Every router's counters now (its control socket), in [`HOSTS`] order.
fn counters(cloud: &FleetCloud) -> Step<Vec<Snapshot>> {
    HOSTS
        .iter()
        .map(|h| cloud.router(h).try_stats())
        .collect::<Result<Vec<_>, _>>()
        .map_err(Stop::Failed)
}

/// `avg 0.123 ms` from ping's `rtt min/avg/max/mdev = ...` line.
fn rtt_avg(p: &PingResult) -> String {
    p.output
        .stdout
        .lines()
        .find_map(|l| l.split(" = ").nth(1).filter(|_| l.starts_with("rtt")))
        .and_then(|v| v.split('/').nth(1))
        .map_or_else(String::new, |avg| format!(", rtt avg {avg} ms"))
}

/// Pings `dst` from `from`, expecting every request answered.
fn ping_all(cloud: &FleetCloud, from: &InstanceDef, dst: Ipv4Addr) -> Step<PingResult> {
    println!(
        "   $ ip netns exec {} ping -c {PINGS} {dst}",
        cloud.instance(from).netns().name()
    );
    let p = cloud.instance(from).ping(dst, &PingOpts::count(PINGS));
    all_answered(p, &format!("echo requests from {} to {dst}", from.name))
}

/// Prints how many of `p`'s requests were answered; fails the step unless all were.
fn all_answered(p: PingResult, what: &str) -> Step<PingResult> {
    println!(
        "   {}/{} answered{}",
        p.received,
        p.transmitted,
        rtt_avg(&p)
    );
    expect(p.transmitted > 0 && p.received == p.transmitted, || {
        format!(
            "{what}: {} of {} answered\n{}",
            p.received, p.transmitted, p.output
        )
    })?;
    Ok(p)
}

/// A ping every [`FAST_PING`] for `span`, each reply within a second.
fn fast_pings(span: Duration) -> PingOpts {
    let count = (span.as_millis() / FAST_PING.as_millis()).max(1) as u32;
    PingOpts::count(count)
        .interval(FAST_PING)
        .timeout(Duration::from_secs(1))
}

/// The name of a MAC address in this topology, for the printed frames.
fn whose(mac: Mac) -> String {
    let text = mac.to_string();
    let hosts = HOSTS.iter().copied().chain([&SNAT_NODE]);
    let instances = FLEET_INSTANCES.iter().copied().chain([&SNAT_PORT]);
    let names = hosts
        .map(|h| (h.dvr_mac, format!("{} DVR MAC", h.name)))
        .chain(
            FLEET_NETWORKS
                .iter()
                .map(|n| (n.gateway_mac, format!("{} gateway", n.label))),
        )
        .chain(instances.map(|i| (i.mac, i.name.to_string())));
    match names.into_iter().find(|(m, _)| *m == text) {
        Some((_, name)) => format!("{text} ({name})"),
        None => text,
    }
}

fn network_of_vni(vni: u32) -> &'static str {
    NETWORKS
        .iter()
        .find(|n| n.vni == vni)
        .map_or("?", |n| n.label)
}

/// One VXLAN frame, as two lines: the outer headers, then the inner frame.
fn print_tunnelled(what: &str, t: &Tunnelled) {
    println!(
        "     {what:<8} outer {}:{} -> {}:{} UDP, VNI {} ({}), DF {}",
        t.src_vtep,
        t.src_port,
        t.dst_vtep,
        t.dst_port,
        t.vni,
        network_of_vni(t.vni),
        if t.dont_frag { "set" } else { "clear" }
    );
    if let (Some(eth), Some(ip)) = (ethernet_of(&t.inner), ipv4_of(&t.inner)) {
        println!(
            "              inner {} -> {}",
            whose(eth.src_addr()),
            whose(eth.dst_addr())
        );
        println!(
            "                    {} -> {} TTL {}",
            ip.src_addr(),
            ip.dst_addr(),
            ip.ttl()
        );
    }
}

/// Waits in `capture` (`place`: where it listens) for the VXLAN frames of one ping from `src`
/// to `dst`, prints one request and one reply, and checks that each crossed the fabric as
/// `walk` says (the request's way, then the reply's).
fn check_crossings(
    capture: &Capture,
    place: &str,
    (src, dst): (Ipv4Addr, Ipv4Addr),
    walk: [Crossing; 2],
) -> Step<()> {
    let legs = [
        ("request", Echo::request(src, dst)),
        ("reply", Echo::reply(dst, src)),
    ];
    for ((what, echo), want) in legs.into_iter().zip(walk) {
        let found = capture
            .wait_for(CAPTURE_WAIT, |f| {
                Tunnelled::parse(f).is_some_and(|t| echo.matches(&t.inner))
            })
            .and_then(|r| Tunnelled::parse(&r.data));
        let t = found.ok_or_else(|| Stop::Failed(format!("no VXLAN {what} {place}")))?;
        print_tunnelled(what, &t);
        expect(Crossing::of(&t) == Some(want), || {
            format!("the {what} crossed the fabric as {t:?}")
        })?;
    }
    Ok(())
}

/// Checks that the echo request `echo` reached instance `at` routed once: from the gateway
/// MAC of its network, TTL 63. Prints how it came, with `note`.
fn check_routed_arrival(
    frames: &[PcapRecord],
    echo: Echo,
    at: &InstanceDef,
    note: &str,
) -> Step<()> {
    let seen = frames
        .iter()
        .find(|r| echo.matches(&r.data))
        .and_then(|r| ethernet_of(&r.data).zip(ipv4_of(&r.data)));
    let Some((eth, ip)) = seen else {
        return Err(Stop::Failed(format!("no echo request seen at {}", at.name)));
    };
    let (src, ttl) = (eth.src_addr(), ip.ttl());
    println!("   at {}: from {}, TTL {ttl}{note}", at.name, whose(src));
    expect(src == at.network.gateway_mac() && ttl == TTL_ROUTED, || {
        format!("{} got the request from {src} with TTL {ttl}", at.name)
    })
}

/// True when [`FleetCloud::program`] writes a port for `def`.
fn has_port(def: &InstanceDef) -> bool {
    PROGRAMMED_PORTS.iter().any(|p| p.tag == def.tag)
}

fn print_topology(cloud: &FleetCloud) {
    println!("1. The topology");
    println!(
        "   underlay: a Linux bridge, 192.0.2.0/24, MTU {FABRIC_MTU}; VXLAN over UDP 4789 between VTEPs"
    );
    println!(
        "   management network: 198.18.0.0/24 apart from the fabric; etcd at {ETCD_MGMT_ADDR} (the hosts) and {} (dvrctl)",
        cloud.etcd().endpoint()
    );
    println!(
        "   {:<10} {:<12} {:<13} {:<18} instances (IP, MAC)",
        "host", "VTEP", "management", "DVR MAC"
    );
    for h in HOSTS.iter().copied().chain([&SNAT_NODE]) {
        let mut on: Vec<String> = FLEET_INSTANCES
            .iter()
            .chain([&&SNAT_PORT])
            .filter(|i| i.host.name == h.name)
            .map(|i| {
                let note = if has_port(i) { "" } else { " (no port)" };
                format!("{} {} {}{note}", i.name, i.ip, i.mac)
            })
            .collect();
        let (mgmt, kind) = if h.name == SNAT_NODE.name {
            on.push(format!("outside address {OUTSIDE}"));
            ("-".to_string(), " (kernel)")
        } else {
            (mgmt_addr(h).to_string(), "")
        };
        println!(
            "   {:<10} {:<12} {:<13} {:<18} {}{kind}",
            h.name,
            h.vtep.to_string(),
            mgmt,
            h.dvr_mac,
            on.join(", ")
        );
    }
    let itfs: Vec<String> = FLEET_NETWORKS
        .iter()
        .map(|n| {
            format!(
                "{} {} VNI {} gw {}",
                n.label,
                n.interface_address(),
                n.vni,
                n.gateway_mac
            )
        })
        .collect();
    let default = TENANT1.default_via.map_or_else(
        || "no default route".to_string(),
        |via| format!("default via {via} (SNAT port)"),
    );
    println!("   router {}: {}; {default}", TENANT1.name, itfs.join("; "));
    println!("   each host has one switch per network (a Linux bridge, its instances plugged in)");
    println!("   and one dvrd port on it; its dvrd file holds only local settings and [fleet]:");
    println!("   the DVR objects (peers, networks, router, ports) all come from etcd");
    println!("   MIG-C is MIG-B's twin on host-c (the same IP and MAC), for the live migration");
}

/// Step 2: every DVR object written with one `dvrctl --etcd apply`, every host at its revision.
fn program(cloud: &FleetCloud) -> Step<i64> {
    println!("2. Programming the fleet: every DVR object written once, in etcd");
    let commands = fleet_commands();
    let file = cloud.scope().file("fleet.dvrctl");
    std::fs::write(&file, &commands)
        .map_err(|e| Stop::Failed(format!("cannot write {}: {e}", file.display())))?;
    println!("   {}:", file.display());
    for line in commands.lines().filter(|l| !l.starts_with('#')) {
        println!("     {line}");
    }
    println!(
        "   $ dvrctl --etcd {} apply {}",
        cloud.etcd().endpoint(),
        file.display()
    );
    let written = Instant::now();
    let out = cloud.dvrctl(&["apply", &file.to_string_lossy()]);
    for line in out.stdout.lines() {
        println!("   {line}");
    }
    expect(out.success(), || format!("dvrctl apply failed: {out}"))?;
    let rev = cloud
        .etcd()
        .mod_revision(&default_route_key())
        .ok_or_else(|| Stop::Failed(format!("dvrctl apply wrote no {}", default_route_key())))?;
    println!(
        "   one transaction: {} records at store revision {rev}",
        commands.lines().filter(|l| !l.starts_with('#')).count()
    );
    cloud.wait_converged(rev, CONVERGE_TIMEOUT);
    println!(
        "   every host applied revision {rev} {:.0} ms after the write",
        written.elapsed().as_secs_f64() * 1e3
    );
    print_fleet_status(cloud)?;
    println!("   (snat-node runs no dvrd: it is a peer of the others, with no status of its own)");
    println!(
        "   $ dvrctl -s {} stats | grep fleet",
        cloud.router(&HOST_A).control_socket().display()
    );
    print_fleet_line(cloud, &HOST_A, |l| {
        l.starts_with("fleet: connected at revision")
    })?;
    // Each host resolves its peers' VTEPs once; what follows waits for none of it.
    cloud.warm_paths();
    Ok(rev)
}

/// Prints `dvrctl --etcd ... fleet status`.
fn print_fleet_status(cloud: &FleetCloud) -> Step<()> {
    println!(
        "   $ dvrctl --etcd {} fleet status",
        cloud.etcd().endpoint()
    );
    let out = cloud.dvrctl(&["fleet", "status"]);
    for line in out.stdout.lines() {
        println!("     {line}");
    }
    expect(out.success(), || {
        format!("dvrctl fleet status failed: {out}")
    })
}

/// Prints the `fleet:` line of `dvrctl stats` on `host`; fails unless `want` accepts it.
fn print_fleet_line(cloud: &FleetCloud, host: &HostDef, want: impl Fn(&str) -> bool) -> Step<()> {
    let stats = cloud.host_ctl(host).ok("stats");
    let line = stats
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("fleet:"))
        .ok_or_else(|| Stop::Failed(format!("no fleet line in {}'s stats:\n{stats}", host.name)))?;
    println!("     {line}");
    expect(want(line), || format!("{}'s stats say `{line}`", host.name))
}

/// Step 3: BLUE-A pings its gateway; host A answers, nothing crosses the fabric.
fn gateway_ping(cloud: &FleetCloud) -> Step<()> {
    println!(
        "3. BLUE-A pings its gateway {} (answered by host-a itself)",
        BLUE.gateway
    );
    let before = counters(cloud)?;
    ping_all(cloud, &BLUE_A, BLUE.gateway)?;
    let d = deltas(&before, &counters(cloud)?);
    let neighbor = cloud.instance(&BLUE_A).neighbor(BLUE.gateway);
    println!(
        "   BLUE-A's neighbour table: {} at {}",
        BLUE.gateway,
        neighbor.map_or("?".to_string(), whose)
    );
    expect(neighbor == Some(BLUE.gateway_mac()), || {
        format!("BLUE-A resolved its gateway to {neighbor:?}, not BLUE's gateway MAC")
    })?;
    let answered: Vec<String> = HOSTS
        .iter()
        .zip(&d)
        .map(|(h, s)| {
            let echo = s.punts.get("local_delivery").copied().unwrap_or(0);
            format!("{} {echo}", h.name)
        })
        .collect();
    println!(
        "   echo requests answered by each router's control thread: {}",
        answered.join(", ")
    );
    let echo_at = |i: usize| d[i].punts.get("local_delivery").copied().unwrap_or(0);
    expect(
        echo_at(0) >= u64::from(PINGS) && echo_at(1) + echo_at(2) == 0,
        || {
            format!(
                "the echo requests were answered by: {}",
                answered.join(", ")
            )
        },
    )?;
    fabric_silent(&d, "the gateway's ARP and echo replies")
}

/// Fails unless no host's fabric port moved.
fn fabric_silent(d: &[Snapshot], what: &str) -> Step<()> {
    let moved = fabric_movement(d);
    println!(
        "   fabric ports: {}",
        if moved.is_empty() {
            "no packet in or out on any host".to_string()
        } else {
            moved.join(", ")
        }
    );
    expect(moved.is_empty(), || {
        format!("{what} crossed the fabric: {}", moved.join(", "))
    })
}

/// Step 4: BLUE-A pings RED-A, on the same host: routed there, nothing on the fabric.
fn local_ping(cloud: &FleetCloud) -> Step<Vec<Snapshot>> {
    println!(
        "4. BLUE-A pings RED-A {} (both on host-a: routed there)",
        RED_A.ip
    );
    let at_red = cloud.instance(&RED_A).capture("icmp");
    let before = counters(cloud)?;
    ping_all(cloud, &BLUE_A, RED_A.ip)?;
    let after = counters(cloud)?;
    let d = deltas(&before, &after);
    let request = Echo::request(BLUE_A.ip, RED_A.ip);
    check_routed_arrival(&at_red.stop(), request, &RED_A, "")?;
    fabric_silent(&d, "local traffic")?;
    let (routed_local, _, _) = walk_of(&d, &HOST_A);
    expect(routed_local >= u64::from(2 * PINGS), || {
        format!(
            "host-a counted {routed_local} packets routed here, expected the {} requests and replies",
            2 * PINGS
        )
    })?;
    Ok([before, after].concat())
}

/// Step 5: BLUE-A pings RED-B on host B: routed on host A, VXLAN with host A's DVR MAC,
/// delivered on host B; the reply is routed on host B.
fn remote_ping(cloud: &FleetCloud) -> Step<Vec<Snapshot>> {
    println!(
        "5. BLUE-A pings RED-B {} (on host-b: routed on host-a, bridged on host-b)",
        RED_B.ip
    );
    let on_fabric = cloud.fabric().capture("udp port 4789");
    let at_red = cloud.instance(&RED_B).capture("icmp");
    let before = counters(cloud)?;
    ping_all(cloud, &BLUE_A, RED_B.ip)?;
    let after = counters(cloud)?;
    println!("   on the fabric (tcpdump on the underlay bridge), one of each:");
    let walk = [
        Crossing::routed(&HOST_A, &RED_B),
        Crossing::routed(&HOST_B, &BLUE_A),
    ];
    check_crossings(&on_fabric, "on the fabric", (BLUE_A.ip, RED_B.ip), walk)?;
    drop(on_fabric);
    let note = " (routed once, on host-a)";
    let request = Echo::request(BLUE_A.ip, RED_B.ip);
    check_routed_arrival(&at_red.stop(), request, &RED_B, note)?;
    Ok([before, after].concat())
}

/// Step 6: BLUE-A pings an outside address: routed on host A straight to the SNAT node.
fn outside_ping(cloud: &FleetCloud) -> Step<()> {
    println!(
        "6. BLUE-A pings {OUTSIDE}, outside every tenant subnet (default route: the SNAT node)"
    );
    let on_snat = Capture::start(
        cloud.scope(),
        Some(cloud.snat_node()),
        SNAT_UNDERLAY_IF,
        "udp port 4789",
    );
    ping_all(cloud, &BLUE_A, OUTSIDE)?;
    println!("   at the SNAT node's underlay interface:");
    // The SNAT node stands for the network node and the world behind it: it answers, on BLUE,
    // straight to BLUE-A's host.
    let walk = [
        Crossing::routed(&HOST_A, &SNAT_PORT),
        Crossing::bridged(&SNAT_PORT, &BLUE_A),
    ];
    check_crossings(&on_snat, "at the SNAT node", (BLUE_A.ip, OUTSIDE), walk)?;
    println!("   (the reply is bridged on BLUE from the SNAT port to BLUE-A: not routed again)");
    Ok(())
}

fn walk_table(title: &str, d: &[Snapshot]) {
    println!("   {title}");
    println!(
        "     {:<8} {:>11} {:>15} {:>20} {:>10} {:>10}",
        "", "routed here", "routed to peers", "delivered from peers", "fabric tx", "fabric rx"
    );
    for h in HOSTS {
        let (here, to_peers, from_peers) = walk_of(d, h);
        let f = port_stats(&d[host_index(h)], FABRIC_PORT);
        let (tx, rx) = (f.tx_packets, f.rx_packets);
        println!(
            "     {:<8} {here:>11} {to_peers:>15} {from_peers:>20} {tx:>10} {rx:>10}",
            h.name
        );
    }
}

/// Step 7: the packet walk of steps 4 and 5 from the routers' own counters.
fn packet_walk(local: &[Snapshot], remote: &[Snapshot]) -> Step<()> {
    println!("7. The packet walk, from the routers' own counters (router tenant1; stats.show on");
    println!("   each router's control socket, what `dvrctl --json stats` prints)");
    let n = HOSTS.len();
    let local = deltas(&local[..n], &local[n..]);
    let remote = deltas(&remote[..n], &remote[n..]);
    walk_table(&format!("step 4, BLUE-A -> RED-A, {PINGS} pings:"), &local);
    println!("     => host-a routed the requests and the replies; no fabric packet anywhere");
    walk_table(&format!("step 5, BLUE-A -> RED-B, {PINGS} pings:"), &remote);
    println!("     => host-a routed the requests to its peer and delivered the replies; host-b");
    println!("        delivered the requests and routed the replies; host-c saw none of it");
    let p = u64::from(PINGS);
    let walks = walks(&remote);
    expect(walks == [(0, p, p), (0, p, p), (0, 0, 0)], || {
        format!("the counters do not tell the DVR walk: {walks:?}")
    })
}

/// When each echo request of `echo` in `frames` was captured (Unix time).
fn times_of(frames: &[PcapRecord], echo: Echo) -> Vec<f64> {
    frames
        .iter()
        .filter(|r| echo.matches(&r.data))
        .map(|r| r.time_ns as f64 / 1e9)
        .collect()
}

fn ms(seconds: f64) -> String {
    format!("{:.0} ms", seconds * 1e3)
}

/// Step 8: MIG runs on host B; its port moves to host C with one write to etcd while BLUE-A
/// pings it every 50 ms. It answers at host C within [`MOVE_LIMIT`], and host B's copy gets
/// nothing more.
fn live_migration(cloud: &FleetCloud) -> Step<()> {
    println!(
        "8. Live migration: MIG ({}, {}) runs on host-b; its port moves to host-c",
        MIG_B.ip, MIG_B.mac
    );
    let request = Echo::request(BLUE_A.ip, MIG_B.ip);
    let (at_b, at_c) = (
        cloud.instance(&MIG_B).capture("icmp"),
        cloud.instance(&MIG_C).capture("icmp"),
    );
    ping_all(cloud, &BLUE_A, MIG_B.ip)?;
    let before = at_b.wait_for_count(PINGS as usize, CAPTURE_WAIT, |f| request.matches(f));
    println!(
        "   MIG-B on host-b got {} of the {PINGS} requests (routed on host-a, to host-b's VTEP)",
        before.len()
    );
    expect(before.len() == PINGS as usize, || {
        format!(
            "MIG-B got {} of {PINGS} requests before the move",
            before.len()
        )
    })?;

    // A ping every 50 ms through the move: before it MIG-B answers, after it MIG-C.
    let span = Duration::from_secs(1) + MOVE_LIMIT * 2;
    println!(
        "   BLUE-A pings MIG every {} ms meanwhile; the move, 1 s in:",
        FAST_PING.as_millis()
    );
    let ping = BackgroundPing::start(
        cloud.instance(&BLUE_A).netns(),
        "ping-mig",
        MIG_B.ip,
        &fast_pings(span),
    );
    std::thread::sleep(Duration::from_secs(1));
    let line = format!("{} replace", port_add(&MIG_B, &HOST_C));
    println!("   $ dvrctl --etcd {} {line}", cloud.etcd().endpoint());
    let out = cloud.dvrctl(&line.split_whitespace().collect::<Vec<_>>());
    let moved = unix_now();
    for l in out.stdout.lines() {
        println!("   {l}");
    }
    expect(out.success(), || format!("dvrctl {line} failed: {out}"))?;
    let rev = cloud
        .etcd()
        .mod_revision(&port_key(&MIG_B))
        .ok_or_else(|| Stop::Failed(format!("no {} in etcd", port_key(&MIG_B))))?;
    println!("   written at store revision {rev}");
    let seen = ping.finish();
    let (b_times, c_times) = (
        times_of(&at_b.stop(), request),
        times_of(&at_c.stop(), request),
    );
    let first_at_c = c_times.iter().copied().fold(f64::INFINITY, f64::min);
    expect(first_at_c.is_finite(), || {
        format!(
            "no echo request reached MIG on host-c after the move\n{}",
            seen.result.output
        )
    })?;
    expect(first_at_c >= moved - 0.05, || {
        "MIG-C got requests before the move".to_string()
    })?;
    let first_reply_c = seen.replies.iter().map(|r| r.1).find(|t| *t >= first_at_c);
    let last_at_b = b_times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    println!(
        "   first request at MIG-C (host-c): {} after the write returned; answered {}",
        ms(first_at_c - moved),
        first_reply_c.map_or_else(
            || "never".to_string(),
            |t| format!("{} after it", ms(t - moved))
        )
    );
    println!(
        "   MIG-B (host-b): {} requests, the last {} {} the write",
        b_times.len(),
        ms((last_at_b - moved).abs()),
        if last_at_b < moved { "before" } else { "after" }
    );
    println!(
        "   the fast ping: {} of {} answered, {} lost around the move",
        seen.result.received,
        seen.result.transmitted,
        seen.lost()
    );
    let took = Duration::from_secs_f64((first_at_c - moved).max(0.0));
    expect(took < MOVE_LIMIT, || {
        format!("MIG answered at host-c {took:?} after the write, more than {MOVE_LIMIT:?}")
    })?;
    expect(first_reply_c.is_some(), || {
        format!("MIG-C never answered:\n{}", seen.result.output)
    })?;
    // A request in flight at the switch may land a few milliseconds after host C got its first.
    let late = b_times.iter().filter(|t| **t > first_at_c + 0.1).count();
    expect(late == 0, || {
        format!("{late} requests reached MIG on host-b after host-c got its first")
    })?;

    println!("   and now, with the port on host-c:");
    let (at_b, at_c) = (
        cloud.instance(&MIG_B).capture("icmp"),
        cloud.instance(&MIG_C).capture("icmp"),
    );
    ping_all(cloud, &BLUE_A, MIG_B.ip)?;
    let to_c = at_c.wait_for_count(PINGS as usize, CAPTURE_WAIT, |f| request.matches(f));
    let to_b = times_of(&at_b.stop(), request);
    println!(
        "   requests at MIG-C (host-c) {}, at MIG-B (host-b) {}",
        to_c.len(),
        to_b.len()
    );
    expect(to_c.len() == PINGS as usize && to_b.is_empty(), || {
        format!(
            "after the move {} requests reached host-c and {} host-b",
            to_c.len(),
            to_b.len()
        )
    })?;
    drop(at_c);
    cloud.wait_converged(rev, CONVERGE_TIMEOUT);
    print_fleet_status(cloud)
}

/// Step 9: host A loses etcd (its management link goes down) and keeps forwarding from what
/// it applied; a port written meanwhile reaches it once it is back.
fn cut_from_etcd(cloud: &FleetCloud) -> Step<()> {
    println!("9. host-a cut from etcd: forwarding does not need the store");
    println!(
        "   $ ip netns exec {} ip link set dev {MGMT_IF} down",
        cloud.host_netns(&HOST_A).name()
    );
    let cut = Instant::now();
    cloud.cut_from_etcd(&HOST_A);
    cloud.wait_local_fleet(&HOST_A, "disconnected", RECONNECT_TIMEOUT, |f| {
        f["state"] == "disconnected"
    });
    println!(
        "   host-a noticed in {:.1} s; $ dvrctl -s {} stats | grep fleet",
        cut.elapsed().as_secs_f64(),
        cloud.router(&HOST_A).control_socket().display()
    );
    print_fleet_line(cloud, &HOST_A, |l| {
        l.starts_with("fleet: disconnected since")
    })?;

    let span = Duration::from_secs(2);
    println!(
        "   $ ip netns exec {} ping -c {} -i {} {} (across hosts, {} s)",
        cloud.instance(&BLUE_A).netns().name(),
        fast_pings(span).count,
        FAST_PING.as_secs_f64(),
        RED_B.ip,
        span.as_secs()
    );
    let p = cloud.instance(&BLUE_A).ping(RED_B.ip, &fast_pings(span));
    all_answered(p, "BLUE-A -> RED-B with host-a cut from etcd")?;

    // A port written while host A is away: host B applies it now, host A once it is back.
    let line = port_add(&NEW_B, &HOST_B);
    println!("   meanwhile the operator adds a port on host-b:");
    println!("   $ dvrctl --etcd {} {line}", cloud.etcd().endpoint());
    cloud.dvrctl_ok(&line);
    let rev = cloud
        .etcd()
        .mod_revision(&port_key(&NEW_B))
        .ok_or_else(|| Stop::Failed(format!("no {} in etcd", port_key(&NEW_B))))?;
    let peers = [&HOST_B, &HOST_C];
    let written = Instant::now();
    let status = poll(CONVERGE_TIMEOUT, || {
        let status = cloud.fleet_status();
        peers
            .iter()
            .all(|h| has_applied(&status, h, rev))
            .then_some(status)
    });
    let Some(status) = status else {
        return Err(Stop::Failed(format!(
            "host-b and host-c did not apply revision {rev} within {CONVERGE_TIMEOUT:?}"
        )));
    };
    println!(
        "   revision {rev}: host-b and host-c applied it within {:.0} ms; host-a cannot know yet",
        written.elapsed().as_secs_f64() * 1e3
    );
    print_fleet_status(cloud)?;
    let behind =
        host_status(&status, &HOST_A).map_or(Value::Null, |h| h["applied_revision"].clone());
    println!(
        "   (host-a's status outlives a short cut, under its lease; it forwards on revision {behind})"
    );
    println!(
        "   $ ip netns exec {} ip link set dev {MGMT_IF} up",
        cloud.host_netns(&HOST_A).name()
    );
    let back = Instant::now();
    cloud.reconnect_to_etcd(&HOST_A);
    cloud.wait_local_fleet(&HOST_A, "connected", RECONNECT_TIMEOUT, |f| {
        f["state"] == "connected" && f["applied_revision"].as_i64().is_some_and(|a| a >= rev)
    });
    println!(
        "   host-a is back and caught up to revision {rev} in {:.1} s:",
        back.elapsed().as_secs_f64()
    );
    print_fleet_line(cloud, &HOST_A, |l| {
        l.starts_with("fleet: connected at revision")
    })?;
    println!("   the new port answers host-a's instances (RED-A -> NEW-B, routed on host-a):");
    ping_all(cloud, &RED_A, NEW_B.ip)?;
    cloud.wait_converged(rev, CONVERGE_TIMEOUT);
    print_fleet_status(cloud)
}

/// Step 10: stops the routers and prints the summary each printed at exit.
fn summaries(cloud: &mut FleetCloud) -> Step<()> {
    println!("10. Each router's summary at exit (SIGTERM; what dvrd prints when it stops)");
    let mut problems = Vec::new();
    for (h, exit) in HOSTS.iter().zip(cloud.stop()) {
        println!("   --- {} ---", h.name);
        for line in exit.stdout.lines() {
            println!("   {line}");
        }
        if exit.killed || exit.code != Some(0) {
            problems.push(format!(
                "{} did not stop cleanly (exit code {:?}, killed {}): {}",
                h.name,
                exit.code,
                exit.killed,
                exit.stderr.lines().last().unwrap_or("")
            ));
        }
    }
    expect(problems.is_empty(), || problems.join("; "))
}

/// The steps after the cloud is up, in order; returns at the first failure.
fn walk_through(cloud: &mut FleetCloud, interrupt: &Interrupt) -> Step<()> {
    print_topology(cloud);
    println!();
    interrupt.check()?;
    guarded(interrupt, || program(cloud).map(drop)).map_err(|e| at_step(2, e))?;
    println!();
    interrupt.check()?;
    guarded(interrupt, || gateway_ping(cloud)).map_err(|e| at_step(3, e))?;
    println!();
    interrupt.check()?;
    let local = guarded(interrupt, || local_ping(cloud)).map_err(|e| at_step(4, e))?;
    println!();
    interrupt.check()?;
    let remote = guarded(interrupt, || remote_ping(cloud)).map_err(|e| at_step(5, e))?;
    println!();
    interrupt.check()?;
    guarded(interrupt, || outside_ping(cloud)).map_err(|e| at_step(6, e))?;
    println!();
    interrupt.check()?;
    guarded(interrupt, || packet_walk(&local, &remote)).map_err(|e| at_step(7, e))?;
    println!();
    interrupt.check()?;
    guarded(interrupt, || live_migration(cloud)).map_err(|e| at_step(8, e))?;
    println!();
    interrupt.check()?;
    guarded(interrupt, || cut_from_etcd(cloud)).map_err(|e| at_step(9, e))?;
    println!();
    interrupt.check()?;
    guarded(interrupt, || summaries(cloud)).map_err(|e| at_step(10, e))
}

/// Names the step in a failure.
fn at_step(step: u32, stop: Stop) -> Stop {
    match stop {
        Stop::Failed(why) => Stop::Failed(format!("step {step}: {why}")),
        Stop::Interrupted => Stop::Interrupted,
    }
}

/// Why this machine cannot run the demo: the environment, etcd, the binaries.
fn unable() -> Vec<String> {
    let mut problems = environment_problems();
    for (tool, package) in ETCD_TOOLS {
        if which(tool).is_none() {
            problems.push(format!(
                "`{tool}` is not on PATH (Debian package {package})"
            ));
        }
    }
    for binary in ["dvrd", "dvrctl"] {
        let path = sibling_binary(binary);
        if !path.is_file() {
            problems.push(format!(
                "no {binary} at {}: build them with `make build` (cargo build --release --workspace --bins)",
                path.display()
            ));
        }
    }
    problems
}

fn main() -> ExitCode {
    let problems = unable();
    if !problems.is_empty() {
        eprintln!("dvr-demo cannot run here:");
        for p in &problems {
            eprintln!("  - {p}");
        }
        eprintln!("Install what is missing with `sudo scripts/install-deps.sh` (or `make demo`).");
        return ExitCode::from(EXIT_UNABLE);
    }
    let interrupt = match Interrupt::install() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("dvr-demo: {e}");
            return ExitCode::from(EXIT_UNABLE);
        }
    };
    // The harness reports trouble by panicking; the demo turns each panic into a step's failure
    // and prints it itself.
    panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();

    let outcome = guarded(&interrupt, || Ok(Scope::demo(NAME))).and_then(|scope| {
        println!("dvr-demo: per-host distributed virtual routing on a fleet programmed through etcd");
        println!(
            "   names start with `{}` (namespaces, links, DPDK files); logs in {}",
            scope.prefix(),
            scope.dir().display()
        );
        println!(
            "   building: etcd, 3 hosts (one dvrd each, [fleet] only), 9 instances, a SNAT node, the underlay ..."
        );
        let build_started = Instant::now();
        let mut cloud =
            guarded(&interrupt, || Ok(FleetCloud::build(&scope))).map_err(|e| at_step(1, e))?;
        println!(
            "   etcd and the three routers are up, nothing programmed yet ({:.1} s)\n",
            build_started.elapsed().as_secs_f64()
        );
        let result = walk_through(&mut cloud, &interrupt);
        println!("\nremoving the namespaces, links and processes it created ...");
        let cleanup = guarded(&interrupt, || {
            drop(cloud);
            Ok(())
        });
        drop(scope);
        result.and(cleanup)
    });

    match outcome {
        Ok(()) => {
            println!(
                "done: every step behaved as expected ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(Stop::Interrupted) => {
            println!("interrupted: everything the demo created is removed");
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(Stop::Failed(why)) => {
            println!("FAILED: {why}");
            println!("(everything the demo created is removed; its logs stay in /tmp/dvr-demo)");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
