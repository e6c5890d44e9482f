//! The event envelope: what producers send, what ingest adds, and the validated [`Event`].
//!
//! Producer JSON (one event):
//! ```json
//! { "event_id": "0190a0c4-...", "event_type": "page_view", "schema_version": 2,
//!   "occurred_at": "2024-05-01T14:00:00.123+02:00", "data": { ... } }
//! ```
//! `event_id` and `schema_version` are optional; no other top-level field is accepted.

use chrono::{DateTime, NaiveDate, SecondsFormat, SubsecRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::{NoContext, Timestamp, Uuid};

/// Top-level fields a producer may send (all others are rejected).
pub const ENVELOPE_FIELDS: &[&str] = &["event_id", "event_type", "schema_version", "occurred_at", "data"];

/// An [`EventTimeRange`] in microseconds since the epoch ([`EventTimeRange::bounds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTimeBounds {
    earliest: i64,
    max_future: i64,
}

impl EventTimeBounds {
    /// Whether `occurred_at` lies in `[earliest, received_at + max_future]` (µs since the epoch).
    #[inline]
    pub fn contains(&self, occurred_at: i64, received_at: i64) -> bool {
        occurred_at >= self.earliest && occurred_at <= received_at.saturating_add(self.max_future)
    }
}

/// Default for [`EventTimeRange::max_future`]: how far `occurred_at` may lie after
/// `received_at` (producer clock skew), 5 minutes.
pub const DEFAULT_MAX_FUTURE: TimeDelta = TimeDelta::seconds(300);

/// Default for [`EventTimeRange::lake_start`] (`--lake-start`, `SLUICE_LAKE_START`, template
/// parameter `LakeStart`): the lake's first day.
pub const DEFAULT_LAKE_START: &str = "2000-01-01";

/// The accepted range of `occurred_at`: from the lake's first day (UTC midnight, which is also
/// where the Glue tables' partition projection starts, so every accepted event is visible to
/// Athena) to `received_at + max_future`, both inclusive. One value, configured once at the
/// edge, held by the [`crate::Registry`]: ingest, the handlers (for stored records, whoever
/// wrote them) and the lake's partitioning all apply this same range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTimeRange {
    /// The first accepted day, UTC.
    pub lake_start: NaiveDate,
    /// How far after `received_at` `occurred_at` may lie (not negative).
    pub max_future: TimeDelta,
}

impl Default for EventTimeRange {
    fn default() -> Self {
        EventTimeRange { lake_start: default_lake_start(), max_future: DEFAULT_MAX_FUTURE }
    }
}

fn default_lake_start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// Why a setting of the event-time range is unusable (fix the configuration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTimeRangeError {
    #[error("{name}: `{value}` is not a date YYYY-MM-DD from 1970-01-01 to 9999-12-31")]
    LakeStart { name: &'static str, value: String },
    #[error("{name}: `{value}` is not a whole number of seconds >= 0")]
    MaxFuture { name: &'static str, value: String },
}

impl EventTimeRange {
    /// The range from the environment-style settings `SLUICE_LAKE_START` (YYYY-MM-DD) and
    /// `SLUICE_MAX_FUTURE_SECS`, each defaulted when absent or empty. Pure: `get` looks names up.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, EventTimeRangeError> {
        let mut range = EventTimeRange::default();
        if let Some(v) = get("SLUICE_LAKE_START").filter(|v| !v.is_empty()) {
            range.lake_start =
                parse_lake_start(&v).ok_or(EventTimeRangeError::LakeStart { name: "SLUICE_LAKE_START", value: v })?;
        }
        if let Some(v) = get("SLUICE_MAX_FUTURE_SECS").filter(|v| !v.is_empty()) {
            let secs = v
                .parse::<u32>()
                .map_err(|_| EventTimeRangeError::MaxFuture { name: "SLUICE_MAX_FUTURE_SECS", value: v })?;
            range.max_future = TimeDelta::seconds(i64::from(secs));
        }
        Ok(range)
    }

    /// The first accepted instant: `lake_start` at 00:00:00 UTC.
    pub fn earliest(&self) -> DateTime<Utc> {
        self.lake_start.and_time(chrono::NaiveTime::MIN).and_utc()
    }

    /// The latest accepted `occurred_at` for an event received at `received_at`.
    pub fn latest(&self, received_at: DateTime<Utc>) -> DateTime<Utc> {
        received_at.checked_add_signed(self.max_future).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Whether `occurred_at` is accepted for an event received at `received_at`: the one rule,
    /// [`EventTimeBounds::contains`], on the microseconds the lake stores (a sub-microsecond
    /// excess is truncated away, as it is in the stored record).
    pub fn contains(&self, occurred_at: DateTime<Utc>, received_at: DateTime<Utc>) -> bool {
        self.bounds().contains(occurred_at.timestamp_micros(), received_at.timestamp_micros())
    }

    /// The range in microseconds since the epoch, computed once (the hot paths' form).
    pub fn bounds(&self) -> EventTimeBounds {
        EventTimeBounds {
            earliest: self.earliest().timestamp_micros(),
            max_future: self.max_future.num_microseconds().unwrap_or(i64::MAX),
        }
    }

    /// The rejection message for an `occurred_at` outside the range (pointer `/occurred_at`).
    pub fn violation(&self, received_at: DateTime<Utc>) -> String {
        format!(
            "must be between {} (the lake's first day) and {} (received_at + {}s), inclusive",
            self.earliest().to_rfc3339_opts(SecondsFormat::AutoSi, true),
            self.latest(received_at).to_rfc3339_opts(SecondsFormat::AutoSi, true),
            self.max_future.num_seconds()
        )
    }
}

/// Parses a lake start date `YYYY-MM-DD` (1970-01-01 to 9999-12-31: the lake's partitions are
/// four-digit years, and partition projection starts no earlier than the epoch).
pub fn parse_lake_start(s: &str) -> Option<NaiveDate> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let last = NaiveDate::from_ymd_opt(9999, 12, 31)?;
    (s.len() == 10 && d >= epoch && d <= last).then_some(d)
}

/// A validated event as it travels on the stream (the stream record payload is its JSON).
///
/// Guarantees when produced by [`crate::Registry::validate`]: `event_id` is a canonical
/// hyphenated UUID or a ULID; `(event_type, schema_version)` is registered; `data` satisfies that
/// schema (integer fields hold JSON integers); both timestamps are UTC with at most microsecond
/// precision, so `decode_stored(serde_json::to_vec(&event))` returns an equal `Event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The producer's idempotency key (UUID or ULID, as given), or an assigned UUIDv7.
    pub event_id: String,
    /// A registered event type, e.g. `page_view`.
    pub event_type: String,
    /// The schema version `data` was validated against.
    pub schema_version: u32,
    /// Event time (producer clock), UTC, microsecond precision.
    pub occurred_at: DateTime<Utc>,
    /// When ingest accepted the event, UTC, microsecond precision.
    pub received_at: DateTime<Utc>,
    /// The authenticated producer (client) id.
    pub producer: String,
    /// The event's fields, valid against `schemas/<event_type>/v<schema_version>.json`.
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// What ingest knows about a request: who sent it and when (the accepted range of
/// `occurred_at` is the registry's [`EventTimeRange`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestContext {
    /// The authenticated producer id (becomes [`Event::producer`]).
    pub producer: String,
    /// Receive time (becomes [`Event::received_at`], truncated to microseconds).
    pub received_at: DateTime<Utc>,
}

impl IngestContext {
    /// The context of a request from `producer` received at `received_at`.
    pub fn new(producer: impl Into<String>, received_at: DateTime<Utc>) -> Self {
        Self { producer: producer.into(), received_at }
    }
}

/// Why a producer-chosen `event_id` is not acceptable (a message for the producer), or `Ok`.
///
/// Accepted: a UUID of any version in canonical hyphenated form (8-4-4-4-12 hex digits, either
/// case) or a ULID (26 Crockford base32 characters, first one `0`-`7`). The nil and max UUIDs
/// and the all-zero ULID are placeholders, not ids: as the deduplication key they would merge
/// unrelated events, so they are rejected.
pub fn check_event_id(id: &str) -> Result<(), &'static str> {
    let value = match id.len() {
        36 => Uuid::try_parse(id).ok().map(|u| u.as_u128()),
        26 if matches!(id.as_bytes().first(), Some(b'0'..=b'7')) => ulid::Ulid::from_string(id).ok().map(u128::from),
        _ => None,
    };
    match value {
        None => Err("must be a UUID (8-4-4-4-12 hex digits) or a ULID (26 Crockford base32 characters)"),
        Some(0 | u128::MAX) => {
            Err("must not be a placeholder (nil/max UUID, zero ULID): send a unique id or omit event_id")
        }
        Some(_) => Ok(()),
    }
}

/// Whether [`check_event_id`] accepts `id`.
pub fn is_valid_event_id(id: &str) -> bool {
    check_event_id(id).is_ok()
}

/// A fresh UUIDv7 (string form) whose timestamp is `at` (clamped to the Unix epoch); the rest is
/// random. Ids assigned at the same instant are unique but not ordered among themselves.
pub fn assign_event_id(at: DateTime<Utc>) -> String {
    let (secs, nanos) = match u64::try_from(at.timestamp()) {
        Ok(secs) => (secs, at.timestamp_subsec_nanos().min(999_999_999)),
        Err(_) => (0, 0),
    };
    Uuid::new_v7(Timestamp::from_unix(NoContext, secs, nanos)).to_string()
}

/// Parses an RFC 3339 timestamp (an offset is mandatory), normalised to UTC and truncated to
/// microseconds. `None` if it is not RFC 3339.
pub fn parse_occurred_at(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc).trunc_subsecs(6))
}

/// `t` truncated to microseconds (the lake's timestamp precision).
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids() {
        assert!(is_valid_event_id("0190a0c4-5b7e-7cc3-8f1a-3b2c1d0e9f8a"));
        assert!(is_valid_event_id("0190A0C4-5B7E-7CC3-8F1A-3B2C1D0E9F8A"));
        assert!(is_valid_event_id("01HZX3N4Q5R6S7T8V9W0XYZABC"));
        assert!(!is_valid_event_id("0190a0c45b7e7cc38f1a3b2c1d0e9f8a"));
        assert!(!is_valid_event_id("{0190a0c4-5b7e-7cc3-8f1a-3b2c1d0e9f8a}"));
        assert!(!is_valid_event_id("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
        assert!(!is_valid_event_id("01HZX3N4Q5R6S7T8V9W0XYZAB!"));
        assert!(!is_valid_event_id(""));
        assert!(!is_valid_event_id("00000000-0000-0000-0000-000000000000"));
        assert!(!is_valid_event_id("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"));
        assert!(!is_valid_event_id("00000000000000000000000000"));
    }

    #[test]
    fn assigned_ids_are_v7_at_the_given_time() {
        let at = DateTime::parse_from_rfc3339("2024-05-01T12:00:00.123Z").unwrap().with_timezone(&Utc);
        let id = assign_event_id(at);
        let uuid = Uuid::parse_str(&id).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
        let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
        assert_eq!((secs, nanos), (1_714_564_800, 123_000_000));
        assert_ne!(assign_event_id(at), id);
        // Before the epoch: clamped, still a valid v7.
        let early = DateTime::parse_from_rfc3339("1960-01-01T00:00:00.5Z").unwrap().with_timezone(&Utc);
        let uuid = Uuid::parse_str(&assign_event_id(early)).unwrap();
        assert_eq!(uuid.get_timestamp().unwrap().to_unix(), (0, 0));
    }

    #[test]
    fn lake_start_dates() {
        assert_eq!(parse_lake_start(DEFAULT_LAKE_START), Some(EventTimeRange::default().lake_start));
        assert_eq!(EventTimeRange::default().earliest().to_rfc3339(), "2000-01-01T00:00:00+00:00");
        for bad in ["", "2000-1-1", "1969-12-31", "2000-02-30", "+2000-01-01", "20000-01-01", "2000-01-01T00:00:00Z"] {
            assert_eq!(parse_lake_start(bad), None, "{bad}");
        }
        assert!(parse_lake_start("1970-01-01").is_some());
    }

    #[test]
    fn event_time_range_from_settings() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(EventTimeRange::from_lookup(env(&[])), Ok(EventTimeRange::default()));
        let r =
            EventTimeRange::from_lookup(env(&[("SLUICE_LAKE_START", "2021-06-01"), ("SLUICE_MAX_FUTURE_SECS", "60")]))
                .unwrap();
        assert_eq!((r.lake_start.to_string().as_str(), r.max_future.num_seconds()), ("2021-06-01", 60));
        assert!(EventTimeRange::from_lookup(env(&[("SLUICE_LAKE_START", "0000-01-01")])).is_err());
        assert!(EventTimeRange::from_lookup(env(&[("SLUICE_MAX_FUTURE_SECS", "-1")])).is_err());
    }

    #[test]
    fn event_time_range_bounds_are_inclusive() {
        let r = EventTimeRange::default();
        let received = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").unwrap().with_timezone(&Utc);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        for (t, ok) in [
            ("2000-01-01T00:00:00Z", true),
            ("1999-12-31T23:59:59.999999Z", false),
            ("0000-01-01T00:00:00Z", false),
            ("2024-05-01T12:05:00Z", true),
            ("2024-05-01T12:05:00.000001Z", false),
        ] {
            assert_eq!(r.contains(at(t), received), ok, "{t}");
            assert_eq!(r.bounds().contains(at(t).timestamp_micros(), received.timestamp_micros()), ok, "{t}");
        }
        assert_eq!(
            r.violation(received),
            "must be between 2000-01-01T00:00:00Z (the lake's first day) and 2024-05-01T12:05:00Z \
             (received_at + 300s), inclusive"
        );
    }

    #[test]
    fn occurred_at_is_utc_micros() {
        let t = parse_occurred_at("2024-05-01T14:00:00.123456789+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-01T12:00:00.123456+00:00");
        assert!(parse_occurred_at("2024-05-01T14:00:00").is_none());
        assert!(parse_occurred_at("yesterday").is_none());
    }
}
