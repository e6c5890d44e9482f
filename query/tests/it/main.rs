#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Integration tests of sluice-query (one binary: linking DataFusion is the slow part).

mod athena;
mod lake_urls;
mod query;
mod s3;
mod support;
mod writer;
