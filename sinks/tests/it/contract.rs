//! The lake contract suite: the same checks against every store (file, memory, moto S3).

use arrow::array::{Array, AsArray};
use bytes::Bytes;
use sluice_dlq::MemoryDeadLetters;
use sluice_lake::{Lake, LakeError};
use sluice_sinks::LakeWriter;
use sluice_stream::kinesis_input::KinesisBatch;

use crate::support;

/// Write, overwrite the same name, list partitions, read rows back, skip foreign objects.
async fn lake_contract(lake: Lake) {
    assert!(lake.list_files(None).await.unwrap().is_empty(), "starts empty");

    // Objects outside the layout are never listed as data files.
    lake.put("events/event_type=page_view/_tmp/x.parquet", Bytes::from_static(b"x")).await.unwrap();
    lake.put("events/README.txt", Bytes::from_static(b"x")).await.unwrap();
    assert!(lake.list_files(None).await.unwrap().is_empty());

    let events = support::events(21, 500);
    let writer = LakeWriter::new(support::registry(), lake.clone(), MemoryDeadLetters::new());
    let batch = support::batch(&events, 0);
    let (response, outcome) = writer.process(&KinesisBatch::from(&batch), support::now()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let files = lake.list_files(None).await.unwrap();
    let listed: Vec<String> = files.iter().map(|f| f.path.partition.file_path(&f.path.file_name)).collect();
    assert_eq!(listed, outcome.files_written);
    assert!(files.iter().all(|f| f.size > 0));

    let partitions = lake.list_partitions(None).await.unwrap();
    let expected: std::collections::BTreeSet<_> =
        events.iter().map(|e| sluice_lake::layout::Partition::of(&e.event_type, e.occurred_at)).collect();
    assert_eq!(partitions, expected);
    let only = lake.list_partitions(Some("purchase")).await.unwrap();
    assert!(!only.is_empty() && only.iter().all(|p| p.event_type == "purchase"));

    let (ids, _) = support::read_lake(&lake).await;
    assert_eq!(ids.len(), events.len());
    assert!(ids.values().all(|n| *n == 1));

    // Overwriting the same name replaces the file (a retried batch).
    writer.process(&KinesisBatch::from(&batch), support::now()).await;
    assert_eq!(lake.list_files(None).await.unwrap().len(), files.len());
    let (again, _) = support::read_lake(&lake).await;
    assert_eq!(again, ids);

    // Overwrite with different content: readers see the new file whole.
    let target = &outcome.files_written[0];
    let other = lake.read_parquet(&outcome.files_written[1]).await.unwrap();
    let first_before = lake.read_parquet(target).await.unwrap();
    let bytes = lake.get(&outcome.files_written[1]).await.unwrap();
    lake.put(target, bytes).await.unwrap();
    let replaced = lake.read_parquet(target).await.unwrap();
    assert_eq!(replaced, other);
    assert_ne!(replaced, first_before);
    let ids_col = replaced[0].column_by_name("event_id").unwrap().as_string::<i32>();
    assert!(ids_col.len() > 0);

    // Delete is idempotent; a missing object is an error to read.
    lake.delete(target).await.unwrap();
    lake.delete(target).await.unwrap();
    assert!(matches!(lake.get(target).await, Err(LakeError::Store(_))));
    assert_eq!(lake.list_files(None).await.unwrap().len(), files.len() - 1);
}

#[tokio::test]
async fn contract_memory() {
    lake_contract(Lake::open("memory://", &Default::default()).unwrap()).await;
}

#[tokio::test]
async fn contract_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path().join("lake")).unwrap();
    lake_contract(Lake::open(url.as_str(), &Default::default()).unwrap()).await;
    // The files are where the layout says, as plain Parquet files.
    let found = walk(&dir.path().join("lake/events"));
    assert!(found.iter().all(|p| p.extension().is_some_and(|e| e == "parquet" || e == "txt")));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn contract_moto_s3() {
    let Some(sdk) = sluice_testkit::moto::moto().await else {
        return;
    };
    let bucket = sluice_testkit::moto::unique_name("lake");
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let endpoint = sluice_testkit::moto::moto_endpoint().unwrap();
    let url = format!("s3://{bucket}/lake/root");
    let lake = sluice_testkit::moto::open_lake(&url, endpoint).unwrap();
    lake_contract(lake).await;

    // The objects are under the URL's prefix, visible to any S3 client.
    let listed = s3.list_objects_v2().bucket(&bucket).prefix("lake/root/events/").send().await.unwrap();
    assert!(listed.key_count().unwrap_or(0) > 0);
}
