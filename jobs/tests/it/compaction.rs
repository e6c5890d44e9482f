//! Compaction over a lake the real lake writer filled: duplicates from redeliveries, re-split
//! batches and producer retries; exact rows after every run, after a crash at every step, and
//! after late data.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, TimeDelta, Utc};
use sluice_dlq::MemoryDeadLetters;
use sluice_jobs::compaction::{CompactionConfig, CompactionError, Compactor, Step};
use sluice_lake::Lake;
use sluice_schemas::{Event, Registry};
use sluice_sinks::{LakeTables, LakeWriter};
use sluice_stream::BatchHandler;
use sluice_testkit::generate::{GenConfig, Generator, kinesis_event, producer_retries, record_bytes};

/// (event_id, received_at µs, occurred_at µs) of one row.
type Row = (String, i64, i64);

/// Long after every generated hour closed.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::builtin().unwrap())
}

struct Fixture {
    lake: Lake,
    writer: LakeWriter<MemoryDeadLetters>,
    /// Distinct events by id, the copy compaction must keep (earliest received_at).
    truth: BTreeMap<String, Event>,
    next_seq: u64,
}

impl Fixture {
    fn new() -> Self {
        let lake = Lake::open("memory://", &Default::default()).unwrap();
        let writer = LakeWriter::new(registry(), lake.clone(), MemoryDeadLetters::new());
        Fixture { lake, writer, truth: BTreeMap::new(), next_seq: 0 }
    }

    /// Writes `events` from `shard` as one delivered batch; returns the Kinesis payload.
    async fn deliver(&mut self, shard: &str, events: &[Event]) -> Vec<u8> {
        let payloads = events.iter().map(record_bytes).collect();
        let payload = serde_json::to_vec(&kinesis_event(shard, self.next_seq, payloads, now())).unwrap();
        self.next_seq += events.len() as u64;
        self.redeliver(&payload).await;
        for e in events {
            let kept = self.truth.entry(e.event_id.clone()).or_insert_with(|| e.clone());
            if e.received_at < kept.received_at {
                *kept = e.clone();
            }
        }
        payload
    }

    async fn redeliver(&self, payload: &[u8]) {
        let response = self.writer.handle(bytes::Bytes::copy_from_slice(payload)).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }

    /// A lake with the duplicates a real pipeline leaves: 1,200 events over three hours in
    /// batches of 100 from two shards, one batch redelivered as is, one re-split (its second half
    /// again under other file names), 50 producer retries (same event_id, received later).
    async fn with_duplicates() -> Self {
        let mut fx = Fixture::new();
        let events =
            Generator::new(GenConfig { seed: 7, events_per_second: 1_200.0 / 10_800.0, ..GenConfig::default() })
                .take(1_200);
        let mut first = Vec::new();
        for (i, chunk) in events.chunks(100).enumerate() {
            let shard = if i % 2 == 0 { "shardId-000000000000" } else { "shardId-000000000001" };
            let payload = fx.deliver(shard, chunk).await;
            if i == 3 {
                first = payload;
            }
        }
        fx.redeliver(&first).await;
        // The first batch's second half again (same records, same sequence numbers), as a
        // bisected retry delivers it: another file name, the same rows.
        let next = fx.next_seq;
        fx.next_seq = 50;
        fx.deliver("shardId-000000000000", &events[50..100]).await;
        fx.next_seq = next;
        let retries = producer_retries(&events, 24, TimeDelta::seconds(30));
        fx.deliver("shardId-000000000001", &retries).await;
        fx
    }

    fn compactor(&self, config: CompactionConfig) -> Compactor {
        Compactor::new(self.lake.clone(), LakeTables::new(registry()), config)
    }

    /// Every row by file, in file order.
    async fn rows(&self) -> BTreeMap<String, Vec<Row>> {
        let mut out = BTreeMap::new();
        for file in self.lake.list_files(None).await.unwrap() {
            let path = file.path.partition.file_path(&file.path.file_name);
            let mut rows = Vec::new();
            for batch in self.lake.read_parquet(&path).await.unwrap() {
                rows.extend(rows_of(&batch));
            }
            out.insert(path, rows);
        }
        out
    }

    /// The lake holds every distinct event once, the earliest copy, each partition in one
    /// generation of compacted files sorted by `occurred_at`.
    async fn assert_compacted_exactly(&self) {
        let files = self.rows().await;
        let mut seen: BTreeMap<String, i64> = BTreeMap::new();
        let mut by_partition: BTreeMap<String, Vec<(String, Vec<Row>)>> = BTreeMap::new();
        for (path, rows) in files {
            let (dir, name) = path.rsplit_once('/').unwrap();
            assert!(name.starts_with("compacted-"), "{path} was not compacted");
            by_partition.entry(dir.to_owned()).or_default().push((name.to_owned(), rows));
        }
        for (dir, files) in &by_partition {
            let generation = |n: &str| n.split('-').nth(1).unwrap().to_owned();
            assert!(files.iter().all(|(n, _)| generation(n) == generation(&files[0].0)), "{dir}: one generation");
            let occurred: Vec<i64> = files.iter().flat_map(|(_, rows)| rows.iter().map(|r| r.2)).collect();
            assert!(occurred.windows(2).all(|w| w[0] <= w[1]), "{dir}: sorted by occurred_at across its files");
            for (_, rows) in files {
                for (id, received, _) in rows {
                    assert!(seen.insert(id.clone(), *received).is_none(), "{id} appears twice");
                }
            }
        }
        let expected: BTreeMap<String, i64> =
            self.truth.iter().map(|(id, e)| (id.clone(), e.received_at.timestamp_micros())).collect();
        assert_eq!(seen, expected, "every distinct event once, the earliest copy");
    }
}

fn rows_of(batch: &RecordBatch) -> Vec<Row> {
    let ids = batch.column_by_name("event_id").unwrap().as_string::<i32>();
    let received = batch.column_by_name("received_at").unwrap().as_primitive::<TimestampMicrosecondType>();
    let occurred = batch.column_by_name("occurred_at").unwrap().as_primitive::<TimestampMicrosecondType>();
    (0..batch.num_rows()).map(|i| (ids.value(i).to_owned(), received.value(i), occurred.value(i))).collect()
}

#[tokio::test]
async fn compaction_leaves_one_file_per_partition_with_each_event_once() {
    let fx = Fixture::with_duplicates().await;
    let before = fx.rows().await;
    let rows_before: usize = before.values().map(Vec::len).sum();
    assert!(rows_before > fx.truth.len(), "the fixture holds duplicates");
    let compactor = fx.compactor(CompactionConfig::default());
    let report = compactor.run(None, now(), |_, _, _| {}).await.unwrap();
    assert_eq!(report.duplicates_removed(), rows_before - fx.truth.len());
    fx.assert_compacted_exactly().await;
    let partitions = fx.lake.list_partitions(None).await.unwrap().len();
    assert_eq!(fx.lake.list_files(None).await.unwrap().len(), partitions, "one file per partition");

    // Nothing left to do: the same files.
    let files = fx.lake.list_files(None).await.unwrap();
    assert!(compactor.plan(None, now()).await.unwrap().is_empty());
    assert!(compactor.run(None, now(), |_, _, _| {}).await.unwrap().partitions.is_empty());
    assert_eq!(fx.lake.list_files(None).await.unwrap(), files);
}

#[tokio::test]
async fn late_data_and_redeliveries_make_a_partition_eligible_again() {
    let mut fx = Fixture::with_duplicates().await;
    let compactor = fx.compactor(CompactionConfig::default());
    compactor.run(None, now(), |_, _, _| {}).await.unwrap();
    // A late event into a compacted hour, and a copy of an already compacted event.
    let some = fx.truth.values().next().unwrap().clone();
    let late = Event { event_id: ulid::Ulid::new().to_string(), ..some.clone() };
    let retry = Event { received_at: some.received_at + TimeDelta::seconds(1), ..some.clone() };
    fx.deliver("shardId-000000000000", &[late, retry]).await;
    let tasks = compactor.plan(None, now()).await.unwrap();
    assert_eq!(tasks.len(), 1, "only the partition with the new file");
    assert_eq!(tasks[0].inputs.len(), 2, "its compacted file and the late one");
    compactor.run(None, now(), |_, _, _| {}).await.unwrap();
    fx.assert_compacted_exactly().await;
}

#[tokio::test]
async fn open_hours_are_left_alone() {
    let fx = Fixture::with_duplicates().await;
    let first_hour_end = fx.truth.values().map(|e| e.occurred_at).min().unwrap() + TimeDelta::hours(1);
    let compactor = fx.compactor(CompactionConfig::default());
    assert!(compactor.plan(None, first_hour_end - TimeDelta::hours(2)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_small_target_size_splits_a_partition_into_sorted_files() {
    let fx = Fixture::with_duplicates().await;
    let compactor = fx.compactor(CompactionConfig { target_size: 8 * 1024, ..CompactionConfig::default() });
    let report = compactor.run(None, now(), |_, _, _| {}).await.unwrap();
    assert!(report.partitions.iter().any(|p| p.outputs.len() > 2), "{report:?}");
    fx.assert_compacted_exactly().await;
    assert!(compactor.plan(None, now()).await.unwrap().is_empty(), "one generation is clean however many files");
}

/// A crash before every step of a partition's compaction (every read, write and delete), then a
/// full run: exactly the right rows every time.
#[tokio::test]
async fn a_crash_at_any_step_loses_nothing_and_the_next_run_clears_the_duplicates() {
    crash_at_every_step(CompactionConfig { target_size: 16 * 1024, ..CompactionConfig::default() }).await;
}

#[tokio::test]
async fn a_crash_at_any_step_of_a_spilling_compaction_loses_nothing() {
    crash_at_every_step(CompactionConfig { memory_budget: 96 * 1024, ..CompactionConfig::default() }).await;
}

async fn crash_at_every_step(config: CompactionConfig) {
    let steps = {
        let fx = Fixture::with_duplicates().await;
        let task = fx.compactor(config).plan(None, now()).await.unwrap().remove(0);
        let mut steps = Vec::new();
        fx.compactor(config)
            .compact_with(&task, "gen0", |s| {
                steps.push(s.clone());
                true
            })
            .await
            .unwrap();
        steps
    };
    assert!(steps.iter().filter(|s| matches!(s, Step::Write(_))).count() >= 2, "{steps:?}");
    for crash_at in 0..steps.len() {
        let fx = Fixture::with_duplicates().await;
        let compactor = fx.compactor(config);
        let task = compactor.plan(None, now()).await.unwrap().remove(0);
        let mut n = 0;
        let crashed = compactor
            .compact_with(&task, "gen1", |_| {
                n += 1;
                n <= crash_at
            })
            .await;
        assert!(matches!(crashed, Err(CompactionError::Interrupted(_))), "{crashed:?}");
        compactor.run(None, now(), |_, _, _| {}).await.unwrap();
        fx.assert_compacted_exactly().await;
        assert!(compactor.plan(None, now()).await.unwrap().is_empty(), "crash before step {crash_at}: clean after");
        let scratch = fx.lake.list_objects(sluice_lake::layout::SCRATCH_DIR).await.unwrap();
        assert!(scratch.is_empty(), "the interrupted run's scratch is removed: {scratch:?}");
    }
}

/// Rows per partition directory, in order across its files (file names in order).
async fn rows_by_partition(fx: &Fixture) -> BTreeMap<String, Vec<Row>> {
    let mut out: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for (path, rows) in fx.rows().await {
        out.entry(path.rsplit_once('/').unwrap().0.to_owned()).or_default().extend(rows);
    }
    out
}

#[tokio::test]
async fn a_partition_larger_than_the_memory_budget_is_compacted_by_sorted_runs() {
    let in_memory = Fixture::with_duplicates().await;
    in_memory.compactor(CompactionConfig::default()).run(None, now(), |_, _, _| {}).await.unwrap();

    let fx = Fixture::with_duplicates().await;
    let tiny = CompactionConfig { memory_budget: 96 * 1024, ..CompactionConfig::default() };
    let report = fx.compactor(tiny).run(None, now(), |_, _, _| {}).await.unwrap();
    let mut page_views = report.partitions.iter().filter(|p| p.partition.event_type == "page_view");
    assert!(page_views.clone().count() == 3 && page_views.all(|p| p.spilled_runs >= 3), "{report:?}");
    fx.assert_compacted_exactly().await;
    assert_eq!(rows_by_partition(&fx).await, rows_by_partition(&in_memory).await, "the same rows in the same order");
    let scratch = fx.lake.list_objects(sluice_lake::layout::SCRATCH_DIR).await.unwrap();
    assert!(scratch.is_empty(), "scratch left behind: {scratch:?}");
    assert!(fx.compactor(tiny).plan(None, now()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_file_larger_than_half_the_memory_budget_is_refused_and_nothing_changes() {
    let fx = Fixture::with_duplicates().await;
    let before = fx.rows().await;
    let compactor = fx.compactor(CompactionConfig { memory_budget: 4 * 1024, ..CompactionConfig::default() });
    let result = compactor.run(None, now(), |_, _, _| {}).await;
    assert!(matches!(result, Err(CompactionError::OverBudget { .. })), "{result:?}");
    assert!(result.unwrap_err().to_string().contains("--memory-budget"));
    assert_eq!(fx.rows().await, before);
}

#[tokio::test]
async fn only_stale_scratch_is_removed() {
    let fx = Fixture::new();
    let compactor = fx.compactor(CompactionConfig::default());
    let at = |ms: u64| ulid::Ulid::from_parts(ms, 7).to_string().to_ascii_lowercase();
    let now_ms = 1_800_000_000_000u64;
    let dir = format!("{}/compaction", sluice_lake::layout::SCRATCH_DIR);
    let live = format!("{dir}/{}/page_view/identity-00000.arrows", at(now_ms - 3_600_000));
    let stale = format!("{dir}/{}/page_view/identity-00000.arrows", at(now_ms - 25 * 3_600_000));
    let foreign = format!("{dir}/not-a-generation/x");
    for path in [&live, &stale, &foreign] {
        fx.lake.put(path, bytes::Bytes::from_static(b"run")).await.unwrap();
    }
    assert_eq!(compactor.remove_stale_scratch(now()).await.unwrap(), 2);
    let left: Vec<String> = fx.lake.list_objects(&dir).await.unwrap().into_iter().map(|(p, _)| p).collect();
    assert_eq!(left, [live]);
}
