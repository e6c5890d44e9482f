//! The aggregator Lambda: Kinesis batches -> exactly-once aggregates in DynamoDB. Configuration
//! from the environment (`sluice_aggregators::lambda::ENV_VARS`, plus the `AWS_*` settings),
//! built once per cold start. The runtime does not deserialize the invocation body: the
//! `RawPayloads` layer hands the raw bytes to `handle_raw_invocation`, which parses them once.
//! Metrics go to stdout as CloudWatch EMF after every invocation.

use std::sync::Arc;

use anyhow::Context as _;
use lambda_runtime::{LambdaEvent, Runtime, layers::TracingLayer, service_fn};
use sluice_aggregators::handler::handle_raw_invocation;
use sluice_aggregators::lambda::AggregatorLambdaConfig;
use sluice_aggregators::{AggregatorHandler, DynamoAggregateStore};
use sluice_stream::lambda_payload::{RawPayload, RawPayloads};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sluice_telemetry::init_logging(sluice_telemetry::LogFormat::Json);
    let config = AggregatorLambdaConfig::from_env().context("aggregator configuration")?;
    let settings = sluice_aws::AwsSettings::from_env().context("AWS settings")?;
    let registry = sluice_schemas::Registry::load(config.schemas_dir.as_deref())
        .context("schema registry")?
        .with_event_time(config.event_time);
    let sdk = sluice_aws::sdk_config(&settings).await;
    let metrics = sluice_telemetry::Metrics::new();
    let store = DynamoAggregateStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table).with_metrics(&metrics);
    let dlq = sluice_dlq::SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), &config.dlq_url);
    let handler = AggregatorHandler::new(Arc::new(registry), store, dlq, config.windows).with_metrics(&metrics);
    let emf = sluice_telemetry::EmfReporter::new(metrics, sluice_telemetry::catalog::NAMESPACE);
    let payloads = RawPayloads::new();
    let (handler, emf, bodies) = (&handler, &emf, &payloads);
    let service = service_fn(move |event: LambdaEvent<RawPayload>| async move {
        let result = handle_raw_invocation(handler, bodies, event).await;
        emf.print(chrono::Utc::now().timestamp_millis());
        result
    });
    // As `lambda_runtime::run`, plus the raw-body hand-over (before the runtime's
    // deserialization, inside the tracing span).
    Runtime::new(service)
        .layer(payloads.clone())
        .layer(TracingLayer::new())
        .run()
        .await
        .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
}
