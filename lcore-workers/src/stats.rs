//! Per-worker statistics: written by the worker alone, read by the control thread at any time.

use std::sync::Arc;

use router_core::dataplane::MAX_PORTS;
use router_core::ids::PortId;
use router_core::reason::DropReason;
use router_core::stats::{Counter, EngineCounters, EngineTotals};

/// Counters of one port, as seen by one worker.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Packets received on the worker's RX queues of this port.
    pub rx_packets: Counter,
    /// Bytes of those packets (`pkt_len`, Ethernet header included, no FCS).
    pub rx_bytes: Counter,
    /// Packets the port's TX queue took.
    pub tx_packets: Counter,
    /// Bytes of those packets, as sent.
    pub tx_bytes: Counter,
    /// Packets forwarded to this port that the worker dropped: the TX queue did not take them
    /// (also counted as `tx_full` in the engine counters), or the worker has no TX queue for
    /// the port (also counted in [`WorkerStats::tx_no_queue`]).
    pub tx_drops: Counter,
}

/// What one worker did. Every counter has a single writer (the worker): an increment is a plain
/// load and store, never a locked instruction. The control thread reads them at any time.
///
/// Aligned to 128 bytes (two cache lines: x86 fetches lines in adjacent pairs) so that the
/// hot counters of two workers never share a line.
#[derive(Debug)]
#[repr(align(128))]
pub struct WorkerStats {
    /// The worker's index.
    pub index: usize,
    /// Poll loops run (one pass over all RX queues, then the TX flush).
    pub loops: Counter,
    /// RX polls that returned packets (bursts).
    pub bursts: Counter,
    /// RX polls that returned nothing.
    pub empty_polls: Counter,
    /// TSC cycles spent on traffic: for every burst, from just before the `rx_burst` call that
    /// returned it to the end of its dispatch, plus the end-of-loop TX flush of loops that had
    /// traffic. Divide by the packets received for busy cycles per packet. A thread preempted
    /// in the middle of a burst adds the whole preemption: on a shared machine prefer the
    /// percentiles of the per-burst histogram, which show such outliers as outliers.
    pub busy_cycles: Counter,
    /// Adaptive idle sleeps.
    pub idle_sleeps: Counter,
    /// Nanoseconds of sleep asked for by those sleeps (the OS adds its timer slack).
    pub idle_sleep_ns: Counter,
    /// Quiescent states reported to QSBR (one per poll loop).
    pub quiescent_reports: Counter,
    /// Times the worker merged its local histograms into the shared ones.
    pub histogram_publishes: Counter,
    /// Packets forwarded to a port the worker has no TX queue for (dropped).
    pub tx_no_queue: Counter,
    /// Per-port counters, indexed by port id.
    pub ports: [PortCounters; MAX_PORTS],
    /// The engine's counters of this worker: drops and punts by reason, bridging and routing
    /// totals. The worker adds its own drops (`multi_segment`, `tx_full`, `punt_queue_full`).
    pub engine: Arc<EngineCounters>,
}

impl WorkerStats {
    /// Zeroed statistics for worker `index`.
    pub fn new(index: usize) -> WorkerStats {
        WorkerStats {
            index,
            loops: Counter::default(),
            bursts: Counter::default(),
            empty_polls: Counter::default(),
            busy_cycles: Counter::default(),
            idle_sleeps: Counter::default(),
            idle_sleep_ns: Counter::default(),
            quiescent_reports: Counter::default(),
            histogram_publishes: Counter::default(),
            tx_no_queue: Counter::default(),
            ports: std::array::from_fn(|_| PortCounters::default()),
            engine: Arc::new(EngineCounters::default()),
        }
    }

    /// The counters of `port` (a dummy set for an out-of-range id, so callers never panic).
    #[inline]
    pub fn port(&self, port: PortId) -> &PortCounters {
        let i = usize::from(port).min(MAX_PORTS - 1);
        &self.ports[i]
    }

    /// A plain copy of every counter, for reports.
    pub fn snapshot(&self) -> WorkerStatsSnapshot {
        let ports = self
            .ports
            .iter()
            .enumerate()
            .filter_map(|(id, c)| {
                let port = PortSnapshot {
                    port: PortId::new(u16::try_from(id).ok()?),
                    rx_packets: c.rx_packets.get(),
                    rx_bytes: c.rx_bytes.get(),
                    tx_packets: c.tx_packets.get(),
                    tx_bytes: c.tx_bytes.get(),
                    tx_drops: c.tx_drops.get(),
                };
                (!port.is_zero()).then_some(port)
            })
            .collect();
        WorkerStatsSnapshot {
            index: self.index,
            loops: self.loops.get(),
            bursts: self.bursts.get(),
            empty_polls: self.empty_polls.get(),
            busy_cycles: self.busy_cycles.get(),
            idle_sleeps: self.idle_sleeps.get(),
            idle_sleep_ns: self.idle_sleep_ns.get(),
            quiescent_reports: self.quiescent_reports.get(),
            histogram_publishes: self.histogram_publishes.get(),
            tx_no_queue: self.tx_no_queue.get(),
            ports,
            engine: EngineTotals::sum([&*self.engine]),
        }
    }

    /// How many packets were dropped for `reason` (engine and worker drops).
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.engine.drops[reason.index()].get()
    }
}

/// One port's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortSnapshot {
    pub port: PortId,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_drops: u64,
}

impl PortSnapshot {
    fn is_zero(&self) -> bool {
        self.rx_packets == 0 && self.tx_packets == 0 && self.tx_drops == 0
    }
}

/// A worker's counters at one moment ([`WorkerStats::snapshot`]). Ports with no traffic are
/// left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStatsSnapshot {
    pub index: usize,
    pub loops: u64,
    pub bursts: u64,
    pub empty_polls: u64,
    pub busy_cycles: u64,
    pub idle_sleeps: u64,
    pub idle_sleep_ns: u64,
    pub quiescent_reports: u64,
    pub histogram_publishes: u64,
    pub tx_no_queue: u64,
    pub ports: Vec<PortSnapshot>,
    pub engine: EngineTotals,
}

impl WorkerStatsSnapshot {
    /// Packets received on all ports.
    pub fn rx_packets(&self) -> u64 {
        self.ports.iter().map(|p| p.rx_packets).sum()
    }

    /// Packets sent on all ports.
    pub fn tx_packets(&self) -> u64 {
        self.ports.iter().map(|p| p.tx_packets).sum()
    }

    /// Busy cycles per received packet; `None` before the first packet.
    pub fn busy_cycles_per_packet(&self) -> Option<f64> {
        let packets = self.rx_packets();
        // Counts stay far below 2^53: the conversion to f64 is exact in practice.
        (packets != 0).then(|| self.busy_cycles as f64 / packets as f64)
    }

    /// The counters of `port`, zero when it had no traffic.
    pub fn port(&self, port: PortId) -> PortSnapshot {
        self.ports
            .iter()
            .find(|p| p.port == port)
            .copied()
            .unwrap_or(PortSnapshot {
                port,
                ..PortSnapshot::default()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<WorkerStats>(), 128);
        assert_eq!(std::mem::size_of::<WorkerStats>() % 128, 0);
    }

    #[test]
    fn snapshot_copies_counters() {
        let stats = WorkerStats::new(3);
        stats.loops.add(10);
        stats.bursts.add(4);
        stats.busy_cycles.add(1000);
        stats.port(PortId::new(1)).rx_packets.add(8);
        stats.port(PortId::new(1)).rx_bytes.add(512);
        stats.port(PortId::new(2)).tx_packets.add(6);
        stats.port(PortId::new(2)).tx_drops.add(2);
        stats.port(PortId::MAX).rx_packets.inc(); // the dummy last slot, never a panic
        stats.engine.count_drop(DropReason::TxFull);
        let snap = stats.snapshot();
        assert_eq!(snap.index, 3);
        assert_eq!((snap.loops, snap.bursts), (10, 4));
        assert_eq!(snap.rx_packets(), 9);
        assert_eq!(snap.tx_packets(), 6);
        assert_eq!(snap.port(PortId::new(1)).rx_bytes, 512);
        assert_eq!(snap.port(PortId::new(2)).tx_drops, 2);
        assert_eq!(
            snap.port(PortId::new(5)),
            PortSnapshot {
                port: PortId::new(5),
                ..PortSnapshot::default()
            }
        );
        assert_eq!(snap.ports.len(), 3);
        assert_eq!(snap.engine.drop_count(DropReason::TxFull), 1);
        assert_eq!(stats.drops(DropReason::TxFull), 1);
        let per_packet = snap.busy_cycles_per_packet().unwrap();
        assert!((per_packet - 1000.0 / 9.0).abs() < 1e-9);
        assert_eq!(
            WorkerStatsSnapshot::default().busy_cycles_per_packet(),
            None
        );
    }
}
