//! sluice-stream: the stream record model (Kinesis routing and sequence numbers) and the handler
//! side of the Kinesis trigger: parsing the invocation payload, the [`BatchHandler`] entry every
//! batch handler implements, and the Lambda runtime wiring around it. Pure or thin; no storage:
//! the local stream and the event-source-mapping runner are `sluice-esm`.
//!
//! Code map:
//! - [`sequence`]: `SequenceNumber`, the one sequence number type: allocation-free parser,
//!   canonical and zero-padded storage forms (pure).
//! - [`record`]: `StreamRecord`, shard ids, `to_kinesis_event`, `shard_id_of` (pure).
//! - [`routing`]: MD5 partition-key routing over evenly split hash-key ranges (pure).
//! - [`kinesis_input`]: `KinesisBatch`, the allocation-free view of an invocation payload.
//! - [`lambda`]: `BatchHandler` and `HandlerError`, the `RawPayloads` layer, and [`lambda::run`],
//!   the one function body of every Kinesis-triggered Lambda binary.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod kinesis_input;
pub mod lambda;
pub mod record;
pub mod routing;
pub mod sequence;

pub use lambda::{BatchHandler, HandlerError};
pub use record::{
    SequenceNumber, SequenceNumberError, StreamRecord, sequence_number_of, shard_id, shard_id_of, to_kinesis_event,
};
