//! SQLite adapter of the [`AggregateStore`] port (the embedded runtime): one file, three tables,
//! all keyed by (event_type, window_secs, window_start, shard, ...):
//! - `aggregate_links(..., prev, last, n, entries)`, primary key on `prev`: a chain append is an
//!   `INSERT` that fails on an existing `prev`;
//! - `aggregate_folded(..., upto, n)`: the fold mark;
//! - `aggregate_key_partials(..., dims, guard, state)`: folded partials.
//!
//! Sequence numbers are stored as 76-digit zero-padded text (ordered as numbers), states as the
//! [`AggState`] encoding, link entries as [`super::link`] bodies. Every write is one statement
//! or one `BEGIN IMMEDIATE` transaction, so it is atomic across connections and processes.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::link::{decode_entries, encode_entries};
use super::{AggregateStore, ChainHead, Link, Partial, PartialWrite, PutOutcome, ShardWindow, StoreError, WindowKey};
use crate::key::{AggKey, DimValue, parse_dims_text};
use crate::state::AggState;
use crate::window::WindowSize;
use sluice_stream::SequenceNumber;

/// SQLite-backed chains and partials. Cheap to clone (shares one connection).
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

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA busy_timeout = 5000;
CREATE TABLE IF NOT EXISTS aggregate_links (
    event_type   TEXT    NOT NULL,
    window_secs  INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    shard        TEXT    NOT NULL,
    prev         TEXT    NOT NULL,
    last         TEXT    NOT NULL,
    n            INTEGER NOT NULL,
    entries      BLOB    NOT NULL,
    PRIMARY KEY (event_type, window_secs, window_start, shard, prev)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aggregate_folded (
    event_type   TEXT    NOT NULL,
    window_secs  INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    shard        TEXT    NOT NULL,
    upto         TEXT    NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (event_type, window_secs, window_start, shard)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aggregate_key_partials (
    event_type   TEXT    NOT NULL,
    window_secs  INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    shard        TEXT    NOT NULL,
    dims         TEXT    NOT NULL,
    guard        TEXT    NOT NULL,
    state        BLOB    NOT NULL,
    PRIMARY KEY (event_type, window_secs, window_start, shard, dims)
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

fn seq(text: &str) -> Result<SequenceNumber, StoreError> {
    text.parse::<SequenceNumber>().map_err(corrupt)
}

fn count(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(corrupt)
}

fn link_of(prev: &str, last: &str, n: i64, entries: &[u8]) -> Result<Link, StoreError> {
    Ok(Link { prev: seq(prev)?, last: seq(last)?, n: count(n)?, entries: decode_entries(entries).map_err(corrupt)? })
}

fn chain_head(conn: &Connection, shard: &str, w: &WindowKey) -> Result<ChainHead, StoreError> {
    let newest: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT last, n FROM aggregate_links WHERE event_type = ?1 AND window_secs = ?2 \
             AND window_start = ?3 AND shard = ?4 ORDER BY prev DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row(params![w.event_type, w.window.secs(), w.window_start, shard], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(unavailable)?;
    let folded = folded_mark(conn, shard, w)?;
    let mut head = ChainHead::default();
    if let Some((last, n)) = newest {
        head.last = seq(&last)?;
        head.n = count(n)?;
    }
    if let Some((upto, n)) = folded {
        head.folded = upto;
        head.folded_n = n;
    }
    Ok(head)
}

fn folded_mark(conn: &Connection, shard: &str, w: &WindowKey) -> Result<Option<(SequenceNumber, u64)>, StoreError> {
    let row: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT upto, n FROM aggregate_folded WHERE event_type = ?1 AND window_secs = ?2 \
             AND window_start = ?3 AND shard = ?4",
        )
        .and_then(|mut s| {
            s.query_row(params![w.event_type, w.window.secs(), w.window_start, shard], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(unavailable)?;
    row.map(|(u, n)| Ok((seq(&u)?, count(n)?))).transpose()
}

fn chain_links(conn: &Connection, shard: &str, w: &WindowKey, from: SequenceNumber) -> Result<Vec<Link>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT prev, last, n, entries FROM aggregate_links WHERE event_type = ?1 AND window_secs = ?2 \
             AND window_start = ?3 AND shard = ?4 AND prev >= ?5 ORDER BY prev",
        )
        .map_err(unavailable)?;
    let rows = stmt
        .query_map(params![w.event_type, w.window.secs(), w.window_start, shard, from.padded()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, Vec<u8>>(3)?))
        })
        .map_err(unavailable)?;
    let mut out = Vec::new();
    for row in rows {
        let (prev, last, n, entries) = row.map_err(unavailable)?;
        out.push(link_of(&prev, &last, n, &entries)?);
    }
    Ok(out)
}

fn key_partials(conn: &Connection, shard: &str, w: &WindowKey) -> Result<Vec<(Vec<DimValue>, Partial)>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT dims, guard, state FROM aggregate_key_partials WHERE event_type = ?1 AND window_secs = ?2 \
             AND window_start = ?3 AND shard = ?4 ORDER BY dims",
        )
        .map_err(unavailable)?;
    let rows = stmt
        .query_map(params![w.event_type, w.window.secs(), w.window_start, shard], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?))
        })
        .map_err(unavailable)?;
    let mut out = Vec::new();
    for row in rows {
        let (dims, guard, state) = row.map_err(unavailable)?;
        let dims = parse_dims_text(&dims).ok_or_else(|| corrupt(format!("bad dims `{dims}`")))?;
        out.push((dims, Partial { guard: seq(&guard)?, state: AggState::decode(&state).map_err(corrupt)? }));
    }
    Ok(out)
}

impl AggregateStore for SqliteAggregateStore {
    async fn heads(&self, shard: &str, windows: &[WindowKey]) -> Result<Vec<ChainHead>, StoreError> {
        let (shard, windows) = (shard.to_owned(), windows.to_vec());
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(unavailable)?; // one snapshot
            windows.iter().map(|w| chain_head(&tx, &shard, w)).collect()
        })
        .await
    }

    async fn append(&self, shard: &str, window: &WindowKey, link: &Link) -> Result<PutOutcome, StoreError> {
        let (shard, w) = (shard.to_owned(), window.clone());
        let entries = encode_entries(&link.entries).map_err(unavailable)?;
        let (prev, last, n) = (link.prev.padded(), link.last.padded(), i64::try_from(link.n).map_err(corrupt)?);
        self.with_conn(move |conn| {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO aggregate_links (event_type, window_secs, window_start, shard, prev, last, n, entries) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![w.event_type, w.window.secs(), w.window_start, shard, prev, last, n, entries])
                })
                .map_err(unavailable)?;
            Ok(if inserted == 1 { PutOutcome::Written } else { PutOutcome::Conflict })
        })
        .await
    }

    async fn links(&self, shard: &str, window: &WindowKey, from: SequenceNumber) -> Result<Vec<Link>, StoreError> {
        let (shard, w) = (shard.to_owned(), window.clone());
        self.with_conn(move |conn| chain_links(conn, &shard, &w, from)).await
    }

    async fn partials(&self, shard: &str, window: &WindowKey) -> Result<Vec<(Vec<DimValue>, Partial)>, StoreError> {
        let (shard, w) = (shard.to_owned(), window.clone());
        self.with_conn(move |conn| key_partials(conn, &shard, &w)).await
    }

    async fn put_partial(
        &self,
        shard: &str,
        key: &AggKey,
        expected: Option<&Partial>,
        new: &Partial,
    ) -> Result<PutOutcome, StoreError> {
        let write = PartialWrite { key: key.clone(), expected: expected.cloned(), new: new.clone() };
        let mut outcomes = self.put_partials(shard, std::slice::from_ref(&write)).await?;
        outcomes.pop().ok_or_else(|| StoreError::Unavailable("no outcome of a partial write".into()))
    }

    /// All of `writes` in one transaction (one commit instead of one per key).
    async fn put_partials(&self, shard: &str, writes: &[PartialWrite]) -> Result<Vec<PutOutcome>, StoreError> {
        let shard = shard.to_owned();
        let writes: Vec<_> = writes
            .iter()
            .map(|w| {
                let expected = w.expected.as_ref().map(|p| (p.guard.padded(), p.state.encode()));
                (w.key.clone(), expected, w.new.guard.padded(), w.new.state.encode())
            })
            .collect();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let mut outcomes = Vec::with_capacity(writes.len());
            {
                let mut select = tx
                    .prepare_cached(
                        "SELECT guard, state FROM aggregate_key_partials WHERE event_type = ?1 AND window_secs = ?2 \
                         AND window_start = ?3 AND shard = ?4 AND dims = ?5",
                    )
                    .map_err(unavailable)?;
                let mut insert = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO aggregate_key_partials \
                         (event_type, window_secs, window_start, shard, dims, guard, state) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )
                    .map_err(unavailable)?;
                for (key, expected, guard, state) in &writes {
                    let dims = key.dims_text();
                    let stored: Option<(String, Vec<u8>)> = select
                        .query_row(params![key.event_type, key.window.secs(), key.window_start, shard, dims], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })
                        .optional()
                        .map_err(unavailable)?;
                    if stored != *expected {
                        outcomes.push(PutOutcome::Conflict);
                        continue;
                    }
                    insert
                        .execute(params![
                            key.event_type,
                            key.window.secs(),
                            key.window_start,
                            shard,
                            dims,
                            guard,
                            state
                        ])
                        .map_err(unavailable)?;
                    outcomes.push(PutOutcome::Written);
                }
            }
            tx.commit().map_err(unavailable)?;
            Ok(outcomes)
        })
        .await
    }

    async fn mark_folded(
        &self,
        shard: &str,
        window: &WindowKey,
        upto: SequenceNumber,
        n: u64,
    ) -> Result<(), StoreError> {
        let (shard, w) = (shard.to_owned(), window.clone());
        let n = i64::try_from(n).map_err(corrupt)?;
        self.with_conn(move |conn| {
            conn.prepare_cached(
                "INSERT INTO aggregate_folded (event_type, window_secs, window_start, shard, upto, n) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO UPDATE SET upto = excluded.upto, n = excluded.n \
                 WHERE excluded.n > aggregate_folded.n",
            )
            .and_then(|mut s| {
                s.execute(params![w.event_type, w.window.secs(), w.window_start, shard, upto.padded(), n])
            })
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn read(
        &self,
        event_type: &str,
        size: WindowSize,
        from: i64,
        to: i64,
    ) -> Result<Vec<ShardWindow>, StoreError> {
        let event_type = event_type.to_owned();
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(unavailable)?; // one snapshot for the whole read
            let mut chains: Vec<(i64, String)> = Vec::new();
            for table in ["aggregate_links", "aggregate_key_partials"] {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "SELECT DISTINCT window_start, shard FROM {table} WHERE event_type = ?1 \
                         AND window_secs = ?2 AND window_start >= ?3 AND window_start < ?4"
                    ))
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![event_type, size.secs(), from, to], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(unavailable)?;
                for row in rows {
                    chains.push(row.map_err(unavailable)?);
                }
            }
            chains.sort();
            chains.dedup();
            let mut out = Vec::with_capacity(chains.len());
            for (start, shard) in chains {
                let window = WindowKey { event_type: event_type.clone(), window: size, window_start: start };
                let mark = folded_mark(&tx, &shard, &window)?.map_or(SequenceNumber::ZERO, |(u, _)| u);
                let links = chain_links(&tx, &shard, &window, mark)?;
                let partials = key_partials(&tx, &shard, &window)?;
                out.push(ShardWindow { window, shard, partials, links });
            }
            Ok(out)
        })
        .await
    }
}
