//! What the control thread does with a punted packet: answer ARP for the gateways and the VTEP,
//! answer ARP for known instance ports (ARP suppression: an instance's ARP for another instance
//! never needs to cross the fabric), learn neighbours from replies, answer ICMP echo for the
//! router's own addresses, start resolving a neighbour and hold the packet meanwhile, and plan
//! the replication of broadcast and unknown-unicast frames.
//!
//! Replies are built in place in the punted buffer (no allocation); ARP requests the router
//! originates are returned as frames for the daemon to send.

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::neigh::{Asker, Solicit};
use super::{ControlPlane, NeighborOrigin, NextHopOwner};
use crate::dataplane::{l2_key, L2Location, Nanos, PortRole, Topology};
use crate::engine::check_ipv4;
use crate::ids::{IfaceId, NetworkId, NextHopId, PeerId, PortId, RouterId};
use crate::reason::{DropReason, PuntReason};
use crate::table::{NextHopKind, NextHopState};
use crate::wire::{
    self, icmpv4, ArpOperation, ArpPacket, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    FabricHeader, Icmpv4ErrorRepr, Icmpv4Message, IpProtocol, PacketBuf,
};

const ETH_LEN: usize = wire::ethernet::HEADER_LEN;
/// Shortest Ethernet frame without FCS.
const ETH_MIN_FRAME: usize = 60;

/// What to do with a punted packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PuntAction {
    /// The frame was rewritten in place into a reply: send it on this port.
    Reply(PortId),
    /// Free it and count the reason.
    Drop(DropReason),
    /// It did its job (an ARP reply or announcement that resolved or confirmed a neighbour):
    /// free it and count it as learned, not as a drop.
    Learned,
    /// Keep it until the next hop resolves or fails, then run it through the engine again.
    Hold(NextHopId),
    /// Run it through the engine again now (the next hop changed since it was punted).
    Reinject,
    /// Send copies of it.
    Flood(Flood),
    /// Split it into fragments of at most `mtu` bytes and run each through the engine.
    Fragment { mtu: u16 },
}

/// The copies of a flooded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flood {
    pub network: NetworkId,
    /// Bytes of outer headers to strip from the frame first (a frame from the fabric).
    pub strip: usize,
    /// Local ports that get the frame as it is.
    pub ports: Vec<PortId>,
    /// Peer hosts that get it VXLAN-encapsulated (built with [`ControlPlane::fabric_header`]).
    pub peers: Vec<PeerId>,
    pub vni: u32,
}

/// Where and when a punted packet arrived.
#[derive(Clone, Copy)]
struct Arrival<'a> {
    topo: &'a Topology,
    input: PortId,
    /// The role of `input`.
    role: PortRole,
    now: Nanos,
}

/// A packet whose next hop is not resolved, on a network: where to ask, and when.
struct Miss<'a> {
    topo: &'a Topology,
    network: NetworkId,
    now: Nanos,
    /// Receives the ARP requests to send.
    solicits: &'a mut Vec<Solicit>,
}

/// A timer tick's work for the daemon.
#[derive(Debug, Default)]
pub struct Tick {
    /// ARP requests to send. What happened to next hops that packets wait for is reported by
    /// [`ControlPlane::hold_events`].
    pub solicits: Vec<Solicit>,
}

impl ControlPlane {
    /// Decides what to do with a packet a worker punted for `reason` from port `input`.
    /// `solicits` receives the ARP requests to send.
    pub fn handle_punt(
        &mut self,
        pkt: &mut PacketBuf<'_>,
        input: PortId,
        reason: PuntReason,
        now: Nanos,
        solicits: &mut Vec<Solicit>,
    ) -> PuntAction {
        let topo = Arc::clone(&self.dp.topology.load());
        if pkt.len() < ETH_LEN {
            return PuntAction::Drop(DropReason::FrameTruncated);
        }
        let at = Arrival {
            topo: &topo,
            input,
            role: topo.port(input).map_or(PortRole::Unused, |p| p.role),
            now,
        };
        let action = self.decide(at, pkt, reason, solicits);
        if let PuntAction::Hold(nh) = action {
            self.neighbors.waits.wait(nh);
        }
        action
    }

    fn decide(
        &mut self,
        at: Arrival<'_>,
        pkt: &mut PacketBuf<'_>,
        reason: PuntReason,
        solicits: &mut Vec<Solicit>,
    ) -> PuntAction {
        let Arrival {
            topo, input, role, ..
        } = at;
        match (reason, role) {
            (_, PortRole::Unused) => PuntAction::Drop(DropReason::PortNotAttached),
            (PuntReason::Arp, PortRole::Fabric) => self.arp_fabric(at, pkt),
            (PuntReason::Arp, PortRole::Local { network }) => self.arp_local(at, pkt, network),
            (PuntReason::Arp, PortRole::External) => self.arp_external(topo, input, pkt, at.now),
            (PuntReason::ExternalMiss, PortRole::Local { .. }) => match ipv4_destination(pkt) {
                Some(dst) => self.external_miss(topo, dst, at.now, solicits),
                None => PuntAction::Drop(DropReason::Ipv4Truncated),
            },
            (PuntReason::LocalDelivery, _) => self.local_delivery(at, pkt),
            (PuntReason::NeighborMiss | PuntReason::UnderlayMiss, PortRole::Local { network }) => {
                let miss = Miss {
                    topo,
                    network,
                    now: at.now,
                    solicits,
                };
                if reason == PuntReason::NeighborMiss {
                    self.neighbor_miss(pkt, miss)
                } else {
                    self.underlay_miss(pkt, miss)
                }
            }
            (PuntReason::Flood, PortRole::Local { network }) => {
                self.flood_local(topo, network, input)
            }
            (PuntReason::Flood, PortRole::Fabric) => self.flood_from_fabric(topo, pkt),
            (PuntReason::Fragment, PortRole::Local { .. } | PortRole::External) => {
                self.fragment(topo, pkt, role)
            }
            (PuntReason::NeighborMiss | PuntReason::UnderlayMiss, PortRole::Fabric)
            | (PuntReason::Fragment | PuntReason::ExternalMiss, PortRole::Fabric)
            | (
                PuntReason::NeighborMiss
                | PuntReason::UnderlayMiss
                | PuntReason::Flood
                | PuntReason::ExternalMiss,
                PortRole::External,
            ) => PuntAction::Drop(DropReason::NotForRouter),
        }
    }

    /// ARP on the fabric: requests for our VTEP, replies from underlay neighbours.
    fn arp_fabric(&mut self, at: Arrival<'_>, pkt: &mut PacketBuf<'_>) -> PuntAction {
        let Arrival {
            topo, input, now, ..
        } = at;
        let (Some(host), Some(port)) = (topo.host, topo.port(input)) else {
            return PuntAction::Drop(DropReason::NoFabric);
        };
        let Some(arp) = ArpFields::of(pkt) else {
            return PuntAction::Drop(DropReason::ArpMalformed);
        };
        // Whatever the operation, a known underlay neighbour speaking confirms itself.
        let mut learned = false;
        if let Some(u) = self.neighbors.underlay.get(&arp.sender_ip).copied() {
            if arp.sender_mac.is_unicast() {
                learned = true;
                self.set_resolved(u.nh, NextHopState::local(input, arp.sender_mac));
                let asker = Asker {
                    ports: vec![input],
                    src_mac: port.mac,
                    src_ip: host.vtep,
                };
                if !self.neighbors.resolver.confirm(u.nh, arp.sender_mac, now)
                    && !self.neighbors.resolver.is_incomplete(u.nh)
                {
                    self.neighbors
                        .resolver
                        .learn(u.nh, arp.sender_ip, asker, arp.sender_mac, now);
                }
            }
        }
        if arp.op == ArpOperation::Request && arp.target_ip == host.vtep {
            reply_arp(pkt, port.mac);
            return PuntAction::Reply(input);
        }
        // A reply from a peer's VTEP (what resolves the underlay) did its job; a request for
        // another VTEP is not for this host, whatever it taught us about its sender.
        if learned && arp.op != ArpOperation::Request {
            return PuntAction::Learned;
        }
        PuntAction::Drop(DropReason::NotForRouter)
    }

    /// ARP from an instance network.
    fn arp_local(
        &mut self,
        at: Arrival<'_>,
        pkt: &mut PacketBuf<'_>,
        network: NetworkId,
    ) -> PuntAction {
        let Arrival {
            topo, input, now, ..
        } = at;
        let Some(arp) = ArpFields::of(pkt) else {
            return PuntAction::Drop(DropReason::ArpMalformed);
        };
        if !arp.sender_mac.is_unicast() {
            return PuntAction::Drop(DropReason::ArpMalformed);
        }
        let Some(net) = topo.network(network) else {
            return PuntAction::Drop(DropReason::Stale);
        };
        let gw = net.iface.and_then(|i| topo.iface(i).map(|g| (i, *g)));

        // Learn or confirm a dynamic neighbour (never a permanent one) from what it says.
        let learned = gw.is_some_and(|(iface, g)| {
            g.subnet.contains(arp.sender_ip)
                && arp.sender_ip != g.ip
                && self.learn_from_arp(g.router, iface, arp.sender_ip, arp.sender_mac, input, now)
        });
        if arp.op != ArpOperation::Request || arp.gratuitous {
            // A reply or an announcement: consumed if it told us about a neighbour we track.
            return if learned {
                PuntAction::Learned
            } else {
                PuntAction::Drop(DropReason::NotForRouter)
            };
        }
        // The gateway answers for itself, on every host, and its ARP never leaves the host.
        if let Some((_, g)) = gw {
            if arp.target_ip == g.ip {
                reply_arp(pkt, g.mac);
                return PuntAction::Reply(input);
            }
        }
        // ARP suppression: answer for an instance port we know, unless it sits behind the
        // port the request came from (it answers for itself there).
        let network_name = self.network_name(network).map(str::to_string);
        if let Some(port) =
            network_name.and_then(|n| self.model.ports.get(&(n, Ipv4Addr::from(arp.target_ip))))
        {
            let location = self
                .dp
                .l2
                .get(l2_key(network, port.mac.to_u64()))
                .and_then(L2Location::decode);
            if location == Some(L2Location::Local(input)) {
                return PuntAction::Drop(DropReason::NotForRouter);
            }
            reply_arp(pkt, port.mac.0);
            return PuntAction::Reply(input);
        }
        self.flood_local(topo, network, input)
    }

    /// Resolves or confirms the dynamic neighbour `ip` of `router` at `mac` behind `input`.
    /// False when the router tracks no such neighbour or it is permanent (nothing changed).
    fn learn_from_arp(
        &mut self,
        router: RouterId,
        iface: IfaceId,
        ip: u32,
        mac: EthernetAddress,
        input: PortId,
        now: Nanos,
    ) -> bool {
        let Some(n) = self.neighbors.entries.get(&(router, ip)).copied() else {
            return false;
        };
        if n.origin == NeighborOrigin::Static {
            return false;
        }
        let asker = self.asker_for(iface).unwrap_or(Asker {
            ports: vec![input],
            src_mac: mac,
            src_ip: 0,
        });
        self.set_resolved(n.nh, NextHopState::local(input, mac));
        if let Some(entry) = self.neighbors.entries.get_mut(&(router, ip)) {
            entry.origin = NeighborOrigin::Dynamic;
        }
        if !self.neighbors.resolver.confirm(n.nh, mac, now)
            && !self.neighbors.resolver.is_incomplete(n.nh)
        {
            self.neighbors.resolver.learn(n.nh, ip, asker, mac, now);
        }
        if !n.host_route {
            if let Some(name) = self.router_name(router).map(str::to_string) {
                if self.lpm_insert(&name, super::host_prefix(ip), n.nh).is_ok() {
                    if let Some(entry) = self.neighbors.entries.get_mut(&(router, ip)) {
                        entry.host_route = true;
                    }
                }
            }
        }
        true
    }

    /// Where and as whom to ARP for neighbours of an interface.
    pub(super) fn asker_for(&self, iface: IfaceId) -> Option<Asker> {
        let topo = self.dp.topology.load();
        let g = topo.iface(iface)?;
        let net = topo.network(g.network)?;
        Some(Asker {
            ports: net.local_ports.clone(),
            src_mac: g.mac,
            src_ip: g.ip,
        })
    }

    /// ICMP echo to an address of the input network's router (any of its interfaces) or to the
    /// VTEP gets a reply from that address; UDP gets port unreachable; anything else is not for
    /// a router.
    fn local_delivery(&mut self, at: Arrival<'_>, pkt: &mut PacketBuf<'_>) -> PuntAction {
        let Arrival {
            topo, input, role, ..
        } = at;
        let Ok(total_len) = check_ipv4(&pkt.frame()[ETH_LEN..]) else {
            return PuntAction::Drop(DropReason::Ipv4Truncated);
        };
        pkt.truncate(ETH_LEN + total_len);
        let ip = wire::Ipv4Packet::new_unchecked(&pkt.frame()[ETH_LEN..]);
        let dst = ip.dst_addr_u32();
        let ours = match role {
            PortRole::Fabric => topo.host.is_some_and(|h| h.vtep == dst),
            PortRole::Local { network } => is_router_address(topo, network, dst),
            PortRole::External => topo.external.is_some_and(|e| e.ip == dst),
            PortRole::Unused => false,
        };
        if !ours || ip.is_fragment() {
            return PuntAction::Drop(DropReason::NotForRouter);
        }
        match ip.protocol() {
            IpProtocol::Icmp => {
                let header_len = ip.header_len();
                let Ok(icmp) = wire::Icmpv4Packet::new_checked(ip.payload()) else {
                    return PuntAction::Drop(DropReason::IcmpIgnored);
                };
                if icmp.msg_type() != Icmpv4Message::EchoRequest || !icmp.verify_checksum() {
                    return PuntAction::Drop(DropReason::IcmpIgnored);
                }
                let f = pkt.frame_mut();
                swap_macs(f);
                let mut ipm = wire::Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]);
                let (src, dst) = (ipm.src_addr(), ipm.dst_addr());
                ipm.set_src_addr(dst);
                ipm.set_dst_addr(src);
                ipm.set_ttl(wire::ipv4::ORIGINATED_TTL);
                ipm.fill_checksum();
                let mut icmp = wire::Icmpv4Packet::new_unchecked(
                    &mut f[ETH_LEN + header_len..ETH_LEN + total_len],
                );
                icmp.reply_in_place();
                PuntAction::Reply(input)
            }
            IpProtocol::Udp if role != PortRole::Fabric => {
                // RFC 1122 section 3.2.2.1 / RFC 1812 section 4.3.2: nothing listens here.
                if !icmpv4::icmp_error_allowed(&ip) {
                    return PuntAction::Drop(DropReason::NotForRouter);
                }
                // The error comes from the gateway the datagram was addressed to.
                let error = Icmpv4ErrorRepr {
                    src_mac: EthernetFrame::new_unchecked(pkt.frame()).dst_addr(),
                    src_ip: Ipv4Addr::from(dst),
                    msg_type: Icmpv4Message::DstUnreachable,
                    code: 3,
                    next_hop_mtu: 0,
                    ident: 0,
                };
                if !error.emit_in_place(pkt) {
                    return PuntAction::Drop(DropReason::NoHeadroom);
                }
                PuntAction::Reply(input)
            }
            _ => PuntAction::Drop(DropReason::NotForRouter),
        }
    }

    /// A destination without a resolved neighbour: start ARP and hold the packet.
    fn neighbor_miss(&mut self, pkt: &PacketBuf<'_>, miss: Miss<'_>) -> PuntAction {
        let Some((iface_id, router, dst)) = self.routed_destination(miss.topo, pkt, miss.network)
        else {
            return PuntAction::Drop(DropReason::Stale);
        };
        let Some(name) = self.router_name(router).map(str::to_string) else {
            return PuntAction::Drop(DropReason::Stale);
        };
        let hop = self
            .routers
            .get(&name)
            .and_then(|r| r.lpm.lpm().lookup(dst));
        let Some(hop) = hop else {
            return PuntAction::Reinject;
        };
        let (nh, target_ip, iface) = match self.tables.owners.get(&hop).copied() {
            Some(NextHopOwner::Connected(i)) => {
                // The destination itself is the neighbour: a dynamic entry and its /32.
                let nh = match self.neighbors.entries.get(&(router, dst)) {
                    Some(n) => n.nh,
                    None => match self.learn_destination(&name, (router, dst), i) {
                        Ok(nh) => nh,
                        Err(_) => return PuntAction::Drop(DropReason::HostUnreachable),
                    },
                };
                (nh, dst, i)
            }
            Some(NextHopOwner::Neighbor { ip, .. }) => {
                let i = self
                    .neighbors
                    .entries
                    .get(&(router, ip))
                    .map_or(iface_id, |n| n.iface);
                (hop, ip, i)
            }
            _ => return PuntAction::Reinject,
        };
        match self.dp.next_hops.get(nh).state.kind() {
            NextHopKind::Local | NextHopKind::Remote | NextHopKind::Failed => {
                return PuntAction::Reinject
            }
            _ => {}
        }
        if self.neighbors.resolver.is_failed(nh) {
            return PuntAction::Reinject;
        }
        if let Some(asker) = self.asker_for(iface) {
            miss.solicits.extend(
                self.neighbors
                    .resolver
                    .start(nh, target_ip, asker, miss.now),
            );
        }
        PuntAction::Hold(nh)
    }

    /// A destination on a connected subnet becomes a dynamic neighbour with its own /32 (if the
    /// table has room for it; without, packets still find the neighbour's slot by the subnet).
    fn learn_destination(
        &mut self,
        router_name: &str,
        key: (RouterId, u32),
        iface: IfaceId,
    ) -> Result<NextHopId, super::ApplyError> {
        let pending = NextHopState::action(NextHopKind::Pending);
        let n = self.new_neighbor(key, iface, pending, NeighborOrigin::Dynamic)?;
        if self
            .lpm_insert(router_name, super::host_prefix(key.1), n.nh)
            .is_ok()
        {
            if let Some(n) = self.neighbors.entries.get_mut(&key) {
                n.host_route = true;
            }
        }
        Ok(n.nh)
    }

    /// The underlay neighbour toward a peer is not resolved: ARP for it on the fabric.
    fn underlay_miss(&mut self, pkt: &PacketBuf<'_>, miss: Miss<'_>) -> PuntAction {
        // The peer is named by the routed next hop, or by the L2 entry of a bridged frame.
        let dst_mac = wire::EthernetFrame::new_unchecked(pkt.frame()).dst_addr();
        let peer = match self
            .dp
            .l2
            .get(l2_key(miss.network, dst_mac.to_u64()))
            .and_then(L2Location::decode)
        {
            Some(L2Location::Remote(p)) => Some(p),
            _ => self
                .routed_destination(miss.topo, pkt, miss.network)
                .and_then(|(_, router, dst)| {
                    let lpm = miss.topo.router(router)?.lpm.clone();
                    let state = self.dp.next_hops.get(lpm.lookup(dst)?).state;
                    (state.kind() == NextHopKind::Remote).then(|| state.peer())
                }),
        };
        let (Some(peer), Some(host), Some(fabric)) = (
            peer.and_then(|p| miss.topo.peer(p)),
            miss.topo.host,
            miss.topo.fabric,
        ) else {
            return PuntAction::Drop(DropReason::NoFabric);
        };
        let nh = peer.underlay;
        if self.dp.next_hops.get(nh).state.kind() == NextHopKind::Local {
            return PuntAction::Reinject;
        }
        let Some(ip) = self.tables.owners.get(&nh).and_then(|o| match o {
            NextHopOwner::Underlay(ip) => Some(*ip),
            _ => None,
        }) else {
            return PuntAction::Drop(DropReason::Stale);
        };
        let mac = miss
            .topo
            .port(fabric)
            .map_or(EthernetAddress::ZERO, |p| p.mac);
        miss.solicits.extend(self.neighbors.resolver.start(
            nh,
            ip,
            Asker {
                ports: vec![fabric],
                src_mac: mac,
                src_ip: host.vtep,
            },
            miss.now,
        ));
        PuntAction::Hold(nh)
    }

    /// The interface, router and IPv4 destination of a frame routed on `network`.
    pub(super) fn routed_destination(
        &self,
        topo: &Topology,
        pkt: &PacketBuf<'_>,
        network: NetworkId,
    ) -> Option<(IfaceId, RouterId, u32)> {
        let iface = topo.network(network)?.iface?;
        let router = topo.iface(iface)?.router;
        check_ipv4(&pkt.frame()[ETH_LEN..]).ok()?;
        let dst = wire::Ipv4Packet::new_unchecked(&pkt.frame()[ETH_LEN..]).dst_addr_u32();
        Some((iface, router, dst))
    }

    /// A broadcast or unknown unicast from a local port: to the other local ports of the
    /// network and to the peer hosts that have instances on it.
    fn flood_local(&self, topo: &Topology, network: NetworkId, input: PortId) -> PuntAction {
        let Some(net) = topo.network(network) else {
            return PuntAction::Drop(DropReason::Stale);
        };
        let ports: Vec<PortId> = net
            .local_ports
            .iter()
            .copied()
            .filter(|&p| p != input)
            .collect();
        let peers = if topo.fabric.is_some() && topo.host.is_some() {
            net.flood_peers.clone()
        } else {
            Vec::new()
        };
        if ports.is_empty() && peers.is_empty() {
            return PuntAction::Drop(DropReason::NoFloodTarget);
        }
        PuntAction::Flood(Flood {
            network,
            strip: 0,
            ports,
            peers,
            vni: net.vni,
        })
    }

    /// A broadcast from the fabric for a network with several local ports: to each of them
    /// (never back to the fabric).
    fn flood_from_fabric(&self, topo: &Topology, pkt: &PacketBuf<'_>) -> PuntAction {
        let f = pkt.frame();
        let Ok(total_len) = check_ipv4(&f[ETH_LEN..]) else {
            return PuntAction::Drop(DropReason::Ipv4Truncated);
        };
        let ip = wire::Ipv4Packet::new_unchecked(&f[ETH_LEN..ETH_LEN + total_len]);
        let strip =
            ETH_LEN + ip.header_len() + wire::udp::HEADER_LEN + wire::vxlan::VXLAN_HEADER_LEN;
        let Some(vni) = wire::UdpPacket::new_checked(ip.payload())
            .ok()
            .and_then(|u| {
                wire::VxlanPacket::new_checked(u.payload())
                    .ok()
                    .map(|v| v.vni())
            })
        else {
            return PuntAction::Drop(DropReason::VxlanBadHeader);
        };
        let Some((network, net)) = topo
            .vni_to_network
            .get(u64::from(vni))
            .and_then(|n| Some((n, topo.network(n)?)))
        else {
            return PuntAction::Drop(DropReason::UnknownVni);
        };
        if net.local_ports.is_empty() {
            return PuntAction::Drop(DropReason::NoLocalPort);
        }
        PuntAction::Flood(Flood {
            network,
            strip,
            ports: net.local_ports.clone(),
            peers: Vec::new(),
            vni,
        })
    }

    /// The outer headers for sending `frame` to `peer` with `vni`, if the underlay toward it is
    /// resolved (flood copies).
    pub fn fabric_header(
        &self,
        peer: PeerId,
        vni: u32,
        frame: &[u8],
        ident: u16,
    ) -> Option<FabricHeader> {
        let topo = self.dp.topology.load();
        let host = topo.host?;
        let fabric = topo.port(topo.fabric?)?;
        let p = topo.peer(peer)?;
        let underlay = self.dp.next_hops.get(p.underlay).state;
        (underlay.kind() == NextHopKind::Local).then(|| FabricHeader {
            dst_mac: underlay.mac_bytes(),
            src_mac: fabric.mac.0,
            src_vtep: host.vtep,
            dst_vtep: p.vtep,
            vni,
            src_port: wire::vxlan::entropy_src_port(wire::vxlan::flow_hash(frame)),
            ident,
        })
    }
}

/// True when `dst` is an address of the router behind `network`'s gateway, on any of its
/// interfaces. A router answers for all of its addresses whichever interface a packet came in
/// by (the weak host model of RFC 1122 section 3.3.4.2, as Linux and Neutron's router namespace
/// do); the engine delivers them here through the /32 of each interface address.
fn is_router_address(topo: &Topology, network: NetworkId, dst: u32) -> bool {
    let Some(router) = topo
        .network(network)
        .and_then(|n| n.iface)
        .and_then(|i| topo.iface(i))
        .map(|g| g.router)
    else {
        return false;
    };
    topo.ifaces
        .iter()
        .flatten()
        .any(|i| i.router == router && i.ip == dst)
}

/// What the control plane reads from an ARP packet.
#[derive(Clone, Copy)]
pub(super) struct ArpFields {
    pub op: ArpOperation,
    pub sender_ip: u32,
    pub sender_mac: EthernetAddress,
    pub target_ip: u32,
    pub gratuitous: bool,
}

impl ArpFields {
    /// The fields of the ARP packet in `pkt`, if it is one.
    pub(super) fn of(pkt: &PacketBuf<'_>) -> Option<Self> {
        let arp = ArpPacket::new_checked(&pkt.frame()[ETH_LEN..]).ok()?;
        Some(ArpFields {
            op: arp.operation(),
            sender_ip: arp.sender_ip_u32(),
            sender_mac: arp.sender_hw(),
            target_ip: arp.target_ip_u32(),
            gratuitous: arp.is_gratuitous(),
        })
    }
}

/// The destination address of the IPv4 packet in a frame.
fn ipv4_destination(pkt: &PacketBuf<'_>) -> Option<u32> {
    let ip = pkt.frame().get(ETH_LEN..ETH_LEN + wire::ipv4::HEADER_LEN)?;
    Some(wire::Ipv4Packet::new_unchecked(ip).dst_addr_u32())
}

/// Turns an ARP request in place into the reply from `hw` (RFC 826), addressed to the requester.
pub(super) fn reply_arp(pkt: &mut PacketBuf<'_>, hw: EthernetAddress) {
    let f = pkt.frame_mut();
    let requester = EthernetFrame::new_unchecked(&*f).src_addr();
    let mut arp = ArpPacket::new_unchecked(&mut f[ETH_LEN..]);
    arp.reply_in_place(hw);
    write_ethernet(f, requester, hw);
    pkt.truncate(ETH_LEN + wire::arp::PACKET_LEN);
    pad_to_minimum(pkt);
}

/// Ethernet frames are at least 60 bytes: pad with zeroes where the buffer allows.
fn pad_to_minimum(pkt: &mut PacketBuf<'_>) {
    let len = pkt.len();
    if len < ETH_MIN_FRAME && pkt.set_len(ETH_MIN_FRAME) {
        pkt.frame_mut()[len..].fill(0);
    }
}

/// Addresses the frame back to where it came from.
fn swap_macs(f: &mut [u8]) {
    let mut eth = EthernetFrame::new_unchecked(f);
    let (src, dst) = (eth.src_addr(), eth.dst_addr());
    eth.set_src_addr(dst);
    eth.set_dst_addr(src);
}

/// Writes the untagged Ethernet header of an ARP frame from `src` to `dst`.
fn write_ethernet(f: &mut [u8], dst: EthernetAddress, src: EthernetAddress) {
    let repr = EthernetRepr {
        src,
        dst,
        ethertype: EtherType::ARP,
        vlan: None,
    };
    repr.emit(&mut EthernetFrame::new_unchecked(f));
}

/// An ARP request from `src_mac`/`src_ip` for `target_ip`: broadcast, or unicast to `unicast`
/// (a probe of a known neighbour).
pub(crate) fn arp_request(
    src_mac: EthernetAddress,
    src_ip: u32,
    target_ip: u32,
    unicast: Option<EthernetAddress>,
) -> Vec<u8> {
    let mut f = vec![0u8; ETH_MIN_FRAME];
    write_ethernet(
        &mut f,
        unicast.unwrap_or(EthernetAddress::BROADCAST),
        src_mac,
    );
    let repr = wire::ArpRepr {
        operation: ArpOperation::Request,
        source_hw: src_mac,
        source_ip: Ipv4Addr::from(src_ip),
        target_hw: EthernetAddress::ZERO,
        target_ip: Ipv4Addr::from(target_ip),
    };
    repr.emit(&mut ArpPacket::new_unchecked(
        &mut f[ETH_LEN..ETH_LEN + wire::arp::PACKET_LEN],
    ));
    f
}
