//! Distributed routers: each has an id, its own LPM (the routing table the workers look up) and
//! its ICMP error rate limiter. Every write to a router's LPM goes through here, which keeps the
//! count of tbl8 groups the capacity check reads.

use std::sync::Arc;

use super::capacity::{Fits, GroupTally, Plan, Pool};
use super::{ApplyError, ControlPlane, Program};
use crate::dataplane::IcmpLimiter;
use crate::ids::{NextHopId, RouterId};
use crate::lpm::{LpmConfig, LpmWriter, Prefix};
use crate::model::RouterSpec;

/// What the tables hold for a router.
#[derive(Debug)]
pub(super) struct RouterState {
    pub id: RouterId,
    pub lpm: LpmWriter,
    pub icmp: Arc<IcmpLimiter>,
    /// The routes of `lpm` by tbl8 group.
    pub groups: GroupTally,
}

impl Program for RouterSpec {
    fn plan(_: &ControlPlane, old: Option<&Self>, _: &Self, plan: &mut Plan) -> Fits {
        // A replace changes nothing the data plane sees (the layout cannot change).
        match old {
            None => plan.id(Pool::Routers),
            Some(_) => Ok(()),
        }
    }

    fn install(cp: &mut ControlPlane, _: Option<&Self>, new: &Self) -> Result<(), ApplyError> {
        cp.install_router(new)
    }

    fn remove(cp: &mut ControlPlane, old: &Self) {
        if let Some(r) = cp.routers.remove(&old.name) {
            cp.retract(Pool::Routers, r.id);
        }
    }
}

impl ControlPlane {
    fn install_router(&mut self, spec: &RouterSpec) -> Result<(), ApplyError> {
        if self.routers.contains_key(&spec.name) {
            return Ok(()); // a replace that changed nothing the data plane sees
        }
        let config = if spec.large {
            LpmConfig::root24(self.cfg.tbl8_groups_large)
        } else {
            LpmConfig::root16(self.cfg.tbl8_groups_compact)
        };
        let lpm =
            LpmWriter::new(config, Arc::clone(&self.qsbr)).map_err(|source| ApplyError::Lpm {
                router: spec.name.clone(),
                source,
            })?;
        if let Some(hook) = &self.table_memory_hook {
            for (addr, len) in lpm.lpm().memory_regions() {
                hook(addr, len);
            }
        }
        let id = RouterId::new(self.ids.alloc(&self.qsbr, Pool::Routers)?);
        let icmp = Arc::new(IcmpLimiter::new(
            self.cfg.icmp_rate_per_s,
            self.cfg.icmp_burst,
        ));
        self.routers.insert(
            spec.name.clone(),
            RouterState {
                id,
                lpm,
                icmp,
                groups: GroupTally::default(),
            },
        );
        self.dirty = true;
        Ok(())
    }

    /// Points `prefix` of `router` at next hop `nh`.
    pub(super) fn lpm_insert(
        &mut self,
        router: &str,
        prefix: Prefix,
        nh: NextHopId,
    ) -> Result<(), ApplyError> {
        let r = self.router_state(router)?;
        let root_bits = r.lpm.lpm().config().root_bits;
        match r.lpm.insert(prefix, nh) {
            Ok(None) => r.groups.insert(prefix, root_bits),
            Ok(Some(_)) => {}
            Err(source) => {
                return Err(ApplyError::Lpm {
                    router: router.into(),
                    source,
                })
            }
        }
        Ok(())
    }

    pub(super) fn lpm_remove(&mut self, router: &str, prefix: Prefix) -> Result<(), ApplyError> {
        let r = self.router_state(router)?;
        let root_bits = r.lpm.lpm().config().root_bits;
        r.lpm.remove(prefix).map_err(|source| ApplyError::Lpm {
            router: router.into(),
            source,
        })?;
        r.groups.remove(prefix, root_bits);
        Ok(())
    }

    fn router_state(&mut self, router: &str) -> Result<&mut RouterState, ApplyError> {
        self.routers
            .get_mut(router)
            .ok_or_else(|| ApplyError::Config(format!("no router {router}")))
    }

    /// Changes the ICMP error rate limit of every router.
    pub fn set_icmp_rate(&mut self, rate_per_s: u32, burst: u32) {
        self.cfg.icmp_rate_per_s = rate_per_s;
        self.cfg.icmp_burst = burst;
        for r in self.routers.values() {
            r.icmp.set(rate_per_s, burst);
        }
    }
}
