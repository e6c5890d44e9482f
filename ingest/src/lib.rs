//! sluice-ingest: the HTTP front door of the pipeline.
//!
//! One axum [`Router`] ([`app`]) serves both deployments: `sluice up` runs it with `axum::serve`
//! on 127.0.0.1, and the ingest Lambda runs it through `lambda_http` behind API Gateway.
//! Handlers are thin: authenticate ([`auth`]), decode the request, validate with
//! `sluice-schemas` (the core), append through the [`EventLog`] port ([`eventlog`]), answer.
//! Every 4xx/5xx is RFC 9457 problem+json ([`problem`]).
//!
//! Code map: [`events`] (`POST /v1/events`), [`schemas_route`] (`GET /v1/schemas`),
//! [`aggregates_route`] (`GET /v1/aggregates` and its [`AggregatesReader`] port), [`health`]
//! (`GET /health`), [`auth`] (JWT/JWKS, local issuer, API Gateway trust), [`eventlog`] (port +
//! Kinesis / local stream / memory adapters), [`ratelimit`] (per-producer token buckets),
//! [`config`] (typed configuration, env parsing for the Lambda), [`lambda`] (the Lambda's state
//! from its configuration).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod aggregates_route;
pub mod auth;
pub mod config;
pub mod eventlog;
pub mod events;
pub mod health;
pub mod lambda;
pub mod problem;
pub mod ratelimit;
pub mod schemas_route;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sluice_schemas::Registry;
use sluice_telemetry::Metrics;

pub use aggregates_route::{AggregatesError, AggregatesReader, AggregatesRequest};
pub use auth::{Authenticator, LocalIssuer, Principal, SCOPE_EVENTS_WRITE, SCOPE_METRICS_READ};
pub use config::Limits;
#[cfg(feature = "local")]
pub use eventlog::LocalStreamEventLog;
pub use eventlog::{EventLog, KinesisEventLog, MemoryEventLog};
pub use health::{ComponentHealth, Health, HealthProbe, HealthStatus, ProbeFuture};
pub use ratelimit::RateLimit;

/// One documented route: method, path and every status it can answer. The OpenAPI document
/// (`ingest/openapi.yaml`) must list exactly these (checked by a test), and every response the
/// Router tests observe must be listed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteDoc {
    /// Upper-case HTTP method.
    pub method: &'static str,
    /// The path.
    pub path: &'static str,
    /// Every status code it can return.
    pub statuses: &'static [u16],
}

/// The API surface (see [`RouteDoc`]). Unknown paths answer 404 and wrong methods 405, both
/// problem+json.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc { method: "GET", path: "/health", statuses: &[200, 503] },
    RouteDoc { method: "GET", path: "/metrics", statuses: &[200] },
    RouteDoc { method: "POST", path: "/v1/events", statuses: &[202, 400, 401, 403, 413, 415, 422, 429, 503] },
    RouteDoc { method: "GET", path: "/v1/schemas", statuses: &[200] },
    RouteDoc { method: "GET", path: "/v1/aggregates", statuses: &[200, 400, 401, 403, 404, 503] },
    RouteDoc { method: "GET", path: "/.well-known/jwks.json", statuses: &[200, 404] },
];

/// Everything the routes need, built once at the edge ([`AppState::builder`]) and shared by
/// every request.
#[derive(Clone)]
pub struct AppState {
    /// Component health probes answered by `GET /health`.
    pub health: Health,
    /// The process-wide metrics registry rendered by `GET /metrics`.
    pub metrics: Metrics,
    /// The event intake (registry, event log, auth, limits).
    pub ingest: Arc<events::Ingest>,
    /// Serves `GET /v1/aggregates`; `None` answers 404 there.
    pub aggregates: Option<Arc<dyn AggregatesReader>>,
}

impl AppState {
    /// Starts building the state: the schema registry, the event log and the authenticator are
    /// required; everything else has defaults (see [`AppStateBuilder`]).
    pub fn builder(registry: Arc<Registry>, log: Arc<dyn EventLog>, auth: Authenticator) -> AppStateBuilder {
        AppStateBuilder {
            registry,
            log,
            auth,
            health: Health::new(),
            metrics: Metrics::new(),
            limits: Limits::default(),
            rate_limit: Some(RateLimit::default()),
            write_scope: SCOPE_EVENTS_WRITE.to_owned(),
            jwks: None,
            aggregates: None,
        }
    }
}

/// Builder of [`AppState`].
pub struct AppStateBuilder {
    registry: Arc<Registry>,
    log: Arc<dyn EventLog>,
    auth: Authenticator,
    health: Health,
    metrics: Metrics,
    limits: Limits,
    rate_limit: Option<RateLimit>,
    write_scope: String,
    jwks: Option<jsonwebtoken::jwk::JwkSet>,
    aggregates: Option<Arc<dyn AggregatesReader>>,
}

impl AppStateBuilder {
    /// Health probes (default: none).
    #[must_use]
    pub fn health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// The metrics registry (default: a new one).
    #[must_use]
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Size and time limits (default: [`Limits::default`]).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Per-producer rate limit; `None` disables it (default: [`RateLimit::default`]).
    #[must_use]
    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit = limit;
        self
    }

    /// The scope `POST /v1/events` requires (default [`SCOPE_EVENTS_WRITE`]; change it only for
    /// an IdP whose resource server is not named `sluice`).
    #[must_use]
    pub fn write_scope(mut self, scope: impl Into<String>) -> Self {
        self.write_scope = scope.into();
        self
    }

    /// Serve this key set at `/.well-known/jwks.json` (the local issuer's; default: 404).
    #[must_use]
    pub fn jwks(mut self, jwks: jsonwebtoken::jwk::JwkSet) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// Serves `GET /v1/aggregates` from `reader` (default: none, the route answers 404).
    #[must_use]
    pub fn aggregates(mut self, reader: Arc<dyn AggregatesReader>) -> Self {
        self.aggregates = Some(reader);
        self
    }

    /// The state.
    pub fn build(self) -> AppState {
        let ingest = events::Ingest::new(
            self.registry,
            self.log,
            self.auth,
            self.limits,
            self.rate_limit,
            self.write_scope,
            self.jwks,
            &self.metrics,
        );
        AppState { health: self.health, metrics: self.metrics, ingest: Arc::new(ingest), aggregates: self.aggregates }
    }
}

/// The ingest API; the routes are [`ROUTES`].
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::handler))
        .route("/metrics", get(metrics))
        .route("/v1/events", post(events::handler))
        .route("/v1/schemas", get(schemas_route::handler))
        .route("/v1/aggregates", get(aggregates_route::handler))
        .route("/.well-known/jwks.json", get(schemas_route::jwks))
        .fallback(problem::not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(axum::middleware::from_fn(request_span))
        .with_state(state)
}

/// Header carrying the request id (taken from the request when present, else generated; echoed
/// on the response).
pub const REQUEST_ID: &str = "x-request-id";

/// Runs each request inside a `request` span carrying its id, so every log line has it. The id
/// is API Gateway's `requestContext.requestId` in Lambda, the `x-request-id` header otherwise,
/// else a fresh random one.
async fn request_span(mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument as _;
    let id = request_id(&request);
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        request.headers_mut().insert(REQUEST_ID, v.clone());
        let mut response = next.run(request).instrument(span).await;
        response.headers_mut().insert(REQUEST_ID, v);
        response
    } else {
        next.run(request).instrument(span).await
    }
}

fn request_id(request: &axum::extract::Request) -> String {
    #[allow(irrefutable_let_patterns)]
    if let Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) =
        request.extensions().get::<lambda_http::request::RequestContext>()
        && let Some(id) = &ctx.request_id
    {
        return id.clone();
    }
    match request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()) {
        Some(id) if !id.is_empty() && id.len() <= 128 => id.to_owned(),
        _ => {
            use rand::Rng as _;
            format!("{:032x}", rand::rng().random::<u128>())
        }
    }
}

/// `GET /metrics`: the Prometheus text exposition of every registered series of the catalog.
async fn metrics(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, sluice_telemetry::prometheus::CONTENT_TYPE)],
        state.metrics.render_prometheus(),
    )
        .into_response()
}
