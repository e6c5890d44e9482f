//! Command-line arguments, turned into typed configuration at the edge.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use sluice_aggregators::{WindowConfig, WindowSize};

use crate::up::UpConfig;

/// sluice: stream analytics for AWS serverless, whole on one machine.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Json, env = "SLUICE_LOG_FORMAT")]
    pub log_format: LogFormatArg,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log format on stderr.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

impl From<LogFormatArg> for sluice_telemetry::LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Json => sluice_telemetry::LogFormat::Json,
            LogFormatArg::Pretty => sluice_telemetry::LogFormat::Pretty,
        }
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline in this process (HTTP API, local stream, handlers).
    Up(UpArgs),
    /// Print an access token from the local issuer of `sluice up` (last line of stdout).
    Token(TokenArgs),
    /// Run read-only SQL over the lake: one table per event type plus the view `events`.
    Query(QueryArgs),
    /// Print the Athena `CREATE EXTERNAL TABLE` statements for the lake (partition projection).
    AthenaDdl(AthenaDdlArgs),
    /// Print windowed aggregates from the local store as JSON (the same answer as
    /// `GET /v1/aggregates`).
    Aggregates(AggregatesArgs),
    /// Compact the lake's closed partitions: one row per event_id, sorted by occurred_at, in
    /// files of a target size. Safe while `sluice up` runs.
    Compact(CompactArgs),
    /// Recompute the aggregates of every window overlapping a time range from the lake (each
    /// event_id once) and replace their stored state. Safe while `sluice up` runs; a rerun
    /// after a crash resumes.
    Backfill(BackfillArgs),
    /// Inspect what the pipeline set aside: the handlers' dead letters and the event source
    /// mappings' failure destination.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Re-submit set-aside records that are valid now to the stream (same bytes, same
    /// event_id); leave the rest with their current reason. Safe while `sluice up` runs.
    Redrive(RedriveArgs),
}

/// `sluice dlq` subcommands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List every dead letter and failed batch: store, id, source, shard and sequence range,
    /// records, age, reason.
    List(DlqListArgs),
}

/// Where set-aside records are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DlqSource {
    /// The dead letters and failure destination of `sluice up` (under --data-dir).
    Local,
    /// The SQS dead-letter queue (--queue-url): dead letters and on-failure records.
    Sqs,
    /// The S3 on-failure destination of the stream triggers (--bucket).
    S3,
}

/// The AWS side of `sluice dlq list` and `sluice redrive` (`--source sqs|s3`). Region,
/// credentials and endpoint come from the `AWS_*` environment as for every AWS client;
/// `--endpoint` overrides the endpoint.
#[derive(Debug, Args)]
pub struct AwsSourceArgs {
    /// The SQS dead-letter queue URL (`--source sqs`).
    #[arg(long, env = "SLUICE_DLQ_URL")]
    pub queue_url: Option<String>,
    /// The S3 bucket of the on-failure destination (`--source s3`).
    #[arg(long, env = "SLUICE_FAILURE_BUCKET")]
    pub bucket: Option<String>,
    /// The key prefix of the on-failure objects.
    #[arg(long, default_value = sluice_jobs::redrive::s3::DEFAULT_PREFIX)]
    pub prefix: String,
    /// The Kinesis stream (name or ARN) redriven records go to; also read for batches whose
    /// on-failure record names no stream.
    #[arg(long, env = "SLUICE_STREAM")]
    pub stream: Option<String>,
    /// The AWS endpoint URL for every service (a local AWS-compatible server).
    #[arg(long)]
    pub endpoint: Option<url::Url>,
}

/// `sluice dlq list` arguments.
#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Which store to list.
    #[arg(long, value_enum, default_value_t = DlqSource::Local)]
    pub source: DlqSource,
    #[command(flatten)]
    pub aws: AwsSourceArgs,
    /// The data directory of `sluice up`.
    #[arg(long, default_value = ".sluice", env = "SLUICE_DATA_DIR")]
    pub data_dir: PathBuf,
}

/// `sluice redrive` arguments.
#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// Report what would be re-submitted and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Which store to redrive.
    #[arg(long, value_enum, default_value_t = DlqSource::Local)]
    pub source: DlqSource,
    #[command(flatten)]
    pub aws: AwsSourceArgs,
    /// The data directory of `sluice up`.
    #[arg(long, default_value = ".sluice", env = "SLUICE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Load event schemas from this directory instead of the built-in ones (as `sluice up`).
    #[arg(long, env = "SLUICE_SCHEMAS_DIR")]
    pub schemas_dir: Option<PathBuf>,
    /// The lake's first day, as `sluice up --lake-start`.
    #[arg(long, env = "SLUICE_LAKE_START", default_value = sluice_schemas::DEFAULT_LAKE_START, value_parser = parse_lake_start)]
    pub lake_start: chrono::NaiveDate,
    /// As `sluice up --max-future-secs`.
    #[arg(long, env = "SLUICE_MAX_FUTURE_SECS", default_value_t = 300)]
    pub max_future_secs: u32,
}

/// `sluice compact` arguments.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Only this event type's partitions.
    #[arg(long)]
    pub event_type: Option<String>,
    /// Print the plan (partitions, files, bytes) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Bytes per compacted file to aim at (`256MiB`, `1GiB`, `500000`).
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes)]
    pub target_size: u64,
    /// The most memory one partition's compaction may take; a larger partition is compacted by
    /// sorted runs spilled to the lake's scratch prefix.
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    pub memory_budget: u64,
    /// A partition is compacted once its hour ended this long ago (`sluice up
    /// --allowed-lateness`).
    #[arg(long, default_value = "5m", value_parser = parse_window)]
    pub allowed_lateness: WindowSize,
    /// The lake (any lake URL). Default: the lake of `sluice up` in the data dir.
    #[arg(long, env = "SLUICE_LAKE_URL")]
    pub lake: Option<String>,
    /// The data directory of `sluice up` (for the default lake).
    #[arg(long, default_value = ".sluice", env = "SLUICE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Load event schemas from this directory instead of the built-in ones.
    #[arg(long, env = "SLUICE_SCHEMAS_DIR")]
    pub schemas_dir: Option<PathBuf>,
}

impl CompactArgs {
    /// The compaction settings.
    pub fn config(&self) -> sluice_jobs::compaction::CompactionConfig {
        sluice_jobs::compaction::CompactionConfig {
            allowed_lateness: chrono::TimeDelta::seconds(i64::from(self.allowed_lateness.secs())),
            target_size: self.target_size,
            memory_budget: self.memory_budget,
        }
    }
}

/// `sluice backfill` arguments.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Start of the range: RFC 3339 (`2026-12-02T00:00:00Z`) or a UTC date (`2026-12-02`).
    #[arg(long, value_parser = parse_time)]
    pub from: chrono::DateTime<chrono::Utc>,
    /// End of the range (exclusive), in the same forms.
    #[arg(long, value_parser = parse_time)]
    pub to: chrono::DateTime<chrono::Utc>,
    /// Only this event type (repeatable). Default: every type the lake holds.
    #[arg(long = "event-type")]
    pub event_types: Vec<String>,
    /// The windows `sluice up` aggregates (`--windows` there).
    #[arg(long, default_value = "1m,1h", value_delimiter = ',', value_parser = parse_window)]
    pub windows: Vec<WindowSize>,
    /// `sluice up --allowed-lateness` (recomputed events count as late the same way).
    #[arg(long, default_value = "5m", value_parser = parse_window)]
    pub allowed_lateness: WindowSize,
    /// The lake (any lake URL). Default: the lake of `sluice up` in the data dir.
    #[arg(long, env = "SLUICE_LAKE_URL")]
    pub lake: Option<String>,
    /// The data directory of `sluice up` (its aggregate store, and the default lake).
    #[arg(long, default_value = ".sluice", env = "SLUICE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Load event schemas from this directory instead of the built-in ones.
    #[arg(long, env = "SLUICE_SCHEMAS_DIR")]
    pub schemas_dir: Option<PathBuf>,
    /// Print the items the range needs (those not done by an earlier run) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl BackfillArgs {
    /// The backfill state machine's input, or why the range is empty.
    pub fn request(&self) -> Result<sluice_jobs::orchestration::tasks::BackfillExecutionRequest, String> {
        if self.from >= self.to {
            return Err(format!("--from {} is not before --to {}", self.from.to_rfc3339(), self.to.to_rfc3339()));
        }
        Ok(sluice_jobs::orchestration::tasks::BackfillExecutionRequest {
            from: Some(self.from),
            to: Some(self.to),
            event_types: (!self.event_types.is_empty()).then(|| self.event_types.clone()),
            dry_run: self.dry_run,
        })
    }

    /// The aggregator's windows.
    pub fn window_config(&self) -> WindowConfig {
        WindowConfig::new(self.windows.clone(), chrono::TimeDelta::seconds(i64::from(self.allowed_lateness.secs())))
    }
}

/// An RFC 3339 time, or a date (its midnight UTC).
fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("`{s}` is neither an RFC 3339 time (2026-12-02T00:00:00Z) nor a date (2026-12-02)"))
}

/// `256MiB`, `1GiB`, `64KiB`, `500000` (bytes).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let unit = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("unknown unit `{other}` (B, KiB, MiB, GiB)")),
    };
    let n: u64 = digits.parse().map_err(|_| format!("`{s}` is not a size such as 256MiB"))?;
    n.checked_mul(unit).filter(|b| *b > 0).ok_or_else(|| format!("`{s}` is not a positive size"))
}

/// `sluice aggregates` arguments (the query parameters of `GET /v1/aggregates`).
#[derive(Debug, Args)]
pub struct AggregatesArgs {
    /// The event type.
    #[arg(long)]
    pub event_type: String,
    /// The window size (`1m`, `1h`, ...).
    #[arg(long, default_value = "1m")]
    pub window: String,
    /// Windows starting at or after this RFC 3339 instant.
    #[arg(long)]
    pub from: String,
    /// Windows starting before this RFC 3339 instant.
    #[arg(long)]
    pub to: String,
    /// Dimensions to keep, comma-separated, each by name (`country`) or path
    /// (`context/country`); the others are merged.
    #[arg(long)]
    pub group_by: Option<String>,
    /// The data directory of `sluice up`.
    #[arg(long, default_value = ".sluice", env = "SLUICE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Load event schemas from this directory instead of the built-in ones.
    #[arg(long, env = "SLUICE_SCHEMAS_DIR")]
    pub schemas_dir: Option<PathBuf>,
}

/// `sluice query` arguments.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL statement (DataFusion). Nested fields: `context.country`; arrays:
    /// `SELECT i.sku, sum(i.qty) FROM (SELECT unnest(items) AS i FROM order_placed) GROUP BY 1`.
    pub sql: String,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
    /// The lake: a directory path, `file:///abs/dir`, `s3://bucket[/prefix]` (region and endpoint
    /// from `AWS_*`), or `memory://` (empty). Default: the lake of `sluice up` in the data dir.
    #[arg(long, env = "SLUICE_LAKE_URL")]
    pub lake: Option<String>,
    /// The data directory of `sluice up` (for the default lake).
    #[arg(long, default_value = ".sluice", env = "SLUICE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Load event schemas from this directory instead of the built-in ones.
    #[arg(long, env = "SLUICE_SCHEMAS_DIR")]
    pub schemas_dir: Option<PathBuf>,
}

/// `sluice athena-ddl` arguments.
#[derive(Debug, Args)]
pub struct AthenaDdlArgs {
    /// The S3 location of the lake, `s3://bucket[/prefix]`.
    #[arg(long)]
    pub lake: String,
    /// The Glue/Athena database name (`[a-z0-9_]+`).
    #[arg(long, default_value = "sluice")]
    pub database: String,
    /// The lake's first day (YYYY-MM-DD), where the `dt` partition projection starts: the
    /// same setting as `sluice up --lake-start`, which rejects earlier events.
    #[arg(long, env = "SLUICE_LAKE_START", default_value = sluice_schemas::DEFAULT_LAKE_START, value_parser = parse_lake_start)]
    pub lake_start: chrono::NaiveDate,
    /// Load event schemas from this directory instead of the built-in ones.
    #[arg(long, env = "SLUICE_SCHEMAS_DIR")]
    pub schemas_dir: Option<PathBuf>,
}

/// `sluice token` arguments.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The data directory of the `sluice up` whose issuer signs the token.
    #[arg(long, default_value = ".sluice", env = "SLUICE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The producer id recorded on every event posted with the token.
    #[arg(long)]
    pub producer: String,
    /// Scopes to grant (repeatable). Default: sluice/events.write.
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub ttl_secs: u64,
}

/// `sluice up` arguments.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Directory holding all local state (stream, dead letters, checkpoints, ...).
    #[arg(long, default_value = ".sluice", env = "SLUICE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address of the HTTP API (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080", env = "SLUICE_LISTEN")]
    pub listen: SocketAddr,
    /// Shards of the local stream (fixed when the stream is first created).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub shards: u32,
    /// How long the local stream keeps records, in hours.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=8760))]
    pub retention_hours: u32,
    /// Accept requests without a token (logs a warning at every start). Never in production.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Load event schemas from this directory instead of the built-in ones.
    #[arg(long, env = "SLUICE_SCHEMAS_DIR")]
    pub schemas_dir: Option<PathBuf>,
    /// Per-producer sustained rate limit in events/s (0 = off).
    #[arg(long, default_value_t = 10_000.0)]
    pub rate_limit: f64,
    /// Per-producer burst size in events.
    #[arg(long, default_value_t = 20_000.0)]
    pub rate_burst: f64,
    /// How far in the future `occurred_at` may be, in seconds; later events are rejected.
    #[arg(long, env = "SLUICE_MAX_FUTURE_SECS", default_value_t = 300)]
    pub max_future_secs: u32,
    /// The lake's first day (YYYY-MM-DD): events with an earlier `occurred_at` are rejected.
    /// The same date starts the Glue tables' partition projection (`sluice athena-ddl
    /// --lake-start`, template parameter `LakeStart`), so every accepted event is visible.
    #[arg(long, env = "SLUICE_LAKE_START", default_value = sluice_schemas::DEFAULT_LAKE_START, value_parser = parse_lake_start)]
    pub lake_start: chrono::NaiveDate,
    /// Tumbling windows to aggregate, comma-separated (`30s`, `1m`, `1h`, ...).
    #[arg(long, default_value = "1m,1h", value_delimiter = ',', value_parser = parse_window)]
    pub windows: Vec<WindowSize>,
    /// How long after a window ends events still count as on time (they always count; later
    /// ones are also counted as late). Compaction waits as long after an hour ends.
    #[arg(long, default_value = "5m", value_parser = parse_window)]
    pub allowed_lateness: WindowSize,
    /// How often to compact the lake's closed partitions (`1h`, `30m`; `0` turns it off).
    #[arg(long, default_value = "1h", value_parser = parse_every)]
    pub compact_every: Every,
    /// When to backfill the previous UTC day's aggregates from the lake, daily (`HH:MM` UTC;
    /// `0` turns it off).
    #[arg(long, default_value = "02:00", value_parser = parse_daily)]
    pub backfill_at: Daily,
}

/// A daily job's time of day (UTC), or `0` for never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Daily(pub Option<chrono::NaiveTime>);

fn parse_daily(s: &str) -> Result<Daily, String> {
    match s.trim() {
        "0" => Ok(Daily(None)),
        t => chrono::NaiveTime::parse_from_str(t, "%H:%M")
            .map(|t| Daily(Some(t)))
            .map_err(|_| format!("`{s}` is not a time of day HH:MM (UTC) or 0")),
    }
}

/// How often a scheduled job runs: a period, or `0` for never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every(pub Option<WindowSize>);

fn parse_every(s: &str) -> Result<Every, String> {
    if s.trim() == "0" { Ok(Every(None)) } else { parse_window(s).map(|w| Every(Some(w))) }
}

fn parse_lake_start(s: &str) -> Result<chrono::NaiveDate, String> {
    sluice_schemas::envelope::parse_lake_start(s)
        .ok_or_else(|| format!("`{s}` is not a date YYYY-MM-DD from 1970-01-01 to 9999-12-31"))
}

fn parse_window(s: &str) -> Result<WindowSize, String> {
    s.parse::<WindowSize>().map_err(|e| e.to_string())
}

impl UpArgs {
    /// The typed configuration of the runtime.
    pub fn into_config(self) -> UpConfig {
        UpConfig {
            data_dir: self.data_dir,
            listen: self.listen,
            shards: self.shards,
            retention: chrono::Duration::hours(i64::from(self.retention_hours)),
            auth: !self.insecure_no_auth,
            schemas_dir: self.schemas_dir,
            limits: sluice_ingest::Limits::default(),
            event_time: sluice_schemas::EventTimeRange {
                lake_start: self.lake_start,
                max_future: chrono::Duration::seconds(i64::from(self.max_future_secs)),
            },
            windows: WindowConfig::new(
                self.windows,
                chrono::TimeDelta::seconds(i64::from(self.allowed_lateness.secs())),
            ),
            compact_every: self.compact_every.0.map(|w| Duration::from_secs(u64::from(w.secs()))),
            backfill_at: self.backfill_at.0,
            rate_limit: (self.rate_limit > 0.0)
                .then_some(sluice_ingest::RateLimit { rate: self.rate_limit, burst: self.rate_burst.max(1.0) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("500000"), Ok(500_000));
        assert_eq!(parse_bytes("64 KiB"), Ok(64 << 10));
        for bad in ["", "0", "1MB", "-1MiB", "MiB", "99999999999999GiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_period_or_off() {
        assert_eq!(parse_every("0"), Ok(Every(None)));
        assert_eq!(parse_every("1h").map(|w| w.0.map(|w| w.secs())), Ok(Some(3600)));
        assert!(parse_every("soon").is_err());
    }

    #[test]
    fn a_time_of_day_or_off() {
        assert_eq!(parse_daily("0"), Ok(Daily(None)));
        assert_eq!(parse_daily("02:00"), Ok(Daily(chrono::NaiveTime::from_hms_opt(2, 0, 0))));
        assert_eq!(parse_daily("23:59"), Ok(Daily(chrono::NaiveTime::from_hms_opt(23, 59, 0))));
        for bad in ["24:00", "2am", "02:00:00", ""] {
            assert!(parse_daily(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let up = Cli::try_parse_from(["sluice", "up", "--compact-every", "0", "--backfill-at", "0"]).unwrap();
        let Command::Up(args) = up.command else { panic!("not up") };
        let config = args.into_config();
        assert_eq!((config.compact_every, config.backfill_at), (None, None));
        let Command::Up(args) = Cli::try_parse_from(["sluice", "up"]).unwrap().command else { panic!("not up") };
        assert_eq!(args.into_config().backfill_at, chrono::NaiveTime::from_hms_opt(2, 0, 0), "02:00 UTC by default");
    }
}
