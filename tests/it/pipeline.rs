//! End to end through `sluice up`: events posted over HTTP reach the lake (and are read back by
//! `sluice query`, pyarrow and DuckDB) and the aggregates.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Sluice, http, sluice_cmd, start};

/// A deterministic workload: `n` producer events of the three shipped types over three hours.
pub fn workload(n: usize) -> Vec<Value> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let countries = ["DE", "US", "FR", "BR", "JP"];
    let devices = ["ios", "android", "web", "tv"];
    (0..n)
        .map(|i| {
            let at = format!("2026-11-26T{:02}:{:02}:{:02}.{:06}Z", 8 + next(3), next(60), next(60), next(1_000_000));
            let country = countries[next(5) as usize];
            let user = format!("u{}", next(200));
            match i % 3 {
                0 => json!({"event_type": "page_view", "occurred_at": at, "data": {
                    "user_id": user, "session_id": format!("s{}", next(50)), "page": format!("/p/{}", next(20)),
                    "device": devices[next(4) as usize], "country": country, "duration_ms": next(100_000) as f64 / 10.0}}),
                1 => {
                    let status = [200, 201, 404, 500][next(4) as usize];
                    json!({"event_type": "api_call", "schema_version": 1, "occurred_at": at, "data": {
                        "client_id": format!("c{}", next(30)), "route": format!("/v1/r{}", next(5)),
                        "status": status, "latency_ms": 1 + next(2_000)}})
                }
                _ => {
                    let currency = ["EUR", "USD"][next(2) as usize];
                    json!({"event_type": "purchase", "occurred_at": at, "data": {
                        "user_id": user, "order_id": format!("o{i}"), "amount": next(100_000) as f64 / 100.0,
                        "currency": currency, "country": country}})
                }
            }
        })
        .collect()
}

/// Posts `events` in batches of 100 with a fresh token; asserts every event is accepted.
pub async fn post_all(sluice: &Sluice, data_dir: &std::path::Path, events: &[Value]) {
    let token = sluice_cmd(
        &[
            "token",
            "--producer",
            "e2e",
            "--scope",
            "sluice/events.write",
            "--scope",
            "sluice/metrics.read",
            "--data-dir",
        ],
        data_dir,
    );
    let auth = format!("Bearer {}", token.lines().last().unwrap());
    for chunk in events.chunks(100) {
        let body = serde_json::to_vec(chunk).unwrap();
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        let (status, resp) = http(sluice.addr, "POST", "/v1/events", &headers, &body).await;
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&resp));
        let resp: Value = serde_json::from_slice(&resp).unwrap();
        assert_eq!(resp["accepted"].as_u64(), Some(chunk.len() as u64), "{resp}");
    }
}

fn query_json(data_dir: &std::path::Path, sql: &str) -> Vec<Value> {
    let out = sluice_cmd(&["query", "--format", "json", sql, "--data-dir"], data_dir);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON from sluice query ({e}): {out}"))
}

#[tokio::test]
async fn posted_events_land_in_the_lake_once_and_every_reader_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let mut sluice = start(dir.path(), &["--rate-limit", "0"]);
    let events = workload(1_500);
    post_all(&sluice, dir.path(), &events).await;

    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        *expected.entry(e["event_type"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    // The lake writer runs behind the stream: wait until every event is in the lake.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lake = dir.path().join("lake").join("events");
        if lake.is_dir() {
            let rows = query_json(dir.path(), "SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY 1");
            let got: BTreeMap<String, u64> =
                rows.iter().map(|r| (r["event_type"].as_str().unwrap().to_owned(), r["n"].as_u64().unwrap())).collect();
            if got == expected {
                break;
            }
            assert!(got.values().sum::<u64>() <= events.len() as u64, "more rows than events: {got:?}");
        }
        assert!(Instant::now() < deadline, "the lake did not receive every event in time");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, metrics) = http(sluice.addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("sluice_lake_rows_written_total 1500\n"), "{metrics}");
    assert!(metrics.contains("sluice_ingest_events_total{outcome=\"accepted\"} 1500\n"), "{metrics}");
    assert!(metrics.contains("# TYPE sluice_esm_records_total counter\n"), "{metrics}");
    sluice_telemetry::prometheus::check_exposition(&metrics).unwrap_or_else(|e| panic!("{e}:\n{metrics}"));
    assert!(sluice.interrupt(Duration::from_secs(10)).unwrap().0.success());

    // `sluice query` per country equals the ground truth.
    let mut truth: BTreeMap<String, u64> = BTreeMap::new();
    for e in events.iter().filter(|e| e["event_type"] == "page_view") {
        *truth.entry(e["data"]["country"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let rows = query_json(dir.path(), "SELECT country, count(*) AS n FROM page_view GROUP BY 1 ORDER BY 1");
    let by_country: BTreeMap<String, u64> =
        rows.iter().map(|r| (r["country"].as_str().unwrap().to_owned(), r["n"].as_u64().unwrap())).collect();
    assert_eq!(by_country, truth);

    // pyarrow and DuckDB read the same lake: same counts, no duplicate event ids, µs UTC.
    let Some(python) = sluice_testkit::python("posted_events_land_in_the_lake_once_and_every_reader_agrees") else {
        return;
    };
    let lake = dir.path().join("lake");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("loadtest/peers/lake_check.py");
    let out = std::process::Command::new(&python).arg(&script).arg(&lake).output().unwrap();
    assert!(out.status.success(), "lake_check.py: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let all: BTreeMap<String, u64> = serde_json::from_value(report["duckdb_all_types"].clone()).unwrap();
    assert_eq!(all, expected);
    for (t, n) in &expected {
        for reader in ["pyarrow", "duckdb"] {
            assert_eq!(report["tables"][t][reader]["rows"].as_u64(), Some(*n), "{reader} {t}");
            assert_eq!(report["tables"][t][reader]["duplicate_event_ids"].as_u64(), Some(0), "{reader} {t}");
        }
        for column in ["occurred_at", "received_at"] {
            let logical: Value = serde_json::from_str(
                report["tables"][t]["footer"]["timestamp_logical_types"][column].as_str().unwrap(),
            )
            .unwrap();
            assert_eq!(logical["timeUnit"], "microseconds");
            assert_eq!(logical["isAdjustedToUTC"], true);
        }
    }
    // DuckDB's answer to the acceptance query equals `sluice query`'s.
    let glob = lake.join("events/event_type=page_view/*/*/*.parquet");
    let duck = std::process::Command::new(&python)
        .arg("-c")
        .arg(format!(
            "import duckdb,json; print(json.dumps(dict(duckdb.sql(\"SELECT country, count(*) FROM read_parquet('{}', hive_partitioning=true) GROUP BY 1\").fetchall())))",
            glob.display()
        ))
        .output()
        .unwrap();
    assert!(duck.status.success(), "{}", String::from_utf8_lossy(&duck.stderr));
    let duck: BTreeMap<String, u64> = serde_json::from_slice(&duck.stdout).unwrap();
    assert_eq!(duck, by_country);
}

/// The value at 0-based rank floor(q·(n−1)) of `values` (the aggregates' quantile definition).
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).floor() as usize]
}

#[tokio::test]
async fn posted_events_appear_in_the_aggregates_within_5_s_and_match_the_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let mut sluice = start(dir.path(), &["--rate-limit", "0"]);
    let events = workload(3_000);
    post_all(&sluice, dir.path(), &events).await;
    let posted = Instant::now();

    // Ground truth per (hour, country) of purchases: count, sum, min, max, distinct users, amounts.
    struct Truth {
        count: u64,
        sum: f64,
        min: f64,
        max: f64,
        users: std::collections::BTreeSet<String>,
        amounts: Vec<f64>,
    }
    let mut truth: BTreeMap<(String, String), Truth> = BTreeMap::new();
    for e in events.iter().filter(|e| e["event_type"] == "purchase") {
        let hour = format!("{}:00:00Z", &e["occurred_at"].as_str().unwrap()[..13]);
        let country = e["data"]["country"].as_str().unwrap().to_owned();
        let amount = e["data"]["amount"].as_f64().unwrap();
        let t = truth.entry((hour, country)).or_insert(Truth {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            users: Default::default(),
            amounts: Vec::new(),
        });
        t.count += 1;
        t.sum += amount;
        t.min = t.min.min(amount);
        t.max = t.max.max(amount);
        t.users.insert(e["data"]["user_id"].as_str().unwrap().to_owned());
        t.amounts.push(amount);
    }
    let expected_total: u64 = truth.values().map(|t| t.count).sum();

    let token =
        sluice_cmd(&["token", "--producer", "dashboard", "--scope", "sluice/metrics.read", "--data-dir"], dir.path());
    let auth = format!("Bearer {}", token.lines().last().unwrap());
    let uri = "/v1/aggregates?event_type=purchase&window=1h&from=2026-11-26T08:00:00Z&to=2026-11-26T11:00:00Z&group_by=country";
    let buckets = loop {
        let (status, body) = http(sluice.addr, "GET", uri, &[("Authorization", auth.as_str())], b"").await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        let buckets = v["buckets"].as_array().unwrap().clone();
        let total: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
        assert!(total <= expected_total, "counted more events than were posted: {total}");
        if total == expected_total {
            break buckets;
        }
        assert!(
            posted.elapsed() < Duration::from_secs(5),
            "aggregates incomplete 5 s after posting: {total}/{expected_total}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(sluice.interrupt(Duration::from_secs(10)).unwrap().0.success());

    // The CLI gives the same answer as the HTTP API.
    let cli = sluice_cmd(
        &[
            "aggregates",
            "--event-type",
            "purchase",
            "--window",
            "1h",
            "--from",
            "2026-11-26T08:00:00Z",
            "--to",
            "2026-11-26T11:00:00Z",
            "--group-by",
            "country",
            "--data-dir",
        ],
        dir.path(),
    );
    let cli: Value = serde_json::from_str(&cli).unwrap();
    assert_eq!(cli["buckets"].as_array().unwrap(), &buckets);

    assert_eq!(buckets.len(), truth.len());
    for b in &buckets {
        let key = (b["window_start"].as_str().unwrap().to_owned(), b["dims"]["country"].as_str().unwrap().to_owned());
        let t = truth.get_mut(&key).unwrap_or_else(|| panic!("unexpected bucket {b}"));
        assert_eq!(b["count"].as_u64(), Some(t.count), "{key:?}");
        assert!((b["sum"].as_f64().unwrap() - t.sum).abs() < 1e-6 * t.count as f64, "{key:?} sum {b}");
        assert_eq!(b["min"].as_f64(), Some(t.min), "{key:?}");
        assert_eq!(b["max"].as_f64(), Some(t.max), "{key:?}");
        let distinct = b["distinct"].as_f64().unwrap();
        let users = t.users.len() as f64;
        assert!((distinct - users).abs() <= (0.02 * users).max(1.0), "{key:?} distinct {distinct} vs {users}");
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            let want = quantile(&mut t.amounts, q);
            let got = b[name].as_f64().unwrap();
            assert!((got - want).abs() <= 0.01 * want.abs() + 1e-9, "{key:?} {name}: {got} vs {want}");
        }
        // Every event here is hours older than its window plus the allowed lateness.
        assert_eq!(b["late"].as_u64(), Some(t.count), "{key:?}");
    }
}

#[tokio::test]
async fn extreme_measures_and_event_times_give_an_exact_answer_or_a_clear_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let sluice = start(dir.path(), &["--rate-limit", "0"]);
    let token = sluice_cmd(
        &[
            "token",
            "--producer",
            "edge",
            "--scope",
            "sluice/events.write",
            "--scope",
            "sluice/metrics.read",
            "--data-dir",
        ],
        dir.path(),
    );
    let auth = format!("Bearer {}", token.lines().last().unwrap());
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let page_view = |minute: u32, duration: Value| {
        json!({"event_type": "page_view", "occurred_at": format!("2026-11-26T12:{minute:02}:30Z"), "data": {
            "user_id": "u-1", "session_id": "s-1", "page": "/", "device": "web", "country": "DE",
            "duration_ms": duration}})
    };
    let post = |events: Vec<Value>| async move {
        let (status, body) =
            http(sluice.addr, "POST", "/v1/events", &headers, &serde_json::to_vec(&events).unwrap()).await;
        (status, serde_json::from_slice::<Value>(&body).unwrap())
    };

    // Beyond the measure limit: rejected, naming the bound, nothing stored.
    let (status, body) = post(vec![page_view(0, json!(1.7e308)), page_view(0, json!(1.7e308))]).await;
    assert_eq!(status, 422, "{body}");
    let error = &body["results"][0]["errors"][0];
    assert_eq!(error["pointer"], "/data/duration_ms", "{body}");
    assert_eq!(error["message"], "must be <= 1e+30", "{body}");
    // Before the lake's first day (Athena would never see it): rejected, naming the range.
    let mut year_zero = page_view(0, json!(1.0));
    year_zero["occurred_at"] = json!("0000-01-01T00:00:00Z");
    let (status, body) = post(vec![year_zero]).await;
    assert_eq!(status, 422, "{body}");
    let error = &body["results"][0]["errors"][0];
    assert_eq!(error["pointer"], "/occurred_at", "{body}");
    let message = error["message"].as_str().unwrap();
    assert!(message.starts_with("must be between 2000-01-01T00:00:00Z (the lake's first day) and "), "{message}");

    // At the limit: an exact sum far beyond 128 bits of millionths, finite quantiles.
    let (status, body) = post((0..200).map(|_| page_view(1, json!(1e30))).collect()).await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(200)), "{body}");
    // One value: every quantile is that value.
    let (status, body) = post(vec![page_view(2, json!(3.0))]).await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(1)), "{body}");

    let uri = "/v1/aggregates?event_type=page_view&window=1m&from=2026-11-26T12:00:00Z&to=2026-11-26T12:03:00Z";
    let deadline = Instant::now() + Duration::from_secs(30);
    let buckets = loop {
        let (status, body) = http(sluice.addr, "GET", uri, &[("Authorization", auth.as_str())], b"").await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        let buckets = v["buckets"].as_array().unwrap().clone();
        if buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>() == 201 {
            break buckets;
        }
        assert!(Instant::now() < deadline, "aggregates incomplete: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(buckets.len(), 2, "{buckets:?}");
    let huge = &buckets[0];
    assert_eq!(huge["window_start"], "2026-11-26T12:01:00Z");
    let sum = huge["sum"].as_f64().unwrap();
    assert!((sum - 2e32).abs() <= 2e32 * 1e-15, "{huge}");
    for q in ["min", "max", "p50", "p90", "p99"] {
        assert_eq!(huge[q].as_f64(), Some(1e30), "{q}: {huge}");
    }
    let one = &buckets[1];
    for q in ["sum", "min", "max", "p50", "p90", "p99"] {
        assert_eq!(one[q].as_f64(), Some(3.0), "{q}: {one}");
    }
    assert_eq!(one["distinct"].as_u64(), Some(1));
}
