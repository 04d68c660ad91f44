//! Router interfaces: the anycast gateway of a router on a network (address, subnet, MAC).

use serde::{Deserialize, Serialize};

use super::*;

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

impl Model {
    pub(super) fn add_interface(
        &mut self,
        spec: &InterfaceSpec,
        replace: bool,
    ) -> Stepped<InterfaceSpec> {
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
        self.check_subnet(spec)?;
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
        self.upsert(
            spec,
            replace,
            ("interface", format!("{} on {}", spec.router, spec.network)),
            usize::MAX,
        )
    }

    /// The subnet of `spec` overlaps no other subnet of its router, keeps the routes that go
    /// through the old one, and holds the network's instance ports (none at the gateway).
    fn check_subnet(&self, spec: &InterfaceSpec) -> Result<(), ModelError> {
        let subnet = spec.address.subnet();
        for ((router, network), other) in &self.interfaces {
            if router != &spec.router || network == &spec.network {
                continue;
            }
            let o = other.address.subnet();
            invalid_if(
                o.covers(subnet) || subnet.covers(o),
                "interface.address",
                || format!("{subnet} overlaps {o} of the interface on {network}"),
            )?;
        }
        if let Some(old) = self
            .interfaces
            .get(&(spec.router.clone(), spec.network.clone()))
        {
            if old != spec
                && old.address.subnet() != subnet
                && self.network_has_dependents(&spec.router, old)
            {
                return Err(ModelError::in_use(
                    "interface",
                    format!("{} on {}", spec.router, spec.network),
                    "routes or instance ports on its subnet",
                ));
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
        Ok(())
    }

    fn network_has_dependents(&self, router: &str, iface: &InterfaceSpec) -> bool {
        let subnet = iface.address.subnet();
        self.routes
            .values()
            .any(|r| r.router == router && subnet.contains(u32::from(r.via)))
    }

    pub(super) fn del_interface(&mut self, router: &str, network: &str) -> Stepped<InterfaceSpec> {
        let key = (router.to_string(), network.to_string());
        let name = format!("{router} on {network}");
        let iface = self.existing::<InterfaceSpec>(&key, ("interface", &name))?;
        let subnet = iface.address.subnet();
        if let Some(r) = self
            .routes
            .values()
            .find(|r| r.router == router && subnet.contains(u32::from(r.via)))
        {
            return Err(ModelError::in_use(
                "interface",
                format!("{router} on {network}"),
                format!("route {} via {}", r.prefix, r.via),
            ));
        }
        if let Some(f) = self
            .floating_ips
            .values()
            .find(|f| f.router == router && subnet.contains(u32::from(f.port)))
        {
            return Err(ModelError::in_use(
                "interface",
                format!("{router} on {network}"),
                format!("floating IP {} of {}", f.ip, f.port),
            ));
        }
        self.remove(key, ("interface", format!("{router} on {network}")))
    }
}
