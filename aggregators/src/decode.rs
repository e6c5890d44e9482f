//! Stream record bytes -> [`Contribution`].
//!
//! The decoder is `sluice-schemas`' stored-record view
//! ([`Registry::decode_stored_view_cached_with`], UTF-8 checked while scanning: no pass over the
//! record besides the scan): the record layout, the schema's field checks and its roles
//! (dimensions, measure, identity) all come from there, nested roles (`context/country`)
//! included: the view holds them in slots of their own. This module only turns a view into a
//! contribution: dimensions borrowed from the record, the measure as `f64`, the identity
//! fingerprinted; no allocation per record. Whatever the view does not prove valid takes
//! [`Registry::decode_stored`], whose answer (and rejection reason) is final.
//!
//! Contract (differential tests `decode_agrees_with_registry`,
//! `order_placed_decodes_on_the_view_as_the_registry_does`): `decode(b)` is `Ok` exactly when
//! `registry.decode_stored(b)` is, and then holds the same values.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;
use sluice_bytescan::decimal;
use sluice_schemas::{
    Event, Instant, Registry, Rejection, StoredValue, StoredView, Utf8Check, ViewCache, ViewValues, Violation,
};

use crate::aggregate::Contribution;
use crate::hll::fingerprint;
use crate::key::DimRef;
use crate::state::Observation;

/// Decodes and validates stream records (see the module docs).
#[derive(Debug, Clone)]
pub struct Decoder {
    registry: Arc<Registry>,
}

/// How a record was decoded (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The stored-record view.
    Fast,
    /// [`Registry::decode_stored`].
    Registry,
}

impl Decoder {
    /// A decoder validating against `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Decoder { registry }
    }

    /// The registry it validates against.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether records of `(event_type, version)` can take the view (its schema compiles to a
    /// field table).
    pub fn is_fast(&self, event_type: &str, version: u32) -> bool {
        self.registry.get(event_type).and_then(|t| t.version(version)).is_some_and(|s| s.view_fields().is_some())
    }

    /// Decodes one stream record payload. `Err` carries the registry's rejection.
    pub fn decode<'a>(&'a self, bytes: &'a [u8]) -> Result<(Contribution<'a>, Path), Rejection> {
        let mut out = Contribution::empty();
        let path = self.decode_into(bytes, &mut out)?;
        Ok((out, path))
    }

    /// [`Decoder::decode`] into `out` (same result), reusing its `dims` buffer. On `Err`, `out`
    /// is unspecified.
    pub fn decode_into<'a>(&'a self, bytes: &'a [u8], out: &mut Contribution<'a>) -> Result<Path, Rejection> {
        self.decode_cached(bytes, out, &mut ViewCache::default())
    }

    /// [`Decoder::decode_into`] (same result), with the event types and versions looked up
    /// through `cache`, kept across a batch's records: no allocation per record on the view
    /// path once `out` and `cache` have grown.
    #[inline]
    pub fn decode_cached<'r: 'a, 'a>(
        &'r self,
        bytes: &'a [u8],
        out: &mut Contribution<'a>,
        cache: &mut ViewCache<'r>,
    ) -> Result<Path, Rejection> {
        let mut values = ViewValues::default();
        if let Some(view) =
            self.registry.decode_stored_view_cached_with(bytes, &mut values, cache, Utf8Check::WhileScanning)
            && contribute(&view, out).is_some()
        {
            return Ok(Path::Fast);
        }
        let event = self.registry.decode_stored(bytes)?;
        *out = self.from_event(event)?;
        Ok(Path::Registry)
    }

    /// The contribution of a validated [`Event`] (the registry path, and for callers holding
    /// events).
    pub fn from_event(&self, event: Event) -> Result<Contribution<'static>, Rejection> {
        contribution_of(&self.registry, event)
    }
}

/// `view` as a contribution, into `out`; `None` when a role's value is of a shape the view path
/// does not convert (the registry path then decides). Roles are read from their slots, at any
/// depth of nested objects.
#[inline]
fn contribute<'a>(view: &StoredView<'a, 'a, '_>, out: &mut Contribution<'a>) -> Option<()> {
    out.dims.clear();
    for value in view.dimensions() {
        out.dims.push(match value? {
            StoredValue::String(s) => DimRef::Str(s),
            StoredValue::Integer(i) => DimRef::Int(i),
            _ => return None,
        });
    }
    let measure = match (&view.schema.measure, view.measure()) {
        (None, _) => None,
        (Some(_), Some(StoredValue::Number(x))) => Some(x),
        (Some(_), Some(StoredValue::Integer(i))) => Some(i as f64),
        _ => return None,
    };
    let identity = match (&view.schema.identity, view.identity()) {
        (None, _) => None,
        (Some(_), Some(StoredValue::String(s))) => Some(fingerprint(s.as_bytes())),
        (Some(_), Some(StoredValue::Integer(i))) => Some(fingerprint(decimal(i, &mut [0; 20]))),
        _ => return None,
    };
    out.event_type = Cow::Borrowed(view.event_type.name.as_str());
    out.occurred_at = view.occurred_at;
    out.received_at = view.received_at;
    out.obs = Observation { measure, identity };
    Some(())
}

/// An integer-valued JSON number (`200` or `200.0`) as i64; JSON Schema's `integer` admits both.
fn as_integer(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64))
}

/// The contribution of a validated [`Event`]: its dimensions, measure and identity as its
/// schema version declares them.
pub fn contribution_of(registry: &Registry, event: Event) -> Result<Contribution<'static>, Rejection> {
    let missing = |what: &str| Rejection {
        violations: vec![Violation::new("/data", format!("lacks its {what} (schema changed?)"))],
    };
    let schema = registry
        .get(&event.event_type)
        .and_then(|t| t.version(event.schema_version))
        .ok_or_else(|| missing("schema"))?;
    let mut dims = Vec::with_capacity(schema.dimensions.len());
    for d in &schema.dimensions {
        dims.push(match d.get(&event.data) {
            Some(Value::String(s)) => DimRef::OwnedStr(s.clone()),
            Some(Value::Number(n)) => DimRef::Int(as_integer(n).ok_or_else(|| missing("dimension"))?),
            _ => return Err(missing("dimension")),
        });
    }
    let measure = match &schema.measure {
        None => None,
        Some(m) => Some(m.get(&event.data).and_then(Value::as_f64).ok_or_else(|| missing("measure"))?),
    };
    let identity = match &schema.identity {
        None => None,
        Some(i) => Some(match i.get(&event.data) {
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
        occurred_at: Instant::from_datetime(event.occurred_at),
        received_at: Instant::from_datetime(event.received_at),
        dims,
        obs: Observation { measure, identity },
    })
}
