//! Running short commands (`ip`, `ethtool`, `sysctl`, ...) and the environment precondition.

use std::fmt;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The tools every end-to-end test needs, with the Debian package that has each.
pub const REQUIRED_TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ping", "iputils-ping"),
    ("arping", "iputils-arping"),
    ("tcpdump", "tcpdump"),
    ("ethtool", "ethtool"),
    ("python3", "python3"),
    ("iperf3", "iperf3"),
    ("setpriv", "util-linux"),
    ("kill", "procps"),
];

/// The output of a finished command, as text.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub command: String,
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    fn from_output(command: String, out: Output) -> Self {
        CmdOutput {
            command,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with the command, its status and its output unless it exited with 0.
    pub fn ok(self) -> Self {
        assert!(self.success(), "command failed: {self}");
        self
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` exited with {:?}", self.command, self.code)?;
        if !self.stdout.trim().is_empty() {
            write!(f, "\n--- stdout\n{}", self.stdout.trim_end())?;
        }
        if !self.stderr.trim().is_empty() {
            write!(f, "\n--- stderr\n{}", self.stderr.trim_end())?;
        }
        Ok(())
    }
}

/// The command line of `cmd`, for messages.
pub fn command_line(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion and returns its output (whatever the exit status).
/// Panics only when the program cannot be started.
pub fn output_of(cmd: &mut Command) -> CmdOutput {
    let line = command_line(cmd);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
    CmdOutput::from_output(line, out)
}

/// Runs `program args...` and returns its output (whatever the exit status).
pub fn run(program: &str, args: &[&str]) -> CmdOutput {
    output_of(Command::new(program).args(args))
}

/// Runs `program args...`, panics unless it exits with 0, returns its stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    run(program, args).ok().stdout
}

/// The path of `tool` on `PATH`.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// True when the process runs with effective user id 0.
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

/// What keeps the end-to-end tests (and the demo) from running here: not root, tools missing.
/// Empty when all is well.
pub fn environment_problems() -> Vec<String> {
    let mut problems = Vec::new();
    if !is_root() {
        problems.push(
            "this must run as root (network namespaces, veths, raw sockets, DPDK)".to_string(),
        );
    }
    for (tool, package) in REQUIRED_TOOLS {
        if which(tool).is_none() {
            problems.push(format!(
                "`{tool}` is not on PATH (Debian package {package})"
            ));
        }
    }
    problems
}

/// Fails the test (never skips it) when it does not run as root or a tool is missing.
pub fn require_environment() {
    let problems = environment_problems();
    assert!(
        problems.is_empty(),
        "end-to-end test environment incomplete:\n  - {}\nRun `sudo scripts/install-deps.sh` and run the tests as root \
         (`sudo -E cargo test --release --test e2e_datapath -- --test-threads=1`).",
        problems.join("\n  - ")
    );
}
