//! `Registry::validate` and `Registry::decode_stored`.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use sluice_schemas::{Event, EventTimeRange, IngestContext, Rejection, Violation};

use crate::{ctx, registry, test_data, utc};

/// One data-driven case: `tests/data/invalid/<case>.json`.
#[derive(serde::Deserialize, serde::Serialize)]
struct Case {
    description: String,
    input: Value,
    expected: Vec<Violation>,
}

/// Runs every `tests/data/invalid/*.json` case through `validate` with [`ctx`] and compares the
/// violations (pointer and message, in order). Reports every mismatching case at once.
/// `UPDATE_EXPECT=1` rewrites the expectations (review the diff!).
#[test]
fn invalid_inputs_are_rejected_with_every_violation() {
    let dir = test_data("invalid");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 30, "expected at least 30 cases, found {}", paths.len());

    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap();
        let mut case: Case =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: bad case file: {e}", path.display()));
        let actual = match registry().validate(&case.input, &ctx()) {
            Ok(event) => {
                failures.push(format!("{}: accepted as {event:?}", path.display()));
                continue;
            }
            Err(Rejection { violations }) => violations,
        };
        if actual != case.expected {
            if update {
                case.expected = actual;
                let text = serde_json::to_string_pretty(&case).unwrap() + "\n";
                std::fs::write(path, text).unwrap();
            } else {
                failures.push(format!(
                    "{} ({}):\n  expected {:?}\n  actual   {:?}",
                    path.display(),
                    case.description,
                    case.expected,
                    actual
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} failing case(s):\n{}", failures.len(), failures.join("\n"));
}

fn page_view() -> Value {
    json!({
        "event_id": "0190a0c4-5b7e-7cc3-8f1a-3b2c1d0e9f8a",
        "event_type": "page_view",
        "occurred_at": "2024-05-01T11:59:00Z",
        "data": {"user_id": "u-1", "session_id": "s-1", "page": "/home", "device": "ios",
                 "country": "US", "duration_ms": 1200}
    })
}

fn event(id: &str, t: &str, v: u32, occurred_at: &str, data: Value) -> Event {
    Event {
        event_id: id.to_owned(),
        event_type: t.to_owned(),
        schema_version: v,
        occurred_at: utc(occurred_at),
        received_at: utc("2024-05-01T12:00:00Z"),
        producer: "client-1".to_owned(),
        data: data.as_object().unwrap().clone(),
    }
}

#[test]
fn valid_page_view_defaults_to_the_latest_version() {
    let got = registry().validate(&page_view(), &ctx()).unwrap();
    let data = page_view()["data"].clone();
    assert_eq!(got, event("0190a0c4-5b7e-7cc3-8f1a-3b2c1d0e9f8a", "page_view", 2, "2024-05-01T11:59:00Z", data));
}

#[test]
fn valid_page_view_v1_and_v2() {
    let mut v1 = page_view();
    v1["schema_version"] = json!(1);
    v1["data"]["referrer"] = json!("https://example.com/");
    let got = registry().validate(&v1, &ctx()).unwrap();
    assert_eq!(got.schema_version, 1);
    assert_eq!(got.data["referrer"], "https://example.com/");

    let mut v2 = page_view();
    v2["schema_version"] = json!(2);
    v2["data"]["app_version"] = json!("3.1.4");
    let got = registry().validate(&v2, &ctx()).unwrap();
    assert_eq!(got.schema_version, 2);
    assert_eq!(got.data, v2["data"].as_object().unwrap().clone());
}

#[test]
fn valid_purchase_and_api_call() {
    let purchase = json!({
        "event_id": "01HZX3N4Q5R6S7T8V9W0XYZABC",
        "event_type": "purchase",
        "schema_version": 1,
        "occurred_at": "2024-05-01T11:00:00Z",
        "data": {"user_id": "u-1", "order_id": "o-9", "amount": 19.99, "currency": "EUR", "country": "DE"}
    });
    assert_eq!(
        registry().validate(&purchase, &ctx()).unwrap(),
        event("01HZX3N4Q5R6S7T8V9W0XYZABC", "purchase", 1, "2024-05-01T11:00:00Z", purchase["data"].clone())
    );

    let api_call = json!({
        "event_id": "7d444840-9dc0-11d1-b245-5ffdce74fad2",
        "event_type": "api_call",
        "occurred_at": "2024-05-01T11:00:00Z",
        "data": {"client_id": "c-1", "route": "GET /v1/items/{id}", "status": 404, "latency_ms": 3}
    });
    assert_eq!(
        registry().validate(&api_call, &ctx()).unwrap(),
        event("7d444840-9dc0-11d1-b245-5ffdce74fad2", "api_call", 1, "2024-05-01T11:00:00Z", api_call["data"].clone())
    );
}

#[test]
fn absent_event_id_gets_a_uuid_v7_stamped_with_received_at() {
    let mut input = page_view();
    input.as_object_mut().unwrap().remove("event_id");
    let a = registry().validate(&input, &ctx()).unwrap();
    let b = registry().validate(&input, &ctx()).unwrap();
    let uuid = uuid::Uuid::parse_str(&a.event_id).unwrap();
    assert_eq!(uuid.get_version_num(), 7);
    assert_eq!(uuid.hyphenated().to_string(), a.event_id, "canonical lower-case form");
    let (secs, _) = uuid.get_timestamp().unwrap().to_unix();
    assert_eq!(secs, 1_714_564_800);
    assert_ne!(a.event_id, b.event_id);
}

#[test]
fn producer_ids_are_kept_as_given() {
    for id in [
        "0190A0C4-5B7E-7CC3-8F1A-3B2C1D0E9F8A", // upper-case v7
        "f47ac10b-58cc-4372-a567-0e02b2c3d479", // v4
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",           // ULID
        "01hzx3n4q5r6s7t8v9w0xyzabc",           // ULID, lower case
    ] {
        let mut input = page_view();
        input["event_id"] = json!(id);
        assert_eq!(registry().validate(&input, &ctx()).unwrap().event_id, id);
    }
}

#[test]
fn occurred_at_is_normalised_to_utc_microseconds() {
    let mut input = page_view();
    input["occurred_at"] = json!("2024-05-01T13:59:00.123456789+02:00");
    let got = registry().validate(&input, &ctx()).unwrap();
    assert_eq!(got.occurred_at, utc("2024-05-01T11:59:00.123456Z"));
    assert_eq!(serde_json::to_value(got.occurred_at).unwrap(), json!("2024-05-01T11:59:00.123456Z"));

    // received_at is truncated the same way.
    let ctx = IngestContext { received_at: utc("2024-05-01T12:00:00.999999999Z"), ..ctx() };
    assert_eq!(registry().validate(&page_view(), &ctx).unwrap().received_at, utc("2024-05-01T12:00:00.999999Z"));
}

#[test]
fn future_cut_off_is_inclusive_and_late_events_are_accepted() {
    for ok in [
        "2024-05-01T12:05:00Z",         // exactly received_at + max_future
        "2024-05-01T12:05:00.0000009Z", // sub-microsecond digits are truncated first
        "2024-05-01T14:05:00+02:00",    // same instant, other offset
        "2019-01-01T00:00:00Z",         // late: accepted (windows count it as late)
    ] {
        let mut input = page_view();
        input["occurred_at"] = json!(ok);
        assert!(registry().validate(&input, &ctx()).is_ok(), "{ok}");
    }
    let registry = registry()
        .clone()
        .with_event_time(EventTimeRange { max_future: chrono::TimeDelta::zero(), ..EventTimeRange::default() });
    let mut input = page_view();
    input["occurred_at"] = json!("2024-05-01T12:00:00.000001Z");
    let err = registry.validate(&input, &ctx()).unwrap_err();
    assert_eq!(
        err.violations,
        vec![Violation::new(
            "/occurred_at",
            "must be between 2000-01-01T00:00:00Z (the lake's first day) and 2024-05-01T12:00:00Z \
             (received_at + 0s), inclusive"
        )]
    );
}

#[test]
fn events_before_the_lake_start_are_rejected_with_the_accepted_range() {
    for (t, ok) in [
        ("0000-01-01T00:00:00Z", false),
        ("1999-12-31T23:59:59.999999Z", false),
        ("1999-12-31T23:30:00-01:00", true), // 2000-01-01T00:30:00Z
        ("2000-01-01T00:00:00Z", true),
    ] {
        let mut input = page_view();
        input["occurred_at"] = json!(t);
        let result = registry().validate(&input, &ctx());
        assert_eq!(result.is_ok(), ok, "{t}: {result:?}");
        if let Err(err) = result {
            assert_eq!(err.violations.len(), 1, "{t}");
            assert_eq!(err.violations[0].pointer, "/occurred_at");
            assert!(err.violations[0].message.starts_with("must be between 2000-01-01T00:00:00Z"), "{err:?}");
        }
    }
    // A later lake start moves the range.
    let start = sluice_schemas::envelope::parse_lake_start("2024-01-01").unwrap();
    let registry =
        registry().clone().with_event_time(EventTimeRange { lake_start: start, ..EventTimeRange::default() });
    let mut input = page_view();
    input["occurred_at"] = json!("2023-12-31T23:59:59Z");
    let err = registry.validate(&input, &ctx()).unwrap_err();
    assert!(err.violations[0].message.starts_with("must be between 2024-01-01T00:00:00Z"), "{err:?}");
}

#[test]
fn integer_fields_given_as_floats_are_stored_as_integers() {
    let input = json!({
        "event_type": "api_call", "occurred_at": "2024-05-01T11:00:00Z",
        "data": {"client_id": "c", "route": "r", "status": 200.0, "latency_ms": 1.0}
    });
    let got = registry().validate(&input, &ctx()).unwrap();
    assert_eq!(serde_json::to_string(&got.data["status"]).unwrap(), "200");
    assert_eq!(serde_json::to_string(&got.data["latency_ms"]).unwrap(), "1.0", "numbers untouched");
}

#[test]
fn rejection_displays_and_serialises_every_violation() {
    let err = registry().validate(&json!({"event_type": "page_view"}), &ctx()).unwrap_err();
    assert_eq!(err.to_string(), "invalid event: /data is required; /occurred_at is required");
    assert_eq!(
        serde_json::to_value(&err).unwrap(),
        json!({"violations": [
            {"pointer": "/data", "message": "is required"},
            {"pointer": "/occurred_at", "message": "is required"}
        ]})
    );
    let err = registry().validate(&json!(1), &ctx()).unwrap_err();
    assert_eq!(err.to_string(), "invalid event: event must be a JSON object with event_type, occurred_at and data");
}

fn stored(event: &Event) -> Vec<u8> {
    serde_json::to_vec(event).unwrap()
}

#[test]
fn decode_stored_round_trips_a_validated_event() {
    let event = registry().validate(&page_view(), &ctx()).unwrap();
    let bytes = stored(&event);
    assert_eq!(registry().decode_stored(&bytes).unwrap(), event);
    // The stored shape is the Event's JSON: envelope fields + data.
    let value: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        value,
        json!({
            "event_id": "0190a0c4-5b7e-7cc3-8f1a-3b2c1d0e9f8a",
            "event_type": "page_view",
            "schema_version": 2,
            "occurred_at": "2024-05-01T11:59:00Z",
            "received_at": "2024-05-01T12:00:00Z",
            "producer": "client-1",
            "data": page_view()["data"].clone()
        })
    );
}

fn decode_err(bytes: &[u8]) -> Vec<Violation> {
    registry().decode_stored(bytes).unwrap_err().violations
}

#[test]
fn decode_stored_rejects_garbage_with_a_reason() {
    let pointers = |v: Vec<Violation>| v.into_iter().map(|v| v.pointer).collect::<Vec<_>>();
    assert_eq!(pointers(decode_err(b"")), vec![""]);
    assert_eq!(pointers(decode_err(b"Hello World")), vec![""]);
    assert_eq!(pointers(decode_err(b"\xff\xfe{\"a\":1}")), vec![""]);
    assert_eq!(pointers(decode_err(b"{\"event_id\":\"\xff\"}")), vec![""]);
    assert_eq!(pointers(decode_err(b"[]")), vec![""]);
    assert_eq!(pointers(decode_err(b"{}")), vec![""]);
    let msg = &decode_err(b"{}")[0].message;
    assert!(msg.starts_with("is not a stored sluice event: missing field"), "{msg}");

    let good = registry().validate(&page_view(), &ctx()).unwrap();

    let mut unknown_type = good.clone();
    unknown_type.event_type = "click".into();
    assert_eq!(
        decode_err(&stored(&unknown_type)),
        vec![Violation::new(
            "/event_type",
            "must be a registered event type: one of api_call, order_placed, page_view, purchase"
        )]
    );

    let mut unknown_version = good.clone();
    unknown_version.schema_version = 9;
    assert_eq!(
        decode_err(&stored(&unknown_version)),
        vec![Violation::new("/schema_version", "must be a registered version of page_view: one of 1, 2")]
    );

    let mut bad_data = good.clone();
    bad_data.data.insert("device".into(), json!("fridge"));
    bad_data.data.remove("user_id");
    assert_eq!(
        decode_err(&stored(&bad_data)),
        vec![
            Violation::new("/data/device", "must be one of ios, android, web, tv"),
            Violation::new("/data/user_id", "is required"),
        ]
    );

    // A v2 field in an event stored as v1 is re-checked against v1.
    let mut v1 = good;
    v1.schema_version = 1;
    v1.data.insert("app_version".into(), json!("1"));
    assert_eq!(decode_err(&stored(&v1)), vec![Violation::new("/data/app_version", "is not allowed (unknown field)")]);
}

#[test]
fn decode_stored_ignores_unknown_stored_fields() {
    // Forward compatibility: a newer ingest may add envelope fields; older handlers still decode.
    let event = registry().validate(&page_view(), &ctx()).unwrap();
    let mut value = serde_json::to_value(&event).unwrap();
    value["trace_id"] = json!("abc");
    assert_eq!(registry().decode_stored(&serde_json::to_vec(&value).unwrap()).unwrap(), event);
}

#[test]
fn integer_fields_must_fit_int64() {
    // JSON Schema's "integer" admits 2^64 - 1 and 1e30; the lake column is Int64.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("signup")).unwrap();
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "x-sluice-event-type": "signup", "x-sluice-version": 1, "type": "object",
        "properties": {"seats": {"type": "integer"}}, "additionalProperties": false
    });
    std::fs::write(dir.path().join("signup/v1.json"), schema.to_string()).unwrap();
    let reg = sluice_schemas::Registry::from_dir(dir.path()).unwrap();
    let input =
        |seats: Value| json!({"event_type": "signup", "occurred_at": "2024-05-01T11:00:00Z", "data": {"seats": seats}});
    let range = "must be an integer between -9223372036854775808 and 9223372036854775807";
    for seats in [json!(u64::MAX), json!(1e30), json!(-1e19)] {
        assert_eq!(
            reg.validate(&input(seats.clone()), &ctx()).unwrap_err().violations,
            vec![Violation::new("/data/seats", range)],
            "{seats}"
        );
    }
    for seats in [json!(i64::MAX), json!(i64::MIN), json!(-4.0)] {
        assert!(reg.validate(&input(seats.clone()), &ctx()).is_ok(), "{seats}");
    }
}

/// A schema with nested objects, arrays of scalars and of objects, nullable integers and
/// date-times (loaded from a temp directory).
fn rich_registry() -> sluice_schemas::Registry {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rich")).unwrap();
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "x-sluice-event-type": "rich", "x-sluice-version": 1, "type": "object",
        "x-sluice-dimensions": ["/a/b/kind"], "x-sluice-measure": "a/b/n",
        "properties": {
            "a": {"type": "object", "additionalProperties": false, "required": ["b"], "properties": {
                "b": {"type": "object", "additionalProperties": false, "required": ["kind", "n"], "properties": {
                    "kind": {"type": "string"}, "n": {"type": "integer"},
                    "seen": {"type": "string", "format": "date-time"}}}}},
            "counts": {"type": "array", "items": {"type": "integer"}},
            "maybe": {"type": ["integer", "null"]},
            "rows": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                "properties": {"at": {"type": "string", "format": "date-time"}, "n": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": ["string", "null"]}}}}}
        },
        "required": ["a"], "additionalProperties": false
    });
    std::fs::write(dir.path().join("rich/v1.json"), schema.to_string()).unwrap();
    sluice_schemas::Registry::from_dir(dir.path()).unwrap()
}

#[test]
fn integers_at_every_depth_must_fit_int64() {
    let reg = rich_registry();
    let input = |data: Value| json!({"event_type": "rich", "occurred_at": "2024-05-01T11:00:00Z", "data": data});
    let range = "must be an integer between -9223372036854775808 and 9223372036854775807";
    let data = json!({"a": {"b": {"kind": "k", "n": 1e19}}, "counts": [1, u64::MAX, 3], "maybe": -1e30,
        "rows": [{"n": 2}, {"n": 1e20}]});
    assert_eq!(
        reg.validate(&input(data), &ctx()).unwrap_err().violations,
        vec![
            Violation::new("/data/a/b/n", range),
            Violation::new("/data/counts/1", range),
            Violation::new("/data/maybe", range),
            Violation::new("/data/rows/1/n", range),
        ]
    );
}

#[test]
fn rich_data_is_stored_normalised_and_round_trips() {
    let reg = rich_registry();
    let input = json!({"event_type": "rich", "occurred_at": "2024-05-01T11:00:00Z", "data": {
        "a": {"b": {"kind": "k", "n": 3.0, "seen": "2024-05-01T14:00:00.1234567+02:00"}},
        "counts": [1.0, -2], "maybe": null,
        "rows": [{"at": "2024-04-30T23:59:59z", "tags": ["x", null]}, {"n": 4}]}});
    let event = reg.validate(&input, &ctx()).unwrap();
    assert_eq!(
        Value::Object(event.data.clone()),
        json!({"a": {"b": {"kind": "k", "n": 3, "seen": "2024-05-01T12:00:00.123456Z"}},
            "counts": [1, -2], "maybe": null,
            "rows": [{"at": "2024-04-30T23:59:59Z", "tags": ["x", null]}, {"n": 4}]})
    );
    let bytes = serde_json::to_vec(&event).unwrap();
    assert_eq!(reg.decode_stored(&bytes).unwrap(), event);
    assert_eq!(reg.decode_stored_reference(&bytes).unwrap(), event);
    // The roles are read through the objects.
    let schema = reg.get("rich").unwrap().latest().unwrap();
    assert_eq!(schema.dimensions[0].get(&event.data), Some(&json!("k")));
    assert_eq!(schema.measure.as_ref().unwrap().get(&event.data), Some(&json!(3)));
}

#[test]
fn nested_violations_carry_their_pointers() {
    let reg = rich_registry();
    let input = |data: Value| json!({"event_type": "rich", "occurred_at": "2024-05-01T11:00:00Z", "data": data});
    let data = json!({"a": {"b": {"kind": 1, "n": 1, "seen": "noon"}, "c": true},
        "counts": [1, "2"], "maybe": "x", "rows": [{"at": "2024-05-01T12:00:00", "tags": ["a", 3]}, 5]});
    let got: Vec<(String, String)> = reg
        .validate(&input(data), &ctx())
        .unwrap_err()
        .violations
        .into_iter()
        .map(|v| (v.pointer, v.message))
        .collect();
    let time = "must be an RFC 3339 timestamp with a UTC offset, e.g. 2024-05-01T12:00:00.000Z";
    let want: Vec<(String, String)> = [
        ("/data/a/b/kind", "must be a string"),
        ("/data/a/b/seen", time),
        ("/data/a/c", "is not allowed (unknown field)"),
        ("/data/counts/1", "must be an integer"),
        ("/data/maybe", "must be an integer or null"),
        ("/data/rows/0/at", time),
        ("/data/rows/0/tags/1", "must be a string or null"),
        ("/data/rows/1", "must be an object"),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_owned(), m.to_owned()))
    .collect();
    assert_eq!(got, want);
}
