//! The handler: a real Kinesis fixture through the Lambda entry point, dead letters, failure
//! reporting, and the end-to-end truth check on generated events.

use std::sync::Arc;

use crate::generate::{GenConfig, Generator, ground_truth, kinesis_event, record_bytes};
use aws_lambda_events::event::kinesis::KinesisEvent;
use chrono::TimeDelta;
use sluice_aggregators::query::{AggregateQuery, read_aggregates};
use sluice_aggregators::{AggregatorHandler, WindowConfig};
use sluice_dlq::{FailureKind, MemoryDeadLetters};
use sluice_schemas::Registry;

use crate::support::*;

fn fixture() -> KinesisEvent {
    serde_json::from_str(include_str!("../data/kinesis-event.json")).unwrap()
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::builtin().unwrap())
}

fn query(r: &Registry, qs: &str) -> AggregateQuery {
    AggregateQuery::from_params(r, qs.split('&').filter_map(|p| p.split_once('='))).unwrap()
}

#[tokio::test]
async fn lambda_payload_path_aggregates_and_dead_letters_a_real_fixture() {
    let dlq = MemoryDeadLetters::new();
    let handler = AggregatorHandler::new(registry(), sqlite(), dlq.clone(), WindowConfig::default());
    // What the Lambda's entry point runs on the raw invocation body.
    let response = handler.process_payload(include_bytes!("../data/kinesis-event.json")).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "invalid records are not failures");

    let letters = dlq.letters();
    assert_eq!(letters.len(), 2);
    let input = fixture();
    for (letter, record) in letters.iter().zip(&input.records[3..]) {
        assert_eq!(letter.kind, FailureKind::Invalid);
        assert_eq!(letter.source, "aggregator");
        assert_eq!(letter.shard_id.as_deref(), Some("shardId-000000000003"));
        assert_eq!(letter.sequence_number.as_deref(), Some(record.kinesis.sequence_number.as_str()));
        assert_eq!(letter.data, record.kinesis.data.0, "original bytes are kept");
    }
    assert!(letters[0].reason.contains("/data/country"), "{}", letters[0].reason);

    let r = registry();
    let pv = read_aggregates(
        handler.store(),
        &r,
        &query(&r, "event_type=page_view&window=1m&from=2026-01-01T00:00:00Z&to=2026-01-01T00:01:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(pv.buckets.len(), 1);
    let b = &pv.buckets[0];
    assert_eq!((b.count, b.distinct, b.late), (2, 2, 0));
    assert_eq!((b.sum, b.min, b.max), (Some(1500.5), Some(300.0), Some(1200.5)));
    let api = read_aggregates(
        handler.store(),
        &r,
        &query(
            &r,
            "event_type=api_call&window=1h&from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z&group_by=route,status",
        ),
    )
    .await
    .unwrap();
    let json = serde_json::to_value(&api).unwrap();
    assert_eq!(json["window"], "1h");
    assert_eq!(json["buckets"][0]["dims"], serde_json::json!({"route": "GET /v1/items", "status": 200}));
    assert_eq!(json["buckets"][0]["late"], 0, "20 min late is within the 1h window's lateness");
    let api_1m = read_aggregates(
        handler.store(),
        &r,
        &query(&r, "event_type=api_call&window=1m&from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(api_1m.buckets[0].late, 1, "received 20 min after its minute: late");

    // Redelivery of the same batch changes nothing and dead-letters idempotently.
    handler.process(&(&fixture()).into()).await;
    let again = read_aggregates(
        handler.store(),
        &r,
        &query(&r, "event_type=page_view&window=1m&from=2026-01-01T00:00:00Z&to=2026-01-01T00:01:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(again, pv);
}

/// The aggregator Lambda binary's wiring: the `RawPayloads` layer takes the raw body, the
/// runtime deserializes what it leaves (`null`) into `RawPayload` exactly as `lambda_runtime`
/// does, and `sluice_stream::lambda::invoke` hands the bytes to the handler, which parses them with `KinesisBatch::parse_with`. Same
/// outcome as the `KinesisEvent` path; a malformed body is a function error.
#[tokio::test]
async fn raw_invocation_entry_point_handles_a_real_fixture() {
    use lambda_runtime::tower::{Service as _, ServiceExt as _};
    use sluice_stream::lambda::RawPayloads;
    use sluice_stream::lambda::invoke;
    use sluice_stream::lambda::stand_in::{invocation, runtime};

    let dlq = MemoryDeadLetters::new();
    let handler = AggregatorHandler::new(registry(), sqlite(), dlq.clone(), WindowConfig::default());
    let payloads = RawPayloads::new();
    let mut service = runtime(&payloads, |event| invoke(&handler, &payloads, event));
    let fixture_bytes = include_bytes!("../data/kinesis-event.json");
    let response = service.ready().await.unwrap().call(invocation("req-1", fixture_bytes)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(dlq.letters().len(), 2, "the two invalid records are dead-lettered");
    assert_eq!(payloads.take("req-1"), None, "the body was handed over exactly once");

    let reference = AggregatorHandler::new(registry(), sqlite(), MemoryDeadLetters::new(), WindowConfig::default());
    reference.process(&(&fixture()).into()).await;
    let r = registry();
    for t in ["page_view", "api_call"] {
        let q = query(&r, &format!("event_type={t}&window=1m&from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z"));
        let got = read_aggregates(handler.store(), &r, &q).await.unwrap();
        assert!(!got.buckets.is_empty(), "{t}");
        assert_eq!(got, read_aggregates(reference.store(), &r, &q).await.unwrap());
    }

    let malformed = service.ready().await.unwrap().call(invocation("req-2", b"{\"Records\":[{}]}")).await;
    assert!(malformed.unwrap_err().error_message.contains("kinesis"), "missing field named");
    assert_eq!(payloads.take("req-2"), None);
}

#[tokio::test]
async fn store_failures_are_reported_from_the_first_unapplied_record() {
    let store = sqlite();
    let handler = AggregatorHandler::new(
        registry(),
        Crashing::new(store.clone(), 1),
        MemoryDeadLetters::new(),
        WindowConfig::default(),
    )
    .with_policy(fast_policy());
    let response = handler.process(&(&fixture()).into()).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    let failed = response.batch_item_failures[0].item_identifier.clone().unwrap();
    let input = fixture();
    assert!(input.records.iter().any(|r| r.kinesis.sequence_number == failed));
    // Lambda redelivers from the failed record; a healthy store completes it exactly once.
    let mut rest = input.clone();
    rest.records.retain(|r| r.kinesis.sequence_number >= failed);
    let healthy = AggregatorHandler::new(registry(), store.clone(), MemoryDeadLetters::new(), WindowConfig::default());
    assert!(healthy.process(&(&rest).into()).await.batch_item_failures.is_empty());
    let reference = AggregatorHandler::new(registry(), sqlite(), MemoryDeadLetters::new(), WindowConfig::default());
    reference.process(&(&fixture()).into()).await;
    let r = registry();
    for t in ["page_view", "api_call"] {
        let q = query(&r, &format!("event_type={t}&window=1m&from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z"));
        assert_eq!(
            read_aggregates(&store, &r, &q).await.unwrap(),
            read_aggregates(reference.store(), &r, &q).await.unwrap()
        );
    }
}

#[tokio::test]
async fn unstorable_dead_letters_are_failures() {
    let dlq = MemoryDeadLetters::new();
    dlq.fail_next(100);
    let handler = AggregatorHandler::new(registry(), sqlite(), dlq, WindowConfig::default()).with_policy(fast_policy());
    let response = handler.process(&(&fixture()).into()).await;
    let input = fixture();
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some(input.records[3].kinesis.sequence_number.as_str())
    );
}

/// Generated events, split into batches over two shards, some delivered twice: every bucket
/// equals the independently computed truth (count, sum, min, max, late exactly; distinct within
/// 2%; quantiles within 1%).
#[tokio::test]
async fn end_to_end_matches_ground_truth() {
    let r = registry();
    let events = Generator::new(GenConfig { users: 5_000, ..GenConfig::default() }).take(24_000);
    let handler = AggregatorHandler::new(Arc::clone(&r), sqlite(), MemoryDeadLetters::new(), WindowConfig::default());
    let mut seq = 0u64;
    for (i, chunk) in events.chunks(1_700).enumerate() {
        let shard = if i % 2 == 0 { "shardId-000000000000" } else { "shardId-000000000001" };
        let batch = kinesis_event(shard, seq, chunk.iter().map(record_bytes).collect(), chunk[0].received_at);
        seq += chunk.len() as u64;
        assert!(handler.process(&(&batch).into()).await.batch_item_failures.is_empty());
        if i % 3 == 0 {
            handler.process(&(&batch).into()).await; // redelivery
        }
    }
    let truth = ground_truth(&r, &events, &[60, 3600], TimeDelta::minutes(5));
    for (t, group_by) in [("page_view", "device,country"), ("api_call", "route,status"), ("purchase", "")] {
        for w in ["1m", "1h"] {
            let qs = format!(
                "event_type={t}&window={w}&from=2026-01-01T00:00:00Z&to=2026-01-01T02:00:00Z&group_by={group_by}"
            );
            let got = read_aggregates(handler.store(), &r, &query(&r, &qs)).await.unwrap();
            let wsecs = if w == "1m" { 60 } else { 3600 };
            let mut want: std::collections::BTreeMap<(i64, Vec<String>), crate::generate::TruthAgg> =
                Default::default();
            for (k, a) in truth.iter().filter(|(k, _)| k.event_type == t && k.window_secs == wsecs) {
                let dims = if group_by.is_empty() { vec![] } else { k.dims.clone() };
                want.entry((k.window_start, dims)).or_default().merge(a);
            }
            assert_eq!(got.buckets.len(), want.len(), "{qs}");
            for (b, ((start, _), a)) in got.buckets.iter().zip(&want) {
                assert_eq!(b.window_start.timestamp(), *start);
                assert_eq!((b.count, b.late), (a.count, a.late), "{qs}");
                assert_eq!(b.sum, Some(a.sum()), "{qs}");
                assert_eq!((b.min, b.max), (a.min, a.max));
                let d = a.distinct() as f64;
                assert!((b.distinct as f64 - d).abs() <= 0.02 * d, "{qs}: distinct {} vs {d}", b.distinct);
                for (q, est) in [(0.5, b.p50), (0.9, b.p90), (0.99, b.p99)] {
                    let exact = a.quantile(q).unwrap();
                    let est = est.unwrap();
                    assert!((est - exact).abs() <= 0.01 * exact.abs() + 1e-9, "{qs} q{q}: {est} vs {exact}");
                }
            }
        }
    }
}

/// The Lambda's fused path (`KinesisBatch::parse_retaining` feeding a `BatchPreparer`, what
/// `process_payload` runs) builds exactly `prepare_batch`'s `PreparedAggregates` (deltas, per-shard
/// add order, dead letters and their order): on the real fixture, and on generated batches with
/// shards interleaved, records corrupted, and unusable ids / sequence numbers mixed in.
mod fused {
    use super::*;
    use proptest::prelude::*;
    use sluice_aggregators::decode::Decoder;
    use sluice_aggregators::prepare::{BatchPreparer, prepare_batch, records_hint};
    use sluice_stream::kinesis_input::KinesisBatch;

    fn check(decoder: &Decoder, payload: &[u8]) -> (usize, usize) {
        let config = WindowConfig::default();
        let now = chrono::Utc::now();
        let batch = KinesisBatch::parse(payload).unwrap();
        let two_pass = prepare_batch(decoder, &config, &batch, now);
        let mut preparer = BatchPreparer::with_capacity(decoder, &config, now, records_hint(payload.len()));
        let fused = KinesisBatch::parse_retaining(payload, |i, r| preparer.add(i, r)).unwrap();
        let prepared = preparer.finish(&fused);
        assert_eq!(prepared, two_pass);
        (prepared.aggregated(), prepared.invalid())
    }

    #[test]
    fn on_the_real_fixture() {
        let decoder = Decoder::new(registry());
        assert_eq!(check(&decoder, include_bytes!("../data/kinesis-event.json")), (3, 2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn on_generated_and_mutated_batches(
            n in 1usize..300,
            seed_skip in 0usize..50,
            mutations in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..6), 0..12),
        ) {
            let decoder = Decoder::new(registry());
            let mut generator = Generator::new(GenConfig::default());
            generator.take(seed_skip);
            let events = generator.take(n);
            let mut event = kinesis_event(
                "shardId-000000000000",
                1_000,
                events.iter().map(record_bytes).collect(),
                events[0].received_at,
            );
            for (at, kind) in &mutations {
                let r = &mut event.records[at.index(n)];
                let seq = r.kinesis.sequence_number.clone();
                match kind {
                    0 => r.event_id = Some(format!("shardId-000000000001:{seq}")),
                    1 => r.kinesis.data.0.truncate(r.kinesis.data.0.len() / 2),
                    2 => {
                        let d = &mut r.kinesis.data.0;
                        let s = String::from_utf8_lossy(d).replacen("\"data\":{", "\"data\":{\"extra\":1,", 1);
                        *d = s.into_bytes();
                    }
                    3 => r.kinesis.sequence_number = format!("{seq}x"),
                    4 => r.event_id = None,
                    _ => r.kinesis.data.0 = serde_json::to_vec_pretty(
                        &serde_json::from_slice::<serde_json::Value>(&r.kinesis.data.0).unwrap_or_default(),
                    ).unwrap(),
                }
            }
            let (aggregated, invalid) = check(&decoder, &serde_json::to_vec(&event).unwrap());
            prop_assert_eq!(aggregated + invalid, n);
            prop_assert!(mutations.is_empty() || invalid > 0 || mutations.iter().all(|(_, k)| *k == 0 || *k == 5));
        }
    }
}
