//! Redrive of the SQS dead-letter queue: sluice's dead letters (the body is
//! [`DeadLetter::to_json`], as `SqsDeadLetters` sends them) and Lambda on-failure records of
//! discarded Kinesis batches (an SQS on-failure destination, or an SNS one delivering to this
//! queue, raw or as SNS notifications: `KinesisBatchInfo` only, the records re-read from the
//! stream; see [`super::kinesis`]).
//!
//! How a run treats each message (all received with a visibility timeout, so no other consumer
//! sees them meanwhile, and made visible again at the end when kept):
//! - a dead letter valid now: re-submitted (same bytes, partition key = `event_id`); deleted
//!   once the stream took it. The same record dead-lettered by several handlers (one stream
//!   position) is re-submitted once and every copy deleted.
//! - a dead letter still invalid: kept. When its reason changed, it is re-sent with the new
//!   reason and the old message deleted, only after the send succeeded (a crash in between
//!   leaves both: the same record twice, still re-submitted once). On a FIFO queue every kept
//!   message is re-sent this way (moved to the back of its message group), because SQS returns
//!   no further message of a group while one is in flight: without that, a group headed by
//!   still-invalid letters would hide the rest of the group from every run.
//! - an on-failure record: its records (from `payload`, or re-read from the stream) re-submitted
//!   when valid; the still-invalid ones sent to this queue as dead letters (source
//!   `esm:<function>`); the message deleted once all of that succeeded. A range that left the
//!   stream's retention (or whose shard is gone) is unrecoverable: what is still readable is
//!   redriven, and the message is replaced by the same record marked `sluiceRedrive.unrecoverable`
//!   (why, how many records), which later runs report without re-reading.
//! - an unreadable message: kept, reported unrecoverable.
//!
//! Messages this run re-sent carry the message attribute `sluice_redrive_run` and are not
//! processed again by the same run. A second run re-submits nothing the first one redrove.
//!
//! Listing and dry runs receive every message and make them visible again at once. On a FIFO
//! queue they see, per message group, only what SQS returns while the group's earlier messages
//! are in flight (the first up to 10).

use std::collections::{HashMap, HashSet};

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
};
use chrono::{DateTime, Utc};
use sluice_aws::SdkConfig;
use sluice_dlq::{DeadLetter, DeadLetterQueue as _, FailureKind, SqsDeadLetters};
use sluice_ingest::eventlog::{EventLog, LogRecord};
use sluice_schemas::Registry;

use super::kinesis::{AwsRedriveError, FailureRecord, Recovered, ShardReader};
use super::{Entry, RedriveReport, Unrecoverable, Verdict, append_once, triage};

/// The message attribute marking a message re-sent by a redrive run (its value: the run).
const RUN_ATTRIBUTE: &str = "sluice_redrive_run";
/// Seconds a received message stays hidden from other consumers during a run.
const VISIBILITY_SECS: i32 = 300;
/// Pages of 10 messages one run receives at most (a guard, 100 000 messages).
const MAX_PAGES: usize = 10_000;

/// The SQS dead-letter queue as a redrive source.
#[derive(Clone)]
pub struct SqsSource {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    fifo: bool,
    letters: SqsDeadLetters,
    reader: ShardReader,
}

impl std::fmt::Debug for SqsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsSource").field("queue_url", &self.queue_url).finish_non_exhaustive()
    }
}

/// What a message holds.
#[derive(Debug)]
enum Body {
    Letter(DeadLetter),
    Failure(FailureRecord),
    Unreadable(String),
}

/// A received message.
#[derive(Debug)]
struct Received {
    id: String,
    receipt: String,
    group: Option<String>,
    sent_at: Option<DateTime<Utc>>,
    attributes: HashMap<String, MessageAttributeValue>,
    run: Option<String>,
    body: Body,
}

impl Received {
    fn parse(m: &Message) -> Option<Self> {
        let system = m.attributes();
        let sys = |name: MessageSystemAttributeName| system.and_then(|a| a.get(&name)).cloned();
        let sent_at = sys(MessageSystemAttributeName::SentTimestamp)
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis);
        let attributes = m.message_attributes().cloned().unwrap_or_default();
        let run = attributes.get(RUN_ATTRIBUTE).and_then(|v| v.string_value()).map(str::to_owned);
        let text = sns_message(m.body().unwrap_or_default());
        let body = match FailureRecord::parse(text.as_bytes()) {
            Some(Ok(record)) => Body::Failure(record),
            Some(Err(e)) => Body::Unreadable(e),
            None => match DeadLetter::from_json(&text) {
                Ok(letter) => Body::Letter(letter),
                Err(e) => Body::Unreadable(format!("neither a dead letter nor an on-failure record: {e}")),
            },
        };
        Some(Self {
            id: m.message_id()?.to_owned(),
            receipt: m.receipt_handle()?.to_owned(),
            group: sys(MessageSystemAttributeName::MessageGroupId),
            sent_at,
            attributes,
            run,
            body,
        })
    }

    fn entry(&self, now: DateTime<Utc>) -> Entry {
        let failed_at = self.sent_at.unwrap_or(now);
        let (source, reason, shard_id, first_sequence, last_sequence, records, failed_at) = match &self.body {
            Body::Letter(l) => (
                l.source.clone(),
                l.reason.clone(),
                l.shard_id.clone(),
                l.sequence_number.clone(),
                l.sequence_number.clone(),
                1,
                l.failed_at,
            ),
            Body::Failure(f) => {
                let payload = f.payload_records().and_then(Result::ok);
                let (shard, first, last, records) = f.range(payload.as_deref());
                (f.source(), f.reason(), shard, first, last, records, f.failed_at().unwrap_or(failed_at))
            }
            Body::Unreadable(e) => {
                ("unknown".to_owned(), format!("unreadable message: {e}"), None, None, None, 0, failed_at)
            }
        };
        Entry {
            store: "sqs",
            id: self.id.clone(),
            source,
            reason,
            shard_id,
            first_sequence,
            last_sequence,
            records,
            failed_at,
        }
    }
}

/// What a run does with one message once the stream took (or did not take) its records.
#[derive(Debug)]
struct Plan {
    message: Received,
    /// Its records to re-submit (indices into the run's append list).
    owns: Vec<usize>,
    /// Still-invalid records of an on-failure record, sent to the queue as dead letters first.
    letters: Vec<DeadLetter>,
    /// The body that replaces the message (sent before it is deleted).
    replace_with: Option<String>,
    /// Delete the message (else it is kept and made visible again).
    remove: bool,
}

impl SqsSource {
    /// The queue at `queue_url`; ranges named by on-failure records are re-read from the
    /// stream they name, else from `stream`.
    pub fn new(config: &SdkConfig, queue_url: impl Into<String>, stream: Option<String>) -> Self {
        let client = aws_sdk_sqs::Client::new(config);
        let queue_url = queue_url.into();
        Self {
            fifo: queue_url.ends_with(".fifo"),
            letters: SqsDeadLetters::new(client.clone(), queue_url.clone()),
            reader: ShardReader::new(config, stream),
            client,
            queue_url,
        }
    }

    fn sqs_error<E>(op: &str, e: aws_sdk_sqs::error::SdkError<E>) -> AwsRedriveError
    where
        E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
    {
        AwsRedriveError::Sqs(format!("{op}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))
    }

    /// One page of messages, hidden for [`VISIBILITY_SECS`].
    async fn receive(&self) -> Result<Vec<Received>, AwsRedriveError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(VISIBILITY_SECS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| Self::sqs_error("ReceiveMessage", e))?;
        Ok(out.messages().iter().filter_map(Received::parse).collect())
    }

    /// Makes `receipts` visible again.
    async fn release(&self, receipts: &[String]) -> Result<(), AwsRedriveError> {
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .visibility_timeout(0)
                        .build()
                        .map_err(|e| AwsRedriveError::Sqs(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| Self::sqs_error("ChangeMessageVisibilityBatch", e))?;
        }
        Ok(())
    }

    /// Every message: received page by page, then all made visible again.
    async fn receive_all(&self) -> Result<Vec<Received>, AwsRedriveError> {
        let mut all: Vec<Received> = Vec::new();
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            let page = match self.receive().await {
                Ok(page) => page,
                Err(e) => {
                    let _ = self.release(&all.iter().map(|m| m.receipt.clone()).collect::<Vec<_>>()).await;
                    return Err(e);
                }
            };
            if page.is_empty() {
                break;
            }
            for m in page {
                if seen.insert(m.id.clone()) {
                    all.push(m);
                }
            }
        }
        self.release(&all.iter().map(|m| m.receipt.clone()).collect::<Vec<_>>()).await?;
        Ok(all)
    }

    /// Every message, oldest first (see the module docs for FIFO queues).
    pub async fn list(&self, now: DateTime<Utc>) -> Result<Vec<Entry>, AwsRedriveError> {
        let mut entries: Vec<Entry> = self.receive_all().await?.iter().map(|m| m.entry(now)).collect();
        entries.sort_by(|a, b| a.failed_at.cmp(&b.failed_at).then_with(|| a.id.cmp(&b.id)));
        Ok(entries)
    }

    /// Redrives the queue (module docs). `dry_run` changes nothing and reports what would be
    /// done.
    pub async fn redrive(
        &self,
        registry: &Registry,
        log: &dyn EventLog,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Result<RedriveReport, AwsRedriveError> {
        let mut report = RedriveReport { dry_run, ..RedriveReport::default() };
        let run = format!("{}-{}", now.timestamp_millis(), std::process::id());
        let mut state = RunState::default();
        let mut kept: Vec<String> = Vec::new();
        let result = self.run(registry, log, dry_run, now, &run, &mut state, &mut kept, &mut report).await;
        let released = self.release(&kept).await;
        result?;
        released?;
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        registry: &Registry,
        log: &dyn EventLog,
        dry_run: bool,
        now: DateTime<Utc>,
        run: &str,
        state: &mut RunState,
        kept: &mut Vec<String>,
        report: &mut RedriveReport,
    ) -> Result<(), AwsRedriveError> {
        for _ in 0..MAX_PAGES {
            let page = self.receive().await?;
            if page.is_empty() {
                return Ok(());
            }
            let mut fresh = Vec::new();
            for m in page {
                if m.run.as_deref() == Some(run) || !state.seen.insert(m.id.clone()) {
                    kept.push(m.receipt);
                } else {
                    fresh.push(m);
                }
            }
            let receipts: Vec<String> = fresh.iter().map(|m| m.receipt.clone()).collect();
            if dry_run {
                kept.extend(receipts);
                let (records, _) = self.plan(registry, fresh, now, state, report).await?;
                for (position, _) in &records {
                    if position.as_ref().is_none_or(|p| state.submitted.insert(p.clone())) {
                        report.redriven += 1;
                    }
                }
                continue;
            }
            if let Err(e) = self.handle(registry, log, fresh, now, run, state, kept, report).await {
                // Visible again at once (a receipt of a message deleted meanwhile is refused
                // per entry, harmlessly).
                kept.extend(receipts);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Plans a page, appends its records, then deletes, re-sends or keeps each message.
    #[allow(clippy::too_many_arguments)]
    async fn handle(
        &self,
        registry: &Registry,
        log: &dyn EventLog,
        page: Vec<Received>,
        now: DateTime<Utc>,
        run: &str,
        state: &mut RunState,
        kept: &mut Vec<String>,
        report: &mut RedriveReport,
    ) -> Result<(), AwsRedriveError> {
        let (records, plans) = self.plan(registry, page, now, state, report).await?;
        let before = state.submitted.len();
        let written = append_once(log, &records, &mut state.submitted).await;
        report.redriven += state.submitted.len() - before;
        report.redriven += records.iter().zip(&written).filter(|((p, _), w)| p.is_none() && **w).count();
        for plan in plans {
            let missing = plan.owns.iter().filter(|&&i| !written[i]).count();
            if missing > 0 {
                report.not_written += missing;
                kept.push(plan.message.receipt);
                continue;
            }
            self.letters.send(plan.letters).await?;
            if let Some(body) = &plan.replace_with {
                self.resend(&plan.message, body, run).await?;
            }
            if plan.remove || plan.replace_with.is_some() {
                self.delete(&plan.message.receipt).await?;
            } else {
                kept.push(plan.message.receipt);
            }
        }
        Ok(())
    }

    /// Decides each message of a page: the records to append and what to do afterwards.
    async fn plan(
        &self,
        registry: &Registry,
        page: Vec<Received>,
        now: DateTime<Utc>,
        state: &mut RunState,
        report: &mut RedriveReport,
    ) -> Result<(Vec<(Option<(String, String)>, LogRecord)>, Vec<Plan>), AwsRedriveError> {
        let mut records = Vec::new();
        let mut plans = Vec::new();
        for message in page {
            let mut plan = Plan { owns: Vec::new(), letters: Vec::new(), replace_with: None, remove: true, message };
            let rotate = self.fifo.then(|| plan_body(&plan.message)).flatten();
            match &plan.message.body {
                Body::Letter(letter) => {
                    let position = letter.shard_id.clone().zip(letter.sequence_number.clone());
                    match triage(registry, &letter.data) {
                        Verdict::Resubmit(record) => {
                            plan.owns.push(records.len());
                            records.push((position, record));
                        }
                        Verdict::StillInvalid(reason) => {
                            let key = position.unwrap_or_else(|| (String::new(), plan.message.id.clone()));
                            if state.invalid.insert(key) {
                                report.still_invalid += 1;
                            }
                            if reason != letter.reason {
                                let updated = DeadLetter { reason, ..letter.clone() };
                                plan.replace_with = Some(updated.to_json()?);
                            } else {
                                plan.replace_with = rotate;
                                plan.remove = false;
                            }
                        }
                    }
                }
                Body::Unreadable(reason) => {
                    report.unrecoverable += 1;
                    report.lost.push(Unrecoverable {
                        entry: format!("sqs:{}", plan.message.id),
                        shard_id: None,
                        first_sequence: None,
                        last_sequence: None,
                        records: 1,
                        reason: format!("unreadable message: {reason}"),
                    });
                    plan.replace_with = rotate;
                    plan.remove = false;
                }
                Body::Failure(failure) => {
                    let entry = format!("sqs:{}", plan.message.id);
                    let (recovered, expired) = self.reader.recover(failure).await?;
                    let recovered = match recovered {
                        Ok(r) => r,
                        Err(reason) => {
                            let (shard_id, first_sequence, last_sequence, records) = failure.range(None);
                            report.unrecoverable += records.max(1);
                            report.lost.push(Unrecoverable {
                                entry,
                                shard_id,
                                first_sequence,
                                last_sequence,
                                records: records.max(1),
                                reason,
                            });
                            plan.replace_with = rotate;
                            plan.remove = false;
                            plans.push(plan);
                            continue;
                        }
                    };
                    let marked = failure.unrecoverable();
                    if let Some((reason, lost)) = expired.clone().or_else(|| marked.clone()) {
                        report.unrecoverable += lost;
                        let (shard_id, first_sequence, last_sequence, _) = failure.range(None);
                        report.lost.push(Unrecoverable {
                            entry,
                            shard_id,
                            first_sequence,
                            last_sequence,
                            records: lost,
                            reason,
                        });
                    }
                    for r in &recovered {
                        match triage(registry, &r.data) {
                            Verdict::Resubmit(record) => {
                                plan.owns.push(records.len());
                                records.push((Some(r.position()), record));
                            }
                            Verdict::StillInvalid(reason) => {
                                if state.invalid.insert(r.position()) {
                                    report.still_invalid += 1;
                                }
                                plan.letters.push(letter_of(failure, r, reason, now));
                            }
                        }
                    }
                    match (&expired, marked) {
                        // Marked by an earlier run: nothing else to do, keep reporting it.
                        (_, Some(_)) if recovered.is_empty() => {
                            plan.replace_with = rotate;
                            plan.remove = false;
                        }
                        (Some((reason, lost)), None) => {
                            let body = failure.rewritten(&[], Some((reason, *lost)));
                            plan.replace_with = Some(String::from_utf8_lossy(&body).into_owned());
                        }
                        _ => {}
                    }
                }
            }
            plans.push(plan);
        }
        Ok((records, plans))
    }

    /// Sends `body` in place of `message` (same attributes and message group, marked with
    /// this run; on a FIFO queue deduplicated per replaced message, so a repeated attempt
    /// after a crash is stored once within SQS's deduplication interval).
    async fn resend(&self, message: &Received, body: &str, run: &str) -> Result<(), AwsRedriveError> {
        let mark = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(run)
            .build()
            .map_err(|e| AwsRedriveError::Sqs(e.to_string()))?;
        let mut attributes = message.attributes.clone();
        attributes.insert(RUN_ATTRIBUTE.to_owned(), mark);
        let request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .set_message_attributes(Some(attributes));
        let request = if self.fifo {
            request
                .message_group_id(message.group.clone().unwrap_or_else(|| "redrive".to_owned()))
                .message_deduplication_id(format!("redrive-{}", message.id))
        } else {
            request
        };
        request.send().await.map_err(|e| Self::sqs_error("SendMessage", e))?;
        Ok(())
    }

    async fn delete(&self, receipt: &str) -> Result<(), AwsRedriveError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| Self::sqs_error("DeleteMessage", e))?;
        Ok(())
    }
}

/// The body of an SQS message, or the `Message` of the SNS notification it is (an SNS on-failure
/// destination with an SQS subscription that does not use raw message delivery).
fn sns_message(body: &str) -> std::borrow::Cow<'_, str> {
    #[derive(serde::Deserialize)]
    struct Notification {
        #[serde(rename = "Type")]
        kind: String,
        #[serde(rename = "Message")]
        message: String,
    }
    match serde_json::from_str::<Notification>(body) {
        Ok(n) if n.kind == "Notification" => std::borrow::Cow::Owned(n.message),
        _ => std::borrow::Cow::Borrowed(body),
    }
}

/// A message's body as it is (to re-send it unchanged).
fn plan_body(message: &Received) -> Option<String> {
    match &message.body {
        Body::Letter(l) => l.to_json().ok(),
        Body::Failure(f) => Some(String::from_utf8_lossy(&f.to_vec()).into_owned()),
        Body::Unreadable(_) => None,
    }
}

/// What one run has done so far.
#[derive(Debug, Default)]
struct RunState {
    /// Message ids handled.
    seen: HashSet<String>,
    /// Stream positions re-submitted.
    submitted: HashSet<(String, String)>,
    /// Still-invalid records counted (by position, or by message id).
    invalid: HashSet<(String, String)>,
}

/// A still-invalid record of an on-failure record, as a dead letter.
fn letter_of(failure: &FailureRecord, r: &Recovered, reason: String, now: DateTime<Utc>) -> DeadLetter {
    DeadLetter {
        source: failure.source(),
        kind: FailureKind::Invalid,
        reason,
        shard_id: Some(r.shard_id.clone()),
        sequence_number: Some(r.sequence_number.clone()),
        partition_key: Some(r.partition_key.clone()),
        failed_at: now,
        data: r.data.clone(),
    }
}
