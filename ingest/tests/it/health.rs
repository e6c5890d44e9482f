use std::sync::Arc;

use serde_json::{Value, json};
use sluice_ingest::{AppState, Authenticator, ComponentHealth, Health, HealthProbe, ProbeFuture, app};
use sluice_telemetry::catalog;
use sluice_telemetry::prometheus::check_exposition;

use crate::support::{get, memory, registry, send};

fn state(health: Health) -> AppState {
    AppState::builder(registry(), memory(), Authenticator::Disabled).health(health).build()
}

#[tokio::test]
async fn health_is_200_when_every_component_is_ok() {
    let health = Health::new().with("stream", Arc::new(|| ComponentHealth::ok(json!({"shards": 4}))));
    let (status, headers, body) = send(app(state(health)), get("/health")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v, json!({"status": "ok", "components": {"stream": {"status": "ok", "shards": 4}}}));
}

#[tokio::test]
async fn health_is_503_when_a_component_is_down() {
    let health = Health::new()
        .with("stream", Arc::new(|| ComponentHealth::ok(json!({}))))
        .with("store", Arc::new(|| ComponentHealth::down("disk full")));
    let (status, _, body) = send(app(state(health)), get("/health")).await;
    assert_eq!(status, 503);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["components"]["store"], json!({"status": "down", "reason": "disk full"}));
    assert_eq!(v["components"]["stream"]["status"], "ok");
}

struct Stuck;
impl HealthProbe for Stuck {
    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(start_paused = true)]
async fn a_stuck_probe_is_reported_down_not_hung() {
    let health = Health::new().with("slow", Arc::new(Stuck));
    let (status, _, body) = send(app(state(health)), get("/health")).await;
    assert_eq!(status, 503);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["components"]["slow"], json!({"status": "down", "reason": "timeout"}));
}

#[tokio::test]
async fn metrics_render_prometheus_text() {
    let st = state(Health::new());
    st.metrics.counter(&catalog::AGGREGATES_WRITE_UNITS, ["v"]).add(7);
    let (status, headers, body) = send(app(st), get("/metrics")).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains(
            "# TYPE sluice_aggregates_write_units_total counter\nsluice_aggregates_write_units_total{table=\"v\"} 7\n"
        ),
        "{text}"
    );
    // Every line parses, every family has its catalog HELP and TYPE (the ingest counters too).
    let samples = check_exposition(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert!(samples > 1, "{text}");
}

#[tokio::test]
async fn unknown_route_is_problem_json_404() {
    let (status, headers, body) = send(app(state(Health::new())), get("/nope")).await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/problem+json");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], 404);
    assert_eq!(v["title"], "Not Found");
    assert_eq!(v["detail"], "No route for /nope");
}
