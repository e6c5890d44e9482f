//! Redrive of the S3 on-failure destination of the stream triggers: one object per discarded
//! batch, `aws/lambda/<mapping-uuid>/<shard>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>`, holding
//! Lambda's on-failure record whose `payload` is the original invocation (an escaped JSON
//! string; a JSON object is accepted too). See [`super::kinesis`] for the record.
//!
//! Per object: the valid records are re-submitted (same bytes, partition key = `event_id`;
//! a stream position already re-submitted in this run is not appended again). Once the stream
//! took all of them:
//! - nothing else left: the object is deleted;
//! - still-invalid records: the object is rewritten (one PUT, atomic) to hold only those,
//!   each with its current reason under `sluiceRedrive.reasons`, so they stay in the one place
//!   the failure destination is, and a later run re-submits nothing twice;
//! - an object without payload (a range only) is re-read from the stream; a range past the
//!   stream's retention or on a shard that is gone is unrecoverable: what is still readable is
//!   handled as above, and the object is rewritten marked `sluiceRedrive.unrecoverable` (kept,
//!   reported by every run, never re-read; deleting it is the operator's call).
//!
//! If the stream does not take every valid record of an object, the object stays unchanged and
//! the next run re-submits its records (the written ones again: a bounded duplicate that
//! compaction and backfill absorb, as after a crash between the append and the rewrite).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sluice_aws::SdkConfig;
use sluice_ingest::eventlog::EventLog;
use sluice_schemas::Registry;

use super::kinesis::{AwsRedriveError, FailureRecord, Recovered, ShardReader};
use super::{Entry, RedriveReport, Unrecoverable, Verdict, append_once, triage};

/// The prefix Lambda writes on-failure objects under.
pub const DEFAULT_PREFIX: &str = "aws/lambda/";

/// The S3 on-failure destination as a redrive source.
#[derive(Debug, Clone)]
pub struct S3Source {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    reader: ShardReader,
}

/// A listed object.
#[derive(Debug)]
struct Object {
    key: String,
    modified: Option<DateTime<Utc>>,
}

impl S3Source {
    /// The objects under `prefix` (default [`DEFAULT_PREFIX`]) of `bucket`. `path_style` as
    /// `AwsSettings::endpoint_overridden` says (local servers serve no virtual-hosted buckets).
    /// Ranges of objects without payload are re-read from the stream they name, else from
    /// `stream`.
    pub fn new(
        config: &SdkConfig,
        path_style: bool,
        bucket: impl Into<String>,
        prefix: Option<String>,
        stream: Option<String>,
    ) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build();
        Self {
            client: aws_sdk_s3::Client::from_conf(s3),
            bucket: bucket.into(),
            prefix: prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
            reader: ShardReader::new(config, stream),
        }
    }

    fn err(op: &str, e: impl std::error::Error + 'static) -> AwsRedriveError {
        AwsRedriveError::S3(format!("{op}: {}", aws_sdk_s3::error::DisplayErrorContext(e)))
    }

    async fn objects(&self) -> Result<Vec<Object>, AwsRedriveError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&self.prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| Self::err("ListObjectsV2", e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let modified = o.last_modified().and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
                out.push(Object { key: key.to_owned(), modified });
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, AwsRedriveError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| Self::err("GetObject", e))?;
        let bytes = out.body.collect().await.map_err(|e| AwsRedriveError::S3(format!("GetObject {key}: {e}")))?;
        Ok(bytes.to_vec())
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), AwsRedriveError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(body.into())
            .send()
            .await
            .map_err(|e| Self::err("PutObject", e))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), AwsRedriveError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| Self::err("DeleteObject", e))?;
        Ok(())
    }

    /// Every object, oldest first.
    pub async fn list(&self, now: DateTime<Utc>) -> Result<Vec<Entry>, AwsRedriveError> {
        let mut entries = Vec::new();
        for object in self.objects().await? {
            let body = self.get(&object.key).await?;
            let failed_at = object.modified.unwrap_or(now);
            let entry = match FailureRecord::parse(&body) {
                Some(Ok(f)) => {
                    let payload = f.payload_records().and_then(Result::ok);
                    let (shard_id, first_sequence, last_sequence, records) = f.range(payload.as_deref());
                    Entry {
                        store: "s3",
                        source: f.source(),
                        reason: f.reason(),
                        shard_id: shard_id.or_else(|| shard_of_key(&object.key)),
                        first_sequence,
                        last_sequence,
                        records,
                        failed_at: f.failed_at().unwrap_or(failed_at),
                        id: object.key,
                    }
                }
                Some(Err(e)) => unreadable(object.key, e, failed_at),
                None => unreadable(object.key, "not a Lambda on-failure record".to_owned(), failed_at),
            };
            entries.push(entry);
        }
        entries.sort_by(|a, b| a.failed_at.cmp(&b.failed_at).then_with(|| a.id.cmp(&b.id)));
        Ok(entries)
    }

    /// Redrives every object (module docs). `dry_run` changes nothing and reports what would
    /// be done.
    pub async fn redrive(
        &self,
        registry: &Registry,
        log: &dyn EventLog,
        dry_run: bool,
        _now: DateTime<Utc>,
    ) -> Result<RedriveReport, AwsRedriveError> {
        let mut report = RedriveReport { dry_run, ..RedriveReport::default() };
        let mut submitted: HashSet<(String, String)> = HashSet::new();
        for object in self.objects().await? {
            let key = object.key;
            let body = self.get(&key).await?;
            let lost = |reason: String, range: (Option<String>, Option<String>, Option<String>, usize)| Unrecoverable {
                entry: format!("s3:{key}"),
                shard_id: range.0.or_else(|| shard_of_key(&key)),
                first_sequence: range.1,
                last_sequence: range.2,
                records: range.3.max(1),
                reason,
            };
            let failure = match FailureRecord::parse(&body) {
                Some(Ok(f)) => f,
                Some(Err(e)) => {
                    report.unrecoverable += 1;
                    report.lost.push(lost(format!("unreadable object: {e}"), (None, None, None, 1)));
                    continue;
                }
                None => {
                    report.unrecoverable += 1;
                    report.lost.push(lost("not a Lambda on-failure record".to_owned(), (None, None, None, 1)));
                    continue;
                }
            };
            let (recovered, expired) = self.reader.recover(&failure).await?;
            let recovered = match recovered {
                Ok(r) => r,
                Err(reason) => {
                    let range = failure.range(None);
                    report.unrecoverable += range.3.max(1);
                    report.lost.push(lost(reason, range));
                    continue;
                }
            };
            let marked = failure.unrecoverable();
            if let Some((reason, n)) = expired.clone().or_else(|| marked.clone()) {
                report.unrecoverable += n;
                let range = failure.range(None);
                report.lost.push(lost(reason, (range.0, range.1, range.2, n)));
            }
            let mut records = Vec::new();
            let mut kept: Vec<(&Recovered, String)> = Vec::new();
            for r in &recovered {
                match triage(registry, &r.data) {
                    Verdict::Resubmit(record) => records.push((Some(r.position()), record)),
                    Verdict::StillInvalid(reason) => kept.push((r, reason)),
                }
            }
            report.still_invalid += kept.len();
            if dry_run {
                for (position, _) in &records {
                    if position.as_ref().is_none_or(|p| submitted.insert(p.clone())) {
                        report.redriven += 1;
                    }
                }
                continue;
            }
            let before = submitted.len();
            let written = append_once(log, &records, &mut submitted).await;
            report.redriven += submitted.len() - before;
            let missing = written.iter().filter(|w| !**w).count();
            if missing > 0 {
                report.not_written += missing;
                continue;
            }
            if kept.is_empty() && expired.is_none() && marked.is_none() {
                self.delete(&key).await?;
            } else {
                let kept: Vec<(&Recovered, &str)> = kept.iter().map(|(r, reason)| (*r, reason.as_str())).collect();
                let mark = expired.as_ref().or(marked.as_ref()).map(|(reason, n)| (reason.as_str(), *n));
                let rewritten = failure.rewritten(&kept, mark);
                // Written by an earlier run and nothing changed since: leave it.
                if rewritten != body {
                    self.put(&key, rewritten).await?;
                }
            }
        }
        Ok(report)
    }
}

/// The shard in an on-failure object's key (`aws/lambda/<uuid>/<shard>/...`).
fn shard_of_key(key: &str) -> Option<String> {
    key.split('/').nth(3).filter(|s| s.starts_with("shardId-")).map(str::to_owned)
}

fn unreadable(key: String, reason: String, failed_at: DateTime<Utc>) -> Entry {
    Entry {
        store: "s3",
        source: "unknown".to_owned(),
        reason: format!("unreadable object: {reason}"),
        shard_id: shard_of_key(&key),
        first_sequence: None,
        last_sequence: None,
        records: 0,
        failed_at,
        id: key,
    }
}
