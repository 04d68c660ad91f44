//! A dvrd configuration described in Rust and written as the TOML file dvrd reads (the format
//! of `dvrd.example.toml`, parsed by `src/config.rs`).
//!
//! A fleet host ([`DvrdConfig::fleet`]) reads its DVR objects from etcd: its file holds only
//! the local settings (EAL, data plane, workers, ports, fabric, control socket, log) and the
//! `[fleet]` table, never `[host]`, `[[peers]]`, `[[networks]]`, `[[routers]]` or
//! `[[instance_ports]]` (docs of the fleet: the etcd key space and `[fleet]`).
//!
//! Tests run several dvrd processes on a 2-core machine: EAL runs without hugepages on 256 MiB,
//! each process has its own `file_prefix` and control socket, the control thread is on CPU 0
//! and the one worker on CPU 1 (CPU 0 on a single-CPU machine) unless [`DvrdConfig::cores`]
//! says otherwise, idling adaptively so that the processes share the cores.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::frames::Mac;

/// A DPDK port: an `net_af_packet` device on a kernel interface.
#[derive(Debug, Clone)]
pub struct PortCfg {
    /// The port's name in the config (networks and workers refer to it).
    pub name: String,
    /// The kernel interface the af_packet device opens.
    pub iface: String,
    /// The underlay port.
    pub fabric: bool,
    /// The external (provider) network's port, where floating IPs live.
    pub external: bool,
    pub mtu: Option<u16>,
    /// Appended to the vdev string (`,qpairs=2`, `,framecnt=...`), empty by default.
    pub vdev_args: String,
}

impl PortCfg {
    pub fn local(name: &str, iface: &str) -> Self {
        PortCfg {
            name: name.into(),
            iface: iface.into(),
            fabric: false,
            external: false,
            mtu: None,
            vdev_args: String::new(),
        }
    }

    pub fn fabric(name: &str, iface: &str) -> Self {
        PortCfg {
            fabric: true,
            ..PortCfg::local(name, iface)
        }
    }

    pub fn external(name: &str, iface: &str) -> Self {
        PortCfg {
            external: true,
            ..PortCfg::local(name, iface)
        }
    }

    pub fn mtu(self, mtu: u16) -> Self {
        PortCfg {
            mtu: Some(mtu),
            ..self
        }
    }
}

/// This host, or a peer host.
#[derive(Debug, Clone)]
pub struct HostCfg {
    pub name: String,
    pub dvr_mac: Mac,
    pub vtep: Ipv4Addr,
}

pub type PeerCfg = HostCfg;

impl HostCfg {
    pub fn new(name: &str, dvr_mac: &str, vtep: &str) -> Self {
        HostCfg {
            name: name.into(),
            dvr_mac: crate::frames::mac(dvr_mac),
            vtep: vtep.parse().expect("VTEP address"),
        }
    }
}

/// A tenant network.
#[derive(Debug, Clone)]
pub struct NetworkCfg {
    pub name: String,
    pub vni: u32,
    /// Local ports (port names).
    pub ports: Vec<String>,
}

impl NetworkCfg {
    pub fn new(name: &str, vni: u32, ports: &[&str]) -> Self {
        NetworkCfg {
            name: name.into(),
            vni,
            ports: ports.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// A router interface: gateway IP/length (text, so that tests can write invalid ones) and MAC.
#[derive(Debug, Clone)]
pub struct InterfaceCfg {
    pub network: String,
    pub address: String,
    pub mac: Mac,
}

#[derive(Debug, Clone)]
pub struct RouteCfg {
    pub prefix: String,
    pub via: Ipv4Addr,
}

#[derive(Debug, Clone)]
pub struct RouterCfg {
    pub name: String,
    pub large: bool,
    pub interfaces: Vec<InterfaceCfg>,
    pub routes: Vec<RouteCfg>,
}

impl RouterCfg {
    pub fn new(name: &str) -> Self {
        RouterCfg {
            name: name.into(),
            large: false,
            interfaces: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Adds an interface: `interface("blue", "10.0.1.1/24", "fa:16:3e:00:01:01")`.
    pub fn interface(mut self, network: &str, address: &str, mac: &str) -> Self {
        self.interfaces.push(InterfaceCfg {
            network: network.into(),
            address: address.into(),
            mac: crate::frames::mac(mac),
        });
        self
    }

    pub fn route(mut self, prefix: &str, via: &str) -> Self {
        self.routes.push(RouteCfg {
            prefix: prefix.into(),
            via: via.parse().expect("next hop address"),
        });
        self
    }
}

/// An instance port: a permanent neighbour on `host` (this host's name or a peer's).
#[derive(Debug, Clone)]
pub struct InstancePortCfg {
    pub network: String,
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub host: String,
    /// The local port, when the network has several on this host.
    pub port: Option<String>,
}

impl InstancePortCfg {
    pub fn new(network: &str, ip: Ipv4Addr, mac: Mac, host: &str) -> Self {
        InstancePortCfg {
            network: network.into(),
            ip,
            mac,
            host: host.into(),
            port: None,
        }
    }
}

/// This host on the external network (`[external]`): its own address there, with the prefix
/// length (`203.0.113.21/24`), and the upstream router.
#[derive(Debug, Clone)]
pub struct ExternalCfg {
    pub address: String,
    pub gateway: Ipv4Addr,
}

/// A floating IP (`[[floating_ips]]`): `ip` stands for the instance port with fixed IP `port`
/// on a network of `router`.
#[derive(Debug, Clone)]
pub struct FloatingIpCfg {
    pub ip: Ipv4Addr,
    pub router: String,
    pub port: Ipv4Addr,
}

/// The `[fleet]` table: where the DVR objects come from.
#[derive(Debug, Clone)]
pub struct FleetCfg {
    /// etcd client URLs (`http://127.0.0.1:23790`).
    pub endpoints: Vec<String>,
    /// The key prefix; dvrd's default (`/dvr/v1/`) when `None`.
    pub prefix: Option<String>,
    /// This host's name: `hosts/<host>` in etcd gives its DVR MAC and VTEP.
    pub host: String,
    /// Where dvrd keeps what it applied last, to forward from while etcd is away.
    pub snapshot: PathBuf,
    /// `[fleet.attach]`: the local ports of a network, when they are not the one port named
    /// like the network. In the order written.
    pub attach: Vec<(String, Vec<String>)>,
    /// `[fleet.tls]`: the CA, this host's certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

/// A dvrd configuration.
#[derive(Debug, Clone)]
pub struct DvrdConfig {
    /// This host, in the file (`[host]`); `None` for a fleet host, which reads it from etcd.
    pub host: Option<HostCfg>,
    /// Set for a fleet host: the file then holds no host, peer, network, router or instance
    /// port.
    pub fleet: Option<FleetCfg>,
    /// In order: port i is `net_af_packet<i>`.
    pub ports: Vec<PortCfg>,
    pub fabric_gateway: Option<Ipv4Addr>,
    pub peers: Vec<PeerCfg>,
    pub networks: Vec<NetworkCfg>,
    pub routers: Vec<RouterCfg>,
    pub instance_ports: Vec<InstancePortCfg>,
    /// Needs a port with `external` set.
    pub external: Option<ExternalCfg>,
    pub floating_ips: Vec<FloatingIpCfg>,
    /// `adaptive` (default here: several daemons share two cores) or `poll`.
    pub idle: String,
    pub memory_mb: u32,
    pub mbufs: Option<u32>,
    /// The `[log] level` filter.
    pub log_level: String,
    /// Passed to EAL as they are.
    pub eal_extra_args: Vec<String>,
    /// Appended verbatim at the end of the file. Must start with a table header (`[neighbor]`,
    /// `[icmp]`...): a bare key there would land in the last table written.
    pub extra_toml: String,
    /// The CPU of the control thread (EAL main lcore).
    pub main_core: usize,
    /// The CPU of the one worker.
    pub worker_core: usize,
    /// EAL on hugepages with a shared configuration, which secondary processes
    /// (`dpdk-dumpcap`) need; off by default (`--no-huge`), see the module doc.
    pub hugepages: bool,
    /// `[eal] telemetry`; dvrd's default (on) when `None`.
    pub telemetry: Option<bool>,
    /// `[eal] capture`: `dpdk-dumpcap` may attach (needs [`hugepages`](Self::hugepages)).
    pub capture: bool,
}

/// The CPU of the (single) worker: 1, or 0 on a single-CPU machine.
pub fn worker_core() -> usize {
    if std::thread::available_parallelism().map_or(1, usize::from) >= 2 {
        1
    } else {
        0
    }
}

/// A TOML basic string.
fn s(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|i| s(i)).collect::<Vec<_>>().join(", ")
    )
}

impl DvrdConfig {
    /// This host, nothing else yet.
    pub fn new(host: HostCfg) -> Self {
        DvrdConfig {
            host: Some(host),
            ..DvrdConfig::local()
        }
    }

    /// Local settings only, no host yet: the base of a fleet host ([`fleet`](Self::fleet)).
    pub fn local() -> Self {
        DvrdConfig {
            host: None,
            fleet: None,
            ports: Vec::new(),
            fabric_gateway: None,
            peers: Vec::new(),
            networks: Vec::new(),
            routers: Vec::new(),
            instance_ports: Vec::new(),
            external: None,
            floating_ips: Vec::new(),
            idle: "adaptive".into(),
            memory_mb: 256,
            mbufs: None,
            log_level: "info".into(),
            eal_extra_args: Vec::new(),
            extra_toml: String::new(),
            main_core: 0,
            worker_core: worker_core(),
            hugepages: false,
            telemetry: None,
            capture: false,
        }
    }

    /// Runs EAL on hugepages ([`DvrdConfig::hugepages`]); the caller reserves them.
    pub fn hugepages(self) -> Self {
        DvrdConfig {
            hugepages: true,
            ..self
        }
    }

    /// Hugepages and `[eal] capture`: secondary processes (`dpdk-dumpcap`) may attach.
    pub fn capture(self) -> Self {
        DvrdConfig {
            capture: true,
            ..self.hugepages()
        }
    }

    /// Sets `[eal] telemetry`.
    pub fn telemetry(self, on: bool) -> Self {
        DvrdConfig {
            telemetry: Some(on),
            ..self
        }
    }

    /// Puts the control thread on CPU `main` and the worker on CPU `worker` (several dvrd
    /// processes on one machine spread over its cores this way).
    pub fn cores(self, main: usize, worker: usize) -> Self {
        DvrdConfig {
            main_core: main,
            worker_core: worker,
            ..self
        }
    }

    /// This host's name: from `[host]`, or the fleet's `host`.
    pub fn host_name(&self) -> &str {
        match (&self.host, &self.fleet) {
            (Some(h), _) => h.name.as_str(),
            (None, Some(f)) => f.host.as_str(),
            (None, None) => "",
        }
    }

    /// Makes this a fleet host named `host` that reads its DVR objects from the etcd at
    /// `endpoints` and keeps its snapshot at `snapshot`. The file it writes then holds none of
    /// the host, peers, networks, routers and instance ports set here.
    pub fn fleet(self, endpoints: &[String], host: &str, snapshot: &Path) -> Self {
        DvrdConfig {
            fleet: Some(FleetCfg {
                endpoints: endpoints.to_vec(),
                prefix: None,
                host: host.into(),
                snapshot: snapshot.to_path_buf(),
                attach: Vec::new(),
                tls: None,
            }),
            ..self
        }
    }

    /// The fleet's key prefix (dvrd's default `/dvr/v1/` otherwise). Needs [`fleet`](Self::fleet).
    pub fn fleet_prefix(mut self, prefix: &str) -> Self {
        self.fleet_mut().prefix = Some(prefix.into());
        self
    }

    /// Attaches fleet network `network` to the local ports `ports` (`[fleet.attach]`) instead
    /// of the port named like it. Needs [`fleet`](Self::fleet).
    pub fn attach(mut self, network: &str, ports: &[&str]) -> Self {
        let ports = ports.iter().map(|p| p.to_string()).collect();
        self.fleet_mut().attach.push((network.into(), ports));
        self
    }

    /// Talks TLS to etcd with `ca`, `cert` and `key` (`[fleet.tls]`). Needs
    /// [`fleet`](Self::fleet).
    pub fn fleet_tls(mut self, ca: &Path, cert: &Path, key: &Path) -> Self {
        self.fleet_mut().tls = Some((ca.into(), cert.into(), key.into()));
        self
    }

    fn fleet_mut(&mut self) -> &mut FleetCfg {
        self.fleet
            .as_mut()
            .expect("a fleet setting on a config without `fleet(...)`")
    }

    pub fn port(mut self, p: PortCfg) -> Self {
        self.ports.push(p);
        self
    }

    pub fn peer(mut self, p: PeerCfg) -> Self {
        self.peers.push(p);
        self
    }

    pub fn network(mut self, n: NetworkCfg) -> Self {
        self.networks.push(n);
        self
    }

    pub fn router(mut self, r: RouterCfg) -> Self {
        self.routers.push(r);
        self
    }

    pub fn instance_port(mut self, p: InstancePortCfg) -> Self {
        self.instance_ports.push(p);
        self
    }

    /// This host's `address` (`203.0.113.21/24`) on the external network and its `gateway`.
    pub fn external(self, address: &str, gateway: Ipv4Addr) -> Self {
        let external = Some(ExternalCfg {
            address: address.into(),
            gateway,
        });
        DvrdConfig { external, ..self }
    }

    /// Floating IP `ip` for the instance port with fixed IP `port` on a network of `router`.
    pub fn floating_ip(mut self, ip: Ipv4Addr, router: &str, port: Ipv4Addr) -> Self {
        self.floating_ips.push(FloatingIpCfg {
            ip,
            router: router.into(),
            port,
        });
        self
    }

    /// The DPDK device name of port `i`.
    pub fn device(i: usize) -> String {
        format!("net_af_packet{i}")
    }

    /// The TOML text, with EAL's `file_prefix` and the control socket given by the caller
    /// (unique per process).
    pub fn to_toml(&self, file_prefix: &str, control_socket: &Path) -> String {
        let mut t = String::new();
        let w = &mut t;
        let _ = writeln!(
            w,
            "# Written by the end-to-end test harness (tests/harness/src/config.rs).\n"
        );
        let vdevs: Vec<String> = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{},iface={}{}", Self::device(i), p.iface, p.vdev_args))
            .collect();
        let _ = writeln!(
            w,
            "[eal]\nmain_core = {}\nhugepages = {}\nmemory_mb = {}",
            self.main_core, self.hugepages, self.memory_mb
        );
        if let Some(on) = self.telemetry {
            let _ = writeln!(w, "telemetry = {on}");
        }
        if self.capture {
            let _ = writeln!(w, "capture = true");
        }
        let _ = writeln!(
            w,
            "file_prefix = {}\npci = false\nvdevs = {}",
            s(file_prefix),
            list(&vdevs)
        );
        let _ = writeln!(w, "extra_args = {}\n", list(&self.eal_extra_args));
        let _ = writeln!(w, "[dataplane]\nidle = {}", s(&self.idle));
        if let Some(m) = self.mbufs {
            let _ = writeln!(w, "mbufs = {m}");
        }
        let rx: Vec<String> = self.ports.iter().map(|p| p.name.clone()).collect();
        let _ = writeln!(
            w,
            "\n[[workers]]\ncore = {}\nrx = {}\n",
            self.worker_core,
            list(&rx)
        );
        for (i, p) in self.ports.iter().enumerate() {
            let _ = writeln!(
                w,
                "[[ports]]\nname = {}\ndevice = {}",
                s(&p.name),
                s(&Self::device(i))
            );
            if p.fabric {
                let _ = writeln!(w, "fabric = true");
            }
            if p.external {
                let _ = writeln!(w, "external = true");
            }
            if let Some(m) = p.mtu {
                let _ = writeln!(w, "mtu = {m}");
            }
            let _ = writeln!(w);
        }
        if let Some(g) = self.fabric_gateway {
            let _ = writeln!(w, "[fabric]\ngateway = {}\n", s(&g.to_string()));
        }
        if self.fleet.is_none() {
            self.write_objects(w);
        }
        let _ = writeln!(
            w,
            "[control]\nsocket = {}\n",
            s(&control_socket.to_string_lossy())
        );
        let _ = writeln!(w, "[log]\nlevel = {}\n", s(&self.log_level));
        if let Some(f) = &self.fleet {
            write_fleet(w, f);
        }
        if !self.extra_toml.is_empty() {
            let _ = writeln!(w, "{}", self.extra_toml);
        }
        t
    }

    /// The DVR objects of a host that is no fleet host: `[host]`, `[[peers]]`, `[[networks]]`,
    /// `[[routers]]`, `[[instance_ports]]`.
    fn write_objects(&self, w: &mut String) {
        if let Some(h) = &self.host {
            let _ = writeln!(
                w,
                "[host]\nname = {}\ndvr_mac = {}\nvtep = {}\n",
                s(&h.name),
                s(&h.dvr_mac.to_string()),
                s(&h.vtep.to_string())
            );
        }
        for p in &self.peers {
            let _ = writeln!(
                w,
                "[[peers]]\nname = {}\ndvr_mac = {}\nvtep = {}\n",
                s(&p.name),
                s(&p.dvr_mac.to_string()),
                s(&p.vtep.to_string())
            );
        }
        for n in &self.networks {
            let _ = writeln!(
                w,
                "[[networks]]\nname = {}\nvni = {}\nports = {}\n",
                s(&n.name),
                n.vni,
                list(&n.ports)
            );
        }
        for r in &self.routers {
            let _ = writeln!(
                w,
                "[[routers]]\nname = {}\nlarge = {}\n",
                s(&r.name),
                r.large
            );
            for i in &r.interfaces {
                let _ = writeln!(
                    w,
                    "[[routers.interfaces]]\nnetwork = {}\naddress = {}\nmac = {}\n",
                    s(&i.network),
                    s(&i.address),
                    s(&i.mac.to_string())
                );
            }
            for route in &r.routes {
                let _ = writeln!(
                    w,
                    "[[routers.routes]]\nprefix = {}\nvia = {}\n",
                    s(&route.prefix),
                    s(&route.via.to_string())
                );
            }
        }
        for p in &self.instance_ports {
            let _ = writeln!(
                w,
                "[[instance_ports]]\nnetwork = {}\nip = {}\nmac = {}\nhost = {}",
                s(&p.network),
                s(&p.ip.to_string()),
                s(&p.mac.to_string()),
                s(&p.host)
            );
            if let Some(port) = &p.port {
                let _ = writeln!(w, "port = {}", s(port));
            }
            let _ = writeln!(w);
        }
        self.write_floating_ips(w);
    }

    /// `[external]` and `[[floating_ips]]`.
    fn write_floating_ips(&self, w: &mut String) {
        if let Some(e) = &self.external {
            let _ = writeln!(
                w,
                "[external]\naddress = {}\ngateway = {}\n",
                s(&e.address),
                s(&e.gateway.to_string())
            );
        }
        for f in &self.floating_ips {
            let _ = writeln!(
                w,
                "[[floating_ips]]\nip = {}\nrouter = {}\nport = {}\n",
                s(&f.ip.to_string()),
                s(&f.router),
                s(&f.port.to_string())
            );
        }
    }
}

/// The `[fleet]` table and its `[fleet.attach]` table.
fn write_fleet(w: &mut String, f: &FleetCfg) {
    let _ = writeln!(w, "[fleet]\nendpoints = {}", list(&f.endpoints));
    if let Some(p) = &f.prefix {
        let _ = writeln!(w, "prefix = {}", s(p));
    }
    let _ = writeln!(
        w,
        "host = {}\nsnapshot = {}\n",
        s(&f.host),
        s(&f.snapshot.to_string_lossy())
    );
    if !f.attach.is_empty() {
        let _ = writeln!(w, "[fleet.attach]");
        for (network, ports) in &f.attach {
            let _ = writeln!(w, "{} = {}", s(network), list(ports));
        }
        let _ = writeln!(w);
    }
    if let Some((ca, cert, key)) = &f.tls {
        let p = |p: &PathBuf| s(&p.to_string_lossy());
        let _ = writeln!(
            w,
            "[fleet.tls]\nca = {}\ncert = {}\nkey = {}\n",
            p(ca),
            p(cert),
            p(key)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet_host() -> DvrdConfig {
        DvrdConfig::new(HostCfg::new("host-a", "fa:16:3f:00:00:0a", "192.0.2.10"))
            .port(PortCfg::local("blue", "blue"))
            .port(PortCfg::fabric("fabric", "fab").mtu(1500))
            .peer(HostCfg::new("host-b", "fa:16:3f:00:00:0b", "192.0.2.20"))
            .network(NetworkCfg::new("blue", 1001, &["blue"]))
            .router(RouterCfg::new("tenant1").interface("blue", "10.0.1.1/24", "fa:16:3e:00:01:01"))
            .instance_port(InstancePortCfg::new(
                "blue",
                Ipv4Addr::new(10, 0, 1, 5),
                crate::frames::mac("fa:16:3e:aa:01:05"),
                "host-a",
            ))
            .fleet(
                &["http://198.18.0.1:20000".to_string()],
                "host-a",
                Path::new("/tmp/x/fleet-host-a.json"),
            )
    }

    #[test]
    fn a_fleet_host_writes_local_settings_and_the_fleet_table_only() {
        let cfg = fleet_host().attach("blue", &["blue", "blue2"]);
        assert_eq!(cfg.host_name(), "host-a");
        let text = cfg.to_toml("dvt0000a", Path::new("/tmp/s.sock"));
        for table in [
            "[host]",
            "[[peers]]",
            "[[networks]]",
            "[[routers]]",
            "[[routers.interfaces]]",
            "[[instance_ports]]",
        ] {
            assert!(
                !text.contains(table),
                "{table} in a fleet host's file:\n{text}"
            );
        }
        for local in [
            "[eal]",
            "[dataplane]",
            "[[workers]]",
            "[[ports]]",
            "[control]",
            "[log]",
        ] {
            assert!(text.contains(local), "no {local}:\n{text}");
        }
        assert!(
            text.contains(
                "[fleet]\nendpoints = [\"http://198.18.0.1:20000\"]\nhost = \"host-a\"\n\
                 snapshot = \"/tmp/x/fleet-host-a.json\"\n\n[fleet.attach]\n\"blue\" = [\"blue\", \"blue2\"]\n"
            ),
            "{text}"
        );
        assert!(!text.contains("\nprefix ="), "{text}");
    }

    #[test]
    fn a_fleet_prefix_is_written_when_set() {
        let text = DvrdConfig::local()
            .fleet(
                &["http://127.0.0.1:1".to_string()],
                "h",
                Path::new("/s.json"),
            )
            .fleet_prefix("/other/")
            .to_toml("p", Path::new("/s.sock"));
        assert!(
            text.contains("prefix = \"/other/\"\nhost = \"h\""),
            "{text}"
        );
        assert!(!text.contains("[fleet.attach]"), "{text}");
        assert!(!text.contains("[host]"), "{text}");
    }
}
