//! The local on-failure destination: table `failed_batches` in a SQLite file (`failures.db`
//! under `sluice up`), one row per [`FailedBatch`] with its full records (JSON, payloads base64),
//! so `sluice redrive` can put them back on the stream and then `delete` them.
//!
//! `send` commits with `synchronous=FULL` before returning: a stored failure survives even a
//! power loss, because the runner checkpoints past its records right after. Delivery to this
//! table is at-least-once: a crash between `send` and the checkpoint stores the records again on
//! redelivery (redrive must tolerate duplicates, which every sluice output does).
//!
//! A file that holds its failed batches in a table named `dead_letters` (the legacy name) is
//! migrated on open: the table is renamed to `failed_batches`, rows and ids unchanged.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;

use crate::local::blocking;
use crate::sqlite::{self, Durability, lock};
use crate::{FailedBatch, FailureDestination, FailureReason, PortError};
use sluice_stream::{SequenceNumber, StreamRecord};

/// Failure destination errors.
#[derive(Debug, thiserror::Error)]
pub enum FailureDestinationError {
    /// The storage failed; retry later.
    #[error("failure destination storage unavailable: {0}")]
    Unavailable(#[from] rusqlite::Error),
    /// A stored row is not what this code writes (fatal; inspect the file).
    #[error("stored failure {id} is corrupt: {reason}")]
    Corrupt {
        /// The row id.
        id: i64,
        /// What is wrong.
        reason: String,
    },
    /// The batch has no records (nothing to store; a caller bug).
    #[error("a failed batch must have records")]
    Empty,
    /// The blocking task running the call failed (runtime shutting down); retry later.
    #[error("failure destination call did not complete: {0}")]
    Interrupted(#[from] tokio::task::JoinError),
}

/// A failed batch as stored: its id and the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredFailure {
    /// Row id (increasing, never reused).
    pub id: i64,
    /// The discarded batch, records included.
    pub batch: FailedBatch,
}

/// A stored failure without its records (for listings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredFailureSummary {
    /// Row id.
    pub id: i64,
    /// The mapping that discarded the records.
    pub mapping: String,
    /// The source stream.
    pub stream_arn: String,
    /// The shard of the records.
    pub shard_id: String,
    /// First sequence number.
    pub first_sequence: SequenceNumber,
    /// Last sequence number.
    pub last_sequence: SequenceNumber,
    /// Why they were discarded.
    pub reason: FailureReason,
    /// The last error, if any.
    pub error: Option<String>,
    /// Failed invocations under the last retry counter.
    pub attempts: u32,
    /// When they were discarded.
    pub failed_at: DateTime<Utc>,
    /// Number of records.
    pub record_count: usize,
}

/// The on-failure destination in SQLite (table `failed_batches`). Cheap to clone; blocking
/// methods, async through [`FailureDestination`].
#[derive(Clone)]
pub struct SqliteFailureDestination {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteFailureDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteFailureDestination").finish_non_exhaustive()
    }
}

const SUMMARY_COLUMNS: &str =
    "id, mapping, stream_arn, shard_id, first_seq, last_seq, reason, error, attempts, failed_at, record_count";

impl SqliteFailureDestination {
    /// Opens (creating if needed) the `failed_batches` table in the SQLite file at `path`,
    /// migrating a `dead_letters` table of failed batches first (see the module docs).
    pub fn open(path: &Path) -> Result<Self, FailureDestinationError> {
        let mut conn = sqlite::open(path, Durability::PowerLoss)?;
        migrate_legacy_table(&mut conn)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS failed_batches (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                mapping TEXT NOT NULL,
                stream_arn TEXT NOT NULL,
                shard_id TEXT NOT NULL,
                first_seq TEXT NOT NULL,
                last_seq TEXT NOT NULL,
                reason TEXT NOT NULL,
                error TEXT,
                attempts INTEGER NOT NULL,
                failed_at TEXT NOT NULL,
                record_count INTEGER NOT NULL,
                records TEXT NOT NULL
            ) STRICT;",
        )?;
        Ok(SqliteFailureDestination { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Stores `batch` (committed before returning); returns its id (blocking).
    pub fn insert(&self, batch: &FailedBatch) -> Result<i64, FailureDestinationError> {
        if batch.records.is_empty() {
            return Err(FailureDestinationError::Empty);
        }
        let records = serde_json::to_string(&batch.records)
            .map_err(|e| FailureDestinationError::Corrupt { id: 0, reason: format!("cannot encode records: {e}") })?;
        let conn = lock(&self.conn);
        conn.prepare_cached(
            "INSERT INTO failed_batches (mapping, stream_arn, shard_id, first_seq, last_seq, reason, error, attempts, failed_at, record_count, records)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            batch.mapping,
            batch.stream_arn,
            batch.shard_id,
            batch.first_sequence.to_string(),
            batch.last_sequence.to_string(),
            batch.reason.as_str(),
            batch.error,
            batch.attempts,
            batch.failed_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            batch.records.len(),
            records,
        ])?;
        Ok(conn.last_insert_rowid())
    }

    /// Every stored failure, oldest first, without records (blocking).
    pub fn list(&self) -> Result<Vec<StoredFailureSummary>, FailureDestinationError> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare_cached(&format!("SELECT {SUMMARY_COLUMNS} FROM failed_batches ORDER BY id"))?;
        let rows = stmt.query_map([], raw_summary)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?.parse()?);
        }
        Ok(out)
    }

    /// The stored failure `id` with its records, `None` if there is none (blocking).
    pub fn get(&self, id: i64) -> Result<Option<StoredFailure>, FailureDestinationError> {
        let conn = lock(&self.conn);
        let row = conn
            .prepare_cached(&format!("SELECT {SUMMARY_COLUMNS}, records FROM failed_batches WHERE id = ?1"))?
            .query_row([id], |r| Ok((raw_summary(r)?, r.get::<_, String>(11)?)))
            .optional()?;
        let Some((raw, records_json)) = row else {
            return Ok(None);
        };
        let s = raw.parse()?;
        let records: Vec<StreamRecord> = serde_json::from_str(&records_json)
            .map_err(|e| FailureDestinationError::Corrupt { id, reason: format!("records: {e}") })?;
        Ok(Some(StoredFailure {
            id,
            batch: FailedBatch {
                mapping: s.mapping,
                stream_arn: s.stream_arn,
                shard_id: s.shard_id,
                reason: s.reason,
                error: s.error,
                attempts: s.attempts,
                first_sequence: s.first_sequence,
                last_sequence: s.last_sequence,
                failed_at: s.failed_at,
                records,
            },
        }))
    }

    /// Deletes the stored failure `id`; `true` if it existed (blocking).
    pub fn delete(&self, id: i64) -> Result<bool, FailureDestinationError> {
        let conn = lock(&self.conn);
        let n = conn.execute("DELETE FROM failed_batches WHERE id = ?1", [id])?;
        Ok(n > 0)
    }

    /// Number of stored failures (blocking).
    pub fn count(&self) -> Result<u64, FailureDestinationError> {
        let conn = lock(&self.conn);
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM failed_batches", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl FailureDestination for SqliteFailureDestination {
    async fn send(&self, batch: &FailedBatch) -> Result<(), PortError> {
        let (this, batch) = (self.clone(), batch.clone());
        blocking(move || this.insert(&batch).map(|_| ())).await.map_err(PortError::new)
    }
}

/// The legacy name of the `failed_batches` table.
const LEGACY_TABLE: &str = "dead_letters";

/// Renames a [`LEGACY_TABLE`] holding failed batches (it has their `mapping`, `first_seq` and
/// `records` columns: not the dead-letter port's table of the same name) to `failed_batches`,
/// unless that table exists already. One immediate transaction, so concurrent opens agree.
fn migrate_legacy_table(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let exists = |table: &str| -> rusqlite::Result<bool> {
        tx.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)", [table], |r| {
            r.get(0)
        })
    };
    if !exists("failed_batches")? && exists(LEGACY_TABLE)? {
        let columns: i64 = tx.query_row(
            "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name IN ('mapping', 'first_seq', 'records')",
            [LEGACY_TABLE],
            |r| r.get(0),
        )?;
        if columns == 3 {
            tx.execute_batch(&format!("ALTER TABLE {LEGACY_TABLE} RENAME TO failed_batches"))?;
        }
    }
    tx.commit()
}

/// A summary row as stored (text columns not yet parsed).
struct RawSummary {
    id: i64,
    mapping: String,
    stream_arn: String,
    shard_id: String,
    first_seq: String,
    last_seq: String,
    reason: String,
    error: Option<String>,
    attempts: i64,
    failed_at: String,
    record_count: i64,
}

fn raw_summary(r: &Row<'_>) -> rusqlite::Result<RawSummary> {
    Ok(RawSummary {
        id: r.get(0)?,
        mapping: r.get(1)?,
        stream_arn: r.get(2)?,
        shard_id: r.get(3)?,
        first_seq: r.get(4)?,
        last_seq: r.get(5)?,
        reason: r.get(6)?,
        error: r.get(7)?,
        attempts: r.get(8)?,
        failed_at: r.get(9)?,
        record_count: r.get(10)?,
    })
}

impl RawSummary {
    fn parse(self) -> Result<StoredFailureSummary, FailureDestinationError> {
        let id = self.id;
        let corrupt = |reason: String| FailureDestinationError::Corrupt { id, reason };
        Ok(StoredFailureSummary {
            id,
            first_sequence: self.first_seq.parse().map_err(|e| corrupt(format!("first_seq: {e}")))?,
            last_sequence: self.last_seq.parse().map_err(|e| corrupt(format!("last_seq: {e}")))?,
            reason: self.reason.parse().map_err(corrupt)?,
            attempts: u32::try_from(self.attempts).map_err(|e| corrupt(format!("attempts: {e}")))?,
            failed_at: DateTime::parse_from_rfc3339(&self.failed_at)
                .map_err(|e| corrupt(format!("failed_at: {e}")))?
                .with_timezone(&Utc),
            record_count: usize::try_from(self.record_count).map_err(|e| corrupt(format!("record_count: {e}")))?,
            mapping: self.mapping,
            stream_arn: self.stream_arn,
            shard_id: self.shard_id,
            error: self.error,
        })
    }
}

/// An on-failure destination that drops the records (Lambda without a destination), logging a
/// warning with their range.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardFailureDestination;

impl FailureDestination for DiscardFailureDestination {
    async fn send(&self, batch: &FailedBatch) -> Result<(), PortError> {
        tracing::warn!(
            mapping = %batch.mapping,
            shard = %batch.shard_id,
            first = %batch.first_sequence,
            last = %batch.last_sequence,
            records = batch.records.len(),
            reason = %batch.reason,
            "records discarded (no on-failure destination)"
        );
        Ok(())
    }
}
