//! LPM benchmarks: lookups and updates on a table of 1,000,000 routes with the prefix-length mix
//! of an internet table (`testgen::realistic_routes`), the table DPDK's `lpm_perf_autotest`
//! measures `rte_lpm` on.
//!
//! `cargo bench -p router-core --bench lpm` runs the criterion benchmarks, then prints a summary
//! in TSC cycles (the TSC frequency comes from `/proc/cpuinfo`): medians of interleaved rounds,
//! because the machines this runs on are small and shared. `LPM_BENCH_SUMMARY_ONLY=1` skips
//! criterion; `-- FILTER` runs the criterion benchmarks matching FILTER and no summary.
//!
//! The tables live on 4 KiB pages here (this crate cannot `madvise` them onto huge pages; the
//! daemon does, through `Lpm::memory_regions`), so random lookups pay a TLB miss each.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use router_core::ids::NextHopId;
use router_core::lpm::{testgen, Lpm, LpmConfig, LpmWriter, Prefix, NO_ROUTE};
use router_core::qsbr::Qsbr;

/// Routes in the big table.
const ROUTES: usize = 1_000_000;
/// tbl8 groups of the 24-bit table (the 1M routes use about 30,000).
const TBL8_GROUPS_24: u32 = 65_536;
/// tbl8 groups of the 16-bit table (one per /16 holding longer routes, plus one per /24 holding
/// routes longer than /24).
const TBL8_GROUPS_16: u32 = 131_072;
const SEED_ROUTES: u64 = 1;
const SEED_ADDRS: u64 = 2;
/// Destinations per address set: 4 MiB of addresses, cycled through.
const ADDRS: usize = 1 << 20;
/// A receive burst.
const BURST: usize = 32;
/// A long batch.
const BATCH: usize = 1024;
/// Size of the churned subset for the concurrent benchmark.
const CHURN_PREFIXES: usize = 10_000;
/// Target update rate of the concurrent benchmark.
const CHURN_UPDATES_PER_S: u64 = 1_000_000;
/// Readers in the QSBR domain.
const READERS_MAX: usize = 4;

struct Fixture {
    routes: Vec<(Prefix, NextHopId)>,
    /// Uniform over the address space.
    random: Vec<u32>,
    /// Inside the routes (every destination has a route; long prefixes get their share).
    in_routes: Vec<u32>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let routes = testgen::realistic_routes(SEED_ROUTES, ROUTES);
        Fixture {
            random: testgen::random_addresses(SEED_ADDRS, ADDRS),
            in_routes: testgen::random_addresses_in(SEED_ADDRS, &routes, ADDRS),
            routes,
        }
    })
}

fn build(config: LpmConfig, routes: &[(Prefix, NextHopId)]) -> LpmWriter {
    let mut writer = LpmWriter::new(config, Arc::new(Qsbr::new(READERS_MAX))).unwrap();
    for &(prefix, next_hop) in routes {
        writer.insert(prefix, next_hop).unwrap();
    }
    writer
}

fn table24() -> &'static LpmWriter {
    static TABLE: OnceLock<LpmWriter> = OnceLock::new();
    TABLE.get_or_init(|| build(LpmConfig::root24(TBL8_GROUPS_24), &fixture().routes))
}

fn table16() -> &'static LpmWriter {
    static TABLE: OnceLock<LpmWriter> = OnceLock::new();
    TABLE.get_or_init(|| build(LpmConfig::root16(TBL8_GROUPS_16), &fixture().routes))
}

/// TSC cycles per second: the "cpu MHz" of /proc/cpuinfo (the invariant TSC's rate on these VMs).
fn tsc_hz() -> f64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("cpu MHz"))
                .and_then(|line| line.split(':').nth(1))
                .and_then(|mhz| mhz.trim().parse::<f64>().ok())
        })
        .map_or(2.6e9, |mhz| mhz * 1e6)
}

/// Looks up `addrs` in chunks of `chunk`, cycling through the set: one call per chunk.
struct Cursor<'a> {
    addrs: &'a [u32],
    out: Vec<u32>,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(addrs: &'a [u32], chunk: usize) -> Self {
        assert_eq!(addrs.len() % chunk, 0);
        Self {
            addrs,
            out: vec![0; chunk],
            at: 0,
        }
    }

    /// Moves to the next chunk, wrapping around (a compare, not a division: this runs per burst).
    #[inline]
    fn advance(&mut self, chunk: usize) {
        self.at += chunk;
        if self.at == self.addrs.len() {
            self.at = 0;
        }
    }

    #[inline]
    fn burst(&mut self, lpm: &Lpm) {
        let chunk = self.out.len();
        lpm.lookup_burst(&self.addrs[self.at..self.at + chunk], &mut self.out);
        self.advance(chunk);
        black_box(&self.out);
    }

    #[inline]
    fn singles(&mut self, lpm: &Lpm) {
        let chunk = self.out.len();
        for (out, &addr) in self
            .out
            .iter_mut()
            .zip(&self.addrs[self.at..self.at + chunk])
        {
            *out = lpm.lookup(addr).map_or(NO_ROUTE, u32::from);
        }
        self.advance(chunk);
        black_box(&self.out);
    }
}

fn bench_lookup(c: &mut Criterion) {
    let fixture = fixture();
    let mut group = c.benchmark_group("lookup");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (table, name) in [(table24(), "root24"), (table16(), "root16")] {
        let lpm = table.lpm();
        for (addrs, dist) in [
            (&fixture.random, "random"),
            (&fixture.in_routes, "in_routes"),
        ] {
            for chunk in [BURST, BATCH] {
                group.throughput(Throughput::Elements(chunk as u64));
                let mut cursor = Cursor::new(addrs, chunk);
                group.bench_function(format!("{name}/{dist}/burst{chunk}"), |b| {
                    b.iter(|| cursor.burst(lpm))
                });
            }
            group.throughput(Throughput::Elements(BURST as u64));
            let mut cursor = Cursor::new(addrs, BURST);
            group.bench_function(format!("{name}/{dist}/single_x{BURST}"), |b| {
                b.iter(|| cursor.singles(lpm))
            });
        }
    }
    group.finish();
}

/// Inserting all 1M routes into an empty table, and removing them all.
fn bench_bulk_updates(c: &mut Criterion) {
    let routes = &fixture().routes;
    let mut group = c.benchmark_group("bulk");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(ROUTES as u64));
    group.bench_function("root24/insert_1m", |b| {
        b.iter_batched(
            || LpmWriter::new(LpmConfig::root24(TBL8_GROUPS_24), Arc::new(Qsbr::new(1))).unwrap(),
            |mut writer| {
                for &(prefix, next_hop) in routes {
                    writer.insert(prefix, next_hop).unwrap();
                }
                writer
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("root24/remove_1m", |b| {
        b.iter_batched(
            || build(LpmConfig::root24(TBL8_GROUPS_24), routes),
            |mut writer| {
                for &(prefix, _) in routes {
                    writer.remove(prefix).unwrap();
                }
                writer
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Prefixes not in the table, one per iteration of the latency benchmarks.
fn absent_prefixes(table: &LpmWriter, len: u8, n: usize) -> Vec<Prefix> {
    let mut rng = testgen::SplitMix64::new(77 + u64::from(len));
    let mut prefixes = Vec::with_capacity(n);
    while prefixes.len() < n {
        let prefix = Prefix::containing(rng.next_u32() | 0x0100_0000, len);
        if table.get(prefix).is_none() && !prefixes.contains(&prefix) {
            prefixes.push(prefix);
        }
    }
    prefixes
}

/// One route update on the 1M table: insert of a new prefix, then its removal, timed separately.
fn bench_update_latency(c: &mut Criterion) {
    let mut table = build(LpmConfig::root24(TBL8_GROUPS_24), &fixture().routes);
    let mut group = c.benchmark_group("update_1m_table");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let next_hop = NextHopId::new(1).unwrap();
    for len in [16u8, 20, 24, 25, 32] {
        let prefixes = absent_prefixes(&table, len, 4096);
        group.bench_function(format!("insert_slash{len}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters as usize {
                    let prefix = prefixes[i % prefixes.len()];
                    let start = Instant::now();
                    table.insert(prefix, next_hop).unwrap();
                    total += start.elapsed();
                    table.remove(prefix).unwrap();
                }
                total
            })
        });
        group.bench_function(format!("remove_slash{len}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters as usize {
                    let prefix = prefixes[i % prefixes.len()];
                    table.insert(prefix, next_hop).unwrap();
                    let start = Instant::now();
                    table.remove(prefix).unwrap();
                    total += start.elapsed();
                }
                total
            })
        });
    }
    let present: Vec<Prefix> = fixture()
        .routes
        .iter()
        .filter(|(p, _)| p.len() == 24)
        .take(4096)
        .map(|&(p, _)| p)
        .collect();
    let mut flip = 0u32;
    group.bench_function("replace_slash24", |b| {
        b.iter(|| {
            flip = flip.wrapping_add(1);
            let prefix = present[flip as usize % present.len()];
            table
                .insert(prefix, NextHopId::new(flip & 0xFFFF).unwrap())
                .unwrap()
        })
    });
    group.finish();
}

/// A writer thread that churns `prefixes` (remove all, insert all back with new next hops, ...)
/// at `rate` updates per second until `stop`; returns (updates, seconds).
fn spawn_churn(
    mut writer: LpmWriter,
    prefixes: Vec<(Prefix, NextHopId)>,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<(u64, f64, LpmWriter)> {
    thread::spawn(move || {
        const STEP: u64 = 100;
        let start = Instant::now();
        let mut updates = 0u64;
        // Starts with the removals: every churned route is in the table.
        let mut pass = 0u32;
        'outer: loop {
            for &(prefix, next_hop) in &prefixes {
                if pass % 2 == 0 {
                    writer.remove(prefix).unwrap();
                } else {
                    let next_hop = NextHopId::new((next_hop.get() + pass) & 0xFFFF).unwrap();
                    writer.insert(prefix, next_hop).unwrap();
                }
                updates += 1;
                if updates % STEP == 0 {
                    if stop.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                    // Pace to the cumulative target: sleep while ahead of it, run flat out while
                    // behind (a sleep overshoots by tens of microseconds; the next batches catch
                    // up). Sleeping rather than spinning leaves the core to the reader on a small
                    // machine: the writer needs well under a core at 1M updates per second.
                    let due = Duration::from_nanos(updates * 1_000_000_000 / rate);
                    let now = start.elapsed();
                    if now < due {
                        thread::sleep(due - now);
                    }
                }
            }
            pass += 1;
        }
        let seconds = start.elapsed().as_secs_f64();
        // Leave every churned route in the table for the next run.
        for &(prefix, next_hop) in &prefixes {
            if writer.get(prefix).is_none() {
                writer.insert(prefix, next_hop).unwrap();
            }
        }
        (updates, seconds, writer)
    })
}

/// The churned subset: every 100th route, longest first so that removals restore covering routes
/// of every length.
fn churn_subset(routes: &[(Prefix, NextHopId)]) -> Vec<(Prefix, NextHopId)> {
    routes
        .iter()
        .step_by(routes.len() / CHURN_PREFIXES)
        .copied()
        .collect()
}

/// Burst lookups on the criterion thread while a writer thread churns 10k prefixes at 1M
/// updates per second. The reader reports a quiescent state after every burst.
fn bench_concurrent(c: &mut Criterion) {
    let routes = &fixture().routes;
    let writer = build(LpmConfig::root24(TBL8_GROUPS_24), routes);
    let lpm = Arc::clone(writer.lpm());
    let reader = writer.qsbr().register().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let churn = spawn_churn(
        writer,
        churn_subset(routes),
        CHURN_UPDATES_PER_S,
        Arc::clone(&stop),
    );
    let mut group = c.benchmark_group("concurrent");
    group.throughput(Throughput::Elements(BURST as u64));
    let mut cursor = Cursor::new(&fixture().random, BURST);
    group.bench_function("root24/random/burst32_under_1m_updates_per_s", |b| {
        b.iter(|| {
            cursor.burst(&lpm);
            reader.quiescent();
        })
    });
    group.finish();
    stop.store(true, Ordering::Relaxed);
    let (updates, seconds, _) = churn.join().unwrap();
    println!(
        "concurrent: writer applied {updates} updates in {seconds:.2} s = {:.0} updates/s",
        updates as f64 / seconds
    );
}

/// Nanoseconds the calling thread has run on a CPU (Linux scheduler statistics), if available.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Nanoseconds per lookup of one pass over `addrs` in chunks of `chunk`.
fn time_lookups(lpm: &Lpm, addrs: &[u32], chunk: usize, singles: bool) -> f64 {
    let mut cursor = Cursor::new(addrs, chunk);
    let calls = addrs.len() / chunk;
    let start = Instant::now();
    for _ in 0..calls {
        if singles {
            cursor.singles(lpm);
        } else {
            cursor.burst(lpm);
        }
    }
    start.elapsed().as_secs_f64() * 1e9 / addrs.len() as f64
}

/// The summary: cycles per lookup (medians of interleaved rounds), bulk update times, single
/// update latency, and the lookup rate with and without a 1M/s writer.
fn summary() {
    const VISITS: usize = 3;
    const PASSES_PER_VISIT: usize = 4;
    let ghz = tsc_hz() / 1e9;
    let fixture = fixture();
    println!(
        "\n== LPM summary: {ROUTES} routes, TSC {ghz:.3} GHz, 4 KiB pages; lookups: medians of \
         {VISITS} visits x {PASSES_PER_VISIT} passes over {ADDRS} destinations =="
    );

    // Construction: zeroed allocation, pages untouched.
    let start = Instant::now();
    let empty = LpmWriter::new(LpmConfig::root24(TBL8_GROUPS_24), Arc::new(Qsbr::new(1))).unwrap();
    println!(
        "construct root24 + {TBL8_GROUPS_24} tbl8 groups ({} MiB): {:.1} us",
        LpmConfig::root24(TBL8_GROUPS_24).memory_bytes() >> 20,
        start.elapsed().as_secs_f64() * 1e6
    );
    drop(empty);

    let tables = [(table24(), "root24"), (table16(), "root16")];
    for (table, name) in tables {
        println!(
            "{name}: {} routes, {} tbl8 groups in use",
            table.len(),
            table.tbl8_in_use()
        );
    }
    struct Case<'a> {
        table: &'static LpmWriter,
        name: &'static str,
        dist: &'static str,
        addrs: &'a [u32],
        chunk: usize,
        singles: bool,
    }
    let cases: Vec<Case> = tables
        .iter()
        .flat_map(|&(table, name)| {
            let case = |dist, addrs: &'static [u32], chunk, singles| Case {
                table,
                name,
                dist,
                addrs,
                chunk,
                singles,
            };
            [
                case("random", &fixture.random, BURST, false),
                case("random", &fixture.random, BATCH, false),
                case("random", &fixture.random, BURST, true),
                case("in_routes", &fixture.in_routes, BURST, false),
                case("in_routes", &fixture.in_routes, BATCH, false),
            ]
        })
        .collect();
    // Steady state, as DPDK's perf test measures: each case repeats passes over one table (the
    // first pass of a visit warms the caches and is not counted); the cases take turns, so that
    // drift on a shared machine spreads over all of them.
    let mut samples = vec![Vec::new(); cases.len()];
    for _ in 0..VISITS {
        for (case, samples) in cases.iter().zip(&mut samples) {
            for pass in 0..=PASSES_PER_VISIT {
                let lpm = case.table.lpm();
                let ns = time_lookups(lpm, case.addrs, case.chunk, case.singles);
                if pass > 0 {
                    samples.push(ns);
                }
            }
        }
    }
    for (case, samples) in cases.iter().zip(samples) {
        let ns = median(samples);
        let kind = if case.singles {
            "lookup() x"
        } else {
            "lookup_burst"
        };
        println!(
            "lookup {} {:9} {kind:12} {:5}: {ns:6.2} ns = {:5.1} cycles/lookup",
            case.name,
            case.dist,
            case.chunk,
            ns * ghz
        );
    }

    // Bulk insert and remove of all routes.
    let mut inserts = Vec::new();
    let mut removes = Vec::new();
    for _ in 0..3 {
        let mut writer =
            LpmWriter::new(LpmConfig::root24(TBL8_GROUPS_24), Arc::new(Qsbr::new(1))).unwrap();
        let start = Instant::now();
        for &(prefix, next_hop) in &fixture.routes {
            writer.insert(prefix, next_hop).unwrap();
        }
        inserts.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        for &(prefix, _) in &fixture.routes {
            writer.remove(prefix).unwrap();
        }
        removes.push(start.elapsed().as_secs_f64());
        writer.reclaim();
        assert_eq!(writer.tbl8_in_use(), 0);
    }
    println!(
        "insert {ROUTES} routes: {:.3} s; remove them all: {:.3} s (medians of 3)",
        median(inserts),
        median(removes)
    );

    // Lookup rate alone and under a 1M/s writer, interleaved.
    let writer = build(LpmConfig::root24(TBL8_GROUPS_24), &fixture.routes);
    let lpm = Arc::clone(writer.lpm());
    let reader = writer.qsbr().register().unwrap();
    let subset = churn_subset(&fixture.routes);
    let mut writer = Some(writer);
    // Wall time, and the reader thread's on-CPU time (from the scheduler's accounting): on a
    // small shared machine other processes take the core from the reader now and then, which
    // the wall time counts and the on-CPU time does not; the writer's own effect on the reader
    // (cache lines it writes, cache it evicts) shows in both.
    let (mut alone, mut loaded) = (Vec::new(), Vec::new());
    let (mut alone_cpu, mut loaded_cpu) = (Vec::new(), Vec::new());
    let mut achieved = Vec::new();
    for _ in 0..5 {
        let run = |wall: &mut Vec<f64>, on_cpu: &mut Vec<f64>| {
            for _ in 0..8 {
                let mut cursor = Cursor::new(&fixture.random, BURST);
                let cpu_start = thread_cpu_ns();
                let start = Instant::now();
                for _ in 0..ADDRS / BURST {
                    cursor.burst(&lpm);
                    reader.quiescent();
                }
                wall.push(start.elapsed().as_secs_f64() * 1e9 / ADDRS as f64);
                if let (Some(end), Some(start)) = (thread_cpu_ns(), cpu_start) {
                    on_cpu.push((end - start) as f64 / ADDRS as f64);
                }
            }
        };
        run(&mut alone, &mut alone_cpu);
        let stop = Arc::new(AtomicBool::new(false));
        let churn = spawn_churn(
            writer.take().unwrap(),
            subset.clone(),
            CHURN_UPDATES_PER_S,
            Arc::clone(&stop),
        );
        // Let the writer reach its pace.
        thread::sleep(Duration::from_millis(20));
        run(&mut loaded, &mut loaded_cpu);
        stop.store(true, Ordering::Relaxed);
        let (updates, seconds, back) = churn.join().unwrap();
        achieved.push(updates as f64 / seconds);
        writer = Some(back);
    }
    let (alone, loaded) = (median(alone), median(loaded));
    println!(
        "lookup root24 random burst32 + quiescent, wall: alone {alone:.2} ns = {:.1} cycles; \
         with a writer at {CHURN_UPDATES_PER_S} updates/s: {loaded:.2} ns = {:.1} cycles (ratio {:.2}); \
         writer achieved {:.0} updates/s",
        alone * ghz,
        loaded * ghz,
        loaded / alone,
        median(achieved)
    );
    if !alone_cpu.is_empty() && !loaded_cpu.is_empty() {
        let (alone, loaded) = (median(alone_cpu), median(loaded_cpu));
        println!(
            "  same, reader on-CPU time: alone {alone:.2} ns = {:.1} cycles; with the writer \
             {loaded:.2} ns = {:.1} cycles (ratio {:.2})",
            alone * ghz,
            loaded * ghz,
            loaded / alone
        );
    }
    drop(reader);

    // Single-update latency on the 1M table.
    let mut writer = writer.unwrap();
    let next_hop = NextHopId::new(1).unwrap();
    for len in [16u8, 20, 24, 25, 32] {
        let prefixes = absent_prefixes(&writer, len, 2000);
        let (mut insert_us, mut remove_us) = (Vec::new(), Vec::new());
        for &prefix in &prefixes {
            let start = Instant::now();
            writer.insert(prefix, next_hop).unwrap();
            insert_us.push(start.elapsed().as_secs_f64() * 1e6);
            let start = Instant::now();
            writer.remove(prefix).unwrap();
            remove_us.push(start.elapsed().as_secs_f64() * 1e6);
        }
        println!(
            "update latency on the 1M table, new /{len}: insert {:.2} us, remove {:.2} us (medians of {})",
            median(insert_us),
            median(remove_us),
            prefixes.len()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let summary_only = std::env::var_os("LPM_BENCH_SUMMARY_ONLY").is_some();
    let testing = args.iter().any(|a| a == "--test" || a == "--list");
    let filtered = args.iter().skip(1).any(|a| !a.starts_with('-'));
    if !summary_only {
        let mut criterion = Criterion::default().configure_from_args();
        bench_lookup(&mut criterion);
        bench_bulk_updates(&mut criterion);
        bench_update_latency(&mut criterion);
        bench_concurrent(&mut criterion);
        criterion.final_summary();
    }
    if summary_only || !(testing || filtered) {
        summary();
    }
}
