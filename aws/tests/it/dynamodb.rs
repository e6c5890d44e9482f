//! DynamoDB through the shared config: create a table, conditional put, read back.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use sluice_testkit::moto::{moto, unique_name};

#[tokio::test]
async fn conditional_put_keeps_the_first_write() {
    let Some(config) = moto().await else { return };
    let client = Client::new(&config);
    let table = unique_name("aggregates");

    client
        .create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();

    let put = |count: &str| {
        client
            .put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S("order_placed#2024-01-01T00:00".to_owned()))
            .item("count", AttributeValue::N(count.to_owned()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
    };
    put("1").await.unwrap();
    let second = put("2").await.unwrap_err().into_service_error();
    assert!(
        second.is_conditional_check_failed_exception(),
        "the second write must be rejected by its condition: {second:?}"
    );

    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("order_placed#2024-01-01T00:00".to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item.get("count"), Some(&AttributeValue::N("1".to_owned())));
}
