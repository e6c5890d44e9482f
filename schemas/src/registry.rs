//! The schema registry: event types, their versions, and what each schema declares.
//!
//! Layout (the same for the compiled-in set and for an override directory):
//! `<dir>/<event_type>/v<N>.json`, versions contiguous from `v1`. Each file is a JSON Schema
//! (draft 2020-12) of the event's `data` object with these top-level sluice keywords:
//! `x-sluice-event-type` (= directory name), `x-sluice-version` (= N), `x-sluice-dimensions`
//! (array of field paths), `x-sluice-measure` and `x-sluice-identity` (a field path each,
//! optional). A field path is `name`, `object/name` or a JSON pointer `/object/name`
//! ([`FieldPath`]).
//!
//! Loading enforces what the rest of the pipeline relies on:
//! - `data` and every nested object are `type: object` with `additionalProperties: false`, so
//!   every accepted field has a typed lake column;
//! - every property has one `type`: a scalar (string, integer, number, boolean; a string with
//!   `"format": "date-time"` is a [`FieldKind::Timestamp`]), optionally with `"null"`
//!   (`["string", "null"]`), an object, or an array of scalars or objects (not of arrays), at
//!   most [`MAX_DEPTH`] levels deep; names are lowercase snake_case, and no top-level name is an
//!   envelope column;
//! - dimensions are required string/integer fields, the measure a required number/integer field,
//!   the identity a required string/integer field, none nullable, none inside or on an array,
//!   every object on the way required, so every valid event has all of them; dimensions'
//!   last names are distinct (queries group by them);
//! - the measure's bounds lie within ±[`MEASURE_LIMIT`]; a bound the schema does not declare is
//!   added to the compiled document (and so to what `GET /v1/schemas` serves), so every sum of
//!   measures is exact (see the aggregators' `SumMicros`).
//!
//! Loading does not check compatibility between versions: that is [`Registry::check_evolution`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::arrow::ENVELOPE_COLUMNS;
use crate::envelope::{EventTimeBounds, EventTimeRange, parse_occurred_at};
use crate::fast::{FieldTable, Roles};
use crate::path::FieldPath;

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
    ("order_placed", 1, include_str!("../order_placed/v1.json")),
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
    /// A string with `"format": "date-time"` (RFC 3339, the same rule as `occurred_at`),
    /// stored in UTC to the microsecond.
    Timestamp,
    /// A nested object: its own `properties`, `required`, `additionalProperties: false`.
    Object,
    /// An array of scalars or of objects (never of arrays).
    Array,
}

impl FieldKind {
    /// The name schema messages use: the JSON Schema `type`, `date-time` for a timestamp.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::String => "string",
            FieldKind::Integer => "integer",
            FieldKind::Number => "number",
            FieldKind::Boolean => "boolean",
            FieldKind::Timestamp => "date-time",
            FieldKind::Object => "object",
            FieldKind::Array => "array",
        }
    }

    /// `a string`, `an integer`, ... for messages.
    pub fn with_article(self) -> String {
        let article =
            if matches!(self, FieldKind::Integer | FieldKind::Object | FieldKind::Array) { "an" } else { "a" };
        format!("{article} {self}")
    }

    /// Whether the kind holds one value (not an object or an array).
    pub fn is_scalar(self) -> bool {
        !matches!(self, FieldKind::Object | FieldKind::Array)
    }

    fn from_type(name: &str) -> Option<Self> {
        Some(match name {
            "string" => FieldKind::String,
            "integer" => FieldKind::Integer,
            "number" => FieldKind::Number,
            "boolean" => FieldKind::Boolean,
            "object" => FieldKind::Object,
            "array" => FieldKind::Array,
            _ => return None,
        })
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One property of a schema version's `data`, or of a nested object, or an array's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    /// The property name (`element` for an array's items).
    pub name: String,
    pub kind: FieldKind,
    /// Listed in its object's `required` (always `true` for an array's items).
    pub required: bool,
    /// `type` lists `"null"` (scalars only): `null` is a value of the field, kept as a null in
    /// the lake, as an absent optional field is.
    pub nullable: bool,
    /// An object's properties in the order the schema file lists them (empty otherwise).
    pub fields: Vec<FieldDef>,
    /// An array's items (`None` otherwise).
    pub items: Option<Box<FieldDef>>,
}

impl FieldDef {
    /// A scalar field that is not nullable.
    pub fn scalar(name: impl Into<String>, kind: FieldKind, required: bool) -> FieldDef {
        FieldDef { name: name.into(), kind, required, nullable: false, fields: Vec::new(), items: None }
    }

    /// The property `name` of this object.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// One version of an event type's schema, compiled.
#[derive(Debug, Clone)]
pub struct SchemaVersion {
    pub version: u32,
    /// The schema file as JSON, with the measure's bounds made explicit ([`MEASURE_LIMIT`]).
    pub document: Value,
    /// `x-sluice-dimensions`, in declared order (distinct names).
    pub dimensions: Vec<FieldPath>,
    /// `x-sluice-measure`.
    pub measure: Option<FieldPath>,
    /// `x-sluice-identity`.
    pub identity: Option<FieldPath>,
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
    /// The top-level field named `name`.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field at `path`, through nested objects.
    pub fn field_at(&self, path: &FieldPath) -> Option<&FieldDef> {
        let (first, rest) = path.segments().split_first()?;
        rest.iter().try_fold(self.field(first)?, |def, segment| def.field(segment))
    }

    /// The dimension whose [`FieldPath::name`] is `name`.
    pub fn dimension(&self, name: &str) -> Option<&FieldPath> {
        self.dimensions.iter().find(|d| d.name() == name)
    }

    /// The dimensions' names, in declared order.
    pub fn dimension_names(&self) -> Vec<&str> {
        self.dimensions.iter().map(FieldPath::name).collect()
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
    let order = property_orders(&source.text).map_err(&invalid)?;
    let top = compile_object(ObjectAt { label: "", value: &document, order: &order, depth: 0 }).map_err(&invalid)?;
    let fields = top.fields;
    for f in &fields {
        if ENVELOPE_COLUMNS.contains(&f.name.as_str()) {
            return Err(invalid(format!("property `{}` collides with the envelope column of the same name", f.name)));
        }
    }

    let Some(keywords) = document.as_object() else {
        return Err(invalid("the schema must be a JSON object".into()));
    };
    let role = |keyword: &str, text: &str, kinds: &[FieldKind]| resolve_role(&fields, keyword, text, kinds);
    let dimensions = string_list(keywords.get("x-sluice-dimensions"), "x-sluice-dimensions")
        .map_err(&invalid)?
        .iter()
        .map(|d| role("x-sluice-dimensions", d, &[FieldKind::String, FieldKind::Integer]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(&invalid)?;
    for (i, d) in dimensions.iter().enumerate() {
        if let Some(other) = dimensions.iter().take(i).find(|o| o.name() == d.name()) {
            return Err(invalid(format!(
                "\"x-sluice-dimensions\": `{other}` and `{d}` are both named `{}` (a dimension is \
                 grouped by its last name)",
                d.name()
            )));
        }
    }
    let measure = optional_string(keywords.get("x-sluice-measure"), "x-sluice-measure")
        .map_err(&invalid)?
        .map(|m| role("x-sluice-measure", &m, &[FieldKind::Number, FieldKind::Integer]))
        .transpose()
        .map_err(&invalid)?;
    let identity = optional_string(keywords.get("x-sluice-identity"), "x-sluice-identity")
        .map_err(&invalid)?
        .map(|i| role("x-sluice-identity", &i, &[FieldKind::String, FieldKind::Integer]))
        .transpose()
        .map_err(&invalid)?;

    if let Some(m) = &measure {
        bound_measure(&mut document, m).map_err(&invalid)?;
    }

    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_format("date-time", |s: &str| parse_occurred_at(s).is_some())
        .build(&document)
        .map_err(|e| invalid(format!("not a valid JSON Schema: {e}")))?;

    let roles = Roles { dimensions: &dimensions, measure: measure.as_ref(), identity: identity.as_ref() };
    let table = FieldTable::compile(&document, roles);
    Ok(SchemaVersion { version: source.version, document, dimensions, measure, identity, fields, validator, table })
}

/// How deep objects and arrays may nest in `data` (`data` itself is depth 0).
pub const MAX_DEPTH: usize = 8;

/// A schema object to compile, where it sits (`label`: `context`, `items[]`; `""` for `data`)
/// and its keys in file order.
#[derive(Clone, Copy)]
struct ObjectAt<'a> {
    label: &'a str,
    value: &'a Value,
    order: &'a Ordered,
    depth: usize,
}

impl ObjectAt<'_> {
    /// `property `label`: ` for messages (nothing for `data` itself).
    fn prefix(&self) -> String {
        if self.label.is_empty() { String::new() } else { format!("property `{}`: ", self.label) }
    }
}

/// The properties of an object schema (`data`, or a nested object), checked.
fn compile_object(at: ObjectAt<'_>) -> Result<FieldDef, String> {
    let prefix = at.prefix();
    let Some(object) = at.value.as_object() else {
        return Err(format!("{prefix}the schema must be a JSON object"));
    };
    if at.label.is_empty() && object.get("type").and_then(Value::as_str) != Some("object") {
        return Err("\"type\" must be \"object\"".into());
    }
    if object.get("additionalProperties") != Some(&Value::Bool(false)) {
        return Err(format!("{prefix}\"additionalProperties\" must be false (every data field needs a declared type)"));
    }
    let Some(properties) = object.get("properties").and_then(Value::as_object) else {
        return Err(format!("{prefix}\"properties\" must be an object"));
    };
    if properties.is_empty() && !at.label.is_empty() {
        return Err(format!("{prefix}an object must declare at least one property"));
    }
    let required = string_list(object.get("required"), "required").map_err(|e| format!("{prefix}{e}"))?;
    for name in &required {
        if !properties.contains_key(name) {
            return Err(format!("{prefix}\"required\" lists `{name}`, which is not in \"properties\""));
        }
    }
    let order = at.order.member("properties");
    let mut fields = Vec::with_capacity(properties.len());
    for (name, child_order) in order.members() {
        let Some(prop) = properties.get(name) else {
            continue;
        };
        let label = if at.label.is_empty() { name.clone() } else { format!("{}/{name}", at.label) };
        if !is_snake_case(name) {
            return Err(format!(
                "property `{label}`: names must be lowercase snake_case (letters, digits, _; starting \
                 with a letter)"
            ));
        }
        let child = ObjectAt { label: &label, value: prop, order: child_order, depth: at.depth };
        let mut def = compile_property(child)?;
        def.name = name.clone();
        def.required = required.contains(name);
        fields.push(def);
    }
    Ok(FieldDef { name: String::new(), kind: FieldKind::Object, required: true, nullable: false, fields, items: None })
}

/// One property (or an array's items) at `at`: its kind, nullability and nested fields. The
/// name and `required` are its parent's to set.
fn compile_property(at: ObjectAt<'_>) -> Result<FieldDef, String> {
    let prefix = at.prefix();
    let Some(prop) = at.value.as_object() else {
        return Err(format!("{prefix}the schema must be a JSON object"));
    };
    const TYPES: &str = "\"type\" must be one of \"string\", \"integer\", \"number\", \"boolean\", \"object\", \
                         \"array\" (or a scalar one with \"null\", e.g. [\"string\", \"null\"])";
    let (kind, nullable) = match prop.get("type") {
        Some(Value::String(t)) => (FieldKind::from_type(t).ok_or_else(|| format!("{prefix}{TYPES}"))?, false),
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            let others: Vec<&str> = names.iter().copied().filter(|t| *t != "null").collect();
            match (names.len() == types.len() && names.len() == 2, others.as_slice()) {
                (true, [t]) => (FieldKind::from_type(t).ok_or_else(|| format!("{prefix}{TYPES}"))?, true),
                _ => return Err(format!("{prefix}{TYPES}")),
            }
        }
        _ => return Err(format!("{prefix}{TYPES}")),
    };
    if nullable && !kind.is_scalar() {
        return Err(format!(
            "{prefix}an {kind} cannot be nullable (only scalars can; leave an optional {kind} out instead)"
        ));
    }
    let kind = match (kind, prop.get("format")) {
        (FieldKind::String, Some(Value::String(f))) if f == "date-time" => FieldKind::Timestamp,
        (_, Some(Value::String(f))) if f == "date-time" => {
            return Err(format!("{prefix}\"format\": \"date-time\" applies to strings only"));
        }
        (kind, _) => kind,
    };
    let mut def = FieldDef { name: String::new(), kind, required: false, nullable, fields: Vec::new(), items: None };
    match kind {
        FieldKind::Object | FieldKind::Array if at.depth + 1 > MAX_DEPTH => {
            return Err(format!("{prefix}objects and arrays nest at most {MAX_DEPTH} levels deep"));
        }
        FieldKind::Object => {
            def.fields = compile_object(ObjectAt { depth: at.depth + 1, ..at })?.fields;
        }
        FieldKind::Array => {
            let Some(items) = prop.get("items") else {
                return Err(format!("{prefix}an array must declare its \"items\" (one schema)"));
            };
            let label = format!("{}[]", at.label);
            let items_at =
                ObjectAt { label: &label, value: items, order: at.order.member("items"), depth: at.depth + 1 };
            let mut element = compile_property(items_at)?;
            if element.kind == FieldKind::Array {
                return Err(format!("{prefix}arrays of arrays are not supported (wrap the inner array in an object)"));
            }
            element.name = "element".to_owned();
            element.required = true;
            def.items = Some(Box::new(element));
        }
        _ => {}
    }
    Ok(def)
}

/// A role keyword's field (`x-sluice-dimensions` entry, `-measure`, `-identity`), resolved and
/// checked: it exists, crosses no array, is of one of `kinds`, and it and every object on the
/// way are required and not nullable, so every valid event has it.
fn resolve_role(fields: &[FieldDef], keyword: &str, text: &str, kinds: &[FieldKind]) -> Result<FieldPath, String> {
    let path = FieldPath::parse(text).map_err(|e| format!("\"{keyword}\": {e}"))?;
    let role = match keyword {
        "x-sluice-dimensions" => "a dimension",
        "x-sluice-measure" => "the measure",
        _ => "the identity",
    };
    let mut level = fields;
    let mut walked = Vec::new();
    let mut found = None;
    for (i, segment) in path.segments().iter().enumerate() {
        walked.push(segment.as_str());
        let here = walked.join("/");
        // `field `a/b`: `a` ...` for a parent on the way, `field `a/b` ...` for the field itself.
        let subject = if i + 1 == path.segments().len() { format!("`{path}`") } else { format!("`{path}`: `{here}`") };
        let Some(def) = level.iter().find(|f| &f.name == segment) else {
            return Err(format!("\"{keyword}\" names {subject}, which is not in \"properties\""));
        };
        if def.kind == FieldKind::Array {
            return Err(format!("\"{keyword}\" field {subject} is an array, and an array cannot be {role}"));
        }
        if i + 1 == path.segments().len() && !kinds.contains(&def.kind) {
            let allowed: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            return Err(format!(
                "\"{keyword}\" field `{path}` is {}, it must be {}",
                def.kind.with_article(),
                allowed.join(" or ")
            ));
        }
        if !def.required {
            return Err(format!("\"{keyword}\" field {subject} must be listed in \"required\""));
        }
        if def.nullable {
            return Err(format!("\"{keyword}\" field {subject} must not be nullable"));
        }
        if i + 1 < path.segments().len() && def.kind != FieldKind::Object {
            return Err(format!("\"{keyword}\" field {subject} is {}, not an object", def.kind.with_article()));
        }
        level = &def.fields;
        found = Some(def);
    }
    found.ok_or_else(|| format!("\"{keyword}\": `{text}` is not a field path"))?;
    Ok(path)
}

/// Checks the measure property's bounds against [`MEASURE_LIMIT`] and adds the limit on each
/// side the schema leaves open.
fn bound_measure(document: &mut Value, measure: &FieldPath) -> Result<(), String> {
    let pointer: String = measure.segments().iter().map(|s| format!("/properties/{s}")).collect();
    let Some(prop) = document.pointer_mut(&pointer).and_then(Value::as_object_mut) else {
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
        Some(_) => Err(format!("\"{keyword}\" must be a string (a field path)")),
    }
}

/// A schema file's objects with their keys in file order (`serde_json::Map` sorts them): what
/// gives nested properties their column order.
#[derive(Debug, Default)]
struct Ordered(Vec<(String, Ordered)>);

impl Ordered {
    /// The member `key` (empty if absent or not an object).
    fn member(&self, key: &str) -> &Ordered {
        static EMPTY: Ordered = Ordered(Vec::new());
        self.0.iter().find(|(k, _)| k == key).map_or(&EMPTY, |(_, v)| v)
    }

    fn members(&self) -> impl Iterator<Item = (&String, &Ordered)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

/// Every object of `text` with its keys in file order. Rejects a duplicate key in any
/// `properties` object (`"properties": duplicate property `x``).
fn property_orders(text: &str) -> Result<Ordered, String> {
    /// Deserializes any JSON value, keeping objects' key order; `in_properties`: the value is a
    /// `properties` object, whose keys must be distinct.
    struct Node {
        in_properties: bool,
    }

    impl<'de> serde::de::DeserializeSeed<'de> for Node {
        type Value = Ordered;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Ordered, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Node {
        type Value = Ordered;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
            let mut members: Vec<(String, Ordered)> = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                let value = map.next_value_seed(Node { in_properties: key == "properties" && !self.in_properties })?;
                if self.in_properties && members.iter().any(|(k, _)| *k == key) {
                    return Err(serde::de::Error::custom(format!("\"properties\": duplicate property `{key}`")));
                }
                members.push((key, value));
            }
            Ok(Ordered(members))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Ordered::default())
        }
        fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
            Ok(Ordered::default())
        }
        fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
            Ok(Ordered::default())
        }
        fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
            Ok(Ordered::default())
        }
        fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
            Ok(Ordered::default())
        }
        fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
            Ok(Ordered::default())
        }
        fn visit_unit<E>(self) -> Result<Ordered, E> {
            Ok(Ordered::default())
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(Node { in_properties: false }, &mut de).map_err(|e| e.to_string())
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
        let order = property_orders(r#"{"a":1,"properties":{"z":{},"a":{},"m":{"properties":{"q":1,"b":2}}}}"#);
        let order = order.unwrap();
        let keys = |o: &Ordered| o.members().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(keys(order.member("properties")), vec!["z", "a", "m"]);
        assert_eq!(keys(order.member("properties").member("m").member("properties")), vec!["q", "b"]);
        let dup = property_orders(r#"{"properties":{"x":{"properties":{"a":{},"a":{}}}}}"#).unwrap_err();
        assert!(dup.contains("duplicate property `a`"), "{dup}");
        assert!(property_orders(r#"{"properties":{"a":{},"a":{}}}"#).unwrap_err().contains("duplicate property `a`"));
    }

    #[test]
    fn registry_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Registry>();
    }
}
