//! sluice-sinks: the Parquet lake writer.
//!
//! The lake itself (layout, file names, lake URLs, the `object_store` handle) is
//! [`sluice_lake`]: the writer, the query engine and the jobs share it.
//!
//! - [`columnar`]: validated events -> Arrow record batches in the event type's lake schema; pure.
//! - [`encode`]: Arrow -> Parquet bytes with the lake's writer settings; pure.
//! - [`lambda`]: the Lambda entry point and its configuration (`src/bin/lake-lambda.rs`).
//! - [`handler`]: the lake writer ([`LakeWriter`], a `sluice_stream::BatchHandler`): decode,
//!   validate, group by partition, encode ([`handler::prepare`], pure) and write. Its input is
//!   `sluice_stream::kinesis_input::KinesisBatch` (the Lambda payload parsed in one pass, data
//!   base64-decoded into one buffer, ids borrowed); the ESM's `KinesisEvent` and an owned
//!   `KinesisInput` are viewed with `KinesisBatch::from(&_)` (nothing copied). The Lambda's raw
//!   payload goes through [`handler::prepare_payload`] / [`LakeWriter::process_payload`]
//!   (parse, group, drop the decoded payload, encode), same results.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod columnar;
pub mod encode;
pub mod handler;
pub mod lambda;

pub use handler::{
    BatchOutcome, GroupedBatch, LakePreparer, LakeTables, LakeWriter, LakeWriterConfig, group_payload, group_records,
    prepare, prepare_payload,
};
