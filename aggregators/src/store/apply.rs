//! The exactly-once apply protocol: one compare-and-set write per (key, shard) per batch.
//!
//! For each key of a batch: read the partial (guard `g`); if the batch's records for the key are
//! all `<= g`, skip; otherwise merge the delta of the records `> g` (recomputed from the batch
//! when it overlaps an applied range) into the partial and write it with guard = the highest
//! such record, conditional on the guard still being `g`. A conflict reloads and recomputes; a
//! transient error retries with exponential backoff. Replaying a batch, or any re-split of it,
//! therefore changes nothing already applied, and a crash between writes is repaired by
//! redelivery (the keys already written skip, the others apply).

use std::time::Duration;

use futures::StreamExt;

use super::{AggregateStore, Partial, PutOutcome, StoreError};
use crate::aggregate::BatchDelta;
use crate::seq::SeqNo;

/// Retry and concurrency settings of [`apply_batch`].
#[derive(Debug, Clone)]
pub struct ApplyPolicy {
    /// Attempts per key (conflicts and transient errors both count).
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, capped at 2 s.
    pub base_backoff: Duration,
    /// Keys written concurrently.
    pub concurrency: usize,
}

impl Default for ApplyPolicy {
    fn default() -> Self {
        ApplyPolicy { max_attempts: 6, base_backoff: Duration::from_millis(25), concurrency: 32 }
    }
}

/// What [`apply_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Partials written (one per key with new records).
    pub written: usize,
    /// Keys whose records were all applied already.
    pub skipped: usize,
    /// Compare-and-set conflicts that were resolved by reloading.
    pub conflicts: usize,
    /// The lowest sequence number not applied (report as a batch item failure), if any key
    /// failed after retries.
    pub failed_from: Option<SeqNo>,
    /// The errors of the failed keys.
    pub errors: Vec<String>,
}

fn backoff(policy: &ApplyPolicy, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.min(10);
    policy.base_backoff.saturating_mul(factor).min(Duration::from_secs(2))
}

enum KeyOutcome {
    Written { conflicts: usize },
    Skipped { conflicts: usize },
    Failed { from: SeqNo, error: String },
}

/// Applies one shard's batch to the store exactly once (see the module docs). Never fails as a
/// whole: keys that could not be written after retries are reported in
/// [`ApplyReport::failed_from`].
pub async fn apply_batch<S: AggregateStore>(
    store: &S,
    shard: &str,
    batch: &BatchDelta,
    policy: &ApplyPolicy,
) -> ApplyReport {
    let mut report = ApplyReport::default();
    if batch.deltas.is_empty() {
        return report;
    }
    let keys: Vec<_> = batch.deltas.iter().map(|d| d.key.clone()).collect();
    let mut loaded = None;
    let mut last_error = String::new();
    for attempt in 0..policy.max_attempts.max(1) {
        match store.load(shard, &keys).await {
            Ok(v) if v.len() == keys.len() => {
                loaded = Some(v);
                break;
            }
            Ok(_) => {
                last_error = "store returned a wrong number of partials".into();
                break;
            }
            Err(e) => {
                last_error = e.to_string();
                if !e.is_retryable() {
                    break;
                }
                tokio::time::sleep(backoff(policy, attempt)).await;
            }
        }
    }
    let Some(loaded) = loaded else {
        report.failed_from = batch.deltas.iter().map(|d| d.first_seq).min();
        report.errors.push(last_error);
        return report;
    };

    let outcomes: Vec<KeyOutcome> = futures::stream::iter(loaded.into_iter().enumerate())
        .map(|(i, current)| apply_key(store, shard, batch, i, current, policy))
        .buffer_unordered(policy.concurrency.max(1))
        .collect()
        .await;
    for o in outcomes {
        match o {
            KeyOutcome::Written { conflicts } => {
                report.written += 1;
                report.conflicts += conflicts;
            }
            KeyOutcome::Skipped { conflicts } => {
                report.skipped += 1;
                report.conflicts += conflicts;
            }
            KeyOutcome::Failed { from, error } => {
                report.failed_from = Some(report.failed_from.map_or(from, |f| f.min(from)));
                report.errors.push(error);
            }
        }
    }
    report
}

async fn apply_key<S: AggregateStore>(
    store: &S,
    shard: &str,
    batch: &BatchDelta,
    i: usize,
    mut current: Option<Partial>,
    policy: &ApplyPolicy,
) -> KeyOutcome {
    let mut conflicts = 0;
    let mut error = String::from("no attempt made");
    let mut first_unapplied = batch.deltas.get(i).map_or(SeqNo::ZERO, |d| d.first_seq);
    for attempt in 0..policy.max_attempts.max(1) {
        let guard = current.as_ref().map(|p| p.guard);
        let delta = match guard {
            None => batch.deltas.get(i).cloned(),
            Some(g) => batch.delta_above(i, g),
        };
        let Some(delta) = delta else {
            return KeyOutcome::Skipped { conflicts };
        };
        first_unapplied = delta.first_seq;
        let mut state = current.as_ref().map(|p| p.state.clone()).unwrap_or_default();
        state.merge(&delta.state);
        let new = Partial { guard: delta.last_seq, state };
        let result = store.put(shard, &delta.key, guard, &new).await;
        match result {
            Ok(PutOutcome::Written) => return KeyOutcome::Written { conflicts },
            Ok(PutOutcome::Conflict) => {
                conflicts += 1;
                error = "compare-and-set conflict persisted".into();
            }
            Err(e) => {
                error = e.to_string();
                if !e.is_retryable() {
                    break;
                }
                tokio::time::sleep(backoff(policy, attempt)).await;
            }
        }
        match reload(store, shard, &delta.key).await {
            Ok(p) => current = p,
            Err(e) => {
                error = e.to_string();
                if !e.is_retryable() {
                    break;
                }
            }
        }
    }
    KeyOutcome::Failed { from: first_unapplied, error }
}

async fn reload<S: AggregateStore>(
    store: &S,
    shard: &str,
    key: &crate::key::AggKey,
) -> Result<Option<Partial>, StoreError> {
    let mut v = store.load(shard, std::slice::from_ref(key)).await?;
    Ok(v.pop().flatten())
}
