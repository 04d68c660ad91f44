//! The floating IP cloud of `tests/e2e_fip.rs`: two hosts of the DVR cloud ([`crate::dvr`]),
//! each with one more dvrd port, on the external (provider) network, where an upstream router
//! leads to the internet.
//!
//! ```text
//!   internet 198.51.100.7/24 ---- 198.51.100.1 upstream 203.0.113.1
//!                                                   |
//!           external network: a Linux bridge, 203.0.113.0/24, MTU 1500
//!      +----------------------------------+---------------------------------+
//!      host-a  ext 203.0.113.21           host-b  ext 203.0.113.22
//!      blue: BLUE-A 10.0.1.5  FIP .10     blue: BLUE-B 10.0.1.9 (no FIP), MIG-B (idle)
//!      red:  RED-A  10.0.2.7  FIP .11     red:  RED-B  10.0.2.8  FIP .12
//!      +----------------------------------+---------------------------------+ snat-node .40
//!           fabric: a Linux bridge, underlay 192.0.2.0/24, VXLAN on UDP 4789
//! ```
//!
//! Router `tenant1` joins BLUE and RED with a default route via the SNAT port, as in the DVR
//! cloud; the SNAT node is that cloud's too (it answers for 198.51.100.1 on its loopback, a
//! different machine from the upstream router that has the same address toward the
//! internet). Every host holds every floating IP (`[[floating_ips]]`); each acts only on those
//! whose instance runs on it. Each host has its own address on the external network
//! (`[external]`, Neutron's floating IP agent gateway port) and the upstream as external
//! gateway.
//!
//! Like the fleet cloud ([`crate::fleet`]), each host has one dvrd port per network, the
//! uplink of a switch (a Linux bridge) its instances plug into, so that one port serves
//! several instances: BLUE-B and MIG-B share host B's BLUE switch. MIG-B is BLUE-A's twin (the
//! same IP and MAC on host B), with no instance port: where BLUE-A runs once its port, and
//! with it floating IP 203.0.113.10, moved to host B.
//!
//! The upstream is a kernel namespace that forwards between its two links; the internet is a
//! namespace with a default route via the upstream. Neither knows anything about floating IPs:
//! the upstream finds who has one by ARP on the external network, as a real upstream does.

use std::net::Ipv4Addr;

use dvr_router::stats::Snapshot;

use crate::config::{DvrdConfig, NetworkCfg, PortCfg};
use crate::dvr::{
    host_index, instance_of, router_cfg, router_of, snat_node_for, HostDef, InstanceDef, BLUE,
    BLUE_A, HOST_A, HOST_B, RED, RED_A, RED_B, SNAT_NODE, SNAT_PORT, TENANT1,
};
use crate::dvrctl::Dvrctl;
use crate::dvrd::{Dvrd, DvrdExit, READY_TIMEOUT};
use crate::fleet::{fleet_host_config, host_switch, hosts_on_fabric, plugged_instances};
use crate::frames::Mac;
use crate::net::{Bridge, Netns};
use crate::test_scope::Scope;
use crate::topo::{Fabric, FabricPort, Instance};

/// The dvrd port name of the external network on every host.
pub const EXTERNAL_PORT: &str = "ext";
/// MTU of the external network (the hosts' external ports, the bridge, the upstream).
pub const EXTERNAL_MTU: u16 = 1500;
/// Prefix length of the external subnet, 203.0.113.0/24.
pub const EXTERNAL_PREFIX_LEN: u8 = 24;
/// The upstream router's address on the external network: every host's external gateway.
pub const UPSTREAM: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The upstream router's address toward the internet.
pub const UPSTREAM_TO_INTERNET: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// A machine on the internet, behind the upstream router.
pub const INTERNET: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// Prefix length of the link between the upstream and the internet.
pub const INTERNET_PREFIX_LEN: u8 = 24;
/// The upstream's interface on the external network, and the one toward the internet.
pub const UPSTREAM_EXTERNAL_IF: &str = "eth0";
pub const UPSTREAM_INTERNET_IF: &str = "eth1";
/// The internet machine's interface.
pub const INTERNET_IF: &str = "eth0";

/// The hosts of this cloud, in start order ([`host_index`] holds for them).
pub const FIP_HOSTS: [&HostDef; 2] = [&HOST_A, &HOST_B];

/// An instance on host B's BLUE switch that has no floating IP.
pub const BLUE_B: InstanceDef = InstanceDef {
    name: "BLUE-B",
    tag: "blueb",
    network: &BLUE,
    ip: Ipv4Addr::new(10, 0, 1, 9),
    mac: "fa:16:3e:bb:01:09",
    host: &HOST_B,
};
/// BLUE-A's twin on host B (the same IP and MAC): where BLUE-A runs once its port moved.
pub const MIG_B: InstanceDef = InstanceDef {
    name: "MIG-B",
    tag: "migb",
    host: &HOST_B,
    ..BLUE_A
};
/// Every instance that gets a namespace.
pub const FIP_INSTANCES: [&InstanceDef; 5] = [&BLUE_A, &RED_A, &RED_B, &BLUE_B, &MIG_B];
/// The instances with an instance port in every host's configuration (the SNAT port too).
pub const PORTED: [&InstanceDef; 4] = [&BLUE_A, &RED_A, &RED_B, &BLUE_B];

/// A floating IP of router `tenant1` and the instance it stands for.
#[derive(Debug)]
pub struct FloatingIpDef {
    pub ip: Ipv4Addr,
    pub instance: &'static InstanceDef,
}

pub const FIP_BLUE_A: FloatingIpDef = FloatingIpDef {
    ip: Ipv4Addr::new(203, 0, 113, 10),
    instance: &BLUE_A,
};
pub const FIP_RED_A: FloatingIpDef = FloatingIpDef {
    ip: Ipv4Addr::new(203, 0, 113, 11),
    instance: &RED_A,
};
pub const FIP_RED_B: FloatingIpDef = FloatingIpDef {
    ip: Ipv4Addr::new(203, 0, 113, 12),
    instance: &RED_B,
};
pub const FLOATING_IPS: [&FloatingIpDef; 3] = [&FIP_BLUE_A, &FIP_RED_A, &FIP_RED_B];

/// The address of `host` on the external network: 203.0.113.21, .22...
pub fn external_ip(host: &HostDef) -> Ipv4Addr {
    let last = 21 + u8::try_from(host_index(host)).expect("a handful of hosts");
    Ipv4Addr::new(203, 0, 113, last)
}

/// The configuration of `host`: its switches' uplinks, the fabric and external ports, the
/// other host and the SNAT node as peers, BLUE and RED, router `tenant1`, the instance ports,
/// this host on the external network and every floating IP.
pub fn fip_host_config(index: usize, fabric: &FabricPort, external: &FabricPort) -> DvrdConfig {
    let host = FIP_HOSTS[index];
    let mut cfg = DvrdConfig {
        host: Some(host.cfg()),
        ..fleet_host_config(index, fabric)
    }
    .port(PortCfg::external(EXTERNAL_PORT, external.host_if()).mtu(external.mtu()));
    for peer in FIP_HOSTS.iter().copied().filter(|h| h.name != host.name) {
        cfg = cfg.peer(peer.cfg());
    }
    cfg = cfg.peer(SNAT_NODE.cfg());
    for net in [&BLUE, &RED] {
        cfg = cfg.network(NetworkCfg::new(net.name, net.vni, &[net.name]));
    }
    cfg = cfg.router(router_cfg(&TENANT1));
    for def in PORTED.iter().copied().chain([&SNAT_PORT]) {
        cfg = cfg.instance_port(def.port_cfg());
    }
    let address = format!("{}/{EXTERNAL_PREFIX_LEN}", external_ip(host));
    cfg = cfg.external(&address, UPSTREAM);
    for f in FLOATING_IPS {
        cfg = cfg.floating_ip(f.ip, TENANT1.name, f.instance.ip);
    }
    cfg
}

/// The whole cloud, running. Dropping it stops the routers first, then removes the rest.
#[derive(Debug)]
pub struct FipCloud {
    /// In [`FIP_HOSTS`] order. First field: dropped (stopped) first.
    routers: Vec<Dvrd>,
    /// In [`FIP_INSTANCES`] order.
    instances: Vec<Instance>,
    switches: Vec<Bridge>,
    /// In [`FIP_HOSTS`] order.
    fabric_ports: Vec<FabricPort>,
    /// In [`FIP_HOSTS`] order.
    external_ports: Vec<FabricPort>,
    host_ns: Vec<Netns>,
    internet: Netns,
    upstream: Netns,
    snat: Netns,
    external: Fabric,
    fabric: Fabric,
    scope: Scope,
}

impl FipCloud {
    /// Builds everything and starts both routers (ready when it returns).
    pub fn build(scope: &Scope) -> FipCloud {
        FipCloud::build_with(scope, |_, cfg| cfg)
    }

    /// [`build`](Self::build), each host's configuration passed through `tweak`.
    pub fn build_with(
        scope: &Scope,
        tweak: impl Fn(&HostDef, DvrdConfig) -> DvrdConfig,
    ) -> FipCloud {
        let mut fabric = Fabric::new(scope, "fab");
        let mut external = Fabric::new(scope, "ext");
        let (host_ns, fabric_ports) = hosts_on_fabric(scope, &mut fabric, &FIP_HOSTS);
        let external_ports: Vec<FabricPort> = FIP_HOSTS
            .iter()
            .zip(&host_ns)
            .map(|(h, ns)| {
                let tag = format!("x{}", h.tag);
                external.attach_host_in(&tag, EXTERNAL_MTU, Some(ns))
            })
            .collect();
        let switches: Vec<Bridge> = host_ns
            .iter()
            .flat_map(|ns| [&BLUE, &RED].map(|n| host_switch(scope, ns, n)))
            .collect();
        let instances = plugged_instances(scope, &FIP_INSTANCES, &host_ns);
        let snat = snat_node_for(scope, &mut fabric, &PORTED);
        let (upstream, internet) = upstream_and_internet(scope, &mut external);
        // Start both together (EAL init overlaps), then wait for each.
        let mut routers: Vec<Dvrd> = FIP_HOSTS
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let cfg = tweak(h, fip_host_config(i, &fabric_ports[i], &external_ports[i]));
                Dvrd::spawn_in(scope, h.name, Some(&host_ns[i]), |prefix, socket| {
                    cfg.to_toml(prefix, socket)
                })
            })
            .collect();
        for r in &mut routers {
            r.wait_ready(READY_TIMEOUT);
        }
        FipCloud {
            routers,
            instances,
            switches,
            fabric_ports,
            external_ports,
            host_ns,
            internet,
            upstream,
            snat,
            external,
            fabric,
            scope: scope.clone(),
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The namespace of instance `def`.
    pub fn instance(&self, def: &InstanceDef) -> &Instance {
        instance_of(&FIP_INSTANCES, &self.instances, def)
    }

    /// The dvrd of `host`; panics once the cloud is stopped.
    pub fn router(&self, host: &HostDef) -> &Dvrd {
        router_of(&self.routers, host)
    }

    /// `dvrctl` on the control socket of `host`'s dvrd.
    pub fn dvrctl(&self, host: &HostDef) -> Dvrctl {
        Dvrctl::of(self.router(host))
    }

    /// Every router's counters now (control API), in [`FIP_HOSTS`] order.
    pub fn stats(&self) -> Vec<Snapshot> {
        self.routers.iter().map(Dvrd::stats).collect()
    }

    /// Panics, with its logs, if one of the routers has exited.
    pub fn assert_running(&mut self) {
        for r in &mut self.routers {
            r.assert_running();
        }
    }

    pub fn host_netns(&self, host: &HostDef) -> &Netns {
        &self.host_ns[host_index(host)]
    }

    pub fn fabric_port(&self, host: &HostDef) -> &FabricPort {
        &self.fabric_ports[host_index(host)]
    }

    /// The MAC of `host`'s external port: what it answers ARP for its floating IPs with.
    pub fn external_mac(&self, host: &HostDef) -> Mac {
        self.external_ports[host_index(host)].mac()
    }

    /// The underlay bridge.
    pub fn fabric(&self) -> &Fabric {
        &self.fabric
    }

    /// The external network's bridge.
    pub fn external(&self) -> &Fabric {
        &self.external
    }

    /// The upstream router's namespace ([`UPSTREAM_EXTERNAL_IF`] on the external network).
    pub fn upstream(&self) -> &Netns {
        &self.upstream
    }

    /// The internet machine's namespace.
    pub fn internet(&self) -> &Netns {
        &self.internet
    }

    pub fn snat_node(&self) -> &Netns {
        &self.snat
    }

    /// The switch (Linux bridge) of BLUE or RED on `host`.
    pub fn switch(&self, host: &HostDef, network: &str) -> &Bridge {
        let n = usize::from(network == RED.name);
        &self.switches[host_index(host) * 2 + n]
    }

    /// Stops every router (SIGTERM) and returns how each ended, in [`FIP_HOSTS`] order.
    pub fn stop(&mut self) -> Vec<DvrdExit> {
        std::mem::take(&mut self.routers)
            .into_iter()
            .map(Dvrd::stop)
            .collect()
    }
}

/// The upstream router on the external network (its first address) and the internet machine
/// behind it, on a veth of their own. Both links live and die with the namespaces.
fn upstream_and_internet(scope: &Scope, external: &mut Fabric) -> (Netns, Netns) {
    let upstream = Netns::new(scope, "up");
    let address = format!("{UPSTREAM}/{EXTERNAL_PREFIX_LEN}");
    external.attach_node(
        &upstream,
        "up",
        UPSTREAM_EXTERNAL_IF,
        &address,
        EXTERNAL_MTU,
    );
    upstream.sysctl("net.ipv4.ip_forward", "1");
    let internet = Netns::new(scope, "inet");
    upstream.ip(&[
        "link",
        "add",
        UPSTREAM_INTERNET_IF,
        "type",
        "veth",
        "peer",
        "name",
        INTERNET_IF,
        "netns",
        internet.name(),
    ]);
    for (ns, ifname, addr) in [
        (&upstream, UPSTREAM_INTERNET_IF, UPSTREAM_TO_INTERNET),
        (&internet, INTERNET_IF, INTERNET),
    ] {
        ns.disable_offloads(ifname);
        let cidr = format!("{addr}/{INTERNET_PREFIX_LEN}");
        ns.ip(&["addr", "add", &cidr, "dev", ifname]);
        ns.ip(&["link", "set", "dev", ifname, "up"]);
    }
    let via = UPSTREAM_TO_INTERNET.to_string();
    internet.ip(&["route", "add", "default", "via", &via, "dev", INTERNET_IF]);
    (upstream, internet)
}
