//! `dvr-fleet-bench`: convergence of the fleet on etcd (BENCHMARKS.md, "Fleet convergence").
//!
//! One etcd on loopback; N simulated hosts, each the fleet's real `Member` + `HostSync`
//! applying to a real router-core `ControlPlane`, all tasks of one Tokio runtime, each with its
//! own etcd connection and watch; M real `dvrd` processes with `[fleet]`. The fleet is loaded
//! in transactions of at most 1000 records (initial sync time), one more simulated host joins
//! (its sync time), then each change phase moves random ports between the hosts of their
//! router at a set rate, one put per revision, and measures per change how long each host
//! that needed it took to apply it.
//!
//! - [`etcd`]: the etcd process guard;
//! - [`topo`]: the fleet drawn from a seed, and its records;
//! - [`sim`]: a simulated host;
//! - [`real`]: a real dvrd, its config and `fleet show`;
//! - [`stats`]: histograms and spreads.

pub mod etcd;
pub mod real;
pub mod sim;
pub mod stats;
pub mod topo;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use dvr_fleet::status::{unix_us, LinkState};
use dvr_fleet::store::{Store, StoreConfig};
use dvr_fleet::{SharedReport, DEFAULT_PREFIX};
use serde_json::{json, Value};

use self::etcd::EtcdGuard;
use self::real::{cpu_s, rss_kib, thread_cpu_s, RealHost};
use self::sim::{AppliedLog, ApplyCounters, SimHost};
use self::stats::{spread, spread_line, spread_ms, Latency};
use self::topo::{HostKind, Rng, Shape, Topology};

/// Records per transaction of the initial load.
pub const LOAD_TXN_OPS: usize = 1000;
/// Name of the simulated hosts' runtime threads (their CPU time is summed by name).
const SIM_THREAD: &str = "fleet-sim";

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub sim_hosts: usize,
    pub real_hosts: usize,
    pub routers: usize,
    pub ports: usize,
    pub hosts_per_router: usize,
    pub real_routers_max: usize,
    /// Changes per second of each phase.
    pub rates: Vec<u32>,
    pub duration: Duration,
    pub seed: u64,
    /// Worker threads of the simulated hosts' runtime.
    pub threads: usize,
    /// etcd connections of the change writer (puts in flight at most).
    pub writers: usize,
    pub etcd: PathBuf,
    pub dvrd: Option<PathBuf>,
    pub dvrctl: Option<PathBuf>,
    /// How long a phase may take to settle after its last put.
    pub settle: Duration,
    /// Least time between two status writes of a simulated host (dvrd's: 1 s).
    pub status_interval: Duration,
}

/// A simulated host as the benchmark follows it.
struct SimView {
    name: String,
    report: SharedReport,
    log: AppliedLog,
}

fn applied_revision(r: &SharedReport) -> (i64, bool) {
    let g = r.lock().unwrap_or_else(PoisonError::into_inner);
    (g.applied_revision, g.state == LinkState::Connected)
}

fn counters(r: &SharedReport) -> [u64; 4] {
    let g = r.lock().unwrap_or_else(PoisonError::into_inner);
    [g.events, g.batches, g.changes, g.rejected_total as u64]
}

fn now_us() -> u64 {
    unix_us(SystemTime::now())
}

fn ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

/// A temporary folder, removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where each port is now, the ports of each router per host, and the order ports are moved
/// in (one shuffled permutation, cycled, so that a port is moved again only after all others:
/// never two puts of one key in flight).
struct PortState {
    host: Vec<usize>,
    on: HashMap<(usize, usize), u32>,
    order: Vec<usize>,
    cursor: usize,
}

/// One put of a change phase.
struct Job {
    key: String,
    value: String,
    router: usize,
    /// Neutron: the L3 agents notified (hosts of the router before or after the move).
    agents: u32,
    bytes: usize,
}

/// A put as it went.
#[derive(Clone, Copy, Debug)]
struct ChangeRec {
    router: usize,
    agents: u32,
    bytes: usize,
    send_us: u64,
    done_us: u64,
    revision: i64,
}

impl PortState {
    fn new(topo: &Topology, rng: &mut Rng) -> Self {
        let host: Vec<usize> = topo.ports.iter().map(|p| p.host).collect();
        let mut on = HashMap::new();
        for p in &topo.ports {
            *on.entry((topo.networks[p.network].router, p.host))
                .or_insert(0) += 1;
        }
        let mut order: Vec<usize> = (0..topo.ports.len()).collect();
        rng.shuffle(&mut order);
        PortState {
            host,
            on,
            order,
            cursor: 0,
        }
    }

    /// Moves the next port to another host of its router.
    fn next(&mut self, topo: &Topology, rng: &mut Rng, config_dir: &str) -> Job {
        // The same permutation again: a port is moved once every `ports` changes, never
        // twice in a row at a reshuffle (two puts of one key in flight could land swapped).
        if self.cursor == self.order.len() {
            self.cursor = 0;
        }
        let p = self.order[self.cursor];
        self.cursor += 1;
        let r = topo.networks[topo.ports[p].network].router;
        let hosts = &topo.routers[r].hosts;
        let old = self.host[p];
        let mut new = old;
        while new == old && hosts.len() > 1 {
            new = hosts[rng.below(hosts.len())];
        }
        self.host[p] = new;
        let mut agents = 0;
        for &h in hosts {
            let before = self.on.get(&(r, h)).copied().unwrap_or(0);
            let after = before + u32::from(h == new) - u32::from(h == old);
            if before > 0 || after > 0 {
                agents += 1;
            }
        }
        *self.on.entry((r, old)).or_insert(1) -= 1;
        *self.on.entry((r, new)).or_insert(0) += 1;
        let rec = topo.port_record(p, new);
        let key = format!("{config_dir}{}", rec.key().path());
        let value = rec.value();
        let bytes = key.len() + value.len();
        Job {
            key,
            value,
            router: r,
            agents,
            bytes,
        }
    }
}

/// Puts `n` changes at `rate` per second through `writers` connections.
async fn change_phase(
    store: &StoreConfig,
    jobs: Vec<Job>,
    rate: u32,
    writers: usize,
    stop: &AtomicBool,
) -> Result<Vec<ChangeRec>, String> {
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<ChangeRec>();
    let mut txs = Vec::new();
    for _ in 0..writers.max(1) {
        let mut st = Store::connect(store).await.map_err(|e| e.to_string())?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let done = done_tx.clone();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let send_us = now_us();
                let r = st
                    .write(&[], &[(job.key, job.value)], &[])
                    .await
                    .ok()
                    .flatten();
                let _ = done.send(ChangeRec {
                    router: job.router,
                    agents: job.agents,
                    bytes: job.bytes,
                    send_us,
                    done_us: now_us(),
                    revision: r.unwrap_or(0),
                });
            }
        });
        txs.push(tx);
    }
    drop(done_tx);
    let start = tokio::time::Instant::now();
    let period = 1.0 / f64::from(rate.max(1));
    for (k, job) in jobs.into_iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 * period)).await;
        let _ = txs[k % txs.len()].send(job);
    }
    drop(txs);
    let mut out = Vec::new();
    while let Some(rec) = done_rx.recv().await {
        out.push(rec);
    }
    out.sort_by_key(|r| r.revision);
    Ok(out)
}

/// Waits until every host applied `revision` (real hosts polled every 100 ms).
fn wait_applied(
    sims: &[SimView],
    reals: &Mutex<Vec<RealHost>>,
    revision: i64,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut last_real = Instant::now() - Duration::from_secs(1);
    let mut reals_done = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        let sims_done = sims
            .iter()
            .all(|s| applied_revision(&s.report).0 >= revision);
        if !reals_done && last_real.elapsed() >= Duration::from_millis(100) {
            last_real = Instant::now();
            let mut rs = reals.lock().unwrap_or_else(PoisonError::into_inner);
            let mut all = true;
            for r in rs.iter_mut() {
                let shown = r.show()?;
                all &= shown.applied_revision >= revision;
            }
            reals_done = all;
        }
        if sims_done && reals_done {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            let behind: Vec<String> = sims
                .iter()
                .filter(|s| applied_revision(&s.report).0 < revision)
                .map(|s| format!("{} at {}", s.name, applied_revision(&s.report).0))
                .take(5)
                .collect();
            return Err(format!(
                "hosts did not apply revision {revision} in {timeout:?}: {} (real hosts done: {reals_done})",
                behind.join(", ")
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The latest application of any revision <= `revision` (a host's sync of the load).
fn done_by(entries: impl Iterator<Item = (i64, u64)>, revision: i64) -> Option<u64> {
    entries
        .filter(|&(r, _)| r <= revision)
        .map(|(_, at)| at)
        .max()
}

/// Counters of every host: events, batches, changes, and records refused now.
fn all_counters(sims: &[SimView], reals: &Mutex<Vec<RealHost>>) -> Result<Vec<[u64; 4]>, String> {
    let mut out: Vec<[u64; 4]> = sims.iter().map(|s| counters(&s.report)).collect();
    for r in reals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter_mut()
    {
        let s = r.show()?;
        out.push([s.events, s.batches, s.changes, s.rejected]);
    }
    Ok(out)
}

/// CPU seconds: the simulated hosts' threads, the rest of the benchmark, etcd, each dvrd.
fn cpu_now(etcd_pid: u32, real_pids: &[u32]) -> (f64, f64, f64, Vec<f64>) {
    let threads = thread_cpu_s();
    let sim: f64 = threads
        .iter()
        .filter(|(k, _)| k.starts_with(SIM_THREAD))
        .map(|(_, v)| v)
        .sum();
    let all: f64 = threads.values().sum();
    let reals = real_pids.iter().map(|p| cpu_s(&p.to_string())).collect();
    (sim, all - sim, cpu_s(&etcd_pid.to_string()), reals)
}

/// Busy CPU seconds of the whole machine (every process: the other users' too).
fn machine_busy_s() -> f64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    total.saturating_sub(idle) as f64 / 100.0
}

/// Runs the benchmark; returns every figure as JSON and prints the summary.
pub fn run(opts: &Options, stop: &Arc<AtomicBool>) -> Result<Value, String> {
    let wall_start = Instant::now();
    let shape = Shape {
        sim_hosts: opts.sim_hosts,
        real_hosts: opts.real_hosts,
        join_hosts: 1,
        routers: opts.routers,
        ports: opts.ports,
        hosts_per_router: opts.hosts_per_router,
        real_routers_max: opts.real_routers_max,
    };
    let mut rng = Rng::new(opts.seed);
    let topo = Topology::generate(&shape, &mut rng)?;
    let records = topo.records();
    let router_objects: Vec<usize> = (0..topo.routers.len())
        .map(|r| topo.router_objects(r))
        .collect();
    println!(
        "fleet: {} hosts ({} simulated, {} real, 1 joining), {} routers x {} hosts, {} networks, {} ports, {} records",
        topo.hosts.len(),
        opts.sim_hosts,
        opts.real_hosts,
        topo.routers.len(),
        opts.hosts_per_router,
        topo.networks.len(),
        topo.ports.len(),
        records.len()
    );

    // Real hosts need the release binaries.
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    let dvrd = opts.dvrd.clone().unwrap_or_else(|| exe_dir.join("dvrd"));
    let dvrctl = opts.dvrctl.clone().unwrap_or_else(|| {
        dvrd.parent()
            .map_or_else(|| exe_dir.join("dvrctl"), |d| d.join("dvrctl"))
    });
    if opts.real_hosts > 0 && (!dvrd.exists() || !dvrctl.exists()) {
        return Err(format!(
            "--real-hosts needs {} and {} (cargo build --release --bin dvrd --bin dvrctl, or --dvrd PATH)",
            dvrd.display(),
            dvrctl.display()
        ));
    }

    let mut etcd = EtcdGuard::start(&opts.etcd)?;
    let endpoint = etcd.endpoint();
    let store_cfg = StoreConfig::new(vec![endpoint.clone()], DEFAULT_PREFIX);
    let config_dir = format!("{}config/", store_cfg.prefix);
    // The operator's side (load, changes) runs on the main thread, apart from the hosts.
    let driver = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    etcd.wait_ready(Duration::from_secs(30), || {
        driver.block_on(Store::connect(&store_cfg)).is_ok()
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads.max(1))
        .thread_name(SIM_THREAD)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    // Simulated hosts: built, then started together.
    let rss_before = rss_kib("self");
    let apply_counters = Arc::new(ApplyCounters::default());
    let mut built = Vec::new();
    for h in topo.hosts.iter().filter(|h| h.kind == HostKind::Sim) {
        built.push(SimHost::new(
            h,
            &topo,
            &store_cfg,
            &apply_counters,
            opts.status_interval,
        )?);
    }
    let rss_built = rss_kib("self");
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut sims = Vec::new();
    let mut tasks = Vec::new();
    for s in built {
        sims.push(SimView {
            name: s.name,
            report: s.report,
            log: s.log,
        });
        tasks.push(rt.spawn(s.member.run(shutdown_rx.clone())));
    }
    let start = Instant::now();
    while !sims.iter().all(|s| applied_revision(&s.report).1) {
        if start.elapsed() > Duration::from_secs(60) || stop.load(Ordering::Relaxed) {
            return Err("simulated hosts did not connect in 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "{} simulated hosts connected in {:.2} s",
        sims.len(),
        start.elapsed().as_secs_f64()
    );

    // Real hosts.
    let tmp = TempDir(std::env::temp_dir().join(format!("dvr-fleet-bench-{}", std::process::id())));
    let mut reals_v = Vec::new();
    for h in &topo.hosts {
        if let HostKind::Real(i) = h.kind {
            let dir = tmp.0.join(&h.name);
            reals_v.push(RealHost::start(
                &dvrd, &dvrctl, h, &topo, i, &endpoint, dir,
            )?);
        }
    }
    let reals = Arc::new(Mutex::new(reals_v));
    let start = Instant::now();
    loop {
        let mut rs = reals.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = true;
        for r in rs.iter_mut() {
            all &= r.show().map(|s| s.connected).unwrap_or(false);
        }
        if all {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) || stop.load(Ordering::Relaxed) {
            let tails: Vec<String> = rs.iter().map(|r| r.log_tail()).collect();
            return Err(format!(
                "real hosts did not connect in 60 s:\n{}",
                tails.join("\n")
            ));
        }
        drop(rs);
        std::thread::sleep(Duration::from_millis(100));
    }
    let real_pids: Vec<u32> = reals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(RealHost::pid)
        .collect();

    // Initial load.
    let kvs: Vec<(String, String)> = records
        .iter()
        .map(|r| (format!("{config_dir}{}", r.key().path()), r.value()))
        .collect();
    let mut writer = driver
        .block_on(Store::connect(&store_cfg))
        .map_err(|e| e.to_string())?;
    let load_first_us = now_us();
    let mut load_last_us = load_first_us;
    let mut load_rev = 0;
    let mut txns = 0;
    // The host records go first, in a transaction of their own: HostSync plans a revision's
    // additions in key order, so a peer named before this host in the same revision is refused
    // ("the host must be set before peers") and retried only on the next revision that is not
    // ports alone (BENCHMARKS.md, "Fleet convergence": the fix belongs in fleet/src/sync.rs).
    let n_hosts = topo.hosts.len();
    let chunks = kvs[..n_hosts]
        .chunks(LOAD_TXN_OPS)
        .chain(kvs[n_hosts..].chunks(LOAD_TXN_OPS));
    for chunk in chunks {
        load_last_us = now_us();
        load_rev = driver
            .block_on(writer.write(&[], chunk, &[]))
            .map_err(|e| e.to_string())?
            .ok_or("a load transaction failed")?;
        txns += 1;
    }
    let load_written_us = now_us();
    wait_applied(&sims, &reals, load_rev, Duration::from_secs(300), stop)?;
    let rss_loaded = rss_kib("self");
    let mut sim_done = Vec::new();
    for s in &sims {
        let log = s.log.lock().unwrap_or_else(PoisonError::into_inner);
        let done = done_by(log.iter().map(|&(r, at, _)| (r, at)), load_rev).unwrap_or(0);
        sim_done.push(done);
    }
    let mut real_done = Vec::new();
    for r in reals.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        real_done
            .push(done_by(r.seen.iter().map(|(&rev, &(at, _))| (rev, at)), load_rev).unwrap_or(0));
    }
    let sync_of = |done: &[u64]| -> Value {
        let after_last: Vec<u64> = done
            .iter()
            .map(|&d| d.saturating_sub(load_last_us))
            .collect();
        let after_first: Vec<u64> = done
            .iter()
            .map(|&d| d.saturating_sub(load_first_us))
            .collect();
        json!({
            "after_last_write_ms": spread_ms(&after_last),
            "after_first_write_ms": spread_ms(&after_first),
        })
    };
    let all_done = sim_done
        .iter()
        .chain(&real_done)
        .copied()
        .max()
        .unwrap_or(0);
    let initial_sync_ms = ms(all_done.saturating_sub(load_last_us) as i64);
    let load_ms = ms(load_written_us.saturating_sub(load_first_us) as i64);
    let after_load = all_counters(&sims, &reals)?;
    let rejected_after_load: u64 = after_load.iter().map(|c| c[3]).sum();
    if rejected_after_load > 0 {
        println!("warning: {rejected_after_load} records refused on the hosts after the load");
    }
    println!(
        "initial load: {} records in {txns} transactions written in {load_ms:.0} ms (revision {load_rev}); every host applied it {initial_sync_ms:.0} ms after the last write was sent ({:.0} ms after the first)",
        kvs.len(),
        ms(all_done.saturating_sub(load_first_us) as i64)
    );
    let per_host_kib = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / sims.len().max(1) as f64;
    println!(
        "memory: bench RSS {} MiB before the hosts, {} MiB built, {} MiB loaded: {:.0} KiB per simulated host ({:.0} KiB of it before the load)",
        rss_before / 1024,
        rss_built / 1024,
        rss_loaded / 1024,
        per_host_kib(rss_loaded, rss_before),
        per_host_kib(rss_built, rss_before)
    );

    // A host joins after the load.
    let join_def = topo
        .hosts
        .iter()
        .find(|h| h.kind == HostKind::Join)
        .ok_or("no joining host")?;
    let join_start_us = now_us();
    let join_start = Instant::now();
    let join = SimHost::new(
        join_def,
        &topo,
        &store_cfg,
        &apply_counters,
        opts.status_interval,
    )?;
    let (join_stop, join_rx) = tokio::sync::watch::channel(false);
    let join_report = join.report;
    let join_log = join.log;
    let join_task = rt.spawn(join.member.run(join_rx));
    while applied_revision(&join_report).0 < load_rev {
        if join_start.elapsed() > Duration::from_secs(60) || stop.load(Ordering::Relaxed) {
            return Err("the joining host did not sync in 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let join_wait_ms = join_start.elapsed().as_secs_f64() * 1000.0;
    let (join_sync_ms, join_changes) = {
        let log = join_log.lock().unwrap_or_else(PoisonError::into_inner);
        // Its one batch is the re-list, at the revision of the read (status puts move the
        // store past the load's revision): the latest entry, whatever its revision.
        let done = log.iter().map(|e| e.1).max().unwrap_or(join_start_us);
        let n: u64 = log.iter().map(|&(_, _, n)| u64::from(n)).sum();
        (ms(done.saturating_sub(join_start_us) as i64), n)
    };
    let _ = join_stop.send(true);
    let _ = rt.block_on(join_task);
    println!(
        "join: a new host synced {join_changes} changes in {join_sync_ms:.0} ms (connect, list, apply; seen applied after {join_wait_ms:.0} ms); it leaves before the change phases"
    );
    let join_json = json!({
        "sync_ms": join_sync_ms,
        "changes": join_changes,
        "seen_applied_ms": join_wait_ms,
    });

    // Change phases.
    let mut state = PortState::new(&topo, &mut rng);
    let mut phases = Vec::new();
    let mut before = after_load.clone();
    let n_hosts_watching = sims.len() + real_pids.len();
    for &rate in &opts.rates {
        let n = (f64::from(rate) * opts.duration.as_secs_f64()).round() as usize;
        let jobs: Vec<Job> = (0..n)
            .map(|_| state.next(&topo, &mut rng, &config_dir))
            .collect();
        let cpu0 = cpu_now(etcd.pid(), &real_pids);
        let busy0 = machine_busy_s();
        let apply0 = (
            apply_counters.nanos.load(Ordering::Relaxed),
            apply_counters.batches.load(Ordering::Relaxed),
        );
        let phase_start = Instant::now();
        // Real hosts keep the last 4096 revisions: poll them during the phase.
        let polling = Arc::new(AtomicBool::new(true));
        let poller = {
            let reals = Arc::clone(&reals);
            let polling = Arc::clone(&polling);
            std::thread::Builder::new()
                .name("real-poll".into())
                .spawn(move || {
                    while polling.load(Ordering::Relaxed) {
                        for r in reals
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .iter_mut()
                        {
                            let _ = r.show();
                        }
                        for _ in 0..20 {
                            if !polling.load(Ordering::Relaxed) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                })
                .map_err(|e| e.to_string())?
        };
        let recs = driver.block_on(change_phase(&store_cfg, jobs, rate, opts.writers, stop))?;
        let sent_wall = phase_start.elapsed();
        let last_rev = recs.iter().map(|r| r.revision).max().unwrap_or(0);
        let first_rev = recs
            .iter()
            .map(|r| r.revision)
            .filter(|&r| r > 0)
            .min()
            .unwrap_or(0);
        let settle = wait_applied(&sims, &reals, last_rev, opts.settle, stop);
        polling.store(false, Ordering::Relaxed);
        let _ = poller.join();
        let settle = settle?;
        let phase_wall = phase_start.elapsed().as_secs_f64();
        let cpu1 = cpu_now(etcd.pid(), &real_pids);
        let busy1 = machine_busy_s();
        let apply1 = (
            apply_counters.nanos.load(Ordering::Relaxed),
            apply_counters.batches.load(Ordering::Relaxed),
        );
        let after = all_counters(&sims, &reals)?;

        // Convergence.
        let in_phase = |r: i64| r >= first_rev && r <= last_rev;
        let sim_maps: Vec<HashMap<i64, u64>> = sims
            .iter()
            .map(|s| {
                s.log
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .filter(|e| in_phase(e.0))
                    .map(|&(r, at, _)| (r, at))
                    .collect()
            })
            .collect();
        let real_maps: Vec<HashMap<i64, u64>> = reals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|r| {
                r.seen
                    .range(first_rev..=last_rev)
                    .map(|(&rev, &(at, _))| (rev, at))
                    .collect()
            })
            .collect();
        let (mut full_sim, mut full_real, mut full_all) =
            (Latency::new(), Latency::new(), Latency::new());
        let (mut each_sim, mut each_real, mut write_lat) =
            (Latency::new(), Latency::new(), Latency::new());
        let mut failed = 0;
        let mut unapplied = 0;
        let mut host_samples = 0u64;
        let mut neutron_objects = 0u64;
        let mut neutron_notifications = 0u64;
        let mut event_bytes = 0u64;
        for rec in &recs {
            if rec.revision == 0 {
                failed += 1;
                continue;
            }
            write_lat.record(rec.done_us as i64 - rec.send_us as i64);
            neutron_notifications += u64::from(rec.agents);
            neutron_objects += u64::from(rec.agents) * router_objects[rec.router] as u64;
            event_bytes += rec.bytes as u64;
            let mut worst: [Option<i64>; 2] = [None, None];
            for (kind, maps) in [(0, &sim_maps), (1, &real_maps)] {
                for m in maps {
                    if let Some(&at) = m.get(&rec.revision) {
                        let d = at as i64 - rec.send_us as i64;
                        host_samples += 1;
                        if kind == 0 {
                            each_sim.record(d);
                        } else {
                            each_real.record(d);
                        }
                        worst[kind] = Some(worst[kind].map_or(d, |w: i64| w.max(d)));
                    }
                }
            }
            if let Some(w) = worst[0] {
                full_sim.record(w);
            }
            if let Some(w) = worst[1] {
                full_real.record(w);
            }
            match worst[0].into_iter().chain(worst[1]).max() {
                Some(w) => full_all.record(w),
                None => unapplied += 1,
            }
        }
        let sent: Vec<&ChangeRec> = recs.iter().filter(|r| r.revision > 0).collect();
        let span_s = match (sent.first(), sent.last()) {
            (Some(_), Some(_)) => {
                let lo = sent.iter().map(|r| r.send_us).min().unwrap_or(0);
                let hi = sent.iter().map(|r| r.send_us).max().unwrap_or(0);
                (hi.saturating_sub(lo)) as f64 / 1e6
            }
            _ => 0.0,
        };
        let achieved = if span_s > 0.0 {
            (sent.len().saturating_sub(1)) as f64 / span_s
        } else {
            0.0
        };
        let delta = |i: usize, range: std::ops::Range<usize>| -> Vec<u64> {
            range
                .map(|h| after[h][i].saturating_sub(before[h][i]))
                .collect()
        };
        let ns = sims.len();
        let nr = after.len() - ns;
        let ours_events: u64 = delta(0, 0..after.len()).iter().sum();
        let ours_changes: u64 = delta(2, 0..after.len()).iter().sum();
        let cpu = |a: f64, b: f64| b - a;
        let real_cpu: Vec<f64> = cpu0.3.iter().zip(&cpu1.3).map(|(a, b)| b - a).collect();
        let apply_s = (apply1.0 - apply0.0) as f64 / 1e9;
        let ours_cpu = cpu(cpu0.0, cpu1.0)
            + cpu(cpu0.1, cpu1.1)
            + cpu(cpu0.2, cpu1.2)
            + real_cpu.iter().sum::<f64>();
        let others_cpu = (busy1 - busy0 - ours_cpu).max(0.0);
        let per_change_ms = |c: f64| {
            if sent.is_empty() {
                0.0
            } else {
                c * 1000.0 / sent.len() as f64
            }
        };
        println!(
            "\nphase {rate}/s for {:.0} s: {} changes sent at {achieved:.0}/s ({failed} failed), put latency {}",
            opts.duration.as_secs_f64(),
            sent.len(),
            write_lat.line()
        );
        println!(
            "  convergence per change (max over the hosts that applied it): all {}",
            full_all.line()
        );
        println!("    simulated hosts: {}", full_sim.line());
        println!("    real hosts:      {}", full_real.line());
        println!(
            "  per (change, host): simulated {}; real {}",
            each_sim.line(),
            each_real.line()
        );
        let rejected: u64 = after.iter().map(|c| c[3]).sum();
        println!(
            "  {unapplied} changes applied nowhere, {rejected} records refused on the hosts; settled {:.0} ms after the last put ({:.1} s sending)",
            settle.as_secs_f64() * 1000.0,
            sent_wall.as_secs_f64()
        );
        println!(
            "  per host min/median/max: events sim {} real {}; batches sim {} real {}; changes sim {} real {}",
            spread_line(&delta(0, 0..ns)),
            spread_line(&delta(0, ns..ns + nr)),
            spread_line(&delta(1, 0..ns)),
            spread_line(&delta(1, ns..ns + nr)),
            spread_line(&delta(2, 0..ns)),
            spread_line(&delta(2, ns..ns + nr))
        );
        println!(
            "  CPU over {phase_wall:.1} s: simulated hosts {:.1} s (apply_batch {apply_s:.1} s in {} batches), rest of the bench {:.1} s, etcd {:.1} s, dvrd {}",
            cpu(cpu0.0, cpu1.0),
            apply1.1 - apply0.1,
            cpu(cpu0.1, cpu1.1),
            cpu(cpu0.2, cpu1.2),
            real_cpu
                .iter()
                .map(|c| format!("{c:.1} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  machine busy {:.1} of {:.1} CPU-s, of which other processes {others_cpu:.1} s; CPU per change: simulated hosts {:.2} ms ({:.1} us per host), etcd {:.2} ms, each dvrd {:.2} ms",
            busy1 - busy0,
            phase_wall * std::thread::available_parallelism().map_or(1, usize::from) as f64,
            per_change_ms(cpu(cpu0.0, cpu1.0)),
            per_change_ms(cpu(cpu0.0, cpu1.0)) * 1000.0 / sims.len().max(1) as f64,
            per_change_ms(cpu(cpu0.2, cpu1.2)),
            per_change_ms(real_cpu.iter().sum::<f64>() / real_cpu.len().max(1) as f64)
        );
        println!(
            "  Neutron notify-then-pull: {neutron_notifications} notifications, {neutron_objects} objects re-fetched; ours: {ours_events} events (~{} bytes each) to {n_hosts_watching} watching hosts, {ours_changes} objects applied",
            if sent.is_empty() { 0 } else { event_bytes / sent.len() as u64 }
        );
        phases.push(json!({
            "rate": rate,
            "duration_s": opts.duration.as_secs_f64(),
            "changes": sent.len(),
            "failed": failed,
            "achieved_rate": achieved,
            "revisions": [first_rev, last_rev],
            "put_latency": write_lat.json(),
            "convergence": {
                "all": full_all.json(),
                "sim": full_sim.json(),
                "real": full_real.json(),
                "per_host_sim": each_sim.json(),
                "per_host_real": each_real.json(),
                "host_samples": host_samples,
                "unapplied": unapplied,
                "rejected_records": rejected,
            },
            "settle_ms": settle.as_secs_f64() * 1000.0,
            "per_host": {
                "events": { "sim": spread(&delta(0, 0..ns)), "real": spread(&delta(0, ns..ns + nr)) },
                "batches": { "sim": spread(&delta(1, 0..ns)), "real": spread(&delta(1, ns..ns + nr)) },
                "changes": { "sim": spread(&delta(2, 0..ns)), "real": spread(&delta(2, ns..ns + nr)) },
            },
            "cpu_s": {
                "wall_s": phase_wall,
                "sim_hosts": cpu(cpu0.0, cpu1.0),
                "apply_batch": apply_s,
                "apply_batches": apply1.1 - apply0.1,
                "bench_other": cpu(cpu0.1, cpu1.1),
                "etcd": cpu(cpu0.2, cpu1.2),
                "dvrd": real_cpu,
                "machine_busy": busy1 - busy0,
                "other_processes": others_cpu,
                "per_change_ms": {
                    "sim_hosts": per_change_ms(cpu(cpu0.0, cpu1.0)),
                    "etcd": per_change_ms(cpu(cpu0.2, cpu1.2)),
                    "dvrd_each": per_change_ms(real_cpu.iter().sum::<f64>() / real_cpu.len().max(1) as f64),
                },
            },
            "neutron": {
                "notifications": neutron_notifications,
                "objects_fetched": neutron_objects,
            },
            "ours": {
                "events_delivered": ours_events,
                "event_bytes_mean": if sent.is_empty() { 0 } else { event_bytes / sent.len() as u64 },
                "bytes_delivered": ours_events * if sent.is_empty() { 0 } else { event_bytes / sent.len() as u64 },
                "objects_applied": ours_changes,
                "watching_hosts": n_hosts_watching,
            },
        }));
        before = after;
    }

    // Memory of the real hosts, then stop everything.
    let real_rss: Vec<u64> = real_pids.iter().map(|p| rss_kib(&p.to_string())).collect();
    let etcd_rss = rss_kib(&etcd.pid().to_string());
    let _ = shutdown.send(true);
    for t in tasks {
        let _ = rt.block_on(t);
    }
    drop(rt);
    for r in reals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter_mut()
    {
        r.stop();
    }
    println!(
        "\nmemory: {:.0} KiB per simulated host; real dvrd RSS {} KiB; etcd {} MiB; total {:.1} s",
        per_host_kib(rss_loaded, rss_before),
        real_rss
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        etcd_rss / 1024,
        wall_start.elapsed().as_secs_f64()
    );
    let per_host_load = |i: usize, range: std::ops::Range<usize>| -> Value {
        spread(&range.map(|h| after_load[h][i]).collect::<Vec<_>>())
    };
    let ns = sims.len();
    let nr = after_load.len() - ns;
    Ok(json!({
        "options": {
            "sim_hosts": opts.sim_hosts,
            "real_hosts": opts.real_hosts,
            "routers": opts.routers,
            "ports": opts.ports,
            "hosts_per_router": opts.hosts_per_router,
            "real_routers_max": opts.real_routers_max,
            "rates": opts.rates,
            "duration_s": opts.duration.as_secs_f64(),
            "seed": opts.seed,
            "threads": opts.threads,
            "writers": opts.writers,
            "status_interval_s": opts.status_interval.as_secs_f64(),
        },
        "machine": { "cpus": std::thread::available_parallelism().map_or(1, usize::from) },
        "records": kvs.len(),
        "load": {
            "transactions": txns,
            "revision": load_rev,
            "write_ms": load_ms,
            "initial_sync_ms": initial_sync_ms,
            "rejected_records": rejected_after_load,
            "sim": sync_of(&sim_done),
            "real": sync_of(&real_done),
            "per_host": {
                "events": { "sim": per_host_load(0, 0..ns), "real": per_host_load(0, ns..ns + nr) },
                "batches": { "sim": per_host_load(1, 0..ns), "real": per_host_load(1, ns..ns + nr) },
                "changes": { "sim": per_host_load(2, 0..ns), "real": per_host_load(2, ns..ns + nr) },
            },
        },
        "join": join_json,
        "phases": phases,
        "memory": {
            "bench_rss_kib": { "before_hosts": rss_before, "built": rss_built, "loaded": rss_loaded },
            "per_sim_host_kib": per_host_kib(rss_loaded, rss_before),
            "per_sim_host_empty_kib": per_host_kib(rss_built, rss_before),
            "real_dvrd_rss_kib": real_rss,
            "etcd_rss_kib": etcd_rss,
        },
        "hosts": topo.hosts.iter().map(|h| json!({"name": h.name, "routers": h.routers.len()})).collect::<Vec<_>>(),
        "wall_s": wall_start.elapsed().as_secs_f64(),
        "placement": BTreeMap::from([("routers_per_sim_host", spread(&topo.hosts.iter().filter(|h| h.kind == HostKind::Sim).map(|h| h.routers.len() as u64).collect::<Vec<_>>())), ("routers_per_real_host", spread(&topo.hosts.iter().filter(|h| matches!(h.kind, HostKind::Real(_))).map(|h| h.routers.len() as u64).collect::<Vec<_>>()))]),
    }))
}
