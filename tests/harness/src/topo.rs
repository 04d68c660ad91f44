//! Topology building blocks: instances (a namespace behind a veth that dvrd attaches to) and
//! the fabric (a Linux bridge in its own namespace: the VXLAN underlay between hosts).

use std::fmt;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use crate::cmd::CmdOutput;
use crate::config::PortCfg;
use crate::frames::{mac, Mac};
use crate::net::{add_veth, disable_offloads, ip, make_silent, move_link, Bridge, Link, Netns};
use crate::process::Process;
use crate::test_scope::Scope;
use crate::tools::{arping, inject_frames, ping, ArpingResult, Capture, PingOpts, PingResult};

/// The interface name of an instance inside its namespace.
pub const INSTANCE_IFNAME: &str = "eth0";
/// Longest tag of an instance or fabric port: the prefix (7) + tag + one suffix character
/// must fit in 15.
pub const TAG_LEN_MAX: usize = 7;

/// Parses `10.0.1.5/24`.
pub fn cidr(text: &str) -> (Ipv4Addr, u8) {
    let (a, l) = text
        .split_once('/')
        .unwrap_or_else(|| panic!("`{text}` is not ADDRESS/LENGTH"));
    let a = a.parse().unwrap_or_else(|e| panic!("`{text}`: {e}"));
    let l: u8 = l.parse().unwrap_or_else(|e| panic!("`{text}`: {e}"));
    assert!(l <= 32, "`{text}`: prefix length above 32");
    (a, l)
}

/// Creates the veth pair `host` and `peer` and makes `host` an end a dvrd attaches to: moved
/// into `host_ns` (None: it stays in the root namespace), silent (no IPv6, no ARP answers),
/// offloads off, MTU `mtu`, up. `peer` stays down in the root namespace for the caller.
fn dvrd_end(scope: &Scope, (host, host_ns): (&str, Option<&Netns>), peer: &str, mtu: &str) -> Link {
    add_veth(host, peer);
    let host_ns = host_ns.map(Netns::name);
    if let Some(ns) = host_ns {
        move_link(host, ns);
    }
    let link = Link::adopt(scope, host_ns, host);
    make_silent(host_ns, host);
    disable_offloads(host_ns, host);
    link.set(&["mtu", mtu, "up"]);
    link
}

/// What an instance looks like from inside.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub mac: Mac,
    /// The default route's next hop (the router interface's gateway IP).
    pub gateway: Option<Ipv4Addr>,
    /// MTU of both veth ends.
    pub mtu: u16,
}

impl InstanceSpec {
    /// `InstanceSpec::new("10.0.1.5/24", "fa:16:3e:aa:01:05", "10.0.1.1")`, MTU 1500.
    pub fn new(address: &str, mac_text: &str, gateway: &str) -> Self {
        let (address, prefix_len) = cidr(address);
        InstanceSpec {
            address,
            prefix_len,
            mac: mac(mac_text),
            gateway: Some(
                gateway
                    .parse()
                    .unwrap_or_else(|e| panic!("`{gateway}`: {e}")),
            ),
            mtu: 1500,
        }
    }

    pub fn mtu(self, mtu: u16) -> Self {
        InstanceSpec { mtu, ..self }
    }
}

/// An instance (VM or container stand-in): namespace `<prefix>-<tag>` holding `eth0` with the
/// spec's IP, MAC and default route; the veth's other end (`<prefix><tag>`) is in the root
/// namespace (or `host_ns`), silent (no IP, no IPv6, no ARP answers), offloads off on both
/// ends: the end dvrd attaches to with `net_af_packet`.
pub struct Instance {
    tag: String,
    spec: InstanceSpec,
    host_if: Link,
    netns: Netns,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Instance({} {}/{} {} via {:?})",
            self.netns.name(),
            self.spec.address,
            self.spec.prefix_len,
            self.spec.mac,
            self.host_if
        )
    }
}

impl Instance {
    /// An instance whose host end is in the root namespace.
    pub fn new(scope: &Scope, tag: &str, spec: InstanceSpec) -> Instance {
        Instance::new_in(scope, tag, spec, None)
    }

    /// An instance whose host end is in `host_ns` (None: the root namespace).
    pub fn new_in(
        scope: &Scope,
        tag: &str,
        spec: InstanceSpec,
        host_ns: Option<&Netns>,
    ) -> Instance {
        assert!(
            tag.len() <= TAG_LEN_MAX,
            "instance tag `{tag}` is longer than {TAG_LEN_MAX}"
        );
        let netns = Netns::new(scope, tag);
        let inner_tmp = scope.ifname(&format!("{tag}i"));
        let mtu = spec.mtu.to_string();
        let host_if = dvrd_end(scope, (&scope.ifname(tag), host_ns), &inner_tmp, &mtu);
        move_link(&inner_tmp, netns.name());
        netns.ip(&["link", "set", "dev", &inner_tmp, "name", INSTANCE_IFNAME]);
        netns.sysctl(
            &format!("net.ipv6.conf.{INSTANCE_IFNAME}.disable_ipv6"),
            "1",
        );
        netns.disable_offloads(INSTANCE_IFNAME);
        netns.ip(&[
            "link",
            "set",
            "dev",
            INSTANCE_IFNAME,
            "address",
            &spec.mac.to_string(),
            "mtu",
            &mtu,
        ]);
        let addr = format!("{}/{}", spec.address, spec.prefix_len);
        netns.ip(&["addr", "add", &addr, "dev", INSTANCE_IFNAME]);
        netns.ip(&["link", "set", "dev", INSTANCE_IFNAME, "up"]);
        if let Some(gw) = spec.gateway {
            netns.ip(&[
                "route",
                "add",
                "default",
                "via",
                &gw.to_string(),
                "dev",
                INSTANCE_IFNAME,
            ]);
        }
        Instance {
            tag: tag.to_string(),
            spec,
            host_if,
            netns,
        }
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn spec(&self) -> &InstanceSpec {
        &self.spec
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.spec.address
    }

    pub fn mac(&self) -> Mac {
        self.spec.mac
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The interface inside the namespace (`eth0`).
    pub fn ifname(&self) -> &str {
        INSTANCE_IFNAME
    }

    /// The host end's name: what dvrd attaches to.
    pub fn host_if(&self) -> &str {
        self.host_if.name()
    }

    /// The dvrd port for this instance's host end.
    pub fn port(&self, name: &str) -> PortCfg {
        PortCfg::local(name, self.host_if()).mtu(self.spec.mtu)
    }

    pub fn ping(&self, dst: Ipv4Addr, opts: &PingOpts) -> PingResult {
        ping(&self.netns, dst, opts)
    }

    pub fn arping(&self, target: Ipv4Addr, count: u32, timeout: Duration) -> ArpingResult {
        arping(&self.netns, INSTANCE_IFNAME, target, count, timeout)
    }

    /// A capture on the instance's `eth0`.
    pub fn capture(&self, filter: &str) -> Capture {
        Capture::start(
            self.netns.scope(),
            Some(&self.netns),
            INSTANCE_IFNAME,
            filter,
        )
    }

    /// Sends raw frames out of `eth0`; panics if the kernel refuses one.
    pub fn inject(&self, frames: &[Vec<u8>]) {
        for (i, r) in self.try_inject(frames).into_iter().enumerate() {
            if let Err(e) = r {
                panic!("frame {i} was not sent: {e}");
            }
        }
    }

    /// Sends raw frames out of `eth0`; one result per frame.
    pub fn try_inject(&self, frames: &[Vec<u8>]) -> Vec<Result<usize, String>> {
        inject_frames(&self.netns, INSTANCE_IFNAME, frames)
    }

    /// The MAC the instance's neighbour table holds for `addr`.
    pub fn neighbor(&self, addr: Ipv4Addr) -> Option<Mac> {
        self.netns.neighbor(addr)
    }

    pub fn command(&self, program: &str) -> Command {
        self.netns.command(program)
    }

    pub fn run(&self, program: &str, args: &[&str]) -> CmdOutput {
        self.netns.run(program, args)
    }

    /// A background process in the instance (an iperf3 server...), labelled `<tag>-<label>`.
    pub fn spawn(&self, label: &str, program: &str, args: &[&str]) -> Process {
        let mut cmd = self.netns.command(program);
        cmd.args(args);
        Process::spawn(self.netns.scope(), &format!("{}-{label}", self.tag), cmd)
    }
}

/// The underlay: a Linux bridge `br0` (no STP, no IPv6) in namespace `<prefix>-<tag>`.
/// Hosts join it with [`attach_host`](Self::attach_host) (a veth whose root end is the host's
/// dvrd fabric port), kernel nodes with [`attach_node`](Self::attach_node).
pub struct Fabric {
    scope: Scope,
    bridge: Bridge,
    netns: Netns,
    links: Vec<Link>,
}

impl fmt::Debug for Fabric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fabric({} ports {:?})", self.netns.name(), self.links)
    }
}

/// A host's port on the fabric: the root-namespace end of its veth.
#[derive(Debug)]
pub struct FabricPort {
    link: Link,
    mtu: u16,
}

impl FabricPort {
    /// The root-namespace interface: what dvrd attaches to.
    pub fn host_if(&self) -> &str {
        self.link.name()
    }

    /// The dvrd fabric port.
    pub fn port(&self, name: &str) -> PortCfg {
        PortCfg::fabric(name, self.link.name()).mtu(self.mtu)
    }

    /// The interface's MAC: the dvrd fabric port's MAC (`net_af_packet` takes it over), the
    /// outer destination of what peers send to this host.
    pub fn mac(&self) -> Mac {
        self.link.mac()
    }

    pub fn mtu(&self) -> u16 {
        self.mtu
    }
}

/// The bridge name inside the fabric's namespace.
pub const FABRIC_BRIDGE: &str = "br0";

impl Fabric {
    pub fn new(scope: &Scope, tag: &str) -> Fabric {
        let netns = Netns::new(scope, tag);
        let bridge = Bridge::new(scope, Some(&netns), FABRIC_BRIDGE);
        Fabric {
            scope: scope.clone(),
            bridge,
            netns,
            links: Vec::new(),
        }
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// A veth from the root namespace (`<prefix><tag>`: the host's fabric port) to the
    /// bridge, MTU `mtu` (the underlay needs 50 bytes more than the tenant networks).
    pub fn attach_host(&mut self, tag: &str, mtu: u16) -> FabricPort {
        self.attach_host_in(tag, mtu, None)
    }

    /// [`attach_host`](Self::attach_host) with the host's end in `host_ns` (None: the root
    /// namespace), for a dvrd that runs in that namespace.
    pub fn attach_host_in(&mut self, tag: &str, mtu: u16, host_ns: Option<&Netns>) -> FabricPort {
        assert!(
            tag.len() <= TAG_LEN_MAX,
            "fabric port tag `{tag}` is longer than {TAG_LEN_MAX}"
        );
        let host = self.scope.ifname(tag);
        let bridge_side = self.scope.ifname(&format!("{tag}b"));
        let mtu_text = mtu.to_string();
        let link = dvrd_end(&self.scope, (&host, host_ns), &bridge_side, &mtu_text);
        move_link(&bridge_side, self.netns.name());
        self.plug(&bridge_side, &mtu_text);
        FabricPort { link, mtu }
    }

    /// A veth from namespace `node` (interface `ifname`, address `address` like
    /// `192.0.2.30/24`, MTU `mtu`) to the bridge: a kernel node on the underlay, such as a SNAT
    /// node with a vxlan device ([`Netns::add_vxlan`]).
    pub fn attach_node(&mut self, node: &Netns, tag: &str, ifname: &str, address: &str, mtu: u16) {
        assert!(
            tag.len() <= TAG_LEN_MAX,
            "fabric port tag `{tag}` is longer than {TAG_LEN_MAX}"
        );
        let bridge_side = self.scope.ifname(&format!("{tag}b"));
        let node_tmp = self.scope.ifname(&format!("{tag}n"));
        let mtu_text = mtu.to_string();
        add_veth(&bridge_side, &node_tmp);
        move_link(&node_tmp, node.name());
        move_link(&bridge_side, self.netns.name());
        node.ip(&["link", "set", "dev", &node_tmp, "name", ifname]);
        node.disable_offloads(ifname);
        node.ip(&["link", "set", "dev", ifname, "mtu", &mtu_text]);
        node.ip(&["addr", "add", address, "dev", ifname]);
        node.ip(&["link", "set", "dev", ifname, "up"]);
        self.plug(&bridge_side, &mtu_text);
    }

    /// Enslaves `bridge_side` (already in the fabric namespace) to the bridge.
    fn plug(&mut self, bridge_side: &str, mtu: &str) {
        let ns = Some(self.netns.name());
        make_silent(ns, bridge_side);
        disable_offloads(ns, bridge_side);
        ip(ns, &["link", "set", "dev", bridge_side, "mtu", mtu]);
        self.bridge.attach(bridge_side);
        self.links.push(Link::adopt(&self.scope, ns, bridge_side));
    }

    /// A capture on the bridge: everything that crosses the underlay.
    pub fn capture(&self, filter: &str) -> Capture {
        Capture::start(&self.scope, Some(&self.netns), FABRIC_BRIDGE, filter)
    }
}
