//! The field table: each schema version's `data` compiled once into a tree of checks of the
//! subset, the view slots of its fields and the fields' roles.
//!
//! The subset:
//! - an object (`data` itself and every nested object): `type: "object"`, `properties`,
//!   `required`, `additionalProperties: false` (and `$schema` at the top);
//! - an array: `type: "array"`, `items` (one schema of the subset), `minItems`, `maxItems`;
//! - a scalar: `type` `string`, `integer`, `number` or `boolean`, or one of them with `"null"`
//!   (`["string", "null"]`); `enum` of strings, `pattern` in a restricted ASCII grammar,
//!   `format: "date-time"`, `minLength`/`maxLength` (strings);
//!   `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum` (numbers);
//! - annotations and `x-*` keywords anywhere.
//!
//! A schema using anything else (`uniqueItems`, `contains`, `prefixItems`, `const`, other
//! formats, ...) gets no table.
//!
//! Contract: [`FieldTable::accepts`] (and a rule's `accept_stored`) returning `true` (`Some`)
//! implies the jsonschema validator accepts the value AND the Int64 range check passes, at
//! every depth. `false` means "not proven valid" (it is conservative for integers written as
//! floats, huge integers, numbers beyond 2^53 compared against a bound, date-times of a
//! stored record not in the canonical form, and `null` under an `enum`).
//!
//! Slots: every property reached from `data` through objects only (not through an array) has
//! a slot of the [`StoredView`](super::StoredView): first `data`'s own properties in name
//! order (the flat layout), then, object by object in that order, each nested object's
//! properties in name order. Properties inside arrays have none (an array is one value).

use serde_json::{Map, Number, Value};
use sluice_bytescan::{Instant, Text, parse_canonical_instant, short_eq};

use super::pattern::Pattern;
use super::view::StoredValue;
use crate::envelope::parse_occurred_at;
use crate::path::FieldPath;
use crate::registry::FieldKind;

/// Keywords without effect on validation, accepted anywhere in the subset.
const ANNOTATIONS: &[&str] =
    &["title", "description", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly"];

/// Keywords of `data`'s schema (besides [`ANNOTATIONS`] and `x-*`).
const TOP_LEVEL: &[&str] = &["$schema", "type", "properties", "required", "additionalProperties"];

/// Keywords of a nested object's schema (besides [`ANNOTATIONS`] and `x-*`).
const OBJECT: &[&str] = &["type", "properties", "required", "additionalProperties"];

/// 2^53: integers up to this magnitude are exact as `f64`.
const EXACT_F64_INT: u64 = 1 << 53;

/// The compiled table of one schema version's `data` object: the checks of its properties (a
/// tree, as deep as the schema), their view slots and the roles' slots. Compiled once per
/// version, when the registry loads it.
#[derive(Debug, Clone)]
pub(crate) struct FieldTable {
    /// `data` itself.
    pub(crate) data: ObjectCheck,
    /// Each slot's field path (`country`, `context/country`), in slot order (see the module
    /// docs): `data`'s properties come first, so for a schema without nested objects slot `i`
    /// is its `i`-th property in name order.
    pub(crate) slots: Vec<String>,
    /// The slots of `x-sluice-dimensions`, in declared order.
    pub(crate) dimensions: Vec<usize>,
    /// The slot of `x-sluice-measure`.
    pub(crate) measure: Option<usize>,
    /// The slot of `x-sluice-identity`.
    pub(crate) identity: Option<usize>,
    /// Every property of `data` is a plain scalar (no object, array, date-time or null):
    /// its record's values are checked by [`Rule::accepts_plain`].
    pub(crate) flat: bool,
}

/// The checks of an object's properties.
#[derive(Debug, Clone)]
pub(crate) struct ObjectCheck {
    /// In name order, the order serde_json writes an object's keys in.
    pub(crate) fields: Vec<TableField>,
    /// How many fields are required.
    pub(crate) required: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct TableField {
    pub(crate) name: String,
    pub(crate) required: bool,
    /// Its slot in a [`StoredView`](super::StoredView); `None` inside an array. For `data`'s
    /// own properties, their index.
    pub(crate) slot: Option<usize>,
    pub(crate) rule: Rule,
}

/// What one value (a property's, or an array's element) must be.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// `null` is proven valid (`type` lists `"null"`, and no `enum` excludes it).
    null: bool,
    check: Check,
}

/// How a [`Rule`]'s value is read from a stored record.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape<'t> {
    /// One literal: string, number, boolean or null.
    Scalar,
    Object(&'t ObjectCheck),
    Array {
        min_items: u64,
        max_items: u64,
        items: &'t Rule,
    },
}

/// The fields a schema gives a role (`x-sluice-dimensions`, `-measure`, `-identity`), by path.
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
    /// `date_time`: `format: "date-time"` (checked by `parse_occurred_at`, as the validator does).
    String {
        min_len: u64,
        max_len: u64,
        options: Option<Vec<String>>,
        pattern: Option<Pattern>,
        date_time: bool,
    },
    Integer {
        bounds: Vec<Bound>,
    },
    Number {
        bounds: Vec<Bound>,
    },
    Boolean,
    Object(ObjectCheck),
    Array {
        min_items: u64,
        max_items: u64,
        items: Box<Rule>,
    },
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
    /// or a role names no scalar reached through objects (then the reference path is always
    /// used). `document` has passed the registry's checks.
    pub(crate) fn compile(document: &Value, roles: Roles<'_>) -> Option<FieldTable> {
        let top = document.as_object()?;
        let mut data = compile_object(top, TOP_LEVEL)?;
        let mut slots = Vec::new();
        data.assign_slots("", &mut slots);
        let slot = |path: &FieldPath| data.slot_at(path.segments());
        let dimensions = roles.dimensions.iter().map(slot).collect::<Option<Vec<usize>>>()?;
        let measure = match roles.measure {
            Some(m) => Some(slot(m)?),
            None => None,
        };
        let identity = match roles.identity {
            Some(i) => Some(slot(i)?),
            None => None,
        };
        let flat = data.fields.iter().all(|f| f.rule.is_plain());
        Some(FieldTable { data, slots, dimensions, measure, identity, flat })
    }

    /// `true`: `data` is valid (see the module contract). `false`: not proven, use the reference.
    pub(crate) fn accepts(&self, data: &Value) -> bool {
        let Value::Object(map) = data else {
            return false;
        };
        self.data.accepts_map(map)
    }
}

impl ObjectCheck {
    fn accepts_map(&self, map: &Map<String, Value>) -> bool {
        let mut required_seen = 0;
        for (key, value) in map {
            // A length-filtered linear scan beats a binary search (libc memcmp) at this size.
            let Some(field) = self.fields.iter().find(|f| short_eq(f.name.as_bytes(), key.as_bytes())) else {
                return false; // additionalProperties: false
            };
            if !field.rule.accepts(value) {
                return false;
            }
            required_seen += usize::from(field.required);
        }
        // Keys are distinct, so all required fields are present iff the count matches.
        required_seen == self.required
    }

    /// Gives this object's fields the next slots, then its nested objects' fields (see the
    /// module docs); `prefix`: this object's path (`""` for `data`).
    fn assign_slots(&mut self, prefix: &str, slots: &mut Vec<String>) {
        let path = |name: &str| if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") };
        for field in &mut self.fields {
            field.slot = Some(slots.len());
            slots.push(path(&field.name));
        }
        for field in &mut self.fields {
            if let Check::Object(inner) = &mut field.rule.check {
                inner.assign_slots(&path(&field.name), slots);
            }
        }
    }

    /// The slot of the scalar at `segments` below this object, through objects only.
    fn slot_at(&self, segments: &[String]) -> Option<usize> {
        let (first, rest) = segments.split_first()?;
        let field = self.fields.iter().find(|f| &f.name == first)?;
        match (&field.rule.check, rest) {
            (Check::Object(_) | Check::Array { .. }, []) => None,
            (_, []) => field.slot,
            (Check::Object(inner), rest) => inner.slot_at(rest),
            _ => None,
        }
    }
}

/// An object schema with `keywords` allowed: `additionalProperties: false`, `required` naming
/// only listed properties, every property in the subset.
fn compile_object(object: &Map<String, Value>, keywords: &[&str]) -> Option<ObjectCheck> {
    if !object.keys().all(|k| keywords.contains(&k.as_str()) || is_annotation(k)) {
        return None;
    }
    if object.get("type").and_then(Value::as_str) != Some("object")
        || object.get("additionalProperties") != Some(&Value::Bool(false))
    {
        return None;
    }
    let properties = object.get("properties")?.as_object()?;
    let required: Vec<&str> = match object.get("required") {
        None => Vec::new(),
        Some(list) => list.as_array()?.iter().map(Value::as_str).collect::<Option<_>>()?,
    };
    if required.iter().any(|name| !properties.contains_key(*name)) {
        return None;
    }
    let mut fields = Vec::new();
    for (name, prop) in properties {
        fields.push(TableField {
            name: name.clone(),
            required: required.contains(&name.as_str()),
            slot: None,
            rule: compile_rule(prop.as_object()?)?,
        });
    }
    fields.sort_by(|a, b| a.name.cmp(&b.name));
    let required = fields.iter().filter(|f| f.required).count();
    Some(ObjectCheck { fields, required })
}

fn is_annotation(key: &str) -> bool {
    ANNOTATIONS.contains(&key) || key.starts_with("x-")
}

/// The rule of a property schema (or an array's `items`).
fn compile_rule(prop: &Map<String, Value>) -> Option<Rule> {
    let (name, nullable) = match prop.get("type")? {
        Value::String(t) => (t.as_str(), false),
        Value::Array(types) => match types.as_slice() {
            [Value::String(t), Value::String(null)] | [Value::String(null), Value::String(t)]
                if null == "null" && t != "null" =>
            {
                (t.as_str(), true)
            }
            _ => return None,
        },
        _ => return None,
    };
    let check = match name {
        // Only scalars are nullable in the registry; anything else is outside the subset.
        "object" if !nullable => Check::Object(compile_object(prop, OBJECT)?),
        "array" if !nullable => compile_array(prop)?,
        "string" => compile_scalar(prop, FieldKind::String)?,
        "integer" => compile_scalar(prop, FieldKind::Integer)?,
        "number" => compile_scalar(prop, FieldKind::Number)?,
        "boolean" => compile_scalar(prop, FieldKind::Boolean)?,
        _ => return None,
    };
    // `enum` rejects a null it does not list (and its options are strings here).
    let null = nullable && !matches!(check, Check::String { options: Some(_), .. });
    Some(Rule { null, check })
}

/// An array schema: `type`, `items`, `minItems`, `maxItems` (besides annotations).
fn compile_array(prop: &Map<String, Value>) -> Option<Check> {
    let mut min_items = 0;
    let mut max_items = u64::MAX;
    let mut items = None;
    for (key, value) in prop {
        match key.as_str() {
            "type" => {}
            "items" => items = Some(compile_rule(value.as_object()?)?),
            "minItems" => min_items = value.as_u64()?,
            "maxItems" => max_items = value.as_u64()?,
            k if is_annotation(k) => {}
            _ => return None,
        }
    }
    Some(Check::Array { min_items, max_items, items: Box::new(items?) })
}

/// A scalar's keywords (`type` already read as `kind`).
fn compile_scalar(prop: &Map<String, Value>, kind: FieldKind) -> Option<Check> {
    let mut min_len = 0;
    let mut max_len = u64::MAX;
    let mut options = None;
    let mut pattern = None;
    let mut date_time = false;
    let mut bounds = Vec::new();
    for (key, value) in prop {
        match (key.as_str(), kind) {
            ("type", _) => {}
            (k, _) if is_annotation(k) => {}
            ("minLength", FieldKind::String) => min_len = value.as_u64()?,
            ("maxLength", FieldKind::String) => max_len = value.as_u64()?,
            ("enum", FieldKind::String) => {
                let list: Vec<String> =
                    value.as_array()?.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<_>>()?;
                options = Some(list);
            }
            ("pattern", FieldKind::String) => pattern = Some(Pattern::compile(value.as_str()?)?),
            ("format", FieldKind::String) if value.as_str() == Some("date-time") => date_time = true,
            ("minimum", FieldKind::Integer | FieldKind::Number) => bounds.push(bound(Op::Ge, value)?),
            ("maximum", FieldKind::Integer | FieldKind::Number) => bounds.push(bound(Op::Le, value)?),
            ("exclusiveMinimum", FieldKind::Integer | FieldKind::Number) => bounds.push(bound(Op::Gt, value)?),
            ("exclusiveMaximum", FieldKind::Integer | FieldKind::Number) => bounds.push(bound(Op::Lt, value)?),
            _ => return None,
        }
    }
    Some(match kind {
        FieldKind::String => Check::String { min_len, max_len, options, pattern, date_time },
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

impl Rule {
    /// How the value is read (see [`Shape`]).
    #[inline(always)]
    pub(crate) fn shape(&self) -> Shape<'_> {
        match &self.check {
            Check::Object(object) => Shape::Object(object),
            Check::Array { min_items, max_items, items } => {
                Shape::Array { min_items: *min_items, max_items: *max_items, items }
            }
            _ => Shape::Scalar,
        }
    }

    fn accepts(&self, value: &Value) -> bool {
        match (&self.check, value) {
            (_, Value::Null) => self.null,
            (Check::String { date_time, .. }, Value::String(s)) => {
                self.check.accepts_text(Text::from(s.as_str())) && (!date_time || parse_occurred_at(s).is_some())
            }
            // Only i64 is proven an in-range integer; 3.0 and u64 take the reference path.
            (Check::Integer { bounds }, Value::Number(n)) => n.is_i64() && within(n, bounds),
            (Check::Number { bounds }, Value::Number(n)) => within(n, bounds),
            (Check::Boolean, Value::Bool(_)) => true,
            (Check::Object(object), Value::Object(map)) => object.accepts_map(map),
            (Check::Array { min_items, max_items, items }, Value::Array(values)) => {
                let n = values.len() as u64;
                *min_items <= n && n <= *max_items && values.iter().all(|v| items.accepts(v))
            }
            _ => false,
        }
    }

    /// A string (not a date-time), number or boolean that is never null.
    fn is_plain(&self) -> bool {
        !self.null
            && matches!(
                self.check,
                Check::String { date_time: false, .. } | Check::Integer { .. } | Check::Number { .. } | Check::Boolean
            )
    }

    /// [`Rule::accept_stored`] of a plain rule (see [`Rule::is_plain`]), where the value is
    /// kept as it is: whether it is proven valid.
    #[inline(always)]
    pub(crate) fn accepts_plain(&self, value: StoredValue<'_>) -> bool {
        match (&self.check, value) {
            (Check::String { .. }, StoredValue::String(s)) => self.check.accepts_text(s),
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

    /// A scalar `value` of a stored-record view as the view holds it if proven valid (the same
    /// decisions as [`Rule::accepts`]: a `StoredValue::Integer` is what serde_json holds as an
    /// i64, a `StoredValue::Number` what it holds as an f64), `None` if not proven. A
    /// date-time string becomes a `StoredValue::Timestamp`, proven only in the canonical form
    /// (the one the `Event` serializer writes), so the view gives back the same text.
    #[inline(always)]
    pub(crate) fn accept_stored<'b>(&self, value: StoredValue<'b>) -> Option<StoredValue<'b>> {
        let ok = match (&self.check, value) {
            (Check::String { date_time: false, .. }, StoredValue::String(s)) => self.check.accepts_text(s),
            (Check::String { date_time: true, .. }, StoredValue::String(s)) => {
                return if self.check.accepts_text(s) {
                    canonical_instant(s.as_bytes()).map(StoredValue::Timestamp)
                } else {
                    None
                };
            }
            (Check::Integer { bounds } | Check::Number { bounds }, StoredValue::Integer(i)) => {
                within_exact(bounds, (i.unsigned_abs() <= EXACT_F64_INT).then_some(i as f64))
            }
            (Check::Number { bounds }, StoredValue::Number(f)) => {
                within_exact(bounds, Some(f).filter(|f| f.is_finite()))
            }
            (Check::Boolean, StoredValue::Boolean(_)) => true,
            (_, StoredValue::Null) => self.null,
            _ => false,
        };
        ok.then_some(value)
    }
}

impl Check {
    #[inline(always)]
    fn accepts_text(&self, s: Text<'_>) -> bool {
        match self {
            Check::String { min_len, max_len, options, pattern, .. } => {
                if !length_within(s, *min_len, *max_len) {
                    return false;
                }
                if let Some(options) = options {
                    let mut listed = false;
                    for option in options {
                        listed |= short_eq(option.as_bytes(), s.as_bytes());
                    }
                    if !listed {
                        return false;
                    }
                }
                pattern.as_ref().is_none_or(|p| p.is_match(s))
            }
            _ => false,
        }
    }
}

/// The instant of `s` if `s` is exactly what the `Event` serializer writes for it
/// (`YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z`, the shortest of those fractions that is
/// exact): then the text is a function of the instant, which the view hands out instead.
#[inline(never)]
pub(crate) fn canonical_instant(s: &[u8]) -> Option<Instant> {
    let t = parse_canonical_instant(s)?;
    let digits = match t.nanos {
        0 => 0,
        n if n % 1_000_000 == 0 => 3,
        n if n % 1_000 == 0 => 6,
        _ => 9,
    };
    let len = if digits == 0 { 20 } else { 21 + digits };
    (s.len() == len).then_some(t)
}

fn within(n: &Number, bounds: &[Bound]) -> bool {
    within_exact(bounds, if bounds.is_empty() { None } else { exact_f64(n) })
}

/// `x` (the exact value, `None` if not exactly representable) satisfies every bound.
#[inline(always)]
fn within_exact(bounds: &[Bound], x: Option<f64>) -> bool {
    if bounds.is_empty() {
        return true;
    }
    let Some(x) = x else {
        return false;
    };
    // Both sides are exact, so f64 comparison is the mathematical one (as jsonschema's num-cmp).
    let mut ok = true;
    for b in bounds {
        ok &= match b.op {
            Op::Ge => x >= b.limit,
            Op::Le => x <= b.limit,
            Op::Gt => x > b.limit,
            Op::Lt => x < b.limit,
        };
    }
    ok
}

/// Code-point length of `s` within `min..=max` (JSON Schema counts code points).
#[inline(always)]
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
    use proptest::strategy::Strategy;
    use serde_json::json;

    #[test]
    fn lengths_count_code_points() {
        assert!(length_within("ab".into(), 2, 2));
        assert!(length_within("🦀🦀".into(), 2, 2));
        assert!(!length_within("🦀🦀🦀".into(), 0, 2));
        assert!(!length_within("".into(), 1, u64::MAX));
    }

    /// `base` with `value` set at the JSON pointer `pointer` (its parent must exist).
    fn with(base: &Value, pointer: &str, value: Value) -> Value {
        let mut doc = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        doc.pointer_mut(parent).unwrap().as_object_mut().unwrap().insert(key.to_owned(), value);
        doc
    }

    #[test]
    fn unsupported_schemas_get_no_table() {
        let base = json!({"type": "object", "additionalProperties": false,
            "properties": {"a": {"type": "string"},
                "o": {"type": "object", "additionalProperties": false, "properties": {"b": {"type": "integer"}}},
                "l": {"type": "array", "items": {"type": "integer"}}},
            "required": ["a"]});
        assert!(FieldTable::compile(&base, Roles::NONE).is_some());
        for (pointer, value) in [
            ("/properties/a/format", json!("email")),
            ("/properties/a/const", json!("x")),
            ("/properties/a/enum", json!(["x", 1])),
            ("/properties/a/pattern", json!("^(a|b)$")),
            ("/properties/a/minimum", json!(1)),
            ("/properties/a/type", json!(["string", "integer"])),
            ("/properties/a/type", json!(["null", "null"])),
            ("/properties/a/type", json!(["string", "null", "integer"])),
            ("/$defs", json!({})),
            ("/minProperties", json!(1)),
            ("/properties/o/minProperties", json!(1)),
            ("/properties/o/additionalProperties", json!(true)),
            ("/properties/o/required", json!(["nope"])),
            ("/properties/o/type", json!(["object", "null"])),
            ("/properties/o/properties/b/format", json!("date-time")),
            ("/properties/l/uniqueItems", json!(true)),
            ("/properties/l/contains", json!({"type": "integer"})),
            ("/properties/l/prefixItems", json!([{"type": "integer"}])),
            ("/properties/l/minItems", json!(-1)),
            ("/properties/l/type", json!(["array", "null"])),
            ("/properties/l/items", json!({"type": "integer", "multipleOf": 2})),
        ] {
            assert!(FieldTable::compile(&with(&base, pointer, value), Roles::NONE).is_none(), "{pointer}");
        }
        let mut no_items = base.clone();
        no_items["properties"]["l"].as_object_mut().unwrap().remove("items");
        assert!(FieldTable::compile(&no_items, Roles::NONE).is_none(), "an array without items");
        let big = with(&base, "/properties/n", json!({"type": "integer", "maximum": 9_007_199_254_740_993u64}));
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
        assert_eq!(table.slots, ["a", "m", "z"]);
        let missing = Roles { measure: Some(&nope), ..roles };
        assert!(FieldTable::compile(&doc, missing).is_none(), "a role must name a field");
        assert!(table.flat, "plain scalars only");
        for (pointer, value) in
            [("/properties/a/type", json!(["integer", "null"])), ("/properties/z/format", json!("date-time"))]
        {
            let table = FieldTable::compile(&with(&doc, pointer, value), Roles::NONE).unwrap();
            assert!(!table.flat, "{pointer}: not a plain scalar");
        }
    }

    #[test]
    fn nested_objects_get_slots_after_their_parents() {
        let object =
            |properties: Value| json!({"type": "object", "additionalProperties": false, "properties": properties});
        let doc = object(json!({
            "z": {"type": "string"},
            "ctx": object(json!({"y": {"type": "string"}, "deep": object(json!({"k": {"type": "integer"}})),
                "b": {"type": ["null", "boolean"]}})),
            "list": {"type": "array", "items": object(json!({"q": {"type": "integer"}}))},
            "a": object(json!({"x": {"type": "number"}})),
        }));
        let (k, y, ctx, list_q) = (
            FieldPath::parse("ctx/deep/k").unwrap(),
            FieldPath::parse("ctx/y").unwrap(),
            FieldPath::top("ctx"),
            FieldPath::parse("list/q").unwrap(),
        );
        let dims = [y.clone(), k.clone()];
        let table = FieldTable::compile(&doc, Roles { dimensions: &dims, measure: None, identity: None }).unwrap();
        assert_eq!(table.slots, ["a", "ctx", "list", "z", "a/x", "ctx/b", "ctx/deep", "ctx/y", "ctx/deep/k"]);
        assert_eq!(table.dimensions, [7, 8]);
        for bad in [ctx, list_q] {
            let roles = Roles { dimensions: std::slice::from_ref(&bad), measure: None, identity: None };
            assert!(FieldTable::compile(&doc, roles).is_none(), "{bad}: roles are scalars reached through objects");
        }
        assert!(!table.flat);
        let list = &table.data.fields[2];
        let Shape::Array { items, .. } = list.rule.shape() else { panic!("an array") };
        let Shape::Object(element) = items.shape() else { panic!("of objects") };
        assert_eq!(element.fields[0].slot, None, "nothing inside an array has a slot");
    }

    #[test]
    fn accepts_nested_values_as_the_reference_does() {
        let doc = json!({"type": "object", "additionalProperties": false, "required": ["o"],
            "properties": {
                "o": {"type": "object", "additionalProperties": false, "required": ["n"],
                    "properties": {"n": {"type": ["integer", "null"], "minimum": 0}}},
                "l": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string", "maxLength": 2}},
                "e": {"type": ["string", "null"], "enum": ["a"]},
                "t": {"type": "string", "format": "date-time"}}});
        let table = FieldTable::compile(&doc, Roles::NONE).unwrap();
        for (data, ok) in [
            (json!({"o": {"n": 1}}), true),
            (json!({"o": {"n": null}}), true),
            (json!({"o": {"n": -1}}), false),
            (json!({"o": {"n": 1.0}}), false), // valid, but not proven
            (json!({"o": {}}), false),
            (json!({"o": {"n": 1, "m": 1}}), false),
            (json!({"o": {"n": 1}, "l": ["ab"]}), true),
            (json!({"o": {"n": 1}, "l": ["ab", "c"]}), true),
            (json!({"o": {"n": 1}, "l": []}), false),
            (json!({"o": {"n": 1}, "l": ["a", "b", "c"]}), false),
            (json!({"o": {"n": 1}, "l": ["abc"]}), false),
            (json!({"o": {"n": 1}, "l": [null]}), false),
            (json!({"o": {"n": 1}, "e": "a"}), true),
            (json!({"o": {"n": 1}, "e": null}), false), // the enum rejects null
            (json!({"o": {"n": 1}, "t": "2024-05-01T14:00:00.5+02:00"}), true),
            (json!({"o": {"n": 1}, "t": "2024-05-01T14:00:00"}), false),
            (json!({"o": {"n": 1}, "t": null}), false),
        ] {
            assert_eq!(table.accepts(&data), ok, "{data}");
        }
    }

    #[test]
    fn only_canonical_date_times_are_proven_in_stored_records() {
        let t = Rule {
            null: false,
            check: Check::String { min_len: 0, max_len: u64::MAX, options: None, pattern: None, date_time: true },
        };
        let stored = |s: &'static str| t.accept_stored(StoredValue::String(Text::from(s)));
        for (text, canonical) in [
            ("2024-05-01T12:00:00Z", true),
            ("2024-05-01T12:00:00.500Z", true),
            ("2024-05-01T12:00:00.123456Z", true),
            ("2024-05-01T12:00:00.123456789Z", true),
            ("2024-05-01T12:00:00.5Z", false),
            ("2024-05-01T12:00:00.000Z", false),
            ("2024-05-01T12:00:00.500000Z", false),
            ("2024-05-01T12:00:00.123450Z", true),
            ("2024-05-01T12:00:00.120000Z", false),
            ("2024-05-01T12:00:00.123456000Z", false),
            ("2024-05-01T12:00:00+00:00", false),
            ("2024-05-01t12:00:00Z", false),
            ("2024-02-30T12:00:00Z", false),
        ] {
            let value = stored(text);
            assert_eq!(value.is_some(), canonical, "{text}");
            if let Some(StoredValue::Timestamp(instant)) = value {
                let written = crate::validate::canonical_time(instant.to_datetime().unwrap());
                assert_eq!(written, text, "the instant gives back the same text");
            }
        }
        assert_eq!(t.accept_stored(StoredValue::Null), None);
    }

    proptest::proptest! {
        #[test]
        fn canonical_date_times_are_what_the_serializer_writes(
            secs in -30_610_224_000i64..253_402_300_799,
            nanos in proptest::prop_oneof![0u32..1_000_000_000, (0u32..1000).prop_map(|n| n * 1_000_000),
                (0u32..1_000_000).prop_map(|n| n * 1000)],
        ) {
            let text = crate::validate::canonical_time(chrono::DateTime::from_timestamp(secs, nanos).unwrap());
            proptest::prop_assert_eq!(canonical_instant(text.as_bytes()), Some(Instant { secs, nanos }), "{}", text);
        }
    }
}
