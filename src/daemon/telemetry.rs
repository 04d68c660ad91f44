//! What DPDK's own tools see of a running dvrd: its telemetry commands and the capture server.
//!
//! With telemetry on (`[eal] telemetry`, the default), EAL listens on
//! `<runtime dir>/dpdk_telemetry.v2`, where `dpdk-telemetry.py` asks DPDK's own commands
//! (`/ethdev/stats,<port id>`, `/ethdev/xstats,<port id>`, `/eal/params`, ...) and the four
//! registered here:
//!
//! - `/dvrd/stats`: totals over the ports, drops and punts, the mempool, and the port names;
//!   `/dvrd/stats,<port name or id>`: that port's counters (the router's and the device's).
//! - `/dvrd/drops`: every drop reason with its count (zeros included).
//! - `/dvrd/workers`: one array per counter, one entry per worker.
//! - `/dvrd/routers`: one array per counter, one entry per router.
//!
//! The figures are those of `dvrctl stats` and `/metrics` since start: each command asks the
//! control thread for a snapshot through the same bounded request channel as the metrics
//! endpoint, so the telemetry thread never touches the tables and a busy control thread makes
//! it answer `null` after a timeout, never wait for long. The handlers own a clone of the
//! channel's sender; [`Commands`] takes them back (the commands then answer `null`) when the
//! daemon stops.
//!
//! [`capture_server`] starts `rte_pdump` when the file asks for capture (`[eal] capture`, which
//! needs hugepages and no `--no-shconf` or `--in-memory`), so that
//! `dpdk-dumpcap --file-prefix=<prefix>` can capture a port while dvrd runs; otherwise it says
//! once, at start, that capture is off. DPDK refuses secondary processes once a non-EAL thread
//! registers (`rte_thread_register` turns the multi-process channel off), so with capture on
//! the workers run without lcore ids, and the mempool's per-lcore caches do not serve them.

use std::time::Duration;

use crossbeam::channel::{bounded, Sender};
use dpdk_bindings::telemetry::{self, Array, Dict, Value};
use dpdk_bindings::{Eal, Pdump};
use serde_json::{Map, Value as Json};
use tracing::{info, warn};

use super::DaemonError;
use crate::api::Call;
use crate::config::EalConfig;
use crate::stats::Snapshot;

/// How long a telemetry command waits to hand its request to the control thread, and again
/// for the answer.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);

/// A command: its name, its help, and how it renders a snapshot for its parameters.
struct Command {
    name: &'static str,
    help: &'static str,
    render: fn(&Snapshot, &str) -> Option<Value>,
}

const COMMANDS: [Command; 4] = [
    Command {
        name: "/dvrd/stats",
        help:
            "Totals since start and the port names. Parameter: a port name or id, for its counters.",
        render: stats,
    },
    Command {
        name: "/dvrd/drops",
        help: "Dropped packets since start, by reason. Takes no parameters.",
        render: |s, _| Some(drops(s)),
    },
    Command {
        name: "/dvrd/workers",
        help: "Per-worker counters since start: one array per counter. Takes no parameters.",
        render: |s, _| Some(columns(s.workers.iter())),
    },
    Command {
        name: "/dvrd/routers",
        help: "Per-router counters since start: one array per counter. Takes no parameters.",
        render: |s, _| Some(columns(s.routers.iter())),
    },
];

/// dvrd's telemetry commands, answered while this value lives.
pub(super) struct Commands(());

impl Commands {
    /// Registers the commands; each asks the control thread through `calls`.
    pub(super) fn register(calls: &Sender<Call>) -> Result<Commands, DaemonError> {
        for command in &COMMANDS {
            let calls = calls.clone();
            let render = command.render;
            telemetry::register(command.name, command.help, move |params| {
                render(&snapshot(&calls)?, params)
            })?;
        }
        Ok(Commands(()))
    }
}

impl Drop for Commands {
    fn drop(&mut self) {
        for command in &COMMANDS {
            telemetry::unregister(command.name);
        }
    }
}

/// Says at start where the telemetry socket is, or that there is none.
pub(super) fn announce(eal: &Eal, on: bool) {
    if on {
        let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        info!(
            socket = %eal.runtime_dir().join("dpdk_telemetry.v2").display(),
            commands = names.join(" "),
            "telemetry on (dpdk-telemetry.py -f PREFIX)"
        );
    } else {
        info!("telemetry off ([eal] telemetry = false)");
    }
}

/// The capture server, when the file asks for it (`[eal] capture`, which the configuration
/// allows only with a shared configuration); otherwise why there is none, said once.
pub(super) fn capture_server(eal: &Eal, cfg: &EalConfig) -> Option<Pdump> {
    if !cfg.capture {
        info!(
            "packet capture off ([eal] capture = false): dpdk-dumpcap and other secondary \
             processes cannot attach"
        );
        return None;
    }
    match Pdump::init(eal) {
        Ok(pdump) => {
            info!(
                "packet capture on (dpdk-dumpcap --file-prefix={} -i PORT); the workers run \
                 without EAL lcore ids, so the mempool's per-lcore caches are off",
                cfg.file_prefix
            );
            Some(pdump)
        }
        Err(e) => {
            warn!("packet capture unavailable: {e}");
            None
        }
    }
}

/// The counters since start, from the control thread, or `None` if it does not answer in
/// time (busy or stopping).
fn snapshot(calls: &Sender<Call>) -> Option<Snapshot> {
    let (reply, answer) = bounded(1);
    calls
        .send_timeout(Call::Metrics { reply }, SNAPSHOT_TIMEOUT)
        .ok()?;
    Some(answer.recv_timeout(SNAPSHOT_TIMEOUT).ok()?.snapshot)
}

/// `/dvrd/stats`: the totals, or with a port's name or id its counters (`None`: no such port).
fn stats(s: &Snapshot, port: &str) -> Option<Value> {
    if !port.is_empty() {
        let p = s
            .ports
            .iter()
            .find(|p| p.name == port || p.port_id.to_string() == port)?;
        return Some(Value::Dict(flat(&serde_json::to_value(p).ok()?)));
    }
    let sum = |f: fn(&crate::stats::PortStatsView) -> u64| s.ports.iter().map(f).sum::<u64>();
    let dict = Dict::new()
        .u64("uptime_s", s.uptime_s as u64)
        .u64("rx_packets", sum(|p| p.rx_packets))
        .u64("rx_bytes", sum(|p| p.rx_bytes))
        .u64("tx_packets", sum(|p| p.tx_packets))
        .u64("tx_bytes", sum(|p| p.tx_bytes))
        .u64("tx_drops", sum(|p| p.tx_drops))
        .u64("drops", s.drops.values().sum())
        .u64("punts", s.punts.values().sum())
        .u64("bridged_local", s.bridged_local)
        .u64("bridged_remote", s.bridged_remote)
        .u64("bridged_from_fabric", s.bridged_from_fabric)
        .u64("arp_learned", s.arp_learned)
        .u64("icmp_rate_limited", s.icmp_rate_limited)
        .u64("fragmented_packets", s.fragmented_packets)
        .u64("mempool_in_use", u64::from(s.mempool_in_use))
        .u64("mempool_available", u64::from(s.mempool_available))
        .array(
            "ports",
            Array::Text(s.ports.iter().map(|p| p.name.clone()).collect()),
        );
    Some(Value::Dict(dict))
}

/// `/dvrd/drops`: every reason and its count.
fn drops(s: &Snapshot) -> Value {
    Value::Dict(
        s.drops
            .iter()
            .fold(Dict::new(), |d, (reason, n)| d.u64(reason, *n)),
    )
}

/// An object of scalars as a dictionary: numbers and booleans (0, 1) as numbers, strings as
/// strings; anything else (nested values, fractions, nulls) is left out.
fn flat(value: &Json) -> Dict {
    let Some(fields) = value.as_object() else {
        return Dict::new();
    };
    fields.iter().fold(Dict::new(), |d, (name, v)| match v {
        Json::String(text) => d.text(name, text),
        _ => match scalar(v) {
            Some(n) => d.u64(name, n),
            None => d,
        },
    })
}

/// A list of objects as one array per field (DPDK's dictionaries hold no dictionaries): a field
/// whose values are all counts is an array of numbers, any other an array of strings.
fn columns<'a, T: serde::Serialize + 'a>(rows: impl Iterator<Item = &'a T>) -> Value {
    let rows: Vec<Map<String, Json>> = rows
        .filter_map(|r| match serde_json::to_value(r) {
            Ok(Json::Object(fields)) => Some(fields),
            _ => None,
        })
        .collect();
    let Some(first) = rows.first() else {
        return Value::Dict(Dict::new());
    };
    let dict = first.keys().fold(Dict::new(), |d, name| {
        let values: Vec<&Json> = rows.iter().map(|r| &r[name]).collect();
        if values.iter().any(|v| v.is_array() || v.is_object()) {
            return d;
        }
        match values
            .iter()
            .map(|v| scalar(v))
            .collect::<Option<Vec<u64>>>()
        {
            Some(counts) => d.array(name, Array::U64(counts)),
            None => d.array(name, Array::Text(values.iter().map(|v| text(v)).collect())),
        }
    });
    Value::Dict(dict)
}

/// A whole non-negative number or a boolean, as a count.
fn scalar(v: &Json) -> Option<u64> {
    match v {
        Json::Bool(b) => Some(u64::from(*b)),
        Json::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// A value as text: strings as they are, null as empty.
fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use dpdk_bindings::telemetry::Entry;

    use super::*;
    use crate::stats::{PortStatsView, RouterView, WorkerView};

    fn snapshot() -> Snapshot {
        let port = |name: &str, id: u16, rx: u64| PortStatsView {
            name: name.into(),
            device: format!("net_af_packet{id}"),
            port_id: id,
            link_up: true,
            rx_packets: rx,
            tx_packets: rx + 1,
            ..PortStatsView::default()
        };
        let mut s = Snapshot {
            ports: vec![port("blue", 0, 10), port("red", 1, 20)],
            workers: vec![WorkerView {
                index: 0,
                core: 1,
                rx_packets: 30,
                busy_cycles_per_packet: Some(150.5),
                ..WorkerView::default()
            }],
            routers: vec![RouterView {
                name: "tenant1".into(),
                routed_local: 7,
                ..RouterView::default()
            }],
            ..Snapshot::default()
        };
        s.drops.insert("ttl_exceeded".into(), 2);
        s.drops.insert("no_route".into(), 0);
        s
    }

    fn entry<'a>(v: &'a Value, name: &str) -> &'a Entry {
        let Value::Dict(d) = v else { panic!("{v:?}") };
        let (_, e) = d.entries().iter().find(|(n, _)| n == name).expect(name);
        e
    }

    #[test]
    fn stats_sum_the_ports_and_name_them() {
        let v = stats(&snapshot(), "").unwrap();
        assert_eq!(entry(&v, "rx_packets"), &Entry::U64(30));
        assert_eq!(entry(&v, "tx_packets"), &Entry::U64(32));
        assert_eq!(entry(&v, "drops"), &Entry::U64(2));
        let names = Array::Text(vec!["blue".into(), "red".into()]);
        assert_eq!(entry(&v, "ports"), &Entry::Array(names));
    }

    #[test]
    fn stats_of_one_port_by_name_or_id() {
        let s = snapshot();
        let by_name = stats(&s, "red").unwrap();
        assert_eq!(by_name, stats(&s, "1").unwrap());
        assert_eq!(entry(&by_name, "rx_packets"), &Entry::U64(20));
        assert_eq!(entry(&by_name, "link_up"), &Entry::U64(1));
        assert_eq!(
            entry(&by_name, "device"),
            &Entry::Text("net_af_packet1".into())
        );
        assert_eq!(stats(&s, "green"), None);
    }

    #[test]
    fn drops_list_every_reason() {
        let v = drops(&snapshot());
        assert_eq!(entry(&v, "ttl_exceeded"), &Entry::U64(2));
        assert_eq!(entry(&v, "no_route"), &Entry::U64(0));
    }

    #[test]
    fn workers_and_routers_become_columns() {
        let s = snapshot();
        let w = columns(s.workers.iter());
        assert_eq!(entry(&w, "rx_packets"), &Entry::Array(Array::U64(vec![30])));
        let fraction = Array::Text(vec!["150.5".into()]);
        assert_eq!(entry(&w, "busy_cycles_per_packet"), &Entry::Array(fraction));
        let r = columns(s.routers.iter());
        assert_eq!(
            entry(&r, "name"),
            &Entry::Array(Array::Text(vec!["tenant1".into()]))
        );
        assert_eq!(
            entry(&r, "routed_local"),
            &Entry::Array(Array::U64(vec![7]))
        );
        assert_eq!(
            columns(Vec::<RouterView>::new().iter()),
            Value::Dict(Dict::new())
        );
    }
}
