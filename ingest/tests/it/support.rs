use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sluice_ingest::auth::LocalIssuer;
use sluice_ingest::{AppState, Authenticator, EventLog, MemoryEventLog, ROUTES, SCOPE_EVENTS_WRITE};
use sluice_schemas::Registry;
use tower::ServiceExt;

/// Sends one request through the router; returns status, headers and the body bytes.
///
/// Also checks the API contract on every response: a documented route answers only documented
/// statuses (see `sluice_ingest::ROUTES`), anything else is 404/405, and every 4xx/5xx is
/// problem+json (except the health report).
pub async fn send(app: Router, req: Request<Body>) -> (http::StatusCode, http::HeaderMap, Vec<u8>) {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    match ROUTES.iter().find(|r| r.path == path && r.method == method) {
        Some(route) => assert!(
            route.statuses.contains(&status.as_u16()),
            "{method} {path} answered {status}, which ROUTES (and openapi.yaml) do not document"
        ),
        None => assert!(matches!(status.as_u16(), 404 | 405), "{method} {path}: undocumented route answered {status}"),
    }
    // `GET /health` answers 503 with its component report (the lead's contract), not a problem.
    if (status.is_client_error() || status.is_server_error()) && path != "/health" {
        assert_eq!(headers["content-type"], "application/problem+json", "{method} {path} {status}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], status.as_u16(), "{v}");
        assert!(v["type"].as_str().unwrap().starts_with("https://sluice.dev/problems/"), "{v}");
        assert!(v["title"].is_string(), "{v}");
    }
    (status, headers, body)
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

pub fn registry() -> Arc<Registry> {
    Arc::new(Registry::builtin().unwrap())
}

/// A router over `log` with the local issuer (auth on) and default limits.
pub struct Env {
    pub issuer: LocalIssuer,
    pub _dir: tempfile::TempDir,
    pub state: AppState,
}

impl Env {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self::with(log, |b| b)
    }

    pub fn with(
        log: Arc<dyn EventLog>,
        f: impl FnOnce(sluice_ingest::AppStateBuilder) -> sluice_ingest::AppStateBuilder,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let issuer = LocalIssuer::load_or_create(dir.path()).unwrap();
        let auth = Authenticator::jwt(issuer.verifier().unwrap());
        let state = f(AppState::builder(registry(), log, auth).jwks(issuer.jwks())).build();
        Self { issuer, _dir: dir, state }
    }

    pub fn app(&self) -> Router {
        sluice_ingest::app(self.state.clone())
    }

    pub fn token(&self, producer: &str) -> String {
        self.issuer.mint(producer, &[SCOPE_EVENTS_WRITE], Duration::from_secs(300)).unwrap()
    }
}

pub fn memory() -> Arc<MemoryEventLog> {
    Arc::new(MemoryEventLog::new())
}

pub fn post_events(token: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::post("/v1/events").header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(body.into()).unwrap()
}

/// A valid page_view v1 event.
pub fn page_view(event_id: &str) -> Value {
    json!({
        "event_id": event_id,
        "event_type": "page_view",
        "occurred_at": "2024-05-01T13:59:58.123456+02:00",
        "data": {
            "user_id": "u-1842",
            "session_id": "s-77f1",
            "page": "/pricing",
            "device": "web",
            "country": "DE",
            "duration_ms": 5230.5
        }
    })
}

/// A page_view with a broken `data.device`.
pub fn bad_page_view(event_id: &str) -> Value {
    let mut v = page_view(event_id);
    v["data"]["device"] = json!("fridge");
    v
}

pub fn uuid(n: u32) -> String {
    format!("0190a0c4-5b7e-7cc3-8f1a-{n:012x}")
}
