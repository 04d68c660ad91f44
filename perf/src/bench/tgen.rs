//! DPDK's own testpmd as an outside generator and sink, so that no conclusion rests on the
//! project's generator alone.
//!
//! `dpdk-testpmd --forward-mode=flowgen` sends 64-byte UDP frames of `--flowgen-flows`
//! flows (the destination address varies) as fast as it can, and counts what it receives.
//! With two ports, testpmd makes two streams: receive on port 1 and send flowgen frames on
//! port 0 (the one wanted), and the reverse. The reverse stream is switched off by deferring
//! the start of port 0's RX queue and port 1's TX queue (flowgen skips a stream whose queue
//! is stopped; memif keeps both queues working underneath), so the device sees traffic on
//! its ingress port only, as with `dvr-pktgen`.
//!
//! testpmd runs interactively over a pipe: `start` and `stop` around each trial, and
//! `show port stats all` about every second, whose port-1 `RX-packets` counter (the frames
//! the device forwarded) and port-0 `TX-packets` counter (the offered load) become the
//! per-second samples of [`crate::mfr`].
//!
//! What flowgen sends is fixed in its source (DPDK 22.11 `app/test-pmd/flowgen.c`): from
//! 00:01:02:03:04:00 to 00:01:02:03:04:01 whatever `--eth-peer` says, IPv4 10.254.0.0 to
//! 10.253.0.0 + flow, UDP 1000 to 1001, TTL 64. The device's ingress MAC must therefore be
//! [`FLOWGEN_DST_MAC`], and its routes must cover [`FLOWGEN_ROUTE`].

use std::io::{self, Write};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::dut::TESTPMD_QUEUES;
use super::proc::Pipes;
use super::topo;
use crate::mfr::Sample;
use crate::routes;
use router_core::lpm::Prefix;

/// The destination MAC of every flowgen frame (`cfg_ether_dst`).
pub const FLOWGEN_DST_MAC: &str = "00:01:02:03:04:01";
/// A route covering every flowgen destination (`cfg_ip_dst` = 10.253.0.0, plus up to 65535
/// flows).
pub const FLOWGEN_ROUTE: &str = "10.253.0.0/16";
/// How long to wait for one answer of testpmd.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Interval of the counter samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// testpmd's arguments as the generator for the device `dut` on CPU `core` (its main lcore
/// and its forwarding lcore both there, as two EAL lcores).
pub fn args(
    dut: &str,
    core: usize,
    hugepages: bool,
    flows: usize,
    frame_bytes: u32,
) -> Vec<String> {
    let mut a = vec![
        format!("--lcores=0@{core},1@{core}"),
        "--main-lcore=0".into(),
        format!("--file-prefix=bench-tgen-{dut}"),
        "--no-pci".into(),
    ];
    if hugepages {
        // memif zero-copy shares the mbuf memory by file descriptor.
        a.push("--single-file-segments".into());
    } else {
        a.extend(["--no-huge", "-m", "1024"].map(String::from));
    }
    a.extend((0..2).map(|i| format!("--vdev={}", topo::client_vdev(dut, i, hugepages))));
    a.extend(
        [
            "--log-level=lib.eal:warning",
            "--",
            "-i",
            "--disable-device-start",
            "--forward-mode=flowgen",
        ]
        .map(String::from),
    );
    a.extend(TESTPMD_QUEUES.map(String::from));
    a.push(format!("--flowgen-flows={flows}"));
    // flowgen's frames are `--txpkts` minus the 4 bytes of FCS.
    a.push(format!("--txpkts={frame_bytes}"));
    a
}

/// Sends one command line to testpmd.
fn command(pipes: &mut Pipes, line: &str) -> io::Result<()> {
    writeln!(pipes.stdin, "{line}")?;
    pipes.stdin.flush()
}

/// Drops whatever testpmd printed so far.
fn drain(pipes: &Pipes) {
    while pipes.lines.try_recv().is_ok() {}
}

/// Waits for a line containing `what`; the line, or an error after `timeout`.
fn wait_for(pipes: &Pipes, what: &str, timeout: Duration) -> io::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match pipes.lines.recv_timeout(left) {
            Ok(line) if line.contains(what) => return Ok(line),
            Ok(_) => {}
            Err(e) => {
                return Err(io::Error::other(format!(
                    "testpmd: no `{what}` within {timeout:?} ({e})"
                )))
            }
        }
    }
}

/// Switches the reverse stream off, starts the ports (testpmd waits for their links) and
/// checks that flowgen is the forwarding mode.
pub fn set_up(pipes: &mut Pipes, link_timeout: Duration) -> io::Result<()> {
    for line in [
        "port 0 rxq 0 deferred_start on",
        "port 1 txq 0 deferred_start on",
        "port start all",
        "show config fwd",
    ] {
        command(pipes, line)?;
    }
    wait_for(pipes, "flowgen packet forwarding", link_timeout)?;
    drain(pipes);
    Ok(())
}

/// The counters of one `show port stats all` answer: port 1's received, port 0's sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Port 1 `RX-packets`: what the device forwarded.
    pub rx: u64,
    /// Port 0 `TX-packets`: what the generator offered (and the device's ring took).
    pub tx: u64,
}

/// Reads `show port stats all` lines into `counters`, `port` holding the port of the section
/// being read; true once port 1's `TX-packets` line (the last one needed) was read.
pub fn parse_stats_line(line: &str, port: &mut Option<u32>, counters: &mut Counters) -> bool {
    if let Some(rest) = line.split("NIC statistics for port ").nth(1) {
        *port = rest.split_whitespace().next().and_then(|p| p.parse().ok());
        return false;
    }
    let value = |key: &str| -> Option<u64> {
        line.split(key)
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    match *port {
        Some(1) => {
            if let Some(v) = value("RX-packets:") {
                counters.rx = v;
            }
            line.contains("TX-packets:")
        }
        Some(0) => {
            if let Some(v) = value("TX-packets:") {
                counters.tx = v;
            }
            false
        }
        _ => false,
    }
}

/// Asks for the counters once.
fn read_counters(pipes: &mut Pipes) -> io::Result<Counters> {
    command(pipes, "show port stats all")?;
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let mut port = None;
    let mut counters = Counters::default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = pipes
            .lines
            .recv_timeout(left)
            .map_err(|e| io::Error::other(format!("testpmd: no port statistics ({e})")))?;
        if parse_stats_line(&line, &mut port, &mut counters) {
            return Ok(counters);
        }
    }
}

/// The samples of one trial: received and sent, at the same moments.
#[derive(Debug, Clone, Default)]
pub struct Trial {
    /// Port 1 received.
    pub rx: Vec<Sample>,
    /// Port 0 sent.
    pub tx: Vec<Sample>,
    /// Seconds from the first sample to the last.
    pub duration_s: f64,
}

/// One trial: forwarding for `warmup` (not counted), then `length` with a sample about every
/// second, then stop.
pub fn trial(pipes: &mut Pipes, warmup: Duration, length: Duration) -> io::Result<Trial> {
    drain(pipes);
    command(pipes, "clear port stats all")?;
    command(pipes, "start")?;
    sleep(warmup);
    let measured = sample(pipes, length);
    let stopped = command(pipes, "stop");
    let trial = measured?;
    stopped?;
    Ok(trial)
}

fn sample(pipes: &mut Pipes, length: Duration) -> io::Result<Trial> {
    let mut t = Trial::default();
    let began = Instant::now();
    let mut n = 0u32;
    loop {
        let c = read_counters(pipes)?;
        let at_s = began.elapsed().as_secs_f64();
        t.rx.push(Sample {
            at_s,
            packets: c.rx,
        });
        t.tx.push(Sample {
            at_s,
            packets: c.tx,
        });
        t.duration_s = at_s;
        if began.elapsed() >= length {
            return Ok(t);
        }
        n += 1;
        let next = began + SAMPLE_EVERY * n;
        sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// The route set of `count` routes for flowgen: [`FLOWGEN_ROUTE`] alone, or the benchmark's
/// set of that size with its last route replaced by it (the set leaves 10/8 out: no overlap).
pub fn covering_routes(count: usize) -> Vec<Prefix> {
    let cover: Prefix = FLOWGEN_ROUTE.parse().expect("valid prefix");
    if count <= 1 {
        return vec![cover];
    }
    let mut set = routes::route_set(count);
    set.pop();
    set.push(cover);
    set
}

/// The frame size testpmd can send for a block (`64`, ...; not IMIX).
pub fn frame_bytes(frame_size: &str) -> Option<u32> {
    frame_size
        .parse()
        .ok()
        .filter(|&b| (64..=1518).contains(&b))
}

/// The log of a testpmd generator next to the device's.
pub fn log_path(dir: &Path, dut: &str) -> std::path::PathBuf {
    dir.join(format!("testpmd-flowgen-{dut}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_statistics_are_parsed() {
        let text = "testpmd> \n\
  ######################## NIC statistics for port 0  ########################\n\
  RX-packets: 0          RX-missed: 0          RX-bytes:  0\n\
  TX-packets: 2955904    TX-errors: 0          TX-bytes:  165530624\n\
  ######################## NIC statistics for port 1  ########################\n\
  RX-packets: 2952320    RX-missed: 0          RX-bytes:  165329920\n\
  RX-errors: 0\n\
  TX-packets: 0          TX-errors: 0          TX-bytes:  0\n";
        let mut port = None;
        let mut c = Counters::default();
        let done: Vec<bool> = text
            .lines()
            .map(|l| parse_stats_line(l, &mut port, &mut c))
            .collect();
        assert_eq!(done.iter().filter(|&&d| d).count(), 1);
        assert!(*done.last().unwrap());
        assert_eq!(
            c,
            Counters {
                rx: 2_952_320,
                tx: 2_955_904
            }
        );
        assert_eq!(frame_bytes("64"), Some(64));
        assert_eq!(frame_bytes("imix"), None);
        let set = covering_routes(1000);
        assert_eq!(set.len(), 1000);
        let dst = u32::from(std::net::Ipv4Addr::new(10, 253, 3, 255));
        assert_eq!(set.iter().filter(|p| p.contains(dst)).count(), 1);
        assert_eq!(covering_routes(1), vec![FLOWGEN_ROUTE.parse().unwrap()]);
        let a = args("dvrd", 0, false, 1024, 64);
        assert!(a.contains(&"--txpkts=64".to_owned()) && a.contains(&"--no-huge".to_owned()));
    }
}
