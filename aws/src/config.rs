//! Building the [`SdkConfig`]: the one place sluice calls `aws_config`.

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use url::Url;

use crate::AwsSettings;

/// The region used when neither the settings nor aws-config's default chain name one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Builds the shared AWS SDK configuration. Call it once at the edge and pass the result to every
/// adapter (`aws_sdk_<service>::Client::new(&config)`); it does no network I/O except what the
/// default region chain needs when no region is set anywhere (instance metadata).
///
/// Resolution, first match wins:
/// - **region**: `settings.region`; aws-config's default chain (`AWS_REGION`, shared config
///   profile, instance metadata); [`DEFAULT_REGION`].
/// - **endpoint**: `settings.endpoint_url`, for every service; otherwise aws-config's own
///   resolution (`AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, profile `endpoint_url`,
///   then the service's AWS endpoint). Exception that keeps aws-config's precedence: when
///   `settings.endpoint_url` is the process's own `AWS_ENDPOINT_URL` (as built by
///   [`AwsSettings::from_env`]), it is left to aws-config, so a per-service
///   `AWS_ENDPOINT_URL_<SERVICE>` still wins for its service.
/// - **credentials, retries, timeouts**: aws-config's default chains.
///
/// Callers building an S3 client must set `force_path_style(true)` when
/// [`AwsSettings::endpoint_overridden`] (local servers do not serve virtual-hosted buckets).
pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    config_loader(settings).load().await
}

/// The [`ConfigLoader`] behind [`sdk_config`], for callers that add to it (the test kit's static
/// credentials for moto).
pub fn config_loader(settings: &AwsSettings) -> ConfigLoader {
    let explicit_region = settings.region.clone().map(Region::new);
    let region = RegionProviderChain::first_try(explicit_region)
        .or_default_provider()
        .or_else(Region::from_static(DEFAULT_REGION));
    let loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
    // An unparsable AWS_ENDPOINT_URL was rejected at the edge when it mattered; here it only means
    // "the settings' endpoint did not come from the environment".
    let env_endpoint = AwsSettings::from_env().ok().and_then(|env| env.endpoint_url);
    match programmatic_endpoint(settings.endpoint_url.as_ref(), env_endpoint.as_ref()) {
        Some(endpoint) => loader.endpoint_url(endpoint),
        None => loader,
    }
}

/// The endpoint to set programmatically (it then applies to every service), or `None` when there
/// is none or when aws-config resolves the same URL from `AWS_ENDPOINT_URL` by itself.
fn programmatic_endpoint(settings: Option<&Url>, from_env: Option<&Url>) -> Option<String> {
    let endpoint = settings?;
    if Some(endpoint) == from_env {
        return None;
    }
    Some(endpoint_string(endpoint))
}

/// `http://host:port/` becomes `http://host:port`: the SDK appends request paths to the endpoint,
/// and a bare trailing slash would double the separator.
fn endpoint_string(url: &Url) -> String {
    let text = url.as_str();
    if url.path() == "/" && url.query().is_none() && url.fragment().is_none() {
        text.trim_end_matches('/').to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn programmatic_endpoint_table() {
        let moto = url("http://127.0.0.1:5000");
        let other = url("http://127.0.0.1:6000");
        let cases: &[(Option<&Url>, Option<&Url>, Option<&str>)] = &[
            (None, None, None),
            (None, Some(&moto), None),
            (Some(&moto), None, Some("http://127.0.0.1:5000")),
            (Some(&moto), Some(&moto), None),
            (Some(&moto), Some(&other), Some("http://127.0.0.1:5000")),
        ];
        for (settings, env, expected) in cases {
            assert_eq!(
                programmatic_endpoint(*settings, *env).as_deref(),
                *expected,
                "settings {settings:?}, env {env:?}"
            );
        }
    }

    #[test]
    fn endpoint_string_drops_only_a_bare_trailing_slash() {
        let cases = [
            ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
            ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
            ("https://example.test/prefix/", "https://example.test/prefix/"),
            ("https://example.test/prefix", "https://example.test/prefix"),
            ("http://localhost:4566/?a=b", "http://localhost:4566/?a=b"),
        ];
        for (input, expected) in cases {
            assert_eq!(endpoint_string(&url(input)), expected, "{input}");
        }
    }

    #[tokio::test]
    async fn explicit_settings_win() {
        let settings =
            AwsSettings { region: Some("eu-central-1".to_owned()), endpoint_url: Some(url("http://127.0.0.1:1")) };
        let config = sdk_config(&settings).await;
        assert_eq!(config.region().map(Region::as_ref), Some("eu-central-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:1"));
    }
}
