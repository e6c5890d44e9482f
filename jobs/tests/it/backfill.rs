//! Backfill over a lake and an aggregate store the real lake writer and aggregator filled:
//! producer retries (the same `event_id` posted again) over-count until a backfill makes every
//! window exact; a second run writes nothing; late events afterwards still count; a run cut
//! short resumes; records the lake does not hold yet keep the stream's count.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use sluice_aggregators::store::scan;
use sluice_aggregators::{AggKey, AggState, AggregatorHandler, SqliteAggregateStore, WindowConfig, WindowSize};
use sluice_dlq::MemoryDeadLetters;
use sluice_jobs::backfill::{BackfillRequest, Backfiller};
use sluice_lake::Lake;
use sluice_schemas::{Event, Registry};
use sluice_sinks::LakeWriter;
use sluice_stream::BatchHandler;
use sluice_testkit::generate::{GenConfig, Generator, kinesis_event, producer_retries, record_bytes};

type Snapshot = BTreeMap<(WindowSize, AggKey), AggState>;

fn registry() -> Arc<Registry> {
    Arc::new(Registry::builtin().unwrap())
}

struct Fixture {
    lake: Lake,
    writer: LakeWriter<MemoryDeadLetters>,
    store: SqliteAggregateStore,
    aggregator: AggregatorHandler<SqliteAggregateStore, MemoryDeadLetters>,
    /// Distinct events by id, the copy the lake keeps (earliest received_at).
    truth: BTreeMap<String, Event>,
    next_seq: u64,
    start: DateTime<Utc>,
    /// The generator's event type weights.
    mix: [u32; 4],
}

impl Fixture {
    fn new() -> Self {
        let lake = Lake::open("memory://", &Default::default()).unwrap();
        let writer = LakeWriter::new(registry(), lake.clone(), MemoryDeadLetters::new());
        let store = SqliteAggregateStore::in_memory().unwrap();
        let aggregator =
            AggregatorHandler::new(registry(), store.clone(), MemoryDeadLetters::new(), WindowConfig::default());
        let start = Utc::now() - TimeDelta::hours(4);
        let mix = GenConfig::default().mix;
        Fixture { lake, writer, store, aggregator, truth: BTreeMap::new(), next_seq: 0, start, mix }
    }

    fn events(&self, seed: u64, n: usize) -> Vec<Event> {
        Generator::new(GenConfig {
            seed,
            start: self.start,
            events_per_second: n as f64 / 7_200.0,
            mix: self.mix,
            ..GenConfig::default()
        })
        .take(n)
    }

    /// `events` from `shard` as one batch, to the aggregator and (unless `lake` is false) the
    /// lake writer.
    async fn deliver(&mut self, shard: &str, events: &[Event], lake: bool) {
        let payloads = events.iter().map(record_bytes).collect();
        let payload = serde_json::to_vec(&kinesis_event(shard, self.next_seq, payloads, Utc::now())).unwrap();
        self.next_seq += events.len() as u64;
        let payload = bytes::Bytes::from(payload);
        assert!(self.aggregator.handle(payload.clone()).await.unwrap().batch_item_failures.is_empty());
        if lake {
            assert!(self.writer.handle(payload).await.unwrap().batch_item_failures.is_empty());
        }
        for e in events {
            let kept = self.truth.entry(e.event_id.clone()).or_insert_with(|| e.clone());
            if e.received_at < kept.received_at {
                *kept = e.clone();
            }
        }
    }

    /// 600 events over two hours in batches of 50 from two shards, then 40 producer retries
    /// (same `event_id`, received later) on the other shard.
    async fn with_retries() -> Self {
        Self::with_retries_of(GenConfig::default().mix).await
    }

    /// [`Fixture::with_retries`] with event types weighted by `mix`.
    async fn with_retries_of(mix: [u32; 4]) -> Self {
        let mut fx = Fixture { mix, ..Fixture::new() };
        let events = fx.events(11, 600);
        for (i, chunk) in events.chunks(50).enumerate() {
            fx.deliver(shard(i), chunk, true).await;
        }
        let retries = producer_retries(&events, 15, TimeDelta::seconds(20));
        fx.deliver(shard(1), &retries, true).await;
        fx
    }

    fn backfiller(&self) -> Backfiller<SqliteAggregateStore> {
        Backfiller::new(self.lake.clone(), registry(), self.store.clone(), WindowConfig::default())
    }

    fn request(&self) -> BackfillRequest {
        BackfillRequest {
            from: self.start - TimeDelta::hours(1),
            to: Utc::now() + TimeDelta::hours(1),
            event_types: None,
        }
    }

    /// The aggregates of the distinct events, each once: what a fresh store holds after the
    /// aggregator saw only `truth`.
    async fn truth(&self) -> Snapshot {
        let store = SqliteAggregateStore::in_memory().unwrap();
        let aggregator =
            AggregatorHandler::new(registry(), store.clone(), MemoryDeadLetters::new(), WindowConfig::default());
        let payloads = self.truth.values().map(record_bytes).collect();
        let payload = serde_json::to_vec(&kinesis_event(shard(0), 0, payloads, Utc::now())).unwrap();
        assert!(aggregator.handle(payload.into()).await.unwrap().batch_item_failures.is_empty());
        self.snapshot_of(&store).await
    }

    async fn snapshot(&self) -> Snapshot {
        self.snapshot_of(&self.store).await
    }

    async fn snapshot_of(&self, store: &SqliteAggregateStore) -> Snapshot {
        let (from, to) = ((self.start - TimeDelta::days(2)).timestamp(), (Utc::now() + TimeDelta::days(2)).timestamp());
        let mut out = Snapshot::new();
        for t in registry().event_types() {
            for w in WindowConfig::default().windows {
                for (key, _, state) in scan(store, &t.name, w, from, to).await.unwrap() {
                    out.entry((w, key)).or_default().merge(&state);
                }
            }
        }
        out.retain(|_, s| s.count > 0);
        out
    }
}

fn shard(i: usize) -> &'static str {
    if i.is_multiple_of(2) { "shardId-000000000000" } else { "shardId-000000000001" }
}

fn total(s: &Snapshot) -> u64 {
    s.iter().filter(|((w, _), _)| w.secs() == 3600).map(|(_, s)| s.count).sum()
}

#[tokio::test]
async fn backfill_makes_every_window_exact_then_changes_nothing_and_late_events_still_count() {
    let mut fx = Fixture::with_retries().await;
    let truth = fx.truth().await;
    assert_eq!(total(&truth), 600);
    assert_eq!(total(&fx.snapshot().await), 640, "the stream counts each retry again");

    let report = fx.backfiller().run(&fx.request(), |_, _, _| {}).await.unwrap();
    assert_eq!(report.items.iter().map(|i| i.duplicates).sum::<usize>(), 40);
    assert!(report.items.iter().map(|i| i.written).sum::<usize>() > 0);
    assert_eq!(fx.snapshot().await, truth, "exact after the backfill");

    let again = fx.backfiller().run(&fx.request(), |_, _, _| {}).await.unwrap();
    assert_eq!(again.items.len(), report.items.len());
    assert!(again.items.iter().all(|i| i.written == 0 && i.caught_up == 0), "{again:?}");

    let late: Vec<Event> = fx.events(12, 30).into_iter().map(|e| Event { received_at: Utc::now(), ..e }).collect();
    fx.deliver(shard(0), &late, true).await;
    assert_eq!(fx.snapshot().await, fx.truth().await, "late events after the backfill count once");
    fx.backfiller().run(&fx.request(), |_, _, _| {}).await.unwrap();
    assert_eq!(fx.snapshot().await, fx.truth().await, "and a backfill after them keeps it so");
}

/// The nested table (`order_placed`: roles inside an object, items in an array) backfills as
/// the flat ones do.
#[tokio::test]
async fn nested_orders_backfill_exactly_too() {
    let fx = Fixture::with_retries_of([1, 1, 1, 3]).await;
    let truth = fx.truth().await;
    let orders = truth.keys().filter(|(_, k)| k.event_type == "order_placed").count();
    assert!(orders > 0, "order_placed windows are aggregated");
    assert_ne!(fx.snapshot().await, truth);
    let report = fx.backfiller().run(&fx.request(), |_, _, _| {}).await.unwrap();
    assert!(report.items.iter().any(|i| i.item.contains("order_placed") && i.duplicates > 0), "{report:?}");
    assert!(report.items.iter().all(|i| i.unreadable == 0), "{report:?}");
    assert_eq!(fx.snapshot().await, truth, "exact after the backfill");
}

/// A shard that delivered only producer retries: the lake keeps none of its rows (the originals
/// came first on another shard), yet its windows counted every copy and are replaced too.
#[tokio::test]
async fn a_shard_whose_rows_are_all_later_copies_is_replaced_too() {
    let mut fx = Fixture::new();
    let events = fx.events(13, 200);
    for chunk in events.chunks(50) {
        fx.deliver(shard(0), chunk, true).await;
    }
    let retries = producer_retries(&events, 4, TimeDelta::seconds(20));
    fx.deliver("shardId-000000000002", &retries, true).await;
    assert_eq!(total(&fx.snapshot().await), 250, "the stream counts each retry again");

    let report = fx.backfiller().run(&fx.request(), |_, _, _| {}).await.unwrap();
    assert_eq!(report.items.iter().map(|i| i.duplicates).sum::<usize>(), 50);
    assert_eq!(fx.snapshot().await, fx.truth().await, "exact after the backfill");
}

#[tokio::test]
async fn a_run_cut_short_resumes_without_redoing_finished_items() {
    let fx = Fixture::with_retries().await;
    let backfiller = fx.backfiller();
    let request = fx.request();
    let items = backfiller.plan(&request).await.unwrap();
    assert!(items.len() >= 2, "{items:?}");
    // The process dies after the first item.
    backfiller.backfill_item(&items[0]).await.unwrap();
    let report = backfiller.run(&request, |_, _, _| {}).await.unwrap();
    assert_eq!(report.resumed, 1);
    assert_eq!(report.items.len(), items.len() - 1);
    assert!(!report.items.iter().any(|i| i.item == items[0].id()));
    assert_eq!(fx.snapshot().await, fx.truth().await);
    // Finished: the next run plans every item again.
    assert_eq!(backfiller.plan(&request).await.unwrap().len(), items.len());
}

#[tokio::test]
async fn records_the_lake_does_not_hold_yet_keep_the_streams_count() {
    let mut fx = Fixture::with_retries().await;
    let tail = fx.events(13, 50);
    fx.deliver(shard(0), &tail, false).await;
    fx.backfiller().run(&fx.request(), |_, _, _| {}).await.unwrap();
    assert_eq!(fx.snapshot().await, fx.truth().await, "the tail counted once, by the stream");
}

#[tokio::test]
async fn the_lake_ahead_of_the_aggregator_is_counted_once_when_the_aggregator_catches_up() {
    let mut fx = Fixture::with_retries().await;
    let tail = fx.events(14, 50);
    // Only the lake writer has the tail so far.
    let payloads = tail.iter().map(record_bytes).collect();
    let payload =
        bytes::Bytes::from(serde_json::to_vec(&kinesis_event(shard(0), fx.next_seq, payloads, Utc::now())).unwrap());
    assert!(fx.writer.handle(payload.clone()).await.unwrap().batch_item_failures.is_empty());
    for e in &tail {
        fx.truth.insert(e.event_id.clone(), e.clone());
    }
    let report = fx.backfiller().run(&fx.request(), |_, _, _| {}).await.unwrap();
    assert!(report.items.iter().any(|i| i.caught_up > 0));
    assert_eq!(fx.snapshot().await, fx.truth().await);
    // The aggregator's delivery of the same records now adds nothing.
    assert!(fx.aggregator.handle(payload).await.unwrap().batch_item_failures.is_empty());
    assert_eq!(fx.snapshot().await, fx.truth().await);
}

/// An item's backfill runs as a spawned task (what the jobs Lambda and the executor do).
#[tokio::test]
async fn an_item_backfills_in_a_spawned_task() {
    let fx = Fixture::with_retries().await;
    let backfiller = Arc::new(fx.backfiller());
    let items = backfiller.plan(&fx.request()).await.unwrap();
    let tasks: Vec<_> = items
        .into_iter()
        .map(|item| {
            let backfiller = Arc::clone(&backfiller);
            tokio::spawn(async move { backfiller.backfill_item(&item).await.map(|r| r.written) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(fx.snapshot().await, fx.truth().await);
}
