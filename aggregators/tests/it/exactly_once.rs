//! Exactly-once under random re-batching, retries, partial failures, crashes and replays: the
//! store always ends equal to the aggregate of every record applied once.

use proptest::prelude::*;
use sluice_aggregators::apply_batch;
use sluice_aggregators::store::AggregateStore;
use sluice_stream::SequenceNumber;

use crate::support::*;

#[derive(Debug, Clone)]
enum Op {
    /// Deliver `size` records starting `back` records before the checkpoint.
    Deliver { size: usize, back: usize },
    /// The invocation crashes (function error) after `puts` writes: no progress.
    Crash { size: usize, back: usize, puts: usize },
    /// Partial failure after `puts` writes, reported as a batch item failure.
    Partial { size: usize, puts: usize },
    /// An already-processed range is delivered again.
    Replay { start: usize, size: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..25, 0usize..10).prop_map(|(size, back)| Op::Deliver { size, back }),
        (1usize..25, 0usize..10, 0usize..8).prop_map(|(size, back, puts)| Op::Crash { size, back, puts }),
        (1usize..25, 0usize..8).prop_map(|(size, puts)| Op::Partial { size, puts }),
        (0usize..60, 1usize..25).prop_map(|(start, size)| Op::Replay { start, size }),
    ]
}

fn counter_of(s: SequenceNumber) -> u64 {
    let text = s.to_string();
    text[text.len() - 28..].parse().unwrap()
}

async fn run<S: AggregateStore + Clone>(store: S, event_type: &str, n: u64, ops: &[Op]) {
    let all = recs(1..=n);
    let range = |a: u64, b: u64| -> Vec<Rec> { all.iter().filter(|r| r.seq >= a && r.seq <= b).copied().collect() };
    let mut next = 1u64; // the checkpoint: first record not yet known to be applied
    for op in ops {
        if next > n {
            break;
        }
        match *op {
            Op::Deliver { size, back } => {
                let start = next.saturating_sub(back as u64).max(1);
                let end = (start + size as u64 - 1).min(n);
                let r = apply_batch(&store, "s", &batch_of(event_type, &range(start, end)), &fast_policy()).await;
                assert_eq!(r.failed_from, None);
                next = next.max(end + 1);
            }
            Op::Crash { size, back, puts } => {
                let start = next.saturating_sub(back as u64).max(1);
                let end = (start + size as u64 - 1).min(n);
                let crashing = Crashing::new(store.clone(), puts);
                apply_batch(&crashing, "s", &batch_of(event_type, &range(start, end)), &fast_policy()).await;
            }
            Op::Partial { size, puts } => {
                let end = (next + size as u64 - 1).min(n);
                let crashing = Crashing::new(store.clone(), puts);
                let r = apply_batch(&crashing, "s", &batch_of(event_type, &range(next, end)), &fast_policy()).await;
                next = match r.failed_from {
                    Some(f) => next.max(counter_of(f)),
                    None => end + 1,
                };
            }
            Op::Replay { start, size } => {
                let start = (start as u64 + 1).min(next.saturating_sub(1)).max(1);
                let end = (start + size as u64 - 1).min(next.saturating_sub(1));
                if end >= start {
                    let before = snapshot(&store, event_type).await;
                    apply_batch(&store, "s", &batch_of(event_type, &range(start, end)), &fast_policy()).await;
                    assert_eq!(snapshot(&store, event_type).await, before, "replay changed state");
                }
            }
        }
    }
    if next <= n {
        let r = apply_batch(&store, "s", &batch_of(event_type, &range(next, n)), &fast_policy()).await;
        assert_eq!(r.failed_from, None);
    }
    assert_eq!(snapshot(&store, event_type).await, expected(event_type, &all));
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn sqlite_exactly_once(n in 5u64..70, ops in proptest::collection::vec(op(), 1..30)) {
        rt().block_on(run(sqlite(), "t", n, &ops));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
    #[test]
    fn dynamodb_exactly_once(n in 5u64..50, ops in proptest::collection::vec(op(), 1..15)) {
        rt().block_on(async {
            let Some(store) = dynamo().await else { return };
            run(store, "t", n, &ops).await;
        });
    }
}
