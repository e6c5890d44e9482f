//! The ingest Lambda path: an API Gateway HTTP API v2 event (real shape, `tests/data/`) through
//! `lambda_http`'s request conversion into the same Router.

use serde_json::Value;
use sluice_ingest::config::{AuthSetting, IngestLambdaConfig};
use sluice_ingest::{AppState, Authenticator};
use tower::ServiceExt;

use crate::support::*;

fn fixture() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/apigw_http_v2_request.json")).unwrap()
}

async fn call(state: AppState, event: &str) -> (u16, Value) {
    let request = lambda_http::request::from_str(event).unwrap();
    let response = sluice_ingest::app(state).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    assert_eq!(response.headers()["x-request-id"], "XyZ12AbCdEfGhIj=", "API Gateway's request id");
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn trusting_the_authorizer_context_records_its_client_id() {
    let log = memory();
    let state = AppState::builder(registry(), log.clone(), Authenticator::trust_gateway()).build();
    let (status, body) = call(state, &fixture()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["results"][0]["event_id"], "0190a0c4-5b7e-7cc3-8f1a-3b2c1d0e9f8a");
    let event = registry().decode_stored(&log.records()[0].1.data).unwrap();
    assert_eq!(event.producer, "4p1lq7v0c3k9m2n8b6x5z1w0ye");
    assert_eq!(event.data["app_version"], "3.14.0");
}

#[tokio::test]
async fn without_authorizer_context_or_scope_the_gateway_mode_refuses() {
    let mut event: Value = serde_json::from_str(&fixture()).unwrap();
    event["requestContext"]["authorizer"]["jwt"]["scopes"] = Value::Null;
    event["requestContext"]["authorizer"]["jwt"]["claims"]["scope"] = "sluice/metrics.read".into();
    let state = AppState::builder(registry(), memory(), Authenticator::TrustGateway).build();
    assert_eq!(call(state, &event.to_string()).await.0, 403);
    event["requestContext"].as_object_mut().unwrap().remove("authorizer");
    let state = AppState::builder(registry(), memory(), Authenticator::TrustGateway).build();
    assert_eq!(call(state, &event.to_string()).await.0, 401);
}

#[tokio::test]
async fn the_lambda_state_checks_tokens_by_default() {
    let config = IngestLambdaConfig::from_lookup(|k| match k {
        "SLUICE_STREAM" => Some("events".into()),
        "SLUICE_JWT_ISSUER" => Some("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEfGhI".into()),
        "SLUICE_JWT_AUDIENCES" => Some("4p1lq7v0c3k9m2n8b6x5z1w0ye".into()),
        "SLUICE_JWKS_URL" => Some("http://127.0.0.1:9/jwks.json".into()),
        _ => None,
    })
    .unwrap();
    assert!(matches!(config.auth, AuthSetting::Jwt(_)));
    let sdk = sluice_aws::SdkConfig::builder().behavior_version(aws_config_behavior()).build();
    let state = sluice_ingest::lambda::builder(&config, &sdk).unwrap().build();
    // The fixture's token has a fake signature: the header names kid k1 and the JWKS is
    // unreachable, so the app cannot verify it: 503 (keys unavailable), never accepted.
    let (status, body) = call(state, &fixture()).await;
    assert_eq!(status, 503, "{body}");
}

fn aws_config_behavior() -> aws_sdk_kinesis::config::BehaviorVersion {
    aws_sdk_kinesis::config::BehaviorVersion::latest()
}
