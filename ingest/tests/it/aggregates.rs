//! `GET /v1/aggregates` through the Router, over fake readers of the [`AggregatesReader`] port:
//! every documented status. The store-backed reader is tested in `sluice-api`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http::Request;
use serde_json::{Value, json};
use sluice_ingest::aggregates_route::ReadFuture;
use sluice_ingest::{AggregatesError, AggregatesReader, AggregatesRequest, SCOPE_METRICS_READ};
use sluice_schemas::Registry;

use crate::support::{Env, json, memory, send};

fn get_with(token: Option<&str>, uri: &str) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(t) = token {
        b = b.header("Authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

/// Answers every read with `answer`, recording the requests it saw.
struct Fixed {
    answer: Result<Value, AggregatesError>,
    seen: Mutex<Vec<AggregatesRequest>>,
}

impl Fixed {
    fn new(answer: Result<Value, AggregatesError>) -> Arc<Self> {
        Arc::new(Fixed { answer, seen: Mutex::new(Vec::new()) })
    }
}

impl AggregatesReader for Fixed {
    fn read<'a>(&'a self, _: &'a Registry, request: &'a AggregatesRequest) -> ReadFuture<'a> {
        self.seen.lock().unwrap().push(request.clone());
        let answer = self.answer.clone();
        Box::pin(async move { answer })
    }
}

const URI: &str = "/v1/aggregates?event_type=page_view&window=1m&from=2026-11-26T10:00:00Z&to=2026-11-26T10:01:00Z";

fn read_token(env: &Env) -> String {
    env.issuer.mint("dash", &[SCOPE_METRICS_READ], Duration::from_secs(60)).unwrap()
}

#[tokio::test]
async fn answers_the_readers_document_for_the_decoded_parameters() {
    let answer = json!({"event_type": "page_view", "window": "1m", "buckets": [{"count": 3}]});
    let reader = Fixed::new(Ok(answer.clone()));
    let env = Env::with(memory(), |b| b.aggregates(reader.clone()));
    let uri = format!("{URI}&group_by=country%2Cdevice");
    let (status, headers, body) = send(env.app(), get_with(Some(&read_token(&env)), &uri)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(json(&body), answer);
    let seen = reader.seen.lock().unwrap();
    let params: Vec<(&str, &str)> = seen[0].params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        params,
        [
            ("event_type", "page_view"),
            ("window", "1m"),
            ("from", "2026-11-26T10:00:00Z"),
            ("to", "2026-11-26T10:01:00Z"),
            ("group_by", "country,device"),
        ]
    );
}

#[tokio::test]
async fn needs_a_token_with_the_read_scope() {
    let reader = Fixed::new(Ok(json!({})));
    let env = Env::with(memory(), |b| b.aggregates(reader.clone()));
    let (status, _, _) = send(env.app(), get_with(None, URI)).await;
    assert_eq!(status, 401);
    let writer = env.token("producer");
    let (status, _, body) = send(env.app(), get_with(Some(&writer), URI)).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(reader.seen.lock().unwrap().is_empty(), "nothing is read without the scope");
}

#[tokio::test]
async fn a_bad_parameter_is_400_naming_it() {
    let reader = Fixed::new(Err(AggregatesError::BadParam { param: "window".into(), message: "not a window".into() }));
    let env = Env::with(memory(), |b| b.aggregates(reader));
    let (status, _, body) = send(env.app(), get_with(Some(&read_token(&env)), URI)).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["param"], "window");
    assert!(v["detail"].as_str().unwrap().contains("not a window"), "{v}");
}

#[tokio::test]
async fn without_an_aggregates_reader_the_route_is_404() {
    let env = Env::new(memory());
    let (status, _, _) = send(env.app(), get_with(Some(&read_token(&env)), URI)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_unavailable_store_is_an_opaque_503_with_retry_after() {
    let reader = Fixed::new(Err(AggregatesError::Unavailable("connection refused".into())));
    let env = Env::with(memory(), |b| b.aggregates(reader));
    let (status, headers, body) = send(env.app(), get_with(Some(&read_token(&env)), URI)).await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    assert!(!String::from_utf8_lossy(&body).contains("connection refused"), "5xx bodies are opaque");
}
