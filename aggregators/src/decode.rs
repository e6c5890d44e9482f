//! Stream record bytes -> [`Contribution`], fast.
//!
//! [`Registry::decode_stored`] is the authority on what is valid, but it builds a
//! `serde_json::Value` per event and runs the general JSON Schema validator. This decoder first
//! tries a fast path: borrowed envelope fields, `data` walked once against a per-schema rule set
//! compiled from the schema document (type, enum, minimum/maximum, exclusive bounds,
//! minLength/maxLength, simple ASCII patterns, required, no additional properties), extracting
//! only the dimensions, measure and identity. Whenever the fast path is not certain (a schema
//! keyword it does not implement, an escaped key, an integer written as `1.0`, a duplicate key,
//! any violation) it defers to `decode_stored`, whose answer (and rejection reason) is final.
//!
//! Contract (differential test `decode_agrees_with_registry`): `decode(b)` is `Ok` exactly when
//! `registry.decode_stored(b)` is, and then holds the same values.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use sluice_schemas::{Event, FieldKind, Registry, Rejection, SchemaVersion};

use crate::aggregate::Contribution;
use crate::hll::fingerprint;
use crate::key::DimRef;
use crate::state::Observation;

#[derive(Deserialize)]
struct StoredRef<'a> {
    #[allow(dead_code)]
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    schema_version: u32,
    #[serde(borrow)]
    occurred_at: &'a str,
    #[serde(borrow)]
    received_at: &'a str,
    #[allow(dead_code)]
    #[serde(borrow)]
    producer: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Checks of one property that the fast path implements.
#[derive(Debug, Clone)]
struct Rule {
    name: String,
    kind: FieldKind,
    required: bool,
    enum_str: Option<Vec<String>>,
    enum_int: Option<Vec<i64>>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<regex::Regex>,
    /// Role: index into the dimensions, or measure / identity.
    dim: Option<usize>,
    measure: bool,
    identity: bool,
}

/// The fast rule set of one schema version.
#[derive(Debug, Clone)]
struct FastSchema {
    rules: Vec<Rule>,
    dims: usize,
    has_measure: bool,
    has_identity: bool,
}

const ANNOTATIONS: &[&str] =
    &["description", "title", "examples", "$comment", "deprecated", "readOnly", "writeOnly", "type"];
const TOP_LEVEL: &[&str] =
    &["$schema", "$id", "$comment", "title", "description", "type", "properties", "required", "additionalProperties"];

/// A pattern the `regex` crate and ECMA-262 read identically: anchors, ASCII literals, bracket
/// classes of ASCII ranges and counted/`*+?` quantifiers, nothing else.
fn simple_pattern(p: &str) -> bool {
    p.bytes().all(|b| b.is_ascii_alphanumeric() || b"^$[]{}-,+*?_ ".contains(&b))
}

fn compile_fast(schema: &SchemaVersion) -> Option<FastSchema> {
    let top = schema.document.as_object()?;
    if top.keys().any(|k| !TOP_LEVEL.contains(&k.as_str()) && !k.starts_with("x-sluice-")) {
        return None;
    }
    let props = top.get("properties")?.as_object()?;
    let mut rules = Vec::new();
    for field in &schema.fields {
        let p = props.get(&field.name)?.as_object()?;
        let mut r = Rule {
            name: field.name.clone(),
            kind: field.kind,
            required: field.required,
            enum_str: None,
            enum_int: None,
            minimum: None,
            maximum: None,
            exclusive_minimum: None,
            exclusive_maximum: None,
            min_length: None,
            max_length: None,
            pattern: None,
            dim: schema.dimensions.iter().position(|d| *d == field.name),
            measure: schema.measure.as_deref() == Some(field.name.as_str()),
            identity: schema.identity.as_deref() == Some(field.name.as_str()),
        };
        if p.get("type").and_then(Value::as_str) != Some(field.kind.as_str()) {
            return None;
        }
        for (k, v) in p {
            let num = || v.as_f64();
            let len = || v.as_u64().and_then(|n| usize::try_from(n).ok());
            match k.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "enum" => match field.kind {
                    FieldKind::String => {
                        r.enum_str =
                            Some(v.as_array()?.iter().map(|x| x.as_str().map(str::to_owned)).collect::<Option<_>>()?);
                    }
                    FieldKind::Integer => {
                        r.enum_int = Some(
                            v.as_array()?
                                .iter()
                                .map(|x| x.as_i64().filter(|_| x.is_i64() || x.is_u64()))
                                .collect::<Option<_>>()?,
                        );
                    }
                    _ => return None,
                },
                "minimum" => r.minimum = Some(num()?),
                "maximum" => r.maximum = Some(num()?),
                "exclusiveMinimum" => r.exclusive_minimum = Some(num()?),
                "exclusiveMaximum" => r.exclusive_maximum = Some(num()?),
                "minLength" => r.min_length = Some(len()?),
                "maxLength" => r.max_length = Some(len()?),
                "pattern" => {
                    let s = v.as_str()?;
                    if !simple_pattern(s) {
                        return None;
                    }
                    r.pattern = Some(regex::Regex::new(s).ok()?);
                }
                _ => return None,
            }
        }
        rules.push(r);
    }
    if rules.len() != props.len() {
        return None;
    }
    Some(FastSchema {
        rules,
        dims: schema.dimensions.len(),
        has_measure: schema.measure.is_some(),
        has_identity: schema.identity.is_some(),
    })
}

/// Decodes and validates stream records (see the module docs). Build once per registry.
#[derive(Debug, Clone)]
pub struct Decoder {
    registry: Arc<Registry>,
    /// Fast rules by event type, then version.
    fast: HashMap<String, Vec<(u32, FastSchema)>>,
}

/// A value extracted by the fast path.
enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Num(f64),
    Bool,
}

struct ValueSeed(FieldKind);

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Val<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
        struct V(FieldKind);
        impl<'de> Visitor<'de> for V {
            type Value = Val<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Val<'de>, E> {
                match self.0 {
                    FieldKind::String => Ok(Val::Str(Cow::Borrowed(v))),
                    _ => Err(E::custom("type")),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Val<'de>, E> {
                match self.0 {
                    FieldKind::String => Ok(Val::Str(Cow::Owned(v.to_owned()))),
                    _ => Err(E::custom("type")),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val<'de>, E> {
                match self.0 {
                    FieldKind::Integer => Ok(Val::Int(v)),
                    FieldKind::Number => Ok(Val::Num(v as f64)),
                    _ => Err(E::custom("type")),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val<'de>, E> {
                match (self.0, i64::try_from(v)) {
                    (FieldKind::Integer, Ok(i)) => Ok(Val::Int(i)),
                    (FieldKind::Number, _) => Ok(Val::Num(v as f64)),
                    _ => Err(E::custom("type")),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Val<'de>, E> {
                match self.0 {
                    FieldKind::Number => Ok(Val::Num(v)),
                    _ => Err(E::custom("type")),
                }
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Val<'de>, E> {
                match self.0 {
                    FieldKind::Boolean => Ok(Val::Bool),
                    _ => Err(E::custom("type")),
                }
            }
        }
        d.deserialize_any(V(self.0))
    }
}

/// Walks `data` against a [`FastSchema`].
struct DataSeed<'s>(&'s FastSchema);

struct Extracted<'a> {
    dims: Vec<Option<DimRef<'a>>>,
    measure: Option<f64>,
    identity: Option<u32>,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Extracted<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Extracted<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = Extracted<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Extracted<'de>, A::Error> {
        let schema = self.0;
        let unsure = || <A::Error as de::Error>::custom("unsure");
        let mut seen: u64 = 0;
        let mut out = Extracted { dims: vec![None; schema.dims], measure: None, identity: None };
        while let Some(key) = map.next_key::<&'de str>()? {
            let (i, rule) = schema.rules.iter().enumerate().find(|(_, r)| r.name == key).ok_or_else(unsure)?;
            let bit = 1u64.checked_shl(i as u32).unwrap_or(0);
            if bit == 0 || seen & bit != 0 {
                return Err(unsure());
            }
            seen |= bit;
            let v = map.next_value_seed(ValueSeed(rule.kind))?;
            if !check(rule, &v) {
                return Err(unsure());
            }
            if rule.identity {
                out.identity = Some(match &v {
                    Val::Str(s) => fingerprint(s.as_bytes()),
                    Val::Int(n) => fingerprint(n.to_string().as_bytes()),
                    _ => return Err(unsure()),
                });
            }
            if rule.measure {
                out.measure = Some(match v {
                    Val::Num(x) => x,
                    Val::Int(n) => n as f64,
                    _ => return Err(unsure()),
                });
            } else if let Some(di) = rule.dim {
                let dim = match v {
                    Val::Str(s) => DimRef::Str(s),
                    Val::Int(n) => DimRef::Int(n),
                    _ => return Err(unsure()),
                };
                if let Some(slot) = out.dims.get_mut(di) {
                    *slot = Some(dim);
                }
            }
        }
        for (i, r) in schema.rules.iter().enumerate() {
            if r.required && seen & (1u64 << i) == 0 {
                return Err(unsure());
            }
        }
        if (schema.has_measure && out.measure.is_none()) || (schema.has_identity && out.identity.is_none()) {
            return Err(unsure());
        }
        Ok(out)
    }
}

fn check(r: &Rule, v: &Val<'_>) -> bool {
    let num = match v {
        Val::Int(n) => {
            if n.unsigned_abs() > (1u64 << 53)
                && (r.minimum.is_some()
                    || r.maximum.is_some()
                    || r.exclusive_minimum.is_some()
                    || r.exclusive_maximum.is_some())
            {
                return false;
            }
            if r.enum_int.as_ref().is_some_and(|e| !e.contains(n)) {
                return false;
            }
            Some(*n as f64)
        }
        Val::Num(x) => Some(*x),
        Val::Str(s) => {
            if r.enum_str.as_ref().is_some_and(|e| !e.iter().any(|x| x == s)) {
                return false;
            }
            if r.min_length.is_some() || r.max_length.is_some() {
                let n = s.chars().count();
                if r.min_length.is_some_and(|m| n < m) || r.max_length.is_some_and(|m| n > m) {
                    return false;
                }
            }
            if r.pattern.as_ref().is_some_and(|p| !p.is_match(s)) {
                return false;
            }
            None
        }
        Val::Bool => None,
    };
    if let Some(x) = num
        && (!x.is_finite()
            || r.minimum.is_some_and(|m| x < m)
            || r.maximum.is_some_and(|m| x > m)
            || r.exclusive_minimum.is_some_and(|m| x <= m)
            || r.exclusive_maximum.is_some_and(|m| x >= m))
    {
        return false;
    }
    true
}

/// How a record was decoded (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Fast,
    Registry,
}

impl Decoder {
    /// Compiles the fast rules of every schema version it supports.
    pub fn new(registry: Arc<Registry>) -> Self {
        let mut fast = HashMap::new();
        for t in registry.event_types() {
            for (v, schema) in &t.versions {
                if let Some(f) = compile_fast(schema) {
                    fast.entry(t.name.clone()).or_insert_with(Vec::new).push((*v, f));
                }
            }
        }
        Decoder { registry, fast }
    }

    /// The registry it validates against.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether `(event_type, version)` has fast rules.
    pub fn is_fast(&self, event_type: &str, version: u32) -> bool {
        self.fast_schema(event_type, version).is_some()
    }

    /// Decodes one stream record payload. `Err` carries the registry's rejection.
    pub fn decode<'a>(&self, bytes: &'a [u8]) -> Result<(Contribution<'a>, Path), Rejection> {
        if let Some(c) = self.try_fast(bytes) {
            return Ok((c, Path::Fast));
        }
        let event = self.registry.decode_stored(bytes)?;
        Ok((self.from_event(event)?, Path::Registry))
    }

    fn fast_schema(&self, event_type: &str, version: u32) -> Option<&FastSchema> {
        self.fast.get(event_type)?.iter().find(|(v, _)| *v == version).map(|(_, f)| f)
    }

    fn try_fast<'a>(&self, bytes: &'a [u8]) -> Option<Contribution<'a>> {
        // One UTF-8 check of the whole payload, then parse from &str (no per-string checks).
        let text = std::str::from_utf8(bytes).ok()?;
        let stored: StoredRef<'a> = serde_json::from_str(text).ok()?;
        let schema = self.fast_schema(&stored.event_type, stored.schema_version)?;
        let mut de = serde_json::Deserializer::from_str(stored.data.get());
        let ex = DataSeed(schema).deserialize(&mut de).ok()?;
        let dims: Option<Vec<DimRef<'a>>> = ex.dims.into_iter().collect();
        Some(Contribution {
            event_type: stored.event_type,
            occurred_at: parse_timestamp(stored.occurred_at)?,
            received_at: parse_timestamp(stored.received_at)?,
            dims: dims?,
            obs: Observation { measure: ex.measure, identity: ex.identity },
        })
    }

    /// The contribution of a validated [`Event`] (the slow path, and for callers holding events).
    pub fn from_event(&self, event: Event) -> Result<Contribution<'static>, Rejection> {
        contribution_of(&self.registry, event)
    }
}

/// Parses a timestamp exactly as chrono's `DateTime<Utc>` deserializer does, with a fast path
/// for the canonical `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` form (what the stream carries).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    fast_timestamp(s.as_bytes())
        .or_else(|| s.parse::<DateTime<chrono::FixedOffset>>().ok().map(|t| t.with_timezone(&Utc)))
}

fn fast_timestamp(b: &[u8]) -> Option<DateTime<Utc>> {
    if b.len() < 20
        || b.len() > 30
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut nanos = 0u32;
    let frac = &b[19..b.len() - 1];
    if !frac.is_empty() {
        let digits = frac.strip_prefix(b".")?;
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        for (i, &c) in digits.iter().enumerate() {
            if !c.is_ascii_digit() {
                return None;
            }
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
    }
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some(date.and_time(time).and_utc())
}

/// An integer-valued JSON number (`200` or `200.0`) as i64; JSON Schema's `integer` admits both.
fn as_integer(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64))
}

/// The contribution of a validated [`Event`]: its dimensions, measure and identity as its
/// schema version declares them.
pub fn contribution_of(registry: &Registry, event: Event) -> Result<Contribution<'static>, Rejection> {
    let missing = |what: &str| Rejection {
        violations: vec![sluice_schemas::Violation::new("/data", format!("lacks its {what} (schema changed?)"))],
    };
    let schema = registry
        .get(&event.event_type)
        .and_then(|t| t.version(event.schema_version))
        .ok_or_else(|| missing("schema"))?;
    let mut dims = Vec::with_capacity(schema.dimensions.len());
    for d in &schema.dimensions {
        dims.push(match event.data.get(d) {
            Some(Value::String(s)) => DimRef::Str(Cow::Owned(s.clone())),
            Some(Value::Number(n)) => DimRef::Int(as_integer(n).ok_or_else(|| missing("dimension"))?),
            _ => return Err(missing("dimension")),
        });
    }
    let measure = match &schema.measure {
        None => None,
        Some(m) => Some(event.data.get(m).and_then(Value::as_f64).ok_or_else(|| missing("measure"))?),
    };
    let identity = match &schema.identity {
        None => None,
        Some(i) => Some(match event.data.get(i) {
            Some(Value::String(s)) => fingerprint(s.as_bytes()),
            Some(Value::Number(n)) => match as_integer(n) {
                Some(i) => fingerprint(i.to_string().as_bytes()),
                None => fingerprint(n.to_string().as_bytes()),
            },
            _ => return Err(missing("identity")),
        }),
    };
    Ok(Contribution {
        event_type: Cow::Owned(event.event_type),
        occurred_at: event.occurred_at,
        received_at: event.received_at,
        dims,
        obs: Observation { measure, identity },
    })
}
