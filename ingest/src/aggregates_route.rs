//! `GET /v1/aggregates`: windowed aggregates, merged across shards (scope `sluice/metrics.read`).
//!
//! Statuses: 200 with the buckets; 400 for a bad parameter (the problem names it); 401/403 for
//! the token; 404 when this deployment serves no aggregates; 503 when the store is unavailable.

use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sluice_aggregators::{AggregateQuery, AggregateResponse, AggregateStore, AggregateQueryError, StoreError, read_aggregates};
use sluice_schemas::Registry;

use crate::AppState;
use crate::auth::SCOPE_METRICS_READ;
use crate::problem::Problem;

/// A boxed read, as returned by [`AggregateReader::read`].
pub type ReadFuture<'a> = Pin<Box<dyn Future<Output = Result<AggregateResponse, AggregateQueryError>> + Send + 'a>>;

/// Reads aggregates for the route (object-safe wrapper over an `AggregateStore`).
pub trait AggregateReader: Send + Sync + 'static {
    /// Answers `query` (see `sluice_aggregators::read_aggregates`).
    fn read<'a>(&'a self, registry: &'a Registry, query: &'a AggregateQuery) -> ReadFuture<'a>;
}

/// Serves the route from any aggregate store.
pub struct StoreReader<S>(pub S);

impl<S: AggregateStore> AggregateReader for StoreReader<S> {
    fn read<'a>(&'a self, registry: &'a Registry, query: &'a AggregateQuery) -> ReadFuture<'a> {
        Box::pin(read_aggregates(&self.0, registry, query))
    }
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
    let registry = &ingest.registry;
    let query = match AggregateQuery::from_params(registry, params.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        Ok(q) => q,
        Err(AggregateQueryError::BadParam { param, message }) => return bad_param(&param, &message),
        Err(AggregateQueryError::Store(e)) => return store_problem(&e),
    };
    match reader.read(registry, &query).await {
        Ok(resp) => Json(resp).into_response(),
        Err(AggregateQueryError::BadParam { param, message }) => bad_param(&param, &message),
        Err(AggregateQueryError::Store(e)) => store_problem(&e),
    }
}

fn store_problem(e: &StoreError) -> Response {
    if let StoreError::TooLarge(m) = e {
        return bad_param("from", &format!("the range is too large: {m}"));
    }
    tracing::error!(error = %e, "aggregate store read failed");
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service Unavailable")
        .detail("The aggregate store is unavailable; retry later.")
        .retry_after(1)
        .into_response()
}
