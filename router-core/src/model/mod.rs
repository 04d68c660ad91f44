//! The DVR model: what the control plane programs on a host.
//!
//! One host runs one router appliance. The model holds this host's identity (DVR MAC, VTEP), the
//! peer hosts, the tenant networks, the distributed routers with their interfaces and extra
//! routes, and every instance port of those networks (on this host or on a peer). The
//! configuration file and the control API both describe the desired state as [`Change`]s, and
//! both go through [`Model::edit`], so they share one validation: a change that is refused
//! changes nothing and says exactly what was wrong.
//!
//! Each object kind has its own file: its spec and its validation (`host`, `peer`, `network`,
//! `router`, `interface`, `route`, `port`). [`Model::edit`] is the one place a [`Change`] is
//! dispatched to them. A change that is accepted returns the [`Edit`] it made: the one entry it
//! touched, as it was and as it is (`edit`). That snapshot is the only undo there is: the model
//! undoes an edit by putting the old entry back, and the control plane undoes its programming by
//! programming the transition backwards (`control`).
//!
//! Requests are idempotent: adding an object that exists with the same value is a no-op
//! ([`Applied::Unchanged`]); with a different value it is an error unless the change asks to
//! replace it.

mod addr;
mod diff;
mod edit;
mod external;
mod fip;
mod host;
mod interface;
mod network;
mod peer;
mod port;
mod route;
mod router;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::lpm::Prefix;
use crate::wire::EthernetAddress;

pub use self::addr::{is_unicast_host, InterfaceAddr, MacAddr};
pub use self::diff::Diff;
pub(crate) use self::edit::each_step;
pub use self::edit::{Edit, Entry, Step};
pub use self::external::ExternalSpec;
pub use self::fip::FloatingIpSpec;
pub use self::host::HostSpec;
pub use self::interface::InterfaceSpec;
pub use self::network::NetworkSpec;
pub use self::peer::PeerSpec;
pub use self::port::InstancePortSpec;
pub use self::route::RouteSpec;
pub use self::router::RouterSpec;

/// Most peer hosts one host knows (limits the width of a next hop's target field).
pub const MAX_PEERS: usize = 1024;
/// Most tenant networks on one host.
pub const MAX_NETWORKS: usize = 4096;
/// Most distributed routers (VRFs) on one host.
pub const MAX_ROUTERS: usize = 1024;
/// Most interfaces of one router.
pub const MAX_INTERFACES_PER_ROUTER: usize = 64;
/// Most floating IPs one host holds (of all its routers).
pub const MAX_FLOATING_IPS: usize = 4096;
/// Longest object name (routers, networks, hosts).
pub const NAME_LEN_MAX: usize = 63;
/// Largest VXLAN network identifier (24 bits).
pub const VNI_MAX: u32 = (1 << 24) - 1;

/// The DVR MAC range Neutron draws host MACs from (`dvr_base_mac` = fa:16:3f:00:00:00/24).
pub const DVR_MAC_BASE_DEFAULT: MacAddr =
    MacAddr(EthernetAddress([0xfa, 0x16, 0x3f, 0x00, 0x00, 0x00]));

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
    /// This host's address on the external network and the external gateway.
    SetExternal(ExternalSpec),
    DelExternal,
    AddFloatingIp {
        spec: FloatingIpSpec,
        replace: bool,
    },
    DelFloatingIp {
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
    pub(crate) fn in_use(
        kind: &'static str,
        name: impl Into<String>,
        user: impl Into<String>,
    ) -> Self {
        ModelError::InUse {
            kind,
            name: name.into(),
            user: user.into(),
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
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

/// The whole desired state of this host. Plain data, compared whole by tests of the undo.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub host: Option<HostSpec>,
    pub peers: BTreeMap<String, PeerSpec>,
    pub networks: BTreeMap<String, NetworkSpec>,
    pub routers: BTreeMap<String, RouterSpec>,
    pub interfaces: BTreeMap<InterfaceKey, InterfaceSpec>,
    pub routes: BTreeMap<RouteKey, RouteSpec>,
    pub ports: BTreeMap<PortKey, InstancePortSpec>,
    /// This host on the external network, if it has an external port.
    pub external: Option<ExternalSpec>,
    /// Floating IPs of the routers, by floating address.
    pub floating_ips: BTreeMap<Ipv4Addr, FloatingIpSpec>,
    /// The host has an external port (one configured with `external = true`).
    pub external_port: bool,
    /// The DPDK ports instances can attach to (names from the configuration's `ports`), as
    /// given by the daemon. Networks may only name these.
    pub local_ports: Vec<String>,
    /// The DVR MAC range: a source MAC inside it on the fabric claims to be a host's DVR MAC.
    pub dvr_mac_base: Option<(MacAddr, u8)>,
}

/// What a validator returns: the entry it changed as a [`Step`], `None` when the change asked for
/// what is already there.
pub(crate) type Stepped<T> = Result<Option<Step<T>>, ModelError>;

impl Model {
    /// An empty model whose networks may attach to `local_ports`.
    pub fn new(local_ports: Vec<String>) -> Self {
        Model {
            local_ports,
            ..Model::default()
        }
    }

    /// An empty model for a host with `ports`, each a name and whether it is the fabric port:
    /// networks may attach to every port but the fabric.
    pub fn for_ports<'a>(ports: impl IntoIterator<Item = (&'a str, bool)>) -> Self {
        let local_ports = ports
            .into_iter()
            .filter(|&(_, fabric)| !fabric)
            .map(|(name, _)| name.to_string())
            .collect();
        Self::new(local_ports)
    }

    /// The same host with none of its DVR objects: what the daemon set up (ports, the external
    /// port, the DVR MAC range) and nothing the configuration or the API added. A file's
    /// routing state is rebuilt on it at a reload.
    pub fn without_objects(&self) -> Self {
        Model {
            local_ports: self.local_ports.clone(),
            external_port: self.external_port,
            dvr_mac_base: self.dvr_mac_base,
            ..Model::default()
        }
    }

    /// Validates one change and makes it, returning the entry it touched as it was and as it is
    /// (`None`: nothing to do). A refused change changes nothing.
    ///
    /// This is the one place a [`Change`] is taken apart: each object kind validates its own.
    pub fn edit(&mut self, change: &Change) -> Result<Option<Edit>, ModelError> {
        Ok(match change {
            Change::SetHost(spec) => self.set_host(spec)?.map(Edit::Host),
            Change::AddPeer { spec, replace } => self.add_peer(spec, *replace)?.map(Edit::Peer),
            Change::DelPeer { name } => self.del_peer(name)?.map(Edit::Peer),
            Change::AddNetwork { spec, replace } => {
                self.add_network(spec, *replace)?.map(Edit::Network)
            }
            Change::DelNetwork { name } => self.del_network(name)?.map(Edit::Network),
            Change::AddRouter { spec, replace } => {
                self.add_router(spec, *replace)?.map(Edit::Router)
            }
            Change::DelRouter { name } => self.del_router(name)?.map(Edit::Router),
            Change::AddInterface { spec, replace } => {
                self.add_interface(spec, *replace)?.map(Edit::Interface)
            }
            Change::DelInterface { router, network } => {
                self.del_interface(router, network)?.map(Edit::Interface)
            }
            Change::AddRoute { spec, replace } => self.add_route(spec, *replace)?.map(Edit::Route),
            Change::DelRoute { router, prefix } => {
                self.del_route(router, *prefix)?.map(Edit::Route)
            }
            Change::AddPort { spec, replace } => self.add_port(spec, *replace)?.map(Edit::Port),
            Change::DelPort { network, ip } => self.del_port(network, *ip)?.map(Edit::Port),
            Change::SetExternal(spec) => self.set_external(spec)?.map(Edit::External),
            Change::DelExternal => self.del_external()?.map(Edit::External),
            Change::AddFloatingIp { spec, replace } => {
                self.add_fip(spec, *replace)?.map(Edit::FloatingIp)
            }
            Change::DelFloatingIp { ip } => self.del_fip(*ip)?.map(Edit::FloatingIp),
        })
    }

    /// Applies one change, or refuses it and changes nothing.
    pub fn apply(&mut self, change: &Change) -> Result<Applied, ModelError> {
        Ok(Applied::of(self.edit(change)?.as_ref()))
    }

    /// Applies all changes or none: on the first refusal the edits made so far are undone in
    /// reverse order, which leaves the model as it was, and the error names the index of the
    /// refused change.
    pub fn apply_batch(&mut self, changes: &[Change]) -> Result<Vec<Applied>, (usize, ModelError)> {
        let mut edits = Vec::with_capacity(changes.len());
        for (i, change) in changes.iter().enumerate() {
            match self.edit(change) {
                Ok(edit) => edits.push(edit),
                Err(e) => {
                    self.undo_all(&edits);
                    return Err((i, e));
                }
            }
        }
        Ok(edits.iter().map(|e| Applied::of(e.as_ref())).collect())
    }

    /// Undoes `edits` (made in this order) in reverse order.
    pub fn undo_all(&mut self, edits: &[Option<Edit>]) {
        for edit in edits.iter().rev().flatten() {
            edit.undo(self);
        }
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

    /// The instance ports of a network.
    pub fn ports_of_network<'m>(
        &'m self,
        network: &'m str,
    ) -> impl Iterator<Item = &'m InstancePortSpec> + 'm {
        self.ports.values().filter(move |p| p.network == network)
    }

    /// True if `host` names this host.
    pub fn is_local_host(&self, host: &str) -> bool {
        self.host.as_ref().is_some_and(|h| h.name == host)
    }

    /// True if `mac` lies in the DVR MAC range (a host MAC, never an instance's).
    pub fn is_dvr_mac(&self, mac: MacAddr) -> bool {
        let (base, len) = self.dvr_mac_base.unwrap_or((DVR_MAC_BASE_DEFAULT, 24));
        let shift = 48 - u32::from(len);
        (mac.to_u64() >> shift) == (base.to_u64() >> shift)
    }

    /// Inserts or replaces `spec` under its key; `kind` and `name` are how errors call it, and
    /// `limit` is the most entries of its kind.
    pub(crate) fn upsert<T: Entry>(
        &mut self,
        spec: &T,
        replace: bool,
        (kind, name): (&'static str, String),
        limit: usize,
    ) -> Stepped<T> {
        let key = spec.key();
        let before = T::get(self, &key).cloned();
        match &before {
            Some(old) if old == spec => return Ok(None),
            Some(_) if !replace => return Err(ModelError::Conflict { kind, name }),
            None if T::count(self) >= limit => return Err(ModelError::Limit { kind, limit }),
            _ => {}
        }
        T::put(self, key, Some(spec.clone()));
        Ok(Some(Step {
            before,
            after: Some(spec.clone()),
        }))
    }

    /// The entry under `key`, or the error that says it does not exist.
    pub(crate) fn existing<T: Entry>(
        &self,
        key: &T::Key,
        (kind, name): (&'static str, &str),
    ) -> Result<&T, ModelError> {
        T::get(self, key).ok_or_else(|| ModelError::NotFound {
            kind,
            name: name.into(),
        })
    }

    /// Removes the entry under `key`, or says that it does not exist.
    pub(crate) fn remove<T: Entry>(
        &mut self,
        key: T::Key,
        (kind, name): (&'static str, String),
    ) -> Stepped<T> {
        let Some(before) = T::get(self, &key).cloned() else {
            return Err(ModelError::NotFound { kind, name });
        };
        T::put(self, key, None);
        Ok(Some(Step {
            before: Some(before),
            after: None,
        }))
    }
}

impl Applied {
    /// What an edit did: changed something, or found it as asked.
    pub fn of(edit: Option<&Edit>) -> Self {
        if edit.is_some() {
            Applied::Changed
        } else {
            Applied::Unchanged
        }
    }
}

/// Refuses with `reason` for `field` when `refused` holds.
pub(crate) fn invalid_if<R: Into<String>>(
    refused: bool,
    field: &'static str,
    reason: impl FnOnce() -> R,
) -> Result<(), ModelError> {
    if refused {
        Err(ModelError::invalid(field, reason()))
    } else {
        Ok(())
    }
}

pub(crate) fn check_name(field: &'static str, name: &str) -> Result<(), ModelError> {
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

pub(crate) fn check_mac(field: &'static str, mac: MacAddr) -> Result<(), ModelError> {
    if mac.is_assignable() {
        Ok(())
    } else {
        Err(ModelError::invalid(
            field,
            format!("{mac} is not a unicast MAC address"),
        ))
    }
}

pub(crate) fn check_unicast(field: &'static str, ip: Ipv4Addr) -> Result<(), ModelError> {
    if is_unicast_host(ip) {
        Ok(())
    } else {
        Err(ModelError::invalid(
            field,
            format!("{ip} is not a unicast host address"),
        ))
    }
}
