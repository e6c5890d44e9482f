//! CloudWatch Embedded Metric Format: the Lambdas' rendering of a [`Metrics`] registry.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value as Json, json};

use crate::catalog::Metric;
use crate::{Handle, Metrics, Value};

/// Label `(name, value)` pairs of one series, sorted by name: one EMF document per distinct set.
type LabelSet = Vec<(&'static str, String)>;

impl Metrics {
    /// Renders every series as CloudWatch Embedded Metric Format documents (one per label set,
    /// the label names as the dimension set), under `namespace`, stamped with `now_ms` (Unix
    /// milliseconds). Names and units come from the catalog. Print each as one log line.
    pub fn render_emf(&self, namespace: &str, now_ms: i64) -> Vec<Json> {
        let families = self.lock();
        let mut by_labels: BTreeMap<LabelSet, Vec<(&'static Metric, Value)>> = BTreeMap::new();
        for family in families.values() {
            for (values, handle) in &family.series {
                let mut labels: LabelSet = family.labels(values).map(|(k, v)| (k, v.to_owned())).collect();
                labels.sort();
                by_labels.entry(labels).or_default().push((family.metric, handle.value()));
            }
        }
        by_labels
            .into_iter()
            .map(|(labels, values)| {
                let mut doc = Map::new();
                let dims: Vec<&str> = labels.iter().map(|(k, _)| *k).collect();
                let metrics: Vec<Json> =
                    values.iter().map(|(m, _)| json!({"Name": m.name, "Unit": m.unit.as_str()})).collect();
                doc.insert(
                    "_aws".into(),
                    json!({"Timestamp": now_ms, "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [dims], "Metrics": metrics}]}),
                );
                for (k, v) in labels {
                    doc.insert(k.to_owned(), Json::String(v));
                }
                for (m, v) in values {
                    doc.insert(m.name.to_owned(), json!(v.as_f64()));
                }
                Json::Object(doc)
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
    last: Mutex<BTreeMap<(&'static str, Vec<String>), Value>>,
}

impl EmfReporter {
    /// Reports `metrics` under `namespace`.
    pub fn new(metrics: Metrics, namespace: impl Into<String>) -> Self {
        Self { metrics, namespace: namespace.into(), last: Mutex::new(BTreeMap::new()) }
    }

    /// The EMF documents for everything that changed since the last call, stamped `now_ms`.
    pub fn flush(&self, now_ms: i64) -> Vec<Json> {
        let delta = Metrics::new();
        {
            let families = self.metrics.lock();
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            for family in families.values() {
                for (values, handle) in &family.series {
                    let now = handle.value();
                    let before = last.insert((family.metric.name, values.clone()), now);
                    let values: Vec<&str> = values.iter().map(String::as_str).collect();
                    match now {
                        Value::Count(n) => {
                            let b = match before {
                                Some(Value::Count(b)) => b,
                                _ => 0,
                            };
                            if n > b
                                && let Handle::Counter(c) = delta.series(family.metric, &values)
                            {
                                c.add(n - b);
                            }
                        }
                        Value::Level(n) if before.unwrap_or(Value::Level(0)) != now => {
                            if let Handle::Gauge(g) = delta.series(family.metric, &values) {
                                g.set(n);
                            }
                        }
                        Value::Level(_) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{self, ALL};

    #[test]
    fn emf_reporter_sends_counter_increases_and_changed_gauges_only() {
        let m = Metrics::new();
        let records = m.counter(&catalog::AGGREGATOR_RECORDS, ["aggregated"]);
        let lag = m.gauge(&catalog::ESM_ITERATOR_AGE_MS, ["aggregator"]);
        let reporter = EmfReporter::new(m.clone(), "sluice");
        records.add(5);
        lag.set(3);
        let first = reporter.flush(1);
        assert_eq!(first.len(), 2);
        assert!(first.iter().any(|d| d["sluice_aggregator_records_total"] == 5.0));
        assert!(first.iter().any(|d| d["sluice_esm_iterator_age_ms"] == 3.0));
        assert!(reporter.flush(2).is_empty(), "nothing changed");
        records.add(2);
        let third = reporter.flush(3);
        assert_eq!(third.len(), 1);
        assert_eq!(third[0]["sluice_aggregator_records_total"], 2.0, "the increase, not the total");
        assert_eq!(third[0]["_aws"]["Timestamp"], 3);
    }

    #[test]
    fn emf_groups_by_label_set() {
        let m = Metrics::new();
        m.counter(&catalog::AGGREGATOR_RECORDS, ["aggregated"]).add(5);
        m.counter(&catalog::AGGREGATOR_PARTIALS, ["aggregated"]).add(1);
        let docs = m.render_emf("sluice", 1_700_000_000_000);
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(d["sluice_aggregator_records_total"], 5.0);
        assert_eq!(d["outcome"], "aggregated");
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Namespace"], "sluice");
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0], "outcome");
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn every_entry_renders_as_emf_with_its_unit_and_dimensions() {
        let m = Metrics::new();
        for metric in ALL {
            let values: Vec<&str> = metric.labels.iter().map(|_| "v").collect();
            m.series(metric, &values);
        }
        let docs = m.render_emf("sluice", 1);
        for metric in ALL {
            let doc = docs.iter().find(|d| d.get(metric.name).is_some()).unwrap();
            let cw = &doc["_aws"]["CloudWatchMetrics"][0];
            let entry = cw["Metrics"].as_array().unwrap().iter().find(|e| e["Name"] == metric.name).unwrap();
            assert_eq!(entry["Unit"], metric.unit.as_str());
            let mut dims: Vec<&str> = metric.labels.to_vec();
            dims.sort_unstable();
            assert_eq!(cw["Dimensions"][0], json!(dims), "{}", metric.name);
            assert_eq!(doc[metric.name], 0.0);
        }
    }
}
