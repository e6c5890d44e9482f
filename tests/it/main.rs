#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end tests of the `sluice` binary and the embedded runtime's components.

mod cli;
mod compaction;
mod pipeline;
mod process;
mod redrive;
mod redrive_aws;
mod rich;
mod support;
