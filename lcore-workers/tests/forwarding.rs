//! End-to-end: one worker on real DPDK ring ports forwards, drops, punts and stops cleanly.
//!
//! Three ring ports. The worker owns RX of A and C and TX of B; the test thread owns TX of A
//! and C (what it sends there, the worker receives) and RX of B (what the worker sends, the
//! test receives). Every ring has one producer and one consumer, so nothing races.
//!
//! A and B are local ports of one tenant network (bridging by MAC, no router); C is attached
//! to nothing. EAL can be initialised once per process: one test runs the steps in order.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use dpdk_bindings::{tsc, Eal, Mempool, RxQueue, TxQueue, DEFAULT_DATA_ROOM};
use lcore_workers::port::router_port;
use lcore_workers::{
    punt_channel_with_capacity, spawn, IdleMode, PuntReceiver, WorkerConfig, WorkerError,
    WorkerHandle, WorkerShared,
};
use router_core::dataplane::PortRole;
use router_core::ids::PortId;
use router_core::reason::{DropReason, PuntReason};

const POOL_SIZE: u32 = 8191;
const POOL_CACHE: u32 = 64;
/// A small punt channel, to fill it on purpose.
const PUNT_CAPACITY: usize = 16;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Frames the first step forwards.
const FORWARDED: u64 = 1000;

/// Instances: behind B, behind A, behind C; the source of every frame; nobody.
const MAC_ON_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const MAC_ON_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_ON_C: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0c];
const MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const MAC_UNKNOWN: [u8; 6] = [0x02, 0, 0, 0, 0, 0x77];

/// What the test thread holds.
struct Harness {
    pool: Mempool,
    a_tx: TxQueue,
    c_tx: TxQueue,
    b_rx: RxQueue,
    a: PortId,
    b: PortId,
    c: PortId,
    punts: PuntReceiver,
    worker: WorkerHandle,
    stop: Arc<AtomicBool>,
    core: usize,
    next_seq: u32,
}

impl Harness {
    /// Frames to `dst` with fresh sequence numbers and lengths 60 to 259.
    fn frames(&mut self, dst: [u8; 6], ethertype: u16, count: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|_| {
                let seq = self.next_seq;
                self.next_seq += 1;
                frame(dst, MAC_SRC, ethertype, seq, 60 + (seq % 200) as usize)
            })
            .collect()
    }

    /// Waits until the worker received `packets` on `port`.
    fn wait_rx(&self, port: PortId, packets: u64) {
        let stats = self.worker.stats();
        assert!(
            wait_until(TIMEOUT, || stats.port(port).rx_packets.get() >= packets),
            "worker received {} of {packets} packets on port {port}",
            stats.port(port).rx_packets.get()
        );
    }

    /// Waits until every mbuf is back in the pool (the worker frees drops in bulk at the end of
    /// each burst, just after counting them).
    fn wait_pool_idle(&self) {
        assert!(
            wait_until(TIMEOUT, || self.pool.in_use() == 0),
            "{} mbufs still in use",
            self.pool.in_use()
        );
    }
}

#[test]
fn worker_end_to_end() {
    let eal = Eal::init(&eal_args(
        "lcore_workers_forwarding",
        &["net_ring0", "net_ring1", "net_ring2"],
    ))
    .expect("EAL init");
    let pool = Mempool::pktmbuf(
        "lw_fwd_pool",
        POOL_SIZE,
        POOL_CACHE,
        DEFAULT_DATA_ROOM,
        None,
    )
    .expect("pool");
    let mut port_a = ring_port("net_ring0", &pool, 1);
    // B has a second TX queue, only to show that a worker refuses two TX queues of one port.
    let mut port_b = ring_port("net_ring1", &pool, 2);
    let mut port_c = ring_port("net_ring2", &pool, 1);
    let (a, b, c) = (
        router_port(port_a.id()),
        router_port(port_b.id()),
        router_port(port_c.id()),
    );
    assert_eq!(
        (a.get(), b.get(), c.get()),
        (0, 1, 2),
        "ports are numbered in vdev order"
    );

    let mut roles = vec![PortRole::Unused; 3];
    roles[usize::from(a)] = PortRole::Local { network: NETWORK };
    roles[usize::from(b)] = PortRole::Local { network: NETWORK };
    let bridge = bridge(&roles, &[(MAC_ON_B, b), (MAC_ON_A, a), (MAC_ON_C, c)]);

    let (punt_tx, punts) = punt_channel_with_capacity(PUNT_CAPACITY);
    let stop = Arc::new(AtomicBool::new(false));
    let shared = WorkerShared {
        engine: bridge.engine.clone(),
        qsbr: Arc::clone(&bridge.qsbr),
        punt: punt_tx,
        stop: Arc::clone(&stop),
    };

    let core = worker_core();
    let mut config = WorkerConfig::new(0, eal.tsc_hz());
    config.core = Some(core);
    config.idle = IdleMode::adaptive();
    config.rx_queues = vec![port_a.rx_queue(0).unwrap(), port_c.rx_queue(0).unwrap()];
    config.tx_queues = vec![port_b.tx_queue(0).unwrap(), port_b.tx_queue(1).unwrap()];
    let err = config.validate().expect_err("two TX queues of B");
    assert!(
        matches!(err, WorkerError::DuplicateTxPort { port } if port == b),
        "{err}"
    );
    drop(config.tx_queues.pop());
    config.validate().expect("valid configuration");

    let worker = spawn(config, shared).expect("spawn worker");
    assert_ne!(
        worker.lcore(),
        eal.main_lcore(),
        "the worker has its own lcore"
    );
    assert_eq!(worker.index(), 0);

    let mut h = Harness {
        a_tx: port_a.tx_queue(0).unwrap(),
        c_tx: port_c.tx_queue(0).unwrap(),
        b_rx: port_b.rx_queue(0).unwrap(),
        pool,
        a,
        b,
        c,
        punts,
        worker,
        stop,
        core,
        next_seq: 0,
    };

    check_thread(&h);
    check_forwarding(&mut h);
    // The devices agree with the worker's counters.
    assert_eq!(port_a.stats().unwrap().rx_packets, FORWARDED);
    assert_eq!(port_b.stats().unwrap().tx_packets, FORWARDED);
    check_drops(&mut h);
    check_punts(&mut h);
    check_tx_full(&mut h);
    let pool = check_stop(h);

    drop(bridge);
    port_a.close().expect("close A");
    port_b.close().expect("close B");
    port_c.close().expect("close C");
    assert_eq!(pool.in_use(), 0);
    pool.close().expect("free the pool");
    eal.cleanup().expect("EAL cleanup: nothing left alive");
}

/// The worker thread is named and pinned.
fn check_thread(h: &Harness) {
    let status = thread_status("dvr-worker-0").expect("a thread named dvr-worker-0");
    let allowed = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in the thread status")
        .trim();
    assert_eq!(allowed, h.core.to_string(), "pinned to core {}", h.core);
}

/// Bridged unicast frames from A come out of B, unchanged and in order, and every counter and
/// histogram saw them.
fn check_forwarding(h: &mut Harness) {
    const FRAMES: usize = FORWARDED as usize;
    let frames = h.frames(MAC_ON_B, ETHERTYPE_IPV4, FRAMES);
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let start_tsc = tsc();
    send_frames(&mut h.a_tx, &h.pool, &frames, TIMEOUT);
    let received = receive_frames(&mut h.b_rx, FRAMES, TIMEOUT);
    assert_eq!(received.len(), FRAMES, "frames forwarded from A to B");
    assert_eq!(
        received, frames,
        "bridged frames are unchanged and in order"
    );

    let stats = h.worker.stats().snapshot();
    assert_eq!(stats.port(h.a).rx_packets, FRAMES as u64);
    assert_eq!(stats.port(h.a).rx_bytes, bytes);
    assert_eq!(stats.port(h.b).tx_packets, FRAMES as u64);
    assert_eq!(stats.port(h.b).tx_bytes, bytes);
    assert_eq!(stats.port(h.b).tx_drops, 0);
    assert_eq!(stats.engine.bridged_local, FRAMES as u64);
    assert!(stats.engine.drops.iter().all(|(_, n)| *n == 0), "{stats:?}");
    assert!(
        stats.bursts >= (FRAMES / dpdk_bindings::BURST_SIZE) as u64,
        "{stats:?}"
    );
    assert!(stats.loops >= stats.bursts / 2 && stats.quiescent_reports >= stats.loops - 1);
    assert!(stats.empty_polls > 0);
    let per_packet = stats
        .busy_cycles_per_packet()
        .expect("packets were received");
    eprintln!(
        "forwarded {FRAMES} frames in {} bursts: {per_packet:.0} busy cycles per packet",
        stats.bursts
    );
    assert!(per_packet > 0.0, "{stats:?}");
    let elapsed = tsc() - start_tsc;
    assert!(
        stats.busy_cycles < elapsed,
        "busy {} of {elapsed} cycles",
        stats.busy_cycles
    );

    // The histograms are published within about 100 ms.
    let histograms = h.worker.histograms();
    assert!(
        wait_until(TIMEOUT, || {
            histograms.snapshot().residence_cycles.len() == FRAMES as u64
        }),
        "residence histogram holds {} values",
        histograms.snapshot().residence_cycles.len()
    );
    let snapshot = histograms.snapshot();
    let burst = snapshot.burst();
    assert_eq!(
        burst.count,
        h.worker.stats().bursts.get(),
        "one value per burst"
    );
    assert!(
        burst.min > 0 && burst.p50 <= burst.p99 && burst.p99 <= burst.max,
        "{burst:?}"
    );
    let residence = snapshot.residence();
    assert_eq!(residence.count, FRAMES as u64);
    assert!(
        residence.min > 0 && residence.p50 <= residence.max,
        "{residence:?}"
    );
    assert!(residence.max < elapsed, "{residence:?}");
    assert!(h.worker.stats().histogram_publishes.get() >= 1);
    let ns = residence.to_ns(&snapshot.clock().unwrap());
    assert!(ns.p50 <= ns.max && ns.max < 10_000_000_000, "{ns:?}");
    assert_eq!(
        lcore_workers::quantiles(&snapshot.residence_cycles, 5)
            .iter()
            .map(|q| q.count)
            .sum::<u64>(),
        FRAMES as u64
    );

    // Taking resets what was published.
    let taken = histograms.take();
    assert_eq!(taken.residence().count, FRAMES as u64);
    assert_eq!(histograms.snapshot().residence().count, 0);
    h.wait_pool_idle();
}

/// Frames the engine drops are freed and counted by reason.
fn check_drops(h: &mut Harness) {
    let before = h.worker.stats().snapshot();

    // C is attached to no network.
    let frames = h.frames(MAC_ON_B, ETHERTYPE_IPV4, 50);
    send_frames(&mut h.c_tx, &h.pool, &frames, TIMEOUT);
    h.wait_rx(h.c, 50);

    // To an instance behind the port the frame came from.
    let same_port = h.frames(MAC_ON_A, ETHERTYPE_IPV4, 20);
    // To an instance behind C, where the worker has no TX queue.
    let no_queue = h.frames(MAC_ON_C, ETHERTYPE_IPV4, 10);
    send_frames(&mut h.a_tx, &h.pool, &same_port, TIMEOUT);
    send_frames(&mut h.a_tx, &h.pool, &no_queue, TIMEOUT);
    h.wait_rx(h.a, before.port(h.a).rx_packets + 30);
    h.wait_pool_idle();

    let stats = h.worker.stats();
    assert_eq!(stats.drops(DropReason::PortNotAttached), 50);
    assert_eq!(stats.drops(DropReason::L2SamePort), 20);
    assert_eq!(stats.drops(DropReason::NoTxQueue), 10);
    assert_eq!(stats.tx_no_queue.get(), 10);
    assert_eq!(stats.port(h.c).tx_drops.get(), 10);
    assert_eq!(stats.port(h.c).rx_packets.get(), 50);
    assert_eq!(stats.drops(DropReason::MultiSegment), 0);
    let after = stats.snapshot();
    assert_eq!(after.port(h.b).tx_packets, before.port(h.b).tx_packets);
    assert_eq!(after.engine.drop_count(DropReason::PortNotAttached), 50);
    assert!(
        receive_frames(&mut h.b_rx, 1, Duration::from_millis(20)).is_empty(),
        "nothing dropped came out of B"
    );
}

/// Punted frames reach the channel with their reason, port and RX time; a full channel is a
/// counted drop, never a wait.
fn check_punts(h: &mut Harness) {
    let before = h.worker.stats().port(h.a).rx_packets.get();
    let start_tsc = tsc();
    let arp = h.frames(BROADCAST, ETHERTYPE_ARP, 3);
    let broadcast = h.frames(BROADCAST, ETHERTYPE_IPV4, 2);
    let unknown = h.frames(MAC_UNKNOWN, ETHERTYPE_IPV4, 4);
    let mut expected = BTreeMap::new();
    for (frames, reason) in [
        (&arp, PuntReason::Arp),
        (&broadcast, PuntReason::Flood),
        (&unknown, PuntReason::Flood),
    ] {
        for f in frames {
            expected.insert(seq_of(f), (f.clone(), reason));
        }
        send_frames(&mut h.a_tx, &h.pool, frames, TIMEOUT);
    }
    for _ in 0..expected.len() {
        let punted = h.punts.recv_timeout(TIMEOUT).expect("a punted frame");
        let (frame, reason) = expected
            .remove(&seq_of(punted.mbuf.data()))
            .expect("a frame sent once");
        assert_eq!(punted.mbuf.data(), &frame[..]);
        assert_eq!(punted.reason, reason);
        assert_eq!(punted.port, h.a);
        assert!(punted.rx_tsc >= start_tsc && punted.rx_tsc <= tsc());
        // Dropping the punted packet frees its mbuf.
    }
    assert!(expected.is_empty());
    let engine = Arc::clone(&h.worker.stats().engine);
    assert_eq!(engine.punts[PuntReason::Arp.index()].get(), 3);
    assert_eq!(engine.punts[PuntReason::Flood.index()].get(), 6);

    // Fill the channel: what does not fit is dropped and counted.
    const MORE: usize = PUNT_CAPACITY + 24;
    let flood = h.frames(BROADCAST, ETHERTYPE_IPV4, MORE);
    send_frames(&mut h.a_tx, &h.pool, &flood, TIMEOUT);
    h.wait_rx(h.a, before + 9 + MORE as u64);
    let stats = h.worker.stats();
    assert!(wait_until(TIMEOUT, || stats
        .drops(DropReason::PuntQueueFull)
        == 24));
    assert_eq!(
        engine.punts[PuntReason::Flood.index()].get(),
        6 + PUNT_CAPACITY as u64
    );
    assert_eq!(h.punts.len(), PUNT_CAPACITY);
    let held: Vec<_> = h.punts.try_iter().collect();
    assert_eq!(held.len(), PUNT_CAPACITY);
    assert!(held
        .iter()
        .all(|p| p.reason == PuntReason::Flood && p.port == h.a));
    // The first ones that came are the ones that got in.
    let first = seq_of(&flood[0]);
    let seqs: Vec<u32> = held.iter().map(|p| seq_of(p.mbuf.data())).collect();
    assert_eq!(
        seqs,
        (first..first + PUNT_CAPACITY as u32).collect::<Vec<_>>()
    );
    assert!(
        wait_until(TIMEOUT, || h.pool.in_use() == PUNT_CAPACITY as u32),
        "only the channel holds mbufs: {} in use",
        h.pool.in_use()
    );
    drop(held);
    h.wait_pool_idle();
}

/// When B's ring is full, what the TX queue does not take is freed and counted.
fn check_tx_full(h: &mut Harness) {
    const EXTRA: usize = 77;
    let before = h.worker.stats().snapshot();
    let frames = h.frames(MAC_ON_B, ETHERTYPE_IPV4, RING_CAPACITY + EXTRA);
    // The test does not read B meanwhile: the ring fills up.
    send_frames(&mut h.a_tx, &h.pool, &frames, TIMEOUT);
    h.wait_rx(h.a, before.port(h.a).rx_packets + frames.len() as u64);
    let stats = h.worker.stats();
    assert!(wait_until(TIMEOUT, || stats.port(h.b).tx_drops.get() == EXTRA as u64));
    assert_eq!(
        stats.port(h.b).tx_packets.get(),
        before.port(h.b).tx_packets + RING_CAPACITY as u64
    );
    assert_eq!(
        stats.drops(DropReason::TxFull),
        before.engine.drop_count(DropReason::TxFull) + EXTRA as u64
    );
    assert!(wait_until(TIMEOUT, || h.pool.in_use() == RING_CAPACITY as u32));

    let received = receive_frames(&mut h.b_rx, RING_CAPACITY + 1, Duration::from_secs(1));
    assert_eq!(received.len(), RING_CAPACITY);
    assert_eq!(
        &received[..],
        &frames[..RING_CAPACITY],
        "the first ones went out"
    );
    h.wait_pool_idle();
}

/// The stop flag ends the worker promptly; everything it held is freed.
fn check_stop(h: Harness) -> Mempool {
    let stats = Arc::clone(h.worker.stats());
    let histograms = Arc::clone(h.worker.histograms());
    // Idle long enough to sleep at the longest back-off.
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        stats.idle_sleeps.get() > 0,
        "an idle adaptive worker sleeps"
    );

    let start = Instant::now();
    h.stop.store(true, Ordering::Relaxed);
    assert!(
        wait_until(Duration::from_secs(1), || h.worker.is_finished()),
        "the worker did not stop within 1 s"
    );
    let stopped_in = start.elapsed();
    assert!(
        stopped_in < Duration::from_millis(100),
        "stopped in {stopped_in:?}"
    );

    let summary = h.worker.join().expect("worker ends cleanly");
    assert_eq!(summary.index, 0);
    assert!(summary.run_cycles > summary.stats.busy_cycles);
    assert_eq!(
        summary.stats,
        stats.snapshot(),
        "nothing counted after the end"
    );
    assert_eq!(
        summary.stats.rx_packets(),
        FORWARDED + 50 + 30 + 9 + (PUNT_CAPACITY + 24) as u64 + (RING_CAPACITY + 77) as u64
    );
    // The worker published the rest of its histograms on its way out.
    assert_eq!(
        histograms.snapshot().residence().count,
        RING_CAPACITY as u64
    );
    assert_eq!(
        stats.histogram_publishes.get(),
        summary.stats.histogram_publishes
    );

    // The worker dropped its queues: the test's are the last.
    let Harness {
        pool,
        a_tx,
        c_tx,
        b_rx,
        punts,
        ..
    } = h;
    assert!(punts.try_recv().is_err());
    drop((a_tx, c_tx, b_rx, punts));
    assert_eq!(pool.in_use(), 0, "nothing leaked");
    pool
}
