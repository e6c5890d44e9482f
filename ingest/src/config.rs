//! Typed configuration of the ingest API, and its parsing from environment variables (the
//! Lambda's configuration; `sluice up` builds the same values from its CLI flags).

use std::path::PathBuf;
use std::time::Duration;

use sluice_schemas::{EventTimeRange, EventTimeRangeError};
use url::Url;

use crate::auth::JwtConfig;
use crate::ratelimit::RateLimit;

/// Size and time limits of `POST /v1/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body (default 1 MiB); larger is 413.
    pub max_body_bytes: usize,
    /// Most events in one array (default 500, Kinesis' PutRecords limit); more is 413.
    pub max_events: usize,
    /// Largest single event after encoding, stream record data + partition key (default 1 MiB,
    /// Kinesis' record limit); larger is 413.
    pub max_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_body_bytes: 1024 * 1024, max_events: 500, max_event_bytes: 1024 * 1024 }
    }
}

/// How the Lambda authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSetting {
    /// Verify tokens (default).
    Jwt(JwtConfig),
    /// Trust API Gateway's JWT authorizer context.
    TrustGateway,
    /// No authentication.
    Disabled,
}

/// Everything the ingest Lambda needs, from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestLambdaConfig {
    /// Kinesis stream name or ARN (`SLUICE_STREAM`).
    pub stream: String,
    /// Authentication.
    pub auth: AuthSetting,
    /// Limits.
    pub limits: Limits,
    /// The accepted range of `occurred_at` (`SLUICE_LAKE_START`, `SLUICE_MAX_FUTURE_SECS`).
    pub event_time: EventTimeRange,
    /// Per-producer rate limit (`None`: off).
    pub rate_limit: Option<RateLimit>,
    /// Scope required to post events.
    pub write_scope: String,
    /// Schema directory overriding the built-in registry.
    pub schemas_dir: Option<PathBuf>,
    /// DynamoDB aggregate table `GET /v1/aggregates` reads (`SLUICE_AGGREGATES_TABLE`; `None`:
    /// the route answers 404).
    pub aggregates_table: Option<String>,
}

/// A configuration value that is missing or malformed: fix the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A variable has a value that does not parse.
    #[error("{name}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is expected.
        reason: &'static str,
    },
    /// `SLUICE_LAKE_START` or `SLUICE_MAX_FUTURE_SECS` does not parse.
    #[error(transparent)]
    EventTime(EventTimeRangeError),
}

/// The environment variables [`IngestLambdaConfig::from_lookup`] reads (listed in ARCHITECTURE.md, Entry points).
pub const ENV_VARS: &[(&str, &str)] = &[
    ("SLUICE_STREAM", "Kinesis stream name or ARN (required)"),
    ("SLUICE_AUTH", "jwt (default) | trust-gateway | disabled"),
    ("SLUICE_JWT_ISSUER", "expected iss, e.g. https://cognito-idp.<region>.amazonaws.com/<pool id> (jwt)"),
    ("SLUICE_JWT_AUDIENCES", "comma-separated accepted aud values / Cognito app client ids (jwt)"),
    ("SLUICE_JWKS_URL", "JWKS URL (default <issuer>/.well-known/jwks.json)"),
    ("SLUICE_JWT_LEEWAY_SECS", "clock skew allowed on exp/nbf/iat (default 30)"),
    ("SLUICE_WRITE_SCOPE", "scope required by POST /v1/events (default sluice/events.write)"),
    ("SLUICE_MAX_BODY_BYTES", "largest request body (default 1048576)"),
    ("SLUICE_MAX_FUTURE_SECS", "how far occurred_at may be ahead of the receive time (default 300)"),
    ("SLUICE_LAKE_START", "the lake's first day, YYYY-MM-DD: earlier occurred_at is rejected (default 2000-01-01)"),
    ("SLUICE_RATE_LIMIT", "events/s per producer, 0 = off (default 10000)"),
    ("SLUICE_RATE_BURST", "token bucket size in events (default 2 x rate)"),
    ("SLUICE_SCHEMAS_DIR", "schema directory overriding the built-in registry"),
    ("SLUICE_AGGREGATES_TABLE", "DynamoDB aggregate table served by GET /v1/aggregates (unset: the route answers 404)"),
];

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    reason: &'static str,
) -> Result<Option<T>, ConfigError> {
    match get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) => value.parse().map(Some).map_err(|_| ConfigError::Invalid { name, value, reason }),
    }
}

impl IngestLambdaConfig {
    /// From the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any variable lookup (pure; see [`ENV_VARS`]).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let stream =
            get("SLUICE_STREAM").filter(|s| !s.trim().is_empty()).ok_or(ConfigError::Missing("SLUICE_STREAM"))?;
        let auth = match get("SLUICE_AUTH").as_deref().map(str::trim) {
            None | Some("") | Some("jwt") => {
                let issuer = get("SLUICE_JWT_ISSUER")
                    .filter(|s| !s.is_empty())
                    .ok_or(ConfigError::Missing("SLUICE_JWT_ISSUER"))?;
                let audiences: Vec<String> = get("SLUICE_JWT_AUDIENCES")
                    .unwrap_or_default()
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                if audiences.is_empty() {
                    return Err(ConfigError::Missing("SLUICE_JWT_AUDIENCES"));
                }
                let mut jwt = JwtConfig::new(issuer, audiences);
                jwt.jwks_url = parse::<Url>(&get, "SLUICE_JWKS_URL", "an http(s) URL")?;
                if let Some(secs) = parse::<u64>(&get, "SLUICE_JWT_LEEWAY_SECS", "whole seconds")? {
                    jwt.leeway = Duration::from_secs(secs);
                }
                AuthSetting::Jwt(jwt)
            }
            Some("trust-gateway") => AuthSetting::TrustGateway,
            Some("disabled") => AuthSetting::Disabled,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "SLUICE_AUTH",
                    value: other.to_owned(),
                    reason: "one of jwt, trust-gateway, disabled",
                });
            }
        };
        let mut limits = Limits::default();
        if let Some(n) = parse::<usize>(&get, "SLUICE_MAX_BODY_BYTES", "a byte count")? {
            limits.max_body_bytes = n;
        }
        let rate = parse::<f64>(&get, "SLUICE_RATE_LIMIT", "events per second")?.unwrap_or(RateLimit::default().rate);
        let rate_limit = if rate > 0.0 {
            let burst = parse::<f64>(&get, "SLUICE_RATE_BURST", "events")?.unwrap_or(rate * 2.0);
            Some(RateLimit { rate, burst: burst.max(1.0) })
        } else {
            None
        };
        let event_time = EventTimeRange::from_lookup(&get).map_err(ConfigError::EventTime)?;
        Ok(Self {
            stream,
            auth,
            limits,
            event_time,
            rate_limit,
            write_scope: get("SLUICE_WRITE_SCOPE")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| crate::SCOPE_EVENTS_WRITE.to_owned()),
            schemas_dir: get("SLUICE_SCHEMAS_DIR").filter(|s| !s.is_empty()).map(PathBuf::from),
            aggregates_table: get("SLUICE_AGGREGATES_TABLE").map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<IngestLambdaConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        IngestLambdaConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn every_variable_read_is_listed() {
        let value = |name: &str| match name {
            "SLUICE_AUTH" => "jwt".to_owned(),
            "SLUICE_JWT_ISSUER" => "https://issuer.example".to_owned(),
            "SLUICE_JWKS_URL" => "https://issuer.example/jwks.json".to_owned(),
            "SLUICE_LAKE_START" => "2000-01-01".to_owned(),
            "SLUICE_JWT_LEEWAY_SECS" | "SLUICE_MAX_BODY_BYTES" | "SLUICE_MAX_FUTURE_SECS" => "30".to_owned(),
            "SLUICE_RATE_LIMIT" | "SLUICE_RATE_BURST" => "100".to_owned(),
            _ => "x".to_owned(),
        };
        sluice_testkit::assert_reads_exactly(ENV_VARS, value, |lookup| {
            IngestLambdaConfig::from_lookup(lookup).expect("every variable set to a valid value")
        });
    }

    #[test]
    fn defaults_and_errors() {
        let c = cfg(&[("SLUICE_STREAM", "s"), ("SLUICE_JWT_ISSUER", "https://i"), ("SLUICE_JWT_AUDIENCES", "a, b")])
            .unwrap();
        let AuthSetting::Jwt(jwt) = &c.auth else { panic!("jwt expected") };
        assert_eq!(jwt.audiences, vec!["a", "b"]);
        assert_eq!(jwt.resolved_jwks_url().unwrap().as_str(), "https://i/.well-known/jwks.json");
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.rate_limit, Some(RateLimit { rate: 10_000.0, burst: 20_000.0 }));
        assert_eq!(c.write_scope, "sluice/events.write");
        assert_eq!(c.aggregates_table, None);

        assert_eq!(cfg(&[]), Err(ConfigError::Missing("SLUICE_STREAM")));
        assert_eq!(cfg(&[("SLUICE_STREAM", "s")]), Err(ConfigError::Missing("SLUICE_JWT_ISSUER")));
        assert_eq!(
            cfg(&[("SLUICE_STREAM", "s"), ("SLUICE_JWT_ISSUER", "i")]),
            Err(ConfigError::Missing("SLUICE_JWT_AUDIENCES"))
        );
        assert!(matches!(cfg(&[("SLUICE_STREAM", "s"), ("SLUICE_AUTH", "maybe")]), Err(ConfigError::Invalid { .. })));
        let c = cfg(&[
            ("SLUICE_STREAM", "s"),
            ("SLUICE_AUTH", "trust-gateway"),
            ("SLUICE_RATE_LIMIT", "0"),
            ("SLUICE_MAX_FUTURE_SECS", "60"),
        ])
        .unwrap();
        assert_eq!(c.auth, AuthSetting::TrustGateway);
        assert_eq!(c.rate_limit, None);
        assert_eq!(c.event_time.max_future, chrono::TimeDelta::seconds(60));
        assert_eq!(c.event_time.lake_start, EventTimeRange::default().lake_start);
        assert!(matches!(
            cfg(&[("SLUICE_STREAM", "s"), ("SLUICE_AUTH", "disabled"), ("SLUICE_LAKE_START", "1999")]),
            Err(ConfigError::EventTime(_))
        ));
        let c =
            cfg(&[("SLUICE_STREAM", "s"), ("SLUICE_AUTH", "disabled"), ("SLUICE_AGGREGATES_TABLE", " aggs ")]).unwrap();
        assert_eq!(c.aggregates_table.as_deref(), Some("aggs"));
        assert!(matches!(
            cfg(&[("SLUICE_STREAM", "s"), ("SLUICE_AUTH", "disabled"), ("SLUICE_MAX_BODY_BYTES", "x")]),
            Err(ConfigError::Invalid { .. })
        ));
    }
}
