//! The scope of one test: its name prefix, its log folder, the lock against a concurrent run
//! of the same test, and the sweeps of leftovers.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cmd::{require_environment, run};

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const IFNAME_LEN_MAX: usize = 15;
/// Length of the prefix of every name a scope creates: `dvt` (tests) or `dvd` (the demo) and
/// four hex digits (`dvt` and `dvd` are what `scripts/netns-cleanup.sh` removes after an
/// interrupted run).
pub const PREFIX_LEN: usize = 7;
/// The first letters of every name a test creates.
pub const TEST_PREFIX: &str = "dvt";
/// The first letters of every name the demo (`dvr-demo`) creates.
pub const DEMO_PREFIX: &str = "dvd";
/// How long a test waits for another live run of the same test to finish.
const LOCK_WAIT: Duration = Duration::from_secs(120);
/// Where the lock files live (tmpfs: gone after a reboot, like the namespaces).
const LOCK_DIR: &str = "/run/dvrd-e2e";
/// Where control sockets live: short paths (a Unix socket path has at most 107 bytes; the
/// test folders are deeper).
const SOCKET_DIR: &str = "/run/dvrd-e2e/sockets";
/// Where EAL keeps its runtime folders (`--file-prefix`).
pub const DPDK_RUN_DIR: &str = "/var/run/dpdk";
/// Lines of each log printed when a test fails (the whole file stays on disk).
const LOG_TAIL_LINES: usize = 150;

/// Where the build put what a scope needs, as Cargo tells an integration test at its compile
/// time ([`build_paths!`](crate::build_paths)): its scratch folder (`CARGO_TARGET_TMPDIR`)
/// and the binaries of the package under test (`CARGO_BIN_EXE_<name>`). Each is `None`
/// elsewhere (the demo): the binaries are then the ones next to the running executable.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildPaths {
    pub tmp_dir: Option<&'static str>,
    pub dvrd: Option<&'static str>,
    pub dvrctl: Option<&'static str>,
}

/// The executable `name` in the folder of the running one (`target/release/dvrd` next to
/// `target/release/dvr-demo`), or `name` alone (looked up on `PATH`) when that is unknown.
pub fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The scope of one test. Cheap to clone; every guard holds a clone, and the final sweep
/// runs when the last one is dropped.
#[derive(Clone)]
pub struct Scope {
    inner: Arc<Inner>,
}

struct Inner {
    test: String,
    prefix: String,
    dir: PathBuf,
    lock: PathBuf,
    build: BuildPaths,
    /// Log files to show when the test fails, in creation order: (label, path).
    logs: Mutex<Vec<(String, PathBuf)>>,
    /// Labels handed out, to keep them unique.
    labels: Mutex<BTreeMap<String, u32>>,
    /// No progress messages on stderr (the demo prints its own).
    quiet: bool,
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({} as {})", self.inner.test, self.inner.prefix)
    }
}

/// FNV-1a, 32 bits: a stable hash (std's hasher may change between releases).
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The name prefix of a test: `dvt` and four hex digits of the hash of its path.
pub fn prefix_of(test: &str) -> String {
    prefix_with(TEST_PREFIX, test)
}

/// `base` and four hex digits of the hash of `name`.
pub fn prefix_with(base: &str, name: &str) -> String {
    let h = fnv1a(name);
    format!("{base}{:04x}", (h >> 16) ^ (h & 0xffff))
}

impl Scope {
    /// Checks the environment, waits for any live run of the same test, removes the leftovers
    /// of an earlier run, and creates an empty log folder. `test` is the test's path
    /// (`file::function`); use the `scope!()` macro, which passes `build` too.
    pub fn new(test: &str, build: BuildPaths) -> Scope {
        require_environment();
        // Under `cargo test` logs go to the target folder; elsewhere under /tmp.
        let base = build
            .tmp_dir
            .map_or_else(|| std::env::temp_dir().join("dvr"), PathBuf::from);
        let mut dir = base.join("e2e");
        for part in test.split("::") {
            dir.push(part);
        }
        let scope = Scope::create(test, prefix_of(test), dir, build, false);
        eprintln!(
            "[e2e] {test}: names start with `{}`, logs in {}",
            scope.prefix(),
            scope.dir().display()
        );
        scope
    }

    /// The scope of the demo `name` (`dvr-demo`): names start with `dvd`, logs go to
    /// `/tmp/dvr-demo/` (emptied at the start). The caller checks the environment first
    /// ([`environment_problems`](crate::cmd::environment_problems)) and says what is missing
    /// in its own words.
    pub fn demo(name: &str) -> Scope {
        let dir = std::env::temp_dir().join("dvr-demo");
        let prefix = prefix_with(DEMO_PREFIX, name);
        Scope::create(name, prefix, dir, BuildPaths::default(), true)
    }

    /// Waits for any live run of the same name, sweeps the leftovers of an earlier one, and
    /// creates the empty folder `dir`.
    fn create(test: &str, prefix: String, dir: PathBuf, build: BuildPaths, quiet: bool) -> Scope {
        assert_eq!(prefix.len(), PREFIX_LEN);
        let lock = acquire_lock(&prefix, test);
        sweep(&prefix, &dir);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => panic!("cannot remove the old log folder {}: {e}", dir.display()),
        }
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Scope {
            inner: Arc::new(Inner {
                test: test.to_string(),
                prefix,
                dir,
                lock,
                build,
                logs: Mutex::new(Vec::new()),
                labels: Mutex::new(BTreeMap::new()),
                quiet,
            }),
        }
    }

    /// The `dvrd` under test: the one Cargo built for this test run, else the one next to the
    /// running executable.
    pub fn dvrd_binary(&self) -> PathBuf {
        self.inner
            .build
            .dvrd
            .map_or_else(|| sibling_binary("dvrd"), PathBuf::from)
    }

    /// The `dvrctl` under test, found like [`dvrd_binary`](Self::dvrd_binary).
    pub fn dvrctl_binary(&self) -> PathBuf {
        self.inner
            .build
            .dvrctl
            .map_or_else(|| sibling_binary("dvrctl"), PathBuf::from)
    }

    /// True when progress messages are not wanted on stderr (the demo's scope).
    pub fn is_quiet(&self) -> bool {
        self.inner.quiet
    }

    /// The test's path.
    pub fn test(&self) -> &str {
        &self.inner.test
    }

    /// The prefix of every name this scope creates.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The test's folder: configs, logs, captures. Kept after the test.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// A path in the test's folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.inner.dir.join(name)
    }

    /// A root-namespace interface name: the prefix and `tag`, at most 15 characters.
    pub fn ifname(&self, tag: &str) -> String {
        check_tag(tag);
        let name = format!("{}{tag}", self.inner.prefix);
        assert!(
            name.len() <= IFNAME_LEN_MAX,
            "interface name `{name}` is longer than {IFNAME_LEN_MAX} characters: use a tag of at most {} characters",
            IFNAME_LEN_MAX - PREFIX_LEN - 1
        );
        name
    }

    /// A namespace name: the prefix, `-` and `tag`.
    pub fn nsname(&self, tag: &str) -> String {
        check_tag(tag);
        format!("{}-{tag}", self.inner.prefix)
    }

    /// An EAL `--file-prefix` for the process labelled `label`.
    pub fn dpdk_prefix(&self, label: &str) -> String {
        check_tag(label);
        format!("{}{label}", self.inner.prefix)
    }

    /// A Unix socket path for the process labelled `label`, outside the (deep) test folder.
    pub fn socket_path(&self, label: &str) -> PathBuf {
        check_tag(label);
        fs::create_dir_all(SOCKET_DIR)
            .unwrap_or_else(|e| panic!("cannot create {SOCKET_DIR}: {e}"));
        PathBuf::from(SOCKET_DIR).join(format!("{}{label}.sock", self.inner.prefix))
    }

    /// `label`, or `label-2`, `label-3`... when it was handed out before.
    pub fn unique_label(&self, label: &str) -> String {
        let mut labels = self.inner.labels.lock().unwrap_or_else(|e| e.into_inner());
        let n = labels.entry(label.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 {
            label.to_string()
        } else {
            format!("{label}-{n}")
        }
    }

    /// Registers a log file to print when the test fails.
    pub fn register_log(&self, label: &str, path: &Path) {
        let mut logs = self.inner.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.push((label.to_string(), path.to_path_buf()));
    }

    /// The last lines of every registered log, for failure messages.
    pub fn logs_tail(&self) -> String {
        let logs = self.inner.logs.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (label, path) in logs.iter() {
            out.push_str(&format!("\n===== {label}: {}\n", path.display()));
            out.push_str(&tail(path, LOG_TAIL_LINES));
        }
        out
    }
}

/// Names are built from tags: lower-case letters, digits, `-` only.
fn check_tag(tag: &str) {
    assert!(
        !tag.is_empty()
            && tag
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
        "tag `{tag}`: use lower-case letters, digits and `-`"
    );
}

/// The last `lines` lines of a text file (or why it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let skip = all.len().saturating_sub(lines);
            let mut out = String::new();
            if skip > 0 {
                out.push_str(&format!("[... {skip} earlier lines]\n"));
            }
            for l in &all[skip..] {
                out.push_str(l);
                out.push('\n');
            }
            if all.is_empty() {
                out.push_str("[empty]\n");
            }
            out
        }
        Err(e) => format!("[cannot read: {e}]\n"),
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "[e2e] {} FAILED; logs of its processes follow (all files in {})",
                self.test,
                self.dir.display()
            );
            for (label, path) in logs.iter() {
                eprintln!("===== {label}: {}", path.display());
                eprint!("{}", tail(path, LOG_TAIL_LINES));
            }
            eprintln!("===== end of logs");
        }
        sweep(&self.prefix, &self.dir);
        let _ = fs::remove_file(&self.lock);
    }
}

/// Takes `/run/dvrd-e2e/<prefix>.lock`, waiting while a live process holds it; a lock whose
/// process is gone (a crashed run) is taken over.
fn acquire_lock(prefix: &str, test: &str) -> PathBuf {
    fs::create_dir_all(LOCK_DIR).unwrap_or_else(|e| panic!("cannot create {LOCK_DIR}: {e}"));
    let path = PathBuf::from(LOCK_DIR).join(format!("{prefix}.lock"));
    let me = std::process::id();
    let start = Instant::now();
    loop {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => {
                fs::write(&path, format!("{me} {test}\n"))
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
                return path;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                let pid: Option<u32> = holder
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse().ok());
                let alive =
                    pid.is_some_and(|p| p != me && Path::new(&format!("/proc/{p}")).exists());
                if !alive {
                    // A crashed run (or a half-written file): take it over.
                    let _ = fs::remove_file(&path);
                    continue;
                }
                assert!(
                    start.elapsed() < LOCK_WAIT,
                    "another run of {test} (lock {} held by `{}`) did not finish within {LOCK_WAIT:?}",
                    path.display(),
                    holder.trim()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("cannot create {}: {e}", path.display()),
        }
    }
}

/// Removes everything a scope with this prefix may have left: processes whose command line
/// names the scope's folder, namespaces (and the processes in them), root-namespace links,
/// EAL runtime folders and hugepage files.
pub fn sweep(prefix: &str, dir: &Path) {
    kill_processes_mentioning(dir);
    let netns = run("ip", &["netns", "list"]);
    for line in netns.stdout.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with(&format!("{prefix}-")) {
            kill_netns_processes(name);
            let out = run("ip", &["netns", "del", name]);
            if !out.success() {
                eprintln!("[e2e] sweep: {out}");
            }
        }
    }
    for name in root_links() {
        if name.starts_with(prefix) {
            // A veth pair goes with either end: the other may already be gone.
            let _ = run("ip", &["link", "del", &name]);
        }
    }
    for base in [DPDK_RUN_DIR, "/dev/hugepages", SOCKET_DIR] {
        if let Ok(entries) = fs::read_dir(base) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(prefix) {
                    let p = e.path();
                    let _ = if p.is_dir() {
                        fs::remove_dir_all(&p)
                    } else {
                        fs::remove_file(&p)
                    };
                }
            }
        }
    }
}

/// Names of the links of the root namespace.
pub fn root_links() -> Vec<String> {
    let out = run("ip", &["-o", "link", "show"]);
    out.stdout
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// SIGKILLs the processes inside namespace `name`.
pub fn kill_netns_processes(name: &str) {
    let pids = run("ip", &["netns", "pids", name]);
    for pid in pids.stdout.split_whitespace() {
        let _ = run("kill", &["-s", "KILL", pid]);
    }
}

/// SIGKILLs every process (but this one) whose command line contains `dir`: the daemons and
/// captures of a crashed run, whose configs and pcap files live there.
fn kill_processes_mentioning(dir: &Path) {
    // With the trailing slash, `.../e2e/f/ping/` does not match `.../e2e/f/ping_gateway/x`.
    let needle = format!("{}/", dir.to_string_lossy());
    let me = std::process::id().to_string();
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if pid == me || !pid.bytes().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            eprintln!("[e2e] sweep: killing leftover process {pid}: {cmdline}");
            let _ = run("kill", &["-s", "KILL", &pid]);
        }
    }
}
