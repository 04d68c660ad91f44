//! The operator's side: changes validated against the whole fleet, then written as one etcd
//! transaction (one revision).
//!
//! The fleet is validated by the same model as a host: every record goes into one [`Model`]
//! whose own host is a reserved stand-in (every real host is a peer of it), so a port on an
//! unknown network or host, two ports with one IP on a network (one key), a second network
//! with a VNI or a second host with a DVR MAC or VTEP already in use, a floating IP naming an
//! unknown router or port, or one already in use, are refused with the model's own errors.
//! The stand-in host has no external network, and no instance runs on it: where a floating
//! IP may live is each host's own external subnet, checked by the hosts that act on it. The
//! transaction compares the mod revision of every key it writes with
//! what was read, so a concurrent writer makes it retry on the new state instead of
//! overwriting what it did not see.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use router_core::model::{Change, HostSpec, MacAddr, Model, ModelError};

use crate::schema::{Key, Record};
use crate::state::{Event, FleetState};
use crate::store::{Store, StoreError};

/// The name of the stand-in host of the fleet model: no host may take it.
pub const FLEET_HOST: &str = ".fleet";
/// Times a write is retried when another writer changed a key it touches.
const RETRIES: usize = 5;

/// Why a write was not made.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model refused change `index` against the fleet.
    #[error("change {index}: {error}")]
    Refused { index: usize, error: ModelError },
    /// Change `index` cannot be a fleet record (a host-local setting).
    #[error("change {index}: {reason}")]
    Local { index: usize, reason: String },
    #[error("other writers kept changing the same keys; gave up after {RETRIES} tries")]
    Contended,
}

/// The fleet as read at one revision, with the model that validates changes against it.
#[derive(Debug)]
pub struct FleetView {
    pub state: FleetState,
    /// Each key's mod revision (relative keys).
    pub mod_revisions: HashMap<String, i64>,
    /// Every record the model accepts, as peers of the stand-in host.
    pub model: Model,
    /// Records in the store the model refuses (written around the validation), by key.
    pub refused: Vec<(String, String)>,
}

/// Reads every record of the fleet.
pub async fn read(store: &mut Store) -> Result<FleetView, StoreError> {
    let dir = store.config_dir();
    let (revision, entries) = store.list(&dir).await?;
    let mut state = FleetState {
        revision,
        ..FleetState::default()
    };
    let mut mod_revisions = HashMap::new();
    for e in entries {
        mod_revisions.insert(e.key.clone(), e.mod_revision);
        state.apply(&Event::Put {
            key: e.key,
            value: e.value,
        });
    }
    let (model, refused) = fleet_model(&state);
    Ok(FleetView {
        state,
        mod_revisions,
        model,
        refused,
    })
}

/// The stand-in host the fleet model is built around.
fn stand_in() -> HostSpec {
    HostSpec {
        name: FLEET_HOST.into(),
        dvr_mac: MacAddr::from(router_core::wire::EthernetAddress([2, 0, 0, 0, 0, 1])),
        vtep: Ipv4Addr::new(198, 18, 255, 254),
    }
}

/// A model holding every record of `state` the model accepts (hosts as peers), and the
/// records it refuses with why.
pub fn fleet_model(state: &FleetState) -> (Model, Vec<(String, String)>) {
    let mut model = Model::default();
    let _ = model.edit(&Change::SetHost(stand_in()));
    let mut refused = Vec::new();
    // Keys sort by kind in the order objects depend on each other.
    for (key, rec) in &state.records {
        if let Err(e) = model.edit(&rec.upsert()) {
            refused.push((key.path(), e.to_string()));
        }
    }
    (model, refused)
}

/// What one change does to the store: the key and the record to put (`None`: delete).
pub fn record_of(change: &Change) -> Result<(Key, Option<Record>), String> {
    let local = |what: &str, section: &str| {
        Err(format!(
            "{what} is each host's own setting (its config file's {section}), not a fleet record"
        ))
    };
    let rec = match change.clone() {
        Change::SetHost(h) => Record::Host(h),
        Change::AddPeer { spec, .. } => Record::Host(HostSpec {
            name: spec.name,
            dvr_mac: spec.dvr_mac,
            vtep: spec.vtep,
        }),
        Change::AddNetwork { spec, .. } if !spec.ports.is_empty() => {
            return local("the local port a network attaches to", "[fleet.attach]")
        }
        Change::AddNetwork { spec, .. } => Record::Network(spec),
        Change::AddRouter { spec, .. } => Record::Router(spec),
        Change::AddInterface { spec, .. } => Record::Interface(spec),
        Change::AddRoute { spec, .. } => Record::Route(spec),
        Change::AddPort { spec, .. } if spec.port.is_some() => {
            return local("the local port an instance is behind", "[fleet.attach]")
        }
        Change::AddPort { spec, .. } => Record::Port(spec),
        Change::DelPeer { name } => return Ok((Key::Host(name), None)),
        Change::DelNetwork { name } => return Ok((Key::Network(name), None)),
        Change::DelRouter { name } => return Ok((Key::Router(name), None)),
        Change::DelInterface { router, network } => {
            return Ok((Key::Interface((router, network)), None))
        }
        Change::DelRoute { router, prefix } => return Ok((Key::Route((router, prefix)), None)),
        Change::DelPort { network, ip } => return Ok((Key::Port((network, ip)), None)),
        Change::AddFloatingIp { spec, .. } => Record::FloatingIp(spec),
        Change::DelFloatingIp { ip } => return Ok((Key::FloatingIp(ip), None)),
        Change::SetExternal(_) | Change::DelExternal => {
            return local("a host's address on the external network", "[external]")
        }
    };
    if matches!(&rec, Record::Host(h) if h.name == FLEET_HOST) {
        return Err(format!("`{FLEET_HOST}` is reserved"));
    }
    Ok((rec.key(), Some(rec)))
}

/// The change the fleet model validates for `change` (a host is a peer there).
fn as_fleet_change(change: &Change) -> Change {
    match change {
        Change::SetHost(h) => Change::AddPeer {
            spec: router_core::model::PeerSpec {
                name: h.name.clone(),
                dvr_mac: h.dvr_mac,
                vtep: h.vtep,
            },
            replace: true,
        },
        other => other.clone(),
    }
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The revision of the transaction (`None`: nothing to write, every change was a no-op).
    pub revision: Option<i64>,
    /// Changes that changed something.
    pub changed: usize,
}

/// Validates `changes` in order against the fleet `model` (which they change) and returns what
/// they do to the store: each key once, with its last record (`None`: delete). A change that
/// asks for what is there already writes nothing.
pub fn operations(
    model: &mut Model,
    changes: &[Change],
) -> Result<Vec<(Key, Option<Record>)>, WriteError> {
    let mut ops: Vec<(Key, Option<Record>)> = Vec::new();
    for (index, change) in changes.iter().enumerate() {
        let op = record_of(change).map_err(|reason| WriteError::Local { index, reason })?;
        let edit = model
            .edit(&as_fleet_change(change))
            .map_err(|error| WriteError::Refused { index, error })?;
        if edit.is_some() {
            ops.retain(|(k, _)| *k != op.0);
            ops.push(op);
        }
    }
    Ok(ops)
}

/// Validates `changes` in order against the fleet and writes them in one transaction.
pub async fn write(store: &mut Store, changes: &[Change]) -> Result<Written, WriteError> {
    for _ in 0..RETRIES {
        let mut view = read(store).await?;
        let ops = operations(&mut view.model, changes)?;
        if ops.is_empty() {
            return Ok(Written {
                revision: None,
                changed: 0,
            });
        }
        let dir = store.config_dir();
        let expect: Vec<(String, i64)> = ops
            .iter()
            .map(|(k, _)| {
                let rel = k.path();
                let rev = view.mod_revisions.get(&rel).copied().unwrap_or(0);
                (format!("{dir}{rel}"), rev)
            })
            .collect();
        let puts: Vec<(String, String)> = ops
            .iter()
            .filter_map(|(k, r)| {
                r.as_ref()
                    .map(|r| (format!("{dir}{}", k.path()), r.value()))
            })
            .collect();
        let deletes: Vec<String> = ops
            .iter()
            .filter(|(_, r)| r.is_none())
            .map(|(k, _)| format!("{dir}{}", k.path()))
            .collect();
        if let Some(revision) = store.write(&expect, &puts, &deletes).await? {
            return Ok(Written {
                revision: Some(revision),
                changed: ops.len(),
            });
        }
    }
    Err(WriteError::Contended)
}

#[cfg(test)]
mod tests {
    use router_core::model::FloatingIpSpec;

    use super::*;

    /// Hosts a and b, router t1 on blue, the instance 10.0.1.5 on host-a.
    fn fleet() -> Model {
        let mut state = FleetState::default();
        for (key, value) in [
            (
                "hosts/host-a",
                r#"{"dvr_mac": "fa:16:3f:00:00:0a", "vtep": "192.0.2.10"}"#,
            ),
            (
                "hosts/host-b",
                r#"{"dvr_mac": "fa:16:3f:00:00:0b", "vtep": "192.0.2.20"}"#,
            ),
            ("networks/blue", r#"{"vni": 1001}"#),
            ("routers/t1", "{}"),
            (
                "interfaces/t1/blue",
                r#"{"address": "10.0.1.1/24", "mac": "fa:16:3e:00:01:01"}"#,
            ),
            (
                "ports/blue/10.0.1.5",
                r#"{"mac": "fa:16:3e:aa:01:05", "host": "host-a"}"#,
            ),
            (
                "ports/blue/10.0.1.6",
                r#"{"mac": "fa:16:3e:aa:01:06", "host": "host-b"}"#,
            ),
        ] {
            state.apply(&Event::Put {
                key: key.into(),
                value: value.as_bytes().to_vec(),
            });
        }
        let (model, refused) = fleet_model(&state);
        assert!(refused.is_empty(), "{refused:?}");
        model
    }

    fn add_fip(ip: &str, router: &str, port: &str, replace: bool) -> Change {
        Change::AddFloatingIp {
            spec: FloatingIpSpec {
                ip: ip.parse().unwrap(),
                router: router.into(),
                port: port.parse().unwrap(),
            },
            replace,
        }
    }

    fn refused(changes: &[Change]) -> (usize, ModelError) {
        match operations(&mut fleet(), changes) {
            Err(WriteError::Refused { index, error }) => (index, error),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_floating_ip_is_written_under_its_address() {
        let mut m = fleet();
        let ops = operations(&mut m, &[add_fip("203.0.113.10", "t1", "10.0.1.5", false)]).unwrap();
        let [(key, Some(rec))] = &ops[..] else {
            panic!("{ops:?}")
        };
        assert_eq!(key.path(), "floating_ips/203.0.113.10");
        assert_eq!(rec.value(), r#"{"router":"t1","port":"10.0.1.5"}"#);
        // Asking again for what is there writes nothing; a deletion deletes the key.
        let again = add_fip("203.0.113.10", "t1", "10.0.1.5", false);
        assert!(operations(&mut m, &[again]).unwrap().is_empty());
        let del = Change::DelFloatingIp {
            ip: "203.0.113.10".parse().unwrap(),
        };
        let ops = operations(&mut m, &[del]).unwrap();
        assert!(matches!(&ops[..], [(Key::FloatingIp(_), None)]));
    }

    #[test]
    fn a_floating_ip_naming_an_unknown_router_or_port_is_refused() {
        let (i, e) = refused(&[add_fip("203.0.113.10", "t9", "10.0.1.5", false)]);
        assert_eq!(i, 0);
        assert_eq!(e.to_string(), "router `t9` does not exist");
        let (_, e) = refused(&[add_fip("203.0.113.10", "t1", "10.0.1.99", false)]);
        assert!(
            matches!(
                e,
                ModelError::NotFound {
                    kind: "instance port",
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("10.0.1.99 on a network of router t1"),
            "{e}"
        );
    }

    #[test]
    fn a_floating_ip_already_in_use_is_a_conflict() {
        let first = add_fip("203.0.113.10", "t1", "10.0.1.5", false);
        // The same address for another instance, without replace.
        let (i, e) = refused(&[
            first.clone(),
            add_fip("203.0.113.10", "t1", "10.0.1.6", false),
        ]);
        assert_eq!(i, 1);
        assert!(
            matches!(
                e,
                ModelError::Conflict {
                    kind: "floating IP",
                    ..
                }
            ),
            "{e}"
        );
        // A second floating IP for the same instance.
        let (_, e) = refused(&[
            first.clone(),
            add_fip("203.0.113.11", "t1", "10.0.1.5", false),
        ]);
        assert!(matches!(e, ModelError::Conflict { .. }), "{e}");
        // With replace, the floating IP moves to the other instance in one write.
        let mut m = fleet();
        let moved = add_fip("203.0.113.10", "t1", "10.0.1.6", true);
        assert_eq!(operations(&mut m, &[first, moved]).unwrap().len(), 1);
    }

    #[test]
    fn the_port_of_a_floating_ip_cannot_be_deleted_before_it() {
        let del_port = Change::DelPort {
            network: "blue".into(),
            ip: "10.0.1.5".parse().unwrap(),
        };
        let fip = add_fip("203.0.113.10", "t1", "10.0.1.5", false);
        let (i, e) = refused(&[fip.clone(), del_port.clone()]);
        assert_eq!(i, 1);
        assert!(matches!(e, ModelError::InUse { .. }), "{e}");
        let del_fip = Change::DelFloatingIp {
            ip: "203.0.113.10".parse().unwrap(),
        };
        let ops = operations(&mut fleet(), &[fip, del_fip, del_port]).unwrap();
        let keys: Vec<String> = ops.iter().map(|(k, _)| k.path()).collect();
        assert_eq!(keys, ["floating_ips/203.0.113.10", "ports/blue/10.0.1.5"]);
    }

    #[test]
    fn the_external_network_stays_each_hosts_own_setting() {
        let set = Change::SetExternal(router_core::model::ExternalSpec {
            address: "203.0.113.2/24".parse().unwrap(),
            gateway: "203.0.113.1".parse().unwrap(),
        });
        for change in [set, Change::DelExternal] {
            let e = record_of(&change).unwrap_err();
            assert!(e.contains("[external]"), "{e}");
        }
    }
}
