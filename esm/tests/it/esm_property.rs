//! Property: under random function errors, partial failures, invalid failure reports, poisoned
//! records, graceful restarts and crashes (the runtime dropped mid-flight, every handle reopened
//! from the same file), the event source mapping
//!
//! 1. delivers every batch as a contiguous run of its shard's records starting exactly at the
//!    shard's *frontier* (the first record not yet resolved). So per shard the first deliveries
//!    are in sequence order, nothing is skipped, and a redelivery repeats exactly the unresolved
//!    suffix from the failed point (whole batch, first failed item, or bisected half);
//! 2. resolves records only at the frontier: the handler's acknowledged prefix (the records
//!    before the first reported failure, or all on success) and discarded runs each start at
//!    the frontier and advance it;
//! 3. after a restart resumes from the durable checkpoint, which never exceeds the frontier and,
//!    after a graceful stop, equals it;
//! 4. in the end resolves every record: acknowledged by the handler or stored in the failure
//!    table with its exact payload (at least one of the two). Poisoned records are never
//!    acknowledged and always discarded. Without crashes, every record is resolved exactly
//!    once: acknowledged once XOR discarded once. With crashes a record may be resolved more
//!    than once (at-least-once), never zero times.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::streams::KinesisEventResponse;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sluice_esm::{
    EventSourceMapping, FailedBatch, FailureDestination, FailureReason, PortError, PutEntry, SqliteFailureDestination,
};
use sluice_stream::{BatchHandler, HandlerError, SequenceNumber};
use tokio_util::sync::CancellationToken;

use crate::support::{Invocation, config, open_all};

const NAME: &str = "prop";

#[derive(Debug, Clone, Copy)]
enum Stop {
    /// Cancel gracefully after this many more invocations.
    Graceful(usize),
    /// Crash while invocation N (counted in the epoch) hangs in the handler.
    CrashInHandler(usize),
    /// Crash right after invocation N returned (its outcome may or may not be applied).
    CrashAfterReturn(usize),
}

#[derive(Debug, Clone)]
struct Scenario {
    shards: u32,
    batch_size: usize,
    report: bool,
    bisect: bool,
    max_retries: u32,
    window_ms: u64,
    seed: u64,
    /// Records put before each epoch: (partition key id, poisoned).
    chunks: Vec<Vec<(u8, bool)>>,
    /// How each epoch but the last ends; the last runs until everything is resolved.
    stops: Vec<Stop>,
}

fn stop() -> impl Strategy<Value = Stop> {
    prop_oneof![
        (1usize..12).prop_map(Stop::Graceful),
        (1usize..12).prop_map(Stop::CrashInHandler),
        (1usize..12).prop_map(Stop::CrashAfterReturn),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        1u32..=3,
        1usize..=6,
        any::<bool>(),
        any::<bool>(),
        0u32..=2,
        prop_oneof![Just(0u64), Just(3u64)],
        any::<u64>(),
        prop::collection::vec(stop(), 0..=3),
    )
        .prop_flat_map(|(shards, batch_size, report, bisect, max_retries, window_ms, seed, stops)| {
            let n = stops.len() + 1;
            prop::collection::vec(prop::collection::vec((0u8..16, prop::bool::weighted(0.06)), 0..40), n..=n).prop_map(
                move |chunks| Scenario {
                    shards,
                    batch_size,
                    report,
                    bisect,
                    max_retries,
                    window_ms,
                    seed,
                    chunks,
                    stops: stops.clone(),
                },
            )
        })
}

#[derive(Debug, Clone)]
enum Event {
    Invoked { shard: String, seqs: Vec<SequenceNumber> },
    Acked { shard: String, seqs: Vec<SequenceNumber> },
    Discarded { shard: String, seqs: Vec<SequenceNumber> },
}

struct Shared {
    events: Mutex<Vec<Event>>,
    invocations: AtomicUsize,
    rng: Mutex<StdRng>,
    report: bool,
    /// (invocation number, hang) at which to signal a crash.
    crash_at: Mutex<Option<(usize, bool)>>,
    crashed: AtomicBool,
}

enum Answer {
    Success,
    Partial(usize),
    Invalid,
    FunctionError,
}

struct PropHandler(Arc<Shared>);

impl BatchHandler for PropHandler {
    async fn handle(&self, payload: bytes::Bytes) -> Result<KinesisEventResponse, HandlerError> {
        let s = &self.0;
        let inv = Invocation::from_payload(&payload);
        let len = inv.seqs.len();
        let (answer, ids, hang) = {
            let mut events = s.events.lock().unwrap();
            let n = s.invocations.fetch_add(1, Ordering::SeqCst) + 1;
            events.push(Event::Invoked { shard: inv.shard.clone(), seqs: inv.seqs.clone() });
            let mut rng = s.rng.lock().unwrap();
            let roll = rng.random_range(0..100);
            let mut answer = if roll < 15 {
                Answer::FunctionError
            } else if s.report && roll < 30 {
                Answer::Partial(rng.random_range(0..len))
            } else if s.report && roll < 35 {
                Answer::Invalid
            } else {
                Answer::Success
            };
            // A poisoned record is never acknowledged.
            if let Some(p) = inv.data.iter().position(|d| d.ends_with('!')) {
                let safe = match answer {
                    Answer::Success => false,
                    Answer::Partial(i) => i <= p,
                    Answer::Invalid | Answer::FunctionError => true,
                };
                if !safe {
                    answer = if s.report && rng.random_bool(0.5) {
                        Answer::Partial(rng.random_range(0..=p))
                    } else {
                        Answer::FunctionError
                    };
                }
            }
            let acked = match answer {
                Answer::Success => len,
                Answer::Partial(i) => i,
                Answer::Invalid | Answer::FunctionError => 0,
            };
            if acked > 0 {
                events.push(Event::Acked { shard: inv.shard.clone(), seqs: inv.seqs[..acked].to_vec() });
            }
            let mut ids: Vec<String> = Vec::new();
            match answer {
                Answer::Partial(i) => {
                    ids.push(inv.seqs[i].to_string());
                    for seq in &inv.seqs[i + 1..] {
                        if rng.random_bool(0.3) {
                            ids.push(seq.to_string());
                        }
                    }
                    ids.shuffle(&mut *rng);
                }
                Answer::Invalid => {
                    ids.push(inv.seqs[0].to_string());
                    ids.push(if rng.random_bool(0.5) {
                        String::new()
                    } else {
                        SequenceNumber::from_local(u128::from(u64::MAX)).to_string()
                    });
                }
                Answer::Success | Answer::FunctionError => {}
            }
            let mut hang = false;
            if let Some((at, h)) = *s.crash_at.lock().unwrap()
                && at == n
            {
                s.crashed.store(true, Ordering::SeqCst);
                hang = h;
            }
            (answer, ids, hang)
        };
        if hang {
            std::future::pending::<()>().await;
        }
        match answer {
            Answer::FunctionError => Err(HandlerError::new("random function error")),
            _ => {
                let mut r = KinesisEventResponse::default();
                r.set_failures(ids);
                Ok(r)
            }
        }
    }
}

/// The failure destination table, logging each accepted batch into the shared event log.
struct RecordingDestination {
    inner: Arc<SqliteFailureDestination>,
    shared: Arc<Shared>,
}

impl FailureDestination for RecordingDestination {
    async fn send(&self, batch: &FailedBatch) -> Result<(), PortError> {
        self.inner.send(batch).await?;
        self.shared.events.lock().unwrap().push(Event::Discarded {
            shard: batch.shard_id.clone(),
            seqs: batch.records.iter().map(|r| r.sequence_number).collect(),
        });
        Ok(())
    }
}

#[derive(Default)]
struct ShardModel {
    seqs: Vec<SequenceNumber>,
    data: Vec<String>,
    frontier: usize,
    acked: Vec<u32>,
}

struct Model {
    shards: BTreeMap<String, ShardModel>,
    applied: usize,
    batch_size: usize,
}

impl Model {
    fn apply(&mut self, events: &[Event]) {
        for e in &events[self.applied..] {
            let (shard, seqs) = match e {
                Event::Invoked { shard, seqs } | Event::Acked { shard, seqs } | Event::Discarded { shard, seqs } => {
                    (shard, seqs)
                }
            };
            let m = self.shards.get_mut(shard).expect("event for an unknown shard");
            let f = m.frontier;
            assert!(!seqs.is_empty(), "{e:?}");
            assert!(
                m.seqs.get(f..f + seqs.len()) == Some(seqs.as_slice()),
                "{e:?} is not the contiguous run at the frontier {f} (next expected {:?})",
                m.seqs.get(f)
            );
            match e {
                Event::Invoked { .. } => assert!(seqs.len() <= self.batch_size),
                Event::Acked { .. } => {
                    for a in &mut m.acked[f..f + seqs.len()] {
                        *a += 1;
                    }
                    m.frontier += seqs.len();
                }
                Event::Discarded { .. } => m.frontier += seqs.len(),
            }
        }
        self.applied = events.len();
    }

    fn done(&self) -> bool {
        self.shards.values().all(|m| m.frontier == m.seqs.len())
    }
}

fn run_scenario(sc: &Scenario) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.db");
    let shared = Arc::new(Shared {
        events: Mutex::new(Vec::new()),
        invocations: AtomicUsize::new(0),
        rng: Mutex::new(StdRng::seed_from_u64(sc.seed)),
        report: sc.report,
        crash_at: Mutex::new(None),
        crashed: AtomicBool::new(false),
    });
    let mut model = Model { shards: BTreeMap::new(), applied: 0, batch_size: sc.batch_size };
    let mut cfg = config(NAME);
    cfg.batch_size = sc.batch_size;
    cfg.report_batch_item_failures = sc.report;
    cfg.bisect_batch_on_function_error = sc.bisect;
    cfg.maximum_retry_attempts = Some(sc.max_retries);
    cfg.batching_window = Duration::from_millis(sc.window_ms);
    cfg.poll_interval = Duration::from_millis(1);
    cfg.retry_backoff = sluice_esm::Backoff { initial: Duration::ZERO, max: Duration::from_millis(1) };

    let mut poisoned: Vec<(String, SequenceNumber)> = Vec::new();
    let mut previous_graceful = true;
    let mut crashes = 0;
    for (epoch, chunk) in sc.chunks.iter().enumerate() {
        let (stream, checkpoints, failures) = open_all(&path, sc.shards);
        // Put this epoch's records.
        let entries: Vec<PutEntry> = chunk
            .iter()
            .enumerate()
            .map(|(i, (key, poison))| PutEntry {
                partition_key: format!("key-{key}"),
                data: format!("{epoch}-{i}{}", if *poison { "!" } else { "" }).into_bytes(),
            })
            .collect();
        for (e, r) in entries.iter().zip(stream.put_records(&entries).unwrap()) {
            let m = model.shards.entry(r.shard_id.clone()).or_default();
            m.seqs.push(r.sequence_number);
            m.data.push(String::from_utf8(e.data.clone()).unwrap());
            m.acked.push(0);
            if e.data.ends_with(b"!") {
                poisoned.push((r.shard_id, r.sequence_number));
            }
        }
        // Resume from the durable checkpoints.
        for (shard, m) in &mut model.shards {
            let cp = checkpoints.get(NAME, shard).unwrap();
            let idx = cp.map_or(0, |c| m.seqs.partition_point(|s| *s <= c));
            assert!(idx <= m.frontier, "checkpoint {idx} ahead of the resolved frontier {}", m.frontier);
            if previous_graceful {
                assert_eq!(idx, m.frontier, "graceful stop left the checkpoint behind");
            }
            m.frontier = idx;
        }

        let stop = sc.stops.get(epoch).copied();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let base = shared.invocations.load(Ordering::SeqCst);
        shared.crashed.store(false, Ordering::SeqCst);
        *shared.crash_at.lock().unwrap() = match stop {
            Some(Stop::CrashInHandler(n)) => Some((base + n, true)),
            Some(Stop::CrashAfterReturn(n)) => Some((base + n, false)),
            _ => None,
        };
        let graceful = rt.block_on(async {
            let token = CancellationToken::new();
            let esm = EventSourceMapping::new(
                cfg.clone(),
                Arc::new(stream),
                Arc::new(PropHandler(Arc::clone(&shared))),
                Arc::new(RecordingDestination { inner: failures, shared: Arc::clone(&shared) }),
                checkpoints,
            );
            let task = tokio::spawn(esm.run(token.clone()));
            // A correct runner produces an event every few milliseconds while work remains.
            let stall = Duration::from_secs(10);
            let mut deadline = tokio::time::Instant::now() + stall;
            loop {
                let before = model.applied;
                model.apply(&shared.events.lock().unwrap());
                if model.applied > before {
                    deadline = tokio::time::Instant::now() + stall;
                }
                let invoked = shared.invocations.load(Ordering::SeqCst) - base;
                let crashed = shared.crashed.load(Ordering::SeqCst);
                if crashed {
                    // Crash: return without cancelling; the runtime is dropped below.
                    return false;
                }
                if model.done() || matches!(stop, Some(Stop::Graceful(n)) if invoked >= n) {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "epoch {epoch} stalled for {stall:?}: (shard, frontier, records) {:?}",
                    model.shards.iter().map(|(s, m)| (s, m.frontier, m.seqs.len())).collect::<Vec<_>>()
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            token.cancel();
            tokio::time::timeout(Duration::from_secs(30), task).await.expect("graceful stop hung").unwrap().unwrap();
            true
        });
        // Dropping the runtime drops every task at its current await point (a crash); blocking
        // SQLite calls already started run to completion, as a committed write would.
        drop(rt);
        *shared.crash_at.lock().unwrap() = None;
        model.apply(&shared.events.lock().unwrap());
        if !graceful {
            crashes += 1;
        }
        previous_graceful = graceful;
        if stop.is_none() {
            assert!(model.done(), "final epoch ended before resolving everything");
        }
    }

    // Every record is resolved: acknowledged, or in the failure destination table with its exact payload.
    let (_, checkpoints, failures) = open_all(&path, sc.shards);
    let mut in_table: BTreeMap<(String, SequenceNumber), u32> = BTreeMap::new();
    for summary in failures.list().unwrap() {
        let b = failures.get(summary.id).unwrap().unwrap().batch;
        assert_eq!(b.mapping, NAME);
        assert_eq!(b.reason, FailureReason::RetryAttemptsExhausted);
        let m = &model.shards[&b.shard_id];
        let start = m.seqs.partition_point(|s| *s < b.first_sequence);
        assert_eq!(b.records.len(), summary.record_count);
        for (k, r) in b.records.iter().enumerate() {
            assert_eq!(r.shard_id, b.shard_id);
            // Contiguous, in order, exact payload.
            assert_eq!(r.sequence_number, m.seqs[start + k]);
            assert_eq!(r.data, m.data[start + k].as_bytes());
            *in_table.entry((b.shard_id.clone(), r.sequence_number)).or_default() += 1;
        }
        assert_eq!(b.last_sequence, b.records[b.records.len() - 1].sequence_number);
    }
    for (shard, m) in &model.shards {
        for (i, seq) in m.seqs.iter().enumerate() {
            let acked = m.acked[i];
            let discarded = in_table.get(&(shard.clone(), *seq)).copied().unwrap_or(0);
            assert!(acked + discarded >= 1, "record {shard}/{seq} ({}) was lost", m.data[i]);
            if crashes == 0 {
                assert_eq!(acked + discarded, 1, "record {shard}/{seq} resolved more than once without a crash");
            }
        }
        assert_eq!(checkpoints.get(NAME, shard).unwrap(), m.seqs.last().copied());
    }
    if std::env::var_os("PROP_STATS").is_some() {
        let records: usize = model.shards.values().map(|m| m.seqs.len()).sum();
        eprintln!(
            "records={records} invocations={} failure_rows={} crashes={crashes} poisoned={} report={} bisect={}",
            shared.invocations.load(Ordering::SeqCst),
            failures.count().unwrap(),
            poisoned.len(),
            sc.report,
            sc.bisect
        );
    }
    for (shard, seq) in &poisoned {
        let m = &model.shards[shard];
        let i = m.seqs.iter().position(|s| s == seq).unwrap();
        assert_eq!(m.acked[i], 0, "poisoned record acknowledged");
        assert!(in_table.contains_key(&(shard.clone(), *seq)), "poisoned record not discarded");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        max_shrink_iters: 32,
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_record_is_delivered_in_order_and_resolved(sc in scenario()) {
        run_scenario(&sc);
    }
}

#[test]
fn scenario_with_crashes_and_poison() {
    // A fixed, busy scenario so the interesting paths run on every build.
    let sc = Scenario {
        shards: 3,
        batch_size: 4,
        report: true,
        bisect: true,
        max_retries: 1,
        window_ms: 0,
        seed: 7,
        chunks: vec![
            (0..40).map(|i| (i % 16, i % 9 == 4)).collect(),
            (0..30).map(|i| (i % 16, i % 11 == 3)).collect(),
            (0..30).map(|i| (i % 16, false)).collect(),
            (0..20).map(|i| (i % 16, i == 7)).collect(),
        ],
        stops: vec![Stop::CrashInHandler(5), Stop::CrashAfterReturn(9), Stop::Graceful(6)],
    };
    run_scenario(&sc);
}
