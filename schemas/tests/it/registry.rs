//! Registry loading: the compiled-in set, the directory loader and its errors.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use sluice_schemas::{FieldDef, FieldKind, FieldPath, Registry, RegistryError};

use crate::{registry, schemas_dir};

#[test]
fn builtin_equals_shipped_directory() {
    // Keeps the include_str! list in src/registry.rs equal to the schemas/*/v*.json files.
    let from_dir = Registry::from_dir(schemas_dir()).unwrap();
    assert_eq!(registry(), &from_dir);
    let names: Vec<&str> = from_dir.event_types().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["api_call", "order_placed", "page_view", "purchase"]);
}

#[test]
fn load_uses_the_override_directory_only_when_given() {
    assert_eq!(&Registry::load(None).unwrap(), registry());
    let empty = tempfile::tempdir().unwrap();
    assert!(Registry::load(Some(empty.path())).is_err(), "an empty override directory is not the built-in set");
}

#[test]
fn shipped_declarations() {
    let pv = registry().get("page_view").unwrap();
    assert_eq!(pv.versions.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    let latest = pv.latest().unwrap();
    assert_eq!(latest.version, 2);
    assert_eq!(latest.dimensions, vec!["device", "country"]);
    assert_eq!(latest.measure.as_ref().map(FieldPath::as_str), Some("duration_ms"));
    assert_eq!(latest.identity.as_ref().map(FieldPath::as_str), Some("user_id"));
    let f = |name: &str, kind, required| FieldDef::scalar(name, kind, required);
    assert_eq!(
        latest.fields,
        vec![
            f("user_id", FieldKind::String, true),
            f("session_id", FieldKind::String, true),
            f("page", FieldKind::String, true),
            f("referrer", FieldKind::String, false),
            f("device", FieldKind::String, true),
            f("country", FieldKind::String, true),
            f("duration_ms", FieldKind::Number, true),
            f("app_version", FieldKind::String, false),
        ]
    );
    assert_eq!(pv.version(1).unwrap().fields.len(), 7);
    assert!(pv.version(3).is_none());

    let api = registry().get("api_call").unwrap().latest().unwrap();
    assert_eq!(api.dimensions, vec!["route", "status"]);
    assert_eq!(api.field("status").unwrap().kind, FieldKind::Integer);
    assert_eq!(api.measure.as_ref().map(FieldPath::as_str), Some("latency_ms"));
    assert_eq!(api.identity.as_ref().map(FieldPath::as_str), Some("client_id"));

    let purchase = registry().get("purchase").unwrap().latest().unwrap();
    assert_eq!(purchase.dimensions, vec!["currency", "country"]);
    assert_eq!(purchase.measure.as_ref().map(FieldPath::as_str), Some("amount"));
    assert!(registry().get("click").is_none());
}

fn valid_doc() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "x-sluice-event-type": "signup",
        "x-sluice-version": 1,
        "x-sluice-dimensions": ["plan"],
        "x-sluice-measure": "seats",
        "x-sluice-identity": "account_id",
        "type": "object",
        "properties": {
            "account_id": {"type": "string"},
            "plan": {"type": "string"},
            "seats": {"type": "integer"},
            "trial": {"type": "boolean"}
        },
        "required": ["account_id", "plan", "seats"],
        "additionalProperties": false
    })
}

/// Loads a temp directory holding `files` (relative path, contents). Errors are rendered with
/// the temp path replaced by `<dir>`.
fn load(files: &[(&str, String)]) -> Result<Registry, String> {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    Registry::from_dir(dir.path()).map_err(|e| e.to_string().replace(&dir.path().display().to_string(), "<dir>"))
}

fn doc(edit: impl FnOnce(&mut Value)) -> String {
    let mut d = valid_doc();
    edit(&mut d);
    serde_json::to_string_pretty(&d).unwrap()
}

fn one(edit: impl FnOnce(&mut Value)) -> Result<Registry, String> {
    load(&[("signup/v1.json", doc(edit))])
}

#[test]
fn a_valid_directory_loads_and_skips_non_schema_entries() {
    let reg = load(&[
        ("signup/v1.json", doc(|_| {})),
        ("signup/.v1.json.swp", "junk".into()),
        ("README.md", "top-level files are ignored".into()),
        (".git/config", "hidden".into()),
        ("src/lib.rs", "reserved".into()),
        ("tests/data/x.json", "reserved".into()),
    ])
    .unwrap();
    let t = reg.get("signup").unwrap();
    assert_eq!(t.latest().unwrap().field("trial").unwrap().kind, FieldKind::Boolean);
    assert_eq!(reg.event_types().len(), 1);
}

#[test]
fn missing_and_empty_directories() {
    let err = Registry::from_dir(std::path::Path::new("/nonexistent/sluice-schemas")).unwrap_err();
    assert!(matches!(err, RegistryError::Io { .. }));
    assert!(err.to_string().starts_with("cannot read /nonexistent/sluice-schemas: "), "{err}");
    assert_eq!(
        load(&[("README.md", String::new())]).unwrap_err(),
        "no event types found in <dir> (expected <event_type>/v<N>.json files)"
    );
}

#[test]
fn layout_errors() {
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![("SignUp/v1.json", doc(|_| {}))],
            "<dir>/SignUp: `SignUp` is not a valid event type name (use lowercase letters, digits and _, starting with a letter)",
        ),
        (
            vec![("signup/v1.yaml", doc(|_| {}))],
            "<dir>/signup/v1.yaml: unexpected entry `v1.yaml` (an event type directory holds only v<N>.json files, N >= 1)",
        ),
        (
            vec![("signup/v0.json", doc(|_| {}))],
            "<dir>/signup/v0.json: unexpected entry `v0.json` (an event type directory holds only v<N>.json files, N >= 1)",
        ),
        (
            vec![("signup/v1.json/x", String::new())],
            "<dir>/signup/v1.json: unexpected entry `v1.json` (an event type directory holds only v<N>.json files, N >= 1)",
        ),
        (
            vec![("signup/v1.json", doc(|_| {})), ("signup/v3.json", doc(|d| d["x-sluice-version"] = json!(3)))],
            "<dir>/signup: versions must run from v1 without gaps, found v1, v3",
        ),
        (
            vec![("signup/v2.json", doc(|d| d["x-sluice-version"] = json!(2)))],
            "<dir>/signup: versions must run from v1 without gaps, found v2",
        ),
    ];
    for (files, expected) in cases {
        assert_eq!(load(&files).unwrap_err(), expected);
    }
}

/// Adds an object `ctx` {country (required), region, note (nullable, required), seen
/// (date-time), plan (required)}, itself required if `required`.
fn with_context(d: &mut Value, required: bool) {
    d["properties"]["ctx"] = json!({"type": "object", "additionalProperties": false,
        "properties": {"country": {"type": "string"}, "region": {"type": "string"},
            "note": {"type": ["string", "null"]}, "seen": {"type": "string", "format": "date-time"},
            "plan": {"type": "string"}},
        "required": ["country", "note", "seen", "plan"]});
    if required {
        d["required"].as_array_mut().unwrap().push(json!("ctx"));
    }
}

/// Adds a required array `items` of objects {sku, qty}.
fn with_items(d: &mut Value) {
    d["properties"]["items"] = json!({"type": "array", "items": {"type": "object", "additionalProperties": false,
        "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}, "required": ["sku", "qty"]}});
    d["required"].as_array_mut().unwrap().push(json!("items"));
}

#[test]
fn schema_errors() {
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|d| *d = json!([])), "the schema must be a JSON object"),
        (
            Box::new(|d| d["$schema"] = json!("http://json-schema.org/draft-07/schema#")),
            "\"$schema\" must be \"https://json-schema.org/draft/2020-12/schema\"",
        ),
        (
            Box::new(|d| d["x-sluice-event-type"] = json!("sign_up")),
            "\"x-sluice-event-type\" must be \"signup\" (the directory name)",
        ),
        (Box::new(|d| d["x-sluice-version"] = json!("1")), "\"x-sluice-version\" must be 1 (the file name)"),
        (Box::new(|d| d["type"] = json!("array")), "\"type\" must be \"object\""),
        (
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("additionalProperties");
            }),
            "\"additionalProperties\" must be false (every data field needs a declared type)",
        ),
        (Box::new(|d| d["properties"] = json!([])), "\"properties\" must be an object"),
        (
            Box::new(|d| d["required"] = json!(["account_id", "nope"])),
            "\"required\" lists `nope`, which is not in \"properties\"",
        ),
        (Box::new(|d| d["required"] = json!("account_id")), "\"required\" must be an array of distinct strings"),
        (
            Box::new(|d| d["properties"]["tags"] = json!({"type": "array"})),
            "property `tags`: an array must declare its \"items\" (one schema)",
        ),
        (
            Box::new(|d| d["properties"]["note"] = json!({"type": ["string", "integer"]})),
            "property `note`: \"type\" must be one of \"string\", \"integer\", \"number\", \"boolean\", \"object\", \"array\" (or a scalar one with \"null\", e.g. [\"string\", \"null\"])",
        ),
        (
            Box::new(|d| d["properties"]["anything"] = json!({})),
            "property `anything`: \"type\" must be one of \"string\", \"integer\", \"number\", \"boolean\", \"object\", \"array\" (or a scalar one with \"null\", e.g. [\"string\", \"null\"])",
        ),
        (
            Box::new(|d| d["properties"]["n"] = json!({"type": "null"})),
            "property `n`: \"type\" must be one of \"string\", \"integer\", \"number\", \"boolean\", \"object\", \"array\" (or a scalar one with \"null\", e.g. [\"string\", \"null\"])",
        ),
        (
            Box::new(|d| d["properties"]["n"] = json!({"type": ["null", "null"]})),
            "property `n`: \"type\" must be one of \"string\", \"integer\", \"number\", \"boolean\", \"object\", \"array\" (or a scalar one with \"null\", e.g. [\"string\", \"null\"])",
        ),
        (
            Box::new(|d| d["properties"]["ctx"] = json!({"type": ["object", "null"], "properties": {}})),
            "property `ctx`: an object cannot be nullable (only scalars can; leave an optional object out instead)",
        ),
        (
            Box::new(|d| d["properties"]["tags"] = json!({"type": ["array", "null"], "items": {"type": "string"}})),
            "property `tags`: an array cannot be nullable (only scalars can; leave an optional array out instead)",
        ),
        (
            Box::new(|d| d["properties"]["ctx"] = json!({"type": "object", "properties": {"a": {"type": "string"}}})),
            "property `ctx`: \"additionalProperties\" must be false (every data field needs a declared type)",
        ),
        (
            Box::new(|d| d["properties"]["ctx"] = json!({"type": "object", "additionalProperties": false})),
            "property `ctx`: \"properties\" must be an object",
        ),
        (
            Box::new(|d| {
                d["properties"]["ctx"] = json!({"type": "object", "properties": {}, "additionalProperties": false})
            }),
            "property `ctx`: an object must declare at least one property",
        ),
        (
            Box::new(|d| {
                d["properties"]["ctx"] = json!({"type": "object", "additionalProperties": false,
                    "properties": {"a": {"type": "string"}}, "required": ["b"]})
            }),
            "property `ctx`: \"required\" lists `b`, which is not in \"properties\"",
        ),
        (
            Box::new(|d| {
                d["properties"]["ctx"] = json!({"type": "object", "additionalProperties": false,
                    "properties": {"appVersion": {"type": "string"}}})
            }),
            "property `ctx/appVersion`: names must be lowercase snake_case (letters, digits, _; starting with a letter)",
        ),
        (
            Box::new(|d| {
                d["properties"]["ctx"] = json!({"type": "object", "additionalProperties": false,
                    "properties": {"a": {"type": "date"}}})
            }),
            "property `ctx/a`: \"type\" must be one of \"string\", \"integer\", \"number\", \"boolean\", \"object\", \"array\" (or a scalar one with \"null\", e.g. [\"string\", \"null\"])",
        ),
        (
            Box::new(|d| {
                d["properties"]["grid"] =
                    json!({"type": "array", "items": {"type": "array", "items": {"type": "integer"}}})
            }),
            "property `grid`: arrays of arrays are not supported (wrap the inner array in an object)",
        ),
        (
            Box::new(|d| {
                d["properties"]["tags"] =
                    json!({"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}})
            }),
            "property `tags[]`: \"additionalProperties\" must be false (every data field needs a declared type)",
        ),
        (
            Box::new(|d| d["properties"]["tags"] = json!({"type": "array", "items": {"type": "tag"}})),
            "property `tags[]`: \"type\" must be one of \"string\", \"integer\", \"number\", \"boolean\", \"object\", \"array\" (or a scalar one with \"null\", e.g. [\"string\", \"null\"])",
        ),
        (
            Box::new(|d| d["properties"]["seen"] = json!({"type": "integer", "format": "date-time"})),
            "property `seen`: \"format\": \"date-time\" applies to strings only",
        ),
        (
            Box::new(|d| {
                let mut deep = json!({"type": "string"});
                for _ in 0..9 {
                    deep = json!({"type": "object", "additionalProperties": false, "properties": {"x": deep}});
                }
                d["properties"]["deep"] = deep;
            }),
            "property `deep/x/x/x/x/x/x/x/x`: objects and arrays nest at most 8 levels deep",
        ),
        (
            Box::new(|d| d["properties"]["eventId"] = json!({"type": "string"})),
            "property `eventId`: names must be lowercase snake_case (letters, digits, _; starting with a letter)",
        ),
        (
            Box::new(|d| d["properties"]["occurred_at"] = json!({"type": "string"})),
            "property `occurred_at` collides with the envelope column of the same name",
        ),
        (
            Box::new(|d| d["x-sluice-dimensions"] = json!(["region"])),
            "\"x-sluice-dimensions\" names `region`, which is not in \"properties\"",
        ),
        (
            Box::new(|d| d["x-sluice-dimensions"] = json!(["trial"])),
            "\"x-sluice-dimensions\" field `trial` is a boolean, it must be string or integer",
        ),
        (
            Box::new(|d| d["x-sluice-dimensions"] = json!(["plan", "plan"])),
            "\"x-sluice-dimensions\" must be an array of distinct strings",
        ),
        (
            Box::new(|d| {
                d["properties"]["region"] = json!({"type": "string"});
                d["x-sluice-dimensions"] = json!(["plan", "region"]);
            }),
            "\"x-sluice-dimensions\" field `region` must be listed in \"required\"",
        ),
        (
            Box::new(|d| d["x-sluice-measure"] = json!("plan")),
            "\"x-sluice-measure\" field `plan` is a string, it must be number or integer",
        ),
        (
            Box::new(|d| d["x-sluice-measure"] = json!(["seats"])),
            "\"x-sluice-measure\" must be a string (a field path)",
        ),
        (
            Box::new(|d| d["x-sluice-identity"] = json!("user_id")),
            "\"x-sluice-identity\" names `user_id`, which is not in \"properties\"",
        ),
        (
            Box::new(|d| d["x-sluice-identity"] = json!("trial")),
            "\"x-sluice-identity\" field `trial` is a boolean, it must be string or integer",
        ),
        (
            Box::new(|d| d["x-sluice-dimensions"] = json!(["ctx/country"])),
            "\"x-sluice-dimensions\" names `ctx/country`: `ctx`, which is not in \"properties\"",
        ),
        (
            Box::new(|d| d["x-sluice-dimensions"] = json!(["plan/name"])),
            "\"x-sluice-dimensions\" field `plan/name`: `plan` is a string, not an object",
        ),
        (
            Box::new(|d| d["x-sluice-dimensions"] = json!(["/plan//x"])),
            "\"x-sluice-dimensions\": `/plan//x` is not a field path (write `field` or `object/field`)",
        ),
        (
            Box::new(|d| {
                with_context(d, true);
                d["x-sluice-dimensions"] = json!(["ctx/region"]);
            }),
            "\"x-sluice-dimensions\" field `ctx/region` must be listed in \"required\"",
        ),
        (
            Box::new(|d| {
                with_context(d, false);
                d["x-sluice-dimensions"] = json!(["ctx/country"]);
            }),
            "\"x-sluice-dimensions\" field `ctx/country`: `ctx` must be listed in \"required\"",
        ),
        (
            Box::new(|d| {
                with_context(d, true);
                d["x-sluice-dimensions"] = json!(["ctx/note"]);
            }),
            "\"x-sluice-dimensions\" field `ctx/note` must not be nullable",
        ),
        (
            Box::new(|d| {
                with_context(d, true);
                d["x-sluice-dimensions"] = json!(["ctx"]);
            }),
            "\"x-sluice-dimensions\" field `ctx` is an object, it must be string or integer",
        ),
        (
            Box::new(|d| {
                with_context(d, true);
                d["x-sluice-dimensions"] = json!(["ctx/country", "plan", "/ctx/plan"]);
            }),
            "\"x-sluice-dimensions\": `plan` and `ctx/plan` are both named `plan` (a dimension is grouped by its last name)",
        ),
        (
            Box::new(|d| {
                with_items(d);
                d["x-sluice-dimensions"] = json!(["items"]);
            }),
            "\"x-sluice-dimensions\" field `items` is an array, and an array cannot be a dimension",
        ),
        (
            Box::new(|d| {
                with_items(d);
                d["x-sluice-measure"] = json!("items/qty");
            }),
            "\"x-sluice-measure\" field `items/qty`: `items` is an array, and an array cannot be the measure",
        ),
        (
            Box::new(|d| {
                with_items(d);
                d["x-sluice-identity"] = json!("items");
            }),
            "\"x-sluice-identity\" field `items` is an array, and an array cannot be the identity",
        ),
        (
            Box::new(|d| {
                with_context(d, true);
                d["x-sluice-measure"] = json!("ctx/seen");
            }),
            "\"x-sluice-measure\" field `ctx/seen` is a date-time, it must be number or integer",
        ),
    ];
    for (edit, expected) in cases {
        assert_eq!(one(edit).unwrap_err(), format!("<dir>/signup/v1.json: {expected}"));
    }
}

#[test]
fn json_and_json_schema_errors() {
    let err = load(&[("signup/v1.json", "{\"type\": ".into())]).unwrap_err();
    assert!(err.starts_with("<dir>/signup/v1.json: not valid JSON: EOF while parsing"), "{err}");

    let dup = doc(|_| {}).replacen("\"plan\": {", "\"plan\": {\"type\": \"string\"},\n    \"plan\": {", 1);
    let err = load(&[("signup/v1.json", dup)]).unwrap_err();
    assert!(err.starts_with("<dir>/signup/v1.json: \"properties\": duplicate property `plan`"), "{err}");

    let err = one(|d| d["properties"]["seats"]["minimum"] = json!("zero")).unwrap_err();
    assert!(err.starts_with("<dir>/signup/v1.json: not a valid JSON Schema: "), "{err}");
}
