//! The daemon under test: started with a config file, `--ready-file` and `--summary-json`,
//! stopped with SIGTERM; its exit status and summary are what the tests assert on.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dvr_router::api::client::Client;
use dvr_router::api::view::StatsView;
use dvr_router::stats::Snapshot;
use serde_json::Value;

use crate::config::DvrdConfig;
use crate::net::Netns;
use crate::process::{describe, Process, POLL};
use crate::test_scope::{tail, Scope};

/// How long dvrd gets to become ready (EAL init on 4 KiB pages, ports, workers).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long dvrd gets to exit after SIGTERM (stop workers and ports, leak check, summary).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one control API call may take.
pub const API_TIMEOUT: Duration = Duration::from_secs(10);

/// A `dvrd` command (in namespace `netns`, through `ip netns exec`, or in the root namespace)
/// with no `DVR_...` variables inherited: they would override the config.
pub fn command(scope: &Scope, netns: Option<&Netns>) -> Command {
    let binary = scope.dvrd_binary();
    let mut cmd = match netns {
        Some(ns) => ns.command(&binary.to_string_lossy()),
        None => Command::new(binary),
    };
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("DVR_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_BACKTRACE", "1");
    cmd
}

/// A running dvrd. Dropping it sends SIGTERM (SIGKILL after a grace period); [`stop`] does the
/// same and returns the exit status and the summary.
///
/// [`stop`]: Dvrd::stop
#[derive(Debug)]
pub struct Dvrd {
    scope: Scope,
    label: String,
    file_prefix: String,
    config_path: PathBuf,
    ready_path: PathBuf,
    summary_path: PathBuf,
    control_socket: PathBuf,
    process: Process,
}

/// How dvrd ended.
#[derive(Debug)]
pub struct DvrdExit {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// It ignored SIGTERM for [`STOP_TIMEOUT`] and was killed.
    pub killed: bool,
    pub stdout: String,
    pub stderr: String,
    /// The parsed `--summary-json` file, or why there is none.
    pub summary: Result<Summary, String>,
}

impl DvrdExit {
    /// Panics, with the logs, unless dvrd exited by itself with 0 and wrote its summary.
    pub fn assert_clean(&self) -> &Summary {
        assert!(
            !self.killed && self.code == Some(0),
            "dvrd did not exit cleanly after SIGTERM: code {:?}, signal {:?}, killed {}\n--- stdout\n{}--- stderr\n{}",
            self.code,
            self.signal,
            self.killed,
            self.stdout,
            self.stderr
        );
        match &self.summary {
            Ok(s) => s,
            Err(e) => panic!(
                "dvrd exited with 0 but its summary is unusable: {e}\n--- stdout\n{}",
                self.stdout
            ),
        }
    }
}

impl Dvrd {
    /// Writes `cfg` as `<label>.toml`, starts dvrd and waits until it is ready.
    pub fn start(scope: &Scope, label: &str, cfg: &DvrdConfig) -> Dvrd {
        let mut d = Dvrd::spawn(scope, label, |prefix, socket| cfg.to_toml(prefix, socket));
        d.wait_ready(READY_TIMEOUT);
        d
    }

    /// Starts dvrd on the config text `make_toml(file_prefix, control_socket)` without
    /// waiting for it.
    pub fn spawn(
        scope: &Scope,
        label: &str,
        make_toml: impl FnOnce(&str, &Path) -> String,
    ) -> Dvrd {
        Dvrd::spawn_in(scope, label, None, make_toml)
    }

    /// [`spawn`](Self::spawn) inside namespace `netns` (None: the root namespace), the way a
    /// host runs its router: its ports are the interfaces of that namespace. Several dvrd
    /// processes with `net_af_packet` ports must not share a namespace: the driver names its
    /// packet fanout group after the process id and the interface index, and two processes
    /// whose numbers collide cannot both open their ports (`could not set PACKET_FANOUT`).
    pub fn spawn_in(
        scope: &Scope,
        label: &str,
        netns: Option<&Netns>,
        make_toml: impl FnOnce(&str, &Path) -> String,
    ) -> Dvrd {
        let label = scope.unique_label(label);
        let file_prefix = scope.dpdk_prefix(&label);
        let config_path = scope.file(&format!("{label}.toml"));
        let ready_path = scope.file(&format!("{label}.ready"));
        let summary_path = scope.file(&format!("{label}.summary.json"));
        let socket = scope.socket_path(&label);
        std::fs::write(&config_path, make_toml(&file_prefix, &socket))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        scope.register_log(&format!("{label} config"), &config_path);
        let mut cmd = command(scope, netns);
        cmd.arg("--config")
            .arg(&config_path)
            .arg("--ready-file")
            .arg(&ready_path)
            .arg("--summary-json")
            .arg(&summary_path);
        let process = Process::spawn_labelled(scope, label.clone(), cmd);
        Dvrd {
            scope: scope.clone(),
            label,
            file_prefix,
            config_path,
            ready_path,
            summary_path,
            control_socket: socket,
            process,
        }
    }

    /// Waits for the ready file; panics with dvrd's logs if it exits first or takes too long.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let start = Instant::now();
        loop {
            if self.ready_path.exists() {
                if !self.scope.is_quiet() {
                    eprintln!("[e2e] {} ready after {:?}", self.label, start.elapsed());
                }
                return;
            }
            if let Some(status) = self.process.try_wait() {
                panic!(
                    "dvrd {} exited ({}) before it was ready\n--- config {}\n{}--- stdout\n{}--- stderr\n{}",
                    self.label,
                    describe(status),
                    self.config_path.display(),
                    tail(&self.config_path, 200),
                    self.process.stdout(),
                    self.process.stderr()
                );
            }
            if start.elapsed() >= timeout {
                panic!(
                    "dvrd {} was not ready within {timeout:?} (no {})\n--- stderr\n{}",
                    self.label,
                    self.ready_path.display(),
                    tail(self.process.stderr_path(), 100)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// EAL's `--file-prefix` of this process.
    pub fn file_prefix(&self) -> &str {
        &self.file_prefix
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn summary_path(&self) -> &Path {
        &self.summary_path
    }

    /// The control API socket written in its config (`[control] socket`), for `dvrctl`.
    pub fn control_socket(&self) -> &Path {
        &self.control_socket
    }

    /// Its counters now, through the control API (`stats.show`: what `dvrctl stats` shows),
    /// or why they cannot be read.
    pub fn try_stats(&self) -> Result<Snapshot, String> {
        let mut client = Client::connect(&self.control_socket, API_TIMEOUT)
            .map_err(|e| format!("dvrd {}: control API: {e}", self.label))?;
        let view: StatsView = client
            .call_as("stats.show", Value::Null)
            .map_err(|e| format!("dvrd {}: stats.show: {e}", self.label))?;
        Ok(view.snapshot)
    }

    /// [`try_stats`](Self::try_stats); panics when the API does not answer.
    pub fn stats(&self) -> Snapshot {
        self.try_stats().unwrap_or_else(|e| panic!("{e}"))
    }

    /// True while it runs.
    pub fn is_running(&mut self) -> bool {
        self.process.try_wait().is_none()
    }

    /// Panics, with its logs, if it has exited (a crash, a panic in a worker...).
    pub fn assert_running(&mut self) {
        if let Some(status) = self.process.try_wait() {
            panic!(
                "dvrd {} is not running any more ({})\n--- stderr\n{}",
                self.label,
                describe(status),
                self.process.stderr()
            );
        }
    }

    /// Its log so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// SIGTERM, wait (SIGKILL after [`STOP_TIMEOUT`]), then read the summary.
    pub fn stop(mut self) -> DvrdExit {
        let stopped = self.process.stop_with("TERM", STOP_TIMEOUT);
        let summary = match std::fs::read_to_string(&self.summary_path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Summary)
                .map_err(|e| format!("{}: not JSON ({e}):\n{text}", self.summary_path.display())),
            Err(e) => Err(format!("{}: {e}", self.summary_path.display())),
        };
        DvrdExit {
            code: stopped.status.code(),
            signal: stopped.status.signal(),
            killed: stopped.killed,
            stdout: self.process.stdout(),
            stderr: self.process.stderr(),
            summary,
        }
    }
}

/// The `--summary-json` document: `{"ports": [{"name", "rx_packets", ...}], "drops":
/// {"<reason>": n}, "punts": {...}, "workers": [...], "latency": {...}, "mempool_in_use": n}`.
#[derive(Debug, Clone)]
pub struct Summary(pub Value);

impl Summary {
    /// The `drops` object: counts by reason name (reasons never hit may be absent).
    pub fn drops(&self) -> BTreeMap<String, u64> {
        self.counts("drops")
    }

    /// Packets dropped for `reason` (`ipv4_bad_checksum`...); 0 when absent from `drops`.
    pub fn drop_count(&self, reason: &str) -> u64 {
        self.drops().get(reason).copied().unwrap_or(0)
    }

    /// The `punts` object: counts by reason name.
    pub fn punts(&self) -> BTreeMap<String, u64> {
        self.counts("punts")
    }

    fn counts(&self, key: &str) -> BTreeMap<String, u64> {
        let obj = self
            .0
            .get(key)
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("summary has no `{key}` object:\n{self}"));
        obj.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_u64()
                        .unwrap_or_else(|| panic!("summary `{key}.{k}` is not a count: {v}")),
                )
            })
            .collect()
    }

    /// The entry of port `name` in `ports`.
    pub fn port(&self, name: &str) -> &Value {
        let ports = self
            .0
            .get("ports")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("summary has no `ports` array:\n{self}"));
        ports
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .unwrap_or_else(|| panic!("summary has no port `{name}`:\n{self}"))
    }

    /// A counter of port `name` (`rx_packets`, `tx_packets`, `rx_bytes`, `tx_bytes`...).
    pub fn port_counter(&self, name: &str, counter: &str) -> u64 {
        self.port(name)
            .get(counter)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("summary port `{name}` has no counter `{counter}`:\n{self}"))
    }

    /// The whole document as the daemon's own type (what `stats.show` returns too).
    pub fn snapshot(&self) -> Snapshot {
        serde_json::from_value(self.0.clone())
            .unwrap_or_else(|e| panic!("the summary is no snapshot: {e}\n{self}"))
    }

    /// `mempool_in_use`, if present.
    pub fn mempool_in_use(&self) -> Option<u64> {
        self.0.get("mempool_in_use").and_then(Value::as_u64)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string_pretty(&self.0).unwrap_or_default())
    }
}

/// How a dvrd run that was expected to end by itself ended.
#[derive(Debug)]
pub struct DvrdRun {
    pub code: Option<i32>,
    /// It was still running after the timeout and was killed.
    pub timed_out: bool,
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `dvrd args...` and waits up to `timeout` for it to exit by itself (killing it then).
/// Output goes to `<label>.stdout`/`.stderr` in the test's folder.
pub fn run_to_exit(
    scope: &Scope,
    label: &str,
    args: &[&std::ffi::OsStr],
    timeout: Duration,
) -> DvrdRun {
    let mut cmd = command(scope, None);
    cmd.args(args);
    let start = Instant::now();
    let mut p = Process::spawn(scope, label, cmd);
    let status = p.wait_timeout(timeout);
    let elapsed = start.elapsed();
    let timed_out = status.is_none();
    let status = match status {
        Some(s) => s,
        None => p.stop_with("KILL", Duration::from_secs(5)).status,
    };
    DvrdRun {
        code: status.code(),
        timed_out,
        elapsed,
        stdout: p.stdout(),
        stderr: p.stderr(),
    }
}
