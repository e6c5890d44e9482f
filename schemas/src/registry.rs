//! The schema registry: event types, their versions, and what each schema declares.
//!
//! Layout (the same for the compiled-in set and for an override directory):
//! `<dir>/<event_type>/v<N>.json`, versions contiguous from `v1`. Each file is a JSON Schema
//! (draft 2020-12) of the event's `data` object with these top-level sluice keywords:
//! `x-sluice-event-type` (= directory name), `x-sluice-version` (= N), `x-sluice-dimensions`
//! (array of field names), `x-sluice-measure` and `x-sluice-identity` (a field name each, optional).
//!
//! Loading enforces what the rest of the pipeline relies on:
//! - the schema is `type: object` with `additionalProperties: false`, so every accepted field has
//!   a typed lake column;
//! - every property has one scalar `type` (string, integer, number, boolean) and a lowercase
//!   snake_case name that is not an envelope column;
//! - dimensions are required string/integer fields, the measure a required number/integer field,
//!   the identity a required string/integer field, so every valid event has all of them;
//! - the measure's bounds lie within ±[`MEASURE_LIMIT`]; a bound the schema does not declare is
//!   added to the compiled document (and so to what `GET /v1/schemas` serves), so every sum of
//!   measures is exact (see the aggregators' `SumMicros`).
//!
//! Loading does not check compatibility between versions: that is [`Registry::check_evolution`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::arrow::ENVELOPE_COLUMNS;
use crate::envelope::{EventTimeBounds, EventTimeRange};
use crate::fast::{FieldTable, Roles};

/// Largest magnitude of a measure (`x-sluice-measure`): `1e30`. A measure's declared `minimum`
/// / `maximum` (or exclusive bounds) must lie within `[-MEASURE_LIMIT, MEASURE_LIMIT]`; the
/// bound on a side the schema leaves open is this limit. Sums of measures are exact below it.
pub const MEASURE_LIMIT: f64 = 1e30;

/// The draft every schema must declare in `$schema`.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// Subdirectories of a schema directory that are never event types (the crate's own layout).
pub const RESERVED_DIRS: &[&str] = &["src", "tests", "target", "benches", "examples"];

/// The compiled-in schema files: (event type, version, contents). The test
/// `registry::builtin_equals_shipped_directory` keeps this list equal to the directory.
const BUILTIN: &[(&str, u32, &str)] = &[
    ("api_call", 1, include_str!("../api_call/v1.json")),
    ("page_view", 1, include_str!("../page_view/v1.json")),
    ("page_view", 2, include_str!("../page_view/v2.json")),
    ("purchase", 1, include_str!("../purchase/v1.json")),
];

/// Why a set of schema files could not be loaded. Every variant means: fix the schema files (or
/// the path) and retry; nothing is partially loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A directory or file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The directory layout is wrong (unexpected entry, bad name, versions with gaps).
    #[error("{path}: {message}")]
    Layout { path: String, message: String },
    /// A schema file is not valid JSON.
    #[error("{origin}: not valid JSON: {source}")]
    InvalidJson {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    /// A schema file is JSON but breaks a sluice or JSON Schema rule.
    #[error("{origin}: {message}")]
    InvalidSchema { origin: String, message: String },
    /// The directory holds no event type at all.
    #[error("no event types found in {path} (expected <event_type>/v<N>.json files)")]
    Empty { path: String },
}

/// The JSON type of a data field, and so its lake column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    String,
    Integer,
    Number,
    Boolean,
}

impl FieldKind {
    /// The JSON Schema `type` name.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::String => "string",
            FieldKind::Integer => "integer",
            FieldKind::Number => "number",
            FieldKind::Boolean => "boolean",
        }
    }

    fn from_type(name: &str) -> Option<Self> {
        Some(match name {
            "string" => FieldKind::String,
            "integer" => FieldKind::Integer,
            "number" => FieldKind::Number,
            "boolean" => FieldKind::Boolean,
            _ => return None,
        })
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One property of a schema version's `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    pub name: String,
    pub kind: FieldKind,
    /// Listed in the schema's `required`.
    pub required: bool,
}

/// One version of an event type's schema, compiled.
#[derive(Debug, Clone)]
pub struct SchemaVersion {
    pub version: u32,
    /// The schema file as JSON, with the measure's bounds made explicit ([`MEASURE_LIMIT`]).
    pub document: Value,
    /// `x-sluice-dimensions`, in declared order.
    pub dimensions: Vec<String>,
    /// `x-sluice-measure`.
    pub measure: Option<String>,
    /// `x-sluice-identity`.
    pub identity: Option<String>,
    /// The properties, in the order the schema file lists them.
    pub fields: Vec<FieldDef>,
    validator: jsonschema::Validator,
    /// The compiled field table, if the schema stays within its subset (see [`crate::fast`]).
    table: Option<FieldTable>,
}

impl PartialEq for SchemaVersion {
    /// Equal when everything but the compiled validator (a function of `document`) is equal.
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
            && self.document == other.document
            && self.dimensions == other.dimensions
            && self.measure == other.measure
            && self.identity == other.identity
            && self.fields == other.fields
    }
}

impl SchemaVersion {
    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub(crate) fn validator(&self) -> &jsonschema::Validator {
        &self.validator
    }

    pub(crate) fn table(&self) -> Option<&FieldTable> {
        self.table.as_ref()
    }

    /// Whether valid `data` of this version is recognised without the jsonschema validator
    /// (the schema uses only the keywords the fast check compiles). Results are the same either
    /// way; this only tells tests and benchmarks which path runs.
    #[doc(hidden)]
    pub fn has_fast_path(&self) -> bool {
        self.table.is_some()
    }
}

/// An event type and all its schema versions (never empty when loaded by [`Registry`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    pub name: String,
    pub versions: BTreeMap<u32, SchemaVersion>,
}

impl EventType {
    /// The highest version (the default for events that give no `schema_version`).
    pub fn latest(&self) -> Option<&SchemaVersion> {
        self.versions.values().next_back()
    }

    /// Version `v`, if registered.
    pub fn version(&self, v: u32) -> Option<&SchemaVersion> {
        self.versions.get(&v)
    }
}

/// All known event types. Immutable once loaded; cheap to share behind an `Arc`.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    types: BTreeMap<String, EventType>,
    event_time: EventTimeRange,
    /// `event_time.bounds()`, computed once.
    event_time_bounds: EventTimeBounds,
}

/// One schema file to load.
struct Source {
    origin: String,
    event_type: String,
    version: u32,
    text: String,
}

impl Registry {
    /// The schemas shipped in this crate (`schemas/*/v*.json`, compiled in). Fails only if a
    /// shipped schema is broken, which the crate's tests rule out.
    pub fn builtin() -> Result<Registry, RegistryError> {
        Self::from_sources(
            "builtin schemas",
            BUILTIN.iter().map(|(t, v, text)| Source {
                origin: format!("builtin schemas/{t}/v{v}.json"),
                event_type: (*t).to_owned(),
                version: *v,
                text: (*text).to_owned(),
            }),
        )
    }

    /// The registry every binary starts from: `dir` when an override directory is configured,
    /// else the built-in schemas.
    pub fn load(dir: Option<&Path>) -> Result<Registry, RegistryError> {
        match dir {
            Some(dir) => Registry::from_dir(dir),
            None => Registry::builtin(),
        }
    }

    /// Loads `<dir>/<event_type>/v<N>.json`. Top-level files, hidden entries and
    /// [`RESERVED_DIRS`] are skipped; any other subdirectory must be a valid event type holding
    /// only `v<N>.json` files (hidden files aside).
    pub fn from_dir(dir: &Path) -> Result<Registry, RegistryError> {
        let mut sources = Vec::new();
        for (name, path) in sorted_entries(dir)? {
            if name.starts_with('.') || RESERVED_DIRS.contains(&name.as_str()) || !path.is_dir() {
                continue;
            }
            if !is_snake_case(&name) {
                return Err(RegistryError::Layout {
                    path: path.display().to_string(),
                    message: format!(
                        "`{name}` is not a valid event type name (use lowercase letters, digits \
                         and _, starting with a letter)"
                    ),
                });
            }
            for (file, file_path) in sorted_entries(&path)? {
                if file.starts_with('.') {
                    continue;
                }
                let version = parse_version_file_name(&file).filter(|_| file_path.is_file()).ok_or_else(|| {
                    RegistryError::Layout {
                        path: file_path.display().to_string(),
                        message: format!(
                            "unexpected entry `{file}` (an event type directory holds only \
                             v<N>.json files, N >= 1)"
                        ),
                    }
                })?;
                let text = std::fs::read_to_string(&file_path)
                    .map_err(|source| RegistryError::Io { path: file_path.clone(), source })?;
                sources.push(Source {
                    origin: file_path.display().to_string(),
                    event_type: name.clone(),
                    version,
                    text,
                });
            }
        }
        Self::from_sources(&dir.display().to_string(), sources)
    }

    /// The event type named `event_type`.
    pub fn get(&self, event_type: &str) -> Option<&EventType> {
        self.types.get(event_type)
    }

    /// All event types, by name.
    pub fn event_types(&self) -> impl ExactSizeIterator<Item = &EventType> + '_ {
        self.types.values()
    }

    fn from_sources(label: &str, sources: impl IntoIterator<Item = Source>) -> Result<Registry, RegistryError> {
        let mut types: BTreeMap<String, EventType> = BTreeMap::new();
        for source in sources {
            let version = compile(&source)?;
            types
                .entry(source.event_type.clone())
                .or_insert_with(|| EventType { name: source.event_type.clone(), versions: BTreeMap::new() })
                .versions
                .insert(source.version, version);
        }
        if types.is_empty() {
            return Err(RegistryError::Empty { path: label.to_owned() });
        }
        for t in types.values() {
            let found: Vec<u32> = t.versions.keys().copied().collect();
            let expected: Vec<u32> = (1..).take(found.len()).collect();
            if found != expected {
                let listed: Vec<String> = found.iter().map(|v| format!("v{v}")).collect();
                return Err(RegistryError::Layout {
                    path: format!("{label}/{}", t.name),
                    message: format!("versions must run from v1 without gaps, found {}", listed.join(", ")),
                });
            }
        }
        let event_time = EventTimeRange::default();
        Ok(Registry { types, event_time, event_time_bounds: event_time.bounds() })
    }

    /// This registry accepting `occurred_at` in `range` (default [`EventTimeRange::default`]),
    /// in [`Registry::validate`] and [`Registry::decode_stored`] alike.
    pub fn with_event_time(mut self, range: EventTimeRange) -> Registry {
        self.event_time = range;
        self.event_time_bounds = range.bounds();
        self
    }

    /// The accepted range of `occurred_at`.
    pub fn event_time(&self) -> EventTimeRange {
        self.event_time
    }

    /// [`Registry::event_time`] in microseconds (computed once, for the view).
    #[inline]
    pub(crate) fn event_time_bounds(&self) -> EventTimeBounds {
        self.event_time_bounds
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, RegistryError> {
    let io = |source| RegistryError::Io { path: dir.to_path_buf(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let name = entry.file_name().into_string().map_err(|raw| RegistryError::Layout {
            path: path.display().to_string(),
            message: format!("entry name {raw:?} is not UTF-8"),
        })?;
        out.push((name, path));
    }
    out.sort();
    Ok(out)
}

/// `v<N>.json` with N a decimal >= 1 without leading zeros.
fn parse_version_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('v')?.strip_suffix(".json")?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `^[a-z][a-z0-9_]*$`: safe as a directory, partition value, key part and Athena column name.
pub(crate) fn is_snake_case(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z')) && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// Parses and checks one schema file.
fn compile(source: &Source) -> Result<SchemaVersion, RegistryError> {
    let invalid = |message: String| RegistryError::InvalidSchema { origin: source.origin.clone(), message };
    let mut document: Value = serde_json::from_str(&source.text)
        .map_err(|e| RegistryError::InvalidJson { origin: source.origin.clone(), source: e })?;
    let Some(top) = document.as_object() else {
        return Err(invalid("the schema must be a JSON object".into()));
    };
    if top.get("$schema").and_then(Value::as_str) != Some(DRAFT_2020_12) {
        return Err(invalid(format!("\"$schema\" must be \"{DRAFT_2020_12}\"")));
    }
    if top.get("x-sluice-event-type").and_then(Value::as_str) != Some(source.event_type.as_str()) {
        return Err(invalid(format!("\"x-sluice-event-type\" must be \"{}\" (the directory name)", source.event_type)));
    }
    if top.get("x-sluice-version").and_then(Value::as_u64) != Some(u64::from(source.version)) {
        return Err(invalid(format!("\"x-sluice-version\" must be {} (the file name)", source.version)));
    }
    if top.get("type").and_then(Value::as_str) != Some("object") {
        return Err(invalid("\"type\" must be \"object\"".into()));
    }
    if top.get("additionalProperties") != Some(&Value::Bool(false)) {
        return Err(invalid("\"additionalProperties\" must be false (every data field needs a declared type)".into()));
    }
    let Some(properties) = top.get("properties").and_then(Value::as_object) else {
        return Err(invalid("\"properties\" must be an object".into()));
    };

    let required = string_list(top.get("required"), "required").map_err(&invalid)?;
    for name in &required {
        if !properties.contains_key(name) {
            return Err(invalid(format!("\"required\" lists `{name}`, which is not in \"properties\"")));
        }
    }

    let order = property_order(&source.text).map_err(&invalid)?;
    let mut fields = Vec::with_capacity(order.len());
    for name in &order {
        let Some(prop) = properties.get(name) else {
            continue;
        };
        if !is_snake_case(name) {
            return Err(invalid(format!(
                "property `{name}`: names must be lowercase snake_case (letters, digits, _; \
                 starting with a letter)"
            )));
        }
        if ENVELOPE_COLUMNS.contains(&name.as_str()) {
            return Err(invalid(format!("property `{name}` collides with the envelope column of the same name")));
        }
        let kind = prop.get("type").and_then(Value::as_str).and_then(FieldKind::from_type).ok_or_else(|| {
            invalid(format!(
                "property `{name}`: \"type\" must be one of \"string\", \"integer\", \
                     \"number\", \"boolean\""
            ))
        })?;
        fields.push(FieldDef { name: name.clone(), kind, required: required.contains(name) });
    }

    let field = |name: &str| fields.iter().find(|f| f.name == name);
    let check_declared = |keyword: &str, name: &str, kinds: &[FieldKind]| -> Result<(), RegistryError> {
        let allowed: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        match field(name) {
            None => Err(invalid(format!("\"{keyword}\" names `{name}`, which is not in \"properties\""))),
            Some(f) if !kinds.contains(&f.kind) => Err(invalid(format!(
                "\"{keyword}\" field `{name}` is a {}, it must be {}",
                f.kind,
                allowed.join(" or ")
            ))),
            Some(f) if !f.required => {
                Err(invalid(format!("\"{keyword}\" field `{name}` must be listed in \"required\"")))
            }
            Some(_) => Ok(()),
        }
    };

    let dimensions = string_list(top.get("x-sluice-dimensions"), "x-sluice-dimensions").map_err(&invalid)?;
    for d in &dimensions {
        check_declared("x-sluice-dimensions", d, &[FieldKind::String, FieldKind::Integer])?;
    }
    let measure = optional_string(top.get("x-sluice-measure"), "x-sluice-measure").map_err(&invalid)?;
    if let Some(m) = &measure {
        check_declared("x-sluice-measure", m, &[FieldKind::Number, FieldKind::Integer])?;
    }
    let identity = optional_string(top.get("x-sluice-identity"), "x-sluice-identity").map_err(&invalid)?;
    if let Some(i) = &identity {
        check_declared("x-sluice-identity", i, &[FieldKind::String, FieldKind::Integer])?;
    }

    if let Some(m) = &measure {
        bound_measure(&mut document, m).map_err(&invalid)?;
    }

    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&document)
        .map_err(|e| invalid(format!("not a valid JSON Schema: {e}")))?;

    let roles = Roles { dimensions: &dimensions, measure: measure.as_deref(), identity: identity.as_deref() };
    let table = FieldTable::compile(&document, roles);
    Ok(SchemaVersion { version: source.version, document, dimensions, measure, identity, fields, validator, table })
}

/// Checks the measure property's bounds against [`MEASURE_LIMIT`] and adds the limit on each
/// side the schema leaves open.
fn bound_measure(document: &mut Value, measure: &str) -> Result<(), String> {
    let Some(prop) = document.pointer_mut(&format!("/properties/{measure}")).and_then(Value::as_object_mut) else {
        return Err(format!("\"x-sluice-measure\" names `{measure}`, which is not in \"properties\""));
    };
    for (inclusive, exclusive, limit) in
        [("minimum", "exclusiveMinimum", -MEASURE_LIMIT), ("maximum", "exclusiveMaximum", MEASURE_LIMIT)]
    {
        let declared = [inclusive, exclusive].map(|k| prop.get(k).map(|v| v.as_f64()));
        for (keyword, value) in [inclusive, exclusive].iter().zip(declared) {
            match value {
                // Not a number: the JSON Schema compiler explains.
                Some(None) => {}
                Some(Some(v)) if v.abs() > MEASURE_LIMIT => {
                    return Err(format!(
                        "measure `{measure}`: \"{keyword}\" {v} is outside ±{MEASURE_LIMIT:e}, the range in \
                         which sums of measures are exact"
                    ));
                }
                _ => {}
            }
        }
        if declared.iter().all(Option::is_none) {
            prop.insert(inclusive.to_owned(), Value::from(limit));
        }
    }
    Ok(())
}

/// An optional array of distinct strings (absent = empty).
fn string_list(value: Option<&Value>, keyword: &str) -> Result<Vec<String>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let err = || format!("\"{keyword}\" must be an array of distinct strings");
    let items = value.as_array().ok_or_else(err)?;
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let s = item.as_str().ok_or_else(err)?;
        if out.iter().any(|o| o == s) {
            return Err(err());
        }
        out.push(s.to_owned());
    }
    Ok(out)
}

fn optional_string(value: Option<&Value>, keyword: &str) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("\"{keyword}\" must be a string (a field name)")),
    }
}

/// The keys of the top-level `properties` object in file order (`serde_json::Map` may sort
/// them). Rejects duplicate property names.
fn property_order(text: &str) -> Result<Vec<String>, String> {
    struct Top;
    struct Keys;

    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                if keys.contains(&key) {
                    return Err(serde::de::Error::custom(format!("duplicate property `{key}`")));
                }
                keys.push(key);
            }
            Ok(keys)
        }
    }
    struct KeysSeed(Vec<String>);
    impl<'de> Deserialize<'de> for KeysSeed {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(Keys).map(KeysSeed)
        }
    }

    impl<'de> Visitor<'de> for Top {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON Schema object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut order = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                if key == "properties" {
                    order = map.next_value::<KeysSeed>()?.0;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(order)
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    serde::Deserializer::deserialize_map(&mut de, Top).map_err(|e| format!("\"properties\": {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_file_names() {
        assert_eq!(parse_version_file_name("v1.json"), Some(1));
        assert_eq!(parse_version_file_name("v12.json"), Some(12));
        assert_eq!(parse_version_file_name("v0.json"), None);
        assert_eq!(parse_version_file_name("v01.json"), None);
        assert_eq!(parse_version_file_name("v.json"), None);
        assert_eq!(parse_version_file_name("v1.jsn"), None);
        assert_eq!(parse_version_file_name("v+1.json"), None);
        assert_eq!(parse_version_file_name("v99999999999.json"), None);
    }

    #[test]
    fn snake_case() {
        assert!(is_snake_case("page_view"));
        assert!(is_snake_case("a1"));
        assert!(!is_snake_case("PageView"));
        assert!(!is_snake_case("_x"));
        assert!(!is_snake_case("1x"));
        assert!(!is_snake_case(""));
        assert!(!is_snake_case("a-b"));
    }

    #[test]
    fn property_order_follows_the_file() {
        let order = property_order(r#"{"a":1,"properties":{"z":{},"a":{},"m":{"properties":{"q":1}}}}"#);
        assert_eq!(order.unwrap(), vec!["z", "a", "m"]);
        assert!(property_order(r#"{"properties":{"a":{},"a":{}}}"#).unwrap_err().contains("duplicate property `a`"));
    }

    #[test]
    fn registry_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Registry>();
    }
}
