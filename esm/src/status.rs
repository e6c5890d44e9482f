//! Live status and counters of a mapping, for `/health` and `/metrics` (plain data, lock-free
//! counters).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

use crate::sqlite::lock;

/// Counters are monotonic totals since the mapping was created; gauges are current values.
#[derive(Debug, Default)]
pub struct MappingStatus {
    name: String,
    running: AtomicBool,
    batches: AtomicU64,
    records: AtomicU64,
    succeeded_records: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
    bisections: AtomicU64,
    discarded_records: AtomicU64,
    expired_records: AtomicU64,
    port_errors: AtomicU64,
    consecutive_port_errors: AtomicU64,
    iterator_age_ms: Mutex<BTreeMap<String, u64>>,
    last_error: Mutex<Option<String>>,
}

/// A point-in-time copy of [`MappingStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappingStatusSnapshot {
    /// The mapping name.
    pub name: String,
    /// Whether `run` is executing.
    pub running: bool,
    /// Invocations of the handler (counter).
    pub batches: u64,
    /// Records delivered, redeliveries included (counter).
    pub records: u64,
    /// Records the handler processed successfully (counter).
    pub succeeded_records: u64,
    /// Failed invocations: function errors and partial failures (counter).
    pub failures: u64,
    /// Retries scheduled (counter; bisection is not a retry).
    pub retries: u64,
    /// Batches split in two after a function error (counter).
    pub bisections: u64,
    /// Records sent to the on-failure destination, expired ones included (counter).
    pub discarded_records: u64,
    /// Records discarded for exceeding the maximum record age (counter).
    pub expired_records: u64,
    /// Failed calls to the source, checkpoint store or destination (counter).
    pub port_errors: u64,
    /// Port errors since the last successful port call (gauge; > 0 means degraded).
    pub consecutive_port_errors: u64,
    /// Age of the last record of the most recent batch, max over shards, in ms (gauge: Lambda's
    /// `IteratorAge`).
    pub iterator_age_ms: u64,
    /// Shards with a worker that delivered at least one batch.
    pub active_shards: usize,
    /// The most recent error (function or port), if any.
    pub last_error: Option<String>,
}

impl MappingStatus {
    pub(crate) fn new(name: &str) -> Self {
        MappingStatus { name: name.to_owned(), ..MappingStatus::default() }
    }

    /// The mapping name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `run` is executing.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Healthy = running and the last port call succeeded.
    pub fn is_healthy(&self) -> bool {
        self.is_running() && self.consecutive_port_errors.load(Ordering::Relaxed) == 0
    }

    /// A consistent-enough copy of every counter (each read atomically).
    pub fn snapshot(&self) -> MappingStatusSnapshot {
        let ages = lock(&self.iterator_age_ms);
        MappingStatusSnapshot {
            name: self.name.clone(),
            running: self.is_running(),
            batches: self.batches.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            succeeded_records: self.succeeded_records.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            bisections: self.bisections.load(Ordering::Relaxed),
            discarded_records: self.discarded_records.load(Ordering::Relaxed),
            expired_records: self.expired_records.load(Ordering::Relaxed),
            port_errors: self.port_errors.load(Ordering::Relaxed),
            consecutive_port_errors: self.consecutive_port_errors.load(Ordering::Relaxed),
            iterator_age_ms: ages.values().copied().max().unwrap_or(0),
            active_shards: ages.len(),
            last_error: lock(&self.last_error).clone(),
        }
    }

    pub(crate) fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Relaxed);
    }

    pub(crate) fn invoked(&self, records: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(records as u64, Ordering::Relaxed);
    }

    pub(crate) fn succeeded(&self, records: usize) {
        self.succeeded_records.fetch_add(records as u64, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, error: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_error) = Some(error.to_owned());
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bisected(&self) {
        self.bisections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn discarded(&self, records: usize, expired: bool) {
        self.discarded_records.fetch_add(records as u64, Ordering::Relaxed);
        if expired {
            self.expired_records.fetch_add(records as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn port_error(&self, error: &str) {
        self.port_errors.fetch_add(1, Ordering::Relaxed);
        self.consecutive_port_errors.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_error) = Some(error.to_owned());
    }

    pub(crate) fn port_ok(&self) {
        self.consecutive_port_errors.store(0, Ordering::Relaxed);
    }

    pub(crate) fn iterator_age(&self, shard_id: &str, age_ms: u64) {
        lock(&self.iterator_age_ms).insert(shard_id.to_owned(), age_ms);
    }
}
