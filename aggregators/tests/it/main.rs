#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! sluice-aggregators integration tests (one binary).

mod cases;
mod contract;
mod decode;
mod exactly_once;
#[path = "../../../loadtest/src/generate.rs"]
#[allow(dead_code)]
mod generate;
mod handler;
mod support;
