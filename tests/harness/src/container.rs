//! The shipped artefacts under test: the Debian package (`packaging/make-deb.sh`) and the
//! container image of the Dockerfile's `runtime` stage, which installs that package, and dvrd
//! running in a container of it.
//!
//! CI starts from a bare Debian 12 with Debian's `docker.io`: [`Docker::up`] starts `dockerd`
//! when none answers (and stops it again when the test is done), and the `debian:12` base
//! image, which no registry gives these machines, is made by `scripts/docker-base-image.sh`.
//! A [`DvrdContainer`] runs the image with the capabilities dvrd needs ([`CAPABILITIES`]) on
//! the host's network, so that its
//! `net_af_packet` ports open the host ends of the instances' veths in the root namespace,
//! with the test's folder and the control socket folder mounted at the same paths: its ready
//! file, summary and socket are where the harness looks for a dvrd's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cmd::{output_of, run, CmdOutput};
use crate::config::DvrdConfig;
use crate::dvrd::{DvrdExit, Summary, READY_TIMEOUT, STOP_TIMEOUT};
use crate::process::{Process, POLL};
use crate::test_scope::Scope;

/// The tag of the image the tests build; kept afterwards, so the next build reuses its layers.
pub const IMAGE: &str = "dvrd:e2e";
/// How long a `dockerd` started here gets to answer.
const DOCKERD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a `dockerd` started here gets to stop its containers and exit.
const DOCKERD_STOP: Duration = Duration::from_secs(30);
/// The capabilities dvrd needs on `net_af_packet` ports without hugepages: raw sockets and
/// interface flags (NET_RAW, NET_ADMIN), locked memory (IPC_LOCK), EAL's view of memory
/// (SYS_ADMIN), and SYS_NICE, without which Docker's seccomp profile refuses libnuma's memory
/// policy calls. Not `--privileged`: it asks for every capability, and runc fails ("unable to
/// apply caps") on hosts whose bounding set lacks one (these machines lack CAP_SYS_RESOURCE).
pub const CAPABILITIES: &[&str] = &["NET_RAW", "NET_ADMIN", "IPC_LOCK", "SYS_ADMIN", "SYS_NICE"];
/// Where dvrd's exit code lands when `docker stop` had to kill it (128 + SIGKILL).
const KILLED_EXIT_CODE: i32 = 137;

/// The source tree: the root package's folder, where the Dockerfile and the scripts are.
pub fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the source tree")
}

/// Runs `packaging/make-deb.sh` on the binaries under test (the folder of the scope's dvrd)
/// with the package written to `out_dir`; returns the package's path.
pub fn build_package(scope: &Scope, out_dir: &Path) -> PathBuf {
    let bin_dir = scope.dvrd_binary();
    let bin_dir = bin_dir.parent().expect("the binaries' folder");
    let script = source_root().join("packaging/make-deb.sh");
    let out = output_of(Command::new(&script).arg(bin_dir).arg(out_dir)).ok();
    let deb = PathBuf::from(out.stdout.trim());
    assert!(deb.is_file(), "make-deb.sh printed no package path: {out}");
    deb
}

/// The Docker daemon, for the length of a test.
#[derive(Debug)]
pub struct Docker {
    /// The `dockerd` this test started; `None` when one was running already.
    started: Option<Process>,
}

impl Docker {
    /// Connects to the running daemon, or starts `dockerd` (as root, in the background, its
    /// log in the test's folder) and waits until it answers.
    pub fn up(scope: &Scope) -> Docker {
        if docker(&["info"]).success() {
            return Docker { started: None };
        }
        let mut dockerd = Process::spawn(scope, "dockerd", Command::new("dockerd"));
        let start = Instant::now();
        while !(Path::new("/var/run/docker.sock").exists() && docker(&["info"]).success()) {
            if let Some(status) = dockerd.try_wait() {
                panic!("dockerd exited ({status}):\n{}", dockerd.stderr());
            }
            assert!(
                start.elapsed() < DOCKERD_TIMEOUT,
                "dockerd did not answer within {DOCKERD_TIMEOUT:?}:\n{}",
                dockerd.stderr()
            );
            std::thread::sleep(POLL * 10);
        }
        eprintln!("[e2e] started dockerd ({:?})", start.elapsed());
        Docker {
            started: Some(dockerd),
        }
    }

    /// Makes sure of the `debian:12` base image, then builds [`IMAGE`] from the Dockerfile's
    /// `runtime` stage: the package in `target/debian/` installed by apt in a clean Debian 12.
    /// Its output is in `image-build.log` in the test's folder.
    pub fn build_runtime_image(&self, scope: &Scope) -> String {
        let root = source_root();
        run_logged(
            scope,
            "base-image",
            Command::new(root.join("scripts/docker-base-image.sh")),
        );
        let mut build = Command::new("docker");
        build
            .args(["build", "--target", "runtime", "-t", IMAGE])
            .arg(&root);
        run_logged(scope, "image-build", build);
        IMAGE.to_string()
    }

    /// The image's size in bytes, as `docker image inspect` reports it.
    pub fn image_size_bytes(&self, image: &str) -> u64 {
        let out = docker(&["image", "inspect", "-f", "{{.Size}}", image]).ok();
        out.stdout
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("image size `{}`: {e}", out.stdout.trim()))
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if let Some(mut dockerd) = self.started.take() {
            let stopped = dockerd.stop_with("TERM", DOCKERD_STOP);
            if stopped.killed {
                eprintln!("[e2e] dockerd ignored SIGTERM for {DOCKERD_STOP:?}: killed");
            }
        }
    }
}

/// Runs `docker args...` to completion.
pub fn docker(args: &[&str]) -> CmdOutput {
    run("docker", args)
}

/// Runs `cmd` with its output in `<label>.log` in the test's folder; panics with the log's
/// end unless it exits with 0.
fn run_logged(scope: &Scope, label: &str, mut cmd: Command) {
    let log = scope.file(&format!("{label}.log"));
    scope.register_log(label, &log);
    let out = output_of(&mut cmd);
    std::fs::write(&log, format!("{}{}", out.stdout, out.stderr)).ok();
    assert!(out.success(), "{out}");
}

/// dvrd in a container of an image: with [`CAPABILITIES`], on the host's network, its config mounted at
/// `/etc/dvrd/dvrd.toml`. Dropping it removes the container.
#[derive(Debug)]
pub struct DvrdContainer {
    name: String,
    ready_path: PathBuf,
    summary_path: PathBuf,
    control_socket: PathBuf,
}

impl DvrdContainer {
    /// Writes `cfg` as `<label>.toml`, starts the container `<prefix>-<label>` and waits until
    /// dvrd in it is ready.
    pub fn start(scope: &Scope, label: &str, image: &str, cfg: &DvrdConfig) -> DvrdContainer {
        let name = format!("{}-{label}", scope.prefix());
        // A container of a crashed run holds the name.
        let _ = docker(&["rm", "-f", &name]);
        let socket = scope.socket_path(label);
        let config = scope.file(&format!("{label}.toml"));
        std::fs::write(&config, cfg.to_toml(&scope.dpdk_prefix(label), &socket))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        scope.register_log(&format!("{label} config"), &config);
        let c = DvrdContainer {
            name,
            ready_path: scope.file(&format!("{label}.ready")),
            summary_path: scope.file(&format!("{label}.summary.json")),
            control_socket: socket,
        };
        let same_path = |p: &Path| format!("{0}:{0}", p.display());
        let socket_dir = c.control_socket.parent().expect("the socket's folder");
        let mut args = vec![
            "run".to_string(),
            "-d".into(),
            "--name".into(),
            c.name.clone(),
        ];
        for cap in CAPABILITIES {
            args.extend(["--cap-add".to_string(), cap.to_string()]);
        }
        args.extend([
            "--network".into(),
            "host".into(),
            "-v".into(),
            format!("{}:/etc/dvrd/dvrd.toml:ro", config.display()),
            "-v".into(),
            same_path(scope.dir()),
            "-v".into(),
            same_path(socket_dir),
            image.into(),
            "--ready-file".into(),
            c.ready_path.display().to_string(),
            "--summary-json".into(),
            c.summary_path.display().to_string(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args).ok();
        c.wait_ready();
        c
    }

    /// Waits for the ready file; panics with the container's log if it stops first.
    fn wait_ready(&self) {
        let start = Instant::now();
        while !self.ready_path.exists() {
            let running = docker(&["inspect", "-f", "{{.State.Running}}", &self.name]);
            assert!(
                running.stdout.trim() == "true",
                "container {} stopped before dvrd was ready\n{}",
                self.name,
                self.logs()
            );
            assert!(
                start.elapsed() < READY_TIMEOUT,
                "dvrd in container {} was not ready within {READY_TIMEOUT:?}\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(POLL * 5);
        }
        eprintln!("[e2e] {} ready after {:?}", self.name, start.elapsed());
    }

    /// The control API socket of the dvrd inside, on the host.
    pub fn control_socket(&self) -> &Path {
        &self.control_socket
    }

    /// `docker logs`: dvrd's stdout (the summary at exit) and stderr (its log).
    pub fn logs(&self) -> CmdOutput {
        docker(&["logs", &self.name])
    }

    /// `docker stop` (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]), then how dvrd ended: the
    /// container's exit code, its output and the summary it wrote.
    pub fn stop(self) -> DvrdExit {
        let grace = STOP_TIMEOUT.as_secs().to_string();
        docker(&["stop", "-t", &grace, &self.name]).ok();
        let state = docker(&["inspect", "-f", "{{.State.ExitCode}}", &self.name]).ok();
        let code: i32 = state
            .stdout
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("exit code `{}`: {e}", state.stdout.trim()));
        let logs = self.logs();
        let summary = std::fs::read_to_string(&self.summary_path)
            .map_err(|e| format!("{}: {e}", self.summary_path.display()))
            .and_then(|text| {
                serde_json::from_str(&text)
                    .map(Summary)
                    .map_err(|e| format!("{}: not JSON ({e})", self.summary_path.display()))
            });
        DvrdExit {
            code: Some(code),
            signal: None,
            killed: code == KILLED_EXIT_CODE,
            stdout: logs.stdout,
            stderr: logs.stderr,
            summary,
        }
    }
}

impl Drop for DvrdContainer {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}
