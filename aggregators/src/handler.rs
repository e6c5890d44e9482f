//! The aggregator batch handler: `KinesisEvent -> KinesisEventResponse`, the same function in the
//! aggregator Lambda and in `sluice up`.
//!
//! Thin: decode every record ([`Decoder`]), aggregate the whole batch in memory per shard
//! ([`BatchAggregator`]), dead-letter the invalid records (reason + original bytes; they are
//! not failures), then apply one delta per key with the exactly-once protocol
//! ([`apply_batch`]). Records whose delta could not be applied after retries, or whose dead
//! letter could not be stored, are reported as a batch item failure at the lowest such sequence
//! number (Lambda redelivers from there; everything already applied is skipped by the guards).
//! Never returns a function error.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::KinesisEventResponse;
use chrono::Utc;
use sluice_dlq::{DeadLetter, DeadLetterQueue, FailureKind};
use sluice_schemas::Registry;
use sluice_stream::{BatchHandler, HandlerError};
use sluice_telemetry::{Counter, Metrics};

use crate::aggregate::BatchAggregator;
use crate::decode::{Decoder, Path};
use crate::seq::SeqNo;
use crate::store::{AggregateStore, ApplyPolicy, apply_batch};
use crate::window::WindowConfig;

/// The `source` of this handler's dead letters.
pub const DEAD_LETTER_SOURCE: &str = "aggregator";

struct HandlerMetrics {
    aggregated: Arc<Counter>,
    invalid: Arc<Counter>,
    failed: Arc<Counter>,
    fast_path: Arc<Counter>,
    written: Arc<Counter>,
    skipped: Arc<Counter>,
    conflicts: Arc<Counter>,
}

/// The aggregator (see the module docs).
pub struct AggregatorHandler<S, D> {
    decoder: Decoder,
    store: S,
    dlq: D,
    config: WindowConfig,
    policy: ApplyPolicy,
    metrics: Option<HandlerMetrics>,
}

impl<S, D> std::fmt::Debug for AggregatorHandler<S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatorHandler").field("config", &self.config).finish_non_exhaustive()
    }
}

/// One record's position in the batch.
struct Item<'a> {
    record: &'a KinesisEventRecord,
    seq: SeqNo,
}

impl<S: AggregateStore, D: DeadLetterQueue> AggregatorHandler<S, D> {
    /// A handler over `store`, dead-lettering invalid records to `dlq`.
    pub fn new(registry: Arc<Registry>, store: S, dlq: D, config: WindowConfig) -> Self {
        AggregatorHandler {
            decoder: Decoder::new(registry),
            store,
            dlq,
            config,
            policy: ApplyPolicy::default(),
            metrics: None,
        }
    }

    /// Overrides the retry policy of store writes.
    pub fn with_policy(mut self, policy: ApplyPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Counts records and writes in `metrics` (`sluice_aggregator_*`).
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        let records = |outcome: &str| {
            metrics.counter(
                "sluice_aggregator_records_total",
                "Stream records seen by the aggregator, by outcome",
                &[("outcome", outcome)],
            )
        };
        let partials = |outcome: &str| {
            metrics.counter(
                "sluice_aggregator_partials_total",
                "Aggregate partials by apply outcome",
                &[("outcome", outcome)],
            )
        };
        self.metrics = Some(HandlerMetrics {
            aggregated: records("aggregated"),
            invalid: records("invalid"),
            failed: records("failed"),
            fast_path: metrics.counter(
                "sluice_aggregator_fast_decoded_total",
                "Records validated by the fast decoder (the rest by the schema registry)",
                &[],
            ),
            written: partials("written"),
            skipped: partials("skipped"),
            conflicts: partials("conflict"),
        });
        self
    }

    /// The store (for reads in the same process).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Processes one batch (see the module docs).
    pub async fn process(&self, event: KinesisEvent) -> KinesisEventResponse {
        // Group by shard, keeping order; records without a usable sequence number are invalid.
        let mut shards: Vec<(String, Vec<Item<'_>>)> = Vec::new();
        let mut letters = Vec::new();
        for record in &event.records {
            let seq = record.kinesis.sequence_number.parse::<SeqNo>();
            let shard = sluice_stream::shard_id_of(record);
            match (shard, seq) {
                (Some(shard), Ok(seq)) => match shards.iter_mut().find(|(s, _)| s == shard) {
                    Some((_, items)) => items.push(Item { record, seq }),
                    None => shards.push((shard.to_owned(), vec![Item { record, seq }])),
                },
                (shard, seq) => letters.push((
                    None,
                    dead_letter(
                        record,
                        shard,
                        format!(
                            "record has no usable shard id / sequence number (eventID {:?}, \
                             sequenceNumber {:?}{})",
                            record.event_id,
                            record.kinesis.sequence_number,
                            seq.err().map(|e| format!(": {e}")).unwrap_or_default()
                        ),
                    ),
                )),
            }
        }

        let mut failures: Vec<String> = Vec::new();
        let mut batches = Vec::with_capacity(shards.len());
        for (shard, items) in &shards {
            let mut agg = BatchAggregator::new(self.config.clone());
            let mut fast = 0u64;
            for item in items {
                match self.decoder.decode(&item.record.kinesis.data) {
                    Ok((c, path)) => {
                        fast += u64::from(path == Path::Fast);
                        agg.add(item.seq, &c);
                    }
                    Err(rejection) => letters.push((
                        Some((shard.as_str(), item.seq)),
                        dead_letter(item.record, Some(shard), rejection.to_string()),
                    )),
                }
            }
            if let Some(m) = &self.metrics {
                m.aggregated.add(agg.len() as u64);
                m.fast_path.add(fast);
            }
            batches.push((shard.as_str(), items, agg.finish()));
        }

        // Dead letters first: if they cannot be stored, their records are failures.
        let mut dlq_failed: Vec<(&str, SeqNo)> = Vec::new();
        if !letters.is_empty() {
            if let Some(m) = &self.metrics {
                m.invalid.add(letters.len() as u64);
            }
            let positions: Vec<Option<(&str, SeqNo)>> = letters.iter().map(|(p, _)| *p).collect();
            let payload: Vec<DeadLetter> = letters.into_iter().map(|(_, l)| l).collect();
            if let Err(e) = self.send_letters(payload).await {
                tracing::error!(error = %e, "could not store dead letters; reporting their records as failed");
                dlq_failed.extend(positions.into_iter().flatten());
            }
        }

        for (shard, items, delta) in &batches {
            let report = apply_batch(&self.store, shard, delta, &self.policy).await;
            if let Some(m) = &self.metrics {
                m.written.add(report.written as u64);
                m.skipped.add(report.skipped as u64);
                m.conflicts.add(report.conflicts as u64);
            }
            if !report.errors.is_empty() {
                tracing::warn!(shard, errors = ?report.errors, "aggregate partials not applied");
            }
            let first_failed =
                dlq_failed.iter().filter(|(s, _)| s == shard).map(|(_, q)| *q).chain(report.failed_from).min();
            if let Some(from) = first_failed {
                // Report the original string of the first record at or after `from`.
                if let Some(item) = items.iter().filter(|i| i.seq >= from).min_by_key(|i| i.seq) {
                    if let Some(m) = &self.metrics {
                        m.failed.add(items.iter().filter(|i| i.seq >= from).count() as u64);
                    }
                    failures.push(item.record.kinesis.sequence_number.clone());
                }
            }
        }
        let mut response = KinesisEventResponse::default();
        response.set_failures(failures);
        response
    }

    async fn send_letters(&self, letters: Vec<DeadLetter>) -> Result<(), sluice_dlq::DlqError> {
        let mut attempt = 0u32;
        loop {
            match self.dlq.send(letters.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt + 1 >= self.policy.max_attempts.max(1) => return Err(e),
                Err(sluice_dlq::DlqError::Unavailable(_)) => {
                    tokio::time::sleep(
                        self.policy.base_backoff.saturating_mul(1 << attempt.min(6)).min(Duration::from_secs(2)),
                    )
                    .await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn dead_letter(record: &KinesisEventRecord, shard: Option<&str>, reason: String) -> DeadLetter {
    DeadLetter {
        source: DEAD_LETTER_SOURCE.to_owned(),
        kind: FailureKind::Invalid,
        reason,
        shard_id: shard.map(str::to_owned),
        sequence_number: Some(record.kinesis.sequence_number.clone()).filter(|s| !s.is_empty()),
        partition_key: Some(record.kinesis.partition_key.clone()).filter(|s| !s.is_empty()),
        failed_at: Utc::now(),
        data: record.kinesis.data.0.clone(),
    }
}

impl<S: AggregateStore, D: DeadLetterQueue> BatchHandler for AggregatorHandler<S, D> {
    async fn handle(&self, event: KinesisEvent) -> Result<KinesisEventResponse, HandlerError> {
        Ok(self.process(event).await)
    }
}

/// The Lambda entry point: the same [`AggregatorHandler::process`] on the payload.
pub async fn handle_lambda_event<S: AggregateStore, D: DeadLetterQueue>(
    handler: &AggregatorHandler<S, D>,
    event: lambda_runtime::LambdaEvent<KinesisEvent>,
) -> Result<KinesisEventResponse, lambda_runtime::Error> {
    Ok(handler.process(event.payload).await)
}
