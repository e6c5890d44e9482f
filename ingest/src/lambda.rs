//! Wiring for the ingest Lambda: [`IngestLambdaConfig`] (from the environment) + the shared AWS
//! [`SdkConfig`] -> an [`AppStateBuilder`], built once per cold start.
//!
//! The Lambda binary (`sluice-api`'s `ingest-lambda`) adds the aggregates reader
//! (`IngestLambdaConfig::aggregates_table`) to this builder: the reader is an adapter over the
//! aggregate store, which this crate does not depend on.

use std::sync::Arc;

use sluice_aws::SdkConfig;
use sluice_schemas::Registry;

use crate::auth::{Authenticator, JwtVerifier};
use crate::config::{AuthSetting, IngestLambdaConfig};
use crate::eventlog::KinesisEventLog;
use crate::{AppState, AppStateBuilder, Health};

/// Why the Lambda could not start (fatal: fix the configuration).
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The schema registry could not be loaded.
    #[error("schema registry: {0}")]
    Registry(#[from] sluice_schemas::RegistryError),
    /// The JWT configuration is unusable.
    #[error("auth: {0}")]
    Auth(#[from] crate::auth::verifier::JwtConfigError),
}

/// The ingest Lambda's state without its aggregates reader: the Kinesis event log
/// (`config.stream`), auth per `config.auth`, and the limits, rate limit and write scope of
/// `config`.
pub fn builder(config: &IngestLambdaConfig, sdk: &SdkConfig) -> Result<AppStateBuilder, InitError> {
    let registry = Registry::load(config.schemas_dir.as_deref())?.with_event_time(config.event_time);
    let auth = match &config.auth {
        AuthSetting::Jwt(jwt) => Authenticator::jwt(JwtVerifier::from_config(jwt.clone())?),
        AuthSetting::TrustGateway => Authenticator::trust_gateway(),
        AuthSetting::Disabled => Authenticator::disabled(),
    };
    let log = KinesisEventLog::new(aws_sdk_kinesis::Client::new(sdk), config.stream.clone());
    Ok(AppState::builder(Arc::new(registry), Arc::new(log), auth)
        .health(Health::new())
        .limits(config.limits)
        .rate_limit(config.rate_limit)
        .write_scope(config.write_scope.clone()))
}
