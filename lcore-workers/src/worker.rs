//! The poll loop of one worker: run to completion, no lock, allocation, log or system call per
//! packet.
//!
//! One loop: for every RX queue, receive a burst, drop what the engine cannot take
//! (multi-segment mbufs), let the engine decide, write the frames' windows back and dispatch:
//! forwarded packets into per-port TX buffers (flushed when full), dropped ones freed in bulk
//! and counted, punted ones onto the punt channel. Then flush every TX buffer that holds
//! packets (at low load a packet never waits for a burst to fill), report a quiescent state,
//! publish the histograms when due, and back off when idle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::port::router_port;
use arrayvec::ArrayVec;
use dpdk_bindings::{tsc, Mbuf, MbufBurst, RxQueue, TxQueue};
use router_core::engine::{Engine, Verdict, WorkerState, MAX_BURST};
use router_core::ids::PortId;
use router_core::qsbr::QsbrReader;
use router_core::reason::{DropReason, PuntReason};
use router_core::stats::EngineCounters;
use router_core::wire::PacketBuf;

use crate::clock::TscClock;
use crate::config::{AdaptiveIdle, IdleMode};
use crate::histogram::{LocalHistograms, WorkerHistograms, HISTOGRAM_PUBLISH_INTERVAL_MS};
use crate::punt::{InjectQueue, PuntSender, Punted};
use crate::stats::WorkerStats;
use crate::trace::{TraceTap, WorkerTrace};
use crate::tx::TxPort;

/// What a worker is built from (the thread has pinned itself and registered already).
pub(crate) struct Parts {
    pub(crate) engine: Engine,
    pub(crate) rx_queues: Vec<RxQueue>,
    pub(crate) tx_queues: Vec<TxQueue>,
    pub(crate) inject: Option<Arc<InjectQueue>>,
    pub(crate) idle: IdleMode,
    pub(crate) clock: TscClock,
    pub(crate) punt: PuntSender,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) reader: QsbrReader,
    pub(crate) stats: Arc<WorkerStats>,
    pub(crate) histograms: Arc<WorkerHistograms>,
    pub(crate) trace: Option<Arc<TraceTap>>,
    pub(crate) index: usize,
}

/// One RX queue and the port it belongs to.
struct RxPort {
    port: PortId,
    queue: RxQueue,
}

/// The worker's state, generic over the burst size `N` (at most [`MAX_BURST`]).
pub(crate) struct Worker<const N: usize> {
    engine: Engine,
    state: WorkerState,
    rx: Vec<RxPort>,
    /// Packets the control thread sends through this worker.
    inject: Option<Arc<InjectQueue>>,
    /// The burst being processed; empty between polls.
    burst: MbufBurst<N>,
    verdicts: [Verdict; MAX_BURST],
    /// Each packet's `(head, len)` after the engine.
    windows: [(usize, usize); MAX_BURST],
    out: Output<N>,
    clock: TscClock,
    idle: IdleMode,
    idle_state: IdleState,
    stop: Arc<AtomicBool>,
    reader: QsbrReader,
    histograms: Arc<WorkerHistograms>,
    /// Publication period of the histograms, in cycles.
    publish_interval: u64,
    next_publish: u64,
    /// The most recent TSC reading.
    last_tsc: u64,
    /// The packet trace, when the worker was given a tap.
    trace: Option<WorkerTrace>,
}

/// Where packets go after the engine: TX buffers, the free list, the punt channel, counters.
struct Output<const N: usize> {
    /// TX buffers indexed by port id; `None` where the worker has no TX queue.
    tx: Vec<Option<TxPort<N>>>,
    /// Packets to free at the end of the burst, in one bulk call.
    garbage: MbufBurst<N>,
    punt: PuntSender,
    stats: Arc<WorkerStats>,
    counters: Arc<EngineCounters>,
    local: LocalHistograms,
}

/// Consecutive empty loops and the next sleep of an adaptive worker.
#[derive(Debug)]
struct IdleState {
    empty_loops: u32,
    next_sleep: Duration,
}

impl<const N: usize> Worker<N> {
    /// The burst fits the engine's arrays.
    const FITS: () = assert!(N >= 1 && N <= MAX_BURST);

    pub(crate) fn new(parts: Parts) -> Worker<N> {
        #[allow(clippy::let_unit_value)] // evaluating the constant is the compile-time check
        let () = Self::FITS;
        let Parts {
            engine,
            rx_queues,
            tx_queues,
            inject,
            idle,
            clock,
            punt,
            stop,
            reader,
            stats,
            histograms,
            trace,
            index,
        } = parts;
        let state = engine.worker_state_with(Arc::clone(&stats.engine));
        let rx = rx_queues
            .into_iter()
            .map(|queue| RxPort {
                port: router_port(queue.port()),
                queue,
            })
            .collect();
        let ports = tx_queues
            .iter()
            .map(|q| router_port(q.port()).index() + 1)
            .max()
            .unwrap_or(0);
        let mut tx: Vec<Option<TxPort<N>>> = (0..ports).map(|_| None).collect();
        for queue in tx_queues {
            let port = router_port(queue.port()).index();
            tx[port] = Some(TxPort::new(queue));
        }
        let publish_interval = clock.cycles(HISTOGRAM_PUBLISH_INTERVAL_MS * 1_000_000);
        let idle_state = IdleState::new(idle);
        Worker {
            engine,
            state,
            rx,
            inject,
            burst: MbufBurst::new(),
            verdicts: [Verdict::Drop(DropReason::FrameTruncated); MAX_BURST],
            windows: [(0, 0); MAX_BURST],
            out: Output {
                tx,
                garbage: MbufBurst::new(),
                punt,
                counters: Arc::clone(&stats.engine),
                stats,
                local: LocalHistograms::new(),
            },
            clock,
            idle,
            idle_state,
            stop,
            reader,
            histograms,
            publish_interval,
            next_publish: 0,
            last_tsc: 0,
            trace: trace.map(|tap| WorkerTrace::new(tap, index)),
        }
    }

    /// Polls until the stop flag is set, then flushes the TX buffers, publishes the histograms
    /// and goes offline for QSBR. Returns the cycles it ran.
    pub(crate) fn run(&mut self) -> u64 {
        let start = tsc();
        self.last_tsc = start;
        self.next_publish = start.saturating_add(self.publish_interval);
        while !self.stop.load(Ordering::Relaxed) {
            self.poll_loop();
        }
        self.out.flush_all();
        self.histograms.publish(&mut self.out.local);
        self.out.stats.histogram_publishes.inc();
        self.reader.offline();
        tsc().saturating_sub(start)
    }

    /// One pass over all RX queues, the TX flush, the quiescent report and the idle back-off.
    #[inline]
    fn poll_loop(&mut self) {
        let mut received = 0;
        for index in 0..self.rx.len() {
            received += self.poll(index);
        }
        received += self.drain_injected();
        if received != 0 {
            let flush_start = tsc();
            self.out.flush_all();
            let flush_end = tsc();
            self.out
                .stats
                .busy_cycles
                .add(flush_end.saturating_sub(flush_start));
            self.last_tsc = flush_end;
            self.idle_state.reset(self.idle);
        } else {
            self.idle_state.empty_loops = self.idle_state.empty_loops.saturating_add(1);
            if let IdleMode::Adaptive(idle) = self.idle {
                self.back_off(idle);
            }
        }
        self.reader.quiescent();
        let stats = &self.out.stats;
        stats.quiescent_reports.inc();
        stats.loops.inc();
        if self.last_tsc >= self.next_publish && self.histograms.try_publish(&mut self.out.local) {
            self.next_publish = self.last_tsc.saturating_add(self.publish_interval);
            self.out.stats.histogram_publishes.inc();
        }
    }

    /// Moves up to a burst of the control thread's packets into the TX buffers.
    #[inline]
    fn drain_injected(&mut self) -> usize {
        let Some(queue) = &self.inject else { return 0 };
        if queue.is_empty() {
            return 0;
        }
        let now = tsc();
        let mut n = 0;
        while n < N {
            let Some(item) = queue.pop() else { break };
            self.out.forward(item.mbuf, item.port, now);
            n += 1;
        }
        n
    }

    /// Sleeps once the worker has been idle long enough, for longer each time. Offline for
    /// QSBR meanwhile: a sleeping worker holds no table reference and must not delay reuse.
    #[inline]
    fn back_off(&mut self, idle: AdaptiveIdle) {
        if self.idle_state.empty_loops < idle.empty_loops {
            return;
        }
        let sleep = self.idle_state.next_sleep;
        self.reader.offline();
        std::thread::sleep(sleep);
        self.reader.online();
        let stats = &self.out.stats;
        stats.idle_sleeps.inc();
        stats
            .idle_sleep_ns
            .add(u64::try_from(sleep.as_nanos()).unwrap_or(u64::MAX));
        self.idle_state.next_sleep = sleep.saturating_mul(2).min(idle.sleep_max);
    }

    /// Receives and handles one burst from RX queue `index`; returns how many packets came.
    #[inline]
    fn poll(&mut self, index: usize) -> usize {
        let rx = &mut self.rx[index];
        let port = rx.port;
        let rx_tsc = tsc();
        self.last_tsc = rx_tsc;
        let received = rx.queue.rx_burst(&mut self.burst);
        let stats = &self.out.stats;
        if received == 0 {
            stats.empty_polls.inc();
            return 0;
        }
        for i in 0..received {
            self.burst.prefetch(i);
        }
        stats.bursts.inc();
        let bytes: u64 = self.burst.iter().map(|m| m.len() as u64).sum();
        let port_counters = stats.port(port);
        port_counters.rx_packets.add(received as u64);
        port_counters.rx_bytes.add(bytes);

        let now_ns = self.clock.ns(rx_tsc);
        if !self.process(port, now_ns) {
            self.drop_unprocessable();
            if !self.process(port, now_ns) {
                // Cannot happen: every packet left has a valid window. Never send a packet
                // the engine did not see.
                let left = self.burst.len() as u64;
                self.out.counters.drops[DropReason::MultiSegment.index()].add(left);
                self.burst.clear();
            }
        }

        for (i, mbuf) in self.burst.drain().enumerate() {
            self.out
                .dispatch(mbuf, self.verdicts[i], self.windows[i], port, rx_tsc);
        }
        self.out.garbage.clear();

        let done = tsc();
        self.last_tsc = done;
        let cycles = done.saturating_sub(rx_tsc);
        self.out.stats.busy_cycles.add(cycles);
        self.out.local.burst_cycles.saturating_record(cycles);
        received
    }

    /// Lends every packet of the burst to the engine and keeps the verdicts and new windows.
    /// False, with nothing processed, when a packet is not one exclusively owned segment.
    #[inline]
    fn process(&mut self, port: PortId, now_ns: u64) -> bool {
        let mut pkts: ArrayVec<PacketBuf<'_>, MAX_BURST> = ArrayVec::new();
        for window in self.burst.windows_mut() {
            let Some(window) = window else {
                return false;
            };
            let Ok(pkt) = PacketBuf::new(window.buf, window.head, window.len) else {
                return false;
            };
            if pkts.try_push(pkt).is_err() {
                return false;
            }
        }
        let count = pkts.len();
        // One relaxed load per burst while no trace is armed.
        let traced = self
            .trace
            .as_mut()
            .and_then(|trace| trace.wants(port).then_some(trace));
        match traced {
            Some(trace) => {
                trace.before(&pkts);
                self.engine.process_burst_traced(
                    &mut self.state,
                    port,
                    now_ns,
                    &mut pkts,
                    &mut self.verdicts[..count],
                    trace.recorder(),
                );
                trace.after(port, now_ns, &self.verdicts[..count]);
            }
            _ => self.engine.process_burst(
                &mut self.state,
                port,
                now_ns,
                &mut pkts,
                &mut self.verdicts[..count],
            ),
        }
        for (slot, pkt) in self.windows.iter_mut().zip(&pkts) {
            *slot = (pkt.head(), pkt.len());
        }
        true
    }

    /// Frees and counts the packets the engine cannot take: several segments (`multi_segment`),
    /// or a data buffer shared with another mbuf (`shared_buffer`). Rare: the slow path of a burst.
    #[cold]
    fn drop_unprocessable(&mut self) {
        let counters = &self.out.counters;
        self.burst.retain(|mbuf| {
            let ok = mbuf.window_mut().is_some();
            if !ok {
                let reason = if mbuf.is_contiguous() {
                    DropReason::SharedBuffer
                } else {
                    DropReason::MultiSegment
                };
                counters.count_drop(reason);
            }
            ok
        });
    }
}

impl<const N: usize> Output<N> {
    /// Carries out the engine's verdict on one packet.
    #[inline]
    fn dispatch(
        &mut self,
        mbuf: Mbuf,
        verdict: Verdict,
        (head, len): (usize, usize),
        input: PortId,
        rx_tsc: u64,
    ) {
        match verdict {
            Verdict::Forward(port) => {
                if let Some(mbuf) = self.rewindow(mbuf, head, len) {
                    self.forward(mbuf, port, rx_tsc);
                }
            }
            Verdict::Punt(reason) => {
                if let Some(mbuf) = self.rewindow(mbuf, head, len) {
                    self.punt(mbuf, input, reason, rx_tsc);
                }
            }
            Verdict::Drop(reason) => self.discard(mbuf, reason),
        }
    }

    /// Writes the engine's window back into the mbuf (`data_off`, `data_len`, `pkt_len`).
    #[inline]
    fn rewindow(&mut self, mut mbuf: Mbuf, head: usize, len: usize) -> Option<Mbuf> {
        match mbuf.set_window(head, len) {
            Ok(()) => Some(mbuf),
            // The window lies inside the data buffer of a single segment (a PacketBuf
            // guarantees it), so this fails only for a multi-segment mbuf, which never gets
            // here. Never send a frame whose window was not written back.
            Err(_) => {
                self.discard(mbuf, DropReason::MultiSegment);
                None
            }
        }
    }

    /// Hands a packet to the control thread, or drops it when the channel is full.
    #[inline]
    fn punt(&mut self, mbuf: Mbuf, port: PortId, reason: PuntReason, rx_tsc: u64) {
        let punted = Punted {
            mbuf,
            port,
            reason,
            rx_tsc,
        };
        match self.punt.try_send(punted) {
            Ok(()) => self.counters.count_punt(reason),
            // Full, or the control thread is gone: either way nobody takes it now.
            Err(err) => self.discard(err.into_inner().mbuf, DropReason::PuntQueueFull),
        }
    }

    /// Queues a packet on its egress port's TX buffer, sending the buffer when it is full.
    #[inline]
    fn forward(&mut self, mbuf: Mbuf, port: PortId, rx_tsc: u64) {
        let Some(tx) = self.tx.get_mut(usize::from(port)).and_then(Option::as_mut) else {
            self.stats.tx_no_queue.inc();
            self.stats.port(port).tx_drops.inc();
            self.discard(mbuf, DropReason::NoTxQueue);
            return;
        };
        // A buffer is flushed as soon as it fills, so it always has room here.
        if let Err(mbuf) = tx.push(mbuf, rx_tsc) {
            tx.flush(&self.stats, &mut self.local.residence_cycles);
            if let Err(mbuf) = tx.push(mbuf, rx_tsc) {
                self.counters.count_drop(DropReason::TxFull);
                drop(mbuf);
            }
        }
        if tx.is_full() {
            tx.flush(&self.stats, &mut self.local.residence_cycles);
        }
    }

    /// Counts a drop and queues the packet for the bulk free at the end of the burst.
    #[inline]
    fn discard(&mut self, mbuf: Mbuf, reason: DropReason) {
        self.counters.count_drop(reason);
        // At most one burst of packets is discarded between two clears: there is room.
        if let Err(mbuf) = self.garbage.push(mbuf) {
            drop(mbuf);
        }
    }

    /// Sends every TX buffer that holds packets.
    #[inline]
    fn flush_all(&mut self) {
        for tx in self.tx.iter_mut().flatten() {
            if !tx.is_empty() {
                tx.flush(&self.stats, &mut self.local.residence_cycles);
            }
        }
    }
}

impl IdleState {
    fn new(idle: IdleMode) -> IdleState {
        let mut state = IdleState {
            empty_loops: 0,
            next_sleep: Duration::ZERO,
        };
        state.reset(idle);
        state
    }

    /// Traffic: back to full-speed polling.
    #[inline]
    fn reset(&mut self, idle: IdleMode) {
        self.empty_loops = 0;
        if let IdleMode::Adaptive(idle) = idle {
            self.next_sleep = idle.sleep_min;
        }
    }
}
