//! sluice-sinks: the Parquet lake writer.
//!
//! The lake itself (layout, file names, lake URLs, the `object_store` handle) is
//! [`sluice_lake`]: the writer, the query engine and the jobs share it.
//!
//! - [`columnar`]: validated events -> Arrow record batches in the event type's lake schema; pure.
//! - [`encode`]: Arrow -> Parquet bytes with the lake's writer settings; pure.
//! - [`prepare`]: one batch -> Parquet files and invalid records ([`prepare::prepare`],
//!   [`prepare::prepare_payload`], the Lambda's path); pure.
//! - [`handler`]: the lake writer ([`LakeWriter`], a `sluice_stream::BatchHandler`): dead
//!   letters, file writes, the batch response.
//! - [`lambda`]: the Lambda's configuration (`src/bin/lake-lambda.rs` wires it).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod columnar;
pub mod encode;
pub mod handler;
pub mod lambda;
pub mod prepare;

pub use handler::{BatchOutcome, LakeWriter, LakeWriterConfig};
pub use prepare::{GroupedBatch, LakePreparer, LakeTables, group_payload, group_records, prepare, prepare_payload};
