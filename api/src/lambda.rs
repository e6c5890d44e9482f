//! The ingest Lambda's Router, built once per cold start from its [`IngestLambdaConfig`] (see
//! `sluice_ingest::config::ENV_VARS`) and the shared AWS [`SdkConfig`].

use std::sync::Arc;

use axum::Router;
use sluice_aggregators::DynamoAggregateStore;
use sluice_aws::SdkConfig;
use sluice_ingest::config::IngestLambdaConfig;
use sluice_ingest::lambda::InitError;

use crate::AggregateStoreReader;

/// The app the ingest Lambda serves: `sluice_ingest::lambda::builder` (Kinesis event log, auth,
/// limits) plus, when `config.aggregates_table` is set (`SLUICE_AGGREGATES_TABLE`),
/// `GET /v1/aggregates` read from that DynamoDB table. Without it the route answers 404 and a
/// warning is logged at start.
pub fn app(config: &IngestLambdaConfig, sdk: &SdkConfig) -> Result<Router, InitError> {
    let mut builder = sluice_ingest::lambda::builder(config, sdk)?;
    match &config.aggregates_table {
        Some(table) => {
            let store = DynamoAggregateStore::new(aws_sdk_dynamodb::Client::new(sdk), table.clone());
            builder = builder.aggregates(Arc::new(AggregateStoreReader(store)));
        }
        None => tracing::warn!("SLUICE_AGGREGATES_TABLE is not set: GET /v1/aggregates answers 404"),
    }
    Ok(sluice_ingest::app(builder.build()))
}
