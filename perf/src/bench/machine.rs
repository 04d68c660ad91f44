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
    /// Real-time (SCHED_FIFO/RR) user processes at the start, which no priority of a normal
    /// process can beat: `pid comm policy cpus`.
    pub realtime_processes: Vec<String>,
}

/// The trimmed standard output of a command (empty when it cannot run).
pub(crate) fn output(program: &str, args: &[&str]) -> String {
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

/// Busy share of all CPUs (0 to 1) over `window`, from `/proc/stat`: taken while the
/// benchmark's own processes are frozen or idle, it is the load of the machine's other work.
pub fn busy_share(window: std::time::Duration) -> f64 {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let v: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3)? + v.get(4)?;
        Some((total, idle))
    }
    let Some((t0, i0)) = sample() else {
        return 0.0;
    };
    std::thread::sleep(window);
    let Some((t1, i1)) = sample() else {
        return 0.0;
    };
    let total = t1.saturating_sub(t0);
    if total == 0 {
        return 0.0;
    }
    1.0 - i1.saturating_sub(i0) as f64 / total as f64
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
            realtime_processes: realtime_processes(),
        }
    }
}

/// The CPUs a task may run on (`Cpus_allowed_list` of `/proc/<task>/status`, e.g. `0-1`):
/// `task` is a process id, `self` or `thread-self`.
pub fn cpus_allowed(task: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{task}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|c| c.trim().to_owned())
}

/// User processes scheduled SCHED_FIFO or SCHED_RR (kernel threads left out): each takes its
/// CPU from every normal process, the benchmark's included, for as long as it runs.
pub fn realtime_processes() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state is field 3; policy is field 41.
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ppid = fields.get(1).copied().unwrap_or("0");
        let policy = fields.get(38).copied().unwrap_or("0");
        let kernel_thread = ppid == "2" || pid == "2";
        if kernel_thread || !(policy == "1" || policy == "2") {
            continue;
        }
        let cpus = cpus_allowed(pid).unwrap_or_default();
        let comm = comm.split_once('(').map_or(comm, |(_, c)| c);
        let policy = if policy == "1" { "FIFO" } else { "RR" };
        found.push(format!("{pid} {comm} SCHED_{policy} cpus {cpus}"));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_collected() {
        for rt in realtime_processes() {
            eprintln!("{rt}");
            assert!(rt.contains("SCHED_"));
        }
        let m = Machine::collect(true, false);
        assert!(m.nproc >= 1);
        assert!(load_average() >= 0.0);
    }
}
