//! Arrow -> Parquet bytes with the lake's writer settings (pure, in memory).
//!
//! Settings ([`writer_properties`]): each leaf column is written as its [`ColumnLayout`] says;
//! row groups of at most [`MAX_ROW_GROUP_ROWS`] rows (a lake-writer file is one row group;
//! compaction output gets ~1M-row groups, the size Athena/Trino and DuckDB parallelise well over);
//! page-level statistics on every column, which also writes the page index (column index +
//! offset index) so readers prune pages on `occurred_at` and the dimensions; timestamps as
//! `TIMESTAMP(MICROS, isAdjustedToUTC=true)`.
//!
//! Layouts (figures from the lake benchmark in docs/benchmarks.md):
//! - [`ColumnLayout::Zstd`], the default: PLAIN + zstd. zstd folds the repeats of free-form
//!   strings and numbers within a file (a few thousand rows) better than a dictionary, and
//!   without the cost of dictionary building (hashing every value).
//!   `event_id` ([`ZSTD_DELTA_COLUMNS`]) is `DELTA_LENGTH_BYTE_ARRAY` + zstd instead: random ids
//!   have no repeats, and PLAIN's 4-byte length before each value is all zstd would match,
//!   one short match per row. With the lengths in their own delta-packed block, zstd sees only
//!   the ids' characters and entropy-codes them as literals: faster for this column (the
//!   costliest one) and smaller.
//! - [`ColumnLayout::Dictionary`], without zstd, for the columns whose values repeat by design:
//!   the envelope's [`DICTIONARY_COLUMNS`] (`event_type` and `shard_id` are one value per file,
//!   `producer` a few) and the event type's dimensions (`x-sluice-dimensions`: the aggregation
//!   keys, a bounded set of values by the schema's contract). A dictionary of a few values plus
//!   bit-packed indexes is as small as zstd's output or smaller, and skips the compressor. Should a
//!   file's dictionary outgrow parquet's 1 MB dictionary page limit, the rest of that column
//!   chunk is written PLAIN (uncompressed): larger, still correct.
//! - [`ColumnLayout::Delta`], without zstd, for [`DELTA_COLUMNS`]: `DELTA_BINARY_PACKED` for
//!   the two timestamps and `schema_version`, `DELTA_BYTE_ARRAY` for `sequence_number` (56-digit
//!   numbers sharing long prefixes); zstd takes little more off them.
//!
//! Nested data (objects as Parquet groups, arrays as `LIST`s) is laid out leaf by leaf, each
//! leaf keyed by its Parquet column path: `context.country` inside an object,
//! `items.list.element.sku` inside an array of objects ([`column_layouts`]). The same rules
//! apply at every depth, so a nested leaf is written as a top-level column of its kind would be:
//! - a dimension is a column path (`context/country` is `context.country`; a dimension never
//!   sits inside an array) and is dictionary-encoded like a top-level dimension;
//! - a date-time leaf (`placed_at`, or one inside an object or array) is delta-encoded like
//!   `occurred_at`, uncompressed: the event times of one file lie close together, so each is
//!   stored as a bit-packed difference from the previous one instead of 8 bytes;
//! - every other leaf (strings such as `sku`, integers such as `qty`, numbers) is PLAIN + zstd,
//!   as top-level data fields are; their repetition and definition levels (RLE) are compressed
//!   with them.
//!
//! Why skipping zstd matters for small columns: each compressed column chunk costs a zstd
//! compressor and decompressor (parquet-rs creates both per column writer), and creating one
//! runs `cpuid` three times, which traps to the hypervisor on a virtual machine (Lambda's
//! Firecracker included), a fixed cost per compressed column per file. Every encoding here is
//! read by Athena (Trino), DuckDB, DataFusion and pyarrow (the pyarrow/DuckDB read-back test
//! covers the last two, nested columns included). Compaction may re-encode with dictionaries
//! and compress every column.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, LogicalType, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::{ColumnDescriptor, ColumnPath};

/// Upper bound of rows per row group.
pub const MAX_ROW_GROUP_ROWS: usize = 1 << 20;
/// Upper bound of rows per data page (keeps page-index pruning useful).
pub const DATA_PAGE_ROW_LIMIT: usize = 20_000;
/// zstd level: 1 is the fastest; on the generated benchmark data it is also no larger than level 3,
/// pages being small. Compaction may re-encode at a higher level.
pub const ZSTD_LEVEL: i32 = 1;
/// Columns written with a delta encoding instead of PLAIN, and without zstd (see the module
/// docs).
pub const DELTA_COLUMNS: &[(&str, Encoding)] = &[
    ("schema_version", Encoding::DELTA_BINARY_PACKED),
    ("occurred_at", Encoding::DELTA_BINARY_PACKED),
    ("received_at", Encoding::DELTA_BINARY_PACKED),
    ("sequence_number", Encoding::DELTA_BYTE_ARRAY),
];
/// Columns written with a delta encoding under zstd instead of PLAIN under zstd (see the module
/// docs).
pub const ZSTD_DELTA_COLUMNS: &[(&str, Encoding)] = &[("event_id", Encoding::DELTA_LENGTH_BYTE_ARRAY)];
/// Envelope columns dictionary-encoded without zstd in every table (see the module docs); the
/// table's dimensions are too.
pub const DICTIONARY_COLUMNS: &[&str] = &["event_type", "producer", "shard_id"];

/// How the lake writes one column (see the module docs for why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnLayout {
    /// This encoding (PLAIN unless [`ZSTD_DELTA_COLUMNS`] says otherwise), zstd level
    /// [`ZSTD_LEVEL`].
    Zstd(Encoding),
    /// Dictionary (RLE_DICTIONARY indexes, PLAIN dictionary page), uncompressed.
    Dictionary,
    /// This delta encoding, uncompressed.
    Delta(Encoding),
}

impl ColumnLayout {
    /// The layout of `column` (a top-level column's name, or a nested leaf's dotted Parquet
    /// path) in a table whose dimension columns are `dimensions`, by name alone.
    pub fn of(column: &str, dimensions: &[impl AsRef<str>]) -> Self {
        let named = |columns: &[(&str, Encoding)]| columns.iter().find(|(name, _)| *name == column).map(|(_, e)| *e);
        if let Some(encoding) = named(DELTA_COLUMNS) {
            ColumnLayout::Delta(encoding)
        } else if DICTIONARY_COLUMNS.contains(&column) || dimensions.iter().any(|d| d.as_ref() == column) {
            ColumnLayout::Dictionary
        } else {
            ColumnLayout::Zstd(named(ZSTD_DELTA_COLUMNS).unwrap_or(Encoding::PLAIN))
        }
    }

    /// The layout of the Parquet leaf column `leaf` (at any depth) in a table whose dimension
    /// columns are `dimensions`: [`ColumnLayout::of`] its path, except that a timestamp the
    /// names leave at the default is `DELTA_BINARY_PACKED`, as `occurred_at` is.
    pub fn of_leaf(leaf: &ColumnDescriptor, dimensions: &[impl AsRef<str>]) -> Self {
        match ColumnLayout::of(&leaf.path().string(), dimensions) {
            ColumnLayout::Zstd(Encoding::PLAIN)
                if matches!(leaf.logical_type_ref(), Some(LogicalType::Timestamp(_))) =>
            {
                ColumnLayout::Delta(Encoding::DELTA_BINARY_PACKED)
            }
            layout => layout,
        }
    }
}

/// Every leaf column of `schema`'s Parquet form, in file order, with its layout in a table
/// whose dimension columns are `dimensions` (what [`writer_properties`] sets).
pub fn column_layouts(
    schema: &SchemaRef,
    dimensions: &[impl AsRef<str>],
) -> Result<Vec<(ColumnPath, ColumnLayout)>, EncodeError> {
    let parquet = ArrowSchemaConverter::new().convert(schema)?;
    Ok(parquet.columns().iter().map(|leaf| (leaf.path().clone(), ColumnLayout::of_leaf(leaf, dimensions))).collect())
}

/// Why a batch could not be encoded. A bug or resource problem, never the data's fault: the
/// caller retries (the write is reported as failed).
#[derive(Debug, thiserror::Error)]
#[error("parquet encoding failed: {0}")]
pub struct EncodeError(#[from] ParquetError);

/// The lake's Parquet writer properties for `schema`, a table whose dimension columns are
/// `dimensions`, plus `metadata` as file key-value metadata.
pub fn writer_properties(
    schema: &SchemaRef,
    metadata: &[(&str, String)],
    dimensions: &[impl AsRef<str>],
) -> Result<WriterProperties, EncodeError> {
    let zstd = ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default();
    let mut builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(zstd))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(DATA_PAGE_ROW_LIMIT)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_statistics_truncate_length(Some(64))
        .set_dictionary_enabled(false);
    for (path, layout) in column_layouts(schema, dimensions)? {
        builder = match layout {
            ColumnLayout::Zstd(Encoding::PLAIN) => builder,
            ColumnLayout::Zstd(encoding) => builder.set_column_encoding(path, encoding),
            ColumnLayout::Dictionary => builder
                .set_column_dictionary_enabled(path.clone(), true)
                .set_column_compression(path, Compression::UNCOMPRESSED),
            ColumnLayout::Delta(encoding) => builder
                .set_column_encoding(path.clone(), encoding)
                .set_column_compression(path, Compression::UNCOMPRESSED),
        };
    }
    if !metadata.is_empty() {
        builder = builder.set_key_value_metadata(Some(
            metadata.iter().map(|(k, v)| KeyValue::new((*k).to_owned(), v.clone())).collect(),
        ));
    }
    Ok(builder.build())
}

/// Encodes `batches` (all of `schema`, a table whose dimension columns are `dimensions`) into one
/// Parquet file in memory.
pub fn encode_parquet(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    metadata: &[(&str, String)],
    dimensions: &[impl AsRef<str>],
) -> Result<Bytes, EncodeError> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    // Compressed output is ~30-60 bytes per row; start near that to avoid regrowing.
    let mut encoder = ParquetEncoder::with_capacity(schema, metadata, dimensions, 4096 + rows * 48)?;
    for batch in batches {
        encoder.write(batch)?;
    }
    encoder.finish()
}

/// One Parquet file in memory with the lake's settings, written batch by batch (what
/// [`encode_parquet`] does in one call): it holds the encoded bytes and the open row group, not
/// the batches written.
pub struct ParquetEncoder {
    writer: ArrowWriter<Vec<u8>>,
}

impl std::fmt::Debug for ParquetEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetEncoder").field("bytes", &self.bytes()).finish_non_exhaustive()
    }
}

impl ParquetEncoder {
    /// A file of `schema` (a table whose dimension columns are `dimensions`) with `metadata`.
    pub fn new(
        schema: &SchemaRef,
        metadata: &[(&str, String)],
        dimensions: &[impl AsRef<str>],
    ) -> Result<Self, EncodeError> {
        Self::with_capacity(schema, metadata, dimensions, 4096)
    }

    fn with_capacity(
        schema: &SchemaRef,
        metadata: &[(&str, String)],
        dimensions: &[impl AsRef<str>],
        capacity: usize,
    ) -> Result<Self, EncodeError> {
        let properties = writer_properties(schema, metadata, dimensions)?;
        let writer = ArrowWriter::try_new(Vec::with_capacity(capacity), Arc::clone(schema), Some(properties))?;
        Ok(Self { writer })
    }

    /// Appends `batch` (of the file's schema).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), EncodeError> {
        Ok(self.writer.write(batch)?)
    }

    /// About how many bytes the file holds so far (encoded, plus the open row group).
    pub fn bytes(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size()
    }

    /// The finished file.
    pub fn finish(self) -> Result<Bytes, EncodeError> {
        Ok(Bytes::from(self.writer.into_inner()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use parquet::basic::{LogicalType, TimeUnit as PqTimeUnit};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;

    #[test]
    fn files_carry_the_lake_settings() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new("occurred_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
            Field::new("country", DataType::Utf8, false),
        ]));
        let n = 1_000;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("id-{i}")))),
                Arc::new(TimestampMicrosecondArray::from_iter_values((0..n).map(|i| i * 1_000)).with_timezone("UTC")),
                Arc::new(StringArray::from_iter_values((0..n).map(|i| ["US", "DE"][i as usize % 2]))),
            ],
        )
        .unwrap();
        let bytes = encode_parquet(&schema, &[batch], &[("sluice.event_type", "t".into())], &["country"]).unwrap();
        let options = ReadOptionsBuilder::new().with_page_index().build();
        let reader = SerializedFileReader::new_with_options(bytes, options).unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.file_metadata().num_rows(), n);
        let kv = meta.file_metadata().key_value_metadata().unwrap();
        assert!(kv.iter().any(|k| k.key == "sluice.event_type" && k.value.as_deref() == Some("t")));
        let ts = meta.file_metadata().schema_descr().column(1);
        assert!(
            matches!(
                ts.logical_type_ref(),
                Some(LogicalType::Timestamp(t))
                    if t.is_adjusted_to_u_t_c && matches!(t.unit, PqTimeUnit::MICROS)
            ),
            "{:?}",
            ts.logical_type_ref()
        );
        assert!(meta.column_index().is_some() && meta.offset_index().is_some(), "page index");
        let group = meta.row_group(0);
        let layouts = [
            ColumnLayout::Zstd(Encoding::DELTA_LENGTH_BYTE_ARRAY),
            ColumnLayout::Delta(Encoding::DELTA_BINARY_PACKED),
            ColumnLayout::Dictionary,
        ];
        for (i, (column, layout)) in group.columns().iter().zip(layouts).enumerate() {
            assert_eq!(ColumnLayout::of(&column.column_path().string(), &["country"]), layout);
            let compression = column.compression();
            let encodings = column.encodings().collect::<Vec<_>>();
            let dictionary =
                encodings.iter().any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY));
            match layout {
                ColumnLayout::Zstd(encoding) => {
                    assert!(matches!(compression, Compression::ZSTD(_)), "{i}: {compression:?}");
                    assert!(encodings.contains(&encoding) && !dictionary, "{i}: {encodings:?}");
                }
                ColumnLayout::Delta(encoding) => {
                    assert_eq!(compression, Compression::UNCOMPRESSED, "{i}");
                    assert!(encodings.contains(&encoding) && !dictionary, "{i}: {encodings:?}");
                }
                ColumnLayout::Dictionary => {
                    assert_eq!(compression, Compression::UNCOMPRESSED, "{i}");
                    assert!(encodings.contains(&Encoding::RLE_DICTIONARY), "{i}: {encodings:?}");
                    assert!(column.dictionary_page_offset().is_some(), "{i}");
                }
            }
            assert!(column.statistics().is_some(), "{i}");
        }
    }

    /// A "dimension" with far more distinct values than its contract suggests outgrows the
    /// dictionary page limit: the chunk falls back to PLAIN, uncompressed, and reads back intact.
    #[test]
    fn an_oversized_dictionary_falls_back_and_reads_back() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("country", DataType::Utf8, false)]));
        // ~2 MB of distinct values: over parquet's 1 MB dictionary page limit.
        let values: Vec<String> = (0..50_000).map(|i| format!("{i:040}")).collect();
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(values.clone()))]).unwrap();
        let bytes = encode_parquet(&schema, &[batch], &[], &["country"]).unwrap();
        let reader = SerializedFileReader::new(bytes.clone()).unwrap();
        let column = reader.metadata().row_group(0).column(0).clone();
        assert_eq!(column.compression(), Compression::UNCOMPRESSED);
        // The dictionary page stopped near the limit: the other values went into PLAIN pages.
        let dictionary_bytes = column.data_page_offset() - column.dictionary_page_offset().unwrap();
        assert!(dictionary_bytes < 1_100_000, "{dictionary_bytes}");
        assert!(column.uncompressed_size() > 2_000_000, "{}", column.uncompressed_size());
        let read: Vec<String> = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
            .flat_map(|b| {
                let b = b.unwrap();
                let column = b.column(0).as_any().downcast_ref::<StringArray>().unwrap().clone();
                column.iter().map(|v| v.unwrap().to_owned()).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(read, values);
    }

    #[test]
    fn nested_leaves_are_laid_out_by_path_and_type() {
        let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let line = vec![Field::new("sku", DataType::Utf8, false), Field::new("shipped_at", ts(), true)];
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("occurred_at", ts(), false),
            Field::new(
                "context",
                DataType::Struct(
                    vec![Field::new("country", DataType::Utf8, false), Field::new("app_version", DataType::Utf8, true)]
                        .into(),
                ),
                false,
            ),
            Field::new(
                "items",
                DataType::List(Arc::new(Field::new("element", DataType::Struct(line.into()), false))),
                false,
            ),
            Field::new("scores", DataType::List(Arc::new(Field::new("element", DataType::Int64, true))), true),
            Field::new("placed_at", ts(), false),
            Field::new("country", DataType::Utf8, false),
        ]));
        let layouts: Vec<(String, ColumnLayout)> = column_layouts(&schema, &["context.country"])
            .unwrap()
            .into_iter()
            .map(|(path, layout)| (path.string(), layout))
            .collect();
        let delta = ColumnLayout::Delta(Encoding::DELTA_BINARY_PACKED);
        let zstd = ColumnLayout::Zstd(Encoding::PLAIN);
        let want = [
            ("occurred_at", delta),
            ("context.country", ColumnLayout::Dictionary),
            ("context.app_version", zstd),
            ("items.list.element.sku", zstd),
            ("items.list.element.shipped_at", delta),
            ("scores.list.element", zstd),
            ("placed_at", delta),
            // Not a dimension here: only `context.country` is.
            ("country", zstd),
        ];
        assert_eq!(layouts, want.map(|(p, l)| (p.to_owned(), l)));
    }

    #[test]
    fn layouts_by_column() {
        let dims = ["device", "status"];
        assert_eq!(ColumnLayout::of("event_id", &dims), ColumnLayout::Zstd(Encoding::DELTA_LENGTH_BYTE_ARRAY));
        assert_eq!(ColumnLayout::of("user_id", &dims), ColumnLayout::Zstd(Encoding::PLAIN));
        assert_eq!(ColumnLayout::of("device", &dims), ColumnLayout::Dictionary);
        assert_eq!(ColumnLayout::of("status", &dims), ColumnLayout::Dictionary);
        assert_eq!(ColumnLayout::of("device", &[] as &[&str]), ColumnLayout::Zstd(Encoding::PLAIN));
        for column in DICTIONARY_COLUMNS {
            assert_eq!(ColumnLayout::of(column, &[] as &[&str]), ColumnLayout::Dictionary);
        }
        for (column, encoding) in DELTA_COLUMNS {
            assert_eq!(ColumnLayout::of(column, &dims), ColumnLayout::Delta(*encoding));
        }
    }
}
