//! The aggregator batch handler (thin I/O around [`crate::prepare`]): one Kinesis batch ->
//! `KinesisEventResponse`. One entry, [`BatchHandler::handle`] on the raw invocation body
//! ([`AggregatorHandler::process_payload`]), serves the aggregator Lambda and `sluice up`'s
//! event source mapping alike.
//!
//! Dead-letter the invalid records (they are not failures; sent with the shared
//! `sluice_dlq::SendRetry`), then apply one delta per key with the exactly-once protocol
//! ([`apply_batch`]). Records whose delta could not be applied after retries, or whose dead
//! letter could not be stored, are reported as a batch item failure at the lowest such sequence
//! number (Lambda redelivers from there; everything already applied is skipped by the guards).
//! Never returns a function error.

use std::sync::Arc;

use aws_lambda_events::event::streams::KinesisEventResponse;
use bytes::Bytes;
use chrono::Utc;
use sluice_dlq::{DeadLetter, DeadLetterQueue, SendRetry};
use sluice_schemas::Registry;
use sluice_stream::kinesis_input::{KinesisBatch, KinesisInputError};
use sluice_stream::{BatchHandler, HandlerError, SequenceNumber};
use sluice_telemetry::{Counter, Metrics, catalog};

use crate::decode::Decoder;
#[cfg(feature = "testing")]
use crate::prepare::prepare_batch;
use crate::prepare::{BatchPreparer, PreparedAggregates, ShardBatch, records_hint};
use crate::store::{AggregateStore, ApplyPolicy, apply_batch};
use crate::window::WindowConfig;

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
    dlq_retry: SendRetry,
    metrics: Option<HandlerMetrics>,
}

impl<S, D> std::fmt::Debug for AggregatorHandler<S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatorHandler").field("config", &self.config).finish_non_exhaustive()
    }
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
            dlq_retry: SendRetry::default(),
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
        let records = |outcome: &str| metrics.counter(&catalog::AGGREGATOR_RECORDS, [outcome]);
        let partials = |outcome: &str| metrics.counter(&catalog::AGGREGATOR_PARTIALS, [outcome]);
        self.metrics = Some(HandlerMetrics {
            aggregated: records("aggregated"),
            invalid: records("invalid"),
            failed: records("failed"),
            fast_path: metrics.counter(&catalog::AGGREGATOR_FAST_DECODED, []),
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

    /// Processes one batch already parsed, as [`AggregatorHandler::process_payload`] does with
    /// the two passes of [`prepare_batch`] (test and benchmark support: a view of a
    /// `KinesisEvent` or of a `KinesisInput`).
    #[cfg(feature = "testing")]
    pub async fn process(&self, input: &KinesisBatch<'_>) -> KinesisEventResponse {
        self.apply(prepare_batch(&self.decoder, &self.config, input, Utc::now())).await
    }

    /// Processes one raw Lambda invocation payload: parsed by [`KinesisBatch::parse_with`] with
    /// every record decoded, validated and aggregated as the parser reads it
    /// ([`BatchPreparer`]), then applied as [`AggregatorHandler::process`] does (same outcome
    /// as `process` on the parsed batch). `Err` (nothing applied, nothing dead-lettered) when
    /// the payload is not a Kinesis event.
    pub async fn process_payload(&self, payload: &[u8]) -> Result<KinesisEventResponse, KinesisInputError> {
        let mut preparer =
            BatchPreparer::with_capacity(&self.decoder, &self.config, Utc::now(), records_hint(payload.len()));
        let batch = KinesisBatch::parse_retaining(payload, |i, r| preparer.add(i, r))?;
        Ok(self.apply(preparer.finish(&batch)).await)
    }

    /// Dead-letters and applies a prepared batch (see the module docs).
    async fn apply(&self, prepared: PreparedAggregates<'_>) -> KinesisEventResponse {
        if let Some(m) = &self.metrics {
            m.aggregated.add(prepared.aggregated() as u64);
            m.fast_path.add(prepared.fast_decoded);
        }
        let PreparedAggregates { shards, invalid, .. } = prepared;

        // Dead letters first: if they cannot be stored, their records are failures.
        let mut dlq_failed: Vec<(&str, SequenceNumber)> = Vec::new();
        if !invalid.is_empty() {
            if let Some(m) = &self.metrics {
                m.invalid.add(invalid.len() as u64);
            }
            let positions: Vec<Option<(&str, SequenceNumber)>> = invalid.iter().map(|i| i.position).collect();
            let payload: Vec<DeadLetter> = invalid.into_iter().map(|i| i.letter).collect();
            if let Err(e) = self.dlq_retry.send(&self.dlq, payload).await {
                tracing::error!(error = %e, "could not store dead letters; reporting their records as failed");
                dlq_failed.extend(positions.into_iter().flatten());
            }
        }

        let mut failures: Vec<String> = Vec::new();
        for ShardBatch { shard, items, delta } in &shards {
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
                    failures.push(item.sequence_number.as_str().to_owned());
                }
            }
        }
        let mut response = KinesisEventResponse::default();
        response.set_failures(failures);
        response
    }
}

/// The one entry, on the invocation body as Lambda delivers it: the Lambda
/// (`sluice_stream::lambda::run`) and `sluice up`'s event source mapping both call it.
impl<S: AggregateStore, D: DeadLetterQueue> BatchHandler for AggregatorHandler<S, D> {
    async fn handle(&self, payload: Bytes) -> Result<KinesisEventResponse, HandlerError> {
        self.process_payload(&payload).await.map_err(HandlerError::new)
    }
}
