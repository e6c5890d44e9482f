//! The handler side of the Kinesis trigger: [`BatchHandler`], the one entry of a batch handler,
//! and [`run`], the body of every Kinesis-triggered Lambda binary.
//!
//! One entry per handler, on the raw invocation payload: the Lambda ([`run`]) and `sluice up`'s
//! event-source-mapping runner both call [`BatchHandler::handle`] with the bytes Lambda
//! delivers, so the local runner runs the Lambda path itself.
//!
//! Raw bodies: `lambda_runtime` deserializes every invocation body with `serde_json` before
//! calling the handler: for a ~6 MB Kinesis batch that is a full scan of the payload (~25% of the
//! aggregator's CPU) whose result a handler using [`crate::kinesis_input`] throws away. The
//! [`RawPayloads`] layer moves the body aside before that step and passes `null` on, which the
//! runtime deserializes into [`RawPayload`]; [`invoke`] then takes the bytes
//! ([`RawPayloads::take`], keyed by the invocation's request id) and hands them to the handler.
//!
//! Adapter module: it names `lambda_runtime` types, and holds no domain logic.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use aws_lambda_events::streams::KinesisEventResponse;
use bytes::Bytes;
use lambda_runtime::layers::TracingLayer;
use lambda_runtime::{LambdaEvent, LambdaInvocation, Runtime, Service, service_fn};
use tracing::Instrument as _;

/// A function error: the handler failed the whole batch (Lambda retries it per the mapping's
/// retry settings). Per-record failures are reported in the response instead.
#[derive(Debug)]
pub struct HandlerError(Box<dyn StdError + Send + Sync>);

impl HandlerError {
    /// Wraps any error or message.
    pub fn new(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        HandlerError(error.into())
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for HandlerError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.0.as_ref())
    }
}

/// A batch handler: the entry the Kinesis-triggered Lambda calls, on the same input.
pub trait BatchHandler: Send + Sync + 'static {
    /// Processes one invocation. `payload` is the invocation body exactly as Lambda delivers it:
    /// the JSON of a Kinesis event holding records of one shard, in order (the local runner
    /// serializes its `KinesisEvent` to these bytes, so `sluice up` runs the Lambda path itself).
    /// `Err` = function error (the whole batch failed, also for a body that is not a Kinesis
    /// event). `Ok` with `batchItemFailures` reports the first failed record (honoured only when
    /// the mapping has `report_batch_item_failures`).
    fn handle(&self, payload: Bytes) -> impl Future<Output = Result<KinesisEventResponse, HandlerError>> + Send;
}

/// The payload the runtime deserializes when [`RawPayloads`] is installed: the `null` the layer
/// leaves in place of the body (the body itself is taken from [`RawPayloads::take`]).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
pub struct RawPayload;

/// A `lambda_runtime` layer that moves each invocation's raw body aside (keyed by request id)
/// and passes `null` on, so the runtime's `serde_json` pass over the body is skipped and the
/// handler parses the bytes once itself. Install it with `Runtime::layer`; the handler takes
/// its body with [`RawPayloads::take`] (exactly once). Bodies never taken (the handler was not
/// called) are dropped once more than [`RawPayloads::MAX_PENDING`] are waiting, oldest first.
/// Clones share the bodies.
#[derive(Clone, Default)]
pub struct RawPayloads {
    pending: Arc<Mutex<VecDeque<(String, Bytes)>>>,
}

impl std::fmt::Debug for RawPayloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPayloads").finish_non_exhaustive()
    }
}

impl RawPayloads {
    /// Bodies kept waiting at most (one per concurrent invocation is the normal state).
    pub const MAX_PENDING: usize = 64;

    /// A new, empty hand-over point.
    pub fn new() -> Self {
        Self::default()
    }

    fn put(&self, request_id: String, body: Bytes) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        while pending.len() >= Self::MAX_PENDING {
            pending.pop_front();
        }
        pending.push_back((request_id, body));
    }

    /// The raw body of invocation `request_id`, once (`None` if it was never put or was
    /// already taken or dropped).
    pub fn take(&self, request_id: &str) -> Option<Bytes> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let at = pending.iter().position(|(id, _)| id == request_id)?;
        pending.remove(at).map(|(_, body)| body)
    }
}

impl<S> lambda_runtime::tower::Layer<S> for RawPayloads {
    type Service = RawPayloadService<S>;
    fn layer(&self, inner: S) -> RawPayloadService<S> {
        RawPayloadService { inner, payloads: self.clone() }
    }
}

/// The service of the [`RawPayloads`] layer.
#[derive(Clone, Debug)]
pub struct RawPayloadService<S> {
    inner: S,
    payloads: RawPayloads,
}

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for RawPayloadService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LambdaInvocation) -> S::Future {
        let body = std::mem::replace(&mut req.body, Bytes::from_static(b"null"));
        self.payloads.put(req.context.request_id.clone(), body);
        self.inner.call(req)
    }
}

/// One invocation: takes the raw body [`RawPayloads`] handed over for `event` and passes it to
/// [`BatchHandler::handle`], in a `batch` span carrying the request id. A missing body (the
/// layer is not installed) and a handler's `Err` are function errors.
pub async fn invoke<H: BatchHandler>(
    handler: &H,
    payloads: &RawPayloads,
    event: LambdaEvent<RawPayload>,
) -> Result<KinesisEventResponse, lambda_runtime::Error> {
    let request_id = event.context.request_id;
    let body =
        payloads.take(&request_id).ok_or("the invocation body was not handed over (RawPayloads layer missing?)")?;
    let span = tracing::info_span!("batch", request_id = %request_id);
    // Boxed: the handler's future nests deep enough that a binary computing the layout of its
    // whole `main` future would exceed the compiler's query depth (one allocation a batch).
    let handled: Pin<Box<dyn Future<Output = _> + Send + '_>> = Box::pin(handler.handle(body));
    Ok(handled.instrument(span).await?)
}

/// Runs `handler` as this process's Lambda function until the runtime stops: as
/// `lambda_runtime::run`, plus the [`RawPayloads`] hand-over before the runtime's
/// deserialization, each invocation through [`invoke`]; `after_each` runs after every invocation
/// (the binaries print their CloudWatch EMF metrics there).
pub async fn run<H: BatchHandler>(
    handler: H,
    after_each: impl Fn() + Send + Sync,
) -> Result<(), lambda_runtime::Error> {
    let payloads = RawPayloads::new();
    let (handler, bodies, after_each) = (&handler, &payloads, &after_each);
    let service = service_fn(move |event: LambdaEvent<RawPayload>| async move {
        let result = invoke(handler, bodies, event).await;
        after_each();
        result
    });
    Runtime::new(service).layer(payloads.clone()).layer(TracingLayer::new()).run().await
}

/// What a Lambda binary's wiring looks like in a test, without the Runtime API: the
/// [`RawPayloads`] layer over a stand-in for `lambda_runtime`'s inner services (serde_json
/// deserializes the body into `LambdaEvent<RawPayload>`, as the runtime does, then `function`
/// runs; either failing is a function error), and invocations to call it with.
#[cfg(feature = "testing")]
pub mod stand_in {
    use std::fmt::Display;
    use std::future::Future;

    use lambda_runtime::tower::{Layer as _, service_fn};
    use lambda_runtime::{Context, Diagnostic, LambdaEvent, LambdaInvocation, Service};

    use super::{RawPayload, RawPayloads};

    /// `payloads` layered over the stand-in runtime calling `function`.
    pub fn runtime<F, Fut, R, E>(
        payloads: &RawPayloads,
        function: F,
    ) -> impl Service<LambdaInvocation, Response = R, Error = Diagnostic>
    where
        F: Fn(LambdaEvent<RawPayload>) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: Display,
    {
        payloads.layer(service_fn(move |invocation: LambdaInvocation| {
            let call = serde_json::from_slice::<RawPayload>(&invocation.body)
                .map(|payload| function(LambdaEvent { payload, context: invocation.context }));
            async move {
                match call {
                    Ok(call) => call.await.map_err(|e| Diagnostic::from(e.to_string())),
                    Err(e) => Err(Diagnostic::from(format!("deserialize: {e}"))),
                }
            }
        }))
    }

    /// An invocation of `body` with request id `request_id`.
    pub fn invocation(request_id: &str, body: &'static [u8]) -> LambdaInvocation {
        let mut context = Context::default();
        context.request_id = request_id.to_owned();
        LambdaInvocation { parts: http::Response::new(()).into_parts().0, body: body.into(), context }
    }
}
