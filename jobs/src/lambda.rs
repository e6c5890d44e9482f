//! The jobs Lambda (the task functions of the state machines): its configuration from the
//! environment ([`JobsLambdaConfig::from_lookup`], pure; the variables in [`ENV_VARS`]). The
//! entry is [`crate::orchestration::TaskTable::dispatch`]; `src/bin/jobs-lambda.rs` only wires.

use chrono::TimeDelta;
use sluice_aggregators::{WindowConfig, WindowSize};

use crate::compaction::{CompactionConfig, DEFAULT_MEMORY_BUDGET, DEFAULT_TARGET_SIZE};

/// Lake URL (`s3://bucket/prefix`, `file:///dir`).
pub const ENV_LAKE_URL: &str = "SLUICE_LAKE_URL";
/// Optional directory of schema files; the built-in set otherwise.
pub const ENV_SCHEMAS_DIR: &str = "SLUICE_SCHEMAS_DIR";
/// The aggregator's allowed lateness (`5m`): compaction waits as long after an hour ends, and
/// backfill recomputes the windows as the aggregator counts them.
pub const ENV_ALLOWED_LATENESS: &str = "SLUICE_ALLOWED_LATENESS";
/// The aggregator's windows (`1m,1h`), which backfill recomputes.
pub const ENV_WINDOWS: &str = "SLUICE_WINDOWS";
/// The DynamoDB table of the aggregates backfill replaces.
pub const ENV_AGGREGATES_TABLE: &str = "SLUICE_AGGREGATES_TABLE";
/// Bytes per compacted file to aim at.
pub const ENV_TARGET_SIZE: &str = "SLUICE_COMPACTION_TARGET_SIZE";
/// The most memory one partition's compaction may take, in bytes (below the function's memory).
pub const ENV_MEMORY_BUDGET: &str = "SLUICE_COMPACTION_MEMORY_BUDGET";

/// The environment variables [`JobsLambdaConfig::from_lookup`] reads.
pub const ENV_VARS: &[(&str, &str)] = &[
    (ENV_LAKE_URL, "lake URL: s3://bucket/prefix, file:///dir, a path, memory:// (required)"),
    (ENV_SCHEMAS_DIR, "schema directory overriding the built-in registry"),
    (ENV_AGGREGATES_TABLE, "DynamoDB table of the aggregates that backfill replaces (required)"),
    (ENV_WINDOWS, "the aggregator's tumbling windows, comma-separated (default 1m,1h)"),
    (
        ENV_ALLOWED_LATENESS,
        "the aggregator's allowed lateness; compaction waits as long after an hour ends (default 5m)",
    ),
    (ENV_TARGET_SIZE, "bytes per compacted file to aim at (default 268435456)"),
    (ENV_MEMORY_BUDGET, "the most memory one partition's compaction takes, in bytes (default 1073741824)"),
];

/// The Lambda's typed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsLambdaConfig {
    pub lake_url: String,
    pub schemas_dir: Option<std::path::PathBuf>,
    pub aggregates_table: String,
    /// The aggregator's windows and allowed lateness (backfill's).
    pub windows: WindowConfig,
    pub compaction: CompactionConfig,
}

/// Why the configuration is unusable: fix the function's environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobsConfigError {
    #[error("environment variable {0} must be set")]
    Missing(&'static str),
    #[error("environment variable {name}={value:?}: {expected}")]
    Invalid { name: &'static str, value: String, expected: &'static str },
}

impl JobsLambdaConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, JobsConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`JobsLambdaConfig::from_env`] over any lookup (pure).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, JobsConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let bytes = |name: &'static str, default: u64| match get(name) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().ok().filter(|n| *n > 0).ok_or(JobsConfigError::Invalid {
                name,
                value: v,
                expected: "a positive number of bytes",
            }),
        };
        let window = |name: &'static str, value: &str| {
            value.trim().parse::<WindowSize>().map_err(|_| JobsConfigError::Invalid {
                name,
                value: value.to_owned(),
                expected: "windows such as 30s, 5m, 1h",
            })
        };
        let windows = match get(ENV_WINDOWS) {
            Some(list) => list.split(',').map(|w| window(ENV_WINDOWS, w)).collect::<Result<Vec<_>, _>>()?,
            None => WindowConfig::default().windows,
        };
        let allowed_lateness = match get(ENV_ALLOWED_LATENESS) {
            Some(w) => TimeDelta::seconds(window(ENV_ALLOWED_LATENESS, &w)?.secs().into()),
            None => WindowConfig::default().allowed_lateness,
        };
        Ok(Self {
            lake_url: get(ENV_LAKE_URL).ok_or(JobsConfigError::Missing(ENV_LAKE_URL))?,
            schemas_dir: get(ENV_SCHEMAS_DIR).map(Into::into),
            aggregates_table: get(ENV_AGGREGATES_TABLE).ok_or(JobsConfigError::Missing(ENV_AGGREGATES_TABLE))?,
            windows: WindowConfig::new(windows, allowed_lateness),
            compaction: CompactionConfig {
                allowed_lateness,
                target_size: bytes(ENV_TARGET_SIZE, DEFAULT_TARGET_SIZE)?,
                memory_budget: bytes(ENV_MEMORY_BUDGET, DEFAULT_MEMORY_BUDGET)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> Result<JobsLambdaConfig, JobsConfigError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        JobsLambdaConfig::from_lookup(|n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
    }

    #[test]
    fn config_table() {
        assert_eq!(cfg(&[]), Err(JobsConfigError::Missing(ENV_LAKE_URL)));
        assert_eq!(cfg(&[(ENV_LAKE_URL, "s3://b")]), Err(JobsConfigError::Missing(ENV_AGGREGATES_TABLE)));
        assert_eq!(
            cfg(&[(ENV_LAKE_URL, " s3://b "), (ENV_SCHEMAS_DIR, ""), (ENV_AGGREGATES_TABLE, "t")]),
            Ok(JobsLambdaConfig {
                lake_url: "s3://b".into(),
                schemas_dir: None,
                aggregates_table: "t".into(),
                windows: WindowConfig::default(),
                compaction: CompactionConfig::default()
            })
        );
        let c = cfg(&[
            (ENV_LAKE_URL, "s3://b"),
            (ENV_AGGREGATES_TABLE, "t"),
            (ENV_WINDOWS, "1m, 1d"),
            (ENV_ALLOWED_LATENESS, "10m"),
            (ENV_TARGET_SIZE, "1000"),
            (ENV_MEMORY_BUDGET, "2000"),
        ])
        .unwrap();
        assert_eq!(
            c.compaction,
            CompactionConfig { allowed_lateness: TimeDelta::minutes(10), target_size: 1000, memory_budget: 2000 }
        );
        assert_eq!(c.windows.windows.iter().map(|w| w.secs()).collect::<Vec<_>>(), [60, 86_400]);
        assert_eq!(c.windows.allowed_lateness, TimeDelta::minutes(10));
        for (name, value) in [
            (ENV_ALLOWED_LATENESS, "soon"),
            (ENV_ALLOWED_LATENESS, "-5m"),
            (ENV_WINDOWS, "1m,fortnight"),
            (ENV_TARGET_SIZE, "0"),
            (ENV_MEMORY_BUDGET, "1GiB"),
        ] {
            let got = cfg(&[(ENV_LAKE_URL, "s3://b"), (ENV_AGGREGATES_TABLE, "t"), (name, value)]);
            assert!(
                matches!(got, Err(JobsConfigError::Invalid { name: n, .. }) if n == name),
                "{name}={value}: {got:?}"
            );
        }
    }

    #[test]
    fn every_variable_read_is_listed() {
        let value = |name: &str| match name {
            ENV_ALLOWED_LATENESS => "5m".to_owned(),
            ENV_WINDOWS => "1m,1h".to_owned(),
            ENV_TARGET_SIZE | ENV_MEMORY_BUDGET => "1000".to_owned(),
            _ => "x".to_owned(),
        };
        sluice_testkit::assert_reads_exactly(ENV_VARS, value, |lookup| JobsLambdaConfig::from_lookup(lookup));
    }
}
