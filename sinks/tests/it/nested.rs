//! Nested data through the lake writer: `order_placed` events (objects, an array of objects, a
//! nullable string, a date-time) -> `prepare` (equal to the reference path) -> Parquet -> read
//! back with the parquet crate: every value, the nulls, the leaf columns' layouts; rows that do
//! not fit append nothing at any depth; a v2 adding optional nested fields next to v1 rows.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding};
use parquet::file::reader::{FileReader, SerializedFileReader};
use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_schemas::{Event, IngestContext, Registry};
use sluice_sinks::LakeTables;
use sluice_sinks::columnar::{ColumnarError, RowsBuilder};
use sluice_sinks::encode::{ColumnLayout, column_layouts};
use sluice_sinks::prepare::PreparedLakeBatch;

use crate::{fast_path, support};

fn read_back(bytes: &Bytes) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).unwrap().build().unwrap().map(Result::unwrap).collect()
}

/// The `order_placed` files of `prepared`, read back: every row equals its event in `events`.
/// Returns the rows read.
fn check_order_files(prepared: &PreparedLakeBatch, tables: &LakeTables, events: &[Event]) -> Vec<RecordBatch> {
    let by_id: BTreeMap<&str, &Event> = events.iter().map(|e| (e.event_id.as_str(), e)).collect();
    let schema = tables.schema("order_placed").unwrap();
    let dimensions = tables.dimensions("order_placed").unwrap();
    let mut batches = Vec::new();
    for file in prepared.files.iter().filter(|f| f.partition.event_type == "order_placed") {
        check_layouts(&file.bytes, &column_layouts(schema, dimensions).unwrap());
        for batch in read_back(&file.bytes) {
            assert_eq!(&batch.schema(), schema);
            support::check_batch_against_events(&batch, &by_id);
            batches.push(batch);
        }
    }
    batches
}

/// Every leaf column chunk of the file is written as its layout says.
fn check_layouts(bytes: &Bytes, layouts: &[(parquet::schema::types::ColumnPath, ColumnLayout)]) {
    let reader = SerializedFileReader::new(bytes.clone()).unwrap();
    let group = reader.metadata().row_group(0);
    assert_eq!(group.columns().len(), layouts.len());
    for (chunk, (path, layout)) in group.columns().iter().zip(layouts) {
        assert_eq!(chunk.column_path(), path);
        let encodings: Vec<Encoding> = chunk.encodings().collect();
        let dictionary = encodings.iter().any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY));
        match layout {
            ColumnLayout::Zstd(encoding) => {
                assert!(matches!(chunk.compression(), Compression::ZSTD(_)), "{path}: {:?}", chunk.compression());
                assert!(encodings.contains(encoding) && !dictionary, "{path}: {encodings:?}");
            }
            ColumnLayout::Delta(encoding) => {
                assert_eq!(chunk.compression(), Compression::UNCOMPRESSED, "{path}");
                assert!(encodings.contains(encoding) && !dictionary, "{path}: {encodings:?}");
            }
            ColumnLayout::Dictionary => {
                assert_eq!(chunk.compression(), Compression::UNCOMPRESSED, "{path}");
                assert!(encodings.contains(&Encoding::RLE_DICTIONARY), "{path}: {encodings:?}");
                assert!(chunk.dictionary_page_offset().is_some(), "{path}");
            }
        }
        assert!(chunk.statistics().is_some(), "{path}");
    }
}

#[test]
fn order_placed_events_round_trip_through_parquet() {
    let tables = LakeTables::new(support::registry());
    let orders = support::order_events(1, 400);
    // Interleaved with flat events: nested and flat groups are open at once.
    let flat = support::events(2, 400);
    let mixed: Vec<Event> = orders.iter().zip(&flat).flat_map(|(a, b)| [a.clone(), b.clone()]).collect();
    let prepared = fast_path::same_prepare(&tables, &support::event_batch(&mixed, 0));
    assert!(prepared.invalid.is_empty(), "{:?}", prepared.invalid);
    let batches = check_order_files(&prepared, &tables, &mixed);
    assert!(batches.len() >= 2, "two hours of event time: {}", batches.len());

    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, orders.len());
    let count = |f: &dyn Fn(&RecordBatch) -> usize| batches.iter().map(f).sum::<usize>();
    let null_coupons = count(&|b| b.column_by_name("coupon").unwrap().null_count());
    assert_eq!(null_coupons, orders.iter().filter(|e| e.data["coupon"].is_null()).count());
    assert!(null_coupons > 0 && null_coupons < rows);
    let no_app_version = count(&|b| {
        let context = b.column_by_name("context").unwrap().as_struct();
        assert_eq!(context.null_count(), 0);
        context.column_by_name("app_version").unwrap().null_count()
    });
    assert_eq!(no_app_version, orders.iter().filter(|e| e.data["context"].get("app_version").is_none()).count());
    assert!(no_app_version > 0 && no_app_version < rows);
    let line_items = count(&|b| b.column_by_name("items").unwrap().as_list::<i32>().values().len());
    assert_eq!(line_items, orders.iter().map(|e| e.data["items"].as_array().unwrap().len()).sum::<usize>());

    // The deliberate layouts of the nested leaves (see `sinks::encode`).
    let schema = tables.schema("order_placed").unwrap();
    let layouts = column_layouts(schema, tables.dimensions("order_placed").unwrap()).unwrap();
    let layout = |path: &str| layouts.iter().find(|(p, _)| p.string() == path).map(|(_, l)| *l);
    assert_eq!(layout("context.country"), Some(ColumnLayout::Dictionary));
    assert_eq!(layout("context.channel"), Some(ColumnLayout::Dictionary));
    assert_eq!(layout("context.app_version"), Some(ColumnLayout::Zstd(Encoding::PLAIN)));
    assert_eq!(layout("items.list.element.sku"), Some(ColumnLayout::Zstd(Encoding::PLAIN)));
    assert_eq!(layout("items.list.element.qty"), Some(ColumnLayout::Zstd(Encoding::PLAIN)));
    assert_eq!(layout("items.list.element.unit_price"), Some(ColumnLayout::Zstd(Encoding::PLAIN)));
    assert_eq!(layout("placed_at"), Some(ColumnLayout::Delta(Encoding::DELTA_BINARY_PACKED)));
    assert_eq!(layout("occurred_at"), Some(ColumnLayout::Delta(Encoding::DELTA_BINARY_PACKED)));
    assert_eq!(layout("coupon"), Some(ColumnLayout::Zstd(Encoding::PLAIN)));
    assert_eq!(layout("event_id"), Some(ColumnLayout::Zstd(Encoding::DELTA_LENGTH_BYTE_ARRAY)));
    assert_eq!(layouts.len(), sluice_schemas::ENVELOPE_COLUMNS.len() + 11, "{layouts:?}");
}

/// A JSON pointer into `data` (`/items/1/qty`) as the column path a misfit names (`items[1].qty`).
fn column_of(pointer: &str) -> String {
    let mut path = String::new();
    for segment in pointer.trim_start_matches('/').split('/') {
        match segment.parse::<usize>() {
            Ok(i) => path.push_str(&format!("[{i}]")),
            Err(_) if path.is_empty() => path.push_str(segment),
            Err(_) => path.push_str(&format!(".{segment}")),
        }
    }
    path
}

/// Sets (`Some`) or removes (`None`) the value at `pointer` in `data`; false if its parent does
/// not exist.
fn edit(data: &mut Value, pointer: &str, value: Option<Value>) -> bool {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match (data.pointer_mut(parent), value) {
        (Some(Value::Object(object)), Some(value)) => {
            object.insert(key.to_owned(), value);
            true
        }
        (Some(Value::Object(object)), None) => object.remove(key).is_some(),
        (Some(Value::Array(items)), Some(value)) => match key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
            Some(item) => {
                *item = value;
                true
            }
            None => false,
        },
        _ => false,
    }
}

fn arb_nested_edit() -> impl Strategy<Value = (String, Option<Value>)> {
    let pointers = prop::sample::select(vec![
        "/context",
        "/context/country",
        "/context/channel",
        "/context/app_version",
        "/items",
        "/items/0",
        "/items/1",
        "/items/0/sku",
        "/items/0/qty",
        "/items/1/qty",
        "/items/0/unit_price",
        "/items/2/unit_price",
        "/coupon",
        "/placed_at",
        "/total",
        "/order_id",
    ]);
    let values = prop_oneof![
        3 => prop::sample::select(vec![
            Value::Null,
            json!(true),
            json!(0),
            json!(-7),
            json!(3.0),
            json!(2.5),
            json!(u64::MAX),
            json!(1e300),
            json!(""),
            json!("US"),
            json!("🦀"),
            json!("2026-01-01T00:59:59.999999Z"),
            json!("2026-01-01T01:00:00+01:00"),
            json!("2026-01-01T00:00:00.123456789Z"),
            json!("2026-02-30T00:00:00Z"),
            json!("not a time"),
            json!([]),
            json!({}),
            json!([1, 2]),
            json!({"sku": "SKU-1", "qty": 2, "unit_price": 9.5}),
            json!([{"sku": "SKU-1", "qty": 2, "unit_price": 9.5}, {"sku": "SKU-2", "qty": 1.0, "unit_price": 1}]),
            json!([{"sku": "SKU-1", "qty": "2", "unit_price": 9.5}]),
            json!({"country": "FR", "channel": "pos"}),
            json!({"country": "FR"}),
        ]).prop_map(Some),
        1 => Just(None),
    ];
    (pointers.prop_map(str::to_owned), values)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Events edited anywhere in their nested data (without validation) go straight into a
    /// `RowsBuilder`: a row either fits whole, and reads back as sent, or is refused naming a
    /// place at or below an edit, and leaves nothing behind (the next rows read back intact).
    #[test]
    fn nested_rows_are_all_or_nothing(
        seed in 0u64..1_000,
        edits in prop::collection::vec((0usize..24, arb_nested_edit()), 0..24),
    ) {
        let mut events = support::order_events(seed, 24);
        let mut edited: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (i, (pointer, value)) in edits {
            let mut data = Value::Object(std::mem::take(&mut events[i].data));
            if edit(&mut data, &pointer, value) {
                edited.entry(i).or_default().push(column_of(&pointer));
            }
            let Value::Object(data) = data else { unreachable!() };
            events[i].data = data;
        }
        let schema = support::registry().get("order_placed").unwrap().arrow_schema();
        let mut builder = RowsBuilder::new("order_placed", schema, 4).unwrap();
        let mut accepted = Vec::new();
        for (i, event) in events.iter().enumerate() {
            match builder.append(event, support::SHARD, &i.to_string()) {
                Ok(()) => accepted.push(event),
                Err(ColumnarError::RowMismatch { column, reason }) => {
                    let places = edited.get(&i).cloned().unwrap_or_default();
                    let at_or_below = |p: &String| {
                        column == *p || column.starts_with(&format!("{p}.")) || column.starts_with(&format!("{p}["))
                    };
                    prop_assert!(
                        places.iter().any(at_or_below),
                        "row {}: {} ({}) is not at an edit {:?}",
                        i, column, reason, places
                    );
                }
                Err(other) => prop_assert!(false, "{}", other),
            }
        }
        prop_assert_eq!(builder.len(), accepted.len());
        let batch = builder.finish().unwrap();
        prop_assert_eq!(batch.num_rows(), accepted.len());
        let by_id: BTreeMap<&str, &Event> = accepted.iter().map(|e| (e.event_id.as_str(), *e)).collect();
        support::check_batch_against_events(&batch, &by_id);
        let ids = batch.column_by_name("event_id").unwrap().as_string::<i32>();
        let order: Vec<&str> = (0..batch.num_rows()).map(|r| ids.value(r)).collect();
        prop_assert_eq!(order, accepted.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>());
        // Parquet takes the batch as built (masked nulls under null structs included).
        let dimensions = ["context.country"];
        let batches = std::slice::from_ref(&batch);
        let bytes = sluice_sinks::encode::encode_parquet(batch.schema_ref(), batches, &[], &dimensions).unwrap();
        let back = read_back(&bytes);
        if batch.num_rows() > 0 {
            prop_assert_eq!(&back[0], &batch);
        }
    }
}

/// `order_placed` v1 and a v2 that adds optional fields at every depth: `context.referrer`,
/// `items[].discount`, an optional object `shipping` (with a required `method` and an optional
/// date-time `eta`), an optional array `tags` and a nullable `gift`.
fn v2_registry(with_v2: bool) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/order_placed/v1.json");
    let v1 = std::fs::read_to_string(shipped).unwrap();
    std::fs::create_dir_all(dir.path().join("order_placed")).unwrap();
    std::fs::write(dir.path().join("order_placed/v1.json"), &v1).unwrap();
    if with_v2 {
        let mut v2: Value = serde_json::from_str(&v1).unwrap();
        v2["x-sluice-version"] = json!(2);
        v2["title"] = json!("order_placed v2");
        v2["properties"]["context"]["properties"]["referrer"] = json!({"type": "string", "maxLength": 200});
        v2["properties"]["items"]["items"]["properties"]["discount"] = json!({"type": "number", "minimum": 0});
        v2["properties"]["shipping"] = json!({
            "type": "object",
            "properties": {
                "method": {"type": "string", "enum": ["standard", "express"]},
                "eta": {"type": "string", "format": "date-time"},
            },
            "required": ["method"],
            "additionalProperties": false,
        });
        v2["properties"]["tags"] =
            json!({"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 10});
        v2["properties"]["gift"] = json!({"type": ["boolean", "null"]});
        std::fs::write(dir.path().join("order_placed/v2.json"), serde_json::to_string_pretty(&v2).unwrap()).unwrap();
    }
    Registry::from_dir(dir.path()).unwrap()
}

#[test]
fn a_v2_with_optional_nested_fields_writes_next_to_v1_rows() {
    let registry = std::sync::Arc::new(v2_registry(true));
    let schema = registry.get("order_placed").unwrap().arrow_schema();
    let shipping = schema.field_with_name("shipping").unwrap();
    assert!(shipping.is_nullable());
    let arrow::datatypes::DataType::Struct(children) = shipping.data_type() else { panic!("{shipping}") };
    let child = |name: &str| children.iter().find(|c| c.name() == name).unwrap();
    assert!(!child("method").is_nullable() && child("eta").is_nullable(), "{children:?}");

    let v1 = support::order_events(3, 120);
    // v2 events: the v1 data plus some of the new fields, validated by the v2 schema.
    let context = IngestContext::new("shop", support::now());
    let v2: Vec<Event> = support::order_events(4, 120)
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let mut data = Value::Object(e.data);
            if i % 2 == 0 {
                data["context"]["referrer"] = json!(format!("https://example.com/{i}"));
                data["items"][0]["discount"] = json!(0.5);
            }
            if i % 3 == 0 {
                data["shipping"] = json!({"method": "express", "eta": "2026-01-03T10:00:00+01:00"});
            } else if i % 3 == 1 {
                data["shipping"] = json!({"method": "standard"});
            }
            match i % 4 {
                0 => data["tags"] = json!(["gift", "rush"]),
                1 => data["tags"] = json!([]),
                _ => {}
            }
            match i % 5 {
                0 => data["gift"] = Value::Null,
                1 => data["gift"] = json!(true),
                _ => {}
            }
            let input = json!({
                "event_id": e.event_id, "event_type": "order_placed", "schema_version": 2,
                "occurred_at": e.occurred_at, "data": data,
            });
            registry.validate(&input, &context).unwrap_or_else(|r| panic!("{r}: {input}"))
        })
        .collect();
    let events: Vec<Event> = v1.iter().zip(&v2).flat_map(|(a, b)| [a.clone(), b.clone()]).collect();

    let tables = LakeTables::new(registry);
    let prepared = fast_path::same_prepare(&tables, &support::event_batch(&events, 0));
    assert!(prepared.invalid.is_empty(), "{:?}", prepared.invalid);
    let batches = check_order_files(&prepared, &tables, &events);
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), events.len());
    let nulls = |column: &str| batches.iter().map(|b| b.column_by_name(column).unwrap().null_count()).sum::<usize>();
    let absent = |name: &str| events.iter().filter(|e| e.data.get(name).is_none_or(Value::is_null)).count();
    assert_eq!(nulls("shipping"), absent("shipping"));
    assert_eq!(nulls("tags"), absent("tags"));
    assert_eq!(nulls("gift"), absent("gift"));
    assert!(nulls("shipping") > v1.len(), "v1 rows and v2 rows without shipping");

    // A file written before v2 existed holds the v1 columns only, and reads back the same rows.
    let old_tables = LakeTables::new(std::sync::Arc::new(v2_registry(false)));
    let prepared = fast_path::same_prepare(&old_tables, &support::event_batch(&v1, 0));
    let old = check_order_files(&prepared, &old_tables, &v1);
    assert!(old.iter().all(|b| b.schema().field_with_name("shipping").is_err()));
    assert_eq!(old.iter().map(RecordBatch::num_rows).sum::<usize>(), v1.len());
}
