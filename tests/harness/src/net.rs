//! Kernel plumbing guards: network namespaces, links (veth pairs, vxlan devices), bridges.

use std::fmt;
use std::net::Ipv4Addr;
use std::process::Command;

use crate::cmd::{output_of, run, run_ok, CmdOutput};
use crate::frames::Mac;
use crate::test_scope::{kill_netns_processes, Scope};

/// The words of a command line built with `format!` (names here never hold white space).
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Runs `ip [-n NS] args...`, panics unless it succeeds, returns stdout.
pub fn ip(netns: Option<&str>, args: &[&str]) -> String {
    let mut full = Vec::with_capacity(args.len() + 2);
    if let Some(ns) = netns {
        full.extend(["-n", ns]);
    }
    full.extend_from_slice(args);
    run_ok("ip", &full)
}

/// Creates the veth pair `a` and `b` in the root namespace, both down.
pub fn add_veth(a: &str, b: &str) {
    ip(None, &["link", "add", a, "type", "veth", "peer", "name", b]);
}

/// Moves the root-namespace link `ifname` into namespace `netns`.
pub fn move_link(ifname: &str, netns: &str) {
    ip(None, &["link", "set", "dev", ifname, "netns", netns]);
}

/// Turns off checksum offload and segmentation on `ifname` (in `netns`, or the root
/// namespace): with them on, a packet socket (af_packet) sees partial checksums and 64 KB
/// GSO frames instead of what is on the wire.
pub fn disable_offloads(netns: Option<&str>, ifname: &str) {
    let args = [
        "-K", ifname, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
    ];
    let out = match netns {
        Some(ns) => run(
            "ip",
            &[&["netns", "exec", ns, "ethtool"][..], &args[..]].concat(),
        ),
        None => run("ethtool", &args),
    };
    assert!(out.success(), "cannot turn off offloads on {ifname}: {out}");
}

/// Sets a sysctl (in `netns`, or the root namespace).
pub fn sysctl(netns: Option<&str>, key: &str, value: &str) {
    let setting = format!("{key}={value}");
    let out = match netns {
        Some(ns) => run("ip", &["netns", "exec", ns, "sysctl", "-qw", &setting]),
        None => run("sysctl", &["-qw", &setting]),
    };
    assert!(out.success(), "cannot set {setting}: {out}");
}

/// Makes `ifname` silent at layer 3: no IPv6 (router solicitations, MLD, DAD) and no ARP
/// answers for the namespace's addresses. For the ends that dvrd owns.
pub fn make_silent(netns: Option<&str>, ifname: &str) {
    sysctl(netns, &format!("net.ipv6.conf.{ifname}.disable_ipv6"), "1");
    sysctl(netns, &format!("net.ipv4.conf.{ifname}.arp_ignore"), "8");
}

/// The MAC address of a link.
pub fn link_mac(netns: Option<&str>, ifname: &str) -> Mac {
    let out = ip(netns, &["-o", "link", "show", "dev", ifname]);
    let text = out
        .split("link/ether ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next());
    text.and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no MAC address in `{out}`"))
}

/// A Linux vxlan device as [`Netns::add_vxlan`] makes it.
#[derive(Debug, Clone, Copy)]
pub struct Vxlan<'a> {
    pub vni: u32,
    /// The source address of what it sends (the node's VTEP).
    pub local: Ipv4Addr,
    /// The underlay interface it sends on.
    pub dev: &'a str,
    /// The VTEPs every broadcast and unknown destination is sent to.
    pub remotes: &'a [Ipv4Addr],
    /// The device's MAC address (an instance port's, for a kernel node that stands for a port
    /// on a tenant network); the kernel picks one when `None`.
    pub mac: Option<Mac>,
}

/// A network namespace, deleted (with every process in it) when dropped. IPv6 is off in it
/// so that no router solicitation or MLD report disturbs counters and captures.
pub struct Netns {
    scope: Scope,
    name: String,
}

impl fmt::Debug for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Netns({})", self.name)
    }
}

impl Netns {
    /// Creates the namespace `<prefix>-<tag>` with `lo` up and IPv6 off.
    pub fn new(scope: &Scope, tag: &str) -> Netns {
        let name = scope.nsname(tag);
        run_ok("ip", &["netns", "add", &name]);
        let ns = Netns {
            scope: scope.clone(),
            name,
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1");
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1");
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// A command that runs `program` in the namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `program args...` in the namespace and returns its output.
    pub fn run(&self, program: &str, args: &[&str]) -> CmdOutput {
        output_of(self.command(program).args(args))
    }

    /// Runs `program args...` in the namespace, panics unless it succeeds, returns stdout.
    pub fn run_ok(&self, program: &str, args: &[&str]) -> String {
        self.run(program, args).ok().stdout
    }

    /// `ip -n NAME args...`, checked.
    pub fn ip(&self, args: &[&str]) -> String {
        ip(Some(&self.name), args)
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        sysctl(Some(&self.name), key, value);
    }

    pub fn disable_offloads(&self, ifname: &str) {
        disable_offloads(Some(&self.name), ifname);
    }

    pub fn link_mac(&self, ifname: &str) -> Mac {
        link_mac(Some(&self.name), ifname)
    }

    /// The MAC the namespace's neighbour table holds for `ip`, if any (in a usable state).
    pub fn neighbor(&self, addr: Ipv4Addr) -> Option<Mac> {
        let out = self.ip(&["neigh", "show", &addr.to_string()]);
        let line = out
            .lines()
            .find(|l| !l.contains("FAILED") && !l.contains("INCOMPLETE"))?;
        line.split("lladdr ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Adds the Linux vxlan device `name` that `vxlan` describes (UDP 4789, learning off), up,
    /// with static flood entries to its remotes (head-end replication). For kernel nodes on
    /// the fabric, such as a SNAT node.
    pub fn add_vxlan(&self, name: &str, vxlan: &Vxlan<'_>) {
        let Vxlan {
            vni,
            local,
            dev,
            remotes,
            mac,
        } = *vxlan;
        let add = format!(
            "link add {name} type vxlan id {vni} local {local} dev {dev} dstport 4789 nolearning"
        );
        self.ip(&words(&add));
        if let Some(mac) = mac {
            self.ip(&["link", "set", "dev", name, "address", &mac.to_string()]);
        }
        for r in remotes {
            let append = format!(
                "-n {} fdb append 00:00:00:00:00:00 dev {name} dst {r}",
                self.name
            );
            run_ok("bridge", &words(&append));
        }
        self.disable_offloads(name);
        self.ip(&["link", "set", name, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_netns_processes(&self.name);
        let out = run("ip", &["netns", "del", &self.name]);
        if !out.success() {
            eprintln!("[e2e] cleanup: {out}");
        }
    }
}

/// A link deleted when dropped (a veth pair goes with either end).
pub struct Link {
    /// Held so that the scope's final sweep runs only once this link is gone.
    _scope: Scope,
    netns: Option<String>,
    name: String,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.netns {
            Some(ns) => write!(f, "Link({ns}/{})", self.name),
            None => write!(f, "Link({})", self.name),
        }
    }
}

impl Link {
    /// Takes ownership of an existing link.
    pub fn adopt(scope: &Scope, netns: Option<&str>, name: &str) -> Link {
        Link {
            _scope: scope.clone(),
            netns: netns.map(str::to_string),
            name: name.to_string(),
        }
    }

    /// Creates the veth pair `a` (root namespace, owned by the guard) and `b`, both down.
    pub fn veth(scope: &Scope, a: &str, b: &str) -> Link {
        add_veth(a, b);
        Link::adopt(scope, None, a)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// `ip link set dev NAME args...` in the link's namespace.
    pub fn set(&self, args: &[&str]) {
        let mut full = vec!["link", "set", "dev", &self.name];
        full.extend_from_slice(args);
        ip(self.netns.as_deref(), &full);
    }

    pub fn mac(&self) -> Mac {
        link_mac(self.netns.as_deref(), &self.name)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let mut args = Vec::new();
        if let Some(ns) = &self.netns {
            args.extend(["-n", ns.as_str()]);
        }
        args.extend(["link", "del", self.name.as_str()]);
        // Already gone when its namespace or its veth peer was deleted first: that is fine.
        let _ = run("ip", &args);
    }
}

/// A Linux bridge (no STP, forwards at once, no IPv6), deleted when dropped.
#[derive(Debug)]
pub struct Bridge {
    link: Link,
}

impl Bridge {
    /// Creates bridge `name` in `netns` (or the root namespace, where `name` must come from
    /// [`Scope::ifname`]), up.
    pub fn new(scope: &Scope, netns: Option<&Netns>, name: &str) -> Bridge {
        let ns = netns.map(Netns::name);
        ip(
            ns,
            &[
                "link",
                "add",
                name,
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
                "mcast_snooping",
                "0",
            ],
        );
        let link = Link::adopt(scope, ns, name);
        make_silent(ns, name);
        link.set(&["up"]);
        Bridge { link }
    }

    pub fn name(&self) -> &str {
        self.link.name()
    }

    /// Enslaves `ifname` (in the bridge's namespace) and brings it up.
    pub fn attach(&self, ifname: &str) {
        let ns = self.link.netns();
        ip(
            ns,
            &["link", "set", "dev", ifname, "master", self.link.name()],
        );
        ip(ns, &["link", "set", "dev", ifname, "up"]);
    }
}
