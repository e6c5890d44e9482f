//! Lake compaction: a closed partition's many small files (one per delivered batch, plus the
//! duplicates redeliveries and producer retries leave) become files of a target size holding one
//! row per `event_id`, sorted by `occurred_at`, in the lake writer's column layouts.
//!
//! - [`plan`] (pure): which partitions to compact, from a listing of the lake.
//! - [`rows`] (pure): conform, deduplicate and sort a partition's rows.
//! - [`run`] (I/O): compact one partition, or everything the plan names, through
//!   `sluice_lake::Lake`.
//! - [`spill`] (I/O): sorted runs in the lake's scratch prefix and their k-way merge, for a
//!   partition larger than the memory budget.
//!
//! **Crash safety** is an order of operations, with the outputs' names as the marker: a run
//! reads every input, writes all its outputs (`compacted-<generation>-<part>.parquet`, one new
//! generation per run), and only then deletes the inputs. A partition is clean when all its
//! files are compacted files of one generation; anything else (a lake writer's file, or two
//! generations) makes it eligible again. So a crash at any point leaves every row in some file
//! (never a lost row); what it can leave is a duplicate window (outputs written, some inputs not
//! yet deleted), which keeps the partition eligible, and the next run's deduplication clears it.

pub mod plan;
pub mod rows;
pub mod run;
pub mod spill;

use chrono::TimeDelta;

pub use plan::{CompactionTask, plan};
pub use run::{CompactionError, CompactionReport, Compactor, PartitionOutcome, Step};

/// Default target size of a compacted file: Athena's guidance and AWS's managed compactors aim
/// at 128-512 MiB.
pub const DEFAULT_TARGET_SIZE: u64 = 256 * 1024 * 1024;
/// Default memory budget of one partition's compaction.
pub const DEFAULT_MEMORY_BUDGET: u64 = 1024 * 1024 * 1024;

/// Settings of a compaction run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionConfig {
    /// A partition is closed (compactable) once its hour ended more than this long ago: the
    /// aggregator's allowed lateness, after which late events are rare.
    pub allowed_lateness: TimeDelta,
    /// Bytes per output file to aim at (estimated from the inputs' bytes per row).
    pub target_size: u64,
    /// The most memory one partition's compaction may take: a larger partition is compacted by
    /// sorted runs spilled to the lake's scratch prefix; only a single input file over half of
    /// it is refused, with a clear error.
    pub memory_budget: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            allowed_lateness: TimeDelta::minutes(5),
            target_size: DEFAULT_TARGET_SIZE,
            memory_budget: DEFAULT_MEMORY_BUDGET,
        }
    }
}
