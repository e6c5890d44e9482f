//! The task functions of the jobs' state machines, in one [`TaskTable`] ([`table`]): what the
//! jobs Lambda dispatches on and what the local executor calls.
//!
//! | task | input | output |
//! |---|---|---|
//! | `plan-compaction` | [`PlanInput`] | [`PlanLocation`]; the plan: [`CompactionItem`]s |
//! | `compact-partition` | [`CompactionItem`] | [`CompactedPartition`] |
//! | `plan-backfill` | [`PlanInput`] | [`BackfillPlanLocation`]; the plan: [`BackfillItem`]s |
//! | `backfill-item` | [`BackfillItem`] | [`ItemReport`] |
//! | `finish-backfill` | [`BackfillRequest`] | `{}` |
//!
//! A plan is written to the lake at `_sluice/plans/<job>/<run id>.json` ([`plan_key`]) as a JSON
//! array, and a distributed map reads it from there: a Lambda result is capped at 256 KB.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_aggregators::store::AggregateStore;
use sluice_lake::layout::Partition;
use sluice_lake::{Lake, LakeError};

use super::{TaskError, TaskTable, task_input, task_output};
use crate::backfill::{BackfillError, BackfillItem, BackfillRequest, Backfiller};
use crate::compaction::plan::is_clean;
use crate::compaction::{CompactionError, CompactionTask, Compactor, PartitionOutcome};

/// Task names.
pub const PLAN_COMPACTION: &str = "plan-compaction";
pub const COMPACT_PARTITION: &str = "compact-partition";
pub const PLAN_BACKFILL: &str = "plan-backfill";
pub const BACKFILL_ITEM: &str = "backfill-item";
pub const FINISH_BACKFILL: &str = "finish-backfill";

/// Where plans are written, under the lake root (outside `events/`, so no table sees them).
pub const PLANS_DIR: &str = "_sluice/plans";

/// What the task functions work on.
#[derive(Debug, Clone)]
pub struct Jobs {
    /// The lake (plans are written to it, compaction rewrites its partitions).
    pub lake: Lake,
    pub compactor: Compactor,
}

/// The one table of task functions: compaction's over `jobs`, backfill's over `backfiller`
/// (what the jobs Lambda dispatches on).
pub fn table<S: AggregateStore>(jobs: Jobs, backfiller: Arc<Backfiller<S>>) -> TaskTable {
    let lake = jobs.lake.clone();
    backfill_tasks(compaction_tasks(jobs), lake, backfiller)
}

/// `table` with the backfill task functions over `backfiller` added; plans go to `lake`.
pub fn backfill_tasks<S: AggregateStore>(table: TaskTable, lake: Lake, backfiller: Arc<Backfiller<S>>) -> TaskTable {
    let (plan, item, finish) = (Arc::clone(&backfiller), Arc::clone(&backfiller), backfiller);
    table
        .with(PLAN_BACKFILL, move |input| {
            let (lake, backfiller) = (lake.clone(), Arc::clone(&plan));
            async move { plan_backfill(&lake, &backfiller, task_input(PLAN_BACKFILL, input)?).await }
        })
        .with(BACKFILL_ITEM, move |input| {
            let backfiller = Arc::clone(&item);
            async move {
                let item: BackfillItem = task_input(BACKFILL_ITEM, input)?;
                let report = backfiller.backfill_item(&item).await.map_err(backfill_error)?;
                task_output(&report)
            }
        })
        .with(FINISH_BACKFILL, move |input| {
            let backfiller = Arc::clone(&finish);
            async move {
                let request: BackfillRequest = task_input(FINISH_BACKFILL, input)?;
                backfiller.finish(&request).await.map_err(backfill_error)?;
                Ok(json!({}))
            }
        })
}

/// The compaction task functions over `jobs`.
pub fn compaction_tasks(jobs: Jobs) -> TaskTable {
    let plan = jobs.clone();
    let compact = jobs;
    TaskTable::new()
        .with(PLAN_COMPACTION, move |input| {
            let jobs = plan.clone();
            async move { plan_compaction(&jobs, task_input(PLAN_COMPACTION, input)?).await }
        })
        .with(COMPACT_PARTITION, move |input| {
            let jobs = compact.clone();
            async move { task_output(&compact_partition(&jobs, task_input(COMPACT_PARTITION, input)?).await?) }
        })
}

/// A plan task's input, as the definitions build it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// The execution's input.
    pub request: Value,
    /// The execution's name: the plan object's name.
    pub run_id: String,
    /// The execution's start time (RFC 3339): the time the plan is made at.
    pub now: String,
}

/// The input of a compaction execution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactionRequest {
    /// Only this event type's partitions.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Plan only: the execution ends after writing the plan.
    #[serde(default)]
    pub dry_run: bool,
}

/// Where a plan task wrote its plan (its output; the map's `ItemReader` reads `Key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanLocation {
    /// The lake's bucket ([`lake_bucket`]).
    #[serde(rename = "Bucket")]
    pub bucket: String,
    /// The object's key in the store (the lake's root prefix included).
    #[serde(rename = "Key")]
    pub key: String,
    /// Items in the plan.
    pub count: usize,
    pub dry_run: bool,
}

/// One partition of a compaction plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactionItem {
    pub event_type: String,
    /// `YYYY-MM-DD`.
    pub dt: String,
    pub hour: u8,
    /// Files and bytes at planning time.
    pub files: usize,
    pub bytes: u64,
}

impl CompactionItem {
    /// The partition it names.
    pub fn partition(&self) -> Result<Partition, TaskError> {
        partition(&self.event_type, &self.dt, self.hour)
    }
}

/// What compacting one partition did (`compact-partition`'s output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactedPartition {
    /// The partition directory, `events/event_type=<t>/dt=<d>/hour=<h>`.
    pub partition: String,
    pub event_type: String,
    pub dt: String,
    pub hour: u8,
    pub inputs: usize,
    pub bytes_in: u64,
    pub rows_in: usize,
    pub outputs: Vec<String>,
    pub bytes_out: u64,
    pub rows_out: usize,
    pub spilled_runs: usize,
}

impl CompactedPartition {
    fn of(outcome: &PartitionOutcome) -> Self {
        let p = &outcome.partition;
        Self {
            partition: p.dir(),
            event_type: p.event_type.clone(),
            dt: p.dt_string(),
            hour: p.hour,
            inputs: outcome.inputs,
            bytes_in: outcome.bytes_in,
            rows_in: outcome.rows_in,
            outputs: outcome.outputs.clone(),
            bytes_out: outcome.bytes_out,
            rows_out: outcome.rows_out,
            spilled_runs: outcome.spilled_runs,
        }
    }

    /// The outcome this output describes (for progress lines and summaries).
    pub fn outcome(&self) -> Result<PartitionOutcome, TaskError> {
        Ok(PartitionOutcome {
            partition: partition(&self.event_type, &self.dt, self.hour)?,
            inputs: self.inputs,
            bytes_in: self.bytes_in,
            rows_in: self.rows_in,
            outputs: self.outputs.clone(),
            bytes_out: self.bytes_out,
            rows_out: self.rows_out,
            spilled_runs: self.spilled_runs,
        })
    }
}

fn partition(event_type: &str, dt: &str, hour: u8) -> Result<Partition, TaskError> {
    sluice_lake::layout::check_event_type(event_type).map_err(TaskError::invalid_input)?;
    let dt = NaiveDate::parse_from_str(dt, "%Y-%m-%d")
        .map_err(|e| TaskError::invalid_input(format!("dt {dt:?} is not YYYY-MM-DD: {e}")))?;
    if hour > 23 {
        return Err(TaskError::invalid_input(format!("hour {hour} is not 0-23")));
    }
    Ok(Partition { event_type: event_type.to_owned(), dt, hour })
}

/// The bucket name of `lake` (its URL's host; `local` for a lake on disk or in memory): the
/// definitions' `${LakeBucket}`.
pub fn lake_bucket(lake: &Lake) -> String {
    match lake.url().host_str() {
        Some(host) if !host.is_empty() => host.to_owned(),
        _ => "local".to_owned(),
    }
}

/// The lake-relative path of `job`'s plan for run `run_id`; a run id is `[A-Za-z0-9_.:-]{1,80}`
/// (execution names of Step Functions, of its schedules and of the local executor are).
pub fn plan_key(job: &str, run_id: &str) -> Result<String, TaskError> {
    let valid = !run_id.is_empty()
        && run_id.len() <= 80
        && run_id != "."
        && run_id != ".."
        && run_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if !valid {
        return Err(TaskError::invalid_input(format!("run id {run_id:?} is not [A-Za-z0-9_.:-]{{1,80}}")));
    }
    Ok(format!("{PLANS_DIR}/{job}/{run_id}.json"))
}

/// Writes `items` as `job`'s plan for `run_id`; where it is.
pub async fn write_plan<T: Serialize>(
    lake: &Lake,
    job: &str,
    run_id: &str,
    items: &[T],
    dry_run: bool,
) -> Result<PlanLocation, TaskError> {
    let relative = plan_key(job, run_id)?;
    let body = serde_json::to_vec(items).map_err(|e| TaskError::failed(format!("plan: {e}")))?;
    lake.put(&relative, body.into()).await.map_err(lake_error)?;
    Ok(PlanLocation {
        bucket: lake_bucket(lake),
        key: lake.location(&relative).to_string(),
        count: items.len(),
        dry_run,
    })
}

/// Reads the plan at `location` (written by [`write_plan`] to `lake`).
pub async fn read_plan<T: serde::de::DeserializeOwned>(
    lake: &Lake,
    location: &PlanLocation,
) -> Result<Vec<T>, TaskError> {
    let relative = relative_key(lake, &location.bucket, &location.key)?;
    let bytes = lake.get(&relative).await.map_err(lake_error)?;
    serde_json::from_slice(&bytes).map_err(|e| TaskError::failed(format!("plan {}: {e}", location.key)))
}

/// The lake-relative path of store key `key` in `bucket`, if it is in `lake`.
pub fn relative_key(lake: &Lake, bucket: &str, key: &str) -> Result<String, TaskError> {
    let root = lake.root().to_string();
    let relative = if root.is_empty() { Some(key) } else { key.strip_prefix(&root).and_then(|k| k.strip_prefix('/')) };
    match relative {
        Some(relative) if bucket == lake_bucket(lake) && !relative.is_empty() => Ok(relative.to_owned()),
        _ => Err(TaskError::invalid_input(format!("s3://{bucket}/{key} is not in the lake {}", lake.url()))),
    }
}

fn lake_error(e: LakeError) -> TaskError {
    match e {
        LakeError::Store(_) => TaskError::transient(e),
        LakeError::InvalidUrl { .. } | LakeError::Corrupt { .. } => TaskError::failed(e),
    }
}

fn compaction_error(e: CompactionError) -> TaskError {
    match e {
        CompactionError::Lake(e) => lake_error(e),
        CompactionError::Spill(_) | CompactionError::Interrupted(_) => TaskError::transient(e),
        e => TaskError::failed(e),
    }
}

fn parse_now(now: &str) -> Result<DateTime<Utc>, TaskError> {
    DateTime::parse_from_rfc3339(now)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| TaskError::invalid_input(format!("now {now:?} is not RFC 3339: {e}")))
}

/// `plan-compaction`: removes stale scratch, plans the partitions to compact at `now` and writes
/// the plan.
pub async fn plan_compaction(jobs: &Jobs, input: PlanInput) -> Result<Value, TaskError> {
    let request: CompactionRequest = task_input(PLAN_COMPACTION, input.request)?;
    let now = parse_now(&input.now)?;
    jobs.compactor.remove_stale_scratch(now).await.map_err(compaction_error)?;
    let tasks = jobs.compactor.plan(request.event_type.as_deref(), now).await.map_err(compaction_error)?;
    let items: Vec<CompactionItem> = tasks
        .iter()
        .map(|t| CompactionItem {
            event_type: t.partition.event_type.clone(),
            dt: t.partition.dt_string(),
            hour: t.partition.hour,
            files: t.inputs.len(),
            bytes: t.input_bytes(),
        })
        .collect();
    let location =
        write_plan(&jobs.lake, crate::orchestration::COMPACTION.name, &input.run_id, &items, request.dry_run).await?;
    tracing::info!(partitions = items.len(), key = %location.key, "compaction planned");
    task_output(&location)
}

/// `compact-partition`: compacts the partition's files as they are now (a partition another
/// run made clean meanwhile is left alone and reported with no inputs).
pub async fn compact_partition(jobs: &Jobs, item: CompactionItem) -> Result<CompactedPartition, TaskError> {
    let partition = item.partition()?;
    let inputs = jobs.lake.list_partition(&partition).await.map_err(lake_error)?;
    if inputs.is_empty() || is_clean(&inputs) {
        let outcome = PartitionOutcome {
            partition,
            inputs: 0,
            bytes_in: 0,
            rows_in: 0,
            outputs: Vec::new(),
            bytes_out: 0,
            rows_out: 0,
            spilled_runs: 0,
        };
        return Ok(CompactedPartition::of(&outcome));
    }
    let outcome = jobs.compactor.compact(&CompactionTask { partition, inputs }).await.map_err(compaction_error)?;
    Ok(CompactedPartition::of(&outcome))
}

/// The input of a backfill execution: a range (both ends or neither: then the previous UTC
/// day of the execution's start) and optional event types.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillExecutionRequest {
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Plan only: the execution ends after writing the plan.
    #[serde(default)]
    pub dry_run: bool,
}

impl BackfillExecutionRequest {
    /// The backfill request at `now`.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<BackfillRequest, TaskError> {
        let (from, to) = match (self.from, self.to) {
            (Some(from), Some(to)) if from < to => (from, to),
            (Some(from), Some(to)) => {
                return Err(TaskError::invalid_input(format!("from {from} is not before to {to}")));
            }
            (None, None) => {
                let today = now.date_naive().and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or(now);
                (today - TimeDelta::days(1), today)
            }
            _ => return Err(TaskError::invalid_input("give both from and to, or neither (the previous day)")),
        };
        Ok(BackfillRequest { from, to, event_types: self.event_types.clone() })
    }
}

/// `plan-backfill`'s output: where the plan is, and the resolved request (for `finish-backfill`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillPlanLocation {
    #[serde(flatten)]
    pub location: PlanLocation,
    pub request: BackfillRequest,
}

fn backfill_error(e: BackfillError) -> TaskError {
    if e.is_retryable() { TaskError::transient(e) } else { TaskError::failed(e) }
}

/// `plan-backfill`: the items of the request not done yet, written as the plan.
pub async fn plan_backfill<S: AggregateStore>(
    lake: &Lake,
    backfiller: &Backfiller<S>,
    input: PlanInput,
) -> Result<Value, TaskError> {
    let execution: BackfillExecutionRequest = task_input(PLAN_BACKFILL, input.request)?;
    let request = execution.resolve(parse_now(&input.now)?)?;
    let items = backfiller.plan(&request).await.map_err(backfill_error)?;
    let location =
        write_plan(lake, crate::orchestration::BACKFILL.name, &input.run_id, &items, execution.dry_run).await?;
    tracing::info!(items = items.len(), key = %location.key, request = %request.id(), "backfill planned");
    task_output(&BackfillPlanLocation { location, request })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backfill_defaults_to_the_previous_utc_day() {
        let now = DateTime::parse_from_rfc3339("2024-05-02T02:00:03Z").unwrap().to_utc();
        let day = BackfillExecutionRequest::default().resolve(now).unwrap();
        assert_eq!(
            (day.from.to_rfc3339(), day.to.to_rfc3339()),
            ("2024-05-01T00:00:00+00:00".into(), "2024-05-02T00:00:00+00:00".into())
        );
        let one_end = BackfillExecutionRequest { from: Some(now), ..Default::default() };
        assert_eq!(one_end.resolve(now).unwrap_err().error, TaskError::INVALID_INPUT);
        let backwards = BackfillExecutionRequest { from: Some(now), to: Some(now), ..Default::default() };
        assert_eq!(backwards.resolve(now).unwrap_err().error, TaskError::INVALID_INPUT);
        let typed: BackfillExecutionRequest = serde_json::from_value(
            json!({"from": "2024-05-01T10:00:00Z", "to": "2024-05-01T12:00:00Z", "event_types": ["purchase"]}),
        )
        .unwrap();
        let r = typed.resolve(now).unwrap();
        assert_eq!(
            (r.from.timestamp(), r.to.timestamp(), r.event_types),
            (1_714_557_600, 1_714_564_800, Some(vec!["purchase".into()]))
        );
    }

    #[test]
    fn plan_keys_are_safe_path_segments() {
        assert_eq!(plan_key("compaction", "01jabc").unwrap(), "_sluice/plans/compaction/01jabc.json");
        for bad in ["", "..", "a/b", "a b", "x\u{e9}"] {
            assert_eq!(plan_key("compaction", bad).unwrap_err().error, TaskError::INVALID_INPUT, "{bad:?}");
        }
    }

    #[test]
    fn keys_outside_the_lake_are_refused() {
        let lake = Lake::open("memory://", &sluice_aws::AwsSettings::default()).unwrap();
        assert_eq!(relative_key(&lake, "local", "_sluice/plans/c/x.json").unwrap(), "_sluice/plans/c/x.json");
        assert!(relative_key(&lake, "other", "_sluice/plans/c/x.json").is_err());
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap(), &sluice_aws::AwsSettings::default()).unwrap();
        let key = lake.location("_sluice/plans/c/x.json").to_string();
        assert_eq!(relative_key(&lake, "local", &key).unwrap(), "_sluice/plans/c/x.json");
        assert!(relative_key(&lake, "local", "elsewhere/x.json").is_err());
    }

    #[test]
    fn partitions_of_items_are_checked() {
        assert!(partition("page_view", "2024-05-01", 10).is_ok());
        for (t, dt, h) in
            [("Page View", "2024-05-01", 1), ("page_view", "2024-5-1x", 1), ("page_view", "2024-05-01", 24)]
        {
            assert_eq!(partition(t, dt, h).unwrap_err().error, TaskError::INVALID_INPUT, "{t} {dt} {h}");
        }
    }
}
