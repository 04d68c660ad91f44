//! The shapes of the answers: what the control thread sends back, as the API serialises it and
//! as `dvrctl` reads it.

use lcore_workers::{quantiles, Histogram, HistogramSnapshot, Percentiles, TscClock};
use router_core::control::NeighborView;
use router_core::model::{HostSpec, InstancePortSpec, InterfaceSpec, PeerSpec, RouteSpec};
use serde::{Deserialize, Serialize};

use crate::stats::Snapshot;

/// The result of a request.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Applied(Applied),
    Batch(BatchApplied),
    Version(VersionInfo),
    Log(LogLevel),
    Host(HostView),
    Peers(Peers),
    Networks(Networks),
    Routers(Routers),
    Interfaces(Interfaces),
    Routes(Routes),
    Lookup(Lookup),
    Ports(Ports),
    Neighbors(Neighbors),
    Stats(Box<StatsView>),
    Hist(Box<HistView>),
    Trace(TraceView),
    Reset(ResetView),
    Icmp(IcmpView),
    Fleet(Box<FleetView>),
    External(ExternalView),
    Fips(Fips),
    Reload(ReloadView),
}

/// `config.reload` (and SIGHUP): what a reload of the configuration file did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadView {
    /// The changes applied, as one batch.
    pub changes: usize,
    /// Routing objects the file has and the running state had not, and the reverse.
    pub added: usize,
    pub removed: usize,
    /// Routing objects both had, with different values (replaced in place, or deleted and
    /// added again when they cannot change in place).
    pub replaced: usize,
    /// Settings other than the routing state that the reload changed (`icmp.rate_per_s`,
    /// `log.level`).
    pub settings: Vec<String>,
    /// Keys the file changed that take effect only when dvrd restarts (`eal.memory_mb`,
    /// `ports`...): not applied.
    pub needs_restart: Vec<String>,
    /// True on a fleet member: its routing state follows the fleet and is left alone.
    pub fleet: bool,
    /// The line the daemon logged.
    pub summary: String,
}

/// Reloads of the configuration file since start, by result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadCounts {
    pub applied: u64,
    pub refused: u64,
}

/// `external.show`: this host on the external network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalView {
    pub external: Option<router_core::model::ExternalSpec>,
    /// The external port (`None`: the configuration has no port with `external = true`).
    pub port: Option<String>,
}

/// `fip.list`: the floating IPs with their counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fips {
    pub floating_ips: Vec<crate::stats::FipView>,
}

/// `fleet.show`: the host's membership of the fleet and the revisions that changed it last.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FleetView {
    #[serde(flatten)]
    pub report: dvr_fleet::MemberReport,
    /// The last revisions that changed this host, oldest first.
    pub recent: Vec<dvr_fleet::status::Applied>,
}

/// One add, delete or set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// False when the object already had this value (or, for a set, nothing changed).
    pub changed: bool,
}

/// A batch, applied whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchApplied {
    pub changes: usize,
    pub changed: usize,
    pub unchanged: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The protocol version ([`super::API_VERSION`]).
    pub api: u32,
    /// The daemon's version.
    pub daemon: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLevel {
    /// The `tracing` filter in force.
    pub level: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostView {
    pub host: Option<HostSpec>,
}

/// A tenant network and the router it is attached to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkView {
    pub name: String,
    pub vni: u32,
    pub ports: Vec<String>,
    pub router: Option<String>,
}

/// A router and the size of its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterEntry {
    pub name: String,
    pub large: bool,
    pub interfaces: usize,
    /// Extra routes.
    pub routes: usize,
    /// Prefixes in its routing table (connected subnets, host routes of neighbours, routes).
    pub prefixes: usize,
}

/// Where a router's table sends an address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    pub router: String,
    pub ip: std::net::Ipv4Addr,
    pub next_hop: Option<router_core::ids::NextHopId>,
    /// What the next hop does, in words.
    pub result: String,
}

/// Declares the replies that are one list under one key (`{"peers": [...]}`): the listings.
macro_rules! listings {
    ($($(#[$doc:meta])* $name:ident { $field:ident: $item:ty })+) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
            pub struct $name {
                pub $field: Vec<$item>,
            }
        )+
    };
}

listings! {
    /// The peer hosts.
    Peers { peers: PeerSpec }
    /// The tenant networks.
    Networks { networks: NetworkView }
    /// The routers.
    Routers { routers: RouterEntry }
    /// The routers' interfaces.
    Interfaces { interfaces: InterfaceSpec }
    /// The routes beyond the connected subnets.
    Routes { routes: RouteSpec }
    /// The instance ports (static neighbours).
    Ports { ports: InstancePortSpec }
    /// The neighbours, static and learned.
    Neighbors { neighbors: NeighborView }
}

/// Counters since the last `stats.reset` (since start before the first).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatsView {
    /// Seconds the counters cover.
    pub since_reset_s: f64,
    pub snapshot: Snapshot,
    /// The host's membership of the fleet, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<dvr_fleet::MemberReport>,
    /// Reloads of the configuration file since start (never reset).
    #[serde(default)]
    pub config_reloads: ReloadCounts,
}

/// Percentiles of one histogram, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_ns: u64,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>, clock: Option<&TscClock>) -> Self {
        let p = Percentiles::of(histogram);
        let p = clock.map_or(Percentiles::default(), |c| p.to_ns(c));
        LatencySummary {
            count: p.count,
            min_ns: p.min,
            mean_ns: p.mean,
            p50_ns: p.p50,
            p90_ns: p.p90,
            p99_ns: p.p99,
            p999_ns: p.p999,
            max_ns: p.max,
        }
    }
}

/// One step of a full percentile distribution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantileNs {
    /// Fraction of values at or below `value_ns`.
    pub quantile: f64,
    pub value_ns: u64,
    /// Values since the previous step.
    pub count: u64,
}

/// The two histograms of a worker (or of all, merged).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HistSet {
    /// Processing time of one burst.
    pub burst: LatencySummary,
    /// Residence time of one packet, RX burst to TX burst.
    pub residence: LatencySummary,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub burst_distribution: Vec<QuantileNs>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub residence_distribution: Vec<QuantileNs>,
}

impl HistSet {
    /// The summaries of `h`, with the full distributions (`ticks` steps per half distance)
    /// when `full`.
    pub fn of(h: &HistogramSnapshot, full: Option<u32>) -> Self {
        let clock = h.clock();
        let dist = |histogram: &Histogram<u64>| match (full, &clock) {
            (Some(ticks), Some(c)) if !histogram.is_empty() => quantiles(histogram, ticks)
                .into_iter()
                .map(|q| QuantileNs {
                    quantile: q.quantile,
                    value_ns: c.ns(q.value),
                    count: q.count,
                })
                .collect(),
            _ => Vec::new(),
        };
        HistSet {
            burst: LatencySummary::of(&h.burst_cycles, clock.as_ref()),
            residence: LatencySummary::of(&h.residence_cycles, clock.as_ref()),
            burst_distribution: dist(&h.burst_cycles),
            residence_distribution: dist(&h.residence_cycles),
        }
    }
}

/// One worker's histograms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerHist {
    pub worker: usize,
    #[serde(flatten)]
    pub hist: HistSet,
}

/// The latency histograms since the last reset: merged over the workers, and per worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistView {
    pub since_reset_s: f64,
    pub tsc_hz: u64,
    pub merged: HistSet,
    pub workers: Vec<WorkerHist>,
}

/// One traced packet, with every id translated to a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracePacket {
    pub worker: usize,
    /// The input port.
    pub port: String,
    pub time_ns: u64,
    pub len: usize,
    /// The engine's decisions, in order, in words.
    pub steps: Vec<String>,
    /// Decisions the recorder had no room for.
    pub steps_lost: usize,
    /// What happened in the end: `forward <port>`, `punt <reason>` or `drop <reason>`.
    pub verdict: String,
}

/// The packets a trace captured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceView {
    pub requested: u32,
    pub packets: Vec<TracePacket>,
    /// True when `requested` packets were captured before the timeout.
    pub complete: bool,
    /// Records the workers could not hand over.
    pub lost: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetView {
    /// What was reset: `counters and histograms` or `histograms`.
    pub reset: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcmpView {
    pub rate_per_s: u32,
    pub burst: u32,
}

/// A summary as the metrics endpoint shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSummary {
    pub count: u64,
    /// Sum of the values, in seconds.
    pub sum_s: f64,
    /// (quantile, seconds).
    pub quantiles: Vec<(f64, f64)>,
}

/// Quantiles the metrics endpoint exports.
pub const METRICS_QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

impl MetricsSummary {
    pub fn of(histogram: &Histogram<u64>, clock: Option<&TscClock>) -> Self {
        let Some(clock) = clock else {
            return MetricsSummary::default();
        };
        let hz = clock.hz() as f64;
        if histogram.is_empty() {
            return MetricsSummary {
                quantiles: METRICS_QUANTILES.iter().map(|&q| (q, 0.0)).collect(),
                ..Default::default()
            };
        }
        MetricsSummary {
            count: histogram.len(),
            sum_s: histogram.mean() * histogram.len() as f64 / hz,
            quantiles: METRICS_QUANTILES
                .iter()
                .map(|&q| (q, histogram.value_at_quantile(q) as f64 / hz))
                .collect(),
        }
    }
}

/// What the metrics endpoint exports: every counter since start (never reset) and the latency
/// summaries since start.
#[derive(Clone, Debug, Default)]
pub struct MetricsData {
    pub snapshot: Snapshot,
    pub fleet: Option<dvr_fleet::MemberReport>,
    pub config_reloads: ReloadCounts,
    pub burst: MetricsSummary,
    pub residence: MetricsSummary,
}
