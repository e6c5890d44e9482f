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
    assert!(exit.success(), "exit status {exit}; log: {:?}", sluice.stderr.try_iter().collect::<Vec<_>>());
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

#[tokio::test]
async fn a_token_from_sluice_token_posts_a_batch_into_the_local_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut sluice = start(dir.path(), &[]);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["token", "--producer", "checkout-service", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().to_owned();

    let body = serde_json::json!([
        {"event_type": "page_view", "occurred_at": "2026-11-26T10:00:00Z",
         "data": {"user_id": "u1", "session_id": "s1", "page": "/", "device": "web", "country": "DE", "duration_ms": 12.5}},
        {"event_id": "0190b9a4-7f3e-7c2a-9b1d-3f5e6a7b8c9d", "event_type": "purchase", "occurred_at": "2026-11-26T10:00:01+01:00",
         "data": {"user_id": "u1", "order_id": "o1", "amount": 9.99, "currency": "EUR", "country": "DE"}}
    ]);
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let (status, resp) = http(sluice.addr, "POST", "/v1/events", &headers, body.to_string().as_bytes()).await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&resp));
    let resp: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(resp["accepted"], 2);
    assert_eq!(resp["rejected"], 0);

    // Without a token: 401 problem.
    let (status, _) =
        http(sluice.addr, "POST", "/v1/events", &[("Content-Type", "application/json")], body.to_string().as_bytes())
            .await;
    assert_eq!(status, 401);

    assert!(sluice.interrupt(Duration::from_secs(10)).unwrap().0.success());

    // The records are in the local stream, with the producer from the token.
    let stream = sluice_esm::LocalStream::open(&dir.path().join("stream.db"), Default::default()).unwrap();
    let mut events = Vec::new();
    for shard in stream.shards().to_vec() {
        for r in stream.read(&shard, None, 100).unwrap() {
            events.push(serde_json::from_slice::<Value>(&r.data).unwrap());
        }
    }
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["producer"] == "checkout-service"));
    let purchase = events.iter().find(|e| e["event_type"] == "purchase").unwrap();
    assert_eq!(purchase["event_id"], "0190b9a4-7f3e-7c2a-9b1d-3f5e6a7b8c9d");
    assert_eq!(purchase["occurred_at"], "2026-11-26T09:00:01Z");
}

#[tokio::test]
async fn turning_auth_off_warns_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut sluice = start(dir.path(), &["--insecure-no-auth"]);
    let warned = sluice.stderr.try_iter().chain(sluice.seen.clone()).any(|l| l.contains("authentication is DISABLED"));
    assert!(warned, "no warning logged");
    assert!(sluice.interrupt(Duration::from_secs(10)).unwrap().0.success());
}
