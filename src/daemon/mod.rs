//! The daemon: DPDK setup from the configuration, the workers, the control thread's loop, and
//! a clean stop that proves no packet buffer leaked.
//!
//! [`run`] brings EAL and the mempool up, then `setup` opens the ports, programs the
//! [`ControlPlane`] with the configured routing state, starts the control API and metrics
//! servers and spawns the workers. The workers own the data path; everything else happens on
//! the control thread, the process's main thread (the EAL main lcore), in
//! `control_thread`'s loop. It owns the [`ControlPlane`] (the only writer of the tables),
//! answers punted packets (`punt`: replies, packets held for ARP, floods, reinjection),
//! answers the API (`api`), runs packet traces (`trace`) and the neighbour timers, and
//! keeps the workers' latency histograms (`histograms`). It transmits what it originates
//! through worker 0's inject queue, and never makes a worker wait.
//!
//! `telemetry` registers dvrd's commands on DPDK's telemetry socket (they ask the control
//! thread, as the metrics endpoint does) and starts the capture server for `dpdk-dumpcap`
//! when EAL shares its configuration.
//!
//! On SIGHUP the control thread reads the configuration file again and applies it (`reload`).
//! On SIGINT or SIGTERM the loop ends; the servers stop (the telemetry commands with them),
//! then the workers (each joined with a timeout, its final counters kept for the summary),
//! then the control thread lets go of the packets it holds, then the ports close. Only then is the mempool counted: a buffer not back
//! is a leak, and the exit code says so.

mod api;
mod control_thread;
mod fleet;
mod fragment;
mod histograms;
mod punt;
mod reload;
mod setup;
mod telemetry;
mod trace;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk_bindings::{Eal, Mempool, Port};
use lcore_workers::{TscClock, WorkerHandle, WorkerStatsSnapshot};
use router_core::control::{ApplyError, ControlPlane};
use router_core::stats::{EngineCounters, EngineTotals};
use tracing::{error, info, warn};

use self::histograms::Histograms;
use crate::api::server::ApiServer;
use crate::config::Config;
use crate::metrics::MetricsServer;
use crate::stats::{FipView, Latency, PortStatsView, RouterView, Snapshot};

/// How long a stopping daemon waits for each worker.
const WORKER_JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the links to come up at start.
const LINK_WAIT: Duration = Duration::from_secs(3);

/// Options from the command line.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Created once traffic can flow.
    pub ready_file: Option<PathBuf>,
    /// Written at exit with the final counters.
    pub summary_json: Option<PathBuf>,
    /// The file the configuration came from, read again on SIGHUP and `config.reload`.
    pub config_path: Option<PathBuf>,
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

/// Runs the daemon until SIGINT or SIGTERM.
pub fn run(cfg: Config, opts: Options) -> Result<Snapshot, DaemonError> {
    let started = Instant::now();
    let eal = Eal::init(&cfg.eal_args())?;
    info!(version = eal.version(), tsc_hz = eal.tsc_hz(), "EAL up");
    telemetry::announce(&eal, cfg.eal.telemetry);
    let capture = telemetry::capture_server(&eal, &cfg.eal);
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
    // The ports are closed: no capture can be asked for any more.
    drop(capture);
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

/// Starts everything, runs the control thread's loop until a signal, and stops everything:
/// the final counters come back.
fn run_with(
    cfg: &Config,
    opts: &Options,
    eal: &Eal,
    pool: &Mempool,
    clock: TscClock,
    started: Instant,
) -> Result<Snapshot, DaemonError> {
    let setup::Started {
        mut control,
        mut daemon,
        stop,
        stop_workers,
    } = setup::start(cfg, opts, eal, pool, clock, started)?;
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
    daemon.telemetry.take();
    let fleet = daemon.fleet.take();
    if let Some(f) = &fleet {
        f.signal_stop();
    }
    control.trace.tap.disarm();
    stop_workers.store(true, Ordering::Relaxed);
    let mut snapshot = daemon.snapshot(&control.cp, None);
    daemon.join_workers(&mut snapshot);
    // Free what the control thread holds (a batch of the fleet thread waiting for an answer
    // gets none, and the thread writes its snapshot and ends), then the ports.
    drop(control);
    if let Some(f) = fleet {
        f.join();
    }
    daemon.close_ports();
    snapshot.uptime_s = started.elapsed().as_secs_f64();
    result.map(|()| snapshot)
}

/// A port as the daemon set it up.
struct PortRuntime {
    name: String,
    device: String,
    fabric: bool,
    port: Port,
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
    /// dvrd's telemetry commands, when telemetry is on.
    telemetry: Option<telemetry::Commands>,
    /// Following the fleet's store, when the configuration has `[fleet]`.
    fleet: Option<fleet::FleetThread>,
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
    fn snapshot(&mut self, cp: &ControlPlane, pool: Option<&Mempool>) -> Snapshot {
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
        s.ports = self
            .ports
            .iter()
            .map(|p| port_view(p, worker_snaps.iter().map(|(w, _)| w)))
            .collect();
        s.workers = worker_snaps
            .iter()
            .map(|(w, core)| Snapshot::worker_view(w, *core))
            .collect();
        let counters = self.engine_counters();
        s.set_engine(&EngineTotals::sum(counters.iter().map(|c| c.as_ref())));
        s.routers = router_views(cp, &counters);
        s.floating_ips = fip_views(cp, &counters);
        self.hists.collect();
        s.latency = Latency::of(Some(&self.hists.lifetime_merged()));
        s.tables = Some(cp.table_usage());
        if let Some(pool) = pool {
            s.mempool_in_use = pool.in_use();
            s.mempool_available = pool.available();
        }
        s
    }

    /// The engine counters of every worker and of the control thread.
    pub(super) fn engine_counters(&self) -> Vec<Arc<EngineCounters>> {
        self.workers
            .iter()
            .map(|(h, _)| Arc::clone(&h.stats().engine))
            .chain(std::iter::once(Arc::clone(&self.control_counters)))
            .collect()
    }

    /// True if a worker thread ended on its own (a bug: it should run until told to stop).
    fn worker_died(&self) -> Option<usize> {
        self.workers
            .iter()
            .find(|(h, _)| h.is_finished())
            .map(|(h, _)| h.index())
    }

    /// Waits for every worker (told to stop already) and puts its final counters, and the
    /// latency of the whole run, in `snapshot`.
    fn join_workers(&mut self, snapshot: &mut Snapshot) {
        for (h, core) in std::mem::take(&mut self.workers) {
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
        self.hists.collect();
        snapshot.latency = Latency::of(Some(&self.hists.lifetime_merged()));
    }

    fn close_ports(&mut self) {
        for p in self.ports.drain(..) {
            let mut port = p.port;
            if let Err(e) = port.stop() {
                warn!(port = %p.name, "stop: {e}");
            }
            if let Err(e) = port.close() {
                warn!(port = %p.name, "close: {e}");
            }
        }
    }
}

/// A port's counters: what every worker counted on it, and the device's own.
fn port_view<'a>(
    p: &PortRuntime,
    workers: impl Iterator<Item = &'a WorkerStatsSnapshot>,
) -> PortStatsView {
    let id = lcore_workers::port::router_port(p.port.id());
    let mut v = PortStatsView {
        name: p.name.clone(),
        device: p.device.clone(),
        port_id: id.get(),
        fabric: p.fabric,
        link_up: p.port.link().is_ok_and(|l| l.up),
        ..PortStatsView::default()
    };
    for w in workers {
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
    v
}

/// Every router's counters, summed over the workers and the control thread.
fn router_views(cp: &ControlPlane, counters: &[Arc<EngineCounters>]) -> Vec<RouterView> {
    let mut out = Vec::new();
    for spec in cp.router_specs() {
        let Some(id) = cp.router_id(&spec.name) else {
            continue;
        };
        let mut r = RouterView {
            name: spec.name.clone(),
            ..RouterView::default()
        };
        for c in counters {
            let rc = c.router(id);
            r.routed_local += rc.routed_local.get();
            r.routed_remote += rc.routed_remote.get();
            r.delivered_from_fabric += rc.delivered_from_fabric.get();
            r.icmp_errors += rc.icmp_errors.get();
        }
        out.push(r);
    }
    out
}

/// Every floating IP with its counters summed over `counters`.
pub(super) fn fip_views(cp: &ControlPlane, counters: &[Arc<EngineCounters>]) -> Vec<FipView> {
    cp.fip_specs()
        .map(|spec| {
            let mut v = FipView {
                ip: spec.ip,
                router: spec.router.clone(),
                port: spec.port,
                host: cp.fip_host(spec).unwrap_or_default().to_string(),
                active: cp.fip_is_active(spec),
                dnat_packets: 0,
                snat_packets: 0,
            };
            if let Some(id) = cp.fip_id(spec.ip) {
                for c in counters {
                    v.dnat_packets += c.fip(id).dnat.get();
                    v.snat_packets += c.fip(id).snat.get();
                }
            }
            v
        })
        .collect()
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
