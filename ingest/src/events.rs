//! `POST /v1/events`: authenticate, decode, validate, append, answer per event.
//!
//! Order of checks (first failure answers): auth (401/403/503), `Content-Type` (415), body size
//! (413), JSON syntax (400), batch shape (413 over `max_events`, 422 empty), rate limit (429),
//! per-event validation, encoded event size (413), append (503 for what was not written).
//!
//! Answers:
//! - **202** at least one event accepted and every valid event written:
//!   `{"accepted", "rejected", "results": [{"index", "event_id", "status", "errors"}]}`.
//! - **422** (problem+json with the same `accepted`/`rejected`/`results` members) when no event
//!   was accepted and every failure is a validation failure.
//! - **503** (problem+json with `results`, `Retry-After`) when some valid event could not be
//!   written: those are `"status": "unavailable"`; events marked `accepted` were written
//!   (resending them is safe: duplicates share the `event_id` and are removed by compaction).
//!
//! Guarantee: an event is reported `accepted` only after the [`EventLog`] durably took it, and
//! each request makes exactly one `append` call. Records are `serde_json::to_vec(&Event)` with
//! partition key = `event_id` (even spread over shards; a producer's duplicates share a shard).

// The error path of every helper here *is* the response (a `Problem`); boxing it buys nothing.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde_json::Value;
use sluice_schemas::{IngestContext, Registry, Violation};
use sluice_telemetry::{Counter, Metrics, catalog};

use crate::AppState;
use crate::auth::{AuthError, Authenticator};
use crate::config::Limits;
use crate::eventlog::{AppendOutcome, EventLog, LogRecord};
use crate::problem::Problem;
use crate::ratelimit::{Decision, RateLimit, RateLimiter};

/// The intake: everything `POST /v1/events` and `GET /v1/schemas` use.
pub struct Ingest {
    pub(crate) registry: Arc<Registry>,
    log: Arc<dyn EventLog>,
    pub(crate) auth: Authenticator,
    limits: Limits,
    limiter: Option<RateLimiter>,
    write_scope: String,
    pub(crate) schemas_json: Bytes,
    pub(crate) jwks_json: Option<Bytes>,
    counters: Counters,
}

struct Counters {
    accepted: Arc<Counter>,
    rejected: Arc<Counter>,
    unavailable: Arc<Counter>,
    requests: Vec<(u16, Arc<Counter>)>,
}

impl Counters {
    fn new(metrics: &Metrics) -> Self {
        let events = |outcome: &str| metrics.counter(&catalog::INGEST_EVENTS, [outcome]);
        let requests = crate::ROUTES
            .iter()
            .filter(|r| r.path == "/v1/events")
            .flat_map(|r| r.statuses.iter())
            .map(|&s| {
                let code = s.to_string();
                (s, metrics.counter(&catalog::INGEST_REQUESTS, [&code]))
            })
            .collect();
        Self {
            accepted: events("accepted"),
            rejected: events("rejected"),
            unavailable: events("unavailable"),
            requests,
        }
    }

    fn request(&self, status: StatusCode) {
        if let Some((_, c)) = self.requests.iter().find(|(s, _)| *s == status.as_u16()) {
            c.inc();
        }
    }
}

impl Ingest {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        registry: Arc<Registry>,
        log: Arc<dyn EventLog>,
        auth: Authenticator,
        limits: Limits,
        rate_limit: Option<RateLimit>,
        write_scope: String,
        jwks: Option<jsonwebtoken::jwk::JwkSet>,
        metrics: &Metrics,
    ) -> Self {
        let schemas_json = Bytes::from(crate::schemas_route::render(&registry));
        let jwks_json = jwks.and_then(|set| serde_json::to_vec(&set).ok()).map(Bytes::from);
        Self {
            registry,
            log,
            auth,
            limits,
            limiter: rate_limit.map(RateLimiter::new),
            write_scope,
            schemas_json,
            jwks_json,
            counters: Counters::new(metrics),
        }
    }

    /// The event log (for health probes).
    pub fn event_log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }
}

/// The per-event result in 202/422/503 bodies.
#[derive(Debug, Serialize)]
pub struct EventResult {
    /// Position in the request (0 for a single object).
    pub index: usize,
    /// The event's id (as sent, or assigned), `null` when it had no usable one.
    pub event_id: Option<String>,
    /// `accepted`, `rejected` or `unavailable`.
    pub status: &'static str,
    /// Violations of a rejected event (empty otherwise).
    pub errors: Vec<Violation>,
}

#[derive(Serialize)]
struct Accepted<'a> {
    accepted: usize,
    rejected: usize,
    results: &'a [EventResult],
}

/// `POST /v1/events`.
pub(crate) async fn handler(State(state): State<AppState>, request: Request) -> Response {
    let ingest = &state.ingest;
    let response = match intake(ingest, request).await {
        Ok(r) => r,
        Err(problem) => problem.into_response(),
    };
    ingest.counters.request(response.status());
    response
}

async fn intake(ingest: &Ingest, request: Request) -> Result<Response, Problem> {
    let (parts, body) = request.into_parts();
    let now = Utc::now();
    let principal = ingest
        .auth
        .authenticate(&parts.headers, &parts.extensions, now.timestamp())
        .await
        .and_then(|p| p.require(&ingest.write_scope).map(|()| p))
        .map_err(|e: AuthError| {
            tracing::debug!(error = %e, "request not authenticated");
            e.to_problem()
        })?;
    check_content_type(&parts.headers)?;
    let bytes = read_body(&parts.headers, body, ingest.limits.max_body_bytes).await?;
    let parsed: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "malformed-json", "Bad Request")
            .detail(format!("The body is not valid JSON: {e}"))
            .with("line", e.line().into())
            .with("column", e.column().into())
    })?;
    drop(bytes);
    let events = match parsed {
        Value::Array(events) => events,
        single => vec![single],
    };
    if events.len() > ingest.limits.max_events {
        return Err(Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-many-events", "Content Too Large").detail(
            format!("{} events in one request; at most {} are allowed.", events.len(), ingest.limits.max_events),
        ));
    }
    if events.is_empty() {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "empty-batch", "Unprocessable Content")
            .detail("The array holds no events.")
            .with("accepted", 0.into())
            .with("rejected", 0.into())
            .with("results", Value::Array(Vec::new())));
    }
    if let Some(limiter) = &ingest.limiter
        && let Decision::RetryAfter(secs) = limiter.check(&principal.producer, events.len(), Instant::now())
    {
        return Err(Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too Many Requests")
            .detail(format!("Producer {:?} is over its event rate; retry in {secs} s.", principal.producer))
            .retry_after(secs));
    }

    let ctx = IngestContext::new(principal.producer, now);
    let mut results = Vec::with_capacity(events.len());
    let mut records = Vec::with_capacity(events.len());
    let mut record_index = Vec::with_capacity(events.len());
    for (index, input) in events.iter().enumerate() {
        match ingest.registry.validate(input, &ctx) {
            Ok(event) => {
                // Same bytes as `serde_json::to_vec(&event)`, without regrowing the buffer.
                let mut data = Vec::with_capacity(512);
                serde_json::to_writer(&mut data, &event).map_err(|e| {
                    tracing::error!(error = %e, "encoding a validated event failed");
                    Problem::internal()
                })?;
                if data.len() + event.event_id.len() > ingest.limits.max_event_bytes {
                    return Err(Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "event-too-large", "Content Too Large")
                        .detail(format!(
                            "Event {index} is {} bytes after encoding; at most {} are allowed per event.",
                            data.len() + event.event_id.len(),
                            ingest.limits.max_event_bytes
                        ))
                        .with("index", index.into()));
                }
                record_index.push(results.len());
                results.push(EventResult {
                    index,
                    event_id: Some(event.event_id.clone()),
                    status: "unavailable",
                    errors: Vec::new(),
                });
                records.push(LogRecord { partition_key: event.event_id, data: Bytes::from(data) });
            }
            Err(rejection) => {
                let event_id = input.get("event_id").and_then(Value::as_str).map(str::to_owned);
                results.push(EventResult { index, event_id, status: "rejected", errors: rejection.violations });
            }
        }
    }
    drop(events);

    let rejected = results.len() - records.len();
    let mut accepted = 0;
    if !records.is_empty() {
        let expected = records.len();
        let outcomes = ingest.log.append(records).await;
        if outcomes.len() != expected {
            tracing::error!(expected, got = outcomes.len(), "event log broke its contract: outcome count");
        }
        for (slot, outcome) in record_index.iter().zip(outcomes) {
            match outcome {
                AppendOutcome::Written(_) => {
                    if let Some(r) = results.get_mut(*slot) {
                        r.status = "accepted";
                        accepted += 1;
                    }
                }
                AppendOutcome::Failed(f) => {
                    tracing::warn!(code = %f.code, message = %f.message, log = ingest.log.kind(), "event not written");
                }
            }
        }
    }
    let unavailable = results.len() - accepted - rejected;
    ingest.counters.accepted.add(accepted as u64);
    ingest.counters.rejected.add(rejected as u64);
    ingest.counters.unavailable.add(unavailable as u64);

    if unavailable > 0 {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "stream-unavailable", "Service Unavailable")
            .detail(format!(
                "{unavailable} event(s) could not be written to the stream; retry them. Events marked accepted were written."
            ))
            .with("accepted", accepted.into())
            .with("rejected", rejected.into())
            .with("unavailable", unavailable.into())
            .with("results", serde_json::to_value(&results).unwrap_or(Value::Null))
            .retry_after(1));
    }
    if accepted == 0 {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-events", "Unprocessable Content")
            .detail(format!("None of the {rejected} event(s) is valid; see results[].errors."))
            .with("accepted", 0.into())
            .with("rejected", rejected.into())
            .with("results", serde_json::to_value(&results).unwrap_or(Value::Null)));
    }
    let body =
        serde_json::to_vec(&Accepted { accepted, rejected, results: &results }).map_err(|_| Problem::internal())?;
    let mut response = (StatusCode::ACCEPTED, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// `application/json` (any parameters, any case) or 415.
fn check_content_type(headers: &HeaderMap) -> Result<(), Problem> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if ok {
        Ok(())
    } else {
        Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported Media Type")
            .detail("Send the events with Content-Type: application/json."))
    }
}

/// The body, or 413 when it is (or announces to be) over `limit`, or 400 when it cannot be read.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Problem> {
    let too_large = || {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large", "Content Too Large")
            .detail(format!("The body is larger than {limit} bytes; split the batch."))
            .with("max_body_bytes", limit.into())
    };
    let announced =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(Problem::new(StatusCode::BAD_REQUEST, "unreadable-body", "Bad Request")
            .detail(format!("The body could not be read: {e}"))),
    }
}
