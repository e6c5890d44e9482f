//! The lake writer as a Lambda function: configuration from the environment and the entry
//! point [`handle_raw`] (`src/bin/lake-lambda.rs` only wires these): the
//! runtime does not deserialize the body; the `RawPayloads` layer of sluice-stream hands the raw
//! bytes over and [`LakeWriter::process_payload`] parses them once with `KinesisBatch::parse`
//! (base64 decoded in the same pass, no allocation per record), not serde_json into
//! `aws_lambda_events`' `KinesisEvent`, and drops the decoded payload before encoding.

use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::LambdaEvent;
use sluice_dlq::DeadLetterQueue;
use sluice_schemas::{EventTimeRange, EventTimeRangeError};
use sluice_stream::lambda_payload::{RawPayload, RawPayloads};

use crate::LakeWriter;

/// Lake URL (`s3://bucket/prefix`, `file:///dir`).
pub const ENV_LAKE_URL: &str = "SLUICE_LAKE_URL";
/// SQS queue URL of the lake writer's dead letters.
pub const ENV_DLQ_URL: &str = "SLUICE_DLQ_URL";
/// Optional directory of schema files (`<event_type>/v<N>.json`); the built-in set otherwise.
pub const ENV_SCHEMAS_DIR: &str = "SLUICE_SCHEMAS_DIR";

/// The Lambda's typed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeLambdaConfig {
    pub lake_url: String,
    pub dlq_url: String,
    pub schemas_dir: Option<std::path::PathBuf>,
    /// `SLUICE_LAKE_START` and `SLUICE_MAX_FUTURE_SECS`.
    pub event_time: EventTimeRange,
}

/// Why the configuration is unusable: fix the function's environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LakeConfigError {
    /// A required variable is missing or empty.
    #[error("environment variable {0} must be set")]
    Missing(&'static str),
    #[error(transparent)]
    EventTime(#[from] EventTimeRangeError),
}

impl LakeLambdaConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, LakeConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`LakeLambdaConfig::from_env`] over any lookup (pure).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LakeConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        Ok(Self {
            lake_url: get(ENV_LAKE_URL).ok_or(LakeConfigError::Missing(ENV_LAKE_URL))?,
            dlq_url: get(ENV_DLQ_URL).ok_or(LakeConfigError::Missing(ENV_DLQ_URL))?,
            schemas_dir: get(ENV_SCHEMAS_DIR).map(Into::into),
            event_time: EventTimeRange::from_lookup(get)?,
        })
    }
}

/// The function handler on the raw invocation body (installed with the [`RawPayloads`] layer):
/// one Kinesis batch in, partial-batch response out. A function error only if the body is not a
/// Kinesis batch or was not handed over; every other failure is a batch item failure (see
/// [`crate::handler`]).
pub async fn handle_raw<Q: DeadLetterQueue>(
    writer: &LakeWriter<Q>,
    payloads: &RawPayloads,
    event: LambdaEvent<RawPayload>,
) -> Result<KinesisEventResponse, lambda_runtime::Error> {
    use tracing::Instrument as _;
    let body = payloads
        .take(&event.context.request_id)
        .ok_or("the invocation body was not handed over (RawPayloads layer missing?)")?;
    let span = tracing::info_span!("lake_batch", request_id = %event.context.request_id);
    Ok(writer.process_payload(&body, chrono::Utc::now())?.instrument(span).await.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_table() {
        let cfg = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
            LakeLambdaConfig::from_lookup(|n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
        };
        assert_eq!(cfg(&[]), Err(LakeConfigError::Missing(ENV_LAKE_URL)));
        assert_eq!(cfg(&[(ENV_LAKE_URL, "s3://b/p")]), Err(LakeConfigError::Missing(ENV_DLQ_URL)));
        assert_eq!(
            cfg(&[(ENV_LAKE_URL, " s3://b/p "), (ENV_DLQ_URL, "http://q"), (ENV_SCHEMAS_DIR, "")]),
            Ok(LakeLambdaConfig {
                lake_url: "s3://b/p".into(),
                dlq_url: "http://q".into(),
                schemas_dir: None,
                event_time: EventTimeRange::default()
            })
        );
        let c = cfg(&[(ENV_LAKE_URL, "s3://b"), (ENV_DLQ_URL, "q"), ("SLUICE_LAKE_START", "2021-01-01")]).unwrap();
        assert_eq!(c.event_time.lake_start.to_string(), "2021-01-01");
        let bad = cfg(&[(ENV_LAKE_URL, "s3://b"), (ENV_DLQ_URL, "q"), ("SLUICE_MAX_FUTURE_SECS", "soon")]);
        assert!(matches!(bad, Err(LakeConfigError::EventTime(_))));
    }
}
