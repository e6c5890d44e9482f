//! The jobs' state machines (`jobs/statemachines/*.asl.json`) through the in-process executor:
//! each one's success path with the real tasks on a lake, every Catch path with test doubles in
//! place of the tasks, every Task resource against the task table, the definitions against the
//! pinned asl-validator, and their control flow on moto's Step Functions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sluice_aggregators::store::scan;
use sluice_aggregators::{AggKey, AggState, AggregatorHandler, SqliteAggregateStore, WindowConfig, WindowSize};
use sluice_dlq::{DeadLetter, MemoryDeadLetters};
use sluice_jobs::backfill::{BackfillItem, BackfillRequest, Backfiller, DONE_DIR};
use sluice_jobs::compaction::{CompactionConfig, Compactor};
use sluice_jobs::orchestration::asl::{self, State};
use sluice_jobs::orchestration::local::{self, LOCAL_FUNCTION, LOCAL_QUEUE};
use sluice_jobs::orchestration::tasks::{
    self, BACKFILL_ITEM, COMPACT_PARTITION, CompactionItem, FINISH_BACKFILL, Jobs, PLAN_BACKFILL, PLAN_COMPACTION,
};
use sluice_jobs::orchestration::{
    BACKFILL, COMPACTION, DEFINITIONS, Definition, Execution, Outcome, TaskError, TaskTable,
};
use sluice_lake::Lake;
use sluice_schemas::{Event, Registry};
use sluice_sinks::{LakeTables, LakeWriter};
use sluice_stream::BatchHandler;
use sluice_testkit::generate::{GenConfig, Generator, kinesis_event, producer_retries, record_bytes};

/// Long after every generated hour closed.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::builtin().unwrap())
}

fn memory_lake() -> Lake {
    Lake::open("memory://", &Default::default()).unwrap()
}

fn compactor(lake: &Lake) -> Compactor {
    Compactor::new(lake.clone(), LakeTables::new(registry()), CompactionConfig::default())
}

/// The real task table over `lake` (backfilling into an empty store).
fn real_tasks(lake: &Lake) -> TaskTable {
    let store = SqliteAggregateStore::in_memory().unwrap();
    backfill_table(lake, store)
}

/// The real task table over `lake`, backfilling into `store`.
fn backfill_table(lake: &Lake, store: SqliteAggregateStore) -> TaskTable {
    let backfiller = Backfiller::new(lake.clone(), registry(), store, WindowConfig::default());
    tasks::table(Jobs { lake: lake.clone(), compactor: compactor(lake) }, Arc::new(backfiller))
}

fn execution(job: &str) -> Execution {
    Execution { start_time: now(), ..Execution::new(job) }
}

/// Runs `definition` locally over `lake` with `tasks`; the outcome and the jobs dead letters.
async fn run(definition: &Definition, lake: &Lake, tasks: TaskTable, input: Value) -> (Outcome, Vec<DeadLetter>) {
    let dead_letters = MemoryDeadLetters::new();
    let machine = local::load(definition, lake).unwrap();
    let executor = local::executor(tasks, lake.clone(), dead_letters.clone());
    let outcome = executor.run(&machine, &execution(definition.name), input).await;
    (outcome, dead_letters.letters())
}

/// A dead letter's message body.
fn body(letter: &DeadLetter) -> Value {
    assert_eq!(letter.source, local::DEAD_LETTER_SOURCE);
    serde_json::from_slice(&letter.data).unwrap()
}

/// Writes events through the real lake writer.
struct Fixture {
    lake: Lake,
    writer: LakeWriter<MemoryDeadLetters>,
    next_seq: u64,
    distinct: BTreeSet<String>,
}

impl Fixture {
    fn new(lake: Lake) -> Self {
        let writer = LakeWriter::new(registry(), lake.clone(), MemoryDeadLetters::new());
        Self { lake, writer, next_seq: 0, distinct: BTreeSet::new() }
    }

    async fn deliver(&mut self, events: &[Event]) {
        let payloads = events.iter().map(record_bytes).collect();
        let payload =
            serde_json::to_vec(&kinesis_event("shardId-000000000000", self.next_seq, payloads, now())).unwrap();
        self.next_seq += events.len() as u64;
        let response = self.writer.handle(bytes::Bytes::from(payload)).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        self.distinct.extend(events.iter().map(|e| e.event_id.clone()));
    }

    /// 600 events over three hours in batches of 50, and 30 producer retries (same event_id,
    /// received later) in another batch.
    async fn with_duplicates(lake: Lake) -> Self {
        let mut fx = Self::new(lake);
        let events = Generator::new(GenConfig { seed: 3, events_per_second: 600.0 / 10_800.0, ..GenConfig::default() })
            .take(600);
        for chunk in events.chunks(50) {
            fx.deliver(chunk).await;
        }
        let retries = producer_retries(&events, 20, chrono::TimeDelta::seconds(30));
        fx.deliver(&retries).await;
        fx
    }

    /// Files per partition directory, and every event id with its count.
    async fn contents(&self) -> (BTreeMap<String, Vec<String>>, BTreeMap<String, usize>) {
        let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut ids: BTreeMap<String, usize> = BTreeMap::new();
        for file in self.lake.list_files(None).await.unwrap() {
            let path = file.path.partition.file_path(&file.path.file_name);
            files.entry(file.path.partition.dir()).or_default().push(file.path.file_name.clone());
            for batch in self.lake.read_parquet(&path).await.unwrap() {
                let column = batch.column_by_name("event_id").unwrap();
                let column = arrow::array::AsArray::as_string::<i32>(column);
                for id in column.iter().flatten() {
                    *ids.entry(id.to_owned()).or_default() += 1;
                }
            }
        }
        (files, ids)
    }
}

#[tokio::test]
async fn compaction_runs_through_its_state_machine_with_the_real_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
    let mut fx = Fixture::with_duplicates(lake.clone()).await;
    let (files, ids) = fx.contents().await;
    assert!(ids.values().any(|n| *n > 1), "the fixture holds duplicates");
    let partitions = files.len();

    let (outcome, letters) = run(&COMPACTION, &lake, real_tasks(&lake), json!({})).await;
    let Outcome::Succeeded(output) = outcome else { panic!("{outcome:?}") };
    assert_eq!(output["job"], "compaction");
    assert_eq!(output["plan"]["count"], partitions);
    assert_eq!(output["plan"]["Bucket"], "local");
    assert!(letters.is_empty(), "{letters:?}");
    let (files, ids) = fx.contents().await;
    assert!(files.values().all(|f| f.len() == 1 && f[0].starts_with("compacted-")), "{files:?}");
    assert!(ids.values().all(|n| *n == 1), "no duplicate event_id");
    assert_eq!(ids.keys().cloned().collect::<BTreeSet<_>>(), fx.distinct, "every distinct event kept");
    let key = output["plan"]["Key"].as_str().unwrap();
    let plan: Vec<CompactionItem> =
        serde_json::from_slice(&lake.get(&tasks::relative_key(&lake, "local", key).unwrap()).await.unwrap()).unwrap();
    assert_eq!(plan.len(), partitions, "the plan object the map read");

    // A late event: a dry run plans it and changes nothing, a run compacts it, the next finds
    // nothing to do.
    let mut late = Generator::new(GenConfig { seed: 9, ..GenConfig::default() }).take(1);
    late[0].event_id = ulid::Ulid::new().to_string();
    fx.deliver(&late).await;
    let before = fx.contents().await;
    let (outcome, _) = run(&COMPACTION, &lake, real_tasks(&lake), json!({"dry_run": true})).await;
    let Outcome::Succeeded(output) = outcome else { panic!("{outcome:?}") };
    assert_eq!((output["plan"]["count"].clone(), output["plan"]["dry_run"].clone()), (json!(1), json!(true)));
    assert_eq!(fx.contents().await, before, "a dry run changes nothing");
    let (outcome, _) = run(&COMPACTION, &lake, real_tasks(&lake), json!({"event_type": late[0].event_type})).await;
    assert!(matches!(&outcome, Outcome::Succeeded(o) if o["plan"]["count"] == 1), "{outcome:?}");
    let (files, ids) = fx.contents().await;
    assert!(files.values().all(|f| f.len() == 1), "{files:?}");
    assert_eq!(ids.len(), fx.distinct.len());
    let (outcome, _) = run(&COMPACTION, &lake, real_tasks(&lake), json!({})).await;
    assert!(matches!(&outcome, Outcome::Succeeded(o) if o["plan"]["count"] == 0), "{outcome:?}");
    assert_eq!(fx.contents().await.0, files, "nothing left to do: the same files");

    let (outcome, _) = run(&COMPACTION, &lake, real_tasks(&lake), json!({"event_types": ["x"]})).await;
    let Outcome::Failed(e) = outcome else { panic!("{outcome:?}") };
    assert_eq!(e.error, "Sluice.CompactionFailed", "a bad request is caught and reported: {e}");
}

/// A plan double writing `items` partitions (hours 0..items of one day).
fn plan_of(
    lake: &Lake,
    items: u8,
) -> impl Fn(Value) -> futures::future::BoxFuture<'static, Result<Value, TaskError>> + use<> {
    let lake = lake.clone();
    move |input| {
        let lake = lake.clone();
        Box::pin(async move {
            let run_id = input["run_id"].as_str().unwrap().to_owned();
            let items: Vec<CompactionItem> = (0..items)
                .map(|hour| CompactionItem {
                    event_type: "page_view".into(),
                    dt: "2024-05-01".into(),
                    hour,
                    files: 2,
                    bytes: 10,
                })
                .collect();
            let location = tasks::write_plan(&lake, COMPACTION.name, &run_id, &items, false).await?;
            Ok(serde_json::to_value(location).unwrap())
        })
    }
}

/// A compact double failing the hours in `failing` with `error`, counting its calls.
fn compact_failing(
    failing: &'static [u64],
    error: &'static str,
    calls: Arc<Mutex<usize>>,
) -> impl Fn(Value) -> futures::future::BoxFuture<'static, Result<Value, TaskError>> + use<> {
    move |item| {
        *calls.lock().unwrap() += 1;
        Box::pin(async move {
            let hour = item["hour"].as_u64().unwrap();
            if failing.contains(&hour) {
                return Err(TaskError::new(error, format!("hour {hour} cannot be compacted")));
            }
            Ok(json!({
                "partition": format!("events/event_type=page_view/dt=2024-05-01/hour={hour:02}"),
                "event_type": "page_view", "dt": "2024-05-01", "hour": hour,
                "inputs": 2, "bytes_in": 10, "rows_in": 4, "outputs": ["x"], "bytes_out": 5, "rows_out": 3,
                "spilled_runs": 0,
            }))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_plan_is_retried_then_reported_and_fails_the_execution() {
    let lake = memory_lake();
    let calls = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&calls);
    let table = real_tasks(&lake).with(PLAN_COMPACTION, move |_| {
        *counted.lock().unwrap() += 1;
        async { Err(TaskError::transient("the lake is unreachable")) }
    });
    let (outcome, letters) = run(&COMPACTION, &lake, table, json!({})).await;
    let Outcome::Failed(e) = outcome else { panic!("{outcome:?}") };
    assert_eq!(e.error, "Sluice.CompactionFailed");
    assert_eq!(*calls.lock().unwrap(), 4, "one call and the three retries of Sluice.Transient");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, "compaction: Sluice.Transient: the lake is unreachable");
    let body = body(&letters[0]);
    assert_eq!(body["job"], "compaction");
    assert!(body["execution"].as_str().unwrap().contains("compaction"), "{body}");
}

#[tokio::test(start_paused = true)]
async fn lambda_throttling_is_retried_with_backoff() {
    let lake = memory_lake();
    let calls = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&calls);
    let table = real_tasks(&lake).with(PLAN_COMPACTION, plan_of(&lake, 2)).with(COMPACT_PARTITION, move |item| {
        let n = {
            let mut c = counted.lock().unwrap();
            *c += 1;
            *c
        };
        let compacted = compact_failing(&[], "", Arc::new(Mutex::new(0)));
        async move {
            if n <= 5 {
                Err(TaskError::new("Lambda.TooManyRequestsException", "Rate Exceeded."))
            } else {
                compacted(item).await
            }
        }
    });
    let started = tokio::time::Instant::now();
    let (outcome, letters) = run(&COMPACTION, &lake, table, json!({})).await;
    assert!(matches!(&outcome, Outcome::Succeeded(o) if o["plan"]["count"] == 2), "{outcome:?}");
    assert!(letters.is_empty());
    assert_eq!(*calls.lock().unwrap(), 7, "five throttled calls retried, then both partitions");
    assert!(started.elapsed() <= std::time::Duration::from_secs(2 + 4 + 8 + 16 + 32), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_failed_partition_is_reported_and_the_others_are_compacted() {
    let lake = memory_lake();
    let calls = Arc::new(Mutex::new(0));
    let table = real_tasks(&lake)
        .with(PLAN_COMPACTION, plan_of(&lake, 10))
        .with(COMPACT_PARTITION, compact_failing(&[3], TaskError::FAILED, Arc::clone(&calls)));
    let (outcome, letters) = run(&COMPACTION, &lake, table, json!({})).await;
    assert!(matches!(&outcome, Outcome::Succeeded(o) if o["plan"]["count"] == 10), "1 of 10 is tolerated: {outcome:?}");
    assert_eq!(*calls.lock().unwrap(), 10, "Sluice.JobFailed is not retried");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let body = body(&letters[0]);
    assert_eq!((body["job"].as_str(), body["state"].as_str()), (Some("compaction"), Some("CompactPartition")));
    assert_eq!(body["input"]["hour"], 3, "the failed item");
    assert_eq!(body["input"]["error"]["Error"], TaskError::FAILED);
    assert!(letters[0].reason.contains("hour 3 cannot be compacted"), "{}", letters[0].reason);
}

#[tokio::test]
async fn too_many_failed_partitions_fail_the_execution() {
    let lake = memory_lake();
    let table = real_tasks(&lake)
        .with(PLAN_COMPACTION, plan_of(&lake, 10))
        .with(COMPACT_PARTITION, compact_failing(&[2, 7], TaskError::FAILED, Arc::new(Mutex::new(0))));
    let (outcome, letters) = run(&COMPACTION, &lake, table, json!({})).await;
    let Outcome::Failed(e) = outcome else { panic!("{outcome:?}") };
    assert_eq!(e.error, "Sluice.CompactionFailed");
    let errors: Vec<String> =
        letters.iter().map(|l| body(l)["input"]["error"]["Error"].as_str().unwrap().to_owned()).collect();
    assert_eq!(errors, [TaskError::FAILED, TaskError::FAILED, "States.ExceedToleratedFailureThreshold"]);
}

#[tokio::test]
async fn a_plan_the_map_cannot_read_fails_into_the_catch() {
    let lake = memory_lake();
    let table = real_tasks(&lake).with(PLAN_COMPACTION, |_| async {
        Ok(json!({"Bucket": "local", "Key": "_sluice/plans/compaction/missing.json", "count": 1, "dry_run": false}))
    });
    let (outcome, letters) = run(&COMPACTION, &lake, table, json!({})).await;
    assert!(matches!(&outcome, Outcome::Failed(e) if e.error == "Sluice.CompactionFailed"), "{outcome:?}");
    assert_eq!(body(&letters[0])["input"]["error"]["Error"], "States.ItemReaderFailed");
}

/// The task names the definitions invoke, by definition.
fn invoked_tasks(definition: &Definition, lake: &Lake) -> Vec<String> {
    let machine = local::load(definition, lake).unwrap();
    let mut names = Vec::new();
    for (name, state) in machine.all_states() {
        match state {
            State::Task(task) if task.resource == asl::LAMBDA_INVOKE => {
                let parameters = task.parameters.as_ref().unwrap();
                assert_eq!(parameters.literal_str("FunctionName"), Some(LOCAL_FUNCTION), "{name}");
                let task_name = parameters.field("Payload").and_then(|p| p.literal_str("task"));
                names.push(task_name.unwrap_or_else(|| panic!("{name}: Payload.task must be a literal")).to_owned());
            }
            State::Task(task) => {
                assert_eq!(task.resource, asl::SQS_SEND_MESSAGE, "{name}");
                assert_eq!(task.parameters.as_ref().unwrap().literal_str("QueueUrl"), Some(LOCAL_QUEUE), "{name}");
            }
            State::Map(map) => {
                assert_eq!(map.item_reader.parameters.literal_str("Bucket"), Some("local"), "{name}");
            }
            _ => {}
        }
    }
    names
}

#[test]
fn every_task_resource_maps_to_a_registered_task_function() {
    let lake = memory_lake();
    let table = real_tasks(&lake);
    let mut used = BTreeSet::new();
    for definition in DEFINITIONS {
        for task in invoked_tasks(definition, &lake) {
            assert!(
                table.contains(&task),
                "{}: no task function {task:?} (known: {:?})",
                definition.name,
                table.names().collect::<Vec<_>>()
            );
            used.insert(task);
        }
    }
    let registered: BTreeSet<String> = table.names().map(str::to_owned).collect();
    assert_eq!(used, registered, "every task function is invoked by a definition");
}

/// `$SLUICE_ASL_VALIDATOR` (scripts/test installs the pinned asl-validator and exports it), or
/// `None` after a skip line under plain `cargo test`; under the test command
/// (`SLUICE_REQUIRE_MOTO=1`) a missing validator fails.
fn asl_validator() -> Option<String> {
    match std::env::var("SLUICE_ASL_VALIDATOR") {
        Ok(path) if !path.trim().is_empty() => Some(path),
        _ if std::env::var("SLUICE_REQUIRE_MOTO").is_ok_and(|v| v.trim() == "1" || v.eq_ignore_ascii_case("true")) => {
            panic!("SLUICE_ASL_VALIDATOR is not set under the test command (scripts/test installs asl-validator)")
        }
        _ => {
            eprintln!("skipped (no SLUICE_ASL_VALIDATOR): the definitions' asl-validator check");
            None
        }
    }
}

fn validate(validator: &str, path: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(validator)
        .arg("--json-path")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {validator}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_definitions_pass_asl_validator() {
    let Some(validator) = asl_validator() else { return };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for definition in DEFINITIONS {
        let (valid, out) = validate(&validator, &root.join(definition.path));
        assert!(valid, "{}: {out}", definition.path);
    }
    // The validator rejects what is wrong: a Map without its item processor.
    let broken = tempfile::NamedTempFile::new().unwrap();
    let mut definition: Value = serde_json::from_str(COMPACTION.text).unwrap();
    definition["States"]["CompactPartitions"].as_object_mut().unwrap().remove("ItemProcessor");
    std::fs::write(broken.path(), definition.to_string()).unwrap();
    let (valid, out) = validate(&validator, broken.path());
    assert!(!valid, "a Map without ItemProcessor must be rejected: {out}");
}

#[test]
fn the_shipped_definitions_keep_lambda_results_and_state_small() {
    let lake = memory_lake();
    for definition in DEFINITIONS {
        let machine = local::load(definition, &lake).unwrap();
        for (name, state) in machine.all_states() {
            if let State::Task(task) = state
                && task.resource == asl::LAMBDA_INVOKE
            {
                assert!(task.result_selector.is_some() || task.result_path == asl::PathField::Null, "{name}");
                let retried: Vec<&str> =
                    task.retry.iter().flat_map(|r| r.error_equals.iter().map(String::as_str)).collect();
                for error in [
                    "Lambda.ServiceException",
                    "Lambda.AWSLambdaException",
                    "Lambda.SdkClientException",
                    "Lambda.TooManyRequestsException",
                    TaskError::TRANSIENT,
                ] {
                    assert!(retried.contains(&error), "{}: {name} retries {error}", definition.name);
                }
                assert!(
                    task.retry.iter().all(|r| r.jitter_strategy == asl::Jitter::Full && r.max_delay_seconds.is_some())
                );
                assert!(task.catch.iter().any(|c| c.error_equals == ["States.ALL"]), "{name} catches");
            }
            if let State::Map(map) = state {
                assert_eq!(map.result_path, asl::PathField::Null, "{name}: the map's results are not kept");
                assert!(map.max_concurrency.is_some() && map.tolerated_failure_percentage.is_some(), "{name}");
            }
        }
    }
}

type Snapshot = BTreeMap<(WindowSize, AggKey), AggState>;

/// The stream and the lake fed the same batches, the aggregates in a SQLite store.
struct Aggregates {
    lake: Lake,
    writer: LakeWriter<MemoryDeadLetters>,
    store: SqliteAggregateStore,
    aggregator: AggregatorHandler<SqliteAggregateStore, MemoryDeadLetters>,
    truth: BTreeMap<String, Event>,
    start: DateTime<Utc>,
}

impl Aggregates {
    /// 300 events over two hours from two shards, then 20 producer retries the stream counts
    /// again.
    async fn with_retries() -> Self {
        let lake = memory_lake();
        let store = SqliteAggregateStore::in_memory().unwrap();
        let mut fx = Self {
            writer: LakeWriter::new(registry(), lake.clone(), MemoryDeadLetters::new()),
            aggregator: AggregatorHandler::new(
                registry(),
                store.clone(),
                MemoryDeadLetters::new(),
                WindowConfig::default(),
            ),
            lake,
            store,
            truth: BTreeMap::new(),
            start: Utc::now() - chrono::TimeDelta::hours(4),
        };
        let config =
            GenConfig { seed: 21, start: fx.start, events_per_second: 300.0 / 7_200.0, ..GenConfig::default() };
        let events = Generator::new(config).take(300);
        let mut seq = 0;
        for (i, chunk) in events.chunks(50).enumerate() {
            fx.deliver(i % 2, &mut seq, chunk).await;
        }
        let retries = producer_retries(&events, 15, chrono::TimeDelta::seconds(20));
        fx.deliver(1, &mut seq, &retries).await;
        fx
    }

    async fn deliver(&mut self, shard: usize, seq: &mut u64, events: &[Event]) {
        let shard = format!("shardId-00000000000{shard}");
        let payloads = events.iter().map(record_bytes).collect();
        let payload =
            bytes::Bytes::from(serde_json::to_vec(&kinesis_event(&shard, *seq, payloads, Utc::now())).unwrap());
        *seq += events.len() as u64;
        assert!(self.aggregator.handle(payload.clone()).await.unwrap().batch_item_failures.is_empty());
        assert!(self.writer.handle(payload).await.unwrap().batch_item_failures.is_empty());
        for e in events {
            self.truth.entry(e.event_id.clone()).or_insert_with(|| e.clone());
        }
    }

    /// The aggregates of the distinct events, each once.
    async fn truth(&self) -> Snapshot {
        let store = SqliteAggregateStore::in_memory().unwrap();
        let aggregator =
            AggregatorHandler::new(registry(), store.clone(), MemoryDeadLetters::new(), WindowConfig::default());
        let payloads = self.truth.values().map(record_bytes).collect();
        let payload = serde_json::to_vec(&kinesis_event("shardId-000000000000", 0, payloads, Utc::now())).unwrap();
        assert!(aggregator.handle(payload.into()).await.unwrap().batch_item_failures.is_empty());
        Self::snapshot_of(&store).await
    }

    async fn snapshot_of(store: &SqliteAggregateStore) -> Snapshot {
        let (from, to) = (
            (Utc::now() - chrono::TimeDelta::days(2)).timestamp(),
            (Utc::now() + chrono::TimeDelta::days(2)).timestamp(),
        );
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

    fn input(&self) -> Value {
        let from = self.start - chrono::TimeDelta::hours(1);
        let to = Utc::now() + chrono::TimeDelta::hours(1);
        json!({"from": from, "to": to})
    }
}

#[tokio::test]
async fn backfill_runs_through_its_state_machine_with_the_real_tasks() {
    let fx = Aggregates::with_retries().await;
    let truth = fx.truth().await;
    assert_ne!(Aggregates::snapshot_of(&fx.store).await, truth, "the stream counted the retries again");
    let table = backfill_table(&fx.lake, fx.store.clone());

    let (outcome, letters) = run(&BACKFILL, &fx.lake, table.clone(), fx.input()).await;
    let Outcome::Succeeded(output) = outcome else { panic!("{outcome:?}") };
    assert!(letters.is_empty(), "{letters:?}");
    assert_eq!(output["job"], "backfill");
    let items = output["plan"]["count"].as_u64().unwrap();
    assert!(items >= 2, "{output}");
    assert!(output["plan"]["request"]["from"].is_string(), "the resolved request: {output}");
    assert_eq!(Aggregates::snapshot_of(&fx.store).await, truth, "exact after the backfill");
    assert!(fx.lake.list_objects(DONE_DIR).await.unwrap().is_empty(), "Finish removed the done records");

    // A dry run plans the same items and changes nothing; a second run changes nothing either.
    let mut dry = fx.input();
    dry["dry_run"] = json!(true);
    let (outcome, _) = run(&BACKFILL, &fx.lake, table.clone(), dry).await;
    assert!(matches!(&outcome, Outcome::Succeeded(o) if o["plan"]["count"] == items), "{outcome:?}");
    let (outcome, _) = run(&BACKFILL, &fx.lake, table, fx.input()).await;
    assert!(matches!(&outcome, Outcome::Succeeded(_)), "{outcome:?}");
    assert_eq!(Aggregates::snapshot_of(&fx.store).await, truth);
}

/// A backfill plan double writing `n` items; the request it resolves.
fn backfill_plan_of(
    lake: &Lake,
    n: i64,
    dry_run: bool,
) -> impl Fn(Value) -> futures::future::BoxFuture<'static, Result<Value, TaskError>> + use<> {
    let lake = lake.clone();
    move |input| {
        let lake = lake.clone();
        Box::pin(async move {
            let run_id = input["run_id"].as_str().unwrap().to_owned();
            let request = BackfillRequest {
                from: DateTime::from_timestamp(0, 0).unwrap(),
                to: DateTime::from_timestamp(n * 3600, 0).unwrap(),
                event_types: None,
            };
            let items: Vec<BackfillItem> = (0..n)
                .map(|h| BackfillItem {
                    request: request.id(),
                    event_type: "purchase".into(),
                    start: h * 3600,
                    end: (h + 1) * 3600,
                    windows: vec![("1h".into(), h * 3600)],
                })
                .collect();
            let location = tasks::write_plan(&lake, BACKFILL.name, &run_id, &items, dry_run).await?;
            Ok(serde_json::to_value(tasks::BackfillPlanLocation { location, request }).unwrap())
        })
    }
}

/// Backfill doubles: items starting at a second in `failing` fail; calls by task name.
fn backfill_doubles(
    lake: &Lake,
    failing: &'static [i64],
    finish: Result<(), &'static str>,
) -> (TaskTable, Arc<Mutex<Vec<String>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (item_calls, finish_calls) = (Arc::clone(&calls), Arc::clone(&calls));
    let table = real_tasks(lake)
        .with(PLAN_BACKFILL, backfill_plan_of(lake, 3, false))
        .with(BACKFILL_ITEM, move |item| {
            item_calls.lock().unwrap().push(BACKFILL_ITEM.to_owned());
            async move {
                let start = item["start"].as_i64().unwrap();
                if failing.contains(&start) {
                    return Err(TaskError::failed(format!("item {start} is unreadable")));
                }
                Ok(json!({"item": format!("purchase-{start}"), "windows": 1, "rows": 10}))
            }
        })
        .with(FINISH_BACKFILL, move |_| {
            finish_calls.lock().unwrap().push(FINISH_BACKFILL.to_owned());
            async move { finish.map(|()| json!({})).map_err(TaskError::transient) }
        });
    (table, calls)
}

#[tokio::test]
async fn backfill_doubles_reach_finish_and_done() {
    let lake = memory_lake();
    let (table, calls) = backfill_doubles(&lake, &[], Ok(()));
    let (outcome, letters) = run(&BACKFILL, &lake, table, json!({})).await;
    assert!(matches!(&outcome, Outcome::Succeeded(o) if o["plan"]["count"] == 3), "{outcome:?}");
    assert!(letters.is_empty());
    assert_eq!(*calls.lock().unwrap(), [BACKFILL_ITEM, BACKFILL_ITEM, BACKFILL_ITEM, FINISH_BACKFILL]);

    let lake = memory_lake();
    let (table, calls) = backfill_doubles(&lake, &[], Ok(()));
    let table = table.with(PLAN_BACKFILL, backfill_plan_of(&lake, 3, true));
    let (outcome, _) = run(&BACKFILL, &lake, table, json!({"dry_run": true})).await;
    assert!(matches!(&outcome, Outcome::Succeeded(o) if o["plan"]["dry_run"] == true), "{outcome:?}");
    assert!(calls.lock().unwrap().is_empty(), "a dry run backfills nothing");
}

#[tokio::test]
async fn a_failed_backfill_item_fails_the_execution_and_keeps_the_done_records() {
    let lake = memory_lake();
    let (table, calls) = backfill_doubles(&lake, &[3600], Ok(()));
    let (outcome, letters) = run(&BACKFILL, &lake, table, json!({})).await;
    assert!(matches!(&outcome, Outcome::Failed(e) if e.error == "Sluice.BackfillFailed"), "{outcome:?}");
    assert!(!calls.lock().unwrap().contains(&FINISH_BACKFILL.to_owned()), "no Finish: a rerun resumes");
    let bodies: Vec<Value> = letters.iter().map(body).collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!((bodies[0]["state"].as_str(), bodies[0]["input"]["start"].as_i64()), (Some("BackfillItem"), Some(3600)));
    assert_eq!(bodies[1]["input"]["error"]["Error"], "States.ExceedToleratedFailureThreshold", "none tolerated");
}

#[tokio::test(start_paused = true)]
async fn a_failing_finish_or_plan_fails_the_backfill_into_the_dead_letters() {
    let lake = memory_lake();
    let (table, calls) = backfill_doubles(&lake, &[], Err("store busy"));
    let (outcome, letters) = run(&BACKFILL, &lake, table, json!({})).await;
    assert!(matches!(&outcome, Outcome::Failed(e) if e.error == "Sluice.BackfillFailed"), "{outcome:?}");
    assert_eq!(calls.lock().unwrap().iter().filter(|c| *c == FINISH_BACKFILL).count(), 4, "retried three times");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, "backfill: Sluice.Transient: store busy");

    let (table, _) = backfill_doubles(&lake, &[], Ok(()));
    let table = table.with(PLAN_BACKFILL, |_| async { Err(TaskError::invalid_input("from is after to")) });
    let (outcome, letters) = run(&BACKFILL, &lake, table, json!({})).await;
    assert!(matches!(&outcome, Outcome::Failed(e) if e.error == "Sluice.BackfillFailed"), "{outcome:?}");
    assert_eq!(letters[0].reason, "backfill: Sluice.InvalidInput: from is after to");
}

/// moto's Step Functions, driven by `moto_stepfunctions.py` with the test venv's Python.
struct MotoStepFunctions {
    python: String,
    bucket: String,
    queue_url: String,
}

const MOTO_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/moto_stepfunctions.py");
/// The jobs function's ARN on moto (its Lambda answers without code: queued results or an echo).
const MOTO_FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:sluice-jobs";

impl MotoStepFunctions {
    fn setup(test: &str) -> Option<Self> {
        sluice_testkit::moto::moto_endpoint()?;
        let python = sluice_testkit::python(test)?;
        let out = std::process::Command::new(&python).arg(MOTO_SCRIPT).arg("setup").output().unwrap();
        assert!(out.status.success(), "setup: {}", String::from_utf8_lossy(&out.stderr));
        let created: Value = serde_json::from_slice(&out.stdout).unwrap();
        Some(Self {
            python,
            bucket: created["bucket"].as_str().unwrap().to_owned(),
            queue_url: created["queue_url"].as_str().unwrap().to_owned(),
        })
    }

    /// The plan object's key of the execution `run-1` (the lake is the bucket's root).
    fn plan_key(definition: &Definition) -> String {
        tasks::plan_key(definition.name, "run-1").unwrap()
    }

    fn plan(&self, definition: &Definition, count: usize, dry_run: bool) -> Value {
        json!({"Bucket": self.bucket, "Key": Self::plan_key(definition), "count": count, "dry_run": dry_run})
    }

    /// Creates `definition` (substitutions filled in for moto) and runs it on `input` with the
    /// plan object holding `items`; the report of `moto_stepfunctions.py run`.
    fn run(&self, definition: &Definition, items: &Value, lambda_results: &[Value], input: Value) -> Value {
        let substitutions: BTreeMap<String, String> = [
            ("JobsFunctionArn", MOTO_FUNCTION),
            ("LakeBucket", self.bucket.as_str()),
            ("JobsDeadLetterQueueUrl", self.queue_url.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        definition.load(&substitutions).unwrap();
        let request = json!({
            "bucket": self.bucket,
            "queue_url": self.queue_url,
            "name": sluice_testkit::moto::unique_name(definition.name),
            "definition": asl::substitute(definition.text, &substitutions).unwrap(),
            "plan_key": Self::plan_key(definition),
            "items": items,
            "lambda_results": lambda_results,
            "input": input,
        });
        let mut child = std::process::Command::new(&self.python)
            .arg(MOTO_SCRIPT)
            .arg("run")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), request.to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "run: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn states(report: &Value) -> Vec<&str> {
    report["states"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect()
}

/// Both state machines on moto, one after the other: moto's queue of Lambda results is one per
/// server, so two executions at once would take each other's answers.
#[test]
fn the_state_machines_on_moto_step_functions() {
    let Some(moto) = MotoStepFunctions::setup("the_state_machines_on_moto_step_functions") else { return };
    compaction_on_moto(&moto);
    backfill_on_moto(&moto);
}

/// The compaction state machine on moto's Step Functions, as far as moto runs it: the plan
/// task, the Choice, the distributed map reading its items from S3 and running the item
/// processor per item (MaxConcurrency and ToleratedFailurePercentage recorded in the map run),
/// the per-item Catch and the execution's Catch sending to SQS, the Fail state. moto's Lambda
/// runs no code: it answers queued results, or echoes the payload, which the ResultSelectors
/// reject with States.Runtime; moto's States.ALL catches that (AWS's does not), so an echo
/// drives the Catch paths. moto does not fail a map past its ToleratedFailurePercentage (the
/// executor tests cover that path).
fn compaction_on_moto(moto: &MotoStepFunctions) {
    let items: Vec<Value> = (0..3u8)
        .map(|hour| {
            serde_json::to_value(CompactionItem {
                event_type: "page_view".into(),
                dt: "2024-05-01".into(),
                hour,
                files: 2,
                bytes: 10,
            })
            .unwrap()
        })
        .collect();
    let items = json!(items);
    let compacted = |hour: u8| {
        json!({"partition": format!("events/event_type=page_view/dt=2024-05-01/hour={hour:02}"),
               "inputs": 2, "rows_in": 4, "rows_out": 3, "bytes_in": 10, "bytes_out": 5})
    };

    // Success: the plan, the map over the three items read from S3, Done.
    let mut answers = vec![moto.plan(&COMPACTION, 3, false)];
    answers.extend((0..3).map(compacted));
    let report = moto.run(&COMPACTION, &items, &answers, json!({}));
    assert_eq!(report["status"], "SUCCEEDED", "{report}");
    assert_eq!(states(&report), ["Plan", "WhatToDo", "CompactPartitions", "Done"]);
    assert_eq!(report["output"], json!({"job": "compaction", "plan": moto.plan(&COMPACTION, 3, false)}));
    let run = &report["map_runs"][0];
    assert_eq!((run["max_concurrency"].clone(), run["tolerated_failure_percentage"].clone()), (json!(8), json!(10.0)));
    assert_eq!((run["items"]["total"].clone(), run["items"]["succeeded"].clone()), (json!(3), json!(3)), "{run}");
    assert_eq!(report["dead_letters"], json!([]));

    // A dry run, and nothing to compact: the Choice ends the execution after the plan.
    for plan in [moto.plan(&COMPACTION, 3, true), moto.plan(&COMPACTION, 0, false)] {
        let report = moto.run(&COMPACTION, &items, std::slice::from_ref(&plan), json!({"dry_run": true}));
        assert_eq!(report["status"], "SUCCEEDED", "{report}");
        assert_eq!(states(&report), ["Plan", "WhatToDo", "Done"], "{plan}");
        assert_eq!(report["map_runs"], json!([]));
    }

    // Every item fails: each is caught and sent to the dead-letter queue with its item.
    let report = moto.run(&COMPACTION, &items, &[moto.plan(&COMPACTION, 3, false)], json!({}));
    let run = &report["map_runs"][0];
    assert_eq!(run["items"]["failed"], 3, "{report}");
    let letters = report["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 3, "{report}");
    let mut hours: Vec<u64> = letters.iter().map(|l| l["input"]["hour"].as_u64().unwrap()).collect();
    hours.sort_unstable();
    assert_eq!(hours, [0, 1, 2]);
    assert!(letters.iter().all(|l| l["job"] == "compaction" && l["state"] == "CompactPartition"), "{report}");
    assert_eq!(report["status"], "SUCCEEDED", "moto does not apply ToleratedFailurePercentage: {report}");

    // The plan fails: caught, sent to the dead-letter queue, the execution fails.
    let report = moto.run(&COMPACTION, &items, &[], json!({}));
    assert_eq!(
        (report["status"].as_str(), report["error"].as_str()),
        (Some("FAILED"), Some("Sluice.CompactionFailed")),
        "{report}"
    );
    assert_eq!(states(&report), ["Plan", "ReportFailure", "Failed"]);
    let letters = report["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{report}");
    assert_eq!(letters[0]["job"], "compaction");
    assert!(letters[0]["input"]["error"]["Error"].is_string(), "{report}");
}

/// The backfill state machine on moto's Step Functions, as far as moto runs it (see
/// [`compaction_on_moto`]): plan, Choice, the distributed map over the S3 plan, Finish, Done; the dry
/// run and the empty plan; every item caught into the dead-letter queue (moto then goes on to
/// Finish: it does not fail a map past ToleratedFailurePercentage 0, AWS does); a failed plan.
fn backfill_on_moto(moto: &MotoStepFunctions) {
    let request = json!({"from": "2024-05-01T00:00:00Z", "to": "2024-05-02T00:00:00Z"});
    let items: Vec<Value> = (0..3i64)
        .map(|h| {
            json!({"request": "r", "event_type": "purchase", "start": h * 3600, "end": (h + 1) * 3600,
                   "windows": [["1h", h * 3600]]})
        })
        .collect();
    let items = json!(items);
    let plan = |count: usize, dry_run: bool| {
        let mut plan = moto.plan(&BACKFILL, count, dry_run);
        plan["request"] = request.clone();
        plan
    };
    let backfilled = |h: i64| json!({"item": format!("purchase-{h}"), "windows": 1, "rows": 10});

    let mut answers = vec![plan(3, false)];
    answers.extend((0..3).map(backfilled));
    let report = moto.run(&BACKFILL, &items, &answers, json!({}));
    assert_eq!(report["status"], "SUCCEEDED", "{report}");
    assert_eq!(states(&report), ["Plan", "WhatToDo", "BackfillItems", "Finish", "Done"]);
    let run = &report["map_runs"][0];
    assert_eq!((run["max_concurrency"].clone(), run["tolerated_failure_percentage"].clone()), (json!(4), json!(0.0)));
    assert_eq!(run["items"]["succeeded"], 3, "{run}");
    assert_eq!(report["output"]["plan"]["request"], request);
    assert_eq!(report["dead_letters"], json!([]));

    let report = moto.run(&BACKFILL, &items, &[plan(3, true)], json!({"dry_run": true}));
    assert_eq!(states(&report), ["Plan", "WhatToDo", "Done"], "{report}");
    let report = moto.run(&BACKFILL, &items, &[plan(0, false)], json!({}));
    assert_eq!(states(&report), ["Plan", "WhatToDo", "Finish", "Done"], "an empty plan still finishes: {report}");

    let report = moto.run(&BACKFILL, &items, &[plan(3, false)], json!({}));
    let letters = report["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 3, "{report}");
    assert!(letters.iter().all(|l| l["job"] == "backfill" && l["state"] == "BackfillItem"), "{report}");
    assert_eq!(report["map_runs"][0]["items"]["failed"], 3, "{report}");
    assert_eq!(
        states(&report),
        ["Plan", "WhatToDo", "BackfillItems", "Finish", "Done"],
        "moto's map does not fail: {report}"
    );

    let report = moto.run(&BACKFILL, &items, &[], json!({}));
    assert_eq!(
        (report["status"].as_str(), report["error"].as_str()),
        (Some("FAILED"), Some("Sluice.BackfillFailed")),
        "{report}"
    );
    assert_eq!(states(&report), ["Plan", "ReportFailure", "Failed"]);
    assert_eq!(report["dead_letters"].as_array().unwrap().len(), 1, "{report}");
}

/// `sluice up`'s jobs dead letters: the SQLite store keeps a caught failure with source `jobs`
/// and the message body as its data.
#[tokio::test]
async fn a_local_failure_lands_in_the_sqlite_dead_letter_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = sluice_dlq::SqliteDeadLetters::open(&dir.path().join("jobs_dead_letters.db")).unwrap();
    let lake = memory_lake();
    let table = real_tasks(&lake).with(PLAN_COMPACTION, |_| async { Err(TaskError::failed("no such table")) });
    let machine = local::load(&COMPACTION, &lake).unwrap();
    let outcome =
        local::executor(table, lake.clone(), store.clone()).run(&machine, &execution("compaction"), json!({})).await;
    assert!(matches!(&outcome, Outcome::Failed(e) if e.error == "Sluice.CompactionFailed"), "{outcome:?}");
    let stored = store.list(0, 10).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].letter.source, "jobs");
    assert_eq!(stored[0].letter.reason, "compaction: Sluice.JobFailed: no such table");
    assert_eq!(body(&stored[0].letter)["input"]["error"]["Cause"], "no such table");
}
