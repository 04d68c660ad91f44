//! Distributed routers (VRFs): a name and the layout of the routing table.

use serde::{Deserialize, Serialize};

use super::*;

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

impl Model {
    pub(super) fn add_router(&mut self, spec: &RouterSpec, replace: bool) -> Stepped<RouterSpec> {
        check_name("router.name", &spec.name)?;
        if let Some(old) = self.routers.get(&spec.name) {
            invalid_if(
                old != spec && old.large != spec.large,
                "router.large",
                || "the table layout of an existing router cannot change; delete and re-add it",
            )?;
        }
        self.upsert(spec, replace, ("router", spec.name.clone()), MAX_ROUTERS)
    }

    pub(super) fn del_router(&mut self, name: &str) -> Stepped<RouterSpec> {
        self.existing::<RouterSpec>(&name.to_string(), ("router", name))?;
        if let Some((_, i)) = self.interfaces.iter().find(|((r, _), _)| r == name) {
            return Err(ModelError::in_use(
                "router",
                name,
                format!("its interface on {}", i.network),
            ));
        }
        if let Some((_, r)) = self.routes.iter().find(|((r, _), _)| r == name) {
            return Err(ModelError::in_use(
                "router",
                name,
                format!("its route {}", r.prefix),
            ));
        }
        if let Some(f) = self.floating_ips.values().find(|f| f.router == name) {
            return Err(ModelError::in_use(
                "router",
                name,
                format!("floating IP {}", f.ip),
            ));
        }
        self.remove(name.to_string(), ("router", name.into()))
    }
}
