//! Redrive of the AWS sources on moto: the SQS dead-letter queue (sluice's dead letters and
//! Lambda on-failure records naming a range, re-read from Kinesis) and the S3 on-failure
//! destination (payload as an escaped string and as an object), into a Kinesis stream. Valid
//! records are re-submitted once, still-invalid ones kept with their current reason, expired
//! ranges reported unrecoverable, a second run re-submits nothing.

use std::time::Duration;

use aws_sdk_kinesis::client::Waiters as _;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_sqs::types::QueueAttributeName;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sluice_dlq::{DeadLetter, DeadLetterQueue as _, FailureKind, SqsDeadLetters};
use sluice_ingest::eventlog::{AppendOutcome, BoxFuture, EventLog, LogRecord};
use sluice_jobs::redrive::kinesis::event_log;
use sluice_jobs::redrive::s3::S3Source;
use sluice_jobs::redrive::sqs::SqsSource;
use sluice_jobs::redrive::{Entry, RedriveReport};
use sluice_schemas::{Event, Registry};
use sluice_testkit::generate::{GenConfig, Generator, record_bytes};
use sluice_testkit::moto::{moto, unique_name};

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/redrive").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn events(seed: u64, n: usize) -> Vec<Event> {
    Generator::new(GenConfig { seed, ..GenConfig::default() }).take(n)
}

/// A stream of `shards` shards; its ARN.
async fn stream(kinesis: &aws_sdk_kinesis::Client, shards: i32) -> (String, String) {
    let name = unique_name("redrive");
    kinesis.create_stream().stream_name(&name).shard_count(shards).send().await.unwrap();
    kinesis.wait_until_stream_exists().stream_name(&name).wait(Duration::from_secs(60)).await.unwrap();
    let arn = kinesis.describe_stream_summary().stream_name(&name).send().await.unwrap();
    let arn = arn.stream_description_summary.unwrap().stream_arn;
    (name, arn)
}

/// Puts `data` into `stream`; the shard and sequence number of each.
async fn put(kinesis: &aws_sdk_kinesis::Client, stream: &str, data: &[Vec<u8>]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in data {
        let r = kinesis
            .put_record()
            .stream_name(stream)
            .partition_key("pk")
            .data(Blob::new(d.clone()))
            .send()
            .await
            .unwrap();
        out.push((r.shard_id().to_owned(), r.sequence_number().to_owned()));
    }
    out
}

/// Every record of `stream` (partition key, bytes), sorted.
async fn read_all(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<(String, Vec<u8>)> {
    let shards = kinesis.list_shards().stream_name(stream).send().await.unwrap();
    let mut out = Vec::new();
    for shard in shards.shards() {
        let it = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        let page = kinesis.get_records().shard_iterator(it).send().await.unwrap();
        out.extend(
            page.records()
                .iter()
                .map(|r| (r.partition_key().unwrap_or_default().to_owned(), r.data().as_ref().to_vec())),
        );
    }
    out.sort();
    out
}

fn keyed(events: &[&Event]) -> Vec<(String, Vec<u8>)> {
    let mut want: Vec<(String, Vec<u8>)> = events.iter().map(|e| (e.event_id.clone(), record_bytes(e))).collect();
    want.sort();
    want
}

/// The Lambda on-failure record of the fixture, naming `range` of `shard` in `stream_arn`.
fn on_failure(stream_arn: &str, shard: &str, start: &str, end: &str, size: usize) -> Value {
    let mut record = fixture("sqs_on_failure_kinesis.json");
    let info = &mut record["KinesisBatchInfo"];
    info["streamArn"] = json!(stream_arn);
    info["shardId"] = json!(shard);
    info["startSequenceNumber"] = json!(start);
    info["endSequenceNumber"] = json!(end);
    info["batchSize"] = json!(size);
    record
}

fn letter(source: &str, seq: Option<&str>, reason: &str, data: Vec<u8>) -> DeadLetter {
    DeadLetter {
        source: source.into(),
        kind: FailureKind::Invalid,
        reason: reason.into(),
        shard_id: seq.map(|_| "shardId-000000000001".into()),
        sequence_number: seq.map(str::to_owned),
        partition_key: Some("pk".into()),
        failed_at: now(),
        data,
    }
}

fn summary(entries: &[Entry]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = entries.iter().map(|e| (e.source.clone(), e.reason.clone())).collect();
    out.sort();
    out
}

/// The decimal sequence number `seq` plus `delta` (1 or -1), as text (Kinesis' numbers have
/// more digits than a u128).
fn step(seq: &str, delta: i8) -> String {
    let mut digits: Vec<u8> = seq.bytes().map(|b| b - b'0').collect();
    for d in digits.iter_mut().rev() {
        match (delta, *d) {
            (1, 9) => *d = 0,
            (1, _) => {
                *d += 1;
                break;
            }
            (_, 0) => *d = 9,
            _ => {
                *d -= 1;
                break;
            }
        }
    }
    let text: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    match text.trim_start_matches('0') {
        "" => "0".to_owned(),
        t => t.to_owned(),
    }
}

#[tokio::test]
async fn sqs_dead_letters_and_ranges_re_read_from_kinesis_are_redriven_once() {
    let Some(config) = moto().await else { return };
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let registry = Registry::builtin().unwrap();
    let ev = events(31, 4);

    // The stream the discarded batches were read from: two valid records around an invalid one.
    let (source, source_arn) = stream(&kinesis, 1).await;
    let put_at = put(&kinesis, &source, &[record_bytes(&ev[0]), b"garbage".to_vec(), record_bytes(&ev[1])]).await;
    let shard = put_at[0].0.clone();
    let (target, _) = stream(&kinesis, 2).await;

    // A FIFO dead-letter queue, as template.yaml creates it.
    let queue = sqs
        .create_queue()
        .queue_name(format!("{}.fifo", unique_name("dlq")))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    SqsDeadLetters::new(sqs.clone(), &queue)
        .send(vec![
            letter("aggregator", Some("7"), "unknown schema version", record_bytes(&ev[2])),
            letter("lake-writer", Some("7"), "unknown schema version", record_bytes(&ev[2])),
            letter("aggregator", None, "unknown event type", record_bytes(&ev[3])),
            letter("lake-writer", Some("9"), "old reason", b"{\"not\":\"an event\"}".to_vec()),
        ])
        .await
        .unwrap();
    // On-failure records (an SQS destination: the range only): the batch above; a shard that
    // does not exist; a range starting before the shard's first record (trimmed).
    let (first, last) = (&put_at[0].1, &put_at[2].1);
    let failures = [
        on_failure(&source_arn, &shard, first, last, 3),
        on_failure(&source_arn, "shardId-000000000099", first, last, 2),
        on_failure(&source_arn, &shard, &step(first, -1), first, 2),
    ];
    for (i, body) in failures.iter().enumerate() {
        // The last as an SNS destination delivers it to a subscribed queue (no raw delivery).
        let body = if i == 2 {
            let mut notification = fixture("sns_notification_on_failure.json");
            notification["Message"] = json!(body.to_string());
            notification
        } else {
            body.clone()
        };
        sqs.send_message()
            .queue_url(&queue)
            .message_body(body.to_string())
            .message_group_id("lambda-on-failure")
            .message_deduplication_id(format!("f{i}"))
            .send()
            .await
            .unwrap();
    }

    let source_ = SqsSource::new(&config, &queue, None);
    let listed = source_.list(now()).await.unwrap();
    assert_eq!(listed.len(), 7, "{listed:#?}");
    let ranged: Vec<&Entry> = listed.iter().filter(|e| e.source == "esm:sluice-aggregator").collect();
    assert_eq!(ranged.len(), 3);
    assert!(ranged.iter().all(|e| e.reason == "RetryAttemptsExhausted: Unhandled (records named by range only)"));
    assert!(ranged.iter().any(|e| e.first_sequence.as_deref() == Some(first.as_str()) && e.records == 3));

    let log = event_log(&config, &target);
    let expected =
        RedriveReport { redriven: 4, still_invalid: 2, unrecoverable: 3, dry_run: true, ..Default::default() };
    let dry = source_.redrive(&registry, &log, true, now()).await.unwrap();
    assert_eq!(RedriveReport { lost: Vec::new(), ..dry.clone() }, expected, "{dry:#?}");
    assert_eq!(summary(&source_.list(now()).await.unwrap()), summary(&listed), "a dry run changes nothing");
    assert!(read_all(&kinesis, &target).await.is_empty());

    let report = source_.redrive(&registry, &log, false, now()).await.unwrap();
    assert_eq!(
        RedriveReport { lost: Vec::new(), ..report.clone() },
        RedriveReport { dry_run: false, ..expected.clone() }
    );
    let mut lost: Vec<(usize, &str)> = report.lost.iter().map(|l| (l.records, l.reason.as_str())).collect();
    lost.sort();
    assert!(lost[0].0 == 1 && lost[0].1.contains("trimmed past the start"), "{lost:?}");
    assert!(lost[1].0 == 2 && lost[1].1.contains("shardId-000000000099") && lost[1].1.contains("no longer exists"));
    assert_eq!(
        read_all(&kinesis, &target).await,
        keyed(&[&ev[0], &ev[1], &ev[2], &ev[3]]),
        "each valid record once, its bytes as they were, keyed by event_id"
    );

    let left = source_.list(now()).await.unwrap();
    let reasons = summary(&left);
    assert_eq!(left.len(), 4, "{left:#?}");
    assert!(reasons.iter().any(|(s, r)| s == "lake-writer" && r.starts_with("invalid event:")), "{reasons:?}");
    assert!(
        left.iter().any(|e| e.source == "esm:sluice-aggregator"
            && e.reason.starts_with("invalid event:")
            && e.first_sequence.as_deref() == Some(put_at[1].1.as_str())),
        "the batch's invalid record is a dead letter now: {left:#?}"
    );
    assert_eq!(left.iter().filter(|e| e.reason.starts_with("unrecoverable: ")).count(), 2, "{left:#?}");

    // Again: nothing re-submitted, the same left over.
    let again = source_.redrive(&registry, &log, false, now()).await.unwrap();
    assert_eq!(
        RedriveReport { lost: Vec::new(), ..again },
        RedriveReport { redriven: 0, dry_run: false, ..expected.clone() }
    );
    assert_eq!(read_all(&kinesis, &target).await.len(), 4);
    assert_eq!(summary(&source_.list(now()).await.unwrap()), reasons);
}

/// A stream that takes nothing.
struct Down;

impl EventLog for Down {
    fn append(&self, records: Vec<LogRecord>) -> BoxFuture<'_, Vec<AppendOutcome>> {
        Box::pin(async move { records.iter().map(|_| AppendOutcome::failed("Unavailable", "down")).collect() })
    }
    fn kind(&self) -> &'static str {
        "down"
    }
}

#[tokio::test]
async fn a_dead_letter_leaves_a_standard_queue_only_once_the_stream_took_it() {
    let Some(config) = moto().await else { return };
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let registry = Registry::builtin().unwrap();
    let ev = events(32, 2);
    let (target, _) = stream(&kinesis, 1).await;
    let queue = sqs.create_queue().queue_name(unique_name("dlq")).send().await.unwrap().queue_url.unwrap();
    SqsDeadLetters::new(sqs.clone(), &queue)
        .send(vec![
            letter("aggregator", Some("1"), "unknown schema version", record_bytes(&ev[0])),
            letter("aggregator", Some("2"), "unknown schema version", record_bytes(&ev[1])),
        ])
        .await
        .unwrap();
    let source = SqsSource::new(&config, &queue, None);
    let report = source.redrive(&registry, &Down, false, now()).await.unwrap();
    assert_eq!((report.redriven, report.not_written), (0, 2));
    assert_eq!(source.list(now()).await.unwrap().len(), 2, "kept, visible again at once");

    let log = event_log(&config, &target);
    let report = source.redrive(&registry, &log, false, now()).await.unwrap();
    assert_eq!((report.redriven, report.not_written, report.still_invalid), (2, 0, 0));
    assert!(source.list(now()).await.unwrap().is_empty());
    assert_eq!(read_all(&kinesis, &target).await, keyed(&[&ev[0], &ev[1]]));
}

#[tokio::test]
async fn s3_on_failure_objects_are_redriven_once_and_what_stays_is_explained() {
    let Some(config) = moto().await else { return };
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
    let registry = Registry::builtin().unwrap();
    let ev = events(33, 2);
    let (source, source_arn) = stream(&kinesis, 1).await;
    let put_at = put(&kinesis, &source, &[record_bytes(&ev[0]), record_bytes(&ev[1])]).await;
    let shard = put_at[0].0.clone();
    let (target, _) = stream(&kinesis, 2).await;
    let bucket = unique_name("failures");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();

    // 1. The payload as an escaped string: the fixture's first record and an invalid copy of
    //    it one sequence number later.
    let mut as_string = fixture("s3_on_failure_payload_string.json");
    let mut payload: Value = serde_json::from_str(as_string["payload"].as_str().unwrap()).unwrap();
    let mut garbage = payload["Records"][0].clone();
    let seq = step(garbage["kinesis"]["sequenceNumber"].as_str().unwrap(), 1);
    garbage["kinesis"]["sequenceNumber"] = json!(seq);
    garbage["kinesis"]["data"] = json!(STANDARD.encode(b"garbage"));
    garbage["eventID"] = json!(format!("shardId-000000000000:{seq}"));
    payload["Records"][1] = garbage;
    as_string["payload"] = json!(payload.to_string());
    // 2. The payload as an object (as some emulators write it): the fixture as it is, whose
    //    first record is the same stream record as above.
    let as_object = fixture("s3_on_failure_payload_object.json");
    let fixture_events: Vec<Vec<u8>> = as_object["payload"]["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| STANDARD.decode(r["kinesis"]["data"].as_str().unwrap()).unwrap())
        .collect();
    // 3. No payload: the range, re-read from the stream. 4. A range on a shard that is gone.
    let mut range_only = on_failure(&source_arn, &shard, &put_at[0].1, &put_at[1].1, 2);
    range_only["timestamp"] = json!("2024-05-01T12:05:00.000Z");
    let gone = on_failure(&source_arn, "shardId-000000000042", &put_at[0].1, &put_at[1].1, 2);
    let key = |n: usize, shard: &str| {
        format!("aws/lambda/4f1c1a5e-8d2b-4a3f-9c1e-7b6d5e4f3a2b/{shard}/2024/05/01/2024-05-01T12.0{n}.11-3e2d1c0b-{n}")
    };
    let objects = [
        (key(1, "shardId-000000000000"), as_string),
        (key(2, "shardId-000000000000"), as_object),
        (key(3, &shard), range_only),
        (key(4, "shardId-000000000042"), gone),
    ];
    for (k, body) in &objects {
        s3.put_object().bucket(&bucket).key(k).body(body.to_string().into_bytes().into()).send().await.unwrap();
    }
    let get =
        async |k: &str| s3.get_object().bucket(&bucket).key(k).send().await.unwrap().body.collect().await.unwrap();

    let source_ = S3Source::new(&config, true, &bucket, None, None);
    let listed = source_.list(now()).await.unwrap();
    assert_eq!(listed.len(), 4, "{listed:#?}");
    assert!(listed.iter().all(|e| e.store == "s3" && e.source == "esm:sluice-aggregator"), "{listed:#?}");
    assert_eq!(listed.iter().map(|e| e.records).collect::<Vec<_>>(), [2, 2, 2, 2]);

    let log = event_log(&config, &target);
    let expected =
        RedriveReport { redriven: 4, still_invalid: 1, unrecoverable: 2, dry_run: true, ..Default::default() };
    let dry = source_.redrive(&registry, &log, true, now()).await.unwrap();
    assert_eq!(RedriveReport { lost: Vec::new(), ..dry }, expected);
    assert_eq!(source_.list(now()).await.unwrap(), listed, "a dry run changes nothing");
    assert!(read_all(&kinesis, &target).await.is_empty());

    let report = source_.redrive(&registry, &log, false, now()).await.unwrap();
    assert_eq!(
        RedriveReport { lost: Vec::new(), ..report.clone() },
        RedriveReport { dry_run: false, ..expected.clone() }
    );
    assert_eq!(report.lost.len(), 1);
    assert_eq!(report.lost[0].entry, format!("s3:{}", objects[3].0));
    assert!(report.lost[0].reason.contains("no longer exists"), "{:?}", report.lost);
    let mut want: Vec<(String, Vec<u8>)> = fixture_events
        .iter()
        .map(|d| (registry.decode_stored(d).unwrap().event_id, d.clone()))
        .chain(keyed(&[&ev[0], &ev[1]]))
        .collect();
    want.sort();
    assert_eq!(read_all(&kinesis, &target).await, want, "each valid record once, as it was, keyed by event_id");

    // Left: the string-payload object holding only its invalid record, with why; the
    // unrecoverable range, marked.
    let left = source_.list(now()).await.unwrap();
    assert_eq!(left.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [objects[0].0.as_str(), objects[3].0.as_str()]);
    assert_eq!(left[0].records, 1);
    assert!(left[0].reason.contains("still invalid: invalid event:"), "{left:#?}");
    assert!(left[1].reason.starts_with("unrecoverable: shard shardId-000000000042"), "{left:#?}");
    let kept: Value = serde_json::from_slice(&get(&objects[0].0).await.into_bytes()).unwrap();
    let records: Value = serde_json::from_str(kept["payload"].as_str().unwrap()).unwrap();
    assert_eq!(records["Records"].as_array().unwrap().len(), 1);
    assert_eq!(records["Records"][0]["kinesis"]["data"], json!(STANDARD.encode(b"garbage")));

    // Again: nothing re-submitted, nothing rewritten.
    let before: Vec<Vec<u8>> =
        vec![get(&objects[0].0).await.into_bytes().to_vec(), get(&objects[3].0).await.into_bytes().to_vec()];
    let again = source_.redrive(&registry, &log, false, now()).await.unwrap();
    assert_eq!(
        RedriveReport { lost: Vec::new(), ..again },
        RedriveReport { redriven: 0, dry_run: false, ..expected.clone() }
    );
    assert_eq!(read_all(&kinesis, &target).await.len(), 4);
    let after: Vec<Vec<u8>> =
        vec![get(&objects[0].0).await.into_bytes().to_vec(), get(&objects[3].0).await.into_bytes().to_vec()];
    assert_eq!(before, after);
}

#[test]
fn sequence_steps() {
    let seq = "49651505405573512287146337226367405392566178546355519490";
    assert_eq!(step(seq, 1), "49651505405573512287146337226367405392566178546355519491");
    assert_eq!(step("1000", -1), "999");
    assert_eq!(step("199", 1), "200");
    assert_eq!(step("1", -1), "0");
}

#[test]
fn the_fixtures_are_the_shapes_lambda_writes() {
    use sluice_jobs::redrive::kinesis::FailureRecord;
    let registry = Registry::builtin().unwrap();
    for name in ["s3_on_failure_payload_string.json", "s3_on_failure_payload_object.json"] {
        let record = FailureRecord::parse(&serde_json::to_vec(&fixture(name)).unwrap()).unwrap().unwrap();
        let records = record.payload_records().unwrap().unwrap();
        assert_eq!(records.len(), 2, "{name}");
        assert!(records.iter().all(|r| r.shard_id == "shardId-000000000000"));
        for r in &records {
            assert_eq!(registry.decode_stored(&r.data).unwrap().event_id, r.partition_key, "{name}");
        }
        assert_eq!(record.info.as_ref().unwrap().batch_size, Some(2));
    }
    let metadata =
        FailureRecord::parse(&serde_json::to_vec(&fixture("sqs_on_failure_kinesis.json")).unwrap()).unwrap().unwrap();
    assert!(metadata.payload_records().is_none());
    assert_eq!(
        metadata.info.unwrap().start_sequence_number,
        "49651505405573512287146337226367405392566178546355519490"
    );
}

#[tokio::test]
async fn a_trimmed_range_keeps_its_invalid_survivors_and_says_what_is_lost() {
    let Some(config) = moto().await else { return };
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
    let registry = Registry::builtin().unwrap();
    let ev = events(34, 1);
    let (source, source_arn) = stream(&kinesis, 1).await;
    let put_at = put(&kinesis, &source, &[record_bytes(&ev[0]), b"garbage".to_vec()]).await;
    let (target, _) = stream(&kinesis, 1).await;
    let bucket = unique_name("failures");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    // A batch of 3 from one before the shard's first record: that one is gone.
    let key =
        format!("aws/lambda/4f1c1a5e-8d2b-4a3f-9c1e-7b6d5e4f3a2b/{}/2024/05/01/2024-05-01T12.09.11-9a8b", put_at[0].0);
    let record = on_failure(&source_arn, &put_at[0].0, &step(&put_at[0].1, -1), &put_at[1].1, 3);
    s3.put_object().bucket(&bucket).key(&key).body(record.to_string().into_bytes().into()).send().await.unwrap();

    let source_ = S3Source::new(&config, true, &bucket, None, None);
    let log = event_log(&config, &target);
    let report = source_.redrive(&registry, &log, false, now()).await.unwrap();
    assert_eq!((report.redriven, report.still_invalid, report.unrecoverable), (1, 1, 1), "{report:#?}");
    assert!(report.lost[0].reason.contains("trimmed past the start"), "{report:#?}");
    assert_eq!(read_all(&kinesis, &target).await, keyed(&[&ev[0]]));

    // The object now carries its invalid survivor (as a Kinesis event record) and the mark.
    let left = source_.list(now()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].records, left[0].first_sequence.as_deref()), (1, Some(put_at[1].1.as_str())));
    assert!(left[0].reason.starts_with("unrecoverable: "), "{left:#?}");
    let again = source_.redrive(&registry, &log, false, now()).await.unwrap();
    assert_eq!((again.redriven, again.still_invalid, again.unrecoverable), (0, 1, 1), "{again:#?}");
    assert_eq!(read_all(&kinesis, &target).await.len(), 1);
}
