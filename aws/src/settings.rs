//! Typed AWS settings, resolved once at the edge from the environment or from typed config.

use url::Url;

/// Environment variable holding the region (read first).
pub(crate) const ENV_REGION: &str = "AWS_REGION";
/// Environment variable holding the region when [`ENV_REGION`] is unset or empty.
pub(crate) const ENV_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// Environment variable holding an endpoint URL for every service.
pub(crate) const ENV_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// When `true`, configured (environment/profile) endpoint URLs are ignored, as in aws-config.
pub(crate) const ENV_IGNORE_ENDPOINT_URLS: &str = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS";

/// What sluice decides about AWS before any client exists.
///
/// `None` means "let aws-config's default chain decide" (environment, shared config files,
/// instance metadata); see [`crate::sdk_config`] for the full resolution order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// Region, e.g. `us-east-1`. Never empty when `Some`.
    pub region: Option<String>,
    /// Endpoint URL for every service (e.g. a moto server). Always `http` or `https` when built by
    /// [`AwsSettings::from_env`].
    pub endpoint_url: Option<Url>,
}

/// Why the AWS settings could not be built. The caller fixes its configuration and restarts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// The endpoint URL does not parse as an absolute URL.
    #[error("{var}={value:?} is not a valid endpoint URL: {source}")]
    InvalidEndpointUrl {
        /// The variable the value came from.
        var: &'static str,
        /// The rejected value.
        value: String,
        /// The parser's reason.
        source: url::ParseError,
    },
    /// The endpoint URL parses but is not `http://` or `https://`.
    #[error("{var}={value:?} is not an http(s) endpoint URL")]
    UnsupportedEndpointScheme {
        /// The variable the value came from.
        var: &'static str,
        /// The rejected value.
        value: String,
    },
}

impl AwsSettings {
    /// Reads `AWS_REGION` (falling back to `AWS_DEFAULT_REGION`) and `AWS_ENDPOINT_URL` from the
    /// process environment. Empty values count as unset; `AWS_ENDPOINT_URL` is ignored when
    /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`, as aws-config does.
    ///
    /// Per-service variables such as `AWS_ENDPOINT_URL_S3` are not read here: aws-config applies
    /// them when a service client is built from the [`crate::SdkConfig`], and they win over
    /// nothing but the defaults (an endpoint set here takes precedence over them).
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`AwsSettings::from_env`] over any variable lookup (pure; used by tests and by callers that
    /// hold their environment as a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let non_empty = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let region =
            non_empty(ENV_REGION).or_else(|| non_empty(ENV_DEFAULT_REGION)).map(|region| region.trim().to_owned());
        let ignore_endpoints =
            non_empty(ENV_IGNORE_ENDPOINT_URLS).is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
        let endpoint_url = if ignore_endpoints {
            None
        } else {
            non_empty(ENV_ENDPOINT_URL).map(|value| parse_endpoint(ENV_ENDPOINT_URL, value.trim())).transpose()?
        };
        Ok(Self { region, endpoint_url })
    }

    /// True when every service is pointed at an explicit endpoint (a local AWS-compatible server
    /// in tests and in `sluice up` against moto). S3 clients must then use path-style addressing.
    pub fn endpoint_overridden(&self) -> bool {
        self.endpoint_url.is_some()
    }
}

/// Parses an endpoint URL and checks that it is `http(s)://`.
fn parse_endpoint(var: &'static str, value: &str) -> Result<Url, SettingsError> {
    let url = Url::parse(value).map_err(|source| SettingsError::InvalidEndpointUrl {
        var,
        value: value.to_owned(),
        source,
    })?;
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(url),
        _ => Err(SettingsError::UnsupportedEndpointScheme { var, value: value.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<AwsSettings, SettingsError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        AwsSettings::from_lookup(|name| map.get(name).cloned())
    }

    /// Environment variables of one table case.
    type Vars = &'static [(&'static str, &'static str)];

    fn url(s: &str) -> Option<Url> {
        Some(Url::parse(s).unwrap())
    }

    #[test]
    fn region_resolution_table() {
        let cases: &[(Vars, Option<&str>)] = &[
            (&[], None),
            (&[("AWS_REGION", "eu-west-1")], Some("eu-west-1")),
            (&[("AWS_DEFAULT_REGION", "eu-west-2")], Some("eu-west-2")),
            (&[("AWS_REGION", "eu-west-1"), ("AWS_DEFAULT_REGION", "eu-west-2")], Some("eu-west-1")),
            (&[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "eu-west-2")], Some("eu-west-2")),
            (&[("AWS_REGION", "  ")], None),
            (&[("AWS_REGION", " ap-south-1 ")], Some("ap-south-1")),
        ];
        for (vars, expected) in cases {
            let got = settings(vars).unwrap();
            assert_eq!(got.region.as_deref(), *expected, "vars: {vars:?}");
        }
    }

    #[test]
    fn endpoint_resolution_table() {
        let cases: &[(Vars, Option<Url>)] = &[
            (&[], None),
            (&[("AWS_ENDPOINT_URL", "")], None),
            (&[("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")], url("http://127.0.0.1:5000")),
            (&[("AWS_ENDPOINT_URL", " https://example.test/prefix ")], url("https://example.test/prefix")),
            (&[("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"), ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE")], None),
            (
                &[("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"), ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false")],
                url("http://127.0.0.1:5000"),
            ),
            // Per-service variables are aws-config's business, not a global override.
            (&[("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:5000")], None),
        ];
        for (vars, expected) in cases {
            let got = settings(vars).unwrap();
            assert_eq!(&got.endpoint_url, expected, "vars: {vars:?}");
            assert_eq!(got.endpoint_overridden(), expected.is_some(), "vars: {vars:?}");
        }
    }

    #[test]
    fn rejects_unusable_endpoints() {
        let invalid = settings(&[("AWS_ENDPOINT_URL", "127.0.0.1:5000:x")]).unwrap_err();
        assert!(matches!(invalid, SettingsError::InvalidEndpointUrl { var: "AWS_ENDPOINT_URL", .. }), "{invalid:?}");
        for value in ["ftp://127.0.0.1:21", "file:///tmp/x", "localhost:4566"] {
            let err = settings(&[("AWS_ENDPOINT_URL", value)]).unwrap_err();
            assert!(matches!(err, SettingsError::UnsupportedEndpointScheme { .. }), "{value}: {err:?}");
        }
        let relative = settings(&[("AWS_ENDPOINT_URL", "/just/a/path")]).unwrap_err();
        assert!(matches!(relative, SettingsError::InvalidEndpointUrl { .. }), "{relative:?}");
        assert!(invalid.to_string().contains("AWS_ENDPOINT_URL"), "the message names the variable: {invalid}");
    }
}
