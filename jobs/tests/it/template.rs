//! template.yaml's jobs resources agree with the code: the jobs function runs this crate's
//! binary and sets only variables it reads; each state machine deploys a definition of this
//! crate with exactly the substitutions it uses; the schedules start them.

use serde_norway::Value;
use sluice_jobs::orchestration::{BACKFILL, COMPACTION, asl};

fn resources() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let template: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    template["Resources"].clone()
}

/// `!Ref <name>`'s name.
fn reference(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str(),
        _ => None,
    }
}

#[test]
fn the_jobs_function_runs_this_crates_binary_and_sets_what_it_reads() {
    let f = &resources()["JobsFunction"];
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_jobs-lambda")).file_stem().unwrap();
    assert_eq!(f["Metadata"]["BuildProperties"]["Binary"].as_str(), binary.to_str());
    let vars = f["Properties"]["Environment"]["Variables"].as_mapping().unwrap();
    for name in vars.keys() {
        let name = name.as_str().unwrap();
        assert!(
            sluice_jobs::lambda::ENV_VARS.iter().any(|(n, _)| *n == name),
            "template.yaml sets {name} on the jobs function, which it does not read"
        );
    }
    for (name, _) in sluice_jobs::lambda::ENV_VARS {
        let required = matches!(*name, "SLUICE_LAKE_URL" | "SLUICE_AGGREGATES_TABLE");
        assert!(!required || vars.contains_key(*name), "the jobs function needs {name}");
    }
}

#[test]
fn each_state_machine_deploys_a_definition_with_its_substitutions() {
    let resources = resources();
    for (resource, definition) in [("CompactionStateMachine", &COMPACTION), ("BackfillStateMachine", &BACKFILL)] {
        let properties = &resources[resource]["Properties"];
        assert_eq!(properties["DefinitionUri"].as_str(), Some(definition.path), "{resource}");
        let subs: Vec<String> = properties["DefinitionSubstitutions"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        let mut subs = subs;
        subs.sort();
        assert_eq!(subs, asl::placeholders(definition.text), "{resource}: exactly the placeholders it uses");
        let policies = format!("{:?}", properties["Policies"]);
        assert!(policies.contains("LambdaInvokePolicy") && policies.contains("SQSSendMessagePolicy"), "{resource}");
        assert!(policies.contains(&format!("_sluice/plans/{}/*", definition.name)), "{resource} reads its plans");
    }
    for (schedule, machine) in
        [("CompactionSchedule", "CompactionStateMachine"), ("BackfillSchedule", "BackfillStateMachine")]
    {
        let target = &resources[schedule]["Properties"]["Target"];
        assert_eq!(reference(&target["Arn"]), Some(machine), "{schedule}");
    }
    assert_eq!(resources["CompactionSchedule"]["Properties"]["ScheduleExpression"].as_str(), Some("rate(1 hour)"));
    assert_eq!(resources["BackfillSchedule"]["Properties"]["ScheduleExpression"].as_str(), Some("cron(0 2 * * ? *)"));
}

#[test]
fn the_jobs_function_names_a_missing_variable_at_cold_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jobs-lambda"))
        .env_clear()
        .env("SLUICE_AGGREGATES_TABLE", "t")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SLUICE_LAKE_URL must be set"), "{stderr}");
}
