#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//! sluice-aws: the one place that builds AWS SDK configuration (the moto test support that
//! builds on it is `sluice_testkit::moto`).
//!
//! Configuration is resolved once at the edge: a binary calls [`AwsSettings::from_env`] (or builds
//! [`AwsSettings`] from its own typed configuration), then [`sdk_config`] once, and passes the
//! resulting [`SdkConfig`] to every adapter, which builds its service client with
//! `aws_sdk_<service>::Client::new(&sdk_config)`. No other crate calls `aws_config` directly.
//!
//! ```no_run
//! # async fn edge() -> Result<(), sluice_aws::SettingsError> {
//! let settings = sluice_aws::AwsSettings::from_env()?;
//! let sdk_config = sluice_aws::sdk_config(&settings).await;
//! // let kinesis = aws_sdk_kinesis::Client::new(&sdk_config);
//! # let _ = sdk_config;
//! # Ok(())
//! # }
//! ```
//!
//! **S3 and endpoint overrides.** Local AWS-compatible servers (moto in tests) only serve S3
//! with path-style addressing. The lake (`sluice_lake::Lake`, through `object_store`) reads the
//! same [`AwsSettings`] and turns virtual-hosted requests off when the endpoint is overridden;
//! its moto-backed tests (a bucket named in the host, `<bucket>.127.0.0.1`, would not resolve)
//! prove it.

mod config;
mod settings;

pub use aws_types::SdkConfig;
pub use config::{DEFAULT_REGION, config_loader, sdk_config};
pub use settings::{AwsSettings, SettingsError};
