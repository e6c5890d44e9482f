//! A partition's lake rows as the aggregator's contributions (pure): the same dimensions,
//! measure, identity fingerprint and event times the aggregator takes from the stored record, so
//! a recomputed state merges with the stream's exactly.

use std::borrow::Cow;
use std::collections::HashMap;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray, make_array,
};
use arrow::buffer::NullBuffer;
use sluice_aggregators::hll::fingerprint;
use sluice_aggregators::{BatchAggregator, Contribution, DimRef, WindowConfig};
use sluice_schemas::{EventType, FieldPath, Instant, Registry};
use sluice_stream::SequenceNumber;

/// The envelope columns a backfill reads (besides the roles' columns).
pub const ENVELOPE: &[&str] =
    &["event_id", "schema_version", "occurred_at", "received_at", "shard_id", "sequence_number"];

/// Every top-level column a backfill of `event_type` reads: the envelope and the columns
/// holding each version's roles (`context` for `context/country`).
pub fn columns(registry: &Registry, event_type: &str) -> Vec<String> {
    let mut out: Vec<String> = ENVELOPE.iter().map(|c| (*c).to_owned()).collect();
    for v in registry.get(event_type).into_iter().flat_map(|t| t.versions.values()) {
        for path in v.dimensions.iter().chain(&v.measure).chain(&v.identity) {
            let Some(root) = path.segments().first() else {
                continue;
            };
            if !out.contains(root) {
                out.push(root.clone());
            }
        }
    }
    out
}

/// The column at `path` in `batch`, through struct columns; null wherever it or a struct on
/// the way is null. `None` when the batch has no such column.
fn role_column(batch: &RecordBatch, path: &FieldPath) -> Option<ArrayRef> {
    let (first, rest) = path.segments().split_first()?;
    let mut column = Arc::clone(batch.column_by_name(first)?);
    for segment in rest {
        let parent = column.as_any().downcast_ref::<StructArray>()?;
        let child = parent.column_by_name(segment)?;
        let nulls = NullBuffer::union(parent.nulls(), child.nulls());
        let data = child.to_data().into_builder().nulls(nulls).build().ok()?;
        column = make_array(data);
    }
    Some(column)
}

/// Per shard, the aggregation of its rows (one [`BatchAggregator`] each, over `config`'s
/// windows), and the rows that could not be read as their version's contribution.
#[derive(Debug, Default)]
pub struct ShardAggregates {
    pub shards: HashMap<String, BatchAggregator>,
    /// Rows whose version, role values or sequence number do not read (corrupt or foreign
    /// files): left out, counted, and logged by the caller.
    pub unreadable: usize,
}

impl ShardAggregates {
    /// Adds the rows of `batches` named by `rows` ((batch, row) indices, one copy per
    /// `event_id`, e.g. `compaction::rows::output_order`'s) of `event_type`, in that order.
    pub fn add(
        &mut self,
        registry: &Registry,
        event_type: &str,
        config: &WindowConfig,
        batches: &[RecordBatch],
        rows: &[(usize, usize)],
    ) {
        let Some(table) = registry.get(event_type) else {
            self.unreadable += rows.len();
            return;
        };
        let columns: Vec<Option<BatchColumns<'_>>> = batches.iter().map(|b| BatchColumns::of(b, table)).collect();
        let mut contribution = Contribution { event_type: Cow::Borrowed(event_type), ..Contribution::empty() };
        for &(b, row) in rows {
            let read = columns.get(b).and_then(Option::as_ref).and_then(|c| Some((c, c.read(row, &mut contribution)?)));
            let Some((c, seq)) = read else {
                self.unreadable += 1;
                continue;
            };
            let shard = c.shard.value(row);
            if !self.shards.contains_key(shard) {
                self.shards.insert(shard.to_owned(), BatchAggregator::new(config.clone()));
            }
            if let Some(aggregator) = self.shards.get_mut(shard) {
                aggregator.add(seq, &contribution);
            }
        }
    }
}

/// One batch's columns a contribution is read from, resolved once per batch.
struct BatchColumns<'a> {
    version: &'a Int32Array,
    occurred: &'a TimestampMicrosecondArray,
    received: &'a TimestampMicrosecondArray,
    shard: &'a StringArray,
    sequence: &'a StringArray,
    /// Per schema version of the event type, its role columns (`None` when the batch lacks one:
    /// the version's rows do not read).
    roles: Vec<(i32, Option<Roles>)>,
}

/// A version's role columns in one batch.
struct Roles {
    dimensions: Vec<ArrayRef>,
    measure: Option<ArrayRef>,
    identity: Option<ArrayRef>,
}

impl<'a> BatchColumns<'a> {
    /// `None` when an envelope column is missing or of another type (no row reads).
    fn of(batch: &'a RecordBatch, table: &EventType) -> Option<Self> {
        let roles = table
            .versions
            .iter()
            .filter_map(|(&v, schema)| {
                let v = i32::try_from(v).ok()?;
                let column = |path: &FieldPath| role_column(batch, path);
                let roles = (|| {
                    let dimensions = schema.dimensions.iter().map(column).collect::<Option<Vec<_>>>()?;
                    let measure = match &schema.measure {
                        None => None,
                        Some(m) => Some(column(m)?),
                    };
                    let identity = match &schema.identity {
                        None => None,
                        Some(i) => Some(column(i)?),
                    };
                    Some(Roles { dimensions, measure, identity })
                })();
                Some((v, roles))
            })
            .collect();
        Some(BatchColumns {
            version: typed(batch, "schema_version")?,
            occurred: typed(batch, "occurred_at")?,
            received: typed(batch, "received_at")?,
            shard: typed(batch, "shard_id")?,
            sequence: typed(batch, "sequence_number")?,
            roles,
        })
    }

    /// Reads `row` into `into` (times, dimensions, observation); its sequence number, or `None`
    /// when the row does not read as its version's contribution.
    fn read<'c>(&'c self, row: usize, into: &mut Contribution<'c>) -> Option<SequenceNumber> {
        if self.version.is_null(row) || self.shard.is_null(row) || self.sequence.is_null(row) {
            return None;
        }
        let version = self.version.value(row);
        let roles = self.roles.iter().find(|(v, _)| *v == version)?.1.as_ref()?;
        let seq = SequenceNumber::from_ascii(self.sequence.value(row).as_bytes()).ok()?;
        into.dims.clear();
        for d in &roles.dimensions {
            into.dims.push(dimension(d, row)?);
        }
        into.obs.measure = match &roles.measure {
            None => None,
            Some(m) => Some(number(m, row)?),
        };
        into.obs.identity = match &roles.identity {
            None => None,
            Some(i) => Some(identity(i, row)?),
        };
        into.occurred_at = instant(self.occurred.value(row));
        into.received_at = instant(self.received.value(row));
        Some(seq)
    }
}

fn typed<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Option<&'a T> {
    batch.column_by_name(name)?.as_any().downcast_ref::<T>()
}

fn instant(micros: i64) -> Instant {
    Instant { secs: micros.div_euclid(1_000_000), nanos: (micros.rem_euclid(1_000_000) * 1000) as u32 }
}

fn dimension(column: &ArrayRef, row: usize) -> Option<DimRef<'_>> {
    if column.is_null(row) {
        return None;
    }
    if let Some(s) = column.as_any().downcast_ref::<StringArray>() {
        return Some(DimRef::from(s.value(row)));
    }
    column.as_any().downcast_ref::<Int64Array>().map(|i| DimRef::Int(i.value(row)))
}

fn number(column: &ArrayRef, row: usize) -> Option<f64> {
    if column.is_null(row) {
        return None;
    }
    if let Some(f) = column.as_any().downcast_ref::<Float64Array>() {
        return Some(f.value(row));
    }
    column.as_any().downcast_ref::<Int64Array>().map(|i| i.value(row) as f64)
}

/// The identity's fingerprint as the aggregator takes it: of the string, or of the integer's
/// decimal digits.
fn identity(column: &ArrayRef, row: usize) -> Option<u32> {
    if column.is_null(row) {
        return None;
    }
    if let Some(s) = column.as_any().downcast_ref::<StringArray>() {
        return Some(fingerprint(s.value(row).as_bytes()));
    }
    column.as_any().downcast_ref::<Int64Array>().map(|i| fingerprint(i.value(row).to_string().as_bytes()))
}
