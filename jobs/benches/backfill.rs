//! Backfill benchmark: one hour partition of generated page_view events from several shards,
//! written by the lake writer (one file per delivered batch, a progress marker per shard) and
//! applied by the aggregator to a SQLite aggregate store, with a share of producer duplicates
//! the stream over-counts; then one backfill of the hour makes every window exact. DuckDB's
//! GROUP BY over the same files, deduplicated the same way, runs in the same run.
//!
//! Prints the windows recomputed per second, the rows read per second per core (CPU time of the
//! whole child process that runs the backfill on a current-thread runtime: SQLite and file reads
//! run on its blocking threads), wall time, peak memory (VmHWM) and the partials written; checks
//! that the store then counts each distinct event once; and DuckDB's rows/s on one thread with
//! the ratio (the two alternate, one DuckDB round before each of ours; best round of each).
//! Goal: at least 2x DuckDB's rows/s.
//!
//! `cargo bench -p sluice-jobs --bench backfill -- [--events N] [--batch N] [--shards N]
//! [--duplicates F] [--compacted] [--rounds N] [--keep DIR]` (`--compacted` compacts the
//! partition first, as the hourly compaction does before a nightly backfill; `--keep` leaves a
//! copy of the lake and store in DIR, for `--backfill-child DIR` under a profiler);
//! `$SLUICE_PYTHON` (default `python3`) runs the DuckDB peer when it has duckdb.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::{Schema, SchemaRef};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use sluice_aggregators::store::scan;
use sluice_aggregators::{AggregatorHandler, SqliteAggregateStore, WindowConfig};
use sluice_dlq::MemoryDeadLetters;
use sluice_jobs::backfill::{BackfillRequest, Backfiller, ShardAggregates, rows};
use sluice_jobs::compaction::rows::{conform, output_order};
use sluice_jobs::compaction::{CompactionConfig, Compactor};
use sluice_lake::Lake;
use sluice_lake::layout::Partition;
use sluice_schemas::{Event, Registry};
use sluice_sinks::{LakeTables, LakeWriter};
use sluice_stream::BatchHandler;
use sluice_testkit::generate::{GenConfig, Generator, kinesis_event, producer_retries, record_bytes};
use sluice_testkit::measure::{memory_bytes as status_bytes, thread_cpu_seconds};

const PARTITION: &str = "events/event_type=page_view/dt=2026-01-01/hour=00";
/// 2026-01-01T00:00:00Z, the hour generated.
const HOUR_START: i64 = 1_767_225_600;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--backfill-child") {
        backfill_child(Path::new(&args[i + 1]));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--recompute-child") {
        recompute_child(Path::new(&args[i + 1]));
        return;
    }
    let events: usize = arg(&args, "--events", 1_800_000);
    let batch: usize = arg(&args, "--batch", 1_000);
    let shards: usize = arg(&args, "--shards", 4);
    let duplicates: f64 = arg(&args, "--duplicates", 0.02);
    let rounds: usize = arg(&args, "--rounds", 1);
    let compacted = args.iter().any(|a| a == "--compacted");

    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let started = Instant::now();
    let copies = fill(&state, events, batch, shards, duplicates);
    if compacted {
        compact(&state.join("lake"));
    }
    let (files, bytes) = dir_stats(&state.join("lake").join(PARTITION));
    let (stream_1h, stream_1m) = totals(&state);
    eprintln!(
        "wrote {events} events (+{copies} duplicates) from {shards} shards as {files} files, {:.1} MB{}, and applied them to the aggregate store, in {:.0} s",
        bytes as f64 / 1e6,
        if compacted { " (compacted)" } else { "" },
        started.elapsed().as_secs_f64()
    );
    assert_eq!(stream_1h, (events + copies) as u64, "the stream counts every delivered copy");

    if let Some(i) = args.iter().position(|a| a == "--keep") {
        // Keeps a copy of the lake and the store (to profile `--backfill-child DIR` on it).
        copy_dir(&state, Path::new(&args[i + 1]));
    }
    let python = std::env::var("SLUICE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../loadtest/peers/backfill_duckdb.py");
    let partition_dir = state.join("lake").join(PARTITION);
    // The peer runs one round before each of ours, so both see the same machine over the run.
    let peer_round = || {
        Command::new(&python)
            .arg(&script)
            .args([partition_dir.to_str().unwrap(), "--rounds", "1"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
    };
    let mut ducks: Vec<Value> = Vec::new();

    let mut runs = Vec::new();
    for round in 0..rounds {
        ducks.extend(peer_round());
        let dir = work.path().join(format!("round-{round}"));
        copy_dir(&state, &dir);
        let exe = std::env::current_exe().unwrap();
        let child = Command::new(exe).args(["--backfill-child", dir.to_str().unwrap()]).output().unwrap();
        assert!(child.status.success(), "{}", String::from_utf8_lossy(&child.stderr));
        let mut v: Value = serde_json::from_slice(&child.stdout).unwrap();
        let exe = std::env::current_exe().unwrap();
        let recompute = Command::new(exe).args(["--recompute-child", dir.to_str().unwrap()]).output().unwrap();
        assert!(recompute.status.success(), "{}", String::from_utf8_lossy(&recompute.stderr));
        v["recompute"] = serde_json::from_slice(&recompute.stdout).unwrap();
        let (exact_1h, exact_1m) = totals(&dir);
        assert_eq!((exact_1h, exact_1m), (events as u64, events as u64), "the backfill counts each event once");
        v["count_1h_after"] = json!(exact_1h);
        v["count_1m_after"] = json!(exact_1m);
        runs.push(v);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    runs.sort_by(|a, b| b["rows_per_s"].as_f64().partial_cmp(&a["rows_per_s"].as_f64()).unwrap());
    ducks.sort_by(|a, b| b["rows_per_s"].as_f64().partial_cmp(&a["rows_per_s"].as_f64()).unwrap());
    let duck = ducks.first();
    let best = &runs[0];
    let rate = best["rows_per_s"].as_f64().unwrap();
    let f = |k: &str| best[k].as_f64().unwrap();
    println!(
        "partition {PARTITION}: {files} files, {:.1} MB, {} rows ({} duplicates) from {shards} shards; store counted {stream_1h} (1h) and {stream_1m} (1m), after the backfill {} and {}: exact",
        bytes as f64 / 1e6,
        best["rows"],
        best["duplicates"],
        best["count_1h_after"],
        best["count_1m_after"]
    );
    println!(
        "  rust (1 thread): {} windows ({} window x shard) recomputed, {:.1} windows/s, {:.1} window x shard/s per core; {:.0} rows/s per core (best of {rounds}: CPU {:.2} s, of it {:.2} s on the runtime thread, wall {:.2} s); {} partials written, {} unchanged; peak memory {:.0} MB",
        best["windows"],
        best["shard_windows"],
        f("windows") / f("cpu_s"),
        f("shard_windows") / f("cpu_s"),
        rate,
        f("cpu_s"),
        f("thread_cpu_s"),
        f("wall_s"),
        best["written"],
        best["unchanged"],
        f("peak_bytes") / 1e6
    );
    let recompute = runs
        .iter()
        .map(|r| r["recompute"].clone())
        .max_by(|a, b| a["rows_per_s"].as_f64().partial_cmp(&b["rows_per_s"].as_f64()).unwrap());
    let recompute = recompute.unwrap();
    let recompute_rate = recompute["rows_per_s"].as_f64().unwrap();
    println!(
        "  of it, the recompute alone (read, dedupe, aggregate; no store): {recompute_rate:.0} rows/s per core (CPU {:.2} s, wall {:.2} s)",
        recompute["cpu_s"].as_f64().unwrap(),
        recompute["wall_s"].as_f64().unwrap()
    );
    match duck {
        Some(d) => {
            let duck_rate = d["rows_per_s"].as_f64().unwrap();
            println!(
                "  duckdb (1 thread): {:.0} rows/s ({} rows, {} unique, {} groups; {:.2} s); rust / duckdb {:.2}x (recompute alone {:.2}x)  goal >= 2x: {}",
                duck_rate,
                d["rows_in"],
                d["rows_unique"],
                d["groups"],
                d["seconds"].as_f64().unwrap(),
                rate / duck_rate,
                recompute_rate / duck_rate,
                if rate / duck_rate >= 2.0 { "met" } else { "not met" }
            );
        }
        None => println!("  duckdb: not run ({python} with duckdb is needed)"),
    }
    println!(
        "{}",
        json!({
            "events": events, "duplicates": copies, "shards": shards, "compacted": compacted,
            "files": files, "bytes": bytes, "stream_count_1h": stream_1h, "rust": runs, "duckdb": duck,
        })
    );
}

fn open_lake(root: &Path) -> Lake {
    let url = url::Url::from_directory_path(std::fs::canonicalize(root).unwrap()).unwrap();
    Lake::open(url.as_str(), &Default::default()).unwrap()
}

/// Generates `events` page_view events of one hour and delivers them in batches of `batch`,
/// round-robin over `shards`, plus every `1 / duplicates`-th event again 30 s later (a producer
/// retry, mostly on another shard): each batch to the lake writer (lake under `dir/lake`) and to
/// the aggregator (store `dir/aggregates.db`). Returns the number of duplicates delivered.
fn fill(dir: &Path, events: usize, batch: usize, shards: usize, duplicates: f64) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    std::fs::create_dir_all(dir.join("lake")).unwrap();
    let registry = Arc::new(Registry::builtin().unwrap());
    let writer = LakeWriter::new(Arc::clone(&registry), open_lake(&dir.join("lake")), MemoryDeadLetters::new());
    let store = SqliteAggregateStore::open(&dir.join("aggregates.db")).unwrap();
    let aggregator = AggregatorHandler::new(registry, store, MemoryDeadLetters::new(), WindowConfig::default());
    let start = DateTime::<Utc>::from_timestamp(HOUR_START, 0).unwrap();
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
    let mut next_seq = vec![0u64; shards];
    let chunks = all.chunks(batch).count();
    runtime.block_on(async {
        for (i, chunk) in all.chunks(batch).chain(copies.chunks(batch)).enumerate() {
            // Retries start one shard on, so most copies land on another shard than the original.
            let s = if i < chunks { i % shards } else { (i + 1) % shards };
            let shard = format!("shardId-{s:012}");
            let payload = kinesis_event(&shard, next_seq[s], chunk.iter().map(record_bytes).collect(), start);
            next_seq[s] += chunk.len() as u64;
            let payload = bytes::Bytes::from(serde_json::to_vec(&payload).unwrap());
            let lake = writer.handle(payload.clone()).await.unwrap();
            assert!(lake.batch_item_failures.is_empty());
            let aggregated = aggregator.handle(payload).await.unwrap();
            assert!(aggregated.batch_item_failures.is_empty());
        }
    });
    copies.len()
}

/// Compacts the lake at `root` (one file per partition, duplicates removed).
fn compact(root: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let tables = LakeTables::new(Arc::new(Registry::builtin().unwrap()));
    let compactor = Compactor::new(open_lake(root), tables, CompactionConfig::default());
    let far = DateTime::<Utc>::from_timestamp(4_000_000_000, 0).unwrap();
    runtime.block_on(compactor.run(None, far, |_, _, _| {})).unwrap();
}

/// The store's total page_view count over the hour's 1h window and over its 1m windows.
fn totals(dir: &Path) -> (u64, u64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let store = SqliteAggregateStore::open(&dir.join("aggregates.db")).unwrap();
    let (from, to) = (HOUR_START, HOUR_START + 3600);
    runtime.block_on(async {
        let mut out = [0u64; 2];
        for (i, size) in ["1h", "1m"].into_iter().enumerate() {
            for (_, _, state) in scan(&store, "page_view", size.parse().unwrap(), from, to).await.unwrap() {
                out[i] += state.count;
            }
        }
        (out[0], out[1])
    })
}

/// Child: backfills the generated hour from the lake and store in `dir` on a current-thread
/// runtime; prints windows, rows, CPU (process and runtime thread) and wall time, peak memory.
fn backfill_child(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let registry = Arc::new(Registry::builtin().unwrap());
    let store = SqliteAggregateStore::open(&dir.join("aggregates.db")).unwrap();
    let backfiller = Backfiller::new(open_lake(&dir.join("lake")), registry, store, WindowConfig::default());
    let request = BackfillRequest {
        from: DateTime::<Utc>::from_timestamp(HOUR_START, 0).unwrap(),
        to: DateTime::<Utc>::from_timestamp(HOUR_START + 3600, 0).unwrap(),
        event_types: Some(vec!["page_view".to_owned()]),
    };
    let baseline = status_bytes("VmRSS:");
    let (cpu, thread_cpu, wall) = (process_cpu_seconds(), thread_cpu_seconds(), Instant::now());
    let report = runtime.block_on(backfiller.run(&request, |_, _, _| {})).unwrap();
    let (cpu, thread_cpu, wall) =
        (process_cpu_seconds() - cpu, thread_cpu_seconds() - thread_cpu, wall.elapsed().as_secs_f64());
    // Clock ticks can trail the runtime thread's scheduler time by a tick.
    let cpu = cpu.max(thread_cpu);
    let sum = |f: fn(&sluice_jobs::backfill::ItemReport) -> usize| report.items.iter().map(f).sum::<usize>();
    let rows = sum(|i| i.rows);
    println!(
        "{}",
        json!({
            "items": report.items.len(), "windows": sum(|i| i.windows), "shard_windows": sum(|i| i.shard_windows),
            "files": sum(|i| i.files), "rows": rows, "duplicates": sum(|i| i.duplicates),
            "written": sum(|i| i.written), "unchanged": sum(|i| i.unchanged), "caught_up": sum(|i| i.caught_up),
            "cpu_s": cpu, "thread_cpu_s": thread_cpu, "wall_s": wall, "rows_per_s": rows as f64 / cpu,
            "peak_bytes": status_bytes("VmHWM:") - baseline,
        })
    );
}

/// Child: only the recompute half of the backfill of the generated hour (the partition read
/// with the backfill's columns, deduplicated by `event_id` and aggregated per shard, as
/// `Backfiller::backfill_item` does it; no store), for the share of each half.
fn recompute_child(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let registry = Registry::builtin().unwrap();
    let lake = open_lake(&dir.join("lake"));
    let columns = rows::columns(&registry, "page_view");
    let lake_schema = registry.get("page_view").unwrap().arrow_schema();
    let projected: SchemaRef = Arc::new(Schema::new(
        lake_schema.fields().iter().filter(|f| columns.contains(f.name())).cloned().collect::<Vec<_>>(),
    ));
    let partition = Partition::of("page_view", DateTime::<Utc>::from_timestamp(HOUR_START, 0).unwrap());
    let config = WindowConfig::default();
    let baseline = status_bytes("VmRSS:");
    let (cpu, wall) = (process_cpu_seconds(), Instant::now());
    let (rows, keys) = runtime.block_on(async {
        let mut batches = Vec::new();
        for file in lake.list_partition(&partition).await.unwrap() {
            for batch in lake.read_parquet_columns(&file.relative(), &columns).await.unwrap() {
                batches.push(conform(&batch, &projected).unwrap());
            }
        }
        let unique = output_order(&batches).unwrap();
        let mut aggregates = ShardAggregates::default();
        aggregates.add(&registry, "page_view", &config, &batches, &unique);
        let keys: usize = aggregates.shards.into_values().map(|a| a.finish().deltas.len()).sum();
        (batches.iter().map(|b| b.num_rows()).sum::<usize>(), keys)
    });
    let (cpu, wall) = (process_cpu_seconds() - cpu, wall.elapsed().as_secs_f64());
    println!(
        "{}",
        json!({
            "rows": rows, "keys": keys, "cpu_s": cpu, "wall_s": wall, "rows_per_s": rows as f64 / cpu,
            "peak_bytes": status_bytes("VmHWM:") - baseline,
        })
    );
}

/// CPU seconds of the whole process, every thread (user + system clock ticks of
/// `/proc/self/stat`, 10 ms).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn dir_stats(dir: &Path) -> (usize, u64) {
    let files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    (files.len(), files.iter().map(|e| e.metadata().unwrap().len()).sum())
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp").arg("-r").arg(from).arg(to).status().unwrap();
    assert!(ok.success());
}
