//! The acceptance of the foundation: `sluice up` starts, answers /health, exits 0 on Ctrl-C.

use std::time::Duration;

use serde_json::Value;

use crate::support::{http, start};

#[tokio::test]
async fn up_serves_health_and_metrics_and_exits_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut sluice = start(dir.path(), &[]);

    let (status, body) = http(sluice.addr, "GET", "/health", &[], b"").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let health: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["components"]["stream"]["status"], "ok");
    assert_eq!(health["components"]["stream"]["shards"], 4);

    let (status, body) = http(sluice.addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8(body).unwrap().is_ascii());

    let (exit, took) = sluice.interrupt(Duration::from_secs(10)).expect("sluice did not exit within 10 s of SIGINT");
    assert!(exit.success(), "exit status {exit}");
    assert!(took < Duration::from_secs(10));
    assert!(dir.path().join("stream.db").exists());
}

#[tokio::test]
async fn restart_reuses_the_data_dir_and_refuses_a_different_shard_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start(dir.path(), &["--shards", "2"]);
    let (exit, _) = first.interrupt(Duration::from_secs(10)).unwrap();
    assert!(exit.success());

    let mut again = start(dir.path(), &["--shards", "2"]);
    let (status, body) = http(again.addr, "GET", "/health", &[], b"").await;
    assert_eq!(status, 200);
    let health: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["components"]["stream"]["shards"], 2);
    assert!(again.interrupt(Duration::from_secs(10)).unwrap().0.success());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["up", "--listen", "127.0.0.1:0", "--shards", "3", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a different shard count must be refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shard"), "{stderr}");
}
