//! `dvrctl`, the operator's control client, on one daemon's control socket: how the API tests
//! drive a running dvrd, the way an operator would.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::cmd::{output_of, CmdOutput};
use crate::dvrd::Dvrd;
use crate::test_scope::Scope;

/// `dvrctl --socket SOCKET`, optionally pinned to a CPU (`taskset -c`).
#[derive(Debug, Clone)]
pub struct Dvrctl {
    binary: PathBuf,
    socket: PathBuf,
    cpu: Option<String>,
}

impl Dvrctl {
    /// `dvrctl` on the control socket of `dvrd`.
    pub fn of(dvrd: &Dvrd) -> Dvrctl {
        Dvrctl::at(dvrd.scope(), dvrd.control_socket())
    }

    /// `dvrctl` on `socket`, whether a daemon listens there or not.
    pub fn at(scope: &Scope, socket: &Path) -> Dvrctl {
        Dvrctl {
            binary: scope.dvrctl_binary(),
            socket: socket.to_path_buf(),
            cpu: None,
        }
    }

    /// The same client, run on CPU `cpu` only.
    pub fn pinned(self, cpu: &str) -> Dvrctl {
        Dvrctl {
            cpu: Some(cpu.to_string()),
            ..self
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The command, arguments still to add.
    pub fn command(&self) -> Command {
        let mut cmd = match &self.cpu {
            Some(cpu) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", cpu]).arg(&self.binary);
                taskset
            }
            None => Command::new(&self.binary),
        };
        cmd.arg("--socket").arg(&self.socket);
        cmd
    }

    /// Runs `dvrctl ARGS...` and returns its output, whatever the exit code.
    pub fn run_args(&self, args: &[&str]) -> CmdOutput {
        output_of(self.command().args(args))
    }

    /// Runs `dvrctl ARGS` (split at white space) and returns its output, whatever the exit
    /// code.
    pub fn run(&self, args: &str) -> CmdOutput {
        output_of(self.command().args(args.split_whitespace()))
    }

    /// Runs `dvrctl ARGS`, panics unless it exits with 0, returns stdout.
    pub fn ok(&self, args: &str) -> String {
        self.run(args).ok().stdout
    }

    /// Runs `dvrctl --json ARGS` and parses its output.
    pub fn json(&self, args: &str) -> Value {
        let out = self.ok(&format!("--json {args}"));
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("dvrctl --json {args}: not JSON ({e}):\n{out}"))
    }

    /// Runs `dvrctl ARGS`, panics if it succeeds, returns the exit code and stderr.
    pub fn fails(&self, args: &str) -> (i32, String) {
        let out = self.run(args);
        assert!(!out.success(), "`dvrctl {args}` should have failed:\n{out}");
        (out.code.unwrap_or(-1), out.stderr)
    }
}
