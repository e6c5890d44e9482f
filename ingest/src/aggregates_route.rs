//! `GET /v1/aggregates`: windowed aggregates, merged across shards (scope `sluice/metrics.read`),
//! served through the [`AggregatesReader`] port.
//!
//! Statuses: 200 with the buckets; 400 for a bad parameter (the problem names it); 401/403 for
//! the token; 404 when this deployment serves no aggregates (no reader wired); 503 when the store
//! is unavailable.
//!
//! The port keeps this crate free of the aggregate store: the reader (an adapter over
//! `sluice-aggregators`' store, wired by the process that composes the app) validates the
//! parameters and reads; this module only authenticates, decodes the query string and maps the
//! answer to HTTP.

use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sluice_schemas::Registry;

use crate::AppState;
use crate::auth::SCOPE_METRICS_READ;
use crate::problem::Problem;

/// One read: the decoded query parameters of `GET /v1/aggregates`, in request order
/// (`event_type`, `window`, `from`, `to`, optional `group_by`; see `ingest/openapi.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AggregatesRequest {
    /// `(name, value)` pairs, percent-decoded, repeats and unknown names included (the reader
    /// rejects them).
    pub params: Vec<(String, String)>,
}

/// Why a read has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregatesError {
    /// A parameter is missing, malformed or out of range: the caller must fix the request
    /// (400, the problem names `param`).
    #[error("invalid parameter `{param}`: {message}")]
    BadParam {
        /// The parameter at fault.
        param: String,
        /// What is wrong with it, for the caller.
        message: String,
    },
    /// The store did not answer: retry later (opaque 503 with `Retry-After`; the reason is
    /// logged, never sent).
    #[error("{0}")]
    Unavailable(String),
}

/// A boxed read, as returned by [`AggregatesReader::read`].
pub type ReadFuture<'a> = Pin<Box<dyn Future<Output = Result<serde_json::Value, AggregatesError>> + Send + 'a>>;

/// The aggregates-reader port: answers one `GET /v1/aggregates` request.
///
/// Guarantees of every implementation:
/// - **Validated:** the parameters are checked against `registry` (a registered event type, a
///   window label, `from < to` within the query span limit, `group_by` naming distinct
///   dimensions, no unknown or repeated parameter); a violation is
///   [`AggregatesError::BadParam`] naming the parameter, and nothing is read.
/// - **Consistent:** the answer reflects every aggregate write acknowledged before the read
///   started (strongly consistent reads; never a stale replica).
/// - **Merged:** each bucket is one window (and group) with every shard's partial and every
///   not-yet-folded batch merged in, so each valid event counts exactly once, and the dimensions
///   not grouped by merged away.
/// - **Read-only:** a read changes nothing, so it is safe to retry.
///
/// On success the value is the JSON body of the 200 answer: the `Aggregates` document of
/// `ingest/openapi.yaml` (`event_type`, `window`, `buckets`).
pub trait AggregatesReader: Send + Sync + 'static {
    /// Answers `request`, validated against `registry`.
    fn read<'a>(&'a self, registry: &'a Registry, request: &'a AggregatesRequest) -> ReadFuture<'a>;
}

fn bad_param(param: &str, message: &str) -> Response {
    Problem::new(StatusCode::BAD_REQUEST, "invalid-parameter", "Invalid query parameter")
        .detail(format!("`{param}`: {message}"))
        .with("param", serde_json::Value::String(param.to_owned()))
        .into_response()
}

/// `GET /v1/aggregates`.
pub(crate) async fn handler(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let ingest = &state.ingest;
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = ingest
        .auth
        .authenticate(&parts.headers, &parts.extensions, now)
        .await
        .and_then(|p| p.require(SCOPE_METRICS_READ))
    {
        return e.to_problem().into_response();
    }
    let Some(reader) = &state.aggregates else {
        return Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
            .detail("this deployment serves no aggregates")
            .into_response();
    };
    let Ok(Query(params)) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri) else {
        return bad_param("query", "the query string is not valid application/x-www-form-urlencoded");
    };
    match reader.read(&ingest.registry, &AggregatesRequest { params }).await {
        Ok(body) => Json(body).into_response(),
        Err(AggregatesError::BadParam { param, message }) => bad_param(&param, &message),
        Err(AggregatesError::Unavailable(reason)) => {
            tracing::error!(error = %reason, "aggregate store read failed");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service Unavailable")
                .detail("The aggregate store is unavailable; retry later.")
                .retry_after(1)
                .into_response()
        }
    }
}
