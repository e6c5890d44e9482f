//! The fast acceptance check: a per-[`SchemaVersion`](crate::SchemaVersion) table compiled
//! from the schema document, used on the hot path instead of the jsonschema validator.
//!
//! Contract (what makes it safe): [`FastValidator::accepts`] returning `true` implies the
//! jsonschema validator accepts the value AND the Int64 range check passes, i.e. the reference
//! path would report no violation. `false` means "not proven valid": the caller runs the
//! reference path, which produces the (identical) result and every violation message. So the
//! fast check decides nothing on its own for invalid data, and may be conservative (it is for
//! integers written as floats, huge integers and numbers beyond 2^53 compared against a bound).
//!
//! Only a small subset of JSON Schema is compiled (per property: `type`, `enum` of strings,
//! `pattern` in a restricted ASCII grammar, `minimum`/`maximum`/`exclusiveMinimum`/
//! `exclusiveMaximum`, `minLength`/`maxLength`, annotations). A schema using anything else gets
//! no table ([`FastValidator::compile`] returns `None`) and always takes the reference path.
//!
//! Also here, for `decode_stored`: [`parse_canonical`] (a hand parser for exactly the layout
//! `serde_json::to_vec(&Event)` writes; anything else goes to serde) and
//! [`parse_canonical_utc`] (the `...Z` timestamps the serializer writes; anything else goes to
//! chrono). Both only ever return what serde/chrono would have returned for the same text.

use chrono::{DateTime, Utc};
use serde_json::{Map, Number, Value};

use crate::envelope::Event;
use crate::registry::{EventType, FieldKind, Registry, SchemaVersion};

/// Keywords without effect on validation, accepted anywhere in the subset.
const ANNOTATIONS: &[&str] =
    &["title", "description", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly"];

/// Top-level keywords of the subset (besides [`ANNOTATIONS`] and `x-*`).
const TOP_LEVEL: &[&str] = &["$schema", "type", "properties", "required", "additionalProperties"];

/// 2^53: integers up to this magnitude are exact as `f64`.
const EXACT_F64_INT: u64 = 1 << 53;

/// The compiled table of one schema version's `data` object.
#[derive(Debug, Clone)]
pub(crate) struct FastValidator {
    /// In name order.
    fields: Vec<FastField>,
    /// How many fields are required.
    required: usize,
}

#[derive(Debug, Clone)]
struct FastField {
    name: String,
    required: bool,
    check: Check,
}

#[derive(Debug, Clone)]
enum Check {
    String { min_len: u64, max_len: u64, options: Option<Vec<String>>, pattern: Option<Pattern> },
    Integer { bounds: Vec<Bound> },
    Number { bounds: Vec<Bound> },
    Boolean,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Ge,
    Le,
    Gt,
    Lt,
}

/// `value <op> limit`, with `limit` exactly representable as `f64`.
#[derive(Debug, Clone, Copy)]
struct Bound {
    op: Op,
    limit: f64,
}

impl FastValidator {
    /// The table for `document`, or `None` if it uses anything outside the subset (then the
    /// reference path is always used). `document` has passed the registry's checks.
    pub(crate) fn compile(document: &Value) -> Option<FastValidator> {
        let top = document.as_object()?;
        for key in top.keys() {
            if !(TOP_LEVEL.contains(&key.as_str()) || ANNOTATIONS.contains(&key.as_str()) || key.starts_with("x-")) {
                return None;
            }
        }
        if top.get("type").and_then(Value::as_str) != Some("object")
            || top.get("additionalProperties") != Some(&Value::Bool(false))
        {
            return None;
        }
        let properties = top.get("properties")?.as_object()?;
        let required: Vec<&str> = match top.get("required") {
            None => Vec::new(),
            Some(list) => list.as_array()?.iter().map(Value::as_str).collect::<Option<_>>()?,
        };
        if required.iter().any(|name| !properties.contains_key(*name)) {
            return None;
        }
        let mut fields = Vec::new();
        for (name, prop) in properties {
            let prop = prop.as_object()?;
            fields.push(FastField {
                name: name.clone(),
                required: required.contains(&name.as_str()),
                check: compile_check(prop)?,
            });
        }
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        let required = fields.iter().filter(|f| f.required).count();
        Some(FastValidator { fields, required })
    }

    /// `true`: `data` is valid (see the module contract). `false`: not proven, use the reference.
    pub(crate) fn accepts(&self, data: &Value) -> bool {
        let Value::Object(map) = data else {
            return false;
        };
        self.accepts_map(map)
    }

    fn accepts_map(&self, map: &Map<String, Value>) -> bool {
        let mut required_seen = 0;
        for (key, value) in map {
            // A length-filtered linear scan beats a binary search (libc memcmp) at this size.
            let Some(field) = self.fields.iter().find(|f| same(f.name.as_bytes(), key.as_bytes())) else {
                return false; // additionalProperties: false
            };
            if !field.check.accepts(value) {
                return false;
            }
            required_seen += usize::from(field.required);
        }
        // Keys are distinct, so all required fields are present iff the count matches.
        required_seen == self.required
    }
}

fn compile_check(prop: &Map<String, Value>) -> Option<Check> {
    let kind = match prop.get("type")?.as_str()? {
        "string" => FieldKind::String,
        "integer" => FieldKind::Integer,
        "number" => FieldKind::Number,
        "boolean" => FieldKind::Boolean,
        _ => return None,
    };
    let mut min_len = 0;
    let mut max_len = u64::MAX;
    let mut options = None;
    let mut pattern = None;
    let mut bounds = Vec::new();
    for (key, value) in prop {
        match (key.as_str(), kind) {
            ("type", _) => {}
            (k, _) if ANNOTATIONS.contains(&k) || k.starts_with("x-") => {}
            ("minLength", FieldKind::String) => min_len = value.as_u64()?,
            ("maxLength", FieldKind::String) => max_len = value.as_u64()?,
            ("enum", FieldKind::String) => {
                let list: Vec<String> =
                    value.as_array()?.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<_>>()?;
                options = Some(list);
            }
            ("pattern", FieldKind::String) => pattern = Some(Pattern::compile(value.as_str()?)?),
            ("minimum", FieldKind::Integer | FieldKind::Number) => bounds.push(bound(Op::Ge, value)?),
            ("maximum", FieldKind::Integer | FieldKind::Number) => bounds.push(bound(Op::Le, value)?),
            ("exclusiveMinimum", FieldKind::Integer | FieldKind::Number) => bounds.push(bound(Op::Gt, value)?),
            ("exclusiveMaximum", FieldKind::Integer | FieldKind::Number) => bounds.push(bound(Op::Lt, value)?),
            _ => return None,
        }
    }
    Some(match kind {
        FieldKind::String => Check::String { min_len, max_len, options, pattern },
        FieldKind::Integer => Check::Integer { bounds },
        FieldKind::Number => Check::Number { bounds },
        FieldKind::Boolean => Check::Boolean,
    })
}

fn bound(op: Op, limit: &Value) -> Option<Bound> {
    let limit = exact_f64(limit.as_number()?)?;
    Some(Bound { op, limit })
}

/// `n` as an `f64` if that is exact (floats, and integers up to 2^53 in magnitude).
fn exact_f64(n: &Number) -> Option<f64> {
    if let Some(i) = n.as_i64() {
        return (i.unsigned_abs() <= EXACT_F64_INT).then_some(i as f64);
    }
    if n.is_u64() {
        return None; // > i64::MAX
    }
    n.as_f64().filter(|f| f.is_finite())
}

impl Check {
    fn accepts(&self, value: &Value) -> bool {
        match (self, value) {
            (Check::String { .. }, Value::String(s)) => self.accepts_str(s),
            // Only i64 is proven an in-range integer; 3.0 and u64 take the reference path.
            (Check::Integer { bounds }, Value::Number(n)) => n.is_i64() && within(n, bounds),
            (Check::Number { bounds }, Value::Number(n)) => within(n, bounds),
            (Check::Boolean, Value::Bool(_)) => true,
            _ => false,
        }
    }

    #[inline]
    fn accepts_str(&self, s: &str) -> bool {
        match self {
            Check::String { min_len, max_len, options, pattern } => {
                length_within(s, *min_len, *max_len)
                    && options.as_ref().is_none_or(|o| o.iter().any(|x| same(x.as_bytes(), s.as_bytes())))
                    && pattern.as_ref().is_none_or(|p| p.is_match(s))
            }
            _ => false,
        }
    }

    /// [`Check::accepts`] for a value of a [`StoredView`] (the same decisions: a
    /// `StoredValue::Integer` is what serde_json holds as an i64, a `StoredValue::Number` what it
    /// holds as an f64).
    #[inline]
    fn accepts_stored(&self, value: StoredValue<'_>) -> bool {
        match (self, value) {
            (Check::String { .. }, StoredValue::String(s)) => self.accepts_str(s),
            (Check::Integer { bounds } | Check::Number { bounds }, StoredValue::Integer(i)) => {
                within_exact(bounds, (i.unsigned_abs() <= EXACT_F64_INT).then_some(i as f64))
            }
            (Check::Number { bounds }, StoredValue::Number(f)) => {
                within_exact(bounds, Some(f).filter(|f| f.is_finite()))
            }
            (Check::Boolean, StoredValue::Boolean(_)) => true,
            _ => false,
        }
    }
}

/// `bytes` as UTF-8 text, validated with SIMD (a whole stored record at once: several times
/// faster than `std::str::from_utf8` on the records' mostly-ASCII JSON).
#[inline]
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(bytes).ok()
}

/// Byte equality for short strings (keys, names, enum options), inlined: up to 16 bytes as two
/// overlapping words of each (no loop, no libc call), longer ones by the slice comparison.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    let u32_at = |s: &[u8], i: usize| s.get(i..i + 4).and_then(|w| w.try_into().ok()).map(u32::from_le_bytes);
    let u64_at = |s: &[u8], i: usize| s.get(i..i + 8).and_then(|w| w.try_into().ok()).map(u64::from_le_bytes);
    match n {
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=8 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4),
        9..=16 => u64_at(a, 0) == u64_at(b, 0) && u64_at(a, n - 8) == u64_at(b, n - 8),
        _ => a == b,
    }
}

fn within(n: &Number, bounds: &[Bound]) -> bool {
    within_exact(bounds, if bounds.is_empty() { None } else { exact_f64(n) })
}

/// `x` (the exact value, `None` if not exactly representable) satisfies every bound.
#[inline]
fn within_exact(bounds: &[Bound], x: Option<f64>) -> bool {
    if bounds.is_empty() {
        return true;
    }
    let Some(x) = x else {
        return false;
    };
    // Both sides are exact, so f64 comparison is the mathematical one (as jsonschema's num-cmp).
    bounds.iter().all(|b| match b.op {
        Op::Ge => x >= b.limit,
        Op::Le => x <= b.limit,
        Op::Gt => x > b.limit,
        Op::Lt => x < b.limit,
    })
}

/// Code-point length of `s` within `min..=max` (JSON Schema counts code points).
#[inline]
fn length_within(s: &str, min: u64, max: u64) -> bool {
    let bytes = s.len() as u64;
    if min <= bytes.div_ceil(4) && bytes <= max {
        return true; // decided by the byte length alone
    }
    let chars = s.chars().count() as u64;
    min <= chars && chars <= max
}

/// A `pattern` in a restricted grammar whose meaning is the same under ECMA-262 (JSON Schema)
/// and any other regex dialect: optional `^`, a sequence of items, optional `$`; an item is an
/// ASCII literal (alphanumeric, `_`, `-`, space, or an escaped ASCII punctuation character),
/// `\d` (ASCII digits), or a non-negated class `[...]` of such characters and ranges between
/// alphanumerics; each item optionally followed by a greedy `?`, `*`, `+`, `{n}`, `{n,}` or
/// `{n,m}`. No `.`, alternation, groups, other escapes or lazy quantifiers. Search semantics
/// (unanchored unless `^`/`$`), as JSON Schema's `pattern`.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    /// `^...$` where every item repeats a fixed number of times: a byte-by-byte check.
    Fixed(Vec<AsciiSet>),
    /// Anything else in the grammar, compiled to an equivalent `regex::Regex`.
    Regex(regex::Regex),
}

/// A set of ASCII bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AsciiSet(u128);

impl AsciiSet {
    fn with(self, b: u8) -> Self {
        AsciiSet(self.0 | (1u128 << b))
    }
    fn contains(self, b: u8) -> bool {
        b < 128 && self.0 & (1u128 << b) != 0
    }
}

struct Item {
    set: AsciiSet,
    min: u32,
    max: Option<u32>,
}

/// Quantifier bounds above this are not compiled (the reference handles them).
const MAX_REPEAT: u32 = 1000;

impl Pattern {
    /// The compiled pattern, or `None` if it is outside the grammar.
    pub(crate) fn compile(pattern: &str) -> Option<Pattern> {
        let bytes = pattern.as_bytes();
        if !pattern.is_ascii() {
            return None;
        }
        let (start, mut rest) = match bytes.split_first() {
            Some((b'^', rest)) => (true, rest),
            _ => (false, bytes),
        };
        let end = match rest.split_last() {
            // A trailing `\$` is an escaped dollar, not an anchor.
            Some((b'$', init)) if !ends_with_odd_backslashes(init) => {
                rest = init;
                true
            }
            _ => false,
        };
        let mut items = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            let (set, next) = parse_atom(rest, i)?;
            let (min, max, next) = parse_quantifier(rest, next)?;
            items.push(Item { set, min, max });
            i = next;
        }
        if start && end && items.iter().all(|it| it.max == Some(it.min)) {
            let mut sets = Vec::new();
            for it in &items {
                sets.extend(std::iter::repeat_n(it.set, usize::try_from(it.min).ok()?));
            }
            return Some(Pattern::Fixed(sets));
        }
        let mut re = String::from(if start { "^" } else { "" });
        for it in &items {
            re.push('[');
            for b in 0u8..128 {
                if it.set.contains(b) {
                    re.push_str(&format!("\\x{b:02X}"));
                }
            }
            re.push(']');
            match it.max {
                Some(max) => re.push_str(&format!("{{{},{max}}}", it.min)),
                None => re.push_str(&format!("{{{},}}", it.min)),
            }
        }
        if end {
            re.push('$');
        }
        regex::Regex::new(&re).ok().map(Pattern::Regex)
    }

    /// Whether `s` contains a match (JSON Schema `pattern` semantics).
    #[inline]
    pub(crate) fn is_match(&self, s: &str) -> bool {
        match self {
            Pattern::Fixed(sets) => s.len() == sets.len() && s.bytes().zip(sets).all(|(b, set)| set.contains(b)),
            Pattern::Regex(re) => re.is_match(s),
        }
    }
}

fn ends_with_odd_backslashes(s: &[u8]) -> bool {
    s.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// A literal outside or inside a class: alphanumeric, `_`, space (and `-` where the caller
/// allows it).
fn plain_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b' '
}

/// Characters whose escape is a literal in every dialect (ECMA-262 syntax characters and `-`).
const ESCAPABLE: &[u8] = b"^$\\.*+?()[]{}|/-";

/// `\` + the byte at `i`: an escaped syntax character (a literal) or `\d`.
fn parse_escape(p: &[u8], i: usize) -> Option<(AsciiSet, usize)> {
    let b = *p.get(i)?;
    if b == b'd' {
        let set = (b'0'..=b'9').fold(AsciiSet(0), AsciiSet::with);
        return Some((set, i + 1));
    }
    ESCAPABLE.contains(&b).then(|| (AsciiSet(0).with(b), i + 1))
}

fn parse_atom(p: &[u8], i: usize) -> Option<(AsciiSet, usize)> {
    match *p.get(i)? {
        b'\\' => parse_escape(p, i + 1),
        b'[' => parse_class(p, i + 1),
        b if plain_literal(b) || b == b'-' => Some((AsciiSet(0).with(b), i + 1)),
        _ => None,
    }
}

/// The class body after `[` up to and including `]`.
fn parse_class(p: &[u8], mut i: usize) -> Option<(AsciiSet, usize)> {
    let first = i;
    let mut set = AsciiSet(0);
    loop {
        match *p.get(i)? {
            b']' if i > first => return Some((set, i + 1)),
            b'\\' => {
                let (s, next) = parse_escape(p, i + 1)?;
                set = AsciiSet(set.0 | s.0);
                i = next;
            }
            // `-` is literal only first or last in the class.
            b'-' if i == first || p.get(i + 1) == Some(&b']') => {
                set = set.with(b'-');
                i += 1;
            }
            b if b.is_ascii_alphanumeric() && p.get(i + 1) == Some(&b'-') && p.get(i + 2) != Some(&b']') => {
                let hi = *p.get(i + 2)?;
                if !hi.is_ascii_alphanumeric() || hi < b {
                    return None;
                }
                // Ranges only within one kind (0-9, A-Z, a-z): `A-z` would include punctuation.
                let same_kind = (b.is_ascii_digit() && hi.is_ascii_digit())
                    || (b.is_ascii_uppercase() && hi.is_ascii_uppercase())
                    || (b.is_ascii_lowercase() && hi.is_ascii_lowercase());
                if !same_kind {
                    return None;
                }
                set = (b..=hi).fold(set, AsciiSet::with);
                i += 3;
            }
            b if plain_literal(b) || b == b'.' => {
                set = set.with(b);
                i += 1;
            }
            _ => return None,
        }
    }
}

/// An optional greedy quantifier at `i`: (min, max, next index).
fn parse_quantifier(p: &[u8], i: usize) -> Option<(u32, Option<u32>, usize)> {
    let (min, max, next) = match p.get(i) {
        Some(b'?') => (0, Some(1), i + 1),
        Some(b'*') => (0, None, i + 1),
        Some(b'+') => (1, None, i + 1),
        Some(b'{') => {
            let close = i + p[i..].iter().position(|&b| b == b'}')?;
            let body = std::str::from_utf8(&p[i + 1..close]).ok()?;
            let number = |s: &str| -> Option<u32> {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                s.parse().ok().filter(|n| *n <= MAX_REPEAT)
            };
            let (min, max) = match body.split_once(',') {
                None => {
                    let n = number(body)?;
                    (n, Some(n))
                }
                Some((lo, "")) => (number(lo)?, None),
                Some((lo, hi)) => (number(lo)?, Some(number(hi)?)),
            };
            if max.is_some_and(|m| m < min) {
                return None;
            }
            (min, max, close + 1)
        }
        _ => return Some((1, Some(1), i)),
    };
    // A lazy or possessive suffix, or a second quantifier: outside the grammar.
    if matches!(p.get(next), Some(b'?' | b'*' | b'+' | b'{')) {
        return None;
    }
    Some((min, max, next))
}

/// Parses the canonical stored timestamp form `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` (what the
/// `Event` serializer writes). `None` for anything else (the caller then uses chrono's parser,
/// which gives the same result on every string this accepts).
pub(crate) fn parse_canonical_utc(s: &str) -> Option<DateTime<Utc>> {
    parse_canonical_instant(s)?.to_datetime()
}

/// [`parse_canonical_utc`] as integers (no chrono): the same instants, the same refusals.
#[inline]
pub(crate) fn parse_canonical_instant(s: &str) -> Option<Instant> {
    let b = s.as_bytes();
    let head: &[u8; 19] = b.get(..19)?.try_into().ok()?;
    let separators = [head[4], head[7], head[10], head[13], head[16]];
    if b.len() < 20 || b.len() > 30 || separators != *b"--T::" {
        return None;
    }
    // The 14 digits of `YYYY-MM-DDTHH:MM:SS`, all checked at once (no early exit per digit).
    let d = |i: usize| head[i].wrapping_sub(b'0');
    let digits = [d(0), d(1), d(2), d(3), d(5), d(6), d(8), d(9), d(11), d(12), d(14), d(15), d(17), d(18)];
    if digits.iter().fold(0u8, |worst, &x| worst.max(x)) > 9 {
        return None;
    }
    let two = |i: usize| u32::from(digits[i]) * 10 + u32::from(digits[i + 1]);
    let year = two(0) * 100 + two(2);
    if year < 1000 {
        return None;
    }
    let (month, day) = (two(4), two(6));
    let (hour, minute, second) = (two(8), two(10), two(12));
    if second > 59 {
        return None;
    }
    let nanos = match &b[19..] {
        [b'Z'] => 0,
        [b'.', fraction @ .., b'Z'] if (1..=9).contains(&fraction.len()) => {
            let n =
                fraction.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))?;
            n * 10u32.pow(9 - u32::try_from(fraction.len()).ok()?)
        }
        _ => return None,
    };
    // The same checks chrono's constructors make, then days since the epoch (Howard Hinnant's
    // days_from_civil) instead of chrono's calendar tables; the unit test compares with chrono.
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days || hour > 23 || minute > 59 {
        return None;
    }
    let (y, m, d) = (i64::from(year) - i64::from(month <= 2), i64::from(month), i64::from(day));
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    Some(Instant { secs, nanos })
}

/// A UTC instant as integers: seconds since the Unix epoch and nanoseconds within the second
/// (`0..1_000_000_000`, no leap seconds). What a [`StoredView`] holds instead of a chrono
/// `DateTime`, so the hot path does no calendar arithmetic; always in chrono's range for views
/// (years 1000..=9999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    /// Seconds since 1970-01-01T00:00:00Z (negative before).
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl Instant {
    /// Microseconds since the epoch, truncated toward the past: `DateTime::timestamp_micros`
    /// of the same instant (the lake's `Timestamp(µs, "UTC")` value).
    #[inline]
    pub fn micros(self) -> i64 {
        self.secs * 1_000_000 + i64::from(self.nanos / 1_000)
    }

    /// Whole hours since the epoch (floor): the `(dt, hour)` partition as one integer.
    #[inline]
    pub fn epoch_hour(self) -> i64 {
        self.secs.div_euclid(3600)
    }

    /// The chrono value (`None` only outside chrono's range, never for a view's instants).
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.secs, self.nanos)
    }
}

/// The fields of a stored record, as parsed by [`parse_canonical`].
pub(crate) struct CanonicalRecord {
    pub(crate) event_id: String,
    pub(crate) event_type: String,
    pub(crate) schema_version: u32,
    pub(crate) occurred_at: DateTime<Utc>,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) producer: String,
    pub(crate) data: Value,
}

/// Parses a record in exactly the layout `serde_json::to_vec(&Event)` writes: compact, fields
/// in declaration order, canonical timestamps, no escapes in strings, only scalars in `data`:
///
/// `{"event_id":"..","event_type":"..","schema_version":N,"occurred_at":"..","received_at":"..","producer":"..","data":{..}}`
///
/// `None` for anything else (the caller then uses the general serde parser). Whenever this
/// returns a record, serde_json would parse the same text into the same values: strings are
/// taken verbatim (no escapes, no control characters, `text` is UTF-8), numbers are parsed by
/// serde_json itself, duplicate `data` keys keep the last value as serde_json's map does.
pub(crate) fn parse_canonical(text: &str) -> Option<CanonicalRecord> {
    let mut p = Cursor { s: text, i: 0 };
    p.lit("{\"event_id\":")?;
    let event_id = p.string()?;
    p.lit(",\"event_type\":")?;
    let event_type = p.string()?;
    p.lit(",\"schema_version\":")?;
    let schema_version = p.u32()?;
    p.lit(",\"occurred_at\":")?;
    let occurred_at = parse_canonical_utc(p.string()?)?;
    p.lit(",\"received_at\":")?;
    let received_at = parse_canonical_utc(p.string()?)?;
    p.lit(",\"producer\":")?;
    let producer = p.string()?;
    p.lit(",\"data\":{")?;
    let mut data = Map::new();
    if !p.eat(b'}') {
        loop {
            let key = p.string()?;
            p.lit(":")?;
            let value = p.scalar()?;
            data.insert(key.to_owned(), value);
            if p.eat(b',') {
                continue;
            }
            p.lit("}")?;
            break;
        }
    }
    p.lit("}")?;
    if p.i != text.len() {
        return None;
    }
    Some(CanonicalRecord {
        event_id: event_id.to_owned(),
        event_type: event_type.to_owned(),
        schema_version,
        occurred_at,
        received_at,
        producer: producer.to_owned(),
        data: Value::Object(data),
    })
}

/// The index of the first `"`, `\\` or control character in `bytes` (8 bytes at a time, the
/// tail too, padded with a byte that never stops).
#[inline(always)]
fn string_end(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if let Some(i) = stop_byte(u64::from_le_bytes(word)) {
            return Some(offset + i);
        }
        offset += 8;
    }
    let tail = chunks.remainder();
    let mut word = [b'a'; 8];
    word.get_mut(..tail.len())?.copy_from_slice(tail);
    stop_byte(u64::from_le_bytes(word)).map(|i| offset + i)
}

/// The index of the first byte of `x` (little-endian) that is `< 0x20`, `"` or `\\`.
#[inline(always)]
fn stop_byte(x: u64) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte is flagged (high bit set) if it is < 0x20, == '"' or == '\\' (bytes >= 0x80 are
    // filtered by `& !x`). The lowest flagged byte is exact: a borrow only starts at a byte that
    // is itself a hit and only propagates upwards (checked against `rest_end` by a property test).
    let quote = x ^ (ONES * u64::from(b'"'));
    let backslash = x ^ (ONES * u64::from(b'\\'));
    let hits = (x.wrapping_sub(ONES * 0x20) | quote.wrapping_sub(ONES) | backslash.wrapping_sub(ONES)) & !x & HIGH;
    (hits != 0).then(|| (hits.trailing_zeros() / 8) as usize)
}

/// The byte-at-a-time [`string_end`] (the reference of its property test).
#[cfg(test)]
fn rest_end(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn lit(&mut self, expected: &str) -> Option<()> {
        let rest = self.s.as_bytes().get(self.i..)?;
        same(rest.get(..expected.len())?, expected.as_bytes()).then(|| self.i += expected.len())
    }

    #[inline]
    fn eat(&mut self, b: u8) -> bool {
        let hit = self.s.as_bytes().get(self.i) == Some(&b);
        self.i += usize::from(hit);
        hit
    }

    /// A JSON string without escapes or control characters; the contents.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        self.lit("\"")?;
        let bytes = self.s.as_bytes();
        let start = self.i;
        let len = string_end(bytes.get(start..)?)?;
        if bytes[start + len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        // `start` and `start + len` sit next to ASCII bytes, so they are char boundaries.
        self.s.get(start..start + len)
    }

    /// A decimal u32 as JSON writes it (no sign, no leading zero, no fraction).
    #[inline]
    fn u32(&mut self) -> Option<u32> {
        let bytes = self.s.as_bytes();
        let len = bytes.get(self.i..)?.iter().take_while(|b| b.is_ascii_digit()).count();
        let digits = self.s.get(self.i..self.i + len)?;
        if len == 0 || len > 9 || (len > 1 && digits.starts_with('0')) {
            return None;
        }
        self.i += len;
        digits.parse().ok()
    }

    /// A string, number or boolean as a [`StoredValue`] (null, objects, arrays: `None`).
    #[inline(always)]
    fn stored_value(&mut self) -> Option<StoredValue<'a>> {
        match *self.s.as_bytes().get(self.i)? {
            b'"' => self.string().map(StoredValue::String),
            b't' => self.lit("true").map(|()| StoredValue::Boolean(true)),
            b'f' => self.lit("false").map(|()| StoredValue::Boolean(false)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A JSON number (RFC 8259 grammar, checked here: Rust's float parser is more lenient).
    /// Integer literals of up to 18 digits are `Integer` (as serde_json: `u64`/`i64`), `-0` and
    /// literals with a fraction or exponent are `Number` (serde_json: `f64`, correctly rounded
    /// under `float_roundtrip`, as `str::parse::<f64>` is). Longer integers: `None`.
    fn number(&mut self) -> Option<StoredValue<'a>> {
        let bytes = self.s.as_bytes();
        let start = self.i;
        let mut i = start;
        let digits = |i: usize| bytes.get(i..).map_or(0, |rest| rest.iter().take_while(|b| b.is_ascii_digit()).count());
        let negative = bytes.get(i) == Some(&b'-');
        i += usize::from(negative);
        let int_digits = match bytes.get(i)? {
            b'0' => 1,
            b'1'..=b'9' => digits(i),
            _ => return None,
        };
        i += int_digits;
        let mut float = false;
        if bytes.get(i) == Some(&b'.') {
            let n = digits(i + 1);
            if n == 0 {
                return None;
            }
            i += 1 + n;
            float = true;
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let n = digits(i);
            if n == 0 {
                return None;
            }
            i += n;
            float = true;
        }
        let text = self.s.get(start..i)?;
        self.i = i;
        // `-0` is the one integer literal serde_json holds as an f64 (-0.0).
        let minus_zero = negative && int_digits == 1 && bytes.get(start + 1) == Some(&b'0');
        if !float && !minus_zero {
            if int_digits > 18 {
                return None; // a long integer: serde_json's u64/f64 choice is not worth copying
            }
            let magnitude =
                bytes[start + usize::from(negative)..i].iter().fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
            return Some(StoredValue::Integer(if negative { -magnitude } else { magnitude }));
        }
        let f: f64 = text.parse().ok()?;
        f.is_finite().then_some(StoredValue::Number(f))
    }

    /// A string, number, boolean or null (objects and arrays: `None`).
    fn scalar(&mut self) -> Option<Value> {
        match *self.s.as_bytes().get(self.i)? {
            b'"' => self.string().map(|s| Value::String(s.to_owned())),
            b't' => self.lit("true").map(|()| Value::Bool(true)),
            b'f' => self.lit("false").map(|()| Value::Bool(false)),
            b'n' => self.lit("null").map(|()| Value::Null),
            b'-' | b'0'..=b'9' => {
                let bytes = self.s.as_bytes();
                let len = bytes[self.i..]
                    .iter()
                    .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .count();
                let number = self.s.get(self.i..self.i + len)?;
                self.i += len;
                // serde_json's own number parser (same rounding, same integer/float choice).
                match serde_json::from_str::<Value>(number).ok()? {
                    n @ Value::Number(_) => Some(n),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// Most data fields a [`StoredView`] holds; versions with more always take
/// [`Registry::decode_stored`].
pub const MAX_VIEW_FIELDS: usize = 24;

/// One `data` value of a [`StoredView`], borrowed from the record bytes.
///
/// `Integer` is a JSON integer literal serde_json holds as an `i64` (at most 18 digits, not
/// `-0`); `Number` any other number (serde_json holds it as an `f64`; parsed with the same
/// correctly rounded result, always finite). JSON `null` is never valid in a schema of the fast
/// subset, so there is no null variant: an absent field is `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StoredValue<'b> {
    String(&'b str),
    Integer(i64),
    Number(f64),
    Boolean(bool),
}

impl StoredValue<'_> {
    /// The value as serde_json would hold it in [`Event::data`].
    pub fn to_json(self) -> Value {
        match self {
            StoredValue::String(s) => Value::String(s.to_owned()),
            StoredValue::Integer(i) => Value::from(i),
            StoredValue::Number(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            StoredValue::Boolean(b) => Value::Bool(b),
        }
    }
}

/// Caller-owned storage for the data values of a [`StoredView`], reused record after record
/// (decoding resets only the slots of the record's version; nothing is allocated). `'b`: the
/// record bytes the values borrow from.
#[derive(Debug, Clone)]
pub struct ViewValues<'b> {
    values: [Option<StoredValue<'b>>; MAX_VIEW_FIELDS],
}

impl Default for ViewValues<'_> {
    fn default() -> Self {
        Self { values: [None; MAX_VIEW_FIELDS] }
    }
}

/// A stream record decoded without allocating and proven valid by the compiled field table
/// ([`Registry::decode_stored_view`]). Strings borrow from the record bytes and the values from
/// the caller's [`ViewValues`] (`'b`), the type and schema from the registry (`'r`). Timestamps
/// are integer [`Instant`]s (no calendar arithmetic on the hot path).
///
/// Contract: a view exists only for a record on which [`Registry::decode_stored`] returns
/// `Ok(event)`, and [`StoredView::to_event`] equals that `event` (differential tests in
/// `sluice-schemas` and `sluice-sinks`).
#[derive(Debug, Clone, Copy)]
pub struct StoredView<'r, 'b> {
    pub event_type: &'r EventType,
    pub schema: &'r SchemaVersion,
    pub event_id: &'b str,
    pub occurred_at: Instant,
    pub received_at: Instant,
    pub producer: &'b str,
    /// By slot: slot `i` is the `i`-th name of [`SchemaVersion::view_fields`].
    values: &'b [Option<StoredValue<'b>>],
}

impl<'r, 'b> StoredView<'r, 'b> {
    /// The value in slot `slot` (see [`SchemaVersion::view_fields`]); `None` if absent.
    #[inline]
    pub fn value(&self, slot: usize) -> Option<StoredValue<'b>> {
        self.values.get(slot).copied().flatten()
    }

    /// The values by slot.
    pub fn values(&self) -> &'b [Option<StoredValue<'b>>] {
        self.values
    }

    /// The owned [`Event`] (equal to what [`Registry::decode_stored`] returns for the record).
    /// `None` only if a timestamp is outside chrono's range, which a view never holds.
    pub fn to_event(&self) -> Option<Event> {
        let names = self.schema.fast().map(|f| f.fields.as_slice()).unwrap_or_default();
        let data = names
            .iter()
            .zip(self.values())
            .filter_map(|(field, value)| value.map(|v| (field.name.clone(), v.to_json())))
            .collect();
        Some(Event {
            event_id: self.event_id.to_owned(),
            event_type: self.event_type.name.clone(),
            schema_version: self.schema.version,
            occurred_at: self.occurred_at.to_datetime()?,
            received_at: self.received_at.to_datetime()?,
            producer: self.producer.to_owned(),
            data,
        })
    }
}

impl SchemaVersion {
    /// The data field names in [`StoredView`] slot order (name order), or `None` when this
    /// version never gets a view (its schema is outside the fast subset, or it has more than
    /// [`MAX_VIEW_FIELDS`] fields).
    pub fn view_fields(&self) -> Option<Vec<&str>> {
        let fast = self.fast().filter(|f| f.fields.len() <= MAX_VIEW_FIELDS)?;
        Some(fast.fields.iter().map(|f| f.name.as_str()).collect())
    }
}

/// The event types and versions earlier [`Registry::decode_stored_view_cached`] calls found, so
/// a batch's records skip the registry's map lookups (found again by an inlined name comparison).
/// Holds only successful lookups of one registry (at most one entry per registered version); a
/// cache handed to another registry is reset first. Results never depend on the cache.
#[derive(Debug, Clone, Default)]
pub struct ViewCache<'r> {
    registry: Option<&'r Registry>,
    entries: Vec<CachedVersion<'r>>,
}

#[derive(Debug, Clone, Copy)]
struct CachedVersion<'r> {
    event_type: &'r EventType,
    version: u32,
    schema: &'r SchemaVersion,
    fast: &'r FastValidator,
}

/// The registry's answer for (`name`, `version`): the version, if it can be viewed.
fn view_version<'r>(registry: &'r Registry, name: &str, version: u32) -> Option<CachedVersion<'r>> {
    let event_type = registry.get(name)?;
    let schema = event_type.version(version)?;
    let fast = schema.fast().filter(|f| f.fields.len() <= MAX_VIEW_FIELDS)?;
    Some(CachedVersion { event_type, version, schema, fast })
}

impl Registry {
    /// Decodes a stream record in the layout `serde_json::to_vec(&Event)` writes and validates
    /// it with the compiled field table, without allocating: the data values go to `values`
    /// (reused across records), everything else is borrowed. `None` means "not proven": call
    /// [`Registry::decode_stored`], which decides (and explains a rejection). Never panics.
    pub fn decode_stored_view<'r, 'b, 'v>(
        &'r self,
        bytes: &'b [u8],
        values: &'v mut ViewValues<'b>,
    ) -> Option<StoredView<'r, 'v>> {
        self.decode_view(bytes, values, |name, version| view_version(self, name, version))
    }

    /// [`Registry::decode_stored_view`] (same result for every input), with the event type and
    /// version looked up through `cache` (kept across a batch's records).
    pub fn decode_stored_view_cached<'r, 'b, 'v>(
        &'r self,
        bytes: &'b [u8],
        values: &'v mut ViewValues<'b>,
        cache: &mut ViewCache<'r>,
    ) -> Option<StoredView<'r, 'v>> {
        if !cache.registry.is_some_and(|r| std::ptr::eq(r, self)) {
            *cache = ViewCache { registry: Some(self), entries: Vec::new() };
        }
        self.decode_view(bytes, values, |name, version| {
            let hit = cache
                .entries
                .iter()
                .find(|e| e.version == version && same(e.event_type.name.as_bytes(), name.as_bytes()));
            if let Some(hit) = hit {
                return Some(*hit);
            }
            let found = view_version(self, name, version)?;
            cache.entries.push(found);
            Some(found)
        })
    }

    #[inline(always)]
    fn decode_view<'r, 'b, 'v>(
        &'r self,
        bytes: &'b [u8],
        values: &'v mut ViewValues<'b>,
        lookup: impl FnOnce(&str, u32) -> Option<CachedVersion<'r>>,
    ) -> Option<StoredView<'r, 'v>> {
        let text = utf8(bytes)?;
        let mut p = Cursor { s: text, i: 0 };
        p.lit("{\"event_id\":")?;
        let event_id = p.string()?;
        p.lit(",\"event_type\":")?;
        let name = p.string()?;
        p.lit(",\"schema_version\":")?;
        let CachedVersion { event_type, schema, fast, .. } = lookup(name, p.u32()?)?;
        p.lit(",\"occurred_at\":")?;
        let occurred_at = parse_canonical_instant(p.string()?)?;
        p.lit(",\"received_at\":")?;
        let received_at = parse_canonical_instant(p.string()?)?;
        if !self.event_time().contains_micros(occurred_at.micros(), received_at.micros()) {
            return None;
        }
        p.lit(",\"producer\":")?;
        let producer = p.string()?;
        p.lit(",\"data\":{")?;
        let slots = values.values.get_mut(..fast.fields.len())?;
        slots.fill(None);
        let mut required_seen = 0;
        // serde_json writes `data` keys in name order, the table's order: try the next slot first.
        let mut next = 0;
        if !p.eat(b'}') {
            loop {
                let key = p.string()?;
                p.lit(":")?;
                let slot = match fast.fields.get(next) {
                    Some(f) if same(f.name.as_bytes(), key.as_bytes()) => next,
                    _ => fast.fields.iter().position(|f| same(f.name.as_bytes(), key.as_bytes()))?,
                };
                next = slot + 1;
                let value = p.stored_value()?;
                let field = fast.fields.get(slot)?;
                let cell = slots.get_mut(slot)?;
                // A duplicate key: serde keeps the last one; not worth proving here.
                if cell.is_some() || !field.check.accepts_stored(value) {
                    return None;
                }
                *cell = Some(value);
                required_seen += usize::from(field.required);
                if p.eat(b',') {
                    continue;
                }
                p.lit("}")?;
                break;
            }
        }
        p.lit("}")?;
        if p.i != text.len() || required_seen != fast.required {
            return None;
        }
        Some(StoredView { event_type, schema, event_id, occurred_at, received_at, producer, values: slots })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_in_the_grammar() {
        let fixed = Pattern::compile("^[A-Z]{2}$").unwrap();
        assert!(matches!(fixed, Pattern::Fixed(_)));
        assert!(fixed.is_match("US"));
        for no in ["us", "USA", "U", "", "U1", "ÜS", "US\n"] {
            assert!(!fixed.is_match(no), "{no}");
        }
        let re = Pattern::compile("^v[0-9]+\\.[0-9]+(").is_none();
        assert!(re);
        let ver = Pattern::compile("^v\\d+\\.[0-9]{1,3}$").unwrap();
        assert!(matches!(ver, Pattern::Regex(_)));
        assert!(ver.is_match("v1.22"));
        assert!(!ver.is_match("v1.2222"));
        assert!(!ver.is_match("v١.2"), "\\d is ASCII only");
        let search = Pattern::compile("[a-c]-x").unwrap();
        assert!(search.is_match("zzb-xzz"));
        assert!(!search.is_match("d-x"));
        let dollar = Pattern::compile("^a\\$").unwrap();
        assert!(dollar.is_match("a$b"));
        let dash = Pattern::compile("^[-a-c_.]*$").unwrap();
        assert!(dash.is_match("a-._c"));
        assert!(!dash.is_match("a/"));
        for outside in ["^.$", "a|b", "(a)", "[^a]", "\\w", "a*?", "a{2", "a{3,1}", "[A-z]", "é", "a{1001}", "[]a]"] {
            assert!(Pattern::compile(outside).is_none(), "{outside}");
        }
    }

    proptest::proptest! {
        #[test]
        fn string_end_finds_the_first_stop_byte(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u8>(),
                    proptest::prelude::Just(b'"'),
                    proptest::prelude::Just(b'\\'),
                    0x20u8..0x7f,
                ],
                0..40,
            )
        ) {
            proptest::prop_assert_eq!(string_end(&bytes), rest_end(&bytes));
        }
    }

    #[test]
    fn a_view_cache_follows_its_registry() {
        let record = br#"{"event_id":"e","event_type":"purchase","schema_version":1,"occurred_at":"2024-05-01T12:00:00Z","received_at":"2024-05-01T12:00:00Z","producer":"p","data":{"amount":1.5,"country":"DE","currency":"EUR","order_id":"o","user_id":"u"}}"#;
        let (a, b) = (Registry::builtin().unwrap(), Registry::builtin().unwrap());
        let mut cache = ViewCache::default();
        let mut values = ViewValues::default();
        let from_a = a.decode_stored_view_cached(record, &mut values, &mut cache).map(|v| std::ptr::from_ref(v.schema));
        assert_eq!(from_a, a.decode_stored_view(record, &mut values).map(|v| std::ptr::from_ref(v.schema)));
        assert!(from_a.is_some(), "the record is viewed");
        // The same cache handed to another registry answers with that registry's types.
        let from_b = b.decode_stored_view_cached(record, &mut values, &mut cache).map(|v| std::ptr::from_ref(v.schema));
        assert_eq!(from_b, b.decode_stored_view(record, &mut values).map(|v| std::ptr::from_ref(v.schema)));
        assert_ne!(from_a, from_b);
    }

    #[test]
    fn lengths_count_code_points() {
        assert!(length_within("ab", 2, 2));
        assert!(length_within("🦀🦀", 2, 2));
        assert!(!length_within("🦀🦀🦀", 0, 2));
        assert!(!length_within("", 1, u64::MAX));
    }

    #[test]
    fn unsupported_schemas_get_no_table() {
        let base = json!({"type": "object", "additionalProperties": false,
            "properties": {"a": {"type": "string"}}, "required": ["a"]});
        assert!(FastValidator::compile(&base).is_some());
        for (pointer, value) in [
            ("/properties/a/format", json!("email")),
            ("/properties/a/const", json!("x")),
            ("/properties/a/enum", json!(["x", 1])),
            ("/properties/a/pattern", json!("^(a|b)$")),
            ("/properties/a/minimum", json!(1)),
            ("/$defs", json!({})),
            ("/minProperties", json!(1)),
        ] {
            let mut doc = base.clone();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            doc.pointer_mut(parent).unwrap().as_object_mut().unwrap().insert(key.to_owned(), value);
            assert!(FastValidator::compile(&doc).is_none(), "{pointer}");
        }
        let mut big = base.clone();
        big["properties"]["n"] = json!({"type": "integer", "maximum": 9_007_199_254_740_993u64});
        assert!(FastValidator::compile(&big).is_none(), "a bound not exact as f64");
    }

    proptest::proptest! {
        #[test]
        fn canonical_timestamps_agree_with_chrono(
            y in 900u32..10_000, mo in 0u32..14, d in 0u32..33, h in 0u32..25, mi in 0u32..61, s in 0u32..61,
            frac in proptest::option::of("[0-9]{1,9}"),
        ) {
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{}Z", frac.map(|f| format!(".{f}")).unwrap_or_default());
            let chrono = text.parse::<DateTime<chrono::FixedOffset>>().ok().map(|t| t.with_timezone(&Utc));
            if let Some(i) = parse_canonical_instant(&text) {
                let t = chrono.unwrap();
                proptest::prop_assert_eq!(i.micros(), t.timestamp_micros(), "{}", text);
                proptest::prop_assert_eq!(i.epoch_hour(), t.timestamp().div_euclid(3600), "{}", text);
                proptest::prop_assert_eq!(i.to_datetime(), Some(t), "{}", text);
            }
            match parse_canonical_utc(&text) {
                Some(t) => proptest::prop_assert_eq!(Some(t), chrono, "{}", text),
                // Declined: years below 1000 (chrono's call) and leap seconds only.
                None => proptest::prop_assert!(chrono.is_none() || y < 1000 || s == 60, "{}", text),
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn same_is_byte_equality(a in proptest::collection::vec(0u8..4, 0..24), flip in proptest::option::of(0usize..24)) {
            let mut b = a.clone();
            if let Some(i) = flip.filter(|&i| i < b.len()) {
                b[i] ^= 1;
            }
            proptest::prop_assert_eq!(same(&a, &b), a == b);
            proptest::prop_assert_eq!(same(&a, &b[..b.len().saturating_sub(1)]), a[..] == b[..b.len().saturating_sub(1)]);
        }
    }

    proptest::proptest! {
        /// Any one byte of a canonical timestamp replaced: whatever is still accepted is the
        /// instant chrono reads (a wrong byte in a digit or separator position is refused).
        #[test]
        fn a_mutated_timestamp_is_refused_or_read_as_chrono_reads_it(
            at in 0usize..27, byte in proptest::num::u8::ANY,
        ) {
            let mut bytes = b"2026-03-17T09:41:07.123456Z".to_vec();
            bytes[at] = byte;
            if let Ok(text) = std::str::from_utf8(&bytes)
                && let Some(i) = parse_canonical_instant(text)
            {
                let chrono = text.parse::<DateTime<chrono::FixedOffset>>().ok().map(|t| t.with_timezone(&Utc));
                proptest::prop_assert_eq!(Some(i.micros()), chrono.map(|t| t.timestamp_micros()), "{}", text);
                proptest::prop_assert!(bytes[at].is_ascii_digit() || byte == b"2026-03-17T09:41:07.123456Z"[at]);
            }
        }
    }

    #[test]
    fn canonical_timestamps() {
        let t = |s: &str| parse_canonical_utc(s).map(|t| t.to_rfc3339());
        assert_eq!(t("2024-05-01T12:00:00Z").as_deref(), Some("2024-05-01T12:00:00+00:00"));
        assert_eq!(t("2024-05-01T12:00:00.5Z").as_deref(), Some("2024-05-01T12:00:00.500+00:00"));
        assert_eq!(t("2024-05-01T12:00:00.123456789Z").as_deref(), Some("2024-05-01T12:00:00.123456789+00:00"));
        for other in [
            "2024-05-01T12:00:00+00:00",
            "2024-05-01t12:00:00Z",
            "2024-02-30T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:60Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00.1234567891Z",
            "0999-05-01T12:00:00Z",
            "2024-05-01 12:00:00Z",
            "+2024-05-01T12:00:00Z",
        ] {
            assert_eq!(t(other), None, "{other}");
        }
    }

    #[test]
    fn canonical_records() {
        let head = r#"{"event_id":"e","event_type":"t","schema_version":2,"occurred_at":"2024-05-01T12:00:00Z","received_at":"2024-05-01T12:00:00.5Z","producer":"p","data":"#;
        let parse = |data: &str| parse_canonical(&format!("{head}{data}}}"));
        let r =
            parse(r#"{"a":"x","b":-0.0,"c":12.5,"d":true,"e":null,"f":-0,"a":"y","g":18446744073709551615}"#).unwrap();
        assert_eq!(
            (r.event_id.as_str(), r.event_type.as_str(), r.schema_version, r.producer.as_str()),
            ("e", "t", 2, "p")
        );
        assert_eq!(r.received_at.timestamp_subsec_millis(), 500);
        let expected: Value = serde_json::from_str(
            r#"{"a":"x","b":-0.0,"c":12.5,"d":true,"e":null,"f":-0,"a":"y","g":18446744073709551615}"#,
        )
        .unwrap();
        assert_eq!(r.data, expected);
        assert_eq!(r.data["a"], "y", "the last duplicate wins, as in serde_json");
        assert_eq!(parse("{}").unwrap().data, serde_json::json!({}));
        for bad in [
            r#"{"a":"x\"y"}"#,
            r#"{"a":"\u0041"}"#,
            "{\"a\":\"\t\"}",
            r#"{"a":[1]}"#,
            r#"{"a":{}}"#,
            r#"{"a":1,}"#,
            r#"{"a" :1}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":tru}"#,
            r#"{"a":1}  "#,
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        let text = format!("{head}{{}}}}");
        for (from, to) in [
            ("\"schema_version\":2", "\"schema_version\":02"),
            ("\"schema_version\":2", "\"schema_version\":4294967296"),
            ("\"schema_version\":2", "\"schema_version\":-2"),
            ("12:00:00Z", "12:00:00+00:00"),
            ("\"e\"", "\"e\\u0000\""),
            (",", ", "),
        ] {
            assert!(parse_canonical(&text.replacen(from, to, 1)).is_none(), "{to}");
        }
        assert!(parse_canonical(&format!("{text} ")).is_none());
        assert!(parse_canonical(&text).is_some());
    }
}
