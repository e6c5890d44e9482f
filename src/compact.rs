//! `sluice compact`, and the progress lines of every compaction run (also `sluice up`'s): on a
//! terminal one status line rewritten per partition, otherwise a line per partition. Both run
//! the compaction state machine (`jobs/statemachines/compaction.asl.json`) through the
//! in-process executor, as Step Functions runs it in AWS.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use sluice_jobs::compaction::{CompactionReport, Compactor, PartitionOutcome};
use sluice_jobs::orchestration::tasks::{
    self, COMPACT_PARTITION, CompactedPartition, CompactionItem, CompactionRequest, Jobs, PLAN_COMPACTION, PlanLocation,
};
use sluice_jobs::orchestration::{COMPACTION, Event, Outcome};
use sluice_lake::Lake;
use sluice_sinks::LakeTables;

use crate::cli::CompactArgs;
use crate::jobs::{self, JOBS_DEAD_LETTERS, JobRun, Seen};
use crate::lake::lake_of;
use crate::output;
use crate::up::load_registry;

/// Plans, and unless `--dry-run` compacts, the lake's closed partitions; prints the plan or a
/// summary on stdout and one progress line per partition on stderr.
pub async fn run(args: &CompactArgs) -> anyhow::Result<()> {
    let registry = Arc::new(load_registry(args.schemas_dir.as_deref())?);
    let lake = lake_of(args.lake.as_deref(), &args.data_dir)?;
    let compactor = Compactor::new(lake.clone(), LakeTables::new(registry), args.config());
    let request = CompactionRequest { event_type: args.event_type.clone(), dry_run: args.dry_run };
    let started = Instant::now();
    let progress = output::Progress::stderr();
    let on_partition = move |outcome: &PartitionOutcome, done: usize, total: usize| {
        progress.show(&partition_line(outcome, done, total, started), done, total);
    };
    let run = run_state_machine(&lake, compactor, &args.data_dir, &request, on_partition).await?;
    if args.dry_run {
        let items: Vec<CompactionItem> = match &run.plan {
            Some(plan) => tasks::read_plan(&lake, plan).await.context("cannot read the plan")?,
            None => Vec::new(),
        };
        run.remove_plan(&lake).await;
        let mut out = String::new();
        for item in &items {
            let dir = item.partition().map_err(anyhow::Error::msg)?.dir();
            out.push_str(&format!("{dir}: {} files, {}\n", item.files, human_bytes(item.bytes)));
        }
        out.push_str(&format!("{} partitions to compact (dry run: nothing changed)\n", items.len()));
        return Ok(output::print(&out)?);
    }
    run.remove_plan(&lake).await;
    let failed = run.check();
    output::print(&format!("{}\n", summary(&run.report, started)))?;
    failed
}

/// What one execution of the compaction state machine did.
pub type CompactionRun = JobRun<PlanLocation, CompactionReport>;

impl CompactionRun {
    /// `Err` when the execution failed or a partition failed (it stays eligible; the failure
    /// is in the jobs dead letters).
    pub fn check(&self) -> anyhow::Result<()> {
        let first = self.first_failure();
        match &self.outcome {
            Outcome::Failed(e) => anyhow::bail!("lake compaction failed ({e}){first}"),
            Outcome::Succeeded(_) if !self.failures.is_empty() => anyhow::bail!(
                "{} partitions were not compacted (kept in {JOBS_DEAD_LETTERS}; they stay eligible){first}",
                self.failures.len()
            ),
            Outcome::Succeeded(_) => Ok(()),
        }
    }
}

/// Runs the compaction state machine once over `lake` with `compactor`'s tasks
/// ([`jobs::run`]). `on_partition` sees each compacted partition with the count done and the
/// total.
pub async fn run_state_machine(
    lake: &Lake,
    compactor: Compactor,
    data_dir: &Path,
    request: &CompactionRequest,
    on_partition: impl Fn(&PartitionOutcome, usize, usize) + Send + Sync + 'static,
) -> anyhow::Result<CompactionRun> {
    let table = tasks::compaction_tasks(Jobs { lake: lake.clone(), compactor });
    let input = serde_json::to_value(request).context("compaction request")?;
    jobs::run(
        &COMPACTION,
        table,
        lake,
        data_dir,
        input,
        move |event, seen: &mut Seen<PlanLocation, CompactionReport>| match event {
            Event::TaskSucceeded { task: Some(PLAN_COMPACTION), result, .. } => {
                seen.plan = serde_json::from_value(result["Payload"].clone()).ok();
            }
            Event::TaskSucceeded { task: Some(COMPACT_PARTITION), result, .. } => {
                let parsed = serde_json::from_value::<CompactedPartition>(result["Payload"].clone());
                match parsed.map_err(|e| e.to_string()).and_then(|p| p.outcome().map_err(|e| e.to_string())) {
                    Ok(outcome) => {
                        let total = seen.plan.as_ref().map_or(0, |p| p.count);
                        on_partition(&outcome, seen.report.partitions.len() + 1, total);
                        seen.report.partitions.push(outcome);
                    }
                    Err(e) => tracing::warn!(error = %e, "unexpected compact-partition result"),
                }
            }
            _ => {}
        },
    )
    .await
}

/// Logs one compacted partition (for `sluice up`'s scheduled runs).
pub fn log_partition(outcome: &PartitionOutcome, done: usize, total: usize, started: Instant) {
    tracing::info!(progress = %partition_line(outcome, done, total, started), "partition compacted");
}

/// Logs a finished compaction run.
pub fn log_report(report: &CompactionReport, started: Instant) {
    tracing::info!(summary = %summary(report, started), "lake compaction finished");
}

/// `[3/24] events/.../hour=10: 12 files -> 1, 1250 -> 1200 rows, 120.0 KiB -> 80.5 KiB (1.2 s)`
fn partition_line(o: &PartitionOutcome, done: usize, total: usize, started: Instant) -> String {
    format!(
        "[{done}/{total}] {}: {} files -> {}, {} -> {} rows, {} -> {} ({:.1} s)",
        o.partition.dir(),
        o.inputs,
        o.outputs.len(),
        o.rows_in,
        o.rows_out,
        human_bytes(o.bytes_in),
        human_bytes(o.bytes_out),
        started.elapsed().as_secs_f64()
    )
}

fn summary(report: &CompactionReport, started: Instant) -> String {
    let sum = |f: fn(&PartitionOutcome) -> u64| report.partitions.iter().map(f).sum::<u64>();
    format!(
        "compacted {} partitions: {} files -> {}, {} -> {} rows ({} duplicates removed), {} -> {} in {:.1} s",
        report.partitions.len(),
        sum(|p| p.inputs as u64),
        sum(|p| p.outputs.len() as u64),
        sum(|p| p.rows_in as u64),
        sum(|p| p.rows_out as u64),
        report.duplicates_removed(),
        human_bytes(sum(|p| p.bytes_in)),
        human_bytes(sum(|p| p.bytes_out)),
        started.elapsed().as_secs_f64()
    )
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
