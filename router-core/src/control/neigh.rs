//! Neighbour resolution by ARP (RFC 826), with the states of RFC 4861 section 7.3.2 that
//! routers use for IPv4 too: incomplete, reachable, stale, probe, failed. Time is an argument.
//!
//! Only dynamic neighbours go through this: instance ports are permanent entries that ARP never
//! changes. The data path keeps forwarding to a stale or probed neighbour with the MAC it has;
//! only an incomplete or failed one stops traffic (held, then answered with ICMP host
//! unreachable).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::Serialize;

use super::holds::{HoldEvent, Waits};
use super::{ApplyError, ControlPlane, NeighborOrigin, NextHopOwner, Tick};
use crate::dataplane::Nanos;
use crate::ids::{IfaceId, RouterId};
use crate::ids::{NextHopId, PortId};
use crate::table::{NextHopKind, NextHopState};
use crate::wire::EthernetAddress;

const MS: Nanos = 1_000_000;

/// Timers and limits of neighbour resolution.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NeighborConfig {
    /// How long a confirmed neighbour is reachable before it goes stale.
    pub reachable_ms: u64,
    /// Time between ARP requests while resolving or probing.
    pub retrans_ms: u64,
    /// ARP requests before a neighbour is declared failed.
    pub probes_max: u32,
    /// How long a failed neighbour is answered with ICMP host unreachable before it is retried.
    pub failed_ms: u64,
    /// How long an unused stale neighbour is kept.
    pub stale_ms: u64,
    /// Packets held per unresolved neighbour.
    pub hold_max: usize,
}

impl Default for NeighborConfig {
    fn default() -> Self {
        NeighborConfig {
            reachable_ms: 30_000,
            retrans_ms: 1_000,
            probes_max: 3,
            failed_ms: 20_000,
            stale_ms: 60_000,
            hold_max: 256,
        }
    }
}

/// The resolution state of a dynamic neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeighborState {
    /// ARP requests sent, no answer yet (packets are held).
    Incomplete,
    /// Confirmed recently.
    Reachable,
    /// Not confirmed recently; still used for forwarding.
    Stale,
    /// In use while stale: unicast ARP requests to confirm it.
    Probe,
    /// No answer: packets get ICMP host unreachable.
    Failed,
    /// A permanent entry (instance port).
    Permanent,
    /// Referenced by a route, not resolved yet.
    Unresolved,
}

/// An ARP request to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Solicit {
    pub port: PortId,
    /// The whole frame (padded to the Ethernet minimum).
    pub frame: Vec<u8>,
}

/// Where and as whom to ask for a neighbour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Asker {
    pub ports: Vec<PortId>,
    pub src_mac: EthernetAddress,
    pub src_ip: u32,
}

#[derive(Clone, Debug)]
struct Resolution {
    ip: u32,
    asker: Asker,
    state: NeighborState,
    deadline: Nanos,
    probes: u32,
    /// When the state last changed.
    since: Nanos,
    mac: EthernetAddress,
}

/// What a timer tick asks the control plane to do.
#[derive(Debug, Default)]
pub(crate) struct TickOutcome {
    pub solicits: Vec<Solicit>,
    /// Neighbours that did not answer: mark failed (held packets get ICMP host unreachable).
    pub failed: Vec<NextHopId>,
    /// Failed or unused stale neighbours to forget.
    pub expired: Vec<NextHopId>,
}

/// An operator's view of one neighbour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NeighborView {
    pub router: String,
    pub ip: Ipv4Addr,
    pub mac: Option<String>,
    pub state: NeighborState,
    /// "local port N", "peer N", or what the next hop does.
    pub location: String,
    /// Milliseconds since the state last changed (dynamic neighbours).
    pub age_ms: Option<u64>,
    /// Routes using this neighbour as their gateway.
    pub routes: u32,
    pub next_hop: NextHopId,
}

/// The resolution state of every dynamic neighbour, by next hop.
#[derive(Debug)]
pub(super) struct Neighbors {
    cfg: NeighborConfig,
    entries: HashMap<NextHopId, Resolution>,
}

impl Neighbors {
    pub fn new(cfg: NeighborConfig) -> Self {
        Neighbors {
            cfg,
            entries: HashMap::new(),
        }
    }

    pub fn config(&self) -> &NeighborConfig {
        &self.cfg
    }

    /// Starts resolving `ip` for next hop `nh` unless that is under way. Returns the requests
    /// to send now.
    pub fn start(&mut self, nh: NextHopId, ip: u32, asker: Asker, now: Nanos) -> Vec<Solicit> {
        if let Some(r) = self.entries.get(&nh) {
            if matches!(r.state, NeighborState::Incomplete | NeighborState::Failed) {
                return Vec::new();
            }
        }
        let solicits = solicit(&asker, ip, None);
        self.entries.insert(
            nh,
            Resolution {
                ip,
                asker,
                state: NeighborState::Incomplete,
                deadline: now + self.cfg.retrans_ms * MS,
                probes: 1,
                since: now,
                mac: EthernetAddress::ZERO,
            },
        );
        solicits
    }

    /// True while `nh` is being resolved (packets for it are held).
    pub fn is_incomplete(&self, nh: NextHopId) -> bool {
        self.entries
            .get(&nh)
            .is_some_and(|r| r.state == NeighborState::Incomplete)
    }

    /// True while `nh` failed (packets for it get ICMP host unreachable).
    pub fn is_failed(&self, nh: NextHopId) -> bool {
        self.entries
            .get(&nh)
            .is_some_and(|r| r.state == NeighborState::Failed)
    }

    /// An ARP reply (or request) from the neighbour confirmed it at `mac`. Returns true if the
    /// neighbour was waiting (its held packets can go now).
    pub fn confirm(&mut self, nh: NextHopId, mac: EthernetAddress, now: Nanos) -> bool {
        let Some(r) = self.entries.get_mut(&nh) else {
            return false;
        };
        let was_waiting = matches!(r.state, NeighborState::Incomplete | NeighborState::Failed);
        r.state = NeighborState::Reachable;
        r.deadline = now + self.cfg.reachable_ms * MS;
        r.probes = 0;
        r.since = now;
        r.mac = mac;
        was_waiting
    }

    /// Registers a neighbour learned without asking (e.g. from a request it sent us).
    pub fn learn(
        &mut self,
        nh: NextHopId,
        ip: u32,
        asker: Asker,
        mac: EthernetAddress,
        now: Nanos,
    ) {
        self.entries.insert(
            nh,
            Resolution {
                ip,
                asker,
                state: NeighborState::Reachable,
                deadline: now + self.cfg.reachable_ms * MS,
                probes: 0,
                since: now,
                mac,
            },
        );
    }

    /// Forgets a neighbour (deleted, or became permanent).
    pub fn forget(&mut self, nh: NextHopId) {
        self.entries.remove(&nh);
    }

    /// Runs the timers. `used(nh)` tells whether the data path used a neighbour since the last
    /// call (and clears that).
    pub fn tick(&mut self, now: Nanos, mut used: impl FnMut(NextHopId) -> bool) -> TickOutcome {
        let mut out = TickOutcome::default();
        let cfg = &self.cfg;
        for (&nh, r) in &mut self.entries {
            // A stale neighbour in use is confirmed at once, without waiting for its deadline.
            if r.state == NeighborState::Stale && used(nh) {
                r.state = NeighborState::Probe;
                r.since = now;
                r.probes = 1;
                r.deadline = now + cfg.retrans_ms * MS;
                out.solicits.extend(solicit(&r.asker, r.ip, Some(r.mac)));
                continue;
            }
            if now < r.deadline {
                continue;
            }
            match r.state {
                NeighborState::Incomplete | NeighborState::Probe if r.probes < cfg.probes_max => {
                    let unicast = (r.state == NeighborState::Probe).then_some(r.mac);
                    out.solicits.extend(solicit(&r.asker, r.ip, unicast));
                    r.probes += 1;
                    r.deadline = now + cfg.retrans_ms * MS;
                }
                NeighborState::Incomplete | NeighborState::Probe => {
                    r.state = NeighborState::Failed;
                    r.since = now;
                    r.deadline = now + cfg.failed_ms * MS;
                    out.failed.push(nh);
                }
                NeighborState::Reachable => {
                    r.since = now;
                    if used(nh) {
                        r.state = NeighborState::Probe;
                        r.probes = 1;
                        r.deadline = now + cfg.retrans_ms * MS;
                        out.solicits.extend(solicit(&r.asker, r.ip, Some(r.mac)));
                    } else {
                        r.state = NeighborState::Stale;
                        r.deadline = now + cfg.stale_ms * MS;
                    }
                }
                NeighborState::Stale => out.expired.push(nh),
                NeighborState::Failed => out.expired.push(nh),
                NeighborState::Permanent | NeighborState::Unresolved => {}
            }
        }
        for nh in &out.expired {
            self.entries.remove(nh);
        }
        out
    }

    /// The operator's view of a neighbour whose next hop is in `state`.
    pub fn view(&self, known: Known, state: NextHopState, now: Nanos) -> NeighborView {
        let Known {
            router,
            ip,
            nh,
            origin,
            routes,
        } = known;
        let res = self.entries.get(&nh);
        let s = match (origin, res) {
            (NeighborOrigin::Static, _) => NeighborState::Permanent,
            (_, Some(r)) => r.state,
            (_, None) => NeighborState::Unresolved,
        };
        let (mac, location) = match state.kind() {
            NextHopKind::Local => (
                Some(state.mac().to_string()),
                format!("local port {}", state.port()),
            ),
            NextHopKind::Remote => (
                Some(state.mac().to_string()),
                format!("peer {}", state.peer()),
            ),
            k => (None, k.name().to_string()),
        };
        NeighborView {
            router,
            ip,
            mac,
            state: s,
            location,
            age_ms: res.map(|r| now.saturating_sub(r.since) / MS),
            routes,
            next_hop: nh,
        }
    }
}

/// A neighbour of a router: a next-hop slot that routes, or the neighbour's own /32, point at.
#[derive(Clone, Copy, Debug)]
pub(super) struct Neighbor {
    pub nh: NextHopId,
    pub iface: IfaceId,
    /// Routes whose next hop this is.
    pub routes: u32,
    pub origin: NeighborOrigin,
    /// The /32 for the neighbour itself is in the LPM.
    pub host_route: bool,
}

/// A neighbour as the control plane knows it, for an operator's view.
pub(super) struct Known {
    pub router: String,
    pub ip: Ipv4Addr,
    pub nh: NextHopId,
    pub origin: NeighborOrigin,
    pub routes: u32,
}

/// Every neighbour the control plane knows: of the routers, by (router, address), and of the
/// underlay, by address; their resolution by ARP; and the next hops packets wait for.
#[derive(Debug)]
pub(super) struct NeighborTable {
    pub entries: HashMap<(RouterId, u32), Neighbor>,
    pub underlay: HashMap<u32, super::peer::UnderlayNeighbor>,
    pub resolver: Neighbors,
    pub waits: Waits,
}

impl NeighborTable {
    pub fn new(cfg: NeighborConfig) -> Self {
        NeighborTable {
            entries: HashMap::new(),
            underlay: HashMap::new(),
            resolver: Neighbors::new(cfg),
            waits: Waits::default(),
        }
    }
}

impl ControlPlane {
    /// A new neighbour `ip` of `router` on `iface`, its slot initialised to `state`.
    pub(super) fn new_neighbor(
        &mut self,
        (router, ip): (RouterId, u32),
        iface: IfaceId,
        state: NextHopState,
        origin: NeighborOrigin,
    ) -> Result<Neighbor, ApplyError> {
        let nh = self.tables.next_hops.alloc(iface, state)?;
        self.tables
            .owners
            .insert(nh, NextHopOwner::Neighbor { router, ip });
        let n = Neighbor {
            nh,
            iface,
            routes: 0,
            origin,
            host_route: false,
        };
        self.neighbors.entries.insert((router, ip), n);
        Ok(n)
    }

    /// Frees the slot of a neighbour that is gone (after its entry and routes): packets held
    /// for it are dropped.
    pub(super) fn free_neighbor_slot(&mut self, nh: NextHopId) {
        self.tables.owners.remove(&nh);
        self.neighbors.resolver.forget(nh);
        self.tables.next_hops.free(nh);
        self.neighbors.waits.report(HoldEvent::Forgotten(nh));
    }

    /// A neighbour is no longer known where it is (its instance port went, or ARP forgot it):
    /// its /32 goes, and it stays, unresolved, only while routes use it as their gateway.
    pub(super) fn unlearn_neighbor(&mut self, router: &str, key: (RouterId, u32), n: Neighbor) {
        if n.host_route {
            let _ = self.lpm_remove(router, super::host_prefix(key.1));
        }
        if n.routes > 0 {
            self.tables
                .next_hops
                .set(n.nh, NextHopState::action(NextHopKind::Pending));
            self.neighbors.entries.insert(
                key,
                Neighbor {
                    origin: NeighborOrigin::Unresolved,
                    host_route: false,
                    ..n
                },
            );
        } else {
            self.neighbors.entries.remove(&key);
            self.free_neighbor_slot(n.nh);
        }
    }

    /// Points a neighbour's slot at where it was found: packets held for it can go.
    pub(super) fn set_resolved(&mut self, nh: NextHopId, state: NextHopState) {
        self.tables.next_hops.set(nh, state);
        self.neighbors.waits.report(HoldEvent::Resolved(nh));
    }

    /// Runs the neighbour timers: ARP retries and probes, failures, expiry. Call every
    /// 100 ms or so.
    pub fn tick(&mut self, now: Nanos) -> Tick {
        self.reclaim();
        let table = Arc::clone(&self.dp.next_hops);
        let out = self.neighbors.resolver.tick(now, |nh| table.take_used(nh));
        let mut tick = Tick {
            solicits: out.solicits,
        };
        tick.solicits.extend(self.take_announcements());
        for nh in out.failed {
            if matches!(
                self.tables.owners.get(&nh),
                Some(NextHopOwner::Neighbor { .. } | NextHopOwner::External(_))
            ) {
                self.tables
                    .next_hops
                    .set(nh, NextHopState::action(NextHopKind::Failed));
            }
            self.neighbors.waits.report(HoldEvent::Failed(nh));
        }
        for nh in out.expired {
            self.expire_neighbor(nh);
        }
        tick
    }

    /// Forgets a dynamic neighbour that failed or went unused: its /32 goes, and a gateway of
    /// routes goes back to unresolved.
    fn expire_neighbor(&mut self, nh: NextHopId) {
        match self.tables.owners.get(&nh).copied() {
            Some(NextHopOwner::Neighbor { router, ip }) => {
                let Some(n) = self.neighbors.entries.get(&(router, ip)).copied() else {
                    return;
                };
                if n.origin == NeighborOrigin::Static {
                    return;
                }
                let name = self.router_name(router).unwrap_or_default().to_string();
                self.unlearn_neighbor(&name, (router, ip), n);
            }
            Some(NextHopOwner::Underlay(_) | NextHopOwner::External(_)) => {
                self.tables
                    .next_hops
                    .set(nh, NextHopState::action(NextHopKind::Resolve));
            }
            _ => {}
        }
    }
}

/// ARP requests for `ip`: broadcast on every port of the asker, or unicast to `mac` (a probe).
fn solicit(asker: &Asker, ip: u32, unicast: Option<EthernetAddress>) -> Vec<Solicit> {
    asker
        .ports
        .iter()
        .map(|&port| Solicit {
            port,
            frame: super::punt::arp_request(asker.src_mac, asker.src_ip, ip, unicast),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::nh;

    fn asker() -> Asker {
        Asker {
            ports: vec![PortId::new(3)],
            src_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            src_ip: 0x0a00_0101,
        }
    }

    const S: Nanos = 1_000_000_000;

    #[test]
    fn unanswered_resolution_fails_after_probes_then_expires() {
        let mut n = Neighbors::new(NeighborConfig::default());
        let sent = n.start(nh(7), 0x0a00_0105, asker(), 0);
        assert_eq!(sent.len(), 1);
        assert!(n.is_incomplete(nh(7)));
        // A second start while incomplete sends nothing.
        assert!(n.start(nh(7), 0x0a00_0105, asker(), 0).is_empty());
        assert!(n.tick(S / 2, |_| false).solicits.is_empty());
        assert_eq!(n.tick(S, |_| false).solicits.len(), 1);
        assert_eq!(n.tick(2 * S, |_| false).solicits.len(), 1);
        let out = n.tick(3 * S, |_| false);
        assert_eq!(out.failed, vec![nh(7)]);
        assert!(n.is_failed(nh(7)));
        // Failed neighbours are answered with host unreachable for failed_ms, then forgotten.
        assert!(n.tick(10 * S, |_| false).expired.is_empty());
        assert_eq!(n.tick(23 * S, |_| false).expired, vec![nh(7)]);
        assert!(!n.is_failed(nh(7)));
    }

    #[test]
    fn reachable_goes_stale_then_probe_when_used_and_back_on_reply() {
        let mut n = Neighbors::new(NeighborConfig::default());
        n.start(nh(1), 5, asker(), 0);
        let mac = EthernetAddress([2, 0, 0, 0, 0, 9]);
        assert!(n.confirm(nh(1), mac, S / 10));
        assert!(!n.is_incomplete(nh(1)));
        // Unused when the reachable time ends: stale, nothing sent.
        let out = n.tick(31 * S, |_| false);
        assert!(out.solicits.is_empty() && out.expired.is_empty());
        // Used while stale: a unicast probe to the known MAC at the next tick.
        let out = n.tick(32 * S, |_| true);
        assert_eq!(out.solicits.len(), 1);
        assert_eq!(&out.solicits[0].frame[0..6], &mac.0);
        assert!(!n.confirm(nh(1), mac, 32 * S + S / 10));
        assert!(n.tick(40 * S, |_| false).solicits.is_empty());
    }

    #[test]
    fn unused_stale_neighbours_expire() {
        let mut n = Neighbors::new(NeighborConfig::default());
        n.learn(nh(4), 9, asker(), EthernetAddress([2, 0, 0, 0, 0, 4]), 0);
        n.tick(30 * S, |_| false);
        assert_eq!(n.tick(90 * S, |_| false).expired, vec![nh(4)]);
    }
}
