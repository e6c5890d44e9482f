//! One EventLog contract suite, run against every adapter: memory, the local stream, and
//! Kinesis on moto. Plus the Kinesis adapter's retry behaviour through the real retry code
//! (a `PutRecordsApi` wrapper around the SDK seam injects per-record throttling).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;
use serde_json::json;
use sluice_esm::{LocalStream, LocalStreamConfig};
use sluice_ingest::eventlog::kinesis::{EntryResult, SdkPutRecords};
use sluice_ingest::eventlog::{
    AppendOutcome, BoxFuture, EventLog, KinesisEventLog, LocalStreamEventLog, LogRecord, PutRecordsApi,
    PutRecordsCallError, RetryPolicy,
};
use sluice_ingest::{AppState, Authenticator, MemoryEventLog};

use crate::support::*;

/// A record as read back from the adapter's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    shard_id: String,
    sequence_number: String,
    partition_key: String,
    data: Vec<u8>,
}

fn rec(key: &str, data: &[u8]) -> LogRecord {
    LogRecord { partition_key: key.to_owned(), data: Bytes::copy_from_slice(data) }
}

/// Orders decimal sequence numbers of any length (local ones have 56 digits).
fn seq(s: &str) -> (usize, String) {
    assert!(!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()), "{s:?}");
    let t = s.trim_start_matches('0');
    (t.len(), t.to_owned())
}

/// The contract (see `sluice_ingest::eventlog`). `read` returns everything in the stream.
async fn contract(log: &dyn EventLog, read: impl AsyncFn() -> Vec<Stored>) {
    // Empty append: no outcomes.
    assert!(log.append(Vec::new()).await.is_empty());

    // One outcome per record, in order; exact bytes and keys; per-key order kept.
    let binary: Vec<u8> = (0..=255u8).collect();
    let input = vec![rec("k-a", b"first"), rec("k-b", &binary), rec("k-a", b"second"), rec("k-c", b"{}")];
    let outcomes = log.append(input.clone()).await;
    assert_eq!(outcomes.len(), input.len());
    let written: Vec<_> = outcomes
        .iter()
        .map(|o| match o {
            AppendOutcome::Written(a) => a.clone(),
            AppendOutcome::Failed(f) => panic!("{}: not written: {f:?}", log.kind()),
        })
        .collect();
    assert_eq!(written[0].shard_id, written[2].shard_id, "same key, same shard");
    assert!(seq(&written[0].sequence_number) < seq(&written[2].sequence_number), "per-key order");

    // A batch over Kinesis' 500-record PutRecords limit.
    let many: Vec<LogRecord> = (0..620).map(|i| rec(&format!("key-{i}"), format!("payload-{i}").as_bytes())).collect();
    let outcomes = log.append(many.clone()).await;
    assert_eq!(outcomes.len(), 620);
    assert!(outcomes.iter().all(AppendOutcome::is_written), "{}", log.kind());

    let stored = read().await;
    let mut by_position: BTreeMap<(String, (usize, String)), &Stored> = BTreeMap::new();
    for s in &stored {
        assert!(by_position.insert((s.shard_id.clone(), seq(&s.sequence_number)), s).is_none(), "positions are unique");
    }
    for (w, r) in written.iter().zip(&input) {
        let s = by_position[&(w.shard_id.clone(), seq(&w.sequence_number))];
        assert_eq!((&s.partition_key, &s.data), (&r.partition_key, &r.data.to_vec()), "{}", log.kind());
    }
    let all: HashSet<(String, Vec<u8>)> = stored.iter().map(|s| (s.partition_key.clone(), s.data.clone())).collect();
    for r in many.iter().chain(&input) {
        assert!(all.contains(&(r.partition_key.clone(), r.data.to_vec())), "{} lost {}", log.kind(), r.partition_key);
    }
    assert_eq!(stored.len(), input.len() + many.len(), "{}: nothing duplicated", log.kind());
}

#[tokio::test]
async fn memory_adapter_keeps_the_contract() {
    let log = MemoryEventLog::new();
    contract(&log, async || {
        log.records()
            .into_iter()
            .map(|(a, r)| Stored {
                shard_id: a.shard_id,
                sequence_number: a.sequence_number,
                partition_key: r.partition_key,
                data: r.data.to_vec(),
            })
            .collect()
    })
    .await;
}

fn read_local(stream: &LocalStream) -> Vec<Stored> {
    let mut out = Vec::new();
    for shard in stream.shards() {
        for r in stream.read(shard, None, 100_000).unwrap() {
            out.push(Stored {
                shard_id: r.shard_id.clone(),
                sequence_number: r.sequence_number.to_string(),
                partition_key: r.partition_key.clone(),
                data: r.data.to_vec(),
            });
        }
    }
    out
}

#[tokio::test]
async fn local_stream_adapter_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let stream = LocalStream::open(
        &dir.path().join("stream.db"),
        LocalStreamConfig { shards: 4, ..LocalStreamConfig::default() },
    )
    .unwrap();
    let log = LocalStreamEventLog::new(stream.clone());
    contract(&log, async || read_local(&stream)).await;
}

async fn kinesis_stream(config: &sluice_aws::SdkConfig, shards: i32) -> (aws_sdk_kinesis::Client, String) {
    let client = aws_sdk_kinesis::Client::new(config);
    let name = sluice_testkit::moto::unique_name("ingest");
    client.create_stream().stream_name(&name).shard_count(shards).send().await.unwrap();
    (client, name)
}

async fn read_kinesis(client: &aws_sdk_kinesis::Client, stream: &str) -> Vec<Stored> {
    let shards = client.list_shards().stream_name(stream).send().await.unwrap();
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_owned);
        while let Some(it) = iterator {
            let page = client.get_records().shard_iterator(it).limit(10_000).send().await.unwrap();
            if page.records().is_empty() {
                break;
            }
            for r in page.records() {
                out.push(Stored {
                    shard_id: shard.shard_id().to_owned(),
                    sequence_number: r.sequence_number().to_owned(),
                    partition_key: r.partition_key().unwrap_or_default().to_owned(),
                    data: r.data().as_ref().to_vec(),
                });
            }
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
    }
    out
}

#[tokio::test]
async fn kinesis_adapter_keeps_the_contract() {
    let Some(config) = sluice_testkit::moto::moto().await else { return };
    let (client, stream) = kinesis_stream(&config, 3).await;
    let log = KinesisEventLog::new(client.clone(), stream.clone());
    contract(&log, async || read_kinesis(&client, &stream).await).await;
}

/// Wraps the real SDK seam: on the first `fail_calls` calls, every entry at an even position of
/// the call is answered `ProvisionedThroughputExceededException` without being sent (the others
/// go to moto); later calls pass through.
struct Throttling {
    inner: SdkPutRecords,
    fail_calls: usize,
    calls: Mutex<Vec<usize>>,
}

impl PutRecordsApi for Throttling {
    fn put_records<'a>(
        &'a self,
        entries: &'a [LogRecord],
    ) -> BoxFuture<'a, Result<Vec<EntryResult>, PutRecordsCallError>> {
        Box::pin(async move {
            let call = {
                let mut calls = self.calls.lock().unwrap();
                calls.push(entries.len());
                calls.len()
            };
            if call > self.fail_calls {
                return self.inner.put_records(entries).await;
            }
            let pass: Vec<LogRecord> = entries.iter().skip(1).step_by(2).cloned().collect();
            let mut passed = self.inner.put_records(&pass).await?.into_iter();
            Ok((0..entries.len())
                .map(|i| {
                    if i % 2 == 1 {
                        passed.next().unwrap()
                    } else {
                        EntryResult::Err {
                            code: "ProvisionedThroughputExceededException".into(),
                            message: "Rate exceeded".into(),
                        }
                    }
                })
                .collect())
        })
    }
}

fn fast_retry(deadline_ms: u64) -> RetryPolicy {
    RetryPolicy {
        deadline: Duration::from_millis(deadline_ms),
        base: Duration::from_millis(5),
        max: Duration::from_millis(40),
    }
}

#[tokio::test]
async fn kinesis_partial_failure_is_retried_for_the_failed_records_only() {
    let Some(config) = sluice_testkit::moto::moto().await else { return };
    let (client, stream) = kinesis_stream(&config, 2).await;
    let api = Throttling {
        inner: SdkPutRecords::new(client.clone(), stream.clone()),
        fail_calls: 2,
        calls: Mutex::new(Vec::new()),
    };
    let log = KinesisEventLog::with_api(api).retry(fast_retry(5_000));
    let input: Vec<LogRecord> = (0..9).map(|i| rec(&format!("k{i}"), format!("d{i}").as_bytes())).collect();
    let outcomes = log.append(input.clone()).await;
    assert!(outcomes.iter().all(AppendOutcome::is_written), "{outcomes:?}");
    // 9 sent; 5 throttled resent; of those 3 throttled again, resent and written.
    assert_eq!(*log_api_calls(&log), vec![9, 5, 3]);
    let stored = read_kinesis(&client, &stream).await;
    assert_eq!(stored.len(), 9, "every record exactly once");
    let keys: HashSet<String> = stored.iter().map(|s| s.partition_key.clone()).collect();
    assert_eq!(keys.len(), 9);
}

fn log_api_calls(log: &KinesisEventLog<Throttling>) -> std::sync::MutexGuard<'_, Vec<usize>> {
    log.api().calls.lock().unwrap()
}

#[tokio::test]
async fn kinesis_records_still_failing_at_the_deadline_are_reported_and_answered_503() {
    let Some(config) = sluice_testkit::moto::moto().await else { return };
    let (client, stream) = kinesis_stream(&config, 1).await;
    let api = Throttling {
        inner: SdkPutRecords::new(client.clone(), stream.clone()),
        fail_calls: usize::MAX,
        calls: Mutex::new(Vec::new()),
    };
    let log = Arc::new(KinesisEventLog::with_api(api).retry(fast_retry(300)));
    let env = Env::new(log.clone());
    let batch = json!([page_view(&uuid(1)), page_view(&uuid(2)), page_view(&uuid(3))]);
    let started = std::time::Instant::now();
    let (status, _, body) = send(env.app(), post_events(Some(&env.token("p")), batch.to_string())).await;
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the deadline");
    assert_eq!(status, 503);
    let v = json(&body);
    let statuses: Vec<&str> = v["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    // Attempt 1 sends [1,2,3]: 2 is written. Attempt 2 resends [1,3]: 3 is written. Event 1 is
    // throttled until the deadline.
    assert_eq!(statuses, vec!["unavailable", "accepted", "accepted"]);
    assert!(log.api().calls.lock().unwrap().len() > 2, "retried until the deadline");
    let stored = read_kinesis(&client, &stream).await;
    let mut keys: Vec<String> = stored.iter().map(|s| s.partition_key.clone()).collect();
    keys.sort();
    assert_eq!(keys, vec![uuid(2), uuid(3)], "unavailable events are not in the stream");
}

#[tokio::test]
async fn kinesis_missing_stream_fails_fast_without_retrying() {
    let Some(config) = sluice_testkit::moto::moto().await else { return };
    let client = aws_sdk_kinesis::Client::new(&config);
    let log = KinesisEventLog::new(client, "no-such-stream-here").retry(fast_retry(10_000));
    let started = std::time::Instant::now();
    let outcomes = log.append(vec![rec("k", b"d")]).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(&outcomes[0], AppendOutcome::Failed(f) if f.code == "ResourceNotFoundException"), "{outcomes:?}");
}

#[tokio::test]
async fn events_posted_through_the_router_are_in_kinesis_byte_for_byte() {
    let Some(config) = sluice_testkit::moto::moto().await else { return };
    let (client, stream) = kinesis_stream(&config, 2).await;
    let log = Arc::new(KinesisEventLog::new(client.clone(), stream.clone()));
    let env = Env::new(log);
    let batch = json!([page_view(&uuid(1)), page_view(&uuid(2)), bad_page_view(&uuid(3)), page_view(&uuid(4))]);
    let (status, _, body) = send(env.app(), post_events(Some(&env.token("web")), batch.to_string())).await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let stored = read_kinesis(&client, &stream).await;
    let mut ids: Vec<String> = Vec::new();
    for s in &stored {
        let event = registry().decode_stored(&s.data).unwrap();
        assert_eq!(s.partition_key, event.event_id, "partition key = event_id");
        assert_eq!(serde_json::to_vec(&event).unwrap(), s.data, "exact bytes of the encoded Event");
        assert_eq!(event.producer, "web");
        ids.push(event.event_id);
    }
    ids.sort();
    assert_eq!(ids, vec![uuid(1), uuid(2), uuid(4)]);
    let _ = AppState::builder(registry(), Arc::new(MemoryEventLog::new()), Authenticator::Disabled);
}

#[tokio::test]
async fn events_posted_through_the_router_are_in_the_local_stream() {
    let dir = tempfile::tempdir().unwrap();
    let stream = LocalStream::open(&dir.path().join("stream.db"), LocalStreamConfig::default()).unwrap();
    let env = Env::new(Arc::new(LocalStreamEventLog::new(stream.clone())));
    let batch = json!([page_view(&uuid(1)), page_view(&uuid(2))]);
    assert_eq!(send(env.app(), post_events(Some(&env.token("web")), batch.to_string())).await.0, 202);
    let mut keys: Vec<String> = read_local(&stream).into_iter().map(|s| s.partition_key).collect();
    keys.sort();
    assert_eq!(keys, vec![uuid(1), uuid(2)]);
}
