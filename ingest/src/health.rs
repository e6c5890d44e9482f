//! `GET /health`: every component's status as JSON.
//!
//! Contract: 200 with `{"status":"ok","components":{..}}` when every probe reports `ok`, 503 with
//! `"status":"degraded"` otherwise. A probe that does not answer within [`PROBE_TIMEOUT`] is
//! reported `down` with reason `timeout`, so one stuck dependency never hangs the endpoint.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::AppState;

/// How long one probe may take before it is reported down.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Working.
    Ok,
    /// Not working; see the detail.
    Down,
}

/// One component's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentHealth {
    /// Up or down.
    pub status: HealthStatus,
    /// Component-specific facts (shard count, lag, the error that made it down, ...).
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl ComponentHealth {
    /// A healthy component with the given facts.
    pub fn ok(detail: serde_json::Value) -> Self {
        Self { status: HealthStatus::Ok, detail: into_map(detail) }
    }
    /// A failing component with the reason.
    pub fn down(reason: impl Into<String>) -> Self {
        let mut detail = serde_json::Map::new();
        detail.insert("reason".into(), serde_json::Value::String(reason.into()));
        Self { status: HealthStatus::Down, detail }
    }
}

fn into_map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        serde_json::Value::Null => serde_json::Map::new(),
        other => {
            let mut m = serde_json::Map::new();
            m.insert("value".into(), other);
            m
        }
    }
}

/// A boxed future, as returned by [`HealthProbe::check`].
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = ComponentHealth> + Send + 'a>>;

/// Something that can say whether it works.
pub trait HealthProbe: Send + Sync {
    /// Checks the component now. Must not block the async runtime.
    fn check(&self) -> ProbeFuture<'_>;
}

impl<F> HealthProbe for F
where
    F: Fn() -> ComponentHealth + Send + Sync,
{
    fn check(&self) -> ProbeFuture<'_> {
        let h = self();
        Box::pin(async move { h })
    }
}

/// The named probes of a process.
#[derive(Clone, Default)]
pub struct Health {
    probes: Arc<Vec<(String, Arc<dyn HealthProbe>)>>,
}

impl Health {
    /// No probes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a named probe (builder style; names should be unique).
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, probe: Arc<dyn HealthProbe>) -> Self {
        Arc::make_mut(&mut self.probes).push((name.into(), probe));
        self
    }

    /// Runs every probe concurrently, each bounded by [`PROBE_TIMEOUT`].
    pub async fn report(&self) -> (bool, BTreeMap<String, ComponentHealth>) {
        let checks = self.probes.iter().map(|(name, probe)| async move {
            let h = tokio::time::timeout(PROBE_TIMEOUT, probe.check())
                .await
                .unwrap_or_else(|_| ComponentHealth::down("timeout"));
            (name.clone(), h)
        });
        let components: BTreeMap<_, _> = futures::future::join_all(checks).await.into_iter().collect();
        let ok = components.values().all(|c| c.status == HealthStatus::Ok);
        (ok, components)
    }
}

#[derive(Serialize)]
struct HealthBody {
    status: &'static str,
    components: BTreeMap<String, ComponentHealth>,
}

/// `GET /health`.
pub(crate) async fn handler(State(state): State<AppState>) -> Response {
    let (ok, components) = state.health.report().await;
    let (code, status) = if ok { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "degraded") };
    (code, Json(HealthBody { status, components })).into_response()
}
