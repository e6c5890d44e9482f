//! Which windows a backfill recomputes, grouped into items by the lake partitions they read
//! (pure).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_aggregators::WindowSize;
use sluice_lake::layout::Partition;

/// Seconds in a lake partition (an hour).
const HOUR: i64 = 3600;

/// What to backfill: every window of every configured size that overlaps `[from, to)`, of the
/// event types named (all when `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillRequest {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
}

impl BackfillRequest {
    /// A name for the request, the same for the same range and types: its finished items are
    /// recorded under it, so a rerun after a crash resumes.
    pub fn id(&self) -> String {
        let types = match &self.event_types {
            None => "all".to_owned(),
            Some(t) => {
                let mut t = t.clone();
                t.sort();
                t.dedup();
                t.join(".")
            }
        };
        format!("{}-{}-{types}", self.from.format("%Y%m%dT%H%M%SZ"), self.to.format("%Y%m%dT%H%M%SZ"))
    }
}

/// One unit of backfill work: the windows of one event type that read exactly the lake
/// partitions of the hours in `[start, end)` (one hour for windows up to an hour that do not
/// straddle one; the window's hours for the others). Small and serializable: a Step Functions
/// map item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BackfillItem {
    /// [`BackfillRequest::id`] of the request it belongs to.
    pub request: String,
    pub event_type: String,
    /// Hour-aligned span read, Unix seconds.
    pub start: i64,
    pub end: i64,
    /// The windows recomputed: (size label, start in Unix seconds).
    pub windows: Vec<(String, i64)>,
}

impl BackfillItem {
    /// Its name among the request's items.
    pub fn id(&self) -> String {
        format!("{}-{}-{}", self.event_type, self.start, self.end)
    }
}

/// The items of `request` over `sizes`, for the event types and hours the lake has partitions
/// of (`partitions`; a span with no lake data has nothing to recompute from). Sorted; items named
/// in `done` are left out.
pub fn plan(
    request: &BackfillRequest,
    sizes: &[WindowSize],
    partitions: &BTreeSet<Partition>,
    done: &BTreeSet<String>,
) -> Vec<BackfillItem> {
    let (from, to) = (request.from.timestamp(), request.to.timestamp());
    let mut hours: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for p in partitions {
        if request.event_types.as_ref().is_none_or(|t| t.contains(&p.event_type)) {
            let hour = p.dt.and_hms_opt(u32::from(p.hour), 0, 0).map(|t| t.and_utc().timestamp());
            if let Some(hour) = hour {
                hours.entry(p.event_type.as_str()).or_default().insert(hour);
            }
        }
    }
    let mut items: BTreeMap<(String, i64, i64), Vec<(String, i64)>> = BTreeMap::new();
    for (event_type, held) in hours {
        for &size in sizes {
            let secs = i64::from(size.secs());
            let mut start = from.div_euclid(secs) * secs;
            while start < to {
                let span = (start.div_euclid(HOUR) * HOUR, (start + secs + HOUR - 1).div_euclid(HOUR) * HOUR);
                if held.range(span.0..span.1).next().is_some() {
                    items.entry((event_type.to_owned(), span.0, span.1)).or_default().push((size.to_string(), start));
                }
                start += secs;
            }
        }
    }
    let request_id = request.id();
    items
        .into_iter()
        .map(|((event_type, start, end), windows)| BackfillItem {
            request: request_id.clone(),
            event_type,
            start,
            end,
            windows,
        })
        .filter(|item| !done.contains(&item.id()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(2026, 12, 2).unwrap().and_hms_opt(h, m, 0).unwrap().and_utc()
    }

    fn partition(event_type: &str, hour: u8) -> Partition {
        Partition { event_type: event_type.into(), dt: NaiveDate::from_ymd_opt(2026, 12, 2).unwrap(), hour }
    }

    fn sizes(labels: &[&str]) -> Vec<WindowSize> {
        labels.iter().map(|l| l.parse().unwrap()).collect()
    }

    #[test]
    fn windows_up_to_an_hour_group_by_hour_and_larger_ones_read_their_hours() {
        let partitions: BTreeSet<Partition> = [partition("a", 10), partition("a", 11), partition("b", 3)].into();
        let request = BackfillRequest { from: t(10, 0), to: t(12, 0), event_types: None };
        let items = plan(&request, &sizes(&["1m", "1h", "1d", "7m"]), &partitions, &BTreeSet::new());
        let hour10 = t(10, 0).timestamp();
        let day = t(0, 0).timestamp();
        let spans: Vec<(&str, i64, i64, usize)> =
            items.iter().map(|i| (i.event_type.as_str(), i.start, i.end, i.windows.len())).collect();
        // b has data only at 03:00, which the 1d window reads.
        assert!(spans.contains(&("b", day, day + 86_400, 1)));
        assert!(spans.contains(&("a", day, day + 86_400, 1)));
        // 10:00: 60 minutes, the hour, and the 7-minute windows inside it (10:03 .. 10:52 start).
        let ten = items.iter().find(|i| i.event_type == "a" && i.start == hour10 && i.end == hour10 + 3600).unwrap();
        assert_eq!(ten.windows.iter().filter(|w| w.0 == "1m").count(), 60);
        assert_eq!(ten.windows.iter().filter(|w| w.0 == "1h").count(), 1);
        assert!(ten.windows.iter().filter(|w| w.0 == "7m").all(|w| w.1 >= hour10 && w.1 + 420 <= hour10 + 3600));
        // A 7-minute window across 11:00 reads both hours.
        assert!(spans.iter().any(|s| s.0 == "a" && s.1 == hour10 && s.2 == hour10 + 7200));
        // No item for hours without data: b has no minute windows in 10:00-12:00.
        assert!(!items.iter().any(|i| i.event_type == "b" && i.windows.iter().any(|w| w.0 == "1m")));
    }

    #[test]
    fn types_filter_and_done_items_are_left_out() {
        let partitions: BTreeSet<Partition> = [partition("a", 10), partition("b", 10)].into();
        let request = BackfillRequest { from: t(10, 0), to: t(11, 0), event_types: Some(vec!["b".into()]) };
        let items = plan(&request, &sizes(&["1m", "1h"]), &partitions, &BTreeSet::new());
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].event_type, "b");
        assert_eq!(items[0].windows.len(), 61);
        assert_eq!(items[0].request, "20261202T100000Z-20261202T110000Z-b");
        let done: BTreeSet<String> = [items[0].id()].into();
        assert!(plan(&request, &sizes(&["1m", "1h"]), &partitions, &done).is_empty());
    }

    #[test]
    fn a_range_inside_a_window_still_recomputes_the_whole_window() {
        let partitions: BTreeSet<Partition> = [partition("a", 10)].into();
        let request = BackfillRequest { from: t(10, 30), to: t(10, 31), event_types: None };
        let items = plan(&request, &sizes(&["1m", "1h"]), &partitions, &BTreeSet::new());
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].windows,
            vec![("1m".to_owned(), t(10, 30).timestamp()), ("1h".into(), t(10, 0).timestamp())]
        );
    }
}
