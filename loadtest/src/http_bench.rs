//! Ingest HTTP benchmark (`cargo run --release -p sluice-loadtest --bin ingest-bench`): the
//! ingest Router on 127.0.0.1 over the durable local stream (temp dir), auth on (a local-issuer
//! token), fed 100-event batches over loopback.
//!
//! - The server runs on its own Tokio runtime with ONE worker thread (its SQLite writes run on
//!   that runtime's blocking pool); its threads are named [`SERVER_THREAD`] so their CPU time can
//!   be read from `/proc/self/task/*/stat` and events/s be reported per server CPU-second.
//! - Full rate: a closed loop, `connections` clients posting back to back.
//! - Half rate: an open loop at half the full-rate throughput; each request is sent at its
//!   scheduled time whether or not earlier ones finished, and latency is measured from the
//!   scheduled time (no coordinated omission).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use sluice_esm::{LocalStream, LocalStreamConfig};
use sluice_ingest::auth::LocalIssuer;
use sluice_ingest::{AppState, Authenticator, LocalStreamEventLog, SCOPE_EVENTS_WRITE};
use sluice_schemas::Registry;

/// Name of every server runtime thread (worker and blocking pool).
pub const SERVER_THREAD: &str = "ingest-server";

/// Benchmark parameters.
#[derive(Debug, Clone, Copy)]
pub struct BenchConfig {
    /// Events per request.
    pub batch: usize,
    /// Length of each phase.
    pub duration: Duration,
    /// Concurrent connections of the closed loop.
    pub connections: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self { batch: 100, duration: Duration::from_secs(10), connections: 16 }
    }
}

/// One phase's figures.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    /// `full rate (closed loop)` or `half rate (open loop)`.
    pub name: String,
    /// Requests that answered 202.
    pub ok_requests: u64,
    /// Requests that answered anything else (or failed).
    pub failed_requests: u64,
    /// Events accepted.
    pub events: u64,
    /// Wall time of the phase.
    pub wall: Duration,
    /// Server CPU time (all server threads) during the phase.
    pub server_cpu: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Worst latency.
    pub max: Duration,
}

impl PhaseReport {
    /// Events accepted per wall-clock second.
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Events accepted per second of server CPU (one core fully busy = this many events/s).
    pub fn events_per_cpu_sec(&self) -> f64 {
        self.events as f64 / self.server_cpu.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for PhaseReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "{}: {} events accepted in {:.1} s = {:.0} events/s; server CPU {:.2} s = {:.0} events per server CPU-second; \
             latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} requests ok, {} failed",
            self.name,
            self.events,
            self.wall.as_secs_f64(),
            self.events_per_sec(),
            self.server_cpu.as_secs_f64(),
            self.events_per_cpu_sec(),
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.ok_requests,
            self.failed_requests
        )
    }
}

/// A running server.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A valid token with the write scope.
    pub token: String,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

/// Starts the Router on 127.0.0.1 (ephemeral port) on a one-worker runtime, over a local stream
/// in a temp dir, auth on, no rate limit.
pub fn start_server() -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let stream = LocalStream::open(&dir.path().join("stream.db"), LocalStreamConfig::default())?;
    let issuer = LocalIssuer::load_or_create(dir.path())?;
    let token = issuer.mint("bench", &[SCOPE_EVENTS_WRITE], Duration::from_secs(3600))?;
    let state = AppState::builder(
        Arc::new(Registry::builtin()?),
        Arc::new(LocalStreamEventLog::new(stream)),
        Authenticator::jwt(issuer.verifier()?),
    )
    .jwks(issuer.jwks())
    .rate_limit(None)
    .build();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    runtime.spawn(async move {
        if let Err(e) = axum::serve(listener, sluice_ingest::app(state)).await {
            eprintln!("server stopped: {e}");
        }
    });
    Ok(Server { addr, token, _dir: dir, _runtime: runtime })
}

/// CPU time of every thread named [`SERVER_THREAD`] (Linux `/proc`; zero elsewhere).
pub fn server_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Duration::ZERO };
    let mut ticks: u64 = 0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        // pid (comm) state ... ; comm may contain spaces, so split after the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        if !stat[open + 1..close].starts_with(&SERVER_THREAD[..15.min(SERVER_THREAD.len())]) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // After ") ": state is field 3; utime and stime are fields 14 and 15 (1-based).
        let utime = fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let stime = fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        ticks += utime + stime;
    }
    Duration::from_millis(ticks * 10) // USER_HZ = 100 on Linux
}

/// `n` distinct request bodies of `batch` valid page_view events each.
pub fn bodies(n: usize, batch: usize) -> Vec<Bytes> {
    let now = chrono::Utc::now();
    (0..n)
        .map(|_| {
            let events: Vec<serde_json::Value> = (0..batch)
                .map(|i| {
                    let device = ["ios", "android", "web", "tv"][i % 4];
                    let country = ["DE", "US", "FR", "JP"][i % 4];
                    json!({
                        "event_id": uuid::Uuid::new_v4().to_string(),
                        "event_type": "page_view",
                        "occurred_at": (now - chrono::TimeDelta::milliseconds(i as i64)).to_rfc3339(),
                        "data": {
                            "user_id": format!("u-{}", i % 997),
                            "session_id": format!("s-{i}"),
                            "page": "/pricing",
                            "device": device,
                            "country": country,
                            "duration_ms": 1234.5 + i as f64,
                        }
                    })
                })
                .collect();
            Bytes::from(serde_json::to_vec(&events).unwrap_or_default())
        })
        .collect()
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn post(client: &HttpClient, url: &http::Uri, token: &str, body: Bytes) -> bool {
    let Ok(request) = http::Request::post(url.clone())
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(body))
    else {
        return false;
    };
    match client.request(request).await {
        Ok(response) => {
            let ok = response.status() == http::StatusCode::ACCEPTED;
            let _ = response.into_body().collect().await;
            ok
        }
        Err(_) => false,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(
    name: String,
    mut lat: Vec<Duration>,
    ok: u64,
    failed: u64,
    batch: usize,
    wall: Duration,
    cpu: Duration,
) -> PhaseReport {
    lat.sort();
    PhaseReport {
        name,
        ok_requests: ok,
        failed_requests: failed,
        events: ok * batch as u64,
        wall,
        server_cpu: cpu,
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        max: lat.last().copied().unwrap_or_default(),
    }
}

/// Closed loop: `connections` workers posting back to back for `duration`.
pub async fn full_rate(server: &Server, config: BenchConfig, bodies: Arc<Vec<Bytes>>) -> PhaseReport {
    let client: HttpClient =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(config.connections).build_http();
    let url: http::Uri = format!("http://{}/v1/events", server.addr).parse().unwrap_or_default();
    let cpu0 = server_cpu();
    let start = Instant::now();
    let end = start + config.duration;
    let mut workers = Vec::new();
    for w in 0..config.connections {
        let (client, url, token, bodies) = (client.clone(), url.clone(), server.token.clone(), bodies.clone());
        workers.push(tokio::spawn(async move {
            let (mut lat, mut ok, mut failed) = (Vec::new(), 0u64, 0u64);
            let mut i = w;
            while Instant::now() < end {
                let Some(body) = bodies.get(i % bodies.len().max(1)).cloned() else { break };
                i += config.connections;
                let t = Instant::now();
                if post(&client, &url, &token, body).await {
                    ok += 1;
                } else {
                    failed += 1;
                }
                lat.push(t.elapsed());
            }
            (lat, ok, failed)
        }));
    }
    let (mut lat, mut ok, mut failed) = (Vec::new(), 0, 0);
    for w in workers {
        if let Ok((l, o, f)) = w.await {
            lat.extend(l);
            ok += o;
            failed += f;
        }
    }
    let wall = start.elapsed();
    let cpu = server_cpu().saturating_sub(cpu0);
    report(
        format!("full rate (closed loop, {} connections)", config.connections),
        lat,
        ok,
        failed,
        config.batch,
        wall,
        cpu,
    )
}

/// Open loop at `events_per_sec` for `duration`.
pub async fn open_loop(
    server: &Server,
    config: BenchConfig,
    bodies: Arc<Vec<Bytes>>,
    events_per_sec: f64,
) -> PhaseReport {
    let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build_http();
    let url: http::Uri = format!("http://{}/v1/events", server.addr).parse().unwrap_or_default();
    let requests_per_sec = (events_per_sec / config.batch as f64).max(1.0);
    let interval = Duration::from_secs_f64(1.0 / requests_per_sec);
    let total = (config.duration.as_secs_f64() * requests_per_sec) as usize;
    let cpu0 = server_cpu();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let Some(body) = bodies.get(i % bodies.len().max(1)).cloned() else { break };
        let (client, url, token) = (client.clone(), url.clone(), server.token.clone());
        tasks.push(tokio::spawn(async move {
            let ok = post(&client, &url, &token, body).await;
            (scheduled.elapsed(), ok)
        }));
    }
    let (mut lat, mut ok, mut failed) = (Vec::with_capacity(total), 0, 0);
    for t in tasks {
        if let Ok((l, o)) = t.await {
            lat.push(l);
            if o { ok += 1 } else { failed += 1 }
        }
    }
    let wall = start.elapsed();
    let cpu = server_cpu().saturating_sub(cpu0);
    report(
        format!("half rate (open loop, target {events_per_sec:.0} events/s)"),
        lat,
        ok,
        failed,
        config.batch,
        wall,
        cpu,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
    }

    #[test]
    fn bodies_are_valid_batches() {
        let registry = Registry::builtin().unwrap();
        let ctx = sluice_schemas::IngestContext::new("p", chrono::Utc::now());
        let b = bodies(2, 100);
        assert_ne!(b[0], b[1]);
        let events: Vec<serde_json::Value> = serde_json::from_slice(&b[0]).unwrap();
        assert_eq!(events.len(), 100);
        for e in &events {
            registry.validate(e, &ctx).unwrap();
        }
    }
}
