//! Compacting partitions through the lake (I/O around [`super::rows`]).

use arrow::array::RecordBatch;
use chrono::{DateTime, Utc};
use sluice_lake::layout::{CompactedFileName, LayoutError, Partition};
use sluice_lake::{Lake, LakeError, LakeFile};
use sluice_sinks::LakeTables;
use sluice_sinks::encode::{EncodeError, encode_parquet};

use super::CompactionConfig;
use super::plan::{CompactionTask, plan};
use super::rows::{self, RowsError};

/// One step of a partition's compaction, in the order they run: read every input, write every
/// output, delete every input (each names a path relative to the lake root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Read(String),
    Write(String),
    Delete(String),
}

/// What compacting one partition did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOutcome {
    pub partition: Partition,
    /// Input files (deleted) and their bytes and rows.
    pub inputs: usize,
    pub bytes_in: u64,
    pub rows_in: usize,
    /// Output files (paths relative to the lake root), their bytes and rows.
    pub outputs: Vec<String>,
    pub bytes_out: u64,
    pub rows_out: usize,
}

/// What a compaction run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// One per compacted partition, in partition order.
    pub partitions: Vec<PartitionOutcome>,
}

impl CompactionReport {
    /// Duplicate rows removed.
    pub fn duplicates_removed(&self) -> usize {
        self.partitions.iter().map(|p| p.rows_in - p.rows_out).sum()
    }
}

/// Why a compaction stopped. Nothing is lost either way: inputs are deleted only after every
/// output is written, and the partition stays eligible until a run completes.
#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// The generation is not a valid file name part.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{path}: {source}")]
    Rows {
        path: String,
        #[source]
        source: RowsError,
    },
    #[error("{partition}: {source}")]
    Encode {
        partition: String,
        #[source]
        source: EncodeError,
    },
    #[error("{partition}: event type {event_type:?} is not in the schema registry")]
    UnknownEventType { partition: String, event_type: String },
    #[error(
        "{partition}: its rows need about {needed} bytes in memory, more than the memory budget of {budget} \
         bytes (raise --memory-budget; compaction in bounded memory by sorted runs is not built yet)"
    )]
    OverBudget { partition: String, needed: u64, budget: u64 },
    /// The `before` hook of [`Compactor::compact_with`] stopped the run (crash injection).
    #[error("interrupted before {0:?}")]
    Interrupted(Step),
}

/// Compacts the lake's partitions (see the module docs of [`super`]).
#[derive(Debug, Clone)]
pub struct Compactor {
    lake: Lake,
    tables: LakeTables,
    config: CompactionConfig,
}

impl Compactor {
    /// A compactor of `lake`, whose tables are `tables`'.
    pub fn new(lake: Lake, tables: LakeTables, config: CompactionConfig) -> Self {
        Self { lake, tables, config }
    }

    /// The partitions to compact at `now` (only `event_type`'s, if given).
    pub async fn plan(
        &self,
        event_type: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<CompactionTask>, CompactionError> {
        let files = self.lake.list_files(event_type).await?;
        Ok(plan(files, now, self.config.allowed_lateness))
    }

    /// Plans at `now` and compacts every planned partition in order; `done` sees each outcome.
    /// Stops at the first failure (the partitions before it are done; the rest stay eligible).
    pub async fn run(
        &self,
        event_type: Option<&str>,
        now: DateTime<Utc>,
        mut done: impl FnMut(&PartitionOutcome, usize, usize),
    ) -> Result<CompactionReport, CompactionError> {
        let tasks = self.plan(event_type, now).await?;
        let mut report = CompactionReport::default();
        for (i, task) in tasks.iter().enumerate() {
            let outcome = self.compact(task).await?;
            done(&outcome, i + 1, tasks.len());
            report.partitions.push(outcome);
        }
        Ok(report)
    }

    /// Compacts one partition under a new generation.
    pub async fn compact(&self, task: &CompactionTask) -> Result<PartitionOutcome, CompactionError> {
        let generation = ulid::Ulid::new().to_string().to_ascii_lowercase();
        self.compact_with(task, &generation, |_| true).await
    }

    /// [`Compactor::compact`] with outputs of `generation`, asking `before(step)` before every
    /// step: `false` stops there with [`CompactionError::Interrupted`], leaving the lake as a
    /// crash at that point would (tests inject crashes this way).
    pub async fn compact_with(
        &self,
        task: &CompactionTask,
        generation: &str,
        mut before: impl FnMut(&Step) -> bool,
    ) -> Result<PartitionOutcome, CompactionError> {
        let partition = task.partition.dir();
        let event_type = &task.partition.event_type;
        let unknown =
            || CompactionError::UnknownEventType { partition: partition.clone(), event_type: event_type.clone() };
        let schema = self.tables.schema(event_type).ok_or_else(unknown)?.clone();
        let dimensions = self.tables.dimensions(event_type).ok_or_else(unknown)?;
        CompactedFileName::new(generation, 0)?;
        let mut step = |s: Step| if before(&s) { Ok(()) } else { Err(CompactionError::Interrupted(s)) };

        let bytes_in = task.input_bytes();
        let over_budget = |needed: u64| CompactionError::OverBudget {
            partition: partition.clone(),
            needed,
            budget: self.config.memory_budget,
        };
        if bytes_in > self.config.memory_budget {
            return Err(over_budget(bytes_in));
        }
        let mut batches: Vec<RecordBatch> = Vec::new();
        let mut in_memory = 0u64;
        for input in &task.inputs {
            let path = relative(input);
            step(Step::Read(path.clone()))?;
            for batch in self.lake.read_parquet(&path).await? {
                let batch = rows::conform(&batch, &schema)
                    .map_err(|source| CompactionError::Rows { path: path.clone(), source })?;
                in_memory += batch.get_array_memory_size() as u64;
                batches.push(batch);
            }
            // Sorting copies the rows twice (concatenated, then taken in order).
            if in_memory.saturating_mul(3) > self.config.memory_budget {
                return Err(over_budget(in_memory.saturating_mul(3)));
            }
        }
        let rows_in: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let sorted = rows::dedupe_and_sort(&schema, &batches)
            .map_err(|source| CompactionError::Rows { path: partition.clone(), source })?;
        drop(batches);

        let per_file = rows::rows_per_file(bytes_in, rows_in, self.config.target_size);
        let metadata =
            [("sluice.event_type", event_type.clone()), ("sluice.compaction_generation", generation.to_owned())];
        let mut outputs = Vec::new();
        let mut bytes_out = 0u64;
        let mut offset = 0;
        let mut part = 0u32;
        while offset < sorted.num_rows() {
            let len = per_file.min(sorted.num_rows() - offset);
            let chunk = sorted.slice(offset, len);
            let name = CompactedFileName::new(generation, part)?;
            let path = task.partition.file_path(&name.to_string());
            let bytes = encode_parquet(&schema, &[chunk], &metadata, dimensions)
                .map_err(|source| CompactionError::Encode { partition: partition.clone(), source })?;
            step(Step::Write(path.clone()))?;
            bytes_out += bytes.len() as u64;
            self.lake.put(&path, bytes).await?;
            outputs.push(path);
            offset += len;
            part += 1;
        }
        for input in &task.inputs {
            let path = relative(input);
            if outputs.contains(&path) {
                continue;
            }
            step(Step::Delete(path.clone()))?;
            self.lake.delete(&path).await?;
        }
        tracing::info!(
            partition = %partition,
            inputs = task.inputs.len(),
            rows_in,
            rows_out = sorted.num_rows(),
            outputs = outputs.len(),
            bytes_in,
            bytes_out,
            "partition compacted"
        );
        Ok(PartitionOutcome {
            partition: task.partition.clone(),
            inputs: task.inputs.len(),
            bytes_in,
            rows_in,
            outputs,
            bytes_out,
            rows_out: sorted.num_rows(),
        })
    }
}

/// A data file's path relative to the lake root.
fn relative(file: &LakeFile) -> String {
    file.path.partition.file_path(&file.path.file_name)
}
