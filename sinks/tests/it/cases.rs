//! Data-driven handler cases: `tests/data/cases/<case>/batch.json` (a Kinesis event as Lambda
//! delivers it) through the lake writer's Lambda entry, delivered twice (a redelivery must
//! change nothing), against `expected.json`: the batch item failures, the dead letters
//! (sequence number and reason) and every file of the lake with its rows, each column as text.
//! `UPDATE_EXPECT=1` rewrites the expectations (review the diff!).

use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Value, json};
use sluice_dlq::MemoryDeadLetters;
use sluice_lake::Lake;
use sluice_sinks::LakeWriter;

use crate::support;

/// One column's values as text: timestamps as RFC 3339 UTC (arrow's own formatter needs
/// chrono-tz for the `UTC` zone name), everything else as arrow displays it.
fn column_text(column: &dyn Array) -> Vec<String> {
    if let DataType::Timestamp(TimeUnit::Microsecond, _) = column.data_type() {
        let micros = column.as_primitive::<TimestampMicrosecondType>();
        return (0..column.len())
            .map(|i| match column.is_null(i) {
                true => "null".to_owned(),
                false => chrono::DateTime::from_timestamp_micros(micros.value(i)).unwrap().to_rfc3339(),
            })
            .collect();
    }
    let options = FormatOptions::default().with_null("null");
    let formatter = ArrayFormatter::try_new(column, &options).unwrap();
    (0..column.len()).map(|i| formatter.value(i).to_string()).collect()
}

async fn lake_contents(lake: &Lake) -> Value {
    let (_, files) = support::read_lake(lake).await;
    let mut out = Map::new();
    for (path, batches) in files {
        let mut rows = Vec::new();
        for batch in &batches {
            let columns: Vec<(String, Vec<String>)> = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(f, c)| (f.name().clone(), column_text(c.as_ref())))
                .collect();
            for row in 0..batch.num_rows() {
                let cells: Map<String, Value> =
                    columns.iter().map(|(name, values)| (name.clone(), Value::from(values[row].clone()))).collect();
                rows.push(Value::Object(cells));
            }
        }
        out.insert(path, Value::Array(rows));
    }
    Value::Object(out)
}

async fn run(batch: &[u8]) -> Value {
    let dlq = MemoryDeadLetters::new();
    let writer =
        LakeWriter::new(support::registry(), Lake::open("memory://", &Default::default()).unwrap(), dlq.clone());
    let first = writer.process_payload(batch, support::now()).unwrap().await.0;
    let letters_once = dlq.letters();
    let lake_once = lake_contents(writer.lake()).await;
    let again = writer.process_payload(batch, support::now()).unwrap().await.0;
    assert_eq!(again.batch_item_failures, first.batch_item_failures, "a redelivery reports the same failures");
    assert_eq!(dlq.letters(), letters_once, "a redelivery dead-letters nothing new");
    assert_eq!(
        lake_contents(writer.lake()).await,
        lake_once,
        "a redelivery overwrites the same files with the same rows"
    );
    json!({
        "batch_item_failures": first.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect::<Vec<_>>(),
        "dead_letters": letters_once.iter().map(|l| json!({
            "sequence_number": l.sequence_number, "kind": l.kind.as_str(), "reason": l.reason,
        })).collect::<Vec<_>>(),
        "files": lake_once,
    })
}

#[tokio::test]
async fn handler_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cases");
    sluice_testkit::check_cases(&dir, "batch.json", 4, |batch| async move { run(&batch).await }).await;
}
