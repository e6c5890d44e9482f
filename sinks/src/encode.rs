//! Arrow -> Parquet bytes with the lake's writer settings (pure, in memory).
//!
//! Settings ([`writer_properties`]): zstd (level 1) on every column but the delta-encoded ones
//! (below); row groups of at most
//! [`MAX_ROW_GROUP_ROWS`] rows (a lake-writer file is one row group; compaction output gets
//! ~1M-row groups, the size Athena/Trino and DuckDB parallelise well over); page-level
//! statistics on every column, which also writes the page index (column index + offset index) so
//! readers prune pages on `occurred_at` and the dimensions; timestamps as
//! `TIMESTAMP(MICROS, isAdjustedToUTC=true)`.
//!
//! Encodings (measured on the benchmark's generated batches, see the README's Performance
//! section): PLAIN + zstd for strings and numbers, no dictionary: zstd already folds the repeated
//! values of a lake-writer file (a few thousand rows), and dictionary building (hashing every
//! value) cost ~10% of the encode time for files 4% *larger* (43.9 vs 42.3 bytes/event).
//! [`DELTA_COLUMNS`]: `DELTA_BINARY_PACKED` for the two timestamps and `schema_version`,
//! `DELTA_BYTE_ARRAY` for `sequence_number` (56-digit numbers sharing long prefixes) and for
//! `event_type` and `shard_id` (one value per file: a few hundred bytes in all). These are
//! written *without* zstd: it took a further 0-5% off the timestamps and ~1 byte/event off
//! `sequence_number` (42.7 instead of 41.3 bytes/event in all), while each compressed column
//! chunk costs a zstd compressor and decompressor (parquet-rs creates both per column writer),
//! and creating one runs `cpuid` three times, which traps to the hypervisor: ~13 us each on
//! this VM (Lambda's Firecracker traps too). On the benchmark that was ~70 ns of the ~750 ns
//! per event of Parquet encoding. Every encoding here is read by Athena (Trino), DuckDB,
//! DataFusion and pyarrow (the pyarrow/DuckDB read-back test covers the last two). Compaction
//! may re-encode with dictionaries and compress every column.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

/// Upper bound of rows per row group.
pub const MAX_ROW_GROUP_ROWS: usize = 1 << 20;
/// Upper bound of rows per data page (keeps page-index pruning useful).
pub const DATA_PAGE_ROW_LIMIT: usize = 20_000;
/// zstd level: 1 is the fastest; on the generated benchmark data it is also no larger than level 3
/// (44.0 vs 46.3 bytes/event), pages being small. Compaction may re-encode at a higher level.
pub const ZSTD_LEVEL: i32 = 1;
/// Columns written with a delta encoding instead of PLAIN, and without zstd (see the module
/// docs).
pub const DELTA_COLUMNS: &[(&str, Encoding)] = &[
    ("event_type", Encoding::DELTA_BYTE_ARRAY),
    ("schema_version", Encoding::DELTA_BINARY_PACKED),
    ("occurred_at", Encoding::DELTA_BINARY_PACKED),
    ("received_at", Encoding::DELTA_BINARY_PACKED),
    ("shard_id", Encoding::DELTA_BYTE_ARRAY),
    ("sequence_number", Encoding::DELTA_BYTE_ARRAY),
];

/// Why a batch could not be encoded. A bug or resource problem, never the data's fault: the
/// caller retries (the write is reported as failed).
#[derive(Debug, thiserror::Error)]
#[error("parquet encoding failed: {0}")]
pub struct EncodeError(#[from] ParquetError);

/// The lake's Parquet writer properties, plus `metadata` as file key-value metadata.
pub fn writer_properties(metadata: &[(&str, String)]) -> WriterProperties {
    let zstd = ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default();
    let mut builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(zstd))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(DATA_PAGE_ROW_LIMIT)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_statistics_truncate_length(Some(64))
        .set_dictionary_enabled(false);
    for (column, encoding) in DELTA_COLUMNS {
        builder = builder
            .set_column_encoding(ColumnPath::from(*column), *encoding)
            .set_column_compression(ColumnPath::from(*column), Compression::UNCOMPRESSED);
    }
    if !metadata.is_empty() {
        builder = builder.set_key_value_metadata(Some(
            metadata.iter().map(|(k, v)| KeyValue::new((*k).to_owned(), v.clone())).collect(),
        ));
    }
    builder.build()
}

/// Encodes `batches` (all of `schema`) into one Parquet file in memory.
pub fn encode_parquet(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    metadata: &[(&str, String)],
) -> Result<Bytes, EncodeError> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    // Compressed output is ~30-60 bytes per row; start near that to avoid regrowing.
    let mut out = Vec::with_capacity(4096 + rows * 48);
    let mut writer = ArrowWriter::try_new(&mut out, Arc::clone(schema), Some(writer_properties(metadata)))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(Bytes::from(out))
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
        let bytes = encode_parquet(&schema, &[batch], &[("sluice.event_type", "t".into())]).unwrap();
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
        for column in group.columns() {
            let delta = DELTA_COLUMNS.iter().any(|(name, _)| column.column_path().string() == *name);
            let expected = if delta { Compression::UNCOMPRESSED } else { Compression::ZSTD(ZstdLevel::default()) };
            assert_eq!(
                std::mem::discriminant(&column.compression()),
                std::mem::discriminant(&expected),
                "{}",
                column.column_path()
            );
            assert!(column.statistics().is_some());
        }
        let encodings = |i: usize| group.column(i).encodings().collect::<Vec<_>>();
        for i in 0..3 {
            assert!(
                !encodings(i).iter().any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY)),
                "no dictionaries: {:?}",
                encodings(i)
            );
        }
        assert!(encodings(0).contains(&Encoding::PLAIN), "{:?}", encodings(0));
        assert!(encodings(1).contains(&Encoding::DELTA_BINARY_PACKED), "timestamps are delta encoded");
    }
}
