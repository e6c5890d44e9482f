//! Rendering query results: `--format table|csv|json`.

use std::fmt;
use std::str::FromStr;

use arrow::datatypes::SchemaRef;
use arrow::json::writer::JsonArray;
use arrow::record_batch::RecordBatch;

use crate::lake::QueryError;

/// How `sluice query` prints its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// An aligned text table with a header (also for zero rows).
    #[default]
    Table,
    /// RFC 4180 CSV with a header row; timestamps in RFC 3339.
    Csv,
    /// One JSON array of objects (`[]` for zero rows); NULLs are explicit `null`s.
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
                    writer.write(&RecordBatch::new_empty(schema.clone())).map_err(QueryError::Format)?;
                }
                for batch in batches {
                    writer.write(batch).map_err(QueryError::Format)?;
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

    #[test]
    fn empty_results_keep_their_header() {
        let (schema, _) = sample();
        let table = format_batches(&schema, &[], OutputFormat::Table).unwrap();
        assert!(table.contains("| country | n | avg | at |"), "{table}");
        assert_eq!(format_batches(&schema, &[], OutputFormat::Csv).unwrap(), "country,n,avg,at\n");
        assert_eq!(format_batches(&schema, &[], OutputFormat::Json).unwrap(), "[]\n");
    }
}
