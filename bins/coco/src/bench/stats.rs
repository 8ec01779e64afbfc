//! What a run measured: latency histograms (HDR, microseconds) overall and per second of the
//! run, and outcomes by status. Each worker records into its own [`Recorder`]; they are merged
//! at the end.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

/// Microseconds, 1 µs to 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

#[derive(Clone)]
pub struct Recorder {
    pub latency: Histogram<u64>,
    /// Latency of the requests completed in each second of the run.
    pub per_second: Vec<Histogram<u64>>,
    pub ok: u64,
    /// Failed requests by HTTP status, or `"connection"`.
    pub errors: BTreeMap<String, u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            latency: histogram(),
            per_second: Vec::new(),
            ok: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl Recorder {
    /// A successful request of `micros` that completed `at_s` seconds into the run.
    pub fn ok(&mut self, micros: u64, at_s: u64) {
        self.ok += 1;
        let v = micros.clamp(1, self.latency.high());
        self.latency.record(v).expect("clamped into range");
        let k = at_s as usize;
        while self.per_second.len() <= k {
            self.per_second.push(histogram());
        }
        self.per_second[k].record(v).expect("clamped into range");
    }

    pub fn error(&mut self, what: impl Into<String>) {
        *self.errors.entry(what.into()).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.ok += other.ok;
        self.latency.add(&other.latency).expect("same bounds");
        while self.per_second.len() < other.per_second.len() {
            self.per_second.push(histogram());
        }
        for (mine, theirs) in self.per_second.iter_mut().zip(&other.per_second) {
            mine.add(theirs).expect("same bounds");
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Percentiles of a histogram in microseconds, as the JSON report gives them.
pub fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    if h.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::json!({
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "p99_9": h.value_at_quantile(0.999),
        "max": h.max(),
        "mean": h.mean().round() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorders_merge_counts_histograms_and_seconds() {
        let mut a = Recorder::default();
        a.ok(100, 0);
        a.ok(300, 2);
        a.error("503");
        let mut b = Recorder::default();
        b.ok(200, 1);
        b.error("503");
        b.error("connection");
        a.merge(&b);
        assert_eq!(a.ok, 3);
        assert_eq!(a.latency.len(), 3);
        assert_eq!(a.per_second.len(), 3);
        assert_eq!(a.per_second[1].len(), 1);
        assert_eq!(a.errors["503"], 2);
        assert_eq!(a.error_count(), 3);
        let p = percentiles(&a.latency);
        assert_eq!(p["p50"], 200);
        assert!(percentiles(&histogram()).is_null());
    }
}
