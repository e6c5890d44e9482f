//! Compacting partitions through the lake (I/O around [`super::rows`]).

use arrow::array::RecordBatch;
use arrow::compute::{concat_batches, interleave_record_batch};
use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;
use sluice_lake::layout::{CompactedFileName, LayoutError, Partition, SCRATCH_DIR};
use sluice_lake::{Lake, LakeError};
use sluice_sinks::LakeTables;
use sluice_sinks::encode::{EncodeError, ParquetEncoder};

use super::CompactionConfig;
use super::plan::{CompactionTask, plan};
use super::rows::{self, Order, RowsError};
use super::spill::{self, MERGE_BATCH_ROWS, Merge, SpillError};

/// How old an interrupted compaction's scratch files must be before a run deletes them.
pub const STALE_SCRATCH: chrono::TimeDelta = chrono::TimeDelta::hours(24);

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
    /// Sorted runs spilled to the scratch prefix (0: the partition fit in memory).
    pub spilled_runs: usize,
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
        "{partition}: one of its files needs about {needed} bytes in memory, more than the memory budget of \
         {budget} bytes allows (raise --memory-budget)"
    )]
    OverBudget { partition: String, needed: u64, budget: u64 },
    #[error(transparent)]
    Spill(#[from] SpillError),
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
        self.remove_stale_scratch(now).await?;
        let tasks = self.plan(event_type, now).await?;
        let mut report = CompactionReport::default();
        for (i, task) in tasks.iter().enumerate() {
            let outcome = self.compact(task).await?;
            done(&outcome, i + 1, tasks.len());
            report.partitions.push(outcome);
        }
        Ok(report)
    }

    /// Deletes the scratch files that interrupted compactions left: those of a generation that
    /// began more than [`STALE_SCRATCH`] before `now` (no compaction runs that long), or whose
    /// generation is not a ULID. A live compaction's scratch is never touched.
    pub async fn remove_stale_scratch(&self, now: DateTime<Utc>) -> Result<usize, CompactionError> {
        let dir = format!("{SCRATCH_DIR}/compaction");
        let mut removed = 0;
        for (path, _) in self.lake.list_objects(&dir).await? {
            let generation = path.strip_prefix(&dir).and_then(|p| p.trim_start_matches('/').split('/').next());
            let began = generation
                .and_then(|g| ulid::Ulid::from_string(&g.to_ascii_uppercase()).ok())
                .and_then(|u| DateTime::<Utc>::from_timestamp_millis(i64::try_from(u.timestamp_ms()).ok()?));
            if began.is_none_or(|began| began + STALE_SCRATCH < now) {
                self.lake.delete(&path).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Compacts one partition under a new generation.
    pub async fn compact(&self, task: &CompactionTask) -> Result<PartitionOutcome, CompactionError> {
        let generation = ulid::Ulid::new().to_string().to_ascii_lowercase();
        self.compact_with(task, &generation, |_| true).await
    }

    /// [`Compactor::compact`] with outputs of `generation`, asking `before(step)` before every
    /// step: `false` stops there with [`CompactionError::Interrupted`], leaving the lake as a
    /// crash at that point would (tests inject crashes this way).
    ///
    /// Rows are gathered in chunks of an eighth of the memory budget. A partition that fits in
    /// one chunk is deduplicated and sorted in memory; a larger one spills each chunk, sorted by
    /// identity, to the scratch prefix, merges those runs into one deduplicated stream, spills
    /// that in output order, and merges again into the output files; the scratch files are
    /// deleted at the end.
    pub async fn compact_with(
        &self,
        task: &CompactionTask,
        generation: &str,
        mut before: impl FnMut(&Step) -> bool,
    ) -> Result<PartitionOutcome, CompactionError> {
        let partition = task.partition.dir();
        let event_type = &task.partition.event_type;
        let (Some(schema), Some(dimensions)) = (self.tables.schema(event_type), self.tables.dimensions(event_type))
        else {
            return Err(CompactionError::UnknownEventType { partition, event_type: event_type.clone() });
        };
        let schema = schema.clone();
        CompactedFileName::new(generation, 0)?;
        let mut step = |s: Step| if before(&s) { Ok(()) } else { Err(CompactionError::Interrupted(s)) };
        let budget = self.config.memory_budget;
        // In memory, the rows are held once (the output is interleaved from them a slice at a
        // time) beside their order's indices and hash map (about a tenth of them) and the open
        // output file (at most a quarter of the budget): rows of up to 55% of the budget leave
        // room for the rest (0.55 + 0.055 + 0.25 of it).
        let in_memory = budget / 20 * 11;
        // Once spilling, a chunk is copied about three times while it is sorted and spilled:
        // an eighth of the budget leaves room for all of it.
        let chunk_budget = (budget / 8).max(1);
        let mut spilling = false;
        let mut scratch = Scratch::new(&self.lake, &task.partition, generation);

        // Read every input, spilling identity-sorted chunks when the rows outgrow a chunk.
        let bytes_in = task.input_bytes();
        let mut chunk = Chunk::default();
        let mut rows_in = 0;
        for input in &task.inputs {
            let path = input.relative();
            step(Step::Read(path.clone()))?;
            if input.size > budget / 2 {
                return Err(CompactionError::OverBudget { partition, needed: input.size.saturating_mul(2), budget });
            }
            let bytes = self.lake.get(&path).await?;
            let corrupt = |source| LakeError::Corrupt { path: path.clone(), source };
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .and_then(|b| b.with_batch_size(MERGE_BATCH_ROWS).build())
                .map_err(corrupt)?;
            for batch in reader {
                let batch = batch.map_err(|e| corrupt(ParquetError::External(Box::new(e))))?;
                let batch = rows::conform(&batch, &schema).map_err(rows_error(&path))?;
                rows_in += batch.num_rows();
                chunk.push(batch);
                if !spilling && chunk.bytes > in_memory {
                    // Too large for memory: what was read so far goes out in chunks.
                    spilling = true;
                    let mut part = Chunk::default();
                    for batch in std::mem::take(&mut chunk).batches {
                        part.push(batch);
                        if part.bytes > chunk_budget {
                            let unique = part.take(&schema).and_then(|all| rows::unique_by_identity(&all));
                            scratch.spill("identity", unique.map_err(rows_error(&partition))?).await?;
                        }
                    }
                    chunk = part;
                } else if spilling && chunk.bytes > chunk_budget {
                    let unique = chunk.take(&schema).and_then(|all| rows::unique_by_identity(&all));
                    scratch.spill("identity", unique.map_err(rows_error(&partition))?).await?;
                }
            }
        }

        // The open output file is held encoded: at most a quarter of the budget.
        let per_file = rows::rows_per_file(bytes_in, rows_in, self.config.target_size.min(budget / 4));
        let metadata =
            [("sluice.event_type", event_type.clone()), ("sluice.compaction_generation", generation.to_owned())];
        let mut outputs = OutputFiles::new(&self.lake, task, generation, &schema, &metadata, dimensions, per_file);
        if !spilling {
            let order = rows::output_order(&chunk.batches).map_err(rows_error(&partition))?;
            let inputs: Vec<&RecordBatch> = chunk.batches.iter().collect();
            for slice in order.chunks(MERGE_BATCH_ROWS) {
                let batch = interleave_record_batch(&inputs, slice).map_err(|e| rows_error(&partition)(e.into()))?;
                outputs.push(&batch, &mut step).await?;
            }
        } else {
            let unique = chunk.take(&schema).and_then(|all| rows::unique_by_identity(&all));
            scratch.spill("identity", unique.map_err(rows_error(&partition))?).await?;
            // One deduplicated stream in identity order, re-spilled in output order.
            let mut previous: Option<String> = None;
            let mut output_chunk = Chunk::default();
            let mut merge = Merge::open(&self.lake, &scratch.runs("identity"), Order::Identity).await?;
            while let Some(batch) = merge.next().await? {
                let (unique, last) =
                    rows::first_per_event_id(&batch, previous.as_deref()).map_err(rows_error(&partition))?;
                previous = last.or(previous.take());
                output_chunk.push(unique);
                if output_chunk.bytes > chunk_budget {
                    let sorted = output_chunk.take(&schema).and_then(|all| rows::sort(&all, Order::Output));
                    scratch.spill("output", sorted.map_err(rows_error(&partition))?).await?;
                }
            }
            drop(merge);
            let sorted = output_chunk.take(&schema).and_then(|all| rows::sort(&all, Order::Output));
            scratch.spill("output", sorted.map_err(rows_error(&partition))?).await?;
            let mut merge = Merge::open(&self.lake, &scratch.runs("output"), Order::Output).await?;
            while let Some(batch) = merge.next().await? {
                outputs.push(&batch, &mut step).await?;
            }
        }
        let (outputs, bytes_out, rows_out) = outputs.finish(&mut step).await?;

        for input in &task.inputs {
            let path = input.relative();
            if outputs.contains(&path) {
                continue;
            }
            step(Step::Delete(path.clone()))?;
            self.lake.delete(&path).await?;
        }
        scratch.remove().await?;
        tracing::info!(
            partition = %partition,
            inputs = task.inputs.len(),
            rows_in,
            rows_out,
            outputs = outputs.len(),
            bytes_in,
            bytes_out,
            spilled_runs = scratch.spilled(),
            "partition compacted"
        );
        Ok(PartitionOutcome {
            partition: task.partition.clone(),
            inputs: task.inputs.len(),
            bytes_in,
            rows_in,
            outputs,
            bytes_out,
            rows_out,
            spilled_runs: scratch.spilled(),
        })
    }
}

/// Maps a rows error to the compaction error naming `path`.
fn rows_error(path: &str) -> impl FnOnce(RowsError) -> CompactionError + use<> {
    let path = path.to_owned();
    move |source| CompactionError::Rows { path, source }
}

/// Rows gathered in memory, and their Arrow size.
#[derive(Default)]
struct Chunk {
    batches: Vec<RecordBatch>,
    bytes: u64,
}

impl Chunk {
    fn push(&mut self, batch: RecordBatch) {
        self.bytes += batch.get_array_memory_size() as u64;
        self.batches.push(batch);
    }

    /// The rows as one batch of `schema`, leaving the chunk empty.
    fn take(&mut self, schema: &SchemaRef) -> Result<RecordBatch, RowsError> {
        let all = concat_batches(schema, &self.batches)?;
        self.batches.clear();
        self.bytes = 0;
        Ok(all)
    }
}

/// One partition compaction's scratch directory (`SCRATCH_DIR/compaction/<generation>/`) and
/// the runs spilled to it, by kind.
struct Scratch<'a> {
    lake: &'a Lake,
    dir: String,
    runs: Vec<(&'static str, String)>,
}

impl<'a> Scratch<'a> {
    fn new(lake: &'a Lake, partition: &Partition, generation: &str) -> Self {
        let dir = format!("{SCRATCH_DIR}/compaction/{generation}/{}", partition.event_type);
        Self { lake, dir, runs: Vec::new() }
    }

    /// Writes `batch` (sorted) as the next run of `kind`, dropping the rows once encoded; an
    /// empty batch writes nothing.
    async fn spill(&mut self, kind: &'static str, batch: RecordBatch) -> Result<(), CompactionError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let n = self.runs.len();
        let path = format!("{}/{kind}-{n:05}.arrows", self.dir);
        let bytes = spill::encode_run(&batch).map_err(SpillError::from)?;
        drop(batch);
        self.lake.put(&path, bytes).await?;
        self.runs.push((kind, path));
        Ok(())
    }

    /// The runs of `kind`, in spill order.
    fn runs(&self, kind: &str) -> Vec<String> {
        self.runs.iter().filter(|(k, _)| *k == kind).map(|(_, p)| p.clone()).collect()
    }

    fn spilled(&self) -> usize {
        self.runs.len()
    }

    /// Deletes every file of the directory.
    async fn remove(&self) -> Result<(), CompactionError> {
        for (path, _) in self.lake.list_objects(&self.dir).await? {
            self.lake.delete(&path).await?;
        }
        Ok(())
    }
}

/// The output files of one partition's compaction, written as rows arrive in output order:
/// `rows_per_file` rows each, encoded incrementally, each put once complete.
struct OutputFiles<'a> {
    lake: &'a Lake,
    task: &'a CompactionTask,
    generation: &'a str,
    schema: &'a SchemaRef,
    metadata: &'a [(&'a str, String)],
    dimensions: &'a [String],
    rows_per_file: usize,
    encoder: Option<ParquetEncoder>,
    rows_in_file: usize,
    outputs: Vec<String>,
    bytes_out: u64,
    rows_out: usize,
}

impl<'a> OutputFiles<'a> {
    fn new(
        lake: &'a Lake,
        task: &'a CompactionTask,
        generation: &'a str,
        schema: &'a SchemaRef,
        metadata: &'a [(&'a str, String)],
        dimensions: &'a [String],
        rows_per_file: usize,
    ) -> Self {
        Self {
            lake,
            task,
            generation,
            schema,
            metadata,
            dimensions,
            rows_per_file: rows_per_file.max(1),
            encoder: None,
            rows_in_file: 0,
            outputs: Vec::new(),
            bytes_out: 0,
            rows_out: 0,
        }
    }

    fn encode_error(&self) -> impl Fn(EncodeError) -> CompactionError + use<'_> {
        |source| CompactionError::Encode { partition: self.task.partition.dir(), source }
    }

    /// Appends `batch` (the next rows in output order).
    async fn push(
        &mut self,
        batch: &RecordBatch,
        step: &mut impl FnMut(Step) -> Result<(), CompactionError>,
    ) -> Result<(), CompactionError> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.encoder.is_none() {
                let encoder =
                    ParquetEncoder::new(self.schema, self.metadata, self.dimensions).map_err(self.encode_error())?;
                self.encoder = Some(encoder);
            }
            let len = (self.rows_per_file - self.rows_in_file).min(batch.num_rows() - offset);
            if let Some(encoder) = &mut self.encoder {
                let written = encoder.write(&batch.slice(offset, len));
                written.map_err(|source| CompactionError::Encode { partition: self.task.partition.dir(), source })?;
            }
            (self.rows_in_file, self.rows_out, offset) = (self.rows_in_file + len, self.rows_out + len, offset + len);
            if self.rows_in_file == self.rows_per_file {
                self.close(step).await?;
            }
        }
        Ok(())
    }

    /// Writes the open file, if any.
    async fn close(
        &mut self,
        step: &mut impl FnMut(Step) -> Result<(), CompactionError>,
    ) -> Result<(), CompactionError> {
        let Some(encoder) = self.encoder.take() else { return Ok(()) };
        let bytes = encoder.finish().map_err(self.encode_error())?;
        let part = u32::try_from(self.outputs.len()).unwrap_or(u32::MAX);
        let path = self.task.partition.file_path(&CompactedFileName::new(self.generation, part)?.to_string());
        step(Step::Write(path.clone()))?;
        self.bytes_out += bytes.len() as u64;
        self.lake.put(&path, bytes).await?;
        self.outputs.push(path);
        self.rows_in_file = 0;
        Ok(())
    }

    /// Writes the last file; the paths written, their bytes and rows.
    async fn finish(
        mut self,
        step: &mut impl FnMut(Step) -> Result<(), CompactionError>,
    ) -> Result<(Vec<String>, u64, usize), CompactionError> {
        self.close(step).await?;
        Ok((self.outputs, self.bytes_out, self.rows_out))
    }
}
