//! `sluice backfill`, and the progress lines of every backfill run (also `sluice up`'s): on a
//! terminal one status line rewritten per item, otherwise a line per item. Both run the
//! backfill state machine (`jobs/statemachines/backfill.asl.json`) through the in-process
//! executor, as Step Functions runs it in AWS.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use sluice_aggregators::SqliteAggregateStore;
use sluice_jobs::backfill::{BackfillItem, BackfillReport, Backfiller, ItemReport};
use sluice_jobs::orchestration::tasks::{
    self, BACKFILL_ITEM, BackfillExecutionRequest, BackfillPlanLocation, PLAN_BACKFILL,
};
use sluice_jobs::orchestration::{BACKFILL, Event, Outcome, TaskTable};
use sluice_lake::Lake;

use crate::cli::BackfillArgs;
use crate::jobs::{self, JobRun, Seen};
use crate::lake::lake_of;
use crate::output;
use crate::up::load_registry;

/// Plans, and unless `--dry-run` backfills, the range from the lake into `sluice up`'s
/// aggregate store; prints the plan or a summary on stdout and one progress line per item on
/// stderr.
pub async fn run(args: &BackfillArgs) -> anyhow::Result<()> {
    let request = args.request().map_err(anyhow::Error::msg)?;
    let registry = Arc::new(load_registry(args.schemas_dir.as_deref())?);
    let lake = lake_of(args.lake.as_deref(), &args.data_dir)?;
    let path = args.data_dir.join("aggregates.db");
    let store = SqliteAggregateStore::open(&path)
        .with_context(|| format!("cannot open the aggregate store {}", path.display()))?;
    let backfiller = Arc::new(Backfiller::new(lake.clone(), registry, store, args.window_config()));
    let started = Instant::now();
    let progress = output::Progress::stderr();
    let on_item = move |item: &ItemReport, done: usize, total: usize| {
        progress.show(&item_line(item, done, total, started), done, total);
    };
    let run = run_state_machine(&lake, backfiller, &args.data_dir, &request, on_item).await?;
    if request.dry_run {
        let items: Vec<BackfillItem> = match &run.plan {
            Some(plan) => tasks::read_plan(&lake, &plan.location).await.context("cannot read the plan")?,
            None => Vec::new(),
        };
        run.remove_plan(&lake).await;
        run.check()?;
        let mut out = String::new();
        for item in &items {
            out.push_str(&format!("{}: {} windows\n", item.id(), item.windows.len()));
        }
        out.push_str(&format!("{} items to backfill (dry run: nothing changed)\n", items.len()));
        return Ok(output::print(&out)?);
    }
    run.remove_plan(&lake).await;
    let failed = run.check();
    output::print(&format!("{}\n", summary(&run.report, started)))?;
    failed
}

/// What one execution of the backfill state machine did (the plan's location with the request
/// resolved).
pub type BackfillRun = JobRun<BackfillPlanLocation, BackfillReport>;

impl BackfillRun {
    /// `Err` when the execution failed (the items done are kept: a rerun of the range resumes).
    pub fn check(&self) -> anyhow::Result<()> {
        match &self.outcome {
            Outcome::Failed(e) => anyhow::bail!("backfill failed ({e}){}", self.first_failure()),
            Outcome::Succeeded(_) => Ok(()),
        }
    }
}

/// Runs the backfill state machine once over `lake` with `backfiller`'s tasks ([`jobs::run`]).
/// `on_item` sees each backfilled item with the count done and the total.
pub async fn run_state_machine(
    lake: &Lake,
    backfiller: Arc<Backfiller<SqliteAggregateStore>>,
    data_dir: &Path,
    request: &BackfillExecutionRequest,
    on_item: impl Fn(&ItemReport, usize, usize) + Send + Sync + 'static,
) -> anyhow::Result<BackfillRun> {
    let table = tasks::backfill_tasks(TaskTable::new(), lake.clone(), backfiller);
    let input = serde_json::to_value(request).context("backfill request")?;
    jobs::run(
        &BACKFILL,
        table,
        lake,
        data_dir,
        input,
        move |event, seen: &mut Seen<BackfillPlanLocation, BackfillReport>| match event {
            Event::TaskSucceeded { task: Some(PLAN_BACKFILL), result, .. } => {
                seen.plan = serde_json::from_value(result["Payload"].clone()).ok();
            }
            Event::TaskSucceeded { task: Some(BACKFILL_ITEM), result, .. } => {
                match serde_json::from_value::<ItemReport>(result["Payload"].clone()) {
                    Ok(report) => {
                        let total = seen.plan.as_ref().map_or(0, |p| p.location.count);
                        on_item(&report, seen.report.items.len() + 1, total);
                        seen.report.items.push(report);
                    }
                    Err(e) => tracing::warn!(error = %e, "unexpected backfill-item result"),
                }
            }
            _ => {}
        },
    )
    .await
}

/// Logs one backfilled item (for `sluice up`'s scheduled runs).
pub fn log_item(item: &ItemReport, done: usize, total: usize, started: Instant) {
    tracing::info!(progress = %item_line(item, done, total, started), "backfill item done");
}

/// Logs a finished backfill run.
pub fn log_report(report: &BackfillReport, started: Instant) {
    tracing::info!(summary = %summary(report, started), "backfill finished");
}

/// `[3/24] page_view-1764640800-1764644400: 61 windows, 244 shard windows, 9 files, 1250 rows (12 duplicates), 80 partials written (1.2 s)`
fn item_line(i: &ItemReport, done: usize, total: usize, started: Instant) -> String {
    format!(
        "[{done}/{total}] {}: {} windows, {} shard windows, {} files, {} rows ({} duplicates), {} partials written ({:.1} s)",
        i.item,
        i.windows,
        i.shard_windows,
        i.files,
        i.rows,
        i.duplicates,
        i.written,
        started.elapsed().as_secs_f64()
    )
}

fn summary(report: &BackfillReport, started: Instant) -> String {
    let sum = |f: fn(&ItemReport) -> usize| report.items.iter().map(f).sum::<usize>();
    let resumed =
        if report.resumed > 0 { format!(" ({} done by an earlier run)", report.resumed) } else { String::new() };
    let unreadable = match sum(|i| i.unreadable) {
        0 => String::new(),
        n => format!(", {n} unreadable rows left out (see the log)"),
    };
    format!(
        "backfilled {} items{resumed}: {} windows, {} rows read, {} duplicates left out, {} partials written, {} unchanged{unreadable} in {:.1} s",
        report.items.len(),
        sum(|i| i.windows),
        sum(|i| i.rows),
        sum(|i| i.duplicates),
        sum(|i| i.written),
        sum(|i| i.unchanged),
        started.elapsed().as_secs_f64()
    )
}
