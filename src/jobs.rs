//! One execution of a job's state machine on this machine, as `sluice compact`, `sluice
//! backfill` and `sluice up`'s schedules run them: the definition through the in-process
//! executor with the job's task table, one item at a time (so `--memory-budget` bounds the
//! process), failures to the jobs dead letters under the data dir.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use serde_json::Value;
use sluice_jobs::orchestration::{Definition, Event, Execution, Outcome, TaskTable, local, tasks};
use sluice_lake::Lake;

/// The jobs' dead-letter store under the data directory (the local jobs dead-letter queue).
pub const JOBS_DEAD_LETTERS: &str = "jobs_dead_letters.db";

/// What one execution did: the plan's location `P` and the job's report `R`, as the job's
/// observer collected them from the task results.
#[derive(Debug)]
pub struct JobRun<P, R> {
    pub definition: &'static Definition,
    /// The execution (its name is the plan's run id).
    pub execution: Execution,
    pub outcome: Outcome,
    /// Where the plan was written (`None` when planning failed).
    pub plan: Option<P>,
    pub report: R,
    /// The final failures of tasks (after their retries), as `state: error`.
    pub failures: Vec<String>,
}

impl<P, R> JobRun<P, R> {
    /// `: <the first failure>`, or nothing (for error messages).
    pub fn first_failure(&self) -> String {
        self.failures.first().map_or(String::new(), |f| format!(": {f}"))
    }

    /// Deletes the plan object (a local run's plans are not kept).
    pub async fn remove_plan(&self, lake: &Lake) {
        let Ok(key) = tasks::plan_key(self.definition.name, &self.execution.name) else { return };
        if let Err(e) = lake.delete(&key).await {
            tracing::warn!(error = %e, key, job = self.definition.name, "cannot remove the plan");
        }
    }
}

/// What a job's observer collects while the execution runs.
#[derive(Debug, Default)]
pub struct Seen<P, R> {
    pub plan: Option<P>,
    pub report: R,
}

/// Runs `definition` once over `lake` with `table` on `input`; `see` gets every task event
/// with what it has collected so far. The plan object stays (see [`JobRun::remove_plan`]).
pub async fn run<P, R>(
    definition: &'static Definition,
    table: TaskTable,
    lake: &Lake,
    data_dir: &Path,
    input: Value,
    see: impl Fn(&Event<'_>, &mut Seen<P, R>) + Send + Sync + 'static,
) -> anyhow::Result<JobRun<P, R>>
where
    P: Send + 'static,
    R: Default + Send + 'static,
{
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let dead_letters = sluice_dlq::SqliteDeadLetters::open(&data_dir.join(JOBS_DEAD_LETTERS))
        .context("cannot open the jobs dead letters")?;
    let machine = local::load(definition, lake).with_context(|| format!("the {} state machine", definition.name))?;
    let seen = Arc::new(Mutex::new((Seen { plan: None, report: R::default() }, Vec::new())));
    let observed = Arc::clone(&seen);
    let executor =
        local::executor(table, lake.clone(), dead_letters).with_max_concurrency(1).with_observer(move |event| {
            let mut guard = observed.lock().unwrap_or_else(PoisonError::into_inner);
            let (seen, failures) = &mut *guard;
            if let Event::TaskFailed { state, error, retry_in: None, .. } = event {
                failures.push(format!("{state}: {error}"));
            }
            see(event, seen);
        });
    let execution = Execution::new(definition.name);
    let outcome = executor.run(&machine, &execution, input).await;
    let (seen, failures) = std::mem::replace(
        &mut *seen.lock().unwrap_or_else(PoisonError::into_inner),
        (Seen { plan: None, report: R::default() }, Vec::new()),
    );
    Ok(JobRun { definition, execution, outcome, plan: seen.plan, report: seen.report, failures })
}
