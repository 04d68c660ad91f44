//! Latency histograms and small summaries of the figures.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Microsecond latencies from 1 µs to 10 minutes, 3 significant digits.
#[derive(Debug)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        Latency(
            Histogram::new_with_bounds(1, 600_000_000, 3)
                .unwrap_or_else(|e| unreachable!("valid bounds: {e}")),
        )
    }

    /// Records `us` (a negative one, from clock skew, as 1 µs).
    pub fn record(&mut self, us: i64) {
        let v = u64::try_from(us.max(1)).unwrap_or(1).min(600_000_000);
        let _ = self.0.record(v);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    fn ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// `{count, p50_ms, p99_ms, max_ms, mean_ms}`.
    pub fn json(&self) -> Value {
        if self.0.is_empty() {
            return json!({ "count": 0 });
        }
        json!({
            "count": self.0.len(),
            "p50_ms": self.ms(0.5),
            "p99_ms": self.ms(0.99),
            "max_ms": self.0.max() as f64 / 1000.0,
            "mean_ms": self.0.mean() / 1000.0,
        })
    }

    /// `p50 12.3 ms, p99 45.6 ms, max 78.9 ms (n 1000)`.
    pub fn line(&self) -> String {
        if self.0.is_empty() {
            return "no samples".into();
        }
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n {})",
            self.ms(0.5),
            self.ms(0.99),
            self.0.max() as f64 / 1000.0,
            self.0.len()
        )
    }
}

/// `{min, median, max}` of some counts.
pub fn spread(values: &[u64]) -> Value {
    if values.is_empty() {
        return json!({ "hosts": 0 });
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    json!({ "hosts": v.len(), "min": v[0], "median": v[v.len() / 2], "max": v[v.len() - 1] })
}

/// `min/median/max` as text.
pub fn spread_line(values: &[u64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    format!("{}/{}/{}", v[0], v[v.len() / 2], v[v.len() - 1])
}

/// `{hosts, min, median, max}` in milliseconds of microsecond values.
pub fn spread_ms(values_us: &[u64]) -> Value {
    if values_us.is_empty() {
        return json!({ "hosts": 0 });
    }
    let mut v = values_us.to_vec();
    v.sort_unstable();
    let ms = |x: u64| x as f64 / 1000.0;
    json!({
        "hosts": v.len(),
        "min": ms(v[0]),
        "median": ms(v[v.len() / 2]),
        "max": ms(v[v.len() - 1]),
    })
}
