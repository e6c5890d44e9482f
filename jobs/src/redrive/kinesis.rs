//! The Kinesis side of the AWS redrive sources: the on-failure record Lambda writes when an
//! event source mapping discards a batch ([`FailureRecord`]), the records it carries (the S3
//! destination's `payload`) or only names (`KinesisBatchInfo`, as the SQS and SNS destinations
//! give), re-read from the stream with `GetShardIterator AT_SEQUENCE_NUMBER` + `GetRecords`
//! while they are within retention ([`ShardReader`]), and the stream redriven records go to
//! ([`event_log`]).
//!
//! Redrive writes two things of its own into a failure record it keeps (the S3 object or SQS
//! message is rewritten, never edited in place): under `sluiceRedrive`, `unrecoverable` (why
//! part or all of the named range cannot be read any more, and how many records that is, so a
//! later run reports it without re-reading) and `reasons` (sequence number → why that record is
//! still invalid); and `payload` then holds exactly the records still kept, in the shape AWS
//! writes (an escaped JSON string of `{"Records":[...]}`).

use std::collections::BTreeMap;

use aws_sdk_kinesis::types::ShardIteratorType;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sluice_aws::SdkConfig;
use sluice_ingest::eventlog::KinesisEventLog;
use sluice_stream::SequenceNumber;
use sluice_stream::kinesis_input::KinesisBatch;

/// Why an AWS redrive or listing stopped. Nothing was lost: an entry leaves its source only
/// after the stream took its records; run it again.
#[derive(Debug, thiserror::Error)]
pub enum AwsRedriveError {
    #[error("SQS: {0}")]
    Sqs(String),
    #[error("S3: {0}")]
    S3(String),
    #[error("Kinesis: {0}")]
    Kinesis(String),
    #[error("dead letters: {0}")]
    DeadLetters(#[from] sluice_dlq::DlqError),
}

/// The stream position and bytes of a discarded batch (Lambda's `KinesisBatchInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisBatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    /// Records in the batch.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// The stream the batch was read from.
    #[serde(default)]
    pub stream_arn: Option<String>,
}

/// One record recovered from a failure record's payload or re-read from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    pub shard_id: String,
    pub sequence_number: String,
    pub partition_key: String,
    /// The record's bytes, exactly as the stream held them.
    pub data: Vec<u8>,
    /// The record as a Kinesis event record (as in the payload), to write it back when kept.
    pub raw: Value,
}

impl Recovered {
    /// Its stream position, the key redrive re-submits a record once by.
    pub fn position(&self) -> (String, String) {
        (self.shard_id.clone(), self.sequence_number.clone())
    }
}

/// The annotation redrive keeps in a failure record (module docs).
const ANNOTATION: &str = "sluiceRedrive";

/// A Lambda on-failure record for a Kinesis batch (the body of an SQS destination message, the
/// content of an S3 destination object), kept whole so that it can be written back.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureRecord {
    doc: Map<String, Value>,
    /// The batch's position, when the record names it.
    pub info: Option<KinesisBatchInfo>,
}

impl FailureRecord {
    /// Reads a failure record: a JSON object with `KinesisBatchInfo`, or with `requestContext`
    /// and a `payload`. `None` when the document is not one.
    pub fn parse(body: &[u8]) -> Option<Result<Self, String>> {
        let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else { return None };
        Self::from_doc(doc)
    }

    fn from_doc(doc: Map<String, Value>) -> Option<Result<Self, String>> {
        let info = match doc.get("KinesisBatchInfo") {
            None | Some(Value::Null) if doc.contains_key("requestContext") && doc.contains_key("payload") => None,
            None | Some(Value::Null) => return None,
            Some(v) => match KinesisBatchInfo::deserialize(v) {
                Ok(info) => Some(info),
                Err(e) => return Some(Err(format!("malformed KinesisBatchInfo: {e}"))),
            },
        };
        Some(Ok(Self { doc, info }))
    }

    /// `esm:<function name>` from `requestContext.functionArn` (else `esm`).
    pub fn source(&self) -> String {
        let arn = self.doc.get("requestContext").and_then(|c| c.get("functionArn")).and_then(Value::as_str);
        match arn.and_then(|a| a.split(":function:").nth(1)).map(|f| f.split(':').next().unwrap_or(f)) {
            Some(function) if !function.is_empty() => format!("esm:{function}"),
            _ => "esm".to_owned(),
        }
    }

    /// Why the batch was discarded (`RetryAttemptsExhausted: Unhandled`), or, once redrive found
    /// its range expired, that.
    pub fn reason(&self) -> String {
        if let Some((reason, _)) = self.unrecoverable() {
            return format!("unrecoverable: {reason}");
        }
        let context = |section: &str, field: &str| {
            self.doc.get(section).and_then(|c| c.get(field)).and_then(Value::as_str).map(str::to_owned)
        };
        let condition = context("requestContext", "condition").unwrap_or_else(|| "discarded".to_owned());
        let mut reason = match context("responseContext", "functionError") {
            Some(error) => format!("{condition}: {error}"),
            None => condition,
        };
        let reasons = self.reasons();
        if !reasons.is_empty() {
            let mut distinct: Vec<&String> = reasons.values().collect();
            distinct.sort();
            distinct.dedup();
            let joined: Vec<&str> = distinct.iter().map(|s| s.as_str()).collect();
            reason = format!("{reason}; still invalid: {}", joined.join("; "));
        }
        if !self.has_payload() {
            reason.push_str(" (records named by range only)");
        }
        reason
    }

    /// When the batch was discarded (`timestamp`).
    pub fn failed_at(&self) -> Option<DateTime<Utc>> {
        let ts = self.doc.get("timestamp").and_then(Value::as_str)?;
        DateTime::parse_from_rfc3339(ts).ok().map(|t| t.with_timezone(&Utc))
    }

    /// Whether the record carries the batch (`payload`, as the S3 destination writes it).
    pub fn has_payload(&self) -> bool {
        !matches!(self.doc.get("payload"), None | Some(Value::Null))
    }

    /// The `unrecoverable` annotation: why, and how many records.
    pub fn unrecoverable(&self) -> Option<(String, usize)> {
        let u = self.doc.get(ANNOTATION)?.get("unrecoverable")?;
        Some((u.get("reason")?.as_str()?.to_owned(), u.get("records").and_then(Value::as_u64).unwrap_or(1) as usize))
    }

    /// The `reasons` annotation: sequence number → why that kept record is still invalid.
    pub fn reasons(&self) -> BTreeMap<String, String> {
        let Some(Value::Object(reasons)) = self.doc.get(ANNOTATION).and_then(|a| a.get("reasons")) else {
            return BTreeMap::new();
        };
        reasons.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect()
    }

    /// The records of `payload` (an escaped JSON string, or a JSON object as some emulators
    /// write it), in payload order; `None` without a payload.
    pub fn payload_records(&self) -> Option<Result<Vec<Recovered>, String>> {
        let payload = match self.doc.get("payload")? {
            Value::Null => return None,
            Value::String(s) => s.as_bytes().to_vec(),
            Value::Object(o) => match serde_json::to_vec(o) {
                Ok(bytes) => bytes,
                Err(e) => return Some(Err(e.to_string())),
            },
            other => return Some(Err(format!("payload is neither a string nor an object: {other}"))),
        };
        Some(self.decode_payload(&payload))
    }

    fn decode_payload(&self, payload: &[u8]) -> Result<Vec<Recovered>, String> {
        let batch = KinesisBatch::parse(payload).map_err(|e| format!("payload: {e}"))?;
        let raw: Value = serde_json::from_slice(payload).map_err(|e| format!("payload: {e}"))?;
        let raw = raw.get("Records").and_then(Value::as_array).cloned().unwrap_or_default();
        if raw.len() != batch.len() {
            return Err(format!("payload: {} records read, {} in the JSON", batch.len(), raw.len()));
        }
        let fallback_shard = self.info.as_ref().map(|i| i.shard_id.as_str());
        batch
            .iter()
            .zip(raw)
            .map(|(r, raw)| {
                let shard_id = r.shard_id().or(fallback_shard).ok_or("a payload record names no shard")?;
                Ok(Recovered {
                    shard_id: shard_id.to_owned(),
                    sequence_number: r.sequence_number.as_str().to_owned(),
                    partition_key: r.partition_key.as_str().to_owned(),
                    data: r.data.to_vec(),
                    raw,
                })
            })
            .collect()
    }

    /// The batch's range and size for a listing: from `KinesisBatchInfo`, else from `records`.
    pub fn range(&self, records: Option<&[Recovered]>) -> (Option<String>, Option<String>, Option<String>, usize) {
        if let Some(records) = records.filter(|r| !r.is_empty() || self.info.is_none()) {
            let first = records.first();
            return (
                first.map(|r| r.shard_id.clone()).or_else(|| self.info.as_ref().map(|i| i.shard_id.clone())),
                first.map(|r| r.sequence_number.clone()),
                records.last().map(|r| r.sequence_number.clone()),
                records.len(),
            );
        }
        match &self.info {
            Some(i) => (
                Some(i.shard_id.clone()),
                Some(i.start_sequence_number.clone()),
                Some(i.end_sequence_number.clone()),
                i.batch_size.unwrap_or(1),
            ),
            None => (None, None, None, 0),
        }
    }

    /// The record as it is, as JSON.
    pub fn to_vec(&self) -> Vec<u8> {
        Value::Object(self.doc.clone()).to_string().into_bytes()
    }

    /// This record with `payload` holding exactly `kept` (each with why it is still invalid),
    /// and `unrecoverable` set when given (module docs). The rest is kept as it was.
    pub fn rewritten(&self, kept: &[(&Recovered, &str)], unrecoverable: Option<(&str, usize)>) -> Vec<u8> {
        let mut doc = self.doc.clone();
        let mut annotation = match doc.remove(ANNOTATION) {
            Some(Value::Object(a)) => a,
            _ => Map::new(),
        };
        if kept.is_empty() && !self.has_payload() {
            doc.remove("payload");
        } else {
            let records: Vec<&Value> = kept.iter().map(|(r, _)| &r.raw).collect();
            doc.insert("payload".into(), Value::String(json!({ "Records": records }).to_string()));
        }
        let reasons: Map<String, Value> =
            kept.iter().map(|(r, reason)| (r.sequence_number.clone(), Value::String((*reason).to_owned()))).collect();
        annotation.insert("reasons".into(), Value::Object(reasons));
        if let Some((reason, records)) = unrecoverable {
            annotation.insert("unrecoverable".into(), json!({ "reason": reason, "records": records }));
        }
        doc.insert(ANNOTATION.into(), Value::Object(annotation));
        Value::Object(doc).to_string().into_bytes()
    }
}

/// What re-reading a batch's range found.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeRead {
    /// The records of the range still in the stream, in order.
    pub records: Vec<Recovered>,
    /// Why some or all of the range cannot be read (past the trim horizon, shard gone), and
    /// how many records that is (at least 1).
    pub expired: Option<(String, usize)>,
}

/// Re-reads ranges of a stream's shards (`GetShardIterator AT_SEQUENCE_NUMBER`, then
/// `GetRecords` up to the end sequence number).
#[derive(Debug, Clone)]
pub struct ShardReader {
    client: aws_sdk_kinesis::Client,
    stream: Option<String>,
}

/// `GetRecords` pages read for one range at most (a guard against a shard that never ends).
const MAX_PAGES: usize = 10_000;

impl ShardReader {
    /// Reads the stream a failure record names (`streamArn`), or `stream` (name or ARN) when it
    /// names none.
    pub fn new(config: &SdkConfig, stream: Option<String>) -> Self {
        Self { client: aws_sdk_kinesis::Client::new(config), stream }
    }

    /// The records of an on-failure record: its payload, or else its range re-read from the
    /// stream (unless an earlier run marked the range unrecoverable), with what of the range
    /// expired. The inner `Err` is why the batch cannot be read at all (a malformed payload).
    #[allow(clippy::type_complexity)]
    pub async fn recover(
        &self,
        failure: &FailureRecord,
    ) -> Result<(Result<Vec<Recovered>, String>, Option<(String, usize)>), AwsRedriveError> {
        if let Some(records) = failure.payload_records() {
            return Ok((records.map_err(|e| format!("unreadable on-failure record: {e}")), None));
        }
        match (&failure.info, failure.unrecoverable()) {
            (_, Some(_)) => Ok((Ok(Vec::new()), None)),
            (Some(info), None) => {
                let read = self.read_range(info).await?;
                Ok((Ok(read.records), read.expired))
            }
            (None, None) => {
                Ok((Err("an on-failure record with neither payload nor KinesisBatchInfo".to_owned()), None))
            }
        }
    }

    /// The records of `info`'s range that are still in the stream, and what is not.
    ///
    /// Expired (the range is reported unrecoverable): the shard or stream is gone
    /// (`ResourceNotFoundException`), the start is refused (`InvalidArgumentException`), or the
    /// first record read is past the start (the shard's trim horizon moved past it) or past the
    /// end. Other errors (throttling, network) are returned and leave the entry for a later run.
    pub async fn read_range(&self, info: &KinesisBatchInfo) -> Result<RangeRead, AwsRedriveError> {
        let start: SequenceNumber = parse_seq(&info.start_sequence_number)?;
        let end: SequenceNumber = parse_seq(&info.end_sequence_number)?;
        let size = info.batch_size.unwrap_or(1).max(1);
        let expired =
            |reason: String, records: usize| RangeRead { records: Vec::new(), expired: Some((reason, records)) };
        let stream =
            info.stream_arn.clone().or_else(|| self.stream.clone()).ok_or_else(|| {
                AwsRedriveError::Kinesis("the failure record names no stream; pass --stream".to_owned())
            })?;
        let request = self.client.get_shard_iterator();
        // With an ARN, its name too (Kinesis takes either or both): servers that encode only a
        // given name into the iterator (moto) then read the right stream with it.
        let request = match stream.strip_prefix("arn:").and_then(|_| stream.split_once(":stream/")) {
            Some((_, name)) => request.stream_arn(&stream).stream_name(name),
            None => request.stream_name(&stream),
        };
        let iterator = request
            .shard_id(&info.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(&info.start_sequence_number)
            .send()
            .await;
        let mut iterator = match iterator {
            Ok(out) => out.shard_iterator,
            Err(e) => {
                use aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorError as E;
                let detail = aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string();
                return match e.as_service_error() {
                    Some(E::ResourceNotFoundException(_)) => Ok(expired(
                        format!("shard {} of {stream} no longer exists (ResourceNotFoundException)", info.shard_id),
                        size,
                    )),
                    Some(E::InvalidArgumentException(m)) => Ok(expired(
                        format!(
                            "the stream refuses to read shard {} from {start}: {}",
                            info.shard_id,
                            m.message().unwrap_or("InvalidArgumentException")
                        ),
                        size,
                    )),
                    _ => Err(AwsRedriveError::Kinesis(format!("GetShardIterator: {detail}"))),
                };
            }
        };
        let mut records = Vec::new();
        let mut first: Option<SequenceNumber> = None;
        for _ in 0..MAX_PAGES {
            let Some(it) = iterator.take() else { break };
            let page = self.client.get_records().shard_iterator(it).send().await.map_err(|e| {
                AwsRedriveError::Kinesis(format!("GetRecords: {}", aws_sdk_kinesis::error::DisplayErrorContext(&e)))
            })?;
            let mut past_end = false;
            for r in page.records() {
                let seq = parse_seq(r.sequence_number())?;
                first.get_or_insert(seq);
                if seq > end {
                    past_end = true;
                    break;
                }
                records.push(recovered(&info.shard_id, &stream, r));
            }
            if past_end || (page.records().is_empty() && page.millis_behind_latest().unwrap_or(0) == 0) {
                break;
            }
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
        let lost = size.saturating_sub(records.len()).max(1);
        let expired = match first {
            None => Some((
                format!("no record from {start} is in shard {} any more (past the stream's retention)", info.shard_id),
                lost,
            )),
            Some(f) if f > start => Some((
                format!(
                    "shard {} was trimmed past the start {start}: its first record from there is {f} (past the \
                     stream's retention)",
                    info.shard_id
                ),
                lost,
            )),
            Some(_) => None,
        };
        Ok(RangeRead { records, expired })
    }
}

fn parse_seq(s: &str) -> Result<SequenceNumber, AwsRedriveError> {
    s.parse().map_err(|e| AwsRedriveError::Kinesis(format!("sequence number {s:?}: {e}")))
}

/// A record read from the stream, as a Kinesis event record for writing it back.
fn recovered(shard: &str, stream: &str, r: &aws_sdk_kinesis::types::Record) -> Recovered {
    let data = r.data().as_ref().to_vec();
    let arrival = r.approximate_arrival_timestamp().map(|t| t.as_secs_f64());
    let raw = json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": r.partition_key(),
            "sequenceNumber": r.sequence_number(),
            "data": STANDARD.encode(&data),
            "approximateArrivalTimestamp": arrival,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("{shard}:{}", r.sequence_number()),
        "eventName": "aws:kinesis:record",
        "eventSourceARN": stream,
    });
    Recovered {
        shard_id: shard.to_owned(),
        sequence_number: r.sequence_number().to_owned(),
        partition_key: r.partition_key().unwrap_or_default().to_owned(),
        data,
        raw,
    }
}

/// The stream redriven records are appended to: Kinesis `stream` (name or ARN) through the
/// one Kinesis `EventLog` adapter.
pub fn event_log(config: &SdkConfig, stream: &str) -> KinesisEventLog {
    KinesisEventLog::new(aws_sdk_kinesis::Client::new(config), stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: Value) -> FailureRecord {
        FailureRecord::parse(&serde_json::to_vec(&payload).unwrap()).unwrap().unwrap()
    }

    #[test]
    fn the_payload_is_read_as_an_escaped_string_or_an_object() {
        let data = STANDARD.encode(b"{\"a\":1}");
        let event = json!({"Records": [{"kinesis": {"partitionKey": "k", "sequenceNumber": "42", "data": data},
                                        "eventID": "shardId-000000000003:42"}]});
        let as_string = record(json!({"requestContext": {}, "payload": event.to_string()}));
        let as_object = record(json!({"requestContext": {}, "payload": event}));
        for r in [as_string, as_object] {
            let got = r.payload_records().unwrap().unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!((got[0].shard_id.as_str(), got[0].sequence_number.as_str()), ("shardId-000000000003", "42"));
            assert_eq!(got[0].data, b"{\"a\":1}");
        }
        assert!(FailureRecord::parse(b"{\"source\":\"aggregator\"}").is_none(), "a dead letter is not one");
        let bad = record(json!({"requestContext": {}, "payload": "{\"Records\": 3}"}));
        assert!(bad.payload_records().unwrap().is_err());
    }

    #[test]
    fn a_rewritten_record_keeps_what_it_had_and_says_why() {
        let r = record(json!({
            "requestContext": {"functionArn": "arn:aws:lambda:us-east-1:123456789012:function:sluice-lake:live",
                               "condition": "RetryAttemptsExhausted"},
            "responseContext": {"functionError": "Unhandled"},
            "KinesisBatchInfo": {"shardId": "shardId-000000000000", "startSequenceNumber": "1",
                                 "endSequenceNumber": "9", "batchSize": 3},
        }));
        assert_eq!(r.source(), "esm:sluice-lake");
        assert_eq!(r.reason(), "RetryAttemptsExhausted: Unhandled (records named by range only)");
        assert_eq!(r.range(None), (Some("shardId-000000000000".into()), Some("1".into()), Some("9".into()), 3));
        let kept = Recovered {
            shard_id: "shardId-000000000000".into(),
            sequence_number: "5".into(),
            partition_key: "k".into(),
            data: b"x".to_vec(),
            raw: json!({"kinesis": {"partitionKey": "k", "sequenceNumber": "5", "data": "eA=="},
                        "eventID": "shardId-000000000000:5"}),
        };
        let again = FailureRecord::parse(&r.rewritten(&[(&kept, "invalid event: bad")], Some(("trimmed", 2))))
            .unwrap()
            .unwrap();
        assert_eq!(again.unrecoverable(), Some(("trimmed".to_owned(), 2)));
        assert_eq!(again.payload_records().unwrap().unwrap(), vec![kept]);
        assert_eq!(again.reasons().get("5").map(String::as_str), Some("invalid event: bad"));
        assert_eq!(again.reason(), "unrecoverable: trimmed");
        assert_eq!(again.info, r.info);
    }
}
