//! The control plane: turns the [`Model`] into data-plane state, one change at a time.
//!
//! [`ControlPlane`] is the single writer of every table the workers read. A change is validated
//! by the model first (a refused change touches nothing), then programmed incrementally: a new
//! instance port is one next-hop slot, one /32 in its router's LPM and one L2 entry, whatever the
//! size of the tables. Structural objects (ports' roles, networks, interfaces, routers, peers)
//! are published as a new [`Topology`] before anything that refers to them is made reachable,
//! and retracted only after what referred to them is gone, so a worker never follows a dangling
//! index. Freed slots and ids are reused only after every worker passed a quiescent point.
//!
//! A batch is all or nothing: if programming fails half-way (a table is full), the changes
//! already made are undone in reverse order.

mod neigh;
mod punt;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

pub use self::neigh::Solicit;
pub use self::neigh::{NeighborConfig, NeighborState, NeighborView};
pub use self::punt::{Flood, PuntAction, Tick};

use crate::dataplane::{
    l2_key, Dataplane, DvrMacRange, FlatMap, HostInfo, IcmpLimiter, IfaceInfo, L2Location,
    NetworkId, NetworkInfo, PeerId, PeerInfo, PortId, PortInfo, PortRole, RouterId, RouterInfo,
    Topology,
};
use crate::engine::DropReason;
use crate::lpm::{self, LpmConfig, LpmError, LpmWriter, Prefix};
use crate::model::{
    Applied, Change, InstancePortSpec, InterfaceKey, InterfaceSpec, MacAddr, Model, ModelError,
    NetworkSpec, PeerSpec, RouteSpec, RouterSpec, DVR_MAC_BASE_DEFAULT, MAX_NETWORKS, MAX_PEERS,
    MAX_ROUTERS,
};
use crate::qsbr::{Qsbr, Retired};
use crate::table::{
    AtomicMap, AtomicMapError, AtomicMapWriter, IfaceId, NextHopAllocator, NextHopIndex,
    NextHopKind, NextHopState, NextHops, NextHopsFull, IFACE_NONE,
};
use crate::wire::EthernetAddress;

use self::neigh::Neighbors;

/// Most router interfaces on one host.
pub const MAX_IFACES: usize = 8192;

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

#[derive(Clone, Copy, Debug)]
struct Neighbor {
    nh: NextHopIndex,
    iface: IfaceId,
    /// Routes whose next hop this is.
    routes: u32,
    origin: NeighborOrigin,
    /// The /32 for the neighbour itself is in the LPM.
    host_route: bool,
}

#[derive(Debug)]
struct RouterState {
    id: RouterId,
    lpm: LpmWriter,
    icmp: Arc<IcmpLimiter>,
}

#[derive(Clone, Copy, Debug)]
struct IfaceState {
    id: IfaceId,
    router: RouterId,
    network: NetworkId,
    connected: NextHopIndex,
    local: NextHopIndex,
    broadcast: NextHopIndex,
}

#[derive(Clone, Copy, Debug)]
struct PeerState {
    id: PeerId,
    underlay_ip: u32,
}

#[derive(Clone, Copy, Debug)]
struct UnderlayNeighbor {
    nh: NextHopIndex,
    peers: u32,
}

/// Allocates small ids; a freed id comes back after a grace period.
#[derive(Debug)]
struct IdPool {
    next: u16,
    max: usize,
    free: Vec<u16>,
    retired: Retired<u16>,
}

impl IdPool {
    fn new(max: usize) -> Self {
        IdPool {
            next: 0,
            max,
            free: Vec::new(),
            retired: Retired::new(),
        }
    }

    fn alloc(&mut self, qsbr: &Qsbr, kind: &'static str) -> Result<u16, ApplyError> {
        self.free.extend(self.retired.drain_safe(qsbr));
        if let Some(id) = self.free.pop() {
            return Ok(id);
        }
        if usize::from(self.next) >= self.max {
            return Err(ModelError::Limit {
                kind,
                limit: self.max,
            }
            .into());
        }
        self.next += 1;
        Ok(self.next - 1)
    }

    fn release(&mut self, qsbr: &Qsbr, id: u16) {
        self.retired.push(qsbr.retire_token(), id);
    }
}

/// The single writer of the data plane. Owned by the control thread.
pub struct ControlPlane {
    cfg: ControlConfig,
    model: Model,
    dp: Arc<Dataplane>,
    qsbr: Arc<Qsbr>,
    fabric: Option<PortId>,
    next_hops: NextHopAllocator,
    l2: AtomicMapWriter,
    routers: BTreeMap<String, RouterState>,
    networks: BTreeMap<String, NetworkId>,
    ifaces: BTreeMap<InterfaceKey, IfaceState>,
    peers: BTreeMap<String, PeerState>,
    underlay: HashMap<u32, UnderlayNeighbor>,
    neighbors: HashMap<(RouterId, u32), Neighbor>,
    owners: HashMap<NextHopIndex, NextHopOwner>,
    /// Instance ports per (network, peer): a network floods to the peers that have ports on it.
    flood: BTreeMap<(NetworkId, PeerId), u32>,
    router_ids: IdPool,
    network_ids: IdPool,
    iface_ids: IdPool,
    peer_ids: IdPool,
    /// Dynamic neighbour resolution.
    neigh: Neighbors,
    /// Called with the memory regions of every new routing table before routes go in (the
    /// daemon advises transparent huge pages).
    table_memory_hook: Option<Box<dyn Fn(usize, usize) + Send>>,
    dirty: bool,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("routers", &self.routers.len())
            .field("networks", &self.networks.len())
            .field("neighbors", &self.neighbors.len())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// A control plane with empty tables, publishing to a new [`Dataplane`] whose workers
    /// register with `qsbr`.
    pub fn new(cfg: ControlConfig, qsbr: Arc<Qsbr>) -> Result<Self, ApplyError> {
        let fabrics: Vec<_> = cfg
            .ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.fabric)
            .collect();
        if fabrics.len() > 1 {
            return Err(ApplyError::Config("at most one fabric port".into()));
        }
        if cfg.ports.len() > crate::dataplane::MAX_PORTS {
            return Err(ApplyError::Config(format!(
                "at most {} ports",
                crate::dataplane::MAX_PORTS
            )));
        }
        let fabric = fabrics.first().map(|(i, _)| *i as PortId);
        let table = Arc::new(NextHops::new(cfg.next_hops));
        let l2 = Arc::new(AtomicMap::new(cfg.l2_entries));
        let dp = Arc::new(Dataplane::new(
            Topology::default(),
            Arc::clone(&table),
            Arc::clone(&l2),
        ));
        let local_ports = cfg
            .ports
            .iter()
            .filter(|p| !p.fabric)
            .map(|p| p.name.clone())
            .collect();
        let mut model = Model::new(local_ports);
        model.dvr_mac_base = Some(cfg.dvr_mac_base);
        let neigh = Neighbors::new(cfg.neighbor.clone());
        let mut cp = ControlPlane {
            model,
            next_hops: NextHopAllocator::new(table, Arc::clone(&qsbr)),
            l2: AtomicMapWriter::new(l2, Arc::clone(&qsbr)),
            dp,
            qsbr,
            fabric,
            routers: BTreeMap::new(),
            networks: BTreeMap::new(),
            ifaces: BTreeMap::new(),
            peers: BTreeMap::new(),
            underlay: HashMap::new(),
            neighbors: HashMap::new(),
            owners: HashMap::new(),
            flood: BTreeMap::new(),
            router_ids: IdPool::new(MAX_ROUTERS),
            network_ids: IdPool::new(MAX_NETWORKS),
            iface_ids: IdPool::new(MAX_IFACES),
            peer_ids: IdPool::new(MAX_PEERS),
            neigh,
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

    /// The desired state as applied so far.
    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn config(&self) -> &ControlConfig {
        &self.cfg
    }

    /// The id of a port by name.
    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.cfg
            .ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as PortId)
    }

    /// The fabric port, if any.
    pub fn fabric_port(&self) -> Option<PortId> {
        self.fabric
    }

    /// Applies one change (validated first; refused or failed changes change nothing).
    pub fn apply(&mut self, change: &Change) -> Result<Applied, ApplyError> {
        self.apply_batch(std::slice::from_ref(change))
            .map(|a| a[0])
            .map_err(|(_, e)| e)
    }

    /// Applies every change or none. On error, the index of the change that failed.
    pub fn apply_batch(&mut self, changes: &[Change]) -> Result<Vec<Applied>, (usize, ApplyError)> {
        // Validate the whole batch on a copy of the model before touching any table (a copy
        // only when there is more than one change: a single change is validated in place).
        if changes.len() > 1 {
            let mut next = self.model.clone();
            next.apply_batch(changes).map_err(|(i, e)| (i, e.into()))?;
        }
        let mut done: Vec<Change> = Vec::new();
        let mut applied = Vec::with_capacity(changes.len());
        for (i, change) in changes.iter().enumerate() {
            match self.apply_one(change) {
                Ok((a, inverse)) => {
                    applied.push(a);
                    done.extend(inverse);
                }
                Err(e) => {
                    for undo in done.iter().rev() {
                        // Undoing frees what was taken; it does not fail for lack of room
                        // except in pathological cases, which are logged by the caller.
                        let _ = self.apply_one(undo);
                    }
                    self.publish_if_dirty();
                    return Err((i, e));
                }
            }
        }
        self.publish_if_dirty();
        Ok(applied)
    }

    /// Validates one change against the model, programs the tables, and returns the change
    /// that undoes it.
    fn apply_one(&mut self, change: &Change) -> Result<(Applied, Option<Change>), ApplyError> {
        let inverse = self.inverse_of(change);
        let before = self.model.clone_for(change);
        if self.model.apply(change)? == Applied::Unchanged {
            return Ok((Applied::Unchanged, None));
        }
        if let Err(e) = self.program(change, &before) {
            // Put the model back; `program` left the tables as they were.
            self.model.restore(change, before);
            return Err(e);
        }
        Ok((Applied::Changed, inverse))
    }

    /// The change that undoes `change`, from the current model.
    fn inverse_of(&self, change: &Change) -> Option<Change> {
        let m = &self.model;
        Some(match change {
            Change::SetHost(_) => Change::SetHost(m.host.clone()?),
            Change::AddPeer { spec, .. } => match m.peers.get(&spec.name) {
                Some(old) => Change::AddPeer {
                    spec: old.clone(),
                    replace: true,
                },
                None => Change::DelPeer {
                    name: spec.name.clone(),
                },
            },
            Change::DelPeer { name } => Change::AddPeer {
                spec: m.peers.get(name)?.clone(),
                replace: false,
            },
            Change::AddNetwork { spec, .. } => match m.networks.get(&spec.name) {
                Some(old) => Change::AddNetwork {
                    spec: old.clone(),
                    replace: true,
                },
                None => Change::DelNetwork {
                    name: spec.name.clone(),
                },
            },
            Change::DelNetwork { name } => Change::AddNetwork {
                spec: m.networks.get(name)?.clone(),
                replace: false,
            },
            Change::AddRouter { spec, .. } => match m.routers.get(&spec.name) {
                Some(old) => Change::AddRouter {
                    spec: old.clone(),
                    replace: true,
                },
                None => Change::DelRouter {
                    name: spec.name.clone(),
                },
            },
            Change::DelRouter { name } => Change::AddRouter {
                spec: m.routers.get(name)?.clone(),
                replace: false,
            },
            Change::AddInterface { spec, .. } => match m
                .interfaces
                .get(&(spec.router.clone(), spec.network.clone()))
            {
                Some(old) => Change::AddInterface {
                    spec: old.clone(),
                    replace: true,
                },
                None => Change::DelInterface {
                    router: spec.router.clone(),
                    network: spec.network.clone(),
                },
            },
            Change::DelInterface { router, network } => Change::AddInterface {
                spec: m
                    .interfaces
                    .get(&(router.clone(), network.clone()))?
                    .clone(),
                replace: false,
            },
            Change::AddRoute { spec, .. } => {
                match m.routes.get(&(spec.router.clone(), spec.prefix)) {
                    Some(old) => Change::AddRoute {
                        spec: old.clone(),
                        replace: true,
                    },
                    None => Change::DelRoute {
                        router: spec.router.clone(),
                        prefix: spec.prefix,
                    },
                }
            }
            Change::DelRoute { router, prefix } => Change::AddRoute {
                spec: m.routes.get(&(router.clone(), *prefix))?.clone(),
                replace: false,
            },
            Change::AddPort { spec, .. } => match m.ports.get(&(spec.network.clone(), spec.ip)) {
                Some(old) => Change::AddPort {
                    spec: old.clone(),
                    replace: true,
                },
                None => Change::DelPort {
                    network: spec.network.clone(),
                    ip: spec.ip,
                },
            },
            Change::DelPort { network, ip } => Change::AddPort {
                spec: m.ports.get(&(network.clone(), *ip))?.clone(),
                replace: false,
            },
        })
    }

    /// Programs a change the model accepted. `before` holds the objects as they were. On error
    /// the tables are as they were.
    fn program(&mut self, change: &Change, before: &Before) -> Result<(), ApplyError> {
        match change {
            Change::SetHost(_) => {
                self.dirty = true;
                Ok(())
            }
            Change::AddPeer { spec, .. } => self.program_peer(spec, before.peer.as_ref()),
            Change::DelPeer { name } => {
                self.remove_peer(name);
                Ok(())
            }
            Change::AddNetwork { spec, .. } => self.program_network(spec, before.network.as_ref()),
            Change::DelNetwork { name } => {
                if let Some(id) = self.networks.remove(name) {
                    self.dirty = true;
                    self.publish_if_dirty();
                    self.network_ids.release(&self.qsbr, id);
                }
                Ok(())
            }
            Change::AddRouter { spec, .. } => self.program_router(spec),
            Change::DelRouter { name } => {
                if let Some(r) = self.routers.remove(name) {
                    self.dirty = true;
                    self.publish_if_dirty();
                    self.router_ids.release(&self.qsbr, r.id);
                }
                Ok(())
            }
            Change::AddInterface { spec, .. } => {
                if let Some(old) = &before.interface {
                    self.remove_interface(old);
                }
                let result = self.install_interface(spec);
                if result.is_err() {
                    if let Some(old) = &before.interface {
                        let _ = self.install_interface(old);
                    }
                }
                result
            }
            Change::DelInterface { .. } => {
                if let Some(old) = &before.interface {
                    self.remove_interface(old);
                }
                Ok(())
            }
            Change::AddRoute { spec, .. } => self.install_route(spec, before.route.as_ref()),
            Change::DelRoute { .. } => {
                if let Some(old) = &before.route {
                    self.remove_route(old);
                }
                Ok(())
            }
            Change::AddPort { spec, .. } => {
                if let Some(old) = &before.port {
                    self.remove_port(old);
                }
                let result = self.install_port(spec);
                if result.is_err() {
                    if let Some(old) = &before.port {
                        let _ = self.install_port(old);
                    }
                }
                result
            }
            Change::DelPort { .. } => {
                if let Some(old) = &before.port {
                    self.remove_port(old);
                }
                Ok(())
            }
        }
    }

    fn program_peer(&mut self, spec: &PeerSpec, old: Option<&PeerSpec>) -> Result<(), ApplyError> {
        let underlay_ip = self
            .cfg
            .fabric_gateway
            .map_or(u32::from(spec.vtep), u32::from);
        match (old, self.peers.get(&spec.name).copied()) {
            (Some(_), Some(state)) => {
                if state.underlay_ip != underlay_ip {
                    self.underlay_ref(underlay_ip)?;
                    self.underlay_unref(state.underlay_ip);
                    self.peers.insert(
                        spec.name.clone(),
                        PeerState {
                            underlay_ip,
                            ..state
                        },
                    );
                }
            }
            _ => {
                let id = self.peer_ids.alloc(&self.qsbr, "peers")?;
                if let Err(e) = self.underlay_ref(underlay_ip) {
                    self.peer_ids.release(&self.qsbr, id);
                    return Err(e);
                }
                self.peers
                    .insert(spec.name.clone(), PeerState { id, underlay_ip });
            }
        }
        self.dirty = true;
        Ok(())
    }

    fn remove_peer(&mut self, name: &str) {
        if let Some(state) = self.peers.remove(name) {
            self.dirty = true;
            self.publish_if_dirty();
            self.underlay_unref(state.underlay_ip);
            self.peer_ids.release(&self.qsbr, state.id);
        }
    }

    fn underlay_ref(&mut self, ip: u32) -> Result<(), ApplyError> {
        if let Some(u) = self.underlay.get_mut(&ip) {
            u.peers += 1;
            return Ok(());
        }
        let nh = self
            .next_hops
            .alloc(IFACE_NONE, NextHopState::action(NextHopKind::Resolve, 0))?;
        self.owners.insert(nh, NextHopOwner::Underlay(ip));
        self.underlay.insert(ip, UnderlayNeighbor { nh, peers: 1 });
        Ok(())
    }

    fn underlay_unref(&mut self, ip: u32) {
        if let Some(u) = self.underlay.get_mut(&ip) {
            u.peers -= 1;
            if u.peers == 0 {
                let nh = u.nh;
                self.underlay.remove(&ip);
                self.owners.remove(&nh);
                self.neigh.forget(nh);
                self.next_hops.free(nh);
            }
        }
    }

    fn program_network(
        &mut self,
        spec: &NetworkSpec,
        old: Option<&NetworkSpec>,
    ) -> Result<(), ApplyError> {
        if old.is_none() {
            let id = self.network_ids.alloc(&self.qsbr, "networks")?;
            self.networks.insert(spec.name.clone(), id);
        }
        self.dirty = true;
        // Local ports moved: instance ports that defaulted to the only port follow it.
        if old.is_some_and(|o| o.ports != spec.ports) {
            self.publish_if_dirty();
            let ports: Vec<_> = self
                .model
                .ports
                .values()
                .filter(|p| p.network == spec.name)
                .cloned()
                .collect();
            for p in ports {
                self.remove_port(&p);
                self.install_port(&p)?;
            }
        }
        Ok(())
    }

    fn program_router(&mut self, spec: &RouterSpec) -> Result<(), ApplyError> {
        if self.routers.contains_key(&spec.name) {
            return Ok(()); // a replace that changed nothing the data plane sees
        }
        let config = if spec.large {
            LpmConfig::root24(self.cfg.tbl8_groups_large)
        } else {
            LpmConfig::root16(self.cfg.tbl8_groups_compact)
        };
        let lpm =
            LpmWriter::new(config, Arc::clone(&self.qsbr)).map_err(|source| ApplyError::Lpm {
                router: spec.name.clone(),
                source,
            })?;
        if let Some(hook) = &self.table_memory_hook {
            for (addr, len) in lpm.lpm().memory_regions() {
                hook(addr, len);
            }
        }
        let id = self.router_ids.alloc(&self.qsbr, "routers")?;
        let icmp = Arc::new(IcmpLimiter::new(
            self.cfg.icmp_rate_per_s,
            self.cfg.icmp_burst,
        ));
        self.routers
            .insert(spec.name.clone(), RouterState { id, lpm, icmp });
        self.dirty = true;
        Ok(())
    }

    fn install_interface(&mut self, spec: &InterfaceSpec) -> Result<(), ApplyError> {
        let router_id = self.routers[&spec.router].id;
        let network = self.networks[&spec.network];
        let id = self.iface_ids.alloc(&self.qsbr, "interfaces")?;
        let mut allocated = Vec::new();
        let result = (|| {
            let connected = self
                .next_hops
                .alloc(id, NextHopState::action(NextHopKind::Resolve, 0))?;
            allocated.push(connected);
            let local = self
                .next_hops
                .alloc(id, NextHopState::action(NextHopKind::LocalDelivery, 0))?;
            allocated.push(local);
            let broadcast = self
                .next_hops
                .alloc(id, NextHopState::blackhole(DropReason::Broadcast))?;
            allocated.push(broadcast);
            Ok::<_, ApplyError>(IfaceState {
                id,
                router: router_id,
                network,
                connected,
                local,
                broadcast,
            })
        })();
        let state = match result {
            Ok(s) => s,
            Err(e) => {
                allocated.into_iter().for_each(|nh| self.next_hops.free(nh));
                self.iface_ids.release(&self.qsbr, id);
                return Err(e);
            }
        };
        self.owners
            .insert(state.connected, NextHopOwner::Connected(id));
        self.owners.insert(state.local, NextHopOwner::Local(id));
        self.owners
            .insert(state.broadcast, NextHopOwner::Broadcast(id));
        self.ifaces
            .insert((spec.router.clone(), spec.network.clone()), state);
        // Workers must know the interface before any route points at it.
        self.dirty = true;
        self.publish_if_dirty();
        let subnet = spec.address.subnet();
        let entries = [
            (subnet, state.connected),
            (host_prefix(spec.address.ip), state.local),
            (host_prefix(spec.address.broadcast()), state.broadcast),
        ];
        for (prefix, nh) in entries {
            if let Err(e) = self.lpm_insert(&spec.router, prefix, nh) {
                self.remove_interface(spec);
                return Err(e);
            }
        }
        let ports: Vec<_> = self
            .model
            .ports
            .values()
            .filter(|p| p.network == spec.network)
            .cloned()
            .collect();
        for p in &ports {
            if let Err(e) = self.install_port_neighbor(p) {
                self.remove_interface(spec);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Removes an interface and everything that depends on it. Tolerates a partly installed one.
    fn remove_interface(&mut self, spec: &InterfaceSpec) {
        let key = (spec.router.clone(), spec.network.clone());
        let Some(state) = self.ifaces.get(&key).copied() else {
            return;
        };
        // Neighbours on the interface (instance ports and learned ones) and their host routes.
        let on_iface: Vec<_> = self
            .neighbors
            .iter()
            .filter(|(_, n)| n.iface == state.id)
            .map(|(k, n)| (*k, *n))
            .collect();
        for ((router, ip), n) in on_iface {
            if n.host_route {
                let _ = self.lpm_remove(&spec.router, host_prefix(Ipv4Addr::from(ip)));
            }
            self.neighbors.remove(&(router, ip));
            self.owners.remove(&n.nh);
            self.neigh.forget(n.nh);
            self.next_hops.free(n.nh);
        }
        let subnet = spec.address.subnet();
        for prefix in [
            subnet,
            host_prefix(spec.address.ip),
            host_prefix(spec.address.broadcast()),
        ] {
            let _ = self.lpm_remove(&spec.router, prefix);
        }
        for nh in [state.connected, state.local, state.broadcast] {
            self.owners.remove(&nh);
            self.next_hops.free(nh);
        }
        self.ifaces.remove(&key);
        self.dirty = true;
        self.publish_if_dirty();
        self.iface_ids.release(&self.qsbr, state.id);
    }

    fn install_route(
        &mut self,
        spec: &RouteSpec,
        old: Option<&RouteSpec>,
    ) -> Result<(), ApplyError> {
        let router_id = self.routers[&spec.router].id;
        let iface = self
            .model
            .interface_for(&spec.router, spec.via)
            .map(|i| self.ifaces[&(i.router.clone(), i.network.clone())].id)
            .ok_or_else(|| ApplyError::Config(format!("{} is on no interface", spec.via)))?;
        let nh = self.neighbor_ref(router_id, iface, u32::from(spec.via))?;
        if let Err(e) = self.lpm_insert(&spec.router, spec.prefix, nh) {
            self.neighbor_unref(router_id, u32::from(spec.via));
            return Err(e);
        }
        if let Some(old) = old {
            self.neighbor_unref(router_id, u32::from(old.via));
        }
        Ok(())
    }

    fn remove_route(&mut self, spec: &RouteSpec) {
        let Some(router_id) = self.routers.get(&spec.router).map(|r| r.id) else {
            return;
        };
        let _ = self.lpm_remove(&spec.router, spec.prefix);
        self.neighbor_unref(router_id, u32::from(spec.via));
    }

    /// A neighbour referenced by a route: created unresolved if it does not exist.
    fn neighbor_ref(
        &mut self,
        router: RouterId,
        iface: IfaceId,
        ip: u32,
    ) -> Result<NextHopIndex, ApplyError> {
        if let Some(n) = self.neighbors.get_mut(&(router, ip)) {
            n.routes += 1;
            return Ok(n.nh);
        }
        let nh = self
            .next_hops
            .alloc(iface, NextHopState::action(NextHopKind::Pending, 0))?;
        self.owners
            .insert(nh, NextHopOwner::Neighbor { router, ip });
        self.neighbors.insert(
            (router, ip),
            Neighbor {
                nh,
                iface,
                routes: 1,
                origin: NeighborOrigin::Unresolved,
                host_route: false,
            },
        );
        Ok(nh)
    }

    fn neighbor_unref(&mut self, router: RouterId, ip: u32) {
        let Some(n) = self.neighbors.get_mut(&(router, ip)) else {
            return;
        };
        n.routes = n.routes.saturating_sub(1);
        if n.routes == 0 && n.origin == NeighborOrigin::Unresolved {
            let nh = n.nh;
            self.neighbors.remove(&(router, ip));
            self.owners.remove(&nh);
            self.neigh.forget(nh);
            self.next_hops.free(nh);
        }
    }

    /// Where an instance port is, as an L2 location.
    fn port_location(&self, spec: &InstancePortSpec) -> Result<L2Location, ApplyError> {
        if self.model.is_local_host(&spec.host) {
            let net = &self.model.networks[&spec.network];
            let name = spec.port.as_ref().or(net.ports.first()).ok_or_else(|| {
                ApplyError::Config(format!("network {} has no local port", spec.network))
            })?;
            let id = self
                .port_id(name)
                .ok_or_else(|| ApplyError::Config(format!("no port {name}")))?;
            Ok(L2Location::Local(id))
        } else {
            let peer = self
                .peers
                .get(&spec.host)
                .ok_or_else(|| ApplyError::Config(format!("no peer {}", spec.host)))?;
            Ok(L2Location::Remote(peer.id))
        }
    }

    fn install_port(&mut self, spec: &InstancePortSpec) -> Result<(), ApplyError> {
        let network = self.networks[&spec.network];
        let location = self.port_location(spec)?;
        self.l2
            .insert(l2_key(network, spec.mac.to_u64()), location.encode())?;
        if let L2Location::Remote(peer) = location {
            self.flood_ref(network, peer);
        }
        if let Err(e) = self.install_port_neighbor(spec) {
            self.l2.remove(l2_key(network, spec.mac.to_u64()));
            if let L2Location::Remote(peer) = location {
                self.flood_unref(network, peer);
            }
            return Err(e);
        }
        Ok(())
    }

    /// The permanent neighbour entry of an instance port in its network's router, if any.
    fn install_port_neighbor(&mut self, spec: &InstancePortSpec) -> Result<(), ApplyError> {
        let Some(iface) = self.model.interface_of_network(&spec.network).cloned() else {
            return Ok(());
        };
        let Some(state) = self
            .ifaces
            .get(&(iface.router.clone(), iface.network.clone()))
            .copied()
        else {
            return Ok(());
        };
        let location = self.port_location(spec)?;
        let nh_state = match location {
            L2Location::Local(port) => NextHopState::new(NextHopKind::Local, port, spec.mac.0),
            L2Location::Remote(peer) => NextHopState::new(NextHopKind::Remote, peer, spec.mac.0),
        };
        let ip = u32::from(spec.ip);
        let key = (state.router, ip);
        let created = !self.neighbors.contains_key(&key);
        if created {
            let nh = self.next_hops.alloc(state.id, nh_state)?;
            self.owners.insert(
                nh,
                NextHopOwner::Neighbor {
                    router: state.router,
                    ip,
                },
            );
            self.neighbors.insert(
                key,
                Neighbor {
                    nh,
                    iface: state.id,
                    routes: 0,
                    origin: NeighborOrigin::Static,
                    host_route: false,
                },
            );
        }
        let n = self.neighbors.get_mut(&key).expect("present");
        n.origin = NeighborOrigin::Static;
        let nh = n.nh;
        let need_route = !n.host_route;
        self.neigh.forget(nh);
        self.next_hops.set(nh, nh_state);
        if need_route {
            if let Err(e) = self.lpm_insert(&iface.router, host_prefix(spec.ip), nh) {
                if created {
                    self.neighbors.remove(&key);
                    self.owners.remove(&nh);
                    self.next_hops.free(nh);
                }
                return Err(e);
            }
            self.neighbors.get_mut(&key).expect("present").host_route = true;
        }
        Ok(())
    }

    fn remove_port(&mut self, spec: &InstancePortSpec) {
        let Some(&network) = self.networks.get(&spec.network) else {
            return;
        };
        if let Some(L2Location::Remote(peer)) = self
            .l2
            .remove(l2_key(network, spec.mac.to_u64()))
            .and_then(L2Location::decode)
        {
            self.flood_unref(network, peer);
        }
        let Some(iface) = self.model.interface_of_network(&spec.network).cloned() else {
            return;
        };
        let Some(state) = self
            .ifaces
            .get(&(iface.router.clone(), iface.network.clone()))
            .copied()
        else {
            return;
        };
        let key = (state.router, u32::from(spec.ip));
        let Some(n) = self.neighbors.get(&key).copied() else {
            return;
        };
        if n.host_route {
            let _ = self.lpm_remove(&iface.router, host_prefix(spec.ip));
        }
        if n.routes > 0 {
            // Still the gateway of routes: back to unresolved, to be learned by ARP.
            self.next_hops
                .set(n.nh, NextHopState::action(NextHopKind::Pending, 0));
            self.neighbors.insert(
                key,
                Neighbor {
                    origin: NeighborOrigin::Unresolved,
                    host_route: false,
                    ..n
                },
            );
        } else {
            self.neighbors.remove(&key);
            self.owners.remove(&n.nh);
            self.neigh.forget(n.nh);
            self.next_hops.free(n.nh);
        }
    }

    fn flood_ref(&mut self, network: NetworkId, peer: PeerId) {
        let count = self.flood.entry((network, peer)).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.dirty = true;
        }
    }

    fn flood_unref(&mut self, network: NetworkId, peer: PeerId) {
        if let Some(count) = self.flood.get_mut(&(network, peer)) {
            *count -= 1;
            if *count == 0 {
                self.flood.remove(&(network, peer));
                self.dirty = true;
            }
        }
    }

    fn lpm_insert(
        &mut self,
        router: &str,
        prefix: Prefix,
        nh: NextHopIndex,
    ) -> Result<(), ApplyError> {
        let r = self
            .routers
            .get_mut(router)
            .ok_or_else(|| ApplyError::Config(format!("no router {router}")))?;
        let id = lpm::NextHopId::new(nh)
            .ok_or_else(|| ApplyError::Config(format!("next hop {nh} out of range")))?;
        r.lpm
            .insert(prefix, id)
            .map(|_| ())
            .map_err(|source| ApplyError::Lpm {
                router: router.into(),
                source,
            })
    }

    fn lpm_remove(&mut self, router: &str, prefix: Prefix) -> Result<(), ApplyError> {
        let r = self
            .routers
            .get_mut(router)
            .ok_or_else(|| ApplyError::Config(format!("no router {router}")))?;
        r.lpm
            .remove(prefix)
            .map(|_| ())
            .map_err(|source| ApplyError::Lpm {
                router: router.into(),
                source,
            })
    }

    /// Reclaims table memory whose grace period is over. Call periodically.
    pub fn reclaim(&mut self) {
        self.next_hops.reclaim();
        self.l2.reclaim();
        for r in self.routers.values_mut() {
            r.lpm.reclaim();
        }
    }

    fn publish_if_dirty(&mut self) {
        if self.dirty {
            self.publish();
        }
    }

    /// Builds the topology from the control state and hands it to the workers.
    fn publish(&mut self) {
        self.dirty = false;
        let m = &self.model;
        let mut t = Topology {
            host: m.host.as_ref().map(|h| HostInfo {
                dvr_mac: h.dvr_mac.0,
                vtep: u32::from(h.vtep),
            }),
            fabric: self.fabric,
            dvr_macs: DvrMacRange::new(self.cfg.dvr_mac_base.0.to_u64(), self.cfg.dvr_mac_base.1),
            ..Topology::default()
        };
        t.ports = self
            .cfg
            .ports
            .iter()
            .map(|p| PortInfo {
                role: PortRole::Unused,
                mac: p.mac,
                mtu: p.mtu,
            })
            .collect();
        if let Some(f) = self.fabric {
            t.ports[usize::from(f)].role = PortRole::Fabric;
        }
        t.networks = slots(
            self.networks
                .values()
                .map(|&i| usize::from(i) + 1)
                .max()
                .unwrap_or(0),
        );
        for (name, &id) in &self.networks {
            let spec = &m.networks[name];
            let local_ports: Vec<PortId> =
                spec.ports.iter().filter_map(|p| self.port_id(p)).collect();
            for &p in &local_ports {
                t.ports[usize::from(p)].role = PortRole::Local { network: id };
            }
            let iface = m
                .interface_of_network(name)
                .and_then(|i| self.ifaces.get(&(i.router.clone(), i.network.clone())))
                .map(|s| s.id);
            let flood_peers = self
                .flood
                .range((id, 0)..=(id, PeerId::MAX))
                .map(|((_, p), _)| *p)
                .collect();
            t.networks[usize::from(id)] = Some(NetworkInfo {
                vni: spec.vni,
                iface,
                local_ports,
                flood_peers,
            });
        }
        t.ifaces = slots(
            self.ifaces
                .values()
                .map(|s| usize::from(s.id) + 1)
                .max()
                .unwrap_or(0),
        );
        for (key, s) in &self.ifaces {
            let spec = &m.interfaces[key];
            t.ifaces[usize::from(s.id)] = Some(IfaceInfo {
                router: s.router,
                network: s.network,
                ip: u32::from(spec.address.ip),
                mac: spec.mac.0,
                subnet: spec.address.subnet(),
            });
        }
        t.routers = slots(
            self.routers
                .values()
                .map(|r| usize::from(r.id) + 1)
                .max()
                .unwrap_or(0),
        );
        for r in self.routers.values() {
            t.routers[usize::from(r.id)] = Some(RouterInfo {
                lpm: Arc::clone(r.lpm.lpm()),
                icmp: Arc::clone(&r.icmp),
            });
        }
        t.peers = slots(
            self.peers
                .values()
                .map(|p| usize::from(p.id) + 1)
                .max()
                .unwrap_or(0),
        );
        for (name, p) in &self.peers {
            let spec = &m.peers[name];
            let underlay = self.underlay.get(&p.underlay_ip).map_or(0, |u| u.nh);
            t.peers[usize::from(p.id)] = Some(PeerInfo {
                vtep: u32::from(spec.vtep),
                dvr_mac: spec.dvr_mac.0,
                underlay,
            });
        }
        t.vni_to_network = FlatMap::new(
            self.networks
                .iter()
                .map(|(name, &id)| (u64::from(m.networks[name].vni), id)),
        );
        t.vtep_to_peer = FlatMap::new(
            self.peers
                .iter()
                .map(|(name, p)| (u64::from(u32::from(m.peers[name].vtep)), p.id)),
        );
        t.dvr_mac_to_peer = FlatMap::new(
            self.peers
                .iter()
                .map(|(name, p)| (m.peers[name].dvr_mac.to_u64(), p.id)),
        );
        self.dp.publish(t);
    }

    // ---- read side for operators (API, stats) ----

    /// The id of a router by name.
    pub fn router_id(&self, name: &str) -> Option<RouterId> {
        self.routers.get(name).map(|r| r.id)
    }

    /// The name of a router by id.
    pub fn router_name(&self, id: RouterId) -> Option<&str> {
        self.routers
            .iter()
            .find(|(_, r)| r.id == id)
            .map(|(n, _)| n.as_str())
    }

    /// The id of a network by name.
    pub fn network_id(&self, name: &str) -> Option<NetworkId> {
        self.networks.get(name).copied()
    }

    /// The name of a network by id.
    pub fn network_name(&self, id: NetworkId) -> Option<&str> {
        self.networks
            .iter()
            .find(|(_, &n)| n == id)
            .map(|(n, _)| n.as_str())
    }

    /// The name of a peer by id.
    pub fn peer_name(&self, id: PeerId) -> Option<&str> {
        self.peers
            .iter()
            .find(|(_, p)| p.id == id)
            .map(|(n, _)| n.as_str())
    }

    /// The LPM of a router (for lookups by the control thread and operators).
    pub fn router_lpm(&self, name: &str) -> Option<&LpmWriter> {
        self.routers.get(name).map(|r| &r.lpm)
    }

    /// Changes the ICMP error rate limit of every router.
    pub fn set_icmp_rate(&mut self, rate_per_s: u32, burst: u32) {
        self.cfg.icmp_rate_per_s = rate_per_s;
        self.cfg.icmp_burst = burst;
        for r in self.routers.values() {
            r.icmp.set(rate_per_s, burst);
        }
    }

    /// Every neighbour of every router, for `dvrctl neigh`.
    pub fn neighbors(&self, now: crate::dataplane::Nanos) -> Vec<NeighborView> {
        let table = self.dp.next_hops.as_ref();
        let mut out: Vec<NeighborView> = self
            .neighbors
            .iter()
            .map(|(&(router, ip), n)| {
                let router_name = self.router_name(router).unwrap_or("?").to_string();
                self.neigh.view(
                    router_name,
                    Ipv4Addr::from(ip),
                    n.nh,
                    n.origin,
                    n.routes,
                    table.get(n.nh).state,
                    now,
                )
            })
            .collect();
        for (&ip, u) in &self.underlay {
            out.push(self.neigh.view(
                "underlay".to_string(),
                Ipv4Addr::from(ip),
                u.nh,
                NeighborOrigin::Dynamic,
                u.peers,
                table.get(u.nh).state,
                now,
            ));
        }
        out.sort_by(|a, b| (&a.router, a.ip).cmp(&(&b.router, b.ip)));
        out
    }

    /// Who holds a next-hop slot (for traces and lookups).
    pub fn next_hop_owner(&self, nh: NextHopIndex) -> Option<NextHopOwner> {
        self.owners.get(&nh).copied()
    }

    /// The router and network of an interface, by id.
    pub fn iface_names(&self, id: IfaceId) -> Option<(&str, &str)> {
        self.ifaces
            .iter()
            .find(|(_, s)| s.id == id)
            .map(|((r, n), _)| (r.as_str(), n.as_str()))
    }

    /// The name of a port, by id.
    pub fn port_name(&self, id: PortId) -> Option<&str> {
        self.cfg.ports.get(usize::from(id)).map(|p| p.name.as_str())
    }

    /// Sizes of the tables, for operators.
    pub fn table_usage(&self) -> TableUsage {
        TableUsage {
            next_hops_used: self.next_hops.in_use(),
            next_hops_capacity: self.dp.next_hops.capacity(),
            l2_used: self.l2.len(),
            l2_capacity: self.dp.l2.capacity(),
            routes: self.routers.values().map(|r| r.lpm.len()).sum(),
            tbl8_used: self
                .routers
                .values()
                .map(|r| r.lpm.tbl8_in_use() as usize)
                .sum(),
        }
    }
}

/// How full the tables are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableUsage {
    pub next_hops_used: usize,
    pub next_hops_capacity: usize,
    pub l2_used: usize,
    pub l2_capacity: usize,
    pub routes: usize,
    pub tbl8_used: usize,
}

/// The objects a change replaces or deletes, as they were before it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Before {
    peer: Option<PeerSpec>,
    network: Option<NetworkSpec>,
    interface: Option<InterfaceSpec>,
    route: Option<RouteSpec>,
    port: Option<InstancePortSpec>,
    router: Option<RouterSpec>,
    host: Option<crate::model::HostSpec>,
}

impl Model {
    /// The objects `change` would replace or delete.
    pub(crate) fn clone_for(&self, change: &Change) -> Before {
        let mut b = Before::default();
        match change {
            Change::SetHost(_) => b.host = self.host.clone(),
            Change::AddPeer { spec, .. } => b.peer = self.peers.get(&spec.name).cloned(),
            Change::DelPeer { name } => b.peer = self.peers.get(name).cloned(),
            Change::AddNetwork { spec, .. } => b.network = self.networks.get(&spec.name).cloned(),
            Change::DelNetwork { name } => b.network = self.networks.get(name).cloned(),
            Change::AddRouter { spec, .. } => b.router = self.routers.get(&spec.name).cloned(),
            Change::DelRouter { name } => b.router = self.routers.get(name).cloned(),
            Change::AddInterface { spec, .. } => {
                b.interface = self
                    .interfaces
                    .get(&(spec.router.clone(), spec.network.clone()))
                    .cloned()
            }
            Change::DelInterface { router, network } => {
                b.interface = self
                    .interfaces
                    .get(&(router.clone(), network.clone()))
                    .cloned()
            }
            Change::AddRoute { spec, .. } => {
                b.route = self
                    .routes
                    .get(&(spec.router.clone(), spec.prefix))
                    .cloned()
            }
            Change::DelRoute { router, prefix } => {
                b.route = self.routes.get(&(router.clone(), *prefix)).cloned()
            }
            Change::AddPort { spec, .. } => {
                b.port = self.ports.get(&(spec.network.clone(), spec.ip)).cloned()
            }
            Change::DelPort { network, ip } => {
                b.port = self.ports.get(&(network.clone(), *ip)).cloned()
            }
        }
        b
    }

    /// Puts back the objects `change` replaced or deleted (or removes what it added).
    pub(crate) fn restore(&mut self, change: &Change, before: Before) {
        fn put<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, old: Option<V>) {
            match old {
                Some(v) => {
                    map.insert(key, v);
                }
                None => {
                    map.remove(&key);
                }
            }
        }
        match change {
            Change::SetHost(_) => self.host = before.host,
            Change::AddPeer { spec, .. } => put(&mut self.peers, spec.name.clone(), before.peer),
            Change::DelPeer { name } => put(&mut self.peers, name.clone(), before.peer),
            Change::AddNetwork { spec, .. } => {
                put(&mut self.networks, spec.name.clone(), before.network)
            }
            Change::DelNetwork { name } => put(&mut self.networks, name.clone(), before.network),
            Change::AddRouter { spec, .. } => {
                put(&mut self.routers, spec.name.clone(), before.router)
            }
            Change::DelRouter { name } => put(&mut self.routers, name.clone(), before.router),
            Change::AddInterface { spec, .. } => put(
                &mut self.interfaces,
                (spec.router.clone(), spec.network.clone()),
                before.interface,
            ),
            Change::DelInterface { router, network } => put(
                &mut self.interfaces,
                (router.clone(), network.clone()),
                before.interface,
            ),
            Change::AddRoute { spec, .. } => put(
                &mut self.routes,
                (spec.router.clone(), spec.prefix),
                before.route,
            ),
            Change::DelRoute { router, prefix } => {
                put(&mut self.routes, (router.clone(), *prefix), before.route)
            }
            Change::AddPort { spec, .. } => put(
                &mut self.ports,
                (spec.network.clone(), spec.ip),
                before.port,
            ),
            Change::DelPort { network, ip } => {
                put(&mut self.ports, (network.clone(), *ip), before.port)
            }
        }
    }
}

/// `n` empty slots of an id-indexed table.
fn slots<T: Clone>(n: usize) -> Vec<Option<T>> {
    vec![None; n]
}

fn host_prefix(ip: Ipv4Addr) -> Prefix {
    Prefix::containing(u32::from(ip), 32)
}
