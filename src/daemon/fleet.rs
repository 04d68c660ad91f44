//! The fleet thread: a Tokio runtime of its own running this host's [`Member`], which follows
//! the fleet's store and hands every revision to the control thread as one batch
//! ([`Call::Fleet`]), waiting for its answer. The workers never see it; the control thread sees
//! one more kind of request.

use std::sync::PoisonError;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{bounded, Sender};
use dvr_fleet::member::{Apply, Member, MemberConfig, SharedReport};
use dvr_fleet::store::StoreConfig;
use dvr_fleet::{HostSync, MemberReport};
use router_core::model::{Change, Model};
use tracing::warn;

use super::DaemonError;
use crate::api::Call;
use crate::config::FleetSettings;

/// How long shutting down waits for the fleet thread (it writes the snapshot last).
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The running fleet thread.
pub(super) struct FleetThread {
    shutdown: tokio::sync::watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    report: SharedReport,
}

/// Hands batches to the control thread.
struct ControlApply {
    calls: Sender<Call>,
}

impl Apply for ControlApply {
    fn apply(&mut self, revision: i64, changes: &[Change]) -> Result<(), (usize, String)> {
        let (reply, answer) = bounded(1);
        let call = Call::Fleet {
            revision,
            changes: changes.to_vec(),
            reply,
        };
        let stopping = || (0, "the control thread is stopping".to_string());
        self.calls.send(call).map_err(|_| stopping())?;
        answer.recv().map_err(|_| stopping())?
    }
}

impl FleetThread {
    /// Starts following the store; `model` is the control plane's with the file's own settings
    /// applied: its local ports and, on a host with an external port, its `[external]`
    /// network. The fleet's floating IPs are validated against that copy (an instance here
    /// with a floating IP needs it), and no fleet record changes it, across re-lists and
    /// snapshot restores alike.
    pub(super) fn start(
        settings: &FleetSettings,
        model: Model,
        calls: Sender<Call>,
    ) -> Result<FleetThread, DaemonError> {
        let mut store = StoreConfig::new(settings.endpoints.clone(), &settings.prefix);
        store.request_timeout = Duration::from_secs(5);
        store.tls = settings.tls.as_ref().map(|t| t.files());
        let mut cfg = MemberConfig::new(store);
        cfg.snapshot = Some(settings.snapshot_path());
        cfg.version = env!("CARGO_PKG_VERSION").to_string();
        cfg.lease_ttl = Duration::from_secs(settings.lease_ttl_s);
        let sync = HostSync::new(&settings.host, model, settings.attach.clone());
        let member = Member::new(cfg, sync, ControlApply { calls });
        let report = member.report();
        let (shutdown, stop_rx) = tokio::sync::watch::channel(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DaemonError::Other(format!("fleet runtime: {e}")))?;
        let thread = std::thread::Builder::new()
            .name("fleet".into())
            .spawn(move || rt.block_on(member.run(stop_rx)))
            .map_err(|e| DaemonError::Other(format!("fleet thread: {e}")))?;
        Ok(FleetThread {
            shutdown,
            thread: Some(thread),
            report,
        })
    }

    /// The member's report as it is now.
    pub(super) fn report(&self) -> MemberReport {
        self.report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Tells the thread to stop (it writes the snapshot); [`join`](Self::join) waits for it.
    pub(super) fn signal_stop(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits for the thread, at most [`STOP_WAIT`].
    pub(super) fn join(mut self) {
        self.signal_stop();
        let Some(t) = self.thread.take() else { return };
        let deadline = std::time::Instant::now() + STOP_WAIT;
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            warn!("fleet: the fleet thread did not stop in {STOP_WAIT:?}; leaving it");
        }
    }
}
