//! The aggregator's pure core over one batch: decode every record ([`Decoder`]), aggregate the
//! whole batch in memory per shard ([`BatchAggregator`]) and collect the invalid records as
//! dead letters (reason + original bytes). [`prepare_batch`] runs over a parsed batch;
//! [`BatchPreparer`] is the same work fused with the payload parse (the Lambda's path; same
//! result, tested below). No I/O; `now` is passed in.

use chrono::{DateTime, Utc};
use sluice_dlq::{DeadLetter, FailureKind};
use sluice_schemas::ViewCache;
use sluice_stream::SequenceNumber;
use sluice_stream::kinesis_input::{KinesisBatch, KinesisRecord, Text};

use crate::aggregate::{BatchAggregator, BatchDelta, Contribution};
use crate::decode::{Decoder, Path};
use crate::key::DimRef;
use crate::window::WindowConfig;

/// The `source` of this handler's dead letters.
pub const DEAD_LETTER_SOURCE: &str = "aggregator";

/// One record's position in the batch: its sequence number, parsed and as sent (what a
/// batch item failure reports).
#[derive(Debug, PartialEq)]
pub(crate) struct Item<'a> {
    pub(crate) sequence_number: Text<'a>,
    pub(crate) seq: SequenceNumber,
}

/// One shard's records of a batch and their aggregated deltas.
#[derive(Debug, PartialEq)]
pub struct ShardBatch<'a> {
    /// The shard id.
    pub shard: &'a str,
    pub(crate) items: Vec<Item<'a>>,
    /// One delta per key (see [`BatchAggregator`]).
    pub delta: BatchDelta,
}

/// An invalid record: where it was (shard and sequence number, when usable) and its letter.
#[derive(Debug, PartialEq)]
pub(crate) struct Invalid<'a> {
    pub(crate) position: Option<(&'a str, SequenceNumber)>,
    pub(crate) letter: DeadLetter,
}

/// The pure part of a batch ([`prepare_batch`]): per-shard deltas and the dead letters.
#[derive(PartialEq)]
pub struct PreparedAggregates<'a> {
    /// Shards in first-seen order.
    pub shards: Vec<ShardBatch<'a>>,
    pub(crate) invalid: Vec<Invalid<'a>>,
    /// Records validated by the decoder's fast path.
    pub fast_decoded: u64,
}

impl PreparedAggregates<'_> {
    /// Valid records aggregated.
    pub fn aggregated(&self) -> usize {
        self.shards.iter().map(|s| s.delta.event_count()).sum()
    }

    /// Invalid records (to dead-letter).
    pub fn invalid(&self) -> usize {
        self.invalid.len()
    }

    /// The dead letters, in the order they are sent: records without a usable shard id /
    /// sequence number first, then each shard's rejected records (shards in first-seen order).
    pub fn dead_letters(&self) -> impl Iterator<Item = &DeadLetter> {
        self.invalid.iter().map(|i| &i.letter)
    }
}

impl ShardBatch<'_> {
    /// The sequence numbers of the shard's records (valid or not), in batch order.
    pub fn sequence_numbers(&self) -> impl Iterator<Item = SequenceNumber> + '_ {
        self.items.iter().map(|i| i.seq)
    }
}

impl std::fmt::Debug for PreparedAggregates<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedAggregates")
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
/// letters. The handler's first step for a batch already in memory (a `KinesisEvent` from the
/// local event source mapping); the Lambda runs the same steps fused with the payload parse
/// ([`BatchPreparer`]), with an identical result.
pub fn prepare_batch<'a>(
    decoder: &Decoder,
    config: &WindowConfig,
    input: &'a KinesisBatch<'_>,
    now: DateTime<Utc>,
) -> PreparedAggregates<'a> {
    let mut preparer = BatchPreparer::with_capacity(decoder, config, now, input.len());
    for (index, record) in input.iter().enumerate() {
        preparer.add(index, record);
    }
    preparer.finish(input)
}

/// [`prepare_batch`] record by record, for [`KinesisBatch::parse_with`]: `add` each record as
/// the parser hands it over (its decoded `data` still in the CPU's caches, instead of read back
/// from memory after the whole ~6 MB payload is parsed), then [`BatchPreparer::finish`] with
/// the parsed batch. Keeps only record indexes, sequence numbers and rejection reasons; the
/// result is exactly [`prepare_batch`]'s on the same batch (same deltas, same per-shard add
/// order, same dead letters in the same order).
///
/// ```ignore
/// let mut preparer = BatchPreparer::new(&decoder, &config, now);
/// let batch = KinesisBatch::parse_with(payload, |i, r| preparer.add(i, r))?;
/// let prepared = preparer.finish(&batch);
/// ```
pub struct BatchPreparer<'d> {
    decoder: &'d Decoder,
    config: &'d WindowConfig,
    now: DateTime<Utc>,
    /// Shards in first-seen order.
    shards: Vec<ShardState>,
    /// The shard of the previous record: consecutive records are almost always of one shard.
    last: Option<usize>,
    /// Records without a usable shard id / sequence number: (index, reason), in order.
    unusable: Vec<(usize, String)>,
    fast_decoded: u64,
    /// The dimension buffer of the contribution decoded into, kept across records.
    dims: Vec<DimRef<'static>>,
    /// The registry lookups of the batch's event types and versions.
    view_cache: ViewCache<'d>,
    /// Records expected in the next new shard.
    capacity: usize,
}

/// The number of records a raw Kinesis payload of `len` bytes likely holds (~1 KB each, as
/// Lambda sends them), for [`BatchPreparer::with_capacity`]. Only a hint.
pub fn records_hint(len: usize) -> usize {
    len / 900 + 1
}

struct ShardState {
    shard: String,
    /// (record index, sequence number), in order.
    items: Vec<(usize, SequenceNumber)>,
    /// Records the decoder rejected: (record index, sequence number, reason), in order.
    rejected: Vec<(usize, SequenceNumber, String)>,
    agg: BatchAggregator,
}

impl std::fmt::Debug for BatchPreparer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchPreparer")
            .field("shards", &self.shards.len())
            .field("unusable", &self.unusable.len())
            .finish_non_exhaustive()
    }
}

impl<'d> BatchPreparer<'d> {
    /// An empty batch; `now` stamps the dead letters.
    pub fn new(decoder: &'d Decoder, config: &'d WindowConfig, now: DateTime<Utc>) -> Self {
        Self::with_capacity(decoder, config, now, 0)
    }

    /// [`BatchPreparer::new`] with room for `records` records (e.g. [`KinesisBatch::len`], or
    /// [`records_hint`] of the payload) in the first shard seen, the common single-shard case.
    pub fn with_capacity(decoder: &'d Decoder, config: &'d WindowConfig, now: DateTime<Utc>, records: usize) -> Self {
        BatchPreparer {
            decoder,
            config,
            now,
            capacity: records,
            shards: Vec::new(),
            last: None,
            unusable: Vec::new(),
            fast_decoded: 0,
            dims: Vec::new(),
            view_cache: ViewCache::default(),
        }
    }

    /// Adds record `index` of the batch: its shard and sequence number checked, its data
    /// decoded, validated and aggregated (or its rejection kept). Records must come in batch
    /// order, each once. Returns whether [`BatchPreparer::finish`] needs the record's `data`
    /// (it goes into a dead letter): a `false` record may have empty data in the batch given to
    /// `finish` ([`KinesisBatch::parse_retaining`]).
    #[inline]
    pub fn add(&mut self, index: usize, record: KinesisRecord<'_>) -> bool {
        let seq = SequenceNumber::from_ascii(record.sequence_number.as_bytes());
        let cached = self.last.filter(|&g| self.shards.get(g).is_some_and(|s| record.is_of_shard(&s.shard)));
        let shard = if cached.is_some() { None } else { record.shard_id() };
        let (g, seq) = match (cached, shard, seq) {
            (Some(g), _, Ok(seq)) => (g, seq),
            (None, Some(shard), Ok(seq)) => {
                let g = match self.shards.iter().position(|s| s.shard == shard) {
                    Some(g) => g,
                    None => {
                        let capacity = std::mem::take(&mut self.capacity);
                        self.shards.push(ShardState {
                            shard: shard.to_owned(),
                            items: Vec::with_capacity(capacity),
                            rejected: Vec::new(),
                            agg: BatchAggregator::with_capacity(self.config.clone(), capacity),
                        });
                        self.shards.len() - 1
                    }
                };
                (g, seq)
            }
            (_, _, seq) => {
                let reason = format!(
                    "record has no usable shard id / sequence number (eventID {:?}, sequenceNumber {:?}{})",
                    record.event_id,
                    record.sequence_number,
                    seq.err().map(|e| format!(": {e}")).unwrap_or_default()
                );
                self.unusable.push((index, reason));
                return true;
            }
        };
        self.last = Some(g);
        let Some(state) = self.shards.get_mut(g) else { return true };
        state.items.push((index, seq));
        // The contribution borrows this record's data; its dimension buffer is reused.
        let mut c = Contribution { dims: std::mem::take(&mut self.dims), ..Contribution::empty() };
        let invalid = match self.decoder.decode_cached(record.data, &mut c, &mut self.view_cache) {
            Ok(path) => {
                self.fast_decoded += u64::from(path == Path::Fast);
                state.agg.add(seq, &c);
                false
            }
            Err(rejection) => {
                state.rejected.push((index, seq, rejection.to_string()));
                true
            }
        };
        self.dims = recycle(c.dims);
        invalid
    }

    /// The prepared batch over `batch`, the batch whose records were added (by index).
    pub fn finish<'a>(self, batch: &'a KinesisBatch<'_>) -> PreparedAggregates<'a> {
        let now = self.now;
        let mut invalid: Vec<Invalid<'a>> = Vec::new();
        for (index, reason) in self.unusable {
            if let Some(record) = batch.get(index) {
                invalid.push(Invalid { position: None, letter: dead_letter(&record, record.shard_id(), reason, now) });
            }
        }
        let mut shards = Vec::with_capacity(self.shards.len());
        for ShardState { shard: _, items, rejected, agg } in self.shards {
            // The shard id as borrowed from the batch (the records of a shard all carry it).
            let Some(shard) = items.first().and_then(|&(i, _)| batch.get(i)).and_then(|r| r.shard_id()) else {
                continue;
            };
            debug_assert!(!shard.is_empty());
            for (index, seq, reason) in rejected {
                if let Some(record) = batch.get(index) {
                    invalid.push(Invalid {
                        position: Some((shard, seq)),
                        letter: dead_letter(&record, Some(shard), reason, now),
                    });
                }
            }
            let mut kept = Vec::with_capacity(items.len());
            kept.extend(
                items
                    .into_iter()
                    .filter_map(|(i, seq)| Some(Item { sequence_number: batch.get(i)?.sequence_number, seq })),
            );
            let items = kept;
            shards.push(ShardBatch { shard, items, delta: agg.finish() });
        }
        PreparedAggregates { shards, invalid, fast_decoded: self.fast_decoded }
    }
}

/// `dims` emptied, with its allocation kept for the next record (an in-place collect: the
/// element types differ only in lifetime).
#[inline]
fn recycle(mut dims: Vec<DimRef<'_>>) -> Vec<DimRef<'static>> {
    dims.clear();
    dims.into_iter().map(|_| DimRef::Int(0)).collect()
}

fn dead_letter(record: &KinesisRecord<'_>, shard: Option<&str>, reason: String, now: DateTime<Utc>) -> DeadLetter {
    DeadLetter {
        source: DEAD_LETTER_SOURCE.to_owned(),
        kind: FailureKind::Invalid,
        reason,
        shard_id: shard.map(str::to_owned),
        sequence_number: Some(record.sequence_number.as_str().to_owned()).filter(|s| !s.is_empty()),
        partition_key: Some(record.partition_key.as_str().to_owned()).filter(|s| !s.is_empty()),
        failed_at: now,
        data: record.data.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_schemas::Registry;

    use super::*;
    use proptest::prelude::*;

    /// The two-pass `prepare_batch` this crate had before [`BatchPreparer`] (group by shard,
    /// then decode each shard's records): the oracle for the one-pass version.
    fn prepare_reference<'a>(
        decoder: &Decoder,
        config: &WindowConfig,
        input: &'a KinesisBatch<'_>,
        now: DateTime<Utc>,
    ) -> PreparedAggregates<'a> {
        let mut groups: Vec<(&'a str, Vec<(KinesisRecord<'a>, SequenceNumber)>)> = Vec::new();
        let mut invalid = Vec::new();
        for record in input.iter() {
            match (record.shard_id(), SequenceNumber::from_ascii(record.sequence_number.as_bytes())) {
                (Some(shard), Ok(seq)) => match groups.iter_mut().find(|(s, _)| *s == shard) {
                    Some((_, items)) => items.push((record, seq)),
                    None => groups.push((shard, vec![(record, seq)])),
                },
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
        let mut shards = Vec::new();
        for (shard, items) in groups {
            let mut agg = BatchAggregator::new(config.clone());
            for (record, seq) in &items {
                match decoder.decode(record.data) {
                    Ok((c, path)) => {
                        fast_decoded += u64::from(path == Path::Fast);
                        agg.add(*seq, &c);
                    }
                    Err(rejection) => invalid.push(Invalid {
                        position: Some((shard, *seq)),
                        letter: dead_letter(record, Some(shard), rejection.to_string(), now),
                    }),
                }
            }
            let items = items.into_iter().map(|(r, seq)| Item { sequence_number: r.sequence_number, seq }).collect();
            shards.push(ShardBatch { shard, items, delta: agg.finish() });
        }
        PreparedAggregates { shards, invalid, fast_decoded }
    }

    /// Record payloads: the fixture's (valid on the fast path, invalid, not JSON) and variants
    /// (the registry path, non-ASCII text, another event type).
    fn data_pool() -> Vec<Vec<u8>> {
        let event: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_str(include_str!("../tests/data/kinesis-event.json")).unwrap();
        let mut pool: Vec<Vec<u8>> = event.records.iter().map(|r| r.kinesis.data.0.clone()).collect();
        let first: serde_json::Value = serde_json::from_slice(&pool[0]).unwrap();
        pool.push(serde_json::to_vec_pretty(&first).unwrap());
        let mut other = first.clone();
        other["data"]["country"] = "DE".into();
        other["data"]["page"] = "/größe".into();
        other["occurred_at"] = "2026-01-01T00:03:10Z".into();
        pool.push(serde_json::to_vec(&other).unwrap());
        pool.push(Vec::new());
        pool
    }

    fn payload(records: &[(String, String, Vec<u8>)]) -> Vec<u8> {
        use base64::Engine as _;
        let records: Vec<serde_json::Value> = records
            .iter()
            .enumerate()
            .map(|(i, (id, seq, data))| {
                serde_json::json!({
                    "eventID": id,
                    "kinesis": {
                        "partitionKey": format!("pk-{i}"),
                        "sequenceNumber": seq,
                        "data": base64::engine::general_purpose::STANDARD.encode(data),
                    },
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap()
    }

    fn check_same(decoder: &Decoder, config: &WindowConfig, payload: &[u8]) {
        let now = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let batch = KinesisBatch::parse(payload).unwrap();
        let reference = prepare_reference(decoder, config, &batch, now);
        assert_eq!(prepare_batch(decoder, config, &batch, now), reference);
        let mut preparer = BatchPreparer::new(decoder, config, now);
        let streamed = KinesisBatch::parse_with(payload, |i, r| {
            preparer.add(i, r);
        })
        .unwrap();
        assert_eq!(preparer.finish(&streamed), reference);
        // What the Lambda runs: the batch keeps only the data of the records to dead-letter.
        let mut preparer = BatchPreparer::with_capacity(decoder, config, now, records_hint(payload.len()));
        let retained = KinesisBatch::parse_retaining(payload, |i, r| preparer.add(i, r)).unwrap();
        assert_eq!(preparer.finish(&retained), reference);
        let kept: usize = retained.iter().map(|r| r.data.len()).sum();
        let letters: usize = reference.dead_letters().map(|l| l.data.len()).sum();
        assert_eq!(kept, letters, "only dead letters' bytes are kept");
    }

    #[test]
    fn fused_and_two_pass_preparation_agree_on_the_fixture() {
        let decoder = Decoder::new(Arc::new(Registry::builtin().unwrap()));
        let config = WindowConfig::default();
        let fixture = include_bytes!("../tests/data/kinesis-event.json");
        let batch = KinesisBatch::parse(fixture).unwrap();
        let now = Utc::now();
        let prepared = prepare_batch(&decoder, &config, &batch, now);
        assert_eq!((prepared.aggregated(), prepared.invalid()), (3, 2));
        assert_eq!(prepared, prepare_reference(&decoder, &config, &batch, now));
        check_same(&decoder, &config, fixture);
    }

    #[test]
    fn recycled_dims_keep_their_allocation() {
        let mut dims: Vec<DimRef<'_>> = Vec::with_capacity(5);
        dims.push(DimRef::from(String::from("x")));
        let cap = dims.capacity();
        let ptr = dims.as_ptr() as usize;
        let recycled = recycle(dims);
        assert!(recycled.is_empty());
        assert_eq!((recycled.capacity(), recycled.as_ptr() as usize), (cap, ptr));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Shards interleaved, unusable ids and sequence numbers, valid / invalid / slow-path
        /// records: the fused preparation, `prepare_batch` and the old two-pass version build
        /// identical batches (deltas, add order, dead letters and their order, fast count).
        #[test]
        fn fused_and_two_pass_preparation_agree(
            picks in proptest::collection::vec((0usize..7, 0usize..6, 0usize..40, any::<bool>()), 0..40),
        ) {
            let decoder = Decoder::new(Arc::new(Registry::builtin().unwrap()));
            let config = WindowConfig::default();
            let pool = data_pool();
            let shards = ["shardId-000000000003", "shardId-000000000001", "a:b"];
            let records: Vec<(String, String, Vec<u8>)> = picks
                .iter()
                .map(|&(d, s, q, bad_seq)| {
                    let seq = if bad_seq && q % 3 == 0 { format!("{q}x") } else { format!("4959{q:04}") };
                    let id = match s {
                        0..=2 => format!("{}:{seq}", shards[s]),
                        3 => format!("{}:{q}", shards[0]),
                        4 => "shardId-000000000003".to_owned(),
                        _ => String::new(),
                    };
                    (id, if bad_seq && q % 3 == 1 { String::new() } else { seq }, pool[d % pool.len()].clone())
                })
                .collect();
            check_same(&decoder, &config, &payload(&records));
        }
    }
}
