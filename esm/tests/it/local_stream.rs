use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::{Duration, Utc};
use sluice_esm::{LocalStream, LocalStreamConfig, PutEntry, StreamError};
use sluice_stream::routing::{hash_key, shard_for_partition_key};
use sluice_stream::{SequenceNumber, shard_id};

fn entry(key: &str, data: &[u8]) -> PutEntry {
    PutEntry { partition_key: key.to_owned(), data: data.to_vec() }
}

fn open(path: &std::path::Path, shards: u32) -> LocalStream {
    LocalStream::open(path, LocalStreamConfig { shards, ..LocalStreamConfig::default() }).unwrap()
}

#[test]
fn records_keep_put_order_per_shard_with_increasing_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("s.db"), 4);
    assert_eq!(s.shards(), [shard_id(0), shard_id(1), shard_id(2), shard_id(3)]);
    // Per shard, what we put, in order.
    let mut expected: BTreeMap<String, Vec<(SequenceNumber, Vec<u8>, String)>> = BTreeMap::new();
    for batch in 0..5 {
        let entries: Vec<PutEntry> = (0..50)
            .map(|i| entry(&format!("key-{}", (i * 7 + batch) % 13), format!("{batch}-{i}").as_bytes()))
            .collect();
        let results = s.put_records(&entries).unwrap();
        assert_eq!(results.len(), entries.len());
        for (e, r) in entries.iter().zip(&results) {
            // The shard is the MD5 route of the key.
            assert_eq!(r.shard_id, shard_id(shard_for_partition_key(&e.partition_key, 4)));
            assert_eq!(r.shard_id, s.shard_for(&e.partition_key));
            expected.entry(r.shard_id.clone()).or_default().push((
                r.sequence_number,
                e.data.clone(),
                e.partition_key.clone(),
            ));
        }
    }
    for shard in s.shards() {
        let got = s.read(shard, None, 10_000).unwrap();
        let want = expected.remove(shard).unwrap_or_default();
        assert_eq!(got.len(), want.len());
        for (g, (seq, data, key)) in got.iter().zip(&want) {
            assert_eq!(&g.shard_id, shard);
            assert_eq!(g.sequence_number, *seq);
            assert_eq!(&g.data, data);
            assert_eq!(&g.partition_key, key);
            assert_eq!(g.sequence_number.to_string().len(), 56);
        }
        assert!(got.windows(2).all(|w| w[0].sequence_number < w[1].sequence_number));
        // Paging with `after` resumes exactly after the given record.
        if got.len() > 3 {
            let page = s.read(shard, Some(got[2].sequence_number), 2).unwrap();
            assert_eq!(page, got[3..5.min(got.len())].to_vec());
        }
    }
}

#[test]
fn md5_routing_matches_kinesis() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("s.db"), 4);
    // md5("abc") = 900150983cd24fb0d6963f7d28e17f72 (RFC 1321): hash key 0x9001... lies in
    // [2^127, 3*2^126), the third of four equal ranges: shardId-000000000002.
    assert_eq!(hash_key("abc"), 0x900150983cd24fb0d6963f7d28e17f72);
    let r = s.put_records(&[entry("abc", b"x"), entry("a", b"y")]).unwrap();
    assert_eq!(r[0].shard_id, "shardId-000000000002");
    // md5("a") = 0cc175b9...: the first range.
    assert_eq!(r[1].shard_id, "shardId-000000000000");
    // Same key, same shard, every time.
    let again = s.put_records(&[entry("abc", b"z")]).unwrap();
    assert_eq!(again[0].shard_id, "shardId-000000000002");
}

#[test]
fn sequence_numbers_strictly_increase_across_reopen_and_trim() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let first = {
        let s = open(&path, 2);
        let old = Utc::now() - Duration::hours(48);
        s.put_records_at(&[entry("k", b"1"), entry("k", b"2")], old).unwrap()
    };
    let max_first = first.iter().map(|r| r.sequence_number).max().unwrap();
    // Reopen, trim everything, put again: numbers never go back.
    let s = open(&path, 2);
    assert_eq!(s.trim_expired(Utc::now()).unwrap(), 2);
    assert!(s.read(&first[0].shard_id, None, 10).unwrap().is_empty());
    let second = s.put_records(&[entry("k", b"3")]).unwrap();
    assert!(second[0].sequence_number > max_first);
    drop(s);
    let s = open(&path, 2);
    let third = s.put_records(&[entry("k", b"4")]).unwrap();
    assert!(third[0].sequence_number > second[0].sequence_number);
    assert_eq!(
        s.read(&third[0].shard_id, None, 10).unwrap().iter().map(|r| r.data.clone()).collect::<Vec<_>>(),
        vec![b"3".to_vec(), b"4".to_vec()]
    );
}

#[test]
fn retention_trim_removes_only_expired_records() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStream::open(
        &dir.path().join("s.db"),
        LocalStreamConfig { shards: 1, retention: Duration::hours(24), ..LocalStreamConfig::default() },
    )
    .unwrap();
    let now = Utc::now();
    s.put_records_at(&[entry("k", b"old1"), entry("k", b"old2")], now - Duration::hours(25)).unwrap();
    s.put_records_at(&[entry("k", b"edge")], now - Duration::hours(23)).unwrap();
    s.put_records_at(&[entry("k", b"new")], now).unwrap();
    assert_eq!(s.trim_expired(now).unwrap(), 2);
    let left: Vec<Vec<u8>> = s.read(&shard_id(0), None, 10).unwrap().into_iter().map(|r| r.data).collect();
    assert_eq!(left, vec![b"edge".to_vec(), b"new".to_vec()]);
    assert_eq!(s.trim_expired(now).unwrap(), 0);
    // An hour later the edge record expires too.
    assert_eq!(s.trim_expired(now + Duration::hours(2)).unwrap(), 1);
}

#[test]
fn a_put_is_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("s.db"), 2);
    let shard = s.shard_for("same-key").to_owned();

    // A concurrent reader only ever sees whole batches of 100.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (s, shard, done) = (s.clone(), shard.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut observations = 0;
            while !done.load(Ordering::Relaxed) {
                let n = s.read(&shard, None, 1_000_000).unwrap().len();
                assert_eq!(n % 100, 0, "saw a partial batch: {n} records");
                observations += 1;
            }
            observations
        })
    };
    for b in 0..30 {
        let entries: Vec<PutEntry> = (0..100).map(|i| entry("same-key", format!("{b}-{i}").as_bytes())).collect();
        s.put_records(&entries).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(s.read(&shard, None, 1_000_000).unwrap().len(), 3000);

    // A batch with one invalid entry writes nothing.
    let before: usize = s.shards().iter().map(|sh| s.read(sh, None, 1_000_000).unwrap().len()).sum();
    let err = s.put_records(&[entry("ok", b"1"), entry("", b"2"), entry("ok", b"3")]).unwrap_err();
    assert!(matches!(err, StreamError::InvalidRecord { index: 1, .. }), "{err}");
    assert!(!err.is_retryable());
    let too_big = s.put_records(&[entry("ok", &vec![0; 1024 * 1024])]).unwrap_err();
    assert!(matches!(too_big, StreamError::InvalidRecord { index: 0, .. }));
    let after: usize = s.shards().iter().map(|sh| s.read(sh, None, 1_000_000).unwrap().len()).sum();
    assert_eq!(before, after);
    // An empty put is a no-op.
    assert!(s.put_records(&[]).unwrap().is_empty());
}

#[test]
fn reopen_keeps_every_committed_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let written = {
        let s = open(&path, 3);
        let entries: Vec<PutEntry> =
            (0..300).map(|i| entry(&format!("k{i}"), &[i as u8, (i >> 8) as u8, 0xff])).collect();
        let results = s.put_records(&entries).unwrap();
        entries.into_iter().zip(results).collect::<Vec<_>>()
        // The handle is dropped without any explicit close or checkpoint.
    };
    let s = open(&path, 3);
    s.health().unwrap();
    for (e, r) in &written {
        let got = s.read(&r.shard_id, None, 1000).unwrap();
        let rec = got.iter().find(|g| g.sequence_number == r.sequence_number).expect("record lost across reopen");
        assert_eq!(rec.data, e.data);
        assert_eq!(rec.partition_key, e.partition_key);
    }
    // The shard count is fixed at creation.
    let err = LocalStream::open(&path, LocalStreamConfig { shards: 4, ..LocalStreamConfig::default() }).unwrap_err();
    assert!(matches!(err, StreamError::ShardCountMismatch { existing: 3, requested: 4, .. }), "{err}");
}

#[test]
fn rejects_bad_config_and_unknown_shards() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    for shards in [0, 5000] {
        let err = LocalStream::open(&path, LocalStreamConfig { shards, ..LocalStreamConfig::default() }).unwrap_err();
        assert!(matches!(err, StreamError::InvalidConfig(_)));
    }
    let s = open(&path, 1);
    assert!(matches!(s.read("shardId-000000000009", None, 1), Err(StreamError::UnknownShard(_))));
    // Reading after a number from another stream (below the local base) starts at the start.
    s.put_records(&[entry("k", b"x")]).unwrap();
    assert_eq!(s.read(&shard_id(0), Some(SequenceNumber::from(5u128)), 10).unwrap().len(), 1);
}

#[tokio::test]
async fn async_api_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("s.db"), 2);
    let r = s.put_records_async(vec![entry("k", b"a"), entry("k", b"b")]).await.unwrap();
    let got = s.read_async(&r[0].shard_id, None, 10).await.unwrap();
    assert_eq!(got.len(), 2);
    s.health_async().await.unwrap();
    assert_eq!(s.trim_expired_async(Utc::now()).await.unwrap(), 0);
}

/// Many batched puts (what ingest does under load) keep every record, each shard's in sequence
/// order. Throughput is measured by the ingest benchmark, not here.
#[test]
fn many_batched_puts_keep_every_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("s.db"), 4);
    let batches: Vec<Vec<PutEntry>> = (0..200)
        .map(|b| {
            (0..100)
                .map(|i| entry(&format!("device-{}", (b * 100 + i) % 997), b"{\"v\":1,\"t\":\"2024-01-01T00:00:00Z\"}"))
                .collect()
        })
        .collect();
    for b in &batches {
        assert_eq!(s.put_records(b).unwrap().len(), b.len());
    }
    let mut total = 0;
    for shard in s.shards().to_vec() {
        let records = s.read(&shard, None, 100_000).unwrap();
        assert!(records.windows(2).all(|w| w[0].sequence_number < w[1].sequence_number), "{shard}");
        total += records.len();
    }
    assert_eq!(total, 20_000);
}

#[test]
fn the_wal_is_checkpointed_in_the_background_not_by_producers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let stream = open(&path, 2);
    let payload = vec![7u8; 1024];
    for batch in 0..50 {
        let entries: Vec<_> = (0..100).map(|i| entry(&format!("k{batch}-{i}"), &payload)).collect();
        stream.put_records(&entries).unwrap();
    }
    // Producers never checkpoint (wal_autocheckpoint=0), so the ~5 MB only reach the database
    // file through the background checkpointer.
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let db_bytes = std::fs::metadata(&path).unwrap().len();
        if db_bytes > 4 * 1024 * 1024 {
            break;
        }
        assert!(Instant::now() < deadline, "the WAL was not checkpointed: database file is {db_bytes} bytes");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let total: usize = stream.shards().iter().map(|s| stream.read(s, None, 10_000).unwrap().len()).sum();
    assert_eq!(total, 5_000);
}

#[test]
fn a_second_process_opens_the_existing_stream_with_its_shard_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    assert!(matches!(
        LocalStream::open_existing(&path, LocalStreamConfig::default()),
        Err(StreamError::InvalidConfig(_))
    ));
    let first = open(&path, 7);
    let second = LocalStream::open_existing(&path, LocalStreamConfig::default()).unwrap();
    assert_eq!(second.shards().len(), 7);
    // Both write one sequence: numbers never repeat across the two handles.
    let a = first.put_records(&[entry("k", b"a")]).unwrap();
    let b = second.put_records(&[entry("k", b"b")]).unwrap();
    assert!(b[0].sequence_number > a[0].sequence_number);
    assert_eq!(first.read(&b[0].shard_id, None, 10).unwrap().len(), 2);
}
