//! Differential tests: the fast path (`decode_stored`, `validate`: compiled field table, hand
//! parsed timestamps) against the reference path (`decode_stored_reference`,
//! `validate_reference`: chrono + jsonschema). Same `Result` for every input: the same Event, or
//! the same violations in the same order. Flat data (the shipped flat types, `probe`) and
//! nested, nullable, array and date-time data (`order_placed`, `nest`) alike.

use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset, SecondsFormat};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sluice_schemas::{Registry, StoredValue, ViewCache, ViewValues};

use crate::props::{arb_f64, arb_json, arb_valid};
use crate::{ctx, registry};

/// Values chosen to sit on the edges of the shipped and probe schemas.
fn nasty_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        arb_f64().prop_map(Value::from),
        (-10i64..=1010).prop_map(Value::from),
        (-10i64..=1010).prop_map(|n| Value::from(n as f64)),
        (-2.0f64..2.0).prop_map(Value::from),
        prop::sample::select(vec![
            json!(0),
            json!(-0.0),
            json!(0.0),
            json!(-1),
            json!(99),
            json!(100),
            json!(100.0),
            json!(599),
            json!(599.5),
            json!(600),
            json!(1e30),
            json!(-1e19),
            json!(9_007_199_254_740_992u64),
            json!(9_007_199_254_740_993u64),
            json!(9_007_199_254_740_992.0),
            json!(-9_007_199_254_740_993i64),
            json!(u64::MAX),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(9.3e18),
            json!(-1e-300),
            json!(5e-324),
            json!(-5e-324),
            json!(1.5),
            json!(1.5000000000000002),
            json!(999),
            json!(1000),
            json!(-5),
            json!(-6),
        ]),
        prop::sample::select(vec![
            "",
            "ios",
            "IOS",
            "web ",
            "fridge",
            "US",
            "us",
            "USA",
            "U",
            "US\n",
            "\nUS",
            "ÜS",
            "EUR",
            "eur",
            "E1R",
            "🦀",
            "🦀🦀",
            "🦀🦀🦀",
            "🦀🦀🦀🦀🦀",
            "a",
            "ab",
            "abcd",
            "abcde",
            "\u{0}",
            "/x",
            "a_b9",
            "A_b",
            "v1.2",
            "v1.2345",
            "xv12.999y",
            "v.1",
            "v١.2",
            "ABCD-x",
            "ABCD-z",
            "abcd-x",
            "ABC-x",
            "ABCDE-x",
            "b",
            "c",
        ])
        .prop_map(Value::from),
        "\\PC{0,6}".prop_map(Value::from),
        "[A-Z]{1,4}".prop_map(Value::from),
        "[a-z0-9_ ]{0,5}".prop_map(Value::from),
        "v[0-9]{0,2}\\.[0-9]{0,4}".prop_map(Value::from),
        "[A-F0-9]{3,5}-[xyz]".prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
        Just(json!(["US"])),
    ]
}

/// Timestamp strings around the canonical form: chrono decides everything that is not canonical.
fn arb_timestamp() -> impl Strategy<Value = Value> {
    let parts = (
        prop_oneof![0u32..10_000, 1990u32..2030],
        0u32..14,
        0u32..33,
        0u32..26,
        0u32..61,
        0u32..62,
        (0usize..12, any::<u64>()),
        prop::sample::select(vec!["T", "t", " "]),
        prop::sample::select(vec!["Z", "z", "+00:00", "+02:00", "-00:00", "", " Z", "Z "]),
    )
        .prop_map(|(y, mo, d, h, mi, s, (frac_len, frac), sep, suffix)| {
            let frac: String = frac.to_string().chars().cycle().take(frac_len).collect();
            let dot = if frac_len == 0 { String::new() } else { format!(".{frac}") };
            Value::from(format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{dot}{suffix}"))
        });
    prop_oneof![
        4 => parts,
        1 => prop::sample::select(vec![
            "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.5Z", "2024-05-01T12:00:00.123456789Z",
            "2024-05-01T12:00:00.1234567891Z", "2024-05-01T12:00:00.Z", "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5Z", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "0000-01-01T00:00:00Z",
            "0999-12-31T23:59:59Z", "9999-12-31T23:59:59.999999999Z", "+2024-05-01T12:00:00Z", "2024-05-01",
            "",
        ])
        .prop_map(Value::from),
        1 => nasty_value(),
    ]
}

const FIELDS: &[&str] = &[
    "user_id",
    "session_id",
    "page",
    "referrer",
    "device",
    "country",
    "duration_ms",
    "app_version",
    "order_id",
    "amount",
    "currency",
    "client_id",
    "route",
    "status",
    "latency_ms",
    "extra",
    "",
    "a/b~c",
];

/// An edit of one shipped field to a value on either side of its constraints (most edits
/// with `nasty_value` break the event; these often keep it valid).
fn near_valid_edit() -> impl Strategy<Value = Edit> {
    let code = "[A-Z]{1,4}|[a-z]{2,3}|[A-Z][a-z]".prop_map(Value::from);
    prop_oneof![
        (prop::sample::select(vec!["country", "currency"]), code).prop_map(|(k, v)| Edit::SetField(k, v)),
        prop::sample::select(vec!["ios", "android", "web", "tv", "Web", "tv ", "", "fridge"])
            .prop_map(|v| Edit::SetField("device", Value::from(v))),
        prop_oneof![(90i64..610).prop_map(Value::from), (90.0f64..610.0).prop_map(|f| Value::from(f.round()))]
            .prop_map(|v| Edit::SetField("status", v)),
        (
            prop::sample::select(vec!["duration_ms", "amount", "latency_ms"]),
            prop_oneof![(-2.0f64..2.0).prop_map(Value::from), (-3i64..3).prop_map(Value::from), Just(json!(-0.0)),]
        )
            .prop_map(|(k, v)| Edit::SetField(k, v)),
        (
            prop::sample::select(vec![
                "user_id",
                "session_id",
                "page",
                "order_id",
                "client_id",
                "route",
                "referrer",
                "app_version"
            ]),
            prop_oneof![Just(""), Just("x"), Just("🦀")]
        )
            .prop_map(|(k, v)| Edit::SetField(k, Value::from(v))),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    SetField(&'static str, Value),
    RemoveField(&'static str),
    ReplaceData(Value),
    SetEnvelope(&'static str, Value),
    RemoveEnvelope(&'static str),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    let envelope = prop::sample::select(vec![
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "received_at",
        "producer",
        "data",
        "trace_id",
    ]);
    prop_oneof![
        6 => (prop::sample::select(FIELDS), nasty_value()).prop_map(|(k, v)| Edit::SetField(k, v)),
        6 => near_valid_edit(),
        2 => prop::sample::select(FIELDS).prop_map(Edit::RemoveField),
        1 => prop_oneof![nasty_value(), arb_json()].prop_map(Edit::ReplaceData),
        2 => (prop::sample::select(vec!["occurred_at", "received_at"]), arb_timestamp())
            .prop_map(|(k, v)| Edit::SetEnvelope(k, v)),
        1 => (
            prop::sample::select(vec!["schema_version", "event_type", "event_id", "producer"]),
            prop_oneof![
                nasty_value(),
                prop::sample::select(vec![json!(1), json!(2), json!(3), json!("page_view"), json!("purchase"),
                    json!("api_call"), json!(4_294_967_296u64)]),
            ]
        )
            .prop_map(|(k, v)| Edit::SetEnvelope(k, v)),
        1 => envelope.prop_map(Edit::RemoveEnvelope),
    ]
}

fn apply(stored: &mut Map<String, Value>, edit: Edit) {
    match edit {
        Edit::SetField(k, v) => {
            if let Some(Value::Object(data)) = stored.get_mut("data") {
                data.insert(k.to_owned(), v);
            }
        }
        Edit::RemoveField(k) => {
            if let Some(Value::Object(data)) = stored.get_mut("data") {
                data.remove(k);
            }
        }
        Edit::ReplaceData(v) => {
            stored.insert("data".to_owned(), v);
        }
        Edit::SetEnvelope(k, v) => {
            stored.insert(k.to_owned(), v);
        }
        Edit::RemoveEnvelope(k) => {
            stored.remove(k);
        }
    }
}

/// A valid producer event with an explicit event_id (an assigned one is random, so the two
/// paths would differ in it).
fn with_id(mut input: Value) -> Value {
    if input.get("event_id").is_none() {
        input["event_id"] = json!("0190a0c4-5b7e-7cc3-8f1a-3b2c1d0e9f8a");
    }
    input
}

/// The record's JSON with the envelope keys in `Event` declaration order (the layout
/// `serde_json::to_vec(&Event)` writes, which `decode_stored` parses by hand), or, if
/// `sorted`, in the key order of a `serde_json::Map` (parsed by serde).
fn record_bytes(stored: &Map<String, Value>, sorted: bool) -> Vec<u8> {
    if sorted {
        return serde_json::to_vec(stored).unwrap();
    }
    const ORDER: &[&str] =
        &["event_id", "event_type", "schema_version", "occurred_at", "received_at", "producer", "data"];
    let mut keys: Vec<&String> = stored.keys().collect();
    keys.sort_by_key(|k| ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()));
    let members: Vec<String> =
        keys.into_iter().map(|k| format!("{}:{}", Value::from(k.as_str()), stored[k.as_str()])).collect();
    format!("{{{}}}", members.join(",")).into_bytes()
}

fn same_decode(reg: &Registry, bytes: &[u8]) -> Result<(), TestCaseError> {
    let fast = reg.decode_stored(bytes);
    let reference = reg.decode_stored_reference(bytes);
    prop_assert_eq!(&fast, &reference, "{}", String::from_utf8_lossy(bytes));
    // The allocation-free view: only ever for records the reference accepts, with equal contents.
    // The buffer holds a full record's values first: decoding must reset every slot it reads.
    let mut values = full_values();
    let uncached = reg.decode_stored_view(bytes, &mut values).map(|view| view.to_event());
    if let Some(event) = &uncached {
        prop_assert_eq!(
            event.clone().ok_or(()),
            reference.map_err(|_| ()),
            "view of {}",
            String::from_utf8_lossy(bytes)
        );
    }
    // The cached lookup (a batch's records share one cache): the same answer on a cold cache,
    // on one warmed by another record, and on the second sight of this record.
    let mut cache = ViewCache::default();
    for round in 0..3 {
        if round == 1 {
            let mut other = ViewValues::default();
            let warm = reg.decode_stored_view_cached(FULL_PAGE_VIEW, &mut other, &mut cache).map(|v| v.to_event());
            prop_assert_eq!(warm, reg.decode_stored_view(FULL_PAGE_VIEW, &mut other).map(|v| v.to_event()));
        }
        let mut values = full_values();
        let cached = reg.decode_stored_view_cached(bytes, &mut values, &mut cache).map(|view| view.to_event());
        prop_assert_eq!(&cached, &uncached, "cached view (round {}) of {}", round, String::from_utf8_lossy(bytes));
    }
    Ok(())
}

const FULL_PAGE_VIEW: &[u8] = b"{\"event_id\":\"e\",\"event_type\":\"page_view\",\"schema_version\":2,\
        \"occurred_at\":\"2024-05-01T12:00:00Z\",\"received_at\":\"2024-05-01T12:00:00Z\",\"producer\":\"p\",\
        \"data\":{\"app_version\":\"1.0.0\",\"country\":\"US\",\"device\":\"web\",\"duration_ms\":1.5,\
        \"page\":\"/\",\"referrer\":\"r\",\"session_id\":\"s\",\"user_id\":\"u\"}}";

/// A view buffer left holding every slot of a `nest` record with every field present (more
/// slots than any other version here has), so a decode that forgot to reset a slot would show
/// a stale value.
fn full_values() -> ViewValues<'static> {
    static FULL: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes = FULL.get_or_init(|| record_bytes(nest_record(full_nest()).as_object().unwrap(), false));
    let mut values = ViewValues::default();
    let view = probe_registry().decode_stored_view(bytes, &mut values).map(|v| v.values().iter().flatten().count());
    assert_eq!(view, Some(NEST_SLOTS), "the full record is viewed with every slot set");
    values
}

/// The view of a record in the serializer's layout, checked against the reference.
fn view_agrees(reg: &Registry, bytes: &[u8]) -> bool {
    let reference = reg.decode_stored_reference(bytes);
    let mut values = full_values();
    match reg.decode_stored_view(bytes, &mut values) {
        Some(view) => {
            assert_eq!(view.to_event().ok_or(()), reference.map_err(|_| ()), "{}", String::from_utf8_lossy(bytes));
            true
        }
        None => false,
    }
}

#[test]
fn stored_view_on_every_invalid_case_and_number_edge() {
    // Each invalid producer case's data (and envelope fields) in a stored record: the view must
    // never accept what the reference rejects, and must equal the reference where it accepts.
    let dir = crate::test_data("invalid");
    let mut declined = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let input = &case["input"];
        let mut stored = json!({"event_id": "0190a0c4-5b7e-7cc3-8f1a-3b2c1d0e9f8a", "event_type": "page_view",
            "schema_version": 2, "occurred_at": "2024-05-01T12:00:00Z", "received_at": "2024-05-01T12:00:00Z",
            "producer": "p", "data": {}});
        if let Some(obj) = input.as_object() {
            for (k, v) in obj {
                stored[k.as_str()] = v.clone();
            }
            if obj.contains_key("event_type") && !obj.contains_key("schema_version") {
                stored["schema_version"] = json!(1);
            }
        }
        let bytes = record_bytes(stored.as_object().unwrap(), false);
        // Producer-only rules (event_id form, received_at) do not apply to stored records; the
        // event-time range and every data violation do.
        let rejected = registry().decode_stored_reference(&bytes).is_err();
        assert!(rejected || !name.starts_with("data_"), "{name}: {}", String::from_utf8_lossy(&bytes));
        let viewed = view_agrees(registry(), &bytes);
        assert!(!(rejected && viewed), "{name}");
        declined += usize::from(rejected);
    }
    assert!(declined >= 20, "{declined}");

    let record = |status: &str, latency: &str| {
        format!(
            "{{\"event_id\":\"e\",\"event_type\":\"api_call\",\"schema_version\":1,\
             \"occurred_at\":\"2024-05-01T12:00:00.123456Z\",\"received_at\":\"2024-05-01T12:00:01Z\",\
             \"producer\":\"p\",\"data\":{{\"client_id\":\"c\",\"latency_ms\":{latency},\
             \"route\":\"GET /x\",\"status\":{status}}}}}"
        )
        .into_bytes()
    };
    // Accepted by both: the view must agree (and must exist for the plain forms).
    for (status, latency) in
        [("200", "12.5"), ("599", "0"), ("100", "-0"), ("200", "1e3"), ("200", "1.5E-2"), ("200", "9007199254740992")]
    {
        let bytes = record(status, latency);
        assert!(registry().decode_stored_reference(&bytes).is_ok(), "{status} {latency}");
        assert!(view_agrees(registry(), &bytes), "{status} {latency}: expected a view");
    }
    // Accepted by the reference, declined by the view (it proves nothing it cannot copy exactly).
    for (status, latency) in
        [("200.0", "1"), ("2e2", "1"), ("-0", "1"), ("200", "1234567890123456789012"), ("200", "123456789012345678")]
    {
        let bytes = record(status, latency);
        assert!(!view_agrees(registry(), &bytes), "{status} {latency}: expected no view");
    }
    // Not JSON numbers, or invalid: no view.
    for (status, latency) in [
        ("200", "01"),
        ("200", "1."),
        ("200", ".5"),
        ("200", "+1"),
        ("200", "1e"),
        ("200", "1e400"),
        ("200", "NaN"),
        ("200", "-"),
        ("600", "1"),
        ("200", "-1"),
        ("200", "null"),
        ("99", "1"),
        ("\"200\"", "1"),
    ] {
        let bytes = record(status, latency);
        assert!(!view_agrees(registry(), &bytes), "{status} {latency}: expected no view");
    }
}

fn same_validate(reg: &Registry, input: &Value) -> Result<(), TestCaseError> {
    prop_assert_eq!(reg.validate(input, &ctx()), reg.validate_reference(input, &ctx()), "{}", input);
    Ok(())
}

/// A registry with a flat schema exercising every scalar keyword of the fast subset (`probe`
/// v1), one with a keyword outside it (`probe` v2: always the reference path), and a nested one
/// (`nest` v1, [`nest_schema`]).
fn probe_registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let head = |t: &str, v: u32| {
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "x-sluice-event-type": t,
                "x-sluice-version": v, "type": "object", "additionalProperties": false,
                "title": "probe", "$comment": "annotations are allowed", "x-sluice-dimensions": ["e"]})
        };
        let mut probe = head("probe", 1);
        probe["properties"] = json!({
            "s": {"type": "string", "minLength": 2, "maxLength": 4, "description": "length"},
            "code": {"type": "string", "pattern": "^[a-z0-9_ ]+$"},
            "ver": {"type": "string", "pattern": "v\\d+\\.[0-9]{1,3}", "description": "a version"},
            "fixed": {"type": "string", "pattern": "^[A-F0-9]{4}-[xy]$"},
            "n": {"type": "integer", "minimum": -5, "exclusiveMaximum": 1000},
            "x": {"type": "number", "exclusiveMinimum": 0, "maximum": 1.5},
            "big": {"type": "integer", "maximum": 9_007_199_254_740_992u64, "minimum": -9_007_199_254_740_992i64},
            "b": {"type": "boolean"},
            "e": {"type": "string", "enum": ["a", "b"]},
        });
        probe["required"] = json!(["s", "n", "b", "e"]);
        let mut other = head("probe", 2);
        other["properties"] = json!({
            "s": {"type": "string", "minLength": 2, "maxLength": 4},
            "e": {"type": "string", "enum": ["a", "b"]},
            "t": {"type": "string", "format": "date-time"},
            "u": {"type": "array", "items": {"type": "integer"}, "uniqueItems": true},
        });
        other["required"] = json!(["e"]);
        std::fs::create_dir(dir.path().join("probe")).unwrap();
        std::fs::write(dir.path().join("probe/v1.json"), probe.to_string()).unwrap();
        std::fs::write(dir.path().join("probe/v2.json"), other.to_string()).unwrap();
        std::fs::create_dir(dir.path().join("nest")).unwrap();
        std::fs::write(dir.path().join("nest/v1.json"), nest_schema().to_string()).unwrap();
        Registry::from_dir(dir.path()).unwrap()
    })
}

const PROBE_FIELDS: &[&str] = &["s", "code", "ver", "fixed", "n", "x", "big", "b", "e", "t", "u", "extra"];

fn arb_probe_data() -> impl Strategy<Value = Map<String, Value>> {
    let base = json!({"s": "abc", "n": 3, "b": true, "e": "a"});
    prop::collection::vec((prop::sample::select(PROBE_FIELDS), prop::option::of(nasty_value())), 0..3).prop_map(
        move |edits| {
            let mut data = base.as_object().unwrap().clone();
            for (k, v) in edits {
                match v {
                    Some(v) => data.insert(k.to_owned(), v),
                    None => data.remove(k),
                };
            }
            data
        },
    )
}

#[test]
fn shipped_schemas_take_the_fast_path() {
    for t in registry().event_types() {
        for v in t.versions.values() {
            assert!(v.has_fast_path(), "{} v{}", t.name, v.version);
        }
    }
    let probe = probe_registry().get("probe").unwrap();
    assert!(probe.version(1).unwrap().has_fast_path());
    assert!(!probe.version(2).unwrap().has_fast_path(), "uniqueItems is outside the subset");
    let nest = probe_registry().get("nest").unwrap().version(1).unwrap();
    assert!(nest.has_fast_path());
    assert_eq!(nest.view_fields().map(|f| f.len()), Some(NEST_SLOTS));
    // `order_placed`'s slots: its properties, then `context`'s (its dimensions).
    let order = registry().get("order_placed").unwrap().version(1).unwrap();
    assert_eq!(
        order.view_fields().unwrap(),
        [
            "context",
            "coupon",
            "items",
            "order_id",
            "placed_at",
            "total",
            "user_id",
            "context/app_version",
            "context/channel",
            "context/country"
        ]
    );
}

#[test]
fn data_driven_cases_agree() {
    let dir = crate::test_data("invalid");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        let input = &case["input"];
        assert_eq!(registry().validate(input, &ctx()), registry().validate_reference(input, &ctx()), "{input}");
        n += 1;
    }
    assert!(n >= 30);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn decode_stored_agrees_on_valid_events(input in arb_valid()) {
        let event = registry().validate_reference(&input, &ctx()).unwrap();
        let bytes = serde_json::to_vec(&event).unwrap();
        prop_assert_eq!(registry().decode_stored(&bytes), Ok(event.clone()));
        same_decode(registry(), &bytes)?;
        // Valid events without escapes and with integers below 2^53 get a view (the lake
        // writer's hot path).
        let exact = |v: &Value| !v.is_number() || v.is_f64() || v.as_i64().is_some_and(|i| i.unsigned_abs() <= 1 << 53);
        if !bytes.contains(&b'\\') && event.data.values().all(exact) {
            prop_assert!(
                registry().decode_stored_view(&bytes, &mut ViewValues::default()).is_some(),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn decode_stored_agrees_on_mutated_events(
        input in arb_valid(),
        edits in prop::collection::vec(arb_edit(), 0..4),
        sorted in any::<bool>(),
    ) {
        let event = registry().validate_reference(&input, &ctx()).unwrap();
        let Value::Object(mut stored) = serde_json::to_value(&event).unwrap() else { unreachable!() };
        prop_assert_eq!(record_bytes(&stored, false), serde_json::to_vec(&event).unwrap());
        for edit in edits {
            apply(&mut stored, edit);
        }
        same_decode(registry(), &record_bytes(&stored, sorted))?;
    }

    #[test]
    fn decode_stored_agrees_on_edits_near_the_constraints(
        input in arb_valid(),
        edits in prop::collection::vec(near_valid_edit(), 1..3),
    ) {
        let event = registry().validate_reference(&input, &ctx()).unwrap();
        let Value::Object(mut stored) = serde_json::to_value(&event).unwrap() else { unreachable!() };
        for edit in edits {
            apply(&mut stored, edit);
        }
        same_decode(registry(), &record_bytes(&stored, false))?;
    }

    #[test]
    fn decode_stored_agrees_on_corrupted_bytes(
        input in arb_valid(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let event = registry().validate_reference(&input, &ctx()).unwrap();
        let mut bytes = serde_json::to_vec(&event).unwrap();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        same_decode(registry(), &bytes)?;
    }

    #[test]
    fn decode_stored_agrees_on_duplicate_and_reordered_keys(input in arb_valid(), dup in 0usize..7) {
        let event = registry().validate_reference(&input, &ctx()).unwrap();
        let Value::Object(stored) = serde_json::to_value(&event).unwrap() else { unreachable!() };
        let mut entries: Vec<String> =
            stored.iter().map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v)).collect();
        entries.reverse();
        let again = entries[dup % entries.len()].clone();
        entries.push(again);
        same_decode(registry(), format!("{{{}}}", entries.join(",")).as_bytes())?;
    }

    #[test]
    fn decode_stored_agrees_on_any_json(value in arb_json()) {
        same_decode(registry(), &serde_json::to_vec(&value).unwrap())?;
    }

    #[test]
    fn validate_agrees_on_valid_and_mutated_inputs(
        input in arb_valid(),
        edits in prop::collection::vec((prop::sample::select(FIELDS), prop::option::of(nasty_value())), 0..4),
    ) {
        let mut input = with_id(input);
        for (k, v) in edits {
            let data = input["data"].as_object_mut().unwrap();
            match v {
                Some(v) => data.insert(k.to_owned(), v),
                None => data.remove(k),
            };
        }
        same_validate(registry(), &input)?;
    }

    #[test]
    fn probe_schema_agrees(data in arb_probe_data(), version in 1u32..=2, t in arb_timestamp()) {
        let reg = probe_registry();
        let stored = json!({"event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "event_type": "probe",
            "schema_version": version, "occurred_at": t, "received_at": "2024-05-01T12:00:00Z",
            "producer": "p", "data": data});
        same_decode(reg, &record_bytes(stored.as_object().unwrap(), false))?;
        same_decode(reg, &record_bytes(stored.as_object().unwrap(), true))?;
        let input = json!({"event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "event_type": "probe",
            "schema_version": version, "occurred_at": "2024-05-01T11:00:00Z", "data": data});
        same_validate(reg, &input)?;
    }

    /// The event-time range is one rule: ingest (`validate`), the stored-record decoders (fast,
    /// reference and the view) accept exactly the `occurred_at` that `EventTimeRange::contains`
    /// accepts, for any instant from year 0 to 9999 and any range.
    #[test]
    fn the_event_time_range_is_enforced_identically_everywhere(
        occurred in -62_167_219_200i64..253_402_300_799,
        nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
        received in 946_684_800i64..1_900_000_000,
        near in prop::option::of(-400i64..400),
        start_day in 0i64..25_000,
        max_future in 0i64..1_000,
    ) {
        // Half of the cases sit within seconds of the received time, the future cut-off's edge.
        let occurred = near.map_or(occurred, |d| received + max_future + d);
        let lake_start = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(start_day as u64);
        let range = sluice_schemas::EventTimeRange { lake_start, max_future: chrono::TimeDelta::seconds(max_future) };
        let reg = registry().clone().with_event_time(range);
        let at = |secs: i64, nanos: u32| chrono::DateTime::<chrono::Utc>::from_timestamp(secs, nanos).unwrap();
        let (occurred_at, received_at) = (at(occurred, nanos / 1000 * 1000), at(received, 0));
        let expected = range.contains(occurred_at, received_at);
        let stamp = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let stored = json!({"event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "event_type": "api_call",
            "schema_version": 1, "occurred_at": stamp(occurred_at), "received_at": stamp(received_at),
            "producer": "p", "data": {"client_id": "c", "latency_ms": 1.5, "route": "/r", "status": 200}});
        let bytes = record_bytes(stored.as_object().unwrap(), false);
        same_decode(&reg, &bytes)?;
        prop_assert_eq!(reg.decode_stored(&bytes).is_ok(), expected, "{}", String::from_utf8_lossy(&bytes));
        let mut values = ViewValues::default();
        prop_assert_eq!(reg.decode_stored_view(&bytes, &mut values).is_some(), expected);
        let input = json!({"event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "event_type": "api_call",
            "occurred_at": stamp(occurred_at), "data": stored["data"].clone()});
        let ctx = sluice_schemas::IngestContext::new("p", received_at);
        prop_assert_eq!(reg.validate(&input, &ctx).is_ok(), expected);
        prop_assert_eq!(reg.validate_reference(&input, &ctx).is_ok(), expected);
    }
}

// Nested, nullable, array and date-time data: `order_placed` (shipped) and `nest` (probe).

/// Slots of `nest` v1: its 9 properties, `meta`'s 3, `opt`'s 1, `meta/inner`'s 4, `opt/deep`'s 1.
const NEST_SLOTS: usize = 18;

/// A schema with every shape of the subset: objects in objects (required and optional), arrays
/// of integers, of nullable strings, of date-times and of objects holding objects and arrays,
/// nullable scalars of each type, roles two levels down.
fn nest_schema() -> Value {
    let object = |required: Value, properties: Value| json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties});
    let mut schema = object(
        json!(["region", "meta", "counts"]),
        json!({
            "region": {"type": "string", "pattern": "^[A-Z]{2}$"},
            "meta": object(json!(["inner", "weight"]), json!({
                "weight": {"type": "number", "minimum": 0, "maximum": 100},
                "note": {"type": ["string", "null"], "maxLength": 4},
                "inner": object(json!(["kind", "id"]), json!({
                    "kind": {"type": "string", "enum": ["a", "b"]},
                    "id": {"type": "integer", "minimum": -5, "maximum": 1000},
                    "level": {"type": ["integer", "null"], "minimum": 0, "exclusiveMaximum": 10},
                    "seen": {"type": "string", "format": "date-time"},
                })),
            })),
            "counts": {"type": "array", "maxItems": 3, "items": {"type": "integer", "minimum": -5, "maximum": 1000}},
            "tags": {"type": "array", "minItems": 1,
                "items": {"type": ["string", "null"], "minLength": 1, "maxLength": 2}},
            "times": {"type": "array", "items": {"type": "string", "format": "date-time"}},
            "ratio": {"type": ["null", "number"], "exclusiveMinimum": 0, "maximum": 1.5},
            "flag": {"type": ["boolean", "null"]},
            "parts": {"type": "array", "maxItems": 2, "items": object(json!(["n"]), json!({
                "n": {"type": "integer"},
                "sub": object(json!([]), json!({"x": {"type": ["number", "null"]}})),
                "list": {"type": "array", "items": {"type": "boolean"}},
            }))},
            "opt": object(json!([]), json!({
                "deep": object(json!(["v"]), json!({"v": {"type": "string", "maxLength": 3}})),
            })),
        }),
    );
    let keywords = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "x-sluice-event-type": "nest",
        "x-sluice-version": 1, "x-sluice-dimensions": ["meta/inner/kind", "region"],
        "x-sluice-measure": "meta/weight", "x-sluice-identity": "meta/inner/id", "description": "probe"});
    schema.as_object_mut().unwrap().extend(keywords.as_object().unwrap().clone());
    schema
}

/// Valid `nest` data with every field present.
fn full_nest() -> Value {
    json!({"region": "US", "counts": [1, 2], "tags": ["x", null], "times": ["2024-05-01T12:00:00.500Z"],
        "ratio": null, "flag": true,
        "meta": {"weight": 1.5, "note": null,
            "inner": {"kind": "a", "id": 7, "level": null, "seen": "2024-05-01T12:00:00Z"}},
        "parts": [{"n": 1, "sub": {"x": null}, "list": [true]}], "opt": {"deep": {"v": "q"}}})
}

/// Valid `nest` data with only the required fields.
fn minimal_nest() -> Value {
    json!({"region": "DE", "counts": [], "meta": {"weight": 0, "inner": {"kind": "b", "id": -5}}})
}

/// A stored `nest` record holding `data`.
fn nest_record(data: Value) -> Value {
    json!({"event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "event_type": "nest", "schema_version": 1,
        "occurred_at": "2024-05-01T11:00:00Z", "received_at": "2024-05-01T12:00:00Z", "producer": "p", "data": data})
}

const NEST_POINTERS: &[&str] = &[
    "/region",
    "/meta",
    "/meta/weight",
    "/meta/note",
    "/meta/inner",
    "/meta/inner/kind",
    "/meta/inner/id",
    "/meta/inner/level",
    "/meta/inner/seen",
    "/meta/inner/extra",
    "/meta/extra",
    "/counts",
    "/counts/0",
    "/counts/3",
    "/tags",
    "/tags/0",
    "/tags/1",
    "/times",
    "/times/0",
    "/times/1",
    "/ratio",
    "/flag",
    "/parts",
    "/parts/0",
    "/parts/0/n",
    "/parts/0/sub",
    "/parts/0/sub/x",
    "/parts/0/list",
    "/parts/0/list/0",
    "/parts/0/extra",
    "/parts/2",
    "/opt",
    "/opt/deep",
    "/opt/deep/v",
    "/extra",
];

const ORDER_POINTERS: &[&str] = &[
    "/order_id",
    "/user_id",
    "/context",
    "/context/country",
    "/context/channel",
    "/context/app_version",
    "/context/extra",
    "/items",
    "/items/0",
    "/items/0/sku",
    "/items/0/qty",
    "/items/0/unit_price",
    "/items/0/extra",
    "/items/1",
    "/items/1/qty",
    "/items/7",
    "/coupon",
    "/placed_at",
    "/total",
    "/extra",
];

/// Values on the edges of `order_placed` and `nest`, nested shapes among them.
fn nested_value() -> impl Strategy<Value = Value> {
    let items = |n: usize| Value::Array(vec![json!({"sku": "s", "qty": 1, "unit_price": 1}); n]);
    prop::sample::select(vec![
        json!(null),
        json!(true),
        json!(0),
        json!(1),
        json!(9),
        json!(10),
        json!(-5),
        json!(-6),
        json!(1000),
        json!(1001),
        json!(10_000),
        json!(10_001),
        json!(3.0),
        json!(0.5),
        json!(1.5),
        json!(1.5000000000000002),
        json!(100),
        json!(100.5),
        json!(1e6),
        json!(1e8),
        json!(100_000_000.5),
        json!(""),
        json!("a"),
        json!("b"),
        json!("ab"),
        json!("abc"),
        json!("abcd"),
        json!("abcde"),
        json!("US"),
        json!("us"),
        json!("web"),
        json!("pos"),
        json!("tv"),
        json!("x\"y"),
        json!("é"),
        json!("2024-05-01T12:00:00Z"),
        json!("2024-05-01T12:00:00.500Z"),
        json!("2024-05-01T12:00:00.5Z"),
        json!("2024-05-01T14:00:00+02:00"),
        json!([]),
        json!([null]),
        json!([1, 2, 3]),
        json!([1, 2, 3, 4]),
        json!(["x", "yz"]),
        json!(["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123456Z"]),
        json!([true, false]),
        json!([{"n": 1}, {"n": 2, "sub": {}}]),
        json!([{"n": 1}, {"n": 2}, {"n": 3}]),
        json!({}),
        json!({"n": 1}),
        json!({"n": 1, "list": [1]}),
        json!({"x": 1.5}),
        json!({"x": null}),
        json!({"v": "q"}),
        json!({"deep": {"v": "xyz"}}),
        json!({"deep": {}}),
        json!({"kind": "a", "id": 1}),
        json!({"kind": "c", "id": 1}),
        json!({"weight": 1, "inner": {"kind": "a", "id": 1}}),
        json!({"country": "US", "channel": "web"}),
        json!({"country": "US", "channel": "web", "app_version": ""}),
        json!({"sku": "a", "qty": 1, "unit_price": 0}),
        json!({"sku": "a", "qty": 0, "unit_price": 0}),
        items(100),
        items(101),
    ])
}

/// Sets (`Some`) or removes (`None`) the value at `pointer` in `data`: an object's member, or
/// an array's element (past its end: appended).
fn edit_at(data: &mut Value, pointer: &str, value: Option<Value>) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match (data.pointer_mut(parent), value) {
        (Some(Value::Object(map)), Some(v)) => {
            map.insert(key.to_owned(), v);
        }
        (Some(Value::Object(map)), None) => {
            map.remove(key);
        }
        // An edit may have turned the parent into an array: a name is then no index.
        (Some(Value::Array(items)), v) => {
            let Ok(i) = key.parse::<usize>() else { return };
            match v {
                Some(v) if i < items.len() => items[i] = v,
                Some(v) => items.push(v),
                None if i < items.len() => {
                    items.remove(i);
                }
                None => {}
            }
        }
        _ => {}
    }
}

/// Edits at `pointers`: mostly to edge values, some to any value or a timestamp, some removals.
fn arb_nested_edits(pointers: &'static [&'static str]) -> impl Strategy<Value = Vec<(&'static str, Option<Value>)>> {
    let value = prop_oneof![4 => nested_value(), 2 => nasty_value(), 2 => arb_timestamp(), 1 => arb_json()];
    prop::collection::vec((prop::sample::select(pointers), prop::option::weighted(0.8, value)), 0..4)
}

/// How the nested objects of a stored record's `data` (not `data` itself) are written.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// As `serde_json` writes them: keys in name order, compact.
    Serde,
    /// Keys in reverse name order.
    Reversed,
    /// The first member repeated at the end.
    Repeated,
    /// A space after each comma.
    Spaced,
}

/// The record's JSON in `Event` declaration order (as [`record_bytes`]), nested objects of
/// `data` written as `layout` says.
fn record_with_layout(stored: &Map<String, Value>, layout: Layout) -> Vec<u8> {
    fn write(v: &Value, nested: bool, layout: Layout, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut members: Vec<String> = map
                    .iter()
                    .map(|(k, v)| {
                        let mut member = format!("{}:", Value::from(k.as_str()));
                        write(v, true, layout, &mut member);
                        member
                    })
                    .collect();
                let mut separator = ",";
                match (nested, layout) {
                    (false, _) | (true, Layout::Serde) => {}
                    (true, Layout::Reversed) => members.reverse(),
                    (true, Layout::Repeated) => members.extend(members.first().cloned()),
                    (true, Layout::Spaced) => separator = ", ",
                }
                out.push('{');
                out.push_str(&members.join(separator));
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, true, layout, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut stored = stored.clone();
    let data = stored.remove("data");
    let mut bytes = record_bytes(&stored, false);
    if let Some(data) = data {
        let mut text = String::from(if stored.is_empty() { "\"data\":" } else { ",\"data\":" });
        write(&data, false, layout, &mut text);
        bytes.pop();
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'}');
    }
    bytes
}

/// The placement time of an order as a producer may write it: any offset, any precision.
fn arb_placed_at() -> impl Strategy<Value = String> {
    let nanos = prop_oneof![Just(0u32), 0u32..1_000_000_000, (0u32..1000).prop_map(|n| n * 1_000_000)];
    (946_684_800i64..1_900_000_000, nanos, -14 * 60i32..=14 * 60, any::<bool>()).prop_map(|(secs, nanos, offset, z)| {
        let t = DateTime::from_timestamp(secs, nanos).unwrap();
        t.with_timezone(&FixedOffset::east_opt(offset * 60).unwrap()).to_rfc3339_opts(SecondsFormat::AutoSi, z)
    })
}

/// Valid `order_placed` producer events (with an event_id).
fn arb_order_placed() -> impl Strategy<Value = Value> {
    let price = prop_oneof![0.0f64..1e6, Just(0.0), Just(1e6), (0u32..100).prop_map(f64::from)];
    let item = ("\\PC{1,8}", 1i64..=10_000, any::<bool>(), price).prop_map(|(sku, qty, as_float, price)| {
        let qty = if as_float { json!(qty as f64) } else { json!(qty) };
        json!({"sku": sku, "qty": qty, "unit_price": price})
    });
    let total = prop_oneof![
        (0.0f64..1e8).prop_map(Value::from),
        Just(json!(1e8)),
        (0i64..1000).prop_map(Value::from),
        (0u32..1000).prop_map(|n| Value::from(f64::from(n) / 4.0)),
    ];
    (
        ("\\PC{1,12}", "\\PC{1,12}", prop::option::of("\\PC{1,8}")),
        ("[A-Z]{2}", prop::sample::select(vec!["web", "ios", "android", "pos"]), prop::option::of("\\PC{1,8}")),
        prop::collection::vec(item, 1..5),
        (arb_placed_at(), total, prop::sample::select(vec!["2024-05-01T11:59:00Z", "2024-05-01T13:59:59.999+02:00"])),
    )
        .prop_map(|((order, user, coupon), (country, channel, app), items, (placed_at, total, occurred_at))| {
            let mut context = json!({"country": country, "channel": channel});
            if let Some(app) = app {
                context["app_version"] = json!(app);
            }
            json!({"event_id": "0190a0c4-5b7e-7cc3-8f1a-3b2c1d0e9f8a", "event_type": "order_placed",
                "occurred_at": occurred_at, "data": {"order_id": order, "user_id": user, "context": context,
                "items": items, "coupon": coupon, "placed_at": placed_at, "total": total}})
        })
}

/// A valid stored `order_placed` record.
fn stored_order_fixture() -> Value {
    json!({"event_id": "e", "event_type": "order_placed", "schema_version": 1,
        "occurred_at": "2024-05-01T11:00:00Z", "received_at": "2024-05-01T12:00:00Z", "producer": "p",
        "data": {"context": {"app_version": "1.2", "channel": "web", "country": "US"}, "coupon": null,
            "items": [{"qty": 2, "sku": "A-1", "unit_price": 9.5}], "order_id": "o",
            "placed_at": "2024-05-01T12:00:00.250Z", "total": 19, "user_id": "u"}})
}

/// The stored record of a valid `order_placed` event, as a JSON object.
fn stored_order(input: &Value) -> Map<String, Value> {
    let event = registry().validate_reference(input, &ctx()).unwrap();
    let Value::Object(stored) = serde_json::to_value(&event).unwrap() else { unreachable!() };
    stored
}

#[test]
fn nested_records_take_the_view_where_proven() {
    let reg = probe_registry();
    for data in [full_nest(), minimal_nest()] {
        let bytes = record_bytes(nest_record(data.clone()).as_object().unwrap(), false);
        assert!(view_agrees(reg, &bytes), "{}", String::from_utf8_lossy(&bytes));
        let mut values = ViewValues::default();
        let view = reg.decode_stored_view(&bytes, &mut values).unwrap();
        // Roles two levels down, read from their slots.
        let dims: Vec<_> = view.dimensions().collect();
        let kind = data["meta"]["inner"]["kind"].as_str().unwrap();
        let region = data["region"].as_str().unwrap();
        assert_eq!(dims, [Some(StoredValue::String(kind.into())), Some(StoredValue::String(region.into()))]);
        assert_eq!(view.identity(), data["meta"]["inner"]["id"].as_i64().map(StoredValue::Integer));
        assert!(matches!(view.measure(), Some(StoredValue::Integer(_) | StoredValue::Number(_))));
        // Nested objects and arrays are the record's own text.
        let fields = view.schema.view_fields().unwrap();
        for (slot, value) in view.values().iter().enumerate() {
            let pointer = format!("/{}", fields[slot]);
            match value {
                Some(StoredValue::Object(text) | StoredValue::Array(text)) => {
                    assert_eq!(text.as_str(), data.pointer(&pointer).unwrap().to_string(), "{pointer}");
                }
                Some(StoredValue::Timestamp(_)) => assert_eq!(fields[slot], "meta/inner/seen"),
                Some(StoredValue::Null) => assert_eq!(data.pointer(&pointer), Some(&Value::Null), "{pointer}"),
                Some(_) => {}
                None => assert_eq!(data.pointer(&pointer), None, "{pointer}"),
            }
        }
    }
    let order = |f: &dyn Fn(&mut Value)| {
        let mut record = stored_order_fixture();
        f(&mut record["data"]);
        record_bytes(record.as_object().unwrap(), false)
    };
    let accepted = |bytes: &[u8]| registry().decode_stored_reference(bytes).is_ok();
    let plain = order(&|_| {});
    assert!(accepted(&plain) && view_agrees(registry(), &plain), "the canonical record is viewed");
    // Valid, and viewed.
    for edit in [
        &|d: &mut Value| d["coupon"] = json!("SAVE"),
        &|d: &mut Value| d["placed_at"] = json!("2024-05-01T12:00:00Z"),
        &|d: &mut Value| d["placed_at"] = json!("2024-05-01T12:00:00.123456789Z"),
        &|d: &mut Value| d["items"][0]["unit_price"] = json!(0),
        &|d: &mut Value| {
            d["context"].as_object_mut().unwrap().remove("app_version");
        },
        &|d: &mut Value| d["items"] = Value::Array(vec![d["items"][0].clone(); 100]),
    ] as [&dyn Fn(&mut Value); 6]
    {
        let bytes = order(edit);
        assert!(accepted(&bytes) && view_agrees(registry(), &bytes), "{}", String::from_utf8_lossy(&bytes));
    }
    // Valid, but not proven by the view (the reference decides).
    for edit in [
        &|d: &mut Value| d["placed_at"] = json!("2024-05-01T12:00:00.25Z"),
        &|d: &mut Value| d["placed_at"] = json!("2024-05-01T14:00:00+02:00"),
        &|d: &mut Value| d["items"][0]["qty"] = json!(2.0),
        &|d: &mut Value| d["coupon"] = json!("a\"b"),
    ] as [&dyn Fn(&mut Value); 4]
    {
        let bytes = order(edit);
        assert!(accepted(&bytes) && !view_agrees(registry(), &bytes), "{}", String::from_utf8_lossy(&bytes));
    }
    for layout in [Layout::Reversed, Layout::Repeated, Layout::Spaced] {
        let stored: Map<String, Value> = serde_json::from_slice(&plain).unwrap();
        let bytes = record_with_layout(&stored, layout);
        assert!(accepted(&bytes) && !view_agrees(registry(), &bytes), "{}", String::from_utf8_lossy(&bytes));
    }
    // Invalid: never viewed.
    for edit in [
        &|d: &mut Value| d["items"] = json!([]),
        &|d: &mut Value| d["items"] = Value::Array(vec![d["items"][0].clone(); 101]),
        &|d: &mut Value| d["items"][0]["qty"] = json!(0),
        &|d: &mut Value| d["items"][0]["extra"] = json!(0),
        &|d: &mut Value| d["context"]["channel"] = json!("tv"),
        &|d: &mut Value| d["context"]["app_version"] = json!(null),
        &|d: &mut Value| d["coupon"] = json!(""),
        &|d: &mut Value| d["placed_at"] = json!("2024-05-01T12:00:00"),
        &|d: &mut Value| d["placed_at"] = json!(null),
    ] as [&dyn Fn(&mut Value); 9]
    {
        let bytes = order(edit);
        assert!(!accepted(&bytes) && !view_agrees(registry(), &bytes), "{}", String::from_utf8_lossy(&bytes));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Valid `order_placed` events: both validators agree, the stored record decodes to the
    /// event on every path, and (without escapes) takes the view, roles read from `context`.
    #[test]
    fn valid_order_placed_records_take_the_view(input in arb_order_placed()) {
        same_validate(registry(), &input)?;
        let event = registry().validate_reference(&input, &ctx()).unwrap();
        let bytes = serde_json::to_vec(&event).unwrap();
        prop_assert_eq!(registry().decode_stored(&bytes), Ok(event.clone()));
        same_decode(registry(), &bytes)?;
        if !bytes.contains(&b'\\') {
            let mut values = ViewValues::default();
            let view = registry().decode_stored_view(&bytes, &mut values);
            prop_assert!(view.is_some(), "{}", String::from_utf8_lossy(&bytes));
            let view = view.unwrap();
            prop_assert_eq!(view.to_event(), Some(event.clone()));
            fn text(v: &Value) -> Option<StoredValue<'_>> {
                v.as_str().map(|s| StoredValue::String(s.into()))
            }
            let dims: Vec<_> = view.dimensions().collect();
            prop_assert_eq!(dims, vec![text(&event.data["context"]["country"]), text(&event.data["context"]["channel"])]);
            prop_assert_eq!(view.identity(), text(&event.data["user_id"]));
            let total = match view.measure() {
                Some(StoredValue::Number(x)) => Some(x),
                Some(StoredValue::Integer(i)) => Some(i as f64),
                _ => None,
            };
            prop_assert_eq!(total, event.data["total"].as_f64());
        }
    }

    #[test]
    fn order_placed_agrees_on_nested_edits(
        input in arb_order_placed(),
        edits in arb_nested_edits(ORDER_POINTERS),
        sorted in any::<bool>(),
        layout in prop::sample::select(vec![Layout::Serde, Layout::Reversed, Layout::Repeated, Layout::Spaced]),
    ) {
        let mut stored = stored_order(&input);
        let mut input = input;
        for (pointer, value) in edits {
            edit_at(&mut stored["data"], pointer, value.clone());
            edit_at(&mut input["data"], pointer, value);
        }
        same_decode(registry(), &record_bytes(&stored, sorted))?;
        same_decode(registry(), &record_with_layout(&stored, layout))?;
        same_validate(registry(), &input)?;
    }

    #[test]
    fn order_placed_agrees_on_corrupted_bytes(
        input in arb_order_placed(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = record_bytes(&stored_order(&input), false);
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        same_decode(registry(), &bytes)?;
    }

    /// Any date-time text in each date-time field of a valid record: the view proves only the
    /// canonical form, and agrees with the reference on all of them.
    #[test]
    fn stored_date_times_agree(t in arb_timestamp(), canonical in arb_placed_at()) {
        let utc = DateTime::parse_from_rfc3339(&canonical).unwrap().with_timezone(&chrono::Utc);
        let canonical = Value::from(utc.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        for value in [t, canonical] {
            let mut order = stored_order_fixture();
            edit_at(&mut order["data"], "/placed_at", Some(value.clone()));
            same_decode(registry(), &record_bytes(order.as_object().unwrap(), false))?;
            for pointer in ["/meta/inner/seen", "/times/0", "/times/1"] {
                let mut data = full_nest();
                edit_at(&mut data, pointer, Some(value.clone()));
                same_decode(probe_registry(), &record_bytes(nest_record(data).as_object().unwrap(), false))?;
            }
        }
    }

    /// Arrays of every length around their bounds (`items`: 1..=100, `counts`: ..=3, `tags`:
    /// 1.., `parts`: ..=2), each element valid.
    #[test]
    fn array_lengths_agree(n in prop_oneof![0usize..5, 98usize..103]) {
        let mut order = stored_order_fixture();
        let item = order["data"]["items"][0].clone();
        order["data"]["items"] = Value::Array(vec![item; n]);
        same_decode(registry(), &record_bytes(order.as_object().unwrap(), false))?;
        let mut data = full_nest();
        data["counts"] = Value::Array((0..n as i64).collect::<Vec<_>>().into_iter().map(Value::from).collect());
        data["tags"] = Value::Array(vec![json!("t"); n]);
        data["parts"] = Value::Array(vec![json!({"n": 1}); n]);
        same_decode(probe_registry(), &record_bytes(nest_record(data).as_object().unwrap(), false))?;
    }

    #[test]
    fn nest_schema_agrees(
        full in any::<bool>(),
        edits in arb_nested_edits(NEST_POINTERS),
        layout in prop::sample::select(vec![Layout::Serde, Layout::Reversed, Layout::Repeated, Layout::Spaced]),
    ) {
        let reg = probe_registry();
        let mut data = if full { full_nest() } else { minimal_nest() };
        for (pointer, value) in edits {
            edit_at(&mut data, pointer, value);
        }
        let stored = nest_record(data.clone());
        let stored = stored.as_object().unwrap();
        same_decode(reg, &record_bytes(stored, false))?;
        same_decode(reg, &record_bytes(stored, true))?;
        same_decode(reg, &record_with_layout(stored, layout))?;
        let input = json!({"event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "event_type": "nest",
            "occurred_at": "2024-05-01T11:00:00Z", "data": data});
        same_validate(reg, &input)?;
    }
}
