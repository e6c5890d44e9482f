//! `sluice compact` and `sluice backfill` against the data dir of a running `sluice up`, as a
//! user runs them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::TimestampMicrosecondType;
use serde_json::Value;

use crate::pipeline::{post_all, workload};
use crate::support::{Sluice, http, sluice_cmd, start};

const RANGE: (&str, &str) = ("2026-11-26T08:00:00Z", "2026-11-26T11:00:00Z");
const TYPES: [&str; 3] = ["page_view", "api_call", "purchase"];

/// `GET /v1/aggregates` of `event_type` over [`RANGE`] (`group_by` may be empty).
async fn aggregates(
    sluice: &Sluice,
    data_dir: &std::path::Path,
    event_type: &str,
    window: &str,
    group_by: &str,
) -> Value {
    let token =
        sluice_cmd(&["token", "--producer", "dashboard", "--scope", "sluice/metrics.read", "--data-dir"], data_dir);
    let auth = format!("Bearer {}", token.lines().last().unwrap());
    let mut uri = format!("/v1/aggregates?event_type={event_type}&window={window}&from={}&to={}", RANGE.0, RANGE.1);
    if !group_by.is_empty() {
        uri.push_str(&format!("&group_by={group_by}"));
    }
    let (status, body) = http(sluice.addr, "GET", &uri, &[("Authorization", auth.as_str())], b"").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// Events counted in the 1h windows of every type.
async fn counted(sluice: &Sluice, data_dir: &std::path::Path) -> u64 {
    let mut n = 0;
    for t in TYPES {
        let v = aggregates(sluice, data_dir, t, "1h", "").await;
        n += v["buckets"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>();
    }
    n
}

async fn wait_counted(sluice: &Sluice, data_dir: &std::path::Path, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while counted(sluice, data_dir).await != n {
        assert!(Instant::now() < deadline, "the aggregates did not reach {n} events in time");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every 1m and 1h aggregate of every type, and purchases by country.
async fn all_aggregates(sluice: &Sluice, data_dir: &std::path::Path) -> Vec<Value> {
    let mut out = Vec::new();
    for t in TYPES {
        for w in ["1m", "1h"] {
            out.push(aggregates(sluice, data_dir, t, w, "").await);
        }
    }
    out.push(aggregates(sluice, data_dir, "purchase", "1m", "country").await);
    out
}

fn query_count(data_dir: &std::path::Path, sql: &str) -> u64 {
    let out = sluice_cmd(&["query", "--format", "json", sql, "--data-dir"], data_dir);
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    rows[0]["n"].as_u64().unwrap()
}

/// Every data file of the lake: path -> its occurred_at column, in file order. A file that a
/// running compaction deletes between the listing and the read is "not found": the reader
/// lists again, as the docs tell readers to.
async fn lake_files(data_dir: &std::path::Path) -> BTreeMap<String, Vec<i64>> {
    let url = url::Url::from_directory_path(std::fs::canonicalize(data_dir.join("lake")).unwrap()).unwrap();
    let lake = sluice_lake::Lake::open(url.as_str(), &Default::default()).unwrap();
    'listing: for _ in 0..50 {
        let mut out = BTreeMap::new();
        for file in lake.list_files(None).await.unwrap() {
            let path = file.path.partition.file_path(&file.path.file_name);
            let Ok(batches) = lake.read_parquet(&path).await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue 'listing;
            };
            let mut occurred = Vec::new();
            for batch in batches {
                let column = batch.column_by_name("occurred_at").unwrap().as_primitive::<TimestampMicrosecondType>();
                occurred.extend(column.values().iter().copied());
            }
            out.insert(path, occurred);
        }
        return out;
    }
    panic!("the lake kept changing under the listing");
}

async fn wait_for_rows(data_dir: &std::path::Path, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !data_dir.join("lake/events").is_dir() || query_count(data_dir, "SELECT count(*) AS n FROM events") < n {
        assert!(Instant::now() < deadline, "the lake did not receive {n} rows in time");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn compact(data_dir: &std::path::Path) -> String {
    sluice_cmd(&["compact", "--data-dir"], data_dir)
}

fn with_id(mut event: Value, i: usize) -> Value {
    event["event_id"] = Value::String(format!("0190b9a4-7f3e-7c2a-9b1d-{i:012x}"));
    event
}

#[tokio::test]
async fn compact_and_backfill_leave_every_event_once_in_the_lake_and_the_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let mut sluice = start(dir.path(), &["--rate-limit", "0", "--compact-every", "0"]);
    // 1,200 events into hours long closed, in small batches; 300 of them posted again.
    let events: Vec<Value> = workload(1_200).into_iter().enumerate().map(|(i, e)| with_id(e, i)).collect();
    post_all(&sluice, dir.path(), &events).await;
    post_all(&sluice, dir.path(), &events[..300]).await;
    wait_for_rows(dir.path(), 1_500).await;
    let before = lake_files(dir.path()).await;

    wait_counted(&sluice, dir.path(), 1_500).await;
    let summary = compact(dir.path());
    assert!(summary.contains("(300 duplicates removed)"), "{summary}");
    let distinct = "SELECT count(DISTINCT event_id) AS n FROM events";
    assert_eq!(query_count(dir.path(), "SELECT count(*) AS n FROM events"), 1_200);
    assert_eq!(query_count(dir.path(), distinct), 1_200);
    let after = lake_files(dir.path()).await;
    let partitions = |files: &BTreeMap<String, Vec<i64>>| {
        files.keys().map(|p| p.rsplit_once('/').unwrap().0.to_owned()).collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(partitions(&after), partitions(&before));
    assert_eq!(after.len(), partitions(&after).len(), "one file per partition: {:?}", after.keys());
    for (path, occurred) in &after {
        assert!(path.contains("/compacted-"), "{path}");
        assert!(occurred.windows(2).all(|w| w[0] <= w[1]), "{path} is sorted by occurred_at");
    }

    // The stream counted the 300 re-posts again; a backfill makes every window exact: equal to
    // a pipeline that saw each event once.
    let truth_dir = tempfile::tempdir().unwrap();
    let mut truth = start(truth_dir.path(), &["--rate-limit", "0", "--compact-every", "0"]);
    post_all(&truth, truth_dir.path(), &events).await;
    wait_counted(&truth, truth_dir.path(), 1_200).await;
    assert_ne!(all_aggregates(&sluice, dir.path()).await, all_aggregates(&truth, truth_dir.path()).await);
    let plan = sluice_cmd(&["backfill", "--dry-run", "--from", RANGE.0, "--to", RANGE.1, "--data-dir"], dir.path());
    let items = plan.lines().filter(|l| l.ends_with(" windows")).count();
    assert!(
        items > 0 && plan.trim_end().ends_with(&format!("{items} items to backfill (dry run: nothing changed)")),
        "{plan}"
    );
    assert_ne!(all_aggregates(&sluice, dir.path()).await, all_aggregates(&truth, truth_dir.path()).await);
    let summary = sluice_cmd(&["backfill", "--from", RANGE.0, "--to", RANGE.1, "--data-dir"], dir.path());
    assert!(summary.starts_with(&format!("backfilled {items} items: ")), "{summary}");
    assert!(summary.contains(" partials written"), "{summary}");
    assert_eq!(counted(&sluice, dir.path()).await, 1_200);
    assert_eq!(all_aggregates(&sluice, dir.path()).await, all_aggregates(&truth, truth_dir.path()).await);

    // Late events into a compacted hour: they count, and the next compaction picks up their
    // file, and only it.
    let late: Vec<Value> =
        workload(1_205)[1_200..].iter().cloned().enumerate().map(|(i, e)| with_id(e, 5_000 + i)).collect();
    post_all(&sluice, dir.path(), &late).await;
    post_all(&truth, truth_dir.path(), &late).await;
    wait_for_rows(dir.path(), 1_205).await;
    wait_counted(&sluice, dir.path(), 1_205).await;
    wait_counted(&truth, truth_dir.path(), 1_205).await;
    assert_eq!(all_aggregates(&sluice, dir.path()).await, all_aggregates(&truth, truth_dir.path()).await);
    assert!(truth.interrupt(Duration::from_secs(10)).unwrap().0.success());
    let summary = compact(dir.path());
    assert!(summary.starts_with("compacted ") && !summary.starts_with("compacted 0 "), "{summary}");
    assert_eq!(query_count(dir.path(), distinct), 1_205);
    assert_eq!(query_count(dir.path(), "SELECT count(*) AS n FROM events"), 1_205);
    let settled = lake_files(dir.path()).await;
    assert_eq!(settled.len(), partitions(&settled).len(), "one file per partition again");

    // Nothing left to do: the same files.
    let summary = compact(dir.path());
    assert!(summary.starts_with("compacted 0 partitions"), "{summary}");
    assert_eq!(lake_files(dir.path()).await, settled);
    let plan = sluice_cmd(&["compact", "--dry-run", "--data-dir"], dir.path());
    assert!(plan.contains("0 partitions to compact"), "{plan}");
    assert!(sluice.interrupt(Duration::from_secs(10)).unwrap().0.success());
}

#[tokio::test]
async fn sluice_up_compacts_on_its_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let mut sluice = start(dir.path(), &["--rate-limit", "0", "--compact-every", "1s"]);
    let events: Vec<Value> = workload(300).into_iter().enumerate().map(|(i, e)| with_id(e, i)).collect();
    post_all(&sluice, dir.path(), &events).await;
    post_all(&sluice, dir.path(), &events[..100]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let files =
            if dir.path().join("lake/events").is_dir() { lake_files(dir.path()).await } else { BTreeMap::new() };
        let rows: usize = files.values().map(Vec::len).sum();
        if rows == 300 && files.keys().all(|p| p.contains("/compacted-")) {
            break;
        }
        assert!(Instant::now() < deadline, "not compacted in time: {} rows in {:?}", rows, files.keys());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(query_count(dir.path(), "SELECT count(DISTINCT event_id) AS n FROM events"), 300);
    assert!(sluice.interrupt(Duration::from_secs(10)).unwrap().0.success());
    let log: Vec<String> = sluice.stderr.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("lake compaction finished")), "{log:?}");
}
