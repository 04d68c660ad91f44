//! The benchmark's fleet: hosts, routers with two networks each, instance ports spread over
//! each router's hosts, and the records that describe them under `<prefix>config/`.
//!
//! Everything is drawn from one seeded generator, so a seed gives the same fleet and the same
//! sequence of changes.

use std::net::Ipv4Addr;

use dvr_fleet::Record;
use router_core::lpm::Prefix;
use router_core::model::{
    HostSpec, InstancePortSpec, InterfaceAddr, InterfaceSpec, MacAddr, NetworkSpec, RouteSpec,
    RouterSpec,
};
use router_core::wire::EthernetAddress;

/// Local ports a simulated host may have (the data plane's limit is 64, one is the fabric).
pub const SIM_LOCAL_PORTS_MAX: usize = 62;
/// Instance port addresses of a /24 network: .10 to .253 (.1 is the gateway, .254 the
/// default route's next hop).
const PORTS_PER_NETWORK_MAX: usize = 244;

/// splitmix64: small, fast and good enough to draw a topology and a change sequence.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// What runs a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// A `Member` task of the benchmark.
    Sim,
    /// A real `dvrd` process (its index).
    Real(usize),
    /// A simulated host started after the initial load.
    Join,
}

#[derive(Clone, Debug)]
pub struct HostDef {
    pub name: String,
    pub kind: HostKind,
    pub dvr_mac: MacAddr,
    pub vtep: Ipv4Addr,
    /// Routers placed here (indices).
    pub routers: Vec<usize>,
}

impl HostDef {
    /// The networks this host may host, hence its local ports (named like the networks).
    pub fn networks<'a>(&'a self, topo: &'a Topology) -> impl Iterator<Item = usize> + 'a {
        self.routers
            .iter()
            .flat_map(move |&r| topo.routers[r].networks)
    }
}

#[derive(Clone, Debug)]
pub struct RouterDef {
    pub name: String,
    pub networks: [usize; 2],
    /// The hosts it is placed on.
    pub hosts: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct NetworkDef {
    pub name: String,
    pub vni: u32,
    /// The /24's network address.
    pub subnet: u32,
    pub router: usize,
}

#[derive(Clone, Debug)]
pub struct PortDef {
    pub network: usize,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub host: usize,
}

/// The whole fleet.
#[derive(Clone, Debug)]
pub struct Topology {
    pub hosts: Vec<HostDef>,
    pub routers: Vec<RouterDef>,
    pub networks: Vec<NetworkDef>,
    pub ports: Vec<PortDef>,
}

/// How big the fleet is.
#[derive(Clone, Debug)]
pub struct Shape {
    pub sim_hosts: usize,
    pub real_hosts: usize,
    /// Simulated hosts started after the load (0 or 1).
    pub join_hosts: usize,
    pub routers: usize,
    pub ports: usize,
    pub hosts_per_router: usize,
    /// Most routers placed on one real host (each network is one net_null port there).
    pub real_routers_max: usize,
}

fn mac(bytes: [u8; 6]) -> MacAddr {
    MacAddr::from(EthernetAddress(bytes))
}

impl Topology {
    pub fn generate(shape: &Shape, rng: &mut Rng) -> Result<Topology, String> {
        let mut hosts = Vec::new();
        let kinds = (0..shape.sim_hosts)
            .map(|i| (format!("sim-{i:03}"), HostKind::Sim))
            .chain((0..shape.real_hosts).map(|i| (format!("real-{i}"), HostKind::Real(i))))
            .chain((0..shape.join_hosts).map(|i| (format!("join-{i}"), HostKind::Join)));
        for (i, (name, kind)) in kinds.enumerate() {
            let n = u32::try_from(i + 1).map_err(|_| "too many hosts")?;
            let [_, a, b, c] = n.to_be_bytes();
            hosts.push(HostDef {
                name,
                kind,
                dvr_mac: mac([0xfa, 0x16, 0x3f, a, b, c]),
                vtep: Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 16, 0, 0)) + n),
                routers: Vec::new(),
            });
        }
        if shape.hosts_per_router == 0 || shape.hosts_per_router > hosts.len() {
            return Err(format!(
                "--hosts-per-router {} with {} hosts",
                shape.hosts_per_router,
                hosts.len()
            ));
        }
        let networks_total = shape.routers * 2;
        if networks_total > 65_000 {
            return Err("too many routers".into());
        }
        let per_network = shape.ports.div_ceil(networks_total.max(1));
        if per_network > PORTS_PER_NETWORK_MAX {
            return Err(format!(
                "{} ports on {networks_total} networks: at most {PORTS_PER_NETWORK_MAX} per network",
                shape.ports
            ));
        }
        let mut routers = Vec::new();
        let mut networks = Vec::new();
        for r in 0..shape.routers {
            let nets = [2 * r, 2 * r + 1];
            for &j in &nets {
                networks.push(NetworkDef {
                    name: format!("r{r:03}n{}", j % 2),
                    vni: 1000 + u32::try_from(j).unwrap_or(0),
                    subnet: u32::from(Ipv4Addr::new(10, 0, 0, 0))
                        + (u32::try_from(j).unwrap_or(0) << 8),
                    router: r,
                });
            }
            // Placement: hosts_per_router distinct hosts among those with room left.
            let room = |h: &HostDef| match h.kind {
                HostKind::Real(_) => h.routers.len() < shape.real_routers_max,
                HostKind::Sim | HostKind::Join => h.routers.len() * 2 < SIM_LOCAL_PORTS_MAX,
            };
            let mut eligible: Vec<usize> = (0..hosts.len()).filter(|&h| room(&hosts[h])).collect();
            if eligible.len() < shape.hosts_per_router {
                return Err(format!("no room left on the hosts for router {r}"));
            }
            rng.shuffle(&mut eligible);
            eligible.truncate(shape.hosts_per_router);
            eligible.sort_unstable();
            for &h in &eligible {
                hosts[h].routers.push(r);
            }
            routers.push(RouterDef {
                name: format!("r{r:03}"),
                networks: nets,
                hosts: eligible,
            });
        }
        // Ports: round-robin over the networks, then over each router's hosts.
        let mut next_on_router = vec![0usize; shape.routers];
        let mut ports = Vec::with_capacity(shape.ports);
        for i in 0..shape.ports {
            let j = i % networks_total;
            let idx = i / networks_total;
            let r = networks[j].router;
            let k = next_on_router[r];
            next_on_router[r] += 1;
            let host = routers[r].hosts[k % routers[r].hosts.len()];
            let n = u32::try_from(i).unwrap_or(0);
            let [_, a, b, c] = n.to_be_bytes();
            ports.push(PortDef {
                network: j,
                ip: Ipv4Addr::from(networks[j].subnet + 10 + u32::try_from(idx).unwrap_or(0)),
                mac: mac([0xfa, 0x16, 0x3e, a, b, c]),
                host,
            });
        }
        Ok(Topology {
            hosts,
            routers,
            networks,
            ports,
        })
    }

    /// Every record of the fleet, in the order a first load writes them (what a record
    /// refers to comes before it).
    pub fn records(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for h in &self.hosts {
            out.push(Record::Host(HostSpec {
                name: h.name.clone(),
                dvr_mac: h.dvr_mac,
                vtep: h.vtep,
            }));
        }
        for n in &self.networks {
            out.push(Record::Network(NetworkSpec {
                name: n.name.clone(),
                vni: n.vni,
                ports: Vec::new(),
            }));
        }
        for (r, router) in self.routers.iter().enumerate() {
            out.push(Record::Router(RouterSpec {
                name: router.name.clone(),
                large: false,
            }));
            for &j in &router.networks {
                let n = &self.networks[j];
                out.push(Record::Interface(InterfaceSpec {
                    router: router.name.clone(),
                    network: n.name.clone(),
                    address: InterfaceAddr {
                        ip: Ipv4Addr::from(n.subnet + 1),
                        len: 24,
                    },
                    mac: mac([0xfa, 0x16, 0x3e, 0xff, (j >> 8) as u8, j as u8]),
                }));
            }
            let first = &self.networks[router.networks[0]];
            if let Ok(prefix) = Prefix::from_bits(0, 0) {
                out.push(Record::Route(RouteSpec {
                    router: self.routers[r].name.clone(),
                    prefix,
                    via: Ipv4Addr::from(first.subnet + 254),
                }));
            }
        }
        for p in 0..self.ports.len() {
            out.push(self.port_record(p, self.ports[p].host));
        }
        out
    }

    /// The record of port `p` on host `host`.
    pub fn port_record(&self, p: usize, host: usize) -> Record {
        let port = &self.ports[p];
        Record::Port(InstancePortSpec {
            network: self.networks[port.network].name.clone(),
            ip: port.ip,
            mac: port.mac,
            host: self.hosts[host].name.clone(),
            port: None,
        })
    }

    /// Objects a Neutron L3 agent fetches when it re-syncs router `r`: the router, its
    /// interfaces and routes, and every port of its networks.
    pub fn router_objects(&self, r: usize) -> usize {
        let ports = self
            .ports
            .iter()
            .filter(|p| self.networks[p.network].router == r)
            .count();
        1 + 2 + 1 + ports
    }
}
