//! The Arrow schema of an event type's lake table (Parquet files, Athena / DataFusion).
//!
//! Columns: the envelope ([`ENVELOPE_COLUMNS`], all non-null), then one column per data field of
//! the latest version in schema property order, objects as structs and arrays as lists.
//! Timestamps are microseconds UTC (Athena cannot read nanoseconds); integers are Int64 and the
//! schema version Int32 (Athena has no unsigned types).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::registry::{EventType, FieldDef, FieldKind};

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

/// The name of a list column's element field (the Parquet `LIST` convention).
pub const LIST_ELEMENT: &str = "element";

/// The Arrow type of the scalar data field `kind`; `None` for an object or an array, whose
/// type depends on their fields ([`EventType::arrow_schema`]).
pub fn scalar_type(kind: FieldKind) -> Option<DataType> {
    Some(match kind {
        FieldKind::String => DataType::Utf8,
        FieldKind::Integer => DataType::Int64,
        FieldKind::Number => DataType::Float64,
        FieldKind::Boolean => DataType::Boolean,
        FieldKind::Timestamp => timestamp_type(),
        FieldKind::Object | FieldKind::Array => return None,
    })
}

impl EventType {
    /// The lake schema: envelope columns, then the latest version's fields in property order.
    /// Objects are `Struct` columns, arrays `List` columns (element field [`LIST_ELEMENT`]),
    /// date-times `Timestamp(µs, UTC)`. A field is non-null only if, in EVERY version where
    /// its parent is present, it is required and not nullable (a field added in v2 is nullable:
    /// v1 rows have no value); a struct's child is nullable relative to its struct.
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
                let peers: Vec<Option<&FieldDef>> = self.versions.values().map(|v| v.field(&field.name)).collect();
                column(field, &peers)
            })
        });
        Arc::new(Schema::new(envelope.chain(data).collect::<Vec<_>>()))
    }
}

/// The column of `def` (the latest version's), given the same field in each version where its
/// parent is present (`None`: absent there).
fn column(def: &FieldDef, peers: &[Option<&FieldDef>]) -> Field {
    let nullable = peers.iter().any(|p| p.is_none_or(|d| !d.required || d.nullable));
    let present: Vec<&FieldDef> = peers.iter().copied().flatten().collect();
    let data_type = match def.kind {
        FieldKind::Object => {
            let children = def.fields.iter().map(|child| {
                let peers: Vec<Option<&FieldDef>> = present.iter().map(|p| p.field(&child.name)).collect();
                column(child, &peers)
            });
            DataType::Struct(children.collect::<Vec<_>>().into())
        }
        FieldKind::Array => {
            let element = def.items.as_deref().map(|items| {
                let peers: Vec<Option<&FieldDef>> = present.iter().map(|p| p.items.as_deref()).collect();
                column(items, &peers)
            });
            // An array always has items (the registry refuses one without).
            DataType::List(Arc::new(element.unwrap_or_else(|| Field::new(LIST_ELEMENT, DataType::Null, true))))
        }
        kind => scalar_type(kind).unwrap_or(DataType::Null),
    };
    Field::new(&def.name, data_type, nullable)
}
