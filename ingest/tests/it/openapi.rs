//! `ingest/openapi.yaml` and the Router agree: the spec documents exactly the routes, methods and
//! statuses of `sluice_ingest::ROUTES`, every route in ROUTES is served by the Router, and every
//! response the Router tests observe is in ROUTES (checked in `support::send`).

use std::collections::BTreeSet;

use serde_json::Value;
use sluice_ingest::{AppState, Authenticator, ROUTES};

use crate::support::*;

fn spec() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    serde_norway::from_str(&text).unwrap()
}

#[test]
fn spec_is_openapi_3_1_and_documents_exactly_the_routes() {
    let spec = spec();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1."));
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let statuses: BTreeSet<u16> =
                op["responses"].as_object().unwrap().keys().map(|k| k.parse().unwrap()).collect();
            documented.insert((method.to_uppercase(), path.clone(), statuses));
        }
    }
    let routes: BTreeSet<(String, String, BTreeSet<u16>)> =
        ROUTES.iter().map(|r| (r.method.to_owned(), r.path.to_owned(), r.statuses.iter().copied().collect())).collect();
    assert_eq!(documented, routes, "openapi.yaml and sluice_ingest::ROUTES disagree");
}

#[test]
fn every_error_response_is_problem_json_and_refs_resolve() {
    let spec = spec();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                let response = resolve(&spec, response);
                let code: u16 = status.parse().unwrap();
                let content =
                    response["content"].as_object().unwrap_or_else(|| panic!("{method} {path} {status}: no content"));
                if code >= 400 && path != "/health" {
                    assert!(content.contains_key("application/problem+json"), "{method} {path} {status}");
                }
                for media in content.values() {
                    resolve(&spec, &media["schema"]);
                }
            }
        }
    }
}

fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = spec.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling $ref {r}"));
            resolve(spec, target)
        }
        None => v,
    }
}

#[tokio::test]
async fn the_router_serves_every_documented_route() {
    let env = Env::new(memory());
    for route in ROUTES {
        let req =
            http::Request::builder().method(route.method).uri(route.path).body(axum::body::Body::empty()).unwrap();
        let (status, _, body) = send(env.app(), req).await;
        let detail = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["detail"].as_str().map(str::to_owned));
        let fallback = status == 405 || detail.is_some_and(|d| d.starts_with("No route for"));
        assert!(!fallback, "{} {} is not routed: {status}", route.method, route.path);
    }
    // Without a local issuer the JWKS route answers its documented 404.
    let app = sluice_ingest::app(AppState::builder(registry(), memory(), Authenticator::Disabled).build());
    assert_eq!(send(app, get("/.well-known/jwks.json")).await.0, 404);
}
