//! Differential tests of the lake writer's allocation-free path (`Registry::decode_stored_view`
//! straight into the Arrow builders) against the reference (`decode_stored_reference` ->
//! `Event` -> `RowsBuilder::append`): the same Parquet bytes and the same invalid records, on
//! generated batches, on nested `order_placed` events among them, on every invalid case of the
//! schemas crate, and on mutated records (flat and nested).

use aws_lambda_events::event::kinesis::KinesisEvent;
use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_schemas::ViewValues;
use sluice_sinks::prepare::{PreparedLakeBatch, group_payload_fused, prepare_reference};
use sluice_sinks::{LakeTables, prepare, prepare_payload};
use sluice_stream::kinesis_input::{KinesisBatch, KinesisInput};

use crate::support;

fn tables() -> LakeTables {
    LakeTables::new(support::registry())
}

/// The files (path, rows, bytes) of a prepared batch.
fn files(p: &PreparedLakeBatch) -> Vec<(String, usize, bytes::Bytes)> {
    p.files.iter().map(|f| (f.path.clone(), f.rows, f.bytes.clone())).collect()
}

/// `prepare` and `prepare_reference` agree exactly on `input`, and so does the Lambda's fused
/// path (`prepare_payload` over the raw invocation payload); returns the prepared batch.
pub fn same_prepare(tables: &LakeTables, input: &KinesisEvent) -> PreparedLakeBatch {
    let batch = KinesisBatch::from(input);
    let (fast, fast_failed) = prepare(tables, &batch);
    let (reference, reference_failed) = prepare_reference(tables, &batch);
    assert!(fast_failed.is_empty() && reference_failed.is_empty());
    assert_eq!(files(&fast), files(&reference), "same files, byte for byte");
    assert_eq!(fast.invalid, reference.invalid, "same invalid records and reasons");
    assert_eq!(fast.records, reference.records);
    let raw = serde_json::to_vec(input).unwrap();
    let (lambda, lambda_failed) = prepare_payload(tables, &raw).unwrap();
    assert!(lambda_failed.is_empty());
    assert_eq!(files(&lambda), files(&reference), "the raw payload path writes the same files, byte for byte");
    assert_eq!(lambda.invalid, reference.invalid, "the raw payload path rejects the same records the same way");
    assert_eq!(lambda.records, reference.records);
    let (fused, fused_failed) = group_payload_fused(tables, &raw).unwrap().encode();
    assert!(fused_failed.is_empty());
    assert_eq!(files(&fused), files(&reference), "the fused path writes the same files, byte for byte");
    assert_eq!(fused.invalid, reference.invalid, "the fused path rejects the same records the same way");
    assert_eq!(fused.records, reference.records);
    fast
}

/// The record's JSON with the envelope keys in `Event` declaration order (the layout the view
/// parses; a `Value`'s own order is alphabetical, which only the general decoder reads).
fn canonical_bytes(value: &Value) -> Vec<u8> {
    const ORDER: &[&str] =
        &["event_id", "event_type", "schema_version", "occurred_at", "received_at", "producer", "data"];
    let Value::Object(obj) = value else { return serde_json::to_vec(value).unwrap() };
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.sort_by_key(|k| ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()));
    let members: Vec<String> =
        keys.into_iter().map(|k| format!("{}:{}", Value::from(k.as_str()), obj[k.as_str()])).collect();
    format!("{{{}}}", members.join(",")).into_bytes()
}

/// A batch holding `payloads` as records of [`support::SHARD`].
fn input_of(payloads: Vec<Vec<u8>>) -> KinesisEvent {
    sluice_testkit::generate::kinesis_event(support::SHARD, 0, payloads, support::now())
}

#[test]
fn generated_batches_take_the_view_and_match_the_reference() {
    let tables = tables();
    let events = support::events(5, 2_000);
    let input = support::event_batch(&events, 0);
    let mut values = ViewValues::default();
    let viewed = input
        .records
        .iter()
        .filter(|r| tables.registry().decode_stored_view(&r.kinesis.data, &mut values).is_some())
        .count();
    assert_eq!(viewed, events.len(), "generated events all take the allocation-free path");
    let prepared = same_prepare(&tables, &input);
    assert_eq!(prepared.files.iter().map(|f| f.rows).sum::<usize>(), events.len());
}

/// Nested events (which no view appends: they take `Registry::decode_stored` ->
/// `RowsBuilder::append`) among flat ones: the same files as the reference.
#[test]
fn nested_events_among_flat_ones_match_the_reference() {
    let tables = tables();
    let flat = support::events(15, 900);
    let orders = support::order_events(15, 450);
    let mut mixed = Vec::new();
    for (i, event) in flat.iter().enumerate() {
        mixed.push(event.clone());
        if i % 2 == 1 {
            mixed.push(orders[i / 2].clone());
        }
    }
    let prepared = same_prepare(&tables, &support::event_batch(&mixed, 0));
    assert!(prepared.invalid.is_empty(), "{:?}", prepared.invalid);
    let rows = |t: &str| prepared.files.iter().filter(|f| f.partition.event_type == t).map(|f| f.rows).sum::<usize>();
    assert_eq!(rows("order_placed"), orders.len());
    assert_eq!(prepared.files.iter().map(|f| f.rows).sum::<usize>(), mixed.len());
}

#[test]
fn every_invalid_case_of_the_schemas_crate_is_rejected_the_same_way() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/tests/data/invalid");
    let valid = support::events(6, 1)[0].clone();
    let mut payloads = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        // The case's fields over a valid stored event (as the schemas crate's own test does).
        let mut stored = serde_json::to_value(&valid).unwrap();
        if let Some(input) = case["input"].as_object() {
            for (k, v) in input {
                stored[k.as_str()] = v.clone();
            }
            if input.contains_key("event_type") && !input.contains_key("schema_version") {
                stored["schema_version"] = json!(1);
            }
        }
        payloads.push(canonical_bytes(&stored));
        payloads.push(serde_json::to_vec(&case["input"]).unwrap());
    }
    assert!(payloads.len() >= 60);
    // Interleaved with valid records, so groups are open when the bad ones arrive.
    let mut mixed = Vec::new();
    for (i, p) in payloads.into_iter().enumerate() {
        mixed.push(p);
        mixed.push(sluice_testkit::generate::record_bytes(&support::events(100 + i as u64, 1)[0]));
    }
    let prepared = same_prepare(&tables(), &input_of(mixed));
    assert!(prepared.invalid.len() >= 50, "{}", prepared.invalid.len());
}

/// Edits that keep a record valid, break it, or move it off the canonical layout.
fn arb_edit() -> impl Strategy<Value = (String, Value)> {
    let keys = prop::sample::select(vec![
        "/data/duration_ms",
        "/data/latency_ms",
        "/data/amount",
        "/data/status",
        "/data/country",
        "/data/device",
        "/data/user_id",
        "/data/app_version",
        "/data/referrer",
        "/data/extra",
        "/data/context",
        "/data/context/country",
        "/data/context/app_version",
        "/data/items",
        "/data/items/0/qty",
        "/data/items/0/sku",
        "/data/items/1/unit_price",
        "/data/coupon",
        "/data/placed_at",
        "/schema_version",
        "/occurred_at",
        "/event_type",
        "/producer",
    ]);
    let values = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-5i64..700).prop_map(Value::from),
        (-5.0f64..700.0).prop_map(Value::from),
        (-5i64..700).prop_map(|n| Value::from(n as f64)),
        prop::sample::select(vec![
            json!(0),
            json!(-0.0),
            json!(1e300),
            json!(9_007_199_254_740_993u64),
            json!(u64::MAX),
            json!("US"),
            json!("us"),
            json!("web"),
            json!("Web"),
            json!(""),
            json!("🦀"),
            json!("a\"b"),
            json!("2026-01-01T00:59:59.999999Z"),
            json!("2026-01-01T01:00:00+01:00"),
            json!("2026-01-01T00:00:00.123456789Z"),
            json!(1),
            json!(2),
            json!(3),
            json!("purchase"),
            json!([]),
            json!({}),
            json!({"country": "DE", "channel": "web"}),
            json!([{"sku": "SKU-1", "qty": 2.0, "unit_price": 3}]),
            json!([{"sku": "SKU-1", "qty": "2", "unit_price": 3}]),
            json!("order_placed"),
        ]),
        "\\PC{0,5}".prop_map(Value::from),
    ];
    (keys.prop_map(str::to_owned), values)
}

/// `data` fields `mutated_and_corrupted_records_agree` removes (flat and nested types').
const REMOVABLE: &[&str] = &["country", "user_id", "referrer", "status", "coupon", "context", "placed_at"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn mutated_and_corrupted_records_agree(
        seed in 0u64..1_000,
        edits in prop::collection::vec((0usize..60, arb_edit()), 0..16),
        corruptions in prop::collection::vec((0usize..60, any::<prop::sample::Index>(), any::<u8>()), 0..4),
        remove in prop::collection::vec((0usize..60, prop::sample::select(REMOVABLE.to_vec())), 0..4),
    ) {
        // 40 flat events, then 20 nested ones.
        let mut events = support::events(seed, 40);
        events.extend(support::order_events(seed, 20));
        let mut values: Vec<Value> = events.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
        prop_assert_eq!(canonical_bytes(&values[0]), sluice_testkit::generate::record_bytes(&events[0]));
        for (i, (pointer, value)) in edits {
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            if let Some(Value::Object(obj)) = values[i].pointer_mut(parent) {
                obj.insert(key.to_owned(), value);
            }
        }
        for (i, key) in remove {
            if let Some(Value::Object(data)) = values[i].get_mut("data") {
                data.remove(key);
            }
        }
        let mut payloads: Vec<Vec<u8>> = values.iter().map(canonical_bytes).collect();

        for (i, at, byte) in corruptions {
            let p = &mut payloads[i];
            let at = at.index(p.len());
            p[at] = byte;
        }
        same_prepare(&tables(), &input_of(payloads));
    }
}

#[test]
fn the_raw_payload_parse_prepares_what_the_owned_input_does() {
    // The Lambda path (raw invocation bytes -> KinesisBatch::parse, data in one shared buffer)
    // and the ESM path (a view of an owned batch) give the same files and invalid records.
    let tables = tables();
    let events = support::events(9, 1_500);
    let mut payloads: Vec<Vec<u8>> = events.iter().map(sluice_testkit::generate::record_bytes).collect();
    payloads[7] = b"{\"not\":\"an event\"}".to_vec();
    let event = sluice_testkit::generate::kinesis_event(support::SHARD, 0, payloads, support::now());
    let raw = serde_json::to_vec(&event).unwrap();
    let parsed = KinesisBatch::parse(&raw).unwrap();
    let (from_raw, failed) = prepare(&tables, &parsed);
    assert!(failed.is_empty());
    let reference = same_prepare(&tables, &event);
    let owned = KinesisInput::from(event);
    let (from_owned, failed) = prepare(&tables, &KinesisBatch::from(&owned));
    assert!(failed.is_empty());
    assert_eq!(files(&from_owned), files(&reference));
    assert_eq!(from_owned.invalid, reference.invalid);
    assert_eq!(files(&from_raw), files(&reference));
    assert_eq!(from_raw.invalid, reference.invalid);
    assert_eq!(from_raw.invalid.len(), 1);
}

/// Records of several shards, records whose eventID names no shard, and sequence numbers that
/// cannot name a file, interleaved: the shard checks the preparer caches decide as the full
/// check does, in every path.
#[test]
fn shards_and_sequence_numbers_are_checked_the_same_way_in_every_path() {
    let events = support::events(21, 60);
    let mut event = support::event_batch(&events, 0);
    for (i, record) in event.records.iter_mut().enumerate() {
        let seq = record.kinesis.sequence_number.clone();
        match i % 12 {
            3 => record.event_id = Some(format!("shardId-000000000007:{seq}")),
            4 => record.event_id = Some(format!("shardId-000000000007:{seq}")),
            5 => record.event_id = None,
            6 => record.event_id = Some(seq.clone()),
            7 => record.event_id = Some(format!("shard/../x:{seq}")),
            8 => record.kinesis.sequence_number = format!("{seq}x"),
            9 => record.kinesis.sequence_number = "9".repeat(70),
            10 => record.event_id = Some(format!("{}:{seq}:1", support::SHARD)),
            _ => {}
        }
    }
    let prepared = same_prepare(&tables(), &event);
    let shards: std::collections::BTreeSet<&str> = prepared.files.iter().map(|f| f.name.shard_id.as_str()).collect();
    assert_eq!(shards.len(), 2, "{shards:?}");
    assert!(prepared.invalid.len() >= 20, "{}", prepared.invalid.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The raw payload paths (two-pass and fused) accept and reject exactly the payloads
    /// `KinesisBatch::parse` does, and prepare what `prepare` prepares from the parsed batch.
    #[test]
    fn the_fused_path_accepts_what_the_parser_accepts(
        seed in 0u64..1_000,
        cut in any::<prop::sample::Index>(),
        edit in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let events = support::events(seed, 8);
        let mut raw = serde_json::to_vec(&support::event_batch(&events, 0)).unwrap();
        if let Some((at, byte)) = edit {
            let at = at.index(raw.len());
            raw[at] = byte;
        } else {
            raw.truncate(cut.index(raw.len() + 1));
        }
        let tables = tables();
        let fused = group_payload_fused(&tables, &raw).map(|g| g.encode().0);
        prop_assert_eq!(fused.as_ref().err().map(ToString::to_string), prepare_payload(&tables, &raw).err().map(|e| e.to_string()));
        match (KinesisBatch::parse(&raw), fused) {
            (Ok(batch), Ok(fused)) => {
                let (two_pass, _) = prepare(&tables, &batch);
                prop_assert_eq!(files(&fused), files(&two_pass));
                prop_assert_eq!(fused.invalid, two_pass.invalid);
                prop_assert_eq!(fused.records, two_pass.records);
            }
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            (a, b) => prop_assert!(false, "parse {:?} but the fused path {:?}", a.map(|b| b.len()), b.map(|p| p.records)),
        }
    }
}
