//! The control thread's loop. It waits on three channels at once (packets the workers punted,
//! requests from the API and metrics threads, and packet-trace records) so that each is handled
//! as soon as it arrives, takes a bounded batch of each before the others get a turn, and runs
//! the timers between: the neighbour timers every [`TICK_INTERVAL`], the deadline of a trace
//! in progress, and a configuration reload that SIGHUP asked for. It never makes a worker wait: everything it sends goes on worker 0's
//! inject queue, and a full queue drops the packet and counts it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use dpdk_bindings::{Mbuf, Mempool};
use lcore_workers::{InjectQueue, Injected, PuntReceiver, TscClock};
use router_core::control::{ControlPlane, Holds, Solicit};
use router_core::engine::{Engine, WorkerState};
use router_core::ids::PortId;
use router_core::reason::DropReason;
use tracing::{debug, info, warn};

use super::fragment::FRAGMENT_BUDGET;
use super::reload::Reload;
use super::trace::Trace;
use super::{Daemon, DaemonError};
use crate::api::{Call, Request};
use crate::stats::Snapshot;

/// How often the control thread runs the neighbour timers.
const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// How long the control thread waits for a punted packet before doing its other work.
const PUNT_WAIT: Duration = Duration::from_millis(10);
/// Punted packets handled per loop before the timers get a turn.
const PUNT_BUDGET: usize = 256;
/// API requests answered per loop before punted packets and timers get a turn.
const CALL_BUDGET: usize = 64;

/// The control thread's state.
pub(super) struct ControlThread {
    pub(super) cp: ControlPlane,
    pub(super) engine: Engine,
    pub(super) worker: WorkerState,
    pub(super) pool: Mempool,
    /// Worker 0's queue of packets to send for the control thread.
    pub(super) inject: Arc<InjectQueue>,
    /// Packets waiting for a neighbour, with their input port.
    pub(super) holds: Holds<(Mbuf, PortId)>,
    pub(super) clock: TscClock,
    pub(super) punt_rx: PuntReceiver,
    pub(super) next_tick: Instant,
    /// The IPv4 identification of the next VXLAN packet the control thread builds.
    pub(super) ident: u16,
    /// Fragments the control thread may still build in this turn of its loop.
    pub(super) fragment_budget: usize,
    /// Requests from the API and metrics threads.
    pub(super) calls_rx: Receiver<Call>,
    /// Keeps the request channel connected while no server holds a sender.
    pub(super) _calls_tx: Sender<Call>,
    pub(super) trace: Trace,
    /// The counters at the last `stats.reset`, and when.
    pub(super) baseline: Option<(Snapshot, Instant)>,
    /// The configuration in force, read again on SIGHUP.
    pub(super) reload: Reload,
}

impl ControlThread {
    /// Waits on punted packets, API requests and trace records at once, so that each is handled
    /// as soon as it arrives; runs the timers between.
    pub(super) fn run(
        &mut self,
        stop: &AtomicBool,
        daemon: &mut Daemon,
    ) -> Result<(), DaemonError> {
        let punts = self.punt_rx.clone();
        let calls = self.calls_rx.clone();
        let records = self.trace.rx.clone();
        while !stop.load(Ordering::Relaxed) {
            self.fragment_budget = FRAGMENT_BUDGET;
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
                        // A change may have resolved a next hop (an instance port now has the
                        // address) or removed one that packets waited for.
                        self.settle_holds();
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
            self.timers(daemon)?;
        }
        info!("stopping");
        Ok(())
    }

    /// Reloads the configuration after a SIGHUP, ends a trace whose time is up, and runs the
    /// neighbour timers when they are due (and checks on the workers then).
    fn timers(&mut self, daemon: &Daemon) -> Result<(), DaemonError> {
        if self.reload.take_request() {
            // The outcome is logged and counted; a signal has no one to answer.
            let _ = self.reload(daemon);
        }
        if self
            .trace
            .deadline()
            .is_some_and(|deadline| Instant::now() >= deadline)
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
        Ok(())
    }

    /// How long the loop may wait for something to arrive: until the next timer, at most
    /// [`PUNT_WAIT`] (the stop flag is checked between waits).
    fn wait(&self) -> Duration {
        let now = Instant::now();
        let mut until = self.next_tick;
        if let Some(deadline) = self.trace.deadline() {
            until = until.min(deadline);
        }
        until.saturating_duration_since(now).min(PUNT_WAIT)
    }

    /// Answers one request of the API or metrics thread.
    fn serve(&mut self, call: Call, daemon: &mut Daemon) {
        match call {
            Call::Metrics { reply } => {
                let _ = reply.send(self.metrics_data(daemon));
            }
            Call::Fleet {
                revision,
                changes,
                reply,
            } => {
                let started = Instant::now();
                let result = self
                    .cp
                    .apply_batch(&changes)
                    .map(|_| ())
                    .map_err(|(i, e)| (i, e.to_string()));
                debug!(
                    revision,
                    changes = changes.len(),
                    elapsed_us = started.elapsed().as_micros() as u64,
                    ok = result.is_ok(),
                    "fleet batch"
                );
                let _ = reply.send(result);
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

    pub(super) fn now(&self) -> u64 {
        self.clock.now_ns()
    }

    pub(super) fn count_drop(&self, reason: DropReason) {
        self.worker.counters().count_drop(reason);
    }

    /// Hands a packet to worker 0, which sends it on `port`.
    pub(super) fn send(&mut self, port: PortId, mbuf: Mbuf) {
        if let Err(refused) = self.inject.push(Injected { mbuf, port }) {
            drop(refused);
            self.worker.counters().count_drop(DropReason::TxFull);
        }
    }

    pub(super) fn send_solicits(&mut self, solicits: Vec<Solicit>) {
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
        self.settle_holds();
    }
}

impl Drop for ControlThread {
    fn drop(&mut self) {
        let held = self.holds.drain().count();
        if held > 0 {
            debug!(held, "dropping held packets at stop");
        }
        while self.inject.pop().is_some() {}
    }
}
