//! Backfill ([`backfill_window`]): the state of one (window, shard) replaced by the exact state
//! recomputed from the lake, while the stream keeps appending to the same chain.
//!
//! The lake is the record of truth: it holds every record the stream delivered, and reading it
//! deduplicated by `event_id` (as compaction keeps them) gives the exact aggregates. The lake
//! writer says, per shard, what the lake is complete through (`m`: every record of the shard
//! up to `m` is in it). For one (window, shard):
//!
//! 1. **Catch up.** If the chain's head `h` is below `m`, the lake's records in `(h, m]` are
//!    appended as one link (compare-and-set on the head, as the stream appends), so the chain
//!    covers every record up to `m`; a stream delivery of the same records then finds them
//!    applied. No link is appended when the lake holds none.
//! 2. **Fence.** The fence `F` is the highest chain boundary (a link's `last`, or zero) at or
//!    below `m`: the head itself when `h <= m`. A link is applied whole, so only a boundary can
//!    split the chain into "recomputed" and "as the stream applied it".
//! 3. **Replace.** Every key of the window (its partials, its links up to `F`, the lake's
//!    records) gets the partial `guard = T = max(its guard, F)`, `state = lake(<= F) + the
//!    key's links in (F, T]`, written with compare-and-set on the whole stored partial. Readers
//!    add the links above `T` as always, so a record above the fence keeps counting once, and a
//!    duplicate the stream counted twice below it counts once. A key the lake no longer holds
//!    gets an empty state.
//! 4. The fold mark is raised to `F` (every key of the links up to `F` now has a guard `>= F`).
//!
//! Each write is one atomic compare-and-set and each leaves the window exact for the records
//! up to its fence, so a crash anywhere, a rerun, a concurrent fold, append or backfill leaves it
//! correct; a conflict rereads and redoes the window. A second run over an unchanged lake writes
//! nothing. Proven by the interleaving property test (`tests/it/backfill.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{AggregateStore, Link, Partial, PartialWrite, PutOutcome, StoreError, WindowKey};
use crate::aggregate::KeyDelta;
use crate::key::DimValue;
use crate::state::AggState;
use sluice_stream::SequenceNumber;

/// What [`backfill_window`] did to one (window, shard).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowBackfill {
    /// The fence: records up to it are now counted as the lake holds them.
    pub fence: SequenceNumber,
    /// Whether a link of lake records the chain had not seen was appended (step 1).
    pub caught_up: bool,
    /// Partials written.
    pub written: usize,
    /// Partials already exact (not written).
    pub unchanged: usize,
    /// Compare-and-set conflicts (each reread the window).
    pub conflicts: usize,
}

/// Replaces the state of (`window`, `shard`) with the lake's (see the module docs).
/// `complete_through` is what the lake holds every record of the shard up to; `lake(above,
/// upto)` gives, per key, the delta of the shard's lake records in this window with a sequence
/// number in `(above, upto]` (deduplicated by `event_id`). Gives up after `max_attempts`
/// conflicts with [`StoreError::Unavailable`] (nothing is lost: rerun it).
pub async fn backfill_window<S, L>(
    store: &S,
    shard: &str,
    window: &WindowKey,
    complete_through: SequenceNumber,
    lake: L,
    max_attempts: u32,
) -> Result<WindowBackfill, StoreError>
where
    S: AggregateStore,
    L: Fn(SequenceNumber, SequenceNumber) -> Vec<KeyDelta>,
{
    let mut report = WindowBackfill::default();
    for _ in 0..max_attempts.max(1) {
        match attempt(store, shard, window, complete_through, &lake, &mut report).await? {
            PutOutcome::Written => return Ok(report),
            PutOutcome::Conflict => report.conflicts += 1,
        }
    }
    Err(StoreError::Unavailable(format!(
        "backfill of {} {} {} shard {shard}: compare-and-set conflicts persisted",
        window.event_type, window.window, window.window_start
    )))
}

/// One pass of the protocol; `Conflict` when a compare-and-set lost (redo from the start).
async fn attempt<S, L>(
    store: &S,
    shard: &str,
    window: &WindowKey,
    m: SequenceNumber,
    lake: &L,
    report: &mut WindowBackfill,
) -> Result<PutOutcome, StoreError>
where
    S: AggregateStore,
    L: Fn(SequenceNumber, SequenceNumber) -> Vec<KeyDelta>,
{
    let mut head = store.head(shard, window).await?;
    if head.last < m {
        let unseen = lake(head.last, m);
        if let Some(last) = unseen.iter().map(|d| d.last_seq).max() {
            let link = Link {
                prev: head.last,
                last,
                n: head.n + 1,
                entries: unseen.into_iter().map(|d| (d.key.dims, d.state)).collect(),
            };
            if store.append(shard, window, &link).await? == PutOutcome::Conflict {
                return Ok(PutOutcome::Conflict);
            }
            report.caught_up = true;
            head = store.head(shard, window).await?;
        }
    }
    // When the head is at or below `m` it is the fence and every link above the fold mark is
    // below it; otherwise the fence is an older boundary, and keys folded past it need the
    // links between.
    let (fence, fence_n, links) = if head.last <= m {
        (head.last, head.n, store.links(shard, window, head.folded).await?)
    } else {
        let links = store.links(shard, window, SequenceNumber::ZERO).await?;
        let (fence, n) = links.iter().filter(|l| l.last <= m).map(|l| (l.last, l.n)).max().unwrap_or_default();
        (fence, n, links)
    };
    report.fence = fence;

    let recomputed: HashMap<Vec<DimValue>, AggState> =
        lake(SequenceNumber::ZERO, fence).into_iter().map(|d| (d.key.dims, d.state)).collect();
    let partials: BTreeMap<Vec<DimValue>, Partial> = store.partials(shard, window).await?.into_iter().collect();
    let mut keys: BTreeSet<&Vec<DimValue>> = partials.keys().collect();
    keys.extend(links.iter().filter(|l| l.last <= fence).flat_map(|l| l.entries.iter().map(|(d, _)| d)));
    keys.extend(recomputed.keys());

    let mut writes = Vec::new();
    let mut unchanged = 0;
    for dims in keys {
        let current = partials.get(dims);
        let guard = current.map_or(fence, |p| p.guard.max(fence));
        let mut state = recomputed.get(dims).cloned().unwrap_or_default();
        for l in links.iter().filter(|l| l.last > fence && l.last <= guard) {
            for (_, s) in l.entries.iter().filter(|(d, _)| d == dims) {
                state.merge(s);
            }
        }
        let new = Partial { guard, state };
        if current == Some(&new) {
            unchanged += 1;
            continue;
        }
        writes.push(PartialWrite { key: window.key(dims.clone()), expected: current.cloned(), new });
    }
    let outcomes = store.put_partials(shard, &writes).await?;
    report.written += outcomes.iter().filter(|o| **o == PutOutcome::Written).count();
    if outcomes.contains(&PutOutcome::Conflict) {
        // The keys written stand (each was replaced from the state it had); the next attempt
        // reads them back as unchanged and retries the others.
        return Ok(PutOutcome::Conflict);
    }
    report.unchanged = unchanged;
    if fence_n > head.folded_n {
        store.mark_folded(shard, window, fence, fence_n).await?;
    }
    Ok(PutOutcome::Written)
}
