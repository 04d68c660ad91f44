//! Starting the daemon from its configuration, in the order the pieces need each other: the
//! ports (configured and started on the mempool), the control plane (its ports by DPDK port
//! id, the routing state of the file applied as one batch), the control API and metrics
//! servers, the signal handlers (SIGINT and SIGTERM stop, SIGHUP reloads), then the workers, each with its RX queues, one TX queue per
//! port and (worker 0) the control thread's inject queue. The conversions from the file's
//! sections to what each piece takes live next to the configuration types
//! ([`Config::control_config`], [`DataplaneConfig::port_config`], `IdleMode::from`).
//!
//! [`DataplaneConfig::port_config`]: crate::config::DataplaneConfig::port_config

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam::channel::{bounded, Sender};
use dpdk_bindings::{Eal, Mempool, Port};
use lcore_workers::port::router_port;
use lcore_workers::{
    inject_queue, punt_channel_with_capacity, InjectQueue, TraceTap, TscClock, WorkerConfig,
    WorkerHandle, WorkerShared,
};
use router_core::control::{ControlPlane, Holds, PortSetup};
use router_core::engine::Engine;
use router_core::qsbr::Qsbr;
use router_core::wire::EthernetAddress;
use tracing::{debug, info};

use super::control_thread::ControlThread;
use super::fleet::FleetThread;
use super::histograms::Histograms;
use super::reload::Reload;
use super::trace::Trace;
use super::{Daemon, DaemonError, PortRuntime};
use crate::api::server::ApiServer;
use crate::api::{Call, CALL_QUEUE_DEPTH};
use crate::config::{Config, PortSpec, WorkerSpec};
use crate::metrics::MetricsServer;

/// The running daemon, before the control thread's loop.
pub(super) struct Started {
    pub(super) control: ControlThread,
    pub(super) daemon: Daemon,
    /// Set by SIGINT and SIGTERM.
    pub(super) stop: Arc<AtomicBool>,
    /// Tells the workers to stop.
    pub(super) stop_workers: Arc<AtomicBool>,
}

/// Opens the ports, programs the control plane, starts the servers and the workers.
pub(super) fn start(
    cfg: &Config,
    opts: &super::Options,
    eal: &Eal,
    pool: &Mempool,
    clock: TscClock,
    started: Instant,
) -> Result<Started, DaemonError> {
    let n_workers = cfg.workers.len();
    let mut ports = open_ports(cfg, pool, n_workers)?;
    let qsbr = Arc::new(Qsbr::new(n_workers + 2));
    let cp = control_plane(cfg, &ports, Arc::clone(&qsbr))?;

    // The control API and the metrics endpoint take requests from now on; the control thread
    // answers them once its loop runs.
    let (calls_tx, calls_rx) = bounded(CALL_QUEUE_DEPTH);
    let (api, metrics, telemetry) = servers(cfg, &calls_tx)?;
    let follow = |fleet| FleetThread::start(fleet, cp.model().clone(), calls_tx.clone());
    let fleet = cfg.fleet.as_ref().map(follow).transpose()?;
    let (trace_tap, trace_rx) = TraceTap::new();
    let trace_tap = Arc::new(trace_tap);

    let engine = Engine::new(Arc::clone(cp.dataplane()));
    let (punt_tx, punt_rx) = punt_channel_with_capacity(cfg.dataplane.punt_queue);
    let stop_workers = Arc::new(AtomicBool::new(false));
    let stop = stop_on_signals()?;

    // The control thread sends through worker 0 (it needs no TX queue of its own).
    let wiring = Wiring {
        cfg,
        tsc_hz: eal.tsc_hz(),
        inject: inject_queue(),
        trace: Arc::clone(&trace_tap),
        shared: WorkerShared {
            engine: engine.clone(),
            qsbr: Arc::clone(&qsbr),
            punt: punt_tx,
            stop: Arc::clone(&stop_workers),
        },
    };
    let workers = wiring.spawn(&mut ports)?;

    let hold_max = cp.hold_max();
    let control = ControlThread {
        cp,
        worker: engine.worker_state(),
        engine,
        pool: pool.clone(),
        inject: wiring.inject,
        holds: Holds::new(hold_max),
        clock,
        punt_rx,
        next_tick: Instant::now(),
        ident: 0,
        fragment_budget: super::fragment::FRAGMENT_BUDGET,
        calls_rx,
        _calls_tx: calls_tx,
        trace: Trace::new(trace_tap, trace_rx),
        baseline: None,
        reload: Reload::new(opts.config_path.clone(), cfg.clone())?,
    };
    let shared_hists = workers.iter().map(|(h, _)| Arc::clone(h.histograms()));
    let hists = Histograms::new(shared_hists.collect(), eal.tsc_hz());
    let daemon = Daemon {
        ports,
        workers,
        control_counters: Arc::clone(control.worker.counters()),
        started,
        clock,
        hists,
        api: Some(api),
        metrics,
        telemetry,
        fleet,
    };
    Ok(Started {
        control,
        daemon,
        stop,
        stop_workers,
    })
}

/// A flag that SIGINT and SIGTERM set.
fn stop_on_signals() -> Result<Arc<AtomicBool>, DaemonError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| DaemonError::Other(format!("signal handler: {e}")))?;
    }
    Ok(stop)
}

pub(super) fn port_error(p: &PortRuntime, source: dpdk_bindings::Error) -> DaemonError {
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
        let pc = cfg
            .dataplane
            .port_config(cfg.rx_queues_of(&spec.name), n_workers as u16);
        out.push(open_port(spec, &pc, pool)?);
    }
    Ok(out)
}

fn open_port(
    spec: &PortSpec,
    pc: &dpdk_bindings::PortConfig,
    pool: &Mempool,
) -> Result<PortRuntime, DaemonError> {
    let err = |source| DaemonError::Port {
        port: spec.name.clone(),
        device: spec.device.clone(),
        source,
    };
    let mut port = Port::by_name(&spec.device).map_err(err)?;
    port.configure(pc, pool).map_err(err)?;
    // The device may not let us set its MTU (some virtual devices cannot); the router's
    // checks use the configured one either way.
    if let Err(e) = port.set_mtu(spec.mtu) {
        debug!(port = %spec.name, "MTU {} not set on the device: {e}", spec.mtu);
    }
    port.start().map_err(err)?;
    let mac = EthernetAddress(port.mac_addr().map_err(err)?);
    info!(port = %spec.name, device = %spec.device, id = port.id().0, %mac, fabric = spec.fabric, "port started");
    Ok(PortRuntime {
        name: spec.name.clone(),
        device: spec.device.clone(),
        fabric: spec.fabric,
        port,
    })
}

/// The control plane over the opened ports, with the file's routing state applied.
fn control_plane(
    cfg: &Config,
    ports: &[PortRuntime],
    qsbr: Arc<Qsbr>,
) -> Result<ControlPlane, DaemonError> {
    let ccfg = cfg.control_config(port_setups(cfg, ports)?);
    let mut cp = ControlPlane::new(ccfg, qsbr).map_err(|source| DaemonError::Routing {
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
    Ok(cp)
}

/// The control plane's ports, indexed by DPDK port id (router-core port ids are DPDK port
/// ids): unconfigured ids become unused placeholders.
fn port_setups(cfg: &Config, ports: &[PortRuntime]) -> Result<Vec<PortSetup>, DaemonError> {
    let max_id = ports
        .iter()
        .map(|p| router_port(p.port.id()).get())
        .max()
        .unwrap_or(0);
    let mut setups: Vec<PortSetup> = (0..=max_id)
        .map(|i| PortSetup {
            name: format!("unused-{i}"),
            mac: EthernetAddress::ZERO,
            mtu: 1500,
            fabric: false,
            external: false,
        })
        .collect();
    for (p, spec) in ports.iter().zip(&cfg.ports) {
        setups[router_port(p.port.id()).index()] = PortSetup {
            name: p.name.clone(),
            mac: EthernetAddress(p.port.mac_addr().map_err(|source| port_error(p, source))?),
            mtu: spec.mtu,
            fabric: p.fabric,
            external: spec.external,
        };
    }
    Ok(setups)
}

/// The control API server, the metrics endpoint when the file asks for one, and dvrd's
/// telemetry commands unless telemetry is off: everything that asks the control thread.
type Servers = (
    ApiServer,
    Option<MetricsServer>,
    Option<super::telemetry::Commands>,
);

/// Starts [`Servers`], each with its own end of the control thread's request channel.
fn servers(cfg: &Config, calls: &Sender<Call>) -> Result<Servers, DaemonError> {
    let api = ApiServer::start(&cfg.control.socket, calls.clone())
        .map_err(|e| DaemonError::Other(e.to_string()))?;
    let metrics = match cfg.control.metrics {
        Some(addr) => {
            crate::metrics::check_exposure(addr);
            Some(
                MetricsServer::start(addr, calls.clone())
                    .map_err(|e| DaemonError::Other(e.to_string()))?,
            )
        }
        None => None,
    };
    let telemetry = cfg
        .eal
        .telemetry
        .then(|| super::telemetry::Commands::register(calls))
        .transpose()?;
    Ok((api, metrics, telemetry))
}

/// What every worker is started with besides its own queues.
struct Wiring<'a> {
    cfg: &'a Config,
    tsc_hz: u64,
    /// Worker 0's queue of packets to send for the control thread.
    inject: Arc<InjectQueue>,
    trace: Arc<TraceTap>,
    shared: WorkerShared,
}

impl Wiring<'_> {
    /// Starts every worker; on a failure, stops those already started.
    fn spawn(&self, ports: &mut [PortRuntime]) -> Result<Vec<(WorkerHandle, usize)>, DaemonError> {
        let mut workers = Vec::with_capacity(self.cfg.workers.len());
        let mut next_rx_queue: HashMap<String, u16> = HashMap::new();
        for (i, w) in self.cfg.workers.iter().enumerate() {
            let wc = self.worker_config(i, w, ports, &mut next_rx_queue)?;
            match lcore_workers::spawn(wc, self.shared.clone()) {
                Ok(h) => workers.push((h, w.core)),
                Err(e) => {
                    self.shared.stop.store(true, Ordering::Relaxed);
                    for (h, _) in workers {
                        let _ = h.join();
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(workers)
    }

    /// Worker `i`: its core, its RX queues (the next free one of each port it polls), one TX
    /// queue on every port (queue `i`), and the shared settings.
    fn worker_config(
        &self,
        i: usize,
        w: &WorkerSpec,
        ports: &mut [PortRuntime],
        next_rx_queue: &mut HashMap<String, u16>,
    ) -> Result<WorkerConfig, DaemonError> {
        let mut wc = WorkerConfig::new(i, self.tsc_hz);
        wc.core = Some(w.core);
        if i == 0 {
            wc.inject = Some(Arc::clone(&self.inject));
        }
        wc.burst_size = self.cfg.dataplane.burst;
        wc.trace = Some(Arc::clone(&self.trace));
        wc.idle = self.cfg.dataplane.idle.into();
        // A registered thread would shut secondary processes out (see daemon::telemetry).
        wc.register_with_eal = !self.cfg.eal.capture;
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
        Ok(wc)
    }
}
