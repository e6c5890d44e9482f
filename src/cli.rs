//! Command-line arguments, turned into typed configuration at the edge.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
}

impl UpArgs {
    /// The typed configuration of the runtime.
    pub fn into_config(self) -> UpConfig {
        UpConfig {
            data_dir: self.data_dir,
            listen: self.listen,
            shards: self.shards,
            retention: chrono::Duration::hours(i64::from(self.retention_hours)),
        }
    }
}
