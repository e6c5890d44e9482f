//! The aggregator as a Lambda function: its configuration from the environment
//! ([`AggregatorLambdaConfig::from_lookup`], pure; the variables in [`ENV_VARS`]). The entry
//! is `AggregatorHandler`'s `BatchHandler::handle`; `src/bin/aggregator-lambda.rs` only wires.

use std::path::PathBuf;

use chrono::TimeDelta;
use sluice_schemas::{EventTimeRange, EventTimeRangeError};

use crate::window::{BadWindow, WindowConfig, WindowSize};

/// The environment variables [`AggregatorLambdaConfig::from_lookup`] reads.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("SLUICE_AGGREGATES_TABLE", "DynamoDB table of the aggregates (required)"),
    ("SLUICE_DLQ_URL", "SQS queue URL of the aggregator's dead letters (required)"),
    ("SLUICE_WINDOWS", "tumbling windows, comma-separated (default 1m,1h)"),
    ("SLUICE_ALLOWED_LATENESS", "how long after a window ends events count as on time (default 5m)"),
    ("SLUICE_SCHEMAS_DIR", "schema directory overriding the built-in registry"),
    ("SLUICE_LAKE_START", "the lake's first day, YYYY-MM-DD: earlier occurred_at is rejected (default 2000-01-01)"),
    ("SLUICE_MAX_FUTURE_SECS", "how far occurred_at may be ahead of received_at (default 300)"),
];

/// Everything the aggregator Lambda needs, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatorLambdaConfig {
    /// `SLUICE_AGGREGATES_TABLE`.
    pub table: String,
    /// `SLUICE_DLQ_URL`.
    pub dlq_url: String,
    /// `SLUICE_WINDOWS` and `SLUICE_ALLOWED_LATENESS`.
    pub windows: WindowConfig,
    /// `SLUICE_SCHEMAS_DIR`.
    pub schemas_dir: Option<PathBuf>,
    /// `SLUICE_LAKE_START` and `SLUICE_MAX_FUTURE_SECS`.
    pub event_time: EventTimeRange,
}

/// Why the configuration is unusable (fix the function's environment).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregatorConfigError {
    #[error("environment variable {0} must be set")]
    Missing(&'static str),
    #[error("{name}: {source}")]
    Window {
        name: &'static str,
        #[source]
        source: BadWindow,
    },
    #[error(transparent)]
    EventTime(#[from] EventTimeRangeError),
}

impl AggregatorLambdaConfig {
    /// From the process environment.
    pub fn from_env() -> Result<Self, AggregatorConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From any variable lookup (pure; see [`ENV_VARS`]). Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AggregatorConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or(AggregatorConfigError::Missing(name));
        let window = |name: &'static str, value: &str| {
            value.trim().parse::<WindowSize>().map_err(|source| AggregatorConfigError::Window { name, source })
        };
        let windows = match get("SLUICE_WINDOWS") {
            Some(list) => list.split(',').map(|w| window("SLUICE_WINDOWS", w)).collect::<Result<Vec<_>, _>>()?,
            None => WindowConfig::default().windows,
        };
        let allowed_lateness = match get("SLUICE_ALLOWED_LATENESS") {
            Some(w) => TimeDelta::seconds(window("SLUICE_ALLOWED_LATENESS", &w)?.secs().into()),
            None => WindowConfig::default().allowed_lateness,
        };
        Ok(Self {
            table: required("SLUICE_AGGREGATES_TABLE")?,
            dlq_url: required("SLUICE_DLQ_URL")?,
            windows: WindowConfig::new(windows, allowed_lateness),
            schemas_dir: get("SLUICE_SCHEMAS_DIR").map(PathBuf::from),
            event_time: EventTimeRange::from_lookup(get)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> Result<AggregatorLambdaConfig, AggregatorConfigError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        AggregatorLambdaConfig::from_lookup(|n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
    }

    const REQUIRED: [(&str, &str); 2] = [("SLUICE_AGGREGATES_TABLE", "aggs"), ("SLUICE_DLQ_URL", "http://q")];

    #[test]
    fn config_table() {
        assert_eq!(cfg(&[]), Err(AggregatorConfigError::Missing("SLUICE_AGGREGATES_TABLE")));
        assert_eq!(cfg(&REQUIRED[..1]), Err(AggregatorConfigError::Missing("SLUICE_DLQ_URL")));
        let c = cfg(&REQUIRED).unwrap();
        assert_eq!((c.table.as_str(), c.dlq_url.as_str()), ("aggs", "http://q"));
        assert_eq!(
            (c.windows, c.schemas_dir, c.event_time),
            (WindowConfig::default(), None, EventTimeRange::default())
        );

        let mut vars = REQUIRED.to_vec();
        vars.extend([
            ("SLUICE_WINDOWS", " 1h, 30s ,1m"),
            ("SLUICE_ALLOWED_LATENESS", "10m"),
            ("SLUICE_SCHEMAS_DIR", "/opt/schemas"),
            ("SLUICE_MAX_FUTURE_SECS", "60"),
        ]);
        let c = cfg(&vars).unwrap();
        let labels: Vec<String> = c.windows.windows.iter().map(ToString::to_string).collect();
        assert_eq!(labels, ["30s", "1m", "1h"]);
        assert_eq!(c.windows.allowed_lateness, TimeDelta::minutes(10));
        assert_eq!(c.schemas_dir, Some(PathBuf::from("/opt/schemas")));
        assert_eq!(c.event_time.max_future, TimeDelta::seconds(60));

        for (name, value) in [("SLUICE_WINDOWS", "1m,fortnight"), ("SLUICE_ALLOWED_LATENESS", "-5m")] {
            let mut vars = REQUIRED.to_vec();
            vars.push((name, value));
            assert!(matches!(cfg(&vars), Err(AggregatorConfigError::Window { name: n, .. }) if n == name), "{name}");
        }
        let mut vars = REQUIRED.to_vec();
        vars.push(("SLUICE_LAKE_START", "yesterday"));
        assert!(matches!(cfg(&vars), Err(AggregatorConfigError::EventTime(_))));
    }

    #[test]
    fn every_variable_read_is_listed() {
        let value = |name: &str| match name {
            "SLUICE_WINDOWS" => "1m".to_owned(),
            "SLUICE_ALLOWED_LATENESS" => "5m".to_owned(),
            "SLUICE_LAKE_START" => "2000-01-01".to_owned(),
            "SLUICE_MAX_FUTURE_SECS" => "300".to_owned(),
            _ => "x".to_owned(),
        };
        sluice_testkit::assert_reads_exactly(ENV_VARS, value, |lookup| AggregatorLambdaConfig::from_lookup(lookup));
    }
}
