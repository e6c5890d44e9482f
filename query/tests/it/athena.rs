//! The Athena/Glue side: the checked-in template.yaml block is current, and every column of the
//! Parquet files matches the table definitions (generated, checked in, and DDL).

use std::path::{Path, PathBuf};

use parquet::basic::{ConvertedType, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::Type as ParquetType;
use sluice_query::athena::{self, PARTITION_COLUMNS, TableDef};
use sluice_query::template::{self, BEGIN_MARKER, Check, END_MARKER, REGENERATE_COMMAND};
use sluice_schemas::Registry;
use sluice_schemas::arrow::LIST_ELEMENT;

use crate::support;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn checked_in_template() -> String {
    std::fs::read_to_string(workspace().join("template.yaml")).unwrap()
}

/// The registry gen-glue uses: the schema files on disk.
fn disk_registry() -> Registry {
    Registry::from_dir(&workspace().join("schemas")).unwrap()
}

#[test]
fn checked_in_glue_block_is_up_to_date() {
    let template = checked_in_template();
    let status = template::check(&template, &disk_registry()).unwrap();
    assert_eq!(
        status,
        Check::UpToDate,
        "template.yaml's generated Glue block is out of date with schemas/: run `{REGENERATE_COMMAND}`"
    );
    assert_eq!(template.matches(BEGIN_MARKER).count(), 1);
    assert_eq!(template.matches(END_MARKER).count(), 1);
}

/// One setting: the template's `LakeStart` parameter (default = the ingest default) reaches every
/// function as `SLUICE_LAKE_START` (what ingest and the handlers enforce) and starts every Glue
/// table's `dt` projection; `sluice athena-ddl` takes the same value from the registry.
#[test]
fn the_glue_projection_and_the_ingest_range_start_at_the_same_setting() {
    let template = checked_in_template();
    let parameter = athena::LAKE_START_PARAMETER;
    let declared = template.split(&format!("\n  {parameter}:\n")).nth(1).expect("a LakeStart parameter");
    let default = declared.lines().find_map(|l| l.trim().strip_prefix("Default: ")).unwrap();
    assert_eq!(default.trim_matches('"'), sluice_schemas::DEFAULT_LAKE_START);
    assert_eq!(sluice_schemas::EventTimeRange::default().lake_start.to_string(), sluice_schemas::DEFAULT_LAKE_START);
    let globals = template.split("\nGlobals:\n").nth(1).expect("a Globals section").split("\nResources:").next();
    assert!(
        globals.unwrap().contains(&format!("SLUICE_LAKE_START: !Ref {parameter}")),
        "every function gets SLUICE_LAKE_START from the parameter"
    );
    let ranges: Vec<&str> = template.lines().filter(|l| l.contains("projection.dt.range")).collect();
    assert_eq!(ranges.len(), disk_registry().event_types().len());
    for line in ranges {
        assert_eq!(line.trim(), format!("projection.dt.range: !Sub \"${{{parameter}}},NOW\""));
    }
    // The DDL follows the registry's range (sluice athena-ddl --lake-start).
    let start = sluice_schemas::envelope::parse_lake_start("2021-03-04").unwrap();
    let registry =
        disk_registry().with_event_time(sluice_schemas::EventTimeRange { lake_start: start, ..Default::default() });
    let ddl = sluice_query::athena_ddl(&registry, "s3://b", "db").unwrap();
    assert_eq!(ddl.matches("'projection.dt.range'='2021-03-04,NOW'").count(), registry.event_types().len());
}

#[test]
fn builtin_and_disk_schemas_give_the_same_tables() {
    assert_eq!(
        athena::table_definitions(&support::registry()).unwrap(),
        athena::table_definitions(&disk_registry()).unwrap()
    );
}

/// (name, Athena type) of every top-level column of a Parquet file, derived from the Parquet
/// schema tree alone (physical and logical types, groups, repetition; independent of the
/// generator's Arrow mapping), spelled as Glue spells types: a group annotated `LIST` in the
/// standard three-level layout (`<name> (LIST) { repeated group list { <element> } }`, the
/// element named [`LIST_ELEMENT`]) is `array<T>`, any other group `struct<name:T,...>`.
pub fn parquet_columns(path: &Path) -> Vec<(String, String)> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let root = reader.metadata().file_metadata().schema();
    root.get_fields().iter().map(|field| (field.name().to_owned(), athena_type(field, field.name()))).collect()
}

/// The Athena type of the Parquet field `field` at the column path `at`.
fn athena_type(field: &ParquetType, at: &str) -> String {
    let info = field.get_basic_info();
    assert_ne!(info.repetition(), Repetition::REPEATED, "{at}: a bare repeated field (Athena reads LIST groups)");
    if field.is_primitive() {
        return match (field.get_physical_type(), info.logical_type_ref()) {
            (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)) => "string",
            (PhysicalType::INT64, Some(LogicalType::Timestamp(t))) => {
                assert!(
                    matches!(t.unit, TimeUnit::MICROS),
                    "{at}: timestamps must be microseconds (Athena cannot read nanos)"
                );
                assert!(t.is_adjusted_to_u_t_c, "{at}: timestamps must be UTC");
                "timestamp"
            }
            (PhysicalType::INT64, None) => "bigint",
            (PhysicalType::INT64, Some(LogicalType::Integer(i))) if i.bit_width == 64 && i.is_signed => "bigint",
            (PhysicalType::INT32, None) => "int",
            (PhysicalType::INT32, Some(LogicalType::Integer(i))) if i.bit_width == 32 && i.is_signed => "int",
            (PhysicalType::DOUBLE, None) => "double",
            (PhysicalType::BOOLEAN, None) => "boolean",
            (physical, logical) => panic!("{at}: unexpected Parquet type {physical} {logical:?}"),
        }
        .to_owned();
    }
    let fields = field.get_fields();
    if matches!(info.logical_type_ref(), Some(LogicalType::List)) || info.converted_type() == ConvertedType::LIST {
        let [list] = fields else { panic!("{at}: a LIST group has one repeated child") };
        let list_info = list.get_basic_info();
        assert!(
            list.is_group() && list.name() == "list" && list_info.repetition() == Repetition::REPEATED,
            "{at}: not the standard three-level LIST layout"
        );
        let [element] = list.get_fields() else { panic!("{at}: the repeated `list` group has one child") };
        assert_eq!(element.name(), LIST_ELEMENT, "{at}: list element name");
        return format!("array<{}>", athena_type(element, &format!("{at}.{LIST_ELEMENT}")));
    }
    assert!(
        info.logical_type_ref().is_none() && info.converted_type() == ConvertedType::NONE,
        "{at}: unexpected group annotation {:?} / {:?}",
        info.logical_type_ref(),
        info.converted_type()
    );
    assert!(!fields.is_empty(), "{at}: an empty group");
    let members: Vec<String> =
        fields.iter().map(|f| format!("{}:{}", f.name(), athena_type(f, &format!("{at}.{}", f.name())))).collect();
    format!("struct<{}>", members.join(","))
}

fn def_columns(table: &TableDef) -> Vec<(String, String)> {
    table.columns.iter().map(|c| (c.name.clone(), c.hive_type.clone())).collect()
}

/// (name, type) of the `Columns` (or `PartitionKeys`) list of `table` in the checked-in
/// template, read line by line (the generator's fixed layout).
fn template_columns(template: &str, table: &str, list: &str) -> Vec<(String, String)> {
    let mut lines = template
        .lines()
        .skip_while(|l| l.trim() != format!("Name: {table}"))
        .skip(1)
        .skip_while(|l| l.trim() != format!("{list}:"))
        .skip(1);
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        let Some(name) = line.trim().strip_prefix("- Name: ") else {
            if line.trim().starts_with("Comment:") {
                continue;
            }
            break;
        };
        let ty = lines.next().unwrap().trim().strip_prefix("Type: ").unwrap();
        out.push((name.to_owned(), ty.to_owned()));
    }
    out
}

/// (name, type) of the columns or partition keys of `table` in the DDL.
fn ddl_columns(ddl: &str, table: &str, partitions: bool) -> Vec<(String, String)> {
    let start = ddl.find(&format!("`.`{table}` (")).unwrap_or_else(|| panic!("no CREATE TABLE for {table}"));
    let body = &ddl[start..];
    let body = if partitions { &body[body.find("PARTITIONED BY (").unwrap()..] } else { body };
    body.lines()
        .skip(1)
        .take_while(|l| l.starts_with("  `"))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next().unwrap().trim_matches('`').to_owned();
            let ty = parts.next().unwrap().trim_end_matches(',').to_owned();
            (name, ty)
        })
        .collect()
}

#[tokio::test]
async fn parquet_files_match_every_table_definition() {
    let (dir, expected) = support::local_lake().await;
    let registry = support::registry();
    let template = checked_in_template();
    let ddl = athena::athena_ddl(&registry, "s3://lake-bucket/prefix", "sluice").unwrap();
    let mut checked_files = 0;
    let mut nested_columns_checked = 0;
    for table in athena::table_definitions(&registry).unwrap() {
        let columns = def_columns(&table);
        assert_eq!(template_columns(&template, &table.name, "Columns"), columns);
        assert_eq!(ddl_columns(&ddl, &table.name, false), columns);
        let partition_keys = vec![("dt".to_owned(), "string".to_owned()), ("hour".to_owned(), "string".to_owned())];
        assert_eq!(template_columns(&template, &table.name, "PartitionKeys"), partition_keys);
        assert_eq!(ddl_columns(&ddl, &table.name, true), partition_keys);

        let files: Vec<&String> = expected
            .files_by_partition
            .iter()
            .filter(|((t, _, _), _)| *t == table.name)
            .flat_map(|(_, files)| files)
            .collect();
        assert!(!files.is_empty(), "{}: no files written", table.name);
        for file in files {
            let path = dir.path().join(file);
            // The path segments are the partition keys, in order.
            let segments: Vec<&str> = file.split('/').collect();
            assert_eq!(segments[1], format!("event_type={}", table.name));
            for (segment, key) in segments[2..4].iter().zip(PARTITION_COLUMNS) {
                assert!(segment.starts_with(&format!("{key}=")), "{file}");
            }
            let actual = parquet_columns(&path);
            if file.contains("old-v1-writer") {
                // An older writer: a prefix-compatible subset, every column typed as the table.
                for column in &actual {
                    assert!(columns.contains(column), "{file}: {column:?} not in the table");
                }
                assert!(actual.len() < columns.len(), "{file}: not an older schema");
            } else {
                assert_eq!(actual, columns, "{file}");
                nested_columns_checked += actual.iter().filter(|(_, t)| t.contains('<')).count();
            }
            checked_files += 1;
        }
    }
    assert_eq!(checked_files, support::standard_files(&registry).len());
    assert!(nested_columns_checked > 0, "order_placed's struct and array columns are among the checked ones");
}

/// The file check sees inside nested columns: a file whose struct lacks a field, or whose list
/// elements have another type, does not match the table.
#[test]
fn nested_column_types_are_compared_inside() {
    use arrow::datatypes::{DataType, Field, Fields, Schema};
    use std::sync::Arc;
    let table = athena::table_definition(support::registry().get("order_placed").unwrap()).unwrap();
    let want = def_columns(&table);
    let full = support::registry().get("order_placed").unwrap().arrow_schema();
    let dir = tempfile::tempdir().unwrap();
    let write = |schema: Arc<Schema>| -> Vec<(String, String)> {
        let path = dir.path().join("f.parquet");
        let batch = arrow::record_batch::RecordBatch::new_empty(schema);
        std::fs::write(&path, support::parquet_bytes(&batch)).unwrap();
        parquet_columns(&path)
    };
    assert_eq!(write(Arc::clone(&full)), want, "the lake schema itself matches");

    let replace = |name: &str, data_type: DataType| -> Arc<Schema> {
        let fields: Vec<Field> = full
            .fields()
            .iter()
            .map(|f| {
                if f.name() == name { Field::new(name, data_type.clone(), f.is_nullable()) } else { f.as_ref().clone() }
            })
            .collect();
        Arc::new(Schema::new(fields))
    };
    let short_context =
        Fields::from(vec![Field::new("country", DataType::Utf8, false), Field::new("channel", DataType::Utf8, false)]);
    let got = write(replace("context", DataType::Struct(short_context)));
    assert_ne!(got, want);
    assert!(got.contains(&("context".into(), "struct<country:string,channel:string>".into())), "{got:?}");

    let int_qty = Fields::from(vec![
        Field::new("sku", DataType::Utf8, false),
        Field::new("qty", DataType::Int32, false),
        Field::new("unit_price", DataType::Float64, false),
    ]);
    let items = DataType::List(Arc::new(Field::new(LIST_ELEMENT, DataType::Struct(int_qty), false)));
    let got = write(replace("items", items));
    assert_ne!(got, want);
    assert!(got.contains(&("items".into(), "array<struct<sku:string,qty:int,unit_price:double>>".into())), "{got:?}");
}

#[test]
fn ddl_names_database_location_and_projection() {
    let ddl = athena::athena_ddl(&support::registry(), "s3://lake-bucket", "sluice_prod").unwrap();
    for table in ["api_call", "order_placed", "page_view", "purchase"] {
        assert!(ddl.contains(&format!("CREATE EXTERNAL TABLE IF NOT EXISTS `sluice_prod`.`{table}` (")));
        assert!(ddl.contains(&format!("LOCATION 's3://lake-bucket/events/event_type={table}/'")));
        assert!(ddl.contains(&format!(
            "'storage.location.template'='s3://lake-bucket/events/event_type={table}/dt=${{dt}}/hour=${{hour}}/'"
        )));
    }
    assert!(ddl.contains("ROW FORMAT SERDE 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe'"));
}

/// cfn-lint over the checked-in template (installed on developer machines and by the test
/// command's requirements). Skips with a note when it is not installed and not required.
#[test]
fn template_passes_cfn_lint() {
    let template = workspace().join("template.yaml");
    let venv = workspace().join(".venv/bin/cfn-lint");
    let candidates = [venv.to_string_lossy().into_owned(), "cfn-lint".to_owned()];
    for lint in &candidates {
        match std::process::Command::new(lint).arg(&template).output() {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "cfn-lint template.yaml failed:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                return;
            }
            Err(_) => continue,
        }
    }
    let required = std::env::var("SLUICE_REQUIRE_MOTO").is_ok_and(|v| v.trim() == "1");
    assert!(!required, "cfn-lint is not installed but SLUICE_REQUIRE_MOTO=1");
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "skipped (no cfn-lint): template_passes_cfn_lint");
}
