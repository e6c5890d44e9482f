//! The stream record model: shard ids, records (their [`SequenceNumber`] lives in
//! [`crate::sequence`]), and the conversion to the `aws_lambda_events` Kinesis event shape that
//! handlers receive (pure, no I/O).

use std::fmt;

use aws_lambda_events::encodings::SecondTimestamp;
use aws_lambda_events::kinesis::{KinesisEvent, KinesisEventRecord, KinesisRecord};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::sequence::{SequenceNumber, SequenceNumberError};

/// The Kinesis shard id for shard index `index`: `shardId-000000000000` style.
pub fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

/// The index of a `shardId-NNNNNNNNNNNN` shard id, `None` if `id` is not of that shape.
pub fn shard_index(id: &str) -> Option<u32> {
    let digits = id.strip_prefix("shardId-")?;
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One record of a stream shard, the same shape as a Kinesis record.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// The shard holding the record (`shardId-000000000000` style).
    pub shard_id: String,
    /// Position in the shard; strictly increasing within a shard.
    pub sequence_number: SequenceNumber,
    /// The producer's partition key (it chose the shard).
    pub partition_key: String,
    /// When the stream accepted the record.
    pub approximate_arrival: DateTime<Utc>,
    /// The payload; serialized as base64.
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

impl fmt::Debug for StreamRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamRecord")
            .field("shard_id", &self.shard_id)
            .field("sequence_number", &self.sequence_number)
            .field("partition_key", &self.partition_key)
            .field("approximate_arrival", &self.approximate_arrival)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Serde helper: bytes as a standard base64 string.
pub(crate) mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// Why a Kinesis event record cannot be read back as a [`StreamRecord`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// `eventID` is missing or not `"<shardId>:<sequenceNumber>"`.
    #[error("eventID {0:?} is not \"<shardId>:<sequenceNumber>\"")]
    BadEventId(Option<String>),
    /// `kinesis.sequenceNumber` is not a sequence number.
    #[error("bad kinesis.sequenceNumber: {0}")]
    BadSequenceNumber(#[from] SequenceNumberError),
}

/// The eventName of every Kinesis record delivered by Lambda.
pub const EVENT_NAME: &str = "aws:kinesis:record";
/// The eventSource of every Kinesis record delivered by Lambda.
pub const EVENT_SOURCE: &str = "aws:kinesis";

/// Builds the event Lambda would deliver for `records` (in the given order): eventID
/// `"<shardId>:<sequenceNumber>"`, eventName `aws:kinesis:record`, eventSource `aws:kinesis`,
/// eventVersion and kinesisSchemaVersion `1.0`, the payload base64-encoded on the wire, and the
/// approximate arrival timestamp.
pub fn to_kinesis_event(records: &[StreamRecord], stream_arn: &str, region: &str) -> KinesisEvent {
    let mut event = KinesisEvent::default();
    event.records = records.iter().map(|r| to_kinesis_event_record(r, stream_arn, region)).collect();
    event
}

/// Builds one Lambda Kinesis event record (see [`to_kinesis_event`]).
pub fn to_kinesis_event_record(record: &StreamRecord, stream_arn: &str, region: &str) -> KinesisEventRecord {
    let mut kinesis = KinesisRecord::default();
    kinesis.approximate_arrival_timestamp = SecondTimestamp(record.approximate_arrival);
    kinesis.data.0 = record.data.clone();
    kinesis.partition_key = record.partition_key.clone();
    kinesis.sequence_number = record.sequence_number.to_string();
    kinesis.kinesis_schema_version = Some("1.0".to_owned());

    let mut out = KinesisEventRecord::default();
    out.aws_region = Some(region.to_owned());
    out.event_id = Some(format!("{}:{}", record.shard_id, record.sequence_number));
    out.event_name = Some(EVENT_NAME.to_owned());
    out.event_source = Some(EVENT_SOURCE.to_owned());
    out.event_source_arn = Some(stream_arn.to_owned());
    out.event_version = Some("1.0".to_owned());
    out.kinesis = kinesis;
    out
}

/// The shard id of a Kinesis event record, parsed from its eventID `"<shardId>:<seq>"`.
/// Handlers key their per-shard exactly-once guards on it. `None` if the eventID is missing or
/// not of that shape.
pub fn shard_id_of(record: &KinesisEventRecord) -> Option<&str> {
    let id = record.event_id.as_deref()?;
    let (shard, seq) = id.rsplit_once(':')?;
    if shard.is_empty() || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(shard)
}

/// The parsed `kinesis.sequenceNumber` of a Kinesis event record.
pub fn sequence_number_of(record: &KinesisEventRecord) -> Result<SequenceNumber, RecordError> {
    Ok(record.kinesis.sequence_number.parse()?)
}

impl TryFrom<&KinesisEventRecord> for StreamRecord {
    type Error = RecordError;

    /// Reads a Lambda Kinesis event record back as a stream record (shard id from eventID).
    fn try_from(record: &KinesisEventRecord) -> Result<Self, Self::Error> {
        let shard_id = shard_id_of(record).ok_or_else(|| RecordError::BadEventId(record.event_id.clone()))?;
        Ok(StreamRecord {
            shard_id: shard_id.to_owned(),
            sequence_number: sequence_number_of(record)?,
            partition_key: record.kinesis.partition_key.clone(),
            approximate_arrival: record.kinesis.approximate_arrival_timestamp.0,
            data: record.kinesis.data.0.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids() {
        assert_eq!(shard_id(0), "shardId-000000000000");
        assert_eq!(shard_id(12), "shardId-000000000012");
        assert_eq!(shard_index("shardId-000000000012"), Some(12));
        assert_eq!(shard_index("shardId-12"), None);
        assert_eq!(shard_index("shard-000000000012"), None);
    }

    #[test]
    fn kinesis_event_shape_roundtrips() {
        let rec = StreamRecord {
            shard_id: shard_id(3),
            sequence_number: SequenceNumber::from_local(42),
            partition_key: "user-1".into(),
            approximate_arrival: DateTime::from_timestamp_millis(1_480_641_523_477).unwrap(),
            data: b"Hello World".to_vec(),
        };
        let event = to_kinesis_event(
            std::slice::from_ref(&rec),
            "arn:aws:kinesis:us-east-1:000000000000:stream/s",
            "us-east-1",
        );
        let json = serde_json::to_value(&event).unwrap();
        let r = &json["Records"][0];
        assert_eq!(r["eventID"], "shardId-000000000003:49000000000000000000000000000000000000000000000000000042");
        assert_eq!(r["eventName"], "aws:kinesis:record");
        assert_eq!(r["eventSource"], "aws:kinesis");
        assert_eq!(r["eventVersion"], "1.0");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["kinesis"]["kinesisSchemaVersion"], "1.0");
        assert_eq!(r["kinesis"]["data"], "SGVsbG8gV29ybGQ=");
        assert_eq!(r["kinesis"]["partitionKey"], "user-1");
        // aws_lambda_events writes seconds.millis as a JSON string (Lambda sends a number; the
        // crate reads both).
        assert_eq!(r["kinesis"]["approximateArrivalTimestamp"].to_string().trim_matches('"'), "1480641523.477");
        // And back, through the wire format.
        let parsed: KinesisEvent = serde_json::from_value(json).unwrap();
        assert_eq!(shard_id_of(&parsed.records[0]), Some("shardId-000000000003"));
        assert_eq!(StreamRecord::try_from(&parsed.records[0]).unwrap(), rec);
    }

    #[test]
    fn shard_id_of_rejects_bad_event_ids() {
        let mut r = KinesisEventRecord::default();
        assert_eq!(shard_id_of(&r), None);
        for bad in ["", "shardId-000000000000", ":49", "shardId-000000000000:", "a:b"] {
            r.event_id = Some(bad.into());
            assert_eq!(shard_id_of(&r), None, "{bad}");
        }
        r.event_id = Some("shardId-000000000001:4956".into());
        assert_eq!(shard_id_of(&r), Some("shardId-000000000001"));
    }
}
