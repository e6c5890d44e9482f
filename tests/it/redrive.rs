//! `sluice dlq list` and `sluice redrive` against the data dir of `sluice up`, as a user runs
//! them after fixing the cause (here: a schema version the running registry lacked).

use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_testkit::generate::{GenConfig, Generator, record_bytes};

use crate::support::{sluice_cmd, start};

fn entries(data_dir: &std::path::Path) -> Vec<Value> {
    serde_json::from_str(&sluice_cmd(&["dlq", "list", "--format", "json", "--data-dir"], data_dir)).unwrap()
}

#[tokio::test]
async fn a_record_rejected_for_a_missing_schema_version_is_redriven_once_the_version_is_there() {
    let dir = tempfile::tempdir().unwrap();
    // A registry with page_view v1 only.
    let schemas = dir.path().join("schemas-v1");
    for (t, v) in [("page_view", "v1"), ("api_call", "v1"), ("purchase", "v1")] {
        std::fs::create_dir_all(schemas.join(t)).unwrap();
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schemas/{t}/{v}.json"));
        std::fs::copy(shipped, schemas.join(format!("{t}/{v}.json"))).unwrap();
    }
    let data = dir.path().join("data");
    let mut sluice = start(&data, &["--schemas-dir", schemas.to_str().unwrap(), "--compact-every", "0"]);
    // Another producer writes a page_view v2 record straight into the stream.
    let event = Generator::new(GenConfig { mix: [1, 0, 0, 0], ..GenConfig::default() }).next_event();
    assert_eq!((event.event_type.as_str(), event.schema_version), ("page_view", 2));
    let stream = sluice_esm::LocalStream::open_existing(&data.join("stream.db"), Default::default()).unwrap();
    stream
        .put_records(&[sluice_esm::PutEntry { partition_key: event.event_id.clone(), data: record_bytes(&event) }])
        .unwrap();
    // Both handlers reject it into the dead letters.
    let deadline = Instant::now() + Duration::from_secs(30);
    while entries(&data).len() < 2 {
        assert!(Instant::now() < deadline, "not dead-lettered: {:?}", entries(&data));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sluice.interrupt(Duration::from_secs(10)).unwrap().0.success());
    let listed = entries(&data);
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert!(
        listed
            .iter()
            .all(|e| e["store"] == "dead_letters" && e["reason"].as_str().unwrap().contains("/schema_version"))
    );
    let table = sluice_cmd(&["dlq", "list", "--data-dir"], &data);
    assert!(table.starts_with("STORE") && table.contains("lake-writer") && table.ends_with("2 entries\n"), "{table}");

    // With the full registry: a dry run changes nothing, then the record goes back once.
    let dry = sluice_cmd(&["redrive", "--dry-run", "--data-dir"], &data);
    assert_eq!(dry, "would redrive 1, still invalid 0, unrecoverable 0, not written 0 (dry run: nothing changed)\n");
    assert_eq!(entries(&data).len(), 2);
    let mut sluice = start(&data, &["--compact-every", "0"]);
    assert_eq!(
        sluice_cmd(&["redrive", "--data-dir"], &data),
        "redriven 1, still invalid 0, unrecoverable 0, not written 0\n"
    );
    assert!(entries(&data).is_empty());
    let sql = format!("SELECT count(*) AS n FROM page_view WHERE event_id = '{}'", event.event_id);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if data.join("lake/events").is_dir() {
            let rows: Vec<Value> =
                serde_json::from_str(&sluice_cmd(&["query", "--format", "json", &sql, "--data-dir"], &data)).unwrap();
            if rows[0]["n"] == 1 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the redriven record did not reach the lake");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sluice_cmd(&["redrive", "--data-dir"], &data),
        "redriven 0, still invalid 0, unrecoverable 0, not written 0\n"
    );
    assert!(sluice.interrupt(Duration::from_secs(10)).unwrap().0.success());
}
