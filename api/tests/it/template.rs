//! template.yaml's ingest function agrees with the code: its binary is this crate's, every
//! variable it sets is one the Lambda reads, and the aggregate table it names is readable.

use serde_norway::Value;

fn ingest_function() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let template: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    template["Resources"]["IngestFunction"].clone()
}

/// `!Ref <name>`'s name.
fn reference(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str(),
        _ => None,
    }
}

#[test]
fn the_ingest_function_runs_this_crates_binary() {
    let f = ingest_function();
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_ingest-lambda")).file_stem().unwrap();
    assert_eq!(f["Metadata"]["BuildProperties"]["Binary"].as_str(), binary.to_str());
}

#[test]
fn every_variable_of_the_ingest_function_is_read_and_the_aggregate_table_is_readable() {
    let f = ingest_function();
    let vars = f["Properties"]["Environment"]["Variables"].as_mapping().unwrap();
    for name in vars.keys() {
        let name = name.as_str().unwrap();
        assert!(
            sluice_ingest::config::ENV_VARS.iter().any(|(n, _)| *n == name),
            "template.yaml sets {name} on the ingest function, which the Lambda does not read"
        );
    }
    let table = reference(&vars["SLUICE_AGGREGATES_TABLE"]).expect("SLUICE_AGGREGATES_TABLE: !Ref <table>");
    assert_eq!(table, "AggregatesTable");
    // The reader's only DynamoDB call is a strongly consistent Query; DynamoDBReadPolicy grants
    // it (with GetItem, BatchGetItem, Scan, DescribeTable) on the table.
    let policies = f["Properties"]["Policies"].as_sequence().unwrap();
    assert!(
        policies.iter().any(|p| reference(&p["DynamoDBReadPolicy"]["TableName"]) == Some(table)),
        "the ingest function needs DynamoDBReadPolicy on {table}: {policies:?}"
    );
}
