//! sluice-sinks: the Parquet lake writer.
//!
//! - [`layout`]: where files live (`events/event_type=<t>/dt=YYYY-MM-DD/hour=HH/<file>.parquet`)
//!   and deterministic file names; pure, reused by the query and jobs crates.
//! - [`columnar`]: validated events -> Arrow record batches in the event type's lake schema; pure.
//! - [`encode`]: Arrow -> Parquet bytes with the lake's writer settings; pure.
//! - [`lake`]: the `object_store` adapter (`file://`, `memory://`, `s3://` lake URLs).
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
pub mod lake;
pub mod lambda;
pub mod layout;

pub use handler::{
    BatchOutcome, GroupedBatch, LakePreparer, LakeTables, LakeWriter, LakeWriterConfig, group_payload, group_records,
    prepare, prepare_payload,
};
pub use lake::{Lake, LakeError, LakeFile};
