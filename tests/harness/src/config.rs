//! A dvrd configuration described in Rust and written as the TOML file dvrd reads (the format
//! of `dvrd.example.toml`, parsed by `src/config.rs`).
//!
//! Tests run several dvrd processes on a 2-core machine: EAL runs without hugepages on 256 MiB,
//! each process has its own `file_prefix` and control socket, the control thread is on CPU 0
//! and the one worker on CPU 1 (CPU 0 on a single-CPU machine) unless [`DvrdConfig::cores`]
//! says otherwise, idling adaptively so that the processes share the cores.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

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

/// A dvrd configuration.
#[derive(Debug, Clone)]
pub struct DvrdConfig {
    pub host: Option<HostCfg>,
    /// In order: port i is `net_af_packet<i>`.
    pub ports: Vec<PortCfg>,
    pub fabric_gateway: Option<Ipv4Addr>,
    pub peers: Vec<PeerCfg>,
    pub networks: Vec<NetworkCfg>,
    pub routers: Vec<RouterCfg>,
    pub instance_ports: Vec<InstancePortCfg>,
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
            ports: Vec::new(),
            fabric_gateway: None,
            peers: Vec::new(),
            networks: Vec::new(),
            routers: Vec::new(),
            instance_ports: Vec::new(),
            idle: "adaptive".into(),
            memory_mb: 256,
            mbufs: None,
            log_level: "info".into(),
            eal_extra_args: Vec::new(),
            extra_toml: String::new(),
            main_core: 0,
            worker_core: worker_core(),
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

    pub fn host_name(&self) -> &str {
        self.host.as_ref().map_or("", |h| h.name.as_str())
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
            "[eal]\nmain_core = {}\nhugepages = false\nmemory_mb = {}",
            self.main_core, self.memory_mb
        );
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
            if let Some(m) = p.mtu {
                let _ = writeln!(w, "mtu = {m}");
            }
            let _ = writeln!(w);
        }
        if let Some(h) = &self.host {
            let _ = writeln!(
                w,
                "[host]\nname = {}\ndvr_mac = {}\nvtep = {}\n",
                s(&h.name),
                s(&h.dvr_mac.to_string()),
                s(&h.vtep.to_string())
            );
        }
        if let Some(g) = self.fabric_gateway {
            let _ = writeln!(w, "[fabric]\ngateway = {}\n", s(&g.to_string()));
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
        let _ = writeln!(
            w,
            "[control]\nsocket = {}\n",
            s(&control_socket.to_string_lossy())
        );
        let _ = writeln!(w, "[log]\nlevel = {}\n", s(&self.log_level));
        if !self.extra_toml.is_empty() {
            let _ = writeln!(w, "{}", self.extra_toml);
        }
        t
    }
}
