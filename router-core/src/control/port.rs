//! Instance ports: one L2 entry in their network (where the MAC is: a local port or a peer),
//! and, when the network has a router, a permanent neighbour of that router with its /32. A
//! port on a peer also makes the network flood to that peer.

use super::capacity::{Fits, Plan};
use super::{host_prefix, reinstall, ApplyError, ControlPlane, NeighborOrigin, Program};
use crate::dataplane::{l2_key, L2Location};
use crate::ids::{NetworkId, PeerId};
use crate::model::InstancePortSpec;
use crate::table::NextHopState;

impl Program for InstancePortSpec {
    fn plan(cp: &ControlPlane, old: Option<&Self>, new: &Self, plan: &mut Plan) -> Fits {
        // A replace takes the L2 entry of the port it replaces.
        if old.is_none() {
            plan.l2(cp, 1)?;
        }
        cp.plan_port_neighbor(new, plan)
    }

    fn plan_removal(cp: &ControlPlane, _: &Self, plan: &mut Plan) -> Fits {
        plan.l2(cp, -1)
    }

    fn install(cp: &mut ControlPlane, old: Option<&Self>, new: &Self) -> Result<(), ApplyError> {
        reinstall(
            cp,
            (old, new),
            ControlPlane::remove_port,
            ControlPlane::install_port,
        )
    }

    fn remove(cp: &mut ControlPlane, old: &Self) {
        cp.remove_port(old);
    }
}

impl ControlPlane {
    /// What the permanent neighbour of an instance port takes, when its network has a router.
    pub(super) fn plan_port_neighbor(
        &self,
        spec: &InstancePortSpec,
        plan: &mut Plan,
    ) -> Result<(), ApplyError> {
        let Some(iface) = self.model.interface_of_network(&spec.network) else {
            return Ok(());
        };
        plan.neighbor(self, &iface.router, u32::from(spec.ip))?;
        plan.prefix(self, &iface.router, host_prefix(spec.ip))
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

    pub(super) fn install_port(&mut self, spec: &InstancePortSpec) -> Result<(), ApplyError> {
        // A floating IP follows its instance from host to host.
        if self.model.fip_of_port(&spec.network, spec.ip).is_some() {
            self.dirty = true;
        }
        let network = self.networks[&spec.network];
        let location = self.port_location(spec)?;
        self.tables
            .l2
            .insert(l2_key(network, spec.mac.to_u64()), location.encode())?;
        if let L2Location::Remote(peer) = location {
            self.flood_ref(network, peer);
        }
        if let Err(e) = self.install_port_neighbor(spec) {
            self.tables.l2.remove(l2_key(network, spec.mac.to_u64()));
            if let L2Location::Remote(peer) = location {
                self.flood_unref(network, peer);
            }
            return Err(e);
        }
        Ok(())
    }

    /// The permanent neighbour entry of an instance port in its network's router, if any.
    pub(super) fn install_port_neighbor(
        &mut self,
        spec: &InstancePortSpec,
    ) -> Result<(), ApplyError> {
        let Some((router, state)) = self.router_iface_of(&spec.network) else {
            return Ok(());
        };
        let nh_state = match self.port_location(spec)? {
            L2Location::Local(port) => NextHopState::local(port, spec.mac.0),
            L2Location::Remote(peer) => NextHopState::remote(peer, spec.mac.0),
        };
        let key = (state.router, u32::from(spec.ip));
        let existing = self.neighbors.entries.get(&key).copied();
        let created = existing.is_none();
        let n = match existing {
            Some(n) => n,
            None => self.new_neighbor(key, state.id, nh_state, NeighborOrigin::Static)?,
        };
        self.neighbors
            .entries
            .get_mut(&key)
            .expect("present")
            .origin = NeighborOrigin::Static;
        self.neighbors.resolver.forget(n.nh);
        self.set_resolved(n.nh, nh_state);
        if !n.host_route {
            if let Err(e) = self.lpm_insert(&router, host_prefix(spec.ip), n.nh) {
                if created {
                    self.neighbors.entries.remove(&key);
                    self.free_neighbor_slot(n.nh);
                }
                return Err(e);
            }
            self.neighbors
                .entries
                .get_mut(&key)
                .expect("present")
                .host_route = true;
        }
        Ok(())
    }

    pub(super) fn remove_port(&mut self, spec: &InstancePortSpec) {
        let Some(&network) = self.networks.get(&spec.network) else {
            return;
        };
        if let Some(L2Location::Remote(peer)) = self
            .tables
            .l2
            .remove(l2_key(network, spec.mac.to_u64()))
            .and_then(L2Location::decode)
        {
            self.flood_unref(network, peer);
        }
        let Some((router, state)) = self.router_iface_of(&spec.network) else {
            return;
        };
        let key = (state.router, u32::from(spec.ip));
        if let Some(n) = self.neighbors.entries.get(&key).copied() {
            self.unlearn_neighbor(&router, key, n);
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
}
