//! The Athena / Glue view of the lake: one external table per event type, generated from the
//! registry (pure: no I/O).
//!
//! Every table is derived from [`EventType::arrow_schema`], the same schema the lake writer uses,
//! so the Parquet files, DataFusion and Athena agree on column names and types by construction:
//! - [`table_definitions`]: the columns (Hive types) and partition keys of every table;
//! - [`athena_ddl`]: `CREATE EXTERNAL TABLE` statements (`sluice athena-ddl`);
//! - [`glue_resources_yaml`]: the equivalent CloudFormation `AWS::Glue::Database` and
//!   `AWS::Glue::Table` resources for template.yaml (see [`crate::template`]).
//!
//! Partitions are found by **partition projection** (no crawler, no `MSCK REPAIR`): `dt` is a
//! `yyyy-MM-dd` date from the lake's first day (the registry's `EventTimeRange::lake_start`,
//! which ingest also enforces, so no accepted event is outside the projection) to `NOW`, `hour` an integer 00-23 rendered
//! with two digits, and `storage.location.template` maps them to the lake layout
//! `<lake>/events/event_type=<t>/dt=YYYY-MM-DD/hour=HH/`.

use std::fmt::Write as _;

use arrow::datatypes::{DataType, TimeUnit};
use sluice_schemas::{EventType, Registry};

/// The Hive partition columns of every event table, in path order. Both are strings in the
/// tables (`dt` = `YYYY-MM-DD`, `hour` = `HH`, two digits).
pub const PARTITION_COLUMNS: [&str; 2] = ["dt", "hour"];

/// The template.yaml parameter holding the lake's first day: the generated Glue tables start
/// their `dt` projection at `${LakeStart}`, and every function gets it as `SLUICE_LAKE_START`.
pub const LAKE_START_PARAMETER: &str = "LakeStart";

/// The Parquet SerDe and its input/output formats (what Athena and Glue expect for Parquet).
pub const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
pub const PARQUET_INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
pub const PARQUET_OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";

/// Glue limits a column comment to 255 characters.
const MAX_COMMENT_CHARS: usize = 255;

/// Why the table definitions could not be generated. Each variant means: fix the input (schema
/// files, lake location or database name) and run again.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AthenaError {
    /// A column's Arrow type has no Athena equivalent in [`hive_type`].
    #[error("{event_type}.{column}: Arrow type {data_type} has no Athena/Hive type mapping")]
    UnsupportedType { event_type: String, column: String, data_type: String },
    /// The lake location is not `s3://bucket[/prefix]`.
    #[error("lake location {location:?} must be an s3://bucket[/prefix] URL")]
    InvalidLocation { location: String },
    /// The database name is not a valid Athena name.
    #[error(
        "database name {name:?} must be 1-255 characters of lowercase letters, digits and _ \
         (Athena folds names to lowercase and needs quoting for anything else)"
    )]
    InvalidDatabase { name: String },
    /// An event type's name is a partition column or would collide with another table's
    /// CloudFormation logical id.
    #[error("event type {event_type:?}: {message}")]
    InvalidEventType { event_type: String, message: String },
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: String,
    /// The Athena/Hive type ([`hive_type`]): `string`, `bigint`, `int`, `double`, `boolean`,
    /// `timestamp`, `struct<...>`, `array<...>`.
    pub hive_type: String,
    /// Human description (envelope docs, or the schema's `description`), at most 255 chars.
    pub comment: Option<String>,
}

/// One external table: an event type's typed columns plus the partition keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// The table name = the event type name.
    pub name: String,
    pub description: String,
    /// File columns, in Parquet/Arrow order.
    pub columns: Vec<ColumnDef>,
    /// Partition keys ([`PARTITION_COLUMNS`], all `string`).
    pub partition_keys: Vec<ColumnDef>,
}

/// The Athena/Hive type of an Arrow type as the lake writes it, spelled as Glue stores it (no
/// spaces): a scalar (`string`, `bigint`, `double`, `timestamp`, ...), `struct<name:type,...>` for
/// a struct (its fields in order) and `array<type>` for a list (its element's type), at any depth.
/// `None` when Athena has no faithful equivalent (unsigned ints, nanosecond timestamps, maps,
/// empty structs, a struct field whose name is not `[a-z0-9_]+` ...).
pub fn hive_type(data_type: &DataType) -> Option<String> {
    let scalar = match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string",
        DataType::Int64 => "bigint",
        DataType::Int32 => "int",
        DataType::Int16 => "smallint",
        DataType::Int8 => "tinyint",
        DataType::Float64 => "double",
        DataType::Float32 => "float",
        DataType::Boolean => "boolean",
        DataType::Date32 => "date",
        // Athena reads Parquet timestamps in milliseconds or microseconds, not nanoseconds.
        DataType::Timestamp(TimeUnit::Microsecond | TimeUnit::Millisecond, _) => "timestamp",
        DataType::List(element) | DataType::LargeList(element) => {
            return Some(format!("array<{}>", hive_type(element.data_type())?));
        }
        DataType::Struct(fields) if !fields.is_empty() => {
            let mut out = String::from("struct<");
            for (i, field) in fields.iter().enumerate() {
                let name = field.name();
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                    return None;
                }
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{name}:{}", hive_type(field.data_type())?);
            }
            out.push('>');
            return Some(out);
        }
        _ => return None,
    };
    Some(scalar.to_owned())
}

fn envelope_comment(column: &str) -> Option<&'static str> {
    Some(match column {
        "event_id" => "Producer-chosen event id (UUID/ULID), the idempotency key",
        "event_type" => "Event type (also the table name)",
        "schema_version" => "Version of the JSON Schema the data was validated against",
        "occurred_at" => "Event time (UTC, microseconds); dt/hour partitions derive from it",
        "received_at" => "Time ingest accepted the event (UTC, microseconds)",
        "producer" => "Authenticated producer id",
        "shard_id" => "Stream shard the event was read from",
        "sequence_number" => "Stream sequence number (decimal string, unique per shard)",
        _ => return None,
    })
}

/// Cuts `text` to [`MAX_COMMENT_CHARS`] characters and flattens line breaks.
fn clean_comment(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_COMMENT_CHARS).collect()
}

/// The table definition of one event type.
pub fn table_definition(event_type: &EventType) -> Result<TableDef, AthenaError> {
    if PARTITION_COLUMNS.contains(&event_type.name.as_str()) {
        return Err(AthenaError::InvalidEventType {
            event_type: event_type.name.clone(),
            message: "the name is reserved for a partition column".into(),
        });
    }
    let latest = event_type.latest();
    let schema = event_type.arrow_schema();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name();
        if PARTITION_COLUMNS.contains(&name.as_str()) {
            return Err(AthenaError::InvalidEventType {
                event_type: event_type.name.clone(),
                message: format!("field `{name}` collides with the partition column"),
            });
        }
        let hive_type = hive_type(field.data_type()).ok_or_else(|| AthenaError::UnsupportedType {
            event_type: event_type.name.clone(),
            column: name.clone(),
            data_type: field.data_type().to_string(),
        })?;
        let comment = envelope_comment(name).map(str::to_owned).or_else(|| {
            latest
                .and_then(|v| v.document.get("properties"))
                .and_then(|p| p.get(name))
                .and_then(|p| p.get("description"))
                .and_then(|d| d.as_str())
                .map(str::to_owned)
        });
        columns.push(ColumnDef { name: name.clone(), hive_type, comment: comment.as_deref().map(clean_comment) });
    }
    let description = latest
        .and_then(|v| v.document.get("description"))
        .and_then(|d| d.as_str())
        .map_or_else(|| format!("{} events", event_type.name), |d| format!("{} events: {d}", event_type.name));
    Ok(TableDef {
        name: event_type.name.clone(),
        description: clean_comment(&description),
        columns,
        partition_keys: vec![
            ColumnDef {
                name: "dt".into(),
                hive_type: "string".into(),
                comment: Some("Partition: UTC date of occurred_at, YYYY-MM-DD".into()),
            },
            ColumnDef {
                name: "hour".into(),
                hive_type: "string".into(),
                comment: Some("Partition: UTC hour of occurred_at, 00-23".into()),
            },
        ],
    })
}

/// The table definitions of every event type, by name.
pub fn table_definitions(registry: &Registry) -> Result<Vec<TableDef>, AthenaError> {
    registry.event_types().map(table_definition).collect()
}

/// The table properties for partition projection and the Parquet files, in a fixed order.
/// `location_template` is the table location followed by `dt=${dt}/hour=${hour}/`; the `dt`
/// projection runs from `lake_start` (`YYYY-MM-DD`) to `NOW`.
pub fn table_properties(location_template: &str, lake_start: &str) -> Vec<(&'static str, String)> {
    vec![
        ("classification", "parquet".into()),
        ("parquet.compression", "ZSTD".into()),
        ("projection.enabled", "true".into()),
        ("projection.dt.type", "date".into()),
        ("projection.dt.format", "yyyy-MM-dd".into()),
        ("projection.dt.range", format!("{lake_start},NOW")),
        ("projection.dt.interval", "1".into()),
        ("projection.dt.interval.unit", "DAYS".into()),
        ("projection.hour.type", "integer".into()),
        ("projection.hour.range", "0,23".into()),
        ("projection.hour.digits", "2".into()),
        ("storage.location.template", location_template.to_owned()),
    ]
}

/// The directory of an event type's files under a lake root that ends in `/`.
fn table_location(root: &str, event_type: &str) -> String {
    format!("{root}{}/", sluice_lake::layout::table_dir(event_type))
}

/// `s3://bucket[/prefix][/]` -> `s3://bucket[/prefix]/`.
fn normalize_location(location: &str) -> Result<String, AthenaError> {
    let invalid = || AthenaError::InvalidLocation { location: location.to_owned() };
    let rest = location.strip_prefix("s3://").ok_or_else(invalid)?;
    let rest = rest.trim_end_matches('/');
    let bucket = rest.split('/').next().unwrap_or_default();
    let valid_bucket = !bucket.is_empty()
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let valid_chars = !rest.chars().any(|c| c.is_control() || c.is_whitespace() || matches!(c, '\'' | '\\' | '$'));
    if !valid_bucket || !valid_chars || rest.contains("//") {
        return Err(invalid());
    }
    Ok(format!("s3://{rest}/"))
}

fn valid_database(name: &str) -> bool {
    (1..=255).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A Hive DDL string literal: single quotes, backslash escapes.
fn sql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if matches!(c, '\'' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// `CREATE DATABASE` plus one `CREATE EXTERNAL TABLE` per event type, for Athena, over the lake
/// at `lake_location` (`s3://bucket[/prefix]`, the same root the lake writer uses).
///
/// Idempotent statements (`IF NOT EXISTS`), separated by blank lines, each ending in `;`. Run
/// them one at a time (Athena executes one statement per query). The tables are equivalent to
/// the Glue tables of [`glue_resources_yaml`].
pub fn athena_ddl(registry: &Registry, lake_location: &str, database: &str) -> Result<String, AthenaError> {
    let root = normalize_location(lake_location)?;
    if !valid_database(database) {
        return Err(AthenaError::InvalidDatabase { name: database.to_owned() });
    }
    let tables = table_definitions(registry)?;
    let mut out = String::new();
    // `fmt::Write` for `String` never fails.
    let _ = writeln!(out, "CREATE DATABASE IF NOT EXISTS `{database}`;");
    for table in &tables {
        let location = table_location(&root, &table.name);
        let column_line = |c: &ColumnDef| match &c.comment {
            Some(comment) => format!("`{}` {} COMMENT {}", c.name, c.hive_type, sql_string(comment)),
            None => format!("`{}` {}", c.name, c.hive_type),
        };
        let columns: Vec<String> = table.columns.iter().map(|c| format!("  {}", column_line(c))).collect();
        let partitions: Vec<String> = table.partition_keys.iter().map(|c| format!("  {}", column_line(c))).collect();
        let lake_start = registry.event_time().lake_start.to_string();
        let properties: Vec<String> = table_properties(&format!("{location}dt=${{dt}}/hour=${{hour}}/"), &lake_start)
            .into_iter()
            .map(|(k, v)| format!("  {}={}", sql_string(k), sql_string(&v)))
            .collect();
        let _ = write!(
            out,
            "\nCREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{name}` (\n{columns}\n)\n\
             COMMENT {description}\n\
             PARTITIONED BY (\n{partitions}\n)\n\
             ROW FORMAT SERDE {serde}\n\
             STORED AS INPUTFORMAT {input}\n\
             OUTPUTFORMAT {output}\n\
             LOCATION {location}\n\
             TBLPROPERTIES (\n{properties}\n);\n",
            name = table.name,
            columns = columns.join(",\n"),
            description = sql_string(&table.description),
            partitions = partitions.join(",\n"),
            serde = sql_string(PARQUET_SERDE),
            input = sql_string(PARQUET_INPUT_FORMAT),
            output = sql_string(PARQUET_OUTPUT_FORMAT),
            location = sql_string(&location),
            properties = properties.join(",\n"),
        );
    }
    Ok(out)
}

/// Where the Glue tables' S3 bucket comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LakeBucket {
    /// template.yaml already defines a `LakeBucket` resource or parameter: reference it.
    Existing,
    /// Define the `LakeBucket` S3 bucket inside the generated block.
    Define,
}

/// The CloudFormation logical id of an event type's table: `LakeTable` + CamelCase name.
pub fn table_logical_id(event_type: &str) -> String {
    let camel: String = event_type
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| first.to_ascii_uppercase().to_string() + chars.as_str())
        })
        .collect();
    format!("LakeTable{camel}")
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn yaml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The resources of the generated template.yaml block, indented for `Resources:` (two spaces),
/// ending in a newline: the Glue database `LakeDatabase` (named `sluice_<Stage>` with `-` turned
/// into `_`), one `AWS::Glue::Table` per event type over
/// `s3://${LakeBucket}/events/event_type=<t>/` with the partition projection of
/// [`table_properties`], and, for [`LakeBucket::Define`], the encrypted private `LakeBucket`.
pub fn glue_resources_yaml(registry: &Registry, bucket: LakeBucket) -> Result<String, AthenaError> {
    let tables = table_definitions(registry)?;
    let mut ids: Vec<(String, &str)> = Vec::new();
    for table in &tables {
        let id = table_logical_id(&table.name);
        if let Some((_, other)) = ids.iter().find(|(seen, _)| *seen == id) {
            return Err(AthenaError::InvalidEventType {
                event_type: table.name.clone(),
                message: format!("its logical id {id} collides with event type {other:?}"),
            });
        }
        ids.push((id, &table.name));
    }

    let mut out = String::new();
    if bucket == LakeBucket::Define {
        out.push_str(
            "  LakeBucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketEncryption:
        ServerSideEncryptionConfiguration:
          - ServerSideEncryptionByDefault:
              SSEAlgorithm: AES256
      PublicAccessBlockConfiguration:
        BlockPublicAcls: true
        BlockPublicPolicy: true
        IgnorePublicAcls: true
        RestrictPublicBuckets: true

",
        );
    }
    out.push_str(
        "  LakeDatabase:
    Type: AWS::Glue::Database
    Properties:
      CatalogId: !Ref AWS::AccountId
      DatabaseInput:
        Name: !Join [\"_\", !Split [\"-\", !Sub \"sluice_${Stage}\"]]
        Description: sluice event lake (one table per event type, partition projection)
",
    );
    for (table, (id, _)) in tables.iter().zip(&ids) {
        let location = table_location("s3://${LakeBucket}/", &table.name);
        let _ = write!(
            out,
            "
  {id}:
    Type: AWS::Glue::Table
    Properties:
      CatalogId: !Ref AWS::AccountId
      DatabaseName: !Ref LakeDatabase
      TableInput:
        Name: {name}
        Description: {description}
        TableType: EXTERNAL_TABLE
        Parameters:
",
            name = table.name,
            description = yaml_string(&table.description),
        );
        // In !Sub, ${!dt} is the literal ${dt} that partition projection substitutes.
        let template = format!("{location}dt=${{!dt}}/hour=${{!hour}}/");
        for (key, value) in table_properties(&template, &format!("${{{LAKE_START_PARAMETER}}}")) {
            let value = if key == "storage.location.template" || key == "projection.dt.range" {
                format!("!Sub {}", yaml_string(&value))
            } else {
                yaml_string(&value)
            };
            let _ = writeln!(out, "          {key}: {value}");
        }
        out.push_str("        PartitionKeys:\n");
        write_columns(&mut out, &table.partition_keys, 10);
        let _ = write!(
            out,
            "        StorageDescriptor:
          Location: !Sub {location}
          InputFormat: {PARQUET_INPUT_FORMAT}
          OutputFormat: {PARQUET_OUTPUT_FORMAT}
          SerdeInfo:
            SerializationLibrary: {PARQUET_SERDE}
            Parameters:
              serialization.format: \"1\"
          Columns:
",
            location = yaml_string(&location),
        );
        write_columns(&mut out, &table.columns, 12);
    }
    Ok(out)
}

/// A YAML list of Glue columns, its `-` at `indent` spaces.
fn write_columns(out: &mut String, columns: &[ColumnDef], indent: usize) {
    let pad = " ".repeat(indent);
    for column in columns {
        let _ = writeln!(out, "{pad}- Name: {}", column.name);
        let _ = writeln!(out, "{pad}  Type: {}", column.hive_type);
        if let Some(comment) = &column.comment {
            let _ = writeln!(out, "{pad}  Comment: {}", yaml_string(comment));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;
    use sluice_schemas::ENVELOPE_COLUMNS;

    fn registry() -> Registry {
        Registry::builtin().unwrap()
    }

    #[test]
    fn hive_types_of_the_lake_types() {
        let cases = [
            (DataType::Utf8, Some("string")),
            (DataType::Int64, Some("bigint")),
            (DataType::Int32, Some("int")),
            (DataType::Float64, Some("double")),
            (DataType::Boolean, Some("boolean")),
            (DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), Some("timestamp")),
            (DataType::Timestamp(TimeUnit::Nanosecond, None), None),
            (DataType::UInt64, None),
        ];
        for (data_type, expected) in cases {
            assert_eq!(hive_type(&data_type).as_deref(), expected, "{data_type}");
        }
    }

    #[test]
    fn hive_types_of_nested_columns() {
        use arrow::datatypes::{Field, Fields};
        use std::sync::Arc;
        let item = Fields::from(vec![
            Field::new("sku", DataType::Utf8, false),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("tags", DataType::new_list(DataType::Utf8, true), true),
        ]);
        let list = DataType::List(Arc::new(Field::new("element", DataType::Struct(item), false)));
        assert_eq!(hive_type(&list).as_deref(), Some("array<struct<sku:string,at:timestamp,tags:array<string>>>"));
        let outer = DataType::Struct(Fields::from(vec![Field::new("inner", list, true)]));
        assert_eq!(
            hive_type(&outer).as_deref(),
            Some("struct<inner:array<struct<sku:string,at:timestamp,tags:array<string>>>>")
        );
        // Anything Athena cannot read faithfully, at any depth, has no type.
        let refused = [
            DataType::new_list(DataType::UInt32, true),
            DataType::Struct(Fields::from(vec![Field::new(
                "n",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                true,
            )])),
            DataType::Struct(Fields::from(vec![Field::new("Upper", DataType::Utf8, true)])),
            DataType::Struct(Fields::from(vec![Field::new("a b", DataType::Utf8, true)])),
            DataType::Struct(Fields::empty()),
        ];
        for data_type in refused {
            assert_eq!(hive_type(&data_type), None, "{data_type}");
        }
    }

    #[test]
    fn order_placed_table_has_nested_columns() {
        let registry = registry();
        let table = table_definition(registry.get("order_placed").unwrap()).unwrap();
        let columns: Vec<(&str, &str)> = table
            .columns
            .iter()
            .skip(ENVELOPE_COLUMNS.len())
            .map(|c| (c.name.as_str(), c.hive_type.as_str()))
            .collect();
        assert_eq!(
            columns,
            vec![
                ("order_id", "string"),
                ("user_id", "string"),
                ("context", "struct<country:string,channel:string,app_version:string>"),
                ("items", "array<struct<sku:string,qty:bigint,unit_price:double>>"),
                ("coupon", "string"),
                ("placed_at", "timestamp"),
                ("total", "double"),
            ]
        );
        let items = &table.columns[ENVELOPE_COLUMNS.len() + 3];
        assert_eq!(items.comment.as_deref(), Some("The order's line items."));
        let ddl = athena_ddl(&registry, "s3://b", "db").unwrap();
        assert!(
            ddl.contains(
                "\n  `items` array<struct<sku:string,qty:bigint,unit_price:double>> COMMENT 'The order\\'s line items.',\n"
            ),
            "{ddl}"
        );
        assert!(ddl.contains("\n  `placed_at` timestamp COMMENT"), "{ddl}");
    }

    #[test]
    fn page_view_table_has_envelope_data_and_partition_columns() {
        let registry = registry();
        let table = table_definition(registry.get("page_view").unwrap()).unwrap();
        let columns: Vec<(&str, &str)> =
            table.columns.iter().map(|c| (c.name.as_str(), c.hive_type.as_str())).collect();
        assert_eq!(
            columns,
            vec![
                ("event_id", "string"),
                ("event_type", "string"),
                ("schema_version", "int"),
                ("occurred_at", "timestamp"),
                ("received_at", "timestamp"),
                ("producer", "string"),
                ("shard_id", "string"),
                ("sequence_number", "string"),
                ("user_id", "string"),
                ("session_id", "string"),
                ("page", "string"),
                ("referrer", "string"),
                ("device", "string"),
                ("country", "string"),
                ("duration_ms", "double"),
                ("app_version", "string"),
            ]
        );
        let keys: Vec<&str> = table.partition_keys.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(keys, PARTITION_COLUMNS);
        assert_eq!(table.columns[13].comment.as_deref(), Some("ISO 3166-1 alpha-2 country code, e.g. US"));
    }

    #[test]
    fn ddl_for_page_view() {
        let ddl = athena_ddl(&registry(), "s3://my-lake/prod", "analytics").unwrap();
        assert!(ddl.starts_with("CREATE DATABASE IF NOT EXISTS `analytics`;\n"), "{ddl}");
        assert!(
            ddl.contains("CREATE EXTERNAL TABLE IF NOT EXISTS `analytics`.`page_view` (\n  `event_id` string COMMENT"),
            "{ddl}"
        );
        assert!(ddl.contains("  `occurred_at` timestamp COMMENT"), "{ddl}");
        assert!(ddl.contains("  `duration_ms` double COMMENT"), "{ddl}");
        assert!(ddl.contains("PARTITIONED BY (\n  `dt` string COMMENT"), "{ddl}");
        assert!(ddl.contains("LOCATION 's3://my-lake/prod/events/event_type=page_view/'"), "{ddl}");
        assert!(ddl.contains(
            "'storage.location.template'='s3://my-lake/prod/events/event_type=page_view/dt=${dt}/hour=${hour}/'"
        ));
        assert!(ddl.contains("'projection.hour.digits'='2'"));
        assert!(ddl.contains("'projection.dt.range'='2000-01-01,NOW'"));
        assert_eq!(ddl.matches("CREATE EXTERNAL TABLE").count(), 4);
        assert_eq!(ddl.matches(";\n").count(), 5);
    }

    #[test]
    fn ddl_locations_are_normalized() {
        for location in ["s3://b", "s3://b/", "s3://b//"] {
            let ddl = athena_ddl(&registry(), location, "db").unwrap();
            assert!(ddl.contains("LOCATION 's3://b/events/event_type=purchase/'"), "{location}");
        }
    }

    #[test]
    fn ddl_rejects_bad_inputs() {
        let registry = registry();
        for location in ["", "file:///tmp/lake", "s3://", "s3://Bucket", "s3://b/x'y", "s3://b/a//c"] {
            assert!(
                matches!(athena_ddl(&registry, location, "db"), Err(AthenaError::InvalidLocation { .. })),
                "{location}"
            );
        }
        for database in ["", "Sluice", "a-b", "a`b", "x y"] {
            assert!(
                matches!(athena_ddl(&registry, "s3://b", database), Err(AthenaError::InvalidDatabase { .. })),
                "{database}"
            );
        }
    }

    #[test]
    fn logical_ids() {
        assert_eq!(table_logical_id("page_view"), "LakeTablePageView");
        assert_eq!(table_logical_id("api_call2"), "LakeTableApiCall2");
        assert_eq!(table_logical_id("x"), "LakeTableX");
    }

    #[test]
    fn glue_yaml_defines_the_bucket_only_when_asked() {
        let registry = registry();
        let define = glue_resources_yaml(&registry, LakeBucket::Define).unwrap();
        let existing = glue_resources_yaml(&registry, LakeBucket::Existing).unwrap();
        assert!(define.starts_with("  LakeBucket:\n    Type: AWS::S3::Bucket\n"));
        assert!(!existing.contains("AWS::S3::Bucket"));
        assert!(define.ends_with(&existing));
        assert_eq!(existing.matches("Type: AWS::Glue::Table").count(), 4);
        assert!(existing.contains(
            "          storage.location.template: !Sub \"s3://${LakeBucket}/events/event_type=page_view/dt=${!dt}/hour=${!hour}/\"\n"
        ));
        assert!(existing.contains("          Location: !Sub \"s3://${LakeBucket}/events/event_type=purchase/\"\n"));
        for line in existing.lines().filter(|l| !l.is_empty()) {
            assert!(line.starts_with("  "), "not indented under Resources: {line:?}");
            assert!(!line.ends_with(' '), "trailing space: {line:?}");
        }
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(sql_string(r"it's a \ test"), r"'it\'s a \\ test'");
        assert_eq!(yaml_string("a \"b\" \\ c\n"), r#""a \"b\" \\ c\n""#);
    }

    proptest! {
        #[test]
        fn sql_strings_never_break_out(text in ".*") {
            let quoted = sql_string(&text);
            // Strip escapes; no unescaped quote may remain inside.
            let inner = &quoted[1..quoted.len() - 1];
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => { prop_assert!(chars.next().is_some()); }
                    '\'' => prop_assert!(false, "unescaped quote in {quoted}"),
                    _ => {}
                }
            }
        }

        #[test]
        fn yaml_strings_are_json_strings(text in "\\PC*") {
            let quoted = yaml_string(&text);
            let back: String = serde_json::from_str(&quoted).unwrap();
            prop_assert_eq!(back, text);
        }

        #[test]
        fn comments_fit_glue(text in ".{0,400}") {
            let comment = clean_comment(&text);
            prop_assert!(comment.chars().count() <= MAX_COMMENT_CHARS);
            prop_assert!(!comment.chars().any(char::is_control));
        }
    }
}
