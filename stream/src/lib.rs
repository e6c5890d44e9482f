//! sluice-stream: the stream record model, the durable local stream (SQLite WAL, one table per
//! shard, Kinesis routing and sequence numbers), and the local event-source-mapping runner that
//! delivers `aws_lambda_events` Kinesis batches to batch handlers with Lambda's semantics
//! (batching, retries, bisect, partial batch responses, record age, on-failure destination).
//!
//! Code map:
//! - [`sequence`]: `SequenceNumber`, the one sequence number type: allocation-free parser,
//!   canonical and zero-padded storage forms (pure).
//! - [`record`]: `StreamRecord`, shard ids, `to_kinesis_event`, `shard_id_of` (pure).
//! - [`routing`]: MD5 partition-key routing over evenly split hash-key ranges (pure).
//! - [`local`]: `LocalStream`, the durable local stream (adapter: SQLite).
//! - [`esm`]: `EventSourceMapping` and its ports (`BatchHandler`, `ShardSource`,
//!   `CheckpointStore`, `FailureDestination`); its decision core is pure.
//! - [`checkpoints`], [`failure_destination`]: the SQLite checkpoint store and on-failure
//!   destination (`SqliteFailureDestination`, `DiscardFailureDestination`).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod checkpoints;
pub mod esm;
pub mod failure_destination;
pub mod kinesis_input;
pub mod lambda_payload;
pub mod local;
pub mod record;
pub mod routing;
pub mod sequence;
mod sqlite;

pub use checkpoints::{CheckpointError, SqliteCheckpoints};
pub use esm::{
    Backoff, BatchHandler, CheckpointStore, EsmConfig, EsmError, EventSourceMapping, FailedBatch, FailureDestination,
    FailureReason, HandlerError, MappingStatus, MappingStatusSnapshot, PortError, ShardSource,
};
pub use failure_destination::{
    DiscardFailureDestination, FailureDestinationError, SqliteFailureDestination, StoredFailure, StoredFailureSummary,
};
pub use local::{LocalStream, LocalStreamConfig, PutEntry, PutResult, StreamError};
pub use record::{
    SequenceNumber, SequenceNumberError, StreamRecord, sequence_number_of, shard_id, shard_id_of, to_kinesis_event,
};
pub use sqlite::Durability;
