//! The lake writer Lambda: Kinesis batches -> Parquet files in the lake. Configuration from the
//! environment (`sluice_sinks::lambda::ENV_VARS`, plus the `AWS_*` settings), built once per
//! cold start; `sluice_stream::lambda::run` hands each raw invocation body to the writer's one
//! entry and prints the metrics as CloudWatch EMF after every invocation.

use std::sync::Arc;

use anyhow::Context as _;
use sluice_lake::Lake;
use sluice_sinks::LakeWriter;
use sluice_sinks::lambda::LakeLambdaConfig;
use sluice_telemetry::{EmfReporter, Metrics, catalog};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sluice_telemetry::init_logging(sluice_telemetry::LogFormat::Json);
    let config = LakeLambdaConfig::from_env().context("lake writer configuration")?;
    let settings = sluice_aws::AwsSettings::from_env().context("AWS settings")?;
    let registry = sluice_schemas::Registry::load(config.schemas_dir.as_deref())
        .context("schema registry")?
        .with_event_time(config.event_time);
    let sdk = sluice_aws::sdk_config(&settings).await;
    let metrics = Metrics::new();
    let lake = Lake::open(&config.lake_url, &settings).context("lake URL")?;
    let dlq = sluice_dlq::SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), &config.dlq_url);
    let writer = LakeWriter::new(Arc::new(registry), lake, dlq).with_metrics(&metrics);
    let emf = EmfReporter::new(metrics, catalog::NAMESPACE);
    let print_metrics = || emf.print(chrono::Utc::now().timestamp_millis());
    sluice_stream::lambda::run(writer, print_metrics).await.map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
}
