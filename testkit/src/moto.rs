//! Test support for tests that talk to a local moto server over the real AWS wire protocol.
//!
//! The contract with the test command (`scripts/test`):
//! - it starts moto on 127.0.0.1 and exports `SLUICE_MOTO_ENDPOINT` and `SLUICE_REQUIRE_MOTO=1`,
//!   so moto-backed tests always run there, and fail loudly if the endpoint is missing;
//! - under plain `cargo test` (no `SLUICE_MOTO_ENDPOINT`), [`moto`] returns `None`, the test
//!   returns early and `skipped (no moto): <test>` is written to stderr.
//!
//! ```no_run
//! # async fn a_test() {
//! let Some(config) = sluice_testkit::moto::moto().await else { return };
//! let stream = sluice_testkit::moto::unique_name("orders");
//! // let kinesis = aws_sdk_kinesis::Client::new(&config);
//! # let _ = (config, stream);
//! # }
//! ```
//!
//! State in moto is shared by every test of a run: give each test its own resources with
//! [`unique_name`] and never assume an empty account.

use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_types::SdkConfig;
use url::Url;

use object_store::aws::AmazonS3ConfigKey;
use sluice_aws::AwsSettings;
use sluice_lake::{Lake, LakeError};

/// Environment variable with the moto server's base URL, e.g. `http://127.0.0.1:5123`.
pub const MOTO_ENDPOINT_ENV: &str = "SLUICE_MOTO_ENDPOINT";
/// Environment variable that, when `1` (or `true`), turns a missing moto endpoint into a failure.
pub const REQUIRE_MOTO_ENV: &str = "SLUICE_REQUIRE_MOTO";
/// Access key id moto-backed tests sign with (moto accepts any).
pub const TEST_ACCESS_KEY_ID: &str = "testing";
/// Secret access key moto-backed tests sign with.
pub const TEST_SECRET_ACCESS_KEY: &str = "testing";
/// Region of every moto-backed test.
pub const TEST_REGION: &str = "us-east-1";

/// What the environment says about moto.
#[derive(Debug, PartialEq, Eq)]
enum MotoEndpoint {
    /// Run against this endpoint.
    Use(Url),
    /// No moto and none required: skip the test.
    Skip,
    /// The test must fail with this message.
    Misconfigured(String),
}

/// Pure decision over the two variables' values.
fn resolve(endpoint: Option<&str>, require: Option<&str>) -> MotoEndpoint {
    let required = require.is_some_and(|value| {
        let value = value.trim();
        value == "1" || value.eq_ignore_ascii_case("true")
    });
    match endpoint.map(str::trim).filter(|value| !value.is_empty()) {
        Some(value) => match Url::parse(value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => MotoEndpoint::Use(url),
            _ => MotoEndpoint::Misconfigured(format!(
                "{MOTO_ENDPOINT_ENV}={value:?} is not an http(s) URL such as http://127.0.0.1:5000"
            )),
        },
        None if required => MotoEndpoint::Misconfigured(format!(
            "{MOTO_ENDPOINT_ENV} is not set but {REQUIRE_MOTO_ENV}=1, so this moto-backed test \
             may not be skipped. Run the tests with scripts/test (it starts moto), or unset \
             {REQUIRE_MOTO_ENV} to skip moto-backed tests."
        )),
        None => MotoEndpoint::Skip,
    }
}

/// The moto endpoint from `SLUICE_MOTO_ENDPOINT`, or `None` (after writing
/// `skipped (no moto): <test>` to stderr) when it is unset and not required.
///
/// # Panics
/// When `SLUICE_REQUIRE_MOTO=1` and the endpoint is unset, or when the endpoint is not an http(s)
/// URL: a moto-backed test must never pass without having run.
#[allow(clippy::panic)] // test support: failing the calling test is the point
pub fn moto_endpoint() -> Option<Url> {
    let endpoint = std::env::var(MOTO_ENDPOINT_ENV).ok();
    let require = std::env::var(REQUIRE_MOTO_ENV).ok();
    match resolve(endpoint.as_deref(), require.as_deref()) {
        MotoEndpoint::Use(url) => Some(url),
        MotoEndpoint::Skip => {
            // Straight to the stderr handle (libtest's capture only swallows `eprintln!`), in one
            // write so that concurrent tests' lines do not interleave.
            let line = format!("skipped (no moto): {}\n", current_test());
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
        MotoEndpoint::Misconfigured(message) => panic!("{message}"),
    }
}

/// The [`SdkConfig`] for a moto-backed test: the moto endpoint for every service, region
/// [`TEST_REGION`] and the static [`test_credentials`], built through the same loader as
/// [`sluice_aws::sdk_config`]. `None` means "skip this test" (see [`moto_endpoint`], including its
/// panics). S3 clients must set `force_path_style(true)`.
pub async fn moto() -> Option<SdkConfig> {
    let endpoint = moto_endpoint()?;
    let settings = AwsSettings { region: Some(TEST_REGION.to_owned()), endpoint_url: Some(endpoint) };
    Some(sluice_aws::config_loader(&settings).credentials_provider(test_credentials()).load().await)
}

/// Opens the `s3://` lake at `location` on the moto server at `endpoint` (from
/// [`moto_endpoint`]) as a moto-backed test does: region [`TEST_REGION`], the endpoint override
/// (path-style, plain http) and the static test credentials, through the lake's own S3
/// configuration.
pub fn open_lake(location: &str, endpoint: Url) -> Result<Lake, LakeError> {
    let settings = AwsSettings { region: Some(TEST_REGION.to_owned()), endpoint_url: Some(endpoint) };
    let credentials = [
        (AmazonS3ConfigKey::AccessKeyId, TEST_ACCESS_KEY_ID.to_owned()),
        (AmazonS3ConfigKey::SecretAccessKey, TEST_SECRET_ACCESS_KEY.to_owned()),
    ];
    Lake::open_with_options(location, &settings, &credentials)
}

/// Static credentials `testing`/`testing` (moto accepts any signature).
pub fn test_credentials() -> Credentials {
    Credentials::new(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, None, None, "sluice-testing")
}

/// A name no other test (in this or a concurrent process, or an earlier run against the same
/// server) uses: `<prefix>-<time>-<pid>-<sequence>`, lowercase hex.
///
/// Guarantee: at most 63 characters of `[a-z0-9-]`, starting and ending with a letter or digit,
/// so it is a valid S3 bucket, Kinesis stream, DynamoDB table and SQS queue name. The prefix is
/// lowercased, other characters become `-`, and it is cut to 24 characters.
pub fn unique_name(prefix: &str) -> String {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    compose_name(prefix, nanos, std::process::id(), sequence)
}

/// Longest prefix kept by [`unique_name`]; the suffix takes at most 16 + 8 + 8 + 3 characters.
const MAX_PREFIX_LEN: usize = 24;

fn compose_name(prefix: &str, nanos: u128, pid: u32, sequence: u32) -> String {
    let cleaned: String =
        prefix.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let start = cleaned.trim_start_matches('-');
    // ASCII only, so byte slicing is char slicing.
    let cut = &start[..start.len().min(MAX_PREFIX_LEN)];
    let prefix = match cut.trim_end_matches('-') {
        "" => "t",
        kept => kept,
    };
    // Truncating the clock to 64 bits only matters for uniqueness after the year 2554.
    let time = nanos as u64;
    format!("{prefix}-{time:x}-{pid:x}-{sequence:x}")
}

/// The running test's name: libtest names each test's thread after the test.
fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => "<unnamed test>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn resolve_table() {
        let moto = Url::parse("http://127.0.0.1:5000").unwrap();
        let cases: &[(Option<&str>, Option<&str>, Option<MotoEndpoint>)] = &[
            (None, None, Some(MotoEndpoint::Skip)),
            (Some(""), None, Some(MotoEndpoint::Skip)),
            (None, Some("0"), Some(MotoEndpoint::Skip)),
            (None, Some(""), Some(MotoEndpoint::Skip)),
            (None, Some("1"), None),
            (None, Some("true"), None),
            (Some("  "), Some("1"), None),
            (Some("http://127.0.0.1:5000"), Some("1"), Some(MotoEndpoint::Use(moto.clone()))),
            (Some(" http://127.0.0.1:5000 "), None, Some(MotoEndpoint::Use(moto.clone()))),
            (Some("127.0.0.1:5000"), None, None),
            (Some("not a url"), None, None),
        ];
        for (endpoint, require, expected) in cases {
            let got = resolve(*endpoint, *require);
            match expected {
                Some(expected) => assert_eq!(&got, expected, "{endpoint:?} {require:?}"),
                None => assert!(matches!(got, MotoEndpoint::Misconfigured(_)), "{endpoint:?} {require:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn missing_required_moto_explains_how_to_fix_it() {
        let MotoEndpoint::Misconfigured(message) = resolve(None, Some("1")) else {
            panic!("a required moto must not be skipped");
        };
        assert!(message.contains("SLUICE_MOTO_ENDPOINT"), "{message}");
        assert!(message.contains("scripts/test"), "{message}");
    }

    #[test]
    fn test_credentials_are_the_static_pair() {
        let credentials = test_credentials();
        assert_eq!(credentials.access_key_id(), "testing");
        assert_eq!(credentials.secret_access_key(), "testing");
        assert_eq!(credentials.session_token(), None);
    }

    #[test]
    fn names_are_readable() {
        assert_eq!(compose_name("stream", 0xabc, 0x1f, 2), "stream-abc-1f-2");
        assert_eq!(compose_name("My_Table!", 1, 1, 1), "my-table-1-1-1");
        assert_eq!(compose_name("--", 1, 1, 1), "t-1-1-1");
        assert_eq!(compose_name("", 1, 1, 1), "t-1-1-1");
    }

    #[test]
    fn consecutive_names_differ() {
        let first = unique_name("queue");
        let second = unique_name("queue");
        assert_ne!(first, second);
        assert!(first.starts_with("queue-"), "{first}");
    }

    fn is_valid_resource_name(name: &str) -> bool {
        let bytes = name.as_bytes();
        (3..=63).contains(&bytes.len())
            && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
    }

    proptest! {
        #[test]
        fn any_prefix_gives_a_valid_resource_name(
            prefix in any::<String>(),
            nanos in any::<u128>(),
            pid in any::<u32>(),
            sequence in any::<u32>(),
        ) {
            let name = compose_name(&prefix, nanos, pid, sequence);
            prop_assert!(is_valid_resource_name(&name), "{name:?}");
        }

        #[test]
        fn different_suffixes_give_different_names(
            prefix in "[a-z-]{0,30}",
            a in (any::<u64>(), any::<u32>(), any::<u32>()),
            b in (any::<u64>(), any::<u32>(), any::<u32>()),
        ) {
            prop_assume!(a != b);
            prop_assert_ne!(
                compose_name(&prefix, u128::from(a.0), a.1, a.2),
                compose_name(&prefix, u128::from(b.0), b.1, b.2)
            );
        }
    }
}
