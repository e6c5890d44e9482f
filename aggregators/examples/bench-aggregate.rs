//! Benchmark (not a test): decode + validate + aggregate of ~6 MB Kinesis-shaped batches, peak
//! memory per batch, and the same work by a typical
//! Python Lambda and by DuckDB on the same files.
//!
//! `cargo run --release -p sluice-aggregators --example bench-aggregate [-- --batches 8 --no-peers]`
//!
//! The DynamoDB write cost is reported by `--example bench-wru`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use aws_lambda_events::event::kinesis::KinesisEvent;
use base64::Engine as _;
use generate::{GenConfig, Generator, kinesis_batch};
use serde::Deserialize;
use sluice_aggregators::decode::Decoder;
use sluice_aggregators::{BatchAggregator, SeqNo, WindowConfig};
use sluice_schemas::Registry;

#[path = "../../loadtest/src/generate.rs"]
#[allow(dead_code)]
mod generate;

const BATCH_BYTES: usize = 6_000_000;

#[derive(Deserialize)]
struct LeanBatch<'a> {
    #[serde(borrow, rename = "Records")]
    records: Vec<LeanRecord<'a>>,
}
#[derive(Deserialize)]
struct LeanRecord<'a> {
    #[serde(borrow)]
    kinesis: LeanKinesis<'a>,
}
#[derive(Deserialize)]
struct LeanKinesis<'a> {
    #[serde(borrow)]
    data: &'a str,
    #[serde(borrow, rename = "sequenceNumber")]
    sequence_number: &'a str,
}

fn proc_status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Full handler work from the raw payload: Kinesis JSON (with base64) -> events -> deltas.
fn from_json(decoder: &Decoder, config: &WindowConfig, json: &[u8]) -> anyhow::Result<usize> {
    let event: KinesisEvent = serde_json::from_slice(json)?;
    from_parsed(decoder, config, &event)
}

/// The work after the Lambda runtime has parsed the payload.
fn from_parsed(decoder: &Decoder, config: &WindowConfig, event: &KinesisEvent) -> anyhow::Result<usize> {
    let mut agg = BatchAggregator::new(config.clone());
    for r in &event.records {
        let seq: SeqNo = r.kinesis.sequence_number.parse()?;
        if let Ok((c, _)) = decoder.decode(&r.kinesis.data) {
            agg.add(seq, &c);
        }
    }
    let n = agg.len();
    let delta = agg.finish();
    std::hint::black_box(&delta);
    Ok(n)
}

/// Borrowed envelope parse + base64 into a reused buffer + decode + aggregate.
fn lean(decoder: &Decoder, config: &WindowConfig, json: &[u8]) -> anyhow::Result<usize> {
    let batch: LeanBatch<'_> = serde_json::from_str(std::str::from_utf8(json)?)?;
    let mut agg = BatchAggregator::new(config.clone());
    let mut buf = Vec::with_capacity(2048);
    for r in &batch.records {
        buf.clear();
        base64::engine::general_purpose::STANDARD.decode_vec(r.kinesis.data, &mut buf)?;
        let seq: SeqNo = r.kinesis.sequence_number.parse()?;
        if let Ok((c, _)) = decoder.decode(&buf) {
            agg.add(seq, &c);
        }
    }
    let n = agg.len();
    std::hint::black_box(agg.finish());
    Ok(n)
}

/// Ceiling: Kinesis JSON + base64 + parse of each payload into a borrowed envelope, no checks.
fn ceiling(json: &[u8]) -> anyhow::Result<usize> {
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Env<'a> {
        #[serde(borrow)]
        event_type: &'a str,
        #[serde(borrow)]
        data: &'a serde_json::value::RawValue,
    }
    let batch: LeanBatch<'_> = serde_json::from_str(std::str::from_utf8(json)?)?;
    let mut buf = Vec::with_capacity(2048);
    let mut n = 0;
    for r in &batch.records {
        buf.clear();
        base64::engine::general_purpose::STANDARD.decode_vec(r.kinesis.data, &mut buf)?;
        let e: Env<'_> = serde_json::from_str(std::str::from_utf8(&buf)?)?;
        std::hint::black_box(&e);
        n += 1;
    }
    Ok(n)
}

/// CPU time this thread has run (ns), from /proc/thread-self/schedstat: unaffected by other
/// processes competing for the cores. Falls back to wall time where unavailable.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

/// Best of `runs` rates, in events per CPU-second (= per core).
fn best_rate(events: usize, runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..runs {
        let (t, c) = (Instant::now(), cpu_ns());
        f()?;
        let secs = match (c, cpu_ns()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
            _ => t.elapsed().as_secs_f64(),
        };
        best = best.min(secs);
    }
    Ok(events as f64 / best)
}

fn python() -> String {
    for p in [".venv/bin/python", "../.venv/bin/python"] {
        if std::path::Path::new(p).exists() {
            return p.to_owned();
        }
    }
    "python3".to_owned()
}

fn peer(script: &str, files: &[PathBuf]) -> anyhow::Result<serde_json::Value> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../loadtest/peers").join(script);
    let out = Command::new(python()).arg(&root).args(files).output().with_context(|| format!("running {script}"))?;
    anyhow::ensure!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(out.stdout.trim_ascii())?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    if let Some(file) = args.iter().position(|a| a == "--measure-batch").and_then(|i| args.get(i + 1)) {
        // Child process: peak memory of processing one batch from its JSON payload.
        let json = std::fs::read(file)?;
        let registry = Arc::new(Registry::builtin()?);
        let decoder = Decoder::new(Arc::clone(&registry));
        let config = WindowConfig::default();
        lean(&decoder, &config, &json[..json.len().min(2)]).ok(); // warm code paths, no data
        let before = proc_status("VmRSS:");
        reset_peak();
        let full = from_json(&decoder, &config, &json)?;
        let full_kb = proc_status("VmHWM:").saturating_sub(before);
        println!("{full_kb} {full}");
        return Ok(());
    }
    let n_batches = arg("--batches", 8);
    let peers = !args.iter().any(|a| a == "--no-peers");

    let registry = Arc::new(Registry::builtin()?);
    let decoder = Decoder::new(Arc::clone(&registry));
    let config = WindowConfig::default();

    // Data: ~6 MB Kinesis-shaped batches of the default mix, written for the peers.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-aggregate");
    std::fs::create_dir_all(&dir)?;
    let mut generator = Generator::new(GenConfig::default());
    let mut files = Vec::new();
    let mut jsons = Vec::new();
    let mut parsed = Vec::new();
    let mut events = 0usize;
    let mut seq = 0u64;
    for i in 0..n_batches {
        let (batch, evs) = kinesis_batch(&mut generator, "shardId-000000000000", seq, BATCH_BYTES);
        seq += evs.len() as u64;
        events += evs.len();
        let json = serde_json::to_vec(&batch)?;
        let path = dir.join(format!("batch-{i:02}.json"));
        std::fs::write(&path, &json)?;
        files.push(path);
        jsons.push(json);
        parsed.push(batch);
    }
    let mb = jsons.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    println!(
        "data: {n_batches} batches, {events} events, {mb:.1} MB ({:.0} records/batch, {:.2} MB/batch) in {}",
        events as f64 / n_batches as f64,
        mb / n_batches as f64,
        dir.display()
    );

    if args.iter().any(|a| a == "--profile-lean") {
        for _ in 0..10 {
            for j in &jsons {
                lean(&decoder, &config, j)?;
            }
        }
        return Ok(());
    }

    // Peak memory per batch (full path from the JSON payload), each in a fresh process.
    let mut peak_kb = 0u64;
    for f in files.iter().take(3) {
        let out = Command::new(std::env::current_exe()?).arg("--measure-batch").arg(f).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let kb: u64 = text.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
        peak_kb = peak_kb.max(kb);
    }

    let runs = 3;
    let r_ceiling = best_rate(events, runs, || {
        for j in &jsons {
            ceiling(j)?;
        }
        Ok(())
    })?;
    let r_json = best_rate(events, runs, || {
        for j in &jsons {
            from_json(&decoder, &config, j)?;
        }
        Ok(())
    })?;
    let r_parsed = best_rate(events, runs, || {
        for p in &parsed {
            from_parsed(&decoder, &config, p)?;
        }
        Ok(())
    })?;
    let r_lean = best_rate(events, runs, || {
        for j in &jsons {
            lean(&decoder, &config, j)?;
        }
        Ok(())
    })?;

    println!();
    println!("| path (1 core; events per CPU-second) | events/s |");
    println!("|---|---:|");
    println!("| ceiling: Kinesis JSON + base64 + envelope parse, no validation | {r_ceiling:.0} |");
    println!("| sluice, lean: borrowed Kinesis JSON + base64 + decode/validate + aggregate | {r_lean:.0} |");
    println!("| sluice, handler input: from parsed KinesisEvent (Lambda runtime parsed it) | {r_parsed:.0} |");
    println!(
        "| sluice, full: KinesisEvent JSON parse (aws_lambda_events) + decode/validate + aggregate | {r_json:.0} |"
    );
    println!(
        "peak memory per ~6 MB batch (fresh process, VmHWM above RSS before; full path incl. the 6 MB input parse): {:.1} MB",
        peak_kb as f64 / 1024.0
    );

    if peers {
        let py = peer("aggregate_python_lambda.py", &files)?;
        let duck = peer("aggregate_duckdb.py", &files)?;
        let py_rate = py["events_per_sec"].as_f64().unwrap_or(f64::NAN);
        let duck_rate = duck["events_per_sec"].as_f64().unwrap_or(f64::NAN);
        println!();
        println!(
            "| peer (same files, 1 core) | events/s | sluice full / peer | sluice handler input / peer | sluice lean / peer |"
        );
        println!("|---|---:|---:|---:|---:|");
        for (name, rate) in
            [("Python Lambda (json per record + dicts)", py_rate), ("DuckDB (threads=1, SQL)", duck_rate)]
        {
            println!(
                "| {name} | {rate:.0} | {:.1}x | {:.1}x | {:.1}x |",
                r_json / rate,
                r_parsed / rate,
                r_lean / rate
            );
        }
        println!("python: {py}");
        println!("duckdb: {duck}");
    }

    Ok(())
}
