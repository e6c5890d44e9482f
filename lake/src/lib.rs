//! sluice-lake: the Parquet lake's layout and the one handle every component opens it with.
//!
//! - [`layout`]: where files live
//!   (`events/event_type=<t>/dt=YYYY-MM-DD/hour=HH/<shard>-<first seq>-<last seq>.parquet`), the
//!   deterministic file names and parsing both back; pure.
//! - [`Lake`]: a lake URL opened as an `object_store` store plus a root prefix, with the
//!   operations the lake writer, `sluice query` and compaction share (put, get, delete, list
//!   data files). [`parse_url`] is the one reading of a lake URL.
//!
//! Lake URLs (every component accepts exactly these):
//!
//! | form | store | notes |
//! |---|---|---|
//! | `file:///abs/dir`, or a bare path (`./lake`, `/var/lib/sluice/lake`) | local filesystem | relative paths resolve against the current directory |
//! | `memory://` | a process-local in-memory store | fresh per [`Lake::open`]; share it by cloning the [`Lake`] |
//! | `s3://bucket[/prefix]` | S3 | region and endpoint from [`sluice_aws::AwsSettings`]; with an endpoint override (moto) requests are path-style |
//!
//! The lake writer (`sluice-sinks`), the query engine (`sluice-query`, which registers
//! [`Lake::store`] with DataFusion) and the jobs depend on this crate, and it depends on neither:
//! reading the lake builds no Lambda, stream or dead-letter code.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod layout;
mod store;
mod url;

pub use store::{Lake, LakeError, LakeFile, read_parquet_bytes, read_parquet_columns};
pub use url::parse_url;
