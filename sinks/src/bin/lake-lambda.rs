//! The lake writer Lambda: Kinesis event source mapping -> Parquet files in the lake.
//! Configuration: `SLUICE_LAKE_URL`, `SLUICE_DLQ_URL`, optional `SLUICE_SCHEMAS_DIR`, and the
//! standard `AWS_*` variables; everything is built once per cold start. Metrics go to stdout as
//! CloudWatch EMF after every invocation.

use std::sync::Arc;

use anyhow::Context as _;
use lambda_runtime::{LambdaEvent, service_fn};
use sluice_sinks::lambda::{LambdaConfig, handle};
use sluice_sinks::{Lake, LakeWriter};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sluice_telemetry::init_logging(sluice_telemetry::LogFormat::Json);
    let config = LambdaConfig::from_env().context("lake writer configuration")?;
    let settings = sluice_aws::AwsSettings::from_env().context("AWS settings")?;
    let registry = sluice_schemas::Registry::load(config.schemas_dir.as_deref()).context("schema registry")?;
    let lake = Lake::open(&config.lake_url, &settings).context("lake URL")?;
    let sdk = sluice_aws::sdk_config(&settings).await;
    let dlq = sluice_dlq::SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), &config.dlq_url);
    let metrics = sluice_telemetry::Metrics::new();
    let writer = Arc::new(LakeWriter::new(Arc::new(registry), lake, dlq).with_metrics(&metrics));
    let emf = Arc::new(sluice_telemetry::EmfReporter::new(metrics, "sluice"));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let (writer, emf) = (Arc::clone(&writer), Arc::clone(&emf));
        async move {
            let result = handle(&writer, event).await;
            emf.print(chrono::Utc::now().timestamp_millis());
            result
        }
    }))
    .await
    .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
}
