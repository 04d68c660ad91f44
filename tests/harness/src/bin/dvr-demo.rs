//! `dvr-demo`: per-host distributed virtual routing, live, on this machine (`make demo`).
//!
//! It builds a small cloud out of network namespaces: three hosts, each running its own `dvrd`
//! with its instances behind `net_af_packet` ports, a Linux bridge as the underlay between the
//! hosts' fabric ports, and a centralised SNAT node (a kernel namespace with a Linux vxlan
//! device). The topology is the one the end-to-end tests use (`dvr_harness::dvr`). Then it
//! walks through what a distributed router does, checking each step as it goes, prints the
//! packet walk from the routers' own counters (read through their control sockets, as
//! `dvrctl stats` does) and each router's exit summary, and removes everything it created:
//! at the end, on a failure, and on Ctrl-C (SIGINT) or SIGTERM.
//!
//! Exit status: 0 when every step behaved as expected, 1 when one did not (the step and the
//! reason are printed), 2 when the machine cannot run it (not root, a tool or `dvrd` missing),
//! 130 when interrupted.
#![forbid(unsafe_code)]

use std::any::Any;
use std::net::Ipv4Addr;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dvr_harness::checks::{Echo, TTL_ROUTED};
use dvr_harness::cmd::environment_problems;
use dvr_harness::dvr::{
    deltas, fabric_movement, host_index, port_stats, walk_of, walks, Cloud, Crossing, InstanceDef,
    NetworkDef, BLUE, BLUE_A, FABRIC_MTU, FABRIC_PORT, HOSTS, HOST_A, HOST_B, INSTANCES, NETWORKS,
    OUTSIDE, RED_A, RED_B, ROUTERS, SNAT_NODE, SNAT_PORT, SNAT_UNDERLAY_IF,
};
use dvr_harness::frames::{ethernet_of, ipv4_of, Tunnelled};
use dvr_harness::pcap::PcapRecord;
use dvr_harness::test_scope::sibling_binary;
use dvr_harness::{Capture, Mac, PingOpts, PingResult, Scope};
use dvr_router::stats::Snapshot;

/// The demo's name: its namespaces and links start with `dvd` and four hex digits of its hash.
const NAME: &str = "dvr-demo";
/// Echo requests per step.
const PINGS: u32 = 5;
/// How long a capture waits for a frame the step expects.
const CAPTURE_WAIT: Duration = Duration::from_secs(5);
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

fn counters(cloud: &Cloud) -> Step<Vec<Snapshot>> {
    cloud.try_stats().map_err(Stop::Failed)
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
fn ping_all(cloud: &Cloud, from: &InstanceDef, dst: Ipv4Addr) -> Step<PingResult> {
    println!(
        "   $ ip netns exec {} ping -c {PINGS} {dst}",
        cloud.instance(from).netns().name()
    );
    let p = cloud.instance(from).ping(dst, &PingOpts::count(PINGS));
    println!(
        "   {}/{} answered{}",
        p.received,
        p.transmitted,
        rtt_avg(&p)
    );
    expect(p.transmitted > 0 && p.received == p.transmitted, || {
        format!(
            "{} of {} echo requests from {} to {dst} answered\n{}",
            p.received, p.transmitted, from.name, p.output
        )
    })?;
    Ok(p)
}

/// The name of a MAC address in this topology, for the printed frames.
fn whose(mac: Mac) -> String {
    let text = mac.to_string();
    let hosts = HOSTS.iter().copied().chain([&SNAT_NODE]);
    let instances = INSTANCES.iter().copied().chain([&SNAT_PORT]);
    let names = hosts
        .map(|h| (h.dvr_mac, format!("{} DVR MAC", h.name)))
        .chain(
            NETWORKS
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

fn print_topology() {
    println!("1. The topology");
    println!(
        "   underlay: a Linux bridge, 192.0.2.0/24, MTU {FABRIC_MTU}; VXLAN over UDP 4789 between VTEPs"
    );
    println!(
        "   {:<10} {:<12} {:<18} instances (namespace, IP, MAC)",
        "host", "VTEP", "DVR MAC"
    );
    for h in HOSTS.iter().copied().chain([&SNAT_NODE]) {
        let mut on: Vec<String> = INSTANCES
            .iter()
            .chain([&&SNAT_PORT])
            .filter(|i| i.host.name == h.name)
            .map(|i| format!("{} {} {}", i.name, i.ip, i.mac))
            .collect();
        if h.name == SNAT_NODE.name {
            on.push(format!("outside address {OUTSIDE}"));
        }
        let kind = if h.name == SNAT_NODE.name {
            " (kernel)"
        } else {
            ""
        };
        println!(
            "   {:<10} {:<12} {:<18} {}{kind}",
            h.name,
            h.vtep.to_string(),
            h.dvr_mac,
            on.join(", ")
        );
    }
    println!("   routers: the same gateway IP and MAC on every host");
    for r in ROUTERS {
        let itfs: Vec<String> = NETWORKS
            .iter()
            .filter(|n| n.router.name == r.name)
            .map(|n: &&NetworkDef| {
                format!(
                    "{} {} VNI {} gw {}",
                    n.label,
                    n.interface_address(),
                    n.vni,
                    n.gateway_mac
                )
            })
            .collect();
        let default = r.default_via.map_or_else(
            || "no default route".to_string(),
            |via| format!("default via {via} (SNAT port)"),
        );
        println!("   {:<8} {}; {default}", r.name, itfs.join("; "));
    }
    println!(
        "   every host knows every peer (DVR MAC, VTEP) and every instance port (IP, MAC, host)"
    );
}

/// Step 2: BLUE-A pings its gateway; host A answers, nothing crosses the fabric.
fn gateway_ping(cloud: &Cloud) -> Step<()> {
    println!(
        "2. BLUE-A pings its gateway {} (answered by host-a itself)",
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

/// Step 3: BLUE-A pings RED-A, on the same host: routed there, nothing on the fabric.
fn local_ping(cloud: &Cloud) -> Step<Vec<Snapshot>> {
    println!(
        "3. BLUE-A pings RED-A {} (both on host-a: routed there)",
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

/// Step 4: BLUE-A pings RED-B on host B: routed on host A, VXLAN with host A's DVR MAC,
/// delivered on host B; the reply is routed on host B.
fn remote_ping(cloud: &Cloud) -> Step<Vec<Snapshot>> {
    println!(
        "4. BLUE-A pings RED-B {} (on host-b: routed on host-a, bridged on host-b)",
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

/// Step 5: BLUE-A pings an outside address: routed on host A straight to the SNAT node.
fn outside_ping(cloud: &Cloud) -> Step<()> {
    println!(
        "5. BLUE-A pings {OUTSIDE}, outside every tenant subnet (default route: the SNAT node)"
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

/// Step 6: the packet walk of steps 3 and 4 from the routers' own counters.
fn packet_walk(local: &[Snapshot], remote: &[Snapshot]) -> Step<()> {
    println!("6. The packet walk, from the routers' own counters (router tenant1; stats.show on");
    println!("   each router's control socket, what `dvrctl --json stats` prints)");
    let n = HOSTS.len();
    let local = deltas(&local[..n], &local[n..]);
    let remote = deltas(&remote[..n], &remote[n..]);
    walk_table(&format!("step 3, BLUE-A -> RED-A, {PINGS} pings:"), &local);
    println!("     => host-a routed the requests and the replies; no fabric packet anywhere");
    walk_table(&format!("step 4, BLUE-A -> RED-B, {PINGS} pings:"), &remote);
    println!("     => host-a routed the requests to its peer and delivered the replies; host-b");
    println!("        delivered the requests and routed the replies; host-c saw none of it");
    println!("        (fabric counts include the ARP that resolved the peer's VTEP)");
    let p = u64::from(PINGS);
    let walks = walks(&remote);
    expect(walks == [(0, p, p), (0, p, p), (0, 0, 0)], || {
        format!("the counters do not tell the DVR walk: {walks:?}")
    })
}

/// Step 7: stops the routers and prints the summary each printed at exit.
fn summaries(cloud: &mut Cloud) -> Step<()> {
    println!("7. Each router's summary at exit (SIGTERM; what dvrd prints when it stops)");
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
fn walk_through(cloud: &mut Cloud, interrupt: &Interrupt) -> Step<()> {
    print_topology();
    println!();
    interrupt.check()?;
    guarded(interrupt, || gateway_ping(cloud)).map_err(|e| at_step(2, e))?;
    println!();
    interrupt.check()?;
    let local = guarded(interrupt, || local_ping(cloud)).map_err(|e| at_step(3, e))?;
    println!();
    interrupt.check()?;
    let remote = guarded(interrupt, || remote_ping(cloud)).map_err(|e| at_step(4, e))?;
    println!();
    interrupt.check()?;
    guarded(interrupt, || outside_ping(cloud)).map_err(|e| at_step(5, e))?;
    println!();
    interrupt.check()?;
    guarded(interrupt, || packet_walk(&local, &remote)).map_err(|e| at_step(6, e))?;
    println!();
    interrupt.check()?;
    guarded(interrupt, || summaries(cloud)).map_err(|e| at_step(7, e))
}

/// Names the step in a failure.
fn at_step(step: u32, stop: Stop) -> Stop {
    match stop {
        Stop::Failed(why) => Stop::Failed(format!("step {step}: {why}")),
        Stop::Interrupted => Stop::Interrupted,
    }
}

fn main() -> ExitCode {
    let problems = environment_problems();
    if !problems.is_empty() {
        eprintln!("dvr-demo cannot run here:");
        for p in &problems {
            eprintln!("  - {p}");
        }
        eprintln!("Install what is missing with `sudo scripts/install-deps.sh` (or `make demo`).");
        return ExitCode::from(EXIT_UNABLE);
    }
    let dvrd = sibling_binary("dvrd");
    if !dvrd.is_file() {
        eprintln!(
            "dvr-demo: no dvrd at {}: build both with `make build` (cargo build --release --workspace --bins)",
            dvrd.display()
        );
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
        println!("dvr-demo: per-host distributed virtual routing, live on this machine");
        println!(
            "   names start with `{}` (namespaces, links, DPDK files); logs in {}",
            scope.prefix(),
            scope.dir().display()
        );
        println!(
            "   building: 3 hosts (one dvrd each), 6 instances, a SNAT node, the underlay ..."
        );
        let build_started = Instant::now();
        let mut cloud =
            guarded(&interrupt, || Ok(Cloud::build(&scope))).map_err(|e| at_step(1, e))?;
        println!(
            "   the three routers are up ({:.1} s)\n",
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
