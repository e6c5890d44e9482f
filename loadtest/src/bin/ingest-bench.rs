//! `cargo run --release -p sluice-loadtest --bin ingest-bench [-- --seconds N --connections N]`
//!
//! Starts the ingest Router on 127.0.0.1 (one worker thread, local stream in a temp dir, auth
//! on), then measures events/s and latency with 100-event batches: at full rate (closed loop)
//! at half that rate (open loop), and at half the goal rate (open loop, `--goal` events/s per
//! core, default 100,000, so 50,000 events/s). See `sluice_loadtest::http_bench`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sluice_loadtest::http_bench::{self, BenchConfig};

fn main() -> anyhow::Result<()> {
    let mut config = BenchConfig::default();
    let mut goal = 100_000.0_f64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--seconds" => config.duration = Duration::from_secs(value.parse()?),
            "--connections" => config.connections = value.parse()?,
            "--batch" => config.batch = value.parse()?,
            "--goal" => goal = value.parse()?,
            other => anyhow::bail!("unknown flag {other} (use --seconds, --connections, --batch, --goal)"),
        }
    }
    let server = http_bench::start_server()?;
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    let bodies = Arc::new(http_bench::bodies(512, config.batch));
    println!(
        "ingest-bench: {} events per request, server on 1 worker thread at http://{}, local stream (4 shards, temp dir), auth on (ES256 local issuer)",
        config.batch, server.addr
    );
    client.block_on(async {
        // Warm up (connections, SQLite pages, token cache).
        let warm = BenchConfig { duration: Duration::from_secs(1), ..config };
        let _ = http_bench::full_rate(&server, warm, bodies.clone()).await;
        let full = http_bench::full_rate(&server, config, bodies.clone()).await;
        println!("{full}");
        let half = http_bench::open_loop(&server, config, bodies.clone(), full.events_per_sec() / 2.0).await;
        println!("{half}");
        let at_goal = http_bench::open_loop(&server, config, bodies.clone(), goal / 2.0).await;
        println!("{at_goal}");
    });
    Ok(())
}
