//! The lake writer handler (thin I/O around [`crate::prepare`]): dead-letter the invalid records
//! (with the shared `sluice_dlq::SendRetry`), write the files (a few concurrently), and report
//! failures. Its one entry, [`BatchHandler::handle`] on the raw invocation body
//! ([`LakeWriter::process_payload`]), serves the Lambda and `sluice up`'s event source mapping.
//!
//! Guarantees:
//! - **Deterministic names**: a group's file is `<shard>-<first seq>-<last seq>.parquet` of the
//!   records in that group, so redelivering the same batch rewrites the same files with the same
//!   rows (an object PUT replaces the old file atomically).
//! - **One bad record never fails the batch**: it is dead-lettered with the reason and skipped.
//! - **Failures**: a failed file write or a failed dead-letter send is reported as one batch item
//!   failure, the LOWEST sequence number among the failed groups' first records and the
//!   undelivered invalid records; Lambda (and the local ESM) checkpoints everything before it and
//!   redelivers from it. Never a function error: a retry of the whole batch would not do better.
//! - **What redelivery can leave behind** (removed by compaction, which dedupes by `event_id`):
//!   when a redelivered batch has different boundaries than the original (a batch re-split by
//!   bisect-on-error or a timeout retry, or a partial-failure retry that starts at the failed
//!   record and may run further), a group's first/last sequence numbers change, so its rows are
//!   written under a new name while the earlier file (from the attempt that did not complete, or
//!   from a group that succeeded before another group failed) still holds some of the same
//!   records. Those rows are exact copies (same `event_id`, shard and sequence number).
//!   Nothing is ever lost: every record is either in a file written before the invocation
//!   returned successfully, dead-lettered, or at/after the reported failure.
//! - **Progress**: after a batch is written without a failure, each of its shards'
//!   [`ShardProgress`] marker is raised to the batch's last record: the lake is complete through
//!   it (what backfill fences on).

use std::sync::Arc;

use aws_lambda_events::event::streams::KinesisEventResponse;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sluice_dlq::{DeadLetter, DeadLetterQueue, FailureKind, SendRetry};
use sluice_lake::Lake;
use sluice_lake::layout::ShardProgress;
use sluice_schemas::Registry;
#[cfg(feature = "testing")]
use sluice_stream::kinesis_input::KinesisBatch;
use sluice_stream::kinesis_input::KinesisInputError;
use sluice_stream::{BatchHandler, HandlerError, SequenceNumber};
use sluice_telemetry::{Counter, Metrics, catalog};

#[cfg(feature = "testing")]
use crate::prepare::prepare;
use crate::prepare::{FailedGroup, LakeTables, PreparedFile, PreparedLakeBatch, prepare_payload};

/// Default `source` of the lake writer's dead letters.
pub const DEFAULT_SOURCE: &str = "lake-writer";
/// Default number of files written concurrently.
pub const DEFAULT_WRITE_CONCURRENCY: usize = 8;

/// Settings of the lake writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeWriterConfig {
    /// `DeadLetter::source` of invalid records.
    pub source: String,
    /// Files written at once.
    pub write_concurrency: usize,
    /// How dead-letter sends are retried.
    pub dlq_retry: SendRetry,
}

impl Default for LakeWriterConfig {
    fn default() -> Self {
        Self {
            source: DEFAULT_SOURCE.to_owned(),
            write_concurrency: DEFAULT_WRITE_CONCURRENCY,
            dlq_retry: SendRetry::default(),
        }
    }
}

/// The batch item failure to report among the failed records' sequence numbers (as sent): the
/// numerically lowest [`SequenceNumber`], the first of equal ones. A string that is not a
/// sequence number comes before every one that is: reported, it names no record of the batch,
/// so the trigger fails and redelivers the whole batch and nothing is skipped.
fn first_failure(failed: Vec<String>) -> Option<String> {
    failed.into_iter().min_by_key(|s| s.parse::<SequenceNumber>().ok())
}

/// What one invocation did (for logs, metrics and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub records: usize,
    /// Paths (relative to the lake root) of the files written.
    pub files_written: Vec<String>,
    pub rows_written: usize,
    /// Records dead-lettered as invalid.
    pub dead_lettered: usize,
    /// The sequence number reported as the batch item failure, if any.
    pub failed_from: Option<String>,
}

/// The lake writer handler (its own Lambda on the stream, and a handler of `sluice up`'s ESM).
pub struct LakeWriter<Q> {
    tables: LakeTables,
    lake: Lake,
    dead_letters: Q,
    config: LakeWriterConfig,
    metrics: Option<LakeMetrics>,
}

/// The lake writer's counters (`sluice_lake_*`).
#[derive(Debug, Clone)]
struct LakeMetrics {
    records: Arc<Counter>,
    rows: Arc<Counter>,
    files: Arc<Counter>,
    dead_lettered: Arc<Counter>,
    failed_batches: Arc<Counter>,
}

impl LakeMetrics {
    fn new(metrics: &Metrics) -> Self {
        Self {
            records: metrics.counter(&catalog::LAKE_RECORDS, []),
            rows: metrics.counter(&catalog::LAKE_ROWS_WRITTEN, []),
            files: metrics.counter(&catalog::LAKE_FILES_WRITTEN, []),
            dead_lettered: metrics.counter(&catalog::LAKE_DEAD_LETTERED, []),
            failed_batches: metrics.counter(&catalog::LAKE_FAILED_BATCHES, []),
        }
    }

    fn record(&self, outcome: &BatchOutcome) {
        self.records.add(outcome.records as u64);
        self.rows.add(outcome.rows_written as u64);
        self.files.add(outcome.files_written.len() as u64);
        self.dead_lettered.add(outcome.dead_lettered as u64);
        if outcome.failed_from.is_some() {
            self.failed_batches.inc();
        }
    }
}

impl<Q> std::fmt::Debug for LakeWriter<Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeWriter")
            .field("lake", &self.lake.url().as_str())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<Q: DeadLetterQueue> LakeWriter<Q> {
    /// A writer of `registry`'s event types into `lake`, dead-lettering into `dead_letters`.
    pub fn new(registry: Arc<Registry>, lake: Lake, dead_letters: Q) -> Self {
        Self::with_config(registry, lake, dead_letters, LakeWriterConfig::default())
    }

    /// [`LakeWriter::new`] with explicit settings.
    pub fn with_config(registry: Arc<Registry>, lake: Lake, dead_letters: Q, config: LakeWriterConfig) -> Self {
        Self { tables: LakeTables::new(registry), lake, dead_letters, config, metrics: None }
    }

    /// Counts records, rows, files, dead letters and failed batches in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = Some(LakeMetrics::new(metrics));
        self
    }

    /// The lake written to.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The dead-letter port invalid records go to.
    pub fn dead_letters(&self) -> &Q {
        &self.dead_letters
    }

    /// Handles one batch already parsed, as [`LakeWriter::process_payload`] does (test and
    /// benchmark support: a view of a `KinesisEvent` or of a `KinesisInput`); `now` stamps dead
    /// letters. The batch is prepared when this is called; the returned future does the I/O.
    #[cfg(feature = "testing")]
    pub fn process<'s>(
        &'s self,
        event: &KinesisBatch<'_>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = (KinesisEventResponse, BatchOutcome)> + use<'s, Q> {
        self.write(prepare(&self.tables, event), now)
    }

    /// [`LakeWriter::process`] of a raw invocation payload (the Lambda's path): parsed and
    /// prepared by [`prepare_payload`] when called; the returned future does the I/O. `Err`:
    /// the payload is malformed (as [`KinesisBatch::parse`] decides); nothing is written or
    /// dead-lettered.
    pub fn process_payload<'s>(
        &'s self,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<impl Future<Output = (KinesisEventResponse, BatchOutcome)> + use<'s, Q>, KinesisInputError> {
        let prepared = prepare_payload(&self.tables, payload)?;
        Ok(self.write(prepared, now))
    }

    /// Dead-letters, writes and reports a prepared batch.
    async fn write(
        &self,
        (prepared, prepare_failures): (PreparedLakeBatch, Vec<FailedGroup>),
        now: DateTime<Utc>,
    ) -> (KinesisEventResponse, BatchOutcome) {
        let mut failed: Vec<String> = Vec::new();
        for group in &prepare_failures {
            tracing::error!(
                partition = %group.partition.dir(),
                first_sequence = %group.first_sequence,
                error = %group.error,
                "lake group could not be encoded"
            );
            failed.push(group.first_sequence.clone());
        }
        let mut outcome = BatchOutcome { records: prepared.records, ..BatchOutcome::default() };

        if !prepared.invalid.is_empty() {
            let letters: Vec<DeadLetter> = prepared
                .invalid
                .iter()
                .map(|r| DeadLetter {
                    source: self.config.source.clone(),
                    kind: FailureKind::Invalid,
                    reason: r.reason.clone(),
                    shard_id: r.shard_id.clone(),
                    sequence_number: Some(r.sequence_number.clone()),
                    partition_key: Some(r.partition_key.clone()),
                    failed_at: now,
                    data: r.data.clone(),
                })
                .collect();
            match self.config.dlq_retry.send(&self.dead_letters, letters).await {
                Ok(()) => outcome.dead_lettered = prepared.invalid.len(),
                Err(error) => {
                    tracing::warn!(%error, count = prepared.invalid.len(), "dead-letter send failed; reporting records as failed");
                    failed.extend(prepared.invalid.iter().map(|r| r.sequence_number.clone()));
                }
            }
        }

        let lake = &self.lake;
        let results: Vec<(PreparedFile, Result<(), sluice_lake::LakeError>)> = futures::stream::iter(prepared.files)
            .map(|file| async move {
                let result = lake.put(&file.path, file.bytes.clone()).await;
                (file, result)
            })
            .buffer_unordered(self.config.write_concurrency.max(1))
            .collect()
            .await;
        for (file, result) in results {
            match result {
                Ok(()) => {
                    outcome.rows_written += file.rows;
                    outcome.files_written.push(file.path);
                }
                Err(error) => {
                    tracing::warn!(path = %file.path, %error, "lake file write failed");
                    failed.push(file.name.first_sequence);
                }
            }
        }
        outcome.files_written.sort();
        if failed.is_empty() {
            self.record_progress(&prepared.progress).await;
        }

        let mut response = KinesisEventResponse::default();
        if let Some(lowest) = first_failure(failed) {
            response.add_failure(lowest.clone());
            outcome.failed_from = Some(lowest);
        }
        if let Some(m) = &self.metrics {
            m.record(&outcome);
        }
        tracing::info!(
            records = outcome.records,
            files = outcome.files_written.len(),
            rows = outcome.rows_written,
            dead_lettered = outcome.dead_lettered,
            failed_from = outcome.failed_from.as_deref().unwrap_or(""),
            "lake batch"
        );
        (response, outcome)
    }
}

impl<Q> LakeWriter<Q> {
    /// Raises each shard's [`ShardProgress`] marker to the batch's last record. A failed write
    /// is only logged: the marker then lags, which its reader (backfill) tolerates.
    async fn record_progress(&self, progress: &[(String, String)]) {
        for (shard, through) in progress {
            let Ok(marker) = ShardProgress::new(shard, through) else { continue };
            if let Err(error) = self.lake.put(&marker.path(), Bytes::from(marker.body())).await {
                tracing::warn!(%shard, %error, "lake progress marker not written");
            }
        }
    }
}

/// The one entry, on the invocation body as Lambda delivers it: the Lambda
/// (`sluice_stream::lambda::run`) and `sluice up`'s event source mapping both call it.
impl<Q: DeadLetterQueue> BatchHandler for LakeWriter<Q> {
    async fn handle(&self, payload: Bytes) -> Result<KinesisEventResponse, HandlerError> {
        Ok(self.process_payload(&payload, Utc::now()).map_err(HandlerError::new)?.await.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn first_failure_is_numeric(a in 0u128..u128::MAX, b in 0u128..u128::MAX, pad in 0usize..4) {
            let (pa, pb) = (format!("{}{a}", "0".repeat(pad)), b.to_string());
            let expected = if a <= b { pa.clone() } else { pb.clone() };
            prop_assert_eq!(first_failure(vec![pa, pb]), Some(expected));
        }
    }

    #[test]
    fn first_failure_reports_what_does_not_parse_first() {
        let kinesis = "49590338271490256608559692538361571095921575989136588898".to_owned();
        assert_eq!(first_failure(vec![kinesis.clone(), "7".into()]), Some("7".to_owned()));
        assert_eq!(first_failure(vec![kinesis.clone(), String::new(), "12a".into()]), Some(String::new()));
        assert_eq!(first_failure(vec!["5".into(), "x".into(), "4".into(), "".into()]), Some("x".to_owned()));
        assert_eq!(first_failure(vec!["9".repeat(77), kinesis]), Some("9".repeat(77)));
        assert_eq!(first_failure(Vec::new()), None);
    }
}
