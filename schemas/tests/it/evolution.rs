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
    registry_of("page_view", page_view_v1(), edit)
}

/// A registry holding `event_type` `v1` and a v2 made by `edit` from it (both written with
/// sorted keys, so problems come in name order).
fn registry_of(event_type: &str, v1: Value, edit: impl FnOnce(&mut Value)) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join(event_type);
    std::fs::create_dir(&t).unwrap();
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

fn order_placed_v1() -> Value {
    serde_json::from_str(include_str!("../../order_placed/v1.json")).unwrap()
}

/// The evolution check's answer for order_placed v1 (shipped) and a v2 made by `edit`.
fn order_v2(edit: impl FnOnce(&mut Value)) -> Result<(), Vec<String>> {
    registry_of("order_placed", order_placed_v1(), edit).check_evolution()
}

fn problems(list: &[&str]) -> Result<(), Vec<String>> {
    Err(list.iter().map(|p| format!("order_placed v1 -> v2: {p}")).collect())
}

#[test]
fn optional_fields_may_be_added_at_every_depth() {
    // Top level, inside an object, inside array items, a new optional object requiring its
    // own fields, a new optional array of objects, a field made nullable.
    let answer = order_v2(|v2| {
        v2["properties"]["note"] = json!({"type": ["string", "null"]});
        v2["properties"]["context"]["properties"]["device"] = json!({"type": "string"});
        v2["properties"]["items"]["items"]["properties"]["discount"] = json!({"type": "number"});
        v2["properties"]["shipping"] = json!({"type": "object", "additionalProperties": false,
            "properties": {"method": {"type": "string"}, "eta": {"type": "string", "format": "date-time"}},
            "required": ["method"]});
        v2["properties"]["tags"] = json!({"type": "array", "items": {"type": "string"}});
        v2["properties"]["context"]["properties"]["app_version"]["type"] = json!(["string", "null"]);
    });
    assert_eq!(answer, Ok(()));
}

#[test]
fn removals_are_incompatible_at_every_depth() {
    let answer = order_v2(|v2| {
        v2["properties"]["context"]["properties"].as_object_mut().unwrap().remove("app_version");
        v2["properties"]["items"]["items"]["properties"].as_object_mut().unwrap().remove("unit_price");
        v2["properties"]["items"]["items"]["required"] = json!(["sku", "qty"]);
    });
    assert_eq!(
        answer,
        problems(&["field `context/app_version` was removed", "field `items[]/unit_price` was removed"])
    );
}

#[test]
fn type_changes_are_incompatible_at_every_depth() {
    let answer = order_v2(|v2| {
        v2["properties"]["placed_at"] = json!({"type": "string"});
        v2["properties"]["context"]["properties"]["app_version"] = json!({"type": "integer"});
        v2["properties"]["items"]["items"]["properties"]["qty"] = json!({"type": "number", "minimum": 1});
        v2["properties"]["order_id"] = json!({"type": "string", "format": "date-time"});
    });
    assert_eq!(
        answer,
        problems(&[
            "field `context/app_version` changed type from string to integer",
            "field `items[]/qty` changed type from integer to number",
            "field `order_id` changed type from string to date-time",
            "field `placed_at` changed type from date-time to string",
        ])
    );
    // An array of objects becoming an array of strings, an object becoming a string.
    let answer = order_v2(|v2| {
        v2["properties"]["items"]["items"] = json!({"type": "string"});
        v2["properties"]["context"] = json!({"type": "string"});
        v2["x-sluice-dimensions"] = json!([]);
    });
    assert_eq!(
        answer,
        problems(&[
            "field `context` changed type from object to string",
            "field `items[]` changed type from object to string",
            "dimensions changed from [context/country, context/channel] to []",
        ])
    );
}

#[test]
fn newly_required_and_no_longer_nullable_fields_are_incompatible_at_every_depth() {
    let answer = order_v2(|v2| {
        v2["properties"]["context"]["required"] = json!(["country", "channel", "app_version"]);
        v2["properties"]["items"]["items"]["properties"]["discount"] = json!({"type": "number"});
        v2["properties"]["items"]["items"]["required"] = json!(["sku", "qty", "unit_price", "discount"]);
        v2["properties"]["coupon"]["type"] = json!("string");
    });
    assert_eq!(
        answer,
        problems(&[
            "field `context/app_version` became required",
            "field `coupon` is no longer nullable",
            "new field `items[]/discount` is required (a new field must be optional)",
        ])
    );
}

#[test]
fn moving_a_role_into_an_object_changes_it() {
    let answer = order_v2(|v2| {
        v2["x-sluice-dimensions"] = json!(["/context/country", "context/channel"]);
    });
    assert_eq!(answer, Ok(()), "the same paths, spelled as JSON pointers");
    let answer = order_v2(|v2| {
        v2["x-sluice-dimensions"] = json!(["context/channel", "context/country"]);
    });
    assert_eq!(
        answer,
        problems(&["dimensions changed from [context/country, context/channel] to [context/channel, context/country]"])
    );
}
