//! `sluice backfill`, and the progress lines of every backfill run (also `sluice up`'s): on a
//! terminal one status line rewritten per item, otherwise a line per item.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use sluice_aggregators::SqliteAggregateStore;
use sluice_jobs::backfill::{BackfillReport, Backfiller, ItemReport};

use crate::cli::BackfillArgs;
use crate::lake::lake_of;
use crate::output;
use crate::up::load_registry;

/// Backfills the range from the lake into `sluice up`'s aggregate store; prints one progress
/// line per item on stderr and a summary on stdout.
pub async fn run(args: &BackfillArgs) -> anyhow::Result<()> {
    let request = args.request().map_err(anyhow::Error::msg)?;
    let registry = Arc::new(load_registry(args.schemas_dir.as_deref())?);
    let lake = lake_of(args.lake.as_deref(), &args.data_dir)?;
    let path = args.data_dir.join("aggregates.db");
    let store = SqliteAggregateStore::open(&path)
        .with_context(|| format!("cannot open the aggregate store {}", path.display()))?;
    let backfiller = Backfiller::new(lake, registry, store, args.window_config());
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let report = backfiller
        .run(&request, |item, done, total| {
            let line = item_line(item, done, total, started);
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

/// Logs one backfilled item (for `sluice up`'s scheduled runs).
pub fn log_item(item: &ItemReport, done: usize, total: usize, started: Instant) {
    tracing::info!(progress = %item_line(item, done, total, started), "backfill item done");
}

/// Logs a finished backfill run.
pub fn log_report(report: &BackfillReport, started: Instant) {
    tracing::info!(summary = %summary(report, started), "backfill finished");
}

/// `[3/24] page_view-1764640800-1764644400: 61 windows, 244 shard windows, 9 files, 1250 rows (12 duplicates), 80 partials written (1.2 s)`
fn item_line(i: &ItemReport, done: usize, total: usize, started: Instant) -> String {
    format!(
        "[{done}/{total}] {}: {} windows, {} shard windows, {} files, {} rows ({} duplicates), {} partials written ({:.1} s)",
        i.item,
        i.windows,
        i.shard_windows,
        i.files,
        i.rows,
        i.duplicates,
        i.written,
        started.elapsed().as_secs_f64()
    )
}

fn summary(report: &BackfillReport, started: Instant) -> String {
    let sum = |f: fn(&ItemReport) -> usize| report.items.iter().map(f).sum::<usize>();
    let resumed =
        if report.resumed > 0 { format!(" ({} done by an earlier run)", report.resumed) } else { String::new() };
    let unreadable = match sum(|i| i.unreadable) {
        0 => String::new(),
        n => format!(", {n} unreadable rows left out (see the log)"),
    };
    format!(
        "backfilled {} items{resumed}: {} windows, {} rows read, {} duplicates left out, {} partials written, {} unchanged{unreadable} in {:.1} s",
        report.items.len(),
        sum(|i| i.windows),
        sum(|i| i.rows),
        sum(|i| i.duplicates),
        sum(|i| i.written),
        sum(|i| i.unchanged),
        started.elapsed().as_secs_f64()
    )
}
