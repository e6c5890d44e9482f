//! Redrive: records the pipeline set aside, re-submitted to the stream once they are valid.
//!
//! - [`triage`] (pure): a recovered record's bytes against the current registry: re-submit it
//!   (the same bytes, partition key = its `event_id`, as ingest writes it) or leave it, with
//!   the reason it is still invalid.
//! - [`local`] (I/O, feature `local`): the sources of `sluice up`, its dead letters and its
//!   event source mappings' failure destination, re-submitted through the `EventLog` port.
//! - [`sqs`], [`s3`] and [`kinesis`] (I/O, feature `aws`): the SQS dead-letter queue, the S3
//!   on-failure destination of the stream triggers, and the re-reading from Kinesis of the
//!   batches an on-failure record only names (`KinesisBatchInfo`).
//!
//! A re-submitted record keeps its `event_id` and envelope, so the lake's deduplication
//! (compaction keeps the earliest copy) and the backfill of aggregates treat a copy that did get
//! through before as the same event. A record leaves its source only after the stream took it:
//! a crash in between re-submits it on the next run, which the same deduplication absorbs; a
//! record is never dropped.

#[cfg(feature = "aws")]
pub mod kinesis;
#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "aws")]
pub mod s3;
#[cfg(feature = "aws")]
pub mod sqs;

use std::collections::HashSet;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sluice_ingest::eventlog::{EventLog, LogRecord};
use sluice_schemas::Registry;

/// What to do with one recovered record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid now: append this to the stream.
    Resubmit(LogRecord),
    /// Still not a valid stored event: why.
    StillInvalid(String),
}

/// Decides a recovered record (its stored bytes) with `registry` (pure).
pub fn triage(registry: &Registry, data: &[u8]) -> Verdict {
    match registry.decode_stored(data) {
        Ok(event) => Verdict::Resubmit(LogRecord { partition_key: event.event_id, data: Bytes::copy_from_slice(data) }),
        Err(rejection) => Verdict::StillInvalid(format!("invalid event: {rejection}")),
    }
}

/// What a redrive did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// Records re-submitted to the stream (and removed from their source).
    pub redriven: usize,
    /// Records still invalid, left in the dead letters with their current reason.
    pub still_invalid: usize,
    /// Records that cannot be recovered any more (their range left the stream's retention, the
    /// shard is gone, or the entry is unreadable); [`RedriveReport::lost`] says which and why.
    pub unrecoverable: usize,
    /// Records the stream did not take this time (left where they were, retried next run).
    pub not_written: usize,
    /// The entries behind [`RedriveReport::unrecoverable`], one each.
    pub lost: Vec<Unrecoverable>,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

/// An entry whose records (some or all) cannot be recovered, and why. The entry stays in its
/// source, marked, so it is reported again and never re-read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unrecoverable {
    /// The entry: its store and id (`sqs:<message id>`, `s3:<key>`).
    pub entry: String,
    pub shard_id: Option<String>,
    pub first_sequence: Option<String>,
    pub last_sequence: Option<String>,
    /// Records lost (at least 1).
    pub records: usize,
    pub reason: String,
}

/// One entry of `sluice dlq list`: a dead letter or a failed batch, in any source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// `dead_letters` or `failure_destination` (`sluice up`), `sqs` or `s3`.
    pub store: &'static str,
    /// The entry's id in its store (row id, SQS message id, S3 key).
    pub id: String,
    /// Who set it aside: a handler (`aggregator`, `lake-writer`) or a mapping (`esm:<name>`).
    pub source: String,
    /// Why.
    pub reason: String,
    pub shard_id: Option<String>,
    pub first_sequence: Option<String>,
    pub last_sequence: Option<String>,
    /// Records it holds (or names, for an entry that carries only their range).
    pub records: usize,
    pub failed_at: DateTime<Utc>,
}

/// Appends `records` through `log` in chunks, each record once per run: a record whose stream
/// position (shard, sequence number) is in `submitted` already is not appended again and counts
/// as written. Returns, per record, whether the stream has it; `submitted` gains the positions
/// written now.
pub(crate) async fn append_once(
    log: &dyn EventLog,
    records: &[(Option<(String, String)>, LogRecord)],
    submitted: &mut HashSet<(String, String)>,
) -> Vec<bool> {
    let mut written = vec![false; records.len()];
    let mut pending = Vec::new();
    for (i, (position, _)) in records.iter().enumerate() {
        match position {
            Some(p) if submitted.contains(p) => written[i] = true,
            _ => pending.push(i),
        }
    }
    // The same position twice in `records`: append the first only.
    let mut first_of: std::collections::HashMap<&(String, String), usize> = std::collections::HashMap::new();
    let mut copies = Vec::new();
    pending.retain(|&i| match &records[i].0 {
        Some(p) => match first_of.get(p) {
            Some(&first) => {
                copies.push((i, first));
                false
            }
            None => {
                first_of.insert(p, i);
                true
            }
        },
        None => true,
    });
    for chunk in pending.chunks(APPEND_CHUNK) {
        let outcomes = log.append(chunk.iter().map(|&i| records[i].1.clone()).collect()).await;
        for (&i, outcome) in chunk.iter().zip(outcomes) {
            if outcome.is_written() {
                written[i] = true;
                if let Some(p) = &records[i].0 {
                    submitted.insert(p.clone());
                }
            }
        }
    }
    for (copy, first) in copies {
        written[copy] = written[first];
    }
    written
}

/// Records per `EventLog::append` call.
pub(crate) const APPEND_CHUNK: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_records_are_resubmitted_as_they_are_and_invalid_ones_explained() {
        let registry = Registry::builtin().unwrap();
        let event = sluice_testkit::generate::Generator::new(Default::default()).next_event();
        let bytes = sluice_testkit::generate::record_bytes(&event);
        assert_eq!(
            triage(&registry, &bytes),
            Verdict::Resubmit(LogRecord { partition_key: event.event_id.clone(), data: Bytes::from(bytes.clone()) })
        );
        let Verdict::StillInvalid(reason) = triage(&registry, b"{\"not\":\"an event\"}") else { panic!() };
        assert!(reason.starts_with("invalid event:"), "{reason}");
        let Verdict::StillInvalid(_) = triage(&registry, &bytes[..bytes.len() - 1]) else { panic!("cut short") };
    }
}
