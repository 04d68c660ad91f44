//! The control API: JSON requests on a local Unix socket, one per line, each answered by one
//! JSON line. [`docs/api.md`](../../docs/api.md) lists every request, its fields and its
//! errors; this module is the protocol ([`parse`], [`Response`]), the socket server
//! ([`server`]), the client that `dvrctl` uses ([`client`]) and the shapes of the results
//! ([`view`]).
//!
//! Requests are parsed and size-checked on the API threads. What reads or changes the router
//! goes to the control thread (the single writer of the tables) as a [`Call`] on a bounded
//! channel, with a channel for the reply; the control thread applies it at once and never
//! waits for a client. The data path never depends on any of this.
//!
//! ```text
//! -> {"v":1,"id":7,"op":"route.add","args":{"router":"tenant1","prefix":"10.9.0.0/16","via":"10.0.2.254"}}
//! <- {"v":1,"id":7,"ok":true,"result":{"changed":true}}
//! ```

pub mod client;
pub mod describe;
pub mod fleet;
mod parse;
pub mod server;
pub mod view;

use std::fmt;
use std::time::{Duration, Instant};

use crossbeam::channel::Sender;
use router_core::control::ApplyError;
use router_core::model::{Change, ModelError};
use serde::{Deserialize, Serialize};

pub use self::parse::{op_names, parse, Envelope, OPS};
pub use self::view::Reply;

/// The version of the protocol this daemon speaks. Every request names it (`"v": 1`); a
/// change that breaks clients bumps it.
pub const API_VERSION: u32 = 1;
/// Longest request line, newline excluded (a batch of about 100,000 instance ports).
pub const REQUEST_BYTES_MAX: usize = 16 << 20;
/// Most changes in one batch.
pub const BATCH_CHANGES_MAX: usize = 200_000;
/// Most client connections served at once; one more is answered `busy` and closed.
pub const CONNECTIONS_MAX: usize = 16;
/// How long a connection may stay silent between requests before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client may take to send one request once its first byte arrived.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server waits for a client to take a response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits for room in the control thread's queue.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for the control thread's answer (a trace waits for its own
/// timeout on top of this).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests queued for the control thread.
pub const CALL_QUEUE_DEPTH: usize = 64;
/// Longest packet trace a client may ask for.
pub const TRACE_TIMEOUT_MAX: Duration = Duration::from_secs(60);
/// Most points per half distance of a full percentile distribution.
pub const HIST_TICKS_MAX: u32 = 20;

/// The stable, machine-readable kind of an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line is not one JSON object (syntax error, not UTF-8, nested too deep).
    Malformed,
    /// The request, or a batch, is over its size limit.
    TooLarge,
    /// `v` is missing or names a version this daemon does not speak.
    UnsupportedVersion,
    /// `op` names no request.
    UnknownOp,
    /// A field is unknown, missing, duplicated, of the wrong type or has an invalid value.
    InvalidArgument,
    /// The request names an object that does not exist.
    NotFound,
    /// The object exists with a different value (add with `replace` to change it).
    Conflict,
    /// The object is still used by another one.
    InUse,
    /// A configured limit (routers, networks, peers...) is reached.
    Limit,
    /// The host (name, DVR MAC, VTEP) must be set first.
    NoHost,
    /// A data-plane table is full (next hops, L2 entries, LPM groups).
    TableFull,
    /// Too many clients or requests at once, or a trace is already running: try again.
    Busy,
    /// The control thread did not answer in time; the request may or may not have been applied.
    Timeout,
    /// The daemon is stopping.
    ShuttingDown,
    /// The routing state of this host is managed by the fleet's store: change it there.
    FleetManaged,
    /// A configuration reload was refused (the file is invalid, or its routing state does not
    /// apply): nothing changed.
    InvalidConfig,
    /// A bug: the daemon could not do what it accepted.
    Internal,
}

impl ErrorCode {
    /// The snake_case name used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::InUse => "in_use",
            ErrorCode::Limit => "limit",
            ErrorCode::NoHost => "no_host",
            ErrorCode::TableFull => "table_full",
            ErrorCode::Busy => "busy",
            ErrorCode::Timeout => "timeout",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::FleetManaged => "fleet_managed",
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a request was refused. A refused request changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    /// A sentence naming what was wrong.
    pub message: String,
    /// The field at fault, when there is one (`prefix`, `port.mac`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// In a batch: the index of the change that was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
            index: None,
        }
    }

    /// An invalid field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidArgument, message).for_field(field)
    }

    /// The same error, blamed on `field`.
    pub fn for_field(self, field: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.into()),
            ..self
        }
    }

    /// The same error, for change `index` of a batch.
    pub fn at(self, index: usize) -> Self {
        let message = format!("change {index}: {}", self.message);
        ApiError {
            index: Some(index),
            message,
            ..self
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        let message = e.to_string();
        match e {
            ModelError::Invalid { field, .. } => ApiError::field(field, message),
            ModelError::NotFound { .. } => ApiError::new(ErrorCode::NotFound, message),
            ModelError::Conflict { .. } => ApiError::new(ErrorCode::Conflict, message),
            ModelError::InUse { .. } => ApiError::new(ErrorCode::InUse, message),
            ModelError::Limit { .. } => ApiError::new(ErrorCode::Limit, message),
            ModelError::NoHost { .. } => ApiError::new(ErrorCode::NoHost, message),
        }
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Model(m) => m.into(),
            ApplyError::Lpm { .. } | ApplyError::NextHops(_) | ApplyError::L2(_) => {
                ApiError::new(ErrorCode::TableFull, e.to_string())
            }
            ApplyError::Config(_) => ApiError::new(ErrorCode::Internal, e.to_string()),
        }
    }
}

/// A packet trace as asked: how many packets, for how long at most, and which.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRequest {
    pub count: u32,
    pub timeout: Duration,
    /// The input port by name.
    pub port: Option<String>,
    pub src: Option<std::net::Ipv4Addr>,
    pub dst: Option<std::net::Ipv4Addr>,
    pub protocol: Option<u8>,
}

/// One request, parsed and checked for everything that does not depend on the router's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Version,
    LogShow,
    LogSet {
        level: String,
    },
    HostShow,
    PeerList,
    NetworkList,
    RouterList,
    InterfaceList {
        router: Option<String>,
    },
    RouteList {
        router: Option<String>,
    },
    RouteLookup {
        router: String,
        ip: std::net::Ipv4Addr,
    },
    PortList {
        network: Option<String>,
    },
    NeighList {
        router: Option<String>,
    },
    ExternalShow,
    FipList {
        router: Option<String>,
    },
    /// One add, delete or set.
    Change(Change),
    /// Changes applied all or none.
    Batch(Vec<Change>),
    StatsShow,
    StatsReset,
    /// The host's membership of the fleet, with the revisions it applied last.
    FleetShow,
    HistShow {
        full: bool,
        ticks: u32,
    },
    HistReset,
    IcmpSet {
        rate_per_s: u32,
        burst: u32,
    },
    Trace(TraceRequest),
    /// Re-read the configuration file and apply it, as SIGHUP does.
    ConfigReload,
}

impl Request {
    /// The op that asked for it, for logs.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Version => "version",
            Request::LogShow => "log.show",
            Request::LogSet { .. } => "log.set",
            Request::HostShow => "host.show",
            Request::PeerList => "peer.list",
            Request::NetworkList => "network.list",
            Request::RouterList => "router.list",
            Request::InterfaceList { .. } => "interface.list",
            Request::RouteList { .. } => "route.list",
            Request::RouteLookup { .. } => "route.lookup",
            Request::PortList { .. } => "port.list",
            Request::NeighList { .. } => "neigh.list",
            Request::ExternalShow => "external.show",
            Request::FipList { .. } => "fip.list",
            Request::Change(_) => "change",
            Request::Batch(_) => "batch",
            Request::StatsShow => "stats.show",
            Request::StatsReset => "stats.reset",
            Request::FleetShow => "fleet.show",
            Request::HistShow { .. } => "hist.show",
            Request::HistReset => "hist.reset",
            Request::IcmpSet { .. } => "icmp.set",
            Request::Trace(_) => "trace",
            Request::ConfigReload => "config.reload",
        }
    }

    /// How long the API thread waits for the control thread's answer.
    pub fn reply_timeout(&self) -> Duration {
        match self {
            Request::Trace(t) => REPLY_TIMEOUT + t.timeout,
            _ => REPLY_TIMEOUT,
        }
    }
}

/// The control thread's answer.
pub type Outcome = Result<Reply, ApiError>;

/// What the API and metrics threads ask of the control thread.
#[derive(Debug)]
pub enum Call {
    /// A client's request; the answer goes to `reply`. Skipped, unanswered, once `deadline`
    /// has passed (the client was told `timeout`).
    Api {
        request: Request,
        reply: Sender<Outcome>,
        deadline: Instant,
    },
    /// The counters and histograms for the metrics endpoint.
    Metrics { reply: Sender<view::MetricsData> },
    /// One revision of the fleet's store, as one batch (from the fleet thread).
    Fleet {
        revision: i64,
        changes: Vec<router_core::model::Change>,
        reply: Sender<Result<(), (usize, String)>>,
    },
}

/// One response line, as clients read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

/// Writes the response line (newline included) for `outcome`.
pub fn response_line(id: Option<u64>, outcome: &Outcome) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a> {
        v: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<&'a Reply>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a ApiError>,
    }
    let out = match outcome {
        Ok(r) => Out {
            v: API_VERSION,
            id,
            ok: true,
            result: Some(r),
            error: None,
        },
        Err(e) => Out {
            v: API_VERSION,
            id,
            ok: false,
            result: None,
            error: Some(e),
        },
    };
    let mut line = serde_json::to_vec(&out).unwrap_or_else(|e| {
        let err = ApiError::new(
            ErrorCode::Internal,
            format!("cannot encode the response: {e}"),
        );
        serde_json::to_vec(&Out {
            v: API_VERSION,
            id,
            ok: false,
            result: None,
            error: Some(&err),
        })
        .unwrap_or_default()
    });
    line.push(b'\n');
    line
}
