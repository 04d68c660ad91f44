//! The Prometheus metrics endpoint: `GET /metrics` on a plain HTTP/1.1 server (off unless the
//! configuration sets `[control] metrics`), answering in the text exposition format 0.0.4.
//!
//! Counters are the daemon's totals since start: never reset (the API's `stats.reset` keeps
//! its baseline on the API side), so they are monotonic as Prometheus expects. The latency
//! histograms are exported as summaries (quantiles, `_sum`, `_count`), since start.
//!
//! One thread serves one connection at a time, with a bounded request head and short
//! timeouts: a slow or hostile scraper delays other scrapers, never the daemon. The data comes
//! from the control thread through the same bounded channel as API requests.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, Sender};
use router_core::reason::DropReason;
use tracing::{info, warn};

use crate::api::view::{MetricsData, MetricsSummary, ReloadCounts};
use crate::api::Call;
use crate::stats::{PortStatsView, RouterView, Snapshot, WorkerView};

/// Largest request head accepted (request line and headers).
pub const REQUEST_HEAD_MAX: usize = 8 * 1024;
/// How long a scraper may take to send its request, and to read the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for the control thread's data.
const DATA_TIMEOUT: Duration = Duration::from_secs(5);

/// The running endpoint; dropping it stops it.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `addr` and serves the data the control thread sends through `calls`.
    pub fn start(addr: SocketAddr, calls: Sender<Call>) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("metrics endpoint {addr}: {e}")))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("dvr-metrics".into())
            .spawn({
                let stop = Arc::clone(&stop);
                move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Ok(stream) = stream {
                            if let Err(e) = serve(stream, &calls) {
                                tracing::debug!("metrics request: {e}");
                            }
                        }
                    }
                }
            })?;
        info!(%addr, "metrics endpoint listening");
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        let _ = thread.join();
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(mut stream: TcpStream, calls: &Sender<Call>) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = match read_head(&mut stream) {
        Ok(Some(h)) => h,
        Ok(None) => {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "request head too large\n",
            )
        }
        Err(e) => return Err(e),
    };
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) {
        return respond(&mut stream, "400 Bad Request", "not an HTTP/1.x request\n");
    }
    if method != Some("GET") && method != Some("HEAD") {
        return respond(&mut stream, "405 Method Not Allowed", "only GET /metrics\n");
    }
    let path = target
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default();
    if path != "/metrics" {
        return respond(&mut stream, "404 Not Found", "only GET /metrics\n");
    }
    let (reply, answer) = bounded(1);
    if calls
        .send_timeout(Call::Metrics { reply }, DATA_TIMEOUT)
        .is_err()
    {
        return respond(
            &mut stream,
            "503 Service Unavailable",
            "the daemon is busy or stopping\n",
        );
    }
    let Ok(data) = answer.recv_timeout(DATA_TIMEOUT) else {
        return respond(
            &mut stream,
            "503 Service Unavailable",
            "no data from the control thread\n",
        );
    };
    let body = render(&data);
    let body = if method == Some("HEAD") {
        String::new()
    } else {
        body
    };
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Reads up to the blank line that ends the head; `None` when it is over the limit.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<String>> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not received in time",
            ));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the request head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
        {
            buf.truncate(end);
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        if buf.len() > REQUEST_HEAD_MAX {
            return Ok(None);
        }
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Escapes a label value (backslash, double quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes metric families in the text exposition format.
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with a single sample, without labels.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A family with one sample per port, worker or router, labelled with its name.
    fn items(&mut self, f: &ItemFamily, s: &Snapshot) {
        self.family(f.name, f.kind, f.help);
        match f.items {
            Items::Ports(value) => {
                for p in &s.ports {
                    self.sample(f.name, &[("port", &p.name)], value(p) as f64);
                }
            }
            Items::Workers(value) => {
                for w in &s.workers {
                    let index = w.index.to_string();
                    self.sample(f.name, &[("worker", &index)], value(w) as f64);
                }
            }
            Items::Routers(value) => {
                for r in &s.routers {
                    self.sample(f.name, &[("router", &r.name)], value(r) as f64);
                }
            }
        }
    }

    fn summary(&mut self, name: &str, help: &str, s: &MetricsSummary) {
        self.family(name, "summary", help);
        for (q, v) in &s.quantiles {
            self.sample(name, &[("quantile", &q.to_string())], v);
        }
        self.sample(&format!("{name}_sum"), &[], s.sum_s);
        self.sample(&format!("{name}_count"), &[], s.count);
    }
}

/// The items a family has one sample for, and how to read each one's value.
#[derive(Clone, Copy)]
enum Items {
    Ports(fn(&PortStatsView) -> u64),
    Workers(fn(&WorkerView) -> u64),
    Routers(fn(&RouterView) -> u64),
}

/// A family with one sample per item.
struct ItemFamily {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    items: Items,
}

const fn counter(name: &'static str, help: &'static str, items: Items) -> ItemFamily {
    ItemFamily {
        name,
        kind: "counter",
        help,
        items,
    }
}

const fn gauge(name: &'static str, help: &'static str, items: Items) -> ItemFamily {
    ItemFamily {
        name,
        kind: "gauge",
        help,
        items,
    }
}

/// Every family with one sample per port, worker or router, in the order they are written:
/// a flat table, one entry per family, so that a new counter is one more line.
const ITEM_FAMILIES: &[ItemFamily] = &[
    counter(
        "dvrd_port_rx_packets_total",
        "Packets the workers received on the port.",
        Items::Ports(|p| p.rx_packets),
    ),
    counter(
        "dvrd_port_rx_bytes_total",
        "Bytes the workers received on the port.",
        Items::Ports(|p| p.rx_bytes),
    ),
    counter(
        "dvrd_port_tx_packets_total",
        "Packets the workers sent on the port.",
        Items::Ports(|p| p.tx_packets),
    ),
    counter(
        "dvrd_port_tx_bytes_total",
        "Bytes the workers sent on the port.",
        Items::Ports(|p| p.tx_bytes),
    ),
    counter(
        "dvrd_port_tx_drops_total",
        "Packets the port's TX queue did not take.",
        Items::Ports(|p| p.tx_drops),
    ),
    counter(
        "dvrd_port_device_rx_packets_total",
        "Packets the device received (its own counter).",
        Items::Ports(|p| p.device_rx_packets),
    ),
    counter(
        "dvrd_port_device_tx_packets_total",
        "Packets the device sent (its own counter).",
        Items::Ports(|p| p.device_tx_packets),
    ),
    counter(
        "dvrd_port_device_rx_missed_total",
        "Packets the device dropped for lack of RX descriptors.",
        Items::Ports(|p| p.device_rx_missed),
    ),
    counter(
        "dvrd_port_device_rx_errors_total",
        "Receive errors the device counted.",
        Items::Ports(|p| p.device_rx_errors),
    ),
    counter(
        "dvrd_port_device_tx_errors_total",
        "Transmit errors the device counted.",
        Items::Ports(|p| p.device_tx_errors),
    ),
    counter(
        "dvrd_port_device_rx_nombuf_total",
        "Receive failures for lack of packet buffers.",
        Items::Ports(|p| p.device_rx_nombuf),
    ),
    gauge(
        "dvrd_port_link_up",
        "1 when the port's link is up.",
        Items::Ports(|p| u64::from(p.link_up)),
    ),
    counter(
        "dvrd_worker_loops_total",
        "Poll loops of the worker.",
        Items::Workers(|w| w.loops),
    ),
    counter(
        "dvrd_worker_bursts_total",
        "Non-empty RX bursts the worker handled.",
        Items::Workers(|w| w.bursts),
    ),
    counter(
        "dvrd_worker_empty_polls_total",
        "RX polls that returned no packet.",
        Items::Workers(|w| w.empty_polls),
    ),
    counter(
        "dvrd_worker_rx_packets_total",
        "Packets the worker received.",
        Items::Workers(|w| w.rx_packets),
    ),
    counter(
        "dvrd_worker_tx_packets_total",
        "Packets the worker sent.",
        Items::Workers(|w| w.tx_packets),
    ),
    counter(
        "dvrd_worker_busy_cycles_total",
        "TSC cycles the worker spent on non-empty polls.",
        Items::Workers(|w| w.busy_cycles),
    ),
    counter(
        "dvrd_worker_idle_sleeps_total",
        "Times the worker slept for lack of traffic.",
        Items::Workers(|w| w.idle_sleeps),
    ),
    counter(
        "dvrd_router_delivered_from_fabric_total",
        "Packets peers routed and this host delivered.",
        Items::Routers(|r| r.delivered_from_fabric),
    ),
    counter(
        "dvrd_router_icmp_errors_total",
        "ICMP errors a router sent.",
        Items::Routers(|r| r.icmp_errors),
    ),
];

/// The whole exposition.
pub fn render(data: &MetricsData) -> String {
    let s = &data.snapshot;
    let mut e = Exposition {
        out: String::with_capacity(16 * 1024),
    };
    e.single(
        "dvrd_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        s.uptime_s,
    );
    // The routers' families come after the packet counters by reason, as they always have.
    let (routers, ports_and_workers): (Vec<&ItemFamily>, Vec<&ItemFamily>) = ITEM_FAMILIES
        .iter()
        .partition(|f| matches!(f.items, Items::Routers(_)));
    for f in ports_and_workers {
        e.items(f, s);
    }
    busy_seconds(&mut e, s);
    by_reason(&mut e, s);
    routed(&mut e, s);
    floating_ips(&mut e, s);
    for f in routers {
        e.items(f, s);
    }
    tables(&mut e, s);
    e.single(
        "dvrd_mempool_in_use",
        "gauge",
        "Packet buffers in use.",
        s.mempool_in_use,
    );
    e.single(
        "dvrd_mempool_available",
        "gauge",
        "Packet buffers available.",
        s.mempool_available,
    );
    if let Some(f) = &data.fleet {
        fleet(&mut e, f);
    }
    config_reloads(&mut e, &data.config_reloads);
    e.summary(
        "dvrd_burst_processing_seconds",
        "Processing time of one RX burst, RX call to dispatch done, all workers.",
        &data.burst,
    );
    e.summary(
        "dvrd_packet_residence_seconds",
        "Residence time of one forwarded packet, RX burst to TX burst, all workers.",
        &data.residence,
    );
    e.out
}

/// Each worker's busy time in seconds: its busy cycles over the TSC frequency, so that a
/// dashboard's `rate()` of it is the worker's busy share (0 to 1) without knowing the clock.
fn busy_seconds(e: &mut Exposition, s: &Snapshot) {
    let name = "dvrd_worker_busy_seconds_total";
    e.family(
        name,
        "counter",
        "Seconds the worker spent on non-empty polls (busy cycles over the TSC frequency).",
    );
    let hz = s.tsc_hz.max(1) as f64;
    for w in &s.workers {
        let index = w.index.to_string();
        e.sample(name, &[("worker", &index)], w.busy_cycles as f64 / hz);
    }
}

/// Drops and punts by reason, frames bridged by direction, ICMP errors suppressed, datagrams
/// fragmented.
fn by_reason(e: &mut Exposition, s: &Snapshot) {
    let reasons = [
        (
            "dvrd_drops_total",
            "Packets dropped, by reason (workers and control thread).",
            &s.drops,
        ),
        (
            "dvrd_punts_total",
            "Packets handed to the control thread, by reason.",
            &s.punts,
        ),
    ];
    for (name, help, counts) in reasons {
        e.family(name, "counter", help);
        for (reason, n) in counts {
            e.sample(name, &[("reason", reason)], n);
        }
    }
    let bridged = "dvrd_bridged_packets_total";
    e.family(
        bridged,
        "counter",
        "Frames bridged within a network, by direction.",
    );
    for (direction, n) in [
        ("local", s.bridged_local),
        ("to_peers", s.bridged_remote),
        ("from_peers", s.bridged_from_fabric),
    ] {
        e.sample(bridged, &[("direction", direction)], n);
    }
    e.single(
        "dvrd_icmp_rate_limited_total",
        "counter",
        "ICMP errors suppressed by the router-wide rate limit.",
        s.icmp_rate_limited,
    );
    e.single(
        "dvrd_fragmented_packets_total",
        "counter",
        "Datagrams too big for their next hop without DF that were fragmented.",
        s.fragmented_packets,
    );
    e.single(
        "dvrd_fragments_created_total",
        "counter",
        "Fragments the fragmented datagrams became.",
        s.fragments_created,
    );
    e.single(
        "dvrd_icmp_rate_limited_source_total",
        "counter",
        "ICMP errors suppressed by the per-source rate limit.",
        s.icmp_rate_limited_source,
    );
    e.single(
        "dvrd_arp_learned_total",
        "counter",
        "ARP replies and announcements that resolved or confirmed a neighbour (not drops).",
        s.arp_learned,
    );
}

/// Packets each router routed, by where the destination is.
fn routed(e: &mut Exposition, s: &Snapshot) {
    let name = "dvrd_router_routed_packets_total";
    e.family(
        name,
        "counter",
        "Packets a router routed, by where the destination is.",
    );
    for r in &s.routers {
        for (destination, n) in [("local", r.routed_local), ("peer", r.routed_remote)] {
            e.sample(
                name,
                &[("router", &r.name), ("destination", destination)],
                n,
            );
        }
    }
}

/// Packets each floating IP translated, by direction, and whether this host acts on it.
fn floating_ips(e: &mut Exposition, s: &Snapshot) {
    let name = "dvrd_floating_ip_packets_total";
    e.family(
        name,
        "counter",
        "Packets a floating IP translated: in (DNAT, to the instance), out (SNAT, from it).",
    );
    for f in &s.floating_ips {
        let ip = f.ip.to_string();
        for (direction, n) in [("in", f.dnat_packets), ("out", f.snat_packets)] {
            e.sample(
                name,
                &[
                    ("floating_ip", &ip),
                    ("router", &f.router),
                    ("direction", direction),
                ],
                n,
            );
        }
    }
    let active = "dvrd_floating_ip_active";
    e.family(
        active,
        "gauge",
        "1 on the host a floating IP's instance runs on (it answers ARP and translates).",
    );
    for f in &s.floating_ips {
        let ip = f.ip.to_string();
        e.sample(active, &[("floating_ip", &ip)], u64::from(f.active));
    }
}

/// The data-plane tables' use and capacity.
fn tables(e: &mut Exposition, s: &Snapshot) {
    let Some(t) = &s.tables else {
        return;
    };
    let tables = [
        ("next_hops", t.next_hops_used, t.next_hops_capacity),
        ("l2", t.l2_used, t.l2_capacity),
    ];
    let families = [
        (
            "dvrd_table_entries",
            "Entries in use in a data-plane table.",
            false,
        ),
        (
            "dvrd_table_capacity",
            "Capacity of a data-plane table.",
            true,
        ),
    ];
    for (family, help, of_capacity) in families {
        e.family(family, "gauge", help);
        for (table, used, capacity) in tables {
            let value = if of_capacity { capacity } else { used };
            e.sample(family, &[("table", table)], value);
        }
    }
    e.single(
        "dvrd_routes",
        "gauge",
        "Prefixes in all routing tables.",
        t.routes,
    );
    e.single(
        "dvrd_lpm_tbl8_groups",
        "gauge",
        "LPM tbl8 groups in use in all routing tables.",
        t.tbl8_used,
    );
}

/// Every drop reason's metric label, for tests and documentation.
pub fn drop_labels() -> impl Iterator<Item = &'static str> {
    DropReason::ALL.iter().map(|r| r.name())
}

/// Warns once when the endpoint listens beyond loopback (it has no authentication).
pub fn check_exposure(addr: SocketAddr) {
    if !addr.ip().is_loopback() {
        warn!(%addr, "the metrics endpoint has no authentication and listens beyond loopback");
    }
}

/// The host's membership of the fleet.
fn fleet(e: &mut Exposition, f: &dvr_fleet::MemberReport) {
    let connected = u64::from(f.state == dvr_fleet::LinkState::Connected);
    e.single(
        "dvrd_fleet_connected",
        "gauge",
        "1 while connected to the fleet's etcd, 0 while forwarding on the last state.",
        connected,
    );
    e.single(
        "dvrd_fleet_applied_revision",
        "gauge",
        "The store revision this host's tables reflect.",
        f.applied_revision,
    );
    e.single(
        "dvrd_fleet_rejected_records",
        "gauge",
        "Records of the store this host could not apply (see dvrctl stats).",
        f.rejected_total as u64,
    );
    e.single(
        "dvrd_fleet_changes_total",
        "counter",
        "Changes applied from the fleet's store.",
        f.changes,
    );
    e.single(
        "dvrd_fleet_relists_total",
        "counter",
        "Full reads of the store (start, compaction).",
        f.relists,
    );
}

/// Reloads of the configuration file (SIGHUP, `config.reload`), by result.
fn config_reloads(e: &mut Exposition, counts: &ReloadCounts) {
    let name = "dvrd_config_reloads_total";
    e.family(
        name,
        "counter",
        "Reloads of the configuration file (SIGHUP, config.reload), by result: applied, or \
         refused (nothing changed).",
    );
    for (result, n) in [("applied", counts.applied), ("refused", counts.refused)] {
        e.sample(name, &[("result", result)], n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> MetricsData {
        let mut s = Snapshot {
            uptime_s: 12.5,
            ..Snapshot::default()
        };
        s.tsc_hz = 2_000_000_000;
        s.ports.push(PortStatsView {
            name: "blue".into(),
            rx_packets: 10,
            link_up: true,
            ..PortStatsView::default()
        });
        s.ports.push(PortStatsView {
            name: "we\"ird\\".into(),
            ..PortStatsView::default()
        });
        s.workers.push(WorkerView {
            index: 0,
            bursts: 3,
            busy_cycles: 1_000_000_000,
            ..WorkerView::default()
        });
        s.drops = drop_labels().map(|r| (r.to_string(), 0)).collect();
        s.drops.insert("ipv4_bad_checksum".into(), 4);
        s.icmp_rate_limited_source = 7;
        s.arp_learned = 3;
        s.routers.push(RouterView {
            name: "t1".into(),
            routed_local: 9,
            ..RouterView::default()
        });
        let summary = MetricsSummary {
            count: 2,
            sum_s: 3e-6,
            quantiles: vec![(0.5, 1e-6), (0.99, 2e-6)],
        };
        let mut fleet = dvr_fleet::MemberReport::new("host-a");
        fleet.set_state(dvr_fleet::LinkState::Connected, None);
        fleet.applied_revision = 42;
        MetricsData {
            snapshot: s,
            fleet: Some(fleet),
            config_reloads: ReloadCounts {
                applied: 2,
                refused: 1,
            },
            burst: summary.clone(),
            residence: summary,
        }
    }

    #[test]
    fn exposition_format() {
        let text = render(&data());
        assert!(text.contains("# TYPE dvrd_port_rx_packets_total counter\n"));
        assert!(text.contains("dvrd_port_rx_packets_total{port=\"blue\"} 10\n"));
        assert!(text.contains("dvrd_port_link_up{port=\"blue\"} 1\n"));
        assert!(
            text.contains("dvrd_port_rx_packets_total{port=\"we\\\"ird\\\\\"} 0\n"),
            "escaped label"
        );
        assert!(text.contains("dvrd_drops_total{reason=\"ipv4_bad_checksum\"} 4\n"));
        assert!(text.contains("dvrd_icmp_rate_limited_source_total 7\n"));
        assert!(text.contains("dvrd_arp_learned_total 3\n"));
        assert!(text.contains("dvrd_worker_busy_seconds_total{worker=\"0\"} 0.5\n"));
        assert!(text
            .contains("dvrd_router_routed_packets_total{router=\"t1\",destination=\"local\"} 9\n"));
        assert!(text.contains("# TYPE dvrd_burst_processing_seconds summary\n"));
        assert!(text.contains("dvrd_burst_processing_seconds{quantile=\"0.99\"} 0.000002\n"));
        assert!(text.contains("dvrd_burst_processing_seconds_count 2\n"));
        assert!(text.contains("# TYPE dvrd_fleet_connected gauge\ndvrd_fleet_connected 1\n"));
        assert!(text.contains("dvrd_fleet_applied_revision 42\n"));
        assert!(text.contains("dvrd_fleet_rejected_records 0\n"));
        assert!(text.contains("dvrd_config_reloads_total{result=\"applied\"} 2\n"));
        assert!(text.contains("dvrd_config_reloads_total{result=\"refused\"} 1\n"));
        // Every sample line: a metric name, optional labels, one value that parses as a number.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(name.starts_with("dvrd_"), "{line}");
        }
        // Every family is declared once, with HELP before TYPE.
        let types: Vec<_> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        let mut unique = types.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(types.len(), unique.len());
    }

    /// Every metric and label the shipped Grafana dashboard queries is in the exposition of a
    /// host with every kind of item: ports, workers, routers, tables, a floating IP, a fleet.
    #[test]
    fn the_dashboard_queries_only_what_is_exported() {
        let mut d = data();
        d.snapshot.punts.insert("arp".into(), 1);
        d.snapshot.tables = Some(router_core::control::TableUsage {
            next_hops_used: 1,
            next_hops_capacity: 2,
            l2_used: 1,
            l2_capacity: 2,
            routes: 3,
            tbl8_used: 0,
        });
        d.snapshot.floating_ips.push(crate::stats::FipView {
            ip: "203.0.113.10".parse().unwrap(),
            router: "t1".into(),
            port: "10.0.1.5".parse().unwrap(),
            host: "host-a".into(),
            active: true,
            dnat_packets: 1,
            snat_packets: 2,
        });
        let problems = dvr_harness::dashboard::missing(
            &dvr_harness::dashboard::shipped(),
            &render(&d),
            |_| false,
            true,
        );
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn serves_get_metrics_only() {
        let (tx, rx) = crossbeam::channel::bounded::<Call>(4);
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), tx).unwrap();
        let addr = server.addr();
        let control = std::thread::spawn(move || {
            while let Ok(call) = rx.recv() {
                if let Call::Metrics { reply } = call {
                    let _ = reply.send(data());
                }
            }
        });
        let get = |request: &[u8]| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(request).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let ok = get(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("dvrd_uptime_seconds 12.5\n"));
        assert!(get(b"GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get(b"hello\r\n\r\n").starts_with("HTTP/1.1 400"));
        let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'x', REQUEST_HEAD_MAX + 10));
        assert!(get(&huge).starts_with("HTTP/1.1 431"));
        drop(server);
        drop(control);
    }
}
