//! sluice-loadtest: the load benchmarks (the deterministic event generator they share with the
//! tests is `sluice_testkit::generate`).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod http_bench;
