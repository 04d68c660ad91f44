//! Tenant networks: a VNI on the fabric and the local ports the network is attached to here.

use serde::{Deserialize, Serialize};

use super::*;

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

impl Model {
    pub(super) fn add_network(
        &mut self,
        spec: &NetworkSpec,
        replace: bool,
    ) -> Stepped<NetworkSpec> {
        check_name("network.name", &spec.name)?;
        invalid_if(spec.vni == 0 || spec.vni > VNI_MAX, "network.vni", || {
            format!("{} is not a VNI (1..={VNI_MAX})", spec.vni)
        })?;
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
            invalid_if(spec.ports[..i].contains(port), "network.ports", || {
                format!("`{port}` is listed twice")
            })?;
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
                return Err(ModelError::in_use(
                    "local port",
                    p.port.clone().unwrap_or_default(),
                    format!("port {} on network {}", p.ip, p.network),
                ));
            }
        }
        self.upsert(spec, replace, ("network", spec.name.clone()), MAX_NETWORKS)
    }

    pub(super) fn del_network(&mut self, name: &str) -> Stepped<NetworkSpec> {
        self.existing::<NetworkSpec>(&name.to_string(), ("network", name))?;
        if let Some(i) = self.interface_of_network(name) {
            return Err(ModelError::in_use(
                "network",
                name,
                format!("an interface of router {}", i.router),
            ));
        }
        if let Some(p) = self.ports.values().find(|p| p.network == name) {
            return Err(ModelError::in_use(
                "network",
                name,
                format!("port {}", p.ip),
            ));
        }
        self.remove(name.to_string(), ("network", name.into()))
    }
}
