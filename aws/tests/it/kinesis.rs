//! Kinesis through the shared config: create a stream, put a record, read it back.

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::client::Waiters as _;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use sluice_testkit::moto::{moto, unique_name};

#[tokio::test]
async fn put_record_then_get_it_back() {
    let Some(config) = moto().await else { return };
    let client = Client::new(&config);
    let stream = unique_name("stream");

    client.create_stream().stream_name(&stream).shard_count(1).send().await.unwrap();
    client.wait_until_stream_exists().stream_name(&stream).wait(Duration::from_secs(60)).await.unwrap();

    let put = client
        .put_record()
        .stream_name(&stream)
        .partition_key("customer-42")
        .data(Blob::new(br#"{"event_type":"order_placed"}"#.to_vec()))
        .send()
        .await
        .unwrap();

    let iterator = client
        .get_shard_iterator()
        .stream_name(&stream)
        .shard_id(put.shard_id())
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(put.sequence_number())
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let got = client.get_records().shard_iterator(iterator).send().await.unwrap();

    let [record] = got.records() else {
        panic!("expected exactly the one record, got {:?}", got.records());
    };
    assert_eq!(record.partition_key(), Some("customer-42"));
    assert_eq!(record.sequence_number(), put.sequence_number());
    assert_eq!(record.data().as_ref(), br#"{"event_type":"order_placed"}"#.as_slice());
}
