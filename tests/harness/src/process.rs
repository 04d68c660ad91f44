//! Background processes (dvrd, tcpdump, iperf3 servers...) whose output goes to files in the
//! test's folder, stopped when dropped.

use std::fmt;
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::{command_line, run};
use crate::test_scope::Scope;

/// How long a dropped process gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Poll period while waiting for a process or a file.
pub const POLL: Duration = Duration::from_millis(20);

/// A background process. Its stdout and stderr are in `<label>.stdout` and `<label>.stderr`
/// in the test's folder, printed when the test fails. It runs under
/// `setpriv --pdeathsig TERM`, so it gets SIGTERM if the thread that started it dies (a test
/// binary killed hard): start processes from the test's own thread.
pub struct Process {
    scope: Scope,
    label: String,
    command: String,
    child: Child,
    status: Option<ExitStatus>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Process({} pid {}: {})",
            self.label,
            self.child.id(),
            self.command
        )
    }
}

/// How a stop went.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    pub status: ExitStatus,
    /// True when it had to be killed with SIGKILL after the grace period.
    pub killed: bool,
}

/// `exit code N` or `signal N`, for messages.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => format!("{status:?}"),
    }
}

impl Process {
    /// Starts `cmd` (stdin closed, stdout and stderr to files) under the label `label` (made
    /// unique in the scope).
    pub fn spawn(scope: &Scope, label: &str, cmd: Command) -> Process {
        Process::spawn_labelled(scope, scope.unique_label(label), cmd)
    }

    /// [`spawn`](Self::spawn) with a label already made unique by [`Scope::unique_label`]
    /// (for callers that name other files after it).
    pub fn spawn_labelled(scope: &Scope, label: String, cmd: Command) -> Process {
        let stdout = scope.file(&format!("{label}.stdout"));
        let stderr = scope.file(&format!("{label}.stderr"));
        let mut wrapped = Command::new("setpriv");
        wrapped
            .args(["--pdeathsig", "TERM", "--"])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            wrapped.current_dir(d);
        }
        let command = command_line(&cmd);
        let open = |p: &Path| {
            File::create(p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()))
        };
        wrapped
            .stdin(Stdio::null())
            .stdout(open(&stdout))
            .stderr(open(&stderr));
        let child = wrapped
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        std::fs::write(
            scope.file(&format!("{label}.cmdline")),
            format!("{command}\n"),
        )
        .ok();
        scope.register_log(&format!("{label} stdout"), &stdout);
        scope.register_log(&format!("{label} stderr"), &stderr);
        Process {
            scope: scope.clone(),
            label,
            command,
            child,
            status: None,
            stdout,
            stderr,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn command(&self) -> &str {
        &self.command
    }

    pub fn stdout_path(&self) -> &Path {
        &self.stdout
    }

    pub fn stderr_path(&self) -> &Path {
        &self.stderr
    }

    /// What it wrote on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stdout).unwrap_or_default()).into_owned()
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr).unwrap_or_default()).into_owned()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.label));
        }
        self.status
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`, ...) unless it has exited.
    pub fn signal(&mut self, sig: &str) {
        if self.try_wait().is_none() {
            let pid = self.child.id().to_string();
            let _ = run("kill", &["-s", sig, &pid]);
        }
    }

    /// Sends `sig`, waits up to `grace`, then SIGKILLs it.
    pub fn stop_with(&mut self, sig: &str, grace: Duration) -> Stopped {
        if let Some(status) = self.try_wait() {
            return Stopped {
                status,
                killed: false,
            };
        }
        self.signal(sig);
        if let Some(status) = self.wait_timeout(grace) {
            return Stopped {
                status,
                killed: false,
            };
        }
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.label));
        self.status = Some(status);
        Stopped {
            status,
            killed: true,
        }
    }

    /// Waits until `needle` shows up in its stdout or stderr. Fails early, with its output,
    /// when it exits first.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if self.stderr().contains(needle) || self.stdout().contains(needle) {
                return Ok(());
            }
            if let Some(s) = self.try_wait() {
                return Err(format!(
                    "{} exited ({}) before printing `{needle}`\n--- stdout\n{}--- stderr\n{}",
                    self.label,
                    describe(s),
                    self.stdout(),
                    self.stderr()
                ));
            }
            if start.elapsed() >= timeout {
                return Err(format!(
                    "{} did not print `{needle}` within {timeout:?}\n--- stdout\n{}--- stderr\n{}",
                    self.label,
                    self.stdout(),
                    self.stderr()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let stopped = self.stop_with("TERM", STOP_GRACE);
        if stopped.killed {
            eprintln!(
                "[e2e] {} ignored SIGTERM for {STOP_GRACE:?}: killed",
                self.label
            );
        }
    }
}
