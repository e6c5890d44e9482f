//! sluice-bytescan: the byte-level primitives every hot path shares, at the bottom of the
//! crate graph (imported by `sluice-stream`, `sluice-schemas`, `sluice-aggregators` and
//! `sluice-sinks`).
//!
//! - [`string_end`] - where a JSON string's raw content ends (8 bytes at a time), and whether
//!   it is all ASCII.
//! - [`short_eq`] - byte equality for the short strings of events, without `memcmp` calls.
//! - [`all_digits`], [`digit_run`], [`decimal`] - runs of ASCII digits.
//! - [`Instant`], [`parse_canonical_instant`], [`parse_canonical_utc`] - the one parser of the
//!   canonical stored timestamp `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` (integer calendar arithmetic,
//!   property-tested against chrono).
//! - [`Text`], [`utf8`] - text known to be UTF-8 kept as bytes, and the SIMD UTF-8 check.
//!
//! Pure functions over bytes: no I/O, no allocation, no caches. Each is checked against the
//! obvious byte-at-a-time (or chrono) definition by a property test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod digits;
mod eq;
mod string;
mod text;
mod time;

pub use digits::{all_digits, decimal, digit_run};
pub use eq::short_eq;
pub use string::string_end;
pub use text::{Text, utf8};
pub use time::{Instant, parse_canonical_instant, parse_canonical_utc};
