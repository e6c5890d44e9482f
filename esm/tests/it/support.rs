//! Shared test scaffolding: a stream + checkpoints + failure destination in one temp file, a recording
//! handler driven by a closure, and wait-until helpers (no timing races: every wait is for a
//! condition, with a generous timeout).
//!
//! Timing tests run on tokio's paused clock (`#[tokio::test(start_paused = true)]`): it only
//! moves when every task waits, straight to the next timer, so a 2-minute batching window or a
//! one-hour handler takes no real time and the assertions on elapsed time are exact. It also
//! moves while SQLite runs on the blocking pool, so the test's own deadlines (a hung test must
//! fail, not block CI) are measured on the wall clock instead.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::streams::KinesisEventResponse;
use sluice_esm::{
    Backoff, EsmConfig, EsmError, EventSourceMapping, LocalStream, LocalStreamConfig, PutEntry, PutResult,
    SqliteCheckpoints, SqliteFailureDestination,
};
use sluice_stream::{BatchHandler, HandlerError, SequenceNumber, StreamRecord};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/test";
pub const REGION: &str = "us-east-1";

/// A stream, its checkpoints and failure destination, all in one SQLite file in a temp dir.
pub struct Fixture {
    pub _dir: TempDir,
    pub path: PathBuf,
    pub stream: LocalStream,
    pub checkpoints: Arc<SqliteCheckpoints>,
    pub failures: Arc<SqliteFailureDestination>,
}

impl Fixture {
    pub fn new(shards: u32) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        let (stream, checkpoints, failures) = open_all(&path, shards);
        Fixture { _dir: dir, path, stream, checkpoints, failures }
    }

    /// Puts records with the given partition key and payloads, in one call.
    pub fn put(&self, key: &str, payloads: &[&str]) -> Vec<PutResult> {
        let entries: Vec<PutEntry> =
            payloads.iter().map(|p| PutEntry { partition_key: key.to_owned(), data: p.as_bytes().to_vec() }).collect();
        self.stream.put_records(&entries).unwrap()
    }

    pub fn checkpoint(&self, mapping: &str, shard: &str) -> Option<SequenceNumber> {
        self.checkpoints.get(mapping, shard).unwrap()
    }

    pub fn shard_records(&self, shard: &str) -> Vec<StreamRecord> {
        self.stream.read(shard, None, 100_000).unwrap()
    }
}

pub fn open_all(
    path: &std::path::Path,
    shards: u32,
) -> (LocalStream, Arc<SqliteCheckpoints>, Arc<SqliteFailureDestination>) {
    let stream = LocalStream::open(path, LocalStreamConfig { shards, ..LocalStreamConfig::default() }).unwrap();
    let checkpoints = Arc::new(SqliteCheckpoints::open(path).unwrap());
    let failures = Arc::new(SqliteFailureDestination::open(path).unwrap());
    (stream, checkpoints, failures)
}

/// A test-friendly mapping configuration: fast polling, tiny backoff.
pub fn config(name: &str) -> EsmConfig {
    let mut c = EsmConfig::new(name, ARN, REGION);
    c.batch_size = 10;
    c.poll_interval = Duration::from_millis(2);
    c.retry_backoff = Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(5) };
    c
}

/// One handler invocation as the handler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub shard: String,
    pub seqs: Vec<SequenceNumber>,
    pub data: Vec<String>,
}

impl Invocation {
    /// The invocation a handler got, from its payload: the bytes Lambda would deliver, which the
    /// Lambda's own payload parser accepts with the same records (checked on every delivery).
    pub fn from_payload(payload: &[u8]) -> Invocation {
        let event: KinesisEvent = serde_json::from_slice(payload).expect("the payload is a Kinesis event");
        let parsed = sluice_stream::kinesis_input::KinesisBatch::parse(payload).expect("the Lambda parser reads it");
        assert_eq!(parsed.len(), event.records.len());
        for (view, record) in parsed.iter().zip(&event.records) {
            assert_eq!(view.sequence_number.as_str(), record.kinesis.sequence_number);
            assert_eq!(view.data, record.kinesis.data.0.as_slice());
        }
        Self::from_event(&event)
    }

    pub fn from_event(event: &KinesisEvent) -> Invocation {
        let records: Vec<StreamRecord> = event.records.iter().map(|r| StreamRecord::try_from(r).unwrap()).collect();
        Invocation {
            shard: records.first().map(|r| r.shard_id.clone()).unwrap_or_default(),
            seqs: records.iter().map(|r| r.sequence_number).collect(),
            data: records.iter().map(|r| String::from_utf8(r.data.clone()).unwrap()).collect(),
        }
    }
}

type Script = dyn Fn(usize, &Invocation) -> Result<KinesisEventResponse, HandlerError> + Send + Sync;

/// A handler that records every invocation and answers with `script(n, invocation)` (`n` is the
/// 0-based invocation count across all shards).
pub struct Recording {
    pub log: Mutex<Vec<Invocation>>,
    script: Box<Script>,
}

impl Recording {
    pub fn new(
        script: impl Fn(usize, &Invocation) -> Result<KinesisEventResponse, HandlerError> + Send + Sync + 'static,
    ) -> Arc<Recording> {
        Arc::new(Recording { log: Mutex::new(Vec::new()), script: Box::new(script) })
    }

    pub fn ok() -> Arc<Recording> {
        Recording::new(|_, _| Ok(KinesisEventResponse::default()))
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

impl BatchHandler for Recording {
    async fn handle(&self, payload: bytes::Bytes) -> Result<KinesisEventResponse, HandlerError> {
        let inv = Invocation::from_payload(&payload);
        let n = {
            let mut log = self.log.lock().unwrap();
            log.push(inv.clone());
            log.len() - 1
        };
        (self.script)(n, &inv)
    }
}

/// A response reporting the given records as failed.
pub fn fail_items<'a>(ids: impl IntoIterator<Item = &'a str>) -> KinesisEventResponse {
    let mut r = KinesisEventResponse::default();
    r.set_failures(ids.into_iter().map(str::to_owned));
    r
}

/// Waits (polling) until `cond` holds; panics after `timeout` of wall-clock time.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Resolves once `limit` of wall-clock time has passed (polling tokio's clock, paused or not,
/// in 2 ms steps).
pub async fn wall_clock(limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `f`, or a panic naming `what` after `limit` of wall-clock time.
pub async fn within_wall_clock<T>(what: &str, limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::select! {
        value = f => value,
        () = wall_clock(limit) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// A running mapping and its shutdown token.
pub struct Running {
    pub token: CancellationToken,
    pub handle: JoinHandle<Result<(), EsmError>>,
}

impl Running {
    /// Cancels and waits for `run` to return; asserts it returned `Ok`.
    pub async fn stop(self) {
        self.token.cancel();
        within_wall_clock("run did not stop", Duration::from_secs(30), self.handle)
            .await
            .expect("run panicked")
            .expect("run failed");
    }
}

pub fn start<H: BatchHandler>(
    fx: &Fixture,
    config: EsmConfig,
    handler: Arc<H>,
) -> (Running, Arc<sluice_esm::MappingStatus>) {
    let esm = EventSourceMapping::new(
        config,
        Arc::new(fx.stream.clone()),
        handler,
        Arc::clone(&fx.failures),
        Arc::clone(&fx.checkpoints),
    );
    let status = esm.status();
    let token = CancellationToken::new();
    let handle = tokio::spawn(esm.run(token.clone()));
    (Running { token, handle }, status)
}

/// Generous limit for conditions that should hold within milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Runs `f` with a wall-clock timeout (a hung test fails instead of blocking CI).
pub async fn within<T>(f: impl Future<Output = T>) -> T {
    within_wall_clock("timed out", PATIENCE, f).await
}
