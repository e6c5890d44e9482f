//! The runner: one worker task per shard, each a loop of collect batch -> invoke -> decide ->
//! checkpoint / discard to the failure destination. See the module docs of [`crate::esm`] for the semantics.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::streams::KinesisEventResponse;
use bytes::Bytes;
use chrono::Utc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::decide::{Outcome, Pending, Policy, Step, decide, interpret, take_expired};
use crate::{
    BatchHandler, CheckpointStore, EsmConfig, EsmError, FailedBatch, FailureDestination, FailureReason, MappingStatus,
    PortError, ShardSource,
};
use sluice_stream::{SequenceNumber, StreamRecord, to_kinesis_event};

/// A local event source mapping: reads a [`ShardSource`], delivers batches to a
/// [`BatchHandler`], checkpoints to a [`CheckpointStore`], discards to a [`FailureDestination`].
pub struct EventSourceMapping<S, H, D, C> {
    ctx: Arc<Ctx<S, H, D, C>>,
}

struct Ctx<S, H, D, C> {
    config: EsmConfig,
    policy: Policy,
    source: Arc<S>,
    handler: Arc<H>,
    destination: Arc<D>,
    checkpoints: Arc<C>,
    status: Arc<MappingStatus>,
}

/// Whether a shard worker keeps going.
enum Flow {
    Continue,
    Stop,
}

impl<S, H, D, C> EventSourceMapping<S, H, D, C>
where
    S: ShardSource,
    H: BatchHandler,
    D: FailureDestination,
    C: CheckpointStore,
{
    /// A mapping of `source` to `handler`. Nothing runs until [`EventSourceMapping::run`].
    pub fn new(config: EsmConfig, source: Arc<S>, handler: Arc<H>, destination: Arc<D>, checkpoints: Arc<C>) -> Self {
        let status = Arc::new(MappingStatus::new(&config.name));
        let policy = Policy {
            maximum_retry_attempts: config.maximum_retry_attempts,
            bisect_batch_on_function_error: config.bisect_batch_on_function_error,
        };
        EventSourceMapping { ctx: Arc::new(Ctx { config, policy, source, handler, destination, checkpoints, status }) }
    }

    /// The mapping's live status and counters (shared; keeps updating while `run` executes).
    pub fn status(&self) -> Arc<MappingStatus> {
        Arc::clone(&self.ctx.status)
    }

    /// The mapping's configuration.
    pub fn config(&self) -> &EsmConfig {
        &self.ctx.config
    }

    /// Runs until `shutdown` is cancelled: then lets in-flight invocations finish and apply their
    /// outcome, starts nothing new, and returns `Ok`. Fails at once with `InvalidConfig`, or with
    /// `WorkerFailed` if a shard worker died (the others are stopped gracefully first).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), EsmError> {
        self.ctx.config.validate()?;
        let ctx = self.ctx;
        ctx.status.set_running(true);
        let _running = RunningGuard(Arc::clone(&ctx.status));
        info!(mapping = %ctx.config.name, "event source mapping started");

        let stop = shutdown.child_token();
        let mut workers = JoinSet::new();
        let mut shard_of_task: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut known: HashSet<String> = HashSet::new();
        let mut failure: Option<String> = None;
        let mut list_errors = 0u32;

        loop {
            let listed = tokio::select! {
                () = stop.cancelled() => break,
                listed = ctx.source.list_shards() => listed,
            };
            let next_refresh = match listed {
                Ok(shards) => {
                    ctx.status.port_ok();
                    list_errors = 0;
                    for shard in shards {
                        if known.insert(shard.clone()) {
                            let handle = workers.spawn(Arc::clone(&ctx).shard_worker(shard.clone(), stop.clone()));
                            shard_of_task.insert(handle.id(), shard);
                        }
                    }
                    ctx.config.shard_refresh_interval
                }
                Err(e) => {
                    ctx.status.port_error(&format!("list shards: {e}"));
                    warn!(mapping = %ctx.config.name, error = %e, "listing shards failed; retrying");
                    let d = ctx.backoff(list_errors);
                    list_errors = list_errors.saturating_add(1);
                    d.min(ctx.config.shard_refresh_interval)
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(next_refresh) => {}
                Some(joined) = workers.join_next_with_id() => match joined {
                    Ok((id, ())) => {
                        // A worker only returns when stopped; forget it so a refresh restarts it.
                        if let Some(shard) = shard_of_task.remove(&id) {
                            known.remove(&shard);
                        }
                    }
                    Err(e) => {
                        failure = Some(format!("shard worker {:?}: {e}", shard_of_task.get(&e.id())));
                        stop.cancel();
                        break;
                    }
                },
            }
        }

        while let Some(joined) = workers.join_next().await {
            if let Err(e) = joined {
                failure.get_or_insert_with(|| e.to_string());
            }
        }
        info!(mapping = %ctx.config.name, "event source mapping stopped");
        match failure {
            Some(f) => Err(EsmError::WorkerFailed(f)),
            None => Ok(()),
        }
    }
}

struct RunningGuard(Arc<MappingStatus>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.set_running(false);
    }
}

struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sleeps for `d`; `false` if `stop` was cancelled first.
async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

/// Sorted, deduplicated, after `after`, at most `limit` (defends the invariants the runner relies
/// on against a misbehaving source).
fn sanitize(mut records: Vec<StreamRecord>, after: Option<SequenceNumber>, limit: usize) -> Vec<StreamRecord> {
    records.sort_by_key(|r| r.sequence_number);
    records.dedup_by_key(|r| r.sequence_number);
    if let Some(a) = after {
        records.retain(|r| r.sequence_number > a);
    }
    records.truncate(limit);
    records
}

impl<S, H, D, C> Ctx<S, H, D, C>
where
    S: ShardSource,
    H: BatchHandler,
    D: FailureDestination,
    C: CheckpointStore,
{
    fn backoff(&self, retry: u32) -> Duration {
        // Never spin: port retries wait at least one poll interval.
        self.config.retry_backoff.delay(retry).max(self.config.poll_interval)
    }

    async fn shard_worker(self: Arc<Self>, shard: String, stop: CancellationToken) {
        let span = info_span!("esm_shard", mapping = %self.config.name, shard = %shard);
        async {
            let name = &self.config.name;
            let Some(mut position) =
                self.retry_port("load checkpoint", &stop, || self.checkpoints.load(name, &shard)).await
            else {
                return;
            };
            debug!(checkpoint = ?position, "shard worker started");
            loop {
                if stop.is_cancelled() {
                    return;
                }
                let Some(batch) = self.collect_batch(&shard, position, &stop).await else {
                    return;
                };
                let Some(pending) = Pending::new(batch) else {
                    continue;
                };
                match self.process(&shard, pending, &mut position, &stop).await {
                    Flow::Continue => {}
                    Flow::Stop => return,
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// Calls a port until it succeeds; `None` if `stop` was cancelled after a failure (the first
    /// attempt is always made).
    async fn retry_port<T, F, Fut>(&self, what: &str, stop: &CancellationToken, mut op: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PortError>>,
    {
        let mut attempt = 0u32;
        loop {
            match op().await {
                Ok(v) => {
                    self.status.port_ok();
                    return Some(v);
                }
                Err(e) => {
                    self.status.port_error(&format!("{what}: {e}"));
                    warn!(error = %e, attempt, "{what} failed; retrying");
                    if stop.is_cancelled() || !sleep_or_stop(self.backoff(attempt), stop).await {
                        return None;
                    }
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// The next batch of `shard` after `after`: waits for a first record (polling), then up to
    /// the batching window for the batch to fill. `None` if stopped meanwhile.
    async fn collect_batch(
        &self,
        shard: &str,
        after: Option<SequenceNumber>,
        stop: &CancellationToken,
    ) -> Option<Vec<StreamRecord>> {
        let limit = self.config.batch_size;
        let mut errors = 0u32;
        let mut batch = loop {
            if stop.is_cancelled() {
                return None;
            }
            let nap = match self.source.read(shard, after, limit).await {
                Ok(records) => {
                    self.status.port_ok();
                    errors = 0;
                    let records = sanitize(records, after, limit);
                    if !records.is_empty() {
                        break records;
                    }
                    self.config.poll_interval
                }
                Err(e) => {
                    self.status.port_error(&format!("read shard: {e}"));
                    warn!(error = %e, "reading the shard failed; retrying");
                    errors = errors.saturating_add(1);
                    self.backoff(errors - 1)
                }
            };
            if !sleep_or_stop(nap, stop).await {
                return None;
            }
        };

        let window = self.config.batching_window;
        if !window.is_zero() && batch.len() < limit {
            let deadline = Instant::now() + window;
            loop {
                let now = Instant::now();
                if batch.len() >= limit || now >= deadline {
                    break;
                }
                let nap = self.config.poll_interval.min(deadline - now);
                if !sleep_or_stop(nap, stop).await {
                    return None;
                }
                let last = batch.last().map(|r| r.sequence_number);
                let room = limit - batch.len();
                match self.source.read(shard, last, room).await {
                    Ok(more) => {
                        self.status.port_ok();
                        batch.extend(sanitize(more, last, room));
                    }
                    Err(e) => {
                        self.status.port_error(&format!("read shard: {e}"));
                        warn!(error = %e, "reading the shard failed during the batching window");
                    }
                }
            }
        }

        if let Some(last) = batch.last() {
            let age = Utc::now().signed_duration_since(last.approximate_arrival).num_milliseconds();
            self.status.iterator_age(shard, u64::try_from(age).unwrap_or(0));
        }
        Some(batch)
    }

    /// Delivers one batch to resolution (every record succeeded or discarded), checkpointing as
    /// it goes. `Stop` if stopped, leaving the rest for redelivery after a restart.
    async fn process(
        &self,
        shard: &str,
        first: Pending,
        position: &mut Option<SequenceNumber>,
        stop: &CancellationToken,
    ) -> Flow {
        let mut queue = VecDeque::from([first]);
        while let Some(mut p) = queue.pop_front() {
            // Graceful shutdown: nothing new starts, not even a retry or the second half.
            if stop.is_cancelled() {
                return Flow::Stop;
            }
            let expired = take_expired(&mut p, Utc::now(), self.config.maximum_record_age);
            if !expired.is_empty() {
                let n = expired.len();
                let error = Some(format!(
                    "records older than the maximum record age {:?}",
                    self.config.maximum_record_age.unwrap_or_default()
                ));
                if !self.discard(shard, expired, FailureReason::RecordAgeExceeded, p.retries, error, stop).await {
                    return Flow::Stop;
                }
                self.status.discarded(n, true);
            }
            if p.records.is_empty() {
                if !self.checkpoint(shard, p.range_last, position, stop).await {
                    return Flow::Stop;
                }
                continue;
            }

            let result = self.invoke(shard, &p.records).await;
            let outcome = interpret(result, &p.records, self.config.report_batch_item_failures);
            match &outcome {
                Outcome::Success => self.status.succeeded(p.records.len()),
                Outcome::PartialFailure { first_failed, detail } => {
                    self.status.succeeded(*first_failed);
                    self.status.failed(detail);
                }
                Outcome::FunctionError { error } => self.status.failed(error),
            }

            match decide(p, outcome, self.policy) {
                Step::Done { checkpoint } => {
                    if !self.checkpoint(shard, checkpoint, position, stop).await {
                        return Flow::Stop;
                    }
                }
                Step::Retry { acked, next, error } => {
                    if let Some(a) = acked
                        && !self.checkpoint(shard, a, position, stop).await
                    {
                        return Flow::Stop;
                    }
                    self.status.retried();
                    warn!(
                        error = %error,
                        retry = next.retries,
                        first = %next.records.first().map(|r| r.sequence_number).unwrap_or_default(),
                        records = next.records.len(),
                        "batch failed; retrying"
                    );
                    let delay = self.config.retry_backoff.delay(next.retries.saturating_sub(1));
                    if stop.is_cancelled() || !sleep_or_stop(delay, stop).await {
                        return Flow::Stop;
                    }
                    queue.push_front(next);
                }
                Step::Bisect { first, second } => {
                    self.status.bisected();
                    debug!(
                        first = first.records.len(),
                        second = second.records.len(),
                        "function error: bisecting the batch"
                    );
                    queue.push_front(second);
                    queue.push_front(first);
                }
                Step::Discard { acked, failed, attempts, error } => {
                    if let Some(a) = acked
                        && !self.checkpoint(shard, a, position, stop).await
                    {
                        return Flow::Stop;
                    }
                    let n = failed.records.len();
                    if !self
                        .discard(
                            shard,
                            failed.records,
                            FailureReason::RetryAttemptsExhausted,
                            attempts,
                            Some(error),
                            stop,
                        )
                        .await
                    {
                        return Flow::Stop;
                    }
                    self.status.discarded(n, false);
                    if !self.checkpoint(shard, failed.range_last, position, stop).await {
                        return Flow::Stop;
                    }
                }
            }
        }
        Flow::Continue
    }

    /// Saves the checkpoint; `false` if stopped before it could be saved.
    async fn checkpoint(
        &self,
        shard: &str,
        seq: SequenceNumber,
        position: &mut Option<SequenceNumber>,
        stop: &CancellationToken,
    ) -> bool {
        let name = &self.config.name;
        let saved =
            self.retry_port("save checkpoint", stop, || self.checkpoints.save(name, shard, seq)).await.is_some();
        if saved {
            *position = Some(seq);
        }
        saved
    }

    /// Sends records to the destination; `false` if stopped before it accepted them.
    async fn discard(
        &self,
        shard: &str,
        records: Vec<StreamRecord>,
        reason: FailureReason,
        attempts: u32,
        error: Option<String>,
        stop: &CancellationToken,
    ) -> bool {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return true;
        };
        let batch = FailedBatch {
            mapping: self.config.name.clone(),
            stream_arn: self.config.stream_arn.clone(),
            shard_id: shard.to_owned(),
            reason,
            error,
            attempts,
            first_sequence: first.sequence_number,
            last_sequence: last.sequence_number,
            failed_at: Utc::now(),
            records,
        };
        warn!(
            reason = %reason,
            attempts,
            first = %batch.first_sequence,
            last = %batch.last_sequence,
            records = batch.records.len(),
            "discarding records to the on-failure destination"
        );
        self.retry_port("send to the on-failure destination", stop, || self.destination.send(&batch)).await.is_some()
    }

    /// Runs the handler on its own task (a panic or timeout is a function error, as a crashed or
    /// timed-out Lambda invocation is).
    async fn invoke(&self, shard: &str, records: &[StreamRecord]) -> Result<KinesisEventResponse, String> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(KinesisEventResponse::default());
        };
        let span = info_span!(
            "esm_batch",
            batch_id = %format!("{}:{}-{}", shard, first.sequence_number, last.sequence_number),
            records = records.len(),
        );
        let event = to_kinesis_event(records, &self.config.stream_arn, &self.config.region);
        // The bytes Lambda would deliver: the handler's entry parses them as the Lambda does.
        let payload = match serde_json::to_vec(&event) {
            Ok(body) => Bytes::from(body),
            Err(e) => return Err(format!("cannot encode the invocation: {e}")),
        };
        self.status.invoked(records.len());
        let handler = Arc::clone(&self.handler);
        let task = tokio::spawn(async move { handler.handle(payload).await }.instrument(span.clone()));
        let _abort = AbortOnDrop(task.abort_handle());
        let joined = match self.config.function_timeout {
            Some(t) => match tokio::time::timeout(t, task).await {
                Ok(j) => j,
                Err(_) => return Err(format!("function timed out after {t:?}")),
            },
            None => task.await,
        };
        match joined {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(format!("function error: {e}")),
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(format!("function panicked: {msg}"))
            }
            Err(e) => Err(format!("function invocation cancelled: {e}")),
        }
    }
}
