//! `dvrd`: the distributed virtual router daemon.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dvr_router::config::Config;
use dvr_router::daemon::{self, Options};

/// Per-host distributed virtual router on DPDK.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The configuration file (TOML; see dvrd.example.toml).
    #[arg(short, long, default_value = "/etc/dvrd/dvrd.toml")]
    config: PathBuf,
    /// Validate the configuration and exit: 0 when valid, 2 when not.
    #[arg(long)]
    check: bool,
    /// Create this file once traffic can flow.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Write the final counters here (JSON) at exit.
    #[arg(long)]
    summary_json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dvrd: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("dvrd: {} is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    dvr_router::logging::init(&cfg.log.level);
    match daemon::run(
        cfg,
        Options {
            ready_file: args.ready_file,
            summary_json: args.summary_json,
            config_path: Some(args.config),
        },
    ) {
        Ok(summary) => {
            print!("{}", summary.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dvrd: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
