//! Floating IPs: an id each (for its counters), and the topology's view of those whose
//! instance runs on this host. A floating IP takes nothing else from the tables: the
//! translation is a lookup in the published topology, and the router's own table routes the
//! fixed IP. Whether it is active here follows its instance port, so a port moving to or from
//! this host republishes the topology, and a floating IP that becomes active is announced by
//! gratuitous ARP.

use super::capacity::{Fits, Plan, Pool};
use super::{ApplyError, ControlPlane, Program};
use crate::dataplane::{fip_fixed_key, FipInfo, FlatMap, IfaceInfo, Topology};
use crate::ids::{FipId, NetworkId};
use crate::model::FloatingIpSpec;

impl Program for FloatingIpSpec {
    fn plan(_: &ControlPlane, old: Option<&Self>, _: &Self, plan: &mut Plan) -> Fits {
        if old.is_none() {
            plan.id(Pool::Fips)?;
        }
        Ok(())
    }

    fn install(cp: &mut ControlPlane, old: Option<&Self>, new: &Self) -> Result<(), ApplyError> {
        if old.is_none() {
            let id = FipId::new(cp.ids.alloc(&cp.qsbr, Pool::Fips)?);
            cp.fips.insert(new.ip, id);
        }
        cp.dirty = true;
        Ok(())
    }

    fn remove(cp: &mut ControlPlane, old: &Self) {
        if let Some(id) = cp.fips.remove(&old.ip) {
            cp.retract(Pool::Fips, id);
        }
    }
}

impl ControlPlane {
    /// The floating IPs of the instances on this host, with the maps the workers find them by.
    pub(super) fn publish_fips(&self, t: &mut Topology) {
        let Some(ext) = t.external else {
            return;
        };
        let m = &self.model;
        t.fips = m
            .floating_ips
            .values()
            .filter(|f| m.fip_port_is_local(f))
            .filter_map(|f| {
                let router = self.routers.get(&f.router)?.id;
                Some(FipInfo {
                    id: *self.fips.get(&f.ip)?,
                    fip: u32::from(f.ip),
                    fixed: u32::from(f.port),
                    router,
                    outside: IfaceInfo {
                        router,
                        network: NetworkId::MAX,
                        ip: ext.ip,
                        mac: ext.mac,
                        subnet: ext.subnet,
                    },
                })
            })
            .collect();
        t.fip_by_ip = FlatMap::new(
            t.fips
                .iter()
                .enumerate()
                .map(|(i, f)| (u64::from(f.fip), i as u16)),
        );
        t.fip_by_fixed = FlatMap::new(
            t.fips
                .iter()
                .enumerate()
                .map(|(i, f)| (fip_fixed_key(f.router, f.fixed), i as u16)),
        );
    }

    /// The id (counters) of a floating IP.
    pub fn fip_id(&self, ip: std::net::Ipv4Addr) -> Option<FipId> {
        self.fips.get(&ip).copied()
    }
}
