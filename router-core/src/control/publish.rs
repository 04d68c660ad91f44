//! Publication of the [`Topology`]: the structural state the workers read (ports' roles, the
//! host, networks, interfaces, routers, peers and the lookups by VNI, VTEP and DVR MAC), built
//! whole from the control state and swapped in at once. Changes mark the control plane dirty and
//! publish where the order matters (an object known before anything points at it, retracted
//! after nothing does); a batch publishes once more at its end.

use std::sync::Arc;

use super::ControlPlane;
use crate::dataplane::{
    DvrMacRange, FlatMap, HostInfo, IfaceInfo, NetworkInfo, PeerInfo, PortInfo, PortRole,
    RouterInfo, Topology,
};
use crate::ids::{NextHopId, PeerId, PortId};

impl ControlPlane {
    pub(super) fn publish_if_dirty(&mut self) {
        if self.dirty {
            self.publish();
        }
    }

    /// Builds the topology from the control state and hands it to the workers.
    pub(super) fn publish(&mut self) {
        self.dirty = false;
        let mut t = Topology {
            host: self.model.host.as_ref().map(|h| HostInfo {
                dvr_mac: h.dvr_mac.0,
                vtep: u32::from(h.vtep),
            }),
            fabric: self.fabric,
            dvr_macs: DvrMacRange::new(self.cfg.dvr_mac_base.0.to_u64(), self.cfg.dvr_mac_base.1),
            ..Topology::default()
        };
        t.ports = self.port_infos();
        self.publish_networks(&mut t);
        self.publish_ifaces(&mut t);
        self.publish_routers(&mut t);
        self.publish_peers(&mut t);
        self.publish_external(&mut t);
        self.publish_fips(&mut t);
        self.announce_fips(&t);
        self.dp.publish(t);
    }

    /// Every port, unused until a network or the fabric claims it.
    fn port_infos(&self) -> Vec<PortInfo> {
        let mut ports: Vec<_> = self
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
            ports[usize::from(f)].role = PortRole::Fabric;
        }
        ports
    }

    /// The external port's role and this host on the external network, with the direct
    /// neighbours there.
    fn publish_external(&self, t: &mut Topology) {
        let Some(port) = self.external.port else {
            return;
        };
        t.ports[usize::from(port)].role = PortRole::External;
        t.external = self.external_info();
        t.external_hosts = FlatMap::new(
            self.external
                .neighbors
                .iter()
                .map(|(&ip, nh)| (u64::from(ip), u32::from(*nh))),
        );
    }

    fn publish_networks(&self, t: &mut Topology) {
        let m = &self.model;
        t.networks = slots(self.networks.values().copied());
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
                .range((id, PeerId::new(0))..=(id, PeerId::MAX))
                .map(|((_, p), _)| *p)
                .collect();
            t.networks[usize::from(id)] = Some(NetworkInfo {
                vni: spec.vni,
                iface,
                local_ports,
                flood_peers,
            });
        }
        t.vni_to_network = FlatMap::new(
            self.networks
                .iter()
                .map(|(name, &id)| (u64::from(m.networks[name].vni), id)),
        );
    }

    fn publish_ifaces(&self, t: &mut Topology) {
        t.ifaces = slots(self.ifaces.values().map(|s| s.id));
        for (key, s) in &self.ifaces {
            let spec = &self.model.interfaces[key];
            t.ifaces[usize::from(s.id)] = Some(IfaceInfo {
                router: s.router,
                network: s.network,
                ip: u32::from(spec.address.ip),
                mac: spec.mac.0,
                subnet: spec.address.subnet(),
            });
        }
    }

    fn publish_routers(&self, t: &mut Topology) {
        t.routers = slots(self.routers.values().map(|r| r.id));
        for r in self.routers.values() {
            t.routers[usize::from(r.id)] = Some(RouterInfo {
                lpm: Arc::clone(r.lpm.lpm()),
                icmp: Arc::clone(&r.icmp),
            });
        }
    }

    fn publish_peers(&self, t: &mut Topology) {
        let m = &self.model;
        t.peers = slots(self.peers.values().map(|p| p.id));
        for (name, p) in &self.peers {
            let spec = &m.peers[name];
            let underlay = self
                .neighbors
                .underlay
                .get(&p.underlay_ip)
                .map_or(NextHopId::EMPTY, |u| u.nh);
            t.peers[usize::from(p.id)] = Some(PeerInfo {
                vtep: u32::from(spec.vtep),
                dvr_mac: spec.dvr_mac.0,
                underlay,
            });
        }
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
    }
}

/// Empty slots of an id-indexed table, one past the largest of `ids`.
fn slots<T: Clone>(ids: impl Iterator<Item = impl Into<usize>>) -> Vec<Option<T>> {
    let n = ids.map(|i| i.into() + 1).max().unwrap_or(0);
    vec![None; n]
}
