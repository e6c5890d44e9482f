//! `sluice up`: the whole pipeline in one process.
//!
//! State lives under the data directory:
//! - `stream.db`: the durable local stream (one table per shard);
//! - `checkpoints.db`: each event source mapping's per-shard checkpoint;
//! - `failures.db`: the mappings' on-failure destination (whole batches, with payloads);
//! - `dead_letters.db`: records the handlers rejected (invalid) with the reason.
//! - `jobs_dead_letters.db`: failures of the jobs' state machines (what the jobs dead-letter
//!   queue receives in AWS), source `jobs`.
//!
//! Shutdown (SIGINT/SIGTERM): the HTTP server stops accepting and drains open requests, every
//! mapping finishes its in-flight batch and checkpoints it, then the process exits 0. A batch
//! interrupted harder than that (kill -9, power loss) is redelivered after restart, because its
//! checkpoint was never written: nothing acknowledged is lost.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use sluice_aggregators::{AggregatorHandler, SqliteAggregateStore, WindowConfig};
use sluice_api::AggregateStoreReader;
use sluice_esm::{
    BatchHandler, EsmConfig, EventSourceMapping, LocalStream, LocalStreamConfig, MappingStatus, SqliteCheckpoints,
    SqliteFailureDestination,
};
use sluice_ingest::{
    AppState, Authenticator, ComponentHealth, Health, HealthProbe, LocalIssuer, LocalStreamEventLog, ProbeFuture,
};
use sluice_jobs::backfill::Backfiller;
use sluice_jobs::compaction::{CompactionConfig, Compactor};
use sluice_jobs::orchestration::tasks::BackfillExecutionRequest;
use sluice_lake::Lake;
use sluice_sinks::{LakeTables, LakeWriter};
use sluice_telemetry::{Metrics, catalog};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for in-flight work before giving up on it (it is then redelivered
/// after restart). Kept under 10 s so Ctrl-C always returns promptly.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// How often expired records are trimmed from the local stream.
const TRIM_INTERVAL: Duration = Duration::from_secs(60);

/// The ARN the local stream reports in `eventSourceARN`.
pub const LOCAL_STREAM_ARN: &str = "arn:aws:kinesis:local:000000000000:stream/sluice-events";
/// The region the local stream reports in `awsRegion`.
pub const LOCAL_REGION: &str = "local";

/// Typed configuration of `sluice up`, built once from the CLI.
#[derive(Debug, Clone)]
pub struct UpConfig {
    /// Where all local state lives.
    pub data_dir: PathBuf,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Shards of the local stream.
    pub shards: u32,
    /// Retention of the local stream.
    pub retention: chrono::Duration,
    /// Verify Bearer tokens (the default). `false` accepts every request and warns at start.
    pub auth: bool,
    /// Schema directory overriding the built-in registry.
    pub schemas_dir: Option<PathBuf>,
    /// Size limits of the ingest API.
    pub limits: sluice_ingest::Limits,
    /// The accepted range of `occurred_at` (ingest and both handlers).
    pub event_time: sluice_schemas::EventTimeRange,
    /// Per-producer rate limit (`None`: off).
    pub rate_limit: Option<sluice_ingest::RateLimit>,
    /// Aggregation windows and allowed lateness.
    pub windows: WindowConfig,
    /// How often the lake's closed partitions are compacted (`None`: never).
    pub compact_every: Option<Duration>,
    /// When (UTC) the previous day's aggregates are backfilled from the lake, daily (`None`:
    /// never).
    pub backfill_at: Option<chrono::NaiveTime>,
}

/// Loads the schema registry: the built-in one, or `dir` when given.
pub fn load_registry(dir: Option<&std::path::Path>) -> anyhow::Result<sluice_schemas::Registry> {
    let registry = sluice_schemas::Registry::load(dir).with_context(|| match dir {
        Some(dir) => format!("cannot load schemas from {}", dir.display()),
        None => "built-in schemas are invalid".to_owned(),
    })?;
    if let Err(problems) = registry.check_evolution() {
        anyhow::bail!("incompatible schema evolution: {}", problems.join("; "));
    }
    Ok(registry)
}

/// Binds `config.listen` and runs until `shutdown` is cancelled.
pub async fn run(config: UpConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    serve(listener, config, shutdown).await
}

/// The local resources every component shares.
#[derive(Clone)]
pub struct Local {
    /// The durable local stream.
    pub stream: LocalStream,
    /// Checkpoints of the event source mappings.
    pub checkpoints: Arc<SqliteCheckpoints>,
    /// On-failure destination of the event source mappings.
    pub failures: Arc<SqliteFailureDestination>,
    /// Records rejected by handlers.
    pub dead_letters: sluice_dlq::SqliteDeadLetters,
}

impl Local {
    /// Opens (creating when needed) every local store under `config.data_dir`.
    pub fn open(config: &UpConfig) -> anyhow::Result<Self> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create data dir {}", dir.display()))?;
        let stream_config =
            LocalStreamConfig { shards: config.shards, retention: config.retention, ..LocalStreamConfig::default() };
        let stream =
            LocalStream::open(&dir.join("stream.db"), stream_config).context("cannot open the local stream")?;
        let checkpoints =
            Arc::new(SqliteCheckpoints::open(&dir.join("checkpoints.db")).context("cannot open checkpoints")?);
        let failures = Arc::new(
            SqliteFailureDestination::open(&dir.join("failures.db")).context("cannot open the failure destination")?,
        );
        let dead_letters = sluice_dlq::SqliteDeadLetters::open(&dir.join("dead_letters.db"))
            .context("cannot open the dead-letter table")?;
        Ok(Self { stream, checkpoints, failures, dead_letters })
    }
}

/// Opens the local lake directory (`<data_dir>/lake`) through the same `object_store` adapter the
/// Lambda uses for S3.
pub fn open_local_lake(data_dir: &std::path::Path) -> anyhow::Result<Lake> {
    let dir = crate::lake::local_lake_dir(data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create the lake dir {}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let url = url::Url::from_directory_path(&dir)
        .map_err(|()| anyhow::anyhow!("lake dir {} is not an absolute path", dir.display()))?;
    Lake::open(url.as_str(), &sluice_aws::AwsSettings::default()).context("cannot open the local lake")
}

/// The event source mapping settings `sluice up` uses for every handler: the same values
/// template.yaml gives the Lambda event source mappings.
pub fn mapping_config(name: &str) -> EsmConfig {
    let mut c = EsmConfig::new(name, LOCAL_STREAM_ARN, LOCAL_REGION);
    c.batch_size = 1000;
    c.batching_window = Duration::from_millis(500);
    c.maximum_retry_attempts = Some(10);
    c.bisect_batch_on_function_error = true;
    c.report_batch_item_failures = true;
    c
}

/// The running pipeline's background work: one task per event source mapping plus housekeeping.
struct Pipeline {
    tasks: JoinSet<anyhow::Result<()>>,
    mappings: Vec<Arc<MappingStatus>>,
}

impl Pipeline {
    fn new() -> Self {
        Self { tasks: JoinSet::new(), mappings: Vec::new() }
    }

    /// Starts an event source mapping from the local stream to `handler`.
    fn add_mapping<H: BatchHandler>(&mut self, local: &Local, name: &str, handler: H, shutdown: &CancellationToken) {
        let mapping = EventSourceMapping::new(
            mapping_config(name),
            Arc::new(local.stream.clone()),
            Arc::new(handler),
            Arc::clone(&local.failures),
            Arc::clone(&local.checkpoints),
        );
        self.mappings.push(mapping.status());
        let token = shutdown.clone();
        let name = name.to_owned();
        self.tasks.spawn(async move { mapping.run(token).await.with_context(|| format!("mapping {name} failed")) });
    }

    /// Publishes every mapping's status as the `sluice_esm_*{mapping}` catalog entries once a
    /// second (the runner keeps plain atomics; the registry is the one place metrics are
    /// rendered): its monotonic totals as counters, its iterator age as a gauge.
    fn add_mapping_metrics(&mut self, metrics: &Metrics, shutdown: &CancellationToken) {
        let statuses = self.mappings.clone();
        let metrics = metrics.clone();
        let token = shutdown.clone();
        self.tasks.spawn(async move {
            loop {
                for status in &statuses {
                    let s = status.snapshot();
                    let mapping = [s.name.as_str()];
                    metrics.counter(&catalog::ESM_BATCHES, mapping).raise_to(s.batches);
                    metrics.counter(&catalog::ESM_RECORDS, mapping).raise_to(s.records);
                    metrics.counter(&catalog::ESM_FAILURES, mapping).raise_to(s.failures);
                    metrics.counter(&catalog::ESM_RETRIES, mapping).raise_to(s.retries);
                    metrics.counter(&catalog::ESM_FAILURE_DESTINATION_RECORDS, mapping).raise_to(s.discarded_records);
                    metrics
                        .gauge(&catalog::ESM_ITERATOR_AGE_MS, mapping)
                        .set(i64::try_from(s.iterator_age_ms).unwrap_or(i64::MAX));
                }
                tokio::select! {
                    () = token.cancelled() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }

    /// Compacts the lake's closed partitions every `every`, the first time one period after the
    /// start, by running the compaction state machine (`crate::compact::run_state_machine`). A
    /// failed run is logged and retried at the next period (nothing is lost: see
    /// `sluice_jobs::compaction`; the failure is in the jobs dead letters).
    fn add_compactor(
        &mut self,
        lake: Lake,
        compactor: Compactor,
        data_dir: PathBuf,
        every: Duration,
        shutdown: &CancellationToken,
    ) {
        let token = shutdown.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = token.cancelled() => return Ok(()),
                    () = tokio::time::sleep(every) => {}
                }
                let started = std::time::Instant::now();
                let request = sluice_jobs::orchestration::tasks::CompactionRequest::default();
                let run = crate::compact::run_state_machine(
                    &lake,
                    compactor.clone(),
                    &data_dir,
                    &request,
                    move |outcome, done, total| {
                        crate::compact::log_partition(outcome, done, total, started);
                    },
                );
                let Some(run) = token.run_until_cancelled(run).await else { return Ok(()) };
                if let Ok(run) = &run {
                    run.remove_plan(&lake).await;
                }
                match run.and_then(|run| run.check().map(|()| run.report)) {
                    Ok(report) if report.partitions.is_empty() => {}
                    Ok(report) => crate::compact::log_report(&report, started),
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "lake compaction failed; retried next period")
                    }
                }
            }
        });
    }

    /// Backfills the previous UTC day's aggregates from the lake every day at `at` (UTC), by
    /// running the backfill state machine ([`crate::backfill::run_state_machine`]). A failed run is
    /// logged; the next day's run is a new range (a failed day is re-run with `sluice backfill`,
    /// which resumes it).
    fn add_backfiller(
        &mut self,
        lake: Lake,
        backfiller: Arc<Backfiller<SqliteAggregateStore>>,
        data_dir: PathBuf,
        at: chrono::NaiveTime,
        shutdown: &CancellationToken,
    ) {
        let token = shutdown.clone();
        self.tasks.spawn(async move {
            loop {
                let wait = until_next(chrono::Utc::now(), at);
                tokio::select! {
                    () = token.cancelled() => return Ok(()),
                    () = tokio::time::sleep(wait) => {}
                }
                let started = std::time::Instant::now();
                let request = BackfillExecutionRequest::default();
                let run = crate::backfill::run_state_machine(
                    &lake,
                    Arc::clone(&backfiller),
                    &data_dir,
                    &request,
                    move |item, done, total| {
                        crate::backfill::log_item(item, done, total, started);
                    },
                );
                let Some(run) = token.run_until_cancelled(run).await else { return Ok(()) };
                if let Ok(run) = &run {
                    run.remove_plan(&lake).await;
                }
                match run.and_then(|run| run.check().map(|()| run)) {
                    Ok(run) => crate::backfill::log_report(&run.report, started),
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "backfill failed; rerun the day with sluice backfill")
                    }
                }
            }
        });
    }

    /// Trims records past retention every [`TRIM_INTERVAL`].
    fn add_trimmer(&mut self, stream: LocalStream, shutdown: &CancellationToken) {
        let token = shutdown.clone();
        self.tasks.spawn(async move {
            loop {
                match stream.trim_expired_async(chrono::Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(trimmed = n, "trimmed expired stream records"),
                    Err(e) => tracing::warn!(error = %e, "stream trim failed"),
                }
                tokio::select! {
                    () = token.cancelled() => return Ok(()),
                    () = tokio::time::sleep(TRIM_INTERVAL) => {}
                }
            }
        });
    }
}

struct StreamProbe(LocalStream);

impl HealthProbe for StreamProbe {
    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(async move {
            match self.0.health_async().await {
                Ok(()) => ComponentHealth::ok(json!({"kind": "local", "shards": self.0.shards().len()})),
                Err(e) => ComponentHealth::down(e.to_string()),
            }
        })
    }
}

struct MappingsProbe(Vec<Arc<MappingStatus>>);

impl HealthProbe for MappingsProbe {
    fn check(&self) -> ProbeFuture<'_> {
        let snapshots: Vec<_> = self.0.iter().map(|m| m.snapshot()).collect();
        let all_ok = self.0.iter().all(|m| m.is_healthy());
        Box::pin(async move {
            let detail = json!({ "mappings": snapshots });
            if all_ok {
                ComponentHealth::ok(detail)
            } else {
                let mut h = ComponentHealth::down("an event source mapping is not running");
                h.detail.insert("mappings".into(), detail["mappings"].clone());
                h
            }
        })
    }
}

/// Runs the pipeline, serving HTTP on `listener`, until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, config: UpConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let local = Local::open(&config)?;
    let registry = Arc::new(load_registry(config.schemas_dir.as_deref())?.with_event_time(config.event_time));
    let metrics = Metrics::new();
    let mut pipeline = Pipeline::new();
    pipeline.add_trimmer(local.stream.clone(), &shutdown);
    let lake = open_local_lake(&config.data_dir)?;
    let aggregates = SqliteAggregateStore::open(&config.data_dir.join("aggregates.db"))
        .context("cannot open the aggregate store")?;
    pipeline.add_mapping(
        &local,
        "aggregator",
        AggregatorHandler::new(
            Arc::clone(&registry),
            aggregates.clone(),
            local.dead_letters.clone(),
            config.windows.clone(),
        )
        .with_metrics(&metrics),
        &shutdown,
    );
    pipeline.add_mapping(
        &local,
        "lake-writer",
        LakeWriter::new(Arc::clone(&registry), lake.clone(), local.dead_letters.clone()).with_metrics(&metrics),
        &shutdown,
    );
    if let Some(every) = config.compact_every {
        let settings =
            CompactionConfig { allowed_lateness: config.windows.allowed_lateness, ..CompactionConfig::default() };
        pipeline.add_compactor(
            lake.clone(),
            Compactor::new(lake.clone(), LakeTables::new(Arc::clone(&registry)), settings),
            config.data_dir.clone(),
            every,
            &shutdown,
        );
    }
    if let Some(at) = config.backfill_at {
        let backfiller =
            Backfiller::new(lake.clone(), Arc::clone(&registry), aggregates.clone(), config.windows.clone());
        pipeline.add_backfiller(lake.clone(), Arc::new(backfiller), config.data_dir.clone(), at, &shutdown);
    }
    let issuer = LocalIssuer::load_or_create(&config.data_dir).context("cannot load the local token issuer key")?;
    let auth = if config.auth {
        Authenticator::jwt(issuer.verifier().context("local issuer key is unusable")?)
    } else {
        Authenticator::disabled()
    };

    pipeline.add_mapping_metrics(&metrics, &shutdown);

    let health = Health::new()
        .with("stream", Arc::new(StreamProbe(local.stream.clone())))
        .with("event_source_mappings", Arc::new(MappingsProbe(pipeline.mappings.clone())));
    let state = AppState::builder(registry, Arc::new(LocalStreamEventLog::new(local.stream.clone())), auth)
        .health(health)
        .metrics(metrics)
        .limits(config.limits)
        .rate_limit(config.rate_limit)
        .jwks(issuer.jwks())
        .aggregates(Arc::new(AggregateStoreReader(aggregates)))
        .build();
    let app = sluice_ingest::app(state);

    // "Up" means running: give the mappings a moment to start before announcing it (a mapping
    // that fails to start is reported by /health).
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while !pipeline.mappings.iter().all(|m| m.is_running()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    let addr = listener.local_addr().context("listener has no address")?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), shards = config.shards, "sluice is up");

    let http_shutdown = shutdown.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move { http_shutdown.cancelled().await });
    let mut http = tokio::spawn(async move { server.await });
    // Biased: the server also ends after a requested shutdown, which must not count as a failure.
    let http_result = tokio::select! {
        biased;
        () = shutdown.cancelled() => None,
        r = &mut http => Some(r),
    };
    if let Some(r) = http_result {
        // The server stopped on its own: an I/O failure. Stop everything else too.
        shutdown.cancel();
        // drain logs every background failure; the HTTP failure is the one to report.
        let _ = drain(pipeline).await;
        r.context("HTTP server task failed")?.context("HTTP server failed")?;
        anyhow::bail!("HTTP server stopped unexpectedly");
    }
    // Graceful: drain HTTP and the mappings concurrently, bounded by the grace period.
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        let (http, background) = tokio::join!(http, drain(pipeline));
        (http, background)
    })
    .await;
    match drained {
        Ok((http, background)) => {
            http.context("HTTP server task failed")?.context("HTTP server failed")?;
            background?;
            tracing::info!("sluice stopped cleanly");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(
                grace_s = SHUTDOWN_GRACE.as_secs(),
                "shutdown grace period over; unfinished batches will be redelivered after restart"
            );
            Ok(())
        }
    }
}

/// Waits for every background task; the first error wins, the rest are logged.
async fn drain(mut pipeline: Pipeline) -> anyhow::Result<()> {
    let mut first = None;
    while let Some(joined) = pipeline.tasks.join_next().await {
        let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = result {
            tracing::error!(error = format!("{e:#}"), "background task failed");
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// How long from `now` until the next `at` (UTC) strictly after it.
pub fn until_next(now: chrono::DateTime<chrono::Utc>, at: chrono::NaiveTime) -> Duration {
    let today = now.date_naive().and_time(at).and_utc();
    let next = if today > now { today } else { today + chrono::TimeDelta::days(1) };
    (next - now).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_daily_run_is_strictly_after_now() {
        let at = chrono::NaiveTime::from_hms_opt(2, 0, 0).unwrap();
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert_eq!(until_next(t("2024-05-02T01:00:00Z"), at), Duration::from_secs(3600));
        assert_eq!(until_next(t("2024-05-02T02:00:00Z"), at), Duration::from_secs(86_400));
        assert_eq!(until_next(t("2024-05-02T02:00:01Z"), at), Duration::from_secs(86_399));
    }

    #[tokio::test]
    async fn the_scheduled_jobs_run_their_state_machines_over_a_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let lake = open_local_lake(dir.path()).unwrap();
        let registry = Arc::new(load_registry(None).unwrap());
        let store = SqliteAggregateStore::open(&dir.path().join("aggregates.db")).unwrap();
        let backfiller = Arc::new(Backfiller::new(lake.clone(), Arc::clone(&registry), store, WindowConfig::default()));
        let request = BackfillExecutionRequest::default();
        let run =
            crate::backfill::run_state_machine(&lake, backfiller, dir.path(), &request, |_, _, _| {}).await.unwrap();
        run.check().unwrap();
        run.remove_plan(&lake).await;
        let plan = run.plan.unwrap();
        assert_eq!(plan.location.count, 0, "an empty lake has nothing to backfill");
        assert_eq!(plan.request.to - plan.request.from, chrono::TimeDelta::days(1), "the previous day");
        assert!(dir.path().join(crate::jobs::JOBS_DEAD_LETTERS).exists());

        let compactor = Compactor::new(lake.clone(), LakeTables::new(registry), CompactionConfig::default());
        let request = sluice_jobs::orchestration::tasks::CompactionRequest::default();
        let run =
            crate::compact::run_state_machine(&lake, compactor, dir.path(), &request, |_, _, _| {}).await.unwrap();
        run.check().unwrap();
        run.remove_plan(&lake).await;
        assert!(lake.list_objects("_sluice/plans").await.unwrap().is_empty(), "the plans are removed");
    }
}
