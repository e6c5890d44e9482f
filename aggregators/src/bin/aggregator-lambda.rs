//! The aggregator Lambda: Kinesis batches -> exactly-once aggregates in DynamoDB.
//!
//! The runtime does not deserialize the invocation body: the `RawPayloads` layer (of
//! sluice-stream) hands the raw bytes to `handle_raw_invocation`, which parses them once with
//! `KinesisBatch::parse_with` (the fast Kinesis parser of sluice-stream; base64 decoded in the
//! same pass, no allocation per record), decoding, validating and aggregating each record as it
//! is read, instead of `serde_json` scanning the whole payload first.
//!
//! Environment: `SLUICE_AGGREGATES_TABLE` (DynamoDB table), `SLUICE_DLQ_URL` (SQS queue for
//! invalid records), optional `SLUICE_WINDOWS` (default `1m,1h`) and
//! `SLUICE_ALLOWED_LATENESS` (default `5m`), optional `SLUICE_SCHEMAS_DIR`, `SLUICE_LAKE_START`
//! and `SLUICE_MAX_FUTURE_SECS` (the accepted range of `occurred_at`), plus the AWS
//! settings of `sluice_aws`. Metrics go to stdout as CloudWatch EMF after every invocation.

use std::sync::Arc;

use anyhow::Context as _;
use lambda_runtime::{LambdaEvent, Runtime, layers::TracingLayer, service_fn};
use sluice_aggregators::handler::handle_raw_invocation;
use sluice_aggregators::{AggregatorHandler, DynamoAggregateStore, WindowConfig, WindowSize};
use sluice_dlq::SqsDeadLetters;
use sluice_schemas::Registry;
use sluice_stream::lambda_payload::{RawPayload, RawPayloads};
use sluice_telemetry::{EmfReporter, Metrics};

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sluice_telemetry::init_logging(sluice_telemetry::LogFormat::Json);
    let settings = sluice_aws::AwsSettings::from_env()?;
    let sdk = sluice_aws::sdk_config(&settings).await;
    let windows = std::env::var("SLUICE_WINDOWS").unwrap_or_else(|_| "1m,1h".into());
    let windows = windows.split(',').map(|w| w.trim().parse::<WindowSize>()).collect::<Result<Vec<_>, _>>()?;
    let lateness: WindowSize = std::env::var("SLUICE_ALLOWED_LATENESS").unwrap_or_else(|_| "5m".into()).parse()?;
    let config = WindowConfig::new(windows, chrono::TimeDelta::seconds(lateness.secs().into()));
    let store = DynamoAggregateStore::new(aws_sdk_dynamodb::Client::new(&sdk), env("SLUICE_AGGREGATES_TABLE")?);
    let dlq = SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), env("SLUICE_DLQ_URL")?);
    let schemas_dir = std::env::var_os("SLUICE_SCHEMAS_DIR").map(std::path::PathBuf::from);
    let event_time = sluice_schemas::EventTimeRange::from_lookup(|name| std::env::var(name).ok())?;
    let registry = Registry::load(schemas_dir.as_deref())?.with_event_time(event_time);
    let metrics = Metrics::new();
    let handler = AggregatorHandler::new(Arc::new(registry), store, dlq, config).with_metrics(&metrics);
    let emf = EmfReporter::new(metrics, sluice_telemetry::catalog::NAMESPACE);
    let payloads = RawPayloads::new();
    let (handler, emf, bodies) = (&handler, &emf, &payloads);
    let service = service_fn(move |event: LambdaEvent<RawPayload>| async move {
        let result = handle_raw_invocation(handler, bodies, event).await;
        emf.print(chrono::Utc::now().timestamp_millis());
        result
    });
    // As `lambda_runtime::run`, plus the raw-body hand-over (runs before the runtime's
    // deserialization, after the tracing span is opened).
    Runtime::new(service).layer(payloads.clone()).layer(TracingLayer::new()).run().await.map_err(|e| anyhow::anyhow!(e))
}
