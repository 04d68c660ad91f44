//! Extra routes of a router: a prefix via a neighbour on one of its subnets. The neighbour is
//! shared by the routes through it (counted), and exists unresolved until ARP finds it.

use super::capacity::{Fits, Plan};
use super::{ApplyError, ControlPlane, NeighborOrigin, NextHopOwner, Program};
use crate::ids::NextHopId;
use crate::ids::{IfaceId, RouterId};
use crate::model::RouteSpec;
use crate::table::{NextHopKind, NextHopState};

use super::neigh::Neighbor;

impl Program for RouteSpec {
    fn plan(cp: &ControlPlane, _: Option<&Self>, new: &Self, plan: &mut Plan) -> Fits {
        plan.neighbor(cp, &new.router, u32::from(new.via))?;
        plan.prefix(cp, &new.router, new.prefix)
    }

    fn install(cp: &mut ControlPlane, old: Option<&Self>, new: &Self) -> Result<(), ApplyError> {
        cp.install_route(new, old)
    }

    fn remove(cp: &mut ControlPlane, old: &Self) {
        cp.remove_route(old);
    }
}

impl ControlPlane {
    /// Points the route at its neighbour, then lets go of the neighbour of the route it
    /// replaces (in this order, so that a neighbour both share stays).
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
    ) -> Result<NextHopId, ApplyError> {
        if let Some(n) = self.neighbors.entries.get_mut(&(router, ip)) {
            n.routes += 1;
            return Ok(n.nh);
        }
        let nh = self
            .tables
            .next_hops
            .alloc(iface, NextHopState::action(NextHopKind::Pending))?;
        self.tables
            .owners
            .insert(nh, NextHopOwner::Neighbor { router, ip });
        self.neighbors.entries.insert(
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
        let Some(n) = self.neighbors.entries.get_mut(&(router, ip)) else {
            return;
        };
        n.routes = n.routes.saturating_sub(1);
        if n.routes == 0 && n.origin == NeighborOrigin::Unresolved {
            let nh = n.nh;
            self.neighbors.entries.remove(&(router, ip));
            self.free_neighbor_slot(nh);
        }
    }
}
