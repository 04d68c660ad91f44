//! What a run measures: scenarios (frame size x route table x generator), devices, rounds,
//! trial lengths, and the method: the maximum forwarding rate under overload (the default),
//! or the NDR/PDR search (for dedicated cores, where short trials are not disturbed).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::dut::DutKind;

/// How a device's rate is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// RFC 2889's maximum forwarding rate: the generator at full rate for a long trial, the
    /// median of the per-second forwarded rates.
    Mfr,
    /// RFC 2544's NDR/PDR binary search over short trials.
    #[default]
    Pdr,
}

impl Method {
    /// Parses `mfr` or `pdr`.
    pub fn from_name(s: &str) -> Option<Method> {
        match s {
            "mfr" => Some(Method::Mfr),
            "pdr" => Some(Method::Pdr),
            _ => None,
        }
    }
}

/// The generator of a block.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum GenKind {
    /// `dvr-pktgen`, this repository's generator (stamps, sequence numbers, latency).
    #[default]
    #[serde(rename = "dvr-pktgen")]
    Pktgen,
    /// DPDK's `dpdk-testpmd --forward-mode=flowgen`: an outside generator and sink (maximum
    /// forwarding rate only, no latency).
    #[serde(rename = "testpmd-flowgen")]
    TestpmdFlowgen,
}

impl GenKind {
    /// Every generator, in report order.
    pub const ALL: [GenKind; 2] = [GenKind::Pktgen, GenKind::TestpmdFlowgen];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            GenKind::Pktgen => "dvr-pktgen",
            GenKind::TestpmdFlowgen => "testpmd-flowgen",
        }
    }

    /// Parses a short name (`testpmd` is accepted for `testpmd-flowgen`).
    pub fn from_name(s: &str) -> Option<GenKind> {
        match s {
            "dvr-pktgen" | "pktgen" => Some(GenKind::Pktgen),
            "testpmd-flowgen" | "testpmd" => Some(GenKind::TestpmdFlowgen),
            _ => None,
        }
    }
}

impl fmt::Display for GenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
    /// The generator.
    #[serde(default)]
    pub generator: GenKind,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `quick` or `full` (or `smoke`).
    pub mode: String,
    /// How rates are measured.
    #[serde(default)]
    pub method: Method,
    /// Interleaved rounds.
    pub rounds: usize,
    /// Blocks, in order.
    pub blocks: Vec<BlockPlan>,
    /// Flows of the generator (distinct destinations across the route set, UDP ports).
    pub flows: usize,
    /// Length of a search trial, or of the maximum-forwarding-rate trial, seconds.
    pub trial_s: f64,
    /// Length of a latency-ladder trial, seconds.
    pub ladder_s: f64,
    /// Warm-up before the search, seconds.
    pub warmup_s: f64,
    /// Fractions of each device's own PDR (or maximum forwarding rate) for the latency
    /// ladder.
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

/// The devices of a maximum-forwarding-rate run.
pub const MFR_DUTS: [DutKind; 4] = [
    DutKind::TestpmdIo,
    DutKind::L3fwd,
    DutKind::Dvrd,
    DutKind::DvrdVxlan,
];

impl Plan {
    /// The named plan measured by `method`: `quick` (the default of `make bench`), `full`, or
    /// `smoke` (a couple of minutes, for checking the harness itself).
    pub fn named(mode: &str, method: Method) -> Option<Plan> {
        match method {
            Method::Pdr => Plan::search(mode),
            Method::Mfr => Plan::max_forwarding_rate(mode),
        }
    }

    /// The maximum-forwarding-rate plans: every block once per generator, trials of 10 s
    /// (quick) or 20 s (full), 5 rounds.
    fn max_forwarding_rate(mode: &str) -> Option<Plan> {
        let (rounds, sizes, route_sizes, trial_s, ladder_s): (usize, &[&str], &[usize], f64, f64) =
            match mode {
                "quick" => (5, &["64"], &[1, 1_000_000], 10.0, 1.0),
                "full" => (5, &["64", "imix"], &FULL_ROUTES, 20.0, 2.0),
                "smoke" => (2, &["64"], &[1], 2.0, 0.3),
                _ => return None,
            };
        let mut blocks = Vec::new();
        for generator in GenKind::ALL {
            for size in sizes {
                for &routes in route_sizes {
                    blocks.push(BlockPlan {
                        frame_size: (*size).into(),
                        routes,
                        duts: MFR_DUTS.to_vec(),
                        generator,
                    });
                }
            }
        }
        Some(Plan {
            mode: mode.into(),
            method: Method::Mfr,
            rounds,
            blocks,
            flows: 1024,
            trial_s,
            ladder_s,
            warmup_s: 0.5,
            ladder: vec![0.1, 0.5, 0.9],
            resolution: 0.02,
            rate_max_pps: 40e6,
            pdr_loss_ratio: 0.005,
            trials_max: 1,
            retries: 0,
            wait_limit_us: 200,
            lag_limit_us: 200,
        })
    }

    /// The NDR/PDR search plans (`--method pdr`), with `dvr-pktgen`.
    fn search(mode: &str) -> Option<Plan> {
        let all = DutKind::ALL.to_vec();
        let block = |size: &str, routes: usize| BlockPlan {
            frame_size: size.into(),
            routes,
            duts: all.clone(),
            generator: GenKind::Pktgen,
        };
        let base = Plan {
            mode: mode.into(),
            method: Method::Pdr,
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
            let p = Plan::named(mode, Method::Pdr).unwrap();
            assert!(p.rounds >= 5);
            assert!(p.blocks.iter().all(|b| b.duts.len() == DutKind::ALL.len()));
            let m = Plan::named(mode, Method::Mfr).unwrap();
            assert!(m.rounds >= 5 && m.trial_s >= 10.0, "{mode}");
            // Every table once per generator.
            for g in GenKind::ALL {
                let sizes: Vec<_> = m.blocks.iter().filter(|b| b.generator == g).collect();
                assert_eq!(sizes.len() * GenKind::ALL.len(), m.blocks.len());
            }
        }
        let quick = Plan::named("quick", Method::Mfr).unwrap();
        let routes: Vec<usize> = quick.blocks.iter().map(|b| b.routes).collect();
        assert_eq!(routes, [1, 1_000_000, 1, 1_000_000]);
        assert!(Plan::named("nope", Method::Mfr).is_none());
        assert_eq!(Method::from_name("pdr"), Some(Method::Pdr));
        assert_eq!(GenKind::from_name("testpmd"), Some(GenKind::TestpmdFlowgen));
    }
}
