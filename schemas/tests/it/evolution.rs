//! Schema evolution: only optional fields may be added.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use sluice_schemas::{Registry, check_compatible};

use crate::{registry, schemas_dir};

#[test]
fn shipped_schemas_evolve_compatibly() {
    assert_eq!(registry().check_evolution(), Ok(()));
    assert_eq!(Registry::from_dir(schemas_dir()).unwrap().check_evolution(), Ok(()));
}

fn page_view_v1() -> Value {
    serde_json::from_str(include_str!("../../page_view/v1.json")).unwrap()
}

/// A registry holding page_view v1 (shipped) and a v2 made by `edit` from v1.
fn with_v2(edit: impl FnOnce(&mut Value)) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("page_view");
    std::fs::create_dir(&t).unwrap();
    let v1 = page_view_v1();
    let mut v2 = v1.clone();
    v2["x-sluice-version"] = json!(2);
    edit(&mut v2);
    std::fs::write(t.join("v1.json"), serde_json::to_vec_pretty(&v1).unwrap()).unwrap();
    std::fs::write(t.join("v2.json"), serde_json::to_vec_pretty(&v2).unwrap()).unwrap();
    Registry::from_dir(dir.path()).unwrap()
}

fn remove_required(doc: &mut Value, name: &str) {
    doc["required"].as_array_mut().unwrap().retain(|r| r != name);
}

#[test]
fn adding_an_optional_field_is_compatible() {
    let reg = with_v2(|v2| {
        v2["properties"]["locale"] = json!({"type": "string"});
    });
    assert_eq!(reg.check_evolution(), Ok(()));
}

#[test]
fn relaxing_or_tightening_constraints_is_not_a_type_change() {
    let reg = with_v2(|v2| {
        v2["properties"]["device"]["enum"] = json!(["ios", "android", "web", "tv", "watch"]);
        v2["properties"]["referrer"]["maxLength"] = json!(2048);
    });
    assert_eq!(reg.check_evolution(), Ok(()));
}

#[test]
fn removing_a_field_is_incompatible() {
    let reg = with_v2(|v2| {
        v2["properties"].as_object_mut().unwrap().remove("referrer");
    });
    assert_eq!(reg.check_evolution(), Err(vec!["page_view v1 -> v2: field `referrer` was removed".to_owned()]));
}

#[test]
fn changing_a_type_is_incompatible() {
    let reg = with_v2(|v2| {
        v2["properties"]["page"] = json!({"type": "integer"});
    });
    assert_eq!(
        reg.check_evolution(),
        Err(vec!["page_view v1 -> v2: field `page` changed type from string to integer".to_owned()])
    );
}

#[test]
fn a_new_required_field_is_incompatible() {
    let reg = with_v2(|v2| {
        v2["properties"]["locale"] = json!({"type": "string"});
        v2["required"].as_array_mut().unwrap().push(json!("locale"));
    });
    assert_eq!(
        reg.check_evolution(),
        Err(vec!["page_view v1 -> v2: new field `locale` is required (a new field must be optional)".to_owned()])
    );
}

#[test]
fn making_an_optional_field_required_is_incompatible() {
    let reg = with_v2(|v2| {
        v2["required"].as_array_mut().unwrap().push(json!("referrer"));
    });
    assert_eq!(reg.check_evolution(), Err(vec!["page_view v1 -> v2: field `referrer` became required".to_owned()]));
}

#[test]
fn changing_dimensions_measure_or_identity_is_incompatible() {
    let reg = with_v2(|v2| {
        v2["x-sluice-dimensions"] = json!(["device"]);
    });
    assert_eq!(
        reg.check_evolution(),
        Err(vec!["page_view v1 -> v2: dimensions changed from [device, country] to [device]".to_owned()])
    );

    let reg = with_v2(|v2| {
        v2["x-sluice-dimensions"] = json!(["country", "device"]);
        v2["x-sluice-identity"] = json!("session_id");
        v2.as_object_mut().unwrap().remove("x-sluice-measure");
    });
    assert_eq!(
        reg.check_evolution(),
        Err(vec![
            "page_view v1 -> v2: dimensions changed from [device, country] to [country, device]".to_owned(),
            "page_view v1 -> v2: measure changed from `duration_ms` to none".to_owned(),
            "page_view v1 -> v2: identity changed from `user_id` to `session_id`".to_owned(),
        ])
    );
}

#[test]
fn every_problem_is_reported() {
    let reg = with_v2(|v2| {
        let props = v2["properties"].as_object_mut().unwrap();
        props.remove("referrer");
        props.insert("session_id".into(), json!({"type": "number"}));
        props.insert("locale".into(), json!({"type": "string"}));
        v2["required"].as_array_mut().unwrap().push(json!("locale"));
    });
    let t = reg.get("page_view").unwrap();
    assert_eq!(
        check_compatible(t.version(1).unwrap(), t.version(2).unwrap()),
        Err(vec![
            // Old fields in v1's property order (the helper writes keys sorted).
            "field `referrer` was removed".to_owned(),
            "field `session_id` changed type from string to number".to_owned(),
            "new field `locale` is required (a new field must be optional)".to_owned(),
        ])
    );
}

#[test]
fn required_fields_may_become_optional() {
    // Old events still satisfy the new schema; the lake column simply becomes nullable.
    let reg = with_v2(|v2| {
        remove_required(v2, "page");
    });
    assert_eq!(reg.check_evolution(), Ok(()));
    let schema = reg.get("page_view").unwrap().arrow_schema();
    assert!(schema.field_with_name("page").unwrap().is_nullable());
}
