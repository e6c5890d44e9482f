//! `GET /v1/aggregates` through the ingest Router with the reader over a SQLite aggregate store
//! (as `sluice up` serves it): merging, and the parameter checks of the read API.

use std::sync::Arc;
use std::time::Duration;

use sluice_aggregators::SqliteAggregateStore;
use sluice_api::AggregateStoreReader;
use sluice_ingest::{AppState, Authenticator, MemoryEventLog, SCOPE_METRICS_READ};

use crate::support::{Issuer, URI, VIEWS, aggregate, assert_views_answer, get, registry, send};

async fn app(store: SqliteAggregateStore) -> (Issuer, axum::Router, String) {
    let issuer = Issuer::start().await;
    let auth = Authenticator::jwt(issuer.issuer.verifier().unwrap());
    let state = AppState::builder(registry(), Arc::new(MemoryEventLog::new()), auth)
        .aggregates(Arc::new(AggregateStoreReader(store)))
        .build();
    let token = issuer.issuer.mint("dash", &[SCOPE_METRICS_READ], Duration::from_secs(60)).unwrap();
    (issuer, sluice_ingest::app(state), token)
}

#[tokio::test]
async fn returns_buckets_merged_across_shards_and_dimensions_not_grouped_by() {
    let store = SqliteAggregateStore::in_memory().unwrap();
    aggregate(store.clone(), 0, &VIEWS[..2]).await;
    aggregate(store.clone(), 1, &VIEWS[2..]).await;
    let (_issuer, app, token) = app(store).await;
    assert_views_answer(&app, &token).await;
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter() {
    let (_issuer, app, token) = app(SqliteAggregateStore::in_memory().unwrap()).await;
    for (uri, param) in [
        ("/v1/aggregates?event_type=page_view&window=7q&from=2026-11-26T10:00:00Z&to=2026-11-26T11:00:00Z", "window"),
        ("/v1/aggregates?window=1m&from=2026-11-26T10:00:00Z&to=2026-11-26T11:00:00Z", "event_type"),
        ("/v1/aggregates?event_type=nope&window=1m&from=2026-11-26T10:00:00Z&to=2026-11-26T11:00:00Z", "event_type"),
        ("/v1/aggregates?event_type=page_view&window=1m&from=yesterday&to=2026-11-26T11:00:00Z", "from"),
        (&format!("{URI}&group_by=colour"), "group_by"),
        (&format!("{URI}&limit=3"), "limit"),
    ] {
        let (status, body) = send(app.clone(), get(&token, uri)).await;
        assert_eq!(status, 400, "{uri}: {body}");
        assert_eq!(body["param"], param, "{uri}");
    }
}
