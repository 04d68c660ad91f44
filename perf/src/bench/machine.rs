//! The facts of the machine and the build that go with every result.

use std::process::Command;

use serde::{Deserialize, Serialize};

/// The machine and the build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `nproc`.
    pub nproc: usize,
    /// `lscpu` model name.
    pub cpu_model: String,
    /// `uname -r`.
    pub kernel: String,
    /// 2 MiB hugepages reserved (`HugePages_Total`).
    pub hugepages_total: u64,
    /// Free at the start of the run.
    pub hugepages_free: u64,
    /// Whether the run used hugepages.
    pub hugepages_used: bool,
    /// 1-minute load average at the start of the run.
    pub load_start: f64,
    /// ... and at its end.
    pub load_end: f64,
    /// `pkg-config --modversion libdpdk`.
    pub dpdk: String,
    /// `rustc --version`.
    pub rustc: String,
    /// `git describe --always --dirty`.
    pub commit: String,
    /// Build flags of the Rust programs and of l3fwd.
    pub build_flags: String,
    /// Whether the harness raised its processes' priority.
    pub priority_boost: bool,
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Free 2 MiB hugepages.
pub fn hugepages_free() -> u64 {
    meminfo("HugePages_Free:")
}

impl Machine {
    /// Collects the facts (a few commands; a missing one leaves its field empty).
    pub fn collect(hugepages_used: bool, priority_boost: bool) -> Machine {
        let cpu_model = output("lscpu", &[])
            .lines()
            .find_map(|l| l.strip_prefix("Model name:"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let pkg_cflags = output("pkg-config", &["--cflags", "libdpdk"]);
        let march = pkg_cflags
            .split_whitespace()
            .filter(|f| f.starts_with("-march") || f.starts_with("-mcpu"))
            .collect::<Vec<_>>()
            .join(" ");
        Machine {
            nproc: output("nproc", &[]).parse().unwrap_or(0),
            cpu_model,
            kernel: output("uname", &["-r"]),
            hugepages_total: meminfo("HugePages_Total:"),
            hugepages_free: hugepages_free(),
            hugepages_used,
            load_start: load_average(),
            load_end: 0.0,
            dpdk: output("pkg-config", &["--modversion", "libdpdk"]),
            rustc: output("rustc", &["--version"]),
            commit: output("git", &["describe", "--always", "--dirty"]),
            build_flags: format!(
                "Rust: cargo --release (opt-level 3, lto thin, codegen-units 1), RUSTFLAGS={:?}; \
                 l3fwd: make (-O3 {march}, DPDK {} shared libraries)",
                std::env::var("RUSTFLAGS").unwrap_or_default(),
                output("pkg-config", &["--modversion", "libdpdk"]),
            ),
            priority_boost,
        }
    }
}
