//! Latency histograms (HDR), in TSC cycles, recorded by a worker and read by the control thread.
//!
//! Each worker records into its own local histograms, which nothing else touches. About every
//! [`HISTOGRAM_PUBLISH_INTERVAL_MS`] it merges them into the shared ones with `try_lock`: if a
//! reader holds a lock, the worker skips and retries on its next poll loop, so it never waits
//! for the control thread. Readers lock, copy ([`WorkerHistograms::snapshot`]) and may reset.
//! What a worker recorded since its last merge is not visible yet; a worker that exits merges
//! everything.

use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use hdrhistogram::Histogram;

use crate::clock::TscClock;

/// Largest value the histograms hold, in cycles (about 6.6 s at 2.6 GHz); larger values are
/// recorded as this one.
pub const HISTOGRAM_MAX_CYCLES: u64 = 1 << 34;
/// Significant decimal digits kept: values are exact to within 0.1%.
pub const HISTOGRAM_SIGFIG: u8 = 3;
/// How often a worker merges its local histograms into the shared ones.
pub const HISTOGRAM_PUBLISH_INTERVAL_MS: u64 = 100;

/// An empty histogram with the workers' bounds. Allocates (about 200 KiB): startup only.
pub fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, HISTOGRAM_MAX_CYCLES, HISTOGRAM_SIGFIG) {
        Ok(histogram) => histogram,
        // The bounds are constants checked by the tests below.
        Err(err) => panic!("histogram bounds: {err:?}"),
    }
}

/// The histograms a worker shares with the control thread.
#[derive(Debug)]
pub struct WorkerHistograms {
    /// Per-burst processing time: from just before the `rx_burst` call that returned the burst
    /// to the end of its dispatch (engine, TX buffering, drops, punts), one value per burst.
    burst_cycles: Mutex<Histogram<u64>>,
    /// Per-packet residence time: from just before the `rx_burst` call that received the packet
    /// to the return of the `tx_burst` call that sent it, one value per forwarded packet.
    residence_cycles: Mutex<Histogram<u64>>,
    tsc_hz: u64,
}

impl WorkerHistograms {
    /// Empty histograms for a worker whose TSC runs at `tsc_hz`.
    pub fn new(tsc_hz: u64) -> WorkerHistograms {
        WorkerHistograms {
            burst_cycles: Mutex::new(new_histogram()),
            residence_cycles: Mutex::new(new_histogram()),
            tsc_hz,
        }
    }

    /// A copy of what the worker published so far (or since the last reset).
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            burst_cycles: lock(&self.burst_cycles).clone(),
            residence_cycles: lock(&self.residence_cycles).clone(),
            tsc_hz: self.tsc_hz,
        }
    }

    /// A copy of what the worker published, and a reset: each value is in exactly one
    /// `take`, so successive takes give interval histograms.
    pub fn take(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            burst_cycles: take(&self.burst_cycles),
            residence_cycles: take(&self.residence_cycles),
            tsc_hz: self.tsc_hz,
        }
    }

    /// Forgets everything published so far.
    pub fn reset(&self) {
        lock(&self.burst_cycles).reset();
        lock(&self.residence_cycles).reset();
    }

    /// Merges the worker's local histograms into the shared ones and resets them, unless a
    /// reader holds a lock: then that one is left for the next try. True when both are merged.
    pub(crate) fn try_publish(&self, local: &mut LocalHistograms) -> bool {
        let burst = try_merge(&self.burst_cycles, &mut local.burst_cycles);
        let residence = try_merge(&self.residence_cycles, &mut local.residence_cycles);
        burst && residence
    }

    /// Merges the local histograms, waiting for the locks: for a worker that exits.
    pub(crate) fn publish(&self, local: &mut LocalHistograms) {
        merge(&mut lock(&self.burst_cycles), &mut local.burst_cycles);
        merge(
            &mut lock(&self.residence_cycles),
            &mut local.residence_cycles,
        );
    }
}

/// What a worker records between two merges. Owned by the worker thread alone.
#[derive(Debug)]
pub(crate) struct LocalHistograms {
    pub(crate) burst_cycles: Histogram<u64>,
    pub(crate) residence_cycles: Histogram<u64>,
}

impl LocalHistograms {
    pub(crate) fn new() -> LocalHistograms {
        LocalHistograms {
            burst_cycles: new_histogram(),
            residence_cycles: new_histogram(),
        }
    }
}

/// A histogram's data is plain counts: one that a panicking reader left locked is still valid.
fn lock(shared: &Mutex<Histogram<u64>>) -> MutexGuard<'_, Histogram<u64>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn take(shared: &Mutex<Histogram<u64>>) -> Histogram<u64> {
    let mut guard = lock(shared);
    let copy = guard.clone();
    guard.reset();
    copy
}

fn try_merge(shared: &Mutex<Histogram<u64>>, local: &mut Histogram<u64>) -> bool {
    if local.is_empty() {
        return true;
    }
    let mut guard = match shared.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return false,
    };
    merge(&mut guard, local);
    true
}

/// Adds `local` into `shared` (same bounds: no allocation) and empties it.
fn merge(shared: &mut Histogram<u64>, local: &mut Histogram<u64>) {
    if local.is_empty() {
        return;
    }
    // Both were made by new_histogram: the bounds match, so the addition cannot fail.
    let _ = shared.add(&*local);
    local.reset();
}

/// A copy of a worker's histograms ([`WorkerHistograms::snapshot`]), or the merge of several.
#[derive(Debug, Clone)]
pub struct HistogramSnapshot {
    /// Per-burst processing time in cycles (see [`WorkerHistograms`]).
    pub burst_cycles: Histogram<u64>,
    /// Per-packet residence time RX to TX in cycles.
    pub residence_cycles: Histogram<u64>,
    /// TSC ticks per second, to convert the values.
    pub tsc_hz: u64,
}

impl HistogramSnapshot {
    /// Empty histograms.
    pub fn empty(tsc_hz: u64) -> HistogramSnapshot {
        HistogramSnapshot {
            burst_cycles: new_histogram(),
            residence_cycles: new_histogram(),
            tsc_hz,
        }
    }

    /// Adds the values of `other`.
    pub fn add(&mut self, other: &HistogramSnapshot) {
        // Same bounds everywhere (new_histogram): the additions cannot fail.
        let _ = self.burst_cycles.add(&other.burst_cycles);
        let _ = self.residence_cycles.add(&other.residence_cycles);
    }

    /// The merge of several workers' snapshots (all workers of a process share one TSC);
    /// `None` for no snapshot.
    pub fn merge<'a>(
        snapshots: impl IntoIterator<Item = &'a HistogramSnapshot>,
    ) -> Option<HistogramSnapshot> {
        let mut snapshots = snapshots.into_iter();
        let mut total = snapshots.next()?.clone();
        for snapshot in snapshots {
            total.add(snapshot);
        }
        Some(total)
    }

    /// The usual percentiles of the per-burst processing time, in cycles.
    pub fn burst(&self) -> Percentiles {
        Percentiles::of(&self.burst_cycles)
    }

    /// The usual percentiles of the per-packet residence time, in cycles.
    pub fn residence(&self) -> Percentiles {
        Percentiles::of(&self.residence_cycles)
    }

    /// The clock to convert cycles to nanoseconds; `None` when `tsc_hz` is 0.
    pub fn clock(&self) -> Option<TscClock> {
        TscClock::new(self.tsc_hz)
    }
}

/// The usual percentiles of a histogram, in its unit (cycles here).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `histogram`; all zero when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: histogram.len(),
            min: histogram.min(),
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }

    /// The same percentiles converted with `clock` (cycles to nanoseconds).
    pub fn to_ns(&self, clock: &TscClock) -> Percentiles {
        Percentiles {
            count: self.count,
            min: clock.ns(self.min),
            mean: self.mean * 1e9 / clock.hz() as f64,
            p50: clock.ns(self.p50),
            p90: clock.ns(self.p90),
            p99: clock.ns(self.p99),
            p999: clock.ns(self.p999),
            max: clock.ns(self.max),
        }
    }
}

/// One step of a percentile distribution ([`quantiles`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantilePoint {
    /// The fraction of values at or below `value` (0 to 1).
    pub quantile: f64,
    /// The value (highest equivalent value of its bucket).
    pub value: u64,
    /// Values recorded since the previous point.
    pub count: u64,
}

/// The full percentile distribution, in the classic HDR layout: `ticks_per_half_distance`
/// points between the median and 100%, then as many again in each halving of the remaining
/// distance (1 to 10 is the usual range; 5 gives the familiar percentile-distribution table).
pub fn quantiles(histogram: &Histogram<u64>, ticks_per_half_distance: u32) -> Vec<QuantilePoint> {
    histogram
        .iter_quantiles(ticks_per_half_distance.max(1))
        .map(|step| QuantilePoint {
            quantile: step.quantile_iterated_to(),
            value: step.value_iterated_to(),
            count: step.count_since_last_iteration(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_valid_and_small() {
        let h = new_histogram();
        assert!(h.high() >= HISTOGRAM_MAX_CYCLES);
        // What a merge and a reset walk through: a few tens of thousands of counts.
        assert!(h.distinct_values() < 32 * 1024, "{}", h.distinct_values());
    }

    #[test]
    fn publish_merges_and_resets_local() {
        let shared = WorkerHistograms::new(1_000_000_000);
        let mut local = LocalHistograms::new();
        local.burst_cycles.saturating_record(100);
        local.residence_cycles.saturating_record_n(500, 3);
        local.residence_cycles.saturating_record(u64::MAX);
        assert!(shared.try_publish(&mut local));
        assert!(local.burst_cycles.is_empty() && local.residence_cycles.is_empty());
        let snap = shared.snapshot();
        assert_eq!(snap.burst().count, 1);
        assert_eq!(snap.residence().count, 4);
        assert!(snap.residence().max >= HISTOGRAM_MAX_CYCLES, "saturated");

        // A reader holding a lock makes the worker skip, not wait.
        local.burst_cycles.saturating_record(200);
        {
            let _held = shared.burst_cycles.lock().unwrap();
            assert!(!shared.try_publish(&mut local));
        }
        assert_eq!(local.burst_cycles.len(), 1, "kept for the next try");
        assert!(shared.try_publish(&mut local));
        assert_eq!(shared.snapshot().burst().count, 2);

        let taken = shared.take();
        assert_eq!(taken.burst().count, 2);
        assert_eq!(shared.snapshot().burst().count, 0);
        local.burst_cycles.saturating_record(7);
        shared.publish(&mut local);
        assert_eq!(shared.snapshot().burst().count, 1);
        shared.reset();
        assert_eq!(shared.snapshot().burst(), Percentiles::default());
    }

    #[test]
    fn percentiles_and_merge() {
        let mut a = HistogramSnapshot::empty(2_000_000_000);
        for v in 1..=1000u64 {
            a.burst_cycles.saturating_record(v);
        }
        let mut b = HistogramSnapshot::empty(2_000_000_000);
        b.burst_cycles.saturating_record_n(5000, 10);
        b.residence_cycles.saturating_record(42);
        let all = HistogramSnapshot::merge([&a, &b]).unwrap();
        let p = all.burst();
        assert_eq!(p.count, 1010);
        assert_eq!(p.min, 1);
        assert!(p.p50 >= 500 && p.p50 <= 510, "{p:?}");
        assert!(p.p90 <= p.p99 && p.p99 <= p.p999 && p.p999 <= p.max);
        assert!(p.max >= 5000 && p.max <= 5005, "{p:?}");
        assert_eq!(all.residence().count, 1);
        assert!(HistogramSnapshot::merge([]).is_none());

        let ns = p.to_ns(&all.clock().unwrap());
        assert_eq!(ns.min, 0); // one cycle at 2 GHz
        assert_eq!(ns.p50, p.p50 / 2);
        assert!((ns.mean - p.mean / 2.0).abs() < 1e-9);

        let dist = quantiles(&all.burst_cycles, 5);
        assert!(dist.len() > 10);
        assert!(dist
            .windows(2)
            .all(|w| w[0].value <= w[1].value && w[0].quantile <= w[1].quantile));
        assert_eq!(dist.iter().map(|q| q.count).sum::<u64>(), 1010);
        assert_eq!(dist.last().unwrap().quantile, 1.0);
    }
}
