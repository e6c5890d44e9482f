//! sluice-jobs: the scheduled jobs over the lake.
//!
//! - [`compaction`]: merges a closed partition's files into files of a target size, one row
//!   per `event_id`, sorted by `occurred_at`; crash-safe by its order of operations.
//!
//! - [`orchestration`]: the jobs' state machines (`jobs/statemachines/*.asl.json`), their task
//!   functions, and the executor that runs them in process; [`lambda`]: the jobs Lambda's
//!   configuration.
//!
//! - [`redrive`]: dead letters and failure-destination batches re-submitted to the stream once
//!   valid (`sluice up`'s sources with feature `local`; the SQS dead-letter queue, the S3
//!   on-failure destination and ranges re-read from Kinesis with feature `aws`).
//!
//! - [`backfill`]: recomputes the aggregates of a time range from the lake and replaces the
//!   stored per-shard partials, fenced so the stream keeps flowing.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod backfill;
pub mod compaction;
pub mod lambda;
pub mod orchestration;
pub mod redrive;
