//! Tumbling event-time windows and lateness.

use std::fmt;
use std::str::FromStr;

use chrono::TimeDelta;
use sluice_schemas::Instant;

/// A tumbling window length in whole seconds (> 0), aligned to the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowSize(u32);

/// One minute.
pub const MINUTE: WindowSize = WindowSize(60);
/// One hour.
pub const HOUR: WindowSize = WindowSize(3600);

/// A window label that is not `<n>s|m|h|d` with n > 0 (and at most 366 days).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a window: use <n>s, <n>m, <n>h or <n>d, e.g. 1m or 1h")]
pub struct BadWindow(pub String);

impl WindowSize {
    /// A window of `secs` seconds; `None` for 0.
    pub fn from_secs(secs: u32) -> Option<WindowSize> {
        (secs > 0).then_some(WindowSize(secs))
    }

    /// Length in seconds.
    pub fn secs(self) -> u32 {
        self.0
    }

    /// Start (Unix seconds) of the window holding `t`.
    pub fn start_of(self, t: Instant) -> i64 {
        let s = i64::from(self.0);
        t.secs.div_euclid(s) * s
    }
}

impl fmt::Display for WindowSize {
    /// The canonical label: the largest unit that divides the length (`90s`, `1m`, `1h`, `1d`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s.is_multiple_of(86_400) {
            write!(f, "{}d", s / 86_400)
        } else if s.is_multiple_of(3600) {
            write!(f, "{}h", s / 3600)
        } else if s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl FromStr for WindowSize {
    type Err = BadWindow;
    fn from_str(label: &str) -> Result<Self, BadWindow> {
        let bad = || BadWindow(label.to_owned());
        let unit = label.chars().last().ok_or_else(bad)?;
        let digits = &label[..label.len() - unit.len_utf8()];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let mult = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let secs = n.checked_mul(mult).filter(|s| *s <= 366 * 86_400).ok_or_else(bad)?;
        u32::try_from(secs).ok().and_then(WindowSize::from_secs).ok_or_else(bad)
    }
}

/// How the aggregator windows events. Built once at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowConfig {
    /// Window sizes every event is aggregated into (default 1m and 1h), distinct, sorted.
    pub windows: Vec<WindowSize>,
    /// An event is late for a window when it was received (`received_at`) after
    /// `window end + allowed_lateness`. Default 5 minutes.
    pub allowed_lateness: TimeDelta,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig { windows: vec![MINUTE, HOUR], allowed_lateness: TimeDelta::minutes(5) }
    }
}

impl WindowConfig {
    /// A config with the given windows (deduplicated and sorted) and lateness.
    pub fn new(mut windows: Vec<WindowSize>, allowed_lateness: TimeDelta) -> Self {
        windows.sort();
        windows.dedup();
        WindowConfig { windows, allowed_lateness }
    }

    /// Whether an event that occurred at `occurred_at` and was received at `received_at` is late
    /// for its window of size `w`: `received_at > window_start + w + allowed_lateness`.
    pub fn is_late(&self, w: WindowSize, occurred_at: Instant, received_at: Instant) -> bool {
        let end_micros = (w.start_of(occurred_at) + i64::from(w.secs())).saturating_mul(1_000_000);
        let deadline = end_micros.saturating_add(self.allowed_lateness.num_microseconds().unwrap_or(i64::MAX));
        received_at.micros() > deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Instant {
        Instant::from_datetime(chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc))
    }

    #[test]
    fn labels_roundtrip() {
        for (label, secs) in [("1m", 60), ("1h", 3600), ("90s", 90), ("1d", 86_400), ("15m", 900)] {
            let w: WindowSize = label.parse().unwrap();
            assert_eq!(w.secs(), secs);
            assert_eq!(w.to_string(), label);
        }
        assert_eq!("60m".parse::<WindowSize>().unwrap().to_string(), "1h");
        for bad in ["", "m", "0m", "1x", "-1m", "1.5h", "400d", "1 m", "99999999999999999999s"] {
            assert!(bad.parse::<WindowSize>().is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_align_to_epoch_also_before_it() {
        assert_eq!(MINUTE.start_of(t("2024-05-01T12:00:59.999Z")), 1_714_564_800);
        assert_eq!(HOUR.start_of(t("2024-05-01T12:59:59Z")), 1_714_564_800);
        assert_eq!(MINUTE.start_of(t("1969-12-31T23:59:30Z")), -60);
    }

    #[test]
    fn lateness_is_relative_to_window_end() {
        let c = WindowConfig::default();
        let occurred = t("2024-05-01T12:00:10Z");
        // 1m window ends 12:01:00, deadline 12:06:00.
        assert!(!c.is_late(MINUTE, occurred, t("2024-05-01T12:06:00Z")));
        assert!(c.is_late(MINUTE, occurred, t("2024-05-01T12:06:00.000001Z")));
        assert!(!c.is_late(HOUR, occurred, t("2024-05-01T12:06:00.000001Z")));
    }
}
