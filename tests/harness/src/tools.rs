//! The tools a user would reach for: ping, arping, tcpdump, and a raw frame injector.

use std::fmt;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::{command_line, output_of, CmdOutput};
use crate::frames::{hex, Mac};
use crate::net::Netns;
use crate::pcap::{self, PcapRecord, LINKTYPE_ETHERNET};
use crate::process::{describe, Process, POLL};
use crate::test_scope::Scope;

/// How long tcpdump gets to start listening.
const CAPTURE_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long tcpdump gets to flush and exit after SIGINT.
const CAPTURE_STOP_GRACE: Duration = Duration::from_secs(5);

/// Options of [`ping`].
#[derive(Debug, Clone)]
pub struct PingOpts {
    /// Echo requests to send (`-c`).
    pub count: u32,
    /// Between requests (`-i`; below 200 ms needs root).
    pub interval: Duration,
    /// How long to wait for the last reply (`-W`).
    pub timeout: Duration,
    /// ICMP data bytes (`-s`; ping's default is 56).
    pub size: Option<usize>,
    /// Set DF and never fragment locally (`-M do`).
    pub dont_fragment: bool,
    /// IP TTL (`-t`).
    pub ttl: Option<u8>,
}

impl Default for PingOpts {
    /// 5 requests 200 ms apart, 2 s for the last reply.
    fn default() -> Self {
        PingOpts {
            count: 5,
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(2),
            size: None,
            dont_fragment: false,
            ttl: None,
        }
    }
}

impl PingOpts {
    /// `count` requests, the rest as [`default`](Self::default).
    pub fn count(count: u32) -> Self {
        PingOpts {
            count,
            ..PingOpts::default()
        }
    }

    pub fn interval(self, interval: Duration) -> Self {
        PingOpts { interval, ..self }
    }

    pub fn timeout(self, timeout: Duration) -> Self {
        PingOpts { timeout, ..self }
    }

    /// `size` ICMP data bytes.
    pub fn size(self, size: usize) -> Self {
        PingOpts {
            size: Some(size),
            ..self
        }
    }

    /// DF set, never fragmented locally.
    pub fn dont_fragment(self) -> Self {
        PingOpts {
            dont_fragment: true,
            ..self
        }
    }
}

/// What ping reported.
#[derive(Debug, Clone)]
pub struct PingResult {
    pub transmitted: u32,
    pub received: u32,
    /// ICMP errors received instead of replies (`+N errors`).
    pub errors: u32,
    pub output: CmdOutput,
}

impl PingResult {
    /// Panics, with ping's output, unless every request got its reply.
    pub fn assert_all_answered(&self) {
        assert!(
            self.transmitted > 0 && self.received == self.transmitted,
            "{} of {} echo requests answered\n{}",
            self.received,
            self.transmitted,
            self.output
        );
    }
}

impl PingResult {
    /// Panics, with ping's output, if any request got its reply; `what` says why none may.
    pub fn assert_unanswered(&self, what: &str) {
        assert_eq!(self.received, 0, "{what}: {self}\n{}", self.output);
    }
}

impl fmt::Display for PingResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} answered, {} errors",
            self.received, self.transmitted, self.errors
        )
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// Runs `ping` in `netns` toward `dst` and parses its summary line.
pub fn ping(netns: &Netns, dst: Ipv4Addr, opts: &PingOpts) -> PingResult {
    let mut cmd = netns.command("ping");
    cmd.args([
        "-n",
        "-c",
        &opts.count.to_string(),
        "-i",
        &seconds(opts.interval),
        "-W",
        &seconds(opts.timeout),
    ]);
    if let Some(s) = opts.size {
        cmd.args(["-s", &s.to_string()]);
    }
    if opts.dont_fragment {
        cmd.args(["-M", "do"]);
    }
    if let Some(t) = opts.ttl {
        cmd.args(["-t", &t.to_string()]);
    }
    cmd.arg(dst.to_string());
    let output = output_of(&mut cmd);
    let (transmitted, received, errors) = parse_ping_summary(&output.stdout)
        .unwrap_or_else(|| panic!("no summary line in the output of ping: {output}"));
    PingResult {
        transmitted,
        received,
        errors,
        output,
    }
}

/// `5 packets transmitted, 4 received, +1 errors, 20% packet loss, time 803ms`.
pub fn parse_ping_summary(text: &str) -> Option<(u32, u32, u32)> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let number_before = |word: &str| -> Option<u32> {
        line.split(", ")
            .find(|part| part.contains(word))?
            .split_whitespace()
            .next()?
            .trim_start_matches('+')
            .parse()
            .ok()
    };
    Some((
        number_before("transmitted")?,
        number_before("received")?,
        number_before("errors").unwrap_or(0),
    ))
}

/// What arping reported.
#[derive(Debug, Clone)]
pub struct ArpingResult {
    /// Every reply: the sender's IP and MAC.
    pub replies: Vec<(Ipv4Addr, Mac)>,
    pub output: CmdOutput,
}

impl ArpingResult {
    /// The MAC of the replies. Panics unless there is at least one and all agree.
    pub fn mac(&self) -> Mac {
        let first = self
            .replies
            .first()
            .unwrap_or_else(|| panic!("no ARP reply\n{}", self.output))
            .1;
        assert!(
            self.replies.iter().all(|r| r.1 == first),
            "ARP replies disagree: {:?}\n{}",
            self.replies,
            self.output
        );
        first
    }
}

impl ArpingResult {
    /// Panics, with arping's output, unless at least `min` replies came, all from `ip` with
    /// MAC `mac`.
    pub fn assert_answered(&self, min: usize, ip: Ipv4Addr, mac: Mac) {
        assert!(
            self.replies.len() >= min,
            "arping {ip} got {} replies, expected at least {min}\n{}",
            self.replies.len(),
            self.output
        );
        assert_eq!(self.mac(), mac, "the MAC of {ip}\n{}", self.output);
        assert!(
            self.replies.iter().all(|(from, _)| *from == ip),
            "replies from others than {ip}: {:?}",
            self.replies
        );
    }
}

/// Runs iputils `arping` in `netns` on `iface` for `target`: `count` requests, at most
/// `timeout`.
pub fn arping(
    netns: &Netns,
    iface: &str,
    target: Ipv4Addr,
    count: u32,
    timeout: Duration,
) -> ArpingResult {
    let secs = timeout.as_secs().max(1).to_string();
    let output = netns.run(
        "arping",
        &[
            "-c",
            &count.to_string(),
            "-w",
            &secs,
            "-I",
            iface,
            &target.to_string(),
        ],
    );
    let replies = parse_arping_replies(&output.stdout);
    ArpingResult { replies, output }
}

/// `Unicast reply from 10.0.1.1 [FA:16:3E:00:01:01]  0.632ms`.
pub fn parse_arping_replies(text: &str) -> Vec<(Ipv4Addr, Mac)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.split("reply from ").nth(1)?;
            let ip = rest.split_whitespace().next()?.parse().ok()?;
            let mac = rest
                .split('[')
                .nth(1)?
                .split(']')
                .next()?
                .to_ascii_lowercase()
                .parse()
                .ok()?;
            Some((ip, mac))
        })
        .collect()
}

/// A tcpdump capture to a pcap file in the test's folder, listening once `start` returns.
#[derive(Debug)]
pub struct Capture {
    process: Process,
    path: PathBuf,
}

impl Capture {
    /// Starts `tcpdump -U -w` on `iface` (in `netns`, or the root namespace) with the filter
    /// expression `filter` (empty: everything), and waits until it listens.
    pub fn start(scope: &Scope, netns: Option<&Netns>, iface: &str, filter: &str) -> Capture {
        let label = scope.unique_label(&format!("tcpdump-{iface}"));
        let path = scope.file(&format!("{label}.pcap"));
        let mut cmd = match netns {
            Some(ns) => ns.command("tcpdump"),
            None => Command::new("tcpdump"),
        };
        // -Z root: Debian's tcpdump drops to user `tcpdump`, who may not write the test folder.
        cmd.args([
            "-i",
            iface,
            "-n",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-s",
            "0",
            "-w",
        ])
        .arg(&path);
        if !filter.is_empty() {
            cmd.arg(filter);
        }
        let mut process = Process::spawn_labelled(scope, label, cmd);
        if let Err(e) = process.wait_for_output("listening on", CAPTURE_START_TIMEOUT) {
            panic!("tcpdump on {iface} did not start: {e}");
        }
        Capture { process, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The frames captured so far (tcpdump -U writes each one as it comes).
    pub fn frames(&self) -> Vec<PcapRecord> {
        match pcap::read(&self.path) {
            Ok(p) => {
                assert_eq!(
                    p.linktype,
                    LINKTYPE_ETHERNET,
                    "{}: not an Ethernet capture",
                    self.path.display()
                );
                p.records
            }
            // tcpdump writes the global header at once, but give it the benefit of the doubt.
            Err(_) => Vec::new(),
        }
    }

    /// Waits until `count` captured frames satisfy `pred`; returns them, or all that matched
    /// when `timeout` runs out (the caller asserts).
    pub fn wait_for_count(
        &self,
        count: usize,
        timeout: Duration,
        pred: impl Fn(&[u8]) -> bool,
    ) -> Vec<PcapRecord> {
        let start = Instant::now();
        loop {
            let found: Vec<PcapRecord> = self
                .frames()
                .into_iter()
                .filter(|r| pred(&r.data))
                .collect();
            if found.len() >= count || start.elapsed() >= timeout {
                return found;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for one captured frame that satisfies `pred`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[u8]) -> bool) -> Option<PcapRecord> {
        self.wait_for_count(1, timeout, pred).into_iter().next()
    }

    /// Stops tcpdump (SIGINT: it flushes and exits) and returns every captured frame.
    pub fn stop(mut self) -> Vec<PcapRecord> {
        let stopped = self.process.stop_with("INT", CAPTURE_STOP_GRACE);
        assert!(
            !stopped.killed,
            "tcpdump ({}) ignored SIGINT\n{}",
            self.process.command(),
            self.process.stderr()
        );
        let p = pcap::read(&self.path)
            .unwrap_or_else(|e| panic!("capture {}: {e}", describe(stopped.status)));
        assert_eq!(
            p.linktype,
            LINKTYPE_ETHERNET,
            "{}: not an Ethernet capture",
            self.path.display()
        );
        p.records
    }

    /// One line per frame (hex), for failure messages.
    pub fn dump(frames: &[PcapRecord]) -> String {
        frames
            .iter()
            .map(|r| format!("  {}\n", hex(&r.data)))
            .collect()
    }
}

/// The Python program that sends raw frames: one hex frame per line of stdin, on the
/// interface named in argv[1]; prints `ok <bytes>` or `err <errno> <message>` per frame.
const INJECTOR: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    try:
        print("ok", s.send(bytes.fromhex(line)), flush=True)
    except OSError as e:
        print("err", e.errno, e.strerror, flush=True)
"#;

pub(crate) fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Sends each frame as it is (no padding, no checksum fix) on `iface` in `netns`, through an
/// AF_PACKET socket. One result per frame: the bytes sent, or the kernel's refusal (it refuses
/// frames shorter than an Ethernet header).
pub fn inject_frames(netns: &Netns, iface: &str, frames: &[Vec<u8>]) -> Vec<Result<usize, String>> {
    let mut cmd = netns.command(python());
    cmd.args(["-c", INJECTOR, iface])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let line = command_line(&cmd);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the frame injector: {e}"));
    {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        for f in frames {
            writeln!(stdin, "{}", hex(f)).expect("writing to the frame injector");
        }
    }
    let out = child
        .wait_with_output()
        .expect("waiting for the frame injector");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "frame injector failed ({}): `{line}`\n{stdout}{}",
        describe(out.status),
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Result<usize, String>> = stdout
        .lines()
        .map(|l| match l.strip_prefix("ok ") {
            Some(n) => n.trim().parse().map_err(|_| l.to_string()),
            None => Err(l.to_string()),
        })
        .collect();
    assert_eq!(
        results.len(),
        frames.len(),
        "frame injector answered {} of {} frames:\n{stdout}",
        results.len(),
        frames.len()
    );
    results
}

/// Starts `iperf3 -s -1` (one test, then exit) in `netns` and waits until it listens.
pub fn iperf3_server(netns: &Netns, label: &str) -> Process {
    let mut cmd = netns.command("iperf3");
    // --forceflush: without a terminal iperf3 would hold its "Server listening" line.
    cmd.args(["-s", "-1", "--forceflush"]);
    let mut p = Process::spawn(netns.scope(), label, cmd);
    if let Err(e) = p.wait_for_output("Server listening", Duration::from_secs(10)) {
        panic!("iperf3 server did not start: {e}");
    }
    p
}

/// Runs `iperf3 -c server -J args...` in `netns` and returns its JSON report (`end.sum_sent`,
/// `end.sum_received`, ...). Panics, with the output, when iperf3 fails.
pub fn iperf3_client(netns: &Netns, server: Ipv4Addr, args: &[&str]) -> serde_json::Value {
    let server = server.to_string();
    let mut full = vec!["-c", server.as_str(), "-J"];
    full.extend_from_slice(args);
    let out = netns.run("iperf3", &full);
    assert!(out.success(), "iperf3 failed: {out}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("iperf3 JSON: {e}\n{out}"))
}

/// The Python program that receives one TCP connection: listens on port argv[1], prints
/// `listening`, writes every byte of the first connection to the file argv[2], prints
/// `received N` when the sender has closed its side, and exits.
const TCP_RECEIVER: &str = r#"
import socket, sys
port, out = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen(1)
s.settimeout(60)
print("listening", flush=True)
c, peer = s.accept()
c.settimeout(60)
n = 0
with open(out, "wb") as f:
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        f.write(b)
        n += len(b)
c.close()
print("received", n, flush=True)
"#;

/// The Python program that sends the file argv[3] over one TCP connection to argv[1]:argv[2],
/// closes its side and waits for the receiver to close; prints `sent N SECONDS`.
const TCP_SENDER: &str = r#"
import socket, sys, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(path, "rb").read()
start = time.monotonic()
c = socket.create_connection((host, port), timeout=30)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
while c.recv(1 << 16):
    pass
print("sent", len(data), time.monotonic() - start, flush=True)
"#;

/// How long a TCP receiver gets to start listening.
const RECEIVER_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TCP receiver gets to write its file once the sender is done.
const RECEIVER_EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// One plain TCP transfer of a file.
#[derive(Debug, Clone)]
pub struct TcpTransfer {
    /// Bytes the sender sent.
    pub bytes: u64,
    /// From connect to the receiver's close, as the sender measured it.
    pub elapsed: Duration,
    /// Where the receiver wrote what it got.
    pub received: PathBuf,
}

impl TcpTransfer {
    /// Megabits per second, as the sender saw it.
    pub fn mbit_per_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

/// Sends `file` from `from` to `to_ip:port` (a receiver in `to`) over one plain TCP connection;
/// the receiver writes `received` (in the scope's folder). Panics, with both sides' output,
/// when the transfer does not complete.
pub fn tcp_transfer(
    from: &Netns,
    to: &Netns,
    to_ip: Ipv4Addr,
    port: u16,
    file: &Path,
    received: &Path,
) -> TcpTransfer {
    let port_text = port.to_string();
    let mut rx_cmd = to.command(python());
    rx_cmd.args(["-c", TCP_RECEIVER, &port_text]).arg(received);
    let mut receiver = Process::spawn(to.scope(), "tcp-receiver", rx_cmd);
    if let Err(e) = receiver.wait_for_output("listening", RECEIVER_START_TIMEOUT) {
        panic!("TCP receiver did not start: {e}");
    }
    let mut tx_cmd = from.command(python());
    tx_cmd
        .args(["-c", TCP_SENDER, &to_ip.to_string(), &port_text])
        .arg(file);
    let sent = output_of(&mut tx_cmd);
    let done = receiver.wait_timeout(RECEIVER_EXIT_TIMEOUT);
    assert!(
        sent.success() && done.is_some_and(|s| s.success()),
        "TCP transfer of {} to {to_ip}:{port} failed: {sent}\n--- receiver ({})\n{}{}",
        file.display(),
        done.map_or("still running".to_string(), describe),
        receiver.stdout(),
        receiver.stderr()
    );
    let mut words = sent
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("sent "))
        .unwrap_or_else(|| panic!("no `sent` line from the TCP sender: {sent}"))
        .split_whitespace();
    let bytes = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    let secs: f64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0.0);
    TcpTransfer {
        bytes,
        elapsed: Duration::from_secs_f64(secs),
        received: received.to_path_buf(),
    }
}

/// Sends `len` random bytes from `from` to `to` (at `to_ip`, TCP port `port`) over one plain
/// TCP connection and checks the copy: every byte arrived, and the SHA-256 of what was received
/// is that of what was sent. The files are `<name>.bin` and `<name>.received` in the scope's
/// folder.
pub fn assert_tcp_copy_intact(
    from: &Netns,
    (to, to_ip, port): (&Netns, Ipv4Addr, u16),
    name: &str,
    len: u64,
) -> TcpTransfer {
    let file = from.scope().file(&format!("{name}.bin"));
    let copy = from.scope().file(&format!("{name}.received"));
    random_file(&file, len);
    let t = tcp_transfer(from, to, to_ip, port, &file, &copy);
    assert_eq!(t.bytes, len, "{name}: bytes sent");
    assert_eq!(
        sha256(&copy),
        sha256(&file),
        "{name}: the received file differs from the sent one"
    );
    t
}

/// The Python program that waits up to 10 s for one UDP datagram on port argv[1] and writes
/// its payload to argv[2]; prints `listening`, then `received N`.
const UDP_RECEIVER: &str = r#"
import socket, sys
port, out = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", port))
s.settimeout(10)
print("listening", flush=True)
data, peer = s.recvfrom(1 << 16)
open(out, "wb").write(data)
print("received", len(data), flush=True)
"#;

/// The Python program that sends the file argv[3] as one UDP datagram to argv[1]:argv[2] with
/// DF clear (`IP_MTU_DISCOVER` = `IP_PMTUDISC_DONT`: 10 and 0 in Linux's headers).
const UDP_SENDER_WITHOUT_DF: &str = r#"
import socket, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 0)
s.sendto(open(path, "rb").read(), (host, port))
"#;

/// Sends `payload` from `from` as one UDP datagram with DF clear to `to_ip:port`, where a
/// receiver in `to` waits for it; returns the payload the receiver got, `None` when nothing
/// arrived within 10 s. The files are `udp-<port>.bin` and `udp-<port>.received` in the
/// scope's folder.
pub fn udp_datagram_without_df(
    from: &Netns,
    (to, to_ip, port): (&Netns, Ipv4Addr, u16),
    payload: &[u8],
) -> Option<Vec<u8>> {
    let file = from.scope().file(&format!("udp-{port}.bin"));
    let received = from.scope().file(&format!("udp-{port}.received"));
    std::fs::write(&file, payload).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let port_text = port.to_string();
    let mut rx_cmd = to.command(python());
    rx_cmd.args(["-c", UDP_RECEIVER, &port_text]).arg(&received);
    let mut receiver = Process::spawn(to.scope(), "udp-receiver", rx_cmd);
    if let Err(e) = receiver.wait_for_output("listening", RECEIVER_START_TIMEOUT) {
        panic!("UDP receiver did not start: {e}");
    }
    let mut tx_cmd = from.command(python());
    tx_cmd
        .args(["-c", UDP_SENDER_WITHOUT_DF, &to_ip.to_string(), &port_text])
        .arg(&file);
    let sent = output_of(&mut tx_cmd);
    assert!(
        sent.success(),
        "UDP sender to {to_ip}:{port} failed: {sent}"
    );
    let done = receiver.wait_timeout(RECEIVER_EXIT_TIMEOUT);
    done.is_some_and(|s| s.success())
        .then(|| std::fs::read(&received).ok())
        .flatten()
}

/// Writes `len` random bytes (from /dev/urandom) to `path`.
pub fn random_file(path: &Path, len: u64) {
    use std::io::Read;
    let mut data = Vec::new();
    std::fs::File::open("/dev/urandom")
        .and_then(|f| f.take(len).read_to_end(&mut data))
        .unwrap_or_else(|e| panic!("/dev/urandom: {e}"));
    std::fs::write(path, &data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The SHA-256 of a file, in hex (`sha256sum`).
pub fn sha256(path: &Path) -> String {
    let out = output_of(Command::new("sha256sum").arg(path)).ok();
    out.stdout
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("no digest in `{}`", out.stdout))
        .to_string()
}

/// The path MTU the kernel of `netns` has cached for `dst` (the `mtu N` of `ip route get`),
/// and the whole answer.
pub fn cached_path_mtu(netns: &Netns, dst: Ipv4Addr) -> (Option<u16>, String) {
    let out = netns.ip(&["route", "get", &dst.to_string()]);
    let words: Vec<&str> = out.split_whitespace().collect();
    let mtu = words
        .windows(2)
        .find(|w| w[0] == "mtu")
        .and_then(|w| w[1].parse().ok());
    (mtu, out)
}

/// A `ping` running in the background (`-D`: each line stamped with the wall clock), for what
/// happens while it runs: a port that appears, moves or goes, a store that goes away.
#[derive(Debug)]
pub struct BackgroundPing {
    process: Process,
    /// How long it runs at most: count times interval, plus the last reply's timeout.
    expected: Duration,
}

/// What a [`BackgroundPing`] saw.
#[derive(Debug, Clone)]
pub struct TimedPing {
    pub result: PingResult,
    /// Each reply: its `icmp_seq` and when it came (Unix time).
    pub replies: Vec<(u32, f64)>,
    /// Lines that report an ICMP error (`Destination Host Unreachable`...).
    pub errors: Vec<String>,
}

impl TimedPing {
    /// When the first reply came (Unix time), if one did.
    pub fn first_reply(&self) -> Option<f64> {
        self.replies.first().map(|r| r.1)
    }

    /// Requests without a reply.
    pub fn lost(&self) -> u32 {
        self.result.transmitted.saturating_sub(self.result.received)
    }
}

/// Seconds since the Unix epoch now, as `ping -D` prints them.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl BackgroundPing {
    /// Starts `ping -D` in `netns` toward `dst` (labelled `label`), without waiting for it.
    pub fn start(netns: &Netns, label: &str, dst: Ipv4Addr, opts: &PingOpts) -> BackgroundPing {
        let mut cmd = netns.command("ping");
        cmd.args([
            "-n",
            "-D",
            "-c",
            &opts.count.to_string(),
            "-i",
            &seconds(opts.interval),
            "-W",
            &seconds(opts.timeout),
        ]);
        if let Some(s) = opts.size {
            cmd.args(["-s", &s.to_string()]);
        }
        cmd.arg(dst.to_string());
        let process = Process::spawn(netns.scope(), label, cmd);
        BackgroundPing {
            process,
            expected: opts.interval * opts.count + opts.timeout,
        }
    }

    /// Waits for it to end by itself (panics when it runs well past its count) and parses
    /// what it printed.
    pub fn finish(mut self) -> TimedPing {
        let limit = self.expected * 2 + Duration::from_secs(5);
        let status = self.process.wait_timeout(limit);
        let stdout = self.process.stdout();
        assert!(
            status.is_some(),
            "ping ({}) still runs after {limit:?}:\n{stdout}",
            self.process.command()
        );
        let output = CmdOutput {
            command: self.process.command().to_string(),
            code: status.and_then(|s| s.code()),
            stdout: stdout.clone(),
            stderr: self.process.stderr(),
        };
        let (transmitted, received, errors) = parse_ping_summary(&stdout)
            .unwrap_or_else(|| panic!("no summary line in the output of ping: {output}"));
        let (replies, error_lines) = parse_timed_ping(&stdout);
        TimedPing {
            result: PingResult {
                transmitted,
                received,
                errors,
                output,
            },
            replies,
            errors: error_lines,
        }
    }
}

/// The replies (`[1700000000.123456] 64 bytes from 10.0.2.7: icmp_seq=3 ttl=63 time=0.4 ms`)
/// and the error lines (`[...] From 10.0.2.1 icmp_seq=4 Destination Host Unreachable`) of
/// `ping -D` output.
pub fn parse_timed_ping(text: &str) -> (Vec<(u32, f64)>, Vec<String>) {
    let mut replies = Vec::new();
    let mut errors = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix('[') else {
            continue;
        };
        let Some((stamp, what)) = rest.split_once(']') else {
            continue;
        };
        let Ok(time) = stamp.parse::<f64>() else {
            continue;
        };
        let seq = what
            .split_whitespace()
            .find_map(|w| w.strip_prefix("icmp_seq="))
            .and_then(|n| n.parse().ok());
        match seq {
            Some(seq) if what.contains(" bytes from ") => replies.push((seq, time)),
            _ if what.trim_start().starts_with("From ") => errors.push(what.trim().to_string()),
            _ => {}
        }
    }
    (replies, errors)
}
