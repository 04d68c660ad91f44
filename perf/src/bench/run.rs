//! The run: for every block start the devices once (each frozen while another is measured),
//! then measure them in interleaved rounds, each device with the same generator and settings.
//! A block's generator is `dvr-pktgen` (one `--serve` session per device: a search, or the
//! maximum-forwarding-rate trial, then the latency ladder) or testpmd's flowgen (`tgen`: the
//! maximum-forwarding-rate trial only).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::dut::{self, Dut, DutKind, DutStart, Placement, Programs};
use super::machine::{self, Machine};
use super::plan::{BlockPlan, GenKind, Method, Plan};
use super::proc::{self, Pipes, Proc};
use super::results::{
    summarise, BlockResult, DutInstance, DutRun, MfrRun, RoundResult, RunResults, SCHEMA,
};
use super::{tgen, topo};
use crate::mfr::{rotated, RateFigures};
use crate::report::RunReport;
use crate::routes;
use crate::sched::Watch;

/// Pause after resuming a device before its generator starts sending.
const SETTLE: Duration = Duration::from_millis(100);
/// Free 2 MiB hugepages a block needs: four generators (about 40 MiB each), two dvrd (128 MiB
/// each, reserved at start), testpmd (about 40 MiB) and l3fwd (about 160 MiB with a million
/// routes), with some margin.
const HUGEPAGES_NEEDED: u64 = 450;
/// How long the machine's background load is sampled before each round.
const BACKGROUND_WINDOW: Duration = Duration::from_secs(1);
/// Background load (share of all CPUs) above which a round is announced as noisy.
const BACKGROUND_BUSY_WARN: f64 = 0.05;
/// How long a generator may take to start and see its links up.
const GEN_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// coreutils' `stdbuf`, which makes testpmd's standard output line-buffered on a pipe.
const STDBUF: &str = "/usr/bin/stdbuf";
/// How long a device may take to exit on SIGINT.
const EXIT_GRACE: Duration = Duration::from_secs(30);

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// What to measure.
    pub plan: Plan,
    /// The programs.
    pub programs: Programs,
    /// CPU placement.
    pub placement: Placement,
    /// Use hugepages.
    pub hugepages: bool,
    /// Raise the priority of the benchmark's processes.
    pub boost: bool,
    /// Logs, configurations, raw reports.
    pub work_dir: PathBuf,
    /// The command line, for the record.
    pub command: String,
    /// UTC start time.
    pub started: String,
}

fn say(msg: &str) {
    eprintln!("dvr-bench: {msg}");
}

/// Runs the plan.
pub fn run(opts: &RunOptions) -> io::Result<RunResults> {
    let began = Instant::now();
    std::fs::create_dir_all(&opts.work_dir)?;
    // dvrd runs from a copy with its own name, out of reach of `pkill -x dvrd` in other
    // people's test clean-ups on a shared machine.
    let private_dvrd = opts.work_dir.join("dvrd-bench");
    std::fs::copy(&opts.programs.dvrd, &private_dvrd)?;
    let mut opts = opts.clone();
    opts.programs.dvrd = private_dvrd;
    let opts = &opts;
    std::fs::create_dir_all(topo::SOCKET_DIR)?;
    let mut machine = Machine::collect(opts.hugepages, opts.boost);
    if machine.load_start > 0.5 {
        say(&format!(
            "load average {:.2}: other work is running; figures will be noisy (the ratios of the \
             interleaved rounds still compare like with like)",
            machine.load_start
        ));
    }
    let p = opts.placement;
    say(&format!(
        "placement: device worker and main lcore on CPUs {} and {}, generator on CPU {}",
        p.worker_core, p.main_core, p.generator_core
    ));
    if p.generator_core == p.worker_core || p.generator_core == p.main_core {
        say("the generator shares a CPU with the device: its figures measure both together");
    }
    for rt in &machine.realtime_processes {
        say(&format!(
            "real-time process {rt}: it preempts the benchmark on its CPUs whatever the \
             priority; figures measured beside it say little"
        ));
    }
    let mut blocks = Vec::new();
    for (i, block) in opts.plan.blocks.iter().enumerate() {
        let dir = opts.work_dir.join(format!(
            "block{}-{}B-{}routes",
            i + 1,
            block.frame_size,
            block.routes
        ));
        std::fs::create_dir_all(&dir)?;
        say(&format!(
            "block {}/{}: frame size {}, {} routes",
            i + 1,
            opts.plan.blocks.len(),
            block.frame_size,
            block.routes
        ));
        blocks.push(run_block(opts, block, &dir)?);
    }
    machine.load_end = machine::load_average();
    let summary = blocks.iter().map(summarise).collect();
    Ok(RunResults {
        schema: SCHEMA,
        started: opts.started.clone(),
        duration_s: began.elapsed().as_secs_f64(),
        command: opts.command.clone(),
        machine,
        placement: opts.placement,
        plan: opts.plan.clone(),
        programs: opts.programs.clone(),
        work_dir: opts.work_dir.display().to_string(),
        blocks,
        summary,
    })
}

/// A device under test with its own generator, connected for the whole block. Dropped in
/// field order: the device stops first, then the generator sees the end of its stdin.
struct Station {
    dut: Dut,
    pipes: Pipes,
    gen: Proc,
    generator: GenKind,
    command: Vec<String>,
}

/// Starts the device, then its generator (connected once for the whole block: `dvr-pktgen`
/// in `--serve` mode, testpmd interactive), then freezes the device.
fn start_station(
    opts: &RunOptions,
    block: &BlockPlan,
    start: &DutStart<'_>,
) -> io::Result<Station> {
    let dut = dut::start(start)?;
    let kind = dut.kind;
    if block.generator == GenKind::TestpmdFlowgen && kind == DutKind::DvrdVxlan {
        resolve_underlay(opts, start.dir, kind)?;
    }
    let stdbuf = PathBuf::from(STDBUF);
    let (program, args, log) = match block.generator {
        GenKind::Pktgen => (
            &opts.programs.pktgen,
            pktgen_args(opts, block, kind, dut.proc.pid()),
            start.dir.join(format!("pktgen-{kind}.log")),
        ),
        GenKind::TestpmdFlowgen => {
            let bytes = tgen::frame_bytes(&block.frame_size).ok_or_else(|| {
                io::Error::other(format!("testpmd sends no {} frames", block.frame_size))
            })?;
            let core = opts.placement.generator_core;
            // Line-buffered: testpmd's answers must reach the harness as they are printed.
            let mut args = vec![
                "-oL".to_owned(),
                opts.programs.testpmd.display().to_string(),
            ];
            args.extend(tgen::args(
                kind.name(),
                core,
                opts.hugepages,
                opts.plan.flows,
                bytes,
            ));
            (&stdbuf, args, tgen::log_path(start.dir, kind.name()))
        }
    };
    let name = block.generator.name();
    let (gen, pipes) = proc::spawn_piped(name, program, &args, &log, opts.boost)?;
    let mut command = vec![program.display().to_string()];
    command.extend(args);
    let mut station = Station {
        dut,
        pipes,
        gen,
        generator: block.generator,
        command,
    };
    let connected = match block.generator {
        GenKind::Pktgen => match station.pipes.lines.recv_timeout(GEN_READY_TIMEOUT) {
            Ok(line) if line == "ready" => Ok(()),
            other => Err(format!("{other:?}")),
        },
        GenKind::TestpmdFlowgen => {
            tgen::set_up(&mut station.pipes, GEN_READY_TIMEOUT).map_err(|e| e.to_string())
        }
    };
    if let Err(e) = connected {
        return Err(io::Error::other(format!(
            "{name} for {kind} did not connect ({e}; see {})",
            log.display()
        )));
    }
    station.dut.proc.pause()?;
    Ok(station)
}

/// flowgen answers no ARP, so dvrd on the VXLAN path could never resolve the peer's VTEP:
/// before testpmd connects, a short dvr-pktgen probe (toward [`routes::SMALL_ROUTE`], which
/// that device's configuration has for this alone) lets it resolve the VTEP, which then stays
/// reachable for the whole block (see [`write_block_files`]).
fn resolve_underlay(opts: &RunOptions, dir: &Path, kind: DutKind) -> io::Result<()> {
    let name = kind.name();
    let mut args: Vec<String> = [
        ("--port", topo::client_vdev(name, 0, opts.hugepages)),
        ("--port", topo::client_vdev(name, 1, opts.hugepages)),
        ("--dst-mac", tgen::FLOWGEN_DST_MAC.into()),
        ("--src-ip", topo::SRC_IP.into()),
        ("--flows", "16".into()),
        ("--rate", "1k".into()),
        ("--packets", "10".into()),
        ("--warmup-s", "0".into()),
        ("--lcore", opts.placement.generator_core.to_string()),
        ("--file-prefix", format!("bench-arp-{name}")),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .collect();
    if !opts.hugepages {
        args.push("--no-huge".into());
    }
    let log = dir.join(format!("arp-probe-{name}.log"));
    let mut probe = proc::spawn("arp probe", &opts.programs.pktgen, &args, &log, opts.boost)?;
    match probe.wait_exit(GEN_READY_TIMEOUT)? {
        Some(status) if status.success() => Ok(()),
        other => Err(io::Error::other(format!(
            "the VTEP of {name} was not resolved ({other:?}; see {})",
            log.display()
        ))),
    }
}

fn run_block(opts: &RunOptions, block: &BlockPlan, dir: &Path) -> io::Result<BlockResult> {
    let opts = &block_options(opts);
    let files = write_block_files(opts, block, dir)?;
    // Start the devices one after the other (route loading must not compete with a running
    // device), each frozen once its generator is connected.
    let mut stations: Vec<(DutInstance, Option<Station>)> = block
        .duts
        .iter()
        .map(|&kind| start_in_block(opts, block, dir, &files, kind))
        .collect();
    let rounds = (0..opts.plan.rounds)
        .map(|round| run_round(opts, block, dir, round, &mut stations))
        .collect();
    let duts = stations
        .into_iter()
        .map(|(inst, st)| match st {
            Some(st) => stop_station(inst, st),
            None => inst,
        })
        .collect();
    Ok(BlockResult {
        frame_size: block.frame_size.clone(),
        routes: block.routes,
        generator: block.generator,
        hugepages: opts.hugepages,
        duts,
        rounds,
    })
}

/// The options of a block: hugepages are shared with whatever else runs on the machine, so
/// all the processes of a block use them, or none does.
fn block_options(opts: &RunOptions) -> RunOptions {
    let free = machine::hugepages_free();
    let hugepages = opts.hugepages && free >= HUGEPAGES_NEEDED;
    if opts.hugepages && !hugepages {
        say(&format!(
            "  only {free} free hugepages ({HUGEPAGES_NEEDED} wanted): this block runs without"
        ));
    }
    RunOptions {
        hugepages,
        ..opts.clone()
    }
}

/// The route table of l3fwd for a block (dvrd's configurations sit beside it, one per device).
struct BlockFiles {
    l3fwd_rules: PathBuf,
}

/// The routes of a block cover the generator's destinations: `dvr-pktgen` picks them inside
/// the route set, flowgen's are fixed (and its frames go to a fixed MAC).
fn write_block_files(opts: &RunOptions, block: &BlockPlan, dir: &Path) -> io::Result<BlockFiles> {
    let (route_set, ingress_mac) = match block.generator {
        GenKind::Pktgen => (routes::route_set(block.routes), None),
        GenKind::TestpmdFlowgen => (
            tgen::covering_routes(block.routes),
            Some(tgen::FLOWGEN_DST_MAC),
        ),
    };
    let l3fwd_rules = dir.join("l3fwd-rules-v4.cfg");
    std::fs::write(&l3fwd_rules, routes::l3fwd_rules(&route_set, 1))?;
    dut::write_dvrd_configs(dir, &route_set, opts.hugepages, opts.placement, ingress_mac)?;
    if block.generator == GenKind::TestpmdFlowgen {
        // The VXLAN path's probe route, and its VTEP reachable for the block once resolved.
        let mut probed = route_set;
        probed.push(routes::SMALL_ROUTE.parse().expect("valid prefix"));
        let p = opts.placement;
        let name = DutKind::DvrdVxlan.name();
        let config = topo::dvrd_config(
            name,
            topo::DvrdPath::Remote,
            &probed,
            opts.hugepages,
            p.worker_core,
            p.main_core,
        );
        let config = topo::with_ingress_mac(&config, tgen::FLOWGEN_DST_MAC)
            + "\n[neighbor]\nreachable_ms = 86400000\n";
        std::fs::write(dir.join(format!("{name}.toml")), config)?;
    }
    Ok(BlockFiles { l3fwd_rules })
}

/// Starts one device and its generator for the block; the instance records why not.
fn start_in_block(
    opts: &RunOptions,
    block: &BlockPlan,
    dir: &Path,
    files: &BlockFiles,
    kind: DutKind,
) -> (DutInstance, Option<Station>) {
    let start = DutStart {
        kind,
        programs: &opts.programs,
        dir,
        l3fwd_rules: &files.l3fwd_rules,
        placement: opts.placement,
        hugepages: opts.hugepages,
        boost: opts.boost,
        routes: block.routes,
    };
    let log = dir.join(format!("{kind}.log")).display().to_string();
    let mut inst = DutInstance {
        kind,
        ok: true,
        error: None,
        ready_s: 0.0,
        command: Vec::new(),
        log,
        workers: None,
        exit: String::new(),
    };
    match start_station(opts, block, &start) {
        Ok(st) => {
            say(&format!("  {kind} ready in {:.1} s", st.dut.ready_s));
            inst.ready_s = st.dut.ready_s;
            inst.command = st.dut.command.clone();
            (inst, Some(st))
        }
        Err(e) => {
            say(&format!("  {kind} did not start: {e}"));
            inst.ok = false;
            inst.error = Some(e.to_string());
            (inst, None)
        }
    }
}

/// Round `round` (from 0): every device once, in an order rotated every round so that no
/// device is always first or last.
fn run_round(
    opts: &RunOptions,
    block: &BlockPlan,
    dir: &Path,
    round: usize,
    stations: &mut [(DutInstance, Option<Station>)],
) -> RoundResult {
    let order = rotated(&block.duts, round);
    let background_busy = machine::busy_share(BACKGROUND_WINDOW);
    if background_busy > BACKGROUND_BUSY_WARN {
        say(&format!(
            "  round {}: other work keeps {:.0}% of the CPUs busy: expect disturbed trials",
            round + 1,
            background_busy * 100.0
        ));
    }
    let mut runs = Vec::new();
    for &kind in &order {
        if let Some((inst, slot)) = stations.iter_mut().find(|(i, _)| i.kind == kind) {
            runs.push(measure_in_round(opts, dir, round + 1, inst, slot));
        }
    }
    RoundResult {
        round: round + 1,
        order,
        background_busy,
        runs,
    }
}

/// Measures one station in round `round` (from 1), and retires it if the device or its
/// generator is gone.
fn measure_in_round(
    opts: &RunOptions,
    dir: &Path,
    round: usize,
    inst: &mut DutInstance,
    slot: &mut Option<Station>,
) -> DutRun {
    let kind = inst.kind;
    let Some(st) = slot.as_mut() else {
        return DutRun::failed(kind, inst.error.clone().unwrap_or_default(), Vec::new());
    };
    let run = measure(opts, dir, round, st);
    match (&run.error, &run.mfr) {
        (Some(e), _) => say(&format!("  round {round} {kind}: failed: {e}")),
        (None, Some(m)) => say(&format!(
            "  round {round} {kind}: MFR {:.3} Mpps (per second {:.3}-{:.3}), sent {:.3} Mpps",
            m.forwarded.median_pps / 1e6,
            m.forwarded.min_pps / 1e6,
            m.forwarded.max_pps / 1e6,
            m.offered.median_pps / 1e6,
        )),
        (None, None) => say(&format!(
            "  round {round} {kind}: PDR {:.3} Mpps, NDR {:.3} Mpps{}",
            run.pdr_pps / 1e6,
            run.ndr_pps / 1e6,
            if run.pdr_generator_limited {
                " (generator-bound)"
            } else {
                ""
            }
        )),
    }
    if !st.dut.proc.alive() || !st.gen.alive() {
        inst.ok = false;
        inst.error = Some(format!(
            "{} exited during round {round} (see {})",
            if st.dut.proc.alive() {
                "its generator"
            } else {
                "it"
            },
            inst.log
        ));
        say(&format!(
            "  {kind} is gone: {}",
            inst.error.as_deref().unwrap_or("")
        ));
        *slot = None;
    }
    run
}

/// Stops a station at the end of its block: the device first (it stops its workers, then its
/// ports), then the generator, so that no device sees its peer leave while it forwards.
fn stop_station(mut inst: DutInstance, mut st: Station) -> DutInstance {
    inst.exit = match st.dut.proc.stop(EXIT_GRACE) {
        Ok(Some(s)) => s.to_string(),
        Ok(None) => "killed after SIGINT timed out".into(),
        Err(e) => format!("stop failed: {e}"),
    };
    inst.workers = st.dut.summary.as_deref().and_then(dut::read_summary);
    let _ = writeln!(st.pipes.stdin, "quit");
    drop(st.pipes);
    match st.gen.wait_exit(EXIT_GRACE) {
        Ok(Some(s)) if s.code() == Some(3) => {
            inst.error = Some("the generator leaked mbufs (exit status 3)".into());
        }
        Ok(Some(_)) => {}
        _ => {
            let _ = st.gen.stop(Duration::from_secs(5));
        }
    }
    inst
}

/// The generator's arguments against `kind` (a `--serve` session per round).
fn pktgen_args(opts: &RunOptions, block: &BlockPlan, kind: DutKind, pid: u32) -> Vec<String> {
    let p = &opts.plan;
    let name = kind.name();
    let ports = [
        ("--port", topo::client_vdev(name, 0, opts.hugepages)),
        ("--port", topo::client_vdev(name, 1, opts.hugepages)),
        ("--dst-mac", topo::GW_BLUE_MAC.into()),
        ("--src-ip", topo::SRC_IP.into()),
        ("--size", block.frame_size.clone()),
        ("--routes", block.routes.to_string()),
        ("--flows", p.flows.to_string()),
    ];
    let search = [
        ("--rate-max", format!("{}", p.rate_max_pps)),
        ("--resolution", p.resolution.to_string()),
        ("--pdr-loss", p.pdr_loss_ratio.to_string()),
        ("--trials-max", p.trials_max.to_string()),
    ];
    let trials = [
        ("--trial-s", p.trial_s.to_string()),
        ("--warmup-s", p.warmup_s.to_string()),
        ("--retries", p.retries.to_string()),
        ("--lag-limit-us", p.lag_limit_us.to_string()),
        ("--wait-limit-us", p.wait_limit_us.to_string()),
        ("--watch-pid", pid.to_string()),
        ("--watch-cpu", opts.placement.worker_core.to_string()),
        ("--lcore", opts.placement.generator_core.to_string()),
        ("--file-prefix", format!("bench-pktgen-{name}")),
    ];
    let options = |list: &[(&str, String)]| -> Vec<String> {
        list.iter()
            .flat_map(|(flag, value)| [(*flag).to_owned(), value.clone()])
            .collect()
    };
    let mut a = vec!["--serve".to_owned()];
    a.extend(options(&ports));
    match p.method {
        Method::Pdr => {
            a.push("--search".into());
            a.extend(options(&search));
        }
        Method::Mfr => a.push("--mfr".into()),
    }
    a.extend(options(&trials));
    if !p.ladder.is_empty() {
        let ladder: Vec<String> = p.ladder.iter().map(f64::to_string).collect();
        a.extend(options(&[
            ("--ladder", ladder.join(",")),
            ("--ladder-s", p.ladder_s.to_string()),
        ]));
    }
    if !opts.hugepages {
        a.push("--no-huge".into());
    }
    a
}

/// Measures one device once with its block's generator.
fn measure(opts: &RunOptions, dir: &Path, round: usize, st: &mut Station) -> DutRun {
    match st.generator {
        GenKind::Pktgen => measure_pktgen(opts, dir, round, st),
        GenKind::TestpmdFlowgen => measure_testpmd(opts, st),
    }
}

/// Resumes the device, runs testpmd's flowgen for a warm-up and the trial, freezes the
/// device again. The CPU waits of the device's worker and of testpmd come from `/proc`.
fn measure_testpmd(opts: &RunOptions, st: &mut Station) -> DutRun {
    let kind = st.dut.kind;
    let command = st.command.clone();
    if let Err(e) = st.dut.proc.resume() {
        return DutRun::failed(kind, format!("resume: {e}"), command);
    }
    sleep(SETTLE);
    let p = &opts.plan;
    let device = Watch::new(&[(st.dut.proc.pid(), opts.placement.worker_core)]);
    let generator = Watch::new(&[(st.gen.pid(), opts.placement.generator_core)]);
    let (d0, g0) = (device.read(), generator.read());
    let measured = tgen::trial(
        &mut st.pipes,
        Duration::from_secs_f64(p.warmup_s),
        Duration::from_secs_f64(p.trial_s),
    );
    let (d1, g1) = (device.read(), generator.read());
    let _ = st.dut.proc.pause();
    let trial = match measured {
        Ok(t) => t,
        Err(e) => return DutRun::failed(kind, e.to_string(), command),
    };
    let device_wait_us = d1.since(d0).device_ns as f64 / 1e3;
    let generator_wait_us = g1.since(g0).device_ns as f64 / 1e3;
    let mfr = MfrRun {
        forwarded: RateFigures::of_samples(&trial.rx),
        offered: RateFigures::of_samples(&trial.tx),
        duration_s: trial.duration_s,
        device_wait_us,
        generator_wait_us,
        disturbed: device_wait_us + generator_wait_us > p.wait_limit_us as f64,
    };
    DutRun {
        ok: true,
        error: None,
        trials: 1,
        trials_disturbed: usize::from(mfr.disturbed),
        mfr: Some(mfr),
        report: st.gen.log.display().to_string(),
        ..DutRun::failed(kind, String::new(), command)
    }
}

/// Resumes the device, asks dvr-pktgen for a search (or the maximum-forwarding-rate trial)
/// and a ladder, freezes it again.
fn measure_pktgen(opts: &RunOptions, dir: &Path, round: usize, st: &mut Station) -> DutRun {
    let kind = st.dut.kind;
    let json = dir.join(format!("round{round}-{kind}.json"));
    let _ = std::fs::remove_file(&json);
    let command = st.command.clone();
    if let Err(e) = st.dut.proc.resume() {
        return DutRun::failed(kind, format!("resume: {e}"), command);
    }
    sleep(SETTLE);
    // The search and the ladder: bounded by the plan, with a wide margin.
    let p = &opts.plan;
    let limit = Duration::from_secs_f64(
        60.0 + p.warmup_s
            + (p.trials_max as f64 * (p.retries as f64 + 1.0) + p.ladder.len() as f64 + 2.0)
                * (p.trial_s.max(p.ladder_s) + 0.5),
    );
    let asked =
        writeln!(st.pipes.stdin, "{}", json.display()).and_then(|()| st.pipes.stdin.flush());
    let answer = asked.map_err(|e| e.to_string()).and_then(|()| {
        st.pipes
            .lines
            .recv_timeout(limit)
            .map_err(|e| format!("no answer from the generator within {limit:?} ({e})"))
    });
    let _ = st.dut.proc.pause();
    let report: Option<RunReport> = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    match (answer, report) {
        (Ok(_), Some(r)) => {
            let mut run = DutRun::from_report(kind, &r, json.display().to_string(), command);
            if let Some(e) = &r.error {
                run.ok = false;
                run.error = Some(e.clone());
            } else if r.mbufs_in_use_after > r.mbufs_driver_hold_max {
                run.error = Some(format!(
                    "generator: {} mbufs in use after the session",
                    r.mbufs_in_use_after
                ));
            }
            run
        }
        (Ok(line), None) => DutRun::failed(kind, format!("no report ({line})"), command),
        (Err(e), _) => DutRun::failed(kind, e, command),
    }
}
