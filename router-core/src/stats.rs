//! Counters kept by one worker and read by the control thread.
//!
//! Each counter has exactly one writer (its worker), so an increment is a relaxed load and a
//! relaxed store, not a read-modify-write: on x86 that is two plain moves, no lock prefix. The
//! control thread sums the workers' counters when asked; a reset is done by keeping a baseline
//! on the reader side, never by writing into a worker's counters.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::ids::{FipId, RouterId};
use crate::model::{MAX_FLOATING_IPS, MAX_ROUTERS};
use crate::reason::{DropReason, PuntReason};

/// A counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one. Only the owning thread may call this.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`. Only the owning thread may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Reads the value (any thread).
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per-router counters.
#[derive(Debug, Default)]
pub struct RouterCounters {
    /// Packets routed to an instance on this host.
    pub routed_local: Counter,
    /// Packets routed to an instance on a peer host (sent over the fabric).
    pub routed_remote: Counter,
    /// Routed packets received from peers and delivered to local instances.
    pub delivered_from_fabric: Counter,
    /// ICMP errors sent.
    pub icmp_errors: Counter,
}

/// Per-floating-IP counters.
#[derive(Debug, Default)]
pub struct FipCounters {
    /// Packets from the outside to the floating IP, translated to the fixed IP (DNAT).
    pub dnat: Counter,
    /// Packets from the instance to the outside, translated to the floating IP (SNAT).
    pub snat: Counter,
}

/// What one worker's engine did, by path, reason and router.
#[derive(Debug)]
pub struct EngineCounters {
    pub drops: [Counter; DropReason::COUNT],
    pub punts: [Counter; PuntReason::COUNT],
    /// Bridged frames delivered to another local port.
    pub bridged_local: Counter,
    /// Bridged frames sent to a peer host.
    pub bridged_remote: Counter,
    /// Bridged frames received from a peer host.
    pub bridged_from_fabric: Counter,
    /// ICMP errors suppressed by the router-wide rate limit.
    pub icmp_rate_limited: Counter,
    /// Datagrams split into fragments (by the control thread: RFC 1812 section 5.2.6).
    pub fragmented_packets: Counter,
    /// The fragments those datagrams became.
    pub fragments_created: Counter,
    /// ICMP errors suppressed by the per-source rate limit.
    pub icmp_rate_limited_source: Counter,
    /// ARP replies and announcements that resolved or confirmed a neighbour (control thread).
    pub arp_learned: Counter,
    pub routers: Box<[RouterCounters]>,
    pub fips: Box<[FipCounters]>,
}

impl Default for EngineCounters {
    fn default() -> Self {
        EngineCounters {
            drops: std::array::from_fn(|_| Counter::default()),
            punts: std::array::from_fn(|_| Counter::default()),
            bridged_local: Counter::default(),
            bridged_remote: Counter::default(),
            bridged_from_fabric: Counter::default(),
            icmp_rate_limited: Counter::default(),
            fragmented_packets: Counter::default(),
            fragments_created: Counter::default(),
            icmp_rate_limited_source: Counter::default(),
            arp_learned: Counter::default(),
            routers: (0..MAX_ROUTERS)
                .map(|_| RouterCounters::default())
                .collect(),
            fips: (0..MAX_FLOATING_IPS)
                .map(|_| FipCounters::default())
                .collect(),
        }
    }
}

impl EngineCounters {
    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        self.drops[reason.index()].inc();
    }

    #[inline]
    pub fn count_punt(&self, reason: PuntReason) {
        self.punts[reason.index()].inc();
    }

    /// The counters of one router (a dummy set for an out-of-range id, so callers never panic).
    #[inline]
    pub fn router(&self, router: RouterId) -> &RouterCounters {
        let i = usize::from(router).min(self.routers.len() - 1);
        &self.routers[i]
    }

    /// The counters of one floating IP (a dummy set for an out-of-range id).
    #[inline]
    pub fn fip(&self, fip: FipId) -> &FipCounters {
        let i = usize::from(fip).min(self.fips.len() - 1);
        &self.fips[i]
    }
}

/// A plain copy of engine counters, summed over workers.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineTotals {
    pub drops: Vec<(String, u64)>,
    pub punts: Vec<(String, u64)>,
    pub bridged_local: u64,
    pub bridged_remote: u64,
    pub bridged_from_fabric: u64,
    pub icmp_rate_limited: u64,
    pub fragmented_packets: u64,
    pub fragments_created: u64,
    pub icmp_rate_limited_source: u64,
    pub arp_learned: u64,
}

impl EngineTotals {
    /// Sums the counters of several workers.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a EngineCounters>) -> Self {
        let mut drops = [0u64; DropReason::COUNT];
        let mut punts = [0u64; PuntReason::COUNT];
        let mut t = EngineTotals::default();
        for c in all {
            for (d, s) in drops.iter_mut().zip(&c.drops) {
                *d += s.get();
            }
            for (p, s) in punts.iter_mut().zip(&c.punts) {
                *p += s.get();
            }
            t.bridged_local += c.bridged_local.get();
            t.bridged_remote += c.bridged_remote.get();
            t.bridged_from_fabric += c.bridged_from_fabric.get();
            t.icmp_rate_limited += c.icmp_rate_limited.get();
            t.fragmented_packets += c.fragmented_packets.get();
            t.fragments_created += c.fragments_created.get();
            t.icmp_rate_limited_source += c.icmp_rate_limited_source.get();
            t.arp_learned += c.arp_learned.get();
        }
        t.drops = DropReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), drops[r.index()]))
            .collect();
        t.punts = PuntReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), punts[r.index()]))
            .collect();
        t
    }

    /// The total of one drop reason.
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).map_or(0, |(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_over_workers() {
        let a = EngineCounters::default();
        let b = EngineCounters::default();
        a.count_drop(DropReason::NoRoute);
        b.count_drop(DropReason::NoRoute);
        b.count_punt(PuntReason::Arp);
        a.router(RouterId::new(5)).routed_local.add(3);
        a.router(RouterId::MAX).icmp_errors.inc();
        let t = EngineTotals::sum([&a, &b]);
        assert_eq!(t.drop_count(DropReason::NoRoute), 2);
        assert_eq!(t.punts[PuntReason::Arp.index()], ("arp".to_string(), 1));
        assert_eq!(a.router(RouterId::new(5)).routed_local.get(), 3);
    }
}
