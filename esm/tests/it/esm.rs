//! One test per event-source-mapping semantic.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::streams::KinesisEventResponse;
use chrono::Utc;
use sluice_esm::{Backoff, EventSourceMapping, FailureReason, PutEntry};
use sluice_stream::{BatchHandler, HandlerError, SequenceNumber, StreamRecord, shard_id};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::support::*;

fn payloads(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn batches_hold_at_most_batch_size_records() {
    let fx = Fixture::new(1);
    let p = payloads(25, "r");
    fx.put("k", &strs(&p));
    let h = Recording::ok();
    let mut c = config("batch-size");
    c.batch_size = 10;
    let (run, status) = start(&fx, c, Arc::clone(&h));
    wait_until("all delivered", PATIENCE, || status.snapshot().succeeded_records == 25).await;
    run.stop().await;
    let sizes: Vec<usize> = h.invocations().iter().map(|i| i.seqs.len()).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    let delivered: Vec<String> = h.invocations().into_iter().flat_map(|i| i.data).collect();
    assert_eq!(delivered, p);
    let snap = status.snapshot();
    assert_eq!((snap.batches, snap.records, snap.failures), (3, 25, 0));
    assert!(!snap.running);
}

#[tokio::test(start_paused = true)]
async fn batching_window_waits_for_the_batch_to_fill() {
    let fx = Fixture::new(1);
    fx.put("k", &["a", "b", "c"]);
    let h = Recording::ok();
    let mut c = config("window");
    c.batch_size = 100;
    c.batching_window = Duration::from_secs(30);
    let started = tokio::time::Instant::now();
    let (run, _status) = start(&fx, c, Arc::clone(&h));
    // Records arriving within the window join the same batch.
    tokio::time::sleep(Duration::from_secs(10)).await;
    fx.put("k", &["d", "e"]);
    within(wait_until("a batch", PATIENCE, || h.count() >= 1)).await;
    let waited = started.elapsed();
    run.stop().await;
    assert!(waited >= Duration::from_secs(30), "invoked after {waited:?}, before the window closed");
    assert!(waited < Duration::from_secs(31), "invoked {waited:?} after the first record, window 30 s");
    let inv = h.invocations();
    assert_eq!(inv.len(), 1);
    assert_eq!(inv[0].data, vec!["a", "b", "c", "d", "e"]);
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_does_not_wait_for_the_window() {
    let fx = Fixture::new(1);
    fx.put("k", &["a", "b", "c", "d"]);
    let h = Recording::ok();
    let mut c = config("window-full");
    c.batch_size = 4;
    c.batching_window = Duration::from_secs(120);
    let started = tokio::time::Instant::now();
    let (run, _status) = start(&fx, c, Arc::clone(&h));
    within(wait_until("a batch", PATIENCE, || h.count() >= 1)).await;
    assert!(started.elapsed() < Duration::from_secs(1), "waited {:?} of a 120 s window", started.elapsed());
    run.stop().await;
    assert_eq!(h.invocations()[0].data, vec!["a", "b", "c", "d"]);
}

/// Tracks in-flight invocations per shard and overall.
struct Concurrency {
    per_shard: std::sync::Mutex<BTreeMap<String, usize>>,
    max_per_shard: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    log: std::sync::Mutex<Vec<Invocation>>,
}

impl BatchHandler for Concurrency {
    async fn handle(&self, payload: bytes::Bytes) -> Result<KinesisEventResponse, HandlerError> {
        let inv = Invocation::from_payload(&payload);
        {
            let mut m = self.per_shard.lock().unwrap();
            let n = m.entry(inv.shard.clone()).or_default();
            *n += 1;
            self.max_per_shard.fetch_max(*n, Ordering::SeqCst);
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(15)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        *self.per_shard.lock().unwrap().get_mut(&inv.shard).unwrap() -= 1;
        self.log.lock().unwrap().push(inv);
        Ok(KinesisEventResponse::default())
    }
}

#[tokio::test]
async fn shards_run_concurrently_one_batch_in_flight_each_in_order() {
    let fx = Fixture::new(4);
    let mut put_order: BTreeMap<String, Vec<SequenceNumber>> = BTreeMap::new();
    for b in 0..4 {
        let entries: Vec<PutEntry> = (0..50)
            .map(|i| PutEntry { partition_key: format!("user-{}", i % 17), data: format!("{b}-{i}").into_bytes() })
            .collect();
        for r in fx.stream.put_records(&entries).unwrap() {
            put_order.entry(r.shard_id).or_default().push(r.sequence_number);
        }
    }
    assert!(put_order.len() >= 2, "the keys should spread over shards");
    let h = Arc::new(Concurrency {
        per_shard: Default::default(),
        max_per_shard: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
        log: Default::default(),
    });
    let mut c = config("order");
    c.batch_size = 7;
    let (run, status) = start(&fx, c, Arc::clone(&h));
    wait_until("all delivered", PATIENCE, || status.snapshot().succeeded_records == 200).await;
    run.stop().await;
    assert_eq!(h.max_per_shard.load(Ordering::SeqCst), 1, "two batches of one shard overlapped");
    assert!(h.max_in_flight.load(Ordering::SeqCst) >= 2, "shards were not processed concurrently");
    let mut delivered: BTreeMap<String, Vec<SequenceNumber>> = BTreeMap::new();
    for inv in h.log.lock().unwrap().iter() {
        assert!(inv.seqs.len() <= 7);
        delivered.entry(inv.shard.clone()).or_default().extend(&inv.seqs);
    }
    assert_eq!(delivered, put_order);
    for (shard, seqs) in &put_order {
        assert_eq!(fx.checkpoint("order", shard), seqs.last().copied());
    }
}

#[tokio::test]
async fn report_batch_item_failures_redelivers_from_the_lowest_failed_record() {
    let fx = Fixture::new(1);
    let p = payloads(10, "r");
    let puts = fx.put("k", &strs(&p));
    let seq = |i: usize| puts[i].sequence_number.to_string();
    let (s4, s7) = (seq(4), seq(7));
    let h = Recording::new(move |n, _| {
        if n == 0 {
            // Several failures, not in order: the lowest (record 4) is the checkpoint.
            Ok(fail_items([s7.as_str(), s4.as_str()]))
        } else {
            Ok(KinesisEventResponse::default())
        }
    });
    let mut c = config("rbif");
    c.report_batch_item_failures = true;
    let (run, status) = start(&fx, c, Arc::clone(&h));
    wait_until("resolved", PATIENCE, || fx.checkpoint("rbif", &shard_id(0)) == Some(puts[9].sequence_number)).await;
    run.stop().await;
    let inv = h.invocations();
    assert_eq!(inv.len(), 2);
    assert_eq!(inv[0].data, p);
    assert_eq!(inv[1].data, p[4..].to_vec());
    let snap = status.snapshot();
    assert_eq!((snap.retries, snap.failures, snap.succeeded_records), (1, 1, 10));
    assert_eq!(fx.failures.count().unwrap(), 0);
}

#[tokio::test]
async fn partial_failure_acks_the_prefix_durably_before_retrying() {
    // Record 3 keeps failing and there are no retries left: 0..3 are checkpointed, 3..5 discarded to the failure destination.
    let fx = Fixture::new(1);
    let p = payloads(5, "r");
    let puts = fx.put("k", &strs(&p));
    let s3 = puts[3].sequence_number.to_string();
    let h = Recording::new(move |_, _| Ok(fail_items([s3.as_str()])));
    let mut c = config("rbif-discard");
    c.report_batch_item_failures = true;
    c.maximum_retry_attempts = Some(0);
    let (run, _status) = start(&fx, c, Arc::clone(&h));
    wait_until("resolved", PATIENCE, || fx.checkpoint("rbif-discard", &shard_id(0)) == Some(puts[4].sequence_number))
        .await;
    run.stop().await;
    assert_eq!(h.count(), 1);
    let dl = fx.failures.list().unwrap();
    assert_eq!(dl.len(), 1);
    let full = fx.failures.get(dl[0].id).unwrap().unwrap();
    let data: Vec<Vec<u8>> = full.batch.records.iter().map(|r| r.data.clone()).collect();
    assert_eq!(data, vec![b"r3".to_vec(), b"r4".to_vec()]);
    assert_eq!(full.batch.attempts, 1);
}

#[tokio::test]
async fn without_report_batch_item_failures_the_response_is_ignored() {
    let fx = Fixture::new(1);
    let puts = fx.put("k", &["a", "b", "c"]);
    let s1 = puts[1].sequence_number.to_string();
    let h = Recording::new(move |_, _| Ok(fail_items([s1.as_str()])));
    let (run, status) = start(&fx, config("no-rbif"), Arc::clone(&h));
    wait_until("resolved", PATIENCE, || fx.checkpoint("no-rbif", &shard_id(0)) == Some(puts[2].sequence_number)).await;
    run.stop().await;
    assert_eq!(h.count(), 1);
    assert_eq!(status.snapshot().retries, 0);
}

#[tokio::test]
async fn an_invalid_item_identifier_fails_the_whole_batch() {
    for (name, bad) in [
        ("empty-id", Some(String::new())),
        ("null-id", None),
        ("foreign-id", Some(SequenceNumber::from_local(999_999).to_string())),
        ("garbage-id", Some("not-a-number".to_owned())),
    ] {
        let fx = Fixture::new(1);
        let puts = fx.put("k", &["a", "b", "c"]);
        let s1 = puts[1].sequence_number.to_string();
        let h = Recording::new(move |n, _| {
            if n == 0 {
                // A valid failure for record 1 plus an invalid one: the whole batch failed.
                let mut r = fail_items([s1.as_str(), "placeholder"]);
                r.batch_item_failures[1].item_identifier = bad.clone();
                Ok(r)
            } else {
                Ok(KinesisEventResponse::default())
            }
        });
        let mut c = config(name);
        c.report_batch_item_failures = true;
        let (run, status) = start(&fx, c, Arc::clone(&h));
        wait_until("resolved", PATIENCE, || fx.checkpoint(name, &shard_id(0)) == Some(puts[2].sequence_number)).await;
        run.stop().await;
        let inv = h.invocations();
        assert_eq!(inv.len(), 2, "{name}");
        assert_eq!(inv[1].data, vec!["a", "b", "c"], "{name}: whole batch redelivered");
        assert_eq!(status.snapshot().retries, 1, "{name}");
    }
}

#[tokio::test]
async fn retries_up_to_the_maximum_then_discards_with_payloads_and_moves_on() {
    let fx = Fixture::new(1);
    let before = Utc::now();
    let puts = fx.put("k", &["bad-1", "bad-2", "bad-3"]);
    let h = Recording::new(|_, inv| {
        if inv.data.iter().any(|d| d.starts_with("bad")) {
            Err(HandlerError::new("downstream rejected the batch"))
        } else {
            Ok(KinesisEventResponse::default())
        }
    });
    let mut c = config("retries");
    c.maximum_retry_attempts = Some(2);
    let (run, status) = start(&fx, c, Arc::clone(&h));
    wait_until("discarded", PATIENCE, || fx.failures.count().unwrap() == 1).await;
    // The shard moves on.
    let later = fx.put("k", &["good"]);
    wait_until("moved on", PATIENCE, || fx.checkpoint("retries", &shard_id(0)) == Some(later[0].sequence_number)).await;
    run.stop().await;

    let inv = h.invocations();
    assert_eq!(inv.len(), 4, "1 attempt + 2 retries, then the next batch");
    for i in &inv[..3] {
        assert_eq!(i.data, vec!["bad-1", "bad-2", "bad-3"]);
    }
    assert_eq!(inv[3].data, vec!["good"]);

    let list = fx.failures.list().unwrap();
    let dl = fx.failures.get(list[0].id).unwrap().unwrap();
    let b = &dl.batch;
    assert_eq!(b.mapping, "retries");
    assert_eq!(b.stream_arn, ARN);
    assert_eq!(b.shard_id, shard_id(0));
    assert_eq!(b.reason, FailureReason::RetryAttemptsExhausted);
    assert_eq!(b.attempts, 3);
    assert!(b.error.as_deref().unwrap().contains("downstream rejected the batch"));
    assert_eq!(b.first_sequence, puts[0].sequence_number);
    assert_eq!(b.last_sequence, puts[2].sequence_number);
    assert!(b.failed_at >= before && b.failed_at <= Utc::now());
    let stored: Vec<StreamRecord> = fx.shard_records(&shard_id(0))[..3].to_vec();
    assert_eq!(b.records, stored, "full records, payload included");
    assert_eq!(list[0].record_count, 3);
    let snap = status.snapshot();
    assert_eq!((snap.failures, snap.retries, snap.discarded_records), (3, 2, 3));
    assert!(snap.last_error.unwrap().contains("downstream"));
}

#[tokio::test]
async fn bisect_on_function_error_isolates_a_poison_record() {
    let fx = Fixture::new(1);
    let p: Vec<String> = (0..8).map(|i| if i == 5 { "poison".to_owned() } else { format!("r{i}") }).collect();
    let puts = fx.put("k", &strs(&p));
    let h = Recording::new(|_, inv| {
        if inv.data.iter().any(|d| d == "poison") {
            Err(HandlerError::new("cannot parse"))
        } else {
            Ok(KinesisEventResponse::default())
        }
    });
    let mut c = config("bisect");
    c.bisect_batch_on_function_error = true;
    c.maximum_retry_attempts = Some(1);
    let (run, status) = start(&fx, c, Arc::clone(&h));
    wait_until("resolved", PATIENCE, || fx.checkpoint("bisect", &shard_id(0)) == Some(puts[7].sequence_number)).await;
    run.stop().await;

    let ranges: Vec<Vec<String>> = h.invocations().into_iter().map(|i| i.data).collect();
    let r = |a: usize, b: usize| p[a..b].to_vec();
    assert_eq!(
        ranges,
        vec![
            r(0, 8), // fails: split
            r(0, 4), // ok
            r(4, 8), // fails: split
            r(4, 6), // fails: split
            r(4, 5), // ok
            r(5, 6), // poison alone: fails
            r(5, 6), // retry 1 of 1: fails -> failure destination
            r(6, 8), // ok
        ]
    );
    let list = fx.failures.list().unwrap();
    assert_eq!(list.len(), 1);
    let dl = fx.failures.get(list[0].id).unwrap().unwrap();
    assert_eq!(dl.batch.records.len(), 1);
    assert_eq!(dl.batch.records[0].data, b"poison");
    assert_eq!(dl.batch.records[0].sequence_number, puts[5].sequence_number);
    assert_eq!(dl.batch.attempts, 2);
    let snap = status.snapshot();
    assert_eq!(snap.bisections, 3);
    assert_eq!(snap.retries, 1, "splitting does not count as a retry");
    assert_eq!(snap.succeeded_records, 7);
}

#[tokio::test]
async fn records_older_than_the_maximum_age_go_to_the_destination_undelivered() {
    let fx = Fixture::new(1);
    let old = Utc::now() - chrono::Duration::hours(2);
    let entries = |xs: &[&str]| -> Vec<PutEntry> {
        xs.iter().map(|x| PutEntry { partition_key: "k".into(), data: x.as_bytes().to_vec() }).collect()
    };
    let stale = fx.stream.put_records_at(&entries(&["old-1", "old-2", "old-3"]), old).unwrap();
    let fresh = fx.stream.put_records(&entries(&["new-1", "new-2"])).unwrap();
    let h = Recording::ok();
    let mut c = config("age");
    c.maximum_record_age = Some(Duration::from_secs(3600));
    let (run, status) = start(&fx, c, Arc::clone(&h));
    wait_until("resolved", PATIENCE, || fx.checkpoint("age", &shard_id(0)) == Some(fresh[1].sequence_number)).await;
    run.stop().await;
    let delivered: Vec<String> = h.invocations().into_iter().flat_map(|i| i.data).collect();
    assert_eq!(delivered, vec!["new-1", "new-2"]);
    let list = fx.failures.list().unwrap();
    assert_eq!(list.len(), 1);
    let dl = fx.failures.get(list[0].id).unwrap().unwrap();
    assert_eq!(dl.batch.reason, FailureReason::RecordAgeExceeded);
    assert_eq!(dl.batch.attempts, 0);
    assert_eq!(dl.batch.first_sequence, stale[0].sequence_number);
    assert_eq!(dl.batch.last_sequence, stale[2].sequence_number);
    let data: Vec<&[u8]> = dl.batch.records.iter().map(|r| r.data.as_slice()).collect();
    assert_eq!(data, vec![&b"old-1"[..], b"old-2", b"old-3"]);
    let snap = status.snapshot();
    assert_eq!((snap.expired_records, snap.discarded_records), (3, 3));
}

/// A handler that blocks each invocation until the test releases it.
struct Gate {
    entered: Semaphore,
    release: Semaphore,
    log: std::sync::Mutex<Vec<Invocation>>,
}

impl BatchHandler for Gate {
    async fn handle(&self, payload: bytes::Bytes) -> Result<KinesisEventResponse, HandlerError> {
        self.log.lock().unwrap().push(Invocation::from_payload(&payload));
        self.entered.add_permits(1);
        self.release.acquire().await.unwrap().forget();
        Ok(KinesisEventResponse::default())
    }
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_finishes_the_in_flight_batch_and_starts_no_other() {
    let fx = Fixture::new(1);
    let p = payloads(20, "r");
    let puts = fx.put("k", &strs(&p));
    let gate = Arc::new(Gate { entered: Semaphore::new(0), release: Semaphore::new(0), log: Default::default() });
    let (run, status) = start(&fx, config("graceful"), Arc::clone(&gate));
    within(gate.entered.acquire()).await.unwrap().forget();
    run.token.cancel();
    // Cancelled, but the in-flight invocation holds `run` open (ten minutes of paused time,
    // within the default 900 s function timeout).
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(!run.handle.is_finished());
    assert_eq!(fx.checkpoint("graceful", &shard_id(0)), None);
    gate.release.add_permits(1);
    within(run.handle).await.unwrap().unwrap();
    // Its checkpoint was written; no other batch started.
    assert_eq!(fx.checkpoint("graceful", &shard_id(0)), Some(puts[9].sequence_number));
    assert_eq!(gate.log.lock().unwrap().len(), 1);
    assert!(!status.is_running());
}

#[tokio::test]
async fn restart_resumes_after_the_checkpoint_and_redelivers_the_in_flight_batch() {
    let fx = Fixture::new(1);
    let p = payloads(12, "r");
    let puts = fx.put("k", &strs(&p));
    // First life: batches of 5; the third batch hangs, then the process "crashes".
    let hang = Arc::new(Semaphore::new(0));
    let h1 = {
        let hang = Arc::clone(&hang);
        Arc::new(HangOn { nth: 2, seen: AtomicUsize::new(0), log: Default::default(), hang })
    };
    let mut c = config("restart");
    c.batch_size = 5;
    let esm = EventSourceMapping::new(
        c.clone(),
        Arc::new(fx.stream.clone()),
        Arc::clone(&h1),
        Arc::clone(&fx.failures),
        Arc::clone(&fx.checkpoints),
    );
    let task = tokio::spawn(esm.run(CancellationToken::new()));
    within(hang.acquire()).await.unwrap().forget();
    task.abort(); // crash: no graceful shutdown
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(fx.checkpoint("restart", &shard_id(0)), Some(puts[9].sequence_number));

    // Second life, everything reopened from the same file.
    let (stream, checkpoints, failures) = open_all(&fx.path, 1);
    let h2 = Recording::ok();
    let esm = EventSourceMapping::new(c, Arc::new(stream), Arc::clone(&h2), failures, Arc::clone(&checkpoints));
    let token = CancellationToken::new();
    let task = tokio::spawn(esm.run(token.clone()));
    wait_until("redelivered", PATIENCE, || {
        checkpoints.get("restart", &shard_id(0)).unwrap() == Some(puts[11].sequence_number)
    })
    .await;
    token.cancel();
    within(task).await.unwrap().unwrap();
    let first_life: Vec<Vec<String>> = h1.log.lock().unwrap().iter().map(|i| i.data.clone()).collect();
    assert_eq!(first_life, vec![p[0..5].to_vec(), p[5..10].to_vec(), p[10..12].to_vec()]);
    let second_life: Vec<Vec<String>> = h2.invocations().into_iter().map(|i| i.data).collect();
    assert_eq!(second_life, vec![p[10..12].to_vec()], "only the in-flight batch is redelivered");
}

/// Succeeds, except that invocation `nth` (0-based) never returns.
struct HangOn {
    nth: usize,
    seen: AtomicUsize,
    log: std::sync::Mutex<Vec<Invocation>>,
    hang: Arc<Semaphore>,
}

impl BatchHandler for HangOn {
    async fn handle(&self, payload: bytes::Bytes) -> Result<KinesisEventResponse, HandlerError> {
        self.log.lock().unwrap().push(Invocation::from_payload(&payload));
        if self.seen.fetch_add(1, Ordering::SeqCst) == self.nth {
            self.hang.add_permits(1);
            std::future::pending::<()>().await;
        }
        Ok(KinesisEventResponse::default())
    }
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_exponentially_with_jitter_up_to_the_maximum() {
    let fx = Fixture::new(1);
    let puts = fx.put("k", &["a"]);
    let times = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&times);
    let h = Recording::new(move |n, _| {
        log.lock().unwrap().push(tokio::time::Instant::now());
        if n < 5 { Err(HandlerError::new("down")) } else { Ok(KinesisEventResponse::default()) }
    });
    let mut c = config("backoff");
    c.retry_backoff = Backoff { initial: Duration::from_secs(10), max: Duration::from_secs(40) };
    let (run, _status) = start(&fx, c, Arc::clone(&h));
    wait_until("resolved", PATIENCE, || fx.checkpoint("backoff", &shard_id(0)) == Some(puts[0].sequence_number)).await;
    run.stop().await;
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 6);
    // Retry r waits within [d/2, d], d = min(10 s * 2^r, 40 s); the slack covers the reads.
    for (r, (before, after)) in times.iter().zip(&times[1..]).enumerate() {
        let d = Duration::from_secs(10 << r).min(Duration::from_secs(40));
        let gap = *after - *before;
        assert!(gap >= d / 2 && gap <= d + Duration::from_secs(1), "retry {r}: waited {gap:?}, backoff {d:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_or_timed_out_handler_is_a_function_error() {
    struct Flaky {
        calls: AtomicUsize,
    }
    impl BatchHandler for Flaky {
        async fn handle(&self, _payload: bytes::Bytes) -> Result<KinesisEventResponse, HandlerError> {
            match self.calls.fetch_add(1, Ordering::SeqCst) {
                0 => panic!("handler bug"),
                1 => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(KinesisEventResponse::default())
                }
                _ => Ok(KinesisEventResponse::default()),
            }
        }
    }
    let fx = Fixture::new(1);
    let puts = fx.put("k", &["a"]);
    let h = Arc::new(Flaky { calls: AtomicUsize::new(0) });
    let mut c = config("flaky");
    c.function_timeout = Some(Duration::from_secs(60));
    let started = tokio::time::Instant::now();
    let (run, status) = start(&fx, c, Arc::clone(&h));
    wait_until("resolved", PATIENCE, || fx.checkpoint("flaky", &shard_id(0)) == Some(puts[0].sequence_number)).await;
    let waited = started.elapsed();
    assert!(
        (Duration::from_secs(60)..Duration::from_secs(61)).contains(&waited),
        "the hung invocation ends at the 60 s function timeout, not at its hour: {waited:?}"
    );
    run.stop().await;
    assert_eq!(h.calls.load(Ordering::SeqCst), 3);
    let snap = status.snapshot();
    assert_eq!((snap.failures, snap.retries), (2, 2));
    assert!(snap.last_error.unwrap().contains("timed out"));
}

#[tokio::test]
async fn invalid_configuration_is_rejected() {
    let fx = Fixture::new(1);
    let mut c = config("bad");
    c.batch_size = 0;
    let esm = EventSourceMapping::new(
        c,
        Arc::new(fx.stream.clone()),
        Recording::ok(),
        Arc::clone(&fx.failures),
        Arc::clone(&fx.checkpoints),
    );
    assert!(matches!(esm.run(CancellationToken::new()).await, Err(sluice_esm::EsmError::InvalidConfig(_))));
}
