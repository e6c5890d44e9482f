//! The lake writer handler: fixture through the Lambda entry point, round trip, redelivery,
//! failures.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use sluice_dlq::{FailureKind, MemoryDeadLetters};
use sluice_lake::Lake;
use sluice_lake::layout::ShardProgress;
use sluice_sinks::LakeWriter;
use sluice_stream::kinesis_input::{KinesisBatch, KinesisInput};

use crate::support::{self, SHARD};

const FIXTURE: &str = include_str!("../data/kinesis_batch.json");
const BASE: &str = "4959033827149025660855969253836157109592157598913658880";

fn memory_writer() -> LakeWriter<MemoryDeadLetters> {
    let lake = Lake::open("memory://", &Default::default()).unwrap();
    LakeWriter::new(support::registry(), lake, MemoryDeadLetters::new())
}

/// The binary's entry point: the `RawPayloads` layer over a stand-in for lambda_runtime's inner
/// services (`sluice_stream::lambda::stand_in`).
#[tokio::test]
async fn raw_invocation_entry_point_writes_the_fixture_and_refuses_malformed_bodies() {
    use lambda_runtime::tower::{Service as _, ServiceExt as _};
    use sluice_stream::lambda::RawPayloads;
    use sluice_stream::lambda::stand_in::{invocation, runtime};

    let writer = memory_writer();
    let payloads = RawPayloads::new();
    let mut service = runtime(&payloads, |event| sluice_stream::lambda::invoke(&writer, &payloads, event));
    let response = service.ready().await.unwrap().call(invocation("req-1", FIXTURE.as_bytes())).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(payloads.take("req-1"), None, "the body was handed over exactly once");
    // The same batch as `sluice up` delivers it (a KinesisEvent, viewed as a KinesisBatch).
    let typed = memory_writer();
    let event: aws_lambda_events::event::kinesis::KinesisEvent = serde_json::from_slice(FIXTURE.as_bytes()).unwrap();
    typed.process(&KinesisBatch::from(&event), chrono::Utc::now()).await;
    let files = |w: &LakeWriter<MemoryDeadLetters>| {
        let lake = w.lake().clone();
        async move { lake.list_files(None).await.unwrap().into_iter().map(|f| f.path).collect::<Vec<_>>() }
    };
    assert_eq!(files(&writer).await, files(&typed).await, "the Lambda and sluice up write the same files");

    let (letters, written) = (writer.dead_letters().letters().len(), files(&writer).await);
    let malformed = service.ready().await.unwrap().call(invocation("req-2", b"{\"Records\":[{}]}")).await;
    assert!(malformed.is_err(), "a body that is not a Kinesis batch is a function error");
    assert_eq!(writer.dead_letters().letters().len(), letters, "nothing dead-lettered");
    assert_eq!(files(&writer).await, written, "nothing written");
}

#[tokio::test]
async fn kinesis_fixture_through_the_lambda_payload_path() {
    let writer = memory_writer();
    // What the Lambda's entry point runs on the raw invocation body.
    let response = writer.process_payload(FIXTURE.as_bytes(), chrono::Utc::now()).unwrap().await.0;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let files: Vec<String> = writer
        .lake()
        .list_files(None)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path.partition.file_path(&f.path.file_name))
        .collect();
    let name = |first: u8, last: u8| format!("{SHARD}-{BASE}{first}-{BASE}{last}.parquet");
    assert_eq!(
        files,
        vec![
            format!("events/event_type=api_call/dt=2024-05-01/hour=14/{}", name(4, 4)),
            format!("events/event_type=page_view/dt=2024-05-01/hour=14/{}", name(0, 1)),
            format!("events/event_type=page_view/dt=2024-05-01/hour=15/{}", name(2, 2)),
            format!("events/event_type=purchase/dt=2024-05-01/hour=14/{}", name(3, 3)),
        ]
    );

    // The two page_view rows of hour 14: v2 with app_version, v1 with null app_version.
    let batches = writer.lake().read_parquet(&files[1]).await.unwrap();
    let batch = &batches[0];
    let registry = support::registry();
    assert_eq!(batch.schema(), registry.get("page_view").unwrap().arrow_schema());
    let app_version = batch.column_by_name("app_version").unwrap().as_string::<i32>();
    assert_eq!(app_version.value(0), "3.1.0");
    assert!(app_version.is_null(1));
    let occurred = batch.column_by_name("occurred_at").unwrap().as_primitive::<TimestampMicrosecondType>();
    assert_eq!(occurred.value(0), 1_714_572_300_123_456);
    assert_eq!(occurred.value(1), 1_714_575_599_999_999);
    let referrer = batch.column_by_name("referrer").unwrap().as_string::<i32>();
    assert!(referrer.is_null(0));
    assert_eq!(referrer.value(1), "https://example.com/");
    let duration = batch.column_by_name("duration_ms").unwrap();
    assert_eq!(duration.data_type(), &DataType::Float64);
    assert_eq!(duration.as_primitive::<arrow::datatypes::Float64Type>().value(1), 80.0);
    let seq = batch.column_by_name("sequence_number").unwrap().as_string::<i32>();
    assert_eq!(seq.value(1), format!("{BASE}1"));
    let status_file = writer.lake().read_parquet(&files[0]).await.unwrap();
    let status = status_file[0].column_by_name("status").unwrap();
    assert_eq!(status.data_type(), &DataType::Int64);

    // The two invalid records are dead-lettered with their reason and bytes.
    let letters = writer_letters(&writer);
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(letters.iter().all(|l| l.kind == FailureKind::Invalid && l.source == "lake-writer"));
    assert_eq!(letters[0].sequence_number.as_deref(), Some(format!("{BASE}5").as_str()));
    assert!(letters[0].reason.contains("country"), "{}", letters[0].reason);
    assert_eq!(letters[1].data, b"not json at all");
    assert_eq!(letters[1].shard_id.as_deref(), Some(SHARD));
}

fn writer_letters(writer: &LakeWriter<MemoryDeadLetters>) -> Vec<sluice_dlq::DeadLetter> {
    writer.dead_letters().letters()
}

#[tokio::test]
async fn every_generated_event_round_trips_exactly_once() {
    let mut events = support::events(7, 3_000);
    events.extend(support::order_events(7, 300));
    let writer = memory_writer();
    let (response, outcome) = writer.process(&KinesisBatch::from(&support::batch(&events, 0)), support::now()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(outcome.rows_written, events.len());
    assert!(outcome.files_written.len() >= 8, "4 types x >= 2 hours: {outcome:?}");

    let (ids, files) = support::read_lake(writer.lake()).await;
    let expected: BTreeMap<String, usize> = events.iter().map(|e| (e.event_id.clone(), 1)).collect();
    assert_eq!(ids, expected, "every event exactly once");

    // Every row sits in the partition of its occurred_at, with the values it was sent with.
    let by_id: BTreeMap<&str, &sluice_schemas::Event> = events.iter().map(|e| (e.event_id.as_str(), e)).collect();
    for (path, batches) in &files {
        let parsed = sluice_lake::layout::parse_data_path(path).unwrap();
        for batch in batches {
            check_rows(batch, &parsed.partition, &by_id);
        }
    }
}

fn check_rows(
    batch: &RecordBatch,
    partition: &sluice_lake::layout::Partition,
    by_id: &BTreeMap<&str, &sluice_schemas::Event>,
) {
    let ids = batch.column_by_name("event_id").unwrap().as_string::<i32>();
    let occurred = batch.column_by_name("occurred_at").unwrap();
    assert_eq!(occurred.data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
    for row in 0..batch.num_rows() {
        let event = by_id[ids.value(row)];
        assert_eq!(event.event_type, partition.event_type);
        assert_eq!(sluice_lake::layout::Partition::of(&event.event_type, event.occurred_at), *partition);
    }
    support::check_batch_against_events(batch, by_id);
}

#[tokio::test]
async fn redelivering_the_same_batch_changes_nothing() {
    let events = support::events(8, 1_000);
    let writer = memory_writer();
    let batch = support::batch(&events, 100);
    let (_, first) = writer.process(&KinesisBatch::from(&batch), support::now()).await;
    let before = support::read_lake(writer.lake()).await.0;
    let (_, second) = writer.process(&KinesisBatch::from(&batch), support::now()).await;
    assert_eq!(first.files_written, second.files_written);
    let after = support::read_lake(writer.lake()).await.0;
    assert_eq!(before, after);
    assert!(after.values().all(|n| *n == 1));
}

/// A re-split redelivery (bisect, or a retry that starts elsewhere) writes files under new names;
/// what remains are exact duplicate rows (same event_id, shard, sequence), which compaction's
/// dedupe by event_id removes. Nothing is lost.
#[tokio::test]
async fn a_resplit_redelivery_leaves_only_exact_duplicates() {
    let events = support::events(9, 1_000);
    let writer = memory_writer();
    writer.process(&KinesisBatch::from(&support::batch(&events, 0)), support::now()).await;
    let (left, right) = events.split_at(400);
    writer.process(&KinesisBatch::from(&support::batch(left, 0)), support::now()).await;
    writer.process(&KinesisBatch::from(&support::batch(right, 400)), support::now()).await;
    let (ids, files) = support::read_lake(writer.lake()).await;
    assert_eq!(ids.len(), events.len(), "no event lost");
    assert!(ids.values().all(|n| *n <= 2));
    // Duplicated rows carry the same shard and sequence number: exact copies.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (_, batches) in &files {
        for batch in batches {
            let id = batch.column_by_name("event_id").unwrap().as_string::<i32>();
            let seq = batch.column_by_name("sequence_number").unwrap().as_string::<i32>();
            for row in 0..batch.num_rows() {
                let previous = seen.insert(id.value(row).to_owned(), seq.value(row).to_owned());
                if let Some(previous) = previous {
                    assert_eq!(previous, seq.value(row));
                }
            }
        }
    }
    let unique: BTreeSet<&String> = ids.keys().collect();
    assert_eq!(unique.len(), events.len());
}

#[tokio::test]
async fn a_failed_write_reports_the_lowest_failed_group_and_redelivery_completes() {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path()).unwrap();
    let lake = Lake::open(url.as_str(), &Default::default()).unwrap();
    let writer = LakeWriter::new(support::registry(), lake, MemoryDeadLetters::new());
    let events = support::events(10, 600);
    let batch = support::batch(&events, 0);

    // Block one partition: a plain file where its directory must be.
    let (prepared, _) =
        sluice_sinks::prepare(&sluice_sinks::LakeTables::new(support::registry()), &KinesisBatch::from(&batch));
    let blocked = prepared.files.iter().max_by_key(|f| f.rows).unwrap().clone();
    let blocked_dir = dir.path().join(blocked.partition.dir());
    std::fs::create_dir_all(blocked_dir.parent().unwrap()).unwrap();
    std::fs::write(&blocked_dir, b"in the way").unwrap();

    let (response, outcome) = writer.process(&KinesisBatch::from(&batch), support::now()).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    let failed = response.batch_item_failures[0].item_identifier.clone().unwrap();
    assert_eq!(failed, blocked.name.first_sequence);
    assert_eq!(outcome.failed_from.as_deref(), Some(failed.as_str()));
    assert_eq!(outcome.files_written.len(), prepared.files.len() - 1);
    // A batch with a failure does not raise the shard's progress marker.
    let marker = ShardProgress::new(SHARD, "0").unwrap().path();
    assert!(writer.lake().get(&marker).await.is_err(), "no marker after a failed batch");

    // Lambda redelivers from the failed record on; once the store recovers, nothing is missing.
    std::fs::remove_file(&blocked_dir).unwrap();
    let from = batch.records.iter().position(|r| r.sequence_number == failed).unwrap();
    let (response, _) =
        writer.process(&KinesisBatch::from(&support::batch(&events[from..], from as u64)), support::now()).await;
    assert!(response.batch_item_failures.is_empty());
    let (ids, _) = support::read_lake(writer.lake()).await;
    assert_eq!(ids.len(), events.len());
    // The lake is now complete through the shard's last record.
    let last = batch.records.last().unwrap().sequence_number.clone();
    let body = writer.lake().get(&marker).await.unwrap();
    assert_eq!(ShardProgress::parse(&marker, &body), Some(ShardProgress::new(SHARD, &last).unwrap()));
}

#[tokio::test]
async fn a_failed_dead_letter_send_reports_the_invalid_record() {
    let writer = memory_writer();
    // Every send of the shared retry policy fails.
    writer.dead_letters().fail_next(sluice_dlq::SendRetry::default().max_attempts as usize);
    let payload = KinesisInput::from_slice(FIXTURE.as_bytes()).unwrap();
    let (response, outcome) = writer.process(&KinesisBatch::from(&payload), support::now()).await;
    let expected = format!("{BASE}5");
    assert_eq!(response.batch_item_failures[0].item_identifier.as_deref(), Some(expected.as_str()));
    assert_eq!(outcome.dead_lettered, 0);
    assert_eq!(outcome.files_written.len(), 4, "valid groups are still written");
    // The redelivery from the failed record dead-letters both invalid records.
    let mut retry = payload.clone();
    retry.records.drain(..5);
    let (response, outcome) = writer.process(&KinesisBatch::from(&retry), support::now()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(outcome.dead_lettered, 2);
    assert_eq!(writer.dead_letters().letters().len(), 2);
}

#[tokio::test]
async fn a_dead_letter_send_that_fails_once_is_retried() {
    let writer = memory_writer();
    writer.dead_letters().fail_next(1);
    let payload = KinesisInput::from_slice(FIXTURE.as_bytes()).unwrap();
    let (response, outcome) = writer.process(&KinesisBatch::from(&payload), support::now()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(outcome.dead_lettered, 2);
    assert_eq!(writer.dead_letters().letters().len(), 2);
}

#[tokio::test]
async fn the_writer_is_a_batch_handler() {
    use sluice_stream::BatchHandler;
    let writer = Arc::new(memory_writer());
    let events = support::events(11, 50);
    let payload = serde_json::to_vec(&support::event_batch(&events, 0)).unwrap();
    let response = writer.handle(bytes::Bytes::from(payload)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(support::read_lake(writer.lake()).await.0.len(), 50);
}

/// The lake's partitioning applies the registry's event-time range: a stored record outside it
/// (written by another producer than this ingest) is dead-lettered with the reason, and every
/// partition written starts on or after the lake's first day, where Athena's projection starts.
#[tokio::test]
async fn stored_records_outside_the_event_time_range_are_dead_lettered_not_partitioned() {
    let mut events = support::events(11, 40);
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
    events[3].occurred_at = at("1999-12-31T23:59:59.999999Z");
    events[7].occurred_at = at("0000-01-01T00:00:00Z");
    events[9].occurred_at = at("2000-01-01T00:00:00Z");
    let writer = memory_writer();
    let (response, outcome) = writer.process(&KinesisBatch::from(&support::batch(&events, 0)), support::now()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(outcome.rows_written, events.len() - 2);
    let letters = writer_letters(&writer);
    assert_eq!(letters.len(), 2, "{letters:?}");
    for letter in &letters {
        assert_eq!(letter.kind, FailureKind::Invalid);
        assert!(letter.reason.contains("/occurred_at") && letter.reason.contains("2000-01-01T00:00:00Z"), "{letter:?}");
    }
    let lake_start = writer_registry_lake_start();
    for file in writer.lake().list_files(None).await.unwrap() {
        assert!(file.path.partition.dt >= lake_start, "{:?}", file.path);
    }
}

fn writer_registry_lake_start() -> chrono::NaiveDate {
    support::registry().event_time().lake_start
}
