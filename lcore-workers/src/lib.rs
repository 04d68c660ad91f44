//! Worker threads that join the forwarding engine (`router-core`) with DPDK (`dpdk-bindings`).
//!
//! One worker per configured core, started with [`spawn`]: it pins itself, registers with EAL
//! (so that the per-lcore mempool caches serve it) and with QSBR, then runs to completion in a
//! poll loop until the shared stop flag is set:
//!
//! 1. for each of its RX queues: receive a burst, drop multi-segment mbufs (`multi_segment`),
//!    hand the frames to [`Engine::process_burst`](router_core::engine::Engine::process_burst)
//!    with the time of the burst, write each frame's new window back into its mbuf, and
//!    carry out the verdicts: `Forward` into the egress port's TX buffer (sent when full),
//!    `Drop` freed in bulk and counted by reason, `Punt` onto the bounded punt channel
//!    ([`Punted`]; a full channel is a counted drop, `punt_queue_full`);
//! 2. send every TX buffer that holds packets, so that at low load no packet waits for a burst
//!    to fill; what a TX queue does not take is freed and counted (`tx_full`);
//! 3. report a quiescent state to QSBR, publish the latency histograms when due, and back off
//!    when idle ([`IdleMode`]).
//!
//! The loop never locks, allocates, logs or makes a system call per packet. The exceptions are
//! per loop and bounded: a `try_lock` every 100 ms to publish the histograms (skipped when a
//! reader holds the lock), the idle sleep, and the wake-up of a control thread blocked on the
//! punt channel.
//!
//! The control thread reads each worker's counters ([`WorkerStats`]) and histograms
//! ([`WorkerHistograms`]) through its [`WorkerHandle`], without ever making the worker wait.
//!
//! Packet trace: a worker given a [`TraceTap`] checks it once per burst; while an operator's
//! trace is armed it runs the burst through the engine's traced path and sends the records of
//! matching packets to the control thread ([`TraceRecord`]).
//!
//! Time: the engine gets nanoseconds converted from the TSC with [`TscClock`]; the control
//! thread must use the same clock for the times it compares with the engine's.
#![forbid(unsafe_code)]

mod clock;
mod config;
mod error;
mod handle;
mod histogram;
pub mod port;
mod punt;
mod stats;
mod trace;
mod tx;
mod worker;

pub use clock::TscClock;
pub use config::{
    AdaptiveIdle, IdleMode, WorkerConfig, BURST_SIZES, IDLE_EMPTY_LOOPS_DEFAULT,
    IDLE_SLEEP_MAX_DEFAULT, IDLE_SLEEP_MIN_DEFAULT,
};
pub use error::WorkerError;
pub use handle::{spawn, WorkerHandle, WorkerShared, WorkerSummary, UNREGISTERED};
pub use histogram::{
    new_histogram, quantiles, HistogramSnapshot, Percentiles, QuantilePoint, WorkerHistograms,
    HISTOGRAM_MAX_CYCLES, HISTOGRAM_PUBLISH_INTERVAL_MS, HISTOGRAM_SIGFIG,
};
pub use punt::{
    inject_queue, punt_channel, punt_channel_with_capacity, InjectQueue, Injected, PuntReceiver,
    PuntSender, Punted, INJECT_QUEUE_CAPACITY, PUNT_CHANNEL_CAPACITY,
};
pub use stats::{PortCounters, PortSnapshot, WorkerStats, WorkerStatsSnapshot};
pub use trace::{
    TraceFilter, TraceReceiver, TraceRecord, TraceTap, TRACE_CHANNEL_CAPACITY, TRACE_PACKETS_MAX,
};

/// The histogram type of [`HistogramSnapshot`], re-exported so that users need no direct
/// dependency on `hdrhistogram`.
pub use hdrhistogram::Histogram;
