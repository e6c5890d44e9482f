//! Shared test helpers: registry, generated batches, reading a whole lake back.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use aws_lambda_events::event::kinesis::KinesisEvent;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use sluice_lake::Lake;
use sluice_schemas::{Event, Registry};
use sluice_stream::kinesis_input::KinesisInput;
use sluice_testkit::generate::{GenConfig, Generator, kinesis_event, record_bytes};

use crate::orders;

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

/// `n` valid `order_placed` v1 events ([`orders::order_events`]) over the ~2 hours of event
/// time before [`now`], received at [`now`].
pub fn order_events(seed: u64, n: usize) -> Vec<Event> {
    orders::order_events(seed, n, now(), TimeDelta::hours(2))
}

/// The value of `array` at `row` as JSON, the way an `Event`'s `data` holds it: structs as
/// objects (every child, `null` when null), lists as arrays, timestamps as the canonical UTC
/// text (`2024-05-01T12:00:00.500Z`), nulls as `null`.
pub fn json_at(array: &dyn Array, row: usize) -> Value {
    use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => json!(array.as_string::<i32>().value(row)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => json!(array.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => json!(array.as_boolean().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            let at = DateTime::from_timestamp_micros(micros).unwrap();
            json!(at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            Value::Object(
                fields.iter().zip(s.columns()).map(|(f, c)| (f.name().clone(), json_at(c.as_ref(), row))).collect(),
            )
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let values = list.value(row);
            Value::Array((0..values.len()).map(|i| json_at(values.as_ref(), i)).collect())
        }
        other => panic!("no JSON form for {other}"),
    }
}

/// Whether `stored` (a lake value, [`json_at`]) is what was `sent` (an event's value, `None`:
/// absent): absent and `null` are null; objects agree on every stored child and the lake
/// dropped no sent field; numbers are equal as f64 (`3` and `3.0`); strings are equal, or are
/// the same instant (a date-time as written and as the lake holds it).
pub fn same_json(stored: &Value, sent: Option<&Value>) -> bool {
    match (stored, sent) {
        (Value::Null, None | Some(Value::Null)) => true,
        (Value::Object(s), Some(Value::Object(e))) => {
            s.iter().all(|(k, v)| same_json(v, e.get(k))) && e.keys().all(|k| s.contains_key(k))
        }
        (Value::Array(s), Some(Value::Array(e))) => {
            s.len() == e.len() && s.iter().zip(e).all(|(s, e)| same_json(s, Some(e)))
        }
        (Value::Number(s), Some(Value::Number(e))) => s.as_f64() == e.as_f64(),
        (Value::String(s), Some(Value::String(e))) => {
            let instant = |t: &str| sluice_schemas::envelope::parse_occurred_at(t);
            s == e || instant(s).is_some_and(|a| instant(e) == Some(a))
        }
        (s, Some(e)) => s == e,
        _ => false,
    }
}

/// Every row of `batch` agrees with the event of its `event_id` (`by_id`): envelope times and
/// every data column ([`same_json`]), and the event has no field the table lacks.
pub fn check_batch_against_events(batch: &RecordBatch, by_id: &BTreeMap<&str, &Event>) {
    use arrow::datatypes::TimestampMicrosecondType;
    let ids = batch.column_by_name("event_id").unwrap().as_string::<i32>();
    let occurred = batch.column_by_name("occurred_at").unwrap().as_primitive::<TimestampMicrosecondType>();
    let received = batch.column_by_name("received_at").unwrap().as_primitive::<TimestampMicrosecondType>();
    let schema = batch.schema();
    let data_columns: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| !sluice_schemas::ENVELOPE_COLUMNS.contains(&schema.field(i).name().as_str()))
        .collect();
    for row in 0..batch.num_rows() {
        let event = by_id[ids.value(row)];
        assert_eq!(occurred.value(row), event.occurred_at.timestamp_micros());
        assert_eq!(received.value(row), event.received_at.timestamp_micros());
        for &i in &data_columns {
            let name = schema.field(i).name();
            let stored = json_at(batch.column(i).as_ref(), row);
            assert!(
                same_json(&stored, event.data.get(name)),
                "{}: {name}: sent {:?}, stored {stored}",
                event.event_id,
                event.data.get(name)
            );
        }
        for name in event.data.keys() {
            assert!(schema.field_with_name(name).is_ok(), "{name} has no column");
        }
    }
}
