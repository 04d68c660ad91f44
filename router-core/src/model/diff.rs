//! The changes that take one model to another: what a configuration reload applies.
//!
//! Every entry of the model has a key ([`Key`]); an entry that differs between the running
//! model and the target is added, deleted or replaced in place, and an entry that is the same
//! is not touched, so that its forwarding state is never rewritten. The changes come in the
//! order the model accepts: deletions from floating IPs down to peers (the reverse of the
//! order of a configuration file), then additions and replacements from the host up to
//! floating IPs. Each is validated on a copy of the running model as it is planned; what the
//! kind order cannot settle (a floating IP that needs a port added later in the same list,
//! say) is settled by trying the refused changes again while a pass lets one more through.
//!
//! Some transitions cannot be made in place at all: two networks that swap their VNIs, an
//! interface whose subnet changes under a route. A change that stays refused is then planned
//! as a delete and an add instead, and so is everything that depends on its entry (the routes
//! and ports of a network, the floating IPs of a port...), transitively, until the plan goes
//! through. Should nothing settle it, the plan deletes every entry and adds the target's
//! anew; that always applies when the target is valid on its own.
//!
//! This host's identity cannot be removed (there is no change that unsets it): a target
//! without a host keeps the running one.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use super::{Change, InterfaceKey, Model, PortKey, RouteKey};

/// An entry of the model, by kind in the order a configuration file adds them (the derived
/// order sorts by variant first).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Host,
    Peer(String),
    Network(String),
    Router(String),
    Interface(InterfaceKey),
    Port(PortKey),
    Route(RouteKey),
    External,
    FloatingIp(Ipv4Addr),
}

/// The changes that take a model to a target, with what they do to its entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// To be applied in this order, as one batch.
    pub changes: Vec<Change>,
    /// Entries the target has and the model does not.
    pub added: usize,
    /// Entries the model has and the target does not.
    pub removed: usize,
    /// Entries both have, with different values.
    pub replaced: usize,
}

impl Diff {
    /// True when the model already is the target.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

impl Model {
    /// The changes that make this model's routing state (host, peers, networks, routers,
    /// interfaces, routes, instance ports, external network, floating IPs) equal to
    /// `target`'s, in an order this model accepts them. Entries that are the same in both are
    /// left alone.
    pub fn diff(&self, target: &Model) -> Diff {
        let mut touched: BTreeSet<Key> = keys(self)
            .chain(keys(target))
            .filter(|k| upsert(self, k, true) != upsert(target, k, true))
            .collect();
        if target.host.is_none() {
            touched.remove(&Key::Host);
        }
        let mut diff = Diff {
            added: touched.iter().filter(|k| !has(self, k)).count(),
            removed: touched.iter().filter(|k| !has(target, k)).count(),
            ..Diff::default()
        };
        diff.replaced = touched.len() - diff.added - diff.removed;
        let mut recreate = BTreeSet::new();
        diff.changes = loop {
            let stuck = match plan(self, target, &touched, &recreate) {
                Ok(changes) => break changes,
                Err(stuck) => stuck,
            };
            let known = recreate.len();
            for key in stuck {
                recreate_with_dependents(self, target, key, &mut recreate);
            }
            if recreate.len() == known {
                let all = keys(self).chain(keys(target)).collect();
                break rebuild(self, target, &all);
            }
        };
        diff
    }
}

/// Every key `m` holds.
fn keys(m: &Model) -> impl Iterator<Item = Key> + '_ {
    let host = m.host.as_ref().map(|_| Key::Host);
    let external = m.external.as_ref().map(|_| Key::External);
    host.into_iter()
        .chain(m.peers.keys().cloned().map(Key::Peer))
        .chain(m.networks.keys().cloned().map(Key::Network))
        .chain(m.routers.keys().cloned().map(Key::Router))
        .chain(m.interfaces.keys().cloned().map(Key::Interface))
        .chain(m.ports.keys().cloned().map(Key::Port))
        .chain(m.routes.keys().cloned().map(Key::Route))
        .chain(external)
        .chain(m.floating_ips.keys().copied().map(Key::FloatingIp))
}

fn has(m: &Model, key: &Key) -> bool {
    upsert(m, key, false).is_some()
}

/// The change that puts `m`'s entry under `key` in place (`None`: `m` has none). Two models
/// have the same entry under `key` exactly when these changes are equal.
fn upsert(m: &Model, key: &Key, replace: bool) -> Option<Change> {
    Some(match key {
        Key::Host => Change::SetHost(m.host.clone()?),
        Key::Peer(k) => Change::AddPeer {
            spec: m.peers.get(k)?.clone(),
            replace,
        },
        Key::Network(k) => Change::AddNetwork {
            spec: m.networks.get(k)?.clone(),
            replace,
        },
        Key::Router(k) => Change::AddRouter {
            spec: m.routers.get(k)?.clone(),
            replace,
        },
        Key::Interface(k) => Change::AddInterface {
            spec: m.interfaces.get(k)?.clone(),
            replace,
        },
        Key::Port(k) => Change::AddPort {
            spec: m.ports.get(k)?.clone(),
            replace,
        },
        Key::Route(k) => Change::AddRoute {
            spec: m.routes.get(k)?.clone(),
            replace,
        },
        Key::External => Change::SetExternal(m.external.clone()?),
        Key::FloatingIp(k) => Change::AddFloatingIp {
            spec: m.floating_ips.get(k)?.clone(),
            replace,
        },
    })
}

/// The change that deletes the entry under `key` (`None` for the host, which stays).
fn delete(key: &Key) -> Option<Change> {
    Some(match key {
        Key::Host => return None,
        Key::Peer(name) => Change::DelPeer { name: name.clone() },
        Key::Network(name) => Change::DelNetwork { name: name.clone() },
        Key::Router(name) => Change::DelRouter { name: name.clone() },
        Key::Interface((router, network)) => Change::DelInterface {
            router: router.clone(),
            network: network.clone(),
        },
        Key::Port((network, ip)) => Change::DelPort {
            network: network.clone(),
            ip: *ip,
        },
        Key::Route((router, prefix)) => Change::DelRoute {
            router: router.clone(),
            prefix: *prefix,
        },
        Key::External => Change::DelExternal,
        Key::FloatingIp(ip) => Change::DelFloatingIp { ip: *ip },
    })
}

/// The entries of `m` that refer to the one under `key`, or whose validity depends on it.
fn dependents(m: &Model, key: &Key) -> Vec<Key> {
    let ports = |f: &dyn Fn(&PortKey, &str) -> bool| -> Vec<Key> {
        let matching = m.ports.iter().filter(|(k, p)| f(k, &p.host));
        matching.map(|(k, _)| Key::Port(k.clone())).collect()
    };
    let fips_of = |router: &str| -> Vec<Key> {
        let of_router = m.floating_ips.values().filter(|f| f.router == router);
        of_router.map(|f| Key::FloatingIp(f.ip)).collect()
    };
    let mut out = match key {
        Key::Host => {
            let peers = m.peers.keys().cloned().map(Key::Peer);
            peers.chain(ports(&|_, _| true)).collect()
        }
        Key::Peer(name) => ports(&|_, host| host == name),
        Key::Network(n) => {
            let ifaces = m.interfaces.keys().filter(|(_, net)| net == n);
            let mut out: Vec<Key> = ifaces.cloned().map(Key::Interface).collect();
            out.extend(ports(&|(net, _), _| net == n));
            out
        }
        Key::Router(r) => {
            let ifaces = m.interfaces.keys().filter(|(router, _)| router == r);
            let mut out: Vec<Key> = ifaces.cloned().map(Key::Interface).collect();
            let routes = m.routes.keys().filter(|(router, _)| router == r);
            out.extend(routes.cloned().map(Key::Route));
            out
        }
        Key::Interface((r, n)) => {
            let routes = m.routes.keys().filter(|(router, _)| router == r);
            let mut out: Vec<Key> = routes.cloned().map(Key::Route).collect();
            out.extend(ports(&|(net, _), _| net == n));
            out
        }
        Key::Port((_, ip)) => {
            let fips = m.floating_ips.values().filter(|f| f.port == *ip);
            fips.map(|f| Key::FloatingIp(f.ip)).collect()
        }
        Key::External => m
            .floating_ips
            .keys()
            .copied()
            .map(Key::FloatingIp)
            .collect(),
        Key::Route(_) | Key::FloatingIp(_) => Vec::new(),
    };
    if let Key::Router(r) | Key::Interface((r, _)) = key {
        out.extend(fips_of(r));
    }
    out
}

/// Marks `key` to be deleted and added again, with everything that depends on it in either
/// model.
fn recreate_with_dependents(m: &Model, target: &Model, key: Key, recreate: &mut BTreeSet<Key>) {
    let mut todo = vec![key];
    while let Some(k) = todo.pop() {
        let more = dependents(m, &k).into_iter().chain(dependents(target, &k));
        todo.extend(more.filter(|d| !recreate.contains(d)));
        recreate.insert(k);
    }
}

/// The changes for the `touched` keys (and the `recreate` ones, deleted and added again),
/// validated in order on a copy of `m`; the keys whose change stays refused if any does.
fn plan(
    m: &Model,
    target: &Model,
    touched: &BTreeSet<Key>,
    recreate: &BTreeSet<Key>,
) -> Result<Vec<Change>, Vec<Key>> {
    let keys: BTreeSet<&Key> = touched.iter().chain(recreate).collect();
    let deletions = keys.iter().rev().filter_map(|k| {
        let gone = !has(target, k) || recreate.contains(*k);
        let change = if has(m, k) && gone { delete(k) } else { None };
        change.map(|c| ((*k).clone(), c))
    });
    let additions = keys.iter().filter_map(|k| {
        let in_place = has(m, k) && !recreate.contains(*k);
        upsert(target, k, in_place).map(|c| ((*k).clone(), c))
    });
    let mut pending: Vec<(Key, Change)> = deletions.chain(additions).collect();
    let mut copy = m.clone();
    let mut changes = Vec::with_capacity(pending.len());
    loop {
        let tried = pending.len();
        pending.retain(|(_, change)| match copy.edit(change) {
            Ok(_) => {
                changes.push(change.clone());
                false
            }
            Err(_) => true,
        });
        if pending.is_empty() {
            return Ok(changes);
        }
        if pending.len() == tried {
            return Err(pending.into_iter().map(|(k, _)| k).collect());
        }
    }
}

/// Every entry of `m` deleted, then every entry of `target` added: the plan of last resort.
fn rebuild(m: &Model, target: &Model, all: &BTreeSet<Key>) -> Vec<Change> {
    let deletions = all.iter().rev().filter(|k| has(m, k)).filter_map(delete);
    let additions = all.iter().filter_map(|k| upsert(target, k, false));
    deletions.chain(additions).collect()
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
