//! SQLite dead letters for the embedded runtime.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{DeadLetter, DeadLetterQueue, DlqError, FailureKind};

/// Dead letters in a SQLite table (WAL, `synchronous=FULL`: a letter acknowledged is on disk).
///
/// Letters with the same (source, shard, sequence number) are kept once. Cloning shares the
/// connection.
#[derive(Clone)]
pub struct SqliteDeadLetters {
    conn: Arc<Mutex<Connection>>,
}

/// A stored letter with its id (the handle `get`/`delete` take).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLetter {
    /// Row id, increasing in insertion order.
    pub id: i64,
    /// The letter.
    pub letter: DeadLetter,
}

fn db_err(e: rusqlite::Error) -> DlqError {
    DlqError::Unavailable(e.to_string())
}

impl SqliteDeadLetters {
    /// Opens (creating if needed) the dead-letter table in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, DlqError> {
        let conn = Connection::open(path).map_err(db_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS dead_letters (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 source TEXT NOT NULL,
                 kind TEXT NOT NULL,
                 reason TEXT NOT NULL,
                 shard_id TEXT,
                 sequence_number TEXT,
                 partition_key TEXT,
                 failed_at TEXT NOT NULL,
                 data BLOB NOT NULL,
                 UNIQUE (source, shard_id, sequence_number)
             );",
        )
        .map_err(db_err)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, DlqError>) -> Result<T, DlqError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut conn)
    }

    /// Stores the letters in one transaction (blocking; see [`DeadLetterQueue::send`] for async).
    pub fn send_blocking(&self, letters: &[DeadLetter]) -> Result<(), DlqError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(db_err)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO dead_letters
                         (source, kind, reason, shard_id, sequence_number, partition_key, failed_at, data)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .map_err(db_err)?;
                for l in letters {
                    stmt.execute(params![
                        l.source,
                        l.kind.as_str(),
                        l.reason,
                        l.shard_id,
                        l.sequence_number,
                        l.partition_key,
                        l.failed_at.to_rfc3339(),
                        l.data
                    ])
                    .map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)
        })
    }

    /// Up to `limit` letters with id greater than `after`, oldest first.
    pub fn list(&self, after: i64, limit: usize) -> Result<Vec<StoredLetter>, DlqError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, source, kind, reason, shard_id, sequence_number, partition_key, failed_at, data
                     FROM dead_letters WHERE id > ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(db_err)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![after, limit], row_to_letter).map_err(db_err)?;
            rows.map(|r| r.map_err(db_err)?).collect()
        })
    }

    /// The letter with this id, if present.
    pub fn get(&self, id: i64) -> Result<Option<StoredLetter>, DlqError> {
        self.with(|conn| {
            let row = conn
                .query_row(
                    "SELECT id, source, kind, reason, shard_id, sequence_number, partition_key, failed_at, data
                     FROM dead_letters WHERE id = ?1",
                    params![id],
                    row_to_letter,
                )
                .optional()
                .map_err(db_err)?;
            row.transpose()
        })
    }

    /// Removes a letter (after a successful redrive). Returns whether it existed.
    pub fn delete(&self, id: i64) -> Result<bool, DlqError> {
        self.with(|conn| Ok(conn.execute("DELETE FROM dead_letters WHERE id = ?1", params![id]).map_err(db_err)? > 0))
    }

    /// Replaces a letter's reason (a redrive found it still invalid, now for this reason).
    /// Returns whether it existed.
    pub fn update_reason(&self, id: i64, reason: &str) -> Result<bool, DlqError> {
        self.with(|conn| {
            Ok(conn
                .execute("UPDATE dead_letters SET reason = ?2 WHERE id = ?1", params![id, reason])
                .map_err(db_err)?
                > 0)
        })
    }

    /// How many letters are stored.
    pub fn count(&self) -> Result<u64, DlqError> {
        self.with(|conn| {
            let n: i64 = conn.query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0)).map_err(db_err)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }
}

type Row = Result<StoredLetter, DlqError>;

fn row_to_letter(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let kind: String = r.get(2)?;
    let failed_at: String = r.get(7)?;
    let Some(kind) = FailureKind::parse(&kind) else {
        return Ok(Err(DlqError::Encoding(format!("unknown failure kind {kind:?}"))));
    };
    let failed_at = match DateTime::parse_from_rfc3339(&failed_at) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => return Ok(Err(DlqError::Encoding(format!("bad failed_at {failed_at:?}: {e}")))),
    };
    Ok(Ok(StoredLetter {
        id: r.get(0)?,
        letter: DeadLetter {
            source: r.get(1)?,
            kind,
            reason: r.get(3)?,
            shard_id: r.get(4)?,
            sequence_number: r.get(5)?,
            partition_key: r.get(6)?,
            failed_at,
            data: r.get(8)?,
        },
    }))
}

impl DeadLetterQueue for SqliteDeadLetters {
    async fn send(&self, letters: Vec<DeadLetter>) -> Result<(), DlqError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.send_blocking(&letters))
            .await
            .map_err(|e| DlqError::Unavailable(format!("dead-letter writer task failed: {e}")))?
    }
}
