//! The durable local stream: Kinesis semantics on one SQLite file (WAL mode), one table per shard.
//!
//! API shape: every method on [`LocalStream`] is **blocking** (SQLite I/O, typically well under a
//! millisecond); call them from synchronous code or `spawn_blocking`. From async code use the
//! `*_async` twins, which run the same call on Tokio's blocking pool. A dropped `*_async` future
//! does not cancel the call: the write still commits (or fails) as a whole.
//!
//! Guarantees:
//! - `put_records` writes all entries in ONE transaction and returns only after it committed:
//!   either every entry is in the stream or none is.
//! - Durability of a commit follows [`Durability`]: by default it survives a process crash
//!   (`synchronous=NORMAL` in WAL mode); `Durability::PowerLoss` (`FULL`) also survives power loss.
//! - Sequence numbers come from one stream-wide counter persisted in the same transaction as the
//!   records, so they are strictly increasing per shard (and across the stream) and never reused,
//!   even after trimming or reopening.
//! - Records of a shard are read in sequence-number order.
//! - Routing is Kinesis': MD5 of the partition key over evenly split hash-key ranges
//!   ([`crate::routing`]); the shard count is fixed when the file is created.
//! - Retention is enforced by [`LocalStream::trim_expired`], which the runtime calls
//!   periodically; a consumer that falls further behind than the retention loses records, as
//!   with Kinesis.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{CachedStatement, Connection, OptionalExtension, TransactionBehavior, params};

use crate::sqlite::{self, Durability, lock};
use crate::{PortError, ShardSource};
use sluice_stream::routing::shard_for_partition_key;
use sluice_stream::{SequenceNumber, StreamRecord, shard_id};

/// Most shards a local stream may have.
pub const MAX_SHARDS: u32 = 1024;
/// Longest partition key, in Unicode scalar values (Kinesis' limit).
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
/// Largest record, partition key plus data, in bytes (Kinesis' 1 MiB limit).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Idle read connections kept open for reuse.
const READER_POOL: usize = 8;

/// Configuration of a local stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStreamConfig {
    /// Number of shards (default 4). Fixed at creation: reopening with another count fails.
    pub shards: u32,
    /// How long records are kept (default 24 h, Kinesis' default), enforced by `trim_expired`.
    pub retention: chrono::Duration,
    /// Durability of a commit (default: survives a process crash).
    pub durability: Durability,
}

impl Default for LocalStreamConfig {
    fn default() -> Self {
        LocalStreamConfig { shards: 4, retention: chrono::Duration::hours(24), durability: Durability::default() }
    }
}

/// One record to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutEntry {
    /// Chooses the shard (MD5 routing); 1 to 256 characters.
    pub partition_key: String,
    /// The payload; with the key at most 1 MiB.
    pub data: Vec<u8>,
}

/// Where a put record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// The shard that took the record.
    pub shard_id: String,
    /// Its sequence number in that shard.
    pub sequence_number: SequenceNumber,
}

/// Local stream errors, by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The configuration is unusable; fix it (fatal).
    #[error("invalid local stream configuration: {0}")]
    InvalidConfig(String),
    /// The file was created with another shard count; use that count (fatal).
    #[error("local stream {path} has {existing} shards but {requested} were configured")]
    ShardCountMismatch {
        /// The stream file.
        path: PathBuf,
        /// Shards in the file.
        existing: u32,
        /// Shards configured.
        requested: u32,
    },
    /// An entry breaks Kinesis' limits; nothing was written. Reject the entry (client error).
    #[error("record {index} rejected: {reason}")]
    InvalidRecord {
        /// Index of the offending entry in the request.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// No such shard in this stream (caller error).
    #[error("unknown shard {0:?}")]
    UnknownShard(String),
    /// The storage failed; nothing was written. Retry later.
    #[error("local stream storage unavailable: {0}")]
    Unavailable(#[from] rusqlite::Error),
    /// The stored data is not what this code wrote (fatal; inspect the file).
    #[error("local stream storage is corrupt: {0}")]
    Corrupt(String),
    /// The blocking task running the call failed (runtime shutting down); retry later.
    #[error("local stream call did not complete: {0}")]
    Interrupted(String),
}

impl StreamError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StreamError::Unavailable(_) | StreamError::Interrupted(_))
    }
}

/// A handle on a durable local stream. Cheap to clone; all clones share the connections and
/// may be used from any thread.
#[derive(Clone)]
pub struct LocalStream {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStream").field("path", &self.inner.path).field("config", &self.inner.config).finish()
    }
}

struct Inner {
    path: PathBuf,
    config: LocalStreamConfig,
    shard_ids: Vec<String>,
    tables: Vec<String>,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

/// How often the background thread checkpoints the WAL into the database file.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs `PRAGMA wal_checkpoint(PASSIVE)` every [`CHECKPOINT_INTERVAL`] until the stream is
/// dropped. PASSIVE never blocks writers or readers; frames still in use are copied next time.
fn spawn_checkpointer(conn: Connection, stream: std::sync::Weak<Inner>) {
    let spawned = std::thread::Builder::new().name("stream-checkpoint".into()).spawn(move || {
        loop {
            std::thread::sleep(CHECKPOINT_INTERVAL);
            if stream.upgrade().is_none() {
                return;
            }
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "local stream checkpoint failed");
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the local stream checkpointer; the WAL will grow until reopen");
    }
}

fn table_name(index: u32) -> String {
    format!("shard_{index:012}")
}

const META_SHARDS: &str = "shards";
const META_LAST_SEQ: &str = "last_seq";

impl LocalStream {
    /// Opens the stream stored at `path`, creating the file and its shard tables if needed.
    /// Fails with `ShardCountMismatch` if the file exists with another shard count.
    pub fn open(path: &Path, config: LocalStreamConfig) -> Result<Self, StreamError> {
        if config.shards == 0 || config.shards > MAX_SHARDS {
            return Err(StreamError::InvalidConfig(format!("shards must be 1..={MAX_SHARDS}, got {}", config.shards)));
        }
        if config.retention <= chrono::Duration::zero() {
            return Err(StreamError::InvalidConfig(format!("retention must be positive, got {}", config.retention)));
        }
        let mut conn = sqlite::open(path, config.durability)?;
        conn.set_prepared_statement_cache_capacity(config.shards as usize + 16);
        let tables: Vec<String> = (0..config.shards).map(table_name).collect();
        {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS stream_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;",
            )?;
            let existing: Option<i64> =
                tx.query_row("SELECT value FROM stream_meta WHERE key = ?1", [META_SHARDS], |r| r.get(0)).optional()?;
            match existing {
                None => {
                    tx.execute(
                        "INSERT INTO stream_meta (key, value) VALUES (?1, ?2), (?3, 0)",
                        params![META_SHARDS, config.shards, META_LAST_SEQ],
                    )?;
                }
                Some(n) if n == i64::from(config.shards) => {}
                Some(n) => {
                    return Err(StreamError::ShardCountMismatch {
                        path: path.to_owned(),
                        existing: u32::try_from(n).unwrap_or(0),
                        requested: config.shards,
                    });
                }
            }
            for t in &tables {
                tx.execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS {t} (
                        seq INTEGER PRIMARY KEY,
                        partition_key TEXT NOT NULL,
                        arrival_ms INTEGER NOT NULL,
                        data BLOB NOT NULL
                    ) STRICT;
                    CREATE INDEX IF NOT EXISTS {t}_arrival ON {t} (arrival_ms);"
                ))?;
            }
            tx.commit()?;
        }
        // Checkpoints run on a background thread, not inside a producer's commit: an automatic
        // checkpoint copies and syncs megabytes while the committing request waits.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpointer = sqlite::open(path, config.durability)?;
        let inner = Arc::new(Inner {
            path: path.to_owned(),
            shard_ids: (0..config.shards).map(shard_id).collect(),
            tables,
            config,
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        });
        spawn_checkpointer(checkpointer, Arc::downgrade(&inner));
        Ok(LocalStream { inner })
    }

    /// Opens the existing stream at `path` with the shard count it was created with (for a
    /// second process beside `sluice up`, such as `sluice redrive`); `config.shards` is ignored.
    /// `Err(StreamError::InvalidConfig)` if there is no stream there.
    pub fn open_existing(path: &Path, config: LocalStreamConfig) -> Result<Self, StreamError> {
        let missing = || StreamError::InvalidConfig(format!("no local stream at {}", path.display()));
        if !path.is_file() {
            return Err(missing());
        }
        let conn = sqlite::open(path, config.durability)?;
        let shards: Option<i64> = conn
            .query_row("SELECT value FROM stream_meta WHERE key = ?1", [META_SHARDS], |r| r.get(0))
            .optional()
            .unwrap_or(None);
        drop(conn);
        let shards = shards.and_then(|n| u32::try_from(n).ok()).ok_or_else(missing)?;
        Self::open(path, LocalStreamConfig { shards, ..config })
    }

    /// The stream's shard ids, in shard order (`shardId-000000000000`, ...).
    pub fn shards(&self) -> &[String] {
        &self.inner.shard_ids
    }

    /// The configuration the stream was opened with.
    pub fn config(&self) -> &LocalStreamConfig {
        &self.inner.config
    }

    /// The stream file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The shard a record with `partition_key` goes to.
    pub fn shard_for(&self, partition_key: &str) -> &str {
        let i = shard_for_partition_key(partition_key, self.inner.config.shards) as usize;
        self.inner.shard_ids.get(i).map_or("", std::string::String::as_str)
    }

    /// Appends `entries` in ONE transaction, arrival time now; returns, in input order, where each
    /// landed, only after the commit. All or nothing: on `Err` no entry was written.
    pub fn put_records(&self, entries: &[PutEntry]) -> Result<Vec<PutResult>, StreamError> {
        self.put_records_at(entries, Utc::now())
    }

    /// [`LocalStream::put_records`] with an explicit arrival time (replays, tests). Arrival times
    /// are stored with millisecond precision.
    pub fn put_records_at(&self, entries: &[PutEntry], arrival: DateTime<Utc>) -> Result<Vec<PutResult>, StreamError> {
        for (index, e) in entries.iter().enumerate() {
            validate_entry(e).map_err(|reason| StreamError::InvalidRecord { index, reason })?;
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let shards = self.inner.config.shards;
        let routes: Vec<usize> =
            entries.iter().map(|e| shard_for_partition_key(&e.partition_key, shards) as usize).collect();
        let arrival_ms = arrival.timestamp_millis();

        let mut conn = lock(&self.inner.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last: i64 = tx.query_row("SELECT value FROM stream_meta WHERE key = ?1", [META_LAST_SEQ], |r| r.get(0))?;
        let mut seq = last;
        let mut results = Vec::with_capacity(entries.len());
        {
            let mut stmts: Vec<Option<CachedStatement<'_>>> = (0..shards).map(|_| None).collect();
            for (e, &shard) in entries.iter().zip(&routes) {
                seq = seq.checked_add(1).ok_or_else(|| StreamError::Corrupt("sequence counter overflow".into()))?;
                let (Some(slot), Some(table)) = (stmts.get_mut(shard), self.inner.tables.get(shard)) else {
                    return Err(StreamError::Corrupt(format!("no table for shard {shard}")));
                };
                let stmt = match slot {
                    Some(s) => s,
                    None => slot.insert(tx.prepare_cached(&format!(
                        "INSERT INTO {table} (seq, partition_key, arrival_ms, data) VALUES (?1, ?2, ?3, ?4)"
                    ))?),
                };
                stmt.execute(params![seq, e.partition_key, arrival_ms, e.data])?;
                results.push(PutResult {
                    shard_id: self.inner.shard_ids.get(shard).cloned().unwrap_or_default(),
                    sequence_number: local_seq(seq)?,
                });
            }
        }
        tx.execute("UPDATE stream_meta SET value = ?1 WHERE key = ?2", params![seq, META_LAST_SEQ])?;
        tx.commit()?;
        Ok(results)
    }

    /// Up to `limit` records of `shard_id` with sequence numbers greater than `after` (from the
    /// oldest retained record when `None`), in sequence-number order.
    pub fn read(
        &self,
        shard_id: &str,
        after: Option<SequenceNumber>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StreamError> {
        let index = self
            .inner
            .shard_ids
            .iter()
            .position(|s| s == shard_id)
            .ok_or_else(|| StreamError::UnknownShard(shard_id.to_owned()))?;
        let after = match after {
            None => 0,
            Some(s) if s < SequenceNumber::from_local(0) => 0,
            Some(s) => match s.local_counter().and_then(|c| i64::try_from(c).ok()) {
                Some(c) => c,
                // Beyond any number this stream can assign.
                None => return Ok(Vec::new()),
            },
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let table = self.inner.tables.get(index).ok_or_else(|| StreamError::UnknownShard(shard_id.to_owned()))?;
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT seq, partition_key, arrival_ms, data FROM {table} WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![after, limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, Vec<u8>>(3)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, partition_key, arrival_ms, data) = row?;
                out.push(StreamRecord {
                    shard_id: shard_id.to_owned(),
                    sequence_number: local_seq(seq)?,
                    partition_key,
                    approximate_arrival: DateTime::from_timestamp_millis(arrival_ms)
                        .ok_or_else(|| StreamError::Corrupt(format!("arrival time {arrival_ms} out of range")))?,
                    data,
                });
            }
            Ok(out)
        })
    }

    /// Deletes, in one transaction, every record that arrived before `now - retention`; returns
    /// how many were deleted. Sequence numbers of deleted records are never reused.
    pub fn trim_expired(&self, now: DateTime<Utc>) -> Result<u64, StreamError> {
        let cutoff = now.checked_sub_signed(self.inner.config.retention).map_or(i64::MIN, |t| t.timestamp_millis());
        let mut conn = lock(&self.inner.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut deleted = 0u64;
        for t in &self.inner.tables {
            let n = tx.execute(&format!("DELETE FROM {t} WHERE arrival_ms < ?1"), [cutoff])?;
            deleted += n as u64;
        }
        tx.commit()?;
        Ok(deleted)
    }

    /// Checks that the stream file is readable. `Err` means the stream cannot serve requests.
    pub fn health(&self) -> Result<(), StreamError> {
        self.with_reader(|conn| {
            let shards: i64 =
                conn.query_row("SELECT value FROM stream_meta WHERE key = ?1", [META_SHARDS], |r| r.get(0))?;
            if shards == i64::from(self.inner.config.shards) {
                Ok(())
            } else {
                Err(StreamError::Corrupt(format!(
                    "stream_meta says {shards} shards, opened with {}",
                    self.inner.config.shards
                )))
            }
        })
    }

    /// [`LocalStream::put_records`] on the blocking pool.
    pub async fn put_records_async(&self, entries: Vec<PutEntry>) -> Result<Vec<PutResult>, StreamError> {
        let this = self.clone();
        blocking(move || this.put_records(&entries)).await
    }

    /// [`LocalStream::read`] on the blocking pool.
    pub async fn read_async(
        &self,
        shard_id: &str,
        after: Option<SequenceNumber>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StreamError> {
        let this = self.clone();
        let shard_id = shard_id.to_owned();
        blocking(move || this.read(&shard_id, after, limit)).await
    }

    /// [`LocalStream::trim_expired`] on the blocking pool.
    pub async fn trim_expired_async(&self, now: DateTime<Utc>) -> Result<u64, StreamError> {
        let this = self.clone();
        blocking(move || this.trim_expired(now)).await
    }

    /// [`LocalStream::health`] on the blocking pool.
    pub async fn health_async(&self) -> Result<(), StreamError> {
        let this = self.clone();
        blocking(move || this.health()).await
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StreamError>) -> Result<T, StreamError> {
        let pooled = lock(&self.inner.readers).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = sqlite::open(&self.inner.path, self.inner.config.durability)?;
                c.set_prepared_statement_cache_capacity(self.inner.config.shards as usize + 16);
                c
            }
        };
        let out = f(&conn);
        let mut pool = lock(&self.inner.readers);
        if pool.len() < READER_POOL {
            pool.push(conn);
        }
        out
    }
}

/// The local stream as an event-source-mapping source (reads on the blocking pool).
impl ShardSource for LocalStream {
    async fn list_shards(&self) -> Result<Vec<String>, PortError> {
        Ok(self.shards().to_vec())
    }

    async fn read(
        &self,
        shard_id: &str,
        after: Option<SequenceNumber>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, PortError> {
        self.read_async(shard_id, after, limit).await.map_err(PortError::new)
    }
}

fn local_seq(seq: i64) -> Result<SequenceNumber, StreamError> {
    u128::try_from(seq)
        .map(SequenceNumber::from_local)
        .map_err(|_| StreamError::Corrupt(format!("negative sequence counter {seq}")))
}

fn validate_entry(e: &PutEntry) -> Result<(), String> {
    let chars = e.partition_key.chars().count();
    if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
        return Err(format!("partition key must be 1..={MAX_PARTITION_KEY_CHARS} characters, got {chars}"));
    }
    let size = e.partition_key.len() + e.data.len();
    if size > MAX_RECORD_BYTES {
        return Err(format!("record is {size} bytes (partition key + data), the limit is {MAX_RECORD_BYTES}"));
    }
    Ok(())
}

/// Runs a blocking call on Tokio's blocking pool.
pub(crate) async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static + From<tokio::task::JoinError>,
{
    tokio::task::spawn_blocking(f).await?
}

impl From<tokio::task::JoinError> for StreamError {
    fn from(e: tokio::task::JoinError) -> Self {
        StreamError::Interrupted(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_entries() {
        let ok = PutEntry { partition_key: "k".into(), data: vec![0; 10] };
        assert!(validate_entry(&ok).is_ok());
        let empty_key = PutEntry { partition_key: String::new(), data: vec![] };
        assert!(validate_entry(&empty_key).is_err());
        let long_key = PutEntry { partition_key: "é".repeat(257), data: vec![] };
        assert!(validate_entry(&long_key).is_err());
        let max_key = PutEntry { partition_key: "é".repeat(256), data: vec![] };
        assert!(validate_entry(&max_key).is_ok());
        let big = PutEntry { partition_key: "k".into(), data: vec![0; MAX_RECORD_BYTES] };
        assert!(validate_entry(&big).is_err());
    }
}
