#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The aggregates reader over real stores through the ingest Router (SQLite), the ingest Lambda's
//! app on moto's DynamoDB, and the ingest function of template.yaml.

mod aggregates;
mod lambda;
mod support;
mod template;
