//! Smoke run of the generator against dvrd: a few thousand packets through the plain routing
//! path, through the DVR remote path (VXLAN out of the fabric port, underlay resolved by ARP)
//! and from an instance with a floating IP to the outside (SNAT out of the external port), with
//! loss, reordering and duplicates checked, and both programs checked for a clean,
//! leak-free exit. No timing is asserted.
//!
//! Needs root, DPDK 22.11 and a built dvrd (`cargo build --release -p dvr-router --bin dvrd`,
//! or set DVRD_BIN); without them the test says so and passes without running, unless
//! `DVRD_TEST_STRICT=1` (set by `scripts/test.sh`) makes a missing prerequisite a failure.
//! Runs in about 20 seconds, without hugepages, with names of its own (it can run next to a
//! benchmark).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use perf::bench::topo::{self, DvrdPath};
use perf::report::RunReport;

/// Packets per path.
const PACKETS: u64 = 5000;
/// Slow enough that a preempted worker's ring (1024 slots) absorbs a 50 ms stall.
const RATE: &str = "20k";

fn dvrd_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("DVRD_BIN") {
        return Some(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    ["target/release/dvrd", "target/debug/dvrd"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.exists())
}

/// Says why the test cannot run: a failure under `DVRD_TEST_STRICT=1`, a skip otherwise.
fn skip(why: &str) {
    if std::env::var_os("DVRD_TEST_STRICT").is_some_and(|v| v == "1") {
        panic!("smoke: cannot run under DVRD_TEST_STRICT=1: {why}");
    }
    eprintln!("smoke: SKIPPED ({why})");
}

fn can_run() -> Option<PathBuf> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        skip("not root");
        return None;
    }
    if !Path::new("/usr/lib/x86_64-linux-gnu/dpdk").exists() {
        skip("no DPDK");
        return None;
    }
    let dvrd = dvrd_binary();
    if dvrd.is_none() {
        skip("no dvrd: cargo build --release -p dvr-router --bin dvrd");
    }
    dvrd
}

/// A child that is killed if the test fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let began = Instant::now();
    while began.elapsed() < timeout {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// How the generator measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    /// `PACKETS` at `RATE`: nothing may be lost.
    FixedRate,
    /// The maximum-forwarding-rate trial (`--mfr`): full rate for `FULL_RATE_S`, per-second
    /// samples; overload loses packets, but nothing may be reordered or duplicated.
    FullRate,
}

/// Length of the full-rate trial, seconds.
const FULL_RATE_S: &str = "3";

/// The generator's measurement options.
fn measure_args(measure: Measure) -> Vec<String> {
    let packets = PACKETS.to_string();
    let args: &[&str] = match measure {
        Measure::FixedRate => &["--rate", RATE, "--packets", &packets, "--trials", "1"],
        Measure::FullRate => &["--mfr", "--trial-s", FULL_RATE_S],
    };
    args.iter().map(|a| (*a).to_owned()).collect()
}

fn run_path(dvrd: &Path, path: DvrdPath, measure: Measure) {
    let name = format!(
        "smoke{}-{}{}",
        std::process::id(),
        match path {
            DvrdPath::Local => "l",
            DvrdPath::Remote => "r",
            DvrdPath::FloatingIp => "f",
        },
        if measure == Measure::FullRate {
            "m"
        } else {
            ""
        }
    );
    let dir = std::env::temp_dir().join(format!("dvr-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(topo::SOCKET_DIR).unwrap();
    let routes = perf::routes::route_set(1);
    let config = dir.join("dvrd.toml");
    std::fs::write(
        &config,
        topo::dvrd_config(&name, path, &routes, false, 1, 0),
    )
    .unwrap();
    let ready = dir.join("ready");
    let summary = dir.join("summary.json");
    let log = std::fs::File::create(dir.join("dvrd.log")).unwrap();

    // The device first; it is ready once its ports are up on its side.
    let mut dut = Guard(
        Command::new(dvrd)
            .arg("--config")
            .arg(&config)
            .arg("--ready-file")
            .arg(&ready)
            .arg("--summary-json")
            .arg(&summary)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let began = Instant::now();
    while !ready.exists() {
        assert!(
            matches!(dut.0.try_wait(), Ok(None)),
            "dvrd exited; see {}",
            dir.display()
        );
        assert!(began.elapsed() < Duration::from_secs(30), "dvrd not ready");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The generator stays connected (--serve) so that dvrd never sees its peer leave while
    // it forwards; it measures once, then dvrd stops first.
    let gen_log = std::fs::File::create(dir.join("pktgen.log")).unwrap();
    let mut gen = Guard(
        Command::new(env!("CARGO_BIN_EXE_dvr-pktgen"))
            .args(["--serve", "--no-huge", "--lcore", "0", "--file-prefix"])
            .arg(format!("{name}-gen"))
            .args(["--port", &topo::client_vdev(&name, 0, false)])
            .args(["--port", &topo::client_vdev(&name, 1, false)])
            .args(["--dst-mac", topo::GW_BLUE_MAC, "--src-ip", topo::SRC_IP])
            .args(["--flows", "64"])
            .args(measure_args(measure))
            .args(["--warmup-s", "0", "--drain-ms", "200"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(gen_log)
            .spawn()
            .unwrap(),
    );
    let mut stdin = gen.0.stdin.take().unwrap();
    let stdout = gen.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(
        line,
        "ready",
        "generator did not connect; see {}",
        dir.display()
    );
    let report_path = dir.join("report.json");
    writeln!(stdin, "{}", report_path.display()).unwrap();
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(line.starts_with("done"), "{line}");
    let report: RunReport =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();

    // Stop dvrd (SIGINT through kill(1): no unsafe here), then the generator.
    let status = Command::new("kill")
        .args(["-INT", &dut.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let dut_exit = wait_exit(&mut dut.0, Duration::from_secs(30)).expect("dvrd did not exit");
    writeln!(stdin, "quit").unwrap();
    drop(stdin);
    let gen_exit = wait_exit(&mut gen.0, Duration::from_secs(30)).expect("generator did not exit");

    assert_eq!(report.error, None, "see {}", dir.display());
    assert!(
        dut_exit.success(),
        "dvrd exit {dut_exit}; see {}",
        dir.display()
    );
    assert!(gen_exit.success(), "generator exit {gen_exit} (3: leak)");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["mempool_in_use"], 0, "dvrd leaked mbufs");
    match measure {
        Measure::FixedRate => check_fixed_rate(&report, path, &dir),
        Measure::FullRate => check_full_rate(&report, &dir),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every packet of the fixed-rate trial arrived, once and in order.
fn check_fixed_rate(report: &RunReport, path: DvrdPath, dir: &Path) {
    assert_eq!(report.trials.len(), 1);
    let t = &report.trials[0];
    eprintln!(
        "smoke {path:?}: offered {} received {} (vxlan {}) lost {} reordered {} duplicated {} \
         late {}; latency p50 {:.1} us max {:.1} us",
        t.offered,
        t.received,
        t.received_vxlan,
        t.lost,
        t.reordered,
        t.duplicated,
        t.late,
        t.latency.p50_ns / 1e3,
        t.latency.max_ns / 1e3
    );
    assert_eq!(t.offered, PACKETS);
    assert_eq!(
        t.received,
        PACKETS,
        "every packet arrives; see {}",
        dir.display()
    );
    assert_eq!((t.lost, t.reordered, t.duplicated, t.late), (0, 0, 0, 0));
    let expect_vxlan = if path == DvrdPath::Remote { PACKETS } else { 0 };
    assert_eq!(t.received_vxlan, expect_vxlan);
}

/// The full-rate trial came with a sample every second, its per-second rates add up to what
/// was received, and overload reordered or duplicated nothing.
fn check_full_rate(report: &RunReport, dir: &Path) {
    assert!(report.search.is_none() && report.trials.is_empty());
    let t = report.mfr.as_ref().expect("an MFR trial in the report");
    let secs: usize = FULL_RATE_S.parse().unwrap();
    // One sample a second from the start (the last one may land on the end of the sending).
    let n = t.rx_samples.len();
    assert!(n == secs || n == secs + 1, "{n} samples in {secs} s");
    assert_eq!(t.rx_samples[0].packets, 0);
    let rates = perf::mfr::RateFigures::of_samples(&t.rx_samples);
    eprintln!(
        "smoke full rate: MFR {:.3} Mpps [{:.3}-{:.3}], offered {:.3} Mpps, received {}, \
         lost {}",
        rates.median_pps / 1e6,
        rates.min_pps / 1e6,
        rates.max_pps / 1e6,
        t.rate_pps / 1e6,
        t.received,
        t.lost
    );
    assert!(
        rates.min_pps > 0.0,
        "forwarded every second; see {}",
        dir.display()
    );
    let sampled = t.rx_samples.last().unwrap().packets;
    assert!(
        sampled <= t.received,
        "{sampled} sampled, {} received",
        t.received
    );
    assert!(t.duration_s >= secs as f64 - 0.01, "{}", t.duration_s);
    assert_eq!((t.reordered, t.duplicated), (0, 0));
    assert!(t.offered >= t.received);
}

#[test]
fn generator_through_dvrd_without_loss_or_reordering() {
    let Some(dvrd) = can_run() else { return };
    run_path(&dvrd, DvrdPath::Local, Measure::FixedRate);
    run_path(&dvrd, DvrdPath::Remote, Measure::FixedRate);
    // SNAT out of the external port, the external gateway (the generator) resolved by ARP.
    run_path(&dvrd, DvrdPath::FloatingIp, Measure::FixedRate);
}

#[test]
fn generator_at_full_rate_samples_the_forwarded_rate_every_second() {
    let Some(dvrd) = can_run() else { return };
    run_path(&dvrd, DvrdPath::Local, Measure::FullRate);
}
