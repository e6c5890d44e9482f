//! A partition's rows, conformed to the table's schema, deduplicated and sorted (pure).

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array, new_null_array};
use arrow::compute::{cast, concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use sluice_stream::SequenceNumber;

/// Why rows could not be compacted: a file that does not hold the table's rows.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    #[error("column {column:?}: {reason}")]
    Column { column: String, reason: String },
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

/// `batch` in the columns of `schema` (the table's current lake schema), in its order: a column
/// the file lacks (a field added by a later schema version) is all null if the schema allows it;
/// a column of another type is cast. Columns the schema does not have are dropped.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, RowsError> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(Arc::clone(column)),
            Some(column) => Ok(cast(column, field.data_type())?),
            None if field.is_nullable() => Ok(new_null_array(field.data_type(), batch.num_rows())),
            None => Err(RowsError::Column {
                column: field.name().clone(),
                reason: "required by the lake schema but missing from the file".into(),
            }),
        })
        .collect::<Result<Vec<ArrayRef>, RowsError>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// The rows of `batches` (all of `schema`) with one row per `event_id`, ordered by
/// `occurred_at`, then `event_id`. Of the rows sharing an `event_id` the one kept is the earliest
/// `received_at`, then the lowest `shard_id`, then the numerically lowest `sequence_number`, so
/// the choice is deterministic (redelivered copies are identical rows; a producer's retry is
/// a later `received_at`).
pub fn dedupe_and_sort(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch, RowsError> {
    let all = concat_batches(schema, batches)?;
    let keys = Keys::of(&all)?;
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    order.sort_unstable_by(|&a, &b| keys.identity_order(a as usize, b as usize));
    order.dedup_by(|later, first| keys.event_id.value(*later as usize) == keys.event_id.value(*first as usize));
    order.sort_unstable_by(|&a, &b| keys.output_order(a as usize, b as usize));
    Ok(take_record_batch(&all, &UInt32Array::from(order))?)
}

/// The columns the order depends on.
struct Keys<'a> {
    event_id: &'a StringArray,
    occurred_at: &'a TimestampMicrosecondArray,
    received_at: &'a TimestampMicrosecondArray,
    shard_id: &'a StringArray,
    sequence: Vec<Option<SequenceNumber>>,
}

impl<'a> Keys<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, RowsError> {
        let sequence_number: &StringArray = column(batch, "sequence_number")?;
        Ok(Keys {
            event_id: column(batch, "event_id")?,
            occurred_at: column(batch, "occurred_at")?,
            received_at: column(batch, "received_at")?,
            shard_id: column(batch, "shard_id")?,
            sequence: sequence_number.iter().map(|s| s.and_then(|s| s.parse().ok())).collect(),
        })
    }

    /// `event_id`, then which copy is kept first.
    fn identity_order(&self, a: usize, b: usize) -> Ordering {
        self.event_id
            .value(a)
            .cmp(self.event_id.value(b))
            .then_with(|| self.received_at.value(a).cmp(&self.received_at.value(b)))
            .then_with(|| self.shard_id.value(a).cmp(self.shard_id.value(b)))
            .then_with(|| self.sequence[a].cmp(&self.sequence[b]))
    }

    /// `occurred_at`, then `event_id` (unique after deduplication).
    fn output_order(&self, a: usize, b: usize) -> Ordering {
        self.occurred_at
            .value(a)
            .cmp(&self.occurred_at.value(b))
            .then_with(|| self.event_id.value(a).cmp(self.event_id.value(b)))
    }
}

fn column<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, RowsError> {
    let bad = |reason: &str| RowsError::Column { column: name.to_owned(), reason: reason.to_owned() };
    let column = batch.column_by_name(name).ok_or_else(|| bad("missing"))?;
    if column.null_count() > 0 {
        return Err(bad("holds nulls"));
    }
    column.as_any().downcast_ref::<T>().ok_or_else(|| bad("has an unexpected type"))
}

/// How many rows go in one output file of about `target_size` bytes, from the inputs' bytes
/// per row (at least one row).
pub fn rows_per_file(input_bytes: u64, input_rows: usize, target_size: u64) -> usize {
    if input_rows == 0 {
        return 1;
    }
    let bytes_per_row = (input_bytes as f64 / input_rows as f64).max(1.0);
    ((target_size as f64 / bytes_per_row) as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use sluice_schemas::arrow::timestamp_type;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new("occurred_at", timestamp_type(), false),
            Field::new("received_at", timestamp_type(), false),
            Field::new("shard_id", DataType::Utf8, false),
            Field::new("sequence_number", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]))
    }

    /// (event_id, occurred_at, received_at, shard, sequence, n)
    type Row = (&'static str, i64, i64, &'static str, &'static str, i64);

    fn batch(rows: &[Row]) -> RecordBatch {
        let ts = |f: fn(&Row) -> i64| {
            Arc::new(TimestampMicrosecondArray::from(rows.iter().map(f).collect::<Vec<_>>()).with_timezone("UTC"))
                as ArrayRef
        };
        let text = |f: fn(&Row) -> &'static str| {
            Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
        };
        RecordBatch::try_new(
            schema(),
            vec![
                text(|r| r.0),
                ts(|r| r.1),
                ts(|r| r.2),
                text(|r| r.3),
                text(|r| r.4),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.5).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    fn ns(batch: &RecordBatch) -> Vec<i64> {
        batch.column_by_name("n").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()
    }

    #[test]
    fn keeps_the_earliest_copy_and_orders_by_occurred_at() {
        let rows = [
            ("b", 20, 5, "shard-1", "10", 1),
            ("a", 30, 7, "shard-1", "11", 2),
            ("b", 20, 3, "shard-1", "12", 3), // earlier received_at: kept
            ("a", 30, 7, "shard-0", "13", 4), // same received_at, lower shard: kept
            ("c", 10, 1, "shard-1", "100", 5),
            ("c", 10, 1, "shard-1", "99", 6), // numerically lower sequence: kept
        ];
        let out = dedupe_and_sort(&schema(), &[batch(&rows[..3]), batch(&rows[3..])]).unwrap();
        assert_eq!(ns(&out), [6, 3, 4]);
        // Any split of the input into batches and any order gives the same rows.
        let mut reversed = rows;
        reversed.reverse();
        assert_eq!(ns(&dedupe_and_sort(&schema(), &[batch(&reversed)]).unwrap()), [6, 3, 4]);
    }

    #[test]
    fn a_column_added_later_is_null_in_older_files() {
        let old = Arc::new(Schema::new(schema().fields()[..5].to_vec()));
        let full = batch(&[("a", 1, 1, "s", "1", 9)]);
        let older = RecordBatch::try_new(old, full.columns()[..5].to_vec()).unwrap();
        let conformed = conform(&older, &schema()).unwrap();
        assert_eq!(conformed.schema(), schema());
        assert_eq!(conformed.column_by_name("n").unwrap().null_count(), 1);
        let required = Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, false)]));
        assert!(matches!(conform(&older, &required), Err(RowsError::Column { .. })));
    }

    #[test]
    fn file_sizes_follow_the_inputs_bytes_per_row() {
        assert_eq!(rows_per_file(1000, 10, 500), 5);
        assert_eq!(rows_per_file(1000, 10, 1), 1);
        assert_eq!(rows_per_file(0, 0, 100), 1);
    }
}
