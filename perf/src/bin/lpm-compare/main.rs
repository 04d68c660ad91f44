//! The router's LPM against DPDK's `rte_lpm` and `rte_fib` on the same table and the same
//! destination addresses: insert time, burst lookup cycles, and lookups while another thread
//! applies updates. Results of every lookup are cross-checked against `rte_lpm`.
//!
//! ```text
//! lpm-compare [--routes 1000000] [--lookups 16777216] [--rounds 5] [--churn-rounds 5]
//!             [--hugepages] [--skip-rte-lpm] [--json FILE]
//! ```
//!
//! EAL runs with `--no-huge` unless `--hugepages` (then DPDK's tables sit in 2 MiB pages and
//! the router's tables are advised onto transparent huge pages, so both get large pages).

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use dpdk_bindings::{advise_hugepages, tsc, Eal, RteFib, RteLpm, LPM_MISS};
use perf::bench::machine;
use router_core::ids::NextHopId;
use router_core::lpm::testgen::{random_addresses, realistic_routes};
use router_core::lpm::{LpmConfig, LpmWriter, Prefix, NO_ROUTE};
use router_core::qsbr::Qsbr;
use serde::Serialize;

mod churn;

#[derive(Debug, Parser)]
#[command(about = "Compare the router's LPM with DPDK's rte_lpm and rte_fib")]
struct Args {
    /// Prefixes in the table (realistic length mix).
    #[arg(long, default_value_t = 1_000_000)]
    routes: usize,
    /// Random destination addresses looked up per round.
    #[arg(long, default_value_t = 1 << 24)]
    lookups: usize,
    /// Rounds of lookups (medians are reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Addresses per burst lookup.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Use hugepages (EAL) and transparent huge pages (router tables).
    #[arg(long)]
    hugepages: bool,
    /// Skip rte_lpm inserts (they take about a minute for 1M routes).
    #[arg(long)]
    skip_rte_lpm: bool,
    /// Rounds of the lookups-under-updates scenarios.
    #[arg(long, default_value_t = 5)]
    churn_rounds: usize,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, Serialize)]
struct Results {
    routes: usize,
    lookups_per_round: usize,
    rounds: usize,
    burst: usize,
    hugepages: bool,
    tsc_hz: u64,
    insert_s: Insert,
    cycles_per_lookup: Lookups,
    /// Lookups under updates, per writer scenario (`churn.rs`).
    churn: Vec<churn::Outcome>,
    mismatches_vs_rte_lpm: u64,
}

#[derive(Debug, Default, Serialize)]
struct Insert {
    router: f64,
    rte_lpm: Option<f64>,
    rte_fib: f64,
}

#[derive(Debug, Default, Serialize)]
struct Lookups {
    router: f64,
    rte_lpm: Option<f64>,
    rte_fib: f64,
    /// Every round, for the spread.
    router_rounds: Vec<f64>,
    rte_lpm_rounds: Vec<f64>,
    rte_fib_rounds: Vec<f64>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args = Args::parse();
    let eal = Eal::init(&eal_args(args.hugepages)).unwrap_or_else(|e| panic!("EAL: {e}"));
    let mut r = Results {
        routes: args.routes,
        lookups_per_round: args.lookups,
        rounds: args.rounds,
        burst: args.burst,
        hugepages: args.hugepages,
        tsc_hz: eal.tsc_hz(),
        ..Results::default()
    };

    // rte_lpm has no /0 and at most 2^24 next hops: keep the set comparable.
    let routes: Vec<(Prefix, NextHopId)> = realistic_routes(0x5eed, args.routes)
        .into_iter()
        .filter(|(p, _)| p.len() > 0)
        .collect();
    let addrs = random_addresses(0xadd5, args.lookups);
    eprintln!(
        "{} routes, {} addresses per round, {} rounds",
        routes.len(),
        addrs.len(),
        args.rounds
    );

    let mut tables = Tables::build(&args, &routes, &mut r.insert_s);
    r.mismatches_vs_rte_lpm = tables.mismatches(&addrs, args.burst);
    eprintln!(
        "cross-check: {} mismatches in {} lookups",
        r.mismatches_vs_rte_lpm,
        addrs.len()
    );
    r.cycles_per_lookup = tables.lookup_rounds(&addrs, &args);
    let qsbr = tables.qsbr.register().expect("reader");
    let lpm = Arc::clone(tables.ours.lpm());
    let reader = churn::Reader {
        lpm: &lpm,
        qsbr: &qsbr,
        addrs: &addrs,
        burst: args.burst,
        cpu: current_cpu(),
    };
    r.churn = churn::run(&mut tables.ours, &routes, &reader, args.churn_rounds);
    print_churn(&r.churn);
    drop(qsbr);

    println!("{}", serde_json::to_string_pretty(&r).expect("json"));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&r).expect("json")).expect("write json");
    }
    drop(tables);
    let _ = eal.cleanup();
}

/// One lcore, no PCI, no telemetry; 2 GiB, in hugepages or not.
fn eal_args(hugepages: bool) -> Vec<String> {
    let mut eal_args: Vec<String> = [
        "lpm-compare",
        "-l",
        "0",
        "--no-pci",
        "--no-telemetry",
        "--file-prefix=lpmcmp",
    ]
    .map(String::from)
    .to_vec();
    if hugepages {
        eal_args.extend(["-m", "2048"].map(String::from));
    } else {
        eal_args.extend(["--no-huge", "--no-shconf", "-m", "2048"].map(String::from));
    }
    eal_args
}

/// The three tables with the same routes.
struct Tables {
    qsbr: Arc<Qsbr>,
    ours: LpmWriter,
    fib: RteFib,
    /// `None` with `--skip-rte-lpm`.
    lpm: Option<RteLpm>,
}

/// Seconds `insert` takes for every route.
fn time_inserts(routes: &[(Prefix, NextHopId)], mut insert: impl FnMut(Prefix, NextHopId)) -> f64 {
    let t = Instant::now();
    for &(p, nh) in routes {
        insert(p, nh);
    }
    t.elapsed().as_secs_f64()
}

impl Tables {
    /// Builds the tables, recording the insert times.
    fn build(args: &Args, routes: &[(Prefix, NextHopId)], insert_s: &mut Insert) -> Tables {
        let tbl8 = 1 << 16;
        let qsbr = Arc::new(Qsbr::new(4));
        let mut ours =
            LpmWriter::new(LpmConfig::root24(tbl8), Arc::clone(&qsbr)).expect("router LPM");
        if args.hugepages {
            for (addr, len) in ours.lpm().memory_regions() {
                let _ = advise_hugepages(addr, len);
            }
        }
        insert_s.router = time_inserts(routes, |p, nh| {
            ours.insert(p, nh).expect("insert");
        });
        eprintln!(
            "router LPM: {} routes inserted in {:.3} s",
            routes.len(),
            insert_s.router
        );

        let mut fib =
            RteFib::new("cmp_fib", routes.len() as u32 + 16, tbl8, None).expect("rte_fib");
        insert_s.rte_fib = time_inserts(routes, |p, nh| {
            fib.add(p.bits(), p.len(), nh.get()).expect("rte_fib add");
        });
        eprintln!("rte_fib: inserted in {:.3} s", insert_s.rte_fib);

        let lpm = (!args.skip_rte_lpm).then(|| {
            let mut lpm =
                RteLpm::new("cmp_lpm", routes.len() as u32 + 16, tbl8, None).expect("rte_lpm");
            let s = time_inserts(routes, |p, nh| {
                lpm.add(p.bits(), p.len(), nh.get()).expect("rte_lpm add");
            });
            insert_s.rte_lpm = Some(s);
            eprintln!("rte_lpm: inserted in {s:.3} s");
            lpm
        });
        Tables {
            qsbr,
            ours,
            fib,
            lpm,
        }
    }

    /// Results of the router's LPM that differ from rte_lpm's (or rte_fib's when rte_lpm is
    /// skipped).
    fn mismatches(&self, addrs: &[u32], burst: usize) -> u64 {
        let mut out_ours = vec![0u32; addrs.len()];
        for (a, o) in addrs.chunks(burst).zip(out_ours.chunks_mut(burst)) {
            self.ours.lpm().lookup_burst(a, o);
        }
        let mut reference = vec![0u32; addrs.len()];
        if let Some(lpm) = &self.lpm {
            lpm.lookup_bulk(addrs, &mut reference);
        } else {
            let mut wide = vec![0u64; addrs.len()];
            self.fib.lookup_bulk(addrs, &mut wide);
            reference
                .iter_mut()
                .zip(&wide)
                .for_each(|(r, w)| *r = *w as u32);
        }
        out_ours
            .iter()
            .zip(&reference)
            .filter(|(o, e)| {
                let o = if **o == NO_ROUTE { LPM_MISS } else { **o };
                o != **e
            })
            .count() as u64
    }

    /// Cycles per lookup of every table, in interleaved rounds (router, rte_lpm, rte_fib in
    /// every round), and their medians.
    fn lookup_rounds(&self, addrs: &[u32], args: &Args) -> Lookups {
        let mut c = Lookups::default();
        let mut out = vec![0u32; args.burst];
        let mut wide = vec![0u64; args.burst];
        for round in 0..args.rounds {
            c.router_rounds
                .push(cycles_per_lookup(addrs, args.burst, |a| {
                    self.ours.lpm().lookup_burst(a, &mut out[..a.len()]);
                    u64::from(out[0])
                }));
            if let Some(lpm) = &self.lpm {
                c.rte_lpm_rounds
                    .push(cycles_per_lookup(addrs, args.burst, |a| {
                        lpm.lookup_bulk_raw(a, &mut out[..a.len()]);
                        u64::from(out[0])
                    }));
            }
            c.rte_fib_rounds
                .push(cycles_per_lookup(addrs, args.burst, |a| {
                    self.fib.lookup_bulk(a, &mut wide[..a.len()]);
                    wide[0]
                }));
            eprintln!(
                "round {round}: router {:.1}, rte_lpm {}, rte_fib {:.1} cycles per lookup",
                c.router_rounds[round],
                c.rte_lpm_rounds
                    .get(round)
                    .map_or("-".into(), |c| format!("{c:.1}")),
                c.rte_fib_rounds[round],
            );
        }
        c.router = median(&mut c.router_rounds.clone());
        c.rte_lpm = (!c.rte_lpm_rounds.is_empty()).then(|| median(&mut c.rte_lpm_rounds.clone()));
        c.rte_fib = median(&mut c.rte_fib_rounds.clone());
        c
    }
}

/// TSC cycles per address of looking `addrs` up in bursts of `burst` with `lookup`, which
/// returns a value of its result (summed and kept, so that no lookup is optimised away).
#[inline(always)]
fn cycles_per_lookup(addrs: &[u32], burst: usize, mut lookup: impl FnMut(&[u32]) -> u64) -> f64 {
    let mut sink = 0u64;
    let start = tsc();
    for a in addrs.chunks(burst) {
        sink = sink.wrapping_add(lookup(a));
    }
    let cycles = tsc() - start;
    std::hint::black_box(sink);
    cycles as f64 / addrs.len() as f64
}

/// The lookups-under-updates table, on stderr with the progress lines.
fn print_churn(outcomes: &[churn::Outcome]) {
    eprintln!("lookups while a writer updates (loaded / quiet, median [min-max] of the rounds):");
    for o in outcomes {
        let (lo, hi) = o
            .ratios
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        eprintln!(
            "  {:24} {:5} routes /{}-/{}: {:.2}x [{lo:.2}-{hi:.2}], {:.0} updates/s, {:.0}% changing the table, worst update {:.0} us",
            o.scenario.name,
            o.routes,
            o.lengths.0,
            o.lengths.1,
            o.ratio,
            o.updates_per_s,
            100.0 * o.effective_share,
            o.update_us_max
        );
    }
}

/// The CPU the calling thread may run on when it is pinned to one (EAL pins the main thread).
fn current_cpu() -> usize {
    machine::cpus_allowed("thread-self")
        .and_then(|l| l.split([',', '-']).next()?.parse().ok())
        .unwrap_or(0)
}
