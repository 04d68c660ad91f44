//! Words for what the engine reports in ids: trace events, next hops and verdicts, with every
//! router, network, interface, port and peer called by its name.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use lcore_workers::TraceRecord;
use router_core::control::{ControlPlane, NextHopOwner};
use router_core::dataplane::L2Location;
use router_core::engine::trace::TraceEvent;
use router_core::engine::Verdict;
use router_core::ids::{IfaceId, NetworkId, NextHopId, PeerId, PortId, RouterId};
use router_core::reason::DropReason;
use router_core::table::{NextHopKind, NextHopState, IFACE_NONE};
use router_core::wire::EthernetAddress;

use super::view::TracePacket;

/// One traced packet in words.
pub fn trace_packet(cp: &ControlPlane, r: &TraceRecord) -> TracePacket {
    TracePacket {
        worker: r.worker,
        port: port(cp, r.port),
        time_ns: r.time_ns,
        len: r.len,
        steps: r.events.iter().map(|e| event(cp, e)).collect(),
        steps_lost: r.events_lost,
        verdict: verdict(cp, r.verdict),
    }
}

/// What the engine decided in the end.
pub fn verdict(cp: &ControlPlane, v: Verdict) -> String {
    match v {
        Verdict::Forward(p) => format!("forward to port {}", port(cp, p)),
        Verdict::Punt(r) => format!(
            "punt to the control thread: {} ({})",
            r.name(),
            r.description()
        ),
        Verdict::Drop(r) => format!("drop: {} ({})", r.name(), r.description()),
    }
}

fn port(cp: &ControlPlane, id: PortId) -> String {
    named(cp.port_name(id), id)
}

fn router(cp: &ControlPlane, id: RouterId) -> String {
    named(cp.router_name(id), id)
}

fn network(cp: &ControlPlane, id: NetworkId) -> String {
    named(cp.network_name(id), id)
}

fn peer(cp: &ControlPlane, id: PeerId) -> String {
    named(cp.peer_name(id), id)
}

/// The object's name, or `#id` for an id the control plane does not know (any more).
fn named(name: Option<&str>, id: impl std::fmt::Display) -> String {
    name.map_or_else(|| format!("#{id}"), str::to_string)
}

fn iface(cp: &ControlPlane, id: IfaceId) -> String {
    if id == IFACE_NONE {
        return "the underlay".to_string();
    }
    cp.iface_names(id).map_or_else(
        || format!("interface #{id}"),
        |(r, n)| format!("interface {r}/{n}"),
    )
}

fn ethertype(t: u16) -> &'static str {
    match t {
        0x0800 => "ipv4",
        0x0806 => "arp",
        0x86dd => "ipv6",
        0x8100 => "vlan",
        _ => "other",
    }
}

fn protocol(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        other => format!("proto {other}"),
    }
}

/// One trace event in words.
pub fn event(cp: &ControlPlane, e: &TraceEvent) -> String {
    match *e {
        TraceEvent::Ethernet {
            src,
            dst,
            ethertype: t,
        } => format!("ethernet {src} > {dst} type {t:#06x} ({})", ethertype(t)),
        TraceEvent::Ipv4 {
            src,
            dst,
            protocol: p,
            ttl,
            total_len,
        } => format!(
            "ipv4 {src} > {dst} {} ttl {ttl} len {total_len}",
            protocol(p)
        ),
        TraceEvent::Network { network: n, router } => input_network(cp, n, router),
        TraceEvent::Lookup {
            router,
            dst,
            next_hop,
        } => lookup(cp, router, dst, next_hop),
        TraceEvent::NextHop {
            id,
            state,
            iface: i,
        } => format!(
            "next hop {id}: {} via {}",
            next_hop(cp, id, state),
            iface(cp, i)
        ),
        TraceEvent::L2 {
            network: n,
            mac,
            location,
        } => l2_lookup(cp, n, mac, location),
        TraceEvent::Decap {
            peer: h,
            vni,
            network: n,
            routed,
        } => format!(
            "vxlan decapsulated from peer {} vni {vni} network {}: {}",
            peer(cp, h),
            network(cp, n),
            if routed {
                "routed by the peer (source is its DVR MAC): deliver, gateway MAC restored"
            } else {
                "bridged"
            }
        ),
        TraceEvent::Encap {
            peer: h,
            vni,
            src_port,
        } => format!(
            "vxlan encapsulated to peer {} vni {vni} udp source port {src_port}",
            peer(cp, h)
        ),
        TraceEvent::Rewrite { src, dst, ttl } => {
            format!("rewrite ethernet {src} > {dst}, ttl {ttl}")
        }
        TraceEvent::IcmpError {
            msg_type,
            code,
            mtu,
        } => icmp_error(msg_type, code, mtu),
        TraceEvent::Nat { source, from, to } => format!(
            "floating IP: {} {from} -> {to}",
            if source {
                "source translated (SNAT)"
            } else {
                "destination translated (DNAT)"
            }
        ),
    }
}

fn input_network(cp: &ControlPlane, n: NetworkId, r: Option<RouterId>) -> String {
    match r {
        Some(r) => format!("input network {}, router {}", network(cp, n), router(cp, r)),
        None => format!("input network {}, no router", network(cp, n)),
    }
}

fn lookup(cp: &ControlPlane, r: RouterId, dst: Ipv4Addr, nh: Option<NextHopId>) -> String {
    match nh {
        Some(nh) => format!("route lookup in {} for {dst}: next hop {nh}", router(cp, r)),
        None => format!("route lookup in {} for {dst}: no route", router(cp, r)),
    }
}

fn l2_lookup(
    cp: &ControlPlane,
    n: NetworkId,
    mac: EthernetAddress,
    location: Option<L2Location>,
) -> String {
    let at = match location {
        Some(L2Location::Local(p)) => format!("local port {}", port(cp, p)),
        Some(L2Location::Remote(h)) => format!("peer {}", peer(cp, h)),
        None => "unknown (flood)".to_string(),
    };
    format!("l2 lookup in network {} for {mac}: {at}", network(cp, n))
}

fn icmp_error(msg_type: u8, code: u8, mtu: u16) -> String {
    let mut s = format!(
        "turned into icmp error type {msg_type} code {code} ({})",
        icmp_name(msg_type, code)
    );
    if mtu != 0 {
        let _ = write!(s, " mtu {mtu}");
    }
    s
}

fn icmp_name(t: u8, code: u8) -> &'static str {
    match (t, code) {
        (3, 0) => "net unreachable",
        (3, 1) => "host unreachable",
        (3, 4) => "fragmentation needed",
        (3, _) => "destination unreachable",
        (11, _) => "time exceeded",
        (12, _) => "parameter problem",
        _ => "other",
    }
}

/// Where a resolved neighbour is, by name (`local port red`, `peer host-b`); `None` for a
/// next hop that is not a resolved neighbour.
pub fn location(cp: &ControlPlane, nh: NextHopId) -> Option<String> {
    let state = cp.dataplane().next_hops.get(nh).state;
    match state.kind() {
        NextHopKind::Local => Some(format!("local port {}", port(cp, state.port()))),
        NextHopKind::Remote => Some(format!("peer {}", peer(cp, state.peer()))),
        _ => None,
    }
}

/// What next hop `nh` in state `state` does, with its neighbour's address when it has one.
pub fn next_hop(cp: &ControlPlane, nh: NextHopId, state: NextHopState) -> String {
    let owner = cp.next_hop_owner(nh);
    let neighbor = match owner {
        Some(NextHopOwner::Neighbor { ip, .. }) | Some(NextHopOwner::Underlay(ip)) => {
            Some(Ipv4Addr::from(ip))
        }
        _ => None,
    };
    let who = neighbor.map_or_else(String::new, |ip| format!("neighbour {ip} "));
    match state.kind() {
        NextHopKind::Local => format!(
            "{who}at {} behind local port {}",
            state.mac(),
            port(cp, state.port())
        ),
        NextHopKind::Remote => format!(
            "{who}at {} on peer {} (over the fabric)",
            state.mac(),
            peer(cp, state.peer())
        ),
        NextHopKind::Resolve => match owner {
            Some(NextHopOwner::Underlay(ip)) => format!(
                "underlay neighbour {} (to resolve by ARP)",
                Ipv4Addr::from(ip)
            ),
            _ => "connected subnet: resolve the destination by ARP".to_string(),
        },
        NextHopKind::Pending => format!("{who}being resolved by ARP (packets held)"),
        NextHopKind::Failed => format!("{who}did not answer ARP (ICMP host unreachable)"),
        NextHopKind::LocalDelivery => "the router's own address (local delivery)".to_string(),
        NextHopKind::Blackhole => {
            let reason = state.drop_reason().map_or("unknown", DropReason::name);
            format!("drop ({reason})")
        }
        NextHopKind::Empty => "an empty slot (the entry was just deleted)".to_string(),
    }
}
