//! Redrive: records the pipeline set aside, re-submitted to the stream once they are valid.
//!
//! - [`triage`] (pure): a recovered record's bytes against the current registry: re-submit it
//!   (the same bytes, partition key = its `event_id`, as ingest writes it) or leave it, with
//!   the reason it is still invalid.
//! - [`local`] (I/O, feature `local`): the sources of `sluice up`, its dead letters and its
//!   event source mappings' failure destination, re-submitted through the `EventLog` port.
//!
//! A re-submitted record keeps its `event_id` and envelope, so the lake's deduplication
//! (compaction keeps the earliest copy) and the backfill of aggregates treat a copy that did get
//! through before as the same event. A record leaves its source only after the stream took it:
//! a crash in between re-submits it on the next run, which the same deduplication absorbs; a
//! record is never dropped.

#[cfg(feature = "local")]
pub mod local;

use bytes::Bytes;
use sluice_ingest::eventlog::LogRecord;
use sluice_schemas::Registry;

/// What to do with one recovered record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid now: append this to the stream.
    Resubmit(LogRecord),
    /// Still not a valid stored event: why.
    StillInvalid(String),
}

/// Decides a recovered record (its stored bytes) with `registry` (pure).
pub fn triage(registry: &Registry, data: &[u8]) -> Verdict {
    match registry.decode_stored(data) {
        Ok(event) => Verdict::Resubmit(LogRecord { partition_key: event.event_id, data: Bytes::copy_from_slice(data) }),
        Err(rejection) => Verdict::StillInvalid(format!("invalid event: {rejection}")),
    }
}

/// What a redrive did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// Records re-submitted to the stream (and removed from their source).
    pub redriven: usize,
    /// Records still invalid, left in the dead letters with their current reason.
    pub still_invalid: usize,
    /// Records the stream did not take this time (left where they were, retried next run).
    pub not_written: usize,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_records_are_resubmitted_as_they_are_and_invalid_ones_explained() {
        let registry = Registry::builtin().unwrap();
        let event = sluice_testkit::generate::Generator::new(Default::default()).next_event();
        let bytes = sluice_testkit::generate::record_bytes(&event);
        assert_eq!(
            triage(&registry, &bytes),
            Verdict::Resubmit(LogRecord { partition_key: event.event_id.clone(), data: Bytes::from(bytes.clone()) })
        );
        let Verdict::StillInvalid(reason) = triage(&registry, b"{\"not\":\"an event\"}") else { panic!() };
        assert!(reason.starts_with("invalid event:"), "{reason}");
        let Verdict::StillInvalid(_) = triage(&registry, &bytes[..bytes.len() - 1]) else { panic!("cut short") };
    }
}
