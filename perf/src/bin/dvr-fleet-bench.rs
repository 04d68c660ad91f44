//! Convergence of the fleet on etcd: simulated hosts (the real fleet code on real control
//! planes, one Tokio runtime) and real dvrd processes follow one etcd while ports move between
//! hosts at a set rate. BENCHMARKS.md, "Fleet convergence".
//!
//! ```text
//! dvr-fleet-bench [--sim-hosts 100] [--real-hosts 3] [--routers 100] [--ports 10000]
//!                 [--hosts-per-router 10] [--rates 100,1000] [--duration 60] [--seed 1]
//!                 [--json FILE]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use perf::fleet_bench::{run, Options};

#[derive(Debug, Parser)]
#[command(about = "Fleet convergence on etcd: simulated and real dvrd hosts")]
struct Args {
    /// Simulated hosts (Member tasks, each with its own control plane and etcd watch).
    #[arg(long, default_value_t = 100)]
    sim_hosts: usize,
    /// Real dvrd processes (net_null ports, EAL on 4 KiB pages).
    #[arg(long, default_value_t = 3)]
    real_hosts: usize,
    #[arg(long, default_value_t = 100)]
    routers: usize,
    /// Instance ports, spread over the routers' networks (2 per router).
    #[arg(long, default_value_t = 10_000)]
    ports: usize,
    /// Hosts each router is placed on (drawn at random).
    #[arg(long, default_value_t = 10)]
    hosts_per_router: usize,
    /// Most routers on one real host: each of its networks is one net_null port.
    #[arg(long, default_value_t = 2)]
    real_routers_max: usize,
    /// Changes per second of each phase, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    rates: Vec<u32>,
    /// Seconds per phase.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads of the simulated hosts' runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// etcd connections the changes are written through (puts in flight at most).
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Seconds a phase may take to settle after its last put.
    #[arg(long, default_value_t = 120)]
    settle: u64,
    /// Least seconds between two status writes of a simulated host (dvrd's is 1).
    #[arg(long, default_value_t = 1.0)]
    status_interval: f64,
    /// The etcd binary.
    #[arg(long, default_value = "etcd")]
    etcd: PathBuf,
    /// The dvrd binary (default: next to this one). dvrctl is taken from its folder.
    #[arg(long)]
    dvrd: Option<PathBuf>,
    #[arg(long)]
    dvrctl: Option<PathBuf>,
    /// Write every figure here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("dvr-fleet-bench: signal handler: {e}");
        }
    }
    let opts = Options {
        sim_hosts: args.sim_hosts,
        real_hosts: args.real_hosts,
        routers: args.routers,
        ports: args.ports,
        hosts_per_router: args.hosts_per_router,
        real_routers_max: args.real_routers_max,
        rates: args.rates,
        duration: Duration::from_secs_f64(args.duration.max(0.1)),
        seed: args.seed,
        threads: args.threads,
        writers: args.writers,
        etcd: args.etcd,
        dvrd: args.dvrd,
        dvrctl: args.dvrctl,
        settle: Duration::from_secs(args.settle),
        status_interval: Duration::from_secs_f64(args.status_interval.max(0.01)),
    };
    match run(&opts, &stop) {
        Ok(report) => {
            if let Some(path) = args.json {
                let text = serde_json::to_string_pretty(&report).unwrap_or_default();
                if let Err(e) = std::fs::write(&path, text + "\n") {
                    eprintln!("dvr-fleet-bench: {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("figures written to {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dvr-fleet-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
