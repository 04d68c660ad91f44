//! The maximum forwarding rate (RFC 2889) of one trial: the generator offers more than the
//! device can forward for a long trial, counts what comes back every second, and the trial's
//! figure is the median of those per-second rates.
//!
//! On a machine whose virtual CPUs are taken away for milliseconds now and then, a stall costs
//! the second it falls in, not the trial: the median ignores a few bad seconds, and the
//! smallest and largest per-second rates show how many there were. Both generators (the
//! project's own and testpmd) report cumulative counters sampled about once a second;
//! everything here works on those samples.

use serde::{Deserialize, Serialize};

/// The median of `values` (`None` when empty); the mean of the two middle values for an even
/// count.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some(if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    })
}

/// One sample of a cumulative packet counter: seconds since the trial began, packets so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the first sample's reference point.
    pub at_s: f64,
    /// Packets counted so far.
    pub packets: u64,
}

/// The rate between every two consecutive samples, packets per second (the samples in time
/// order; a pair without elapsed time is skipped, a counter that went back counts as 0).
pub fn per_second_rates(samples: &[Sample]) -> Vec<f64> {
    samples
        .windows(2)
        .filter_map(|w| {
            let dt = w[1].at_s - w[0].at_s;
            (dt > 0.0).then(|| w[1].packets.saturating_sub(w[0].packets) as f64 / dt)
        })
        .collect()
}

/// A trial's per-second forwarding rates, summarised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateFigures {
    /// Median of the per-second rates: the trial's maximum forwarding rate, packets/s.
    pub median_pps: f64,
    /// Smallest per-second rate (a stall shows here).
    pub min_pps: f64,
    /// Largest per-second rate.
    pub max_pps: f64,
    /// Every per-second rate, in order.
    pub per_second_pps: Vec<f64>,
}

impl RateFigures {
    /// The figures of per-second rates (zeros when there are none).
    pub fn of(per_second_pps: Vec<f64>) -> RateFigures {
        let Some(median_pps) = median(&per_second_pps) else {
            return RateFigures::default();
        };
        let min_pps = per_second_pps.iter().copied().fold(f64::INFINITY, f64::min);
        let max_pps = per_second_pps.iter().copied().fold(0.0, f64::max);
        RateFigures {
            median_pps,
            min_pps,
            max_pps,
            per_second_pps,
        }
    }

    /// The figures of a cumulative counter's samples.
    pub fn of_samples(samples: &[Sample]) -> RateFigures {
        RateFigures::of(per_second_rates(samples))
    }

    /// `(max - min) / median` of the per-second rates: 0 for a steady trial.
    pub fn spread(&self) -> f64 {
        if self.median_pps > 0.0 {
            (self.max_pps - self.min_pps) / self.median_pps
        } else {
            0.0
        }
    }
}

/// `order` rotated left by `round` places: round 0 keeps it, each later round moves the first
/// device to the end, so that over as many rounds as devices every device takes every place.
pub fn rotated<T: Clone>(order: &[T], round: usize) -> Vec<T> {
    let mut v = order.to_vec();
    if !v.is_empty() {
        let shift = round % v.len();
        v.rotate_left(shift);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn per_second_rates_from_a_cumulative_counter() {
        let s = |at_s, packets| Sample { at_s, packets };
        // 10 Mpps, a second with a stall (2 M), then 10 Mpps again over 0.5 s.
        let samples = [
            s(0.0, 0),
            s(1.0, 10_000_000),
            s(2.0, 12_000_000),
            s(2.0, 12_000_000),
            s(2.5, 17_000_000),
        ];
        assert_eq!(per_second_rates(&samples), vec![10e6, 2e6, 10e6]);
        let f = RateFigures::of_samples(&samples);
        // The stall moves the minimum, not the median.
        assert_eq!((f.median_pps, f.min_pps, f.max_pps), (10e6, 2e6, 10e6));
        assert!((f.spread() - 0.8).abs() < 1e-12);
        assert_eq!(RateFigures::of(Vec::new()).median_pps, 0.0);
    }

    #[test]
    fn rotation_gives_every_device_every_place() {
        let order = ["a", "b", "c", "d"];
        assert_eq!(rotated(&order, 0), order);
        assert_eq!(rotated(&order, 1), ["b", "c", "d", "a"]);
        assert_eq!(rotated(&order, 5), ["b", "c", "d", "a"]);
        for place in 0..4 {
            let firsts: std::collections::HashSet<_> =
                (0..4).map(|r| rotated(&order, r)[place]).collect();
            assert_eq!(firsts.len(), 4);
        }
        assert!(rotated::<u8>(&[], 3).is_empty());
    }
}
