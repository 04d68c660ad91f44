//! The read side, for operators (the control API, metrics, traces): names and ids, the
//! objects as configured, neighbours, lookups and how full the tables are. The control thread
//! answers these between changes; nothing here writes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::neigh::Known;
use super::{ControlPlane, NeighborOrigin, NeighborView, NextHopOwner};
use crate::dataplane::Nanos;
use crate::ids::{IfaceId, NetworkId, PeerId, RouterId};
use crate::ids::{NextHopId, PortId};
use crate::lpm::LpmWriter;
use crate::model::{
    ExternalSpec, FloatingIpSpec, HostSpec, InstancePortSpec, InterfaceSpec, NetworkSpec, PeerSpec,
    RouteSpec, RouterSpec,
};

impl ControlPlane {
    /// The id of a port by name.
    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.cfg
            .ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| PortId::new(i as u16))
    }

    /// The fabric port, if any.
    pub fn fabric_port(&self) -> Option<PortId> {
        self.fabric
    }

    /// This host, once set.
    pub fn host(&self) -> Option<&HostSpec> {
        self.model.host.as_ref()
    }

    /// This host on the external network.
    pub fn external(&self) -> Option<&ExternalSpec> {
        self.model.external.as_ref()
    }

    /// The name of the external port, if the host has one.
    pub fn external_port_name(&self) -> Option<&str> {
        self.external
            .port
            .map(|p| self.cfg.ports[usize::from(p)].name.as_str())
    }

    /// The floating IPs, by address.
    pub fn fip_specs(&self) -> impl Iterator<Item = &FloatingIpSpec> {
        self.model.floating_ips.values()
    }

    /// The host a floating IP's instance runs on.
    pub fn fip_host(&self, spec: &FloatingIpSpec) -> Option<&str> {
        self.model.fip_port(spec).map(|p| p.host.as_str())
    }

    /// True when this host acts on the floating IP (its instance runs here and the host is on
    /// the external network).
    pub fn fip_is_active(&self, spec: &FloatingIpSpec) -> bool {
        self.model.external.is_some() && self.model.fip_port_is_local(spec)
    }

    /// The peer hosts, by name.
    pub fn peer_specs(&self) -> impl Iterator<Item = &PeerSpec> {
        self.model.peers.values()
    }

    /// The networks, by name, each with the router it is attached to.
    pub fn network_specs(&self) -> impl Iterator<Item = (&NetworkSpec, Option<&str>)> {
        self.model.networks.values().map(|n| {
            let router = self.model.interface_of_network(&n.name);
            (n, router.map(|i| i.router.as_str()))
        })
    }

    /// True if the network exists.
    pub fn has_network(&self, name: &str) -> bool {
        self.model.networks.contains_key(name)
    }

    /// The routers, by name.
    pub fn router_specs(&self) -> impl Iterator<Item = &RouterSpec> {
        self.model.routers.values()
    }

    /// The interfaces of one router, or of all.
    pub fn interface_specs<'a>(
        &'a self,
        router: Option<&'a str>,
    ) -> impl Iterator<Item = &'a InterfaceSpec> + 'a {
        owned_by(&self.model.interfaces, router, |i| &i.router)
    }

    /// The extra routes of one router, or of all.
    pub fn route_specs<'a>(
        &'a self,
        router: Option<&'a str>,
    ) -> impl Iterator<Item = &'a RouteSpec> + 'a {
        owned_by(&self.model.routes, router, |r| &r.router)
    }

    /// The instance ports of one network, or of all.
    pub fn port_specs<'a>(
        &'a self,
        network: Option<&'a str>,
    ) -> impl Iterator<Item = &'a InstancePortSpec> + 'a {
        owned_by(&self.model.ports, network, |p| &p.network)
    }

    /// The next hop a router's table gives for `ip`: `None` for an unknown router, `Some(None)`
    /// for no route.
    pub fn lookup(&self, router: &str, ip: Ipv4Addr) -> Option<Option<NextHopId>> {
        let lpm = self.routers.get(router)?.lpm.lpm();
        Some(lpm.lookup(u32::from(ip)))
    }

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

    /// Every neighbour of every router, and of the underlay, for `dvrctl neigh`.
    pub fn neighbors(&self, now: Nanos) -> Vec<NeighborView> {
        let table = self.dp.next_hops.as_ref();
        let view = |router: String, ip: u32, nh, origin, routes| {
            let known = Known {
                router,
                ip: Ipv4Addr::from(ip),
                nh,
                origin,
                routes,
            };
            self.neighbors
                .resolver
                .view(known, table.get(nh).state, now)
        };
        let mut out: Vec<NeighborView> = self
            .neighbors
            .entries
            .iter()
            .map(|(&(router, ip), n)| {
                let name = self.router_name(router).unwrap_or("?").to_string();
                view(name, ip, n.nh, n.origin, n.routes)
            })
            .collect();
        for (&ip, u) in &self.neighbors.underlay {
            out.push(view(
                "underlay".into(),
                ip,
                u.nh,
                NeighborOrigin::Dynamic,
                u.peers,
            ));
        }
        for (&ip, &nh) in &self.external.neighbors {
            out.push(view("external".into(), ip, nh, NeighborOrigin::Dynamic, 0));
        }
        out.sort_by(|a, b| (&a.router, a.ip).cmp(&(&b.router, b.ip)));
        out
    }

    /// Who holds a next-hop slot (for traces and lookups).
    pub fn next_hop_owner(&self, nh: NextHopId) -> Option<NextHopOwner> {
        self.tables.owners.get(&nh).copied()
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
            next_hops_used: self.tables.next_hops.in_use(),
            next_hops_capacity: self.dp.next_hops.capacity(),
            l2_used: self.tables.l2.len(),
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

/// The entries of `map` whose owner (a router, a network) is `wanted`, or all of them.
fn owned_by<'a, K, T>(
    map: &'a BTreeMap<K, T>,
    wanted: Option<&'a str>,
    owner: fn(&T) -> &String,
) -> impl Iterator<Item = &'a T> + 'a {
    map.values()
        .filter(move |v| wanted.is_none_or(|w| w == owner(v)))
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
