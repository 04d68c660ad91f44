//! The external network: this host's address there, its neighbours (the external gateway and
//! the addresses of the subnet it sends to directly, such as other hosts' floating IPs), ARP on
//! the external port, and the gratuitous ARP that announces a floating IP arriving here.
//!
//! External neighbours are resolved by ARP on the external port as this host's external
//! address, with the same state machine as every other neighbour. The gateway exists as long
//! as the external network does; a direct neighbour is created the first time a packet goes to
//! it, up to [`EXTERNAL_HOSTS_MAX`], and forgotten when ARP forgets it.

use std::collections::{BTreeMap, BTreeSet};

use super::capacity::{Fits, Plan};
use super::neigh::{Asker, Solicit};
use super::punt::{arp_request, ArpFields};
use super::{ApplyError, ControlPlane, NextHopOwner, Program, PuntAction};
use crate::dataplane::{ExternalInfo, Nanos, Topology};
use crate::ids::{NextHopId, PortId};
use crate::model::ExternalSpec;
use crate::reason::DropReason;
use crate::table::{NextHopKind, NextHopState, IFACE_NONE};
use crate::wire::{ArpOperation, EthernetAddress, PacketBuf};

/// Most addresses of the external subnet this host sends to directly, besides the gateway.
pub const EXTERNAL_HOSTS_MAX: usize = 1024;

/// What the control plane keeps for the external network.
#[derive(Debug, Default)]
pub(super) struct ExternalState {
    /// The external port (configured with `external = true`).
    pub port: Option<PortId>,
    /// Neighbours on the external network by address, the gateway among them.
    pub neighbors: BTreeMap<u32, NextHopId>,
    /// The floating IPs announced here, as last published: one that appears gets a
    /// gratuitous ARP.
    pub announced: BTreeSet<u32>,
    /// Gratuitous ARPs to send at the next tick.
    pub pending: Vec<Solicit>,
}

impl Program for ExternalSpec {
    fn plan(cp: &ControlPlane, old: Option<&Self>, new: &Self, plan: &mut Plan) -> Fits {
        if old.is_some_and(|o| o.gateway == new.gateway) {
            return Ok(());
        }
        plan.next_hops(cp, 1)
    }

    fn install(cp: &mut ControlPlane, old: Option<&Self>, new: &Self) -> Result<(), ApplyError> {
        let gateway = u32::from(new.gateway);
        if !cp.external.neighbors.contains_key(&gateway) {
            let nh = cp.external_neighbor(gateway)?;
            cp.external.neighbors.insert(gateway, nh);
        }
        // Direct neighbours outside the new subnet, and the old gateway, go.
        let subnet = new.address.subnet();
        let stale: Vec<u32> = cp
            .external
            .neighbors
            .keys()
            .copied()
            .filter(|&ip| {
                ip != gateway
                    && (!subnet.contains(ip) || old.is_some_and(|o| u32::from(o.gateway) == ip))
            })
            .collect();
        for ip in stale {
            cp.forget_external_neighbor(ip);
        }
        cp.dirty = true;
        Ok(())
    }

    fn remove(cp: &mut ControlPlane, _: &Self) {
        // The topology stops naming the neighbours before their slots go.
        cp.dirty = true;
        cp.publish_if_dirty();
        let all: Vec<u32> = cp.external.neighbors.keys().copied().collect();
        for ip in all {
            cp.forget_external_neighbor(ip);
        }
    }
}

impl ControlPlane {
    /// A new, unresolved neighbour slot on the external network.
    fn external_neighbor(&mut self, ip: u32) -> Result<NextHopId, ApplyError> {
        let nh = self
            .tables
            .next_hops
            .alloc(IFACE_NONE, NextHopState::action(NextHopKind::Resolve))?;
        self.tables.owners.insert(nh, NextHopOwner::External(ip));
        Ok(nh)
    }

    fn forget_external_neighbor(&mut self, ip: u32) {
        if let Some(nh) = self.external.neighbors.remove(&ip) {
            self.dirty = true;
            self.publish_if_dirty();
            self.free_neighbor_slot(nh);
        }
    }

    /// A direct neighbour on the external subnet, published before a packet is held for it.
    fn add_external_host(&mut self, ip: u32) -> Result<NextHopId, DropReason> {
        if self.external.neighbors.len() > EXTERNAL_HOSTS_MAX {
            return Err(DropReason::ExternalNeighborLimit);
        }
        let nh = self
            .external_neighbor(ip)
            .map_err(|_| DropReason::ExternalNeighborLimit)?;
        self.external.neighbors.insert(ip, nh);
        self.dirty = true;
        self.publish_if_dirty();
        Ok(nh)
    }

    /// This host on the external network, as the workers see it.
    pub(super) fn external_info(&self) -> Option<ExternalInfo> {
        let spec = self.model.external.as_ref()?;
        let port = self.external.port?;
        let gateway = *self.external.neighbors.get(&u32::from(spec.gateway))?;
        Some(ExternalInfo {
            port,
            ip: u32::from(spec.address.ip),
            mac: self.cfg.ports[usize::from(port)].mac,
            subnet: spec.address.subnet(),
            gateway,
        })
    }

    /// Who asks ARP on the external network: this host's external address.
    fn external_asker(ext: &ExternalInfo) -> Asker {
        Asker {
            ports: vec![ext.port],
            src_mac: ext.mac,
            src_ip: ext.ip,
        }
    }

    /// A packet from an instance with a floating IP waits for its next hop on the external
    /// network: the gateway, or `dst` itself on the external subnet (created here).
    pub(super) fn external_miss(
        &mut self,
        topo: &Topology,
        dst: u32,
        now: Nanos,
        solicits: &mut Vec<Solicit>,
    ) -> PuntAction {
        let Some(ext) = topo.external else {
            return PuntAction::Drop(DropReason::Stale);
        };
        let (target, nh) = if ext.subnet.contains(dst) {
            match self.external.neighbors.get(&dst) {
                Some(&nh) => (dst, nh),
                None => match self.add_external_host(dst) {
                    Ok(nh) => (dst, nh),
                    Err(reason) => return PuntAction::Drop(reason),
                },
            }
        } else {
            let gateway = self.model.external.as_ref().map(|e| e.gateway);
            (gateway.map_or(0, u32::from), ext.gateway)
        };
        match self.dp.next_hops.get(nh).state.kind() {
            NextHopKind::Local | NextHopKind::Failed => return PuntAction::Reinject,
            _ => {}
        }
        if self.neighbors.resolver.is_failed(nh) {
            return PuntAction::Reinject;
        }
        solicits.extend(
            self.neighbors
                .resolver
                .start(nh, target, Self::external_asker(&ext), now),
        );
        PuntAction::Hold(nh)
    }

    /// ARP on the external port: replies and requests from external neighbours resolve them;
    /// requests for this host's external address or for a floating IP of an instance on this
    /// host are answered with the external port's MAC. Nothing else is answered: another host
    /// answers for its own floating IPs.
    pub(super) fn arp_external(
        &mut self,
        topo: &Topology,
        input: PortId,
        pkt: &mut PacketBuf<'_>,
        now: Nanos,
    ) -> PuntAction {
        let Some(ext) = topo.external.filter(|e| e.port == input) else {
            return PuntAction::Drop(DropReason::PortNotAttached);
        };
        let Some(arp) = ArpFields::of(pkt) else {
            return PuntAction::Drop(DropReason::ArpMalformed);
        };
        if let Some(&nh) = self.external.neighbors.get(&arp.sender_ip) {
            if arp.sender_mac.is_unicast() {
                self.set_resolved(nh, NextHopState::local(input, arp.sender_mac));
                if !self.neighbors.resolver.confirm(nh, arp.sender_mac, now)
                    && !self.neighbors.resolver.is_incomplete(nh)
                {
                    self.neighbors.resolver.learn(
                        nh,
                        arp.sender_ip,
                        Self::external_asker(&ext),
                        arp.sender_mac,
                        now,
                    );
                }
            }
        }
        let ours = arp.target_ip == ext.ip || topo.fip_by_ip(arp.target_ip).is_some();
        if arp.op == ArpOperation::Request && ours && !arp.gratuitous {
            super::punt::reply_arp(pkt, ext.mac);
            return PuntAction::Reply(input);
        }
        PuntAction::Drop(DropReason::NotForRouter)
    }

    /// Queues a gratuitous ARP for every floating IP that `topo` announces and the previous
    /// topology did not (associated here, or its instance moved here).
    pub(super) fn announce_fips(&mut self, topo: &Topology) {
        let now: BTreeSet<u32> = topo.fips.iter().map(|f| f.fip).collect();
        if let Some(ext) = topo.external {
            for &fip in now.difference(&self.external.announced) {
                self.external.pending.push(Solicit {
                    port: ext.port,
                    frame: gratuitous_arp(ext.mac, fip),
                });
            }
        }
        self.external.announced = now;
    }

    /// The gratuitous ARPs queued since the last call.
    pub(super) fn take_announcements(&mut self) -> Vec<Solicit> {
        std::mem::take(&mut self.external.pending)
    }
}

/// A gratuitous ARP request (RFC 5227 section 3): sender and target are the announced address,
/// broadcast, so that the external network's neighbours update their caches at once.
fn gratuitous_arp(mac: EthernetAddress, ip: u32) -> Vec<u8> {
    arp_request(mac, ip, ip, None)
}
