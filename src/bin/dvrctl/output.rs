//! What `dvrctl` prints: the control API's results as JSON (`--json`) or as tables and lines
//! for people (one rendering per result, one row layout per listed object).

use super::*;
use dvr_router::api::fleet::FleetStatusView;

pub(crate) fn parse_as<T: serde::de::DeserializeOwned>(op: &str, v: &Value) -> Result<T, Failure> {
    serde_json::from_value(v.clone()).map_err(|e| Failure {
        code: EXIT_UNREACHABLE,
        message: format!("unexpected result of {op}: {e}"),
        error: None,
    })
}

pub(crate) fn print_result(cli: &Cli, op: &str, v: &Value) -> Result<(), Failure> {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return Ok(());
    }
    let out = human(op, v)?;
    print!("{out}");
    Ok(())
}

/// The human rendering of a result.
pub(crate) fn human(op: &str, v: &Value) -> Result<String, Failure> {
    let mut o = String::new();
    let out = &mut o;
    match op {
        "router.list" => show_rows(out, op, v, |l: &Routers| &l.routers)?,
        "network.list" => show_rows(out, op, v, |l: &Networks| &l.networks)?,
        "interface.list" => show_rows(out, op, v, |l: &Interfaces| &l.interfaces)?,
        "route.list" => show_rows(out, op, v, |l: &Routes| &l.routes)?,
        "route.lookup" => show::<Lookup>(out, op, v)?,
        "port.list" => show_rows(out, op, v, |l: &Ports| &l.ports)?,
        "peer.list" => show_rows(out, op, v, |l: &Peers| &l.peers)?,
        "host.show" => show::<HostView>(out, op, v)?,
        "external.show" => show::<ExternalView>(out, op, v)?,
        "fip.list" => show_rows(out, op, v, |l: &Fips| &l.floating_ips)?,
        "neigh.list" => show_rows(out, op, v, |l: &Neighbors| &l.neighbors)?,
        "stats.show" => show::<StatsView>(out, op, v)?,
        "hist.show" => show::<HistView>(out, op, v)?,
        "trace" => show::<TraceView>(out, op, v)?,
        "batch" => show::<BatchApplied>(out, op, v)?,
        "version" => show::<VersionInfo>(out, op, v)?,
        "config.reload" => show::<ReloadView>(out, op, v)?,
        "fleet.status" => fleet_status(out, op, v)?,
        "fleet.show" => {
            let f: dvr_router::api::view::FleetView = parse_as(op, v)?;
            let _ = writeln!(out, "{}", f.report.summary());
            let r = &f.report;
            let _ = writeln!(
                out,
                "routers {}, events {}, batches {}, changes {}, re-lists {}, reconnects {}",
                r.routers, r.events, r.batches, r.changes, r.relists, r.reconnects
            );
            for e in &r.rejected {
                let _ = writeln!(out, "refused {}: {}", e.key, e.error);
            }
        }
        "log.show" | "log.set" => text_field(out, "log filter", v, "level"),
        "stats.reset" | "hist.reset" => text_field(out, "reset", v, "reset"),
        // Adds, deletes and sets: silent, like `ip`.
        _ if v.get("changed").is_some() => {}
        _ => {
            let _ = writeln!(o, "{}", serde_json::to_string_pretty(v).unwrap_or_default());
        }
    }
    Ok(o)
}

/// A result as people read it.
pub(crate) trait Human {
    fn human(&self, o: &mut String);
}

/// Reads the result of `op` as a `T` and writes it for people.
pub(crate) fn show<T: serde::de::DeserializeOwned + Human>(
    o: &mut String,
    op: &str,
    v: &Value,
) -> Result<(), Failure> {
    parse_as::<T>(op, v)?.human(o);
    Ok(())
}

/// `LABEL: VALUE` for the text field `key` of the result.
pub(crate) fn text_field(o: &mut String, label: &str, v: &Value, key: &str) {
    let value = v.get(key).and_then(Value::as_str).unwrap_or_default();
    let _ = writeln!(o, "{label}: {value}");
}

/// An object as one row of its listing's table.
pub(crate) trait Row {
    /// The names of the columns.
    const HEADER: &'static [&'static str];
    fn row(&self) -> Vec<String>;
}

/// Reads the listing that `op` answered and writes its objects as a table.
pub(crate) fn show_rows<L: serde::de::DeserializeOwned, T: Row>(
    o: &mut String,
    op: &str,
    v: &Value,
    objects: fn(&L) -> &[T],
) -> Result<(), Failure> {
    let listing: L = parse_as(op, v)?;
    table(o, T::HEADER, objects(&listing).iter().map(Row::row));
    Ok(())
}

impl Row for RouterEntry {
    const HEADER: &'static [&'static str] =
        &["router", "large", "interfaces", "routes", "prefixes"];

    fn row(&self) -> Vec<String> {
        let large = yes(self.large);
        cells(&[
            &self.name,
            &large,
            &self.interfaces,
            &self.routes,
            &self.prefixes,
        ])
    }
}

impl Row for NetworkView {
    const HEADER: &'static [&'static str] = &["network", "vni", "local ports", "router"];

    fn row(&self) -> Vec<String> {
        let (ports, router) = (list(&self.ports), or_dash(&self.router));
        cells(&[&self.name, &self.vni, &ports, &router])
    }
}

impl Row for InterfaceSpec {
    const HEADER: &'static [&'static str] = &["router", "network", "address", "mac"];

    fn row(&self) -> Vec<String> {
        cells(&[&self.router, &self.network, &self.address, &self.mac])
    }
}

impl Row for RouteSpec {
    const HEADER: &'static [&'static str] = &["router", "prefix", "via"];

    fn row(&self) -> Vec<String> {
        cells(&[&self.router, &self.prefix, &self.via])
    }
}

impl Row for InstancePortSpec {
    const HEADER: &'static [&'static str] = &["network", "ip", "mac", "host", "local port"];

    fn row(&self) -> Vec<String> {
        let port = or_dash(&self.port);
        cells(&[&self.network, &self.ip, &self.mac, &self.host, &port])
    }
}

impl Row for PeerSpec {
    const HEADER: &'static [&'static str] = &["peer", "dvr mac", "vtep"];

    fn row(&self) -> Vec<String> {
        cells(&[&self.name, &self.dvr_mac, &self.vtep])
    }
}

impl Row for NeighborView {
    const HEADER: &'static [&'static str] =
        &["router", "ip", "mac", "state", "where", "age", "routes"];

    fn row(&self) -> Vec<String> {
        let state = serde_json::to_value(self.state)
            .ok()
            .and_then(|s| s.as_str().map(str::to_string))
            .unwrap_or_default();
        let age = self
            .age_ms
            .map_or_else(|| "-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
        let mac = or_dash(&self.mac);
        let (router, location) = (&self.router, &self.location);
        cells(&[router, &self.ip, &mac, &state, location, &age, &self.routes])
    }
}

/// The cells of a row, each as it displays.
pub(crate) fn cells(values: &[&dyn std::fmt::Display]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

/// The value, or `-` when there is none.
pub(crate) fn or_dash(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

impl Human for Lookup {
    fn human(&self, o: &mut String) {
        let nh = self
            .next_hop
            .map_or_else(String::new, |n| format!("next hop {n}: "));
        let _ = writeln!(o, "{} router {}: {nh}{}", self.ip, self.router, self.result);
    }
}

impl Human for HostView {
    fn human(&self, o: &mut String) {
        match &self.host {
            Some(h) => {
                let _ = writeln!(o, "host {} dvr mac {} vtep {}", h.name, h.dvr_mac, h.vtep);
            }
            None => o.push_str("host not set\n"),
        }
    }
}

impl Human for ExternalView {
    fn human(&self, o: &mut String) {
        let port = self
            .port
            .as_deref()
            .unwrap_or("none (no port with external = true)");
        match &self.external {
            Some(e) => {
                let _ = writeln!(
                    o,
                    "external address {} gateway {} port {port}",
                    e.address, e.gateway
                );
            }
            None => {
                let _ = writeln!(o, "external network not set, port {port}");
            }
        }
    }
}

impl Row for dvr_router::stats::FipView {
    const HEADER: &'static [&'static str] = &[
        "floating ip",
        "fixed ip",
        "router",
        "host",
        "active",
        "in (dnat)",
        "out (snat)",
    ];

    fn row(&self) -> Vec<String> {
        let active = yes(self.active);
        cells(&[
            &self.ip,
            &self.port,
            &self.router,
            &self.host,
            &active,
            &self.dnat_packets,
            &self.snat_packets,
        ])
    }
}

impl Human for StatsView {
    fn human(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "counters over the last {:.1} s (since start or `dvrctl stats reset`)",
            self.since_reset_s
        );
        if let Some(f) = &self.fleet {
            let _ = writeln!(o, "{}", f.summary());
        }
        o.push_str(&self.snapshot.render());
        if let Some(t) = &self.snapshot.tables {
            let _ = writeln!(
                o,
                "tables: next hops {}/{}, l2 {}/{}, prefixes {}, tbl8 groups {}",
                t.next_hops_used,
                t.next_hops_capacity,
                t.l2_used,
                t.l2_capacity,
                t.routes,
                t.tbl8_used
            );
        }
        let r = &self.config_reloads;
        if r.applied + r.refused > 0 {
            let _ = writeln!(
                o,
                "configuration reloads since start: {} applied, {} refused",
                r.applied, r.refused
            );
        }
    }
}

impl Human for BatchApplied {
    fn human(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "{} changes applied ({} changed, {} unchanged)",
            self.changes, self.changed, self.unchanged
        );
    }
}

impl Human for ReloadView {
    fn human(&self, o: &mut String) {
        let _ = writeln!(o, "{}", self.summary);
    }
}

impl Human for VersionInfo {
    fn human(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "dvrctl {}, dvrd {}, API version {}",
            env!("CARGO_PKG_VERSION"),
            self.daemon,
            self.api
        );
    }
}

pub(crate) fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

pub(crate) fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

/// A table with a header, columns as wide as their widest cell.
pub(crate) fn table(o: &mut String, header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |o: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (c, w) in cells.zip(&widths) {
            let _ = write!(s, "{c:<w$}  ");
        }
        let _ = writeln!(o, "{}", s.trim_end());
    };
    line(o, &mut header.iter().copied());
    for r in &rows {
        line(o, &mut r.iter().map(String::as_str));
    }
}

impl Human for HistView {
    fn human(&self, o: &mut String) {
        render_hist(o, self);
    }
}

pub(crate) fn render_hist(o: &mut String, h: &HistView) {
    let _ = writeln!(o, "latency over the last {:.1} s (ns)", h.since_reset_s);
    let header = [
        "", "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean",
    ];
    let mut rows = Vec::new();
    let mut add = |name: String, s: &HistSet| {
        for (kind, l) in [("burst", &s.burst), ("packet rx->tx", &s.residence)] {
            rows.push(vec![
                format!("{name} {kind}"),
                l.count.to_string(),
                l.min_ns.to_string(),
                l.p50_ns.to_string(),
                l.p90_ns.to_string(),
                l.p99_ns.to_string(),
                l.p999_ns.to_string(),
                l.max_ns.to_string(),
                format!("{:.0}", l.mean_ns),
            ]);
        }
    };
    add("all".into(), &h.merged);
    for w in &h.workers {
        add(format!("worker {}", w.worker), &w.hist);
    }
    table(o, &header, rows.into_iter());
    for (name, dist) in [
        ("per burst", &h.merged.burst_distribution),
        ("per packet rx->tx", &h.merged.residence_distribution),
    ] {
        if dist.is_empty() {
            continue;
        }
        let _ = writeln!(o, "\npercentile distribution, {name} (all workers):");
        let total: u64 = dist.iter().map(|q| q.count).sum();
        let mut cumulative = 0;
        let rows = dist.iter().map(|q| {
            cumulative += q.count;
            let inv = if q.quantile < 1.0 {
                format!("{:.2}", 1.0 / (1.0 - q.quantile))
            } else {
                "inf".into()
            };
            vec![
                q.value_ns.to_string(),
                format!("{:.6}", q.quantile),
                cumulative.to_string(),
                inv,
            ]
        });
        table(
            o,
            &[
                "value (ns)",
                "percentile",
                "total count",
                "1/(1-percentile)",
            ],
            rows,
        );
        let _ = writeln!(o, "total {total}");
    }
}

impl Human for TraceView {
    fn human(&self, o: &mut String) {
        render_trace(o, self);
    }
}

pub(crate) fn render_trace(o: &mut String, t: &TraceView) {
    for (i, p) in t.packets.iter().enumerate() {
        let _ = writeln!(
            o,
            "packet {} (port {}, {} bytes, worker {}, t={} ns)",
            i + 1,
            p.port,
            p.len,
            p.worker,
            p.time_ns
        );
        for s in &p.steps {
            let _ = writeln!(o, "  {s}");
        }
        if p.steps_lost > 0 {
            let _ = writeln!(o, "  ({} more steps not recorded)", p.steps_lost);
        }
        let _ = writeln!(o, "  => {}", p.verdict);
    }
    let _ = writeln!(
        o,
        "{} of {} packets captured{}{}",
        t.packets.len(),
        t.requested,
        if t.complete {
            ""
        } else {
            " before the timeout"
        },
        if t.lost > 0 {
            format!(", {} lost", t.lost)
        } else {
            String::new()
        }
    );
}

/// `fleet status`: one line per host, then every record some host could not apply.
fn fleet_status(out: &mut String, op: &str, v: &Value) -> Result<(), Failure> {
    let s: FleetStatusView = parse_as(op, v)?;
    let _ = writeln!(
        out,
        "revision {} (routing records last changed at {})",
        s.revision, s.config_revision
    );
    let _ = writeln!(
        out,
        "{:<24} {:<5} {:>10} {:>6} {:>7} {:>6}  UPDATED",
        "HOST", "STATE", "APPLIED", "LAG", "ROUTERS", "ERRORS"
    );
    for h in &s.hosts {
        let _ = writeln!(
            out,
            "{:<24} {:<5} {:>10} {:>6} {:>7} {:>6}  {}",
            h.name,
            h.state,
            h.applied_revision,
            h.lag,
            h.routers,
            h.errors_total,
            h.updated.as_deref().unwrap_or("-")
        );
    }
    for h in s.hosts.iter().filter(|h| !h.errors.is_empty()) {
        for e in &h.errors {
            let _ = writeln!(out, "{}: {}: {}", h.name, e.key, e.error);
        }
    }
    for e in &s.invalid {
        let _ = writeln!(out, "store: {}: {}", e.key, e.error);
    }
    Ok(())
}
