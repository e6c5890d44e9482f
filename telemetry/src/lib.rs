//! Telemetry for every sluice component: one metrics catalog, its renderers, and the log format.
//!
//! * [`catalog`] defines every metric once (name, kind, unit, help, label names).
//! * [`Metrics`] is the registry of live series, looked up by catalog entry. Locally it renders
//!   the Prometheus text exposition format ([`Metrics::render_prometheus`], `GET /metrics`); in
//!   Lambda, CloudWatch Embedded Metric Format ([`EmfReporter`], one JSON log line per label set
//!   per invocation), so CloudWatch extracts the same figures under the same names.
//! * [`init_logging`] installs the structured JSON `tracing` subscriber used by every binary.
//!
//! Contract: metric handles are cheap `Arc`s updated with relaxed atomics; asking for the same
//! (entry, label values) twice returns the same handle, so components may look their metrics up
//! lazily. A counter entry only yields a [`Counter`] and a gauge entry only a [`Gauge`], each with
//! exactly as many label values as the entry has labels:
//!
//! ```
//! use sluice_telemetry::{Metrics, catalog};
//! let m = Metrics::new();
//! m.counter(&catalog::INGEST_EVENTS, ["accepted"]).inc();
//! m.gauge(&catalog::ESM_ITERATOR_AGE_MS, ["aggregator"]).set(12);
//! assert!(m.render_prometheus().contains("sluice_ingest_events_total{outcome=\"accepted\"} 1\n"));
//! ```
//! ```compile_fail
//! let m = sluice_telemetry::Metrics::new();
//! m.counter(&sluice_telemetry::catalog::ESM_ITERATOR_AGE_MS, ["aggregator"]); // a gauge entry
//! ```
//! ```compile_fail
//! let m = sluice_telemetry::Metrics::new();
//! m.counter(&sluice_telemetry::catalog::INGEST_EVENTS, []); // missing the `outcome` label
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod catalog;
mod emf;
mod logging;
pub mod prometheus;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use catalog::{CounterDef, GaugeDef, Kind, Metric};

pub use emf::EmfReporter;
pub use logging::{LogFormat, init_logging};

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
    /// Raises the count to `total` if that is higher, never lowers it: for mirroring a monotonic
    /// total kept elsewhere (the event source mapping's status).
    pub fn raise_to(&self, total: u64) {
        self.0.fetch_max(total, Ordering::Relaxed);
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

/// A series' current value, exact (no float rounding of large counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Count(u64),
    Level(i64),
}

impl Handle {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Counter => Handle::Counter(Arc::default()),
            Kind::Gauge => Handle::Gauge(Arc::default()),
        }
    }
    fn value(&self) -> Value {
        match self {
            Handle::Counter(c) => Value::Count(c.get()),
            Handle::Gauge(g) => Value::Level(g.get()),
        }
    }
}

impl Value {
    fn as_f64(self) -> f64 {
        match self {
            Value::Count(v) => v as f64,
            Value::Level(v) => v as f64,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Count(v) => v.fmt(f),
            Value::Level(v) => v.fmt(f),
        }
    }
}

/// The live series of one catalog entry, keyed by label values (in the entry's label order).
#[derive(Debug)]
struct Family {
    metric: &'static Metric,
    series: BTreeMap<Vec<String>, Handle>,
}

impl Family {
    /// `(label name, value)` pairs of one series.
    fn labels<'a>(&self, values: &'a [String]) -> impl Iterator<Item = (&'static str, &'a str)> + use<'a> {
        self.metric.labels.iter().copied().zip(values.iter().map(String::as_str))
    }
}

/// A registry of live series of [`catalog`] entries. Cloning shares the registry.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    families: Arc<Mutex<BTreeMap<&'static str, Family>>>,
}

impl Metrics {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The series of counter entry `def` with label values `values` (in the entry's label
    /// order), created at zero on first use.
    pub fn counter<const N: usize>(&self, def: &'static CounterDef<N>, values: [&str; N]) -> Arc<Counter> {
        match self.series(def.metric(), &values) {
            Handle::Counter(c) => c,
            // Unreachable: names are unique in the catalog (tested) and the entry is a counter.
            Handle::Gauge(_) => Arc::default(),
        }
    }

    /// The series of gauge entry `def` with label values `values` (in the entry's label order),
    /// created at zero on first use.
    pub fn gauge<const N: usize>(&self, def: &'static GaugeDef<N>, values: [&str; N]) -> Arc<Gauge> {
        match self.series(def.metric(), &values) {
            Handle::Gauge(g) => g,
            Handle::Counter(_) => Arc::default(),
        }
    }

    fn series(&self, metric: &'static Metric, values: &[&str]) -> Handle {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let mut families = self.lock();
        let family = families.entry(metric.name).or_insert_with(|| Family { metric, series: BTreeMap::new() });
        family.series.entry(key).or_insert_with(|| Handle::new(metric.kind)).clone()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, Family>> {
        self.families.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::catalog::{self, CounterDef, GaugeDef, Unit};
    use super::*;

    static X: CounterDef<2> = CounterDef::new("x_total", Unit::Count, &["a", "b"], "xs");
    static DEPTH: GaugeDef<0> = GaugeDef::new("depth", Unit::Count, &[], "queue depth");

    #[test]
    fn same_series_is_shared_and_labels_follow_the_entry() {
        let m = Metrics::new();
        m.counter(&X, ["1", "2"]).add(2);
        m.counter(&X, ["1", "2"]).inc();
        m.gauge(&DEPTH, []).set(-4);
        let text = m.render_prometheus();
        assert_eq!(
            text,
            "# HELP depth queue depth\n# TYPE depth gauge\ndepth -4\n# HELP x_total xs\n# TYPE x_total counter\nx_total{a=\"1\",b=\"2\"} 3\n"
        );
    }

    #[test]
    fn raise_to_mirrors_a_total_and_never_lowers() {
        let m = Metrics::new();
        let c = m.counter(&catalog::ESM_BATCHES, ["aggregator"]);
        c.raise_to(5);
        c.raise_to(3);
        assert_eq!(c.get(), 5);
        c.raise_to(8);
        assert_eq!(m.counter(&catalog::ESM_BATCHES, ["aggregator"]).get(), 8);
    }
}
