//! A simulated host: the fleet's real [`Member`] and [`HostSync`], applying every batch to a
//! real router-core [`ControlPlane`] of its own (no DPDK: a fabric port and one local port per
//! network it may host, a QSBR domain with no readers), and logging when each revision was
//! applied.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use dvr_fleet::member::{Apply, Member, MemberConfig, SharedReport};
use dvr_fleet::status::unix_us;
use dvr_fleet::store::StoreConfig;
use dvr_fleet::{HostSync, MemberReport};
use router_core::control::{ControlConfig, ControlPlane, PortSetup};
use router_core::model::{Change, Model};
use router_core::qsbr::Qsbr;
use router_core::wire::EthernetAddress;

use super::topo::{HostDef, Topology};

/// One applied revision: (revision, wall clock in µs, changes).
pub type AppliedLog = Arc<Mutex<Vec<(i64, u64, u32)>>>;

/// Time spent in `apply_batch`, over all simulated hosts.
#[derive(Debug, Default)]
pub struct ApplyCounters {
    pub nanos: AtomicU64,
    pub batches: AtomicU64,
}

/// The simulated control thread: applies the batch to its control plane at once.
pub struct SimApply {
    cp: ControlPlane,
    log: AppliedLog,
    counters: Arc<ApplyCounters>,
    since_reclaim: u32,
}

impl std::fmt::Debug for SimApply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimApply").finish_non_exhaustive()
    }
}

impl Apply for SimApply {
    fn apply(&mut self, revision: i64, changes: &[Change]) -> Result<(), (usize, String)> {
        let t = Instant::now();
        let r = self.cp.apply_batch(changes);
        let spent = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters.nanos.fetch_add(spent, Ordering::Relaxed);
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.since_reclaim += 1;
        if self.since_reclaim >= 64 {
            self.since_reclaim = 0;
            self.cp.reclaim();
        }
        match r {
            Ok(_) => {
                let at = unix_us(SystemTime::now());
                let n = u32::try_from(changes.len()).unwrap_or(u32::MAX);
                self.log
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((revision, at, n));
                Ok(())
            }
            Err((i, e)) => Err((i, e.to_string())),
        }
    }
}

/// A simulated host, built and not started yet.
pub struct SimHost {
    pub name: String,
    pub member: Member<SimApply>,
    pub report: SharedReport,
    pub log: AppliedLog,
}

impl std::fmt::Debug for SimHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHost").field("name", &self.name).finish()
    }
}

/// Table sizes of a simulated host: a hundred of them fit in a few GiB.
pub const SIM_NEXT_HOPS: usize = 1 << 15;
pub const SIM_L2_ENTRIES: usize = 1 << 15;
pub const SIM_TBL8_GROUPS: u32 = 32;

impl SimHost {
    pub fn new(
        host: &HostDef,
        topo: &Topology,
        store: &StoreConfig,
        counters: &Arc<ApplyCounters>,
        status_interval: Duration,
    ) -> Result<SimHost, String> {
        let port = |name: String, i: usize, fabric: bool| PortSetup {
            name,
            mac: EthernetAddress([0x02, 0, 0, 0, (i >> 8) as u8, i as u8]),
            mtu: 1500,
            fabric,
            external: false,
        };
        let mut ports = vec![port("fabric".into(), 0, true)];
        for (i, j) in host.networks(topo).enumerate() {
            ports.push(port(topo.networks[j].name.clone(), i + 1, false));
        }
        let mut cfg = ControlConfig::new(ports);
        cfg.next_hops = SIM_NEXT_HOPS;
        cfg.l2_entries = SIM_L2_ENTRIES;
        cfg.tbl8_groups_compact = SIM_TBL8_GROUPS;
        let qsbr = Arc::new(Qsbr::new(1));
        let cp = ControlPlane::new(cfg, qsbr).map_err(|e| format!("{}: {e}", host.name))?;
        // The model the control plane validates against (its local ports, the DVR MAC range).
        let model: Model = cp.model().clone();
        let sync = HostSync::new(&host.name, model, BTreeMap::new());
        let mut mc = MemberConfig::new(store.clone());
        mc.version = "fleet-bench".into();
        mc.lease_ttl = Duration::from_secs(30);
        mc.status_interval = status_interval;
        let log: AppliedLog = Arc::default();
        let apply = SimApply {
            cp,
            log: Arc::clone(&log),
            counters: Arc::clone(counters),
            since_reclaim: 0,
        };
        let member = Member::new(mc, sync, apply);
        let report = member.report();
        Ok(SimHost {
            name: host.name.clone(),
            member,
            report,
            log,
        })
    }
}

/// The report as it is now.
pub fn report_of(report: &SharedReport) -> MemberReport {
    report
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}
