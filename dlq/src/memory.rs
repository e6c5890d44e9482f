//! In-memory dead letters for tests.

use std::sync::{Arc, Mutex, PoisonError};

use crate::{DeadLetter, DeadLetterQueue, DlqError};

/// Dead letters kept in memory, with the same dedup rule as [`crate::SqliteDeadLetters`].
/// [`MemoryDeadLetters::fail_next`] makes the next sends fail, to test retry paths.
#[derive(Clone, Default)]
pub struct MemoryDeadLetters {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    letters: Vec<DeadLetter>,
    failures_left: usize,
}

impl MemoryDeadLetters {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything stored so far, in arrival order.
    pub fn letters(&self) -> Vec<DeadLetter> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).letters.clone()
    }

    /// The next `n` calls to `send` fail with [`DlqError::Unavailable`] and store nothing.
    pub fn fail_next(&self, n: usize) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).failures_left = n;
    }
}

impl DeadLetterQueue for MemoryDeadLetters {
    async fn send(&self, letters: Vec<DeadLetter>) -> Result<(), DlqError> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.failures_left > 0 {
            inner.failures_left -= 1;
            return Err(DlqError::Unavailable("injected failure".into()));
        }
        for l in letters {
            let duplicate = l.shard_id.is_some()
                && l.sequence_number.is_some()
                && inner.letters.iter().any(|o| {
                    o.source == l.source && o.shard_id == l.shard_id && o.sequence_number == l.sequence_number
                });
            if !duplicate {
                inner.letters.push(l);
            }
        }
        Ok(())
    }
}
