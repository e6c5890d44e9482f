//! The aggregator Lambda: Kinesis batches -> exactly-once aggregates in DynamoDB. Configuration
//! from the environment (`sluice_aggregators::lambda::ENV_VARS`, plus the `AWS_*` settings),
//! built once per cold start; `sluice_stream::lambda::run` hands each raw invocation body to the
//! handler's one entry and prints the metrics as CloudWatch EMF after every invocation.

use std::sync::Arc;

use anyhow::Context as _;
use sluice_aggregators::lambda::AggregatorLambdaConfig;
use sluice_aggregators::{AggregatorHandler, DynamoAggregateStore};
use sluice_telemetry::{EmfReporter, Metrics, catalog};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sluice_telemetry::init_logging(sluice_telemetry::LogFormat::Json);
    let config = AggregatorLambdaConfig::from_env().context("aggregator configuration")?;
    let settings = sluice_aws::AwsSettings::from_env().context("AWS settings")?;
    let registry = sluice_schemas::Registry::load(config.schemas_dir.as_deref())
        .context("schema registry")?
        .with_event_time(config.event_time);
    let sdk = sluice_aws::sdk_config(&settings).await;
    let metrics = Metrics::new();
    let store = DynamoAggregateStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table).with_metrics(&metrics);
    let dlq = sluice_dlq::SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), &config.dlq_url);
    let handler = AggregatorHandler::new(Arc::new(registry), store, dlq, config.windows).with_metrics(&metrics);
    let emf = EmfReporter::new(metrics, catalog::NAMESPACE);
    let print_metrics = || emf.print(chrono::Utc::now().timestamp_millis());
    sluice_stream::lambda::run(handler, print_metrics).await.map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
}
