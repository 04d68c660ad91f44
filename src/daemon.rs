//! The daemon: DPDK setup from the configuration, the workers, the control thread's loop, and
//! a clean stop that proves no packet buffer leaked.
//!
//! The control thread is the process's main thread (the EAL main lcore). It owns the
//! [`ControlPlane`] (the only writer of the tables), answers punted packets, runs the
//! neighbour timers and transmits what it originates on its own TX queue of every port. It
//! never makes a worker wait.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, Receiver, Sender};
use dpdk_bindings::{Eal, Mbuf, Mempool, Port, PortConfig};
use lcore_workers::{
    inject_queue, punt_channel_with_capacity, AdaptiveIdle, HistogramSnapshot, IdleMode,
    InjectQueue, Injected, PuntReceiver, Punted, TraceFilter, TraceReceiver, TraceRecord, TraceTap,
    TscClock, WorkerConfig, WorkerHandle, WorkerHistograms, WorkerShared,
};
use router_core::control::{
    ApplyError, ControlConfig, ControlPlane, PortSetup, PuntAction, Solicit,
};
use router_core::engine::{DropReason, Engine, PacketBuf, PuntReason, Verdict, WorkerState};
use router_core::qsbr::Qsbr;
use router_core::stats::{EngineCounters, EngineTotals};
use router_core::table::NextHopIndex;
use router_core::wire::EthernetAddress;
use tracing::{debug, error, info, warn};

use crate::api::server::ApiServer;
use crate::api::view::{
    Applied as AppliedView, BatchApplied, HistSet, HistView, HostView, IcmpView, Interfaces,
    Lookup, MetricsData, MetricsSummary, Neighbors, NetworkView, Networks, Peers, Ports, ResetView,
    RouterEntry, Routers, Routes, StatsView, TracePacket, TraceView, WorkerHist,
};
use crate::api::{
    ApiError, Call, ErrorCode, Outcome, Reply, Request, TraceRequest, CALL_QUEUE_DEPTH,
};
use crate::config::{Config, IdleSetting};
use crate::metrics::MetricsServer;
use crate::stats::{Latency, PortStatsView, RouterView, Snapshot};

/// How often the control thread runs the neighbour timers.
const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// How long the control thread waits for a punted packet before doing its other work.
const PUNT_WAIT: Duration = Duration::from_millis(10);
/// Punted packets handled per loop before the timers get a turn.
const PUNT_BUDGET: usize = 256;
/// How long a stopping daemon waits for each worker.
const WORKER_JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the links to come up at start.
const LINK_WAIT: Duration = Duration::from_secs(3);
/// Times a packet may go back through the engine on the control thread.
const REINJECT_DEPTH_MAX: u32 = 2;
/// API requests answered per loop before punted packets and timers get a turn.
const CALL_BUDGET: usize = 64;

/// Options from the command line.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Created once traffic can flow.
    pub ready_file: Option<PathBuf>,
    /// Written at exit with the final counters.
    pub summary_json: Option<PathBuf>,
}

/// Why the daemon stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("DPDK: {0}")]
    Dpdk(#[from] dpdk_bindings::Error),
    #[error("port `{port}` ({device}): {source}")]
    Port {
        port: String,
        device: String,
        source: dpdk_bindings::Error,
    },
    #[error("{key}: {source}")]
    Routing { key: String, source: ApplyError },
    #[error("worker: {0}")]
    Worker(#[from] lcore_workers::WorkerError),
    #[error("{0}")]
    Other(String),
    #[error("{0} packet buffers leaked: the mempool did not get all of them back")]
    Leak(u32),
}

impl DaemonError {
    /// The process exit code: 3 for a leak, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Leak(_) => 3,
            _ => 1,
        }
    }
}

/// A port as the daemon set it up.
struct PortRuntime {
    name: String,
    device: String,
    fabric: bool,
    port: Port,
}

/// Runs the daemon until SIGINT or SIGTERM.
pub fn run(cfg: Config, opts: Options) -> Result<Snapshot, DaemonError> {
    let started = Instant::now();
    let eal = Eal::init(&cfg.eal_args())?;
    info!(version = eal.version(), tsc_hz = eal.tsc_hz(), "EAL up");
    let clock = TscClock::new(eal.tsc_hz())
        .ok_or_else(|| DaemonError::Other("TSC frequency is 0".into()))?;
    let pool = Mempool::pktmbuf(
        "dvrd_pool",
        cfg.dataplane.mbufs,
        cfg.dataplane.mbuf_cache,
        dpdk_bindings::DEFAULT_DATA_ROOM,
        None,
    )?;
    let result = run_with(&cfg, &opts, &eal, &pool, clock, started);
    // Everything holding mbufs or ports is dropped by now.
    let in_use = pool.in_use();
    let mut snapshot = match result {
        Ok(s) => s,
        Err(e) => {
            drop(pool);
            let _ = eal.cleanup();
            return Err(e);
        }
    };
    snapshot.mempool_in_use = in_use;
    snapshot.mempool_available = pool.available();
    if let Some(path) = &opts.summary_json {
        let json = serde_json::to_string_pretty(&snapshot).unwrap_or_default();
        if let Err(e) = std::fs::write(path, json) {
            warn!(path = %path.display(), "cannot write the summary: {e}");
        }
    }
    if in_use != 0 {
        error!(
            in_use,
            "LEAK: packet buffers were not returned to the mempool"
        );
        return Err(DaemonError::Leak(in_use));
    }
    if let Err(e) = pool.close() {
        warn!("mempool: {e}");
    }
    if let Err(e) = eal.cleanup() {
        warn!("EAL cleanup: {e}");
    }
    Ok(snapshot)
}

fn run_with(
    cfg: &Config,
    opts: &Options,
    eal: &Eal,
    pool: &Mempool,
    clock: TscClock,
    started: Instant,
) -> Result<Snapshot, DaemonError> {
    let n_workers = cfg.workers.len();
    let mut ports = open_ports(cfg, pool, n_workers)?;

    // Router-core port ids are DPDK port ids: unconfigured ids become unused placeholders.
    let max_id = ports.iter().map(|p| p.port.id().0).max().unwrap_or(0);
    let mut setups: Vec<PortSetup> = (0..=max_id)
        .map(|i| PortSetup {
            name: format!("unused-{i}"),
            mac: EthernetAddress::ZERO,
            mtu: 1500,
            fabric: false,
        })
        .collect();
    for (p, spec) in ports.iter().zip(&cfg.ports) {
        setups[usize::from(p.port.id().0)] = PortSetup {
            name: p.name.clone(),
            mac: EthernetAddress(p.port.mac_addr().map_err(|source| port_error(p, source))?),
            mtu: spec.mtu,
            fabric: p.fabric,
        };
    }
    let mut ccfg = ControlConfig::new(setups);
    ccfg.next_hops = cfg.tables.next_hops;
    ccfg.l2_entries = cfg.tables.l2_entries;
    ccfg.tbl8_groups_compact = cfg.tables.tbl8_groups_compact;
    ccfg.tbl8_groups_large = cfg.tables.tbl8_groups_large;
    ccfg.icmp_rate_per_s = cfg.icmp.rate_per_s;
    ccfg.icmp_burst = cfg.icmp.burst;
    ccfg.fabric_gateway = cfg.fabric.gateway;
    ccfg.neighbor = cfg.neighbor.clone();
    let qsbr = Arc::new(Qsbr::new(n_workers + 2));
    let mut cp =
        ControlPlane::new(ccfg, Arc::clone(&qsbr)).map_err(|source| DaemonError::Routing {
            key: "ports".into(),
            source,
        })?;
    cp.set_table_memory_hook(|addr, len| {
        if let Err(e) = dpdk_bindings::advise_hugepages(addr, len) {
            debug!("transparent huge pages for a routing table: {e}");
        }
    });
    let keyed = cfg.changes_with_keys();
    let changes: Vec<_> = keyed.iter().map(|(_, c)| c.clone()).collect();
    cp.apply_batch(&changes)
        .map_err(|(i, source)| DaemonError::Routing {
            key: keyed[i].0.clone(),
            source,
        })?;
    let usage = cp.table_usage();
    info!(
        routes = usage.routes,
        neighbours = usage.next_hops_used,
        l2 = usage.l2_used,
        "routing state programmed"
    );

    // The control API and the metrics endpoint take requests from now on; the control thread
    // answers them once its loop runs.
    let (calls_tx, calls_rx) = bounded(CALL_QUEUE_DEPTH);
    let api = ApiServer::start(&cfg.control.socket, calls_tx.clone())
        .map_err(|e| DaemonError::Other(e.to_string()))?;
    let metrics = match cfg.control.metrics {
        Some(addr) => {
            crate::metrics::check_exposure(addr);
            Some(
                MetricsServer::start(addr, calls_tx.clone())
                    .map_err(|e| DaemonError::Other(e.to_string()))?,
            )
        }
        None => None,
    };
    let (trace_tap, trace_rx) = TraceTap::new();
    let trace_tap = Arc::new(trace_tap);

    let engine = Engine::new(Arc::clone(cp.dataplane()));
    let (punt_tx, punt_rx) = punt_channel_with_capacity(cfg.dataplane.punt_queue);
    let stop_workers = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| DaemonError::Other(format!("signal handler: {e}")))?;
    }

    // The control thread sends through worker 0 (it needs no TX queue of its own).
    let inject = inject_queue();
    let mut workers = Vec::with_capacity(n_workers);
    let mut next_rx_queue: HashMap<String, u16> = HashMap::new();
    for (i, w) in cfg.workers.iter().enumerate() {
        let mut wc = WorkerConfig::new(i, eal.tsc_hz());
        wc.core = Some(w.core);
        if i == 0 {
            wc.inject = Some(Arc::clone(&inject));
        }
        wc.burst_size = cfg.dataplane.burst;
        wc.trace = Some(Arc::clone(&trace_tap));
        wc.idle = match cfg.dataplane.idle {
            IdleSetting::Poll => IdleMode::Poll,
            IdleSetting::Adaptive => IdleMode::Adaptive(AdaptiveIdle::DEFAULT),
        };
        for name in &w.rx {
            let q = next_rx_queue.entry(name.clone()).or_insert(0);
            let p = ports
                .iter_mut()
                .find(|p| &p.name == name)
                .expect("validated");
            wc.rx_queues.push(
                p.port
                    .rx_queue(*q)
                    .map_err(|source| port_error(p, source))?,
            );
            *q += 1;
        }
        for p in ports.iter_mut() {
            let q = p
                .port
                .tx_queue(i as u16)
                .map_err(|source| port_error(p, source))?;
            wc.tx_queues.push(q);
        }
        let shared = WorkerShared {
            engine: engine.clone(),
            qsbr: Arc::clone(&qsbr),
            punt: punt_tx.clone(),
            stop: Arc::clone(&stop_workers),
        };
        match lcore_workers::spawn(wc, shared) {
            Ok(h) => workers.push((h, w.core)),
            Err(e) => {
                stop_workers.store(true, Ordering::Relaxed);
                for (h, _) in workers {
                    let _ = h.join();
                }
                return Err(e.into());
            }
        }
    }
    drop(punt_tx);

    let mut control = ControlThread {
        cp,
        worker: engine.worker_state(),
        engine,
        pool: pool.clone(),
        inject,
        holds: HashMap::new(),
        clock,
        punt_rx,
        next_tick: Instant::now(),
        ident: 0,
        calls_rx,
        _calls_tx: calls_tx,
        trace: Trace {
            tap: trace_tap,
            rx: trace_rx,
            pending: None,
            next_session: 1,
        },
        baseline: None,
    };
    let hists = Histograms::new(
        workers
            .iter()
            .map(|(h, _)| Arc::clone(h.histograms()))
            .collect(),
        eal.tsc_hz(),
    );
    let mut daemon = Daemon {
        ports,
        workers,
        control_counters: Arc::clone(control.worker.counters()),
        started,
        clock,
        hists,
        api: Some(api),
        metrics,
    };
    daemon.wait_links();
    if let Some(path) = &opts.ready_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| DaemonError::Other(format!("ready file {}: {e}", path.display())))?;
    }
    info!(
        ports = daemon.ports.len(),
        workers = daemon.workers.len(),
        "dvrd ready"
    );

    let result = control.run(&stop, &mut daemon);
    // No new requests; those in flight are answered `shutting_down` when the control thread's
    // receiver goes.
    daemon.api.take();
    daemon.metrics.take();
    control.trace.tap.disarm();
    stop_workers.store(true, Ordering::Relaxed);
    let mut snapshot = daemon.snapshot(&control.cp, None);
    for (h, core) in std::mem::take(&mut daemon.workers) {
        let index = h.index();
        match join_with_timeout(h, WORKER_JOIN_TIMEOUT) {
            Ok(summary) => {
                if let Some(w) = snapshot.workers.iter_mut().find(|w| w.index == index) {
                    *w = Snapshot::worker_view(&summary.stats, core);
                }
            }
            Err(e) => error!(worker = index, "{e}"),
        }
    }
    // The workers published everything they recorded when they stopped.
    daemon.hists.collect();
    snapshot.latency = Latency::of(Some(&daemon.hists.lifetime_merged()));
    // Free what the control thread holds, then the ports.
    drop(control);
    for p in daemon.ports.drain(..) {
        let mut port = p.port;
        if let Err(e) = port.stop() {
            warn!(port = %p.name, "stop: {e}");
        }
        if let Err(e) = port.close() {
            warn!(port = %p.name, "close: {e}");
        }
    }
    snapshot.uptime_s = started.elapsed().as_secs_f64();
    result.map(|()| snapshot)
}

/// Refuses a filter that names a router that does not exist.
fn check_router(cp: &ControlPlane, router: Option<&str>) -> Result<(), ApiError> {
    match router {
        Some(r) if cp.router_id(r).is_none() => Err(not_found("router", r)),
        _ => Ok(()),
    }
}

fn not_found(kind: &str, name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("{kind} `{name}` does not exist"),
    )
}

fn port_error(p: &PortRuntime, source: dpdk_bindings::Error) -> DaemonError {
    DaemonError::Port {
        port: p.name.clone(),
        device: p.device.clone(),
        source,
    }
}

/// Configures and starts every port: one RX queue per worker that polls it, one TX queue per
/// worker.
fn open_ports(
    cfg: &Config,
    pool: &Mempool,
    n_workers: usize,
) -> Result<Vec<PortRuntime>, DaemonError> {
    let mut out = Vec::with_capacity(cfg.ports.len());
    for spec in &cfg.ports {
        let err = |source| DaemonError::Port {
            port: spec.name.clone(),
            device: spec.device.clone(),
            source,
        };
        let mut port = Port::by_name(&spec.device).map_err(err)?;
        let rx_queues = cfg
            .workers
            .iter()
            .filter(|w| w.rx.contains(&spec.name))
            .count() as u16;
        let pc = PortConfig {
            rx_queues,
            tx_queues: n_workers as u16,
            rx_desc: cfg.dataplane.rx_desc,
            tx_desc: cfg.dataplane.tx_desc,
            ..PortConfig::default()
        };
        port.configure(&pc, pool).map_err(err)?;
        // The device may not let us set its MTU (some virtual devices cannot); the router's
        // checks use the configured one either way.
        if let Err(e) = port.set_mtu(spec.mtu) {
            debug!(port = %spec.name, "MTU {} not set on the device: {e}", spec.mtu);
        }
        port.start().map_err(err)?;
        let mac = EthernetAddress(port.mac_addr().map_err(err)?);
        info!(port = %spec.name, device = %spec.device, id = port.id().0, %mac, fabric = spec.fabric, "port started");
        out.push(PortRuntime {
            name: spec.name.clone(),
            device: spec.device.clone(),
            fabric: spec.fabric,
            port,
        });
    }
    Ok(out)
}

fn join_with_timeout(
    h: WorkerHandle,
    timeout: Duration,
) -> Result<lcore_workers::WorkerSummary, String> {
    let deadline = Instant::now() + timeout;
    while !h.is_finished() {
        if Instant::now() > deadline {
            return Err("did not stop in time".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    h.join().map_err(|e| e.to_string())
}

/// What the daemon owns besides the control plane.
struct Daemon {
    ports: Vec<PortRuntime>,
    workers: Vec<(WorkerHandle, usize)>,
    control_counters: Arc<EngineCounters>,
    started: Instant,
    clock: TscClock,
    /// The workers' latency histograms, accumulated on the reader's side.
    hists: Histograms,
    api: Option<ApiServer>,
    metrics: Option<MetricsServer>,
}

impl Daemon {
    fn wait_links(&self) {
        for p in &self.ports {
            if !p.port.wait_link_up(LINK_WAIT).is_ok_and(|l| l.up) {
                warn!(port = %p.name, "link is down");
            }
        }
    }

    /// All counters now, with the latency since start.
    pub fn snapshot(&mut self, cp: &ControlPlane, pool: Option<&Mempool>) -> Snapshot {
        let mut s = Snapshot {
            tsc_hz: self.clock.hz(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            ..Snapshot::default()
        };
        let worker_snaps: Vec<_> = self
            .workers
            .iter()
            .map(|(h, core)| (h.stats().snapshot(), *core))
            .collect();
        for p in &self.ports {
            let id = p.port.id().0;
            let mut v = PortStatsView {
                name: p.name.clone(),
                device: p.device.clone(),
                port_id: id,
                fabric: p.fabric,
                link_up: p.port.link().is_ok_and(|l| l.up),
                ..PortStatsView::default()
            };
            for (w, _) in &worker_snaps {
                let c = w.port(id);
                v.rx_packets += c.rx_packets;
                v.rx_bytes += c.rx_bytes;
                v.tx_packets += c.tx_packets;
                v.tx_bytes += c.tx_bytes;
                v.tx_drops += c.tx_drops;
            }
            if let Ok(d) = p.port.stats() {
                v.device_rx_packets = d.rx_packets;
                v.device_tx_packets = d.tx_packets;
                v.device_rx_missed = d.rx_missed;
                v.device_rx_errors = d.rx_errors;
                v.device_tx_errors = d.tx_errors;
                v.device_rx_nombuf = d.rx_nombuf;
            }
            s.ports.push(v);
        }
        s.workers = worker_snaps
            .iter()
            .map(|(w, core)| Snapshot::worker_view(w, *core))
            .collect();
        let counters: Vec<Arc<EngineCounters>> = self
            .workers
            .iter()
            .map(|(h, _)| Arc::clone(&h.stats().engine))
            .chain(std::iter::once(Arc::clone(&self.control_counters)))
            .collect();
        s.set_engine(&EngineTotals::sum(counters.iter().map(|c| c.as_ref())));
        for name in cp.model().routers.keys() {
            let Some(id) = cp.router_id(name) else {
                continue;
            };
            let mut r = RouterView {
                name: name.clone(),
                ..RouterView::default()
            };
            for c in &counters {
                let rc = c.router(id);
                r.routed_local += rc.routed_local.get();
                r.routed_remote += rc.routed_remote.get();
                r.delivered_from_fabric += rc.delivered_from_fabric.get();
                r.icmp_errors += rc.icmp_errors.get();
            }
            s.routers.push(r);
        }
        self.hists.collect();
        s.latency = Latency::of(Some(&self.hists.lifetime_merged()));
        s.tables = Some(cp.table_usage());
        if let Some(pool) = pool {
            s.mempool_in_use = pool.in_use();
            s.mempool_available = pool.available();
        }
        s
    }

    /// True if a worker thread ended on its own (a bug: it should run until told to stop).
    fn worker_died(&self) -> Option<usize> {
        self.workers
            .iter()
            .find(|(h, _)| h.is_finished())
            .map(|(h, _)| h.index())
    }
}

/// The workers' latency histograms, taken from them on request and accumulated here: since
/// start (for the exit summary and the metrics endpoint) and since the last reset (for the
/// API). Taking moves each value out exactly once, so nothing is counted twice or lost.
struct Histograms {
    shared: Vec<Arc<WorkerHistograms>>,
    lifetime: Vec<HistogramSnapshot>,
    since_reset: Vec<HistogramSnapshot>,
    reset_at: Instant,
    tsc_hz: u64,
}

impl Histograms {
    fn new(shared: Vec<Arc<WorkerHistograms>>, tsc_hz: u64) -> Self {
        let empty = || {
            shared
                .iter()
                .map(|_| HistogramSnapshot::empty(tsc_hz))
                .collect()
        };
        Histograms {
            lifetime: empty(),
            since_reset: empty(),
            shared,
            reset_at: Instant::now(),
            tsc_hz,
        }
    }

    /// Takes what the workers published since the last call.
    fn collect(&mut self) {
        for ((shared, lifetime), since) in self
            .shared
            .iter()
            .zip(&mut self.lifetime)
            .zip(&mut self.since_reset)
        {
            let taken = shared.take();
            lifetime.add(&taken);
            since.add(&taken);
        }
    }

    fn reset(&mut self) {
        self.collect();
        self.since_reset = self
            .shared
            .iter()
            .map(|_| HistogramSnapshot::empty(self.tsc_hz))
            .collect();
        self.reset_at = Instant::now();
    }

    fn lifetime_merged(&self) -> HistogramSnapshot {
        HistogramSnapshot::merge(&self.lifetime)
            .unwrap_or_else(|| HistogramSnapshot::empty(self.tsc_hz))
    }

    fn since_reset_merged(&self) -> HistogramSnapshot {
        HistogramSnapshot::merge(&self.since_reset)
            .unwrap_or_else(|| HistogramSnapshot::empty(self.tsc_hz))
    }
}

/// The packet trace: the workers' switch, their records, and the session in progress.
struct Trace {
    tap: Arc<TraceTap>,
    rx: TraceReceiver,
    pending: Option<PendingTrace>,
    next_session: u64,
}

/// A trace a client waits for.
struct PendingTrace {
    session: u64,
    requested: u32,
    deadline: Instant,
    reply: Sender<Outcome>,
    packets: Vec<TracePacket>,
}

/// The control thread's state.
struct ControlThread {
    cp: ControlPlane,
    engine: Engine,
    worker: WorkerState,
    pool: Mempool,
    /// Worker 0's queue of packets to send for the control thread.
    inject: Arc<InjectQueue>,
    /// Packets waiting for a neighbour, by next hop.
    holds: HashMap<NextHopIndex, VecDeque<(Mbuf, u16)>>,
    clock: TscClock,
    punt_rx: PuntReceiver,
    next_tick: Instant,
    ident: u16,
    /// Requests from the API and metrics threads.
    calls_rx: Receiver<Call>,
    /// Keeps the request channel connected while no server holds a sender.
    _calls_tx: Sender<Call>,
    trace: Trace,
    /// The counters at the last `stats.reset`, and when.
    baseline: Option<(Snapshot, Instant)>,
}

impl ControlThread {
    /// Waits on punted packets, API requests and trace records at once, so that each is handled
    /// as soon as it arrives; runs the timers between.
    fn run(&mut self, stop: &AtomicBool, daemon: &mut Daemon) -> Result<(), DaemonError> {
        let punts = self.punt_rx.clone();
        let calls = self.calls_rx.clone();
        let records = self.trace.rx.clone();
        while !stop.load(Ordering::Relaxed) {
            let wait = self.wait();
            crossbeam::select! {
                recv(punts) -> p => match p {
                    Ok(p) => {
                        self.handle(p, 0);
                        for p in punts.try_iter().take(PUNT_BUDGET - 1) {
                            self.handle(p, 0);
                        }
                    }
                    Err(_) => return Err(DaemonError::Other("every worker stopped".into())),
                },
                recv(calls) -> c => {
                    if let Ok(c) = c {
                        self.serve(c, daemon);
                        for c in calls.try_iter().take(CALL_BUDGET - 1) {
                            self.serve(c, daemon);
                        }
                    }
                },
                recv(records) -> r => {
                    if let Ok(r) = r {
                        self.trace_record(r);
                        for r in records.try_iter().take(lcore_workers::TRACE_CHANNEL_CAPACITY) {
                            self.trace_record(r);
                        }
                    }
                },
                default(wait) => {}
            }
            if self
                .trace
                .pending
                .as_ref()
                .is_some_and(|t| Instant::now() >= t.deadline)
            {
                self.finish_trace(false);
            }
            if Instant::now() >= self.next_tick {
                self.next_tick = Instant::now() + TICK_INTERVAL;
                self.tick();
                if let Some(i) = daemon.worker_died() {
                    return Err(DaemonError::Other(format!(
                        "worker {i} stopped unexpectedly"
                    )));
                }
            }
        }
        info!("stopping");
        Ok(())
    }

    /// How long the loop may wait for something to arrive: until the next timer, at most
    /// [`PUNT_WAIT`] (the stop flag is checked between waits).
    fn wait(&self) -> Duration {
        let now = Instant::now();
        let mut until = self.next_tick;
        if let Some(t) = &self.trace.pending {
            until = until.min(t.deadline);
        }
        until.saturating_duration_since(now).min(PUNT_WAIT)
    }

    /// Answers one request of the API or metrics thread.
    fn serve(&mut self, call: Call, daemon: &mut Daemon) {
        match call {
            Call::Metrics { reply } => {
                let _ = reply.send(self.metrics_data(daemon));
            }
            Call::Api {
                request,
                reply,
                deadline,
            } => {
                if Instant::now() > deadline {
                    // The client was told `timeout` already; doing it now would surprise it.
                    warn!(
                        op = request.op(),
                        "control API request expired in the queue: not applied"
                    );
                    return;
                }
                if let Request::Trace(t) = request {
                    self.start_trace(t, reply);
                    return;
                }
                let _ = reply.send(self.execute(request, daemon));
            }
        }
    }

    fn execute(&mut self, request: Request, daemon: &mut Daemon) -> Outcome {
        let cp = &self.cp;
        let model = cp.model();
        Ok(match request {
            Request::Change(change) => {
                let applied = self.cp.apply(&change)?;
                debug!(?change, ?applied, "control API change");
                Reply::Applied(AppliedView {
                    changed: applied == router_core::model::Applied::Changed,
                })
            }
            Request::Batch(changes) => {
                let started = Instant::now();
                let applied = self
                    .cp
                    .apply_batch(&changes)
                    .map_err(|(i, e)| ApiError::from(e).at(i))?;
                let changed = applied
                    .iter()
                    .filter(|&&a| a == router_core::model::Applied::Changed)
                    .count();
                info!(
                    changes = changes.len(),
                    changed,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "control API batch applied"
                );
                Reply::Batch(BatchApplied {
                    changes: changes.len(),
                    changed,
                    unchanged: changes.len() - changed,
                })
            }
            Request::HostShow => Reply::Host(HostView {
                host: model.host.clone(),
            }),
            Request::PeerList => Reply::Peers(Peers {
                peers: model.peers.values().cloned().collect(),
            }),
            Request::NetworkList => Reply::Networks(Networks {
                networks: model
                    .networks
                    .values()
                    .map(|n| NetworkView {
                        name: n.name.clone(),
                        vni: n.vni,
                        ports: n.ports.clone(),
                        router: model
                            .interface_of_network(&n.name)
                            .map(|i| i.router.clone()),
                    })
                    .collect(),
            }),
            Request::RouterList => Reply::Routers(Routers {
                routers: model
                    .routers
                    .values()
                    .map(|r| RouterEntry {
                        name: r.name.clone(),
                        large: r.large,
                        interfaces: model
                            .interfaces
                            .keys()
                            .filter(|(name, _)| *name == r.name)
                            .count(),
                        routes: model
                            .routes
                            .keys()
                            .filter(|(name, _)| *name == r.name)
                            .count(),
                        prefixes: cp.router_lpm(&r.name).map_or(0, |l| l.len()),
                    })
                    .collect(),
            }),
            Request::InterfaceList { router } => {
                check_router(cp, router.as_deref())?;
                Reply::Interfaces(Interfaces {
                    interfaces: model
                        .interfaces
                        .values()
                        .filter(|i| router.as_ref().is_none_or(|r| *r == i.router))
                        .cloned()
                        .collect(),
                })
            }
            Request::RouteList { router } => {
                check_router(cp, router.as_deref())?;
                Reply::Routes(Routes {
                    routes: model
                        .routes
                        .values()
                        .filter(|r| router.as_ref().is_none_or(|name| *name == r.router))
                        .cloned()
                        .collect(),
                })
            }
            Request::RouteLookup { router, ip } => {
                let lpm = cp
                    .router_lpm(&router)
                    .ok_or_else(|| not_found("router", &router))?;
                let next_hop = lpm.lpm().lookup(u32::from(ip)).map(|nh| nh.index());
                let result = match next_hop {
                    Some(nh) => crate::api::describe::next_hop(
                        cp,
                        nh,
                        cp.dataplane().next_hops.get(nh).state,
                    ),
                    None => "no route (ICMP destination unreachable, net unreachable)".to_string(),
                };
                Reply::Lookup(Lookup {
                    router,
                    ip,
                    next_hop,
                    result,
                })
            }
            Request::PortList { network } => {
                if let Some(n) = &network {
                    if !model.networks.contains_key(n) {
                        return Err(not_found("network", n));
                    }
                }
                Reply::Ports(Ports {
                    ports: model
                        .ports
                        .values()
                        .filter(|p| network.as_ref().is_none_or(|n| *n == p.network))
                        .cloned()
                        .collect(),
                })
            }
            Request::NeighList { router } => {
                if let Some(r) = &router {
                    if r != "underlay" && cp.router_id(r).is_none() {
                        return Err(not_found("router", r));
                    }
                }
                let neighbors = cp
                    .neighbors(self.clock.now_ns())
                    .into_iter()
                    .filter(|n| router.as_ref().is_none_or(|r| *r == n.router))
                    .map(|mut n| {
                        if let Some(at) = crate::api::describe::location(cp, n.next_hop) {
                            n.location = at;
                        }
                        n
                    })
                    .collect();
                Reply::Neighbors(Neighbors { neighbors })
            }
            Request::StatsShow => Reply::Stats(Box::new(self.stats(daemon))),
            Request::StatsReset => {
                let snapshot = daemon.snapshot(&self.cp, Some(&self.pool));
                self.baseline = Some((snapshot, Instant::now()));
                daemon.hists.reset();
                info!("counters and histograms reset");
                Reply::Reset(ResetView {
                    reset: "counters and histograms".into(),
                })
            }
            Request::HistShow { full, ticks } => {
                let hists = &mut daemon.hists;
                hists.collect();
                let full = full.then_some(ticks);
                Reply::Hist(Box::new(HistView {
                    since_reset_s: hists.reset_at.elapsed().as_secs_f64(),
                    tsc_hz: hists.tsc_hz,
                    merged: HistSet::of(&hists.since_reset_merged(), full),
                    workers: daemon
                        .workers
                        .iter()
                        .zip(&hists.since_reset)
                        .map(|((h, _), snap)| WorkerHist {
                            worker: h.index(),
                            hist: HistSet::of(snap, full),
                        })
                        .collect(),
                }))
            }
            Request::HistReset => {
                daemon.hists.reset();
                Reply::Reset(ResetView {
                    reset: "histograms".into(),
                })
            }
            Request::IcmpSet { rate_per_s, burst } => {
                self.cp.set_icmp_rate(rate_per_s, burst);
                info!(rate_per_s, burst, "ICMP error rate limit changed");
                Reply::Icmp(IcmpView { rate_per_s, burst })
            }
            Request::Version | Request::LogShow | Request::LogSet { .. } | Request::Trace(_) => {
                return Err(ApiError::new(
                    ErrorCode::Internal,
                    "this request is answered by the API thread",
                ))
            }
        })
    }

    /// The counters since the last reset, with the latency since the last histogram reset.
    fn stats(&mut self, daemon: &mut Daemon) -> StatsView {
        let now = daemon.snapshot(&self.cp, Some(&self.pool));
        let (mut snapshot, since) = match &self.baseline {
            Some((base, at)) => (now.since(base), at.elapsed()),
            None => (now, daemon.started.elapsed()),
        };
        snapshot.latency = Latency::of(Some(&daemon.hists.since_reset_merged()));
        StatsView {
            since_reset_s: since.as_secs_f64(),
            snapshot,
        }
    }

    /// Every counter since start and the latency summaries since start, for the metrics
    /// endpoint.
    fn metrics_data(&mut self, daemon: &mut Daemon) -> MetricsData {
        let snapshot = daemon.snapshot(&self.cp, Some(&self.pool));
        let h = daemon.hists.lifetime_merged();
        let clock = h.clock();
        MetricsData {
            snapshot,
            burst: MetricsSummary::of(&h.burst_cycles, clock.as_ref()),
            residence: MetricsSummary::of(&h.residence_cycles, clock.as_ref()),
        }
    }

    /// Arms the workers' trace for `t`; the answer goes out when the packets are in or at the
    /// timeout.
    fn start_trace(&mut self, t: TraceRequest, reply: Sender<Outcome>) {
        if self.trace.pending.is_some() {
            let _ = reply.send(Err(ApiError::new(
                ErrorCode::Busy,
                "a trace is already running: try again when it ends",
            )));
            return;
        }
        let port = match &t.port {
            Some(name) => match self.cp.port_id(name) {
                Some(id) if !name.starts_with("unused-") => Some(id),
                _ => {
                    let _ = reply.send(Err(ApiError {
                        field: Some("port".into()),
                        ..not_found("port", name)
                    }));
                    return;
                }
            },
            None => None,
        };
        let session = self.trace.next_session;
        self.trace.next_session += 1;
        // Records of an earlier session still in the channel are stale.
        while self.trace.rx.try_recv().is_ok() {}
        let filter = TraceFilter {
            port,
            src: t.src,
            dst: t.dst,
            protocol: t.protocol,
        };
        self.trace.tap.arm(session, filter, t.count);
        info!(session, count = t.count, ?filter, "packet trace armed");
        self.trace.pending = Some(PendingTrace {
            session,
            requested: t.count,
            deadline: Instant::now() + t.timeout,
            reply,
            packets: Vec::with_capacity(t.count as usize),
        });
    }

    fn trace_record(&mut self, r: TraceRecord) {
        let Some(pending) = self.trace.pending.as_mut() else {
            return;
        };
        if r.session != pending.session {
            return;
        }
        pending
            .packets
            .push(crate::api::describe::trace_packet(&self.cp, &r));
        if pending.packets.len() >= pending.requested as usize {
            self.finish_trace(true);
        }
    }

    fn finish_trace(&mut self, complete: bool) {
        self.trace.tap.disarm();
        let Some(t) = self.trace.pending.take() else {
            return;
        };
        info!(
            session = t.session,
            packets = t.packets.len(),
            complete,
            "packet trace done"
        );
        let view = TraceView {
            requested: t.requested,
            packets: t.packets,
            complete,
            lost: self.trace.tap.lost(),
        };
        let _ = t.reply.send(Ok(Reply::Trace(view)));
    }

    fn now(&self) -> u64 {
        self.clock.now_ns()
    }

    fn count_drop(&self, reason: DropReason) {
        self.worker.counters().count_drop(reason);
    }

    /// Handles one punted packet.
    fn handle(&mut self, p: Punted, depth: u32) {
        let Punted {
            mut mbuf,
            port,
            reason,
            ..
        } = p;
        let now = self.now();
        let mut solicits = Vec::new();
        let action = {
            let Some(w) = mbuf.window_mut() else {
                self.count_drop(DropReason::SharedBuffer);
                return;
            };
            let Ok(mut pkt) = PacketBuf::new(w.buf, w.head, w.len) else {
                self.count_drop(DropReason::FrameTruncated);
                return;
            };
            let action = self
                .cp
                .handle_punt(&mut pkt, port, reason, now, &mut solicits);
            let (head, len) = (pkt.head(), pkt.len());
            if mbuf.set_window(head, len).is_err() {
                self.count_drop(DropReason::NoHeadroom);
                return;
            }
            action
        };
        self.send_solicits(solicits);
        if reason == PuntReason::Arp {
            self.release_resolved();
        }
        match action {
            PuntAction::Reply(out) => self.send(out, mbuf),
            PuntAction::Drop(r) => self.count_drop(r),
            PuntAction::Hold(nh) => {
                let max = self.cp.hold_max();
                let q = self.holds.entry(nh).or_default();
                if q.len() >= max {
                    self.count_drop(DropReason::HoldQueueFull);
                } else {
                    q.push_back((mbuf, port));
                }
            }
            PuntAction::Reinject => self.reinject(mbuf, port, depth),
            PuntAction::Flood(f) => {
                for &out in &f.ports {
                    let Ok(mut c) = mbuf.copy(&self.pool) else {
                        self.count_drop(DropReason::NoBuffer);
                        continue;
                    };
                    if f.strip > 0 && c.adj(f.strip).is_err() {
                        self.count_drop(DropReason::FrameTruncated);
                        continue;
                    }
                    self.send(out, c);
                }
                for &peer in &f.peers {
                    let Some(fabric) = self.cp.fabric_port() else {
                        break;
                    };
                    self.ident = self.ident.wrapping_add(1);
                    let Some(header) = self.cp.fabric_header(peer, f.vni, mbuf.data(), self.ident)
                    else {
                        self.count_drop(DropReason::NoFloodTarget);
                        continue;
                    };
                    let Ok(mut c) = mbuf.copy(&self.pool) else {
                        self.count_drop(DropReason::NoBuffer);
                        continue;
                    };
                    let encapsulated = c.window_mut().and_then(|w| {
                        let mut pkt = PacketBuf::new(w.buf, w.head, w.len).ok()?;
                        router_core::engine::encapsulate(&mut pkt, &header)
                            .then(|| (pkt.head(), pkt.len()))
                    });
                    match encapsulated {
                        Some((head, len)) if c.set_window(head, len).is_ok() => {
                            self.send(fabric, c)
                        }
                        _ => self.count_drop(DropReason::NoHeadroom),
                    }
                }
            }
        }
    }

    /// Runs a packet through the engine again (its next hop changed since it was punted).
    fn reinject(&mut self, mut mbuf: Mbuf, port: u16, depth: u32) {
        let verdict = {
            let Some(w) = mbuf.window_mut() else {
                self.count_drop(DropReason::SharedBuffer);
                return;
            };
            let Ok(pkt) = PacketBuf::new(w.buf, w.head, w.len) else {
                self.count_drop(DropReason::FrameTruncated);
                return;
            };
            let mut pkts = [pkt];
            let mut verdicts = [Verdict::Drop(DropReason::Stale)];
            let now = self.now();
            self.engine
                .process_burst(&mut self.worker, port, now, &mut pkts, &mut verdicts);
            let (head, len) = (pkts[0].head(), pkts[0].len());
            if mbuf.set_window(head, len).is_err() {
                self.count_drop(DropReason::NoHeadroom);
                return;
            }
            verdicts[0]
        };
        match verdict {
            Verdict::Forward(out) => self.send(out, mbuf),
            Verdict::Drop(r) => self.count_drop(r),
            Verdict::Punt(r) if depth < REINJECT_DEPTH_MAX => {
                self.worker.counters().count_punt(r);
                self.handle(
                    Punted {
                        mbuf,
                        port,
                        reason: r,
                        rx_tsc: 0,
                    },
                    depth + 1,
                );
            }
            Verdict::Punt(_) => self.count_drop(DropReason::Stale),
        }
    }

    /// Hands a packet to worker 0, which sends it on `port`.
    fn send(&mut self, port: u16, mbuf: Mbuf) {
        if let Err(refused) = self.inject.push(Injected { mbuf, port }) {
            drop(refused);
            self.worker.counters().count_drop(DropReason::TxFull);
        }
    }

    fn send_solicits(&mut self, solicits: Vec<Solicit>) {
        for s in solicits {
            match Mbuf::from_bytes(&self.pool, &s.frame) {
                Ok(m) => self.send(s.port, m),
                Err(_) => self.count_drop(DropReason::NoBuffer),
            }
        }
    }

    /// Neighbour timers: ARP retries, and the packets of neighbours that resolved or failed.
    fn tick(&mut self) {
        let now = self.now();
        let tick = self.cp.tick(now);
        self.send_solicits(tick.solicits);
        for nh in tick.released {
            self.release(nh);
        }
        self.release_resolved();
    }

    /// Sends the held packets of neighbours that resolved.
    fn release_resolved(&mut self) {
        if self.holds.is_empty() {
            return;
        }
        let resolved: Vec<_> = self
            .holds
            .keys()
            .copied()
            .filter(|&nh| self.cp.resolved(nh))
            .collect();
        for nh in resolved {
            self.release(nh);
        }
    }

    fn release(&mut self, nh: NextHopIndex) {
        if let Some(q) = self.holds.remove(&nh) {
            debug!(next_hop = nh, packets = q.len(), "releasing held packets");
            for (mbuf, port) in q {
                self.reinject(mbuf, port, 0);
            }
        }
    }
}

impl Drop for ControlThread {
    fn drop(&mut self) {
        let held: usize = self.holds.values().map(VecDeque::len).sum();
        if held > 0 {
            debug!(held, "dropping held packets at stop");
        }
        self.holds.clear();
        while self.inject.pop().is_some() {}
    }
}
