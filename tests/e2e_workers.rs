//! Two workers, end to end: the real `dvrd` with a worker on each of two CPUs, both receiving
//! from both ports, routing between BLUE (10.0.1.5/24) and RED (10.0.2.7/24) through
//! `net_af_packet` devices on veths. The device strings name no `qpairs`: dvrd gives each one
//! queue pair per worker, and the kernel's fanout hashes every flow to one of the two sockets,
//! that is to one worker. What an operator checks after turning on a second worker: the flows
//! are spread over both, none is reordered, the counters add up, and ping and TCP still work.
//!
//! Run as root: `cargo test --release --test e2e_workers -- --test-threads=1`.

use std::ffi::OsStr;
use std::time::Duration;

use dvr_harness::dvr::{BLUE, BLUE_A, RED, RED_A};
use dvr_harness::dvrd::run_to_exit;
use dvr_harness::flows::{send_flows, FlowLoad, FlowReport};
use dvr_harness::one_host::{instances, routed_config};
use dvr_harness::tools::assert_tcp_copy_intact;
use dvr_harness::{scope, Dvrd, Instance, PingOpts, Scope};
use dvr_router::stats::{PortStatsView, Snapshot, WorkerView};

/// The second worker's CPU; the harness puts the first on CPU 1 (and the control thread on
/// CPU 0). Both idle adaptively, so that the two share two CPUs with the tools.
const SECOND_WORKER_CORE: usize = 0;

/// 64 flows of 1,000 datagrams, paced at about 25,000 datagrams a second: well below what
/// the af_packet rings can hold during a stall of the shared CPUs, because a full socket ring
/// rolls a flow over to the other socket (`PACKET_FANOUT_FLAG_ROLLOVER`, set by the PMD) and
/// that would reorder it.
const LOAD: FlowLoad = FlowLoad {
    flows: 64,
    rounds: 1_000,
    payload_bytes: 64,
    pause: Duration::from_millis(2),
};

/// The UDP port the flow receiver listens on.
const FLOW_PORT: u16 = 7000;

/// Packets that are not the flows' but may cross the counters during the phase: ARP probes
/// of the kernels' neighbour entries and their answers.
const NOISE_MAX: u64 = 16;

/// Each worker receives at least this share of the flows' datagrams: with 64 flows hashed
/// over two sockets, a smaller share is all but impossible unless the hash is not per flow.
const SHARE_MIN: f64 = 0.2;

/// More af_packet frames per socket than the default 512: room for a stall of ~80 ms at the
/// paced rate.
const FRAMES_PER_RING: &str = ",framecnt=2048";

/// The second `[[workers]]` table: CPU [`SECOND_WORKER_CORE`], receiving from both ports.
fn second_worker() -> String {
    format!(
        "[[workers]]\ncore = {SECOND_WORKER_CORE}\nrx = [\"{}\", \"{}\"]\n",
        BLUE.name, RED.name
    )
}

/// BLUE, RED and a dvrd with two workers routing between them (ready); None on a machine
/// with a single CPU.
fn start(s: &Scope) -> Option<(Instance, Instance, Dvrd)> {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        eprintln!("skipped: two workers need two CPUs");
        return None;
    }
    let (blue, red) = instances(s, None);
    let mut cfg = routed_config(&blue, &red);
    for p in &mut cfg.ports {
        p.vdev_args.push_str(FRAMES_PER_RING);
    }
    cfg.extra_toml = second_worker();
    let dvrd = Dvrd::start(s, "dvrd", &cfg);
    Some((blue, red, dvrd))
}

/// The growth of every counter the test reads between two snapshots.
struct Growth<'a> {
    before: &'a Snapshot,
    after: &'a Snapshot,
}

impl Growth<'_> {
    fn worker_rx(&self, i: usize) -> u64 {
        self.after.workers[i].rx_packets - self.before.workers[i].rx_packets
    }

    fn port(&self, name: &str, counter: fn(&PortStatsView) -> u64) -> u64 {
        let of = |s: &Snapshot| {
            s.ports
                .iter()
                .find(|p| p.name == name)
                .map(counter)
                .unwrap_or_else(|| panic!("no port `{name}` in the counters"))
        };
        of(self.after) - of(self.before)
    }

    fn named(&self) -> u64 {
        let total = |s: &Snapshot| s.drops.values().sum::<u64>() + s.punts.values().sum::<u64>();
        total(self.after) - total(self.before)
    }
}

/// (a) Both workers received a substantial share of the flows.
fn assert_spread(g: &Growth<'_>, report: &FlowReport) {
    let shares: Vec<f64> = (0..2)
        .map(|i| g.worker_rx(i) as f64 / report.sent as f64)
        .collect();
    for (i, share) in shares.iter().enumerate() {
        assert!(
            *share >= SHARE_MIN,
            "worker {i} received {:.0} % of the {} datagrams of {} flows (shares {shares:.2?}): \
             the flows are not spread over both workers",
            share * 100.0,
            report.sent,
            LOAD.flows
        );
    }
}

/// (c) The workers' counters are the ports' counters, the device saw what the workers
/// received, and what came in on BLUE went out on RED or was counted under a name; what went
/// out on RED is what the receiver saw.
fn assert_counters_add_up(g: &Growth<'_>, report: &FlowReport) {
    let a = g.after;
    let sum = |f: fn(&WorkerView) -> u64| a.workers.iter().map(f).sum::<u64>();
    let ports = |f: fn(&PortStatsView) -> u64| a.ports.iter().map(f).sum::<u64>();
    assert_eq!(
        sum(|w| w.rx_packets),
        ports(|p| p.rx_packets),
        "workers' rx vs ports' rx"
    );
    assert_eq!(
        sum(|w| w.tx_packets),
        ports(|p| p.tx_packets),
        "workers' tx vs ports' tx"
    );

    let blue_rx = g.port(BLUE.name, |p| p.rx_packets);
    let blue_device_rx = g.port(BLUE.name, |p| p.device_rx_packets);
    let red_tx = g.port(RED.name, |p| p.tx_packets);
    let red_tx_drops = g.port(RED.name, |p| p.tx_drops);
    let named = g.named();
    let context = format!(
        "sent {}, received {}; blue rx {blue_rx} (device {blue_device_rx}); red tx {red_tx}, \
         tx drops {red_tx_drops}; named drops and punts {named}",
        report.sent,
        report.received()
    );
    assert!(
        blue_device_rx.abs_diff(blue_rx) <= NOISE_MAX,
        "device vs workers: {context}"
    );
    assert!(
        blue_rx >= report.sent && blue_rx <= report.sent + NOISE_MAX,
        "BLUE's port did not receive the datagrams sent: {context}"
    );
    let accounted = red_tx + red_tx_drops + named;
    assert!(
        blue_rx.abs_diff(accounted) <= NOISE_MAX,
        "received on BLUE but neither sent on RED nor counted: {context}"
    );
    assert!(
        red_tx >= report.received() && red_tx - report.received() <= NOISE_MAX,
        "sent on RED but not seen by the receiver: {context}"
    );
}

#[test]
fn flows_spread_over_two_workers_in_order_and_the_counters_add_up() {
    let s = scope!();
    let Some((blue, red, dvrd)) = start(&s) else {
        return;
    };
    // Neighbours resolved before the flows start, so that none of their datagrams waits.
    blue.ping(RED_A.ip, &PingOpts::count(3))
        .assert_all_answered();

    let before = dvrd.stats();
    let report = send_flows(blue.netns(), (red.netns(), RED_A.ip, FLOW_PORT), &LOAD);
    let after = dvrd.stats();
    let g = Growth {
        before: &before,
        after: &after,
    };
    assert_eq!(after.workers.len(), 2, "two workers in the counters");
    assert_eq!(
        report.per_flow.len(),
        LOAD.flows as usize,
        "every flow arrived: {report:?}"
    );
    // (b) No flow was reordered: each is received by one worker from one queue.
    assert_eq!(
        report.reordered(),
        0,
        "datagrams out of order within a flow: {report:?}"
    );
    assert_spread(&g, &report);
    assert_counters_add_up(&g, &report);

    // (d) Ping and a TCP transfer (both directions of one connection, several flows' worth
    // of segments) still work across the two workers.
    blue.ping(RED_A.ip, &PingOpts::count(5))
        .assert_all_answered();
    red.ping(BLUE_A.ip, &PingOpts::count(5))
        .assert_all_answered();
    assert_tcp_copy_intact(blue.netns(), (red.netns(), RED_A.ip, 5001), "copy", 4 << 20);

    let exit = dvrd.stop();
    let summary = exit.assert_clean();
    assert_eq!(summary.mempool_in_use(), Some(0), "{summary}");
}

#[test]
fn an_af_packet_device_with_too_few_queue_pairs_is_refused_with_its_key() {
    let s = scope!();
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        return;
    }
    let (blue, red) = instances(&s, None);
    let mut cfg = routed_config(&blue, &red);
    cfg.ports[0].vdev_args.push_str(",qpairs=1");
    cfg.extra_toml = second_worker();
    let path = s.file("too-few.toml");
    let toml = cfg.to_toml(&s.dpdk_prefix("few"), &s.socket_path("few"));
    std::fs::write(&path, toml).unwrap();
    let args = [
        OsStr::new("--check"),
        OsStr::new("--config"),
        path.as_os_str(),
    ];
    let run = run_to_exit(&s, "check-too-few", &args, Duration::from_secs(5));
    assert!(
        run.code.is_some_and(|c| c != 0)
            && run.stderr.contains("eal.vdevs")
            && run.stderr.contains("qpairs=1")
            && run.stderr.contains(&format!("port `{}`", BLUE.name)),
        "dvrd should refuse qpairs=1 for two workers, naming the key and the port: {run:?}"
    );
}
