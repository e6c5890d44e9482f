//! The lake writer as a Lambda function: configuration from the environment and the
//! `LambdaEvent<KinesisInput>` entry point (`src/bin/lake-lambda.rs` only wires these). The
//! payload is parsed by `KinesisInput`'s fast scanner (base64 decoded in the same pass), not
//! through `aws_lambda_events`' `KinesisEvent`.

use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::LambdaEvent;
use sluice_dlq::DeadLetterQueue;
use sluice_stream::kinesis_input::{KinesisBatch, KinesisInput};

use crate::LakeWriter;

/// Lake URL (`s3://bucket/prefix`, `file:///dir`).
pub const ENV_LAKE_URL: &str = "SLUICE_LAKE_URL";
/// SQS queue URL of the lake writer's dead letters.
pub const ENV_DLQ_URL: &str = "SLUICE_DLQ_URL";
/// Optional directory of schema files (`<event_type>/v<N>.json`); the built-in set otherwise.
pub const ENV_SCHEMAS_DIR: &str = "SLUICE_SCHEMAS_DIR";

/// The Lambda's typed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaConfig {
    pub lake_url: String,
    pub dlq_url: String,
    pub schemas_dir: Option<std::path::PathBuf>,
}

/// A required variable is missing or empty: fix the function's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {0} must be set")]
pub struct MissingVar(pub &'static str);

impl LambdaConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, MissingVar> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`LambdaConfig::from_env`] over any lookup (pure).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, MissingVar> {
        let get = |name| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        Ok(Self {
            lake_url: get(ENV_LAKE_URL).ok_or(MissingVar(ENV_LAKE_URL))?,
            dlq_url: get(ENV_DLQ_URL).ok_or(MissingVar(ENV_DLQ_URL))?,
            schemas_dir: get(ENV_SCHEMAS_DIR).map(Into::into),
        })
    }
}

/// The function handler: one Kinesis batch in, partial-batch response out. Never a function
/// error (every failure is a batch item failure; see [`crate::handler`]).
pub async fn handle<Q: DeadLetterQueue>(
    writer: &LakeWriter<Q>,
    event: LambdaEvent<KinesisInput>,
) -> Result<KinesisEventResponse, lambda_runtime::Error> {
    use tracing::Instrument as _;
    let span = tracing::info_span!("lake_batch", request_id = %event.context.request_id);
    let batch = KinesisBatch::from(&event.payload);
    Ok(writer.process(&batch, chrono::Utc::now()).instrument(span).await.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_table() {
        let cfg = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
            LambdaConfig::from_lookup(|n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
        };
        assert_eq!(cfg(&[]), Err(MissingVar(ENV_LAKE_URL)));
        assert_eq!(cfg(&[(ENV_LAKE_URL, "s3://b/p")]), Err(MissingVar(ENV_DLQ_URL)));
        assert_eq!(
            cfg(&[(ENV_LAKE_URL, " s3://b/p "), (ENV_DLQ_URL, "http://q"), (ENV_SCHEMAS_DIR, "")]),
            Ok(LambdaConfig { lake_url: "s3://b/p".into(), dlq_url: "http://q".into(), schemas_dir: None })
        );
    }
}
