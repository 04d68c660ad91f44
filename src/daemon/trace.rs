//! The packet trace, on the control thread: arming the workers' tap for one session, turning
//! the records they send back into words as they arrive, and answering the client that asked
//! once enough packets are in or its timeout has passed. One trace runs at a time.

use std::sync::Arc;
use std::time::Instant;

use crossbeam::channel::Sender;
use lcore_workers::{TraceFilter, TraceReceiver, TraceRecord, TraceTap};
use tracing::info;

use super::api::not_found;
use super::control_thread::ControlThread;
use crate::api::view::{TracePacket, TraceView};
use crate::api::{ApiError, ErrorCode, Outcome, Reply, TraceRequest};

/// The packet trace: the workers' switch, their records, and the session in progress.
pub(super) struct Trace {
    pub(super) tap: Arc<TraceTap>,
    pub(super) rx: TraceReceiver,
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

impl Trace {
    pub(super) fn new(tap: Arc<TraceTap>, rx: TraceReceiver) -> Self {
        Trace {
            tap,
            rx,
            pending: None,
            next_session: 1,
        }
    }

    /// When the trace in progress gives up waiting for packets, if one is in progress.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|t| t.deadline)
    }
}

impl ControlThread {
    /// Arms the workers' trace for `t`; the answer goes out when the packets are in or at the
    /// timeout.
    pub(super) fn start_trace(&mut self, t: TraceRequest, reply: Sender<Outcome>) {
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
                    let _ = reply.send(Err(not_found("port", name).for_field("port")));
                    return;
                }
            },
            None => None,
        };
        let trace = &mut self.trace;
        let session = trace.next_session;
        trace.next_session += 1;
        // Records of an earlier session still in the channel are stale.
        while trace.rx.try_recv().is_ok() {}
        let filter = TraceFilter {
            port,
            src: t.src,
            dst: t.dst,
            protocol: t.protocol,
        };
        trace.tap.arm(session, filter, t.count);
        info!(session, count = t.count, ?filter, "packet trace armed");
        trace.pending = Some(PendingTrace {
            session,
            requested: t.count,
            deadline: Instant::now() + t.timeout,
            reply,
            packets: Vec::with_capacity(t.count as usize),
        });
    }

    /// Adds a worker's record to the trace in progress; answers once it has all it asked for.
    pub(super) fn trace_record(&mut self, r: TraceRecord) {
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

    /// Disarms the workers and answers with what was captured; `complete` when every packet
    /// asked for is in (otherwise the timeout passed).
    pub(super) fn finish_trace(&mut self, complete: bool) {
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
}
