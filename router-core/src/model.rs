//! The DVR model: what the control plane programs on a host.
//!
//! One host runs one router appliance. The model holds this host's identity (DVR MAC, VTEP), the
//! peer hosts, the tenant networks, the distributed routers with their interfaces and extra
//! routes, and every instance port of those networks (on this host or on a peer). The
//! configuration file and the control API both describe the desired state as [`Change`]s, and
//! both go through [`Model::apply`], so they share one validation: a change that is refused
//! changes nothing and says exactly what was wrong.
//!
//! Requests are idempotent: adding an object that exists with the same value is a no-op
//! ([`Applied::Unchanged`]); with a different value it is an error unless the change asks to
//! replace it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::lpm::Prefix;
use crate::wire::EthernetAddress;

/// Most peer hosts one host knows (limits the width of a next hop's target field).
pub const MAX_PEERS: usize = 1024;
/// Most tenant networks on one host.
pub const MAX_NETWORKS: usize = 4096;
/// Most distributed routers (VRFs) on one host.
pub const MAX_ROUTERS: usize = 1024;
/// Most interfaces of one router.
pub const MAX_INTERFACES_PER_ROUTER: usize = 64;
/// Longest object name (routers, networks, hosts).
pub const NAME_LEN_MAX: usize = 63;
/// Largest VXLAN network identifier (24 bits).
pub const VNI_MAX: u32 = (1 << 24) - 1;

/// The DVR MAC range Neutron draws host MACs from (`dvr_base_mac` = fa:16:3f:00:00:00/24).
pub const DVR_MAC_BASE_DEFAULT: MacAddr =
    MacAddr(EthernetAddress([0xfa, 0x16, 0x3f, 0x00, 0x00, 0x00]));

/// A MAC address as the model and its users spell it ("fa:16:3e:00:00:01").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub EthernetAddress);

impl MacAddr {
    /// The address as the low 48 bits of a word (network byte order, first octet highest).
    pub fn to_u64(self) -> u64 {
        self.0.to_u64()
    }

    /// True for a unicast address that is not all zeroes: the only kind an interface,
    /// instance port or host may have.
    pub fn is_assignable(self) -> bool {
        self.0.is_unicast() && self.0.to_u64() != 0
    }
}

impl From<EthernetAddress> for MacAddr {
    fn from(mac: EthernetAddress) -> Self {
        MacAddr(mac)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EthernetAddress::from_str(s).map(MacAddr).map_err(|_| {
            format!("`{s}` is not a MAC address (expected six hex octets like fa:16:3e:00:00:01)")
        })
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An interface address: the gateway IP and the length of its subnet ("10.0.1.1/24").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InterfaceAddr {
    pub ip: Ipv4Addr,
    pub len: u8,
}

impl InterfaceAddr {
    /// The connected subnet.
    pub fn subnet(self) -> Prefix {
        Prefix::containing(u32::from(self.ip), self.len)
    }

    /// The directed broadcast address of the subnet.
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.ip) | !prefix_mask(self.len))
    }
}

fn prefix_mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl fmt::Display for InterfaceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.len)
    }
}

impl fmt::Debug for InterfaceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for InterfaceAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "expected a gateway address with its subnet length, like 10.0.1.1/24";
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: {expected}"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("`{s}`: {expected}"))?;
        let len: u8 = len.parse().map_err(|_| format!("`{s}`: {expected}"))?;
        if !(1..=30).contains(&len) {
            return Err(format!("`{s}`: subnet length must be 1..=30"));
        }
        let addr = InterfaceAddr { ip, len };
        let host = u32::from(ip) & !prefix_mask(len);
        if host == 0 || ip == addr.broadcast() {
            return Err(format!(
                "`{s}`: the gateway address must be a host address of its subnet, not the network or broadcast address"
            ));
        }
        if !is_unicast_host(ip) {
            return Err(format!(
                "`{s}`: the gateway address must be a unicast address"
            ));
        }
        Ok(addr)
    }
}

impl Serialize for InterfaceAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InterfaceAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// True for an address a host may have: not unspecified, loopback, multicast, class E or
/// limited broadcast (RFC 1812 section 5.3.7 martians).
pub fn is_unicast_host(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_broadcast()
        || o[0] >= 240
        || o[0] == 0)
}

/// This host: its name, its DVR MAC (source MAC of every frame it routes onto the fabric) and
/// its VTEP address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub name: String,
    pub dvr_mac: MacAddr,
    pub vtep: Ipv4Addr,
}

/// Another host of the fabric.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSpec {
    pub name: String,
    pub dvr_mac: MacAddr,
    pub vtep: Ipv4Addr,
}

/// A tenant network: an L2 segment, VXLAN VNI on the fabric, attached on this host to zero or
/// more local ports (DPDK port names from the configuration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    pub name: String,
    pub vni: u32,
    #[serde(default)]
    pub ports: Vec<String>,
}

/// A distributed router (one VRF).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSpec {
    pub name: String,
    /// Size the routing table for a large route set (a 2^24-entry first level, 64 MiB) instead
    /// of the compact layout that suits tenant routers (a 2^16-entry first level).
    #[serde(default)]
    pub large: bool,
}

/// A router interface on a tenant network: the anycast gateway, identical on every host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceSpec {
    pub router: String,
    pub network: String,
    /// Gateway IP and subnet, e.g. "10.0.1.1/24".
    pub address: InterfaceAddr,
    /// Gateway MAC.
    pub mac: MacAddr,
}

/// An extra route of a router: `prefix` via the neighbour `via` on one of its subnets. The
/// default route to the centralised SNAT node is one of these, via the SNAT port's address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub router: String,
    pub prefix: Prefix,
    pub via: Ipv4Addr,
}

/// An instance port (VM or container interface) on a tenant network, on this host or a peer.
/// Every host that has the network's router holds it as a permanent neighbour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstancePortSpec {
    pub network: String,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    /// The host the instance runs on: this host's name or a peer's.
    pub host: String,
    /// The local DPDK port the instance is behind, when this host attaches the network on
    /// several ports. Defaults to the network's only local port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

/// One change to the model. `Add*` with `replace: false` on an existing object with a different
/// value is refused; `Del*` of a missing object is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    SetHost(HostSpec),
    AddPeer {
        spec: PeerSpec,
        replace: bool,
    },
    DelPeer {
        name: String,
    },
    AddNetwork {
        spec: NetworkSpec,
        replace: bool,
    },
    DelNetwork {
        name: String,
    },
    AddRouter {
        spec: RouterSpec,
        replace: bool,
    },
    DelRouter {
        name: String,
    },
    AddInterface {
        spec: InterfaceSpec,
        replace: bool,
    },
    DelInterface {
        router: String,
        network: String,
    },
    AddRoute {
        spec: RouteSpec,
        replace: bool,
    },
    DelRoute {
        router: String,
        prefix: Prefix,
    },
    AddPort {
        spec: InstancePortSpec,
        replace: bool,
    },
    DelPort {
        network: String,
        ip: Ipv4Addr,
    },
}

/// What applying a change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The object was added, replaced or deleted.
    Changed,
    /// The object already existed with this value: nothing to do.
    Unchanged,
}

/// Why a change was refused. Every variant names the object and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{kind} `{name}` does not exist")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} `{name}` already exists with a different value (use replace)")]
    Conflict { kind: &'static str, name: String },
    #[error("{kind} `{name}` is in use by {user}")]
    InUse {
        kind: &'static str,
        name: String,
        user: String,
    },
    #[error("limit reached: at most {limit} {kind}")]
    Limit { kind: &'static str, limit: usize },
    #[error("the host (name, DVR MAC, VTEP) must be set before {what}")]
    NoHost { what: &'static str },
}

impl ModelError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ModelError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Key of an interface: (router, network).
pub type InterfaceKey = (String, String);
/// Key of a route: (router, prefix).
pub type RouteKey = (String, Prefix);
/// Key of an instance port: (network, IP).
pub type PortKey = (String, Ipv4Addr);

/// The whole desired state of this host. Plain data: cloning it is how a batch is validated
/// all-or-nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub host: Option<HostSpec>,
    pub peers: BTreeMap<String, PeerSpec>,
    pub networks: BTreeMap<String, NetworkSpec>,
    pub routers: BTreeMap<String, RouterSpec>,
    pub interfaces: BTreeMap<InterfaceKey, InterfaceSpec>,
    pub routes: BTreeMap<RouteKey, RouteSpec>,
    pub ports: BTreeMap<PortKey, InstancePortSpec>,
    /// The DPDK ports instances can attach to (names from the configuration's `ports`), as
    /// given by the daemon. Networks may only name these.
    pub local_ports: Vec<String>,
    /// The DVR MAC range: a source MAC inside it on the fabric claims to be a host's DVR MAC.
    pub dvr_mac_base: Option<(MacAddr, u8)>,
}

impl Model {
    /// An empty model whose networks may attach to `local_ports`.
    pub fn new(local_ports: Vec<String>) -> Self {
        Model {
            local_ports,
            ..Model::default()
        }
    }

    /// Applies one change, or refuses it and changes nothing.
    pub fn apply(&mut self, change: &Change) -> Result<Applied, ModelError> {
        match change {
            Change::SetHost(spec) => self.set_host(spec),
            Change::AddPeer { spec, replace } => self.add_peer(spec, *replace),
            Change::DelPeer { name } => self.del_peer(name),
            Change::AddNetwork { spec, replace } => self.add_network(spec, *replace),
            Change::DelNetwork { name } => self.del_network(name),
            Change::AddRouter { spec, replace } => self.add_router(spec, *replace),
            Change::DelRouter { name } => self.del_router(name),
            Change::AddInterface { spec, replace } => self.add_interface(spec, *replace),
            Change::DelInterface { router, network } => self.del_interface(router, network),
            Change::AddRoute { spec, replace } => self.add_route(spec, *replace),
            Change::DelRoute { router, prefix } => self.del_route(router, *prefix),
            Change::AddPort { spec, replace } => self.add_port(spec, *replace),
            Change::DelPort { network, ip } => self.del_port(network, *ip),
        }
    }

    /// Applies all changes or none: on the first refusal the model is left as it was and the
    /// error names the index of the refused change.
    pub fn apply_batch(&mut self, changes: &[Change]) -> Result<Vec<Applied>, (usize, ModelError)> {
        let mut next = self.clone();
        let mut applied = Vec::with_capacity(changes.len());
        for (i, change) in changes.iter().enumerate() {
            applied.push(next.apply(change).map_err(|e| (i, e))?);
        }
        *self = next;
        Ok(applied)
    }

    /// The router a network is attached to, with the interface.
    pub fn interface_of_network(&self, network: &str) -> Option<&InterfaceSpec> {
        self.interfaces.values().find(|i| i.network == network)
    }

    /// The interface of `router` whose subnet contains `ip`.
    pub fn interface_for(&self, router: &str, ip: Ipv4Addr) -> Option<&InterfaceSpec> {
        self.interfaces
            .range((router.to_string(), String::new())..)
            .take_while(|((r, _), _)| r == router)
            .map(|(_, i)| i)
            .find(|i| i.address.subnet().contains(u32::from(ip)))
    }

    /// True if `host` names this host.
    pub fn is_local_host(&self, host: &str) -> bool {
        self.host.as_ref().is_some_and(|h| h.name == host)
    }

    fn set_host(&mut self, spec: &HostSpec) -> Result<Applied, ModelError> {
        check_name("host.name", &spec.name)?;
        check_mac("host.dvr_mac", spec.dvr_mac)?;
        check_unicast("host.vtep", spec.vtep)?;
        if self.host.as_ref() == Some(spec) {
            return Ok(Applied::Unchanged);
        }
        if let Some(host) = &self.host {
            let in_use = self.ports.values().any(|p| p.host == host.name);
            if in_use && host.name != spec.name {
                return Err(ModelError::InUse {
                    kind: "host",
                    name: host.name.clone(),
                    user: "instance ports".into(),
                });
            }
        }
        if let Some(p) = self
            .peers
            .values()
            .find(|p| p.name == spec.name || p.dvr_mac == spec.dvr_mac || p.vtep == spec.vtep)
        {
            return Err(ModelError::Conflict {
                kind: "peer",
                name: p.name.clone(),
            });
        }
        self.host = Some(spec.clone());
        Ok(Applied::Changed)
    }

    fn add_peer(&mut self, spec: &PeerSpec, replace: bool) -> Result<Applied, ModelError> {
        check_name("peer.name", &spec.name)?;
        check_mac("peer.dvr_mac", spec.dvr_mac)?;
        check_unicast("peer.vtep", spec.vtep)?;
        let host = self.host.as_ref().ok_or(ModelError::NoHost {
            what: "peers are added",
        })?;
        if host.name == spec.name {
            return Err(ModelError::invalid(
                "peer.name",
                format!("`{}` is this host", spec.name),
            ));
        }
        if host.dvr_mac == spec.dvr_mac {
            return Err(ModelError::invalid(
                "peer.dvr_mac",
                format!("{} is this host's DVR MAC", spec.dvr_mac),
            ));
        }
        if host.vtep == spec.vtep {
            return Err(ModelError::invalid(
                "peer.vtep",
                format!("{} is this host's VTEP", spec.vtep),
            ));
        }
        if let Some(other) = self
            .peers
            .values()
            .find(|p| p.name != spec.name && (p.dvr_mac == spec.dvr_mac || p.vtep == spec.vtep))
        {
            return Err(ModelError::Conflict {
                kind: "peer (DVR MAC or VTEP)",
                name: other.name.clone(),
            });
        }
        upsert(
            &mut self.peers,
            (spec.name.clone(), spec.name.clone()),
            spec,
            replace,
            "peer",
            MAX_PEERS,
        )
    }

    fn del_peer(&mut self, name: &str) -> Result<Applied, ModelError> {
        if !self.peers.contains_key(name) {
            return Err(ModelError::NotFound {
                kind: "peer",
                name: name.into(),
            });
        }
        if let Some(p) = self.ports.values().find(|p| p.host == name) {
            return Err(ModelError::InUse {
                kind: "peer",
                name: name.into(),
                user: format!("port {} on network {}", p.ip, p.network),
            });
        }
        self.peers.remove(name);
        Ok(Applied::Changed)
    }

    fn add_network(&mut self, spec: &NetworkSpec, replace: bool) -> Result<Applied, ModelError> {
        check_name("network.name", &spec.name)?;
        if spec.vni == 0 || spec.vni > VNI_MAX {
            return Err(ModelError::invalid(
                "network.vni",
                format!("{} is not a VNI (1..={VNI_MAX})", spec.vni),
            ));
        }
        if let Some(other) = self
            .networks
            .values()
            .find(|n| n.name != spec.name && n.vni == spec.vni)
        {
            return Err(ModelError::Conflict {
                kind: "network with this VNI",
                name: other.name.clone(),
            });
        }
        for (i, port) in spec.ports.iter().enumerate() {
            if !self.local_ports.iter().any(|p| p == port) {
                return Err(ModelError::NotFound {
                    kind: "local port",
                    name: port.clone(),
                });
            }
            if spec.ports[..i].contains(port) {
                return Err(ModelError::invalid(
                    "network.ports",
                    format!("`{port}` is listed twice"),
                ));
            }
            if let Some(other) = self
                .networks
                .values()
                .find(|n| n.name != spec.name && n.ports.contains(port))
            {
                return Err(ModelError::Conflict {
                    kind: "local port attached to network",
                    name: format!("{port} ({})", other.name),
                });
            }
        }
        if let Some(old) = self.networks.get(&spec.name) {
            // Instance ports pinned to a local port must keep it.
            if let Some(p) = self.ports.values().find(|p| {
                p.network == spec.name
                    && p.port.as_ref().is_some_and(|lp| !spec.ports.contains(lp))
                    && old != spec
            }) {
                return Err(ModelError::InUse {
                    kind: "local port",
                    name: p.port.clone().unwrap_or_default(),
                    user: format!("port {} on network {}", p.ip, p.network),
                });
            }
        }
        upsert(
            &mut self.networks,
            (spec.name.clone(), spec.name.clone()),
            spec,
            replace,
            "network",
            MAX_NETWORKS,
        )
    }

    fn del_network(&mut self, name: &str) -> Result<Applied, ModelError> {
        if !self.networks.contains_key(name) {
            return Err(ModelError::NotFound {
                kind: "network",
                name: name.into(),
            });
        }
        if let Some(i) = self.interface_of_network(name) {
            return Err(ModelError::InUse {
                kind: "network",
                name: name.into(),
                user: format!("an interface of router {}", i.router),
            });
        }
        if let Some(p) = self.ports.values().find(|p| p.network == name) {
            return Err(ModelError::InUse {
                kind: "network",
                name: name.into(),
                user: format!("port {}", p.ip),
            });
        }
        self.networks.remove(name);
        Ok(Applied::Changed)
    }

    fn add_router(&mut self, spec: &RouterSpec, replace: bool) -> Result<Applied, ModelError> {
        check_name("router.name", &spec.name)?;
        if let Some(old) = self.routers.get(&spec.name) {
            if old != spec && old.large != spec.large {
                return Err(ModelError::invalid(
                    "router.large",
                    "the table layout of an existing router cannot change; delete and re-add it",
                ));
            }
        }
        upsert(
            &mut self.routers,
            (spec.name.clone(), spec.name.clone()),
            spec,
            replace,
            "router",
            MAX_ROUTERS,
        )
    }

    fn del_router(&mut self, name: &str) -> Result<Applied, ModelError> {
        if !self.routers.contains_key(name) {
            return Err(ModelError::NotFound {
                kind: "router",
                name: name.into(),
            });
        }
        if let Some((_, i)) = self.interfaces.iter().find(|((r, _), _)| r == name) {
            return Err(ModelError::InUse {
                kind: "router",
                name: name.into(),
                user: format!("its interface on {}", i.network),
            });
        }
        if let Some((_, r)) = self.routes.iter().find(|((r, _), _)| r == name) {
            return Err(ModelError::InUse {
                kind: "router",
                name: name.into(),
                user: format!("its route {}", r.prefix),
            });
        }
        self.routers.remove(name);
        Ok(Applied::Changed)
    }

    fn add_interface(
        &mut self,
        spec: &InterfaceSpec,
        replace: bool,
    ) -> Result<Applied, ModelError> {
        check_mac("interface.mac", spec.mac)?;
        if !self.routers.contains_key(&spec.router) {
            return Err(ModelError::NotFound {
                kind: "router",
                name: spec.router.clone(),
            });
        }
        if !self.networks.contains_key(&spec.network) {
            return Err(ModelError::NotFound {
                kind: "network",
                name: spec.network.clone(),
            });
        }
        let key = (spec.router.clone(), spec.network.clone());
        if let Some(other) = self.interface_of_network(&spec.network) {
            if other.router != spec.router {
                return Err(ModelError::Conflict {
                    kind: "network attached to router",
                    name: format!("{} ({})", spec.network, other.router),
                });
            }
        }
        let subnet = spec.address.subnet();
        for ((router, network), other) in &self.interfaces {
            if router != &spec.router || network == &spec.network {
                continue;
            }
            let o = other.address.subnet();
            if o.covers(subnet) || subnet.covers(o) {
                return Err(ModelError::invalid(
                    "interface.address",
                    format!("{subnet} overlaps {o} of the interface on {network}"),
                ));
            }
        }
        if let Some(old) = self.interfaces.get(&key) {
            if old != spec
                && old.address.subnet() != subnet
                && self.network_has_dependents(&spec.router, old)
            {
                return Err(ModelError::InUse {
                    kind: "interface",
                    name: format!("{} on {}", spec.router, spec.network),
                    user: "routes or instance ports on its subnet".into(),
                });
            }
        }
        // Instance ports already on the network must lie in the new subnet.
        if let Some(p) = self
            .ports
            .values()
            .find(|p| p.network == spec.network && !subnet.contains(u32::from(p.ip)))
        {
            return Err(ModelError::invalid(
                "interface.address",
                format!("port {} on {} is outside {subnet}", p.ip, spec.network),
            ));
        }
        if let Some(p) = self
            .ports
            .values()
            .find(|p| p.network == spec.network && p.ip == spec.address.ip)
        {
            return Err(ModelError::Conflict {
                kind: "instance port with the gateway address",
                name: p.ip.to_string(),
            });
        }
        let count = self
            .interfaces
            .keys()
            .filter(|(r, _)| r == &spec.router)
            .count();
        if !self.interfaces.contains_key(&key) && count >= MAX_INTERFACES_PER_ROUTER {
            return Err(ModelError::Limit {
                kind: "interfaces per router",
                limit: MAX_INTERFACES_PER_ROUTER,
            });
        }
        upsert(
            &mut self.interfaces,
            (key, format!("{} on {}", spec.router, spec.network)),
            spec,
            replace,
            "interface",
            usize::MAX,
        )
    }

    fn network_has_dependents(&self, router: &str, iface: &InterfaceSpec) -> bool {
        let subnet = iface.address.subnet();
        self.routes
            .values()
            .any(|r| r.router == router && subnet.contains(u32::from(r.via)))
    }

    fn del_interface(&mut self, router: &str, network: &str) -> Result<Applied, ModelError> {
        let key = (router.to_string(), network.to_string());
        let Some(iface) = self.interfaces.get(&key) else {
            return Err(ModelError::NotFound {
                kind: "interface",
                name: format!("{router} on {network}"),
            });
        };
        let subnet = iface.address.subnet();
        if let Some(r) = self
            .routes
            .values()
            .find(|r| r.router == router && subnet.contains(u32::from(r.via)))
        {
            return Err(ModelError::InUse {
                kind: "interface",
                name: format!("{router} on {network}"),
                user: format!("route {} via {}", r.prefix, r.via),
            });
        }
        self.interfaces.remove(&key);
        Ok(Applied::Changed)
    }

    fn add_route(&mut self, spec: &RouteSpec, replace: bool) -> Result<Applied, ModelError> {
        if !self.routers.contains_key(&spec.router) {
            return Err(ModelError::NotFound {
                kind: "router",
                name: spec.router.clone(),
            });
        }
        let Some(iface) = self.interface_for(&spec.router, spec.via) else {
            return Err(ModelError::invalid(
                "route.via",
                format!("{} is not on a subnet of router {}", spec.via, spec.router),
            ));
        };
        if iface.address.ip == spec.via {
            return Err(ModelError::invalid(
                "route.via",
                format!("{} is the router's own address", spec.via),
            ));
        }
        if iface.address.subnet() == spec.prefix {
            return Err(ModelError::invalid(
                "route.prefix",
                format!("{} is a connected subnet", spec.prefix),
            ));
        }
        let key = (spec.router.clone(), spec.prefix);
        let name = format!("{} in router {}", spec.prefix, spec.router);
        upsert(
            &mut self.routes,
            (key, name),
            spec,
            replace,
            "route",
            usize::MAX,
        )
    }

    fn del_route(&mut self, router: &str, prefix: Prefix) -> Result<Applied, ModelError> {
        if self.routes.remove(&(router.to_string(), prefix)).is_none() {
            return Err(ModelError::NotFound {
                kind: "route",
                name: format!("{prefix} in router {router}"),
            });
        }
        Ok(Applied::Changed)
    }

    fn add_port(&mut self, spec: &InstancePortSpec, replace: bool) -> Result<Applied, ModelError> {
        check_mac("port.mac", spec.mac)?;
        check_unicast("port.ip", spec.ip)?;
        let Some(network) = self.networks.get(&spec.network) else {
            return Err(ModelError::NotFound {
                kind: "network",
                name: spec.network.clone(),
            });
        };
        let host = self.host.as_ref().ok_or(ModelError::NoHost {
            what: "ports are added",
        })?;
        let local = host.name == spec.host;
        if !local && !self.peers.contains_key(&spec.host) {
            return Err(ModelError::NotFound {
                kind: "host",
                name: spec.host.clone(),
            });
        }
        if let Some(lp) = &spec.port {
            if !local {
                return Err(ModelError::invalid(
                    "port.port",
                    "only an instance on this host has a local port",
                ));
            }
            if !network.ports.contains(lp) {
                return Err(ModelError::invalid(
                    "port.port",
                    format!(
                        "network {} is not attached to local port `{lp}`",
                        spec.network
                    ),
                ));
            }
        } else if local && network.ports.len() != 1 {
            return Err(ModelError::invalid(
                "port.port",
                format!(
                    "network {} has {} local ports: name the one the instance is behind",
                    spec.network,
                    network.ports.len()
                ),
            ));
        }
        if let Some(iface) = self.interface_of_network(&spec.network) {
            if !iface.address.subnet().contains(u32::from(spec.ip)) {
                return Err(ModelError::invalid(
                    "port.ip",
                    format!(
                        "{} is outside {} of network {}",
                        spec.ip,
                        iface.address.subnet(),
                        spec.network
                    ),
                ));
            }
            if iface.address.ip == spec.ip {
                return Err(ModelError::invalid(
                    "port.ip",
                    format!("{} is the gateway address", spec.ip),
                ));
            }
            if iface.address.broadcast() == spec.ip {
                return Err(ModelError::invalid(
                    "port.ip",
                    format!("{} is the broadcast address", spec.ip),
                ));
            }
            if iface.mac == spec.mac {
                return Err(ModelError::invalid(
                    "port.mac",
                    format!("{} is the gateway MAC", spec.mac),
                ));
            }
        }
        if self.is_dvr_mac(spec.mac) {
            return Err(ModelError::invalid(
                "port.mac",
                format!("{} is inside the DVR MAC range", spec.mac),
            ));
        }
        if let Some(other) = self
            .ports
            .values()
            .find(|p| p.network == spec.network && p.mac == spec.mac && p.ip != spec.ip)
        {
            return Err(ModelError::Conflict {
                kind: "port with this MAC",
                name: format!("{} on {}", other.ip, other.network),
            });
        }
        let key = (spec.network.clone(), spec.ip);
        let name = format!("{} on network {}", spec.ip, spec.network);
        upsert(
            &mut self.ports,
            (key, name),
            spec,
            replace,
            "port",
            usize::MAX,
        )
    }

    fn del_port(&mut self, network: &str, ip: Ipv4Addr) -> Result<Applied, ModelError> {
        if self.ports.remove(&(network.to_string(), ip)).is_none() {
            return Err(ModelError::NotFound {
                kind: "port",
                name: format!("{ip} on network {network}"),
            });
        }
        Ok(Applied::Changed)
    }

    /// True if `mac` lies in the DVR MAC range (a host MAC, never an instance's).
    pub fn is_dvr_mac(&self, mac: MacAddr) -> bool {
        let (base, len) = self.dvr_mac_base.unwrap_or((DVR_MAC_BASE_DEFAULT, 24));
        let shift = 48 - u32::from(len);
        (mac.to_u64() >> shift) == (base.to_u64() >> shift)
    }
}

/// Inserts or replaces `spec` under `key`; `name` is how errors call it.
fn upsert<K: Ord, V: Clone + PartialEq>(
    map: &mut BTreeMap<K, V>,
    (key, name): (K, String),
    spec: &V,
    replace: bool,
    kind: &'static str,
    limit: usize,
) -> Result<Applied, ModelError> {
    match map.get(&key) {
        Some(old) if old == spec => Ok(Applied::Unchanged),
        Some(_) if !replace => Err(ModelError::Conflict { kind, name }),
        Some(_) => {
            map.insert(key, spec.clone());
            Ok(Applied::Changed)
        }
        None if map.len() >= limit => Err(ModelError::Limit { kind, limit }),
        None => {
            map.insert(key, spec.clone());
            Ok(Applied::Changed)
        }
    }
}

fn check_name(field: &'static str, name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(ModelError::invalid(
            field,
            format!("`{name}` is not a name (1..={NAME_LEN_MAX} characters of letters, digits, '-', '_', '.')"),
        ))
    }
}

fn check_mac(field: &'static str, mac: MacAddr) -> Result<(), ModelError> {
    if mac.is_assignable() {
        Ok(())
    } else {
        Err(ModelError::invalid(
            field,
            format!("{mac} is not a unicast MAC address"),
        ))
    }
}

fn check_unicast(field: &'static str, ip: Ipv4Addr) -> Result<(), ModelError> {
    if is_unicast_host(ip) {
        Ok(())
    } else {
        Err(ModelError::invalid(
            field,
            format!("{ip} is not a unicast host address"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    fn base() -> Model {
        let mut m = Model::new(vec![
            "p-blue".into(),
            "p-red".into(),
            "p-two-a".into(),
            "p-two-b".into(),
        ]);
        let changes = [
            Change::SetHost(HostSpec {
                name: "a".into(),
                dvr_mac: mac("fa:16:3f:00:00:0a"),
                vtep: "192.0.2.10".parse().unwrap(),
            }),
            Change::AddPeer {
                spec: PeerSpec {
                    name: "b".into(),
                    dvr_mac: mac("fa:16:3f:00:00:0b"),
                    vtep: "192.0.2.20".parse().unwrap(),
                },
                replace: false,
            },
            Change::AddNetwork {
                spec: NetworkSpec {
                    name: "blue".into(),
                    vni: 10,
                    ports: vec!["p-blue".into()],
                },
                replace: false,
            },
            Change::AddNetwork {
                spec: NetworkSpec {
                    name: "red".into(),
                    vni: 20,
                    ports: vec!["p-red".into()],
                },
                replace: false,
            },
            Change::AddRouter {
                spec: RouterSpec {
                    name: "r".into(),
                    large: false,
                },
                replace: false,
            },
            Change::AddInterface {
                spec: iface("blue", "10.0.1.1/24", "fa:16:3e:00:01:01"),
                replace: false,
            },
        ];
        for c in &changes {
            m.apply(c).unwrap();
        }
        m
    }

    fn iface(network: &str, address: &str, m: &str) -> InterfaceSpec {
        InterfaceSpec {
            router: "r".into(),
            network: network.into(),
            address: address.parse().unwrap(),
            mac: mac(m),
        }
    }

    fn port(network: &str, ip: &str, m: &str, host: &str) -> Change {
        Change::AddPort {
            spec: InstancePortSpec {
                network: network.into(),
                ip: ip.parse().unwrap(),
                mac: mac(m),
                host: host.into(),
                port: None,
            },
            replace: false,
        }
    }

    fn refused(m: &mut Model, c: Change) -> String {
        let before = m.clone();
        let e = m.apply(&c).unwrap_err().to_string();
        assert_eq!(*m, before, "a refused change changed the model");
        e
    }

    #[test]
    fn adds_are_idempotent_and_conflicts_need_replace() {
        let mut m = base();
        let c = port("blue", "10.0.1.5", "fa:16:3e:00:00:05", "a");
        assert_eq!(m.apply(&c), Ok(Applied::Changed));
        assert_eq!(m.apply(&c), Ok(Applied::Unchanged));
        let other = port("blue", "10.0.1.5", "fa:16:3e:00:00:06", "a");
        assert!(refused(&mut m, other.clone()).contains("already exists"));
        let Change::AddPort { spec, .. } = other else {
            unreachable!()
        };
        assert_eq!(
            m.apply(&Change::AddPort {
                spec,
                replace: true
            }),
            Ok(Applied::Changed)
        );
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        let mut m = base();
        let e = refused(
            &mut m,
            Change::AddInterface {
                spec: iface("red", "10.0.1.129/25", "fa:16:3e:00:02:01"),
                replace: false,
            },
        );
        assert!(e.contains("overlaps"), "{e}");
        let e = refused(
            &mut m,
            Change::AddInterface {
                spec: iface("red", "10.0.2.1/24", "01:00:5e:00:00:01"),
                replace: false,
            },
        );
        assert!(e.contains("unicast"), "{e}");
        let e = refused(&mut m, port("blue", "10.0.9.5", "fa:16:3e:00:00:05", "a"));
        assert!(e.contains("outside 10.0.1.0/24"), "{e}");
        let e = refused(
            &mut m,
            port("blue", "10.0.1.5", "fa:16:3e:00:00:05", "nowhere"),
        );
        assert!(e.contains("host `nowhere` does not exist"), "{e}");
        let e = refused(&mut m, port("blue", "10.0.1.1", "fa:16:3e:00:00:05", "a"));
        assert!(e.contains("gateway"), "{e}");
        let e = refused(&mut m, port("blue", "10.0.1.6", "fa:16:3f:00:00:99", "a"));
        assert!(e.contains("DVR MAC range"), "{e}");
        let e = refused(&mut m, port("green", "10.0.1.6", "fa:16:3e:00:00:06", "a"));
        assert!(e.contains("network `green` does not exist"), "{e}");
        let route = |prefix: &str, via: &str| Change::AddRoute {
            spec: RouteSpec {
                router: "r".into(),
                prefix: prefix.parse().unwrap(),
                via: via.parse().unwrap(),
            },
            replace: false,
        };
        let e = refused(&mut m, route("10.9.0.0/16", "10.0.7.1"));
        assert!(e.contains("not on a subnet"), "{e}");
        let e = refused(&mut m, route("10.9.0.0/16", "10.0.1.1"));
        assert!(e.contains("own address"), "{e}");
        let e = refused(
            &mut m,
            Change::AddRoute {
                spec: RouteSpec {
                    router: "x".into(),
                    prefix: "10.9.0.0/16".parse().unwrap(),
                    via: "10.0.1.9".parse().unwrap(),
                },
                replace: false,
            },
        );
        assert!(e.contains("router `x` does not exist"), "{e}");
        assert!("10.9.0.1/16".parse::<Prefix>().is_err(), "host bits set");
        let e = refused(
            &mut m,
            Change::AddNetwork {
                spec: NetworkSpec {
                    name: "dup".into(),
                    vni: 10,
                    ports: vec![],
                },
                replace: false,
            },
        );
        assert!(e.contains("VNI"), "{e}");
        let e = refused(
            &mut m,
            Change::AddNetwork {
                spec: NetworkSpec {
                    name: "n2".into(),
                    vni: 30,
                    ports: vec!["p-blue".into()],
                },
                replace: false,
            },
        );
        assert!(e.contains("p-blue"), "{e}");
        let e = refused(
            &mut m,
            Change::AddPeer {
                spec: PeerSpec {
                    name: "c".into(),
                    dvr_mac: mac("fa:16:3f:00:00:0b"),
                    vtep: "192.0.2.30".parse().unwrap(),
                },
                replace: false,
            },
        );
        assert!(e.contains("b"), "{e}");
    }

    #[test]
    fn deletes_respect_dependencies() {
        let mut m = base();
        m.apply(&port("blue", "10.0.1.254", "fa:16:3e:00:00:fe", "b"))
            .unwrap();
        m.apply(&Change::AddRoute {
            spec: RouteSpec {
                router: "r".into(),
                prefix: "0.0.0.0/0".parse().unwrap(),
                via: "10.0.1.254".parse().unwrap(),
            },
            replace: false,
        })
        .unwrap();
        let e = refused(
            &mut m,
            Change::DelInterface {
                router: "r".into(),
                network: "blue".into(),
            },
        );
        assert!(e.contains("route 0.0.0.0/0"), "{e}");
        let e = refused(&mut m, Change::DelPeer { name: "b".into() });
        assert!(e.contains("in use"), "{e}");
        let e = refused(&mut m, Change::DelRouter { name: "r".into() });
        assert!(e.contains("in use"), "{e}");
        let e = refused(
            &mut m,
            Change::DelPort {
                network: "blue".into(),
                ip: "10.0.1.99".parse().unwrap(),
            },
        );
        assert!(e.contains("does not exist"), "{e}");
        m.apply(&Change::DelRoute {
            router: "r".into(),
            prefix: "0.0.0.0/0".parse().unwrap(),
        })
        .unwrap();
        m.apply(&Change::DelInterface {
            router: "r".into(),
            network: "blue".into(),
        })
        .unwrap();
    }

    #[test]
    fn a_batch_is_all_or_nothing() {
        let mut m = base();
        let before = m.clone();
        let batch = [
            port("blue", "10.0.1.5", "fa:16:3e:00:00:05", "a"),
            port("blue", "10.0.1.6", "ff:ff:ff:ff:ff:ff", "a"),
        ];
        let (i, e) = m.apply_batch(&batch).unwrap_err();
        assert_eq!(i, 1);
        assert!(e.to_string().contains("unicast"));
        assert_eq!(m, before);
        assert_eq!(m.apply_batch(&batch[..1]).unwrap(), vec![Applied::Changed]);
    }

    #[test]
    fn interface_addresses_parse_strictly() {
        for bad in [
            "10.0.1.0/24",
            "10.0.1.255/24",
            "10.0.1.1",
            "10.0.1.1/31",
            "10.0.1.1/x",
            "224.0.0.1/24",
        ] {
            assert!(bad.parse::<InterfaceAddr>().is_err(), "{bad}");
        }
        let a: InterfaceAddr = "10.0.1.1/24".parse().unwrap();
        assert_eq!(a.subnet().to_string(), "10.0.1.0/24");
        assert_eq!(a.broadcast().to_string(), "10.0.1.255");
    }
}
