//! sluice-dlq: the dead-letter port.
//!
//! A [`DeadLetter`] is a record the pipeline could not process: either it can never succeed
//! ([`FailureKind::Invalid`]: bad bytes, schema violation) or it ran out of retries
//! ([`FailureKind::Exhausted`]). It always carries the exact original bytes, so nothing is lost and
//! `sluice redrive` can put it back on the stream once the cause is fixed.
//!
//! Adapters: `SqliteDeadLetters` (SQLite, the embedded runtime; feature `sqlite`, so the Lambdas
//! do not link SQLite), [`SqsDeadLetters`] (AWS) and [`MemoryDeadLetters`] (tests). All of them
//! satisfy the same contract, checked by one suite. Handlers send through [`SendRetry`], the one
//! retry policy for dead-letter sends.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;
mod sqs;

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use memory::MemoryDeadLetters;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteDeadLetters, StoredLetter};
pub use sqs::SqsDeadLetters;

/// Why a record was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The record itself is bad; retrying cannot help.
    Invalid,
    /// Processing kept failing until retries or record age ran out.
    Exhausted,
}

impl FailureKind {
    /// The stable name used in storage and message attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Invalid => "invalid",
            FailureKind::Exhausted => "exhausted",
        }
    }

    #[cfg(feature = "sqlite")]
    fn parse(s: &str) -> Option<Self> {
        match s {
            "invalid" => Some(FailureKind::Invalid),
            "exhausted" => Some(FailureKind::Exhausted),
            _ => None,
        }
    }
}

/// A record that could not be processed, with the reason and its exact original bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The component that gave up on it (`aggregator`, `lake`, `esm:<mapping>`, ...).
    pub source: String,
    /// Invalid or exhausted.
    pub kind: FailureKind,
    /// What went wrong, for a human.
    pub reason: String,
    /// The stream shard it came from, when it came from the stream.
    pub shard_id: Option<String>,
    /// Its sequence number within the shard.
    pub sequence_number: Option<String>,
    /// Its partition key.
    pub partition_key: Option<String>,
    /// When it was dead-lettered.
    pub failed_at: DateTime<Utc>,
    /// The exact record bytes (base64 in JSON).
    #[serde(with = "b64")]
    pub data: Vec<u8>,
}

impl DeadLetter {
    /// The JSON document used as an SQS message body and in exports.
    pub fn to_json(&self) -> Result<String, DlqError> {
        serde_json::to_string(self).map_err(|e| DlqError::Encoding(e.to_string()))
    }

    /// Parses a document written by [`DeadLetter::to_json`].
    pub fn from_json(body: &str) -> Result<Self, DlqError> {
        serde_json::from_str(body).map_err(|e| DlqError::Encoding(e.to_string()))
    }
}

/// Errors of dead-letter adapters.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// The dead-letter store could not take the letters now; retry, and if it keeps failing,
    /// report the records as failed to the trigger so they are redelivered (never drop them).
    #[error("dead-letter store unavailable: {0}")]
    Unavailable(String),
    /// A letter can never be stored by this adapter (e.g. over the SQS message size); report the
    /// record as failed so the trigger's on-failure destination keeps it.
    #[error("dead letter rejected: {0}")]
    Rejected(String),
    /// A stored letter could not be encoded or decoded.
    #[error("dead letter encoding: {0}")]
    Encoding(String),
}

/// Where dead letters go.
///
/// Contract (the shared suite in `tests/it/contract.rs` runs it against every adapter): when
/// `send` returns `Ok`, every letter is durably stored, with its exact bytes. Sending a letter
/// with a stream position (same source, shard and sequence number) again stores nothing new
/// (SQS: on a FIFO queue, within its 5-minute deduplication interval); a letter without a
/// position is stored each time it is sent.
pub trait DeadLetterQueue: Send + Sync + 'static {
    /// Stores the letters.
    fn send(&self, letters: Vec<DeadLetter>) -> impl Future<Output = Result<(), DlqError>> + Send;
}

/// How handlers send dead letters: `Unavailable` is retried with exponential backoff (`base`
/// doubled per retry, at most `max`) up to `max_attempts` sends in all; any other error, or the
/// last `Unavailable`, is returned at once, and the caller reports the letters' records as
/// failed so the trigger redelivers them (never dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRetry {
    /// Sends in all, at least 1.
    pub max_attempts: u32,
    /// Backoff before the first retry.
    pub base: Duration,
    /// Largest backoff.
    pub max: Duration,
}

impl Default for SendRetry {
    /// 6 sends, backoff from 25 ms up to 2 s (about 0.8 s in all before giving up).
    fn default() -> Self {
        SendRetry { max_attempts: 6, base: Duration::from_millis(25), max: Duration::from_secs(2) }
    }
}

impl SendRetry {
    /// Sends `letters` to `queue` under this policy.
    pub async fn send<Q: DeadLetterQueue>(&self, queue: &Q, letters: Vec<DeadLetter>) -> Result<(), DlqError> {
        let mut attempt = 0u32;
        loop {
            match queue.send(letters.clone()).await {
                Ok(()) => return Ok(()),
                Err(DlqError::Unavailable(_)) if attempt + 1 < self.max_attempts => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The backoff after failed send number `attempt` (0-based).
    fn backoff(&self, attempt: u32) -> Duration {
        self.base.saturating_mul(1u32 << attempt.min(16)).min(self.max)
    }
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter() -> DeadLetter {
        DeadLetter {
            source: "test".into(),
            kind: FailureKind::Invalid,
            reason: "bad".into(),
            shard_id: None,
            sequence_number: None,
            partition_key: None,
            failed_at: DateTime::UNIX_EPOCH,
            data: b"x".to_vec(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn send_retry_retries_unavailable_then_gives_up() {
        let policy = SendRetry::default();
        let queue = MemoryDeadLetters::new();
        queue.fail_next(5);
        let started = tokio::time::Instant::now();
        policy.send(&queue, vec![letter()]).await.unwrap();
        assert_eq!(queue.letters().len(), 1, "stored on the sixth send");
        // 25 + 50 + 100 + 200 + 400 ms of backoff (virtual time).
        assert_eq!(started.elapsed(), Duration::from_millis(775));

        queue.fail_next(6);
        assert!(matches!(policy.send(&queue, vec![letter()]).await, Err(DlqError::Unavailable(_))));
        assert_eq!(queue.letters().len(), 1, "nothing stored when every send failed");
        let once = SendRetry { max_attempts: 1, ..policy };
        queue.fail_next(1);
        assert!(once.send(&queue, vec![letter()]).await.is_err(), "one attempt: no retry");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = SendRetry::default();
        let ms: Vec<u128> = (0..9).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(ms, [25, 50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(p.backoff(u32::MAX), p.max);
    }
}
