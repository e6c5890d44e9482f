//! Test lakes: deterministic rows for every event type, written as Parquet in the documented
//! layout `<lake>/events/event_type=<t>/dt=YYYY-MM-DD/hour=HH/<file>.parquet`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListArray, StringBuilder,
    StructArray, TimestampMicrosecondBuilder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sluice_schemas::{EventType, Registry};

pub fn registry() -> Registry {
    Registry::builtin().unwrap()
}

/// splitmix64: a tiny deterministic generator (no dependency, same data every run).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub const COUNTRIES: &[&str] = &["US", "DE", "FR", "JP", "BR"];
const DEVICES: &[&str] = &["ios", "android", "web", "tv"];
const CURRENCIES: &[&str] = &["EUR", "USD", "JPY"];
pub const CHANNELS: &[&str] = &["web", "ios", "android", "pos"];
pub const SKUS: &[&str] = &["A-1", "B-2", "C-3", "D-4", "E-5", "F-6"];

/// One Parquet file of the test lake.
#[derive(Debug, Clone)]
pub struct FileSpec {
    pub event_type: String,
    pub dt: String,
    pub hour: u32,
    pub name: String,
    pub rows: usize,
    pub seed: u64,
    /// Write with the schema of this version's fields only (an older file); `None` = latest.
    pub version: Option<u32>,
}

impl FileSpec {
    /// Path relative to the lake root, as the layout documents it.
    pub fn path(&self) -> String {
        format!("events/event_type={}/dt={}/hour={:02}/{}.parquet", self.event_type, self.dt, self.hour, self.name)
    }
}

/// The standard test lake: every event type in three partitions over two days, two files each,
/// plus, for event types with several versions, one file written with the v1 schema.
pub fn standard_files(registry: &Registry) -> Vec<FileSpec> {
    let partitions = [("2024-03-01", 0), ("2024-03-01", 13), ("2024-03-02", 23)];
    let mut files = Vec::new();
    let mut seed = 1;
    for event_type in registry.event_types() {
        for (dt, hour) in partitions {
            for part in 0..2 {
                seed += 1;
                files.push(FileSpec {
                    event_type: event_type.name.clone(),
                    dt: dt.into(),
                    hour,
                    name: format!("shardId-00000000000{part}-{seed}00-{seed}99"),
                    rows: 40 + (seed as usize * 7) % 50,
                    seed,
                    version: None,
                });
            }
        }
        if event_type.versions.len() > 1 {
            seed += 1;
            files.push(FileSpec {
                event_type: event_type.name.clone(),
                dt: "2024-03-01".into(),
                hour: 13,
                name: "old-v1-writer".into(),
                rows: 25,
                seed,
                version: Some(1),
            });
        }
    }
    files
}

/// The lake schema of `event_type` as a writer of `version` produced it: the latest schema
/// minus the columns that version does not have.
pub fn schema_of(event_type: &EventType, version: Option<u32>) -> SchemaRef {
    let full = event_type.arrow_schema();
    let Some(v) = version else { return full };
    let old = event_type.version(v).unwrap();
    let fields: Vec<_> = full
        .fields()
        .iter()
        .filter(|f| sluice_schemas::ENVELOPE_COLUMNS.contains(&f.name().as_str()) || old.field(f.name()).is_some())
        .cloned()
        .collect();
    Arc::new(Schema::new(fields))
}

/// Deterministic rows for one file.
pub fn batch(event_type: &EventType, spec: &FileSpec) -> RecordBatch {
    let schema = schema_of(event_type, spec.version);
    let mut rng = Rng::new(spec.seed);
    let base_us = {
        let day: i64 = match spec.dt.as_str() {
            "2024-03-01" => 19_783,
            "2024-03-02" => 19_784,
            other => panic!("add the epoch day of {other}"),
        };
        (day * 86_400 + i64::from(spec.hour) * 3_600) * 1_000_000
    };
    let version = spec.version.unwrap_or_else(|| event_type.latest().unwrap().version);
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| -> ArrayRef {
            let name = field.name().as_str();
            match field.data_type() {
                DataType::Utf8 => {
                    let mut b = StringBuilder::new();
                    for i in 0..spec.rows {
                        let value = match name {
                            "event_id" => Some(format!("{}-{}-{i}", event_type.name, spec.seed)),
                            "event_type" => Some(event_type.name.clone()),
                            "producer" => Some("tests".into()),
                            "shard_id" => Some("shardId-000000000000".into()),
                            "sequence_number" => Some(format!("{:056}", spec.seed * 1000 + i as u64)),
                            "country" => Some(COUNTRIES[rng.below(5) as usize].into()),
                            "device" => Some(DEVICES[rng.below(4) as usize].into()),
                            "currency" => Some(CURRENCIES[rng.below(3) as usize].into()),
                            _ if field.is_nullable() && rng.below(4) == 0 => None,
                            _ => Some(format!("{name}-{}", rng.below(1000))),
                        };
                        b.append_option(value);
                    }
                    Arc::new(b.finish())
                }
                DataType::Int32 => {
                    let mut b = Int32Builder::new();
                    for _ in 0..spec.rows {
                        b.append_value(i32::try_from(version).unwrap());
                    }
                    Arc::new(b.finish())
                }
                DataType::Int64 => {
                    let mut b = Int64Builder::new();
                    for _ in 0..spec.rows {
                        b.append_value(100 + rng.below(500) as i64);
                    }
                    Arc::new(b.finish())
                }
                DataType::Float64 => {
                    let mut b = Float64Builder::new();
                    for _ in 0..spec.rows {
                        b.append_value(rng.below(100_000) as f64 / 8.0);
                    }
                    Arc::new(b.finish())
                }
                DataType::Boolean => {
                    let mut b = BooleanBuilder::new();
                    for _ in 0..spec.rows {
                        b.append_value(rng.below(2) == 0);
                    }
                    Arc::new(b.finish())
                }
                DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => {
                    let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
                    for i in 0..spec.rows {
                        let offset = (i as i64 * 3_600_000_000) / spec.rows as i64;
                        let lag = if name == "received_at" { 1_500_000 } else { 0 };
                        b.append_value(base_us + offset + lag);
                    }
                    Arc::new(b.finish())
                }
                DataType::Struct(_) | DataType::List(_) => nested(field, spec.rows, &mut rng),
                other => panic!("no generator for {name}: {other}"),
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

/// `len` deterministic values of a data field at any depth (struct and list columns of nested
/// types such as `order_placed`): a nullable field is NULL about once in six; a list has one
/// to three elements (so every `order_placed.items` is valid: `minItems` 1).
fn nested(field: &Field, len: usize, rng: &mut Rng) -> ArrayRef {
    let nulls = field.is_nullable().then(|| NullBuffer::from_iter((0..len).map(|_| rng.below(6) != 0)));
    let valid = |i: usize| nulls.as_ref().is_none_or(|n| n.is_valid(i));
    let name = field.name().as_str();
    match field.data_type() {
        DataType::Utf8 => {
            let mut b = StringBuilder::new();
            for i in 0..len {
                b.append_option(valid(i).then(|| match name {
                    "country" => COUNTRIES[rng.below(5) as usize].to_owned(),
                    "channel" => CHANNELS[rng.below(4) as usize].to_owned(),
                    "sku" => SKUS[rng.below(SKUS.len() as u64) as usize].to_owned(),
                    _ => format!("{name}-{}", rng.below(1000)),
                }));
            }
            Arc::new(b.finish())
        }
        DataType::Int64 => {
            let mut b = Int64Builder::new();
            for i in 0..len {
                b.append_option(valid(i).then(|| 1 + rng.below(5) as i64));
            }
            Arc::new(b.finish())
        }
        DataType::Float64 => {
            let mut b = Float64Builder::new();
            for i in 0..len {
                b.append_option(valid(i).then(|| rng.below(100_000) as f64 / 8.0));
            }
            Arc::new(b.finish())
        }
        DataType::Boolean => {
            let mut b = BooleanBuilder::new();
            for i in 0..len {
                b.append_option(valid(i).then(|| rng.below(2) == 0));
            }
            Arc::new(b.finish())
        }
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => {
            let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
            for i in 0..len {
                b.append_option(valid(i).then(|| 1_709_251_200_000_000 + rng.below(86_400_000_000) as i64));
            }
            Arc::new(b.finish())
        }
        DataType::Struct(fields) => {
            let children = fields.iter().map(|child| nested(child, len, rng)).collect();
            Arc::new(StructArray::try_new(fields.clone(), children, nulls).unwrap())
        }
        DataType::List(element) => {
            let lengths: Vec<usize> = (0..len).map(|i| if valid(i) { 1 + rng.below(3) as usize } else { 0 }).collect();
            let values = nested(element, lengths.iter().sum(), rng);
            Arc::new(ListArray::try_new(element.clone(), OffsetBuffer::from_lengths(lengths), values, nulls).unwrap())
        }
        other => panic!("no generator for {name}: {other}"),
    }
}

/// A batch as a zstd Parquet file (microsecond UTC timestamps, as the lake writer produces).
pub fn parquet_bytes(batch: &RecordBatch) -> Vec<u8> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(32))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    out
}

/// What a test lake holds.
#[derive(Debug, Default)]
pub struct Expected {
    /// page_view rows per country.
    pub page_view_by_country: BTreeMap<String, i64>,
    /// rows per (event_type, dt, hour).
    pub rows_by_partition: BTreeMap<(String, String, String), i64>,
    /// file paths (relative to the lake root) per (event_type, dt, hour).
    pub files_by_partition: BTreeMap<(String, String, String), Vec<String>>,
    /// order_placed rows per `context.country`.
    pub orders_by_country: BTreeMap<String, i64>,
    /// order_placed: the sum of `qty` over every element of `items`, per `sku`.
    pub qty_by_sku: BTreeMap<String, i64>,
}

impl Expected {
    /// Adds what an `order_placed` batch holds, read from its arrays.
    fn add_orders(&mut self, batch: &RecordBatch) {
        let context = batch.column_by_name("context").unwrap().as_struct();
        let countries = context.column_by_name("country").unwrap().as_string::<i32>();
        for country in countries.iter() {
            *self.orders_by_country.entry(country.unwrap().to_owned()).or_default() += 1;
        }
        let items = batch.column_by_name("items").unwrap().as_list::<i32>();
        for row in 0..items.len() {
            let item = items.value(row);
            let item = item.as_struct();
            let skus = item.column_by_name("sku").unwrap().as_string::<i32>();
            let qty = item.column_by_name("qty").unwrap().as_primitive::<Int64Type>();
            for i in 0..item.len() {
                *self.qty_by_sku.entry(skus.value(i).to_owned()).or_default() += qty.value(i);
            }
        }
    }
}

/// Writes `files` into `store` under `prefix` and returns what they hold.
pub async fn write_lake(store: &dyn ObjectStore, prefix: &str, registry: &Registry, files: &[FileSpec]) -> Expected {
    let mut expected = Expected::default();
    for spec in files {
        let event_type = registry.get(&spec.event_type).unwrap();
        let batch = batch(event_type, spec);
        if spec.event_type == "page_view" {
            let countries =
                batch.column_by_name("country").unwrap().as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
            for country in countries.iter() {
                *expected.page_view_by_country.entry(country.unwrap().to_owned()).or_default() += 1;
            }
        }
        if spec.event_type == "order_placed" {
            expected.add_orders(&batch);
        }
        let key = (spec.event_type.clone(), spec.dt.clone(), format!("{:02}", spec.hour));
        *expected.rows_by_partition.entry(key.clone()).or_default() += batch.num_rows() as i64;
        expected.files_by_partition.entry(key).or_default().push(spec.path());
        let path = Path::from(format!("{prefix}{}", spec.path()));
        store.put(&path, parquet_bytes(&batch).into()).await.unwrap();
    }
    expected
}

/// A local lake in a temp dir with the standard files.
pub async fn local_lake() -> (tempfile::TempDir, Expected) {
    let dir = tempfile::tempdir().unwrap();
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let registry = registry();
    let expected = write_lake(&store, "", &registry, &standard_files(&registry)).await;
    (dir, expected)
}

/// The lake at `location`, opened as every component opens it.
pub fn lake(location: &str) -> sluice_lake::Lake {
    sluice_lake::Lake::open(location, &Default::default()).unwrap()
}

pub fn lake_url(dir: &tempfile::TempDir) -> String {
    lake_url_of(dir.path())
}

pub fn lake_url_of(dir: &std::path::Path) -> String {
    url::Url::from_directory_path(dir).unwrap().to_string()
}

/// Runs `script` with `$SLUICE_PYTHON`, extra args after it; returns stdout.
pub fn run_python(python: &str, script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(out.status.success(), "{python} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
