//! The aggregator batch handler: Kinesis batch -> `KinesisEventResponse`, the same function in
//! the aggregator Lambda (raw payload parsed by [`KinesisBatch::parse`]) and in `sluice up`
//! (`KinesisEvent` from the local event source mapping, viewed as a [`KinesisBatch`] without
//! copying).
//!
//! Thin: decode every record ([`Decoder`]), aggregate the whole batch in memory per shard
//! ([`BatchAggregator`]) — together the pure [`prepare_batch`] — dead-letter the invalid records (reason + original bytes; they are
//! not failures), then apply one delta per key with the exactly-once protocol
//! ([`apply_batch`]). Records whose delta could not be applied after retries, or whose dead
//! letter could not be stored, are reported as a batch item failure at the lowest such sequence
//! number (Lambda redelivers from there; everything already applied is skipped by the guards).
//! Never returns a function error.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use chrono::{DateTime, Utc};
use sluice_dlq::{DeadLetter, DeadLetterQueue, FailureKind};
use sluice_schemas::Registry;
use sluice_stream::kinesis_input::{KinesisBatch, KinesisInput, KinesisRecord};
use sluice_stream::{BatchHandler, HandlerError};
use sluice_telemetry::{Counter, Metrics};

use crate::aggregate::{BatchAggregator, BatchDelta, Contribution};
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
    record: KinesisRecord<'a>,
    seq: SeqNo,
}

/// One shard's records of a batch and their aggregated deltas.
pub struct ShardBatch<'a> {
    /// The shard id.
    pub shard: &'a str,
    items: Vec<Item<'a>>,
    /// One delta per key (see [`BatchAggregator`]).
    pub delta: BatchDelta,
}

/// An invalid record: where it was (shard and sequence number, when usable) and its letter.
struct Invalid<'a> {
    position: Option<(&'a str, SeqNo)>,
    letter: DeadLetter,
}

/// The pure part of a batch ([`prepare_batch`]): per-shard deltas and the dead letters.
pub struct PreparedBatch<'a> {
    /// Shards in first-seen order.
    pub shards: Vec<ShardBatch<'a>>,
    invalid: Vec<Invalid<'a>>,
    /// Records validated by the decoder's fast path.
    pub fast_decoded: u64,
}

impl PreparedBatch<'_> {
    /// Valid records aggregated.
    pub fn aggregated(&self) -> usize {
        self.shards.iter().map(|s| s.delta.event_count()).sum()
    }

    /// Invalid records (to dead-letter).
    pub fn invalid(&self) -> usize {
        self.invalid.len()
    }
}

impl std::fmt::Debug for PreparedBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedBatch")
            .field("shards", &self.shards.len())
            .field("aggregated", &self.aggregated())
            .field("invalid", &self.invalid.len())
            .finish()
    }
}

/// Decodes, validates and aggregates one batch (pure, no I/O): records grouped by shard in
/// order, every record validated against its schema ([`Decoder::decode`]), valid ones
/// aggregated per shard, invalid ones (or without a usable shard id / sequence number) turned
/// into dead letters with the registry's reason and the original bytes. `now` stamps the
/// letters. The handler's own first step; the benchmark measures exactly this.
pub fn prepare_batch<'a>(
    decoder: &Decoder,
    config: &WindowConfig,
    input: &'a KinesisBatch<'_>,
    now: DateTime<Utc>,
) -> PreparedBatch<'a> {
    // Group by shard, keeping order; records without a usable sequence number are invalid.
    let mut groups: Vec<(&'a str, Vec<Item<'a>>)> = Vec::new();
    let mut invalid = Vec::new();
    // The group of the previous record: consecutive records are almost always of one shard.
    let mut last: Option<usize> = None;
    for record in input.iter() {
        let seq = record.sequence_number.parse::<SeqNo>();
        let cached = last.and_then(|g| groups.get(g)).map(|(s, _)| *s).filter(|s| same_shard(record.event_id, s));
        let shard = cached.or_else(|| record.shard_id());
        match (shard, seq) {
            (Some(shard), Ok(seq)) => {
                let g = match last.filter(|_| cached.is_some()) {
                    Some(g) => g,
                    None => match groups.iter().position(|(s, _)| *s == shard) {
                        Some(g) => g,
                        None => {
                            groups.push((shard, Vec::with_capacity(input.len())));
                            groups.len() - 1
                        }
                    },
                };
                last = Some(g);
                if let Some((_, items)) = groups.get_mut(g) {
                    items.push(Item { record, seq });
                }
            }
            (shard, seq) => invalid.push(Invalid {
                position: None,
                letter: dead_letter(
                    &record,
                    shard,
                    format!(
                        "record has no usable shard id / sequence number (eventID {:?}, \
                         sequenceNumber {:?}{})",
                        record.event_id,
                        record.sequence_number,
                        seq.err().map(|e| format!(": {e}")).unwrap_or_default()
                    ),
                    now,
                ),
            }),
        }
    }

    let mut fast_decoded = 0u64;
    let mut shards = Vec::with_capacity(groups.len());
    for (shard, items) in groups {
        let mut agg = BatchAggregator::new(config.clone());
        // One contribution reused for every record: no allocation per record.
        let mut c = Contribution::empty();
        for item in &items {
            match decoder.decode_into(item.record.data, &mut c) {
                Ok(path) => {
                    fast_decoded += u64::from(path == Path::Fast);
                    agg.add(item.seq, &c);
                }
                Err(rejection) => invalid.push(Invalid {
                    position: Some((shard, item.seq)),
                    letter: dead_letter(&item.record, Some(shard), rejection.to_string(), now),
                }),
            }
        }
        shards.push(ShardBatch { shard, items, delta: agg.finish() });
    }
    PreparedBatch { shards, invalid, fast_decoded }
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

    /// Processes one batch (see the module docs): a [`KinesisBatch`] parsed from the raw
    /// payload (what the Lambda binary does) or a view of a `KinesisEvent` (what the local event
    /// source mapping sends) or of a [`KinesisInput`].
    pub async fn process(&self, input: &KinesisBatch<'_>) -> KinesisEventResponse {
        let prepared = prepare_batch(&self.decoder, &self.config, input, Utc::now());
        if let Some(m) = &self.metrics {
            m.aggregated.add(prepared.aggregated() as u64);
            m.fast_path.add(prepared.fast_decoded);
        }
        let PreparedBatch { shards, invalid, .. } = prepared;

        // Dead letters first: if they cannot be stored, their records are failures.
        let mut dlq_failed: Vec<(&str, SeqNo)> = Vec::new();
        if !invalid.is_empty() {
            if let Some(m) = &self.metrics {
                m.invalid.add(invalid.len() as u64);
            }
            let positions: Vec<Option<(&str, SeqNo)>> = invalid.iter().map(|i| i.position).collect();
            let payload: Vec<DeadLetter> = invalid.into_iter().map(|i| i.letter).collect();
            if let Err(e) = self.send_letters(payload).await {
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
                    failures.push(item.record.sequence_number.to_owned());
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

/// Whether `event_id` is `"<shard>:<decimal>"`, i.e. `shard_id()` would return `shard` (its
/// last `:` is the one after `shard`, as the rest is non-empty digits). `shard` is non-empty.
#[inline]
fn same_shard(event_id: &str, shard: &str) -> bool {
    match event_id.as_bytes().split_at_checked(shard.len()) {
        Some((head, [b':', digits @ ..])) => head == shard.as_bytes() && all_digits(digits),
        _ => false,
    }
}

/// Non-empty and only ASCII digits (8 bytes at a time).
#[inline]
fn all_digits(d: &[u8]) -> bool {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let mut chunks = d.chunks_exact(8);
    let words = chunks.all(|c| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let v = u64::from_le_bytes(w);
        // High nibble 3 and low nibble <= 9 in every byte.
        v & 0xF0F0_F0F0_F0F0_F0F0 == ZEROS
            && (v.wrapping_sub(ZEROS)).wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0 == 0
    });
    !d.is_empty() && words && chunks.remainder().iter().all(u8::is_ascii_digit)
}

fn dead_letter(record: &KinesisRecord<'_>, shard: Option<&str>, reason: String, now: DateTime<Utc>) -> DeadLetter {
    DeadLetter {
        source: DEAD_LETTER_SOURCE.to_owned(),
        kind: FailureKind::Invalid,
        reason,
        shard_id: shard.map(str::to_owned),
        sequence_number: Some(record.sequence_number.to_owned()).filter(|s| !s.is_empty()),
        partition_key: Some(record.partition_key.to_owned()).filter(|s| !s.is_empty()),
        failed_at: now,
        data: record.data.to_vec(),
    }
}

impl<S: AggregateStore, D: DeadLetterQueue> BatchHandler for AggregatorHandler<S, D> {
    async fn handle(&self, event: KinesisEvent) -> Result<KinesisEventResponse, HandlerError> {
        Ok(self.process(&KinesisBatch::from(&event)).await)
    }
}

/// The Lambda entry point over a deserialized payload (kept for callers holding a
/// [`KinesisInput`]; the aggregator Lambda binary uses [`handle_raw_invocation`]).
pub async fn handle_lambda_event<S: AggregateStore, D: DeadLetterQueue>(
    handler: &AggregatorHandler<S, D>,
    event: lambda_runtime::LambdaEvent<KinesisInput>,
) -> Result<KinesisEventResponse, lambda_runtime::Error> {
    Ok(handler.process(&KinesisBatch::from(&event.payload)).await)
}

/// The aggregator Lambda's entry point: the raw invocation body (handed over by
/// [`RawPayloads`]) parsed by [`KinesisBatch::parse`] (no allocation per record), then [`AggregatorHandler::process`].
/// A body that is not a Kinesis event (or a missing body) is a function error, as a payload
/// `lambda_runtime` could not deserialize is.
pub async fn handle_raw_invocation<S: AggregateStore, D: DeadLetterQueue>(
    handler: &AggregatorHandler<S, D>,
    payloads: &RawPayloads,
    event: lambda_runtime::LambdaEvent<RawPayload>,
) -> Result<KinesisEventResponse, lambda_runtime::Error> {
    let body = payloads
        .take(&event.context.request_id)
        .ok_or("the invocation body was not handed over (RawPayloads layer missing?)")?;
    let input = KinesisBatch::parse(&body)?;
    Ok(handler.process(&input).await)
}

/// The payload the runtime deserializes when [`RawPayloads`] is installed: the `null` the layer
/// leaves in place of the body (the body itself is taken from [`RawPayloads::take`]).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
pub struct RawPayload;

/// A `lambda_runtime` layer that moves each invocation's raw body aside (keyed by request id)
/// and passes `null` on, so the runtime's `serde_json` pass over the body (a full scan of a
/// ~6 MB Kinesis payload, ~25% of the aggregator's CPU) is skipped and the handler parses the
/// bytes once itself ([`handle_raw_invocation`]). Install it with `Runtime::layer`; the handler
/// must take its body ([`RawPayloads::take`]). Bodies never taken (the handler was not called)
/// are dropped once more than [`RawPayloads::MAX_PENDING`] are waiting. Clones share the bodies.
#[derive(Clone, Default)]
pub struct RawPayloads {
    pending: Arc<std::sync::Mutex<std::collections::VecDeque<(String, bytes::Bytes)>>>,
}

impl std::fmt::Debug for RawPayloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPayloads").finish_non_exhaustive()
    }
}

impl RawPayloads {
    /// Bodies kept waiting at most (one per concurrent invocation is the normal state).
    pub const MAX_PENDING: usize = 64;

    /// A new, empty hand-over point.
    pub fn new() -> Self {
        Self::default()
    }

    fn put(&self, request_id: String, body: bytes::Bytes) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while pending.len() >= Self::MAX_PENDING {
            pending.pop_front();
        }
        pending.push_back((request_id, body));
    }

    /// The raw body of invocation `request_id`, once.
    pub fn take(&self, request_id: &str) -> Option<bytes::Bytes> {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = pending.iter().position(|(id, _)| id == request_id)?;
        pending.remove(at).map(|(_, body)| body)
    }
}

impl<S> lambda_runtime::tower::Layer<S> for RawPayloads {
    type Service = RawPayloadService<S>;
    fn layer(&self, inner: S) -> RawPayloadService<S> {
        RawPayloadService { inner, payloads: self.clone() }
    }
}

/// The service of the [`RawPayloads`] layer.
#[derive(Clone, Debug)]
pub struct RawPayloadService<S> {
    inner: S,
    payloads: RawPayloads,
}

impl<S: lambda_runtime::Service<lambda_runtime::LambdaInvocation>>
    lambda_runtime::Service<lambda_runtime::LambdaInvocation> for RawPayloadService<S>
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: lambda_runtime::LambdaInvocation) -> S::Future {
        let body = std::mem::replace(&mut req.body, bytes::Bytes::from_static(b"null"));
        self.payloads.put(req.context.request_id.clone(), body);
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shard_id(event_id: &str) -> Option<&str> {
        KinesisRecord { event_id, sequence_number: "", partition_key: "", data: b"" }.shard_id()
    }

    #[test]
    fn same_shard_examples() {
        let s = "shardId-000000000001";
        assert!(same_shard("shardId-000000000001:4959033827149025660855969253", s));
        assert!(same_shard("shardId-000000000001:0", s));
        for e in [
            "shardId-000000000001",
            "shardId-000000000001:",
            "shardId-000000000001:12a",
            "shardId-000000000001:1234567:8",
            "shardId-000000000002:1",
            "shardId-0000000000011:1",
            "",
        ] {
            assert!(!same_shard(e, s), "{e}");
            assert_ne!(shard_id(e), Some(s), "{e}");
        }
    }

    proptest! {
        #[test]
        fn same_shard_agrees_with_shard_id(shard in "[a-z:0-9-]{1,12}", rest in "[0-9:/a]{0,30}") {
            let e = format!("{shard}{rest}");
            if same_shard(&e, &shard) {
                prop_assert_eq!(shard_id(&e), Some(shard.as_str()));
            } else if let Some(t) = e.strip_prefix(&shard).and_then(|r| r.strip_prefix(':')) {
                prop_assert!(t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }
}
