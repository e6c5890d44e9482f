//! Rich event data through `sluice up`, as a user sends it: `order_placed` (a nested object, an
//! array of objects, a nullable string, a date-time) posted over HTTP lands in the lake with
//! nested column types that pyarrow and DuckDB read, `sluice query` unnests it as DuckDB does,
//! `/v1/aggregates` groups it by a nested dimension exactly, and compaction and backfill handle
//! the nested table as any other.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sluice_schemas::Event;
use sluice_testkit::generate::{GenConfig, Generator};

use crate::pipeline::post_all;
use crate::support::{Sluice, http, sluice_cmd, start};

const FROM: &str = "2026-11-26T08:00:00Z";
const TO: &str = "2026-11-26T10:00:00Z";

/// `n` generated orders placed between 08:00 and 09:40 on 2026-11-26 (hours long closed).
fn orders(n: usize) -> Vec<Event> {
    let start: DateTime<Utc> = FROM.parse().unwrap();
    let config = GenConfig {
        seed: 7,
        start,
        events_per_second: n as f64 / 6_000.0,
        mix: [0, 0, 0, 1],
        users: 300,
        late_fraction: 0.0,
        ..GenConfig::default()
    };
    Generator::new(config).take(n)
}

/// The producer JSON of a generated event (what a client posts).
fn posted(event: &Event) -> Value {
    json!({
        "event_id": event.event_id,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "occurred_at": event.occurred_at,
        "data": event.data,
    })
}

fn query(data_dir: &std::path::Path, sql: &str) -> Vec<Value> {
    let out = sluice_cmd(&["query", "--format", "json", sql, "--data-dir"], data_dir);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON from sluice query ({e}): {out}"))
}

fn count(data_dir: &std::path::Path, sql: &str) -> u64 {
    query(data_dir, sql)[0]["n"].as_u64().unwrap()
}

async fn wait_for_rows(data_dir: &std::path::Path, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let sql = "SELECT count(*) AS n FROM order_placed";
    while !data_dir.join("lake/events/event_type=order_placed").is_dir() || count(data_dir, sql) < n {
        assert!(Instant::now() < deadline, "the lake did not receive {n} orders in time");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `GET /v1/aggregates` of order_placed in 1h windows over [`FROM`, `TO`), by `group_by`.
async fn by(sluice: &Sluice, data_dir: &std::path::Path, group_by: &str) -> Value {
    let token =
        sluice_cmd(&["token", "--producer", "dashboard", "--scope", "sluice/metrics.read", "--data-dir"], data_dir);
    let auth = format!("Bearer {}", token.lines().last().unwrap());
    let uri = format!("/v1/aggregates?event_type=order_placed&window=1h&from={FROM}&to={TO}&group_by={group_by}");
    let (status, body) = http(sluice.addr, "GET", &uri, &[("Authorization", auth.as_str())], b"").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// (hour, country) -> (count, total in cents, min, max) of `events`: the ground truth.
fn truth_by_country(events: &[Event]) -> BTreeMap<(String, String), (u64, i64, f64, f64)> {
    let mut out: BTreeMap<(String, String), (u64, i64, f64, f64)> = BTreeMap::new();
    for e in events {
        let hour = e.occurred_at.format("%Y-%m-%dT%H:00:00Z").to_string();
        let country = e.data["context"]["country"].as_str().unwrap().to_owned();
        let total = e.data["total"].as_f64().unwrap();
        let entry = out.entry((hour, country)).or_insert((0, 0, f64::INFINITY, f64::NEG_INFINITY));
        entry.0 += 1;
        entry.1 += (total * 100.0).round() as i64;
        entry.2 = entry.2.min(total);
        entry.3 = entry.3.max(total);
    }
    out
}

/// The answer's buckets in the shape of [`truth_by_country`].
fn answered_by_country(answer: &Value) -> BTreeMap<(String, String), (u64, i64, f64, f64)> {
    answer["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let start: DateTime<Utc> = b["window_start"].as_str().unwrap().parse().unwrap();
            let key =
                (start.format("%Y-%m-%dT%H:00:00Z").to_string(), b["dims"]["country"].as_str().unwrap().to_owned());
            let cents = (b["sum"].as_f64().unwrap() * 100.0).round() as i64;
            (key, (b["count"].as_u64().unwrap(), cents, b["min"].as_f64().unwrap(), b["max"].as_f64().unwrap()))
        })
        .collect()
}

/// Units sold per SKU, from the events.
fn units_by_sku(events: &[Event]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for e in events {
        for item in e.data["items"].as_array().unwrap() {
            *out.entry(item["sku"].as_str().unwrap().to_owned()).or_insert(0) += item["qty"].as_i64().unwrap();
        }
    }
    out
}

/// `sluice query`'s units per SKU (the nested array unnested).
fn queried_units(data_dir: &std::path::Path) -> BTreeMap<String, i64> {
    let sql = "SELECT i.sku AS sku, sum(i.qty) AS units FROM (SELECT unnest(items) AS i FROM order_placed) \
               GROUP BY 1 ORDER BY 1";
    query(data_dir, sql)
        .into_iter()
        .map(|row| (row["sku"].as_str().unwrap().to_owned(), row["units"].as_i64().unwrap()))
        .collect()
}

/// What pyarrow and DuckDB make of the lake's order_placed files: pyarrow's column types, and
/// DuckDB's units per SKU, rows, coupons and distinct countries.
const READERS: &str = r#"
import glob, json, sys
import duckdb, pyarrow.parquet as pq
files = sorted(glob.glob(sys.argv[1] + "/**/*.parquet", recursive=True))
schema = pq.read_schema(files[0])
types = {name: str(schema.field(name).type) for name in ["context", "items", "coupon", "placed_at"]}
con = duckdb.connect()
con.read_parquet(files).create_view("o")
units = dict(con.execute("SELECT i.sku, sum(i.qty) FROM o CROSS JOIN unnest(items) AS t(i) GROUP BY 1").fetchall())
rows, coupons, countries = con.execute(
    "SELECT count(*), count(coupon), count(DISTINCT context.country) FROM o").fetchone()
late = con.execute("SELECT count(*) FROM o WHERE placed_at > occurred_at").fetchone()[0]
print(json.dumps({"types": types, "units": {k: int(v) for k, v in units.items()}, "rows": rows,
                  "coupons": coupons, "countries": countries, "placed_after_occurred": late}))
"#;

fn readers(python: &str, data_dir: &std::path::Path) -> Value {
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(READERS)
        .arg(data_dir.join("lake/events/event_type=order_placed"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(out.status.success(), "{python} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn orders_flow_through_sluice_up_into_the_lake_queries_and_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let mut sluice = start(dir.path(), &["--rate-limit", "0", "--compact-every", "0"]);
    let events = orders(600);
    let bodies: Vec<Value> = events.iter().map(posted).collect();
    post_all(&sluice, dir.path(), &bodies).await;
    // 100 of them posted again (a producer's retries): the stream counts them twice, the lake
    // holds them twice until compaction.
    post_all(&sluice, dir.path(), &bodies[..100]).await;
    wait_for_rows(dir.path(), 700).await;

    // The lake's column types, as pyarrow reads them; DuckDB's answers on the same files.
    if let Some(python) = sluice_testkit::python("orders_flow_through_sluice_up") {
        let read = readers(&python, dir.path());
        assert_eq!(
            read["types"],
            json!({
                "context": "struct<country: string not null, channel: string not null, app_version: string>",
                "items": "list<element: struct<sku: string not null, qty: int64 not null, unit_price: double not null> not null>",
                "coupon": "string",
                "placed_at": "timestamp[us, tz=UTC]",
            })
        );
        assert_eq!(read["rows"], 700);
        assert_eq!(read["placed_after_occurred"], 0, "placed_at is a timestamp, compared as one");
        let coupons = events.iter().chain(&events[..100]).filter(|e| !e.data["coupon"].is_null()).count();
        assert_eq!(read["coupons"], coupons, "a null coupon is a NULL");
        let mut with_retries = units_by_sku(&events);
        for (sku, units) in units_by_sku(&events[..100]) {
            *with_retries.entry(sku).or_insert(0) += units;
        }
        let duckdb: BTreeMap<String, i64> = serde_json::from_value(read["units"].clone()).unwrap();
        assert_eq!(duckdb, with_retries, "DuckDB unnests the items");
        assert_eq!(queried_units(dir.path()), duckdb, "sluice query equals DuckDB on the same files");
    }

    // The aggregates by the nested dimension count the re-posts (the stream is at least once)...
    let truth = truth_by_country(&events);
    let with_retries: Vec<Event> = events.iter().chain(&events[..100]).cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered_by_country(&by(&sluice, dir.path(), "country").await) != truth_by_country(&with_retries) {
        assert!(Instant::now() < deadline, "the aggregates did not reach the 700 posted orders in time");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // ... its whole path names the same dimension.
    assert_eq!(by(&sluice, dir.path(), "context/country").await, by(&sluice, dir.path(), "country").await);

    // Compaction keeps one copy of each order; backfill makes every window exact.
    let summary = sluice_cmd(&["compact", "--data-dir"], dir.path());
    assert!(summary.contains("(100 duplicates removed)"), "{summary}");
    assert_eq!(count(dir.path(), "SELECT count(*) AS n FROM order_placed"), 600);
    assert_eq!(queried_units(dir.path()), units_by_sku(&events), "the nested values survive compaction");
    let summary = sluice_cmd(&["backfill", "--from", FROM, "--to", TO, "--data-dir"], dir.path());
    assert!(summary.starts_with("backfilled "), "{summary}");
    assert_eq!(answered_by_country(&by(&sluice, dir.path(), "country").await), truth);
    let by_channel = by(&sluice, dir.path(), "channel").await;
    let counted: u64 = by_channel["buckets"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 600);
    assert!(sluice.interrupt(Duration::from_secs(10)).unwrap().0.success());
}
