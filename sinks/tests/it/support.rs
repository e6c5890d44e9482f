//! Shared test helpers: registry, generated batches, reading a whole lake back.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use aws_lambda_events::event::kinesis::KinesisEvent;
use chrono::{DateTime, Utc};
use sluice_lake::Lake;
use sluice_schemas::{Event, Registry};
use sluice_stream::kinesis_input::KinesisInput;
use sluice_testkit::generate::{GenConfig, Generator, kinesis_event, record_bytes};

pub const SHARD: &str = "shardId-000000000000";

pub fn registry() -> Arc<Registry> {
    Arc::new(Registry::builtin().unwrap())
}

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z").unwrap().with_timezone(&Utc)
}

/// `n` generated events spread over ~2 hours of event time (so several hour partitions).
pub fn events(seed: u64, n: usize) -> Vec<Event> {
    let mut generator =
        Generator::new(GenConfig { seed, events_per_second: n as f64 / 7200.0, ..GenConfig::default() });
    generator.take(n)
}

/// A Kinesis batch of `events` from [`SHARD`], sequence counters from `first_seq`, as the
/// lake writer's Lambda receives it.
pub fn batch(events: &[Event], first_seq: u64) -> KinesisInput {
    KinesisInput::from(event_batch(events, first_seq))
}

/// [`batch`] as an `aws_lambda_events` `KinesisEvent` (what the local ESM delivers).
pub fn event_batch(events: &[Event], first_seq: u64) -> KinesisEvent {
    kinesis_event(SHARD, first_seq, events.iter().map(record_bytes).collect(), now())
}

/// Every row of the lake: event_id -> how many times it occurs, plus all batches by path.
pub async fn read_lake(lake: &Lake) -> (BTreeMap<String, usize>, Vec<(String, Vec<RecordBatch>)>) {
    let mut ids = BTreeMap::new();
    let mut files = Vec::new();
    for file in lake.list_files(None).await.unwrap() {
        let relative = file.path.partition.file_path(&file.path.file_name);
        let batches = lake.read_parquet(&relative).await.unwrap();
        for batch in &batches {
            let column = batch.column_by_name("event_id").unwrap().as_string::<i32>();
            for i in 0..column.len() {
                *ids.entry(column.value(i).to_owned()).or_insert(0) += 1;
            }
        }
        files.push((relative, batches));
    }
    (ids, files)
}

/// The shipped schemas with page_view cut back to v1 (the registry before v2 was added).
pub fn v1_registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    for t in ["page_view", "purchase", "api_call"] {
        std::fs::create_dir_all(dir.path().join(t)).unwrap();
        std::fs::copy(shipped.join(t).join("v1.json"), dir.path().join(t).join("v1.json")).unwrap();
    }
    Registry::from_dir(dir.path()).unwrap()
}
