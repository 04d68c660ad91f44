//! A worker's TX buffer for one port: packets wait here until a full burst or the end of the
//! poll loop, then go out in one `tx_burst` call.

use crate::port::router_port;
use arrayvec::ArrayVec;
use dpdk_bindings::{tsc, Mbuf, MbufBurst, TxQueue};
use hdrhistogram::Histogram;
use router_core::ids::PortId;
use router_core::reason::DropReason;

use crate::stats::WorkerStats;

/// Consecutive buffered packets received in the same RX burst: they share an RX timestamp, so
/// their residence times are recorded with one histogram update.
#[derive(Debug, Clone, Copy)]
struct Run {
    rx_tsc: u64,
    count: u64,
}

/// One TX queue and the packets waiting for it.
#[derive(Debug)]
pub(crate) struct TxPort<const N: usize> {
    port: PortId,
    queue: TxQueue,
    pending: MbufBurst<N>,
    /// Bytes of the packets in `pending`.
    pending_bytes: u64,
    /// The RX timestamps of the packets in `pending`, in order: one entry per run of packets
    /// from the same RX burst, so never more entries than packets.
    runs: ArrayVec<Run, N>,
}

impl<const N: usize> TxPort<N> {
    pub(crate) fn new(queue: TxQueue) -> TxPort<N> {
        TxPort {
            port: router_port(queue.port()),
            queue,
            pending: MbufBurst::new(),
            pending_bytes: 0,
            runs: ArrayVec::new(),
        }
    }

    /// Queues `mbuf`, received at `rx_tsc`; gives it back when the buffer is full.
    #[inline]
    pub(crate) fn push(&mut self, mbuf: Mbuf, rx_tsc: u64) -> Result<(), Mbuf> {
        let bytes = mbuf.len() as u64;
        self.pending.push(mbuf)?;
        self.pending_bytes += bytes;
        match self.runs.last_mut() {
            Some(run) if run.rx_tsc == rx_tsc => run.count += 1,
            // There are never more runs than packets, and the packet was just taken: room left.
            _ => {
                let _ = self.runs.try_push(Run { rx_tsc, count: 1 });
            }
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.pending.is_full()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Hands the buffered packets to the port in one `tx_burst` call. What the port did not
    /// take is freed and counted (`tx_full`): retrying would hold up the whole poll loop for
    /// one congested port. Records the residence time of every packet sent. Leaves the buffer
    /// empty.
    #[inline]
    pub(crate) fn flush(&mut self, stats: &WorkerStats, residence_cycles: &mut Histogram<u64>) {
        let queued = self.pending.len();
        if queued == 0 {
            return;
        }
        let sent = self.queue.tx_burst(&mut self.pending);
        let sent_tsc = tsc();
        let counters = stats.port(self.port);
        let mut sent_bytes = self.pending_bytes;
        let unsent = (queued - sent) as u64;
        if unsent != 0 {
            let unsent_bytes: u64 = self.pending.iter().map(|m| m.len() as u64).sum();
            sent_bytes -= unsent_bytes;
            self.pending.clear();
            counters.tx_drops.add(unsent);
            stats.engine.drops[DropReason::TxFull.index()].add(unsent);
        }
        counters.tx_packets.add(sent as u64);
        counters.tx_bytes.add(sent_bytes);

        // The port takes packets from the front: the first `sent` runs' packets went out.
        let mut left = sent as u64;
        for run in &self.runs {
            if left == 0 {
                break;
            }
            let count = run.count.min(left);
            residence_cycles.saturating_record_n(sent_tsc.saturating_sub(run.rx_tsc), count);
            left -= count;
        }
        self.runs.clear();
        self.pending_bytes = 0;
    }
}
