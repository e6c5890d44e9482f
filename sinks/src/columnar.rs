//! Validated events -> Arrow [`RecordBatch`] in an event type's lake schema (pure).
//!
//! The schema is [`sluice_schemas::EventType::arrow_schema`]: envelope columns, then the latest
//! version's data fields, objects as `Struct` columns, arrays as `List` columns (element field
//! `element`), date-times as `Timestamp(µs, "UTC")`. Events of an older version leave the fields
//! that version lacks null, at every depth; a field an older version had but the latest lacks
//! is not written (the evolution check refuses removals). Timestamps are microseconds UTC.
//!
//! Each column is built by one recursive `FieldBuilder` (a scalar leaf, a struct of child
//! builders, or a list of one element builder), shaped by the column's Arrow type; only the
//! envelope's `event_type`, `producer` and `shard_id` columns, which repeat one value in a
//! lake-writer group, count rows until a value differs instead of copying each row. Nulls, at
//! every depth: an absent field and a JSON `null` are a null (refused in a non-null column); a
//! null struct holds null children and a null list no elements. Date-times are read as
//! `occurred_at` is: the canonical stored form without chrono, any other RFC 3339 spelling
//! with it, truncated to the microsecond.
//!
//! [`RowsBuilder`] appends one event at a time, so a caller can drop each decoded event right
//! away (the lake writer never holds a batch's events and its Arrow columns at once). A row that
//! does not fit is cut back out of every column it reached, so a batch holds whole rows only.
//! [`RowsBuilder::append_view`] appends a record straight from its bytes
//! ([`sluice_schemas::StoredView`], validated by the compiled field table) with no `Event`, no
//! `serde_json::Map` and no per-field allocation: the lake writer's hot path. It appends the same
//! row [`RowsBuilder::append`] appends for `view.to_event()` (differential tests in
//! `tests/it/fast_path.rs`); per schema version it is used only when every field is sure to fit
//! its column (a per-version plan, built on first use), else the caller falls back to `append`.
//! A version with objects, arrays, nullable fields or date-times has no view plan: its records
//! take `append`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, BooleanBufferBuilder, Float64Array, Int32Array, Int64Array, ListArray, NullBufferBuilder,
    RecordBatch, StringArray, StringBuilder, StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, FieldRef, Fields, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use serde_json::Value;
use sluice_schemas::{Event, FieldKind, SchemaVersion, StoredValue, StoredView};

/// Why an event or a schema cannot be turned into columns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ColumnarError {
    /// The lake schema has a column type this builder does not produce (`column`: the column's
    /// path, `items.element.sku` inside nested types): a bug in the schema crate's mapping;
    /// fatal for the event type (nothing is written for it).
    #[error("column {column:?} has unsupported type {data_type}")]
    UnsupportedColumn { column: String, data_type: String },
    /// This event does not fit the lake schema (wrong JSON type, missing required value, or an
    /// event of another type); `column` is where, e.g. `items[2].qty`. Dead-letter the event;
    /// the rest of the batch is unaffected.
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
    /// A non-null envelope string column whose rows all hold one value, by construction
    /// (`event_type`) or in practice (`shard_id` within a lake-writer group, `producer`).
    Repeated(RepeatedStrings),
    /// Any other column, envelope or data.
    Field(FieldBuilder),
}

/// One scalar value on its way into a leaf column.
#[derive(Clone, Copy)]
enum Cell<'a> {
    Null,
    /// UTF-8 text (checked again, in one pass, when the column is finished).
    Str(&'a [u8]),
    I32(i32),
    I64(i64),
    F64(f64),
    Bool(bool),
    Micros(i64),
}

impl<'a> Cell<'a> {
    /// The cell of a view's scalar value (`None` for a nested object's or array's text, which
    /// no leaf column takes).
    #[inline(always)]
    fn stored(value: StoredValue<'a>) -> Option<Self> {
        Some(match value {
            StoredValue::String(s) => Cell::Str(s.as_bytes()),
            StoredValue::Integer(i) => Cell::I64(i),
            StoredValue::Number(f) => Cell::F64(f),
            StoredValue::Boolean(b) => Cell::Bool(b),
            StoredValue::Null => Cell::Null,
            StoredValue::Timestamp(t) => Cell::Micros(t.micros()),
            StoredValue::Object(_) | StoredValue::Array(_) => return None,
        })
    }
}

/// Why a value does not fit its column: the reason, and where below the column (`.country`,
/// `[2].qty`; empty at the column itself).
#[derive(Debug)]
struct Misfit {
    path: String,
    reason: String,
}

impl Misfit {
    fn new(reason: impl Into<String>) -> Self {
        Misfit { path: String::new(), reason: reason.into() }
    }

    /// The same misfit seen from the parent: `step` (`.name`, `[i]`) goes in front of the path.
    fn under(mut self, step: &str) -> Self {
        self.path.insert_str(0, step);
        self
    }

    fn into_error(self, column: &str) -> ColumnarError {
        ColumnarError::RowMismatch { column: format!("{column}{}", self.path), reason: self.reason }
    }
}

/// A column type this builder does not produce, at `path` below the column.
struct Unsupported {
    path: String,
    data_type: String,
}

/// One column's values at any depth, built from its Arrow field: a scalar leaf, a struct of
/// child columns, or a list of one element column.
///
/// Appends are undone by [`FieldBuilder::truncate`] (back to a row count), which is what makes
/// a row all-or-nothing: a value that does not fit may leave part of its row appended in this
/// column and in the columns before it, and the caller cuts every column back.
struct FieldBuilder {
    field: FieldRef,
    /// One validity bit per value (allocated at the first null).
    nulls: NullBufferBuilder,
    values: Values,
}

enum Values {
    /// `offsets` start at 0: value `i` is `bytes[offsets[i]..offsets[i + 1]]`.
    Utf8 {
        offsets: Vec<i32>,
        bytes: Vec<u8>,
    },
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float64(Vec<f64>),
    Boolean(BooleanBufferBuilder),
    /// Microseconds since the epoch, in a UTC column (`tz`: its zone name, `UTC` or `+00:00`).
    Timestamp {
        micros: Vec<i64>,
        tz: Arc<str>,
    },
    Struct(Vec<FieldBuilder>),
    /// `offsets` start at 0: list `i` is `element[offsets[i]..offsets[i + 1]]`.
    List {
        offsets: Vec<i32>,
        element: Box<FieldBuilder>,
    },
}

impl FieldBuilder {
    /// A builder of `field`'s values with room for `capacity` of them (`text_bytes`: the
    /// expected bytes of one string value); refuses a type it does not produce.
    fn new(field: &FieldRef, capacity: usize, text_bytes: usize) -> Result<Self, Unsupported> {
        let unsupported = |data_type: &DataType| Unsupported { path: String::new(), data_type: data_type.to_string() };
        let child = |child: &FieldRef| {
            FieldBuilder::new(child, capacity, DATA_TEXT_BYTES).map_err(|mut e| {
                e.path.insert_str(0, &format!(".{}", child.name()));
                e
            })
        };
        let values = match field.data_type() {
            DataType::Utf8 => {
                Values::Utf8 { offsets: first_offset(capacity), bytes: Vec::with_capacity(capacity * text_bytes) }
            }
            DataType::Int32 => Values::Int32(Vec::with_capacity(capacity)),
            DataType::Int64 => Values::Int64(Vec::with_capacity(capacity)),
            DataType::Float64 => Values::Float64(Vec::with_capacity(capacity)),
            DataType::Boolean => Values::Boolean(BooleanBufferBuilder::new(capacity)),
            DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if matches!(tz.as_ref(), "UTC" | "+00:00") => {
                Values::Timestamp { micros: Vec::with_capacity(capacity), tz: Arc::clone(tz) }
            }
            // A struct without fields has no length of its own (the registry refuses empty
            // objects).
            DataType::Struct(fields) if !fields.is_empty() => {
                Values::Struct(fields.iter().map(child).collect::<Result<_, _>>()?)
            }
            DataType::List(element) => {
                Values::List { offsets: first_offset(capacity), element: Box::new(child(element)?) }
            }
            other => return Err(unsupported(other)),
        };
        Ok(Self { field: Arc::clone(field), nulls: NullBufferBuilder::new(capacity), values })
    }

    /// Values appended.
    #[inline]
    fn len(&self) -> usize {
        self.nulls.len()
    }

    /// Appends the JSON `value` (`None`: the field is absent). A null, or an absent field, is a
    /// null; a null struct holds null children and a null list no elements. On `Err` the values
    /// appended below this one stay: the caller truncates.
    fn append_json(&mut self, value: Option<&Value>) -> Result<(), Misfit> {
        let value = match value {
            None | Some(Value::Null) => return self.push(Cell::Null),
            Some(value) => value,
        };
        match (&mut self.values, value) {
            (Values::Struct(children), Value::Object(object)) => {
                for child in children.iter_mut() {
                    let value = object.get(child.field.name());
                    child.append_json(value).map_err(|e| e.under(&format!(".{}", child.field.name())))?;
                }
                self.nulls.append_non_null();
                return Ok(());
            }
            (Values::List { offsets, element }, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    element.append_json(Some(item)).map_err(|e| e.under(&format!("[{i}]")))?;
                }
                offsets.push(offset(element.len())?);
                self.nulls.append_non_null();
                return Ok(());
            }
            _ => {}
        }
        match scalar_of(&self.values, value) {
            Some(cell) => self.push(cell),
            None => Err(Misfit::new(format!("{} is not {}", shown(value), self.expected()))),
        }
    }

    /// Appends one scalar (a null, in a column of any type). On `Err` (a value of another type,
    /// or a null in a non-null column) nothing is appended.
    #[inline(always)]
    fn push(&mut self, cell: Cell<'_>) -> Result<(), Misfit> {
        if let Cell::Null = cell {
            if !self.field.is_nullable() {
                return Err(Misfit::new("required value is missing"));
            }
            self.append_null();
            return Ok(());
        }
        let fits = match (&mut self.values, cell) {
            (Values::Utf8 { offsets, bytes }, Cell::Str(s)) => {
                let end = offset(bytes.len() + s.len())?;
                bytes.extend_from_slice(s);
                offsets.push(end);
                true
            }
            (Values::Int32(v), Cell::I32(i)) => {
                v.push(i);
                true
            }
            (Values::Int64(v), Cell::I64(i)) => {
                v.push(i);
                true
            }
            (Values::Float64(v), Cell::F64(f)) => {
                v.push(f);
                true
            }
            (Values::Float64(v), Cell::I64(i)) => {
                v.push(i as f64);
                true
            }
            (Values::Boolean(v), Cell::Bool(b)) => {
                v.append(b);
                true
            }
            (Values::Timestamp { micros, .. }, Cell::Micros(m)) => {
                micros.push(m);
                true
            }
            _ => false,
        };
        if !fits {
            return Err(self.not_a_value());
        }
        self.nulls.append_non_null();
        Ok(())
    }

    #[cold]
    fn not_a_value(&self) -> Misfit {
        Misfit::new(format!("the value is not {}", self.expected()))
    }

    /// Appends a null, and nulls below it (children of a struct; a list gets no elements).
    fn append_null(&mut self) {
        self.nulls.append_null();
        match &mut self.values {
            Values::Utf8 { offsets, .. } | Values::List { offsets, .. } => {
                let end = offsets.last().copied().unwrap_or(0);
                offsets.push(end);
            }
            Values::Int32(v) => v.push(0),
            Values::Int64(v) => v.push(0),
            Values::Float64(v) => v.push(0.0),
            Values::Boolean(v) => v.append(false),
            Values::Timestamp { micros, .. } => micros.push(0),
            Values::Struct(children) => children.iter_mut().for_each(FieldBuilder::append_null),
        }
    }

    /// Cuts the column back to its first `len` values, and everything below them (children and
    /// elements appended by a row that did not fit included, even where this column's own
    /// length did not grow yet).
    fn truncate(&mut self, len: usize) {
        self.nulls.truncate(len);
        let cut = |offsets: &mut Vec<i32>| {
            offsets.truncate(len + 1);
            offsets.last().map_or(0, |&end| usize::try_from(end).unwrap_or(0))
        };
        match &mut self.values {
            Values::Utf8 { offsets, bytes } => {
                let end = cut(offsets);
                bytes.truncate(end);
            }
            Values::Int32(v) => v.truncate(len),
            Values::Int64(v) => v.truncate(len),
            Values::Float64(v) => v.truncate(len),
            Values::Boolean(v) => v.truncate(len),
            Values::Timestamp { micros, .. } => micros.truncate(len),
            Values::Struct(children) => children.iter_mut().for_each(|c| c.truncate(len)),
            Values::List { offsets, element } => {
                let end = cut(offsets);
                element.truncate(end);
            }
        }
    }

    /// The values appended, as an array of the field's type; the builder is empty after.
    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let nulls = self.nulls.finish().filter(|n| n.null_count() > 0);
        let offsets =
            |offsets: &mut Vec<i32>| OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
        Ok(match &mut self.values {
            Values::Utf8 { offsets: o, bytes } => {
                Arc::new(StringArray::try_new(offsets(o), Buffer::from_vec(std::mem::take(bytes)), nulls)?)
            }
            Values::Int32(v) => Arc::new(Int32Array::try_new(std::mem::take(v).into(), nulls)?),
            Values::Int64(v) => Arc::new(Int64Array::try_new(std::mem::take(v).into(), nulls)?),
            Values::Float64(v) => Arc::new(Float64Array::try_new(std::mem::take(v).into(), nulls)?),
            Values::Boolean(v) => {
                let values = v.finish();
                if nulls.as_ref().is_some_and(|n| n.len() != values.len()) {
                    return Err(ArrowError::InvalidArgumentError("boolean column: validity length differs".into()));
                }
                Arc::new(BooleanArray::new(values, nulls))
            }
            Values::Timestamp { micros, tz } => Arc::new(
                TimestampMicrosecondArray::try_new(std::mem::take(micros).into(), nulls)?.with_timezone(Arc::clone(tz)),
            ),
            Values::Struct(children) => {
                let fields: Fields = children.iter().map(|c| Arc::clone(&c.field)).collect();
                let arrays = children.iter_mut().map(FieldBuilder::finish).collect::<Result<Vec<_>, _>>()?;
                Arc::new(StructArray::try_new(fields, arrays, nulls)?)
            }
            Values::List { offsets: o, element } => {
                let offsets = offsets(o);
                let values = element.finish()?;
                Arc::new(ListArray::try_new(Arc::clone(&element.field), offsets, values, nulls)?)
            }
        })
    }

    /// What a value of this column is, for messages (JSON Schema's words).
    fn expected(&self) -> &'static str {
        match &self.values {
            Values::Utf8 { .. } => "a string",
            Values::Int32(_) => "a 32-bit integer",
            Values::Int64(_) => "a 64-bit integer",
            Values::Float64(_) => "a number",
            Values::Boolean(_) => "a boolean",
            Values::Timestamp { .. } => "an RFC 3339 date-time",
            Values::Struct(_) => "an object",
            Values::List { .. } => "an array",
        }
    }
}

/// Expected bytes of a data field's string value, to size string buffers once.
const DATA_TEXT_BYTES: usize = 12;

/// Offsets of an empty string or list column (the leading 0), with room for `capacity` values.
fn first_offset(capacity: usize) -> Vec<i32> {
    let mut offsets = Vec::with_capacity(capacity + 1);
    offsets.push(0);
    offsets
}

/// `end` as an Arrow `i32` offset.
#[inline(always)]
fn offset(end: usize) -> Result<i32, Misfit> {
    i32::try_from(end).map_err(|_| outgrown())
}

#[cold]
fn outgrown() -> Misfit {
    Misfit::new("the column outgrows 2 GiB (i32 offsets) in one batch")
}

/// The scalar cell of the JSON `value` in a leaf column of `values`, if it fits.
fn scalar_of<'a>(values: &Values, value: &'a Value) -> Option<Cell<'a>> {
    Some(match (values, value) {
        (Values::Utf8 { .. }, Value::String(s)) => Cell::Str(s.as_bytes()),
        (Values::Int64(_), Value::Number(n)) => Cell::I64(integer(n)?),
        (Values::Int32(_), Value::Number(n)) => Cell::I32(i32::try_from(integer(n)?).ok()?),
        (Values::Float64(_), Value::Number(n)) => Cell::F64(n.as_f64()?),
        (Values::Boolean(_), Value::Bool(b)) => Cell::Bool(*b),
        (Values::Timestamp { .. }, Value::String(s)) => Cell::Micros(timestamp_micros(s)?),
        _ => return None,
    })
}

/// `n` as an i64 if it is an integer in range (3.0 is a valid JSON Schema integer).
fn integer(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64().filter(|f| f.fract() == 0.0 && *f >= -(2f64.powi(63)) && *f < 2f64.powi(63)).map(|f| f as i64)
    })
}

/// Microseconds since the epoch of an RFC 3339 date-time (truncated toward the past, as
/// `occurred_at` is): the canonical stored form without chrono, any other spelling with it.
fn timestamp_micros(s: &str) -> Option<i64> {
    match sluice_bytescan::parse_canonical_instant(s.as_bytes()) {
        Some(instant) => Some(instant.micros()),
        None => sluice_schemas::envelope::parse_occurred_at(s).map(|t| t.timestamp_micros()),
    }
}

/// A JSON value for a message: scalars as JSON (long text cut), objects and arrays by kind.
fn shown(value: &Value) -> String {
    match value {
        Value::Object(_) => "an object".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::String(s) if s.chars().count() > 40 => {
            format!("{}...\"", &Value::from(s.chars().take(40).collect::<String>()).to_string().trim_end_matches('"'))
        }
        other => other.to_string(),
    }
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

/// The envelope values of one row.
struct Envelope<'a> {
    event_id: &'a str,
    event_type: &'a str,
    schema_version: i32,
    occurred_at: i64,
    received_at: i64,
    producer: &'a str,
    shard_id: &'a str,
    sequence_number: &'a str,
}

impl Column {
    /// Appends this envelope column's value of `row` (a data column is left alone); false if
    /// it does not fit (unreachable: `RowsBuilder::new` pairs envelope sources with their types).
    #[inline(always)]
    fn push_envelope(&mut self, row: &Envelope<'_>) -> bool {
        let cell = match self.source {
            Source::EventId => Cell::Str(row.event_id.as_bytes()),
            Source::EventType => Cell::Str(row.event_type.as_bytes()),
            Source::SchemaVersion => Cell::I32(row.schema_version),
            Source::OccurredAt => Cell::Micros(row.occurred_at),
            Source::ReceivedAt => Cell::Micros(row.received_at),
            Source::Producer => Cell::Str(row.producer.as_bytes()),
            Source::ShardId => Cell::Str(row.shard_id.as_bytes()),
            Source::SequenceNumber => Cell::Str(row.sequence_number.as_bytes()),
            Source::Data => return true,
        };
        match (&mut self.builder, self.source) {
            (ColumnBuilder::Field(b), _) => b.push(cell).is_ok(),
            // `row.event_type` is the builder's own (`append` and `append_view` check it).
            (ColumnBuilder::Repeated(b), Source::EventType) => {
                b.repeat();
                true
            }
            (ColumnBuilder::Repeated(b), Source::Producer) => {
                b.append(row.producer);
                true
            }
            (ColumnBuilder::Repeated(b), Source::ShardId) => {
                b.append(row.shard_id);
                true
            }
            (ColumnBuilder::Repeated(_), _) => false,
        }
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        match &mut self.builder {
            ColumnBuilder::Repeated(b) => Ok(Arc::new(b.finish())),
            ColumnBuilder::Field(b) => b.finish(),
        }
    }
}

/// Builds one [`RecordBatch`] of an event type's lake schema, one event at a time.
///
/// Guarantee: [`RowsBuilder::append`] either appends a complete row or nothing (a row that does
/// not fit is cut back off every column it reached), so the finished batch is always
/// well-formed.
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
    /// `capacity` rows. [`ColumnarError::UnsupportedColumn`] for a column type it does not
    /// produce, at any depth, or an envelope column of the wrong type.
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
            let unsupported = |path: &str, data_type: String| ColumnarError::UnsupportedColumn {
                column: format!("{}{path}", field.name()),
                data_type,
            };
            let repeated = !field.is_nullable()
                && *field.data_type() == DataType::Utf8
                && matches!(source, Source::EventType | Source::Producer | Source::ShardId);
            let builder = if repeated {
                ColumnBuilder::Repeated(RepeatedStrings::new(event_type))
            } else {
                let builder = FieldBuilder::new(field, capacity, string_bytes_hint(source))
                    .map_err(|e| unsupported(&e.path, e.data_type))?;
                ColumnBuilder::Field(builder)
            };
            let type_fits = match (source, &builder) {
                (Source::Data, _) => true,
                (_, ColumnBuilder::Repeated(_)) => true,
                (_, ColumnBuilder::Field(b)) => matches!(
                    (source, &b.values),
                    (
                        Source::EventId
                            | Source::EventType
                            | Source::Producer
                            | Source::ShardId
                            | Source::SequenceNumber,
                        Values::Utf8 { .. }
                    ) | (Source::SchemaVersion, Values::Int32(_))
                        | (Source::OccurredAt | Source::ReceivedAt, Values::Timestamp { .. })
                ),
            };
            if !type_fits {
                return Err(unsupported("", field.data_type().to_string()));
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
    /// [`ColumnarError::RowMismatch`] (naming the value's place, e.g. `items[2].qty`) and
    /// appends nothing.
    pub fn append(&mut self, event: &Event, shard_id: &str, sequence_number: &str) -> Result<(), ColumnarError> {
        if event.event_type != self.event_type {
            return Err(ColumnarError::RowMismatch {
                column: "event_type".to_owned(),
                reason: format!("is {:?}, this table is {:?}", event.event_type, self.event_type),
            });
        }
        let schema_version = i32::try_from(event.schema_version).map_err(|_| ColumnarError::RowMismatch {
            column: "schema_version".to_owned(),
            reason: "schema_version does not fit in Int32".to_owned(),
        })?;
        // The data columns first: the only ones that can refuse the row.
        for i in 0..self.columns.len() {
            let column = &mut self.columns[i];
            let (Source::Data, ColumnBuilder::Field(builder)) = (column.source, &mut column.builder) else { continue };
            if let Err(misfit) = builder.append_json(event.data.get(&column.name)) {
                let error = misfit.into_error(&column.name);
                for column in &mut self.columns[..=i] {
                    if let ColumnBuilder::Field(builder) = &mut column.builder {
                        builder.truncate(self.rows);
                    }
                }
                return Err(error);
            }
        }
        let envelope = Envelope {
            event_id: &event.event_id,
            event_type: &self.event_type,
            schema_version,
            occurred_at: event.occurred_at.timestamp_micros(),
            received_at: event.received_at.timestamp_micros(),
            producer: &event.producer,
            shard_id,
            sequence_number,
        };
        let mut ok = true;
        for column in &mut self.columns {
            ok &= column.push_envelope(&envelope);
        }
        self.poisoned |= !ok;
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
        let envelope = Envelope {
            event_id: view.event_id.as_str(),
            event_type: &self.event_type,
            schema_version: plan.schema_version,
            occurred_at: view.occurred_at.micros(),
            received_at: view.received_at.micros(),
            producer: view.producer.as_str(),
            shard_id,
            sequence_number,
        };
        let mut ok = true;
        for (column, slot) in self.columns.iter_mut().zip(&plan.slots) {
            ok &= match (column.source, &mut column.builder) {
                // Absent: a nullable column, by the plan.
                (Source::Data, ColumnBuilder::Field(b)) => match slot.and_then(|i| view.value(i)).map(Cell::stored) {
                    None => b.push(Cell::Null).is_ok(),
                    Some(Some(cell)) => b.push(cell).is_ok(),
                    Some(None) => false,
                },
                (Source::Data, ColumnBuilder::Repeated(_)) => false,
                _ => column.push_envelope(&envelope),
            };
        }
        self.poisoned |= !ok;
        self.rows += 1;
        Ok(())
    }

    /// How views of `schema` fill the columns, if every value is sure to fit: each field of the
    /// version that has a column is a scalar of the column's type, every non-null data column
    /// is a required field of the version (so validation guarantees its value).
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
            let fits = match (field, &column.builder) {
                (None, _) => column.nullable,
                (Some(field), ColumnBuilder::Field(builder)) => {
                    let typed = matches!(
                        (field.kind, &builder.values),
                        (FieldKind::String, Values::Utf8 { .. })
                            | (FieldKind::Integer, Values::Int64(_))
                            | (FieldKind::Number, Values::Float64(_))
                            | (FieldKind::Boolean, Values::Boolean(_))
                    );
                    typed && (column.nullable || (field.required && !field.nullable))
                }
                (Some(_), ColumnBuilder::Repeated(_)) => false,
            };
            if !fits {
                return None;
            }
            slots.push(field.and_then(|f| names.iter().position(|n| *n == f.name)));
        }
        Some(ViewPlan { slots, schema_version })
    }

    /// The finished batch (the builder is reset and can be reused for the same schema).
    pub fn finish(&mut self) -> Result<RecordBatch, ColumnarError> {
        self.rows = 0;
        let poisoned = std::mem::take(&mut self.poisoned);
        // Every column is finished (emptied), even when the batch is refused.
        let arrays: Vec<Result<ArrayRef, ArrowError>> = self.columns.iter_mut().map(Column::finish).collect();
        if poisoned {
            return Err(ColumnarError::Arrow("a view value did not fit its column".to_owned()));
        }
        let arrays = arrays.into_iter().collect::<Result<Vec<_>, _>>()?;
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

/// Expected bytes per value, to size string buffers once.
fn string_bytes_hint(source: Source) -> usize {
    match source {
        Source::EventId => 36,
        Source::SequenceNumber => 56,
        Source::ShardId => 20,
        _ => DATA_TEXT_BYTES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Field, Float64Type, Int64Type, Schema, TimestampMicrosecondType};
    use chrono::{DateTime, Utc};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use proptest::prelude::*;
    use serde_json::json;
    use sluice_schemas::Registry;

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
        // Inside nested types too, named by their path.
        let nested = [
            (DataType::List(Arc::new(Field::new("element", DataType::Date32, false))), "x.element"),
            (
                DataType::Struct(
                    vec![Field::new("a", DataType::Utf8, true), Field::new("b", DataType::LargeUtf8, true)].into(),
                ),
                "x.b",
            ),
            (DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), "x"),
            (DataType::Timestamp(TimeUnit::Microsecond, None), "x"),
            (DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Berlin".into())), "x"),
            (DataType::Struct(Fields::empty()), "x"),
            (DataType::LargeList(Arc::new(Field::new("element", DataType::Utf8, false))), "x"),
        ];
        for (data_type, path) in nested {
            let schema = Arc::new(Schema::new(vec![Field::new("x", data_type.clone(), true)]));
            match RowsBuilder::new("thing", schema, 1) {
                Err(ColumnarError::UnsupportedColumn { column, .. }) => assert_eq!(column, path, "{data_type}"),
                other => panic!("{data_type}: {other:?}"),
            }
        }
        // Every shipped event type's table is supported.
        let registry = Registry::builtin().unwrap();
        for t in registry.event_types() {
            RowsBuilder::new(&t.name, t.arrow_schema(), 1).unwrap();
        }
    }

    fn orders() -> SchemaRef {
        Registry::builtin().unwrap().get("order_placed").unwrap().arrow_schema()
    }

    fn order(data: Value) -> Event {
        Event { event_type: "order_placed".into(), ..event(data) }
    }

    fn good_order() -> Value {
        json!({
            "order_id": "o1", "user_id": "u1",
            "context": {"country": "US", "channel": "ios", "app_version": "5.1.0"},
            "items": [{"sku": "A", "qty": 2, "unit_price": 3.5}, {"sku": "B", "qty": 1, "unit_price": 10}],
            "coupon": "SAVE", "placed_at": "2024-05-01T12:00:00.5Z", "total": 17,
        })
    }

    fn strings(array: &dyn Array) -> Vec<Option<&str>> {
        array.as_string::<i32>().iter().collect()
    }

    #[test]
    fn nested_values_fill_structs_lists_and_timestamps() {
        let mut b = RowsBuilder::new("order_placed", orders(), 1).unwrap();
        b.append(&order(good_order()), "s", "1").unwrap();
        let mut second = good_order();
        second["context"].as_object_mut().unwrap().remove("app_version");
        second["coupon"] = Value::Null;
        second["items"] = json!([{"sku": "C", "qty": 3.0, "unit_price": 0.25}]);
        // Not the canonical form: chrono reads it (UTC, truncated to µs).
        second["placed_at"] = json!("2024-05-01T14:00:00.123456789+02:00");
        b.append(&order(second), "s", "2").unwrap();
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let context = batch.column_by_name("context").unwrap().as_struct();
        assert_eq!(strings(context.column_by_name("country").unwrap()), [Some("US"); 2]);
        assert_eq!(strings(context.column_by_name("app_version").unwrap()), [Some("5.1.0"), None]);
        let items = batch.column_by_name("items").unwrap().as_list::<i32>();
        assert_eq!(items.value_offsets(), &[0, 2, 3]);
        let lines = items.values().as_struct();
        assert_eq!(strings(lines.column_by_name("sku").unwrap()), [Some("A"), Some("B"), Some("C")]);
        let qty = lines.column_by_name("qty").unwrap().as_primitive::<Int64Type>();
        assert_eq!(qty.values().as_ref(), &[2, 1, 3]);
        let price = lines.column_by_name("unit_price").unwrap().as_primitive::<Float64Type>();
        assert_eq!(price.values().as_ref(), &[3.5, 10.0, 0.25]);
        assert_eq!(strings(batch.column_by_name("coupon").unwrap()), [Some("SAVE"), None]);
        let placed = batch.column_by_name("placed_at").unwrap();
        assert_eq!(placed.data_type(), &sluice_schemas::arrow::timestamp_type());
        let placed = placed.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(placed.values().as_ref(), &[1_714_564_800_500_000, 1_714_564_800_123_456]);
        assert_eq!(placed.null_count(), 0);
    }

    #[test]
    fn a_nested_value_that_does_not_fit_appends_nothing() {
        let mut b = RowsBuilder::new("order_placed", orders(), 1).unwrap();
        b.append(&order(good_order()), "s", "1").unwrap();
        let refused = [
            ("/items/1/qty", json!("x"), "items[1].qty", "\"x\" is not a 64-bit integer"),
            ("/items/1/qty", json!(1.5), "items[1].qty", "1.5 is not a 64-bit integer"),
            ("/items/1/unit_price", json!("1"), "items[1].unit_price", "\"1\" is not a number"),
            ("/items/1", Value::Null, "items[1]", "required value is missing"),
            ("/items/0", json!([]), "items[0]", "an array is not an object"),
            ("/items", json!({}), "items", "an object is not an array"),
            ("/context/country", json!(7), "context.country", "7 is not a string"),
            ("/context", Value::Null, "context", "required value is missing"),
            ("/placed_at", json!("yesterday"), "placed_at", "\"yesterday\" is not an RFC 3339 date-time"),
            ("/placed_at", json!("2024-02-30T00:00:00Z"), "placed_at", "is not an RFC 3339 date-time"),
            ("/coupon", json!(true), "coupon", "true is not a string"),
            ("/total", Value::Null, "total", "required value is missing"),
        ];
        for (pointer, value, column, reason) in refused {
            let mut data = good_order();
            *data.pointer_mut(pointer).unwrap() = value.clone();
            match b.append(&order(data), "s", "2") {
                Err(ColumnarError::RowMismatch { column: c, reason: r }) => {
                    assert_eq!(c, column, "{pointer} = {value}");
                    assert!(r.contains(reason), "{pointer} = {value}: {r}");
                }
                other => panic!("{pointer} = {value}: {other:?}"),
            }
        }
        let mut data = good_order();
        data["items"][1].as_object_mut().unwrap().remove("sku");
        let err = b.append(&order(data), "s", "2").unwrap_err();
        assert_eq!(
            err.to_string(),
            "event does not fit the lake schema: column \"items[1].sku\": required value is missing"
        );
        b.append(&order(good_order()), "s", "3").unwrap();

        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let items = batch.column_by_name("items").unwrap().as_list::<i32>();
        assert_eq!(items.value_offsets(), &[0, 2, 4]);
        let lines = items.values().as_struct();
        assert_eq!(strings(lines.column_by_name("sku").unwrap()), [Some("A"), Some("B"), Some("A"), Some("B")]);
        assert_eq!(lines.column_by_name("qty").unwrap().len(), 4);
        let context = batch.column_by_name("context").unwrap().as_struct();
        assert_eq!(strings(context.column_by_name("country").unwrap()), [Some("US"); 2]);
        assert_eq!(strings(batch.column_by_name("sequence_number").unwrap()), [Some("1"), Some("3")]);
    }

    /// A table with an optional object (a required child under it), an optional array and an
    /// array of nullable integers.
    fn optional_shapes() -> SchemaRef {
        let mut fields: Vec<Field> = schema().fields().iter().take(8).map(|f| f.as_ref().clone()).collect();
        let shipping = vec![
            Field::new("method", DataType::Utf8, false),
            Field::new("eta", sluice_schemas::arrow::timestamp_type(), true),
        ];
        fields.push(Field::new("shipping", DataType::Struct(shipping.into()), true));
        fields.push(Field::new("tags", DataType::List(Arc::new(Field::new("element", DataType::Utf8, false))), true));
        fields.push(Field::new(
            "scores",
            DataType::List(Arc::new(Field::new("element", DataType::Int64, true))),
            false,
        ));
        Arc::new(Schema::new(fields))
    }

    #[test]
    fn absent_objects_and_arrays_are_null_and_survive_parquet() {
        let mut b = RowsBuilder::new("thing", optional_shapes(), 1).unwrap();
        let rows = [
            json!({
                "shipping": {"method": "express", "eta": "2024-05-02T00:00:00Z"},
                "tags": ["a"],
                "scores": [1, null, 3],
            }),
            json!({"scores": []}),
            json!({"shipping": null, "tags": null, "scores": [null]}),
            json!({"shipping": {"method": "standard"}, "tags": [], "scores": [7]}),
        ];
        for (i, data) in rows.iter().enumerate() {
            b.append(&event(data.clone()), "s", &i.to_string()).unwrap();
        }
        let refused = [
            (json!({"scores": null}), "scores"),
            (json!({}), "scores"),
            (json!({"tags": [null], "scores": []}), "tags[0]"),
            (json!({"shipping": {"eta": "2024-05-02T00:00:00Z"}, "scores": []}), "shipping.method"),
            (json!({"shipping": {"method": "x", "eta": 5}, "scores": []}), "shipping.eta"),
        ];
        for (data, path) in refused {
            match b.append(&event(data.clone()), "s", "9") {
                Err(ColumnarError::RowMismatch { column, .. }) => assert_eq!(column, path, "{data}"),
                other => panic!("{data}: {other:?}"),
            }
        }
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 4);
        let shipping = batch.column_by_name("shipping").unwrap().as_struct();
        assert_eq!((0..4).map(|i| shipping.is_null(i)).collect::<Vec<_>>(), [false, true, true, false]);
        assert_eq!(
            strings(shipping.column_by_name("method").unwrap()),
            [Some("express"), None, None, Some("standard")]
        );
        let eta = shipping.column_by_name("eta").unwrap();
        assert_eq!((eta.is_valid(0), eta.null_count()), (true, 3));
        let tags = batch.column_by_name("tags").unwrap().as_list::<i32>();
        assert_eq!((0..4).map(|i| tags.is_null(i)).collect::<Vec<_>>(), [false, true, true, false]);
        assert_eq!(tags.value_offsets(), &[0, 1, 1, 1, 1]);
        let scores = batch.column_by_name("scores").unwrap().as_list::<i32>();
        assert_eq!(scores.null_count(), 0);
        assert_eq!(scores.value_offsets(), &[0, 3, 3, 4, 5]);
        let values = scores.values().as_primitive::<Int64Type>();
        assert_eq!(values.iter().collect::<Vec<_>>(), [Some(1), None, Some(3), None, Some(7)]);

        let bytes =
            crate::encode::encode_parquet(batch.schema_ref(), std::slice::from_ref(&batch), &[], &[] as &[&str])
                .unwrap();
        let back: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, [batch]);
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
