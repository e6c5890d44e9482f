//! The stored-record view: a stream record decoded without allocating and proven valid by the
//! version's [`FieldTable`], with the fields' roles.
//!
//! `data` is scanned as its table says, at every depth: a scalar into its slot; a nested
//! object property by property (keys in name order, as serde_json writes them: anything else
//! is not proven), its properties into their own slots and the object itself as its span of
//! the record; an array element by element, each checked, the array as its span.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Number, Value};
use sluice_bytescan::{Instant, Text, parse_canonical_instant, short_eq, utf8};

use super::scan::Cursor;
use super::table::{FieldTable, ObjectCheck, Rule, Shape};
use crate::envelope::Event;
use crate::registry::{EventType, Registry, SchemaVersion};
use crate::validate::canonical_time;

/// Most slots a [`StoredView`] holds: `data`'s properties plus those of its nested objects
/// (not those inside arrays; see [`SchemaVersion::view_fields`]). Versions with more always
/// take [`Registry::decode_stored`].
pub const MAX_VIEW_FIELDS: usize = 24;

/// One `data` value of a [`StoredView`], borrowed from the record bytes.
///
/// `Integer` is a JSON integer literal serde_json holds as an `i64` (at most 18 digits, not
/// `-0`); `Number` any other number (serde_json holds it as an `f64`; parsed with the same
/// correctly rounded result, always finite). `Null` is the value of a nullable field; an
/// absent field is `None`. `Timestamp` is a `format: date-time` string, whose stored text is
/// the canonical form of that instant (the form `occurred_at` has). `Object` and `Array` are
/// the JSON text of a nested object or array as the record holds it (compact, every value in
/// it checked against the schema), for consumers that need its contents to read it again; the
/// properties of a nested object (not of one inside an array) also have slots of their own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StoredValue<'b> {
    String(Text<'b>),
    Integer(i64),
    Number(f64),
    Boolean(bool),
    Null,
    Timestamp(Instant),
    Object(Text<'b>),
    Array(Text<'b>),
}

impl StoredValue<'_> {
    /// The value as serde_json would hold it in [`Event::data`] (`Null` for an instant outside
    /// chrono's range or nested text that is not JSON, which a view never holds).
    pub fn to_json(self) -> Value {
        self.json().unwrap_or(Value::Null)
    }

    fn json(self) -> Option<Value> {
        Some(match self {
            StoredValue::String(s) => Value::String(s.as_str().to_owned()),
            StoredValue::Integer(i) => Value::from(i),
            StoredValue::Number(f) => Value::Number(Number::from_f64(f)?),
            StoredValue::Boolean(b) => Value::Bool(b),
            StoredValue::Null => Value::Null,
            StoredValue::Timestamp(t) => Value::String(canonical_time(t.to_datetime()?)),
            StoredValue::Object(text) | StoredValue::Array(text) => serde_json::from_str(text.as_str()).ok()?,
        })
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

/// How a view's strings are checked to be UTF-8. The view is the same either way; what differs
/// is the cost, and what [`Text::as_str`] costs afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utf8Check {
    /// The whole record in one SIMD pass before scanning: every string of the view is a `&str`
    /// for free. For callers that need `&str`s (Arrow columns).
    Record,
    /// Only strings holding a non-ASCII byte, while scanning: no extra pass over the record;
    /// [`Text::as_str`] checks again. For callers that compare, hash and fingerprint bytes.
    WhileScanning,
}

/// A stream record decoded without allocating and proven valid by the compiled field table
/// ([`Registry::decode_stored_view`]). Strings borrow from the record bytes (`'b`), the values
/// from the caller's [`ViewValues`] (`'v`), the type and schema from the registry (`'r`).
/// Timestamps are integer [`Instant`]s (no calendar arithmetic on the hot path). The schema's
/// roles are read by slot: [`StoredView::dimensions`], [`StoredView::measure`],
/// [`StoredView::identity`].
///
/// Contract: a view exists only for a record on which [`Registry::decode_stored`] returns
/// `Ok(event)`, and [`StoredView::to_event`] equals that `event` (differential tests in
/// `sluice-schemas`, `sluice-aggregators` and `sluice-sinks`).
#[derive(Debug, Clone, Copy)]
pub struct StoredView<'r, 'b, 'v> {
    pub event_type: &'r EventType,
    pub schema: &'r SchemaVersion,
    table: &'r FieldTable,
    pub event_id: Text<'b>,
    pub occurred_at: Instant,
    pub received_at: Instant,
    pub producer: Text<'b>,
    /// By slot: slot `i` is the `i`-th path of [`SchemaVersion::view_fields`].
    values: &'v [Option<StoredValue<'b>>],
}

impl<'r, 'b, 'v> StoredView<'r, 'b, 'v> {
    /// The value in slot `slot` (see [`SchemaVersion::view_fields`]); `None` if absent.
    #[inline]
    pub fn value(&self, slot: usize) -> Option<StoredValue<'b>> {
        self.values.get(slot).copied().flatten()
    }

    /// The values by slot.
    pub fn values(&self) -> &'v [Option<StoredValue<'b>>] {
        self.values
    }

    /// The values of `x-sluice-dimensions`, in declared order, at top level or nested
    /// (present: dimensions are required fields in required objects).
    #[inline]
    pub fn dimensions(&self) -> impl ExactSizeIterator<Item = Option<StoredValue<'b>>> + use<'r, 'b, 'v> {
        let values = self.values;
        self.table.dimensions.iter().map(move |&slot| values.get(slot).copied().flatten())
    }

    /// The value of `x-sluice-measure`, if the schema has one.
    #[inline]
    pub fn measure(&self) -> Option<StoredValue<'b>> {
        self.value(self.table.measure?)
    }

    /// The value of `x-sluice-identity`, if the schema has one.
    #[inline]
    pub fn identity(&self) -> Option<StoredValue<'b>> {
        self.value(self.table.identity?)
    }

    /// The owned [`Event`] (equal to what [`Registry::decode_stored`] returns for the record).
    /// `None` only if a timestamp is outside chrono's range or nested text is not JSON, which a
    /// view never holds.
    pub fn to_event(&self) -> Option<Event> {
        let mut data = serde_json::Map::new();
        for field in &self.table.data.fields {
            if let Some(value) = field.slot.and_then(|slot| self.value(slot)) {
                data.insert(field.name.clone(), value.json()?);
            }
        }
        Some(Event {
            event_id: self.event_id.as_str().to_owned(),
            event_type: self.event_type.name.clone(),
            schema_version: self.schema.version,
            occurred_at: self.occurred_at.to_datetime()?,
            received_at: self.received_at.to_datetime()?,
            producer: self.producer.as_str().to_owned(),
            data,
        })
    }
}

impl SchemaVersion {
    /// The field paths (`country`, `context/country`, as [`FieldPath`](crate::FieldPath)
    /// displays them) in [`StoredView`] slot order, or `None` when this version never gets a
    /// view (its schema is outside the fast subset, or it has more than [`MAX_VIEW_FIELDS`]
    /// slots). The order: `data`'s properties by name (so a schema without nested objects has
    /// its fields' names in name order), then, object by object in that order, each nested
    /// object's properties by name. Properties inside arrays have no slot.
    pub fn view_fields(&self) -> Option<Vec<&str>> {
        let table = viewable(self)?;
        Some(table.slots.iter().map(String::as_str).collect())
    }
}

/// The table of `schema`, if its records can be viewed.
fn viewable(schema: &SchemaVersion) -> Option<&FieldTable> {
    schema.table().filter(|t| t.slots.len() <= MAX_VIEW_FIELDS)
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
    table: &'r FieldTable,
}

/// The registry's answer for (`name`, `version`): the version, if it can be viewed.
fn view_version<'r>(registry: &'r Registry, name: &[u8], version: u32) -> Option<CachedVersion<'r>> {
    let event_type = registry.get(std::str::from_utf8(name).ok()?)?;
    let schema = event_type.version(version)?;
    let table = viewable(schema)?;
    Some(CachedVersion { event_type, version, schema, table })
}

impl Registry {
    /// Decodes a stream record in the layout `serde_json::to_vec(&Event)` writes and validates
    /// it with the compiled field table, without allocating: the data values go to `values`
    /// (reused across records), everything else is borrowed; UTF-8 as [`Utf8Check::Record`].
    /// `None` means "not proven": call [`Registry::decode_stored`], which decides (and explains
    /// a rejection). Never panics.
    pub fn decode_stored_view<'r, 'b, 'v>(
        &'r self,
        bytes: &'b [u8],
        values: &'v mut ViewValues<'b>,
    ) -> Option<StoredView<'r, 'b, 'v>> {
        self.decode_view(bytes, values, |name, version| view_version(self, name, version), Utf8Check::Record)
    }

    /// [`Registry::decode_stored_view`] (same result for every input), with the event type and
    /// version looked up through `cache` (kept across a batch's records).
    #[inline]
    pub fn decode_stored_view_cached<'r, 'b, 'v>(
        &'r self,
        bytes: &'b [u8],
        values: &'v mut ViewValues<'b>,
        cache: &mut ViewCache<'r>,
    ) -> Option<StoredView<'r, 'b, 'v>> {
        self.decode_stored_view_cached_with(bytes, values, cache, Utf8Check::Record)
    }

    /// [`Registry::decode_stored_view_cached`] with UTF-8 checked as `check` says (the same
    /// view for every input).
    #[inline(always)]
    pub fn decode_stored_view_cached_with<'r, 'b, 'v>(
        &'r self,
        bytes: &'b [u8],
        values: &'v mut ViewValues<'b>,
        cache: &mut ViewCache<'r>,
        check: Utf8Check,
    ) -> Option<StoredView<'r, 'b, 'v>> {
        if !cache.registry.is_some_and(|r| std::ptr::eq(r, self)) {
            *cache = ViewCache { registry: Some(self), entries: Vec::new() };
        }
        let lookup = |name: &[u8], version| {
            let hit =
                cache.entries.iter().find(|e| e.version == version && short_eq(e.event_type.name.as_bytes(), name));
            if let Some(hit) = hit {
                return Some(*hit);
            }
            let found = view_version(self, name, version)?;
            cache.entries.push(found);
            Some(found)
        };
        self.decode_view(bytes, values, lookup, check)
    }

    #[inline(always)]
    fn decode_view<'r, 'b, 'v>(
        &'r self,
        bytes: &'b [u8],
        values: &'v mut ViewValues<'b>,
        mut lookup: impl FnMut(&[u8], u32) -> Option<CachedVersion<'r>>,
        check: Utf8Check,
    ) -> Option<StoredView<'r, 'b, 'v>> {
        let mut p = match check {
            Utf8Check::Record => Cursor::over_str(utf8(bytes)?),
            Utf8Check::WhileScanning => Cursor::over_bytes(bytes),
        };
        let head = match scan_record(&mut p, &mut lookup, &mut values.values) {
            Some(head) => head,
            None => envelope_by_serde(bytes, &mut lookup, &mut values.values)?,
        };
        // Outside the registry's event-time range: no view (the reference path explains).
        if !self.event_time_bounds().contains(head.occurred_at.micros(), head.received_at.micros()) {
            return None;
        }
        Some(head.into_view(&values.values))
    }
}

/// A viewed record but its values (in the caller's slots).
struct Head<'r, 'b> {
    version: CachedVersion<'r>,
    event_id: Text<'b>,
    occurred_at: Instant,
    received_at: Instant,
    producer: Text<'b>,
}

impl<'r, 'b> Head<'r, 'b> {
    #[inline(always)]
    fn into_view<'v>(self, slots: &'v [Option<StoredValue<'b>>; MAX_VIEW_FIELDS]) -> StoredView<'r, 'b, 'v> {
        let CachedVersion { event_type, schema, table, .. } = self.version;
        StoredView {
            event_type,
            schema,
            table,
            event_id: self.event_id,
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            producer: self.producer,
            values: slots.get(..table.slots.len()).unwrap_or_default(),
        }
    }
}

/// The record in the stored layout (see [`super::scan`]), its data values into `slots`.
#[inline(always)]
fn scan_record<'r, 'b>(
    p: &mut Cursor<'b>,
    lookup: &mut impl FnMut(&[u8], u32) -> Option<CachedVersion<'r>>,
    slots: &mut [Option<StoredValue<'b>>; MAX_VIEW_FIELDS],
) -> Option<Head<'r, 'b>> {
    p.lit(b"{\"event_id\":")?;
    let event_id = p.text()?;
    p.lit(b",\"event_type\":")?;
    // Valid UTF-8 if it names a registered type.
    let name = p.name()?;
    p.lit(b",\"schema_version\":")?;
    let version = lookup(name, p.u32()?)?;
    p.lit(b",\"occurred_at\":")?;
    let occurred_at = p.instant()?;
    p.lit(b",\"received_at\":")?;
    let received_at = p.instant()?;
    p.lit(b",\"producer\":")?;
    let producer = p.text()?;
    p.lit(b",\"data\":")?;
    scan_data(p, version.table, slots)?;
    p.lit(b"}")?;
    p.at_end().then_some(Head { version, event_id, occurred_at, received_at, producer })
}

/// A compact `data` object checked against `table`, its values into `slots`.
#[inline(always)]
fn scan_data<'b>(
    p: &mut Cursor<'b>,
    table: &FieldTable,
    slots: &mut [Option<StoredValue<'b>>; MAX_VIEW_FIELDS],
) -> Option<()> {
    // A flat table (plain scalars only) gets a loop without the nested branch, inlined here:
    // the scan of a flat record stays what it was before nested shapes existed. Any other table
    // runs its loop out of line, on a copy of the cursor (`p` itself never escapes into a call,
    // so the flat loop keeps it in registers).
    if table.flat {
        return scan_members::<false>(p, table, slots);
    }
    let mut q = p.clone();
    let found = scan_nested_data(&mut q, table, slots);
    p.i = q.i;
    found
}

/// [`scan_data`] of a table with objects, arrays, date-times or nullable fields.
#[inline(never)]
fn scan_nested_data<'b>(
    p: &mut Cursor<'b>,
    table: &FieldTable,
    slots: &mut [Option<StoredValue<'b>>; MAX_VIEW_FIELDS],
) -> Option<()> {
    scan_members::<true>(p, table, slots)
}

/// [`scan_data`]; `NESTED`: `data` may hold more than plain scalars (see `FieldTable::flat`).
#[inline(always)]
fn scan_members<'b, const NESTED: bool>(
    p: &mut Cursor<'b>,
    table: &FieldTable,
    slots: &mut [Option<StoredValue<'b>>; MAX_VIEW_FIELDS],
) -> Option<()> {
    p.lit(b"{")?;
    let slots = slots.get_mut(..table.slots.len())?;
    slots.fill(None);
    let fields = &table.data.fields;
    let mut required_seen = 0;
    // serde_json writes `data` keys in name order, the table's order: try the next field first.
    let mut next = 0;
    if !p.eat(b'}') {
        loop {
            // A key equal to a field's name is that (valid UTF-8) name.
            let key = p.name()?;
            p.lit(b":")?;
            let index = match fields.get(next) {
                Some(f) if short_eq(f.name.as_bytes(), key) => next,
                _ => fields.iter().position(|f| short_eq(f.name.as_bytes(), key))?,
            };
            next = index + 1;
            let field = fields.get(index)?;
            let value = if NESTED {
                scan_value(p, &field.rule, slots)?
            } else {
                let value = p.stored_value()?;
                if !field.rule.accepts_plain(value) {
                    return None;
                }
                value
            };
            // `data`'s field `index` has slot `index`.
            let cell = slots.get_mut(index)?;
            // A duplicate key: serde keeps the last one; not worth proving here.
            if cell.is_some() {
                return None;
            }
            *cell = Some(value);
            required_seen += usize::from(field.required);
            if p.eat(b',') {
                continue;
            }
            p.lit(b"}")?;
            break;
        }
    }
    (required_seen == table.data.required).then_some(())
}

/// One value checked against `rule`: a scalar here, an object or an array out of line.
#[inline(always)]
fn scan_value<'b>(p: &mut Cursor<'b>, rule: &Rule, slots: &mut [Option<StoredValue<'b>>]) -> Option<StoredValue<'b>> {
    match rule.shape() {
        Shape::Scalar => rule.accept_stored(p.stored_value()?),
        _ => scan_nested(p, rule, slots),
    }
}

/// An object or an array checked against `rule` (the recursion: as deep as the schema, which
/// the registry bounds, whatever the record holds).
#[inline(never)]
fn scan_nested<'b>(p: &mut Cursor<'b>, rule: &Rule, slots: &mut [Option<StoredValue<'b>>]) -> Option<StoredValue<'b>> {
    let start = p.i;
    match rule.shape() {
        Shape::Scalar => rule.accept_stored(p.stored_value()?),
        Shape::Object(object) => {
            scan_object(p, object, slots)?;
            p.span(start).map(StoredValue::Object)
        }
        Shape::Array { min_items, max_items, items } => {
            p.lit(b"[")?;
            let mut n = 0u64;
            if !p.eat(b']') {
                loop {
                    scan_value(p, items, slots)?;
                    n += 1;
                    if p.eat(b',') {
                        continue;
                    }
                    p.lit(b"]")?;
                    break;
                }
            }
            if n < min_items || n > max_items {
                return None;
            }
            p.span(start).map(StoredValue::Array)
        }
    }
}

/// A nested object checked against `object`, the values of fields with a slot into `slots`.
/// Keys must come in name order (as serde_json writes a `Map`): that also rules out duplicates
/// and unknown keys, and anything else is not proven.
fn scan_object<'b>(p: &mut Cursor<'b>, object: &ObjectCheck, slots: &mut [Option<StoredValue<'b>>]) -> Option<()> {
    p.lit(b"{")?;
    let mut required_seen = 0;
    let mut next = 0;
    if !p.eat(b'}') {
        loop {
            let key = p.name()?;
            p.lit(b":")?;
            let index = next + object.fields.get(next..)?.iter().position(|f| short_eq(f.name.as_bytes(), key))?;
            next = index + 1;
            let field = object.fields.get(index)?;
            let value = scan_value(p, &field.rule, slots)?;
            if let Some(slot) = field.slot {
                *slots.get_mut(slot)? = Some(value);
            }
            required_seen += usize::from(field.required);
            if p.eat(b',') {
                continue;
            }
            p.lit(b"}")?;
            break;
        }
    }
    (required_seen == object.required).then_some(())
}

/// The envelope fields, borrowed: serde's rules for a stored record (unknown fields ignored,
/// duplicate or missing ones refused), strings without escapes only.
#[derive(Deserialize)]
struct BorrowedEnvelope<'a> {
    event_id: &'a str,
    event_type: &'a str,
    schema_version: u32,
    occurred_at: &'a str,
    received_at: &'a str,
    producer: &'a str,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// A record in another layout (other member order, unknown members, whitespace around the
/// envelope: what another writer may send), its envelope parsed by serde, its `data` scanned
/// as in the stored layout. Not on the path of records `to_vec(&Event)` wrote.
#[cold]
fn envelope_by_serde<'r, 'b>(
    bytes: &'b [u8],
    lookup: &mut impl FnMut(&[u8], u32) -> Option<CachedVersion<'r>>,
    slots: &mut [Option<StoredValue<'b>>; MAX_VIEW_FIELDS],
) -> Option<Head<'r, 'b>> {
    let e: BorrowedEnvelope<'b> = serde_json::from_str(utf8(bytes)?).ok()?;
    let version = lookup(e.event_type.as_bytes(), e.schema_version)?;
    let mut p = Cursor::over_str(e.data.get());
    scan_data(&mut p, version.table, slots)?;
    if !p.at_end() {
        return None;
    }
    Some(Head {
        version,
        event_id: Text::from(e.event_id),
        occurred_at: parse_canonical_instant(e.occurred_at.as_bytes())?,
        received_at: parse_canonical_instant(e.received_at.as_bytes())?,
        producer: Text::from(e.producer),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &[u8] = br#"{"event_id":"e","event_type":"purchase","schema_version":1,"occurred_at":"2024-05-01T12:00:00Z","received_at":"2024-05-01T12:00:00Z","producer":"p","data":{"amount":1.5,"country":"DE","currency":"EUR","order_id":"o","user_id":"u"}}"#;

    #[test]
    fn a_view_cache_follows_its_registry() {
        let record = RECORD;
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
    fn roles_read_the_schema_fields() {
        let registry = Registry::builtin().unwrap();
        let mut values = ViewValues::default();
        let view = registry.decode_stored_view(RECORD, &mut values).unwrap();
        let schema = view.schema;
        let by_name = |name: &str| {
            let slot = schema.view_fields().unwrap().iter().position(|n| *n == name).unwrap();
            view.value(slot)
        };
        let dims: Vec<_> = view.dimensions().collect();
        let expected: Vec<_> = schema.dimensions.iter().map(|d| by_name(d.as_str())).collect();
        assert_eq!(dims, expected);
        assert_eq!(view.measure(), schema.measure.as_ref().map(|p| p.as_str()).and_then(by_name));
        assert_eq!(view.identity(), schema.identity.as_ref().map(|p| p.as_str()).and_then(by_name));
        assert!(view.measure().is_some() && view.identity().is_some());
    }

    #[test]
    fn both_utf8_checks_give_the_same_view() {
        let registry = Registry::builtin().unwrap();
        let text = std::str::from_utf8(RECORD).unwrap();
        let variants = [
            text.to_owned(),
            text.replace("\"u\"", "\"ü\""),
            text.replace("\"p\"", "\"p\u{1F980}\""),
            text.replace("\"o\"", "\"\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\""),
        ];
        let mut bad = RECORD.to_vec();
        let at = bad.windows(3).position(|w| w == b"\"u\"").unwrap();
        bad[at + 1] = 0xff;
        for bytes in variants.iter().map(|v| v.as_bytes().to_vec()).chain([bad]) {
            let (mut a, mut b) = (ViewValues::default(), ViewValues::default());
            let (mut ca, mut cb) = (ViewCache::default(), ViewCache::default());
            let whole = registry.decode_stored_view_cached_with(&bytes, &mut a, &mut ca, Utf8Check::Record);
            let scanned = registry.decode_stored_view_cached_with(&bytes, &mut b, &mut cb, Utf8Check::WhileScanning);
            let whole = whole.map(|v| v.to_event());
            assert_eq!(whole, scanned.map(|v| v.to_event()), "{}", String::from_utf8_lossy(&bytes));
            assert_eq!(whole.is_some(), std::str::from_utf8(&bytes).is_ok());
        }
    }
}
