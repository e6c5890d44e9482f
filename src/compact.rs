//! `sluice compact`, and the progress lines of every compaction run (also `sluice up`'s): on a
//! terminal one status line rewritten per partition, otherwise a line per partition.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Instant;

use sluice_jobs::compaction::{CompactionReport, Compactor, PartitionOutcome};
use sluice_sinks::LakeTables;

use crate::cli::CompactArgs;
use crate::lake::lake_of;
use crate::output;
use crate::up::load_registry;

/// Plans, and unless `--dry-run` compacts, the lake's closed partitions; prints the plan or a
/// summary on stdout and one progress line per partition on stderr.
pub async fn run(args: &CompactArgs) -> anyhow::Result<()> {
    let registry = Arc::new(load_registry(args.schemas_dir.as_deref())?);
    let lake = lake_of(args.lake.as_deref(), &args.data_dir)?;
    let compactor = Compactor::new(lake, LakeTables::new(registry), args.config());
    let now = chrono::Utc::now();
    if args.dry_run {
        let tasks = compactor.plan(args.event_type.as_deref(), now).await?;
        let mut out = String::new();
        for task in &tasks {
            out.push_str(&format!(
                "{}: {} files, {}\n",
                task.partition.dir(),
                task.inputs.len(),
                human_bytes(task.input_bytes())
            ));
        }
        out.push_str(&format!("{} partitions to compact (dry run: nothing changed)\n", tasks.len()));
        return Ok(output::print(&out)?);
    }
    let started = Instant::now();
    // On a terminal one status line is rewritten in place; otherwise a line per partition.
    let terminal = std::io::stderr().is_terminal();
    let report = compactor
        .run(args.event_type.as_deref(), now, |outcome, done, total| {
            let line = partition_line(outcome, done, total, started);
            if terminal {
                eprint!("\r\x1b[2K{line}");
                if done == total {
                    eprintln!();
                }
            } else {
                eprintln!("{line}");
            }
        })
        .await?;
    output::print(&format!("{}\n", summary(&report, started)))?;
    Ok(())
}

/// Logs one compacted partition (for `sluice up`'s scheduled runs).
pub fn log_partition(outcome: &PartitionOutcome, done: usize, total: usize, started: Instant) {
    tracing::info!(progress = %partition_line(outcome, done, total, started), "partition compacted");
}

/// Logs a finished compaction run.
pub fn log_report(report: &CompactionReport, started: Instant) {
    tracing::info!(summary = %summary(report, started), "lake compaction finished");
}

/// `[3/24] events/.../hour=10: 12 files -> 1, 1250 -> 1200 rows, 120.0 KiB -> 80.5 KiB (1.2 s)`
fn partition_line(o: &PartitionOutcome, done: usize, total: usize, started: Instant) -> String {
    format!(
        "[{done}/{total}] {}: {} files -> {}, {} -> {} rows, {} -> {} ({:.1} s)",
        o.partition.dir(),
        o.inputs,
        o.outputs.len(),
        o.rows_in,
        o.rows_out,
        human_bytes(o.bytes_in),
        human_bytes(o.bytes_out),
        started.elapsed().as_secs_f64()
    )
}

fn summary(report: &CompactionReport, started: Instant) -> String {
    let sum = |f: fn(&PartitionOutcome) -> u64| report.partitions.iter().map(f).sum::<u64>();
    format!(
        "compacted {} partitions: {} files -> {}, {} -> {} rows ({} duplicates removed), {} -> {} in {:.1} s",
        report.partitions.len(),
        sum(|p| p.inputs as u64),
        sum(|p| p.outputs.len() as u64),
        sum(|p| p.rows_in as u64),
        sum(|p| p.rows_out as u64),
        report.duplicates_removed(),
        human_bytes(sum(|p| p.bytes_in)),
        human_bytes(sum(|p| p.bytes_out)),
        started.elapsed().as_secs_f64()
    )
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
