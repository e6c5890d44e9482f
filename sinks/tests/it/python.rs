//! The lake as other engines see it: pyarrow.dataset and DuckDB (via loadtest/peers/lake_check.py,
//! run with `$SLUICE_PYTHON`, the test venv's python).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use serde_json::Value;
use sluice_dlq::MemoryDeadLetters;
use sluice_lake::Lake;
use sluice_sinks::LakeWriter;
use sluice_sinks::encode::ColumnLayout;
use sluice_stream::kinesis_input::KinesisBatch;

use crate::support;

fn pyarrow_type(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Utf8 => "string",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::Float64 => "double",
        DataType::Boolean => "bool",
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => "timestamp[us, tz=UTC]",
        other => panic!("no expectation for {other}"),
    }
}

fn duckdb_type(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Utf8 => "VARCHAR",
        DataType::Int32 => "INTEGER",
        DataType::Int64 => "BIGINT",
        DataType::Float64 => "DOUBLE",
        DataType::Boolean => "BOOLEAN",
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "TIMESTAMP WITH TIME ZONE",
        other => panic!("no expectation for {other}"),
    }
}

#[tokio::test]
async fn pyarrow_and_duckdb_read_the_lake_as_written() {
    let Some(python) = sluice_testkit::python("pyarrow_and_duckdb_read_the_lake_as_written") else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path()).unwrap();
    let lake = Lake::open(url.as_str(), &Default::default()).unwrap();
    let registry = support::registry();

    // Several deliveries from two shards, plus page_view files from before v2 existed.
    let events = support::events(31, 4_000);
    let (old, new) = events.split_at(1_000);
    let v1_only: Vec<_> = old.iter().filter(|e| e.schema_version == 1).cloned().collect();
    let rest: Vec<_> = old.iter().filter(|e| e.schema_version != 1).cloned().collect();
    let v1_writer = LakeWriter::new(Arc::new(support::v1_registry()), lake.clone(), MemoryDeadLetters::new());
    v1_writer.process(&KinesisBatch::from(&support::batch(&v1_only, 0)), support::now()).await;
    let writer = LakeWriter::new(registry.clone(), lake.clone(), MemoryDeadLetters::new());
    for (i, chunk) in rest.chunks(700).chain(new.chunks(1_100)).enumerate() {
        let mut batch = support::batch(chunk, 10_000 * (i as u64 + 1));
        if i % 2 == 1 {
            for r in &mut batch.records {
                r.event_id = format!("shardId-000000000001:{}", r.sequence_number);
            }
        }
        let (response, _) = writer.process(&KinesisBatch::from(&batch), support::now()).await;
        assert!(response.batch_item_failures.is_empty());
    }

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../loadtest/peers/lake_check.py");
    let output = std::process::Command::new(&python).arg(&script).arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "lake_check.py failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();

    let mut expected_rows: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        *expected_rows.entry(e.event_type.clone()).or_default() += 1;
    }
    let tables = report["tables"].as_object().unwrap();
    assert_eq!(tables.len(), expected_rows.len());
    for (event_type, rows) in &expected_rows {
        let table = &tables[event_type];
        let schema = registry.get(event_type).unwrap().arrow_schema();
        for reader in ["pyarrow", "duckdb"] {
            let seen = &table[reader];
            assert_eq!(seen["rows"].as_u64(), Some(*rows), "{reader} {event_type} rows");
            assert_eq!(seen["duplicate_event_ids"].as_u64(), Some(0), "{reader} {event_type}");
            for field in schema.fields() {
                let want =
                    if reader == "pyarrow" { pyarrow_type(field.data_type()) } else { duckdb_type(field.data_type()) };
                assert_eq!(
                    seen["columns"][field.name()].as_str(),
                    Some(want),
                    "{reader} {event_type}.{}",
                    field.name()
                );
            }
            assert!(seen["columns"].get("dt").is_some() && seen["columns"].get("hour").is_some());
        }
        let footer = &table["footer"];
        // Each column as its layout says (see `sinks::encode`): zstd, or uncompressed for the
        // dictionary-encoded (envelope constants and dimensions) and delta-encoded ones.
        let codecs = footer["compression"].as_object().unwrap();
        assert_eq!(codecs.len(), schema.fields().len(), "{event_type}: {codecs:?}");
        let dimensions: Vec<String> = registry
            .get(event_type)
            .unwrap()
            .versions
            .values()
            .flat_map(|v| v.dimensions.iter().map(|d| d.column_path()))
            .collect();
        assert!(!dimensions.is_empty(), "{event_type}");
        for (column, seen) in codecs {
            let layout = ColumnLayout::of(column, &dimensions);
            let want = if matches!(layout, ColumnLayout::Zstd(_)) { "ZSTD" } else { "UNCOMPRESSED" };
            assert_eq!(seen, &serde_json::json!([want]), "{event_type}.{column}");
            let dictionary = layout == ColumnLayout::Dictionary;
            assert_eq!(footer["dictionary"][column], Value::Bool(dictionary), "{event_type}.{column}");
            if let ColumnLayout::Zstd(encoding) | ColumnLayout::Delta(encoding) = layout {
                let seen = &footer["encodings"][column];
                assert!(
                    seen.as_array().is_some_and(|e| e.contains(&Value::from(encoding.to_string()))),
                    "{event_type}.{column}: {encoding} not in {seen}"
                );
            }
        }
        for column in ["event_id", "country", "device", "route", "status", "shard_id"] {
            let want = match column {
                "event_id" => "ZSTD",
                _ => "UNCOMPRESSED",
            };
            if let Some(seen) = codecs.get(column) {
                assert_eq!(seen, &serde_json::json!([want]), "{event_type}.{column}");
            }
        }
        assert_eq!(footer["statistics_everywhere"], Value::Bool(true), "{event_type}");
        assert_eq!(footer["page_index_everywhere"], Value::Bool(true), "{event_type}");
        for column in ["occurred_at", "received_at"] {
            let logical: Value =
                serde_json::from_str(footer["timestamp_logical_types"][column].as_str().unwrap()).unwrap();
            assert_eq!(logical["isAdjustedToUTC"], Value::Bool(true), "{logical}");
            assert_eq!(logical["timeUnit"], "microseconds", "{logical}");
        }
    }
    let all: BTreeMap<String, u64> = serde_json::from_value(report["duckdb_all_types"].clone()).unwrap();
    assert_eq!(all, expected_rows);
}
