//! The Lambda Kinesis invocation payload (`{"Records":[...]}`), parsed fast.
//!
//! [`KinesisBatch::parse`] is a hand-written single-pass JSON scanner for this one shape:
//! it keeps only what the handlers use (`eventID`, `kinesis.sequenceNumber`,
//! `kinesis.partitionKey`, `kinesis.data`), base64-decodes `data` (SIMD, `base64-simd`) straight
//! into the record's buffer, and skips every other value after checking its JSON syntax
//! (strings, numbers, literals, any nesting, without recursion, like `serde_json`). Unknown fields
//! are ignored, as Lambda adds fields over time.
//!
//! Contract (differential tests in `tests/it/kinesis_input.rs`): whenever
//! `serde_json::from_slice::<KinesisEvent>` accepts a payload, `from_slice` accepts it with the
//! same records, ids, keys and bytes. It is more lenient only about what it does not read:
//! fields it skips (`approximateArrivalTimestamp`, `awsRegion`, ...) may be missing or of any
//! JSON type, and their strings are checked for JSON syntax but not for UTF-8. It never
//! panics: a malformed payload is a [`KinesisInputError`] naming the byte offset.
//!
//! Two shapes of the result: [`KinesisBatch`] borrows the ids and keys from the payload (as
//! [`Text`]: their UTF-8 checked while scanning, at no cost for ASCII, and not again) and
//! decodes every record's `data` into one shared buffer (no allocation per record: what the
//! aggregator Lambda uses), and `KinesisInput` owns each record's fields (`InputRecord`; test
//! and benchmark support, feature `testing`, as are the views of a `KinesisEvent` and of a
//! `KinesisInput`). Both come from the same scanner and accept exactly the same payloads.
//!
//! Missing or `null` `eventID` and missing `sequenceNumber` / `partitionKey` become empty
//! strings (as in `aws_lambda_events`), so one odd record is the handler's to dead-letter
//! instead of failing the whole batch. Missing `Records`, `kinesis` or `data`, or `data` that
//! is not canonical padded standard base64, fail the payload (as in `aws_lambda_events`).

use std::borrow::Cow;

#[cfg(feature = "testing")]
use aws_lambda_events::event::kinesis::KinesisEvent;
#[cfg(feature = "testing")]
use serde::de::Error as _;
#[cfg(feature = "testing")]
use serde::{Deserialize, Deserializer};
#[cfg(feature = "testing")]
use serde_json::value::RawValue;
use sluice_bytescan::{all_digits, digit_run, string_end};

#[cfg(feature = "testing")]
/// One Kinesis record as the handlers need it; `data` is already base64-decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputRecord {
    /// `"shardId-…:seq"` as Lambda sends it (empty if absent).
    pub event_id: String,
    /// The record's sequence number, as sent (decimal text; empty if absent).
    pub sequence_number: String,
    /// The record's partition key (empty if absent).
    pub partition_key: String,
    /// The record payload, base64-decoded.
    pub data: Vec<u8>,
}

#[cfg(feature = "testing")]
impl InputRecord {
    /// The shard id: the part of `event_id` before the last `':'`, if that is followed by a
    /// non-empty decimal sequence number (same rule as [`crate::shard_id_of`]).
    pub fn shard_id(&self) -> Option<&str> {
        shard_of(self.event_id.as_bytes())
    }
}

#[cfg(feature = "testing")]
/// The Lambda Kinesis invocation payload, parsed fast (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KinesisInput {
    /// The records, in payload order.
    pub records: Vec<InputRecord>,
}

/// Why an invocation payload is not a Kinesis event. Not retryable: the payload is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KinesisInputError {
    /// Not JSON, or not the shape of a Kinesis event.
    #[error("Kinesis event payload is malformed at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: &'static str },
    /// A required field is absent (`record` is the index in `Records`, if inside one).
    #[error("Kinesis event payload lacks `{field}`{}", record.map(|i| format!(" in record {i}")).unwrap_or_default())]
    MissingField { field: &'static str, record: Option<usize> },
    /// A record's `data` is not padded standard base64.
    #[error("Kinesis record {record}: `data` is not valid base64")]
    BadBase64 { record: usize },
}

#[cfg(feature = "testing")]
impl KinesisInput {
    /// Parses a raw invocation payload (see the module docs for the exact contract).
    pub fn from_slice(payload: &[u8]) -> Result<Self, KinesisInputError> {
        let batch = KinesisBatch::parse(payload)?;
        Ok(KinesisInput { records: batch.iter().map(|r| r.to_owned()).collect() })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(feature = "testing")]
/// Deserializes through [`KinesisInput::from_slice`]: the deserializer must be able to lend
/// its input (`serde_json::from_slice` / `from_str`, which is what `lambda_runtime` uses);
/// others (`from_reader`, `from_value`) get an error, never a panic.
impl<'de> Deserialize<'de> for KinesisInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: &'de RawValue = Deserialize::deserialize(deserializer)?;
        KinesisInput::from_slice(raw.get().as_bytes()).map_err(D::Error::custom)
    }
}

#[cfg(feature = "testing")]
impl From<KinesisEvent> for KinesisInput {
    /// Moves every record's fields (`data` is not copied).
    fn from(event: KinesisEvent) -> Self {
        let records = event
            .records
            .into_iter()
            .map(|r| InputRecord {
                event_id: r.event_id.unwrap_or_default(),
                sequence_number: r.kinesis.sequence_number,
                partition_key: r.kinesis.partition_key,
                data: r.kinesis.data.0,
            })
            .collect();
        KinesisInput { records }
    }
}

/// One record of a [`KinesisBatch`], borrowed from it; `data` is already base64-decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KinesisRecord<'b> {
    /// `"shardId-…:seq"` as Lambda sends it (empty if absent).
    pub event_id: Text<'b>,
    /// The record's sequence number, as sent (decimal text; empty if absent).
    pub sequence_number: Text<'b>,
    /// The record's partition key (empty if absent).
    pub partition_key: Text<'b>,
    /// The record payload, base64-decoded.
    pub data: &'b [u8],
}

impl<'b> KinesisRecord<'b> {
    /// The shard id (same rule as [`InputRecord::shard_id`]).
    pub fn shard_id(&self) -> Option<&'b str> {
        shard_of(self.event_id.as_bytes())
    }

    /// Whether [`KinesisRecord::shard_id`] is `shard` (non-empty), decided in one pass over the
    /// bytes: `eventID` is `<shard>:<digits>` (the last `:` is the one after `shard`, as the
    /// rest is all digits). What a handler checks per record to reuse the previous record's shard.
    #[inline]
    pub fn is_of_shard(&self, shard: &str) -> bool {
        match self.event_id.as_bytes().split_at_checked(shard.len()) {
            Some((head, [b':', digits @ ..])) => !shard.is_empty() && head == shard.as_bytes() && all_digits(digits),
            _ => false,
        }
    }

    /// An owned copy.
    #[cfg(feature = "testing")]
    pub fn to_owned(&self) -> InputRecord {
        InputRecord {
            event_id: self.event_id.as_str().to_owned(),
            sequence_number: self.sequence_number.as_str().to_owned(),
            partition_key: self.partition_key.as_str().to_owned(),
            data: self.data.to_vec(),
        }
    }
}

/// A string field of a [`KinesisRecord`] (`eventID`, `sequenceNumber`, `partitionKey`): the
/// scanner checks UTF-8 as it scans (free for ASCII, which these fields are), so a caller that
/// only compares or parses the bytes (a sequence number, a shard id) never checks again;
/// [`Text::as_str`] is for the callers that need a `&str`.
pub use sluice_bytescan::Text;

/// The shard part of `"<shard>:<decimal>"`, if `event_id` (UTF-8) is that.
fn shard_of(event_id: &[u8]) -> Option<&str> {
    let colon = event_id.iter().rposition(|&b| b == b':')?;
    let (shard, seq) = (event_id.get(..colon)?, event_id.get(colon + 1..)?);
    if shard.is_empty() || !all_digits(seq) {
        return None;
    }
    std::str::from_utf8(shard).ok()
}

/// Where a record's data is.
#[derive(Debug, Clone)]
enum DataRef<'a> {
    /// A range of the batch's shared buffer.
    Span(u32, u32),
    /// Borrowed from the caller's records (only the views of owned records, feature `testing`).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    Borrowed(&'a [u8]),
}

/// Where a record's id text is.
#[derive(Debug, Clone)]
enum TextRef<'a> {
    /// Borrowed from the payload (owned when the JSON escaped it).
    Payload(Cow<'a, [u8]>),
    /// Copied into the batch's shared buffer, next to the record's `data`.
    Span(u32, u32),
}

impl<'a> From<&'a str> for TextRef<'a> {
    fn from(s: &'a str) -> Self {
        TextRef::Payload(Cow::Borrowed(s.as_bytes()))
    }
}

#[derive(Debug, Clone)]
struct Slot<'a> {
    /// Valid UTF-8 (see [`Text`]), as are the next two.
    event_id: TextRef<'a>,
    sequence_number: TextRef<'a>,
    partition_key: Cow<'a, [u8]>,
    data: DataRef<'a>,
}

/// The Lambda Kinesis invocation payload, parsed without an allocation per record: strings
/// borrowed from the payload (owned only when the JSON escapes them; [`KinesisBatch::parse`]
/// copies `eventID` and `sequenceNumber` into the shared buffer), every record's decoded
/// `data` in one shared buffer. Also a zero-copy view of a [`KinesisEvent`] or a
/// [`KinesisInput`] (`From<&_>`). Same contract as [`KinesisInput::from_slice`].
#[derive(Debug, Clone, Default)]
pub struct KinesisBatch<'a> {
    records: Vec<Slot<'a>>,
    data: Vec<u8>,
}

impl<'a> KinesisBatch<'a> {
    /// Parses a raw invocation payload (see the module docs for the exact contract).
    ///
    /// For a second pass over the records: each record's `eventID` and `sequenceNumber` are
    /// copied next to its decoded `data` in the batch's buffer, so that pass streams through one
    /// buffer instead of touching the (much larger) payload again per record, a cache miss each
    /// (docs/benchmarks.md, lake writer). [`KinesisBatch::parse_with`], whose
    /// callback sees each record while its bytes are hot, does not copy.
    pub fn parse(payload: &'a [u8]) -> Result<Self, KinesisInputError> {
        Self::scan(payload, true, |_, _| true)
    }

    /// [`KinesisBatch::parse`], calling `each(index, record)` for every record in payload order
    /// as soon as the scanner has read it, while its freshly decoded `data` is still in the
    /// CPU's caches: work done there does not pay a second trip to memory over the batch.
    ///
    /// Accepts and rejects exactly what `parse` does (it is `parse`, with a no-op `each`) and,
    /// when `Ok`, the batch's record `index` is the record `each` was given. On `Err`, `each`
    /// has already seen the records before the malformed part: a caller must discard what it
    /// built from them, as the payload as a whole is rejected.
    pub fn parse_with<F>(payload: &'a [u8], mut each: F) -> Result<Self, KinesisInputError>
    where
        F: FnMut(usize, KinesisRecord<'_>),
    {
        Self::parse_retaining(payload, |i, r| {
            each(i, r);
            true
        })
    }

    /// [`KinesisBatch::parse_with`], where `each` also says whether the batch keeps the
    /// record's decoded `data`: when it returns `false`, that record's `data` is empty in the
    /// returned batch (its buffer space is reused by the next record, so a caller that is done
    /// with most records' bytes inside `each` keeps the decode target in the CPU's caches and
    /// the batch small). Every other field, and the accept / reject verdict, are `parse`'s.
    pub fn parse_retaining<F>(payload: &'a [u8], each: F) -> Result<Self, KinesisInputError>
    where
        F: FnMut(usize, KinesisRecord<'_>) -> bool,
    {
        Self::scan(payload, false, each)
    }

    /// The scan behind every `parse*`: `copy_ids` as [`KinesisBatch::parse`] describes (only
    /// with an `each` that keeps every record's data).
    fn scan<F>(payload: &'a [u8], copy_ids: bool, mut each: F) -> Result<Self, KinesisInputError>
    where
        F: FnMut(usize, KinesisRecord<'_>) -> bool,
    {
        let mut p = Scanner { b: payload, i: 0, runs: Default::default(), copy_ids };
        // Decoded data is at most 3/4 of its base64 text; half the payload covers typical
        // batches (the record metadata around `data` is ~1/2 of the JSON) without a regrow.
        let mut data = Vec::with_capacity(payload.len() / 2);
        p.ws();
        p.expect(b'{', "expected `{` (an object)")?;
        let mut records = None;
        p.ws();
        if !p.eat(b'}') {
            loop {
                p.ws();
                let key = p.key()?;
                if key.as_ref() == b"Records" {
                    if records.is_some() {
                        return Err(p.err("duplicate field `Records`"));
                    }
                    records = Some(p.records(&mut data, &mut each)?);
                } else {
                    p.skip_value()?;
                }
                if !p.next_member(b'}')? {
                    break;
                }
            }
        }
        p.ws();
        if p.i != p.b.len() {
            return Err(p.err("trailing characters"));
        }
        let records = records.ok_or(KinesisInputError::MissingField { field: "Records", record: None })?;
        Ok(KinesisBatch { records, data })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Record `i`, in payload order.
    pub fn get(&self, i: usize) -> Option<KinesisRecord<'_>> {
        self.records.get(i).map(|s| self.view(s))
    }

    /// The records, in payload order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = KinesisRecord<'_>> + '_ {
        self.records.iter().map(|s| self.view(s))
    }

    fn view<'b>(&'b self, s: &'b Slot<'a>) -> KinesisRecord<'b> {
        s.view(&self.data)
    }
}

impl Slot<'_> {
    /// The record, its `Span` resolved in `buffer`.
    #[inline(always)]
    fn view<'b>(&'b self, buffer: &'b [u8]) -> KinesisRecord<'b> {
        let data = match self.data {
            DataRef::Span(a, b) => buffer.get(a as usize..b as usize).unwrap_or_default(),
            DataRef::Borrowed(d) => d,
        };
        let text = |t: &'b TextRef<'_>| match t {
            TextRef::Payload(t) => Text::from_valid(t),
            TextRef::Span(a, b) => Text::from_valid(buffer.get(*a as usize..*b as usize).unwrap_or_default()),
        };
        KinesisRecord {
            event_id: text(&self.event_id),
            sequence_number: text(&self.sequence_number),
            partition_key: Text::from_valid(&self.partition_key),
            data,
        }
    }
}

#[cfg(feature = "testing")]
impl<'a> From<&'a KinesisEvent> for KinesisBatch<'a> {
    /// A view of the event's records (nothing copied).
    fn from(event: &'a KinesisEvent) -> Self {
        let records = event
            .records
            .iter()
            .map(|r| Slot {
                event_id: r.event_id.as_deref().unwrap_or_default().into(),
                sequence_number: r.kinesis.sequence_number.as_str().into(),
                partition_key: Cow::Borrowed(r.kinesis.partition_key.as_bytes()),
                data: DataRef::Borrowed(&r.kinesis.data.0),
            })
            .collect();
        KinesisBatch { records, data: Vec::new() }
    }
}

#[cfg(feature = "testing")]
impl<'a> From<&'a KinesisInput> for KinesisBatch<'a> {
    /// A view of the input's records (nothing copied).
    fn from(input: &'a KinesisInput) -> Self {
        let records = input
            .records
            .iter()
            .map(|r| Slot {
                event_id: r.event_id.as_str().into(),
                sequence_number: r.sequence_number.as_str().into(),
                partition_key: Cow::Borrowed(r.partition_key.as_bytes()),
                data: DataRef::Borrowed(&r.data),
            })
            .collect();
        KinesisBatch { records, data: Vec::new() }
    }
}

/// `text` appended to `buffer`: its span there.
fn copy_into(buffer: &mut Vec<u8>, text: &[u8]) -> Result<TextRef<'static>, KinesisInputError> {
    let begin = buffer_offset(buffer)?;
    buffer.extend_from_slice(text);
    Ok(TextRef::Span(begin, buffer_offset(buffer)?))
}

/// The end of the batch's shared buffer, as the `u32` its spans hold.
fn buffer_offset(buffer: &[u8]) -> Result<u32, KinesisInputError> {
    u32::try_from(buffer.len())
        .map_err(|_| KinesisInputError::Malformed { offset: 0, reason: "payload larger than 4 GiB" })
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// Skip runs: per object kind ([`Object`]) and by their position among the runs of their
    /// object (first, second, ...), runs of consecutive skipped members as the scanner last
    /// parsed them, the exact bytes from the first skipped key to the end of the last skipped
    /// value. Lambda repeats most of them verbatim in every record (`eventName` through
    /// `invokeIdentityArn` is ~250 bytes), so a record whose bytes at a member start equal a
    /// run's moves past them with one comparison instead of re-scanning them
    /// ([`Scanner::replay_run`]).
    ///
    /// Sound because parsing a run is a pure function of its bytes and the scanner's state: at
    /// a member start of the same object kind, followed by a byte that may follow a complete
    /// value (so a number in the run is not the prefix of a longer one), the same bytes are the
    /// same keys (none of them one the scanner reads: they were all skipped, which depends only
    /// on the key and the object kind), the same syntactically valid values and separators,
    /// ending after a value again. Skipped members change nothing but the position, so which
    /// fields were seen (for duplicates) is unaffected.
    runs: [[&'a [u8]; MAX_RUNS]; 2],
    /// Copy each record's `eventID` and `sequenceNumber` into the data buffer
    /// ([`KinesisBatch::parse`]).
    copy_ids: bool,
}

/// The two kinds of object whose members the scanner reads one by one.
#[derive(Clone, Copy)]
enum Object {
    /// An element of `Records`.
    Record = 0,
    /// A record's `kinesis`.
    Kinesis = 1,
}

/// Runs remembered per object kind (a Lambda record has two, its `kinesis` up to three).
const MAX_RUNS: usize = 4;

/// The members of one object being read: which run of skipped members it is in.
struct Members {
    object: Object,
    /// The position of the next run among this object's runs.
    run: usize,
    /// The current run of skipped members, if in one: where its first key began and where
    /// its last value ended.
    current: Option<(usize, usize)>,
}

impl Members {
    fn new(object: Object) -> Self {
        Members { object, run: 0, current: None }
    }
}

/// What `kinesis` holds, as the scanner found it.
#[derive(Default)]
struct KinesisFields<'a> {
    sequence_number: Option<Cow<'a, [u8]>>,
    partition_key: Option<Cow<'a, [u8]>>,
    data: Option<(u32, u32)>,
}

impl<'a> Scanner<'a> {
    fn err(&self, reason: &'static str) -> KinesisInputError {
        KinesisInputError::Malformed { offset: self.i, reason }
    }

    #[inline(always)]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.i += 1;
        }
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8, reason: &'static str) -> Result<(), KinesisInputError> {
        if self.eat(c) { Ok(()) } else { Err(self.err(reason)) }
    }

    /// After a member or element: `,` (true: another follows) or `close` (false).
    #[inline(always)]
    fn next_member(&mut self, close: u8) -> Result<bool, KinesisInputError> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(self.err("expected `,` or the end of the object / array")),
        }
    }

    /// An object key and its `:`; the raw bytes when it has no escape.
    #[inline(always)]
    fn key(&mut self) -> Result<Cow<'a, [u8]>, KinesisInputError> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string key"));
        }
        let (raw, escaped, _) = self.string_span()?;
        let key = if escaped { Cow::Owned(self.unescape(raw)?.into_bytes()) } else { Cow::Borrowed(raw) };
        self.ws();
        self.expect(b':', "expected `:`")?;
        self.ws();
        Ok(key)
    }

    /// At an opening `"`: the raw content up to the closing quote (escapes checked, not
    /// decoded), whether it has escapes, and whether it is all ASCII (see
    /// [`string_end`]; `false` means "check it"). Leaves `i` after the closing quote.
    #[inline(always)]
    fn string_span(&mut self) -> Result<(&'a [u8], bool, bool), KinesisInputError> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        let mut ascii = true;
        loop {
            let rest = self.b.get(self.i..).unwrap_or_default();
            let Some((off, ascii_before)) = string_end(rest) else {
                self.i = self.b.len();
                return Err(self.err("unterminated string"));
            };
            ascii &= ascii_before;
            self.i += off;
            match self.b.get(self.i).copied() {
                Some(b'"') => {
                    let raw = self.b.get(start..self.i).unwrap_or_default();
                    self.i += 1;
                    return Ok((raw, escaped, ascii));
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.b.get(self.i + 1..self.i + 5).unwrap_or_default();
                            if hex.len() != 4 || !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(self.err("invalid \\u escape"));
                            }
                            self.i += 5;
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                _ => return Err(self.err("control character in string")),
            }
        }
    }

    /// Decodes the escapes of a string's raw content (checked by `string_span`).
    fn unescape(&self, raw: &[u8]) -> Result<String, KinesisInputError> {
        let bad = |reason| KinesisInputError::Malformed { offset: self.i, reason };
        let mut out: Vec<u8> = Vec::with_capacity(raw.len());
        let mut i = 0;
        let hex4 = |at: usize| -> Option<u32> {
            let h = std::str::from_utf8(raw.get(at..at + 4)?).ok()?;
            u32::from_str_radix(h, 16).ok()
        };
        while let Some(&c) = raw.get(i) {
            if c != b'\\' {
                out.push(c);
                i += 1;
                continue;
            }
            let e = raw.get(i + 1).copied().ok_or_else(|| bad("invalid escape"))?;
            i += 2;
            let ch = match e {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let hi = hex4(i).ok_or_else(|| bad("invalid \\u escape"))?;
                    i += 4;
                    let code = if (0xD800..0xDC00).contains(&hi) {
                        if raw.get(i..i + 2) != Some(b"\\u") {
                            return Err(bad("lone leading surrogate in \\u escape"));
                        }
                        let lo = hex4(i + 2).ok_or_else(|| bad("invalid \\u escape"))?;
                        if !(0xDC00..0xE000).contains(&lo) {
                            return Err(bad("lone leading surrogate in \\u escape"));
                        }
                        i += 6;
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        hi
                    };
                    char::from_u32(code).ok_or_else(|| bad("lone surrogate in \\u escape"))?
                }
                _ => return Err(bad("invalid escape")),
            };
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        String::from_utf8(out).map_err(|_| bad("string is not UTF-8"))
    }

    /// A string value as its UTF-8 bytes (checked: only when not all ASCII), or `null` when
    /// `nullable`.
    fn string(&mut self, nullable: bool) -> Result<Option<Cow<'a, [u8]>>, KinesisInputError> {
        match self.peek() {
            Some(b'"') => {
                let (raw, escaped, ascii) = self.string_span()?;
                if escaped {
                    Ok(Some(Cow::Owned(self.unescape(raw)?.into_bytes())))
                } else {
                    if !ascii {
                        std::str::from_utf8(raw).map_err(|_| self.err("string is not UTF-8"))?;
                    }
                    Ok(Some(Cow::Borrowed(raw)))
                }
            }
            Some(b'n') if nullable => {
                self.literal(b"null")?;
                Ok(None)
            }
            _ => Err(self.err("expected a string")),
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), KinesisInputError> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let n = digit_run(self.b.get(self.i..).unwrap_or_default());
        self.i += n;
        n
    }

    /// A JSON number (grammar only).
    fn number(&mut self) -> Result<(), KinesisInputError> {
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(self.err("invalid number"));
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        Ok(())
    }

    /// Skips one value, checking its syntax. Iterative (any nesting depth, no recursion),
    /// like serde_json's skipping of ignored values.
    fn skip_value(&mut self) -> Result<(), KinesisInputError> {
        // Open containers: true = object.
        let mut stack: Vec<bool> = Vec::new();
        loop {
            // A value.
            match self.peek() {
                Some(b'"') => {
                    self.string_span()?;
                }
                Some(open @ (b'{' | b'[')) => {
                    self.i += 1;
                    self.ws();
                    let object = open == b'{';
                    if !self.eat(if object { b'}' } else { b']' }) {
                        stack.push(object);
                        if object {
                            self.key()?;
                        }
                        continue;
                    }
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(self.err("expected a value")),
            }
            // After a value: close containers or move to the next member / element.
            loop {
                let Some(&object) = stack.last() else {
                    return Ok(());
                };
                if self.next_member(if object { b'}' } else { b']' })? {
                    self.ws();
                    if object {
                        self.key()?;
                    }
                    break;
                }
                stack.pop();
            }
        }
    }

    /// At a member start of `m`'s object: moves past a remembered run of skipped members that
    /// the input repeats here (see [`Scanner::runs`]), leaving the scanner after its last value.
    #[inline(always)]
    fn replay_run(&mut self, m: &mut Members) -> bool {
        if m.current.is_some() {
            return false;
        }
        let Some(run) = self.runs[m.object as usize].get(m.run).copied() else { return false };
        let end = self.i + run.len();
        // The run's last value must end where the input's does: a number is not
        // self-delimiting (`…"ts":15` of a run is a prefix of `…"ts":153`).
        if run.is_empty()
            || self.b.get(self.i..end) != Some(run)
            || !matches!(self.b.get(end), Some(b',' | b'}' | b' ' | b'\n' | b'\r' | b'\t'))
        {
            return false;
        }
        self.i = end;
        m.run += 1;
        true
    }

    /// The member of `m`'s object whose key began at `key_start` has just been skipped.
    #[inline(always)]
    fn skipped(&self, m: &mut Members, key_start: usize) {
        let start = m.current.map_or(key_start, |(start, _)| start);
        m.current = Some((start, self.i));
    }

    /// A member the scanner reads follows, or the object ends: the run of skipped members
    /// before it, if any, is remembered.
    #[inline(always)]
    fn end_run(&mut self, m: &mut Members) {
        if let Some((start, end)) = m.current.take() {
            if let (Some(slot), Some(run)) = (self.runs[m.object as usize].get_mut(m.run), self.b.get(start..end)) {
                *slot = run;
            }
            m.run += 1;
        }
    }

    /// The `Records` array; `each` sees every record once it is read (and says whether to keep
    /// its data).
    fn records<F>(&mut self, data: &mut Vec<u8>, each: &mut F) -> Result<Vec<Slot<'a>>, KinesisInputError>
    where
        F: FnMut(usize, KinesisRecord<'_>) -> bool,
    {
        self.expect(b'[', "`Records` must be an array")?;
        // ~1 KB of JSON per record is typical: one allocation for most batches.
        let mut out = Vec::with_capacity((self.b.len() - self.i) / 900 + 1);
        self.ws();
        if self.eat(b']') {
            return Ok(out);
        }
        loop {
            self.ws();
            let index = out.len();
            out.push(self.record(index, data)?);
            if let Some(slot) = out.last_mut()
                && !each(index, slot.view(data))
                && let DataRef::Span(begin, _) = slot.data
            {
                data.truncate(begin as usize);
                slot.data = DataRef::Span(begin, begin);
            }
            if !self.next_member(b']')? {
                return Ok(out);
            }
        }
    }

    /// The members of an object of kind `object`, from its `{` to its `}`: `read(self, key)`
    /// reads the value of a key it knows (`Ok(true)`) or declines it (`Ok(false)`: the value
    /// is skipped, and runs of skipped members are remembered and replayed, see [`Scanner::runs`]).
    #[inline(always)]
    fn members<R>(&mut self, object: Object, mut read: R) -> Result<(), KinesisInputError>
    where
        R: FnMut(&mut Self, &[u8]) -> Result<bool, KinesisInputError>,
    {
        let mut m = Members::new(object);
        self.ws();
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            self.ws();
            if !self.replay_run(&mut m) {
                let key_start = self.i;
                let key = self.key()?;
                if read(self, &key)? {
                    self.end_run(&mut m);
                } else {
                    self.skip_value()?;
                    self.skipped(&mut m, key_start);
                }
            }
            if !self.next_member(b'}')? {
                self.end_run(&mut m);
                return Ok(());
            }
        }
    }

    fn record(&mut self, index: usize, data: &mut Vec<u8>) -> Result<Slot<'a>, KinesisInputError> {
        self.expect(b'{', "a record must be an object")?;
        let mut event_id: Option<Option<Cow<'a, [u8]>>> = None;
        let mut kinesis: Option<KinesisFields<'a>> = None;
        self.members(Object::Record, |s, key| {
            match key {
                b"eventID" => {
                    if event_id.is_some() {
                        return Err(s.err("duplicate field `eventID`"));
                    }
                    event_id = Some(s.string(true)?);
                }
                b"kinesis" => {
                    if kinesis.is_some() {
                        return Err(s.err("duplicate field `kinesis`"));
                    }
                    kinesis = Some(s.kinesis(index, data)?);
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let k = kinesis.ok_or(KinesisInputError::MissingField { field: "kinesis", record: Some(index) })?;
        let (a, b) = k.data.ok_or(KinesisInputError::MissingField { field: "data", record: Some(index) })?;
        let event_id = event_id.flatten().unwrap_or_default();
        let sequence_number = k.sequence_number.unwrap_or_default();
        let (event_id, sequence_number) = if self.copy_ids {
            (copy_into(data, &event_id)?, copy_into(data, &sequence_number)?)
        } else {
            (TextRef::Payload(event_id), TextRef::Payload(sequence_number))
        };
        Ok(Slot {
            event_id,
            sequence_number,
            partition_key: k.partition_key.unwrap_or_default(),
            data: DataRef::Span(a, b),
        })
    }

    fn kinesis(&mut self, index: usize, data: &mut Vec<u8>) -> Result<KinesisFields<'a>, KinesisInputError> {
        self.expect(b'{', "`kinesis` must be an object")?;
        let mut k = KinesisFields::default();
        self.members(Object::Kinesis, |s, key| {
            match key {
                b"data" => {
                    if k.data.is_some() {
                        return Err(s.err("duplicate field `data`"));
                    }
                    k.data = Some(s.base64(index, data)?);
                }
                b"sequenceNumber" => {
                    if k.sequence_number.is_some() {
                        return Err(s.err("duplicate field `sequenceNumber`"));
                    }
                    k.sequence_number = s.string(false)?;
                }
                b"partitionKey" => {
                    if k.partition_key.is_some() {
                        return Err(s.err("duplicate field `partitionKey`"));
                    }
                    k.partition_key = s.string(false)?;
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(k)
    }

    /// A base64 string value, decoded and appended to `out`: its range there. The common case
    /// (no escape) decodes the raw span of the JSON text with SIMD; an escaped string is
    /// unescaped first.
    fn base64(&mut self, index: usize, out: &mut Vec<u8>) -> Result<(u32, u32), KinesisInputError> {
        if self.peek() != Some(b'"') {
            return Err(self.err("`data` must be a string"));
        }
        let begin = buffer_offset(out)?;
        let start = self.i + 1;
        // Base64 has no `"`, `\` or control character: the first quote ends a well-formed
        // value, and the decoder rejects anything else in the span.
        if let Some(len) = memchr::memchr(b'"', self.b.get(start..).unwrap_or_default()) {
            let span = self.b.get(start..start + len).unwrap_or_default();
            // Amortized growth (the decoder itself reserves exactly).
            out.reserve(span.len());
            if base64_simd::STANDARD.decode_append(span, out).is_ok() {
                self.i = start + len + 1;
                return Ok((begin, buffer_offset(out)?));
            }
        }
        // Escapes or an invalid value: the exact string, then decode it.
        let (raw, escaped, _) = self.string_span()?;
        let text: Cow<'_, [u8]> =
            if escaped { Cow::Owned(self.unescape(raw)?.into_bytes()) } else { Cow::Borrowed(raw) };
        out.reserve(text.len());
        base64_simd::STANDARD
            .decode_append(text.as_ref(), out)
            .map_err(|_| KinesisInputError::BadBase64 { record: index })?;
        Ok((begin, buffer_offset(out)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse` copies each record's ids next to its data (the second pass then reads one
    /// buffer); `parse_with` leaves them in the payload. Same text either way.
    #[test]
    fn parse_copies_the_ids_into_the_batch_buffer() {
        let payload = br#"{"Records":[{"eventID":"shardId-000000000000:123","kinesis":{"data":"eyJhIjoxfQ==","sequenceNumber":"123","partitionKey":"k"}},{"eventID":"shardId-000000000000:124","kinesis":{"sequenceNumber":"124","partitionKey":"k","data":"e30="}}]}"#;
        let within = |inner: &[u8], outer: &[u8]| outer.as_ptr_range().contains(&inner.as_ptr());
        let batch = KinesisBatch::parse(payload).unwrap();
        let mut streamed = Vec::new();
        let lazy =
            KinesisBatch::parse_with(payload, |_, r| streamed.push(r.sequence_number.as_str().to_owned())).unwrap();
        for ((copied, borrowed), seq) in batch.iter().zip(lazy.iter()).zip(["123", "124"]) {
            assert_eq!((copied.sequence_number.as_str(), borrowed.sequence_number.as_str()), (seq, seq));
            assert_eq!(copied.event_id.as_str(), format!("shardId-000000000000:{seq}"));
            assert_eq!(copied.event_id.as_str(), borrowed.event_id.as_str());
            for text in [copied.event_id, copied.sequence_number] {
                assert!(within(text.as_bytes(), &batch.data) && !within(text.as_bytes(), payload));
            }
            for text in [borrowed.event_id, borrowed.sequence_number] {
                assert!(within(text.as_bytes(), payload));
            }
        }
        assert_eq!(streamed, ["123", "124"]);
    }

    proptest::proptest! {
        #[test]
        fn is_of_shard_agrees_with_shard_id(shard in "[a-z:0-9-]{0,12}", rest in "[0-9:/a]{0,30}") {
            let event_id = format!("{shard}{rest}");
            let record = KinesisRecord { event_id: Text::from(event_id.as_str()), ..KinesisRecord::default() };
            proptest::prop_assert_eq!(record.is_of_shard(&shard), record.shard_id() == Some(shard.as_str()));
        }
    }

    #[test]
    fn is_of_shard_examples() {
        let s = "shardId-000000000001";
        let record = |e: &'static str| KinesisRecord { event_id: Text::from(e), ..KinesisRecord::default() };
        assert!(record("shardId-000000000001:4959033827149025660855969253").is_of_shard(s));
        assert!(record("shardId-000000000001:0").is_of_shard(s));
        for e in [
            "shardId-000000000001",
            "shardId-000000000001:",
            "shardId-000000000001:12a",
            "shardId-000000000001:1234567:8",
            "shardId-000000000002:1",
            "shardId-0000000000011:1",
            "",
        ] {
            assert!(!record(e).is_of_shard(s), "{e}");
            assert_ne!(record(e).shard_id(), Some(s), "{e}");
        }
    }

    #[test]
    fn minimal_payloads() {
        assert_eq!(KinesisInput::from_slice(br#"{"Records":[]}"#).unwrap().len(), 0);
        let one = KinesisInput::from_slice(br#" {"Records" : [ {"kinesis":{"data":"aGk="}} ] } "#).unwrap();
        assert_eq!(one.records[0].data, b"hi");
        assert_eq!(one.records[0].event_id, "");
        assert_eq!(one.records[0].shard_id(), None);
    }
}
