//! Files produced by the lake writer's own code path (`sluice_sinks`: validated events ->
//! `columnar` -> `encode` -> `layout` paths) read back against the Athena table definitions
//! (nested columns included), through `sluice query`, and through DuckDB.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::AsArray;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sluice_lake::layout::{BatchFileName, Partition};
use sluice_query::{QuerySession, athena};
use sluice_schemas::{Event, IngestContext, Registry};
use sluice_sinks::{columnar, encode};

use crate::athena::parquet_columns;
use crate::query::counts;
use crate::support::{self, Rng};

const SHARD: &str = "shardId-000000000003";

/// Producer JSON for one event of `event_type` (valid against its latest schema).
/// `id` makes the (UUID) event id.
fn producer_json(event_type: &str, id: usize, rng: &mut Rng, occurred_at: DateTime<Utc>) -> serde_json::Value {
    let i = id;
    let country = support::COUNTRIES[rng.below(5) as usize];
    let data = match event_type {
        "page_view" => {
            let mut data = json!({
                "user_id": format!("u{}", rng.below(50)),
                "session_id": format!("s{}", rng.below(200)),
                "page": format!("/p/{}", rng.below(20)),
                "device": (["ios", "android", "web", "tv"][rng.below(4) as usize]),
                "country": country,
                "duration_ms": rng.below(10_000) as f64 / 3.0,
            });
            if i.is_multiple_of(3) {
                data["app_version"] = json!("2.1.0");
            }
            if i.is_multiple_of(4) {
                data["referrer"] = json!("https://example.com/");
            }
            data
        }
        "purchase" => json!({
            "user_id": format!("u{}", rng.below(50)),
            "order_id": format!("o{i}"),
            "amount": rng.below(100_000) as f64 / 100.0,
            "currency": (["EUR", "USD"][rng.below(2) as usize]),
            "country": country,
        }),
        "api_call" => json!({
            "client_id": format!("c{}", rng.below(10)),
            "route": "GET /v1/items/{id}",
            "status": ([200, 201, 404, 500][rng.below(4) as usize]),
            "latency_ms": rng.below(5_000) as f64 / 7.0,
        }),
        "order_placed" => {
            let items: Vec<serde_json::Value> = (0..1 + rng.below(3))
                .map(|_| {
                    json!({
                        "sku": support::SKUS[rng.below(support::SKUS.len() as u64) as usize],
                        "qty": 1 + rng.below(5),
                        "unit_price": rng.below(10_000) as f64 / 4.0,
                    })
                })
                .collect();
            let total: f64 = items.iter().map(|i| i["qty"].as_f64().unwrap() * i["unit_price"].as_f64().unwrap()).sum();
            let mut context = json!({
                "country": country,
                "channel": support::CHANNELS[rng.below(4) as usize],
            });
            if i.is_multiple_of(3) {
                context["app_version"] = json!("5.0.1");
            }
            json!({
                "order_id": format!("o{i}"),
                "user_id": format!("u{}", rng.below(50)),
                "context": context,
                "items": items,
                "coupon": if i.is_multiple_of(4) { json!("SPRING") } else { json!(null) },
                "placed_at": (occurred_at - TimeDelta::seconds(5)).to_rfc3339(),
                "total": total,
            })
        }
        other => panic!("add a producer JSON generator for the new event type {other}"),
    };
    json!({
        "event_id": format!("00000000-0000-4000-8000-{id:012x}"),
        "event_type": event_type,
        "occurred_at": occurred_at.to_rfc3339(),
        "data": data,
    })
}

/// Validated events of every type, spread over three hours of event time.
fn events(registry: &Registry) -> Vec<Event> {
    let received_at: DateTime<Utc> = "2024-03-01T12:30:00.123456Z".parse().unwrap();
    let ctx = IngestContext::new("producer-1", received_at);
    let mut rng = Rng::new(42);
    let mut out = Vec::new();
    for (t, event_type) in registry.event_types().enumerate() {
        for i in 0..150 {
            let occurred_at = received_at - TimeDelta::seconds(rng.below(3 * 3600) as i64);
            let input = producer_json(&event_type.name, t * 1000 + i, &mut rng, occurred_at);
            out.push(registry.validate(&input, &ctx).unwrap());
        }
    }
    out
}

/// Writes `events` as the lake writer does: one file per partition, deterministic names.
fn write_with_lake_writer_code(root: &std::path::Path, registry: &Registry, events: &[Event]) -> Vec<String> {
    let mut groups: BTreeMap<Partition, Vec<(&Event, String)>> = BTreeMap::new();
    for (n, event) in events.iter().enumerate() {
        let sequence = format!("{:056}", 1_000 + n);
        groups.entry(Partition::of(&event.event_type, event.occurred_at)).or_default().push((event, sequence));
    }
    let mut paths = Vec::new();
    for (partition, rows) in groups {
        let schema = registry.get(&partition.event_type).unwrap().arrow_schema();
        let batch = columnar::to_record_batch(
            &partition.event_type,
            schema.clone(),
            rows.iter().map(|(e, s)| (*e, SHARD, s.as_str())),
        )
        .unwrap();
        let bytes = encode::encode_parquet(&schema, &[batch], &[], &[] as &[&str]).unwrap();
        let name = BatchFileName::new(SHARD, &rows[0].1, &rows[rows.len() - 1].1).unwrap();
        let path = partition.file_path(&name.to_string());
        let full = root.join(&path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, &bytes).unwrap();
        paths.push(path);
    }
    paths
}

#[tokio::test]
async fn lake_writer_files_match_the_tables_and_answer_queries() {
    let registry = support::registry();
    let events = events(&registry);
    let dir = tempfile::tempdir().unwrap();
    let paths = write_with_lake_writer_code(dir.path(), &registry, &events);
    assert!(paths.len() >= 12, "four types over at least three hours: {paths:?}");
    check_files(dir.path(), &paths, &registry, &events, "lake_writer_files_match_the_tables_and_answer_queries").await;
}

/// The same checks on the files compaction writes from the lake writer's.
#[tokio::test]
async fn compacted_files_match_the_tables_and_answer_queries() {
    use sluice_jobs::compaction::{CompactionConfig, Compactor};
    let registry = support::registry();
    let events = events(&registry);
    let dir = tempfile::tempdir().unwrap();
    let written = write_with_lake_writer_code(dir.path(), &registry, &events);
    let lake = support::lake(&support::lake_url(&dir));
    let tables = sluice_sinks::LakeTables::new(std::sync::Arc::new(registry.clone()));
    let far_future = DateTime::from_timestamp(4_000_000_000, 0).unwrap();
    let report = Compactor::new(lake.clone(), tables, CompactionConfig::default())
        .run(None, far_future, |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(report.partitions.len(), written.len(), "every partition compacted");
    let paths: Vec<String> = lake
        .list_files(None)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path.partition.file_path(&f.path.file_name))
        .collect();
    assert!(paths.iter().all(|p| p.contains("/compacted-")), "{paths:?}");
    check_files(dir.path(), &paths, &registry, &events, "compacted_files_match_the_tables_and_answer_queries").await;
}

/// Every column of every file at `paths` (under `dir`) is the Athena table's; `sluice query` and
/// DuckDB see exactly `events`.
async fn check_files(dir: &std::path::Path, paths: &[String], registry: &Registry, events: &[Event], test: &str) {
    // Every column of every file is exactly the Athena table's column, in order.
    let tables: BTreeMap<String, Vec<(String, String)>> = athena::table_definitions(registry)
        .unwrap()
        .into_iter()
        .map(|t| {
            let columns = t.columns.iter().map(|c| (c.name.clone(), c.hive_type.clone())).collect();
            (t.name, columns)
        })
        .collect();
    for path in paths {
        let event_type = path.split('/').nth(1).unwrap().trim_start_matches("event_type=");
        assert_eq!(parquet_columns(&dir.join(path)), tables[event_type], "{path}");
    }

    // `sluice query` sees every event exactly once, with its partition.
    let lake = QuerySession::open(&support::lake(&support::lake_url_of(dir)), registry).await.unwrap();
    let batches = lake.run("SELECT event_id, dt, hour, occurred_at FROM events").await.unwrap();
    let mut seen = BTreeSet::new();
    for batch in &batches {
        let ids = batch.column(0).as_string::<i32>();
        let dts = batch.column(1).as_string::<i32>();
        let hours = batch.column(2).as_string::<i32>();
        let at = batch.column(3).as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            assert!(seen.insert(ids.value(i).to_owned()), "duplicate {}", ids.value(i));
            let occurred = DateTime::from_timestamp_micros(at.value(i)).unwrap();
            assert_eq!(dts.value(i), occurred.format("%Y-%m-%d").to_string());
            assert_eq!(hours.value(i), occurred.format("%H").to_string());
        }
    }
    let want: BTreeSet<String> = events.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(seen, want);

    // Typed values survive: timestamps to the microsecond, nullable v2 field.
    let received = counts(
        &lake
            .run(
                "SELECT CAST(received_at AS VARCHAR), count(*) FROM page_view \
                 WHERE app_version IS NOT NULL GROUP BY 1",
            )
            .await
            .unwrap(),
    );
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(received.keys().next().unwrap().starts_with("2024-03-01T12:30:00.123456"), "{received:?}");
    assert_eq!(received.values().next(), Some(&50));

    let mut by_country = BTreeMap::new();
    for e in events.iter().filter(|e| e.event_type == "page_view") {
        *by_country.entry(e.data["country"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(counts(&lake.run(crate::query::COUNTRY_SQL).await.unwrap()), by_country);

    // Nested values survive: struct fields and list elements.
    let orders: Vec<&Event> = events.iter().filter(|e| e.event_type == "order_placed").collect();
    assert!(!orders.is_empty());
    let mut orders_by_country = BTreeMap::new();
    let mut qty_by_sku = BTreeMap::new();
    for e in &orders {
        *orders_by_country.entry(e.data["context"]["country"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        for item in e.data["items"].as_array().unwrap() {
            *qty_by_sku.entry(item["sku"].as_str().unwrap().to_owned()).or_insert(0) += item["qty"].as_i64().unwrap();
        }
    }
    let sql = "SELECT context.country, count(*) FROM order_placed GROUP BY 1";
    assert_eq!(counts(&lake.run(sql).await.unwrap()), orders_by_country);
    assert_eq!(counts(&lake.run(crate::query::QTY_BY_SKU_SQL).await.unwrap()), qty_by_sku);
    let sql = "SELECT coalesce(context.app_version, '-'), count(*) FROM order_placed WHERE coupon IS NULL GROUP BY 1";
    let mut want = BTreeMap::new();
    for e in orders.iter().filter(|e| e.data["coupon"].is_null()) {
        let app = e.data["context"].get("app_version").and_then(|v| v.as_str()).unwrap_or("-");
        *want.entry(app.to_owned()).or_insert(0) += 1;
    }
    assert_eq!(counts(&lake.run(sql).await.unwrap()), want, "absent and null values read as NULL");

    // DuckDB over the writer's files agrees.
    let Some(python) = sluice_testkit::python(test) else {
        return;
    };
    let script = r#"
import json, sys, duckdb
def rows(event_type, sql):
    src = f"read_parquet('{sys.argv[1]}/events/event_type={event_type}/*/*/*.parquet')"
    return {k: int(v) for k, v in duckdb.execute(sql.format(src=src)).fetchall()}
print(json.dumps({
    "country": rows("page_view", "SELECT country, count(*) FROM {src} GROUP BY 1"),
    "sku": rows("order_placed", "SELECT i.sku, sum(i.qty) FROM {src} CROSS JOIN unnest(items) AS t(i) GROUP BY 1"),
}))
"#;
    let out = support::run_python(&python, script, &[dir.to_str().unwrap()]);
    let duck: BTreeMap<String, BTreeMap<String, i64>> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(duck["country"], by_country);
    assert_eq!(duck["sku"], qty_by_sku);
}
