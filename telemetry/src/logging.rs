//! The log format of every binary.

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (Lambda, production, `sluice up` by default).
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// Installs the global `tracing` subscriber: `RUST_LOG`-style filter (default `info`), UTC
/// timestamps, span fields (request and batch ids) on every line. Calling it twice is harmless.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
