//! Rendering query results: `--format table|csv|json`.
//!
//! Nested values (structs and lists, e.g. `context` and `items` of `order_placed`) render as
//! `{country: DE, channel: web}` / `[{sku: A-1, qty: 2}]` in a table, as JSON objects and arrays
//! in JSON, and as their JSON text in one CSV field.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::writer::{EncoderOptions, JsonArray, make_encoder};
use arrow::record_batch::RecordBatch;

use crate::lake::QueryError;

/// How `sluice query` prints its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// An aligned text table with a header (also for zero rows).
    #[default]
    Table,
    /// RFC 4180 CSV with a header row; timestamps in RFC 3339; a struct or list value is its
    /// JSON text (as [`OutputFormat::Json`] writes it, explicit `null`s included), an SQL NULL an
    /// empty field.
    Csv,
    /// One JSON array of objects (`[]` for zero rows); NULLs are explicit `null`s; structs are
    /// objects and lists arrays.
    Json,
}

impl OutputFormat {
    /// All formats, for CLI help.
    pub const ALL: [OutputFormat; 3] = [OutputFormat::Table, OutputFormat::Csv, OutputFormat::Json];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Table => "table",
            OutputFormat::Csv => "csv",
            OutputFormat::Json => "json",
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The format name is not one of `table`, `csv`, `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output format {0:?} (expected table, csv or json)")]
pub struct UnknownFormat(pub String);

impl FromStr for OutputFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutputFormat::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// Renders `batches` (all of `schema`) in `format`; the text ends in a newline.
pub fn format_batches(schema: &SchemaRef, batches: &[RecordBatch], format: OutputFormat) -> Result<String, QueryError> {
    let mut out = match format {
        OutputFormat::Table => arrow::util::pretty::pretty_format_batches_with_schema(schema.clone(), batches)
            .map_err(QueryError::Format)?
            .to_string()
            .into_bytes(),
        OutputFormat::Csv => {
            let mut buf = Vec::new();
            {
                let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut buf);
                // The header is written with the first batch: write an empty one for 0 rows.
                if batches.is_empty() {
                    writer.write(&RecordBatch::new_empty(json_text_schema(schema))).map_err(QueryError::Format)?;
                }
                for batch in batches {
                    writer
                        .write(&nested_as_json_text(batch).map_err(QueryError::Format)?)
                        .map_err(QueryError::Format)?;
                }
            }
            buf
        }
        OutputFormat::Json => {
            let mut buf = Vec::new();
            let mut writer =
                arrow::json::WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(&mut buf);
            for batch in batches {
                writer.write(batch).map_err(QueryError::Format)?;
            }
            writer.finish().map_err(QueryError::Format)?;
            buf
        }
    };
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    // Every writer above emits UTF-8; lossy conversion only guards the invariant.
    Ok(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// `schema` with every nested column (struct, list, map, union) turned into a nullable `Utf8`.
fn json_text_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Arc::clone(schema);
    }
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.data_type().is_nested() { Arc::new(Field::new(f.name(), DataType::Utf8, true)) } else { Arc::clone(f) }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with every nested column replaced by the JSON text of each value (NULL stays NULL),
/// for writers of flat formats.
fn nested_as_json_text(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let options = EncoderOptions::default().with_explicit_nulls(true);
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| {
            if !field.data_type().is_nested() {
                return Ok(Arc::clone(column));
            }
            let mut encoder = make_encoder(field, column.as_ref(), &options)?;
            let mut text = StringBuilder::with_capacity(column.len(), column.len() * 32);
            let mut value = Vec::new();
            for i in 0..column.len() {
                if encoder.is_null(i) {
                    text.append_null();
                    continue;
                }
                value.clear();
                encoder.encode(i, &mut value);
                text.append_value(String::from_utf8_lossy(&value));
            }
            Ok(Arc::new(text.finish()) as ArrayRef)
        })
        .collect::<Result<Vec<_>, ArrowError>>()?;
    RecordBatch::try_new(json_text_schema(&schema), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use pretty_assertions::assert_eq;

    fn sample() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("country", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
            Field::new("avg", DataType::Float64, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("DE"), None])),
                Arc::new(Int64Array::from(vec![3, 1])),
                Arc::new(Float64Array::from(vec![Some(1.5), None])),
                Arc::new(TimestampMicrosecondArray::from(vec![1_700_000_000_000_001, 0]).with_timezone("UTC")),
            ],
        )
        .unwrap();
        (schema, vec![batch])
    }

    #[test]
    fn parses_format_names() {
        assert_eq!("table".parse(), Ok(OutputFormat::Table));
        assert_eq!("CSV".parse(), Ok(OutputFormat::Csv));
        assert_eq!(" json ".parse(), Ok(OutputFormat::Json));
        assert_eq!("xml".parse::<OutputFormat>(), Err(UnknownFormat("xml".into())));
        for f in OutputFormat::ALL {
            assert_eq!(f.to_string().parse(), Ok(f));
        }
    }

    #[test]
    fn table() {
        let (schema, batches) = sample();
        let out = format_batches(&schema, &batches, OutputFormat::Table).unwrap();
        assert_eq!(
            out,
            "+---------+---+-----+-----------------------------+\n\
             | country | n | avg | at                          |\n\
             +---------+---+-----+-----------------------------+\n\
             | DE      | 3 | 1.5 | 2023-11-14T22:13:20.000001Z |\n\
             |         | 1 |     | 1970-01-01T00:00:00Z        |\n\
             +---------+---+-----+-----------------------------+\n"
        );
    }

    #[test]
    fn csv() {
        let (schema, batches) = sample();
        let out = format_batches(&schema, &batches, OutputFormat::Csv).unwrap();
        assert_eq!(out, "country,n,avg,at\nDE,3,1.5,2023-11-14T22:13:20.000001Z\n,1,,1970-01-01T00:00:00Z\n");
    }

    #[test]
    fn json() {
        let (schema, batches) = sample();
        let out = format_batches(&schema, &batches, OutputFormat::Json).unwrap();
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            value,
            serde_json::json!([
                {"country": "DE", "n": 3, "avg": 1.5, "at": "2023-11-14T22:13:20.000001Z"},
                {"country": null, "n": 1, "avg": null, "at": "1970-01-01T00:00:00Z"},
            ])
        );
    }

    /// `context` struct (one NULL struct, one NULL field) and `items` list of structs (one
    /// empty list, one NULL list).
    fn nested() -> (SchemaRef, Vec<RecordBatch>) {
        use arrow::array::{ListArray, StructArray};
        use arrow::buffer::{NullBuffer, OffsetBuffer};
        use arrow::datatypes::Fields;
        let context_fields =
            Fields::from(vec![Field::new("country", DataType::Utf8, false), Field::new("app", DataType::Utf8, true)]);
        let item_fields =
            Fields::from(vec![Field::new("sku", DataType::Utf8, false), Field::new("qty", DataType::Int64, false)]);
        let element = Arc::new(Field::new("element", DataType::Struct(item_fields.clone()), false));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("context", DataType::Struct(context_fields.clone()), true),
            Field::new("items", DataType::List(Arc::clone(&element)), true),
        ]));
        let context = StructArray::new(
            context_fields,
            vec![
                Arc::new(StringArray::from(vec!["DE", "US", ""])),
                Arc::new(StringArray::from(vec![Some("1.2"), None, None])),
            ],
            Some(NullBuffer::from(vec![true, true, false])),
        );
        let items = StructArray::new(
            item_fields,
            vec![Arc::new(StringArray::from(vec!["A-1", "B,\"2"])), Arc::new(Int64Array::from(vec![2, 1]))],
            None,
        );
        let items = ListArray::new(
            element,
            OffsetBuffer::from_lengths([2, 0, 0]),
            Arc::new(items),
            Some(NullBuffer::from(vec![true, true, false])),
        );
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3])), Arc::new(context), Arc::new(items)],
        )
        .unwrap();
        (schema, vec![batch])
    }

    #[test]
    fn nested_values_in_every_format() {
        let (schema, batches) = nested();
        let table = format_batches(&schema, &batches, OutputFormat::Table).unwrap();
        assert!(
            table.contains("| 1  | {country: DE, app: 1.2} | [{sku: A-1, qty: 2}, {sku: B,\"2, qty: 1}] |"),
            "{table}"
        );
        assert!(table.contains("| 2  | {country: US, app: }    | []"), "{table}");

        let csv = format_batches(&schema, &batches, OutputFormat::Csv).unwrap();
        assert_eq!(
            csv,
            "id,context,items\n\
             1,\"{\"\"country\"\":\"\"DE\"\",\"\"app\"\":\"\"1.2\"\"}\",\
             \"[{\"\"sku\"\":\"\"A-1\"\",\"\"qty\"\":2},{\"\"sku\"\":\"\"B,\\\"\"2\"\",\"\"qty\"\":1}]\"\n\
             2,\"{\"\"country\"\":\"\"US\"\",\"\"app\"\":null}\",[]\n\
             3,,\n"
        );
        assert_eq!(format_batches(&schema, &[], OutputFormat::Csv).unwrap(), "id,context,items\n");

        let json = format_batches(&schema, &batches, OutputFormat::Json).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!([
                {"id": 1, "context": {"country": "DE", "app": "1.2"}, "items": [{"sku": "A-1", "qty": 2}, {"sku": "B,\"2", "qty": 1}]},
                {"id": 2, "context": {"country": "US", "app": null}, "items": []},
                {"id": 3, "context": null, "items": null},
            ])
        );
    }

    /// The JSON text of a CSV field is the value the JSON format writes.
    #[test]
    fn csv_fields_of_nested_values_are_json_values() {
        let (schema, batches) = nested();
        let json: Vec<serde_json::Value> =
            serde_json::from_str(&format_batches(&schema, &batches, OutputFormat::Json).unwrap()).unwrap();
        let csv = format_batches(&schema, &batches, OutputFormat::Csv).unwrap();
        let mut reader =
            arrow::csv::ReaderBuilder::new(json_text_schema(&schema)).with_header(true).build(csv.as_bytes()).unwrap();
        let batch = reader.next().unwrap().unwrap();
        for (column, name) in [(1, "context"), (2, "items")] {
            let text = batch.column(column).as_any().downcast_ref::<StringArray>().unwrap();
            for (row, want) in json.iter().enumerate() {
                let got = if text.is_null(row) {
                    serde_json::Value::Null
                } else {
                    serde_json::from_str(text.value(row)).unwrap()
                };
                assert_eq!(got, want[name], "row {row} {name}");
            }
        }
    }

    #[test]
    fn empty_results_keep_their_header() {
        let (schema, _) = sample();
        let table = format_batches(&schema, &[], OutputFormat::Table).unwrap();
        assert!(table.contains("| country | n | avg | at |"), "{table}");
        assert_eq!(format_batches(&schema, &[], OutputFormat::Csv).unwrap(), "country,n,avg,at\n");
        assert_eq!(format_batches(&schema, &[], OutputFormat::Json).unwrap(), "[]\n");
    }
}
