//! Lookups while another thread updates the table: which updates, on which CPU, and what they
//! cost the reader.
//!
//! Every measurement pairs a quiet pass and a loaded pass of the same loop (burst lookups over
//! the same addresses, a quiescent state after every burst), back to back, and the figure of a
//! scenario is the median of the per-round ratios loaded/quiet. So the loop, the addresses, the
//! pages and the quiescent-state reports are the same on both sides, and drift on a shared
//! machine falls on both.
//!
//! The scenarios separate what the writer does to the reader:
//! - `spin` and `idle`: a thread on the other CPU that touches no memory, busy all the time or
//!   only waking up at the writer's pace: what is left of a slowdown with no table traffic at
//!   all.
//! - `lookup-only`: the writer finds every route already at the value it writes (`insert`
//!   returns early after the RIB lookup), so it writes no table entry; what is left is its own
//!   memory traffic and its sleeps and wake-ups.
//! - `replace`: next hops replaced in place, alternating between two values, so that every
//!   update rewrites the route's entries.
//! - `remove-insert`: the route is removed (its entries fall back to the covering route, groups
//!   may be retired) and inserted again in the next pass.
//! - `replace-short`: the worst case, the shortest prefixes of the table replaced in place: each
//!   update rewrites thousands of root entries and every group below them.
//!
//! Each runs with the writer on the other CPU, and with the writer on the reader's own CPU
//! (where the reader loses the writer's CPU time as well).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dpdk_bindings::tsc;
use router_core::ids::NextHopId;
use router_core::lpm::{Lpm, LpmWriter, Prefix};
use router_core::qsbr::QsbrReader;
use serde::Serialize;

/// Most updates per second the writer applies (it sleeps when ahead of that pace).
pub const UPDATES_PER_S_MAX: u64 = 1_000_000;
/// Routes the writer cycles through (every n-th route of the table).
const SPREAD_ROUTES: usize = 10_000;
/// Routes of the worst case (the shortest of the table).
const SHORT_ROUTES: usize = 1_000;

/// What the writer does to each route of its set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Update {
    /// Touches no memory at all: spins on arithmetic, never sleeping (what any busy thread on
    /// the other CPU costs the reader, through the CPU they share underneath).
    Spin,
    /// Touches no table: only the pacing's sleeps and wake-ups.
    Idle,
    /// Writes the value the route already has: no table entry changes.
    LookupOnly,
    /// Alternates the route's next hop between two values.
    Replace,
    /// Removes the route, and inserts it back in the next pass.
    RemoveInsert,
}

/// The routes the writer cycles through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subset {
    /// Every n-th route: the table's length mix.
    Spread,
    /// The shortest routes of the table.
    Shortest,
}

/// Where the writer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Another CPU than the reader's.
    OtherCpu,
    /// The reader's CPU.
    SameCpu,
}

/// One writer configuration.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scenario {
    pub name: &'static str,
    pub update: Update,
    pub subset: Subset,
    pub placement: Placement,
}

/// The scenarios of a run, the worst case included.
pub const SCENARIOS: [Scenario; 8] = [
    Scenario {
        name: "spin",
        update: Update::Spin,
        subset: Subset::Spread,
        placement: Placement::OtherCpu,
    },
    Scenario {
        name: "idle",
        update: Update::Idle,
        subset: Subset::Spread,
        placement: Placement::OtherCpu,
    },
    Scenario {
        name: "lookup-only",
        update: Update::LookupOnly,
        subset: Subset::Spread,
        placement: Placement::OtherCpu,
    },
    Scenario {
        name: "replace",
        update: Update::Replace,
        subset: Subset::Spread,
        placement: Placement::OtherCpu,
    },
    Scenario {
        name: "remove-insert",
        update: Update::RemoveInsert,
        subset: Subset::Spread,
        placement: Placement::OtherCpu,
    },
    Scenario {
        name: "replace-short",
        update: Update::Replace,
        subset: Subset::Shortest,
        placement: Placement::OtherCpu,
    },
    Scenario {
        name: "replace, same CPU",
        update: Update::Replace,
        subset: Subset::Spread,
        placement: Placement::SameCpu,
    },
    Scenario {
        name: "replace-short, same CPU",
        update: Update::Replace,
        subset: Subset::Shortest,
        placement: Placement::SameCpu,
    },
];

/// What one scenario measured over the rounds.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub scenario: Scenario,
    /// Routes in the writer's set, and their prefix lengths (shortest, longest).
    pub routes: usize,
    pub lengths: (u8, u8),
    /// Reader cycles per lookup, quiet and loaded, per round.
    pub quiet: Vec<f64>,
    pub loaded: Vec<f64>,
    /// Loaded / quiet per round, and their median.
    pub ratios: Vec<f64>,
    pub ratio: f64,
    /// Updates per second the writer applied, and the share of them that changed the table.
    pub updates_per_s: f64,
    pub effective_share: f64,
    /// Worst single update, microseconds.
    pub update_us_max: f64,
    /// The reader's CPU, and the writer's at the end of each loaded pass.
    pub reader_cpu: usize,
    pub writer_cpus: Vec<Option<usize>>,
}

/// The reader's side: the table, its QSBR registration, the addresses, the burst size, and the
/// CPU it is pinned to.
pub struct Reader<'a> {
    pub lpm: &'a Lpm,
    pub qsbr: &'a QsbrReader,
    pub addrs: &'a [u32],
    pub burst: usize,
    pub cpu: usize,
}

impl Reader<'_> {
    /// Cycles per lookup of `passes` passes over the addresses, with a quiescent state after
    /// every burst (as a worker reports one after every poll).
    fn pass(&self, passes: usize) -> f64 {
        let mut out = vec![0u32; self.burst];
        let mut sink = 0u64;
        let start = tsc();
        for _ in 0..passes {
            for a in self.addrs.chunks(self.burst) {
                self.lpm.lookup_burst(a, &mut out[..a.len()]);
                sink = sink.wrapping_add(u64::from(out[0]));
                self.qsbr.quiescent();
            }
        }
        let cycles = tsc() - start;
        std::hint::black_box(sink);
        cycles as f64 / (passes * self.addrs.len()) as f64
    }
}

/// Runs every scenario `rounds` times, interleaved (scenario by scenario within a round), each
/// time a quiet pass and a loaded pass.
pub fn run(
    writer: &mut LpmWriter,
    routes: &[(Prefix, NextHopId)],
    reader: &Reader<'_>,
    rounds: usize,
) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = SCENARIOS
        .iter()
        .map(|&scenario| {
            let set = subset(routes, scenario.subset);
            let lengths = set.iter().fold((u8::MAX, 0), |(lo, hi), (p, _)| {
                (lo.min(p.len()), hi.max(p.len()))
            });
            Outcome {
                scenario,
                routes: set.len(),
                lengths,
                quiet: Vec::new(),
                loaded: Vec::new(),
                ratios: Vec::new(),
                ratio: 0.0,
                updates_per_s: 0.0,
                effective_share: 0.0,
                update_us_max: 0.0,
                reader_cpu: reader.cpu,
                writer_cpus: Vec::new(),
            }
        })
        .collect();
    let mut rates = vec![Vec::new(); SCENARIOS.len()];
    let mut shares = vec![Vec::new(); SCENARIOS.len()];
    for round in 0..rounds {
        for (outcome, (rates, shares)) in outcomes.iter_mut().zip(rates.iter_mut().zip(&mut shares))
        {
            let set = subset(routes, outcome.scenario.subset);
            let quiet = reader.pass(2);
            let (loaded, w) = loaded_pass(writer, &set, reader, outcome.scenario);
            outcome.quiet.push(quiet);
            outcome.loaded.push(loaded);
            outcome.ratios.push(loaded / quiet);
            outcome.update_us_max = outcome.update_us_max.max(w.worst_us);
            outcome.writer_cpus.push(w.cpu);
            rates.push(w.updates as f64 / w.seconds);
            shares.push(w.effective as f64 / w.updates.max(1) as f64);
            restore(writer, &set);
            eprintln!(
                "churn round {round} {:24}: quiet {quiet:5.1}, loaded {loaded:5.1} cycles per lookup ({:.2}x), {:.0} updates/s, {:.0}% changing the table, reader on CPU {}, writer on CPU {}",
                outcome.scenario.name,
                loaded / quiet,
                w.updates as f64 / w.seconds,
                100.0 * w.effective as f64 / w.updates.max(1) as f64,
                reader.cpu,
                w.cpu.map_or("?".into(), |c| c.to_string())
            );
        }
    }
    for (outcome, (rates, shares)) in outcomes.iter_mut().zip(rates.into_iter().zip(shares)) {
        outcome.ratio = median(outcome.ratios.clone());
        outcome.updates_per_s = median(rates);
        outcome.effective_share = median(shares);
    }
    outcomes
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The writer's set of a scenario.
fn subset(routes: &[(Prefix, NextHopId)], subset: Subset) -> Vec<(Prefix, NextHopId)> {
    match subset {
        Subset::Spread => routes
            .iter()
            .step_by((routes.len() / SPREAD_ROUTES).max(1))
            .copied()
            .collect(),
        Subset::Shortest => {
            let mut sorted = routes.to_vec();
            sorted.sort_by_key(|(p, _)| p.len());
            sorted.truncate(SHORT_ROUTES);
            sorted
        }
    }
}

/// Puts every route of the set back to its original next hop.
fn restore(writer: &mut LpmWriter, set: &[(Prefix, NextHopId)]) {
    for &(p, nh) in set {
        writer.insert(p, nh).expect("restore a churned route");
    }
}

/// What the writer did during a loaded pass.
struct Written {
    /// The CPU the writer ran on at the end.
    cpu: Option<usize>,
    updates: u64,
    /// Updates that changed the table.
    effective: u64,
    worst_us: f64,
    seconds: f64,
}

/// One reader pass while a writer thread applies the scenario's updates.
fn loaded_pass(
    writer: &mut LpmWriter,
    set: &[(Prefix, NextHopId)],
    reader: &Reader<'_>,
    scenario: Scenario,
) -> (f64, Written) {
    let stop = AtomicBool::new(false);
    let reader_cpu = reader.cpu;
    std::thread::scope(|s| {
        let handle = s.spawn(|| {
            pin_writer(scenario.placement, reader_cpu);
            let mut written = apply(writer, set, scenario.update, &stop);
            written.cpu = running_cpu();
            written
        });
        // Let the writer reach its pace.
        std::thread::sleep(Duration::from_millis(20));
        let cycles = reader.pass(2);
        stop.store(true, Ordering::Relaxed);
        (cycles, handle.join().expect("writer"))
    })
}

/// Pins the calling (writer) thread: EAL pinned the reader, and threads inherit its CPU.
///
/// The CPUs come from the machine's online list, not from the thread's affinity mask: the
/// mask this thread inherited holds only the reader's CPU, so a choice among its CPUs would
/// leave the writer on the reader's CPU whatever was asked (so did this benchmark until it
/// checked where the writer ran).
fn pin_writer(placement: Placement, reader_cpu: usize) {
    let cpu = match placement {
        Placement::OtherCpu => online_cpus().into_iter().rev().find(|&c| c != reader_cpu),
        Placement::SameCpu => Some(reader_cpu),
    };
    if let Some(id) = cpu {
        assert!(
            core_affinity::set_for_current(core_affinity::CoreId { id }),
            "cannot pin the writer to CPU {id}"
        );
    }
}

/// The CPUs the kernel has online (`/sys/devices/system/cpu/online`, e.g. `0-1`).
fn online_cpus() -> Vec<usize> {
    let list = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    list.trim()
        .split(',')
        .filter_map(|range| {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            Some(lo.parse::<usize>().ok()?..=hi.parse::<usize>().ok()?)
        })
        .flatten()
        .collect()
}

/// The CPU the calling thread runs on now (`/proc/thread-self/stat`, field 39).
fn running_cpu() -> Option<usize> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name (field 2) may hold spaces: count from after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(36)?.parse().ok()
}

/// The writer loop: cycles through `set` until `stop`, at most [`UPDATES_PER_S_MAX`] updates
/// per second.
fn apply(
    writer: &mut LpmWriter,
    set: &[(Prefix, NextHopId)],
    update: Update,
    stop: &AtomicBool,
) -> Written {
    let start = Instant::now();
    let mut w = Written {
        cpu: None,
        updates: 0,
        effective: 0,
        worst_us: 0.0,
        seconds: 0.0,
    };
    if update == Update::Spin {
        let mut x = 1u64;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..1000 {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
        }
        w.seconds = start.elapsed().as_secs_f64();
        return w;
    }
    let mut pass = 0u32;
    'outer: loop {
        for (i, &(p, nh)) in set.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                break 'outer;
            }
            // Every 100 updates, sleep while ahead of the schedule (the next batches catch up
            // after an overshoot).
            if w.updates % 100 == 0 {
                let due = Duration::from_nanos(w.updates * 1_000_000_000 / UPDATES_PER_S_MAX);
                let now = start.elapsed();
                if now < due {
                    std::thread::sleep(due - now);
                }
            }
            let t = Instant::now();
            let changed = match update {
                Update::Spin | Update::Idle => false,
                Update::LookupOnly => writer.insert(p, nh).expect("update") != Some(nh),
                Update::Replace => {
                    // The pass decides the value, so that every update changes the route.
                    let alt =
                        NextHopId::new((nh.get() + 1 + i as u32) & 0xff_ffff).expect("next hop");
                    let value = if pass % 2 == 0 { alt } else { nh };
                    writer.insert(p, value).expect("update") != Some(value)
                }
                Update::RemoveInsert if pass % 2 == 0 => writer.remove(p).is_ok(),
                Update::RemoveInsert => writer.insert(p, nh).expect("update").is_none(),
            };
            w.worst_us = w.worst_us.max(t.elapsed().as_secs_f64() * 1e6);
            w.updates += 1;
            w.effective += u64::from(changed);
        }
        pass += 1;
    }
    w.seconds = start.elapsed().as_secs_f64();
    w
}
