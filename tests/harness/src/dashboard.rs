//! The Grafana dashboard's contract with `/metrics` (`packaging/grafana-dvrd.json`): every
//! metric a panel or variable queries must be one that dvrd exports, and every label it groups
//! or filters by must be one that metric carries. A renamed metric would otherwise leave an
//! empty panel that nobody notices until an incident.
//!
//! The check reads the queries' PromQL as text: a metric is a `dvrd_` identifier, its labels
//! are the `{...}` matchers right after it and the `by (...)` clauses of the query. That is
//! enough for the dashboard's own queries, which stay plain on purpose.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Labels that Prometheus adds at scrape time, or that summaries carry.
const SCRAPE_LABELS: &[&str] = &["instance", "job", "quantile"];

/// The dashboard as the repository ships it.
pub fn shipped() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/grafana-dvrd.json"
    );
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One query: the metrics it reads and the labels it names.
#[derive(Debug)]
pub struct Query {
    pub title: String,
    pub expr: String,
    pub metrics: Vec<String>,
    pub labels: Vec<String>,
}

/// Every query of the dashboard: panel targets (rows included) and query variables.
pub fn queries(dashboard: &str) -> Vec<Query> {
    let d: Value = serde_json::from_str(dashboard).expect("the dashboard is JSON");
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = d["panels"].as_array().expect("panels").iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("a target has an expr");
            out.push(query(p["title"].as_str().unwrap_or("?"), expr));
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["query"]["query"].as_str().or(v["query"].as_str()) {
            out.push(query(&format!("variable {}", v["name"]), q));
        }
    }
    out
}

fn query(title: &str, expr: &str) -> Query {
    let mut metrics = Vec::new();
    let mut labels = Vec::new();
    let bytes = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        let word = &expr[start..i];
        let rest = expr[i..].trim_start();
        if word.starts_with("dvrd_") {
            metrics.push(word.to_string());
            if let Some(inner) = rest.strip_prefix('{') {
                let matchers = &inner[..inner.find('}').expect("closed matcher")];
                for m in matchers.split(',') {
                    let name = m.split(['=', '!', '~']).next().unwrap_or("").trim();
                    labels.push(name.to_string());
                }
            }
        } else if matches!(word, "by" | "without") && rest.starts_with('(') {
            let list = &rest[1..rest.find(')').expect("closed by")];
            labels.extend(list.split(',').map(|l| l.trim().to_string()));
        }
    }
    labels.retain(|l| !l.is_empty());
    Query {
        title: title.to_string(),
        expr: expr.to_string(),
        metrics,
        labels,
    }
}

/// The families an exposition declares and the labels each one's samples carry; a summary's
/// `_sum` and `_count` count as families of their own.
pub fn exported(exposition: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let mut words = decl.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            out.entry(name.to_string()).or_default();
            if kind == "summary" || kind == "histogram" {
                for suffix in ["_sum", "_count"] {
                    out.entry(format!("{name}{suffix}")).or_default();
                }
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..name_end].to_string()).or_default();
        if let Some(inner) = line[name_end..].strip_prefix('{') {
            let inner = &inner[..inner.rfind('}').unwrap_or(inner.len())];
            for pair in inner.split("\",") {
                if let Some((k, _)) = pair.split_once('=') {
                    labels.insert(k.trim().to_string());
                }
            }
        }
    }
    out
}

/// What the dashboard queries that the exposition does not have: metrics it does not declare
/// (unless `optional` says they may be absent, as the fleet's are on a host without a fleet)
/// and, when `with_labels`, labels none of the query's metrics carry.
pub fn missing(
    dashboard: &str,
    exposition: &str,
    optional: impl Fn(&str) -> bool,
    with_labels: bool,
) -> Vec<String> {
    let have = exported(exposition);
    let mut problems = Vec::new();
    for q in queries(dashboard) {
        let mut carried = BTreeSet::new();
        for m in &q.metrics {
            match have.get(m) {
                Some(labels) => carried.extend(labels.iter().cloned()),
                None if optional(m) => {}
                None => problems.push(format!("{}: {m} is not exported ({})", q.title, q.expr)),
            }
        }
        if !with_labels {
            continue;
        }
        for l in &q.labels {
            if !carried.contains(l) && !SCRAPE_LABELS.contains(&l.as_str()) {
                problems.push(format!(
                    "{}: no metric carries label {l} ({})",
                    q.title, q.expr
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metrics_and_labels_of_a_query() {
        let q = query(
            "t",
            r#"sum by (instance, port) (rate(dvrd_port_rx_packets_total{instance=~"$instance", port!="x"}[5m]))"#,
        );
        assert_eq!(q.metrics, ["dvrd_port_rx_packets_total"]);
        assert_eq!(q.labels, ["instance", "port", "instance", "port"]);
    }

    #[test]
    fn finds_an_unexported_metric_and_an_unknown_label() {
        let dashboard = r#"{"panels": [{"title": "p", "targets": [
            {"expr": "sum by (colour) (rate(dvrd_a_total[1m]))"},
            {"expr": "dvrd_gone"}]}]}"#;
        let exposition = "# TYPE dvrd_a_total counter\ndvrd_a_total{port=\"x\"} 1\n";
        let problems = missing(dashboard, exposition, |_| false, true);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("label colour"), "{problems:?}");
        assert!(
            problems[1].contains("dvrd_gone is not exported"),
            "{problems:?}"
        );
        assert!(missing(dashboard, exposition, |m| m == "dvrd_gone", false).is_empty());
    }

    #[test]
    fn the_shipped_dashboard_parses() {
        let qs = queries(&shipped());
        assert!(qs.len() > 20, "{}", qs.len());
        assert!(qs.iter().all(|q| !q.metrics.is_empty()), "{qs:?}");
    }
}
