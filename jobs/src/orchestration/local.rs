//! The state machines on one machine (`sluice up`, `sluice compact`): the integrations run in
//! process. A Lambda invocation of [`LOCAL_FUNCTION`] dispatches to the task table, an SQS send
//! to [`LOCAL_QUEUE`] stores a dead letter (source [`DEAD_LETTER_SOURCE`]) in a dead-letter
//! store, and the map's `s3:getObject` reads the lake.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use sluice_dlq::{DeadLetter, DeadLetterQueue, DlqError, FailureKind};
use sluice_lake::Lake;

use super::tasks::{lake_bucket, relative_key};
use super::{
    AslError, Definition, Executor, Integrations, JOBS_DEAD_LETTER_QUEUE_URL, JOBS_FUNCTION_ARN, LAKE_BUCKET,
    StateMachine, TaskError, TaskTable,
};

/// The jobs function's name in a local run (`${JobsFunctionArn}`).
pub const LOCAL_FUNCTION: &str = "sluice-jobs";
/// The jobs dead-letter queue's URL in a local run (`${JobsDeadLetterQueueUrl}`).
pub const LOCAL_QUEUE: &str = "local:jobs-dead-letters";
/// The `source` of the dead letters a job's failure leaves.
pub const DEAD_LETTER_SOURCE: &str = "jobs";

/// The substitutions of a local run over `lake`.
pub fn substitutions(lake: &Lake) -> BTreeMap<String, String> {
    [
        (JOBS_FUNCTION_ARN.to_owned(), LOCAL_FUNCTION.to_owned()),
        (LAKE_BUCKET.to_owned(), lake_bucket(lake)),
        (JOBS_DEAD_LETTER_QUEUE_URL.to_owned(), LOCAL_QUEUE.to_owned()),
    ]
    .into()
}

/// `definition` loaded for a local run over `lake`.
pub fn load(definition: &Definition, lake: &Lake) -> Result<StateMachine, AslError> {
    definition.load(&substitutions(lake))
}

/// The in-process integrations.
pub struct LocalIntegrations<Q> {
    tasks: TaskTable,
    lake: Lake,
    dead_letters: Q,
}

impl<Q: DeadLetterQueue> LocalIntegrations<Q> {
    pub fn new(tasks: TaskTable, lake: Lake, dead_letters: Q) -> Self {
        Self { tasks, lake, dead_letters }
    }
}

/// An executor over [`LocalIntegrations`].
pub fn executor<Q: DeadLetterQueue>(tasks: TaskTable, lake: Lake, dead_letters: Q) -> Executor {
    Executor::new(Arc::new(LocalIntegrations::new(tasks, lake, dead_letters)))
}

/// The dead letter a job's failure message becomes: the reason is the job and the caught
/// error, the data the message body itself.
pub fn dead_letter(body: &str) -> DeadLetter {
    let message: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let job = message["job"].as_str().unwrap_or("job");
    let error = &message["input"]["error"];
    let reason = match (error["Error"].as_str(), error["Cause"].as_str()) {
        (Some(name), Some(cause)) => format!("{job}: {name}: {cause}"),
        _ => format!("{job} failed"),
    };
    DeadLetter {
        source: DEAD_LETTER_SOURCE.to_owned(),
        kind: FailureKind::Exhausted,
        reason,
        shard_id: None,
        sequence_number: None,
        partition_key: None,
        failed_at: chrono::Utc::now(),
        data: body.as_bytes().to_vec(),
    }
}

impl<Q: DeadLetterQueue> Integrations for LocalIntegrations<Q> {
    fn invoke<'a>(&'a self, function: &'a str, payload: Value) -> BoxFuture<'a, Result<Value, TaskError>> {
        Box::pin(async move {
            if function != LOCAL_FUNCTION {
                return Err(TaskError::new(
                    "Lambda.ResourceNotFoundException",
                    format!("no local function {function:?} (the jobs function is {LOCAL_FUNCTION:?})"),
                ));
            }
            self.tasks.dispatch(payload).await
        })
    }

    fn send_message<'a>(&'a self, queue_url: &'a str, body: String) -> BoxFuture<'a, Result<Value, TaskError>> {
        Box::pin(async move {
            if queue_url != LOCAL_QUEUE {
                return Err(TaskError::new("SQS.QueueDoesNotExistException", format!("no local queue {queue_url:?}")));
            }
            let letter = dead_letter(&body);
            tracing::warn!(reason = %letter.reason, "job failure stored as a dead letter");
            match self.dead_letters.send(vec![letter]).await {
                Ok(()) => Ok(json!({"MessageId": ulid::Ulid::new().to_string()})),
                Err(e @ DlqError::Unavailable(_)) => Err(TaskError::new("SQS.SdkClientException", e.to_string())),
                Err(e) => Err(TaskError::new("SQS.InvalidMessageContentsException", e.to_string())),
            }
        })
    }

    fn get_object<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<Bytes, TaskError>> {
        Box::pin(async move {
            let relative = relative_key(&self.lake, bucket, key)?;
            self.lake.get(&relative).await.map_err(|e| TaskError::new("S3.NoSuchKey", e.to_string()))
        })
    }
}
