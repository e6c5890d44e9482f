//! What the one-shot commands print: their output survives a reader that goes away, and a
//! failure is reported once.

use std::process::{Command, Output, Stdio};

/// Runs `sluice args…` with stdout a pipe whose reading end is already closed, so the first
/// write fails with EPIPE (as under `sluice … | head` once `head` has exited).
fn run_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).stdout(writer).stderr(Stdio::piped()).output().unwrap()
}

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).output().unwrap()
}

#[test]
fn every_command_exits_quietly_on_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    std::fs::create_dir_all(dir.path().join("lake")).unwrap();
    sluice_aggregators::SqliteAggregateStore::open(&dir.path().join("aggregates.db")).unwrap();
    let commands: &[&[&str]] = &[
        &["athena-ddl", "--lake", "s3://bucket/lake"],
        &["token", "--producer", "p", "--data-dir", data_dir],
        &["query", "SELECT 1 AS one", "--data-dir", data_dir],
        &["query", "SELECT 1 AS one", "--lake", "memory://"],
        &[
            "aggregates",
            "--event-type",
            "page_view",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-02T00:00:00Z",
            "--data-dir",
            data_dir,
        ],
    ];
    for args in commands {
        let out = run_into_closed_pipe(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "sluice {args:?}: {}\n{stderr}", out.status);
        assert!(!stderr.contains("panicked") && !stderr.contains("error"), "sluice {args:?}: {stderr}");
    }
}

#[test]
fn a_failed_query_reports_the_message_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lake")).unwrap();
    let out = sluice(&["query", "SELECT nope FROM page_view", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.matches("No field named nope").count(), 1, "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error: ")).count(), 1, "{stderr}");
    assert!(!stderr.contains("\"level\""), "no log line: {stderr}");
    assert!(stderr.starts_with("error: invalid query: "), "one error line, no log line: {stderr}");
}

#[test]
fn a_failed_command_reports_once_and_exits_1() {
    let out = sluice(&["query", "SELECT 1", "--lake", "ftp://host/lake"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: invalid lake URL \"ftp://host/lake\""), "{stderr}");
}

/// `sluice up` is a service: its stderr is its log stream, so a fatal error is one log line.
#[test]
fn a_failed_up_reports_once_as_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let out = sluice(&["up", "--listen", &listen, "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.matches("cannot listen on").count(), 1, "{stderr}");
    let line = stderr.lines().find(|l| l.contains("cannot listen on")).unwrap();
    let logged: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(logged["message"], "sluice failed", "{line}");
    assert_eq!(logged["level"], "ERROR", "{line}");
    assert!(!stderr.lines().any(|l| l.starts_with("error: ")), "{stderr}");
}
