//! The other hosts of the fabric: each has a DVR MAC and a VTEP, none shared with this host or
//! another peer.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::*;

/// Another host of the fabric.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSpec {
    pub name: String,
    pub dvr_mac: MacAddr,
    pub vtep: Ipv4Addr,
}

impl Model {
    pub(super) fn add_peer(&mut self, spec: &PeerSpec, replace: bool) -> Stepped<PeerSpec> {
        check_name("peer.name", &spec.name)?;
        check_mac("peer.dvr_mac", spec.dvr_mac)?;
        check_unicast("peer.vtep", spec.vtep)?;
        let host = self.host.as_ref().ok_or(ModelError::NoHost {
            what: "peers are added",
        })?;
        invalid_if(host.name == spec.name, "peer.name", || {
            format!("`{}` is this host", spec.name)
        })?;
        invalid_if(host.dvr_mac == spec.dvr_mac, "peer.dvr_mac", || {
            format!("{} is this host's DVR MAC", spec.dvr_mac)
        })?;
        invalid_if(host.vtep == spec.vtep, "peer.vtep", || {
            format!("{} is this host's VTEP", spec.vtep)
        })?;
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
        self.upsert(spec, replace, ("peer", spec.name.clone()), MAX_PEERS)
    }

    pub(super) fn del_peer(&mut self, name: &str) -> Stepped<PeerSpec> {
        self.existing::<PeerSpec>(&name.to_string(), ("peer", name))?;
        if let Some(p) = self.ports.values().find(|p| p.host == name) {
            return Err(ModelError::in_use(
                "peer",
                name,
                format!("port {} on network {}", p.ip, p.network),
            ));
        }
        self.remove(name.to_string(), ("peer", name.into()))
    }
}
