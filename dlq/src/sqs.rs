//! SQS dead letters for AWS.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use crate::{DeadLetter, DeadLetterQueue, DlqError};

/// Entries per `SendMessageBatch` (the SQS limit).
const MAX_BATCH_ENTRIES: usize = 10;
/// Attempts per entry before the send fails.
const MAX_ATTEMPTS: u32 = 5;

/// Dead letters as SQS messages: the body is [`DeadLetter::to_json`]; `source` and `kind` are
/// also message attributes so consumers can filter without parsing.
///
/// On a FIFO queue (URL ending in `.fifo`, as template.yaml creates it) a letter with a stream
/// position is sent with a deduplication id derived from (source, shard, sequence number), so
/// a redelivered letter is stored once, as the port's contract asks (SQS deduplicates within
/// its 5-minute interval; the one-copy rule of redrive covers later repeats); a letter without
/// a position gets a fresh id each time, like the other adapters. Message groups are per
/// (source, shard). A standard queue gets neither attribute (and may hold repeats).
///
/// Contract: `Ok` means SQS accepted every letter. A letter whose body exceeds
/// `max_message_bytes` is refused with [`DlqError::Rejected`] (nothing of the call is
/// half-sent in that case: the size check happens first), so the handler reports the record
/// as failed and the trigger's S3 on-failure destination keeps it whole.
#[derive(Clone)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
    fifo: bool,
    max_message_bytes: usize,
    backoff: Duration,
}

impl SqsDeadLetters {
    /// Sends to `queue_url`. The message size bound defaults to 256 KiB, the SQS default queue
    /// setting; raise it with [`SqsDeadLetters::with_max_message_bytes`] for queues configured up
    /// to 1 MiB.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        let queue_url = queue_url.into();
        let fifo = queue_url.ends_with(".fifo");
        Self { client, queue_url, fifo, max_message_bytes: 256 * 1024, backoff: Duration::from_millis(50) }
    }

    /// Sets the largest body this queue accepts.
    #[must_use]
    pub fn with_max_message_bytes(mut self, n: usize) -> Self {
        self.max_message_bytes = n;
        self
    }

    async fn send_chunk(&self, mut pending: Vec<(String, &DeadLetter)>) -> Result<(), DlqError> {
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let entries = pending
                .iter()
                .enumerate()
                .map(|(i, (body, l))| {
                    let entry = SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body.clone())
                        .message_attributes("source", string_attr(&l.source)?)
                        .message_attributes("kind", string_attr(l.kind.as_str())?);
                    let entry = if self.fifo {
                        let (group, dedup) = fifo_ids(l);
                        entry.message_group_id(group).message_deduplication_id(dedup)
                    } else {
                        entry
                    };
                    entry.build().map_err(|e| DlqError::Encoding(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let result =
                self.client.send_message_batch().queue_url(&self.queue_url).set_entries(Some(entries)).send().await;
            let retry: Vec<usize> = match result {
                Ok(out) => {
                    let mut retry = Vec::new();
                    for f in out.failed() {
                        let idx = f.id().parse::<usize>().ok().filter(|i| *i < pending.len());
                        match idx {
                            Some(i) if !f.sender_fault() => retry.push(i),
                            _ => {
                                return Err(DlqError::Rejected(format!(
                                    "SQS refused a dead letter: {} {}",
                                    f.code(),
                                    f.message().unwrap_or_default()
                                )));
                            }
                        }
                    }
                    retry
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), attempt, "SendMessageBatch failed");
                    (0..pending.len()).collect()
                }
            };
            if retry.is_empty() {
                return Ok(());
            }
            if attempt >= MAX_ATTEMPTS {
                return Err(DlqError::Unavailable(format!("{} dead letters not accepted by SQS", retry.len())));
            }
            pending = retry.into_iter().filter_map(|i| pending.get(i).cloned()).collect();
            tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
        }
        Ok(())
    }
}

/// The FIFO message group (per source and shard) and deduplication id (per source, shard and
/// sequence number; fresh for a letter without a stream position), as hex MD5 digests: valid
/// SQS ids of 32 characters whatever the source name holds.
fn fifo_ids(l: &DeadLetter) -> (String, String) {
    use md5::{Digest as _, Md5};
    let hex = |parts: &[&str]| {
        let mut h = Md5::new();
        for p in parts {
            h.update(p.len().to_le_bytes());
            h.update(p.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let shard = l.shard_id.as_deref().unwrap_or("");
    let group = hex(&[&l.source, shard]);
    let dedup = match (&l.shard_id, &l.sequence_number) {
        (Some(shard), Some(seq)) => hex(&[&l.source, shard, seq]),
        _ => uuid::Uuid::new_v4().simple().to_string(),
    };
    (group, dedup)
}

fn string_attr(v: &str) -> Result<MessageAttributeValue, DlqError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| DlqError::Encoding(e.to_string()))
}

impl DeadLetterQueue for SqsDeadLetters {
    async fn send(&self, letters: Vec<DeadLetter>) -> Result<(), DlqError> {
        let mut bodies = Vec::with_capacity(letters.len());
        for l in &letters {
            let body = l.to_json()?;
            if body.len() > self.max_message_bytes {
                return Err(DlqError::Rejected(format!(
                    "dead letter of {} bytes exceeds the queue's {} byte message limit",
                    body.len(),
                    self.max_message_bytes
                )));
            }
            bodies.push((body, l));
        }
        // Pack entries into batches of at most 10 entries and max_message_bytes in total.
        let mut chunk: Vec<(String, &DeadLetter)> = Vec::new();
        let mut chunk_bytes = 0;
        for (body, l) in bodies {
            if chunk.len() == MAX_BATCH_ENTRIES || chunk_bytes + body.len() > self.max_message_bytes {
                self.send_chunk(std::mem::take(&mut chunk)).await?;
                chunk_bytes = 0;
            }
            chunk_bytes += body.len();
            chunk.push((body, l));
        }
        if !chunk.is_empty() {
            self.send_chunk(chunk).await?;
        }
        Ok(())
    }
}
