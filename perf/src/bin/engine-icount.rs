//! `engine-icount SCENARIO [ITERATIONS]`: runs one data-path scenario of the forwarding engine
//! for callgrind (`dvr-bench icount` drives it): a few uncounted warm-up bursts, then
//! ITERATIONS bursts of 32 frames through `icount_measured_burst`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use perf::icount::{icount_measured_burst, icount_warmup_burst, Bench, Scenario};

/// Uncounted bursts first.
const WARMUP: usize = 8;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(scenario) = args.get(1).and_then(|s| Scenario::from_name(s)) else {
        let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
        eprintln!("usage: engine-icount {{{}}} [ITERATIONS]", names.join("|"));
        return ExitCode::from(2);
    };
    let iterations = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let mut bench = Bench::new(scenario);
    bench.run(WARMUP, icount_warmup_burst);
    let packets = bench.run(iterations, icount_measured_burst);
    println!("{} {packets}", scenario.name());
    ExitCode::SUCCESS
}
