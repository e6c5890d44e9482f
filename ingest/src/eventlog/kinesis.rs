//! Kinesis Data Streams adapter: `PutRecords` in chunks within the service limits, retrying only
//! the failed records with exponential backoff and full jitter until a deadline.
//!
//! - **Chunks**: at most [`KinesisLimits::max_records`] (500) records and
//!   [`KinesisLimits::max_bytes`] (5 MiB of data + partition keys) per call; a single record is
//!   at most 1 MiB (enforced by the Router before it gets here).
//! - **Partition key**: whatever the caller gives; ingest uses the `event_id` (a random UUID /
//!   ULID), which spreads records evenly over shards (MD5 of the key) and sends a producer's
//!   duplicates of one event to the same shard.
//! - **Retries**: per-record failures (`ProvisionedThroughputExceededException`,
//!   `InternalFailure`, ...) and retryable whole-call errors (throttling, 5xx, timeouts,
//!   connection errors) are retried, only for the records not yet written, with full-jitter
//!   backoff (`random(0, min(max, base * 2^attempt))`), never sleeping past the deadline.
//!   Non-retryable call errors (stream not found, access denied, bad request) fail the pending
//!   records at once. What is not written by the deadline is reported `Failed` per record.
//!
//! Only [`SdkPutRecords`] names `aws_sdk_kinesis` types; the retry logic works over the
//! [`PutRecordsApi`] seam so tests can force partial failures through the real code.

use std::time::Duration;

use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::put_records::PutRecordsError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use rand::Rng;
use tokio::time::Instant;

use super::{AppendOutcome, Appended, BoxFuture, EventLog, LogRecord};

/// Kinesis `PutRecords` limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KinesisLimits {
    /// Records per call (service limit 500).
    pub max_records: usize,
    /// Bytes per call, data + partition keys (service limit 5 MiB).
    pub max_bytes: usize,
}

impl Default for KinesisLimits {
    fn default() -> Self {
        Self { max_records: 500, max_bytes: 5 * 1024 * 1024 }
    }
}

/// Backoff and deadline of the adapter's retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total time one `append` may take before leftovers are reported failed.
    pub deadline: Duration,
    /// First backoff ceiling; doubles each attempt.
    pub base: Duration,
    /// Largest backoff ceiling.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// Deadline 5 s (well inside API Gateway's 30 s), backoff 25 ms doubling to 1 s.
    fn default() -> Self {
        Self { deadline: Duration::from_secs(5), base: Duration::from_millis(25), max: Duration::from_secs(1) }
    }
}

impl RetryPolicy {
    /// The backoff ceiling before retry number `attempt` (0-based): `min(max, base * 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// The result for one entry of a `PutRecords` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    /// Written.
    Ok(Appended),
    /// Not written; `code` is Kinesis' `ErrorCode`.
    Err {
        /// e.g. `ProvisionedThroughputExceededException`, `InternalFailure`.
        code: String,
        /// Kinesis' `ErrorMessage`.
        message: String,
    },
}

/// A `PutRecords` call that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PutRecords failed ({code}): {message}")]
pub struct PutRecordsCallError {
    /// Whether retrying the same call may succeed (throttling, 5xx, timeout, connection).
    pub retryable: bool,
    /// Error code or kind.
    pub code: String,
    /// Detail.
    pub message: String,
}

/// The one Kinesis operation the adapter needs (the seam tests use to inject failures).
pub trait PutRecordsApi: Send + Sync + 'static {
    /// One `PutRecords` call. On success, exactly one result per entry, in order.
    fn put_records<'a>(
        &'a self,
        entries: &'a [LogRecord],
    ) -> BoxFuture<'a, Result<Vec<EntryResult>, PutRecordsCallError>>;
}

/// [`PutRecordsApi`] over the AWS SDK client. `stream` is a stream name or ARN.
#[derive(Debug, Clone)]
pub struct SdkPutRecords {
    client: aws_sdk_kinesis::Client,
    stream: String,
}

impl SdkPutRecords {
    /// Writes to `stream` (name, or ARN when it starts with `arn:`).
    pub fn new(client: aws_sdk_kinesis::Client, stream: impl Into<String>) -> Self {
        Self { client, stream: stream.into() }
    }
}

impl PutRecordsApi for SdkPutRecords {
    fn put_records<'a>(
        &'a self,
        entries: &'a [LogRecord],
    ) -> BoxFuture<'a, Result<Vec<EntryResult>, PutRecordsCallError>> {
        Box::pin(async move {
            let mut request = self.client.put_records();
            request = if self.stream.starts_with("arn:") {
                request.stream_arn(&self.stream)
            } else {
                request.stream_name(&self.stream)
            };
            for entry in entries {
                let built = PutRecordsRequestEntry::builder()
                    .partition_key(&entry.partition_key)
                    .data(Blob::new(entry.data.to_vec()))
                    .build()
                    .map_err(|e| PutRecordsCallError {
                        retryable: false,
                        code: "InvalidArgument".into(),
                        message: e.to_string(),
                    })?;
                request = request.records(built);
            }
            let output = request.send().await.map_err(classify)?;
            let results = output.records();
            if results.len() != entries.len() {
                return Err(PutRecordsCallError {
                    retryable: true,
                    code: "MalformedResponse".into(),
                    message: format!("{} results for {} records", results.len(), entries.len()),
                });
            }
            Ok(results
                .iter()
                .map(|r| match (r.shard_id(), r.sequence_number(), r.error_code()) {
                    (Some(shard), Some(seq), None) => {
                        EntryResult::Ok(Appended { shard_id: shard.to_owned(), sequence_number: seq.to_owned() })
                    }
                    (_, _, code) => EntryResult::Err {
                        code: code.unwrap_or("Unknown").to_owned(),
                        message: r.error_message().unwrap_or_default().to_owned(),
                    },
                })
                .collect())
        })
    }
}

/// Sorts SDK errors into retryable or not.
fn classify(err: SdkError<PutRecordsError>) -> PutRecordsCallError {
    let message = format!("{}", aws_sdk_kinesis::error::DisplayErrorContext(&err));
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let retryable = matches!(
                e,
                PutRecordsError::ProvisionedThroughputExceededException(_)
                    | PutRecordsError::KmsThrottlingException(_)
                    | PutRecordsError::KmsInvalidStateException(_)
            ) || service.raw().status().is_server_error()
                || service.raw().status().as_u16() == 429;
            let code = aws_sdk_kinesis::error::ProvideErrorMetadata::code(e).unwrap_or("ServiceError").to_owned();
            PutRecordsCallError { retryable, code, message }
        }
        SdkError::TimeoutError(_) => PutRecordsCallError { retryable: true, code: "Timeout".into(), message },
        SdkError::DispatchFailure(_) => PutRecordsCallError { retryable: true, code: "Dispatch".into(), message },
        SdkError::ResponseError(_) => PutRecordsCallError { retryable: true, code: "Response".into(), message },
        _ => PutRecordsCallError { retryable: false, code: "Construction".into(), message },
    }
}

/// Whether a per-record `ErrorCode` is worth retrying (all are, per the Kinesis docs:
/// `ProvisionedThroughputExceededException` and `InternalFailure`); `KMS*` access errors are not.
fn entry_retryable(code: &str) -> bool {
    !matches!(
        code,
        "KMSAccessDeniedException"
            | "KMSDisabledException"
            | "KMSNotFoundException"
            | "KMSOptInRequired"
            | "AccessDeniedException"
    )
}

/// The Kinesis [`EventLog`].
pub struct KinesisEventLog<P = SdkPutRecords> {
    api: P,
    limits: KinesisLimits,
    retry: RetryPolicy,
}

impl KinesisEventLog<SdkPutRecords> {
    /// Writes to `stream` (name or ARN) with the default limits and retry policy.
    pub fn new(client: aws_sdk_kinesis::Client, stream: impl Into<String>) -> Self {
        Self::with_api(SdkPutRecords::new(client, stream))
    }
}

impl<P: PutRecordsApi> KinesisEventLog<P> {
    /// Over any [`PutRecordsApi`] (tests wrap the SDK one to inject failures).
    pub fn with_api(api: P) -> Self {
        Self { api, limits: KinesisLimits::default(), retry: RetryPolicy::default() }
    }

    /// Replaces the retry policy.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The `PutRecords` seam (tests inspect their wrapper).
    pub fn api(&self) -> &P {
        &self.api
    }

    /// Replaces the chunk limits (tests use small ones).
    #[must_use]
    pub fn limits(mut self, limits: KinesisLimits) -> Self {
        self.limits = limits;
        self
    }

    async fn write_all(&self, records: Vec<LogRecord>) -> Vec<AppendOutcome> {
        let deadline = Instant::now() + self.retry.deadline;
        let mut outcomes: Vec<Option<AppendOutcome>> = vec![None; records.len()];
        for chunk in chunks(&records, self.limits) {
            self.write_chunk(&records, chunk, deadline, &mut outcomes).await;
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| AppendOutcome::failed("Unavailable", "not attempted")))
            .collect()
    }

    /// Writes the records at `indices`, retrying failures until `deadline`.
    async fn write_chunk(
        &self,
        records: &[LogRecord],
        mut pending: Vec<usize>,
        deadline: Instant,
        outcomes: &mut [Option<AppendOutcome>],
    ) {
        let mut attempt: u32 = 0;
        loop {
            let batch: Vec<LogRecord> = pending.iter().filter_map(|&i| records.get(i).cloned()).collect();
            let mut still: Vec<usize> = Vec::new();
            let mut last_failure = ("Unavailable".to_owned(), String::new());
            let mut give_up = false;
            match self.api.put_records(&batch).await {
                Ok(results) if results.len() == pending.len() => {
                    for (&i, result) in pending.iter().zip(results) {
                        match result {
                            EntryResult::Ok(appended) => set(outcomes, i, AppendOutcome::Written(appended)),
                            EntryResult::Err { code, message } => {
                                if entry_retryable(&code) {
                                    still.push(i);
                                    last_failure = (code, message);
                                } else {
                                    set(outcomes, i, AppendOutcome::failed(code, message));
                                }
                            }
                        }
                    }
                }
                Ok(results) => {
                    still = pending.clone();
                    last_failure = (
                        "MalformedResponse".into(),
                        format!("{} results for {} records", results.len(), pending.len()),
                    );
                }
                Err(e) => {
                    still = pending.clone();
                    give_up = !e.retryable;
                    last_failure = (e.code, e.message);
                }
            }
            if still.is_empty() {
                return;
            }
            let pause = jitter(self.retry.ceiling(attempt));
            if give_up || Instant::now() + pause >= deadline {
                tracing::warn!(
                    records = still.len(),
                    attempts = attempt + 1,
                    code = %last_failure.0,
                    "PutRecords: records not written before the deadline"
                );
                for i in still {
                    set(outcomes, i, AppendOutcome::failed(last_failure.0.clone(), last_failure.1.clone()));
                }
                return;
            }
            tracing::debug!(records = still.len(), attempt, code = %last_failure.0, "PutRecords: retrying failed records");
            tokio::time::sleep(pause).await;
            pending = still;
            attempt = attempt.saturating_add(1);
        }
    }
}

fn set(outcomes: &mut [Option<AppendOutcome>], i: usize, outcome: AppendOutcome) {
    if let Some(slot) = outcomes.get_mut(i) {
        *slot = Some(outcome);
    }
}

/// Uniform in `[0, ceiling]` (full jitter).
fn jitter(ceiling: Duration) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// Splits record indices into consecutive chunks within `limits` (every chunk has at least one
/// record, even one over the byte limit, which Kinesis then rejects per record).
pub fn chunks(records: &[LogRecord], limits: KinesisLimits) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0usize;
    for (i, r) in records.iter().enumerate() {
        let size = r.data.len() + r.partition_key.len();
        if !current.is_empty() && (current.len() >= limits.max_records.max(1) || bytes + size > limits.max_bytes) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(i);
        bytes += size;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

impl<P: PutRecordsApi> EventLog for KinesisEventLog<P> {
    fn append(&self, records: Vec<LogRecord>) -> BoxFuture<'_, Vec<AppendOutcome>> {
        Box::pin(self.write_all(records))
    }

    fn kind(&self) -> &'static str {
        "kinesis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(key: &str, n: usize) -> LogRecord {
        LogRecord { partition_key: key.to_owned(), data: bytes::Bytes::from(vec![b'x'; n]) }
    }

    #[test]
    fn ceiling_doubles_and_caps() {
        let p = RetryPolicy {
            deadline: Duration::from_secs(1),
            base: Duration::from_millis(10),
            max: Duration::from_millis(75),
        };
        assert_eq!(p.ceiling(0), Duration::from_millis(10));
        assert_eq!(p.ceiling(1), Duration::from_millis(20));
        assert_eq!(p.ceiling(2), Duration::from_millis(40));
        assert_eq!(p.ceiling(3), Duration::from_millis(75));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_millis(75));
    }

    #[test]
    fn chunks_split_on_count_and_bytes() {
        let limits = KinesisLimits { max_records: 2, max_bytes: 10 };
        let records = vec![rec("a", 3), rec("b", 3), rec("c", 3), rec("d", 8), rec("e", 20)];
        assert_eq!(chunks(&records, limits), vec![vec![0, 1], vec![2], vec![3], vec![4]]);
        assert!(chunks(&[], limits).is_empty());
    }

    proptest! {
        #[test]
        fn chunks_cover_every_record_once_within_limits(
            sizes in proptest::collection::vec(0usize..40, 0..60),
            max_records in 1usize..10,
            max_bytes in 1usize..100,
        ) {
            let records: Vec<_> = sizes.iter().map(|&n| rec("k", n)).collect();
            let limits = KinesisLimits { max_records, max_bytes };
            let got = chunks(&records, limits);
            let flat: Vec<usize> = got.iter().flatten().copied().collect();
            prop_assert_eq!(flat, (0..records.len()).collect::<Vec<_>>());
            for c in &got {
                prop_assert!(!c.is_empty() && c.len() <= max_records);
                let bytes: usize = c.iter().map(|&i| records[i].data.len() + 1).sum();
                prop_assert!(c.len() == 1 || bytes <= max_bytes);
            }
        }

        #[test]
        fn jitter_stays_under_the_ceiling(ms in 0u64..10_000) {
            let c = Duration::from_millis(ms);
            prop_assert!(jitter(c) <= c);
        }
    }
}
