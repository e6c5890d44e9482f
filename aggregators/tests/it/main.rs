#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! sluice-aggregators integration tests (one binary).

mod backfill;
mod cases;
mod contract;
mod decode;
mod exactly_once;
use sluice_testkit::generate;
mod handler;
mod support;
