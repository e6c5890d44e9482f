//! The stream record model: sequence numbers, shard ids, records, and the conversion to the
//! `aws_lambda_events` Kinesis event shape that handlers receive (pure, no I/O).

use std::fmt;
use std::str::FromStr;

use aws_lambda_events::encodings::SecondTimestamp;
use aws_lambda_events::kinesis::{KinesisEvent, KinesisEventRecord, KinesisRecord};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Number of 64-bit limbs of a [`SequenceNumber`] (256 bits: room for any Kinesis sequence number).
const LIMBS: usize = 4;

/// The most decimal digits [`SequenceNumber::from_str`] accepts (2^256 has 78 digits).
const MAX_DIGITS: usize = 78;

/// A Kinesis-style sequence number: an unsigned decimal integer, ordered numerically.
///
/// Real Kinesis sequence numbers are 56 decimal digits (up to ~10^56, more than a `u128` holds),
/// so the value is kept as a 256-bit integer: the same type carries local sequence numbers, the
/// ones in real Kinesis events (handlers compare them in their exactly-once guards) and the small
/// ones a Kinesis emulator may return. The local stream's numbers are built by
/// [`SequenceNumber::from_local`] and always render as exactly 56 digits, `49` followed by the
/// local counter zero-padded to 54 digits (`format!("49{:054}", n)`).
///
/// `Display` prints the canonical decimal form (no leading zeros) and `FromStr` parses it back:
/// `s.parse::<SequenceNumber>()?.to_string() == s` for every canonical `s`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SequenceNumber {
    /// Big-endian limbs (index 0 most significant), so the derived `Ord` is numeric order.
    limbs: [u64; LIMBS],
}

/// Why a string is not a sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceNumberError {
    /// The string is empty.
    #[error("sequence number is empty")]
    Empty,
    /// The string has a character that is not an ASCII decimal digit.
    #[error("sequence number {0:?} is not a decimal integer")]
    NotDecimal(String),
    /// The number does not fit in 256 bits.
    #[error("sequence number {0:?} is too large")]
    TooLarge(String),
}

/// 49 * 10^54: the base of local sequence numbers (`"49" + 54 zeros`).
const LOCAL_BASE: SequenceNumber = {
    let mut n = SequenceNumber::from_u128(49);
    let mut i = 0;
    while i < 54 {
        n = match n.mul_add_small(10, 0) {
            Some(v) => v,
            // 49 * 10^54 < 2^256: unreachable, but const code cannot panic-free unwrap.
            None => SequenceNumber { limbs: [0; LIMBS] },
        };
        i += 1;
    }
    n
};

impl SequenceNumber {
    /// Zero, the number before every real sequence number.
    pub const ZERO: SequenceNumber = SequenceNumber { limbs: [0; LIMBS] };

    /// The number whose value is `n` (e.g. the small numbers a Kinesis emulator returns).
    pub const fn from_u128(n: u128) -> Self {
        SequenceNumber { limbs: [0, 0, (n >> 64) as u64, n as u64] }
    }

    /// The local stream's sequence number for counter `n`: `49·10^54 + n`, which renders as
    /// exactly 56 digits, `format!("49{:054}", n)`. Strictly increasing in `n`.
    pub fn from_local(n: u128) -> Self {
        LOCAL_BASE.add(SequenceNumber::from_u128(n)).unwrap_or(LOCAL_BASE)
    }

    /// The local counter of a number built by [`SequenceNumber::from_local`]; `None` if the number
    /// is below the local base or the counter does not fit in a `u128`.
    pub fn local_counter(&self) -> Option<u128> {
        let diff = self.checked_sub(LOCAL_BASE)?;
        if diff.limbs[0] != 0 || diff.limbs[1] != 0 {
            return None;
        }
        Some((u128::from(diff.limbs[2]) << 64) | u128::from(diff.limbs[3]))
    }

    /// The value as a `u128`, if it fits.
    pub fn to_u128(&self) -> Option<u128> {
        if self.limbs[0] != 0 || self.limbs[1] != 0 {
            return None;
        }
        Some((u128::from(self.limbs[2]) << 64) | u128::from(self.limbs[3]))
    }

    /// `self * m + a` for small `m` and `a`, `None` on overflow.
    const fn mul_add_small(self, m: u64, a: u64) -> Option<Self> {
        let mut limbs = self.limbs;
        let mut carry = a as u128;
        let mut i = LIMBS;
        while i > 0 {
            i -= 1;
            let v = limbs[i] as u128 * m as u128 + carry;
            limbs[i] = v as u64;
            carry = v >> 64;
        }
        if carry != 0 { None } else { Some(SequenceNumber { limbs }) }
    }

    fn add(self, other: Self) -> Option<Self> {
        let mut limbs = [0u64; LIMBS];
        let mut carry = 0u128;
        for i in (0..LIMBS).rev() {
            let v = u128::from(self.limbs[i]) + u128::from(other.limbs[i]) + carry;
            limbs[i] = v as u64;
            carry = v >> 64;
        }
        (carry == 0).then_some(SequenceNumber { limbs })
    }

    fn checked_sub(self, other: Self) -> Option<Self> {
        if self < other {
            return None;
        }
        let mut limbs = [0u64; LIMBS];
        let mut borrow = false;
        for i in (0..LIMBS).rev() {
            let (d1, b1) = self.limbs[i].overflowing_sub(other.limbs[i]);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            limbs[i] = d2;
            borrow = b1 || b2;
        }
        Some(SequenceNumber { limbs })
    }
}

impl From<u128> for SequenceNumber {
    fn from(n: u128) -> Self {
        SequenceNumber::from_u128(n)
    }
}

impl FromStr for SequenceNumber {
    type Err = SequenceNumberError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(SequenceNumberError::Empty);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SequenceNumberError::NotDecimal(truncate(s)));
        }
        let digits = s.trim_start_matches('0');
        if digits.len() > MAX_DIGITS {
            return Err(SequenceNumberError::TooLarge(truncate(s)));
        }
        let mut n = SequenceNumber::ZERO;
        for b in digits.bytes() {
            n = n.mul_add_small(10, u64::from(b - b'0')).ok_or_else(|| SequenceNumberError::TooLarge(truncate(s)))?;
        }
        Ok(n)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const CHUNK: u128 = 10_000_000_000_000_000_000; // 10^19 < 2^64
        let mut limbs = self.limbs;
        let mut chunks: Vec<u64> = Vec::with_capacity(5);
        loop {
            let mut rem: u128 = 0;
            for limb in limbs.iter_mut() {
                let cur = (rem << 64) | u128::from(*limb);
                *limb = (cur / CHUNK) as u64;
                rem = cur % CHUNK;
            }
            chunks.push(rem as u64);
            if limbs.iter().all(|l| *l == 0) {
                break;
            }
        }
        let mut out = String::with_capacity(chunks.len() * 19);
        for (i, chunk) in chunks.iter().rev().enumerate() {
            if i == 0 {
                out.push_str(&chunk.to_string());
            } else {
                out.push_str(&format!("{chunk:019}"));
            }
        }
        f.pad(&out)
    }
}

impl fmt::Debug for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SequenceNumber({self})")
    }
}

impl Serialize for SequenceNumber {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SequenceNumber {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

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
    use proptest::prelude::*;

    #[test]
    fn local_numbers_render_as_56_digits() {
        assert_eq!(SequenceNumber::from_local(0).to_string(), format!("49{:054}", 0));
        assert_eq!(
            SequenceNumber::from_local(7).to_string(),
            "49000000000000000000000000000000000000000000000000000007"
        );
        assert_eq!(SequenceNumber::from_local(u128::MAX).to_string(), format!("49{:054}", u128::MAX));
    }

    #[test]
    fn real_kinesis_numbers_parse_and_compare() {
        let a: SequenceNumber = "49568167373333333333333333333333333333333333333333333333".parse().unwrap();
        let b: SequenceNumber = "49568167373333333334444444444444444444444444444444444444".parse().unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "49568167373333333333333333333333333333333333333333333333");
        // Above the local base, but the counter would not fit in a u128.
        assert_eq!(a.local_counter(), None);
        assert_eq!(a.to_u128(), None);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!("".parse::<SequenceNumber>(), Err(SequenceNumberError::Empty));
        assert!(matches!("12a".parse::<SequenceNumber>(), Err(SequenceNumberError::NotDecimal(_))));
        assert!(matches!("-1".parse::<SequenceNumber>(), Err(SequenceNumberError::NotDecimal(_))));
        assert!(matches!("9".repeat(79).parse::<SequenceNumber>(), Err(SequenceNumberError::TooLarge(_))));
        // 2^256 - 1 fits, 2^256 does not.
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(max.parse::<SequenceNumber>().unwrap().to_string(), max);
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert!(over.parse::<SequenceNumber>().is_err());
        assert_eq!("0".parse::<SequenceNumber>().unwrap(), SequenceNumber::ZERO);
        assert_eq!("007".parse::<SequenceNumber>().unwrap().to_string(), "7");
    }

    #[test]
    fn shard_ids() {
        assert_eq!(shard_id(0), "shardId-000000000000");
        assert_eq!(shard_id(12), "shardId-000000000012");
        assert_eq!(shard_index("shardId-000000000012"), Some(12));
        assert_eq!(shard_index("shardId-12"), None);
        assert_eq!(shard_index("shard-000000000012"), None);
    }

    proptest! {
        #[test]
        fn local_roundtrip_and_order(a in any::<u128>(), b in any::<u128>()) {
            let (sa, sb) = (SequenceNumber::from_local(a), SequenceNumber::from_local(b));
            prop_assert_eq!(sa.to_string(), format!("49{a:054}"));
            prop_assert_eq!(sa.to_string().len(), 56);
            prop_assert_eq!(sa.to_string().parse::<SequenceNumber>().unwrap(), sa);
            prop_assert_eq!(sa.local_counter(), Some(a));
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
        }

        #[test]
        fn u128_matches_decimal(a in any::<u128>(), b in any::<u128>()) {
            let (sa, sb) = (SequenceNumber::from(a), SequenceNumber::from(b));
            prop_assert_eq!(sa.to_string(), a.to_string());
            prop_assert_eq!(a.to_string().parse::<SequenceNumber>().unwrap(), sa);
            prop_assert_eq!(sa.to_u128(), Some(a));
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
        }

        #[test]
        fn decimal_strings_roundtrip(s in "[1-9][0-9]{0,60}") {
            let n: SequenceNumber = s.parse().unwrap();
            prop_assert_eq!(n.to_string(), s);
        }

        #[test]
        fn numeric_order_of_equal_length_strings(a in "[1-9][0-9]{55}", b in "[1-9][0-9]{55}") {
            let (na, nb): (SequenceNumber, SequenceNumber) = (a.parse().unwrap(), b.parse().unwrap());
            prop_assert_eq!(na.cmp(&nb), a.cmp(&b));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,100}") {
            let _ = s.parse::<SequenceNumber>();
        }
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
