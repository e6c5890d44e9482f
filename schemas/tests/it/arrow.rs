//! Lake table schemas.

use arrow_schema::{DataType, TimeUnit};
use pretty_assertions::assert_eq;
use sluice_schemas::ENVELOPE_COLUMNS;

use crate::registry;

/// (name, type, nullable) of every column.
fn columns(event_type: &str) -> Vec<(String, DataType, bool)> {
    registry()
        .get(event_type)
        .unwrap()
        .arrow_schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
        .collect()
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn envelope() -> Vec<(String, DataType, bool)> {
    vec![
        ("event_id".into(), DataType::Utf8, false),
        ("event_type".into(), DataType::Utf8, false),
        ("schema_version".into(), DataType::Int32, false),
        ("occurred_at".into(), ts(), false),
        ("received_at".into(), ts(), false),
        ("producer".into(), DataType::Utf8, false),
        ("shard_id".into(), DataType::Utf8, false),
        ("sequence_number".into(), DataType::Utf8, false),
    ]
}

fn with(data: &[(&str, DataType, bool)]) -> Vec<(String, DataType, bool)> {
    let mut cols = envelope();
    cols.extend(data.iter().map(|(n, t, null)| ((*n).to_owned(), t.clone(), *null)));
    cols
}

#[test]
fn envelope_columns_constant_matches_the_schemas() {
    let names: Vec<String> = envelope().into_iter().map(|c| c.0).collect();
    assert_eq!(names, ENVELOPE_COLUMNS);
}

#[test]
fn page_view_uses_the_latest_version_and_v2_fields_are_nullable() {
    assert_eq!(
        columns("page_view"),
        with(&[
            ("user_id", DataType::Utf8, false),
            ("session_id", DataType::Utf8, false),
            ("page", DataType::Utf8, false),
            ("referrer", DataType::Utf8, true),
            ("device", DataType::Utf8, false),
            ("country", DataType::Utf8, false),
            ("duration_ms", DataType::Float64, false),
            ("app_version", DataType::Utf8, true),
        ])
    );
}

#[test]
fn purchase_columns() {
    assert_eq!(
        columns("purchase"),
        with(&[
            ("user_id", DataType::Utf8, false),
            ("order_id", DataType::Utf8, false),
            ("amount", DataType::Float64, false),
            ("currency", DataType::Utf8, false),
            ("country", DataType::Utf8, false),
        ])
    );
}

#[test]
fn api_call_columns_use_int64_for_integers() {
    assert_eq!(
        columns("api_call"),
        with(&[
            ("client_id", DataType::Utf8, false),
            ("route", DataType::Utf8, false),
            ("status", DataType::Int64, false),
            ("latency_ms", DataType::Float64, false),
        ])
    );
}

#[test]
fn booleans_and_fields_required_only_in_later_versions() {
    // v2 adds `trial` (optional) and makes `seats` optional: both are nullable; `plan` is
    // required in every version and is not.
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("signup");
    std::fs::create_dir(&t).unwrap();
    let v1 = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "x-sluice-event-type": "signup", "x-sluice-version": 1,
        "type": "object",
        "properties": {"plan": {"type": "string"}, "seats": {"type": "integer"}},
        "required": ["plan", "seats"],
        "additionalProperties": false
    });
    let mut v2 = v1.clone();
    v2["x-sluice-version"] = serde_json::json!(2);
    v2["properties"]["trial"] = serde_json::json!({"type": "boolean"});
    v2["required"] = serde_json::json!(["plan"]);
    std::fs::write(t.join("v1.json"), v1.to_string()).unwrap();
    std::fs::write(t.join("v2.json"), v2.to_string()).unwrap();
    let reg = sluice_schemas::Registry::from_dir(dir.path()).unwrap();
    let schema = reg.get("signup").unwrap().arrow_schema();
    let data: Vec<_> = schema
        .fields()
        .iter()
        .skip(ENVELOPE_COLUMNS.len())
        .map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable()))
        .collect();
    assert_eq!(
        data,
        vec![("plan", DataType::Utf8, false), ("seats", DataType::Int64, true), ("trial", DataType::Boolean, true),]
    );
}
