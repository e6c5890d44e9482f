//! The field table: each schema version's `data` compiled once into per-field checks of the
//! subset and the fields' roles.
//!
//! The subset (per property: `type`, `enum` of strings, `pattern` in a restricted ASCII grammar,
//! `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`, `minLength`/`maxLength`,
//! annotations; at the top: `required`, `additionalProperties: false`). A schema using anything
//! else gets no table.
//!
//! Contract: [`FieldTable::accepts`] (and a check's `accepts_stored`) returning `true` implies
//! the jsonschema validator accepts the value AND the Int64 range check passes. `false` means
//! "not proven valid" (it is conservative for integers written as floats, huge integers and
//! numbers beyond 2^53 compared against a bound).

use serde_json::{Map, Number, Value};
use sluice_bytescan::{Text, short_eq};

use super::pattern::Pattern;
use super::view::StoredValue;
use crate::path::FieldPath;
use crate::registry::FieldKind;

/// Keywords without effect on validation, accepted anywhere in the subset.
const ANNOTATIONS: &[&str] =
    &["title", "description", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly"];

/// Top-level keywords of the subset (besides [`ANNOTATIONS`] and `x-*`).
const TOP_LEVEL: &[&str] = &["$schema", "type", "properties", "required", "additionalProperties"];

/// 2^53: integers up to this magnitude are exact as `f64`.
const EXACT_F64_INT: u64 = 1 << 53;

/// The compiled table of one schema version's `data` object: each field's check and the
/// fields' roles. Compiled once per version, when the registry loads it.
#[derive(Debug, Clone)]
pub(crate) struct FieldTable {
    /// In name order, the order serde_json writes `data` keys in: a field's index is its slot
    /// in a [`StoredView`](super::StoredView).
    pub(crate) fields: Vec<TableField>,
    /// How many fields are required.
    pub(crate) required: usize,
    /// The slots of `x-sluice-dimensions`, in declared order.
    pub(crate) dimensions: Vec<usize>,
    /// The slot of `x-sluice-measure`.
    pub(crate) measure: Option<usize>,
    /// The slot of `x-sluice-identity`.
    pub(crate) identity: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct TableField {
    pub(crate) name: String,
    pub(crate) required: bool,
    check: Check,
}

impl TableField {
    /// Whether `value` is proven valid for this field (see the module contract).
    #[inline(always)]
    pub(crate) fn accepts_stored(&self, value: StoredValue<'_>) -> bool {
        self.check.accepts_stored(value)
    }
}

/// The fields a schema gives a role (`x-sluice-dimensions`, `-measure`, `-identity`), by name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Roles<'a> {
    pub(crate) dimensions: &'a [FieldPath],
    pub(crate) measure: Option<&'a FieldPath>,
    pub(crate) identity: Option<&'a FieldPath>,
}

impl Roles<'_> {
    /// No field has a role.
    #[cfg(test)]
    pub(crate) const NONE: Roles<'static> = Roles { dimensions: &[], measure: None, identity: None };
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

impl FieldTable {
    /// The table for `document` with `roles`, or `None` if it uses anything outside the subset
    /// or a role names no field (then the reference path is always used). `document` has passed
    /// the registry's checks.
    pub(crate) fn compile(document: &Value, roles: Roles<'_>) -> Option<FieldTable> {
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
            fields.push(TableField {
                name: name.clone(),
                required: required.contains(&name.as_str()),
                check: compile_check(prop)?,
            });
        }
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        let required = fields.iter().filter(|f| f.required).count();
        // Roles are top-level fields here: nested schemas are outside the subset.
        let slot = |path: &FieldPath| match path.segments() {
            [name] => fields.iter().position(|f| &f.name == name),
            _ => None,
        };
        let dimensions = roles.dimensions.iter().map(|d| slot(d)).collect::<Option<Vec<usize>>>()?;
        let measure = match roles.measure {
            Some(m) => Some(slot(m)?),
            None => None,
        };
        let identity = match roles.identity {
            Some(i) => Some(slot(i)?),
            None => None,
        };
        Some(FieldTable { fields, required, dimensions, measure, identity })
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
            let Some(field) = self.fields.iter().find(|f| short_eq(f.name.as_bytes(), key.as_bytes())) else {
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
        FieldKind::Timestamp | FieldKind::Object | FieldKind::Array => return None,
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
            (Check::String { .. }, Value::String(s)) => self.accepts_text(Text::from(s.as_str())),
            // Only i64 is proven an in-range integer; 3.0 and u64 take the reference path.
            (Check::Integer { bounds }, Value::Number(n)) => n.is_i64() && within(n, bounds),
            (Check::Number { bounds }, Value::Number(n)) => within(n, bounds),
            (Check::Boolean, Value::Bool(_)) => true,
            _ => false,
        }
    }

    #[inline]
    fn accepts_text(&self, s: Text<'_>) -> bool {
        match self {
            Check::String { min_len, max_len, options, pattern } => {
                length_within(s, *min_len, *max_len)
                    && options.as_ref().is_none_or(|o| o.iter().any(|x| short_eq(x.as_bytes(), s.as_bytes())))
                    && pattern.as_ref().is_none_or(|p| p.is_match(s))
            }
            _ => false,
        }
    }

    /// [`Check::accepts`] for a value of a stored-record view (the same decisions: a
    /// `StoredValue::Integer` is what serde_json holds as an i64, a `StoredValue::Number` what it
    /// holds as an f64).
    #[inline]
    fn accepts_stored(&self, value: StoredValue<'_>) -> bool {
        match (self, value) {
            (Check::String { .. }, StoredValue::String(s)) => self.accepts_text(s),
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
fn length_within(s: Text<'_>, min: u64, max: u64) -> bool {
    let bytes = s.len() as u64;
    if min <= bytes.div_ceil(4) && bytes <= max {
        return true; // decided by the byte length alone
    }
    let chars = s.chars() as u64;
    min <= chars && chars <= max
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lengths_count_code_points() {
        assert!(length_within("ab".into(), 2, 2));
        assert!(length_within("🦀🦀".into(), 2, 2));
        assert!(!length_within("🦀🦀🦀".into(), 0, 2));
        assert!(!length_within("".into(), 1, u64::MAX));
    }

    #[test]
    fn unsupported_schemas_get_no_table() {
        let base = json!({"type": "object", "additionalProperties": false,
            "properties": {"a": {"type": "string"}}, "required": ["a"]});
        assert!(FieldTable::compile(&base, Roles::NONE).is_some());
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
            assert!(FieldTable::compile(&doc, Roles::NONE).is_none(), "{pointer}");
        }
        let mut big = base.clone();
        big["properties"]["n"] = json!({"type": "integer", "maximum": 9_007_199_254_740_993u64});
        assert!(FieldTable::compile(&big, Roles::NONE).is_none(), "a bound not exact as f64");
    }

    #[test]
    fn roles_are_slots_in_name_order() {
        let doc = json!({"type": "object", "additionalProperties": false,
            "properties": {"z": {"type": "string"}, "a": {"type": "integer"}, "m": {"type": "number"}},
            "required": ["z", "a", "m"]});
        let dims = [FieldPath::top("z"), FieldPath::top("a")];
        let (m, z, nope) = (FieldPath::top("m"), FieldPath::top("z"), FieldPath::top("nope"));
        let roles = Roles { dimensions: &dims, measure: Some(&m), identity: Some(&z) };
        let table = FieldTable::compile(&doc, roles).unwrap();
        assert_eq!((table.dimensions.as_slice(), table.measure, table.identity), (&[2, 0][..], Some(1), Some(2)));
        let missing = Roles { measure: Some(&nope), ..roles };
        assert!(FieldTable::compile(&doc, missing).is_none(), "a role must name a field");
    }
}
