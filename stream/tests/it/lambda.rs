//! `RawPayloads`: the raw-body hand-over layer, run the way `lambda_runtime` composes it (the
//! layer in front of the service that deserializes the body and calls the handler).

use std::sync::Mutex;

use lambda_runtime::tower::{Layer as _, Service as _, ServiceExt as _, service_fn};
use lambda_runtime::{Diagnostic, LambdaEvent, LambdaInvocation};
use sluice_stream::kinesis_input::KinesisBatch;
use sluice_stream::lambda::stand_in::{invocation, runtime};
use sluice_stream::lambda::{RawPayload, RawPayloads};

/// What the handler saw: request id, body, records parsed.
type Seen = (String, Vec<u8>, usize);

const FIXTURE: &[u8] = include_bytes!("../../../aggregators/tests/data/kinesis-event.json");

/// The runtime's inner service sees `null` (the stand-in deserializes the body into
/// `RawPayload` with serde_json, as `lambda_runtime` does: anything but `null` fails there), and
/// the handler takes the original bytes, exactly once.
#[tokio::test]
async fn the_handler_gets_the_raw_body_once_and_the_runtime_sees_null() {
    let payloads = RawPayloads::new();
    let seen: Mutex<Vec<Seen>> = Mutex::default();
    let (p, s) = (&payloads, &seen);
    let mut service = runtime(&payloads, |event: LambdaEvent<RawPayload>| async move {
        let body = p.take(&event.context.request_id).ok_or("no body")?;
        assert_eq!(p.take(&event.context.request_id), None, "taken once");
        let records = KinesisBatch::parse(&body).map_err(|e| e.to_string())?.len();
        s.lock().unwrap().push((event.context.request_id, body.to_vec(), records));
        Ok::<_, String>(records)
    });
    let n = service.ready().await.unwrap().call(invocation("req-1", FIXTURE)).await.unwrap();
    assert_eq!(n, KinesisBatch::parse(FIXTURE).unwrap().len());
    assert!(n > 0);
    let bad = service.ready().await.unwrap().call(invocation("req-2", b"{\"Records\":[{}]}")).await;
    assert!(bad.unwrap_err().error_message.contains("kinesis"), "the handler's parse error comes through");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].0.as_str(), seen[0].1.as_slice()), ("req-1", FIXTURE));
    assert_eq!(payloads.take("req-1"), None);
    assert_eq!(payloads.take("req-2"), None, "taken by the failing handler too");
}

/// Bodies whose handler never ran are dropped oldest first beyond `MAX_PENDING`; clones share.
#[tokio::test]
async fn untaken_bodies_are_bounded() {
    let payloads = RawPayloads::new();
    let mut service = payloads.layer(service_fn(|_: LambdaInvocation| async { Ok::<_, Diagnostic>(()) }));
    let ids: Vec<String> = (0..RawPayloads::MAX_PENDING + 3).map(|i| format!("req-{i}")).collect();
    for id in &ids {
        service.ready().await.unwrap().call(invocation(id, b"{}")).await.unwrap();
    }
    let clone = payloads.clone();
    for (i, id) in ids.iter().enumerate() {
        let kept = i >= 3;
        assert_eq!(clone.take(id).is_some(), kept, "{id}");
    }
    assert_eq!(payloads.take(&ids[10]), None, "the clone took it");
    assert_eq!(payloads.take("never"), None);
}
