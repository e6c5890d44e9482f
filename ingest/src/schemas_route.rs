//! `GET /v1/schemas` (the registry: event types, versions, their JSON Schemas and aggregation
//! roles; public, it is the wire contract) and `GET /.well-known/jwks.json` (the local issuer's
//! public keys, 404 when there is none). Both bodies are rendered once at startup.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sluice_schemas::Registry;

use crate::AppState;
use crate::problem::Problem;

/// The `GET /v1/schemas` body: `{"event_types": [{"name", "latest", "versions": [{"version",
/// "dimensions", "measure", "identity", "schema"}]}]}`, types and versions in ascending order.
pub fn render(registry: &Registry) -> Vec<u8> {
    let mut types: Vec<Value> = registry
        .event_types()
        .map(|t| {
            let versions: Vec<Value> = t
                .versions
                .values()
                .map(|v| {
                    json!({
                        "version": v.version,
                        "dimensions": v.dimensions,
                        "measure": v.measure,
                        "identity": v.identity,
                        "schema": v.document,
                    })
                })
                .collect();
            json!({ "name": t.name, "latest": t.latest().map(|v| v.version), "versions": versions })
        })
        .collect();
    types.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    serde_json::to_vec(&json!({ "event_types": types })).unwrap_or_default()
}

/// `GET /v1/schemas`.
pub(crate) async fn handler(State(state): State<AppState>) -> Response {
    json_bytes(state.ingest.schemas_json.clone())
}

/// `GET /.well-known/jwks.json`.
pub(crate) async fn jwks(State(state): State<AppState>) -> Response {
    match &state.ingest.jwks_json {
        Some(body) => json_bytes(body.clone()),
        None => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not Found")
            .detail("This deployment has no local token issuer; keys come from the identity provider.")
            .into_response(),
    }
}

fn json_bytes(body: bytes::Bytes) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
