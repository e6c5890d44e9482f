//! The pure core of the runner: how an invocation's result moves a batch forward (no I/O, time
//! passed in).

use aws_lambda_events::streams::KinesisEventResponse;
use chrono::{DateTime, Utc};

use sluice_stream::{SequenceNumber, StreamRecord};

/// A contiguous run of a shard's records awaiting delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// Records still to deliver, in sequence order (may be empty after expiry).
    pub records: Vec<StreamRecord>,
    /// Retries already spent on these records.
    pub retries: u32,
    /// The last sequence number this run covers: the checkpoint once it is resolved (records
    /// removed from `records`, e.g. expired ones, were resolved already).
    pub range_last: SequenceNumber,
}

impl Pending {
    pub(crate) fn new(records: Vec<StreamRecord>) -> Option<Pending> {
        let range_last = records.last()?.sequence_number;
        Some(Pending { records, retries: 0, range_last })
    }
}

/// What the handler's answer means for the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every record succeeded.
    Success,
    /// Records before `first_failed` (an index into the batch) succeeded; it and the later ones
    /// failed.
    PartialFailure { first_failed: usize, detail: String },
    /// The whole batch failed (function error, timeout, panic, or an invalid failure report).
    FunctionError { error: String },
}

/// Interprets a handler result for `records` (sorted by sequence number).
pub(crate) fn interpret(
    result: Result<KinesisEventResponse, String>,
    records: &[StreamRecord],
    report_batch_item_failures: bool,
) -> Outcome {
    let response = match result {
        Err(error) => return Outcome::FunctionError { error },
        Ok(r) => r,
    };
    if !report_batch_item_failures || response.batch_item_failures.is_empty() {
        return Outcome::Success;
    }
    let mut first: Option<usize> = None;
    for failure in &response.batch_item_failures {
        let id = failure.item_identifier.as_deref().unwrap_or("");
        let index = if id.is_empty() {
            None
        } else {
            id.parse::<SequenceNumber>()
                .ok()
                .and_then(|seq| records.binary_search_by(|r| r.sequence_number.cmp(&seq)).ok())
        };
        match index {
            Some(i) => first = Some(first.map_or(i, |f| f.min(i))),
            None => {
                return Outcome::FunctionError {
                    error: format!(
                        "batchItemFailures has an invalid itemIdentifier {:?} (empty, not a sequence number, or not in the batch): the whole batch failed",
                        failure.item_identifier
                    ),
                };
            }
        }
    }
    match first {
        Some(first_failed) => {
            let seq = records.get(first_failed).map(|r| r.sequence_number.to_string()).unwrap_or_default();
            Outcome::PartialFailure {
                first_failed,
                detail: format!("handler reported record {seq} (and any later) as failed"),
            }
        }
        None => Outcome::Success,
    }
}

/// The retry policy part of the mapping configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub maximum_retry_attempts: Option<u32>,
    pub bisect_batch_on_function_error: bool,
}

impl Policy {
    fn exhausted(&self, retries: u32) -> bool {
        self.maximum_retry_attempts.is_some_and(|m| retries >= m)
    }
}

/// The next step for a pending run after an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// All delivered records succeeded: checkpoint `checkpoint`.
    Done { checkpoint: SequenceNumber },
    /// Checkpoint `acked` (if any: the records before the failure succeeded), wait a backoff,
    /// then deliver `next` again.
    Retry { acked: Option<SequenceNumber>, next: Pending, error: String },
    /// Deliver `first`, then `second` (no retry consumed).
    Bisect { first: Pending, second: Pending },
    /// Checkpoint `acked` (if any), send `failed.records` to the destination, then checkpoint
    /// `failed.range_last`.
    Discard { acked: Option<SequenceNumber>, failed: Pending, attempts: u32, error: String },
}

/// Applies an invocation outcome to the run `p` whose `records` were delivered.
pub(crate) fn decide(p: Pending, outcome: Outcome, policy: Policy) -> Step {
    match outcome {
        Outcome::Success => Step::Done { checkpoint: p.range_last },
        Outcome::PartialFailure { first_failed, detail } => {
            let mut records = p.records;
            let first_failed = first_failed.min(records.len());
            let rest = records.split_off(first_failed);
            let acked = records.last().map(|r| r.sequence_number);
            if rest.is_empty() {
                return Step::Done { checkpoint: p.range_last };
            }
            let failed = Pending { records: rest, retries: p.retries.saturating_add(1), range_last: p.range_last };
            if policy.exhausted(p.retries) {
                Step::Discard { acked, failed, attempts: p.retries.saturating_add(1), error: detail }
            } else {
                Step::Retry { acked, next: failed, error: detail }
            }
        }
        Outcome::FunctionError { error } => {
            if policy.bisect_batch_on_function_error && p.records.len() > 1 {
                let mut first = p.records;
                let second = first.split_off(first.len() / 2);
                let first_last = first.last().map_or(p.range_last, |r| r.sequence_number);
                Step::Bisect {
                    first: Pending { records: first, retries: p.retries, range_last: first_last },
                    second: Pending { records: second, retries: p.retries, range_last: p.range_last },
                }
            } else if policy.exhausted(p.retries) {
                Step::Discard { acked: None, attempts: p.retries.saturating_add(1), failed: p, error }
            } else {
                Step::Retry { acked: None, next: Pending { retries: p.retries.saturating_add(1), ..p }, error }
            }
        }
    }
}

/// Splits off the records that arrived more than `max_age` before `now` (they must not be
/// delivered). Returns the expired records, in order; `p.records` keeps the others.
pub(crate) fn take_expired(
    p: &mut Pending,
    now: DateTime<Utc>,
    max_age: Option<std::time::Duration>,
) -> Vec<StreamRecord> {
    let Some(max_age) = max_age else {
        return Vec::new();
    };
    let Ok(max_age) = chrono::Duration::from_std(max_age) else {
        return Vec::new();
    };
    let Some(cutoff) = now.checked_sub_signed(max_age) else {
        return Vec::new();
    };
    if !p.records.iter().any(|r| r.approximate_arrival < cutoff) {
        return Vec::new();
    }
    let (expired, kept): (Vec<_>, Vec<_>) =
        std::mem::take(&mut p.records).into_iter().partition(|r| r.approximate_arrival < cutoff);
    p.records = kept;
    expired
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_stream::shard_id;

    fn recs(seqs: &[u128]) -> Vec<StreamRecord> {
        seqs.iter()
            .map(|&n| StreamRecord {
                shard_id: shard_id(0),
                sequence_number: SequenceNumber::from_local(n),
                partition_key: "k".into(),
                approximate_arrival: DateTime::from_timestamp(1_000 + n as i64, 0).unwrap(),
                data: vec![n as u8],
            })
            .collect()
    }

    fn failures(ids: &[Option<&str>]) -> KinesisEventResponse {
        let mut r = KinesisEventResponse::default();
        r.set_failures(ids.iter().map(|i| i.unwrap_or_default().to_owned()));
        for (f, id) in r.batch_item_failures.iter_mut().zip(ids) {
            f.item_identifier = id.map(str::to_owned);
        }
        r
    }

    fn seq(n: u128) -> String {
        SequenceNumber::from_local(n).to_string()
    }

    #[test]
    fn interpret_cases() {
        let b = recs(&[1, 2, 3, 4]);
        let ok = KinesisEventResponse::default();
        assert_eq!(interpret(Ok(ok.clone()), &b, true), Outcome::Success);
        assert_eq!(interpret(Err("boom".into()), &b, true), Outcome::FunctionError { error: "boom".into() });
        // Lowest identifier wins, whatever the order.
        let r = failures(&[Some(&seq(4)), Some(&seq(2)), Some(&seq(3))]);
        assert!(matches!(interpret(Ok(r.clone()), &b, true), Outcome::PartialFailure { first_failed: 1, .. }));
        // Ignored without ReportBatchItemFailures.
        assert_eq!(interpret(Ok(r), &b, false), Outcome::Success);
        // Invalid identifiers fail the whole batch.
        for bad in [
            failures(&[Some("")]),
            failures(&[None]),
            failures(&[Some("nope")]),
            failures(&[Some(&seq(9))]),
            failures(&[Some(&seq(2)), Some("")]),
        ] {
            assert!(matches!(interpret(Ok(bad.clone()), &b, true), Outcome::FunctionError { .. }), "{bad:?}");
        }
    }

    const NO_RETRY_LIMIT: Policy = Policy { maximum_retry_attempts: None, bisect_batch_on_function_error: false };

    #[test]
    fn success_checkpoints_range_end() {
        let p = Pending::new(recs(&[1, 2])).unwrap();
        assert_eq!(
            decide(p, Outcome::Success, NO_RETRY_LIMIT),
            Step::Done { checkpoint: SequenceNumber::from_local(2) }
        );
    }

    #[test]
    fn partial_failure_acks_prefix_and_retries_suffix() {
        let p = Pending::new(recs(&[1, 2, 3])).unwrap();
        let step = decide(p, Outcome::PartialFailure { first_failed: 1, detail: String::new() }, NO_RETRY_LIMIT);
        let Step::Retry { acked, next, .. } = step else { panic!("{step:?}") };
        assert_eq!(acked, Some(SequenceNumber::from_local(1)));
        assert_eq!(next.records, recs(&[2, 3]));
        assert_eq!(next.retries, 1);
        assert_eq!(next.range_last, SequenceNumber::from_local(3));
    }

    #[test]
    fn function_error_retries_then_discards() {
        let policy = Policy { maximum_retry_attempts: Some(2), bisect_batch_on_function_error: false };
        let mut p = Pending::new(recs(&[1, 2])).unwrap();
        for expected_retries in 1..=2 {
            let step = decide(p, Outcome::FunctionError { error: "e".into() }, policy);
            let Step::Retry { acked: None, next, .. } = step else { panic!("{step:?}") };
            assert_eq!(next.retries, expected_retries);
            p = next;
        }
        let step = decide(p, Outcome::FunctionError { error: "e".into() }, policy);
        let Step::Discard { acked: None, failed, attempts: 3, .. } = step else { panic!("{step:?}") };
        assert_eq!(failed.records, recs(&[1, 2]));
    }

    #[test]
    fn zero_retries_discards_at_once() {
        let policy = Policy { maximum_retry_attempts: Some(0), bisect_batch_on_function_error: false };
        let p = Pending::new(recs(&[1, 2, 3])).unwrap();
        let step = decide(p, Outcome::PartialFailure { first_failed: 2, detail: String::new() }, policy);
        let Step::Discard { acked, failed, attempts: 1, .. } = step else { panic!("{step:?}") };
        assert_eq!(acked, Some(SequenceNumber::from_local(2)));
        assert_eq!(failed.records, recs(&[3]));
    }

    #[test]
    fn bisect_splits_without_consuming_retries() {
        let policy = Policy { maximum_retry_attempts: Some(0), bisect_batch_on_function_error: true };
        let mut p = Pending::new(recs(&[1, 2, 3, 4, 5])).unwrap();
        p.retries = 0;
        let step = decide(p, Outcome::FunctionError { error: "e".into() }, policy);
        let Step::Bisect { first, second } = step else { panic!("{step:?}") };
        assert_eq!(first.records, recs(&[1, 2]));
        assert_eq!(first.range_last, SequenceNumber::from_local(2));
        assert_eq!(second.records, recs(&[3, 4, 5]));
        assert_eq!(second.range_last, SequenceNumber::from_local(5));
        assert_eq!((first.retries, second.retries), (0, 0));
        // A single record is not split: with no retries left it is discarded.
        let single = Pending::new(recs(&[3])).unwrap();
        assert!(matches!(
            decide(single, Outcome::FunctionError { error: "e".into() }, policy),
            Step::Discard { attempts: 1, .. }
        ));
    }

    #[test]
    fn expiry_removes_old_records_anywhere() {
        let mut p = Pending::new(recs(&[1, 2, 3])).unwrap();
        let now = DateTime::from_timestamp(1_000 + 12, 0).unwrap();
        // Arrivals are 1001, 1002, 1003; max age 10 s => cutoff 1002: record 1 expired.
        let expired = take_expired(&mut p, now, Some(std::time::Duration::from_secs(10)));
        assert_eq!(expired, recs(&[1]));
        assert_eq!(p.records, recs(&[2, 3]));
        assert!(take_expired(&mut p, now, None).is_empty());
    }
}
