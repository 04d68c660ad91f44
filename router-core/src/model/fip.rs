//! Floating IPs: a public address on the external network, translated 1:1 to the fixed IP of
//! one instance port of a router. Every host that has the router holds the floating IP; only
//! the host the instance runs on acts on it (answers ARP for it, translates its traffic).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::*;

/// A floating IP: `ip` on the external network stands for the instance port with fixed IP
/// `port` on one of `router`'s networks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatingIpSpec {
    pub ip: Ipv4Addr,
    pub router: String,
    /// The fixed IP of the instance port.
    pub port: Ipv4Addr,
}

impl Model {
    pub(super) fn add_fip(
        &mut self,
        spec: &FloatingIpSpec,
        replace: bool,
    ) -> Stepped<FloatingIpSpec> {
        check_unicast("floating_ip.ip", spec.ip)?;
        if !self.routers.contains_key(&spec.router) {
            return Err(ModelError::NotFound {
                kind: "router",
                name: spec.router.clone(),
            });
        }
        let port = self.fip_port(spec).ok_or_else(|| ModelError::NotFound {
            kind: "instance port",
            name: format!("{} on a network of router {}", spec.port, spec.router),
        })?;
        let local = self.is_local_host(&port.host);
        match &self.external {
            Some(ext) => {
                if let Some(reason) = self.fip_conflicts_external(spec.ip, ext) {
                    return Err(ModelError::invalid("floating_ip.ip", reason));
                }
            }
            None => invalid_if(local, "floating_ip", || {
                format!(
                    "the instance {} runs on this host, which has no external network",
                    spec.port
                )
            })?,
        }
        if let Some(other) = self
            .floating_ips
            .values()
            .find(|f| f.ip != spec.ip && f.router == spec.router && f.port == spec.port)
        {
            return Err(ModelError::Conflict {
                kind: "floating IP of this port",
                name: other.ip.to_string(),
            });
        }
        self.upsert(
            spec,
            replace,
            ("floating IP", spec.ip.to_string()),
            MAX_FLOATING_IPS,
        )
    }

    pub(super) fn del_fip(&mut self, ip: Ipv4Addr) -> Stepped<FloatingIpSpec> {
        self.remove(ip, ("floating IP", ip.to_string()))
    }

    /// The instance port a floating IP stands for.
    pub fn fip_port(&self, spec: &FloatingIpSpec) -> Option<&InstancePortSpec> {
        let iface = self.interface_for(&spec.router, spec.port)?;
        self.ports.get(&(iface.network.clone(), spec.port))
    }

    /// True when the instance of a floating IP runs on this host: the host that acts on it.
    pub fn fip_port_is_local(&self, spec: &FloatingIpSpec) -> bool {
        self.fip_port(spec)
            .is_some_and(|p| self.is_local_host(&p.host))
    }

    /// The floating IP of the instance port (network, ip), if it has one: deleting the port, or
    /// the interface it is reached by, is refused while it does.
    pub(crate) fn fip_of_port(&self, network: &str, ip: Ipv4Addr) -> Option<&FloatingIpSpec> {
        self.floating_ips.values().find(|f| {
            f.port == ip
                && self
                    .interface_for(&f.router, f.port)
                    .is_some_and(|i| i.network == network)
        })
    }
}
