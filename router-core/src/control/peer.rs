//! The hosts of the fabric: this host (published with the topology) and its peers. A peer has
//! an id and is reached through an underlay neighbour (its VTEP, or the underlay gateway when
//! one is configured), shared by the peers behind it and resolved by ARP on the fabric.

use super::capacity::{Fits, Plan, Pool};
use super::{ApplyError, ControlPlane, NextHopOwner, Program};
use crate::ids::{NextHopId, PeerId};
use crate::model::{HostSpec, PeerSpec};
use crate::table::{NextHopKind, NextHopState, IFACE_NONE};

/// What the tables hold for a peer.
#[derive(Clone, Copy, Debug)]
pub(super) struct PeerState {
    pub id: PeerId,
    pub underlay_ip: u32,
}

/// A neighbour on the underlay, shared by the peers reached through it.
#[derive(Clone, Copy, Debug)]
pub(super) struct UnderlayNeighbor {
    pub nh: NextHopId,
    pub peers: u32,
}

/// The host is only published: nothing in the tables depends on it.
impl Program for HostSpec {
    fn plan(_: &ControlPlane, _: Option<&Self>, _: &Self, _: &mut Plan) -> Fits {
        Ok(())
    }

    fn install(cp: &mut ControlPlane, _: Option<&Self>, _: &Self) -> Result<(), ApplyError> {
        cp.dirty = true;
        Ok(())
    }

    fn remove(cp: &mut ControlPlane, _: &Self) {
        cp.dirty = true;
    }
}

impl Program for PeerSpec {
    fn plan(cp: &ControlPlane, old: Option<&Self>, new: &Self, plan: &mut Plan) -> Fits {
        let ip = cp.underlay_ip(new);
        match old {
            None => plan.id(Pool::Peers)?,
            Some(old) if cp.underlay_ip(old) == ip => return Ok(()),
            Some(_) => {}
        }
        plan.underlay(cp, ip)
    }

    fn install(cp: &mut ControlPlane, _: Option<&Self>, new: &Self) -> Result<(), ApplyError> {
        cp.install_peer(new)
    }

    fn remove(cp: &mut ControlPlane, old: &Self) {
        cp.remove_peer(&old.name);
    }
}

impl ControlPlane {
    /// The underlay address a peer is reached through.
    fn underlay_ip(&self, spec: &PeerSpec) -> u32 {
        self.cfg
            .fabric_gateway
            .map_or(u32::from(spec.vtep), u32::from)
    }

    fn install_peer(&mut self, spec: &PeerSpec) -> Result<(), ApplyError> {
        let underlay_ip = self.underlay_ip(spec);
        match self.peers.get(&spec.name).copied() {
            Some(state) => {
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
            None => {
                let id = PeerId::new(self.ids.alloc(&self.qsbr, Pool::Peers)?);
                if let Err(e) = self.underlay_ref(underlay_ip) {
                    self.ids.release(&self.qsbr, Pool::Peers, id);
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
            self.retract(Pool::Peers, state.id);
            self.underlay_unref(state.underlay_ip);
        }
    }

    fn underlay_ref(&mut self, ip: u32) -> Result<(), ApplyError> {
        if let Some(u) = self.neighbors.underlay.get_mut(&ip) {
            u.peers += 1;
            return Ok(());
        }
        let nh = self
            .tables
            .next_hops
            .alloc(IFACE_NONE, NextHopState::action(NextHopKind::Resolve))?;
        self.tables.owners.insert(nh, NextHopOwner::Underlay(ip));
        self.neighbors
            .underlay
            .insert(ip, UnderlayNeighbor { nh, peers: 1 });
        Ok(())
    }

    fn underlay_unref(&mut self, ip: u32) {
        if let Some(u) = self.neighbors.underlay.get_mut(&ip) {
            u.peers -= 1;
            if u.peers == 0 {
                let nh = u.nh;
                self.neighbors.underlay.remove(&ip);
                self.free_neighbor_slot(nh);
            }
        }
    }
}
