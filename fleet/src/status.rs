//! What a host reports: to its operator locally (`dvrctl stats`, metrics), and to the fleet
//! under its lease (`<prefix>status/<host>`, read by `dvrctl --etcd ... fleet status`).

use std::collections::VecDeque;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Most refused records a status lists (the total is always given).
pub const ERRORS_LISTED_MAX: usize = 64;
/// Revisions kept in [`MemberReport::recent`].
pub const RECENT_MAX: usize = 4096;

/// The host's link to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Not connected yet since the start.
    Connecting,
    Connected,
    /// Lost: forwarding goes on with the last state.
    Disconnected,
}

/// A record this host could not apply, by key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyError {
    pub key: String,
    pub error: String,
}

/// One revision that changed this host: when it was applied and how much it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub revision: i64,
    /// Microseconds since the Unix epoch.
    pub at_us: u64,
    pub changes: u32,
}

/// What the member loop reports, shared with the daemon's stats, metrics and API.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberReport {
    pub host: String,
    pub state: LinkState,
    /// When the state last changed (RFC 3339).
    pub since: String,
    /// The last error of the link to the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The store revision this host's tables reflect.
    pub applied_revision: i64,
    /// True while forwarding from the local snapshot, before the store answered.
    pub from_snapshot: bool,
    pub routers: usize,
    /// Records that did not parse or that the model refused, by key (at most
    /// [`ERRORS_LISTED_MAX`]).
    pub rejected: Vec<KeyError>,
    pub rejected_total: usize,
    pub events: u64,
    pub batches: u64,
    pub changes: u64,
    pub relists: u64,
    pub reconnects: u64,
    /// The last revisions that changed something here, oldest first.
    #[serde(skip)]
    pub recent: VecDeque<Applied>,
}

impl MemberReport {
    pub fn new(host: &str) -> Self {
        MemberReport {
            host: host.to_string(),
            state: LinkState::Connecting,
            since: rfc3339(SystemTime::now()),
            last_error: None,
            applied_revision: 0,
            from_snapshot: false,
            routers: 0,
            rejected: Vec::new(),
            rejected_total: 0,
            events: 0,
            batches: 0,
            changes: 0,
            relists: 0,
            reconnects: 0,
            recent: VecDeque::new(),
        }
    }

    /// Moves to `state` (the time is kept only when the state changes).
    pub fn set_state(&mut self, state: LinkState, error: Option<String>) {
        if self.state != state {
            self.state = state;
            self.since = rfc3339(SystemTime::now());
        }
        if error.is_some() || state == LinkState::Connected {
            self.last_error = error;
        }
    }

    /// The line `dvrctl stats` prints.
    pub fn summary(&self) -> String {
        let rejected = match self.rejected_total {
            0 => String::new(),
            n => format!(", {n} records refused"),
        };
        match self.state {
            LinkState::Connected => format!(
                "fleet: connected at revision {}{rejected}",
                self.applied_revision
            ),
            LinkState::Connecting => format!(
                "fleet: connecting since {} (revision {}{}){rejected}",
                self.since,
                self.applied_revision,
                if self.from_snapshot {
                    ", from the local snapshot"
                } else {
                    ""
                }
            ),
            LinkState::Disconnected => format!(
                "fleet: disconnected since {} (forwarding on revision {}){rejected}{}",
                self.since,
                self.applied_revision,
                self.last_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// What a host publishes under its lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    pub version: String,
    pub applied_revision: i64,
    pub routers: usize,
    pub errors: Vec<KeyError>,
    pub errors_total: usize,
    /// RFC 3339.
    pub updated: String,
}

/// `2026-12-01T12:00:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Microseconds since the Unix epoch.
pub fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
