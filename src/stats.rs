//! One snapshot of everything the daemon counts: ports (the router's view and the device's own
//! counters), workers, drops and punts by reason, routers, latency histograms. The exit summary,
//! the control API and the metrics endpoint all render this one structure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lcore_workers::{HistogramSnapshot, Percentiles, TscClock, WorkerStatsSnapshot};
use router_core::control::TableUsage;
use router_core::reason::{DropReason, PuntReason};
use router_core::stats::EngineTotals;
use serde::{Deserialize, Serialize};

/// `$now.field = $now.field - $base.field` (never below zero) for every field named.
macro_rules! subtract {
    ($now:expr, $base:expr; $($field:ident),+ $(,)?) => {
        $( $now.$field = $now.$field.saturating_sub($base.$field); )+
    };
}

/// One port.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PortStatsView {
    pub name: String,
    pub device: String,
    pub port_id: u16,
    pub fabric: bool,
    pub link_up: bool,
    /// Packets and bytes the workers received and sent on the port.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets the workers could not send on the port.
    pub tx_drops: u64,
    /// The device's own counters.
    pub device_rx_packets: u64,
    pub device_tx_packets: u64,
    pub device_rx_missed: u64,
    pub device_rx_errors: u64,
    pub device_tx_errors: u64,
    pub device_rx_nombuf: u64,
}

/// One worker.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WorkerView {
    pub index: usize,
    pub core: usize,
    pub loops: u64,
    pub bursts: u64,
    pub empty_polls: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub busy_cycles: u64,
    pub busy_cycles_per_packet: Option<f64>,
    /// Share of polls that found nothing.
    pub empty_poll_share: f64,
    pub idle_sleeps: u64,
}

/// Percentiles in nanoseconds (and the count of values).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct LatencyView {
    pub count: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

impl LatencyView {
    fn of(p: Percentiles, clock: Option<&TscClock>) -> Self {
        let ns = |v: u64| clock.map_or(0, |c| c.ns(v));
        LatencyView {
            count: p.count,
            p50_ns: ns(p.p50),
            p90_ns: ns(p.p90),
            p99_ns: ns(p.p99),
            p999_ns: ns(p.p999),
            max_ns: ns(p.max),
        }
    }
}

/// The latency histograms merged over the workers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    /// Processing time of one burst (RX burst returned to the burst dispatched).
    pub burst: LatencyView,
    /// Residence time of one packet (RX burst to TX burst handed to the port).
    pub residence: LatencyView,
    /// Processing time of one burst in TSC cycles: p50, p99, max.
    pub burst_cycles_p50: u64,
    pub burst_cycles_p99: u64,
    pub burst_cycles_max: u64,
}

impl Latency {
    pub fn of(h: Option<&HistogramSnapshot>) -> Self {
        let Some(h) = h else {
            return Latency::default();
        };
        let clock = h.clock();
        let burst = h.burst();
        Latency {
            burst: LatencyView::of(burst, clock.as_ref()),
            residence: LatencyView::of(h.residence(), clock.as_ref()),
            burst_cycles_p50: burst.p50,
            burst_cycles_p99: burst.p99,
            burst_cycles_max: burst.max,
        }
    }
}

/// One router's counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RouterView {
    pub name: String,
    pub routed_local: u64,
    pub routed_remote: u64,
    pub delivered_from_fabric: u64,
    pub icmp_errors: u64,
}

/// One floating IP and its counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FipView {
    pub ip: std::net::Ipv4Addr,
    pub router: String,
    /// The fixed IP of the instance port.
    pub port: std::net::Ipv4Addr,
    /// The host the instance runs on.
    pub host: String,
    /// True on the host the instance runs on: the one that answers ARP for it and translates.
    pub active: bool,
    /// Packets from the outside translated to the fixed IP.
    pub dnat_packets: u64,
    /// Packets from the instance translated to the floating IP.
    pub snat_packets: u64,
}

/// Everything, at one moment.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub uptime_s: f64,
    pub tsc_hz: u64,
    pub ports: Vec<PortStatsView>,
    pub workers: Vec<WorkerView>,
    /// Drops by reason, workers and control thread together (zero counts included).
    pub drops: BTreeMap<String, u64>,
    pub punts: BTreeMap<String, u64>,
    pub bridged_local: u64,
    pub bridged_remote: u64,
    pub bridged_from_fabric: u64,
    /// ICMP errors suppressed by the router-wide limit and by the per-source limit.
    pub icmp_rate_limited: u64,
    /// Datagrams too big for their next hop without DF that were fragmented, and the
    /// fragments they became.
    pub fragmented_packets: u64,
    pub fragments_created: u64,
    #[serde(default)]
    pub icmp_rate_limited_source: u64,
    /// ARP replies and announcements that resolved or confirmed a neighbour: taken in by the
    /// control thread, not drops.
    #[serde(default)]
    pub arp_learned: u64,
    pub routers: Vec<RouterView>,
    #[serde(default)]
    pub floating_ips: Vec<FipView>,
    pub latency: Latency,
    pub tables: Option<TableUsage>,
    pub mempool_in_use: u32,
    pub mempool_available: u32,
}

impl Snapshot {
    /// Fills drops, punts and the bridge counters from engine totals.
    pub fn set_engine(&mut self, t: &EngineTotals) {
        self.drops = t.drops.iter().cloned().collect();
        self.punts = t.punts.iter().cloned().collect();
        self.bridged_local = t.bridged_local;
        self.bridged_remote = t.bridged_remote;
        self.bridged_from_fabric = t.bridged_from_fabric;
        self.icmp_rate_limited = t.icmp_rate_limited;
        self.fragmented_packets = t.fragmented_packets;
        self.fragments_created = t.fragments_created;
        self.icmp_rate_limited_source = t.icmp_rate_limited_source;
        self.arp_learned = t.arp_learned;
    }

    /// A worker's view from its counters.
    pub fn worker_view(s: &WorkerStatsSnapshot, core: usize) -> WorkerView {
        let polls = s.bursts + s.empty_polls;
        WorkerView {
            index: s.index,
            core,
            loops: s.loops,
            bursts: s.bursts,
            empty_polls: s.empty_polls,
            rx_packets: s.rx_packets(),
            tx_packets: s.tx_packets(),
            busy_cycles: s.busy_cycles,
            busy_cycles_per_packet: s.busy_cycles_per_packet(),
            empty_poll_share: share(s.empty_polls, polls),
            idle_sleeps: s.idle_sleeps,
        }
    }

    /// The counters counted since `base` (an earlier snapshot of the same daemon): a reset
    /// kept on the reader's side, never written into the workers' counters. Gauges (links,
    /// tables, mempool, uptime) and latency are taken as they are now.
    pub fn since(&self, base: &Snapshot) -> Snapshot {
        let mut s = self.clone();
        for p in &mut s.ports {
            if let Some(b) = base.ports.iter().find(|b| b.name == p.name) {
                subtract!(p, b; rx_packets, rx_bytes, tx_packets, tx_bytes, tx_drops,
                    device_rx_packets, device_tx_packets, device_rx_missed, device_rx_errors,
                    device_tx_errors, device_rx_nombuf);
            }
        }
        for w in &mut s.workers {
            if let Some(b) = base.workers.iter().find(|b| b.index == w.index) {
                subtract!(w, b; loops, bursts, empty_polls, rx_packets, tx_packets, busy_cycles,
                    idle_sleeps);
                // Counts stay far below 2^53: the conversions to f64 are exact in practice.
                w.busy_cycles_per_packet =
                    (w.rx_packets != 0).then(|| w.busy_cycles as f64 / w.rx_packets as f64);
                w.empty_poll_share = share(w.empty_polls, w.bursts + w.empty_polls);
            }
        }
        for (map, base_map) in [(&mut s.drops, &base.drops), (&mut s.punts, &base.punts)] {
            for (k, v) in map.iter_mut() {
                *v = v.saturating_sub(base_map.get(k).copied().unwrap_or(0));
            }
        }
        for r in &mut s.routers {
            if let Some(b) = base.routers.iter().find(|b| b.name == r.name) {
                subtract!(r, b; routed_local, routed_remote, delivered_from_fabric, icmp_errors);
            }
        }
        for f in &mut s.floating_ips {
            if let Some(b) = base.floating_ips.iter().find(|b| b.ip == f.ip) {
                subtract!(f, b; dnat_packets, snat_packets);
            }
        }
        subtract!(s, base; bridged_local, bridged_remote, bridged_from_fabric, icmp_rate_limited,
            fragmented_packets, fragments_created, icmp_rate_limited_source, arp_learned);
        s
    }

    /// Total drops.
    pub fn drops_total(&self) -> u64 {
        self.drops.values().sum()
    }

    /// The human summary printed at exit and by `dvrctl stats`.
    pub fn render(&self) -> String {
        let mut o = String::new();
        self.render_ports(&mut o);
        self.render_workers(&mut o);
        let drops = nonzero(&self.drops);
        let _ = writeln!(o, "drops: {}", if drops.is_empty() { "none" } else { "" });
        counts(&mut o, &drops);
        let punts = nonzero(&self.punts);
        if !punts.is_empty() {
            let _ = writeln!(o, "punted to the control thread:");
            counts(&mut o, &punts);
        }
        self.render_routers(&mut o);
        self.render_control(&mut o);
        self.render_latency(&mut o);
        let _ = writeln!(
            o,
            "mempool: {} in use, {} available",
            self.mempool_in_use, self.mempool_available
        );
        o
    }

    fn render_ports(&self, o: &mut String) {
        let _ = writeln!(o, "ports:");
        let _ = writeln!(
            o,
            "  {:<10} {:>6} {:>12} {:>12} {:>14} {:>14} {:>9} {:>9} {:>9}",
            "name",
            "link",
            "rx_packets",
            "tx_packets",
            "rx_bytes",
            "tx_bytes",
            "tx_drops",
            "dev_miss",
            "dev_err"
        );
        for p in &self.ports {
            let _ = writeln!(
                o,
                "  {:<10} {:>6} {:>12} {:>12} {:>14} {:>14} {:>9} {:>9} {:>9}",
                p.name,
                if p.link_up { "up" } else { "down" },
                p.rx_packets,
                p.tx_packets,
                p.rx_bytes,
                p.tx_bytes,
                p.tx_drops,
                p.device_rx_missed,
                p.device_rx_errors + p.device_tx_errors,
            );
        }
    }

    fn render_workers(&self, o: &mut String) {
        let _ = writeln!(o, "workers:");
        for w in &self.workers {
            let cpp = w
                .busy_cycles_per_packet
                .map_or("-".to_string(), |c| format!("{c:.0}"));
            let _ = writeln!(
                o,
                "  worker {} (cpu {}): rx {} tx {} bursts {} empty polls {:.1}% busy cycles/packet {cpp}",
                w.index,
                w.core,
                w.rx_packets,
                w.tx_packets,
                w.bursts,
                100.0 * w.empty_poll_share
            );
        }
    }

    /// The routers' counters, the bridged frames and the fragmented packets, when there are
    /// any.
    fn render_routers(&self, o: &mut String) {
        if !self.routers.is_empty() {
            let _ = writeln!(o, "routers:");
            for r in &self.routers {
                let _ = writeln!(
                    o,
                    "  {:<12} routed here {} routed to peers {} delivered from peers {} icmp errors {}",
                    r.name, r.routed_local, r.routed_remote, r.delivered_from_fabric, r.icmp_errors
                );
            }
        }
        if !self.floating_ips.is_empty() {
            let _ = writeln!(o, "floating ips:");
            for f in &self.floating_ips {
                let _ = writeln!(
                    o,
                    "  {:<15} -> {:<15} router {} on {}{} in (dnat) {} out (snat) {}",
                    f.ip,
                    f.port,
                    f.router,
                    f.host,
                    if f.active { " (here)" } else { "" },
                    f.dnat_packets,
                    f.snat_packets
                );
            }
        }
        if self.bridged_local + self.bridged_remote + self.bridged_from_fabric > 0 {
            let _ = writeln!(
                o,
                "bridged: local {} to peers {} from peers {}",
                self.bridged_local, self.bridged_remote, self.bridged_from_fabric
            );
        }
        if self.fragmented_packets > 0 {
            let _ = writeln!(
                o,
                "fragmented: {} packets into {} fragments",
                self.fragmented_packets, self.fragments_created
            );
        }
    }

    /// ICMP errors held back and ARP replies taken in, when there are any.
    fn render_control(&self, o: &mut String) {
        if self.icmp_rate_limited + self.icmp_rate_limited_source > 0 {
            let _ = writeln!(
                o,
                "icmp errors rate limited: per router {} per source {}",
                self.icmp_rate_limited, self.icmp_rate_limited_source
            );
        }
        if self.arp_learned > 0 {
            let _ = writeln!(o, "arp replies learned: {}", self.arp_learned);
        }
    }

    fn render_latency(&self, o: &mut String) {
        let l = &self.latency;
        let _ = writeln!(
            o,
            "latency (ns):            {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}",
            "p50", "p90", "p99", "p99.9", "max", "count"
        );
        for (name, v) in [("per burst", l.burst), ("per packet rx->tx", l.residence)] {
            let _ = writeln!(
                o,
                "  {name:<22} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}",
                v.p50_ns, v.p90_ns, v.p99_ns, v.p999_ns, v.max_ns, v.count
            );
        }
    }
}

/// `part / whole`, 0 when `whole` is 0.
fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The reasons with a count above zero.
fn nonzero(counts: &BTreeMap<String, u64>) -> Vec<(&String, &u64)> {
    counts.iter().filter(|(_, &n)| n > 0).collect()
}

/// One line per reason and count.
fn counts(o: &mut String, counts: &[(&String, &u64)]) {
    for (reason, n) in counts {
        let _ = writeln!(o, "  {reason:<28} {n}");
    }
}

/// Names of every drop and punt reason (for callers that need the full list).
pub fn reason_names() -> (Vec<&'static str>, Vec<&'static str>) {
    (
        DropReason::ALL.iter().map(|r| r.name()).collect(),
        PuntReason::ALL.iter().map(|r| r.name()).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_subtracts_counters_and_keeps_gauges() {
        let mut base = Snapshot::default();
        base.ports.push(PortStatsView {
            name: "blue".into(),
            rx_packets: 10,
            tx_bytes: 100,
            ..PortStatsView::default()
        });
        base.workers.push(WorkerView {
            index: 0,
            bursts: 5,
            empty_polls: 5,
            rx_packets: 10,
            busy_cycles: 1000,
            ..WorkerView::default()
        });
        base.drops.insert("no_route".into(), 3);
        base.routers.push(RouterView {
            name: "t1".into(),
            routed_local: 4,
            ..RouterView::default()
        });
        base.bridged_local = 2;
        let mut now = base.clone();
        now.ports[0].rx_packets = 25;
        now.ports[0].tx_bytes = 150;
        now.ports[0].link_up = true;
        now.ports.push(PortStatsView {
            name: "red".into(),
            rx_packets: 7,
            ..PortStatsView::default()
        });
        now.workers[0].bursts = 15;
        now.workers[0].empty_polls = 15;
        now.workers[0].rx_packets = 30;
        now.workers[0].busy_cycles = 3000;
        now.drops.insert("no_route".into(), 5);
        now.drops.insert("ttl_exceeded".into(), 1);
        now.routers[0].routed_local = 10;
        now.bridged_local = 3;
        now.arp_learned = 4;
        now.icmp_rate_limited_source = 9;
        now.mempool_in_use = 42;
        let d = now.since(&base);
        assert_eq!(
            (
                d.ports[0].rx_packets,
                d.ports[0].tx_bytes,
                d.ports[0].link_up
            ),
            (15, 50, true)
        );
        assert_eq!(
            d.ports[1].rx_packets, 7,
            "a port absent from the base counts from zero"
        );
        assert_eq!((d.workers[0].bursts, d.workers[0].rx_packets), (10, 20));
        assert_eq!(d.workers[0].busy_cycles_per_packet, Some(100.0));
        assert!((d.workers[0].empty_poll_share - 0.5).abs() < 1e-9);
        assert_eq!(d.drops["no_route"], 2);
        assert_eq!(d.drops["ttl_exceeded"], 1);
        assert_eq!(d.routers[0].routed_local, 6);
        assert_eq!(d.bridged_local, 1);
        assert_eq!(d.arp_learned, 4);
        assert!(d.render().contains("arp replies learned: 4"));
        assert!(d.render().contains("per router 0 per source 9"));
        assert_eq!(d.mempool_in_use, 42);
        assert_eq!(base.since(&now).ports[0].rx_packets, 0, "never negative");
    }
}
