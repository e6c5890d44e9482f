//! Test support for moto-backed lake tests (production code never calls it).

use object_store::aws::AmazonS3ConfigKey;
use url::Url;

use crate::{Lake, LakeError};

/// Opens the `s3://` lake at `location` on the moto server at `endpoint` (from
/// `sluice_aws::testing::moto_endpoint`), as a moto-backed test does: region
/// `sluice_aws::testing::TEST_REGION`, the endpoint override (path-style, plain http) and the
/// static test credentials.
pub fn open_on_moto(location: &str, endpoint: Url) -> Result<Lake, LakeError> {
    let settings = sluice_aws::AwsSettings {
        region: Some(sluice_aws::testing::TEST_REGION.to_owned()),
        endpoint_url: Some(endpoint),
    };
    let credentials = [
        (AmazonS3ConfigKey::AccessKeyId, sluice_aws::testing::TEST_ACCESS_KEY_ID.to_owned()),
        (AmazonS3ConfigKey::SecretAccessKey, sluice_aws::testing::TEST_SECRET_ACCESS_KEY.to_owned()),
    ];
    Lake::open_with_options(location, &settings, &credentials)
}
