//! The jobs' state machines and the in-process executor that runs them in `sluice up`.
//!
//! - [`COMPACTION`] and [`BACKFILL`]: the definitions (`jobs/statemachines/*.asl.json`, JSONPath
//!   ASL), deployed to Step Functions by template.yaml with the same
//!   `DefinitionSubstitutions` placeholders the local run fills in ([`local::substitutions`]).
//! - [`asl`] (pure): the strict parser of the ASL subset those files use.
//! - [`execute`]: the executor of that subset; its integrations (Lambda invoke, SQS send, S3
//!   read of a map's items) are a port, [`execute::Integrations`].
//! - [`tasks`]: the one table of task functions, by name (`plan-compaction`,
//!   `compact-partition`, ...). The jobs Lambda (`src/bin/jobs-lambda.rs`) dispatches on it, and
//!   so does the local executor ([`local`]), so `sluice up` runs exactly the orchestration AWS
//!   runs, through the same task code.
//!
//! A task is invoked with the payload `{"task": <name>, "input": <value>}` and answers a value,
//! or a [`TaskError`] whose ASL error name the definitions' `Retry`/`Catch` match
//! ([`TaskError::TRANSIENT`] is retried with backoff and jitter).

pub mod asl;
pub mod execute;
pub mod local;
pub mod tasks;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use asl::{AslError, StateMachine};
pub use execute::{Event, Execution, Executor, Integrations, Outcome};

/// One state machine definition shipped with the jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Definition {
    /// The job's name (`compaction`, `backfill`): the plan prefix `_sluice/plans/<name>/`.
    pub name: &'static str,
    /// Path in the repository (template.yaml's `DefinitionUri`).
    pub path: &'static str,
    /// The ASL text, with `${...}` placeholders.
    pub text: &'static str,
}

impl Definition {
    /// The definition with `substitutions` filled in, parsed and checked.
    pub fn load(&self, substitutions: &BTreeMap<String, String>) -> Result<StateMachine, AslError> {
        StateMachine::parse(&asl::substitute(self.text, substitutions)?)
    }
}

/// Lake compaction: plan, then one partition per child execution of a distributed map.
pub const COMPACTION: Definition = Definition {
    name: "compaction",
    path: "jobs/statemachines/compaction.asl.json",
    text: include_str!("../../statemachines/compaction.asl.json"),
};

/// Aggregate backfill: plan, then one item per child execution of a distributed map.
pub const BACKFILL: Definition = Definition {
    name: "backfill",
    path: "jobs/statemachines/backfill.asl.json",
    text: include_str!("../../statemachines/backfill.asl.json"),
};

/// Every definition.
pub const DEFINITIONS: &[Definition] = &[COMPACTION, BACKFILL];

/// The placeholders every definition uses (template.yaml's `DefinitionSubstitutions`).
pub const JOBS_FUNCTION_ARN: &str = "JobsFunctionArn";
pub const LAKE_BUCKET: &str = "LakeBucket";
pub const JOBS_DEAD_LETTER_QUEUE_URL: &str = "JobsDeadLetterQueueUrl";

/// A task's failure: an ASL error name (what `Retry` and `Catch` match) and a cause for humans.
/// The jobs Lambda reports it as the function error's `errorType` and `errorMessage`, which
/// Step Functions turns into the same error name and cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct TaskError {
    pub error: String,
    pub cause: String,
}

impl TaskError {
    /// Storage unavailable, a lost race: retried by the definitions with backoff and jitter.
    pub const TRANSIENT: &'static str = "Sluice.Transient";
    /// The task input is not what the task takes (a definition or caller bug): not retried.
    pub const INVALID_INPUT: &'static str = "Sluice.InvalidInput";
    /// The job cannot do this item (bad data, over budget): not retried, caught.
    pub const FAILED: &'static str = "Sluice.JobFailed";

    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self { error: error.into(), cause: cause.into() }
    }

    pub fn transient(cause: impl std::fmt::Display) -> Self {
        Self::new(Self::TRANSIENT, cause.to_string())
    }

    pub fn invalid_input(cause: impl std::fmt::Display) -> Self {
        Self::new(Self::INVALID_INPUT, cause.to_string())
    }

    pub fn failed(cause: impl std::fmt::Display) -> Self {
        Self::new(Self::FAILED, cause.to_string())
    }
}

/// The future a task function returns.
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<Value, TaskError>> + Send>>;
type TaskFn = Arc<dyn Fn(Value) -> TaskFuture + Send + Sync>;

/// Task functions by name. Cheap to clone (clones share the functions).
#[derive(Clone, Default)]
pub struct TaskTable {
    tasks: BTreeMap<String, TaskFn>,
}

impl std::fmt::Debug for TaskTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskTable").field("tasks", &self.tasks.keys().collect::<Vec<_>>()).finish()
    }
}

/// The payload of a jobs function invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invocation {
    /// The task function's name.
    pub task: String,
    /// Its input.
    #[serde(default)]
    pub input: Value,
}

impl TaskTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// The table with `function` registered as `name` (replacing one of that name: tests put
    /// doubles in place of real tasks this way).
    pub fn with<F, Fut>(mut self, name: &str, function: F) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, TaskError>> + Send + 'static,
    {
        let function: TaskFn = Arc::new(move |input| Box::pin(function(input)));
        self.tasks.insert(name.to_owned(), function);
        self
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tasks.keys().map(String::as_str)
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.tasks.contains_key(name)
    }

    /// Runs task `name` on `input`; an unknown name is [`TaskError::INVALID_INPUT`].
    pub async fn call(&self, name: &str, input: Value) -> Result<Value, TaskError> {
        match self.tasks.get(name) {
            Some(function) => function(input).await,
            None => Err(TaskError::invalid_input(format!(
                "no task function {name:?} (known: {})",
                self.names().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Runs the task an invocation payload (`{"task": <name>, "input": <value>}`) names: the
    /// jobs Lambda's one entry, and the local executor's.
    pub async fn dispatch(&self, payload: Value) -> Result<Value, TaskError> {
        let invocation: Invocation = serde_json::from_value(payload).map_err(|e| {
            TaskError::invalid_input(format!("a jobs invocation is {{\"task\": <name>, \"input\": <value>}}: {e}"))
        })?;
        let span = tracing::info_span!("task", task = %invocation.task);
        tracing::Instrument::instrument(self.call(&invocation.task, invocation.input), span).await
    }
}

/// Parses a task's input, strictly: a mismatch is [`TaskError::INVALID_INPUT`].
pub fn task_input<T: serde::de::DeserializeOwned>(task: &str, input: Value) -> Result<T, TaskError> {
    serde_json::from_value(input).map_err(|e| TaskError::invalid_input(format!("{task}: {e}")))
}

/// Serializes a task's output.
pub fn task_output<T: Serialize>(output: &T) -> Result<Value, TaskError> {
    serde_json::to_value(output).map_err(|e| TaskError::failed(format!("the task output is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn dispatch_runs_the_named_task_and_rejects_the_rest() {
        let table = TaskTable::new().with("echo", |input| async move { Ok(json!({"echo": input})) });
        assert_eq!(table.dispatch(json!({"task": "echo", "input": 1})).await, Ok(json!({"echo": 1})));
        let unknown = table.dispatch(json!({"task": "nope", "input": 1})).await.unwrap_err();
        assert_eq!(unknown.error, TaskError::INVALID_INPUT);
        assert!(unknown.cause.contains("echo"), "{unknown}");
        for bad in [json!({"input": 1}), json!({"task": "echo", "extra": 1}), json!("echo")] {
            assert_eq!(table.dispatch(bad.clone()).await.unwrap_err().error, TaskError::INVALID_INPUT, "{bad}");
        }
    }

    #[test]
    fn every_definition_parses_with_its_placeholders_filled() {
        for definition in DEFINITIONS {
            let names = asl::placeholders(definition.text);
            assert_eq!(names, [JOBS_DEAD_LETTER_QUEUE_URL, JOBS_FUNCTION_ARN, LAKE_BUCKET], "{}", definition.name);
            let subs = names.iter().map(|n| (n.clone(), format!("value-of-{n}"))).collect();
            definition.load(&subs).unwrap_or_else(|e| panic!("{}: {e}", definition.name));
        }
    }
}
