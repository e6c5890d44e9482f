//! `GET /v1/aggregates` through the Router: every documented status.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use chrono::{TimeZone, Utc};
use http::Request;
use serde_json::json;
use sluice_aggregators::{
    AggregateQuery, AggregatorHandler, AggregateQueryError, SqliteAggregateStore, StoreError, WindowConfig,
};
use sluice_dlq::MemoryDeadLetters;
use sluice_ingest::SCOPE_METRICS_READ;
use sluice_ingest::aggregates_route::{AggregateReader, ReadFuture, StoreReader};
use sluice_schemas::{IngestContext, Registry};
use sluice_stream::{BatchHandler, SequenceNumber, StreamRecord, to_kinesis_event};

use crate::support::{Env, json, memory, registry, send};

fn get_with(token: Option<&str>, uri: &str) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(t) = token {
        b = b.header("Authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

/// A store holding three page views in one minute: two from DE/web, one from US/ios.
async fn filled_store() -> SqliteAggregateStore {
    let registry = registry();
    let store = SqliteAggregateStore::in_memory().unwrap();
    let handler =
        AggregatorHandler::new(Arc::clone(&registry), store.clone(), MemoryDeadLetters::new(), WindowConfig::default());
    let received = Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 30).unwrap();
    let events = [("u1", "web", "DE", 10.0), ("u2", "web", "DE", 30.0), ("u1", "ios", "US", 20.0)];
    let records: Vec<StreamRecord> = events
        .iter()
        .enumerate()
        .map(|(i, (user, device, country, ms))| {
            let input = json!({"event_type": "page_view", "occurred_at": "2026-11-26T10:00:10Z", "data": {
                "user_id": user, "session_id": "s", "page": "/", "device": device, "country": country, "duration_ms": ms}});
            let ctx = IngestContext::new("p".to_owned(), received);
            let event = registry.validate(&input, &ctx).unwrap();
            StreamRecord {
                shard_id: sluice_stream::shard_id(0),
                sequence_number: SequenceNumber::from_local(i as u128 + 1),
                partition_key: event.event_id.clone(),
                approximate_arrival: received,
                data: serde_json::to_vec(&event).unwrap(),
            }
        })
        .collect();
    let resp = handler.handle(to_kinesis_event(&records, "arn:aws:kinesis:local:0:stream/s", "local")).await.unwrap();
    assert!(resp.batch_item_failures.is_empty());
    store
}

const URI: &str = "/v1/aggregates?event_type=page_view&window=1m&from=2026-11-26T10:00:00Z&to=2026-11-26T10:01:00Z";

#[tokio::test]
async fn returns_buckets_merged_across_dimensions_not_grouped_by() {
    let store = filled_store().await;
    let env = Env::with(memory(), |b| b.aggregates(Arc::new(StoreReader(store))));
    let token = env.issuer.mint("dash", &[SCOPE_METRICS_READ], Duration::from_secs(60)).unwrap();

    let (status, _, body) = send(env.app(), get_with(Some(&token), URI)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["event_type"], "page_view");
    let buckets = v["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 1, "{v}");
    assert_eq!(buckets[0]["window_start"], "2026-11-26T10:00:00Z");
    assert_eq!(buckets[0]["count"], 3);
    assert_eq!(buckets[0]["sum"], 60.0);
    assert_eq!(buckets[0]["min"], 10.0);
    assert_eq!(buckets[0]["max"], 30.0);
    assert_eq!(buckets[0]["distinct"], 2);
    assert_eq!(buckets[0]["dims"], json!({}));

    let (status, _, body) = send(env.app(), get_with(Some(&token), &format!("{URI}&group_by=country"))).await;
    assert_eq!(status, 200);
    let v = json(&body);
    let mut by_country: Vec<(String, u64)> = v["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["dims"]["country"].as_str().unwrap().to_owned(), b["count"].as_u64().unwrap()))
        .collect();
    by_country.sort();
    assert_eq!(by_country, vec![("DE".to_owned(), 2), ("US".to_owned(), 1)]);
}

#[tokio::test]
async fn needs_a_token_with_the_read_scope() {
    let env = Env::with(memory(), |b| b.aggregates(Arc::new(StoreReader(SqliteAggregateStore::in_memory().unwrap()))));
    let (status, _, _) = send(env.app(), get_with(None, URI)).await;
    assert_eq!(status, 401);
    let writer = env.token("producer");
    let (status, _, body) = send(env.app(), get_with(Some(&writer), URI)).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter() {
    let env = Env::with(memory(), |b| b.aggregates(Arc::new(StoreReader(SqliteAggregateStore::in_memory().unwrap()))));
    let token = env.issuer.mint("dash", &[SCOPE_METRICS_READ], Duration::from_secs(60)).unwrap();
    for (uri, param) in [
        ("/v1/aggregates?event_type=page_view&window=7q&from=2026-11-26T10:00:00Z&to=2026-11-26T11:00:00Z", "window"),
        ("/v1/aggregates?window=1m&from=2026-11-26T10:00:00Z&to=2026-11-26T11:00:00Z", "event_type"),
        ("/v1/aggregates?event_type=nope&window=1m&from=2026-11-26T10:00:00Z&to=2026-11-26T11:00:00Z", "event_type"),
        ("/v1/aggregates?event_type=page_view&window=1m&from=yesterday&to=2026-11-26T11:00:00Z", "from"),
        (&format!("{URI}&group_by=colour"), "group_by"),
        (&format!("{URI}&limit=3"), "limit"),
    ] {
        let (status, _, body) = send(env.app(), get_with(Some(&token), uri)).await;
        assert_eq!(status, 400, "{uri}: {}", String::from_utf8_lossy(&body));
        assert_eq!(json(&body)["param"], param, "{uri}");
    }
}

#[tokio::test]
async fn without_an_aggregate_store_the_route_is_404() {
    let env = Env::new(memory());
    let token = env.issuer.mint("dash", &[SCOPE_METRICS_READ], Duration::from_secs(60)).unwrap();
    let (status, _, _) = send(env.app(), get_with(Some(&token), URI)).await;
    assert_eq!(status, 404);
}

struct Down;
impl AggregateReader for Down {
    fn read<'a>(&'a self, _: &'a Registry, _: &'a AggregateQuery) -> ReadFuture<'a> {
        Box::pin(async { Err(AggregateQueryError::Store(StoreError::Unavailable("connection refused".into()))) })
    }
}

#[tokio::test]
async fn an_unavailable_store_is_an_opaque_503_with_retry_after() {
    let env = Env::with(memory(), |b| b.aggregates(Arc::new(Down)));
    let token = env.issuer.mint("dash", &[SCOPE_METRICS_READ], Duration::from_secs(60)).unwrap();
    let (status, headers, body) = send(env.app(), get_with(Some(&token), URI)).await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    assert!(!String::from_utf8_lossy(&body).contains("connection refused"), "5xx bodies are opaque");
}
