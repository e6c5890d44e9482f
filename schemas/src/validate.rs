//! Validation: producer JSON -> [`Event`] ([`Registry::validate`]) and stream record bytes ->
//! [`Event`] ([`Registry::decode_stored`]).
//!
//! Every violation is reported, each with a JSON pointer into the submitted document and a
//! message written for the producer. Violations are sorted by pointer (then message), so the
//! output is deterministic.

use std::fmt;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sluice_bytescan::{parse_canonical_utc, utf8};

use crate::envelope::{
    ENVELOPE_FIELDS, Event, IngestContext, assign_event_id, check_event_id, parse_occurred_at, to_micros,
};
use crate::fast::{CanonicalRecord, parse_canonical};
use crate::registry::{FieldDef, FieldKind, Registry, SchemaVersion};

/// One thing wrong with a submitted event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Violation {
    /// JSON pointer into the submitted event, e.g. `/data/duration_ms` (`""`: the whole event).
    pub pointer: String,
    /// What is wrong and what is expected, e.g. `must be >= 0`.
    pub message: String,
}

impl Violation {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), message: message.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "event {}", self.message)
        } else {
            write!(f, "{} {}", self.pointer, self.message)
        }
    }
}

/// An event that was not accepted: every violation found (never empty when returned by this
/// crate). Disposition: the sender's fault; do not retry unchanged (4xx / dead-letter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct Rejection {
    pub violations: Vec<Violation>,
}

impl Rejection {
    fn from_violations(mut violations: Vec<Violation>) -> Self {
        violations.sort();
        violations.dedup();
        Self { violations }
    }

    fn one(pointer: &str, message: impl Into<String>) -> Self {
        Self { violations: vec![Violation::new(pointer, message)] }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid event: ")?;
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// The stored form, deserialized without copying `data` out of a `Value` (the reference
/// path: chrono's own timestamp parser).
#[derive(Deserialize)]
struct StoredEvent {
    event_id: String,
    event_type: String,
    schema_version: u32,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    producer: String,
    data: Value,
}

/// [`StoredEvent`] with [`StoredTime`] timestamps: the same fields, the same serde rules
/// (unknown fields ignored, duplicates and missing fields rejected), the same values.
#[derive(Deserialize)]
struct FastStoredEvent {
    event_id: String,
    event_type: String,
    schema_version: u32,
    occurred_at: StoredTime,
    received_at: StoredTime,
    producer: String,
    data: Value,
}

impl From<CanonicalRecord> for StoredEvent {
    fn from(e: CanonicalRecord) -> Self {
        StoredEvent {
            event_id: e.event_id,
            event_type: e.event_type,
            schema_version: e.schema_version,
            occurred_at: e.occurred_at,
            received_at: e.received_at,
            producer: e.producer,
            data: e.data,
        }
    }
}

impl From<FastStoredEvent> for StoredEvent {
    fn from(e: FastStoredEvent) -> Self {
        StoredEvent {
            event_id: e.event_id,
            event_type: e.event_type,
            schema_version: e.schema_version,
            occurred_at: e.occurred_at.0,
            received_at: e.received_at.0,
            producer: e.producer,
            data: e.data,
        }
    }
}

/// A `DateTime<Utc>` deserialized exactly as chrono does (`DateTime<FixedOffset>::from_str`,
/// then UTC), with the canonical form the `Event` serializer writes parsed by hand first.
struct StoredTime(DateTime<Utc>);

impl<'de> Deserialize<'de> for StoredTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl serde::de::Visitor<'_> for TimeVisitor {
            type Value = StoredTime;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // chrono's wording, so error messages do not change.
                f.write_str("an RFC 3339 formatted date and time string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<StoredTime, E> {
                if let Some(t) = parse_canonical_utc(s) {
                    return Ok(StoredTime(t));
                }
                s.parse::<DateTime<FixedOffset>>().map(|t| StoredTime(t.with_timezone(&Utc))).map_err(E::custom)
            }
        }
        d.deserialize_str(TimeVisitor)
    }
}

/// Which implementation checks `data` (the observable results are the same).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// The compiled [`FieldTable`](crate::fast::FieldTable) proves valid data valid;
    /// anything it cannot prove goes to the jsonschema validator.
    Fast,
    /// Always the jsonschema validator (the oracle of the differential tests).
    Reference,
}

impl Registry {
    /// Validates one producer event (the envelope and its `data`) and builds the [`Event`].
    ///
    /// Pure apart from the random bits of an assigned UUIDv7: time comes from `ctx`.
    /// On success: `event_id` as given or a UUIDv7 stamped with `ctx.received_at`;
    /// `schema_version` as given or the type's latest; `occurred_at` in UTC truncated to µs;
    /// `received_at` = `ctx.received_at` truncated to µs; integer fields given as `1.0` are
    /// stored as `1`. On failure: every violation, envelope and data, sorted by pointer.
    pub fn validate(&self, input: &Value, ctx: &IngestContext) -> Result<Event, Rejection> {
        self.validate_with(input, ctx, Path::Fast)
    }

    /// [`Registry::validate`] with every `data` object checked by the jsonschema validator:
    /// the reference the fast path is tested against. Same contract and results.
    #[doc(hidden)]
    pub fn validate_reference(&self, input: &Value, ctx: &IngestContext) -> Result<Event, Rejection> {
        self.validate_with(input, ctx, Path::Reference)
    }

    fn validate_with(&self, input: &Value, ctx: &IngestContext, path: Path) -> Result<Event, Rejection> {
        let Some(obj) = input.as_object() else {
            return Err(Rejection::one("", "must be a JSON object with event_type, occurred_at and data"));
        };
        let mut violations = Vec::new();
        let mut bad = |pointer: &str, message: String| {
            violations.push(Violation::new(pointer, message));
        };

        for key in obj.keys() {
            if !ENVELOPE_FIELDS.contains(&key.as_str()) {
                bad(&pointer_for(key), "is not allowed (unknown field)".to_owned());
            }
        }

        let event_id = match obj.get("event_id") {
            None => None,
            Some(Value::String(s)) => match check_event_id(s) {
                Ok(()) => Some(s.clone()),
                Err(message) => {
                    bad("/event_id", message.to_owned());
                    None
                }
            },
            Some(_) => {
                bad("/event_id", "must be a string (a UUID or ULID)".to_owned());
                None
            }
        };

        let event_type = match obj.get("event_type") {
            None => {
                bad("/event_type", "is required".to_owned());
                None
            }
            Some(Value::String(name)) => {
                let found = self.get(name);
                if found.is_none() {
                    bad("/event_type", format!("must be a registered event type: {}", self.type_list()));
                }
                found
            }
            Some(_) => {
                bad("/event_type", format!("must be a string naming an event type: {}", self.type_list()));
                None
            }
        };

        let requested = match obj.get("schema_version") {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => Ok(Some(n)),
                _ => {
                    bad("/schema_version", "must be an integer >= 1".to_owned());
                    Err(())
                }
            },
        };
        let schema: Option<&SchemaVersion> = match (event_type, requested) {
            (Some(t), Ok(None)) => t.latest(),
            (Some(t), Ok(Some(n))) => {
                let found = u32::try_from(n).ok().and_then(|n| t.version(n));
                if found.is_none() {
                    let known: Vec<String> = t.versions.keys().map(u32::to_string).collect();
                    bad(
                        "/schema_version",
                        format!("must be a registered version of {}: one of {}", t.name, known.join(", ")),
                    );
                }
                found
            }
            _ => None,
        };

        let occurred_at = match obj.get("occurred_at") {
            None => {
                bad("/occurred_at", "is required".to_owned());
                None
            }
            Some(Value::String(s)) => match parse_occurred_at(s) {
                None => {
                    bad(
                        "/occurred_at",
                        "must be an RFC 3339 timestamp with a UTC offset, e.g. \
                         2024-05-01T12:00:00.000Z"
                            .to_owned(),
                    );
                    None
                }
                Some(t) if !self.event_time().contains(t, to_micros(ctx.received_at)) => {
                    bad("/occurred_at", self.event_time().violation(to_micros(ctx.received_at)));
                    None
                }
                Some(t) => Some(t),
            },
            Some(_) => {
                bad("/occurred_at", "must be a string (an RFC 3339 timestamp with a UTC offset)".to_owned());
                None
            }
        };

        let data = match obj.get("data") {
            None => {
                bad("/data", "is required".to_owned());
                None
            }
            Some(value @ Value::Object(map)) => {
                if let Some(schema) = schema {
                    violations.extend(data_violations(schema, value, path));
                }
                Some(map)
            }
            Some(_) => {
                bad("/data", "must be an object".to_owned());
                None
            }
        };

        match (event_type, schema, occurred_at, data) {
            (Some(t), Some(schema), Some(occurred_at), Some(data)) if violations.is_empty() => Ok(Event {
                event_id: event_id.unwrap_or_else(|| assign_event_id(ctx.received_at)),
                event_type: t.name.clone(),
                schema_version: schema.version,
                occurred_at,
                received_at: to_micros(ctx.received_at),
                producer: ctx.producer.clone(),
                data: normalise(schema, data),
            }),
            _ => Err(Rejection::from_violations(violations)),
        }
    }

    /// Decodes a stream record payload (the JSON of an [`Event`]) and re-validates `data`
    /// against its `(event_type, schema_version)` schema. Never panics: bytes that are not
    /// UTF-8/JSON/an Event give pointer `""`, an unknown type `/event_type`, an unknown
    /// version `/schema_version`, invalid data `/data/...`.
    pub fn decode_stored(&self, bytes: &[u8]) -> Result<Event, Rejection> {
        // UTF-8 is checked once for the whole record (SIMD) instead of once per JSON string;
        // the layout the Event serializer writes is parsed by hand, anything else by serde.
        let parsed = utf8(bytes).and_then(|text| {
            parse_canonical(text)
                .map(StoredEvent::from)
                .or_else(|| serde_json::from_str::<FastStoredEvent>(text).ok().map(StoredEvent::from))
        });
        match parsed {
            Some(stored) => self.check_stored(stored, Path::Fast),
            // Not an Event: the reference parse gives the error message.
            None => self.decode_stored_reference(bytes),
        }
    }

    /// [`Registry::decode_stored`] with chrono's timestamp parser and the jsonschema validator
    /// only: the reference the fast path is tested against. Same contract and results.
    #[doc(hidden)]
    pub fn decode_stored_reference(&self, bytes: &[u8]) -> Result<Event, Rejection> {
        let stored: StoredEvent = serde_json::from_slice(bytes)
            .map_err(|e| Rejection::one("", format!("is not a stored sluice event: {e}")))?;
        self.check_stored(stored, Path::Reference)
    }

    fn check_stored(&self, stored: StoredEvent, path: Path) -> Result<Event, Rejection> {
        let Some(t) = self.get(&stored.event_type) else {
            return Err(Rejection::one(
                "/event_type",
                format!("must be a registered event type: {}", self.type_list()),
            ));
        };
        let Some(schema) = t.version(stored.schema_version) else {
            let known: Vec<String> = t.versions.keys().map(u32::to_string).collect();
            return Err(Rejection::one(
                "/schema_version",
                format!("must be a registered version of {}: one of {}", t.name, known.join(", ")),
            ));
        };
        let mut violations = data_violations(schema, &stored.data, path);
        if !self.event_time().contains(stored.occurred_at, stored.received_at) {
            violations.push(Violation::new("/occurred_at", self.event_time().violation(stored.received_at)));
        }
        if !violations.is_empty() {
            return Err(Rejection::from_violations(violations));
        }
        let Value::Object(data) = stored.data else {
            // Unreachable: the schema requires an object; kept total instead of panicking.
            return Err(Rejection::one("/data", "must be an object"));
        };
        Ok(Event {
            event_id: stored.event_id,
            event_type: stored.event_type,
            schema_version: stored.schema_version,
            occurred_at: stored.occurred_at,
            received_at: stored.received_at,
            producer: stored.producer,
            data,
        })
    }

    fn type_list(&self) -> String {
        let names: Vec<&str> = self.event_types().map(|t| t.name.as_str()).collect();
        format!("one of {}", names.join(", "))
    }
}

/// Violations of `data` (pointers prefixed with `/data`). Empty means valid. On [`Path::Fast`],
/// data the compiled table proves valid skips the jsonschema validator; everything else
/// (including all invalid data) is checked and reported by it.
fn data_violations(schema: &SchemaVersion, data: &Value, path: Path) -> Vec<Violation> {
    if path == Path::Fast && schema.table().is_some_and(|table| table.accepts(data)) {
        return Vec::new();
    }
    let mut out = Vec::new();
    if !schema.validator().is_valid(data) {
        let mut mistyped = Vec::new();
        for error in schema.validator().iter_errors(data) {
            push_schema_error(schema, &error, &mut out, &mut mistyped);
        }
        // A wrong type makes the other complaints about the same value noise.
        if !mistyped.is_empty() {
            out.retain(|v| !mistyped.contains(&v.pointer) || is_type_message(&v.message));
        }
    }
    // Integer columns are Int64: JSON Schema's "integer" also admits 1e30 and 2^63.
    if let Value::Object(map) = data {
        fields_out_of_range(&schema.fields, map, &mut String::from("/data"), &mut out);
    }
    out
}

/// Pushes a violation for every integer in `value` (of `def`, at `pointer`) outside i64 that
/// has no other violation.
fn out_of_range_integers(def: &FieldDef, value: &Value, pointer: &mut String, out: &mut Vec<Violation>) {
    match (def.kind, value) {
        (FieldKind::Integer, Value::Number(n)) if as_i64(n).is_none() && !out.iter().any(|v| v.pointer == *pointer) => {
            out.push(Violation::new(
                pointer.clone(),
                format!("must be an integer between {} and {}", i64::MIN, i64::MAX),
            ));
        }
        (FieldKind::Object, Value::Object(map)) => fields_out_of_range(&def.fields, map, pointer, out),
        (FieldKind::Array, Value::Array(values)) => {
            if let Some(items) = def.items.as_deref() {
                for (i, value) in values.iter().enumerate() {
                    let at = pointer.len();
                    pointer.push_str(&format!("/{i}"));
                    out_of_range_integers(items, value, pointer, out);
                    pointer.truncate(at);
                }
            }
        }
        _ => {}
    }
}

/// [`out_of_range_integers`] for each of `fields` present in the object `map` at `pointer`.
fn fields_out_of_range(fields: &[FieldDef], map: &Map<String, Value>, pointer: &mut String, out: &mut Vec<Violation>) {
    for field in fields {
        if let Some(value) = map.get(&field.name) {
            let at = pointer.len();
            pointer.push_str(&pointer_for(&field.name));
            out_of_range_integers(field, value, pointer, out);
            pointer.truncate(at);
        }
    }
}

fn push_schema_error(
    schema: &SchemaVersion,
    error: &ValidationError<'_>,
    out: &mut Vec<Violation>,
    mistyped: &mut Vec<String>,
) {
    let at = format!("/data{}", error.instance_path().as_str());
    let message = match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().map_or_else(|| property.to_string(), str::to_owned);
            out.push(Violation::new(format!("{at}{}", pointer_for(&name)), "is required"));
            return;
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            for name in unexpected {
                out.push(Violation::new(format!("{at}{}", pointer_for(name)), "is not allowed (unknown field)"));
            }
            return;
        }
        ValidationErrorKind::Type { kind } => {
            let mut types: Vec<&str> = match kind {
                TypeKind::Single(t) => vec![a_json_type(*t)],
                TypeKind::Multiple(set) => set.iter().map(a_json_type).collect(),
            };
            // "a string or null": null last.
            types.sort_by_key(|t| *t == "null");
            mistyped.push(at.clone());
            format!("must be {}", types.join(" or "))
        }
        ValidationErrorKind::Enum { options } => {
            let listed: Vec<String> = options
                .as_array()
                .map(|items| items.iter().map(plain).collect())
                .unwrap_or_else(|| vec![plain(options)]);
            format!("must be one of {}", listed.join(", "))
        }
        ValidationErrorKind::Constant { expected_value } => {
            format!("must be {}", plain(expected_value))
        }
        ValidationErrorKind::Minimum { limit } => format!("must be >= {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("must be <= {limit}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be > {limit}"),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be < {limit}"),
        ValidationErrorKind::MinLength { limit: 1 } => "must not be empty".to_owned(),
        ValidationErrorKind::MinLength { limit } => {
            format!("must be at least {limit} characters long")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("must be at most {limit} characters long")
        }
        ValidationErrorKind::Pattern { pattern } => {
            // The property's description says what the pattern means, e.g. "ISO 4217 currency code".
            let description = schema_parent(&schema.document, error.schema_path().as_str())
                .and_then(|p| p.get("description"))
                .and_then(Value::as_str);
            match description {
                Some(d) => format!("must match the pattern {pattern} ({d})"),
                None => format!("must match the pattern {pattern}"),
            }
        }
        ValidationErrorKind::Format { format } if format == "date-time" => {
            "must be an RFC 3339 timestamp with a UTC offset, e.g. 2024-05-01T12:00:00.000Z".to_owned()
        }
        ValidationErrorKind::Format { format } => format!("must be a valid {format}"),
        ValidationErrorKind::MinItems { limit: 1 } => "must not be empty".to_owned(),
        ValidationErrorKind::MinItems { limit } => format!("must have at least {limit} items"),
        ValidationErrorKind::MaxItems { limit } => format!("must have at most {limit} items"),
        ValidationErrorKind::UniqueItems => "must not contain the same item twice".to_owned(),
        _ => error.masked().to_string(),
    };
    out.push(Violation::new(at, message));
}

/// "a string", "an integer", ... for type messages.
fn a_json_type(t: JsonType) -> &'static str {
    match t {
        JsonType::Null => "null",
        JsonType::Boolean => "a boolean",
        JsonType::Integer => "an integer",
        JsonType::Number => "a number",
        JsonType::String => "a string",
        JsonType::Array => "an array",
        JsonType::Object => "an object",
    }
}

fn is_type_message(message: &str) -> bool {
    const TYPES: &[&str] = &["null", "a boolean", "an integer", "a number", "a string", "an array", "an object"];
    message.strip_prefix("must be ").is_some_and(|rest| rest.split(" or ").all(|t| TYPES.contains(&t)))
}

/// A JSON value for a message: strings without quotes, everything else as JSON.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The schema object holding the keyword at `schema_path` (e.g. `/properties/country/pattern`
/// -> the `country` property schema).
fn schema_parent<'a>(document: &'a Value, schema_path: &str) -> Option<&'a Value> {
    let (parent, _) = schema_path.rsplit_once('/')?;
    document.pointer(parent)
}

/// `/` + the key escaped as a JSON pointer token (`~` -> `~0`, `/` -> `~1`).
fn pointer_for(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// `n` as an i64 if it is an integer in range (including floats like `3.0`).
fn as_i64(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        return None;
    }
    let f = n.as_f64()?;
    // i64::MAX as f64 rounds up to 2^63, which is out of range: use a strict upper bound.
    (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
}

/// A copy of `data` in its stored form: integers written as JSON integers (`3.0` -> `3`) and
/// date-times in UTC to the microsecond, as `occurred_at` is (`2024-05-01T14:00:00.5+02:00` ->
/// `2024-05-01T12:00:00.500Z`), at every depth.
fn normalise(schema: &SchemaVersion, data: &Map<String, Value>) -> Map<String, Value> {
    let mut out = data.clone();
    for field in &schema.fields {
        if let Some(value) = out.get_mut(&field.name) {
            normalise_value(field, value);
        }
    }
    out
}

fn normalise_value(def: &FieldDef, value: &mut Value) {
    match (def.kind, value) {
        (FieldKind::Integer, value @ Value::Number(_)) => {
            if let Value::Number(n) = &*value
                && !n.is_i64()
                && let Some(i) = as_i64(n)
            {
                *value = Value::from(i);
            }
        }
        (FieldKind::Timestamp, Value::String(s)) => {
            if let Some(t) = parse_occurred_at(s) {
                *s = canonical_time(t);
            }
        }
        (FieldKind::Object, Value::Object(map)) => {
            for field in &def.fields {
                if let Some(value) = map.get_mut(&field.name) {
                    normalise_value(field, value);
                }
            }
        }
        (FieldKind::Array, Value::Array(values)) => {
            if let Some(items) = def.items.as_deref() {
                values.iter_mut().for_each(|v| normalise_value(items, v));
            }
        }
        _ => {}
    }
}

/// `t` as the stored form writes a timestamp (what `Event`'s `occurred_at` serializes to).
pub(crate) fn canonical_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        let n = |v: Value| match v {
            Value::Number(n) => as_i64(&n),
            _ => None,
        };
        assert_eq!(n(serde_json::json!(3)), Some(3));
        assert_eq!(n(serde_json::json!(3.0)), Some(3));
        assert_eq!(n(serde_json::json!(-2.0)), Some(-2));
        assert_eq!(n(serde_json::json!(3.5)), None);
        assert_eq!(n(serde_json::json!(u64::MAX)), None);
        assert_eq!(n(serde_json::json!(9.3e18)), None);
        assert_eq!(n(serde_json::json!(-9.2e18)), Some(-9_200_000_000_000_000_000));
    }

    #[test]
    fn stored_times_are_what_the_event_serializer_writes() {
        for text in ["2024-05-01T14:00:00.5+02:00", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123456789-00:30"] {
            let t = parse_occurred_at(text).unwrap();
            assert_eq!(Value::String(canonical_time(t)), serde_json::to_value(t).unwrap(), "{text}");
        }
    }

    #[test]
    fn pointers_are_escaped() {
        assert_eq!(pointer_for("a/b~c"), "/a~1b~0c");
    }
}
