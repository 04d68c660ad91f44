//! End-to-end: idle behaviour. A polling worker spins; an adaptive one sleeps when idle (offline
//! for QSBR meanwhile), snaps back to full-speed polling when traffic comes, and stops promptly
//! even while asleep.
//!
//! Two ring ports with two queues each: worker `i` owns RX queue `i` of A and TX queue `i` of
//! B (the daemon's convention: TX queue index = worker index); the test thread owns TX queue
//! `i` of A and RX queue `i` of B. The workers run one after the other, so that they do not
//! compete for the cores.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use dpdk_bindings::{Eal, MbufBurst, Mempool, Port, DEFAULT_DATA_ROOM};
use lcore_workers::port::router_port;
use lcore_workers::{
    punt_channel, spawn, AdaptiveIdle, IdleMode, WorkerConfig, WorkerHandle, WorkerShared,
};
use router_core::dataplane::PortRole;

const MAC_ON_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// How long each worker is watched while idle.
const IDLE_PERIOD: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_secs(10);
/// Frames sent one at a time to measure the latency of an adaptive worker under traffic.
const ROUND_TRIPS: usize = 200;

struct Setup {
    eal: Eal,
    pool: Mempool,
    port_a: Port,
    port_b: Port,
    bridge: Bridge,
}

#[test]
fn idle_back_off() {
    let eal =
        Eal::init(&eal_args("lcore_workers_idle", &["net_ring0", "net_ring1"])).expect("EAL init");
    let pool = Mempool::pktmbuf("lw_idle_pool", 4095, 64, DEFAULT_DATA_ROOM, None).expect("pool");
    let port_a = ring_port("net_ring0", &pool, 2);
    let port_b = ring_port("net_ring1", &pool, 2);
    let (a, b) = (router_port(port_a.id()), router_port(port_b.id()));
    let mut roles = vec![PortRole::Unused; 2];
    roles[usize::from(a)] = PortRole::Local { network: NETWORK };
    roles[usize::from(b)] = PortRole::Local { network: NETWORK };
    let bridge = bridge(&roles, &[(MAC_ON_B, b)]);
    let mut setup = Setup {
        eal,
        pool,
        port_a,
        port_b,
        bridge,
    };

    let spinning = watch_idle(&mut setup, 0, IdleMode::Poll);
    let adaptive = watch_idle(&mut setup, 1, IdleMode::adaptive());
    eprintln!("idle for {IDLE_PERIOD:?}: spinning {spinning:?}, adaptive {adaptive:?}");

    // Both polled the whole time, but the adaptive worker far less often.
    assert_eq!(spinning.sleeps, 0);
    assert!(spinning.empty_polls > 100_000, "{spinning:?}");
    assert!(
        adaptive.empty_polls * 20 < spinning.empty_polls,
        "adaptive {adaptive:?} vs spinning {spinning:?}"
    );
    // 300 ms of sleeps of at most 1 ms (plus the timer slack): a few hundred of them.
    assert!(adaptive.sleeps >= 50, "{adaptive:?}");
    assert!(
        adaptive.empty_polls
            <= u64::from(AdaptiveIdle::DEFAULT.empty_loops) + 2 * adaptive.sleeps + 10,
        "one poll per sleep once idle: {adaptive:?}"
    );
    // A spinning worker is always online for QSBR; a sleeping one mostly offline.
    assert_eq!(spinning.offline_samples, 0, "{spinning:?}");
    assert!(adaptive.offline_samples > 0, "{adaptive:?}");

    let Setup {
        eal,
        pool,
        port_a,
        port_b,
        bridge,
    } = setup;
    drop(bridge);
    port_a.close().expect("close A");
    port_b.close().expect("close B");
    assert_eq!(pool.in_use(), 0, "nothing leaked");
    pool.close().expect("free the pool");
    eal.cleanup().expect("EAL cleanup");
}

/// What was seen of one idle worker.
#[derive(Debug)]
struct Idle {
    empty_polls: u64,
    sleeps: u64,
    /// Samples, out of [`QSBR_SAMPLES`], in which the worker was offline for QSBR.
    offline_samples: usize,
}

const QSBR_SAMPLES: usize = 200;

/// Runs worker `index` with `idle`, idle for [`IDLE_PERIOD`], then under traffic; stops it.
fn watch_idle(setup: &mut Setup, index: u16, idle: IdleMode) -> Idle {
    let stop = Arc::new(AtomicBool::new(false));
    let (punt, _punts) = punt_channel();
    let shared = WorkerShared {
        engine: setup.bridge.engine.clone(),
        qsbr: Arc::clone(&setup.bridge.qsbr),
        punt,
        stop: Arc::clone(&stop),
    };
    let mut config = WorkerConfig::new(usize::from(index), setup.eal.tsc_hz());
    config.core = Some(worker_core());
    config.idle = idle;
    config.rx_queues = vec![setup.port_a.rx_queue(index).unwrap()];
    config.tx_queues = vec![setup.port_b.tx_queue(index).unwrap()];
    let worker = spawn(config, shared).expect("spawn worker");
    let qsbr = Arc::clone(&setup.bridge.qsbr);

    // A grace period ends while the worker runs: it reports quiescent states, or is offline.
    let token = qsbr.retire_token();
    assert!(
        wait_until(Duration::from_secs(1), || qsbr.is_safe(token)),
        "grace period did not end"
    );

    let stats = Arc::clone(worker.stats());
    let polls_start = stats.empty_polls.get();
    let sleeps_start = stats.idle_sleeps.get();
    let started = Instant::now();
    let mut offline_samples = 0;
    for _ in 0..QSBR_SAMPLES {
        if qsbr.readers_online() == 0 {
            offline_samples += 1;
        }
        std::thread::sleep(IDLE_PERIOD / QSBR_SAMPLES as u32);
    }
    let watched = started.elapsed();
    let empty_polls = stats.empty_polls.get() - polls_start;
    let sleeps = stats.idle_sleeps.get() - sleeps_start;
    assert!(watched >= IDLE_PERIOD);

    check_traffic(setup, index, &worker, idle);

    let start = Instant::now();
    stop.store(true, Ordering::Relaxed);
    assert!(
        wait_until(Duration::from_secs(1), || worker.is_finished()),
        "worker {index} did not stop"
    );
    let stopped_in = start.elapsed();
    assert!(
        stopped_in < Duration::from_millis(100),
        "stopped in {stopped_in:?}"
    );
    let summary = worker.join().expect("worker ends cleanly");
    assert_eq!(summary.stats.rx_packets(), 1 + ROUND_TRIPS as u64);
    assert_eq!(qsbr.readers_online(), 0, "an ended worker is offline");
    Idle {
        empty_polls,
        sleeps,
        offline_samples,
    }
}

/// Sends one frame after the idle period, then frames one at a time: the first waits for at
/// most the longest sleep, the others find the worker polling at full speed.
fn check_traffic(setup: &mut Setup, index: u16, worker: &WorkerHandle, idle: IdleMode) {
    let mut a_tx = setup.port_a.tx_queue(index).unwrap();
    let mut b_rx = setup.port_b.rx_queue(index).unwrap();
    let mut round_trip = |seq: u32| {
        let f = frame(MAC_ON_B, MAC_SRC, 0x0800, seq, 64);
        let start = Instant::now();
        send_frames(&mut a_tx, &setup.pool, std::slice::from_ref(&f), TIMEOUT);
        // Spin (no sleep between polls) so that the frames follow each other closely.
        let mut burst: MbufBurst = MbufBurst::new();
        while b_rx.rx_burst(&mut burst) == 0 {
            assert!(start.elapsed() < TIMEOUT, "frame {seq} not forwarded");
            std::hint::spin_loop();
        }
        let elapsed = start.elapsed();
        let got: Vec<Vec<u8>> = burst.drain().map(|m| m.data().to_vec()).collect();
        assert_eq!(got, vec![f], "frame {seq} forwarded");
        elapsed
    };

    let first = round_trip(0);
    // At most the longest sleep plus scheduling noise on a shared machine.
    assert!(
        first < Duration::from_millis(100),
        "first frame took {first:?}"
    );

    let sleeps_before = worker.stats().idle_sleeps.get();
    let mut latencies: Vec<Duration> = (1..=ROUND_TRIPS as u32).map(&mut round_trip).collect();
    latencies.sort_unstable();
    let median = latencies[ROUND_TRIPS / 2];
    let sleeps = worker.stats().idle_sleeps.get() - sleeps_before;
    eprintln!(
        "{idle:?}: first frame {first:?}; {ROUND_TRIPS} round trips: median {median:?}, max {:?}, {sleeps} sleeps",
        latencies[ROUND_TRIPS - 1]
    );
    // A worker that kept sleeping at its longest back-off would take a millisecond or more
    // per frame; one that snapped back answers in microseconds.
    assert!(
        median < Duration::from_micros(300),
        "{idle:?}: median round trip {median:?}, {sleeps} sleeps during {ROUND_TRIPS} frames"
    );
    if matches!(idle, IdleMode::Adaptive(_)) {
        assert!(
            sleeps < ROUND_TRIPS as u64 / 2,
            "{sleeps} sleeps during {ROUND_TRIPS} back-to-back frames"
        );
    }
}
