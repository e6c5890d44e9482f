//! `sluice query` over a local lake: results, schema evolution, the `events` view, formats,
//! partition pruning, nested columns (struct fields, unnested lists), and agreement with DuckDB
//! over the same files.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use sluice_lake::{Lake, LakeError};
use sluice_query::{OutputFormat, QueryError, QuerySession, query};

use crate::support::{self, Expected};

/// `SELECT <string>, count(*)` rows as a map.
pub fn counts(batches: &[RecordBatch]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for batch in batches {
        let keys = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        let keys = keys.as_string::<i32>();
        let values = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            out.insert(keys.value(i).to_owned(), values.value(i));
        }
    }
    out
}

fn single_i64(batches: &[RecordBatch]) -> i64 {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 1);
    let batch = batches.iter().find(|b| b.num_rows() == 1).unwrap();
    batch.column(0).as_primitive::<Int64Type>().value(0)
}

pub const COUNTRY_SQL: &str = "SELECT country, count(*) FROM page_view GROUP BY 1";

async fn open(url: &str) -> QuerySession {
    QuerySession::open(&support::lake(url), &support::registry()).await.unwrap()
}

fn total_rows(expected: &Expected, event_type: Option<&str>) -> i64 {
    expected.rows_by_partition.iter().filter(|((t, _, _), _)| event_type.is_none_or(|e| e == t)).map(|(_, n)| n).sum()
}

#[tokio::test]
async fn counts_by_country_match_the_files() {
    let (dir, expected) = support::local_lake().await;
    let lake = open(&support::lake_url(&dir)).await;
    let by_country = counts(&lake.run(COUNTRY_SQL).await.unwrap());
    assert_eq!(by_country, expected.page_view_by_country);
    assert_eq!(by_country.len(), support::COUNTRIES.len());
}

#[tokio::test]
async fn every_table_and_the_events_view_count_all_rows() {
    let (dir, expected) = support::local_lake().await;
    let lake = open(&support::lake_url(&dir)).await;
    for table in lake.tables() {
        let n = single_i64(&lake.run(&format!("SELECT count(*) FROM {table}")).await.unwrap());
        assert_eq!(n, total_rows(&expected, Some(table)), "{table}");
    }
    let by_type = counts(&lake.run("SELECT event_type, count(*) FROM events GROUP BY 1").await.unwrap());
    let mut want = BTreeMap::new();
    for ((t, _, _), n) in &expected.rows_by_partition {
        *want.entry(t.clone()).or_insert(0) += n;
    }
    assert_eq!(by_type, want);

    let by_partition = counts(
        &lake.run("SELECT concat(event_type, '/', dt, '/', hour), count(*) FROM events GROUP BY 1").await.unwrap(),
    );
    let want: BTreeMap<String, i64> =
        expected.rows_by_partition.iter().map(|((t, dt, h), n)| (format!("{t}/{dt}/{h}"), *n)).collect();
    assert_eq!(by_partition, want);
}

#[tokio::test]
async fn columns_and_types_are_the_registry_schema_plus_partitions() {
    let (dir, _) = support::local_lake().await;
    let lake = open(&support::lake_url(&dir)).await;
    let registry = support::registry();
    for event_type in registry.event_types() {
        let result = lake.sql(&format!("SELECT * FROM {} LIMIT 1", event_type.name)).await.unwrap();
        let got: Vec<(String, String)> =
            result.schema.fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect();
        let mut want: Vec<(String, String)> =
            event_type.arrow_schema().fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect();
        want.push(("dt".into(), "Utf8".into()));
        want.push(("hour".into(), "Utf8".into()));
        assert_eq!(got, want, "{}", event_type.name);
    }
    // Timestamps come back as microseconds UTC and compare with timestamp literals.
    let n = single_i64(
        &lake
            .run(
                "SELECT count(*) FROM page_view \
                 WHERE occurred_at >= TIMESTAMP '2024-03-02T00:00:00Z' AND received_at > occurred_at",
            )
            .await
            .unwrap(),
    );
    assert!(n > 0);
}

#[tokio::test]
async fn older_files_read_the_newer_column_as_null() {
    let (dir, _) = support::local_lake().await;
    let lake = open(&support::lake_url(&dir)).await;
    let batches = lake
        .run(
            "SELECT schema_version, count(*) AS n, count(app_version) AS with_app_version \
             FROM page_view GROUP BY 1 ORDER BY 1",
        )
        .await
        .unwrap();
    let mut rows = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            rows.push((
                b.column(0).as_primitive::<arrow::datatypes::Int32Type>().value(i),
                b.column(1).as_primitive::<Int64Type>().value(i),
                b.column(2).as_primitive::<Int64Type>().value(i),
            ));
        }
    }
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0], (1, 25, 0), "v1 rows have no app_version");
    assert!(rows[1].0 == 2 && rows[1].2 > 0 && rows[1].2 < rows[1].1, "{rows:?}");
}

#[tokio::test]
async fn query_renders_every_format() {
    let (dir, expected) = support::local_lake().await;
    let url = support::lake_url(&dir);
    let registry = support::registry();
    let sql = "SELECT country, count(*) AS n FROM page_view GROUP BY 1 ORDER BY 1";

    let json = query(&support::lake(&url), &registry, sql, OutputFormat::Json).await.unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let from_json: BTreeMap<String, i64> =
        rows.iter().map(|r| (r["country"].as_str().unwrap().to_owned(), r["n"].as_i64().unwrap())).collect();
    assert_eq!(from_json, expected.page_view_by_country);

    let csv = query(&support::lake(&url), &registry, sql, OutputFormat::Csv).await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("country,n"));
    let from_csv: BTreeMap<String, i64> = lines
        .map(|l| {
            let (c, n) = l.split_once(',').unwrap();
            (c.to_owned(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(from_csv, expected.page_view_by_country);

    let table = query(&support::lake(&url), &registry, sql, OutputFormat::Table).await.unwrap();
    assert!(table.contains("| country | n "), "{table}");
    for (country, n) in &expected.page_view_by_country {
        assert!(table.contains(&format!("| {country}      | {n}")), "{table}");
    }
}

#[tokio::test]
async fn query_errors_say_what_to_fix() {
    let (dir, _) = support::local_lake().await;
    let url = support::lake_url(&dir);
    let registry = support::registry();
    let err =
        query(&support::lake(&url), &registry, "SELECT nope FROM page_view", OutputFormat::Table).await.unwrap_err();
    assert!(matches!(err, QueryError::InvalidQuery(_)), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");
    let err = Lake::open("ftp://x/y", &Default::default()).unwrap_err();
    assert!(matches!(err, LakeError::InvalidUrl { .. }), "{err:?}");
}

#[tokio::test]
async fn a_corrupt_file_fails_the_query_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let path = "events/event_type=purchase/dt=2024-03-01/hour=00/broken.parquet";
    store.put(&Path::from(path), b"not parquet".to_vec().into()).await.unwrap();
    let lake = open(&support::lake_url(&dir)).await;
    let err = lake.run("SELECT count(*) FROM purchase").await.unwrap_err();
    assert!(matches!(err, QueryError::Execution(_)), "{err:?}");
}

/// Partition pruning: a filter on dt/hour plans only that partition's files, and files in other
/// partitions are never opened (a corrupt file elsewhere does not fail the query).
#[tokio::test]
async fn filters_on_dt_and_hour_read_only_matching_files() {
    let (dir, expected) = support::local_lake().await;
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    store
        .put(
            &Path::from("events/event_type=page_view/dt=2024-03-02/hour=05/corrupt.parquet"),
            b"garbage, not parquet".to_vec().into(),
        )
        .await
        .unwrap();
    let lake = open(&support::lake_url(&dir)).await;
    let relative = |files: Vec<String>| -> Vec<String> {
        let root = dir.path().canonicalize().unwrap();
        let root = root.to_str().unwrap().trim_start_matches('/');
        files.into_iter().map(|f| f.trim_start_matches(root).trim_start_matches('/').to_owned()).collect()
    };
    let partition = |t: &str, dt: &str, h: &str| -> Vec<String> {
        let mut files = expected.files_by_partition[&(t.into(), dt.into(), h.into())].clone();
        files.sort();
        files
    };

    // One partition of one table. (`count(*)` alone is answered from the Parquet footers'
    // statistics, which plans no file scan at all; select a column to see the scan.)
    let where_ = "WHERE dt = '2024-03-01' AND hour = '13'";
    let scanned = relative(lake.files_to_scan(&format!("SELECT event_id FROM page_view {where_}")).await.unwrap());
    let sql = format!("SELECT count(*) FROM page_view {where_}");
    assert_eq!(scanned, partition("page_view", "2024-03-01", "13"));
    assert_eq!(scanned.len(), 3, "two writer files and the v1 file");
    assert_eq!(
        single_i64(&lake.run(&sql).await.unwrap()),
        expected.rows_by_partition[&("page_view".into(), "2024-03-01".into(), "13".into())]
    );

    // A day of one table: both hours, not the other day (where the corrupt file is).
    let sql = "SELECT page, duration_ms FROM page_view WHERE dt = '2024-03-01'";
    let scanned = relative(lake.files_to_scan(sql).await.unwrap());
    let mut want = partition("page_view", "2024-03-01", "00");
    want.extend(partition("page_view", "2024-03-01", "13"));
    want.sort();
    assert_eq!(scanned, want);
    lake.run(sql).await.unwrap();

    // Through the events view: the same day for every table.
    let where_ = "WHERE dt = '2024-03-01' AND hour = '00'";
    let scanned = relative(lake.files_to_scan(&format!("SELECT event_id FROM events {where_}")).await.unwrap());
    let sql = format!("SELECT count(*) FROM events {where_}");
    let tables = lake.tables();
    assert_eq!(tables, ["api_call", "order_placed", "page_view", "purchase"]);
    let mut want: Vec<String> = tables.iter().flat_map(|t| partition(t, "2024-03-01", "00")).collect();
    want.sort();
    assert_eq!(scanned, want);
    let total: i64 =
        tables.iter().map(|t| expected.rows_by_partition[&(t.clone(), "2024-03-01".into(), "00".into())]).sum();
    assert_eq!(single_i64(&lake.run(&sql).await.unwrap()), total);

    // Without a partition filter every file is planned, including the corrupt one, which fails.
    let all = lake.files_to_scan("SELECT event_id FROM page_view WHERE page <> ''").await;
    assert!(matches!(all, Err(QueryError::Execution(_))), "planning reads every footer: {all:?}");
    assert!(matches!(lake.run("SELECT count(*) FROM page_view").await, Err(QueryError::Execution(_))));
}

/// DuckDB, over the same files, agrees with `sluice query`.
#[tokio::test]
async fn counts_match_duckdb() {
    let Some(python) = sluice_testkit::python("counts_match_duckdb") else {
        return;
    };
    let (dir, _) = support::local_lake().await;
    let url = support::lake_url(&dir);
    let registry = support::registry();

    let json = query(&support::lake(&url), &registry, COUNTRY_SQL, OutputFormat::Json).await.unwrap();
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&json).unwrap();
    let ours: BTreeMap<String, i64> = rows
        .iter()
        .map(|r| {
            let country = r["country"].as_str().unwrap().to_owned();
            let count = r.iter().find(|(k, _)| *k != "country").unwrap().1;
            (country, count.as_i64().unwrap())
        })
        .collect();

    let script = r#"
import json, sys, duckdb
root = sys.argv[1]
con = duckdb.connect()
def rows(sql):
    return {str(k): int(v) for k, v in con.execute(sql).fetchall()}
glob = root + "/events/event_type=page_view/*/*/*.parquet"
print(json.dumps({
    "country": rows(f"SELECT country, count(*) FROM read_parquet('{glob}', union_by_name=true) GROUP BY 1"),
    "partition": rows(
        "SELECT dt || '/' || hour, count(*) FROM read_parquet("
        f"'{glob}', hive_partitioning=true, hive_types_autocast=false, union_by_name=true) GROUP BY 1"),
    "app_version": rows(
        f"SELECT schema_version::VARCHAR, count(app_version) FROM read_parquet('{glob}', union_by_name=true) GROUP BY 1"),
}))
"#;
    let out = support::run_python(&python, script, &[dir.path().to_str().unwrap()]);
    let duck: BTreeMap<String, BTreeMap<String, i64>> = serde_json::from_str(out.trim()).unwrap();

    assert_eq!(ours, duck["country"], "sluice query vs DuckDB: {COUNTRY_SQL}");

    let lake = open(&url).await;
    let ours = counts(&lake.run("SELECT dt || '/' || hour, count(*) FROM page_view GROUP BY 1").await.unwrap());
    assert_eq!(ours, duck["partition"]);
    let ours = counts(
        &lake
            .run("SELECT CAST(schema_version AS VARCHAR), count(app_version) FROM page_view GROUP BY 1")
            .await
            .unwrap(),
    );
    assert_eq!(ours, duck["app_version"]);
}

/// Lake paths with characters that URLs escape (spaces, `%`) still work, given as a path or URL.
#[tokio::test]
async fn lake_paths_with_spaces() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("my lake 100%");
    let store = object_store::local::LocalFileSystem::new_with_prefix({
        std::fs::create_dir_all(&root).unwrap();
        &root
    })
    .unwrap();
    let registry = support::registry();
    let expected = support::write_lake(&store, "", &registry, &support::standard_files(&registry)).await;
    let url = url::Url::from_directory_path(&root).unwrap().to_string();
    assert!(url.contains("%20"), "{url}");
    for location in [url.as_str(), root.to_str().unwrap()] {
        let lake = open(location).await;
        assert_eq!(counts(&lake.run(COUNTRY_SQL).await.unwrap()), expected.page_view_by_country, "{location}");
    }
}

/// The documented spelling of "quantity per SKU" (DataFusion cannot run Athena's lateral
/// `CROSS JOIN UNNEST(items) AS t(i)`).
pub const QTY_BY_SKU_SQL: &str =
    "SELECT i.sku, sum(i.qty) FROM (SELECT unnest(items) AS i FROM order_placed) GROUP BY 1";

/// Struct fields by dot, brackets and `get_field`; list elements by `unnest` (field access by dot
/// and brackets) and by index: every spelling gives what the files hold.
#[tokio::test]
async fn nested_fields_and_unnested_items_match_the_files() {
    let (dir, expected) = support::local_lake().await;
    let lake = open(&support::lake_url(&dir)).await;
    assert_eq!(expected.orders_by_country.len(), support::COUNTRIES.len());
    assert_eq!(expected.qty_by_sku.len(), support::SKUS.len());
    for sql in [
        "SELECT context.country, count(*) FROM order_placed GROUP BY 1",
        "SELECT context['country'], count(*) FROM order_placed GROUP BY 1",
        "SELECT get_field(context, 'country'), count(*) FROM order_placed GROUP BY 1",
        "SELECT o.context.country, count(*) FROM order_placed AS o GROUP BY 1",
    ] {
        assert_eq!(counts(&lake.run(sql).await.unwrap()), expected.orders_by_country, "{sql}");
    }
    for sql in [
        QTY_BY_SKU_SQL,
        "SELECT i['sku'], sum(i['qty']) FROM (SELECT unnest(items) AS i FROM order_placed) GROUP BY 1",
        "SELECT t.i.sku, sum(t.i.qty) FROM (SELECT unnest(items) AS i FROM order_placed) AS t GROUP BY 1",
        "SELECT unnest(items)['sku'] AS sku, unnest(items)['qty'] AS qty FROM order_placed",
    ] {
        let sql = if sql.starts_with("SELECT unnest") {
            format!("SELECT sku, sum(qty) FROM ({sql}) GROUP BY 1")
        } else {
            sql.to_owned()
        };
        assert_eq!(counts(&lake.run(&sql).await.unwrap()), expected.qty_by_sku, "{sql}");
    }
    // One row per element: the elements are as many as the sum of the lists' lengths.
    let elements =
        single_i64(&lake.run("SELECT count(*) FROM (SELECT unnest(items) FROM order_placed)").await.unwrap());
    let lengths =
        single_i64(&lake.run("SELECT CAST(sum(cardinality(items)) AS BIGINT) FROM order_placed").await.unwrap());
    assert_eq!(elements, lengths);
    assert!(elements > total_rows(&expected, Some("order_placed")), "lists of one to three items");
    // A field nested in a list element, by index (1-based), filters like any column.
    let first = single_i64(
        &lake.run("SELECT count(*) FROM order_placed WHERE items[1]['qty'] >= 1 AND context.channel IN ('web', 'ios', 'android', 'pos')").await.unwrap(),
    );
    assert_eq!(first, total_rows(&expected, Some("order_placed")));
}

/// Athena's lateral spelling fails as a query to fix, naming the spelling that works.
#[tokio::test]
async fn athena_lateral_unnest_names_the_supported_spelling() {
    let (dir, _) = support::local_lake().await;
    let lake = open(&support::lake_url(&dir)).await;
    let err = lake
        .run("SELECT i.sku, sum(i.qty) FROM order_placed CROSS JOIN unnest(items) AS t(i) GROUP BY 1")
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::InvalidQuery(_)), "{err:?}");
    assert!(err.to_string().contains("(SELECT unnest(items) AS i FROM order_placed)"), "{err}");
}

/// Struct and list values in every output format: JSON objects and arrays, their JSON text in
/// a CSV field, `{...}` / `[...]` in a table.
#[tokio::test]
async fn nested_values_render_in_every_format() {
    let (dir, expected) = support::local_lake().await;
    let url = support::lake_url(&dir);
    let registry = support::registry();
    let sql = "SELECT event_id, context, items FROM order_placed ORDER BY event_id";

    let json = query(&support::lake(&url), &registry, sql, OutputFormat::Json).await.unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.len() as i64, total_rows(&expected, Some("order_placed")));
    // Struct fields in schema order, NULLs explicit.
    assert!(json.contains(r#","context":{"country":""#), "{json}");
    assert!(json.contains(r#","app_version":null},"items":[{"sku":""#), "{json}");
    for row in &rows {
        let context = row["context"].as_object().unwrap();
        let mut keys: Vec<&String> = context.keys().collect();
        keys.sort();
        assert_eq!(keys, ["app_version", "channel", "country"], "{row}");
        assert!(support::COUNTRIES.contains(&context["country"].as_str().unwrap()), "{row}");
        let items = row["items"].as_array().unwrap();
        assert!((1..=3).contains(&items.len()), "{row}");
        for item in items {
            assert!(support::SKUS.contains(&item["sku"].as_str().unwrap()), "{row}");
            assert!(item["qty"].as_i64().unwrap() >= 1, "{row}");
            assert!(item["unit_price"].as_f64().is_some(), "{row}");
        }
    }

    let csv = query(&support::lake(&url), &registry, sql, OutputFormat::Csv).await.unwrap();
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(
        ["event_id", "context", "items"]
            .map(|name| arrow::datatypes::Field::new(name, arrow::datatypes::DataType::Utf8, true))
            .to_vec(),
    ));
    let mut reader = arrow::csv::ReaderBuilder::new(schema).with_header(true).build(csv.as_bytes()).unwrap();
    let batch = reader.next().unwrap().unwrap();
    assert_eq!(batch.num_rows(), rows.len());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(batch.column(0).as_string::<i32>().value(i), row["event_id"].as_str().unwrap());
        for (column, name) in [(1, "context"), (2, "items")] {
            let text = batch.column(column).as_string::<i32>().value(i);
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(value, row[name], "CSV {name} of row {i} is the JSON value");
        }
    }

    let table = query(&support::lake(&url), &registry, sql, OutputFormat::Table).await.unwrap();
    let first = &rows[0];
    let country = first["context"]["country"].as_str().unwrap();
    let sku = first["items"][0]["sku"].as_str().unwrap();
    assert!(table.contains(&format!("{{country: {country}, channel: ")), "{table}");
    assert!(table.contains(&format!("[{{sku: {sku}, qty: ")), "{table}");
}

/// Every number as an f64 (DuckDB and Arrow may spell a whole double as `2` or `2.0`).
fn numbers_as_f64(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_f64).collect()),
        Value::Object(fields) => Value::Object(fields.into_iter().map(|(k, v)| (k, numbers_as_f64(v))).collect()),
        other => other,
    }
}

/// DuckDB, over the same order_placed files, agrees with `sluice query` on nested data: the
/// struct field grouping, the unnest (DuckDB runs Athena's lateral spelling), and every nested
/// value of every row.
#[tokio::test]
async fn nested_queries_match_duckdb() {
    let Some(python) = sluice_testkit::python("nested_queries_match_duckdb") else {
        return;
    };
    let (dir, expected) = support::local_lake().await;
    let url = support::lake_url(&dir);
    let registry = support::registry();
    let lake = open(&url).await;

    let script = r#"
import json, sys, duckdb
root = sys.argv[1]
con = duckdb.connect()
src = f"read_parquet('{root}/events/event_type=order_placed/*/*/*.parquet')"
def rows(sql):
    return {str(k): int(v) for k, v in con.execute(sql).fetchall()}
print(json.dumps({
    "country": rows(f"SELECT context.country, count(*) FROM {src} GROUP BY 1"),
    "sku": rows(f"SELECT i.sku, sum(i.qty) FROM {src} CROSS JOIN unnest(items) AS t(i) GROUP BY 1"),
    "values": {e: {"context": c, "items": i, "coupon": k}
               for e, c, i, k in con.execute(f"SELECT event_id, context, items, coupon FROM {src}").fetchall()},
}))
"#;
    let out = support::run_python(&python, script, &[dir.path().to_str().unwrap()]);
    let duck: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let as_counts = |v: &serde_json::Value| -> BTreeMap<String, i64> {
        v.as_object().unwrap().iter().map(|(k, n)| (k.clone(), n.as_i64().unwrap())).collect()
    };

    let ours = counts(&lake.run("SELECT context.country, count(*) FROM order_placed GROUP BY 1").await.unwrap());
    assert_eq!(ours, as_counts(&duck["country"]), "GROUP BY context.country");
    assert_eq!(ours, expected.orders_by_country);
    let ours = counts(&lake.run(QTY_BY_SKU_SQL).await.unwrap());
    assert_eq!(ours, as_counts(&duck["sku"]), "sluice query vs DuckDB: {QTY_BY_SKU_SQL}");
    assert_eq!(ours, expected.qty_by_sku);

    let json = query(
        &support::lake(&url),
        &registry,
        "SELECT event_id, context, items, coupon FROM order_placed",
        OutputFormat::Json,
    )
    .await
    .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let ours: serde_json::Map<String, serde_json::Value> = rows
        .into_iter()
        .map(|mut r| {
            let id = r["event_id"].as_str().unwrap().to_owned();
            r.as_object_mut().unwrap().remove("event_id");
            (id, r)
        })
        .collect();
    assert_eq!(ours.len() as i64, total_rows(&expected, Some("order_placed")));
    assert_eq!(numbers_as_f64(serde_json::Value::Object(ours)), numbers_as_f64(duck["values"].clone()));
}
