//! This host: its name, DVR MAC and VTEP. Set once before peers and ports, changed only while
//! no instance port names it.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::*;

/// This host: its name, its DVR MAC (source MAC of every frame it routes onto the fabric) and
/// its VTEP address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub name: String,
    pub dvr_mac: MacAddr,
    pub vtep: Ipv4Addr,
}

impl Model {
    pub(super) fn set_host(&mut self, spec: &HostSpec) -> Stepped<HostSpec> {
        check_name("host.name", &spec.name)?;
        check_mac("host.dvr_mac", spec.dvr_mac)?;
        check_unicast("host.vtep", spec.vtep)?;
        if self.host.as_ref() == Some(spec) {
            return Ok(None);
        }
        if let Some(host) = &self.host {
            let in_use = self.ports.values().any(|p| p.host == host.name);
            if in_use && host.name != spec.name {
                return Err(ModelError::in_use(
                    "host",
                    host.name.clone(),
                    "instance ports",
                ));
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
        Ok(Some(Step {
            before: self.host.replace(spec.clone()),
            after: Some(spec.clone()),
        }))
    }
}
