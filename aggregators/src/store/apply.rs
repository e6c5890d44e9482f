//! The exactly-once protocol over the [`AggregateStore`] port.
//!
//! **Apply** ([`apply_batch`]): read the chain heads of every window the batch touches (one
//! batched read); for each window with head `h`, the delta of the batch's records of that window
//! with sequence number `> h` (recomputed from the batch when it overlaps an applied range)
//! becomes one link appended with `prev = h`, conditional on the head still being `h`. Records of a shard arrive in order, so
//! "applied" is a prefix of the shard per window: replaying a batch, or any re-split of it,
//! appends nothing already applied, and a crash between appends is repaired by redelivery (the
//! windows already appended skip, the others append). A conflict rereads the head; a transient
//! error retries with exponential backoff.
//!
//! **Fold** ([`fold`]): merges the links after the fold mark into one partial per (key, shard)
//! (compare-and-set on the partial's guard, the `last` of the newest link folded into it; all of
//! a window's keys in one [`AggregateStore::put_partials`] call), then raises the mark. A key's partial only takes links with `last` above its guard, so folds are
//! idempotent and may race or crash anywhere. The writer folds a chain once
//! [`ApplyPolicy::fold_after_links`] links are unfolded, which bounds what a reader reads.
//!
//! **Read** ([`scan`], [`merge_window`]): per (window, shard), each key's partial plus the
//! entries of the unfolded links with `last` above the partial's guard; shards are merged by
//! the caller.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::StreamExt;

use super::{AggregateStore, ChainHead, Link, Partial, PartialWrite, PutOutcome, StoreError, WindowKey};
use crate::aggregate::BatchDelta;
use crate::key::{AggKey, DimValue};
use crate::state::AggState;
use crate::window::WindowSize;
use sluice_stream::SequenceNumber;

/// Retry, concurrency and folding settings of [`apply_batch`].
#[derive(Debug, Clone)]
pub struct ApplyPolicy {
    /// Attempts per window (conflicts and transient errors both count).
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, capped at 2 s.
    pub base_backoff: Duration,
    /// Windows written concurrently.
    pub concurrency: usize,
    /// Fold a chain once this many of its links are unfolded (at least 1).
    pub fold_after_links: u64,
}

impl Default for ApplyPolicy {
    fn default() -> Self {
        ApplyPolicy { max_attempts: 6, base_backoff: Duration::from_millis(25), concurrency: 32, fold_after_links: 128 }
    }
}

/// What [`apply_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Links appended (one per window with new records).
    pub written: usize,
    /// Windows whose records were all applied already.
    pub skipped: usize,
    /// Compare-and-set conflicts that were resolved by rereading.
    pub conflicts: usize,
    /// Chains folded after their append.
    pub folds: usize,
    /// The lowest sequence number not applied (report as a batch item failure), if any window
    /// failed after retries.
    pub failed_from: Option<SequenceNumber>,
    /// The errors of the failed windows, and of failed folds (which lose nothing: the links
    /// stay and the next append folds again).
    pub errors: Vec<String>,
}

fn backoff(policy: &ApplyPolicy, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.min(10);
    policy.base_backoff.saturating_mul(factor).min(Duration::from_secs(2))
}

enum WindowOutcome {
    Written { conflicts: usize, fold: Option<Result<(), String>> },
    Skipped { conflicts: usize },
    Failed { from: SequenceNumber, error: String },
}

/// Applies one shard's batch to the store exactly once (see the module docs). Never fails as a
/// whole: windows that could not be appended after retries are reported in
/// [`ApplyReport::failed_from`].
pub async fn apply_batch<S: AggregateStore>(
    store: &S,
    shard: &str,
    batch: &BatchDelta,
    policy: &ApplyPolicy,
) -> ApplyReport {
    let mut report = ApplyReport::default();
    let mut windows: BTreeMap<WindowKey, Vec<usize>> = BTreeMap::new();
    for (i, d) in batch.deltas.iter().enumerate() {
        windows.entry(d.key.window_key()).or_default().push(i);
    }
    if windows.is_empty() {
        return report;
    }
    let keys: Vec<WindowKey> = windows.keys().cloned().collect();
    let mut heads = None;
    let mut error = String::from("no attempt made");
    for attempt in 0..policy.max_attempts.max(1) {
        match store.heads(shard, &keys).await {
            Ok(h) if h.len() == keys.len() => {
                heads = Some(h);
                break;
            }
            Ok(_) => {
                error = "store returned a wrong number of chain heads".into();
                break;
            }
            Err(e) => {
                error = e.to_string();
                if !e.is_retryable() {
                    break;
                }
                tokio::time::sleep(backoff(policy, attempt)).await;
            }
        }
    }
    let Some(heads) = heads else {
        report.failed_from = batch.deltas.iter().map(|d| d.first_seq).min();
        report.errors.push(error);
        return report;
    };
    let outcomes: Vec<WindowOutcome> = futures::stream::iter(windows.into_iter().zip(heads))
        .map(|((window, keys), head)| apply_window(store, shard, batch, window, keys, head, policy))
        .buffer_unordered(policy.concurrency.max(1))
        .collect()
        .await;
    for o in outcomes {
        match o {
            WindowOutcome::Written { conflicts, fold } => {
                report.written += 1;
                report.conflicts += conflicts;
                match fold {
                    Some(Ok(())) => report.folds += 1,
                    Some(Err(e)) => report.errors.push(format!("fold failed (will be retried): {e}")),
                    None => {}
                }
            }
            WindowOutcome::Skipped { conflicts } => {
                report.skipped += 1;
                report.conflicts += conflicts;
            }
            WindowOutcome::Failed { from, error } => {
                report.failed_from = Some(report.failed_from.map_or(from, |f| f.min(from)));
                report.errors.push(error);
            }
        }
    }
    report
}

async fn apply_window<S: AggregateStore>(
    store: &S,
    shard: &str,
    batch: &BatchDelta,
    window: WindowKey,
    keys: Vec<usize>,
    first_head: ChainHead,
    policy: &ApplyPolicy,
) -> WindowOutcome {
    let mut conflicts = 0;
    let mut error = String::from("no attempt made");
    let mut first_unapplied = keys.iter().filter_map(|&i| batch.deltas.get(i)).map(|d| d.first_seq).min();
    let mut known = Some(first_head);
    for attempt in 0..policy.max_attempts.max(1) {
        let head = match known.take() {
            Some(h) => h,
            None => match store.head(shard, &window).await {
                Ok(h) => h,
                Err(e) => {
                    error = e.to_string();
                    if !e.is_retryable() {
                        break;
                    }
                    tokio::time::sleep(backoff(policy, attempt)).await;
                    continue;
                }
            },
        };
        let deltas: Vec<_> = keys.iter().filter_map(|&i| batch.delta_above(i, head.last)).collect();
        let (Some(first), Some(last)) =
            (deltas.iter().map(|d| d.first_seq).min(), deltas.iter().map(|d| d.last_seq).max())
        else {
            return WindowOutcome::Skipped { conflicts };
        };
        first_unapplied = Some(first);
        let link = Link {
            prev: head.last,
            last,
            n: head.n + 1,
            entries: deltas.into_iter().map(|d| (d.key.dims, d.state)).collect(),
        };
        match store.append(shard, &window, &link).await {
            Ok(PutOutcome::Written) => {
                let due = link.n.saturating_sub(head.folded_n) >= policy.fold_after_links.max(1);
                let fold =
                    if due { Some(fold(store, shard, &window, policy).await.map_err(|e| e.to_string())) } else { None };
                return WindowOutcome::Written { conflicts, fold };
            }
            Ok(PutOutcome::Conflict) => {
                conflicts += 1;
                error = "chain compare-and-set conflict persisted".into();
            }
            Err(e) => {
                error = e.to_string();
                if !e.is_retryable() {
                    break;
                }
                tokio::time::sleep(backoff(policy, attempt)).await;
            }
        }
    }
    WindowOutcome::Failed { from: first_unapplied.unwrap_or(SequenceNumber::ZERO), error }
}

/// Folds the unfolded links of (`window`, `shard`) into its partials and raises the fold mark
/// (see the module docs). Idempotent; safe to run concurrently with appends and other folds.
pub async fn fold<S: AggregateStore>(
    store: &S,
    shard: &str,
    window: &WindowKey,
    policy: &ApplyPolicy,
) -> Result<(), StoreError> {
    let head = store.head(shard, window).await?;
    if head.n <= head.folded_n {
        return Ok(());
    }
    let links = store.links(shard, window, head.folded).await?;
    let Some(newest) = links.last().map(|l| (l.last, l.n)) else {
        return Ok(());
    };
    let mut partials: HashMap<Vec<DimValue>, Partial> = store.partials(shard, window).await?.into_iter().collect();
    let mut pending: Vec<&Vec<DimValue>> = links.iter().flat_map(|l| l.entries.iter().map(|(d, _)| d)).collect();
    pending.sort();
    pending.dedup();
    // Every key's partial in one store call; the keys that lost a race are redone from the
    // partials read again.
    let mut attempt = 0;
    while !pending.is_empty() {
        let (mut keys, mut writes) = (Vec::with_capacity(pending.len()), Vec::with_capacity(pending.len()));
        for dims in pending.iter().copied() {
            let current = partials.get(dims);
            let guard = current.map_or(SequenceNumber::ZERO, |p| p.guard);
            if guard >= newest.0 {
                continue;
            }
            let mut state = current.map(|p| p.state.clone()).unwrap_or_default();
            for l in links.iter().filter(|l| l.last > guard) {
                for (_, s) in l.entries.iter().filter(|(d, _)| d == dims) {
                    state.merge(s);
                }
            }
            let new = Partial { guard: newest.0, state };
            keys.push(dims);
            writes.push(PartialWrite { key: window.key(dims.clone()), expected: current.cloned(), new });
        }
        let outcomes = store.put_partials(shard, &writes).await?;
        pending =
            keys.into_iter().zip(&outcomes).filter(|(_, o)| **o == PutOutcome::Conflict).map(|(d, _)| d).collect();
        if !pending.is_empty() {
            attempt += 1;
            if attempt >= policy.max_attempts.max(1) {
                return Err(StoreError::Unavailable("partial compare-and-set conflict persisted".into()));
            }
            partials = store.partials(shard, window).await?.into_iter().collect();
        }
    }
    store.mark_folded(shard, window, newest.0, newest.1).await
}

/// The state of each key of one (window, shard): its partial plus the entries of `links` with
/// `last` above the partial's guard.
pub fn merge_window(partials: Vec<(Vec<DimValue>, Partial)>, links: &[Link]) -> Vec<(Vec<DimValue>, AggState)> {
    let mut keys: BTreeMap<Vec<DimValue>, (SequenceNumber, AggState)> =
        partials.into_iter().map(|(d, p)| (d, (p.guard, p.state))).collect();
    for l in links {
        for (dims, s) in &l.entries {
            let (guard, state) =
                keys.entry(dims.clone()).or_insert_with(|| (SequenceNumber::ZERO, AggState::default()));
            if l.last > *guard {
                state.merge(s);
            }
        }
    }
    keys.into_iter().map(|(d, (_, s))| (d, s)).collect()
}

/// Every shard's state of every key of `event_type` / `size` with window start in `[from, to)`
/// (Unix seconds), as (key, shard, state).
pub async fn scan<S: AggregateStore>(
    store: &S,
    event_type: &str,
    size: WindowSize,
    from: i64,
    to: i64,
) -> Result<Vec<(AggKey, String, AggState)>, StoreError> {
    let mut out = Vec::new();
    for w in store.read(event_type, size, from, to).await? {
        for (dims, state) in merge_window(w.partials, &w.links) {
            out.push((w.window.key(dims), w.shard.clone(), state));
        }
    }
    Ok(out)
}
