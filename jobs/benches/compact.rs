//! Compaction benchmark: one closed partition of generated events, written by the lake writer
//! in batches (one file per batch) with a share of producer duplicates, compacted; DuckDB doing
//! the same job on the same files in the same run.
//!
//! Prints files and bytes before and after, the compaction's rows/s and input MB/s per core
//! (CPU time of the one thread that runs it, in a fresh child process, which also reports its
//! peak memory, VmHWM), and DuckDB's rows/s on one thread with the ratio (the two alternate,
//! one DuckDB round before each of ours; best round of each). Goal: at least 1.5x DuckDB's
//! rows/s, with peak memory within the memory budget.
//!
//! `cargo bench -p sluice-jobs --bench compact -- [--events N] [--batch N] [--duplicates F]
//! [--memory-budget BYTES] [--rounds N] [--keep DIR]` (`--keep` leaves a copy of the input lake in
//! DIR, for `--compact-child DIR` under a profiler); `$SLUICE_PYTHON` (default `python3`) runs the DuckDB
//! peer when it has duckdb.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use sluice_jobs::compaction::{CompactionConfig, Compactor};
use sluice_lake::Lake;
use sluice_schemas::{Event, Registry};
use sluice_sinks::{LakeTables, LakeWriter};
use sluice_stream::BatchHandler;
use sluice_testkit::generate::{GenConfig, Generator, kinesis_event, producer_retries, record_bytes};
use sluice_testkit::measure::{memory_bytes as status_bytes, thread_cpu_seconds};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--compact-child") {
        compact_child(Path::new(&args[i + 1]), arg(&args, "--memory-budget", 1u64 << 30));
        return;
    }
    let events: usize = arg(&args, "--events", 1_800_000);
    let batch: usize = arg(&args, "--batch", 1_000);
    let duplicates: f64 = arg(&args, "--duplicates", 0.02);
    let budget: u64 = arg(&args, "--memory-budget", 1 << 30);
    let rounds: usize = arg(&args, "--rounds", 1);

    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("input");
    let started = Instant::now();
    let partition = write_partition(&input, events, batch, duplicates);
    let (files_before, bytes_before) = dir_stats(&input.join(&partition));
    eprintln!(
        "wrote {events} events (+{:.0}% duplicates) as {files_before} files, {:.1} MB, in {:.0} s",
        duplicates * 100.0,
        bytes_before as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    if let Some(i) = args.iter().position(|a| a == "--keep") {
        // Keeps a copy of the input lake (to profile `--compact-child DIR` on it).
        copy_dir(&input, Path::new(&args[i + 1]));
    }
    let python = std::env::var("SLUICE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../loadtest/peers/compact_duckdb.py");
    let out = work.path().join("duckdb.parquet");
    let partition_dir = input.join(&partition);
    // The peer runs one round before each of ours, so both see the same machine over the run.
    let peer_round = || {
        Command::new(&python)
            .arg(&script)
            .args([partition_dir.to_str().unwrap(), out.to_str().unwrap(), "--rounds", "1"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
    };
    let mut ducks: Vec<Value> = Vec::new();

    let mut runs = Vec::new();
    for round in 0..rounds {
        ducks.extend(peer_round());
        let lake = work.path().join(format!("round-{round}"));
        copy_dir(&input, &lake);
        let exe = std::env::current_exe().unwrap();
        let child = Command::new(exe)
            .args(["--compact-child", lake.to_str().unwrap(), "--memory-budget", &budget.to_string()])
            .output()
            .unwrap();
        assert!(child.status.success(), "{}", String::from_utf8_lossy(&child.stderr));
        let mut v: Value = serde_json::from_slice(&child.stdout).unwrap();
        let (files, bytes) = dir_stats(&lake.join(&partition));
        v["files_after"] = json!(files);
        v["bytes_after"] = json!(bytes);
        runs.push(v);
        std::fs::remove_dir_all(&lake).unwrap();
    }
    runs.sort_by(|a, b| b["rows_per_s"].as_f64().partial_cmp(&a["rows_per_s"].as_f64()).unwrap());
    ducks.sort_by(|a, b| b["rows_per_s"].as_f64().partial_cmp(&a["rows_per_s"].as_f64()).unwrap());
    let duck = ducks.first();
    let best = &runs[0];
    let rate = best["rows_per_s"].as_f64().unwrap();
    let peak = best["peak_bytes"].as_f64().unwrap();
    println!(
        "partition {partition}: {files_before} files, {:.1} MB -> {} files, {:.1} MB; {} -> {} rows",
        bytes_before as f64 / 1e6,
        best["files_after"],
        best["bytes_after"].as_f64().unwrap() / 1e6,
        best["rows_in"],
        best["rows_out"]
    );
    println!(
        "  rust (1 thread): {:.0} rows/s per core, {:.1} input MB/s (best of {rounds}: CPU {:.2} s, wall {:.2} s); peak memory {:.0} MB (budget {:.0} MB): {}",
        rate,
        best["input_bytes_per_s"].as_f64().unwrap() / 1e6,
        best["cpu_s"].as_f64().unwrap(),
        best["wall_s"].as_f64().unwrap(),
        peak / 1e6,
        budget as f64 / 1e6,
        if peak <= budget as f64 { "within" } else { "OVER" }
    );
    match duck {
        Some(d) => {
            let duck_rate = d["rows_per_s"].as_f64().unwrap();
            println!(
                "  duckdb (1 thread): {:.0} rows/s ({} -> {} rows, {:.1} MB); rust / duckdb {:.2}x  goal >= 1.5x: {}",
                duck_rate,
                d["rows_in"],
                d["rows_out"],
                d["bytes_out"].as_f64().unwrap() / 1e6,
                rate / duck_rate,
                if rate / duck_rate >= 1.5 { "met" } else { "not met" }
            );
        }
        None => println!("  duckdb: not run ({python} with duckdb is needed)"),
    }
    println!(
        "{}",
        json!({"events": events, "files_before": files_before, "bytes_before": bytes_before, "rust": runs, "duckdb": duck})
    );
}

/// Writes `events` page_view events of one hour through the lake writer, `batch` per delivered
/// batch, plus `duplicates` of them posted again later; returns the partition directory.
fn write_partition(root: &Path, events: usize, batch: usize, duplicates: f64) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    std::fs::create_dir_all(root).unwrap();
    let url = url::Url::from_directory_path(std::fs::canonicalize(root).unwrap()).unwrap();
    let lake = Lake::open(url.as_str(), &Default::default()).unwrap();
    let registry = Arc::new(Registry::builtin().unwrap());
    let writer = LakeWriter::new(registry, lake, sluice_dlq::MemoryDeadLetters::new());
    let start = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    let mut generator = Generator::new(GenConfig {
        mix: [1, 0, 0, 0],
        start,
        events_per_second: events as f64 / 3_500.0,
        late_fraction: 0.0,
        ..GenConfig::default()
    });
    let all: Vec<Event> = generator.take(events);
    let every = if duplicates > 0.0 { (1.0 / duplicates).round() as usize } else { 0 };
    let copies = producer_retries(&all, every, TimeDelta::seconds(30));
    let mut seq = 0u64;
    runtime.block_on(async {
        for chunk in all.chunks(batch).chain(copies.chunks(batch)) {
            let payload = kinesis_event("shardId-000000000000", seq, chunk.iter().map(record_bytes).collect(), start);
            seq += chunk.len() as u64;
            let response = writer.handle(bytes::Bytes::from(serde_json::to_vec(&payload).unwrap())).await.unwrap();
            assert!(response.batch_item_failures.is_empty());
        }
    });
    "events/event_type=page_view/dt=2026-01-01/hour=00".to_owned()
}

/// Child: compacts the lake at `root` on one thread; prints rows, CPU and wall time, peak memory.
fn compact_child(root: &Path, budget: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let url = url::Url::from_directory_path(std::fs::canonicalize(root).unwrap()).unwrap();
    let lake = Lake::open(url.as_str(), &Default::default()).unwrap();
    let tables = LakeTables::new(Arc::new(Registry::builtin().unwrap()));
    let compactor =
        Compactor::new(lake, tables, CompactionConfig { memory_budget: budget, ..CompactionConfig::default() });
    let baseline = status_bytes("VmRSS:");
    let (cpu, wall) = (thread_cpu_seconds(), Instant::now());
    let far = DateTime::<Utc>::from_timestamp(4_000_000_000, 0).unwrap();
    let report = runtime.block_on(compactor.run(None, far, |_, _, _| {})).unwrap();
    let (cpu, wall) = (thread_cpu_seconds() - cpu, wall.elapsed().as_secs_f64());
    let p = &report.partitions[0];
    println!(
        "{}",
        json!({
            "rows_in": p.rows_in, "rows_out": p.rows_out, "cpu_s": cpu, "wall_s": wall,
            "rows_per_s": p.rows_in as f64 / cpu, "input_bytes_per_s": p.bytes_in as f64 / cpu,
            "peak_bytes": status_bytes("VmHWM:") - baseline, "spilled_runs": p.spilled_runs,
        })
    );
}

fn dir_stats(dir: &Path) -> (usize, u64) {
    let files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    (files.len(), files.iter().map(|e| e.metadata().unwrap().len()).sum())
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp").arg("-r").arg(from).arg(to).status().unwrap();
    assert!(ok.success());
}
