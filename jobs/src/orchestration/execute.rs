//! The executor of the [`super::asl`] subset: runs a parsed state machine on an input, as Step
//! Functions does, with the service integrations behind [`Integrations`].
//!
//! Semantics kept from Step Functions: `InputPath` → `Parameters` → task → `ResultSelector` →
//! `ResultPath` (into the state's raw input) → `OutputPath`; the first `Retry` whose
//! `ErrorEquals` matches retries the task after `IntervalSeconds × BackoffRate^n` (capped at
//! `MaxDelaySeconds`, `JitterStrategy` `FULL` draws the delay from 0 to that), up to its
//! `MaxAttempts`; then the first matching `Catch` places `{"Error", "Cause"}` at its
//! `ResultPath` and goes on; otherwise the execution fails. A `States.Runtime` error (a path
//! that is not in the input, a result that cannot be placed) is never retried or caught. A
//! `Map` reads its items (a JSON array) through [`Integrations::get_object`], runs the item
//! processor on each, at most `MaxConcurrency` at once, and fails with
//! `States.ExceedToleratedFailureThreshold` once more than `ToleratedFailurePercentage` of its
//! items failed (no new item starts then; the running ones finish). Delays use
//! `tokio::time::sleep`, so tests run on a paused clock.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use serde_json::{Value, json};

use super::TaskError;
use super::asl::{
    self, ChoiceState, Condition, Jitter, MapState, PassState, PathField, Retrier, State, StateMachine, TaskState,
};

/// The services a state machine's tasks reach.
pub trait Integrations: Send + Sync {
    /// `lambda:invoke` of `function` with `payload`: the function's result.
    fn invoke<'a>(&'a self, function: &'a str, payload: Value) -> BoxFuture<'a, Result<Value, TaskError>>;
    /// `sqs:sendMessage` of `body` to `queue_url`: the send's result (`{"MessageId": ...}`).
    fn send_message<'a>(&'a self, queue_url: &'a str, body: String) -> BoxFuture<'a, Result<Value, TaskError>>;
    /// `s3:getObject` of `bucket`/`key` (a map's items).
    fn get_object<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<Bytes, TaskError>>;
}

/// What the executor reports while it runs (progress lines, logs).
#[derive(Debug)]
pub enum Event<'a> {
    /// A task answered. `task` is the jobs task name of a Lambda invocation's payload.
    TaskSucceeded { state: &'a str, task: Option<&'a str>, result: &'a Value },
    /// A task failed; `retry_in` is the delay before its retry, `None` when it is not retried.
    TaskFailed { state: &'a str, task: Option<&'a str>, error: &'a TaskError, retry_in: Option<Duration> },
}

type Observer = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(Value),
    Failed(TaskError),
}

/// Names an execution as Step Functions does (`$$.Execution.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// The state machine's name.
    pub state_machine: String,
    /// The execution's name (unique per state machine; the plan object's run id).
    pub name: String,
    pub start_time: DateTime<Utc>,
}

impl Execution {
    /// An execution of `state_machine` named by a new lowercase ULID, starting now.
    pub fn new(state_machine: &str) -> Self {
        Self {
            state_machine: state_machine.to_owned(),
            name: ulid::Ulid::new().to_string().to_ascii_lowercase(),
            start_time: Utc::now(),
        }
    }

    fn id(&self) -> String {
        format!("arn:aws:states:local:000000000000:execution:{}:{}", self.state_machine, self.name)
    }
}

/// A `States.Runtime` failure: no Retry or Catch takes it.
fn runtime(cause: impl Into<String>) -> TaskError {
    TaskError::new(asl::RUNTIME, cause)
}

/// Runs state machines through `integrations`.
#[derive(Clone)]
pub struct Executor {
    integrations: Arc<dyn Integrations>,
    observer: Option<Observer>,
    max_concurrency: Option<u32>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").field("max_concurrency", &self.max_concurrency).finish_non_exhaustive()
    }
}

/// The context object of one state (`$$`).
struct Context {
    execution_id: String,
    execution: Value,
    state_machine: Value,
}

impl Context {
    fn for_state(&self, state: &str, retry_count: u32) -> Value {
        json!({
            "Execution": self.execution,
            "StateMachine": self.state_machine,
            "State": {
                "Name": state,
                "EnteredTime": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
                "RetryCount": retry_count,
            },
        })
    }
}

enum Transition {
    Next(String, Value),
    End(Value),
}

impl Executor {
    pub fn new(integrations: Arc<dyn Integrations>) -> Self {
        Self { integrations, observer: None, max_concurrency: None }
    }

    /// Reports every [`Event`] to `observer`.
    pub fn with_observer(mut self, observer: impl Fn(&Event<'_>) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Runs at most `cap` items of any map at once, below the definitions' `MaxConcurrency`
    /// (one machine runs every child execution, where AWS gives each its own Lambda).
    pub fn with_max_concurrency(mut self, cap: u32) -> Self {
        self.max_concurrency = Some(cap.max(1));
        self
    }

    /// Runs `machine` on `input` as `execution`.
    pub async fn run(&self, machine: &StateMachine, execution: &Execution, input: Value) -> Outcome {
        let context = Context {
            execution_id: execution.id(),
            execution: json!({
                "Id": execution.id(),
                "Name": execution.name,
                "StartTime": execution.start_time.to_rfc3339_opts(SecondsFormat::Millis, true),
                "Input": input,
            }),
            state_machine: json!({
                "Id": format!("arn:aws:states:local:000000000000:stateMachine:{}", execution.state_machine),
                "Name": execution.state_machine,
            }),
        };
        match self.run_machine(machine, input, &context).await {
            Ok(output) => Outcome::Succeeded(output),
            Err(failure) => Outcome::Failed(failure),
        }
    }

    fn run_machine<'a>(
        &'a self,
        machine: &'a StateMachine,
        input: Value,
        context: &'a Context,
    ) -> BoxFuture<'a, Result<Value, TaskError>> {
        Box::pin(async move {
            let mut name = machine.start_at.as_str();
            let mut input = input;
            loop {
                let state = machine.states.get(name).ok_or_else(|| runtime(format!("no state {name:?}")))?;
                tracing::debug!(state = name, "entering state");
                match self.run_state(name, state, input, context).await? {
                    Transition::Next(next, output) => {
                        name = machine
                            .states
                            .get_key_value(&next)
                            .map(|(k, _)| k.as_str())
                            .ok_or_else(|| runtime(format!("no state {next:?}")))?;
                        input = output;
                    }
                    Transition::End(output) => return Ok(output),
                }
            }
        })
    }

    async fn run_state(
        &self,
        name: &str,
        state: &State,
        input: Value,
        context: &Context,
    ) -> Result<Transition, TaskError> {
        let ctx = context.for_state(name, 0);
        match state {
            State::Task(task) => self.run_task(name, task, input, context).await,
            State::Map(map) => self.run_map(name, map, input, context).await,
            State::Choice(choice) => run_choice(name, choice, input, &ctx),
            State::Pass(pass) => run_pass(pass, input, &ctx),
            State::Succeed(s) => {
                let effective = input_path(&s.input_path, &input, &ctx)?;
                Ok(Transition::End(input_path(&s.output_path, &effective, &ctx)?))
            }
            State::Fail(f) => Err(TaskError::new(&f.error, &f.cause)),
        }
    }

    async fn run_task(
        &self,
        name: &str,
        task: &TaskState,
        input: Value,
        context: &Context,
    ) -> Result<Transition, TaskError> {
        let ctx = context.for_state(name, 0);
        let effective = input_path(&task.input_path, &input, &ctx)?;
        let parameters = match &task.parameters {
            Some(t) => t.render(&effective, &ctx).map_err(runtime)?,
            None => effective,
        };
        let task_name = match &parameters["Payload"]["task"] {
            Value::String(s) if task.resource == asl::LAMBDA_INVOKE => Some(s.clone()),
            _ => None,
        };
        let attempt = || self.call(&task.resource, parameters.clone());
        let result = self.with_retry(name, task_name.as_deref(), &task.retry, attempt).await;
        match result {
            Ok(raw) => {
                let selected = match &task.result_selector {
                    Some(t) => t.render(&raw, &ctx).map_err(runtime)?,
                    None => raw,
                };
                let output = result_path(&task.result_path, input, selected)?;
                let output = input_path(&task.output_path, &output, &ctx)?;
                transition(task.next.as_deref(), output)
            }
            Err(error) => catch(&task.catch, input, error),
        }
    }

    /// One call of a task resource.
    async fn call(&self, resource: &str, parameters: Value) -> Result<Value, TaskError> {
        let text = |key: &str| match &parameters[key] {
            Value::String(s) => Ok(s.clone()),
            other => Err(runtime(format!("{resource}: parameter {key} must be a string, not {other}"))),
        };
        match resource {
            asl::LAMBDA_INVOKE => {
                let function = text("FunctionName")?;
                let payload = parameters["Payload"].clone();
                let result = self.integrations.invoke(&function, payload).await?;
                Ok(json!({"ExecutedVersion": "$LATEST", "Payload": result, "StatusCode": 200}))
            }
            asl::SQS_SEND_MESSAGE => {
                let queue = text("QueueUrl")?;
                let body = match &parameters["MessageBody"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                self.integrations.send_message(&queue, body).await
            }
            other => Err(runtime(format!("unsupported resource {other}"))),
        }
    }

    async fn with_retry<F, Fut>(
        &self,
        state: &str,
        task: Option<&str>,
        retry: &[Retrier],
        mut attempt: F,
    ) -> Result<Value, TaskError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Value, TaskError>>,
    {
        let mut counts = vec![0u32; retry.len()];
        loop {
            let error = match attempt().await {
                Ok(result) => {
                    self.observe(&Event::TaskSucceeded { state, task, result: &result });
                    return Ok(result);
                }
                Err(error) => error,
            };
            let retrier = (error.error != asl::RUNTIME)
                .then(|| retry.iter().position(|r| r.error_equals.iter().any(|p| asl::error_matches(p, &error.error))))
                .flatten()
                .filter(|&i| counts[i] < retry[i].max_attempts);
            let Some(i) = retrier else {
                self.observe(&Event::TaskFailed { state, task, error: &error, retry_in: None });
                return Err(error);
            };
            let r = &retry[i];
            let mut delay = r.delay(counts[i]);
            if r.jitter_strategy == Jitter::Full {
                delay = delay.mul_f64(rand::random::<f64>());
            }
            counts[i] += 1;
            self.observe(&Event::TaskFailed { state, task, error: &error, retry_in: Some(delay) });
            tracing::info!(state, error = %error, retry_in_ms = delay.as_millis() as u64, "task failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn run_map(
        &self,
        name: &str,
        map: &MapState,
        input: Value,
        context: &Context,
    ) -> Result<Transition, TaskError> {
        let ctx = context.for_state(name, 0);
        let effective = input_path(&map.input_path, &input, &ctx)?;
        let items = match self.read_items(map, &effective, &ctx).await {
            Ok(items) => items,
            Err(error) => return catch(&map.catch, input, error),
        };
        let total = items.len();
        let limit = match map.max_concurrency {
            Some(0) | None => total.max(1),
            Some(n) => n as usize,
        };
        let limit = self.max_concurrency.map_or(limit, |cap| limit.min(cap as usize)).max(1);
        let tolerated = map.tolerated_failure_percentage.unwrap_or(0.0);
        let exceeded = |failed: usize| failed as f64 * 100.0 > tolerated * total as f64;

        let children: Vec<Context> = (0..total)
            .map(|index| {
                let child = format!("{}/{name}/{index}", context.execution_id);
                Context {
                    execution_id: child.clone(),
                    execution: json!({
                        "Id": child,
                        "Name": format!("{}:{index}", context.execution["Name"].as_str().unwrap_or_default()),
                        "StartTime": context.execution["StartTime"],
                        "Input": items[index],
                    }),
                    state_machine: context.state_machine.clone(),
                }
            })
            .collect();
        let mut results: Vec<Option<Value>> = vec![None; total];
        let mut failures: Vec<TaskError> = Vec::new();
        let mut running = FuturesUnordered::new();
        let mut next = 0;
        loop {
            while next < total && running.len() < limit && !exceeded(failures.len()) {
                let (index, item, child) = (next, items[next].clone(), &children[next]);
                let processor = &map.item_processor.machine;
                running.push(async move { (index, self.run_machine(processor, item, child).await) });
                next += 1;
            }
            let Some((index, result)) = running.next().await else { break };
            match result {
                Ok(output) => results[index] = Some(output),
                Err(error) => {
                    tracing::warn!(state = name, item = index, error = %error, "map item failed");
                    results[index] = Some(json!({"Error": error.error, "Cause": error.cause}));
                    failures.push(error);
                }
            }
        }
        if exceeded(failures.len()) {
            let first = failures.first().map(ToString::to_string).unwrap_or_default();
            let error = TaskError::new(
                "States.ExceedToleratedFailureThreshold",
                format!(
                    "{} of {total} items failed, more than the tolerated {tolerated}% (first: {first})",
                    failures.len()
                ),
            );
            return catch(&map.catch, input, error);
        }
        let raw = Value::Array(results.into_iter().map(|r| r.unwrap_or(Value::Null)).collect());
        let selected = match &map.result_selector {
            Some(t) => t.render(&raw, &ctx).map_err(runtime)?,
            None => raw,
        };
        let output = result_path(&map.result_path, input, selected)?;
        let output = input_path(&map.output_path, &output, &ctx)?;
        transition(map.next.as_deref(), output)
    }

    /// A map's items: the JSON array in the object its `ItemReader` names.
    async fn read_items(&self, map: &MapState, effective: &Value, ctx: &Value) -> Result<Vec<Value>, TaskError> {
        let parameters = map.item_reader.parameters.render(effective, ctx).map_err(runtime)?;
        let (Some(bucket), Some(key)) = (parameters["Bucket"].as_str(), parameters["Key"].as_str()) else {
            return Err(runtime(format!("ItemReader: Bucket and Key must be strings: {parameters}")));
        };
        let failed = |cause: String| TaskError::new("States.ItemReaderFailed", cause);
        let bytes =
            self.integrations.get_object(bucket, key).await.map_err(|e| failed(format!("s3://{bucket}/{key}: {e}")))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(_) => Err(failed(format!("s3://{bucket}/{key} is not a JSON array"))),
            Err(e) => Err(failed(format!("s3://{bucket}/{key}: {e}"))),
        }
    }

    fn observe(&self, event: &Event<'_>) {
        if let Some(observer) = &self.observer {
            observer(event);
        }
    }
}

fn transition(next: Option<&str>, output: Value) -> Result<Transition, TaskError> {
    Ok(match next {
        Some(next) => Transition::Next(next.to_owned(), output),
        None => Transition::End(output),
    })
}

/// The first matching catcher's transition, or the error.
fn catch(catchers: &[asl::Catcher], input: Value, error: TaskError) -> Result<Transition, TaskError> {
    let Some(catcher) = catchers.iter().find(|c| c.error_equals.iter().any(|p| asl::error_matches(p, &error.error)))
    else {
        return Err(error);
    };
    tracing::info!(error = %error, next = %catcher.next, "error caught");
    let output = result_path(&catcher.result_path, input, json!({"Error": error.error, "Cause": error.cause}))?;
    Ok(Transition::Next(catcher.next.clone(), output))
}

/// `InputPath`/`OutputPath`.
fn input_path(path: &PathField, input: &Value, ctx: &Value) -> Result<Value, TaskError> {
    match path {
        PathField::Default => Ok(input.clone()),
        PathField::Null => Ok(json!({})),
        PathField::Path(p) => {
            p.get(input, ctx).cloned().ok_or_else(|| runtime(format!("the path {p} is not in the input")))
        }
    }
}

/// `ResultPath`: `result` placed into the state's raw `input`.
fn result_path(path: &PathField, input: Value, result: Value) -> Result<Value, TaskError> {
    match path {
        PathField::Default => Ok(result),
        PathField::Null => Ok(input),
        PathField::Path(p) => p.set(input, result).map_err(runtime),
    }
}

fn run_pass(pass: &PassState, input: Value, ctx: &Value) -> Result<Transition, TaskError> {
    let effective = input_path(&pass.input_path, &input, ctx)?;
    let result = match (&pass.parameters, &pass.result) {
        (Some(t), _) => t.render(&effective, ctx).map_err(runtime)?,
        (None, Some(result)) => result.clone(),
        (None, None) => effective,
    };
    let output = result_path(&pass.result_path, input, result)?;
    transition(pass.next.as_deref(), input_path(&pass.output_path, &output, ctx)?)
}

fn run_choice(name: &str, choice: &ChoiceState, input: Value, ctx: &Value) -> Result<Transition, TaskError> {
    let effective = input_path(&choice.input_path, &input, ctx)?;
    for rule in &choice.choices {
        if holds(&rule.condition, &effective, ctx)? {
            return Ok(Transition::Next(rule.next.clone(), input_path(&choice.output_path, &effective, ctx)?));
        }
    }
    match &choice.default {
        Some(default) => Ok(Transition::Next(default.clone(), input_path(&choice.output_path, &effective, ctx)?)),
        None => Err(TaskError::new("States.NoChoiceMatched", format!("no choice of {name:?} matched"))),
    }
}

fn holds(condition: &Condition, input: &Value, ctx: &Value) -> Result<bool, TaskError> {
    let value = |p: &asl::ReferencePath| {
        p.get(input, ctx).ok_or_else(|| runtime(format!("choice variable {p} is not in the input")))
    };
    Ok(match condition {
        Condition::BooleanEquals(p, b) => value(p)?.as_bool() == Some(*b),
        Condition::NumericEquals(p, n) => value(p)?.as_f64() == Some(*n),
        Condition::StringEquals(p, s) => value(p)?.as_str() == Some(s.as_str()),
        Condition::IsPresent(p, present) => p.get(input, ctx).is_some() == *present,
        Condition::And(all) => {
            for c in all {
                if !holds(c, input, ctx)? {
                    return Ok(false);
                }
            }
            true
        }
        Condition::Or(any) => {
            for c in any {
                if holds(c, input, ctx)? {
                    return Ok(true);
                }
            }
            false
        }
        Condition::Not(c) => !holds(c, input, ctx)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use crate::orchestration::TaskTable;

    /// Lambda invocations dispatched to a table, sends recorded, objects from a map.
    struct Fake {
        tasks: TaskTable,
        sent: Mutex<Vec<(String, String)>>,
        objects: BTreeMap<(String, String), Bytes>,
    }

    impl Integrations for Fake {
        fn invoke<'a>(&'a self, _: &'a str, payload: Value) -> BoxFuture<'a, Result<Value, TaskError>> {
            Box::pin(self.tasks.dispatch(payload))
        }
        fn send_message<'a>(&'a self, queue: &'a str, body: String) -> BoxFuture<'a, Result<Value, TaskError>> {
            self.sent.lock().unwrap().push((queue.to_owned(), body));
            Box::pin(async { Ok(json!({"MessageId": "m"})) })
        }
        fn get_object<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<Bytes, TaskError>> {
            let found = self.objects.get(&(bucket.to_owned(), key.to_owned())).cloned();
            Box::pin(async move { found.ok_or_else(|| TaskError::new("S3.NoSuchKey", "no such key")) })
        }
    }

    fn fake(tasks: TaskTable, items: Value) -> Arc<Fake> {
        let objects = [(("b".to_owned(), "items.json".to_owned()), Bytes::from(items.to_string()))].into();
        Arc::new(Fake { tasks, sent: Mutex::new(Vec::new()), objects })
    }

    fn machine(definition: Value) -> StateMachine {
        StateMachine::parse(&definition.to_string()).unwrap()
    }

    fn task(name: &str, next: Value) -> Value {
        let mut state = json!({
            "Type": "Task",
            "Resource": asl::LAMBDA_INVOKE,
            "Parameters": {"FunctionName": "f", "Payload": {"task": name, "input.$": "$"}},
            "ResultSelector": {"r.$": "$.Payload"},
        });
        for (k, v) in next.as_object().unwrap() {
            state[k] = v.clone();
        }
        state
    }

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_then_the_catch_runs() {
        let calls = Arc::new(Mutex::new(0));
        let counted = Arc::clone(&calls);
        let tasks = TaskTable::new().with("flaky", move |_| {
            *counted.lock().unwrap() += 1;
            async { Err(TaskError::transient("store down")) }
        });
        let m = machine(json!({"StartAt": "A", "States": {
            "A": task("flaky", json!({
                "Retry": [{"ErrorEquals": ["Sluice.Transient"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "F"}],
                "End": true,
            })),
            "F": {"Type": "Pass", "End": true},
        }}));
        let started = tokio::time::Instant::now();
        let out = Executor::new(fake(tasks, json!([]))).run(&m, &Execution::new("t"), json!({"x": 1})).await;
        assert_eq!(
            out,
            Outcome::Succeeded(json!({"x": 1, "error": {"Error": "Sluice.Transient", "Cause": "store down"}}))
        );
        assert_eq!(*calls.lock().unwrap(), 4, "one call and three retries");
        assert_eq!(started.elapsed(), Duration::from_secs(1 + 2 + 4), "1 s, then doubled");
    }

    #[tokio::test(start_paused = true)]
    async fn full_jitter_stays_under_the_capped_delay_and_unmatched_errors_are_not_retried() {
        let calls = Arc::new(Mutex::new(0));
        let counted = Arc::clone(&calls);
        let tasks = TaskTable::new().with("flaky", move |_| {
            let n = {
                let mut c = counted.lock().unwrap();
                *c += 1;
                *c
            };
            async move { if n < 3 { Err(TaskError::transient("x")) } else { Err(TaskError::failed("bad data")) } }
        });
        let m = machine(json!({"StartAt": "A", "States": {
            "A": task("flaky", json!({
                "Retry": [{"ErrorEquals": ["Sluice.Transient"], "IntervalSeconds": 10, "MaxAttempts": 5, "MaxDelaySeconds": 15, "JitterStrategy": "FULL"}],
                "End": true,
            })),
        }}));
        let started = tokio::time::Instant::now();
        let out = Executor::new(fake(tasks, json!([]))).run(&m, &Execution::new("t"), json!({})).await;
        assert_eq!(out, Outcome::Failed(TaskError::failed("bad data")));
        assert_eq!(*calls.lock().unwrap(), 3);
        assert!(started.elapsed() <= Duration::from_secs(10 + 15), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_missing_path_is_a_runtime_error_no_catch_takes() {
        let tasks = TaskTable::new().with("t", |_| async { Ok(json!({})) });
        let m = machine(json!({"StartAt": "A", "States": {
            "A": task("t", json!({"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F"}], "End": true})),
            "F": {"Type": "Succeed"},
        }}));
        let mut m2 = m.clone();
        if let Some(State::Task(t)) = m2.states.get_mut("A") {
            t.input_path = PathField::Path("$.absent".parse().unwrap());
        }
        let out = Executor::new(fake(tasks, json!([]))).run(&m2, &Execution::new("t"), json!({})).await;
        let Outcome::Failed(e) = out else { panic!("{out:?}") };
        assert_eq!(e.error, asl::RUNTIME);
        assert!(e.cause.contains("$.absent"), "{e}");
    }

    #[tokio::test]
    async fn paths_selectors_choice_pass_and_context() {
        let tasks = TaskTable::new().with("t", |input| async move { Ok(json!({"got": input, "big": "dropped"})) });
        let m = machine(json!({"StartAt": "A", "States": {
            "A": {
                "Type": "Task",
                "Resource": asl::LAMBDA_INVOKE,
                "InputPath": "$.in",
                "Parameters": {"FunctionName": "f", "Payload": {"task": "t", "input": {"v.$": "$.v", "name.$": "$$.Execution.Name"}}},
                "ResultSelector": {"got.$": "$.Payload.got"},
                "ResultPath": "$.result",
                "OutputPath": "$.result",
                "Next": "C",
            },
            "C": {"Type": "Choice", "Choices": [
                {"And": [{"Variable": "$.got.v", "IsPresent": true}, {"Variable": "$.got.v", "NumericEquals": 2}], "Next": "P"},
            ], "Default": "F"},
            "P": {"Type": "Pass", "Parameters": {"v.$": "$.got.v", "name.$": "$.got.name"}, "ResultPath": "$.p", "OutputPath": "$.p", "End": true},
            "F": {"Type": "Fail", "Error": "E", "Cause": "c"},
        }}));
        let execution = Execution { state_machine: "m".into(), name: "run-1".into(), start_time: Utc::now() };
        let executor = Executor::new(fake(tasks, json!([])));
        let out = executor.run(&m, &execution, json!({"in": {"v": 2}})).await;
        assert_eq!(out, Outcome::Succeeded(json!({"v": 2, "name": "run-1"})));
        let out = executor.run(&m, &execution, json!({"in": {"v": 3}})).await;
        assert_eq!(out, Outcome::Failed(TaskError::new("E", "c")));
    }

    fn map_machine(max_concurrency: u32, tolerated: f64) -> StateMachine {
        machine(json!({"StartAt": "M", "States": {
            "M": {
                "Type": "Map",
                "ItemReader": {"Resource": asl::S3_GET_OBJECT, "ReaderConfig": {"InputType": "JSON"},
                               "Parameters": {"Bucket": "b", "Key.$": "$.key"}},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "T",
                    "States": {"T": task("item", json!({"End": true}))},
                },
                "MaxConcurrency": max_concurrency,
                "ToleratedFailurePercentage": tolerated,
                "ResultPath": "$.results",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Report"}],
                "End": true,
            },
            "Report": {"Type": "Task", "Resource": asl::SQS_SEND_MESSAGE,
                       "Parameters": {"QueueUrl": "q", "MessageBody": {"error.$": "$.error"}}, "ResultPath": null, "Next": "Failed"},
            "Failed": {"Type": "Fail", "Error": "Job.Failed", "Cause": "see the queue"},
        }}))
    }

    #[tokio::test(start_paused = true)]
    async fn a_map_runs_items_at_most_max_concurrency_at_once_in_item_order() {
        let running = Arc::new(Mutex::new((0, 0)));
        let seen = Arc::clone(&running);
        let tasks = TaskTable::new().with("item", move |input| {
            let seen = Arc::clone(&seen);
            async move {
                {
                    let mut s = seen.lock().unwrap();
                    s.0 += 1;
                    s.1 = s.1.max(s.0);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                seen.lock().unwrap().0 -= 1;
                Ok(json!(input.as_i64().unwrap() * 10))
            }
        });
        let integrations = fake(tasks, json!([1, 2, 3, 4, 5]));
        let out = Executor::new(integrations.clone())
            .run(&map_machine(2, 0.0), &Execution::new("m"), json!({"key": "items.json"}))
            .await;
        let results: Vec<Value> = (1..=5).map(|i| json!({"r": i * 10})).collect();
        assert_eq!(out, Outcome::Succeeded(json!({"key": "items.json", "results": results})));
        assert_eq!(running.lock().unwrap().1, 2, "MaxConcurrency");
        let capped = Executor::new(integrations).with_max_concurrency(1);
        running.lock().unwrap().1 = 0;
        capped.run(&map_machine(2, 0.0), &Execution::new("m"), json!({"key": "items.json"})).await;
        assert_eq!(running.lock().unwrap().1, 1, "the executor's cap");
    }

    #[tokio::test]
    async fn a_map_tolerates_failures_up_to_its_percentage_then_fails_into_its_catch() {
        let tasks = TaskTable::new().with("item", |input| async move {
            if input.as_i64() == Some(3) { Err(TaskError::failed("item 3 is bad")) } else { Ok(input) }
        });
        let items: Vec<i64> = (1..=10).collect();
        let integrations = fake(tasks, json!(items));
        let out = Executor::new(integrations.clone())
            .run(&map_machine(3, 10.0), &Execution::new("m"), json!({"key": "items.json"}))
            .await;
        let Outcome::Succeeded(out) = out else { panic!("{out:?}") };
        assert_eq!(out["results"][2], json!({"Error": "Sluice.JobFailed", "Cause": "item 3 is bad"}));
        assert!(integrations.sent.lock().unwrap().is_empty());

        let out = Executor::new(integrations.clone())
            .run(&map_machine(3, 5.0), &Execution::new("m"), json!({"key": "items.json"}))
            .await;
        assert_eq!(out, Outcome::Failed(TaskError::new("Job.Failed", "see the queue")));
        let sent = integrations.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        let body: Value = serde_json::from_str(&sent[0].1).unwrap();
        assert_eq!(body["error"]["Error"], "States.ExceedToleratedFailureThreshold");
        assert!(body["error"]["Cause"].as_str().unwrap().contains("item 3 is bad"), "{body}");

        let out = Executor::new(integrations.clone())
            .run(&map_machine(3, 5.0), &Execution::new("m"), json!({"key": "gone.json"}))
            .await;
        assert_eq!(out, Outcome::Failed(TaskError::new("Job.Failed", "see the queue")));
        let body: Value = serde_json::from_str(&integrations.sent.lock().unwrap()[1].1).unwrap();
        assert_eq!(body["error"]["Error"], "States.ItemReaderFailed");
    }
}
