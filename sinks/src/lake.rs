//! The lake adapter: a lake URL opened as an `object_store` store plus a root prefix, and the
//! operations the writer, compaction and tests need (put, list, read back).
//!
//! Lake URLs:
//! - `file:///abs/dir` (the embedded default; the directory is created). Writes are atomic: a
//!   temporary file renamed over the target, so a reader sees the old file or the new one.
//! - `memory://` (tests): a fresh, process-local store per [`Lake::open`]; share it by cloning
//!   the [`Lake`].
//! - `s3://bucket/prefix` (AWS): credentials, region and endpoint from the standard `AWS_*`
//!   environment variables, overridden by the [`AwsSettings`] given; with an endpoint override
//!   (moto) requests are path-style, and plain `http` is allowed. S3 PUTs are atomic per object.

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
    /// A file could not be created in a local lake directory. Fix permissions or the path.
    #[error("cannot create lake directory {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A stored file is not readable Parquet. Inspect / quarantine the file.
    #[error("{path}: not readable Parquet: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
}

/// A lake: a store and the root prefix under which `events/...` lives. Cheap to clone (shares the
/// store).
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
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

impl Lake {
    /// Opens the lake at `url` (see the module docs for the schemes). No I/O except creating a
    /// `file://` lake's directory.
    pub fn open(url: &str, aws: &AwsSettings) -> Result<Self, LakeError> {
        Self::open_with_options(url, aws, &[])
    }

    /// [`Lake::open`] with extra S3 options applied last (e.g. static test credentials:
    /// `(AmazonS3ConfigKey::AccessKeyId, "testing")`). Ignored for other schemes.
    pub fn open_with_options(
        url: &str,
        aws: &AwsSettings,
        s3_options: &[(AmazonS3ConfigKey, String)],
    ) -> Result<Self, LakeError> {
        let invalid = |reason: &str| LakeError::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
        let parsed = Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed.to_file_path().map_err(|()| invalid("file:// URLs need an absolute local path"))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|source| LakeError::CreateDir { path: dir.display().to_string(), source })?;
                let store = LocalFileSystem::new_with_prefix(&dir)?;
                Ok(Self::new(Arc::new(store), Path::default(), url))
            }
            "memory" => Ok(Self::new(Arc::new(InMemory::new()), Path::default(), url)),
            "s3" | "s3a" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| invalid("s3:// URLs need a bucket: s3://bucket/prefix"))?;
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
                for (key, value) in s3_options {
                    builder = builder.with_config(*key, value);
                }
                let store = builder.build()?;
                let root = Path::parse(parsed.path().trim_matches('/')).map_err(|e| invalid(&e.to_string()))?;
                Ok(Self::new(Arc::new(store), root, url))
            }
            other => Err(invalid(&format!("unsupported scheme {other:?} (use file://, memory:// or s3://)"))),
        }
    }

    /// A lake over any store, `events/...` under `root`.
    pub fn new(store: Arc<dyn ObjectStore>, root: Path, url: &str) -> Self {
        Self { store, root, url: url.to_owned() }
    }

    /// The URL the lake was opened from.
    pub fn url(&self) -> &str {
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
        let dir = match event_type {
            Some(t) => layout::table_dir(t),
            None => layout::EVENTS_DIR.to_owned(),
        };
        let prefix = self.location(&dir);
        let root_parts = self.root.parts().count();
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut files: Vec<LakeFile> = metas
            .into_iter()
            .filter_map(|meta| {
                let relative: Vec<String> =
                    meta.location.parts().skip(root_parts).map(|p| p.as_ref().to_owned()).collect();
                let path = layout::parse_data_path(&relative.join("/")).ok()?;
                Some(LakeFile { path, location: meta.location.to_string(), size: meta.size })
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
        let file_url = Url::from_directory_path(dir.path().join("lake")).unwrap();
        assert!(Lake::open(file_url.as_str(), &aws).is_ok());
        assert!(dir.path().join("lake").is_dir(), "file lakes create their directory");
        assert!(Lake::open("memory://", &aws).is_ok());
        let s3 = Lake::open_with_options(
            "s3://bucket/some/prefix/",
            &aws,
            &[(AmazonS3ConfigKey::Region, "us-east-1".to_owned())],
        )
        .unwrap();
        assert_eq!(s3.root().as_ref(), "some/prefix");
        assert_eq!(s3.location("events/event_type=a/x.parquet").as_ref(), "some/prefix/events/event_type=a/x.parquet");
        for bad in ["", "not a url", "gs://bucket/x", "s3:///nobucket", "http://x/y"] {
            assert!(matches!(Lake::open(bad, &aws), Err(LakeError::InvalidUrl { .. })), "{bad:?}");
        }
    }
}
