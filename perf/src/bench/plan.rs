//! What a run measures: scenarios (frame size x route table), devices, rounds, trial lengths.

use serde::{Deserialize, Serialize};

use super::dut::DutKind;

/// One block of a run: the devices are started once with this route table, then measured in
/// interleaved rounds with this frame size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockPlan {
    /// Frame size (`64`, ..., `imix`).
    pub frame_size: String,
    /// Routes in the table (1: the single route pair).
    pub routes: usize,
    /// Devices, in the order of the first round (later rounds rotate it).
    pub duts: Vec<DutKind>,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `quick` or `full` (or `smoke`).
    pub mode: String,
    /// Interleaved rounds.
    pub rounds: usize,
    /// Blocks, in order.
    pub blocks: Vec<BlockPlan>,
    /// Flows of the generator (distinct destinations across the route set, UDP ports).
    pub flows: usize,
    /// Length of a search trial, seconds.
    pub trial_s: f64,
    /// Length of a latency-ladder trial, seconds.
    pub ladder_s: f64,
    /// Warm-up before the search, seconds.
    pub warmup_s: f64,
    /// Fractions of each device's own PDR for the latency ladder.
    pub ladder: Vec<f64>,
    /// Search resolution (fraction).
    pub resolution: f64,
    /// First (highest) rate of the search, packets per second.
    pub rate_max_pps: f64,
    /// Loss ratio of the PDR.
    pub pdr_loss_ratio: f64,
    /// Most trials per search.
    pub trials_max: usize,
    /// Repetitions of a disturbed trial.
    pub retries: usize,
    /// CPU wait (device and generator) that makes a trial disturbed, microseconds.
    pub wait_limit_us: u64,
    /// Generator lag that makes a trial disturbed, microseconds.
    pub lag_limit_us: u64,
}

/// Route-table sizes of the full run.
pub const FULL_ROUTES: [usize; 4] = [1, 20_000, 200_000, 1_000_000];

impl Plan {
    /// The named plan: `quick` (under ten minutes), `full`, or `smoke` (a minute, for checking
    /// the harness itself).
    pub fn named(mode: &str) -> Option<Plan> {
        let all = DutKind::ALL.to_vec();
        let block = |size: &str, routes: usize| BlockPlan {
            frame_size: size.into(),
            routes,
            duts: all.clone(),
        };
        let base = Plan {
            mode: mode.into(),
            rounds: 5,
            blocks: Vec::new(),
            flows: 65_536,
            trial_s: 2.0,
            ladder_s: 2.0,
            warmup_s: 0.5,
            ladder: vec![0.1, 0.5, 0.9],
            resolution: 0.02,
            rate_max_pps: 40e6,
            pdr_loss_ratio: 0.005,
            trials_max: 20,
            retries: 2,
            wait_limit_us: 200,
            lag_limit_us: 200,
        };
        match mode {
            // No repeats of disturbed trials: on a 2-core virtual machine most trials see some
            // CPU wait, and repeating them doubled the run (they stay marked in the report).
            "quick" => Some(Plan {
                blocks: vec![block("64", 1), block("64", 1_000_000)],
                trial_s: 0.4,
                ladder_s: 0.4,
                warmup_s: 0.2,
                resolution: 0.04,
                trials_max: 12,
                retries: 0,
                ..base
            }),
            "full" => {
                let mut blocks: Vec<BlockPlan> =
                    FULL_ROUTES.iter().map(|&r| block("64", r)).collect();
                blocks.extend([block("imix", 1), block("imix", 1_000_000)]);
                Some(Plan { blocks, ..base })
            }
            "smoke" => Some(Plan {
                rounds: 2,
                blocks: vec![block("64", 1)],
                trial_s: 0.3,
                ladder_s: 0.3,
                warmup_s: 0.1,
                resolution: 0.1,
                trials_max: 6,
                retries: 0,
                ..base
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_exist_and_have_five_rounds_at_least() {
        for mode in ["quick", "full"] {
            let p = Plan::named(mode).unwrap();
            assert!(p.rounds >= 5);
            assert!(p.blocks.iter().all(|b| b.duts.len() == DutKind::ALL.len()));
        }
        assert!(Plan::named("nope").is_none());
    }
}
