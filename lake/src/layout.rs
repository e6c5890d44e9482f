//! The lake layout: where a Parquet file lives and what its path says (pure, no I/O). The one
//! definition of it: the writer names files with it, the query engine and Athena derive table
//! locations from [`table_dir`], compaction lists and parses partitions with [`parse_data_path`].
//!
//! ```text
//! <lake>/events/event_type=<t>/dt=YYYY-MM-DD/hour=HH/<file>.parquet
//! ```
//! Paths here are relative to the lake root (the `object_store` prefix of the lake URL). Files the
//! lake writer produces are named `<shard>-<first seq>-<last seq>.parquet` ([`BatchFileName`]):
//! the same records from the same shard always get the same name, so a retried write replaces its
//! own file instead of adding one. Compaction names its outputs
//! `compacted-<generation>-<part>.parquet` ([`CompactedFileName`]); [`parse_data_path`] accepts
//! any `*.parquet` name in a partition directory, so every reader sees every data file.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use sluice_bytescan::all_digits;

/// The directory under the lake root holding every event table.
pub const EVENTS_DIR: &str = "events";
/// The directory under the lake root where jobs keep scratch files (compaction's spilled runs):
/// outside [`EVENTS_DIR`], so no table, query or listing of data files sees them.
pub const SCRATCH_DIR: &str = "_sluice/scratch";
/// The directory under the lake root where the lake writer records, per shard, what the lake is
/// complete through ([`ShardProgress`]).
pub const PROGRESS_DIR: &str = "_sluice/progress";
/// Hive partition column names, in path order.
pub const PARTITION_COLUMNS: &[&str] = &["event_type", "dt", "hour"];
/// Extension of every data file.
pub const PARQUET_EXTENSION: &str = ".parquet";

/// Why a path or name is not part of the lake layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The path is not `events/event_type=<t>/dt=YYYY-MM-DD/hour=HH/<name>.parquet`; the caller
    /// skips it (it is not a data file, e.g. a temporary upload or a marker).
    #[error("{path:?} is not a lake data file path: {reason}")]
    NotADataPath { path: String, reason: &'static str },
    /// An event type or shard id that cannot be written into a path segment.
    #[error("{value:?} cannot be used in a lake path: {reason}")]
    InvalidSegment { value: String, reason: &'static str },
}

/// One Hive partition: `(event_type, dt, hour)` of `occurred_at` in UTC.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    /// A registered event type (lowercase snake_case, validated by the registry).
    pub event_type: String,
    /// UTC date of `occurred_at`.
    pub dt: NaiveDate,
    /// UTC hour of `occurred_at`, 0..=23.
    pub hour: u8,
}

impl Partition {
    /// The partition an event with `occurred_at` belongs to.
    pub fn of(event_type: &str, occurred_at: DateTime<Utc>) -> Self {
        Self {
            event_type: event_type.to_owned(),
            dt: occurred_at.date_naive(),
            // `hour()` is 0..=23, so the cast never truncates.
            hour: occurred_at.hour() as u8,
        }
    }

    /// The `(dt, hour)` of `occurred_at` without building a [`Partition`] (no allocation).
    pub fn of_parts(occurred_at: DateTime<Utc>) -> (NaiveDate, u8) {
        // `hour()` is 0..=23, so the cast never truncates.
        (occurred_at.date_naive(), occurred_at.hour() as u8)
    }

    /// `events/event_type=<t>/dt=YYYY-MM-DD/hour=HH` (no trailing slash).
    pub fn dir(&self) -> String {
        format!(
            "{EVENTS_DIR}/event_type={}/dt={:04}-{:02}-{:02}/hour={:02}",
            self.event_type,
            self.dt.year(),
            self.dt.month(),
            self.dt.day(),
            self.hour
        )
    }

    /// `dt` as written in paths, `YYYY-MM-DD`.
    pub fn dt_string(&self) -> String {
        self.dt.format("%Y-%m-%d").to_string()
    }

    /// `<dir>/<file_name>`: the path of a data file in this partition.
    pub fn file_path(&self, file_name: &str) -> String {
        format!("{}/{file_name}", self.dir())
    }
}

/// The directory of one event type's table: `events/event_type=<t>`.
pub fn table_dir(event_type: &str) -> String {
    format!("{EVENTS_DIR}/event_type={event_type}")
}

/// The lake writer's progress on one shard: every record of the shard with a sequence number at
/// or below `through` is in the lake, or was dead-lettered, or was set aside by the trigger (the
/// failure destination). Written at `<PROGRESS_DIR>/<shard>` after a batch is written whole, so
/// it only rises while the shard has one writer at a time (one concurrent batch per shard, as
/// the trigger runs it); a missing or stale marker only makes it lower than the truth, which is
/// safe for its reader, the backfill of aggregates. The object holds `through` in decimal
/// digits and a newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardProgress {
    pub shard_id: String,
    /// A sequence number (decimal digits).
    pub through: String,
}

impl ShardProgress {
    /// A marker; rejects a shard id or sequence number a lake path cannot hold.
    pub fn new(shard_id: &str, through: &str) -> Result<Self, LayoutError> {
        check_shard_id(shard_id)?;
        check_sequence(through)?;
        Ok(Self { shard_id: shard_id.to_owned(), through: through.to_owned() })
    }

    /// Where it lives, relative to the lake root.
    pub fn path(&self) -> String {
        format!("{PROGRESS_DIR}/{}", self.shard_id)
    }

    /// The object's bytes.
    pub fn body(&self) -> String {
        format!("{}\n", self.through)
    }

    /// The marker stored at `path` (relative to the lake root) with `body`; `None` for anything
    /// else.
    pub fn parse(path: &str, body: &[u8]) -> Option<Self> {
        let shard = path.strip_prefix(PROGRESS_DIR)?.strip_prefix('/')?;
        let through = std::str::from_utf8(body).ok()?.strip_suffix('\n')?;
        Self::new(shard, through).ok()
    }
}

/// The deterministic name of a file the lake writer produced from one shard's records with
/// sequence numbers `first..=last` (Kinesis sequence numbers: decimal digits, up to 56 digits).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchFileName {
    /// The shard id, e.g. `shardId-000000000000` (letters, digits, `-`, `_`, `.`).
    pub shard_id: String,
    /// Sequence number of the file's first row.
    pub first_sequence: String,
    /// Sequence number of the file's last row.
    pub last_sequence: String,
}

impl BatchFileName {
    /// Builds a name; rejects shard ids and sequence numbers that would not parse back.
    pub fn new(shard_id: &str, first_sequence: &str, last_sequence: &str) -> Result<Self, LayoutError> {
        check_shard_id(shard_id)?;
        check_sequence(first_sequence)?;
        check_sequence(last_sequence)?;
        Ok(Self {
            shard_id: shard_id.to_owned(),
            first_sequence: first_sequence.to_owned(),
            last_sequence: last_sequence.to_owned(),
        })
    }

    /// Parses `<shard>-<first>-<last>.parquet`; `None` for any other name (e.g. compaction output).
    pub fn parse(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(PARQUET_EXTENSION)?;
        let (rest, last) = stem.rsplit_once('-')?;
        let (shard, first) = rest.rsplit_once('-')?;
        Self::new(shard, first, last).ok()
    }
}

impl fmt::Display for BatchFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}{PARQUET_EXTENSION}", self.shard_id, self.first_sequence, self.last_sequence)
    }
}

/// The name of a file compaction wrote: `compacted-<generation>-<part>.parquet`. The outputs of
/// one compaction of a partition share a generation (1-32 lowercase letters and digits; the jobs
/// use a ULID, so a later compaction's generation sorts later), `part` numbers them from 0.
/// A partition is clean (nothing to compact) when all its files are compacted files of one
/// generation: a lake writer's file, or a second generation left by an interrupted compaction,
/// makes it eligible again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CompactedFileName {
    pub generation: String,
    pub part: u32,
}

impl CompactedFileName {
    /// The prefix of every compacted file name.
    pub const PREFIX: &'static str = "compacted-";

    /// Builds a name; rejects a generation that would not parse back.
    pub fn new(generation: &str, part: u32) -> Result<Self, LayoutError> {
        let ok = (1..=32).contains(&generation.len())
            && generation.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok {
            return Err(LayoutError::InvalidSegment {
                value: generation.to_owned(),
                reason: "compaction generations are 1-32 lowercase letters and digits",
            });
        }
        Ok(Self { generation: generation.to_owned(), part })
    }

    /// Parses `compacted-<generation>-<part>.parquet`; `None` for any other name.
    pub fn parse(name: &str) -> Option<Self> {
        let stem = name.strip_prefix(Self::PREFIX)?.strip_suffix(PARQUET_EXTENSION)?;
        let (generation, part) = stem.split_once('-')?;
        if part.is_empty() || !all_digits(part.as_bytes()) {
            return None;
        }
        Self::new(generation, part.parse().ok()?).ok()
    }
}

impl fmt::Display for CompactedFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}-{:05}{PARQUET_EXTENSION}", Self::PREFIX, self.generation, self.part)
    }
}

/// A data file path split into its partition and file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DataPath {
    pub partition: Partition,
    /// The last path segment, ending in `.parquet`.
    pub file_name: String,
}

impl DataPath {
    /// The writer's [`BatchFileName`] if the file has that shape.
    pub fn batch_file(&self) -> Option<BatchFileName> {
        BatchFileName::parse(&self.file_name)
    }

    /// The [`CompactedFileName`] if compaction wrote the file.
    pub fn compacted_file(&self) -> Option<CompactedFileName> {
        CompactedFileName::parse(&self.file_name)
    }
}

/// Parses `events/event_type=<t>/dt=YYYY-MM-DD/hour=HH/<name>.parquet` (relative to the lake
/// root; a leading `/` is ignored). Inverse of [`Partition::file_path`].
pub fn parse_data_path(path: &str) -> Result<DataPath, LayoutError> {
    let not = |reason| LayoutError::NotADataPath { path: path.to_owned(), reason };
    let mut parts = path.trim_start_matches('/').split('/');
    if parts.next() != Some(EVENTS_DIR) {
        return Err(not("does not start with events/"));
    }
    let event_type =
        parts.next().and_then(|s| s.strip_prefix("event_type=")).ok_or_else(|| not("missing event_type=<t>"))?;
    check_event_type(event_type).map_err(|_| not("bad event_type value"))?;
    let dt = parts
        .next()
        .and_then(|s| s.strip_prefix("dt="))
        .filter(|s| s.len() == 10)
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .ok_or_else(|| not("missing or bad dt=YYYY-MM-DD"))?;
    let hour = parts
        .next()
        .and_then(|s| s.strip_prefix("hour="))
        .filter(|s| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u8>().ok())
        .filter(|h| *h < 24)
        .ok_or_else(|| not("missing or bad hour=HH"))?;
    let file_name = parts
        .next()
        .filter(|s| s.len() > PARQUET_EXTENSION.len() && s.ends_with(PARQUET_EXTENSION))
        .ok_or_else(|| not("missing <name>.parquet"))?;
    if parts.next().is_some() {
        return Err(not("too many segments"));
    }
    Ok(DataPath {
        partition: Partition { event_type: event_type.to_owned(), dt, hour },
        file_name: file_name.to_owned(),
    })
}

/// Event types are path segments: lowercase letters, digits and `_` (the registry's rule).
pub fn check_event_type(value: &str) -> Result<(), LayoutError> {
    let ok = !value.is_empty() && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(LayoutError::InvalidSegment {
            value: value.to_owned(),
            reason: "event types are lowercase letters, digits and _",
        })
    }
}

fn check_shard_id(value: &str) -> Result<(), LayoutError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(LayoutError::InvalidSegment {
            value: value.to_owned(),
            reason: "shard ids are 1-128 letters, digits, -, _ and .",
        })
    }
}

/// Whether `value` is a sequence number [`BatchFileName::new`] accepts (1-64 decimal digits),
/// without allocating.
#[inline]
pub fn is_sequence_segment(value: &str) -> bool {
    value.len() <= 64 && all_digits(value.as_bytes())
}

fn check_sequence(value: &str) -> Result<(), LayoutError> {
    if is_sequence_segment(value) {
        Ok(())
    } else {
        Err(LayoutError::InvalidSegment { value: value.to_owned(), reason: "sequence numbers are 1-64 decimal digits" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn partition(t: &str, y: i32, m: u32, d: u32, h: u8) -> Partition {
        Partition { event_type: t.to_owned(), dt: NaiveDate::from_ymd_opt(y, m, d).unwrap(), hour: h }
    }

    #[test]
    fn progress_markers_round_trip_and_reject_what_no_path_holds() {
        let m = ShardProgress::new("shardId-000000000001", "49590338271490256608559692538361571095921575989136588898")
            .unwrap();
        assert_eq!(m.path(), "_sluice/progress/shardId-000000000001");
        assert_eq!(ShardProgress::parse(&m.path(), m.body().as_bytes()), Some(m.clone()));
        assert_eq!(ShardProgress::parse(&m.path(), b"12x\n"), None);
        assert_eq!(ShardProgress::parse(&m.path(), b"12"), None);
        assert_eq!(ShardProgress::parse("_sluice/progress", b"12\n"), None);
        assert_eq!(ShardProgress::parse("events/shardId-1", b"12\n"), None);
        assert!(ShardProgress::new("shard/../x", "1").is_err());
    }

    #[test]
    fn partition_of_uses_utc_date_and_hour() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T00:30:00+02:00").unwrap().with_timezone(&Utc);
        let p = Partition::of("page_view", t);
        assert_eq!(p, partition("page_view", 2024, 4, 30, 22));
        assert_eq!(p.dir(), "events/event_type=page_view/dt=2024-04-30/hour=22");
        assert_eq!(p.dt_string(), "2024-04-30");
    }

    #[test]
    fn compacted_names_parse_back_and_are_not_batch_names() {
        let name = CompactedFileName::new("01jeq5w3c7k9v2m4n6p8r0s1t2", 3).unwrap();
        assert_eq!(name.to_string(), "compacted-01jeq5w3c7k9v2m4n6p8r0s1t2-00003.parquet");
        assert_eq!(CompactedFileName::parse(&name.to_string()), Some(name.clone()));
        assert_eq!(BatchFileName::parse(&name.to_string()), None);
        let path = parse_data_path(&partition("t", 2024, 5, 1, 7).file_path(&name.to_string())).unwrap();
        assert_eq!((path.compacted_file(), path.batch_file()), (Some(name), None));
        for bad in [
            "compacted--00001.parquet",
            "compacted-ABC-00001.parquet",
            "compacted-abc-.parquet",
            "compacted-abc-1x.parquet",
            "compacted-abc.parquet",
            "shardId-000000000000-1-2.parquet",
        ] {
            assert_eq!(CompactedFileName::parse(bad), None, "{bad}");
        }
        assert!(CompactedFileName::new(&"a".repeat(33), 0).is_err());
    }

    #[test]
    fn file_names_are_deterministic_and_parse_back() {
        let name = BatchFileName::new(
            "shardId-000000000001",
            "49590338271490256608559692538361571095921575989136588898",
            "49590338271490256608559692540925702759324208523137515618",
        )
        .unwrap();
        let text = name.to_string();
        assert_eq!(
            text,
            "shardId-000000000001-49590338271490256608559692538361571095921575989136588898-\
             49590338271490256608559692540925702759324208523137515618.parquet"
        );
        assert_eq!(BatchFileName::parse(&text), Some(name));
        for bad in ["part-0.parquet", "shardId-1-2-3.json", "-1-2.parquet", "s-1-x.parquet", "s--2.parquet"] {
            assert_eq!(BatchFileName::parse(bad), None, "{bad}");
        }
        assert!(BatchFileName::new("shard/1", "1", "2").is_err());
        assert!(BatchFileName::new("s", "1a", "2").is_err());
    }

    #[test]
    fn data_paths_table() {
        let ok = [
            (
                "events/event_type=page_view/dt=2024-05-01/hour=07/a.parquet",
                partition("page_view", 2024, 5, 1, 7),
                "a.parquet",
            ),
            (
                "/events/event_type=api_call/dt=1999-12-31/hour=23/s-1-2.parquet",
                partition("api_call", 1999, 12, 31, 23),
                "s-1-2.parquet",
            ),
        ];
        for (path, p, name) in ok {
            let parsed = parse_data_path(path).unwrap();
            assert_eq!(parsed.partition, p, "{path}");
            assert_eq!(parsed.file_name, name, "{path}");
        }
        let bad = [
            "",
            "events",
            "other/event_type=a/dt=2024-05-01/hour=07/a.parquet",
            "events/type=a/dt=2024-05-01/hour=07/a.parquet",
            "events/event_type=A/dt=2024-05-01/hour=07/a.parquet",
            "events/event_type=a/dt=2024-5-1/hour=07/a.parquet",
            "events/event_type=a/dt=2024-02-30/hour=07/a.parquet",
            "events/event_type=a/dt=2024-05-01/hour=24/a.parquet",
            "events/event_type=a/dt=2024-05-01/hour=7/a.parquet",
            "events/event_type=a/dt=2024-05-01/hour=+7/a.parquet",
            "events/event_type=a/dt=2024-05-01/hour=07/a.json",
            "events/event_type=a/dt=2024-05-01/hour=07/.parquet",
            "events/event_type=a/dt=2024-05-01/hour=07/x/a.parquet",
            "events/event_type=a/dt=2024-05-01/hour=07",
        ];
        for path in bad {
            assert!(parse_data_path(path).is_err(), "{path:?} must be rejected");
        }
    }

    proptest! {
        #[test]
        fn path_round_trip(
            t in "[a-z][a-z0-9_]{0,20}",
            days in 0i64..3_652_000,
            hour in 0u8..24,
            shard in "[A-Za-z0-9._-]{1,40}",
            first in "[0-9]{1,56}",
            last in "[0-9]{1,56}",
        ) {
            let dt = NaiveDate::from_ymd_opt(1, 1, 1).unwrap() + chrono::Days::new(days as u64);
            let p = Partition { event_type: t, dt, hour };
            let name = BatchFileName::new(&shard, &first, &last).unwrap();
            let path = p.file_path(&name.to_string());
            let parsed = parse_data_path(&path).unwrap();
            prop_assert_eq!(&parsed.partition, &p);
            prop_assert_eq!(parsed.batch_file(), Some(name));
        }

        #[test]
        fn parse_never_panics(path in ".{0,120}") {
            let _ = parse_data_path(&path);
            let _ = BatchFileName::parse(&path);
        }
    }
}
