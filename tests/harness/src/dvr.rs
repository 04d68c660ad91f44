//! The three-host DVR cloud of `tests/e2e_dvr.rs` (the demo runs its fleet twin, `fleet`),
//! described in code: three hosts (one `dvrd` each), a centralised SNAT node (a kernel
//! namespace with a Linux vxlan device), two tenant routers with overlapping subnets, and their
//! instances, all on one machine.
//!
//! ```text
//!             fabric: a Linux bridge, underlay 192.0.2.0/24, MTU 1500, VXLAN on UDP 4789
//!    +-------------------+---------------------+-------------------+---------------------+
//!    host-a .10          host-b .20            host-c .30          snat-node .40 (kernel)
//!    BLUE-A  10.0.1.5    RED-B   10.0.2.8      BLUE-C 10.0.1.9     SNAT port 10.0.1.254
//!    RED-A   10.0.2.7    RED2-B  10.0.2.8 (t2)                     outside   198.51.100.1
//!    BLUE2-A 10.0.1.5 (t2)
//! ```
//!
//! Router `tenant1` joins BLUE (10.0.1.0/24, VNI 1001) and RED (10.0.2.0/24, VNI 1002), with a
//! default route via the SNAT port 10.0.1.254. Router `tenant2` joins BLUE2 and RED2: the same
//! subnets on other VNIs, no default route. Every host gets the whole picture: every peer (the
//! other hosts and the SNAT node), every network (with a local port where one of its instances
//! runs on that host), both routers (the same gateway IPs and MACs everywhere) and every
//! instance port, with the host it is on.
//!
//! The SNAT node stands for the network node and the world behind it: its vxlan device on
//! BLUE's VNI carries the SNAT port's IP and MAC, it owns 198.51.100.1 (on its loopback) and
//! answers for it. It knows the BLUE instances of `tenant1` the way a control plane would
//! program them: permanent neighbours and FDB entries toward their hosts' VTEPs.

use std::net::Ipv4Addr;

use dvr_router::stats::{PortStatsView, RouterView, Snapshot};

use crate::config::{DvrdConfig, HostCfg, InstancePortCfg, NetworkCfg, RouterCfg};
use crate::dvrd::{Dvrd, DvrdExit, READY_TIMEOUT};
use crate::frames::{mac, Mac, Tunnelled};
use crate::net::{Netns, Vxlan};
use crate::test_scope::Scope;
use crate::topo::{Fabric, FabricPort, Instance, InstanceSpec};

/// MTU of the underlay (the hosts' fabric ports, the bridge, the SNAT node's link).
pub const FABRIC_MTU: u16 = 1500;
/// Bytes VXLAN adds in front of an inner frame: Ethernet 14, IPv4 20, UDP 8, VXLAN 8.
pub const VXLAN_OVERHEAD: u16 = 50;
/// The largest inner IPv4 packet that crosses the fabric.
pub const FABRIC_INNER_MTU: u16 = FABRIC_MTU - VXLAN_OVERHEAD;
/// MTU of the instances' links.
pub const INSTANCE_MTU: u16 = 1500;
/// Prefix length of the underlay subnet.
pub const FABRIC_PREFIX_LEN: u8 = 24;
/// The SNAT node's underlay interface and its vxlan device.
pub const SNAT_UNDERLAY_IF: &str = "fab0";
pub const SNAT_VXLAN_IF: &str = "vx";
/// The dvrd port name of the fabric on every host.
pub const FABRIC_PORT: &str = "fabric";
/// An address outside every tenant subnet: the SNAT node owns it.
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

/// A host (a dvrd) or the SNAT node: name, DVR MAC, VTEP.
#[derive(Debug)]
pub struct HostDef {
    pub name: &'static str,
    /// Tag of its fabric link (`<prefix><tag>`).
    pub tag: &'static str,
    pub dvr_mac: &'static str,
    pub vtep: Ipv4Addr,
}

impl HostDef {
    pub fn dvr_mac(&self) -> Mac {
        mac(self.dvr_mac)
    }

    /// The host as this host's or a peer's configuration names it.
    pub fn cfg(&self) -> HostCfg {
        HostCfg::new(self.name, self.dvr_mac, &self.vtep.to_string())
    }
}

pub const HOST_A: HostDef = HostDef {
    name: "host-a",
    tag: "faba",
    dvr_mac: "fa:16:3f:00:00:0a",
    vtep: Ipv4Addr::new(192, 0, 2, 10),
};
pub const HOST_B: HostDef = HostDef {
    name: "host-b",
    tag: "fabb",
    dvr_mac: "fa:16:3f:00:00:0b",
    vtep: Ipv4Addr::new(192, 0, 2, 20),
};
pub const HOST_C: HostDef = HostDef {
    name: "host-c",
    tag: "fabc",
    dvr_mac: "fa:16:3f:00:00:0c",
    vtep: Ipv4Addr::new(192, 0, 2, 30),
};
/// The hosts that run a dvrd, in start order.
pub const HOSTS: [&HostDef; 3] = [&HOST_A, &HOST_B, &HOST_C];
/// The centralised SNAT node: a peer of every host (its VTEP and DVR MAC are known), a kernel
/// namespace here.
pub const SNAT_NODE: HostDef = HostDef {
    name: "snat-node",
    tag: "snat",
    dvr_mac: "fa:16:3f:00:00:5a",
    vtep: Ipv4Addr::new(192, 0, 2, 40),
};

/// A tenant router.
#[derive(Debug)]
pub struct RouterDef {
    pub name: &'static str,
    /// The default route's next hop (the SNAT port), if any.
    pub default_via: Option<Ipv4Addr>,
}

pub const TENANT1: RouterDef = RouterDef {
    name: "tenant1",
    default_via: Some(Ipv4Addr::new(10, 0, 1, 254)),
};
pub const TENANT2: RouterDef = RouterDef {
    name: "tenant2",
    default_via: None,
};
pub const ROUTERS: [&RouterDef; 2] = [&TENANT1, &TENANT2];

/// A tenant network and its router interface (the same on every host).
#[derive(Debug)]
pub struct NetworkDef {
    /// The network's name in the config (and the name of its local port on a host).
    pub name: &'static str,
    /// How people call it (`BLUE`).
    pub label: &'static str,
    pub router: &'static RouterDef,
    pub vni: u32,
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway_mac: &'static str,
}

impl NetworkDef {
    pub fn gateway_mac(&self) -> Mac {
        mac(self.gateway_mac)
    }

    /// `10.0.1.1/24`.
    pub fn interface_address(&self) -> String {
        format!("{}/{}", self.gateway, self.prefix_len)
    }
}

pub const BLUE: NetworkDef = NetworkDef {
    name: "blue",
    label: "BLUE",
    router: &TENANT1,
    vni: 1001,
    gateway: Ipv4Addr::new(10, 0, 1, 1),
    prefix_len: 24,
    gateway_mac: "fa:16:3e:00:01:01",
};
pub const RED: NetworkDef = NetworkDef {
    name: "red",
    label: "RED",
    router: &TENANT1,
    vni: 1002,
    gateway: Ipv4Addr::new(10, 0, 2, 1),
    prefix_len: 24,
    gateway_mac: "fa:16:3e:00:02:01",
};
pub const BLUE2: NetworkDef = NetworkDef {
    name: "blue2",
    label: "BLUE2",
    router: &TENANT2,
    vni: 2001,
    gateway: Ipv4Addr::new(10, 0, 1, 1),
    prefix_len: 24,
    gateway_mac: "fa:16:3e:00:11:01",
};
pub const RED2: NetworkDef = NetworkDef {
    name: "red2",
    label: "RED2",
    router: &TENANT2,
    vni: 2002,
    gateway: Ipv4Addr::new(10, 0, 2, 1),
    prefix_len: 24,
    gateway_mac: "fa:16:3e:00:12:01",
};
pub const NETWORKS: [&NetworkDef; 4] = [&BLUE, &RED, &BLUE2, &RED2];

/// An instance port: where it is, on which network, with which IP and MAC.
#[derive(Debug)]
pub struct InstanceDef {
    pub name: &'static str,
    /// Tag of its namespace and link.
    pub tag: &'static str,
    pub network: &'static NetworkDef,
    pub ip: Ipv4Addr,
    pub mac: &'static str,
    pub host: &'static HostDef,
}

impl InstanceDef {
    pub fn mac(&self) -> Mac {
        mac(self.mac)
    }

    /// Its instance port, on the host it runs on.
    pub fn port_cfg(&self) -> InstancePortCfg {
        InstancePortCfg::new(self.network.name, self.ip, self.mac(), self.host.name)
    }

    /// What the instance looks like from inside: its address, MAC, and the gateway as default
    /// route.
    pub fn spec(&self) -> InstanceSpec {
        InstanceSpec::new(
            &format!("{}/{}", self.ip, self.network.prefix_len),
            self.mac,
            &self.network.gateway.to_string(),
        )
        .mtu(INSTANCE_MTU)
    }
}

pub const BLUE_A: InstanceDef = InstanceDef {
    name: "BLUE-A",
    tag: "bluea",
    network: &BLUE,
    ip: Ipv4Addr::new(10, 0, 1, 5),
    mac: "fa:16:3e:aa:01:05",
    host: &HOST_A,
};
pub const RED_A: InstanceDef = InstanceDef {
    name: "RED-A",
    tag: "reda",
    network: &RED,
    ip: Ipv4Addr::new(10, 0, 2, 7),
    mac: "fa:16:3e:aa:02:07",
    host: &HOST_A,
};
pub const RED_B: InstanceDef = InstanceDef {
    name: "RED-B",
    tag: "redb",
    network: &RED,
    ip: Ipv4Addr::new(10, 0, 2, 8),
    mac: "fa:16:3e:bb:02:08",
    host: &HOST_B,
};
pub const BLUE_C: InstanceDef = InstanceDef {
    name: "BLUE-C",
    tag: "bluec",
    network: &BLUE,
    ip: Ipv4Addr::new(10, 0, 1, 9),
    mac: "fa:16:3e:cc:01:09",
    host: &HOST_C,
};
/// Tenant 2's BLUE-A twin: the same IP as BLUE-A, on BLUE2.
pub const BLUE2_A: InstanceDef = InstanceDef {
    name: "BLUE2-A",
    tag: "blue2a",
    network: &BLUE2,
    ip: Ipv4Addr::new(10, 0, 1, 5),
    mac: "fa:16:3e:aa:11:05",
    host: &HOST_A,
};
/// Tenant 2's RED-B twin: the same IP as RED-B, on RED2.
pub const RED2_B: InstanceDef = InstanceDef {
    name: "RED2-B",
    tag: "red2b",
    network: &RED2,
    ip: Ipv4Addr::new(10, 0, 2, 8),
    mac: "fa:16:3e:bb:12:08",
    host: &HOST_B,
};
/// Every instance that gets a namespace.
pub const INSTANCES: [&InstanceDef; 6] = [&BLUE_A, &RED_A, &RED_B, &BLUE_C, &BLUE2_A, &RED2_B];
/// The SNAT node's port on BLUE: an instance port on the SNAT node (its vxlan device).
pub const SNAT_PORT: InstanceDef = InstanceDef {
    name: "SNAT",
    tag: "snat",
    network: &BLUE,
    ip: Ipv4Addr::new(10, 0, 1, 254),
    mac: "fa:16:3e:dd:01:fe",
    host: &SNAT_NODE,
};

/// The CPUs of host number `index`'s control thread and worker: the hosts alternate between
/// (0, 1) and (1, 0), so that two cores carry three routers evenly.
pub fn cores_of(index: usize) -> (usize, usize) {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        (0, 0)
    } else if index % 2 == 0 {
        (0, 1)
    } else {
        (1, 0)
    }
}

/// The index of `host` in [`HOSTS`]: where its router, namespace, fabric port and counters
/// are in the cloud's lists.
pub fn host_index(host: &HostDef) -> usize {
    HOSTS
        .iter()
        .position(|h| h.name == host.name)
        .unwrap_or_else(|| panic!("{} runs no dvrd", host.name))
}

/// The configuration of `host`: its local ports (one per network with an instance on it, named
/// after the network), the fabric port, every peer, network, router and instance port.
pub fn host_config(
    index: usize,
    host: &HostDef,
    instances: &[Instance],
    fabric: &FabricPort,
) -> DvrdConfig {
    let (main, worker) = cores_of(index);
    let mut cfg = DvrdConfig::new(host.cfg()).cores(main, worker);
    let local: Vec<(&InstanceDef, &Instance)> = INSTANCES
        .iter()
        .copied()
        .zip(instances)
        .filter(|(def, _)| def.host.name == host.name)
        .collect();
    for (def, inst) in &local {
        cfg = cfg.port(inst.port(def.network.name));
    }
    cfg = cfg.port(fabric.port(FABRIC_PORT));
    for peer in HOSTS.iter().copied().filter(|h| h.name != host.name) {
        cfg = cfg.peer(peer.cfg());
    }
    cfg = cfg.peer(SNAT_NODE.cfg());
    for net in NETWORKS {
        let ports: Vec<&str> = local
            .iter()
            .filter(|(def, _)| def.network.name == net.name)
            .map(|_| net.name)
            .collect();
        cfg = cfg.network(NetworkCfg::new(net.name, net.vni, &ports));
    }
    for router in ROUTERS {
        cfg = cfg.router(router_cfg(router));
    }
    for def in INSTANCES.iter().copied().chain([&SNAT_PORT]) {
        cfg = cfg.instance_port(def.port_cfg());
    }
    cfg
}

/// `router` as every host's configuration has it: an interface on each of its networks, its
/// default route.
pub fn router_cfg(router: &RouterDef) -> RouterCfg {
    let mut r = RouterCfg::new(router.name);
    for net in NETWORKS.iter().filter(|n| n.router.name == router.name) {
        r = r.interface(net.name, &net.interface_address(), net.gateway_mac);
    }
    if let Some(via) = router.default_via {
        r = r.route("0.0.0.0/0", &via.to_string());
    }
    r
}

/// The namespace of instance `def` among `instances`, made in `defs` order.
pub fn instance_of<'a>(
    defs: &[&InstanceDef],
    instances: &'a [Instance],
    def: &InstanceDef,
) -> &'a Instance {
    let i = defs
        .iter()
        .position(|d| d.tag == def.tag)
        .unwrap_or_else(|| panic!("{} has no namespace", def.name));
    &instances[i]
}

/// The dvrd of `host` among `routers`, in [`HOSTS`] order; panics once they are stopped.
pub fn router_of<'a>(routers: &'a [Dvrd], host: &HostDef) -> &'a Dvrd {
    routers
        .get(host_index(host))
        .unwrap_or_else(|| panic!("the routers are stopped"))
}

/// The whole cloud, running. Each host is a network namespace (`<prefix>-host-a`...) that
/// holds the host ends of its instances' links and its fabric link, and runs its dvrd, as a
/// machine of its own would. Dropping the cloud stops the routers first, then removes the
/// instances, the hosts, the SNAT node and the fabric.
#[derive(Debug)]
pub struct Cloud {
    /// In [`HOSTS`] order; empty once stopped. First field: dropped (stopped) first.
    routers: Vec<Dvrd>,
    /// In [`INSTANCES`] order.
    instances: Vec<Instance>,
    /// In [`HOSTS`] order.
    fabric_ports: Vec<FabricPort>,
    /// In [`HOSTS`] order.
    host_ns: Vec<Netns>,
    snat: Netns,
    fabric: Fabric,
    scope: Scope,
}

impl Cloud {
    /// Builds everything and starts the three routers (ready when it returns).
    pub fn build(scope: &Scope) -> Cloud {
        Cloud::build_with(scope, |_, cfg| cfg)
    }

    /// [`build`](Self::build), with each host's configuration passed through `tweak` (more
    /// logging, other neighbour timers...).
    pub fn build_with(scope: &Scope, tweak: impl Fn(&HostDef, DvrdConfig) -> DvrdConfig) -> Cloud {
        let mut fabric = Fabric::new(scope, "fab");
        let host_ns: Vec<Netns> = HOSTS.iter().map(|h| Netns::new(scope, h.name)).collect();
        let fabric_ports: Vec<FabricPort> = HOSTS
            .iter()
            .zip(&host_ns)
            .map(|(h, ns)| fabric.attach_host_in(h.tag, FABRIC_MTU, Some(ns)))
            .collect();
        let instances: Vec<Instance> = INSTANCES
            .iter()
            .map(|def| {
                let ns = &host_ns[host_index(def.host)];
                Instance::new_in(scope, def.tag, def.spec(), Some(ns))
            })
            .collect();
        let snat = snat_node(scope, &mut fabric);
        // Start the three together (EAL init overlaps), then wait for each.
        let mut routers: Vec<Dvrd> = HOSTS
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let cfg = tweak(h, host_config(i, h, &instances, &fabric_ports[i]));
                Dvrd::spawn_in(scope, h.name, Some(&host_ns[i]), |prefix, socket| {
                    cfg.to_toml(prefix, socket)
                })
            })
            .collect();
        for r in &mut routers {
            r.wait_ready(READY_TIMEOUT);
        }
        Cloud {
            routers,
            instances,
            fabric_ports,
            host_ns,
            snat,
            fabric,
            scope: scope.clone(),
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The namespace of instance `def`.
    pub fn instance(&self, def: &InstanceDef) -> &Instance {
        instance_of(&INSTANCES, &self.instances, def)
    }

    /// The dvrd of `host`; panics once the cloud is stopped.
    pub fn router(&self, host: &HostDef) -> &Dvrd {
        router_of(&self.routers, host)
    }

    /// Panics, with its logs, if one of the routers has exited.
    pub fn assert_running(&mut self) {
        for r in &mut self.routers {
            r.assert_running();
        }
    }

    /// Every router's counters now (control API), in [`HOSTS`] order.
    pub fn stats(&self) -> Vec<Snapshot> {
        self.routers.iter().map(Dvrd::stats).collect()
    }

    /// [`stats`](Self::stats), or why a router did not answer.
    pub fn try_stats(&self) -> Result<Vec<Snapshot>, String> {
        self.routers.iter().map(Dvrd::try_stats).collect()
    }

    /// The namespace of `host`: where its dvrd runs, with its ports' interfaces.
    pub fn host_netns(&self, host: &HostDef) -> &Netns {
        &self.host_ns[host_index(host)]
    }

    /// The fabric port of `host`.
    pub fn fabric_port(&self, host: &HostDef) -> &FabricPort {
        &self.fabric_ports[host_index(host)]
    }

    pub fn fabric(&self) -> &Fabric {
        &self.fabric
    }

    pub fn fabric_mut(&mut self) -> &mut Fabric {
        &mut self.fabric
    }

    /// The SNAT node's namespace (`fab0` on the fabric, `vx` on BLUE's VNI).
    pub fn snat_node(&self) -> &Netns {
        &self.snat
    }

    /// Stops every router (SIGTERM) and returns how each ended, in [`HOSTS`] order.
    pub fn stop(&mut self) -> Vec<DvrdExit> {
        std::mem::take(&mut self.routers)
            .into_iter()
            .map(Dvrd::stop)
            .collect()
    }
}

/// The SNAT node: a namespace on the fabric with `fab0` (its VTEP), a vxlan device `vx` on
/// BLUE's VNI that is the SNAT port (its IP and MAC), flood entries toward every host's VTEP,
/// the outside address on its loopback, and `tenant1`'s BLUE instances as permanent
/// neighbours behind their hosts' VTEPs.
fn snat_node(scope: &Scope, fabric: &mut Fabric) -> Netns {
    snat_node_for(scope, fabric, &INSTANCES)
}

/// [`Cloud`]'s SNAT node for other instances: the BLUE ones of `instances` are its permanent
/// neighbours (the fleet cloud's instances, [`crate::fleet`]).
pub fn snat_node_for(scope: &Scope, fabric: &mut Fabric, instances: &[&InstanceDef]) -> Netns {
    let ns = Netns::new(scope, SNAT_NODE.tag);
    fabric.attach_node(
        &ns,
        SNAT_NODE.tag,
        SNAT_UNDERLAY_IF,
        &format!("{}/{FABRIC_PREFIX_LEN}", SNAT_NODE.vtep),
        FABRIC_MTU,
    );
    let vteps: Vec<Ipv4Addr> = HOSTS.iter().map(|h| h.vtep).collect();
    let vxlan = Vxlan {
        vni: SNAT_PORT.network.vni,
        local: SNAT_NODE.vtep,
        dev: SNAT_UNDERLAY_IF,
        remotes: &vteps,
        mac: Some(SNAT_PORT.mac()),
    };
    ns.add_vxlan(SNAT_VXLAN_IF, &vxlan);
    let port_addr = format!("{}/{}", SNAT_PORT.ip, SNAT_PORT.network.prefix_len);
    ns.ip(&["addr", "add", &port_addr, "dev", SNAT_VXLAN_IF]);
    // On `lo`: dummy devices need a kernel module that containers may lack.
    ns.ip(&["addr", "add", &format!("{OUTSIDE}/32"), "dev", "lo"]);
    for def in instances
        .iter()
        .filter(|d| d.network.name == SNAT_PORT.network.name)
    {
        ns.ip(&[
            "neigh",
            "replace",
            &def.ip.to_string(),
            "lladdr",
            def.mac,
            "dev",
            SNAT_VXLAN_IF,
            "nud",
            "permanent",
        ]);
        ns.run_ok(
            "bridge",
            &[
                "fdb",
                "append",
                def.mac,
                "dev",
                SNAT_VXLAN_IF,
                "dst",
                &def.host.vtep.to_string(),
            ],
        );
    }
    ns
}

/// The counters of port `name` in a snapshot (zeros when absent).
pub fn port_stats(s: &Snapshot, name: &str) -> PortStatsView {
    s.ports
        .iter()
        .find(|p| p.name == name)
        .cloned()
        .unwrap_or_default()
}

/// The counters of router `name` in a snapshot (zeros when absent).
pub fn router_stats(s: &Snapshot, name: &str) -> RouterView {
    s.routers
        .iter()
        .find(|r| r.name == name)
        .cloned()
        .unwrap_or_default()
}

/// What each router counted between two snapshots of every host, in [`HOSTS`] order.
pub fn deltas(before: &[Snapshot], after: &[Snapshot]) -> Vec<Snapshot> {
    after.iter().zip(before).map(|(a, b)| a.since(b)).collect()
}

/// The DVR walk of router `tenant1` on `host` in per-host counters (from [`deltas`]): packets
/// routed to a local instance, routed to a peer host, and delivered from the fabric.
pub fn walk_of(d: &[Snapshot], host: &HostDef) -> (u64, u64, u64) {
    let r = router_stats(&d[host_index(host)], TENANT1.name);
    (r.routed_local, r.routed_remote, r.delivered_from_fabric)
}

/// [`walk_of`] every host, in [`HOSTS`] order.
pub fn walks(d: &[Snapshot]) -> [(u64, u64, u64); 3] {
    HOSTS.map(|h| walk_of(d, h))
}

/// The hosts whose fabric port sent or received anything in per-host counters (from
/// [`deltas`]), as `host-a tx 2 rx 1`; empty when the fabric was silent.
pub fn fabric_movement(d: &[Snapshot]) -> Vec<String> {
    HOSTS
        .iter()
        .zip(d)
        .filter_map(|(h, s)| {
            let f = port_stats(s, FABRIC_PORT);
            (f.tx_packets + f.rx_packets > 0)
                .then(|| format!("{} tx {} rx {}", h.name, f.tx_packets, f.rx_packets))
        })
        .collect()
}

/// How a frame crossed the fabric: between which VTEPs, on which VNI, and the MACs of the
/// inner frame. What tells the DVR walk apart on the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    /// Source and destination VTEP.
    pub vteps: (Ipv4Addr, Ipv4Addr),
    pub vni: u32,
    /// Source and destination MAC of the inner frame.
    pub inner_macs: (Mac, Mac),
}

impl Crossing {
    /// How `t` crossed; `None` when its inner frame is no Ethernet frame.
    pub fn of(t: &Tunnelled) -> Option<Crossing> {
        Some(Crossing {
            vteps: (t.src_vtep, t.dst_vtep),
            vni: t.vni,
            inner_macs: t.inner_macs()?,
        })
    }

    /// A packet that `from` routed to instance `to` on another host: from `from`'s VTEP and
    /// DVR MAC, on `to`'s network (the destination's VNI), to `to`'s host and MAC.
    pub fn routed(from: &HostDef, to: &InstanceDef) -> Crossing {
        Crossing {
            vteps: (from.vtep, to.host.vtep),
            vni: to.network.vni,
            inner_macs: (from.dvr_mac(), to.mac()),
        }
    }

    /// A frame bridged from instance `from` to instance `to` on their network, between their
    /// hosts: not routed, so the inner MACs are the instances' own.
    pub fn bridged(from: &InstanceDef, to: &InstanceDef) -> Crossing {
        Crossing {
            vteps: (from.host.vtep, to.host.vtep),
            vni: from.network.vni,
            inner_macs: (from.mac(), to.mac()),
        }
    }
}
