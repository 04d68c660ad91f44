//! Child processes of the harness: started in their own session with a raised CPU priority,
//! paused and resumed with SIGSTOP/SIGCONT, stopped with SIGINT.
//!
//! Priority: with the kernel's autogroup scheduling (Debian's default), `nice` only orders the
//! threads of one session; against a compiler started from another terminal each session gets
//! an equal share. Every benchmark process is therefore started in a session of its own
//! (`setsid`) and that session's autogroup gets nice -20 (`/proc/self/autogroup`, written by a
//! shell that then execs the program; needs root).
//! This changes nothing outside the benchmark's processes and ends with them; other work on
//! the machine still runs, and still preempts a benchmark thread now and then (the generator
//! watches for that, see `sched`).

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Autogroup nice value of benchmark processes.
pub const BOOST_NICE: i32 = -20;

/// A child process of the harness.
#[derive(Debug)]
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    /// Its output (stdout and stderr together).
    pub log: PathBuf,
    paused: bool,
}

/// The stdin and stdout of a child started with [`spawn_piped`].
#[derive(Debug)]
pub struct Pipes {
    /// Its stdin.
    pub stdin: ChildStdin,
    /// Its stdout, line by line (read by a thread).
    pub lines: Receiver<String>,
}

/// Starts `program args` in a new session with its output in `log`, raising the session's
/// priority when `boost` is set (best effort: needs root).
pub fn spawn(
    name: &str,
    program: &Path,
    args: &[String],
    log: &Path,
    boost: bool,
) -> io::Result<Proc> {
    spawn_inner(name, program, args, log, boost, false).map(|(p, _)| p)
}

/// As [`spawn`], with stdin and stdout piped to the caller (stderr goes to `log`).
pub fn spawn_piped(
    name: &str,
    program: &Path,
    args: &[String],
    log: &Path,
    boost: bool,
) -> io::Result<(Proc, Pipes)> {
    let (proc, pipes) = spawn_inner(name, program, args, log, boost, true)?;
    let pipes = pipes.ok_or_else(|| io::Error::other("no pipes"))?;
    Ok((proc, pipes))
}

fn spawn_inner(
    name: &str,
    program: &Path,
    args: &[String],
    log: &Path,
    boost: bool,
    piped: bool,
) -> io::Result<(Proc, Option<Pipes>)> {
    let out = File::create(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new("setsid");
    if boost {
        // The shell raises its own (new) session's autogroup, then becomes the program: no
        // window in which the program runs unboosted, and nothing else is touched.
        cmd.args([
            "sh",
            "-c",
            &format!("echo {BOOST_NICE} > /proc/self/autogroup 2>/dev/null; exec \"$0\" \"$@\""),
        ]);
    }
    cmd.arg(program).args(args).stderr(err);
    if piped {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null()).stdout(out);
    }
    let mut child = cmd.spawn()?;
    let pipes = match (child.stdin.take(), child.stdout.take()) {
        (Some(stdin), Some(stdout)) => {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            Some(Pipes { stdin, lines: rx })
        }
        _ => None,
    };
    Ok((
        Proc {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            paused: false,
        },
        pipes,
    ))
}

impl Proc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal by name (`STOP`, `CONT`, `INT`, `KILL`) to this process only.
    fn signal(&self, sig: &str) -> io::Result<()> {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill -{sig} {} failed",
                self.pid()
            )))
        }
    }

    /// Freezes it (SIGSTOP): a paused device under test uses no CPU.
    pub fn pause(&mut self) -> io::Result<()> {
        self.signal("STOP")?;
        self.paused = true;
        Ok(())
    }

    /// Lets it run again (SIGCONT).
    pub fn resume(&mut self) -> io::Result<()> {
        self.signal("CONT")?;
        self.paused = false;
        Ok(())
    }

    /// Waits until `ready` says so, the process exits, or `timeout` passes.
    pub fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut(&Proc) -> bool,
    ) -> io::Result<Duration> {
        let began = Instant::now();
        loop {
            if ready(self) {
                return Ok(began.elapsed());
            }
            if !self.alive() {
                return Err(io::Error::other(format!(
                    "{} exited before it was ready (see {})",
                    self.name,
                    self.log.display()
                )));
            }
            if began.elapsed() > timeout {
                return Err(io::Error::other(format!(
                    "{} not ready after {timeout:?} (see {})",
                    self.name,
                    self.log.display()
                )));
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit by itself, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let began = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if began.elapsed() > timeout {
                return Ok(None);
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Stops it: SIGINT (after SIGCONT if paused), then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) -> io::Result<Option<ExitStatus>> {
        if !self.alive() {
            return self.child.try_wait();
        }
        if self.paused {
            self.resume()?;
        }
        let _ = self.signal("INT");
        if let Some(status) = self.wait_exit(grace)? {
            return Ok(Some(status));
        }
        let _ = self.signal("KILL");
        self.wait_exit(Duration::from_secs(5))?;
        Ok(None)
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Never leave a device under test running (or frozen) behind.
        let _ = self.stop(Duration::from_secs(10));
    }
}
