//! sluice-loadtest: load generator, end-to-end verifier, cost report.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod generate;
pub mod http_bench;
