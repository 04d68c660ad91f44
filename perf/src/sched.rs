//! Time the measured threads spent waiting for a CPU (`run_delay` of
//! `/proc/<pid>/task/<tid>/schedstat`), to tell a trial that measured the device from one that
//! measured the machine's other work.
//!
//! On a shared machine another process can preempt the device under test's worker (or the
//! generator) for milliseconds; its RX ring overflows and the trial loses packets that say
//! nothing about the device. The generator reads the run delay of its own thread and of the
//! device's busy threads (those pinned to the worker CPU) before and after every trial; a trial
//! whose threads waited longer than a limit is *disturbed* and repeated.

use std::fs;

/// The threads whose waiting time is watched.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// `/proc/<pid>/task/<tid>/schedstat` of every watched thread of the device under test.
    device: Vec<String>,
    /// The generator's own thread.
    own: Option<String>,
}

/// Run delays at one moment, nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delays {
    /// The device's watched threads together.
    pub device_ns: u64,
    /// The generator's thread.
    pub own_ns: u64,
}

impl Delays {
    /// What accrued since `earlier`.
    pub fn since(self, earlier: Delays) -> Delays {
        Delays {
            device_ns: self.device_ns.saturating_sub(earlier.device_ns),
            own_ns: self.own_ns.saturating_sub(earlier.own_ns),
        }
    }
}

impl Watch {
    /// Watches the threads of process `pid` pinned to exactly `cpu` (the device's worker), and
    /// the calling thread. Threads that cannot be read are left out.
    pub fn new(device: &[(u32, usize)]) -> Watch {
        let mut paths = Vec::new();
        for &(pid, cpu) in device {
            let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for task in tasks.flatten() {
                let dir = task.path();
                let pinned = fs::read_to_string(dir.join("status"))
                    .ok()
                    .is_some_and(|s| cpus_allowed(&s) == Some(cpu.to_string().as_str()));
                if pinned {
                    paths.push(dir.join("schedstat").display().to_string());
                }
            }
        }
        Watch {
            device: paths,
            own: Some("/proc/thread-self/schedstat".to_owned()),
        }
    }

    /// Number of device threads watched.
    pub fn device_threads(&self) -> usize {
        self.device.len()
    }

    /// Reads the current run delays (a few small file reads: between trials only).
    pub fn read(&self) -> Delays {
        Delays {
            device_ns: self.device.iter().map(|p| run_delay(p)).sum(),
            own_ns: self.own.as_deref().map_or(0, run_delay),
        }
    }
}

/// The `Cpus_allowed_list` value of a `/proc/.../status` text.
fn cpus_allowed(status: &str) -> Option<&str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(str::trim)
}

/// The second field of a schedstat file: nanoseconds spent runnable but waiting.
fn run_delay(path: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_reads_own_delay() {
        let status = "Name:\tx\nCpus_allowed:\t2\nCpus_allowed_list:\t1\nMems_allowed:\t1\n";
        assert_eq!(cpus_allowed(status), Some("1"));
        let watch = Watch::new(&[(std::process::id(), 9999)]);
        assert_eq!(watch.device_threads(), 0);
        let a = watch.read();
        let b = watch.read();
        assert!(b.own_ns >= a.own_ns);
    }
}
