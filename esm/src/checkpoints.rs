//! SQLite checkpoint store for the local event source mappings: table `esm_checkpoints`, one row
//! per (mapping, shard) holding the last processed sequence number.
//!
//! A `save` is committed (WAL, `synchronous=NORMAL`: durable to a process crash) before it
//! returns. Losing the last checkpoints to a power loss only causes redelivery, which the
//! at-least-once contract allows. The file may be the stream's own file or another one.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};

use crate::local::blocking;
use crate::sqlite::{self, Durability, lock};
use crate::{CheckpointStore, PortError};
use sluice_stream::{SequenceNumber, SequenceNumberError};

/// Checkpoint store errors.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The storage failed; retry later.
    #[error("checkpoint storage unavailable: {0}")]
    Unavailable(#[from] rusqlite::Error),
    /// A stored checkpoint is not a sequence number (fatal; inspect the file).
    #[error("stored checkpoint is corrupt: {0}")]
    Corrupt(#[from] SequenceNumberError),
    /// The blocking task running the call failed (runtime shutting down); retry later.
    #[error("checkpoint call did not complete: {0}")]
    Interrupted(#[from] tokio::task::JoinError),
}

/// Durable checkpoints in SQLite. Cheap to clone; blocking methods, async through
/// [`CheckpointStore`].
#[derive(Clone)]
pub struct SqliteCheckpoints {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCheckpoints").finish_non_exhaustive()
    }
}

impl SqliteCheckpoints {
    /// Opens (creating if needed) the checkpoint table in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        let conn = sqlite::open(path, Durability::ProcessCrash)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS esm_checkpoints (
                mapping TEXT NOT NULL,
                shard_id TEXT NOT NULL,
                sequence_number TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (mapping, shard_id)
            ) STRICT;",
        )?;
        Ok(SqliteCheckpoints { conn: Arc::new(Mutex::new(conn)) })
    }

    /// The checkpoint of (`mapping`, `shard_id`), if any (blocking).
    pub fn get(&self, mapping: &str, shard_id: &str) -> Result<Option<SequenceNumber>, CheckpointError> {
        let conn = lock(&self.conn);
        let s: Option<String> = conn
            .query_row(
                "SELECT sequence_number FROM esm_checkpoints WHERE mapping = ?1 AND shard_id = ?2",
                params![mapping, shard_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(s.map(|s| s.parse()).transpose()?)
    }

    /// Sets the checkpoint of (`mapping`, `shard_id`) to `seq`, committed before returning
    /// (blocking). Overwrites unconditionally (an operator may rewind).
    pub fn set(&self, mapping: &str, shard_id: &str, seq: SequenceNumber) -> Result<(), CheckpointError> {
        let conn = lock(&self.conn);
        conn.prepare_cached(
            "INSERT INTO esm_checkpoints (mapping, shard_id, sequence_number, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (mapping, shard_id) DO UPDATE
             SET sequence_number = excluded.sequence_number, updated_at = excluded.updated_at",
        )?
        .execute(params![mapping, shard_id, seq.to_string(), Utc::now().to_rfc3339()])?;
        Ok(())
    }

    /// Every checkpoint of `mapping`, by shard id (blocking).
    pub fn list(&self, mapping: &str) -> Result<Vec<(String, SequenceNumber)>, CheckpointError> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare_cached(
            "SELECT shard_id, sequence_number FROM esm_checkpoints WHERE mapping = ?1 ORDER BY shard_id",
        )?;
        let rows = stmt.query_map([mapping], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (shard, seq) = row?;
            out.push((shard, seq.parse()?));
        }
        Ok(out)
    }
}

impl CheckpointStore for SqliteCheckpoints {
    async fn load(&self, mapping: &str, shard_id: &str) -> Result<Option<SequenceNumber>, PortError> {
        let (this, mapping, shard_id) = (self.clone(), mapping.to_owned(), shard_id.to_owned());
        blocking(move || this.get(&mapping, &shard_id)).await.map_err(PortError::new)
    }

    async fn save(&self, mapping: &str, shard_id: &str, seq: SequenceNumber) -> Result<(), PortError> {
        let (this, mapping, shard_id) = (self.clone(), mapping.to_owned(), shard_id.to_owned());
        blocking(move || this.set(&mapping, &shard_id, seq)).await.map_err(PortError::new)
    }
}
