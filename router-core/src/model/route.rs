//! Extra routes of a router, via a neighbour on one of its subnets.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::*;

/// An extra route of a router: `prefix` via the neighbour `via` on one of its subnets. The
/// default route to the centralised SNAT node is one of these, via the SNAT port's address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub router: String,
    pub prefix: Prefix,
    pub via: Ipv4Addr,
}

impl Model {
    pub(super) fn add_route(&mut self, spec: &RouteSpec, replace: bool) -> Stepped<RouteSpec> {
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
        invalid_if(iface.address.ip == spec.via, "route.via", || {
            format!("{} is the router's own address", spec.via)
        })?;
        invalid_if(
            iface.address.subnet() == spec.prefix,
            "route.prefix",
            || format!("{} is a connected subnet", spec.prefix),
        )?;
        let name = format!("{} in router {}", spec.prefix, spec.router);
        self.upsert(spec, replace, ("route", name), usize::MAX)
    }

    pub(super) fn del_route(&mut self, router: &str, prefix: Prefix) -> Stepped<RouteSpec> {
        self.remove(
            (router.to_string(), prefix),
            ("route", format!("{prefix} in router {router}")),
        )
    }
}
