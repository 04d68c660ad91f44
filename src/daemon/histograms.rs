//! The workers' latency histograms as the control thread keeps them: taken from the workers on
//! request and accumulated here, since start (for the exit summary and the metrics endpoint)
//! and since the last reset (for the API). Taking moves each value out exactly once, so
//! nothing is counted twice or lost.

use std::sync::Arc;
use std::time::Instant;

use lcore_workers::{HistogramSnapshot, WorkerHistograms};

/// Every worker's histograms, since start and since the last reset.
pub(super) struct Histograms {
    shared: Vec<Arc<WorkerHistograms>>,
    lifetime: Vec<HistogramSnapshot>,
    since_reset: Vec<HistogramSnapshot>,
    reset_at: Instant,
    tsc_hz: u64,
}

impl Histograms {
    pub(super) fn new(shared: Vec<Arc<WorkerHistograms>>, tsc_hz: u64) -> Self {
        Histograms {
            lifetime: empty(shared.len(), tsc_hz),
            since_reset: empty(shared.len(), tsc_hz),
            shared,
            reset_at: Instant::now(),
            tsc_hz,
        }
    }

    /// Takes what the workers published since the last call.
    pub(super) fn collect(&mut self) {
        for ((shared, lifetime), since) in self
            .shared
            .iter()
            .zip(&mut self.lifetime)
            .zip(&mut self.since_reset)
        {
            let taken = shared.take();
            lifetime.add(&taken);
            since.add(&taken);
        }
    }

    pub(super) fn reset(&mut self) {
        self.collect();
        self.since_reset = empty(self.shared.len(), self.tsc_hz);
        self.reset_at = Instant::now();
    }

    pub(super) fn lifetime_merged(&self) -> HistogramSnapshot {
        self.merged(&self.lifetime)
    }

    pub(super) fn since_reset_merged(&self) -> HistogramSnapshot {
        self.merged(&self.since_reset)
    }

    /// Each worker's histograms since the last reset, in the workers' order.
    pub(super) fn since_reset(&self) -> &[HistogramSnapshot] {
        &self.since_reset
    }

    /// When the histograms were last reset (start before the first reset).
    pub(super) fn reset_at(&self) -> Instant {
        self.reset_at
    }

    pub(super) fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    fn merged(&self, snapshots: &[HistogramSnapshot]) -> HistogramSnapshot {
        HistogramSnapshot::merge(snapshots).unwrap_or_else(|| HistogramSnapshot::empty(self.tsc_hz))
    }
}

/// One empty snapshot per worker.
fn empty(workers: usize, tsc_hz: u64) -> Vec<HistogramSnapshot> {
    (0..workers)
        .map(|_| HistogramSnapshot::empty(tsc_hz))
        .collect()
}
