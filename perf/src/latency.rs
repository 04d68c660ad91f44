//! Per-packet latency in an HDR histogram, and its summary.
//!
//! Values are recorded in TSC cycles (no conversion per packet) and converted to nanoseconds
//! for reports. Every packet is stamped with the TSC of its *scheduled* send time, so the
//! generator's own delays (a preempted thread, a TX queue that refused a burst) count as
//! latency and nothing is left out: the open-loop schedule is the correction for coordinated
//! omission. [`LatencySummary::record_corrected`] also gives HdrHistogram's correction
//! (`record_correct` at the offered rate's interval) for comparison; it assumes closed-loop
//! samples and therefore adds values that an open-loop stream has already measured (see
//! BENCHMARKS.md).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Significant decimal digits kept (0.1% resolution).
pub const SIGNIFICANT_DIGITS: u8 = 3;
/// Most bucket updates [`LatencyRecorder::summary_record_corrected`] does.
pub const CORRECTION_RECORDS_MAX: u64 = 20_000_000;
/// Longest latency recorded, in seconds; longer ones are recorded as this.
pub const LATENCY_MAX_S: u64 = 10;

/// Latency of one trial.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    cycles: Histogram<u64>,
    tsc_hz: u64,
}

impl LatencyRecorder {
    /// An empty recorder for a TSC running at `tsc_hz`. Allocates: setup only.
    pub fn new(tsc_hz: u64) -> LatencyRecorder {
        let high = (tsc_hz.max(1) * LATENCY_MAX_S).max(2);
        let cycles = Histogram::new_with_bounds(1, high, SIGNIFICANT_DIGITS)
            .expect("bounds 1..high with 3 digits are valid");
        LatencyRecorder { cycles, tsc_hz }
    }

    /// Records one packet sent (scheduled) at `sent_tsc` and received at `now_tsc`.
    #[inline(always)]
    pub fn record(&mut self, sent_tsc: u64, now_tsc: u64) {
        self.cycles
            .saturating_record(now_tsc.saturating_sub(sent_tsc).max(1));
    }

    /// Forgets all values.
    pub fn reset(&mut self) {
        self.cycles.reset();
    }

    /// Values recorded.
    pub fn len(&self) -> u64 {
        self.cycles.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.cycles.is_empty()
    }

    /// The summary in nanoseconds.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary::of(&self.cycles, self.tsc_hz)
    }

    /// The summary after HdrHistogram's coordinated-omission correction for samples expected
    /// every `interval_ns` (the offered rate's packet interval): the same as having recorded
    /// every value with `record_correct`. The correction adds `value / interval` values per
    /// recorded value, per histogram bucket; `None` when that would be more than
    /// [`CORRECTION_RECORDS_MAX`] operations (latencies of seconds at millions of packets per
    /// second).
    pub fn summary_record_corrected(&self, interval_ns: f64) -> Option<LatencySummary> {
        let interval = (interval_ns * self.tsc_hz as f64 / 1e9).round().max(1.0) as u64;
        let work: u64 = self
            .cycles
            .iter_recorded()
            .map(|v| v.value_iterated_to() / interval)
            .sum();
        (work <= CORRECTION_RECORDS_MAX)
            .then(|| LatencySummary::of(&self.cycles.clone_correct(interval), self.tsc_hz))
    }
}

/// Percentiles of a latency distribution, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Values.
    pub count: u64,
    /// Smallest.
    pub min_ns: f64,
    /// Mean.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// 99.9th percentile.
    pub p999_ns: f64,
    /// Largest.
    pub max_ns: f64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>, tsc_hz: u64) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ns = |cycles: u64| cycles as f64 * 1e9 / tsc_hz as f64;
        LatencySummary {
            count: h.len(),
            min_ns: ns(h.min()),
            mean_ns: h.mean() * 1e9 / tsc_hz as f64,
            p50_ns: ns(h.value_at_quantile(0.5)),
            p90_ns: ns(h.value_at_quantile(0.9)),
            p99_ns: ns(h.value_at_quantile(0.99)),
            p999_ns: ns(h.value_at_quantile(0.999)),
            max_ns: ns(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_nanoseconds() {
        let mut r = LatencyRecorder::new(2_000_000_000);
        for i in 1..=1000u64 {
            r.record(0, i * 2000); // i microseconds
        }
        let s = r.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_ns - 500_000.0).abs() / 500_000.0 < 0.002, "{s:?}");
        assert!((s.p99_ns - 990_000.0).abs() / 990_000.0 < 0.002, "{s:?}");
        assert!(
            (s.max_ns - 1_000_000.0).abs() / 1_000_000.0 < 0.002,
            "{s:?}"
        );
        r.reset();
        assert!(r.is_empty());
        assert_eq!(r.summary(), LatencySummary::default());
    }

    #[test]
    fn clock_going_backwards_or_huge_values_do_not_fail() {
        let mut r = LatencyRecorder::new(1_000_000_000);
        r.record(10, 5);
        r.record(0, u64::MAX);
        assert_eq!(r.len(), 2);
    }

    /// A constant 5 us latency at one packet every 200 ns: the closed-loop correction adds 24
    /// values per packet, from 200 ns to 4.8 us, and the median drops to about half.
    #[test]
    fn record_correct_adds_values_below_the_measured_ones() {
        let mut r = LatencyRecorder::new(1_000_000_000);
        for _ in 0..100 {
            r.record(0, 5000);
        }
        let plain = r.summary();
        let corrected = r.summary_record_corrected(200.0).unwrap();
        assert!((plain.p50_ns - 5000.0).abs() < 10.0);
        assert_eq!(corrected.count, 2500);
        assert!(corrected.p50_ns < 2700.0, "{corrected:?}");
        r.record(0, 1_000_000_000);
        assert!(r.summary_record_corrected(1.0).is_none(), "too much work");
    }
}
