//! `POST /v1/events`, `GET /v1/schemas`, `GET /.well-known/jwks.json`: every status, oneshot.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::Request;
use serde_json::{Value, json};
use sluice_ingest::eventlog::{AppendOutcome, BoxFuture, EventLog, LogRecord};
use sluice_ingest::{AppState, Authenticator, Limits, RateLimit};

use crate::support::*;

#[tokio::test]
async fn one_event_is_accepted_and_written_with_event_id_as_partition_key() {
    let log = memory();
    let env = Env::new(log.clone());
    let token = env.token("shop-frontend");
    let (status, headers, body) = send(env.app(), post_events(Some(&token), page_view(&uuid(1)).to_string())).await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        json(&body),
        json!({"accepted": 1, "rejected": 0, "results": [{"index": 0, "event_id": uuid(1), "status": "accepted", "errors": []}]})
    );
    let records = log.records();
    assert_eq!(records.len(), 1);
    let (_, record) = &records[0];
    assert_eq!(record.partition_key, uuid(1));
    let event = registry().decode_stored(&record.data).unwrap();
    assert_eq!(event.event_id, uuid(1));
    assert_eq!(event.producer, "shop-frontend");
    assert_eq!(event.schema_version, 2, "latest version by default");
    assert_eq!(serde_json::to_vec(&event).unwrap(), record.data.to_vec(), "stored bytes are the encoded Event");
}

#[tokio::test]
async fn a_batch_reports_each_event_and_writes_only_the_valid_ones() {
    let log = memory();
    let env = Env::new(log.clone());
    let mut no_id = page_view("x");
    no_id.as_object_mut().unwrap().remove("event_id");
    let batch = json!([page_view(&uuid(1)), bad_page_view(&uuid(2)), no_id, 42]);
    let (status, _, body) = send(env.app(), post_events(Some(&env.token("p")), batch.to_string())).await;
    assert_eq!(status, 202);
    let v = json(&body);
    assert_eq!((v["accepted"].as_u64(), v["rejected"].as_u64()), (Some(2), Some(2)));
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[1]["status"], "rejected");
    assert_eq!(results[1]["event_id"], uuid(2));
    assert_eq!(results[1]["errors"][0]["pointer"], "/data/device");
    assert_eq!(results[2]["status"], "accepted");
    let assigned = results[2]["event_id"].as_str().unwrap();
    assert_eq!(assigned.len(), 36);
    assert_eq!(&assigned[14..15], "7", "assigned ids are UUIDv7: {assigned}");
    assert_eq!(results[3]["status"], "rejected");
    assert_eq!(results[3]["event_id"], Value::Null);
    let keys: Vec<String> = log.records().into_iter().map(|(_, r)| r.partition_key).collect();
    assert_eq!(keys, vec![uuid(1), assigned.to_owned()]);
}

#[tokio::test]
async fn none_valid_is_422_with_every_error() {
    let log = memory();
    let env = Env::new(log.clone());
    let batch = json!([bad_page_view(&uuid(1)), {"event_type": "nope"}]);
    let (status, _, body) = send(env.app(), post_events(Some(&env.token("p")), batch.to_string())).await;
    assert_eq!(status, 422);
    let v = json(&body);
    assert_eq!(v["title"], "Unprocessable Content");
    assert_eq!((v["accepted"].as_u64(), v["rejected"].as_u64()), (Some(0), Some(2)));
    assert_eq!(v["results"][0]["errors"][0]["pointer"], "/data/device");
    assert!(!v["results"][1]["errors"].as_array().unwrap().is_empty());
    assert!(log.records().is_empty());

    let (status, _, body) = send(env.app(), post_events(Some(&env.token("p")), "[]")).await;
    assert_eq!(status, 422);
    assert_eq!(json(&body)["detail"], "The array holds no events.");
}

#[tokio::test]
async fn an_event_too_far_in_the_future_is_rejected() {
    let env = Env::new(memory());
    let mut e = page_view(&uuid(1));
    e["occurred_at"] = json!((chrono::Utc::now() + chrono::TimeDelta::minutes(10)).to_rfc3339());
    let (status, _, body) = send(env.app(), post_events(Some(&env.token("p")), e.to_string())).await;
    assert_eq!(status, 422);
    assert_eq!(json(&body)["results"][0]["errors"][0]["pointer"], "/occurred_at");
}

#[tokio::test]
async fn an_event_before_the_lake_start_is_rejected_with_the_accepted_range() {
    let env = Env::new(memory());
    let mut e = page_view(&uuid(1));
    e["occurred_at"] = json!("0000-01-01T00:00:00Z");
    let (status, _, body) = send(env.app(), post_events(Some(&env.token("p")), e.to_string())).await;
    assert_eq!(status, 422);
    let error = &json(&body)["results"][0]["errors"][0];
    assert_eq!(error["pointer"], "/occurred_at");
    let message = error["message"].as_str().unwrap();
    assert!(message.starts_with("must be between 2000-01-01T00:00:00Z (the lake's first day) and "), "{message}");
}

#[tokio::test]
async fn malformed_json_is_400_with_line_and_column() {
    let env = Env::new(memory());
    let (status, _, body) = send(env.app(), post_events(Some(&env.token("p")), "[\n  {\"a\": 1,}\n]")).await;
    assert_eq!(status, 400);
    let v = json(&body);
    assert_eq!((v["line"].as_u64(), v["column"].as_u64()), (Some(2), Some(11)), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("line 2 column 11"), "{v}");
}

#[tokio::test]
async fn missing_or_bad_token_is_401_and_missing_scope_is_403() {
    let env = Env::new(memory());
    let body = page_view(&uuid(1)).to_string();
    let (status, headers, _) = send(env.app(), post_events(None, body.clone())).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");
    let (status, headers, _) = send(env.app(), post_events(Some("not.a.jwt"), body.clone())).await;
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let read_only = env.issuer.mint("p", &[sluice_ingest::SCOPE_METRICS_READ], Duration::from_secs(60)).unwrap();
    let (status, headers, body) = send(env.app(), post_events(Some(&read_only), body)).await;
    assert_eq!(status, 403);
    assert_eq!(json(&body)["required_scope"], "sluice/events.write");
    assert!(headers["www-authenticate"].to_str().unwrap().contains("insufficient_scope"));
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    let env = Env::new(memory());
    for ct in [Some("text/plain"), Some("application/jsonx"), None] {
        let mut b = Request::post("/v1/events").header("authorization", format!("Bearer {}", env.token("p")));
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        let (status, _, _) = send(env.app(), b.body(Body::from(page_view(&uuid(1)).to_string())).unwrap()).await;
        assert_eq!(status, 415, "{ct:?}");
    }
    let req = Request::post("/v1/events")
        .header("authorization", format!("Bearer {}", env.token("p")))
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(Body::from(page_view(&uuid(1)).to_string()))
        .unwrap();
    assert_eq!(send(env.app(), req).await.0, 202);
}

#[tokio::test]
async fn oversized_bodies_batches_and_events_are_413() {
    let env =
        Env::with(memory(), |b| b.limits(Limits { max_body_bytes: 2_000, max_event_bytes: 600, ..Limits::default() }));
    let token = env.token("p");
    // Body over the limit, announced by Content-Length.
    let big = format!("[{}]", vec![page_view(&uuid(1)).to_string(); 20].join(","));
    let (status, _, body) = send(env.app(), post_events(Some(&token), big.clone())).await;
    assert_eq!(status, 413);
    assert_eq!(json(&body)["max_body_bytes"], 2_000);
    // Same body streamed without Content-Length.
    let stream = futures::stream::iter(
        big.into_bytes().chunks(100).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let (status, _, _) = send(env.app(), post_events(Some(&token), Body::from_stream(stream))).await;
    assert_eq!(status, 413);
    // One event over max_event_bytes after encoding.
    let mut e = page_view(&uuid(1));
    e["data"]["page"] = json!("/".repeat(500));
    let (status, _, body) = send(env.app(), post_events(Some(&token), e.to_string())).await;
    assert_eq!(status, 413);
    assert_eq!(json(&body)["index"], 0);
}

#[tokio::test]
async fn more_than_500_events_is_413() {
    let env =
        Env::with(memory(), |b| b.rate_limit(None).limits(Limits { max_body_bytes: 10 << 20, ..Limits::default() }));
    let batch = Value::Array((0..501).map(|i| page_view(&uuid(i))).collect());
    let (status, _, body) = send(env.app(), post_events(Some(&env.token("p")), batch.to_string())).await;
    assert_eq!(status, 413);
    assert!(json(&body)["detail"].as_str().unwrap().contains("501 events"));
    let batch = Value::Array((0..500).map(|i| page_view(&uuid(i))).collect());
    let (status, _, body) = send(env.app(), post_events(Some(&env.token("p")), batch.to_string())).await;
    assert_eq!(status, 202);
    assert_eq!(json(&body)["accepted"], 500);
}

#[tokio::test]
async fn over_the_producer_rate_is_429_with_retry_after() {
    let log = memory();
    let env = Env::with(log.clone(), |b| b.rate_limit(Some(RateLimit { rate: 1.0, burst: 2.0 })));
    let two = json!([page_view(&uuid(1)), page_view(&uuid(2))]).to_string();
    assert_eq!(send(env.app(), post_events(Some(&env.token("a")), two.clone())).await.0, 202);
    let (status, headers, body) = send(env.app(), post_events(Some(&env.token("a")), two.clone())).await;
    assert_eq!(status, 429);
    let secs: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&secs), "{secs}");
    assert!(json(&body)["detail"].as_str().unwrap().contains("\"a\""));
    // Another producer has its own bucket.
    assert_eq!(send(env.app(), post_events(Some(&env.token("b")), two)).await.0, 202);
    assert_eq!(log.records().len(), 4);
}

/// Writes the records whose index is in `ok`, fails the rest.
struct Partial(Vec<usize>);

impl EventLog for Partial {
    fn append(&self, records: Vec<LogRecord>) -> BoxFuture<'_, Vec<AppendOutcome>> {
        let out = (0..records.len())
            .map(|i| {
                if self.0.contains(&i) {
                    AppendOutcome::Written(sluice_ingest::eventlog::Appended {
                        shard_id: "s".into(),
                        sequence_number: i.to_string(),
                    })
                } else {
                    AppendOutcome::failed("ProvisionedThroughputExceededException", "slow down")
                }
            })
            .collect();
        Box::pin(async move { out })
    }
    fn kind(&self) -> &'static str {
        "partial"
    }
}

#[tokio::test]
async fn unwritten_events_are_503_never_202() {
    let env = Env::new(Arc::new(Partial(vec![])));
    let (status, headers, body) =
        send(env.app(), post_events(Some(&env.token("p")), page_view(&uuid(1)).to_string())).await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    let v = json(&body);
    assert_eq!(v["results"][0]["status"], "unavailable");
    assert!(!v["detail"].as_str().unwrap().contains("Throughput"), "5xx bodies are opaque: {v}");

    // Partial write: the written one is reported accepted, the others unavailable, still 503.
    let env = Env::new(Arc::new(Partial(vec![1])));
    let batch = json!([page_view(&uuid(1)), bad_page_view(&uuid(2)), page_view(&uuid(3)), page_view(&uuid(4))]);
    let (status, _, body) = send(env.app(), post_events(Some(&env.token("p")), batch.to_string())).await;
    assert_eq!(status, 503);
    let v = json(&body);
    let statuses: Vec<&str> = v["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["unavailable", "rejected", "accepted", "unavailable"]);
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64(), v["unavailable"].as_u64()),
        (Some(1), Some(1), Some(2))
    );
}

#[tokio::test]
async fn wrong_method_is_405_problem_and_unknown_route_404() {
    let env = Env::new(memory());
    let (status, _, _) = send(env.app(), get("/v1/events")).await;
    assert_eq!(status, 405);
    let (status, _, _) = send(env.app(), get("/v2/events")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn schemas_lists_every_type_and_version() {
    let env = Env::new(memory());
    let (status, headers, body) = send(env.app(), get("/v1/schemas")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let v = json(&body);
    let types = v["event_types"].as_array().unwrap();
    let names: Vec<&str> = types.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for expected in ["api_call", "page_view", "purchase"] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let pv = types.iter().find(|t| t["name"] == "page_view").unwrap();
    assert_eq!(pv["latest"], 2);
    assert_eq!(pv["versions"].as_array().unwrap().len(), 2);
    assert_eq!(pv["versions"][0]["identity"], "user_id");
    assert_eq!(pv["versions"][0]["measure"], "duration_ms");
    assert!(
        pv["versions"][1]["schema"]["properties"]["data"].is_object()
            || pv["versions"][1]["schema"]["properties"].is_object()
    );
}

#[tokio::test]
async fn jwks_is_served_only_with_a_local_issuer() {
    let env = Env::new(memory());
    let (status, _, body) = send(env.app(), get("/.well-known/jwks.json")).await;
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["keys"][0]["kid"], env.issuer.kid());
    assert_eq!(v["keys"][0]["kty"], "EC");
    assert!(v["keys"][0].get("d").is_none(), "never the private key");
    let state = AppState::builder(registry(), memory(), Authenticator::Disabled).build();
    let (status, _, _) = send(sluice_ingest::app(state), get("/.well-known/jwks.json")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn disabled_auth_records_anonymous_and_metrics_count_outcomes() {
    let log = memory();
    let state = AppState::builder(registry(), log.clone(), Authenticator::disabled()).build();
    let app = sluice_ingest::app(state);
    let batch = json!([page_view(&uuid(1)), bad_page_view(&uuid(2))]);
    assert_eq!(send(app.clone(), post_events(None, batch.to_string())).await.0, 202);
    let event = registry().decode_stored(&log.records()[0].1.data).unwrap();
    assert_eq!(event.producer, "anonymous");
    let (_, _, body) = send(app, get("/metrics")).await;
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("sluice_ingest_events_total{outcome=\"accepted\"} 1"), "{text}");
    assert!(text.contains("sluice_ingest_events_total{outcome=\"rejected\"} 1"), "{text}");
    assert!(text.contains("sluice_ingest_requests_total{status=\"202\"} 1"), "{text}");
    sluice_telemetry::prometheus::check_exposition(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
}

#[tokio::test]
async fn the_request_id_is_echoed_or_generated() {
    let env = Env::new(memory());
    let req = Request::get("/v1/schemas").header("x-request-id", "abc-123").body(Body::empty()).unwrap();
    let (_, headers, _) = send(env.app(), req).await;
    assert_eq!(headers["x-request-id"], "abc-123");
    let (_, headers, _) = send(env.app(), get("/v1/schemas")).await;
    assert_eq!(headers["x-request-id"].len(), 32);
}

#[tokio::test]
async fn the_local_stream_probe_reports_its_shards() {
    use sluice_ingest::HealthProbe as _;
    let dir = tempfile::tempdir().unwrap();
    let stream =
        sluice_esm::LocalStream::open(&dir.path().join("s.db"), sluice_esm::LocalStreamConfig::default()).unwrap();
    let probe = sluice_ingest::LocalStreamEventLog::new(stream);
    let h = probe.check().await;
    assert_eq!(serde_json::to_value(&h).unwrap(), json!({"status": "ok", "kind": "local", "shards": 4}));
}

mod no_input_causes_a_500 {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use crate::support::*;

    /// JSON values shaped like events, with any field replaced by anything.
    fn mutated_event() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,40}".prop_map(Value::from),
        ];
        let any_json = leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        let field = prop_oneof![
            Just("event_id"),
            Just("event_type"),
            Just("schema_version"),
            Just("occurred_at"),
            Just("data"),
            Just("extra")
        ];
        let data_field = prop_oneof![Just("user_id"), Just("device"), Just("duration_ms"), Just("country"), Just("x")];
        (field, data_field, any_json, any::<bool>()).prop_map(|(f, d, v, in_data)| {
            let mut e = page_view(&uuid(7));
            if in_data {
                e["data"][d] = v;
            } else {
                e[f] = v;
            }
            e
        })
    }

    fn check(body: Vec<u8>) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let env = Env::with(memory(), |b| b.rate_limit(None));
            let (status, _, _) = send(env.app(), post_events(Some(&env.token("p")), body)).await;
            assert!(status.as_u16() < 500, "{status}");
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            check(body);
        }

        #[test]
        fn mutated_events(events in proptest::collection::vec(mutated_event(), 1..5), single in any::<bool>()) {
            let body = if single { events[0].clone() } else { json!(events) };
            check(serde_json::to_vec(&body).unwrap());
        }
    }
}
