//! Backfill under random interleavings of stream deliveries, redeliveries and skipped records,
//! lake progress, folds, crashed backfills and late events: once the lake holds everything and a backfill has
//! run, the store equals the aggregate of each distinct event once (its earliest copy); a second
//! backfill writes nothing; events arriving afterwards still count.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::TimeDelta;
use proptest::prelude::*;
use sluice_aggregators::key::DimRef;
use sluice_aggregators::store::{AggregateStore, WindowBackfill, WindowKey, backfill_window, fold, scan};
use sluice_aggregators::{
    AggKey, AggState, BatchAggregator, BatchDelta, Contribution, KeyDelta, Observation, WindowConfig, WindowSize,
    apply_batch,
};
use sluice_schemas::Instant;
use sluice_stream::SequenceNumber;

use crate::support::*;

const TYPE: &str = "bf";
const SHARDS: [&str; 2] = ["shardId-0", "shardId-1"];

/// One event (what a producer posts, maybe more than once).
#[derive(Debug, Clone, Copy)]
struct Event {
    group: u8,
    minute: i64,
    measure: f64,
    identity: u32,
}

/// One copy of an event in the stream: its shard, sequence number (per shard, from 1) and
/// arrival second (later copies are producer retries).
#[derive(Debug, Clone, Copy)]
struct Copy {
    event: usize,
    shard: usize,
    seq: u64,
    arrival: i64,
}

fn contribution(e: &Event, arrival: i64) -> Contribution<'static> {
    let occurred_at = t0() + TimeDelta::seconds(e.minute * 60 + 7);
    let late = if e.group == 3 { TimeDelta::minutes(30) } else { TimeDelta::zero() };
    Contribution {
        event_type: Cow::Borrowed(TYPE),
        occurred_at: Instant::from_datetime(occurred_at),
        received_at: Instant::from_datetime(occurred_at + late + TimeDelta::seconds(arrival)),
        dims: vec![DimRef::from(format!("g{}", e.group % 2)), DimRef::Int(i64::from(e.group / 2))],
        obs: Observation { measure: Some(e.measure), identity: Some(e.identity) },
    }
}

fn aggregate<'a>(events: &[Event], copies: impl IntoIterator<Item = &'a Copy>) -> BatchDelta {
    let mut agg = BatchAggregator::new(WindowConfig::default());
    for c in copies {
        agg.add(seq(c.seq), &contribution(&events[c.event], c.arrival));
    }
    agg.finish()
}

/// The copy compaction keeps of each event among `copies`: the earliest arrival, then the lowest
/// shard, then the lowest sequence number.
fn canonical(copies: &[Copy]) -> Vec<Copy> {
    let mut first: BTreeMap<usize, Copy> = BTreeMap::new();
    for c in copies {
        let e = first.entry(c.event).or_insert(*c);
        if (c.arrival, c.shard, c.seq) < (e.arrival, e.shard, e.seq) {
            *e = *c;
        }
    }
    first.into_values().collect()
}

fn truth(events: &[Event], copies: &[Copy]) -> BTreeMap<(WindowSize, AggKey), AggState> {
    let mut out: BTreeMap<(WindowSize, AggKey), AggState> = BTreeMap::new();
    for d in aggregate(events, &canonical(copies)).deltas {
        out.entry((d.key.window, d.key)).or_default().merge(&d.state);
    }
    out
}

/// Every window the records can fall in.
fn windows() -> Vec<WindowKey> {
    let start = t0().timestamp();
    let mut out: Vec<WindowKey> = (0..3)
        .map(|m| WindowKey {
            event_type: TYPE.into(),
            window: WindowConfig::default().windows[0],
            window_start: start + m * 60,
        })
        .collect();
    out.push(WindowKey { event_type: TYPE.into(), window: WindowConfig::default().windows[1], window_start: start });
    out
}

/// The state of the store without keys whose every shard is empty (what a backfill leaves of a
/// key the lake does not hold).
async fn live<S: AggregateStore>(store: &S) -> BTreeMap<(WindowSize, AggKey), AggState> {
    snapshot(store, TYPE).await.into_iter().filter(|(_, s)| s.count > 0).collect()
}

struct World {
    events: Vec<Event>,
    /// Per shard, its copies in sequence order.
    shards: [Vec<Copy>; 2],
    /// Per shard, how many of its copies the lake holds (a prefix: the lake writer's progress).
    lake: [usize; 2],
    /// Per shard, the aggregator's checkpoint (copies delivered and applied).
    applied: [usize; 2],
}

impl World {
    fn lake_copies(&self) -> Vec<Copy> {
        (0..2).flat_map(|s| self.shards[s][..self.lake[s]].iter().copied()).collect()
    }

    fn complete_through(&self, shard: usize) -> SequenceNumber {
        match self.lake[shard] {
            0 => SequenceNumber::ZERO,
            n => seq(self.shards[shard][n - 1].seq),
        }
    }

    /// The lake's deltas of `shard` in `window` in `(above, upto]`, deduplicated.
    fn lake_deltas(
        &self,
        shard: usize,
        window: &WindowKey,
    ) -> impl Fn(SequenceNumber, SequenceNumber) -> Vec<KeyDelta> {
        let kept: Vec<Copy> = canonical(&self.lake_copies()).into_iter().filter(|c| c.shard == shard).collect();
        let delta = aggregate(&self.events, &kept);
        let window = window.clone();
        move |above, upto| {
            (0..delta.deltas.len())
                .filter(|&i| delta.deltas[i].key.window_key() == window)
                .filter_map(|i| delta.delta_between(i, above, upto))
                .collect()
        }
    }

    async fn backfill<S: AggregateStore>(&self, store: &S) -> Result<Vec<(WindowKey, usize, WindowBackfill)>, String> {
        let mut out = Vec::new();
        for w in windows() {
            for (s, name) in SHARDS.iter().enumerate() {
                let r = backfill_window(store, name, &w, self.complete_through(s), self.lake_deltas(s, &w), 4)
                    .await
                    .map_err(|e| e.to_string())?;
                out.push((w.clone(), s, r));
            }
        }
        Ok(out)
    }

    /// Right after a backfill with these `reports`: each (window, shard) holds the lake's
    /// deduplicated records up to its fence, plus what the chain's links above it hold.
    async fn check_fences<S: AggregateStore>(&self, store: &S, reports: &[(WindowKey, usize, WindowBackfill)]) {
        let canon = canonical(&self.lake_copies());
        for (w, s, r) in reports {
            let below = canon.iter().filter(|c| c.shard == *s && seq(c.seq) <= r.fence);
            let mut expected: BTreeMap<AggKey, AggState> = BTreeMap::new();
            for d in aggregate(&self.events, below).deltas {
                if d.key.window_key() == *w {
                    expected.entry(d.key).or_default().merge(&d.state);
                }
            }
            for l in store.links(SHARDS[*s], w, SequenceNumber::ZERO).await.unwrap() {
                for (dims, state) in l.entries.into_iter().filter(|_| l.last > r.fence) {
                    expected.entry(w.key(dims)).or_default().merge(&state);
                }
            }
            let actual: BTreeMap<AggKey, AggState> = scan(store, TYPE, w.window, w.window_start, w.window_start + 1)
                .await
                .unwrap()
                .into_iter()
                .filter(|(_, shard, state)| shard == SHARDS[*s] && state.count > 0)
                .map(|(k, _, state)| (k, state))
                .collect();
            assert_eq!(actual, expected, "{w:?} shard {s} fence {:?}", r.fence);
        }
    }

    async fn deliver<S: AggregateStore>(&mut self, store: &S, shard: usize, size: usize, back: usize) {
        let start = self.applied[shard].saturating_sub(back);
        let end = (start + size).min(self.shards[shard].len());
        if start >= end {
            return;
        }
        let batch = aggregate(&self.events, &self.shards[shard][start..end]);
        let r = apply_batch(store, SHARDS[shard], &batch, &fast_policy()).await;
        assert_eq!(r.failed_from, None, "{:?}", r.errors);
        self.applied[shard] = self.applied[shard].max(end);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Deliver {
        shard: usize,
        size: usize,
        back: usize,
    },
    /// The aggregator gives up on `size` records (its trigger set them aside): only the lake
    /// has them.
    Skip {
        shard: usize,
        size: usize,
    },
    Lake {
        shard: usize,
        size: usize,
    },
    Fold {
        shard: usize,
    },
    Backfill,
    /// A backfill that crashes after `writes` writes.
    CrashedBackfill {
        writes: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..2, 1usize..12, 0usize..6).prop_map(|(shard, size, back)| Op::Deliver { shard, size, back }),
        3 => (0usize..2, 1usize..12).prop_map(|(shard, size)| Op::Lake { shard, size }),
        1 => (0usize..2, 1usize..4).prop_map(|(shard, size)| Op::Skip { shard, size }),
        1 => (0usize..2).prop_map(|shard| Op::Fold { shard }),
        2 => Just(Op::Backfill),
        1 => (0usize..12).prop_map(|writes| Op::CrashedBackfill { writes }),
    ]
}

/// Events and their copies: `dups[i]` extra copies of event i, on `shard_of` shards, arriving in
/// `order`.
fn world(events: Vec<(u8, i64, u32)>, extra: Vec<(usize, usize)>, late: usize) -> (World, Vec<Copy>) {
    let events: Vec<Event> = events
        .into_iter()
        .enumerate()
        .map(|(i, (group, minute, identity))| Event { group, minute, measure: i as f64 * 1.25 - 3.0, identity })
        .collect();
    let n = events.len() - late;
    let mut arrivals: Vec<(usize, usize)> = (0..n).map(|e| (e, e % 2)).collect();
    for (e, shard) in extra {
        // A retry arrives later than the first copy, on any shard.
        let e = e % n;
        let at = arrivals.iter().position(|a| a.0 == e).unwrap_or(0) + 1;
        arrivals.insert(at.min(arrivals.len()), (e, shard % 2));
    }
    let mut shards: [Vec<Copy>; 2] = [Vec::new(), Vec::new()];
    for (arrival, (event, shard)) in arrivals.into_iter().enumerate() {
        let seq = shards[shard].len() as u64 + 1;
        shards[shard].push(Copy { event, shard, seq, arrival: arrival as i64 });
    }
    let base = shards.iter().map(Vec::len).sum::<usize>() as i64;
    let late_copies = (n..events.len())
        .enumerate()
        .map(|(i, event)| {
            let shard = event % 2;
            Copy { event, shard, seq: 0, arrival: base + i as i64 }
        })
        .collect();
    (World { events, shards, lake: [0, 0], applied: [0, 0] }, late_copies)
}

async fn run(mut w: World, late: Vec<Copy>, ops: &[Op]) {
    let store = sqlite();
    for op in ops {
        match *op {
            Op::Deliver { shard, size, back } => w.deliver(&store, shard, size, back).await,
            Op::Skip { shard, size } => w.applied[shard] = (w.applied[shard] + size).min(w.shards[shard].len()),
            Op::Lake { shard, size } => w.lake[shard] = (w.lake[shard] + size).min(w.shards[shard].len()),
            Op::Fold { shard } => {
                for win in windows() {
                    fold(&store, SHARDS[shard], &win, &fast_policy()).await.unwrap();
                }
            }
            Op::Backfill => {
                let reports = w.backfill(&store).await.unwrap();
                w.check_fences(&store, &reports).await;
            }
            Op::CrashedBackfill { writes } => {
                let _ = w.backfill(&Crashing::new(store.clone(), writes)).await;
            }
        }
    }
    // Everything reaches the lake and the aggregator delivers the rest, then a backfill.
    for s in 0..2 {
        w.lake[s] = w.shards[s].len();
        let len = w.shards[s].len();
        w.deliver(&store, s, len, 0).await;
    }
    w.backfill(&store).await.unwrap();
    let all: Vec<Copy> = w.lake_copies();
    assert_eq!(live(&store).await, truth(&w.events, &all), "after the final backfill");

    let again = w.backfill(&store).await.unwrap();
    assert!(again.iter().all(|(_, _, r)| r.written == 0 && !r.caught_up), "a second backfill wrote: {again:?}");

    // Late events (one copy each) after the backfill: the stream counts them.
    for mut c in late {
        c.seq = w.shards[c.shard].len() as u64 + 1;
        w.shards[c.shard].push(c);
    }
    for s in 0..2 {
        let len = w.shards[s].len();
        w.deliver(&store, s, len, 0).await;
    }
    let with_late: Vec<Copy> = (0..2).flat_map(|s| w.shards[s].clone()).collect();
    assert_eq!(live(&store).await, truth(&w.events, &with_late), "late events after the backfill");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn backfill_makes_aggregates_exact_under_any_interleaving(
        events in proptest::collection::vec((0u8..4, 0i64..3, 0u32..9), 4..30),
        extra in proptest::collection::vec((0usize..30, 0usize..2), 0..10),
        ops in proptest::collection::vec(op(), 0..24),
    ) {
        let late = events.len() / 4;
        let (w, late) = world(events, extra, late);
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run(w, late, &ops));
    }
}

/// Without backfill the stream counts a retried event twice; the backfill makes it once.
#[tokio::test]
async fn a_retried_event_counts_once_after_backfill() {
    let (mut w, _) = world(vec![(0, 0, 1), (1, 1, 2), (2, 2, 3)], vec![(0, 1)], 0);
    let store = sqlite();
    for s in 0..2 {
        let len = w.shards[s].len();
        w.deliver(&store, s, len, 0).await;
    }
    let all: Vec<Copy> = (0..2).flat_map(|s| w.shards[s].clone()).collect();
    let counted: u64 = live(&store).await.values().map(|s| s.count).sum();
    assert_eq!(counted, 2 * 4, "two windows (1m, 1h) per copy");
    assert_ne!(live(&store).await, truth(&w.events, &all));
    w.lake = [w.shards[0].len(), w.shards[1].len()];
    w.backfill(&store).await.unwrap();
    assert_eq!(live(&store).await, truth(&w.events, &all));
    let counted: u64 = live(&store).await.values().map(|s| s.count).sum();
    assert_eq!(counted, 2 * 3);
}

/// The lake ahead of the aggregator: the backfill appends what the chain had not seen, and the
/// stream's later delivery of the same records adds nothing.
#[tokio::test]
async fn the_lake_ahead_of_the_stream_is_caught_up_once() {
    let (mut w, _) = world((0..8).map(|i| (i % 4, i64::from(i % 3), u32::from(i))).collect(), vec![], 0);
    let store = sqlite();
    w.deliver(&store, 0, 1, 0).await;
    w.lake = [w.shards[0].len(), w.shards[1].len()];
    let reports = w.backfill(&store).await.unwrap();
    assert!(reports.iter().any(|(_, _, r)| r.caught_up));
    let all: Vec<Copy> = (0..2).flat_map(|s| w.shards[s].clone()).collect();
    assert_eq!(live(&store).await, truth(&w.events, &all));
    for s in 0..2 {
        let len = w.shards[s].len();
        w.deliver(&store, s, len, len).await;
    }
    assert_eq!(live(&store).await, truth(&w.events, &all), "redelivery after catch-up");
}

/// The same protocol on DynamoDB (moto).
#[tokio::test]
async fn backfill_on_dynamodb() {
    let Some(store) = dynamo().await else { return };
    let (mut w, _) = world((0..10).map(|i| (i % 4, i64::from(i % 3), u32::from(i))).collect(), vec![(2, 1), (5, 0)], 0);
    for s in 0..2 {
        let len = w.shards[s].len();
        w.deliver(&store, s, len, 0).await;
    }
    w.lake = [w.shards[0].len(), w.shards[1].len() - 1];
    w.backfill(&store).await.unwrap();
    w.lake = [w.shards[0].len(), w.shards[1].len()];
    w.backfill(&store).await.unwrap();
    let all: Vec<Copy> = (0..2).flat_map(|s| w.shards[s].clone()).collect();
    assert_eq!(live(&store).await, truth(&w.events, &all));
    assert!(w.backfill(&store).await.unwrap().iter().all(|(_, _, r)| r.written == 0));
}
