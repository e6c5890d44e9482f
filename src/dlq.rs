//! `sluice dlq list` and `sluice redrive`: what the pipeline set aside (under the data dir of
//! `sluice up`, or in AWS: the SQS dead-letter queue and the S3 on-failure destination), and
//! putting it back.

use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sluice_esm::{LocalStream, LocalStreamConfig, SqliteFailureDestination};
use sluice_ingest::LocalStreamEventLog;
use sluice_jobs::redrive::local::LocalSources;
use sluice_jobs::redrive::s3::S3Source;
use sluice_jobs::redrive::sqs::SqsSource;
use sluice_jobs::redrive::{Entry, RedriveReport};

use crate::cli::{AwsSourceArgs, DlqListArgs, DlqSource, RedriveArgs};
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

/// An AWS source of `--source sqs|s3`.
enum AwsSource {
    Sqs(SqsSource),
    S3(S3Source),
}

impl AwsSourceArgs {
    /// The AWS settings: the `AWS_*` environment, `--endpoint` over it.
    fn settings(&self) -> anyhow::Result<sluice_aws::AwsSettings> {
        let mut settings = sluice_aws::AwsSettings::from_env()?;
        if let Some(endpoint) = &self.endpoint {
            settings.endpoint_url = Some(endpoint.clone());
        }
        Ok(settings)
    }

    async fn source(&self, source: DlqSource) -> anyhow::Result<(AwsSource, sluice_aws::SdkConfig)> {
        let settings = self.settings()?;
        let config = sluice_aws::sdk_config(&settings).await;
        let source = match source {
            DlqSource::Sqs => {
                let url = self.queue_url.as_deref().context("--source sqs needs --queue-url (or SLUICE_DLQ_URL)")?;
                AwsSource::Sqs(SqsSource::new(&config, url, self.stream.clone()))
            }
            DlqSource::Local => anyhow::bail!("the local source is not an AWS source"),
            DlqSource::S3 => {
                let bucket = self.bucket.as_deref().context("--source s3 needs --bucket (or SLUICE_FAILURE_BUCKET)")?;
                AwsSource::S3(S3Source::new(
                    &config,
                    settings.endpoint_overridden(),
                    bucket,
                    Some(self.prefix.clone()),
                    self.stream.clone(),
                ))
            }
        };
        Ok((source, config))
    }
}

/// Prints every entry as a table or JSON.
pub async fn list(args: &DlqListArgs) -> anyhow::Result<()> {
    let entries = match args.source {
        DlqSource::Local => sources(&args.data_dir)?.list()?,
        aws => match args.aws.source(aws).await?.0 {
            AwsSource::Sqs(sqs) => sqs.list(Utc::now()).await?,
            AwsSource::S3(s3) => s3.list(Utc::now()).await?,
        },
    };
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

/// `redriven 3, still invalid 1, unrecoverable 2, not written 0`, then one line per
/// unrecoverable entry.
fn summary(report: &RedriveReport) -> String {
    let verb = if report.dry_run { "would redrive" } else { "redriven" };
    let mut out = format!(
        "{verb} {}, still invalid {}, unrecoverable {}, not written {}{}\n",
        report.redriven,
        report.still_invalid,
        report.unrecoverable,
        report.not_written,
        if report.dry_run { " (dry run: nothing changed)" } else { "" }
    );
    for lost in &report.lost {
        let range = match (&lost.first_sequence, &lost.last_sequence) {
            (Some(a), Some(b)) if a != b => format!(" {a}..{b}"),
            (Some(a), _) => format!(" {a}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "unrecoverable: {} ({}{range}, {} records): {}\n",
            lost.entry,
            lost.shard_id.as_deref().unwrap_or("-"),
            lost.records,
            lost.reason
        ));
    }
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

/// Re-submits what is valid now (into the data dir's local stream, or the Kinesis stream
/// `--stream` for the AWS sources); prints a summary, then one line per unrecoverable entry.
pub async fn redrive(args: &RedriveArgs) -> anyhow::Result<()> {
    let registry = load_registry(args.schemas_dir.as_deref())?.with_event_time(sluice_schemas::EventTimeRange {
        lake_start: args.lake_start,
        max_future: chrono::TimeDelta::seconds(i64::from(args.max_future_secs)),
    });
    let report = match args.source {
        DlqSource::Local => {
            let sources = sources(&args.data_dir)?;
            let stream = LocalStream::open_existing(&args.data_dir.join("stream.db"), LocalStreamConfig::default())
                .context("cannot open the local stream")?;
            let log = LocalStreamEventLog::new(stream);
            sources.redrive(&registry, &log, args.dry_run, Utc::now()).await?
        }
        aws => {
            let stream = args
                .aws
                .stream
                .as_deref()
                .context("--source sqs|s3 needs --stream (or SLUICE_STREAM) to redrive to")?;
            let (source, config) = args.aws.source(aws).await?;
            let log = sluice_jobs::redrive::kinesis::event_log(&config, stream);
            match source {
                AwsSource::Sqs(sqs) => sqs.redrive(&registry, &log, args.dry_run, Utc::now()).await?,
                AwsSource::S3(s3) => s3.redrive(&registry, &log, args.dry_run, Utc::now()).await?,
            }
        }
    };
    output::print(&summary(&report))?;
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
    fn the_summary_names_every_unrecoverable_entry() {
        let report = RedriveReport {
            redriven: 3,
            still_invalid: 1,
            unrecoverable: 2,
            lost: vec![sluice_jobs::redrive::Unrecoverable {
                entry: "sqs:m-1".into(),
                shard_id: Some("shardId-000000000001".into()),
                first_sequence: Some("10".into()),
                last_sequence: Some("12".into()),
                records: 2,
                reason: "shard trimmed".into(),
            }],
            ..RedriveReport::default()
        };
        assert_eq!(
            summary(&report),
            "redriven 3, still invalid 1, unrecoverable 2, not written 0\n\
             unrecoverable: sqs:m-1 (shardId-000000000001 10..12, 2 records): shard trimmed\n"
        );
    }

    #[test]
    fn ages() {
        let s = chrono::TimeDelta::seconds;
        let got: Vec<String> = [s(5), s(600), s(7200), s(3 * 86_400), s(-3)].into_iter().map(age).collect();
        assert_eq!(got, ["5s", "10m", "2h", "3d", "0s"]);
    }
}
