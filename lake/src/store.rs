//! The lake handle: a lake URL opened as an `object_store` store plus a root prefix, and the
//! operations the writer, the query engine, compaction and tests need (put, get, delete, list).
//!
//! Stores, by URL (see [`crate::parse_url`]):
//! - `file:///abs/dir` or a bare path (the embedded default): the local filesystem, rooted at
//!   `/`, with the directory as the root prefix. Opening creates nothing; the first write creates
//!   the directories it needs. Writes are atomic: `object_store` writes a temporary file next to
//!   the target and renames it over the target, so a reader sees the old file or the new one.
//!   Temporaries are not `*.parquet`, so neither [`Lake::list_files`] nor a query lists them.
//! - `memory://` (tests): a fresh, process-local store per [`Lake::open`]; share it by cloning
//!   the [`Lake`].
//! - `s3://bucket[/prefix]` (AWS): the bucket's store, the prefix as the root. Credentials from
//!   object_store's chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, web
//!   identity, container or instance credentials) and the other `AWS_*` variables it reads;
//!   region and endpoint from the [`AwsSettings`] given, which win. With an endpoint override
//!   (moto) requests are path-style and plain `http` is allowed. S3 PUTs are atomic per object.
//!
//! Idempotency: a put replaces whatever is at its location, and the lake writer's file names are
//! a function of the records they hold ([`crate::layout::BatchFileName`]), so a retried write of
//! the same batch overwrites its own files with the same rows.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_aws::AwsSettings;
use url::Url;

use crate::layout::{self, DataPath, Partition};

/// Why a lake operation failed, by what the caller can do.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The lake URL is unusable (scheme, bucket, path). Fix the configuration.
    #[error("invalid lake URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The store failed or is unreachable. Retry later (the write is reported as failed).
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// A stored file is not readable Parquet. Inspect / quarantine the file.
    #[error("{path}: not readable Parquet: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
}

/// The one handle on the lake: a store, the root prefix under which `events/...` lives, and the
/// normalised lake URL. Cheap to clone (clones share the store). The writer writes through it,
/// the query engine registers [`Lake::store`] with DataFusion under [`Lake::url`], compaction
/// lists, reads, writes and deletes through it.
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: Url,
}

/// One data file found by [`Lake::list_files`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LakeFile {
    /// Partition and name, parsed from the path.
    pub path: DataPath,
    /// Full store location (root prefix included).
    pub location: String,
    /// Object size in bytes.
    pub size: u64,
}

impl LakeFile {
    /// Its path relative to the lake root (what [`Lake::get`] and friends take).
    pub fn relative(&self) -> String {
        self.path.partition.file_path(&self.path.file_name)
    }
}

impl Lake {
    /// Opens the lake at `location` (any form [`crate::parse_url`] accepts). Does no I/O: a
    /// missing local directory is an empty lake, and storage errors surface when an operation
    /// runs. `aws` is read only for `s3://` lakes.
    pub fn open(location: &str, aws: &AwsSettings) -> Result<Self, LakeError> {
        Self::open_with_options(location, aws, &[])
    }

    /// [`Lake::open`] with extra S3 options applied last (e.g. static test credentials:
    /// `(AmazonS3ConfigKey::AccessKeyId, "testing")`). Ignored for other schemes.
    pub fn open_with_options(
        location: &str,
        aws: &AwsSettings,
        s3_options: &[(AmazonS3ConfigKey, String)],
    ) -> Result<Self, LakeError> {
        let url = crate::parse_url(location)?;
        let invalid = |reason: String| LakeError::InvalidUrl { url: location.to_owned(), reason };
        // The URL's (percent-decoded) path is the root, exactly as DataFusion derives a table's
        // prefix from its URL, so both name the same objects.
        let root = Path::from_url_path(url.path()).map_err(|e| invalid(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => Arc::new(LocalFileSystem::new()),
            "memory" => Arc::new(InMemory::new()),
            // `parse_url` accepts nothing else.
            _ => {
                let bucket = url.host_str().unwrap_or_default();
                Arc::new(s3_store(bucket, aws, s3_options)?)
            }
        };
        Ok(Self { store, root, url })
    }

    /// The normalised lake URL (see [`crate::parse_url`]; ends in `/`). Its scheme and host name
    /// the store, its path the root: `url.join("events/event_type=<t>/")` is a table's location.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The underlying store (for readers such as DataFusion).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The root prefix inside the store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store location of `relative` (a [`layout`] path).
    pub fn location(&self, relative: &str) -> Path {
        let mut location = self.root.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            location = location.clone().join(part);
        }
        location
    }

    /// Writes `bytes` at `relative`, replacing any object there. Atomic per object (readers see
    /// the old or the new content, never a mix); idempotent for the same bytes.
    pub async fn put(&self, relative: &str, bytes: Bytes) -> Result<(), LakeError> {
        self.store.put(&self.location(relative), PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Reads the object at `relative`.
    pub async fn get(&self, relative: &str) -> Result<Bytes, LakeError> {
        Ok(self.store.get(&self.location(relative)).await?.bytes().await?)
    }

    /// Reads the object at `relative` as a stream of chunks, in order (for objects too large to
    /// hold whole, such as compaction's spilled runs).
    pub async fn get_stream(
        &self,
        relative: &str,
    ) -> Result<futures::stream::BoxStream<'static, Result<Bytes, LakeError>>, LakeError> {
        let stream = self.store.get(&self.location(relative)).await?.into_stream();
        Ok(Box::pin(stream.map_err(LakeError::from)))
    }

    /// Every object under the lake-relative directory `dir` (any name, not only data files):
    /// lake-relative paths and sizes, sorted.
    pub async fn list_objects(&self, dir: &str) -> Result<Vec<(String, u64)>, LakeError> {
        let root_parts = self.root.parts().count();
        let metas: Vec<_> = self.store.list(Some(&self.location(dir))).try_collect().await?;
        let mut objects: Vec<(String, u64)> = metas
            .into_iter()
            .map(|meta| {
                let relative: Vec<String> =
                    meta.location.parts().skip(root_parts).map(|p| p.as_ref().to_owned()).collect();
                (relative.join("/"), meta.size)
            })
            .collect();
        objects.sort();
        Ok(objects)
    }

    /// Deletes the object at `relative` (succeeds if it is already gone).
    pub async fn delete(&self, relative: &str) -> Result<(), LakeError> {
        match self.store.delete(&self.location(relative)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every data file under `events/` (or only `event_type`'s), sorted by partition and name.
    /// Objects that are not layout data files (temporaries, markers) are skipped.
    pub async fn list_files(&self, event_type: Option<&str>) -> Result<Vec<LakeFile>, LakeError> {
        match event_type {
            Some(t) => self.list_under(&layout::table_dir(t)).await,
            None => self.list_under(layout::EVENTS_DIR).await,
        }
    }

    /// The data files of one partition, sorted by name (what compaction merges), skipping
    /// objects that are not layout data files.
    pub async fn list_partition(&self, partition: &Partition) -> Result<Vec<LakeFile>, LakeError> {
        self.list_under(&partition.dir()).await
    }

    /// The layout data files under the lake-relative directory `dir`, sorted.
    async fn list_under(&self, dir: &str) -> Result<Vec<LakeFile>, LakeError> {
        let mut files: Vec<LakeFile> = self
            .list_objects(dir)
            .await?
            .into_iter()
            .filter_map(|(relative, size)| {
                let path = layout::parse_data_path(&relative).ok()?;
                Some(LakeFile { path, location: self.location(&relative).to_string(), size })
            })
            .collect();
        files.sort();
        Ok(files)
    }

    /// The partitions holding at least one data file.
    pub async fn list_partitions(&self, event_type: Option<&str>) -> Result<BTreeSet<Partition>, LakeError> {
        Ok(self.list_files(event_type).await?.into_iter().map(|f| f.path.partition).collect())
    }

    /// Reads one Parquet file back as record batches (whole file in memory; for tests, checks
    /// and compaction of bounded files).
    pub async fn read_parquet(&self, relative: &str) -> Result<Vec<RecordBatch>, LakeError> {
        let bytes = self.get(relative).await?;
        read_parquet_bytes(bytes).map_err(|source| LakeError::Corrupt { path: relative.to_owned(), source })
    }

    /// [`Lake::read_parquet`] of only the top-level `columns` (see [`read_parquet_columns`]).
    pub async fn read_parquet_columns(
        &self,
        relative: &str,
        columns: &[String],
    ) -> Result<Vec<RecordBatch>, LakeError> {
        let bytes = self.get(relative).await?;
        read_parquet_columns(bytes, columns).map_err(|source| LakeError::Corrupt { path: relative.to_owned(), source })
    }
}

/// The store of one bucket: `AWS_*` environment variables as object_store reads them, then the
/// settings' region and endpoint (an endpoint override means path-style requests, and plain
/// `http` is allowed for it), then `options`.
fn s3_store(
    bucket: &str,
    aws: &AwsSettings,
    options: &[(AmazonS3ConfigKey, String)],
) -> Result<object_store::aws::AmazonS3, LakeError> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(region) = &aws.region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = &aws.endpoint_url {
        builder = builder
            .with_endpoint(endpoint.as_str().trim_end_matches('/'))
            .with_allow_http(endpoint.scheme() == "http")
            .with_virtual_hosted_style_request(false);
    }
    for (key, value) in options {
        builder = builder.with_config(*key, value);
    }
    Ok(builder.build()?)
}

/// Decodes the top-level `columns` of an in-memory Parquet file into record batches (those
/// the file lacks are left out: a field added by a later schema version).
pub fn read_parquet_columns(
    bytes: Bytes,
    columns: &[String],
) -> Result<Vec<RecordBatch>, parquet::errors::ParquetError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let roots: Vec<usize> = columns.iter().filter_map(|c| builder.schema().index_of(c).ok()).collect();
    let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder.with_projection(mask).build()?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
}

/// Decodes an in-memory Parquet file into record batches.
pub fn read_parquet_bytes(bytes: Bytes) -> Result<Vec<RecordBatch>, parquet::errors::ParquetError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_table() {
        let aws = AwsSettings::default();
        let dir = tempfile::tempdir().unwrap();
        let lake_dir = dir.path().join("lake");
        let file_url = Url::from_directory_path(&lake_dir).unwrap();
        for location in [file_url.as_str(), lake_dir.to_str().unwrap()] {
            let lake = Lake::open(location, &aws).unwrap();
            assert_eq!(lake.url(), &file_url, "{location}");
            assert_eq!(lake.root().as_ref(), lake_dir.to_str().unwrap().trim_start_matches('/'), "{location}");
        }
        assert!(!lake_dir.exists(), "opening a lake creates nothing");
        let memory = Lake::open("memory://", &aws).unwrap();
        assert_eq!(memory.root().as_ref(), "");
        assert_eq!(memory.url().as_str(), "memory:///");
        let s3 = Lake::open_with_options(
            "s3://bucket/some/prefix/",
            &aws,
            &[(AmazonS3ConfigKey::Region, "us-east-1".to_owned())],
        )
        .unwrap();
        assert_eq!(s3.root().as_ref(), "some/prefix");
        assert_eq!(s3.location("events/event_type=a/x.parquet").as_ref(), "some/prefix/events/event_type=a/x.parquet");
        for bad in ["", "gs://bucket/x", "s3:///nobucket", "http://x/y"] {
            assert!(matches!(Lake::open(bad, &aws), Err(LakeError::InvalidUrl { .. })), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_first_write_creates_a_local_lake() {
        let dir = tempfile::tempdir().unwrap();
        let lake_dir = dir.path().join("my lake 100%");
        let lake = Lake::open(lake_dir.to_str().unwrap(), &AwsSettings::default()).unwrap();
        assert!(lake.list_files(None).await.unwrap().is_empty(), "a missing directory is an empty lake");
        let relative = "events/event_type=a/dt=2024-05-01/hour=07/s-1-2.parquet";
        lake.put(relative, Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(std::fs::read(lake_dir.join(relative)).unwrap(), b"x");
        assert_eq!(lake.get(relative).await.unwrap(), Bytes::from_static(b"x"));
        let files = lake.list_files(Some("a")).await.unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path.file_name, "s-1-2.parquet");
        assert_eq!(files[0].location, format!("{}/{relative}", lake.root()));
    }

    #[tokio::test]
    async fn a_partition_lists_only_its_own_data_files() {
        let lake = Lake::open("memory://", &AwsSettings::default()).unwrap();
        let hour_7 = "events/event_type=a/dt=2024-05-01/hour=07";
        for path in [
            format!("{hour_7}/s-1-2.parquet"),
            format!("{hour_7}/s-3-4.parquet"),
            format!("{hour_7}/s-5-6.parquet#staged"),
            "events/event_type=a/dt=2024-05-01/hour=08/s-1-2.parquet".to_owned(),
            "events/event_type=b/dt=2024-05-01/hour=07/s-1-2.parquet".to_owned(),
        ] {
            lake.put(&path, Bytes::from_static(b"x")).await.unwrap();
        }
        let partition = layout::parse_data_path(&format!("{hour_7}/s-1-2.parquet")).unwrap().partition;
        let files = lake.list_partition(&partition).await.unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.path.file_name.as_str()).collect();
        assert_eq!(names, ["s-1-2.parquet", "s-3-4.parquet"]);
        assert!(files.iter().all(|f| f.path.partition == partition && f.path.batch_file().is_some()));
        assert_eq!(lake.list_files(Some("a")).await.unwrap().len(), 3);
        assert_eq!(lake.list_partitions(None).await.unwrap().len(), 3);
    }
}
