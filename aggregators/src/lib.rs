//! sluice-aggregators: exactly-once windowed aggregates.
//!
//! Core (pure, no I/O, no AWS type, time passed in): [`window`], [`key`], [`hll`],
//! [`quantiles`], [`state`], [`aggregate`], [`decode`], [`prepare`] (one batch -> deltas and dead
//! letters), [`query`] (the merge/shape part).
//! Ports and adapters: [`store`] (`AggregateStore`, SQLite and DynamoDB).
//! I/O: [`handler`] (`AggregatorHandler`, the `BatchHandler`), [`lambda`] (its configuration).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod aggregate;
pub mod decode;
pub mod handler;
pub mod hll;
pub mod key;
pub mod lambda;
pub mod prepare;
pub mod quantiles;
pub mod query;
pub mod state;
pub mod store;
mod varint;
pub mod window;

pub use aggregate::{BatchAggregator, BatchDelta, Contribution, KeyDelta};
pub use handler::AggregatorHandler;
pub use key::{AggKey, DimRef, DimValue};
pub use prepare::{BatchPreparer, PreparedAggregates, prepare_batch};
pub use query::{AggregateQuery, AggregateQueryError, AggregateResponse, Bucket, read_aggregates};
pub use state::{AggState, Observation};
pub use store::dynamodb::DynamoAggregateStore;
#[cfg(feature = "sqlite")]
pub use store::sqlite::SqliteAggregateStore;
pub use store::{
    AggregateStore, ApplyPolicy, ApplyReport, ChainHead, Link, Partial, PutOutcome, ShardWindow, StoreError, WindowKey,
    apply_batch, fold, scan,
};
pub use window::{WindowConfig, WindowSize};
