//! What a command prints: its output on stdout, and at most one line on stderr when it fails.
//!
//! Every command writes its output through [`print`], so `sluice … | head` ends quietly when the
//! reader closes the pipe (`println!` would panic on the broken pipe). A failure is reported once
//! by [`report_failure`]: `sluice up` is a service whose stderr is its log stream, so its fatal
//! error is one more log line; every other command answers whoever ran it with one `error: …`
//! line. A long job's progress goes to stderr through [`Progress`].

use std::io::{ErrorKind, IsTerminal as _, Write as _};

/// Writes `text` to stdout (one locked handle, flushed). A reader that went away (EPIPE) is
/// success: the rest of the output is not wanted, and the command exits 0 without a message.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    ignore_broken_pipe(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

/// Progress lines of a long job on stderr: on a terminal one status line with a bar, rewritten
/// in place (ended once the last step is done), otherwise one line per step, for logs.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    terminal: bool,
}

impl Progress {
    /// For this process's stderr.
    pub fn stderr() -> Self {
        Self { terminal: std::io::stderr().is_terminal() }
    }

    /// Shows `line`, the progress after step `done` of `total`.
    pub fn show(&self, line: &str, done: usize, total: usize) {
        if self.terminal {
            eprint!("\r\x1b[2K{} {line}", bar(done, total));
            if done == total {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
    }
}

/// `[#####---------------]`: `done` of `total` as a 20-character bar.
fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 20;
    let filled = (done.min(total) * WIDTH).checked_div(total).unwrap_or(WIDTH);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(WIDTH - filled))
}

/// `Ok` for a broken pipe, the result unchanged otherwise.
fn ignore_broken_pipe(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// How a failed command reports its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReport {
    /// As an error-level log line (`sluice failed`, the message in `error`).
    Log,
    /// As one `error: <message>` line on stderr.
    Stderr,
}

/// Reports `error` once, as `how` says (see the module docs).
pub fn report_failure(error: &anyhow::Error, how: FailureReport) {
    let message = error_message(error);
    match how {
        FailureReport::Log => tracing::error!(error = message, "sluice failed"),
        FailureReport::Stderr => {
            // A closed stderr leaves nothing to tell; the exit code still says it failed.
            let _ = writeln!(std::io::stderr().lock(), "error: {message}");
        }
    }
}

/// The error and its causes joined by `: `, each message once: a cause whose text the message
/// already holds (an error that prints its source and also returns it, as DataFusion's and
/// object_store's errors do) is not repeated.
pub fn error_message(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_bar_fills_with_the_steps_done() {
        assert_eq!(bar(0, 4), "[--------------------]");
        assert_eq!(bar(1, 4), "[#####---------------]");
        assert_eq!(bar(4, 4), "[####################]");
        assert_eq!(bar(0, 0), "[####################]", "nothing to do is done");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("inner failure")]
    struct Inner;

    /// Prints its source and also returns it (the pattern that repeated messages).
    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Inner);

    #[test]
    fn each_message_once() {
        let error = anyhow::Error::new(Outer(Inner)).context("query failed");
        assert_eq!(error_message(&error), "query failed: outer: inner failure");
        let plain = anyhow::anyhow!("no lake at x").context("cannot start");
        assert_eq!(error_message(&plain), "cannot start: no lake at x");
        assert_eq!(error_message(&anyhow::Error::new(Inner)), "inner failure");
    }

    #[test]
    fn a_broken_pipe_is_success() {
        assert!(ignore_broken_pipe(Err(ErrorKind::BrokenPipe.into())).is_ok());
        assert!(ignore_broken_pipe(Ok(())).is_ok());
        assert_eq!(
            ignore_broken_pipe(Err(ErrorKind::PermissionDenied.into())).unwrap_err().kind(),
            ErrorKind::PermissionDenied
        );
    }
}
