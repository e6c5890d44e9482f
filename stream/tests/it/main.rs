#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The one integration-test binary of sluice-stream.

mod esm;
mod esm_property;
mod failure_destination;
mod kinesis_input;
mod lambda_payload;
mod local_stream;
mod support;
