//! `sluice dlq list --source sqs` and `sluice redrive --source sqs` against moto, as an
//! operator runs them against the AWS stack: flags for the queue, the stream and the endpoint;
//! credentials and region from the `AWS_*` environment.

use std::time::Duration;

use aws_sdk_kinesis::client::Waiters as _;
use aws_sdk_kinesis::types::ShardIteratorType;
use serde_json::Value;
use sluice_dlq::{DeadLetter, DeadLetterQueue as _, FailureKind, SqsDeadLetters};
use sluice_testkit::generate::{GenConfig, Generator, record_bytes};
use sluice_testkit::moto::{moto, moto_endpoint, unique_name};

use crate::support::sluice_cmd;

fn letter(seq: &str, data: Vec<u8>) -> DeadLetter {
    DeadLetter {
        source: "lake-writer".into(),
        kind: FailureKind::Invalid,
        reason: "unknown schema version".into(),
        shard_id: Some("shardId-000000000000".into()),
        sequence_number: Some(seq.into()),
        partition_key: Some("pk".into()),
        failed_at: chrono::Utc::now(),
        data,
    }
}

#[tokio::test]
async fn dead_letters_in_sqs_are_listed_and_redriven_into_kinesis_by_the_cli() {
    let Some(config) = moto().await else { return };
    let endpoint = moto_endpoint().unwrap().to_string();
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let stream = unique_name("redrive-cli");
    kinesis.create_stream().stream_name(&stream).shard_count(1).send().await.unwrap();
    kinesis.wait_until_stream_exists().stream_name(&stream).wait(Duration::from_secs(60)).await.unwrap();
    let queue = sqs.create_queue().queue_name(unique_name("dlq")).send().await.unwrap().queue_url.unwrap();
    let event = Generator::new(GenConfig { seed: 41, ..GenConfig::default() }).next_event();
    SqsDeadLetters::new(sqs.clone(), &queue)
        .send(vec![letter("1", record_bytes(&event)), letter("2", b"{\"not\":\"an event\"}".to_vec())])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let aws = ["--source", "sqs", "--queue-url", &queue, "--endpoint", &endpoint];
    let cmd = |head: &[&str], tail: &[&str]| {
        let args: Vec<&str> = head.iter().chain(&aws).chain(tail).copied().chain(["--data-dir"]).collect();
        sluice_cmd(&args, dir.path())
    };

    let listed: Vec<Value> = serde_json::from_str(&cmd(&["dlq", "list"], &["--format", "json"])).unwrap();
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert!(listed.iter().all(|e| e["store"] == "sqs" && e["source"] == "lake-writer"));
    let table = cmd(&["dlq", "list"], &[]);
    assert!(table.starts_with("STORE") && table.ends_with("2 entries\n"), "{table}");

    assert_eq!(
        cmd(&["redrive"], &["--stream", &stream, "--dry-run"]),
        "would redrive 1, still invalid 1, unrecoverable 0, not written 0 (dry run: nothing changed)\n"
    );
    assert_eq!(
        cmd(&["redrive"], &["--stream", &stream]),
        "redriven 1, still invalid 1, unrecoverable 0, not written 0\n"
    );
    assert_eq!(
        cmd(&["redrive"], &["--stream", &stream]),
        "redriven 0, still invalid 1, unrecoverable 0, not written 0\n"
    );
    let left: Vec<Value> = serde_json::from_str(&cmd(&["dlq", "list"], &["--format", "json"])).unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0]["reason"].as_str().unwrap().starts_with("invalid event:"), "{left:#?}");

    let shard = kinesis.list_shards().stream_name(&stream).send().await.unwrap().shards()[0].shard_id().to_owned();
    let it = kinesis
        .get_shard_iterator()
        .stream_name(&stream)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let records = kinesis.get_records().shard_iterator(it).send().await.unwrap();
    let got: Vec<(Option<&str>, &[u8])> =
        records.records().iter().map(|r| (r.partition_key(), r.data().as_ref())).collect();
    assert_eq!(got, [(Some(event.event_id.as_str()), record_bytes(&event).as_slice())]);
}

#[test]
fn an_aws_source_says_which_flag_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["redrive", "--source", "s3", "--stream", "s", "--data-dir"])
        .arg(dir.path())
        .env_remove("SLUICE_FAILURE_BUCKET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--source s3 needs --bucket"), "{stderr}");
}

#[tokio::test]
async fn an_s3_range_on_a_shard_that_is_gone_is_reported_unrecoverable_by_the_cli() {
    let Some(config) = moto().await else { return };
    let endpoint = moto_endpoint().unwrap().to_string();
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
    let stream = unique_name("redrive-cli");
    kinesis.create_stream().stream_name(&stream).shard_count(1).send().await.unwrap();
    kinesis.wait_until_stream_exists().stream_name(&stream).wait(Duration::from_secs(60)).await.unwrap();
    let bucket = unique_name("failures");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    // Lambda's on-failure record (its S3 shape without the payload): a range of a shard the
    // stream does not have.
    let record = serde_json::json!({
        "requestContext": {"requestId": "c9b8fa9f-5a7f-4d2e-af9c-0c604cde93a5",
                           "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:sluice-lake-writer",
                           "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2024-05-01T12:03:11.402Z",
        "KinesisBatchInfo": {"shardId": "shardId-000000000007", "startSequenceNumber": "100",
                             "endSequenceNumber": "120", "batchSize": 5,
                             "streamArn": format!("arn:aws:kinesis:us-east-1:123456789012:stream/{stream}")},
    });
    let key = "aws/lambda/4f1c1a5e-8d2b-4a3f-9c1e-7b6d5e4f3a2b/shardId-000000000007/2024/05/01/2024-05-01T12.03.11-1";
    s3.put_object().bucket(&bucket).key(key).body(record.to_string().into_bytes().into()).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let aws = ["--source", "s3", "--bucket", &bucket, "--stream", &stream, "--endpoint", &endpoint];
    let cmd = |head: &[&str]| {
        let args: Vec<&str> = head.iter().chain(&aws).copied().chain(["--data-dir"]).collect();
        sluice_cmd(&args, dir.path())
    };
    let table = cmd(&["dlq", "list"]);
    assert!(table.contains("esm:sluice-lake-writer") && table.contains("100..120"), "{table}");
    let out = cmd(&["redrive"]);
    assert!(out.starts_with("redriven 0, still invalid 0, unrecoverable 5, not written 0\n"), "{out}");
    assert!(
        out.contains(&format!(
            "unrecoverable: s3:{key} (shardId-000000000007 100..120, 5 records): shard shardId-000000000007"
        )),
        "{out}"
    );
    let table = cmd(&["dlq", "list"]);
    assert!(table.contains("unrecoverable: shard shardId-000000000007"), "kept, marked: {table}");
}
