//! Router interfaces: the anycast gateway of a router on a network. An interface takes three
//! next-hop slots (its connected subnet, its own address, its subnet's broadcast address) and
//! their three routes, and makes every instance port of its network a permanent neighbour of
//! its router.

use std::net::Ipv4Addr;

use super::capacity::{Fits, Plan, Pool};
use super::{host_prefix, reinstall, ApplyError, ControlPlane, NextHopOwner, Program};

use crate::ids::NextHopId;
use crate::ids::{IfaceId, NetworkId, RouterId};
use crate::model::InterfaceSpec;
use crate::reason::DropReason;
use crate::table::{NextHopKind, NextHopState};

/// What the tables hold for an interface.
#[derive(Clone, Copy, Debug)]
pub(super) struct IfaceState {
    pub id: IfaceId,
    pub router: RouterId,
    pub network: NetworkId,
    pub connected: NextHopId,
    pub local: NextHopId,
    pub broadcast: NextHopId,
}

impl IfaceState {
    fn slots(&self) -> [NextHopId; 3] {
        [self.connected, self.local, self.broadcast]
    }
}

/// The routes of an interface, in the order of [`IfaceState::slots`].
fn iface_prefixes(spec: &InterfaceSpec) -> [crate::lpm::Prefix; 3] {
    [
        spec.address.subnet(),
        host_prefix(spec.address.ip),
        host_prefix(spec.address.broadcast()),
    ]
}

impl Program for InterfaceSpec {
    fn plan(cp: &ControlPlane, _: Option<&Self>, new: &Self, plan: &mut Plan) -> Fits {
        plan.id(Pool::Ifaces)?;
        plan.next_hops(cp, 3)?;
        for prefix in iface_prefixes(new) {
            plan.prefix(cp, &new.router, prefix)?;
        }
        for p in cp.model.ports_of_network(&new.network) {
            cp.plan_port_neighbor(p, plan)?;
        }
        Ok(())
    }

    fn install(cp: &mut ControlPlane, old: Option<&Self>, new: &Self) -> Result<(), ApplyError> {
        reinstall(
            cp,
            (old, new),
            ControlPlane::remove_interface,
            ControlPlane::install_interface,
        )
    }

    fn remove(cp: &mut ControlPlane, old: &Self) {
        cp.remove_interface(old);
    }
}

impl ControlPlane {
    fn install_interface(&mut self, spec: &InterfaceSpec) -> Result<(), ApplyError> {
        let state = self.alloc_iface(spec)?;
        let owners = [
            NextHopOwner::Connected(state.id),
            NextHopOwner::Local(state.id),
            NextHopOwner::Broadcast(state.id),
        ];
        for (nh, owner) in state.slots().into_iter().zip(owners) {
            self.tables.owners.insert(nh, owner);
        }
        self.ifaces
            .insert((spec.router.clone(), spec.network.clone()), state);
        // Workers must know the interface before any route points at it.
        self.dirty = true;
        self.publish_if_dirty();
        for (prefix, nh) in iface_prefixes(spec).into_iter().zip(state.slots()) {
            if let Err(e) = self.lpm_insert(&spec.router, prefix, nh) {
                self.remove_interface(spec);
                return Err(e);
            }
        }
        let ports: Vec<_> = self
            .model
            .ports_of_network(&spec.network)
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

    /// An id and the three next-hop slots of a new interface; on failure, nothing taken.
    fn alloc_iface(&mut self, spec: &InterfaceSpec) -> Result<IfaceState, ApplyError> {
        let router = self.routers[&spec.router].id;
        let network = self.networks[&spec.network];
        let id = IfaceId::new(self.ids.alloc(&self.qsbr, Pool::Ifaces)?);
        let states = [
            NextHopState::action(NextHopKind::Resolve),
            NextHopState::action(NextHopKind::LocalDelivery),
            NextHopState::blackhole(DropReason::Broadcast),
        ];
        let mut slots = Vec::with_capacity(3);
        for state in states {
            match self.tables.next_hops.alloc(id, state) {
                Ok(nh) => slots.push(nh),
                Err(e) => {
                    slots
                        .into_iter()
                        .for_each(|nh| self.tables.next_hops.free(nh));
                    self.ids.release(&self.qsbr, Pool::Ifaces, id);
                    return Err(e.into());
                }
            }
        }
        Ok(IfaceState {
            id,
            router,
            network,
            connected: slots[0],
            local: slots[1],
            broadcast: slots[2],
        })
    }

    /// The router (by name) and the interface of a network that has one.
    pub(super) fn router_iface_of(&self, network: &str) -> Option<(String, IfaceState)> {
        let iface = self.model.interface_of_network(network)?;
        let key = (iface.router.clone(), iface.network.clone());
        let state = self.ifaces.get(&key).copied()?;
        Some((iface.router.clone(), state))
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
            .entries
            .iter()
            .filter(|(_, n)| n.iface == state.id)
            .map(|(k, n)| (*k, *n))
            .collect();
        for ((router, ip), n) in on_iface {
            if n.host_route {
                let _ = self.lpm_remove(&spec.router, host_prefix(Ipv4Addr::from(ip)));
            }
            self.neighbors.entries.remove(&(router, ip));
            self.free_neighbor_slot(n.nh);
        }
        for prefix in iface_prefixes(spec) {
            let _ = self.lpm_remove(&spec.router, prefix);
        }
        for nh in state.slots() {
            self.tables.owners.remove(&nh);
            self.tables.next_hops.free(nh);
        }
        self.ifaces.remove(&key);
        self.dirty = true;
        self.publish_if_dirty();
        self.ids.release(&self.qsbr, Pool::Ifaces, state.id);
    }
}
