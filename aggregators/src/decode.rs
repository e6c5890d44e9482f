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
use std::fmt;
use std::sync::Arc;

use std::cell::Cell;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use sluice_schemas::{Event, FieldKind, Registry, Rejection, SchemaVersion};
use sluice_stream::kinesis_input::find_string_special;

use crate::aggregate::Contribution;
use crate::hll::fingerprint;
use crate::key::{DimRef, Utf8, bytes_eq};
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
    /// `pattern` when it is one ASCII class repeated (`^[A-Z]{2}$`): checked without the regex.
    class: Option<ClassPattern>,
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

/// A pattern that is one class of ASCII characters repeated a bounded number of times, anchored
/// at both ends: `^[A-Z]{2}$`, `^[a-z0-9_]{1,32}$`, `^[0-9]+$`, ... Matching is then "every
/// byte in the class and the length within bounds" (a non-ASCII character is in no such class),
/// exactly what the regex decides.
#[derive(Debug, Clone)]
struct ClassPattern {
    set: [bool; 128],
    min: usize,
    max: usize,
}

impl ClassPattern {
    fn parse(p: &str) -> Option<ClassPattern> {
        let inner = p.strip_prefix("^[")?.strip_suffix('$')?;
        let (class, quant) = inner.split_once(']')?;
        let (min, max) = match quant {
            "+" => (1, usize::MAX),
            "*" => (0, usize::MAX),
            "" => (1, 1),
            q => {
                let q = q.strip_prefix('{')?.strip_suffix('}')?;
                let num = |t: &str| -> Option<usize> {
                    (!t.is_empty() && t.len() <= 6 && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
                };
                match q.split_once(',') {
                    None => (num(q)?, num(q)?),
                    Some((a, "")) => (num(a)?, usize::MAX),
                    Some((a, b)) => (num(a)?, num(b)?),
                }
            }
        };
        if min > max {
            return None;
        }
        let c = class.as_bytes();
        let member = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut set = [false; 128];
        let mut i = 0;
        while let Some(&a) = c.get(i) {
            if !member(a) {
                return None;
            }
            match (c.get(i + 1), c.get(i + 2)) {
                (Some(b'-'), Some(&b)) => {
                    // A range of two letters of one case or two digits, in order.
                    let same_kind = (a.is_ascii_digit() && b.is_ascii_digit())
                        || (a.is_ascii_lowercase() && b.is_ascii_lowercase())
                        || (a.is_ascii_uppercase() && b.is_ascii_uppercase());
                    if !same_kind || a > b {
                        return None;
                    }
                    for x in a..=b {
                        *set.get_mut(usize::from(x))? = true;
                    }
                    i += 3;
                }
                (Some(b'-'), None) => return None,
                _ => {
                    *set.get_mut(usize::from(a))? = true;
                    i += 1;
                }
            }
        }
        if c.is_empty() {
            return None;
        }
        Some(ClassPattern { set, min, max })
    }

    #[inline]
    fn is_match(&self, s: &[u8]) -> bool {
        (self.min..=self.max).contains(&s.len())
            && s.iter().all(|&b| self.set.get(usize::from(b)).copied().unwrap_or(false))
    }
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
            class: None,
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
                    r.class = ClassPattern::parse(s);
                }
                _ => return None,
            }
        }
        rules.push(r);
    }
    // Serialized events carry `data` keys in byte order (serde_json's map): rules in that order
    // make the expected-next-key guess of `Acc::field` right every time.
    rules.sort_by(|a, b| a.name.cmp(&b.name));
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
    /// Fast rules by (event type, version), sorted (binary search: no hashing per record).
    fast: Vec<(String, u32, FastSchema)>,
    /// The registry's first accepted `occurred_at` (computed once).
    earliest: DateTime<Utc>,
}

/// A value extracted by the fast path.
enum Val<'a> {
    Str(Utf8<'a>),
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
                    FieldKind::String => Ok(Val::Str(Utf8::from(v))),
                    _ => Err(E::custom("type")),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Val<'de>, E> {
                match self.0 {
                    FieldKind::String => Ok(Val::Str(Utf8::from(v.to_owned()))),
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
            let i = acc.field(key.as_bytes()).ok_or_else(unsure)?;
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
    fn field(&mut self, key: &[u8]) -> Option<usize> {
        let rules = &self.schema.rules;
        let i = match rules.get(self.next) {
            Some(r) if bytes_eq(r.name.as_bytes(), key) => self.next,
            _ => rules.iter().position(|r| bytes_eq(r.name.as_bytes(), key))?,
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

/// A hand scanner for exactly the layout the `Event` serializer writes (compact, canonical key
/// order, no escapes, integers of at most 18 digits). Anything else returns `None` and the
/// serde path decides; the values it produces are the ones serde_json would.
///
/// It reads bytes, not a `&str`: outside strings it accepts only ASCII (literals, digits), and
/// every string it accepts is valid UTF-8 (checked only when it has a non-ASCII byte, or when
/// the value is handed out as `&str`), so `Some` implies the whole record is valid UTF-8 (as
/// `decode_stored` requires) without a separate pass over it.
struct Canonical<'a> {
    b: &'a [u8],
    i: usize,
}

/// Powers of ten exactly representable as f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

impl<'a> Canonical<'a> {
    #[inline]
    fn lit(&mut self, l: &[u8]) -> Option<()> {
        let end = self.i + l.len();
        (self.b.get(self.i..end)? == l).then(|| self.i = end)
    }

    /// A string without escapes or control characters (else `None`): its raw content and
    /// whether it is all ASCII (else it still needs a UTF-8 check).
    #[inline]
    fn raw_string(&mut self) -> Option<(&'a [u8], bool)> {
        let b = self.b;
        if b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let (len, ascii) = find_string_special(b.get(start..)?)?;
        if b.get(start + len) != Some(&b'"') {
            return None;
        }
        self.i = start + len + 1;
        Some((b.get(start..start + len)?, ascii))
    }

    /// A string that is only checked (valid UTF-8).
    #[inline]
    fn skip_string(&mut self) -> Option<()> {
        let (raw, ascii) = self.raw_string()?;
        if !ascii {
            std::str::from_utf8(raw).ok()?;
        }
        Some(())
    }

    /// A string as `&str`.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.raw_string()?.0).ok()
    }

    /// A timestamp string (see [`parse_timestamp`]).
    #[inline]
    fn timestamp(&mut self) -> Option<DateTime<Utc>> {
        let (raw, _) = self.raw_string()?;
        fast_timestamp(raw).or_else(|| parse_timestamp(std::str::from_utf8(raw).ok()?))
    }

    /// A JSON number as serde_json would hand it to a visitor.
    #[inline]
    fn number(&mut self, kind: FieldKind) -> Option<Val<'a>> {
        let b = self.b;
        let start = self.i;
        let mut j = start;
        let neg = b.get(j) == Some(&b'-');
        j += usize::from(neg);
        let int_start = j;
        let mut n: u64 = 0;
        while let Some(&c) = b.get(j).filter(|c| c.is_ascii_digit()) {
            n = n.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
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
            let n = n as i64; // < 10^18
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
        let mut frac_len = 0;
        if b.get(j) == Some(&b'.') {
            j += 1;
            let f = j;
            while let Some(&c) = b.get(j).filter(|c| c.is_ascii_digit()) {
                n = n.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                j += 1;
            }
            frac_len = j - f;
            if frac_len == 0 {
                return None;
            }
        }
        if !matches!(b.get(j), Some(b'e' | b'E')) && int_len + frac_len <= 19 && n <= 1 << 53 {
            // Clinger's fast path: the significand and the power of ten are exact doubles, so
            // one IEEE division is the correctly rounded value, which is what serde_json
            // computes too (with or without `float_roundtrip`).
            if let Some(&p) = POW10.get(frac_len) {
                let x = n as f64 / p;
                self.i = j;
                return Some(Val::Num(if neg { -x } else { x }));
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
        let x: f64 = serde_json::from_slice(b.get(start..j)?).ok()?;
        self.i = j;
        Some(Val::Num(x))
    }

    #[inline]
    fn value(&mut self, kind: FieldKind) -> Option<Val<'a>> {
        match (self.b.get(self.i)?, kind) {
            (b'"', FieldKind::String) => {
                let (raw, ascii) = self.raw_string()?;
                Utf8::checked(raw, ascii).map(Val::Str)
            }
            (b'-' | b'0'..=b'9', FieldKind::Integer | FieldKind::Number) => self.number(kind),
            (b't', FieldKind::Boolean) => self.lit(b"true").map(|()| Val::Bool),
            (b'f', FieldKind::Boolean) => self.lit(b"false").map(|()| Val::Bool),
            _ => None,
        }
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.b;
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
            if r.enum_str.as_ref().is_some_and(|e| !e.iter().any(|x| bytes_eq(x.as_bytes(), s.as_bytes()))) {
                return false;
            }
            // A string of n bytes has between ceil(n/4) and n characters: count them only
            // when that does not decide.
            let (len, min_chars) = (s.len(), s.len().div_ceil(4));
            if r.min_length.is_some_and(|m| m > min_chars) || r.max_length.is_some_and(|m| m < len) {
                let n = s.chars();
                if r.min_length.is_some_and(|m| n < m) || r.max_length.is_some_and(|m| n > m) {
                    return false;
                }
            }
            match (&r.class, &r.pattern) {
                (Some(c), _) => {
                    if !c.is_match(s.as_bytes()) {
                        return false;
                    }
                }
                (None, Some(p)) => {
                    if !p.is_match(s.as_str()) {
                        return false;
                    }
                }
                (None, None) => {}
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
        let mut fast = Vec::new();
        for t in registry.event_types() {
            for (v, schema) in &t.versions {
                if let Some(f) = compile_fast(schema) {
                    fast.push((t.name.clone(), *v, f));
                }
            }
        }
        fast.sort_by(|a, b| (a.0.as_bytes(), a.1).cmp(&(b.0.as_bytes(), b.1)));
        let earliest = registry.event_time().earliest();
        Decoder { registry, fast, earliest }
    }

    /// The registry it validates against.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether `(event_type, version)` has fast rules.
    pub fn is_fast(&self, event_type: &str, version: u32) -> bool {
        self.fast_schema(event_type.as_bytes(), version).is_some()
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
        // Out of the registry's event-time range: the registry's rejection says why.
        if self.try_fast(bytes, out).is_some()
            && out.occurred_at >= self.earliest
            && out.occurred_at <= self.registry.event_time().latest(out.received_at)
        {
            return Ok(Path::Fast);
        }
        let event = self.registry.decode_stored(bytes)?;
        *out = self.from_event(event)?;
        Ok(Path::Registry)
    }

    fn fast_schema(&self, event_type: &[u8], version: u32) -> Option<&FastSchema> {
        // A registry holds a handful of versions: a scan without `memcmp` calls beats a binary
        // search over them.
        if self.fast.len() <= 16 {
            return self
                .fast
                .iter()
                .find(|(t, v, _)| *v == version && bytes_eq(t.as_bytes(), event_type))
                .map(|(_, _, f)| f);
        }
        let i = self.fast.binary_search_by(|(t, v, _)| (t.as_bytes(), *v).cmp(&(event_type, version))).ok()?;
        self.fast.get(i).map(|(_, _, f)| f)
    }

    fn try_fast<'a>(&self, bytes: &'a [u8], out: &mut Contribution<'a>) -> Option<()> {
        // The canonical scanner checks UTF-8 itself (only where it matters, see `Canonical`).
        if self.try_canonical(bytes, out).is_some() {
            return Some(());
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let stored: StoredRef<'a> = serde_json::from_str(text).ok()?;
        let schema = self.fast_schema(stored.event_type.as_bytes(), stored.schema_version)?;
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
    fn try_canonical<'a>(&self, bytes: &'a [u8], out: &mut Contribution<'a>) -> Option<()> {
        let mut p = Canonical { b: bytes, i: 0 };
        p.lit(b"{\"event_id\":")?;
        p.skip_string()?;
        p.lit(b",\"event_type\":")?;
        let event_type = p.string()?;
        p.lit(b",\"schema_version\":")?;
        let version = p.u32()?;
        p.lit(b",\"occurred_at\":")?;
        let occurred_at = p.timestamp()?;
        p.lit(b",\"received_at\":")?;
        let received_at = p.timestamp()?;
        p.lit(b",\"producer\":")?;
        p.skip_string()?;
        p.lit(b",\"data\":{")?;
        let schema = self.fast_schema(event_type.as_bytes(), version)?;
        let mut acc = Acc::new(schema, &mut out.dims);
        if p.lit(b"}").is_none() {
            loop {
                // A key equal to a rule's name is that (valid UTF-8) name.
                let (key, _) = p.raw_string()?;
                p.lit(b":")?;
                let i = acc.field(key)?;
                let v = p.value(schema.rules.get(i)?.kind)?;
                acc.value(i, v)?;
                if p.lit(b",").is_none() {
                    p.lit(b"}")?;
                    break;
                }
            }
        }
        p.lit(b"}")?;
        if p.i != bytes.len() {
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

thread_local! {
    /// The last `YYYY-MM-DD` parsed and its date: occurred_at and received_at, and consecutive
    /// events, almost always share the day (a pure memo: same bytes, same date).
    static LAST_DATE: Cell<([u8; 10], Option<NaiveDate>)> = const { Cell::new(([0; 10], None)) };
}

/// Two ASCII digits as a number (`None` if not digits).
#[inline(always)]
fn digits2(b: &[u8], at: usize) -> Option<u32> {
    let (h, l) = (*b.get(at)?, *b.get(at + 1)?);
    (h.is_ascii_digit() && l.is_ascii_digit()).then(|| u32::from(h - b'0') * 10 + u32::from(l - b'0'))
}

fn fast_timestamp(b: &[u8]) -> Option<DateTime<Utc>> {
    if b.len() < 20
        || b.len() > 30
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
        || b.last() != Some(&b'Z')
    {
        return None;
    }
    let mut head = [0u8; 10];
    head.copy_from_slice(b.get(..10)?);
    let date = match LAST_DATE.with(Cell::get) {
        (last, Some(date)) if last == head => date,
        _ => {
            let year = digits2(b, 0)? * 100 + digits2(b, 2)?;
            let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, digits2(b, 5)?, digits2(b, 8)?)?;
            LAST_DATE.with(|c| c.set((head, Some(date))));
            date
        }
    };
    let (hour, minute, second) = (digits2(b, 11)?, digits2(b, 14)?, digits2(b, 17)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut nanos = 0u32;
    let frac = b.get(19..b.len() - 1)?;
    if !frac.is_empty() {
        let digits = frac.strip_prefix(b".")?;
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        for &c in digits {
            if !c.is_ascii_digit() {
                return None;
            }
            nanos = nanos * 10 + u32::from(c - b'0');
        }
        nanos *= [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000].get(9 - digits.len())?;
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
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
            Some(Value::String(s)) => DimRef::Str(Utf8::from(s.clone())),
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
    fn class_patterns_match_as_the_regex_does() {
        for p in ["^[A-Z]{2}$", "^[a-z0-9_]{1,8}$", "^[0-9]+$", "^[a-f]*$", "^[A-Z]{2,}$", "^[x]$"] {
            assert!(ClassPattern::parse(p).is_some(), "{p}");
        }
        for p in [
            "^[A-Z]{2}",
            "[A-Z]{2}$",
            "^[A-Z]{3,2}$",
            "^[Z-A]$",
            "^[a-Z]$",
            "^[-a]$",
            "^[a-]$",
            "^[]$",
            "^[A-Z]{2}x$",
            "^[A-Z][a-z]$",
            "^[ ]$",
        ] {
            assert!(ClassPattern::parse(p).is_none(), "{p}");
        }
    }

    proptest::proptest! {
        #[test]
        fn class_pattern_agrees_with_regex(
            p in "\\^\\[([a-zA-Z0-9_]|[a-c]-[d-f]|[0-4]-[5-9]|[A-C]-[X-Z]){1,4}\\](\\{[0-3](,[0-5]?)?\\}|\\+|\\*)?\\$",
            s in "[a-zA-Z0-9_ é-]{0,7}",
        ) {
            if let Some(c) = ClassPattern::parse(&p) {
                let r = regex::Regex::new(&p).unwrap();
                proptest::prop_assert_eq!(c.is_match(s.as_bytes()), r.is_match(&s), "{} {:?}", p, s);
            }
        }

        #[test]
        fn fast_timestamps_agree_with_chrono(
            y in 1000u32..3000, mo in 0u32..14, d in 0u32..33, h in 0u32..25, mi in 0u32..61, se in 0u32..61,
            frac in "(\\.[0-9]{0,10})?", prev in proptest::option::of("20[0-9]{2}-0[0-9]-[0-3][0-9]"),
        ) {
            if let Some(prev) = prev {
                // Whatever the cache holds first.
                let _ = fast_timestamp(format!("{prev}T00:00:00Z").as_bytes());
            }
            let t = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}{frac}Z");
            let chrono = t.parse::<DateTime<chrono::FixedOffset>>().ok().map(|t| t.with_timezone(&Utc));
            if let Some(fast) = fast_timestamp(t.as_bytes()) {
                proptest::prop_assert_eq!(Some(fast), chrono, "{}", t);
            }
            proptest::prop_assert_eq!(parse_timestamp(&t), chrono, "{}", t);
        }

        #[test]
        fn fast_floats_agree_with_serde_json(int in "-?(0|[1-9][0-9]{0,17})", frac in "[0-9]{1,20}") {
            let text = format!("{int}.{frac}");
            let mut p = Canonical { b: text.as_bytes(), i: 0 };
            let fast = match p.number(FieldKind::Number) {
                Some(Val::Num(x)) => x,
                _ => panic!("{text}"),
            };
            let serde: f64 = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(fast.to_bits(), serde.to_bits(), "{}", text);
            proptest::prop_assert_eq!(p.i, text.len());
        }
    }
}
