//! SQL over the Parquet lake with DataFusion: one table per event type plus the `events` view.
//!
//! A [`QuerySession`] is built over a [`Lake`] handle (the same one the lake writer writes
//! through: `sluice_lake::Lake::open` is the only reading of a lake URL). It registers
//! [`Lake::store`] with DataFusion under the lake URL's scheme and host, and for each event type
//! `<t>` of the registry a listing table `<t>` over [`layout::table_dir`] under the lake root, whose
//! columns are [`EventType::arrow_schema`] (the writer's schema) followed by the Hive partition
//! columns `dt` and `hour` (both `Utf8`). Files written with an older schema version lack the
//! newer nullable columns, which read as NULL. A filter on `dt`/`hour` prunes whole directories
//! before any file is opened.
//!
//! The view `events` is `UNION ALL` of the envelope columns (plus `dt`, `hour`) of every table.
//!
//! Nested columns. An object field is a struct column, read with a dot, brackets or
//! `get_field`: `context.country`, `context['country']`, `get_field(context, 'country')` (e.g.
//! `SELECT context.country, count(*) FROM order_placed GROUP BY 1`). An array field is a list
//! column: `items[1]['sku']` (1-based), `cardinality(items)`, and `unnest(items)` in the select
//! list, one row per element, whose struct fields are again read with a dot:
//!
//! ```sql
//! SELECT i.sku, sum(i.qty) FROM (SELECT unnest(items) AS i FROM order_placed) GROUP BY 1
//! ```
//!
//! Athena's spelling of the same query, `FROM order_placed CROSS JOIN UNNEST(items) AS t(i)`, is
//! a lateral join that DataFusion does not execute; it fails as [`QueryError::InvalidQuery`]
//! naming the form above.
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
use sluice_lake::{Lake, layout};
use sluice_schemas::{ENVELOPE_COLUMNS, EventType, Registry};

use crate::format::{OutputFormat, format_batches};

/// Name of the view over the envelope columns of all event types.
pub const EVENTS_VIEW: &str = "events";

/// The Hive partition columns below `event_type=<t>/`, in path order (see [`layout`]).
const PARTITION_COLUMNS: [&str; 2] = ["dt", "hour"];

/// Why a query could not be answered, named for what the caller can do.
///
/// Each variant's message is complete (it includes DataFusion's or Arrow's message), so the
/// inner error is not also reported as its `source`: printing the chain shows it once.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// An event type cannot be exposed as a table (e.g. it is named like the `events` view):
    /// rename the event type.
    #[error("event type {event_type:?} cannot be a table: {reason}")]
    InvalidEventType { event_type: String, reason: String },
    /// The SQL does not parse or plan (unknown table/column, syntax, not read-only, a construct
    /// DataFusion does not implement): fix the query.
    #[error("invalid query: {0}")]
    InvalidQuery(Box<DataFusionError>),
    /// The query planned but failed while reading the lake (storage, corrupt or mismatched
    /// files): retry, or fix the files it names.
    #[error("query failed: {0}")]
    Execution(Box<DataFusionError>),
    /// The result could not be rendered in the requested format.
    #[error("cannot format the result: {0}")]
    Format(arrow::error::ArrowError),
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

/// A lake opened for SQL: a DataFusion session with the event tables and the `events` view, over
/// one [`Lake`] handle.
pub struct QuerySession {
    ctx: SessionContext,
    lake: Lake,
    tables: Vec<String>,
}

impl std::fmt::Debug for QuerySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuerySession")
            .field("lake", &self.lake.url().as_str())
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl QuerySession {
    /// Registers `lake` for every event type of `registry`. Does no I/O: a missing event type
    /// directory is an empty table, and storage errors surface when a query runs.
    pub async fn open(lake: &Lake, registry: &Registry) -> Result<QuerySession, QueryError> {
        let config =
            SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema("sluice", "lake");
        let ctx = SessionContext::new_with_config(config);
        // DataFusion picks a store by the table URL's scheme and host: the lake URL's are the
        // lake's store (for `file://` an equivalent of DataFusion's own local store).
        ctx.register_object_store(lake.url(), Arc::clone(lake.store()));

        let mut tables = Vec::new();
        for event_type in registry.event_types() {
            register_table(&ctx, lake, event_type)?;
            tables.push(event_type.name.clone());
        }

        let setup = |e: DataFusionError, event_type: &str| QueryError::InvalidEventType {
            event_type: event_type.to_owned(),
            reason: e.to_string(),
        };
        let columns: Vec<&str> = ENVELOPE_COLUMNS.iter().copied().chain(PARTITION_COLUMNS).collect();
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
        Ok(QuerySession { ctx, lake: lake.clone(), tables })
    }

    /// The lake the session reads.
    pub fn lake(&self) -> &Lake {
        &self.lake
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
        let batches = df.collect().await.map_err(|e| execution_error(sql, e))?;
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
        let plan = self.plan(sql).await?.create_physical_plan().await.map_err(|e| execution_error(sql, e))?;
        let mut files = Vec::new();
        collect_files(&plan, &mut files);
        files.sort();
        Ok(files)
    }
}

/// What to write instead of a lateral `CROSS JOIN UNNEST(...)`.
const LATERAL_UNNEST_HINT: &str = "DataFusion cannot unnest a column of another table in the FROM clause (Athena's \
     `FROM order_placed CROSS JOIN UNNEST(items) AS t(i)`); unnest in the select list instead, e.g. \
     `SELECT i.sku, sum(i.qty) FROM (SELECT unnest(items) AS i FROM order_placed) GROUP BY 1`";

/// The error of a query that planned: a construct DataFusion does not implement (found while
/// building the physical plan) is the query's to fix, anything else a failure reading the lake.
fn execution_error(sql: &str, e: DataFusionError) -> QueryError {
    if !matches!(e.find_root(), DataFusionError::NotImplemented(_)) {
        return QueryError::Execution(Box::new(e));
    }
    let lateral_unnest = sql.to_ascii_lowercase().contains("unnest") && e.to_string().contains("OuterReferenceColumn");
    QueryError::InvalidQuery(Box::new(if lateral_unnest { e.context(LATERAL_UNNEST_HINT) } else { e }))
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

/// Registers the listing table of `event_type`: its [`layout::table_dir`] under the lake root.
fn register_table(ctx: &SessionContext, lake: &Lake, event_type: &EventType) -> Result<(), QueryError> {
    let name = event_type.name.as_str();
    let invalid = |reason: String| QueryError::InvalidEventType { event_type: name.to_owned(), reason };
    if name == EVENTS_VIEW {
        return Err(invalid(format!("`{EVENTS_VIEW}` is the view over all event types")));
    }
    let dir = lake.url().join(&format!("{}/", layout::table_dir(name))).map_err(|e| invalid(e.to_string()))?;
    let table_url = ListingTableUrl::parse(dir.as_str()).map_err(|e| invalid(e.to_string()))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(layout::PARQUET_EXTENSION)
        .with_table_partition_cols(PARTITION_COLUMNS.iter().map(|c| ((*c).to_owned(), DataType::Utf8)).collect());
    let config =
        ListingTableConfig::new(table_url).with_listing_options(options).with_schema(event_type.arrow_schema());
    let table = ListingTable::try_new(config).map_err(|e| invalid(e.to_string()))?;
    ctx.register_table(name, Arc::new(table)).map_err(|e| invalid(e.to_string()))?;
    Ok(())
}

/// `sluice query`: runs one read-only `sql` statement over `lake` and renders the result in
/// `format`.
pub async fn query(lake: &Lake, registry: &Registry, sql: &str, format: OutputFormat) -> Result<String, QueryError> {
    QuerySession::open(lake, registry).await?.sql(sql).await?.format(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_an_empty_lake_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::builtin().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
        let lake = QuerySession::open(&lake, &registry).await.unwrap();
        assert_eq!(lake.tables(), ["api_call", "order_placed", "page_view", "purchase"]);
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
        for name in ["api_call", "order_placed", "page_view", "purchase", "events"] {
            assert!(listed.contains(&format!(",{name},")), "{listed}");
        }
        let described = lake.sql("DESCRIBE page_view").await.unwrap();
        assert_eq!(described.num_rows(), 16 + 2);
        lake.sql("EXPLAIN SELECT count(*) FROM events WHERE dt = '2024-01-01'").await.unwrap();
    }
}
