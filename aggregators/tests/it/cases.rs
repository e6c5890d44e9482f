//! Data-driven handler cases: `tests/data/cases/<case>/batch.json` (a Kinesis event as Lambda
//! delivers it) through the aggregator's Lambda entry, delivered twice (a redelivery must change
//! nothing), against `expected.json`: the batch item failures, the dead letters (sequence
//! number and reason) and every non-empty aggregate bucket of 2026-01-01 per event type and
//! window. `UPDATE_EXPECT=1` rewrites the expectations (review the diff!).

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use sluice_aggregators::query::{AggregateQuery, read_aggregates};
use sluice_aggregators::{AggregatorHandler, WindowConfig};
use sluice_dlq::MemoryDeadLetters;
use sluice_schemas::Registry;

use crate::support::sqlite;

async fn run(batch: &[u8]) -> Value {
    let registry = Arc::new(Registry::builtin().unwrap());
    let dlq = MemoryDeadLetters::new();
    let handler = AggregatorHandler::new(Arc::clone(&registry), sqlite(), dlq.clone(), WindowConfig::default());
    let first = handler.process_payload(batch).await.unwrap();
    let letters_once = dlq.letters();
    let again = handler.process_payload(batch).await.unwrap();
    assert_eq!(again.batch_item_failures, first.batch_item_failures, "a redelivery reports the same failures");
    assert_eq!(dlq.letters(), letters_once, "a redelivery dead-letters nothing new");

    let mut aggregates = serde_json::Map::new();
    for t in registry.event_types() {
        for window in ["1m", "1h"] {
            let params = [
                ("event_type", t.name.as_str()),
                ("window", window),
                ("from", "2026-01-01T00:00:00Z"),
                ("to", "2026-01-02T00:00:00Z"),
            ];
            let query = AggregateQuery::from_params(&registry, params).unwrap();
            let answer = read_aggregates(handler.store(), &registry, &query).await.unwrap();
            if !answer.buckets.is_empty() {
                aggregates.insert(format!("{}/{window}", t.name), serde_json::to_value(&answer.buckets).unwrap());
            }
        }
    }
    json!({
        "batch_item_failures": first.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect::<Vec<_>>(),
        "dead_letters": letters_once.iter().map(|l| json!({
            "sequence_number": l.sequence_number, "kind": l.kind.as_str(), "reason": l.reason,
        })).collect::<Vec<_>>(),
        "aggregates": aggregates,
    })
}

#[tokio::test]
async fn handler_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cases");
    sluice_testkit::check_cases(&dir, "batch.json", 4, |batch| async move { run(&batch).await }).await;
}
