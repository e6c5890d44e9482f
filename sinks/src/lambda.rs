//! The lake writer as a Lambda function: its configuration from the environment
//! ([`LakeLambdaConfig::from_lookup`], pure; the variables in [`ENV_VARS`]). The entry is
//! `LakeWriter`'s `BatchHandler::handle`; `src/bin/lake-lambda.rs` only wires.

use sluice_schemas::{EventTimeRange, EventTimeRangeError};

/// Lake URL (`s3://bucket/prefix`, `file:///dir`).
pub const ENV_LAKE_URL: &str = "SLUICE_LAKE_URL";
/// SQS queue URL of the lake writer's dead letters.
pub const ENV_DLQ_URL: &str = "SLUICE_DLQ_URL";
/// Optional directory of schema files (`<event_type>/v<N>.json`); the built-in set otherwise.
pub const ENV_SCHEMAS_DIR: &str = "SLUICE_SCHEMAS_DIR";

/// The environment variables [`LakeLambdaConfig::from_lookup`] reads.
pub const ENV_VARS: &[(&str, &str)] = &[
    (ENV_LAKE_URL, "lake URL: s3://bucket/prefix, file:///dir, a path, memory:// (required)"),
    (ENV_DLQ_URL, "SQS queue URL of the lake writer's dead letters (required)"),
    (ENV_SCHEMAS_DIR, "schema directory overriding the built-in registry"),
    ("SLUICE_LAKE_START", "the lake's first day, YYYY-MM-DD: earlier occurred_at is rejected (default 2000-01-01)"),
    ("SLUICE_MAX_FUTURE_SECS", "how far occurred_at may be ahead of received_at (default 300)"),
];

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

    #[test]
    fn every_variable_read_is_listed() {
        let value = |name: &str| match name {
            "SLUICE_LAKE_START" => "2000-01-01".to_owned(),
            "SLUICE_MAX_FUTURE_SECS" => "300".to_owned(),
            _ => "x".to_owned(),
        };
        sluice_testkit::assert_reads_exactly(ENV_VARS, value, |lookup| LakeLambdaConfig::from_lookup(lookup));
    }
}
