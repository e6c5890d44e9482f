use chrono::{DateTime, Utc};
use sluice_stream::{
    CheckpointStore, FailedBatch, FailureDestination, FailureReason, LocalDeadLetters, SequenceNumber,
    SqliteCheckpoints, StreamRecord, shard_id,
};

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
async fn dead_letters_round_trip_with_exact_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dlq.db");
    let dlq = LocalDeadLetters::open(&path).unwrap();
    // Binary payloads (not UTF-8, NUL bytes) survive.
    let b1 = batch(vec![record(1, &[0, 159, 146, 150, 255]), record(2, b"{\"a\":1}")]);
    let b2 = batch(vec![record(7, b"")]);
    dlq.send(&b1).await.unwrap();
    let id2 = dlq.insert(&b2).unwrap();

    // Reopened from the file.
    let dlq = LocalDeadLetters::open(&path).unwrap();
    let list = dlq.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].id, id2);
    assert_eq!(list[0].record_count, 2);
    assert_eq!(list[0].first_sequence, SequenceNumber::from_local(1));
    assert_eq!(list[0].last_sequence, SequenceNumber::from_local(2));
    assert_eq!(list[0].reason, FailureReason::RetryAttemptsExhausted);
    assert_eq!(list[0].attempts, 4);
    let got = dlq.get(list[0].id).unwrap().unwrap();
    assert_eq!(got.batch, b1);
    assert_eq!(dlq.get(id2).unwrap().unwrap().batch, b2);

    assert!(dlq.delete(list[0].id).unwrap());
    assert!(!dlq.delete(list[0].id).unwrap());
    assert!(dlq.get(list[0].id).unwrap().is_none());
    assert_eq!(dlq.count().unwrap(), 1);
    // Ids are never reused.
    let id3 = dlq.insert(&b1).unwrap();
    assert!(id3 > id2);
    assert!(dlq.insert(&FailedBatch { records: vec![], ..b1 }).is_err());
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
