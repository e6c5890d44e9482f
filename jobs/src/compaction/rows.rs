//! A partition's rows, conformed to the table's schema, deduplicated and sorted (pure).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray, UInt32Array, new_null_array,
};
use arrow::compute::{cast, filter_record_batch, interleave_record_batch, take_record_batch};
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, Rows, SortField};
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
/// a column of another type is cast; a struct column is conformed child by child and a list
/// column element by element, in the same way (a file written before a nested field was added).
/// Columns the schema does not have are dropped.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, RowsError> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| conform_column(batch.column_by_name(field.name()), field, batch.num_rows(), field.name()))
        .collect::<Result<Vec<ArrayRef>, RowsError>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// `column` (of `len` rows; `None`: absent) as `field` at `path` (`context.country`).
fn conform_column(column: Option<&ArrayRef>, field: &Field, len: usize, path: &str) -> Result<ArrayRef, RowsError> {
    let Some(column) = column else {
        if field.is_nullable() {
            return Ok(new_null_array(field.data_type(), len));
        }
        return Err(RowsError::Column {
            column: path.to_owned(),
            reason: "required by the lake schema but missing from the file".into(),
        });
    };
    if column.data_type() == field.data_type() {
        return Ok(Arc::clone(column));
    }
    match (column.as_struct_opt(), column.as_list_opt::<i32>(), field.data_type()) {
        (Some(from), _, DataType::Struct(children)) => {
            let columns = children
                .iter()
                .map(|child| {
                    let path = format!("{path}.{}", child.name());
                    conform_column(from.column_by_name(child.name()), child, from.len(), &path)
                })
                .collect::<Result<Vec<ArrayRef>, RowsError>>()?;
            Ok(Arc::new(StructArray::try_new(children.clone(), columns, from.nulls().cloned())?))
        }
        (_, Some(from), DataType::List(element)) => {
            let path = format!("{path}.{}", element.name());
            let values = conform_column(Some(from.values()), element, from.values().len(), &path)?;
            Ok(Arc::new(ListArray::try_new(
                Arc::clone(element),
                from.offsets().clone(),
                values,
                from.nulls().cloned(),
            )?))
        }
        _ => Ok(cast(column, field.data_type())?),
    }
}

/// The two orders compaction sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `event_id`, then the copy to keep first: the earliest `received_at`, then the lowest
    /// `shard_id`, then the numerically lowest `sequence_number`.
    Identity,
    /// `occurred_at`, then `event_id`: the order of the output files.
    Output,
}

/// Byte-comparable keys of `batch`'s rows in `order` (their memcmp order is the order): the one
/// definition of both orders, for in-memory sorts and for merges of spilled runs alike.
pub fn keys(batch: &RecordBatch, order: Order) -> Result<Rows, RowsError> {
    let columns: Vec<ArrayRef> = match order {
        Order::Identity => {
            // Sequence numbers compare as numbers (`SequenceNumber::to_be_bytes`); one that does
            // not parse sorts first.
            let sequence: &StringArray = column(batch, "sequence_number")?;
            let bytes = sequence.iter().map(|s| {
                Some(
                    s.and_then(|s| SequenceNumber::from_ascii(s.as_bytes()).ok())
                        .unwrap_or(SequenceNumber::ZERO)
                        .to_be_bytes(),
                )
            });
            let numeric = FixedSizeBinaryArray::try_from_sparse_iter_with_size(bytes, 32)?;
            vec![
                Arc::clone(column_ref(batch, "event_id")?),
                Arc::clone(column_ref(batch, "received_at")?),
                Arc::clone(column_ref(batch, "shard_id")?),
                Arc::new(numeric),
            ]
        }
        Order::Output => {
            vec![Arc::clone(column_ref(batch, "occurred_at")?), Arc::clone(column_ref(batch, "event_id")?)]
        }
    };
    let fields = columns.iter().map(|c| SortField::new(c.data_type().clone())).collect();
    Ok(RowConverter::new(fields)?.convert_columns(&columns)?)
}

/// `batch` sorted by `order` (rows with equal keys are identical in what the order reads).
pub fn sort(batch: &RecordBatch, order: Order) -> Result<RecordBatch, RowsError> {
    let keys = keys(batch, order)?;
    let mut indices: Vec<u32> = (0..batch.num_rows() as u32).collect();
    indices.sort_unstable_by(|&a, &b| keys.row(a as usize).cmp(&keys.row(b as usize)));
    Ok(take_record_batch(batch, &UInt32Array::from(indices))?)
}

/// The indices of `batch`'s rows in [`Order::Identity`], keeping the first of each `event_id`.
fn first_per_event_id_indices(batch: &RecordBatch) -> Result<Vec<u32>, RowsError> {
    let keys = keys(batch, Order::Identity)?;
    let ids: &StringArray = column(batch, "event_id")?;
    let mut indices: Vec<u32> = (0..batch.num_rows() as u32).collect();
    indices.sort_unstable_by(|&a, &b| keys.row(a as usize).cmp(&keys.row(b as usize)));
    indices.dedup_by(|later, first| ids.value(*later as usize) == ids.value(*first as usize));
    Ok(indices)
}

/// `batch`'s rows in [`Order::Identity`], the first of each `event_id` only (one copy of the
/// rows: a spilled run of identity order).
pub fn unique_by_identity(batch: &RecordBatch) -> Result<RecordBatch, RowsError> {
    let indices = first_per_event_id_indices(batch)?;
    Ok(take_record_batch(batch, &UInt32Array::from(indices))?)
}

/// Of `batch` (sorted by [`Order::Identity`]), the first row of each `event_id`, leaving out a
/// leading run equal to `previous` (the last `event_id` of the batch before it in the same
/// sorted stream). Returns the rows kept and the batch's last `event_id`.
pub fn first_per_event_id(
    batch: &RecordBatch,
    previous: Option<&str>,
) -> Result<(RecordBatch, Option<String>), RowsError> {
    let ids: &StringArray = column(batch, "event_id")?;
    let mut keep = Vec::with_capacity(batch.num_rows());
    let mut last = previous;
    for i in 0..batch.num_rows() {
        let id = ids.value(i);
        keep.push(last != Some(id));
        last = Some(id);
    }
    let last = last.map(str::to_owned);
    Ok((filter_record_batch(batch, &BooleanArray::from(keep))?, last))
}

/// The rows of `batches` (all of one schema) with one row per `event_id` (the first in
/// [`Order::Identity`]), ordered by [`Order::Output`], as (batch, row) indices for
/// `arrow::compute::interleave_record_batch`. Of the rows sharing an `event_id` the one kept is
/// the earliest `received_at`, then the lowest `shard_id`, then the numerically lowest
/// `sequence_number`, so the choice is deterministic (redelivered copies are identical rows; a
/// producer's retry is a later `received_at`). Nothing is copied: a hash map picks each
/// `event_id`'s row and the kept rows are sorted by their `occurred_at` integers, with the
/// `event_id` breaking ties.
pub fn output_order(batches: &[RecordBatch]) -> Result<Vec<(usize, usize)>, RowsError> {
    struct Columns<'a> {
        ids: &'a StringArray,
        occurred: &'a [i64],
        received: &'a [i64],
        shards: &'a StringArray,
        sequences: &'a StringArray,
    }
    let columns = batches
        .iter()
        .map(|b| {
            Ok(Columns {
                ids: column(b, "event_id")?,
                occurred: column::<TimestampMicrosecondArray>(b, "occurred_at")?.values(),
                received: column::<TimestampMicrosecondArray>(b, "received_at")?.values(),
                shards: column(b, "shard_id")?,
                sequences: column(b, "sequence_number")?,
            })
        })
        .collect::<Result<Vec<_>, RowsError>>()?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut first: foldhash::HashMap<&str, (u32, u32)> =
        foldhash::HashMap::with_capacity_and_hasher(rows, Default::default());
    // The copy to keep sorts first: earliest received_at, lowest shard, lowest sequence number.
    let earlier = |a: (u32, u32), b: (u32, u32)| {
        let (ca, cb) = (&columns[a.0 as usize], &columns[b.0 as usize]);
        let (ra, rb) = (a.1 as usize, b.1 as usize);
        let sequence = |c: &Columns<'_>, r| {
            SequenceNumber::from_ascii(c.sequences.value(r).as_bytes()).unwrap_or(SequenceNumber::ZERO)
        };
        (ca.received[ra], ca.shards.value(ra))
            .cmp(&(cb.received[rb], cb.shards.value(rb)))
            .then_with(|| sequence(ca, ra).cmp(&sequence(cb, rb)))
            == std::cmp::Ordering::Less
    };
    for (b, c) in columns.iter().enumerate() {
        for r in 0..c.ids.len() {
            let here = (b as u32, r as u32);
            first
                .entry(c.ids.value(r))
                .and_modify(|kept| {
                    if earlier(here, *kept) {
                        *kept = here;
                    }
                })
                .or_insert(here);
        }
    }
    let mut kept: Vec<(i64, u32, u32)> =
        first.into_values().map(|(b, r)| (columns[b as usize].occurred[r as usize], b, r)).collect();
    kept.sort_unstable_by(|x, y| {
        x.0.cmp(&y.0).then_with(|| {
            columns[x.1 as usize].ids.value(x.2 as usize).cmp(columns[y.1 as usize].ids.value(y.2 as usize))
        })
    });
    Ok(kept.into_iter().map(|(_, b, r)| (b as usize, r as usize)).collect())
}

/// The rows of `batches` (all of `schema`) in [`output_order`], as one batch (one copy).
pub fn dedupe_and_sort(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch, RowsError> {
    if batches.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::clone(schema)));
    }
    let order = output_order(batches)?;
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    Ok(interleave_record_batch(&refs, &order)?)
}

fn column_ref<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, RowsError> {
    let bad = |reason: &str| RowsError::Column { column: name.to_owned(), reason: reason.to_owned() };
    let column = batch.column_by_name(name).ok_or_else(|| bad("missing"))?;
    if column.null_count() > 0 {
        return Err(bad("holds nulls"));
    }
    Ok(column)
}

fn column<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, RowsError> {
    column_ref(batch, name)?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| RowsError::Column { column: name.to_owned(), reason: "has an unexpected type".to_owned() })
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
    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
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

    /// [`Row`] with owned text.
    type OwnedRow = (String, i64, i64, String, String, i64);

    proptest::proptest! {
        /// The hash-and-sort order equals the spill path's: identity order, first per
        /// `event_id`, then output order, for any rows split into any batches.
        #[test]
        fn output_order_keeps_what_the_sorted_runs_keep(
            rows in proptest::collection::vec((0u8..12, 0i64..3, 0u8..2, 0u32..40), 0..80),
            split in 0usize..80,
        ) {
            let rows: Vec<OwnedRow> = rows
                .into_iter()
                // Rows equal in every key are copies of one record: equal in every column.
                .map(|(id, received, shard, seq)| {
                    let occurred = i64::from(id % 4); // an event's copies share its occurred_at
                    let n = ((i64::from(id) * 3 + received) * 2 + i64::from(shard)) * 40 + i64::from(seq);
                    (format!("e{id}"), occurred, received, format!("shard-{shard}"), format!("{}", seq * 7 + 3), n)
                })
                .collect();
            let batch_of = |rows: &[OwnedRow]| {
                let ts = |f: fn(&OwnedRow) -> i64| {
                    Arc::new(TimestampMicrosecondArray::from(rows.iter().map(f).collect::<Vec<_>>()).with_timezone("UTC")) as ArrayRef
                };
                RecordBatch::try_new(schema(), vec![
                    Arc::new(StringArray::from(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>())),
                    ts(|r| r.1),
                    ts(|r| r.2),
                    Arc::new(StringArray::from(rows.iter().map(|r| r.3.clone()).collect::<Vec<_>>())),
                    Arc::new(StringArray::from(rows.iter().map(|r| r.4.clone()).collect::<Vec<_>>())),
                    Arc::new(Int64Array::from(rows.iter().map(|r| r.5).collect::<Vec<_>>())),
                ]).unwrap()
            };
            let split = split.min(rows.len());
            let batches = vec![batch_of(&rows[..split]), batch_of(&rows[split..])];
            let fast = dedupe_and_sort(&schema(), &batches).unwrap();
            let all = arrow::compute::concat_batches(&schema(), &batches).unwrap();
            let reference = sort(&unique_by_identity(&all).unwrap(), Order::Output).unwrap();
            proptest::prop_assert_eq!(ns(&fast), ns(&reference));
        }
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
    fn nested_fields_added_later_are_null_in_older_files() {
        use arrow::array::{ListBuilder, StringBuilder, StructBuilder};
        let utf8 = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
        // Older file: context {country}, items [{sku}].
        let old_context = vec![utf8("country", false)];
        let old_item = vec![utf8("sku", false)];
        let mut context = StructBuilder::from_fields(old_context.clone(), 2);
        let mut items = ListBuilder::new(StructBuilder::from_fields(old_item.clone(), 3)).with_field(Field::new(
            "element",
            DataType::Struct(old_item.clone().into()),
            false,
        ));
        for (country, skus) in [("US", vec!["a", "b"]), ("DE", vec!["c"])] {
            context.field_builder::<StringBuilder>(0).unwrap().append_value(country);
            context.append(true);
            for sku in skus {
                items.values().field_builder::<StringBuilder>(0).unwrap().append_value(sku);
                items.values().append(true);
            }
            items.append(true);
        }
        let old_items =
            Field::new_list("items", Field::new("element", DataType::Struct(old_item.into()), false), false);
        let old_schema = Arc::new(Schema::new(vec![Field::new_struct("context", old_context, false), old_items]));
        let older =
            RecordBatch::try_new(old_schema, vec![Arc::new(context.finish()), Arc::new(items.finish())]).unwrap();

        // The table now: context {country, app_version?}, items [{sku, qty?}].
        let new_item = vec![utf8("sku", false), Field::new("qty", DataType::Int64, true)];
        let table = Arc::new(Schema::new(vec![
            Field::new_struct("context", vec![utf8("country", false), utf8("app_version", true)], false),
            Field::new_list("items", Field::new("element", DataType::Struct(new_item.into()), false), false),
        ]));
        let conformed = conform(&older, &table).unwrap();
        assert_eq!(conformed.schema(), table);
        let context = conformed.column(0).as_struct();
        assert_eq!(context.column(0).as_string::<i32>().iter().collect::<Vec<_>>(), [Some("US"), Some("DE")]);
        assert_eq!(context.column(1).null_count(), 2);
        let items = conformed.column(1).as_list::<i32>();
        assert_eq!(items.value_offsets(), [0, 2, 3]);
        let values = items.values().as_struct();
        assert_eq!(values.column(0).as_string::<i32>().iter().collect::<Vec<_>>(), [Some("a"), Some("b"), Some("c")]);
        assert_eq!(values.column(1).null_count(), 3);

        // A nested field the table requires but the file lacks is named by its path.
        let strict = Arc::new(Schema::new(vec![Field::new_struct(
            "context",
            vec![utf8("country", false), utf8("channel", false)],
            false,
        )]));
        match conform(&older, &strict) {
            Err(RowsError::Column { column, .. }) => assert_eq!(column, "context.channel"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn file_sizes_follow_the_inputs_bytes_per_row() {
        assert_eq!(rows_per_file(1000, 10, 500), 5);
        assert_eq!(rows_per_file(1000, 10, 1), 1);
        assert_eq!(rows_per_file(0, 0, 100), 1);
    }
}
