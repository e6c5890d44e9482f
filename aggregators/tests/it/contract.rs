//! The AggregateStore contract suite, run against every adapter (SQLite; DynamoDB on moto).

use std::borrow::Cow;

use sluice_aggregators::key::DimRef;
use sluice_aggregators::store::{
    AggregateStore, ChainHead, Link, Partial, PartialWrite, PutOutcome, WindowKey, fold, scan,
};
use sluice_aggregators::{AggState, BatchAggregator, Contribution, DimValue, Observation, WindowConfig, apply_batch};
use sluice_schemas::Instant;

use crate::support::*;

const SHARD: &str = "shardId-000000000000";

async fn replaying_a_batch_changes_nothing<S: AggregateStore>(store: S) {
    let rs = recs(1..=40);
    let b = batch_of("t", &rs);
    let first = apply_batch(&store, SHARD, &b, &fast_policy()).await;
    assert_eq!(first.failed_from, None);
    let windows: std::collections::BTreeSet<_> = b.deltas.iter().map(|d| d.key.window_key()).collect();
    assert_eq!(first.written, windows.len(), "one link per window");
    let before = snapshot(&store, "t").await;
    assert_eq!(before, expected("t", &rs));
    let again = apply_batch(&store, SHARD, &b, &fast_policy()).await;
    assert_eq!((again.written, again.skipped), (0, windows.len()));
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
    let rows = scan(&store, "t", sluice_aggregators::window::MINUTE, t0().timestamp() - 600, t0().timestamp() + 600)
        .await
        .unwrap();
    assert!(rows.iter().any(|(_, s, _)| s == "shardId-a"));
    assert!(rows.iter().any(|(_, s, _)| s == "shardId-b"));
    // Extreme ranges never panic (an adapter may refuse them as too large).
    let _ = scan(&store, "t", sluice_aggregators::window::MINUTE, i64::MIN, i64::MAX).await;
}

async fn crash_between_writes_is_repaired_by_redelivery<S: AggregateStore + Clone>(store: S) {
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

fn window() -> WindowKey {
    batch_of("t", &recs(1..=1)).deltas[0].key.window_key()
}

fn link(prev: u64, last: u64, n: u64, entries: Vec<(Vec<DimValue>, AggState)>) -> Link {
    Link { prev: if prev == 0 { sluice_stream::SequenceNumber::ZERO } else { seq(prev) }, last: seq(last), n, entries }
}

async fn append_is_compare_and_set_on_the_chain_head<S: AggregateStore>(store: S) {
    let w = window();
    assert_eq!(store.head(SHARD, &w).await.unwrap(), ChainHead::default());
    let d = batch_of("t", &recs(1..=1)).deltas[0].clone();
    let l1 = link(0, 5, 1, vec![(d.key.dims.clone(), d.state.clone())]);
    let l2 = link(5, 9, 2, vec![(d.key.dims.clone(), d.state.clone()), (vec![DimValue::Int(7)], AggState::default())]);
    assert_eq!(store.append(SHARD, &w, &l1).await.unwrap(), PutOutcome::Written);
    // A second writer that read the same (empty) head loses.
    assert_eq!(store.append(SHARD, &w, &link(0, 6, 1, vec![])).await.unwrap(), PutOutcome::Conflict);
    assert_eq!(store.append(SHARD, &w, &l2).await.unwrap(), PutOutcome::Written);
    // A stale head (5) conflicts with the link already appended to it.
    assert_eq!(store.append(SHARD, &w, &link(5, 7, 2, vec![])).await.unwrap(), PutOutcome::Conflict);
    let head = store.head(SHARD, &w).await.unwrap();
    assert_eq!((head.last, head.n, head.folded_n), (seq(9), 2, 0));
    let mut sorted = l2.clone();
    sorted.entries.sort_by_key(|(d, _)| sluice_aggregators::key::dims_text(d));
    assert_eq!(store.links(SHARD, &w, sluice_stream::SequenceNumber::ZERO).await.unwrap(), vec![l1, sorted.clone()]);
    assert_eq!(store.links(SHARD, &w, seq(5)).await.unwrap(), vec![sorted]);
    // Other shards and windows are other chains.
    assert_eq!(store.head("shardId-other", &w).await.unwrap(), ChainHead::default());
    let other = WindowKey { window_start: w.window_start + 60, ..w.clone() };
    assert_eq!(store.head(SHARD, &other).await.unwrap(), ChainHead::default());
    // Heads are read in batches, in order.
    let heads = store.heads(SHARD, &[other.clone(), w.clone(), other]).await.unwrap();
    assert_eq!(heads, vec![ChainHead::default(), head, ChainHead::default()]);
}

async fn partials_are_compare_and_set_and_marks_only_rise<S: AggregateStore>(store: S) {
    let w = window();
    let key = w.key(vec![DimValue::Str("a".into())]);
    let p1 = Partial { guard: seq(5), state: AggState::default() };
    let p2 = Partial { guard: seq(9), state: batch_of("t", &recs(1..=1)).deltas[0].state.clone() };
    assert_eq!(store.put_partial(SHARD, &key, None, &p1).await.unwrap(), PutOutcome::Written);
    assert_eq!(store.put_partial(SHARD, &key, None, &p2).await.unwrap(), PutOutcome::Conflict);
    let older_guard = Partial { guard: seq(4), ..p1.clone() };
    assert_eq!(store.put_partial(SHARD, &key, Some(&older_guard), &p2).await.unwrap(), PutOutcome::Conflict);
    // Same guard, another state (what a fold that raced a backfill read): no write.
    let other_state = Partial { guard: seq(5), state: p2.state.clone() };
    assert_eq!(store.put_partial(SHARD, &key, Some(&other_state), &p2).await.unwrap(), PutOutcome::Conflict);
    assert_eq!(store.partials(SHARD, &w).await.unwrap(), vec![(key.dims.clone(), p1.clone())]);
    assert_eq!(store.put_partial(SHARD, &key, Some(&p1), &p2).await.unwrap(), PutOutcome::Written);
    assert_eq!(store.partials(SHARD, &w).await.unwrap(), vec![(key.dims.clone(), p2.clone())]);
    // A rewrite of the same guard with another state is a write like any other.
    let rewritten = Partial { guard: seq(9), state: AggState::default() };
    assert_eq!(store.put_partial(SHARD, &key, Some(&p2), &rewritten).await.unwrap(), PutOutcome::Written);
    assert_eq!(store.put_partial(SHARD, &key, Some(&p2), &p1).await.unwrap(), PutOutcome::Conflict);
    assert_eq!(store.partials("shardId-other", &w).await.unwrap(), vec![]);
    store.mark_folded(SHARD, &w, seq(9), 3).await.unwrap();
    store.mark_folded(SHARD, &w, seq(5), 2).await.unwrap(); // lower: ignored
    let head = store.head(SHARD, &w).await.unwrap();
    assert_eq!((head.folded, head.folded_n), (seq(9), 3));
}

/// A batch of partial writes: each compare-and-set on its own, outcomes in order.
async fn batched_partial_writes_are_each_compare_and_set<S: AggregateStore>(store: S) {
    let w = window();
    let key = |d: &str| w.key(vec![DimValue::Str(d.into())]);
    let p1 = Partial { guard: seq(5), state: AggState::default() };
    let p2 = Partial { guard: seq(9), state: batch_of("t", &recs(1..=1)).deltas[0].state.clone() };
    let write = |d: &str, expected: Option<&Partial>, new: &Partial| PartialWrite {
        key: key(d),
        expected: expected.cloned(),
        new: new.clone(),
    };
    assert_eq!(store.put_partials(SHARD, &[]).await.unwrap(), vec![]);
    let first = [write("a", None, &p1), write("b", None, &p1)];
    assert_eq!(store.put_partials(SHARD, &first).await.unwrap(), vec![PutOutcome::Written; 2]);
    // A stale expectation on "a" conflicts; "b" and the new "c" are written all the same.
    let second = [write("a", Some(&p2), &p1), write("b", Some(&p1), &p2), write("c", None, &p2)];
    assert_eq!(
        store.put_partials(SHARD, &second).await.unwrap(),
        vec![PutOutcome::Conflict, PutOutcome::Written, PutOutcome::Written]
    );
    let mut stored = store.partials(SHARD, &w).await.unwrap();
    stored.sort_by(|x, y| format!("{:?}", x.0).cmp(&format!("{:?}", y.0)));
    assert_eq!(stored, vec![(key("a").dims, p1), (key("b").dims, p2.clone()), (key("c").dims, p2)]);
}

async fn folding_changes_no_answer<S: AggregateStore>(store: S) {
    let all = recs(1..=90);
    let mut policy = fast_policy();
    policy.fold_after_links = u64::MAX; // fold only by hand below
    for chunk in all.chunks(7) {
        let r = apply_batch(&store, SHARD, &batch_of("t", chunk), &policy).await;
        assert_eq!(r.failed_from, None);
    }
    let before = snapshot(&store, "t").await;
    assert_eq!(before, expected("t", &all));
    let windows: std::collections::BTreeSet<_> =
        batch_of("t", &all).deltas.iter().map(|d| d.key.window_key()).collect();
    for w in &windows {
        fold(&store, SHARD, w, &policy).await.unwrap();
        let head = store.head(SHARD, w).await.unwrap();
        assert_eq!((head.folded, head.folded_n), (head.last, head.n), "folded to the head");
        assert!(!store.partials(SHARD, w).await.unwrap().is_empty());
        fold(&store, SHARD, w, &policy).await.unwrap(); // idempotent
    }
    assert_eq!(snapshot(&store, "t").await, before);
    // Readers no longer read folded links.
    let read = store.read("t", sluice_aggregators::window::MINUTE, i64::MIN / 2, i64::MAX / 2).await;
    if let Ok(read) = read {
        assert!(read.iter().all(|w| w.links.is_empty()), "{read:?}");
    }
    // Appends after a fold still count once.
    let more = recs(91..=120);
    apply_batch(&store, SHARD, &batch_of("t", &more), &policy).await;
    let mut everything = all.clone();
    everything.extend(more);
    assert_eq!(snapshot(&store, "t").await, expected("t", &everything));
}

/// A fold that read the partials before another writer changed them: its writes conflict, it
/// reads them again and redoes those keys; the answer stays exact.
async fn a_fold_that_lost_a_race_redoes_its_keys<S: AggregateStore>(store: S) {
    let all = recs(1..=40);
    let mut policy = fast_policy();
    policy.fold_after_links = u64::MAX;
    apply_batch(&store, SHARD, &batch_of("t", &all[..20]), &policy).await;
    let window = batch_of("t", &all).deltas[0].key.window_key();
    fold(&store, SHARD, &window, &policy).await.unwrap();
    assert!(!store.partials(SHARD, &window).await.unwrap().is_empty());
    apply_batch(&store, SHARD, &batch_of("t", &all[20..]), &policy).await;
    let raced = StaleOnce::new(store);
    fold(&raced, SHARD, &window, &policy).await.unwrap();
    assert_eq!(raced.reads.load(std::sync::atomic::Ordering::SeqCst), 2, "read again after the conflicts");
    let head = raced.inner.head(SHARD, &window).await.unwrap();
    assert_eq!((head.folded, head.folded_n), (head.last, head.n), "folded to the head");
    assert_eq!(snapshot(&raced.inner, "t").await, expected("t", &all));
}

/// A batch whose one window has thousands of keys with random identities: its link is larger
/// than a DynamoDB item may be, and must still be stored whole.
async fn huge_links_are_stored_whole<S: AggregateStore>(store: S) {
    let mut agg = BatchAggregator::new(WindowConfig::default());
    let mut x = 0x9e37_79b9_u32;
    for i in 0..120_000u64 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let c = Contribution {
            event_type: Cow::Borrowed("t"),
            occurred_at: Instant::from_datetime(t0()),
            received_at: Instant::from_datetime(t0()),
            dims: vec![DimRef::Int((i % 30_000) as i64)],
            obs: Observation { measure: Some(f64::from(x % 100_000) / 7.0), identity: Some(x) },
        };
        agg.add(seq(i + 1), &c);
    }
    let b = agg.finish();
    let minute = Link {
        prev: sluice_stream::SequenceNumber::ZERO,
        last: seq(120_000),
        n: 1,
        entries: b
            .deltas
            .iter()
            .filter(|d| d.key.window.secs() == 60)
            .map(|d| (d.key.dims.clone(), d.state.clone()))
            .collect(),
    };
    let items = sluice_aggregators::store::dynamodb::link_items(SHARD, &window(), &minute).unwrap();
    assert!(items.len() > 1, "the test needs a link DynamoDB must split, got {} item(s)", items.len());
    let r = apply_batch(&store, SHARD, &b, &fast_policy()).await;
    assert_eq!(r.failed_from, None, "{:?}", r.errors);
    let mut truth: std::collections::BTreeMap<_, AggState> = std::collections::BTreeMap::new();
    for d in &b.deltas {
        truth.entry((d.key.window, d.key.clone())).or_default().merge(&d.state);
    }
    assert_eq!(snapshot(&store, "t").await, truth);
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
            async fn counts_write_units_one_small_link_per_window() {
                let Some(store) = crate::support::dynamo().await else { return };
                let b = crate::support::batch_of("t", &crate::support::recs(1..=40));
                let mut policy = crate::support::fast_policy();
                policy.fold_after_links = u64::MAX;
                sluice_aggregators::apply_batch(&store, "s", &b, &policy).await;
                // 8 keys in 3 minute windows and 1 hour window: 4 links of under 1 KB each.
                let windows: std::collections::BTreeSet<_> = b.deltas.iter().map(|d| d.key.window_key()).collect();
                assert_eq!(windows.len(), 4);
                assert_eq!(store.write_units(), 4);
            }
        }
    };
}

contract!(
    replaying_a_batch_changes_nothing,
    resplit_with_overlap_never_double_counts,
    several_shards_sum,
    crash_between_writes_is_repaired_by_redelivery,
    append_is_compare_and_set_on_the_chain_head,
    partials_are_compare_and_set_and_marks_only_rise,
    batched_partial_writes_are_each_compare_and_set,
    folding_changes_no_answer,
    a_fold_that_lost_a_race_redoes_its_keys,
    huge_links_are_stored_whole,
);
