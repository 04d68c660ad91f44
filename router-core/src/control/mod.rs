//! The control plane: turns the [`Model`] into data-plane state.
//!
//! [`ControlPlane`] is the single writer of every table the workers read; it runs on the control
//! thread. Each DVR object kind has its own file holding what the tables keep for it and how a
//! change of it is programmed: `router`, `network`, `interface`, `route`, `port` and `peer` (the
//! host and its peers). `publish` builds the [`Topology`] the workers read, `query` answers the
//! operators' questions, `neigh` resolves neighbours by ARP, `holds` keeps the packets waiting
//! for them, `punt` decides what to do with a packet a worker punted, and `fragment` finds the
//! MTU a datagram too big for its next hop is split for.
//!
//! A change is programmed incrementally: a new instance port is one next-hop slot, one /32 in its
//! router's LPM and one L2 entry, whatever the size of the tables. Structural objects (ports'
//! roles, networks, interfaces, routers, peers) are published as a new [`Topology`] before
//! anything that refers to them is made reachable, and retracted only after what referred to
//! them is gone, so a worker never follows a dangling index. Freed slots and ids are reused only
//! after every worker passed a quiescent point.
//!
//! # Batches and the undo
//!
//! [`ControlPlane::apply_batch`] is all or nothing, in three steps:
//!
//! 1. Every change is validated by the model in order ([`Model::edit`]), each returning the one
//!    entry it touched as it was and as it is (an [`Edit`]). Along the way `capacity` adds up
//!    what programming each change takes from the tables (next-hop slots, tbl8 groups of each
//!    router, L2 entries, ids) and refuses the batch at the first change that does not fit. The
//!    model is then put back as it was. Nothing has been written: a refused batch is invisible
//!    to the workers.
//! 2. The edits are made again one by one, each programmed by its object's [`Program`] from
//!    `before` to `after` (an install, a replace or a remove). Workers see each change as it is
//!    written, in the order that keeps every index they follow valid.
//! 3. Should programming still fail (the estimate of step 1 is an upper bound, so this takes a
//!    worker stuck past the grace-period wait, or a router table that cannot be allocated), the
//!    failing change leaves the tables as they were and the edits already made are undone in
//!    reverse order from the same snapshots: the model entry is put back and the object is
//!    programmed backwards, from `after` to `before`, by the same code. Workers may then have
//!    seen the changes before the failing one for as long as the undo takes.

mod capacity;
mod external;
mod fip;
mod fragment;
mod holds;
mod interface;
mod neigh;
mod network;
mod peer;
mod port;
mod publish;
mod punt;
mod query;
mod route;
mod router;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

pub use self::capacity::MAX_IFACES;
pub use self::external::EXTERNAL_HOSTS_MAX;
pub use self::holds::{HoldEvent, Holds, Settle};
pub use self::neigh::Solicit;
pub use self::neigh::{NeighborConfig, NeighborState, NeighborView};
pub use self::punt::{Flood, PuntAction, Tick};
pub use self::query::TableUsage;

use crate::dataplane::{Dataplane, Topology};
use crate::ids::{FipId, IfaceId, NetworkId, PeerId, RouterId};
use crate::ids::{NextHopId, PortId};
use crate::lpm::LpmError;
use crate::model::{
    each_step, Applied, Change, Edit, Entry, InterfaceKey, MacAddr, Model, ModelError, Step,
    DVR_MAC_BASE_DEFAULT,
};
use crate::qsbr::Qsbr;
use crate::table::{
    AtomicMap, AtomicMapError, AtomicMapWriter, NextHopAllocator, NextHops, NextHopsFull,
};
use crate::wire::EthernetAddress;

use self::capacity::{Fits, IdPools, Plan, Pool};
use self::external::ExternalState;
use self::interface::IfaceState;
use self::neigh::NeighborTable;
use self::peer::PeerState;
use self::router::RouterState;

/// A DPDK port as the daemon set it up. Its index in [`ControlConfig::ports`] is its
/// [`PortId`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSetup {
    /// The name networks use to refer to it.
    pub name: String,
    pub mac: EthernetAddress,
    /// Largest IPv4 packet the port carries.
    pub mtu: u16,
    /// The underlay port (at most one).
    pub fabric: bool,
    /// The external (provider) network's port, where floating IPs live (at most one).
    pub external: bool,
}

/// Sizes and tunables of the control plane; tables are allocated once, at startup.
#[derive(Clone, Debug)]
pub struct ControlConfig {
    pub ports: Vec<PortSetup>,
    /// Next-hop slots (neighbours of all routers, plus a few per interface and peer).
    pub next_hops: usize,
    /// L2 entries (instance ports of all networks).
    pub l2_entries: usize,
    /// tbl8 groups of a compact (tenant) router table.
    pub tbl8_groups_compact: u32,
    /// tbl8 groups of a large router table.
    pub tbl8_groups_large: u32,
    /// ICMP errors per second per router (0: unlimited) and burst.
    pub icmp_rate_per_s: u32,
    pub icmp_burst: u32,
    /// ICMP errors per second to one source in a router (0: unlimited) and burst, checked
    /// before the router's own limit.
    pub icmp_per_source_rate_per_s: u32,
    pub icmp_per_source_burst: u32,
    /// The underlay gateway toward the peers' VTEPs, when they are not on the fabric's subnet.
    pub fabric_gateway: Option<Ipv4Addr>,
    /// The DVR MAC range.
    pub dvr_mac_base: (MacAddr, u8),
    pub neighbor: NeighborConfig,
}

impl ControlConfig {
    /// Defaults sized for a host with tens of thousands of instance ports.
    pub fn new(ports: Vec<PortSetup>) -> Self {
        ControlConfig {
            ports,
            next_hops: 1 << 18,
            l2_entries: 1 << 18,
            tbl8_groups_compact: 1024,
            tbl8_groups_large: 1 << 16,
            icmp_rate_per_s: 1000,
            icmp_burst: 100,
            icmp_per_source_rate_per_s: crate::icmp_limit::SOURCE_RATE_PER_S_DEFAULT,
            icmp_per_source_burst: crate::icmp_limit::SOURCE_BURST_DEFAULT,
            fabric_gateway: None,
            dvr_mac_base: (DVR_MAC_BASE_DEFAULT, 24),
            neighbor: NeighborConfig::default(),
        }
    }
}

/// Why a change was not applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("routing table of router {router}: {source}")]
    Lpm { router: String, source: LpmError },
    #[error(transparent)]
    NextHops(#[from] NextHopsFull),
    #[error("L2 table: {0}")]
    L2(#[from] AtomicMapError),
    #[error("{0}")]
    Config(String),
}

/// Who owns a next-hop slot (the reverse of the tables that point at it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHopOwner {
    /// A neighbour of a router.
    Neighbor { router: RouterId, ip: u32 },
    /// The connected subnet of an interface (destinations still to resolve).
    Connected(IfaceId),
    /// The interface's own address.
    Local(IfaceId),
    /// The subnet's directed broadcast address.
    Broadcast(IfaceId),
    /// A neighbour on the underlay (a VTEP or the underlay gateway).
    Underlay(u32),
    /// A neighbour on the external network (the external gateway or a direct address).
    External(u32),
}

/// Where a neighbour entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighborOrigin {
    /// An instance port pushed by configuration or the API: permanent, never overwritten by
    /// learned ARP.
    Static,
    /// Resolved (or being resolved) by ARP.
    Dynamic,
    /// Only referenced as the gateway of routes, not resolved yet.
    Unresolved,
}

/// The shared tables the workers read, with their writers, and who owns each next-hop slot.
#[derive(Debug)]
struct Tables {
    next_hops: NextHopAllocator,
    l2: AtomicMapWriter,
    owners: HashMap<NextHopId, NextHopOwner>,
}

/// The single writer of the data plane. Owned by the control thread.
pub struct ControlPlane {
    cfg: ControlConfig,
    model: Model,
    dp: Arc<Dataplane>,
    qsbr: Arc<Qsbr>,
    fabric: Option<PortId>,
    tables: Tables,
    /// What the tables hold for each object of the model, by name.
    routers: BTreeMap<String, RouterState>,
    networks: BTreeMap<String, NetworkId>,
    ifaces: BTreeMap<InterfaceKey, IfaceState>,
    peers: BTreeMap<String, PeerState>,
    /// Floating IPs by address, with their ids.
    fips: BTreeMap<Ipv4Addr, FipId>,
    /// The external port and the neighbours on the external network.
    external: ExternalState,
    ids: IdPools,
    /// Neighbours of the routers and of the underlay, and their resolution.
    neighbors: NeighborTable,
    /// Instance ports per (network, peer): a network floods to the peers that have ports on it.
    flood: BTreeMap<(NetworkId, PeerId), u32>,
    /// Called with the memory regions of every new routing table before routes go in (the
    /// daemon advises transparent huge pages).
    table_memory_hook: Option<Box<dyn Fn(usize, usize) + Send>>,
    /// The topology changed since it was last published.
    dirty: bool,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("routers", &self.routers.len())
            .field("networks", &self.networks.len())
            .field("neighbors", &self.neighbors.entries.len())
            .finish_non_exhaustive()
    }
}

/// How the tables follow one object kind of the model. Each kind implements it in its own file;
/// [`each_step`] dispatches an [`Edit`] to it, through [`plan_step`] and [`program_step`].
trait Program: Entry {
    /// Adds to `plan` what installing `new` in place of `old` takes from the tables, or says
    /// what does not fit. The model holds `new`; the tables hold the state from before the batch.
    fn plan(cp: &ControlPlane, old: Option<&Self>, new: &Self, plan: &mut Plan) -> Fits;

    /// What removing `old` gives back at once (little does: freed slots and ids come back
    /// after a grace period, and the plan does not count on them).
    fn plan_removal(_: &ControlPlane, _: &Self, _: &mut Plan) -> Fits {
        Ok(())
    }

    /// Programs `new` in place of `old` (none: an add), with the model holding `new`. On error
    /// the tables are as they were.
    fn install(cp: &mut ControlPlane, old: Option<&Self>, new: &Self) -> Result<(), ApplyError>;

    /// Takes `old` out of the tables, with the model no longer holding it.
    fn remove(cp: &mut ControlPlane, old: &Self);
}

/// What a step takes from the tables. Once a batch deletes or replaces something, what existed
/// before may be gone, and the plan stops counting on it.
fn plan_step<T: Program>(
    cp: &ControlPlane,
    step: &Step<T>,
    plan: &mut Plan,
) -> Result<(), ApplyError> {
    if step.before.is_some() {
        plan.shrink();
    }
    match (&step.before, &step.after) {
        (old, Some(new)) => T::plan(cp, old.as_ref(), new, plan),
        (Some(old), None) => T::plan_removal(cp, old, plan),
        (None, None) => Ok(()),
    }
}

/// Programs the tables from `from` to `to`: an add, a replace or a delete.
fn program_step<T: Program>(
    cp: &mut ControlPlane,
    from: Option<&T>,
    to: Option<&T>,
) -> Result<(), ApplyError> {
    match (from, to) {
        (old, Some(new)) => T::install(cp, old, new),
        (Some(old), None) => {
            T::remove(cp, old);
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

impl ControlPlane {
    /// A control plane with empty tables, publishing to a new [`Dataplane`] whose workers
    /// register with `qsbr`.
    pub fn new(cfg: ControlConfig, qsbr: Arc<Qsbr>) -> Result<Self, ApplyError> {
        let fabric = single_port(&cfg, "fabric", |p| p.fabric)?;
        let external_port = single_port(&cfg, "external", |p| p.external)?;
        if fabric.is_some() && fabric == external_port {
            return Err(ApplyError::Config(
                "a port is either the fabric or the external port".into(),
            ));
        }
        let table = Arc::new(NextHops::new(cfg.next_hops));
        let l2 = Arc::new(AtomicMap::new(cfg.l2_entries));
        let dp = Arc::new(Dataplane::new(
            Topology::default(),
            Arc::clone(&table),
            Arc::clone(&l2),
        ));
        dp.icmp_sources
            .set(cfg.icmp_per_source_rate_per_s, cfg.icmp_per_source_burst);
        let mut model = Model::for_ports(
            cfg.ports
                .iter()
                .map(|p| (p.name.as_str(), p.fabric || p.external)),
        );
        model.dvr_mac_base = Some(cfg.dvr_mac_base);
        model.external_port = external_port.is_some();
        let mut cp = ControlPlane {
            model,
            tables: Tables {
                next_hops: NextHopAllocator::new(table, Arc::clone(&qsbr)),
                l2: AtomicMapWriter::new(l2, Arc::clone(&qsbr)),
                owners: HashMap::new(),
            },
            dp,
            qsbr,
            fabric,
            routers: BTreeMap::new(),
            networks: BTreeMap::new(),
            ifaces: BTreeMap::new(),
            peers: BTreeMap::new(),
            fips: BTreeMap::new(),
            external: ExternalState {
                port: external_port,
                ..ExternalState::default()
            },
            ids: IdPools::new(),
            neighbors: NeighborTable::new(cfg.neighbor.clone()),
            flood: BTreeMap::new(),
            table_memory_hook: None,
            dirty: true,
            cfg,
        };
        cp.publish();
        Ok(cp)
    }

    /// Sets the function told about every routing table's memory before it is filled.
    pub fn set_table_memory_hook(&mut self, hook: impl Fn(usize, usize) + Send + 'static) {
        self.table_memory_hook = Some(Box::new(hook));
    }

    /// The data plane the workers read.
    pub fn dataplane(&self) -> &Arc<Dataplane> {
        &self.dp
    }

    pub fn qsbr(&self) -> &Arc<Qsbr> {
        &self.qsbr
    }

    /// The desired state as applied so far, whole: for the integration tests, which check that
    /// a refused batch leaves it as it was. Everything else reads through the accessors of
    /// `query`.
    #[doc(hidden)]
    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn config(&self) -> &ControlConfig {
        &self.cfg
    }

    /// Applies one change (validated first; refused or failed changes change nothing).
    pub fn apply(&mut self, change: &Change) -> Result<Applied, ApplyError> {
        self.apply_batch(std::slice::from_ref(change))
            .map(|a| a[0])
            .map_err(|(_, e)| e)
    }

    /// Applies every change or none. On error, the index of the change that failed; the model,
    /// the tables and their counters are then as they were.
    pub fn apply_batch(&mut self, changes: &[Change]) -> Result<Vec<Applied>, (usize, ApplyError)> {
        let edits = self.validate(changes)?;
        for (i, edit) in edits.iter().enumerate() {
            let Some(edit) = edit else {
                continue;
            };
            edit.redo(&mut self.model);
            if let Err(e) = self.program(edit, false) {
                edit.undo(&mut self.model);
                self.rollback(&edits[..i]);
                self.publish_if_dirty();
                return Err((i, e));
            }
        }
        self.publish_if_dirty();
        Ok(edits.iter().map(|e| Applied::of(e.as_ref())).collect())
    }

    /// Validates `changes` on the model and checks that programming them fits in the tables.
    /// Leaves the model as it was and writes nothing; returns the edits to make.
    fn validate(&mut self, changes: &[Change]) -> Result<Vec<Option<Edit>>, (usize, ApplyError)> {
        self.ids.refill(&self.qsbr);
        let mut plan = Plan::new(self);
        let mut edits = Vec::with_capacity(changes.len());
        for (i, change) in changes.iter().enumerate() {
            let planned = match self.model.edit(change) {
                Ok(edit) => {
                    let fits = edit.as_ref().map_or(Ok(()), |e| self.plan(e, &mut plan));
                    edits.push(edit);
                    fits
                }
                Err(e) => Err(e.into()),
            };
            if let Err(e) = planned {
                self.model.undo_all(&edits);
                return Err((i, e));
            }
        }
        self.model.undo_all(&edits);
        Ok(edits)
    }

    /// Undoes programmed edits, last first: each model entry goes back and its object is
    /// programmed backwards. Undoing frees what was taken; it does not fail for lack of room
    /// except in pathological cases (a worker stuck past the grace-period wait).
    fn rollback(&mut self, edits: &[Option<Edit>]) {
        for edit in edits.iter().rev().flatten() {
            edit.undo(&mut self.model);
            let _ = self.program(edit, true);
        }
    }

    fn plan(&self, edit: &Edit, plan: &mut Plan) -> Fits {
        each_step!(edit, s => plan_step(self, s, plan))
    }

    /// Programs an edit forward (before to after) or, to undo it, `backward`.
    fn program(&mut self, edit: &Edit, backward: bool) -> Result<(), ApplyError> {
        each_step!(edit, s => {
            let (from, to) = if backward {
                (s.after.as_ref(), s.before.as_ref())
            } else {
                (s.before.as_ref(), s.after.as_ref())
            };
            program_step(self, from, to)
        })
    }

    /// Reclaims table memory whose grace period is over. Call periodically.
    pub fn reclaim(&mut self) {
        self.tables.next_hops.reclaim();
        self.tables.l2.reclaim();
        for r in self.routers.values_mut() {
            r.lpm.reclaim();
        }
    }
}

/// Installs `new` in place of `old` by removing the old one first: on failure the old one is
/// installed again, so the tables are as they were.
fn reinstall<T>(
    cp: &mut ControlPlane,
    (old, new): (Option<&T>, &T),
    remove: fn(&mut ControlPlane, &T),
    install: fn(&mut ControlPlane, &T) -> Result<(), ApplyError>,
) -> Result<(), ApplyError> {
    if let Some(old) = old {
        remove(cp, old);
    }
    let result = install(cp, new);
    if result.is_err() {
        if let Some(old) = old {
            let _ = install(cp, old);
        }
    }
    result
}

impl ControlPlane {
    /// Publishes the topology without an object that is gone, then gives its id back: workers
    /// that still saw the old topology keep the id until their grace period ends.
    fn retract(&mut self, pool: Pool, id: impl Into<u16>) {
        self.dirty = true;
        self.publish_if_dirty();
        self.ids.release(&self.qsbr, pool, id);
    }
}

/// The port of a configuration that `is` picks (the fabric, the external port): at most one.
fn single_port(
    cfg: &ControlConfig,
    what: &str,
    is: impl Fn(&PortSetup) -> bool,
) -> Result<Option<PortId>, ApplyError> {
    let found: Vec<_> = cfg
        .ports
        .iter()
        .enumerate()
        .filter(|(_, p)| is(p))
        .collect();
    if found.len() > 1 {
        return Err(ApplyError::Config(format!("at most one {what} port")));
    }
    if cfg.ports.len() > crate::dataplane::MAX_PORTS {
        return Err(ApplyError::Config(format!(
            "at most {} ports",
            crate::dataplane::MAX_PORTS
        )));
    }
    Ok(found.first().map(|(i, _)| PortId::new(*i as u16)))
}

/// A /32 for an address.
fn host_prefix(ip: impl Into<u32>) -> crate::lpm::Prefix {
    crate::lpm::Prefix::containing(ip.into(), 32)
}
