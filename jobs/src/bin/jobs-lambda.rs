//! The jobs Lambda: the task functions of the state machines (`jobs/statemachines/`).
//! Configuration from the environment (`sluice_jobs::lambda::ENV_VARS`, plus the `AWS_*`
//! settings), built once per cold start; each invocation's payload `{"task": <name>, "input":
//! <value>}` goes to the one task table's `dispatch`. A task's error is the function error:
//! its ASL error name as `errorType` (what the definitions' `Retry`/`Catch` match), its cause
//! as `errorMessage`.

use std::sync::Arc;

use anyhow::Context as _;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use sluice_aggregators::DynamoAggregateStore;
use sluice_jobs::backfill::Backfiller;
use sluice_jobs::compaction::Compactor;
use sluice_jobs::lambda::JobsLambdaConfig;
use sluice_jobs::orchestration::tasks::{self, Jobs};
use sluice_lake::Lake;
use sluice_sinks::LakeTables;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sluice_telemetry::init_logging(sluice_telemetry::LogFormat::Json);
    let config = JobsLambdaConfig::from_env().context("jobs configuration")?;
    let settings = sluice_aws::AwsSettings::from_env().context("AWS settings")?;
    let registry = Arc::new(sluice_schemas::Registry::load(config.schemas_dir.as_deref()).context("schema registry")?);
    let sdk = sluice_aws::sdk_config(&settings).await;
    let lake = Lake::open(&config.lake_url, &settings).context("lake URL")?;
    let compactor = Compactor::new(lake.clone(), LakeTables::new(Arc::clone(&registry)), config.compaction);
    let store = DynamoAggregateStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.aggregates_table);
    let backfiller = Arc::new(Backfiller::new(lake.clone(), registry, store, config.windows));
    let table = tasks::table(Jobs { lake, compactor }, backfiller);
    let table = &table;
    let service = service_fn(move |event: LambdaEvent<Value>| async move {
        table.dispatch(event.payload).await.map_err(|e| Diagnostic { error_type: e.error, error_message: e.cause })
    });
    lambda_runtime::run(service).await.map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
}
