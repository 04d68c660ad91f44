//! The benchmark's route sets and the flows that cross them.
//!
//! Every program of a run derives the same routes and destinations from (count, seed): the
//! generator picks its destinations inside the routes, and the harness writes the same routes
//! into `dvrd`'s configuration and l3fwd's rule file. Route sets come from
//! `router_core::lpm::testgen::realistic_routes` (the prefix-length mix of an internet table),
//! minus the prefixes that touch the benchmark's own addresses or addresses a router must not
//! forward.

use std::net::Ipv4Addr;

use router_core::ids::NextHopId;
use router_core::lpm::testgen::{random_addresses_in, realistic_routes};
use router_core::lpm::Prefix;

/// Most flows of a run: the flow number is 16 bits in the stamp.
pub const FLOWS_MAX: usize = 1 << 16;
/// First UDP source port of the flows (ports below are left to well-known services).
pub const SRC_PORT_FIRST: u16 = 1024;
/// UDP source ports used by flows: `SRC_PORT_FIRST..SRC_PORT_FIRST + SRC_PORTS`.
pub const SRC_PORTS: u32 = 60_000;
/// The small route set: one route, in the RFC 2544 benchmarking range (RFC 5735).
pub const SMALL_ROUTE: &str = "198.18.1.0/24";
/// Its counterpart for the reverse direction (the "route pair").
pub const SMALL_ROUTE_REVERSE: &str = "198.18.0.0/24";
/// Seed of the route sets of the benchmark (any fixed value: the same everywhere).
pub const ROUTE_SEED: u64 = 0x5eed_2544;
/// Seed of the destinations picked inside them.
pub const DEST_SEED: u64 = 0xde57_2544;

/// Prefixes a generated route set must not overlap: this benchmark's own networks and VTEPs
/// (10/8, 192.0.2/24, 198.18/15) and addresses routers do not forward (RFC 1812 section
/// 5.3.7: 0/8, 127/8; RFC 3927: 169.254/16).
const RESERVED: [(Ipv4Addr, u8); 6] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
];

fn reserved(p: Prefix) -> bool {
    RESERVED.iter().any(|&(addr, len)| {
        let r = Prefix::new(addr, len).expect("reserved prefixes are valid");
        r.covers(p) || p.covers(r)
    })
}

/// The route set of `count` prefixes: [`SMALL_ROUTE`] for 1, otherwise `count` distinct
/// realistic prefixes, none reserved. Deterministic.
pub fn route_set(count: usize) -> Vec<Prefix> {
    if count <= 1 {
        return vec![SMALL_ROUTE.parse().expect("valid prefix")];
    }
    // About 1 in 200 generated prefixes is reserved: draw a few more and cut.
    let mut routes: Vec<Prefix> = realistic_routes(ROUTE_SEED, count + count / 50 + 16)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|&p| !reserved(p))
        .collect();
    assert!(routes.len() >= count, "not enough unreserved prefixes");
    routes.truncate(count);
    routes
}

/// One flow: where its packets go and the UDP source port that tells it apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSpec {
    /// IPv4 destination (host order).
    pub dst: u32,
    /// UDP source port.
    pub src_port: u16,
}

/// `flows` flows across `routes`: for the small set, every host of the /24 and varying source
/// ports; for a larger set, a random destination inside a random route each (deterministic).
pub fn flows_across(routes: &[Prefix], flows: usize) -> Vec<FlowSpec> {
    let flows = flows.clamp(1, FLOWS_MAX);
    let port = |i: usize| SRC_PORT_FIRST + (i as u32 % SRC_PORTS) as u16;
    if routes.len() == 1 {
        let p = routes[0];
        let hosts = (!p.mask()).saturating_sub(1).max(1);
        return (0..flows)
            .map(|i| FlowSpec {
                dst: p.first() + 1 + (i as u32 % hosts),
                src_port: port(i),
            })
            .collect();
    }
    let hop = NextHopId::new(0).expect("next hop 0 exists");
    let tagged: Vec<(Prefix, NextHopId)> = routes.iter().map(|&p| (p, hop)).collect();
    random_addresses_in(DEST_SEED, &tagged, flows)
        .into_iter()
        .enumerate()
        .map(|(i, dst)| FlowSpec {
            dst,
            src_port: port(i),
        })
        .collect()
}

/// l3fwd's rule file (`--rule_ipv4`): one `R<prefix> <port>` line per route.
pub fn l3fwd_rules(routes: &[Prefix], port: u16) -> String {
    let mut out = String::with_capacity(routes.len() * 24);
    for p in routes {
        out.push_str(&format!("R{p} {port}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_sets_are_deterministic_distinct_and_unreserved() {
        let a = route_set(20_000);
        assert_eq!(a.len(), 20_000);
        assert_eq!(a, route_set(20_000));
        assert!(a.iter().all(|&p| !reserved(p)));
        let distinct: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(distinct.len(), a.len());
        assert_eq!(route_set(1), vec![SMALL_ROUTE.parse().unwrap()]);
    }

    #[test]
    fn flows_land_inside_the_routes() {
        let routes = route_set(5000);
        let flows = flows_across(&routes, 4096);
        assert_eq!(flows.len(), 4096);
        assert!(flows
            .iter()
            .all(|f| routes.iter().any(|p| p.contains(f.dst))));
        let small = flows_across(&route_set(1), 1000);
        let p: Prefix = SMALL_ROUTE.parse().unwrap();
        assert!(small
            .iter()
            .all(|f| p.contains(f.dst) && f.dst != p.first() && f.dst != p.last()));
        assert_eq!(flows_across(&routes, 1 << 20).len(), FLOWS_MAX);
    }

    #[test]
    fn rule_file_lines() {
        let rules = l3fwd_rules(&route_set(1), 1);
        assert_eq!(rules, "R198.18.1.0/24 1\n");
    }
}
