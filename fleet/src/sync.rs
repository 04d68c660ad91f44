//! What one host programs of the fleet, and the changes that take it there, revision by
//! revision.
//!
//! The scheduling rule is Neutron's for DVR: a host programs a router only if one of the
//! router's networks has a port on this host (a SNAT port counts: it is a port), and then the
//! router's interfaces and routes, its networks and every port of those networks, wherever
//! they run. A network with a port here is programmed even without a router (bridged
//! traffic). Every host is a peer. A floating IP goes with its router: every host that has
//! the router holds it, and the model lets only the host its instance runs on act on it, so a
//! port moving between hosts (its record replaced) takes the floating IP's work along.
//!
//! [`HostSync`] keeps the fleet's records ([`FleetState`]), a few indices (ports on this host
//! per network, the routers of each network and the networks of each router) and a copy of
//! the model the control plane holds. An event marks the keys it touched; a port landing on
//! (or leaving) this host may flip which routers and networks are needed, and a flip marks
//! every key of that router or network. Only marked keys are compared with the model, so a
//! revision costs work in proportion to what it changes for this host, not to the fleet's
//! size. The changes come out in the order the model accepts (deletions from floating IPs and
//! ports up to peers, then additions from the host down to ports and floating IPs), each
//! already validated against the copy: a record the model refuses is left out of the batch and
//! reported by key, and the rest applies. What the kind order cannot settle (a floating IP
//! moved to another port while its old port is deleted in the same revision) is settled by
//! trying the refused changes again, as long as each pass lets one more through. Refused keys
//! are tried again when a later revision touches what they depend on.
//!
//! The external network is each host's own setting: the copy starts with it (the daemon
//! applies its file's `[external]` before it starts following the fleet), and no record ever
//! touches it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

use router_core::model::{Change, Edit, HostSpec, Model};

use crate::schema::{Key, Record};
use crate::state::{Delta, Event, FleetState};

/// Keys touched by a revision, and the routers and networks whose need may have flipped.
#[derive(Debug, Default)]
struct Dirty {
    keys: BTreeSet<Key>,
    routers: BTreeSet<String>,
    networks: BTreeSet<String>,
    /// Networks any port key of the revision is on (their refused ports are tried again).
    port_networks: BTreeSet<String>,
    /// A revision that touched anything but ports: every refused key is tried again.
    structural: bool,
}

/// The changes of one revision for one host, validated against the model copy.
#[derive(Debug, Default)]
pub struct Plan {
    pub revision: i64,
    /// The batch for the control plane (possibly empty).
    pub changes: Vec<Change>,
    /// The key each change comes from.
    pub keys: Vec<Key>,
    /// What each change did to the copy (to undo it should the control plane refuse).
    edits: Vec<Option<Edit>>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// One host's view of the fleet and of what it programs.
#[derive(Debug)]
pub struct HostSync {
    host: String,
    /// Network -> the local ports it attaches to, when not the port named like the network.
    attach: BTreeMap<String, Vec<String>>,
    state: FleetState,
    /// What the control plane holds.
    model: Model,
    /// Ports on this host, per network.
    local: HashMap<String, usize>,
    routers_of_network: HashMap<String, BTreeSet<String>>,
    networks_of_router: HashMap<String, BTreeSet<String>>,
    /// The floating IPs of each router, in the store.
    fips_of_router: HashMap<String, BTreeSet<Ipv4Addr>>,
    needed_routers: HashSet<String>,
    needed_networks: HashSet<String>,
    rejected: BTreeMap<Key, String>,
}

impl HostSync {
    /// A host named `host` whose control plane starts from `model` (empty, with the local
    /// ports set: [`Model::for_ports`]; with `external_port` and its external network when the
    /// host has one). A network attaches to the local port named like it unless `attach` names
    /// its ports.
    pub fn new(host: &str, model: Model, attach: BTreeMap<String, Vec<String>>) -> Self {
        HostSync {
            host: host.to_string(),
            attach,
            state: FleetState::default(),
            model,
            local: HashMap::new(),
            routers_of_network: HashMap::new(),
            networks_of_router: HashMap::new(),
            fips_of_router: HashMap::new(),
            needed_routers: HashSet::new(),
            needed_networks: HashSet::new(),
            rejected: BTreeMap::new(),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn state(&self) -> &FleetState {
        &self.state
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Records the model refused, by key, with the reason.
    pub fn rejected(&self) -> &BTreeMap<Key, String> {
        &self.rejected
    }

    /// Routers this host programs.
    pub fn routers(&self) -> usize {
        self.needed_routers.len()
    }

    /// The changes of the events of one revision.
    pub fn revision(&mut self, revision: i64, events: &[Event]) -> Plan {
        let mut dirty = Dirty::default();
        for event in events {
            if let Some(delta) = self.state.apply(event) {
                self.index(&delta, &mut dirty);
            }
            if let Ok(Key::Port((network, _))) = Key::parse(event.key()) {
                dirty.port_networks.insert(network);
            } else {
                dirty.structural = true;
            }
        }
        self.state.revision = self.state.revision.max(revision);
        self.plan(revision, dirty)
    }

    /// The changes that take this host to `next` (a re-list, or a snapshot at start): only the
    /// records that differ from what it follows are touched.
    pub fn reset(&mut self, next: FleetState) -> Plan {
        let deltas = self.state.diff(&next);
        let revision = next.revision;
        let mut dirty = Dirty {
            structural: true,
            ..Dirty::default()
        };
        self.state = next;
        for delta in &deltas {
            self.index(delta, &mut dirty);
        }
        self.plan(revision, dirty)
    }

    /// Undoes a plan the control plane refused at `index` (the copy is put back), reports
    /// that change's key, and returns the plan of the same revision without it.
    pub fn refused(&mut self, plan: Plan, index: usize, error: String) -> Plan {
        self.model.undo_all(&plan.edits);
        let mut dirty = Dirty::default();
        for (i, key) in plan.keys.into_iter().enumerate() {
            if i == index {
                self.rejected.insert(key, error.clone());
            } else {
                dirty.keys.insert(key);
            }
        }
        self.plan_keys(plan.revision, dirty.keys)
    }

    /// Updates the indices for one delta and marks what it touched.
    fn index(&mut self, delta: &Delta, dirty: &mut Dirty) {
        dirty.keys.insert(delta.key.clone());
        match &delta.key {
            Key::Interface((router, network)) => {
                let (r, n) = (router.clone(), network.clone());
                if delta.after.is_some() {
                    self.routers_of_network
                        .entry(n.clone())
                        .or_default()
                        .insert(r.clone());
                    self.networks_of_router
                        .entry(r.clone())
                        .or_default()
                        .insert(n.clone());
                } else {
                    if let Some(s) = self.routers_of_network.get_mut(&n) {
                        s.remove(&r);
                    }
                    if let Some(s) = self.networks_of_router.get_mut(&r) {
                        s.remove(&n);
                    }
                }
                dirty.routers.insert(r);
                dirty.networks.insert(n);
            }
            Key::Port((network, _)) => {
                let here =
                    |r: &Option<Record>| matches!(r, Some(Record::Port(p)) if p.host == self.host);
                let (was, is) = (here(&delta.before), here(&delta.after));
                if was != is {
                    let count = self.local.entry(network.clone()).or_default();
                    let before = *count;
                    if is {
                        *count += 1;
                    } else {
                        *count = count.saturating_sub(1);
                    }
                    if (before == 0) != (*count == 0) {
                        dirty.networks.insert(network.clone());
                        if let Some(rs) = self.routers_of_network.get(network) {
                            dirty.routers.extend(rs.iter().cloned());
                        }
                    }
                }
            }
            Key::FloatingIp(ip) => self.index_fip(*ip, delta),
            Key::Host(_) | Key::Network(_) | Key::Router(_) | Key::Route(_) => {}
        }
    }

    /// Moves a floating IP between the routers' sets. It never changes which routers are
    /// needed: it follows its router.
    fn index_fip(&mut self, ip: Ipv4Addr, delta: &Delta) {
        let router = |r: &Option<Record>| match r {
            Some(Record::FloatingIp(f)) => Some(f.router.clone()),
            _ => None,
        };
        if let Some(r) = router(&delta.before) {
            if let Some(s) = self.fips_of_router.get_mut(&r) {
                s.remove(&ip);
            }
        }
        if let Some(r) = router(&delta.after) {
            self.fips_of_router.entry(r).or_default().insert(ip);
        }
    }

    /// True when refused floating IP `key` may now apply: its router is attached to a network
    /// whose ports the revision touched.
    fn fip_waits_on(&self, key: &Key, port_networks: &BTreeSet<String>) -> bool {
        let Some(Record::FloatingIp(f)) = self.state.records.get(key) else {
            return false;
        };
        self.networks_of_router
            .get(&f.router)
            .is_some_and(|ns| ns.iter().any(|n| port_networks.contains(n)))
    }

    fn has_local(&self, network: &str) -> bool {
        self.local.get(network).is_some_and(|&n| n > 0)
    }

    /// Settles which routers and networks are needed, then plans the marked keys.
    fn plan(&mut self, revision: i64, mut dirty: Dirty) -> Plan {
        for router in std::mem::take(&mut dirty.routers) {
            let need = self
                .networks_of_router
                .get(&router)
                .is_some_and(|ns| ns.iter().any(|n| self.has_local(n)));
            if need == self.needed_routers.contains(&router) {
                continue;
            }
            if need {
                self.needed_routers.insert(router.clone());
            } else {
                self.needed_routers.remove(&router);
            }
            self.mark_router(&router, &mut dirty);
        }
        for network in std::mem::take(&mut dirty.networks) {
            let need = self.has_local(&network)
                || self
                    .routers_of_network
                    .get(&network)
                    .is_some_and(|rs| rs.iter().any(|r| self.needed_routers.contains(r)));
            if need == self.needed_networks.contains(&network) {
                continue;
            }
            if need {
                self.needed_networks.insert(network.clone());
            } else {
                self.needed_networks.remove(&network);
            }
            self.mark_network(&network, &mut dirty);
        }
        let retry: Vec<Key> = self
            .rejected
            .keys()
            .filter(|k| match k {
                _ if dirty.structural => true,
                Key::Port((n, _)) => dirty.port_networks.contains(n),
                Key::FloatingIp(_) => self.fip_waits_on(k, &dirty.port_networks),
                _ => false,
            })
            .cloned()
            .collect();
        dirty.keys.extend(retry);
        self.plan_keys(revision, dirty.keys)
    }

    /// Marks everything of a router whose need flipped: itself, its interfaces, routes and
    /// floating IPs (in the store and in the model), and its networks for a second look.
    fn mark_router(&self, router: &str, dirty: &mut Dirty) {
        dirty.keys.insert(Key::Router(router.to_string()));
        for n in self.networks_of_router.get(router).into_iter().flatten() {
            dirty
                .keys
                .insert(Key::Interface((router.to_string(), n.clone())));
            dirty.networks.insert(n.clone());
        }
        dirty.keys.extend(self.state.routes_of(router).cloned());
        let held = self
            .model
            .interfaces
            .keys()
            .filter(|(r, _)| r == router)
            .map(|k| Key::Interface(k.clone()));
        dirty.keys.extend(held);
        let routes = self
            .model
            .routes
            .keys()
            .filter(|(r, _)| r == router)
            .map(|k| Key::Route(k.clone()));
        dirty.keys.extend(routes);
        let fips = self.fips_of_router.get(router).into_iter().flatten();
        dirty.keys.extend(fips.map(|ip| Key::FloatingIp(*ip)));
        let held = self
            .model
            .floating_ips
            .values()
            .filter(|f| f.router == router)
            .map(|f| Key::FloatingIp(f.ip));
        dirty.keys.extend(held);
    }

    /// Marks a network whose need flipped, and every port of it.
    fn mark_network(&self, network: &str, dirty: &mut Dirty) {
        dirty.keys.insert(Key::Network(network.to_string()));
        dirty.keys.extend(self.state.ports_of(network).cloned());
        let held = self
            .model
            .ports
            .range((network.to_string(), std::net::Ipv4Addr::UNSPECIFIED)..)
            .take_while(|((n, _), _)| n == network)
            .map(|(k, _)| Key::Port(k.clone()));
        dirty.keys.extend(held);
    }

    /// The record this host should hold under `key`.
    fn desired(&self, key: &Key) -> Option<Record> {
        let rec = self.state.records.get(key)?;
        let needed = match key {
            Key::Host(_) => true,
            Key::Network(n) => self.needed_networks.contains(n),
            Key::Router(r) | Key::Interface((r, _)) | Key::Route((r, _)) => {
                self.needed_routers.contains(r)
            }
            Key::Port((n, _)) => self.needed_networks.contains(n),
            Key::FloatingIp(_) => {
                matches!(rec, Record::FloatingIp(f) if self.needed_routers.contains(&f.router))
            }
        };
        if !needed {
            return None;
        }
        Some(match rec {
            Record::Network(n) => {
                let mut n = n.clone();
                n.ports = self.local_ports_of(&n.name);
                Record::Network(n)
            }
            other => other.clone(),
        })
    }

    fn local_ports_of(&self, network: &str) -> Vec<String> {
        match self.attach.get(network) {
            Some(ports) => ports.clone(),
            None if self.model.local_ports.iter().any(|p| p == network) => {
                vec![network.to_string()]
            }
            None => Vec::new(),
        }
    }

    /// The record the model holds under `key`.
    fn current(&self, key: &Key) -> Option<Record> {
        let m = &self.model;
        match key {
            Key::Host(name) if *name == self.host => m.host.clone().map(Record::Host),
            Key::Host(name) => m.peers.get(name).map(|p| {
                Record::Host(HostSpec {
                    name: p.name.clone(),
                    dvr_mac: p.dvr_mac,
                    vtep: p.vtep,
                })
            }),
            Key::Network(n) => m.networks.get(n).cloned().map(Record::Network),
            Key::Router(r) => m.routers.get(r).cloned().map(Record::Router),
            Key::Interface(k) => m.interfaces.get(k).cloned().map(Record::Interface),
            Key::Route(k) => m.routes.get(k).cloned().map(Record::Route),
            Key::Port(k) => m.ports.get(k).cloned().map(Record::Port),
            Key::FloatingIp(ip) => m.floating_ips.get(ip).cloned().map(Record::FloatingIp),
        }
    }

    /// The change that makes the model hold `desired` under `key`.
    fn change(&self, key: &Key, desired: Option<&Record>) -> Change {
        match (key, desired) {
            (Key::Host(name), Some(Record::Host(h))) if *name == self.host => {
                Change::SetHost(h.clone())
            }
            (_, Some(rec)) => rec.upsert(),
            (_, None) => key.delete(),
        }
    }

    /// Compares each key with the model, orders the changes and validates them on the copy.
    /// Refused changes are tried again while a pass lets at least one more through.
    fn plan_keys(&mut self, revision: i64, keys: BTreeSet<Key>) -> Plan {
        let mut plan = Plan {
            revision,
            ..Plan::default()
        };
        let mut pending = self.ordered(keys);
        loop {
            let tried = pending.len();
            pending.retain(|(key, desired)| !self.try_change(&mut plan, key, desired.as_ref()));
            if pending.is_empty() || pending.len() == tried {
                return plan;
            }
        }
    }

    /// The keys whose record differs from the model's, in the order the model accepts them:
    /// deletions from floating IPs and ports up to peers, then additions from this host down.
    fn ordered(&mut self, keys: BTreeSet<Key>) -> Vec<(Key, Option<Record>)> {
        let mut deletions = Vec::new();
        let mut additions = Vec::new();
        for key in keys {
            let desired = self.desired(&key);
            if desired == self.current(&key) {
                self.rejected.remove(&key);
                continue;
            }
            match desired {
                None => deletions.push(key),
                // This host's own record comes first: peers and ports need it.
                Some(rec) if key == Key::Host(self.host.clone()) => additions.insert(0, (key, rec)),
                Some(rec) => additions.push((key, rec)),
            }
        }
        deletions
            .into_iter()
            .rev()
            .map(|k| (k, None))
            .chain(additions.into_iter().map(|(k, r)| (k, Some(r))))
            .collect()
    }

    /// Validates the change to `desired` under `key` on the copy and adds it to `plan`; false
    /// (and the key reported) when the model refuses it, true when it is settled.
    fn try_change(&mut self, plan: &mut Plan, key: &Key, desired: Option<&Record>) -> bool {
        if desired.is_none() && *key == Key::Host(self.host.clone()) {
            self.rejected.insert(
                key.clone(),
                "this host's own record was deleted: it keeps its identity until it restarts"
                    .into(),
            );
            return true;
        }
        let change = self.change(key, desired);
        match self.model.edit(&change) {
            Ok(edit) => {
                self.rejected.remove(key);
                plan.changes.push(change);
                plan.keys.push(key.clone());
                plan.edits.push(edit);
                true
            }
            Err(e) => {
                self.rejected.insert(key.clone(), e.to_string());
                false
            }
        }
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
