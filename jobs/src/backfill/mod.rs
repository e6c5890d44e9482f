//! Backfill of aggregates from the lake: every window of a time range recomputed exactly (each
//! `event_id` once, the copy compaction keeps) and its stored state replaced, while the stream
//! keeps flowing.
//!
//! - [`plan`] (pure): the windows of a [`BackfillRequest`], grouped into [`BackfillItem`]s by
//!   the lake partitions they read.
//! - [`rows`] (pure): a partition's rows as the aggregator's contributions.
//! - [`Backfiller`] (I/O): reads an item's partitions through `sluice_lake::Lake`, deduplicates
//!   each (`compaction::rows::output_order`), aggregates per shard, and replaces each
//!   (window, shard) through `sluice_aggregators::store::backfill_window`, fenced on the lake
//!   writer's per-shard progress marker (`sluice_lake::layout::ShardProgress`): records the lake
//!   may still lack are left as the stream counted them. A shard without a marker is skipped.
//!
//! **Idempotent**: a second run over an unchanged lake writes nothing. **Resumable**: a finished
//! item is recorded under `_sluice/jobs/backfill/<request id>/<item id>`; a rerun of the same
//! request skips them, and [`Backfiller::run`] removes the records once every item is done.

pub mod plan;
pub mod rows;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use futures::StreamExt;
use sluice_aggregators::store::{AggregateStore, StoreError, WindowBackfill, WindowKey, backfill_window};
use sluice_aggregators::{BatchDelta, KeyDelta, WindowConfig, WindowSize};
use sluice_lake::layout::{PROGRESS_DIR, Partition, ShardProgress};
use sluice_lake::{Lake, LakeError};
use sluice_schemas::Registry;
use sluice_stream::SequenceNumber;

use crate::compaction::rows::{RowsError, conform, output_order};
pub use plan::{BackfillItem, BackfillRequest};
pub use rows::ShardAggregates;

/// Where finished items are recorded.
pub const DONE_DIR: &str = "_sluice/jobs/backfill";
/// Compare-and-set conflicts one (window, shard) tolerates before the item fails (and is
/// retried whole).
const MAX_ATTEMPTS: u32 = 8;
/// (window, shard) pairs written at once.
const CONCURRENCY: usize = 16;

/// Why a backfill item failed. Nothing it wrote is wrong: each write leaves its window exact up
/// to its fence, so the item is retried whole.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("lake: {0}")]
    Lake(#[from] LakeError),
    #[error("aggregate store: {0}")]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Rows { path: String, source: RowsError },
    #[error("event type {0:?} is not in the registry")]
    UnknownEventType(String),
    #[error("window {0:?} is not a window size")]
    BadWindow(String),
}

impl BackfillError {
    /// Whether retrying the item may succeed (the store or lake failed transiently).
    pub fn is_retryable(&self) -> bool {
        match self {
            BackfillError::Lake(LakeError::Store(_)) => true,
            BackfillError::Store(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// What one item did (also `backfill-item`'s task output, as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ItemReport {
    pub item: String,
    /// Windows recomputed.
    pub windows: usize,
    /// (window, shard) pairs replaced.
    pub shard_windows: usize,
    /// Lake files and rows read, and rows left out as a later copy of an `event_id`.
    pub files: usize,
    pub rows: usize,
    pub duplicates: usize,
    /// Rows that do not read as an event of their version (left out; see the log).
    pub unreadable: usize,
    /// Partials written and already exact.
    pub written: usize,
    pub unchanged: usize,
    /// Pairs where the lake held records the chain had not seen.
    pub caught_up: usize,
}

/// What a whole run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    pub items: Vec<ItemReport>,
    /// Items skipped as done by an earlier, interrupted run of the same request.
    pub resumed: usize,
}

/// Runs backfills over one lake and one aggregate store.
pub struct Backfiller<S> {
    lake: Lake,
    registry: Arc<Registry>,
    store: S,
    windows: WindowConfig,
}

impl<S> std::fmt::Debug for Backfiller<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backfiller").field("lake", &self.lake.url().as_str()).field("windows", &self.windows).finish()
    }
}

impl<S: AggregateStore> Backfiller<S> {
    /// A backfiller of `registry`'s event types from `lake` into `store`, for the aggregator's
    /// `windows` (sizes and allowed lateness).
    pub fn new(lake: Lake, registry: Arc<Registry>, store: S, windows: WindowConfig) -> Self {
        Self { lake, registry, store, windows }
    }

    /// The items of `request` not yet done by an earlier run of it.
    pub async fn plan(&self, request: &BackfillRequest) -> Result<Vec<BackfillItem>, BackfillError> {
        let mut partitions = BTreeSet::new();
        match &request.event_types {
            None => partitions = self.lake.list_partitions(None).await?,
            Some(types) => {
                for t in types {
                    if self.registry.get(t).is_none() {
                        return Err(BackfillError::UnknownEventType(t.clone()));
                    }
                    partitions.extend(self.lake.list_partitions(Some(t)).await?);
                }
            }
        }
        let done = self.done(request).await?;
        Ok(plan::plan(request, &self.windows.windows, &partitions, &done))
    }

    /// The ids of the items of `request` recorded as done.
    async fn done(&self, request: &BackfillRequest) -> Result<BTreeSet<String>, BackfillError> {
        let dir = format!("{DONE_DIR}/{}", request.id());
        let objects = self.lake.list_objects(&dir).await?;
        Ok(objects.into_iter().filter_map(|(path, _)| path.rsplit('/').next().map(str::to_owned)).collect())
    }

    /// Plans `request`, backfills each item in turn (calling `progress` after each with the
    /// items done and the total) and removes the records of finished items.
    pub async fn run(
        &self,
        request: &BackfillRequest,
        mut progress: impl FnMut(&ItemReport, usize, usize),
    ) -> Result<BackfillReport, BackfillError> {
        let resumed = self.done(request).await?.len();
        let items = self.plan(request).await?;
        let mut report = BackfillReport { items: Vec::with_capacity(items.len()), resumed };
        for (i, item) in items.iter().enumerate() {
            let r = self.backfill_item(item).await?;
            progress(&r, i + 1, items.len());
            report.items.push(r);
        }
        self.finish(request).await?;
        Ok(report)
    }

    /// Removes the records of `request`'s finished items (its next run starts over).
    pub async fn finish(&self, request: &BackfillRequest) -> Result<(), BackfillError> {
        for (path, _) in self.lake.list_objects(&format!("{DONE_DIR}/{}", request.id())).await? {
            self.lake.delete(&path).await?;
        }
        Ok(())
    }

    /// What the lake is complete through, per shard (the lake writer's markers).
    pub async fn progress(&self) -> Result<HashMap<String, SequenceNumber>, BackfillError> {
        let mut out = HashMap::new();
        for (path, _) in self.lake.list_objects(PROGRESS_DIR).await? {
            let body = self.lake.get(&path).await?;
            match ShardProgress::parse(&path, &body)
                .and_then(|m| Some((m.shard_id, SequenceNumber::from_ascii(m.through.as_bytes()).ok()?)))
            {
                Some((shard, through)) => {
                    out.insert(shard, through);
                }
                None => tracing::warn!(%path, "not a lake progress marker; ignored"),
            }
        }
        Ok(out)
    }

    /// Recomputes `item`'s windows from the lake and replaces their state, then records the
    /// item as done.
    pub async fn backfill_item(&self, item: &BackfillItem) -> Result<ItemReport, BackfillError> {
        let table = self
            .registry
            .get(&item.event_type)
            .ok_or_else(|| BackfillError::UnknownEventType(item.event_type.clone()))?;
        let mut windows: Vec<WindowKey> = Vec::with_capacity(item.windows.len());
        for (label, start) in &item.windows {
            let size: WindowSize = label.parse().map_err(|_| BackfillError::BadWindow(label.clone()))?;
            windows.push(WindowKey { event_type: item.event_type.clone(), window: size, window_start: *start });
        }
        let mut sizes: Vec<WindowSize> = windows.iter().map(|w| w.window).collect();
        sizes.sort();
        sizes.dedup();
        let config = WindowConfig { windows: sizes, allowed_lateness: self.windows.allowed_lateness };
        let mut report = ItemReport { item: item.id(), windows: windows.len(), ..ItemReport::default() };

        let columns = rows::columns(&self.registry, &item.event_type);
        let lake_schema = table.arrow_schema();
        let projected: SchemaRef = Arc::new(Schema::new(
            lake_schema.fields().iter().filter(|f| columns.contains(f.name())).cloned().collect::<Vec<_>>(),
        ));
        let mut aggregates = ShardAggregates::default();
        let mut hour = item.start;
        while hour < item.end {
            if let Some(partition) =
                chrono::DateTime::from_timestamp(hour, 0).map(|t| Partition::of(&item.event_type, t))
            {
                let mut batches = Vec::new();
                for file in self.lake.list_partition(&partition).await? {
                    let path = file.relative();
                    report.files += 1;
                    for batch in self.lake.read_parquet_columns(&path, &columns).await? {
                        let conformed = conform(&batch, &projected)
                            .map_err(|source| BackfillError::Rows { path: path.clone(), source })?;
                        report.rows += conformed.num_rows();
                        batches.push(conformed);
                    }
                }
                if !batches.is_empty() {
                    // One copy per event_id, in occurred_at order (consecutive rows mostly share
                    // their windows), aggregated where the rows lie: nothing is copied.
                    let unique = output_order(&batches)
                        .map_err(|source| BackfillError::Rows { path: partition.dir(), source })?;
                    report.duplicates += batches.iter().map(|b| b.num_rows()).sum::<usize>() - unique.len();
                    aggregates.add(&self.registry, &item.event_type, &config, &batches, &unique);
                }
            }
            hour += 3600;
        }
        report.unreadable = aggregates.unreadable;
        if aggregates.unreadable > 0 {
            tracing::warn!(item = %report.item, rows = aggregates.unreadable, "lake rows that do not read as their version's event were left out");
        }
        let deltas: HashMap<String, BatchDelta> = aggregates.shards.into_iter().map(|(s, a)| (s, a.finish())).collect();

        // The (window, shard) pairs to replace: every shard with a lake progress marker (without
        // one nothing is known complete: the stream's count stands) whose rows the item read or
        // whose chain in the store has a link or a fold mark for the window.
        let progress: BTreeMap<String, SequenceNumber> = self.progress().await?.into_iter().collect();
        let mut stored: Vec<(&String, SequenceNumber, Vec<bool>)> = Vec::with_capacity(progress.len());
        for (shard, &through) in &progress {
            let heads = self.store.heads(shard, &windows).await?;
            stored.push((shard, through, heads.iter().map(|h| h.n > 0 || h.folded_n > 0).collect()));
        }
        let mut pairs: Vec<(WindowKey, String, SequenceNumber)> = Vec::new();
        for (i, w) in windows.iter().enumerate() {
            for (shard, through, has_chain) in &stored {
                if deltas.contains_key(*shard) || has_chain.get(i).copied().unwrap_or(false) {
                    pairs.push((w.clone(), (*shard).clone(), *through));
                }
            }
        }
        let by_window: HashMap<(&str, &WindowKey), Vec<usize>> = {
            let mut m: HashMap<(&str, &WindowKey), Vec<usize>> = HashMap::new();
            for (shard, delta) in &deltas {
                for (i, d) in delta.deltas.iter().enumerate() {
                    if let Some(w) =
                        windows.iter().find(|w| w.window == d.key.window && w.window_start == d.key.window_start)
                    {
                        m.entry((shard.as_str(), w)).or_default().push(i);
                    }
                }
            }
            m
        };
        // Pairs are replaced a few at a time; each future is a plain method's, so the item's
        // future stays `Send` for a spawned task.
        let mut pending = pairs.iter();
        let mut running = futures::stream::FuturesUnordered::new();
        loop {
            while running.len() < CONCURRENCY {
                let Some((w, shard, through)) = pending.next() else { break };
                let keys = by_window.get(&(shard.as_str(), w)).map_or(&[][..], Vec::as_slice);
                running.push(self.replace(w, shard, *through, deltas.get(shard), keys));
            }
            let Some(r) = running.next().await else { break };
            let r = r?;
            report.shard_windows += 1;
            report.written += r.written;
            report.unchanged += r.unchanged;
            report.caught_up += usize::from(r.caught_up);
        }
        self.lake.put(&format!("{DONE_DIR}/{}/{}", item.request, item.id()), bytes::Bytes::new()).await?;
        Ok(report)
    }

    /// Replaces one (window, shard) with the lake's records: `keys` are the indices of the
    /// window's deltas in the shard's `delta` (none when the lake holds no row of it).
    async fn replace(
        &self,
        window: &WindowKey,
        shard: &str,
        through: SequenceNumber,
        delta: Option<&BatchDelta>,
        keys: &[usize],
    ) -> Result<WindowBackfill, StoreError> {
        let lake = |above: SequenceNumber, upto: SequenceNumber| -> Vec<KeyDelta> {
            delta.map_or_else(Vec::new, |d| keys.iter().filter_map(|&i| d.delta_between(i, above, upto)).collect())
        };
        backfill_window(&self.store, shard, window, through, lake, MAX_ATTEMPTS).await
    }
}
