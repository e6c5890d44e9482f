//! Shared SQLite connection setup for the local adapters (stream, checkpoints, failure destination).

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

/// How durable a committed SQLite transaction is (WAL mode in every case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL`: a commit survives a crash of the process (the WAL is written before
    /// the commit returns) but the last commits may be lost if the machine loses power or the OS
    /// crashes. The default: the embedded deployment is one machine, and this is much faster.
    #[default]
    ProcessCrash,
    /// `synchronous=FULL`: the WAL is fsynced on every commit; a commit also survives power loss.
    PowerLoss,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::ProcessCrash => "NORMAL",
            Durability::PowerLoss => "FULL",
        }
    }
}

/// How long a connection waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating if needed) a SQLite database in WAL mode with the given durability.
pub(crate) fn open(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("cannot put {} in WAL mode (journal_mode={mode})", path.display())),
        ));
    }
    conn.pragma_update(None, "synchronous", durability.pragma())?;
    Ok(conn)
}

/// Locks a mutex, recovering the data if a previous holder panicked (SQLite rolls back an
/// unfinished transaction when it is dropped, so the connection is still consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
