//! The devices under test: how each is started, when it is ready, what it reports at exit.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::proc::{self, Proc};
use super::topo::{self, DvrdPath};

/// A device under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DutKind {
    /// `dpdk-testpmd --forward-mode=io`: receive and send back out, nothing else. The
    /// forwarding ceiling of the harness.
    #[serde(rename = "testpmd-io")]
    TestpmdIo,
    /// DPDK's l3fwd example in LPM mode with the benchmark's routes.
    #[serde(rename = "l3fwd")]
    L3fwd,
    /// dvrd routing between two local ports.
    #[serde(rename = "dvrd")]
    Dvrd,
    /// dvrd routing to a peer host: VXLAN encapsulation out of the fabric port.
    #[serde(rename = "dvrd-vxlan")]
    DvrdVxlan,
    /// dvrd sending from an instance with a floating IP to the outside: SNAT out of the
    /// external port.
    #[serde(rename = "dvrd-fip")]
    DvrdFip,
}

impl DutKind {
    /// Every kind, in report order.
    pub const ALL: [DutKind; 5] = [
        DutKind::TestpmdIo,
        DutKind::L3fwd,
        DutKind::Dvrd,
        DutKind::DvrdVxlan,
        DutKind::DvrdFip,
    ];

    /// Short name (file names, JSON keys).
    pub fn name(self) -> &'static str {
        match self {
            DutKind::TestpmdIo => "testpmd-io",
            DutKind::L3fwd => "l3fwd",
            DutKind::Dvrd => "dvrd",
            DutKind::DvrdVxlan => "dvrd-vxlan",
            DutKind::DvrdFip => "dvrd-fip",
        }
    }

    /// Parses a short name.
    pub fn from_name(s: &str) -> Option<DutKind> {
        DutKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for DutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the programs are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Programs {
    /// `dpdk-testpmd`.
    pub testpmd: PathBuf,
    /// The l3fwd built by `bench/build-l3fwd.sh`.
    pub l3fwd: PathBuf,
    /// l3fwd's default IPv6 rule file (it wants one; the benchmark sends no IPv6).
    pub l3fwd_rules_v6: PathBuf,
    /// `dvrd` (release build).
    pub dvrd: PathBuf,
    /// `dvr-pktgen` (release build).
    pub pktgen: PathBuf,
}

/// CPU placement (see BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The device under test's forwarding core.
    pub worker_core: usize,
    /// The device under test's main lcore (control thread; mostly asleep). By default the
    /// worker's CPU: on the generator's, its wake-ups would take time from the generator.
    pub main_core: usize,
    /// The generator's core.
    pub generator_core: usize,
}

impl Placement {
    /// EAL lcore options for a main lcore and one forwarding lcore: `-l main,worker`, or two
    /// lcores on one CPU (`--lcores=0@cpu,1@cpu`) when they share it.
    pub fn lcore_args(main: usize, worker: usize) -> Vec<String> {
        if main == worker {
            vec![
                format!("--lcores=0@{main},1@{main}"),
                "--main-lcore=0".into(),
            ]
        } else {
            vec![
                "-l".into(),
                format!("{main},{worker}"),
                "--main-lcore".into(),
                main.to_string(),
            ]
        }
    }
}

/// A started device under test.
#[derive(Debug)]
pub struct Dut {
    /// What it is.
    pub kind: DutKind,
    /// The process.
    pub proc: Proc,
    /// dvrd's exit summary (`--summary-json`).
    pub summary: Option<PathBuf>,
    /// How long it took to become ready.
    pub ready_s: f64,
    /// The command line.
    pub command: Vec<String>,
}

/// How to start one device for one block of the run.
#[derive(Debug, Clone)]
pub struct DutStart<'a> {
    /// Which.
    pub kind: DutKind,
    /// The programs.
    pub programs: &'a Programs,
    /// Folder for its files (configs, logs, summary).
    pub dir: &'a Path,
    /// The l3fwd rule file of the block's routes.
    pub l3fwd_rules: &'a Path,
    /// Placement.
    pub placement: Placement,
    /// Hugepages (otherwise `--no-huge`).
    pub hugepages: bool,
    /// Raise the priority (see `proc`).
    pub boost: bool,
    /// Routes in the table (to size the readiness timeout).
    pub routes: usize,
}

/// Readiness timeout: loading a million routes into l3fwd's `rte_lpm` takes about a minute
/// (`rte_lpm_add` searches the rules of a depth linearly).
fn ready_timeout(routes: usize) -> Duration {
    Duration::from_secs(60) + Duration::from_micros(300 * routes as u64)
}

/// The EAL arguments of testpmd and l3fwd after their lcore options: the file prefix, no PCI,
/// the memory, the two server ports.
fn eal_args(name: &str, lcores: Vec<String>, hugepages: bool) -> Vec<String> {
    let mut a = lcores;
    a.push(format!("--file-prefix=bench-{name}"));
    a.push("--no-pci".into());
    if !hugepages {
        a.extend(["--no-huge", "-m", "1024"].map(String::from));
    }
    a.extend((0..2).map(|i| format!("--vdev={}", topo::server_vdev(name, i))));
    a
}

/// A device's program, its arguments and (dvrd) where its exit summary goes.
struct Launch<'a> {
    program: &'a Path,
    args: Vec<String>,
    summary: Option<PathBuf>,
}

/// testpmd's forwarding core, queues and pool, as a device and as the generator alike.
pub const TESTPMD_QUEUES: [&str; 7] = [
    "--nb-cores=1",
    "--rxq=1",
    "--txq=1",
    "--burst=32",
    "--rxd=1024",
    "--txd=1024",
    "--total-num-mbufs=16384",
];

fn testpmd<'a>(s: &DutStart<'a>) -> Launch<'a> {
    let p = s.placement;
    let lcores = Placement::lcore_args(p.main_core, p.worker_core);
    let mut args = eal_args(s.kind.name(), lcores, s.hugepages);
    args.extend(["--", "--forward-mode=io"].map(String::from));
    args.extend(TESTPMD_QUEUES.map(String::from));
    // Without a stats period testpmd waits for Enter and quits at EOF.
    args.push("--stats-period=3600".into());
    Launch {
        program: &s.programs.testpmd,
        args,
        summary: None,
    }
}

fn l3fwd<'a>(s: &DutStart<'a>) -> Launch<'a> {
    let w = s.placement.worker_core;
    // One lcore, the forwarding core, is also l3fwd's main lcore: a separate main lcore
    // would spin waiting for the workers on the generator's core.
    let mut args = eal_args(s.kind.name(), vec!["-l".into(), w.to_string()], s.hugepages);
    args.extend([
        "--".into(),
        "-p".into(),
        "0x3".into(),
        format!("--config=(0,0,{w}),(1,0,{w})"),
        "--parse-ptype".into(),
        format!("--rule_ipv4={}", s.l3fwd_rules.display()),
        format!("--rule_ipv6={}", s.programs.l3fwd_rules_v6.display()),
        format!("--eth-dest=0,{}", topo::GEN_TX_MAC),
        format!("--eth-dest=1,{}", topo::GEN_RX_MAC),
    ]);
    Launch {
        program: &s.programs.l3fwd,
        args,
        summary: None,
    }
}

/// dvrd with the block's configuration of its path; ready when it writes `ready`.
fn dvrd<'a>(s: &DutStart<'a>, ready: &Path) -> Launch<'a> {
    let name = s.kind.name();
    let config = s.dir.join(format!("{name}.toml"));
    let _ = std::fs::remove_file(ready);
    let summary = s.dir.join(format!("{name}-summary.json"));
    let _ = std::fs::remove_file(&summary);
    let args = vec![
        "--config".into(),
        config.display().to_string(),
        "--ready-file".into(),
        ready.display().to_string(),
        "--summary-json".into(),
        summary.display().to_string(),
    ];
    Launch {
        program: &s.programs.dvrd,
        args,
        summary: Some(summary),
    }
}

/// Starts the device and waits until it is ready to forward.
pub fn start(s: &DutStart<'_>) -> io::Result<Dut> {
    let name = s.kind.name();
    let log = s.dir.join(format!("{name}.log"));
    let ready_file = s.dir.join(format!("{name}.ready"));
    let launch = match s.kind {
        DutKind::TestpmdIo => testpmd(s),
        DutKind::L3fwd => l3fwd(s),
        DutKind::Dvrd | DutKind::DvrdVxlan | DutKind::DvrdFip => dvrd(s, &ready_file),
    };
    let mut proc = proc::spawn(name, launch.program, &launch.args, &log, s.boost)?;
    let kind = s.kind;
    let waited = proc.wait_ready(ready_timeout(s.routes), |p| match kind {
        // testpmd starts forwarding after its link check (up to 9 s without a peer).
        DutKind::TestpmdIo => p.log_text().contains("packet forwarding - ports="),
        DutKind::L3fwd => p.log_text().contains("entering main loop"),
        DutKind::Dvrd | DutKind::DvrdVxlan | DutKind::DvrdFip => ready_file.exists(),
    })?;
    let mut command = vec![launch.program.display().to_string()];
    command.extend(launch.args);
    Ok(Dut {
        kind,
        proc,
        summary: launch.summary,
        ready_s: waited.as_secs_f64(),
        command,
    })
}

/// What dvrd's exit summary says about its workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerFigures {
    /// Packets received by the workers.
    pub rx_packets: u64,
    /// Cycles of non-empty polls per received packet.
    pub busy_cycles_per_packet: f64,
    /// Empty polls / all polls.
    pub empty_poll_share: f64,
    /// Mbufs in use at exit (0: no leak).
    pub mempool_in_use: u64,
}

/// Reads dvrd's `--summary-json` (the fields the benchmark uses; unknown ones are ignored).
pub fn read_summary(path: &Path) -> Option<WorkerFigures> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let workers = v.get("workers")?.as_array()?;
    let sum = |key: &str| -> u64 { workers.iter().filter_map(|w| w.get(key)?.as_u64()).sum() };
    let rx = sum("rx_packets");
    let busy = sum("busy_cycles");
    let empty = sum("empty_polls");
    let polls = empty + sum("bursts");
    Some(WorkerFigures {
        rx_packets: rx,
        busy_cycles_per_packet: if rx == 0 {
            0.0
        } else {
            busy as f64 / rx as f64
        },
        empty_poll_share: if polls == 0 {
            0.0
        } else {
            empty as f64 / polls as f64
        },
        mempool_in_use: v.get("mempool_in_use")?.as_u64().unwrap_or(0),
    })
}

/// The dvrd configuration files of a block, one per path, each named after its device
/// (`dvrd.toml`, `dvrd-vxlan.toml`, `dvrd-fip.toml`) in `dir`; `ingress_mac` replaces the
/// ingress gateway's MAC (a generator that sends to a fixed MAC).
pub fn write_dvrd_configs(
    dir: &Path,
    routes: &[router_core::lpm::Prefix],
    hugepages: bool,
    placement: Placement,
    ingress_mac: Option<&str>,
) -> io::Result<()> {
    for (kind, path) in [
        (DutKind::Dvrd, DvrdPath::Local),
        (DutKind::DvrdVxlan, DvrdPath::Remote),
        (DutKind::DvrdFip, DvrdPath::FloatingIp),
    ] {
        let name = kind.name();
        let text = topo::dvrd_config(
            name,
            path,
            routes,
            hugepages,
            placement.worker_core,
            placement.main_core,
        );
        let text = match ingress_mac {
            Some(mac) => topo::with_ingress_mac(&text, mac),
            None => text,
        };
        std::fs::write(dir.join(format!("{name}.toml")), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in DutKind::ALL {
            assert_eq!(DutKind::from_name(k.name()), Some(k));
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.name())
            );
        }
    }

    #[test]
    fn summary_figures() {
        let dir = std::env::temp_dir().join(format!("dvr-bench-sum-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json");
        std::fs::write(
            &path,
            r#"{"workers":[{"rx_packets":1000,"busy_cycles":80000,"empty_polls":300,"bursts":100}],"mempool_in_use":0,"other":1}"#,
        )
        .unwrap();
        let f = read_summary(&path).unwrap();
        assert_eq!(f.rx_packets, 1000);
        assert!((f.busy_cycles_per_packet - 80.0).abs() < 1e-9);
        assert!((f.empty_poll_share - 0.75).abs() < 1e-9);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
