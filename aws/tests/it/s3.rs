//! S3 through the shared config: create a bucket, put and get an object, path-style.

use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::ByteStream;
use sluice_aws::testing::{moto, unique_name};

/// Records the URI of every request the client sends.
#[derive(Debug, Clone, Default)]
struct RecordUris(Arc<Mutex<Vec<String>>>);

impl Intercept for RecordUris {
    fn name(&self) -> &'static str {
        "RecordUris"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.lock().unwrap().push(context.request().uri().to_owned());
        Ok(())
    }
}

#[tokio::test]
async fn put_then_get_object_path_style() {
    let Some(config) = moto().await else { return };
    let uris = RecordUris::default();
    // What every S3 adapter does when the endpoint is overridden.
    let s3_config = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(config.endpoint_url().is_some())
        .interceptor(uris.clone())
        .build();
    let client = aws_sdk_s3::Client::from_conf(s3_config);
    let bucket = unique_name("lake");
    let key = "events/event_type=order_placed/dt=2024-01-01/hour=00/part-0.parquet";
    let body = b"PAR1 not really parquet PAR1".to_vec();

    client.create_bucket().bucket(&bucket).send().await.unwrap();
    client.put_object().bucket(&bucket).key(key).body(ByteStream::from(body.clone())).send().await.unwrap();
    let got = client.get_object().bucket(&bucket).key(key).send().await.unwrap();
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), body.as_slice());

    let endpoint = config.endpoint_url().unwrap().trim_end_matches('/');
    let uris = uris.0.lock().unwrap().clone();
    assert_eq!(uris.len(), 3, "{uris:?}");
    for uri in &uris {
        assert!(uri.starts_with(&format!("{endpoint}/{bucket}")), "not a path-style request to {endpoint}: {uri}");
    }
}
