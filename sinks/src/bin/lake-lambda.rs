//! The lake writer Lambda: Kinesis event source mapping -> Parquet files in the lake.
//! Configuration: `SLUICE_LAKE_URL`, `SLUICE_DLQ_URL`, optional `SLUICE_SCHEMAS_DIR`,
//! `SLUICE_LAKE_START`, `SLUICE_MAX_FUTURE_SECS` (`LakeLambdaConfig`), and the standard `AWS_*`
//! variables; everything is built once per cold start. The runtime does not
//! deserialize the invocation body: the `RawPayloads` layer hands the raw bytes to
//! `handle_raw`, which parses them once with `KinesisBatch::parse`. Metrics go to stdout as
//! CloudWatch EMF after every invocation.

use std::sync::Arc;

use anyhow::Context as _;
use lambda_runtime::{LambdaEvent, Runtime, layers::TracingLayer, service_fn};
use sluice_lake::Lake;
use sluice_sinks::LakeWriter;
use sluice_sinks::lambda::{LakeLambdaConfig, handle_raw};
use sluice_stream::lambda_payload::{RawPayload, RawPayloads};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sluice_telemetry::init_logging(sluice_telemetry::LogFormat::Json);
    let config = LakeLambdaConfig::from_env().context("lake writer configuration")?;
    let settings = sluice_aws::AwsSettings::from_env().context("AWS settings")?;
    let registry = sluice_schemas::Registry::load(config.schemas_dir.as_deref())
        .context("schema registry")?
        .with_event_time(config.event_time);
    let lake = Lake::open(&config.lake_url, &settings).context("lake URL")?;
    let sdk = sluice_aws::sdk_config(&settings).await;
    let dlq = sluice_dlq::SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), &config.dlq_url);
    let metrics = sluice_telemetry::Metrics::new();
    let writer = Arc::new(LakeWriter::new(Arc::new(registry), lake, dlq).with_metrics(&metrics));
    let emf = Arc::new(sluice_telemetry::EmfReporter::new(metrics, sluice_telemetry::catalog::NAMESPACE));
    let payloads = RawPayloads::new();
    let bodies = payloads.clone();
    let service = service_fn(move |event: LambdaEvent<RawPayload>| {
        let (writer, emf, bodies) = (Arc::clone(&writer), Arc::clone(&emf), bodies.clone());
        async move {
            let result = handle_raw(&writer, &bodies, event).await;
            emf.print(chrono::Utc::now().timestamp_millis());
            result
        }
    });
    // As `lambda_runtime::run`, plus the raw-body hand-over (before the runtime's
    // deserialization, inside the tracing span).
    Runtime::new(service)
        .layer(payloads)
        .layer(TracingLayer::new())
        .run()
        .await
        .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
}
