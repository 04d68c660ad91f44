//! The control API answered by the fleet's store instead of one daemon: what `dvrctl --etcd`
//! talks to. The same requests (parsed by the same code), the same replies and the same
//! structured errors; adds and deletes are validated against the whole fleet and written as
//! one etcd transaction; listings read the fleet's records (floating IPs among them:
//! [`FleetClient::floating_ips`]). Requests about one host's data
//! path (stats, neighbours, traces, histograms) are refused with a pointer to that host.

use std::collections::BTreeMap;
use std::time::Duration;

use dvr_fleet::store::{Store, StoreConfig};
use dvr_fleet::writer::{self, FleetView, WriteError};
use dvr_fleet::HostStatus;
use router_core::model::{FloatingIpSpec, Model, ModelError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::ClientError;
use super::view::{
    Applied, BatchApplied, Fips, Interfaces, NetworkView, Networks, Peers, Ports, Reply,
    RouterEntry, Routers, Routes,
};
use super::{parse, ApiError, ErrorCode, Request, API_VERSION};
use crate::stats::FipView;

/// `fip list` from the store: each floating IP with the host its instance runs on (the one
/// that acts on it). The store keeps no packet counters: they are on that host (`dvrctl fip
/// list` without `--etcd`), so they read 0 here, and `active` says that the instance's port
/// is in the store.
fn fip_list(m: &Model, router: Option<&str>) -> Result<Reply, ClientError> {
    let floating_ips = floating_ips_of(m, router)?
        .into_iter()
        .map(|f| {
            let host = m.fip_port(&f).map(|p| p.host.clone());
            FipView {
                active: host.is_some(),
                host: host.unwrap_or_default(),
                ip: f.ip,
                router: f.router,
                port: f.port,
                dnat_packets: 0,
                snat_packets: 0,
            }
        })
        .collect();
    Ok(Reply::Fips(Fips { floating_ips }))
}

/// One host as `fleet status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetHost {
    pub name: String,
    /// `up` (its status is under a live lease) or `gone`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub applied_revision: i64,
    /// Revisions of routing records this host has not applied yet.
    pub lag: i64,
    pub routers: usize,
    pub errors: Vec<dvr_fleet::KeyError>,
    pub errors_total: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
}

/// `fleet status`: every host record with its status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStatusView {
    /// The store's revision when it was read.
    pub revision: i64,
    /// The last revision that changed a routing record.
    pub config_revision: i64,
    pub hosts: Vec<FleetHost>,
    /// Records in the store no host can apply (they did not parse, or the fleet's model
    /// refuses them), by key.
    pub invalid: Vec<dvr_fleet::KeyError>,
}

/// A client of the fleet's store.
pub struct FleetClient {
    rt: tokio::runtime::Runtime,
    store: Store,
}

impl std::fmt::Debug for FleetClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetClient")
            .field("store", &self.store)
            .finish()
    }
}

fn store_error(e: impl std::fmt::Display) -> ClientError {
    ClientError::Io(std::io::Error::other(e.to_string()))
}

fn not_found(kind: &str, name: &str) -> ClientError {
    ClientError::Api(ApiError::new(
        ErrorCode::NotFound,
        format!("{kind} `{name}` does not exist"),
    ))
}

/// The fleet's floating IPs, all or `router`'s (which must exist), as `fip.list` lists them
/// from the store. Only the records the fleet's model accepts: the others are in `fleet
/// status`. Packet counters are not in the store: they are the host's that runs the instance.
pub fn floating_ips_of(
    m: &Model,
    router: Option<&str>,
) -> Result<Vec<FloatingIpSpec>, ClientError> {
    if let Some(r) = router.filter(|r| !m.routers.contains_key(*r)) {
        return Err(not_found("router", r));
    }
    Ok(m.floating_ips
        .values()
        .filter(|f| router.is_none_or(|r| r == f.router))
        .cloned()
        .collect())
}

impl FleetClient {
    /// Connects to the store at `endpoints` (`http://host:port`), key space under `prefix`.
    pub fn connect(
        endpoints: Vec<String>,
        prefix: &str,
        tls: Option<dvr_fleet::store::TlsFiles>,
        timeout: Duration,
    ) -> Result<FleetClient, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClientError::Io)?;
        let mut cfg = StoreConfig::new(endpoints, prefix);
        cfg.request_timeout = timeout;
        cfg.tls = tls;
        cfg.connect_timeout = timeout.min(Duration::from_secs(5));
        let store = rt.block_on(Store::connect(&cfg)).map_err(store_error)?;
        Ok(FleetClient { rt, store })
    }

    /// Answers `op` with `args` as a daemon would, from the store.
    pub fn call(&mut self, op: &str, args: Value) -> Result<Value, ClientError> {
        let mut line = serde_json::json!({ "v": API_VERSION, "op": op });
        if !args.is_null() {
            line["args"] = args;
        }
        let request = parse::parse(line.to_string().as_bytes())
            .request
            .map_err(ClientError::Api)?;
        let reply = self.answer(request)?;
        serde_json::to_value(&reply).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    fn answer(&mut self, request: Request) -> Result<Reply, ClientError> {
        let changes = match request {
            Request::Change(c) => {
                let w = self.write(std::slice::from_ref(&c))?;
                return Ok(Reply::Applied(Applied {
                    changed: w.changed > 0,
                }));
            }
            Request::Batch(changes) => changes,
            other => return self.list(other),
        };
        let w = self.write(&changes)?;
        Ok(Reply::Batch(BatchApplied {
            changes: changes.len(),
            changed: w.changed,
            unchanged: changes.len() - w.changed.min(changes.len()),
        }))
    }

    fn write(
        &mut self,
        changes: &[router_core::model::Change],
    ) -> Result<writer::Written, ClientError> {
        let single = changes.len() == 1;
        let at = |e: ApiError, index: usize| if single { e } else { e.at(index) };
        match self.rt.block_on(writer::write(&mut self.store, changes)) {
            Ok(w) => Ok(w),
            Err(WriteError::Refused { index, error }) => {
                Err(ClientError::Api(at(fleet_error(error), index)))
            }
            Err(WriteError::Local { index, reason }) => Err(ClientError::Api(at(
                ApiError::new(ErrorCode::InvalidArgument, reason),
                index,
            ))),
            Err(WriteError::Contended) => Err(ClientError::Api(ApiError::new(
                ErrorCode::Busy,
                WriteError::Contended.to_string(),
            ))),
            Err(WriteError::Store(e)) => Err(store_error(e)),
        }
    }

    fn read(&mut self) -> Result<FleetView, ClientError> {
        self.rt
            .block_on(writer::read(&mut self.store))
            .map_err(store_error)
    }

    /// The fleet's floating IPs (all, or `router`'s), from its records.
    pub fn floating_ips(
        &mut self,
        router: Option<&str>,
    ) -> Result<Vec<FloatingIpSpec>, ClientError> {
        floating_ips_of(&self.read()?.model, router)
    }

    /// The listings, from the fleet's records.
    fn list(&mut self, request: Request) -> Result<Reply, ClientError> {
        let view = self.read()?;
        let m = &view.model;
        Ok(match request {
            Request::PeerList => Reply::Peers(Peers {
                peers: m.peers.values().cloned().collect(),
            }),
            Request::NetworkList => Reply::Networks(Networks {
                networks: m
                    .networks
                    .values()
                    .map(|n| NetworkView {
                        name: n.name.clone(),
                        vni: n.vni,
                        ports: Vec::new(),
                        router: m.interface_of_network(&n.name).map(|i| i.router.clone()),
                    })
                    .collect(),
            }),
            Request::RouterList => Reply::Routers(Routers {
                routers: m
                    .routers
                    .values()
                    .map(|r| RouterEntry {
                        name: r.name.clone(),
                        large: r.large,
                        interfaces: m.interfaces.keys().filter(|(x, _)| *x == r.name).count(),
                        routes: m.routes.keys().filter(|(x, _)| *x == r.name).count(),
                        prefixes: 0,
                    })
                    .collect(),
            }),
            Request::InterfaceList { router } => {
                if let Some(r) = router.as_deref().filter(|r| !m.routers.contains_key(*r)) {
                    return Err(not_found("router", r));
                }
                Reply::Interfaces(Interfaces {
                    interfaces: m
                        .interfaces
                        .values()
                        .filter(|i| router.as_ref().is_none_or(|r| *r == i.router))
                        .cloned()
                        .collect(),
                })
            }
            Request::RouteList { router } => {
                if let Some(r) = router.as_deref().filter(|r| !m.routers.contains_key(*r)) {
                    return Err(not_found("router", r));
                }
                Reply::Routes(Routes {
                    routes: m
                        .routes
                        .values()
                        .filter(|i| router.as_ref().is_none_or(|r| *r == i.router))
                        .cloned()
                        .collect(),
                })
            }
            Request::FipList { router } => fip_list(m, router.as_deref())?,
            Request::PortList { network } => {
                if let Some(n) = network.as_deref().filter(|n| !m.networks.contains_key(*n)) {
                    return Err(not_found("network", n));
                }
                Reply::Ports(Ports {
                    ports: m
                        .ports
                        .values()
                        .filter(|p| network.as_ref().is_none_or(|n| *n == p.network))
                        .cloned()
                        .collect(),
                })
            }
            other => {
                return Err(ClientError::Api(ApiError::new(
                    ErrorCode::UnknownOp,
                    format!(
                        "`{}` is about one host's data path: ask that host's dvrd (dvrctl without --etcd)",
                        other.op()
                    ),
                )))
            }
        })
    }

    /// Every host record with the status it publishes.
    pub fn status(&mut self) -> Result<FleetStatusView, ClientError> {
        let view = self.read()?;
        let dir = self.store.status_dir();
        let (_, entries) = self
            .rt
            .block_on(self.store.list(&dir))
            .map_err(store_error)?;
        let statuses: BTreeMap<String, Option<HostStatus>> = entries
            .into_iter()
            .map(|e| (e.key, serde_json::from_slice(&e.value).ok()))
            .collect();
        let config_revision = view.mod_revisions.values().copied().max().unwrap_or(0);
        let hosts = view
            .model
            .peers
            .keys()
            .map(|name| match statuses.get(name) {
                Some(Some(s)) => FleetHost {
                    name: name.clone(),
                    state: "up".into(),
                    version: Some(s.version.clone()),
                    applied_revision: s.applied_revision,
                    lag: (config_revision - s.applied_revision).max(0),
                    routers: s.routers,
                    errors: s.errors.clone(),
                    errors_total: s.errors_total,
                    updated: Some(s.updated.clone()),
                },
                _ => FleetHost {
                    name: name.clone(),
                    state: "gone".into(),
                    version: None,
                    applied_revision: 0,
                    lag: 0,
                    routers: 0,
                    errors: Vec::new(),
                    errors_total: 0,
                    updated: None,
                },
            })
            .collect();
        let invalid = view
            .state
            .invalid
            .iter()
            .map(|(k, e)| (k.clone(), e.to_string()))
            .chain(view.refused.iter().cloned())
            .map(|(key, error)| dvr_fleet::KeyError { key, error })
            .collect();
        Ok(FleetStatusView {
            revision: view.state.revision,
            config_revision,
            hosts,
            invalid,
        })
    }
}

/// A model error of the fleet, naming a host as a host (the fleet model holds hosts as
/// peers).
fn fleet_error(e: ModelError) -> ApiError {
    let rename = |kind: &'static str| if kind == "peer" { "host" } else { kind };
    ApiError::from(match e {
        ModelError::NotFound { kind, name } => ModelError::NotFound {
            kind: rename(kind),
            name,
        },
        ModelError::Conflict { kind, name } => ModelError::Conflict {
            kind: rename(kind),
            name,
        },
        ModelError::InUse { kind, name, user } => ModelError::InUse {
            kind: rename(kind),
            name,
            user,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use dvr_fleet::{Event, FleetState};

    use super::*;

    #[test]
    fn floating_ips_are_listed_from_the_fleets_records() {
        let mut state = FleetState::default();
        for (key, value) in [
            (
                "hosts/host-a",
                r#"{"dvr_mac": "fa:16:3f:00:00:0a", "vtep": "192.0.2.10"}"#,
            ),
            ("networks/blue", r#"{"vni": 1001}"#),
            ("routers/t1", "{}"),
            ("routers/t2", "{}"),
            (
                "interfaces/t1/blue",
                r#"{"address": "10.0.1.1/24", "mac": "fa:16:3e:00:01:01"}"#,
            ),
            (
                "ports/blue/10.0.1.5",
                r#"{"mac": "fa:16:3e:aa:01:05", "host": "host-a"}"#,
            ),
            (
                "floating_ips/203.0.113.10",
                r#"{"router": "t1", "port": "10.0.1.5"}"#,
            ),
            // Written around the writer: the fleet's model refuses it, `fleet status` lists it.
            (
                "floating_ips/203.0.113.11",
                r#"{"router": "t9", "port": "10.0.1.5"}"#,
            ),
        ] {
            state.apply(&Event::Put {
                key: key.into(),
                value: value.as_bytes().to_vec(),
            });
        }
        let (m, refused) = dvr_fleet::writer::fleet_model(&state);
        assert_eq!(refused.len(), 1, "{refused:?}");
        let all = floating_ips_of(&m, None).unwrap();
        let ips: Vec<String> = all.iter().map(|f| f.ip.to_string()).collect();
        assert_eq!(ips, ["203.0.113.10"]);
        assert_eq!(floating_ips_of(&m, Some("t1")).unwrap(), all);
        assert!(floating_ips_of(&m, Some("t2")).unwrap().is_empty());
        let e = floating_ips_of(&m, Some("t9")).unwrap_err();
        assert!(e.to_string().contains("router `t9` does not exist"), "{e}");
    }
}
