//! Benchmark (not a test): DynamoDB write request units per 1M events of the default generator
//! mix, through the real apply protocol and the DynamoDB adapter's item layout and pricing.
//!
//! `cargo run --release -p sluice-aggregators --example bench-wru [-- --events 1000000]`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use generate::{GenConfig, Generator, record_bytes};
use sluice_aggregators::decode::Decoder;
use sluice_aggregators::store::dynamodb::{item, write_units};
use sluice_aggregators::store::{AggregateStore, Partial, PutOutcome, StoreError};
use sluice_aggregators::{
    AggKey, AggState, ApplyPolicy, BatchAggregator, SeqNo, WindowConfig, WindowSize, apply_batch,
};
use sluice_schemas::Registry;

#[path = "../../loadtest/src/generate.rs"]
#[allow(dead_code)]
mod generate;

const BATCH_BYTES: usize = 6_000_000;

/// In-memory store that prices each PutItem as DynamoDB would.
#[derive(Default, Clone)]
struct PricedStore {
    items: Arc<Mutex<HashMap<(String, AggKey), Partial>>>,
    wru: Arc<Mutex<(u64, u64, usize)>>, // (WRU, puts, max item bytes)
}

impl AggregateStore for PricedStore {
    async fn load(&self, shard: &str, keys: &[AggKey]) -> Result<Vec<Option<Partial>>, StoreError> {
        let items = self.items.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?;
        Ok(keys.iter().map(|k| items.get(&(shard.to_owned(), k.clone())).cloned()).collect())
    }
    async fn put(
        &self,
        shard: &str,
        key: &AggKey,
        _expected: Option<SeqNo>,
        new: &Partial,
    ) -> Result<PutOutcome, StoreError> {
        let it = item(key, shard, new);
        let size = sluice_aggregators::store::dynamodb::item_size(&it);
        {
            let mut w = self.wru.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?;
            w.0 += write_units(&it);
            w.1 += 1;
            w.2 = w.2.max(size);
        }
        self.items
            .lock()
            .map_err(|_| StoreError::Unavailable("poisoned".into()))?
            .insert((shard.to_owned(), key.clone()), new.clone());
        Ok(PutOutcome::Written)
    }
    async fn scan(
        &self,
        _: &str,
        _: WindowSize,
        _: i64,
        _: i64,
    ) -> Result<Vec<(AggKey, String, AggState)>, StoreError> {
        Ok(Vec::new())
    }
}

/// WRU for `total` events of the default mix over `shards` shards (round-robin), full batches.
async fn simulate_wru(
    registry: &Arc<Registry>,
    config: &WindowConfig,
    total: usize,
    shards: usize,
    rate: f64,
) -> anyhow::Result<(u64, u64, usize, usize)> {
    let decoder = Decoder::new(Arc::clone(registry));
    let store = PricedStore::default();
    let mut generator = Generator::new(GenConfig { events_per_second: rate, ..GenConfig::default() });
    let mut per_shard: Vec<Vec<Vec<u8>>> = vec![Vec::new(); shards];
    let mut sizes = vec![0usize; shards];
    let mut batches = 0usize;
    let mut seq = 0u64;
    let flush = |payloads: Vec<Vec<u8>>, shard: usize, seq: &mut u64| {
        let decoder = &decoder;
        let store = store.clone();
        let config = config.clone();
        let first = *seq;
        *seq += payloads.len() as u64;
        async move {
            let mut agg = BatchAggregator::new(config);
            for (i, p) in payloads.iter().enumerate() {
                if let Ok((c, _)) = decoder.decode(p) {
                    agg.add(SeqNo::from_u128(u128::from(first) + i as u128), &c);
                }
            }
            let report =
                apply_batch(&store, &format!("shardId-{shard:012}"), &agg.finish(), &ApplyPolicy::default()).await;
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
    let (wru, puts, max_item) = *store.wru.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    Ok((wru, puts, max_item, batches))
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
    println!();
    println!();
    println!(
        "DynamoDB cost of {wru_events} events, default mix, full (~6 MB) batches, every write a conditional PutItem priced at ceil(item bytes / 1 KB):"
    );
    println!(
        "| windows stored | shards | event rate (total) | batches | puts | WRU | WRU per 1M events | largest item |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (label, windows) in [
        ("1m+1h", vec![sluice_aggregators::window::MINUTE, sluice_aggregators::window::HOUR]),
        ("1m", vec![sluice_aggregators::window::MINUTE]),
    ] {
        for (shards, rate) in [(1usize, 2_000.0), (4, 2_000.0), (1, 200.0)] {
            let cfg = WindowConfig::new(windows.clone(), config.allowed_lateness);
            let (wru, puts, max_item, batches) = simulate_wru(&registry, &cfg, wru_events, shards, rate).await?;
            println!(
                "| {label} | {shards} | {rate:.0}/s | {batches} | {puts} | {wru} | {:.0} | {max_item} B |",
                wru as f64 * 1e6 / wru_events as f64
            );
        }
    }
    Ok(())
}
