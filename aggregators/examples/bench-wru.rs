//! Benchmark (not a test): DynamoDB write request units per 1M events of the default generator
//! mix, through the real apply protocol and the DynamoDB adapter's item layout and pricing.
//!
//! `cargo run --release -p sluice-aggregators --example bench-wru [-- --events 1000000]`

use std::sync::{Arc, Mutex};

use generate::{GenConfig, Generator, record_bytes};
use sluice_aggregators::decode::Decoder;
use sluice_aggregators::store::dynamodb::{append_units, item_size, link_items, partial_item, write_units};
use sluice_aggregators::store::{
    AggregateStore, ChainHead, Link, Partial, PutOutcome, ShardWindow, StoreError, WindowKey,
};
use sluice_aggregators::{
    AggKey, ApplyPolicy, BatchAggregator, DimValue, SqliteAggregateStore, WindowConfig, WindowSize, apply_batch,
};
use sluice_schemas::Registry;
use sluice_stream::SequenceNumber;

use sluice_testkit::generate;

const BATCH_BYTES: usize = 6_000_000;

/// The embedded store's semantics, with each write priced as the DynamoDB adapter would issue
/// it (the adapter's own item builders and pricing).
#[derive(Clone)]
struct PricedStore {
    inner: SqliteAggregateStore,
    cost: Arc<Mutex<Cost>>,
}

#[derive(Default, Clone, Copy)]
struct Cost {
    wru: u64,
    writes: u64,
    folds: u64,
    largest_item: usize,
}

impl PricedStore {
    fn new() -> anyhow::Result<Self> {
        Ok(PricedStore { inner: SqliteAggregateStore::in_memory()?, cost: Arc::default() })
    }

    fn charge(&self, units: u64, largest: usize) -> Result<(), StoreError> {
        let mut c = self.cost.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?;
        c.wru += units;
        c.writes += 1;
        c.largest_item = c.largest_item.max(largest);
        Ok(())
    }
}

impl AggregateStore for PricedStore {
    async fn heads(&self, shard: &str, windows: &[WindowKey]) -> Result<Vec<ChainHead>, StoreError> {
        self.inner.heads(shard, windows).await
    }
    async fn append(&self, shard: &str, window: &WindowKey, link: &Link) -> Result<PutOutcome, StoreError> {
        let items = link_items(shard, window, link)?;
        self.charge(append_units(&items), items.iter().map(item_size).max().unwrap_or(0))?;
        self.inner.append(shard, window, link).await
    }
    async fn links(&self, shard: &str, window: &WindowKey, from: SequenceNumber) -> Result<Vec<Link>, StoreError> {
        self.inner.links(shard, window, from).await
    }
    async fn partials(&self, shard: &str, window: &WindowKey) -> Result<Vec<(Vec<DimValue>, Partial)>, StoreError> {
        self.inner.partials(shard, window).await
    }
    async fn put_partial(
        &self,
        shard: &str,
        key: &AggKey,
        expected: Option<&Partial>,
        new: &Partial,
    ) -> Result<PutOutcome, StoreError> {
        let item = partial_item(shard, key, new);
        self.charge(write_units(&item), item_size(&item))?;
        self.inner.put_partial(shard, key, expected, new).await
    }
    async fn mark_folded(
        &self,
        shard: &str,
        window: &WindowKey,
        upto: SequenceNumber,
        n: u64,
    ) -> Result<(), StoreError> {
        self.charge(1, 0)?;
        self.cost.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?.folds += 1;
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

/// WRU for `total` events of the default mix over `shards` shards (round-robin), full batches.
async fn simulate_wru(
    registry: &Arc<Registry>,
    config: &WindowConfig,
    total: usize,
    shards: usize,
    rate: f64,
    policy: &ApplyPolicy,
) -> anyhow::Result<(Cost, usize)> {
    let decoder = Decoder::new(Arc::clone(registry));
    let store = PricedStore::new()?;
    let mut generator = Generator::new(GenConfig { events_per_second: rate, ..GenConfig::default() });
    let mut per_shard: Vec<Vec<Vec<u8>>> = vec![Vec::new(); shards];
    let mut sizes = vec![0usize; shards];
    let mut batches = 0usize;
    let mut seq = 0u64;
    let flush = |payloads: Vec<Vec<u8>>, shard: usize, seq: &mut u64| {
        let decoder = &decoder;
        let store = store.clone();
        let config = config.clone();
        let policy = policy.clone();
        let first = *seq;
        *seq += payloads.len() as u64;
        async move {
            let mut agg = BatchAggregator::new(config);
            for (i, p) in payloads.iter().enumerate() {
                if let Ok((c, _)) = decoder.decode(p) {
                    agg.add(SequenceNumber::from_u128(u128::from(first) + i as u128), &c);
                }
            }
            let report = apply_batch(&store, &format!("shardId-{shard:012}"), &agg.finish(), &policy).await;
            anyhow::ensure!(report.failed_from.is_none(), "simulated store failed");
            Ok::<(), anyhow::Error>(())
        }
    };
    for i in 0..total {
        let s = i % shards;
        let bytes = record_bytes(&generator.next_event());
        let len = bytes.len().div_ceil(3) * 4 + 560;
        if sizes[s] + len > BATCH_BYTES || per_shard[s].len() >= 10_000 {
            let payloads = std::mem::take(&mut per_shard[s]);
            flush(payloads, s, &mut seq).await?;
            batches += 1;
            sizes[s] = 0;
        }
        sizes[s] += len;
        per_shard[s].push(bytes);
    }
    for (s, pending) in per_shard.iter_mut().enumerate() {
        let payloads = std::mem::take(pending);
        if !payloads.is_empty() {
            flush(payloads, s, &mut seq).await?;
            batches += 1;
        }
    }
    let cost = *store.cost.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    Ok((cost, batches))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let wru_events = args
        .iter()
        .position(|a| a == "--events")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000usize);
    let registry = Arc::new(Registry::builtin()?);
    let config = WindowConfig::default();
    println!(
        "DynamoDB write cost of {wru_events} events, default generator mix, full (~6 MB) batches: per (window, shard) one \
         conditional PutItem of the batch's compressed delta, plus folds into per-key partials every \
         `fold_after_links` links; priced at ceil(item bytes / 1 KB) (x2 in a transaction):"
    );
    println!();
    println!(
        "| windows | shards | event rate (total) | fold after | batches | writes | folds | WRU | WRU per 1M events | largest item |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let default_fold = ApplyPolicy::default().fold_after_links;
    for (label, windows) in [
        ("1m+1h", vec![sluice_aggregators::window::MINUTE, sluice_aggregators::window::HOUR]),
        ("1m", vec![sluice_aggregators::window::MINUTE]),
    ] {
        for (shards, rate, fold_after) in
            [(1usize, 2_000.0, default_fold), (4, 2_000.0, default_fold), (1, 200.0, default_fold), (1, 2_000.0, 32)]
        {
            let cfg = WindowConfig::new(windows.clone(), config.allowed_lateness);
            let policy = ApplyPolicy { fold_after_links: fold_after, ..ApplyPolicy::default() };
            let (cost, batches) = simulate_wru(&registry, &cfg, wru_events, shards, rate, &policy).await?;
            println!(
                "| {label} | {shards} | {rate:.0}/s | {fold_after} | {batches} | {} | {} | {} | {:.0} | {} B |",
                cost.writes,
                cost.folds,
                cost.wru,
                cost.wru as f64 * 1e6 / wru_events as f64,
                cost.largest_item
            );
        }
    }
    Ok(())
}
