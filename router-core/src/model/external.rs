//! The external network (the provider network floating IPs live on), as this host sees it: its
//! own address there (Neutron's floating IP agent gateway port) and the upstream router. Set
//! only on a host whose configuration has an external port.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::*;

/// This host on the external network: its address and subnet, and the external gateway (the
/// upstream router), the next hop of everything floating IPs send outside the subnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSpec {
    pub address: InterfaceAddr,
    pub gateway: Ipv4Addr,
}

impl Model {
    pub(super) fn set_external(&mut self, spec: &ExternalSpec) -> Stepped<ExternalSpec> {
        invalid_if(!self.external_port, "external", || {
            "this host has no external port (a port with `external = true`)"
        })?;
        check_unicast("external.address", spec.address.ip)?;
        check_unicast("external.gateway", spec.gateway)?;
        let subnet = spec.address.subnet();
        invalid_if(
            !subnet.contains(u32::from(spec.gateway)),
            "external.gateway",
            || format!("{} is outside {subnet}", spec.gateway),
        )?;
        invalid_if(spec.gateway == spec.address.ip, "external.gateway", || {
            format!("{} is this host's own address", spec.gateway)
        })?;
        invalid_if(
            spec.address.ip == spec.address.broadcast(),
            "external.address",
            || format!("{} is the broadcast address", spec.address.ip),
        )?;
        if self.external.as_ref() == Some(spec) {
            return Ok(None);
        }
        if let Some(f) = self
            .floating_ips
            .values()
            .find(|f| self.fip_conflicts_external(f.ip, spec).is_some())
        {
            return Err(ModelError::in_use(
                "external network",
                subnet.to_string(),
                format!("floating IP {}", f.ip),
            ));
        }
        Ok(Some(Step {
            before: self.external.replace(spec.clone()),
            after: Some(spec.clone()),
        }))
    }

    pub(super) fn del_external(&mut self) -> Stepped<ExternalSpec> {
        let Some(ext) = &self.external else {
            return Err(ModelError::NotFound {
                kind: "external network",
                name: "of this host".into(),
            });
        };
        if let Some(f) = self
            .floating_ips
            .values()
            .find(|f| self.fip_port_is_local(f))
        {
            return Err(ModelError::in_use(
                "external network",
                ext.address.subnet().to_string(),
                format!("floating IP {} of an instance on this host", f.ip),
            ));
        }
        Ok(Some(Step {
            before: self.external.take(),
            after: None,
        }))
    }

    /// Why floating IP `ip` cannot live on the external network `ext`, if it cannot.
    pub(super) fn fip_conflicts_external(
        &self,
        ip: Ipv4Addr,
        ext: &ExternalSpec,
    ) -> Option<String> {
        let subnet = ext.address.subnet();
        if !subnet.contains(u32::from(ip)) {
            Some(format!("{ip} is outside the external subnet {subnet}"))
        } else if ip == ext.address.ip {
            Some(format!("{ip} is this host's external address"))
        } else if ip == ext.gateway {
            Some(format!("{ip} is the external gateway"))
        } else if ip == ext.address.broadcast() {
            Some(format!("{ip} is the external subnet's broadcast address"))
        } else {
            None
        }
    }
}
