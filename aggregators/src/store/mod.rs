//! The AggregateStore port: per (window, shard) an append-only chain of per-batch deltas
//! ("links") guarded by the highest sequence number applied, folded from time to time into one
//! partial per (key, shard); and the exactly-once protocol over it ([`apply_batch`], [`fold`],
//! [`scan`]), and the backfill of a window's state from the lake ([`backfill_window`]).
//!
//! A *window* here is ([`WindowKey`]) an event type's window of one size and start; its *keys*
//! are the dimension values seen in it. Why chains: rewriting each key's whole partial every
//! batch costs DynamoDB one write per touched key, billed by the partial's size; appending one
//! compressed link per (window, shard) per batch costs what the batch's delta weighs
//! (ARCHITECTURE.md; figures in docs/benchmarks.md).
//!
//! Adapters: `sqlite::SqliteAggregateStore` (embedded; feature `sqlite`, so the Lambda does not
//! link SQLite) and [`dynamodb::DynamoAggregateStore`].
//! Both pass the same contract suite (`tests/it/contract.rs`).

use std::future::Future;

use crate::key::{AggKey, DimValue};
use crate::state::AggState;
use crate::window::WindowSize;
use sluice_stream::SequenceNumber;

pub mod apply;
pub mod backfill;
pub mod dynamodb;
pub mod link;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use apply::{ApplyPolicy, ApplyReport, apply_batch, fold, merge_window, scan};
pub use backfill::{WindowBackfill, backfill_window};

/// One event type's window of one size and start: the unit a chain belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowKey {
    pub event_type: String,
    pub window: WindowSize,
    /// Window start, Unix seconds.
    pub window_start: i64,
}

impl WindowKey {
    /// The key of `dims` in this window.
    pub fn key(&self, dims: Vec<DimValue>) -> AggKey {
        AggKey { event_type: self.event_type.clone(), window: self.window, window_start: self.window_start, dims }
    }
}

impl AggKey {
    /// The window this key belongs to.
    pub fn window_key(&self) -> WindowKey {
        WindowKey { event_type: self.event_type.clone(), window: self.window, window_start: self.window_start }
    }
}

/// One appended delta of a (window, shard) chain: the merged contribution, per key, of every
/// record of the shard in this window with a sequence number in `(prev, last]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// The chain head this link was appended to ([`SequenceNumber::ZERO`] for the first link).
    pub prev: SequenceNumber,
    /// The highest sequence number it contains: the chain head after it.
    pub last: SequenceNumber,
    /// Its position in the chain (1 for the first link).
    pub n: u64,
    /// Per key (dimension values), the delta.
    pub entries: Vec<(Vec<DimValue>, AggState)>,
}

/// Where a (window, shard) chain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainHead {
    /// `last` of the newest link ([`SequenceNumber::ZERO`]: no link yet).
    pub last: SequenceNumber,
    /// `n` of the newest link (0: none).
    pub n: u64,
    /// `last` of the newest link folded into the partials ([`SequenceNumber::ZERO`]: none).
    pub folded: SequenceNumber,
    /// `n` of that link (0: none).
    pub folded_n: u64,
}

/// The folded partial of one (key, shard): the merged state of every link of the chain with
/// `last <= guard` that holds the key.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    pub guard: SequenceNumber,
    pub state: AggState,
}

/// One compare-and-set of [`AggregateStore::put_partials`]: write `new` as the partial of `key`
/// if the stored one is `expected` (`None`: none yet).
#[derive(Debug, Clone, PartialEq)]
pub struct PartialWrite {
    pub key: AggKey,
    pub expected: Option<Partial>,
    pub new: Partial,
}

/// What a reader needs of one (window, shard): its partials and the links not yet folded.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardWindow {
    pub window: WindowKey,
    pub shard: String,
    pub partials: Vec<(Vec<DimValue>, Partial)>,
    /// Links with `prev >=` the fold mark, in chain order.
    pub links: Vec<Link>,
}

/// Outcome of a compare-and-set write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// The stored state was not the expected one (a concurrent or earlier writer): reload.
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

/// Storage of chains, partials and fold marks.
///
/// Guarantees every adapter gives (checked by the contract suite), all reads strongly
/// consistent:
/// - [`append`](AggregateStore::append) is an atomic compare-and-set on the chain: it writes
///   only if no link with the same `prev` exists (the chain head was still `prev`), else returns
///   `Conflict` and changes nothing; a link is stored whole or not at all;
/// - [`put_partial`](AggregateStore::put_partial) writes only if the stored partial (guard and
///   state) equals `expected` (`None`: no partial yet), so a writer that read an older state of
///   the same guard (a fold racing a backfill) cannot overwrite a newer one;
/// - [`mark_folded`](AggregateStore::mark_folded) never lowers the mark;
/// - [`heads`](AggregateStore::heads), [`links`](AggregateStore::links),
///   [`partials`](AggregateStore::partials) and [`read`](AggregateStore::read) return what the
///   writes above left.
pub trait AggregateStore: Send + Sync + 'static {
    /// Where the chains of `shard` in `windows` stand, in the same order.
    fn heads(
        &self,
        shard: &str,
        windows: &[WindowKey],
    ) -> impl Future<Output = Result<Vec<ChainHead>, StoreError>> + Send;

    /// Where the chain of (`window`, `shard`) stands.
    fn head(&self, shard: &str, window: &WindowKey) -> impl Future<Output = Result<ChainHead, StoreError>> + Send
    where
        Self: Sized,
    {
        async move {
            let mut heads = self.heads(shard, std::slice::from_ref(window)).await?;
            match (heads.pop(), heads.is_empty()) {
                (Some(h), true) => Ok(h),
                _ => Err(StoreError::Unavailable("store returned a wrong number of chain heads".into())),
            }
        }
    }

    /// Appends `link` to the chain of (`window`, `shard`) if its head is still `link.prev`.
    fn append(
        &self,
        shard: &str,
        window: &WindowKey,
        link: &Link,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    /// The links of (`window`, `shard`) with `prev >= from`, in chain order.
    fn links(
        &self,
        shard: &str,
        window: &WindowKey,
        from: SequenceNumber,
    ) -> impl Future<Output = Result<Vec<Link>, StoreError>> + Send;

    /// Every folded partial of (`window`, `shard`), by dimension values.
    fn partials(
        &self,
        shard: &str,
        window: &WindowKey,
    ) -> impl Future<Output = Result<Vec<(Vec<DimValue>, Partial)>, StoreError>> + Send;

    /// Compare-and-set of the partial of (`key`, `shard`) on its whole stored value.
    fn put_partial(
        &self,
        shard: &str,
        key: &AggKey,
        expected: Option<&Partial>,
        new: &Partial,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    /// Each write of `writes` as [`put_partial`](AggregateStore::put_partial) does it, in order,
    /// each on its own (one conflict does not stop the others, and there is no atomicity across
    /// keys): the outcomes, in the same order. Adapters may batch the writes (SQLite: one
    /// transaction); the default makes one call per write.
    fn put_partials(
        &self,
        shard: &str,
        writes: &[PartialWrite],
    ) -> impl Future<Output = Result<Vec<PutOutcome>, StoreError>> + Send
    where
        Self: Sized,
    {
        async move {
            let mut outcomes = Vec::with_capacity(writes.len());
            for w in writes {
                outcomes.push(self.put_partial(shard, &w.key, w.expected.as_ref(), &w.new).await?);
            }
            Ok(outcomes)
        }
    }

    /// Records that the links up to number `n` (whose `last` is `upto`) are folded, unless a
    /// higher mark is stored.
    fn mark_folded(
        &self,
        shard: &str,
        window: &WindowKey,
        upto: SequenceNumber,
        n: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// For every window of `event_type` / `size` with start in `[from, to)` (Unix seconds) and
    /// every shard that wrote to it: the partials and the links after the fold mark.
    fn read(
        &self,
        event_type: &str,
        size: WindowSize,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<ShardWindow>, StoreError>> + Send;
}
