//! The embedded runtime's [`EventLog`]: the durable local stream (`sluice_esm::LocalStream`,
//! SQLite WAL). One `append` is one transaction on the blocking pool: every record is written
//! (durable on return, per the stream's configured durability) or none is.

use sluice_esm::{LocalStream, PutEntry};

use super::{AppendOutcome, Appended, BoxFuture, EventLog, LogRecord};
use crate::health::{ComponentHealth, HealthProbe, ProbeFuture};

/// [`EventLog`] over a [`LocalStream`].
#[derive(Debug, Clone)]
pub struct LocalStreamEventLog {
    stream: LocalStream,
}

impl LocalStreamEventLog {
    /// Appends to `stream`.
    pub fn new(stream: LocalStream) -> Self {
        Self { stream }
    }

    /// The underlying stream.
    pub fn stream(&self) -> &LocalStream {
        &self.stream
    }
}

impl EventLog for LocalStreamEventLog {
    fn append(&self, records: Vec<LogRecord>) -> BoxFuture<'_, Vec<AppendOutcome>> {
        Box::pin(async move {
            let n = records.len();
            let entries: Vec<PutEntry> = records
                .into_iter()
                .map(|r| PutEntry { partition_key: r.partition_key, data: Vec::from(r.data) })
                .collect();
            match self.stream.put_records_async(entries).await {
                Ok(results) if results.len() == n => results
                    .into_iter()
                    .map(|r| {
                        AppendOutcome::Written(Appended {
                            shard_id: r.shard_id,
                            sequence_number: r.sequence_number.to_string(),
                        })
                    })
                    .collect(),
                Ok(results) => {
                    super::all_failed(n, "Unavailable", &format!("{} results for {n} records", results.len()))
                }
                Err(e) => {
                    let code = if e.is_retryable() { "Unavailable" } else { "Rejected" };
                    super::all_failed(n, code, &e.to_string())
                }
            }
        })
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

/// Health of the local stream: `ok` with its shard count, or `down` with the storage error.
impl HealthProbe for LocalStreamEventLog {
    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(async move {
            match self.stream.health_async().await {
                Ok(()) => {
                    ComponentHealth::ok(serde_json::json!({ "kind": "local", "shards": self.stream.shards().len() }))
                }
                Err(e) => ComponentHealth::down(e.to_string()),
            }
        })
    }
}
