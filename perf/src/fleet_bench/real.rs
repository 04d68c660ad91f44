//! A real host: the release `dvrd` with `[fleet]`, EAL on 4 KiB pages, `net_null` ports (one
//! fabric, one per network it may host; they carry no traffic), one adaptive worker. What it
//! applied comes from `dvrctl --json -s SOCK fleet show` (`recent`: revision, `at_us`), polled
//! during a phase since `recent` keeps only the last 4096 revisions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::topo::{HostDef, Topology};

/// A running dvrd; SIGTERM then SIGKILL on drop.
#[derive(Debug)]
pub struct RealHost {
    pub name: String,
    child: Option<Child>,
    dir: PathBuf,
    socket: PathBuf,
    dvrctl: PathBuf,
    /// EAL's runtime folder of this dvrd (`/var/run/dpdk/<prefix>`), removed once it stopped.
    runtime_dir: PathBuf,
    /// Every applied revision seen so far: revision -> (at_us, changes).
    pub seen: BTreeMap<i64, (u64, u32)>,
}

/// What one `fleet show` said.
#[derive(Clone, Debug, Default)]
pub struct Shown {
    pub connected: bool,
    pub applied_revision: i64,
    pub events: u64,
    pub batches: u64,
    pub changes: u64,
    pub rejected: u64,
    pub recent: Vec<(i64, u64, u32)>,
}

fn toml_str(s: &str) -> String {
    format!("{s:?}")
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// EAL's file prefix of real host `index` (unique per benchmark process).
fn file_prefix(index: usize) -> String {
    format!("fleetbench-{}-{index}", std::process::id())
}

/// The config of real host `index`: control thread and worker on different CPUs where there
/// are two, alternating between hosts so that the daemons spread over the cores.
pub fn config_text(
    host: &HostDef,
    topo: &Topology,
    index: usize,
    endpoint: &str,
    dir: &Path,
    socket: &Path,
) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let main_core = index % cpus;
    let worker_core = (index + 1) % cpus;
    let mut names = vec!["fabric".to_string()];
    names.extend(host.networks(topo).map(|j| topo.networks[j].name.clone()));
    let vdevs: Vec<String> = (0..names.len())
        .map(|i| format!("net_null{i},no-rx=1"))
        .collect();
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(w, "# Written by dvr-fleet-bench.\n");
    let _ = writeln!(
        w,
        "[eal]\nmain_core = {main_core}\nhugepages = false\nmemory_mb = 256\nfile_prefix = {}\npci = false\nvdevs = {}\nextra_args = []\n",
        toml_str(&file_prefix(index)),
        toml_list(&vdevs)
    );
    let _ = writeln!(w, "[dataplane]\nidle = \"adaptive\"\nmbufs = 4095\n");
    let _ = writeln!(
        w,
        "[[workers]]\ncore = {worker_core}\nrx = {}\n",
        toml_list(&names)
    );
    for (i, name) in names.iter().enumerate() {
        let _ = writeln!(
            w,
            "[[ports]]\nname = {}\ndevice = \"net_null{i}\"{}\n",
            toml_str(name),
            if i == 0 { "\nfabric = true" } else { "" }
        );
    }
    let _ = writeln!(
        w,
        "[tables]\nnext_hops = 32768\nl2_entries = 32768\ntbl8_groups_compact = 32\n"
    );
    let _ = writeln!(
        w,
        "[control]\nsocket = {}\n",
        toml_str(&socket.to_string_lossy())
    );
    let _ = writeln!(w, "[log]\nlevel = \"warn\"\n");
    let _ = writeln!(
        w,
        "[fleet]\nendpoints = {}\nhost = {}\nsnapshot = {}\nlease_ttl_s = 30",
        toml_list(&[endpoint.to_string()]),
        toml_str(&host.name),
        toml_str(&dir.join("snapshot.json").to_string_lossy())
    );
    t
}

impl RealHost {
    /// Starts dvrd for `host` with its files in `dir`; waits for its ready file.
    pub fn start(
        dvrd: &Path,
        dvrctl: &Path,
        host: &HostDef,
        topo: &Topology,
        index: usize,
        endpoint: &str,
        dir: PathBuf,
    ) -> Result<RealHost, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let socket = dir.join("dvrd.sock");
        let config = dir.join("dvrd.toml");
        let ready = dir.join("ready");
        std::fs::write(
            &config,
            config_text(host, topo, index, endpoint, &dir, &socket),
        )
        .map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("dvrd.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(dvrd);
        cmd.arg("-c").arg(&config).arg("--ready-file").arg(&ready);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("DVR_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("{}: {e}", dvrd.display()))?;
        let mut real = RealHost {
            name: host.name.clone(),
            child: Some(child),
            dir,
            socket,
            dvrctl: dvrctl.to_path_buf(),
            runtime_dir: eal_runtime_dir().join(file_prefix(index)),
            seen: BTreeMap::new(),
        };
        let start = Instant::now();
        while !ready.exists() {
            if let Some(c) = real.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(format!(
                        "dvrd {} exited ({status}):\n{}",
                        real.name,
                        real.log_tail()
                    ));
                }
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "dvrd {} not ready in 60 s:\n{}",
                    real.name,
                    real.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(real)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("dvrd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `dvrctl --json -s SOCK fleet show`, parsed; what it applied is merged into `seen`.
    pub fn show(&mut self) -> Result<Shown, String> {
        let out = Command::new(&self.dvrctl)
            .arg("--json")
            .arg("-s")
            .arg(&self.socket)
            .args(["fleet", "show"])
            .output()
            .map_err(|e| format!("{}: {e}", self.dvrctl.display()))?;
        if !out.status.success() {
            return Err(format!(
                "dvrctl fleet show on {}: {}{}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let v: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("dvrctl fleet show on {}: {e}", self.name))?;
        let v = if v.get("recent").is_some() {
            v
        } else {
            v.get("result").cloned().unwrap_or(v)
        };
        let num = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        let recent: Vec<(i64, u64, u32)> = v
            .get("recent")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e.get("revision").and_then(Value::as_i64).unwrap_or(0),
                            e.get("at_us").and_then(Value::as_u64).unwrap_or(0),
                            u32::try_from(e.get("changes").and_then(Value::as_u64).unwrap_or(0))
                                .unwrap_or(u32::MAX),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        for &(rev, at, n) in &recent {
            self.seen.insert(rev, (at, n));
        }
        Ok(Shown {
            connected: v.get("state").and_then(Value::as_str) == Some("connected"),
            applied_revision: v
                .get("applied_revision")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            events: num("events"),
            batches: num("batches"),
            changes: num("changes"),
            rejected: num("rejected_total"),
            recent,
        })
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Removes what EAL left of this dvrd once it stopped.
    fn clean(&self) {
        if self.child.is_none() {
            let _ = std::fs::remove_dir_all(&self.runtime_dir);
        }
    }
}

/// Where EAL keeps its runtime files: `/var/run/dpdk` for root, else under
/// `$XDG_RUNTIME_DIR` (or `/tmp`).
fn eal_runtime_dir() -> PathBuf {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next().map(|u| u == "0"))
        .unwrap_or(false);
    if root {
        PathBuf::from("/var/run/dpdk")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
            .join("dpdk")
    }
}

impl Drop for RealHost {
    fn drop(&mut self) {
        self.stop();
        self.clean();
    }
}

/// `VmRSS` of a process in KiB (`self` for this one).
pub fn rss_kib(pid: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of a process, in seconds (clock ticks of 100 Hz).
pub fn cpu_s(pid: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    ticks_of(&text) as f64 / 100.0
}

fn ticks_of(stat: &str) -> u64 {
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the ')'.
    get(11) + get(12)
}

/// CPU seconds of this process's threads, summed by thread name.
pub fn thread_cpu_s() -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let p = e.path();
        let name = std::fs::read_to_string(p.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        *out.entry(name).or_insert(0.0) += ticks_of(&stat) as f64 / 100.0;
    }
    out
}
