//! The results of a run (`bench/results/<date>.json`) and their aggregation over rounds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::dut::{DutKind, Placement, Programs, WorkerFigures};
use super::machine::Machine;
use super::plan::{GenKind, Plan};
use crate::latency::LatencySummary;
use crate::mfr::RateFigures;
use crate::report::{RunReport, TrialReport};

/// Version of this file's layout.
/// 2: the method, the generators and the maximum-forwarding-rate trials (1 reads as a search
/// run with dvr-pktgen).
pub const SCHEMA: u32 = 2;

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// Layout version.
    pub schema: u32,
    /// UTC start, `YYYY-MM-DDTHH:MM:SSZ`.
    pub started: String,
    /// Wall time of the run, seconds.
    pub duration_s: f64,
    /// The command that produced it.
    pub command: String,
    /// Machine and build.
    pub machine: Machine,
    /// CPU placement.
    pub placement: Placement,
    /// What was measured.
    pub plan: Plan,
    /// The programs.
    pub programs: Programs,
    /// Where the logs, configurations and raw generator reports are.
    pub work_dir: String,
    /// One per block of the plan.
    pub blocks: Vec<BlockResult>,
    /// Medians and spreads over the rounds (derived from `blocks`).
    pub summary: Vec<BlockSummary>,
}

/// One block: a route table and a frame size, every device, every round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockResult {
    /// Frame size.
    pub frame_size: String,
    /// Routes.
    pub routes: usize,
    /// The generator.
    #[serde(default)]
    pub generator: GenKind,
    /// Whether this block's processes used hugepages.
    pub hugepages: bool,
    /// The devices as started.
    pub duts: Vec<DutInstance>,
    /// The rounds.
    pub rounds: Vec<RoundResult>,
}

/// A device as started for a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DutInstance {
    /// Which.
    pub kind: DutKind,
    /// Started and ready (otherwise `error` says why).
    pub ok: bool,
    /// What went wrong.
    pub error: Option<String>,
    /// Seconds from start to ready (route loading included).
    pub ready_s: f64,
    /// Command line.
    pub command: Vec<String>,
    /// Its log.
    pub log: String,
    /// dvrd's worker figures over the whole block (every trial of every round).
    pub workers: Option<WorkerFigures>,
    /// How it exited.
    pub exit: String,
}

/// One round: every device once, in `order`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundResult {
    /// Round number from 1.
    pub round: usize,
    /// The order of the devices in this round.
    pub order: Vec<DutKind>,
    /// Busy share of all CPUs just before the round, every benchmark process frozen or idle:
    /// the machine's other work (0 on a quiet machine).
    pub background_busy: f64,
    /// One per device.
    pub runs: Vec<DutRun>,
}

/// One device in one round: a search and its latency ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DutRun {
    /// Which.
    pub kind: DutKind,
    /// The generator ran to the end.
    pub ok: bool,
    /// What went wrong.
    pub error: Option<String>,
    /// No-drop rate, packets per second.
    pub ndr_pps: f64,
    /// Partial-drop rate, packets per second.
    pub pdr_pps: f64,
    /// The search converged.
    pub converged: bool,
    /// The PDR is a bound of the generator, not of the device.
    pub pdr_generator_limited: bool,
    /// Trials of the search.
    pub trials: usize,
    /// Trials repeated because they were disturbed.
    pub trials_repeated: usize,
    /// Counted trials that were still disturbed.
    pub trials_disturbed: usize,
    /// The maximum-forwarding-rate trial (method `mfr`).
    #[serde(default)]
    pub mfr: Option<MfrRun>,
    /// The latency ladder.
    pub ladder: Vec<LadderResult>,
    /// The search's trials, briefly.
    pub search_trials: Vec<TrialBrief>,
    /// The generator's full report (JSON).
    pub report: String,
    /// The generator's command line.
    pub command: Vec<String>,
}

/// One maximum-forwarding-rate trial: the generator at full rate, the forwarded rate counted
/// every second.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MfrRun {
    /// The forwarded (received by the generator) per-second rates; their median is the
    /// device's maximum forwarding rate in this round.
    pub forwarded: RateFigures,
    /// The generator's sent per-second rates (the offered load).
    pub offered: RateFigures,
    /// Length of the trial, seconds.
    pub duration_s: f64,
    /// CPU wait of the device's worker during the trial, microseconds (dvr-pktgen only).
    pub device_wait_us: f64,
    /// CPU wait of the generator, microseconds (dvr-pktgen only).
    pub generator_wait_us: f64,
    /// The waits passed the plan's limit.
    pub disturbed: bool,
}

impl MfrRun {
    /// The figures of dvr-pktgen's full-rate trial.
    pub fn of_trial(t: &TrialReport) -> MfrRun {
        MfrRun {
            forwarded: RateFigures::of_samples(&t.rx_samples),
            offered: RateFigures::of_samples(&t.tx_samples),
            duration_s: t.duration_s,
            device_wait_us: t.device_wait_ns as f64 / 1e3,
            generator_wait_us: t.generator_wait_ns as f64 / 1e3,
            disturbed: t.disturbed,
        }
    }
}

/// One latency trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LadderResult {
    /// Fraction of the device's PDR.
    pub fraction: f64,
    /// Offered rate, packets per second.
    pub rate_pps: f64,
    /// Loss ratio.
    pub loss_ratio: f64,
    /// Latency.
    pub latency: LatencySummary,
    /// Disturbed by other work.
    pub disturbed: bool,
}

/// One search trial, briefly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialBrief {
    /// Offered, packets per second.
    pub rate_pps: f64,
    /// Received, packets per second.
    pub rx_pps: f64,
    /// Loss ratio.
    pub loss_ratio: f64,
    /// Disturbed.
    pub disturbed: bool,
    /// Generator-limited.
    pub generator_limited: bool,
    /// CPU wait of the device's worker, microseconds.
    pub device_wait_us: f64,
    /// CPU wait of the generator, microseconds.
    pub generator_wait_us: f64,
}

impl DutRun {
    /// A failed run.
    pub fn failed(kind: DutKind, error: String, command: Vec<String>) -> DutRun {
        DutRun {
            kind,
            ok: false,
            error: Some(error),
            ndr_pps: 0.0,
            pdr_pps: 0.0,
            converged: false,
            pdr_generator_limited: false,
            trials: 0,
            trials_repeated: 0,
            trials_disturbed: 0,
            mfr: None,
            ladder: Vec::new(),
            search_trials: Vec::new(),
            report: String::new(),
            command,
        }
    }

    /// The rate that ranks the device in this round: the maximum forwarding rate when
    /// measured, otherwise the PDR; `None` when the run failed or found nothing.
    pub fn rate_pps(&self) -> Option<f64> {
        let rate = self
            .mfr
            .as_ref()
            .map_or(self.pdr_pps, |m| m.forwarded.median_pps);
        (self.ok && rate > 0.0).then_some(rate)
    }

    /// The figures of a generator report.
    pub fn from_report(
        kind: DutKind,
        r: &RunReport,
        report: String,
        command: Vec<String>,
    ) -> DutRun {
        let brief = |t: &TrialReport| TrialBrief {
            rate_pps: t.rate_pps,
            rx_pps: t.rx_pps,
            loss_ratio: t.loss_ratio,
            disturbed: t.disturbed,
            generator_limited: t.generator_limited,
            device_wait_us: t.device_wait_ns as f64 / 1e3,
            generator_wait_us: t.generator_wait_ns as f64 / 1e3,
        };
        let search = r.search.as_ref();
        let measured = search.is_some() || r.mfr.is_some();
        DutRun {
            kind,
            ok: measured,
            error: (!measured).then(|| "no search or MFR trial in the report".to_owned()),
            ndr_pps: search.map_or(0.0, |s| s.result.ndr_pps),
            pdr_pps: search.map_or(0.0, |s| s.result.pdr_pps),
            converged: search.is_some_and(|s| s.result.converged),
            pdr_generator_limited: search.is_some_and(|s| s.result.pdr.generator_limited),
            trials: search.map_or(0, |s| s.result.trials),
            trials_repeated: search.map_or(0, |s| s.trials_repeated),
            trials_disturbed: search.map_or(0, |s| s.trials.iter().filter(|t| t.disturbed).count())
                + usize::from(r.mfr.as_ref().is_some_and(|t| t.disturbed)),
            mfr: r.mfr.as_ref().map(MfrRun::of_trial),
            ladder: r
                .ladder
                .iter()
                .map(|p| LadderResult {
                    fraction: p.fraction,
                    rate_pps: p.trial.rate_pps,
                    loss_ratio: p.trial.loss_ratio,
                    latency: p.trial.latency,
                    disturbed: p.trial.disturbed,
                })
                .collect(),
            search_trials: search.map_or_else(Vec::new, |s| s.trials.iter().map(brief).collect()),
            report,
            command,
        }
    }
}

/// Median and range of a figure over the rounds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Every value, in round order.
    pub values: Vec<f64>,
}

impl Spread {
    /// The spread of `values` (`None` when empty).
    pub fn of(values: Vec<f64>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            values,
        })
    }
}

/// Latency at one ladder step, medians over the rounds, microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LadderSummary {
    /// Fraction of the device's PDR.
    pub fraction: f64,
    /// Median offered rate, packets per second.
    pub rate_pps: f64,
    /// p50.
    pub p50_us: Spread,
    /// p90.
    pub p90_us: Spread,
    /// p99.
    pub p99_us: Spread,
    /// p99.9.
    pub p999_us: Spread,
    /// max.
    pub max_us: Spread,
}

/// One device over the rounds of a block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DutSummary {
    /// Maximum forwarding rate, Mpps (each round's median of per-second rates).
    #[serde(default)]
    pub mfr_mpps: Option<Spread>,
    /// Offered load of the maximum-forwarding-rate trials, Mpps (median per-second sent).
    #[serde(default)]
    pub offered_mpps: Option<Spread>,
    /// Per-second rate spread within a trial, `(max - min) / median`, over the rounds.
    #[serde(default)]
    pub per_second_spread: Option<Spread>,
    /// Smallest and largest per-second forwarded rate of any round, Mpps (stalls show here).
    #[serde(default)]
    pub per_second_range_mpps: Option<(f64, f64)>,
    /// PDR, Mpps.
    pub pdr_mpps: Option<Spread>,
    /// NDR, Mpps.
    pub ndr_mpps: Option<Spread>,
    /// Rounds whose PDR was bounded by the generator.
    pub generator_limited_rounds: usize,
    /// Rounds that ran.
    pub rounds_ok: usize,
    /// Rounds whose search found a PDR (the others are left out of the PDR and latency
    /// medians and of the ratios).
    #[serde(default)]
    pub rounds_with_pdr: usize,
    /// Trials repeated / still disturbed, all rounds.
    pub trials_repeated: usize,
    /// Counted trials still disturbed, all rounds.
    pub trials_disturbed: usize,
    /// Latency ladder.
    pub ladder: Vec<LadderSummary>,
    /// dvrd's worker figures.
    pub workers: Option<WorkerFigures>,
}

impl DutSummary {
    /// The rate that ranks the device: the maximum forwarding rate, or the PDR.
    pub fn rate_mpps(&self) -> Option<&Spread> {
        self.mfr_mpps.as_ref().or(self.pdr_mpps.as_ref())
    }
}

/// A block over its rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockSummary {
    /// Frame size.
    pub frame_size: String,
    /// Routes.
    pub routes: usize,
    /// The generator.
    #[serde(default)]
    pub generator: GenKind,
    /// Background load before the rounds (busy share of all CPUs).
    pub background_busy: Option<Spread>,
    /// Per device.
    pub duts: BTreeMap<DutKind, DutSummary>,
    /// Ratios of the same round (`dvrd/l3fwd`, ...) of the maximum forwarding rate, or of the
    /// PDR in a search run, over the rounds.
    pub ratios: BTreeMap<String, Spread>,
}

/// The ratios reported, numerator over denominator.
pub const RATIOS: [(DutKind, DutKind); 5] = [
    (DutKind::Dvrd, DutKind::L3fwd),
    (DutKind::Dvrd, DutKind::TestpmdIo),
    (DutKind::L3fwd, DutKind::TestpmdIo),
    (DutKind::DvrdVxlan, DutKind::Dvrd),
    (DutKind::DvrdFip, DutKind::Dvrd),
];

/// The name of a ratio.
pub fn ratio_name(a: DutKind, b: DutKind) -> String {
    format!("{a}/{b}")
}

/// Summarises a block.
pub fn summarise(block: &BlockResult) -> BlockSummary {
    BlockSummary {
        frame_size: block.frame_size.clone(),
        routes: block.routes,
        generator: block.generator,
        background_busy: Spread::of(block.rounds.iter().map(|r| r.background_busy).collect()),
        duts: block
            .duts
            .iter()
            .map(|inst| (inst.kind, dut_summary(block, inst)))
            .collect(),
        ratios: ratios(block),
    }
}

/// One device over the rounds of its block.
fn dut_summary(block: &BlockResult, inst: &DutInstance) -> DutSummary {
    let ok: Vec<&DutRun> = block
        .rounds
        .iter()
        .flat_map(|r| r.runs.iter())
        .filter(|r| r.kind == inst.kind && r.ok)
        .collect();
    // A round whose search found no passing rate at all (every trial down to the lowest
    // failure lost too much, as happens when the machine takes the CPU away for
    // milliseconds) has no PDR and no ladder: it is left out of their medians, as it is
    // out of the ratios, rather than counted as a device that forwards nothing.
    let measured: Vec<&DutRun> = ok
        .iter()
        .copied()
        .filter(|r| r.rate_pps().is_some())
        .collect();
    let mfr: Vec<&MfrRun> = measured.iter().filter_map(|r| r.mfr.as_ref()).collect();
    let range = mfr
        .iter()
        .filter(|m| !m.forwarded.per_second_pps.is_empty())
        .fold(None, |acc: Option<(f64, f64)>, m| {
            let (lo, hi) = (m.forwarded.min_pps / 1e6, m.forwarded.max_pps / 1e6);
            Some(acc.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))))
        });
    DutSummary {
        mfr_mpps: Spread::of(mfr.iter().map(|m| m.forwarded.median_pps / 1e6).collect()),
        offered_mpps: Spread::of(mfr.iter().map(|m| m.offered.median_pps / 1e6).collect()),
        per_second_spread: Spread::of(mfr.iter().map(|m| m.forwarded.spread()).collect()),
        per_second_range_mpps: range,
        pdr_mpps: Spread::of(
            measured
                .iter()
                .filter(|r| r.mfr.is_none())
                .map(|r| r.pdr_pps / 1e6)
                .collect(),
        ),
        ndr_mpps: Spread::of(
            ok.iter()
                .filter(|r| r.mfr.is_none())
                .map(|r| r.ndr_pps / 1e6)
                .collect(),
        ),
        generator_limited_rounds: ok.iter().filter(|r| r.pdr_generator_limited).count(),
        rounds_ok: ok.len(),
        rounds_with_pdr: measured.len(),
        trials_repeated: ok.iter().map(|r| r.trials_repeated).sum(),
        trials_disturbed: ok.iter().map(|r| r.trials_disturbed).sum(),
        ladder: ladder_summary(&measured),
        workers: inst.workers,
    }
}

/// The latency ladder over the rounds that found a PDR, at the fractions of the first.
fn ladder_summary(measured: &[&DutRun]) -> Vec<LadderSummary> {
    let Some(first) = measured.first() else {
        return Vec::new();
    };
    first
        .ladder
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let step: Vec<&LadderResult> =
                measured.iter().filter_map(|r| r.ladder.get(i)).collect();
            let us = |f: fn(&LatencySummary) -> f64| {
                Spread::of(step.iter().map(|l| f(&l.latency) / 1e3).collect()).unwrap_or_default()
            };
            LadderSummary {
                fraction: l.fraction,
                rate_pps: Spread::of(step.iter().map(|l| l.rate_pps).collect())
                    .map_or(0.0, |s| s.median),
                p50_us: us(|l| l.p50_ns),
                p90_us: us(|l| l.p90_ns),
                p99_us: us(|l| l.p99_ns),
                p999_us: us(|l| l.p999_ns),
                max_us: us(|l| l.max_ns),
            }
        })
        .collect()
}

/// The ratios of [`RATIOS`] (of [`DutRun::rate_pps`]), each taken within a round, over the
/// rounds where both devices were measured.
fn ratios(block: &BlockResult) -> BTreeMap<String, Spread> {
    let mut ratios = BTreeMap::new();
    for (a, b) in RATIOS {
        let values: Vec<f64> = block
            .rounds
            .iter()
            .filter_map(|round| {
                let pdr = |k: DutKind| round.runs.iter().find(|r| r.kind == k)?.rate_pps();
                Some(pdr(a)? / pdr(b)?)
            })
            .collect();
        if let Some(s) = Spread::of(values) {
            ratios.insert(ratio_name(a, b), s);
        }
    }
    ratios
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_median_and_range() {
        let s = Spread::of(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(s.values, vec![3.0, 1.0, 2.0]);
        assert_eq!(Spread::of(vec![1.0, 2.0, 3.0, 4.0]).unwrap().median, 2.5);
        assert!(Spread::of(Vec::new()).is_none());
    }

    fn run(kind: DutKind, pdr: f64) -> DutRun {
        DutRun {
            pdr_pps: pdr,
            ndr_pps: pdr * 0.9,
            ok: true,
            error: None,
            ..DutRun::failed(kind, String::new(), Vec::new())
        }
    }

    fn instance(kind: DutKind) -> DutInstance {
        DutInstance {
            kind,
            ok: true,
            error: None,
            ready_s: 0.0,
            command: Vec::new(),
            log: String::new(),
            workers: None,
            exit: String::new(),
        }
    }

    #[test]
    fn ratios_are_taken_within_a_round() {
        let block = BlockResult {
            frame_size: "64".into(),
            routes: 1,
            generator: GenKind::Pktgen,
            hugepages: true,
            duts: vec![instance(DutKind::Dvrd), instance(DutKind::L3fwd)],
            rounds: (1..=3)
                .map(|i| RoundResult {
                    round: i,
                    order: vec![DutKind::Dvrd, DutKind::L3fwd],
                    background_busy: 0.0,
                    // The machine gets twice as fast each round; the ratio stays 1.5.
                    runs: vec![
                        run(DutKind::Dvrd, 3e6 * f64::from(i as u32)),
                        run(DutKind::L3fwd, 2e6 * f64::from(i as u32)),
                    ],
                })
                .collect(),
        };
        let s = summarise(&block);
        let r = &s.ratios["dvrd/l3fwd"];
        assert!((r.median - 1.5).abs() < 1e-12 && (r.max - r.min).abs() < 1e-12);
        let pdr = s.duts[&DutKind::Dvrd].pdr_mpps.as_ref().unwrap();
        assert_eq!((pdr.min, pdr.median, pdr.max), (3.0, 6.0, 9.0));
    }

    /// A maximum-forwarding-rate run of `per_second` rates (Mpps).
    fn mfr_run(kind: DutKind, per_second: &[f64]) -> DutRun {
        DutRun {
            ok: true,
            error: None,
            mfr: Some(MfrRun {
                forwarded: RateFigures::of(per_second.iter().map(|r| r * 1e6).collect()),
                ..MfrRun::default()
            }),
            ..DutRun::failed(kind, String::new(), Vec::new())
        }
    }

    #[test]
    fn mfr_ratios_use_the_median_of_per_second_rates_within_a_round() {
        // Round 1: dvrd 9 (one stalled second at 1), l3fwd 10: 0.9. Round 2: both slower,
        // 4 / 5: 0.8. Round 3: l3fwd failed: no ratio.
        let rounds = vec![
            vec![
                mfr_run(DutKind::Dvrd, &[9.0, 1.0, 9.0, 9.5, 8.5]),
                mfr_run(DutKind::L3fwd, &[10.0, 10.0, 10.0]),
            ],
            vec![
                mfr_run(DutKind::Dvrd, &[4.0, 4.0, 4.0]),
                mfr_run(DutKind::L3fwd, &[5.0, 5.0, 2.0]),
            ],
            vec![
                mfr_run(DutKind::Dvrd, &[6.0]),
                DutRun::failed(DutKind::L3fwd, "gone".into(), Vec::new()),
            ],
        ];
        let block = BlockResult {
            frame_size: "64".into(),
            routes: 1,
            generator: GenKind::TestpmdFlowgen,
            hugepages: false,
            duts: vec![instance(DutKind::Dvrd), instance(DutKind::L3fwd)],
            rounds: rounds
                .into_iter()
                .enumerate()
                .map(|(i, runs)| RoundResult {
                    round: i + 1,
                    order: vec![DutKind::Dvrd, DutKind::L3fwd],
                    background_busy: 0.0,
                    runs,
                })
                .collect(),
        };
        let s = summarise(&block);
        let r = &s.ratios["dvrd/l3fwd"];
        assert_eq!(r.values.len(), 2);
        assert!((r.median - 0.85).abs() < 1e-12, "{r:?}");
        assert!((r.min - 0.8).abs() < 1e-12 && (r.max - 0.9).abs() < 1e-12);
        let d = &s.duts[&DutKind::Dvrd];
        let mfr = d.mfr_mpps.as_ref().unwrap();
        assert_eq!((mfr.min, mfr.median, mfr.max), (4.0, 6.0, 9.0));
        // The stall shows in the per-second range, not in the rate.
        assert_eq!(d.per_second_range_mpps, Some((1.0, 9.5)));
        assert!(d.pdr_mpps.is_none() && d.ndr_mpps.is_none());
        assert_eq!(s.generator, GenKind::TestpmdFlowgen);
    }
}
