//! sluice: the CLI and the embedded runtime.
//!
//! `sluice up` composes the whole pipeline in one process from the same crates the Lambda
//! binaries use: the ingest [`Router`](axum::Router), the durable local stream, the
//! event-source-mapping runner delivering `KinesisEvent` batches to the handler functions.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod aggregates;
pub mod backfill;
pub mod cli;
pub mod compact;
pub mod dlq;
pub mod jobs;
pub mod lake;
pub mod output;
pub mod signals;
pub mod token;
pub mod up;
