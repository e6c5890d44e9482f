//! `sluice dlq list` and `sluice redrive`: what the pipeline set aside under the data dir, and
//! putting it back.

use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sluice_esm::{LocalStream, LocalStreamConfig, SqliteFailureDestination};
use sluice_ingest::LocalStreamEventLog;
use sluice_jobs::redrive::local::{Entry, LocalSources};

use crate::cli::{DlqListArgs, RedriveArgs};
use crate::output;
use crate::up::load_registry;

/// Opens the dead letters and the failure destination of the data dir (which must exist).
fn sources(data_dir: &Path) -> anyhow::Result<LocalSources> {
    anyhow::ensure!(
        data_dir.is_dir(),
        "no data dir at {} (run `sluice up` first, or pass --data-dir)",
        data_dir.display()
    );
    let dead_letters = sluice_dlq::SqliteDeadLetters::open(&data_dir.join("dead_letters.db"))
        .context("cannot open the dead-letter table")?;
    let failures =
        SqliteFailureDestination::open(&data_dir.join("failures.db")).context("cannot open the failure destination")?;
    Ok(LocalSources { dead_letters, failures })
}

/// Prints every entry as a table or JSON.
pub fn list(args: &DlqListArgs) -> anyhow::Result<()> {
    let entries = sources(&args.data_dir)?.list()?;
    let out = match args.format.as_str() {
        "json" => serde_json::to_string_pretty(&entries)? + "\n",
        _ => table(&entries, Utc::now()),
    };
    Ok(output::print(&out)?)
}

fn table(entries: &[Entry], now: DateTime<Utc>) -> String {
    let mut rows = vec![["STORE", "ID", "SOURCE", "SHARD", "SEQUENCES", "RECORDS", "AGE", "REASON"].map(str::to_owned)];
    for e in entries {
        let sequences = match (&e.first_sequence, &e.last_sequence) {
            (Some(a), Some(b)) if a == b => a.clone(),
            (Some(a), Some(b)) => format!("{a}..{b}"),
            _ => "-".to_owned(),
        };
        rows.push([
            e.store.to_owned(),
            e.id.to_string(),
            e.source.clone(),
            e.shard_id.clone().unwrap_or_else(|| "-".to_owned()),
            sequences,
            e.records.to_string(),
            age(now - e.failed_at),
            e.reason.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..8).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!("{} entries\n", entries.len()));
    out
}

/// `45s`, `12m`, `3h`, `2d`.
fn age(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Re-submits what is valid now into the data dir's local stream; prints a summary.
pub async fn redrive(args: &RedriveArgs) -> anyhow::Result<()> {
    let sources = sources(&args.data_dir)?;
    let registry = load_registry(args.schemas_dir.as_deref())?.with_event_time(sluice_schemas::EventTimeRange {
        lake_start: args.lake_start,
        max_future: chrono::TimeDelta::seconds(i64::from(args.max_future_secs)),
    });
    let stream = LocalStream::open_existing(&args.data_dir.join("stream.db"), LocalStreamConfig::default())
        .context("cannot open the local stream")?;
    let log = LocalStreamEventLog::new(stream);
    let report = sources.redrive(&registry, &log, args.dry_run, Utc::now()).await?;
    let verb = if report.dry_run { "would redrive" } else { "redriven" };
    output::print(&format!(
        "{verb} {}, still invalid {}, not written {}{}\n",
        report.redriven,
        report.still_invalid,
        report.not_written,
        if report.dry_run { " (dry run: nothing changed)" } else { "" }
    ))?;
    anyhow::ensure!(
        report.not_written == 0,
        "{} records were not written; run `sluice redrive` again",
        report.not_written
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let s = chrono::TimeDelta::seconds;
        let got: Vec<String> = [s(5), s(600), s(7200), s(3 * 86_400), s(-3)].into_iter().map(age).collect();
        assert_eq!(got, ["5s", "10m", "2h", "3d", "0s"]);
    }
}
