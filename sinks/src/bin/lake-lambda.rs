//! The lake writer Lambda: Kinesis event source mapping -> Parquet files in the lake.
//! Configuration: `SLUICE_LAKE_URL`, `SLUICE_DLQ_URL`, optional `SLUICE_SCHEMAS_DIR`, and the
//! standard `AWS_*` variables; everything is built once per cold start.

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
    let registry = match &config.schemas_dir {
        Some(dir) => sluice_schemas::Registry::from_dir(dir),
        None => sluice_schemas::Registry::builtin(),
    }
    .context("schema registry")?;
    let lake = Lake::open(&config.lake_url, &settings).context("lake URL")?;
    let sdk = sluice_aws::sdk_config(&settings).await;
    let dlq = sluice_dlq::SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), &config.dlq_url);
    let writer = Arc::new(LakeWriter::new(Arc::new(registry), lake, dlq));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let writer = Arc::clone(&writer);
        async move { handle(&writer, event).await }
    }))
    .await
    .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
}
