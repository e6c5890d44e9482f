//! Shared helpers: synthetic batches, a crash-injecting store wrapper, store constructors.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use sluice_aggregators::key::DimRef;
use sluice_aggregators::store::{
    AggregateStore, ChainHead, Link, Partial, PartialWrite, PutOutcome, ShardWindow, StoreError, WindowKey, scan,
};
use sluice_aggregators::{
    AggKey, AggState, BatchAggregator, BatchDelta, Contribution, DimValue, DynamoAggregateStore, Observation,
    SqliteAggregateStore, WindowConfig, WindowSize,
};
use sluice_schemas::Instant;
use sluice_stream::SequenceNumber;

/// One synthetic record: sequence counter, group (0..4), measure, identity.
#[derive(Debug, Clone, Copy)]
pub struct Rec {
    pub seq: u64,
    pub group: u8,
    pub measure: f64,
    pub identity: u32,
    pub minute: i64,
}

pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

pub fn seq(n: u64) -> SequenceNumber {
    // Kinesis-sized: above u128.
    format!("4959033827149025660855969253{n:028}").parse().unwrap()
}

pub fn batch_of(event_type: &str, recs: &[Rec]) -> BatchDelta {
    let mut agg = BatchAggregator::new(WindowConfig::default());
    for r in recs {
        let occurred_at = t0() + TimeDelta::seconds(r.minute * 60 + 7);
        let c = Contribution {
            event_type: Cow::Borrowed(event_type),
            occurred_at: Instant::from_datetime(occurred_at),
            received_at: Instant::from_datetime(occurred_at + TimeDelta::minutes(if r.group == 3 { 30 } else { 0 })),
            dims: vec![DimRef::from(format!("g{}", r.group % 2)), DimRef::Int(i64::from(r.group / 2))],
            obs: Observation { measure: Some(r.measure), identity: Some(r.identity) },
        };
        agg.add(seq(r.seq), &c);
    }
    agg.finish()
}

/// Every key's state as the store holds it, all shards merged per key.
pub async fn snapshot<S: AggregateStore>(
    store: &S,
    event_type: &str,
) -> std::collections::BTreeMap<(WindowSize, AggKey), AggState> {
    let mut out: std::collections::BTreeMap<(WindowSize, AggKey), AggState> = std::collections::BTreeMap::new();
    for w in WindowConfig::default().windows {
        let rows = scan(store, event_type, w, t0().timestamp() - 7200, t0().timestamp() + 7200).await.unwrap();
        for (k, _shard, s) in rows {
            out.entry((w, k)).or_default().merge(&s);
        }
    }
    out
}

/// The same map computed directly from the records (the truth).
pub fn expected(event_type: &str, recs: &[Rec]) -> std::collections::BTreeMap<(WindowSize, AggKey), AggState> {
    let b = batch_of(event_type, recs);
    let mut out: std::collections::BTreeMap<(WindowSize, AggKey), AggState> = std::collections::BTreeMap::new();
    for d in b.deltas {
        out.entry((d.key.window, d.key)).or_default().merge(&d.state);
    }
    out
}

/// Wraps a store; after `writes_before_crash` successful writes (appends, partial puts, fold
/// marks) every call fails (a crashed invocation).
#[derive(Clone)]
pub struct Crashing<S> {
    pub inner: S,
    remaining: Arc<AtomicUsize>,
}

impl<S> Crashing<S> {
    pub fn new(inner: S, writes_before_crash: usize) -> Self {
        Crashing { inner, remaining: Arc::new(AtomicUsize::new(writes_before_crash)) }
    }

    fn alive(&self) -> Result<(), StoreError> {
        if self.remaining.load(Ordering::SeqCst) == 0 {
            return Err(StoreError::Unavailable("crashed".into()));
        }
        Ok(())
    }

    fn write(&self) -> Result<(), StoreError> {
        self.remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map(|_| ())
            .map_err(|_| StoreError::Unavailable("crashed".into()))
    }
}

impl<S: AggregateStore> AggregateStore for Crashing<S> {
    async fn heads(&self, shard: &str, windows: &[WindowKey]) -> Result<Vec<ChainHead>, StoreError> {
        self.alive()?;
        self.inner.heads(shard, windows).await
    }
    async fn append(&self, shard: &str, window: &WindowKey, link: &Link) -> Result<PutOutcome, StoreError> {
        self.write()?;
        self.inner.append(shard, window, link).await
    }
    async fn links(&self, shard: &str, window: &WindowKey, from: SequenceNumber) -> Result<Vec<Link>, StoreError> {
        self.alive()?;
        self.inner.links(shard, window, from).await
    }
    async fn partials(&self, shard: &str, window: &WindowKey) -> Result<Vec<(Vec<DimValue>, Partial)>, StoreError> {
        self.alive()?;
        self.inner.partials(shard, window).await
    }
    async fn put_partial(
        &self,
        shard: &str,
        key: &AggKey,
        expected: Option<&Partial>,
        new: &Partial,
    ) -> Result<PutOutcome, StoreError> {
        self.write()?;
        self.inner.put_partial(shard, key, expected, new).await
    }
    async fn mark_folded(
        &self,
        shard: &str,
        window: &WindowKey,
        upto: SequenceNumber,
        n: u64,
    ) -> Result<(), StoreError> {
        self.write()?;
        self.inner.mark_folded(shard, window, upto, n).await
    }
    async fn read(
        &self,
        event_type: &str,
        size: WindowSize,
        from: i64,
        to: i64,
    ) -> Result<Vec<ShardWindow>, StoreError> {
        self.inner.read(event_type, size, from, to).await
    }
}

/// A store whose first `partials` read answers nothing (a fold that read before another writer
/// folded the same window): its compare-and-set writes then conflict and must be redone.
pub struct StaleOnce<S> {
    pub inner: S,
    stale: AtomicUsize,
    /// `partials` calls so far.
    pub reads: AtomicUsize,
}

impl<S> StaleOnce<S> {
    pub fn new(inner: S) -> Self {
        StaleOnce { inner, stale: AtomicUsize::new(1), reads: AtomicUsize::new(0) }
    }
}

impl<S: AggregateStore> AggregateStore for StaleOnce<S> {
    async fn heads(&self, shard: &str, windows: &[WindowKey]) -> Result<Vec<ChainHead>, StoreError> {
        self.inner.heads(shard, windows).await
    }
    async fn append(&self, shard: &str, window: &WindowKey, link: &Link) -> Result<PutOutcome, StoreError> {
        self.inner.append(shard, window, link).await
    }
    async fn links(&self, shard: &str, window: &WindowKey, from: SequenceNumber) -> Result<Vec<Link>, StoreError> {
        self.inner.links(shard, window, from).await
    }
    async fn partials(&self, shard: &str, window: &WindowKey) -> Result<Vec<(Vec<DimValue>, Partial)>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.stale.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Ok(Vec::new());
        }
        self.inner.partials(shard, window).await
    }
    async fn put_partial(
        &self,
        shard: &str,
        key: &AggKey,
        expected: Option<&Partial>,
        new: &Partial,
    ) -> Result<PutOutcome, StoreError> {
        self.inner.put_partial(shard, key, expected, new).await
    }
    async fn put_partials(&self, shard: &str, writes: &[PartialWrite]) -> Result<Vec<PutOutcome>, StoreError> {
        self.inner.put_partials(shard, writes).await
    }
    async fn mark_folded(
        &self,
        shard: &str,
        window: &WindowKey,
        upto: SequenceNumber,
        n: u64,
    ) -> Result<(), StoreError> {
        self.inner.mark_folded(shard, window, upto, n).await
    }
    async fn read(
        &self,
        event_type: &str,
        size: WindowSize,
        from: i64,
        to: i64,
    ) -> Result<Vec<ShardWindow>, StoreError> {
        self.inner.read(event_type, size, from, to).await
    }
}

pub fn sqlite() -> SqliteAggregateStore {
    SqliteAggregateStore::in_memory().unwrap()
}

/// A DynamoDB store on a fresh table in moto, or `None` (skip) without moto.
pub async fn dynamo() -> Option<DynamoAggregateStore> {
    let config = sluice_testkit::moto::moto().await?;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = sluice_testkit::moto::unique_name("aggregates");
    DynamoAggregateStore::create_table(&client, &table).await.unwrap();
    Some(DynamoAggregateStore::new(client, table))
}

pub fn fast_policy() -> sluice_aggregators::ApplyPolicy {
    sluice_aggregators::ApplyPolicy {
        max_attempts: 2,
        base_backoff: std::time::Duration::from_millis(1),
        concurrency: 8,
        // Fold often, so every test also exercises folding.
        fold_after_links: 2,
    }
}

pub fn recs(range: std::ops::RangeInclusive<u64>) -> Vec<Rec> {
    range
        .map(|i| Rec {
            seq: i,
            group: (i % 4) as u8,
            measure: (i as f64) * 1.25,
            identity: (i % 7) as u32,
            minute: (i % 3) as i64,
        })
        .collect()
}
