//! The lake writer's pure core: one Kinesis batch -> one Parquet file per (event type, dt, hour,
//! shard) group, and the invalid records as data. No I/O, no clock.
//!
//! [`prepare`] runs over a `KinesisBatch` (the invocation payload parsed without an allocation
//! per record, data base64-decoded into one buffer): decode and fully re-validate each record,
//! group valid events by partition of `occurred_at` (UTC) and shard, append them to that group's
//! Arrow builder, then encode each group to Parquet in memory. Records that can never be written
//! are returned as invalid. Per record, the allocation-free path runs first
//! (`Registry::decode_stored_view` -> `RowsBuilder::append_view`: no `Event`, no
//! `serde_json::Map`); anything it does not prove valid takes `Registry::decode_stored` ->
//! `RowsBuilder::append`, which decides and explains. The per-record work is a [`LakePreparer`]
//! (`add` each record in batch order, then `finish`). [`prepare_payload`] (the Lambda's path:
//! raw payload -> parse -> group, then the decoded payload is dropped before encoding) gives the
//! same results as `prepare` over the parsed batch. Event types and versions are looked up once
//! per batch (`ViewCache`), groups are matched by table and shard index (no string comparison).
//! `prepare_reference` (only the reference decoder) and `group_payload_fused` (decode inside the
//! payload scan) are the oracle and the benchmark's alternative (feature `testing`).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use chrono::DateTime;
use sluice_lake::layout::{self, BatchFileName, Partition};
use sluice_schemas::{EventType, Instant, Registry, ViewCache, ViewValues};
use sluice_stream::kinesis_input::{KinesisBatch, KinesisInputError, KinesisRecord};

use crate::columnar::{ColumnarError, RowsBuilder};
use crate::encode::{EncodeError, encode_parquet};

/// The lake schemas of a registry's event types, built once.
#[derive(Debug, Clone)]
pub struct LakeTables {
    registry: Arc<Registry>,
    /// One per event type. A handful: a linear scan beats hashing.
    schemas: Vec<LakeTable>,
}

/// One event type's lake table.
#[derive(Debug, Clone)]
struct LakeTable {
    name: String,
    /// The address of the registry's `EventType` (a view's event type is found by address, no
    /// string comparison).
    addr: usize,
    schema: SchemaRef,
    /// The dimensions of every version, each once, in order of first declaration, as column
    /// paths (`country`, `context.country`): the columns [`crate::encode`] dictionary-encodes.
    dimensions: Arc<[String]>,
}

impl LakeTables {
    /// Every event type of `registry` with its `arrow_schema()`.
    pub fn new(registry: Arc<Registry>) -> Self {
        let schemas = registry
            .event_types()
            .map(|t| {
                let mut dimensions: Vec<String> = Vec::new();
                for dimension in t.versions.values().flat_map(|v| &v.dimensions) {
                    let column = dimension.column_path();
                    if !dimensions.contains(&column) {
                        dimensions.push(column);
                    }
                }
                LakeTable {
                    name: t.name.clone(),
                    addr: std::ptr::from_ref(t).addr(),
                    schema: t.arrow_schema(),
                    dimensions: dimensions.into(),
                }
            })
            .collect();
        Self { registry, schemas }
    }

    /// The registry the tables come from.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The lake schema of `event_type`.
    pub fn schema(&self, event_type: &str) -> Option<&SchemaRef> {
        self.schemas.iter().find(|t| t.name == event_type).map(|t| &t.schema)
    }

    /// The dimension columns of `event_type`'s table (the columns the lake's layouts
    /// dictionary-encode), as `crate::encode::encode_parquet` takes them.
    pub fn dimensions(&self, event_type: &str) -> Option<&[String]> {
        self.schemas.iter().find(|t| t.name == event_type).map(|t| &t.dimensions[..])
    }

    /// The index of `event_type`'s table.
    fn position(&self, event_type: &str) -> Option<usize> {
        self.schemas.iter().position(|t| t.name == event_type)
    }

    /// The index of the table of `event_type`, an event type of [`LakeTables::registry`] (the
    /// registry is immutable and held here, so its event types never move).
    #[inline]
    fn index_of(&self, event_type: &EventType) -> Option<usize> {
        let addr = std::ptr::from_ref(event_type).addr();
        self.schemas.iter().position(|t| t.addr == addr)
    }
}

/// One encoded file, ready to write.
#[derive(Debug, Clone)]
pub struct PreparedFile {
    pub partition: Partition,
    pub name: BatchFileName,
    /// Path relative to the lake root.
    pub path: String,
    pub rows: usize,
    pub bytes: Bytes,
}

/// A record that can never be written (dead-letter it).
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidRecord {
    pub shard_id: Option<String>,
    pub sequence_number: String,
    pub partition_key: String,
    pub reason: String,
    pub data: Vec<u8>,
}

/// A batch decoded, grouped and encoded, before any I/O.
#[derive(Debug, Clone, Default)]
pub struct PreparedLakeBatch {
    /// One file per (event type, dt, hour, shard) group, in partition order.
    pub files: Vec<PreparedFile>,
    /// Records to dead-letter, in batch order.
    pub invalid: Vec<InvalidRecord>,
    /// Records in the batch.
    pub records: usize,
    /// Per shard of the batch, the sequence number of its last record that could name a file
    /// (records come in shard order, so the highest): what the lake is complete through once
    /// the batch is written without failure ([`sluice_lake::layout::ShardProgress`]).
    pub progress: Vec<(String, String)>,
}

/// Why a group could not be encoded: a bug, not the data's fault (the group is reported as
/// failed so nothing is lost).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("building columns: {0}")]
    Columnar(#[from] ColumnarError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// A group that could not be prepared; its first sequence number is reported as failed.
#[derive(Debug)]
pub struct FailedGroup {
    pub partition: Partition,
    pub first_sequence: String,
    pub error: PrepareError,
}

struct Group {
    partition: Partition,
    /// `partition`'s (dt, hour) as whole hours since the epoch.
    epoch_hour: i64,
    /// The event type's index in [`LakeTables`].
    table: usize,
    /// `shard_id`'s index among the preparer's shards.
    shard: usize,
    builder: RowsBuilder,
    /// The table's dimension columns (for the encoding).
    dimensions: Arc<[String]>,
    shard_id: String,
    first_sequence: String,
    last_sequence: String,
}

/// Decodes, validates, groups and encodes one batch (pure: no I/O, no clock).
///
/// Per record, the allocation-free path first ([`Registry::decode_stored_view`] straight into
/// the group's Arrow builders); a record it does not prove valid, and every record of a version
/// it cannot append, takes [`Registry::decode_stored`] + [`RowsBuilder::append`], which decides
/// and explains. Both give the same rows (differential tests in `tests/it/fast_path.rs`).
///
/// Returns the prepared batch and the groups that failed to encode (never expected; reported as
/// batch item failures by the caller). Same as [`group_records`] then [`GroupedBatch::encode`].
pub fn prepare(tables: &LakeTables, input: &KinesisBatch<'_>) -> (PreparedLakeBatch, Vec<FailedGroup>) {
    group_records(tables, input).encode()
}

/// A batch decoded, validated and appended to its groups' Arrow builders, not yet encoded
/// (the first half of [`prepare`]; public so the benchmark times the two halves separately).
pub struct GroupedBatch {
    groups: Vec<Group>,
    invalid: Vec<InvalidRecord>,
    records: usize,
    progress: Vec<(String, String)>,
}

impl std::fmt::Debug for GroupedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupedBatch")
            .field("groups", &self.groups.len())
            .field("invalid", &self.invalid.len())
            .field("records", &self.records)
            .finish()
    }
}

impl GroupedBatch {
    /// Encodes every non-empty group to Parquet (the second half of [`prepare`]).
    pub fn encode(self) -> (PreparedLakeBatch, Vec<FailedGroup>) {
        let GroupedBatch { mut groups, invalid, records, progress } = self;
        groups.retain(|g| !g.builder.is_empty());
        groups.sort_by(|a, b| (&a.partition, &a.shard_id).cmp(&(&b.partition, &b.shard_id)));
        let mut files = Vec::with_capacity(groups.len());
        let mut failed = Vec::new();
        for mut group in groups {
            match encode_group(&mut group) {
                Ok(file) => files.push(file),
                Err(error) => {
                    failed.push(FailedGroup { partition: group.partition, first_sequence: group.first_sequence, error })
                }
            }
        }
        (PreparedLakeBatch { files, invalid, records, progress }, failed)
    }
}

/// Decodes, validates and groups one batch into Arrow builders (see [`prepare`]).
pub fn group_records(tables: &LakeTables, input: &KinesisBatch<'_>) -> GroupedBatch {
    group_records_with(tables, input, Decoder::View)
}

/// [`prepare`] with every record decoded by [`Registry::decode_stored_reference`] (chrono +
/// jsonschema, no view): the reference the fast path is tested against. Same contract and
/// results (the same Parquet bytes, the same invalid records).
#[cfg(feature = "testing")]
pub fn prepare_reference(tables: &LakeTables, input: &KinesisBatch<'_>) -> (PreparedLakeBatch, Vec<FailedGroup>) {
    group_records_with(tables, input, Decoder::Reference).encode()
}

/// The Lambda's path: parses the raw invocation `payload` ([`KinesisBatch::parse`]), decodes,
/// validates and groups its records ([`group_records`]), drops the decoded payload, then
/// encodes: the peak holds the payload's decoded data or the Parquet output, not both.
///
/// Accepts and rejects exactly the payloads [`KinesisBatch::parse`] does (`Err`: the invocation
/// payload is malformed; nothing is prepared). When `Ok`, the result equals
/// `prepare(tables, &KinesisBatch::parse(payload)?)`: the same files byte for byte and the same
/// invalid records (differential tests in `tests/it/fast_path.rs`).
pub fn prepare_payload(
    tables: &LakeTables,
    payload: &[u8],
) -> Result<(PreparedLakeBatch, Vec<FailedGroup>), KinesisInputError> {
    Ok(group_payload(tables, payload)?.encode())
}

/// The first half of [`prepare_payload`]: parse + decode + validate + Arrow, not yet encoded.
pub fn group_payload(tables: &LakeTables, payload: &[u8]) -> Result<GroupedBatch, KinesisInputError> {
    let batch = KinesisBatch::parse(payload)?;
    Ok(group_records(tables, &batch))
}

/// [`group_payload`] with each record decoded inside the payload parser
/// ([`KinesisBatch::parse_with`] + [`LakePreparer`]), right after its base64 decode. Same
/// results (tested); kept for the benchmark's comparison: on the generated 6 MB batches it is
/// slower than the two passes in 11 runs of 13 (by up to 16%; up to 3% faster in the other two),
/// whose second pass streams one buffer (decoded data and the ids [`KinesisBatch::parse`] copies
/// next to it), while here the first touch of each record's payload bytes stalls inside the scan.
#[cfg(feature = "testing")]
pub fn group_payload_fused(tables: &LakeTables, payload: &[u8]) -> Result<GroupedBatch, KinesisInputError> {
    let mut preparer = LakePreparer::new(tables, LakePreparer::capacity_for_payload(payload.len()));
    let batch = KinesisBatch::parse_with(payload, |_, record| preparer.add(&record))?;
    let grouped = preparer.finish();
    debug_assert_eq!(grouped.records, batch.len());
    Ok(grouped)
}

/// Which decoder a [`LakePreparer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    /// [`Registry::decode_stored_view`] first, [`Registry::decode_stored`] for the rest.
    View,
    /// [`Registry::decode_stored_reference`] only (the oracle, feature `testing`).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    Reference,
}

fn group_records_with(tables: &LakeTables, input: &KinesisBatch<'_>, decoder: Decoder) -> GroupedBatch {
    let mut preparer = LakePreparer::with_decoder(tables, input.len(), decoder);
    for record in input.iter() {
        preparer.add(&record);
    }
    preparer.finish()
}

/// Decodes, validates and appends a batch's records to their groups' Arrow builders one record
/// at a time (what [`group_records`] runs over a parsed batch, and [`prepare_payload`] inside the
/// payload parser). Records must come in batch order; [`LakePreparer::finish`] gives the same
/// [`GroupedBatch`] as [`group_records`] over the batch of the same records.
pub struct LakePreparer<'t> {
    tables: &'t LakeTables,
    decoder: Decoder,
    groups: Vec<Group>,
    invalid: Vec<InvalidRecord>,
    records: usize,
    capacity_hint: usize,
    /// The shard of the previous nameable record (a batch comes from one shard: its name is
    /// checked once, not per record), as an index into `shards`.
    checked_shard: Option<usize>,
    /// The shard names seen (groups refer to them by index).
    shards: Vec<String>,
    /// Per shard seen, the sequence number of its latest record.
    last_sequences: Vec<String>,
    /// The group of the previous record: consecutive records mostly share one.
    last_group: usize,
    /// The registry lookups of the batch's event types and versions.
    view_cache: ViewCache<'t>,
}

impl std::fmt::Debug for LakePreparer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakePreparer")
            .field("groups", &self.groups.len())
            .field("invalid", &self.invalid.len())
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl<'t> LakePreparer<'t> {
    /// A preparer of `tables`' event types; `capacity_hint` (the batch's record count, or an
    /// estimate) sizes each group's builders once.
    pub fn new(tables: &'t LakeTables, capacity_hint: usize) -> Self {
        Self::with_decoder(tables, capacity_hint, Decoder::View)
    }

    fn with_decoder(tables: &'t LakeTables, capacity_hint: usize, decoder: Decoder) -> Self {
        Self {
            tables,
            decoder,
            groups: Vec::new(),
            invalid: Vec::new(),
            records: 0,
            capacity_hint,
            checked_shard: None,
            shards: Vec::new(),
            last_sequences: Vec::new(),
            last_group: 0,
            view_cache: ViewCache::default(),
        }
    }

    /// A record-count estimate for a payload of `payload_len` bytes (records of a few hundred
    /// bytes of JSON each; at most the 10,000 records of a Kinesis batch). Only a capacity hint:
    /// an under-estimate regrows the builders, an over-estimate reserves untouched address space.
    pub fn capacity_for_payload(payload_len: usize) -> usize {
        (payload_len / 768).clamp(16, 10_000)
    }

    /// Records added so far.
    pub fn len(&self) -> usize {
        self.records
    }

    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Decodes and validates `record` (the next record of the batch) and appends it to its group,
    /// or keeps it as an invalid record (with the reason) to dead-letter.
    // Not inlined into the payload scanner's loop (`group_payload_fused`): both stay tight.
    #[inline(never)]
    pub fn add(&mut self, record: &KinesisRecord<'_>) {
        self.records += 1;
        let sequence_number = record.sequence_number.as_str();
        let reject = |reason: String| InvalidRecord {
            shard_id: record.shard_id().map(str::to_owned),
            sequence_number: sequence_number.to_owned(),
            partition_key: record.partition_key.as_str().to_owned(),
            reason,
            data: record.data.to_vec(),
        };
        // The previous record's shard, checked without searching the eventID again.
        let cached = self.checked_shard.filter(|&i| record.is_of_shard(&self.shards[i]));
        let shard = match cached {
            Some(i) if layout::is_sequence_segment(sequence_number) => i,
            _ => {
                let Some(name) = record.shard_id() else {
                    self.invalid.push(reject("record has no shard id in eventID".to_owned()));
                    return;
                };
                if BatchFileName::new(name, sequence_number, sequence_number).is_err() {
                    self.invalid.push(reject(format!(
                        "shard id {name:?} or sequence number {sequence_number:?} cannot name a lake file"
                    )));
                    return;
                }
                let i = match self.shards.iter().position(|s| s == name) {
                    Some(i) => i,
                    None => {
                        self.shards.push(name.to_owned());
                        self.last_sequences.push(String::new());
                        self.shards.len() - 1
                    }
                };
                self.checked_shard = Some(i);
                i
            }
        };
        sequence_number.clone_into(&mut self.last_sequences[shard]);
        let shard_name = self.shards[shard].as_str();
        let tables = self.tables;

        if self.decoder == Decoder::View {
            let mut values = ViewValues::default();
            if let Some(view) =
                tables.registry().decode_stored_view_cached(record.data, &mut values, &mut self.view_cache)
                && let Some(table) = tables.index_of(view.event_type)
            {
                let key = GroupKey { table, occurred_at: view.occurred_at, shard };
                match group_for(
                    &mut self.groups,
                    &mut self.last_group,
                    tables,
                    key,
                    shard_name,
                    sequence_number,
                    self.capacity_hint,
                ) {
                    Ok(group) => {
                        if group.builder.append_view(&view, shard_name, sequence_number).is_ok() {
                            sequence_number.clone_into(&mut group.last_sequence);
                            return;
                        }
                        // No view plan for this version (nested or timestamp fields): the view's
                        // event, equal to what `decode_stored` returns, without parsing and
                        // checking the record again.
                        if let Some(event) = view.to_event() {
                            match group.builder.append(&event, shard_name, sequence_number) {
                                Ok(()) => sequence_number.clone_into(&mut group.last_sequence),
                                Err(error) => self.invalid.push(reject(error.to_string())),
                            }
                            return;
                        }
                    }
                    Err(error) => {
                        self.invalid.push(reject(error));
                        return;
                    }
                }
            }
        }

        let decoded = match self.decoder {
            Decoder::View => tables.registry().decode_stored(record.data),
            Decoder::Reference => tables.registry().decode_stored_reference(record.data),
        };
        let decoded = match decoded {
            Ok(decoded) => decoded,
            Err(rejection) => {
                self.invalid.push(reject(format!("invalid event: {rejection}")));
                return;
            }
        };
        let Some(table) = tables.position(&decoded.event_type) else {
            self.invalid.push(reject(format!("event type {:?} has no lake table", decoded.event_type)));
            return;
        };
        let occurred_at = Instant::from_datetime(decoded.occurred_at);
        let key = GroupKey { table, occurred_at, shard };
        let group = match group_for(
            &mut self.groups,
            &mut self.last_group,
            tables,
            key,
            shard_name,
            sequence_number,
            self.capacity_hint,
        ) {
            Ok(group) => group,
            Err(error) => {
                self.invalid.push(reject(error));
                return;
            }
        };
        match group.builder.append(&decoded, shard_name, sequence_number) {
            Ok(()) => sequence_number.clone_into(&mut group.last_sequence),
            Err(error) => self.invalid.push(reject(error.to_string())),
        }
    }

    /// The grouped batch of the records added (encode it with [`GroupedBatch::encode`]).
    pub fn finish(self) -> GroupedBatch {
        let progress = self.shards.into_iter().zip(self.last_sequences).collect();
        GroupedBatch { groups: self.groups, invalid: self.invalid, records: self.records, progress }
    }
}

/// What a record's group is: (event type's table, hour of `occurred_at` (UTC), shard), the
/// table and the shard as indexes (of [`LakeTables`] and of the preparer's shards).
#[derive(Clone, Copy)]
struct GroupKey {
    table: usize,
    occurred_at: Instant,
    shard: usize,
}

impl Group {
    #[inline]
    fn is(&self, key: &GroupKey, epoch_hour: i64) -> bool {
        self.epoch_hour == epoch_hour && self.table == key.table && self.shard == key.shard
    }
}

/// The group of `key`, created (starting at `sequence_number`) if new; `last` caches the index
/// of the previous record's group. `Err`: the reason to dead-letter the record.
fn group_for<'g>(
    groups: &'g mut Vec<Group>,
    last: &mut usize,
    tables: &LakeTables,
    key: GroupKey,
    shard_name: &str,
    sequence_number: &str,
    capacity_hint: usize,
) -> Result<&'g mut Group, String> {
    // Integer hours since the epoch: no calendar arithmetic per record, only per new group.
    let epoch_hour = key.occurred_at.epoch_hour();
    // Few groups per batch (types x hours): a linear scan beats hashing an owned key.
    let position = if groups.get(*last).is_some_and(|g| g.is(&key, epoch_hour)) {
        Some(*last)
    } else {
        groups.iter().position(|g| g.is(&key, epoch_hour))
    };
    if let Some(i) = position {
        *last = i;
        return Ok(&mut groups[i]);
    }
    let table = tables.schemas.get(key.table).ok_or_else(|| "no lake table for this event".to_owned())?;
    let event_type = table.name.as_str();
    let hour_start = DateTime::from_timestamp(epoch_hour.saturating_mul(3600), 0)
        .ok_or_else(|| format!("occurred_at {} s is outside the supported range", key.occurred_at.secs))?;
    // A group often holds most of the batch. Reserving room for the whole batch costs address
    // space, not memory (untouched pages are never faulted in), and saves regrowing (copying)
    // every column.
    let capacity = capacity_hint.max(16);
    let builder = RowsBuilder::new(event_type, table.schema.clone(), capacity)
        .map_err(|error| format!("no lake table for this event: {error}"))?;
    groups.push(Group {
        partition: Partition::of(event_type, hour_start),
        epoch_hour,
        table: key.table,
        shard: key.shard,
        builder,
        dimensions: Arc::clone(&table.dimensions),
        shard_id: shard_name.to_owned(),
        first_sequence: sequence_number.to_owned(),
        last_sequence: sequence_number.to_owned(),
    });
    *last = groups.len() - 1;
    Ok(&mut groups[*last])
}

fn encode_group(group: &mut Group) -> Result<PreparedFile, PrepareError> {
    let partition = &group.partition;
    let name = BatchFileName::new(&group.shard_id, &group.first_sequence, &group.last_sequence)
        .map_err(|e| PrepareError::Columnar(ColumnarError::Arrow(format!("unnameable group: {e}"))))?;
    let batch = group.builder.finish()?;
    let rows = batch.num_rows();
    let metadata = [
        ("sluice.event_type", partition.event_type.clone()),
        ("sluice.shard_id", group.shard_id.clone()),
        ("sluice.first_sequence_number", group.first_sequence.clone()),
        ("sluice.last_sequence_number", group.last_sequence.clone()),
    ];
    let schema = batch.schema();
    let bytes = encode_parquet(&schema, &[batch], &metadata, &group.dimensions)?;
    let path = partition.file_path(&name.to_string());
    Ok(PreparedFile { partition: partition.clone(), name, path, rows, bytes })
}
