//! Instance ports: a VM or container on a network, on this host or on a peer.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::*;

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

impl Model {
    pub(super) fn add_port(
        &mut self,
        spec: &InstancePortSpec,
        replace: bool,
    ) -> Stepped<InstancePortSpec> {
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
        check_local_port(spec, network, local)?;
        self.check_port_address(spec)?;
        invalid_if(self.is_dvr_mac(spec.mac), "port.mac", || {
            format!("{} is inside the DVR MAC range", spec.mac)
        })?;
        // Ports are keyed by (network, IP): only this network's are looked at.
        if let Some(other) = self
            .ports
            .range((spec.network.clone(), Ipv4Addr::UNSPECIFIED)..)
            .map(|(_, p)| p)
            .take_while(|p| p.network == spec.network)
            .find(|p| p.mac == spec.mac && p.ip != spec.ip)
        {
            return Err(ModelError::Conflict {
                kind: "port with this MAC",
                name: format!("{} on {}", other.ip, other.network),
            });
        }
        let name = format!("{} on network {}", spec.ip, spec.network);
        self.upsert(spec, replace, ("port", name), usize::MAX)
    }

    /// The address of `spec` is a host address of its network's subnet, not the gateway's.
    fn check_port_address(&self, spec: &InstancePortSpec) -> Result<(), ModelError> {
        if let Some(iface) = self.interface_of_network(&spec.network) {
            invalid_if(
                !iface.address.subnet().contains(u32::from(spec.ip)),
                "port.ip",
                || {
                    format!(
                        "{} is outside {} of network {}",
                        spec.ip,
                        iface.address.subnet(),
                        spec.network
                    )
                },
            )?;
            invalid_if(iface.address.ip == spec.ip, "port.ip", || {
                format!("{} is the gateway address", spec.ip)
            })?;
            invalid_if(iface.address.broadcast() == spec.ip, "port.ip", || {
                format!("{} is the broadcast address", spec.ip)
            })?;
            invalid_if(iface.mac == spec.mac, "port.mac", || {
                format!("{} is the gateway MAC", spec.mac)
            })?;
        }
        Ok(())
    }

    pub(super) fn del_port(&mut self, network: &str, ip: Ipv4Addr) -> Stepped<InstancePortSpec> {
        if let Some(f) = self.fip_of_port(network, ip) {
            return Err(ModelError::in_use(
                "port",
                format!("{ip} on network {network}"),
                format!("floating IP {} (delete it first)", f.ip),
            ));
        }
        self.remove(
            (network.to_string(), ip),
            ("port", format!("{ip} on network {network}")),
        )
    }
}

/// An instance on this host is behind one of its network's local ports: the one it names, or the
/// only one.
fn check_local_port(
    spec: &InstancePortSpec,
    network: &NetworkSpec,
    local: bool,
) -> Result<(), ModelError> {
    if let Some(lp) = &spec.port {
        invalid_if(!local, "port.port", || {
            "only an instance on this host has a local port"
        })?;
        invalid_if(!network.ports.contains(lp), "port.port", || {
            format!(
                "network {} is not attached to local port `{lp}`",
                spec.network
            )
        })?;
    } else {
        invalid_if(local && network.ports.len() != 1, "port.port", || {
            format!(
                "network {} has {} local ports: name the one the instance is behind",
                spec.network,
                network.ports.len()
            )
        })?;
    }
    Ok(())
}
