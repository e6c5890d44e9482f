//! The Arrow schema of an event type's lake table (Parquet files, Athena / DataFusion).
//!
//! Columns: the envelope ([`ENVELOPE_COLUMNS`], all non-null), then one column per data field of
//! the latest version in schema property order. Timestamps are microseconds UTC (Athena cannot
//! read nanoseconds); integers are Int64 and the schema version Int32 (Athena has no unsigned
//! types).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::registry::{EventType, FieldKind};

/// The envelope columns, in table order. No data field may use these names.
pub const ENVELOPE_COLUMNS: &[&str] = &[
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "received_at",
    "producer",
    "shard_id",
    "sequence_number",
];

/// `Timestamp(Microsecond, "UTC")`, the type of `occurred_at` and `received_at`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow type of a data field of `kind`.
pub fn data_type(kind: FieldKind) -> DataType {
    match kind {
        FieldKind::String => DataType::Utf8,
        FieldKind::Integer => DataType::Int64,
        FieldKind::Number => DataType::Float64,
        FieldKind::Boolean => DataType::Boolean,
    }
}

impl EventType {
    /// The lake schema: envelope columns, then the latest version's fields in property order.
    /// A data column is non-null only if the field is required in EVERY version (a field added
    /// in v2 is nullable: v1 rows have no value).
    pub fn arrow_schema(&self) -> SchemaRef {
        let envelope = ENVELOPE_COLUMNS.iter().map(|&name| {
            let data_type = match name {
                "schema_version" => DataType::Int32,
                "occurred_at" | "received_at" => timestamp_type(),
                _ => DataType::Utf8,
            };
            Field::new(name, data_type, false)
        });
        let data = self.latest().into_iter().flat_map(|latest| {
            latest.fields.iter().map(|field| {
                let always_required = self.versions.values().all(|v| v.field(&field.name).is_some_and(|f| f.required));
                Field::new(&field.name, data_type(field.kind), !always_required)
            })
        });
        Arc::new(Schema::new(envelope.chain(data).collect::<Vec<_>>()))
    }
}
