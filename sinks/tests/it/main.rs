//! sluice-sinks integration tests (one binary: linking is the slow part).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cases;
mod contract;
mod evolution;
mod fast_path;
mod nested;
mod orders;
mod python;
mod support;
mod writer;
