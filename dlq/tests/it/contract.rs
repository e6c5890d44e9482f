use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{TimeZone, Utc};
use sluice_dlq::{
    DeadLetter, DeadLetterQueue, DlqError, FailureKind, MemoryDeadLetters, SqliteDeadLetters, SqsDeadLetters,
};

fn letter(seq: u32, data: &[u8]) -> DeadLetter {
    DeadLetter {
        source: "aggregator".into(),
        kind: FailureKind::Invalid,
        reason: format!("record {seq} is not valid JSON"),
        shard_id: Some("shardId-000000000001".into()),
        sequence_number: Some(format!("49{seq:054}")),
        partition_key: Some(format!("pk-{seq}")),
        failed_at: Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, seq % 60).unwrap(),
        data: data.to_vec(),
    }
}

/// Binary payloads, including bytes that are not UTF-8, survive unchanged.
fn payloads() -> Vec<Vec<u8>> {
    vec![b"{not json".to_vec(), vec![0, 159, 146, 150, 255], Vec::new(), vec![b'x'; 10_000]]
}

/// Sends the letters, twice (redelivery).
async fn send_twice<Q: DeadLetterQueue>(q: &Q, letters: &[DeadLetter]) {
    q.send(letters.to_vec()).await.unwrap();
    q.send(letters.to_vec()).await.unwrap();
}

/// An adapter under the shared suite, with a way to read back everything it stored.
trait Stored: DeadLetterQueue {
    /// Every stored letter (may consume them: called once, at the end of the suite).
    fn stored(&self) -> impl std::future::Future<Output = Vec<DeadLetter>> + Send;
}

impl Stored for MemoryDeadLetters {
    async fn stored(&self) -> Vec<DeadLetter> {
        self.letters()
    }
}

impl Stored for SqliteDeadLetters {
    async fn stored(&self) -> Vec<DeadLetter> {
        self.list(0, 100_000).unwrap().into_iter().map(|s| s.letter).collect()
    }
}

/// The SQS adapter and the queue it sends to, read back by receiving (and deleting) every message.
struct SqsUnderTest {
    adapter: SqsDeadLetters,
    client: aws_sdk_sqs::Client,
    url: String,
}

impl DeadLetterQueue for SqsUnderTest {
    async fn send(&self, letters: Vec<DeadLetter>) -> Result<(), DlqError> {
        self.adapter.send(letters).await
    }
}

impl Stored for SqsUnderTest {
    async fn stored(&self) -> Vec<DeadLetter> {
        let mut received = Vec::new();
        let mut empty_polls = 0;
        while empty_polls < 3 {
            let out =
                self.client.receive_message().queue_url(&self.url).max_number_of_messages(10).send().await.unwrap();
            if out.messages().is_empty() {
                empty_polls += 1;
            }
            for m in out.messages() {
                received.push(DeadLetter::from_json(m.body().unwrap()).unwrap());
                let handle = m.receipt_handle().unwrap();
                self.client.delete_message().queue_url(&self.url).receipt_handle(handle).send().await.unwrap();
            }
        }
        received
    }
}

/// The port's contract, the same for every adapter: exact bytes kept; a letter with a stream
/// position stored once however often it is sent; one without a position stored each time; an
/// empty send stores nothing.
async fn contract<Q: Stored>(q: &Q) {
    let letters: Vec<_> = payloads().iter().enumerate().map(|(i, p)| letter(i as u32, p)).collect();
    send_twice(q, &letters).await;
    // A redelivery re-split differently: a prefix again, then the rest.
    q.send(letters[..2].to_vec()).await.unwrap();
    q.send(letters[1..].to_vec()).await.unwrap();
    let mut unplaced = letter(90, b"no position");
    unplaced.shard_id = None;
    unplaced.sequence_number = None;
    send_twice(q, std::slice::from_ref(&unplaced)).await;
    q.send(Vec::new()).await.unwrap();

    let key = |l: &DeadLetter| (l.sequence_number.clone(), l.reason.clone(), l.data.clone());
    let mut expected: Vec<DeadLetter> = letters.iter().cloned().chain([unplaced.clone(), unplaced]).collect();
    expected.sort_by_key(key);
    let mut stored = q.stored().await;
    stored.sort_by_key(key);
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn contract_memory() {
    contract(&MemoryDeadLetters::new()).await;
}

#[tokio::test]
async fn contract_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    contract(&SqliteDeadLetters::open(&dir.path().join("dlq.db")).unwrap()).await;
}

/// SQS as template.yaml creates it: a FIFO queue.
#[tokio::test]
async fn contract_sqs_fifo() {
    let Some(conf) = sluice_testkit::moto::moto().await else { return };
    let client = aws_sdk_sqs::Client::new(&conf);
    let name = format!("{}.fifo", sluice_testkit::moto::unique_name("dlq"));
    let url = client
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let adapter = SqsDeadLetters::new(client.clone(), &url);
    contract(&SqsUnderTest { adapter, client, url }).await;
}

#[tokio::test]
async fn sqlite_keeps_exact_bytes_once_and_supports_redrive_ops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dlq.db");
    let letters: Vec<_> = payloads().iter().enumerate().map(|(i, p)| letter(i as u32, p)).collect();
    {
        let q = SqliteDeadLetters::open(&path).unwrap();
        send_twice(&q, &letters).await;
    }
    // Reopen: durable.
    let q = SqliteDeadLetters::open(&path).unwrap();
    assert_eq!(q.count().unwrap(), letters.len() as u64);
    let stored = q.list(0, 100).unwrap();
    assert_eq!(stored.iter().map(|s| s.letter.clone()).collect::<Vec<_>>(), letters);
    // Paging.
    let first_two = q.list(0, 2).unwrap();
    assert_eq!(first_two.len(), 2);
    let rest = q.list(first_two[1].id, 100).unwrap();
    assert_eq!(rest.len(), letters.len() - 2);
    // get / delete.
    let id = stored[0].id;
    assert_eq!(q.get(id).unwrap().unwrap().letter, letters[0]);
    assert!(q.delete(id).unwrap());
    assert!(!q.delete(id).unwrap());
    assert!(q.get(id).unwrap().is_none());
    assert_eq!(q.count().unwrap(), letters.len() as u64 - 1);
}

#[tokio::test]
async fn sqlite_keeps_letters_without_position_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteDeadLetters::open(&dir.path().join("dlq.db")).unwrap();
    let mut l = letter(1, b"x");
    l.shard_id = None;
    l.sequence_number = None;
    send_twice(&q, std::slice::from_ref(&l)).await;
    assert_eq!(q.count().unwrap(), 2, "letters with no stream position cannot be deduplicated");
}

#[tokio::test]
async fn memory_dedups_like_sqlite_and_injects_failures() {
    let q = MemoryDeadLetters::new();
    let letters: Vec<_> = payloads().iter().enumerate().map(|(i, p)| letter(i as u32, p)).collect();
    send_twice(&q, &letters).await;
    assert_eq!(q.letters(), letters);
    q.fail_next(1);
    assert!(matches!(q.send(vec![letter(99, b"y")]).await, Err(DlqError::Unavailable(_))));
    q.send(vec![letter(99, b"y")]).await.unwrap();
    assert_eq!(q.letters().len(), letters.len() + 1);
}

#[test]
fn json_round_trip_keeps_binary_data() {
    for p in payloads() {
        let l = letter(7, &p);
        let json = l.to_json().unwrap();
        assert_eq!(DeadLetter::from_json(&json).unwrap(), l);
    }
    assert!(matches!(DeadLetter::from_json("{\"source\":1}"), Err(DlqError::Encoding(_))));
}

#[tokio::test]
async fn sqs_delivers_every_letter_with_attributes() {
    let Some(conf) = sluice_testkit::moto::moto().await else { return };
    let client = aws_sdk_sqs::Client::new(&conf);
    let name = sluice_testkit::moto::unique_name("dlq");
    let url = client.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
    // 23 letters: three SendMessageBatch calls of at most 10.
    let letters: Vec<_> = (0..23u32).map(|i| letter(i, format!("payload-{i}").as_bytes())).collect();
    let q = SqsDeadLetters::new(client.clone(), &url);
    q.send(letters.clone()).await.unwrap();

    let mut received = Vec::new();
    for _ in 0..20 {
        let out = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            let attrs = m.message_attributes().unwrap();
            assert_eq!(attrs["source"].string_value(), Some("aggregator"));
            assert_eq!(attrs["kind"].string_value(), Some("invalid"));
            received.push(DeadLetter::from_json(m.body().unwrap()).unwrap());
            client.delete_message().queue_url(&url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
        if received.len() >= letters.len() {
            break;
        }
    }
    received.sort_by(|a, b| a.sequence_number.cmp(&b.sequence_number));
    assert_eq!(received, letters);
    let attrs = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    assert_eq!(attrs.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessages], "0");
}

#[tokio::test]
async fn sqs_refuses_oversized_letters_before_sending_anything() {
    let Some(conf) = sluice_testkit::moto::moto().await else { return };
    let client = aws_sdk_sqs::Client::new(&conf);
    let url = client.create_queue().queue_name(sluice_testkit::moto::unique_name("dlq")).send().await.unwrap();
    let url = url.queue_url.unwrap();
    let q = SqsDeadLetters::new(client.clone(), &url).with_max_message_bytes(4096);
    let err = q.send(vec![letter(1, b"small"), letter(2, &[7u8; 8192])]).await.unwrap_err();
    assert!(matches!(err, DlqError::Rejected(_)), "{err}");
    let out = client.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
    assert!(out.messages().is_empty(), "nothing is half-sent");
}
