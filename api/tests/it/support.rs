use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use chrono::{TimeZone, Utc};
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sluice_aggregators::{AggregateStore, AggregatorHandler, WindowConfig};
use sluice_dlq::MemoryDeadLetters;
use sluice_ingest::LocalIssuer;
use sluice_schemas::{IngestContext, Registry};
use sluice_stream::{BatchHandler, SequenceNumber, StreamRecord, to_kinesis_event};
use tower::ServiceExt;

pub fn registry() -> Arc<Registry> {
    Arc::new(Registry::builtin().unwrap())
}

/// A page view as `(user, device, country, duration_ms)`, all at 2026-11-26T10:00:10Z.
pub type View = (&'static str, &'static str, &'static str, f64);

/// The first page views of the tests: two from DE/web, one from US/ios.
pub const VIEWS: [View; 3] = [("u1", "web", "DE", 10.0), ("u2", "web", "DE", 30.0), ("u1", "ios", "US", 20.0)];

/// `GET /v1/aggregates` over the minute of [`VIEWS`].
pub const URI: &str = "/v1/aggregates?event_type=page_view&window=1m&from=2026-11-26T10:00:00Z&to=2026-11-26T10:01:00Z";

/// Aggregates `views` into `store` as one Kinesis batch of shard `shard`, through the aggregator.
pub async fn aggregate<S: AggregateStore>(store: S, shard: u32, views: &[View]) {
    let registry = registry();
    let handler =
        AggregatorHandler::new(Arc::clone(&registry), store, MemoryDeadLetters::new(), WindowConfig::default());
    let received = Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 30).unwrap();
    let records: Vec<StreamRecord> = views
        .iter()
        .enumerate()
        .map(|(i, (user, device, country, ms))| {
            let input = json!({"event_type": "page_view", "occurred_at": "2026-11-26T10:00:10Z", "data": {
                "user_id": user, "session_id": "s", "page": "/", "device": device, "country": country, "duration_ms": ms}});
            let event = registry.validate(&input, &IngestContext::new("p".to_owned(), received)).unwrap();
            StreamRecord {
                shard_id: sluice_stream::shard_id(shard),
                sequence_number: SequenceNumber::from_local(i as u128 + 1),
                partition_key: event.event_id.clone(),
                approximate_arrival: received,
                data: serde_json::to_vec(&event).unwrap(),
            }
        })
        .collect();
    let event = to_kinesis_event(&records, "arn:aws:kinesis:local:0:stream/s", "local");
    let resp = handler.handle(axum::body::Bytes::from(serde_json::to_vec(&event).unwrap())).await.unwrap();
    assert!(resp.batch_item_failures.is_empty(), "{:?}", resp.batch_item_failures);
}

/// `GET uri` with `Authorization: Bearer <token>`.
pub fn get(token: &str, uri: &str) -> Request<Body> {
    Request::get(uri).header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap()
}

/// Sends `request` through `app`: the status and the JSON body.
pub async fn send(app: Router, request: Request<Body>) -> (u16, Value) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

/// Checks the answer for [`VIEWS`] (in one or several shards): one bucket, every dimension
/// merged, then grouped by country.
pub async fn assert_views_answer(app: &Router, token: &str) {
    let (status, v) = send(app.clone(), get(token, URI)).await;
    assert_eq!(status, 200, "{v}");
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

    let (status, v) = send(app.clone(), get(token, &format!("{URI}&group_by=country"))).await;
    assert_eq!(status, 200, "{v}");
    let mut by_country: Vec<(String, u64)> = v["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["dims"]["country"].as_str().unwrap().to_owned(), b["count"].as_u64().unwrap()))
        .collect();
    by_country.sort();
    assert_eq!(by_country, vec![("DE".to_owned(), 2), ("US".to_owned(), 1)]);
}

/// A local issuer (key in a temporary data dir) whose JWKS is served over HTTP on 127.0.0.1,
/// as Cognito serves a user pool's: what `SLUICE_JWKS_URL` points a verifying Lambda at.
pub struct Issuer {
    pub issuer: LocalIssuer,
    pub jwks_url: String,
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Issuer {
    pub async fn start() -> Issuer {
        let dir = tempfile::tempdir().unwrap();
        let issuer = LocalIssuer::load_or_create(dir.path()).unwrap();
        let jwks = serde_json::to_value(issuer.jwks()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let app = Router::new().route("/jwks.json", axum::routing::get(move || async move { axum::Json(jwks) }));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Issuer { issuer, jwks_url, _dir: dir, server }
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
