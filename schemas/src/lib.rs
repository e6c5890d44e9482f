//! sluice-schemas: the event contract.
//!
//! - [`envelope`] - the producer input shape, the validated [`Event`] that travels on the stream,
//!   and the [`IngestContext`] ingest supplies.
//! - [`registry`] - event types and their JSON Schema versions (`schemas/<event_type>/v<N>.json`),
//!   compiled in ([`Registry::builtin`]) or loaded from a directory ([`Registry::from_dir`]).
//! - [`validate`] - [`Registry::validate`] (producer JSON -> [`Event`], every violation reported)
//!   and [`Registry::decode_stored`] (stream record bytes -> [`Event`], re-validated).
//!   Both run a compiled per-version field table first (the private `fast` module: proves
//!   valid data valid without jsonschema; stored records in the serializer's own layout are
//!   parsed by hand); anything it cannot prove, and every rejection, goes through the
//!   jsonschema reference path, so results are identical (differential tests in
//!   `tests/it/differential.rs`). [`Registry::decode_stored_view`] is the allocation-free
//!   [`StoredView`] of a stored record, with the schema's roles (dimensions, measure,
//!   identity): the one decoder the aggregator and the lake writer consume.
//! - [`evolution`] - the compatibility rule between consecutive schema versions.
//! - [`path`] - [`FieldPath`], where a role sits in `data` (`context/country`).
//! - [`arrow`] - the Arrow schema of an event type's lake table.
//!
//! Pure: no I/O except [`Registry::from_dir`], no clock except UUIDv7 randomness; time is passed
//! in through [`IngestContext`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod arrow;
pub mod envelope;
pub mod evolution;
mod fast;
pub mod path;
pub mod registry;
pub mod validate;

pub use arrow::ENVELOPE_COLUMNS;
pub use envelope::{DEFAULT_LAKE_START, Event, EventTimeBounds, EventTimeRange, EventTimeRangeError, IngestContext};
pub use evolution::check_compatible;
pub use fast::{MAX_VIEW_FIELDS, StoredValue, StoredView, Utf8Check, ViewCache, ViewValues};
pub use path::FieldPath;
pub use registry::{EventType, FieldDef, FieldKind, MAX_DEPTH, MEASURE_LIMIT, Registry, RegistryError, SchemaVersion};
pub use sluice_bytescan::{Instant, Text};
pub use validate::{Rejection, Violation};
