//! Redrive of `sluice up`'s sources: the dead letters (`dead_letters.db`) and the event source
//! mappings' failure destination (`failures.db`), through any `EventLog` (the local stream).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sluice_dlq::{DeadLetter, DlqError, FailureKind, SqliteDeadLetters, StoredLetter};
use sluice_esm::{FailureDestinationError, SqliteFailureDestination};
use sluice_ingest::eventlog::{EventLog, LogRecord};
use sluice_schemas::Registry;

use super::{Entry, RedriveReport, Verdict, triage};

/// Why a redrive or a listing failed (nothing was lost: a record leaves its source only after
/// the stream took it).
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("dead letters: {0}")]
    DeadLetters(#[from] DlqError),
    #[error("failure destination: {0}")]
    FailureDestination(#[from] FailureDestinationError),
}

/// The sources of `sluice up` (the files under its data dir).
#[derive(Clone)]
pub struct LocalSources {
    pub dead_letters: SqliteDeadLetters,
    pub failures: SqliteFailureDestination,
}

impl std::fmt::Debug for LocalSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSources").finish_non_exhaustive()
    }
}

/// Letters are read this many at a time.
const PAGE: usize = 500;

impl LocalSources {
    /// Every entry of both stores, dead letters first, each oldest first.
    pub fn list(&self) -> Result<Vec<Entry>, RedriveError> {
        let mut out = Vec::new();
        for StoredLetter { id, letter } in self.letters()? {
            out.push(Entry {
                store: "dead_letters",
                id: id.to_string(),
                source: letter.source,
                reason: letter.reason,
                shard_id: letter.shard_id,
                first_sequence: letter.sequence_number.clone(),
                last_sequence: letter.sequence_number,
                records: 1,
                failed_at: letter.failed_at,
            });
        }
        for failure in self.failures.list()? {
            out.push(Entry {
                store: "failure_destination",
                id: failure.id.to_string(),
                source: format!("esm:{}", failure.mapping),
                reason: match failure.error {
                    Some(error) => format!("{}: {error}", failure.reason),
                    None => failure.reason.to_string(),
                },
                shard_id: Some(failure.shard_id),
                first_sequence: Some(failure.first_sequence.to_string()),
                last_sequence: Some(failure.last_sequence.to_string()),
                records: failure.record_count,
                failed_at: failure.failed_at,
            });
        }
        Ok(out)
    }

    fn letters(&self) -> Result<Vec<StoredLetter>, RedriveError> {
        let mut all = Vec::new();
        loop {
            let page = self.dead_letters.list(all.last().map_or(0, |l: &StoredLetter| l.id), PAGE)?;
            let done = page.len() < PAGE;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Re-submits every record that is valid now through `log`, and removes it from its source
    /// once written; a record still invalid stays (a dead letter with its current reason; from
    /// a failure-destination batch it becomes a dead letter). The same record dead-lettered by
    /// both handlers is re-submitted once. `dry_run` changes nothing and reports what would be
    /// done. Running it again re-submits nothing twice.
    pub async fn redrive(
        &self,
        registry: &Registry,
        log: &dyn EventLog,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Result<RedriveReport, RedriveError> {
        let mut report = RedriveReport { dry_run, ..RedriveReport::default() };

        // Dead letters, one re-submission per stream position (or per letter without one).
        let mut groups: BTreeMap<(Option<String>, Option<String>, i64), Vec<StoredLetter>> = BTreeMap::new();
        for stored in self.letters()? {
            let key = match (&stored.letter.shard_id, &stored.letter.sequence_number) {
                (Some(shard), Some(seq)) => (Some(shard.clone()), Some(seq.clone()), 0),
                _ => (None, None, stored.id),
            };
            groups.entry(key).or_default().push(stored);
        }
        let mut resubmit: Vec<(LogRecord, Vec<i64>)> = Vec::new();
        for letters in groups.into_values() {
            match triage(registry, &letters[0].letter.data) {
                Verdict::Resubmit(record) => resubmit.push((record, letters.iter().map(|l| l.id).collect())),
                Verdict::StillInvalid(reason) => {
                    report.still_invalid += 1;
                    for l in letters.iter().filter(|l| l.letter.reason != reason) {
                        if !dry_run {
                            self.dead_letters.update_reason(l.id, &reason)?;
                        }
                    }
                }
            }
        }
        for chunk in resubmit.chunks(PAGE) {
            if dry_run {
                report.redriven += chunk.len();
                continue;
            }
            let outcomes = log.append(chunk.iter().map(|(record, _)| record.clone()).collect()).await;
            for ((_, ids), outcome) in chunk.iter().zip(outcomes) {
                if outcome.is_written() {
                    report.redriven += 1;
                    for id in ids {
                        self.dead_letters.delete(*id)?;
                    }
                } else {
                    report.not_written += 1;
                }
            }
        }

        // Failure-destination batches: the valid records re-submitted, the invalid ones moved
        // to the dead letters; the batch goes once all of that succeeded.
        for summary in self.failures.list()? {
            let Some(stored) = self.failures.get(summary.id)? else { continue };
            let batch = stored.batch;
            let mut valid = Vec::new();
            let mut invalid = Vec::new();
            for record in &batch.records {
                match triage(registry, &record.data) {
                    Verdict::Resubmit(r) => valid.push(r),
                    Verdict::StillInvalid(reason) => invalid.push(DeadLetter {
                        source: format!("esm:{}", batch.mapping),
                        kind: FailureKind::Invalid,
                        reason,
                        shard_id: Some(batch.shard_id.clone()),
                        sequence_number: Some(record.sequence_number.to_string()),
                        partition_key: Some(record.partition_key.clone()),
                        failed_at: now,
                        data: record.data.clone(),
                    }),
                }
            }
            report.still_invalid += invalid.len();
            if dry_run {
                report.redriven += valid.len();
                continue;
            }
            self.dead_letters.send_blocking(&invalid)?;
            let mut written = 0;
            for chunk in valid.chunks(PAGE) {
                written += log.append(chunk.to_vec()).await.iter().filter(|o| o.is_written()).count();
            }
            report.redriven += written;
            report.not_written += valid.len() - written;
            if written == valid.len() {
                self.failures.delete(summary.id)?;
            }
        }
        Ok(report)
    }
}
