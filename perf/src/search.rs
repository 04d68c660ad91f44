//! The throughput search (RFC 2544 section 26.1, binary search over the offered rate) for the
//! no-drop rate (NDR: no loss at all) and the partial-drop rate (PDR: loss at most a ratio,
//! 0.5% by default), both from one sequence of trials.
//!
//! Every trial result is kept, and the bracket of a goal is recomputed from all of them: the
//! lowest rate that failed the goal, and the highest rate below it that passed. A noisy pass
//! above a failure is therefore ignored (the result stays conservative). The next rate is the
//! middle of the PDR bracket until it is narrower than the resolution, then of the NDR bracket.
//! After the first failure the forwarding rate measured in it (what the device delivered under
//! overload) is tried first, which usually lands close to the PDR; from there the search steps
//! away from the last result by a few resolutions, doubling the step while the results keep
//! coming out the same way, and bisects once the bracket is narrow. A device whose rate is far
//! below the first trial's therefore costs a few trials, not one per halving.

use serde::{Deserialize, Serialize};

/// A bracket wider than this many resolutions is narrowed by steps from its last result
/// (half this many resolutions, doubling), a narrower one by bisection.
const STEP_WIDTHS: f64 = 8.0;

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// Lowest rate tried, packets per second (below it the result is 0).
    pub rate_min_pps: f64,
    /// Highest rate tried, packets per second (the first trial).
    pub rate_max_pps: f64,
    /// Stop when the bracket is narrower than this fraction of its upper end.
    pub resolution: f64,
    /// Largest loss ratio that passes the PDR.
    pub pdr_loss_ratio: f64,
    /// Most trials of one search.
    pub trials_max: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            rate_min_pps: 10_000.0,
            rate_max_pps: 40_000_000.0,
            resolution: 0.02,
            pdr_loss_ratio: 0.005,
            trials_max: 24,
        }
    }
}

/// What a trial showed, as the search sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Offered rate, packets per second.
    pub rate_pps: f64,
    /// Lost packets / offered packets.
    pub loss_ratio: f64,
    /// Test packets received per second of the trial (the forwarding rate).
    pub rx_pps: f64,
    /// The generator could not keep the schedule at this rate: the trial fails both goals,
    /// and the result is a bound of the generator, not of the device.
    pub generator_limited: bool,
}

/// Which result a bracket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Goal {
    /// No-drop rate.
    Ndr,
    /// Partial-drop rate.
    Pdr,
}

/// The rates that bound a result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bracket {
    /// Highest rate below `fail` that passed (0 when none did).
    pub pass_pps: f64,
    /// Lowest rate that failed; `None` when none did.
    pub fail_pps: Option<f64>,
    /// The failure bounding it was the generator's, not the device's.
    pub generator_limited: bool,
}

/// A search in progress.
#[derive(Debug, Clone)]
pub struct Search {
    config: SearchConfig,
    outcomes: Vec<Outcome>,
    /// Whether the forwarding-rate hint was tried, by goal.
    hint_used: [bool; 2],
}

impl Search {
    /// A new search.
    pub fn new(config: SearchConfig) -> Search {
        assert!(
            config.rate_min_pps > 0.0 && config.rate_min_pps <= config.rate_max_pps,
            "0 < rate_min <= rate_max"
        );
        assert!(config.resolution > 0.0 && config.resolution < 1.0);
        Search {
            config,
            outcomes: Vec::new(),
            hint_used: [false; 2],
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SearchConfig {
        &self.config
    }

    /// Every outcome so far, in order.
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    fn passes(&self, goal: Goal, o: &Outcome) -> bool {
        !o.generator_limited
            && match goal {
                Goal::Ndr => o.loss_ratio == 0.0,
                Goal::Pdr => o.loss_ratio <= self.config.pdr_loss_ratio,
            }
    }

    /// The current bracket of `goal`.
    pub fn bracket(&self, goal: Goal) -> Bracket {
        let fail = self
            .outcomes
            .iter()
            .filter(|o| !self.passes(goal, o))
            .min_by(|a, b| a.rate_pps.total_cmp(&b.rate_pps));
        let fail_pps = fail.map(|o| o.rate_pps);
        let pass_pps = self
            .outcomes
            .iter()
            .filter(|o| self.passes(goal, o) && fail_pps.is_none_or(|f| o.rate_pps < f))
            .map(|o| o.rate_pps)
            .fold(0.0, f64::max);
        Bracket {
            pass_pps,
            fail_pps,
            generator_limited: fail.is_some_and(|o| o.generator_limited),
        }
    }

    /// Whether `goal`'s bracket is narrow enough.
    pub fn converged(&self, goal: Goal) -> bool {
        let b = self.bracket(goal);
        match b.fail_pps {
            None => b.pass_pps >= self.config.rate_max_pps,
            Some(fail) => {
                fail <= self.config.rate_min_pps
                    || fail - b.pass_pps <= self.config.resolution * fail
            }
        }
    }

    /// Whether the search is over.
    pub fn done(&self) -> bool {
        self.outcomes.len() >= self.config.trials_max
            || (self.converged(Goal::Pdr) && self.converged(Goal::Ndr))
    }

    /// The rate of the next trial, or `None` when the search is over.
    pub fn next_rate(&mut self) -> Option<f64> {
        if self.outcomes.is_empty() {
            return Some(self.config.rate_max_pps);
        }
        if self.done() {
            return None;
        }
        let goal = if self.converged(Goal::Pdr) {
            Goal::Ndr
        } else {
            Goal::Pdr
        };
        let b = self.bracket(goal);
        let fail = b.fail_pps.unwrap_or(self.config.rate_max_pps);
        let res = self.config.resolution;
        let hint_slot = &mut self.hint_used[goal as usize];
        if !*hint_slot {
            *hint_slot = true;
            // What the device forwarded in the lowest failing trial, a little under it.
            let hint = self
                .outcomes
                .iter()
                .filter(|o| o.rate_pps == fail)
                .map(|o| o.rx_pps * 0.99)
                .next();
            let inside = |h: f64| h > b.pass_pps * (1.0 + res) && h < fail * (1.0 - res);
            if let Some(h) = hint.filter(|&h| inside(h)) {
                return Some(h.max(self.config.rate_min_pps));
            }
        }
        let mid = (b.pass_pps + fail) / 2.0;
        let candidate = if fail - b.pass_pps <= STEP_WIDTHS * res * fail {
            mid
        } else {
            // A wide bracket: step from the side of the last result, doubling the step while
            // the results keep coming out the same way (an exponential search), bisecting
            // once that is faster.
            let (last_passed, streak) = self.streak(goal);
            let step = (STEP_WIDTHS / 2.0 * res * f64::from(1u32 << streak.min(16))).min(0.5);
            if last_passed && b.pass_pps > 0.0 {
                (b.pass_pps * (1.0 + step)).min(mid)
            } else {
                (fail * (1.0 - step)).max(mid)
            }
        };
        Some(candidate.max(self.config.rate_min_pps))
    }

    /// Whether the last outcome passed `goal`, and how many before it came out the same way.
    fn streak(&self, goal: Goal) -> (bool, u32) {
        let mut results = self.outcomes.iter().rev().map(|o| self.passes(goal, o));
        let Some(last) = results.next() else {
            return (false, 0);
        };
        let same = results.take_while(|&r| r == last).count();
        (last, u32::try_from(same).unwrap_or(u32::MAX))
    }

    /// Adds a trial's outcome.
    pub fn record(&mut self, outcome: Outcome) {
        self.outcomes.push(outcome);
    }

    /// The results so far.
    pub fn result(&self) -> SearchResult {
        let ndr = self.bracket(Goal::Ndr);
        let pdr = self.bracket(Goal::Pdr);
        SearchResult {
            ndr_pps: ndr.pass_pps,
            pdr_pps: pdr.pass_pps,
            ndr,
            pdr,
            trials: self.outcomes.len(),
            converged: self.converged(Goal::Ndr) && self.converged(Goal::Pdr),
        }
    }
}

/// The outcome of a search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// No-drop rate, packets per second.
    pub ndr_pps: f64,
    /// Partial-drop rate, packets per second.
    pub pdr_pps: f64,
    /// The NDR's bracket.
    pub ndr: Bracket,
    /// The PDR's bracket.
    pub pdr: Bracket,
    /// Trials run.
    pub trials: usize,
    /// Both brackets reached the resolution (otherwise the trial limit stopped the search).
    pub converged: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that drops nothing up to `ndr`, a little up to `pdr`, and forwards at most
    /// `cap` beyond.
    fn device(rate: f64, ndr: f64, pdr: f64, cap: f64) -> Outcome {
        let loss = if rate <= ndr {
            0.0
        } else if rate <= pdr {
            0.001
        } else {
            (1.0 - cap / rate).max(0.01)
        };
        Outcome {
            rate_pps: rate,
            loss_ratio: loss,
            rx_pps: rate * (1.0 - loss),
            generator_limited: false,
        }
    }

    fn run(config: SearchConfig, ndr: f64, pdr: f64, cap: f64) -> SearchResult {
        let mut s = Search::new(config);
        while let Some(rate) = s.next_rate() {
            s.record(device(rate, ndr, pdr, cap));
        }
        s.result()
    }

    #[test]
    fn finds_ndr_and_pdr_within_the_resolution() {
        let config = SearchConfig::default();
        let r = run(config, 7e6, 9e6, 9.2e6);
        assert!(r.converged, "{r:?}");
        assert!(r.pdr_pps <= 9e6 && r.pdr_pps >= 9e6 * 0.98, "{r:?}");
        assert!(r.ndr_pps <= 7e6 && r.ndr_pps >= 7e6 * 0.98, "{r:?}");
        assert!(r.trials <= 16, "{r:?}");
    }

    #[test]
    fn few_trials_whatever_the_device() {
        let config = SearchConfig::default();
        for (ndr, pdr) in [
            (1e6, 9e6),
            (2e6, 2.1e6),
            (30e6, 31e6),
            (0.2e6, 0.25e6),
            (5e6, 20e6),
        ] {
            let r = run(config, ndr, pdr, pdr);
            assert!(r.converged, "{ndr} {pdr}: {r:?}");
            assert!(r.pdr_pps <= pdr && r.pdr_pps >= pdr * 0.98, "{r:?}");
            assert!(r.ndr_pps <= ndr && r.ndr_pps >= ndr * 0.98, "{r:?}");
            assert!(r.trials <= 16, "{ndr} {pdr}: {} trials", r.trials);
        }
    }

    #[test]
    fn everything_passes_at_the_maximum() {
        let config = SearchConfig {
            rate_max_pps: 1e6,
            ..SearchConfig::default()
        };
        let r = run(config, 2e6, 3e6, 3e6);
        assert_eq!((r.ndr_pps, r.pdr_pps, r.trials), (1e6, 1e6, 1));
    }

    #[test]
    fn nothing_passes_gives_zero() {
        let r = run(SearchConfig::default(), 0.0, 0.0, 0.0);
        assert_eq!((r.ndr_pps, r.pdr_pps), (0.0, 0.0));
        assert!(r.converged);
    }

    #[test]
    fn a_noisy_pass_above_a_failure_is_ignored() {
        let mut s = Search::new(SearchConfig::default());
        let o = |rate, loss| Outcome {
            rate_pps: rate,
            loss_ratio: loss,
            rx_pps: rate,
            generator_limited: false,
        };
        s.record(o(10e6, 0.5));
        s.record(o(5e6, 0.01));
        s.record(o(7e6, 0.0));
        let b = s.bracket(Goal::Pdr);
        assert_eq!((b.pass_pps, b.fail_pps), (0.0, Some(5e6)));
        let next = s.next_rate().unwrap();
        assert!(next < 5e6);
    }

    #[test]
    fn generator_limits_are_reported() {
        let mut s = Search::new(SearchConfig::default());
        s.record(Outcome {
            rate_pps: 40e6,
            loss_ratio: 0.0,
            rx_pps: 20e6,
            generator_limited: true,
        });
        s.record(Outcome {
            rate_pps: 20e6,
            loss_ratio: 0.0,
            rx_pps: 20e6,
            generator_limited: false,
        });
        let r = s.result();
        assert_eq!(r.pdr_pps, 20e6);
        assert!(r.pdr.generator_limited);
    }
}
