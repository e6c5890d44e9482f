//! Validated events -> Arrow [`RecordBatch`] in an event type's lake schema (pure).
//!
//! The schema is [`sluice_schemas::EventType::arrow_schema`]: envelope columns, then the latest
//! version's data fields. Events of an older version leave the fields that version lacks null;
//! a field an older version had but the latest lacks is not written (the evolution check refuses
//! removals). Timestamps are microseconds UTC.
//!
//! [`RowsBuilder`] appends one event at a time, so a caller can drop each decoded event right
//! away (the lake writer never holds a batch's events and its Arrow columns at once).
//! [`RowsBuilder::append_view`] appends a record straight from its bytes
//! ([`sluice_schemas::StoredView`], validated by the compiled field table) with no `Event`, no
//! `serde_json::Map` and no per-field allocation: the lake writer's hot path. It appends the same
//! row [`RowsBuilder::append`] appends for `view.to_event()` (differential tests in
//! `tests/it/fast_path.rs`); per schema version it is used only when every field is sure to fit
//! its column (a per-version plan, built on first use), else the caller falls back to `append`.
//! The envelope's `event_type`, `producer` and `shard_id` columns repeat one value in a
//! lake-writer group: they count rows until a value differs instead of copying each row.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use serde_json::Value;
use sluice_schemas::{Event, FieldKind, SchemaVersion, StoredValue, StoredView};

/// Why an event or a schema cannot be turned into columns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ColumnarError {
    /// The lake schema has a column type this builder does not produce: a bug in the schema
    /// crate's mapping; fatal for the event type (nothing is written for it).
    #[error("column {column:?} has unsupported type {data_type}")]
    UnsupportedColumn { column: String, data_type: String },
    /// This event does not fit the lake schema (wrong JSON type, missing required value, or an
    /// event of another type). Dead-letter the event; the rest of the batch is unaffected.
    #[error("event does not fit the lake schema: column {column:?}: {reason}")]
    RowMismatch { column: String, reason: String },
    /// Arrow refused the finished columns (lengths or nullability): a bug, fatal for the batch.
    #[error("arrow: {0}")]
    Arrow(String),
}

impl From<ArrowError> for ColumnarError {
    fn from(e: ArrowError) -> Self {
        ColumnarError::Arrow(e.to_string())
    }
}

/// Where a column's values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    EventId,
    EventType,
    SchemaVersion,
    OccurredAt,
    ReceivedAt,
    Producer,
    ShardId,
    SequenceNumber,
    Data,
}

enum ColumnBuilder {
    Utf8(StringBuilder),
    /// A non-null envelope string column whose rows all hold one value, by construction
    /// (`event_type`) or in practice (`shard_id` within a lake-writer group, `producer`).
    Repeated(RepeatedStrings),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

/// One extracted value, checked against its column before anything is appended.
#[derive(Clone, Copy)]
enum Cell<'a> {
    Null,
    Str(&'a str),
    I32(i32),
    I64(i64),
    F64(f64),
    Bool(bool),
    Micros(i64),
}

/// A non-null string column that counts rows while they all hold the same value (no per-row
/// copy) and turns into a [`StringBuilder`] at the first row that differs. Finishes to the same
/// [`StringArray`] either way.
struct RepeatedStrings {
    /// The value of every row so far, and the one [`RepeatedStrings::repeat`] appends: set by
    /// `new`, replaced by the first [`RepeatedStrings::append`] to an empty column.
    value: String,
    rows: usize,
    /// Every row, once a row differed from `value`.
    mixed: Option<StringBuilder>,
}

impl RepeatedStrings {
    fn new(value: &str) -> Self {
        Self { value: value.to_owned(), rows: 0, mixed: None }
    }

    /// Appends a row holding the current value (the only value of an `event_type` column).
    #[inline]
    fn repeat(&mut self) {
        match &mut self.mixed {
            Some(builder) => builder.append_value(&self.value),
            None => self.rows += 1,
        }
    }

    #[inline]
    fn append(&mut self, value: &str) {
        match &mut self.mixed {
            Some(builder) => builder.append_value(value),
            None if self.rows == 0 => {
                value.clone_into(&mut self.value);
                self.rows = 1;
            }
            None if self.value == value => self.rows += 1,
            None => {
                let mut builder = StringBuilder::with_capacity(self.rows + 1, (self.rows + 1) * value.len());
                for _ in 0..self.rows {
                    builder.append_value(&self.value);
                }
                builder.append_value(value);
                self.mixed = Some(builder);
            }
        }
    }

    /// The rows appended; the column is empty again after.
    fn finish(&mut self) -> StringArray {
        let rows = std::mem::take(&mut self.rows);
        match self.mixed.take() {
            Some(mut builder) => builder.finish(),
            None => {
                let offsets = OffsetBuffer::from_repeated_length(self.value.len(), rows);
                StringArray::new(offsets, self.value.repeat(rows).into_bytes().into(), None)
            }
        }
    }
}

struct Column {
    name: String,
    source: Source,
    nullable: bool,
    builder: ColumnBuilder,
}

/// Builds one [`RecordBatch`] of an event type's lake schema, one event at a time.
///
/// Guarantee: [`RowsBuilder::append`] either appends a complete row or nothing (a row that does
/// not fit is refused before any column is touched), so the finished batch is always well-formed.
pub struct RowsBuilder {
    schema: SchemaRef,
    event_type: String,
    columns: Vec<Column>,
    rows: usize,
    /// Per schema version, how a [`StoredView`] fills the columns (`None`: the version cannot
    /// be appended from a view; the caller uses [`RowsBuilder::append`]). Built on first use.
    view_plans: Vec<(u32, Option<ViewPlan>)>,
    /// A view value did not match its column (unreachable by the plan's construction); the
    /// batch is refused by [`RowsBuilder::finish`] instead of holding a wrong row.
    poisoned: bool,
}

/// For each column (in order): the view slot of a data column, or `None` (envelope column, or a
/// data field this version does not have: null).
#[derive(Debug, Clone)]
struct ViewPlan {
    slots: Vec<Option<usize>>,
    schema_version: i32,
}

/// A [`StoredView`] of a version whose fields cannot be appended from a view (outside the fast
/// subset, or a field type that differs from the lake column): use [`RowsBuilder::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this schema version is appended through Registry::decode_stored")]
pub struct NoViewPlan;

impl std::fmt::Debug for RowsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowsBuilder")
            .field("event_type", &self.event_type)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl RowsBuilder {
    /// A builder for `event_type`'s rows in `schema` (its `arrow_schema()`), with room for
    /// `capacity` rows.
    pub fn new(event_type: &str, schema: SchemaRef, capacity: usize) -> Result<Self, ColumnarError> {
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let source = match field.name().as_str() {
                "event_id" => Source::EventId,
                "event_type" => Source::EventType,
                "schema_version" => Source::SchemaVersion,
                "occurred_at" => Source::OccurredAt,
                "received_at" => Source::ReceivedAt,
                "producer" => Source::Producer,
                "shard_id" => Source::ShardId,
                "sequence_number" => Source::SequenceNumber,
                _ => Source::Data,
            };
            let unsupported = || ColumnarError::UnsupportedColumn {
                column: field.name().clone(),
                data_type: field.data_type().to_string(),
            };
            let builder = match field.data_type() {
                DataType::Utf8
                    if !field.is_nullable()
                        && matches!(source, Source::EventType | Source::Producer | Source::ShardId) =>
                {
                    ColumnBuilder::Repeated(RepeatedStrings::new(event_type))
                }
                DataType::Utf8 => {
                    ColumnBuilder::Utf8(StringBuilder::with_capacity(capacity, capacity * string_bytes_hint(source)))
                }
                DataType::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(capacity)),
                DataType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
                DataType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(capacity)),
                DataType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(capacity)),
                DataType::Timestamp(TimeUnit::Microsecond, Some(tz))
                    if tz.as_ref() == "UTC" || tz.as_ref() == "+00:00" =>
                {
                    ColumnBuilder::Timestamp(
                        TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone(tz.clone()),
                    )
                }
                _ => return Err(unsupported()),
            };
            let type_fits = matches!(
                (source, &builder),
                (Source::Data, _)
                    | (
                        Source::EventId
                            | Source::EventType
                            | Source::Producer
                            | Source::ShardId
                            | Source::SequenceNumber,
                        ColumnBuilder::Utf8(_)
                    )
                    | (Source::EventType | Source::Producer | Source::ShardId, ColumnBuilder::Repeated(_))
                    | (Source::SchemaVersion, ColumnBuilder::Int32(_))
                    | (Source::OccurredAt | Source::ReceivedAt, ColumnBuilder::Timestamp(_))
            );
            if !type_fits {
                return Err(unsupported());
            }
            columns.push(Column { name: field.name().clone(), source, nullable: field.is_nullable(), builder });
        }
        Ok(Self {
            schema,
            event_type: event_type.to_owned(),
            columns,
            rows: 0,
            view_plans: Vec::new(),
            poisoned: false,
        })
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row was appended.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends `event` (read from `shard_id` at `sequence_number`) as one row, or refuses it with
    /// [`ColumnarError::RowMismatch`] and appends nothing.
    pub fn append(&mut self, event: &Event, shard_id: &str, sequence_number: &str) -> Result<(), ColumnarError> {
        if event.event_type != self.event_type {
            return Err(ColumnarError::RowMismatch {
                column: "event_type".to_owned(),
                reason: format!("is {:?}, this table is {:?}", event.event_type, self.event_type),
            });
        }
        let mut cells = Vec::with_capacity(self.columns.len());
        self.extract(event, shard_id, sequence_number, &mut cells)?;
        for (column, cell) in self.columns.iter_mut().zip(cells) {
            push(&mut column.builder, cell);
        }
        self.rows += 1;
        Ok(())
    }

    /// Appends a record decoded by [`sluice_schemas::Registry::decode_stored_view`] (read from
    /// `shard_id` at `sequence_number`) as one row: the same row [`RowsBuilder::append`] appends
    /// for `view.to_event()`, without building the event. [`NoViewPlan`] (nothing appended) for
    /// a view of another event type or of a version that must take [`RowsBuilder::append`].
    pub fn append_view(
        &mut self,
        view: &StoredView<'_, '_, '_>,
        shard_id: &str,
        sequence_number: &str,
    ) -> Result<(), NoViewPlan> {
        if view.event_type.name != self.event_type {
            return Err(NoViewPlan);
        }
        let version = view.schema.version;
        let index = match self.view_plans.iter().position(|(v, _)| *v == version) {
            Some(i) => i,
            None => {
                let plan = self.view_plan(view.schema);
                self.view_plans.push((version, plan));
                self.view_plans.len() - 1
            }
        };
        let Some(plan) = &self.view_plans[index].1 else {
            return Err(NoViewPlan);
        };
        let mut ok = true;
        for (column, slot) in self.columns.iter_mut().zip(&plan.slots) {
            match (&mut column.builder, column.source) {
                (ColumnBuilder::Utf8(b), Source::EventId) => b.append_value(view.event_id.as_str()),
                // `view.event_type.name` is this builder's event type (checked above).
                (ColumnBuilder::Repeated(b), Source::EventType) => b.repeat(),
                (ColumnBuilder::Utf8(b), Source::EventType) => b.append_value(&view.event_type.name),
                (ColumnBuilder::Int32(b), Source::SchemaVersion) => b.append_value(plan.schema_version),
                (ColumnBuilder::Timestamp(b), Source::OccurredAt) => b.append_value(view.occurred_at.micros()),
                (ColumnBuilder::Timestamp(b), Source::ReceivedAt) => b.append_value(view.received_at.micros()),
                (ColumnBuilder::Repeated(b), Source::Producer) => b.append(view.producer.as_str()),
                (ColumnBuilder::Utf8(b), Source::Producer) => b.append_value(view.producer.as_str()),
                (ColumnBuilder::Repeated(b), Source::ShardId) => b.append(shard_id),
                (ColumnBuilder::Utf8(b), Source::ShardId) => b.append_value(shard_id),
                (ColumnBuilder::Utf8(b), Source::SequenceNumber) => b.append_value(sequence_number),
                (builder, Source::Data) => match (builder, slot.and_then(|i| view.value(i))) {
                    (ColumnBuilder::Utf8(b), Some(StoredValue::String(s))) => b.append_value(s.as_str()),
                    (ColumnBuilder::Int64(b), Some(StoredValue::Integer(i))) => b.append_value(i),
                    (ColumnBuilder::Float64(b), Some(StoredValue::Number(f))) => b.append_value(f),
                    (ColumnBuilder::Float64(b), Some(StoredValue::Integer(i))) => b.append_value(i as f64),
                    (ColumnBuilder::Boolean(b), Some(StoredValue::Boolean(v))) => b.append_value(v),
                    (builder, value) => {
                        // Absent (a nullable column, by the plan), or unreachable mismatch.
                        ok &= value.is_none() && column.nullable;
                        push(builder, Cell::Null);
                    }
                },
                // Unreachable: `new` pairs envelope sources with their builder types.
                (builder, _) => {
                    ok = false;
                    push(builder, Cell::Null);
                }
            }
        }
        self.poisoned |= !ok;
        self.rows += 1;
        Ok(())
    }

    /// How views of `schema` fill the columns, if every value is sure to fit: each field of the
    /// version that has a column has the column's type, every non-null data column is a required
    /// field of the version (so validation guarantees its value).
    fn view_plan(&self, schema: &SchemaVersion) -> Option<ViewPlan> {
        let names = schema.view_fields()?;
        let schema_version = i32::try_from(schema.version).ok()?;
        let mut slots = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            if column.source != Source::Data {
                slots.push(None);
                continue;
            }
            let field = schema.field(&column.name);
            let fits = match (field.map(|f| f.kind), &column.builder) {
                (None, _) => column.nullable,
                (Some(kind), builder) => {
                    let typed = matches!(
                        (kind, builder),
                        (FieldKind::String, ColumnBuilder::Utf8(_))
                            | (FieldKind::Integer, ColumnBuilder::Int64(_))
                            | (FieldKind::Number, ColumnBuilder::Float64(_))
                            | (FieldKind::Boolean, ColumnBuilder::Boolean(_))
                    );
                    typed && (column.nullable || field.is_some_and(|f| f.required))
                }
            };
            if !fits {
                return None;
            }
            slots.push(field.and_then(|f| names.iter().position(|n| *n == f.name)));
        }
        Some(ViewPlan { slots, schema_version })
    }

    fn extract<'a>(
        &self,
        event: &'a Event,
        shard_id: &'a str,
        sequence_number: &'a str,
        cells: &mut Vec<Cell<'a>>,
    ) -> Result<(), ColumnarError> {
        for column in &self.columns {
            let cell = match column.source {
                Source::EventId => Cell::Str(&event.event_id),
                Source::EventType => Cell::Str(&event.event_type),
                Source::SchemaVersion => Cell::I32(
                    i32::try_from(event.schema_version)
                        .map_err(|_| mismatch(column, "schema_version does not fit in Int32"))?,
                ),
                Source::OccurredAt => Cell::Micros(event.occurred_at.timestamp_micros()),
                Source::ReceivedAt => Cell::Micros(event.received_at.timestamp_micros()),
                Source::Producer => Cell::Str(&event.producer),
                Source::ShardId => Cell::Str(shard_id),
                Source::SequenceNumber => Cell::Str(sequence_number),
                Source::Data => data_cell(column, event.data.get(&column.name))?,
            };
            if matches!(cell, Cell::Null) && !column.nullable {
                return Err(mismatch(column, "required value is missing"));
            }
            cells.push(cell);
        }
        Ok(())
    }

    /// The finished batch (the builder is reset and can be reused for the same schema).
    pub fn finish(&mut self) -> Result<RecordBatch, ColumnarError> {
        if std::mem::take(&mut self.poisoned) {
            // Drain the builders so the builder is reusable, then refuse the batch.
            for column in &mut self.columns {
                drop(finish_column(&mut column.builder));
            }
            self.rows = 0;
            return Err(ColumnarError::Arrow("a view value did not fit its column".to_owned()));
        }
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(|column| finish_column(&mut column.builder)).collect();
        self.rows = 0;
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }

    /// The schema of the batches this builder produces.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// Builds one batch from whole events: `(event, shard_id, sequence_number)` rows. Fails on the
/// first row that does not fit (use [`RowsBuilder`] to skip such rows instead).
pub fn to_record_batch<'a>(
    event_type: &str,
    schema: SchemaRef,
    rows: impl IntoIterator<Item = (&'a Event, &'a str, &'a str)>,
) -> Result<RecordBatch, ColumnarError> {
    let rows = rows.into_iter();
    let mut builder = RowsBuilder::new(event_type, schema, rows.size_hint().0)?;
    for (event, shard_id, sequence_number) in rows {
        builder.append(event, shard_id, sequence_number)?;
    }
    builder.finish()
}

fn finish_column(builder: &mut ColumnBuilder) -> ArrayRef {
    match builder {
        ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
        ColumnBuilder::Repeated(b) => Arc::new(b.finish()),
        ColumnBuilder::Int32(b) => Arc::new(b.finish()),
        ColumnBuilder::Int64(b) => Arc::new(b.finish()),
        ColumnBuilder::Float64(b) => Arc::new(b.finish()),
        ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
        ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
    }
}

fn mismatch(column: &Column, reason: &str) -> ColumnarError {
    ColumnarError::RowMismatch { column: column.name.clone(), reason: reason.to_owned() }
}

fn data_cell<'a>(column: &Column, value: Option<&'a Value>) -> Result<Cell<'a>, ColumnarError> {
    let value = match value {
        None | Some(Value::Null) => return Ok(Cell::Null),
        Some(value) => value,
    };
    let cell = match (&column.builder, value) {
        (ColumnBuilder::Utf8(_), Value::String(s)) => Some(Cell::Str(s)),
        (ColumnBuilder::Int64(_), Value::Number(n)) => n.as_i64().map(Cell::I64).or_else(|| {
            // 3.0 is a valid JSON Schema integer; anything else is not an Int64.
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= -(2f64.powi(63)) && *f < 2f64.powi(63))
                .map(|f| Cell::I64(f as i64))
        }),
        (ColumnBuilder::Int32(_), Value::Number(n)) => n.as_i64().and_then(|i| i32::try_from(i).ok()).map(Cell::I32),
        (ColumnBuilder::Float64(_), Value::Number(n)) => n.as_f64().map(Cell::F64),
        (ColumnBuilder::Boolean(_), Value::Bool(b)) => Some(Cell::Bool(*b)),
        _ => None,
    };
    cell.ok_or_else(|| mismatch(column, &format!("value {value} does not fit the column type")))
}

fn push(builder: &mut ColumnBuilder, cell: Cell<'_>) {
    match (builder, cell) {
        (ColumnBuilder::Utf8(b), Cell::Str(s)) => b.append_value(s),
        (ColumnBuilder::Repeated(b), Cell::Str(s)) => b.append(s),
        (ColumnBuilder::Int32(b), Cell::I32(v)) => b.append_value(v),
        (ColumnBuilder::Int64(b), Cell::I64(v)) => b.append_value(v),
        (ColumnBuilder::Float64(b), Cell::F64(v)) => b.append_value(v),
        (ColumnBuilder::Boolean(b), Cell::Bool(v)) => b.append_value(v),
        (ColumnBuilder::Timestamp(b), Cell::Micros(v)) => b.append_value(v),
        // Null, and (unreachable: cells are extracted per column type) any other pairing.
        (ColumnBuilder::Utf8(b), _) => b.append_null(),
        // Non-null by construction: an empty value keeps the row count (only reachable in a
        // poisoned batch, which `finish` refuses).
        (ColumnBuilder::Repeated(b), _) => b.append(""),
        (ColumnBuilder::Int32(b), _) => b.append_null(),
        (ColumnBuilder::Int64(b), _) => b.append_null(),
        (ColumnBuilder::Float64(b), _) => b.append_null(),
        (ColumnBuilder::Boolean(b), _) => b.append_null(),
        (ColumnBuilder::Timestamp(b), _) => b.append_null(),
    }
}

/// Expected bytes per value, to size string buffers once.
fn string_bytes_hint(source: Source) -> usize {
    match source {
        Source::EventId => 36,
        Source::SequenceNumber => 56,
        Source::ShardId => 20,
        _ => 12,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Field, Float64Type, Int64Type, Schema};
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use serde_json::json;

    fn schema() -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let mut fields: Vec<Field> = sluice_schemas::ENVELOPE_COLUMNS
            .iter()
            .map(|&name| match name {
                "schema_version" => Field::new(name, DataType::Int32, false),
                "occurred_at" | "received_at" => Field::new(name, ts.clone(), false),
                _ => Field::new(name, DataType::Utf8, false),
            })
            .collect();
        fields.push(Field::new("name", DataType::Utf8, false));
        fields.push(Field::new("count", DataType::Int64, true));
        fields.push(Field::new("ratio", DataType::Float64, true));
        fields.push(Field::new("flag", DataType::Boolean, true));
        Arc::new(Schema::new(fields))
    }

    fn event(data: serde_json::Value) -> Event {
        let at = DateTime::parse_from_rfc3339("2024-05-01T12:00:00.123456Z").unwrap().with_timezone(&Utc);
        Event {
            event_id: "0190a0c4-5b7e-7cc3-8f1a-3b2c1d0e9f8a".into(),
            event_type: "thing".into(),
            schema_version: 1,
            occurred_at: at,
            received_at: at,
            producer: "p".into(),
            data: data.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn a_row_that_does_not_fit_appends_nothing() {
        let mut b = RowsBuilder::new("thing", schema(), 4).unwrap();
        b.append(&event(json!({"name": "a", "count": 3.0})), "s", "1").unwrap();
        let refused = [
            json!({"count": 1}),                // required name missing
            json!({"name": "b", "count": "x"}), // wrong type
            json!({"name": "b", "count": 1.5}), // not an integer
            json!({"name": "b", "flag": 1}),    // not a boolean
            json!({"name": 7}),                 // not a string
        ];
        for data in refused {
            let err = b.append(&event(data.clone()), "s", "2").unwrap_err();
            assert!(matches!(err, ColumnarError::RowMismatch { .. }), "{data}: {err}");
        }
        let mut other = event(json!({"name": "c"}));
        other.event_type = "other".into();
        assert!(b.append(&other, "s", "3").is_err());
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column_by_name("count").unwrap().as_primitive::<Int64Type>().value(0), 3);
        assert!(batch.column_by_name("flag").unwrap().is_null(0));
    }

    #[test]
    fn repeated_strings_finish_to_the_rows_appended() {
        let mut column = RepeatedStrings::new("thing");
        assert_eq!(column.finish().len(), 0);
        column.repeat();
        column.append("thing");
        column.repeat();
        assert_eq!(column.finish().iter().flatten().collect::<Vec<_>>(), ["thing"; 3]);
        column.append("shard-a");
        column.append("shard-a");
        column.append("shard-b");
        column.append("shard-a");
        let rows = column.finish();
        assert_eq!(rows.iter().flatten().collect::<Vec<_>>(), ["shard-a", "shard-a", "shard-b", "shard-a"]);
        assert_eq!(rows.null_count(), 0);
        column.append("again");
        assert_eq!(column.finish().iter().flatten().collect::<Vec<_>>(), ["again"]);
    }

    #[test]
    fn unsupported_column_types_are_refused_up_front() {
        let bad = Arc::new(Schema::new(vec![Field::new("x", DataType::Date32, true)]));
        assert!(matches!(RowsBuilder::new("thing", bad, 1), Err(ColumnarError::UnsupportedColumn { .. })));
        let wrong_envelope = Arc::new(Schema::new(vec![Field::new("occurred_at", DataType::Utf8, false)]));
        assert!(RowsBuilder::new("thing", wrong_envelope, 1).is_err());
    }

    /// The shard of row `i` in `values_round_trip`: one shard, then another from row 20 on.
    fn shard_of(i: usize) -> &'static str {
        if i < 20 { "shard" } else { "shard-2" }
    }

    proptest! {
        #[test]
        fn values_round_trip(
            rows in proptest::collection::vec(
                ("\\PC{0,12}", proptest::option::of(any::<i64>()),
                 proptest::option::of(-1e12f64..1e12), proptest::option::of(any::<bool>())),
                1..40)
        ) {
            let mut b = RowsBuilder::new("thing", schema(), 0).unwrap();
            for (i, (name, count, ratio, flag)) in rows.iter().enumerate() {
                let mut data = json!({"name": name});
                if let Some(c) = count { data["count"] = json!(c); }
                if let Some(r) = ratio { data["ratio"] = json!(r); }
                if let Some(f) = flag { data["flag"] = json!(f); }
                b.append(&event(data), shard_of(i), &i.to_string()).unwrap();
            }
            let batch = b.finish().unwrap();
            prop_assert_eq!(batch.num_rows(), rows.len());
            let names = batch.column_by_name("name").unwrap().as_string::<i32>();
            let counts = batch.column_by_name("count").unwrap().as_primitive::<Int64Type>();
            let ratios = batch.column_by_name("ratio").unwrap().as_primitive::<Float64Type>();
            let flags = batch.column_by_name("flag").unwrap().as_boolean();
            let seqs = batch.column_by_name("sequence_number").unwrap().as_string::<i32>();
            let shards = batch.column_by_name("shard_id").unwrap().as_string::<i32>();
            let types = batch.column_by_name("event_type").unwrap().as_string::<i32>();
            for (i, (name, count, ratio, flag)) in rows.iter().enumerate() {
                prop_assert_eq!(names.value(i), name.as_str());
                prop_assert_eq!(counts.is_valid(i).then(|| counts.value(i)), *count);
                prop_assert_eq!(ratios.is_valid(i).then(|| ratios.value(i)), *ratio);
                prop_assert_eq!(flags.is_valid(i).then(|| flags.value(i)), *flag);
                prop_assert_eq!(seqs.value(i), i.to_string());
                prop_assert_eq!(shards.value(i), shard_of(i));
                prop_assert_eq!(types.value(i), "thing");
            }
        }
    }
}
