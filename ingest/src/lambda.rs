//! Wiring for the ingest Lambda (`src/bin/ingest-lambda.rs`): [`IngestLambdaConfig`] (from the
//! environment) + the shared AWS [`SdkConfig`] -> [`AppState`], built once per cold start.

use std::sync::Arc;

use sluice_aws::SdkConfig;
use sluice_schemas::Registry;

use crate::auth::{Authenticator, JwtVerifier};
use crate::config::{AuthSetting, IngestLambdaConfig};
use crate::eventlog::KinesisEventLog;
use crate::{AppState, Health};

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

/// The state the ingest Lambda serves: Kinesis event log, auth per `config.auth`.
pub fn state(config: &IngestLambdaConfig, sdk: &SdkConfig) -> Result<AppState, InitError> {
    let registry = Registry::load(config.schemas_dir.as_deref())?;
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
        .write_scope(config.write_scope.clone())
        .build())
}
