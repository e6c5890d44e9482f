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
    /// Bit i set: rule i is required.
    required_mask: u64,
    /// One bit per dimension.
    dims_mask: u64,
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
    // Bit sets: at most 64 fields and dimensions on the fast path.
    if rules.len() != props.len() || rules.len() > 64 || schema.dimensions.len() > 64 {
        return None;
    }
    let required_mask = rules.iter().enumerate().filter(|(_, r)| r.required).fold(0u64, |m, (i, _)| m | (1 << i));
    let dims_mask = if schema.dimensions.len() == 64 { u64::MAX } else { (1u64 << schema.dimensions.len()) - 1 };
    // Every dimension must be a field (else the slow path reports it).
    let dims_found = rules.iter().filter_map(|r| r.dim).fold(0u64, |m, d| m | (1 << d));
    if dims_found != dims_mask {
        return None;
    }
    Some(FastSchema {
        rules,
        dims: schema.dimensions.len(),
        required_mask,
        dims_mask,
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

/// Walks `data` against a [`FastSchema`], into an [`Acc`].
struct DataSeed<'x, 's, 'o, 'a>(&'x mut Acc<'s, 'o, 'a>);

impl<'a> DeserializeSeed<'a> for DataSeed<'_, '_, '_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'a>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'a> Visitor<'a> for DataSeed<'_, '_, '_, 'a> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<(), A::Error> {
        let unsure = || <A::Error as de::Error>::custom("unsure");
        let acc = self.0;
        while let Some(key) = map.next_key::<&'a str>()? {
            let i = acc.field(key).ok_or_else(unsure)?;
            let kind = acc.schema.rules.get(i).ok_or_else(unsure)?.kind;
            let v = map.next_value_seed(ValueSeed(kind))?;
            acc.value(i, v).ok_or_else(unsure)?;
        }
        Ok(())
    }
}

/// The per-field logic of the fast path, shared by the serde walk and the canonical scanner:
/// known field, no duplicate, rule checks, role extraction, required fields. `None` = unsure.
/// Dimensions go straight into the caller's `dims` (no allocation once it has grown).
struct Acc<'s, 'o, 'a> {
    schema: &'s FastSchema,
    seen: u64,
    /// Dimensions set so far (bit per dimension index).
    dims_seen: u64,
    /// Where the next key is expected (keys usually come in rule order).
    next: usize,
    dims: &'o mut Vec<DimRef<'a>>,
    measure: Option<f64>,
    identity: Option<u32>,
}

impl<'s, 'o, 'a> Acc<'s, 'o, 'a> {
    fn new(schema: &'s FastSchema, dims: &'o mut Vec<DimRef<'a>>) -> Self {
        dims.clear();
        dims.resize(schema.dims, DimRef::Int(0));
        Acc { schema, seen: 0, dims_seen: 0, next: 0, dims, measure: None, identity: None }
    }

    /// The rule index of `key`, if known and not seen yet.
    #[inline]
    fn field(&mut self, key: &str) -> Option<usize> {
        let rules = &self.schema.rules;
        let i = match rules.get(self.next) {
            Some(r) if r.name == key => self.next,
            _ => rules.iter().position(|r| r.name == key)?,
        };
        self.next = i + 1;
        let bit = 1u64.checked_shl(i as u32).unwrap_or(0);
        if bit == 0 || self.seen & bit != 0 {
            return None;
        }
        self.seen |= bit;
        Some(i)
    }

    #[inline]
    fn value(&mut self, i: usize, v: Val<'a>) -> Option<()> {
        let rule = self.schema.rules.get(i)?;
        if !check(rule, &v) {
            return None;
        }
        if rule.identity {
            self.identity = Some(match &v {
                Val::Str(s) => fingerprint(s.as_bytes()),
                Val::Int(n) => fingerprint(n.to_string().as_bytes()),
                _ => return None,
            });
        }
        if rule.measure {
            self.measure = Some(match v {
                Val::Num(x) => x,
                Val::Int(n) => n as f64,
                _ => return None,
            });
        } else if let Some(di) = rule.dim {
            let dim = match v {
                Val::Str(s) => DimRef::Str(s),
                Val::Int(n) => DimRef::Int(n),
                _ => return None,
            };
            let slot = self.dims.get_mut(di)?;
            *slot = dim;
            self.dims_seen |= 1u64.checked_shl(di as u32)?;
        }
        Some(())
    }

    /// Required fields, every dimension, the measure and identity present: the observation.
    fn finish(self) -> Option<Observation> {
        let schema = self.schema;
        if self.seen & schema.required_mask != schema.required_mask
            || self.dims_seen != schema.dims_mask
            || (schema.has_measure && self.measure.is_none())
            || (schema.has_identity && self.identity.is_none())
        {
            return None;
        }
        Some(Observation { measure: self.measure, identity: self.identity })
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of each byte of the result is set where `x` has a zero byte (exact for the lowest one).
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// Offset of the first `"`, `\` or control character in `s`, if any (8 bytes at a time; the
/// short strings of an event end within a few words, where `memchr`'s setup would dominate).
#[inline(always)]
fn find_string_special(s: &[u8]) -> Option<usize> {
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w);
        let m = zero_bytes(x ^ (ONES * u64::from(b'"')))
            | zero_bytes(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGHS);
        if m != 0 {
            return Some(base + (m.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks.remainder().iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).map(|p| base + p)
}

/// A hand scanner for exactly the layout the `Event` serializer writes (compact, canonical key
/// order, no escapes, integers of at most 18 digits). Anything else returns `None` and the
/// serde path decides; the values it produces are the ones serde_json would.
struct Canonical<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Canonical<'a> {
    #[inline]
    fn lit(&mut self, l: &str) -> Option<()> {
        let end = self.i + l.len();
        (self.text.as_bytes().get(self.i..end)? == l.as_bytes()).then(|| self.i = end)
    }

    /// A string without escapes or control characters (else `None`).
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        let b = self.text.as_bytes();
        if b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let len = find_string_special(b.get(start..)?)?;
        if b.get(start + len) != Some(&b'"') {
            return None;
        }
        self.i = start + len + 1;
        self.text.get(start..start + len)
    }

    /// A JSON number as serde_json would hand it to a visitor.
    #[inline]
    fn number(&mut self, kind: FieldKind) -> Option<Val<'a>> {
        let b = self.text.as_bytes();
        let start = self.i;
        let mut j = start;
        let neg = b.get(j) == Some(&b'-');
        j += usize::from(neg);
        let int_start = j;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        let int_len = j - int_start;
        if int_len == 0 || (int_len > 1 && b.get(int_start) == Some(&b'0')) {
            return None;
        }
        let is_float = matches!(b.get(j), Some(b'.' | b'e' | b'E'));
        if !is_float {
            if int_len > 18 {
                return None;
            }
            let mut n: i64 = 0;
            for &c in b.get(int_start..j)? {
                n = n * 10 + i64::from(c - b'0');
            }
            if neg && n == 0 {
                return None; // serde_json reads `-0` as the float -0.0
            }
            let n = if neg { -n } else { n };
            self.i = j;
            return match kind {
                FieldKind::Integer => Some(Val::Int(n)),
                FieldKind::Number => Some(Val::Num(n as f64)),
                _ => None,
            };
        }
        if kind != FieldKind::Number {
            return None;
        }
        if b.get(j) == Some(&b'.') {
            j += 1;
            let f = j;
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            if j == f {
                return None;
            }
        }
        if matches!(b.get(j), Some(b'e' | b'E')) {
            j += 1;
            if matches!(b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            let e = j;
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            if j == e {
                return None;
            }
        }
        // serde_json's own float parser: the very value the registry path sees.
        let x: f64 = serde_json::from_str(self.text.get(start..j)?).ok()?;
        self.i = j;
        Some(Val::Num(x))
    }

    fn value(&mut self, kind: FieldKind) -> Option<Val<'a>> {
        match (self.text.as_bytes().get(self.i)?, kind) {
            (b'"', FieldKind::String) => self.string().map(|s| Val::Str(Cow::Borrowed(s))),
            (b'-' | b'0'..=b'9', FieldKind::Integer | FieldKind::Number) => self.number(kind),
            (b't', FieldKind::Boolean) => self.lit("true").map(|()| Val::Bool),
            (b'f', FieldKind::Boolean) => self.lit("false").map(|()| Val::Bool),
            _ => None,
        }
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.text.as_bytes();
        let start = self.i;
        while b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        let d = b.get(start..self.i)?;
        if d.is_empty() || d.len() > 9 || (d.len() > 1 && d[0] == b'0') {
            return None;
        }
        Some(d.iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0')))
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
        let mut out = Contribution::empty();
        let path = self.decode_into(bytes, &mut out)?;
        Ok((out, path))
    }

    /// [`Decoder::decode`] into `out` (same result), reusing its `dims` buffer: no allocation
    /// per record on the fast path once `out` has grown. On `Err`, `out` is unspecified.
    pub fn decode_into<'a>(&self, bytes: &'a [u8], out: &mut Contribution<'a>) -> Result<Path, Rejection> {
        if self.try_fast(bytes, out).is_some() {
            return Ok(Path::Fast);
        }
        let event = self.registry.decode_stored(bytes)?;
        *out = self.from_event(event)?;
        Ok(Path::Registry)
    }

    fn fast_schema(&self, event_type: &str, version: u32) -> Option<&FastSchema> {
        self.fast.get(event_type)?.iter().find(|(v, _)| *v == version).map(|(_, f)| f)
    }

    fn try_fast<'a>(&self, bytes: &'a [u8], out: &mut Contribution<'a>) -> Option<()> {
        // One UTF-8 check of the whole payload, then parse from &str (no per-string checks).
        let text = std::str::from_utf8(bytes).ok()?;
        if self.try_canonical(text, out).is_some() {
            return Some(());
        }
        let stored: StoredRef<'a> = serde_json::from_str(text).ok()?;
        let schema = self.fast_schema(&stored.event_type, stored.schema_version)?;
        let mut de = serde_json::Deserializer::from_str(stored.data.get());
        let mut acc = Acc::new(schema, &mut out.dims);
        DataSeed(&mut acc).deserialize(&mut de).ok()?;
        out.obs = acc.finish()?;
        out.occurred_at = parse_timestamp(stored.occurred_at)?;
        out.received_at = parse_timestamp(stored.received_at)?;
        out.event_type = stored.event_type;
        Some(())
    }

    /// The canonical layout by hand (see [`Canonical`]); `None` when unsure.
    fn try_canonical<'a>(&self, text: &'a str, out: &mut Contribution<'a>) -> Option<()> {
        let mut p = Canonical { text, i: 0 };
        p.lit("{\"event_id\":")?;
        p.string()?;
        p.lit(",\"event_type\":")?;
        let event_type = p.string()?;
        p.lit(",\"schema_version\":")?;
        let version = p.u32()?;
        p.lit(",\"occurred_at\":")?;
        let occurred_at = parse_timestamp(p.string()?)?;
        p.lit(",\"received_at\":")?;
        let received_at = parse_timestamp(p.string()?)?;
        p.lit(",\"producer\":")?;
        p.string()?;
        p.lit(",\"data\":{")?;
        let schema = self.fast_schema(event_type, version)?;
        let mut acc = Acc::new(schema, &mut out.dims);
        if p.lit("}").is_none() {
            loop {
                let key = p.string()?;
                p.lit(":")?;
                let i = acc.field(key)?;
                let v = p.value(schema.rules.get(i)?.kind)?;
                acc.value(i, v)?;
                if p.lit(",").is_none() {
                    p.lit("}")?;
                    break;
                }
            }
        }
        p.lit("}")?;
        if p.i != text.len() {
            return None;
        }
        out.obs = acc.finish()?;
        out.event_type = Cow::Borrowed(event_type);
        out.occurred_at = occurred_at;
        out.received_at = received_at;
        Some(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_specials_at_every_position() {
        for len in 0..40 {
            for pos in 0..len {
                for special in [b'"', b'\\', 0x1f, 0] {
                    let mut s = vec![b'a'; len];
                    s[pos] = special;
                    if pos + 1 < len {
                        s[pos + 1] = b'"';
                    }
                    assert_eq!(find_string_special(&s), Some(pos), "len {len} pos {pos} {special}");
                }
            }
            let mut s: Vec<u8> =
                (0..len).map(|i| 0x20 + ((i * 7) % 0x5f) as u8).filter(|&c| c != b'"' && c != b'\\').collect();
            s.extend([0xc3, 0xa9, 0x7f, 0xff]);
            assert_eq!(find_string_special(&s), None);
        }
    }
}
