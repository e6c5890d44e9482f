//! The AggregateStore port: one partial per (key, shard), guarded by the highest sequence number
//! applied, and the exactly-once apply protocol over it ([`apply_batch`]).
//!
//! Adapters: [`sqlite::SqliteAggregateStore`] (embedded) and [`dynamodb::DynamoAggregateStore`].
//! Both pass the same contract suite (`tests/it/contract.rs`).

use std::future::Future;

use crate::key::AggKey;
use crate::seq::SeqNo;
use crate::state::AggState;
use crate::window::WindowSize;

pub mod apply;
pub mod dynamodb;
pub mod sqlite;

pub use apply::{ApplyPolicy, ApplyReport, apply_batch};

/// The stored partial of one (key, shard): the merged state of every record of that shard with a
/// sequence number `<= guard` that belongs to the key (records of a shard arrive in order, so
/// "applied" is a prefix of the shard).
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    pub guard: SeqNo,
    pub state: AggState,
}

/// Outcome of a compare-and-set write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// The stored guard was not the expected one (a concurrent or earlier writer): reload.
    Conflict,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store is unreachable, throttling or failed transiently: retry with backoff.
    #[error("aggregate store unavailable: {0}")]
    Unavailable(String),
    /// A stored item cannot be read (corrupt or written by a newer version): not retryable,
    /// needs an operator.
    #[error("stored aggregate is unreadable: {0}")]
    Corrupt(String),
    /// The request exceeds what the adapter serves (e.g. a scan over too many windows): narrow
    /// it; not retryable.
    #[error("aggregate store request too large: {0}")]
    TooLarge(String),
}

impl StoreError {
    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Storage of per-shard partial aggregates.
///
/// Guarantees every adapter gives (checked by the contract suite):
/// - [`put`](AggregateStore::put) is an atomic compare-and-set on the guard: it writes only if
///   the stored guard equals `expected` (`None`: no item yet), else returns `Conflict` and
///   changes nothing;
/// - [`load`](AggregateStore::load) and [`scan`](AggregateStore::scan) return what the last
///   successful `put` wrote (strongly consistent reads);
/// - `scan` returns every shard's partial of every key of the event type and window whose
///   window start is in `[from, to)`.
pub trait AggregateStore: Send + Sync + 'static {
    /// The partials of `keys` for `shard`, in the same order (`None`: never written).
    fn load(
        &self,
        shard: &str,
        keys: &[AggKey],
    ) -> impl Future<Output = Result<Vec<Option<Partial>>, StoreError>> + Send;

    /// Compare-and-set of the partial of (`key`, `shard`).
    fn put(
        &self,
        shard: &str,
        key: &AggKey,
        expected: Option<SeqNo>,
        new: &Partial,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    /// Every shard's partial of `event_type` / `window` with window start in `[from, to)`
    /// (Unix seconds), as (key, shard, state).
    fn scan(
        &self,
        event_type: &str,
        window: WindowSize,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<(AggKey, String, AggState)>, StoreError>> + Send;
}
