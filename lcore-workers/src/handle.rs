//! Starting a worker thread, and the handle the control thread keeps.

use std::any::Any;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use dpdk_bindings::{thread_register, thread_unregister};
use router_core::engine::Engine;
use router_core::qsbr::{Qsbr, QsbrReader};

use crate::clock::TscClock;
use crate::config::WorkerConfig;
use crate::error::WorkerError;
use crate::histogram::WorkerHistograms;
use crate::punt::PuntSender;
use crate::stats::{WorkerStats, WorkerStatsSnapshot};
use crate::worker::{Parts, Worker};

/// What all workers share with the control thread.
#[derive(Debug, Clone)]
pub struct WorkerShared {
    /// The forwarding engine (one clone per worker).
    pub engine: Engine,
    /// The QSBR domain of the tables the engine reads; each worker registers one reader.
    pub qsbr: Arc<Qsbr>,
    /// The punt channel to the control thread.
    pub punt: PuntSender,
    /// Set to stop the workers; each one checks it once per poll loop.
    pub stop: Arc<AtomicBool>,
}

/// What a worker reports when it ends.
#[derive(Debug, Clone)]
pub struct WorkerSummary {
    /// The worker's index.
    pub index: usize,
    /// The EAL lcore id the worker had.
    pub lcore: u32,
    /// TSC cycles from the first poll loop to the stop.
    pub run_cycles: u64,
    /// Its counters at the end.
    pub stats: WorkerStatsSnapshot,
}

/// A running worker. Set the shared stop flag, then [`join`](Self::join) it.
#[derive(Debug)]
pub struct WorkerHandle {
    index: usize,
    lcore: u32,
    thread: JoinHandle<Option<WorkerSummary>>,
    stats: Arc<WorkerStats>,
    histograms: Arc<WorkerHistograms>,
}

impl WorkerHandle {
    /// The worker's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The EAL lcore id the worker thread registered as ([`UNREGISTERED`] if it did not).
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// The worker's live counters.
    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    /// The worker's histograms, as last published (about every 100 ms).
    pub fn histograms(&self) -> &Arc<WorkerHistograms> {
        &self.histograms
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the thread to end (set the stop flag first) and returns its summary. By then
    /// the worker has flushed its TX buffers, freed every mbuf it held, dropped its queues,
    /// published its histograms, gone offline for QSBR and unregistered from EAL.
    pub fn join(self) -> Result<WorkerSummary, WorkerError> {
        match self.thread.join() {
            Ok(Some(summary)) => Ok(summary),
            Ok(None) => Err(WorkerError::Panicked {
                index: self.index,
                message: "the worker ended before it started".to_owned(),
            }),
            Err(payload) => Err(WorkerError::Panicked {
                index: self.index,
                message: panic_message(payload.as_ref()),
            }),
        }
    }
}

/// Starts worker `config.index` on a thread named `dvr-worker-N`.
///
/// The thread pins itself to `config.core` (if any), registers with EAL so that the per-lcore
/// mempool caches serve it (unless `config.register_with_eal` is off), registers a QSBR reader, and reports back; errors at any of these
/// steps are returned here, with the thread gone and its queues dropped. Then it polls until
/// `shared.stop` is set.
pub fn spawn(config: WorkerConfig, shared: WorkerShared) -> Result<WorkerHandle, WorkerError> {
    config.validate()?;
    let index = config.index;
    let Some(clock) = TscClock::new(config.tsc_hz) else {
        return Err(WorkerError::TscHz);
    };
    let stats = Arc::new(WorkerStats::new(index));
    let histograms = Arc::new(WorkerHistograms::new(config.tsc_hz));
    let (ready_tx, ready_rx) = sync_channel(1);
    let thread = std::thread::Builder::new()
        .name(format!("dvr-worker-{index}"))
        .spawn({
            let stats = Arc::clone(&stats);
            let histograms = Arc::clone(&histograms);
            move || worker_main(config, shared, clock, stats, histograms, &ready_tx)
        })
        .map_err(WorkerError::Spawn)?;
    match ready_rx.recv() {
        Ok(Ok(lcore)) => Ok(WorkerHandle {
            index,
            lcore,
            thread,
            stats,
            histograms,
        }),
        Ok(Err(err)) => {
            let _ = thread.join();
            Err(err)
        }
        Err(_) => Err(match thread.join() {
            Err(payload) => WorkerError::Panicked {
                index,
                message: panic_message(payload.as_ref()),
            },
            Ok(_) => WorkerError::Panicked {
                index,
                message: "the worker ended before it started".to_owned(),
            },
        }),
    }
}

/// The worker thread: start-up, the poll loop, clean-up. `None` when start-up failed (the
/// error went to `ready`).
fn worker_main(
    config: WorkerConfig,
    shared: WorkerShared,
    clock: TscClock,
    stats: Arc<WorkerStats>,
    histograms: Arc<WorkerHistograms>,
    ready: &SyncSender<Result<u32, WorkerError>>,
) -> Option<WorkerSummary> {
    let index = config.index;
    let (lcore, reader) = match start(&config, &shared) {
        Ok(started) => started,
        Err(err) => {
            let _ = ready.send(Err(err));
            return None;
        }
    };
    // Gives the lcore id back when the thread ends, even by a panic; declared before the
    // worker is built, so dropped after it (and after every mbuf it held).
    let _registration = Registration;
    let parts = Parts {
        engine: shared.engine,
        rx_queues: config.rx_queues,
        tx_queues: config.tx_queues,
        inject: config.inject,
        idle: config.idle,
        clock,
        punt: shared.punt,
        stop: shared.stop,
        reader,
        stats: Arc::clone(&stats),
        histograms,
        trace: config.trace,
        index,
    };
    tracing::info!(
        worker = index,
        lcore,
        core = ?config.core,
        burst_size = config.burst_size,
        idle = ?config.idle,
        "worker started"
    );
    let run_cycles = match config.burst_size {
        1 => run::<1>(parts, ready, lcore),
        2 => run::<2>(parts, ready, lcore),
        4 => run::<4>(parts, ready, lcore),
        8 => run::<8>(parts, ready, lcore),
        16 => run::<16>(parts, ready, lcore),
        64 => run::<64>(parts, ready, lcore),
        // 32, and anything validate() let through by mistake.
        _ => run::<32>(parts, ready, lcore),
    };
    let stats = stats.snapshot();
    tracing::info!(
        worker = index,
        loops = stats.loops,
        rx_packets = stats.rx_packets(),
        tx_packets = stats.tx_packets(),
        "worker stopped"
    );
    Some(WorkerSummary {
        index,
        lcore,
        run_cycles,
        stats,
    })
}

/// The lcore id of a worker that did not register with EAL (`LCORE_ID_ANY`).
pub const UNREGISTERED: u32 = u32::MAX;

/// The calling thread's registration with EAL: unregisters it when dropped (nothing for a
/// thread that did not register).
struct Registration;

impl Drop for Registration {
    fn drop(&mut self) {
        thread_unregister();
    }
}

/// Pins the thread, registers it with EAL and registers its QSBR reader.
fn start(config: &WorkerConfig, shared: &WorkerShared) -> Result<(u32, QsbrReader), WorkerError> {
    if let Some(core) = config.core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            return Err(WorkerError::Pin { core });
        }
    }
    let lcore = if config.register_with_eal {
        thread_register().map_err(WorkerError::Register)?
    } else {
        UNREGISTERED
    };
    match shared.qsbr.register() {
        Ok(reader) => Ok((lcore, reader)),
        Err(err) => {
            thread_unregister();
            Err(WorkerError::Qsbr(err))
        }
    }
}

/// Builds the worker for burst size `N`, reports the start, runs it, and drops it (queues,
/// buffers, QSBR reader) before returning the cycles it ran.
fn run<const N: usize>(
    parts: Parts,
    ready: &SyncSender<Result<u32, WorkerError>>,
    lcore: u32,
) -> u64 {
    let mut worker = Worker::<N>::new(parts);
    // The spawner waits for this message; it cannot be gone.
    let _ = ready.send(Ok(lcore));
    worker.run()
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::punt::punt_channel;
    use router_core::dataplane::{Dataplane, Topology};
    use router_core::table::{AtomicMap, NextHops};

    fn shared() -> WorkerShared {
        let dataplane = Dataplane::new(
            Topology::default(),
            Arc::new(NextHops::new(2)),
            Arc::new(AtomicMap::new(8)),
        );
        WorkerShared {
            engine: Engine::new(Arc::new(dataplane)),
            qsbr: Arc::new(Qsbr::new(1)),
            punt: punt_channel().0,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    #[test]
    fn spawn_checks_the_configuration_first() {
        let bad_core = WorkerConfig {
            core: Some(100_000),
            ..WorkerConfig::new(0, 1_000_000_000)
        };
        let err = spawn(bad_core, shared()).unwrap_err();
        assert!(
            matches!(err, WorkerError::NoSuchCore { core: 100_000, .. }),
            "{err}"
        );
        let err = spawn(WorkerConfig::new(3, 1_000_000_000), shared()).unwrap_err();
        assert!(matches!(err, WorkerError::NoRxQueue { index: 3 }), "{err}");
    }

    #[test]
    fn panic_messages() {
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&String::from("owned")), "owned");
        assert_eq!(panic_message(&42u32), "a panic with a non-text payload");
    }
}
