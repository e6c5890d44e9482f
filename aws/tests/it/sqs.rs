//! SQS through the shared config: create a queue, send, receive, delete.

use aws_sdk_sqs::Client;
use sluice_testkit::moto::{moto, unique_name};

#[tokio::test]
async fn send_then_receive_a_message() {
    let Some(config) = moto().await else { return };
    let client = Client::new(&config);
    let queue_url = client.create_queue().queue_name(unique_name("dlq")).send().await.unwrap().queue_url.unwrap();

    client.send_message().queue_url(&queue_url).message_body(r#"{"reason":"schema_violation"}"#).send().await.unwrap();

    let received = client
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let [message] = received.messages() else {
        panic!("expected exactly the one message, got {:?}", received.messages());
    };
    assert_eq!(message.body(), Some(r#"{"reason":"schema_violation"}"#));

    client
        .delete_message()
        .queue_url(&queue_url)
        .receipt_handle(message.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    let after = client.receive_message().queue_url(&queue_url).wait_time_seconds(0).send().await.unwrap();
    assert!(after.messages().is_empty(), "{:?}", after.messages());
}
