//! Redrive of `sluice up`'s sources into the local stream: valid records re-submitted once and
//! removed, invalid ones kept with their current reason, a second run re-submits nothing.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sluice_dlq::{DeadLetter, FailureKind, SqliteDeadLetters};
use sluice_esm::{FailedBatch, FailureReason, LocalStream, LocalStreamConfig, SqliteFailureDestination};
use sluice_ingest::eventlog::{AppendOutcome, BoxFuture, EventLog, LocalStreamEventLog, LogRecord};
use sluice_jobs::redrive::RedriveReport;
use sluice_jobs::redrive::local::LocalSources;
use sluice_schemas::{Event, Registry};
use sluice_stream::{SequenceNumber, StreamRecord};
use sluice_testkit::generate::{Generator, record_bytes};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_300_000, 0).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    sources: LocalSources,
    stream: LocalStream,
    events: Vec<Event>,
}

fn letter(source: &str, seq: Option<&str>, reason: &str, data: Vec<u8>) -> DeadLetter {
    DeadLetter {
        source: source.into(),
        kind: FailureKind::Invalid,
        reason: reason.into(),
        shard_id: seq.map(|_| "shardId-000000000001".into()),
        sequence_number: seq.map(str::to_owned),
        partition_key: Some("pk".into()),
        failed_at: now(),
        data,
    }
}

/// Dead letters: one valid record rejected by both handlers (a since-fixed cause), one valid
/// record without a stream position, one that is not an event. A failure-destination batch of
/// two valid records and one invalid one.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let dead_letters = SqliteDeadLetters::open(&dir.path().join("dead_letters.db")).unwrap();
    let failures = SqliteFailureDestination::open(&dir.path().join("failures.db")).unwrap();
    let stream = LocalStream::open(&dir.path().join("stream.db"), LocalStreamConfig::default()).unwrap();
    let events = Generator::new(Default::default()).take(4);
    dead_letters
        .send_blocking(&[
            letter("aggregator", Some("7"), "unknown schema version", record_bytes(&events[0])),
            letter("lake-writer", Some("7"), "unknown schema version", record_bytes(&events[0])),
            letter("aggregator", None, "unknown event type", record_bytes(&events[1])),
            letter("lake-writer", Some("9"), "old reason", b"{\"not\":\"an event\"}".to_vec()),
        ])
        .unwrap();
    let record = |seq: u64, data: Vec<u8>| StreamRecord {
        shard_id: "shardId-000000000002".into(),
        sequence_number: SequenceNumber::from(u128::from(seq)),
        partition_key: "pk".into(),
        approximate_arrival: now(),
        data,
    };
    let records = vec![
        record(20, record_bytes(&events[2])),
        record(21, b"garbage".to_vec()),
        record(22, record_bytes(&events[3])),
    ];
    failures
        .insert(&FailedBatch {
            mapping: "lake-writer".into(),
            stream_arn: "arn:aws:kinesis:local:000000000000:stream/sluice-events".into(),
            shard_id: "shardId-000000000002".into(),
            reason: FailureReason::RetryAttemptsExhausted,
            error: Some("lake unavailable".into()),
            attempts: 10,
            first_sequence: records[0].sequence_number,
            last_sequence: records[2].sequence_number,
            failed_at: now(),
            records,
        })
        .unwrap();
    Fixture { sources: LocalSources { dead_letters, failures }, stream, events, _dir: dir }
}

fn stream_records(stream: &LocalStream) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for shard in stream.shards().to_vec() {
        out.extend(stream.read(&shard, None, 1000).unwrap().into_iter().map(|r| (r.partition_key, r.data)));
    }
    out.sort();
    out
}

#[tokio::test]
async fn valid_records_are_redriven_once_and_invalid_ones_stay_with_their_reason() {
    let fx = fixture();
    let registry = Registry::builtin().unwrap();
    let log = LocalStreamEventLog::new(fx.stream.clone());
    let listed = fx.sources.list().unwrap();
    assert_eq!(listed.len(), 5, "{listed:#?}");
    assert_eq!(listed.iter().filter(|e| e.store == "failure_destination").map(|e| e.records).sum::<usize>(), 3);

    let expected = RedriveReport { redriven: 4, still_invalid: 2, dry_run: true, ..RedriveReport::default() };
    assert_eq!(fx.sources.redrive(&registry, &log, true, now()).await.unwrap(), expected);
    assert_eq!(fx.sources.list().unwrap(), listed, "a dry run changes nothing");
    assert!(stream_records(&fx.stream).is_empty());

    let report = fx.sources.redrive(&registry, &log, false, now()).await.unwrap();
    assert_eq!(report, RedriveReport { dry_run: false, ..expected });
    let mut want: Vec<(String, Vec<u8>)> = fx.events.iter().map(|e| (e.event_id.clone(), record_bytes(e))).collect();
    want.sort();
    assert_eq!(stream_records(&fx.stream), want, "each valid record once, its bytes as they were, keyed by event_id");

    let left = fx.sources.list().unwrap();
    assert_eq!(left.len(), 2, "{left:#?}");
    assert!(left.iter().all(|e| e.store == "dead_letters" && e.reason.starts_with("invalid event:")), "{left:#?}");
    assert!(left.iter().any(|e| e.source == "esm:lake-writer" && e.first_sequence.as_deref() == Some("21")));

    // Again: nothing to re-submit.
    let again = fx.sources.redrive(&registry, &log, false, now()).await.unwrap();
    assert_eq!(again, RedriveReport { still_invalid: 2, ..RedriveReport::default() });
    assert_eq!(stream_records(&fx.stream).len(), 4);
}

/// A stream that takes nothing.
struct Down;

impl EventLog for Down {
    fn append(&self, records: Vec<LogRecord>) -> BoxFuture<'_, Vec<AppendOutcome>> {
        Box::pin(async move { records.iter().map(|_| AppendOutcome::failed("Unavailable", "down")).collect() })
    }
    fn kind(&self) -> &'static str {
        "down"
    }
}

#[tokio::test]
async fn what_the_stream_does_not_take_stays_where_it_was() {
    let fx = fixture();
    let registry = Arc::new(Registry::builtin().unwrap());
    let report = fx.sources.redrive(&registry, &Down, false, now()).await.unwrap();
    assert_eq!((report.redriven, report.not_written, report.still_invalid), (0, 4, 2));
    let after = fx.sources.list().unwrap();
    let count = |store: &str| after.iter().filter(|e| e.store == store).count();
    // The three valid letters stay, beside the invalid one and the batch's invalid record.
    assert_eq!((count("dead_letters"), count("failure_destination")), (5, 1), "{after:#?}");
    // Once the stream is back, everything valid goes through, once.
    let log = LocalStreamEventLog::new(fx.stream.clone());
    let report = fx.sources.redrive(&registry, &log, false, now()).await.unwrap();
    assert_eq!((report.redriven, report.not_written), (4, 0));
    assert_eq!(stream_records(&fx.stream).len(), 4);
}
