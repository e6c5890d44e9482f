//! sluice-esm: the event-source-mapping (ESM) runner, Lambda's Kinesis trigger semantics on one
//! machine, delivering batches to a [`BatchHandler`] as the invocation body Lambda sends (the
//! JSON of an `aws_lambda_events` `KinesisEvent`), and its SQLite adapters: the durable local
//! stream, checkpoints and on-failure destination. The Lambda functions do not depend on it: the
//! handler side of the contract (`BatchHandler`, payload parsing) is in `sluice-stream`.
//!
//! Code map:
//! - this file: the ports (`ShardSource`, `CheckpointStore`, `FailureDestination`), `EsmConfig`,
//!   `Backoff`, `FailedBatch`.
//! - `decide`: the pure decision core (what to do with an invocation's outcome).
//! - [`runner`]: `EventSourceMapping`, the async shell around it; `status`: its live status.
//! - [`local`]: `LocalStream`, the durable local stream (SQLite WAL, one table per shard, Kinesis
//!   routing and sequence numbers).
//! - [`checkpoints`], [`failure_destination`]: `SqliteCheckpoints`, `SqliteFailureDestination`
//!   and `DiscardFailureDestination`.
//!
//! Semantics (those of a Lambda Kinesis event source mapping; `docs/` of AWS Lambda "Using Lambda
//! with Kinesis"):
//! - Per shard, one batch is in flight at a time and records are delivered in sequence-number
//!   order; shards are processed concurrently.
//! - A batch holds up to `batch_size` records; with a `batching_window`, the runner waits up to
//!   that long after the first record is available for the batch to fill.
//! - A function error (`Err`, panic, or `function_timeout`) fails the whole batch, which is
//!   retried after a backoff. With `bisect_batch_on_function_error`, a failed batch of more than
//!   one record is split in two halves instead, processed in order; splitting does not count as
//!   a retry.
//! - With `report_batch_item_failures`, the response's lowest valid `itemIdentifier` marks the
//!   first failed record: the records before it are checkpointed, it and the later ones are
//!   retried (this counts as a retry). An empty, missing, unparsable or foreign `itemIdentifier`
//!   fails the whole batch, like a function error. Without the setting the response is ignored.
//! - After `maximum_retry_attempts` retries (`None`: forever), the failing records go to the
//!   on-failure [`FailureDestination`] with their full payloads, and the shard moves on.
//! - Records older than `maximum_record_age` when a batch is (re)delivered are not delivered;
//!   they go to the destination.
//! - The checkpoint (last processed sequence number per mapping and shard) is written after every
//!   success or discard, before the next batch starts. After a restart a shard resumes after its
//!   checkpoint, so a batch in flight at a crash is delivered again: **at-least-once**.
//! - Graceful shutdown: when the token is cancelled, an in-flight invocation completes and its
//!   outcome is applied (checkpoint, or discard to the failure destination), then no further
//!   invocation starts (not even a retry); [`EventSourceMapping::run`] returns `Ok`. Unfinished
//!   work resumes from the checkpoint on the next start, with fresh retry counters.
//! - Port failures (source, checkpoint store, destination) never lose records: the runner retries
//!   them with backoff and never advances past records it could not send to the failure
//!   destination.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod checkpoints;
mod decide;
pub mod failure_destination;
pub mod local;
pub mod runner;
mod sqlite;
mod status;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use sluice_stream::{SequenceNumber, StreamRecord};

pub use checkpoints::{CheckpointError, SqliteCheckpoints};
pub use failure_destination::{
    DiscardFailureDestination, FailureDestinationError, SqliteFailureDestination, StoredFailure, StoredFailureSummary,
};
pub use local::{LocalStream, LocalStreamConfig, PutEntry, PutResult, StreamError};
pub use runner::EventSourceMapping;
pub use sluice_stream::lambda::{BatchHandler, HandlerError};
pub use sqlite::Durability;
pub use status::{MappingStatus, MappingStatusSnapshot};

/// A failure of a port (source, checkpoint store, failure destination). The runner retries every
/// port error with backoff; none is fatal, and no record is skipped because of one.
#[derive(Debug)]
pub struct PortError(Box<dyn StdError + Send + Sync>);

impl PortError {
    /// Wraps any error or message.
    pub fn new(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        PortError(error.into())
    }
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for PortError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.0.as_ref())
    }
}

/// Where an event source mapping reads records from (the local stream, or Kinesis).
pub trait ShardSource: Send + Sync + 'static {
    /// The shard ids currently readable.
    fn list_shards(&self) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;

    /// Up to `limit` records of `shard_id` after sequence number `after` (from the oldest
    /// retained record when `None`), in strictly increasing sequence-number order.
    fn read(
        &self,
        shard_id: &str,
        after: Option<SequenceNumber>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StreamRecord>, PortError>> + Send;
}

/// Durable per-(mapping, shard) checkpoints: the last sequence number processed (succeeded or
/// discarded).
pub trait CheckpointStore: Send + Sync + 'static {
    /// The checkpoint of `shard_id` for `mapping`, `None` if the mapping never processed it.
    fn load(
        &self,
        mapping: &str,
        shard_id: &str,
    ) -> impl Future<Output = Result<Option<SequenceNumber>, PortError>> + Send;

    /// Records durably (before returning `Ok`) that `mapping` processed `shard_id` up to `seq`.
    fn save(
        &self,
        mapping: &str,
        shard_id: &str,
        seq: SequenceNumber,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// The on-failure destination: where discarded records go.
pub trait FailureDestination: Send + Sync + 'static {
    /// Stores `batch` durably before returning `Ok` (the runner checkpoints past the records
    /// right after). May be called again with the same records after a crash (at-least-once).
    fn send(&self, batch: &FailedBatch) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Why records were discarded (the names of Lambda's on-failure `condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureReason {
    /// The batch (or the remainder after a partial failure) failed more than
    /// `maximum_retry_attempts` retries.
    RetryAttemptsExhausted,
    /// The records were older than `maximum_record_age` when they were due for delivery.
    RecordAgeExceeded,
}

impl FailureReason {
    /// The stable text form (`"RetryAttemptsExhausted"`, `"RecordAgeExceeded"`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            FailureReason::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailureReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RetryAttemptsExhausted" => Ok(FailureReason::RetryAttemptsExhausted),
            "RecordAgeExceeded" => Ok(FailureReason::RecordAgeExceeded),
            other => Err(format!("unknown failure reason {other:?}")),
        }
    }
}

/// Records discarded by a mapping, with everything needed to inspect and redrive them: unlike
/// Lambda's SQS/SNS destinations (metadata only), the full records travel with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedBatch {
    /// The mapping that discarded the records.
    pub mapping: String,
    /// The source stream.
    pub stream_arn: String,
    /// The shard of the records.
    pub shard_id: String,
    /// Why they were discarded.
    pub reason: FailureReason,
    /// The last function error or failure report, if any.
    pub error: Option<String>,
    /// Invocations of these records that failed under the current retry counter (0 for records
    /// that expired before delivery).
    pub attempts: u32,
    /// Sequence number of the first record.
    pub first_sequence: SequenceNumber,
    /// Sequence number of the last record.
    pub last_sequence: SequenceNumber,
    /// When they were discarded.
    pub failed_at: DateTime<Utc>,
    /// The records, payloads included, in sequence order (never empty).
    pub records: Vec<StreamRecord>,
}

/// Retry backoff: `initial` doubled per retry up to `max`, with full jitter in the upper half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `retry` (0-based): in `[d/2, d]` with
    /// `d = min(initial * 2^retry, max)`.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        let d = self.initial.saturating_mul(factor).min(self.max);
        if d.is_zero() {
            return d;
        }
        let half = d / 2;
        let jitter_nanos = u64::try_from((d - half).as_nanos()).unwrap_or(u64::MAX);
        let j = if jitter_nanos == 0 { 0 } else { rand::random_range(0..=jitter_nanos) };
        half + Duration::from_nanos(j)
    }
}

/// Configuration of one event source mapping (Lambda's settings, plus local timings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsmConfig {
    /// Mapping name: the checkpoint key and the stored failures' `mapping`.
    pub name: String,
    /// Most records per batch, 1..=10000 (Lambda default 100).
    pub batch_size: usize,
    /// How long to wait for a batch to fill once a record is available, <= 300 s (default 0).
    pub batching_window: Duration,
    /// Retries of a failing batch before discarding it; `None` = forever (AWS -1, the default).
    pub maximum_retry_attempts: Option<u32>,
    /// Split a batch that hit a function error in two (default false).
    pub bisect_batch_on_function_error: bool,
    /// Discard records older than this instead of delivering them; `None` = never (default).
    pub maximum_record_age: Option<Duration>,
    /// Honour `batchItemFailures` in responses (`FunctionResponseTypes: [ReportBatchItemFailures]`).
    pub report_batch_item_failures: bool,
    /// How often an idle shard is polled (Lambda: once per second; default 100 ms locally).
    pub poll_interval: Duration,
    /// Backoff between retries of a failed batch and of failed port calls.
    pub retry_backoff: Backoff,
    /// A handler running longer than this is a function error (Lambda's function timeout;
    /// default 900 s). `None` = no limit.
    pub function_timeout: Option<Duration>,
    /// How often the shard list is refreshed (new shards get a worker; default 60 s).
    pub shard_refresh_interval: Duration,
    /// The source stream's ARN (`eventSourceARN` of the delivered records).
    pub stream_arn: String,
    /// The region (`awsRegion` of the delivered records).
    pub region: String,
}

impl EsmConfig {
    /// A mapping with Lambda's defaults: batch size 100, no batching window, infinite retries, no
    /// bisect, no record age limit, no partial batch responses.
    pub fn new(name: impl Into<String>, stream_arn: impl Into<String>, region: impl Into<String>) -> Self {
        EsmConfig {
            name: name.into(),
            batch_size: 100,
            batching_window: Duration::ZERO,
            maximum_retry_attempts: None,
            bisect_batch_on_function_error: false,
            maximum_record_age: None,
            report_batch_item_failures: false,
            poll_interval: Duration::from_millis(100),
            retry_backoff: Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(10) },
            function_timeout: Some(Duration::from_secs(900)),
            shard_refresh_interval: Duration::from_secs(60),
            stream_arn: stream_arn.into(),
            region: region.into(),
        }
    }

    /// Checks the settings against Lambda's limits (record age may be shorter than Lambda's 60 s
    /// minimum, for tests).
    pub fn validate(&self) -> Result<(), EsmError> {
        let bad = |m: String| Err(EsmError::InvalidConfig(m));
        if self.name.is_empty() {
            return bad("name must not be empty".into());
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return bad(format!("batch_size must be 1..=10000, got {}", self.batch_size));
        }
        if self.batching_window > Duration::from_secs(300) {
            return bad(format!("batching_window must be at most 300 s, got {:?}", self.batching_window));
        }
        if self.maximum_retry_attempts.is_some_and(|n| n > 10_000) {
            return bad("maximum_retry_attempts must be at most 10000".into());
        }
        if self.maximum_record_age.is_some_and(|a| a.is_zero() || a > Duration::from_secs(604_800)) {
            return bad("maximum_record_age must be in (0, 604800 s]".into());
        }
        if self.poll_interval.is_zero() {
            return bad("poll_interval must be positive".into());
        }
        if self.shard_refresh_interval.is_zero() {
            return bad("shard_refresh_interval must be positive".into());
        }
        if self.function_timeout.is_some_and(|t| t.is_zero()) {
            return bad("function_timeout must be positive".into());
        }
        if self.retry_backoff.initial > self.retry_backoff.max {
            return bad("retry_backoff.initial must not exceed retry_backoff.max".into());
        }
        Ok(())
    }
}

/// Why [`EventSourceMapping::run`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EsmError {
    /// The configuration breaks a limit; fix it (nothing was processed).
    #[error("invalid event source mapping configuration: {0}")]
    InvalidConfig(String),
    /// A shard worker died unexpectedly (a bug); the other workers were stopped gracefully.
    /// Restarting resumes from the checkpoints.
    #[error("event source mapping worker failed: {0}")]
    WorkerFailed(String),
}
