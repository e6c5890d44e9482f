//! The ingest Lambda's app, built by `sluice_api::lambda::app` from its environment as the
//! binary builds it: `GET /v1/aggregates` answered from DynamoDB (moto), with a verified token.

use std::collections::HashMap;
use std::time::Duration;

use sluice_aggregators::DynamoAggregateStore;
use sluice_ingest::SCOPE_METRICS_READ;
use sluice_ingest::auth::{LOCAL_AUDIENCE, LOCAL_ISSUER};
use sluice_ingest::config::IngestLambdaConfig;
use sluice_testkit::moto::{moto, unique_name};

use crate::support::{Issuer, URI, VIEWS, aggregate, assert_views_answer, get, send};

/// The Lambda's configuration from `vars` (as `IngestLambdaConfig::from_env` reads the environment):
/// JWT auth against `issuer`'s JWKS URL, plus `extra`.
fn config(issuer: &Issuer, extra: &[(&str, &str)]) -> IngestLambdaConfig {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("SLUICE_STREAM", unique_name("events")),
        ("SLUICE_AUTH", "jwt".to_owned()),
        ("SLUICE_JWT_ISSUER", LOCAL_ISSUER.to_owned()),
        ("SLUICE_JWT_AUDIENCES", LOCAL_AUDIENCE.to_owned()),
        ("SLUICE_JWKS_URL", issuer.jwks_url.clone()),
    ]);
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    IngestLambdaConfig::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

#[tokio::test]
async fn the_ingest_lambda_answers_aggregates_from_dynamodb() {
    let Some(sdk) = moto().await else { return };
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = unique_name("ingest-aggregates");
    DynamoAggregateStore::create_table(&client, &table).await.unwrap();
    let store = DynamoAggregateStore::new(client, table.clone());
    aggregate(store.clone(), 0, &VIEWS[..2]).await;
    aggregate(store, 1, &VIEWS[2..]).await;

    let issuer = Issuer::start().await;
    let config = config(&issuer, &[("SLUICE_AGGREGATES_TABLE", &table)]);
    assert_eq!(config.aggregates_table.as_deref(), Some(table.as_str()));
    let app = sluice_api::lambda::app(&config, &sdk).unwrap();
    let token = issuer.issuer.mint("dash", &[SCOPE_METRICS_READ], Duration::from_secs(60)).unwrap();
    assert_views_answer(&app, &token).await;

    let producer = issuer.issuer.mint("shop", &[sluice_ingest::SCOPE_EVENTS_WRITE], Duration::from_secs(60)).unwrap();
    assert_eq!(send(app, get(&producer, URI)).await.0, 403, "the read scope is required");
}

#[tokio::test]
async fn without_the_table_variable_the_route_is_404() {
    let issuer = Issuer::start().await;
    let config = config(&issuer, &[]);
    assert_eq!(config.aggregates_table, None);
    let sdk =
        sluice_aws::SdkConfig::builder().behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest()).build();
    let app = sluice_api::lambda::app(&config, &sdk).unwrap();
    let token = issuer.issuer.mint("dash", &[SCOPE_METRICS_READ], Duration::from_secs(60)).unwrap();
    let (status, body) = send(app, get(&token, URI)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["detail"], "this deployment serves no aggregates");
}
