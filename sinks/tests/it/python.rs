//! The lake as other engines see it: pyarrow.dataset and DuckDB (via loadtest/peers/lake_check.py,
//! run with `$SLUICE_PYTHON`, the test venv's python): types, codecs and encodings of every
//! leaf column, nested ones included; and the nested `order_placed` rows' values as both read
//! them (tests/it/order_rows.py).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use serde_json::Value;
use sluice_dlq::MemoryDeadLetters;
use sluice_lake::Lake;
use sluice_sinks::LakeWriter;
use sluice_sinks::encode::{ColumnLayout, column_layouts};
use sluice_stream::kinesis_input::KinesisBatch;

use crate::support;

/// The type as pyarrow prints it (`list<element: struct<sku: string, ...>>`; a child that is
/// not nullable says `not null`).
fn pyarrow_type(data_type: &DataType) -> String {
    let child = |f: &Field| {
        format!("{}: {}{}", f.name(), pyarrow_type(f.data_type()), if f.is_nullable() { "" } else { " not null" })
    };
    match data_type {
        DataType::Utf8 => "string".to_owned(),
        DataType::Int32 => "int32".to_owned(),
        DataType::Int64 => "int64".to_owned(),
        DataType::Float64 => "double".to_owned(),
        DataType::Boolean => "bool".to_owned(),
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => {
            "timestamp[us, tz=UTC]".to_owned()
        }
        DataType::Struct(fields) => {
            format!("struct<{}>", fields.iter().map(|f| child(f)).collect::<Vec<_>>().join(", "))
        }
        DataType::List(element) => format!("list<{}>", child(element)),
        other => panic!("no expectation for {other}"),
    }
}

/// The type as DuckDB's DESCRIBE prints it (`STRUCT(sku VARCHAR, ...)[]`).
fn duckdb_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 => "VARCHAR".to_owned(),
        DataType::Int32 => "INTEGER".to_owned(),
        DataType::Int64 => "BIGINT".to_owned(),
        DataType::Float64 => "DOUBLE".to_owned(),
        DataType::Boolean => "BOOLEAN".to_owned(),
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "TIMESTAMP WITH TIME ZONE".to_owned(),
        DataType::Struct(fields) => format!(
            "STRUCT({})",
            fields
                .iter()
                .map(|f| format!("{} {}", f.name(), duckdb_type(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::List(element) => format!("{}[]", duckdb_type(element.data_type())),
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
    // Nested events, from both shards.
    let orders = support::order_events(32, 900);
    for (i, chunk) in orders.chunks(450).enumerate() {
        let mut batch = support::batch(chunk, 100_000 * (i as u64 + 1));
        if i == 1 {
            for r in &mut batch.records {
                r.event_id = format!("shardId-000000000001:{}", r.sequence_number);
            }
        }
        let (response, outcome) = writer.process(&KinesisBatch::from(&batch), support::now()).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(outcome.rows_written, chunk.len());
    }

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../loadtest/peers/lake_check.py");
    let output = std::process::Command::new(&python).arg(&script).arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "lake_check.py failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();

    let mut expected_rows: BTreeMap<String, u64> = BTreeMap::new();
    for e in events.iter().chain(&orders) {
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
                    Some(want.as_str()),
                    "{reader} {event_type}.{}",
                    field.name()
                );
            }
            assert!(seen["columns"].get("dt").is_some() && seen["columns"].get("hour").is_some());
        }
        let footer = &table["footer"];
        // Each leaf column as its layout says (see `sinks::encode`): zstd, or uncompressed for
        // the dictionary-encoded (envelope constants and dimensions, nested ones included) and
        // delta-encoded ones (timestamps at any depth).
        let codecs = footer["compression"].as_object().unwrap();
        let dimensions: Vec<String> = registry
            .get(event_type)
            .unwrap()
            .versions
            .values()
            .flat_map(|v| v.dimensions.iter().map(|d| d.column_path()))
            .collect();
        assert!(!dimensions.is_empty(), "{event_type}");
        let layouts: BTreeMap<String, ColumnLayout> =
            column_layouts(&schema, &dimensions).unwrap().into_iter().map(|(p, l)| (p.string(), l)).collect();
        assert_eq!(codecs.keys().collect::<Vec<_>>(), layouts.keys().collect::<Vec<_>>(), "{event_type}");
        for (column, seen) in codecs {
            let layout = layouts[column];
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
        for column in [
            "event_id",
            "country",
            "device",
            "route",
            "status",
            "shard_id",
            "context.country",
            "context.channel",
            "placed_at",
            "items.list.element.sku",
            "items.list.element.qty",
        ] {
            let want = match column {
                "event_id" | "items.list.element.sku" | "items.list.element.qty" => "ZSTD",
                _ => "UNCOMPRESSED",
            };
            if let Some(seen) = codecs.get(column) {
                assert_eq!(seen, &serde_json::json!([want]), "{event_type}.{column}");
            }
        }
        assert_eq!(footer["statistics_everywhere"], Value::Bool(true), "{event_type}");
        assert_eq!(footer["page_index_everywhere"], Value::Bool(true), "{event_type}");
        let timestamps: &[&str] = if event_type == "order_placed" {
            &["occurred_at", "received_at", "placed_at"]
        } else {
            &["occurred_at", "received_at"]
        };
        for column in timestamps {
            let logical: Value =
                serde_json::from_str(footer["timestamp_logical_types"][column].as_str().unwrap()).unwrap();
            assert_eq!(logical["isAdjustedToUTC"], Value::Bool(true), "{logical}");
            assert_eq!(logical["timeUnit"], "microseconds", "{logical}");
        }
    }
    let all: BTreeMap<String, u64> = serde_json::from_value(report["duckdb_all_types"].clone()).unwrap();
    assert_eq!(all, expected_rows);
    let order = &tables["order_placed"];
    assert_eq!(
        order["pyarrow"]["columns"]["items"],
        "list<element: struct<sku: string not null, qty: int64 not null, unit_price: double not null> not null>"
    );
    assert_eq!(order["duckdb"]["columns"]["items"], "STRUCT(sku VARCHAR, qty BIGINT, unit_price DOUBLE)[]");

    // The nested values, as each engine reads them.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/order_rows.py");
    let output = std::process::Command::new(&python).arg(&script).arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "order_rows.py failed: {}", String::from_utf8_lossy(&output.stderr));
    let rows: BTreeMap<String, Vec<Value>> = serde_json::from_slice(&output.stdout).unwrap();
    let mut expected: Vec<(&str, Value)> = orders
        .iter()
        .map(|e| {
            let mut row = serde_json::Map::new();
            row.insert("event_id".into(), Value::from(e.event_id.as_str()));
            for name in ["order_id", "user_id", "context", "items", "coupon", "total"] {
                row.insert(name.into(), e.data[name].clone());
            }
            let placed_at = sluice_schemas::envelope::parse_occurred_at(e.data["placed_at"].as_str().unwrap()).unwrap();
            row.insert("placed_at_us".into(), Value::from(placed_at.timestamp_micros()));
            (e.event_id.as_str(), Value::Object(row))
        })
        .collect();
    expected.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(rows.len(), 2);
    for (reader, seen) in &rows {
        assert_eq!(seen.len(), expected.len(), "{reader}");
        for (seen, (id, want)) in seen.iter().zip(&expected) {
            assert!(support::same_json(seen, Some(want)), "{reader} {id}: read {seen}, sent {want}");
        }
        let null_coupons = seen.iter().filter(|r| r["coupon"].is_null()).count();
        assert_eq!(null_coupons, orders.iter().filter(|e| e.data["coupon"].is_null()).count(), "{reader}");
        assert!(null_coupons > 0);
        let no_app_version = seen.iter().filter(|r| r["context"]["app_version"].is_null()).count();
        assert!(no_app_version > 0 && no_app_version < seen.len(), "{reader}: {no_app_version}");
    }
}
