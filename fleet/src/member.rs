//! A host's life in the fleet: start from the local snapshot, list, watch from the listed
//! revision, apply every revision as one batch, reconnect with backoff, re-list after a
//! compaction, publish its status under a lease.
//!
//! [`Member::run`] is async and runs on a runtime of its own thread (`dvrd`) or beside other
//! members (the fleet benchmark). The control plane is behind [`Apply`]: the daemon's
//! implementation hands each batch to the control thread and waits for its answer, so the
//! workers never see the runtime.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use etcd_client::{EventType, WatchStream};
use router_core::model::Change;
use tracing::{debug, info, warn};

use crate::state::{Event, SnapshotFile};
use crate::status::{
    rfc3339, unix_us, Applied, HostStatus, KeyError, LinkState, MemberReport, ERRORS_LISTED_MAX,
    RECENT_MAX,
};
use crate::store::{Store, StoreConfig, StoreError};
use crate::sync::{HostSync, Plan};

/// Applies a batch to the control plane: all of it, or none and the index of the refused
/// change with the reason.
pub trait Apply {
    fn apply(&mut self, revision: i64, changes: &[Change]) -> Result<(), (usize, String)>;
}

/// How a member runs.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    pub store: StoreConfig,
    /// The local snapshot (state + revision), rewritten atomically as the state changes.
    pub snapshot: Option<PathBuf>,
    /// Published in the status.
    pub version: String,
    pub lease_ttl: Duration,
    /// Least time between two status writes.
    pub status_interval: Duration,
    /// Least time between two snapshot writes.
    pub snapshot_interval: Duration,
    /// Longest wait between two connection attempts.
    pub backoff_max: Duration,
}

impl MemberConfig {
    pub fn new(store: StoreConfig) -> Self {
        MemberConfig {
            store,
            snapshot: None,
            version: String::new(),
            lease_ttl: Duration::from_secs(10),
            status_interval: Duration::from_secs(1),
            snapshot_interval: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// The shared report, readable by the daemon at any time.
pub type SharedReport = Arc<Mutex<MemberReport>>;

/// One host of the fleet.
pub struct Member<A> {
    cfg: MemberConfig,
    sync: HostSync,
    apply: A,
    report: SharedReport,
    /// The revision of the last snapshot written.
    snapshot_revision: i64,
    /// The status changed since it was last published.
    status_dirty: bool,
    /// Keys reported in the log already, with their reason.
    logged: std::collections::BTreeMap<String, String>,
}

impl<A> std::fmt::Debug for Member<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("host", &self.sync.host())
            .finish()
    }
}

impl<A: Apply> Member<A> {
    pub fn new(cfg: MemberConfig, sync: HostSync, apply: A) -> Self {
        let report = Arc::new(Mutex::new(MemberReport::new(sync.host())));
        Member {
            cfg,
            sync,
            apply,
            report,
            snapshot_revision: 0,
            status_dirty: true,
            logged: Default::default(),
        }
    }

    /// The report, shared.
    pub fn report(&self) -> SharedReport {
        Arc::clone(&self.report)
    }

    fn with_report<R>(&self, f: impl FnOnce(&mut MemberReport) -> R) -> R {
        f(&mut self.report.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs until `shutdown` turns true (or its sender is dropped), then writes the snapshot.
    pub async fn run(mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        self.restore();
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut connected = false;
            let result = tokio::select! {
                r = self.session(&mut connected) => r,
                _ = shutdown.changed() => break,
            };
            if connected {
                backoff = Duration::from_millis(100);
            }
            if let Err(e) = result {
                let was = self.with_report(|r| r.state);
                if was != LinkState::Disconnected {
                    warn!(
                        host = self.sync.host(),
                        "fleet: disconnected from etcd: {e}"
                    );
                } else {
                    debug!("fleet: etcd still unreachable: {e}");
                }
                self.with_report(|r| r.set_state(LinkState::Disconnected, Some(e.to_string())));
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => break,
            }
            backoff = (backoff * 2).min(self.cfg.backoff_max);
        }
        self.write_snapshot();
    }

    /// Starts from the local snapshot, if there is one for this host.
    fn restore(&mut self) {
        let Some(path) = self.cfg.snapshot.clone() else {
            return;
        };
        let snap = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<SnapshotFile>(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                warn!("fleet: snapshot {}: {e}; starting empty", path.display());
                return;
            }
        };
        match snap {
            Ok(s) if s.version == SnapshotFile::VERSION && s.host == self.sync.host() => {
                let state = s.state();
                info!(
                    "fleet: forwarding from the snapshot {} at revision {} ({} records)",
                    path.display(),
                    s.revision,
                    state.records.len()
                );
                let plan = self.sync.reset(state);
                self.commit(plan);
                self.snapshot_revision = s.revision;
                self.with_report(|r| r.from_snapshot = true);
            }
            Ok(s) => warn!(
                "fleet: snapshot {} is of host {} (format {}); starting empty",
                path.display(),
                s.host,
                s.version
            ),
            Err(e) => warn!("fleet: snapshot {}: {e}; starting empty", path.display()),
        }
    }

    /// One connection: catch up, then follow the watch until something fails.
    async fn session(&mut self, connected: &mut bool) -> Result<(), StoreError> {
        let mut store = Store::connect(&self.cfg.store).await?;
        let mut stream = self.catch_up(&mut store).await?;
        *connected = true;
        let reconnected = self.with_report(|r| {
            let again = r.state == LinkState::Disconnected;
            r.set_state(LinkState::Connected, None);
            r.from_snapshot = false;
            if again {
                r.reconnects += 1;
            }
            again
        });
        info!(
            host = self.sync.host(),
            "fleet: {} etcd at {}, following from revision {}",
            if reconnected {
                "reconnected to"
            } else {
                "connected to"
            },
            self.cfg.store.endpoints.join(","),
            self.sync.state().revision
        );
        let mut lease = store.grant(self.cfg.lease_ttl).await?;
        self.status_dirty = true;
        self.publish(&mut store, lease).await?;
        let mut keep = tokio::time::interval(self.cfg.lease_ttl / 3);
        let mut status = tokio::time::interval(self.cfg.status_interval);
        let mut snapshot = tokio::time::interval(self.cfg.snapshot_interval);
        loop {
            tokio::select! {
                msg = stream.message() => {
                    let resp = msg
                        .map_err(|e| StoreError::WatchEnded(e.to_string()))?
                        .ok_or_else(|| StoreError::WatchEnded("closed by etcd".into()))?;
                    if resp.canceled() {
                        if resp.compact_revision() > 0 {
                            info!(
                                "fleet: revision {} was compacted (history starts at {}): re-listing",
                                self.sync.state().revision + 1,
                                resp.compact_revision()
                            );
                            stream = self.relist(&mut store).await?;
                            continue;
                        }
                        return Err(StoreError::WatchEnded(resp.cancel_reason().to_string()));
                    }
                    self.on_events(resp.events(), store.config_dir().len());
                }
                _ = keep.tick() => {
                    if !store.keep_alive(lease).await? {
                        lease = store.grant(self.cfg.lease_ttl).await?;
                        self.status_dirty = true;
                    }
                }
                _ = status.tick() => self.publish(&mut store, lease).await?,
                _ = snapshot.tick() => self.write_snapshot(),
            }
        }
    }

    /// Resumes the watch after the revision this host has, or re-lists when it has none.
    async fn catch_up(&mut self, store: &mut Store) -> Result<WatchStream, StoreError> {
        let revision = self.sync.state().revision;
        if revision > 0 {
            // A compacted start revision is answered with a cancel, handled by the session.
            store.watch_config(revision + 1).await
        } else {
            self.relist(store).await
        }
    }

    /// Reads every record, applies the difference with what this host has, and watches from
    /// the revision of the read.
    async fn relist(&mut self, store: &mut Store) -> Result<WatchStream, StoreError> {
        let dir = store.config_dir();
        let (revision, entries) = store.list(&dir).await?;
        let list: Vec<(String, Vec<u8>)> = entries.into_iter().map(|e| (e.key, e.value)).collect();
        let records = list.len();
        let next = self.sync.state().relisted(revision, &list);
        let plan = self.sync.reset(next);
        let changes = plan.changes.len();
        self.commit(plan);
        self.with_report(|r| r.relists += 1);
        info!(
            host = self.sync.host(),
            "fleet: listed {records} records at revision {revision}: {changes} changes here"
        );
        store.watch_config(revision + 1).await
    }

    /// The events of one watch response, one batch per revision.
    fn on_events(&mut self, events: &[etcd_client::Event], dir_len: usize) {
        let mut batch = Vec::new();
        let mut revision = 0;
        for e in events {
            let Some(kv) = e.kv() else { continue };
            if kv.mod_revision() != revision && !batch.is_empty() {
                self.revision(revision, std::mem::take(&mut batch));
            }
            revision = kv.mod_revision();
            let key = String::from_utf8_lossy(kv.key().get(dir_len..).unwrap_or_default());
            let key = key.into_owned();
            batch.push(match e.event_type() {
                EventType::Put => Event::Put {
                    key,
                    value: kv.value().to_vec(),
                },
                EventType::Delete => Event::Delete { key },
            });
        }
        if !batch.is_empty() {
            self.revision(revision, batch);
        }
    }

    fn revision(&mut self, revision: i64, events: Vec<Event>) {
        let n = events.len() as u64;
        self.with_report(|r| r.events += n);
        let plan = self.sync.revision(revision, &events);
        self.commit(plan);
    }

    /// Applies a plan; a change the control plane refuses is reported and left out, and the
    /// rest is applied.
    fn commit(&mut self, mut plan: Plan) {
        let revision = plan.revision;
        let mut applied = 0;
        while !plan.is_empty() {
            match self.apply.apply(plan.revision, &plan.changes) {
                Ok(()) => {
                    applied = plan.changes.len();
                    break;
                }
                Err((index, error)) => {
                    let index = index.min(plan.changes.len() - 1);
                    plan = self.sync.refused(plan, index, error);
                }
            }
        }
        let (rejected, total) = self.rejected();
        for e in &rejected {
            if self.logged.get(&e.key) != Some(&e.error) {
                warn!(
                    host = self.sync.host(),
                    "fleet: record {} skipped: {}", e.key, e.error
                );
            }
        }
        self.logged = rejected
            .iter()
            .map(|e| (e.key.clone(), e.error.clone()))
            .collect();
        let routers = self.sync.routers();
        self.with_report(|r| {
            r.applied_revision = r.applied_revision.max(revision);
            r.routers = routers;
            r.rejected = rejected;
            r.rejected_total = total;
            if applied > 0 {
                r.batches += 1;
                r.changes += applied as u64;
                if r.recent.len() == RECENT_MAX {
                    r.recent.pop_front();
                }
                r.recent.push_back(Applied {
                    revision,
                    at_us: unix_us(SystemTime::now()),
                    changes: u32::try_from(applied).unwrap_or(u32::MAX),
                });
            }
        });
        self.status_dirty = true;
    }

    /// Every record this host could not apply: values that did not parse, records the model
    /// refused. At most [`ERRORS_LISTED_MAX`], with the total.
    fn rejected(&self) -> (Vec<KeyError>, usize) {
        let state = self.sync.state();
        let unparsed = state.invalid.iter().map(|(k, e)| KeyError {
            key: k.clone(),
            error: e.to_string(),
        });
        let refused = self.sync.rejected().iter().map(|(k, e)| KeyError {
            key: k.path(),
            error: e.clone(),
        });
        let total = state.invalid.len() + self.sync.rejected().len();
        (
            unparsed.chain(refused).take(ERRORS_LISTED_MAX).collect(),
            total,
        )
    }

    /// Publishes the status if it changed.
    async fn publish(&mut self, store: &mut Store, lease: i64) -> Result<(), StoreError> {
        if !self.status_dirty {
            return Ok(());
        }
        let status = self.with_report(|r| HostStatus {
            version: self.cfg.version.clone(),
            applied_revision: r.applied_revision,
            routers: r.routers,
            errors: r.rejected.clone(),
            errors_total: r.rejected_total,
            updated: rfc3339(SystemTime::now()),
        });
        let value = serde_json::to_string(&status).unwrap_or_default();
        store.put_status(self.sync.host(), value, lease).await?;
        self.status_dirty = false;
        Ok(())
    }

    /// Writes the snapshot if the state moved since the last one: to a temporary file, synced,
    /// then renamed over the old one, so a crash leaves the old or the new, never a torn one.
    fn write_snapshot(&mut self) {
        let Some(path) = self.cfg.snapshot.clone() else {
            return;
        };
        let state = self.sync.state();
        if state.revision == self.snapshot_revision {
            return;
        }
        let snap = SnapshotFile::of(self.sync.host(), state);
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let bytes = serde_json::to_vec(&snap).map_err(std::io::Error::other)?;
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        match write() {
            Ok(()) => self.snapshot_revision = snap.revision,
            Err(e) => warn!("fleet: snapshot {}: {e}", path.display()),
        }
    }
}
