//! sluice-query: SQL over the Parquet lake, and the Athena / Glue definitions of the same tables.
//!
//! The only crate that depends on DataFusion (so the Lambdas never build it).
//!
//! - [`lake`]: [`QuerySession`] (a DataFusion session with one table per event type and the
//!   `events` view, over a [`sluice_lake::Lake`]: every lake URL form the writer accepts) and
//!   [`query`], the `sluice query` entry point. Struct fields read as `context.country`, lists
//!   unnest in the select list:
//!   `SELECT i.sku, sum(i.qty) FROM (SELECT unnest(items) AS i FROM order_placed) GROUP BY 1`
//!   (see [`lake`] for every spelling).
//! - [`format`]: `--format table|csv|json` (struct and list values as JSON in JSON and CSV).
//! - [`athena`]: table definitions derived from the registry's Arrow schemas (nested columns as
//!   `struct<...>` / `array<...>` Hive types); [`athena_ddl`] (`sluice athena-ddl`) and the Glue
//!   resources for template.yaml.
//! - [`template`]: the generated block of template.yaml (`cargo run -p sluice-query --bin gen-glue`).
//!
//! ```no_run
//! # async fn cli() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = sluice_schemas::Registry::builtin()?;
//! // `sluice query "SQL" --format csv --lake file:///var/lib/sluice/lake`
//! let lake = sluice_lake::Lake::open("file:///var/lib/sluice/lake", &sluice_aws::AwsSettings::from_env()?)?;
//! let text = sluice_query::query(
//!     &lake,
//!     &registry,
//!     "SELECT country, count(*) FROM page_view WHERE dt = '2024-03-01' GROUP BY 1",
//!     "csv".parse()?,
//! )
//! .await?;
//! print!("{text}");
//! // `sluice athena-ddl --lake s3://my-lake-bucket --database sluice_prod`
//! print!("{}", sluice_query::athena_ddl(&registry, "s3://my-lake-bucket", "sluice_prod")?);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod athena;
pub mod format;
pub mod lake;
pub mod template;

pub use athena::{AthenaError, athena_ddl};
pub use format::{OutputFormat, UnknownFormat, format_batches};
pub use lake::{EVENTS_VIEW, QueryError, QueryResult, QuerySession, query};
