//! SQLite adapter of the [`AggregateStore`] port (the embedded runtime): one file, one table.
//!
//! Table `aggregate_partials(event_type, window_secs, window_start, dims, shard, guard, state)`,
//! primary key (event_type, window_secs, window_start, dims, shard); `guard` is the 76-digit
//! zero-padded sequence number, `state` the [`AggState`] encoding. The compare-and-set runs in a
//! `BEGIN IMMEDIATE` transaction, so it is atomic across connections and processes.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{AggregateStore, Partial, PutOutcome, StoreError};
use crate::key::{AggKey, parse_dims_text};
use crate::seq::SeqNo;
use crate::state::AggState;
use crate::window::WindowSize;

/// SQLite-backed partials. Cheap to clone (shares one connection).
#[derive(Clone)]
pub struct SqliteAggregateStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteAggregateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteAggregateStore").finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA busy_timeout = 5000;
CREATE TABLE IF NOT EXISTS aggregate_partials (
    event_type   TEXT    NOT NULL,
    window_secs  INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    dims         TEXT    NOT NULL,
    shard        TEXT    NOT NULL,
    guard        TEXT    NOT NULL,
    state        BLOB    NOT NULL,
    PRIMARY KEY (event_type, window_secs, window_start, dims, shard)
) WITHOUT ROWID;
";

impl SqliteAggregateStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        Self::init(conn)
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(unavailable)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        Ok(SqliteAggregateStore { conn: Arc::new(Mutex::new(conn)) })
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Unavailable("sqlite connection poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(unavailable)?
    }
}

fn decode_partial(guard: &str, state: &[u8]) -> Result<Partial, StoreError> {
    let guard = guard.parse::<SeqNo>().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let state = AggState::decode(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Partial { guard, state })
}

impl AggregateStore for SqliteAggregateStore {
    async fn load(&self, shard: &str, keys: &[AggKey]) -> Result<Vec<Option<Partial>>, StoreError> {
        let shard = shard.to_owned();
        let keys = keys.to_vec();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT guard, state FROM aggregate_partials WHERE event_type = ?1 \
                     AND window_secs = ?2 AND window_start = ?3 AND dims = ?4 AND shard = ?5",
                )
                .map_err(unavailable)?;
            let mut out = Vec::with_capacity(keys.len());
            for k in &keys {
                let row: Option<(String, Vec<u8>)> = stmt
                    .query_row(params![k.event_type, k.window.secs(), k.window_start, k.dims_text(), shard], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()
                    .map_err(unavailable)?;
                out.push(match row {
                    Some((g, s)) => Some(decode_partial(&g, &s)?),
                    None => None,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn put(
        &self,
        shard: &str,
        key: &AggKey,
        expected: Option<SeqNo>,
        new: &Partial,
    ) -> Result<PutOutcome, StoreError> {
        let shard = shard.to_owned();
        let key = key.clone();
        let guard = new.guard.padded();
        let state = new.state.encode();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let dims = key.dims_text();
            let stored: Option<String> = tx
                .query_row(
                    "SELECT guard FROM aggregate_partials WHERE event_type = ?1 AND \
                     window_secs = ?2 AND window_start = ?3 AND dims = ?4 AND shard = ?5",
                    params![key.event_type, key.window.secs(), key.window_start, dims, shard],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            if stored != expected.map(|g| g.padded()) {
                return Ok(PutOutcome::Conflict);
            }
            tx.execute(
                "INSERT OR REPLACE INTO aggregate_partials \
                 (event_type, window_secs, window_start, dims, shard, guard, state) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![key.event_type, key.window.secs(), key.window_start, dims, shard, guard, state],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(PutOutcome::Written)
        })
        .await
    }

    async fn scan(
        &self,
        event_type: &str,
        window: WindowSize,
        from: i64,
        to: i64,
    ) -> Result<Vec<(AggKey, String, AggState)>, StoreError> {
        let event_type = event_type.to_owned();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT window_start, dims, shard, state FROM aggregate_partials \
                     WHERE event_type = ?1 AND window_secs = ?2 AND window_start >= ?3 \
                     AND window_start < ?4 ORDER BY window_start, dims, shard",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![event_type, window.secs(), from, to], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Vec<u8>>(3)?))
                })
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (start, dims, shard, state) = row.map_err(unavailable)?;
                let dims = parse_dims_text(&dims).ok_or_else(|| StoreError::Corrupt(format!("bad dims `{dims}`")))?;
                let state = AggState::decode(&state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push((AggKey { event_type: event_type.clone(), window, window_start: start, dims }, shard, state));
            }
            Ok(out)
        })
        .await
    }
}
