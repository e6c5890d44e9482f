//! Region and endpoint resolution of `sdk_config`, each case in a clean child process.
//!
//! Each `#[ignore]`d `child_*` test holds the assertions; the test that names it sets up the
//! environment and runs it through [`run_in_clean_env`].

use aws_sdk_kinesis::Client as Kinesis;
use sluice_aws::{AwsSettings, sdk_config};
use sluice_testkit::moto::{MOTO_ENDPOINT_ENV, moto_endpoint, unique_name};
use url::Url;

use crate::child::{in_child, run_in_clean_env};

/// A local port nothing listens on: a request sent there fails fast.
const DEAD_ENDPOINT: &str = "http://127.0.0.1:9";

async fn region_of(settings: &AwsSettings) -> String {
    let config = sdk_config(settings).await;
    config.region().unwrap().as_ref().to_owned()
}

#[test]
fn region_defaults_to_us_east_1_when_nothing_is_set() {
    run_in_clean_env("config::child_default_region", &[]);
}

#[tokio::test]
#[ignore = "run by region_defaults_to_us_east_1_when_nothing_is_set in a clean environment"]
async fn child_default_region() {
    if !in_child() {
        return;
    }
    let settings = AwsSettings::from_env().unwrap();
    assert_eq!(settings, AwsSettings::default());
    assert!(!settings.endpoint_overridden());
    let config = sdk_config(&settings).await;
    assert_eq!(config.region().unwrap().as_ref(), "us-east-1");
    assert_eq!(config.endpoint_url(), None);
}

#[test]
fn region_comes_from_aws_default_region() {
    run_in_clean_env("config::child_region_from_env", &[("AWS_DEFAULT_REGION", "ap-south-1")]);
}

#[tokio::test]
#[ignore = "run by region_comes_from_aws_default_region in a clean environment"]
async fn child_region_from_env() {
    if !in_child() {
        return;
    }
    let settings = AwsSettings::from_env().unwrap();
    assert_eq!(settings.region.as_deref(), Some("ap-south-1"));
    assert_eq!(region_of(&settings).await, "ap-south-1");
}

#[test]
fn region_comes_from_the_shared_config_profile() {
    let path = std::env::temp_dir().join(unique_name("sluice-aws-config"));
    std::fs::write(&path, "[default]\nregion = eu-north-1\n").unwrap();
    let result = std::panic::catch_unwind(|| {
        run_in_clean_env("config::child_region_from_profile", &[("AWS_CONFIG_FILE", path.to_str().unwrap())]);
    });
    std::fs::remove_file(&path).unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
#[ignore = "run by region_comes_from_the_shared_config_profile in a clean environment"]
async fn child_region_from_profile() {
    if !in_child() {
        return;
    }
    let settings = AwsSettings::from_env().unwrap();
    assert_eq!(settings.region, None, "the profile is aws-config's business");
    assert_eq!(region_of(&settings).await, "eu-north-1");
    let explicit = AwsSettings { region: Some("sa-east-1".to_owned()), endpoint_url: None };
    assert_eq!(region_of(&explicit).await, "sa-east-1", "explicit wins");
}

/// Environment of a child that talks to moto with the static test credentials.
fn moto_child_env(moto: &Url) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        (MOTO_ENDPOINT_ENV, moto.as_str().to_owned()),
    ]
}

fn run_with(name: &str, env: Vec<(&'static str, String)>) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_in_clean_env(name, &env);
}

/// Kinesis answers through the endpoint aws-config chose for it (moto), or the test fails.
async fn kinesis_answers(settings: &AwsSettings) {
    let config = sdk_config(settings).await;
    Kinesis::new(&config).list_streams().send().await.expect("Kinesis must be reached at moto");
}

#[test]
fn per_service_endpoint_variable_is_honoured() {
    let Some(moto) = moto_endpoint() else { return };
    let mut env = moto_child_env(&moto);
    env.push(("AWS_ENDPOINT_URL_KINESIS", moto.as_str().to_owned()));
    run_with("config::child_per_service_endpoint", env);
}

#[tokio::test]
#[ignore = "run by per_service_endpoint_variable_is_honoured in a clean environment"]
async fn child_per_service_endpoint() {
    if !in_child() {
        return;
    }
    let settings = AwsSettings::from_env().unwrap();
    assert!(!settings.endpoint_overridden(), "not a global override");
    kinesis_answers(&settings).await;
}

#[test]
fn per_service_variable_beats_the_global_endpoint_variable() {
    let Some(moto) = moto_endpoint() else { return };
    let mut env = moto_child_env(&moto);
    env.push(("AWS_ENDPOINT_URL", DEAD_ENDPOINT.to_owned()));
    env.push(("AWS_ENDPOINT_URL_KINESIS", moto.as_str().to_owned()));
    run_with("config::child_per_service_beats_global_env", env);
}

#[tokio::test]
#[ignore = "run by per_service_variable_beats_the_global_endpoint_variable in a clean environment"]
async fn child_per_service_beats_global_env() {
    if !in_child() {
        return;
    }
    let settings = AwsSettings::from_env().unwrap();
    assert!(settings.endpoint_overridden(), "AWS_ENDPOINT_URL is a global override");
    assert_eq!(settings.endpoint_url.as_ref().unwrap().as_str(), "http://127.0.0.1:9/");
    kinesis_answers(&settings).await;
}

#[test]
fn explicit_endpoint_beats_per_service_variables() {
    let Some(moto) = moto_endpoint() else { return };
    let mut env = moto_child_env(&moto);
    env.push(("AWS_ENDPOINT_URL_KINESIS", DEAD_ENDPOINT.to_owned()));
    run_with("config::child_explicit_beats_per_service", env);
}

#[tokio::test]
#[ignore = "run by explicit_endpoint_beats_per_service_variables in a clean environment"]
async fn child_explicit_beats_per_service() {
    if !in_child() {
        return;
    }
    let moto = std::env::var(MOTO_ENDPOINT_ENV).unwrap();
    let settings = AwsSettings { region: None, endpoint_url: Some(Url::parse(&moto).unwrap()) };
    kinesis_answers(&settings).await;
}
