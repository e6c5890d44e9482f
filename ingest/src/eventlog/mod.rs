//! The EventLog port: where accepted events are durably appended (Kinesis in AWS, the local
//! stream embedded), and its adapters.
//!
//! Contract every adapter keeps (checked by the shared suite in `tests/it/eventlog_contract.rs`):
//! - [`EventLog::append`] returns exactly one [`AppendOutcome`] per input record, in input order.
//! - [`AppendOutcome::Written`] means the record is durably in the stream (it survives a crash
//!   of this process and is delivered to consumers) with that shard and sequence number.
//! - [`AppendOutcome::Failed`] means the record was not written *as far as the adapter knows*.
//!   It may still have been written (a timeout after the service took it), so a producer's retry
//!   can duplicate it; duplicates share the `event_id` and are removed by compaction.
//! - Bytes and partition keys are stored exactly as given.
//! - No ordering guarantee across shards; within one call, records with the same partition key
//!   keep their relative order when they are written in the same attempt.

pub mod kinesis;
#[cfg(feature = "local")]
pub mod local_stream;
pub mod memory;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

pub use kinesis::{KinesisEventLog, KinesisLimits, PutRecordsApi, PutRecordsCallError, RetryPolicy};
#[cfg(feature = "local")]
pub use local_stream::LocalStreamEventLog;

pub use memory::MemoryEventLog;

/// A boxed, sendable future (the port is object safe so the Router holds `Arc<dyn EventLog>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Chooses the shard (Kinesis: MD5 of the key). Ingest uses the `event_id`.
    pub partition_key: String,
    /// The payload, stored byte for byte (ingest: `serde_json::to_vec(&Event)`).
    pub data: Bytes,
}

/// Where a written record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The shard id, e.g. `shardId-000000000001`.
    pub shard_id: String,
    /// The sequence number, decimal.
    pub sequence_number: String,
}

/// Why one record was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendFailure {
    /// Machine-readable cause, e.g. `ProvisionedThroughputExceededException`, `Unavailable`.
    pub code: String,
    /// Human-readable detail (logged, not sent to producers).
    pub message: String,
}

/// The outcome for one record of an [`EventLog::append`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Durably written.
    Written(Appended),
    /// Not written (as far as the adapter knows); the producer should retry it later.
    Failed(AppendFailure),
}

impl AppendOutcome {
    /// A failure outcome.
    pub fn failed(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Failed(AppendFailure { code: code.into(), message: message.into() })
    }

    /// Whether the record was written.
    pub fn is_written(&self) -> bool {
        matches!(self, Self::Written(_))
    }
}

/// Durable, append-only log of events (the stream).
pub trait EventLog: Send + Sync + 'static {
    /// Appends `records`, returning one outcome per record in input order. Never panics; a
    /// failing dependency yields `Failed` outcomes (retried internally within the adapter's
    /// deadline first). Ingest calls it once per request.
    fn append(&self, records: Vec<LogRecord>) -> BoxFuture<'_, Vec<AppendOutcome>>;

    /// A short name for logs and health (`kinesis`, `local`, `memory`).
    fn kind(&self) -> &'static str;
}

/// `n` copies of the same failure (whole-call failures).
pub(crate) fn all_failed(n: usize, code: &str, message: &str) -> Vec<AppendOutcome> {
    (0..n).map(|_| AppendOutcome::failed(code, message)).collect()
}
