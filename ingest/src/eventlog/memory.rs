//! In-memory [`EventLog`] for tests and examples: not durable (lost with the process).

use std::sync::Mutex;

use super::{AppendOutcome, Appended, BoxFuture, EventLog, LogRecord};

/// Keeps appended records in memory, one shard, sequence numbers 1, 2, ...
#[derive(Debug, Default)]
pub struct MemoryEventLog {
    records: Mutex<Vec<(Appended, LogRecord)>>,
}

impl MemoryEventLog {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record written so far, in write order.
    pub fn records(&self) -> Vec<(Appended, LogRecord)> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl EventLog for MemoryEventLog {
    fn append(&self, records: Vec<LogRecord>) -> BoxFuture<'_, Vec<AppendOutcome>> {
        let outcomes = match self.records.lock() {
            Ok(mut log) => records
                .into_iter()
                .map(|record| {
                    let appended = Appended {
                        shard_id: "shardId-000000000000".to_owned(),
                        sequence_number: (log.len() + 1).to_string(),
                    };
                    log.push((appended.clone(), record));
                    AppendOutcome::Written(appended)
                })
                .collect(),
            Err(_) => super::all_failed(records.len(), "Unavailable", "memory log poisoned"),
        };
        Box::pin(async move { outcomes })
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
