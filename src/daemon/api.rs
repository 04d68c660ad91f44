//! Answering the control API on the control thread: every request that reads or changes the
//! router, one function per kind. The API thread parsed and checked the request already; what
//! is checked here depends on the router's state (does the router exist, does the change
//! apply). Queries read through the control plane's query accessors; changes go through
//! [`ControlPlane::apply`] and [`ControlPlane::apply_batch`], all or nothing.

use std::net::Ipv4Addr;
use std::time::Instant;

use router_core::control::ControlPlane;
use router_core::model::{Applied, Change, NetworkSpec, RouterSpec};
use tracing::{debug, info};

use super::control_thread::ControlThread;
use super::Daemon;
use crate::api::describe;
use crate::api::view::{
    Applied as AppliedView, BatchApplied, ExternalView, Fips, FleetView, HistSet, HistView,
    HostView, IcmpView, Interfaces, Lookup, MetricsData, MetricsSummary, Neighbors, NetworkView,
    Networks, Peers, Ports, ResetView, RouterEntry, Routers, Routes, StatsView, WorkerHist,
};
use crate::api::{ApiError, ErrorCode, Outcome, Reply, Request};
use crate::stats::Latency;

impl ControlThread {
    /// Answers one request (a trace is started by [`ControlThread::start_trace`] instead).
    pub(super) fn execute(&mut self, request: Request, daemon: &mut Daemon) -> Outcome {
        let cp = &self.cp;
        match request {
            Request::Change(_) | Request::Batch(_) if daemon.fleet.is_some() => Err(ApiError::new(
                ErrorCode::FleetManaged,
                "this host's routing state comes from the fleet's etcd: change it there \
                     (dvrctl --etcd URLS ...); reads, stats, traces and runtime settings stay here",
            )),
            Request::Change(change) => self.change(&change),
            Request::Batch(changes) => self.batch(&changes),
            Request::HostShow => Ok(Reply::Host(HostView {
                host: cp.host().cloned(),
            })),
            Request::PeerList => Ok(Reply::Peers(Peers {
                peers: cp.peer_specs().cloned().collect(),
            })),
            Request::NetworkList => {
                let networks = cp.network_specs().map(|(n, r)| network_view(n, r));
                Ok(Reply::Networks(Networks {
                    networks: networks.collect(),
                }))
            }
            Request::RouterList => {
                let routers = cp.router_specs().map(|r| router_entry(cp, r));
                Ok(Reply::Routers(Routers {
                    routers: routers.collect(),
                }))
            }
            Request::InterfaceList { router } => interfaces(cp, router.as_deref()),
            Request::RouteList { router } => routes(cp, router.as_deref()),
            Request::RouteLookup { router, ip } => lookup(cp, router, ip),
            Request::PortList { network } => ports(cp, network.as_deref()),
            Request::NeighList { router } => self.neighbors(router.as_deref()),
            Request::ExternalShow => Ok(Reply::External(ExternalView {
                external: cp.external().cloned(),
                port: cp.external_port_name().map(str::to_string),
            })),
            Request::FipList { router } => {
                if let Some(r) = router.as_deref() {
                    if cp.router_id(r).is_none() {
                        return Err(not_found("router", r));
                    }
                }
                let mut floating_ips = super::fip_views(cp, &daemon.engine_counters());
                floating_ips.retain(|f| router.as_ref().is_none_or(|r| *r == f.router));
                Ok(Reply::Fips(Fips { floating_ips }))
            }
            Request::StatsShow => Ok(Reply::Stats(Box::new(self.stats(daemon)))),
            Request::StatsReset => Ok(self.reset_stats(daemon)),
            Request::FleetShow => match &daemon.fleet {
                Some(f) => {
                    let report = f.report();
                    let recent = report.recent.iter().copied().collect();
                    Ok(Reply::Fleet(Box::new(FleetView { report, recent })))
                }
                None => Err(ApiError::new(
                    ErrorCode::NotFound,
                    "this host is not a fleet member (no [fleet] in its configuration)",
                )),
            },
            Request::HistShow { full, ticks } => Ok(hist(daemon, full.then_some(ticks))),
            Request::HistReset => {
                daemon.hists.reset();
                Ok(reset("histograms"))
            }
            Request::ConfigReload => self.reload(daemon).map(Reply::Reload),
            Request::IcmpSet { rate_per_s, burst } => {
                self.cp.set_icmp_rate(rate_per_s, burst);
                info!(rate_per_s, burst, "ICMP error rate limit changed");
                Ok(Reply::Icmp(IcmpView { rate_per_s, burst }))
            }
            Request::Version | Request::LogShow | Request::LogSet { .. } | Request::Trace(_) => {
                Err(ApiError::new(
                    ErrorCode::Internal,
                    "this request is answered by the API thread",
                ))
            }
        }
    }

    fn change(&mut self, change: &Change) -> Outcome {
        let applied = self.cp.apply(change)?;
        debug!(?change, ?applied, "control API change");
        Ok(Reply::Applied(AppliedView {
            changed: applied == Applied::Changed,
        }))
    }

    fn batch(&mut self, changes: &[Change]) -> Outcome {
        let started = Instant::now();
        let applied = self
            .cp
            .apply_batch(changes)
            .map_err(|(i, e)| ApiError::from(e).at(i))?;
        let changed = applied.iter().filter(|&&a| a == Applied::Changed).count();
        info!(
            changes = changes.len(),
            changed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "control API batch applied"
        );
        Ok(Reply::Batch(BatchApplied {
            changes: changes.len(),
            changed,
            unchanged: changes.len() - changed,
        }))
    }

    /// The neighbours, of one router or of the underlay when asked, each with where it is.
    fn neighbors(&self, router: Option<&str>) -> Outcome {
        let cp = &self.cp;
        if let Some(r) = router {
            if r != "underlay" && cp.router_id(r).is_none() {
                return Err(not_found("router", r));
            }
        }
        let neighbors = cp
            .neighbors(self.clock.now_ns())
            .into_iter()
            .filter(|n| router.is_none_or(|r| r == n.router))
            .map(|mut n| {
                if let Some(at) = describe::location(cp, n.next_hop) {
                    n.location = at;
                }
                n
            })
            .collect();
        Ok(Reply::Neighbors(Neighbors { neighbors }))
    }

    /// The counters since the last reset, with the latency since the last histogram reset.
    pub(super) fn stats(&mut self, daemon: &mut Daemon) -> StatsView {
        let now = daemon.snapshot(&self.cp, Some(&self.pool));
        let (mut snapshot, since) = match &self.baseline {
            Some((base, at)) => (now.since(base), at.elapsed()),
            None => (now, daemon.started.elapsed()),
        };
        snapshot.latency = Latency::of(Some(&daemon.hists.since_reset_merged()));
        StatsView {
            since_reset_s: since.as_secs_f64(),
            snapshot,
            fleet: daemon.fleet.as_ref().map(|f| f.report()),
            config_reloads: self.reload.counts,
        }
    }

    /// Keeps the counters of now as the baseline of `stats.show`, and resets the histograms.
    fn reset_stats(&mut self, daemon: &mut Daemon) -> Reply {
        let snapshot = daemon.snapshot(&self.cp, Some(&self.pool));
        self.baseline = Some((snapshot, Instant::now()));
        daemon.hists.reset();
        info!("counters and histograms reset");
        reset("counters and histograms")
    }

    /// Every counter since start and the latency summaries since start, for the metrics
    /// endpoint.
    pub(super) fn metrics_data(&mut self, daemon: &mut Daemon) -> MetricsData {
        let snapshot = daemon.snapshot(&self.cp, Some(&self.pool));
        let h = daemon.hists.lifetime_merged();
        let clock = h.clock();
        MetricsData {
            snapshot,
            fleet: daemon.fleet.as_ref().map(|f| f.report()),
            config_reloads: self.reload.counts,
            burst: MetricsSummary::of(&h.burst_cycles, clock.as_ref()),
            residence: MetricsSummary::of(&h.residence_cycles, clock.as_ref()),
        }
    }
}

/// A network and the router it is attached to.
fn network_view(n: &NetworkSpec, router: Option<&str>) -> NetworkView {
    NetworkView {
        name: n.name.clone(),
        vni: n.vni,
        ports: n.ports.clone(),
        router: router.map(str::to_string),
    }
}

/// A router and the size of its state.
fn router_entry(cp: &ControlPlane, r: &RouterSpec) -> RouterEntry {
    RouterEntry {
        name: r.name.clone(),
        large: r.large,
        interfaces: cp.interface_specs(Some(&r.name)).count(),
        routes: cp.route_specs(Some(&r.name)).count(),
        prefixes: cp.router_lpm(&r.name).map_or(0, |l| l.len()),
    }
}

fn interfaces(cp: &ControlPlane, router: Option<&str>) -> Outcome {
    check_router(cp, router)?;
    let interfaces = cp.interface_specs(router).cloned().collect();
    Ok(Reply::Interfaces(Interfaces { interfaces }))
}

fn routes(cp: &ControlPlane, router: Option<&str>) -> Outcome {
    check_router(cp, router)?;
    let routes = cp.route_specs(router).cloned().collect();
    Ok(Reply::Routes(Routes { routes }))
}

fn ports(cp: &ControlPlane, network: Option<&str>) -> Outcome {
    if let Some(n) = network {
        if !cp.has_network(n) {
            return Err(not_found("network", n));
        }
    }
    let ports = cp.port_specs(network).cloned().collect();
    Ok(Reply::Ports(Ports { ports }))
}

/// Where `router`'s table sends `ip`, in words.
fn lookup(cp: &ControlPlane, router: String, ip: Ipv4Addr) -> Outcome {
    let next_hop = cp
        .lookup(&router, ip)
        .ok_or_else(|| not_found("router", &router))?;
    let result = match next_hop {
        Some(nh) => describe::next_hop(cp, nh, cp.dataplane().next_hops.get(nh).state),
        None => "no route (ICMP destination unreachable, net unreachable)".to_string(),
    };
    Ok(Reply::Lookup(Lookup {
        router,
        ip,
        next_hop,
        result,
    }))
}

/// The latency histograms since the last reset, merged and per worker, with the full
/// distributions (`full` steps per half distance) when asked.
fn hist(daemon: &mut Daemon, full: Option<u32>) -> Reply {
    let hists = &mut daemon.hists;
    hists.collect();
    Reply::Hist(Box::new(HistView {
        since_reset_s: hists.reset_at().elapsed().as_secs_f64(),
        tsc_hz: hists.tsc_hz(),
        merged: HistSet::of(&hists.since_reset_merged(), full),
        workers: daemon
            .workers
            .iter()
            .zip(hists.since_reset())
            .map(|((h, _), snap)| WorkerHist {
                worker: h.index(),
                hist: HistSet::of(snap, full),
            })
            .collect(),
    }))
}

fn reset(what: &str) -> Reply {
    Reply::Reset(ResetView { reset: what.into() })
}

/// Refuses a filter that names a router that does not exist.
fn check_router(cp: &ControlPlane, router: Option<&str>) -> Result<(), ApiError> {
    match router {
        Some(r) if cp.router_id(r).is_none() => Err(not_found("router", r)),
        _ => Ok(()),
    }
}

pub(super) fn not_found(kind: &str, name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("{kind} `{name}` does not exist"),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use router_core::control::PortSetup;
    use router_core::qsbr::Qsbr;
    use router_core::wire::EthernetAddress;

    use super::*;
    use crate::config::Config;

    /// The control plane of `dvrd.example.toml`, programmed as the daemon does at start.
    fn example() -> ControlPlane {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dvrd.example.toml");
        let mut cfg = Config::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
        cfg.tables.next_hops = 1024;
        cfg.tables.l2_entries = 1024;
        let ports = cfg
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| PortSetup {
                name: p.name.clone(),
                mac: EthernetAddress([0x02, 0, 0, 0, 0, i as u8 + 1]),
                mtu: p.mtu,
                fabric: p.fabric,
                external: p.external,
            })
            .collect();
        let mut cp = ControlPlane::new(cfg.control_config(ports), Arc::new(Qsbr::new(2))).unwrap();
        cp.apply_batch(&cfg.changes().unwrap()).unwrap();
        cp
    }

    fn refusal(outcome: Outcome) -> String {
        let e = outcome.expect_err("refused");
        assert_eq!(e.code, ErrorCode::NotFound);
        e.message
    }

    #[test]
    fn listings_filter_by_router_or_network() {
        let cp = example();
        let Ok(Reply::Interfaces(all)) = interfaces(&cp, None) else {
            panic!()
        };
        assert_eq!(all.interfaces.len(), 2);
        let Ok(Reply::Routes(routes)) = routes(&cp, Some("tenant1")) else {
            panic!()
        };
        assert_eq!(routes.routes.len(), 1);
        let Ok(Reply::Ports(blue)) = ports(&cp, Some("blue")) else {
            panic!()
        };
        assert!(blue.ports.iter().all(|p| p.network == "blue"));
        assert_eq!(blue.ports.len(), 2);
    }

    #[test]
    fn filters_naming_nothing_are_refused_by_name() {
        let cp = example();
        let message = refusal(interfaces(&cp, Some("tenant9")));
        assert_eq!(message, "router `tenant9` does not exist");
        let message = refusal(routes(&cp, Some("tenant9")));
        assert_eq!(message, "router `tenant9` does not exist");
        let message = refusal(ports(&cp, Some("green")));
        assert_eq!(message, "network `green` does not exist");
        let message = refusal(lookup(&cp, "tenant9".into(), Ipv4Addr::LOCALHOST));
        assert_eq!(message, "router `tenant9` does not exist");
    }

    #[test]
    fn views_count_what_each_object_has() {
        let cp = example();
        let (blue, router) = cp.network_specs().find(|(n, _)| n.name == "blue").unwrap();
        let blue = network_view(blue, router);
        assert_eq!(blue.router.as_deref(), Some("tenant1"));
        let tenant1 = cp.router_specs().find(|r| r.name == "tenant1").unwrap();
        let tenant1 = router_entry(&cp, tenant1);
        assert_eq!((tenant1.interfaces, tenant1.routes), (2, 1));
        assert!(tenant1.prefixes >= 3, "{tenant1:?}");
        let Ok(Reply::Lookup(l)) = lookup(&cp, "tenant1".into(), Ipv4Addr::new(10, 0, 2, 7)) else {
            panic!()
        };
        assert!(l.next_hop.is_some(), "{l:?}");
    }
}
