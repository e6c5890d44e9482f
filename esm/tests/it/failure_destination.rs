use chrono::{DateTime, Utc};
use rusqlite::Connection;
use sluice_esm::{
    CheckpointStore, FailedBatch, FailureDestination, FailureReason, SqliteCheckpoints, SqliteFailureDestination,
};
use sluice_stream::{SequenceNumber, StreamRecord, shard_id};

fn record(n: u128, data: &[u8]) -> StreamRecord {
    StreamRecord {
        shard_id: shard_id(1),
        sequence_number: SequenceNumber::from_local(n),
        partition_key: "pk".into(),
        approximate_arrival: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
        data: data.to_vec(),
    }
}

fn batch(records: Vec<StreamRecord>) -> FailedBatch {
    FailedBatch {
        mapping: "aggregates".into(),
        stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/s".into(),
        shard_id: shard_id(1),
        reason: FailureReason::RetryAttemptsExhausted,
        error: Some("function error: boom".into()),
        attempts: 4,
        first_sequence: records[0].sequence_number,
        last_sequence: records[records.len() - 1].sequence_number,
        failed_at: DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap(),
        records,
    }
}

#[tokio::test]
async fn failed_batches_round_trip_with_exact_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("failures.db");
    let failures = SqliteFailureDestination::open(&path).unwrap();
    // Binary payloads (not UTF-8, NUL bytes) survive.
    let b1 = batch(vec![record(1, &[0, 159, 146, 150, 255]), record(2, b"{\"a\":1}")]);
    let b2 = batch(vec![record(7, b"")]);
    failures.send(&b1).await.unwrap();
    let id2 = failures.insert(&b2).unwrap();

    // Reopened from the file.
    let failures = SqliteFailureDestination::open(&path).unwrap();
    let list = failures.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].id, id2);
    assert_eq!(list[0].record_count, 2);
    assert_eq!(list[0].first_sequence, SequenceNumber::from_local(1));
    assert_eq!(list[0].last_sequence, SequenceNumber::from_local(2));
    assert_eq!(list[0].reason, FailureReason::RetryAttemptsExhausted);
    assert_eq!(list[0].attempts, 4);
    let got = failures.get(list[0].id).unwrap().unwrap();
    assert_eq!(got.batch, b1);
    assert_eq!(failures.get(id2).unwrap().unwrap().batch, b2);

    assert!(failures.delete(list[0].id).unwrap());
    assert!(!failures.delete(list[0].id).unwrap());
    assert!(failures.get(list[0].id).unwrap().is_none());
    assert_eq!(failures.count().unwrap(), 1);
    // Ids are never reused.
    let id3 = failures.insert(&b1).unwrap();
    assert!(id3 > id2);
    assert!(failures.insert(&FailedBatch { records: vec![], ..b1 }).is_err());
}

#[tokio::test]
async fn checkpoints_are_per_mapping_and_shard_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cp.db");
    let cp = SqliteCheckpoints::open(&path).unwrap();
    assert_eq!(cp.load("m1", "s0").await.unwrap(), None);
    cp.save("m1", "s0", SequenceNumber::from_local(5)).await.unwrap();
    cp.save("m1", "s1", SequenceNumber::from_local(9)).await.unwrap();
    cp.save("m2", "s0", SequenceNumber::from_local(1)).await.unwrap();
    cp.save("m1", "s0", SequenceNumber::from_local(6)).await.unwrap();
    // A real Kinesis sequence number (beyond u128) round-trips too.
    let real: SequenceNumber = "49568167373333333333333333333333333333333333333333333333".parse().unwrap();
    cp.save("aws", "shardId-000000000000", real).await.unwrap();
    drop(cp);
    let cp = SqliteCheckpoints::open(&path).unwrap();
    assert_eq!(cp.get("m1", "s0").unwrap(), Some(SequenceNumber::from_local(6)));
    assert_eq!(cp.get("m2", "s0").unwrap(), Some(SequenceNumber::from_local(1)));
    assert_eq!(
        cp.list("m1").unwrap(),
        vec![("s0".to_owned(), SequenceNumber::from_local(6)), ("s1".to_owned(), SequenceNumber::from_local(9))]
    );
    assert_eq!(cp.get("aws", "shardId-000000000000").unwrap(), Some(real));
}

/// The `dead_letters` table of failed batches, as files written under the legacy name hold it.
const LEGACY_SCHEMA: &str = "CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mapping TEXT NOT NULL,
    stream_arn TEXT NOT NULL,
    shard_id TEXT NOT NULL,
    first_seq TEXT NOT NULL,
    last_seq TEXT NOT NULL,
    reason TEXT NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL,
    failed_at TEXT NOT NULL,
    record_count INTEGER NOT NULL,
    records TEXT NOT NULL
) STRICT;";

fn tables(path: &std::path::Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

#[tokio::test]
async fn a_legacy_dead_letters_table_is_migrated_and_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("failures.db");
    let b1 = batch(vec![record(1, &[0, 255]), record(2, b"{}")]);
    let b2 = batch(vec![record(9, b"x")]);
    {
        // A file written under the legacy table name: rows 1 and 2, then row 2 deleted.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(LEGACY_SCHEMA).unwrap();
        for b in [&b1, &b2] {
            conn.execute(
                "INSERT INTO dead_letters (mapping, stream_arn, shard_id, first_seq, last_seq, reason, error, attempts, failed_at, record_count, records)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                rusqlite::params![
                    b.mapping,
                    b.stream_arn,
                    b.shard_id,
                    b.first_sequence.to_string(),
                    b.last_sequence.to_string(),
                    b.reason.as_str(),
                    b.error,
                    b.attempts,
                    b.failed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    b.records.len(),
                    serde_json::to_string(&b.records).unwrap(),
                ],
            )
            .unwrap();
        }
        conn.execute("DELETE FROM dead_letters WHERE id = 2", []).unwrap();
    }

    let failures = SqliteFailureDestination::open(&path).unwrap();
    assert_eq!(tables(&path), vec!["failed_batches", "sqlite_sequence"]);
    let list = failures.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].id, list[0].record_count), (1, 2));
    assert_eq!(failures.get(1).unwrap().unwrap().batch, b1);
    // Ids are still never reused.
    assert!(failures.insert(&b2).unwrap() > 2);
    drop(failures);
    // Reopening is a no-op.
    let failures = SqliteFailureDestination::open(&path).unwrap();
    assert_eq!(failures.count().unwrap(), 2);
}

#[tokio::test]
async fn the_dead_letter_port_table_of_the_same_name_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, source TEXT NOT NULL, data BLOB NOT NULL)",
        )
        .unwrap();
    }
    let failures = SqliteFailureDestination::open(&path).unwrap();
    assert_eq!(failures.count().unwrap(), 0);
    assert_eq!(tables(&path), vec!["dead_letters", "failed_batches", "sqlite_sequence"]);
}
