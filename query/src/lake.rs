//! SQL over the Parquet lake with DataFusion: one table per event type plus the `events` view.
//!
//! Layout (written by `sluice_sinks`): `<lake>/events/event_type=<t>/dt=YYYY-MM-DD/hour=HH/*.parquet`.
//! For each event type `<t>` of the registry, [`Lake::open`] registers a listing table `<t>` over
//! `<lake>/events/event_type=<t>/` whose columns are [`EventType::arrow_schema`] (the writer's
//! schema) followed by the Hive partition columns `dt` and `hour` (both `Utf8`). Files written
//! with an older schema version lack the newer nullable columns, which read as NULL. A filter on
//! `dt`/`hour` prunes whole directories before any file is opened.
//!
//! The view `events` is `UNION ALL` of the envelope columns (plus `dt`, `hour`) of every table.
//!
//! Queries are read-only: DDL, DML (`INSERT`, `COPY`) and `SET` statements are refused, so
//! `sluice query` can never change the lake.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::physical_plan::ExecutionPlan;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use sluice_schemas::{ENVELOPE_COLUMNS, Registry};
use url::Url;

use crate::format::{OutputFormat, format_batches};

/// Name of the view over the envelope columns of all event types.
pub const EVENTS_VIEW: &str = "events";

/// Why a query could not be answered, named for what the caller can do.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The lake URL is not `file://`, `s3://` or a local path: fix `--lake`.
    #[error("invalid lake URL {url:?}: {reason}")]
    InvalidLakeUrl { url: String, reason: String },
    /// The AWS settings in the environment are invalid: fix them.
    #[error(transparent)]
    Settings(#[from] sluice_aws::SettingsError),
    /// The object store for the lake could not be configured: fix the S3 settings.
    #[error("cannot configure the lake's object store: {0}")]
    Store(#[source] object_store::Error),
    /// An event type cannot be exposed as a table (e.g. it is named like the `events` view):
    /// rename the event type.
    #[error("event type {event_type:?} cannot be a table: {reason}")]
    InvalidEventType { event_type: String, reason: String },
    /// The SQL does not parse or plan (unknown table/column, syntax, not read-only): fix the query.
    #[error("invalid query: {0}")]
    InvalidQuery(#[source] Box<DataFusionError>),
    /// The query planned but failed while reading the lake (storage, corrupt or mismatched
    /// files): retry, or fix the files it names.
    #[error("query failed: {0}")]
    Execution(#[source] Box<DataFusionError>),
    /// The result could not be rendered in the requested format.
    #[error("cannot format the result: {0}")]
    Format(#[source] arrow::error::ArrowError),
}

/// How `s3://` lakes are reached. Built once at the edge (see [`S3Config::from_settings`]) and
/// passed in; ignored for `file://` lakes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// Region; `None` = object_store's `AWS_REGION` / `AWS_DEFAULT_REGION` (default us-east-1).
    pub region: Option<String>,
    /// Endpoint of an AWS-compatible server (moto in tests). Implies path-style requests; plain
    /// `http://` is allowed for it.
    pub endpoint: Option<Url>,
    /// Static credentials; `None` = object_store's chain (`AWS_ACCESS_KEY_ID`/`..SECRET..`/
    /// `AWS_SESSION_TOKEN`, web identity, container or instance credentials).
    pub credentials: Option<StaticCredentials>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint.as_ref().map(Url::as_str))
            .field("credentials", &self.credentials.as_ref().map(|_| "<static>"))
            .finish()
    }
}

/// An access key pair (and optional session token) for [`S3Config`].
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl S3Config {
    /// Region and endpoint from the shared AWS settings (`AWS_REGION`, `AWS_ENDPOINT_URL`, ...);
    /// credentials from object_store's environment chain.
    pub fn from_settings(settings: &sluice_aws::AwsSettings) -> Self {
        Self { region: settings.region.clone(), endpoint: settings.endpoint_url.clone(), credentials: None }
    }

    /// The object store of one bucket, configured as [`Lake::open`] uses it.
    pub fn object_store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, QueryError> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint.as_str().trim_end_matches('/'))
                .with_allow_http(endpoint.scheme() == "http")
                .with_virtual_hosted_style_request(false);
        }
        if let Some(credentials) = &self.credentials {
            builder = builder
                .with_access_key_id(&credentials.access_key_id)
                .with_secret_access_key(&credentials.secret_access_key);
            if let Some(token) = &credentials.session_token {
                builder = builder.with_token(token);
            }
        }
        Ok(Arc::new(builder.build().map_err(QueryError::Store)?))
    }
}

/// Parses a lake location: `file:///abs/dir`, `s3://bucket[/prefix]`, or a local directory path
/// (relative paths resolve against the current directory). The result always ends in `/`.
pub fn parse_lake_url(location: &str) -> Result<Url, QueryError> {
    let invalid = |reason: &str| QueryError::InvalidLakeUrl { url: location.to_owned(), reason: reason.to_owned() };
    let mut url = if location.contains("://") {
        Url::parse(location).map_err(|e| invalid(&e.to_string()))?
    } else {
        if location.is_empty() {
            return Err(invalid("empty path"));
        }
        let path = std::path::absolute(location).map_err(|e| invalid(&e.to_string()))?;
        Url::from_directory_path(&path).map_err(|()| invalid("not representable as a file:// URL"))?
    };
    match url.scheme() {
        "file" => {
            if url.host_str().is_some_and(|h| !h.is_empty() && h != "localhost") {
                return Err(invalid("a file:// URL must not name a host (use file:///abs/path)"));
            }
        }
        "s3" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(invalid("an s3:// URL needs a bucket (s3://bucket[/prefix])"));
            }
        }
        other => {
            return Err(invalid(&format!("unsupported scheme `{other}` (use file://, s3:// or a directory path)")));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a lake URL has no query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The rows and schema of a query result.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Renders the result (see [`format_batches`]).
    pub fn format(&self, format: OutputFormat) -> Result<String, QueryError> {
        format_batches(&self.schema, &self.batches, format)
    }
}

/// A lake opened for SQL: a DataFusion session with the event tables and the `events` view.
pub struct Lake {
    ctx: SessionContext,
    root: Url,
    tables: Vec<String>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("root", &self.root.as_str()).field("tables", &self.tables).finish_non_exhaustive()
    }
}

impl Lake {
    /// Registers the lake at `location` (see [`parse_lake_url`]) for every event type of
    /// `registry`. Does no I/O: a missing event type directory is an empty table, and storage
    /// errors surface when a query runs.
    pub async fn open(location: &str, registry: &Registry, s3: &S3Config) -> Result<Lake, QueryError> {
        let root = parse_lake_url(location)?;
        let config =
            SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema("sluice", "lake");
        let ctx = SessionContext::new_with_config(config);
        if root.scheme() == "s3" {
            let bucket = root.host_str().unwrap_or_default();
            let store_url = Url::parse(&format!("s3://{bucket}"))
                .map_err(|e| QueryError::InvalidLakeUrl { url: location.to_owned(), reason: e.to_string() })?;
            ctx.register_object_store(&store_url, s3.object_store(bucket)?);
        }

        let setup = |e: DataFusionError, event_type: &str| QueryError::InvalidEventType {
            event_type: event_type.to_owned(),
            reason: e.to_string(),
        };
        let mut tables = Vec::new();
        for event_type in registry.event_types() {
            let name = event_type.name.as_str();
            if name == EVENTS_VIEW {
                return Err(QueryError::InvalidEventType {
                    event_type: name.to_owned(),
                    reason: format!("`{EVENTS_VIEW}` is the view over all event types"),
                });
            }
            let dir = root
                .join(&format!("events/event_type={name}/"))
                .map_err(|e| QueryError::InvalidLakeUrl { url: location.to_owned(), reason: e.to_string() })?;
            let table_url = ListingTableUrl::parse(dir.as_str()).map_err(|e| setup(e, name))?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(vec![
                    ("dt".to_owned(), DataType::Utf8),
                    ("hour".to_owned(), DataType::Utf8),
                ]);
            let config =
                ListingTableConfig::new(table_url).with_listing_options(options).with_schema(event_type.arrow_schema());
            let table = ListingTable::try_new(config).map_err(|e| setup(e, name))?;
            ctx.register_table(name, Arc::new(table)).map_err(|e| setup(e, name))?;
            tables.push(name.to_owned());
        }

        let columns: Vec<&str> = ENVELOPE_COLUMNS.iter().copied().chain(["dt", "hour"]).collect();
        let mut view: Option<datafusion::dataframe::DataFrame> = None;
        for name in &tables {
            let part = ctx
                .table(name.as_str())
                .await
                .and_then(|df| df.select_columns(&columns))
                .map_err(|e| setup(e, name))?;
            view = Some(match view {
                None => part,
                Some(acc) => acc.union(part).map_err(|e| setup(e, name))?,
            });
        }
        if let Some(view) = view {
            ctx.register_table(EVENTS_VIEW, view.into_view()).map_err(|e| setup(e, EVENTS_VIEW))?;
        }
        Ok(Lake { ctx, root, tables })
    }

    /// The lake root (ends in `/`).
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The event tables, by name (the view [`EVENTS_VIEW`] is not listed).
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// The DataFusion session (for callers that need more than SQL text).
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    async fn plan(&self, sql: &str) -> Result<datafusion::dataframe::DataFrame, QueryError> {
        let read_only = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        self.ctx.sql_with_options(sql, read_only).await.map_err(|e| QueryError::InvalidQuery(Box::new(e)))
    }

    /// Runs one read-only SQL statement and collects the result.
    pub async fn sql(&self, sql: &str) -> Result<QueryResult, QueryError> {
        let df = self.plan(sql).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(|e| QueryError::Execution(Box::new(e)))?;
        Ok(QueryResult { schema, batches })
    }

    /// Runs one read-only SQL statement; the record batches of its result.
    pub async fn run(&self, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        Ok(self.sql(sql).await?.batches)
    }

    /// The files the query's plan scans after partition pruning (object store paths, sorted),
    /// without running it. Planning lists the surviving partitions and reads those files'
    /// footers (statistics); a query answered from statistics alone (e.g. a bare `count(*)`)
    /// scans no file and returns an empty list.
    pub async fn files_to_scan(&self, sql: &str) -> Result<Vec<String>, QueryError> {
        let plan =
            self.plan(sql).await?.create_physical_plan().await.map_err(|e| QueryError::Execution(Box::new(e)))?;
        let mut files = Vec::new();
        collect_files(&plan, &mut files);
        files.sort();
        Ok(files)
    }
}

fn collect_files(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<String>) {
    if let Some(scan) =
        plan.downcast_ref::<DataSourceExec>().and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
    {
        for group in &scan.file_groups {
            out.extend(group.iter().map(|f| f.object_meta.location.to_string()));
        }
    }
    for child in plan.children() {
        collect_files(child, out);
    }
}

/// `sluice query`: opens the lake at `lake_url` (S3 settings from the environment: `AWS_REGION`,
/// `AWS_ENDPOINT_URL`, credentials chain), runs one read-only `sql` statement and renders the
/// result in `format`.
pub async fn query(lake_url: &str, registry: &Registry, sql: &str, format: OutputFormat) -> Result<String, QueryError> {
    // Only an s3:// lake needs (and so may fail on) the AWS settings.
    let s3 = if parse_lake_url(lake_url)?.scheme() == "s3" {
        S3Config::from_settings(&sluice_aws::AwsSettings::from_env()?)
    } else {
        S3Config::default()
    };
    Lake::open(lake_url, registry, &s3).await?.sql(sql).await?.format(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lake_urls() {
        let ok = [
            ("s3://bucket", "s3://bucket/"),
            ("s3://bucket/", "s3://bucket/"),
            ("s3://bucket/some/prefix", "s3://bucket/some/prefix/"),
            ("file:///tmp/lake", "file:///tmp/lake/"),
            ("file:///tmp/lake/", "file:///tmp/lake/"),
            ("/tmp/lake", "file:///tmp/lake/"),
        ];
        for (input, expected) in ok {
            assert_eq!(parse_lake_url(input).unwrap().as_str(), expected, "{input}");
        }
        let relative = parse_lake_url("lake").unwrap();
        assert_eq!(relative.scheme(), "file");
        assert!(relative.path().ends_with("/lake/"), "{relative}");
        for bad in
            ["", "s3://", "http://example.com/lake", "memory:///", "file://host/tmp", "s3://b/p?x=1", "not a url://x"]
        {
            assert!(matches!(parse_lake_url(bad), Err(QueryError::InvalidLakeUrl { .. })), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn lake_url_parsing_never_panics(input in "\\PC{0,40}", scheme in "(s3|file|http)://") {
            for candidate in [input.clone(), format!("{scheme}{input}")] {
                if let Ok(url) = parse_lake_url(&candidate) {
                    proptest::prop_assert!(url.path().ends_with('/'));
                    proptest::prop_assert!(matches!(url.scheme(), "s3" | "file"));
                }
            }
        }
    }

    #[test]
    fn s3_config_debug_hides_the_secret() {
        let config = S3Config {
            region: Some("us-east-1".into()),
            endpoint: None,
            credentials: Some(StaticCredentials {
                access_key_id: "AKIA".into(),
                secret_access_key: "very-secret".into(),
                session_token: None,
            }),
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret") && !debug.contains("AKIA"), "{debug}");
    }

    #[tokio::test]
    async fn opens_an_empty_lake_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::builtin().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap(), &registry, &S3Config::default()).await.unwrap();
        assert_eq!(lake.tables(), ["api_call", "page_view", "purchase"]);
        let result = lake.sql("SELECT count(*) AS n FROM events").await.unwrap();
        assert_eq!(result.num_rows(), 1);
        for sql in [
            "CREATE TABLE t AS SELECT 1",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "INSERT INTO page_view SELECT * FROM page_view",
            "SET datafusion.execution.batch_size = 1",
            "DROP TABLE page_view",
        ] {
            assert!(matches!(lake.sql(sql).await, Err(QueryError::InvalidQuery(_))), "{sql}");
        }
        assert!(matches!(lake.sql("SELECT * FROM nope").await, Err(QueryError::InvalidQuery(_))));
        // Read-only introspection stays available.
        let tables = lake.sql("SHOW TABLES").await.unwrap();
        let listed = tables.format(OutputFormat::Csv).unwrap();
        for name in ["api_call", "page_view", "purchase", "events"] {
            assert!(listed.contains(&format!(",{name},")), "{listed}");
        }
        let described = lake.sql("DESCRIBE page_view").await.unwrap();
        assert_eq!(described.num_rows(), 16 + 2);
        lake.sql("EXPLAIN SELECT count(*) FROM events WHERE dt = '2024-01-01'").await.unwrap();
    }
}
