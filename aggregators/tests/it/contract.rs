//! The AggregateStore contract suite, run against every adapter (SQLite; DynamoDB on moto).

use sluice_aggregators::store::{AggregateStore, Partial, PutOutcome};
use sluice_aggregators::{AggKey, AggState, apply_batch};

use crate::support::*;

const SHARD: &str = "shardId-000000000000";

async fn replaying_a_batch_changes_nothing<S: AggregateStore>(store: S) {
    let rs = recs(1..=40);
    let b = batch_of("t", &rs);
    let first = apply_batch(&store, SHARD, &b, &fast_policy()).await;
    assert_eq!(first.failed_from, None);
    assert_eq!(first.written, b.deltas.len());
    let before = snapshot(&store, "t").await;
    assert_eq!(before, expected("t", &rs));
    let again = apply_batch(&store, SHARD, &b, &fast_policy()).await;
    assert_eq!((again.written, again.skipped), (0, b.deltas.len()));
    assert_eq!(snapshot(&store, "t").await, before);
}

async fn resplit_with_overlap_never_double_counts<S: AggregateStore>(store: S) {
    let all = recs(1..=60);
    for range in [1..=20u64, 10..=35, 5..=12, 30..=60, 1..=60, 59..=60] {
        let part: Vec<_> = all.iter().filter(|r| range.contains(&r.seq)).copied().collect();
        let report = apply_batch(&store, SHARD, &batch_of("t", &part), &fast_policy()).await;
        assert_eq!(report.failed_from, None);
    }
    assert_eq!(snapshot(&store, "t").await, expected("t", &all));
}

async fn several_shards_sum<S: AggregateStore>(store: S) {
    let a = recs(1..=30);
    let b = recs(1..=25); // same sequence numbers on another shard are other records
    apply_batch(&store, "shardId-a", &batch_of("t", &a), &fast_policy()).await;
    apply_batch(&store, "shardId-b", &batch_of("t", &b), &fast_policy()).await;
    let mut both = expected("t", &a);
    for (k, s) in expected("t", &b) {
        both.entry(k).or_default().merge(&s);
    }
    assert_eq!(snapshot(&store, "t").await, both);
    // Each shard keeps its own partial.
    let rows = store
        .scan("t", sluice_aggregators::window::MINUTE, t0().timestamp() - 600, t0().timestamp() + 600)
        .await
        .unwrap();
    assert!(rows.iter().any(|(_, s, _)| s == "shardId-a"));
    assert!(rows.iter().any(|(_, s, _)| s == "shardId-b"));
    // Extreme ranges never panic (an adapter may refuse them as too large).
    let _ = store.scan("t", sluice_aggregators::window::MINUTE, i64::MIN, i64::MAX).await;
}

async fn crash_between_partial_writes_is_repaired_by_redelivery<S: AggregateStore + Clone>(store: S) {
    let rs = recs(1..=50);
    let b = batch_of("t", &rs);
    assert!(b.deltas.len() > 6);
    let crashing = Crashing::new(store.clone(), 3);
    let report = apply_batch(&crashing, SHARD, &b, &fast_policy()).await;
    let from = report.failed_from.expect("the crash is reported");
    // Redeliver from the reported sequence number (what Lambda does) ...
    let rest: Vec<_> = rs.iter().filter(|r| seq(r.seq) >= from).copied().collect();
    let again = apply_batch(&store, SHARD, &batch_of("t", &rest), &fast_policy()).await;
    assert_eq!(again.failed_from, None);
    // ... and, as a retry of the whole batch would, everything once more.
    apply_batch(&store, SHARD, &b, &fast_policy()).await;
    assert_eq!(snapshot(&store, "t").await, expected("t", &rs));
}

async fn put_is_compare_and_set<S: AggregateStore>(store: S) {
    let key = batch_of("t", &recs(1..=1)).deltas[0].key.clone();
    assert_eq!(store.load(SHARD, std::slice::from_ref(&key)).await.unwrap(), vec![None]);
    let p1 = Partial { guard: seq(5), state: AggState::default() };
    let p2 = Partial { guard: seq(9), state: batch_of("t", &recs(1..=1)).deltas[0].state.clone() };
    assert_eq!(store.put(SHARD, &key, None, &p1).await.unwrap(), PutOutcome::Written);
    assert_eq!(store.put(SHARD, &key, None, &p2).await.unwrap(), PutOutcome::Conflict);
    assert_eq!(store.put(SHARD, &key, Some(seq(4)), &p2).await.unwrap(), PutOutcome::Conflict);
    assert_eq!(store.load(SHARD, std::slice::from_ref(&key)).await.unwrap(), vec![Some(p1)]);
    assert_eq!(store.put(SHARD, &key, Some(seq(5)), &p2).await.unwrap(), PutOutcome::Written);
    let other = AggKey { window_start: key.window_start + 60, ..key.clone() };
    assert_eq!(store.load(SHARD, &[other, key.clone()]).await.unwrap(), vec![None, Some(p2)]);
    assert_eq!(store.load("shardId-other", &[key]).await.unwrap(), vec![None]);
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                super::$case(crate::support::sqlite()).await;
            })*

            #[tokio::test]
            async fn file_backed_store_persists() {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("aggregates.db");
                let store = sluice_aggregators::SqliteAggregateStore::open(&path).unwrap();
                let rs = crate::support::recs(1..=10);
                sluice_aggregators::apply_batch(&store, "s", &crate::support::batch_of("t", &rs), &crate::support::fast_policy()).await;
                drop(store);
                let reopened = sluice_aggregators::SqliteAggregateStore::open(&path).unwrap();
                assert_eq!(crate::support::snapshot(&reopened, "t").await, crate::support::expected("t", &rs));
            }
        }
        mod dynamodb {
            $(#[tokio::test]
            async fn $case() {
                let Some(store) = crate::support::dynamo().await else { return };
                super::$case(store).await;
            })*

            #[tokio::test]
            async fn counts_write_units_one_per_key_and_shard() {
                let Some(store) = crate::support::dynamo().await else { return };
                let b = crate::support::batch_of("t", &crate::support::recs(1..=40));
                sluice_aggregators::apply_batch(&store, "s", &b, &crate::support::fast_policy()).await;
                // Small partials: 1 WRU per conditional put, one put per key.
                assert_eq!(store.write_units(), b.deltas.len() as u64);
            }
        }
    };
}

contract!(
    replaying_a_batch_changes_nothing,
    resplit_with_overlap_never_double_counts,
    several_shards_sum,
    crash_between_partial_writes_is_repaired_by_redelivery,
    put_is_compare_and_set,
);
