//! The fleet cloud of `tests/e2e_fleet.rs`: the three hosts of [`crate::dvr`] again, but
//! each dvrd's file holds only its local settings (EAL, data plane, workers, ports) and a
//! `[fleet]` table; every DVR object (hosts, networks, the router, its interfaces and route,
//! the instance ports) is written once, in etcd, with `dvrctl --etcd`, and each host takes
//! what it needs from there.
//!
//! ```text
//!   etcd namespace: etcd on 127.0.0.1 and 198.18.0.1, bridge `mgmt` (the management network)
//!        |  198.18.0.10           |  198.18.0.20             |  198.18.0.30
//!    host-a                   host-b                     host-c                snat-node
//!    blue: BLUE-A 10.0.1.5    blue: NEW-B 10.0.1.60      blue: BLUE-C 10.0.1.9  (kernel)
//!    red:  RED-A  10.0.2.7    red:  RED-B 10.0.2.8       red:  MIG-C 10.0.2.50  SNAT port
//!          LEARN-A 10.0.2.70        MIG-B 10.0.2.50            NEW-C 10.0.2.61  10.0.1.254
//!    +---------------------------+--------------------------+----------------------+
//!             fabric: a Linux bridge, underlay 192.0.2.0/24, VXLAN on UDP 4789
//! ```
//!
//! Each host has one dvrd port per network, `blue` and `red` (a fleet network attaches to the
//! local port named like it), the end of a veth whose other end is in a Linux bridge of the
//! host: the host's switch for that network, where its instances plug in, as VMs plug into
//! a host's bridge. So one port serves several instances (RED-B and MIG-B on host B).
//!
//! What [`FleetCloud::program`] writes: the three hosts and the SNAT node, BLUE and RED,
//! router `tenant1` with both interfaces and a default route via the SNAT port, and the ports
//! of BLUE-A, RED-A, RED-B, BLUE-C, MIG-B and the SNAT port. The other instances have a
//! namespace and no port yet: NEW-B and NEW-C are for ports a test adds, MIG-C is MIG-B's
//! twin (the same IP and MAC on host C, for a port that moves from B to C), LEARN-A is an
//! address the router learns by ARP (it has no port). No instance has a static ARP entry for
//! its gateway: they ARP like VMs.
//!
//! The management network is separate from the fabric, as in a real cloud: a host cut from
//! etcd ([`FleetCloud::cut_from_etcd`]) keeps forwarding. `dvrctl --etcd` and `etcdctl` run in
//! etcd's namespace (the operator's station) and reach it on loopback.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cmd::{output_of, CmdOutput};
use crate::config::{DvrdConfig, PortCfg};
use crate::dvr::{
    cores_of, host_index, snat_node_for, HostDef, InstanceDef, NetworkDef, BLUE, BLUE_A, BLUE_C,
    FABRIC_MTU, FABRIC_PORT, HOSTS, HOST_A, HOST_B, HOST_C, INSTANCE_MTU, RED, RED_A, RED_B,
    SNAT_NODE, SNAT_PORT, TENANT1,
};
use crate::dvrctl::Dvrctl;
use crate::dvrd::{Dvrd, DvrdExit, READY_TIMEOUT};
use crate::etcd::Etcd;
use crate::net::{disable_offloads, ip, make_silent, Bridge, Netns};
use crate::process::POLL;
use crate::test_scope::Scope;
use crate::topo::{Fabric, FabricPort, Instance};

/// The key prefix (dvrd's and dvrctl's default).
pub const PREFIX: &str = "/dvr/v1/";
/// Under the prefix: the routing records, the only folder the hosts watch.
pub const CONFIG_DIR: &str = "config/";
/// Under the prefix: each host's status, under its lease.
pub const STATUS_DIR: &str = "status/";
/// The networks of the fleet: router `tenant1`'s.
pub const FLEET_NETWORKS: [&NetworkDef; 2] = [&BLUE, &RED];
/// etcd's address on the management network.
pub const ETCD_MGMT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Prefix length of the management network (198.18.0.0/15 is for tests, RFC 2544).
pub const MGMT_PREFIX_LEN: u8 = 24;
/// A host's interface on the management network.
pub const MGMT_IF: &str = "mgmt0";
/// The bridge of the management network, in etcd's namespace.
pub const MGMT_BRIDGE: &str = "mgmt";
/// How long every host gets to apply a write and say so.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The address of `host` on the management network: .10, .20, .30 like its VTEP.
pub fn mgmt_addr(host: &HostDef) -> Ipv4Addr {
    let [_, _, _, last] = host.vtep.octets();
    Ipv4Addr::new(198, 18, 0, last)
}

/// A new BLUE instance on host B, with no port until a test adds one.
pub const NEW_B: InstanceDef = InstanceDef {
    name: "NEW-B",
    tag: "newb",
    network: &BLUE,
    ip: Ipv4Addr::new(10, 0, 1, 60),
    mac: "fa:16:3e:bb:01:3c",
    host: &HOST_B,
};
/// A new RED instance on host C, with no port until a test adds one.
pub const NEW_C: InstanceDef = InstanceDef {
    name: "NEW-C",
    tag: "newc",
    network: &RED,
    ip: Ipv4Addr::new(10, 0, 2, 61),
    mac: "fa:16:3e:cc:02:3d",
    host: &HOST_C,
};
/// The instance that moves: programmed on host B.
pub const MIG_B: InstanceDef = InstanceDef {
    name: "MIG-B",
    tag: "migb",
    network: &RED,
    ip: Ipv4Addr::new(10, 0, 2, 50),
    mac: "fa:16:3e:ee:02:32",
    host: &HOST_B,
};
/// MIG-B's twin on host C (the same IP and MAC): where it runs once its port moved to host C.
pub const MIG_C: InstanceDef = InstanceDef {
    name: "MIG-C",
    tag: "migc",
    host: &HOST_C,
    ..MIG_B
};
/// An instance on host A's RED switch with no port: the router learns it by ARP.
pub const LEARN_A: InstanceDef = InstanceDef {
    name: "LEARN-A",
    tag: "learna",
    network: &RED,
    ip: Ipv4Addr::new(10, 0, 2, 70),
    mac: "fa:16:3e:aa:02:46",
    host: &HOST_A,
};
/// Every instance with a namespace.
pub const FLEET_INSTANCES: [&InstanceDef; 9] = [
    &BLUE_A, &RED_A, &LEARN_A, &NEW_B, &RED_B, &MIG_B, &BLUE_C, &MIG_C, &NEW_C,
];
/// The ports [`FleetCloud::program`] writes (the SNAT port last).
pub const PROGRAMMED_PORTS: [&InstanceDef; 6] =
    [&BLUE_A, &RED_A, &RED_B, &BLUE_C, &MIG_B, &SNAT_PORT];

/// `/dvr/v1/config/<rest>`: the key of a routing record (`hosts/<name>`,
/// `ports/<network>/<ip>`...), under the folder every host watches. Every record key the
/// harness and the tests write or read with etcdctl is made here.
pub fn key(rest: &str) -> String {
    format!("{PREFIX}{CONFIG_DIR}{rest}")
}

/// `/dvr/v1/status/<host>`: what `host`'s dvrd publishes under its lease.
pub fn status_key(host: &HostDef) -> String {
    format!("{PREFIX}{STATUS_DIR}{}", host.name)
}

/// The ways a host may name the record at `full` in its errors: the whole key, relative to
/// the prefix (`config/ports/blue/10.0.1.5`) or to the config folder (`ports/blue/10.0.1.5`).
pub fn record_names(full: &str) -> Vec<String> {
    let mut names = vec![full.to_string()];
    if let Some(rel) = full.strip_prefix(PREFIX) {
        names.push(rel.to_string());
        if let Some(record) = rel.strip_prefix(CONFIG_DIR) {
            names.push(record.to_string());
        }
    }
    names
}

/// The key of `def`'s port: `/dvr/v1/config/ports/<network>/<ip>`.
pub fn port_key(def: &InstanceDef) -> String {
    key(&format!("ports/{}/{}", def.network.name, def.ip))
}

/// The key of router `tenant1`'s default route, written by [`FleetCloud::program`].
pub fn default_route_key() -> String {
    key(&format!("routes/{}/0.0.0.0/0", TENANT1.name))
}

/// `port add IP network N mac M host H`: `def`'s port on `host`.
pub fn port_add(def: &InstanceDef, host: &HostDef) -> String {
    format!(
        "port add {} network {} mac {} host {}",
        def.ip, def.network.name, def.mac, host.name
    )
}

/// The `dvrctl apply` file of the whole fleet: one command a line.
pub fn fleet_commands() -> String {
    let mut lines = vec!["# The fleet of tests/harness/src/fleet.rs.".to_string()];
    for h in HOSTS.iter().copied().chain([&SNAT_NODE]) {
        lines.push(format!(
            "peer add {} mac {} vtep {}",
            h.name, h.dvr_mac, h.vtep
        ));
    }
    for n in FLEET_NETWORKS {
        lines.push(format!("network add {} vni {}", n.name, n.vni));
    }
    lines.push(format!("router add {}", TENANT1.name));
    for n in FLEET_NETWORKS {
        lines.push(format!(
            "interface add router {} network {} address {} mac {}",
            TENANT1.name,
            n.name,
            n.interface_address(),
            n.gateway_mac
        ));
    }
    if let Some(via) = TENANT1.default_via {
        lines.push(format!(
            "route add 0.0.0.0/0 via {via} router {}",
            TENANT1.name
        ));
    }
    for def in PROGRAMMED_PORTS {
        lines.push(port_add(def, def.host));
    }
    lines.join("\n") + "\n"
}

/// The entry of `host` in a `fleet status --json` document.
pub fn host_status<'a>(status: &'a Value, host: &HostDef) -> Option<&'a Value> {
    status["hosts"]
        .as_array()?
        .iter()
        .find(|h| h["name"] == host.name)
}

/// True when `host` is up in `status` and has applied revision `rev` or a later one.
pub fn has_applied(status: &Value, host: &HostDef, rev: i64) -> bool {
    host_status(status, host).is_some_and(|h| {
        h["state"] == "up" && h["applied_revision"].as_i64().is_some_and(|a| a >= rev)
    })
}

/// The whole fleet cloud, running. Dropping it stops the routers first, then removes the
/// instances, the hosts, etcd, the SNAT node and the fabric.
#[derive(Debug)]
pub struct FleetCloud {
    /// In [`HOSTS`] order; `None` while a host is stopped. First field: dropped first.
    routers: Vec<Option<Dvrd>>,
    /// Each host's configuration, in [`HOSTS`] order: what a restart starts again.
    configs: Vec<DvrdConfig>,
    /// In [`FLEET_INSTANCES`] order.
    instances: Vec<Instance>,
    /// Each host's switches, one per fleet network.
    switches: Vec<Bridge>,
    /// In [`HOSTS`] order.
    fabric_ports: Vec<FabricPort>,
    /// In [`HOSTS`] order.
    host_ns: Vec<Netns>,
    etcd: Etcd,
    /// The management network's bridge, in etcd's namespace.
    mgmt: Bridge,
    etcd_ns: Netns,
    snat: Netns,
    fabric: Fabric,
    scope: Scope,
}

impl FleetCloud {
    /// Builds everything, starts etcd (empty) and the three routers (ready when it returns).
    /// Nothing is programmed yet: see [`program`](Self::program).
    pub fn build(scope: &Scope) -> FleetCloud {
        FleetCloud::build_with(scope, |_, cfg| cfg)
    }

    /// [`build`](Self::build), each host's configuration passed through `tweak`.
    pub fn build_with(
        scope: &Scope,
        tweak: impl Fn(&HostDef, DvrdConfig) -> DvrdConfig,
    ) -> FleetCloud {
        let mut fabric = Fabric::new(scope, "fab");
        let (host_ns, fabric_ports) = hosts_on_fabric(scope, &mut fabric, &HOSTS);
        let switches: Vec<Bridge> = host_ns
            .iter()
            .flat_map(|ns| FLEET_NETWORKS.map(|n| host_switch(scope, ns, n)))
            .collect();
        let instances = plugged_instances(scope, &FLEET_INSTANCES, &host_ns);
        let snat = snat_node_for(scope, &mut fabric, &FLEET_INSTANCES);
        let etcd_ns = Netns::new(scope, "etcd");
        let mgmt = management_network(scope, &etcd_ns, &host_ns);
        let etcd = Etcd::start_in(scope, Some(&etcd_ns), &[ETCD_MGMT_ADDR]);
        let endpoints = [etcd.endpoint_on(ETCD_MGMT_ADDR)];
        let configs: Vec<DvrdConfig> = HOSTS
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let snapshot = scope.file(&format!("fleet-{}.json", h.name));
                let cfg =
                    fleet_host_config(i, &fabric_ports[i]).fleet(&endpoints, h.name, &snapshot);
                tweak(h, cfg)
            })
            .collect();
        // Start the three together (EAL init overlaps), then wait for each.
        let mut routers: Vec<Option<Dvrd>> = HOSTS
            .iter()
            .enumerate()
            .map(|(i, h)| Some(spawn_host(scope, h, &host_ns[i], &configs[i])))
            .collect();
        for r in routers.iter_mut().flatten() {
            r.wait_ready(READY_TIMEOUT);
        }
        FleetCloud {
            routers,
            configs,
            instances,
            switches,
            fabric_ports,
            host_ns,
            etcd,
            mgmt,
            etcd_ns,
            snat,
            fabric,
            scope: scope.clone(),
        }
    }

    /// [`build`](Self::build), [`program`](Self::program), every host converged, and the
    /// paths between the hosts warm (each has resolved the others' VTEPs), so that what a
    /// test measures waits for none of it.
    pub fn programmed(scope: &Scope) -> FleetCloud {
        FleetCloud::programmed_with(scope, |_, cfg| cfg)
    }

    /// [`programmed`](Self::programmed) with each host's configuration passed through `tweak`.
    pub fn programmed_with(
        scope: &Scope,
        tweak: impl Fn(&HostDef, DvrdConfig) -> DvrdConfig,
    ) -> FleetCloud {
        let cloud = FleetCloud::build_with(scope, tweak);
        let rev = cloud.program();
        cloud.wait_converged(rev, CONVERGE_TIMEOUT);
        cloud.warm_paths();
        cloud
    }

    /// Two answered pings on each pair of hosts: A-B (BLUE-A to RED-B), A-C (RED-A to
    /// BLUE-C), B-C (RED-B to BLUE-C).
    pub fn warm_paths(&self) {
        let opts = crate::tools::PingOpts::count(2).timeout(Duration::from_secs(3));
        for (from, to) in [(&BLUE_A, &RED_B), (&RED_A, &BLUE_C), (&RED_B, &BLUE_C)] {
            self.instance(from).ping(to.ip, &opts).assert_all_answered();
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// etcd, to kill and restart it.
    pub fn etcd_mut(&mut self) -> &mut Etcd {
        &mut self.etcd
    }

    /// The management network's bridge (in etcd's namespace): a capture there shows what the
    /// hosts say to etcd.
    pub fn mgmt_bridge(&self) -> &Bridge {
        &self.mgmt
    }

    /// etcd's namespace: the operator's station, where dvrctl and etcdctl run.
    pub fn etcd_netns(&self) -> &Netns {
        &self.etcd_ns
    }

    /// Runs `dvrctl --etcd ENDPOINT ARGS...` (the dvrctl under test, in etcd's namespace);
    /// its output, whatever the exit code.
    pub fn dvrctl(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = self
            .etcd
            .command(&self.scope.dvrctl_binary().to_string_lossy());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("DVRCTL_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(["--etcd", &self.etcd.endpoint()]).args(args);
        output_of(&mut cmd)
    }

    /// [`dvrctl`](Self::dvrctl) with the arguments of `line` (split at white space); panics
    /// unless it exits with 0; returns stdout.
    pub fn dvrctl_ok(&self, line: &str) -> String {
        self.dvrctl(&line.split_whitespace().collect::<Vec<_>>())
            .ok()
            .stdout
    }

    /// `dvrctl --etcd ENDPOINT --json ARGS` (split at white space), parsed.
    pub fn dvrctl_json(&self, line: &str) -> Value {
        let out = self.dvrctl_ok(&format!("--json {line}"));
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("dvrctl --etcd --json {line}: not JSON ({e}):\n{out}"))
    }

    /// Writes every DVR object of the fleet ([`fleet_commands`]) with one `dvrctl --etcd
    /// apply` (one etcd transaction); returns the revision of that transaction.
    pub fn program(&self) -> i64 {
        let file = self.scope.file("fleet.dvrctl");
        std::fs::write(&file, fleet_commands())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
        self.scope.register_log("fleet.dvrctl", &file);
        self.dvrctl(&["apply", &file.to_string_lossy()]).ok();
        self.etcd
            .mod_revision(&default_route_key())
            .unwrap_or_else(|| panic!("`dvrctl apply` wrote no {}", default_route_key()))
    }

    /// `dvrctl --etcd port add ...`: `def`'s port on `host` (`replace` when it exists: a
    /// move when `host` is another). Returns the revision of the write.
    pub fn put_port(&self, def: &InstanceDef, host: &HostDef, replace: bool) -> i64 {
        let mut line = port_add(def, host);
        if replace {
            line.push_str(" replace");
        }
        self.dvrctl_ok(&line);
        self.etcd
            .mod_revision(&port_key(def))
            .unwrap_or_else(|| panic!("`dvrctl {line}` wrote no {}", port_key(def)))
    }

    /// `dvrctl --etcd port del IP network N`.
    pub fn del_port(&self, def: &InstanceDef) {
        self.dvrctl_ok(&format!("port del {} network {}", def.ip, def.network.name));
    }

    /// `dvrctl --etcd --json fleet status`: the store's revision and each host's state.
    pub fn fleet_status(&self) -> Value {
        self.dvrctl_json("fleet status")
    }

    /// Waits until `fleet status` shows every host up, at revision `rev` or later; returns
    /// the last status. Panics, with it, after `timeout`.
    pub fn wait_converged(&self, rev: i64, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let status = self.fleet_status();
            if HOSTS.iter().all(|h| has_applied(&status, h, rev)) {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "the hosts did not all apply revision {rev} within {timeout:?}:\n{status:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `dvrctl` on `host`'s control socket (the local API).
    pub fn host_ctl(&self, host: &HostDef) -> Dvrctl {
        Dvrctl::of(self.router(host))
    }

    /// The `fleet` object of `dvrctl --json stats` on `host` (`state`, `since`,
    /// `applied_revision`, `rejected`); `Null` when absent.
    pub fn local_fleet(&self, host: &HostDef) -> Value {
        self.host_ctl(host).json("stats")["fleet"].clone()
    }

    /// Waits until `host`'s own `fleet` object satisfies `pred`; returns it. Panics, with
    /// it, after `timeout`.
    pub fn wait_local_fleet(
        &self,
        host: &HostDef,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let fleet = self.local_fleet(host);
            if pred(&fleet) {
                return fleet;
            }
            assert!(
                start.elapsed() < timeout,
                "{}: not {what} within {timeout:?}: fleet {fleet:#}",
                host.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The namespace of instance `def`.
    pub fn instance(&self, def: &InstanceDef) -> &Instance {
        let i = FLEET_INSTANCES
            .iter()
            .position(|d| d.tag == def.tag)
            .unwrap_or_else(|| panic!("{} has no namespace", def.name));
        &self.instances[i]
    }

    /// The dvrd of `host`; panics while it is stopped.
    pub fn router(&self, host: &HostDef) -> &Dvrd {
        self.routers[host_index(host)]
            .as_ref()
            .unwrap_or_else(|| panic!("{} is stopped", host.name))
    }

    /// The configuration `host` runs with.
    pub fn config(&self, host: &HostDef) -> &DvrdConfig {
        &self.configs[host_index(host)]
    }

    /// The namespace of `host`: its dvrd, its switches, its fabric and management links.
    pub fn host_netns(&self, host: &HostDef) -> &Netns {
        &self.host_ns[host_index(host)]
    }

    pub fn fabric_port(&self, host: &HostDef) -> &FabricPort {
        &self.fabric_ports[host_index(host)]
    }

    pub fn fabric(&self) -> &Fabric {
        &self.fabric
    }

    /// The SNAT node's namespace.
    pub fn snat_node(&self) -> &Netns {
        &self.snat
    }

    /// The switch (Linux bridge) of `network` on `host`.
    pub fn switch(&self, host: &HostDef, network: &NetworkDef) -> &Bridge {
        let n = FLEET_NETWORKS
            .iter()
            .position(|x| x.name == network.name)
            .unwrap_or_else(|| panic!("{} is no fleet network", network.name));
        &self.switches[host_index(host) * FLEET_NETWORKS.len() + n]
    }

    /// Panics, with its logs, if a running router has exited.
    pub fn assert_running(&mut self) {
        for r in self.routers.iter_mut().flatten() {
            r.assert_running();
        }
    }

    /// Stops `host`'s dvrd (SIGTERM) and returns how it ended.
    pub fn stop_host(&mut self, host: &HostDef) -> DvrdExit {
        self.routers[host_index(host)]
            .take()
            .unwrap_or_else(|| panic!("{} is already stopped", host.name))
            .stop()
    }

    /// Starts `host`'s dvrd again with the same configuration (and so the same snapshot) and
    /// waits until it is ready.
    pub fn start_host(&mut self, host: &HostDef) {
        let i = host_index(host);
        assert!(self.routers[i].is_none(), "{} is running", host.name);
        let mut d = spawn_host(&self.scope, host, &self.host_ns[i], &self.configs[i]);
        d.wait_ready(READY_TIMEOUT);
        self.routers[i] = Some(d);
    }

    /// [`stop_host`](Self::stop_host) then [`start_host`](Self::start_host); how the old
    /// process ended.
    pub fn restart_host(&mut self, host: &HostDef) -> DvrdExit {
        let exit = self.stop_host(host);
        self.start_host(host);
        exit
    }

    /// Takes `host`'s management link down: its dvrd cannot reach etcd (connections fail at
    /// once: no route), its data path is untouched.
    pub fn cut_from_etcd(&self, host: &HostDef) {
        self.host_netns(host)
            .ip(&["link", "set", "dev", MGMT_IF, "down"]);
    }

    /// Brings `host`'s management link back up (its address and route come back with it).
    pub fn reconnect_to_etcd(&self, host: &HostDef) {
        self.host_netns(host)
            .ip(&["link", "set", "dev", MGMT_IF, "up"]);
    }

    /// Stops every running router (SIGTERM) and returns how each ended, in [`HOSTS`] order
    /// (stopped hosts left out).
    pub fn stop(&mut self) -> Vec<DvrdExit> {
        self.routers
            .iter_mut()
            .filter_map(Option::take)
            .map(Dvrd::stop)
            .collect()
    }
}

/// The local settings of host number `index`: control thread and worker CPUs, ports `blue`
/// and `red` (its switches), the fabric port. Nothing else: the rest comes from etcd.
pub fn fleet_host_config(index: usize, fabric: &FabricPort) -> DvrdConfig {
    let (main, worker) = cores_of(index);
    let mut cfg = DvrdConfig::local().cores(main, worker);
    for n in FLEET_NETWORKS {
        cfg = cfg.port(PortCfg::local(n.name, n.name).mtu(INSTANCE_MTU));
    }
    cfg.port(fabric.port(FABRIC_PORT))
}

fn spawn_host(scope: &Scope, host: &HostDef, ns: &Netns, cfg: &DvrdConfig) -> Dvrd {
    Dvrd::spawn_in(scope, host.name, Some(ns), |prefix, socket| {
        cfg.to_toml(prefix, socket)
    })
}

/// A namespace per host of `hosts`, each with its port on `fabric`, in `hosts` order.
pub fn hosts_on_fabric(
    scope: &Scope,
    fabric: &mut Fabric,
    hosts: &[&HostDef],
) -> (Vec<Netns>, Vec<FabricPort>) {
    let host_ns: Vec<Netns> = hosts.iter().map(|h| Netns::new(scope, h.name)).collect();
    let ports = hosts
        .iter()
        .zip(&host_ns)
        .map(|(h, ns)| fabric.attach_host_in(h.tag, FABRIC_MTU, Some(ns)))
        .collect();
    (host_ns, ports)
}

/// Each instance of `defs` in the namespace of its host (`host_ns` in [`HOSTS`] order),
/// plugged into the switch of its network there, in `defs` order.
pub fn plugged_instances(scope: &Scope, defs: &[&InstanceDef], host_ns: &[Netns]) -> Vec<Instance> {
    defs.iter()
        .map(|def| {
            let ns = &host_ns[host_index(def.host)];
            let inst = Instance::new_in(scope, def.tag, def.spec(), Some(ns));
            plug(ns, def.network, inst.host_if());
            inst
        })
        .collect()
}

/// The switch of `network` in host namespace `ns`: bridge `br-<network>`, and the veth whose
/// end `<network>` is the dvrd port (silent, offloads off) and whose end `<network>-br` is
/// in the bridge. Both ends live and die with the namespace.
pub fn host_switch(scope: &Scope, ns: &Netns, network: &NetworkDef) -> Bridge {
    let bridge = Bridge::new(scope, Some(ns), &switch_name(network));
    let port = network.name;
    let uplink = format!("{port}-br");
    let mtu = INSTANCE_MTU.to_string();
    ns.ip(&["link", "add", port, "type", "veth", "peer", "name", &uplink]);
    for end in [port, uplink.as_str()] {
        make_silent(Some(ns.name()), end);
        disable_offloads(Some(ns.name()), end);
        ns.ip(&["link", "set", "dev", end, "mtu", &mtu, "up"]);
    }
    bridge.attach(&uplink);
    bridge
}

fn switch_name(network: &NetworkDef) -> String {
    format!("br-{}", network.name)
}

/// Plugs the host end `host_if` of an instance (in host namespace `ns`) into the switch of
/// `network`.
pub fn plug(ns: &Netns, network: &NetworkDef, host_if: &str) {
    ip(
        Some(ns.name()),
        &[
            "link",
            "set",
            "dev",
            host_if,
            "master",
            &switch_name(network),
        ],
    );
    ip(Some(ns.name()), &["link", "set", "dev", host_if, "up"]);
}

/// The management network: bridge `mgmt` in etcd's namespace with etcd's address, and a
/// veth from it to each host (`mgmt0`, the host's address). Every link lives and dies with
/// the namespaces.
fn management_network(scope: &Scope, etcd_ns: &Netns, host_ns: &[Netns]) -> Bridge {
    let bridge = Bridge::new(scope, Some(etcd_ns), MGMT_BRIDGE);
    // A bridge is made silent; this one is etcd's interface and answers ARP.
    etcd_ns.sysctl(&format!("net.ipv4.conf.{MGMT_BRIDGE}.arp_ignore"), "0");
    etcd_ns.ip(&[
        "addr",
        "add",
        &format!("{ETCD_MGMT_ADDR}/{MGMT_PREFIX_LEN}"),
        "dev",
        MGMT_BRIDGE,
    ]);
    for (h, ns) in HOSTS.iter().zip(host_ns) {
        let end = format!("mg-{}", h.name);
        etcd_ns.ip(&[
            "link",
            "add",
            &end,
            "type",
            "veth",
            "peer",
            "name",
            MGMT_IF,
            "netns",
            ns.name(),
        ]);
        bridge.attach(&end);
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/{MGMT_PREFIX_LEN}", mgmt_addr(h)),
            "dev",
            MGMT_IF,
        ]);
        ns.ip(&["link", "set", "dev", MGMT_IF, "up"]);
    }
    bridge
}

/// Polls `f` every [`POLL`] until it returns `Some`, at most `timeout`.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(POLL);
    }
}
