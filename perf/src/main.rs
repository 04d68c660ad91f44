//! `dvr-pktgen`: an open-loop DPDK packet generator for measuring a router between two ports.
//!
//! ```text
//! dvr-pktgen --port net_memif0,role=client,socket=/run/dvr-bench/in.sock,id=0 \
//!            --port net_memif1,role=client,socket=/run/dvr-bench/out.sock,id=0 \
//!            --dst-mac fa:16:3e:00:01:01 --size 64 --routes 1000000 --flows 65536 \
//!            --search --trial-s 3 --ladder 0.1,0.5,0.9 --json out.json
//! ```
//!
//! Port 0 sends, the other ports receive (`--tx` changes that). Without `--search` or `--mfr`,
//! it runs `--trials` trials at `--rate`. `--mfr` runs one trial of `--trial-s` at full rate
//! (the maximum forwarding rate: the median of the per-second received rates), then the
//! `--ladder` at fractions of that rate. Exit status: 0, 1 on an error, 2 when `--fail-on-loss` is
//! given and a trial lost, reordered or duplicated a packet, 3 when mbufs leaked.
#![forbid(unsafe_code)]

use std::io::{BufRead, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use perf::frame::{self, FrameSize};
use perf::gen::{driver_hold_max, EalSetup, GenError, GenSetup, Generator};
use perf::mfr::RateFigures;
use perf::report::{LadderPoint, RunReport, SearchReport, TrialReport};
use perf::routes;
use perf::search::{Outcome, Search, SearchConfig, SearchResult};

/// Open-loop DPDK packet generator: fixed-rate trials or an NDR/PDR search, with loss,
/// reordering, duplicates and per-packet latency.
#[derive(Debug, Parser)]
#[command(name = "dvr-pktgen", version)]
struct Args {
    /// A port, as an EAL vdev argument (repeat; order gives the port numbers).
    #[arg(long = "port", required = true)]
    ports: Vec<String>,
    /// Ports that send (comma-separated numbers); every port receives.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    tx: Vec<usize>,
    /// Destination MAC of the frames, per TX port (comma-separated; the last one repeats).
    #[arg(long, value_delimiter = ',', default_value = "ff:ff:ff:ff:ff:ff")]
    dst_mac: Vec<String>,
    /// IPv4 source of the frames.
    #[arg(long, default_value = "10.0.1.5")]
    src_ip: Ipv4Addr,
    /// UDP destination port.
    #[arg(long, default_value_t = 5001)]
    dst_port: u16,
    /// Frame size in bytes, FCS included (64..1518), or `imix` (64/570/1518 as 7:4:1).
    #[arg(long, default_value = "64")]
    size: FrameSize,
    /// Routes the destinations are spread across: 1 is the single route 198.18.1.0/24,
    /// more are the benchmark's realistic route set of that size (same seed as the harness).
    #[arg(long, default_value_t = 1)]
    routes: usize,
    /// Number of flows (distinct destination and UDP source port), at most 65536.
    #[arg(long, default_value_t = 1024)]
    flows: usize,
    /// Offered rate of fixed-rate trials, packets per second (`10M`, `2.5M`, `500k` work).
    #[arg(long, value_parser = parse_rate, default_value = "1M")]
    rate: f64,
    /// Fixed-rate trials to run (without --search).
    #[arg(long, default_value_t = 1)]
    trials: usize,
    /// Length of every trial, seconds.
    #[arg(long, default_value_t = 3.0)]
    trial_s: f64,
    /// Fixed-rate trials only: send this many packets instead (sets the trial length).
    #[arg(long)]
    packets: Option<u64>,
    /// How long to keep receiving after the last packet was sent, milliseconds.
    #[arg(long, default_value_t = 50)]
    drain_ms: u64,
    /// Search for the NDR and the PDR instead of fixed-rate trials.
    #[arg(long)]
    search: bool,
    /// Measure the maximum forwarding rate instead: one trial of --trial-s at full rate (a
    /// full burst per pass, whatever the device takes), rated by the median of its
    /// per-second received rates; the --ladder is then run at fractions of that rate.
    #[arg(long, conflicts_with = "search")]
    mfr: bool,
    /// Highest rate of the search (its first trial).
    #[arg(long, value_parser = parse_rate, default_value = "40M")]
    rate_max: f64,
    /// Lowest rate of the search.
    #[arg(long, value_parser = parse_rate, default_value = "10k")]
    rate_min: f64,
    /// Search resolution: stop when the bracket is narrower than this fraction.
    #[arg(long, default_value_t = 0.02)]
    resolution: f64,
    /// Largest loss ratio of the PDR.
    #[arg(long, default_value_t = 0.005)]
    pdr_loss: f64,
    /// Most trials of the search.
    #[arg(long, default_value_t = 24)]
    trials_max: usize,
    /// Times a disturbed trial (the generator was held up, then caught up) is repeated.
    #[arg(long, default_value_t = 2)]
    retries: usize,
    /// Lag behind the schedule that makes a trial disturbed, microseconds.
    #[arg(long, default_value_t = 200)]
    lag_limit_us: u64,
    /// Watch the threads of this device-under-test process pinned to --watch-cpu: a trial in
    /// which they (or the generator) waited for a CPU longer than --wait-limit-us is disturbed.
    #[arg(long)]
    watch_pid: Vec<u32>,
    /// CPU of the device under test's worker (for --watch-pid).
    #[arg(long, default_value_t = 1)]
    watch_cpu: usize,
    /// CPU wait of the watched threads that makes a trial disturbed, microseconds.
    #[arg(long, default_value_t = 200)]
    wait_limit_us: u64,
    /// After the search: latency trials at these fractions of the PDR (comma-separated).
    #[arg(long, value_delimiter = ',')]
    ladder: Vec<f64>,
    /// Length of every ladder trial, seconds (default: --trial-s).
    #[arg(long)]
    ladder_s: Option<f64>,
    /// Warm-up before the first measured trial: seconds at 10% of --rate-max or --rate
    /// (results discarded).
    #[arg(long, default_value_t = 0.5)]
    warmup_s: f64,
    /// How long to wait for links, and for the first packet to come back, seconds.
    #[arg(long, default_value_t = 20.0)]
    ready_timeout_s: f64,
    /// CPU of the generator's lcore.
    #[arg(long, default_value_t = 0)]
    lcore: usize,
    /// Run EAL without hugepages (`--no-huge`).
    #[arg(long)]
    no_huge: bool,
    /// EAL memory without hugepages, MiB.
    #[arg(long, default_value_t = 512)]
    memory_mb: u32,
    /// EAL file prefix (default: dvr-pktgen-<pid>).
    #[arg(long)]
    file_prefix: Option<String>,
    /// More EAL arguments (repeat).
    #[arg(long = "eal", allow_hyphen_values = true)]
    eal_extra: Vec<String>,
    /// Mbufs in the pool.
    #[arg(long, default_value_t = 16383)]
    mbufs: u32,
    /// Descriptors per queue.
    #[arg(long, default_value_t = 1024)]
    ring_size: u16,
    /// Exit with status 2 when any trial lost, reordered or duplicated a packet.
    #[arg(long)]
    fail_on_loss: bool,
    /// Stay connected and measure once per line of stdin (see the harness); each line is the
    /// path of a JSON report to write.
    #[arg(long)]
    serve: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

/// Parses a rate: a number with an optional `k`, `M` or `G` suffix.
fn parse_rate(s: &str) -> Result<f64, String> {
    let (digits, scale) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('m' | 'M') => (&s[..s.len() - 1], 1e6),
        Some('g' | 'G') => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    match digits.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v * scale),
        _ => Err(format!("`{s}` is not a rate (e.g. 500k, 2.5M, 14880952)")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("dvr-pktgen: {err}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, GenError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| GenError::Setup(format!("signal handler: {e}")))?;
    }
    let setup = setup(args)?;
    let mut gen = Generator::start(&setup, Arc::clone(&stop))?;
    if args.serve {
        return serve(args, &setup, gen);
    }
    let mut report = new_report(args, &setup, &gen);
    let measured = session(args, &mut gen, &mut report);
    report.interrupted = gen.stopped();
    report.error = measured.as_ref().err().map(ToString::to_string);
    // Shut down cleanly whatever happened, then report.
    let in_use = gen.close()?;
    report.mbufs_in_use_at_exit = in_use;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    measured?;
    if let Some(code) = leak(in_use, &setup) {
        return Ok(code);
    }
    let all = report
        .trials
        .iter()
        .chain(report.search.iter().flat_map(|s| s.trials.iter()))
        .chain(report.ladder.iter().map(|p| &p.trial));
    let bad = all
        .filter(|t| t.lost + t.reordered + t.duplicated + t.late != 0)
        .count();
    if args.fail_on_loss && bad != 0 {
        eprintln!("dvr-pktgen: {bad} trials lost, reordered or duplicated packets");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn new_report(args: &Args, setup: &GenSetup, gen: &Generator) -> RunReport {
    RunReport {
        tool: "dvr-pktgen".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        dpdk: gen.dpdk_version().into(),
        tsc_hz: gen.tsc_hz(),
        command: std::env::args().collect(),
        frame_size: args.size.to_string(),
        frame_bytes_mean: args.size.mean_bytes(),
        flows: setup.flows.len(),
        routes: args.routes.max(1),
        ports: gen.port_reports(),
        ready_s: 0.0,
        trials: Vec::new(),
        search: None,
        ladder: Vec::new(),
        mfr: None,
        mbufs_in_use_after: 0,
        mbufs_in_use_at_exit: 0,
        mbufs_driver_hold_max: driver_hold_max(&setup.vdevs),
        interrupted: false,
        error: None,
    }
}

/// Waits for the device to forward, then measures.
fn session(args: &Args, gen: &mut Generator, report: &mut RunReport) -> Result<(), GenError> {
    let ready = gen.probe(Duration::from_secs_f64(args.ready_timeout_s))?;
    report.ready_s = ready.as_secs_f64();
    let measured = measure(args, gen, report);
    report.mbufs_in_use_after = gen.mbufs_in_use();
    measured
}

/// `--serve`: stays connected and measures once per line read from stdin (the line is the
/// path of the JSON report to write), answering `done PATH` on stdout; `quit` or the end of
/// stdin closes the ports and exits. Used by the harness so that a device under test never
/// sees its peer disconnect while it forwards.
fn serve(args: &Args, setup: &GenSetup, mut gen: Generator) -> Result<ExitCode, GenError> {
    let io_err = |e: std::io::Error| GenError::Setup(format!("stdin/stdout: {e}"));
    let mut out = std::io::stdout();
    writeln!(out, "ready").map_err(io_err)?;
    out.flush().map_err(io_err)?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(io_err)?;
        let path = line.trim();
        if path.is_empty() {
            continue;
        }
        if path == "quit" || gen.stopped() {
            break;
        }
        let mut report = new_report(args, setup, &gen);
        let measured = session(args, &mut gen, &mut report);
        report.interrupted = gen.stopped();
        report.error = measured.err().map(|e| e.to_string());
        write_json(&PathBuf::from(path), &report)?;
        writeln!(out, "done {path}").map_err(io_err)?;
        out.flush().map_err(io_err)?;
    }
    let in_use = gen.close()?;
    Ok(leak(in_use, setup).unwrap_or(ExitCode::SUCCESS))
}

/// Exit status 3 when more mbufs are in use after the ports closed than the driver may hold.
fn leak(in_use: u32, setup: &GenSetup) -> Option<ExitCode> {
    let hold = driver_hold_max(&setup.vdevs);
    if in_use > hold {
        eprintln!(
            "dvr-pktgen: {in_use} mbufs still in use at exit, the driver holds at most {hold} \
             (leak)"
        );
        return Some(ExitCode::from(3));
    }
    if in_use != 0 {
        eprintln!(
            "dvr-pktgen: {in_use} mbufs kept by the memif zero-copy driver after close (its \
             RX ring buffers; at most {hold}): not a leak of the generator"
        );
    }
    None
}

fn setup(args: &Args) -> Result<GenSetup, GenError> {
    let dst_macs = args
        .dst_mac
        .iter()
        .map(|m| frame::parse_mac(m).ok_or_else(|| GenError::Setup(format!("`{m}` is not a MAC"))))
        .collect::<Result<Vec<_>, _>>()?;
    let route_set = routes::route_set(args.routes.max(1));
    let flows = routes::flows_across(&route_set, args.flows);
    Ok(GenSetup {
        vdevs: args.ports.clone(),
        tx_ports: args.tx.clone(),
        dst_macs,
        src_ip: args.src_ip,
        dst_port: args.dst_port,
        frame_size: args.size.clone(),
        flows,
        eal: EalSetup {
            lcore: args.lcore,
            hugepages: !args.no_huge,
            memory_mb: args.memory_mb,
            file_prefix: args
                .file_prefix
                .clone()
                .unwrap_or_else(|| format!("dvr-pktgen-{}", std::process::id())),
            extra: args.eal_extra.clone(),
        },
        mbufs: args.mbufs,
        ring_size: args.ring_size,
        link_timeout: Duration::from_secs_f64(args.ready_timeout_s),
        lag_limit: Duration::from_micros(args.lag_limit_us),
        watch: args
            .watch_pid
            .iter()
            .map(|&p| (p, args.watch_cpu))
            .collect(),
        wait_limit: Duration::from_micros(args.wait_limit_us),
    })
}

fn drain(args: &Args) -> Duration {
    Duration::from_millis(args.drain_ms)
}

/// Runs a trial, repeating it while the generator was disturbed (up to `--retries` times).
/// Returns the trial that counts and how many were repeated.
fn trial_with_retries(
    args: &Args,
    gen: &mut Generator,
    rate: f64,
    duration: Duration,
) -> (TrialReport, usize) {
    let mut repeated = 0;
    loop {
        let t = gen.trial(rate, duration, drain(args));
        if !args.quiet {
            say(args, &trial_line(&t));
        }
        if !t.disturbed || t.generator_limited || repeated >= args.retries || gen.stopped() {
            return (t, repeated);
        }
        repeated += 1;
    }
}

/// The warm-up, then the fixed-rate trials or the search and its latency ladder.
fn measure(args: &Args, gen: &mut Generator, report: &mut RunReport) -> Result<(), GenError> {
    let warmup_rate = if args.search {
        args.rate_max * 0.1
    } else {
        args.rate * 0.1
    };
    if args.warmup_s > 0.0 {
        let warmup = Duration::from_secs_f64(args.warmup_s);
        if args.mfr {
            gen.trial_full_rate(warmup, drain(args));
        } else {
            gen.trial(warmup_rate, warmup, drain(args));
        }
    }
    let top_pps = if args.mfr {
        let t = gen.trial_full_rate(Duration::from_secs_f64(args.trial_s), drain(args));
        let rates = RateFigures::of_samples(&t.rx_samples);
        if !args.quiet {
            say(args, &mfr_line(&t, &rates));
        }
        report.mfr = Some(t);
        rates.median_pps
    } else if args.search {
        let search = search(args, gen)?;
        let pdr_pps = search.result.pdr_pps;
        report.search = Some(search);
        pdr_pps
    } else {
        return fixed_rate_trials(args, gen, report);
    };
    if gen.stopped() {
        return Err(GenError::Interrupted);
    }
    let ladder_len = Duration::from_secs_f64(args.ladder_s.unwrap_or(args.trial_s));
    for &fraction in &args.ladder {
        let rate = (top_pps * fraction).max(args.rate_min);
        let (t, _) = trial_with_retries(args, gen, rate, ladder_len);
        report.ladder.push(LadderPoint { fraction, trial: t });
        if gen.stopped() {
            return Err(GenError::Interrupted);
        }
    }
    Ok(())
}

/// `--trials` trials at `--rate`, of `--trial-s` or `--packets`.
fn fixed_rate_trials(
    args: &Args,
    gen: &mut Generator,
    report: &mut RunReport,
) -> Result<(), GenError> {
    let len = match args.packets {
        Some(n) => Duration::from_secs_f64(n as f64 / args.rate),
        None => Duration::from_secs_f64(args.trial_s),
    };
    for _ in 0..args.trials {
        let (t, _) = trial_with_retries(args, gen, args.rate, len);
        report.trials.push(t);
        if gen.stopped() {
            return Err(GenError::Interrupted);
        }
    }
    Ok(())
}

/// The NDR/PDR search, every trial repeated while disturbed.
fn search(args: &Args, gen: &mut Generator) -> Result<SearchReport, GenError> {
    let trial_len = Duration::from_secs_f64(args.trial_s);
    let config = SearchConfig {
        rate_min_pps: args.rate_min,
        rate_max_pps: args.rate_max,
        resolution: args.resolution,
        pdr_loss_ratio: args.pdr_loss,
        trials_max: args.trials_max,
    };
    let mut search = Search::new(config);
    let mut trials = Vec::new();
    let mut repeated_total = 0;
    while let Some(rate) = search.next_rate() {
        let (t, repeated) = trial_with_retries(args, gen, rate, trial_len);
        repeated_total += repeated;
        if gen.stopped() {
            return Err(GenError::Interrupted);
        }
        search.record(Outcome {
            rate_pps: t.rate_pps,
            loss_ratio: t.loss_ratio,
            rx_pps: t.rx_pps,
            generator_limited: t.generator_limited,
        });
        trials.push(t);
    }
    let result = search.result();
    if !args.quiet {
        say(args, &search_line(&result));
    }
    Ok(SearchReport {
        config,
        result,
        trials_repeated: repeated_total,
        trials,
    })
}

fn mfr_line(t: &TrialReport, rates: &RateFigures) -> String {
    format!(
        "MFR {:.3} Mpps (median of {} per-second rates, {:.3}-{:.3}); offered {:.3} Mpps, wait \
         dut {:.0} gen {:.0} us",
        rates.median_pps / 1e6,
        rates.per_second_pps.len(),
        rates.min_pps / 1e6,
        rates.max_pps / 1e6,
        t.rate_pps / 1e6,
        t.device_wait_ns as f64 / 1e3,
        t.generator_wait_ns as f64 / 1e3,
    )
}

fn search_line(result: &SearchResult) -> String {
    format!(
        "NDR {:.3} Mpps  PDR {:.3} Mpps ({} trials{}{})",
        result.ndr_pps / 1e6,
        result.pdr_pps / 1e6,
        result.trials,
        if result.converged {
            ""
        } else {
            ", not converged"
        },
        if result.pdr.generator_limited {
            ", PDR bounded by the generator"
        } else {
            ""
        },
    )
}

/// Prints a progress line: on stdout, or on stderr in `--serve` mode (stdout answers the
/// harness there).
fn say(args: &Args, line: &str) {
    if args.serve {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

fn trial_line(t: &TrialReport) -> String {
    let l = &t.latency;
    format!(
        "trial {:>3}: offered {:>8.3} Mpps  rx {:>8.3} Mpps  lost {:>9} ({:.4}%)  reord {} dup {}  \
         lat us p50 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}  lag max {:.0} us  wait dut {:.0} gen {:.0} us{}{}",
        t.trial,
        t.rate_pps / 1e6,
        t.rx_pps / 1e6,
        t.lost,
        t.loss_ratio * 100.0,
        t.reordered + t.late,
        t.duplicated,
        l.p50_ns / 1e3,
        l.p99_ns / 1e3,
        l.p999_ns / 1e3,
        l.max_ns / 1e3,
        t.tx_lag_max_ns / 1e3,
        t.device_wait_ns as f64 / 1e3,
        t.generator_wait_ns as f64 / 1e3,
        if t.disturbed { " DISTURBED" } else { "" },
        if t.generator_limited {
            " GENERATOR-LIMITED"
        } else {
            ""
        },
    )
}

fn write_json(path: &PathBuf, report: &RunReport) -> Result<(), GenError> {
    let text =
        serde_json::to_string_pretty(report).map_err(|e| GenError::Setup(format!("JSON: {e}")))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| GenError::Setup(format!("writing {}: {e}", path.display())))
}
