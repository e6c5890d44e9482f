//! The stored-record view: a stream record decoded without allocating and proven valid by the
//! version's [`FieldTable`], with the fields' roles.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Number, Value};
use sluice_bytescan::{Instant, Text, parse_canonical_instant, short_eq, utf8};

use super::scan::Cursor;
use super::table::FieldTable;
use crate::envelope::Event;
use crate::registry::{EventType, Registry, SchemaVersion};

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
    String(Text<'b>),
    Integer(i64),
    Number(f64),
    Boolean(bool),
}

impl StoredValue<'_> {
    /// The value as serde_json would hold it in [`Event::data`].
    pub fn to_json(self) -> Value {
        match self {
            StoredValue::String(s) => Value::String(s.as_str().to_owned()),
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
    /// By slot: slot `i` is the `i`-th name of [`SchemaVersion::view_fields`].
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

    /// The values of `x-sluice-dimensions`, in declared order (present: dimensions are
    /// required fields).
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
    /// `None` only if a timestamp is outside chrono's range, which a view never holds.
    pub fn to_event(&self) -> Option<Event> {
        let data = self
            .table
            .fields
            .iter()
            .zip(self.values())
            .filter_map(|(field, value)| value.map(|v| (field.name.clone(), v.to_json())))
            .collect();
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
    /// The data field names in [`StoredView`] slot order (name order), or `None` when this
    /// version never gets a view (its schema is outside the fast subset, or it has more than
    /// [`MAX_VIEW_FIELDS`] fields).
    pub fn view_fields(&self) -> Option<Vec<&str>> {
        let table = viewable(self)?;
        Some(table.fields.iter().map(|f| f.name.as_str()).collect())
    }
}

/// The table of `schema`, if its records can be viewed.
fn viewable(schema: &SchemaVersion) -> Option<&FieldTable> {
    schema.table().filter(|t| t.fields.len() <= MAX_VIEW_FIELDS)
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
            values: slots.get(..table.fields.len()).unwrap_or_default(),
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

/// A compact `data` object of scalars checked against `table`, its values into `slots`.
#[inline(always)]
fn scan_data<'b>(
    p: &mut Cursor<'b>,
    table: &FieldTable,
    slots: &mut [Option<StoredValue<'b>>; MAX_VIEW_FIELDS],
) -> Option<()> {
    p.lit(b"{")?;
    let slots = slots.get_mut(..table.fields.len())?;
    slots.fill(None);
    let mut required_seen = 0;
    // serde_json writes `data` keys in name order, the table's order: try the next slot first.
    let mut next = 0;
    if !p.eat(b'}') {
        loop {
            // A key equal to a field's name is that (valid UTF-8) name.
            let key = p.name()?;
            p.lit(b":")?;
            let slot = match table.fields.get(next) {
                Some(f) if short_eq(f.name.as_bytes(), key) => next,
                _ => table.fields.iter().position(|f| short_eq(f.name.as_bytes(), key))?,
            };
            next = slot + 1;
            let value = p.stored_value()?;
            let field = table.fields.get(slot)?;
            let cell = slots.get_mut(slot)?;
            // A duplicate key: serde keeps the last one; not worth proving here.
            if cell.is_some() || !field.accepts_stored(value) {
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
    (required_seen == table.required).then_some(())
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
