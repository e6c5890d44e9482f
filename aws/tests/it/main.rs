#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! sluice-aws integration tests (one binary).
//!
//! - `config`: how [`sluice_aws::sdk_config`] resolves region and endpoints, each case in a child
//!   process with a clean environment (see `child`).
//! - `kinesis`, `dynamodb`, `sqs`: smoke tests of the shared config against moto over the
//!   real wire protocols. Under `scripts/test` they always run; under plain `cargo test` (no
//!   `SLUICE_MOTO_ENDPOINT`) they print `skipped (no moto): <test>` and return.

mod child;
mod config;
mod dynamodb;
mod kinesis;
mod sqs;
