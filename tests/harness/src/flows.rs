//! Many UDP flows with a sequence number in every datagram, for the tests of several workers:
//! a sender in one namespace opens one socket per flow (the flows differ by source port, so
//! that a flow hash spreads them over queues) and sends round after round, one datagram per
//! flow and round, paced; a receiver in the other namespace reads them all on one port and
//! counts, per flow, what arrived and what arrived after a later datagram of the same flow
//! (reordered). Both are small Python programs (python3 is one of the test packages).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::cmd::output_of;
use crate::net::Netns;
use crate::process::Process;
use crate::tools::python;

/// Counts the datagrams of each flow (the first 4 bytes: flow index; the next 4: sequence
/// number) arriving on port argv[1] until nothing came for argv[2] seconds after the first;
/// prints `listening`, then one JSON line: per flow, received and reordered. The socket
/// buffer is made large (SO_RCVBUFFORCE, root) so that the receiver itself loses nothing.
const FLOW_RECEIVER: &str = r#"
import json, socket, struct, sys
port, quiet = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)
s.bind(("0.0.0.0", port))
print("listening", flush=True)
s.settimeout(60)
flows = {}
while True:
    try:
        data, _ = s.recvfrom(2048)
    except socket.timeout:
        break
    s.settimeout(quiet)
    flow, seq = struct.unpack("!II", data[:8])
    f = flows.setdefault(flow, {"received": 0, "reordered": 0, "last": -1})
    f["received"] += 1
    if seq <= f["last"]:
        f["reordered"] += 1
    else:
        f["last"] = seq
print(json.dumps({str(k): [v["received"], v["reordered"]] for k, v in flows.items()}), flush=True)
"#;

/// Sends argv[4] rounds of one datagram (argv[5] bytes) per flow to argv[1]:argv[2] from
/// argv[3] sockets (flows), sleeping argv[6] seconds after each round; prints `sent N`.
const FLOW_SENDER: &str = r#"
import socket, struct, sys, time
host, port, flows, rounds, size, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
socks = []
for i in range(flows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    s.connect((host, port))
    socks.append(s)
pad = bytes(max(0, size - 8))
sent = 0
for seq in range(rounds):
    for i, s in enumerate(socks):
        s.send(struct.pack("!II", i, seq) + pad)
        sent += 1
    time.sleep(pause)
print("sent", sent, flush=True)
"#;

/// The flows to send: how many, for how many rounds, how big, how fast.
#[derive(Clone, Debug)]
pub struct FlowLoad {
    pub flows: u32,
    /// Datagrams per flow.
    pub rounds: u32,
    /// UDP payload bytes (at least 8: the flow index and sequence number).
    pub payload_bytes: usize,
    /// The sender's pause after each round (one datagram of every flow).
    pub pause: Duration,
}

/// What the receiver counted, per flow: datagrams received, and those that came after a
/// later one of the same flow.
#[derive(Clone, Debug, Default)]
pub struct FlowReport {
    pub sent: u64,
    pub per_flow: BTreeMap<u32, (u64, u64)>,
}

impl FlowReport {
    pub fn received(&self) -> u64 {
        self.per_flow.values().map(|(r, _)| r).sum()
    }

    pub fn reordered(&self) -> u64 {
        self.per_flow.values().map(|(_, o)| o).sum()
    }
}

/// How long the receiver waits, once traffic has begun, before it decides the flows ended.
const RECEIVER_QUIET_S: &str = "2";
const RECEIVER_START_TIMEOUT: Duration = Duration::from_secs(10);
const RECEIVER_EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `load` from `from` to `to_ip:port`, where a receiver runs in `to` (with a real-time
/// priority: it is the measuring instrument, and it sleeps between datagrams), and returns
/// what it counted. Panics, with both sides' output, when either side fails.
pub fn send_flows(
    from: &Netns,
    (to, to_ip, port): (&Netns, Ipv4Addr, u16),
    load: &FlowLoad,
) -> FlowReport {
    let port_text = port.to_string();
    let mut rx_cmd = to.command("chrt");
    rx_cmd
        .args(["--fifo", "10", python(), "-c", FLOW_RECEIVER])
        .args([&port_text, RECEIVER_QUIET_S]);
    let mut receiver = Process::spawn(to.scope(), "flow-receiver", rx_cmd);
    if let Err(e) = receiver.wait_for_output("listening", RECEIVER_START_TIMEOUT) {
        panic!("flow receiver did not start: {e}");
    }
    let mut tx_cmd = from.command(python());
    tx_cmd
        .args(["-c", FLOW_SENDER, &to_ip.to_string(), &port_text])
        .args([
            load.flows.to_string(),
            load.rounds.to_string(),
            load.payload_bytes.to_string(),
            load.pause.as_secs_f64().to_string(),
        ]);
    let sent = output_of(&mut tx_cmd);
    let done = receiver.wait_timeout(RECEIVER_EXIT_TIMEOUT);
    let report = receiver.stdout();
    assert!(
        sent.success() && done.is_some_and(|s| s.success()),
        "flows to {to_ip}:{port} failed: {sent}\n--- receiver\n{report}{}",
        receiver.stderr()
    );
    parse_report(&sent.stdout, &report)
}

/// The sender's `sent N` and the receiver's JSON line.
fn parse_report(sender: &str, receiver: &str) -> FlowReport {
    let sent = sender
        .lines()
        .find_map(|l| l.strip_prefix("sent "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `sent N` from the flow sender: {sender}"));
    let line = receiver
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no report from the flow receiver: {receiver}"));
    let flows: BTreeMap<String, (u64, u64)> =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("flow receiver report: {e}\n{line}"));
    let per_flow = flows
        .into_iter()
        .map(|(k, v)| (k.parse().unwrap_or(u32::MAX), v))
        .collect();
    FlowReport { sent, per_flow }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reports_of_sender_and_receiver_are_read() {
        let r = parse_report("sent 6\n", "listening\n{\"0\": [3, 0], \"1\": [2, 1]}\n");
        assert_eq!(r.sent, 6);
        assert_eq!((r.received(), r.reordered()), (5, 1));
        assert_eq!(r.per_flow[&1], (2, 1));
    }
}
