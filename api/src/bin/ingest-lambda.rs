//! The ingest Lambda: API Gateway HTTP API (payload v2) -> the same axum Router `sluice up`
//! serves, with `GET /v1/aggregates` read from DynamoDB. Configuration comes from the environment
//! (`sluice_ingest::config::ENV_VARS`, plus the AWS settings of `sluice_aws`) and is built once
//! per cold start.

use anyhow::Context as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sluice_telemetry::init_logging(sluice_telemetry::LogFormat::Json);
    let config = sluice_ingest::config::IngestLambdaConfig::from_env().context("ingest configuration")?;
    let settings = sluice_aws::AwsSettings::from_env().context("AWS settings")?;
    let sdk = sluice_aws::sdk_config(&settings).await;
    let app = sluice_api::lambda::app(&config, &sdk).context("ingest state")?;
    lambda_http::run(app).await.map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
}
