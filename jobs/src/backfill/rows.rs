//! A partition's lake rows as the aggregator's contributions (pure): the same dimensions,
//! measure, identity fingerprint and event times the aggregator takes from the stored record, so
//! a recomputed state merges with the stream's exactly.

use std::borrow::Cow;
use std::collections::HashMap;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use sluice_aggregators::hll::fingerprint;
use sluice_aggregators::{BatchAggregator, Contribution, DimRef, Observation, WindowConfig};
use sluice_schemas::{Instant, Registry};
use sluice_stream::SequenceNumber;

/// The envelope columns a backfill reads (besides the roles' columns).
pub const ENVELOPE: &[&str] =
    &["event_id", "schema_version", "occurred_at", "received_at", "shard_id", "sequence_number"];

/// Every column a backfill of `event_type` reads: the envelope and each version's roles.
pub fn columns(registry: &Registry, event_type: &str) -> Vec<String> {
    let mut out: Vec<String> = ENVELOPE.iter().map(|c| (*c).to_owned()).collect();
    for v in registry.get(event_type).into_iter().flat_map(|t| t.versions.values()) {
        for c in v.dimensions.iter().chain(&v.measure).chain(&v.identity) {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
    }
    out
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
    /// Adds `batch`'s rows (one copy per `event_id`, as compaction keeps them) of `event_type`.
    pub fn add(&mut self, registry: &Registry, event_type: &str, config: &WindowConfig, batch: &RecordBatch) {
        let Some(table) = registry.get(event_type) else {
            self.unreadable += batch.num_rows();
            return;
        };
        let (Some(version), Some(occurred), Some(received), Some(shard), Some(sequence)) = (
            typed::<Int32Array>(batch, "schema_version"),
            typed::<TimestampMicrosecondArray>(batch, "occurred_at"),
            typed::<TimestampMicrosecondArray>(batch, "received_at"),
            typed::<StringArray>(batch, "shard_id"),
            typed::<StringArray>(batch, "sequence_number"),
        ) else {
            self.unreadable += batch.num_rows();
            return;
        };
        for row in 0..batch.num_rows() {
            let read = (|| {
                if version.is_null(row) || shard.is_null(row) || sequence.is_null(row) {
                    return None;
                }
                let schema = table.version(u32::try_from(version.value(row)).ok()?)?;
                let seq = SequenceNumber::from_ascii(sequence.value(row).as_bytes()).ok()?;
                let mut dims = Vec::with_capacity(schema.dimensions.len());
                for d in &schema.dimensions {
                    dims.push(dimension(batch.column_by_name(d)?, row)?);
                }
                let measure = match &schema.measure {
                    None => None,
                    Some(m) => Some(number(batch.column_by_name(m)?, row)?),
                };
                let identity = match &schema.identity {
                    None => None,
                    Some(i) => Some(identity(batch.column_by_name(i)?, row)?),
                };
                Some((seq, dims, measure, identity))
            })();
            let Some((seq, dims, measure, identity)) = read else {
                self.unreadable += 1;
                continue;
            };
            let contribution = Contribution {
                event_type: Cow::Borrowed(event_type),
                occurred_at: instant(occurred.value(row)),
                received_at: instant(received.value(row)),
                dims,
                obs: Observation { measure, identity },
            };
            self.shards
                .entry(shard.value(row).to_owned())
                .or_insert_with(|| BatchAggregator::new(config.clone()))
                .add(seq, &contribution);
        }
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
