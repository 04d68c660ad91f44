//! End-to-end: multi-segment mbufs are dropped and counted (`multi_segment`) before the engine
//! sees them, and freed whole.
//!
//! The tap PMD with scattered RX splits a frame larger than one mbuf over a chain of mbufs. The
//! test gives it a pool of small buffers, and the kernel sends large frames into the tap
//! interface (`ping -s 1000` to a static neighbour behind it). Needs root, `/dev/net/tun`, `ip`
//! and `ping`; skipped (with a message) where they are missing.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dpdk_bindings::{Eal, Mempool, Port, PortConfig, HEADROOM};
use lcore_workers::{punt_channel, spawn, AdaptiveIdle, IdleMode, WorkerConfig, WorkerShared};
use router_core::dataplane::PortRole;
use router_core::reason::DropReason;

const IFACE: &str = "lwmseg0";
/// Bytes of frame the first segment of an mbuf holds (the rest of its buffer is headroom).
const SEGMENT_BYTES: u16 = 256;
/// `RTE_ETH_RX_OFFLOAD_SCATTER`: receive frames larger than one buffer as mbuf chains.
const RX_OFFLOAD_SCATTER: u64 = 1 << 13;
const PINGS: u64 = 5;
/// ICMP payload: the frames are 14 + 20 + 8 + 1000 = 1042 bytes, five segments.
const PING_PAYLOAD: usize = 1000;
const FRAME_LEN: u64 = 14 + 20 + 8 + PING_PAYLOAD as u64;
/// ICMP payload of the small frames (100 bytes, one segment).
const SMALL_PAYLOAD: usize = 58;
/// The worker polls every 20 ms, so that frames pile up into mixed bursts.
const POLL_PERIOD: Duration = Duration::from_millis(20);

#[test]
fn multi_segment_mbufs_are_dropped() {
    if let Some(missing) = missing_prerequisite() {
        assert!(
            std::env::var_os("DVRD_TEST_STRICT").is_none_or(|v| v != "1"),
            "multi_segment_mbufs_are_dropped cannot run under DVRD_TEST_STRICT=1: {missing}"
        );
        eprintln!("SKIPPED multi_segment_mbufs_are_dropped: {missing}");
        return;
    }
    let vdev = format!("net_tap0,iface={IFACE}");
    let eal = Eal::init(&eal_args("lcore_workers_multi_segment", &[&vdev])).expect("EAL init");
    // The tap interface exists from here on. Quiet it before the link comes up: no IPv6
    // autoconfiguration traffic.
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{IFACE}/disable_ipv6"), "1");
    let pool = Mempool::pktmbuf("lw_mseg_pool", 2047, 32, HEADROOM + SEGMENT_BYTES, None)
        .expect("pool of small buffers");
    let mut port = Port::by_name("net_tap0").expect("tap vdev");
    let config = PortConfig {
        rx_desc: 64,
        tx_desc: 64,
        rx_offloads: RX_OFFLOAD_SCATTER,
        ..PortConfig::default()
    };
    port.configure(&config, &pool).expect("configure tap");
    port.start().expect("start tap");
    let tap = lcore_workers::port::router_port(port.id());

    // The tap port is attached to nothing: whatever the engine sees is `port_not_attached`.
    let mut roles = vec![PortRole::Unused; tap.index() + 1];
    roles[usize::from(tap)] = PortRole::Unused;
    let bridge = bridge(&roles, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let (punt, _punts) = punt_channel();
    let shared = WorkerShared {
        engine: bridge.engine.clone(),
        qsbr: Arc::clone(&bridge.qsbr),
        punt,
        stop: Arc::clone(&stop),
    };
    let mut worker_config = WorkerConfig::new(0, eal.tsc_hz());
    worker_config.core = Some(worker_core());
    worker_config.rx_queues = vec![port.rx_queue(0).unwrap()];
    worker_config.idle = IdleMode::Adaptive(AdaptiveIdle {
        empty_loops: 0,
        sleep_min: POLL_PERIOD,
        sleep_max: POLL_PERIOD,
    });
    let worker = spawn(worker_config, shared).expect("spawn worker");

    // Quiet the interface (no IPv6 autoconfiguration), then let the kernel send large frames.
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{IFACE}/disable_ipv6"), "1");
    run(&["ip", "link", "set", IFACE, "up"]);
    run(&["ip", "addr", "replace", "198.18.203.1/24", "dev", IFACE]);
    run(&[
        "ip",
        "neigh",
        "replace",
        "198.18.203.2",
        "lladdr",
        "02:00:00:00:cb:02",
        "nud",
        "permanent",
        "dev",
        IFACE,
    ]);
    // Large and small frames at once, so that bursts mix them: only the large ones may be
    // counted as multi-segment. No reply comes back (nothing answers), so ping's exit status
    // says nothing here.
    let pings: Vec<_> = [PING_PAYLOAD, SMALL_PAYLOAD]
        .iter()
        .map(|payload| {
            Command::new("ping")
                .args([
                    "-q",
                    "-n",
                    "-c",
                    &PINGS.to_string(),
                    "-i",
                    "0.002",
                    "-W",
                    "1",
                ])
                .args(["-s", &payload.to_string(), "-I", IFACE, "198.18.203.2"])
                .spawn()
                .expect("run ping")
        })
        .collect();
    for mut ping in pings {
        ping.wait().expect("ping ends");
    }

    let stats = Arc::clone(worker.stats());
    let dropped = wait_until(Duration::from_secs(10), || {
        stats.drops(DropReason::MultiSegment) >= PINGS
            && stats.drops(DropReason::PortNotAttached) >= PINGS
    });
    let snapshot = stats.snapshot();
    assert!(dropped, "multi-segment drops: {snapshot:?}");
    let rx = snapshot.port(tap);
    eprintln!(
        "tap: {rx:?}, multi_segment {}, port_not_attached {}",
        snapshot.engine.drop_count(DropReason::MultiSegment),
        snapshot.engine.drop_count(DropReason::PortNotAttached)
    );
    // Every frame received is counted once: large ones as multi-segment, small ones (whatever
    // else the kernel sent) by the engine.
    assert_eq!(
        rx.rx_packets,
        snapshot.engine.drop_count(DropReason::MultiSegment)
            + snapshot.engine.drop_count(DropReason::PortNotAttached),
        "{snapshot:?}"
    );
    assert!(
        rx.rx_bytes >= PINGS * FRAME_LEN,
        "whole chains counted: {rx:?}"
    );
    assert_eq!(snapshot.tx_packets(), 0);

    stop.store(true, Ordering::Relaxed);
    worker.join().expect("worker ends cleanly");
    drop(bridge);
    // The tap RX queue keeps buffers for the next frames until the port is closed.
    port.close().expect("close tap");
    assert_eq!(pool.in_use(), 0, "every segment was freed");
    pool.close().expect("free the pool");
    eal.cleanup().expect("EAL cleanup");
}

/// Why the test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        return Some("needs root (a tap interface)".to_owned());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".to_owned());
    }
    for tool in ["ip", "ping"] {
        let found = Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|out| out.status.success());
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|err| panic!("{args:?}: {err}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
