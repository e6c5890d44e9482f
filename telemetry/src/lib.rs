//! Telemetry for every sluice component, defined in one place.
//!
//! * [`Metrics`] is a small registry of named counters and gauges. Locally it renders the
//!   Prometheus text exposition format (`GET /metrics`); in Lambda it renders CloudWatch Embedded
//!   Metric Format (one JSON log line per invocation) so CloudWatch extracts the same figures.
//! * [`init_logging`] installs the structured JSON `tracing` subscriber used by every binary.
//!
//! Contract: metric handles are cheap `Arc`s updated with relaxed atomics; registering the same
//! (name, labels) twice returns the same handle, so components may look their metrics up lazily.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone)]
enum Handle {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
}

impl Handle {
    fn value(&self) -> f64 {
        match self {
            Handle::Counter(c) => c.get() as f64,
            Handle::Gauge(g) => g.get() as f64,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Handle::Counter(_) => "counter",
            Handle::Gauge(_) => "gauge",
        }
    }
}

/// Label pairs of one series, sorted by name.
type Labels = Vec<(String, String)>;

#[derive(Debug)]
struct Family {
    help: &'static str,
    series: BTreeMap<Labels, Handle>,
}

/// A registry of metric families. Cloning shares the registry.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    families: Arc<Mutex<BTreeMap<&'static str, Family>>>,
}

impl Metrics {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter `name{labels}`, created on first use. `name` must be a valid Prometheus
    /// metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`); counters should end in `_total`.
    pub fn counter(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Arc<Counter> {
        match self.series(name, help, labels, || Handle::Counter(Arc::default())) {
            Handle::Counter(c) => c,
            // A name registered as a gauge and asked for as a counter: hand out a detached
            // counter rather than panic; the mismatch is a programming error caught by tests.
            Handle::Gauge(_) => Arc::default(),
        }
    }

    /// The gauge `name{labels}`, created on first use.
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Arc<Gauge> {
        match self.series(name, help, labels, || Handle::Gauge(Arc::default())) {
            Handle::Gauge(g) => g,
            Handle::Counter(_) => Arc::default(),
        }
    }

    fn series(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        make: impl FnOnce() -> Handle,
    ) -> Handle {
        let mut key: Labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        key.sort();
        let mut families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let family = families.entry(name).or_insert_with(|| Family { help, series: BTreeMap::new() });
        family.series.entry(key).or_insert_with(make).clone()
    }

    /// Renders every series in the Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        for (name, family) in families.iter() {
            let Some(first) = family.series.values().next() else { continue };
            let _ = writeln!(out, "# HELP {name} {}", family.help.replace('\\', "\\\\").replace('\n', "\\n"));
            let _ = writeln!(out, "# TYPE {name} {}", first.kind());
            for (labels, handle) in &family.series {
                out.push_str(name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                        let _ = write!(out, "{k}=\"{v}\"");
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", handle.value());
            }
        }
        out
    }

    /// Renders every series as CloudWatch Embedded Metric Format documents (one per label set),
    /// under `namespace`, stamped with `now_ms` (Unix milliseconds). Print each as one log line.
    pub fn render_emf(&self, namespace: &str, now_ms: i64) -> Vec<serde_json::Value> {
        use serde_json::{Map, Value, json};
        let families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let mut by_labels: BTreeMap<Labels, Vec<(&'static str, f64, &'static str)>> = BTreeMap::new();
        for (name, family) in families.iter() {
            for (labels, handle) in &family.series {
                let unit = if name.ends_with("_seconds") {
                    "Seconds"
                } else if name.ends_with("_bytes") {
                    "Bytes"
                } else {
                    "Count"
                };
                by_labels.entry(labels.clone()).or_default().push((name, handle.value(), unit));
            }
        }
        by_labels
            .into_iter()
            .map(|(labels, values)| {
                let mut doc = Map::new();
                let dims: Vec<Value> = labels.iter().map(|(k, _)| Value::String(k.clone())).collect();
                let metrics: Vec<Value> = values.iter().map(|(n, _, u)| json!({"Name": n, "Unit": u})).collect();
                doc.insert(
                    "_aws".into(),
                    json!({"Timestamp": now_ms, "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [dims], "Metrics": metrics}]}),
                );
                for (k, v) in labels {
                    doc.insert(k, Value::String(v));
                }
                for (n, v, _) in values {
                    doc.insert(n.to_owned(), json!(v));
                }
                Value::Object(doc)
            })
            .collect()
    }
}

/// Emits CloudWatch Embedded Metric Format per Lambda invocation: counters as the increase since
/// the previous flush (CloudWatch sums the values it extracts), gauges as their current value.
/// Series that did not change are left out.
#[derive(Debug)]
pub struct EmfReporter {
    metrics: Metrics,
    namespace: String,
    last: Mutex<BTreeMap<(&'static str, Labels), f64>>,
}

impl EmfReporter {
    /// Reports `metrics` under `namespace`.
    pub fn new(metrics: Metrics, namespace: impl Into<String>) -> Self {
        Self { metrics, namespace: namespace.into(), last: Mutex::new(BTreeMap::new()) }
    }

    /// The EMF documents for everything that changed since the last call, stamped `now_ms`.
    pub fn flush(&self, now_ms: i64) -> Vec<serde_json::Value> {
        let delta = Metrics::new();
        {
            let families = self.metrics.families.lock().unwrap_or_else(PoisonError::into_inner);
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            for (name, family) in families.iter() {
                for (labels, handle) in &family.series {
                    let now = handle.value();
                    let before = last.insert((name, labels.clone()), now).unwrap_or(0.0);
                    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    match handle {
                        Handle::Counter(_) if now > before => {
                            delta.counter(name, family.help, &labels).add((now - before) as u64);
                        }
                        Handle::Gauge(_) if now != before => {
                            delta.gauge(name, family.help, &labels).set(now as i64);
                        }
                        _ => {}
                    }
                }
            }
        }
        delta.render_emf(&self.namespace, now_ms)
    }

    /// Prints [`EmfReporter::flush`] to stdout, one document per line (Lambda ships stdout to
    /// CloudWatch Logs, which extracts the metrics).
    pub fn print(&self, now_ms: i64) {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        for doc in self.flush(now_ms) {
            let _ = writeln!(out, "{doc}");
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (Lambda, production, `sluice up` by default).
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// Installs the global `tracing` subscriber: `RUST_LOG`-style filter (default `info`), UTC
/// timestamps, span fields (request and batch ids) on every line. Calling it twice is harmless.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_series_is_shared_and_labels_are_sorted() {
        let m = Metrics::new();
        m.counter("x_total", "xs", &[("b", "2"), ("a", "1")]).add(2);
        m.counter("x_total", "xs", &[("a", "1"), ("b", "2")]).inc();
        m.gauge("depth", "queue depth", &[]).set(-4);
        let text = m.render_prometheus();
        assert_eq!(
            text,
            "# HELP depth queue depth\n# TYPE depth gauge\ndepth -4\n# HELP x_total xs\n# TYPE x_total counter\nx_total{a=\"1\",b=\"2\"} 3\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.counter("e_total", "h", &[("route", "a\"b\\c\nd")]).inc();
        assert!(m.render_prometheus().contains("e_total{route=\"a\\\"b\\\\c\\nd\"} 1\n"));
    }

    #[test]
    fn kind_mismatch_does_not_panic_or_corrupt() {
        let m = Metrics::new();
        m.counter("k_total", "h", &[]).inc();
        m.gauge("k_total", "h", &[]).set(9);
        assert!(m.render_prometheus().contains("k_total 1\n"));
    }

    #[test]
    fn emf_reporter_sends_counter_increases_and_changed_gauges_only() {
        let m = Metrics::new();
        let records = m.counter("records_total", "r", &[("handler", "agg")]);
        let lag = m.gauge("lag", "l", &[]);
        let reporter = EmfReporter::new(m.clone(), "sluice");
        records.add(5);
        lag.set(3);
        let first = reporter.flush(1);
        assert_eq!(first.len(), 2);
        assert!(first.iter().any(|d| d["records_total"] == 5.0));
        assert!(first.iter().any(|d| d["lag"] == 3.0));
        assert!(reporter.flush(2).is_empty(), "nothing changed");
        records.add(2);
        let third = reporter.flush(3);
        assert_eq!(third.len(), 1);
        assert_eq!(third[0]["records_total"], 2.0, "the increase, not the total");
        assert_eq!(third[0]["_aws"]["Timestamp"], 3);
    }

    #[test]
    fn emf_groups_by_label_set() {
        let m = Metrics::new();
        m.counter("records_total", "r", &[("handler", "agg")]).add(5);
        m.counter("failures_total", "f", &[("handler", "agg")]).add(1);
        let docs = m.render_emf("sluice", 1_700_000_000_000);
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(d["records_total"], 5.0);
        assert_eq!(d["handler"], "agg");
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Namespace"], "sluice");
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0], "handler");
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len(), 2);
    }
}
