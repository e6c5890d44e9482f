//! The fast path of the wire contract: each [`SchemaVersion`](crate::SchemaVersion) compiled
//! once into a field table, used on the hot paths instead of the jsonschema validator, and the
//! stored record layout read by hand.
//!
//! - [`table`] - the field table: the subset of JSON Schema it compiles (nested objects,
//!   arrays, nullable scalars and date-times included), per-value checks at every depth, and
//!   the roles (dimensions, measure, identity, top-level or nested) as slots.
//! - [`pattern`] - the `pattern` grammar the table checks itself.
//! - [`scan`] - the scanner of the layout `serde_json::to_vec(&Event)` writes, and the owned
//!   parse of it `Registry::decode_stored` runs first (scalar `data` only).
//! - [`view`] - [`StoredView`]: a stored record decoded without allocating, nested `data`
//!   included, what the aggregator and the lake writer consume.
//!
//! Contract (what makes it safe): the table only ever *accepts*. Whatever it accepts, the
//! jsonschema validator accepts AND the Int64 range check passes (at every depth), i.e. the
//! reference path would report no violation; whatever it cannot prove valid, and every rejection, goes through the
//! reference path, which produces the (identical) result and every violation message. The
//! scanner only ever returns what serde/chrono would have returned for the same text
//! (differential tests: `tests/it/differential.rs`, `sluice-aggregators`' `tests/it/decode.rs`,
//! `sluice-sinks`' `tests/it/fast_path.rs`).

mod pattern;
mod scan;
mod table;
mod view;

pub(crate) use scan::{CanonicalRecord, parse_canonical};
pub(crate) use table::{FieldTable, Roles};
pub use view::{MAX_VIEW_FIELDS, StoredValue, StoredView, Utf8Check, ViewCache, ViewValues};
