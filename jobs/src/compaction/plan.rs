//! Which partitions to compact (pure: a listing and the time in, tasks out).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use sluice_lake::LakeFile;
use sluice_lake::layout::Partition;

/// One partition to compact and the files it holds now (its inputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionTask {
    pub partition: Partition,
    /// Every data file of the partition at planning time, sorted by name.
    pub inputs: Vec<LakeFile>,
}

impl CompactionTask {
    /// Bytes of all inputs.
    pub fn input_bytes(&self) -> u64 {
        self.inputs.iter().map(|f| f.size).sum()
    }
}

/// The partitions of `files` to compact at `now`: closed ones (the hour ended at least
/// `allowed_lateness` before `now`) that are not clean. Clean means every file is a compacted
/// file of one generation; a lake writer's file (new, late or redelivered) or a second
/// generation (an interrupted compaction) makes a partition eligible. In partition order.
pub fn plan(files: Vec<LakeFile>, now: DateTime<Utc>, allowed_lateness: TimeDelta) -> Vec<CompactionTask> {
    let mut partitions: BTreeMap<Partition, Vec<LakeFile>> = BTreeMap::new();
    for file in files {
        partitions.entry(file.path.partition.clone()).or_default().push(file);
    }
    partitions
        .into_iter()
        .filter(|(partition, files)| is_closed(partition, now, allowed_lateness) && !is_clean(files))
        .map(|(partition, mut inputs)| {
            inputs.sort();
            CompactionTask { partition, inputs }
        })
        .collect()
}

/// Whether `partition`'s hour ended at least `allowed_lateness` before `now`.
pub fn is_closed(partition: &Partition, now: DateTime<Utc>, allowed_lateness: TimeDelta) -> bool {
    let Some(start) = partition.dt.and_hms_opt(u32::from(partition.hour), 0, 0) else {
        return false;
    };
    let closes = start.and_utc() + TimeDelta::hours(1) + allowed_lateness;
    closes <= now
}

/// Whether `files` (one partition's) are all compacted files of one generation.
pub fn is_clean(files: &[LakeFile]) -> bool {
    let mut generations = files.iter().map(|f| f.path.compacted_file().map(|c| c.generation));
    match generations.next() {
        Some(Some(first)) => generations.all(|g| g.as_ref() == Some(&first)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_lake::layout::parse_data_path;

    fn file(hour: u8, name: &str) -> LakeFile {
        let path =
            parse_data_path(&format!("events/event_type=page_view/dt=2024-05-01/hour={hour:02}/{name}")).unwrap();
        LakeFile { location: format!("lake/{}", path.partition.file_path(name)), path, size: 100 }
    }

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2024, 5, 1).unwrap().and_hms_opt(hour, minute, 0).unwrap().and_utc()
    }

    const LATE: TimeDelta = TimeDelta::minutes(5);
    const BATCH: &str = "shardId-000000000000-1-9.parquet";
    const BATCH2: &str = "shardId-000000000000-10-19.parquet";
    const GEN_A: &str = "compacted-a-00000.parquet";
    const GEN_A1: &str = "compacted-a-00001.parquet";
    const GEN_B: &str = "compacted-b-00000.parquet";

    fn planned(files: Vec<LakeFile>, now: DateTime<Utc>) -> Vec<(u8, Vec<String>)> {
        plan(files, now, LATE)
            .into_iter()
            .map(|t| (t.partition.hour, t.inputs.into_iter().map(|f| f.path.file_name).collect()))
            .collect()
    }

    #[test]
    fn an_hour_closes_after_the_allowed_lateness() {
        let p = file(10, BATCH).path.partition;
        assert!(!is_closed(&p, at(11, 4), LATE));
        assert!(is_closed(&p, at(11, 5), LATE));
        assert!(planned(vec![file(10, BATCH)], at(11, 4)).is_empty(), "open hours are left alone");
    }

    #[test]
    fn what_is_eligible() {
        let now = at(20, 0);
        let cases: &[(&[&str], bool)] = &[
            (&[BATCH], true),
            (&[BATCH, BATCH2], true),
            (&[GEN_A], false),
            (&[GEN_A, GEN_A1], false),
            (&[GEN_A, BATCH], true),
            (&[GEN_A, GEN_B], true),
            (&["other.parquet"], true),
        ];
        for (names, eligible) in cases {
            let files: Vec<LakeFile> = names.iter().map(|n| file(10, n)).collect();
            let got = planned(files, now);
            assert_eq!(!got.is_empty(), *eligible, "{names:?}");
            if *eligible {
                assert_eq!(got[0].1.len(), names.len(), "every file of the partition is an input: {names:?}");
            }
        }
    }

    #[test]
    fn partitions_are_planned_separately_in_order() {
        let files = vec![file(12, BATCH), file(9, GEN_A), file(10, BATCH), file(10, BATCH2), file(19, BATCH)];
        let got = planned(files, at(19, 30));
        assert_eq!(got.iter().map(|(h, _)| *h).collect::<Vec<_>>(), [10, 12]);
    }
}
