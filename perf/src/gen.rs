//! The generator proper: EAL, ports, and the trial loop on one lcore.
//!
//! One thread (the EAL main lcore) does everything, in a loop:
//! - **TX**, open loop: packet `k` of a TX port is due at `start + k * period` (TSC); every pass
//!   sends what is due, at most one burst per port, stamped with its *scheduled* time. Nothing
//!   the device under test does slows the schedule down; a TX queue that refuses packets loses
//!   them (counted as lost, like a NIC's missed packets).
//! - **RX** on every port: test packets are matched to their flow's sequence and their latency
//!   recorded; ARP requests are answered (the device may resolve its underlay next hop);
//!   anything else is counted as foreign.
//!
//! After the last scheduled packet the loop drains RX for a while, then reports.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk_bindings::{tsc, Eal, Mbuf, MbufBurst, Mempool, Port, PortConfig, RxQueue, TxQueue};

use crate::frame::{self, Endpoints, FrameSize, Received, Stamp, Template};
use crate::latency::LatencyRecorder;
use crate::mfr::Sample;
use crate::report::{PortReport, TrialReport};
use crate::routes::FlowSpec;
use crate::sched::{Delays, Watch};
use crate::seq::{Arrival, SeqTracker};

/// Packets per TX or RX call.
pub const BURST: usize = 32;
/// Largest number of ports.
pub const PORTS_MAX: usize = 4;
/// Mbuf cache per lcore.
const MBUF_CACHE: u32 = 256;
/// The probe's rate: one packet per millisecond per TX port.
const PROBE_RATE_PPS: f64 = 1000.0;
/// How far in the future a trial's schedule starts (lets the loop settle).
const START_DELAY: Duration = Duration::from_micros(200);
/// A trial is generator-limited when the generator was behind its schedule by more than the
/// lag limit for this fraction of the trial: it could not keep up, rather than being held up
/// once (a preempted thread catches up within a few milliseconds).
const LAGGING_FRACTION_MAX: f64 = 0.25;
/// A trial is cut short once the generator has been behind its schedule (by more than the lag
/// limit) for this fraction of the time since the start...
const ABORT_LAGGING_FRACTION: f64 = 0.75;
/// ... and at least this long.
const ABORT_AFTER: Duration = Duration::from_millis(50);
/// Trial number of the readiness probe (real trials count from 1).
const PROBE_TRIAL: u16 = 0;
/// Per-second samples kept without reallocating (a longer trial grows the vector once).
const SAMPLES_RESERVED: usize = 64;

/// How a trial sends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pace {
    /// Open loop at this rate (all TX ports together), packets per second.
    Rate(f64),
    /// As fast as the generator can: a full burst on every TX port on every pass, whatever
    /// the device takes (the maximum forwarding rate's overload).
    Full,
}

/// An error of the generator.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// DPDK failed.
    #[error(transparent)]
    Dpdk(#[from] dpdk_bindings::Error),
    /// A setting cannot work.
    #[error("{0}")]
    Setup(String),
    /// Nothing came back during the readiness probe.
    #[error("no test packet came back within {0:?}: is the device under test forwarding?")]
    NotReady(Duration),
    /// Stopped by a signal.
    #[error("interrupted")]
    Interrupted,
}

/// How to set the generator up.
#[derive(Debug, Clone)]
pub struct GenSetup {
    /// EAL vdev arguments, one per port (e.g. `net_memif0,role=client,socket=/run/a.sock,id=0`).
    pub vdevs: Vec<String>,
    /// Ports (indexes into `vdevs`) that send; every port receives.
    pub tx_ports: Vec<usize>,
    /// Destination MAC per TX port (in `tx_ports` order; the last one repeats).
    pub dst_macs: Vec<[u8; 6]>,
    /// IPv4 source of every packet.
    pub src_ip: Ipv4Addr,
    /// UDP destination port.
    pub dst_port: u16,
    /// Frame sizes.
    pub frame_size: FrameSize,
    /// The flows, shared out among the TX ports in contiguous blocks.
    pub flows: Vec<FlowSpec>,
    /// How EAL runs.
    pub eal: EalSetup,
    /// Mbufs in the pool.
    pub mbufs: u32,
    /// Descriptors per queue.
    pub ring_size: u16,
    /// How long to wait for the links to come up.
    pub link_timeout: Duration,
    /// Lag behind the schedule past which a trial counts as disturbed.
    pub lag_limit: Duration,
    /// Device threads to watch: (process id, CPU of its worker).
    pub watch: Vec<(u32, usize)>,
    /// Time the watched threads (and the generator) may wait for a CPU during a trial before
    /// it counts as disturbed.
    pub wait_limit: Duration,
}

/// How the generator's EAL runs (its ports come from [`GenSetup::vdevs`]).
#[derive(Debug, Clone)]
pub struct EalSetup {
    /// CPU of the lcore.
    pub lcore: usize,
    /// Use hugepages (otherwise `--no-huge`).
    pub hugepages: bool,
    /// Memory for EAL without hugepages, MiB.
    pub memory_mb: u32,
    /// EAL file prefix (unique per DPDK process).
    pub file_prefix: String,
    /// More EAL arguments.
    pub extra: Vec<String>,
}

/// One port of the generator.
#[derive(Debug)]
struct GenPort {
    report: PortReport,
    mac: [u8; 6],
    rx: RxQueue,
    tx: TxQueue,
}

/// What a TX port sends.
#[derive(Debug)]
struct TxPort {
    /// Index into the ports.
    port: usize,
    /// One template per entry of the size cycle.
    templates: Vec<Template>,
    /// Its flows: `first_flow..first_flow + flows`.
    first_flow: usize,
    flows: usize,
}

/// Counters of one pass of the trial loop's receive side.
#[derive(Debug, Default, Clone, Copy)]
struct RxCounters {
    vxlan: u64,
    stale: u64,
    foreign: u64,
    arp_replies: u64,
}

/// What the send side of the trial loop reads: the pool, the TX ports and their flows.
struct TxSide<'a> {
    pool: &'a Mempool,
    tx: &'a [TxPort],
    flows: &'a [FlowSpec],
    trial: u16,
    lag_limit_cycles: u64,
}

/// The send schedule of one trial and what came of it so far: packet `k` of a TX port is due
/// at `start + k * period` (TSC).
#[derive(Debug)]
struct Schedule {
    start: u64,
    period: f64,
    /// Packets per TX port; cut short when the generator cannot keep up.
    target: [u64; PORTS_MAX],
    /// The next packet of every TX port.
    next_k: [u64; PORTS_MAX],
    /// Every TX port's next flow (within its block of flows) and that round's sequence number.
    flow_cursor: [usize; PORTS_MAX],
    seq_cursor: [u32; PORTS_MAX],
    sent: u64,
    refused: u64,
    alloc_failed: u64,
    lag_max: u64,
    lag_end: u64,
    last_send: u64,
    lagging_cycles: u64,
    aborted: bool,
    all_sent_at: Option<u64>,
    rx: RxCounters,
    /// Full rate: the TSC at which sending stops (no schedule to keep).
    full_rate_end: Option<u64>,
    /// Received (distinct test packets) and sent packets, sampled every `sample_cycles`
    /// from `start` while sending.
    rx_samples: Vec<Sample>,
    tx_samples: Vec<Sample>,
    next_sample: u64,
    sample_cycles: u64,
}

impl Pace {
    /// The rate of all TX ports, the rate and the packets of each: at full rate the schedule
    /// only stands in for the report (no packet is ever due, the trial ends by time).
    fn schedule(self, duration: Duration, tx_ports: usize) -> (f64, f64, u64) {
        let rate_pps = match self {
            Pace::Rate(r) => r,
            Pace::Full => 1.0,
        };
        let port_rate = rate_pps / tx_ports as f64;
        let per_port = match self {
            Pace::Rate(_) => ((duration.as_secs_f64() * port_rate).round() as u64).max(1),
            Pace::Full => u64::MAX,
        };
        (rate_pps, port_rate, per_port)
    }
}

impl Schedule {
    fn new(start: u64, period: f64, per_port: u64) -> Schedule {
        Schedule {
            start,
            period,
            target: [per_port; PORTS_MAX],
            next_k: [0; PORTS_MAX],
            flow_cursor: [0; PORTS_MAX],
            seq_cursor: [0; PORTS_MAX],
            sent: 0,
            refused: 0,
            alloc_failed: 0,
            lag_max: 0,
            lag_end: 0,
            last_send: 0,
            lagging_cycles: 0,
            aborted: false,
            all_sent_at: None,
            rx: RxCounters::default(),
            full_rate_end: None,
            rx_samples: Vec::new(),
            tx_samples: Vec::new(),
            next_sample: u64::MAX,
            sample_cycles: 0,
        }
    }

    /// The trial's length, seconds, and its offered rate: as scheduled, or at full rate as long
    /// as the sending took and what the generator achieved.
    fn length(
        &self,
        tx_ports: usize,
        offered: u64,
        send_span_s: f64,
        port_rate: f64,
        rate_pps: f64,
    ) -> (f64, f64) {
        if self.full_rate_end.is_some() {
            let span = send_span_s.max(1e-9);
            (span, offered as f64 / span)
        } else {
            let target = self.target[..tx_ports].iter().max().copied().unwrap_or(0);
            (target as f64 / port_rate, rate_pps)
        }
    }

    /// Sets the end of a full-rate trial and, when `sampled`, a sample every second.
    fn prepare(&mut self, pace: Pace, duration: Duration, hz: f64, sampled: bool) {
        if pace == Pace::Full {
            self.full_rate_end = Some(self.start + (duration.as_secs_f64() * hz) as u64);
        }
        if sampled {
            self.sample_every(hz as u64);
        }
    }

    /// Samples the counters every `every` cycles from the start, the first sample at it.
    fn sample_every(&mut self, every: u64) {
        self.sample_cycles = every.max(1);
        self.next_sample = self.start;
        self.rx_samples.reserve(SAMPLES_RESERVED);
        self.tx_samples.reserve(SAMPLES_RESERVED);
    }

    /// Records a sample if one is due at `now` (while sending only).
    #[inline]
    fn sample(&mut self, now: u64, received: u64, hz: f64) {
        if now < self.next_sample || self.all_sent_at.is_some() {
            return;
        }
        let at_s = now.saturating_sub(self.start) as f64 / hz;
        self.rx_samples.push(Sample {
            at_s,
            packets: received,
        });
        self.tx_samples.push(Sample {
            at_s,
            packets: self.sent,
        });
        self.next_sample += self.sample_cycles;
    }

    /// Sends what is due at `now`, at most one burst per TX port, and notes when everything
    /// was sent. Returns whether a port was behind its schedule by more than the lag limit.
    #[inline(always)]
    fn send_due(
        &mut self,
        now: u64,
        side: &TxSide<'_>,
        ports: &mut [GenPort],
        burst: &mut MbufBurst<BURST>,
    ) -> bool {
        let mut lagging = false;
        let mut all_sent = true;
        for (t, txp) in side.tx.iter().enumerate() {
            let k0 = self.next_k[t];
            if k0 >= self.target[t] {
                continue;
            }
            all_sent = false;
            let due = match self.full_rate_end {
                Some(end) if now >= end => {
                    self.target[t] = k0;
                    self.last_send = self.last_send.max(now);
                    continue;
                }
                Some(_) => k0 + BURST as u64,
                None => {
                    ((((now - self.start) as f64) / self.period) as u64 + 1).min(self.target[t])
                }
            };
            if due <= k0 {
                continue;
            }
            let n = ((due - k0) as usize).min(BURST);
            let lag = if self.full_rate_end.is_some() {
                0
            } else {
                now.saturating_sub(self.start + (k0 as f64 * self.period) as u64)
            };
            self.lag_max = self.lag_max.max(lag);
            lagging |= lag > side.lag_limit_cycles;
            if side.pool.alloc_burst(burst, n).is_err() {
                self.alloc_failed += n as u64;
            } else {
                self.fill(burst, t, txp, k0, side, now);
                let took = ports[txp.port].tx.tx_burst(burst);
                self.sent += took as u64;
                self.refused += burst.len() as u64;
                burst.clear();
            }
            self.next_k[t] = k0 + n as u64;
            if self.next_k[t] == self.target[t] {
                self.lag_end = self.lag_end.max(lag);
                self.last_send = self.last_send.max(now);
            }
        }
        if all_sent {
            self.all_sent_at = Some(now);
        }
        lagging
    }

    /// Writes packets `k0..` of TX port `t` into the fresh mbufs of `burst`, stamped with their
    /// scheduled send times (at full rate, with `now`).
    #[inline(always)]
    fn fill(
        &mut self,
        burst: &mut MbufBurst<BURST>,
        t: usize,
        txp: &TxPort,
        k0: u64,
        side: &TxSide<'_>,
        now: u64,
    ) {
        let full_rate = self.full_rate_end.is_some();
        for (i, mbuf) in burst.as_mut_slice().iter_mut().enumerate() {
            let k = k0 + i as u64;
            let local = self.flow_cursor[t];
            let flow_id = txp.first_flow + local;
            let flow = side.flows[flow_id];
            // One template for a fixed size: no division per packet.
            let template = if txp.templates.len() == 1 {
                &txp.templates[0]
            } else {
                &txp.templates[(k % txp.templates.len() as u64) as usize]
            };
            let stamp = Stamp {
                trial: side.trial,
                flow: flow_id as u16,
                seq: self.seq_cursor[t],
                tsc: if full_rate {
                    now
                } else {
                    self.start + (k as f64 * self.period) as u64
                },
            };
            write_frame(mbuf, template, &flow, &stamp);
            self.flow_cursor[t] += 1;
            if self.flow_cursor[t] == txp.flows {
                self.flow_cursor[t] = 0;
                self.seq_cursor[t] = self.seq_cursor[t].wrapping_add(1);
            }
        }
    }

    /// Counts the time since `prev_now` as lagging, and stops sending once the generator has
    /// been behind nearly all the time: the rate is beyond it, and sending the rest would take
    /// many times the trial's length.
    fn note_lagging(&mut self, now: u64, prev_now: u64, abort_after: u64) {
        self.lagging_cycles += now - prev_now;
        if !self.aborted
            && now >= abort_after
            && self.lagging_cycles as f64 >= ABORT_LAGGING_FRACTION * (now - self.start) as f64
        {
            self.aborted = true;
            self.target = self.next_k;
            self.last_send = now;
        }
    }
}

/// A running generator. Create with [`Generator::start`], end with [`Generator::close`].
#[derive(Debug)]
pub struct Generator {
    eal: Eal,
    pool: Mempool,
    /// The control handles, kept for the shutdown order (queues first, then ports).
    controls: Vec<Port>,
    ports: Vec<GenPort>,
    tx: Vec<TxPort>,
    flows: Vec<FlowSpec>,
    frame_size: FrameSize,
    seq: SeqTracker,
    latency: LatencyRecorder,
    tsc_hz: u64,
    trial: u16,
    lag_limit_cycles: u64,
    watch: Watch,
    wait_limit: Duration,
    stop: Arc<AtomicBool>,
}

/// The device name of a vdev argument: what comes before the first comma.
pub fn device_name(vdev: &str) -> &str {
    vdev.split(',').next().unwrap_or(vdev)
}

/// The value of `key=` in a vdev argument.
fn vdev_param<'a>(vdev: &'a str, key: &str) -> Option<&'a str> {
    vdev.split(',')
        .skip(1)
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Whether a vdev is a memif client in zero-copy mode (its buffers are the generator's mbufs,
/// shared with the peer: no copy on the generator's side).
pub fn is_zero_copy(vdev: &str) -> bool {
    vdev.starts_with("net_memif") && vdev_param(vdev, "zero-copy") == Some("yes")
}

/// Most mbufs the memif driver itself may still hold after its ports are closed. In
/// zero-copy mode DPDK 22.11's driver keeps the mbufs posted to each RX ring (one ring's
/// worth) and those sent but not yet reclaimed (at most another), and never frees them; in
/// copy mode it holds none. A leak of the generator's own shows up above this bound.
pub fn driver_hold_max(vdevs: &[String]) -> u32 {
    vdevs
        .iter()
        .filter(|v| is_zero_copy(v))
        .map(|v| {
            let log2 = vdev_param(v, "rsize")
                .and_then(|r| r.parse::<u32>().ok())
                .unwrap_or(MEMIF_LOG2_RING_DEFAULT);
            2 * (1u32 << log2.min(14)) + BURST as u32
        })
        .sum()
}

/// memif's default ring size, log2 (`rsize`).
const MEMIF_LOG2_RING_DEFAULT: u32 = 10;

impl Generator {
    /// Initialises EAL, creates the pool, configures and starts the ports and waits for their
    /// links. `stop` is polled by every loop (set it from a signal handler).
    pub fn start(setup: &GenSetup, stop: Arc<AtomicBool>) -> Result<Generator, GenError> {
        validate(setup)?;
        let eal = Eal::init(&eal_args(setup))?;
        let tsc_hz = eal.tsc_hz();
        let pool = Mempool::pktmbuf(
            "pktgen",
            setup.mbufs,
            MBUF_CACHE,
            dpdk_bindings::DEFAULT_DATA_ROOM,
            None,
        )?;
        let mut controls = Vec::with_capacity(setup.vdevs.len());
        let mut ports = Vec::with_capacity(setup.vdevs.len());
        for (index, vdev) in setup.vdevs.iter().enumerate() {
            let device = device_name(vdev);
            let mut port = Port::by_name(device)?;
            let config = PortConfig {
                rx_desc: setup.ring_size,
                tx_desc: setup.ring_size,
                ..PortConfig::default()
            };
            port.configure(&config, &pool)?;
            port.start()?;
            let mac = port.mac_addr()?;
            let rx = port.rx_queue(0)?;
            let tx = port.tx_queue(0)?;
            ports.push(GenPort {
                report: PortReport {
                    vdev: vdev.clone(),
                    device: device.to_owned(),
                    mac: frame::format_mac(mac),
                    tx: setup.tx_ports.contains(&index),
                },
                mac,
                rx,
                tx,
            });
            controls.push(port);
        }
        let deadline = Instant::now() + setup.link_timeout;
        for port in &controls {
            let left = deadline.saturating_duration_since(Instant::now());
            port.wait_link_up(left.max(Duration::from_millis(1)))?;
        }
        let tx = tx_ports(setup, &ports);
        let lag_limit_cycles = (setup.lag_limit.as_secs_f64() * tsc_hz as f64) as u64;
        Ok(Generator {
            eal,
            pool,
            controls,
            ports,
            tx,
            flows: setup.flows.clone(),
            frame_size: setup.frame_size.clone(),
            seq: SeqTracker::new(setup.flows.len()),
            latency: LatencyRecorder::new(tsc_hz),
            tsc_hz,
            trial: PROBE_TRIAL,
            lag_limit_cycles,
            watch: Watch::new(&setup.watch),
            wait_limit: setup.wait_limit,
            stop,
        })
    }

    /// TSC frequency, Hz.
    pub fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    /// DPDK's version.
    pub fn dpdk_version(&self) -> &'static str {
        self.eal.version()
    }

    /// The ports, for reports.
    pub fn port_reports(&self) -> Vec<PortReport> {
        self.ports.iter().map(|p| p.report.clone()).collect()
    }

    /// Mbufs of the pool in use now.
    pub fn mbufs_in_use(&self) -> u32 {
        self.pool.in_use()
    }

    /// Number of device threads whose waiting time is watched.
    pub fn watched_threads(&self) -> usize {
        self.watch.device_threads()
    }

    /// Whether a stop was requested.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sends one packet per millisecond per TX port until one comes back (answering ARP
    /// meanwhile); returns how long that took.
    pub fn probe(&mut self, timeout: Duration) -> Result<Duration, GenError> {
        let began = Instant::now();
        self.trial = PROBE_TRIAL;
        let report = self.run(Pace::Rate(PROBE_RATE_PPS), timeout, Duration::ZERO, true);
        if self.stopped() {
            return Err(GenError::Interrupted);
        }
        if report.received == 0 {
            return Err(GenError::NotReady(timeout));
        }
        Ok(began.elapsed())
    }

    /// Runs one trial: `rate_pps` offered (all TX ports together) for `duration`, then RX for
    /// at most `drain` more.
    pub fn trial(&mut self, rate_pps: f64, duration: Duration, drain: Duration) -> TrialReport {
        self.trial = self.trial.wrapping_add(1).max(1);
        self.run(Pace::Rate(rate_pps), duration, drain, false)
    }

    /// Runs one trial at full rate (see [`Pace::Full`]) for `duration`, then RX for at most
    /// `drain` more. The report's per-second samples give the maximum forwarding rate.
    pub fn trial_full_rate(&mut self, duration: Duration, drain: Duration) -> TrialReport {
        self.trial = self.trial.wrapping_add(1).max(1);
        self.run(Pace::Full, duration, drain, false)
    }

    /// The trial loop: sends what is due, notes the lag (and cuts the trial short when the
    /// generator cannot keep up), receives on every port, until everything sent is accounted
    /// for or the drain time is over (or, for the probe, the first packet is back).
    fn run(
        &mut self,
        pace: Pace,
        duration: Duration,
        drain: Duration,
        until_first: bool,
    ) -> TrialReport {
        self.seq.reset();
        self.latency.reset();
        let hz = self.tsc_hz as f64;
        let (rate_pps, port_rate, per_port) = pace.schedule(duration, self.tx.len());
        let drain_cycles = (drain.as_secs_f64() * hz) as u64;
        let trial = self.trial;
        let waits_before = self.watch.read();

        let Generator {
            pool,
            ports,
            tx,
            flows,
            seq,
            latency,
            lag_limit_cycles,
            stop,
            ..
        } = self;
        let side = TxSide {
            pool,
            tx,
            flows,
            trial,
            lag_limit_cycles: *lag_limit_cycles,
        };
        let mut burst: MbufBurst<BURST> = MbufBurst::new();
        let mut replies: MbufBurst<BURST> = MbufBurst::new();
        let mut prev_now = tsc();
        let mut sched = Schedule::new(
            tsc() + (START_DELAY.as_secs_f64() * hz) as u64,
            hz / port_rate,
            per_port,
        );
        sched.prepare(pace, duration, hz, !until_first);
        let abort_after = sched.start + (ABORT_AFTER.as_secs_f64() * hz) as u64;
        loop {
            let now = tsc();
            let mut lagging = false;
            if sched.all_sent_at.is_none() && now >= sched.start {
                lagging = sched.send_due(now, &side, ports, &mut burst);
            }
            if lagging {
                sched.note_lagging(now, prev_now, abort_after);
            }
            sched.sample(now, seq.counts().distinct(), hz);
            prev_now = now;
            for port in ports.iter_mut() {
                poll_rx(
                    port,
                    &mut burst,
                    &mut replies,
                    trial,
                    seq,
                    latency,
                    &mut sched.rx,
                );
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if until_first && seq.counts().received > 0 {
                break;
            }
            if let Some(at) = sched.all_sent_at {
                let accounted = seq.counts().distinct() >= sched.sent;
                if accounted || tsc().saturating_sub(at) >= drain_cycles {
                    break;
                }
            }
        }
        self.trial_report(&sched, rate_pps, port_rate, waits_before)
    }

    /// What a trial's schedule came to.
    fn trial_report(
        &self,
        sched: &Schedule,
        rate_pps: f64,
        port_rate: f64,
        waits_before: Delays,
    ) -> TrialReport {
        let hz = self.tsc_hz as f64;
        let n_tx = self.tx.len();
        let offered: u64 = sched.next_k[..n_tx].iter().sum();
        let counts = self.seq.counts();
        let distinct = counts.distinct();
        let lost = offered.saturating_sub(distinct);
        let send_span_s = sched.last_send.saturating_sub(sched.start) as f64 / hz;
        let full_rate = sched.full_rate_end.is_some();
        let (duration_s, rate_pps) = sched.length(n_tx, offered, send_span_s, port_rate, rate_pps);
        let tx_pps_achieved = if send_span_s > duration_s {
            offered as f64 / send_span_s
        } else {
            rate_pps
        };
        let lag_end_s = sched.lag_end as f64 / hz;
        let lagging_s = sched.lagging_cycles as f64 / hz;
        // Over the time the sending actually took (longer than scheduled when the generator
        // fell behind).
        let rx_pps = distinct as f64 / duration_s.max(send_span_s);
        let interval_ns = 1e9 / rate_pps;
        let waits = self.watch.read().since(waits_before);
        let waited = Duration::from_nanos(waits.device_ns + waits.own_ns);
        TrialReport {
            trial: self.trial,
            rate_pps,
            duration_s,
            offered,
            sent: sched.sent,
            tx_refused: sched.refused,
            alloc_failed: sched.alloc_failed,
            received: counts.received,
            received_vxlan: sched.rx.vxlan,
            lost,
            loss_ratio: if offered == 0 {
                0.0
            } else {
                lost as f64 / offered as f64
            },
            reordered: counts.reordered,
            duplicated: counts.duplicated,
            late: counts.late,
            stale: sched.rx.stale,
            foreign: sched.rx.foreign,
            arp_replies: sched.rx.arp_replies,
            rx_pps,
            rx_gbps: 0.0,
            tx_pps_achieved,
            tx_lag_max_ns: sched.lag_max as f64 * 1e9 / hz,
            tx_lag_end_ns: lag_end_s * 1e9,
            // Behind for long, and not because the generator waited for a CPU: its limit.
            generator_limited: (sched.aborted
                || lagging_s > LAGGING_FRACTION_MAX * duration_s.max(send_span_s))
                && (waits.own_ns as f64) < 0.5e9 * lagging_s,
            aborted: sched.aborted,
            device_wait_ns: waits.device_ns,
            generator_wait_ns: waits.own_ns,
            disturbed: sched.lag_max > self.lag_limit_cycles || waited > self.wait_limit,
            latency: self.latency.summary(),
            latency_record_corrected: if full_rate {
                None
            } else {
                self.latency.summary_record_corrected(interval_ns)
            },
            rx_samples: sched.rx_samples.clone(),
            tx_samples: sched.tx_samples.clone(),
        }
        .with_gbps(self.frame_size.mean_bytes())
    }

    /// Stops and closes the ports, frees the pool and ends EAL. Returns the number of mbufs
    /// still in use once the ports were closed (0 unless something leaked).
    pub fn close(self) -> Result<u32, GenError> {
        let Generator {
            eal,
            pool,
            controls,
            ports,
            ..
        } = self;
        drop(ports);
        for port in controls {
            port.close()?;
        }
        let in_use = pool.in_use();
        if in_use == 0 {
            pool.close()?;
            eal.cleanup()?;
        }
        Ok(in_use)
    }
}

impl TrialReport {
    fn with_gbps(mut self, mean_bytes: f64) -> TrialReport {
        self.rx_gbps = self.rx_pps * mean_bytes * 8.0 / 1e9;
        self
    }
}

/// Writes test frame `stamp` of `flow` into a fresh mbuf.
#[inline(always)]
fn write_frame(mbuf: &mut Mbuf, template: &Template, flow: &FlowSpec, stamp: &Stamp) {
    let Some(window) = mbuf.window_mut() else {
        return;
    };
    let head = window.head;
    let Some(out) = window.buf.get_mut(head..head + template.len) else {
        return;
    };
    template.write(out, flow.dst, flow.src_port, stamp);
    // The window fits (checked by the get_mut above), so this cannot fail.
    let _ = mbuf.set_window(head, template.len);
}

/// Receives one burst on `port` and accounts it.
#[inline]
fn poll_rx(
    port: &mut GenPort,
    burst: &mut MbufBurst<BURST>,
    replies: &mut MbufBurst<BURST>,
    trial: u16,
    seq: &mut SeqTracker,
    latency: &mut LatencyRecorder,
    c: &mut RxCounters,
) {
    let n = port.rx.rx_burst(burst);
    if n == 0 {
        return;
    }
    let now = tsc();
    // The frames were just written by the other side's core: start every miss at once.
    for i in 0..n {
        burst.prefetch(i);
    }
    let mut arp = false;
    for mbuf in burst.iter() {
        match frame::classify(mbuf.data()) {
            Received::Test { stamp, vxlan } => {
                if stamp.trial != trial {
                    c.stale += 1;
                    continue;
                }
                match seq.record(usize::from(stamp.flow), stamp.seq) {
                    Some(Arrival::Duplicate) => {}
                    Some(_) => latency.record(stamp.tsc, now),
                    None => c.foreign += 1,
                }
                c.vxlan += u64::from(vxlan);
            }
            Received::ArpRequest => arp = true,
            Received::Foreign => c.foreign += 1,
        }
    }
    if arp {
        answer_arp(port, burst, replies, c);
    }
    burst.clear();
}

/// Moves the ARP requests out of `burst`, turns them into replies and sends them back.
#[cold]
fn answer_arp(
    port: &mut GenPort,
    burst: &mut MbufBurst<BURST>,
    replies: &mut MbufBurst<BURST>,
    c: &mut RxCounters,
) {
    let mut i = burst.len();
    while i > 0 {
        i -= 1;
        let is_request = burst.as_slice()[i].data().len() >= 42
            && frame::classify(burst.as_slice()[i].data()) == Received::ArpRequest;
        if !is_request {
            continue;
        }
        if let Some(mut mbuf) = burst.swap_remove(i) {
            if let Some(bytes) = mbuf.data_mut() {
                if frame::arp_reply_in_place(bytes, port.mac) {
                    c.arp_replies += 1;
                    let _ = replies.push(mbuf);
                }
            }
        }
    }
    port.tx.tx_burst(replies);
    replies.clear();
}

fn validate(setup: &GenSetup) -> Result<(), GenError> {
    let bad = |msg: String| Err(GenError::Setup(msg));
    if setup.vdevs.is_empty() || setup.vdevs.len() > PORTS_MAX {
        return bad(format!("1 to {PORTS_MAX} ports, got {}", setup.vdevs.len()));
    }
    if setup.tx_ports.is_empty() || setup.tx_ports.iter().any(|&p| p >= setup.vdevs.len()) {
        return bad(format!(
            "TX ports {:?} must be among the {} ports",
            setup.tx_ports,
            setup.vdevs.len()
        ));
    }
    if setup.flows.len() < setup.tx_ports.len() || setup.flows.len() > crate::routes::FLOWS_MAX {
        return bad(format!(
            "{} flows: need one per TX port and at most {}",
            setup.flows.len(),
            crate::routes::FLOWS_MAX
        ));
    }
    if setup.dst_macs.is_empty() {
        return bad("no destination MAC".into());
    }
    Ok(())
}

fn eal_args(setup: &GenSetup) -> Vec<String> {
    let eal = &setup.eal;
    let mut args = vec![
        "-l".to_owned(),
        eal.lcore.to_string(),
        format!("--file-prefix={}", eal.file_prefix),
        "--no-pci".to_owned(),
    ];
    if !eal.hugepages {
        args.extend([
            "--no-huge".to_owned(),
            "-m".to_owned(),
            eal.memory_mb.to_string(),
        ]);
    }
    args.extend(setup.vdevs.iter().map(|v| format!("--vdev={v}")));
    if setup.vdevs.iter().any(|v| is_zero_copy(v)) {
        // memif zero-copy shares the mbuf memory by file descriptor: one file per segment list.
        args.push("--single-file-segments".to_owned());
    }
    // EAL's start-up chatter goes; warnings and errors stay (--eal overrides).
    args.push("--log-level=lib.eal:warning".to_owned());
    args.extend(eal.extra.iter().cloned());
    args
}

fn tx_ports(setup: &GenSetup, ports: &[GenPort]) -> Vec<TxPort> {
    let n = setup.tx_ports.len();
    let per = setup.flows.len() / n;
    setup
        .tx_ports
        .iter()
        .enumerate()
        .map(|(i, &port)| {
            let dst_mac = setup.dst_macs[i.min(setup.dst_macs.len() - 1)];
            let ends = Endpoints {
                src_mac: ports[port].mac,
                dst_mac,
                src_ip: setup.src_ip,
                dst_port: setup.dst_port,
            };
            TxPort {
                port,
                templates: setup
                    .frame_size
                    .cycle()
                    .into_iter()
                    .map(|size| Template::new(size, &ends))
                    .collect(),
                first_flow: i * per,
                flows: if i + 1 == n {
                    setup.flows.len() - i * per
                } else {
                    per
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_copy_vdevs_and_their_driver_hold() {
        let zc = "net_memif0,role=client,socket=/run/a.sock,id=0,zero-copy=yes".to_owned();
        let copy = "net_memif1,role=client,socket=/run/b.sock,id=0".to_owned();
        let small = "net_memif2,role=client,zero-copy=yes,rsize=8".to_owned();
        assert!(is_zero_copy(&zc) && !is_zero_copy(&copy));
        assert_eq!(device_name(&zc), "net_memif0");
        assert_eq!(driver_hold_max(std::slice::from_ref(&copy)), 0);
        assert_eq!(driver_hold_max(&[zc, copy, small]), 2048 + 32 + 512 + 32);
    }
}
