//! One lake URL, one store: the lake writer (`sluice-sinks`) and the query engine both open a
//! lake through `sluice_lake::Lake`, and for every URL form (a bare path, `file://`, `memory://`,
//! `s3://` on moto) what the writer writes under a URL is what the query engine reads under it:
//! the same objects, at the same store locations, every row once.

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use chrono::{DateTime, Utc};
use sluice_dlq::MemoryDeadLetters;
use sluice_lake::Lake;
use sluice_query::QuerySession;
use sluice_schemas::Registry;
use sluice_sinks::LakeWriter;
use sluice_stream::kinesis_input::KinesisBatch;
use sluice_testkit::generate::{GenConfig, Generator, kinesis_event, record_bytes};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z").unwrap().with_timezone(&Utc)
}

/// Writes one batch with the lake writer through `write`, then checks that `read` (opened from
/// the same location) lists the same files and that a query over it scans exactly those objects
/// and sees every event once.
async fn written_then_queried(write: Lake, read: Lake) {
    assert_eq!(read.url(), write.url());
    let registry = Arc::new(Registry::builtin().unwrap());
    let mut generator =
        Generator::new(GenConfig { seed: 15, events_per_second: 300.0 / 7200.0, ..GenConfig::default() });
    let events = generator.take(300);
    let batch = kinesis_event("shardId-000000000001", 0, events.iter().map(record_bytes).collect(), now());
    let writer = LakeWriter::new(Arc::clone(&registry), write.clone(), MemoryDeadLetters::new());
    let (response, outcome) = writer.process(&KinesisBatch::from(&batch), now()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert!(outcome.files_written.len() > 1, "several partitions: {:?}", outcome.files_written);

    let locations =
        |files: Vec<sluice_lake::LakeFile>| -> Vec<String> { files.into_iter().map(|f| f.location).collect() };
    let written = locations(write.list_files(None).await.unwrap());
    assert_eq!(locations(read.list_files(None).await.unwrap()), written, "the reader lists the writer's objects");
    let mut relative: Vec<String> = outcome.files_written.clone();
    relative.sort();
    let root = write.root().as_ref();
    let expected: Vec<String> =
        relative.iter().map(|p| if root.is_empty() { p.clone() } else { format!("{root}/{p}") }).collect();
    assert_eq!(written, expected, "files are where the layout says, under the URL's root");

    let session = QuerySession::open(&read, &registry).await.unwrap();
    assert_eq!(session.files_to_scan("SELECT event_id FROM events").await.unwrap(), written);
    let result = session.run("SELECT count(*), count(DISTINCT event_id) FROM events").await.unwrap();
    let row = result.iter().find(|b| b.num_rows() == 1).unwrap();
    assert_eq!(row.column(0).as_primitive::<Int64Type>().value(0), events.len() as i64);
    assert_eq!(row.column(1).as_primitive::<Int64Type>().value(0), events.len() as i64);
}

#[tokio::test]
async fn a_bare_path_and_its_file_url_are_one_lake() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("lake dir");
    let url = url::Url::from_directory_path(&dir).unwrap();
    let open = |location: &str| Lake::open(location, &Default::default()).unwrap();
    written_then_queried(open(dir.to_str().unwrap()), open(url.as_str())).await;
    assert!(dir.join("events").is_dir(), "the files are in the directory the path names");
}

#[tokio::test]
async fn a_file_url_written_is_read_as_the_same_file_url() {
    let parent = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(parent.path()).unwrap();
    let open = || Lake::open(url.as_str(), &Default::default()).unwrap();
    written_then_queried(open(), open()).await;
}

#[tokio::test]
async fn a_memory_lake_is_shared_by_cloning_the_handle() {
    let lake = Lake::open("memory://", &Default::default()).unwrap();
    written_then_queried(lake.clone(), lake).await;
    let other = Lake::open("memory://", &Default::default()).unwrap();
    assert!(other.list_files(None).await.unwrap().is_empty(), "each open of memory:// is a new store");
}

#[tokio::test]
async fn an_s3_url_on_moto_is_one_lake() {
    let Some(sdk_config) = sluice_testkit::moto::moto().await else {
        return;
    };
    let Some(endpoint) = sluice_testkit::moto::moto_endpoint() else {
        return;
    };
    let bucket = sluice_testkit::moto::unique_name("lake-urls");
    let s3 =
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk_config).force_path_style(true).build());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let url = format!("s3://{bucket}/a/lake");
    let open = || sluice_testkit::moto::open_lake(&url, endpoint.clone()).unwrap();
    written_then_queried(open(), open()).await;
    let listed = s3.list_objects_v2().bucket(&bucket).prefix("a/lake/events/").send().await.unwrap();
    assert!(listed.key_count().unwrap_or(0) > 1, "the objects are under the URL's prefix in the bucket");
}
